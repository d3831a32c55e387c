//! IRQL-aware spin locks.
//!
//! - [`SpinLock`]: an executive spin lock (`KeAcquireSpinLockRaiseToDpc` / `KeReleaseSpinLock`)
//!   with a guard that restores the caller's IRQL.
//! - [`QueuedSpinLock`]: an in-stack queued spin lock (fair, and cheaper under contention); the
//!   lock handle must stay at one address while held, so the lock is used through a closure
//!   whose stack frame holds the handle. Called at DISPATCH_LEVEL it uses the `AtDpcLevel`
//!   variants, below it the raising ones.
//!
//! Both may be taken at IRQL <= DISPATCH_LEVEL and hold the data at DISPATCH_LEVEL: the data must
//! be nonpaged and the critical section must not wait.

use core::cell::UnsafeCell;
use core::marker::PhantomData;
use core::mem::MaybeUninit;
use core::ops::{Deref, DerefMut};

use windows_sys::Wdk::System::SystemServices as ss;

use crate::irql::{self, DISPATCH_LEVEL};
use crate::sys;

/// An executive spin lock protecting a `T`.
#[derive(Debug)]
pub struct SpinLock<T> {
    /// A `KSPIN_LOCK`: zero is the released state (`KeInitializeSpinLock` stores zero).
    lock: UnsafeCell<usize>,
    data: UnsafeCell<T>,
}

// SAFETY: the lock serialises access to `data`, so sharing the lock between processors shares
// `T` only with one holder at a time; `T: Send` because holders on different processors use it.
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    /// A released lock.
    pub const fn new(data: T) -> Self {
        Self {
            lock: UnsafeCell::new(0),
            data: UnsafeCell::new(data),
        }
    }

    /// Takes the lock, raising to DISPATCH_LEVEL. IRQL <= DISPATCH_LEVEL.
    pub fn lock(&self) -> SpinLockGuard<'_, T> {
        // SAFETY:
        // 1. `self.lock` is a valid `KSPIN_LOCK` at a fixed address while `self` is borrowed.
        // 2. The caller is at IRQL <= DISPATCH_LEVEL (this function's contract).
        let old_irql = unsafe { sys::KeAcquireSpinLockRaiseToDpc(self.lock.get()) };
        SpinLockGuard {
            lock: self,
            old_irql,
            _not_send: PhantomData,
        }
    }

    /// The data, without locking: `&mut self` proves exclusive access.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

/// Holds a [`SpinLock`]; releasing restores the IRQL from before the acquire. Must be dropped
/// on the processor that took it (it is not `Send`).
#[derive(Debug)]
pub struct SpinLockGuard<'a, T> {
    lock: &'a SpinLock<T>,
    old_irql: u8,
    _not_send: PhantomData<*mut ()>,
}

impl<T> Deref for SpinLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock, so no other reference to the data exists.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for SpinLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as `deref`, and `&mut self` makes this the only reference.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for SpinLockGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY:
        // 1. This guard holds the lock, taken on this processor (the guard is not `Send`).
        // 2. `old_irql` is what the acquire returned.
        unsafe { sys::KeReleaseSpinLock(self.lock.lock.get(), self.old_irql) };
    }
}

/// An in-stack queued spin lock protecting a `T`.
#[derive(Debug)]
pub struct QueuedSpinLock<T> {
    lock: UnsafeCell<usize>,
    data: UnsafeCell<T>,
}

// SAFETY: as for `SpinLock`.
unsafe impl<T: Send> Sync for QueuedSpinLock<T> {}

impl<T> QueuedSpinLock<T> {
    /// A released lock.
    pub const fn new(data: T) -> Self {
        Self {
            lock: UnsafeCell::new(0),
            data: UnsafeCell::new(data),
        }
    }

    /// Runs `f` with the lock held at DISPATCH_LEVEL. IRQL <= DISPATCH_LEVEL.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut handle = MaybeUninit::<ss::KLOCK_QUEUE_HANDLE>::zeroed();
        let at_dispatch = irql::current() >= DISPATCH_LEVEL;
        if at_dispatch {
            // SAFETY:
            // 1. The lock is valid at a fixed address while `self` is borrowed; the handle is in
            //    this frame, which outlives the hold.
            // 2. The caller is at DISPATCH_LEVEL (checked), as the `AtDpcLevel` variant needs.
            unsafe {
                ss::KeAcquireInStackQueuedSpinLockAtDpcLevel(self.lock.get(), handle.as_mut_ptr())
            };
        } else {
            // SAFETY: as above, below DISPATCH_LEVEL the raising variant is the right one.
            unsafe { ss::KeAcquireInStackQueuedSpinLock(self.lock.get(), handle.as_mut_ptr()) };
        }
        // SAFETY: the lock is held, so this is the only reference to the data until the release
        // below (the closure cannot keep it: the borrow ends with the call).
        let result = f(unsafe { &mut *self.data.get() });
        if at_dispatch {
            // SAFETY: releases the hold taken above with the same handle, at DISPATCH_LEVEL.
            unsafe { ss::KeReleaseInStackQueuedSpinLockFromDpcLevel(handle.as_ptr()) };
        } else {
            // SAFETY: releases the hold taken above and restores the IRQL saved in the handle.
            unsafe { ss::KeReleaseInStackQueuedSpinLock(handle.as_ptr()) };
        }
        result
    }

    /// The data, without locking: `&mut self` proves exclusive access.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}
