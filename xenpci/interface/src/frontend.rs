//! The xenbus handshake of a child, through the table: the store a
//! [`FrontendDriver`] sees ([`TableStore`], a [`FrontendStore`]), and [`execute`], which runs a
//! [`Plan`] of xenpci-core's [`Handshake`] as the core's own `execute` does over a connection:
//! state writes, the publishing transaction redone on `EAGAIN`, and the fatal-publish path
//! (release, Closing, no reconnect).
//!
//! All of it runs at PASSIVE_LEVEL (it waits for the store).

#![forbid(unsafe_code)]

use xen_abi::xenbus::XenbusState;
use xenpci_core::xenbus::{
    Action, Backend, Done, FrontendDriver, FrontendError, FrontendStore, Handshake, Plan,
    PUBLISH_ATTEMPTS,
};
use xenpci_core::xenstore::{TxId, XsError};

use crate::abi::StoreBase;
use crate::consumer::{BusCallbacks, BusClient};

/// The child's directories through the table, inside transaction `tx` (or none).
#[derive(Debug)]
pub struct TableStore<'c, 'h, H: BusCallbacks> {
    client: &'c BusClient<'h, H>,
    tx: TxId,
}

impl<'c, 'h, H: BusCallbacks> TableStore<'c, 'h, H> {
    /// The store outside any transaction.
    pub fn new(client: &'c BusClient<'h, H>) -> Self {
        TableStore {
            client,
            tx: TxId::NONE,
        }
    }

    /// The store inside `tx`.
    pub fn in_transaction(client: &'c BusClient<'h, H>, tx: TxId) -> Self {
        TableStore { client, tx }
    }
}

impl<H: BusCallbacks> FrontendStore for TableStore<'_, '_, H> {
    fn write(&mut self, node: &str, value: &[u8]) -> Result<(), XsError> {
        self.client
            .write(self.tx, StoreBase::Frontend, node, value)
            .map_err(|e| e.to_xs_error())
    }

    fn read(&mut self, node: &str, buf: &mut [u8]) -> Result<usize, XsError> {
        self.client
            .read(self.tx, StoreBase::Frontend, node, buf)
            .map_err(|e| e.to_xs_error())
    }

    fn read_backend(&mut self, node: &str, buf: &mut [u8]) -> Result<usize, XsError> {
        self.client
            .read(self.tx, StoreBase::Backend, node, buf)
            .map_err(|e| e.to_xs_error())
    }

    fn remove(&mut self, node: &str) -> Result<(), XsError> {
        match self.client.remove(self.tx, StoreBase::Frontend, node) {
            Err(e) => match e.to_xs_error() {
                x if x.is_enoent() => Ok(()),
                x => Err(x),
            },
            Ok(()) => Ok(()),
        }
    }
}

/// Reads the backend's `state` as the handshake wants it.
pub fn read_backend_state<H: BusCallbacks>(client: &BusClient<'_, H>) -> Result<Backend, XsError> {
    client.backend_state().map_err(|e| e.to_xs_error())
}

/// Runs `plan` through the table: each action against the store or the driver, recording it
/// in `hs` as it completes. Stops at the first failure, which names the action.
pub fn execute<H, D>(
    hs: &mut Handshake,
    plan: &Plan,
    client: &BusClient<'_, H>,
    driver: &mut D,
) -> Result<(), FrontendError<D::Error>>
where
    H: BusCallbacks,
    D: FrontendDriver + ?Sized,
{
    for &action in plan.actions() {
        let store_err = |error| FrontendError::Store { action, error };
        let driver_err = |error| FrontendError::Driver { action, error };
        match action {
            Action::SetState(s) => {
                client
                    .switch_state(TxId::NONE, s)
                    .map_err(|e| store_err(e.to_xs_error()))?;
                hs.apply(Done::SetState(s));
            }
            Action::Publish => match publish(client, driver) {
                Ok(s) => hs.apply(Done::Published(s)),
                Err(e) => {
                    // As Linux's xenbus_dev_fatal: give back what was set up, say Closing,
                    // and do not reconnect on our own.
                    driver.on_backend_closed();
                    hs.publish_failed();
                    let closing = XenbusState::Closing;
                    if client.switch_state(TxId::NONE, closing).is_ok() {
                        hs.apply(Done::SetState(closing));
                    }
                    return Err(e);
                }
            },
            Action::BackendConnected => {
                driver
                    .on_backend_connected(&mut TableStore::new(client))
                    .map_err(driver_err)?;
                hs.apply(Done::BackendConnected);
            }
            Action::Quiesce => {
                driver.on_backend_closing().map_err(driver_err)?;
                hs.apply(Done::Quiesced);
            }
            Action::Release => {
                driver.on_backend_closed();
                hs.apply(Done::Released);
            }
            Action::Reconfigure { done } => {
                driver
                    .on_reconfigure(&mut TableStore::new(client), done)
                    .map_err(driver_err)?;
                hs.apply(Done::Reconfigured);
            }
        }
    }
    Ok(())
}

/// The publishing transaction: the driver's nodes and the state it chooses, committed
/// together, redone on `EAGAIN` (at most [`PUBLISH_ATTEMPTS`] times).
fn publish<H, D>(
    client: &BusClient<'_, H>,
    driver: &mut D,
) -> Result<XenbusState, FrontendError<D::Error>>
where
    H: BusCallbacks,
    D: FrontendDriver + ?Sized,
{
    let action = Action::Publish;
    let store_err = |error| FrontendError::Store { action, error };
    let mut last = XsError::Store(xen_abi::xenstore::XsErrno::Eagain);
    for _ in 0..PUBLISH_ATTEMPTS {
        let tx = client
            .transaction_start()
            .map_err(|e| store_err(e.to_xs_error()))?;
        let mut store = TableStore::in_transaction(client, tx);
        let body = match driver.on_backend_init_wait(&mut store) {
            Ok(s @ (XenbusState::Initialised | XenbusState::Connected)) => client
                .switch_state(tx, s)
                .map(|()| s)
                .map_err(|e| store_err(e.to_xs_error())),
            Ok(other) => Err(FrontendError::BadTargetState(other)),
            Err(error) => Err(FrontendError::Driver { action, error }),
        };
        match body {
            Ok(s) => match client.transaction_end(tx, true) {
                Ok(()) => return Ok(s),
                Err(e) if e.to_xs_error().is_eagain() => last = e.to_xs_error(),
                Err(e) => return Err(store_err(e.to_xs_error())),
            },
            Err(FrontendError::Store { error, .. }) if error.is_eagain() => {
                let _ = client.transaction_end(tx, false);
                last = error;
            }
            Err(e) => {
                let _ = client.transaction_end(tx, false);
                return Err(e);
            }
        }
    }
    Err(store_err(last))
}
