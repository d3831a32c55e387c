//! SCSI presentation of a virtual block device: a direct-access disk (SBC) or a CD-ROM (MMC).
//!
//! [`Disk`] decodes each [`ScsiRequest`]'s CDB. Commands the core answers itself (INQUIRY, MODE
//! SENSE, READ CAPACITY, …) complete at once, their response data written into the request's
//! data buffer through [`GuestMemory`]; commands that need the backend (reads, writes, cache
//! flushes, discards) become a [`BlockRequest`]: a short list of [`BlockOp`]s in 512-byte
//! sectors for the blkif engine, and a [`PendingCommand`] that turns the engine's
//! [`BlockOutcome`] into the request's [`ScsiCompletion`].
//!
//! Conventions:
//!
//! * Response data is truncated to the smaller of the CDB's allocation length and the data
//!   buffer; [`ScsiCompletion::transferred`] counts the bytes actually written, so the glue's
//!   residual is `transfer_length - transferred`.
//! * Data for a READ lands at the start of the buffer, data for a WRITE is taken from its
//!   start. A buffer smaller than the CDB's transfer length is refused (ILLEGAL REQUEST /
//!   INVALID FIELD IN CDB); a larger one is used in part and the residual reported.
//! * The write cache: a backend with `feature-flush-cache` is presented with a write-back cache
//!   (caching page WCE = 1); SYNCHRONIZE CACHE becomes [`BlockOp::Flush`] and the FUA bit is
//!   passed on in [`BlockOp::Write`] — the engine honours it (with a native FUA or a write
//!   followed by a flush). Without that feature no write cache is reported, SYNCHRONIZE CACHE
//!   completes GOOD at once and FUA is dropped: every write is already write-through. DPO is
//!   a cache hint and ignored; FUA on reads is satisfied by the backend's coherent cache.
//! * Sense data is fixed format ([`sense::fixed_sense`]); the sense-key-specific field pointer
//!   is not reported ([`Sense`] has no field for it).
//! * CD-ROMs use 2048-byte logical blocks whatever the backend's sector size; a capacity that
//!   is not a multiple of 2048 bytes loses its tail.
//! * Unit attentions: [`Disk::set_capacity`] raises CAPACITY DATA HAS CHANGED on a disk and
//!   NOT READY TO READY CHANGE, MEDIUM MAY HAVE CHANGED on a CD-ROM that has a medium after the
//!   change; [`Disk::reset`] raises POWER ON, RESET, OR BUS DEVICE RESET OCCURRED. A new `Disk`
//!   starts without one: the VBD did not power-cycle, and the crash-dump and boot paths do not
//!   retry a first command well. INQUIRY, REPORT LUNS, REQUEST SENSE (and on a CD-ROM GET
//!   CONFIGURATION and GET EVENT STATUS NOTIFICATION) never report one; any other command
//!   reports the highest-priority one pending and clears it, REQUEST SENSE returns and clears
//!   it.

mod buffer;
mod mmc;
mod sbc;
pub mod sense;
mod spc;
#[cfg(test)]
mod tests;

use crate::types::{
    validate_segments, BlockOp, DataDirection, DiskInfo, GuestMemory, ScsiCompletion, ScsiRequest,
    ScsiStatus, Sense, Tag,
};
use buffer::{copy_to_guest, Response};
use sense::{ScsiError, ScsiResult};

/// The most block operations one command becomes (an UNMAP's descriptors; reported as the
/// MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT).
pub const MAX_OPS: usize = 16;

/// The longest serial number kept (VPD page 80h).
pub const SERIAL_MAX: usize = 32;

/// The IEEE company id used in the NAA designator of VPD page 83h (the Xen project's OUI).
pub const XEN_OUI: u32 = 0x00_16_3e;

