//! xenvbd-core's blkif engine on the lab platform.
//!
//! The engine reaches its platform through three traits, implemented here over a [`PagePool`]
//! and an event channel:
//! - [`PoolGrants`] ([`Grants`]): a frame is one of the pool's pages, already granted to the
//!   backend; granting it returns that page's reference and counts the use, ending access
//!   uncounts it (the reference itself lives until the pool is released). gntalloc grants
//!   every page writable, so a read-only grant is writable here too.
//! - [`EvtchnEvents`] ([`Events`]): notify through `/dev/xen/evtchn` (one port per queue, the
//!   time spent counted, optionally held until [`EvtchnEvents::flush`]), keep the log events.
//! - [`PoolMemory`] ([`GuestMemory`]): the pool's mapping.
//!
//! [`Front`] owns an engine of any dimensions and lays it out over the pool: [`QUEUES`] rings
//! of [`RING_PAGES`] pages first, then the bounce/persistent and indirect pages, then pages for
//! data buffers ([`Front::data_frame`]). Because it borrows the pool, the pool outlives the
//! rings. [`VbdFront`] is the functional scenarios' shallow engine, [`BenchFront`] the
//! benchmark's deep one.

use std::io;

use xen_abi::types::{DomId, GrantRef};
use xenpci_core::grant_table::GrantError;
use xenvbd_core::blkif::{
    Blkif, Ended, EngineConfig, Events, FrontendParams, Grants, Io, LogEvent, MAX_RING_PAGE_ORDER,
};
use xenvbd_core::GuestMemory;

use super::clock::ticks;
use super::evtchn::{EventChannels, Port};
use super::pool::PagePool;

/// Bounce pages of the engine.
pub const BOUNCE_PAGES: usize = 8;
/// Indirect-segment pages of the engine.
pub const INDIRECT_PAGES: usize = 4;
/// Pages kept for each ring: the largest ring the engine negotiates.
pub const RING_PAGES: usize = 1 << MAX_RING_PAGE_ORDER;
/// Queues (rings) the lab's frontend sets up at most (dom0 has 2 vCPUs, and blkback offers
/// one queue per CPU).
pub const QUEUES: usize = 4;
/// The first pool page after the rings.
const RINGS_END: usize = QUEUES * RING_PAGES;
/// The first pool page left for data buffers by an engine with `pool` bounce/persistent pages
/// and `indirect` indirect pages.
pub const fn data_start(pool: usize, indirect: usize) -> usize {
    RINGS_END + pool + indirect
}
/// The first pool page left for data buffers by [`VbdFront`].
pub const DATA_START: usize = data_start(BOUNCE_PAGES, INDIRECT_PAGES);

/// The functional scenarios' engine: 8 operations of up to 64 segments, 32 ring requests in
/// flight.
pub type Engine = Blkif<8, 64, 32, BOUNCE_PAGES, INDIRECT_PAGES>;

/// An engine initialised in place on the heap (`Blkif::EMPTY`, then `init`).
pub fn boxed_engine<
    const JOBS: usize,
    const SEGS: usize,
    const SLOTS: usize,
    const POOL: usize,
    const IND: usize,
>(
    config: EngineConfig,
    pool_frames: &[u64; POOL],
    indirect_frames: &[u64; IND],
) -> Box<Blkif<JOBS, SEGS, SLOTS, POOL, IND>> {
    let mut engine = Box::new(Blkif::EMPTY);
    engine.init(config, pool_frames, indirect_frames);
    engine
}
/// [`Engine`] on the lab platform.
pub type VbdFront<'a, 'g, 'e> = Front<'a, 'g, 'e, 8, 64, 32, BOUNCE_PAGES, INDIRECT_PAGES>;

