//! [`Blkif`]: the queue, the in-flight table and the ring of one blkif queue.
//!
//! # Life of an operation
//! [`Blkif::submit`] copies the operation and its segment list into a job slot and queues it
//! (FIFO). Dispatch walks the queue in order: a data job is cut into *pieces* — one per 4 KiB
//! page the backend sees, 512-byte granular — and the pieces into ring requests of at most
//! [`FrontendParams::segments_per_request`] segments (indirect when negotiated). Only a segment
//! that is a whole guest page is granted as is; every other piece goes through a bounce page
//! from the pool given at construction (copied in before a write, out after a read); with
//! persistent grants, or a backend that is not trusted ([`FrontendParams::bounce_all`]), every
//! piece goes through a pool page. A job whose next part lacks a slot, ring space, pool page or
//! grant waits at the head of the queue, retried by the next submit, poll or
//! [`Blkif::on_timer`]; nothing allocates. A flush is a barrier: it is issued only when every
//! earlier job has completed, and no later job is issued before it completes.
//!
//! # Ownership
//! No job completes and no pool page is reused while the backend may map one of its pages: a
//! grant the backend still maps when it is ended stays in force and is ended again from
//! [`Blkif::on_timer`], up to [`Timeouts::revocation`] (then the page is leaked on purpose).
//!
//! # In-flight table
//! Each ring request occupies a slot; its id is the slot index in the low 32 bits and the slot's
//! generation (bumped on each use) in the high 32. A response must name a busy slot with the
//! same generation and echo the request's operation, and its status must be OKAY, ERROR or
//! EOPNOTSUPP; anything else is an [`EngineError`] that stops the device.

use xen_abi::blkif::{
    BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST, BLKIF_OP_DISCARD, BLKIF_OP_FLUSH_DISKCACHE,
    BLKIF_OP_INDIRECT, BLKIF_OP_WRITE_BARRIER, BLKIF_RSP_EOPNOTSUPP, BLKIF_RSP_ERROR,
    BLKIF_RSP_OKAY,
};
use xen_abi::types::{DomId, GrantRef};
use xen_ring::{RawFrontRing, RingMemory};
use xenpci_core::grant_table::GrantError;

mod hold;
mod issue;

use hold::{revoke, Access, Ledger};
pub use hold::{Holdings, Timeouts, TimerReport};
use issue::{copy_out, plan, unreachable_params};

use super::layout::{self, Layout, MAX_ENTRY, RESPONSE_BYTES};
use super::negotiate::{MAX_QUEUES, MAX_RING_PAGE_ORDER};
use super::{
    BackendFeatures, BlockCompletion, BlockStatus, Counters, EngineError, Events, FrontendParams,
    Grants, Io, LogEvent,
};
use crate::types::{BlockOp, GuestMemory, Segment, Tag, PAGE_SIZE};

const SECTOR: u32 = 512;
const NONE16: u16 = u16::MAX;

/// Fixed settings of an engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// The backend's domain, to which grants are given.
    pub backend: DomId,
    /// The `virtual-device` number put in requests.
    pub handle: u16,
    /// Deadlines checked by [`Blkif::on_timer`].
    pub timeouts: Timeouts,
    /// The device queue this engine drives when each queue has an engine of its own (attached
    /// with [`Blkif::attach_queue`], called with [`Io::with_order`]): the index given to
    /// [`Events::notify`] for its ring and to [`DeviceOrder`](super::DeviceOrder). 0 for an
    /// engine that drives every queue itself.
    pub queue: u8,
}

impl EngineConfig {
    /// Settings for the device `handle` of backend domain `backend`, with the default
    /// [`Timeouts`].
    pub const fn new(backend: DomId, handle: u16) -> Self {
        EngineConfig {
            backend,
            handle,
            timeouts: Timeouts::DEFAULT,
            queue: 0,
        }
    }

    /// Settings for the engine of queue `queue` of a device whose queues each have their own.
    pub fn for_queue(backend: DomId, handle: u16, queue: u8) -> Self {
        EngineConfig {
            queue,
            ..Self::new(backend, handle)
        }
    }
}

/// Where the engine is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineState {
    /// No ring (before the first connect, or after a disconnect).
    Disconnected,
    /// The ring is set up and published; waiting for the backend to connect.
    RingReady,
    /// The layout probe is on the ring.
    Probing,
    /// Data requests flow.
    Running,
    /// A protocol violation stopped the device; reconnect or shut down.
    Failed(EngineError),
    /// Shut down for good: submissions are refused.
    Closed,
}

/// Why an operation was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// Every job slot is busy: retry after a completion (report queue-full upstream).
    QueueFull,
    /// More segments than a job holds, or they do not add up to the operation's sectors, or are
    /// not whole logical blocks.
    Invalid,
    /// The device is in the error state or closed.
    Unavailable,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PieceKind {
    /// A guest page granted as is.
    Direct { frame: u64, offset: u16 },
    /// Data copied through a pool page (bounce or persistent); `page` once assigned.
    Copy { page: u16 },
}

