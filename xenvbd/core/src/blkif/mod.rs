//! The blkif engine: block operations in, blkif requests on the shared ring, completions out.
//!
//! # Pieces
//! - [`negotiate`]: the backend's features ([`BackendFeatures`], parsed from its xenstore nodes
//!   with typed [`FeatureError`]s), the frontend's choices ([`FrontendParams`]: ring order,
//!   queues, indirect segments, persistent grants, protocol) and the nodes it publishes, plus the
//!   [`DiskInfo`](crate::DiskInfo) the SCSI layer presents.
//! - [`layout`]: the x86_64 and x86_32 ring layouts and the probe that finds which one the
//!   backend really uses.
//! - [`engine`]: [`Blkif`], the queue, the in-flight table, bounce/persistent pages and
//!   indirect pages, ownership of pages against the backend, deadlines, abort and reset,
//!   recovery and counters.
//!
//! # Platform independence
//! The engine reaches the platform only through [`Grants`] (grant a frame to the backend domain;
//! end access, a grant the backend still maps staying in force until a later try: implemented
//! here for xenpci-core's [`GrantTable`]), [`Events`] (kick the event channel, log) and
//! [`GuestMemory`] (copy through bounce and persistent pages, write indirect pages), bundled per
//! call in an [`Io`].
//!
//! # Concurrency
//! A [`Blkif`] takes no lock: every call needs `&mut`, so the shell serialises the calls on one
//! engine under that engine's lock. A device may have one engine per queue (attached with
//! [`Blkif::attach_queue`], called with [`Io::with_order`]): each queue's engine is then its own
//! lock domain and the engines share only the lock-free [`DeviceOrder`], which orders flushes
//! across queues. No call blocks, waits or allocates; each may run at IRQL ≤ DISPATCH_LEVEL when
//! the [`Io`] implementations may.

pub mod engine;
pub mod layout;
pub mod negotiate;
pub mod order;

#[cfg(test)]
mod tests;

use core::fmt;

use xen_abi::grant_table::GrantFlags;
use xen_abi::types::{DomId, GrantRef};
use xenpci_core::grant_table::{GrantEntries, GrantError, GrantTable, Revocation};

pub use engine::{Blkif, EngineConfig, EngineState, Holdings, SubmitError, Timeouts, TimerReport};
pub use layout::Layout;
pub use negotiate::{
    toolstack_trusts_backend, BackendFeatures, DeviceType, FeatureError, FrontendConfig,
    FrontendParams, NodeError, MAX_QUEUES, MAX_RING_PAGE_ORDER,
};
pub use order::DeviceOrder;

use crate::types::GuestMemory;

/// What [`Grants::end`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// Access is revoked: the reference is free and the page is the guest's again.
    Revoked,
    /// The backend still maps the page. The grant stays in force and stays the caller's: it
    /// calls [`Grants::end`] again later, and until that answers [`Ended::Revoked`] the page is
    /// neither reused nor handed back.
    StillMapped,
    /// The backend mapped the page again while access was being ended, and the grant table took
    /// the reference over to revoke it on its own: the caller never learns when that happens, so
    /// the page is never reused (it is leaked on purpose).
    Abandoned,
}

/// Granting guest frames to the backend domain.
pub trait Grants {
    /// Grants `domid` access to `frame`, read-only when `readonly`.
    fn grant(&mut self, domid: DomId, frame: u64, readonly: bool) -> Result<GrantRef, GrantError>;
    /// Ends access through `gref` if the backend no longer maps the page (see [`Ended`]); called
    /// again for the same reference as long as it answers [`Ended::StillMapped`].
    fn end(&mut self, gref: GrantRef) -> Result<Ended, GrantError>;
}

impl<E: GrantEntries> Grants for GrantTable<'_, E> {
    fn grant(&mut self, domid: DomId, frame: u64, readonly: bool) -> Result<GrantRef, GrantError> {
        self.grant_access(domid, frame, readonly)
    }

    /// Looks at the entry before ending it: a reference the backend maps stays granted, and the
    /// engine's, so that the engine can tell when the page is free (`end_access` would park it on
    /// the table's deferred list, where nobody can ask about it any more).
    fn end(&mut self, gref: GrantRef) -> Result<Ended, GrantError> {
        if gref >= self.capacity() {
            return Err(GrantError::NotGranted { gref });
        }
        let mapped = GrantFlags::READING.bits() | GrantFlags::WRITING.bits();
        if self.entries().load_flags(gref) & mapped != 0 {
            return Ok(Ended::StillMapped);
        }
        match self.end_access(gref)? {
            Revocation::Revoked => Ok(Ended::Revoked),
            // Mapped between the look and the exchange: the table owns the reference now.
            Revocation::Deferred => Ok(Ended::Abandoned),
        }
    }
}

