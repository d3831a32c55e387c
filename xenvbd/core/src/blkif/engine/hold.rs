//! Ownership against the backend, deadlines, abort and reset.
//!
//! # The ownership rule
//! A page the backend may still map is neither handed back to the caller nor reused. Every grant
//! the engine holds is an [`Access`] kept where the page is recorded (a piece of a job for the
//! caller's pages, a pool or indirect page, a ring page). Ending it through [`Grants::end`]
//! either frees it or, while the backend still maps the page, leaves it
//! [`Access::Revoking`]: the grant stays in force and [`Blkif::on_timer`] tries again. A job
//! whose outcome is decided completes only when none of its pieces holds an access; a pool or
//! indirect page returns to its pool only then. Past [`Timeouts::revocation`] the engine gives
//! up: the access becomes [`Access::Lost`], the page is never reused (the operation owning it
//! never completes), the device fails with [`EngineError::GrantHeld`] and the loss is logged
//! ([`LogEvent::Leaked`]) and counted.

use xen_abi::types::GrantRef;

use super::{Blkif, EngineState};
use crate::blkif::{
    BlockCompletion, BlockStatus, Counters, Ended, EngineError, Events, Grants, Io, LogEvent,
};
use crate::types::{GuestMemory, Tag};

/// A grant the engine holds on a page, and where its revocation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Access {
    /// No grant: the page is the guest's.
    None,
    /// Granted to the backend.
    Granted(GrantRef),
    /// Ended while the backend still mapped the page; tried again by [`Blkif::on_timer`].
    Revoking {
        /// The reference, still granted.
        gref: GrantRef,
        /// Engine time of the first attempt.
        since: u64,
    },
    /// Given up on: the page is never reused.
    Lost,
}

impl Access {
    /// The reference while granted and in use.
    pub(super) fn granted(self) -> Option<GrantRef> {
        match self {
            Access::Granted(g) => Some(g),
            _ => None,
        }
    }

    /// Whether the backend may still map the page after its grant was ended.
    fn held(self) -> bool {
        matches!(self, Access::Revoking { .. } | Access::Lost)
    }
}

/// The engine's clock and the revocations in progress.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Ledger {
    /// The latest time given to [`Blkif::on_timer`].
    pub(super) now: u64,
    /// Accesses in [`Access::Revoking`].
    pub(super) revoking: u32,
    /// [`Counters::leaked_pages`] when [`Blkif::on_timer`] last looked for operations that lost
    /// a page.
    pub(super) leaked_seen: u64,
}

impl Ledger {
    pub(super) const ZERO: Ledger = Ledger {
        now: 0,
        revoking: 0,
        leaked_seen: 0,
    };

    /// Gives up on `access` (anything but [`Access::None`]): it becomes [`Access::Lost`].
    pub(super) fn give_up(&mut self, access: &mut Access, counters: &mut Counters) {
        match *access {
            Access::None | Access::Lost => return,
            Access::Revoking { .. } => self.revoking = self.revoking.saturating_sub(1),
            Access::Granted(_) => {}
        }
        *access = Access::Lost;
        counters.leaked_pages += 1;
    }
}

/// Ends `access` (a grant, or a revocation still waiting); true when the page is free of the
/// backend.
pub(super) fn revoke<G: Grants>(
    access: &mut Access,
    grants: &mut G,
    ledger: &mut Ledger,
    counters: &mut Counters,
) -> bool {
    let (gref, retry) = match *access {
        Access::None => return true,
        Access::Lost => return false,
        Access::Granted(g) => (g, false),
        Access::Revoking { gref, .. } => (gref, true),
    };
    match grants.end(gref) {
        Ok(Ended::Revoked) => {
            if retry {
                ledger.revoking = ledger.revoking.saturating_sub(1);
                counters.revocations_completed += 1;
            }
            *access = Access::None;
            true
        }
        Ok(Ended::StillMapped) => {
            if !retry {
                ledger.revoking += 1;
                counters.deferred_revocations += 1;
                *access = Access::Revoking {
                    gref,
                    since: ledger.now,
                };
            }
            false
        }
        // The table took the reference over, or refused it: nobody can tell when the page is
        // free, so it never is.
        Ok(Ended::Abandoned) | Err(_) => {
            ledger.give_up(access, counters);
            false
        }
    }
}

