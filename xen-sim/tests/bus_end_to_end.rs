//! The bus brought up on a simulated Xen, end to end: both event ABIs, Viridian-first CPUID,
//! both upcall routes, a disk hot-plugged and connected, a poweroff request, and a suspend
//! with a resume in a new domain after which everything works again.

mod bus_support;

use bus_support::*;
use xen_abi::hvm::{callback_via_vector, HVM_PARAM_CALLBACK_IRQ};
use xen_abi::xenbus::XenbusState;
use xen_sim::{HvConfig, SuspendOutcome as SimOutcome, Vendor};
use xenpci_core::bus::{BusSuspend, ChildRunner, SuspendChildren};
use xenpci_core::control::{ControlRequest, ShutdownRequest};
use xenpci_core::evtchn::Abi;
use xenpci_core::hypervisor::hvm::{CallbackVia, UpcallMethod};
use xenpci_core::hypervisor::HypercallMechanism;
use xenpci_core::suspend::{SuspendOutcome, SuspendSequence};
use xenpci_core::xenbus::{Change, DeviceClass};

#[test]
fn bring_up_fifo_behind_viridian_with_per_vcpu_vectors() {
    let xen = sim(
        true,
        HvConfig {
            cpuid_base: 0x4000_0100,
            ..HvConfig::default()
        },
        2,
    );
    let mut ring = xen.store_ring();
    let links = links();
    let bus = bring_up(&xen, config(2, true), &links, &mut ring);

    let level = *bus.level();
    assert_eq!(level.cpuid.base, 0x4000_0100);
    assert_eq!(level.mechanism, HypercallMechanism::Vmcall);
    assert_eq!(level.shared_info_gfn, xen.shared_info_gfn());
    assert!(matches!(level.unplug, Some(Ok(r)) if r.registered));
    assert_eq!(bus.evtchn.abi(), Abi::Fifo);
    assert!(xen.guest_uses_fifo());
    assert_eq!(bus.upcall_method(), UpcallMethod::PerVcpuVector(VECTOR));

    let st = xen.hv_state();
    assert!(st.violations.is_empty(), "{:?}", st.violations);
    assert_eq!(st.upcall_vectors.get(&0), Some(&VECTOR));
    assert_eq!(st.upcall_vectors.get(&1), Some(&VECTOR));
    assert_eq!(
        st.params.get(&HVM_PARAM_CALLBACK_IRQ),
        Some(&callback_via_vector(0))
    );
    assert!(st.unplugged.is_some());
    // Two grant frames in the platform window, the table grown over them.
    let base = HvConfig::default().window_base;
    let frames = xen.grant_frames();
    assert!(frames[..2].iter().all(|&g| g >= base && g < base + 64));
    assert_eq!(bus.grant_frames().mapped(), 2);
    assert_eq!(bus.grants.capacity(), 1024);
    // The store's port is attached and the control node advertised and watched.
    assert!(bus.evtchn.dispatch().capacity() > level.store.evtchn);
    let dom0 = xen.dom0();
    for f in ["poweroff", "reboot", "suspend"] {
        assert_eq!(
            dom0.xs_read(&format!("/local/domain/1/control/feature-{f}"))
                .unwrap(),
            b"1"
        );
    }
    assert_eq!(xen.store_watches(GUEST), 3);
}

#[test]
fn bring_up_two_level_on_amd_with_the_callback_vector() {
    let xen = sim(
        false,
        HvConfig {
            vendor: Vendor::Amd,
            // VCPU_ID_PRESENT | DOMID_PRESENT, no per-vCPU upcall vectors.
            hvm_features: (1 << 3) | (1 << 4),
            ..HvConfig::default()
        },
        1,
    );
    let mut ring = xen.store_ring();
    let links = links();
    let bus = bring_up(&xen, config(1, true), &links, &mut ring);
    assert_eq!(bus.level().mechanism, HypercallMechanism::Vmmcall);
    assert_eq!(bus.evtchn.abi(), Abi::TwoLevel);
    assert_eq!(
        bus.upcall_method(),
        UpcallMethod::CallbackIrq(CallbackVia::Vector(VECTOR))
    );
    let st = xen.hv_state();
    assert!(st.upcall_vectors.is_empty());
    assert_eq!(
        st.params.get(&HVM_PARAM_CALLBACK_IRQ),
        Some(&CallbackVia::Vector(VECTOR).encode())
    );
    assert!(st.violations.is_empty(), "{:?}", st.violations);

    // The store works over the 2-level ABI: a poweroff request is surfaced and acknowledged.
    let (mut child, mut vbd, mut seen) = (None, VbdState::default(), Seen::default());
    run(bus, &mut ring, &mut child, &mut vbd, &mut seen);
    xen.dom0()
        .xs_write("/local/domain/1/control/shutdown", b"poweroff")
        .unwrap();
    run(bus, &mut ring, &mut child, &mut vbd, &mut seen);
    assert_eq!(
        seen.controls,
        vec![ControlRequest::Shutdown(ShutdownRequest::Poweroff)]
    );
}

