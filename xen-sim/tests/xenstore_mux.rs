//! The multiplexed xenstore client (`XsMux`) shared by many threads over the model's xenstored:
//! concurrent reads, writes, transactions and watches; a watch-event storm while others wait;
//! timeouts with late replies; `EAGAIN` retries; reset and re-registration under load.
//!
//! Each test keeps its multiplexer in a `static` built by the `const` constructors, as the
//! driver will, and runs a thread that plays the store's event-channel DPC.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use xen_abi::xenstore::XsErrno;
use xen_sim::{HostLock, HostWaiter, SimRingTransport, StoreEvents, StoreStream, Xen};
use xenpci_core::xenstore::{
    MuxCore, Transport, TransportError, TxId, Wait, WatchNews, XsConnection, XsError, XsMux,
};

const SLOTS: usize = 16;
const REGS: usize = 32;
const KEYS: usize = MuxCore::<StoreStream, SLOTS, REGS, 512>::key_count();
const TIMEOUT: Duration = Duration::from_secs(5);
const TIMEOUT_NS: u64 = TIMEOUT.as_nanos() as u64;
const SHORT_NS: u64 = 200_000_000;

type Mux<T> = XsMux<T, HostLock<MuxCore<T, SLOTS, REGS, 512>>, HostWaiter<KEYS>, SLOTS, REGS, 512>;

macro_rules! mux {
    ($t:ty, $timeout:expr) => {{
        static MUX: Mux<$t> =
            XsMux::new(HostLock::new(MuxCore::new()), HostWaiter::new(), $timeout);
        &MUX
    }};
}

/// Runs `f` with a thread that plays the store's event-channel DPC for `events`.
fn with_dpc<T: Transport + Send, R>(
    mux: &'static Mux<T>,
    mut events: StoreEvents,
    f: impl FnOnce() -> R,
) -> R {
    /// Stops the DPC thread even when `f` panics, so that the scope can end.
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                if events.wait(Duration::from_millis(20)) {
                    mux.store_event();
                }
            }
        });
        let _stop = Stop(&stop);
        f()
    })
}