/// Operation codes the presentation layer knows.
pub mod opcode {
    /// TEST UNIT READY.
    pub const TEST_UNIT_READY: u8 = 0x00;
    /// REQUEST SENSE.
    pub const REQUEST_SENSE: u8 = 0x03;
    /// READ (6).
    pub const READ_6: u8 = 0x08;
    /// WRITE (6).
    pub const WRITE_6: u8 = 0x0a;
    /// INQUIRY.
    pub const INQUIRY: u8 = 0x12;
    /// MODE SENSE (6).
    pub const MODE_SENSE_6: u8 = 0x1a;
    /// START STOP UNIT.
    pub const START_STOP_UNIT: u8 = 0x1b;
    /// PREVENT ALLOW MEDIUM REMOVAL.
    pub const PREVENT_ALLOW_MEDIUM_REMOVAL: u8 = 0x1e;
    /// READ CAPACITY (10).
    pub const READ_CAPACITY_10: u8 = 0x25;
    /// READ (10).
    pub const READ_10: u8 = 0x28;
    /// WRITE (10).
    pub const WRITE_10: u8 = 0x2a;
    /// VERIFY (10).
    pub const VERIFY_10: u8 = 0x2f;
    /// SYNCHRONIZE CACHE (10).
    pub const SYNCHRONIZE_CACHE_10: u8 = 0x35;
    /// UNMAP (direct-access devices).
    pub const UNMAP: u8 = 0x42;
    /// READ TOC/PMA/ATIP (MMC).
    pub const READ_TOC: u8 = 0x43;
    /// GET CONFIGURATION (MMC).
    pub const GET_CONFIGURATION: u8 = 0x46;
    /// GET EVENT STATUS NOTIFICATION (MMC).
    pub const GET_EVENT_STATUS_NOTIFICATION: u8 = 0x4a;
    /// READ DISC INFORMATION (MMC).
    pub const READ_DISC_INFORMATION: u8 = 0x51;
    /// READ TRACK INFORMATION (MMC).
    pub const READ_TRACK_INFORMATION: u8 = 0x52;
    /// MODE SENSE (10).
    pub const MODE_SENSE_10: u8 = 0x5a;
    /// READ (16).
    pub const READ_16: u8 = 0x88;
    /// WRITE (16).
    pub const WRITE_16: u8 = 0x8a;
    /// VERIFY (16).
    pub const VERIFY_16: u8 = 0x8f;
    /// SYNCHRONIZE CACHE (16).
    pub const SYNCHRONIZE_CACHE_16: u8 = 0x91;
    /// WRITE SAME (16).
    pub const WRITE_SAME_16: u8 = 0x93;
    /// SERVICE ACTION IN (16) (READ CAPACITY (16) is its service action 10h).
    pub const SERVICE_ACTION_IN_16: u8 = 0x9e;
    /// REPORT LUNS.
    pub const REPORT_LUNS: u8 = 0xa0;
    /// READ (12).
    pub const READ_12: u8 = 0xa8;
    /// WRITE (12).
    pub const WRITE_12: u8 = 0xaa;
    /// GET PERFORMANCE (MMC).
    pub const GET_PERFORMANCE: u8 = 0xac;
    /// SET CD SPEED (MMC).
    pub const SET_CD_SPEED: u8 = 0xbb;
    /// MECHANISM STATUS (MMC).
    pub const MECHANISM_STATUS: u8 = 0xbd;
}

/// How the unit identifies itself in INQUIRY data and VPD pages 80h and 83h.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    vendor: [u8; 8],
    product: [u8; 16],
    revision: [u8; 4],
    serial: [u8; SERIAL_MAX],
    serial_len: u8,
    naa: u64,
}

/// Copies `s` into a space-padded field, replacing bytes that are not printable ASCII.
fn ascii_field<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [b' '; N];
    for (o, &b) in out.iter_mut().zip(s.as_bytes()) {
        *o = if (0x20..0x7f).contains(&b) { b } else { b'_' };
    }
    out
}

