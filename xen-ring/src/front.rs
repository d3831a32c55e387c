//! The frontend end: pushes requests, takes responses.

use core::fmt;

use xen_abi::ring::RingIdx;

use crate::error::RingError;
use crate::ring::{DynLayout, Front, Ring, RingEntry, TypedLayout};
use crate::shared::RingMemory;

/// The frontend of a shared ring carrying `Req` requests and `Rsp` responses
/// (`struct *_front_ring` and the `FRONT_RING_*` / `RING_*` macros).
///
/// The entry size is [`ENTRY_SIZE`](Self::ENTRY_SIZE), the padded union of the two types as in
/// C's `union *_sring_entry`; the ring has `ring_slots(pages, ENTRY_SIZE)` slots.
///
/// Responses are validated before they are read (see [`RingError`]); after a protocol violation
/// the ring is poisoned until [`reinit`](Self::reinit) or [`reattach_at`](Self::reattach_at).
pub struct FrontRing<Req, Rsp> {
    ring: Ring<TypedLayout<Req, Rsp>, Front>,
}

impl<Req, Rsp> fmt::Debug for FrontRing<Req, Rsp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrontRing")
            .field("ring", &self.ring)
            .finish()
    }
}

impl<Req: RingEntry, Rsp: RingEntry> FrontRing<Req, Rsp> {
    /// The size of one slot: `ring_entry_size` of `Req` and `Rsp`.
    pub const ENTRY_SIZE: usize = TypedLayout::<Req, Rsp>::ENTRY_SIZE;

    /// `XEN_FRONT_RING_INIT`: initialises the shared header (`SHARED_RING_INIT`: producer indices
    /// 0, event indices 1, padding zeroed) and attaches the frontend at index 0.
    ///
    /// Fails with [`RingError::RingTooSmall`] (touching nothing) if no entry fits in `mem`.
    pub fn init(mem: RingMemory) -> Result<Self, RingError> {
        let ring = Ring::attach(mem, TypedLayout::new(), 0)?;
        ring.memory().init_header(0);
        Ok(Self { ring })
    }

    /// Test-only: like [`init`](Self::init) but with every shared and private index starting at
    /// `index` instead of 0 (so tests can start next to the 2^32 wrap-around).
    #[cfg(any(test, feature = "test-utils"))]
    pub fn init_at(mem: RingMemory, index: RingIdx) -> Result<Self, RingError> {
        let ring = Ring::attach(mem, TypedLayout::new(), index)?;
        ring.memory().init_header(index);
        Ok(Self { ring })
    }

    /// `FRONT_RING_ATTACH`: attaches to an already initialised shared ring with both private
    /// indices at `index` (the shared `req_prod` should equal it). Writes nothing to `mem`.
    pub fn attach_at(mem: RingMemory, index: RingIdx) -> Result<Self, RingError> {
        Ok(Self {
            ring: Ring::attach(mem, TypedLayout::new(), index)?,
        })
    }

    /// Re-initialises the shared header and the frontend as [`init`](Self::init) does (after a
    /// resume, or to recover from a protocol violation). Outstanding requests are forgotten.
    pub fn reinit(&mut self) {
        self.ring.memory().init_header(0);
        self.ring.reset(0);
    }

    /// Re-attaches at `index` as [`attach_at`](Self::attach_at) does, clearing a recorded
    /// protocol violation. Writes nothing to the shared memory.
    pub fn reattach_at(&mut self, index: RingIdx) {
        self.ring.reset(index);
    }

    /// The shared pages.
    pub fn memory(&self) -> &RingMemory {
        self.ring.memory()
    }

    /// The number of slots (`RING_SIZE`).
    pub fn slots(&self) -> u32 {
        self.ring.slots()
    }

    /// The protocol violation that poisoned the ring, if any.
    pub fn error(&self) -> Option<RingError> {
        self.ring.error()
    }

    /// The private request producer index (`req_prod_pvt`).
    pub fn req_prod_pvt(&self) -> RingIdx {
        self.ring.prod_pvt()
    }

    /// The response consumer index (`rsp_cons`).
    pub fn rsp_cons(&self) -> RingIdx {
        self.ring.cons()
    }

    /// `RING_FREE_REQUESTS`: how many more requests may be pushed before responses are taken.
    pub fn free_requests(&self) -> u32 {
        self.ring.free()
    }

    /// `RING_FULL`.
    pub fn is_full(&self) -> bool {
        self.ring.free() == 0
    }