/// Tries a waiting revocation again; past `limit` gives up on it and returns its reference.
fn retry<G: Grants>(
    access: &mut Access,
    grants: &mut G,
    ledger: &mut Ledger,
    counters: &mut Counters,
    limit: u64,
) -> Option<GrantRef> {
    let Access::Revoking { gref, since } = *access else {
        return None;
    };
    if revoke(access, grants, ledger, counters) || !matches!(access, Access::Revoking { .. }) {
        return None;
    }
    if ledger.now.saturating_sub(since) < limit {
        return None;
    }
    ledger.give_up(access, counters);
    Some(gref)
}

/// Deadlines, in the unit of the `now` the shell passes to [`Blkif::on_timer`] (the defaults
/// assume milliseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// How long an operation may stay uncompleted after [`Blkif::submit`] before
    /// [`Blkif::on_timer`] reports it ([`TimerReport::timed_out`]).
    pub request: u64,
    /// How long the backend may keep a page mapped after its grant was ended before the engine
    /// gives up on the page (leaks it) and fails the device.
    pub revocation: u64,
}

impl Timeouts {
    /// 30 000 each (30 s when `now` counts milliseconds).
    pub const DEFAULT: Timeouts = Timeouts {
        request: 30_000,
        revocation: 30_000,
    };
}

impl Default for Timeouts {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What [`Blkif::on_timer`] found. The engine decides nothing about a timeout: the shell aborts
/// the operations ([`Blkif::abort`]) or resets the device ([`Blkif::reset`]), and then
/// reconnects ([`Blkif::disconnect`] and the handshake) or gives up
/// ([`Blkif::shutdown`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimerReport {
    /// Operations past [`Timeouts::request`] and not completed.
    pub timed_out: u32,
    /// The oldest of them.
    pub first_timed_out: Option<Tag>,
    /// Grants whose revocation waits for the backend to unmap the page.
    pub revoking: u32,
    /// Pages given up on in this call (the device failed with [`EngineError::GrantHeld`]).
    pub leaked: u32,
}

impl TimerReport {
    /// Whether the shell has a timeout to decide on.
    pub fn needs_decision(&self) -> bool {
        self.timed_out > 0
    }
}

/// Memory the backend may still map: it must outlive the engine (leaked if need be) and must
/// not be given to anyone else.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Holdings {
    /// Operations decided but not completed because the backend maps one of their pages.
    pub operations: usize,
    /// Bounce/persistent pages held.
    pub pool_pages: usize,
    /// Indirect pages held.
    pub indirect_pages: usize,
    /// Ring pages held (of the current or a torn-down ring).
    pub ring_pages: usize,
    /// Pages given up on since the engine started: never to be freed.
    pub leaked: u64,
}

impl Holdings {
    /// Nothing is held: every page may be freed.
    pub fn is_empty(&self) -> bool {
        self.operations == 0
            && self.pool_pages == 0
            && self.indirect_pages == 0
            && self.ring_pages == 0
            && self.leaked == 0
    }
}

