//! Per-vCPU scan state and the shared counters.
//!
//! Each vCPU has a slot holding what its upcall scan carries from one call to the next (the
//! 2-level cursor and selector bits taken from Xen, the FIFO ready bits and queue heads). Only
//! one scan of a vCPU runs at a time: the scan claims the slot's `busy` flag with an acquire
//! swap and releases it with a release store, so a scan of the same vCPU that runs later on
//! another CPU (a DPC re-queued elsewhere) sees everything the previous one stored, and a scan
//! that finds the flag taken (an upcall nesting in a DPC's scan of the same vCPU on the same CPU)
//! is refused instead of corrupting the state. Inside the claim the fields are accessed with
//! relaxed loads and stores: the flag orders them. Different vCPUs' slots are independent, so
//! scans on different vCPUs share no lock and no written word of the core: even the scan's
//! counters are per vCPU (summed when read), so counting does not bounce a cache line between
//! CPUs on every upcall.

use xen_abi::event_channel::EVTCHN_FIFO_MAX_QUEUES;

use super::fifo::Queues;
use super::two_level::Cursor;
use super::EvtchnStats;
use crate::sync::{const_unless_loom, AtomicBool, AtomicU32, AtomicU64, Ordering};

/// One vCPU's scan state.
#[derive(Debug)]
pub(crate) struct VcpuSlot {
    busy: AtomicBool,
    sel: AtomicU64,
    word: AtomicU32,
    bit: AtomicU32,
    ready: AtomicU32,
    head: [AtomicU32; EVTCHN_FIFO_MAX_QUEUES],
    /// What this vCPU's scans counted (kept across [`VcpuSlot::reset`]).
    pub(crate) counters: AtomicStats,
}

