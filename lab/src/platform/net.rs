//! xennet-core on the lab platform.
//!
//! The core reaches its platform through three traits, implemented here over a [`PagePool`]
//! and `/dev/xen/evtchn`, the way [`super::vbd`] does it for the block core:
//! - [`NetGrants`] ([`Grants`]): a frame is one of the pool's pages, already granted to the
//!   backend; granting it returns that page's reference and counts the use, ending access
//!   uncounts it (gntalloc keeps the reference until the pool is released, so the revocation is
//!   always immediate here). gntalloc grants every page writable, so a read-only grant is
//!   writable here too.
//! - [`NetEvents`] ([`Events`]): one port per queue, or a transmit and a receive port per queue
//!   with split event channels; what the core logs is kept.
//! - [`NetMemory`] ([`GuestMemory`]): the pool's mapping.
//!
//! [`NetFront`] lays a [`Netfront`] over the pool: the ring pages of [`QUEUES`] queues first,
//! then each queue's copy pages and receive buffers, then pages for the packets the scenario
//! sends ([`NetFront::data_frame`]).

use std::io;

use xen_abi::types::{DomId, GrantRef};
use xennet_core::{
    ControlError, ControlRing, Events, Grants, GuestMemory, Io, LogEvent, Netfront, RingKind,
    RingPages,
};
use xenpci_core::grant_table::{GrantError, Revocation};

use super::evtchn::{EventChannels, Port};
use super::pool::PagePool;

/// Queues the lab's frontend drives at most (dom0 has 2 vCPUs; netback offers one per vCPU).
pub const QUEUES: usize = 4;
/// Packets queued or on the ring per queue.
pub const PENDING: usize = 32;
/// Copy pages per queue (header copies and whole-packet copies).
pub const COPY_PAGES: usize = 16;
/// Receive buffers per queue: enough for a 64 KiB GSO packet plus headroom.
pub const RX_BUFFERS: usize = 64;
/// Pages for the scenario's own packets.
pub const DATA_PAGES: usize = 64;

/// The device the scenarios drive.
pub type Device = Netfront<QUEUES, PENDING, COPY_PAGES, RX_BUFFERS>;

/// The control ring, its key page and its table page.
const CTRL_START: usize = 2 * QUEUES;
const RINGS_END: usize = CTRL_START + 3;
const COPY_START: usize = RINGS_END;
const RX_START: usize = COPY_START + QUEUES * COPY_PAGES;
const DATA_START: usize = RX_START + QUEUES * RX_BUFFERS;
/// Pages the pool must have.
pub const POOL_PAGES: usize = DATA_START + DATA_PAGES;

/// [`Grants`] over a pool granted up front.
#[derive(Debug)]
pub struct NetGrants<'a, 'g> {
    pool: &'a PagePool<'g>,
    live: Vec<u32>,
    /// Grants handed out.
    pub granted: u64,
    /// Grants ended.
    pub ended: u64,
    /// Grants refused (a frame outside the pool, another domain).
    pub refused: u64,
}

impl<'a, 'g> NetGrants<'a, 'g> {
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

impl Grants for NetGrants<'_, '_> {
    fn grant(&mut self, domid: DomId, frame: u64, readonly: bool) -> Result<GrantRef, GrantError> {
        let _ = readonly;
        match (domid == self.pool.domid(), self.pool.index(frame)) {
            (true, Some(index)) => {
                self.live[index] += 1;
                self.granted += 1;
                Ok(self.pool.gref(frame).expect("a pool frame has a grant"))
            }
            _ => {
                self.refused += 1;
                Err(GrantError::FrameTooLarge { frame })
            }
        }
    }

    fn end(&mut self, gref: GrantRef) -> Result<Revocation, GrantError> {
        match self.pool.index_of_gref(gref) {
            Some(index) if self.live[index] > 0 => {
                self.live[index] -= 1;
                self.ended += 1;
                Ok(Revocation::Revoked)
            }
            _ => Err(GrantError::NotGranted { gref }),
        }
    }
}

/// [`GuestMemory`] over the pool.
#[derive(Debug)]
pub struct NetMemory<'a, 'g> {
    pool: &'a PagePool<'g>,
}

impl GuestMemory for NetMemory<'_, '_> {
    fn read(&self, frame: u64, offset: usize, buf: &mut [u8]) {
        self.pool.read(frame, offset, buf);
    }

    fn write(&mut self, frame: u64, offset: usize, data: &[u8]) {
        self.pool.write(frame, offset, data);
    }
}

/// [`Events`] over `/dev/xen/evtchn`.
#[derive(Debug)]
pub struct NetEvents {
    /// The device (also used to wait for the backend's events).
    pub channels: EventChannels,
    /// Each queue's `(tx, rx)` ports (the same port twice without split event channels).
    pub ports: Vec<(Port, Port)>,
    /// The control ring's port.
    pub ctrl_port: Option<Port>,
    /// Notifications sent.
    pub notifies: u64,
    /// The first notification that failed.
    pub notify_error: Option<io::Error>,
    /// What the core logged.
    pub log: Vec<LogEvent>,
}

impl Events for NetEvents {
    fn notify(&mut self, queue: usize, ring: RingKind) {
        self.notifies += 1;
        let sent = match (self.ports.get(queue), ring) {
            (Some(&(tx, _)), RingKind::Tx) => self.channels.notify(tx),
            (Some(&(_, rx)), RingKind::Rx) => self.channels.notify(rx),
            (_, RingKind::Control) => match self.ctrl_port {
                Some(port) => self.channels.notify(port),
                None => Err(io::Error::other("no event channel for the control ring")),
            },
            (None, _) => Err(io::Error::other(format!(
                "no event channel for queue {queue}"
            ))),
        };
        if let Err(e) = sent {
            self.notify_error.get_or_insert(e);
        }
    }

