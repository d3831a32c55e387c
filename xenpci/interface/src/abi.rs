//! The table itself: `#[repr(C)]` types exactly as both images see them, the GUID the child
//! names in `IRP_MN_QUERY_INTERFACE`, the versions, and the layout checked at compile time.
//!
//! Every function takes the table's [`InterfaceHeader::context`] first and returns a
//! [`Status`] (0 on success, negative on failure; [`crate::BusError`] decodes it). Outputs go
//! through pointers the caller provides; nothing is allocated. Byte strings (paths, values) are
//! a pointer and a length, never NUL-terminated; a null pointer is only accepted with length 0.
//! The calling convention is `extern "C"` (on x86_64 Windows the one and only Win64 convention,
//! the same as `extern "system"`).

#![forbid(unsafe_code)]

use core::ffi::c_void;
use core::mem::{offset_of, size_of};

/// A GUID as Windows lays it out (`GUID`: `Data1`, `Data2`, `Data3`, `Data4[8]`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Guid {
    /// `Data1`.
    pub data1: u32,
    /// `Data2`.
    pub data2: u16,
    /// `Data3`.
    pub data3: u16,
    /// `Data4`.
    pub data4: [u8; 8],
}

/// The interface type a child names in `IRP_MN_QUERY_INTERFACE`
/// (`{5b0c2d1e-8f3a-4e77-9a61-3c2b9d4e7f10}`).
pub const XEN_BUS_INTERFACE_GUID: Guid = Guid {
    data1: 0x5b0c_2d1e,
    data2: 0x8f3a,
    data3: 0x4e77,
    data4: [0x9a, 0x61, 0x3c, 0x2b, 0x9d, 0x4e, 0x7f, 0x10],
};

/// Version 1 of the table: [`XenBusInterfaceV1`].
pub const XEN_BUS_INTERFACE_VERSION_1: u16 = 1;
/// The oldest version this crate's provider fills.
pub const MIN_SUPPORTED_VERSION: u16 = XEN_BUS_INTERFACE_VERSION_1;
/// The newest version this crate's provider fills.
pub const MAX_SUPPORTED_VERSION: u16 = XEN_BUS_INTERFACE_VERSION_1;

/// A status: 0 success, negative a failure ([`crate::status`] lists the codes).
pub type Status = i32;

/// `PINTERFACE_REFERENCE` / `PINTERFACE_DEREFERENCE`.
pub type InterfaceRefFn = unsafe extern "C" fn(context: *mut c_void);

/// Windows' `INTERFACE` header, the first member of every bus interface.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct InterfaceHeader {
    /// `Size`: bytes of the whole table the provider filled.
    pub size: u16,
    /// `Version`: the table's version.
    pub version: u16,
    /// `Context`: passed back as the first argument of every function.
    pub context: *mut c_void,
    /// `InterfaceReference`: takes one more reference on the interface.
    pub interface_reference: Option<InterfaceRefFn>,
    /// `InterfaceDereference`: drops one; after the last, no function may be called and no
    /// callback of this interface runs any more.
    pub interface_dereference: Option<InterfaceRefFn>,
}

/// How an event-channel callback is delivered.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// From the bus's interrupt service routine, at the bus's DIRQL.
    Dirql = 0,
    /// From a DPC the bus queues, at DISPATCH_LEVEL.
    Dpc = 1,
}

impl Delivery {
    /// From the raw value; `None` for an unknown mode.
    pub const fn from_u32(raw: u32) -> Option<Delivery> {
        match raw {
            0 => Some(Delivery::Dirql),
            1 => Some(Delivery::Dpc),
            _ => None,
        }
    }
}

/// An event-channel callback: `(callback context, local port)`. The bus masks the port before
/// calling it; the child unmasks it (`evtchn_unmask`) when it wants the next event.
pub type EventCallbackFn = unsafe extern "C" fn(context: *mut c_void, port: u32);

