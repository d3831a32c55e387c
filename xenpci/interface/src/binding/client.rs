//! The child's side of the binding: `RawTable`, the calls through a checked table's
//! function pointers, the reference it holds, and the trampolines that turn the bus's callback
//! calls into [`BusCallbacks`] calls.

use core::ffi::c_void;

use xen_abi::types::{DomId, EvtchnPort, GrantRef};
use xenpci_core::grant_table::Revocation;

use super::bytes;
use crate::abi::{Delivery, InterfaceHeader, Status, StoreBase, SuspendPhase, XenBusInterfaceV1};
use crate::consumer::BusCallbacks;
use crate::negotiate::{consumer_accepts, TableRefusal};
use crate::BusError;

/// A table a child checked, and the calls through it. Only [`BusClient`](crate::BusClient)
/// holds one; it drops the reference when it goes.
#[derive(Debug)]
pub(crate) struct RawTable<'h, H> {
    table: XenBusInterfaceV1,
    handler: &'h H,
}

/// Calls a function of a checked table; a missing one (impossible after the check) is an
/// invalid-parameter failure, never a panic.
macro_rules! call {
    ($self:ident . $f:ident ( $($arg:expr),* $(,)? )) => {{
        match $self.table.$f {
            // SAFETY:
            // 1. the table was filled by the bus and checked at construction (`RawTable::new`'s
            //    contract), so `f` is the bus's function for this context;
            // 2. the reference this table holds keeps the bus's side alive until `Drop`;
            // 3. every pointer argument is built from a live Rust reference or slice of the
            //    caller, valid (and exclusive where written) for the whole call.
            Some(f) => unsafe { f($self.table.header.context, $($arg),*) },
            None => BusError::InvalidParameter.status(),
        }
    }};
}

// SAFETY: the table's functions may be called from any CPU, concurrently (the interface's
// contract: the bus does its own locking), and the client's last dereference may come from any
// thread; the handler is only ever shared, and `H: Sync`.
unsafe impl<H: Sync> Send for RawTable<'_, H> {}
// SAFETY: as for `Send`: every call through the table takes `&self` and is allowed
// concurrently.
unsafe impl<H: Sync> Sync for RawTable<'_, H> {}

impl<'h, H: BusCallbacks> RawTable<'h, H> {
    /// Takes a table the bus filled.
    ///
    /// # Safety
    /// 1. `table` was filled by the bus in answer to this child's IRP_MN_QUERY_INTERFACE
    ///    (its functions and context belong together), and the reference that answer took is
    ///    handed to the result (which drops it);
    /// 2. the result is dropped, not leaked, before `handler` goes away: the last dereference
    ///    is what stops the bus calling `handler`.
    pub(crate) unsafe fn new(
        table: &XenBusInterfaceV1,
        handler: &'h H,
    ) -> Result<Self, TableRefusal> {
        if let Err(refusal) = consumer_accepts(table) {
            give_back(&table.header);
            return Err(refusal);
        }
        Ok(RawTable {
            table: *table,
            handler,
        })
    }

    fn handler_context(&self) -> *mut c_void {
        self.handler as *const H as *mut c_void
    }

    pub(crate) fn grant_access(
        &self,
        domid: DomId,
        frame: u64,
        readonly: bool,
    ) -> Result<GrantRef, BusError> {
        let mut gref = 0u32;
        let s = call!(self.grant_access(domid, frame, u8::from(readonly), &mut gref));
        BusError::check(s, 0).map(|()| gref)
    }

    pub(crate) fn end_access(&self, gref: GrantRef) -> Result<Revocation, BusError> {
        let mut outcome = u32::MAX;
        let s = call!(self.end_access(gref, &mut outcome));
        BusError::check(s, 0)?;
        match outcome {
            0 => Ok(Revocation::Revoked),
            1 => Ok(Revocation::Deferred),
            // An outcome we cannot read: the safe reading is that the backend may still map
            // the page.
            _ => Ok(Revocation::Deferred),
        }
    }

    pub(crate) fn alloc_unbound(
        &self,
        remote: DomId,
        delivery: Delivery,
    ) -> Result<EvtchnPort, BusError> {
        let mut port = 0u32;
        let s = call!(self.evtchn_alloc_unbound(
            remote,
            Some(event_trampoline::<H>),
            self.handler_context(),
            delivery as u32,
            &mut port,
        ));
        BusError::check(s, 0).map(|()| port)
    }

