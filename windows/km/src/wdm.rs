//! A WDM function driver without `unsafe` in the driver: the driver implements [`FdoDriver`]
//! (safe methods over an owned [`Irp`] and its per-device state) and names it with
//! [`driver_entry!`](crate::driver_entry); this module holds the `extern "system"` entry points,
//! the device extension and the device-object lifetime.
//!
//! Rules the module keeps:
//! - AddDevice creates the FDO (no name, `FILE_DEVICE_SECURE_OPEN`), initialises the extension in
//!   place, attaches to the PDO's stack, sets `DO_POWER_PAGABLE` and clears
//!   `DO_DEVICE_INITIALIZING` last.
//! - PnP IRPs are serialised by the PnP manager, so [`FdoDriver::pnp`] gets `&mut` state.
//!   Power and WMI IRPs may arrive concurrently; their handlers only read the device objects
//!   (never changed after AddDevice) and never touch the state.
//! - Every dispatch routine holds the FDO's remove lock while it uses the device; REMOVE waits
//!   for all holders (`IoReleaseRemoveLockAndWaitEx`) before the driver passes it down, and IRPs
//!   arriving after that fail with `STATUS_NO_SUCH_DEVICE`.
//! - An [`Irp`] is consumed by completing or passing it on, so it is finished exactly once.
//! - When `pnp` returns [`Disposition::Delete`] (after passing REMOVE down), the state is dropped,
//!   the FDO detached and deleted.

use core::cell::UnsafeCell;
use core::marker::PhantomData;
use core::mem::{align_of, offset_of, size_of};
use core::ptr::{self, NonNull};

use windows_sys::Wdk::Foundation::{DEVICE_OBJECT, DRIVER_OBJECT, IRP};
use windows_sys::Wdk::Storage::FileSystem::{DO_DEVICE_INITIALIZING, DO_POWER_PAGABLE};
use windows_sys::Wdk::System::SystemServices as ss;
use windows_sys::Win32::Foundation::UNICODE_STRING;

use crate::irp;
use crate::layout;
use crate::pool_tag::PoolTag;
use crate::status::{nt_success, NtStatus, STATUS_NO_SUCH_DEVICE, STATUS_SUCCESS};

/// `FILE_DEVICE_SECURE_OPEN`.
const FILE_DEVICE_SECURE_OPEN: u32 = 0x100;
const IRP_MJ_POWER: usize = 0x16;
const IRP_MJ_SYSTEM_CONTROL: usize = 0x17;
const IRP_MJ_PNP: usize = 0x1B;

/// Bytes of one `CM_PARTIAL_RESOURCE_DESCRIPTOR` on x64 (see [`crate::layout`]: the resource
/// list is read as bytes because `windows-sys`'s declaration of it differs from `wdm.h`).
pub const PARTIAL_DESCRIPTOR_BYTES: usize = layout::CM_PARTIAL_RESOURCE_DESCRIPTOR_BYTES;

/// What a PnP handler did with the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// The device lives on; return this status from the dispatch routine.
    Keep(NtStatus),
    /// REMOVE was passed down: drop the state, detach and delete the FDO, return this status.
    Delete(NtStatus),
}

/// A WDM function driver for one kind of device.
pub trait FdoDriver: 'static {
    /// Per-device state, kept in the FDO's extension.
    type State;
    /// The device type given to `IoCreateDevice` (for example `FILE_DEVICE_BUS_EXTENDER`).
    const DEVICE_TYPE: u32;
    /// The driver's name in log lines.
    const NAME: &'static str;

    /// `DriverEntry`'s own work (after the entry points are set). PASSIVE_LEVEL.
    fn init() -> NtStatus {
        STATUS_SUCCESS
    }

    /// The state of a new FDO. PASSIVE_LEVEL.
    fn new_state() -> Self::State;

    /// An `IRP_MJ_PNP` IRP. PASSIVE_LEVEL, serialised per device.
    fn pnp(state: &mut Self::State, device: Device, irp: Irp) -> Disposition;

    /// Unload. PASSIVE_LEVEL.
    fn unload() {}
}

