//! [`Vscsi`]: the ring, the request slots and their grants, task management and recovery.
//!
//! # Life of a command
//! [`Vscsi::submit`] checks the request (CDB length, segments, LUN, size against the negotiated
//! [`Limits`]), takes a free slot, grants every segment's page (read-only for data going to the
//! device), writes the segment list directly into the request or, beyond 26 segments, into the
//! slot's indirect page, and pushes the request. A command is never split: what does not fit one
//! request is refused ([`SubmitError::TooLarge`]).
//!
//! Responses are copied off the ring once ([`xen_ring::FrontRing`]) and validated: the `rqid`
//! must name a slot waiting for an answer in its current generation, the sense length must be at
//! most 96 and the residual at most the transfer length. Anything else is an [`EngineError`]:
//! the engine stops (state [`EngineState::Failed`]), completes nothing on the strength of the
//! offending response, and waits for the shell to reconnect ([`Vscsi::disconnect`]).
//!
//! # Completion and grants
//! A slot's completion is delivered only when every grant of its buffer (and of its indirect
//! page) is revoked: a grant the backend still maps keeps the slot in its releasing phase, and
//! [`Vscsi::tick`] asks again. Each accepted request gets exactly one [`Finished`].
//!
//! # Timeouts and task management
//! Every command has a deadline. [`Vscsi::tick`], called by the shell's timer, sends an abort
//! (`VSCSIIF_ACT_SCSI_ABORT`) for a command past it; if the abort fails, or the command is still
//! unanswered one abort timeout later, the LUN is reset (`VSCSIIF_ACT_SCSI_RESET`). An accepted
//! reset completes the LUN's unanswered commands with [`Outcome::Reset`] (once their grants are
//! revoked); their slots stay reserved until the backend's late answer arrives or the connection
//! ends. A reset that fails or times out puts the engine in the error state. The shell's own
//! abort and reset requests ([`Vscsi::abort`], [`Vscsi::reset_lun`]) take the same path and are
//! answered with a [`TmCompletion`]. One ring slot is kept free of commands for this.
//!
//! # Recovery
//! [`Vscsi::disconnect`] ends the ring: unanswered commands complete with
//! [`Outcome::Disconnected`] (not resubmitted: tape commands are not idempotent), every grant is
//! revoked (held completions wait as above). The next connection negotiates again and its limits
//! may be smaller. After [`EngineConfig::max_violations`] protocol violations the engine stays in
//! [`EngineState::Dead`]: submissions and reconnects are refused.

mod task;

use core::fmt;

use xen_abi::types::{DomId, GrantRef};
use xen_abi::vscsiif::{
    rslt_host, rslt_status, ScsiifRequestSegment, VscsiifRequest, VscsiifResponse,
    VSCSIIF_ACT_SCSI_CDB, VSCSIIF_DMA_FROM_DEVICE, VSCSIIF_DMA_NONE, VSCSIIF_DMA_TO_DEVICE,
    VSCSIIF_SENSE_BUFFERSIZE, VSCSIIF_SG_GRANT, VSCSIIF_SG_TABLESIZE,
    XEN_VSCSIIF_RSLT_RESET_FAILED, XEN_VSCSIIF_RSLT_RESET_SUCCESS,
};
use xen_ring::{FrontRing, RingError, RingMemory};
use xenpci_core::grant_table::GrantError;
use zerocopy::{FromZeros, IntoBytes};

use crate::luns::{Address, LunTable};
use crate::negotiate::{BackendFeatures, Limits, TM_RESERVE};
use crate::platform::{EndGrant, Events, Grants, GuestMemory, Io, LogEvent};
use crate::types::{
    Completion, DataDirection, HostStatus, Outcome, ScsiRequest, SenseBuffer, SubmitError, Tag,
    TmCompletion, MAX_CDB, PAGE_SIZE,
};

/// Bits of the `rqid` that name the slot; the rest is the slot's generation.
const SLOT_BITS: u32 = 5;
/// The most request slots an engine has.
pub const MAX_SLOTS: usize = 1 << SLOT_BITS;

