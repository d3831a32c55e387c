//! The PnP state machine of the bus driver's FDO (the device object it attaches to the Xen
//! platform PCI device's PDO).
//!
//! The dispatch routine feeds each `IRP_MJ_PNP` minor code to [`Fdo::on_pnp`], performs the
//! returned [`FdoAction`] and, for a start, reports the outcome with [`Fdo::start_finished`]. The
//! machine encodes the WDM rules for a function driver:
//! - START is forwarded to the lower drivers first; the hardware is started only after they
//!   succeed.
//! - QUERY_STOP/QUERY_REMOVE are accepted (and passed down with success) and remembered, so a
//!   CANCEL returns to the state before the query.
//! - STOP and SURPRISE_REMOVAL release the hardware before passing the IRP down; REMOVE releases
//!   it only if no earlier STOP or SURPRISE_REMOVAL did, then passes the IRP down and deletes
//!   the FDO. Nothing is released twice.
//! - After REMOVE, any further PnP IRP fails with `STATUS_NO_SUCH_DEVICE` (the PnP manager does
//!   not send any; the check guards against our own mistakes).
//!
//! Concurrency: the PnP manager serialises PnP IRPs for a device, so one [`Fdo`] is driven by one
//! thread at a time (PASSIVE_LEVEL).
#![forbid(unsafe_code)]

use win_km::status::{NtStatus, STATUS_NO_SUCH_DEVICE, STATUS_SUCCESS};

/// `IRP_MN_*` minor codes of `IRP_MJ_PNP` the FDO handles.
pub mod minor {
    /// `IRP_MN_START_DEVICE`.
    pub const START_DEVICE: u8 = 0x00;
    /// `IRP_MN_QUERY_REMOVE_DEVICE`.
    pub const QUERY_REMOVE_DEVICE: u8 = 0x01;
    /// `IRP_MN_REMOVE_DEVICE`.
    pub const REMOVE_DEVICE: u8 = 0x02;
    /// `IRP_MN_CANCEL_REMOVE_DEVICE`.
    pub const CANCEL_REMOVE_DEVICE: u8 = 0x03;
    /// `IRP_MN_STOP_DEVICE`.
    pub const STOP_DEVICE: u8 = 0x04;
    /// `IRP_MN_QUERY_STOP_DEVICE`.
    pub const QUERY_STOP_DEVICE: u8 = 0x05;
    /// `IRP_MN_CANCEL_STOP_DEVICE`.
    pub const CANCEL_STOP_DEVICE: u8 = 0x06;
    /// `IRP_MN_SURPRISE_REMOVAL`.
    pub const SURPRISE_REMOVAL: u8 = 0x17;
}

/// Where the FDO is in its PnP life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdoState {
    /// Created by AddDevice, not started (or a start failed).
    NotStarted,
    /// Started: the hardware is in use.
    Started,
    /// QUERY_STOP accepted.
    StopPending,
    /// Stopped for resource rebalancing: hardware released, may be started again.
    Stopped,
    /// QUERY_REMOVE accepted.
    RemovePending,
    /// SURPRISE_REMOVAL received: hardware released, only REMOVE follows.
    SurpriseRemoved,
    /// REMOVE handled: the FDO is being deleted.
    Removed,
}

/// What the dispatch routine must do with a PnP IRP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdoAction {
    /// Forward the IRP synchronously, start the hardware if the lower drivers succeeded, report
    /// the outcome with [`Fdo::start_finished`] and complete the IRP with it.
    Start,
    /// Set the IRP's status to success and pass it down.
    SucceedAndPassDown,
    /// Release the hardware, then set success and pass the IRP down.
    ReleaseAndPassDown,
    /// Release the hardware if `release` (otherwise it already was), set success, pass the IRP
    /// down, then detach from the lower device and delete the FDO.
    Remove {
        /// Whether the hardware is still held.
        release: bool,
    },
    /// Pass the IRP down without touching its status (minor codes this driver does not handle).
    PassDown,
    /// Complete the IRP here with this status.
    Complete(NtStatus),
}

/// The FDO's PnP state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fdo {
    state: FdoState,
    /// The state a QUERY_STOP or QUERY_REMOVE left, for its CANCEL.
    before_query: FdoState,
    /// The state a START left, restored if the start fails.
    before_start: FdoState,
}

impl Default for Fdo {
    fn default() -> Self {
        Self::new()
    }
}

impl Fdo {
    /// A freshly added FDO.
    pub const fn new() -> Self {
        Self {
            state: FdoState::NotStarted,
            before_query: FdoState::NotStarted,
            before_start: FdoState::NotStarted,
        }
    }