#[test]
fn no_vector_falls_back_to_the_platform_line() {
    let xen = sim(true, HvConfig::default(), 1);
    let mut ring = xen.store_ring();
    let links = links();
    let mut cfg = config(1, true);
    cfg.upcall.vector = None;
    let bus = bring_up(&xen, cfg, &links, &mut ring);
    assert_eq!(
        bus.upcall_method(),
        UpcallMethod::CallbackIrq(CallbackVia::Gsi(28))
    );
    assert_eq!(
        xen.hv_state().params.get(&HVM_PARAM_CALLBACK_IRQ),
        Some(&CallbackVia::Gsi(28).encode())
    );
}

/// On the platform line only vCPU 0 is interrupted: the bus refuses to bind anything to vCPU 1
/// (the model counts an upcall raised for vCPU 1 as stranded, as a port moved there behind the
/// core's back shows).
#[test]
fn the_platform_line_keeps_every_port_on_vcpu_0() {
    use xen_abi::event_channel::{EvtchnBindVcpu, VIRQ_TIMER};
    use xenpci_core::bus::{Cause, Step};
    use xenpci_core::evtchn::{EventChannelOps, EvtchnError, HandlerId, UpcallReach};
    for fifo in [true, false] {
        let xen = sim(fifo, HvConfig::default(), 2);
        let mut ring = xen.store_ring();
        let links = links();
        let mut cfg = config(2, true);
        cfg.upcall.vector = None;
        let bus = bring_up(&xen, cfg, &links, &mut ring);
        assert_eq!(bus.evtchn.upcall_reach(), UpcallReach::Vcpu0);
        let refused = EvtchnError::UnreachableVcpu { vcpu: 1 };
        let err = bus.bind_virq(VIRQ_TIMER, 1, HandlerId(9)).unwrap_err();
        assert_eq!((err.step, err.cause), (Step::Virq, Cause::Evtchn(refused)));
        let port = bus.evtchn.alloc_unbound(0, HandlerId(3)).unwrap();
        assert_eq!(bus.evtchn.bind_vcpu(port, 1), Err(refused));
        // Bound on vCPU 0, its events arrive.
        let remote = xen.dom0().bind_interdomain(GUEST, port).unwrap();
        xen.dom0().send(remote).unwrap();
        let mut got = Vec::new();
        bus.evtchn.scan(0, 16, |p, _| got.push(p)).unwrap();
        assert!(got.contains(&port), "{got:?}");
        assert_eq!(xen.stranded_upcalls(1), 0);
        // Moved to vCPU 1 behind the core's back, its next event is one no upcall delivers.
        xen.evtchn_ops()
            .bind_vcpu(&EvtchnBindVcpu { port, vcpu: 1 })
            .unwrap();
        xen.dom0().send(remote).unwrap();
        assert_eq!(xen.stranded_upcalls(1), 1);
    }
}

/// Brings a bus up with one disk connected; returns the backend's connection.
fn connected_disk(
    xen: &xen_sim::Xen,
    bus: &mut TestBus<'_>,
    ring: &mut xen_sim::SimRingTransport,
    child: &mut Option<ChildRunner>,
    vbd: &mut VbdState,
    seen: &mut Seen,
) -> BackendConn {
    let dom0 = xen.dom0();
    run(bus, ring, child, vbd, seen);
    assert!(seen.changes.is_empty());

    // Hotplug: the toolstack adds a disk; blkback waits for the frontend.
    add_vbd(&dom0, VBD);
    set_backend_state(&dom0, VBD, XenbusState::InitWait);
    run(bus, ring, child, vbd, seen);
    assert!(seen.changes.contains(&Change::Added {
        class: DeviceClass::Vbd,
        id: VBD
    }));
    assert_eq!(frontend_state(&dom0, VBD), XenbusState::Initialised);
    assert_eq!(vbd.publishes, 1);

    let conn = backend_connect(&dom0, VBD);
    run(bus, ring, child, vbd, seen);
    assert_eq!(frontend_state(&dom0, VBD), XenbusState::Connected);
    assert!(vbd.connected);
    assert_eq!(vbd.sectors, 2048);
    conn
}