impl Identity {
    /// An identity with vendor `XEN`, product `PV DISK` (or `PV CDROM` for a CD-ROM), revision
    /// `1.0`, the unit serial number `serial` (VPD 80h; at most [`SERIAL_MAX`] bytes kept,
    /// non-printable bytes replaced by `_`) and `unique`, the stable identity of the VBD (for
    /// example its backend path and device id, or a VDI UUID when the toolstack provides one).
    ///
    /// VPD page 83h carries a T10 vendor id designator (`XEN`, the product id and the serial)
    /// and an NAA IEEE Registered (type 5) designator: the Xen OUI 00-16-3E followed by 36 bits
    /// of an FNV-1a hash of `unique`. Two VBDs of one guest thus get distinct designators that
    /// stay the same across boots as long as `unique` does.
    pub fn new(info: &DiskInfo, serial: &str, unique: &[u8]) -> Self {
        let mut s = [0u8; SERIAL_MAX];
        let mut len = 0;
        for &b in serial.as_bytes().iter().take(SERIAL_MAX) {
            s[len] = if (0x21..0x7f).contains(&b) { b } else { b'_' };
            len += 1;
        }
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in unique {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        let folded = (hash ^ (hash >> 36)) & ((1 << 36) - 1);
        Identity {
            vendor: ascii_field("XEN"),
            product: ascii_field(if info.cdrom { "PV CDROM" } else { "PV DISK" }),
            revision: ascii_field("1.0"),
            serial: s,
            serial_len: len as u8,
            naa: (5u64 << 60) | (u64::from(XEN_OUI) << 36) | folded,
        }
    }

    /// Replaces the product identification (16 bytes, space-padded).
    pub fn with_product(mut self, product: &str) -> Self {
        self.product = ascii_field(product);
        self
    }

    /// Replaces the product revision level (4 bytes, space-padded).
    pub fn with_revision(mut self, revision: &str) -> Self {
        self.revision = ascii_field(revision);
        self
    }

    /// The unit serial number as reported.
    pub fn serial(&self) -> &[u8] {
        &self.serial[..usize::from(self.serial_len)]
    }

    /// The 8-byte NAA designator as reported.
    pub fn naa(&self) -> u64 {
        self.naa
    }
}

/// Everything a [`Disk`] is built from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskConfig {
    /// What the backend reported.
    pub info: DiskInfo,
    /// INQUIRY and VPD identity.
    pub identity: Identity,
    /// The most bytes one request may move (the engine's limit; 0 for none). Reported as the
    /// MAXIMUM TRANSFER LENGTH of the block limits page; longer READs and WRITEs are refused.
    pub max_transfer_bytes: u32,
    /// The most logical blocks one UNMAP or WRITE SAME may discard (0 for no limit).
    pub max_unmap_blocks: u32,
    /// MEDIUM ROTATION RATE of the block device characteristics page: 1 for a non-rotating
    /// medium (the default), 0 for not reported, otherwise revolutions per minute.
    pub rotation_rate: u16,
}

impl DiskConfig {
    /// A configuration with no transfer or unmap limit and a non-rotating medium.
    pub fn new(info: DiskInfo, identity: Identity) -> Self {
        DiskConfig {
            info,
            identity,
            max_transfer_bytes: 0,
            max_unmap_blocks: 0,
            rotation_rate: 1,
        }
    }
}

/// What became of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
// A request slot's worth of operations travels by value: there is no heap to box it on.
#[allow(clippy::large_enum_variant)]
pub enum Action {
    /// The request is done: hand the completion back to the port driver.
    Complete(ScsiCompletion),
    /// The request needs the backend: run the operations, then complete it through
    /// [`BlockRequest::pending`].
    Block(BlockRequest),
}

/// The kind of command a [`BlockRequest`] carries out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandKind {
    /// A READ: data from the backend into the buffer.
    Read,
    /// A WRITE: data from the buffer to the backend.
    Write,
    /// SYNCHRONIZE CACHE (or START STOP UNIT stopping the unit).
    Flush,
    /// UNMAP or WRITE SAME with UNMAP.
    Discard,
}

/// Block operations for the engine, with what completing the request needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockRequest {
    ops: [BlockOp; MAX_OPS],
    count: u8,
    pending: PendingCommand,
}

impl BlockRequest {
    fn new(pending: PendingCommand) -> Self {
        BlockRequest {
            ops: [BlockOp::Flush; MAX_OPS],
            count: 0,
            pending,
        }
    }

    fn single(pending: PendingCommand, op: BlockOp) -> Self {
        let mut r = Self::new(pending);
        r.push(op);
        r
    }

    fn push(&mut self, op: BlockOp) {
        self.ops[usize::from(self.count)] = op;
        self.count += 1;
        self.pending.outstanding = self.count;
    }

    /// The operations, to be run in order (for a discard list, in any order). A read or write
    /// is always alone and moves `sectors * 512` bytes at the start of the data buffer.
    pub fn ops(&self) -> &[BlockOp] {
        &self.ops[..usize::from(self.count)]
    }