/// The device below an FDO. Valid while the FDO exists (the I/O manager keeps the stack alive).
#[derive(Clone, Copy, Debug)]
pub struct Lower(NonNull<DEVICE_OBJECT>);

/// An IRP this driver owns; consumed by completing it or passing it on.
#[derive(Debug)]
pub struct Irp {
    irp: NonNull<IRP>,
    _not_send: PhantomData<*mut IRP>,
}

impl Irp {
    fn raw(&self) -> *mut IRP {
        self.irp.as_ptr()
    }

    /// The current stack location's minor function code.
    pub fn minor_function(&self) -> u8 {
        // SAFETY: `self` owns the live IRP and no reference into it is held.
        unsafe { irp::function_codes(self.raw()) }.1
    }

    /// Completes the IRP with `status` and `information`; returns `status`.
    pub fn complete(self, status: NtStatus, information: usize) -> NtStatus {
        // SAFETY: `self` owns the IRP and is consumed.
        unsafe { irp::complete(self.raw(), status, information) }
    }

    /// Completes the IRP with `status`, keeping the information it carries.
    pub fn complete_keeping_information(self, status: NtStatus) -> NtStatus {
        // SAFETY: `self` owns the live IRP.
        let (_, information) = unsafe { irp::io_status(self.raw()) };
        self.complete(status, information)
    }

    /// Passes the IRP down unchanged.
    pub fn pass_down(self, lower: Lower) -> NtStatus {
        // SAFETY: `self` owns the IRP and is consumed; `lower` is the live lower device, so the
        // IRP has its location.
        unsafe { irp::pass_down(lower.0.as_ptr(), self.raw()) }
    }

    /// Sets the status to success and passes the IRP down (a PnP IRP this driver handled).
    pub fn succeed_and_pass_down(self, lower: Lower) -> NtStatus {
        // SAFETY: `self` owns the live IRP.
        unsafe { irp::set_status(self.raw(), STATUS_SUCCESS) };
        self.pass_down(lower)
    }

    /// Forwards the IRP to `lower` and waits until the lower drivers complete it; returns their
    /// status, and the IRP is owned again. PASSIVE_LEVEL only (PnP dispatch).
    pub fn forward_and_wait(&mut self, lower: Lower) -> NtStatus {
        // SAFETY: `self` owns the IRP, `lower` is live and the IRP has a location for it;
        // ownership returns when the call does.
        unsafe { irp::forward_and_wait(lower.0.as_ptr(), self.raw()) }
    }

    /// Copies the partial descriptors of a start IRP's translated resource list into `out` as
    /// bytes (see [`PARTIAL_DESCRIPTOR_BYTES`]); returns how many, `out.len() + 1` if there are
    /// more than `out` holds, or `None` when the IRP carries no list. Only for
    /// `IRP_MN_START_DEVICE`.
    pub fn start_resources_translated(
        &self,
        out: &mut [[u8; PARTIAL_DESCRIPTOR_BYTES]],
    ) -> Option<usize> {
        if self.minor_function() != 0 {
            return None;
        }
        // SAFETY: `self` owns the live IRP.
        let location = unsafe { irp::current_stack_location(self.raw()) };
        // SAFETY: the current location of an owned IRP is valid to read.
        let location = unsafe { &*location };
        // SAFETY: for IRP_MN_START_DEVICE (checked above) the parameters are the `StartDevice`
        // variant.
        let list = unsafe { location.Parameters.StartDevice.AllocatedResourcesTranslated };
        if list.is_null() {
            return None;
        }
        // SAFETY: the PnP manager built the list for this start IRP; it stays valid while the
        // IRP is owned.
        Some(unsafe { crate::resource_list::copy_partial_descriptors(list.cast(), out) })
    }
}

/// The device objects around one FDO, fixed from AddDevice on.
#[derive(Clone, Copy, Debug)]
pub struct Device {
    this: NonNull<DEVICE_OBJECT>,
    lower: Lower,
    pdo: NonNull<DEVICE_OBJECT>,
}

impl Device {
    /// The device below the FDO, where IRPs are passed.
    pub fn lower(&self) -> Lower {
        self.lower
    }

