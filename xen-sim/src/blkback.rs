//! A block backend (blkback) model: a memory disk image served to the guest over a blkif ring,
//! through the simulated grant table, as a backend domain would.
//!
//! The model maps the frontend's ring pages with [`Backend::map_grant`], reads requests from the
//! ring bytes with its own offsets (it does not use xen-ring or the ABI structs, so it is an
//! independent reading of `io/blkif.h` and `io/ring.h`), moves data with grant copies (or
//! persistent mappings when `feature-persistent` is in force), honouring read-only grants, and
//! writes responses and `rsp_prod` with the ring's notification rule.
//!
//! What it advertises is switchable ([`BlkFeatures`]); it can run the x86_32 layout whatever the
//! frontend's `protocol` says ([`Blkback::force_x86_32`]); and [`BlkFaults`] injects delayed,
//! reordered, duplicated and corrupted responses. [`Blkback::restart`] drops the connection
//! mid-I/O (unanswered requests are lost, mappings released), as a backend restart does.

use std::collections::HashMap;

use xen_abi::blkif::{
    BLKIF_OP_DISCARD, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_INDIRECT, BLKIF_OP_READ, BLKIF_OP_WRITE,
    BLKIF_OP_WRITE_BARRIER, BLKIF_RSP_EOPNOTSUPP, BLKIF_RSP_ERROR, BLKIF_RSP_OKAY,
};
use xen_abi::types::{EvtchnPort, GrantRef};

use crate::grant::{GntError, MappedGrant};
use crate::memory::PAGE_SIZE;
use crate::Backend;

/// Size of the shared ring header (`req_prod`, `req_event`, `rsp_prod`, `rsp_event`, padding).
const HEADER: usize = 64;
/// Segments in a direct request.
const DIRECT_SEGMENTS: usize = 11;
/// Segment descriptors in one indirect page.
const SEGMENTS_PER_PAGE: usize = PAGE_SIZE / 8;
/// Indirect page references in an indirect request.
const INDIRECT_PAGES: usize = 8;

/// The ring layout the backend reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingAbi {
    /// `x86_64-abi`: 112-byte slots, 64-bit fields 8-aligned.
    X86_64,
    /// `x86_32-abi`: 108-byte slots, 64-bit fields 4-aligned.
    X86_32,
}

impl RingAbi {
    /// From a `protocol` node value; `None` for a protocol the model does not speak. An absent
    /// node means the native (x86_64) layout.
    pub fn from_protocol(protocol: Option<&str>) -> Option<Self> {
        match protocol {
            None | Some("x86_64-abi") => Some(RingAbi::X86_64),
            Some("x86_32-abi") => Some(RingAbi::X86_32),
            Some(_) => None,
        }
    }

    /// Bytes per ring slot (the larger of request and response).
    pub fn entry_size(self) -> usize {
        match self {
            RingAbi::X86_64 => 112,
            RingAbi::X86_32 => 108,
        }
    }

    /// Offset of `id` in a request (after `operation`, `nr_segments`, `handle`).
    fn id_at(self) -> usize {
        match self {
            RingAbi::X86_64 => 8,
            RingAbi::X86_32 => 4,
        }
    }

    /// Offset of the field after `sector_number` (segments, `nr_sectors`, indirect `handle`).
    fn body_at(self) -> usize {
        self.id_at() + 16
    }

    /// Offset of `indirect_grefs` in an indirect request.
    fn indirect_grefs_at(self) -> usize {
        self.body_at() + 4
    }

    /// Bytes of a response.
    fn response_size(self) -> usize {
        match self {
            RingAbi::X86_64 => 16,
            RingAbi::X86_32 => 12,
        }
    }
}

/// What the backend advertises (and then honours).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlkFeatures {
    /// `max-ring-page-order`.
    pub max_ring_page_order: u32,
    /// `feature-max-indirect-segments` (0: not advertised, indirect requests refused).
    pub max_indirect_segments: u32,
    /// `feature-persistent`.
    pub persistent: bool,
    /// `feature-flush-cache`.
    pub flush_cache: bool,
    /// `feature-barrier`.
    pub barrier: bool,
    /// `feature-discard` (granularity 512, alignment 0).
    pub discard: bool,
    /// `discard-secure`.
    pub discard_secure: bool,
}