    /// The current state.
    pub fn state(&self) -> FdoState {
        self.state
    }

    /// Whether the hardware is held (started and not yet released).
    pub fn hardware_held(&self) -> bool {
        match self.state {
            FdoState::Started | FdoState::StopPending => true,
            FdoState::RemovePending => self.before_query == FdoState::Started,
            _ => false,
        }
    }

    /// Decides what to do with PnP minor code `minor`.
    pub fn on_pnp(&mut self, minor_code: u8) -> FdoAction {
        use FdoState as S;
        if self.state == S::Removed {
            return FdoAction::Complete(STATUS_NO_SUCH_DEVICE);
        }
        match minor_code {
            minor::START_DEVICE => match self.state {
                S::NotStarted | S::Stopped => {
                    self.before_start = self.state;
                    FdoAction::Start
                }
                // Already started: nothing to do, and the lower drivers must not see a second
                // start for the same resources.
                S::Started => FdoAction::Complete(STATUS_SUCCESS),
                _ => FdoAction::PassDown,
            },
            minor::QUERY_STOP_DEVICE => match self.state {
                S::Started => {
                    self.before_query = self.state;
                    self.state = S::StopPending;
                    FdoAction::SucceedAndPassDown
                }
                _ => FdoAction::PassDown,
            },
            minor::CANCEL_STOP_DEVICE => {
                if self.state == S::StopPending {
                    self.state = self.before_query;
                }
                FdoAction::SucceedAndPassDown
            }
            minor::STOP_DEVICE => {
                let release = self.hardware_held();
                if release {
                    self.state = S::Stopped;
                    FdoAction::ReleaseAndPassDown
                } else {
                    FdoAction::SucceedAndPassDown
                }
            }
            minor::QUERY_REMOVE_DEVICE => match self.state {
                S::NotStarted | S::Started | S::Stopped => {
                    self.before_query = self.state;
                    self.state = S::RemovePending;
                    FdoAction::SucceedAndPassDown
                }
                _ => FdoAction::PassDown,
            },
            minor::CANCEL_REMOVE_DEVICE => {
                if self.state == S::RemovePending {
                    self.state = self.before_query;
                }
                FdoAction::SucceedAndPassDown
            }
            minor::SURPRISE_REMOVAL => {
                let release = self.hardware_held();
                self.state = S::SurpriseRemoved;
                if release {
                    FdoAction::ReleaseAndPassDown
                } else {
                    FdoAction::SucceedAndPassDown
                }
            }
            minor::REMOVE_DEVICE => {
                let release = self.hardware_held();
                self.state = S::Removed;
                FdoAction::Remove { release }
            }
            _ => FdoAction::PassDown,
        }
    }

    /// Records the outcome of an [`FdoAction::Start`].
    pub fn start_finished(&mut self, started: bool) {
        self.state = if started {
            FdoState::Started
        } else {
            self.before_start
        };
    }
}

#[cfg(test)]
mod tests {
    use super::minor::*;
    use super::*;

    fn started() -> Fdo {
        let mut fdo = Fdo::new();
        assert_eq!(fdo.on_pnp(START_DEVICE), FdoAction::Start);
        fdo.start_finished(true);
        assert_eq!(fdo.state(), FdoState::Started);
        fdo
    }

    #[test]
    fn failed_start_leaves_the_device_not_started_and_remove_releases_nothing() {
        let mut fdo = Fdo::new();
        assert_eq!(fdo.on_pnp(START_DEVICE), FdoAction::Start);
        fdo.start_finished(false);
        assert_eq!(fdo.state(), FdoState::NotStarted);
        assert!(!fdo.hardware_held());
        assert_eq!(
            fdo.on_pnp(REMOVE_DEVICE),
            FdoAction::Remove { release: false }
        );
    }

    #[test]
    fn query_remove_then_remove_releases_once() {
        let mut fdo = started();
        assert_eq!(
            fdo.on_pnp(QUERY_REMOVE_DEVICE),
            FdoAction::SucceedAndPassDown
        );
        assert!(fdo.hardware_held());
        assert_eq!(
            fdo.on_pnp(REMOVE_DEVICE),
            FdoAction::Remove { release: true }
        );
        assert_eq!(
            fdo.on_pnp(START_DEVICE),
            FdoAction::Complete(STATUS_NO_SUCH_DEVICE)
        );
    }

