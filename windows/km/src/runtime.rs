//! What every driver image needs from its runtime: the panic handler and `_fltused`.
//!
//! The memory intrinsics (`memcpy`, `memmove`, `memset`, `memcmp`) are compiled into the image
//! from `compiler_builtins` (the driver lane builds `core` with the `compiler-builtins-mem`
//! feature), so no driver imports them.

use core::panic::PanicInfo;

use crate::panic_info::{bugcheck_parameters, PANIC_BUGCHECK_CODE};

// The MSVC toolchain references `_fltused` from any object that uses floating point; the kernel
// has no CRT to define it. It is defined in assembly rather than as a `#[no_mangle]` static so
// the image does not export it.
core::arch::global_asm!(
    ".section .rdata,\"dr\"",
    ".globl _fltused",
    ".p2align 2",
    "_fltused:",
    ".long 0",
    ".text",
);

#[cfg(not(test))]
#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    let (file, line, column) = info
        .location()
        .map_or(("<unknown>", 0, 0), |l| (l.file(), l.line(), l.column()));
    crate::error!("panic at {file}:{line}:{column}: {}", info.message());
    let [p1, p2, p3, p4] = bugcheck_parameters(file, line, column);
    // SAFETY:
    // 1. `KeBugCheckEx` may be called at any IRQL and does not return.
    // 2. The parameters are plain values; parameter 3 points at the file name, which is a
    //    `'static` string in the image, so a debugger can read it from the crash dump.
    unsafe { crate::sys::KeBugCheckEx(PANIC_BUGCHECK_CODE, p1, p2, p3, p4) }
}
