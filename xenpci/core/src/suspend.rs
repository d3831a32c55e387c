//! Suspend and resume: the order of the steps, and what to do when one fails.
//!
//! The work of each step lives with its subsystem (shared info, [`grant_table`](crate::grant_table),
//! [`evtchn`](crate::evtchn), [`xenstore`](crate::xenstore), the class drivers); the shell
//! implements [`SuspendPlatform`] by calling into them. [`SuspendSequence`] owns the order:
//!
//! 1. [`QuiesceChildren`](SuspendStep::QuiesceChildren): every frontend stops issuing requests
//!    and waits for those in flight.
//! 2. [`Hypercall`](SuspendStep::Hypercall): `SCHEDOP_shutdown(SHUTDOWN_suspend)`. It returns
//!    when the domain runs again:
//!    - **1, cancelled**: the same domain goes on (a checkpoint, or the save failed); every
//!      mapping is still valid. Only [`ResumeChildren`](SuspendStep::ResumeChildren) follows.
//!    - **0, resumed** in a new domain (after a restore or migration): everything Xen held for
//!      the guest is gone. [`RestoreSharedInfo`](SuspendStep::RestoreSharedInfo),
//!      [`RestoreGrantTable`](SuspendStep::RestoreGrantTable) (map the grant frames again),
//!      [`RestoreEventChannels`](SuspendStep::RestoreEventChannels) (FIFO control blocks or
//!      2-level state, VIRQs, the store's and console's channels),
//!      [`ResetStore`](SuspendStep::ResetStore) (the store ring, and
//!      [`XsConnection::reset`](crate::xenstore::XsConnection::reset)),
//!      [`ReregisterWatches`](SuspendStep::ReregisterWatches), then
//!      [`ReconnectChildren`](SuspendStep::ReconnectChildren) (each frontend's
//!      [`Handshake::resume`](crate::xenbus::Handshake::resume)).
//!    - anything else: the hypercall failed and the domain never suspended; handled like a
//!      cancellation, and reported as a [`Failure::Hypercall`].
//!
//! # Failures
//! Every error names its step ([`SuspendError::step`]). A failed quiesce or hypercall is
//! followed by [`ResumeChildren`](SuspendStep::ResumeChildren), so the devices work again, and
//! the error says whether that succeeded ([`SuspendError::devices_resumed`]). A failure while
//! restoring a new domain stops the sequence: the later steps depend on the earlier ones, and the
//! shell can only report it (typically by bugchecking with the step as a parameter).
//!
//! The shell may run the sequence in one go ([`SuspendSequence::run`]) or step by step
//! ([`SuspendSequence::step`]) when the steps need different contexts (the hypercall and the
//! three restore steps with the other processors parked and interrupts off, the rest at passive
//! level).

use core::fmt;

/// One step of the sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SuspendStep {
    /// Stop every child's I/O.
    QuiesceChildren,
    /// `SCHEDOP_shutdown(SHUTDOWN_suspend)`.
    Hypercall,
    /// Let the children go on in the same domain (after a cancel or a failure).
    ResumeChildren,
    /// Map the shared-info page again.
    RestoreSharedInfo,
    /// Map the grant frames again.
    RestoreGrantTable,
    /// Set up the event-channel ABI, VIRQs and the bus's own channels again.
    RestoreEventChannels,
    /// Reconnect the store ring and reset the xenstore connection.
    ResetStore,
    /// Register every watch again.
    ReregisterWatches,
    /// Tell every child to reconnect to its backend.
    ReconnectChildren,
}

impl SuspendStep {
    /// The steps after a resume in a new domain, in order.
    pub const RESTORE: [SuspendStep; 6] = [
        SuspendStep::RestoreSharedInfo,
        SuspendStep::RestoreGrantTable,
        SuspendStep::RestoreEventChannels,
        SuspendStep::ResetStore,
        SuspendStep::ReregisterWatches,
        SuspendStep::ReconnectChildren,
    ];
}

/// The subsystem work of each step, implemented by the shell.
pub trait SuspendPlatform {
    /// The shell's error.
    type Error: Copy + fmt::Debug;