#[derive(Clone, Copy, Debug)]
struct Piece {
    /// Byte offset in the operation's data.
    stream: u32,
    /// Bytes (a multiple of 512, at most a page).
    len: u32,
    kind: PieceKind,
    /// The grant of a direct piece on the caller's page: while it is anything but
    /// [`Access::None`] the operation does not complete.
    gref: Access,
}

const EMPTY_PIECE: Piece = Piece {
    stream: 0,
    len: 0,
    kind: PieceKind::Copy { page: NONE16 },
    gref: Access::None,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Data (or the flush/discard itself) being issued.
    Main,
    /// A FUA write's data is done; its flush is to be issued.
    PostFlush,
}

#[derive(Clone, Copy, Debug)]
struct Job<const S: usize> {
    live: bool,
    tag: Tag,
    op: BlockOp,
    segs: [Segment; S],
    nsegs: u16,
    pieces: [Piece; S],
    npieces: u16,
    planned: bool,
    next_piece: u16,
    /// Whether the single request of a flush/discard/post-flush has been issued.
    issued: bool,
    outstanding: u16,
    phase: Phase,
    /// First failure: (byte offset, status).
    fail: Option<(u64, BlockStatus)>,
    /// The outcome, once decided (answered, aborted, reset, shut down): the job has left the
    /// queue and is completed as soon as no grant on the caller's pages remains.
    result: Option<(BlockStatus, u64)>,
    /// The completion went to the caller; the slot stays taken while ring requests of an
    /// aborted job are still out.
    delivered: bool,
    /// Engine time ([`Blkif::on_timer`]) at submission.
    submitted: u64,
    /// With a [`DeviceOrder`](super::DeviceOrder): a write's or discard's sequence number, a
    /// flush's mark.
    seq: u64,
}

impl<const S: usize> Job<S> {
    const EMPTY: Self = Job {
        live: false,
        tag: Tag(0),
        op: BlockOp::Flush,
        segs: [Segment {
            frame: 0,
            offset: 0,
            length: 0,
        }; S],
        nsegs: 0,
        pieces: [EMPTY_PIECE; S],
        npieces: 0,
        planned: false,
        next_piece: 0,
        issued: false,
        outstanding: 0,
        phase: Phase::Main,
        fail: None,
        result: None,
        delivered: false,
        submitted: 0,
        seq: 0,
    };

    /// Back to [`EMPTY`](Self::EMPTY), field by field (the segment list is dead beyond
    /// `nsegs`; every piece is cleared because [`holds_guest_pages`](Self::holds_guest_pages)
    /// looks at all of them).
    fn clear(&mut self) {
        self.live = false;
        self.tag = Tag(0);
        self.op = BlockOp::Flush;
        self.nsegs = 0;
        for piece in self.pieces.iter_mut() {
            *piece = EMPTY_PIECE;
        }
        self.npieces = 0;
        self.planned = false;
        self.next_piece = 0;
        self.issued = false;
        self.outstanding = 0;
        self.phase = Phase::Main;
        self.fail = None;
        self.result = None;
        self.delivered = false;
        self.submitted = 0;
        self.seq = 0;
    }

    fn bytes(&self) -> u64 {
        match self.op {
            BlockOp::Read { sectors, .. } | BlockOp::Write { sectors, .. } => sectors * 512,
            _ => 0,
        }
    }

    fn is_data(&self) -> bool {
        matches!(self.op, BlockOp::Read { .. } | BlockOp::Write { .. })
    }

    fn is_barrier(&self) -> bool {
        matches!(self.op, BlockOp::Flush)
    }

    /// Whether a grant on one of the caller's pages is still in force or being revoked (the
    /// whole piece array: a job re-planned after a reconnect may hold grants of its old plan).
    fn holds_guest_pages(&self) -> bool {
        self.pieces.iter().any(|p| p.gref != Access::None)
    }

    fn reset_dispatch(&mut self) {
        self.planned = false;
        self.npieces = 0;
        self.next_piece = 0;
        self.issued = false;
        self.outstanding = 0;
        self.phase = Phase::Main;
        self.fail = None;
    }

