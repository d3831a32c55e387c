//! The SCSI-to-engine adapter: what every shell does between [`Disk`] and [`Blkif`].
//!
//! [`ScsiAdapter::submit`] runs a [`ScsiRequest`] through [`Disk::submit`]; a command the disk
//! answers itself completes at once, one that needs the backend has its block operations handed
//! to the engine under tags of the adapter's own (command slot, operation, generation), and
//! completes — exactly once, through the same `complete` callback the shell gives every call —
//! when the last of them has. Engine completions come in through the adapter's wrappers of the
//! engine's calls ([`poll`](ScsiAdapter::poll), [`on_timer`](ScsiAdapter::on_timer),
//! [`abort`](ScsiAdapter::abort), [`reset`](ScsiAdapter::reset),
//! [`shutdown`](ScsiAdapter::shutdown)), which take the same engine and `Io`.
//!
//! A command that finds every slot taken, or that the engine refuses as full, completes BUSY (the
//! port driver retries it). The adapter holds no lock and no buffer: the concurrency contract is
//! the engine's (one device-wide lock around every call).

use crate::blkif::{
    Blkif, BlockCompletion, EngineError, Events, Grants, Io, SubmitError, TimerReport,
};
use crate::scsi::{Action, BlockError, BlockOutcome, Disk, PendingCommand, MAX_OPS};
use crate::types::{BlockOp, GuestMemory, ScsiCompletion, ScsiRequest, Segment, Tag};

#[derive(Clone, Copy, Debug)]
struct Command {
    pending: PendingCommand,
    ops: [BlockOp; MAX_OPS],
    count: u8,
}

/// SCSI commands in flight between a [`Disk`] and a [`Blkif`]: up to `CMDS` at once.
#[derive(Debug)]
pub struct ScsiAdapter<const CMDS: usize> {
    commands: [Option<Command>; CMDS],
    /// Bumped each time a slot is taken, so that a late engine completion for an earlier
    /// command in the same slot is recognised.
    generations: [u32; CMDS],
}

impl<const CMDS: usize> Default for ScsiAdapter<CMDS> {
    fn default() -> Self {
        Self::new()
    }
}

/// The engine's tag for operation `op` of the command in slot `slot`.
fn engine_tag(slot: usize, op: usize, generation: u32) -> Tag {
    Tag(u64::from(generation) << 32 | (op as u64) << 16 | slot as u64)
}

impl<const CMDS: usize> ScsiAdapter<CMDS> {
    /// No command in flight.
    pub const fn new() -> Self {
        ScsiAdapter {
            commands: [None; CMDS],
            generations: [0; CMDS],
        }
    }

    /// Commands waiting for the engine.
    pub fn in_flight(&self) -> usize {
        self.commands.iter().filter(|c| c.is_some()).count()
    }

    /// The SCSI tag of the command an engine tag belongs to (for example
    /// [`TimerReport::first_timed_out`] from [`Blkif::on_timer`]).
    pub fn scsi_tag(&self, engine: Tag) -> Option<Tag> {
        let (slot, _, generation) = self.decode(engine)?;
        Some(self.commands[slot]?.pending.tag()).filter(|_| self.generations[slot] == generation)
    }

    /// Runs `req`: through `complete` at once when the disk answers it or it cannot be queued,
    /// or when its block operations finish.
    pub fn submit<
        const JOBS: usize,
        const SEGS: usize,
        const SLOTS: usize,
        const POOL: usize,
        const IND: usize,
        G: Grants,
        N: Events,
        M: GuestMemory,
    >(
        &mut self,
        disk: &mut Disk,
        engine: &mut Blkif<JOBS, SEGS, SLOTS, POOL, IND>,
        req: &ScsiRequest<'_>,
        io: &mut Io<'_, G, N, M>,
        mut complete: impl FnMut(ScsiCompletion),
    ) {
        let block = match disk.submit(req, io.memory) {
            Action::Complete(c) => return complete(c),
            Action::Block(b) => b,
        };
        let busy = BlockOutcome::Failed {
            error: BlockError::Busy,
            sector: None,
        };
        let Some(slot) = self.commands.iter().position(Option::is_none) else {
            return complete(block.pending().complete(busy));
        };
        let mut ops = [BlockOp::Flush; MAX_OPS];
        ops[..block.ops().len()].copy_from_slice(block.ops());
        self.generations[slot] = self.generations[slot].wrapping_add(1);
        let generation = self.generations[slot];
        self.commands[slot] = Some(Command {
            pending: block.pending(),
            ops,
            count: block.ops().len() as u8,
        });
        for (k, op) in block.ops().iter().enumerate() {
            let data: &[Segment] = match op {
                BlockOp::Read { .. } | BlockOp::Write { .. } => req.segments,
                _ => &[],
            };
            let tag = engine_tag(slot, k, generation);
            let submitted = engine.submit(tag, *op, data, io, |c| self.on_block(c, &mut complete));
            if let Err(e) = submitted {
                let error = match e {
                    SubmitError::QueueFull => BlockError::Busy,
                    SubmitError::Invalid => BlockError::Invalid,
                    SubmitError::Unavailable => BlockError::Gone,
                };
                let outcome = BlockOutcome::Failed {
                    error,
                    sector: None,
                };
                self.record(slot, outcome, &mut complete);
            }
        }
    }

