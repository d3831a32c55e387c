//! The core's hypervisor level over the model: detection, the hypercall mechanism, grant
//! frames, shared info, HVM parameters, upcalls, unplug and suspend.

use xen_abi::event_channel::{
    EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnClose, EvtchnSend, EvtchnStatus,
    EVTCHNSTAT_INTERDOMAIN,
};
use xen_abi::grant_table::{GnttabQuerySize, GNTTABOP_QUERY_SIZE};
use xen_abi::hypercall::HYPERVISOR_GRANT_TABLE_OP;
use xen_abi::sched::SHUTDOWN_SUSPEND;
use xen_abi::shared_info::VcpuTimeInfo;
use xen_abi::types::DOMID_SELF;
use xen_abi::unplug::UnplugFlags;
use xen_sim::{Config, HvConfig, SuspendOutcome, UnplugMode, Vendor, Xen};
use xenpci_core::evtchn::ops::HypercallEventChannels;
use xenpci_core::evtchn::EventChannelOps;
use xenpci_core::grant_table::{GrantTable, Revocation};
use xenpci_core::hypervisor::calls::{invoke, GNTTABOP_QUERY_SIZE_CALL};
use xenpci_core::hypervisor::detect::DetectError;
use xenpci_core::hypervisor::gnttab;
use xenpci_core::hypervisor::gnttab::GrantFrames;
use xenpci_core::hypervisor::hvm::{self, UpcallMethod};
use xenpci_core::hypervisor::{
    self as hv, Arg, HvError, HypercallMechanism, Hypervisor, Param, Policy, XenErrno,
};
use xenpci_core::unplug::{self, UnplugError};
use zerocopy::IntoBytes;

fn with_hv(hv: HvConfig) -> Xen {
    Xen::new(Config {
        hv,
        ..Config::default()
    })
}

#[test]
fn detection_and_mechanism_per_vendor() {
    for (vendor, mechanism) in [
        (Vendor::Intel, HypercallMechanism::Vmcall),
        (Vendor::Amd, HypercallMechanism::Vmmcall),
    ] {
        let xen = with_hv(HvConfig {
            vendor,
            cpuid_base: 0x4000_0100,
            ..HvConfig::default()
        });
        let hvm = xen.hypervisor();
        let init = hv::init(&hvm, Policy::Auto).unwrap();
        assert_eq!(init.cpuid.base, 0x4000_0100);
        assert_eq!(init.mechanism, mechanism);
        assert_eq!(xen.hv_state().mechanism, Some(mechanism));
        assert!(xen.hv_state().violations.is_empty());
    }
}

#[test]
fn hypercall_page_fallback_is_installed_through_the_msr() {
    let xen = with_hv(HvConfig {
        vendor: Vendor::Other,
        ..HvConfig::default()
    });
    let hvm = xen.hypervisor();
    let init = hv::init(&hvm, Policy::Auto).unwrap();
    let HypercallMechanism::HypercallPage { gfn } = init.mechanism else {
        panic!("expected the hypercall page, got {:?}", init.mechanism);
    };
    assert_eq!(xen.hv_state().hypercall_page, Some(gfn));
    // Stub 17 is `mov eax, 17; vmcall; ret`.
    let mut stub = [0; 9];
    xen.read_guest(gfn, 17 * 32, &mut stub).unwrap();
    assert_eq!(stub, [0xb8, 17, 0, 0, 0, 0x0f, 0x01, 0xc1, 0xc3]);
    assert!(hvm::xen_features(&hvm).is_ok());
    assert!(xen.hv_state().violations.is_empty());
}

#[test]
fn not_xen_and_misuse_are_reported() {
    let xen = with_hv(HvConfig {
        cpuid_base: 0x4001_0000, // outside the search range
        ..HvConfig::default()
    });
    let hvm = xen.hypervisor();
    assert_eq!(
        hv::init(&hvm, Policy::Auto),
        Err(HvError::Detect(DetectError::NotXen))
    );
    // A hypercall before any mechanism was chosen fails and is recorded.
    assert!(hvm::xen_features(&hvm).is_err());
    assert_eq!(xen.hv_state().violations.len(), 1);
}