    /// The request's tag.
    pub fn tag(&self) -> Tag {
        self.pending.tag
    }

    /// What the engine keeps to complete the request (small and `Copy`).
    pub fn pending(&self) -> PendingCommand {
        self.pending
    }
}

/// How the engine finished a [`BlockRequest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockOutcome {
    /// Every operation succeeded.
    Success,
    /// An operation failed.
    Failed {
        /// Why.
        error: BlockError,
        /// The first 512-byte sector known to have failed (the start of the failing blkif
        /// request will do), if the engine knows it.
        sector: Option<u64>,
    },
}

/// Why a block operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockError {
    /// The backend answered `BLKIF_RSP_ERROR`.
    Io,
    /// The backend answered `BLKIF_RSP_EOPNOTSUPP`.
    NotSupported,
    /// The request could not be issued now (a full queue, a reconnection): reported as BUSY
    /// so the port driver retries it.
    Busy,
    /// The engine cannot express the request (its buffer needs more pieces than a request
    /// slot holds): HARDWARE ERROR / INTERNAL TARGET FAILURE.
    Invalid,
    /// The backend is gone for good: HARDWARE ERROR / LOGICAL UNIT FAILURE.
    Gone,
    /// Ended by an abort or a device reset: TASK ABORTED, no data.
    Aborted,
}

impl BlockOutcome {
    /// The outcome of `op` as the blkif engine reported it in `completion`; the failing sector
    /// is the first one after the bytes transferred.
    pub fn from_blkif(op: &BlockOp, completion: &crate::blkif::BlockCompletion) -> Self {
        use crate::blkif::BlockStatus;
        let error = match completion.status {
            BlockStatus::Ok => return BlockOutcome::Success,
            BlockStatus::IoError => BlockError::Io,
            BlockStatus::NotSupported => BlockError::NotSupported,
            BlockStatus::Invalid => BlockError::Invalid,
            BlockStatus::Disconnected => BlockError::Gone,
            BlockStatus::Aborted | BlockStatus::Reset => BlockError::Aborted,
        };
        let sector = match *op {
            BlockOp::Read { sector, .. }
            | BlockOp::Write { sector, .. }
            | BlockOp::Discard { sector, .. } => {
                Some(sector.saturating_add(completion.transferred / 512))
            }
            BlockOp::Flush => None,
        };
        BlockOutcome::Failed { error, sector }
    }
}

/// A command waiting for the engine; turns the engine's outcome into the completion.
///
/// With one operation, [`PendingCommand::complete`] gives the completion. With several (an
/// UNMAP's discards), feed each operation's outcome to [`PendingCommand::record`]: it keeps
/// the first failure and returns the completion with the last outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingCommand {
    tag: Tag,
    kind: CommandKind,
    lba: u64,
    blocks: u64,
    block_size: u32,
    outstanding: u8,
    failure: Option<BlockOutcome>,
}

impl PendingCommand {
    /// The command's kind.
    pub fn kind(&self) -> CommandKind {
        self.kind
    }

    /// The request's tag.
    pub fn tag(&self) -> Tag {
        self.tag
    }

    /// Operations whose outcome [`PendingCommand::record`] still waits for.
    pub fn outstanding(&self) -> usize {
        usize::from(self.outstanding)
    }

    /// Records one operation's outcome; returns the completion once every operation has
    /// reported (the first failure decides it).
    pub fn record(&mut self, outcome: BlockOutcome) -> Option<ScsiCompletion> {
        if self.failure.is_none() && outcome != BlockOutcome::Success {
            self.failure = Some(outcome);
        }
        self.outstanding = self.outstanding.saturating_sub(1);
        if self.outstanding != 0 {
            return None;
        }
        Some(self.complete(self.failure.unwrap_or(BlockOutcome::Success)))
    }

