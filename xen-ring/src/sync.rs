//! The atomics and fences the ring uses, swapped for loom's model under `cfg(loom)`.
//!
//! The ring logic (`ring.rs`) takes its fence from here; the shared-memory layer (`shared.rs`)
//! takes its atomics from here. Under `--cfg loom` both come from loom, so the loom tests explore
//! every interleaving and every weak-memory outcome of the real ring code.

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{fence, AtomicU32};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32};

pub(crate) use core::sync::atomic::Ordering;
