//! The backend end: takes requests, pushes responses.

use core::fmt;

use xen_abi::ring::RingIdx;

use crate::error::RingError;
use crate::ring::{Back, DynLayout, Ring, RingEntry, TypedLayout};
use crate::shared::RingMemory;

/// The backend of a shared ring carrying `Req` requests and `Rsp` responses
/// (`struct *_back_ring` and the `BACK_RING_*` / `RING_*` macros).
///
/// Requests are validated before they are read: `req_prod` may run at most `slots` ahead of
/// `rsp_prod_pvt` (Xen's `RING_REQUEST_PROD_OVERFLOW`) and may not move backwards (see
/// [`RingError`]). A response may only be pushed for a request already taken, since it reuses that
/// request's slot. After a protocol violation the ring is poisoned until
/// [`reattach_at`](Self::reattach_at).
pub struct BackRing<Req, Rsp> {
    ring: Ring<TypedLayout<Req, Rsp>, Back>,
}

impl<Req, Rsp> fmt::Debug for BackRing<Req, Rsp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackRing")
            .field("ring", &self.ring)
            .finish()
    }
}

impl<Req: RingEntry, Rsp: RingEntry> BackRing<Req, Rsp> {
    /// The size of one slot: `ring_entry_size` of `Req` and `Rsp`.
    pub const ENTRY_SIZE: usize = TypedLayout::<Req, Rsp>::ENTRY_SIZE;

    /// `BACK_RING_INIT`: attaches at index 0 to a ring the frontend initialised. Writes nothing
    /// to `mem`. Fails with [`RingError::RingTooSmall`] if no entry fits.
    pub fn attach(mem: RingMemory) -> Result<Self, RingError> {
        Self::attach_at(mem, 0)
    }

    /// `BACK_RING_ATTACH`: attaches with both private indices at `index`, e.g. the shared
    /// `rsp_prod` when a backend reconnects to a live ring. Writes nothing to `mem`.
    pub fn attach_at(mem: RingMemory, index: RingIdx) -> Result<Self, RingError> {
        Ok(Self {
            ring: Ring::attach(mem, TypedLayout::new(), index)?,
        })
    }

    /// Re-attaches at `index` as [`attach_at`](Self::attach_at) does, clearing a recorded
    /// protocol violation.
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

    /// The request consumer index (`req_cons`).
    pub fn req_cons(&self) -> RingIdx {
        self.ring.cons()
    }

    /// The private response producer index (`rsp_prod_pvt`).
    pub fn rsp_prod_pvt(&self) -> RingIdx {
        self.ring.prod_pvt()
    }

    /// Requests taken but not yet answered: how many responses may be pushed now.
    pub fn unanswered_requests(&self) -> u32 {
        self.ring.free()
    }

    /// `RING_HAS_UNCONSUMED_REQUESTS`: reads and validates `req_prod` and returns how many
    /// requests are waiting.
    #[inline(always)]
    pub fn unconsumed_requests(&mut self) -> Result<u32, RingError> {
        self.ring.unconsumed()
    }

    /// Copies the next request out of the ring (`RING_COPY_REQUEST`) and consumes it; `Ok(None)`
    /// if there is none. `req_prod` is read and validated only when the requests already known to
    /// be there run out.
    #[inline(always)]
    pub fn take_request(&mut self) -> Result<Option<Req>, RingError> {
        let mut req = Req::new_zeroed();
        Ok(if self.ring.take_bytes(req.as_mut_bytes())? {
            Some(req)
        } else {
            None
        })
    }

    /// Takes every available request, passing each to `f` in order; returns how many. At most
    /// `slots` requests are taken per call. On a protocol violation, the requests before it have
    /// been passed to `f` and the error is returned.
    #[inline(always)]
    pub fn drain_requests(&mut self, mut f: impl FnMut(Req)) -> Result<usize, RingError> {
        self.ring.drain(|mem, offset, grid| {
            let mut req = Req::new_zeroed();
            mem.read_entry(offset, req.as_mut_bytes(), grid);
            f(req)
        })
    }

    /// Takes the requests visible now (one read of `req_prod`) and answers each at once with `f`'s
    /// response, in one pass (the batch form of [`take_request`](Self::take_request) +
    /// [`push_response`](Self::push_response)); returns how many, at most `slots`.
    /// The responses are published by [`push_responses`](Self::push_responses) or
    /// [`push_responses_and_check_notify`](Self::push_responses_and_check_notify), as usual.
    #[inline(always)]
    pub fn serve(&mut self, mut f: impl FnMut(Req) -> Rsp) -> Result<usize, RingError> {
        self.ring.serve(|mem, request, response, grid| {
            let mut req = Req::new_zeroed();
            mem.read_entry(request, req.as_mut_bytes(), grid);
            let rsp = f(req);
            mem.write_entry(response, rsp.as_bytes(), grid);
        })
    }