impl<
        const JOBS: usize,
        const SEGS: usize,
        const SLOTS: usize,
        const POOL: usize,
        const IND: usize,
    > Blkif<JOBS, SEGS, SLOTS, POOL, IND>
{
    /// The shell's periodic timer (any period; StorPort's `HwTimer` or a DPC timer), with a
    /// monotonic `now`: tries the revocations the backend held up again (completing the
    /// operations that waited only for that, returning pages to their pools), gives up on those
    /// past [`Timeouts::revocation`], issues work that waits for grants, pool pages or ring
    /// space (so that nothing waits with nothing to wake it), and reports the operations past
    /// their deadline.
    pub fn on_timer<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        now: u64,
        io: &mut Io<'_, G, N, M>,
        mut complete: impl FnMut(BlockCompletion),
    ) -> TimerReport {
        self.ledger.now = self.ledger.now.max(now);
        let mut report = TimerReport::default();
        if self.ledger.revoking > 0 {
            let limit = self.config.timeouts.revocation;
            let mut first_lost = None;
            for job in self.jobs.iter_mut().filter(|j| j.live) {
                for piece in job.pieces.iter_mut() {
                    let ledger = &mut self.ledger;
                    if let Some(gref) = retry(
                        &mut piece.gref,
                        io.grants,
                        ledger,
                        &mut self.counters,
                        limit,
                    ) {
                        io.events.log(LogEvent::Leaked {
                            gref,
                            tag: Some(job.tag),
                        });
                        first_lost = first_lost.or(Some(gref));
                        report.leaked += 1;
                    }
                }
            }
            let pages = self.pool.iter_mut().chain(self.indirect.iter_mut());
            let accesses = pages
                .flat_map(|p| [&mut p.gref, &mut p.persistent])
                .chain(self.ring_grefs.iter_mut().flatten())
                .chain(self.old_ring_grefs.iter_mut().flatten());
            for access in accesses {
                let ledger = &mut self.ledger;
                if let Some(gref) = retry(access, io.grants, ledger, &mut self.counters, limit) {
                    io.events.log(LogEvent::Leaked { gref, tag: None });
                    first_lost = first_lost.or(Some(gref));
                    report.leaked += 1;
                }
            }
            if let Some(gref) = first_lost {
                if !matches!(self.state, EngineState::Closed | EngineState::Failed(_)) {
                    self.fail(EngineError::GrantHeld { gref }, io);
                }
            }
        }
        if self.counters.leaked_pages != self.ledger.leaked_seen {
            self.ledger.leaked_seen = self.counters.leaked_pages;
            // An operation with a lost page (given up on here, or abandoned to the grant table
            // when it was ended) can never be issued again nor completed: it leaves the queue so
            // that it blocks nothing after a reconnect.
            let mut k = 0;
            while k < self.order_len {
                let j = usize::from(self.order[k]);
                if self.jobs[j].pieces.iter().any(|p| p.gref == Access::Lost) {
                    self.decide(j, BlockStatus::Disconnected, 0, &mut complete);
                } else {
                    k += 1;
                }
            }
        }
        for j in 0..JOBS {
            self.settle(j, &mut complete);
        }
        self.dispatch(io, &mut complete);
        let deadline = self.config.timeouts.request;
        for &j in &self.order[..self.order_len] {
            let job = &self.jobs[j as usize];
            if self.ledger.now.saturating_sub(job.submitted) >= deadline {
                report.timed_out += 1;
                report.first_timed_out = report.first_timed_out.or(Some(job.tag));
            }
        }
        report.revoking = self.ledger.revoking;
        report
    }

    /// Aborts the operation `tag` (the SCSI abort of one command): its unissued parts are
    /// dropped, the grants on its pages are ended at once, and it completes with
    /// [`BlockStatus::Aborted`] as soon as the backend maps none of its pages (now, or from
    /// [`on_timer`](Self::on_timer)). Answers to its requests still on the ring are taken and
    /// dropped. False when no uncompleted operation has that tag.
    pub fn abort<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        tag: Tag,
        io: &mut Io<'_, G, N, M>,
        mut complete: impl FnMut(BlockCompletion),
    ) -> bool {
        let found = self.order[..self.order_len]
            .iter()
            .map(|&j| usize::from(j))
            .find(|&j| self.jobs[j].tag == tag);
        let Some(j) = found else {
            return false;
        };
        self.abort_job(j, BlockStatus::Aborted, io, &mut complete);
        // The abort may have unblocked a barrier or freed pool pages.
        self.dispatch(io, &mut complete);
        true
    }

    /// Resets the device (StorPort's bus reset): every uncompleted operation is aborted as by
    /// [`abort`](Self::abort) and completes, exactly once, with [`BlockStatus::Reset`]. The
    /// ring stays connected; requests still out on it are answered into the void (to reclaim
    /// their slots from a backend that never answers, reconnect). Returns how many operations
    /// were reset.
    pub fn reset<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        io: &mut Io<'_, G, N, M>,
        mut complete: impl FnMut(BlockCompletion),
    ) -> usize {
        let mut n = 0;
        while self.order_len > 0 {
            let j = usize::from(self.order[0]);
            self.abort_job(j, BlockStatus::Reset, io, &mut complete);
            n += 1;
        }
        self.publish_order(io);
        n
    }

    /// Stops issuing ring requests (the backend is closing: `FrontendDriver::on_backend_closing`).
    /// Submissions are still queued; answers are still taken. When [`quiesced`](Self::quiesced)
    /// the shell [`disconnect`](Self::disconnect)s; the next [`attach_rings`](Self::attach_rings)
    /// issues again.
    pub fn quiesce(&mut self) {
        self.quiescing = true;
    }

    /// Whether no ring request is out (after [`quiesce`](Self::quiesce)).
    pub fn quiesced(&self) -> bool {
        self.in_flight() == 0
    }

    /// What the backend may still map ([`Holdings`]).
    pub fn holdings(&self) -> Holdings {
        let held = |p: &&super::PoolPage| p.gref.held() || p.persistent.held();
        let rings = self
            .ring_grefs
            .iter()
            .chain(self.old_ring_grefs.iter())
            .flatten()
            .filter(|a| a.held())
            .count();
        Holdings {
            operations: self
                .jobs
                .iter()
                .filter(|j| j.live && !j.delivered && j.pieces.iter().any(|p| p.gref.held()))
                .count(),
            pool_pages: self.pool.iter().filter(held).count(),
            indirect_pages: self.indirect.iter().filter(held).count(),
            ring_pages: rings,
            leaked: self.counters.leaked_pages,
        }
    }

    /// Ends the grants on job `j`'s pages and decides it with `status`.
    fn abort_job<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        j: usize,
        status: BlockStatus,
        io: &mut Io<'_, G, N, M>,
        complete: &mut impl FnMut(BlockCompletion),
    ) {
        for piece in self.jobs[j].pieces.iter_mut() {
            revoke(
                &mut piece.gref,
                io.grants,
                &mut self.ledger,
                &mut self.counters,
            );
        }
        self.counters.aborted += 1;
        self.decide(j, status, 0, complete);
    }

    /// Job `j` has its outcome: it leaves the queue and completes once its pages are free.
    pub(super) fn decide(
        &mut self,
        j: usize,
        status: BlockStatus,
        transferred: u64,
        complete: &mut impl FnMut(BlockCompletion),
    ) {
        if matches!(
            status,
            BlockStatus::IoError | BlockStatus::NotSupported | BlockStatus::Invalid
        ) {
            self.counters.errors += 1;
        }
        self.unlink(j);
        self.jobs[j].result = Some((status, transferred));
        self.settle(j, complete);
    }

    /// Completes job `j` if it is decided and no grant on its pages remains; frees its slot once
    /// none of its requests is out either.
    pub(super) fn settle(&mut self, j: usize, complete: &mut impl FnMut(BlockCompletion)) {
        let job = &mut self.jobs[j];
        let Some((status, transferred)) = job.result else {
            return;
        };
        if !job.live {
            return;
        }
        if !job.delivered {
            if job.holds_guest_pages() {
                return;
            }
            job.delivered = true;
            complete(BlockCompletion {
                tag: job.tag,
                status,
                transferred,
            });
        }
        if job.outstanding == 0 {
            job.live = false;
            self.free_jobs[self.free_jobs_len] = j as u16;
            self.free_jobs_len += 1;
        }
    }

    /// Frees the slots of completed jobs with nothing out (after the ring went away).
    pub(super) fn reap(&mut self) {
        for (j, job) in self.jobs.iter_mut().enumerate() {
            if job.live && job.delivered && job.outstanding == 0 {
                job.live = false;
                self.free_jobs[self.free_jobs_len] = j as u16;
                self.free_jobs_len += 1;
            }
        }
    }
}
