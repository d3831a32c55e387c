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

/// Defines a function that is `const` in the normal build, so the structures it builds can be
/// statics or be built in place, and plain under loom, whose atomics' constructors are not
/// `const`.
macro_rules! const_unless_loom {
    ($(#[$meta:meta])* $vis:vis fn $($rest:tt)*) => {
        #[cfg(not(loom))]
        $(#[$meta])* $vis const fn $($rest)*
        #[cfg(loom)]
        $(#[$meta])* $vis fn $($rest)*
    };
}
pub(crate) use const_unless_loom;
