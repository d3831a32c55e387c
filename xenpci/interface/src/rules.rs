//! The rules each entry of the table keeps: the highest IRQL it may be called at, and the
//! violations the provider adapter detects and reports (a call after the last dereference, a
//! call above the entry's IRQL, a dereference without a reference).

#![forbid(unsafe_code)]

use core::fmt;

/// An interrupt request level, as Windows numbers them on x86_64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Irql(pub u8);

impl Irql {
    /// PASSIVE_LEVEL: threads; may block.
    pub const PASSIVE: Irql = Irql(0);
    /// APC_LEVEL.
    pub const APC: Irql = Irql(1);
    /// DISPATCH_LEVEL: DPCs, spin locks held.
    pub const DISPATCH: Irql = Irql(2);
    /// The highest device IRQL (DIRQL) on x86_64: interrupt service routines run at 3 to 12.
    pub const DIRQL_MAX: Irql = Irql(12);
    /// HIGH_LEVEL.
    pub const HIGH: Irql = Irql(15);
}

/// One entry of the table (the header's two reference functions included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// `InterfaceReference`.
    Reference,
    /// `InterfaceDereference`.
    Dereference,
    /// `grant_access`.
    GrantAccess,
    /// `end_access`.
    EndAccess,
    /// `evtchn_alloc_unbound`.
    AllocUnbound,
    /// `evtchn_bind_interdomain`.
    BindInterdomain,
    /// `evtchn_notify`.
    Notify,
    /// `evtchn_unmask`.
    Unmask,
    /// `evtchn_close`.
    Close,
    /// `store_read`.
    StoreRead,
    /// `store_write`.
    StoreWrite,
    /// `store_remove`.
    StoreRemove,
    /// `store_directory`.
    StoreDirectory,
    /// `store_watch`.
    StoreWatch,
    /// `store_unwatch`.
    StoreUnwatch,
    /// `store_transaction_start`.
    TransactionStart,
    /// `store_transaction_end`.
    TransactionEnd,
    /// `read_backend_state`.
    ReadBackendState,
    /// `switch_state`.
    SwitchState,
    /// `backend_path`.
    BackendPath,
    /// `frontend_path`.
    FrontendPath,
    /// `backend_domid`.
    BackendDomid,
    /// `register_suspend`.
    RegisterSuspend,
    /// `unregister_suspend`.
    UnregisterSuspend,
}

impl Entry {
    /// The highest IRQL the entry may be called at.
    ///
    /// Grants may be taken and ended from a DPC (the I/O path); notify and unmask from an event
    /// callback at DIRQL; the paths and the domain are copies of fixed data. Everything that
    /// waits for the store or changes the event-channel dispatch table, and the dereference
    /// (the last one waits for running callbacks), is PASSIVE_LEVEL only.
    pub const fn max_irql(self) -> Irql {
        match self {
            Entry::Reference | Entry::GrantAccess | Entry::EndAccess => Irql::DISPATCH,
            Entry::Notify
            | Entry::Unmask
            | Entry::BackendPath
            | Entry::FrontendPath
            | Entry::BackendDomid => Irql::DIRQL_MAX,
            Entry::Dereference
            | Entry::AllocUnbound
            | Entry::BindInterdomain
            | Entry::Close
            | Entry::StoreRead
            | Entry::StoreWrite
            | Entry::StoreRemove
            | Entry::StoreDirectory
            | Entry::StoreWatch
            | Entry::StoreUnwatch
            | Entry::TransactionStart
            | Entry::TransactionEnd
            | Entry::ReadBackendState
            | Entry::SwitchState
            | Entry::RegisterSuspend
            | Entry::UnregisterSuspend => Irql::PASSIVE,
        }
    }

    /// The entry's name in the table.
    pub const fn name(self) -> &'static str {
        match self {
            Entry::Reference => "interface_reference",
            Entry::Dereference => "interface_dereference",
            Entry::GrantAccess => "grant_access",
            Entry::EndAccess => "end_access",
            Entry::AllocUnbound => "evtchn_alloc_unbound",
            Entry::BindInterdomain => "evtchn_bind_interdomain",
            Entry::Notify => "evtchn_notify",
            Entry::Unmask => "evtchn_unmask",
            Entry::Close => "evtchn_close",
            Entry::StoreRead => "store_read",
            Entry::StoreWrite => "store_write",
            Entry::StoreRemove => "store_remove",
            Entry::StoreDirectory => "store_directory",
            Entry::StoreWatch => "store_watch",
            Entry::StoreUnwatch => "store_unwatch",
            Entry::TransactionStart => "store_transaction_start",
            Entry::TransactionEnd => "store_transaction_end",
            Entry::ReadBackendState => "read_backend_state",
            Entry::SwitchState => "switch_state",
            Entry::BackendPath => "backend_path",
            Entry::FrontendPath => "frontend_path",
            Entry::BackendDomid => "backend_domid",
            Entry::RegisterSuspend => "register_suspend",
            Entry::UnregisterSuspend => "unregister_suspend",
        }
    }
}

/// What a child did wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViolationKind {
    /// A call after the last reference was dropped.
    AfterRelease,
    /// A call above the entry's highest IRQL.
    AboveIrql(Irql),
    /// A dereference with no reference held.
    ReferenceUnderflow,
}

/// A rule a child broke, refused and reported to the bus (which logs it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The entry called.
    pub entry: Entry,
    /// The rule.
    pub kind: ViolationKind,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.entry.name();
        match self.kind {
            ViolationKind::AfterRelease => write!(f, "{name} called after the last dereference"),
            ViolationKind::AboveIrql(irql) => write!(
                f,
                "{name} called at IRQL {} (highest allowed {})",
                irql.0,
                self.entry.max_irql().0
            ),
            ViolationKind::ReferenceUnderflow => {
                write!(f, "{name} called with no reference held")
            }
        }
    }
}
