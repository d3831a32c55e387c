//! The platform as the core sees it: grants, event channels, guest memory and the log, passed
//! per call in an [`Io`].
//!
//! These mirror the block core's traits of the same names (grants and guest memory are the same
//! operations); the network core keeps its own so that it depends on no other class core.

use xen_abi::types::{DomId, GrantRef};
use xenpci_core::grant_table::{GrantEntries, GrantError, GrantTable, Revocation};

use crate::queue::QueueError;

/// Granting guest frames to the backend domain.
pub trait Grants {
    /// Grants `domid` access to `frame`, read-only when `readonly`.
    fn grant(&mut self, domid: DomId, frame: u64, readonly: bool) -> Result<GrantRef, GrantError>;
    /// Ends access through `gref`; [`Revocation::Deferred`] when the backend still maps it (the
    /// page must then not be handed to anyone else).
    fn end(&mut self, gref: GrantRef) -> Result<Revocation, GrantError>;
}

impl<E: GrantEntries> Grants for GrantTable<'_, E> {
    fn grant(&mut self, domid: DomId, frame: u64, readonly: bool) -> Result<GrantRef, GrantError> {
        self.grant_access(domid, frame, readonly)
    }

    fn end(&mut self, gref: GrantRef) -> Result<Revocation, GrantError> {
        self.end_access(gref)
    }
}

/// Which ring of a queue an event concerns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingKind {
    /// The transmit ring.
    Tx,
    /// The receive ring.
    Rx,
    /// The device's control ring (`queue` is 0).
    Control,
}

/// Something worth a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogEvent {
    /// A response was dropped as invalid (the queue keeps running).
    BadResponse {
        /// The queue.
        queue: u16,
        /// What was wrong.
        error: QueueError,
    },
    /// The queue stopped: too many bad responses, or a poisoned ring.
    Failed {
        /// The queue.
        queue: u16,
        /// The last error.
        error: QueueError,
    },
    /// A grant was still mapped by the backend when it should have been released; its page is
    /// kept out of use for good.
    StillMapped {
        /// The queue.
        queue: u16,
    },
}

/// Event channels and the log.
pub trait Events {
    /// Notifies the backend about `ring` of queue `queue` (one channel per queue, or one per
    /// ring with split event channels: the shell knows which).
    fn notify(&mut self, queue: usize, ring: RingKind);
    /// Records an event; the default ignores it.
    fn log(&mut self, event: LogEvent) {
        let _ = event;
    }
}

/// Access to guest memory by frame: packet fragments, copy pages and receive buffers. The
/// Windows shell implements it over mapped MDLs and its own pool pages, tests over the model.
pub trait GuestMemory {
    /// Copies `buf.len()` bytes from guest frame `frame` at `offset` (within the page).
    fn read(&self, frame: u64, offset: usize, buf: &mut [u8]);
    /// Copies `data` into guest frame `frame` at `offset` (within the page).
    fn write(&mut self, frame: u64, offset: usize, data: &[u8]);
}

/// What a core call may use of the platform.
#[derive(Debug)]
pub struct Io<'a, G, N, M> {
    /// The grant table.
    pub grants: &'a mut G,
    /// The event channels and log.
    pub events: &'a mut N,
    /// Guest memory.
    pub memory: &'a mut M,
}

impl<'a, G: Grants, N: Events, M: GuestMemory> Io<'a, G, N, M> {
    /// Bundles the three.
    pub fn new(grants: &'a mut G, events: &'a mut N, memory: &'a mut M) -> Self {
        Io {
            grants,
            events,
            memory,
        }
    }
}
