//! The one place raw pointers cross between the images: the provider's `extern "C"` thunks
//! (which turn the table's context back into the [`ChildInterface`] and the caller's pointers
//! into slices), the handlers that call a child's callbacks, and `RawTable`, through which a
//! child calls the bus.
//!
//! Everything else in the crate is `#![forbid(unsafe_code)]`.
//!
//! # The contract both sides keep
//! - The bus keeps the [`ChildInterface`] a table points to in place, and alive, while any
//!   reference to that table is held (a static, or the PDO's extension until removal with the
//!   reference count at zero).
//! - The child calls a function only with the table's own context, with pointers that are
//!   either null (with length 0) or valid for the length given, for the duration of the call.
//! - A callback context the child registers stays valid, and callable from any CPU, until the
//!   registration is removed (close, unwatch, unregister, or the last dereference, each of which
//!   returns only when the callback is no longer running).

use core::ffi::c_void;

use xen_abi::types::{DomId, EvtchnPort, GrantRef};
use xenpci_core::grant_table::Revocation;
use xenpci_core::xenbus::Backend;

use crate::abi::{
    BackendStateKind, Delivery, EventCallbackFn, InterfaceHeader, Status, StoreBase,
    SuspendCallbackFn, SuspendPhase, WatchCallbackFn, XenBusInterfaceV1, XEN_BUS_INTERFACE_V1_SIZE,
    XEN_BUS_INTERFACE_VERSION_1,
};
use crate::consumer::BusCallbacks;
use crate::negotiate::{consumer_accepts, QueryRefusal, QueryRequest, TableRefusal};
use crate::provider::{BusServices, ChildInterface};
use crate::status::STATUS_SUCCESS;
use crate::BusError;

// ---------------------------------------------------------------------------------------------
// Handlers: a child's callback as the bus holds it.

/// A child's event-channel callback, as registered through the table.
#[derive(Clone, Copy, Debug)]
pub struct EventHandler {
    function: EventCallbackFn,
    context: *mut c_void,
    delivery: Delivery,
}

// SAFETY: the child promised, when registering, that the context may be used from any CPU
// until the registration is removed (the module's contract); the handler holds nothing else.
unsafe impl Send for EventHandler {}
// SAFETY: as for `Send`: calling the callback from several CPUs is what the child agreed to.
unsafe impl Sync for EventHandler {}

impl EventHandler {
    /// How the child wants it called.
    pub fn delivery(&self) -> Delivery {
        self.delivery
    }

    /// Calls the child's callback for `port`. The bus masks `port` first, calls this at the
    /// IRQL [`delivery`](Self::delivery) names, and never while the same registration's
    /// callback is still running.
    pub fn fire(&self, port: EvtchnPort) {
        // SAFETY:
        // 1. `function` and `context` came together from the child's registration, which
        //    promised they stay valid until the registration is removed;
        // 2. the bus calls this only for a registration it has not removed (its `close` and
        //    `release` return only after the last call finished).
        unsafe { (self.function)(self.context, port) }
    }
}

/// A child's watch callback.
#[derive(Clone, Copy, Debug)]
pub struct WatchHandler {
    function: WatchCallbackFn,
    context: *mut c_void,
}

// SAFETY: as for `EventHandler`: the child's registration promises cross-CPU use.
unsafe impl Send for WatchHandler {}
// SAFETY: as for `EventHandler`.
unsafe impl Sync for WatchHandler {}

impl WatchHandler {
    /// Calls the child's callback at PASSIVE_LEVEL for watch `watch`, which fired on `path`.
    pub fn fire(&self, watch: u32, path: &[u8]) {
        // SAFETY:
        // 1. `function` and `context` came together from the child's registration, valid
        //    until it is removed (the bus calls this only before `store_unwatch`/`release`
        //    returned);
        // 2. `path` is a live slice for the whole call.
        unsafe { (self.function)(self.context, watch, path.as_ptr(), path.len()) }
    }
}

/// A child's suspend/resume callback.
#[derive(Clone, Copy, Debug)]
pub struct SuspendHandler {
    function: SuspendCallbackFn,
    context: *mut c_void,
}

// SAFETY: as for `EventHandler`.
unsafe impl Send for SuspendHandler {}
// SAFETY: as for `EventHandler`.
unsafe impl Sync for SuspendHandler {}