    /// The PDO (for interrupt connection and device registry keys).
    pub fn pdo(&self) -> NonNull<DEVICE_OBJECT> {
        self.pdo
    }

    /// The FDO itself (for work items).
    pub fn this(&self) -> NonNull<DEVICE_OBJECT> {
        self.this
    }
}

/// The FDO's extension.
struct Extension<D: FdoDriver> {
    /// Set in AddDevice, never changed: read by every dispatch routine.
    device: Device,
    /// Keeps REMOVE from deleting the FDO while another IRP is in a dispatch routine.
    remove_lock: UnsafeCell<ss::IO_REMOVE_LOCK>,
    /// Touched only by PnP dispatch (serialised).
    state: D::State,
}

/// The pool tag of the remove lock's tracking.
const REMOVE_LOCK_TAG: PoolTag = PoolTag::new(b"XPrl");
const REMOVE_LOCK_SIZE: u32 = size_of::<ss::IO_REMOVE_LOCK>() as u32;
/// `IRP_MN_REMOVE_DEVICE`.
const IRP_MN_REMOVE_DEVICE: u8 = 0x02;

/// Field pointers into one of this driver's FDO extensions, without creating a reference to the
/// whole extension (PnP may hold `&mut` to the state while other dispatch routines run).
struct ExtensionFields<D: FdoDriver> {
    device: *const Device,
    remove_lock: *mut ss::IO_REMOVE_LOCK,
    state: *mut D::State,
}

fn fields<D: FdoDriver>(fdo: *const DEVICE_OBJECT) -> Option<ExtensionFields<D>> {
    let fdo = NonNull::new(fdo.cast_mut())?;
    // SAFETY: the I/O manager calls the dispatch routines with a live device object of this
    // driver, and this driver creates only FDOs with an `Extension<D>`.
    let extension = unsafe { fdo.as_ref() }
        .DeviceExtension
        .cast::<Extension<D>>();
    Some(ExtensionFields {
        device: extension
            .wrapping_byte_add(offset_of!(Extension<D>, device))
            .cast(),
        remove_lock: extension
            .wrapping_byte_add(offset_of!(Extension<D>, remove_lock))
            .cast(),
        state: extension
            .wrapping_byte_add(offset_of!(Extension<D>, state))
            .cast(),
    })
}

impl<D: FdoDriver> ExtensionFields<D> {
    fn device(&self) -> Device {
        // SAFETY: AddDevice initialised the extension; `device` is never written again.
        unsafe { self.device.read() }
    }

    /// `IoAcquireRemoveLock` with the IRP as tag; `false` once REMOVE has begun.
    fn acquire(&self, irp: *mut IRP) -> bool {
        // SAFETY:
        // 1. The remove lock was initialised in AddDevice and lives in the extension until the
        //    FDO is deleted, which waits for every holder.
        // 2. The tag is the IRP pointer (released with the same tag); no file/line tracking.
        let status = unsafe {
            ss::IoAcquireRemoveLockEx(
                self.remove_lock,
                irp.cast_const().cast(),
                c"".as_ptr().cast(),
                0,
                REMOVE_LOCK_SIZE,
            )
        };
        nt_success(status)
    }

    fn release(&self, irp: *mut IRP) {
        // SAFETY: releases a hold taken by `acquire` with the same tag.
        unsafe {
            ss::IoReleaseRemoveLockEx(self.remove_lock, irp.cast_const().cast(), REMOVE_LOCK_SIZE)
        };
    }
}