    /// Writes `req` into the next slot and advances `req_prod_pvt`. The backend does not see it
    /// until [`push_requests`](Self::push_requests) or
    /// [`push_requests_and_check_notify`](Self::push_requests_and_check_notify).
    ///
    /// Fails with [`RingError::Full`] if every slot holds an outstanding request, or with the
    /// poisoning error.
    #[inline(always)]
    pub fn push_request(&mut self, req: &Req) -> Result<(), RingError> {
        self.ring.push_bytes(req.as_bytes())
    }

    /// Writes as many of `reqs` as there are free slots; returns how many (0 if the ring is
    /// poisoned). Not yet visible to the backend, as for [`push_request`](Self::push_request).
    #[inline(always)]
    pub fn push_batch(&mut self, reqs: &[Req]) -> usize {
        self.ring.push_many(reqs, |req| req.as_bytes())
    }

    /// `RING_PUSH_REQUESTS`: publishes the pushed requests without deciding about notification.
    /// Does nothing on a poisoned ring.
    #[inline(always)]
    pub fn push_requests(&mut self) {
        self.ring.publish()
    }

    /// `RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`: publishes the pushed requests and returns whether
    /// the backend asked for an event (`req_event`) for one of them; if so, signal the event
    /// channel. False (and nothing published) on a poisoned ring.
    #[inline(always)]
    pub fn push_requests_and_check_notify(&mut self) -> bool {
        self.ring.publish_and_check_notify()
    }

    /// `RING_HAS_UNCONSUMED_RESPONSES`: reads and validates `rsp_prod` and returns how many
    /// responses are waiting.
    #[inline(always)]
    pub fn unconsumed_responses(&mut self) -> Result<u32, RingError> {
        self.ring.unconsumed()
    }

    /// Copies the next response out of the ring (`RING_COPY_RESPONSE`) and consumes it;
    /// `Ok(None)` if there is none. `rsp_prod` is read and validated only when the responses
    /// already known to be there run out.
    #[inline(always)]
    pub fn take_response(&mut self) -> Result<Option<Rsp>, RingError> {
        let mut rsp = Rsp::new_zeroed();
        Ok(if self.ring.take_bytes(rsp.as_mut_bytes())? {
            Some(rsp)
        } else {
            None
        })
    }

    /// Takes every available response, passing each to `f` in order; returns how many.
    ///
    /// Stops when `rsp_prod` (re-read when the known responses run out) shows no more. On a
    /// protocol violation, the responses before it have been passed to `f` and the error is
    /// returned.
    #[inline(always)]
    pub fn drain_responses(&mut self, mut f: impl FnMut(Rsp)) -> Result<usize, RingError> {
        self.ring.drain(|mem, offset, grid| {
            let mut rsp = Rsp::new_zeroed();
            mem.read_entry(offset, rsp.as_mut_bytes(), grid);
            f(rsp)
        })
    }

    /// `RING_FINAL_CHECK_FOR_RESPONSES`: true if responses are waiting. Otherwise sets
    /// `rsp_event = rsp_cons + 1` (asking for an event on the next response), and checks again;
    /// if this returns false the caller may sleep until the event channel fires.
    #[inline(always)]
    pub fn final_check_for_responses(&mut self) -> Result<bool, RingError> {
        self.ring.final_check()
    }
}

/// A frontend whose entry size is chosen at run time, working on byte slices.
///
/// For protocols whose layout is settled at connect time (blkif's x86_32 and x86_64 layouts differ
/// in size and offsets, chosen by the backend's `protocol` node): the caller serialises each
/// request to bytes in the negotiated layout. The ring logic is the same code as
/// [`FrontRing`]'s; only the entry size is a field instead of a constant.
#[derive(Debug)]
pub struct RawFrontRing {
    ring: Ring<DynLayout, Front>,
}

impl RawFrontRing {
    /// `XEN_FRONT_RING_INIT` with `entry_size`-byte slots (see [`FrontRing::init`]).
    pub fn init(mem: RingMemory, entry_size: usize) -> Result<Self, RingError> {
        let ring = Ring::attach(mem, DynLayout(entry_size), 0)?;
        ring.memory().init_header(0);
        Ok(Self { ring })
    }