    pub(crate) fn bind_interdomain(
        &self,
        remote: DomId,
        remote_port: EvtchnPort,
        delivery: Delivery,
    ) -> Result<EvtchnPort, BusError> {
        let mut port = 0u32;
        let s = call!(self.evtchn_bind_interdomain(
            remote,
            remote_port,
            Some(event_trampoline::<H>),
            self.handler_context(),
            delivery as u32,
            &mut port,
        ));
        BusError::check(s, 0).map(|()| port)
    }

    pub(crate) fn notify(&self, port: EvtchnPort) -> Result<(), BusError> {
        BusError::check(call!(self.evtchn_notify(port)), 0)
    }

    pub(crate) fn unmask(&self, port: EvtchnPort) -> Result<(), BusError> {
        BusError::check(call!(self.evtchn_unmask(port)), 0)
    }

    pub(crate) fn close(&self, port: EvtchnPort) -> Result<(), BusError> {
        BusError::check(call!(self.evtchn_close(port)), 0)
    }

    pub(crate) fn store_read(
        &self,
        tx: u32,
        base: StoreBase,
        path: &[u8],
        buf: &mut [u8],
    ) -> Result<usize, BusError> {
        let mut len = 0usize;
        let s = call!(self.store_read(
            tx,
            base as u32,
            path.as_ptr(),
            path.len(),
            buf.as_mut_ptr(),
            buf.len(),
            &mut len,
        ));
        checked_length(s, len, buf.len())
    }

    pub(crate) fn store_directory(
        &self,
        tx: u32,
        base: StoreBase,
        path: &[u8],
        buf: &mut [u8],
    ) -> Result<usize, BusError> {
        let mut len = 0usize;
        let s = call!(self.store_directory(
            tx,
            base as u32,
            path.as_ptr(),
            path.len(),
            buf.as_mut_ptr(),
            buf.len(),
            &mut len,
        ));
        checked_length(s, len, buf.len())
    }

    pub(crate) fn store_write(
        &self,
        tx: u32,
        base: StoreBase,
        path: &[u8],
        value: &[u8],
    ) -> Result<(), BusError> {
        let s = call!(self.store_write(
            tx,
            base as u32,
            path.as_ptr(),
            path.len(),
            value.as_ptr(),
            value.len(),
        ));
        BusError::check(s, 0)
    }

    pub(crate) fn store_remove(
        &self,
        tx: u32,
        base: StoreBase,
        path: &[u8],
    ) -> Result<(), BusError> {
        let s = call!(self.store_remove(tx, base as u32, path.as_ptr(), path.len()));
        BusError::check(s, 0)
    }

    pub(crate) fn store_watch(&self, base: StoreBase, path: &[u8]) -> Result<u32, BusError> {
        let mut watch = 0u32;
        let s = call!(self.store_watch(
            base as u32,
            path.as_ptr(),
            path.len(),
            Some(watch_trampoline::<H>),
            self.handler_context(),
            &mut watch,
        ));
        BusError::check(s, 0).map(|()| watch)
    }

    pub(crate) fn store_unwatch(&self, watch: u32) -> Result<(), BusError> {
        BusError::check(call!(self.store_unwatch(watch)), 0)
    }

    pub(crate) fn transaction_start(&self) -> Result<u32, BusError> {
        let mut tx = 0u32;
        let s = call!(self.store_transaction_start(&mut tx));
        BusError::check(s, 0).map(|()| tx)
    }

    pub(crate) fn transaction_end(&self, tx: u32, commit: bool) -> Result<(), BusError> {
        BusError::check(call!(self.store_transaction_end(tx, u8::from(commit))), 0)
    }

    /// The raw kind and state of the backend's `state` node.
    pub(crate) fn read_backend_state(&self) -> Result<(u32, u32), BusError> {
        let mut kind = u32::MAX;
        let mut state = 0u32;
        let s = call!(self.read_backend_state(&mut kind, &mut state));
        BusError::check(s, 0).map(|()| (kind, state))
    }

    pub(crate) fn switch_state(&self, tx: u32, state: u32) -> Result<(), BusError> {
        BusError::check(call!(self.switch_state(tx, state)), 0)
    }

    pub(crate) fn backend_path(&self, buf: &mut [u8]) -> Result<usize, BusError> {
        let mut len = 0usize;
        let s = call!(self.backend_path(buf.as_mut_ptr(), buf.len(), &mut len));
        checked_length(s, len, buf.len())
    }

    pub(crate) fn frontend_path(&self, buf: &mut [u8]) -> Result<usize, BusError> {
        let mut len = 0usize;
        let s = call!(self.frontend_path(buf.as_mut_ptr(), buf.len(), &mut len));
        checked_length(s, len, buf.len())
    }

