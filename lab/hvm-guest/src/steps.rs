//! The sequence of steps the kernel runs, each reported by name: the platform device, Xen's
//! CPUID leaves, the hypercall instruction, `xen_version`, shared info in BAR1, the grant table
//! in BAR1, the xenstore HVM parameters, then the shutdown. A step that fails is reported and
//! the steps that need its result are reported as failed too (naming what they lacked), so the
//! harness always sees every step name.

use xen_abi::sched::{SchedShutdown, SCHEDOP_SHUTDOWN};
use xenpci_core::hypervisor::calls::{invoke, SCHEDOP_SHUTDOWN_CALL};
use xenpci_core::hypervisor::shared_info::{self, SharedMemory};
use xenpci_core::hypervisor::{self, gnttab, hvm, version, Arg, Hypervisor, Policy, PortIo};
use zerocopy::IntoBytes;

use crate::pci::{self, Bar, PlatformDevice};
use crate::report::{ByteSink, Reporter};

/// Every step name, in order (the harness expects each exactly once).
pub const STEPS: [&str; 8] = [
    "pci-platform",
    "cpuid-detect",
    "hypercall-mechanism",
    "xen-version",
    "shared-info",
    "grant-table",
    "hvm-params",
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

    match shared_info::map(hv) {
        Ok(gfn) => match map_page(gfn) {
            Some(page) => shared_info_contents(&page, gfn, r),
            None => r.fail(STEPS[4], format_args!("gfn {gfn:#x} not addressable")),
        },
        Err(e) => r.fail(STEPS[4], format_args!("{e}")),
    }

    grant_table(hv, r);

    match hvm::store_ring(hv) {
        Ok(store) => r.pass(
            STEPS[6],
            format_args!("store pfn {:#x} evtchn {}", store.pfn, store.evtchn),
        ),
        Err(e) => r.fail(STEPS[6], format_args!("{e}")),
    }

    // The report closes before the shutdown: a successful poweroff never returns.
    r.pass(STEPS[7], format_args!("SCHEDOP_shutdown(poweroff) issued"));
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
