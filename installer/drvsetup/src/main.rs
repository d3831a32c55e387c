//! `drvsetup`: installs and removes the suite's driver packages; the MSI runs it as deferred
//! custom actions (`installer/xen-pv-rs.wxs`).
//!
//! ```text
//! drvsetup install <full INF path>...     DiInstallDriverW: add each package to the driver store
//!                                         and install it on every matching device present
//! drvsetup uninstall <full INF path>...   DiUninstallDriverW: remove each package from the
//!                                         devices and the driver store
//! ```
//!
//! Every package is attempted; the exit status is 0 when all succeeded, otherwise 1, and each
//! failure is printed with the call, the INF, the Windows error code and its system message.
//! After installing, the package's published name in the driver store (`oemNN.inf`, found or
//! staged by `SetupCopyOEMInfW`) is printed. Uninstalling a package that is not staged succeeds
//! with a message. `DiUninstallDriverW` (Windows 10 1703 and later) is looked up at run time;
//! where it is missing the staged package is removed with `SetupUninstallOEMInfW`. A required
//! reboot is printed (`reboot required`), not turned into a failure. The program has no C
//! runtime: its entry is `mainCRTStartup`, its imports are raw-dylib.
#![no_std]
#![no_main]

#[path = "../../../windows/devinst/src/console.rs"]
mod console;
mod sys;
// The fixed-capacity strings and console output of `devinst`, shared; some of it is unused here.
#[allow(dead_code)]
#[path = "../../../windows/devinst/src/text.rs"]
mod text;

use text::{Out, WideBuf};

/// The program's entry point (no C runtime runs before it).
#[unsafe(no_mangle)]
pub extern "system" fn mainCRTStartup() -> ! {
    sys::exit(run())
}

fn usage() -> u32 {
    let mut out = Out::new();
    out.str("usage: drvsetup install <full INF path>...\n")
        .str("       drvsetup uninstall <full INF path>...\n");
    out.flush();
    2
}

/// What to do with each INF.
#[derive(Clone, Copy)]
enum Action {
    Install,
    Uninstall,
}

fn run() -> u32 {
    let Some(args) = sys::Args::from_command_line() else {
        report_failure("CommandLineToArgvW", &WideBuf::default(), sys::last_error());
        return 1;
    };
    let command = args.get(1).unwrap_or_default();
    let action = if text::eq_ascii(&command, "install") {
        Action::Install
    } else if text::eq_ascii(&command, "uninstall") {
        Action::Uninstall
    } else {
        return usage();
    };
    if args.count() < 3 {
        return usage();
    }
    let mut failures = 0u32;
    for index in 2..args.count() {
        let inf = args.get(index).unwrap_or_default();
        let result = match action {
            Action::Install => install(&inf),
            Action::Uninstall => uninstall(&inf),
        };
        if let Err((call, code)) = result {
            report_failure(call, &inf, code);
            failures += 1;
        }
    }
    u32::from(failures != 0)
}

/// A failed call and its error code.
type Failure = (&'static str, u32);

/// DiInstallDriverW, then the published name of the staged package (SetupCopyOEMInfW finds the
/// identical staged copy; it stages it where DiInstallDriverW did not).
fn install(inf: &WideBuf) -> Result<(), Failure> {
    let reboot = sys::install_driver(inf).map_err(|code| ("DiInstallDriverW", code))?;
    let staged = sys::staged_inf(inf, false).map_err(|code| ("SetupCopyOEMInfW", code))?;
    let mut out = Out::new();
    out.str("drvsetup: installed ")
        .wide(inf.as_slice())
        .str(" as ")
        .wide(staged.as_slice())
        .str(if reboot { " (reboot required)\n" } else { "\n" });
    out.flush();
    Ok(())
}

/// Finds the staged package; removes it with DiUninstallDriverW, or, where Windows has no
/// DiUninstallDriverW, with SetupUninstallOEMInfW. A package that is not staged is reported
/// and counts as removed.
fn uninstall(inf: &WideBuf) -> Result<(), Failure> {
    let Ok(staged) = sys::staged_inf(inf, true) else {
        let mut out = Out::new();
        out.str("drvsetup: ")
            .wide(inf.as_slice())
            .str(" is not in the driver store; nothing to remove\n");
        out.flush();
        return Ok(());
    };
    let mut out = Out::new();
    match sys::uninstall_driver(inf) {
        Ok(reboot) => {
            out.str("drvsetup: uninstalled ")
                .wide(inf.as_slice())
                .str(" (")
                .wide(staged.as_slice())
                .str(if reboot {
                    ", reboot required)\n"
                } else {
                    ")\n"
                });
        }
        Err(sys::ERROR_PROC_NOT_FOUND) => {
            sys::remove_staged_inf(&staged).map_err(|code| ("SetupUninstallOEMInfW", code))?;
            out.str("drvsetup: removed ")
                .wide(staged.as_slice())
                .str(" from the driver store (no DiUninstallDriverW on this system)\n");
        }
        Err(code) => return Err(("DiUninstallDriverW", code)),
    }
    out.flush();
    Ok(())
}

/// Prints `drvsetup: <call>(<inf>) failed, error 0x...: <system message>`.
fn report_failure(call: &str, inf: &WideBuf, code: u32) {
    let mut out = Out::new();
    out.str("drvsetup: ")
        .str(call)
        .str("(")
        .wide(inf.as_slice())
        .str(") failed, error ")
        .hex(code);
    let message = sys::error_message(code);
    if !message.as_slice().is_empty() {
        out.str(": ").wide(trim_line_end(message.as_slice()));
    }
    out.str("\n");
    out.flush();
}

/// The message without its trailing CR/LF and spaces.
fn trim_line_end(units: &[u16]) -> &[u16] {
    let mut end = units.len();
    while end > 0 && matches!(units[end - 1], 0x0d | 0x0a | 0x20) {
        end -= 1;
    }
    &units[..end]
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    let mut out = Out::new();
    out.str("drvsetup: internal error\n");
    out.flush();
    sys::exit(3)
}