/// The entry point's work, for [`driver_entry!`](crate::driver_entry).
///
/// # Safety
/// Called only from `DriverEntry`, with the driver object the I/O manager passed.
pub unsafe fn driver_entry<D: FdoDriver>(
    driver: *mut DRIVER_OBJECT,
    _registry: *const UNICODE_STRING,
) -> NtStatus {
    crate::pool::init();
    #[cfg(target_os = "windows")]
    crate::mdl::init();
    // SAFETY: the driver object lives until unload.
    unsafe { crate::event_log_writer::set_source(driver.cast()) };
    // SAFETY: the I/O manager hands `DriverEntry` a live, writable driver object.
    let object = unsafe { &mut *driver };
    object.MajorFunction[IRP_MJ_PNP] = Some(dispatch_pnp::<D>);
    object.MajorFunction[IRP_MJ_POWER] = Some(dispatch_power::<D>);
    object.MajorFunction[IRP_MJ_SYSTEM_CONTROL] = Some(dispatch_system_control::<D>);
    object.DriverUnload = Some(unload::<D>);
    // SAFETY: a driver object passed to `DriverEntry` has its extension.
    unsafe { (*object.DriverExtension).AddDevice = Some(add_device::<D>) };
    crate::info!("{}: DriverEntry", D::NAME);
    D::init()
}

unsafe extern "system" fn unload<D: FdoDriver>(_driver: *const DRIVER_OBJECT) {
    D::unload();
    crate::info!("{}: unloaded", D::NAME);
}

unsafe extern "system" fn add_device<D: FdoDriver>(
    driver: *const DRIVER_OBJECT,
    pdo: *const DEVICE_OBJECT,
) -> NtStatus {
    const {
        assert!(
            align_of::<Extension<D>>() <= 16,
            "device state needs more than 16-byte alignment"
        )
    };
    let Some(pdo_ref) = NonNull::new(pdo.cast_mut()) else {
        return STATUS_NO_SUCH_DEVICE;
    };
    let mut fdo: *mut DEVICE_OBJECT = ptr::null_mut();
    // SAFETY:
    // 1. `driver` is this driver's live object (AddDevice contract); no name.
    // 2. The extension size is that of `Extension<D>`, initialised below before the device can
    //    receive IRPs (it is still initialising).
    // 3. `fdo` receives the new device object.
    let status = unsafe {
        ss::IoCreateDevice(
            driver,
            size_of::<Extension<D>>() as u32,
            ptr::null(),
            D::DEVICE_TYPE,
            FILE_DEVICE_SECURE_OPEN,
            false,
            &mut fdo,
        )
    };
    let Some(this) = NonNull::new(fdo).filter(|_| nt_success(status)) else {
        crate::error!(
            "{}: AddDevice: IoCreateDevice failed with {:#010x}",
            D::NAME,
            status as u32
        );
        return status;
    };
    // SAFETY: `fdo` was just created and `pdo` is the live PDO the PnP manager passed;
    // AddDevice runs at PASSIVE_LEVEL.
    let lower = unsafe { ss::IoAttachDeviceToDeviceStack(fdo, pdo) };
    let Some(lower) = NonNull::new(lower) else {
        crate::error!(
            "{}: AddDevice: could not attach to the device stack",
            D::NAME
        );
        // SAFETY: `fdo` is ours, referenced nowhere else, and its extension was never written.
        unsafe { ss::IoDeleteDevice(fdo) };
        return STATUS_NO_SUCH_DEVICE;
    };
    // SAFETY: `fdo` is the live device object just created.
    let object = unsafe { &mut *fdo };
    let extension = object.DeviceExtension.cast::<Extension<D>>();
    // SAFETY: the extension is `size_of::<Extension<D>>()` bytes of nonpaged memory, 16-byte
    // aligned (checked above against `Extension<D>`), owned by the new device object and
    // uninitialised, so it is written, not assigned.
    unsafe {
        ptr::write(
            extension,
            Extension {
                device: Device {
                    this,
                    lower: Lower(lower),
                    pdo: pdo_ref,
                },
                remove_lock: UnsafeCell::new(Default::default()),
                state: D::new_state(),
            },
        )
    };
    let remove_lock = extension
        .wrapping_byte_add(offset_of!(Extension<D>, remove_lock))
        .cast::<ss::IO_REMOVE_LOCK>();
    // SAFETY: the extension was just initialised; the lock stays at this address until the FDO
    // is deleted. No lock-time limits (free-build remove lock).
    unsafe {
        ss::IoInitializeRemoveLockEx(remove_lock, REMOVE_LOCK_TAG.value(), 0, 0, REMOVE_LOCK_SIZE)
    };
    object.Flags |= DO_POWER_PAGABLE;
    // Last: publishes the initialised extension.
    object.Flags &= !DO_DEVICE_INITIALIZING;
    crate::info!("{}: AddDevice: FDO attached", D::NAME);
    STATUS_SUCCESS
}