    /// The completion for `outcome`.
    ///
    /// Success transfers every byte of a read or write. A failed read reports MEDIUM ERROR /
    /// UNRECOVERED READ ERROR, a failed write, flush or discard MEDIUM ERROR / WRITE ERROR;
    /// for reads, writes and discards the INFORMATION field holds the first failing LBA (the
    /// command's first LBA when the engine does not know the sector) and, for reads and
    /// writes, the blocks before it count as transferred. A backend refusing the operation
    /// gives ILLEGAL REQUEST / INVALID COMMAND OPERATION CODE, a busy engine BUSY (see
    /// [`BlockError`] for the rest).
    pub fn complete(&self, outcome: BlockOutcome) -> ScsiCompletion {
        let (error, sector) = match outcome {
            BlockOutcome::Success => {
                let bytes = match self.kind {
                    CommandKind::Read | CommandKind::Write => {
                        self.blocks * u64::from(self.block_size)
                    }
                    CommandKind::Flush | CommandKind::Discard => 0,
                };
                return good(self.tag, u32::try_from(bytes).unwrap_or(u32::MAX));
            }
            BlockOutcome::Failed { error, sector } => (error, sector),
        };
        match error {
            BlockError::Busy => ScsiCompletion {
                tag: self.tag,
                status: ScsiStatus::Busy,
                sense: Sense::default(),
                transferred: 0,
            },
            BlockError::Aborted => ScsiCompletion {
                tag: self.tag,
                status: ScsiStatus::TaskAborted,
                sense: Sense::default(),
                transferred: 0,
            },
            BlockError::NotSupported => check(self.tag, sense::INVALID_OPCODE.sense()),
            BlockError::Invalid => check(self.tag, sense::INTERNAL_TARGET_FAILURE.sense()),
            BlockError::Gone => check(self.tag, sense::LOGICAL_UNIT_FAILURE.sense()),
            BlockError::Io => {
                let per_block = u64::from(self.block_size / 512).max(1);
                let failed = sector.map(|s| s / per_block);
                let (code, lba) = match self.kind {
                    CommandKind::Read => (sense::UNRECOVERED_READ_ERROR, Some(self.lba)),
                    CommandKind::Write => (sense::WRITE_ERROR, Some(self.lba)),
                    CommandKind::Discard => (sense::WRITE_ERROR, failed.or(Some(self.lba))),
                    CommandKind::Flush => (sense::WRITE_ERROR, None),
                };
                let Some(start) = lba else {
                    return check(self.tag, code.sense());
                };
                let mut c;
                if self.kind == CommandKind::Discard {
                    c = check(self.tag, code.sense_with_information(start));
                } else {
                    let end = start + self.blocks;
                    let at = failed.filter(|f| (start..end).contains(f)).unwrap_or(start);
                    c = check(self.tag, code.sense_with_information(at));
                    let done = (at - start) * u64::from(self.block_size);
                    c.transferred = u32::try_from(done).unwrap_or(u32::MAX);
                }
                c
            }
        }
    }
}

fn good(tag: Tag, transferred: u32) -> ScsiCompletion {
    ScsiCompletion {
        tag,
        status: ScsiStatus::Good,
        sense: Sense::default(),
        transferred,
    }
}

fn check(tag: Tag, sense: Sense) -> ScsiCompletion {
    ScsiCompletion {
        tag,
        status: ScsiStatus::CheckCondition,
        sense,
        transferred: 0,
    }
}

/// What a command handler produced.
pub(crate) enum Done {
    /// GOOD without data.
    Good,
    /// GOOD with response data, truncated to `alloc` bytes.
    Data(Response, usize),
    /// Needs the backend.
    Block(BlockRequest),
}

/// Pending unit attentions, by priority (lowest bit first).
const UA_POWER_ON: u8 = 1 << 0;
const UA_MEDIUM_CHANGED: u8 = 1 << 1;
const UA_CAPACITY_CHANGED: u8 = 1 << 2;
const UA_MODE_PARAMETERS_CHANGED: u8 = 1 << 3;

/// Media event codes of GET EVENT STATUS NOTIFICATION.
const MEDIA_EVENT_NONE: u8 = 0;
const MEDIA_EVENT_NEW_MEDIA: u8 = 2;
const MEDIA_EVENT_REMOVAL: u8 = 3;

/// A VBD presented as SCSI logical unit 0.
#[derive(Clone, Copy, Debug)]
pub struct Disk {
    cfg: DiskConfig,
    attention: u8,
    media_event: u8,
    prevent_removal: bool,
}

/// The request being executed, with its validated data buffer.
pub(crate) struct Cmd<'r, 'a> {
    pub(crate) req: &'r ScsiRequest<'a>,
    pub(crate) cdb: &'a [u8],
}

