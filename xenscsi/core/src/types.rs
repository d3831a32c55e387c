//! The vocabulary shared by the engine and the StorPort shell.

use xen_abi::vscsiif::{VSCSIIF_MAX_COMMAND_SIZE, VSCSIIF_SENSE_BUFFERSIZE};

use crate::luns::Address;

/// Size of a guest page, the unit of the data buffer's segments.
pub const PAGE_SIZE: usize = 4096;

/// An opaque tag the shell attaches to a request and gets back with its completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(pub u64);

/// One piece of a request's data buffer: `length` bytes at `offset` within guest frame `frame`.
/// vscsiif segments carry an offset and a length, so any byte-granular piece goes to the backend
/// as it is (no bounce buffer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Guest frame number of the page.
    pub frame: u64,
    /// Byte offset within the page.
    pub offset: u16,
    /// Byte count within the page (at least 1; `offset + length` at most [`PAGE_SIZE`]).
    pub length: u16,
}

/// Which way data moves for a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataDirection {
    /// No data phase.
    None,
    /// Device to memory (reads, INQUIRY, READ POSITION, …).
    FromDevice,
    /// Memory to device (writes, MODE SELECT, …).
    ToDevice,
}

/// A SCSI request from the storage port driver.
///
/// The segment list and the CDB are borrowed for the submit call only: the engine copies the
/// CDB into the ring request and grants each segment's page; the buffer itself stays the
/// shell's, and the shell learns that the backend is done with it from the completion carrying
/// the same tag.
#[derive(Clone, Copy, Debug)]
pub struct ScsiRequest<'a> {
    /// Returned with the completion.
    pub tag: Tag,
    /// The LUN addressed, as the adapter reports it.
    pub address: Address,
    /// The command descriptor block, 1 to 16 bytes, passed to the backend untouched.
    pub cdb: &'a [u8],
    /// The data phase's direction.
    pub direction: DataDirection,
    /// The data buffer (empty with [`DataDirection::None`]).
    pub segments: &'a [Segment],
    /// How long the command may take before it is aborted, in milliseconds (tape rewinds and
    /// spacing run for minutes: the shell passes the SRB's `TimeOutValue`); 0 uses
    /// [`EngineConfig::default_timeout_ms`](crate::EngineConfig::default_timeout_ms).
    pub timeout_ms: u64,
}

impl ScsiRequest<'_> {
    /// The bytes the data buffer holds.
    pub fn transfer_length(&self) -> u64 {
        self.segments.iter().map(|s| u64::from(s.length)).sum()
    }
}

/// Why a request was refused at submission (nothing was granted or sent; the caller still owns
/// the buffer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// Every request slot or ring slot is busy: report BUSY / queue full and retry after a
    /// completion.
    Busy,
    /// The CDB is empty or longer than 16 bytes.
    BadCdb {
        /// Its length.
        len: usize,
    },
    /// A segment is empty or runs past its page, or the direction and the segment list
    /// disagree (data without a direction or a direction without data).
    BadSegments,
    /// The transfer needs more segments than one vscsiif request carries with what the backend
    /// negotiated. The engine never splits a command (a tape block split in two is two blocks
    /// on tape): the shell advertises [`Limits`](crate::negotiate::Limits) so that the class
    /// driver splits disk transfers itself, and a larger tape block is refused here.
    TooLarge {
        /// Segments the transfer needs.
        segments: usize,
        /// Segments one request carries.
        max: usize,
    },
    /// No LUN at that address (never reported, or hot-removed).
    NoSuchLun,
    /// No grant reference was free; retry after a completion.
    OutOfGrants,
    /// The device is not connected, failed, or shut down.
    Unavailable,
}

/// The host byte of a response (`XEN_VSCSIIF_RSLT_HOST_*`), decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostStatus {
    /// No transport error.
    Ok,
    /// Could not connect to the device (`NO_CONNECT`).
    NoConnect,
    /// Bus busy (`BUS_BUSY`).
    BusBusy,
    /// Timed out in the backend (`TIME_OUT`).
    TimeOut,
    /// No such target (`BAD_TARGET`).
    BadTarget,
    /// Aborted (`ABORT`): the answer to an aborted command.
    Aborted,
    /// Parity error.
    Parity,
    /// Internal error of the backend's host (`ERROR`).
    Error,
    /// Reset by somebody (`RESET`).
    Reset,
    /// Any other defined host code (bad interrupt, passthrough, soft error, retry, requeue,
    /// transport, target, nexus, allocation, medium, marginal): the raw value.
    Other(u8),
}

