//! The Windows calls the program makes (kernel32, shell32, newdev), declared with raw-dylib,
//! and the small safe layer over them. Every `unsafe` of the program is in this file.

use core::ffi::c_void;

use crate::text::{WideBuf, WIDE_CAPACITY};

const STD_OUTPUT_HANDLE: u32 = -11i32 as u32;
const FORMAT_MESSAGE_FROM_SYSTEM: u32 = 0x1000;
const FORMAT_MESSAGE_IGNORE_INSERTS: u32 = 0x200;
/// `ERROR_PROC_NOT_FOUND`: what is reported when this Windows has no `DiUninstallDriverW`.
const ERROR_PROC_NOT_FOUND: u32 = 127;

#[link(name = "kernel32.dll", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "system" {
    fn GetCommandLineW() -> *const u16;
    fn GetStdHandle(which: u32) -> isize;
    fn WriteFile(
        file: isize,
        buf: *const u8,
        len: u32,
        written: *mut u32,
        overlapped: *mut c_void,
    ) -> i32;
    fn GetLastError() -> u32;
    fn ExitProcess(code: u32) -> !;
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

// Frames over a page (the fixed buffers) call `__chkstk`; ntdll exports it on x64. `_fltused` is
// the symbol MSVC code emits when it uses floating point; without a C runtime we define it.
#[link(name = "ntdll.dll", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "C" {
    /// The stack probe (nonstandard convention: called only by compiler-generated code).
    pub fn __chkstk();
}

/// Defined for the linker; never read.
#[unsafe(no_mangle)]
pub static _fltused: i32 = 0;

#[link(name = "shell32.dll", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "system" {
    fn CommandLineToArgvW(cmdline: *const u16, argc: *mut i32) -> *mut *mut u16;
}

#[link(name = "newdev.dll", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "system" {
    fn DiInstallDriverW(hwnd: isize, inf: *const u16, flags: u32, reboot: *mut i32) -> i32;
}

/// `DiUninstallDriverW` (newdev.dll, Windows 10 1703 and later).
type DiUninstallDriverW =
    unsafe extern "system" fn(hwnd: isize, inf: *const u16, flags: u32, reboot: *mut i32) -> i32;

/// Ends the process.
pub fn exit(code: u32) -> ! {
    // SAFETY: ExitProcess takes any exit code and does not return.
    unsafe { ExitProcess(code) }
}

/// The calling thread's last error.
pub fn last_error() -> u32 {
    // SAFETY: GetLastError has no preconditions.
    unsafe { GetLastError() }
}

/// Writes `bytes` to standard output; errors are ignored (there is nowhere to report them).
pub fn write_stdout(bytes: &[u8]) {
    // SAFETY: GetStdHandle has no preconditions.
    let handle = unsafe { GetStdHandle(STD_OUTPUT_HANDLE) };
    let mut written = 0u32;
    // SAFETY:
    // 1. `bytes` is valid for reads of its length (at most 1024, fits u32);
    // 2. `written` is a valid out pointer; no OVERLAPPED is passed.
    unsafe {
        WriteFile(
            handle,
            bytes.as_ptr(),
            bytes.len() as u32,
            &mut written,
            core::ptr::null_mut(),
        )
    };
}

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

/// The program's arguments, as `CommandLineToArgvW` splits them.
pub struct Args {
    argv: *mut *mut u16,
    argc: usize,
}

impl Args {
    /// Splits the command line; `None` if Windows cannot.
    pub fn from_command_line() -> Option<Self> {
        let mut argc = 0i32;
        // SAFETY: GetCommandLineW has no preconditions; its string lives as long as the process.
        let cmdline = unsafe { GetCommandLineW() };
        // SAFETY:
        // 1. `cmdline` is the process's NUL-terminated command line;
        // 2. `argc` is a valid out pointer.
        let argv = unsafe { CommandLineToArgvW(cmdline, &mut argc) };
        (!argv.is_null() && argc >= 0).then_some(Self {
            argv,
            argc: argc as usize,
        })
    }

    /// How many arguments, the program's name included.
    pub fn count(&self) -> usize {
        self.argc
    }

    /// Argument `index`, copied (cut at the buffer's capacity).
    pub fn get(&self, index: usize) -> Option<WideBuf> {
        if index >= self.argc {
            return None;
        }
        // SAFETY: `index < argc`, and CommandLineToArgvW returned `argc` valid pointers.
        let arg = unsafe { *self.argv.add(index) };
        let mut len = 0;
        // SAFETY: each argument is NUL-terminated; reading stops at the NUL or at the capacity.
        while len < WIDE_CAPACITY && unsafe { *arg.add(len) } != 0 {
            len += 1;
        }
        // SAFETY: the `len` units before the NUL were just read.
        Some(WideBuf::from_units(unsafe {
            core::slice::from_raw_parts(arg, len)
        }))
    }
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
    let address = unsafe { GetProcAddress(module, b"DiUninstallDriverW\0".as_ptr()) };
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