/// Fixed settings of an engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// The backend's domain, to which grants are given.
    pub backend: DomId,
    /// The deadline of a command submitted without a timeout, in milliseconds.
    pub default_timeout_ms: u64,
    /// How long an abort (and a command after its accepted abort) may take.
    pub abort_timeout_ms: u64,
    /// How long a LUN reset may take.
    pub reset_timeout_ms: u64,
    /// Protocol violations after which the engine gives up for good.
    pub max_violations: u32,
}

impl EngineConfig {
    /// Defaults for `backend`: 30 s per command, 10 s per abort, 30 s per reset, 3 violations.
    pub const fn new(backend: DomId) -> Self {
        EngineConfig {
            backend,
            default_timeout_ms: 30_000,
            abort_timeout_ms: 10_000,
            reset_timeout_ms: 30_000,
            max_violations: 3,
        }
    }
}

/// Where the engine is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineState {
    /// No ring.
    Disconnected,
    /// The ring is granted and published; waiting for the backend to connect.
    RingReady,
    /// Commands flow.
    Running,
    /// The backend is closing: nothing new is sent, answers are still taken.
    Quiescing,
    /// A protocol violation or a failed reset stopped the device; disconnect and reconnect.
    Failed(EngineError),
    /// Too many violations: the device stays down.
    Dead,
}

/// A backend protocol violation (or a reset that did not work).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineError {
    /// A response's `rqid` names no request waiting for an answer.
    UnknownRqid {
        /// The rqid.
        rqid: u16,
    },
    /// A second response for a request already answered.
    DuplicateRqid {
        /// The rqid.
        rqid: u16,
    },
    /// `sense_len` is larger than the sense buffer.
    SenseTooLong {
        /// The rqid.
        rqid: u16,
        /// The length claimed.
        len: u8,
    },
    /// `residual_len` is larger than the transfer.
    ResidualTooLarge {
        /// The rqid.
        rqid: u16,
        /// The residual claimed.
        residual: u32,
        /// The transfer length.
        transfer: u32,
    },
    /// A task-management answer is neither success nor failure.
    BadTmResult {
        /// The rqid.
        rqid: u16,
        /// The result.
        rslt: i32,
    },
    /// A LUN reset failed or was not answered in time.
    ResetFailed {
        /// The LUN.
        address: Address,
    },
    /// The ring's indices were impossible.
    Ring(RingError),
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownRqid { rqid } => write!(f, "response for unknown rqid {rqid:#x}"),
            Self::DuplicateRqid { rqid } => write!(f, "second response for rqid {rqid:#x}"),
            Self::SenseTooLong { rqid, len } => {
                write!(
                    f,
                    "response {rqid:#x} claims {len} bytes of sense (at most 96)"
                )
            }
            Self::ResidualTooLarge {
                rqid,
                residual,
                transfer,
            } => write!(
                f,
                "response {rqid:#x} has residual {residual} for a transfer of {transfer}"
            ),
            Self::BadTmResult { rqid, rslt } => {
                write!(f, "task management response {rqid:#x} has result {rslt:#x}")
            }
            Self::ResetFailed { address } => write!(f, "reset of {address:?} failed"),
            Self::Ring(e) => write!(f, "ring: {e}"),
        }
    }
}

/// Why a ring could not be attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachError {
    /// The ring memory is unusable.
    Ring(RingError),
    /// The ring page could not be granted.
    Grant(GrantError),
    /// The previous ring's page is still mapped by the old backend.
    OldRingMapped,
    /// The engine gave up on this backend.
    Dead,
}

/// Why a task-management request was not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TmError {
    /// No command with that tag is waiting for an answer.
    NotOutstanding,
    /// No LUN at that address.
    NoSuchLun,
    /// No slot or ring space for it right now.
    Busy,
    /// The device is not running.
    Unavailable,
}

/// A request finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finished {
    /// A SCSI command.
    Command(Completion),
    /// An abort or reset the shell asked for.
    TaskManagement(TmCompletion),
}