/// Something worth a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogEvent {
    /// The layout probe settled on this layout.
    LayoutSelected(Layout),
    /// The device entered the error state.
    Error(EngineError),
    /// After a reconnect, this many requests are queued again.
    Resubmitting(u32),
    /// The backend refused an operation it advertised (flush, barrier, discard): the engine
    /// stops sending it; the glue tells the SCSI layer (`Disk::withdraw_flush`,
    /// `Disk::withdraw_discard`).
    NotSupported(u8),
    /// The backend kept a grant mapped past [`Timeouts::revocation`]: the page is leaked on
    /// purpose (never reused, never handed back). `tag` names the operation whose buffer it is,
    /// which therefore never completes; `None` for the engine's own pages (pool, indirect, ring).
    Leaked {
        /// The grant reference.
        gref: GrantRef,
        /// The operation whose buffer the page is.
        tag: Option<crate::types::Tag>,
    },
}

/// The event channel and the log.
pub trait Events {
    /// Notifies the backend through queue `queue`'s event channel.
    fn notify(&mut self, queue: usize);
    /// Asks the shell to poll queue `queue`'s engine soon (queue its DPC): a flush waiting there
    /// for other queues' writes ([`DeviceOrder`]) may now be issued. Called by an engine of
    /// another queue, under that queue's lock. The default does nothing: the flush then waits
    /// for its queue's next `poll`, `submit` or `on_timer`.
    fn wake(&mut self, queue: usize) {
        let _ = queue;
    }
    /// Records an event; the default ignores it.
    fn log(&mut self, event: LogEvent) {
        let _ = event;
    }
}

/// What an engine call may use of the platform.
#[derive(Debug)]
pub struct Io<'a, G, N, M> {
    /// The grant table.
    pub grants: &'a mut G,
    /// The event channel and log.
    pub events: &'a mut N,
    /// Guest memory, for bounce, persistent and indirect pages.
    pub memory: &'a mut M,
    /// The device-wide flush ordering, for an engine that drives one queue of several
    /// ([`EngineConfig::queue`](engine::EngineConfig::queue)); `None` for an engine that drives
    /// every queue of its device itself.
    pub order: Option<&'a DeviceOrder>,
}

impl<'a, G: Grants, N: Events, M: GuestMemory> Io<'a, G, N, M> {
    /// Bundles the three.
    pub fn new(grants: &'a mut G, events: &'a mut N, memory: &'a mut M) -> Self {
        Io {
            grants,
            events,
            memory,
            order: None,
        }
    }

    /// The same, for an engine that drives one queue of a device: every call of every queue's
    /// engine must be given the device's one `order`.
    pub fn with_order(mut self, order: &'a DeviceOrder) -> Self {
        self.order = Some(order);
        self
    }
}

/// How a block operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockStatus {
    /// Done.
    Ok,
    /// The backend reported an I/O error (`BLKIF_RSP_ERROR`).
    IoError,
    /// The operation is not supported by the backend (`BLKIF_RSP_EOPNOTSUPP`, or not offered).
    NotSupported,
    /// The request cannot be expressed (segments do not match the sector count, or need more
    /// pieces than a request slot holds).
    Invalid,
    /// The backend went away for good, or the device was shut down after an error.
    Disconnected,
    /// Aborted by [`Blkif::abort`] (for example the SCSI abort of a timed-out command).
    Aborted,
    /// Ended by [`Blkif::reset`] (StorPort's bus reset).
    Reset,
}

/// A finished block operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockCompletion {
    /// The tag given at submission.
    pub tag: crate::types::Tag,
    /// How it ended.
    pub status: BlockStatus,
    /// Bytes transferred before the first failure (all of them on success).
    pub transferred: u64,
}