    /// Stop every child's I/O and wait for what is in flight.
    fn quiesce_children(&mut self) -> Result<(), Self::Error>;
    /// Issue `SCHEDOP_shutdown(SHUTDOWN_suspend)` and return its result: 1 cancelled, 0 resumed
    /// in a new domain, negative an error.
    fn suspend_hypercall(&mut self) -> i64;
    /// Let the children go on in the same domain.
    fn resume_children(&mut self) -> Result<(), Self::Error>;
    /// Map the shared-info page again.
    fn restore_shared_info(&mut self) -> Result<(), Self::Error>;
    /// Map the grant frames again.
    fn restore_grant_table(&mut self) -> Result<(), Self::Error>;
    /// Set up event channels again.
    fn restore_event_channels(&mut self) -> Result<(), Self::Error>;
    /// Reconnect the store ring and reset the connection.
    fn reset_store(&mut self) -> Result<(), Self::Error>;
    /// Register the watches again.
    fn reregister_watches(&mut self) -> Result<(), Self::Error>;
    /// Tell every child to reconnect.
    fn reconnect_children(&mut self) -> Result<(), Self::Error>;
}

/// What went wrong in a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure<E> {
    /// The platform's step failed.
    Platform(E),
    /// The hypercall returned this (neither 0 nor 1).
    Hypercall(i64),
}

/// A failed suspend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SuspendError<E> {
    /// The step that failed.
    pub step: SuspendStep,
    /// How.
    pub failure: Failure<E>,
    /// Whether the children were resumed afterwards (only after a failed quiesce or
    /// hypercall; false when restoring a new domain failed).
    pub devices_resumed: bool,
}

impl<E: fmt::Debug> fmt::Display for SuspendError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "suspend step {:?} failed: {:?}", self.step, self.failure)?;
        if self.devices_resumed {
            f.write_str(" (devices resumed)")?;
        }
        Ok(())
    }
}

/// How a suspend ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuspendOutcome {
    /// The suspend was cancelled; the same domain goes on.
    Cancelled,
    /// The domain resumed in a new domain and everything was set up again.
    Resumed,
}

/// The result of one [`SuspendSequence::step`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress<E> {
    /// Run this step next.
    Next(SuspendStep),
    /// The sequence is over.
    Finished(Result<SuspendOutcome, SuspendError<E>>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage<E> {
    Run(SuspendStep),
    /// Resuming the children after a failure, which is reported afterwards.
    Recover(SuspendStep, Failure<E>),
    Done(Result<SuspendOutcome, SuspendError<E>>),
}

/// The suspend sequence. See the [module documentation](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SuspendSequence<E> {
    stage: Stage<E>,
}

impl<E: Copy + fmt::Debug> Default for SuspendSequence<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: Copy + fmt::Debug> SuspendSequence<E> {
    /// A sequence about to quiesce the children.
    pub const fn new() -> Self {
        SuspendSequence {
            stage: Stage::Run(SuspendStep::QuiesceChildren),
        }
    }

    /// The step the next [`step`](Self::step) runs; `None` once finished.
    pub fn next_step(&self) -> Option<SuspendStep> {
        match self.stage {
            Stage::Run(s) => Some(s),
            Stage::Recover(..) => Some(SuspendStep::ResumeChildren),
            Stage::Done(_) => None,
        }
    }

    /// The result, once finished.
    pub fn result(&self) -> Option<Result<SuspendOutcome, SuspendError<E>>> {
        match self.stage {
            Stage::Done(r) => Some(r),
            _ => None,
        }
    }

    fn finish(&mut self, r: Result<SuspendOutcome, SuspendError<E>>) -> Progress<E> {
        self.stage = Stage::Done(r);
        Progress::Finished(r)
    }

    fn go(&mut self, next: SuspendStep) -> Progress<E> {
        self.stage = Stage::Run(next);
        Progress::Next(next)
    }