    /// Whether everything of the job is on the ring or done.
    fn fully_issued(&self) -> bool {
        match self.phase {
            Phase::PostFlush => self.issued,
            Phase::Main if self.is_data() => self.planned && self.next_piece == self.npieces,
            Phase::Main => self.issued,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    busy: bool,
    generation: u32,
    job: u16,
    /// The operation as sent (`BLKIF_OP_INDIRECT` for indirect requests).
    wire_op: u8,
    /// The read/write inside an indirect request.
    inner_op: u8,
    first_piece: u16,
    end_piece: u16,
    indirect: [u16; BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST],
    nindirect: u8,
    /// The queue (ring) it was issued on.
    queue: u8,
}

const EMPTY_SLOT: Slot = Slot {
    busy: false,
    generation: 0,
    job: 0,
    wire_op: 0,
    inner_op: 0,
    first_piece: 0,
    end_piece: 0,
    indirect: [NONE16; BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST],
    nindirect: 0,
    queue: 0,
};

/// `[0, 1, …, N - 1]`, for a free list that starts full.
const fn every_index<const N: usize>() -> [u16; N] {
    let mut all = [0u16; N];
    let mut i = 0;
    while i < N {
        all[i] = i as u16;
        i += 1;
    }
    all
}

/// Queues an engine can drive.
const QUEUES: usize = MAX_QUEUES as usize;
/// Pages of one ring at most.
const RING_PAGES: usize = 1 << MAX_RING_PAGE_ORDER;

#[derive(Clone, Copy, Debug)]
struct PoolPage {
    frame: u64,
    busy: bool,
    /// The kept grant of a persistent page.
    persistent: Access,
    /// The grant while issued (non-persistent use).
    gref: Access,
}

const EMPTY_PAGE: PoolPage = PoolPage {
    frame: 0,
    busy: false,
    persistent: Access::None,
    gref: Access::None,
};

impl PoolPage {
    /// Free for a new request: not in use, and no grant on it that the backend may still map
    /// (a kept persistent grant is fine: the page is meant for it).
    fn available(&self) -> bool {
        !self.busy
            && self.gref == Access::None
            && matches!(self.persistent, Access::None | Access::Granted(_))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Probe {
    First,
    Confirm(Layout),
}

/// One blkif queue: its ring, its queue of operations and everything they hold.
///
/// - `JOBS`: operations queued or in flight at once.
/// - `SEGS`: segments per operation (and pieces: a list needs at most one piece per segment
///   plus one per page of bounced data; submit refuses lists that do not fit).
/// - `SLOTS`: ring requests in flight (the in-flight table).
/// - `POOL`: bounce/persistent pages; `IND`: indirect pages. Their guest frames are given to
///   [`init`](Self::init) and accessed through [`GuestMemory`].
#[derive(Debug)]
pub struct Blkif<
    const JOBS: usize,
    const SEGS: usize,
    const SLOTS: usize,
    const POOL: usize,
    const IND: usize,
> {
    config: EngineConfig,
    params: Option<FrontendParams>,
    block_size: u32,
    state: EngineState,
    probe: Probe,
    /// One ring per queue; `rings[..queues]` are attached.
    rings: [Option<RawFrontRing>; QUEUES],
    queues: usize,
    /// Requests in flight on each queue.
    queue_load: [u16; QUEUES],
    /// Where [`pick_queue`](Self::pick_queue) starts looking.
    next_queue: usize,
    layout: Layout,
    ring_grefs: [[Access; RING_PAGES]; QUEUES],
    /// Grants of torn-down rings the backend still mapped.
    old_ring_grefs: [[Access; RING_PAGES]; QUEUES],
    /// Stop issuing ring requests ([`quiesce`](Self::quiesce)).
    quiescing: bool,
    /// Time and revocations in progress.
    ledger: Ledger,
    jobs: [Job<SEGS>; JOBS],
    /// Indices of the jobs not live (a stack: taking and freeing a job is constant-time).
    free_jobs: [u16; JOBS],
    free_jobs_len: usize,
    /// Live jobs in submission order.
    order: [u16; JOBS],
    order_len: usize,
    slots: [Slot; SLOTS],
    /// Indices of the slots not busy (a stack: taking and freeing a slot is constant-time).
    free_slots: [u16; SLOTS],
    free_slots_len: usize,
    pool: [PoolPage; POOL],
    indirect: [PoolPage; IND],
    counters: Counters,
}

impl<
        const JOBS: usize,
        const SEGS: usize,
        const SLOTS: usize,
        const POOL: usize,
        const IND: usize,
    > Blkif<JOBS, SEGS, SLOTS, POOL, IND>
{
    /// An engine with nothing in it, for a `static` or for memory the shell initialises with
    /// it; [`init`](Self::init) then gives it its settings and pages in place.
    pub const EMPTY: Self = Blkif {
        config: EngineConfig::new(0, 0),
        params: None,
        block_size: SECTOR,
        state: EngineState::Disconnected,
        probe: Probe::First,
        rings: [const { None }; QUEUES],
        queues: 0,
        queue_load: [0; QUEUES],
        next_queue: 0,
        layout: Layout::X86_64,
        ring_grefs: [[Access::None; RING_PAGES]; QUEUES],
        old_ring_grefs: [[Access::None; RING_PAGES]; QUEUES],
        quiescing: false,
        ledger: Ledger::ZERO,
        jobs: [Job::EMPTY; JOBS],
        free_jobs: every_index(),
        free_jobs_len: JOBS,
        order: [0; JOBS],
        order_len: 0,
        slots: [EMPTY_SLOT; SLOTS],
        free_slots: every_index(),
        free_slots_len: SLOTS,
        pool: [EMPTY_PAGE; POOL],
        indirect: [EMPTY_PAGE; IND],
        counters: Counters::ZERO,
    };

    /// Makes this engine a fresh one, in place, with the guest frames of its bounce/persistent
    /// pages and indirect pages (preallocated by the platform, never freed while the engine
    /// lives). Call it on [`EMPTY`](Self::EMPTY) memory, or on an engine that is shut down and
    /// holds nothing ([`holdings`](Self::holdings)): whatever it held is forgotten. Writes field
    /// by field; nothing the size of the engine or of a job is built on the stack.
    pub fn init(
        &mut self,
        config: EngineConfig,
        pool_frames: &[u64; POOL],
        indirect_frames: &[u64; IND],
    ) {
        self.config = config;
        self.params = None;
        self.block_size = SECTOR;
        self.state = EngineState::Disconnected;
        self.probe = Probe::First;
        for ring in self.rings.iter_mut() {
            *ring = None;
        }
        self.queues = 0;
        self.queue_load = [0; QUEUES];
        self.next_queue = 0;
        self.layout = Layout::X86_64;
        for grefs in self
            .ring_grefs
            .iter_mut()
            .chain(self.old_ring_grefs.iter_mut())
        {
            *grefs = [Access::None; RING_PAGES];
        }
        self.quiescing = false;
        self.ledger = Ledger::ZERO;
        for (j, job) in self.jobs.iter_mut().enumerate() {
            job.clear();
            self.free_jobs[j] = j as u16;
        }
        self.free_jobs_len = JOBS;
        self.order_len = 0;
        for (s, slot) in self.slots.iter_mut().enumerate() {
            *slot = EMPTY_SLOT;
            self.free_slots[s] = s as u16;
        }
        self.free_slots_len = SLOTS;
        for (p, f) in self.pool.iter_mut().zip(pool_frames) {
            *p = PoolPage {
                frame: *f,
                ..EMPTY_PAGE
            };
        }
        for (p, f) in self.indirect.iter_mut().zip(indirect_frames) {
            *p = PoolPage {
                frame: *f,
                ..EMPTY_PAGE
            };
        }
        self.counters = Counters::ZERO;
    }

    /// The state.
    pub fn state(&self) -> EngineState {
        self.state
    }

    /// The counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The parameters in force, once negotiated.
    pub fn params(&self) -> Option<FrontendParams> {
        self.params
    }

    /// Operations queued or in flight.
    pub fn outstanding(&self) -> usize {
        self.order_len
    }

    /// Ring requests in flight.
    pub fn in_flight(&self) -> usize {
        SLOTS - self.free_slots_len
    }

    /// The queues (rings) attached: [`FrontendParams::queues`] once negotiated, 0 before.
    pub fn queues(&self) -> usize {
        self.queues
    }

    /// The grant references of queue 0's ring, in page order (for the `ring-ref` nodes of a
    /// single-queue device).
    pub fn ring_refs(&self, out: &mut [GrantRef; 16]) -> usize {
        self.queue_ring_refs(0, out)
    }

    /// The grant references of queue `queue`'s ring, in page order (for its `queue-N/ring-ref`
    /// nodes); 0 for a queue that is not attached.
    pub fn queue_ring_refs(&self, queue: usize, out: &mut [GrantRef; 16]) -> usize {
        let Some(grefs) = self.ring_grefs.get(queue) else {
            return 0;
        };
        let mut n = 0;
        for g in grefs.iter().map_while(|g| match g {
            Access::Granted(g) => Some(*g),
            _ => None,
        }) {
            out[n] = g;
            n += 1;
        }
        n
    }

    /// At `InitWait` of a single-queue device: [`attach_rings`](Self::attach_rings) with one
    /// ring (`params.queues` must be 1).
    pub fn attach_ring<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        params: FrontendParams,
        mem: RingMemory,
        ring_frames: &[u64],
        io: &mut Io<'_, G, N, M>,
    ) -> Result<(), GrantError> {
        self.attach_rings(params, [(mem, ring_frames)], io)
    }

    /// At `InitWait`, for the engine of one queue of a device whose queues each have their own
    /// engine ([`EngineConfig::queue`]): this queue's ring (its pages and their guest frames).
    /// `params` are the device's (publish them once, with every queue's references); this
    /// engine drives one ring of them, so every request it issues goes on its own queue.
    pub fn attach_queue<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        params: FrontendParams,
        mem: RingMemory,
        ring_frames: &[u64],
        io: &mut Io<'_, G, N, M>,
    ) -> Result<(), GrantError> {
        if usize::from(self.config.queue) >= QUEUES || u32::from(self.config.queue) >= params.queues
        {
            return Err(GrantError::BadCapacity {
                requested: params.queues,
            });
        }
        let own = FrontendParams {
            queues: 1,
            ..params
        };
        self.attach_rings(own, [(mem, ring_frames)], io)
    }

    /// At `InitWait`: takes the negotiated parameters and one ring per queue — the pages
    /// (`RingMemory`) and their guest frames, 2^`ring_page_order` of them — initialises the
    /// rings and grants their pages to the backend. Then publish with
    /// [`FrontendParams::publish`] and the references from
    /// [`queue_ring_refs`](Self::queue_ring_refs). Fails, granting nothing, unless exactly
    /// `params.queues` rings of the right size are given.
    pub fn attach_rings<'f, G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        params: FrontendParams,
        rings: impl IntoIterator<Item = (RingMemory, &'f [u64])>,
        io: &mut Io<'_, G, N, M>,
    ) -> Result<(), GrantError> {
        if self.queues > 0 {
            self.disconnect(io);
        }
        let pages = params.ring_pages();
        let queues = params.queues as usize;
        let bad = GrantError::BadCapacity {
            requested: pages as u32,
        };
        if queues == 0 || queues > QUEUES || pages > RING_PAGES {
            return Err(bad);
        }
        let mut count = 0;
        for (q, (mem, frames)) in rings.into_iter().enumerate() {
            count = q + 1;
            if q >= queues || frames.len() != pages || mem.pages() != pages {
                break;
            }
            // The probe's first request is written in the x86_64 shape; slot 0 is at the same
            // place in both layouts. The other queues are switched when the probe settles.
            let Ok(ring) = RawFrontRing::init(mem, Layout::X86_64.entry_size()) else {
                break;
            };
            for (i, f) in frames.iter().enumerate() {
                match io.grants.grant(self.config.backend, *f, false) {
                    Ok(g) => self.ring_grefs[q][i] = Access::Granted(g),
                    Err(e) => {
                        self.end_ring_grants(io);
                        self.forget_rings();
                        return Err(e);
                    }
                }
            }
            self.rings[q] = Some(ring);
        }
        if count != queues || self.rings[..queues].iter().any(Option::is_none) {
            self.end_ring_grants(io);
            self.forget_rings();
            return Err(bad);
        }
        self.queues = queues;
        self.params = Some(params);
        self.layout = params.layout;
        self.state = EngineState::RingReady;
        self.quiescing = false;
        Ok(())
    }

    /// At `Connected`: takes in the features the backend publishes only then (flush, barrier,
    /// discard, persistent grants: see [`FrontendParams::apply_connected`]), learns the disk's
    /// block size and starts the layout probe; queued operations are issued once it settles (in
    /// [`poll`](Self::poll)).
    pub fn connected<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        features: &BackendFeatures,
        io: &mut Io<'_, G, N, M>,
    ) {
        if self.state != EngineState::RingReady {
            return;
        }
        self.block_size = features
            .sector_size
            .unwrap_or(SECTOR)
            .clamp(SECTOR, PAGE_SIZE as u32);
        if let Some(params) = self.params.as_mut() {
            params.apply_connected(features);
        }
        // The probe runs on queue 0 only; the others stay empty until it settles.
        let Some(ring) = self.rings[0].as_mut() else {
            return;
        };
        let probe = layout::first_probe(self.config.handle);
        if let Err(e) = ring.push_request(&probe) {
            self.fail(EngineError::Ring(e), io);
            return;
        }
        self.state = EngineState::Probing;
        self.probe = Probe::First;
        if ring.push_requests_and_check_notify() {
            io.events.notify(usize::from(self.config.queue));
        }
    }

    /// Queues an operation on `segments` (copied; the caller keeps the buffer until the
    /// completion with `tag`; a read or write uses the first `sectors` × 512 bytes of the list,
    /// which must have at least that many) and issues what can be issued. Operations that need no ring
    /// request (a flush without a write cache, a discard the backend does not offer) complete
    /// through `complete` at once.
    pub fn submit<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        tag: Tag,
        op: BlockOp,
        segments: &[Segment],
        io: &mut Io<'_, G, N, M>,
        mut complete: impl FnMut(BlockCompletion),
    ) -> Result<(), SubmitError> {
        match self.state {
            EngineState::Failed(_) | EngineState::Closed => return Err(SubmitError::Unavailable),
            _ => {}
        }
        if segments.len() > SEGS {
            return Err(SubmitError::Invalid);
        }
        // The top of the free list; taken off it only once the operation is accepted.
        let Some(index) = self
            .free_jobs_len
            .checked_sub(1)
            .map(|top| usize::from(self.free_jobs[top]))
        else {
            return Err(SubmitError::QueueFull);
        };
        let job = &mut self.jobs[index];
        // In place: a whole job is far too big to build on the stack.
        job.clear();
        job.live = true;
        job.tag = tag;
        job.op = op;
        job.nsegs = segments.len() as u16;
        job.submitted = self.ledger.now;
        job.segs[..segments.len()].copy_from_slice(segments);
        if job.is_data() {
            let bad_seg = segments.iter().any(|s| {
                s.length == 0 || usize::from(s.offset) + usize::from(s.length) > PAGE_SIZE
            });
            // A buffer longer than the operation (a SCSI buffer larger than the transfer) is
            // used from its start: the list is cut after the operation's bytes.
            let bytes = job.bytes();
            let mut sum = 0u64;
            let mut used = 0;
            for seg in job.segs[..segments.len()].iter_mut() {
                if sum >= bytes {
                    break;
                }
                let take = (bytes - sum).min(u64::from(seg.length));
                seg.length = take as u16;
                sum += take;
                used += 1;
            }
            job.nsegs = used as u16;
            if sum != bytes
                || sum == 0
                || sum % u64::from(self.block_size) != 0
                || bad_seg
                || sum > u64::from(u32::MAX)
                || plan(job, false, self.block_size).is_none()
                || (POOL == 0
                    && job.pieces[..job.npieces as usize]
                        .iter()
                        .any(|p| matches!(p.kind, PieceKind::Copy { .. })))
            {
                job.live = false;
                return Err(SubmitError::Invalid);
            }
            job.reset_dispatch();
        } else if !segments.is_empty() {
            job.live = false;
            return Err(SubmitError::Invalid);
        }
        if let Some(order) = io.order {
            let job = &mut self.jobs[index];
            job.seq = match job.op {
                BlockOp::Flush => order.flush_mark(),
                _ => order.accept_write(),
            };
        }
        self.free_jobs_len -= 1;
        self.order[self.order_len] = index as u16;
        self.order_len += 1;
        self.counters.requests += 1;
        self.dispatch(io, &mut complete);
        Ok(())
    }

