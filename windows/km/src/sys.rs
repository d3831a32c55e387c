//! Kernel functions declared here rather than taken from `windows-sys`.
//!
//! `windows-sys` generates its imports from Microsoft's metadata, which lists `DbgPrintEx` and the
//! `Zw*` registry functions under `ntdll.dll` (their user-mode home); a driver must import them
//! from `ntoskrnl.exe`. `KeAcquireSpinLockRaiseToDpc` and `KeReleaseSpinLock` are missing from it,
//! and it declares `KeBugCheckEx` as returning, where the kernel's never returns.
//! Every declaration in this file is an `ntoskrnl.exe` export on x64 Windows 10 and later; the
//! image check of `cargo xtask drivers` reads the `#[link(name = ...)]` blocks of this file as part
//! of the list of names a driver may import.
#![allow(non_snake_case, missing_docs)]

use core::ffi::c_void;

use windows_sys::Wdk::Foundation::OBJECT_ATTRIBUTES;
use windows_sys::Win32::Foundation::{HANDLE, UNICODE_STRING};

#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "C" {
    pub fn DbgPrintEx(component_id: u32, level: u32, format: *const u8, ...) -> u32;
}

#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "system" {
    pub fn KeAcquireSpinLockRaiseToDpc(spin_lock: *mut usize) -> u8;
    pub fn KeReleaseSpinLock(spin_lock: *mut usize, new_irql: u8);
    pub fn KeBugCheckEx(code: u32, p1: usize, p2: usize, p3: usize, p4: usize) -> !;
    pub fn ZwOpenKey(
        key_handle: *mut HANDLE,
        desired_access: u32,
        object_attributes: *const OBJECT_ATTRIBUTES,
    ) -> i32;
    pub fn ZwQueryValueKey(
        key_handle: HANDLE,
        value_name: *const UNICODE_STRING,
        key_value_information_class: i32,
        key_value_information: *mut c_void,
        length: u32,
        result_length: *mut u32,
    ) -> i32;
    pub fn ZwClose(handle: HANDLE) -> i32;
}

/// Prints `line` (NUL-terminated) to the kernel debugger through `DbgPrintEx(component, level,
/// "%s", line)`. A line without a terminating NUL is not printed.
pub fn debug_print(component: u32, level: u32, line: &[u8]) {
    if line.last() != Some(&0) {
        return;
    }
    // SAFETY:
    // 1. The format is a NUL-terminated static string with exactly one `%s` conversion.
    // 2. The one variadic argument is a pointer to bytes that end with a NUL (checked above) and
    //    outlive the call.
    // 3. `DbgPrintEx` may be called at any IRQL with a non-Unicode `%s` format.
    unsafe {
        DbgPrintEx(component, level, c"%s".as_ptr().cast(), line.as_ptr());
    }
}

/// A NUL-terminated UTF-16 copy of an ASCII name, for [`system_routine`].
pub const fn utf16_z<const N: usize>(ascii: &[u8; N]) -> [u16; N] {
    let mut out = [0u16; N];
    let mut i = 0;
    while i < N {
        out[i] = ascii[i] as u16;
        i += 1;
    }
    out
}

/// The address of kernel export `name` (NUL-terminated UTF-16, from [`utf16_z`]), or 0 when this
/// kernel lacks it (`MmGetSystemRoutineAddress`). PASSIVE_LEVEL.
pub fn system_routine(name: &[u16]) -> usize {
    let Some(units) = name.len().checked_sub(1).filter(|&n| name[n] == 0) else {
        return 0;
    };
    let name = UNICODE_STRING {
        Length: (units * 2) as u16,
        MaximumLength: (name.len() * 2) as u16,
        Buffer: name.as_ptr().cast_mut(),
    };
    // SAFETY:
    // 1. `name` is a valid counted UTF-16 string that outlives the call.
    // 2. `MmGetSystemRoutineAddress` is called at PASSIVE_LEVEL (this function's contract).
    let address =
        unsafe { windows_sys::Wdk::System::SystemServices::MmGetSystemRoutineAddress(&name) };
    address as usize
}