impl Default for BlkFeatures {
    fn default() -> Self {
        BlkFeatures {
            max_ring_page_order: 0,
            max_indirect_segments: 0,
            persistent: false,
            flush_cache: true,
            barrier: false,
            discard: true,
            discard_secure: false,
        }
    }
}

/// Response faults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkFaults {
    /// Hold responses back until [`Blkback::release_held`] (the requests are executed).
    pub hold: bool,
    /// Push each batch of responses in reverse order.
    pub reverse: bool,
    /// The next `n` responses are pushed twice; the copy replaces the response that would have
    /// followed in the same batch (which is never sent), or is an extra one when there is none.
    pub duplicate_next: u32,
    /// The next `n` responses carry a corrupted `id`.
    pub corrupt_next: u32,
    /// Requests touching this sector fail with `BLKIF_RSP_ERROR`.
    pub fail_sector: Option<u64>,
    /// Map every data page of a read or write and keep the mapping after answering, until
    /// [`Blkback::unmap_kept`] (a backend slow to unmap, or one that never does). The mappings
    /// survive [`Blkback::restart`], as they would in a backend domain that does not unmap.
    pub keep_mapped: bool,
}

/// A request as the model read it off the ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenRequest {
    /// `operation` (`BLKIF_OP_INDIRECT` for indirect requests).
    pub operation: u8,
    /// The operation carried out (the indirect request's inner operation, else `operation`).
    pub inner: u8,
    /// `id`.
    pub id: u64,
    /// `sector_number`.
    pub sector: u64,
    /// Segments `(gref, first_sect, last_sect)`, direct or read from the indirect pages.
    pub segments: Vec<(GrantRef, u8, u8)>,
    /// A discard's `(nr_sectors, flag)`.
    pub discard: Option<(u64, u8)>,
}

/// Why the backend stopped serving the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlkbackError {
    /// `connect` was not called, or the backend restarted.
    NotConnected,
    /// The frontend's `protocol` is none the model speaks.
    UnknownProtocol,
    /// A grant operation on the ring failed.
    Grant(GntError),
    /// `req_prod` ran more than a ring ahead of the backend's consumer.
    RingOverflow {
        /// `req_prod`.
        req_prod: u32,
        /// The backend's `req_cons`.
        req_cons: u32,
    },
}

impl From<GntError> for BlkbackError {
    fn from(e: GntError) -> Self {
        BlkbackError::Grant(e)
    }
}

#[derive(Debug)]
struct Conn {
    ring: Vec<MappedGrant>,
    abi: RingAbi,
    slots: u32,
    req_cons: u32,
    rsp_prod_pvt: u32,
    port: Option<EvtchnPort>,
    persistent: bool,
}

#[derive(Clone, Copy, Debug)]
struct Response {
    id: u64,
    operation: u8,
    status: i16,
}

/// The blkback model. Drive it with [`serve`](Self::serve) from the test (or a thread).
#[derive(Debug)]
pub struct Blkback {
    backend: Backend,
    features: BlkFeatures,
    force_x86_32: bool,
    disk: Vec<u8>,
    conn: Option<Conn>,
    persistent: HashMap<GrantRef, MappedGrant>,
    held: Vec<Response>,
    /// Mappings kept by [`BlkFaults::keep_mapped`].
    kept: Vec<MappedGrant>,
    /// Fault switches.
    pub faults: BlkFaults,
    /// Every request read, in ring order.
    pub log: Vec<SeenRequest>,
    /// Flushes and barriers executed.
    pub flushes: u64,
    /// Requests taken but never answered because of a restart.
    pub lost: u64,
}

impl Blkback {
    /// A backend in `backend`'s domain with a disk of `sectors` 512-byte sectors, filled with a
    /// deterministic pattern.
    pub fn new(backend: Backend, sectors: u64, features: BlkFeatures) -> Self {
        let disk = (0..sectors as usize * 512)
            .map(|i| (i % 253) as u8 ^ (i / 4096) as u8)
            .collect();
        Blkback {
            backend,
            features,
            force_x86_32: false,
            disk,
            conn: None,
            persistent: HashMap::new(),
            held: Vec::new(),
            kept: Vec::new(),
            faults: BlkFaults::default(),
            log: Vec::new(),
            flushes: 0,
            lost: 0,
        }
    }