#[test]
fn grant_frames_are_mapped_into_the_window_and_used_by_the_table() {
    let xen = Xen::new(Config {
        max_grant_frames: 4,
        ..Config::default()
    });
    let hvm = xen.hypervisor();
    hv::init(&hvm, Policy::Auto).unwrap();
    let mut frames = GrantFrames::setup(&hvm, 32).unwrap();
    assert_eq!(frames.limit(), 4);
    let links = xen_sim::grant_links(4 * 512);
    let mut table = GrantTable::new(xen.grant_entries(), &links, 0).unwrap();
    let mut mapped = Vec::new();
    frames
        .grow(&hvm, &mut table, 2, |i, gfn| mapped.push((i, gfn)))
        .unwrap();
    let base = HvConfig::default().window_base;
    assert_eq!(mapped, vec![(0, base), (1, base + 1)]);
    assert_eq!(xen.grant_frames()[..2], [base, base + 1]);
    assert_eq!(table.capacity(), 1024);
    // Grants land in the frames at their new place, where the backend finds them.
    let page = xen.alloc_page();
    let gref = table.grant_access(0, page, false).unwrap();
    let dom0 = xen.dom0();
    let h = dom0.map_grant(gref, false).unwrap();
    assert_eq!(table.end_access(gref), Ok(Revocation::Deferred));
    dom0.unmap_grant(h).unwrap();
    assert_eq!(table.retry_deferred(4), 1);
    let mut entry = [0; 8];
    xen.read_guest(base, gref as usize * 8, &mut entry).unwrap();
    assert_eq!(
        u32::from_le_bytes(entry[4..].try_into().unwrap()) as u64,
        page
    );
    assert!(matches!(
        frames.grow(&hvm, &mut table, 5, |_, _| {}),
        Err(HvError::BadFrameCount { .. })
    ));
}

#[test]
fn shared_info_mapping_moves_the_page_and_time_is_read_from_it() {
    let xen = Xen::default();
    let hvm = xen.hypervisor();
    hv::init(&hvm, Policy::Auto).unwrap();
    let gfn = hv::shared_info::map(&hvm).unwrap();
    assert_eq!(xen.shared_info_gfn(), gfn);
    xen.set_wall_clock(1_700_000_000, 5);
    let si = xen.shared_info();
    let wc = hv::shared_info::wall_clock(&si).unwrap();
    assert_eq!((wc.sec, wc.nsec), (1_700_000_000, 5));
    xen.set_vcpu_time(
        0,
        VcpuTimeInfo {
            version: 0,
            pad0: 0,
            tsc_timestamp: 1000,
            system_time: 42,
            tsc_to_system_mul: 1 << 31,
            tsc_shift: 0,
            flags: 0,
            pad1: [0; 2],
        },
    );
    let t = hv::shared_info::vcpu_time(&si, 0).unwrap();
    assert_eq!(t.system_time, 42);
    xen.tear_wall_clock();
    assert!(hv::shared_info::wall_clock(&si).is_err());
}

#[test]
fn store_ring_parameters_and_upcall_vector() {
    let xen = Xen::default();
    let ring = xen.store_ring();
    let hvm = xen.hypervisor();
    hv::init(&hvm, Policy::Auto).unwrap();
    let info = hvm::store_ring(&hvm).unwrap();
    assert_eq!((info.pfn, info.evtchn), (ring.gfn(), ring.port()));
    assert!(matches!(
        hvm::console_ring(&hvm),
        Err(HvError::ParamUnset { .. })
    ));
    hvm::setup_upcall(&hvm, UpcallMethod::PerVcpuVector(0xf3), [0]).unwrap();
    assert_eq!(xen.hv_state().upcall_vectors.get(&0), Some(&0xf3));
    assert!(hvm::set_upcall_vector(&hvm, 5, 0xf3).is_err());
}

#[test]
fn event_channel_hypercalls_reach_the_model() {
    let xen = Xen::default();
    let hvm = xen.hypervisor();
    hv::init(&hvm, Policy::Auto).unwrap();
    let ops = HypercallEventChannels(&hvm);
    let mut arg = EvtchnAllocUnbound {
        dom: DOMID_SELF,
        remote_dom: 0,
        port: 0,
    };
    ops.alloc_unbound(&mut arg).unwrap();
    assert_ne!(arg.port, 0);
    xen.dom0().bind_interdomain(1, arg.port).unwrap();
    let mut status = EvtchnStatus {
        dom: DOMID_SELF,
        pad: 0,
        port: arg.port,
        status: 0,
        vcpu: 0,
        u: [0; 8],
    };
    ops.status(&mut status).unwrap();
    assert_eq!(status.status, EVTCHNSTAT_INTERDOMAIN);
    ops.send(&EvtchnSend { port: arg.port }).unwrap();
    ops.close(&EvtchnClose { port: arg.port }).unwrap();
    // A remote domain that does not exist.
    let mut bad = EvtchnAllocUnbound {
        dom: 9,
        remote_dom: 0,
        port: 0,
    };
    assert_eq!(ops.alloc_unbound(&mut bad), Err(XenErrno::EPERM));
    let mut local = EvtchnBindInterdomain {
        remote_dom: 0,
        pad: 0,
        remote_port: 0xffff,
        local_port: 0,
    };
    assert!(ops.bind_interdomain(&mut local).is_err());
    assert!(xen.hv_state().violations.is_empty());
}

