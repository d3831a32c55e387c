//! The event channels shared between CPUs: building in place, the vCPUs the upcall reaches,
//! nested scans, and scans of two vCPUs on real threads racing Xen and a child.

use super::*;

#[test]
fn an_unstarted_instance_touches_nothing_until_started_in_place() {
    let mem = Mem::new(4);
    let ops = Ops::new(&mem, None);
    let mut ev: Chans<'_, 64> = EventChannels::unstarted(&ops, &mem, &mem);
    assert_eq!(
        ev.mask(1),
        Err(EvtchnError::PortOutOfRange {
            port: 1,
            capacity: 0
        })
    );
    assert_eq!(
        ev.scan(0, 8, |_, _| {}),
        Err(EvtchnError::InvalidVcpu { vcpu: 0 })
    );
    assert_eq!(mem.pages.load(SeqCst), 0);
    let config = Config {
        vcpus: 5,
        prefer_fifo: true,
    };
    assert_eq!(ev.start(config), Err(EvtchnError::InvalidVcpu { vcpu: 5 }));
    let config = Config {
        vcpus: 2,
        prefer_fifo: true,
    };
    assert_eq!(ev.start(config), Ok(Abi::Fifo));
    assert_eq!(ops.state.borrow().init_controls, [0, 1]);
    let port = ev.alloc_unbound(0, HandlerId(4)).unwrap();
    ops.raise(port);
    assert_eq!(scan_all(&ev, 0, 8), [port]);
}

#[test]
fn ports_are_bound_only_to_vcpus_the_upcall_reaches() {
    use crate::hypervisor::hvm::{CallbackVia, UpcallMethod};
    assert_eq!(
        UpcallReach::of(UpcallMethod::PerVcpuVector(0xf3)),
        UpcallReach::AllVcpus
    );
    assert_eq!(
        UpcallReach::of(UpcallMethod::CallbackIrq(CallbackVia::Vector(0xf3))),
        UpcallReach::AllVcpus
    );
    assert_eq!(
        UpcallReach::of(UpcallMethod::CallbackIrq(CallbackVia::Gsi(28))),
        UpcallReach::Vcpu0
    );
    let intx = CallbackVia::PciIntx {
        segment: 0,
        bus: 0,
        devfn: 3 << 3,
        pin: 0,
    };
    assert_eq!(
        UpcallReach::of(UpcallMethod::CallbackIrq(intx)),
        UpcallReach::Vcpu0
    );
    for init in [None, Some(XenErrno::ENOSYS)] {
        let mem = Mem::new(4);
        let ops = Ops::new(&mem, init);
        // No upcall stated yet: only vCPU 0 counts as reached.
        let mut ev: Chans<'_, 64> = EventChannels::unstarted(&ops, &mem, &mem);
        ev.start(Config {
            vcpus: 2,
            prefer_fifo: true,
        })
        .unwrap();
        assert_eq!(ev.upcall_reach(), UpcallReach::Vcpu0);
        let port = ev.alloc_unbound(0, HandlerId(1)).unwrap();
        let refused = Err(EvtchnError::UnreachableVcpu { vcpu: 1 });
        assert_eq!(ev.bind_vcpu(port, 1), refused);
        assert_eq!(ev.bind_virq(0, 1, HandlerId(2)).map(|_| ()), refused);
        assert_eq!(ev.attach(port + 1, HandlerId(3), 1), refused);
        // Refused before Xen was asked: the port still notifies vCPU 0.
        assert!(ops.state.borrow().vcpu_of.is_empty());
        assert_eq!(ev.dispatch().get(port).unwrap().vcpu, 0);
        // The callback vector reaches every vCPU.
        ev.set_upcall_reach(UpcallReach::of(UpcallMethod::CallbackIrq(
            CallbackVia::Vector(0xf3),
        )))
        .unwrap();
        ev.bind_vcpu(port, 1).unwrap();
        assert_eq!(ops.state.borrow().vcpu_of.get(&port), Some(&1));
        assert_eq!(ev.dispatch().get(port).unwrap().vcpu, 1);
        // Falling back to a vCPU-0-only upcall with a port on vCPU 1 is refused.
        assert_eq!(
            ev.set_upcall_reach(UpcallReach::Vcpu0),
            Err(EvtchnError::BoundOffVcpu0 { port, vcpu: 1 })
        );
        assert_eq!(ev.upcall_reach(), UpcallReach::AllVcpus);
        ev.bind_vcpu(port, 0).unwrap();
        ev.set_upcall_reach(UpcallReach::Vcpu0).unwrap();
        // An unregistered port is not moved.
        assert_eq!(
            ev.bind_vcpu(port + 5, 0),
            Err(EvtchnError::NotRegistered { port: port + 5 })
        );
    }
}

