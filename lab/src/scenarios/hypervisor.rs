//! `hypervisor`: the core's hypervisor layer (`xenpci_core::hypervisor`, its hypercall table and
//! the event-channel hypercalls) against the real Xen, through the lab's `LinuxHypervisor`
//! (privcmd), with every answer checked against what Linux and the toolstack report.
//!
//! Only what a PV dom0 may run without disturbing Linux: queries, event channels the scenario
//! owns (one end of each pair is a port of Linux's `/dev/xen/evtchn`, so delivery is observed
//! through Linux), and calls Xen refuses for a PV domain before they change anything (the HVM
//! paths: `XENMEM_add_to_physmap`, HVM parameters, the upcall vector; `VCPUOP_register_vcpu_info`
//! with an offset Xen rejects). Unmask, the FIFO control block, the suspend request and the
//! unplug protocol are proven by the HVM test guest, not here (see xenpci/core/README.md).

use std::fs;
use std::time::{Duration, Instant};

use xen_abi::event_channel::{
    EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindVcpu, EvtchnBindVirq, EvtchnClose,
    EvtchnSend, EvtchnSetPriority, EvtchnStatus, EVTCHNSTAT_CLOSED, EVTCHNSTAT_INTERDOMAIN,
    EVTCHNSTAT_UNBOUND, VIRQ_TIMER,
};
use xen_abi::features::Features;
use xen_abi::grant_table::{GnttabQuerySize, GNTTABOP_QUERY_SIZE};
use xen_abi::hvm::HVM_PARAM_STORE_PFN;
use xen_abi::hypercall::HYPERVISOR_GRANT_TABLE_OP;
use xen_abi::shared_info::VcpuRegisterVcpuInfo;
use xen_abi::types::{EvtchnPort, DOMID_SELF};
use xenpci_core::evtchn::ops::HypercallEventChannels;
use xenpci_core::evtchn::{EventChannelOps, XenErrno};
use xenpci_core::hypervisor::calls::{self, invoke, VCPUOP_REGISTER_VCPU_INFO_CALL};
use xenpci_core::hypervisor::detect::CpuVendor;
use xenpci_core::hypervisor::{
    self as hv, gnttab, hvm, shared_info, version, Arg, HvError, HypercallMechanism, Hypervisor,
    Policy,
};
use zerocopy::IntoBytes;

use super::toolstack::sh;
use crate::platform::evtchn::EventChannels;
use crate::platform::hypervisor::{dev_cpuid, native_cpuid, LinuxHypervisor};
use crate::scenario::{ensure, Context, Failure, Outcome, ResultExt, Scenario};

/// The scenario.
pub const SCENARIO: Scenario = Scenario {
    name: "hypervisor",
    description: "xenpci-core's hypervisor layer through /dev/xen/privcmd against the real Xen: \
                  forced-emulation CPUID detection, XENVER version/extraversion/features, \
                  GNTTABOP query_size/get_version/setup_table for DOMID_SELF (and query_size \
                  without its count refused), event channels allocated, bound to a Linux port, \
                  queried, notified, moved and closed, HVM-only calls refused for PV; all \
                  compared with /sys/hypervisor, /proc/xen, xl info, dmesg and /dev/xen/evtchn",
    default: true,
    timeout: Duration::from_secs(60),
    run,
};

fn hv_err(what: &str) -> impl Fn(HvError) -> Failure + '_ {
    move |e| Failure(format!("{what}: {e}"))
}

fn xen_err(what: &str) -> impl Fn(XenErrno) -> Failure + '_ {
    move |e| Failure(format!("{what}: {e}"))
}

fn sysfs(path: &str) -> Result<String, Failure> {
    fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .context(format!("read {path}"))
}

/// `name : value` from `xl info`.
fn xl_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == name).then(|| value.trim())
    })
}

fn expect_errno(what: &str, got: Result<u64, HvError>, want: XenErrno) -> Outcome {
    match got {
        Err(HvError::Hypercall { errno, .. }) if errno == want => Ok(()),
        other => Err(Failure(format!(
            "{what}: expected Xen error {}, got {other:?}",
            want.0
        ))),
    }
}