    #[test]
    fn cancel_remove_returns_to_the_state_before_the_query() {
        let mut fdo = started();
        fdo.on_pnp(QUERY_REMOVE_DEVICE);
        assert_eq!(
            fdo.on_pnp(CANCEL_REMOVE_DEVICE),
            FdoAction::SucceedAndPassDown
        );
        assert_eq!(fdo.state(), FdoState::Started);

        let mut idle = Fdo::new();
        idle.on_pnp(QUERY_REMOVE_DEVICE);
        idle.on_pnp(CANCEL_REMOVE_DEVICE);
        assert_eq!(idle.state(), FdoState::NotStarted);
    }

    #[test]
    fn surprise_removal_releases_and_the_later_remove_does_not() {
        let mut fdo = started();
        assert_eq!(fdo.on_pnp(SURPRISE_REMOVAL), FdoAction::ReleaseAndPassDown);
        assert_eq!(fdo.state(), FdoState::SurpriseRemoved);
        assert_eq!(
            fdo.on_pnp(REMOVE_DEVICE),
            FdoAction::Remove { release: false }
        );
    }

    #[test]
    fn surprise_removal_after_query_remove_releases_once() {
        let mut fdo = started();
        fdo.on_pnp(QUERY_REMOVE_DEVICE);
        assert_eq!(fdo.on_pnp(SURPRISE_REMOVAL), FdoAction::ReleaseAndPassDown);
        assert_eq!(
            fdo.on_pnp(REMOVE_DEVICE),
            FdoAction::Remove { release: false }
        );
    }

    #[test]
    fn stop_and_restart_for_rebalancing() {
        let mut fdo = started();
        assert_eq!(fdo.on_pnp(QUERY_STOP_DEVICE), FdoAction::SucceedAndPassDown);
        assert_eq!(
            fdo.on_pnp(CANCEL_STOP_DEVICE),
            FdoAction::SucceedAndPassDown
        );
        assert_eq!(fdo.state(), FdoState::Started);
        fdo.on_pnp(QUERY_STOP_DEVICE);
        assert_eq!(fdo.on_pnp(STOP_DEVICE), FdoAction::ReleaseAndPassDown);
        assert_eq!(fdo.state(), FdoState::Stopped);
        assert!(!fdo.hardware_held());
        assert_eq!(fdo.on_pnp(START_DEVICE), FdoAction::Start);
        fdo.start_finished(false);
        assert_eq!(fdo.state(), FdoState::Stopped);
        assert_eq!(
            fdo.on_pnp(REMOVE_DEVICE),
            FdoAction::Remove { release: false }
        );
    }

    #[test]
    fn second_start_is_not_forwarded() {
        let mut fdo = started();
        assert_eq!(
            fdo.on_pnp(START_DEVICE),
            FdoAction::Complete(STATUS_SUCCESS)
        );
    }

    #[test]
    fn unknown_minor_codes_pass_down_unchanged() {
        let mut fdo = started();
        for code in [0x07, 0x09, 0x0c, 0x13, 0x14, 0x16, 0x18, 0xff] {
            assert_eq!(fdo.on_pnp(code), FdoAction::PassDown);
        }
        assert_eq!(fdo.state(), FdoState::Started);
    }

    #[test]
    fn no_sequence_releases_twice_or_releases_what_was_never_started() {
        // Exhaustive over all sequences of four minor codes (with start outcomes): a release is
        // requested only while the hardware is held, and after it the hardware is not held.
        let codes = [
            START_DEVICE,
            QUERY_REMOVE_DEVICE,
            REMOVE_DEVICE,
            CANCEL_REMOVE_DEVICE,
            STOP_DEVICE,
            QUERY_STOP_DEVICE,
            CANCEL_STOP_DEVICE,
            SURPRISE_REMOVAL,
        ];
        let n = codes.len() * 2;
        for seq in 0..n.pow(4) {
            let mut fdo = Fdo::new();
            let mut held = false;
            let mut rest = seq;
            for _ in 0..4 {
                let pick = rest % n;
                rest /= n;
                let (code, start_ok) = (codes[pick / 2], pick % 2 == 0);
                match fdo.on_pnp(code) {
                    FdoAction::Start => {
                        assert!(!held, "start while holding hardware");
                        fdo.start_finished(start_ok);
                        held = start_ok;
                    }
                    FdoAction::ReleaseAndPassDown | FdoAction::Remove { release: true } => {
                        assert!(held, "release of hardware not held ({seq})");
                        held = false;
                    }
                    _ => {}
                }
                assert_eq!(held, fdo.hardware_held(), "tracking diverged ({seq})");
            }
        }
    }
}
