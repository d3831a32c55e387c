//! Nonpaged pool allocation with tags.
//!
//! `ExAllocatePool2` (Windows 10 2004 and later; zeroes memory, never executable) is resolved at
//! run time with `MmGetSystemRoutineAddress`, so one image loads on older kernels, where
//! `ExAllocatePoolWithTag(NonPagedPoolNx, ...)` is used and the memory is zeroed here. [`init`]
//! resolves it (PASSIVE_LEVEL, from `DriverEntry`); allocation and freeing then work at IRQL <=
//! DISPATCH_LEVEL.

use core::ffi::c_void;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use windows_sys::Wdk::Foundation::NonPagedPoolNx;
use windows_sys::Wdk::System::SystemServices as ss;

use crate::pool_tag::PoolTag;
use crate::sys;

/// `POOL_FLAG_NON_PAGED` of `ExAllocatePool2`.
const POOL_FLAG_NON_PAGED: u64 = 0x40;

type ExAllocatePool2Fn =
    unsafe extern "system" fn(flags: u64, bytes: usize, tag: u32) -> *mut c_void;

/// 0: [`init`] has not run or found no `ExAllocatePool2`; otherwise its address.
static EX_ALLOCATE_POOL2: AtomicUsize = AtomicUsize::new(0);

/// Which allocator [`allocate_nonpaged`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allocator {
    /// `ExAllocatePool2` was found.
    ExAllocatePool2,
    /// The fallback `ExAllocatePoolWithTag`.
    ExAllocatePoolWithTag,
}

/// Looks up `ExAllocatePool2`. Call once at PASSIVE_LEVEL before allocating.
pub fn init() -> Allocator {
    const NAME: &[u16] = &sys::utf16_z(b"ExAllocatePool2\0");
    let address = sys::system_routine(NAME);
    EX_ALLOCATE_POOL2.store(address, Ordering::Release);
    if address == 0 {
        Allocator::ExAllocatePoolWithTag
    } else {
        Allocator::ExAllocatePool2
    }
}

/// Allocates `size` zeroed bytes of nonpaged, non-executable pool with `tag`, or `None`.
/// IRQL <= DISPATCH_LEVEL.
pub fn allocate_nonpaged(size: usize, tag: PoolTag) -> Option<NonNull<u8>> {
    if size == 0 {
        return None;
    }
    let address = EX_ALLOCATE_POOL2.load(Ordering::Acquire);
    let memory = if address != 0 {
        // SAFETY: `address` was returned by `MmGetSystemRoutineAddress` for `ExAllocatePool2`,
        // whose signature is `ExAllocatePool2Fn`.
        let allocate = unsafe { core::mem::transmute::<usize, ExAllocatePool2Fn>(address) };
        // SAFETY: `ExAllocatePool2` with `POOL_FLAG_NON_PAGED` may be called at IRQL <=
        // DISPATCH_LEVEL and returns zeroed memory or NULL.
        unsafe { allocate(POOL_FLAG_NON_PAGED, size, tag.value()) }
    } else {
        // SAFETY: `ExAllocatePoolWithTag` on nonpaged pool may be called at IRQL <=
        // DISPATCH_LEVEL and returns NULL or `size` bytes.
        let memory = unsafe { ss::ExAllocatePoolWithTag(NonPagedPoolNx, size, tag.value()) };
        if !memory.is_null() {
            // SAFETY: `memory` is a fresh allocation of `size` bytes.
            unsafe { core::ptr::write_bytes(memory.cast::<u8>(), 0, size) };
        }
        memory
    };
    NonNull::new(memory.cast())
}

/// Frees memory from [`allocate_nonpaged`].
///
/// # Safety
/// `memory` came from [`allocate_nonpaged`] with the same `tag`, is not used afterwards, and no
/// device (or hypervisor grant) can still reach it. IRQL <= DISPATCH_LEVEL.
pub unsafe fn free(memory: NonNull<u8>, tag: PoolTag) {
    // SAFETY: the caller's contract above; `ExFreePoolWithTag` may be called at IRQL <=
    // DISPATCH_LEVEL for nonpaged memory.
    unsafe { ss::ExFreePoolWithTag(memory.as_ptr().cast(), tag.value()) }
}