impl Cmd<'_, '_> {
    /// Bytes available for data from the device.
    pub(crate) fn data_in_len(&self) -> usize {
        if self.req.direction == DataDirection::FromDevice {
            self.req.transfer_length as usize
        } else {
            0
        }
    }

    /// Bytes available for data to the device.
    pub(crate) fn data_out_len(&self) -> usize {
        if self.req.direction == DataDirection::ToDevice {
            self.req.transfer_length as usize
        } else {
            0
        }
    }
}

/// The CDB length an operation code's group implies (0 for groups without one).
fn cdb_len(op: u8) -> usize {
    match op >> 5 {
        0 => 6,
        1 | 2 => 10,
        4 => 16,
        5 => 12,
        _ => 0,
    }
}

impl Disk {
    /// A unit presenting `cfg`.
    pub fn new(cfg: DiskConfig) -> Self {
        Disk {
            cfg,
            attention: 0,
            media_event: MEDIA_EVENT_NONE,
            prevent_removal: false,
        }
    }

    /// The backend's disk parameters as currently presented.
    pub fn info(&self) -> &DiskInfo {
        &self.cfg.info
    }

    /// The configuration.
    pub fn config(&self) -> &DiskConfig {
        &self.cfg
    }

    /// The logical block size presented: 2048 for a CD-ROM, otherwise the backend's sector
    /// size when it is a power-of-two multiple of 512 (512 if not).
    pub fn block_size(&self) -> u32 {
        if self.cfg.info.cdrom {
            return 2048;
        }
        let lbs = self.cfg.info.logical_block_size;
        if lbs >= 512 && lbs.is_power_of_two() && lbs <= 1 << 16 {
            lbs
        } else {
            512
        }
    }

    /// 512-byte sectors per logical block.
    pub fn sectors_per_block(&self) -> u64 {
        u64::from(self.block_size() / 512)
    }

    /// Capacity in logical blocks.
    pub fn blocks(&self) -> u64 {
        self.cfg.info.sectors / self.sectors_per_block()
    }

    /// Whether a write cache is presented (see the module documentation).
    pub fn write_cache(&self) -> bool {
        let i = &self.cfg.info;
        i.flush && !i.read_only && !i.cdrom
    }

    /// Whether writes are refused.
    pub fn read_only(&self) -> bool {
        self.cfg.info.read_only || self.cfg.info.cdrom
    }

    /// Whether the medium is removable (RMB).
    pub fn removable(&self) -> bool {
        self.cfg.info.removable || self.cfg.info.cdrom
    }

    /// Whether a CD-ROM has no medium (a zero capacity).
    pub fn medium_absent(&self) -> bool {
        self.cfg.info.cdrom && self.blocks() == 0
    }

    /// Whether PREVENT ALLOW MEDIUM REMOVAL currently prevents removal.
    pub fn removal_prevented(&self) -> bool {
        self.prevent_removal
    }

    /// Records a new capacity from the backend (online resize, or a CD-ROM medium change) and
    /// raises the unit attention the change calls for (see the module documentation).
    pub fn set_capacity(&mut self, sectors: u64) {
        if sectors == self.cfg.info.sectors {
            return;
        }
        let had_medium = self.blocks() != 0;
        self.cfg.info.sectors = sectors;
        if self.cfg.info.cdrom {
            if self.blocks() != 0 {
                self.media_event = MEDIA_EVENT_NEW_MEDIA;
                self.attention |= UA_MEDIUM_CHANGED;
            } else if had_medium {
                self.media_event = MEDIA_EVENT_REMOVAL;
            }
        } else {
            self.attention |= UA_CAPACITY_CHANGED;
        }
    }

    /// The backend refused cache flushes it had advertised (the engine logged
    /// `LogEvent::NotSupported` for a flush and stopped issuing them): the write cache is no
    /// longer presented, and MODE PARAMETERS CHANGED tells the initiator to look again.
    pub fn withdraw_flush(&mut self) {
        if self.cfg.info.flush {
            let had_cache = self.write_cache();
            self.cfg.info.flush = false;
            if had_cache {
                self.attention |= UA_MODE_PARAMETERS_CHANGED;
            }
        }
    }

