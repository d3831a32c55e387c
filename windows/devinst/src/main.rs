//! `devinst`: creates and removes root-enumerated devices through setupapi, the way Device
//! Manager's "Add legacy hardware" and `devcon install` do, so a driver package can be installed
//! from its INF on a Windows (or Wine) system that has no device for it.
//!
//! ```text
//! devinst install <full INF path> <hardware ID>   create ROOT\<class>\NNNN with this hardware ID,
//!                                                 then UpdateDriverForPlugAndPlayDevices
//! devinst remove <hardware ID>                    DIF_REMOVE every root device with this ID
//! devinst list                                    print every root device and its hardware IDs
//! ```
//!
//! Exit status 0 on success; otherwise 1 with a line naming the failed call and its error code.
//! The program has no C runtime: its entry is `mainCRTStartup`, its imports are raw-dylib.
#![no_std]
#![no_main]

mod console;
mod sys;
mod text;

use text::{Out, WideBuf};

/// The program's entry point (no C runtime runs before it).
#[unsafe(no_mangle)]
pub extern "system" fn mainCRTStartup() -> ! {
    let code = match run() {
        Ok(()) => 0,
        Err(failure) => {
            let mut out = Out::new();
            out.str("devinst: ")
                .str(failure.call)
                .str(" failed, error ")
                .hex(failure.code)
                .str("\n");
            out.flush();
            1
        }
    };
    sys::exit(code)
}

/// A failed Windows call: its name and `GetLastError`.
struct Failure {
    call: &'static str,
    code: u32,
}

fn fail(call: &'static str) -> Failure {
    Failure {
        call,
        code: sys::last_error(),
    }
}

fn usage() -> Failure {
    let mut out = Out::new();
    out.str("usage: devinst install <full INF path> <hardware ID>\n")
        .str("       devinst remove <hardware ID>\n")
        .str("       devinst list\n");
    out.flush();
    Failure {
        call: "command line",
        code: 87, // ERROR_INVALID_PARAMETER
    }
}

fn run() -> Result<(), Failure> {
    let args = sys::Args::from_command_line().ok_or_else(|| fail("CommandLineToArgvW"))?;
    let command = args.get(1).unwrap_or_default();
    match (args.count(), Some(&command)) {
        (4, Some(cmd)) if text::eq_ascii(cmd, "install") => install(
            args.get(2).unwrap_or_default(),
            args.get(3).unwrap_or_default(),
        ),
        (3, Some(cmd)) if text::eq_ascii(cmd, "remove") => remove(args.get(2).unwrap_or_default()),
        (2, Some(cmd)) if text::eq_ascii(cmd, "list") => list(),
        _ => Err(usage()),
    }
}

/// Creates a root-enumerated device of the INF's class with `hardware_id`, then installs the
/// best driver for that ID from `inf`.
fn install(inf: WideBuf, hardware_id: WideBuf) -> Result<(), Failure> {
    let (class_guid, class_name) =
        sys::inf_class(&inf).ok_or_else(|| fail("SetupDiGetINFClassW"))?;
    let set =
        sys::DevInfoSet::create(&class_guid).ok_or_else(|| fail("SetupDiCreateDeviceInfoList"))?;
    let mut device = set
        .create_root_device(&class_name, &class_guid)
        .ok_or_else(|| fail("SetupDiCreateDeviceInfoW"))?;
    // A REG_MULTI_SZ: the ID, its terminator, and the list's terminator.
    let mut ids = hardware_id.clone();
    ids.push(0);
    set.set_property(&mut device, sys::SPDRP_HARDWAREID, ids.as_bytes_with_nul())
        .then_some(())
        .ok_or_else(|| fail("SetupDiSetDeviceRegistryPropertyW(HARDWAREID)"))?;
    set.call_class_installer(sys::DIF_REGISTERDEVICE, &mut device)
        .then_some(())
        .ok_or_else(|| fail("SetupDiCallClassInstaller(DIF_REGISTERDEVICE)"))?;
    let mut out = Out::new();
    out.str("devinst: registered ")
        .wide(set.instance_id(&mut device).as_slice())
        .str(" with hardware ID ")
        .wide(hardware_id.as_slice())
        .str("\n");
    out.flush();
    let reboot = sys::update_driver(&hardware_id, &inf)
        .ok_or_else(|| fail("UpdateDriverForPlugAndPlayDevicesW"))?;
    let mut out = Out::new();
    out.str("devinst: installed ")
        .wide(inf.as_slice())
        .str(if reboot {
            " (reboot requested)\n"
        } else {
            "\n"
        });
    out.flush();
    Ok(())
}

/// Removes (DIF_REMOVE) every root-enumerated device that lists `hardware_id`.
fn remove(hardware_id: WideBuf) -> Result<(), Failure> {
    let set = sys::DevInfoSet::root_devices().ok_or_else(|| fail("SetupDiGetClassDevsW"))?;
    let mut removed = 0u32;
    let mut index = 0;
    while let Some(mut device) = set.device(index) {
        index += 1;
        let ids = set.hardware_ids(&mut device);
        if !text::multi_sz_contains(ids.as_slice(), hardware_id.as_slice()) {
            continue;
        }
        let id = set.instance_id(&mut device);
        set.call_class_installer(sys::DIF_REMOVE, &mut device)
            .then_some(())
            .ok_or_else(|| fail("SetupDiCallClassInstaller(DIF_REMOVE)"))?;
        let mut out = Out::new();
        out.str("devinst: removed ").wide(id.as_slice()).str("\n");
        out.flush();
        removed += 1;
    }
    if removed == 0 {
        return Err(Failure {
            call: "finding a root device with that hardware ID",
            code: 0xE000_020B, // ERROR_NO_SUCH_DEVINST
        });
    }
    Ok(())
}

/// Prints every root-enumerated device with its hardware IDs.
fn list() -> Result<(), Failure> {
    let set = sys::DevInfoSet::root_devices().ok_or_else(|| fail("SetupDiGetClassDevsW"))?;
    let mut index = 0;
    while let Some(mut device) = set.device(index) {
        index += 1;
        let mut out = Out::new();
        out.wide(set.instance_id(&mut device).as_slice()).str(":");
        let ids = set.hardware_ids(&mut device);
        for id in ids.as_slice().split(|&c| c == 0).filter(|s| !s.is_empty()) {
            out.str(" ").wide(id);
        }
        out.str("\n");
        out.flush();
    }
    Ok(())
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    let mut out = Out::new();
    out.str("devinst: internal error\n");
    out.flush();
    sys::exit(3)
}
