//! The ring logic shared by both ends and by typed and raw rings.
//!
//! [`Ring`] holds one end's private indices and implements the `io/ring.h` macros once, generic
//! over the end ([`Role`]: which header indices it produces and consumes) and over how the entry
//! size is known ([`EntryLayout`]: a compile-time constant for typed rings, a field for raw ones).
//! The public ring types are thin wrappers around it.

use core::fmt;
use core::marker::PhantomData;

use xen_abi::ring::{ring_entry_size, ring_slots, RingIdx, RING_ENTRIES_OFFSET};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::error::RingError;
use crate::shared::{Grid, RingIndex, RingMemory};
use crate::sync::{fence, Ordering};

/// The bound on request and response types of typed rings: plain bytes in both directions.
///
/// Implemented for every type that is zerocopy `FromBytes + IntoBytes + Immutable` (any
/// `#[repr(C)]` struct of integers and byte arrays without padding, such as xen-abi's protocol
/// types). `FromBytes` is what makes it sound to interpret whatever bytes a hostile peer left in a
/// slot as a value.
pub trait RingEntry: FromBytes + IntoBytes + Immutable {}

impl<T: FromBytes + IntoBytes + Immutable> RingEntry for T {}

/// How a ring knows its entry size.
pub(crate) trait EntryLayout: Copy {
    /// The size of one slot in bytes.
    fn entry_size(self) -> usize;

    /// The word size in which entries are copied.
    #[inline(always)]
    fn grid(self) -> Grid {
        Grid::for_entry_size(self.entry_size())
    }
}

/// A typed ring's entry size: the padded union of `Req` and `Rsp`, a compile-time constant.
pub(crate) struct TypedLayout<Req, Rsp>(PhantomData<fn() -> (Req, Rsp)>);

impl<Req, Rsp> TypedLayout<Req, Rsp> {
    pub(crate) const ENTRY_SIZE: usize = ring_entry_size(
        size_of::<Req>(),
        align_of::<Req>(),
        size_of::<Rsp>(),
        align_of::<Rsp>(),
    );

    pub(crate) const fn new() -> Self {
        Self(PhantomData)
    }
}

impl<Req, Rsp> Clone for TypedLayout<Req, Rsp> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<Req, Rsp> Copy for TypedLayout<Req, Rsp> {}

impl<Req, Rsp> fmt::Debug for TypedLayout<Req, Rsp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TypedLayout")
            .field(&Self::ENTRY_SIZE)
            .finish()
    }
}

impl<Req, Rsp> EntryLayout for TypedLayout<Req, Rsp> {
    #[inline(always)]
    fn entry_size(self) -> usize {
        Self::ENTRY_SIZE
    }
}

/// A raw ring's entry size, chosen at run time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DynLayout(pub(crate) usize);

impl EntryLayout for DynLayout {
    #[inline(always)]
    fn entry_size(self) -> usize {
        self.0
    }
}

/// Which end of the ring: the header indices it writes and reads.
pub(crate) trait Role {
    /// True for the frontend (produces requests, consumes responses).
    const FRONT: bool;
    /// The producer index this end writes.
    const OUR_PROD: RingIndex;
    /// The event index the peer writes to ask for a notification about `OUR_PROD`.
    const PEER_EVENT: RingIndex;
    /// The producer index the peer writes.
    const PEER_PROD: RingIndex;
    /// The event index this end writes to ask for a notification about `PEER_PROD`.
    const OUR_EVENT: RingIndex;
}

/// The frontend: produces requests, consumes responses.
#[derive(Debug)]
pub(crate) enum Front {}

/// The backend: consumes requests, produces responses.
#[derive(Debug)]
pub(crate) enum Back {}

impl Role for Front {
    const FRONT: bool = true;
    const OUR_PROD: RingIndex = RingIndex::ReqProd;
    const PEER_EVENT: RingIndex = RingIndex::ReqEvent;
    const PEER_PROD: RingIndex = RingIndex::RspProd;
    const OUR_EVENT: RingIndex = RingIndex::RspEvent;
}

impl Role for Back {
    const FRONT: bool = false;
    const OUR_PROD: RingIndex = RingIndex::RspProd;
    const PEER_EVENT: RingIndex = RingIndex::RspEvent;
    const PEER_PROD: RingIndex = RingIndex::ReqProd;
    const OUR_EVENT: RingIndex = RingIndex::ReqEvent;
}