    /// The backend refused discards it had advertised: UNMAP and WRITE SAME with UNMAP are no
    /// longer offered (the provisioning VPD pages change, hence MODE PARAMETERS CHANGED).
    pub fn withdraw_discard(&mut self) {
        if self.cfg.info.discard.take().is_some() {
            self.attention |= UA_MODE_PARAMETERS_CHANGED;
        }
    }

    /// Raises POWER ON, RESET, OR BUS DEVICE RESET OCCURRED (for the glue after a bus or
    /// LUN reset) and allows medium removal again.
    pub fn reset(&mut self) {
        self.attention |= UA_POWER_ON;
        self.prevent_removal = false;
    }

    /// Takes the highest-priority pending unit attention.
    fn take_attention(&mut self) -> Option<sense::SenseCode> {
        let bit = self.attention & self.attention.wrapping_neg();
        self.attention &= !bit;
        match bit {
            UA_POWER_ON => Some(sense::POWER_ON_RESET),
            UA_MEDIUM_CHANGED => Some(sense::MEDIUM_MAY_HAVE_CHANGED),
            UA_CAPACITY_CHANGED => Some(sense::CAPACITY_CHANGED),
            UA_MODE_PARAMETERS_CHANGED => Some(sense::MODE_PARAMETERS_CHANGED),
            _ => None,
        }
    }

    /// Decodes and executes `req`: either it completes now, or it needs the backend.
    pub fn submit<M: GuestMemory + ?Sized>(
        &mut self,
        req: &ScsiRequest<'_>,
        mem: &mut M,
    ) -> Action {
        let tag = req.tag;
        if validate_segments(req.segments, req.transfer_length).is_err() {
            return Action::Complete(check(tag, sense::INTERNAL_TARGET_FAILURE.sense()));
        }
        let cmd = Cmd { req, cdb: req.cdb };
        match self.execute(&cmd, mem) {
            Ok(Done::Good) => Action::Complete(good(tag, 0)),
            Ok(Done::Data(resp, alloc)) => {
                let limit = alloc.min(cmd.data_in_len());
                let n = copy_to_guest(mem, req.segments, limit, resp.bytes());
                Action::Complete(good(tag, n as u32))
            }
            Ok(Done::Block(b)) => Action::Block(b),
            Err(ScsiError(sense)) => Action::Complete(check(tag, sense)),
        }
    }

