//! The atomics of the device-wide flush ordering ([`DeviceOrder`](crate::blkif::DeviceOrder)),
//! swapped for loom's model under `cfg(loom)` so that `tests/loom.rs` explores every
//! interleaving and weak-memory outcome of the real code.

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicU32, AtomicU64};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64};

pub(crate) use core::sync::atomic::Ordering;
