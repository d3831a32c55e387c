//! The Windows calls the program makes for its work (kernel32's library loading and messages,
//! setupapi, newdev), declared with raw-dylib, and the small safe layer over them; the console
//! runtime (command line, output, exit) is devinst's `console.rs`. Every `unsafe` of the program
//! is in these two files.

use core::ffi::c_void;

pub use crate::console::{exit, last_error, write_stdout, Args};
use crate::text::{WideBuf, WIDE_CAPACITY};

const FORMAT_MESSAGE_FROM_SYSTEM: u32 = 0x1000;
const FORMAT_MESSAGE_IGNORE_INSERTS: u32 = 0x200;
/// `ERROR_PROC_NOT_FOUND`: what is reported when this Windows has no `DiUninstallDriverW`.
pub const ERROR_PROC_NOT_FOUND: u32 = 127;

#[link(name = "kernel32.dll", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "system" {
    fn LoadLibraryW(name: *const u16) -> isize;
    fn GetProcAddress(module: isize, name: *const u8) -> *const c_void;
    fn FormatMessageW(
        flags: u32,
        source: *const c_void,
        message: u32,
        language: u32,
        buffer: *mut u16,
        size: u32,
        arguments: *const c_void,
    ) -> u32;
}

#[link(name = "setupapi.dll", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "system" {
    fn SetupCopyOEMInfW(
        source: *const u16,
        media_location: *const u16,
        media_type: u32,
        style: u32,
        dest_name: *mut u16,
        dest_size: u32,
        required: *mut u32,
        component: *mut *mut u16,
    ) -> i32;
    fn SetupUninstallOEMInfW(inf_file_name: *const u16, flags: u32, reserved: *mut c_void) -> i32;
}

/// `SPOST_PATH`: the INF's own folder holds the package's files.
const SPOST_PATH: u32 = 1;
/// `SP_COPY_NOOVERWRITE`: an identical package already staged is reused, not replaced.
const SP_COPY_NOOVERWRITE: u32 = 0x8;
/// `SP_COPY_REPLACEONLY`: only find the package if it is staged, copy nothing.
const SP_COPY_REPLACEONLY: u32 = 0x2;
/// `SUOI_FORCEDELETE`: remove the package even if a device still uses it.
const SUOI_FORCEDELETE: u32 = 0x1;
/// `ERROR_FILE_EXISTS`: what SP_COPY_NOOVERWRITE reports for an already staged package.
const ERROR_FILE_EXISTS: u32 = 80;

#[link(name = "newdev.dll", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "system" {
    fn DiInstallDriverW(hwnd: isize, inf: *const u16, flags: u32, reboot: *mut i32) -> i32;
}

/// `DiUninstallDriverW` (newdev.dll, Windows 10 1703 and later).
type DiUninstallDriverW =
    unsafe extern "system" fn(hwnd: isize, inf: *const u16, flags: u32, reboot: *mut i32) -> i32;

/// The system's message for error `code` (empty when it has none).
pub fn error_message(code: u32) -> WideBuf {
    let mut message = WideBuf::default();
    // SAFETY:
    // 1. FROM_SYSTEM with IGNORE_INSERTS reads no source and no arguments (both null);
    // 2. the buffer holds `WIDE_CAPACITY` units and the size passed leaves room for the NUL.
    let written = unsafe {
        FormatMessageW(
            FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS,
            core::ptr::null(),
            code,
            0,
            message.as_mut_ptr(),
            (WIDE_CAPACITY - 1) as u32,
            core::ptr::null(),
        )
    };
    message.set_len(written as usize);
    message
}

/// `DiInstallDriverW(NULL, inf, 0, &reboot)`: stages the package and installs it on matching
/// devices. `Ok(reboot needed)` or `Err(GetLastError())`.
pub fn install_driver(inf: &WideBuf) -> Result<bool, u32> {
    let mut reboot = 0i32;
    // SAFETY:
    // 1. `inf` is NUL-terminated and outlives the call;
    // 2. `reboot` is a valid out pointer; no window is passed.
    let ok = unsafe { DiInstallDriverW(0, inf.as_ptr(), 0, &mut reboot) };
    if ok == 0 {
        return Err(last_error());
    }
    Ok(reboot != 0)
}

