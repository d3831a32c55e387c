//! xenvbd-core's platform traits over the table, so the block core runs unchanged in a child
//! driver: [`TableGrants`] ([`Grants`]) and [`TableEvents`] ([`Events`]).

#![forbid(unsafe_code)]

use xen_abi::types::{DomId, EvtchnPort, GrantRef};
use xenpci_core::grant_table::{GrantError, Revocation};
use xenvbd_core::blkif::{Ended, Events, Grants, LogEvent, MAX_QUEUES};

use crate::consumer::{BusCallbacks, BusClient};
use crate::BusError;

/// Grants through the table.
///
/// `end` answers [`Ended::Revoked`] when the bus revoked the reference and
/// [`Ended::Abandoned`] when it deferred the revocation (the backend still maps the page; the
/// bus retries on its own). A failure other than "not granted" (the interface released, a call
/// at the wrong IRQL) leaves the grant's state unknown: the block core is told `Abandoned`, which
/// keeps the page away from anyone else, and the failure is counted in
/// [`end_failures`](Self::end_failures) with the last one kept for the log.
#[derive(Debug)]
pub struct TableGrants<'c, 'h, H: BusCallbacks> {
    client: &'c BusClient<'h, H>,
    end_failures: u64,
    last_failure: Option<BusError>,
}

impl<'c, 'h, H: BusCallbacks> TableGrants<'c, 'h, H> {
    /// Grants through `client`.
    pub fn new(client: &'c BusClient<'h, H>) -> Self {
        TableGrants {
            client,
            end_failures: 0,
            last_failure: None,
        }
    }

    /// Ends that failed for another reason than the reference not being granted.
    pub fn end_failures(&self) -> u64 {
        self.end_failures
    }

    /// The last failure of a grant or an end, for the log.
    pub fn last_failure(&self) -> Option<BusError> {
        self.last_failure
    }
}

impl<H: BusCallbacks> Grants for TableGrants<'_, '_, H> {
    fn grant(&mut self, domid: DomId, frame: u64, readonly: bool) -> Result<GrantRef, GrantError> {
        self.client
            .grant_access(domid, frame, readonly)
            .map_err(|e| {
                self.last_failure = Some(e);
                e.to_grant_error(0, frame)
            })
    }

    /// The table's end hands a reference the backend still maps to the bus's deferred list (the
    /// bus revokes it later on its own), so the child never learns when the page is free again:
    /// that page is [`Ended::Abandoned`], never reused. A failed end is treated the same way,
    /// since the page may still be mapped.
    fn end(&mut self, gref: GrantRef) -> Result<Ended, GrantError> {
        match self.client.end_access(gref) {
            Ok(Revocation::Revoked) => Ok(Ended::Revoked),
            Ok(Revocation::Deferred) => Ok(Ended::Abandoned),
            Err(BusError::NotGranted) => Err(GrantError::NotGranted { gref }),
            Err(e) => {
                self.end_failures += 1;
                self.last_failure = Some(e);
                Ok(Ended::Abandoned)
            }
        }
    }
}

/// The block core's kicks through the table: queue `q` notifies `ports[q]`; log events go to
/// `log`.
#[derive(Debug)]
pub struct TableEvents<'c, 'h, H: BusCallbacks, L> {
    client: &'c BusClient<'h, H>,
    ports: [EvtchnPort; MAX_QUEUES as usize],
    queues: usize,
    notify_failures: u64,
    log: L,
}

impl<'c, 'h, H: BusCallbacks, L: FnMut(LogEvent)> TableEvents<'c, 'h, H, L> {
    /// Kicks through `client`, one port per queue (at most
    /// [`MAX_QUEUES`]; more are ignored).
    pub fn new(client: &'c BusClient<'h, H>, ports: &[EvtchnPort], log: L) -> Self {
        let mut table = [0; MAX_QUEUES as usize];
        let queues = ports.len().min(table.len());
        table[..queues].copy_from_slice(&ports[..queues]);
        TableEvents {
            client,
            ports: table,
            queues,
            notify_failures: 0,
            log,
        }
    }

    /// Notifies that failed (or named a queue without a port).
    pub fn notify_failures(&self) -> u64 {
        self.notify_failures
    }
}

impl<H: BusCallbacks, L: FnMut(LogEvent)> Events for TableEvents<'_, '_, H, L> {
    fn notify(&mut self, queue: usize) {
        let sent = match self.ports.get(..self.queues).and_then(|p| p.get(queue)) {
            Some(&port) => self.client.notify(port).is_ok(),
            None => false,
        };
        if !sent {
            self.notify_failures += 1;
        }
    }

    fn log(&mut self, event: LogEvent) {
        (self.log)(event);
    }
}