    /// `RING_FINAL_CHECK_FOR_REQUESTS`: true if requests are waiting. Otherwise sets
    /// `req_event = req_cons + 1` and checks again; if this returns false the caller may sleep
    /// until the event channel fires.
    #[inline(always)]
    pub fn final_check_for_requests(&mut self) -> Result<bool, RingError> {
        self.ring.final_check()
    }

    /// Writes `rsp` into the slot of the oldest unanswered request and advances `rsp_prod_pvt`;
    /// the frontend does not see it until [`push_responses`](Self::push_responses) or
    /// [`push_responses_and_check_notify`](Self::push_responses_and_check_notify).
    ///
    /// Fails with [`RingError::Full`] if every request taken has been answered, or with the
    /// poisoning error.
    #[inline(always)]
    pub fn push_response(&mut self, rsp: &Rsp) -> Result<(), RingError> {
        self.ring.push_bytes(rsp.as_bytes())
    }

    /// Writes as many of `rsps` as there are unanswered requests; returns how many (0 if the ring
    /// is poisoned).
    #[inline(always)]
    pub fn push_batch(&mut self, rsps: &[Rsp]) -> usize {
        self.ring.push_many(rsps, |rsp| rsp.as_bytes())
    }

    /// `RING_PUSH_RESPONSES`: publishes the pushed responses. Does nothing on a poisoned ring.
    #[inline(always)]
    pub fn push_responses(&mut self) {
        self.ring.publish()
    }

    /// `RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`: publishes the pushed responses and returns whether
    /// the frontend asked for an event (`rsp_event`) for one of them. False (and nothing
    /// published) on a poisoned ring.
    #[inline(always)]
    pub fn push_responses_and_check_notify(&mut self) -> bool {
        self.ring.publish_and_check_notify()
    }
}

/// A backend whose entry size is chosen at run time, working on byte slices (see
/// [`RawFrontRing`](crate::RawFrontRing)).
#[derive(Debug)]
pub struct RawBackRing {
    ring: Ring<DynLayout, Back>,
}

impl RawBackRing {
    /// `BACK_RING_INIT` with `entry_size`-byte slots (see [`BackRing::attach`]).
    pub fn attach(mem: RingMemory, entry_size: usize) -> Result<Self, RingError> {
        Self::attach_at(mem, entry_size, 0)
    }

    /// `BACK_RING_ATTACH` (see [`BackRing::attach_at`]).
    pub fn attach_at(
        mem: RingMemory,
        entry_size: usize,
        index: RingIdx,
    ) -> Result<Self, RingError> {
        Ok(Self {
            ring: Ring::attach(mem, DynLayout(entry_size), index)?,
        })
    }

    /// See [`BackRing::reattach_at`].
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

    /// The request consumer index (`req_cons`).
    pub fn req_cons(&self) -> RingIdx {
        self.ring.cons()
    }

    /// The private response producer index (`rsp_prod_pvt`).
    pub fn rsp_prod_pvt(&self) -> RingIdx {
        self.ring.prod_pvt()
    }

    /// See [`BackRing::unanswered_requests`].
    pub fn unanswered_requests(&self) -> u32 {
        self.ring.free()
    }

    /// See [`BackRing::unconsumed_requests`].
    #[inline(always)]
    pub fn unconsumed_requests(&mut self) -> Result<u32, RingError> {
        self.ring.unconsumed()
    }

    /// Copies the first `min(dst.len(), entry_size)` bytes of the next request into `dst` and
    /// consumes it; returns the number of bytes copied, or `None` if there is no request.
    #[inline(always)]
    pub fn take_request(&mut self, dst: &mut [u8]) -> Result<Option<usize>, RingError> {
        let n = dst.len().min(self.ring.entry_size());
        Ok(if self.ring.take_bytes(&mut dst[..n])? {
            Some(n)
        } else {
            None
        })
    }

    /// Takes every available request, copying the first `min(buf.len(), entry_size)` bytes of
    /// each into `buf` and passing that prefix to `f`; returns how many (see
    /// [`BackRing::drain_requests`]).
    #[inline(always)]
    pub fn drain_requests(
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

    /// See [`BackRing::final_check_for_requests`].
    #[inline(always)]
    pub fn final_check_for_requests(&mut self) -> Result<bool, RingError> {
        self.ring.final_check()
    }

    /// Writes `rsp` at the start of the slot of the oldest unanswered request. Fails with
    /// [`RingError::EntryTooLarge`], [`RingError::Full`] or the poisoning error.
    #[inline(always)]
    pub fn push_response(&mut self, rsp: &[u8]) -> Result<(), RingError> {
        let entry_size = self.ring.entry_size();
        if rsp.len() > entry_size {
            return Err(RingError::EntryTooLarge {
                len: rsp.len(),
                entry_size,
            });
        }
        self.ring.push_bytes(rsp)
    }

    /// See [`BackRing::push_responses`].
    #[inline(always)]
    pub fn push_responses(&mut self) {
        self.ring.publish()
    }

    /// See [`BackRing::push_responses_and_check_notify`].
    #[inline(always)]
    pub fn push_responses_and_check_notify(&mut self) -> bool {
        self.ring.publish_and_check_notify()
    }
}
