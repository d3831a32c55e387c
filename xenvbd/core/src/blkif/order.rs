//! [`DeviceOrder`]: the device-wide flush ordering of per-queue engines, without a lock.
//!
//! Each queue of a device has its own [`Blkif`](super::Blkif) under its own lock. A flush
//! submitted on one queue must not reach the backend before every write (or discard) accepted
//! earlier on *any* queue has been answered. The queues share only this structure:
//!
//! - one device-wide write counter: each write takes the next sequence number with one
//!   `fetch_add` when it is accepted;
//! - per queue, the sequence number of its oldest write not yet answered (`u64::MAX` when it
//!   has none), stored by that queue's engine under its own lock whenever it changes;
//! - a bit mask of the queues whose flush waits for other queues.
//!
//! A flush reads the counter when it is accepted (its *mark*: every write accepted before the
//! flush's submission began has a smaller number) and may be issued once every other queue's
//! oldest unanswered write is at or past the mark. A write accepted before the flush was
//! published as pending before its `submit` returned, so the flush sees it; a write still being
//! accepted while the flush is submitted is concurrent with it and need not be waited for.
//!
//! A flush that has to wait sets its queue's bit *before* checking again, and a queue that
//! advances its oldest write reads the bits *after* storing it, both with read-modify-writes on
//! the mask:
//! either the flush's second check sees the advance or the advancing queue sees the bit and asks
//! the shell to poll the waiting queue ([`Events::wake`](super::Events::wake)). The loom model
//! (`tests/loom.rs`) checks both the ordering and that no wake-up is lost.

use super::negotiate::MAX_QUEUES;
use crate::sync::{AtomicU32, AtomicU64, Ordering};

const QUEUES: usize = MAX_QUEUES as usize;

/// The shared part of a device driven by one engine per queue: see the module docs.
#[derive(Debug)]
pub struct DeviceOrder {
    /// The next write's sequence number.
    next_write: AtomicU64,
    /// Per queue: its oldest unanswered write's sequence number, `u64::MAX` for none.
    oldest_pending: [AtomicU64; QUEUES],
    /// Bit q: queue q holds a flush waiting for other queues.
    waiting: AtomicU32,
}

impl DeviceOrder {
    /// No write accepted yet, none pending, no flush waiting (`const`, so it can be a static or
    /// be built in place).
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        DeviceOrder {
            next_write: AtomicU64::new(0),
            oldest_pending: [const { AtomicU64::new(u64::MAX) }; QUEUES],
            waiting: AtomicU32::new(0),
        }
    }

    /// No write accepted yet, none pending, no flush waiting.
    #[cfg(loom)]
    pub fn new() -> Self {
        DeviceOrder {
            next_write: AtomicU64::new(0),
            oldest_pending: core::array::from_fn(|_| AtomicU64::new(u64::MAX)),
            waiting: AtomicU32::new(0),
        }
    }

    /// A write (or discard) is being accepted: its sequence number. The caller publishes it as
    /// pending ([`publish_oldest`](Self::publish_oldest)) before its submission returns.
    pub fn accept_write(&self) -> u64 {
        self.next_write.fetch_add(1, Ordering::SeqCst)
    }

    /// A flush is being accepted: its mark (every write accepted earlier has a smaller number).
    pub fn flush_mark(&self) -> u64 {
        self.next_write.load(Ordering::SeqCst)
    }

    /// Queue `queue`'s oldest unanswered write is now `oldest` (`u64::MAX` for none). Returns
    /// the queues (bit mask, `queue` itself left out) whose waiting flush may now be issuable:
    /// the shell polls them.
    pub fn publish_oldest(&self, queue: usize, oldest: u64) -> u32 {
        let Some(slot) = self.oldest_pending.get(queue) else {
            return 0;
        };
        let before = slot.swap(oldest, Ordering::SeqCst);
        if oldest <= before {
            // Nothing answered: no flush can have become issuable.
            return 0;
        }
        // A read-modify-write, not a load: it is ordered against the waiting flush's `fetch_or`
        // in the mask's modification order, so either it sees the bit or that `fetch_or` reads
        // from it and the flush's second check sees this advance (no reliance on a store-load
        // fence between two plain accesses).
        self.waiting.fetch_or(0, Ordering::SeqCst) & !(1u32 << queue)
    }

    /// Queue `queue` holds no waiting flush (any more: it was issued, aborted or reset): stop
    /// asking for it to be polled.
    pub fn not_waiting(&self, queue: usize) {
        let bit = 1u32 << (queue % QUEUES);
        if self.waiting.load(Ordering::Relaxed) & bit != 0 {
            self.waiting.fetch_and(!bit, Ordering::SeqCst);
        }
    }

    /// Whether every queue but `queue` has answered all its writes numbered below `mark`.
    fn others_done(&self, queue: usize, mark: u64) -> bool {
        self.oldest_pending
            .iter()
            .enumerate()
            .all(|(q, oldest)| q == queue || oldest.load(Ordering::SeqCst) >= mark)
    }

    /// Whether queue `queue`'s flush with `mark` may be issued as far as the other queues are
    /// concerned (its own queue orders it behind its earlier work itself). When it may not, the
    /// queue is recorded as waiting, so that the queue that answers the last such write asks for
    /// it to be polled.
    pub fn flush_may_issue(&self, queue: usize, mark: u64) -> bool {
        let bit = 1u32 << (queue % QUEUES);
        if self.others_done(queue, mark) {
            self.waiting.fetch_and(!bit, Ordering::SeqCst);
            return true;
        }
        self.waiting.fetch_or(bit, Ordering::SeqCst);
        // Checked again after the bit is visible: an advance in between is seen here, or the
        // advancing queue saw the bit.
        if self.others_done(queue, mark) {
            self.waiting.fetch_and(!bit, Ordering::SeqCst);
            return true;
        }
        false
    }
}

#[cfg(not(loom))]
impl Default for DeviceOrder {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_flush_waits_for_earlier_writes_on_other_queues_only() {
        let order = DeviceOrder::new();
        let w0 = order.accept_write();
        assert_eq!(order.publish_oldest(0, w0), 0);
        let mark = order.flush_mark();
        // Queue 1's flush waits for queue 0's write; queue 0's own flush is ordered locally.
        assert!(!order.flush_may_issue(1, mark));
        assert!(order.flush_may_issue(0, mark));
        // A later write on queue 2 does not hold the flush.
        let w2 = order.accept_write();
        assert_eq!(order.publish_oldest(2, w2), 0);
        // Queue 0 answers its write: queue 1 is to be polled, and its flush may go.
        assert_eq!(order.publish_oldest(0, u64::MAX), 1 << 1);
        assert!(order.flush_may_issue(1, mark));
        // No one is waiting any more.
        assert_eq!(order.publish_oldest(2, u64::MAX), 0);
    }
}
