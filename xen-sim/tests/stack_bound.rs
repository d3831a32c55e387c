//! Every entry point the Windows shell calls, run on a thread with the x64 kernel's 24 KiB
//! stack, each with its stack high-water mark measured by painting: bring-up (the event channels
//! written into the shell's memory and started there, the hypervisor level, the bus built in
//! place, the store), the store's first processing (enumeration), the upcall scan, grant and end
//! of access, xenstore round trips (the single-threaded client on the bus and the multiplexer),
//! and suspend with resume in a new domain (whole, and step by step). Each must stay under
//! [`BOUND`]. The frames of the model behind the platform traits are counted too, so the bound
//! covers the core's own use with room to spare.
//!
//! Only meaningful with optimisations (a debug build keeps every temporary on the stack), so
//! this file is built in release only: `cargo test --release -p xen-sim --test stack_bound`,
//! which `scripts/test` runs.
#![cfg(not(debug_assertions))]

mod bus_support;

use std::mem::MaybeUninit;

use bus_support::*;
use xen_sim::{HostLock, HostWaiter, SimRingTransport, StoreStream, SuspendOutcome as SimOutcome};
use xenpci_core::bus::{start_hypervisor, SuspendChildren};
use xenpci_core::evtchn::HandlerId;
use xenpci_core::grant_table::GrantTable;
use xenpci_core::suspend::{SuspendOutcome, SuspendSequence};
use xenpci_core::xenbus::ReadBuffers;
use xenpci_core::xenstore::{MuxCore, TxId, XsConnection, XsMux};

/// The most stack one entry point may use.
const BOUND: usize = 8 * 1024;
/// The thread's stack: the x64 Windows kernel stack. A call deeper than what is left below the
/// measuring frame overflows it and the test process aborts.
const THREAD_STACK: usize = 24 * 1024;
/// How much of it is painted below the measuring frame: more than [`BOUND`], so a call over the
/// bound is measured as such (a call deeper than this reads as using all of it).
const PAINTED: usize = 12 * 1024;
const PATTERN: u8 = 0xa5;

/// Paints `PAINTED` bytes of the stack below the caller's frame and returns their addresses.
#[inline(never)]
fn paint() -> (usize, usize) {
    let mut area = [PATTERN; PAINTED];
    std::hint::black_box(&mut area);
    let low = area.as_ptr() as usize;
    (low, low + PAINTED)
}

/// How many bytes below `high` were written since [`paint`].
#[inline(never)]
fn high_water(low: usize, high: usize) -> usize {
    for addr in low..high {
        // SAFETY:
        // 1. `addr` lies in the area `paint` filled, inside this thread's stack mapping and
        //    below the current frame, so it is mapped and readable;
        // 2. no Rust object lives there any more (the frames that used it have returned), so
        //    nothing aliases the read;
        // 3. any byte is a valid `u8`.
        let byte = unsafe { std::ptr::read_volatile(addr as *const u8) };
        if byte != PATTERN {
            return high - addr;
        }
    }
    0
}

/// Runs `f` in a frame of its own below the painted area's top.
#[inline(never)]
fn call<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// One measurement: what ran, the stack it used, the bound it must stay under.
type Report = Vec<(String, usize, usize)>;

/// Runs `f` and returns its result, recording its stack high-water mark against [`BOUND`].
fn measured<R>(name: &str, report: &mut Report, f: impl FnOnce() -> R) -> R {
    let (low, high) = paint();
    let r = call(f);
    let used = high_water(low, high);
    report.push((name.to_string(), used, BOUND));
    r
}

struct NoChildren;

impl<'g> SuspendChildren<TestBus<'g>, SimRingTransport> for NoChildren {
    type Error = ();
    fn quiesce(&mut self, _: &mut TestBus<'g>, _: &mut SimRingTransport) -> Result<(), ()> {
        Ok(())
    }
    fn resume(&mut self, _: &mut TestBus<'g>, _: &mut SimRingTransport) -> Result<(), ()> {
        Ok(())
    }
    fn reconnect(&mut self, _: &mut TestBus<'g>, _: &mut SimRingTransport) -> Result<(), ()> {
        Ok(())
    }
}

const SLOTS: usize = 16;
const REGS: usize = 32;
type Core = MuxCore<StoreStream, SLOTS, REGS, 512>;
const KEYS: usize = Core::key_count();
type Mux = XsMux<StoreStream, HostLock<Core>, HostWaiter<KEYS>, SLOTS, REGS, 512>;
static MUX: Mux = XsMux::new(
    HostLock::new(MuxCore::new()),
    HostWaiter::new(),
    2_000_000_000,
);

