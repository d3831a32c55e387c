//! A deeper xenvbd-core engine for the `vbd-bench` scenario.
//!
//! [`super::vbd::VbdFront`]'s engine holds 8 operations and 8 bounce pages, enough for the
//! functional scenarios but not for a queue depth of 32 with persistent grants (every piece of
//! every operation in flight then sits in a pool page: 32 × 64 KiB needs 512). [`BenchFront`]
//! is the same arrangement with [`BenchEngine`]'s dimensions: the ring in the first
//! [`RING_PAGES`] pages, then [`BENCH_POOL`] bounce/persistent pages, [`BENCH_INDIRECT`]
//! indirect pages, then data pages. Its [`IndexedGrants`] finds a page by its grant reference in
//! constant time, so ending a grant costs what it would in a guest, not a scan of the pool.

use std::collections::HashMap;
use std::io;

use xen_abi::types::{DomId, GrantRef};
use xenpci_core::grant_table::{GrantError, Revocation};
use xenvbd_core::blkif::{Blkif, EngineConfig, Events, FrontendParams, Grants, Io, LogEvent};

use super::clock::ticks;
use super::evtchn::{EventChannels, Port};
use super::pool::PagePool;
use super::vbd::{PoolMemory, RING_PAGES};

/// Operations queued or in flight: the deepest queue the benchmark drives.
pub const BENCH_JOBS: usize = 32;
/// Segments per operation (64 KiB in whole pages is 16).
pub const BENCH_SEGS: usize = 32;
/// Ring requests in flight.
pub const BENCH_SLOTS: usize = 64;
/// Bounce/persistent pages: 32 operations of 16 pages.
pub const BENCH_POOL: usize = 512;
/// Indirect pages: one per operation in flight.
pub const BENCH_INDIRECT: usize = 32;
/// The first pool page left for data buffers.
pub const BENCH_DATA_START: usize = RING_PAGES + BENCH_POOL + BENCH_INDIRECT;

/// The benchmark's engine.
pub type BenchEngine = Blkif<BENCH_JOBS, BENCH_SEGS, BENCH_SLOTS, BENCH_POOL, BENCH_INDIRECT>;

/// [`Grants`] over a pool granted up front, with the pages indexed by grant reference.
#[derive(Debug)]
pub struct IndexedGrants<'a, 'g> {
    pool: &'a PagePool<'g>,
    by_ref: HashMap<GrantRef, usize>,
    /// Uses of each page's grant not yet ended.
    live: Vec<u32>,
    /// Grants handed out.
    pub granted: u64,
    /// Grants ended.
    pub ended: u64,
    /// Grants refused: a frame not in the pool, or another domain.
    pub refused: u64,
}

impl<'a, 'g> IndexedGrants<'a, 'g> {
    /// Grants over `pool`, none in use.
    pub fn new(pool: &'a PagePool<'g>) -> Self {
        let by_ref = (0..pool.len())
            .filter_map(|i| pool.gref(pool.frame(i)).map(|g| (g, i)))
            .collect();
        Self {
            pool,
            by_ref,
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

impl Grants for IndexedGrants<'_, '_> {
    fn grant(&mut self, domid: DomId, frame: u64, readonly: bool) -> Result<GrantRef, GrantError> {
        let _ = readonly;
        let index = self
            .pool
            .index(frame)
            .filter(|_| domid == self.pool.domid());
        match (index, self.pool.gref(frame)) {
            (Some(index), Some(gref)) => {
                self.live[index] += 1;
                self.granted += 1;
                Ok(gref)
            }
            _ => {
                self.refused += 1;
                Err(GrantError::FrameTooLarge { frame })
            }
        }
    }

    fn end(&mut self, gref: GrantRef) -> Result<Revocation, GrantError> {
        match self.by_ref.get(&gref) {
            Some(&index) if self.live[index] > 0 => {
                self.live[index] -= 1;
                self.ended += 1;
                Ok(Revocation::Revoked)
            }
            _ => Err(GrantError::NotGranted { gref }),
        }
    }
}

/// [`Events`] over an event channel bound with `/dev/xen/evtchn`, timing its notifications
/// (an `ioctl` from dom0 userspace, a hypercall from a guest kernel).
#[derive(Debug)]
pub struct TimedEvents<'e> {
    /// The device (also used to wait for the backend's events).
    pub events: &'e mut EventChannels,
    /// The queue's port.
    pub port: Port,
    /// Notifications sent.
    pub notifies: u64,
    /// Time spent sending them, in time-stamp counter ticks ([`super::clock`]).
    pub notify_ticks: u64,
    /// The first notification that failed.
    pub notify_error: Option<io::Error>,
    /// What the engine logged.
    pub log: Vec<LogEvent>,
    /// Hold the engine's notifications until [`TimedEvents::flush`] (a glue that kicks the
    /// backend once per batch of submissions; the requests are on the ring already).
    pub defer: bool,
    /// A notification is held.
    pending: bool,
    /// Notifications the engine asked for (equal to `notifies` unless deferred).
    pub requested: u64,
}

impl<'e> TimedEvents<'e> {
    /// Events on `port`.
    pub fn new(events: &'e mut EventChannels, port: Port) -> Self {
        Self {
            events,
            port,
            notifies: 0,
            notify_ticks: 0,
            notify_error: None,
            log: Vec::new(),
            defer: false,
            pending: false,
            requested: 0,
        }
    }

    /// Sends the notification held back, if any.
    pub fn flush(&mut self) {
        if std::mem::take(&mut self.pending) {
            self.send();
        }
    }

    fn send(&mut self) {
        let started = ticks();
        self.notifies += 1;
        if let Err(e) = self.events.notify(self.port) {
            self.notify_error.get_or_insert(e);
        }
        self.notify_ticks += ticks().saturating_sub(started);
    }
}

impl Events for TimedEvents<'_> {
    fn notify(&mut self) {
        self.requested += 1;
        if self.defer {
            self.pending = true;
        } else {
            self.send();
        }
    }

    fn log(&mut self, event: LogEvent) {
        self.log.push(event);
    }
}

/// [`BenchEngine`] over the pool and one event channel.
#[derive(Debug)]
pub struct BenchFront<'a, 'g, 'e> {
    pool: &'a PagePool<'g>,
    /// The engine.
    pub engine: Box<BenchEngine>,
    /// Its grants.
    pub grants: IndexedGrants<'a, 'g>,
    /// Its event channel and log.
    pub events: TimedEvents<'e>,
    /// Its guest memory.
    pub memory: PoolMemory<'a, 'g>,
}