    fn recover(&mut self, step: SuspendStep, failure: Failure<E>) -> Progress<E> {
        self.stage = Stage::Recover(step, failure);
        Progress::Next(SuspendStep::ResumeChildren)
    }

    /// Runs the next step.
    pub fn step<P>(&mut self, p: &mut P) -> Progress<E>
    where
        P: SuspendPlatform<Error = E> + ?Sized,
    {
        use SuspendStep as S;
        let step = match self.stage {
            Stage::Done(r) => return Progress::Finished(r),
            Stage::Recover(step, failure) => {
                let devices_resumed = p.resume_children().is_ok();
                return self.finish(Err(SuspendError {
                    step,
                    failure,
                    devices_resumed,
                }));
            }
            Stage::Run(step) => step,
        };
        let fail = |e| {
            Err(SuspendError {
                step,
                failure: Failure::Platform(e),
                devices_resumed: false,
            })
        };
        match step {
            S::QuiesceChildren => match p.quiesce_children() {
                Ok(()) => self.go(S::Hypercall),
                Err(e) => self.recover(step, Failure::Platform(e)),
            },
            S::Hypercall => match p.suspend_hypercall() {
                1 => self.go(S::ResumeChildren),
                0 => self.go(S::RestoreSharedInfo),
                rc => self.recover(step, Failure::Hypercall(rc)),
            },
            S::ResumeChildren => match p.resume_children() {
                Ok(()) => self.finish(Ok(SuspendOutcome::Cancelled)),
                Err(e) => self.finish(fail(e)),
            },
            restore => {
                let result = match restore {
                    S::RestoreSharedInfo => p.restore_shared_info(),
                    S::RestoreGrantTable => p.restore_grant_table(),
                    S::RestoreEventChannels => p.restore_event_channels(),
                    S::ResetStore => p.reset_store(),
                    S::ReregisterWatches => p.reregister_watches(),
                    _ => p.reconnect_children(),
                };
                if let Err(e) = result {
                    return self.finish(fail(e));
                }
                match S::RESTORE.iter().position(|&s| s == restore) {
                    Some(i) if i + 1 < S::RESTORE.len() => self.go(S::RESTORE[i + 1]),
                    _ => self.finish(Ok(SuspendOutcome::Resumed)),
                }
            }
        }
    }