    /// Runs the x86_32 layout whatever `protocol` the frontend wrote (a backend that ignores
    /// the node, as some old ones did).
    pub fn force_x86_32(&mut self, on: bool) {
        self.force_x86_32 = on;
    }

    /// What is advertised; takes effect for the next connection.
    pub fn set_features(&mut self, features: BlkFeatures) {
        self.features = features;
    }

    /// What is advertised.
    pub fn features(&self) -> BlkFeatures {
        self.features
    }

    /// The disk image.
    pub fn disk(&self) -> &[u8] {
        &self.disk
    }

    /// The disk image, writable (to seed contents).
    pub fn disk_mut(&mut self) -> &mut [u8] {
        &mut self.disk
    }

    /// The layout in use, while connected.
    pub fn abi(&self) -> Option<RingAbi> {
        self.conn.as_ref().map(|c| c.abi)
    }

    /// Persistent grants currently mapped.
    pub fn persistent_mappings(&self) -> usize {
        self.persistent.len()
    }

    /// Responses held back by [`BlkFaults::hold`].
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Mappings kept by [`BlkFaults::keep_mapped`].
    pub fn kept(&self) -> usize {
        self.kept.len()
    }

    /// Unmaps what [`BlkFaults::keep_mapped`] kept; returns how many.
    pub fn unmap_kept(&mut self) -> Result<usize, BlkbackError> {
        let n = self.kept.len();
        for h in self.kept.drain(..) {
            self.backend.unmap_grant(h)?;
        }
        Ok(n)
    }

    /// The backend's xenstore nodes (relative to its device directory), as the toolstack and
    /// blkback write them before `InitWait`.
    pub fn nodes(&self) -> Vec<(&'static str, String)> {
        let f = self.features;
        let b = |v: bool| String::from(if v { "1" } else { "0" });
        let mut n = vec![
            ("sectors", (self.disk.len() / 512).to_string()),
            ("sector-size", "512".to_string()),
            ("info", "0".to_string()),
            ("mode", "w".to_string()),
            ("device-type", "disk".to_string()),
            ("max-ring-page-order", f.max_ring_page_order.to_string()),
            ("feature-persistent", b(f.persistent)),
            ("feature-flush-cache", b(f.flush_cache)),
            ("feature-barrier", b(f.barrier)),
            ("feature-discard", b(f.discard)),
        ];
        if f.discard {
            n.push(("discard-granularity", "512".to_string()));
            n.push(("discard-alignment", "0".to_string()));
            n.push(("discard-secure", b(f.discard_secure)));
        }
        if f.max_indirect_segments > 0 {
            n.push((
                "feature-max-indirect-segments",
                f.max_indirect_segments.to_string(),
            ));
        }
        n
    }

    /// Writes [`nodes`](Self::nodes) under `dir` as the backend domain.
    pub fn advertise(&self, dir: &str) -> Result<(), xen_abi::xenstore::XsErrno> {
        for (k, v) in self.nodes() {
            self.backend.xs_write(&format!("{dir}/{k}"), v.as_bytes())?;
        }
        Ok(())
    }

    /// Connects to the frontend's ring: maps `ring_refs` (2^order pages) writable, picks the
    /// layout from `protocol` (unless forced to x86_32) and remembers the event channel (the
    /// backend's local port, already bound). `frontend_persistent` is the frontend's
    /// `feature-persistent`.
    pub fn connect(
        &mut self,
        ring_refs: &[GrantRef],
        protocol: Option<&str>,
        port: Option<EvtchnPort>,
        frontend_persistent: bool,
    ) -> Result<(), BlkbackError> {
        self.restart();
        let abi = if self.force_x86_32 {
            RingAbi::X86_32
        } else {
            RingAbi::from_protocol(protocol).ok_or(BlkbackError::UnknownProtocol)?
        };
        let mut ring = Vec::new();
        for &r in ring_refs {
            match self.backend.map_grant(r, true) {
                Ok(h) => ring.push(h),
                Err(e) => {
                    for h in ring {
                        let _ = self.backend.unmap_grant(h);
                    }
                    return Err(e.into());
                }
            }
        }
        let fit = (ring_refs.len() * PAGE_SIZE - HEADER) / abi.entry_size();
        let slots = 1u32 << (usize::BITS - 1 - fit.leading_zeros());
        let mut conn = Conn {
            ring,
            abi,
            slots,
            req_cons: 0,
            rsp_prod_pvt: 0,
            port,
            persistent: self.features.persistent && frontend_persistent,
        };
        // The frontend initialised the ring; start where its indices are.
        conn.req_cons = self.read_u32(&conn, 8)?;
        conn.rsp_prod_pvt = conn.req_cons;
        self.conn = Some(conn);
        Ok(())
    }