#[test]
fn a_hotplugged_disk_connects_and_poweroff_is_acknowledged() {
    let xen = sim(true, HvConfig::default(), 1);
    let mut ring = xen.store_ring();
    let links = links();
    let bus = bring_up(&xen, config(1, true), &links, &mut ring);
    let (mut child, mut vbd, mut seen) = (None, VbdState::default(), Seen::default());
    vbd.page = xen.alloc_page();
    let conn = connected_disk(&xen, bus, &mut ring, &mut child, &mut vbd, &mut seen);

    // The frontend's channel reaches the backend and back.
    let port = vbd.port.unwrap();
    bus.evtchn.send(port).unwrap();
    // (dom0 also hears the store ring's kicks on its own port.)
    assert!(xen.dom0().take_events().contains(&conn.port));
    xen.dom0().send(conn.port).unwrap();
    let mut got = Vec::new();
    bus.evtchn.scan(0, 16, |p, h| got.push((p, h))).unwrap();
    // The store's port fired too (the daemon kicks it for every reply).
    assert!(got.contains(&(port, VBD_HANDLER)));
    assert!(got
        .iter()
        .all(|&(_, h)| h == VBD_HANDLER || h == STORE_HANDLER));

    let dom0 = xen.dom0();
    dom0.xs_write("/local/domain/1/control/shutdown", b"poweroff")
        .unwrap();
    run(bus, &mut ring, &mut child, &mut vbd, &mut seen);
    assert_eq!(
        seen.controls,
        vec![ControlRequest::Shutdown(ShutdownRequest::Poweroff)]
    );
    assert_eq!(
        dom0.xs_read("/local/domain/1/control/shutdown").unwrap(),
        b""
    );
    assert!(xen.hv_state().violations.is_empty());
}

/// The children's part of a suspend for the one disk.
struct Children<'a> {
    child: &'a mut Option<ChildRunner>,
    vbd: &'a mut VbdState,
    quiesced: u32,
    resumed: u32,
}

impl<'g> SuspendChildren<TestBus<'g>, xen_sim::SimRingTransport> for Children<'_> {
    type Error = VbdError;

    fn quiesce(
        &mut self,
        _bus: &mut TestBus<'g>,
        _t: &mut xen_sim::SimRingTransport,
    ) -> Result<(), VbdError> {
        self.quiesced += 1;
        Ok(())
    }

    fn resume(
        &mut self,
        _bus: &mut TestBus<'g>,
        _t: &mut xen_sim::SimRingTransport,
    ) -> Result<(), VbdError> {
        self.resumed += 1;
        Ok(())
    }

    fn reconnect(
        &mut self,
        bus: &mut TestBus<'g>,
        t: &mut xen_sim::SimRingTransport,
    ) -> Result<(), VbdError> {
        if let Some(runner) = self.child.as_mut() {
            let mut drv = Vbd {
                evtchn: &mut *bus.evtchn,
                grants: &mut bus.grants,
                st: self.vbd,
            };
            runner
                .resume(&mut *bus.xs, t, &mut drv)
                .map_err(|e| match e {
                    xenpci_core::bus::RunError::Store(e) => VbdError::Store(e),
                    xenpci_core::bus::RunError::Frontend(_) => VbdError::NoPort,
                })?;
        }
        Ok(())
    }
}