/// Operations queued or in flight in the benchmark's engine: the deepest queue it drives.
pub const BENCH_JOBS: usize = 32;
/// Segments per operation in the benchmark (64 KiB in whole pages is 16).
pub const BENCH_SEGS: usize = 32;
/// Ring requests in flight in the benchmark.
pub const BENCH_SLOTS: usize = 64;
/// The benchmark's bounce/persistent pages: with persistent grants every piece of every
/// operation in flight sits in one, 32 operations of 16 pages.
pub const BENCH_POOL: usize = 512;
/// The benchmark's indirect pages: one per operation in flight.
pub const BENCH_INDIRECT: usize = 32;
/// The first pool page left for data buffers by [`BenchFront`].
pub const BENCH_DATA_START: usize = data_start(BENCH_POOL, BENCH_INDIRECT);
/// The benchmark's engine on the lab platform.
pub type BenchFront<'a, 'g, 'e> =
    Front<'a, 'g, 'e, BENCH_JOBS, BENCH_SEGS, BENCH_SLOTS, BENCH_POOL, BENCH_INDIRECT>;

/// [`Grants`] over a pool granted up front.
#[derive(Debug)]
pub struct PoolGrants<'a, 'g> {
    pool: &'a PagePool<'g>,
    /// Uses of each page's grant not yet ended.
    live: Vec<u32>,
    /// Grants handed out.
    pub granted: u64,
    /// Grants ended.
    pub ended: u64,
    /// Grants refused: a frame not in the pool, or another domain.
    pub refused: u64,
}

impl<'a, 'g> PoolGrants<'a, 'g> {
    /// Grants over `pool`, none in use.
    pub fn new(pool: &'a PagePool<'g>) -> Self {
        Self {
            pool,
            live: vec![0; pool.len()],
            granted: 0,
            ended: 0,
            refused: 0,
        }
    }

    /// Grants handed out and not ended.
    pub fn outstanding(&self) -> u64 {
        self.live.iter().map(|n| u64::from(*n)).sum()
    }
}

impl Grants for PoolGrants<'_, '_> {
    fn grant(&mut self, domid: DomId, frame: u64, readonly: bool) -> Result<GrantRef, GrantError> {
        let _ = readonly;
        match (domid == self.pool.domid(), self.pool.index(frame)) {
            (true, Some(index)) => {
                self.live[index] += 1;
                self.granted += 1;
                Ok(self.pool.gref(frame).expect("a pool frame has a grant"))
            }
            // There is no better variant: a frame outside the pool cannot be granted at all.
            _ => {
                self.refused += 1;
                Err(GrantError::FrameTooLarge { frame })
            }
        }
    }

    fn end(&mut self, gref: GrantRef) -> Result<Ended, GrantError> {
        match self.pool.index_of_gref(gref) {
            Some(index) if self.live[index] > 0 => {
                self.live[index] -= 1;
                self.ended += 1;
                Ok(Ended::Revoked)
            }
            _ => Err(GrantError::NotGranted { gref }),
        }
    }
}

/// [`GuestMemory`] over the pool.
#[derive(Debug)]
pub struct PoolMemory<'a, 'g> {
    pool: &'a PagePool<'g>,
}

impl<'a, 'g> PoolMemory<'a, 'g> {
    /// The pool as guest memory.
    pub fn new(pool: &'a PagePool<'g>) -> Self {
        Self { pool }
    }
}

impl GuestMemory for PoolMemory<'_, '_> {
    fn read(&self, frame: u64, offset: usize, buf: &mut [u8]) {
        self.pool.read(frame, offset, buf);
    }

    fn write(&mut self, frame: u64, offset: usize, data: &[u8]) {
        self.pool.write(frame, offset, data);
    }

    fn copy(
        &mut self,
        dst_frame: u64,
        dst_offset: usize,
        src_frame: u64,
        src_offset: usize,
        len: usize,
    ) {
        self.pool
            .copy(dst_frame, dst_offset, src_frame, src_offset, len);
    }
}