/// One end of a shared ring: the private indices of `struct *_front_ring` / `*_back_ring`, plus
/// what hardening needs.
///
/// Invariants (all index arithmetic modulo 2^32), which every method preserves whatever the peer
/// writes:
/// - frontend: `cons <= peer_prod <= prod_pub <= prod_pvt <= cons + slots`
///   (`cons` = `rsp_cons`, `prod_pvt` = `req_prod_pvt`);
/// - backend: `prod_pub <= prod_pvt <= cons <= peer_prod <= prod_pvt + slots`
///   (`cons` = `req_cons`, `prod_pvt` = `rsp_prod_pvt`).
#[derive(Debug)]
pub(crate) struct Ring<L, R> {
    mem: RingMemory,
    layout: L,
    /// `RING_SIZE`: a power of two, at least 1 and below 2^31.
    slots: u32,
    /// Our private producer index (`req_prod_pvt` / `rsp_prod_pvt`).
    prod_pvt: RingIdx,
    /// The value of our producer index we last published to the shared header.
    prod_pub: RingIdx,
    /// Our consumer index (`rsp_cons` / `req_cons`).
    cons: RingIdx,
    /// The peer's producer index as last read and validated; entries in `cons..peer_prod` may be
    /// read without loading the index again.
    peer_prod: RingIdx,
    /// Set by the first protocol violation; the ring refuses all work until reset.
    error: Option<RingError>,
    role: PhantomData<R>,
}

impl<L: EntryLayout, R: Role> Ring<L, R> {
    /// `*_RING_ATTACH(r, s, index, size)`: private indices at `index`; shared memory untouched.
    pub(crate) fn attach(mem: RingMemory, layout: L, index: RingIdx) -> Result<Self, RingError> {
        let entry_size = layout.entry_size();
        let slots = ring_slots(mem.pages(), entry_size);
        if slots == 0 {
            return Err(RingError::RingTooSmall {
                pages: mem.pages(),
                entry_size,
            });
        }
        Ok(Self {
            mem,
            layout,
            slots,
            prod_pvt: index,
            prod_pub: index,
            cons: index,
            peer_prod: index,
            error: None,
            role: PhantomData,
        })
    }

    /// Re-attaches at `index` and clears any recorded protocol violation.
    pub(crate) fn reset(&mut self, index: RingIdx) {
        self.prod_pvt = index;
        self.prod_pub = index;
        self.cons = index;
        self.peer_prod = index;
        self.error = None;
    }

    pub(crate) fn memory(&self) -> &RingMemory {
        &self.mem
    }

    pub(crate) fn slots(&self) -> u32 {
        self.slots
    }

    pub(crate) fn entry_size(&self) -> usize {
        self.layout.entry_size()
    }

    pub(crate) fn error(&self) -> Option<RingError> {
        self.error
    }

    pub(crate) fn prod_pvt(&self) -> RingIdx {
        self.prod_pvt
    }

    pub(crate) fn cons(&self) -> RingIdx {
        self.cons
    }

    #[inline(always)]
    fn check(&self) -> Result<(), RingError> {
        match self.error {
            None => Ok(()),
            Some(error) => Err(error),
        }
    }

    /// The byte offset of the slot of free-running index `idx`.
    #[inline(always)]
    fn offset(&self, idx: RingIdx) -> usize {
        RING_ENTRIES_OFFSET + (idx & (self.slots - 1)) as usize * self.layout.entry_size()
    }

    /// Slots this end may fill now: `RING_FREE_REQUESTS` for a frontend; for a backend, the
    /// requests it consumed and has not answered yet (each answer reuses its request's slot).
    #[inline(always)]
    pub(crate) fn free(&self) -> u32 {
        if R::FRONT {
            self.slots
                .saturating_sub(self.prod_pvt.wrapping_sub(self.cons))
        } else {
            self.cons.wrapping_sub(self.prod_pvt)
        }
    }

    /// How many entries may be pushed right now: 0 once poisoned.
    #[inline(always)]
    fn room(&self) -> u32 {
        if self.error.is_some() {
            0
        } else {
            self.free()
        }
    }