fn read_string<T: Transport>(mux: &Mux<T>, path: &str) -> Result<String, XsError> {
    let mut buf = [0u8; 256];
    let n = mux.read(TxId::NONE, path, &mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// 16 threads at once: each writes, reads back and lists its own nodes and watches its own
/// subtree (and must see its own writes there); half of them also increment one shared counter
/// in transactions, which conflict with each other and are redone.
fn many_threads<T: Transport + Send>(mux: &'static Mux<T>) {
    const THREADS: usize = 16;
    const ROUNDS: usize = 20;
    const INCREMENTS: usize = 10;
    mux.write(TxId::NONE, "data/counter", b"0").unwrap();
    thread::scope(|s| {
        for i in 0..THREADS {
            s.spawn(move || {
                let base = format!("data/t{i}");
                mux.mkdir(TxId::NONE, base.as_str()).unwrap();
                let watch = mux.watch(base.as_str()).unwrap();
                let mut buf = [0u8; 512];
                // The registration's own first event.
                assert_eq!(
                    mux.next_watch_event(watch, &mut buf).unwrap(),
                    Some(WatchNews::Fired(base.as_bytes()))
                );
                for r in 0..ROUNDS {
                    let path = format!("{base}/k{r}");
                    let value = format!("{i}:{r}");
                    mux.write(TxId::NONE, path.as_str(), value.as_bytes())
                        .unwrap();
                    assert_eq!(read_string(mux, &path).unwrap(), value);
                    // The event of this write reaches this thread's registration, whoever
                    // polled the connection when it came.
                    match mux.next_watch_event(watch, &mut buf).unwrap() {
                        Some(WatchNews::Fired(p)) => assert_eq!(p, path.as_bytes()),
                        other => panic!("thread {i} round {r}: {other:?}"),
                    }
                }
                let names = mux.directory(TxId::NONE, base.as_str(), &mut buf).unwrap();
                assert_eq!(names.count(), ROUNDS);
                if i % 2 == 0 {
                    for _ in 0..INCREMENTS {
                        mux.transaction(64, |m, tx| {
                            let mut v = [0u8; 16];
                            let n = m.read(tx, "data/counter", &mut v)?;
                            let old: u64 = std::str::from_utf8(&v[..n]).unwrap().parse().unwrap();
                            m.write(tx, "data/counter", (old + 1).to_string().as_bytes())
                        })
                        .unwrap();
                    }
                }
                mux.unwatch(watch).unwrap();
            });
        }
    });
    assert_eq!(
        read_string(mux, "data/counter").unwrap(),
        (THREADS / 2 * INCREMENTS).to_string()
    );
    let stats = mux.stats();
    assert_eq!(stats.timeouts, 0);
    assert_eq!(stats.late_replies, 0);
    assert_eq!(mux.with_core(|c| c.slots_in_use()), 0);
}

#[test]
fn sixteen_threads_over_the_stream() {
    let xen = Xen::default();
    let stream = xen.store_stream();
    let mux = mux!(StoreStream, TIMEOUT_NS);
    let events = stream.events();
    mux.attach(stream);
    with_dpc(mux, events, || many_threads(mux));
}

#[test]
fn sixteen_threads_over_the_ring() {
    let xen = Xen::default();
    let ring = xen.store_ring();
    let mux = mux!(SimRingTransport, TIMEOUT_NS);
    let events = ring.events();
    mux.attach(ring);
    with_dpc(mux, events, || many_threads(mux));
}

/// A backend writes without pause under a watched subtree while eight threads do round trips:
/// every round trip completes, the storm's consumer ends up knowing the storm's last value
/// (from an event, or by re-reading after an overflow), and a quiet watch registered by another
/// thread gets exactly its own events.
#[test]
fn watch_storm_while_others_wait() {
    let xen = Xen::default();
    let stream = xen.store_stream();
    let mux = mux!(StoreStream, TIMEOUT_NS);
    let events = stream.events();
    mux.attach(stream);
    mux.mkdir(TxId::NONE, "storm").unwrap();
    mux.mkdir(TxId::NONE, "quiet").unwrap();
    let storm_watch = mux.watch("storm").unwrap();
    let quiet_watch = mux.watch("quiet").unwrap();
    let storming = AtomicBool::new(true);
    let written = AtomicU64::new(0);
    with_dpc(mux, events, || {
        thread::scope(|s| {
            // dom0 writes into the guest's subtree as fast as it can.
            s.spawn(|| {
                let dom0 = xen.backend(0);
                let mut n = 0u64;
                let start = Instant::now();
                while start.elapsed() < Duration::from_millis(1500) {
                    dom0.xs_write("/local/domain/1/storm/x", n.to_string().as_bytes())
                        .unwrap();
                    n += 1;
                }
                dom0.xs_write("/local/domain/1/storm/last", b"done")
                    .unwrap();
                written.store(n, Ordering::Relaxed);
                storming.store(false, Ordering::Relaxed);
            });
            // The storm's consumer: drains its registration until it knows the storm ended.
            s.spawn(|| {
                let mut buf = [0u8; 256];
                let mut fired = 0u64;
                let mut overflows = 0u64;
                loop {
                    match mux.next_watch_event(storm_watch, &mut buf).unwrap() {
                        Some(WatchNews::Fired(p)) => {
                            fired += 1;
                            if p == b"storm/last" {
                                break;
                            }
                        }
                        Some(WatchNews::Overflow) => {
                            overflows += 1;
                            if read_string(mux, "storm/last").as_deref() == Ok("done") {
                                break;
                            }
                        }
                        None => panic!("no storm news within the timeout"),
                    }
                }
                // Events came through one way or the other: as paths, or as overflows when
                // the registration's queue could not keep up.
                assert!(fired + overflows > 0);
            });
            // Eight threads doing round trips during the storm.
            for i in 0..8 {
                let storming = &storming;
                s.spawn(move || {
                    let mut round = 0;
                    while storming.load(Ordering::Relaxed) || round < 10 {
                        let path = format!("work/{i}");
                        mux.write(TxId::NONE, path.as_str(), round.to_string().as_bytes())
                            .unwrap();
                        assert_eq!(read_string(mux, &path).unwrap(), round.to_string());
                        round += 1;
                    }
                });
            }
            // Another thread's quiet watch: its initial event, then exactly its writes.
            s.spawn(|| {
                let mut buf = [0u8; 256];
                assert_eq!(
                    mux.next_watch_event(quiet_watch, &mut buf).unwrap(),
                    Some(WatchNews::Fired(b"quiet"))
                );
                for k in 0..5 {
                    let path = format!("quiet/{k}");
                    mux.write(TxId::NONE, path.as_str(), b"q").unwrap();
                    assert_eq!(
                        mux.next_watch_event(quiet_watch, &mut buf).unwrap(),
                        Some(WatchNews::Fired(path.as_bytes()))
                    );
                }
            });
        });
    });
    assert!(
        written.load(Ordering::Relaxed) > 100,
        "the storm was a storm"
    );
    let stats = mux.stats();
    assert_eq!(stats.timeouts, 0);
    // Every storm event reached the registration: queued, or counted as overflowing it (how
    // many of each depends on how fast the consumer runs).
    assert!(
        stats.events_routed + stats.events_overflowed > 100,
        "{stats:?}"
    );
}

/// With the daemon's replies held back and watch events streaming in without pause, a waiting
/// caller still times out on time: the deadline is taken once and checked after every bounded
/// hold of the lock.
#[test]
fn every_wait_is_bounded_under_an_event_stream() {
    let xen = Xen::default();
    let stream = xen.store_stream();
    let mux = mux!(StoreStream, SHORT_NS);
    let events = stream.events();
    mux.attach(stream);
    mux.write(TxId::NONE, "noisy", b"").unwrap();
    let watch = mux.watch("noisy").unwrap();
    xen.store_faults(|f| f.hold_replies(true));
    let streaming = AtomicBool::new(true);
    with_dpc(mux, events, || {
        thread::scope(|s| {
            s.spawn(|| {
                let dom0 = xen.backend(0);
                let mut n = 0u64;
                while streaming.load(Ordering::Relaxed) {
                    dom0.xs_write("/local/domain/1/noisy", n.to_string().as_bytes())
                        .unwrap();
                    n += 1;
                }
            });
            let waiters: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        let start = Instant::now();
                        let r = read_string(mux, "noisy");
                        (r, start.elapsed())
                    })
                })
                .collect();
            for w in waiters {
                let (r, took) = w.join().unwrap();
                assert_eq!(r, Err(XsError::Transport(TransportError::TimedOut)));
                assert!(took >= Duration::from_nanos(SHORT_NS), "{took:?}");
                assert!(took < Duration::from_secs(3), "not bounded: {took:?}");
            }
            streaming.store(false, Ordering::Relaxed);
        });
    });
    assert!(mux.stats().events_routed > 0);
    assert_eq!(mux.with_core(|c| c.slots_abandoned()), 4);
    let _ = watch;
}