#[test]
fn a_nested_scan_of_the_same_vcpu_is_refused_and_loses_nothing() {
    for init in [None, Some(XenErrno::ENOSYS)] {
        let mem = Mem::new(4);
        let ops = Ops::new(&mem, init);
        let ev: Chans<'_, 64> = setup(&mem, &ops);
        let a = ev.alloc_unbound(0, HandlerId(1)).unwrap();
        let b = ev.bind_virq(0, 1, HandlerId(2)).unwrap();
        ops.raise(a);
        ops.raise(b);
        let mut nested = Vec::new();
        let mut got = Vec::new();
        ev.scan(0, 8, |p, _| {
            got.push(p);
            // An upcall nesting in this scan on the same CPU: vCPU 0 is busy, vCPU 1 is not.
            nested.push(ev.scan(0, 8, |_, _| panic!("nested scan delivered")));
            ev.scan(1, 8, |p, _| got.push(p)).unwrap();
        })
        .unwrap();
        assert_eq!(nested, [Err(EvtchnError::ScanInProgress { vcpu: 0 })]);
        assert_eq!(got, [a, b]);
        // The slot is free again.
        ops.raise(a);
        assert_eq!(scan_all(&ev, 0, 8), [a]);
    }
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Two vCPUs scanning at once on real threads while Xen raises events on both and a child masks
/// and unmasks ports: every scan is accepted (no lock shared between the vCPUs), a port is only
/// ever reported by its own vCPU's scan, never more often than it was raised, and once the
/// raising stops and the scans drain, every raised port was delivered and none is left pending.
fn concurrent_scans(init: Option<XenErrno>, seed: u64) {
    use std::sync::atomic::AtomicBool;
    const PORTS: u32 = 96;
    let mem = Mem::new(4);
    let ops = Ops::new(&mem, init);
    let ev: Chans<'_, 128> = setup(&mem, &ops);
    let mut rng = seed;
    let ports: Vec<u32> = (0..PORTS)
        .map(|i| {
            let p = ev.alloc_unbound(0, HandlerId(i)).unwrap();
            if i % 2 == 1 {
                ev.bind_vcpu(p, 1).unwrap();
            }
            if ev.abi() == Abi::Fifo {
                ev.set_priority(p, (xorshift(&mut rng) % 3) as u32 + 6)
                    .unwrap();
            }
            p
        })
        .collect();
    let raised: Vec<AtomicU32> = (0..128).map(|_| AtomicU32::new(0)).collect();
    let delivered: Vec<AtomicU32> = (0..128).map(|_| AtomicU32::new(0)).collect();
    let stop = AtomicBool::new(false);
    let (ev, ports, raised, delivered, stop, ops) = (&ev, &ports, &raised, &delivered, &stop, &ops);
    let scan_once = |vcpu: u32, budget: u32| {
        ev.scan(vcpu, budget, |p, h| {
            let binding = ev.dispatch().get(p).unwrap();
            assert_eq!(binding.vcpu, vcpu, "port {p} reported on the wrong vCPU");
            assert_eq!(binding.handler, h);
            delivered[p as usize].fetch_add(1, SeqCst);
        })
        .expect("scans of different vCPUs never block each other")
    };
    std::thread::scope(|scope| {
        for vcpu in 0..2u32 {
            scope.spawn(move || {
                let mut budget = 1;
                while !stop.load(SeqCst) {
                    scan_once(vcpu, budget);
                    budget = budget % 7 + 1;
                    std::thread::yield_now();
                }
            });
        }
        let mut raiser_rng = seed ^ 0x9e37_79b9;
        let raiser = scope.spawn(move || {
            for _ in 0..1500 {
                let p = ports[(xorshift(&mut raiser_rng) % u64::from(PORTS)) as usize];
                raised[p as usize].fetch_add(1, SeqCst);
                ops.raise(p);
            }
        });
        let mut child_rng = seed ^ 0x7f4a_7c15;
        let child = scope.spawn(move || {
            for _ in 0..600 {
                let p = ports[(xorshift(&mut child_rng) % u64::from(PORTS)) as usize];
                ev.mask(p).unwrap();
                std::thread::yield_now();
                ev.unmask(p).unwrap();
            }
        });
        raiser.join().unwrap();
        child.join().unwrap();
        stop.store(true, SeqCst);
    });
    // Drain: scan both vCPUs until a whole pass finds nothing.
    for _ in 0..10_000 {
        let a = scan_once(0, 64);
        let b = scan_once(1, 64);
        if a.delivered + b.delivered == 0 && !a.more && !b.more {
            break;
        }
    }
    for &p in ports {
        let (r, d) = (
            raised[p as usize].load(SeqCst),
            delivered[p as usize].load(SeqCst),
        );
        assert!(d <= r, "port {p} delivered {d} times for {r} raises");
        assert!(
            r == 0 || d > 0,
            "port {p} raised {r} times, never delivered"
        );
        assert!(!ev.is_pending(p).unwrap(), "port {p} left pending");
        assert!(!ev.is_masked(p).unwrap(), "port {p} left masked");
    }
}

#[test]
fn concurrent_scans_two_level() {
    for seed in [1, 0xdead_beef] {
        concurrent_scans(Some(XenErrno::ENOSYS), seed);
    }
}

#[test]
fn concurrent_scans_fifo() {
    for seed in [1, 0xdead_beef] {
        concurrent_scans(None, seed);
    }
}