/// A backend protocol violation: the device stops issuing requests until it is reconnected or
/// shut down. No request is completed on the strength of the offending response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineError {
    /// A response `id` names no request ever issued in that slot.
    UnknownId {
        /// The id.
        id: u64,
    },
    /// A response `id` names a request already completed.
    DuplicateId {
        /// The id.
        id: u64,
    },
    /// The response's operation is not the request's.
    WrongOperation {
        /// The id.
        id: u64,
        /// The operation sent.
        expected: u8,
        /// The operation in the response.
        got: u8,
    },
    /// The status is none of OKAY, ERROR, EOPNOTSUPP.
    BadStatus {
        /// The id.
        id: u64,
        /// The status.
        status: i16,
    },
    /// The layout probe's responses matched neither layout.
    ProbeFailed {
        /// The id that came back.
        id: u64,
    },
    /// A response came back on another queue than its request was issued on.
    WrongQueue {
        /// The id.
        id: u64,
        /// The queue the request went out on.
        issued_on: u8,
        /// The queue the response came back on.
        answered_on: u8,
    },
    /// The ring's indices were impossible (the ring is poisoned).
    Ring(xen_ring::RingError),
    /// The backend kept a page mapped past [`Timeouts::revocation`] after its request was
    /// answered, aborted or the ring torn down.
    GrantHeld {
        /// The grant reference.
        gref: GrantRef,
    },
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::UnknownId { id } => write!(f, "response for unknown id {id:#x}"),
            EngineError::DuplicateId { id } => write!(f, "second response for id {id:#x}"),
            EngineError::WrongOperation { id, expected, got } => write!(
                f,
                "response for id {id:#x} has operation {got}, request had {expected}"
            ),
            EngineError::BadStatus { id, status } => {
                write!(f, "response for id {id:#x} has impossible status {status}")
            }
            EngineError::ProbeFailed { id } => {
                write!(f, "layout probe answered with unexpected id {id:#x}")
            }
            EngineError::WrongQueue {
                id,
                issued_on,
                answered_on,
            } => write!(
                f,
                "response for id {id:#x} came back on queue {answered_on}, request went out on \
                 queue {issued_on}"
            ),
            EngineError::Ring(e) => write!(f, "ring: {e}"),
            EngineError::GrantHeld { gref } => {
                write!(
                    f,
                    "backend kept grant {gref} mapped past the revocation limit"
                )
            }
        }
    }
}

/// The engine's counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counters {
    /// Block operations accepted.
    pub requests: u64,
    /// Ring requests issued (a split operation counts each part).
    pub ring_requests: u64,
    /// Ring requests issued on each queue.
    pub queue_requests: [u64; MAX_QUEUES as usize],
    /// Data segments issued.
    pub segments: u64,
    /// Segments that went through a bounce page.
    pub bounced_segments: u64,
    /// Indirect ring requests issued.
    pub indirect_requests: u64,
    /// Persistent pages reused with their existing grant.
    pub persistent_hits: u64,
    /// Operations that completed with an error status, plus protocol violations.
    pub errors: u64,
    /// Operations queued again after a reconnect.
    pub resubmitted: u64,
    /// Grant revocations deferred because the backend still mapped the page.
    pub deferred_revocations: u64,
    /// Deferred revocations that succeeded on a later try.
    pub revocations_completed: u64,
    /// Pages given up on (the backend kept them mapped too long, or the grant table took the
    /// reference over): never reused.
    pub leaked_pages: u64,
    /// Operations ended by [`Blkif::abort`] or [`Blkif::reset`].
    pub aborted: u64,
    /// The layout in use, once probed.
    pub layout: Option<Layout>,
}

impl Counters {
    /// All zero.
    pub const ZERO: Counters = Counters {
        requests: 0,
        ring_requests: 0,
        queue_requests: [0; MAX_QUEUES as usize],
        segments: 0,
        bounced_segments: 0,
        indirect_requests: 0,
        persistent_hits: 0,
        errors: 0,
        resubmitted: 0,
        deferred_revocations: 0,
        revocations_completed: 0,
        leaked_pages: 0,
        aborted: 0,
        layout: None,
    };
}

impl Default for Counters {
    fn default() -> Self {
        Self::ZERO
    }
}
