//! The C-ABI bus interface between the Xen bus driver (`xenpci.sys`) and its child drivers
//! (`xenvbd.sys`, `xennet.sys`, `xenscsi.sys`), which are separate images: no Rust type crosses
//! between them, only the `#[repr(C)]` table of [`abi`].
//!
//! - [`abi`]: the table ([`XenBusInterfaceV1`]: Windows' `INTERFACE` header, then the bus's
//!   functions), the GUID a child names in `IRP_MN_QUERY_INTERFACE`, the layout asserted at
//!   compile time for x86_64.
//! - [`negotiate`]: version and size checks on both sides, refusals with typed reasons.
//! - [`status`]: the status codes and [`BusError`].
//! - [`rules`]: the highest IRQL of each entry and the violations the provider refuses.
//! - [`provider`]: [`BusServices`], what the bus implements, and [`ChildInterface`], the
//!   adapter that fills a child's table from it.
//! - [`consumer`]: [`BusClient`], a child's typed calls through the table, and
//!   [`BusCallbacks`], its handlers.
//! - [`frontend`]: the xenbus handshake through the table (a `FrontendStore` and the plan
//!   executor).
//! - `blkif` (feature `xenvbd`): the block core's `Grants` and `Events` over the table.
//! - [`binding`]: the only module with `unsafe`: the `extern "C"` thunks, the calls through
//!   the function pointers and the callback trampolines.
//!
//! # Concurrency
//! Every function of the table may be called from several CPUs at once; each has a highest
//! IRQL ([`rules::Entry::max_irql`]), checked by the provider adapter, which refuses a call
//! above it. [`BusClient`] is `&self` throughout; a child may share it between its DPCs and
//! threads if `H` is `Sync` (which [`BusCallbacks`] requires).

#![no_std]
#![deny(unsafe_code)]

#[cfg(test)]
extern crate std;

pub mod abi;
#[allow(unsafe_code)]
pub mod binding;
#[cfg(feature = "xenvbd")]
pub mod blkif;
pub mod consumer;
pub mod frontend;
pub mod negotiate;
pub mod provider;
pub mod rules;
pub mod status;

pub use abi::{
    Delivery, StoreBase, SuspendPhase, XenBusInterfaceV1, XEN_BUS_INTERFACE_GUID,
    XEN_BUS_INTERFACE_V1_SIZE, XEN_BUS_INTERFACE_VERSION_1,
};
pub use binding::{EventHandler, SuspendHandler, WatchHandler};
pub use consumer::{BusCallbacks, BusClient};
pub use negotiate::{QueryRefusal, QueryRequest, TableRefusal};
pub use provider::{BusServices, ChildDevice, ChildInterface};
pub use rules::{Entry, Irql, Violation, ViolationKind};
pub use status::BusError;