unsafe extern "system" fn dispatch_pnp<D: FdoDriver>(
    device: *const DEVICE_OBJECT,
    irp: *mut IRP,
) -> NtStatus {
    let (Some(fields), Some(irp_ref)) = (fields::<D>(device), NonNull::new(irp)) else {
        return STATUS_NO_SUCH_DEVICE;
    };
    let owned = Irp {
        irp: irp_ref,
        _not_send: PhantomData,
    };
    if !fields.acquire(irp) {
        return owned.complete(STATUS_NO_SUCH_DEVICE, 0);
    }
    let removing = owned.minor_function() == IRP_MN_REMOVE_DEVICE;
    if removing {
        // SAFETY: releases this IRP's hold and waits until every other holder (power and WMI
        // IRPs in flight) has released; later acquires fail, so no new IRP reaches the FDO.
        unsafe {
            ss::IoReleaseRemoveLockAndWaitEx(
                fields.remove_lock,
                irp.cast_const().cast(),
                REMOVE_LOCK_SIZE,
            )
        };
    }
    let device_handle = fields.device();
    // SAFETY: the extension was initialised by AddDevice; the PnP manager serialises PnP IRPs
    // for a device and only PnP dispatch borrows the state, so this is the only reference.
    let state = unsafe { &mut *fields.state };
    let disposition = D::pnp(state, device_handle, owned);
    match disposition {
        Disposition::Keep(status) => {
            if !removing {
                fields.release(irp);
            }
            status
        }
        Disposition::Delete(status) => {
            // SAFETY: REMOVE has been passed down and no other IRP holds the remove lock; the
            // state is dropped once, here, and nothing uses it afterwards.
            unsafe { ptr::drop_in_place(fields.state) };
            // SAFETY: the WDM order for REMOVE: pass down (done), detach, delete.
            unsafe { ss::IoDetachDevice(device_handle.lower.0.as_ptr()) };
            // SAFETY: the FDO is ours and detached; nothing uses it after this.
            unsafe { ss::IoDeleteDevice(device) };
            crate::info!("{}: FDO deleted", D::NAME);
            status
        }
    }
}

unsafe extern "system" fn dispatch_power<D: FdoDriver>(
    device: *const DEVICE_OBJECT,
    irp: *mut IRP,
) -> NtStatus {
    let Some(fields) = fields::<D>(device) else {
        return STATUS_NO_SUCH_DEVICE;
    };
    if !fields.acquire(irp) {
        // SAFETY: the live power IRP is owned here; the next one may start, then this one is
        // completed once.
        unsafe { ss::PoStartNextPowerIrp(irp) };
        // SAFETY: as above.
        return unsafe { irp::complete(irp, STATUS_NO_SUCH_DEVICE, 0) };
    }
    let lower = fields.device().lower;
    // SAFETY: the I/O manager hands over a live power IRP; it is passed down once.
    let status = unsafe { irp::pass_power_down(lower.0.as_ptr(), irp) };
    fields.release(irp);
    status
}

unsafe extern "system" fn dispatch_system_control<D: FdoDriver>(
    device: *const DEVICE_OBJECT,
    irp: *mut IRP,
) -> NtStatus {
    let Some(fields) = fields::<D>(device) else {
        return STATUS_NO_SUCH_DEVICE;
    };
    if !fields.acquire(irp) {
        // SAFETY: the live IRP is owned here and completed once.
        return unsafe { irp::complete(irp, STATUS_NO_SUCH_DEVICE, 0) };
    }
    let lower = fields.device().lower;
    // SAFETY: no WMI provider is registered, so the live IRP is passed down once unchanged.
    let status = unsafe { irp::pass_down(lower.0.as_ptr(), irp) };
    fields.release(irp);
    status
}

