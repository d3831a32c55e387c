//! The Windows calls the program makes for its work (setupapi, newdev), declared with raw-dylib,
//! and the small safe layer over them; the console runtime (command line, output, exit) is
//! `console.rs`. Every `unsafe` of the program is in these two files.

pub use crate::console::{exit, last_error, write_stdout, Args};
use crate::text::WideBuf;

/// `SPDRP_HARDWAREID`.
pub const SPDRP_HARDWAREID: u32 = 0x1;
/// `DIF_REGISTERDEVICE`.
pub const DIF_REGISTERDEVICE: u32 = 0x19;
/// `DIF_REMOVE`.
pub const DIF_REMOVE: u32 = 0x5;

const DICD_GENERATE_ID: u32 = 0x1;
const DIGCF_ALLCLASSES: u32 = 0x4;
const INSTALLFLAG_FORCE: u32 = 0x1;
const INVALID_HANDLE_VALUE: isize = -1;

/// `GUID`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Guid {
    data1: u32,
    data2: u16,
    data3: u16,
    data4: [u8; 8],
}

/// `SP_DEVINFO_DATA` (x64: 32 bytes).
#[repr(C)]
pub struct DevInfoData {
    cb_size: u32,
    class_guid: Guid,
    dev_inst: u32,
    reserved: usize,
}
const _: () = assert!(core::mem::size_of::<DevInfoData>() == 32);

impl DevInfoData {
    fn new() -> Self {
        Self {
            cb_size: core::mem::size_of::<Self>() as u32,
            class_guid: Guid::default(),
            dev_inst: 0,
            reserved: 0,
        }
    }
}

#[link(name = "setupapi.dll", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "system" {
    fn SetupDiGetINFClassW(
        inf: *const u16,
        guid: *mut Guid,
        name: *mut u16,
        name_len: u32,
        required: *mut u32,
    ) -> i32;
    fn SetupDiCreateDeviceInfoList(guid: *const Guid, hwnd: isize) -> isize;
    fn SetupDiGetClassDevsW(
        guid: *const Guid,
        enumerator: *const u16,
        hwnd: isize,
        flags: u32,
    ) -> isize;
    fn SetupDiDestroyDeviceInfoList(set: isize) -> i32;
    fn SetupDiCreateDeviceInfoW(
        set: isize,
        name: *const u16,
        guid: *const Guid,
        description: *const u16,
        hwnd: isize,
        flags: u32,
        data: *mut DevInfoData,
    ) -> i32;
    fn SetupDiEnumDeviceInfo(set: isize, index: u32, data: *mut DevInfoData) -> i32;
    fn SetupDiSetDeviceRegistryPropertyW(
        set: isize,
        data: *mut DevInfoData,
        property: u32,
        buf: *const u8,
        len: u32,
    ) -> i32;
    fn SetupDiGetDeviceRegistryPropertyW(
        set: isize,
        data: *mut DevInfoData,
        property: u32,
        reg_type: *mut u32,
        buf: *mut u8,
        len: u32,
        required: *mut u32,
    ) -> i32;
    fn SetupDiGetDeviceInstanceIdW(
        set: isize,
        data: *mut DevInfoData,
        buf: *mut u16,
        len: u32,
        required: *mut u32,
    ) -> i32;
    fn SetupDiCallClassInstaller(function: u32, set: isize, data: *mut DevInfoData) -> i32;
}

#[link(name = "newdev.dll", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "system" {
    fn UpdateDriverForPlugAndPlayDevicesW(
        hwnd: isize,
        hardware_id: *const u16,
        inf: *const u16,
        flags: u32,
        reboot: *mut i32,
    ) -> i32;
}

/// The class GUID and class name an INF declares.
pub fn inf_class(inf: &WideBuf) -> Option<(Guid, WideBuf)> {
    let mut guid = Guid::default();
    let mut name = WideBuf::default();
    let mut required = 0u32;
    // SAFETY:
    // 1. `inf` is NUL-terminated;
    // 2. `name` has room for 32 units (MAX_CLASS_NAME_LEN), far less than its capacity;
    // 3. `guid` and `required` are valid out pointers.
    let ok = unsafe {
        SetupDiGetINFClassW(
            inf.as_ptr(),
            &mut guid,
            name.as_mut_ptr(),
            32,
            &mut required,
        )
    };
    name.set_len(required.saturating_sub(1) as usize);
    (ok != 0).then_some((guid, name))
}

/// Installs the best driver for `hardware_id` from `inf` on every matching device; whether a
/// reboot was requested.
pub fn update_driver(hardware_id: &WideBuf, inf: &WideBuf) -> Option<bool> {
    let mut reboot = 0i32;
    // SAFETY:
    // 1. both strings are NUL-terminated;
    // 2. no window is passed; `reboot` is a valid out pointer.
    let ok = unsafe {
        UpdateDriverForPlugAndPlayDevicesW(
            0,
            hardware_id.as_ptr(),
            inf.as_ptr(),
            INSTALLFLAG_FORCE,
            &mut reboot,
        )
    };
    (ok != 0).then_some(reboot != 0)
}