    /// Writes one entry at the private producer index (not yet visible to the peer).
    #[inline(always)]
    pub(crate) fn push_bytes(&mut self, bytes: &[u8]) -> Result<(), RingError> {
        self.check()?;
        if self.free() == 0 {
            return Err(RingError::Full);
        }
        self.mem
            .write_entry(self.offset(self.prod_pvt), bytes, self.layout.grid());
        self.prod_pvt = self.prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// Writes as many of `items` as fit; returns how many.
    #[inline(always)]
    pub(crate) fn push_many<T>(&mut self, items: &[T], bytes: impl Fn(&T) -> &[u8]) -> usize {
        let n = items.len().min(self.room() as usize);
        for item in &items[..n] {
            self.mem
                .write_entry(self.offset(self.prod_pvt), bytes(item), self.layout.grid());
            self.prod_pvt = self.prod_pvt.wrapping_add(1);
        }
        n
    }

    /// `RING_PUSH_{REQUESTS,RESPONSES}`: publishes the private producer index.
    #[inline(always)]
    pub(crate) fn publish(&mut self) {
        if self.error.is_some() || self.prod_pvt == self.prod_pub {
            return;
        }
        // Release: the entry stores above (relaxed, in `write_entry`) happen before the index
        // store, so a peer that loads the index with Acquire (or, in C, reads it and then issues
        // `xen_rmb()`) sees every entry up to it. This is the macros' `xen_wmb()`.
        self.mem
            .store_idx(R::OUR_PROD, self.prod_pvt, Ordering::Release);
        self.prod_pub = self.prod_pvt;
    }

    /// `RING_PUSH_{REQUESTS,RESPONSES}_AND_CHECK_NOTIFY`: publishes, then says whether the peer
    /// asked for an event for any of the entries just published.
    #[inline(always)]
    pub(crate) fn publish_and_check_notify(&mut self) -> bool {
        if self.error.is_some() {
            return false;
        }
        // The macro reads `old` from the shared header; ours is the value we last wrote there,
        // the same for an honest peer and immune to a peer that scribbles on our index.
        let old = self.prod_pub;
        let new = self.prod_pvt;
        if new == old {
            // Nothing new: the macro's test `new - event < new - old` is `x < 0`, false.
            return false;
        }
        // Release, as in `publish`.
        self.mem.store_idx(R::OUR_PROD, new, Ordering::Release);
        self.prod_pub = new;
        // Full fence (`xen_mb()`): the store of the producer index must be ordered before the load
        // of the peer's event index, a store->load order that release/acquire do not give. The
        // peer's final check does the mirror image (store its event index, full fence, load our
        // producer index), so of the two loads at least one sees the other side's store: either
        // we see the new event index and notify, or the peer sees the new entries and does not
        // sleep. A wake-up cannot be lost.
        fence(Ordering::SeqCst);
        // Relaxed: the value only steers the notify decision; the fence above orders the load.
        let event = self.mem.load_idx(R::PEER_EVENT, Ordering::Relaxed);
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }

    /// Reloads the peer's producer index, validates it, and returns the unconsumed count.
    #[inline(always)]
    fn refresh(&mut self) -> Result<u32, RingError> {
        // Acquire: pairs with the peer's release of its producer index (the C macros' `xen_wmb()`
        // before the store), so every entry up to `prod` is visible to the copies that follow.
        let prod = self.mem.load_idx(R::PEER_PROD, Ordering::Acquire);
        if prod != self.peer_prod {
            if let Err(error) = self.validate(prod) {
                self.error = Some(error);
                return Err(error);
            }
            self.peer_prod = prod;
        }
        Ok(self.peer_prod.wrapping_sub(self.cons))
    }

    /// Decides whether `prod`, freshly read from the peer's producer index, is possible.
    ///
    /// The valid values form a window of at most `slots` (< 2^31) indices starting at the last
    /// accepted value `peer_prod`: for a frontend, up to the request index it published
    /// (responses cannot outnumber requests); for a backend, up to `rsp_prod_pvt + slots`
    /// (`RING_REQUEST_PROD_OVERFLOW`: consumed but unanswered requests still hold their slots).
    /// A value outside is classified by the shorter way round the 2^32 circle: behind the last
    /// accepted value is [`RingError::ProducerWentBackwards`], ahead is
    /// [`RingError::Overflow`] (or [`RingError::UnrequestedResponses`] for a frontend whose
    /// window is narrower than the ring).
    #[cold]
    fn validate(&self, prod: RingIdx) -> Result<(), RingError> {
        let last = self.peer_prod;
        if (prod.wrapping_sub(last) as i32) < 0 {
            return Err(RingError::ProducerWentBackwards { prod, last });
        }
        if R::FRONT {
            let unconsumed = prod.wrapping_sub(self.cons);
            if unconsumed > self.slots {
                return Err(RingError::Overflow {
                    prod,
                    base: self.cons,
                    slots: self.slots,
                });
            }
            if unconsumed > self.prod_pub.wrapping_sub(self.cons) {
                return Err(RingError::UnrequestedResponses {
                    rsp_prod: prod,
                    req_prod: self.prod_pub,
                });
            }
        } else if prod.wrapping_sub(self.prod_pvt) > self.slots {
            return Err(RingError::Overflow {
                prod,
                base: self.prod_pvt,
                slots: self.slots,
            });
        }
        Ok(())
    }

    /// `RING_HAS_UNCONSUMED_{RESPONSES,REQUESTS}`, validated.
    #[inline(always)]
    pub(crate) fn unconsumed(&mut self) -> Result<u32, RingError> {
        self.check()?;
        self.refresh()
    }

    /// Copies the next unconsumed entry into `dst` and consumes it; `Ok(false)` if there is none.
    #[inline(always)]
    pub(crate) fn take_bytes(&mut self, dst: &mut [u8]) -> Result<bool, RingError> {
        self.check()?;
        // The index is loaded and validated only when the entries known to be there run out, so
        // a batch costs one load and one validation.
        if self.cons == self.peer_prod && self.refresh()? == 0 {
            return Ok(false);
        }
        self.mem
            .read_entry(self.offset(self.cons), dst, self.layout.grid());
        self.cons = self.cons.wrapping_add(1);
        Ok(true)
    }

    /// Consumes every entry available, calling `read` with the memory and each entry's offset.
    ///
    /// Terminates whatever the peer does: the window of valid producer values is fixed while this
    /// runs (we produce nothing meanwhile), so at most `slots` entries are consumed.
    #[inline(always)]
    pub(crate) fn drain(
        &mut self,
        mut read: impl FnMut(&RingMemory, usize, Grid),
    ) -> Result<usize, RingError> {
        self.check()?;
        let mut consumed = 0;
        loop {
            if self.cons == self.peer_prod && self.refresh()? == 0 {
                return Ok(consumed);
            }
            while self.cons != self.peer_prod {
                read(&self.mem, self.offset(self.cons), self.layout.grid());
                self.cons = self.cons.wrapping_add(1);
                consumed += 1;
            }
        }
    }

    /// A backend's fast path: consumes the requests visible now and answers each in the same
    /// pass, calling `answer` with the memory, the request's offset and the offset of the
    /// response slot (the slot at the private producer index, which a consumed request has
    /// freed).
    ///
    /// One snapshot of the producer index per call, as the C loop reads `req_prod` once: the
    /// caller publishes the answers before looking for more, so the frontend gets them without
    /// waiting for requests that arrived meanwhile. That also bounds the call to one window of
    /// valid producer values, at most `slots` requests.
    #[inline(always)]
    pub(crate) fn serve(
        &mut self,
        mut answer: impl FnMut(&RingMemory, usize, usize, Grid),
    ) -> Result<usize, RingError> {
        debug_assert!(!R::FRONT, "only a backend answers requests");
        self.check()?;
        if self.cons == self.peer_prod && self.refresh()? == 0 {
            return Ok(0);
        }
        let mut served = 0usize;
        while self.cons != self.peer_prod {
            let request = self.offset(self.cons);
            self.cons = self.cons.wrapping_add(1);
            let response = self.offset(self.prod_pvt);
            answer(&self.mem, request, response, self.layout.grid());
            self.prod_pvt = self.prod_pvt.wrapping_add(1);
            served += 1;
        }
        Ok(served)
    }

    /// `RING_FINAL_CHECK_FOR_{RESPONSES,REQUESTS}`: true if entries are pending; otherwise asks
    /// the peer for an event on the next entry and checks once more.
    #[inline(always)]
    pub(crate) fn final_check(&mut self) -> Result<bool, RingError> {
        self.check()?;
        if self.cons != self.peer_prod || self.refresh()? != 0 {
            return Ok(true);
        }
        // Relaxed: the fence below orders this store before the reload.
        self.mem
            .store_idx(R::OUR_EVENT, self.cons.wrapping_add(1), Ordering::Relaxed);
        // Full fence (`xen_mb()`): store->load order between asking for an event and re-reading
        // the producer index; the mirror of the fence in `publish_and_check_notify` (see there).
        fence(Ordering::SeqCst);
        Ok(self.refresh()? != 0)
    }
}
