//! The `control` node: the toolstack's shutdown, reboot and suspend requests, and sysrq.
//!
//! The guest advertises what it supports (`control/feature-poweroff`, `feature-reboot`,
//! `feature-suspend` = `"1"`) and watches `control/shutdown` and `control/sysrq`. The toolstack
//! writes a request there; the guest takes it in a transaction that reads the value and clears
//! it (writes `""`), so each request is acted on once even when several watchers race, and the
//! toolstack sees it acknowledged. The value is then surfaced to the shell as a
//! [`ControlRequest`]. Values that name nothing known are acknowledged too (so the toolstack does
//! not wait forever) and counted in [`ControlStats::unknown_requests`].

use xen_abi::sched::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF, SHUTDOWN_REBOOT, SHUTDOWN_SUSPEND};

use crate::xenstore::{TxId, Wait, WatchId, XsConnection, XsError};

/// `control/shutdown`.
pub const SHUTDOWN_NODE: &str = "control/shutdown";
/// `control/sysrq`.
pub const SYSRQ_NODE: &str = "control/sysrq";
/// The feature nodes written by [`Control::advertise`].
pub const FEATURE_NODES: [&str; 3] = [
    "control/feature-poweroff",
    "control/feature-reboot",
    "control/feature-suspend",
];
/// How many times the acknowledging transaction is redone on `EAGAIN`.
pub const ACK_ATTEMPTS: u32 = 8;

/// A request from the toolstack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShutdownRequest {
    /// `"poweroff"`: shut down and power off.
    Poweroff,
    /// `"reboot"`: restart.
    Reboot,
    /// `"suspend"`: save the domain (run the suspend sequence, [`crate::suspend`]).
    Suspend,
    /// `"halt"`: shut down (treated like poweroff by Xen guests).
    Halt,
    /// `"crash"`: the toolstack asks the guest to crash (for a dump); whether to honour it is
    /// the shell's policy.
    Crash,
}

impl ShutdownRequest {
    /// Parses the value of `control/shutdown`: `None` for anything unknown.
    pub fn parse(value: &[u8]) -> Option<ShutdownRequest> {
        Some(match value {
            b"poweroff" => Self::Poweroff,
            b"reboot" => Self::Reboot,
            b"suspend" => Self::Suspend,
            b"halt" => Self::Halt,
            b"crash" => Self::Crash,
            _ => return None,
        })
    }

    /// The `SHUTDOWN_*` reason to give `SCHEDOP_shutdown` when the shell carries the request
    /// out through Xen (poweroff and halt both power off).
    pub fn reason(self) -> u32 {
        match self {
            Self::Poweroff | Self::Halt => SHUTDOWN_POWEROFF,
            Self::Reboot => SHUTDOWN_REBOOT,
            Self::Suspend => SHUTDOWN_SUSPEND,
            Self::Crash => SHUTDOWN_CRASH,
        }
    }
}

/// What the shell must act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ControlRequest {
    /// A shutdown-family request.
    Shutdown(ShutdownRequest),
    /// A magic SysRq key (the first byte of `control/sysrq`).
    SysRq(u8),
}

/// The outcome of parsing a `control/shutdown` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Empty: no request (our own acknowledgement, or the initial watch event).
    Nothing,
    /// A request.
    Request(ShutdownRequest),
    /// Something unknown.
    Unknown,
}

/// Parses a `control/shutdown` value.
pub fn parse_shutdown(value: &[u8]) -> Parsed {
    if value.is_empty() {
        return Parsed::Nothing;
    }
    match ShutdownRequest::parse(value) {
        Some(r) => Parsed::Request(r),
        None => Parsed::Unknown,
    }
}

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ControlStats {
    /// Shutdown values that named nothing known (acknowledged and ignored).
    pub unknown_requests: u64,
    /// Requests surfaced to the shell.
    pub requests: u64,
    /// Watch events that found the node already empty (taken by someone else, or our own ack).
    pub empty_events: u64,
}

/// The control node's state: its watches and counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct Control {
    shutdown_watch: Option<WatchId>,
    sysrq_watch: Option<WatchId>,
    stats: ControlStats,
}

impl Control {
    /// Not set up yet.
    pub const fn new() -> Self {
        Control {
            shutdown_watch: None,
            sysrq_watch: None,
            stats: ControlStats {
                unknown_requests: 0,
                requests: 0,
                empty_events: 0,
            },
        }
    }

    /// The counters.
    pub fn stats(&self) -> ControlStats {
        self.stats
    }

    /// The watch on `control/shutdown`, once [`watch`](Self::watch) registered it.
    pub fn shutdown_watch(&self) -> Option<WatchId> {
        self.shutdown_watch
    }

    /// The watch on `control/sysrq`.
    pub fn sysrq_watch(&self) -> Option<WatchId> {
        self.sysrq_watch
    }