fn run(cx: &mut Context) -> Outcome {
    let hv = LinuxHypervisor::open().context("open the privcmd hypervisor")?;
    let xl = sh("xl", &["info"])?;
    detection(cx, &hv)?;
    versions(cx, &hv, &xl)?;
    grant_table(cx, &hv, &xl)?;
    event_channels(cx, &hv)?;
    hvm_paths_refused(cx, &hv)?;
    ensure(hv.msr_writes().is_empty(), || {
        format!("the core tried to write MSRs: {:?}", hv.msr_writes())
    })
}

/// CPUID through Xen, the core's detection and mechanism choice, and the CPU's own CPUID.
fn detection(cx: &mut Context, hv: &LinuxHypervisor) -> Outcome {
    let init = hv::init(hv, Policy::Auto).map_err(hv_err("hypervisor::init"))?;
    let c = init.cpuid;
    let (major, minor) = (
        sysfs("/sys/hypervisor/version/major")?,
        sysfs("/sys/hypervisor/version/minor")?,
    );
    ensure(
        c.version.major.to_string() == major && c.version.minor.to_string() == minor,
        || {
            format!(
                "CPUID says Xen {}, /sys/hypervisor/version {major}.{minor}",
                c.version
            )
        },
    )?;
    // A PV domain sees Xen's leaves at the first base, and no HVM feature leaf content.
    ensure(c.base == 0x4000_0000, || {
        format!("Xen's leaves at {:#x}", c.base)
    })?;
    ensure(c.hvm_features.is_empty(), || {
        format!("HVM features {:?} in a PV domain", c.hvm_features)
    })?;
    let expected = match c.vendor {
        CpuVendor::Intel | CpuVendor::Centaur | CpuVendor::Zhaoxin => HypercallMechanism::Vmcall,
        CpuVendor::Amd | CpuVendor::Hygon => HypercallMechanism::Vmmcall,
        CpuVendor::Unknown(_) => {
            return Err(Failure(format!("unknown CPU vendor {:?}", c.vendor)));
        }
    };
    ensure(
        init.mechanism == expected && hv.mechanism() == Some(expected),
        || format!("mechanism {:?} for {:?}", init.mechanism, c.vendor),
    )?;
    cx.text(
        "cpuid",
        &format!("Xen {} at {:#x}, {:?}", c.version, c.base, c.vendor),
    );
    cx.log(format!(
        "forced-emulation CPUID: Xen {} at {:#x}, max leaf {:#x}, {} hypercall page(s), MSR \
         {:#x}, vendor {:?} -> {:?}",
        c.version, c.base, c.max_leaf, c.hypercall_pages, c.hypercall_msr, c.vendor, init.mechanism
    ));

    // What plain CPUID shows in user mode: Xen's leaves only if Xen faults CPUID for PV.
    let [_, b, cc, d] = native_cpuid(0x4000_0000, 0);
    let native = if xen_abi::cpuid::is_xen_signature(b, cc, d) {
        "Xen's leaves (CPUID faulting)"
    } else {
        "the CPU's own leaves"
    };
    cx.text("native cpuid", native);
    // Linux's cpuid driver, if the module is there: the kernel's CPUID goes through Xen too.
    let _ = std::process::Command::new("modprobe").arg("cpuid").output();
    let leaves = [c.base, c.base + 1, c.base + 2];
    match dev_cpuid(0, c.base, 0) {
        Some(_) => {
            for leaf in leaves {
                let (ours, linux) = (hv.cpuid(leaf, 0), dev_cpuid(0, leaf, 0));
                ensure(linux == Some(ours), || {
                    format!(
                        "leaf {leaf:#x}: forced emulation {ours:x?}, /dev/cpu/0/cpuid {linux:x?}"
                    )
                })?;
            }
            cx.text("dev cpuid", "agrees");
        }
        None => cx.text("dev cpuid", "absent"),
    }
    Ok(())
}