/// The single-threaded helpers are bounded the same way: with the reply held back and a
/// stream of watch events keeping every wait short, `XsConnection::read` still times out on
/// time (the limit belongs to the operation, begun once, not to each wait).
#[test]
fn single_threaded_helpers_are_bounded_under_an_event_stream() {
    for ring in [false, true] {
        let xen = Xen::default();
        let mut stream = xen.store_stream();
        let mut sim_ring = xen.store_ring();
        let t: &mut dyn Wait = if ring {
            sim_ring.set_timeout(Duration::from_millis(200));
            &mut sim_ring
        } else {
            stream.set_timeout(Duration::from_millis(200));
            &mut stream
        };
        let mut c: Box<XsConnection> = Box::default();
        c.write(t, TxId::NONE, "noisy", b"").unwrap();
        c.watch(t, "noisy").unwrap();
        xen.store_faults(|f| f.hold_replies(true));
        let streaming = AtomicBool::new(true);
        thread::scope(|s| {
            s.spawn(|| {
                let dom0 = xen.backend(0);
                let mut n = 0u64;
                while streaming.load(Ordering::Relaxed) {
                    dom0.xs_write("/local/domain/1/noisy", n.to_string().as_bytes())
                        .unwrap();
                    n += 1;
                }
            });
            let start = Instant::now();
            let mut buf = [0u8; 64];
            let r = c.read(t, TxId::NONE, "noisy", &mut buf);
            let took = start.elapsed();
            streaming.store(false, Ordering::Relaxed);
            assert_eq!(r, Err(XsError::Transport(TransportError::TimedOut)));
            assert!(took < Duration::from_secs(3), "not bounded: {took:?}");
        });
        assert!(c.watch_events_queued() > 0 || c.watch_overflowed());
    }
}