/// A watch callback, at PASSIVE_LEVEL: `(callback context, watch handle, path, path length)`;
/// the path is the watched path or a node under it.
pub type WatchCallbackFn =
    unsafe extern "C" fn(context: *mut c_void, watch: u32, path: *const u8, path_len: usize);

/// A suspend/resume callback: `(callback context, phase)` ([`SuspendPhase`]).
pub type SuspendCallbackFn = unsafe extern "C" fn(context: *mut c_void, phase: u32);

/// The moments a suspend callback is told about, with the IRQL it runs at.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuspendPhase {
    /// PASSIVE_LEVEL, before the domain suspends: stop issuing requests.
    Suspending = 1,
    /// HIGH_LEVEL on the one running CPU, after the suspend hypercall returned in a new
    /// domain: the child's grant references and event channels are void (the bus has dropped
    /// their registrations and reclaims the references); record that, call nothing. The child
    /// forgets them: it never ends or closes them.
    ResumedEarly = 2,
    /// PASSIVE_LEVEL, after the bus restored shared info, grants, event channels and the
    /// store: reconnect to the backend (its handshake starts again).
    Resumed = 3,
    /// PASSIVE_LEVEL: the suspend was cancelled, the domain is the same; carry on.
    Cancelled = 4,
}

impl SuspendPhase {
    /// From the raw value; `None` for an unknown phase.
    pub const fn from_u32(raw: u32) -> Option<SuspendPhase> {
        match raw {
            1 => Some(SuspendPhase::Suspending),
            2 => Some(SuspendPhase::ResumedEarly),
            3 => Some(SuspendPhase::Resumed),
            4 => Some(SuspendPhase::Cancelled),
            _ => None,
        }
    }
}

/// Which directory a store path is relative to.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreBase {
    /// The path is absolute (starts with `/`).
    Absolute = 0,
    /// Relative to the child's frontend directory (`device/<class>/<id>`).
    Frontend = 1,
    /// Relative to the child's backend directory.
    Backend = 2,
}

impl StoreBase {
    /// From the raw value; `None` for an unknown base.
    pub const fn from_u32(raw: u32) -> Option<StoreBase> {
        match raw {
            0 => Some(StoreBase::Absolute),
            1 => Some(StoreBase::Frontend),
            2 => Some(StoreBase::Backend),
            _ => None,
        }
    }
}

/// What reading the backend's `state` node found (`read_backend_state`'s `kind`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendStateKind {
    /// A xenbus state, in `state`.
    State = 0,
    /// The node holds no xenbus state.
    Garbage = 1,
    /// The node (or the backend directory) is gone.
    Gone = 2,
}

/// `grant_access(context, domid, frame, readonly, out gref)`.
pub type GrantAccessFn = unsafe extern "C" fn(
    context: *mut c_void,
    domid: u16,
    frame: u64,
    readonly: u8,
    gref: *mut u32,
) -> Status;
/// `end_access(context, gref, out outcome)`: outcome 0 revoked, 1 deferred (the backend
/// still maps the page; the bus retries, and the page must stay untouched by anyone the
/// backend must not see).
pub type EndAccessFn =
    unsafe extern "C" fn(context: *mut c_void, gref: u32, outcome: *mut u32) -> Status;