/// `XENVER_*` against sysfs and `xl info`.
fn versions(cx: &mut Context, hv: &LinuxHypervisor, xl: &str) -> Outcome {
    let v = version::version(hv).map_err(hv_err("XENVER_version"))?;
    let raw = version::extraversion(hv).map_err(hv_err("XENVER_extraversion"))?;
    let extra = version::extraversion_str(&raw)
        .ok_or_else(|| Failure(format!("extraversion {raw:x?} is not text")))?;
    let sys_extra = sysfs("/sys/hypervisor/version/extra")?;
    ensure(
        v.major.to_string() == sysfs("/sys/hypervisor/version/major")?
            && v.minor.to_string() == sysfs("/sys/hypervisor/version/minor")?
            && extra == sys_extra,
        || format!("XENVER says {v}{extra}, sysfs {sys_extra}"),
    )?;
    let xl_says = (
        xl_field(xl, "xen_major"),
        xl_field(xl, "xen_minor"),
        xl_field(xl, "xen_extra"),
    );
    ensure(
        xl_says
            == (
                Some(v.major.to_string().as_str()),
                Some(v.minor.to_string().as_str()),
                Some(extra),
            ),
        || format!("XENVER says {v}{extra}, xl info {xl_says:?}"),
    )?;
    cx.text("xen", &format!("{v}{extra}"));

    let features = version::features(hv).map_err(hv_err("XENVER_get_features"))?;
    let sys = sysfs("/sys/hypervisor/properties/features")?;
    let sys_bits = u32::from_str_radix(&sys, 16).context(format!("parse features '{sys}'"))?;
    ensure(features.bits() == sys_bits, || {
        format!("XENVER_get_features {:#010x}, sysfs {sys}", features.bits())
    })?;
    // Linux's xenfs says "control_d" for the control domain; Xen's XENFEAT_dom0 must agree.
    let caps = sysfs("/proc/xen/capabilities")?;
    ensure(
        features.contains(Features::DOM0) == caps.contains("control_d")
            && !features.contains(Features::AUTO_TRANSLATED_PHYSMAP),
        || format!("features {features:?} of a PV domain whose capabilities are '{caps}'"),
    )?;
    cx.text("features", &format!("{:#010x}", features.bits()));
    Ok(())
}

/// `GNTTABOP_*` for DOMID_SELF, and the missing `count` refused by the core and by Xen.
fn grant_table(cx: &mut Context, hv: &LinuxHypervisor, xl: &str) -> Outcome {
    let size = gnttab::query_size(hv).map_err(hv_err("GNTTABOP_query_size"))?;
    // dom0's limit is Xen's gnttab_max_frames (default 64) unless its command line says more.
    let max = xl_field(xl, "xen_commandline")
        .and_then(|line| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix("gnttab_max_frames="))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(64u32);
    ensure(
        size.max_nr_frames == max && (1..=max).contains(&size.nr_frames),
        || format!("query_size {size:?}, expected at most {max} frames"),
    )?;
    let version = gnttab::get_version(hv).map_err(hv_err("GNTTABOP_get_version"))?;
    let dmesg = sh("dmesg", &[])?;
    let linux = dmesg
        .lines()
        .find_map(|l| {
            l.split_once("Grant tables using version ")?
                .1
                .split(' ')
                .next()
        })
        .unwrap_or("?");
    ensure(version == Some(1) && linux == "1", || {
        format!("get_version {version:?}, Linux logged version {linux}")
    })?;
    let mut frames = vec![0u64; size.nr_frames as usize];
    gnttab::frames(hv, &mut frames).map_err(hv_err("GNTTABOP_setup_table"))?;
    let mut distinct = frames.clone();
    distinct.sort_unstable();
    distinct.dedup();
    ensure(
        !frames.contains(&0) && distinct.len() == frames.len(),
        || format!("setup_table frames {frames:x?}"),
    )?;
    // After setup_table for the frames already there, the size is unchanged.
    let after = gnttab::query_size(hv).map_err(hv_err("GNTTABOP_query_size"))?;
    ensure(after == size, || format!("size {size:?} became {after:?}"))?;
    cx.text(
        "grant table",
        &format!("v1, {} of {} frames", size.nr_frames, size.max_nr_frames),
    );
    cx.log(format!("grant frames (MFNs): {frames:x?}"));

    // The bug the table fixes: query_size without its count.
    let mut arg = GnttabQuerySize {
        dom: DOMID_SELF,
        pad0: 0,
        nr_frames: 0,
        max_nr_frames: 0,
        status: 0,
        pad1: 0,
    };
    let mut args = [
        Arg::Value(u64::from(GNTTABOP_QUERY_SIZE)),
        Arg::Buffer(arg.as_mut_bytes()),
        Arg::Unused,
        Arg::Unused,
        Arg::Unused,
    ];
    let refused = invoke(hv, &calls::GNTTABOP_QUERY_SIZE_CALL, &mut args);
    ensure(
        matches!(refused, Err(HvError::Arity { index: 2, .. })),
        || format!("the table let query_size without count through: {refused:?}"),
    )?;
    let raw = hv.hypercall(HYPERVISOR_GRANT_TABLE_OP, &mut args);
    ensure(raw == -i64::from(XenErrno::EINVAL.0), || {
        format!("Xen answered query_size without count with {raw}, expected -EINVAL")
    })?;
    cx.log(format!(
        "query_size without count: the table refuses it ({}), Xen answers {raw}",
        refused.err().map(|e| e.to_string()).unwrap_or_default()
    ));
    cx.text("missing count", "refused (table) / -EINVAL (Xen)");
    Ok(())
}