fn suspend_resume_reconnects(fifo: bool) {
    let xen = sim(fifo, HvConfig::default(), 2);
    let mut ring = xen.store_ring();
    let links = links();
    let bus = bring_up(&xen, config(2, true), &links, &mut ring);
    let virq_port = bus
        .bind_virq(
            xen_abi::event_channel::VIRQ_TIMER,
            1,
            xenpci_core::evtchn::HandlerId(9),
        )
        .unwrap();
    let (mut child, mut vbd, mut seen) = (None, VbdState::default(), Seen::default());
    vbd.page = xen.alloc_page();
    let old = connected_disk(&xen, bus, &mut ring, &mut child, &mut vbd, &mut seen);
    let old_store_port = bus.level().store.evtchn;

    // A cancelled suspend only resumes the children.
    let mut children = Children {
        child: &mut child,
        vbd: &mut vbd,
        quiesced: 0,
        resumed: 0,
    };
    let outcome = SuspendSequence::new().run(&mut BusSuspend {
        bus: &mut *bus,
        store: &mut ring,
        hooks: &mut (),
        children: &mut children,
    });
    assert_eq!(outcome, Ok(SuspendOutcome::Cancelled));
    assert_eq!((children.quiesced, children.resumed), (1, 1));

    // Saved and restored into a new domain: Xen closed every port, xenstored forgot the
    // watches, the toolstack gave the store ring a new channel.
    xen.set_suspend_outcome(SimOutcome::Resumed);
    let outcome = SuspendSequence::new().run(&mut BusSuspend {
        bus: &mut *bus,
        store: &mut ring,
        hooks: &mut (),
        children: &mut children,
    });
    assert_eq!(outcome, Ok(SuspendOutcome::Resumed));
    assert_eq!(bus.stats().resumes, 1);
    assert_eq!(
        bus.evtchn.abi(),
        if fifo { Abi::Fifo } else { Abi::TwoLevel }
    );
    // The new domain's store channel (the number may be reused) is bound and attached.
    let status = bus.evtchn.status(bus.level().store.evtchn).unwrap();
    assert_eq!(
        status.status,
        xen_abi::event_channel::EVTCHNSTAT_INTERDOMAIN
    );
    assert!(bus
        .evtchn
        .dispatch()
        .get(bus.level().store.evtchn)
        .is_some());
    let _ = old_store_port;
    assert_eq!(xen.store_watches(GUEST), 4);
    // The VIRQ is bound again (on a new port) and delivers.
    let virq = *bus.virqs().next().unwrap();
    assert!(xen.raise_virq(xen_abi::event_channel::VIRQ_TIMER, 1));
    let mut got = Vec::new();
    bus.evtchn.scan(1, 16, |p, h| got.push((p, h))).unwrap();
    assert_eq!(got, vec![(virq.port, xenpci_core::evtchn::HandlerId(9))]);
    // With per-vCPU vectors every upcall reached its vCPU.
    assert_eq!(xen.stranded_upcalls(1), 0);
    let _ = virq_port;
    // The child released its old ring and went back to Initialising.
    assert_eq!(vbd.releases, 1);
    let dom0 = xen.dom0();
    assert_eq!(frontend_state(&dom0, VBD), XenbusState::Initialising);

    // The new host's blkback: the old mapping is gone with the old host, a fresh backend waits.
    dom0.unmap_grant(old.ring).unwrap();
    set_backend_state(&dom0, VBD, XenbusState::InitWait);
    run(bus, &mut ring, &mut child, &mut vbd, &mut seen);
    assert_eq!(frontend_state(&dom0, VBD), XenbusState::Initialised);
    assert_eq!(vbd.publishes, 2);
    let conn = backend_connect(&dom0, VBD);
    run(bus, &mut ring, &mut child, &mut vbd, &mut seen);
    assert_eq!(frontend_state(&dom0, VBD), XenbusState::Connected);
    assert!(vbd.connected);
    // The new channel works both ways.
    bus.evtchn.send(vbd.port.unwrap()).unwrap();
    assert!(dom0.take_events().contains(&conn.port));

    // The store and its watches work in the new domain.
    dom0.xs_write("/local/domain/1/control/shutdown", b"reboot")
        .unwrap();
    run(bus, &mut ring, &mut child, &mut vbd, &mut seen);
    assert_eq!(
        seen.controls.last(),
        Some(&ControlRequest::Shutdown(ShutdownRequest::Reboot))
    );
    assert!(xen.hv_state().violations.is_empty());
}

#[test]
fn suspend_and_resume_in_a_new_domain_fifo() {
    suspend_resume_reconnects(true);
}

#[test]
fn suspend_and_resume_in_a_new_domain_two_level() {
    suspend_resume_reconnects(false);
}
