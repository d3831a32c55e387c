//! The sequence of steps the kernel runs, each reported by name: the platform device, Xen's
//! CPUID leaves, the hypercall instruction, `xen_version`, shared info in BAR1, the grant table
//! in BAR1, the xenstore HVM parameters, then the shutdown. A step that fails is reported and
//! the steps that need its result are reported as failed too (naming what they lacked), so the
//! harness always sees every step name.

use core::mem::offset_of;
use xen_abi::sched::{SchedShutdown, SCHEDOP_SHUTDOWN};
use xenpci_core::hypervisor::calls::{invoke, SCHEDOP_SHUTDOWN_CALL};
use xenpci_core::hypervisor::shared_info::{self, SharedMemory};
use xenpci_core::hypervisor::{
    self, gnttab, hvm, version, Arg, Hypervisor, Policy, PortIo, XenErrno,
};
use xenpci_core::unplug;

use xen_abi::event_channel::{EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnClose, EvtchnSend};
use xen_abi::shared_info::{SharedInfo, EVTCHN_2L_WORDS};
use xen_abi::types::DOMID_SELF;
use xen_abi::unplug::{UnplugFlags, PVDRIVERS_PRODUCT_EXPERIMENTAL};
use xenpci_core::evtchn::ops::{EventChannelOps, HypercallEventChannels};
use zerocopy::IntoBytes;

use crate::pci::{self, Bar, PlatformDevice};
use crate::report::{ByteSink, Reporter};

/// Every step name, in order (the harness expects each exactly once).
pub const STEPS: [&str; 10] = [
    "pci-platform",
    "cpuid-detect",
    "hypercall-mechanism",
    "xen-version",
    "shared-info",
    "grant-table",
    "evtchn-2l-loopback",
    "hvm-params",
    "unplug",
    "shutdown",
];

/// `SHUTDOWN_poweroff`.
const SHUTDOWN_POWEROFF: u32 = 0;

/// Scans for the platform device and reports it; returns BAR1 (base, length) when usable.
pub fn find_window<S: ByteSink>(io: &impl PortIo, r: &mut Reporter<S>) -> Option<(u64, u64)> {
    match pci::find_platform_device(io) {
        Some(
            dev @ PlatformDevice {
                bar1: Bar::Memory { base, len, .. },
                ..
            },
        ) => {
            r.pass(
                STEPS[0],
                format_args!(
                    "slot {} rev {} bar0 {:?} bar1 {base:#x}+{len:#x} pin {} line {}",
                    dev.slot, dev.revision, dev.bar0, dev.pin, dev.line
                ),
            );
            Some((u64::from(base), u64::from(len)))
        }
        Some(dev) => {
            r.fail(STEPS[0], format_args!("BAR1 unusable: {:?}", dev.bar1));
            None
        }
        None => {
            r.fail(STEPS[0], format_args!("no 5853:0001 on bus 0"));
            None
        }
    }
}