fn status(ops: &impl EventChannelOps, port: EvtchnPort) -> Result<EvtchnStatus, Failure> {
    let mut st = EvtchnStatus {
        dom: DOMID_SELF,
        pad: 0,
        port,
        status: 0,
        vcpu: 0,
        u: [0; 8],
    };
    ops.status(&mut st)
        .map_err(xen_err("EVTCHNOP_status"))
        .map(|()| st)
}

/// `EVTCHNOP_*` through the core, one end of the pair being Linux's.
fn event_channels(cx: &mut Context, hv: &LinuxHypervisor) -> Outcome {
    let ops = HypercallEventChannels(hv);
    let mut linux = EventChannels::open().context("open /dev/xen/evtchn")?;
    let linux_port = linux.bind_unbound(0).context("bind an unbound port")?;
    let st = status(&ops, linux_port)?;
    ensure(
        st.status == EVTCHNSTAT_UNBOUND && st.unbound_dom() == 0,
        || format!("Linux's port {linux_port}: status {st:?}"),
    )?;

    let mut unbound = EvtchnAllocUnbound {
        dom: DOMID_SELF,
        remote_dom: 0,
        port: 0,
    };
    ops.alloc_unbound(&mut unbound)
        .map_err(xen_err("EVTCHNOP_alloc_unbound"))?;
    let st = status(&ops, unbound.port)?;
    ensure(st.status == EVTCHNSTAT_UNBOUND, || {
        format!("port {}: status {st:?}", unbound.port)
    })?;

    let mut bind = EvtchnBindInterdomain {
        remote_dom: 0,
        pad: 0,
        remote_port: linux_port,
        local_port: 0,
    };
    ops.bind_interdomain(&mut bind)
        .map_err(xen_err("EVTCHNOP_bind_interdomain"))?;
    let ours = bind.local_port;
    let (st_ours, st_linux) = (status(&ops, ours)?, status(&ops, linux_port)?);
    ensure(
        st_ours.status == EVTCHNSTAT_INTERDOMAIN
            && st_ours.interdomain().port == linux_port
            && st_linux.status == EVTCHNSTAT_INTERDOMAIN
            && st_linux.interdomain().port == ours,
        || format!("after bind: ours {st_ours:?}, Linux's {st_linux:?}"),
    )?;

    let started = Instant::now();
    ops.send(&EvtchnSend { port: ours })
        .map_err(xen_err("EVTCHNOP_send"))?;
    let arrived = linux
        .wait_for(linux_port, Duration::from_secs(5))
        .context("wait on /dev/xen/evtchn")?;
    ensure(arrived, || {
        format!("EVTCHNOP_send on {ours} never reached Linux's port {linux_port}")
    })?;
    cx.duration("send to Linux", started.elapsed(), "ms");
    linux.unmask(linux_port).context("unmask Linux's port")?;

    let vcpus = fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    if vcpus.trim() != "0" {
        ops.bind_vcpu(&EvtchnBindVcpu {
            port: ours,
            vcpu: 1,
        })
        .map_err(xen_err("EVTCHNOP_bind_vcpu"))?;
        let st = status(&ops, ours)?;
        ensure(st.vcpu == 1, || format!("after bind_vcpu: {st:?}"))?;
    }

    // FIFO only: Linux's ABI decides what Xen answers.
    let fifo = sh("dmesg", &[])?.contains("FIFO-based ABI");
    let prio = ops.set_priority(&EvtchnSetPriority {
        port: ours,
        priority: 7,
    });
    ensure(
        if fifo {
            prio.is_ok()
        } else {
            prio == Err(XenErrno::ENOSYS)
        },
        || format!("set_priority with the FIFO ABI {fifo}: {prio:?}"),
    )?;
    cx.text("event abi", if fifo { "FIFO" } else { "2-level" });

    // Linux bound VIRQ_TIMER on vCPU 0 ("timer0" in /proc/interrupts): Xen refuses a second.
    let timers = fs::read_to_string("/proc/interrupts").unwrap_or_default();
    let mut virq = EvtchnBindVirq {
        virq: VIRQ_TIMER,
        vcpu: 0,
        port: 0,
    };
    let got = ops.bind_virq(&mut virq);
    ensure(
        timers.contains("timer0") && got == Err(XenErrno::EEXIST),
        || format!("bind_virq(VIRQ_TIMER, 0): {got:?}"),
    )?;

    ops.close(&EvtchnClose { port: ours })
        .map_err(xen_err("EVTCHNOP_close"))?;
    let st = status(&ops, linux_port)?;
    ensure(st.status == EVTCHNSTAT_UNBOUND, || {
        format!("Linux's port after our close: {st:?}")
    })?;
    ops.close(&EvtchnClose { port: unbound.port })
        .map_err(xen_err("EVTCHNOP_close"))?;
    let st = status(&ops, unbound.port)?;
    ensure(st.status == EVTCHNSTAT_CLOSED, || {
        format!("closed port {}: {st:?}", unbound.port)
    })?;
    let sent = ops.send(&EvtchnSend { port: unbound.port });
    ensure(sent == Err(XenErrno::EINVAL), || {
        format!("send on a closed port: {sent:?}")
    })?;
    linux.unbind(linux_port).context("unbind Linux's port")?;
    cx.log(format!(
        "ports: Linux {linux_port}, ours unbound {} and bound {ours}; send reached Linux",
        unbound.port
    ));
    Ok(())
}