/// Everything the shell calls, in order, on one small-stack thread.
fn entry_points(report: &mut Report, xen: &xen_sim::Xen, xs: &'static mut XsConnection) {
    let mut ring = xen.store_ring();
    let mut links = links();
    let cfg = config(2, true);
    measured("XsConnection::clear (in place)", report, || xs.clear());
    // Memory the shell provides, never on the stack: the event channels written there unstarted
    // and started in place.
    let evtchn_slot: &mut MaybeUninit<Chans> = Box::leak(Box::new_uninit());
    let evtchn = measured(
        "EventChannels::unstarted (into the shell's memory)",
        report,
        || {
            evtchn_slot.write(Chans::unstarted(
                xen.evtchn_ops(),
                xen.shared_info(),
                xen.fifo(),
            ))
        },
    );
    measured("EventChannels::start (in place)", report, || {
        evtchn
            .start(xenpci_core::evtchn::Config {
                vcpus: cfg.vcpus,
                prefer_fifo: cfg.prefer_fifo,
            })
            .unwrap()
    });
    let slot: &mut MaybeUninit<TestBus<'_>> = Box::leak(Box::new_uninit());
    let bufs: &mut ReadBuffers = Box::leak(Box::new_uninit()).write(ReadBuffers::new());

    let hv = xen.hypervisor();
    let (level, frames) = measured("start_hypervisor", report, || {
        start_hypervisor(&hv, &cfg, &mut ()).unwrap()
    });
    let grants = GrantTable::new(xen.grant_entries(), &mut links, 0).unwrap();
    let bus = measured("Bus::init_in_place", report, || {
        TestBus::init_in_place(slot, hv, cfg, level, frames, grants, evtchn, xs, &mut ()).unwrap()
    });
    measured("Bus::start_store", report, || {
        bus.start_store(&mut ring).unwrap()
    });
    let mut events = 0;
    measured("Bus::process_store (enumeration)", report, || {
        bus.process_store(&mut ring, bufs, |_| events += 1).unwrap()
    });

    // The upcall: a VIRQ raised and scanned.
    bus.bind_virq(xen_abi::event_channel::VIRQ_TIMER, 1, HandlerId(9))
        .unwrap();
    assert!(xen.raise_virq(xen_abi::event_channel::VIRQ_TIMER, 1));
    let mut fired = 0;
    measured("EventChannels::scan", report, || {
        bus.evtchn.scan(1, 16, |_, _| fired += 1).unwrap()
    });
    assert_eq!(fired, 1);

    let page = xen.alloc_page();
    let gref = measured("GrantTable::grant_access", report, || {
        bus.grants.grant_access(0, page, false).unwrap()
    });
    measured("GrantTable::end_access", report, || {
        bus.grants.end_access(gref).unwrap()
    });

    measured("XsConnection::write (round trip)", report, || {
        bus.xs.write(&mut ring, TxId::NONE, "data/x", b"1").unwrap()
    });
    let n = measured("XsConnection::read (round trip)", report, || {
        bus.xs
            .read(&mut ring, TxId::NONE, "data/x", &mut bufs.value)
            .unwrap()
    });
    assert_eq!(&bufs.value[..n], b"1");

    // The multiplexer, a `static`, over a second connection of the same guest.
    MUX.attach(xen.store_stream());
    measured("XsMux::write (round trip)", report, || {
        MUX.write(TxId::NONE, "data/y", b"2").unwrap()
    });
    let n = measured("XsMux::read (round trip)", report, || {
        MUX.read(TxId::NONE, "data/y", &mut bufs.value).unwrap()
    });
    assert_eq!(&bufs.value[..n], b"2");
    measured("XsMux::transaction", report, || {
        MUX.transaction(4, |m, tx| m.write(tx, "data/z", b"3"))
            .unwrap()
    });

    xen.set_suspend_outcome(SimOutcome::Resumed);
    let outcome = measured(
        "SuspendSequence::run (resume in a new domain)",
        report,
        || {
            SuspendSequence::new().run(&mut xenpci_core::bus::BusSuspend {
                bus: &mut *bus,
                store: &mut ring,
                hooks: &mut (),
                children: &mut NoChildren,
            })
        },
    );
    assert_eq!(outcome, Ok(SuspendOutcome::Resumed));
    assert_eq!(bus.stats().resumes, 1);
    // Once more into a new domain, each step of the resume on its own.
    xen.set_suspend_outcome(SimOutcome::Resumed);
    measured("Bus::suspend_hypercall", report, || bus.suspend_hypercall());
    measured("Bus::restore_shared_info", report, || {
        bus.restore_shared_info(&mut ()).unwrap()
    });
    measured("Bus::restore_grant_table", report, || {
        bus.restore_grant_table(&mut ()).unwrap()
    });
    measured("Bus::restore_event_channels", report, || {
        bus.restore_event_channels().unwrap()
    });
    measured("Bus::reset_store", report, || {
        bus.reset_store(&mut ring).unwrap()
    });
    measured("Bus::reregister_watches", report, || {
        bus.reregister_watches(&mut ring).unwrap()
    });
    let _ = events;
}

#[test]
fn every_entry_point_fits_a_small_stack() {
    let xen = sim(true, xen_sim::HvConfig::default(), 2);
    let xs = store_connection();
    let report = std::thread::Builder::new()
        .name("small-stack".into())
        .stack_size(THREAD_STACK)
        .spawn(move || {
            let mut report = Report::new();
            entry_points(&mut report, &xen, xs);
            report
        })
        .unwrap()
        .join()
        .unwrap();
    for (name, used, bound) in &report {
        println!("{used:>6} bytes (bound {bound:>5})  {name}");
    }
    // The instrument works: the bring-up's frames were seen.
    assert!(report.iter().any(|(_, used, _)| *used > 1024));
    for (name, used, bound) in &report {
        assert!(
            used < bound,
            "{name} used {used} bytes of stack, bound {bound}"
        );
    }
}
