//! Host implementations of the shell's lock and wait primitive for
//! [`XsMux`](xenpci_core::xenstore::XsMux), over `std::sync`, with the checks of the rules the
//! Windows primitives impose: nobody waits while holding the lock, and every key waited on
//! exists.

use std::cell::Cell;
use std::sync::{Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use xenpci_core::xenstore::{MuxLock, MuxWait};

thread_local! {
    /// How many `HostLock`s this thread holds.
    static LOCKS_HELD: Cell<u32> = const { Cell::new(0) };
}

/// The shell's lock as a `std::sync::Mutex`; `const`-constructible, so that it and the core it
/// protects can be a `static`.
#[derive(Debug, Default)]
pub struct HostLock<S> {
    inner: Mutex<S>,
}

impl<S> HostLock<S> {
    /// A lock around `state`.
    pub const fn new(state: S) -> Self {
        HostLock {
            inner: Mutex::new(state),
        }
    }
}

impl<S> MuxLock<S> for HostLock<S> {
    fn with<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        LOCKS_HELD.with(|n| n.set(n.get() + 1));
        let r = f(&mut guard);
        LOCKS_HELD.with(|n| n.set(n.get() - 1));
        r
    }
}

/// The epoch of [`HostWaiter::now`].
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// The shell's wait primitive: one sticky flag per key (like a synchronisation event), a
/// condition variable, and a clock in nanoseconds.
#[derive(Debug)]
pub struct HostWaiter<const KEYS: usize> {
    flags: Mutex<[bool; KEYS]>,
    changed: Condvar,
}

impl<const KEYS: usize> Default for HostWaiter<KEYS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const KEYS: usize> HostWaiter<KEYS> {
    /// No key woken.
    pub const fn new() -> Self {
        HostWaiter {
            flags: Mutex::new([false; KEYS]),
            changed: Condvar::new(),
        }
    }

    /// Ticks (nanoseconds) of `d`, for the multiplexer's timeout.
    pub fn ticks(d: Duration) -> u64 {
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
    }
}

impl<const KEYS: usize> MuxWait for HostWaiter<KEYS> {
    fn now(&self) -> u64 {
        Self::ticks(epoch().elapsed())
    }

    fn wait(&self, key: usize, deadline: u64) {
        assert!(key < KEYS, "wait on key {key}, the waiter has {KEYS}");
        assert_eq!(
            LOCKS_HELD.with(Cell::get),
            0,
            "waiting while holding the multiplexer's lock"
        );
        let mut flags = self.flags.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if std::mem::take(&mut flags[key]) {
                return;
            }
            let now = self.now();
            if now >= deadline {
                return;
            }
            flags = self
                .changed
                .wait_timeout(flags, Duration::from_nanos(deadline - now))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn wake(&self, key: usize) {
        assert!(key < KEYS, "wake of key {key}, the waiter has {KEYS}");
        self.flags.lock().unwrap_or_else(PoisonError::into_inner)[key] = true;
        self.changed.notify_all();
    }

    fn wake_all(&self) {
        *self.flags.lock().unwrap_or_else(PoisonError::into_inner) = [true; KEYS];
        self.changed.notify_all();
    }
}