impl SuspendHandler {
    /// Calls the child's callback for `phase`, at the IRQL [`SuspendPhase`] documents.
    pub fn fire(&self, phase: SuspendPhase) {
        // SAFETY:
        // 1. `function` and `context` came together from the child's registration, valid
        //    until `unregister_suspend`/`release` returned.
        unsafe { (self.function)(self.context, phase as u32) }
    }
}

// ---------------------------------------------------------------------------------------------
// Provider: the thunks behind the table.

/// The adapter a table's context points to.
///
/// # Safety
/// `context` must be the context of a table [`table_v1`] filled from a `ChildInterface<S>`
/// that is still in place (the module's contract).
unsafe fn child<'a, S>(context: *mut c_void) -> &'a ChildInterface<S> {
    // SAFETY:
    // 1. by the function's contract, `context` is a `&ChildInterface<S>` turned into a
    //    pointer by `table_v1`, and the interface is still alive and unmoved;
    // 2. only shared references are ever made from it.
    unsafe { &*(context as *const ChildInterface<S>) }
}

/// Writes `value` to an output pointer, refusing a null one.
///
/// # Safety
/// `out` is null or valid for a write of `T`.
unsafe fn put<T>(out: *mut T, value: T) -> Result<(), BusError> {
    if out.is_null() {
        return Err(BusError::InvalidParameter);
    }
    // SAFETY:
    // 1. `out` is not null, and by the function's contract valid and aligned for a `T`.
    unsafe { out.write(value) };
    Ok(())
}

/// The bytes a pointer and length name: empty for length 0, refused for a null pointer with a
/// length.
///
/// # Safety
/// `ptr` is null or valid for reads of `len` bytes for `'a`.
unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], BusError> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() || len > isize::MAX as usize {
        return Err(BusError::InvalidParameter);
    }
    // SAFETY:
    // 1. `ptr` is not null and, by the function's contract, valid for `len` bytes for `'a`;
    // 2. `len` fits an `isize`.
    Ok(unsafe { core::slice::from_raw_parts(ptr, len) })
}

/// As [`bytes`], writable.
///
/// # Safety
/// `ptr` is null or valid for reads and writes of `len` bytes for `'a`, and nothing else
/// touches them meanwhile.
unsafe fn bytes_mut<'a>(ptr: *mut u8, len: usize) -> Result<&'a mut [u8], BusError> {
    if len == 0 {
        return Ok(&mut []);
    }
    if ptr.is_null() || len > isize::MAX as usize {
        return Err(BusError::InvalidParameter);
    }
    // SAFETY:
    // 1. `ptr` is not null and, by the function's contract, valid and exclusive for `len`
    //    bytes for `'a`;
    // 2. `len` fits an `isize`.
    Ok(unsafe { core::slice::from_raw_parts_mut(ptr, len) })
}

fn status(result: Result<(), BusError>) -> Status {
    match result {
        Ok(()) => STATUS_SUCCESS,
        Err(e) => e.status(),
    }
}

/// Reports a length result: the length on success, the needed length on a short buffer.
///
/// # Safety
/// `len` is null or valid for a write of a `usize`.
unsafe fn length_status(result: Result<usize, BusError>, len: *mut usize) -> Status {
    let written = match result {
        Ok(n) => n,
        Err(BusError::BufferTooSmall { needed }) => needed,
        Err(e) => return e.status(),
    };
    // SAFETY:
    // 1. by the function's contract, `len` is null (refused) or valid for the write.
    if let Err(e) = unsafe { put(len, written) } {
        return e.status();
    }
    match result {
        Ok(_) => STATUS_SUCCESS,
        Err(e) => e.status(),
    }
}

unsafe extern "C" fn reference_thunk<S: BusServices>(context: *mut c_void) {
    // SAFETY:
    // 1. the child calls the header's functions only with the table's context (contract).
    let child = unsafe { child::<S>(context) };
    child.reference();
}

unsafe extern "C" fn dereference_thunk<S: BusServices>(context: *mut c_void) {
    // SAFETY:
    // 1. the child calls the header's functions only with the table's context (contract).
    let child = unsafe { child::<S>(context) };
    child.dereference();
}

