//! Writing [`crate::event_log`] entries with `IoAllocateErrorLogEntry` / `IoWriteErrorLogEntry`.

use core::ffi::c_void;
use core::sync::atomic::{AtomicPtr, Ordering};

use windows_sys::Wdk::System::SystemServices as ss;

use crate::event_log::Entry;

/// The object entries are logged for (the driver object, set by `DriverEntry`).
static LOG_OBJECT: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());

/// Records the driver object as the source of later entries.
///
/// # Safety
/// `object` is this driver's driver object (valid until unload, after which nothing logs).
pub unsafe fn set_source(object: *mut c_void) {
    LOG_OBJECT.store(object, Ordering::Release);
}

/// Writes `entry` to the System event log; `false` if there is no source yet or no entry could
/// be allocated (the log is best effort). IRQL <= DISPATCH_LEVEL.
pub fn write(entry: &Entry) -> bool {
    let object = LOG_OBJECT.load(Ordering::Acquire);
    let bytes = entry.bytes();
    let Ok(size) = u8::try_from(bytes.len()) else {
        return false;
    };
    if object.is_null() {
        return false;
    }
    // SAFETY:
    // 1. `object` is the driver object (`set_source`'s contract); the size is at most
    //    `ERROR_LOG_MAXIMUM_SIZE` (the builder's limit).
    // 2. IRQL <= DISPATCH_LEVEL (this function's contract).
    let packet = unsafe { ss::IoAllocateErrorLogEntry(object, size) };
    if packet.is_null() {
        return false;
    }
    // SAFETY: the I/O manager returned `size` writable bytes, which the laid-out entry fills.
    unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), packet.cast::<u8>(), bytes.len()) };
    // SAFETY: the entry is complete; the I/O manager takes it (and frees it).
    unsafe { ss::IoWriteErrorLogEntry(packet) };
    true
}