    fn execute<M: GuestMemory + ?Sized>(
        &mut self,
        cmd: &Cmd<'_, '_>,
        mem: &mut M,
    ) -> ScsiResult<Done> {
        use opcode::*;
        let Some(&op) = cmd.cdb.first() else {
            return Err(sense::INVALID_OPCODE.into());
        };
        let len = cdb_len(op);
        if len == 0 {
            return Err(sense::INVALID_OPCODE.into());
        }
        if cmd.cdb.len() < len {
            return sense::invalid_field();
        }
        let cdb = &cmd.cdb[..len];
        let cmd = &Cmd { req: cmd.req, cdb };
        // NACA (control byte bit 2) is not supported.
        if cdb[len - 1] & 0x04 != 0 {
            return sense::invalid_field();
        }
        if cmd.req.lun != 0 {
            return match op {
                INQUIRY => self.inquiry(cmd),
                REPORT_LUNS => self.report_luns(cmd),
                REQUEST_SENSE => self.request_sense_with(cmd, sense::LUN_NOT_SUPPORTED.sense()),
                _ => Err(sense::LUN_NOT_SUPPORTED.into()),
            };
        }
        let cd = self.cfg.info.cdrom;
        let known = match op {
            TEST_UNIT_READY
            | REQUEST_SENSE
            | INQUIRY
            | MODE_SENSE_6
            | MODE_SENSE_10
            | START_STOP_UNIT
            | PREVENT_ALLOW_MEDIUM_REMOVAL
            | READ_CAPACITY_10
            | READ_10
            | WRITE_10
            | READ_12
            | WRITE_12
            | VERIFY_10
            | SYNCHRONIZE_CACHE_10
            | REPORT_LUNS => true,
            READ_6 | WRITE_6 | READ_16 | WRITE_16 | VERIFY_16 | SYNCHRONIZE_CACHE_16
            | SERVICE_ACTION_IN_16 | UNMAP | WRITE_SAME_16 => !cd,
            READ_TOC
            | GET_CONFIGURATION
            | GET_EVENT_STATUS_NOTIFICATION
            | READ_DISC_INFORMATION
            | READ_TRACK_INFORMATION
            | GET_PERFORMANCE
            | SET_CD_SPEED
            | MECHANISM_STATUS => cd,
            _ => false,
        };
        if !known {
            return Err(sense::INVALID_OPCODE.into());
        }
        let no_attention = matches!(op, INQUIRY | REPORT_LUNS | REQUEST_SENSE)
            || (cd && matches!(op, GET_CONFIGURATION | GET_EVENT_STATUS_NOTIFICATION));
        if !no_attention {
            if let Some(ua) = self.take_attention() {
                return Err(ua.into());
            }
        }
        let needs_medium = matches!(
            op,
            TEST_UNIT_READY
                | READ_CAPACITY_10
                | READ_10
                | READ_12
                | WRITE_10
                | WRITE_12
                | VERIFY_10
                | SYNCHRONIZE_CACHE_10
                | READ_TOC
                | READ_DISC_INFORMATION
                | READ_TRACK_INFORMATION
        );
        if needs_medium && self.medium_absent() {
            return Err(sense::MEDIUM_NOT_PRESENT.into());
        }
        match op {
            TEST_UNIT_READY => Ok(Done::Good),
            REQUEST_SENSE => self.request_sense(cmd),
            INQUIRY => self.inquiry(cmd),
            MODE_SENSE_6 | MODE_SENSE_10 => self.mode_sense(cmd),
            START_STOP_UNIT => self.start_stop_unit(cmd),
            PREVENT_ALLOW_MEDIUM_REMOVAL => self.prevent_allow(cmd),
            REPORT_LUNS => self.report_luns(cmd),
            READ_CAPACITY_10 => self.read_capacity_10(cmd),
            SERVICE_ACTION_IN_16 => self.service_action_in_16(cmd),
            READ_6 | READ_10 | READ_12 | READ_16 | WRITE_6 | WRITE_10 | WRITE_12 | WRITE_16 => {
                self.read_write(cmd)
            }
            VERIFY_10 | VERIFY_16 => self.verify(cmd),
            SYNCHRONIZE_CACHE_10 | SYNCHRONIZE_CACHE_16 => self.synchronize_cache(cmd),
            UNMAP => self.unmap(cmd, mem),
            WRITE_SAME_16 => self.write_same_16(cmd),
            READ_TOC => self.read_toc(cmd),
            GET_CONFIGURATION => self.get_configuration(cmd),
            GET_EVENT_STATUS_NOTIFICATION => self.get_event_status(cmd),
            READ_DISC_INFORMATION => self.read_disc_information(cmd),
            READ_TRACK_INFORMATION => self.read_track_information(cmd),
            GET_PERFORMANCE => self.get_performance(cmd),
            SET_CD_SPEED => Ok(Done::Good),
            MECHANISM_STATUS => self.mechanism_status(cmd),
            _ => Err(sense::INVALID_OPCODE.into()),
        }
    }

    /// Peripheral device type: 05h for a CD-ROM, 00h for a direct-access disk.
    pub(crate) fn device_type(&self) -> u8 {
        if self.cfg.info.cdrom {
            0x05
        } else {
            0x00
        }
    }

    /// A pending command for `kind` over `blocks` blocks from `lba`.
    pub(crate) fn pending(
        &self,
        tag: Tag,
        kind: CommandKind,
        lba: u64,
        blocks: u64,
    ) -> PendingCommand {
        PendingCommand {
            tag,
            kind,
            lba,
            blocks,
            block_size: self.block_size(),
            outstanding: 0,
            failure: None,
        }
    }

    /// Checks that `blocks` blocks from `lba` lie on the medium (`lba` itself must be, even
    /// for a zero count).
    pub(crate) fn check_range(&self, lba: u64, blocks: u64) -> ScsiResult<()> {
        let cap = self.blocks();
        match lba.checked_add(blocks) {
            Some(end) if lba < cap && end <= cap => Ok(()),
            _ => Err(sense::LBA_OUT_OF_RANGE.into()),
        }
    }
}

pub(crate) use buffer::{be16, be24, be32, be64, put16, put32, put64};