unsafe extern "C" fn grant_access_thunk<S: BusServices>(
    context: *mut c_void,
    domid: u16,
    frame: u64,
    readonly: u8,
    gref: *mut u32,
) -> Status {
    // SAFETY:
    // 1. the child calls with the table's context (contract).
    let child = unsafe { child::<S>(context) };
    let result = child.grant_access(domid, frame, readonly != 0);
    status(result.and_then(|r| {
        // SAFETY:
        // 1. `gref` is null or valid for a `u32` write (contract).
        unsafe { put(gref, r) }
    }))
}

unsafe extern "C" fn end_access_thunk<S: BusServices>(
    context: *mut c_void,
    gref: u32,
    outcome: *mut u32,
) -> Status {
    // SAFETY:
    // 1. the child calls with the table's context (contract).
    let child = unsafe { child::<S>(context) };
    if outcome.is_null() {
        // Refused before anything happens: a revocation's outcome must never be lost.
        return BusError::InvalidParameter.status();
    }
    let result = child.end_access(gref).map(|r| match r {
        Revocation::Revoked => 0,
        Revocation::Deferred => 1,
    });
    status(result.and_then(|o| {
        // SAFETY:
        // 1. `outcome` is not null and valid for a `u32` write (contract).
        unsafe { put(outcome, o) }
    }))
}

fn event_handler(
    callback: Option<EventCallbackFn>,
    context: *mut c_void,
    delivery: u32,
) -> Option<EventHandler> {
    Some(EventHandler {
        function: callback?,
        context,
        delivery: Delivery::from_u32(delivery)?,
    })
}

unsafe extern "C" fn alloc_unbound_thunk<S: BusServices>(
    context: *mut c_void,
    remote_domid: u16,
    callback: Option<EventCallbackFn>,
    callback_context: *mut c_void,
    delivery: u32,
    port: *mut u32,
) -> Status {
    // SAFETY:
    // 1. the child calls with the table's context (contract).
    let child = unsafe { child::<S>(context) };
    if port.is_null() {
        return BusError::InvalidParameter.status();
    }
    let handler = event_handler(callback, callback_context, delivery);
    status(child.alloc_unbound(remote_domid, handler).and_then(|p| {
        // SAFETY:
        // 1. `port` is not null and valid for a `u32` write (contract).
        unsafe { put(port, p) }
    }))
}

unsafe extern "C" fn bind_interdomain_thunk<S: BusServices>(
    context: *mut c_void,
    remote_domid: u16,
    remote_port: u32,
    callback: Option<EventCallbackFn>,
    callback_context: *mut c_void,
    delivery: u32,
    port: *mut u32,
) -> Status {
    // SAFETY:
    // 1. the child calls with the table's context (contract).
    let child = unsafe { child::<S>(context) };
    if port.is_null() {
        return BusError::InvalidParameter.status();
    }
    let handler = event_handler(callback, callback_context, delivery);
    status(
        child
            .bind_interdomain(remote_domid, remote_port, handler)
            .and_then(|p| {
                // SAFETY:
                // 1. `port` is not null and valid for a `u32` write (contract).
                unsafe { put(port, p) }
            }),
    )
}

unsafe extern "C" fn notify_thunk<S: BusServices>(context: *mut c_void, port: u32) -> Status {
    // SAFETY:
    // 1. the child calls with the table's context (contract).
    let child = unsafe { child::<S>(context) };
    status(child.notify(port))
}

unsafe extern "C" fn unmask_thunk<S: BusServices>(context: *mut c_void, port: u32) -> Status {
    // SAFETY:
    // 1. the child calls with the table's context (contract).
    let child = unsafe { child::<S>(context) };
    status(child.unmask(port))
}

