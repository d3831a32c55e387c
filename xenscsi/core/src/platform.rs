//! The platform as the engine sees it: grants, the event channel and log, guest memory.
//!
//! These traits have the shape of the block core's (`xenvbd_core::blkif::{Grants, Events}`,
//! `xenvbd_core::GuestMemory`) with one difference that matters for passthrough: ending a grant
//! here never hands the reference to a background retry the engine cannot observe. A data page
//! of a SCSI command is returned to its owner (the completion) only when the engine has seen its
//! grant revoked, so [`Grants::end`] says whether the page is still mapped and leaves the
//! reference granted in that case; the engine asks again from [`Vscsi::tick`](crate::Vscsi::tick)
//! and holds the completion meanwhile.

use xen_abi::grant_table::GrantFlags;
use xen_abi::types::{DomId, GrantRef};
use xenpci_core::grant_table::{GrantEntries, GrantError, GrantTable, Revocation};

use crate::engine::EngineError;

/// What [`Grants::end`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndGrant {
    /// Access is revoked; the page is the guest's alone again.
    Revoked,
    /// The backend still maps the page: nothing changed, the reference is still granted, and
    /// the caller asks again later.
    StillMapped,
    /// The reference was handed to the grant table's own deferred list (the backend mapped the
    /// page in the instant between the check and the revocation). The page counts as mapped
    /// until [`Grants::parked`] reports no parked revocation left.
    Parked,
}

/// Granting guest frames to the backend domain.
pub trait Grants {
    /// Grants `domid` access to `frame`, read-only when `readonly`.
    fn grant(&mut self, domid: DomId, frame: u64, readonly: bool) -> Result<GrantRef, GrantError>;
    /// Ends access through `gref` unless the backend maps the page (see [`EndGrant`]).
    fn end(&mut self, gref: GrantRef) -> Result<EndGrant, GrantError>;
    /// Retries parked revocations and returns how many are still parked.
    fn parked(&mut self) -> u32;
}

/// Revocations retried per [`Grants::parked`] call: bounded for dispatch level.
const RETRY_BUDGET: u32 = 64;

impl<E: GrantEntries> Grants for GrantTable<'_, E> {
    fn grant(&mut self, domid: DomId, frame: u64, readonly: bool) -> Result<GrantRef, GrantError> {
        self.grant_access(domid, frame, readonly)
    }

    fn end(&mut self, gref: GrantRef) -> Result<EndGrant, GrantError> {
        let mapped = GrantFlags::READING.bits() | GrantFlags::WRITING.bits();
        if gref >= self.capacity() {
            return Err(GrantError::NotGranted { gref });
        }
        if self.entries().load_flags(gref) & mapped != 0 {
            return Ok(EndGrant::StillMapped);
        }
        Ok(match self.end_access(gref)? {
            Revocation::Revoked => EndGrant::Revoked,
            Revocation::Deferred => EndGrant::Parked,
        })
    }

    fn parked(&mut self) -> u32 {
        self.retry_deferred(RETRY_BUDGET);
        self.deferred_count()
    }
}

/// Something worth a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogEvent {
    /// The engine entered the error state.
    Error(EngineError),
    /// A command passed its deadline; an abort is on its way.
    TimedOut {
        /// The request id of the command.
        rqid: u16,
    },
    /// Task management escalated to a LUN reset.
    Reset {
        /// The bus/target/LUN reset.
        address: crate::luns::Address,
    },
    /// Consecutive protocol violations reached the limit: the device stays failed.
    GaveUp,
}

/// The event channel and the log.
pub trait Events {
    /// Notifies the backend.
    fn notify(&mut self);
    /// Records an event; the default ignores it.
    fn log(&mut self, event: LogEvent) {
        let _ = event;
    }
}

/// Guest memory by frame: the engine writes indirect segment pages through it.
pub trait GuestMemory {
    /// Copies `data` into guest frame `frame` at `offset` (within the page).
    fn write(&mut self, frame: u64, offset: usize, data: &[u8]);
}

/// What an engine call may use of the platform.
#[derive(Debug)]
pub struct Io<'a, G, N, M> {
    /// The grant table.
    pub grants: &'a mut G,
    /// The event channel and log.
    pub events: &'a mut N,
    /// Guest memory, for indirect pages.
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