/// `evtchn_alloc_unbound(context, remote domid, callback, callback context, delivery, out
/// port)`.
pub type AllocUnboundFn = unsafe extern "C" fn(
    context: *mut c_void,
    remote_domid: u16,
    callback: Option<EventCallbackFn>,
    callback_context: *mut c_void,
    delivery: u32,
    port: *mut u32,
) -> Status;
/// `evtchn_bind_interdomain(context, remote domid, remote port, callback, callback context,
/// delivery, out port)`.
pub type BindInterdomainFn = unsafe extern "C" fn(
    context: *mut c_void,
    remote_domid: u16,
    remote_port: u32,
    callback: Option<EventCallbackFn>,
    callback_context: *mut c_void,
    delivery: u32,
    port: *mut u32,
) -> Status;
/// `evtchn_notify`, `evtchn_unmask`, `evtchn_close`: `(context, port)`.
pub type PortFn = unsafe extern "C" fn(context: *mut c_void, port: u32) -> Status;
/// `store_read(context, tx, base, path, path len, buffer, buffer len, out len)`. On
/// `STATUS_BUFFER_TOO_SMALL` the needed length is written to `len`.
pub type StoreReadFn = unsafe extern "C" fn(
    context: *mut c_void,
    tx: u32,
    base: u32,
    path: *const u8,
    path_len: usize,
    buf: *mut u8,
    buf_len: usize,
    len: *mut usize,
) -> Status;
/// `store_write(context, tx, base, path, path len, value, value len)`.
pub type StoreWriteFn = unsafe extern "C" fn(
    context: *mut c_void,
    tx: u32,
    base: u32,
    path: *const u8,
    path_len: usize,
    value: *const u8,
    value_len: usize,
) -> Status;
/// `store_remove(context, tx, base, path, path len)`.
pub type StoreRemoveFn = unsafe extern "C" fn(
    context: *mut c_void,
    tx: u32,
    base: u32,
    path: *const u8,
    path_len: usize,
) -> Status;
/// `store_watch(context, base, path, path len, callback, callback context, out watch)`.
pub type StoreWatchFn = unsafe extern "C" fn(
    context: *mut c_void,
    base: u32,
    path: *const u8,
    path_len: usize,
    callback: Option<WatchCallbackFn>,
    callback_context: *mut c_void,
    watch: *mut u32,
) -> Status;
/// `store_unwatch`, `unregister_suspend`: `(context, handle)`.
pub type HandleFn = unsafe extern "C" fn(context: *mut c_void, handle: u32) -> Status;
/// `store_transaction_start(context, out tx)`.
pub type TransactionStartFn = unsafe extern "C" fn(context: *mut c_void, tx: *mut u32) -> Status;
/// `store_transaction_end(context, tx, commit)`; `EAGAIN` (as a store status) means redo.
pub type TransactionEndFn =
    unsafe extern "C" fn(context: *mut c_void, tx: u32, commit: u8) -> Status;
/// `read_backend_state(context, out kind, out state)` ([`BackendStateKind`]).
pub type ReadBackendStateFn =
    unsafe extern "C" fn(context: *mut c_void, kind: *mut u32, state: *mut u32) -> Status;
/// `switch_state(context, tx, state)`: writes the frontend's `state` node.
pub type SwitchStateFn = unsafe extern "C" fn(context: *mut c_void, tx: u32, state: u32) -> Status;
/// `backend_path`, `frontend_path`: `(context, buffer, buffer len, out len)`.
pub type PathFn = unsafe extern "C" fn(
    context: *mut c_void,
    buf: *mut u8,
    buf_len: usize,
    len: *mut usize,
) -> Status;
/// `backend_domid(context, out domid)`.
pub type BackendDomidFn = unsafe extern "C" fn(context: *mut c_void, domid: *mut u16) -> Status;
/// `register_suspend(context, callback, callback context, out handle)`.
pub type RegisterSuspendFn = unsafe extern "C" fn(
    context: *mut c_void,
    callback: Option<SuspendCallbackFn>,
    callback_context: *mut c_void,
    handle: *mut u32,
) -> Status;

