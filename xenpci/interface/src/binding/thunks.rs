//! The provider's side of the binding: the `extern "C"` thunks behind the table, each turning
//! the table's context back into the [`ChildInterface`] and the caller's pointers into Rust
//! values, and [`table_v1`], which fills a table with them.

use core::ffi::c_void;

use xenpci_core::grant_table::Revocation;
use xenpci_core::xenbus::Backend;

use super::{bytes, bytes_mut, put, EventHandler, SuspendHandler, WatchHandler};
use crate::abi::{
    BackendStateKind, Delivery, EventCallbackFn, InterfaceHeader, Status, SuspendCallbackFn,
    WatchCallbackFn, XenBusInterfaceV1, XEN_BUS_INTERFACE_V1_SIZE, XEN_BUS_INTERFACE_VERSION_1,
};
use crate::negotiate::{QueryRefusal, QueryRequest};
use crate::provider::{BusServices, ChildInterface};
use crate::status::STATUS_SUCCESS;
use crate::BusError;

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

/// A store call that fills a buffer: (child, transaction, base directory, path, buffer) to the
/// length written.
type StoreIntoBuffer<S> =
    fn(&ChildInterface<S>, u32, u32, &[u8], &mut [u8]) -> Result<usize, BusError>;

/// The store calls that fill the caller's buffer (read and directory): the child, the path and
/// the buffer from the caller's pointers, `op` on them, and the length written (or needed)
/// through `len`.
///
/// # Safety
/// The thunks' contract: `context` is the context of a live table; `path` is null or valid for
/// `path_len` bytes, `buf` null or valid and exclusive for `buf_len` bytes, and `len` null or
/// valid for a `usize` write, all for the call.
#[allow(clippy::too_many_arguments)]
unsafe fn store_into_buffer<S: BusServices>(
    context: *mut c_void,
    tx: u32,
    base: u32,
    path: *const u8,
    path_len: usize,
    buf: *mut u8,
    buf_len: usize,
    len: *mut usize,
    op: StoreIntoBuffer<S>,
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
    let result = op(child, tx, base, path, buf);
    // SAFETY:
    // 1. `len` is null or valid for a `usize` write (contract).
    unsafe { length_status(result, len) }
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
    // 1. the child's call carries the thunks' contract, which is the helper's.
    unsafe {
        store_into_buffer(
            context,
            tx,
            base,
            path,
            path_len,
            buf,
            buf_len,
            len,
            ChildInterface::<S>::store_read,
        )
    }
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
    // 1. the child's call carries the thunks' contract, which is the helper's.
    unsafe {
        store_into_buffer(
            context,
            tx,
            base,
            path,
            path_len,
            buf,
            buf_len,
            len,
            ChildInterface::<S>::store_directory,
        )
    }
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