/// `DiUninstallDriverW(NULL, inf, 0, &reboot)`, looked up in newdev.dll at run time.
/// `Ok(reboot needed)` or `Err(error code)`; `ERROR_PROC_NOT_FOUND` when Windows lacks it.
pub fn uninstall_driver(inf: &WideBuf) -> Result<bool, u32> {
    let name: [u16; 11] = [
        b'n' as u16,
        b'e' as u16,
        b'w' as u16,
        b'd' as u16,
        b'e' as u16,
        b'v' as u16,
        b'.' as u16,
        b'd' as u16,
        b'l' as u16,
        b'l' as u16,
        0,
    ];
    // SAFETY: `name` is a NUL-terminated module name.
    let module = unsafe { LoadLibraryW(name.as_ptr()) };
    if module == 0 {
        return Err(last_error());
    }
    // SAFETY: `module` is a loaded module and the name is NUL-terminated ASCII.
    let address = unsafe { GetProcAddress(module, c"DiUninstallDriverW".as_ptr().cast()) };
    if address.is_null() {
        return Err(ERROR_PROC_NOT_FOUND);
    }
    // SAFETY: the export `DiUninstallDriverW` has this signature (newdev.h).
    let uninstall: DiUninstallDriverW = unsafe { core::mem::transmute(address) };
    let mut reboot = 0i32;
    // SAFETY:
    // 1. `inf` is NUL-terminated and outlives the call;
    // 2. `reboot` is a valid out pointer; no window is passed.
    let ok = unsafe { uninstall(0, inf.as_ptr(), 0, &mut reboot) };
    if ok == 0 {
        return Err(last_error());
    }
    Ok(reboot != 0)
}

/// The staged copy of `inf` in `%WINDIR%\\INF` (`oemNN.inf`, the published name): staged now
/// unless `find_only`, in which case only an already staged copy is found.
/// `Err(GetLastError())` on failure.
pub fn staged_inf(inf: &WideBuf, find_only: bool) -> Result<WideBuf, u32> {
    let mut dest = WideBuf::default();
    let mut required = 0u32;
    let style = if find_only {
        SP_COPY_REPLACEONLY
    } else {
        SP_COPY_NOOVERWRITE
    };
    // SAFETY:
    // 1. `inf` is NUL-terminated; no media location is passed;
    // 2. `dest` holds `WIDE_CAPACITY` units, the size passed; `required` is a valid out
    //    pointer; no component pointer is requested.
    let ok = unsafe {
        SetupCopyOEMInfW(
            inf.as_ptr(),
            core::ptr::null(),
            SPOST_PATH,
            style,
            dest.as_mut_ptr(),
            WIDE_CAPACITY as u32,
            &mut required,
            core::ptr::null_mut(),
        )
    };
    let error = if ok == 0 { last_error() } else { 0 };
    if ok == 0 && (error != ERROR_FILE_EXISTS || find_only) {
        return Err(error);
    }
    // The call wrote a NUL-terminated name; the buffer's length is set to it.
    dest.set_len(WIDE_CAPACITY - 1);
    let end = dest
        .as_slice()
        .iter()
        .position(|&u| u == 0)
        .unwrap_or(dest.as_slice().len());
    dest.set_len(end);
    Ok(dest)
}

/// `SetupUninstallOEMInfW(name, SUOI_FORCEDELETE)`: removes a staged package by its published
/// name (the file name part of `staged`).
pub fn remove_staged_inf(staged: &WideBuf) -> Result<(), u32> {
    let all = staged.as_slice();
    let start = all
        .iter()
        .rposition(|&u| u == u16::from(b'\\'))
        .map_or(0, |i| i + 1);
    let name = WideBuf::from_units(&all[start..]);
    // SAFETY: `name` is NUL-terminated; the reserved pointer must be null.
    let ok =
        unsafe { SetupUninstallOEMInfW(name.as_ptr(), SUOI_FORCEDELETE, core::ptr::null_mut()) };
    if ok == 0 {
        return Err(last_error());
    }
    Ok(())
}