/// A caller that gives up keeps its slot (and request id) reserved until the late reply comes;
/// the late reply is dropped, never given to a newer request, and frees the slot. When every
/// slot is reserved, a new caller waits for one, boundedly.
#[test]
fn timeouts_with_late_replies() {
    let xen = Xen::default();
    let stream = xen.store_stream();
    let mux = mux!(StoreStream, SHORT_NS);
    let events = stream.events();
    mux.attach(stream);
    mux.write(TxId::NONE, "old", b"old value").unwrap();
    mux.write(TxId::NONE, "new", b"new value").unwrap();
    with_dpc(mux, events, || {
        xen.store_faults(|f| f.hold_replies(true));
        thread::scope(|s| {
            for _ in 0..SLOTS {
                s.spawn(|| {
                    assert_eq!(
                        read_string(mux, "old"),
                        Err(XsError::Transport(TransportError::TimedOut))
                    );
                });
            }
        });
        assert_eq!(mux.with_core(|c| c.slots_abandoned()), SLOTS);
        // Every slot is reserved: a new caller times out waiting for one.
        let start = Instant::now();
        assert_eq!(
            read_string(mux, "new"),
            Err(XsError::Transport(TransportError::TimedOut))
        );
        assert!(start.elapsed() < Duration::from_secs(3));
        assert_eq!(mux.with_core(|c| c.slots_abandoned()), SLOTS);

        // A caller starts waiting for a slot; the late replies come meanwhile.
        xen.store_faults(|f| f.hold_replies(false));
        thread::scope(|s| {
            let reader = s.spawn(|| read_string(mux, "new"));
            thread::sleep(Duration::from_millis(20));
            assert_eq!(xen.release_held_replies(), SLOTS);
            assert_eq!(reader.join().unwrap().unwrap(), "new value");
        });
    });
    let stats = mux.stats();
    assert_eq!(stats.late_replies, SLOTS as u64);
    assert_eq!(stats.timeouts, SLOTS as u64 + 1);
    assert_eq!(mux.with_core(|c| c.slots_in_use()), 0);
}

/// Commits refused with `EAGAIN` are redone; eight threads share a storm of refusals and every
/// transaction lands exactly once.
#[test]
fn eagain_retries_under_concurrency() {
    let xen = Xen::default();
    let stream = xen.store_stream();
    let mux = mux!(StoreStream, TIMEOUT_NS);
    let events = stream.events();
    mux.attach(stream);
    with_dpc(mux, events, || {
        xen.store_faults(|f| f.eagain_storm(3));
        mux.transaction(5, |m, tx| m.write(tx, "single", b"1"))
            .unwrap();
        assert_eq!(mux.stats().transaction_retries, 3);
        // Not enough attempts: the last EAGAIN is returned, nothing is written.
        xen.store_faults(|f| f.eagain_storm(2));
        assert_eq!(
            mux.transaction(2, |m, tx| m.write(tx, "never", b"1")),
            Err(XsError::Store(XsErrno::Eagain))
        );
        assert_eq!(
            read_string(mux, "never"),
            Err(XsError::Store(XsErrno::Enoent))
        );

        let before = mux.stats().transaction_retries;
        xen.store_faults(|f| f.eagain_storm(24));
        thread::scope(|s| {
            for i in 0..8 {
                s.spawn(move || {
                    let path = format!("tx/{i}");
                    mux.transaction(64, |m, tx| m.write(tx, path.as_str(), b"done"))
                        .unwrap();
                });
            }
        });
        for i in 0..8 {
            assert_eq!(read_string(mux, &format!("tx/{i}")).unwrap(), "done");
        }
        assert!(mux.stats().transaction_retries - before >= 24);
    });
}

