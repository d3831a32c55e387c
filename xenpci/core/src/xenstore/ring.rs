//! The [`Transport`] over a guest's shared xenstore page (`struct xenstore_domain_interface`).
//!
//! The page is reached only through [`StorePage`], so the Windows shell (over the mapped page),
//! xen-sim (over its model) and tests (over plain memory) each supply it.
//!
//! # Hardening
//! The peer can write anything into the page at any time. Each operation reads the peer's index
//! exactly once; our own index is kept privately and only ever written to the page. If the peer's
//! index claims more than `XENSTORE_RING_SIZE` bytes in flight (or is behind ours), the operation
//! fails with [`ProtocolError::RingIndex`] without touching the ring: every copy is bounded by the
//! validated distance and by the ring's size, whatever the page holds.

use xen_abi::xenstore::{
    interface_offsets as off, mask_xenstore_idx, XenstoreDomainInterface, XENSTORE_RING_SIZE,
};

use super::{ProtocolError, Transport, XsError};

/// Access to the shared xenstore page.
///
/// `offset` is a byte offset into the page as laid out by [`XenstoreDomainInterface`] (see
/// [`interface_offsets`](xen_abi::xenstore::interface_offsets)); [`RingTransport`] only passes
/// offsets of the four index fields and of the feature/connection/error words to the `u32`
/// accessors, and ranges within `req` or `rsp` to the byte accessors.
pub trait StorePage {
    /// Reads a 32-bit field with acquire ordering: no later read of ring bytes may be performed
    /// before it.
    fn load_u32(&self, offset: usize) -> u32;

    /// Writes a 32-bit field with release ordering: every earlier read or write of ring bytes is
    /// complete before the peer can observe the new value.
    fn store_u32(&mut self, offset: usize, value: u32);

    /// Copies `out.len()` bytes starting at `offset` out of the page.
    fn read_bytes(&self, offset: usize, out: &mut [u8]);

    /// Copies `data` into the page starting at `offset`.
    fn write_bytes(&mut self, offset: usize, data: &[u8]);

    /// Signals the peer (the xenstore event channel). The default does nothing.
    fn notify_peer(&mut self) {}
}

/// Plain memory as a store page, for tests and single-threaded simulations: the accessors are
/// ordinary loads and stores, which is only sound when nothing else touches the page concurrently.
impl StorePage for XenstoreDomainInterface {
    fn load_u32(&self, offset: usize) -> u32 {
        match offset {
            off::REQ_CONS => self.req_cons,
            off::REQ_PROD => self.req_prod,
            off::RSP_CONS => self.rsp_cons,
            off::RSP_PROD => self.rsp_prod,
            off::SERVER_FEATURES => self.server_features,
            off::CONNECTION => self.connection,
            off::ERROR => self.error,
            _ => 0,
        }
    }

    fn store_u32(&mut self, offset: usize, value: u32) {
        match offset {
            off::REQ_CONS => self.req_cons = value,
            off::REQ_PROD => self.req_prod = value,
            off::RSP_CONS => self.rsp_cons = value,
            off::RSP_PROD => self.rsp_prod = value,
            off::SERVER_FEATURES => self.server_features = value,
            off::CONNECTION => self.connection = value,
            off::ERROR => self.error = value,
            _ => {}
        }
    }

    fn read_bytes(&self, offset: usize, out: &mut [u8]) {
        let (ring, start) = if offset >= off::RSP {
            (&self.rsp, offset - off::RSP)
        } else {
            (&self.req, offset - off::REQ)
        };
        if let Some(src) = ring.get(start..start + out.len()) {
            out.copy_from_slice(src);
        }
    }

    fn write_bytes(&mut self, offset: usize, data: &[u8]) {
        let (ring, start) = if offset >= off::RSP {
            (&mut self.rsp, offset - off::RSP)
        } else {
            (&mut self.req, offset - off::REQ)
        };
        if let Some(dst) = ring.get_mut(start..start + data.len()) {
            dst.copy_from_slice(data);
        }
    }
}

impl<P: StorePage + ?Sized> StorePage for &mut P {
    fn load_u32(&self, offset: usize) -> u32 {
        (**self).load_u32(offset)
    }
    fn store_u32(&mut self, offset: usize, value: u32) {
        (**self).store_u32(offset, value)
    }
    fn read_bytes(&self, offset: usize, out: &mut [u8]) {
        (**self).read_bytes(offset, out)
    }
    fn write_bytes(&mut self, offset: usize, data: &[u8]) {
        (**self).write_bytes(offset, data)
    }
    fn notify_peer(&mut self) {
        (**self).notify_peer()
    }
}

