//! The provider side: what the bus driver implements ([`BusServices`]) and the adapter that
//! turns it into a table for one child ([`ChildInterface`]).
//!
//! The bus driver creates one [`ChildInterface`] per child device (in the PDO's extension),
//! over a [`BusServices`] value that knows which child it serves (so it can revoke that child's
//! registrations). On `IRP_MN_QUERY_INTERFACE` it calls
//! [`answer_query`](ChildInterface::answer_query) (or the in-place variant in
//! [`binding`](crate::binding)) and copies the table into the IRP's buffer.
//!
//! The adapter does everything that is the same for every bus: it counts references, refuses
//! (and reports through [`BusServices::violation`]) a call after the last dereference or above
//! the entry's IRQL, resolves store paths against the child's directories, reads the backend's
//! `state`, writes the frontend's, and copies the paths and the backend's domain. The services
//! only see absolute paths.
//!
//! # Concurrency
//! Every method takes `&self` and may run on several CPUs at once (a DPC ending grants while a
//! thread reads the store); the reference count is an atomic. The services carry their own
//! locking: grants and notify from DISPATCH_LEVEL, the dispatch-table changes and the store at
//! PASSIVE_LEVEL, as [`Entry::max_irql`] lists.

#![forbid(unsafe_code)]

use core::fmt::Write;
use core::sync::atomic::{AtomicU32, Ordering};

use xen_abi::types::{DomId, EvtchnPort, GrantRef};
use xen_abi::xenbus::XenbusState;
use xenpci_core::grant_table::Revocation;
use xenpci_core::xenbus::{Backend, FixedStr, PathBuf};
use xenpci_core::xenstore::XsError;

use crate::abi::{StoreBase, XenBusInterfaceV1};
use crate::binding::{EventHandler, SuspendHandler, WatchHandler};
use crate::negotiate::{provider_accepts, QueryRefusal, QueryRequest};
use crate::rules::{Entry, Irql, Violation, ViolationKind};
use crate::BusError;

/// The longest store path the adapter composes from a child's directory and a relative path.
pub const MAX_COMPOSED_PATH: usize = 256;

/// A composed store path.
pub type ComposedPath = FixedStr<MAX_COMPOSED_PATH>;

/// What the bus provides to one child. Implemented by the bus driver over its core; every
/// method may be called concurrently (see the module docs for the IRQL of each).
pub trait BusServices {
    /// The IRQL of the calling CPU (`KeGetCurrentIrql`).
    fn current_irql(&self) -> Irql;

    /// Grants `domid` access to `frame`.
    fn grant_access(&self, domid: DomId, frame: u64, readonly: bool) -> Result<GrantRef, BusError>;
    /// Ends access through `gref`; [`Revocation::Deferred`] when the backend still maps it.
    fn end_access(&self, gref: GrantRef) -> Result<Revocation, BusError>;

    /// Allocates a port `remote` may bind to; events go to `handler`.
    fn alloc_unbound(&self, remote: DomId, handler: EventHandler) -> Result<EvtchnPort, BusError>;
    /// Binds to `remote`'s `remote_port`; events go to `handler`.
    fn bind_interdomain(
        &self,
        remote: DomId,
        remote_port: EvtchnPort,
        handler: EventHandler,
    ) -> Result<EvtchnPort, BusError>;
    /// Notifies the remote end of one of this child's ports.
    fn notify(&self, port: EvtchnPort) -> Result<(), BusError>;
    /// Unmasks one of this child's ports.
    fn unmask(&self, port: EvtchnPort) -> Result<(), BusError>;
    /// Closes one of this child's ports; returns once its handler can no longer run.
    fn close(&self, port: EvtchnPort) -> Result<(), BusError>;

    /// Reads `path` into `buf` (inside transaction `tx`, 0 for none); returns the length.
    fn store_read(&self, tx: u32, path: &[u8], buf: &mut [u8]) -> Result<usize, BusError>;
    /// Writes `path`.
    fn store_write(&self, tx: u32, path: &[u8], value: &[u8]) -> Result<(), BusError>;
    /// Removes `path`.
    fn store_remove(&self, tx: u32, path: &[u8]) -> Result<(), BusError>;
    /// Lists the children of `path` into `buf`, NUL-separated; returns the length.
    fn store_directory(&self, tx: u32, path: &[u8], buf: &mut [u8]) -> Result<usize, BusError>;
    /// Watches `path`; events go to `handler` at PASSIVE_LEVEL. Returns the watch's handle.
    fn store_watch(&self, path: &[u8], handler: WatchHandler) -> Result<u32, BusError>;
    /// Removes one of this child's watches; returns once its handler can no longer run.
    fn store_unwatch(&self, watch: u32) -> Result<(), BusError>;
    /// Starts a transaction.
    fn transaction_start(&self) -> Result<u32, BusError>;
    /// Ends a transaction (commits when `commit`).
    fn transaction_end(&self, tx: u32, commit: bool) -> Result<(), BusError>;

