//! A frontend's shared ring laid over pages granted with gntalloc.
//!
//! [`GrantedRing`] ties a `xen_ring::FrontRing` to the [`GrantedPages`] it lives in: the borrow
//! keeps the pages mapped for as long as the ring exists, which is what
//! `xen_ring::RingMemory::new` requires. Only the ring operations a frontend needs are exposed, so
//! no handle to the ring memory can outlive the pages.

use std::io;
use std::marker::PhantomData;

use xen_ring::{FrontRing, RingEntry, RingError, RingMemory};

use super::gntalloc::GrantedPages;
use super::PAGE_SIZE;

/// A frontend ring in granted pages (one page, or 2^order of them).
#[derive(Debug)]
pub struct GrantedRing<'p, Req, Rsp> {
    ring: FrontRing<Req, Rsp>,
    _pages: PhantomData<&'p GrantedPages<'p>>,
}

impl<'p, Req: RingEntry, Rsp: RingEntry> GrantedRing<'p, Req, Rsp> {
    /// Initialises a ring (`XEN_FRONT_RING_INIT`) over all of `pages`, whose count must be a power
    /// of two.
    pub fn init(pages: &'p GrantedPages<'p>) -> io::Result<Self> {
        let map = pages.pages();
        let count = map.len() / PAGE_SIZE;
        if !count.is_power_of_two() {
            return Err(io::Error::other(format!(
                "a ring needs a power-of-two number of pages, not {count}"
            )));
        }
        let order = count.trailing_zeros();
        // SAFETY: `map` is a writable, page-aligned shared mapping of `count << 12` bytes made by
        // gntalloc; it stays mapped while `pages` lives, which the `'p` borrow held by the
        // returned value guarantees for the ring's whole life. Nothing else in this program makes
        // references into it: `Mapping` only does volatile copies, and the ring memory handle
        // never leaves this type (no accessor returns it).
        let mem = unsafe { RingMemory::new(map.as_ptr(), order) }.map_err(ring_error)?;
        let ring = FrontRing::init(mem).map_err(ring_error)?;
        Ok(Self {
            ring,
            _pages: PhantomData,
        })
    }

    /// The number of slots.
    pub fn slots(&self) -> u32 {
        self.ring.slots()
    }

    /// Free request slots.
    pub fn free_requests(&self) -> u32 {
        self.ring.free_requests()
    }

    /// Queues a request (not yet visible to the backend).
    pub fn push_request(&mut self, req: &Req) -> Result<(), RingError> {
        self.ring.push_request(req)
    }

    /// Publishes queued requests; returns whether the backend must be notified.
    pub fn push_requests_and_check_notify(&mut self) -> bool {
        self.ring.push_requests_and_check_notify()
    }

    /// Consumes every available response.
    pub fn drain_responses(&mut self, f: impl FnMut(Rsp)) -> Result<usize, RingError> {
        self.ring.drain_responses(f)
    }

    /// Re-arms the response event; returns whether more responses arrived meanwhile.
    pub fn final_check_for_responses(&mut self) -> Result<bool, RingError> {
        self.ring.final_check_for_responses()
    }
}

fn ring_error(e: RingError) -> io::Error {
    io::Error::other(format!("ring: {e}"))
}
