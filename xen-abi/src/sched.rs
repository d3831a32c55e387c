//! Scheduler operations (`sched.h`): the `SCHEDOP_*` sub-ops of
//! [`crate::hypercall::HYPERVISOR_SCHED_OP`] and the shutdown reasons.

use crate::types::DomId;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Gives up the physical CPU voluntarily; argument NULL (`SCHEDOP_yield`).
#[doc(alias = "SCHEDOP_yield")]
pub const SCHEDOP_YIELD: u32 = 0;

/// Blocks the vCPU until an event arrives; with upcalls masked, atomically unmasks them and
/// checks for pending events first, so no wake-up is lost. Argument NULL (`SCHEDOP_block`).
#[doc(alias = "SCHEDOP_block")]
pub const SCHEDOP_BLOCK: u32 = 1;

/// Stops the whole domain and tells the toolstack why (`SCHEDOP_shutdown`, argument
/// [`SchedShutdown`]). With [`SHUTDOWN_SUSPEND`] it returns 1 if the suspend was cancelled (or
/// the domain only checkpointed) and 0 when resuming in a new domain.
#[doc(alias = "SCHEDOP_shutdown")]
pub const SCHEDOP_SHUTDOWN: u32 = 2;

/// Waits until one of a set of ports is pending, with an optional timeout (`SCHEDOP_poll`,
/// argument [`SchedPoll`]).
#[doc(alias = "SCHEDOP_poll")]
pub const SCHEDOP_POLL: u32 = 3;

/// Declares the shutdown of another domain, a device model's operation
/// (`SCHEDOP_remote_shutdown`, argument [`SchedRemoteShutdown`]).
#[doc(alias = "SCHEDOP_remote_shutdown")]
pub const SCHEDOP_REMOTE_SHUTDOWN: u32 = 4;

/// Records the reason to report when the domain later shuts down (`SCHEDOP_shutdown_code`,
/// argument [`SchedShutdown`]).
#[doc(alias = "SCHEDOP_shutdown_code")]
pub const SCHEDOP_SHUTDOWN_CODE: u32 = 5;

/// Creates, feeds or destroys a domain watchdog (`SCHEDOP_watchdog`, argument
/// [`SchedWatchdog`]).
#[doc(alias = "SCHEDOP_watchdog")]
pub const SCHEDOP_WATCHDOG: u32 = 6;

/// Pins the vCPU to a physical CPU, hardware domain only (`SCHEDOP_pin_override`, argument
/// [`SchedPinOverride`]).
#[doc(alias = "SCHEDOP_pin_override")]
pub const SCHEDOP_PIN_OVERRIDE: u32 = 7;

/// Shutdown reason: the domain exited normally (`SHUTDOWN_poweroff`).
#[doc(alias = "SHUTDOWN_poweroff")]
pub const SHUTDOWN_POWEROFF: u32 = 0;

/// Shutdown reason: restart the domain (`SHUTDOWN_reboot`).
#[doc(alias = "SHUTDOWN_reboot")]
pub const SHUTDOWN_REBOOT: u32 = 1;

/// Shutdown reason: save the domain for a later resume (`SHUTDOWN_suspend`).
#[doc(alias = "SHUTDOWN_suspend")]
pub const SHUTDOWN_SUSPEND: u32 = 2;

/// Shutdown reason: the domain crashed (`SHUTDOWN_crash`).
#[doc(alias = "SHUTDOWN_crash")]
pub const SHUTDOWN_CRASH: u32 = 3;

/// Shutdown reason: a watchdog expired (`SHUTDOWN_watchdog`).
#[doc(alias = "SHUTDOWN_watchdog")]
pub const SHUTDOWN_WATCHDOG: u32 = 4;

/// Shutdown reason: reset Xen's state for the domain but keep its memory and vCPU contexts, so
/// it can set up its Xen interfaces again (`SHUTDOWN_soft_reset`).
#[doc(alias = "SHUTDOWN_soft_reset")]
pub const SHUTDOWN_SOFT_RESET: u32 = 5;

/// The largest valid shutdown reason (`SHUTDOWN_MAX`).
pub const SHUTDOWN_MAX: u32 = 5;

/// Argument of [`SCHEDOP_SHUTDOWN`] and [`SCHEDOP_SHUTDOWN_CODE`] (`struct sched_shutdown`).
#[doc(alias = "sched_shutdown")]
#[doc(alias = "sched_shutdown_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct SchedShutdown {
    /// `SHUTDOWN_*`.
    pub reason: u32,
}

/// Argument of [`SCHEDOP_POLL`] (`struct sched_poll`).
#[doc(alias = "sched_poll")]
#[doc(alias = "sched_poll_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct SchedPoll {
    /// Guest handle of an array of `nr_ports` [`crate::types::EvtchnPort`].
    pub ports: u64,
    /// Number of ports in the array.
    pub nr_ports: u32,
    /// Padding to the alignment of `timeout` (implicit in C).
    pub pad: u32,
    /// Xen system time (ns since boot) at which to give up, or 0 to wait indefinitely.
    pub timeout: u64,
}

/// Argument of [`SCHEDOP_REMOTE_SHUTDOWN`] (`struct sched_remote_shutdown`).
#[doc(alias = "sched_remote_shutdown")]
#[doc(alias = "sched_remote_shutdown_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct SchedRemoteShutdown {
    /// The domain shut down.
    pub domain_id: DomId,
    /// Padding to the alignment of `reason` (implicit in C).
    pub pad: u16,
    /// `SHUTDOWN_*`.
    pub reason: u32,
}

/// Argument of [`SCHEDOP_WATCHDOG`] (`struct sched_watchdog`): id 0 creates a watchdog (the
/// call returns its id); a non-zero id with timeout 0 destroys it, with a non-zero timeout feeds
/// it.
#[doc(alias = "sched_watchdog")]
#[doc(alias = "sched_watchdog_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct SchedWatchdog {
    /// The watchdog, or 0 to create one.
    pub id: u32,
    /// Seconds until the domain is shut down with [`SHUTDOWN_WATCHDOG`].
    pub timeout: u32,
}

/// Argument of [`SCHEDOP_PIN_OVERRIDE`] (`struct sched_pin_override`).
#[doc(alias = "sched_pin_override")]
#[doc(alias = "sched_pin_override_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct SchedPinOverride {
    /// The physical CPU, or negative to undo an earlier override.
    pub pcpu: i32,
}