    /// Runs every remaining step.
    pub fn run<P>(&mut self, p: &mut P) -> Result<SuspendOutcome, SuspendError<E>>
    where
        P: SuspendPlatform<Error = E> + ?Sized,
    {
        loop {
            if let Progress::Finished(r) = self.step(p) {
                return r;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::vec;
    use std::vec::Vec;

    use super::*;
    use SuspendStep as S;

    /// Records the calls; fails the step named in `fail`.
    struct Fake {
        calls: Vec<SuspendStep>,
        rc: i64,
        fail: Vec<SuspendStep>,
    }

    impl Fake {
        fn new(rc: i64, fail: &[SuspendStep]) -> Fake {
            Fake {
                calls: Vec::new(),
                rc,
                fail: fail.to_vec(),
            }
        }
        fn call(&mut self, s: SuspendStep) -> Result<(), u8> {
            self.calls.push(s);
            if self.fail.contains(&s) {
                Err(s as u8)
            } else {
                Ok(())
            }
        }
    }

    impl SuspendPlatform for Fake {
        type Error = u8;
        fn quiesce_children(&mut self) -> Result<(), u8> {
            self.call(S::QuiesceChildren)
        }
        fn suspend_hypercall(&mut self) -> i64 {
            self.calls.push(S::Hypercall);
            self.rc
        }
        fn resume_children(&mut self) -> Result<(), u8> {
            self.call(S::ResumeChildren)
        }
        fn restore_shared_info(&mut self) -> Result<(), u8> {
            self.call(S::RestoreSharedInfo)
        }
        fn restore_grant_table(&mut self) -> Result<(), u8> {
            self.call(S::RestoreGrantTable)
        }
        fn restore_event_channels(&mut self) -> Result<(), u8> {
            self.call(S::RestoreEventChannels)
        }
        fn reset_store(&mut self) -> Result<(), u8> {
            self.call(S::ResetStore)
        }
        fn reregister_watches(&mut self) -> Result<(), u8> {
            self.call(S::ReregisterWatches)
        }
        fn reconnect_children(&mut self) -> Result<(), u8> {
            self.call(S::ReconnectChildren)
        }
    }

    fn run(rc: i64, fail: &[SuspendStep]) -> (Result<SuspendOutcome, SuspendError<u8>>, Vec<S>) {
        let mut p = Fake::new(rc, fail);
        let r = SuspendSequence::new().run(&mut p);
        (r, p.calls)
    }

    const FULL: [S; 8] = [
        S::QuiesceChildren,
        S::Hypercall,
        S::RestoreSharedInfo,
        S::RestoreGrantTable,
        S::RestoreEventChannels,
        S::ResetStore,
        S::ReregisterWatches,
        S::ReconnectChildren,
    ];

    #[test]
    fn resumed_in_a_new_domain_restores_everything_in_order() {
        assert_eq!(run(0, &[]), (Ok(SuspendOutcome::Resumed), FULL.to_vec()));
    }

    #[test]
    fn cancelled_only_resumes_the_children() {
        assert_eq!(
            run(1, &[]),
            (
                Ok(SuspendOutcome::Cancelled),
                vec![S::QuiesceChildren, S::Hypercall, S::ResumeChildren]
            )
        );
    }

    #[test]
    fn each_restore_failure_stops_there_and_names_the_step() {
        for (i, &step) in FULL.iter().enumerate().skip(2) {
            let (r, calls) = run(0, &[step]);
            assert_eq!(
                r,
                Err(SuspendError {
                    step,
                    failure: Failure::Platform(step as u8),
                    devices_resumed: false
                })
            );
            assert_eq!(calls, FULL[..=i].to_vec());
        }
    }

    #[test]
    fn failed_quiesce_or_hypercall_resumes_the_children() {
        let (r, calls) = run(0, &[S::QuiesceChildren]);
        assert_eq!(
            r,
            Err(SuspendError {
                step: S::QuiesceChildren,
                failure: Failure::Platform(S::QuiesceChildren as u8),
                devices_resumed: true
            })
        );
        assert_eq!(calls, vec![S::QuiesceChildren, S::ResumeChildren]);

        for rc in [-38, 2, i64::MIN] {
            let (r, calls) = run(rc, &[]);
            assert_eq!(
                r,
                Err(SuspendError {
                    step: S::Hypercall,
                    failure: Failure::Hypercall(rc),
                    devices_resumed: true
                })
            );
            assert_eq!(
                calls,
                vec![S::QuiesceChildren, S::Hypercall, S::ResumeChildren]
            );
        }

        // And when resuming them fails too, the error says so.
        let (r, _) = run(-1, &[S::ResumeChildren]);
        assert!(!r.unwrap_err().devices_resumed);
        let (r, calls) = run(1, &[S::ResumeChildren]);
        assert_eq!(r.unwrap_err().step, S::ResumeChildren);
        assert_eq!(calls.len(), 3);
    }

    #[test]
    fn stepping_reports_each_next_step() {
        let mut p = Fake::new(0, &[]);
        let mut seq = SuspendSequence::new();
        let mut steps = vec![seq.next_step().unwrap()];
        loop {
            match seq.step(&mut p) {
                Progress::Next(s) => {
                    assert_eq!(seq.next_step(), Some(s));
                    steps.push(s);
                }
                Progress::Finished(r) => {
                    assert_eq!(r, Ok(SuspendOutcome::Resumed));
                    break;
                }
            }
        }
        assert_eq!(steps, FULL.to_vec());
        assert_eq!(seq.next_step(), None);
        assert_eq!(seq.result(), Some(Ok(SuspendOutcome::Resumed)));
        // Stepping a finished sequence does nothing.
        assert_eq!(
            seq.step(&mut p),
            Progress::Finished(Ok(SuspendOutcome::Resumed))
        );
        assert_eq!(p.calls, FULL.to_vec());
    }
}