impl<'a, 'g, 'e> BenchFront<'a, 'g, 'e> {
    /// An engine for device `handle` whose pages are `pool`'s (at least [`BENCH_DATA_START`]).
    pub fn new(pool: &'a PagePool<'g>, events: TimedEvents<'e>, handle: u16) -> io::Result<Self> {
        if pool.len() < BENCH_DATA_START {
            return Err(io::Error::other(format!(
                "a pool of {} pages, the engine needs {BENCH_DATA_START}",
                pool.len()
            )));
        }
        let bounce: [u64; BENCH_POOL] = std::array::from_fn(|i| pool.frame(RING_PAGES + i));
        let indirect: [u64; BENCH_INDIRECT] =
            std::array::from_fn(|i| pool.frame(RING_PAGES + BENCH_POOL + i));
        let config = EngineConfig {
            backend: pool.domid(),
            handle,
        };
        Ok(Self {
            pool,
            engine: Box::new(BenchEngine::new(config, &bounce, &indirect)),
            grants: IndexedGrants::new(pool),
            events,
            memory: PoolMemory::new(pool),
        })
    }

    /// The frame of data page `i` (the pages after the engine's own).
    pub fn data_frame(&self, i: usize) -> u64 {
        self.pool.frame(BENCH_DATA_START + i)
    }

    /// The number of data pages.
    pub fn data_pages(&self) -> usize {
        self.pool.len() - BENCH_DATA_START
    }

    /// Runs `f` with the engine and the platform bundled as an [`Io`].
    pub fn with_io<R>(
        &mut self,
        f: impl FnOnce(
            &mut BenchEngine,
            &mut Io<'_, IndexedGrants<'a, 'g>, TimedEvents<'e>, PoolMemory<'a, 'g>>,
        ) -> R,
    ) -> R {
        let mut io = Io::new(&mut self.grants, &mut self.events, &mut self.memory);
        f(&mut self.engine, &mut io)
    }

    /// Lays the ring over the first 2^`params.ring_page_order` pages and attaches it.
    pub fn attach_ring(&mut self, params: FrontendParams) -> io::Result<()> {
        let pages = params.ring_pages();
        if pages > RING_PAGES {
            return Err(io::Error::other(format!("a ring of {pages} pages")));
        }
        // SAFETY: the engine that will own the handle lives in `self`, which borrows the pool
        // for 'a, so the pool cannot be released or dropped before the ring is; the first
        // RING_PAGES pages are used for nothing but the ring (pool, indirect and data pages
        // come after them).
        let mem = unsafe { self.pool.ring_memory(0, params.ring_page_order) }?;
        let frames: Vec<u64> = (0..pages).map(|i| self.pool.frame(i)).collect();
        self.with_io(|engine, io| engine.attach_ring(params, mem, &frames, io))
            .map_err(|e| io::Error::other(format!("attach the ring: {e}")))
    }
}