impl VcpuSlot {
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        VcpuSlot {
            busy: AtomicBool::new(false),
            sel: AtomicU64::new(0),
            word: AtomicU32::new(0),
            bit: AtomicU32::new(0),
            ready: AtomicU32::new(0),
            head: [const { AtomicU32::new(0) }; EVTCHN_FIFO_MAX_QUEUES],
            counters: AtomicStats::new(),
        }
    }

    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        VcpuSlot {
            busy: AtomicBool::new(false),
            sel: AtomicU64::new(0),
            word: AtomicU32::new(0),
            bit: AtomicU32::new(0),
            ready: AtomicU32::new(0),
            head: core::array::from_fn(|_| AtomicU32::new(0)),
            counters: AtomicStats::new(),
        }
    }

    /// One slot per vCPU.
    #[cfg(not(loom))]
    #[inline(always)]
    pub(crate) const fn array<const N: usize>() -> [Self; N] {
        [const { VcpuSlot::new() }; N]
    }

    /// One slot per vCPU.
    #[cfg(loom)]
    pub(crate) fn array<const N: usize>() -> [Self; N] {
        core::array::from_fn(|_| VcpuSlot::new())
    }

    /// Claims the slot for one scan; false if a scan of this vCPU is already running.
    pub(crate) fn claim(&self) -> bool {
        !self.busy.swap(true, Ordering::Acquire)
    }

    /// Ends the scan that claimed the slot.
    pub(crate) fn release(&self) {
        self.busy.store(false, Ordering::Release);
    }

    /// Forgets the scan state, keeping the counters (after a resume, with no scan running).
    pub(crate) fn reset(&mut self) {
        let counters = core::mem::replace(&mut self.counters, AtomicStats::new());
        *self = VcpuSlot::new();
        self.counters = counters;
    }

    pub(crate) fn cursor(&self) -> Cursor {
        Cursor {
            sel: self.sel.load(Ordering::Relaxed),
            word: self.word.load(Ordering::Relaxed),
            bit: self.bit.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn set_cursor(&self, cursor: &Cursor) {
        self.sel.store(cursor.sel, Ordering::Relaxed);
        self.word.store(cursor.word, Ordering::Relaxed);
        self.bit.store(cursor.bit, Ordering::Relaxed);
    }

    /// The queue state; heads are read only for ready queues (the others are 0).
    pub(crate) fn queues(&self) -> Queues {
        let mut queues = Queues {
            ready: self.ready.load(Ordering::Relaxed),
            ..Queues::default()
        };
        for_each_bit(queues.ready, |q| {
            queues.head[q] = self.head[q].load(Ordering::Relaxed)
        });
        queues
    }

    /// Stores the queue state after a scan that started from `ready_before`.
    pub(crate) fn set_queues(&self, queues: &Queues, ready_before: u32) {
        for_each_bit(queues.ready | ready_before, |q| {
            self.head[q].store(queues.head[q], Ordering::Relaxed)
        });
        self.ready.store(queues.ready, Ordering::Relaxed);
    }
}

fn for_each_bit(mut bits: u32, mut f: impl FnMut(usize)) {
    while bits != 0 {
        let q = bits.trailing_zeros() as usize;
        bits &= bits - 1;
        if q < EVTCHN_FIFO_MAX_QUEUES {
            f(q);
        }
    }
}

/// [`EvtchnStats`] as atomics, added to from every CPU (relaxed: they order nothing).
#[derive(Debug)]
pub(crate) struct AtomicStats {
    delivered: AtomicU64,
    unhandled_masked: AtomicU64,
    budget_exhausted: AtomicU64,
    fifo_bad_links: AtomicU64,
    fifo_unlink_contention: AtomicU64,
    scan_step_limit: AtomicU64,
    unmask_hypercalls: AtomicU64,
    array_pages: AtomicU64,
}

fn add(counter: &AtomicU64, n: u64) {
    if n != 0 {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

impl AtomicStats {
    const_unless_loom! {
    pub(crate) fn new() -> Self {
        AtomicStats {
            delivered: AtomicU64::new(0),
            unhandled_masked: AtomicU64::new(0),
            budget_exhausted: AtomicU64::new(0),
            fifo_bad_links: AtomicU64::new(0),
            fifo_unlink_contention: AtomicU64::new(0),
            scan_step_limit: AtomicU64::new(0),
            unmask_hypercalls: AtomicU64::new(0),
            array_pages: AtomicU64::new(0),
        }
    }
    }

    /// Adds what one operation counted.
    pub(crate) fn add(&self, d: &EvtchnStats) {
        add(&self.delivered, d.delivered);
        add(&self.unhandled_masked, d.unhandled_masked);
        add(&self.budget_exhausted, d.budget_exhausted);
        add(&self.fifo_bad_links, d.fifo_bad_links);
        add(&self.fifo_unlink_contention, d.fifo_unlink_contention);
        add(&self.scan_step_limit, d.scan_step_limit);
        add(&self.unmask_hypercalls, d.unmask_hypercalls);
        add(&self.array_pages, d.array_pages);
    }

    /// Adds these counters to `sum`.
    pub(crate) fn sum_into(&self, sum: &mut EvtchnStats) {
        let s = self.snapshot();
        sum.delivered += s.delivered;
        sum.unhandled_masked += s.unhandled_masked;
        sum.budget_exhausted += s.budget_exhausted;
        sum.fifo_bad_links += s.fifo_bad_links;
        sum.fifo_unlink_contention += s.fifo_unlink_contention;
        sum.scan_step_limit += s.scan_step_limit;
        sum.unmask_hypercalls += s.unmask_hypercalls;
        sum.array_pages += s.array_pages;
    }

    pub(crate) fn snapshot(&self) -> EvtchnStats {
        EvtchnStats {
            delivered: self.delivered.load(Ordering::Relaxed),
            unhandled_masked: self.unhandled_masked.load(Ordering::Relaxed),
            budget_exhausted: self.budget_exhausted.load(Ordering::Relaxed),
            fifo_bad_links: self.fifo_bad_links.load(Ordering::Relaxed),
            fifo_unlink_contention: self.fifo_unlink_contention.load(Ordering::Relaxed),
            scan_step_limit: self.scan_step_limit.load(Ordering::Relaxed),
            unmask_hypercalls: self.unmask_hypercalls.load(Ordering::Relaxed),
            array_pages: self.array_pages.load(Ordering::Relaxed),
        }
    }
}