    /// Writes the feature nodes (blocking).
    pub fn advertise<T: Wait + ?Sized, const R: usize, const W: usize, const E: usize>(
        &self,
        xs: &mut XsConnection<R, W, E>,
        t: &mut T,
    ) -> Result<(), XsError> {
        for node in FEATURE_NODES {
            xs.write(t, TxId::NONE, node, b"1")?;
        }
        Ok(())
    }

    /// Registers the watches on `control/shutdown` and `control/sysrq` (blocking). They are
    /// kept by the connection and registered again after a resume with the rest.
    pub fn watch<T: Wait + ?Sized, const R: usize, const W: usize, const E: usize>(
        &mut self,
        xs: &mut XsConnection<R, W, E>,
        t: &mut T,
    ) -> Result<(), XsError> {
        if self.shutdown_watch.is_none() {
            self.shutdown_watch = Some(xs.watch(t, SHUTDOWN_NODE)?);
        }
        if self.sysrq_watch.is_none() {
            self.sysrq_watch = Some(xs.watch(t, SYSRQ_NODE)?);
        }
        Ok(())
    }

    /// Handles an event of one of the control watches (others return `Ok(None)`): takes the
    /// request in a transaction (read, then clear) and returns it.
    pub fn on_watch_event<T: Wait + ?Sized, const R: usize, const W: usize, const E: usize>(
        &mut self,
        xs: &mut XsConnection<R, W, E>,
        t: &mut T,
        watch: WatchId,
    ) -> Result<Option<ControlRequest>, XsError> {
        if Some(watch) == self.shutdown_watch {
            self.take_shutdown(xs, t)
        } else if Some(watch) == self.sysrq_watch {
            self.take_sysrq(xs, t)
        } else {
            Ok(None)
        }
    }

    /// Reads and clears `node` in one transaction; returns its value's length in `buf` (0 when
    /// it was empty or missing, and then nothing is written).
    fn take<T: Wait + ?Sized, const R: usize, const W: usize, const E: usize>(
        xs: &mut XsConnection<R, W, E>,
        t: &mut T,
        node: &str,
        buf: &mut [u8],
    ) -> Result<usize, XsError> {
        xs.transaction(t, ACK_ATTEMPTS, |xs, t, tx| {
            let n = match xs.read(t, tx, node, buf) {
                Ok(n) => n,
                Err(e) if e.is_enoent() => return Ok(0),
                Err(e) => return Err(e),
            };
            if n > 0 {
                xs.write(t, tx, node, b"")?;
            }
            Ok(n)
        })
    }

    /// Takes a request from `control/shutdown` (blocking).
    pub fn take_shutdown<T: Wait + ?Sized, const R: usize, const W: usize, const E: usize>(
        &mut self,
        xs: &mut XsConnection<R, W, E>,
        t: &mut T,
    ) -> Result<Option<ControlRequest>, XsError> {
        let mut buf = [0; 32];
        let n = match Self::take(xs, t, SHUTDOWN_NODE, &mut buf) {
            // Longer than any request: unknown, but it must still be cleared.
            Err(XsError::Limit(crate::xenstore::LimitError::BufferTooSmall { .. })) => {
                xs.write(t, TxId::NONE, SHUTDOWN_NODE, b"")?;
                self.stats.unknown_requests += 1;
                return Ok(None);
            }
            other => other?,
        };
        match parse_shutdown(&buf[..n]) {
            Parsed::Nothing => {
                self.stats.empty_events += 1;
                Ok(None)
            }
            Parsed::Unknown => {
                self.stats.unknown_requests += 1;
                Ok(None)
            }
            Parsed::Request(r) => {
                self.stats.requests += 1;
                Ok(Some(ControlRequest::Shutdown(r)))
            }
        }
    }

