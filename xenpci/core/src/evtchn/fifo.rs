//! The FIFO ABI: per-vCPU priority queues linked through the event words.
//!
//! # Consuming a queue
//! The highest-priority ready queue (lowest bit of `ready`) is served first. Its head comes from
//! the vCPU's local copy, or when that is 0 from the control block (exchanged with 0). The head
//! event's word is updated with a compare-exchange that clears `LINKED` and the link together,
//! yielding the next port; then, if the event is pending and not masked, its `PENDING` bit is
//! cleared and it is delivered. An event raised after that is linked again by Xen.
//!
//! # Hostile or corrupt links
//! Every step uses budget, so no chain runs unbounded. A head or link naming a port beyond the
//! mapped array, or an event on the chain whose `LINKED` bit is clear (a cycle, including a link
//! to itself, comes back to an event already unlinked), ends the queue: the rest of the chain is
//! dropped and [`super::EvtchnStats::fifo_bad_links`] counted. Xen links an event again when it
//! is next raised.
//!
//! # Sharing
//! The event words and control blocks are shared with Xen and with the other vCPUs (another
//! vCPU's scan, a bind's `unmask`, Xen linking events): every change to an event word is one
//! atomic read-modify-write on the whole word ([`FifoShared`]), so no bit another party set is
//! lost. The local queue state (`ready` bits taken from the control block, the next port of each
//! queue) belongs to the vCPU: it lives in the vCPU's slot (`evtchn/vcpu.rs`) between scans and
//! only the one scan of that vCPU that may run at a time touches it. An invariant the slot relies
//! on: a queue's local head is non-zero only while its `ready` bit is set.

use xen_abi::event_channel::{
    EventWord, EventWordFlags, EVTCHN_FIFO_LINK_MASK, EVTCHN_FIFO_MAX_QUEUES,
};

use super::dispatch::{DispatchTable, HandlerId};
use super::shared::FifoShared;
use super::{EvtchnStats, ScanOutcome};
use xen_abi::types::EvtchnPort;

/// Compare-exchange attempts on one event word before giving up for this scan.
const UNLINK_ATTEMPTS: u32 = 16;

/// The `ready` bits that name a queue.
const QUEUE_BITS: u32 = ((1u64 << EVTCHN_FIFO_MAX_QUEUES) - 1) as u32;

/// A vCPU's local queue state: ready queues not yet drained and the next port of each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Queues {
    pub(super) ready: u32,
    pub(super) head: [EvtchnPort; EVTCHN_FIFO_MAX_QUEUES],
}

/// Clears `LINKED` and the link of `port`'s word; returns the word as it was, or `None` if the
/// word kept changing.
fn unlink<S: FifoShared>(shared: &S, port: EvtchnPort) -> Option<EventWord> {
    let mut word = shared.load_word(port);
    for _ in 0..UNLINK_ATTEMPTS {
        let new = word & !(EventWordFlags::LINKED.bits() | EVTCHN_FIFO_LINK_MASK);
        match shared.compare_exchange_word(port, word, new) {
            Ok(_) => return Some(word),
            Err(actual) => word = actual,
        }
    }
    None
}

/// Runs one bounded scan for `vcpu` over ports below `limit` (the mapped event words).
#[allow(clippy::too_many_arguments)]
pub(crate) fn scan<S, F, const PORTS: usize>(
    queues: &mut Queues,
    shared: &S,
    limit: u32,
    dispatch: &DispatchTable<PORTS>,
    vcpu: u32,
    budget: u32,
    stats: &mut EvtchnStats,
    sink: &mut F,
) -> ScanOutcome
where
    S: FifoShared,
    F: FnMut(EvtchnPort, HandlerId),
{
    let taken = shared.take_ready(vcpu);
    if taken & !QUEUE_BITS != 0 {
        stats.fifo_bad_links += 1;
    }
    queues.ready |= taken & QUEUE_BITS;
    let mut outcome = ScanOutcome::default();
    let mut steps = 0u32;
    while queues.ready != 0 && steps < budget {
        let queue = queues.ready.trailing_zeros() as usize;
        let queue_bit = 1u32 << queue;
        let mut port = queues.head[queue];
        if port == 0 {
            port = shared.take_head(vcpu, queue);
            if port == 0 {
                queues.ready &= !queue_bit;
                continue;
            }
        }
        steps += 1;
        if port >= limit {
            stats.fifo_bad_links += 1;
            queues.head[queue] = 0;
            queues.ready &= !queue_bit;
            continue;
        }
        let Some(word) = unlink(shared, port) else {
            stats.fifo_unlink_contention += 1;
            queues.head[queue] = port;
            break;
        };
        let flags = EventWordFlags::from_bits_truncate(word);
        let next = word & EVTCHN_FIFO_LINK_MASK;
        if !flags.contains(EventWordFlags::LINKED) {
            // Reached an event that is not on a queue: the chain is corrupt or cyclic.
            stats.fifo_bad_links += 1;
            queues.head[queue] = 0;
            queues.ready &= !queue_bit;
            continue;
        }
        queues.head[queue] = next;
        if next == 0 {
            queues.ready &= !queue_bit;
        }
        if !flags.contains(EventWordFlags::PENDING) || flags.contains(EventWordFlags::MASKED) {
            continue;
        }
        let pending = EventWordFlags::PENDING.bits();
        if shared.fetch_and_word(port, !pending) & pending == 0 {
            continue;
        }
        match dispatch.get(port) {
            Some(binding) => {
                stats.delivered += 1;
                outcome.delivered += 1;
                sink(port, binding.handler);
            }
            None => {
                shared.fetch_or_word(port, EventWordFlags::MASKED.bits());
                stats.unhandled_masked += 1;
                outcome.unhandled += 1;
            }
        }
    }
    outcome.more = queues.ready != 0;
    if outcome.more {
        stats.budget_exhausted += 1;
    }
    outcome
}