    /// The backend goes away mid-I/O: requests taken but unanswered (held responses) are lost,
    /// the event channel is closed, the ring and persistent mappings are unmapped. Call [`connect`](Self::connect) again for
    /// the new connection.
    pub fn restart(&mut self) {
        self.lost += self.held.len() as u64;
        self.held.clear();
        if let Some(conn) = self.conn.take() {
            if let Some(port) = conn.port {
                let _ = self.backend.close(port);
            }
            for h in conn.ring {
                let _ = self.backend.unmap_grant(h);
            }
        }
        for (_, h) in self.persistent.drain() {
            let _ = self.backend.unmap_grant(h);
        }
    }

    /// Takes every published request, executes it and pushes the responses (subject to the
    /// faults); returns the number of requests taken.
    pub fn serve(&mut self) -> Result<usize, BlkbackError> {
        let mut conn = self.conn.take().ok_or(BlkbackError::NotConnected)?;
        let r = self.serve_conn(&mut conn);
        self.conn = Some(conn);
        r
    }

    /// Pushes the held responses (reversed when [`BlkFaults::reverse`] is set).
    pub fn release_held(&mut self) -> Result<usize, BlkbackError> {
        let mut conn = self.conn.take().ok_or(BlkbackError::NotConnected)?;
        let mut rsps = std::mem::take(&mut self.held);
        if self.faults.reverse {
            rsps.reverse();
        }
        let n = rsps.len();
        let r = self.push(&mut conn, &rsps);
        self.conn = Some(conn);
        r.map(|()| n)
    }

    fn serve_conn(&mut self, conn: &mut Conn) -> Result<usize, BlkbackError> {
        let mut taken = 0;
        let mut rsps = Vec::new();
        loop {
            let req_prod = self.read_u32(conn, 0)?;
            if req_prod.wrapping_sub(conn.req_cons) > conn.slots {
                return Err(BlkbackError::RingOverflow {
                    req_prod,
                    req_cons: conn.req_cons,
                });
            }
            while conn.req_cons != req_prod {
                let mut entry = vec![0u8; conn.abi.entry_size()];
                let at = HEADER + (conn.req_cons % conn.slots) as usize * conn.abi.entry_size();
                self.read_ring(conn, at, &mut entry)?;
                conn.req_cons = conn.req_cons.wrapping_add(1);
                taken += 1;
                let (req, status) = self.execute(conn, &entry);
                rsps.push(Response {
                    id: req.id,
                    operation: req.operation,
                    status,
                });
                self.log.push(req);
            }
            // RING_FINAL_CHECK_FOR_REQUESTS: ask for an event on the next request, look again.
            self.write_ring(conn, 4, &conn.req_cons.wrapping_add(1).to_le_bytes())?;
            if self.read_u32(conn, 0)? == conn.req_cons {
                break;
            }
        }
        let mut out: Vec<Response> = Vec::new();
        let mut i = 0;
        while i < rsps.len() {
            let mut r = rsps[i];
            if self.faults.corrupt_next > 0 {
                self.faults.corrupt_next -= 1;
                r.id ^= 0x5a5a_0000_0000_0000;
            }
            out.push(r);
            i += 1;
            if self.faults.duplicate_next > 0 {
                self.faults.duplicate_next -= 1;
                // The copy takes the place of the next response when there is one (the ring
                // stays balanced); a lone response is pushed twice (more responses than
                // requests).
                out.push(r);
                i += 1;
            }
        }
        if self.faults.hold {
            self.held.extend(out);
            return Ok(taken);
        }
        if self.faults.reverse {
            out.reverse();
        }
        self.push(conn, &out)?;
        Ok(taken)
    }

