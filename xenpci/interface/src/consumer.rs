//! The consumer side: what a child driver uses once the bus answered its query.
//!
//! A child implements [`BusCallbacks`] (its event, watch and suspend handlers, on one object
//! that outlives the client: the device extension), takes the table with
//! [`BusClient::new`](crate::BusClient::new) (which checks version, size and functions and
//! refuses a mismatch with a [`TableRefusal`](crate::TableRefusal)), and calls the bus through
//! typed methods. Dropping the client drops its reference: the bus then revokes every
//! registration it still has and stops calling the handlers.
//!
//! Every length the bus reports is checked against the buffer given, and an unknown status is
//! an error, never success.

#![forbid(unsafe_code)]

use xen_abi::types::{DomId, EvtchnPort, GrantRef};
use xen_abi::xenbus::{ParseXenbusStateError, XenbusState};
use xenpci_core::grant_table::Revocation;
use xenpci_core::xenbus::{Backend, PathBuf, MAX_CHILD_PATH};
use xenpci_core::xenstore::TxId;

use crate::abi::{BackendStateKind, Delivery, StoreBase, SuspendPhase};
use crate::binding::RawTable;
use crate::BusError;

/// A child's handlers, called by the bus. They run on any CPU, at the IRQL their registration
/// names: [`on_event`](Self::on_event) at DIRQL or DISPATCH_LEVEL (as chosen when binding),
/// [`on_watch`](Self::on_watch) at PASSIVE_LEVEL, [`on_suspend`](Self::on_suspend) at the
/// IRQL of the [`SuspendPhase`].
pub trait BusCallbacks: Sync {
    /// An event arrived on `port`; the port is masked until
    /// [`BusClient::unmask`] is called for it.
    fn on_event(&self, port: EvtchnPort) {
        let _ = port;
    }
    /// Watch `watch` fired on `path`.
    fn on_watch(&self, watch: u32, path: &[u8]) {
        let _ = (watch, path);
    }
    /// A suspend/resume phase.
    fn on_suspend(&self, phase: SuspendPhase) {
        let _ = phase;
    }
}

/// A child's handle on the bus: the checked table and the reference it holds.
#[derive(Debug)]
pub struct BusClient<'h, H: BusCallbacks> {
    pub(crate) raw: RawTable<'h, H>,
}