/// [`Events`] over event channels bound with `/dev/xen/evtchn`, one per queue.
#[derive(Debug)]
pub struct EvtchnEvents<'e> {
    /// The device (also used to wait for the backend's events).
    pub events: &'e mut EventChannels,
    /// Each queue's port.
    pub ports: Vec<Port>,
    /// Notifications sent.
    pub notifies: u64,
    /// Notifications the engine asked for (more than `notifies` when some were held and merged).
    pub requested: u64,
    /// Time spent sending them, in time-stamp counter ticks ([`super::clock`]): an `ioctl` from
    /// dom0 userspace, where a guest kernel makes a hypercall.
    pub notify_ticks: u64,
    /// Hold the engine's notifications until [`flush`](Self::flush), as a glue that kicks the
    /// backend once per batch of submissions would (the requests are on the ring already).
    pub defer: bool,
    /// Queues with a notification held (bit q for queue q).
    pending: u64,
    /// The first notification that failed.
    pub notify_error: Option<io::Error>,
    /// What the engine logged.
    pub log: Vec<LogEvent>,
}

impl<'e> EvtchnEvents<'e> {
    /// Events on `port`, for a single queue.
    pub fn new(events: &'e mut EventChannels, port: Port) -> Self {
        Self::with_ports(events, vec![port])
    }

    /// Events on `ports`, queue `q` on `ports[q]`.
    pub fn with_ports(events: &'e mut EventChannels, ports: Vec<Port>) -> Self {
        Self {
            events,
            ports,
            notifies: 0,
            requested: 0,
            notify_ticks: 0,
            defer: false,
            pending: 0,
            notify_error: None,
            log: Vec::new(),
        }
    }

    /// Sends the notifications held back, if any.
    pub fn flush(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        for queue in 0..self.ports.len().min(64) {
            if pending & (1 << queue) != 0 {
                self.send(queue);
            }
        }
    }

    fn send(&mut self, queue: usize) {
        let started = ticks();
        self.notifies += 1;
        let sent = match self.ports.get(queue) {
            Some(&port) => self.events.notify(port),
            None => Err(io::Error::other(format!(
                "no event channel for queue {queue}"
            ))),
        };
        if let Err(e) = sent {
            self.notify_error.get_or_insert(e);
        }
        self.notify_ticks += ticks().saturating_sub(started);
    }
}

impl Events for EvtchnEvents<'_> {
    fn notify(&mut self, queue: usize) {
        self.requested += 1;
        if self.defer && queue < 64 {
            self.pending |= 1 << queue;
        } else {
            self.send(queue);
        }
    }

    fn log(&mut self, event: LogEvent) {
        self.log.push(event);
    }
}

/// An engine of the given dimensions over the pool and one event channel per queue.
#[derive(Debug)]
pub struct Front<
    'a,
    'g,
    'e,
    const JOBS: usize,
    const SEGS: usize,
    const SLOTS: usize,
    const POOL: usize,
    const IND: usize,
> {
    pool: &'a PagePool<'g>,
    /// The engine.
    pub engine: Box<Blkif<JOBS, SEGS, SLOTS, POOL, IND>>,
    /// Its grants.
    pub grants: PoolGrants<'a, 'g>,
    /// Its event channel and log.
    pub events: EvtchnEvents<'e>,
    /// Its guest memory.
    pub memory: PoolMemory<'a, 'g>,
}