/// Version 1 of the bus interface. Every function pointer is set by a provider that fills
/// version 1; the highest IRQL each may be called at is in the crate README and
/// [`Entry::max_irql`](crate::rules::Entry::max_irql).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct XenBusInterfaceV1 {
    /// The `INTERFACE` header.
    pub header: InterfaceHeader,
    /// Grants a domain access to a frame.
    pub grant_access: Option<GrantAccessFn>,
    /// Ends access through a grant reference.
    pub end_access: Option<EndAccessFn>,
    /// Allocates a port the remote domain may bind to.
    pub evtchn_alloc_unbound: Option<AllocUnboundFn>,
    /// Binds to a remote domain's port.
    pub evtchn_bind_interdomain: Option<BindInterdomainFn>,
    /// Notifies the remote end of a port.
    pub evtchn_notify: Option<PortFn>,
    /// Unmasks a port (after its callback ran).
    pub evtchn_unmask: Option<PortFn>,
    /// Closes a port; its callback is not called once this returns.
    pub evtchn_close: Option<PortFn>,
    /// Reads a store node.
    pub store_read: Option<StoreReadFn>,
    /// Writes a store node.
    pub store_write: Option<StoreWriteFn>,
    /// Removes a store node (and what is under it).
    pub store_remove: Option<StoreRemoveFn>,
    /// Lists a node's children, NUL-separated.
    pub store_directory: Option<StoreReadFn>,
    /// Registers a watch.
    pub store_watch: Option<StoreWatchFn>,
    /// Removes a watch; its callback is not called once this returns.
    pub store_unwatch: Option<HandleFn>,
    /// Starts a transaction.
    pub store_transaction_start: Option<TransactionStartFn>,
    /// Ends a transaction.
    pub store_transaction_end: Option<TransactionEndFn>,
    /// Reads the backend's `state`.
    pub read_backend_state: Option<ReadBackendStateFn>,
    /// Writes the frontend's `state`.
    pub switch_state: Option<SwitchStateFn>,
    /// The backend directory's path.
    pub backend_path: Option<PathFn>,
    /// The frontend directory's path (the child's device path).
    pub frontend_path: Option<PathFn>,
    /// The backend's domain.
    pub backend_domid: Option<BackendDomidFn>,
    /// Registers a suspend/resume callback.
    pub register_suspend: Option<RegisterSuspendFn>,
    /// Removes a suspend/resume callback.
    pub unregister_suspend: Option<HandleFn>,
}

/// Bytes of a version 1 table.
pub const XEN_BUS_INTERFACE_V1_SIZE: u16 = size_of::<XenBusInterfaceV1>() as u16;

impl XenBusInterfaceV1 {
    /// A table with a zeroed header and no functions: what a child hands down in its query
    /// before the bus fills it.
    pub const EMPTY: XenBusInterfaceV1 = XenBusInterfaceV1 {
        header: InterfaceHeader {
            size: 0,
            version: 0,
            context: core::ptr::null_mut(),
            interface_reference: None,
            interface_dereference: None,
        },
        grant_access: None,
        end_access: None,
        evtchn_alloc_unbound: None,
        evtchn_bind_interdomain: None,
        evtchn_notify: None,
        evtchn_unmask: None,
        evtchn_close: None,
        store_read: None,
        store_write: None,
        store_remove: None,
        store_directory: None,
        store_watch: None,
        store_unwatch: None,
        store_transaction_start: None,
        store_transaction_end: None,
        read_backend_state: None,
        switch_state: None,
        backend_path: None,
        frontend_path: None,
        backend_domid: None,
        register_suspend: None,
        unregister_suspend: None,
    };