impl<H: BusCallbacks> BusClient<'_, H> {
    /// Grants `domid` access to `frame` (at most DISPATCH_LEVEL).
    pub fn grant_access(
        &self,
        domid: DomId,
        frame: u64,
        readonly: bool,
    ) -> Result<GrantRef, BusError> {
        self.raw.grant_access(domid, frame, readonly)
    }

    /// Ends access through `gref` (at most DISPATCH_LEVEL); [`Revocation::Deferred`] when the
    /// backend still maps the page (the bus retries; the page must stay away from anyone the
    /// backend must not see).
    pub fn end_access(&self, gref: GrantRef) -> Result<Revocation, BusError> {
        self.raw.end_access(gref)
    }

    /// Allocates a port `remote` may bind to, its events delivered to
    /// [`BusCallbacks::on_event`] as `delivery` says (PASSIVE_LEVEL).
    pub fn alloc_unbound(&self, remote: DomId, delivery: Delivery) -> Result<EvtchnPort, BusError> {
        self.raw.alloc_unbound(remote, delivery)
    }

    /// Binds to `remote`'s `remote_port` (PASSIVE_LEVEL).
    pub fn bind_interdomain(
        &self,
        remote: DomId,
        remote_port: EvtchnPort,
        delivery: Delivery,
    ) -> Result<EvtchnPort, BusError> {
        self.raw.bind_interdomain(remote, remote_port, delivery)
    }

    /// Notifies the remote end of `port` (up to DIRQL).
    pub fn notify(&self, port: EvtchnPort) -> Result<(), BusError> {
        self.raw.notify(port)
    }

    /// Unmasks `port` after its event was handled (up to DIRQL).
    pub fn unmask(&self, port: EvtchnPort) -> Result<(), BusError> {
        self.raw.unmask(port)
    }

    /// Closes `port`; its handler is not called once this returns (PASSIVE_LEVEL).
    pub fn close(&self, port: EvtchnPort) -> Result<(), BusError> {
        self.raw.close(port)
    }

    /// Reads a node into `buf`; returns its length (PASSIVE_LEVEL).
    pub fn read(
        &self,
        tx: TxId,
        base: StoreBase,
        path: &str,
        buf: &mut [u8],
    ) -> Result<usize, BusError> {
        self.raw.store_read(tx.0, base, path.as_bytes(), buf)
    }

    /// Writes a node (PASSIVE_LEVEL).
    pub fn write(
        &self,
        tx: TxId,
        base: StoreBase,
        path: &str,
        value: &[u8],
    ) -> Result<(), BusError> {
        self.raw.store_write(tx.0, base, path.as_bytes(), value)
    }

    /// Removes a node and what is under it (PASSIVE_LEVEL).
    pub fn remove(&self, tx: TxId, base: StoreBase, path: &str) -> Result<(), BusError> {
        self.raw.store_remove(tx.0, base, path.as_bytes())
    }

    /// Lists a node's children into `buf`, NUL-separated; returns the length (PASSIVE_LEVEL).
    pub fn directory(
        &self,
        tx: TxId,
        base: StoreBase,
        path: &str,
        buf: &mut [u8],
    ) -> Result<usize, BusError> {
        self.raw.store_directory(tx.0, base, path.as_bytes(), buf)
    }

    /// Watches a node; events go to [`BusCallbacks::on_watch`] (PASSIVE_LEVEL).
    pub fn watch(&self, base: StoreBase, path: &str) -> Result<u32, BusError> {
        self.raw.store_watch(base, path.as_bytes())
    }

    /// Removes a watch; its handler is not called once this returns (PASSIVE_LEVEL).
    pub fn unwatch(&self, watch: u32) -> Result<(), BusError> {
        self.raw.store_unwatch(watch)
    }

    /// Starts a transaction (PASSIVE_LEVEL).
    pub fn transaction_start(&self) -> Result<TxId, BusError> {
        self.raw.transaction_start().map(TxId)
    }

    /// Ends a transaction; `Store(Eagain)` means redo it (PASSIVE_LEVEL).
    pub fn transaction_end(&self, tx: TxId, commit: bool) -> Result<(), BusError> {
        self.raw.transaction_end(tx.0, commit)
    }

    /// The backend's `state` (PASSIVE_LEVEL).
    pub fn backend_state(&self) -> Result<Backend, BusError> {
        let (kind, state) = self.raw.read_backend_state()?;
        match kind {
            k if k == BackendStateKind::State as u32 => Ok(match XenbusState::from_u32(state) {
                Some(s) => Backend::State(s),
                None => Backend::Garbage(ParseXenbusStateError::UnknownState(state)),
            }),
            k if k == BackendStateKind::Garbage as u32 => Ok(Backend::Garbage(
                ParseXenbusStateError::UnknownState(u32::MAX),
            )),
            k if k == BackendStateKind::Gone as u32 => Ok(Backend::Gone),
            _ => Err(BusError::InvalidParameter),
        }
    }

    /// Writes the frontend's `state`, inside `tx` or not (PASSIVE_LEVEL).
    pub fn switch_state(&self, tx: TxId, state: XenbusState) -> Result<(), BusError> {
        self.raw.switch_state(tx.0, state.as_u32())
    }

    fn path(&self, backend: bool) -> Result<PathBuf, BusError> {
        let mut buf = [0u8; MAX_CHILD_PATH];
        let n = if backend {
            self.raw.backend_path(&mut buf)?
        } else {
            self.raw.frontend_path(&mut buf)?
        };
        let bytes = buf.get(..n).ok_or(BusError::InvalidParameter)?;
        PathBuf::from_printable_ascii(bytes).ok_or(BusError::InvalidParameter)
    }

    /// The backend's directory (up to DIRQL).
    pub fn backend_path(&self) -> Result<PathBuf, BusError> {
        self.path(true)
    }

    /// The child's own directory, its device path (up to DIRQL).
    pub fn frontend_path(&self) -> Result<PathBuf, BusError> {
        self.path(false)
    }

    /// The backend's domain (up to DIRQL).
    pub fn backend_domid(&self) -> Result<DomId, BusError> {
        self.raw.backend_domid()
    }

    /// Registers for suspend/resume notifications to [`BusCallbacks::on_suspend`]
    /// (PASSIVE_LEVEL).
    pub fn register_suspend(&self) -> Result<u32, BusError> {
        self.raw.register_suspend()
    }

    /// Stops them; the handler is not called once this returns (PASSIVE_LEVEL).
    pub fn unregister_suspend(&self, handle: u32) -> Result<(), BusError> {
        self.raw.unregister_suspend(handle)
    }
}
