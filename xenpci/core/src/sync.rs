//! The atomics behind the core's own shared state (the grant table's lists and counters, the
//! event channels' per-vCPU scan slots and counters), swapped for loom's model under
//! `cfg(loom)` so the loom tests (`tests/loom.rs`) explore every interleaving and weak-memory
//! outcome of the real code.
//!
//! The event-channel dispatch table keeps `core` atomics in both builds: it must stay
//! `const`-constructible into a static, and loom's atomics are not.

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64};

pub(crate) use core::sync::atomic::Ordering;