    /// Test-only: [`init`](Self::init) with every index starting at `index`.
    #[cfg(any(test, feature = "test-utils"))]
    pub fn init_at(mem: RingMemory, entry_size: usize, index: RingIdx) -> Result<Self, RingError> {
        let ring = Ring::attach(mem, DynLayout(entry_size), index)?;
        ring.memory().init_header(index);
        Ok(Self { ring })
    }

    /// `FRONT_RING_ATTACH` (see [`FrontRing::attach_at`]).
    pub fn attach_at(
        mem: RingMemory,
        entry_size: usize,
        index: RingIdx,
    ) -> Result<Self, RingError> {
        Ok(Self {
            ring: Ring::attach(mem, DynLayout(entry_size), index)?,
        })
    }

    /// See [`FrontRing::reinit`].
    pub fn reinit(&mut self) {
        self.ring.memory().init_header(0);
        self.ring.reset(0);
    }

    /// See [`FrontRing::reattach_at`].
    pub fn reattach_at(&mut self, index: RingIdx) {
        self.ring.reset(index);
    }

    /// The shared pages.
    pub fn memory(&self) -> &RingMemory {
        self.ring.memory()
    }

    /// The size of one slot in bytes.
    pub fn entry_size(&self) -> usize {
        self.ring.entry_size()
    }

    /// The number of slots (`RING_SIZE`).
    pub fn slots(&self) -> u32 {
        self.ring.slots()
    }

    /// The protocol violation that poisoned the ring, if any.
    pub fn error(&self) -> Option<RingError> {
        self.ring.error()
    }

    /// The private request producer index (`req_prod_pvt`).
    pub fn req_prod_pvt(&self) -> RingIdx {
        self.ring.prod_pvt()
    }

    /// The response consumer index (`rsp_cons`).
    pub fn rsp_cons(&self) -> RingIdx {
        self.ring.cons()
    }

    /// `RING_FREE_REQUESTS`.
    pub fn free_requests(&self) -> u32 {
        self.ring.free()
    }

    /// `RING_FULL`.
    pub fn is_full(&self) -> bool {
        self.ring.free() == 0
    }

    /// Writes `req` at the start of the next slot (the rest of the slot is left as it was) and
    /// advances `req_prod_pvt`. Fails with [`RingError::EntryTooLarge`] if `req` is longer than
    /// the entry size, [`RingError::Full`], or the poisoning error.
    #[inline(always)]
    pub fn push_request(&mut self, req: &[u8]) -> Result<(), RingError> {
        let entry_size = self.ring.entry_size();
        if req.len() > entry_size {
            return Err(RingError::EntryTooLarge {
                len: req.len(),
                entry_size,
            });
        }
        self.ring.push_bytes(req)
    }

    /// See [`FrontRing::push_requests`].
    #[inline(always)]
    pub fn push_requests(&mut self) {
        self.ring.publish()
    }

    /// See [`FrontRing::push_requests_and_check_notify`].
    #[inline(always)]
    pub fn push_requests_and_check_notify(&mut self) -> bool {
        self.ring.publish_and_check_notify()
    }

    /// See [`FrontRing::unconsumed_responses`].
    #[inline(always)]
    pub fn unconsumed_responses(&mut self) -> Result<u32, RingError> {
        self.ring.unconsumed()
    }

    /// Copies the first `min(dst.len(), entry_size)` bytes of the next response into `dst` and
    /// consumes it; returns the number of bytes copied, or `None` if there is no response.
    #[inline(always)]
    pub fn take_response(&mut self, dst: &mut [u8]) -> Result<Option<usize>, RingError> {
        let n = dst.len().min(self.ring.entry_size());
        Ok(if self.ring.take_bytes(&mut dst[..n])? {
            Some(n)
        } else {
            None
        })
    }

    /// Takes every available response, copying the first `min(buf.len(), entry_size)` bytes of
    /// each into `buf` and passing that prefix to `f`; returns how many (see
    /// [`FrontRing::drain_responses`]).
    #[inline(always)]
    pub fn drain_responses(
        &mut self,
        buf: &mut [u8],
        mut f: impl FnMut(&[u8]),
    ) -> Result<usize, RingError> {
        let n = buf.len().min(self.ring.entry_size());
        let buf = &mut buf[..n];
        self.ring.drain(|mem, offset, grid| {
            mem.read_entry(offset, buf, grid);
            f(buf)
        })
    }

    /// See [`FrontRing::final_check_for_responses`].
    #[inline(always)]
    pub fn final_check_for_responses(&mut self) -> Result<bool, RingError> {
        self.ring.final_check()
    }
}