    /// Handles every queue's responses (call from the event-channel handlers, and after
    /// [`connected`](Self::connected)): settles the probe, completes operations through
    /// `complete`, issues what waited. Returns the protocol violation that stopped the device,
    /// if one did.
    pub fn poll<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        io: &mut Io<'_, G, N, M>,
        mut complete: impl FnMut(BlockCompletion),
    ) -> Result<(), EngineError> {
        loop {
            for q in 0..self.queues {
                self.drain_queue(q, io, &mut complete)?;
            }
            self.dispatch(io, &mut complete);
            // Re-arm every queue's response event; a response that slipped in meanwhile means
            // another round (the ring's final check, as RING_FINAL_CHECK_FOR_RESPONSES).
            let mut again = false;
            for q in 0..self.queues {
                let Some(ring) = self.rings[q].as_mut() else {
                    continue;
                };
                match ring.final_check_for_responses() {
                    Ok(more) => again |= more,
                    Err(e) => {
                        self.fail(EngineError::Ring(e), io);
                        return Err(EngineError::Ring(e));
                    }
                }
            }
            if !again {
                return match self.state {
                    EngineState::Failed(e) => Err(e),
                    _ => Ok(()),
                };
            }
        }
    }

    /// Takes and handles every response on queue `q`.
    fn drain_queue<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        q: usize,
        io: &mut Io<'_, G, N, M>,
        complete: &mut impl FnMut(BlockCompletion),
    ) -> Result<(), EngineError> {
        loop {
            if let EngineState::Failed(e) = self.state {
                return Err(e);
            }
            let Some(ring) = self.rings[q].as_mut() else {
                return Ok(());
            };
            let mut buf = [0u8; RESPONSE_BYTES];
            match ring.take_response(&mut buf) {
                Ok(Some(_)) => {}
                Ok(None) => return Ok(()),
                Err(e) => {
                    self.fail(EngineError::Ring(e), io);
                    return Err(EngineError::Ring(e));
                }
            }
            let Some(rsp) = layout::decode(self.layout, &buf) else {
                continue;
            };
            if let Err(e) = self.on_response(q, rsp, io, complete) {
                self.fail(e, io);
                return Err(e);
            }
        }
    }

    /// The backend is going away but will come back (Closing/Closed then InitWait again, or a
    /// backend restart): revokes every grant (ring, in flight, persistent, indirect) and drops
    /// the ring. Every operation not yet completed stays queued, in order, and is issued again
    /// from its start after the next [`attach_ring`](Self::attach_ring) and
    /// [`connected`](Self::connected), re-split for the new backend's limits.
    pub fn disconnect<G: Grants, N: Events, M: GuestMemory>(&mut self, io: &mut Io<'_, G, N, M>) {
        self.release_everything(io, true);
        if self.order_len > 0 {
            self.counters.resubmitted += self.order_len as u64;
            io.events.log(LogEvent::Resubmitting(self.order_len as u32));
        }
        if self.state != EngineState::Closed {
            self.state = EngineState::Disconnected;
        }
    }

    /// After the domain resumed in a new domain: the old grants and ring are void (the grant
    /// table was reset), so they are forgotten, not revoked; operations are kept as for
    /// [`disconnect`](Self::disconnect).
    /// Nothing the old backend mapped can be mapped any more, so pages held for a revocation
    /// are free again, and operations waiting only for that complete at the next
    /// [`poll`](Self::poll) or [`on_timer`](Self::on_timer).
    pub fn resumed(&mut self) {
        self.ring_grefs = [[Access::None; RING_PAGES]; QUEUES];
        self.old_ring_grefs = [[Access::None; RING_PAGES]; QUEUES];
        self.ledger.revoking = 0;
        for (s, slot) in self.slots.iter_mut().enumerate() {
            slot.busy = false;
            slot.generation = slot.generation.wrapping_add(1);
            self.free_slots[s] = s as u16;
        }
        self.free_slots_len = SLOTS;
        for p in self.pool.iter_mut().chain(self.indirect.iter_mut()) {
            p.busy = false;
            p.persistent = Access::None;
            p.gref = Access::None;
        }
        for job in self.jobs.iter_mut().filter(|j| j.live) {
            for p in job.pieces.iter_mut() {
                p.gref = Access::None;
            }
            job.outstanding = 0;
        }
        for &j in &self.order[..self.order_len] {
            self.jobs[j as usize].reset_dispatch();
        }
        self.reap();
        self.counters.resubmitted += self.order_len as u64;
        self.forget_rings();
        if self.state != EngineState::Closed {
            self.state = EngineState::Disconnected;
        }
    }

    /// The backend is gone for good (or the device is removed): revokes every grant and
    /// completes every outstanding operation with [`BlockStatus::Disconnected`]. Later
    /// submissions are refused. An operation whose pages the backend still maps completes only
    /// once [`on_timer`](Self::on_timer) has revoked them (or never, past
    /// [`Timeouts::revocation`]); [`holdings`](Self::holdings) says what memory must outlive
    /// the engine.
    pub fn shutdown<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        io: &mut Io<'_, G, N, M>,
        mut complete: impl FnMut(BlockCompletion),
    ) {
        self.release_everything(io, true);
        while self.order_len > 0 {
            let j = self.order[0] as usize;
            self.decide(j, BlockStatus::Disconnected, 0, &mut complete);
        }
        self.publish_order(io);
        self.state = EngineState::Closed;
    }

    // ---- internals ----

    fn fail<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        e: EngineError,
        io: &mut Io<'_, G, N, M>,
    ) {
        self.counters.errors += 1;
        self.state = EngineState::Failed(e);
        io.events.log(LogEvent::Error(e));
    }

    /// Ends the rings' grants; those the backend still maps move to `old_ring_grefs`, retried
    /// by [`on_timer`](Self::on_timer) (a page still held from an earlier ring there is given
    /// up on: leaked).
    fn end_ring_grants<G: Grants, N: Events, M: GuestMemory>(&mut self, io: &mut Io<'_, G, N, M>) {
        for q in 0..QUEUES {
            for i in 0..RING_PAGES {
                let access = &mut self.ring_grefs[q][i];
                if revoke(access, io.grants, &mut self.ledger, &mut self.counters) {
                    continue;
                }
                let old = &mut self.old_ring_grefs[q][i];
                if !revoke(old, io.grants, &mut self.ledger, &mut self.counters) {
                    self.ledger.give_up(old, &mut self.counters);
                }
                *old = core::mem::replace(access, Access::None);
            }
        }
    }

    fn release_everything<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        io: &mut Io<'_, G, N, M>,
        reset_jobs: bool,
    ) {
        for s in 0..SLOTS {
            if self.slots[s].busy {
                self.release_slot(s, io);
            }
            self.slots[s].generation = self.slots[s].generation.wrapping_add(1);
        }
        for page in self.pool.iter_mut().chain(self.indirect.iter_mut()) {
            revoke(
                &mut page.persistent,
                io.grants,
                &mut self.ledger,
                &mut self.counters,
            );
            revoke(
                &mut page.gref,
                io.grants,
                &mut self.ledger,
                &mut self.counters,
            );
            page.busy = false;
        }
        // The ring is gone: no request of any job is out any more.
        for job in self.jobs.iter_mut().filter(|j| j.live) {
            job.outstanding = 0;
        }
        if reset_jobs {
            for k in 0..self.order_len {
                let j = self.order[k] as usize;
                self.jobs[j].reset_dispatch();
            }
        }
        self.reap();
        self.end_ring_grants(io);
        self.forget_rings();
    }

    /// Drops every ring (their grants are ended or void already) and what was counted on them.
    fn forget_rings(&mut self) {
        self.rings = [const { None }; QUEUES];
        self.queues = 0;
        self.queue_load = [0; QUEUES];
    }

    /// Ends the grants and frees the pages of slot `s` (no copying).
    fn release_slot<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        s: usize,
        io: &mut Io<'_, G, N, M>,
    ) {
        let slot = self.slots[s];
        if slot.busy {
            self.free_slots[self.free_slots_len] = s as u16;
            self.free_slots_len += 1;
        }
        self.slots[s].busy = false;
        let load = &mut self.queue_load[usize::from(slot.queue)];
        *load = load.saturating_sub(1);
        for k in 0..usize::from(slot.nindirect) {
            let page = &mut self.indirect[slot.indirect[k] as usize];
            revoke(
                &mut page.gref,
                io.grants,
                &mut self.ledger,
                &mut self.counters,
            );
            page.busy = false;
        }
        self.release_pieces(
            usize::from(slot.job),
            usize::from(slot.first_piece),
            usize::from(slot.end_piece),
            io,
        );
    }

    fn on_response<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        queue: usize,
        rsp: layout::WireResponse,
        io: &mut Io<'_, G, N, M>,
        complete: &mut impl FnMut(BlockCompletion),
    ) -> Result<(), EngineError> {
        if self.state == EngineState::Probing {
            return self.on_probe_response(rsp, io);
        }
        let s = (rsp.id & 0xffff_ffff) as usize;
        let generation = (rsp.id >> 32) as u32;
        let Some(slot) = self.slots.get(s).copied() else {
            return Err(EngineError::UnknownId { id: rsp.id });
        };
        if slot.generation != generation {
            return Err(EngineError::UnknownId { id: rsp.id });
        }
        if !slot.busy {
            return Err(EngineError::DuplicateId { id: rsp.id });
        }
        if usize::from(slot.queue) != queue {
            return Err(EngineError::WrongQueue {
                id: rsp.id,
                issued_on: slot.queue,
                answered_on: queue as u8,
            });
        }
        if rsp.operation != slot.wire_op
            && !(slot.wire_op == BLKIF_OP_INDIRECT && rsp.operation == slot.inner_op)
        {
            return Err(EngineError::WrongOperation {
                id: rsp.id,
                expected: slot.wire_op,
                got: rsp.operation,
            });
        }
        let status = match rsp.status {
            BLKIF_RSP_OKAY => BlockStatus::Ok,
            BLKIF_RSP_ERROR => BlockStatus::IoError,
            BLKIF_RSP_EOPNOTSUPP => BlockStatus::NotSupported,
            status => return Err(EngineError::BadStatus { id: rsp.id, status }),
        };
        let j = slot.job as usize;
        // An aborted job's buffer is the caller's again: its answers only free what they held.
        let aborted = self.jobs[j].result.is_some();
        // Copy read data out of pool pages before the pages are released.
        if !aborted && status == BlockStatus::Ok && matches!(self.jobs[j].op, BlockOp::Read { .. })
        {
            for i in slot.first_piece..slot.end_piece {
                let piece = self.jobs[j].pieces[i as usize];
                if let PieceKind::Copy { page } = piece.kind {
                    let frame = self.pool[page as usize].frame;
                    copy_out(&self.jobs[j], piece, frame, io.memory);
                }
            }
        }
        if status == BlockStatus::NotSupported {
            io.events.log(LogEvent::NotSupported(slot.wire_op));
            // As Linux's blkfront does: an operation the backend advertised but refuses is not
            // sent again. A later flush falls back to a barrier if one is offered, or completes
            // at once (the backend has shown it keeps no cache it can flush); a later discard
            // completes NotSupported without the ring.
            if let Some(p) = self.params.as_mut() {
                match slot.wire_op {
                    BLKIF_OP_FLUSH_DISKCACHE => p.flush = false,
                    BLKIF_OP_WRITE_BARRIER => p.barrier = false,
                    BLKIF_OP_DISCARD => p.discard = None,
                    _ => {}
                }
            }
        }
        self.release_slot(s, io);
        let job = &mut self.jobs[j];
        job.outstanding = job.outstanding.saturating_sub(1);
        if aborted {
            self.settle(j, complete);
            return Ok(());
        }
        if status != BlockStatus::Ok {
            let at = if slot.end_piece > slot.first_piece {
                u64::from(job.pieces[slot.first_piece as usize].stream)
            } else {
                0
            };
            if job.fail.is_none_or(|(f, _)| at < f) {
                job.fail = Some((at, status));
            }
        }
        if job.outstanding == 0 && job.fully_issued() {
            let fua = matches!(job.op, BlockOp::Write { fua: true, .. });
            let params = self.params.unwrap_or_else(unreachable_params);
            if job.phase == Phase::Main
                && fua
                && job.fail.is_none()
                && (params.flush || params.barrier)
            {
                job.phase = Phase::PostFlush;
                job.issued = false;
            } else {
                let status = job.fail.map_or(BlockStatus::Ok, |(_, s)| s);
                let transferred = match job.fail {
                    Some((at, _)) if job.phase == Phase::Main => at.min(job.bytes()),
                    Some(_) => job.bytes(),
                    None => job.bytes(),
                };
                self.decide(j, status, transferred, complete);
            }
        }
        Ok(())
    }

    fn on_probe_response<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        rsp: layout::WireResponse,
        io: &mut Io<'_, G, N, M>,
    ) -> Result<(), EngineError> {
        let plausible = rsp.operation == layout::PROBE_OPERATION
            && matches!(rsp.status, BLKIF_RSP_ERROR | BLKIF_RSP_EOPNOTSUPP);
        match self.probe {
            Probe::First => {
                let chosen = layout::classify_first_probe(&rsp)
                    .filter(|_| plausible)
                    .ok_or(EngineError::ProbeFailed { id: rsp.id })?;
                // Every ring switches to the chosen entry size where it stands (queue 0 after
                // the probe, the others still at their start).
                for q in 0..self.queues {
                    let ring = self.rings[q]
                        .as_ref()
                        .ok_or(EngineError::ProbeFailed { id: rsp.id })?;
                    let mem = ring.memory().clone();
                    let index = ring.rsp_cons();
                    self.rings[q] = Some(
                        RawFrontRing::attach_at(mem, chosen.entry_size(), index)
                            .map_err(EngineError::Ring)?,
                    );
                }
                let ring = self.rings[0]
                    .as_mut()
                    .ok_or(EngineError::ProbeFailed { id: rsp.id })?;
                let mut out = [0u8; MAX_ENTRY];
                let n = layout::confirm_probe(chosen, self.config.handle, &mut out);
                ring.push_request(&out[..n]).map_err(EngineError::Ring)?;
                if ring.push_requests_and_check_notify() {
                    io.events.notify(usize::from(self.config.queue));
                }
                self.layout = chosen;
                self.probe = Probe::Confirm(chosen);
                Ok(())
            }
            Probe::Confirm(chosen) => {
                if rsp.id != layout::PROBE_ID_CONFIRM || !plausible {
                    return Err(EngineError::ProbeFailed { id: rsp.id });
                }
                self.layout = chosen;
                if let Some(p) = self.params.as_mut() {
                    p.layout = chosen;
                }
                self.counters.layout = Some(chosen);
                self.state = EngineState::Running;
                io.events.log(LogEvent::LayoutSelected(chosen));
                Ok(())
            }
        }
    }

    /// Removes job `j` from the queue.
    fn unlink(&mut self, j: usize) {
        if let Some(pos) = self.order[..self.order_len]
            .iter()
            .position(|&x| x as usize == j)
        {
            self.order.copy_within(pos + 1..self.order_len, pos);
            self.order_len -= 1;
        }
    }
}