impl<
        'a,
        'g,
        'e,
        const JOBS: usize,
        const SEGS: usize,
        const SLOTS: usize,
        const POOL: usize,
        const IND: usize,
    > Front<'a, 'g, 'e, JOBS, SEGS, SLOTS, POOL, IND>
{
    /// The first pool page left for data buffers.
    pub const DATA_START: usize = data_start(POOL, IND);

    /// An engine for device `handle` whose pages are `pool`'s (at least
    /// [`DATA_START`](Self::DATA_START) of them).
    pub fn new(pool: &'a PagePool<'g>, events: EvtchnEvents<'e>, handle: u16) -> io::Result<Self> {
        if pool.len() < Self::DATA_START {
            return Err(io::Error::other(format!(
                "a pool of {} pages, the engine needs {}",
                pool.len(),
                Self::DATA_START
            )));
        }
        let bounce: [u64; POOL] = std::array::from_fn(|i| pool.frame(RINGS_END + i));
        let indirect: [u64; IND] = std::array::from_fn(|i| pool.frame(RINGS_END + POOL + i));
        let config = EngineConfig::new(pool.domid(), handle);
        Ok(Self {
            pool,
            engine: boxed_engine(config, &bounce, &indirect),
            grants: PoolGrants::new(pool),
            events,
            memory: PoolMemory::new(pool),
        })
    }

    /// The frame of data page `i` (the pages after the engine's own).
    pub fn data_frame(&self, i: usize) -> u64 {
        self.pool.frame(Self::DATA_START + i)
    }

    /// The number of data pages.
    pub fn data_pages(&self) -> usize {
        self.pool.len() - Self::DATA_START
    }

    /// Runs `f` with the engine and the platform bundled as an [`Io`].
    pub fn with_io<R>(
        &mut self,
        f: impl FnOnce(
            &mut Blkif<JOBS, SEGS, SLOTS, POOL, IND>,
            &mut Io<'_, PoolGrants<'a, 'g>, EvtchnEvents<'e>, PoolMemory<'a, 'g>>,
        ) -> R,
    ) -> R {
        let mut io = Io::new(&mut self.grants, &mut self.events, &mut self.memory);
        f(&mut self.engine, &mut io)
    }

    /// Disconnects the engine, which revokes every grant it holds whatever state it is in, and
    /// returns how many grants are still in use (none, unless the engine leaked one).
    pub fn disconnect(&mut self) -> u64 {
        self.with_io(|engine, io| engine.disconnect(io));
        self.grants.outstanding()
    }

    /// Lays queue `q`'s ring over 2^`params.ring_page_order` pages from page `q` ×
    /// [`RING_PAGES`], for each of the `params.queues` queues, and attaches them (granting them
    /// to the backend).
    pub fn attach_ring(&mut self, params: FrontendParams) -> io::Result<()> {
        let pages = params.ring_pages();
        let queues = params.queues as usize;
        if pages > RING_PAGES || queues > QUEUES {
            return Err(io::Error::other(format!(
                "{queues} rings of {pages} pages; the pool holds {QUEUES} of {RING_PAGES}"
            )));
        }
        let mut rings = Vec::with_capacity(queues);
        for q in 0..queues {
            // SAFETY: the engine that will own the handle lives in `self`, which borrows the
            // pool for 'a, so the pool cannot be released or dropped before the ring is; pages
            // q × RING_PAGES .. (q + 1) × RING_PAGES are used for nothing but queue q's ring
            // (bounce, indirect and data pages come after all the rings).
            let mem = unsafe {
                self.pool
                    .ring_memory(q * RING_PAGES, params.ring_page_order)
            }?;
            let frames: Vec<u64> = (0..pages)
                .map(|i| self.pool.frame(q * RING_PAGES + i))
                .collect();
            rings.push((mem, frames));
        }
        self.with_io(|engine, io| {
            engine.attach_rings(
                params,
                rings
                    .iter()
                    .map(|(mem, frames)| (mem.clone(), frames.as_slice())),
                io,
            )
        })
        .map_err(|e| io::Error::other(format!("attach the rings: {e}")))
    }

    /// Each queue's ring references, for [`FrontendParams::write_nodes`].
    pub fn queue_ring_refs(&self) -> Vec<Vec<GrantRef>> {
        (0..self.engine.queues())
            .map(|q| {
                let mut refs = [0; 16];
                let n = self.engine.queue_ring_refs(q, &mut refs);
                refs[..n].to_vec()
            })
            .collect()
    }
}
