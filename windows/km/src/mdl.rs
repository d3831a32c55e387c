//! Physical addresses, MDLs for nonpaged memory, and mapped device memory.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use windows_sys::Wdk::Foundation::MDL;
use windows_sys::Wdk::System::SystemServices as ss;
use windows_sys::Win32::System::Memory::{PAGE_NOCACHE, PAGE_READWRITE};

use crate::layout;
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
        const { assert!(size_of::<MDL>() == layout::MDL_HEADER_BYTES) };
        const { assert!(size_of::<u64>() == layout::PFN_NUMBER_BYTES) };
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

type MmMapIoSpaceExFn =
    unsafe extern "system" fn(address: i64, length: usize, protect: u32) -> *mut core::ffi::c_void;

/// 0: [`init`] has not run or found no `MmMapIoSpaceEx` (Windows 10 and later); otherwise its
/// address. Resolved at run time so the image also loads where it is missing.
static MM_MAP_IO_SPACE_EX: AtomicUsize = AtomicUsize::new(0);

/// Looks up `MmMapIoSpaceEx`; without it, [`IoMapping::map`] uses `MmMapIoSpace`. Call once at
/// PASSIVE_LEVEL (`DriverEntry`).
pub fn init() {
    const NAME: &[u16] = &crate::sys::utf16_z(b"MmMapIoSpaceEx\0");
    MM_MAP_IO_SPACE_EX.store(crate::sys::system_routine(NAME), Ordering::Release);
}

/// How a physical range is mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caching {
    /// Uncached: device registers.
    Uncached,
    /// Cached: RAM behind a device window (for example a page Xen placed there).
    Cached,
}

/// Physical memory mapped into system space (`MmMapIoSpaceEx`); unmapped on drop.
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
    /// Maps `length` bytes at physical `address`, read/write. IRQL <= DISPATCH_LEVEL.
    ///
    /// # Safety
    /// The range belongs to this driver's device (a translated memory resource, or a frame of it
    /// that Xen backs), and `caching` matches what is there.
    pub unsafe fn map(address: u64, length: usize, caching: Caching) -> Option<Self> {
        let protect = match caching {
            Caching::Uncached => PAGE_READWRITE | PAGE_NOCACHE,
            Caching::Cached => PAGE_READWRITE,
        };
        let map_ex = MM_MAP_IO_SPACE_EX.load(Ordering::Acquire);
        let base = if map_ex != 0 {
            // SAFETY: `map_ex` was returned by `MmGetSystemRoutineAddress` for
            // `MmMapIoSpaceEx`, whose signature is `MmMapIoSpaceExFn`.
            let map_ex = unsafe { core::mem::transmute::<usize, MmMapIoSpaceExFn>(map_ex) };
            // SAFETY: the caller guarantees the range belongs to the driver's device and the
            // caching type fits it.
            unsafe { map_ex(address as i64, length, protect) }
        } else {
            let cache = match caching {
                Caching::Uncached => ss::MmNonCached,
                Caching::Cached => ss::MmCached,
            };
            // SAFETY: as above, with the older call (before Windows 10 its mappings may be
            // executable).
            unsafe { ss::MmMapIoSpace(address as i64, length, cache) }
        };
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

    /// Reads a 32-bit word at `offset` with acquire ordering (later reads are not moved before
    /// it); `None` outside the mapping or misaligned.
    pub fn read_u32_acquire(&self, offset: usize) -> Option<u32> {
        let value = self.read_u32(offset)?;
        core::sync::atomic::fence(Ordering::Acquire);
        Some(value)
    }

    /// Copies `out.len()` bytes from `offset` with byte-wise volatile loads; `false` (and `out`
    /// untouched) if the range is outside the mapping.
    pub fn read_bytes(&self, offset: usize, out: &mut [u8]) -> bool {
        if !access_in_bounds(offset, out.len(), self.length) {
            return false;
        }
        for (i, byte) in out.iter_mut().enumerate() {
            let source = self.base.as_ptr().wrapping_add(offset + i);
            // SAFETY: in bounds (checked above); the mapping is live.
            *byte = unsafe { source.read_volatile() };
        }
        true
    }

    /// The mapping's length in bytes.
    pub fn len(&self) -> usize {
        self.length
    }

    /// Whether the mapping is empty (never: `map` refuses no length).
    pub fn is_empty(&self) -> bool {
        self.length == 0
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