/// Defines the image's `DriverEntry` for an [`FdoDriver`]: `win_km::driver_entry!(MyDriver);`.
/// Use it in a module that allows `unsafe_code` (the attribute `no_mangle` counts as unsafe).
#[macro_export]
macro_rules! driver_entry {
    ($driver:ty) => {
        /// The image's entry point.
        ///
        /// # Safety
        /// Called once by the I/O manager with a live driver object.
        #[unsafe(no_mangle)]
        pub unsafe extern "system" fn DriverEntry(
            driver: *mut $crate::windows_sys::Wdk::Foundation::DRIVER_OBJECT,
            registry_path: *const $crate::windows_sys::Win32::Foundation::UNICODE_STRING,
        ) -> i32 {
            // SAFETY: this is `DriverEntry`, called by the I/O manager.
            unsafe { $crate::wdm::driver_entry::<$driver>(driver, registry_path) }
        }
    };
}

/// The WDM layer against the kernel double: a test driver goes through DriverEntry, AddDevice,
/// START, a power IRP, WMI and REMOVE, and the double checks the order and balance of what the
/// layer asks of the kernel.
#[cfg(all(test, not(target_os = "windows")))]
mod tests {
    #![allow(unsafe_code)]

    use super::*;
    use crate::kernel_double::*;
    use crate::status::STATUS_SUCCESS;
    use core::ffi::c_void;
    use windows_sys::Wdk::Foundation::DRIVER_EXTENSION;

    /// The test driver's state: counts the IRPs it saw and records its drop.
    struct State {
        seen: Vec<u8>,
    }

    impl Drop for State {
        fn drop(&mut self) {
            kernel(|k| k.calls.push("state dropped"));
        }
    }

    struct TestDriver;

    impl FdoDriver for TestDriver {
        type State = State;
        const DEVICE_TYPE: u32 = 0x2A;
        const NAME: &'static str = "test";

        fn new_state() -> State {
            State { seen: Vec::new() }
        }

        fn pnp(state: &mut State, device: Device, mut irp: Irp) -> Disposition {
            let minor = irp.minor_function();
            state.seen.push(minor);
            match minor {
                0x00 => {
                    let status = irp.forward_and_wait(device.lower());
                    Disposition::Keep(irp.complete(status, 0))
                }
                IRP_MN_REMOVE_DEVICE => {
                    kernel(|k| k.calls.push("REMOVE passed down"));
                    Disposition::Delete(irp.succeed_and_pass_down(device.lower()))
                }
                _ => Disposition::Keep(irp.pass_down(device.lower())),
            }
        }
    }

    struct Loaded {
        _driver: Box<DRIVER_OBJECT>,
        _extension: Box<DRIVER_EXTENSION>,
        driver_ptr: *mut DRIVER_OBJECT,
        fdo: *mut DEVICE_OBJECT,
    }

    impl Loaded {
        fn dispatch(&self, major: usize, irp: *mut IRP) -> NtStatus {
            // SAFETY: the driver object is the test's and DriverEntry filled the table.
            let routine = unsafe { (*self.driver_ptr).MajorFunction[major] }.expect("dispatch set");
            // SAFETY: called as the I/O manager would, with the FDO and an IRP the test owns.
            unsafe { routine(self.fdo, irp) }
        }
    }

    fn load_and_add() -> Loaded {
        reset(LowerBehaviour::Complete(STATUS_SUCCESS));
        let mut extension: Box<DRIVER_EXTENSION> = Box::default();
        let mut driver: Box<DRIVER_OBJECT> = Box::default();
        driver.DriverExtension = &mut *extension;
        let driver_ptr: *mut DRIVER_OBJECT = &mut *driver;
        // SAFETY: the test's driver object, as the I/O manager would pass it.
        let status = unsafe { driver_entry::<TestDriver>(driver_ptr, ptr::null()) };
        assert_eq!(status, STATUS_SUCCESS);
        assert!(driver.DriverUnload.is_some());
        let add = extension.AddDevice.expect("AddDevice set");
        let pdo = NonNull::<DEVICE_OBJECT>::dangling().as_ptr();
        // SAFETY: called as the PnP manager would.
        assert_eq!(unsafe { add(driver_ptr, pdo) }, STATUS_SUCCESS);
        let fdo = kernel(|k| {
            let (object, _) = k.devices.last_mut().expect("a device was created");
            &mut **object as *mut DEVICE_OBJECT
        });
        Loaded {
            _driver: driver,
            _extension: extension,
            driver_ptr,
            fdo,
        }
    }

