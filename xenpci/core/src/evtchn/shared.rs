//! The shared memory the event code reads and writes: the 2-level bitmaps and per-vCPU upcall
//! state in the shared-info area ([`SharedInfoEvents`]), and the FIFO event array and control
//! blocks ([`FifoShared`]).
//!
//! # Atomicity and ordering
//! Every method is one atomic access to memory Xen and the other vCPUs also write, and must be
//! sequentially consistent: on x86 a `lock`-prefixed instruction for each read-modify-write and
//! exchange, and a plain load for each load (x86 loads after a locked instruction are ordered);
//! on arm64 the `SeqCst` atomics of Rust. The core relies on it in three places:
//! - 2-level unmask clears the mask bit and then loads the pending bit, while Xen sets the
//!   pending bit and then tests the mask: with both sides sequentially consistent one of them
//!   sees the other, so an event is never left pending and masked-off unnoticed;
//! - the scan stores 0 to `evtchn_upcall_pending` before it exchanges the selector (2-level) or
//!   `ready` (FIFO): an event Xen raises after the exchange sets the flag again and raises a new
//!   upcall;
//! - FIFO: each change to an event word is one read-modify-write of the whole word, so Xen's
//!   `PENDING`/`LINKED`/link updates and another vCPU's `MASKED` changes are never lost.
//!
//! Indices handed in are always within the ABI's limits: word indices below
//! [`xen_abi::shared_info::EVTCHN_2L_WORDS`], FIFO ports below the number of event-array pages
//! the core has added × 1024, queue indices below
//! [`xen_abi::event_channel::EVTCHN_FIFO_MAX_QUEUES`], vCPUs below the count given at start.
//! Methods take `&self` and are called from every CPU at once.

use xen_abi::event_channel::EventWord;
use xen_abi::types::EvtchnPort;

/// Which 2-level bitmap of the shared-info page a word index refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum L2Bitmap {
    /// `evtchn_pending`: set by Xen, cleared by the guest.
    Pending,
    /// `evtchn_mask`: written by the guest only.
    Mask,
}

/// The event state of the shared-info page and the vCPU-info areas.
pub trait SharedInfoEvents {
    /// Loads word `word` of `map`.
    fn load(&self, map: L2Bitmap, word: usize) -> u64;
    /// Atomically ORs `bits` into word `word` of `map`; returns the previous value.
    fn fetch_or(&self, map: L2Bitmap, word: usize, bits: u64) -> u64;
    /// Atomically ANDs word `word` of `map` with `bits`; returns the previous value.
    fn fetch_and(&self, map: L2Bitmap, word: usize, bits: u64) -> u64;
    /// Atomically exchanges the vCPU's `evtchn_pending_sel` with 0; returns the previous value.
    fn take_pending_sel(&self, vcpu: u32) -> u64;
    /// Stores 0 to the vCPU's `evtchn_upcall_pending` (before a scan, so an event raised during
    /// the scan raises a new upcall).
    fn clear_upcall_pending(&self, vcpu: u32);
}

/// The FIFO event array (one [`EventWord`] per port) and the per-vCPU control blocks.
pub trait FifoShared {
    /// Where the vCPU's control block is: `(gfn, byte offset)`, or `None` if the shell has none.
    fn control_block(&self, vcpu: u32) -> Option<(u64, u32)>;
    /// Readies page `page` of the event array (zeroed, and from now on reachable through the
    /// word accessors) and returns its GFN for `EVTCHNOP_expand_array`, or `None` if the shell
    /// cannot provide it. The core asks for pages in order, once each (and again from page 0
    /// after [`EventChannels::reinit`](super::EventChannels::reinit)).
    fn prepare_array_page(&self, page: u32) -> Option<u64>;
    /// Loads the event word of `port`.
    fn load_word(&self, port: EvtchnPort) -> EventWord;
    /// Atomically ORs `bits` into the event word of `port`; returns the previous value.
    fn fetch_or_word(&self, port: EvtchnPort, bits: EventWord) -> EventWord;
    /// Atomically ANDs the event word of `port` with `bits`; returns the previous value.
    fn fetch_and_word(&self, port: EvtchnPort, bits: EventWord) -> EventWord;
    /// Atomically replaces the event word of `port` with `new` if it equals `current`; returns
    /// `Ok(current)` on success or `Err(actual)` with the value found.
    fn compare_exchange_word(
        &self,
        port: EvtchnPort,
        current: EventWord,
        new: EventWord,
    ) -> Result<EventWord, EventWord>;
    /// Atomically exchanges the control block's `ready` with 0; returns the previous value.
    fn take_ready(&self, vcpu: u32) -> u32;
    /// Atomically exchanges the control block's `head[queue]` with 0; returns the previous value.
    fn take_head(&self, vcpu: u32, queue: usize) -> EvtchnPort;
}

impl<T: SharedInfoEvents + ?Sized> SharedInfoEvents for &T {
    fn load(&self, map: L2Bitmap, word: usize) -> u64 {
        (**self).load(map, word)
    }
    fn fetch_or(&self, map: L2Bitmap, word: usize, bits: u64) -> u64 {
        (**self).fetch_or(map, word, bits)
    }
    fn fetch_and(&self, map: L2Bitmap, word: usize, bits: u64) -> u64 {
        (**self).fetch_and(map, word, bits)
    }
    fn take_pending_sel(&self, vcpu: u32) -> u64 {
        (**self).take_pending_sel(vcpu)
    }
    fn clear_upcall_pending(&self, vcpu: u32) {
        (**self).clear_upcall_pending(vcpu)
    }
}

impl<T: FifoShared + ?Sized> FifoShared for &T {
    fn control_block(&self, vcpu: u32) -> Option<(u64, u32)> {
        (**self).control_block(vcpu)
    }
    fn prepare_array_page(&self, page: u32) -> Option<u64> {
        (**self).prepare_array_page(page)
    }
    fn load_word(&self, port: EvtchnPort) -> EventWord {
        (**self).load_word(port)
    }
    fn fetch_or_word(&self, port: EvtchnPort, bits: EventWord) -> EventWord {
        (**self).fetch_or_word(port, bits)
    }
    fn fetch_and_word(&self, port: EvtchnPort, bits: EventWord) -> EventWord {
        (**self).fetch_and_word(port, bits)
    }
    fn compare_exchange_word(
        &self,
        port: EvtchnPort,
        current: EventWord,
        new: EventWord,
    ) -> Result<EventWord, EventWord> {
        (**self).compare_exchange_word(port, current, new)
    }
    fn take_ready(&self, vcpu: u32) -> u32 {
        (**self).take_ready(vcpu)
    }
    fn take_head(&self, vcpu: u32, queue: usize) -> EvtchnPort {
        (**self).take_head(vcpu, queue)
    }
}
