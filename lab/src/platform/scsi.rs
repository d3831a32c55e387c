//! xenscsi-core's engine on the lab platform: its [`Grants`], [`Events`] and [`GuestMemory`]
//! over a [`PagePool`] and an event channel, as [`super::vbd`] does for the block core.
//!
//! gntalloc grants every page of the pool once, writable, for the pool's life; granting a frame
//! returns that page's reference and counts the use, ending access uncounts it. gntalloc cannot
//! tell whether the backend still maps a page, so [`Grants::end`] answers
//! [`EndGrant::Revoked`] here: the real backend's unmapping before it answers is what the
//! scenario relies on (scsiback unmaps before it pushes the response).

use xen_abi::types::{DomId, GrantRef};
use xenpci_core::grant_table::GrantError;
use xenscsi_core::{EndGrant, Events, Grants, GuestMemory, LogEvent};

use super::evtchn::{EventChannels, Port};
use super::pool::PagePool;

/// [`Grants`] over a pool granted up front.
#[derive(Debug)]
pub struct ScsiGrants<'a, 'g> {
    pool: &'a PagePool<'g>,
    live: Vec<u32>,
    /// Grants handed out.
    pub granted: u64,
    /// Grants ended.
    pub ended: u64,
}

impl<'a, 'g> ScsiGrants<'a, 'g> {
    /// Grants over `pool`, none in use.
    pub fn new(pool: &'a PagePool<'g>) -> Self {
        Self {
            pool,
            live: vec![0; pool.len()],
            granted: 0,
            ended: 0,
        }
    }

    /// Grants handed out and not ended.
    pub fn outstanding(&self) -> u64 {
        self.live.iter().map(|n| u64::from(*n)).sum()
    }
}

impl Grants for ScsiGrants<'_, '_> {
    fn grant(&mut self, domid: DomId, frame: u64, _readonly: bool) -> Result<GrantRef, GrantError> {
        match (domid == self.pool.domid(), self.pool.index(frame)) {
            (true, Some(index)) => {
                self.live[index] += 1;
                self.granted += 1;
                Ok(self.pool.gref(frame).expect("a pool frame has a grant"))
            }
            _ => Err(GrantError::FrameTooLarge { frame }),
        }
    }

    fn end(&mut self, gref: GrantRef) -> Result<EndGrant, GrantError> {
        match self.pool.index_of_gref(gref) {
            Some(index) if self.live[index] > 0 => {
                self.live[index] -= 1;
                self.ended += 1;
                Ok(EndGrant::Revoked)
            }
            _ => Err(GrantError::NotGranted { gref }),
        }
    }

    fn parked(&mut self) -> u32 {
        0
    }
}

/// [`GuestMemory`] over the pool.
#[derive(Debug)]
pub struct ScsiMemory<'a, 'g> {
    /// The pool.
    pub pool: &'a PagePool<'g>,
}

impl GuestMemory for ScsiMemory<'_, '_> {
    fn write(&mut self, frame: u64, offset: usize, data: &[u8]) {
        self.pool.write(frame, offset, data);
    }
}

/// [`Events`] over one event channel.
#[derive(Debug)]
pub struct ScsiEvents<'e> {
    /// The device.
    pub events: &'e mut EventChannels,
    /// The port.
    pub port: Port,
    /// Notifications sent.
    pub notifies: u64,
    /// Notifications that failed.
    pub failed: u64,
    /// What the engine logged.
    pub log: Vec<LogEvent>,
}

impl Events for ScsiEvents<'_> {
    fn notify(&mut self) {
        self.notifies += 1;
        if self.events.notify(self.port).is_err() {
            self.failed += 1;
        }
    }

    fn log(&mut self, event: LogEvent) {
        self.log.push(event);
    }
}

/// Request slots of the lab's engine.
pub const SLOTS: usize = 8;
/// Data segments per command: one indirect page's worth.
pub const SEGMENTS: usize = 512;
/// The lab's engine: 8 slots, 512 segments per command, 4 LUNs.
pub type Engine = xenscsi_core::Vscsi<SLOTS, SEGMENTS, 4>;
/// The first pool page for data: page 0 is the ring, pages 1..=8 the indirect pages.
pub const DATA_START: usize = 1 + SLOTS;

/// The engine over a pool: page 0 holds the ring, the next [`SLOTS`] the indirect segment
/// lists, the rest data buffers.
#[derive(Debug)]
pub struct ScsiFront<'a, 'g, 'e> {
    pool: &'a PagePool<'g>,
    ring: xen_ring::RingMemory,
    /// The engine.
    pub engine: Box<Engine>,
    /// Its grants.
    pub grants: ScsiGrants<'a, 'g>,
    /// Its event channel and log.
    pub events: ScsiEvents<'e>,
    /// Its guest memory.
    pub memory: ScsiMemory<'a, 'g>,
}

impl<'a, 'g, 'e> ScsiFront<'a, 'g, 'e> {
    /// An engine over `pool` (more than [`DATA_START`] pages) for a backend in the pool's
    /// domain.
    pub fn new(pool: &'a PagePool<'g>, events: ScsiEvents<'e>) -> std::io::Result<Self> {
        if pool.len() <= DATA_START {
            return Err(std::io::Error::other("the pool has no data pages"));
        }
        // SAFETY: the ring handle lives in `self`, which borrows the pool for 'a, so the pool
        // cannot be released or dropped before it; page 0 is used for nothing but the ring.
        let ring = unsafe { pool.ring_memory(0, 0) }?;
        let indirect: Vec<u64> = (1..=SLOTS).map(|i| pool.frame(i)).collect();
        let config = xenscsi_core::EngineConfig::new(pool.domid());
        Ok(Self {
            pool,
            ring,
            engine: Box::new(xenscsi_core::Vscsi::new(config, &indirect)),
            grants: ScsiGrants::new(pool),
            events,
            memory: ScsiMemory { pool },
        })
    }

    /// The ring page: its memory and frame.
    pub fn ring(&self) -> (xen_ring::RingMemory, u64) {
        (self.ring.clone(), self.pool.frame(0))
    }

    /// The frame of data page `i`.
    pub fn data_frame(&self, i: usize) -> u64 {
        self.pool.frame(DATA_START + i)
    }

    /// The pool.
    pub fn pool(&self) -> &'a PagePool<'g> {
        self.pool
    }
}