    /// Takes a key from `control/sysrq` (blocking).
    pub fn take_sysrq<T: Wait + ?Sized, const R: usize, const W: usize, const E: usize>(
        &mut self,
        xs: &mut XsConnection<R, W, E>,
        t: &mut T,
    ) -> Result<Option<ControlRequest>, XsError> {
        let mut buf = [0; 8];
        let n = match Self::take(xs, t, SYSRQ_NODE, &mut buf) {
            Err(XsError::Limit(crate::xenstore::LimitError::BufferTooSmall { .. })) => {
                xs.write(t, TxId::NONE, SYSRQ_NODE, b"")?;
                self.stats.unknown_requests += 1;
                return Ok(None);
            }
            other => other?,
        };
        match buf[..n] {
            [] | [0, ..] => {
                self.stats.empty_events += 1;
                Ok(None)
            }
            [key] if key.is_ascii_graphic() => {
                self.stats.requests += 1;
                Ok(Some(ControlRequest::SysRq(key)))
            }
            _ => {
                self.stats.unknown_requests += 1;
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::prelude::rust_2021::*;
    use std::vec;

    use super::*;
    use crate::xenbus::tests::{put, store, value};

    #[test]
    fn shutdown_values() {
        assert_eq!(parse_shutdown(b""), Parsed::Nothing);
        assert_eq!(
            parse_shutdown(b"poweroff"),
            Parsed::Request(ShutdownRequest::Poweroff)
        );
        assert_eq!(
            parse_shutdown(b"reboot"),
            Parsed::Request(ShutdownRequest::Reboot)
        );
        assert_eq!(
            parse_shutdown(b"suspend"),
            Parsed::Request(ShutdownRequest::Suspend)
        );
        assert_eq!(
            parse_shutdown(b"halt"),
            Parsed::Request(ShutdownRequest::Halt)
        );
        assert_eq!(
            parse_shutdown(b"crash"),
            Parsed::Request(ShutdownRequest::Crash)
        );
        for bad in [&b"Reboot"[..], b"reboot\0", b" reboot", b"s3", b"\xff"] {
            assert_eq!(parse_shutdown(bad), Parsed::Unknown, "{bad:?}");
        }
        assert_eq!(ShutdownRequest::Halt.reason(), SHUTDOWN_POWEROFF);
        assert_eq!(ShutdownRequest::Suspend.reason(), SHUTDOWN_SUSPEND);
    }

    /// Takes every queued control event.
    fn requests(
        c: &mut Control,
        xs: &mut crate::xenbus::tests::Conn,
        pipe: &mut crate::xenbus::tests::fake::Pipe,
    ) -> Vec<ControlRequest> {
        xs.pump(pipe).unwrap();
        let mut out = Vec::new();
        let mut buf = [0; 256];
        let mut watches = Vec::new();
        while let Some(e) = xs.pop_watch_event(&mut buf).unwrap() {
            watches.push(e.watch);
        }
        for w in watches {
            if let Some(r) = c.on_watch_event(xs, pipe, w).unwrap() {
                out.push(r);
            }
        }
        out
    }

    #[test]
    fn requests_are_taken_once_and_acknowledged() {
        let (mut xs, mut pipe) = store();
        let mut c = Control::new();
        c.advertise(&mut *xs, &mut pipe).unwrap();
        for node in FEATURE_NODES {
            assert_eq!(value(&pipe, node).as_deref(), Some("1"));
        }
        c.watch(&mut *xs, &mut pipe).unwrap();
        // The initial events find nothing.
        assert_eq!(requests(&mut c, &mut xs, &mut pipe), vec![]);

        put(&mut xs, &mut pipe, &[(SHUTDOWN_NODE, "reboot")]);
        assert_eq!(
            requests(&mut c, &mut xs, &mut pipe),
            vec![ControlRequest::Shutdown(ShutdownRequest::Reboot)]
        );
        assert_eq!(value(&pipe, SHUTDOWN_NODE).as_deref(), Some(""));
        // Our own acknowledgement fires the watch again and finds nothing.
        assert_eq!(requests(&mut c, &mut xs, &mut pipe), vec![]);

        // Unknown and oversized values are cleared and counted.
        put(&mut xs, &mut pipe, &[(SHUTDOWN_NODE, "hibernate")]);
        assert_eq!(requests(&mut c, &mut xs, &mut pipe), vec![]);
        assert_eq!(value(&pipe, SHUTDOWN_NODE).as_deref(), Some(""));
        let long = "x".repeat(100);
        put(&mut xs, &mut pipe, &[(SHUTDOWN_NODE, long.as_str())]);
        assert_eq!(requests(&mut c, &mut xs, &mut pipe), vec![]);
        assert_eq!(value(&pipe, SHUTDOWN_NODE).as_deref(), Some(""));
        assert_eq!(c.stats().unknown_requests, 2);

        // A commit conflict redoes the acknowledging transaction.
        pipe.server.fail_commits = 1;
        put(&mut xs, &mut pipe, &[(SHUTDOWN_NODE, "suspend")]);
        assert_eq!(
            requests(&mut c, &mut xs, &mut pipe),
            vec![ControlRequest::Shutdown(ShutdownRequest::Suspend)]
        );
        assert_eq!(value(&pipe, SHUTDOWN_NODE).as_deref(), Some(""));

        put(&mut xs, &mut pipe, &[(SYSRQ_NODE, "b")]);
        assert_eq!(
            requests(&mut c, &mut xs, &mut pipe),
            vec![ControlRequest::SysRq(b'b')]
        );
        assert_eq!(value(&pipe, SYSRQ_NODE).as_deref(), Some(""));
        put(&mut xs, &mut pipe, &[(SYSRQ_NODE, "bb")]);
        assert_eq!(requests(&mut c, &mut xs, &mut pipe), vec![]);
        assert_eq!(c.stats().requests, 3);
        assert_eq!(c.stats().unknown_requests, 3);
    }
}
