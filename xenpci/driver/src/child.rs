//! The PnP state machine of a child PDO (one per xenbus device), as the bus driver keeps it.
//!
//! A PDO belongs to the bus driver, which completes its PnP IRPs itself (there is no device
//! below it). The rules that differ from a function driver's:
//! - REMOVE deletes the PDO only if the bus has already reported the child missing (left it out
//!   of `BusRelations`); while the child is still on the bus, REMOVE (the device was disabled or
//!   its driver uninstalled) returns the PDO to not-started, ready for a new START.
//! - When enumeration loses a child ([`ChildPdo::mark_missing`]), the PnP manager, once the next
//!   `BusRelations` answer leaves it out, sends SURPRISE_REMOVAL (if started) and REMOVE, and
//!   the PDO is deleted on that REMOVE. A PDO the PnP manager never saw (created after the last
//!   `BusRelations` answer) is deleted by the bus at once.
//! - Minor codes the bus does not handle complete with the IRP's status unchanged.
//!
//! Concurrency: the PnP manager serialises PnP IRPs for one PDO, but not with the FDO's
//! enumeration, which calls [`ChildPdo::mark_reported`] and [`ChildPdo::mark_missing`]; the bus
//! therefore keeps its children under the one lock that guards its child list.
#![forbid(unsafe_code)]

use win_km::status::{NtStatus, STATUS_SUCCESS};

use crate::pnp::minor;

/// A child PDO's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PdoState {
    /// Created and reported, not started (or removed while still present).
    NotStarted,
    /// Started: a function driver uses the child.
    Started,
    /// QUERY_STOP accepted.
    StopPending,
    /// Stopped for rebalancing.
    Stopped,
    /// QUERY_REMOVE accepted.
    RemovePending,
    /// SURPRISE_REMOVAL received.
    SurpriseRemoved,
    /// Deleted: the bus must free the PDO.
    Deleted,
}

/// What the bus does with a child's PnP IRP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PdoAction {
    /// Complete the IRP with this status.
    Complete(NtStatus),
    /// Complete the IRP with the status it carries (a minor code the bus does not handle).
    CompleteUnchanged,
    /// Complete with success, then delete the PDO.
    CompleteAndDelete,
}

/// One child PDO.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChildPdo {
    state: PdoState,
    before_query: PdoState,
    /// The bus no longer lists the child.
    missing: bool,
    /// A `BusRelations` answer has listed the child, so the PnP manager knows it.
    reported_once: bool,
}

impl Default for ChildPdo {
    fn default() -> Self {
        Self::new()
    }
}

impl ChildPdo {
    /// A child just found by enumeration.
    pub const fn new() -> Self {
        Self {
            state: PdoState::NotStarted,
            before_query: PdoState::NotStarted,
            missing: false,
            reported_once: false,
        }
    }

    /// The state.
    pub fn state(&self) -> PdoState {
        self.state
    }

    /// Whether the bus has reported the child missing.
    pub fn missing(&self) -> bool {
        self.missing
    }

    /// Whether the child should be listed in the next `BusRelations` answer.
    pub fn reported(&self) -> bool {
        !self.missing && self.state != PdoState::Deleted
    }

    /// Decides what to do with PnP minor code `minor_code`.
    pub fn on_pnp(&mut self, minor_code: u8) -> PdoAction {
        use PdoState as S;
        if self.state == S::Deleted {
            return PdoAction::Complete(win_km::status::STATUS_NO_SUCH_DEVICE);
        }
        match minor_code {
            minor::START_DEVICE => match self.state {
                S::NotStarted | S::Stopped | S::Started => {
                    self.state = S::Started;
                    PdoAction::Complete(STATUS_SUCCESS)
                }
                _ => PdoAction::CompleteUnchanged,
            },
            minor::QUERY_STOP_DEVICE if self.state == S::Started => {
                self.before_query = self.state;
                self.state = S::StopPending;
                PdoAction::Complete(STATUS_SUCCESS)
            }
            minor::CANCEL_STOP_DEVICE => {
                if self.state == S::StopPending {
                    self.state = self.before_query;
                }
                PdoAction::Complete(STATUS_SUCCESS)
            }
            minor::STOP_DEVICE => {
                if matches!(self.state, S::Started | S::StopPending) {
                    self.state = S::Stopped;
                }
                PdoAction::Complete(STATUS_SUCCESS)
            }
            minor::QUERY_REMOVE_DEVICE
                if matches!(self.state, S::NotStarted | S::Started | S::Stopped) =>
            {
                self.before_query = self.state;
                self.state = S::RemovePending;
                PdoAction::Complete(STATUS_SUCCESS)
            }
            minor::CANCEL_REMOVE_DEVICE => {
                if self.state == S::RemovePending {
                    self.state = self.before_query;
                }
                PdoAction::Complete(STATUS_SUCCESS)
            }
            minor::SURPRISE_REMOVAL => {
                self.state = S::SurpriseRemoved;
                PdoAction::Complete(STATUS_SUCCESS)
            }
            minor::REMOVE_DEVICE => {
                if self.missing {
                    self.state = S::Deleted;
                    PdoAction::CompleteAndDelete
                } else {
                    self.state = S::NotStarted;
                    PdoAction::Complete(STATUS_SUCCESS)
                }
            }
            // QUERY_STOP/QUERY_REMOVE in states where they do not apply: accept without a
            // state change is wrong (a later CANCEL would restore a stale state), so refuse
            // politely by leaving the status as it is.
            _ => PdoAction::CompleteUnchanged,
        }
    }