    fn log(&mut self, event: LogEvent) {
        self.log.push(event);
    }
}

/// A [`Device`] over a pool, with its platform.
#[derive(Debug)]
pub struct NetFront<'a, 'g> {
    pool: &'a PagePool<'g>,
    /// The core.
    pub dev: Box<Device>,
    /// The control ring.
    pub ctrl: ControlRing,
    /// Its grants.
    pub grants: NetGrants<'a, 'g>,
    /// Its event channels and log.
    pub events: NetEvents,
    /// Its guest memory.
    pub memory: NetMemory<'a, 'g>,
}

impl<'a, 'g> NetFront<'a, 'g> {
    /// A device whose pages are `pool`'s (at least [`POOL_PAGES`] of them).
    pub fn new(
        pool: &'a PagePool<'g>,
        channels: EventChannels,
        config: xennet_core::NetConfig,
    ) -> io::Result<Self> {
        if pool.len() < POOL_PAGES {
            return Err(io::Error::other(format!(
                "a pool of {} pages, the device needs {POOL_PAGES}",
                pool.len()
            )));
        }
        let copy: [[u64; COPY_PAGES]; QUEUES] = std::array::from_fn(|q| {
            std::array::from_fn(|i| pool.frame(COPY_START + q * COPY_PAGES + i))
        });
        let rx: [[u64; RX_BUFFERS]; QUEUES] = std::array::from_fn(|q| {
            std::array::from_fn(|i| pool.frame(RX_START + q * RX_BUFFERS + i))
        });
        let mut dev = Box::new(Device::EMPTY);
        dev.init(config, &copy, &rx);
        Ok(Self {
            pool,
            dev,
            ctrl: ControlRing::EMPTY,
            grants: NetGrants::new(pool),
            events: NetEvents {
                channels,
                ports: Vec::new(),
                ctrl_port: None,
                notifies: 0,
                notify_error: None,
                log: Vec::new(),
            },
            memory: NetMemory { pool },
        })
    }

    /// The pool (for reading received fragments inside a callback that holds the device).
    pub fn pool(&self) -> &'a PagePool<'g> {
        self.pool
    }

    /// The frame of data page `i`.
    pub fn data_frame(&self, i: usize) -> u64 {
        assert!(i < DATA_PAGES, "data page {i} of {DATA_PAGES}");
        self.pool.frame(DATA_START + i)
    }

    /// Writes `data` into data page `i` at `offset`.
    pub fn write_data(&self, i: usize, offset: usize, data: &[u8]) {
        self.pool.write(self.data_frame(i), offset, data);
    }

    /// The ring pages of `queues` queues: queue q's transmit ring in page 2q, its receive ring
    /// in page 2q + 1.
    pub fn ring_pages(&self, queues: usize) -> io::Result<Vec<RingPages>> {
        if queues > QUEUES {
            return Err(io::Error::other(format!(
                "{queues} queues, at most {QUEUES}"
            )));
        }
        (0..queues)
            .map(|q| {
                // SAFETY: the ring pages are used for nothing else (the layout above keeps them
                // apart from every other use), and the handles go into `self.dev`, which
                // borrows nothing but is owned by `self`, which borrows the pool for `'a`: the
                // pool outlives every handle. The core drops the handles at disconnect; the
                // scenarios disconnect before releasing the pool.
                let tx = unsafe { self.pool.ring_memory(2 * q, 0) }?;
                // SAFETY: as above, for page 2q + 1.
                let rx = unsafe { self.pool.ring_memory(2 * q + 1, 0) }?;
                Ok(RingPages {
                    tx: (tx, self.pool.frame(2 * q)),
                    rx: (rx, self.pool.frame(2 * q + 1)),
                })
            })
            .collect()
    }

    /// Grants and initialises the control ring (its ring, key and table pages are the pool's);
    /// returns the reference to publish.
    pub fn attach_control(&mut self) -> Result<GrantRef, String> {
        // SAFETY: the control ring's page is used for nothing else, and the handle goes into
        // `self.ctrl`, owned by `self`, which borrows the pool for `'a`; the scenarios detach
        // (`ControlRing::disconnect`) before releasing the pool.
        let ring = unsafe { self.pool.ring_memory(CTRL_START, 0) }.map_err(|e| e.to_string())?;
        let (frame, key, table) = (
            self.pool.frame(CTRL_START),
            self.pool.frame(CTRL_START + 1),
            self.pool.frame(CTRL_START + 2),
        );
        let backend = self.pool.domid();
        let mut io = Io::new(&mut self.grants, &mut self.events, &mut self.memory);
        self.ctrl
            .attach(backend, (ring, frame), key, table, &mut io)
            .map_err(|e: ControlError| format!("{e:?}"))
    }

    /// Runs `f` with the control ring and the platform bundled as an [`Io`].
    pub fn with_ctrl<R>(
        &mut self,
        f: impl FnOnce(
            &mut ControlRing,
            &mut Io<'_, NetGrants<'a, 'g>, NetEvents, NetMemory<'a, 'g>>,
        ) -> R,
    ) -> R {
        let mut io = Io::new(&mut self.grants, &mut self.events, &mut self.memory);
        f(&mut self.ctrl, &mut io)
    }

    /// Runs `f` with the device and the platform bundled as an [`Io`].
    pub fn with_io<R>(
        &mut self,
        f: impl FnOnce(&mut Device, &mut Io<'_, NetGrants<'a, 'g>, NetEvents, NetMemory<'a, 'g>>) -> R,
    ) -> R {
        let mut io = Io::new(&mut self.grants, &mut self.events, &mut self.memory);
        f(&mut self.dev, &mut io)
    }
}
