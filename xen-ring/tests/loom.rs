//! Loom models of two ends sharing a ring: every interleaving and weak-memory outcome, for rings
//! of 2 and 4 slots.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p xen-ring --release --test loom`.
//!
//! Under `cfg(loom)` the crate's shared pages are a loom model (atomics for the indices, one
//! `UnsafeCell` per 64-byte block for the rest), so loom also reports any entry read that is not
//! ordered after the write it should see. Entry sizes here are multiples of 64 so each slot is
//! tracked separately.
//!
//! Each end sleeps on a modelled event channel (a latched flag under a mutex and condition
//! variable) exactly when its final check says the ring is empty. A lost wake-up leaves a thread
//! blocked forever, which loom reports as a deadlock; entries read twice, skipped or torn fail the
//! id checks.
#![cfg(loom)]

use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use xen_ring::{BackRing, FrontRing, RingIdx, RingMemory};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes};

/// A 960-byte entry: four slots in one page.
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable)]
#[repr(C)]
struct Four {
    id: u64,
    check: [u64; 119],
}

/// A 1344-byte entry: two slots in one page.
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable)]
#[repr(C)]
struct Two {
    id: u64,
    check: [u64; 167],
}

trait Tagged: Copy + FromBytes + IntoBytes + Immutable {
    fn new(id: u64) -> Self;
    /// The id, or `None` if the entry is not what `new` wrote (torn or stale).
    fn id(&self) -> Option<u64>;
}

macro_rules! tagged {
    ($t:ty) => {
        impl Tagged for $t {
            fn new(id: u64) -> Self {
                let mut v = Self::new_zeroed();
                v.id = id;
                v.check[0] = !id;
                let last = v.check.len() - 1;
                v.check[last] = id ^ 0x5555;
                v
            }

            fn id(&self) -> Option<u64> {
                let last = self.check.len() - 1;
                (self.check[0] == !self.id && self.check[last] == self.id ^ 0x5555)
                    .then_some(self.id)
            }
        }
    };
}
tagged!(Four);
tagged!(Two);

/// A modelled event channel: notifying sets a latched pending flag; waiting blocks until it is
/// set and clears it.
struct Event {
    pending: Mutex<bool>,
    cv: Condvar,
}

impl Event {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            pending: Mutex::new(false),
            cv: Condvar::new(),
        })
    }

    fn notify(&self) {
        *self.pending.lock().unwrap() = true;
        self.cv.notify_one();
    }

    fn wait(&self) {
        let mut pending = self.pending.lock().unwrap();
        while !*pending {
            pending = self.cv.wait(pending).unwrap();
        }
        *pending = false;
    }
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}

/// The backend's loop: take and answer everything, publish, and sleep when the final check
/// finds nothing, until `total` requests have been served.
fn backend<T: Tagged>(
    mut back: BackRing<T, T>,
    total: u64,
    to_back: Arc<Event>,
    to_front: Arc<Event>,
) {
    let mut served = 0;
    loop {
        while let Some(req) = back.take_request().unwrap() {
            assert_eq!(req.id(), Some(served), "request skipped, repeated or torn");
            back.push_response(&T::new(served + 1000)).unwrap();
            served += 1;
        }
        if back.push_responses_and_check_notify() {
            to_front.notify();
        }
        if served == total {
            return;
        }
        if !back.final_check_for_requests().unwrap() {
            to_back.wait();
        }
    }
}

/// Requests only (no responses needed): the producer publishes one at a time, the consumer
/// drains, final-checks and sleeps. No wake-up lost, every request read once, in order.
#[test]
fn requests_are_never_lost_or_repeated_4_slots() {
    model(|| {
        let mem = RingMemory::allocate(0).unwrap();
        let mut front = FrontRing::<Four, Four>::init(mem.clone()).unwrap();
        assert_eq!(front.slots(), 4);
        let back = BackRing::<Four, Four>::attach(mem).unwrap();
        let (to_back, to_front) = (Event::new(), Event::new());
        let total = 3;
        let consumer = {
            let (to_back, to_front) = (to_back.clone(), to_front.clone());
            thread::spawn(move || {
                let mut back = back;
                let mut taken = 0;
                loop {
                    back.drain_requests(|req| {
                        assert_eq!(req.id(), Some(taken), "request skipped, repeated or torn");
                        taken += 1;
                    })
                    .unwrap();
                    if taken == total {
                        break;
                    }
                    if !back.final_check_for_requests().unwrap() {
                        to_back.wait();
                    }
                }
                drop(to_front);
            })
        };
        for id in 0..total {
            front.push_request(&Four::new(id)).unwrap();
            if front.push_requests_and_check_notify() {
                to_back.notify();
            }
        }
        consumer.join().unwrap();
    });
}

fn round_trip<T: Tagged + 'static>(start: RingIdx, total: u64) {
    model(move || {
        let mem = RingMemory::allocate(0).unwrap();
        let mut front = FrontRing::<T, T>::init_at(mem.clone(), start).unwrap();
        let back = BackRing::<T, T>::attach_at(mem, start).unwrap();
        let (to_back, to_front) = (Event::new(), Event::new());
        let server = {
            let (to_back, to_front) = (to_back.clone(), to_front.clone());
            thread::spawn(move || backend(back, total, to_back, to_front))
        };
        let (mut sent, mut received) = (0, 0);
        while received < total {
            if sent < total && !front.is_full() {
                front.push_request(&T::new(sent)).unwrap();
                sent += 1;
                if front.push_requests_and_check_notify() {
                    to_back.notify();
                }
                continue;
            }
            while let Some(rsp) = front.take_response().unwrap() {
                assert_eq!(
                    rsp.id(),
                    Some(received + 1000),
                    "response skipped, repeated or torn"
                );
                received += 1;
            }
            if received < total
                && (sent == total || front.is_full())
                && !front.final_check_for_responses().unwrap()
            {
                to_front.wait();
            }
        }
        server.join().unwrap();
    });
}

/// Requests and responses through a 2-slot ring, more requests than slots so slots are reused,
/// with the indices wrapping past 2^32 on the way.
#[test]
fn round_trip_2_slots_across_index_wrap() {
    round_trip::<Two>(u32::MAX - 1, 3);
}

/// The same through a 4-slot ring from index 0.
#[test]
fn round_trip_4_slots() {
    round_trip::<Four>(0, 2);
}
