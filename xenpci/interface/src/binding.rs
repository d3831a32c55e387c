//! The one place raw pointers cross between the images: the provider's `extern "C"` thunks
//! (which turn the table's context back into the [`ChildInterface`](crate::ChildInterface) and the caller's pointers
//! into slices), the handlers that call a child's callbacks, and `RawTable`, through which a
//! child calls the bus.
//!
//! Everything else in the crate is `#![forbid(unsafe_code)]`. The module is in three files:
//! this one (the handlers and the pointer helpers), `thunks` (the provider's side) and
//! `client` (the child's side).
//!
//! # The contract both sides keep
//! - The bus keeps the [`ChildInterface`](crate::ChildInterface) a table points to in place, and alive, while any
//!   reference to that table is held (a static, or the PDO's extension until removal with the
//!   reference count at zero).
//! - The child calls a function only with the table's own context, with pointers that are
//!   either null (with length 0) or valid for the length given, for the duration of the call.
//! - A callback context the child registers stays valid, and callable from any CPU, until the
//!   registration is removed (close, unwatch, unregister, or the last dereference, each of which
//!   returns only when the callback is no longer running).

use core::ffi::c_void;

use xen_abi::types::EvtchnPort;

use crate::abi::{Delivery, EventCallbackFn, SuspendCallbackFn, SuspendPhase, WatchCallbackFn};
use crate::BusError;

mod client;
mod thunks;

pub(crate) use client::RawTable;
pub(crate) use thunks::table_v1;

// ---------------------------------------------------------------------------------------------
// Handlers: a child's callback as the bus holds it.

/// A child's event-channel callback, as registered through the table.
#[derive(Clone, Copy, Debug)]
pub struct EventHandler {
    pub(super) function: EventCallbackFn,
    pub(super) context: *mut c_void,
    pub(super) delivery: Delivery,
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
    pub(super) function: WatchCallbackFn,
    pub(super) context: *mut c_void,
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
    pub(super) function: SuspendCallbackFn,
    pub(super) context: *mut c_void,
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
// Pointers to Rust values, shared by both sides.

/// Writes `value` to an output pointer, refusing a null one.
///
/// # Safety
/// `out` is null or valid for a write of `T`.
pub(super) unsafe fn put<T>(out: *mut T, value: T) -> Result<(), BusError> {
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
pub(super) unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], BusError> {
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
pub(super) unsafe fn bytes_mut<'a>(ptr: *mut u8, len: usize) -> Result<&'a mut [u8], BusError> {
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

#[cfg(test)]
mod tests;