    /// Registers a suspend/resume handler; returns its handle.
    fn register_suspend(&self, handler: SuspendHandler) -> Result<u32, BusError>;
    /// Removes one of this child's suspend/resume handlers.
    fn unregister_suspend(&self, handle: u32) -> Result<(), BusError>;

    /// The first reference was taken (a query answered while none was held): the bus may, for
    /// example, hold its device from removal until [`release`](Self::release). The default
    /// does nothing.
    fn acquired(&self) {}

    /// The last reference is gone: revoke every registration of this child (close its ports,
    /// remove its watches and suspend handlers) and return only when none of its handlers is
    /// running. Called at PASSIVE_LEVEL.
    fn release(&self);

    /// A rule the child broke (the call was refused); the bus logs it.
    fn violation(&self, violation: Violation);
}

/// Who the child is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChildDevice {
    /// The backend's domain.
    pub backend_domid: DomId,
    /// The frontend directory (`device/<class>/<id>`, relative to the domain's home as the
    /// store resolves it, or absolute).
    pub frontend: PathBuf,
    /// The backend directory (absolute).
    pub backend: PathBuf,
}

impl ChildDevice {
    /// The child the bus enumerated.
    pub fn from_child_info(info: &xenpci_core::xenbus::ChildInfo) -> ChildDevice {
        ChildDevice {
            backend_domid: info.backend_id,
            frontend: info.frontend_path(),
            backend: info.backend,
        }
    }
}

/// The adapter: one child's view of the bus, from which its table is filled.
#[derive(Debug)]
pub struct ChildInterface<S> {
    services: S,
    device: ChildDevice,
    references: AtomicU32,
    violations: AtomicU32,
    handed_out: AtomicU32,
}

impl<S: BusServices> ChildInterface<S> {
    /// The adapter for `device` over `services`; no reference is held until a query is
    /// answered.
    pub const fn new(services: S, device: ChildDevice) -> Self {
        ChildInterface {
            services,
            device,
            references: AtomicU32::new(0),
            violations: AtomicU32::new(0),
            handed_out: AtomicU32::new(0),
        }
    }

    /// The services.
    pub fn services(&self) -> &S {
        &self.services
    }

    /// The child.
    pub fn device(&self) -> &ChildDevice {
        &self.device
    }

    /// References held now (the bus must not free the adapter while any is).
    pub fn references(&self) -> u32 {
        self.references.load(Ordering::Acquire)
    }

    /// Tables handed out by queries so far.
    pub fn tables_handed_out(&self) -> u32 {
        self.handed_out.load(Ordering::Relaxed)
    }

    /// Rule violations refused so far.
    pub fn violations(&self) -> u32 {
        self.violations.load(Ordering::Relaxed)
    }

    /// Answers a query for an adapter that lives for the rest of the program (a static). The
    /// in-place variant for an adapter in a device extension is
    /// [`answer_query_in_place`](Self::answer_query_in_place).
    pub fn answer_query(
        &'static self,
        request: &QueryRequest,
    ) -> Result<XenBusInterfaceV1, QueryRefusal>
    where
        S: Sync,
    {
        self.fill(request)
    }

    /// The negotiation and the table; takes the reference the child will drop.
    pub(crate) fn fill(&self, request: &QueryRequest) -> Result<XenBusInterfaceV1, QueryRefusal>
    where
        S: Sync,
    {
        provider_accepts(request)?;
        let table = crate::binding::table_v1(self);
        if self.references.fetch_add(1, Ordering::AcqRel) == 0 {
            self.services.acquired();
        }
        self.handed_out.fetch_add(1, Ordering::Relaxed);
        Ok(table)
    }

    fn refuse(&self, entry: Entry, kind: ViolationKind) -> BusError {
        self.violations.fetch_add(1, Ordering::Relaxed);
        self.services.violation(Violation { entry, kind });
        match kind {
            ViolationKind::AfterRelease | ViolationKind::ReferenceUnderflow => BusError::Released,
            ViolationKind::AboveIrql(_) => BusError::WrongIrql,
        }
    }

