//! The core's event channels over the model: binding, backend notifications, the upcall scan,
//! both ABIs, and storms.

use xen_abi::event_channel::VIRQ_TIMER;
use xen_sim::{Config as SimConfig, SimEvtchnOps, SimFifo, SimSharedInfo, Xen};
use xenpci_core::evtchn::{Abi, Config, EventChannels, HandlerId, UpcallReach};

type Chans = EventChannels<SimEvtchnOps, SimSharedInfo, SimFifo, 1024, 2>;

fn setup(fifo: bool) -> (Xen, Chans) {
    let xen = Xen::new(SimConfig {
        fifo,
        vcpus: 2,
        ..SimConfig::default()
    });
    let mut chans = Chans::unstarted(xen.evtchn_ops(), xen.shared_info(), xen.fifo());
    chans
        .start(Config {
            vcpus: 2,
            prefer_fifo: true,
        })
        .unwrap();
    // As with the per-vCPU upcall vector: events reach both vCPUs.
    chans.set_upcall_reach(UpcallReach::AllVcpus).unwrap();
    (xen, chans)
}

fn scan_all(chans: &Chans, vcpu: u32) -> Vec<(u32, HandlerId)> {
    let mut got = Vec::new();
    loop {
        let out = chans.scan(vcpu, 64, |p, h| got.push((p, h))).unwrap();
        if !out.more {
            return got;
        }
    }
}

fn interdomain_roundtrip(fifo: bool) {
    let (xen, chans) = setup(fifo);
    assert_eq!(chans.abi(), if fifo { Abi::Fifo } else { Abi::TwoLevel });
    assert_eq!(xen.guest_uses_fifo(), fifo);
    let dom0 = xen.dom0();

    // Frontend offers a port; the backend binds to it.
    let port = chans.alloc_unbound(0, HandlerId(7)).unwrap();
    let back = dom0.bind_interdomain(xen.guest_domid(), port).unwrap();
    assert_eq!(dom0.take_events(), vec![back]);
    dom0.send(back).unwrap();
    assert!(xen.upcall_pending(0));
    assert_eq!(scan_all(&chans, 0), vec![(port, HandlerId(7))]);
    assert!(!xen.upcall_pending(0));
    assert_eq!(scan_all(&chans, 0), vec![]);

    // The frontend notifies the backend.
    chans.send(port).unwrap();
    assert_eq!(dom0.take_events(), vec![back]);

    // The backend offers a port; the frontend binds (Xen raises the new local port).
    let offered = dom0.alloc_unbound(xen.guest_domid()).unwrap();
    let local = chans.bind_interdomain(0, offered, HandlerId(8)).unwrap();
    assert_eq!(scan_all(&chans, 0), vec![(local, HandlerId(8))]);

    // Masked ports stay pending and fire on unmask.
    chans.mask(port).unwrap();
    dom0.send(back).unwrap();
    assert_eq!(scan_all(&chans, 0), vec![]);
    assert!(chans.is_pending(port).unwrap());
    chans.unmask(port).unwrap();
    assert_eq!(scan_all(&chans, 0), vec![(port, HandlerId(7))]);

    // Closing leaves the backend's end unbound; its sends go nowhere.
    chans.close(port).unwrap();
    dom0.send(back).unwrap();
    assert_eq!(scan_all(&chans, 0), vec![]);
}

#[test]
fn interdomain_two_level() {
    interdomain_roundtrip(false);
}

#[test]
fn interdomain_fifo() {
    interdomain_roundtrip(true);
}

fn storm(fifo: bool) {
    let (xen, chans) = setup(fifo);
    let dom0 = xen.dom0();
    let mut backs = Vec::new();
    for h in 0..40 {
        let p = chans.alloc_unbound(0, HandlerId(h)).unwrap();
        backs.push((p, dom0.bind_interdomain(xen.guest_domid(), p).unwrap()));
    }
    // Every port fires, and one of them keeps firing during the scan.
    for &(_, b) in &backs {
        dom0.send(b).unwrap();
    }
    let noisy = backs[0].1;
    let mut seen = std::collections::BTreeMap::new();
    let mut scans = 0;
    loop {
        let out = chans
            .scan(0, 8, |p, _| {
                *seen.entry(p).or_insert(0u32) += 1;
            })
            .unwrap();
        assert!(out.delivered <= 8, "the budget bounds every scan");
        dom0.storm(noisy, 1000).unwrap();
        scans += 1;
        if seen.len() == backs.len() || scans > 100 {
            break;
        }
    }
    assert_eq!(
        seen.len(),
        backs.len(),
        "a storm on one port starves no other"
    );
    assert!(scans <= 12, "took {scans} scans");
    assert!(chans.stats().budget_exhausted > 0);
}

#[test]
fn event_storm_is_bounded_two_level() {
    storm(false);
}