/// `GNTTABOP_query_size` issued as `(cmd, uop)` without its `count`: the core's table refuses
/// it without a hypercall; issued past the table, the model answers as Xen (`count != 1` is
/// `-EINVAL`) and records which register was missing.
#[test]
fn a_missing_argument_fails_in_the_core_and_in_the_model() {
    let xen = Xen::default();
    let hvm = xen.hypervisor();
    hv::init(&hvm, Policy::Auto).unwrap();
    let mut arg = GnttabQuerySize {
        dom: DOMID_SELF,
        pad0: 0,
        nr_frames: 0,
        max_nr_frames: 0,
        status: 0,
        pad1: 0,
    };
    let calls = xen.hv_state().calls.len();
    let mut args = [
        Arg::Value(u64::from(GNTTABOP_QUERY_SIZE)),
        Arg::Buffer(arg.as_mut_bytes()),
        Arg::Unused,
        Arg::Unused,
        Arg::Unused,
    ];
    assert_eq!(
        invoke(&hvm, &GNTTABOP_QUERY_SIZE_CALL, &mut args),
        Err(HvError::Arity {
            call: "GNTTABOP_query_size",
            index: 2,
            expected: Param::Value {
                meaning: "count",
                exactly: Some(1)
            }
        })
    );
    assert_eq!(xen.hv_state().calls.len(), calls, "nothing was issued");
    assert_eq!(hvm.hypercall(HYPERVISOR_GRANT_TABLE_OP, &mut args), -22);
    assert_eq!(
        xen.hv_state().violations,
        [format!(
            "hypercall {HYPERVISOR_GRANT_TABLE_OP}: register 3 is read by Xen but was not passed"
        )]
    );
    // count = 2 is Xen's -EINVAL too; count = 1 answers.
    args[2] = Arg::Value(2);
    assert_eq!(hvm.hypercall(HYPERVISOR_GRANT_TABLE_OP, &mut args), -22);
    args[2] = Arg::Value(1);
    assert_eq!(hvm.hypercall(HYPERVISOR_GRANT_TABLE_OP, &mut args), 0);
    assert_eq!(xen.hv_state().violations.len(), 1);
    assert_eq!(gnttab::query_size(&hvm).unwrap().max_nr_frames, 64);
    assert_eq!(xen.hv_state().violations.len(), 1);
}

#[test]
fn version_calls_and_the_setup_table_buffer_are_modelled() {
    let xen = Xen::default();
    let hvm = xen.hypervisor();
    hv::init(&hvm, Policy::Auto).unwrap();
    let v = hv::version::version(&hvm).unwrap();
    assert_eq!((v.major, v.minor), (4, 17));
    let extra = hv::version::extraversion(&hvm).unwrap();
    assert_eq!(hv::version::extraversion_str(&extra), Some(".7-sim"));
    assert!(hv::version::features(&hvm).is_ok());
    // The frame list is filled through the handle inside gnttab_setup_table.
    let mut frames = [0u64; 2];
    assert_eq!(gnttab::frames(&hvm, &mut frames), Ok(2));
    assert_eq!(frames.to_vec(), xen.grant_frames()[..2].to_vec());
    let mut too_many = [0u64; 65];
    assert!(matches!(
        gnttab::frames(&hvm, &mut too_many),
        Err(HvError::GrantStatus { status: -1, .. })
    ));
    assert!(xen.hv_state().violations.is_empty());
}

#[test]
fn unplug_handshake() {
    let xen = Xen::default();
    let hvm = xen.hypervisor();
    let flags = UnplugFlags::all();
    let report = unplug::unplug(&hvm, 3, 42, flags).unwrap();
    assert!(report.registered);
    let st = xen.hv_state();
    assert_eq!(
        (st.unplug_product, st.unplug_build, st.unplugged),
        (Some(3), Some(42), Some(flags.bits()))
    );
    unplug::log_line(&hvm, "hello");
    assert_eq!(xen.hv_state().log, b"hello\n");

    let xen = with_hv(HvConfig {
        unplug: UnplugMode::Blacklisted,
        ..HvConfig::default()
    });
    assert!(matches!(
        unplug::unplug(&xen.hypervisor(), 3, 42, flags),
        Err(UnplugError::Blacklisted { .. })
    ));
    let xen = with_hv(HvConfig {
        unplug: UnplugMode::Absent,
        ..HvConfig::default()
    });
    assert!(matches!(
        unplug::unplug(&xen.hypervisor(), 3, 42, flags),
        Err(UnplugError::NotAvailable { .. })
    ));
}

#[test]
fn suspend_cancelled_or_resumed() {
    let xen = Xen::default();
    let hvm = xen.hypervisor();
    hv::init(&hvm, Policy::Auto).unwrap();
    let port = xen.dom0().alloc_unbound(1).unwrap();
    let mut b = EvtchnBindInterdomain {
        remote_dom: 0,
        pad: 0,
        remote_port: port,
        local_port: 0,
    };
    EventChannelOps::bind_interdomain(&xen.evtchn_ops(), &mut b).unwrap();
    assert_eq!(hv::sched::suspend(&hvm), Ok(1));
    xen.set_suspend_outcome(SuspendOutcome::Resumed);
    assert_eq!(hv::sched::suspend(&hvm), Ok(0));
    // The new domain has no ports: the backend's end is unbound again.
    assert!(xen.dom0().send(port).is_ok());
    assert_eq!(xen.hv_state().shutdowns, vec![SHUTDOWN_SUSPEND; 2]);
}