/// The guest (client) side of the shared xenstore page as a [`Transport`].
#[derive(Debug)]
pub struct RingTransport<P> {
    page: P,
    /// Our producer index on `req`; the page's copy is written, never trusted.
    req_prod: u32,
    /// Our consumer index on `rsp`; likewise.
    rsp_cons: u32,
}

impl<P: StorePage> RingTransport<P> {
    /// Attaches to a page, adopting the indices it currently holds as ours (after boot they are
    /// 0; after a resume, whatever the previous owner left).
    pub fn new(page: P) -> Self {
        let req_prod = page.load_u32(off::REQ_PROD);
        let rsp_cons = page.load_u32(off::RSP_CONS);
        RingTransport {
            page,
            req_prod,
            rsp_cons,
        }
    }

    /// Re-adopts the indices the page holds now (after the toolstack or the daemon reset the
    /// ring). Any partially transferred message is the connection's to discard
    /// ([`XsConnection::reset`](super::XsConnection::reset)).
    pub fn resync(&mut self) {
        self.req_prod = self.page.load_u32(off::REQ_PROD);
        self.rsp_cons = self.page.load_u32(off::RSP_CONS);
    }

    /// The daemon's feature bits (`XENSTORE_SERVER_FEATURE_*`).
    pub fn server_features(&self) -> u32 {
        self.page.load_u32(off::SERVER_FEATURES)
    }

    /// The daemon's error word (`XENSTORE_ERROR_*`); meaningful only when the daemon has
    /// `XENSTORE_SERVER_FEATURE_ERROR`.
    pub fn peer_error(&self) -> u32 {
        self.page.load_u32(off::ERROR)
    }

    /// The page.
    pub fn page(&self) -> &P {
        &self.page
    }

    /// The page, mutably (for tests that play the daemon on the same memory).
    pub fn page_mut(&mut self) -> &mut P {
        &mut self.page
    }

    /// Gives the page back.
    pub fn into_page(self) -> P {
        self.page
    }

    /// Copies `len` bytes between the ring at free-running index `idx` and a buffer, in at most
    /// two pieces (before and after the wrap). `len` is at most the ring size.
    fn ring_chunks(idx: u32, len: usize) -> [(usize, usize, usize); 2] {
        let start = mask_xenstore_idx(idx);
        let first = len.min(XENSTORE_RING_SIZE - start);
        // (offset in ring, offset in buffer, length)
        [(start, 0, first), (0, first, len - first)]
    }
}

impl<P: StorePage> Transport for RingTransport<P> {
    fn write(&mut self, data: &[u8]) -> Result<usize, XsError> {
        let cons = self.page.load_u32(off::REQ_CONS);
        let in_flight = self.req_prod.wrapping_sub(cons) as usize;
        if in_flight > XENSTORE_RING_SIZE {
            return Err(ProtocolError::RingIndex {
                prod: self.req_prod,
                cons,
            }
            .into());
        }
        let n = data.len().min(XENSTORE_RING_SIZE - in_flight);
        if n == 0 {
            return Ok(0);
        }
        for (ring_off, buf_off, len) in Self::ring_chunks(self.req_prod, n) {
            if len > 0 {
                self.page
                    .write_bytes(off::REQ + ring_off, &data[buf_off..buf_off + len]);
            }
        }
        // n <= 1024, so the cast is lossless.
        self.req_prod = self.req_prod.wrapping_add(n as u32);
        self.page.store_u32(off::REQ_PROD, self.req_prod);
        Ok(n)
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, XsError> {
        let prod = self.page.load_u32(off::RSP_PROD);
        let avail = prod.wrapping_sub(self.rsp_cons) as usize;
        if avail > XENSTORE_RING_SIZE {
            return Err(ProtocolError::RingIndex {
                prod,
                cons: self.rsp_cons,
            }
            .into());
        }
        let n = buf.len().min(avail);
        if n == 0 {
            return Ok(0);
        }
        for (ring_off, buf_off, len) in Self::ring_chunks(self.rsp_cons, n) {
            if len > 0 {
                self.page
                    .read_bytes(off::RSP + ring_off, &mut buf[buf_off..buf_off + len]);
            }
        }
        self.rsp_cons = self.rsp_cons.wrapping_add(n as u32);
        self.page.store_u32(off::RSP_CONS, self.rsp_cons);
        Ok(n)
    }

    fn notify(&mut self) -> Result<(), XsError> {
        self.page.notify_peer();
        Ok(())
    }
}
