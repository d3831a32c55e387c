//! [`PoolBox`]: one value in its own nonpaged pool allocation, at an address that never changes
//! (kernel objects such as DPCs, timers and interrupt contexts are registered by address).

use core::ops::Deref;
use core::ptr::NonNull;

use crate::pool::{allocate_nonpaged, free};
use crate::pool_tag::PoolTag;

/// Pool allocations are 16-byte aligned on x64 (`MEMORY_ALLOCATION_ALIGNMENT`).
const POOL_ALIGNMENT: usize = 16;

/// A value in nonpaged pool. Shared access only: the kernel may call into the value concurrently
/// (DPCs, interrupts), so mutation goes through interior mutability.
#[derive(Debug)]
pub struct PoolBox<T> {
    value: NonNull<T>,
    tag: PoolTag,
}

// SAFETY: the box owns its value like `Box<T>`; sending it sends the value.
unsafe impl<T: Send> Send for PoolBox<T> {}
// SAFETY: only `&T` is handed out, so sharing the box shares `&T`.
unsafe impl<T: Sync> Sync for PoolBox<T> {}

impl<T> PoolBox<T> {
    /// Moves `value` into a new allocation with `tag`; `None` when the pool is exhausted.
    /// IRQL <= DISPATCH_LEVEL.
    pub fn new(value: T, tag: PoolTag) -> Option<Self> {
        const {
            assert!(
                align_of::<T>() <= POOL_ALIGNMENT,
                "PoolBox: over-aligned type"
            )
        };
        let memory = allocate_nonpaged(size_of::<T>().max(1), tag)?.cast::<T>();
        // SAFETY: `memory` is a fresh allocation of at least `size_of::<T>()` bytes, aligned for
        // `T` (pool alignment, checked above).
        unsafe { memory.as_ptr().write(value) };
        Some(Self { value: memory, tag })
    }

    /// The value's address, stable for the box's life.
    pub fn as_ptr(&self) -> *const T {
        self.value.as_ptr()
    }
}

impl<T> Deref for PoolBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the value was initialised in `new` and lives until `drop`.
        unsafe { self.value.as_ref() }
    }
}

impl<T> Drop for PoolBox<T> {
    fn drop(&mut self) {
        // SAFETY: the value is initialised and dropped once, here.
        unsafe { self.value.as_ptr().drop_in_place() };
        // SAFETY: the memory came from `allocate_nonpaged` with `self.tag` and is not used again.
        unsafe { free(self.value.cast(), self.tag) };
    }
}