impl HostStatus {
    /// Decodes the host byte.
    pub fn from_byte(b: u8) -> Self {
        match b {
            0 => HostStatus::Ok,
            1 => HostStatus::NoConnect,
            2 => HostStatus::BusBusy,
            3 => HostStatus::TimeOut,
            4 => HostStatus::BadTarget,
            5 => HostStatus::Aborted,
            6 => HostStatus::Parity,
            7 => HostStatus::Error,
            8 => HostStatus::Reset,
            other => HostStatus::Other(other),
        }
    }
}

/// SCSI status GOOD.
pub const STATUS_GOOD: u8 = 0x00;
/// SCSI status CHECK CONDITION.
pub const STATUS_CHECK_CONDITION: u8 = 0x02;

/// Sense data exactly as the backend returned it (at most 96 bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SenseBuffer {
    bytes: [u8; VSCSIIF_SENSE_BUFFERSIZE],
    len: u8,
}

impl core::fmt::Debug for SenseBuffer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("SenseBuffer")
            .field(&self.as_bytes())
            .finish()
    }
}

impl SenseBuffer {
    /// No sense data.
    pub const EMPTY: SenseBuffer = SenseBuffer {
        bytes: [0; VSCSIIF_SENSE_BUFFERSIZE],
        len: 0,
    };

    /// Copies `data`; `None` when longer than 96 bytes.
    pub fn from_slice(data: &[u8]) -> Option<Self> {
        if data.len() > VSCSIIF_SENSE_BUFFERSIZE {
            return None;
        }
        let mut s = SenseBuffer::EMPTY;
        s.bytes[..data.len()].copy_from_slice(data);
        s.len = data.len() as u8;
        Some(s)
    }

    /// The valid bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Decodes the sense (fixed or descriptor format).
    pub fn decode(&self) -> Option<crate::sense::Sense> {
        crate::sense::Sense::parse(self.as_bytes())
    }
}

/// How a request ended, from the engine's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The backend answered: see the SCSI status, host status, sense and residual.
    Answered,
    /// The engine completed the command itself after an accepted LUN reset: the backend reset
    /// the LUN and the command was lost there (map to a bus-reset status; a tape's position is
    /// unknown).
    Reset,
    /// The connection to the backend ended (disconnect, backend restart, error state) before
    /// the command was answered. Tape commands are not idempotent (a replayed WRITE or SPACE
    /// moves the tape), so nothing is resubmitted: the class driver decides. Also a request
    /// that could not get all its grants (nothing was sent) while a page granted for it was
    /// already mapped by the backend: it completes this way once the page is free.
    Disconnected,
}

/// What the engine reports for a finished request. Every accepted request gets exactly one,
/// and only after every grant on its buffer is revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The request's tag.
    pub tag: Tag,
    /// How it ended.
    pub outcome: Outcome,
    /// The SCSI status byte ([`STATUS_GOOD`], [`STATUS_CHECK_CONDITION`], …).
    pub scsi_status: u8,
    /// The host byte, decoded.
    pub host: HostStatus,
    /// The driver byte (bits 24–31 of `rslt`, Linux's `DRIVER_*`), raw.
    pub driver: u8,
    /// Sense data as returned (validated: at most 96 bytes).
    pub sense: SenseBuffer,
    /// Bytes of the transfer not transferred (validated: at most the transfer length).
    pub residual: u32,
    /// The transfer length of the request.
    pub transfer_length: u32,
    /// Whether the command timed out (an abort or reset followed).
    pub timed_out: bool,
}

impl Completion {
    /// Bytes transferred.
    pub fn transferred(&self) -> u32 {
        self.transfer_length - self.residual
    }

    pub(crate) fn synthetic(tag: Tag, outcome: Outcome, transfer_length: u32) -> Self {
        let host = match outcome {
            Outcome::Reset => HostStatus::Reset,
            _ => HostStatus::NoConnect,
        };
        Completion {
            tag,
            outcome,
            scsi_status: STATUS_GOOD,
            host,
            driver: 0,
            sense: SenseBuffer::EMPTY,
            residual: transfer_length,
            transfer_length,
            timed_out: false,
        }
    }
}

/// Result of a task-management function ([`Vscsi::abort`](crate::Vscsi::abort),
/// [`Vscsi::reset_lun`](crate::Vscsi::reset_lun)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TmCompletion {
    /// The tag given with the function.
    pub tag: Tag,
    /// Whether the backend reported success (`XEN_VSCSIIF_RSLT_RESET_SUCCESS`).
    pub success: bool,
}

/// The longest CDB.
pub const MAX_CDB: usize = VSCSIIF_MAX_COMMAND_SIZE;