    /// The checks every entry makes first: a reference is held and the IRQL is allowed.
    pub(crate) fn enter(&self, entry: Entry) -> Result<(), BusError> {
        if self.references() == 0 {
            return Err(self.refuse(entry, ViolationKind::AfterRelease));
        }
        let irql = self.services.current_irql();
        if irql > entry.max_irql() {
            return Err(self.refuse(entry, ViolationKind::AboveIrql(irql)));
        }
        Ok(())
    }

    /// `InterfaceReference`.
    pub(crate) fn reference(&self) {
        if self.enter(Entry::Reference).is_ok() {
            self.references.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// `InterfaceDereference`: the last one releases the child's registrations.
    pub(crate) fn dereference(&self) {
        let irql = self.services.current_irql();
        if irql > Entry::Dereference.max_irql() {
            self.refuse(Entry::Dereference, ViolationKind::AboveIrql(irql));
            return;
        }
        let previous = self
            .references
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        match previous {
            Ok(1) => self.services.release(),
            Ok(_) => {}
            Err(_) => {
                self.refuse(Entry::Dereference, ViolationKind::ReferenceUnderflow);
            }
        }
    }

    /// Joins `base` and `path` into an absolute path.
    fn compose(&self, base: u32, path: &[u8]) -> Result<ComposedPath, BusError> {
        let text = core::str::from_utf8(path).map_err(|_| BusError::InvalidParameter)?;
        let dir = match StoreBase::from_u32(base).ok_or(BusError::InvalidParameter)? {
            StoreBase::Absolute => {
                if !text.starts_with('/') {
                    return Err(BusError::InvalidParameter);
                }
                return ComposedPath::try_from_str(text).map_err(|_| BusError::PathTooLong);
            }
            StoreBase::Frontend => &self.device.frontend,
            StoreBase::Backend => &self.device.backend,
        };
        if text.starts_with('/') {
            return Err(BusError::InvalidParameter);
        }
        let mut out = ComposedPath::new();
        let joined = if text.is_empty() {
            write!(out, "{dir}")
        } else {
            write!(out, "{dir}/{text}")
        };
        joined.map_err(|_| BusError::PathTooLong)?;
        Ok(out)
    }

    pub(crate) fn grant_access(
        &self,
        domid: DomId,
        frame: u64,
        readonly: bool,
    ) -> Result<GrantRef, BusError> {
        self.enter(Entry::GrantAccess)?;
        self.services.grant_access(domid, frame, readonly)
    }

    pub(crate) fn end_access(&self, gref: GrantRef) -> Result<Revocation, BusError> {
        self.enter(Entry::EndAccess)?;
        self.services.end_access(gref)
    }

    pub(crate) fn alloc_unbound(
        &self,
        remote: DomId,
        handler: Option<EventHandler>,
    ) -> Result<EvtchnPort, BusError> {
        self.enter(Entry::AllocUnbound)?;
        self.services
            .alloc_unbound(remote, handler.ok_or(BusError::InvalidParameter)?)
    }

    pub(crate) fn bind_interdomain(
        &self,
        remote: DomId,
        remote_port: EvtchnPort,
        handler: Option<EventHandler>,
    ) -> Result<EvtchnPort, BusError> {
        self.enter(Entry::BindInterdomain)?;
        self.services.bind_interdomain(
            remote,
            remote_port,
            handler.ok_or(BusError::InvalidParameter)?,
        )
    }

    pub(crate) fn notify(&self, port: EvtchnPort) -> Result<(), BusError> {
        self.enter(Entry::Notify)?;
        self.services.notify(port)
    }

    pub(crate) fn unmask(&self, port: EvtchnPort) -> Result<(), BusError> {
        self.enter(Entry::Unmask)?;
        self.services.unmask(port)
    }

    pub(crate) fn close(&self, port: EvtchnPort) -> Result<(), BusError> {
        self.enter(Entry::Close)?;
        self.services.close(port)
    }

    pub(crate) fn store_read(
        &self,
        tx: u32,
        base: u32,
        path: &[u8],
        buf: &mut [u8],
    ) -> Result<usize, BusError> {
        self.enter(Entry::StoreRead)?;
        let path = self.compose(base, path)?;
        self.services.store_read(tx, path.as_bytes(), buf)
    }

    pub(crate) fn store_write(
        &self,
        tx: u32,
        base: u32,
        path: &[u8],
        value: &[u8],
    ) -> Result<(), BusError> {
        self.enter(Entry::StoreWrite)?;
        let path = self.compose(base, path)?;
        self.services.store_write(tx, path.as_bytes(), value)
    }

    pub(crate) fn store_remove(&self, tx: u32, base: u32, path: &[u8]) -> Result<(), BusError> {
        self.enter(Entry::StoreRemove)?;
        let path = self.compose(base, path)?;
        self.services.store_remove(tx, path.as_bytes())
    }

    pub(crate) fn store_directory(
        &self,
        tx: u32,
        base: u32,
        path: &[u8],
        buf: &mut [u8],
    ) -> Result<usize, BusError> {
        self.enter(Entry::StoreDirectory)?;
        let path = self.compose(base, path)?;
        self.services.store_directory(tx, path.as_bytes(), buf)
    }

    pub(crate) fn store_watch(
        &self,
        base: u32,
        path: &[u8],
        handler: Option<WatchHandler>,
    ) -> Result<u32, BusError> {
        self.enter(Entry::StoreWatch)?;
        let handler = handler.ok_or(BusError::InvalidParameter)?;
        let path = self.compose(base, path)?;
        self.services.store_watch(path.as_bytes(), handler)
    }

    pub(crate) fn store_unwatch(&self, watch: u32) -> Result<(), BusError> {
        self.enter(Entry::StoreUnwatch)?;
        self.services.store_unwatch(watch)
    }

    pub(crate) fn transaction_start(&self) -> Result<u32, BusError> {
        self.enter(Entry::TransactionStart)?;
        self.services.transaction_start()
    }

    pub(crate) fn transaction_end(&self, tx: u32, commit: bool) -> Result<(), BusError> {
        self.enter(Entry::TransactionEnd)?;
        self.services.transaction_end(tx, commit)
    }

    /// The backend's `state`, classified (a value longer than any state is garbage).
    pub(crate) fn read_backend_state(&self) -> Result<Backend, BusError> {
        self.enter(Entry::ReadBackendState)?;
        let path = self.compose(StoreBase::Backend as u32, b"state")?;
        let mut buf = [0u8; 16];
        match self.services.store_read(0, path.as_bytes(), &mut buf) {
            Ok(n) => {
                let text = buf.get(..n).ok_or(BusError::InvalidParameter)?;
                Backend::from_read(Ok(text)).map_err(BusError::from_xs_error)
            }
            Err(BusError::BufferTooSmall { .. }) => Ok(Backend::Garbage(
                xen_abi::xenbus::ParseXenbusStateError::UnknownState(u32::MAX),
            )),
            Err(BusError::Store(e)) => {
                Backend::from_read(Err(XsError::Store(e))).map_err(BusError::from_xs_error)
            }
            Err(e) => Err(e),
        }
    }

    pub(crate) fn switch_state(&self, tx: u32, state: u32) -> Result<(), BusError> {
        self.enter(Entry::SwitchState)?;
        let state = XenbusState::from_u32(state).ok_or(BusError::InvalidParameter)?;
        let path = self.compose(StoreBase::Frontend as u32, b"state")?;
        self.services
            .store_write(tx, path.as_bytes(), state.as_str().as_bytes())
    }

    fn copy_path(&self, entry: Entry, path: &PathBuf, buf: &mut [u8]) -> Result<usize, BusError> {
        self.enter(entry)?;
        let bytes = path.as_bytes();
        let dst = buf.get_mut(..bytes.len()).ok_or(BusError::BufferTooSmall {
            needed: bytes.len(),
        })?;
        dst.copy_from_slice(bytes);
        Ok(bytes.len())
    }

    pub(crate) fn backend_path(&self, buf: &mut [u8]) -> Result<usize, BusError> {
        self.copy_path(Entry::BackendPath, &self.device.backend, buf)
    }

    pub(crate) fn frontend_path(&self, buf: &mut [u8]) -> Result<usize, BusError> {
        self.copy_path(Entry::FrontendPath, &self.device.frontend, buf)
    }

    pub(crate) fn backend_domid(&self) -> Result<DomId, BusError> {
        self.enter(Entry::BackendDomid)?;
        Ok(self.device.backend_domid)
    }

    pub(crate) fn register_suspend(
        &self,
        handler: Option<SuspendHandler>,
    ) -> Result<u32, BusError> {
        self.enter(Entry::RegisterSuspend)?;
        self.services
            .register_suspend(handler.ok_or(BusError::InvalidParameter)?)
    }

    pub(crate) fn unregister_suspend(&self, handle: u32) -> Result<(), BusError> {
        self.enter(Entry::UnregisterSuspend)?;
        self.services.unregister_suspend(handle)
    }
}
