//! Reading the driver's parameters from `<service key>\Parameters` (PASSIVE_LEVEL).

use core::mem::size_of;

use windows_sys::Wdk::Foundation::OBJECT_ATTRIBUTES;
use windows_sys::Win32::Foundation::{HANDLE, UNICODE_STRING};

use crate::registry::{parse_partial_information, DwordParameter, RawValue, ValueError};
use crate::status::{nt_success, NtStatus, STATUS_OBJECT_NAME_NOT_FOUND};
use crate::sys;

/// `KEY_READ`.
const KEY_READ: u32 = 0x20019;
/// `OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE`.
const OBJ_ATTRIBUTES: u32 = 0x40 | 0x200;
/// `KeyValuePartialInformation`.
const KEY_VALUE_PARTIAL_INFORMATION: i32 = 2;
/// UTF-16 units of the longest key path accepted.
const MAX_PATH_UNITS: usize = 256;
const SUFFIX: &str = "\\Parameters";

/// Why the `Parameters` key could not be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// The service path is longer than the driver accepts.
    PathTooLong,
    /// `ZwOpenKey` failed (for example the key does not exist).
    Status(NtStatus),
}

/// An open `Parameters` key; closed on drop.
#[derive(Debug)]
pub struct ParametersKey {
    handle: HANDLE,
}

impl ParametersKey {
    /// Opens `<service>\Parameters`, where `service` is the registry path `DriverEntry` got.
    ///
    /// # Safety
    /// `service` is a valid counted string (the `RegistryPath` argument of `DriverEntry`).
    pub unsafe fn open(service: *const UNICODE_STRING) -> Result<Self, OpenError> {
        // SAFETY: the caller guarantees a valid string.
        let service = unsafe { &*service };
        let units = usize::from(service.Length) / 2;
        let mut path = [0u16; MAX_PATH_UNITS];
        if units + SUFFIX.len() > path.len() {
            return Err(OpenError::PathTooLong);
        }
        // SAFETY: a counted string's buffer holds `Length` bytes.
        let existing = unsafe { core::slice::from_raw_parts(service.Buffer, units) };
        path[..units].copy_from_slice(existing);
        for (slot, unit) in path[units..].iter_mut().zip(SUFFIX.encode_utf16()) {
            *slot = unit;
        }
        let total = units + SUFFIX.len();
        let name = UNICODE_STRING {
            Length: (total * 2) as u16,
            MaximumLength: (path.len() * 2) as u16,
            Buffer: path.as_mut_ptr(),
        };
        let attributes = OBJECT_ATTRIBUTES {
            Length: size_of::<OBJECT_ATTRIBUTES>() as u32,
            RootDirectory: core::ptr::null_mut(),
            ObjectName: &name,
            Attributes: OBJ_ATTRIBUTES,
            SecurityDescriptor: core::ptr::null(),
            SecurityQualityOfService: core::ptr::null(),
        };
        let mut handle: HANDLE = core::ptr::null_mut();
        // SAFETY:
        // 1. `attributes` names a valid counted string that outlives the call; kernel handle.
        // 2. PASSIVE_LEVEL (the module's contract).
        let status = unsafe { sys::ZwOpenKey(&mut handle, KEY_READ, &attributes) };
        if nt_success(status) {
            Ok(Self { handle })
        } else {
            Err(OpenError::Status(status))
        }
    }

    /// Queries value `name` (ASCII) into `buffer` and parses it.
    pub fn query<'b>(
        &self,
        name: &str,
        buffer: &'b mut [u8; 64],
    ) -> Result<RawValue<'b>, ValueError> {
        let mut units = [0u16; 64];
        if name.len() > units.len() || !name.is_ascii() {
            return Err(ValueError::Missing);
        }
        for (slot, byte) in units.iter_mut().zip(name.bytes()) {
            *slot = u16::from(byte);
        }
        let value_name = UNICODE_STRING {
            Length: (name.len() * 2) as u16,
            MaximumLength: (units.len() * 2) as u16,
            Buffer: units.as_mut_ptr(),
        };
        let mut returned = 0u32;
        // SAFETY:
        // 1. The handle is an open key; the name is a valid counted string.
        // 2. The output buffer is `buffer.len()` writable bytes; `returned` receives the size.
        let status = unsafe {
            sys::ZwQueryValueKey(
                self.handle,
                &value_name,
                KEY_VALUE_PARTIAL_INFORMATION,
                buffer.as_mut_ptr().cast(),
                buffer.len() as u32,
                &mut returned,
            )
        };
        if status == STATUS_OBJECT_NAME_NOT_FOUND {
            return Err(ValueError::Missing);
        }
        if !nt_success(status) {
            return Err(ValueError::Unreadable(status));
        }
        parse_partial_information(buffer.as_slice(), returned as usize)
    }

    /// The parameter's value, or its default and the reason the stored value was not used.
    pub fn read_dword(&self, parameter: &DwordParameter) -> (u32, Option<ValueError>) {
        let mut buffer = [0u8; 64];
        parameter.value_or_default(self.query(parameter.name, &mut buffer))
    }
}

impl Drop for ParametersKey {
    fn drop(&mut self) {
        // SAFETY: the handle was opened by `ZwOpenKey` and is closed once.
        unsafe { sys::ZwClose(self.handle) };
    }
}