    #[test]
    fn add_device_creates_initialises_and_publishes_the_fdo() {
        let loaded = load_and_add();
        // SAFETY: the double's device object.
        let fdo = unsafe { &*loaded.fdo };
        assert_eq!(fdo.DeviceType, 0x2A);
        assert_eq!(fdo.Characteristics, FILE_DEVICE_SECURE_OPEN);
        assert_eq!(fdo.Flags & DO_DEVICE_INITIALIZING, 0, "still initialising");
        assert_ne!(fdo.Flags & DO_POWER_PAGABLE, 0);
        assert_eq!(remove_lock_state(), [Some(0)]);
        kernel(|k| {
            assert_eq!(k.calls, ["IoCreateDevice", "IoAttachDeviceToDeviceStack"]);
            assert!(k.violations.is_empty(), "{:?}", k.violations);
        });
    }

    #[test]
    fn start_power_wmi_and_remove_keep_the_rules() {
        let loaded = load_and_add();
        let mut start = TestIrp::new(2, 0x1B, 0x00);
        assert_eq!(loaded.dispatch(IRP_MJ_PNP, start.irp()), STATUS_SUCCESS);
        let mut power = TestIrp::new(2, 0x16, 0x02);
        assert_eq!(loaded.dispatch(IRP_MJ_POWER, power.irp()), STATUS_SUCCESS);
        let mut wmi = TestIrp::new(2, 0x17, 0x0B);
        assert_eq!(
            loaded.dispatch(IRP_MJ_SYSTEM_CONTROL, wmi.irp()),
            STATUS_SUCCESS
        );
        assert_eq!(
            remove_lock_state(),
            [Some(0)],
            "every dispatch released its hold"
        );
        let mut remove = TestIrp::new(2, 0x1B, IRP_MN_REMOVE_DEVICE);
        assert_eq!(loaded.dispatch(IRP_MJ_PNP, remove.irp()), STATUS_SUCCESS);
        assert_eq!(remove_lock_state(), [None], "REMOVE released and waited");
        kernel(|k| {
            assert_eq!(
                k.calls[2..],
                [
                    "IoReleaseRemoveLockAndWaitEx",
                    "REMOVE passed down",
                    "state dropped",
                    "IoDetachDevice",
                    "IoDeleteDevice",
                ]
            );
            assert_eq!(
                k.lower_saw,
                [(0x1B, 0x00), (0x16, 0x02), (0x17, 0x0B), (0x1B, 0x02)]
            );
            assert_eq!(k.completed, 4, "every IRP completed once");
            assert_eq!((k.power_next_started, k.po_calls), (1, 1));
            assert!(k.violations.is_empty(), "{:?}", k.violations);
        });
    }

    #[test]
    fn an_irp_after_remove_began_is_refused_without_reaching_the_driver() {
        let loaded = load_and_add();
        // REMOVE has begun: the lock's holders were waited for.
        let lock = kernel(|k| k.remove_locks[0].0) as *mut c_void;
        IoAcquireRemoveLockEx(lock, ptr::null(), ptr::null(), 0, 0);
        IoReleaseRemoveLockAndWaitEx(lock, ptr::null(), 0);
        let mut power = TestIrp::new(2, 0x16, 0x02);
        let status = loaded.dispatch(IRP_MJ_POWER, power.irp());
        assert_eq!(status, STATUS_NO_SUCH_DEVICE);
        kernel(|k| {
            assert!(k.lower_saw.is_empty(), "the IRP went down");
            assert_eq!(k.completed, 1);
            assert_eq!(k.final_status, Some(STATUS_NO_SUCH_DEVICE));
            assert_eq!(k.power_next_started, 1, "the next power IRP may start");
            assert!(k.violations.is_empty(), "{:?}", k.violations);
        });
    }
}