    pub(crate) fn backend_domid(&self) -> Result<DomId, BusError> {
        let mut domid = 0u16;
        let s = call!(self.backend_domid(&mut domid));
        BusError::check(s, 0).map(|()| domid)
    }

    pub(crate) fn register_suspend(&self) -> Result<u32, BusError> {
        let mut handle = 0u32;
        let s = call!(self.register_suspend(
            Some(suspend_trampoline::<H>),
            self.handler_context(),
            &mut handle,
        ));
        BusError::check(s, 0).map(|()| handle)
    }

    pub(crate) fn unregister_suspend(&self, handle: u32) -> Result<(), BusError> {
        BusError::check(call!(self.unregister_suspend(handle)), 0)
    }
}

impl<H> Drop for RawTable<'_, H> {
    fn drop(&mut self) {
        if let Some(f) = self.table.header.interface_dereference {
            // SAFETY:
            // 1. `f` and the context come from the checked table (`RawTable::new`'s contract);
            // 2. this drops the one reference the table held, once: nothing calls through it
            //    afterwards.
            unsafe { f(self.table.header.context) }
        }
    }
}

/// Drops the reference a refused table came with, when its header names a dereference
/// function and a context (the `INTERFACE` header is the same in every version, so a table
/// refused for its version or size can still be given back).
fn give_back(header: &InterfaceHeader) {
    if header.context.is_null() {
        return;
    }
    if let Some(f) = header.interface_dereference {
        // SAFETY:
        // 1. the header was filled by the bus in answer to this child's query
        //    (`RawTable::new`'s contract), so `f` belongs with `context`;
        // 2. the reference that answer took is dropped once, here, and the table not used.
        unsafe { f(header.context) }
    }
}

impl<'h, H: BusCallbacks> crate::BusClient<'h, H> {
    /// Takes the table the bus filled in answer to this child's IRP_MN_QUERY_INTERFACE,
    /// after checking it (version, size, context, every function). A refused table's
    /// reference is given back at once.
    ///
    /// # Safety
    /// 1. `table` is what the bus wrote into this child's query buffer (its functions and
    ///    context belong together), and the reference the answer took is handed over to the
    ///    client, which drops it when it is dropped;
    /// 2. the client is dropped, not leaked (`mem::forget`), before `handler` goes away: the
    ///    last dereference is what stops the bus calling `handler`.
    pub unsafe fn new(table: &XenBusInterfaceV1, handler: &'h H) -> Result<Self, TableRefusal> {
        // SAFETY:
        // 1. the caller's contract is `RawTable::new`'s, forwarded unchanged.
        let raw = unsafe { RawTable::new(table, handler) }?;
        Ok(crate::BusClient { raw })
    }
}

/// A length the bus reported, checked against the buffer: never trusted to be in bounds.
pub(super) fn checked_length(
    status: Status,
    len: usize,
    buf_len: usize,
) -> Result<usize, BusError> {
    BusError::check(status, len)?;
    if len > buf_len {
        return Err(BusError::InvalidParameter);
    }
    Ok(len)
}

unsafe extern "C" fn event_trampoline<H: BusCallbacks>(context: *mut c_void, port: u32) {
    // SAFETY:
    // 1. the bus calls with the context the child registered: a `&H` of the `RawTable`,
    //    alive until the registration is gone (the table's `Drop` comes first);
    // 2. `H: Sync`, so a shared reference may be used from any CPU.
    let handler = unsafe { &*(context as *const H) };
    handler.on_event(port);
}

unsafe extern "C" fn watch_trampoline<H: BusCallbacks>(
    context: *mut c_void,
    watch: u32,
    path: *const u8,
    path_len: usize,
) {
    // SAFETY:
    // 1. the bus calls with the context the child registered, a live `&H` (as above).
    let handler = unsafe { &*(context as *const H) };
    // SAFETY:
    // 1. the bus passes a path valid for `path_len` bytes for the call (or null with 0).
    let path = unsafe { bytes(path, path_len) }.unwrap_or(&[]);
    handler.on_watch(watch, path);
}

unsafe extern "C" fn suspend_trampoline<H: BusCallbacks>(context: *mut c_void, phase: u32) {
    // SAFETY:
    // 1. the bus calls with the context the child registered, a live `&H` (as above).
    let handler = unsafe { &*(context as *const H) };
    if let Some(phase) = SuspendPhase::from_u32(phase) {
        handler.on_suspend(phase);
    }
}
