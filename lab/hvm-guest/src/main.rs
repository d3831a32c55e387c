//! The HVM test kernel's entry: a multiboot image (see `platform`) that runs the steps of
//! [`hvm_guest::steps`] on Xen and reports them on port 0xe9. Built for `x86_64-unknown-none`;
//! on any other target this binary only says so.

#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(target_os = "none")]
mod platform;

#[cfg(target_os = "none")]
mod kernel {
    use core::fmt::Write;

    use hvm_guest::report::Reporter;
    use hvm_guest::steps;

    use crate::platform::{halt_forever, DebugPort, MappedPage, Ports, XenHvm};

    /// Called by the entry code on the boot stack, in 64-bit mode, interrupts off.
    #[no_mangle]
    extern "C" fn kernel_main() -> ! {
        let mut r = Reporter::new(DebugPort);
        r.line(format_args!("HVM-GUEST start (64-bit, identity map 4 GiB)"));
        let Some((bar1, len)) = steps::find_window(&Ports, &mut r) else {
            for name in &steps::STEPS[1..] {
                r.fail(name, format_args!("no platform device"));
            }
            r.done();
            halt_forever(1);
        };
        let hv = XenHvm::new(bar1, len);
        steps::run_xen(&hv, MappedPage::new, &mut r);
        halt_forever(if r.failed() == 0 { 0 } else { 1 });
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        let _ = writeln!(DebugPort, "PANIC {info}");
        halt_forever(3)
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("hvm-guest is a guest kernel: build it with --target x86_64-unknown-none");
    std::process::exit(2);
}