    /// [`Blkif::poll`], completing the commands whose operations finished.
    pub fn poll<
        const JOBS: usize,
        const SEGS: usize,
        const SLOTS: usize,
        const POOL: usize,
        const IND: usize,
        G: Grants,
        N: Events,
        M: GuestMemory,
    >(
        &mut self,
        engine: &mut Blkif<JOBS, SEGS, SLOTS, POOL, IND>,
        io: &mut Io<'_, G, N, M>,
        mut complete: impl FnMut(ScsiCompletion),
    ) -> Result<(), EngineError> {
        engine.poll(io, |c| self.on_block(c, &mut complete))
    }

    /// [`Blkif::on_timer`]; the report's `first_timed_out` is the command's SCSI tag.
    pub fn on_timer<
        const JOBS: usize,
        const SEGS: usize,
        const SLOTS: usize,
        const POOL: usize,
        const IND: usize,
        G: Grants,
        N: Events,
        M: GuestMemory,
    >(
        &mut self,
        engine: &mut Blkif<JOBS, SEGS, SLOTS, POOL, IND>,
        now: u64,
        io: &mut Io<'_, G, N, M>,
        mut complete: impl FnMut(ScsiCompletion),
    ) -> TimerReport {
        let mut report = engine.on_timer(now, io, |c| self.on_block(c, &mut complete));
        report.first_timed_out = report.first_timed_out.and_then(|t| self.scsi_tag(t));
        report
    }

    /// Aborts the command `tag` (the SCSI abort): each of its operations still open is aborted
    /// in the engine ([`Blkif::abort`]), and the command completes TASK ABORTED once they all
    /// have. False when no command with that tag waits for the engine.
    pub fn abort<
        const JOBS: usize,
        const SEGS: usize,
        const SLOTS: usize,
        const POOL: usize,
        const IND: usize,
        G: Grants,
        N: Events,
        M: GuestMemory,
    >(
        &mut self,
        engine: &mut Blkif<JOBS, SEGS, SLOTS, POOL, IND>,
        tag: Tag,
        io: &mut Io<'_, G, N, M>,
        mut complete: impl FnMut(ScsiCompletion),
    ) -> bool {
        let found = self
            .commands
            .iter()
            .position(|c| c.is_some_and(|c| c.pending.tag() == tag));
        let Some(slot) = found else {
            return false;
        };
        let generation = self.generations[slot];
        let count = self.commands[slot].map_or(0, |c| usize::from(c.count));
        for k in 0..count {
            let t = engine_tag(slot, k, generation);
            engine.abort(t, io, |c| self.on_block(c, &mut complete));
        }
        true
    }

    /// [`Blkif::reset`]: every command waiting for the engine completes TASK ABORTED.
    pub fn reset<
        const JOBS: usize,
        const SEGS: usize,
        const SLOTS: usize,
        const POOL: usize,
        const IND: usize,
        G: Grants,
        N: Events,
        M: GuestMemory,
    >(
        &mut self,
        engine: &mut Blkif<JOBS, SEGS, SLOTS, POOL, IND>,
        io: &mut Io<'_, G, N, M>,
        mut complete: impl FnMut(ScsiCompletion),
    ) -> usize {
        engine.reset(io, |c| self.on_block(c, &mut complete))
    }

    /// [`Blkif::shutdown`]: the commands complete with the engine's `Disconnected` outcome
    /// (HARDWARE ERROR / LOGICAL UNIT FAILURE).
    pub fn shutdown<
        const JOBS: usize,
        const SEGS: usize,
        const SLOTS: usize,
        const POOL: usize,
        const IND: usize,
        G: Grants,
        N: Events,
        M: GuestMemory,
    >(
        &mut self,
        engine: &mut Blkif<JOBS, SEGS, SLOTS, POOL, IND>,
        io: &mut Io<'_, G, N, M>,
        mut complete: impl FnMut(ScsiCompletion),
    ) {
        engine.shutdown(io, |c| self.on_block(c, &mut complete));
    }

    fn decode(&self, tag: Tag) -> Option<(usize, usize, u32)> {
        let slot = (tag.0 & 0xffff) as usize;
        let op = ((tag.0 >> 16) & 0xffff) as usize;
        (slot < CMDS && op < MAX_OPS).then_some((slot, op, (tag.0 >> 32) as u32))
    }

    /// One engine completion: recorded against its command, which completes after its last.
    fn on_block(&mut self, c: BlockCompletion, complete: &mut impl FnMut(ScsiCompletion)) {
        let Some((slot, k, generation)) = self.decode(c.tag) else {
            return;
        };
        if self.generations[slot] != generation {
            return;
        }
        let Some(cmd) = self.commands[slot] else {
            return;
        };
        if k >= usize::from(cmd.count) {
            return;
        }
        self.record(slot, BlockOutcome::from_blkif(&cmd.ops[k], &c), complete);
    }

    fn record(
        &mut self,
        slot: usize,
        outcome: BlockOutcome,
        complete: &mut impl FnMut(ScsiCompletion),
    ) {
        let Some(cmd) = self.commands[slot].as_mut() else {
            return;
        };
        if let Some(done) = cmd.pending.record(outcome) {
            self.commands[slot] = None;
            complete(done);
        }
    }
}
