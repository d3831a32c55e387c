//! Loom model of the device-wide flush ordering of per-queue engines (`DeviceOrder`): every
//! interleaving and weak-memory outcome of writers answering on their queues while another
//! queue submits a flush.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p xenvbd-core --release --test loom`.
//!
//! Each writer thread stands for one queue's engine: it accepts a write (sequence number,
//! published as pending before its submission "returns"), then the backend answers it (the
//! answer is recorded, then the queue publishes that it has no write pending and wakes the
//! queues the ordering names). The flushing thread stands for another queue: it notes which
//! writes had returned from their submission before its flush was submitted, takes the flush's
//! mark and asks whether it may issue it. Checked: a flush issued before a write accepted
//! earlier was answered fails the model; a flush that had to wait is always woken and then
//! finds itself issuable (no lost wake-up).
#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread;
use xenvbd_core::blkif::DeviceOrder;

struct Writer {
    returned: AtomicBool,
    answered: AtomicBool,
    /// The writer's queue asked for the flushing queue to be polled.
    woke_flusher: AtomicBool,
}

impl Writer {
    fn new() -> Self {
        Writer {
            returned: AtomicBool::new(false),
            answered: AtomicBool::new(false),
            woke_flusher: AtomicBool::new(false),
        }
    }
}

fn writer(order: &DeviceOrder, me: &Writer, queue: usize, flusher: usize) {
    let seq = order.accept_write();
    order.publish_oldest(queue, seq);
    me.returned.store(true, Ordering::Release);
    // The backend answers the write.
    me.answered.store(true, Ordering::Relaxed);
    let wake = order.publish_oldest(queue, u64::MAX);
    if wake & (1 << flusher) != 0 {
        me.woke_flusher.store(true, Ordering::Relaxed);
    }
}

/// Explores every interleaving of `writers` writer threads and the flusher, with at most
/// `preemptions` forced thread switches (`None`: unbounded).
fn run(writers: usize, preemptions: Option<usize>) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = preemptions;
    builder.check(move || {
        let order = Arc::new(DeviceOrder::new());
        let states: Arc<Vec<Writer>> = Arc::new((0..writers).map(|_| Writer::new()).collect());
        let flusher = writers; // the flushing queue's index
        let handles: Vec<_> = (0..writers)
            .map(|q| {
                let order = order.clone();
                let states = states.clone();
                thread::spawn(move || writer(&order, &states[q], q, flusher))
            })
            .collect();
        // Writes whose submission returned before the flush is submitted must be answered
        // before the flush is issued.
        let before: Vec<bool> = states
            .iter()
            .map(|w| w.returned.load(Ordering::Acquire))
            .collect();
        let mark = order.flush_mark();
        let issued_at_once = order.flush_may_issue(flusher, mark);
        if issued_at_once {
            for (w, &earlier) in states.iter().zip(&before) {
                if earlier {
                    assert!(
                        w.answered.load(Ordering::Relaxed),
                        "flush issued before an earlier write was answered"
                    );
                }
            }
        }
        for h in handles {
            h.join().unwrap();
        }
        if !issued_at_once {
            // Every write is answered now; the flush must have been woken and be issuable.
            assert!(
                states
                    .iter()
                    .any(|w| w.woke_flusher.load(Ordering::Relaxed)),
                "a waiting flush was never woken"
            );
            assert!(order.flush_may_issue(flusher, mark));
        }
    });
}

#[test]
fn a_flush_waits_for_an_earlier_write_on_another_queue_and_is_woken() {
    run(1, None);
}

#[test]
fn a_flush_waits_for_earlier_writes_on_two_other_queues_and_is_woken() {
    // Unbounded, two writers take several minutes; three preemptions cover every order of the
    // three threads' steps that matters here in seconds.
    run(2, Some(3));
}