/// Runs the Xen steps over `hv` (whose window is BAR1), reading the mapped shared-info page
/// through `map_page(gfn)`. Returns whether the domain was asked to power off (the caller
/// halts either way).
pub fn run_xen<H, M, S>(hv: &H, map_page: impl Fn(u64) -> Option<M>, r: &mut Reporter<S>) -> bool
where
    H: Hypervisor,
    M: SharedMemory,
    S: ByteSink,
{
    let init = match hypervisor::init(hv, Policy::Auto) {
        Ok(init) => init,
        Err(e) => {
            r.fail(STEPS[1], format_args!("{e}"));
            for name in &STEPS[2..] {
                r.fail(name, format_args!("no Xen detected"));
            }
            return false;
        }
    };
    let c = &init.cpuid;
    r.pass(
        STEPS[1],
        format_args!(
            "base {:#x} version {} vendor {:?} hvm features {:#x} domid {:?}",
            c.base,
            c.version,
            c.vendor,
            c.hvm_features.bits(),
            c.domid
        ),
    );
    r.pass(STEPS[2], format_args!("{:?}", init.mechanism));

    match version::version(hv) {
        Ok(v) if v.major == c.version.major && v.minor == c.version.minor => {
            r.pass(STEPS[3], format_args!("{v} (= CPUID)"))
        }
        Ok(v) => r.fail(STEPS[3], format_args!("{v} but CPUID says {}", c.version)),
        Err(e) => r.fail(STEPS[3], format_args!("{e}")),
    }

    let page = match shared_info::map(hv) {
        Ok(gfn) => match map_page(gfn) {
            Some(page) => {
                shared_info_contents(&page, gfn, r);
                Some(page)
            }
            None => {
                r.fail(STEPS[4], format_args!("gfn {gfn:#x} not addressable"));
                None
            }
        },
        Err(e) => {
            r.fail(STEPS[4], format_args!("{e}"));
            None
        }
    };

    grant_table(hv, r);

    match page {
        Some(page) => match event_channel_loopback(hv, &page) {
            Ok((local, remote)) => r.pass(
                STEPS[6],
                format_args!("port {remote} -> port {local}: pending bit set by send, both closed"),
            ),
            Err((what, Some(errno))) => r.fail(STEPS[6], format_args!("{what}: {errno}")),
            Err((what, None)) => r.fail(STEPS[6], format_args!("{what}")),
        },
        None => r.fail(
            STEPS[6],
            format_args!("no shared-info page to read pending bits"),
        ),
    }

    match hvm::store_ring(hv) {
        Ok(store) => r.pass(
            STEPS[7],
            format_args!("store pfn {:#x} evtchn {}", store.pfn, store.evtchn),
        ),
        Err(e) => r.fail(STEPS[7], format_args!("{e}")),
    }

    unplug_ide(hv, r);

    // The report closes before the shutdown: a successful poweroff never returns.
    r.pass(STEPS[9], format_args!("SCHEDOP_shutdown(poweroff) issued"));
    r.done();
    let mut arg = SchedShutdown {
        reason: SHUTDOWN_POWEROFF,
    };
    let mut args = [
        Arg::Value(u64::from(SCHEDOP_SHUTDOWN)),
        Arg::Buffer(arg.as_mut_bytes()),
        Arg::Unused,
        Arg::Unused,
        Arg::Unused,
    ];
    let result = invoke(hv, &SCHEDOP_SHUTDOWN_CALL, &mut args);
    r.line(format_args!("SHUTDOWN returned {result:?}"));
    false
}

/// What proves the frame is Xen's shared-info page: vCPU 0's time record, which Xen keeps for
/// a running vCPU (a scale factor and a system time), read under its sequence counter. The wall
/// clock is reported as found: Xen leaves it 0 for an HVM domain until the toolstack or the
/// guest's RTC sets a time offset.
fn shared_info_contents<M: SharedMemory, S: ByteSink>(page: &M, gfn: u64, r: &mut Reporter<S>) {
    let time = match shared_info::vcpu_time(page, 0) {
        Ok(time) => time,
        Err(e) => return r.fail(STEPS[4], format_args!("gfn {gfn:#x} vCPU 0 time: {e}")),
    };
    let wall = shared_info::wall_clock(page);
    if time.tsc_to_system_mul == 0 || time.system_time == 0 {
        return r.fail(
            STEPS[4],
            format_args!(
                "gfn {gfn:#x} vCPU 0 time not maintained: mul {:#x} system time {}",
                time.tsc_to_system_mul, time.system_time
            ),
        );
    }
    match wall {
        Ok(wc) => r.pass(
            STEPS[4],
            format_args!(
                "gfn {gfn:#x} vcpu0 system time {} ns mul {:#x} shift {} wall clock {}",
                time.system_time, time.tsc_to_system_mul, time.tsc_shift, wc.sec
            ),
        ),
        Err(e) => r.fail(STEPS[4], format_args!("gfn {gfn:#x} wall clock: {e}")),
    }
}

/// Whether port `port`'s bit is set in the shared-info page's 2-level pending array.
fn pending<M: SharedMemory>(page: &M, port: u32) -> Option<bool> {
    let word = usize::try_from(port / 64)
        .ok()
        .filter(|w| *w < EVTCHN_2L_WORDS)?;
    let mut bytes = [0u8; 8];
    page.read_bytes(
        offset_of!(SharedInfo, evtchn_pending) + word * 8,
        &mut bytes,
    );
    Some(u64::from_le_bytes(bytes) & (1 << (port % 64)) != 0)
}

