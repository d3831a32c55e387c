//! Task management and timeouts: the shell's abort and LUN reset, and the timer that aborts
//! commands past their deadline and escalates to a reset (see the parent module).

use xen_abi::vscsiif::{
    VscsiifRequest, VSCSIIF_ACT_SCSI_ABORT, VSCSIIF_ACT_SCSI_RESET, VSCSIIF_DMA_NONE,
};
use zerocopy::FromZeros;

use super::{EngineError, EngineState, Finished, Kind, Phase, TmError, Vscsi};
use crate::luns::Address;
use crate::platform::{Events, Grants, GuestMemory, Io, LogEvent};
use crate::types::{Tag, TmCompletion};

impl<const SLOTS: usize, const S: usize, const L: usize> Vscsi<SLOTS, S, L> {
    /// Sends an abort of the command `victim` (the shell's abort request); its answer comes
    /// back as [`Finished::TaskManagement`] with `tag`.
    pub fn abort<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        tag: Tag,
        victim: Tag,
        now_ms: u64,
        io: &mut Io<'_, G, N, M>,
    ) -> Result<(), TmError> {
        if self.state != EngineState::Running {
            return Err(TmError::Unavailable);
        }
        let v = self
            .slots
            .iter()
            .position(|s| s.kind == Kind::Command && s.phase == Phase::Issued && s.tag == victim)
            .ok_or(TmError::NotOutstanding)?;
        self.send_abort(v, Some(tag), now_ms, io)
    }

    /// Sends a LUN reset (the shell's LUN or target reset; a bus reset is one per LUN); its
    /// answer comes back as [`Finished::TaskManagement`] with `tag`.
    pub fn reset_lun<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        tag: Tag,
        address: Address,
        now_ms: u64,
        io: &mut Io<'_, G, N, M>,
    ) -> Result<(), TmError> {
        if self.state != EngineState::Running {
            return Err(TmError::Unavailable);
        }
        self.send_reset(address, Some(tag), now_ms, io)
    }

    fn tm_slot(&self) -> Result<usize, TmError> {
        let ring_free = self.ring.as_ref().map_or(0, |r| r.free_requests());
        if ring_free == 0 {
            return Err(TmError::Busy);
        }
        self.free_slot().ok_or(TmError::Busy)
    }

    fn send_abort<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        victim: usize,
        user: Option<Tag>,
        now_ms: u64,
        io: &mut Io<'_, G, N, M>,
    ) -> Result<(), TmError> {
        let index = self.tm_slot()?;
        let v = self.slots[victim];
        let lun = self.luns.by_address(v.address);
        let mut wire = VscsiifRequest::new_zeroed();
        wire.act = VSCSIIF_ACT_SCSI_ABORT;
        wire.ref_rqid = Self::rqid(victim, v.generation);
        if let Some(l) = lun {
            wire.channel = l.hctl.channel;
            wire.id = l.hctl.target;
            wire.lun = l.hctl.lun;
        }
        wire.sc_data_direction = VSCSIIF_DMA_NONE;
        self.slots[victim].tm_pending = true;
        let slot = &mut self.slots[index];
        slot.kind = Kind::Abort {
            victim: victim as u8,
            user: user.is_some(),
        };
        slot.tag = user.unwrap_or(Tag(0));
        slot.address = v.address;
        slot.transfer = 0;
        slot.ngrefs = 0;
        slot.indirect = None;
        slot.parked = false;
        slot.result = None;
        slot.owes_response = true;
        slot.deadline = now_ms.saturating_add(self.config.abort_timeout_ms);
        slot.phase = Phase::Issued;
        wire.rqid = Self::rqid(index, slot.generation);
        self.counters.aborts += 1;
        self.push(&wire, io);
        Ok(())
    }

    fn send_reset<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        address: Address,
        user: Option<Tag>,
        now_ms: u64,
        io: &mut Io<'_, G, N, M>,
    ) -> Result<(), TmError> {
        let lun = self.luns.by_address(address).ok_or(TmError::NoSuchLun)?;
        let index = self.tm_slot()?;
        let mut wire = VscsiifRequest::new_zeroed();
        wire.act = VSCSIIF_ACT_SCSI_RESET;
        wire.channel = lun.hctl.channel;
        wire.id = lun.hctl.target;
        wire.lun = lun.hctl.lun;
        wire.sc_data_direction = VSCSIIF_DMA_NONE;
        for s in self.slots.iter_mut() {
            if s.kind == Kind::Command && s.phase == Phase::Issued && s.address == address {
                s.tm_pending = true;
            }
        }
        let slot = &mut self.slots[index];
        slot.kind = Kind::Reset {
            user: user.is_some(),
        };
        slot.tag = user.unwrap_or(Tag(0));
        slot.address = address;
        slot.transfer = 0;
        slot.ngrefs = 0;
        slot.indirect = None;
        slot.parked = false;
        slot.result = None;
        slot.owes_response = true;
        slot.deadline = now_ms.saturating_add(self.config.reset_timeout_ms);
        slot.phase = Phase::Issued;
        wire.rqid = Self::rqid(index, slot.generation);
        self.counters.resets += 1;
        io.events.log(LogEvent::Reset { address });
        self.push(&wire, io);
        Ok(())
    }

    /// The shell's timer: retries revocations, aborts commands past their deadline, escalates
    /// to a LUN reset, and fails the engine when a reset is not answered. Call it every second
    /// or so; `now_ms` is a monotonic clock in milliseconds.
    pub fn tick<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        now_ms: u64,
        io: &mut Io<'_, G, N, M>,
        sink: &mut dyn FnMut(Finished),
    ) {
        self.retry_old_ring(io);
        if self.state == EngineState::Running {
            for index in 0..SLOTS {
                let s = self.slots[index];
                if s.phase != Phase::Issued || s.deadline > now_ms {
                    continue;
                }
                match s.kind {
                    Kind::Command if s.tm_pending => {}
                    Kind::Command if !s.timed_out => {
                        self.counters.timeouts += 1;
                        io.events.log(LogEvent::TimedOut {
                            rqid: Self::rqid(index, s.generation),
                        });
                        self.slots[index].timed_out = true;
                        // No slot now: the next tick tries again.
                        let _ = self.send_abort(index, None, now_ms, io);
                    }
                    Kind::Command => {
                        let _ = self.send_reset(s.address, None, now_ms, io);
                    }
                    Kind::Abort { victim, user } => {
                        // The abort itself went unanswered: give up on it, reset the LUN.
                        let slot = &mut self.slots[index];
                        slot.result = user.then_some(Finished::TaskManagement(TmCompletion {
                            tag: s.tag,
                            success: false,
                        }));
                        slot.phase = Phase::Releasing;
                        let v = &mut self.slots[usize::from(victim)];
                        if v.kind == Kind::Command && v.phase == Phase::Issued {
                            v.tm_pending = false;
                            v.timed_out = true;
                            v.deadline = now_ms;
                        }
                    }
                    Kind::Reset { .. } => {
                        self.fail(EngineError::ResetFailed { address: s.address }, io);
                        break;
                    }
                }
            }
            // Escalations decided above go out on this tick.
            for index in 0..SLOTS {
                let s = self.slots[index];
                if self.state == EngineState::Running
                    && s.kind == Kind::Command
                    && s.phase == Phase::Issued
                    && s.timed_out
                    && !s.tm_pending
                    && s.deadline <= now_ms
                {
                    let _ = self.send_reset(s.address, None, now_ms, io);
                }
            }
        }
        self.release_pass(io, sink);
    }
}