#[test]
fn event_storm_is_bounded_fifo() {
    storm(true);
}

#[test]
fn two_level_only_xen_falls_back() {
    let (xen, chans) = setup(false);
    assert_eq!(chans.abi(), Abi::TwoLevel);
    assert!(!xen.guest_uses_fifo());
}

#[test]
fn dropped_and_delayed_notifications() {
    let (xen, chans) = setup(true);
    let dom0 = xen.dom0();
    let port = chans.alloc_unbound(0, HandlerId(1)).unwrap();
    let back = dom0.bind_interdomain(xen.guest_domid(), port).unwrap();
    xen.event_faults(|f| f.drop_next = 1);
    dom0.send(back).unwrap();
    assert_eq!(scan_all(&chans, 0), vec![]);
    xen.event_faults(|f| f.delay = true);
    dom0.send(back).unwrap();
    assert_eq!(scan_all(&chans, 0), vec![]);
    xen.event_faults(|f| f.delay = false);
    assert_eq!(xen.release_delayed_events(), 1);
    assert_eq!(scan_all(&chans, 0), vec![(port, HandlerId(1))]);
}

#[test]
fn vanished_backend_leaves_unbound_ports() {
    let (xen, chans) = setup(true);
    let backend = xen.backend(3);
    let port = chans.alloc_unbound(3, HandlerId(1)).unwrap();
    let back = backend.bind_interdomain(xen.guest_domid(), port).unwrap();
    backend.send(back).unwrap();
    backend.vanish(true);
    assert_eq!(scan_all(&chans, 0), vec![(port, HandlerId(1))]);
    let status = chans.status(port).unwrap();
    assert_eq!(status.status, xen_abi::event_channel::EVTCHNSTAT_UNBOUND);
    // The guest's notifications now go nowhere, without error.
    chans.send(port).unwrap();
    assert!(backend.send(back).is_err());
}

#[test]
fn virq_on_second_vcpu() {
    let (xen, chans) = setup(true);
    let port = chans.bind_virq(VIRQ_TIMER, 1, HandlerId(9)).unwrap();
    assert!(xen.raise_virq(VIRQ_TIMER, 1));
    assert!(xen.upcall_pending(1));
    assert_eq!(scan_all(&chans, 0), vec![]);
    assert_eq!(scan_all(&chans, 1), vec![(port, HandlerId(9))]);
}

/// The event channels shared by two vCPU threads and a child thread over the model: each vCPU
/// scans its own ports while the backend sends on all of them and the child masks and unmasks;
/// afterwards every port was delivered, on its own vCPU, and nothing is left pending.
fn shared_between_threads(fifo: bool) {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    let (xen, chans) = setup(fifo);
    let dom0 = xen.dom0();
    let mut ports = Vec::new();
    for i in 0..16u32 {
        let p = chans.alloc_unbound(0, HandlerId(i)).unwrap();
        chans.bind_vcpu(p, i % 2).unwrap();
        let back = dom0.bind_interdomain(xen.guest_domid(), p).unwrap();
        ports.push((p, back));
    }
    // The binding raised each local port once; take those first.
    scan_all(&chans, 0);
    scan_all(&chans, 1);
    let stop = AtomicBool::new(false);
    let (chans, ports, stop) = (&chans, &ports, &stop);
    let seen: Vec<Vec<u32>> = std::thread::scope(|scope| {
        let scanners: Vec<_> = (0..2u32)
            .map(|vcpu| {
                scope.spawn(move || {
                    let mut seen = Vec::new();
                    loop {
                        let done = stop.load(SeqCst);
                        for (p, h) in scan_all(chans, vcpu) {
                            assert_eq!(h.0 % 2, vcpu, "port {p} scanned on vCPU {vcpu}");
                            seen.push(p);
                        }
                        if done {
                            return seen;
                        }
                        std::thread::yield_now();
                    }
                })
            })
            .collect();
        let child = scope.spawn(move || {
            for &(p, _) in ports.iter().cycle().take(200) {
                chans.mask(p).unwrap();
                chans.unmask(p).unwrap();
            }
        });
        for round in 0..20 {
            for &(_, back) in ports {
                dom0.send(back).unwrap();
            }
            if round % 4 == 0 {
                std::thread::yield_now();
            }
        }
        child.join().unwrap();
        stop.store(true, SeqCst);
        scanners.into_iter().map(|s| s.join().unwrap()).collect()
    });
    for &(p, _) in ports {
        assert!(
            seen.iter().flatten().any(|&s| s == p),
            "port {p} never delivered"
        );
        assert!(!chans.is_pending(p).unwrap(), "port {p} left pending");
        assert!(!chans.is_masked(p).unwrap());
    }
}

#[test]
fn shared_between_threads_two_level() {
    shared_between_threads(false);
}

#[test]
fn shared_between_threads_fifo() {
    shared_between_threads(true);
}