    /// The name of the first function pointer that is missing, if any.
    pub fn first_missing_function(&self) -> Option<&'static str> {
        let present: [(bool, &'static str); 22] = [
            (self.grant_access.is_some(), "grant_access"),
            (self.end_access.is_some(), "end_access"),
            (self.evtchn_alloc_unbound.is_some(), "evtchn_alloc_unbound"),
            (
                self.evtchn_bind_interdomain.is_some(),
                "evtchn_bind_interdomain",
            ),
            (self.evtchn_notify.is_some(), "evtchn_notify"),
            (self.evtchn_unmask.is_some(), "evtchn_unmask"),
            (self.evtchn_close.is_some(), "evtchn_close"),
            (self.store_read.is_some(), "store_read"),
            (self.store_write.is_some(), "store_write"),
            (self.store_remove.is_some(), "store_remove"),
            (self.store_directory.is_some(), "store_directory"),
            (self.store_watch.is_some(), "store_watch"),
            (self.store_unwatch.is_some(), "store_unwatch"),
            (
                self.store_transaction_start.is_some(),
                "store_transaction_start",
            ),
            (
                self.store_transaction_end.is_some(),
                "store_transaction_end",
            ),
            (self.read_backend_state.is_some(), "read_backend_state"),
            (self.switch_state.is_some(), "switch_state"),
            (self.backend_path.is_some(), "backend_path"),
            (self.frontend_path.is_some(), "frontend_path"),
            (self.backend_domid.is_some(), "backend_domid"),
            (self.register_suspend.is_some(), "register_suspend"),
            (self.unregister_suspend.is_some(), "unregister_suspend"),
        ];
        if self.header.interface_reference.is_none() {
            return Some("interface_reference");
        }
        if self.header.interface_dereference.is_none() {
            return Some("interface_dereference");
        }
        present.iter().find(|(p, _)| !p).map(|(_, name)| *name)
    }
}

// The layout both images rely on, for x86_64 (the only architecture the drivers ship for):
// Windows' INTERFACE header is 32 bytes (two USHORTs, padding, three pointers), then one
// pointer per function in declaration order. A field moved or retyped fails the build.
#[cfg(target_arch = "x86_64")]
const _: () = {
    assert!(size_of::<Guid>() == 16);
    assert!(size_of::<InterfaceHeader>() == 32);
    assert!(offset_of!(InterfaceHeader, size) == 0);
    assert!(offset_of!(InterfaceHeader, version) == 2);
    assert!(offset_of!(InterfaceHeader, context) == 8);
    assert!(offset_of!(InterfaceHeader, interface_reference) == 16);
    assert!(offset_of!(InterfaceHeader, interface_dereference) == 24);
    assert!(size_of::<XenBusInterfaceV1>() == 32 + 22 * 8);
    assert!(offset_of!(XenBusInterfaceV1, grant_access) == 32);
    assert!(offset_of!(XenBusInterfaceV1, end_access) == 40);
    assert!(offset_of!(XenBusInterfaceV1, evtchn_alloc_unbound) == 48);
    assert!(offset_of!(XenBusInterfaceV1, evtchn_bind_interdomain) == 56);
    assert!(offset_of!(XenBusInterfaceV1, evtchn_notify) == 64);
    assert!(offset_of!(XenBusInterfaceV1, evtchn_unmask) == 72);
    assert!(offset_of!(XenBusInterfaceV1, evtchn_close) == 80);
    assert!(offset_of!(XenBusInterfaceV1, store_read) == 88);
    assert!(offset_of!(XenBusInterfaceV1, store_write) == 96);
    assert!(offset_of!(XenBusInterfaceV1, store_remove) == 104);
    assert!(offset_of!(XenBusInterfaceV1, store_directory) == 112);
    assert!(offset_of!(XenBusInterfaceV1, store_watch) == 120);
    assert!(offset_of!(XenBusInterfaceV1, store_unwatch) == 128);
    assert!(offset_of!(XenBusInterfaceV1, store_transaction_start) == 136);
    assert!(offset_of!(XenBusInterfaceV1, store_transaction_end) == 144);
    assert!(offset_of!(XenBusInterfaceV1, read_backend_state) == 152);
    assert!(offset_of!(XenBusInterfaceV1, switch_state) == 160);
    assert!(offset_of!(XenBusInterfaceV1, backend_path) == 168);
    assert!(offset_of!(XenBusInterfaceV1, frontend_path) == 176);
    assert!(offset_of!(XenBusInterfaceV1, backend_domid) == 184);
    assert!(offset_of!(XenBusInterfaceV1, register_suspend) == 192);
    assert!(offset_of!(XenBusInterfaceV1, unregister_suspend) == 200);
    assert!(XEN_BUS_INTERFACE_V1_SIZE == 208);
};