/// The HVM paths, refused by Xen for a PV domain before they change anything: proof that the
/// arguments are decoded as intended (no -EFAULT or -ESRCH), not that the paths work.
fn hvm_paths_refused(cx: &mut Context, hv: &LinuxHypervisor) -> Outcome {
    expect_errno(
        "XENMEM_add_to_physmap(shared_info)",
        shared_info::map_at(hv, 0xf_ffff).map(|()| 0),
        XenErrno::EACCES,
    )?;
    expect_errno(
        "HVMOP_get_param(STORE_PFN)",
        hvm::get_param(hv, HVM_PARAM_STORE_PFN),
        XenErrno::EINVAL,
    )?;
    expect_errno(
        "HVMOP_set_evtchn_upcall_vector",
        hvm::set_upcall_vector(hv, 0, 0xf3).map(|()| 0),
        XenErrno::EINVAL,
    )?;
    // vcpu_op's three registers: an offset Xen rejects (-ENXIO) shows the structure is read
    // from register 3 and the vCPU id from register 2 (an unknown vCPU is -ENOENT).
    let register = |vcpu: u64, offset: u32| {
        let mut arg = VcpuRegisterVcpuInfo {
            mfn: u64::MAX,
            offset,
            rsvd: 0,
        };
        let call = &VCPUOP_REGISTER_VCPU_INFO_CALL;
        let mut args = [
            Arg::Value(u64::from(call.cmd)),
            Arg::Value(vcpu),
            Arg::Buffer(arg.as_mut_bytes()),
            Arg::Unused,
            Arg::Unused,
        ];
        invoke(hv, call, &mut args)
    };
    expect_errno(
        "VCPUOP_register_vcpu_info at offset 4090",
        register(0, 4090),
        XenErrno::ENXIO,
    )?;
    expect_errno(
        "VCPUOP_register_vcpu_info for vCPU 4096",
        register(4096, 0),
        XenErrno::ENOENT,
    )?;
    cx.text(
        "hvm paths",
        "refused for PV: add_to_physmap EACCES, get_param/upcall vector EINVAL",
    );
    Ok(())
}