unsafe extern "C" fn close_thunk<S: BusServices>(context: *mut c_void, port: u32) -> Status {
    // SAFETY:
    // 1. the child calls with the table's context (contract).
    let child = unsafe { child::<S>(context) };
    status(child.close(port))
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn store_read_thunk<S: BusServices>(
    context: *mut c_void,
    tx: u32,
    base: u32,
    path: *const u8,
    path_len: usize,
    buf: *mut u8,
    buf_len: usize,
    len: *mut usize,
) -> Status {
    // SAFETY:
    // 1. the child calls with the table's context (contract).
    let child = unsafe { child::<S>(context) };
    // SAFETY:
    // 1. `path` is null or valid for `path_len` bytes for the call (contract).
    let path = match unsafe { bytes(path, path_len) } {
        Ok(p) => p,
        Err(e) => return e.status(),
    };
    // SAFETY:
    // 1. `buf` is null or valid and exclusive for `buf_len` bytes for the call (contract).
    let buf = match unsafe { bytes_mut(buf, buf_len) } {
        Ok(b) => b,
        Err(e) => return e.status(),
    };
    let result = child.store_read(tx, base, path, buf);
    // SAFETY:
    // 1. `len` is null or valid for a `usize` write (contract).
    unsafe { length_status(result, len) }
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn store_directory_thunk<S: BusServices>(
    context: *mut c_void,
    tx: u32,
    base: u32,
    path: *const u8,
    path_len: usize,
    buf: *mut u8,
    buf_len: usize,
    len: *mut usize,
) -> Status {
    // SAFETY:
    // 1. the child calls with the table's context (contract).
    let child = unsafe { child::<S>(context) };
    // SAFETY:
    // 1. `path` is null or valid for `path_len` bytes for the call (contract).
    let path = match unsafe { bytes(path, path_len) } {
        Ok(p) => p,
        Err(e) => return e.status(),
    };
    // SAFETY:
    // 1. `buf` is null or valid and exclusive for `buf_len` bytes for the call (contract).
    let buf = match unsafe { bytes_mut(buf, buf_len) } {
        Ok(b) => b,
        Err(e) => return e.status(),
    };
    let result = child.store_directory(tx, base, path, buf);
    // SAFETY:
    // 1. `len` is null or valid for a `usize` write (contract).
    unsafe { length_status(result, len) }
}

unsafe extern "C" fn store_write_thunk<S: BusServices>(
    context: *mut c_void,
    tx: u32,
    base: u32,
    path: *const u8,
    path_len: usize,
    value: *const u8,
    value_len: usize,
) -> Status {
    // SAFETY:
    // 1. the child calls with the table's context (contract).
    let child = unsafe { child::<S>(context) };
    // SAFETY:
    // 1. `path` is null or valid for `path_len` bytes for the call (contract).
    let path = match unsafe { bytes(path, path_len) } {
        Ok(p) => p,
        Err(e) => return e.status(),
    };
    // SAFETY:
    // 1. `value` is null or valid for `value_len` bytes for the call (contract).
    let value = match unsafe { bytes(value, value_len) } {
        Ok(v) => v,
        Err(e) => return e.status(),
    };
    status(child.store_write(tx, base, path, value))
}

unsafe extern "C" fn store_remove_thunk<S: BusServices>(
    context: *mut c_void,
    tx: u32,
    base: u32,
    path: *const u8,
    path_len: usize,
) -> Status {
    // SAFETY:
    // 1. the child calls with the table's context (contract).
    let child = unsafe { child::<S>(context) };
    // SAFETY:
    // 1. `path` is null or valid for `path_len` bytes for the call (contract).
    let path = match unsafe { bytes(path, path_len) } {
        Ok(p) => p,
        Err(e) => return e.status(),
    };
    status(child.store_remove(tx, base, path))
}

unsafe extern "C" fn store_watch_thunk<S: BusServices>(
    context: *mut c_void,
    base: u32,
    path: *const u8,
    path_len: usize,
    callback: Option<WatchCallbackFn>,
    callback_context: *mut c_void,
    watch: *mut u32,
) -> Status {
    // SAFETY:
    // 1. the child calls with the table's context (contract).
    let child = unsafe { child::<S>(context) };
    if watch.is_null() {
        return BusError::InvalidParameter.status();
    }
    // SAFETY:
    // 1. `path` is null or valid for `path_len` bytes for the call (contract).
    let path = match unsafe { bytes(path, path_len) } {
        Ok(p) => p,
        Err(e) => return e.status(),
    };
    let handler = callback.map(|function| WatchHandler {
        function,
        context: callback_context,
    });
    status(child.store_watch(base, path, handler).and_then(|w| {
        // SAFETY:
        // 1. `watch` is not null and valid for a `u32` write (contract).
        unsafe { put(watch, w) }
    }))
}

unsafe extern "C" fn store_unwatch_thunk<S: BusServices>(
    context: *mut c_void,
    watch: u32,
) -> Status {
    // SAFETY:
    // 1. the child calls with the table's context (contract).
    let child = unsafe { child::<S>(context) };
    status(child.store_unwatch(watch))
}

unsafe extern "C" fn transaction_start_thunk<S: BusServices>(
    context: *mut c_void,
    tx: *mut u32,
) -> Status {
    // SAFETY:
    // 1. the child calls with the table's context (contract).
    let child = unsafe { child::<S>(context) };
    if tx.is_null() {
        // Refused before starting one: a transaction nobody can end would be leaked.
        return BusError::InvalidParameter.status();
    }
    status(child.transaction_start().and_then(|t| {
        // SAFETY:
        // 1. `tx` is not null and valid for a `u32` write (contract).
        unsafe { put(tx, t) }
    }))
}

unsafe extern "C" fn transaction_end_thunk<S: BusServices>(
    context: *mut c_void,
    tx: u32,
    commit: u8,
) -> Status {
    // SAFETY:
    // 1. the child calls with the table's context (contract).
    let child = unsafe { child::<S>(context) };
    status(child.transaction_end(tx, commit != 0))
}

unsafe extern "C" fn read_backend_state_thunk<S: BusServices>(
    context: *mut c_void,
    kind: *mut u32,
    state: *mut u32,
) -> Status {
    // SAFETY:
    // 1. the child calls with the table's context (contract).
    let child = unsafe { child::<S>(context) };
    if kind.is_null() || state.is_null() {
        return BusError::InvalidParameter.status();
    }
    let (k, s) = match child.read_backend_state() {
        Ok(Backend::State(s)) => (BackendStateKind::State, s.as_u32()),
        Ok(Backend::Garbage(_)) => (BackendStateKind::Garbage, 0),
        Ok(Backend::Gone) => (BackendStateKind::Gone, 0),
        Err(e) => return e.status(),
    };
    // SAFETY:
    // 1. `kind` is not null and valid for a `u32` write (contract).
    let first = unsafe { put(kind, k as u32) };
    status(first.and_then(|()| {
        // SAFETY:
        // 1. `state` is not null and valid for a `u32` write (contract).
        unsafe { put(state, s) }
    }))
}

unsafe extern "C" fn switch_state_thunk<S: BusServices>(
    context: *mut c_void,
    tx: u32,
    state: u32,
) -> Status {
    // SAFETY:
    // 1. the child calls with the table's context (contract).
    let child = unsafe { child::<S>(context) };
    status(child.switch_state(tx, state))
}

unsafe extern "C" fn backend_path_thunk<S: BusServices>(
    context: *mut c_void,
    buf: *mut u8,
    buf_len: usize,
    len: *mut usize,
) -> Status {
    // SAFETY:
    // 1. the child calls with the table's context (contract).
    let child = unsafe { child::<S>(context) };
    // SAFETY:
    // 1. `buf` is null or valid and exclusive for `buf_len` bytes for the call (contract).
    let buf = match unsafe { bytes_mut(buf, buf_len) } {
        Ok(b) => b,
        Err(e) => return e.status(),
    };
    let result = child.backend_path(buf);
    // SAFETY:
    // 1. `len` is null or valid for a `usize` write (contract).
    unsafe { length_status(result, len) }
}

unsafe extern "C" fn frontend_path_thunk<S: BusServices>(
    context: *mut c_void,
    buf: *mut u8,
    buf_len: usize,
    len: *mut usize,
) -> Status {
    // SAFETY:
    // 1. the child calls with the table's context (contract).
    let child = unsafe { child::<S>(context) };
    // SAFETY:
    // 1. `buf` is null or valid and exclusive for `buf_len` bytes for the call (contract).
    let buf = match unsafe { bytes_mut(buf, buf_len) } {
        Ok(b) => b,
        Err(e) => return e.status(),
    };
    let result = child.frontend_path(buf);
    // SAFETY:
    // 1. `len` is null or valid for a `usize` write (contract).
    unsafe { length_status(result, len) }
}

unsafe extern "C" fn backend_domid_thunk<S: BusServices>(
    context: *mut c_void,
    domid: *mut u16,
) -> Status {
    // SAFETY:
    // 1. the child calls with the table's context (contract).
    let child = unsafe { child::<S>(context) };
    status(child.backend_domid().and_then(|d| {
        // SAFETY:
        // 1. `domid` is null or valid for a `u16` write (contract).
        unsafe { put(domid, d) }
    }))
}

unsafe extern "C" fn register_suspend_thunk<S: BusServices>(
    context: *mut c_void,
    callback: Option<SuspendCallbackFn>,
    callback_context: *mut c_void,
    handle: *mut u32,
) -> Status {
    // SAFETY:
    // 1. the child calls with the table's context (contract).
    let child = unsafe { child::<S>(context) };
    if handle.is_null() {
        return BusError::InvalidParameter.status();
    }
    let handler = callback.map(|function| SuspendHandler {
        function,
        context: callback_context,
    });
    status(child.register_suspend(handler).and_then(|h| {
        // SAFETY:
        // 1. `handle` is not null and valid for a `u32` write (contract).
        unsafe { put(handle, h) }
    }))
}

unsafe extern "C" fn unregister_suspend_thunk<S: BusServices>(
    context: *mut c_void,
    handle: u32,
) -> Status {
    // SAFETY:
    // 1. the child calls with the table's context (contract).
    let child = unsafe { child::<S>(context) };
    status(child.unregister_suspend(handle))
}

/// The version 1 table of `child`: its address as the context, the thunks for `S`.
pub(crate) fn table_v1<S: BusServices + Sync>(child: &ChildInterface<S>) -> XenBusInterfaceV1 {
    XenBusInterfaceV1 {
        header: InterfaceHeader {
            size: XEN_BUS_INTERFACE_V1_SIZE,
            version: XEN_BUS_INTERFACE_VERSION_1,
            context: child as *const ChildInterface<S> as *mut c_void,
            interface_reference: Some(reference_thunk::<S>),
            interface_dereference: Some(dereference_thunk::<S>),
        },
        grant_access: Some(grant_access_thunk::<S>),
        end_access: Some(end_access_thunk::<S>),
        evtchn_alloc_unbound: Some(alloc_unbound_thunk::<S>),
        evtchn_bind_interdomain: Some(bind_interdomain_thunk::<S>),
        evtchn_notify: Some(notify_thunk::<S>),
        evtchn_unmask: Some(unmask_thunk::<S>),
        evtchn_close: Some(close_thunk::<S>),
        store_read: Some(store_read_thunk::<S>),
        store_write: Some(store_write_thunk::<S>),
        store_remove: Some(store_remove_thunk::<S>),
        store_directory: Some(store_directory_thunk::<S>),
        store_watch: Some(store_watch_thunk::<S>),
        store_unwatch: Some(store_unwatch_thunk::<S>),
        store_transaction_start: Some(transaction_start_thunk::<S>),
        store_transaction_end: Some(transaction_end_thunk::<S>),
        read_backend_state: Some(read_backend_state_thunk::<S>),
        switch_state: Some(switch_state_thunk::<S>),
        backend_path: Some(backend_path_thunk::<S>),
        frontend_path: Some(frontend_path_thunk::<S>),
        backend_domid: Some(backend_domid_thunk::<S>),
        register_suspend: Some(register_suspend_thunk::<S>),
        unregister_suspend: Some(unregister_suspend_thunk::<S>),
    }
}

impl<S: BusServices + Sync> ChildInterface<S> {
    /// Answers a query for an adapter that lives in memory the bus owns (the PDO's extension).
    ///
    /// # Safety
    /// 1. `self` stays at this address, alive, until [`references`](Self::references) is back
    ///    to 0 after the child's last dereference (the bus checks it before freeing the PDO);
    /// 2. the table is handed only to the child the adapter was made for.
    pub unsafe fn answer_query_in_place(
        &self,
        request: &QueryRequest,
    ) -> Result<XenBusInterfaceV1, QueryRefusal> {
        self.fill(request)
    }
}

// ---------------------------------------------------------------------------------------------
// Consumer: calling the bus through a table.

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
fn checked_length(status: Status, len: usize, buf_len: usize) -> Result<usize, BusError> {
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

#[cfg(test)]
mod tests;