    /// Records that a `BusRelations` answer listed the child.
    pub fn mark_reported(&mut self) {
        self.reported_once = true;
    }

    /// Enumeration no longer finds the child. Returns `true` when the bus must delete the PDO
    /// now (the PnP manager never saw it); otherwise REMOVE will delete it.
    pub fn mark_missing(&mut self) -> bool {
        self.missing = true;
        if !self.reported_once {
            self.state = PdoState::Deleted;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::minor::*;
    use super::*;

    fn reported_and_started() -> ChildPdo {
        let mut pdo = ChildPdo::new();
        pdo.mark_reported();
        assert_eq!(
            pdo.on_pnp(START_DEVICE),
            PdoAction::Complete(STATUS_SUCCESS)
        );
        pdo
    }

    #[test]
    fn remove_while_present_keeps_the_pdo_for_a_new_start() {
        let mut pdo = reported_and_started();
        assert_eq!(
            pdo.on_pnp(QUERY_REMOVE_DEVICE),
            PdoAction::Complete(STATUS_SUCCESS)
        );
        assert_eq!(
            pdo.on_pnp(REMOVE_DEVICE),
            PdoAction::Complete(STATUS_SUCCESS)
        );
        assert_eq!(pdo.state(), PdoState::NotStarted);
        assert!(pdo.reported());
        assert_eq!(
            pdo.on_pnp(START_DEVICE),
            PdoAction::Complete(STATUS_SUCCESS)
        );
        assert_eq!(pdo.state(), PdoState::Started);
    }

    #[test]
    fn unplug_of_a_started_child_surprise_removal_then_remove_deletes() {
        let mut pdo = reported_and_started();
        assert!(!pdo.mark_missing());
        assert!(!pdo.reported());
        assert_eq!(
            pdo.on_pnp(SURPRISE_REMOVAL),
            PdoAction::Complete(STATUS_SUCCESS)
        );
        assert_eq!(pdo.on_pnp(REMOVE_DEVICE), PdoAction::CompleteAndDelete);
        assert_eq!(pdo.state(), PdoState::Deleted);
        assert_eq!(
            pdo.on_pnp(START_DEVICE),
            PdoAction::Complete(win_km::status::STATUS_NO_SUCH_DEVICE)
        );
    }

    #[test]
    fn removed_while_present_then_unplugged_is_deleted_by_the_next_remove() {
        let mut pdo = reported_and_started();
        pdo.on_pnp(REMOVE_DEVICE);
        assert!(!pdo.mark_missing());
        assert_eq!(pdo.on_pnp(REMOVE_DEVICE), PdoAction::CompleteAndDelete);
    }

    #[test]
    fn a_child_never_reported_is_deleted_by_the_bus() {
        let mut pdo = ChildPdo::new();
        assert!(pdo.mark_missing());
        assert_eq!(pdo.state(), PdoState::Deleted);
        assert!(!pdo.reported());
    }

    #[test]
    fn queries_and_cancels_restore_the_state() {
        let mut pdo = reported_and_started();
        pdo.on_pnp(QUERY_STOP_DEVICE);
        assert_eq!(pdo.state(), PdoState::StopPending);
        pdo.on_pnp(CANCEL_STOP_DEVICE);
        assert_eq!(pdo.state(), PdoState::Started);
        pdo.on_pnp(QUERY_STOP_DEVICE);
        pdo.on_pnp(STOP_DEVICE);
        assert_eq!(pdo.state(), PdoState::Stopped);
        pdo.on_pnp(QUERY_REMOVE_DEVICE);
        pdo.on_pnp(CANCEL_REMOVE_DEVICE);
        assert_eq!(pdo.state(), PdoState::Stopped);
    }

    #[test]
    fn unhandled_minor_codes_keep_their_status() {
        let mut pdo = ChildPdo::new();
        for code in [0x07, 0x08, 0x09, 0x0d, 0x13, 0x14, 0x18, 0x19] {
            assert_eq!(pdo.on_pnp(code), PdoAction::CompleteUnchanged);
        }
        // A query that does not apply in this state is not accepted.
        assert_eq!(pdo.on_pnp(QUERY_STOP_DEVICE), PdoAction::CompleteUnchanged);
    }

    #[test]
    fn deletion_happens_only_for_missing_children_and_only_once() {
        // Every sequence of five events (PnP minor codes and the bus losing the child):
        // a deletion is asked for at most once, only for a missing child, and a child the PnP
        // manager knows is deleted only by REMOVE.
        let events: [Option<u8>; 9] = [
            Some(START_DEVICE),
            Some(QUERY_REMOVE_DEVICE),
            Some(REMOVE_DEVICE),
            Some(CANCEL_REMOVE_DEVICE),
            Some(STOP_DEVICE),
            Some(QUERY_STOP_DEVICE),
            Some(CANCEL_STOP_DEVICE),
            Some(SURPRISE_REMOVAL),
            None,
        ];
        let n = events.len();
        for seq in 0..n.pow(5) {
            let mut pdo = ChildPdo::new();
            pdo.mark_reported();
            let mut deletions = 0;
            let mut rest = seq;
            for _ in 0..5 {
                let event = events[rest % n];
                rest /= n;
                match event {
                    Some(code) => {
                        if pdo.on_pnp(code) == PdoAction::CompleteAndDelete {
                            assert!(pdo.missing(), "deleted a present child ({seq})");
                            assert_eq!(code, REMOVE_DEVICE);
                            deletions += 1;
                        }
                    }
                    None => assert!(!pdo.mark_missing(), "a known child deleted without REMOVE"),
                }
            }
            assert!(deletions <= 1, "deleted twice ({seq})");
        }
    }
}