/// A reset (resume) while callers wait: their requests fail with `Reconnecting`, every
/// registration reports an overflow, the watches are registered again and fire again.
#[test]
fn reset_and_reregistration_under_load() {
    let xen = Xen::default();
    let stream = xen.store_stream();
    let mux = mux!(StoreStream, TIMEOUT_NS);
    let events = stream.events();
    mux.attach(stream);
    mux.write(TxId::NONE, "w", b"").unwrap();
    let watch = mux.watch("w").unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(
        mux.next_watch_event(watch, &mut buf).unwrap(),
        Some(WatchNews::Fired(b"w"))
    );
    with_dpc(mux, events, || {
        xen.store_faults(|f| f.hold_replies(true));
        thread::scope(|s| {
            let waiters: Vec<_> = (0..4).map(|_| s.spawn(|| read_string(mux, "w"))).collect();
            while mux.with_core(|c| c.slots_in_use()) < 4 {
                thread::yield_now();
            }
            // What a resume does: the daemon forgets the guest, the connection starts over.
            xen.store_forget_guest();
            mux.reset();
            for w in waiters {
                assert_eq!(
                    w.join().unwrap(),
                    Err(XsError::Transport(TransportError::Reconnecting))
                );
            }
        });
        xen.store_faults(|f| f.hold_replies(false));
        let mut buf = [0u8; 64];
        assert_eq!(
            mux.try_watch_event(watch, &mut buf).unwrap(),
            Some(WatchNews::Overflow)
        );
        mux.reregister_watches().unwrap();
        assert_eq!(
            mux.next_watch_event(watch, &mut buf).unwrap(),
            Some(WatchNews::Fired(b"w"))
        );
        mux.write(TxId::NONE, "w/x", b"1").unwrap();
        assert_eq!(
            mux.next_watch_event(watch, &mut buf).unwrap(),
            Some(WatchNews::Fired(b"w/x"))
        );
    });
    assert_eq!(xen.store_watches(1), 1);
}

/// A watch whose registration times out is taken back: when the daemon's late acceptance
/// comes, the unwatch queued behind it removes it, so no watch lives on that nobody knows.
#[test]
fn a_watch_that_times_out_is_taken_back() {
    let xen = Xen::default();
    let stream = xen.store_stream();
    let mux = mux!(StoreStream, SHORT_NS);
    let events = stream.events();
    mux.attach(stream);
    mux.write(TxId::NONE, "late", b"").unwrap();
    with_dpc(mux, events, || {
        xen.store_faults(|f| f.hold_replies(true));
        assert_eq!(
            mux.watch("late"),
            Err(XsError::Transport(TransportError::TimedOut))
        );
        assert_eq!(xen.store_watches(1), 0, "the unwatch follows the watch");
        xen.store_faults(|f| f.hold_replies(false));
        // The held replies (to the watch and to the unwatch) arrive late.
        assert_eq!(xen.release_held_replies(), 2);
        // Any later round trip moves the connection past them.
        assert_eq!(read_string(mux, "late").unwrap(), "");
        assert_eq!(mux.with_core(|c| c.slots_in_use()), 0);
        assert_eq!(mux.stats().late_replies, 1);
    });
    assert_eq!(xen.store_watches(1), 0);
}