/// A device information set, destroyed on drop.
pub struct DevInfoSet(isize);

/// One device of a set.
pub struct Device(DevInfoData);

impl DevInfoSet {
    /// An empty set for `class`.
    pub fn create(class: &Guid) -> Option<Self> {
        // SAFETY: `class` is a valid GUID; no window is passed.
        let set = unsafe { SetupDiCreateDeviceInfoList(class, 0) };
        (set != INVALID_HANDLE_VALUE).then_some(Self(set))
    }

    /// Every device the ROOT enumerator has, of all classes.
    pub fn root_devices() -> Option<Self> {
        let root: [u16; 5] = [b'R' as u16, b'O' as u16, b'O' as u16, b'T' as u16, 0];
        // SAFETY:
        // 1. no class GUID (DIGCF_ALLCLASSES);
        // 2. `root` is NUL-terminated; no window is passed.
        let set =
            unsafe { SetupDiGetClassDevsW(core::ptr::null(), root.as_ptr(), 0, DIGCF_ALLCLASSES) };
        (set != INVALID_HANDLE_VALUE).then_some(Self(set))
    }

    /// Creates `ROOT\<class name>\NNNN` (a generated instance number).
    pub fn create_root_device(&self, class_name: &WideBuf, class: &Guid) -> Option<Device> {
        let mut data = DevInfoData::new();
        // SAFETY:
        // 1. `self.0` is a live set; `class_name` is NUL-terminated; `class` is a valid GUID;
        // 2. no description or window; `data` has its cbSize set.
        let ok = unsafe {
            SetupDiCreateDeviceInfoW(
                self.0,
                class_name.as_ptr(),
                class,
                core::ptr::null(),
                0,
                DICD_GENERATE_ID,
                &mut data,
            )
        };
        (ok != 0).then_some(Device(data))
    }

    /// Device `index` of the set, or `None` past the end.
    pub fn device(&self, index: u32) -> Option<Device> {
        let mut data = DevInfoData::new();
        // SAFETY: `self.0` is a live set; `data` has its cbSize set.
        let ok = unsafe { SetupDiEnumDeviceInfo(self.0, index, &mut data) };
        (ok != 0).then_some(Device(data))
    }

    /// Sets a registry property of `device` from `(bytes, len)`.
    pub fn set_property(
        &self,
        device: &mut Device,
        property: u32,
        value: ([u8; crate::text::WIDE_CAPACITY * 2], usize),
    ) -> bool {
        let (bytes, len) = value;
        // SAFETY:
        // 1. `self.0` is a live set and `device` one of its devices;
        // 2. `bytes` is valid for `len <= bytes.len()` bytes.
        unsafe {
            SetupDiSetDeviceRegistryPropertyW(
                self.0,
                &mut device.0,
                property,
                bytes.as_ptr(),
                len as u32,
            ) != 0
        }
    }

    /// The device's hardware IDs as a MULTI_SZ (empty if it has none).
    pub fn hardware_ids(&self, device: &mut Device) -> WideBuf {
        let mut ids = WideBuf::default();
        let mut required = 0u32;
        let mut reg_type = 0u32;
        let capacity = ids.byte_capacity() - 2;
        // SAFETY:
        // 1. `self.0` is a live set and `device` one of its devices;
        // 2. the buffer has `capacity` bytes, two less than its size, so a NUL always follows.
        let ok = unsafe {
            SetupDiGetDeviceRegistryPropertyW(
                self.0,
                &mut device.0,
                SPDRP_HARDWAREID,
                &mut reg_type,
                ids.as_mut_ptr().cast(),
                capacity,
                &mut required,
            )
        };
        ids.set_len(if ok != 0 {
            (required.min(capacity) / 2) as usize
        } else {
            0
        });
        ids
    }

    /// The device's instance ID.
    pub fn instance_id(&self, device: &mut Device) -> WideBuf {
        let mut id = WideBuf::default();
        let mut required = 0u32;
        let capacity = crate::text::WIDE_CAPACITY as u32 - 1;
        // SAFETY:
        // 1. `self.0` is a live set and `device` one of its devices;
        // 2. the buffer has room for `capacity` units plus a NUL.
        let ok = unsafe {
            SetupDiGetDeviceInstanceIdW(
                self.0,
                &mut device.0,
                id.as_mut_ptr(),
                capacity,
                &mut required,
            )
        };
        id.set_len(if ok != 0 {
            required.saturating_sub(1) as usize
        } else {
            0
        });
        id
    }

    /// Runs the class installer for `function` on `device`.
    pub fn call_class_installer(&self, function: u32, device: &mut Device) -> bool {
        // SAFETY: `self.0` is a live set and `device` one of its devices.
        unsafe { SetupDiCallClassInstaller(function, self.0, &mut device.0) != 0 }
    }
}

impl Drop for DevInfoSet {
    fn drop(&mut self) {
        // SAFETY: `self.0` is a live set, destroyed once here.
        unsafe { SetupDiDestroyDeviceInfoList(self.0) };
    }
}