/// The engine's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Commands sent.
    pub commands: u64,
    /// Commands sent with an indirect segment page.
    pub indirect: u64,
    /// Commands that passed their deadline.
    pub timeouts: u64,
    /// Aborts sent.
    pub aborts: u64,
    /// LUN resets sent.
    pub resets: u64,
    /// Grant revocations that found the page still mapped.
    pub still_mapped: u64,
    /// Protocol violations.
    pub violations: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Command,
    Abort { victim: u8, user: bool },
    Reset { user: bool },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    /// On the ring, no answer yet.
    Issued,
    /// Answered or given up on: the grants are being revoked, then `result` goes out.
    Releasing,
    /// The result went out, but the backend still owes the ring response.
    Abandoned,
}

#[derive(Clone, Copy, Debug)]
struct Slot<const S: usize> {
    kind: Kind,
    phase: Phase,
    generation: u16,
    tag: Tag,
    address: Address,
    transfer: u32,
    deadline: u64,
    timed_out: bool,
    /// An abort or reset for this command is on the ring.
    tm_pending: bool,
    /// The backend still owes a response for this slot's current request.
    owes_response: bool,
    grefs: [GrantRef; S],
    ngrefs: u16,
    indirect: Option<GrantRef>,
    parked: bool,
    result: Option<Finished>,
}

impl<const S: usize> Slot<S> {
    const IDLE: Self = Slot {
        kind: Kind::Command,
        phase: Phase::Idle,
        generation: 0,
        tag: Tag(0),
        address: Address {
            bus: 0,
            target: 0,
            lun: 0,
        },
        transfer: 0,
        deadline: 0,
        timed_out: false,
        tm_pending: false,
        owes_response: false,
        grefs: [0; S],
        ngrefs: 0,
        indirect: None,
        parked: false,
        result: None,
    };
}

type Ring = FrontRing<VscsiifRequest, VscsiifResponse>;

/// One vhost's engine: `SLOTS` request slots (at most 32), `S` data segments per command (at
/// most 512), `L` LUNs.
pub struct Vscsi<const SLOTS: usize, const S: usize, const L: usize> {
    config: EngineConfig,
    state: EngineState,
    ring: Option<Ring>,
    ring_gref: Option<GrantRef>,
    /// The previous ring's grant, still mapped by the old backend.
    old_ring_gref: Option<GrantRef>,
    limits: Limits,
    features: BackendFeatures,
    indirect_frames: [u64; SLOTS],
    have_indirect: bool,
    slots: [Slot<S>; SLOTS],
    luns: LunTable<L>,
    counters: Counters,
}