    fn push(&mut self, conn: &mut Conn, rsps: &[Response]) -> Result<(), BlkbackError> {
        if rsps.is_empty() {
            return Ok(());
        }
        for r in rsps {
            let mut b = vec![0u8; conn.abi.response_size()];
            b[..8].copy_from_slice(&r.id.to_le_bytes());
            b[8] = r.operation;
            b[10..12].copy_from_slice(&r.status.to_le_bytes());
            let at = HEADER + (conn.rsp_prod_pvt % conn.slots) as usize * conn.abi.entry_size();
            self.write_ring(conn, at, &b)?;
            conn.rsp_prod_pvt = conn.rsp_prod_pvt.wrapping_add(1);
        }
        // RING_PUSH_RESPONSES_AND_CHECK_NOTIFY.
        let old = self.read_u32(conn, 8)?;
        let new = conn.rsp_prod_pvt;
        self.write_ring(conn, 8, &new.to_le_bytes())?;
        let rsp_event = self.read_u32(conn, 12)?;
        if new.wrapping_sub(rsp_event) < new.wrapping_sub(old) {
            if let Some(port) = conn.port {
                let _ = self.backend.send(port);
            }
        }
        Ok(())
    }

    fn read_ring(&self, conn: &Conn, at: usize, out: &mut [u8]) -> Result<(), BlkbackError> {
        let mut done = 0;
        while done < out.len() {
            let pos = at + done;
            let (page, off) = (pos / PAGE_SIZE, pos % PAGE_SIZE);
            let n = (PAGE_SIZE - off).min(out.len() - done);
            let h = *conn.ring.get(page).ok_or(GntError::BadCopyArg)?;
            self.backend.read_mapped(h, off, &mut out[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    fn write_ring(&self, conn: &Conn, at: usize, data: &[u8]) -> Result<(), BlkbackError> {
        let mut done = 0;
        while done < data.len() {
            let pos = at + done;
            let (page, off) = (pos / PAGE_SIZE, pos % PAGE_SIZE);
            let n = (PAGE_SIZE - off).min(data.len() - done);
            let h = *conn.ring.get(page).ok_or(GntError::BadCopyArg)?;
            self.backend.write_mapped(h, off, &data[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    fn read_u32(&self, conn: &Conn, at: usize) -> Result<u32, BlkbackError> {
        let mut b = [0u8; 4];
        self.read_ring(conn, at, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Parses one request and carries it out.
    fn execute(&mut self, conn: &Conn, e: &[u8]) -> (SeenRequest, i16) {
        let abi = conn.abi;
        let u64_at = |o: usize| u64::from_le_bytes(e[o..o + 8].try_into().unwrap_or([0; 8]));
        let u32_at = |o: usize| u32::from_le_bytes(e[o..o + 4].try_into().unwrap_or([0; 4]));
        let seg_at = |o: usize| (u32_at(o), e[o + 4], e[o + 5]);
        let mut req = SeenRequest {
            operation: e[0],
            inner: e[0],
            id: u64_at(abi.id_at()),
            sector: u64_at(abi.id_at() + 8),
            segments: Vec::new(),
            discard: None,
        };
        let f = self.features;
        let status = match req.operation {
            BLKIF_OP_READ | BLKIF_OP_WRITE => {
                let n = usize::from(e[1]);
                if n == 0 || n > DIRECT_SEGMENTS {
                    return (req, BLKIF_RSP_ERROR);
                }
                req.segments = (0..n).map(|i| seg_at(abi.body_at() + i * 8)).collect();
                self.rw(conn, &req)
            }
            BLKIF_OP_INDIRECT => {
                req.inner = e[1];
                let n = usize::from(u16::from_le_bytes([e[2], e[3]]));
                let pages = n.div_ceil(SEGMENTS_PER_PAGE);
                if f.max_indirect_segments == 0 {
                    return (req, BLKIF_RSP_EOPNOTSUPP);
                }
                if n == 0
                    || n > f.max_indirect_segments as usize
                    || pages > INDIRECT_PAGES
                    || !matches!(req.inner, BLKIF_OP_READ | BLKIF_OP_WRITE)
                {
                    return (req, BLKIF_RSP_ERROR);
                }
                for p in 0..pages {
                    let gref = u32_at(abi.indirect_grefs_at() + p * 4);
                    let count = (n - p * SEGMENTS_PER_PAGE).min(SEGMENTS_PER_PAGE);
                    let mut page = vec![0u8; count * 8];
                    // Indirect pages are only read: map them read-only, as blkback does.
                    let ok = self.backend.map_grant(gref, false).and_then(|h| {
                        let r = self.backend.read_mapped(h, 0, &mut page);
                        self.backend.unmap_grant(h)?;
                        r
                    });
                    if ok.is_err() {
                        return (req, BLKIF_RSP_ERROR);
                    }
                    for c in page.chunks_exact(8) {
                        req.segments.push((
                            u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
                            c[4],
                            c[5],
                        ));
                    }
                }
                self.rw(conn, &req)
            }
            BLKIF_OP_FLUSH_DISKCACHE | BLKIF_OP_WRITE_BARRIER => {
                let offered = if req.operation == BLKIF_OP_FLUSH_DISKCACHE {
                    f.flush_cache
                } else {
                    f.barrier
                };
                if offered {
                    self.flushes += 1;
                    BLKIF_RSP_OKAY
                } else {
                    BLKIF_RSP_EOPNOTSUPP
                }
            }
            BLKIF_OP_DISCARD => {
                let count = u64_at(abi.body_at());
                let flag = e[1];
                req.discard = Some((count, flag));
                if !f.discard || (flag & 1 != 0 && !f.discard_secure) {
                    BLKIF_RSP_EOPNOTSUPP
                } else {
                    match self.range(req.sector, count) {
                        Some((a, b)) => {
                            self.disk[a..b].fill(0);
                            BLKIF_RSP_OKAY
                        }
                        None => BLKIF_RSP_ERROR,
                    }
                }
            }
            _ => BLKIF_RSP_EOPNOTSUPP,
        };
        (req, status)
    }

    fn range(&self, sector: u64, count: u64) -> Option<(usize, usize)> {
        let end = sector.checked_add(count)?;
        if end > (self.disk.len() / 512) as u64 {
            return None;
        }
        Some((sector as usize * 512, end as usize * 512))
    }

    fn rw(&mut self, conn: &Conn, req: &SeenRequest) -> i16 {
        let mut total = 0u64;
        for &(_, first, last) in &req.segments {
            if first > last || last >= (PAGE_SIZE / 512) as u8 {
                return BLKIF_RSP_ERROR;
            }
            total += u64::from(last - first + 1);
        }
        let Some((mut at, _)) = self.range(req.sector, total) else {
            return BLKIF_RSP_ERROR;
        };
        if let Some(s) = self.faults.fail_sector {
            if (req.sector..req.sector + total).contains(&s) {
                return BLKIF_RSP_ERROR;
            }
        }
        let read = req.inner == BLKIF_OP_READ;
        for &(gref, first, last) in &req.segments {
            let off = usize::from(first) * 512;
            let len = usize::from(last - first + 1) * 512;
            let r = if conn.persistent {
                self.persistent_io(gref, off, at, len, read)
            } else if read {
                self.backend
                    .copy_to_grant(gref, off, &self.disk[at..at + len])
            } else {
                self.backend
                    .copy_from_grant(gref, off, &mut self.disk[at..at + len])
            };
            if r.is_err() {
                return BLKIF_RSP_ERROR;
            }
            if self.faults.keep_mapped && !conn.persistent {
                // A read's page is granted writable, a write's read-only.
                match self.backend.map_grant(gref, read) {
                    Ok(h) => self.kept.push(h),
                    Err(_) => return BLKIF_RSP_ERROR,
                }
            }
            at += len;
        }
        BLKIF_RSP_OKAY
    }

    /// Data through a persistent mapping of `gref`, mapped (writable) on first use and kept
    /// until the connection ends.
    fn persistent_io(
        &mut self,
        gref: GrantRef,
        off: usize,
        at: usize,
        len: usize,
        read: bool,
    ) -> Result<(), GntError> {
        let h = match self.persistent.get(&gref) {
            Some(h) => *h,
            None => {
                let h = self.backend.map_grant(gref, true)?;
                self.persistent.insert(gref, h);
                h
            }
        };
        if read {
            self.backend.write_mapped(h, off, &self.disk[at..at + len])
        } else {
            self.backend
                .read_mapped(h, off, &mut self.disk[at..at + len])
        }
    }
}
