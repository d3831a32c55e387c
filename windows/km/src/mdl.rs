//! Physical addresses, MDLs for nonpaged memory, and mapped device memory.

use core::ptr::NonNull;

use windows_sys::Wdk::Foundation::MDL;
use windows_sys::Wdk::System::SystemServices as ss;
use windows_sys::Win32::System::Memory::{PAGE_NOCACHE, PAGE_READWRITE};

use crate::pages::{access_in_bounds, spanned_pages};

/// The physical address of nonpaged memory at `address` (`MmGetPhysicalAddress`).
/// IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `address` is in resident (nonpaged) memory.
pub unsafe fn physical_address(address: *const u8) -> u64 {
    // SAFETY: the caller guarantees the page is resident, so the translation is defined.
    unsafe { ss::MmGetPhysicalAddress(address.cast()) as u64 }
}

/// An MDL describing a range of nonpaged memory; freed on drop.
#[derive(Debug)]
pub struct Mdl {
    mdl: NonNull<MDL>,
    pages: usize,
}

impl Mdl {
    /// Builds an MDL for `length` bytes of nonpaged memory at `address`. IRQL <= DISPATCH_LEVEL.
    ///
    /// # Safety
    /// The range is nonpaged memory that outlives the MDL.
    pub unsafe fn for_nonpaged(address: *const u8, length: u32) -> Option<Self> {
        let pages = spanned_pages(address as usize, length as usize)?;
        // SAFETY: a plain allocation of an MDL for the range; no IRP, no quota.
        let mdl = unsafe {
            ss::IoAllocateMdl(address.cast(), length, false, false, core::ptr::null_mut())
        };
        let mdl = NonNull::new(mdl)?;
        // SAFETY: the MDL describes nonpaged memory (the caller's contract), as required.
        unsafe { ss::MmBuildMdlForNonPagedPool(mdl.as_ptr()) };
        Some(Self { mdl, pages })
    }

    /// The page frame numbers of the range, in order.
    pub fn page_frames(&self) -> &[u64] {
        // The PFN array follows the MDL header (`MmGetMdlPfnArray`).
        let first = self.mdl.as_ptr().wrapping_add(1).cast::<u64>();
        // SAFETY: `MmBuildMdlForNonPagedPool` filled one PFN per spanned page after the header,
        // and the MDL lives as long as `self`.
        unsafe { core::slice::from_raw_parts(first, self.pages) }
    }
}

impl Drop for Mdl {
    fn drop(&mut self) {
        // SAFETY: the MDL was allocated by `IoAllocateMdl` and is not used again.
        unsafe { ss::IoFreeMdl(self.mdl.as_ptr()) };
    }
}

/// Device memory mapped uncached into system space (`MmMapIoSpaceEx`); unmapped on drop.
#[derive(Debug)]
pub struct IoMapping {
    base: NonNull<u8>,
    length: usize,
}

// SAFETY: the mapping is system-wide and accessed with volatile operations only.
unsafe impl Send for IoMapping {}
// SAFETY: as above.
unsafe impl Sync for IoMapping {}

impl IoMapping {
    /// Maps `length` bytes of device memory at physical `address`. IRQL <= DISPATCH_LEVEL.
    ///
    /// # Safety
    /// The range is device memory assigned to this driver (a translated memory resource).
    pub unsafe fn map(address: u64, length: usize) -> Option<Self> {
        // SAFETY: the caller guarantees the range belongs to the driver's device; uncached
        // read/write, as device memory needs.
        let base =
            unsafe { ss::MmMapIoSpaceEx(address as i64, length, PAGE_READWRITE | PAGE_NOCACHE) };
        Some(Self {
            base: NonNull::new(base.cast())?,
            length,
        })
    }

    /// Reads a 32-bit register at `offset`; `None` outside the mapping or misaligned.
    pub fn read_u32(&self, offset: usize) -> Option<u32> {
        if !access_in_bounds(offset, 4, self.length) || offset % 4 != 0 {
            return None;
        }
        let register = self.base.as_ptr().wrapping_add(offset).cast::<u32>();
        // SAFETY: in bounds and aligned (checked); the mapping is live.
        Some(unsafe { register.read_volatile() })
    }

    /// Writes a 32-bit register at `offset`; `false` outside the mapping or misaligned.
    pub fn write_u32(&self, offset: usize, value: u32) -> bool {
        if !access_in_bounds(offset, 4, self.length) || offset % 4 != 0 {
            return false;
        }
        let register = self.base.as_ptr().wrapping_add(offset).cast::<u32>();
        // SAFETY: in bounds and aligned (checked); the mapping is live.
        unsafe { register.write_volatile(value) };
        true
    }
}

impl Drop for IoMapping {
    fn drop(&mut self) {
        // SAFETY: the range was mapped by `MmMapIoSpaceEx` with this length and is not used
        // again.
        unsafe { ss::MmUnmapIoSpace(self.base.as_ptr().cast(), self.length) };
    }
}
