//! The runtime of the suite's small Windows console programs (no C runtime): the process's
//! command line, standard output, the last error and exit, and the symbols MSVC-targeted code
//! expects (`__chkstk`, `_fltused`). Shared by `windows/devinst` and `installer/drvsetup`, which
//! include this file as a module next to `text.rs`; its `unsafe` is confined here.

use core::ffi::c_void;

use crate::text::WideBuf;

const STD_OUTPUT_HANDLE: u32 = -11i32 as u32;

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
        // SAFETY: `index < argc`: the slot is inside the array CommandLineToArgvW returned.
        let slot = unsafe { self.argv.add(index) };
        // SAFETY: the slot holds one of the `argc` valid argument pointers.
        let arg = unsafe { *slot };
        let mut len = 0;
        while len < crate::text::WIDE_CAPACITY {
            // SAFETY: the argument is NUL-terminated and none of its first `len` units was NUL,
            // so unit `len` is still inside it.
            let unit = unsafe { arg.add(len) };
            // SAFETY: as above, the unit is readable.
            if unsafe { *unit } == 0 {
                break;
            }
            len += 1;
        }
        // SAFETY: the `len` units before the NUL were just read.
        Some(WideBuf::from_units(unsafe {
            core::slice::from_raw_parts(arg, len)
        }))
    }
}