impl<const SLOTS: usize, const S: usize, const L: usize> fmt::Debug for Vscsi<SLOTS, S, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vscsi")
            .field("state", &self.state)
            .field("limits", &self.limits)
            .field("in_flight", &self.in_flight())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl<const SLOTS: usize, const S: usize, const L: usize> Vscsi<SLOTS, S, L> {
    const CHECK: () = {
        assert!(SLOTS >= 2 && SLOTS <= MAX_SLOTS, "2 to 32 slots");
        assert!(S >= 1 && S <= 512, "1 to 512 segments per command");
    };

    /// A disconnected engine. `indirect_frames` are guest pages for indirect segment lists, one
    /// per slot (fewer, or none, and no indirect requests are made).
    pub fn new(config: EngineConfig, indirect_frames: &[u64]) -> Self {
        let () = Self::CHECK;
        let have_indirect = indirect_frames.len() >= SLOTS;
        let mut frames = [0u64; SLOTS];
        if have_indirect {
            frames.copy_from_slice(&indirect_frames[..SLOTS]);
        }
        Vscsi {
            config,
            state: EngineState::Disconnected,
            ring: None,
            ring_gref: None,
            old_ring_gref: None,
            limits: Limits::negotiate(&BackendFeatures::default(), SLOTS, S, false),
            features: BackendFeatures::default(),
            indirect_frames: frames,
            have_indirect,
            slots: [Slot::IDLE; SLOTS],
            luns: LunTable::new(),
            counters: Counters::default(),
        }
    }

    /// The state.
    pub fn state(&self) -> EngineState {
        self.state
    }

    /// The limits in force (from the last connection).
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The backend's features from the last connection.
    pub fn features(&self) -> BackendFeatures {
        self.features
    }

    /// The counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The LUNs.
    pub fn luns(&self) -> &LunTable<L> {
        &self.luns
    }

    /// The LUNs, for scans.
    pub fn luns_mut(&mut self) -> &mut LunTable<L> {
        &mut self.luns
    }

    /// The ring's grant reference, once attached.
    pub fn ring_ref(&self) -> Option<GrantRef> {
        self.ring_gref
    }

    /// Requests (commands and task management) not yet completed to the shell.
    pub fn in_flight(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s.phase, Phase::Issued | Phase::Releasing))
            .count()
    }

    /// Slots still held after their completion went out, waiting for a late answer.
    pub fn abandoned(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.phase == Phase::Abandoned)
            .count()
    }

    /// Whether the previous ring page is still mapped by the old backend (the shell must not
    /// free it yet).
    pub fn old_ring_mapped(&self) -> bool {
        self.old_ring_gref.is_some()
    }

    /// Initialises the ring in `mem` (one page at guest frame `frame`) and grants it to the
    /// backend. The shell publishes [`ring_ref`](Self::ring_ref) and its event channel.
    pub fn attach_ring<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        mem: RingMemory,
        frame: u64,
        io: &mut Io<'_, G, N, M>,
    ) -> Result<GrantRef, AttachError> {
        if self.state == EngineState::Dead {
            return Err(AttachError::Dead);
        }
        if let Some(g) = self.ring_gref {
            // Published already (a redone transaction): the same ring.
            return Ok(g);
        }
        self.retry_old_ring(io);
        if self.old_ring_gref.is_some() {
            return Err(AttachError::OldRingMapped);
        }
        let ring = Ring::init(mem).map_err(AttachError::Ring)?;
        let gref = io
            .grants
            .grant(self.config.backend, frame, false)
            .map_err(AttachError::Grant)?;
        self.ring = Some(ring);
        self.ring_gref = Some(gref);
        self.state = EngineState::RingReady;
        Ok(gref)
    }

    /// The backend is Connected: take its features and start.
    pub fn connected(&mut self, features: &BackendFeatures) {
        if self.state != EngineState::RingReady {
            return;
        }
        self.features = *features;
        self.limits = Limits::negotiate(features, SLOTS, S, self.have_indirect);
        self.state = EngineState::Running;
    }

    /// The backend is closing: nothing new goes out; answers are still taken.
    pub fn quiesce(&mut self) {
        if matches!(self.state, EngineState::Running | EngineState::RingReady) {
            self.state = EngineState::Quiescing;
        }
    }

    fn rqid(index: usize, generation: u16) -> u16 {
        (generation << SLOT_BITS) | index as u16
    }

    fn commands_busy(&self) -> u32 {
        self.slots
            .iter()
            .filter(|s| s.kind == Kind::Command && s.phase != Phase::Idle)
            .count() as u32
    }

    fn free_slot(&self) -> Option<usize> {
        self.slots.iter().position(|s| s.phase == Phase::Idle)
    }

    /// Sends a SCSI command. On `Ok` the request belongs to the engine until its [`Finished`]
    /// comes back (through [`poll`](Self::poll), [`tick`](Self::tick) or
    /// [`disconnect`](Self::disconnect)); on `Err` nothing was sent and nothing is granted.
    pub fn submit<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        req: &ScsiRequest<'_>,
        now_ms: u64,
        io: &mut Io<'_, G, N, M>,
    ) -> Result<(), SubmitError> {
        if self.state != EngineState::Running {
            return Err(SubmitError::Unavailable);
        }
        if req.cdb.is_empty() || req.cdb.len() > MAX_CDB {
            return Err(SubmitError::BadCdb { len: req.cdb.len() });
        }
        let bad = |s: &crate::Segment| {
            s.length == 0 || usize::from(s.offset) + usize::from(s.length) > PAGE_SIZE
        };
        if req.segments.iter().any(bad)
            || (req.direction == DataDirection::None) != req.segments.is_empty()
        {
            return Err(SubmitError::BadSegments);
        }
        let transfer = u32::try_from(req.transfer_length()).map_err(|_| SubmitError::TooLarge {
            segments: req.segments.len(),
            max: self.limits.max_segments,
        })?;
        if req.segments.len() > self.limits.max_segments {
            return Err(SubmitError::TooLarge {
                segments: req.segments.len(),
                max: self.limits.max_segments,
            });
        }
        let lun = self
            .luns
            .by_address(req.address)
            .ok_or(SubmitError::NoSuchLun)?;
        let ring_free = self.ring.as_ref().map_or(0, |r| r.free_requests());
        if self.commands_busy() >= self.limits.queue_depth || ring_free <= TM_RESERVE {
            return Err(SubmitError::Busy);
        }
        let index = self.free_slot().ok_or(SubmitError::Busy)?;
        let indirect = req.segments.len() > VSCSIIF_SG_TABLESIZE;
        let backend = self.config.backend;
        let readonly = req.direction == DataDirection::ToDevice;

        let mut wire = VscsiifRequest::new_zeroed();
        let slot = &mut self.slots[index];
        slot.ngrefs = 0;
        slot.indirect = None;
        slot.parked = false;
        let mut grant_failed = false;
        for (i, seg) in req.segments.iter().enumerate() {
            match io.grants.grant(backend, seg.frame, readonly) {
                Ok(g) => {
                    slot.grefs[i] = g;
                    slot.ngrefs += 1;
                    let d = ScsiifRequestSegment {
                        gref: g,
                        offset: seg.offset,
                        length: seg.length,
                    };
                    if indirect {
                        io.memory
                            .write(self.indirect_frames[index], i * 8, d.as_bytes());
                    } else {
                        wire.seg[i] = d;
                    }
                }
                Err(_) => {
                    grant_failed = true;
                    break;
                }
            }
        }
        if indirect && !grant_failed {
            match io.grants.grant(backend, self.indirect_frames[index], true) {
                Ok(g) => {
                    slot.indirect = Some(g);
                    wire.seg[0] = ScsiifRequestSegment {
                        gref: g,
                        offset: 0,
                        length: (req.segments.len() * 8) as u16,
                    };
                    wire.nr_segments = VSCSIIF_SG_GRANT | 1;
                }
                Err(_) => grant_failed = true,
            }
        } else {
            wire.nr_segments = req.segments.len() as u8;
        }
        slot.tag = req.tag;
        slot.address = req.address;
        slot.transfer = transfer;
        slot.kind = Kind::Command;
        slot.timed_out = false;
        slot.tm_pending = false;
        if grant_failed {
            // Nothing went out, but the grants given so far are ended before the caller gets
            // its buffer back: a backend may map a reference it was never told about.
            slot.owes_response = false;
            slot.result = None;
            slot.phase = Phase::Releasing;
            if !self.try_release(index, io) {
                // Still mapped: the slot completes later as not sent.
                self.slots[index].result = Some(Finished::Command(Completion::synthetic(
                    req.tag,
                    Outcome::Disconnected,
                    transfer,
                )));
                return Ok(());
            }
            let slot = &mut self.slots[index];
            slot.phase = Phase::Idle;
            slot.generation = slot.generation.wrapping_add(1) & 0x7ff;
            return Err(SubmitError::OutOfGrants);
        }
        let timeout = if req.timeout_ms == 0 {
            self.config.default_timeout_ms
        } else {
            req.timeout_ms
        };
        slot.deadline = now_ms.saturating_add(timeout);
        slot.owes_response = true;
        slot.result = None;
        slot.phase = Phase::Issued;
        wire.rqid = Self::rqid(index, slot.generation);
        wire.act = VSCSIIF_ACT_SCSI_CDB;
        wire.cmd_len = req.cdb.len() as u8;
        wire.cmnd[..req.cdb.len()].copy_from_slice(req.cdb);
        wire.timeout_per_command = (timeout / 1000).min(u64::from(u16::MAX)) as u16;
        wire.channel = lun.hctl.channel;
        wire.id = lun.hctl.target;
        wire.lun = lun.hctl.lun;
        wire.sc_data_direction = match req.direction {
            DataDirection::None => VSCSIIF_DMA_NONE,
            DataDirection::FromDevice => VSCSIIF_DMA_FROM_DEVICE,
            DataDirection::ToDevice => VSCSIIF_DMA_TO_DEVICE,
        };
        self.counters.commands += 1;
        if indirect {
            self.counters.indirect += 1;
        }
        self.push(&wire, io);
        Ok(())
    }

    fn push<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        wire: &VscsiifRequest,
        io: &mut Io<'_, G, N, M>,
    ) {
        let Some(ring) = self.ring.as_mut() else {
            return;
        };
        // Space was checked by the caller; a failure here is a poisoned ring, found by poll.
        if ring.push_request(wire).is_ok() && ring.push_requests_and_check_notify() {
            io.events.notify();
        }
    }

    fn fail<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        e: EngineError,
        io: &mut Io<'_, G, N, M>,
    ) {
        self.counters.violations += 1;
        io.events.log(LogEvent::Error(e));
        if self.counters.violations >= self.config.max_violations {
            self.state = EngineState::Dead;
            io.events.log(LogEvent::GaveUp);
        } else {
            self.state = EngineState::Failed(e);
        }
    }

    /// Takes the backend's responses and delivers what finished. Returns the first protocol
    /// violation, after which the engine is failed.
    pub fn poll<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        now_ms: u64,
        io: &mut Io<'_, G, N, M>,
        sink: &mut dyn FnMut(Finished),
    ) -> Result<(), EngineError> {
        if matches!(self.state, EngineState::Running | EngineState::Quiescing) {
            // A bounded pass: at most a ring's worth of responses plus the final re-check.
            for _ in 0..4 {
                let r = self.take_responses(now_ms);
                if let Err(e) = r {
                    self.fail(e, io);
                    self.release_pass(io, sink);
                    return Err(e);
                }
                let more = match self.ring.as_mut().map(|r| r.final_check_for_responses()) {
                    Some(Ok(more)) => more,
                    Some(Err(e)) => {
                        self.fail(EngineError::Ring(e), io);
                        self.release_pass(io, sink);
                        return Err(EngineError::Ring(e));
                    }
                    None => false,
                };
                if !more {
                    break;
                }
            }
        }
        self.release_pass(io, sink);
        Ok(())
    }

    fn take_responses(&mut self, now_ms: u64) -> Result<(), EngineError> {
        loop {
            let Some(ring) = self.ring.as_mut() else {
                return Ok(());
            };
            let rsp = match ring.take_response() {
                Ok(Some(r)) => r,
                Ok(None) => return Ok(()),
                Err(e) => return Err(EngineError::Ring(e)),
            };
            self.on_response(&rsp, now_ms)?;
        }
    }

    fn on_response(&mut self, rsp: &VscsiifResponse, now_ms: u64) -> Result<(), EngineError> {
        let rqid = rsp.rqid;
        let index = usize::from(rqid) & (MAX_SLOTS - 1);
        let generation = rqid >> SLOT_BITS;
        let Some(slot) = self.slots.get_mut(index) else {
            return Err(EngineError::UnknownRqid { rqid });
        };
        if slot.generation != generation || slot.phase == Phase::Idle {
            return Err(EngineError::UnknownRqid { rqid });
        }
        if !slot.owes_response {
            return Err(EngineError::DuplicateRqid { rqid });
        }
        match slot.phase {
            Phase::Abandoned => {
                // The late answer to a command completed after a reset: the slot is free now.
                slot.owes_response = false;
                slot.phase = Phase::Idle;
                slot.generation = slot.generation.wrapping_add(1) & 0x7ff;
                return Ok(());
            }
            Phase::Releasing => {
                // Completed by a reset while we waited for its grants; its answer changes
                // nothing.
                slot.owes_response = false;
                return Ok(());
            }
            Phase::Issued | Phase::Idle => {}
        }
        match slot.kind {
            Kind::Command => {
                if usize::from(rsp.sense_len) > VSCSIIF_SENSE_BUFFERSIZE {
                    return Err(EngineError::SenseTooLong {
                        rqid,
                        len: rsp.sense_len,
                    });
                }
                if rsp.residual_len > slot.transfer {
                    return Err(EngineError::ResidualTooLarge {
                        rqid,
                        residual: rsp.residual_len,
                        transfer: slot.transfer,
                    });
                }
                let sense =
                    SenseBuffer::from_slice(&rsp.sense_buffer[..usize::from(rsp.sense_len)])
                        .unwrap_or(SenseBuffer::EMPTY);
                slot.result = Some(Finished::Command(Completion {
                    tag: slot.tag,
                    outcome: Outcome::Answered,
                    scsi_status: rslt_status(rsp.rslt),
                    host: HostStatus::from_byte(rslt_host(rsp.rslt)),
                    driver: (rsp.rslt as u32 >> 24) as u8,
                    sense,
                    residual: rsp.residual_len,
                    transfer_length: slot.transfer,
                    timed_out: slot.timed_out,
                }));
                slot.owes_response = false;
                slot.phase = Phase::Releasing;
                Ok(())
            }
            Kind::Abort { victim, user } => {
                let success = tm_result(rsp.rslt).ok_or(EngineError::BadTmResult {
                    rqid,
                    rslt: rsp.rslt,
                })?;
                let tag = slot.tag;
                slot.owes_response = false;
                slot.phase = Phase::Releasing;
                slot.result =
                    user.then_some(Finished::TaskManagement(TmCompletion { tag, success }));
                let v = &mut self.slots[usize::from(victim)];
                if v.kind == Kind::Command && v.phase == Phase::Issued {
                    v.tm_pending = false;
                    v.timed_out |= !user;
                    // Accepted: the answer should follow soon. Refused: reset at the next tick.
                    v.deadline = if success {
                        now_ms.saturating_add(self.config.abort_timeout_ms)
                    } else {
                        now_ms
                    };
                }
                Ok(())
            }
            Kind::Reset { user } => {
                let success = tm_result(rsp.rslt).ok_or(EngineError::BadTmResult {
                    rqid,
                    rslt: rsp.rslt,
                })?;
                let tag = slot.tag;
                let address = slot.address;
                slot.owes_response = false;
                slot.phase = Phase::Releasing;
                slot.result =
                    user.then_some(Finished::TaskManagement(TmCompletion { tag, success }));
                if !success {
                    if user {
                        return Ok(());
                    }
                    return Err(EngineError::ResetFailed { address });
                }
                for s in self.slots.iter_mut() {
                    if s.kind == Kind::Command && s.phase == Phase::Issued && s.address == address {
                        let mut c = Completion::synthetic(s.tag, Outcome::Reset, s.transfer);
                        c.timed_out = s.timed_out;
                        s.result = Some(Finished::Command(c));
                        s.phase = Phase::Releasing;
                        s.tm_pending = false;
                    }
                }
                Ok(())
            }
        }
    }

    /// Ends the slot's grants; true when none is left (and none parked).
    fn try_release<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        index: usize,
        io: &mut Io<'_, G, N, M>,
    ) -> bool {
        let slot = &mut self.slots[index];
        let mut i = 0;
        while i < usize::from(slot.ngrefs) {
            match io.grants.end(slot.grefs[i]) {
                Ok(EndGrant::StillMapped) => {
                    self.counters.still_mapped += 1;
                    i += 1;
                }
                Ok(EndGrant::Parked) => {
                    slot.parked = true;
                    slot.ngrefs -= 1;
                    slot.grefs[i] = slot.grefs[usize::from(slot.ngrefs)];
                }
                // Revoked, or not granted (cannot happen: the engine ends each reference once).
                Ok(EndGrant::Revoked) | Err(_) => {
                    slot.ngrefs -= 1;
                    slot.grefs[i] = slot.grefs[usize::from(slot.ngrefs)];
                }
            }
        }
        if let Some(g) = slot.indirect {
            match io.grants.end(g) {
                Ok(EndGrant::StillMapped) => self.counters.still_mapped += 1,
                Ok(EndGrant::Parked) => {
                    slot.parked = true;
                    slot.indirect = None;
                }
                Ok(EndGrant::Revoked) | Err(_) => slot.indirect = None,
            }
        }
        if slot.parked && io.grants.parked() == 0 {
            slot.parked = false;
        }
        slot.ngrefs == 0 && slot.indirect.is_none() && !slot.parked
    }

    /// Delivers every releasing slot whose grants are all revoked.
    fn release_pass<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        io: &mut Io<'_, G, N, M>,
        sink: &mut dyn FnMut(Finished),
    ) {
        for index in 0..SLOTS {
            if self.slots[index].phase != Phase::Releasing || !self.try_release(index, io) {
                continue;
            }
            let slot = &mut self.slots[index];
            if let Some(f) = slot.result.take() {
                sink(f);
            }
            if slot.owes_response && self.ring.is_some() {
                slot.phase = Phase::Abandoned;
            } else {
                slot.owes_response = false;
                slot.phase = Phase::Idle;
                slot.generation = slot.generation.wrapping_add(1) & 0x7ff;
            }
        }
    }

    fn retry_old_ring<G: Grants, N: Events, M: GuestMemory>(&mut self, io: &mut Io<'_, G, N, M>) {
        if let Some(g) = self.old_ring_gref {
            if !matches!(io.grants.end(g), Ok(EndGrant::StillMapped)) {
                self.old_ring_gref = None;
            }
        }
    }

    /// The connection ended (backend closed or restarted, or the shell resets a failed
    /// engine): every unanswered request completes with [`Outcome::Disconnected`] (a task
    /// management request as failed) once its grants are revoked, and the ring's grant is
    /// ended. The LUN table is kept; the next connection confirms it.
    pub fn disconnect<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        io: &mut Io<'_, G, N, M>,
        sink: &mut dyn FnMut(Finished),
    ) {
        for s in self.slots.iter_mut() {
            s.owes_response = false;
            match s.phase {
                Phase::Issued => {
                    s.result = match s.kind {
                        Kind::Command => {
                            let mut c =
                                Completion::synthetic(s.tag, Outcome::Disconnected, s.transfer);
                            c.timed_out = s.timed_out;
                            Some(Finished::Command(c))
                        }
                        Kind::Abort { user, .. } | Kind::Reset { user } => {
                            user.then_some(Finished::TaskManagement(TmCompletion {
                                tag: s.tag,
                                success: false,
                            }))
                        }
                    };
                    s.phase = Phase::Releasing;
                }
                Phase::Abandoned => {
                    s.phase = Phase::Idle;
                    s.generation = s.generation.wrapping_add(1) & 0x7ff;
                }
                Phase::Releasing | Phase::Idle => {}
            }
            s.tm_pending = false;
        }
        self.ring = None;
        if let Some(g) = self.ring_gref.take() {
            if matches!(io.grants.end(g), Ok(EndGrant::StillMapped)) {
                self.old_ring_gref = Some(g);
            }
        }
        if self.state != EngineState::Dead {
            self.state = EngineState::Disconnected;
        }
        self.release_pass(io, sink);
    }
}

fn tm_result(rslt: i32) -> Option<bool> {
    match rslt {
        XEN_VSCSIIF_RSLT_RESET_SUCCESS => Some(true),
        XEN_VSCSIIF_RSLT_RESET_FAILED => Some(false),
        _ => None,
    }
}