/// An event channel to ourselves with the 2-level ABI (Xen's default): an unbound port for
/// this domain, a second port bound to it, `send` on the second, and the first's pending bit
/// must go from clear to set in shared info. Both ports are closed. Returns (first, second).
fn event_channel_loopback<H: Hypervisor, M: SharedMemory>(
    hv: &H,
    page: &M,
) -> Result<(u32, u32), (&'static str, Option<XenErrno>)> {
    let ops = HypercallEventChannels(hv);
    let mut unbound = EvtchnAllocUnbound {
        dom: DOMID_SELF,
        remote_dom: DOMID_SELF,
        port: 0,
    };
    ops.alloc_unbound(&mut unbound)
        .map_err(|e| ("EVTCHNOP_alloc_unbound failed", Some(e)))?;
    let local = unbound.port;
    let mut bind = EvtchnBindInterdomain {
        remote_dom: DOMID_SELF,
        pad: 0,
        remote_port: local,
        local_port: 0,
    };
    let result = (|| {
        ops.bind_interdomain(&mut bind)
            .map_err(|e| ("EVTCHNOP_bind_interdomain failed", Some(e)))?;
        if pending(page, local) != Some(false) {
            return Err(("first port pending before any send", None));
        }
        ops.send(&EvtchnSend {
            port: bind.local_port,
        })
        .map_err(|e| ("EVTCHNOP_send failed", Some(e)))?;
        if pending(page, local) != Some(true) {
            return Err(("send did not set the first port's pending bit", None));
        }
        Ok((local, bind.local_port))
    })();
    let closed_first = ops.close(&EvtchnClose { port: local }).is_ok();
    let closed_second = bind.local_port == 0
        || ops
            .close(&EvtchnClose {
                port: bind.local_port,
            })
            .is_ok();
    let ports = result?;
    if !(closed_first && closed_second) {
        return Err(("EVTCHNOP_close failed", None));
    }
    Ok(ports)
}

/// The primary IDE channel's status register: 0 when QEMU has no drive at the selected
/// position, 0xff when there is no controller at all.
const IDE_PRIMARY_STATUS: u16 = 0x1f7;
/// The primary IDE channel's drive/head register: 0xa0 selects the master (firmware may have
/// left the slave selected after probing it, and an absent slave's status reads 0).
const IDE_PRIMARY_DRIVE: u16 = 0x1f6;

/// The primary master's status.
fn ide_master_status(io: &impl PortIo) -> u8 {
    io.outb(IDE_PRIMARY_DRIVE, 0xa0);
    io.inb(IDE_PRIMARY_STATUS)
}

/// The unplug handshake against QEMU (magic, protocol version, product registration), asking
/// for the emulated IDE disks and NICs to go; the lab attaches an IDE disk as `hda`, whose
/// status register must read non-zero before and 0 after.
fn unplug_ide<S: ByteSink>(io: &impl PortIo, r: &mut Reporter<S>) {
    let before = ide_master_status(io);
    if before == 0 || before == 0xff {
        return r.fail(
            STEPS[8],
            format_args!("no emulated disk on the primary IDE channel (status {before:#04x})"),
        );
    }
    let flags = UnplugFlags::ALL_IDE_DISKS | UnplugFlags::ALL_NICS;
    match unplug::unplug(io, PVDRIVERS_PRODUCT_EXPERIMENTAL, 1, flags) {
        Ok(report) => {
            let after = ide_master_status(io);
            if after == 0 {
                r.pass(
                    STEPS[8],
                    format_args!(
                        "protocol {} registered {} flags {:#x}: IDE status {before:#04x} -> 0",
                        report.protocol_version,
                        report.registered,
                        report.unplugged.bits()
                    ),
                )
            } else {
                r.fail(
                    STEPS[8],
                    format_args!("IDE disk still present after unplug (status {after:#04x})"),
                )
            }
        }
        Err(e) => r.fail(STEPS[8], format_args!("{e}")),
    }
}

/// The grant table: its size, version 1, one frame placed in BAR1 and `setup_table` naming it.
fn grant_table<H: Hypervisor, S: ByteSink>(hv: &H, r: &mut Reporter<S>) {
    let size = match gnttab::query_size(hv) {
        Ok(size) => size,
        Err(e) => return r.fail(STEPS[5], format_args!("query_size: {e}")),
    };
    let version = match gnttab::ensure_v1(hv) {
        Ok(v) => v,
        Err(e) => return r.fail(STEPS[5], format_args!("version: {e}")),
    };
    let Some(gfn) = hv.allocate_frames(1) else {
        return r.fail(STEPS[5], format_args!("BAR1 window exhausted"));
    };
    if let Err(e) = gnttab::map_frame(hv, 0, gfn) {
        return r.fail(STEPS[5], format_args!("map frame 0 at {gfn:#x}: {e}"));
    }
    let mut frames = [0u64; 1];
    match gnttab::frames(hv, &mut frames) {
        Ok(_) if frames[0] == gfn => r.pass(
            STEPS[5],
            format_args!(
                "frames {}/{} version {:?} frame 0 at gfn {gfn:#x} = setup_table",
                size.nr_frames, size.max_nr_frames, version.found
            ),
        ),
        Ok(_) => r.fail(
            STEPS[5],
            format_args!(
                "frame 0 mapped at {gfn:#x}, setup_table says {:#x}",
                frames[0]
            ),
        ),
        Err(e) => r.fail(STEPS[5], format_args!("setup_table: {e}")),
    }
}
