//! The shared pages: the only module with `unsafe` code.
//!
//! [`RingMemory`] is a raw view of the 2^order contiguous pages of a shared ring. The peer (another
//! domain, or another thread in tests) may write any byte of them at any time, so this module never
//! creates a Rust reference into them:
//!
//! - The four header indices are accessed as `AtomicU32` through pointers, with the ordering the
//!   ring logic asks for.
//! - Entries (and any other bytes) are copied with relaxed atomic loads and stores of aligned
//!   words: 64-bit words for rings whose entry size is a multiple of 8, 32-bit words otherwise
//!   (see [`Grid`]). On x86 these compile to plain moves, as the C macros' volatile copies do, but
//!   unlike volatile accesses they are defined behaviour under Rust's memory model even when the
//!   peer writes the same bytes at the same time: the worst a racing peer achieves is a torn entry,
//!   which the caller validates after the copy like any other peer-supplied value. Each byte is
//!   read exactly once, into a local, so there is no double fetch. Every Xen protocol's entry
//!   sizes are multiples of 4, so entries are copied as whole words.
//!
//! Under `cfg(loom)` the same API is backed by a model of the pages: loom atomics for the indices
//! and loom `UnsafeCell`s (one per 64-byte block) for everything else, so loom reports any entry
//! access that is not ordered after the peer's write by the ring's release/acquire protocol.

#[cfg(any(test, feature = "test-utils", loom))]
use alloc::sync::Arc;
#[cfg(not(loom))]
use core::ptr::NonNull;

use xen_abi::ring::{offsets, RingIdx, XEN_PAGE_SIZE};

use crate::error::RingError;
use crate::sync::{AtomicU32, Ordering};

/// One of the four indices in the shared ring header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RingIndex {
    /// `req_prod`: requests produced by the frontend.
    ReqProd,
    /// `req_event`: the backend wants an event when `req_prod` passes this index.
    ReqEvent,
    /// `rsp_prod`: responses produced by the backend.
    RspProd,
    /// `rsp_event`: the frontend wants an event when `rsp_prod` passes this index.
    RspEvent,
}

impl RingIndex {
    /// The byte offset of this index in the header.
    pub const fn offset(self) -> usize {
        match self {
            Self::ReqProd => offsets::REQ_PROD,
            Self::ReqEvent => offsets::REQ_EVENT,
            Self::RspProd => offsets::RSP_PROD,
            Self::RspEvent => offsets::RSP_EVENT,
        }
    }

    #[cfg(loom)]
    const fn position(self) -> usize {
        self.offset() / 4
    }
}

/// The word size in which a range of the pages is accessed.
///
/// Every access this crate makes to a given byte of the pages uses the same aligned word, so
/// atomic accesses never overlap partially (mixed-size atomic accesses are outside what Rust's
/// memory model, and Miri, support). The header and [`RingMemory::read_bytes`] /
/// [`RingMemory::write_bytes`] use 32-bit words; a ring uses [`Grid::for_entry_size`] for its
/// entries, the same on both ends since both use the same entry size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Grid {
    /// Aligned 32-bit words.
    Word32,
    /// Aligned 64-bit words (64-bit targets only).
    #[cfg(target_pointer_width = "64")]
    Word64,
}

impl Grid {
    /// 64-bit words when every entry starts and ends on one (the entry size is a multiple of 8
    /// and entries start at offset 64), else 32-bit words.
    #[inline(always)]
    pub(crate) const fn for_entry_size(entry_size: usize) -> Self {
        #[cfg(target_pointer_width = "64")]
        if entry_size % 8 == 0 {
            return Self::Word64;
        }
        let _ = entry_size;
        Self::Word32
    }
}

/// Byte offset of the `pvt` and `__pad` header bytes, which `SHARED_RING_INIT` zeroes.
const HEADER_TAIL: usize = 16;
/// The size of the shared ring header (`RING_ENTRIES_OFFSET`).
const HEADER_SIZE: usize = xen_abi::ring::RING_ENTRIES_OFFSET;

/// The 2^order contiguous pages of a shared ring, as a raw region the peer may modify at any time.
///
/// Cloning is cheap and yields another handle to the same pages (a frontend and a software
/// backend in one process share pages this way). Every clone is covered by the contract of
/// [`RingMemory::new`].
#[derive(Clone, Debug)]
pub struct RingMemory {
    #[cfg(not(loom))]
    base: NonNull<u8>,
    order: u32,
    /// Keeps heap pages from [`RingMemory::allocate`] alive while any clone exists.
    #[cfg(all(not(loom), any(test, feature = "test-utils")))]
    _owner: Option<Arc<PageAlloc>>,
    #[cfg(loom)]
    model: Arc<loom_model::Model>,
}

// SAFETY: `RingMemory` is a pointer to memory that `new`'s contract declares valid for the
// handle's lifetime and concurrently modifiable; all access through it is atomic (indices) or
// atomic per word (entries), so moving the handle to another thread is sound.
#[cfg(not(loom))]
unsafe impl Send for RingMemory {}
// SAFETY: every method takes `&self` and touches the pages only through atomic operations, which
// are sound to perform from several threads at once.
#[cfg(not(loom))]
unsafe impl Sync for RingMemory {}

impl RingMemory {
    /// The largest page order accepted: 2^8 = 256 pages. Xen's protocols negotiate at most
    /// [`MAX_RING_PAGE_ORDER`](xen_abi::ring::MAX_RING_PAGE_ORDER).
    pub const MAX_ORDER: u32 = 8;

    /// Wraps 2^`order` contiguous pages starting at `base`.
    ///
    /// Returns [`RingError::InvalidMemory`] if `base` is null or not aligned to
    /// [`XEN_PAGE_SIZE`], or `order` is above [`MAX_ORDER`](Self::MAX_ORDER).
    ///
    /// # Safety
    ///
    /// For as long as this handle or any clone of it exists:
    /// - the `XEN_PAGE_SIZE << order` bytes at `base` must be valid for reads and writes (mapped,
    ///   writable, contiguous in this address space);
    /// - this code may read and write them at any time, and the peer may modify them at any time,
    ///   but nothing else in this program may create a Rust reference (`&`/`&mut`) to them or
    ///   access them non-atomically while a ring uses them concurrently.
    ///
    /// The peer itself may do anything to the bytes: that is what the ring's hardening is for.
    #[cfg(not(loom))]
    pub unsafe fn new(base: *mut u8, order: u32) -> Result<Self, RingError> {
        let Some(base) = NonNull::new(base) else {
            return Err(RingError::InvalidMemory);
        };
        if order > Self::MAX_ORDER || base.as_ptr() as usize % XEN_PAGE_SIZE != 0 {
            return Err(RingError::InvalidMemory);
        }
        Ok(Self {
            base,
            order,
            #[cfg(any(test, feature = "test-utils"))]
            _owner: None,
        })
    }

    /// Allocates 2^`order` zeroed, page-aligned pages on the heap, freed when the last clone of the
    /// handle is dropped. For tests; under `cfg(loom)` this builds the loom model of the pages.
    #[cfg(any(test, feature = "test-utils", loom))]
    pub fn allocate(order: u32) -> Result<Self, RingError> {
        if order > Self::MAX_ORDER {
            return Err(RingError::InvalidMemory);
        }
        #[cfg(not(loom))]
        {
            let owner = Arc::new(PageAlloc::new(XEN_PAGE_SIZE << order)?);
            Ok(Self {
                base: owner.ptr,
                order,
                _owner: Some(owner),
            })
        }
        #[cfg(loom)]
        {
            Ok(Self {
                order,
                model: Arc::new(loom_model::Model::new(XEN_PAGE_SIZE << order)),
            })
        }
    }

    /// The page order: the region is 2^order pages.
    pub fn order(&self) -> u32 {
        self.order
    }

    /// The number of pages in the region.
    pub fn pages(&self) -> usize {
        1 << self.order
    }

    /// The size of the region in bytes.
    pub fn size_bytes(&self) -> usize {
        XEN_PAGE_SIZE << self.order
    }

    /// The first byte of the region, for handing the same pages to code outside this crate (a C
    /// peer in tests, or the grant-table code that shares the pages).
    #[cfg(not(loom))]
    pub fn as_ptr(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// Reads a header index with `Acquire` ordering.
    pub fn load_index(&self, which: RingIndex) -> RingIdx {
        self.load_idx(which, Ordering::Acquire)
    }

    /// Writes a header index with `Release` ordering. Tests use this to play a hostile peer.
    pub fn store_index(&self, which: RingIndex, value: RingIdx) {
        self.store_idx(which, value, Ordering::Release)
    }

    /// Copies `dst.len()` bytes starting at byte `offset` of the region into `dst`.
    ///
    /// The bytes are read as aligned 32-bit atomic words. (A ring whose entry size is a multiple of
    /// 8 copies its entries as 64-bit words; Miri cannot model atomic accesses of two sizes to the
    /// same bytes, so tests run under Miri write entries through `testing::HostilePeer`, which uses
    /// the ring's word size.)
    ///
    /// Returns [`RingError::InvalidMemory`] (and leaves `dst` unchanged) if the range does not lie
    /// within the region.
    pub fn read_bytes(&self, offset: usize, dst: &mut [u8]) -> Result<(), RingError> {
        if !self.in_bounds(offset, dst.len()) {
            return Err(RingError::InvalidMemory);
        }
        self.copy_out(offset, dst, Grid::Word32);
        Ok(())
    }

    /// Copies `src` into the region starting at byte `offset`, as aligned 32-bit atomic words (see
    /// [`read_bytes`](Self::read_bytes)); a partly covered word is merged with atomic
    /// read-modify-writes that leave its other bytes as they are.
    ///
    /// Returns [`RingError::InvalidMemory`] (and writes nothing) if the range does not lie within
    /// the region.
    pub fn write_bytes(&self, offset: usize, src: &[u8]) -> Result<(), RingError> {
        if !self.in_bounds(offset, src.len()) {
            return Err(RingError::InvalidMemory);
        }
        self.copy_in(offset, src, Grid::Word32);
        Ok(())
    }

    #[inline(always)]
    fn in_bounds(&self, offset: usize, len: usize) -> bool {
        let size = self.size_bytes();
        offset <= size && len <= size - offset
    }

    /// Reads an entry into `dst`. The ring only passes in-bounds ranges (its geometry is checked
    /// when it is built); an out-of-bounds range is a bug in this crate and reads as zeroes.
    #[inline(always)]
    pub(crate) fn read_entry(&self, offset: usize, dst: &mut [u8], grid: Grid) {
        if self.in_bounds(offset, dst.len()) {
            self.copy_out(offset, dst, grid);
        } else {
            debug_assert!(false, "entry range outside the ring memory");
            dst.fill(0);
        }
    }

    /// Writes an entry from `src`. As for [`read_entry`](Self::read_entry), an out-of-bounds range
    /// is a bug in this crate and writes nothing.
    #[inline(always)]
    pub(crate) fn write_entry(&self, offset: usize, src: &[u8], grid: Grid) {
        if self.in_bounds(offset, src.len()) {
            self.copy_in(offset, src, grid);
        } else {
            debug_assert!(false, "entry range outside the ring memory");
        }
    }

    /// `SHARED_RING_INIT`, generalised to start at `index`: both producer indices at `index`, both
    /// event indices at `index + 1`, and the `pvt`/`__pad` bytes zeroed.
    pub(crate) fn init_header(&self, index: RingIdx) {
        let zero = [0u8; HEADER_SIZE - HEADER_TAIL];
        self.copy_in(HEADER_TAIL, &zero, Grid::Word32);
        // Relaxed would do for the handshake that follows (the peer learns of the ring through
        // xenstore, a synchronising channel); Release keeps the order visible to a peer that is
        // already polling, at no cost worth measuring on a path this rare.
        self.store_idx(
            RingIndex::ReqEvent,
            index.wrapping_add(1),
            Ordering::Release,
        );
        self.store_idx(
            RingIndex::RspEvent,
            index.wrapping_add(1),
            Ordering::Release,
        );
        self.store_idx(RingIndex::ReqProd, index, Ordering::Release);
        self.store_idx(RingIndex::RspProd, index, Ordering::Release);
    }
}

// ------------------------------------------------------------------------------------------------
// The real pages.

#[cfg(not(loom))]
impl RingMemory {
    #[inline(always)]
    fn index_ptr(&self, which: RingIndex) -> *mut u32 {
        self.base
            .as_ptr()
            .wrapping_add(which.offset())
            .cast::<u32>()
    }

    #[inline(always)]
    pub(crate) fn load_idx(&self, which: RingIndex, order: Ordering) -> RingIdx {
        // SAFETY: the pointer is within the header (offset < 16) of memory that `new` requires to
        // be valid for the handle's lifetime, it is 4-byte aligned (page-aligned base, offsets
        // multiple of 4), and this crate only ever accesses it atomically, as a `u32`. The peer's
        // concurrent writes are what atomics are for.
        let atomic = unsafe { AtomicU32::from_ptr(self.index_ptr(which)) };
        atomic.load(order)
    }

    #[inline(always)]
    pub(crate) fn store_idx(&self, which: RingIndex, value: RingIdx, order: Ordering) {
        // SAFETY: as in `load_idx`.
        let atomic = unsafe { AtomicU32::from_ptr(self.index_ptr(which)) };
        atomic.store(value, order);
    }

    /// Copies out of the region in words of `grid`; the caller has checked the range.
    #[inline(always)]
    fn copy_out(&self, offset: usize, dst: &mut [u8], grid: Grid) {
        match grid {
            Grid::Word32 => self.copy_out_32(offset, dst),
            #[cfg(target_pointer_width = "64")]
            Grid::Word64 => self.copy_out_64(offset, dst),
        }
    }

    /// Copies into the region in words of `grid`; the caller has checked the range.
    #[inline(always)]
    fn copy_in(&self, offset: usize, src: &[u8], grid: Grid) {
        match grid {
            Grid::Word32 => self.copy_in_32(offset, src),
            #[cfg(target_pointer_width = "64")]
            Grid::Word64 => self.copy_in_64(offset, src),
        }
    }
}

/// Defines `RingMemory::$out` and `RingMemory::$in_`, copies in aligned atomic words of `$int`.
#[cfg(not(loom))]
macro_rules! word_copies {
    ($atomic:ty, $int:ty, $out:ident, $in_:ident) => {
        #[cfg(not(loom))]
        impl RingMemory {
            /// Copies out of the region; the caller has checked that the range is in bounds.
            #[inline(always)]
            fn $out(&self, offset: usize, dst: &mut [u8]) {
                const W: usize = size_of::<$int>();
                let base = self.base.as_ptr();
                let len = dst.len();
                if (offset | len) % W == 0 {
                    // Whole words: the case for every Xen protocol's entries, and for a typed
                    // ring one the compiler sees at compile time.
                    for (i, chunk) in dst.chunks_exact_mut(W).enumerate() {
                        let ptr = base.wrapping_add(offset + i * W).cast::<$int>();
                        // SAFETY: `offset` and `len` are multiples of `W` and the range is in
                        // bounds (checked by the caller), so this word lies within it and is
                        // aligned (the base is page aligned). The memory is valid for reads
                        // while `self` lives (`new`'s contract) and is accessed by this program
                        // only through atomics of the ring's word size.
                        let word = unsafe { <$atomic>::from_ptr(ptr) };
                        chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_ne_bytes());
                    }
                    return;
                }
                // Otherwise load each word overlapping the range once, keep the bytes in range.
                let end = offset + len;
                let mut at = offset & !(W - 1);
                while at < end {
                    let ptr = base.wrapping_add(at).cast::<$int>();
                    // SAFETY: `at` is aligned and `at < end <= size`; the size is a multiple of
                    // the page size, so the whole word is in bounds (its bytes outside the range
                    // are read, not used). Validity as above.
                    let word = unsafe { <$atomic>::from_ptr(ptr) };
                    let bytes = word.load(Ordering::Relaxed).to_ne_bytes();
                    for (i, byte) in bytes.iter().enumerate() {
                        if (offset..end).contains(&(at + i)) {
                            dst[at + i - offset] = *byte;
                        }
                    }
                    at += W;
                }
            }

            /// Copies into the region; the caller has checked that the range is in bounds.
            #[inline(always)]
            fn $in_(&self, offset: usize, src: &[u8]) {
                const W: usize = size_of::<$int>();
                let base = self.base.as_ptr();
                let len = src.len();
                if (offset | len) % W == 0 {
                    for (i, chunk) in src.chunks_exact(W).enumerate() {
                        let mut bytes = [0; W];
                        bytes.copy_from_slice(chunk);
                        let ptr = base.wrapping_add(offset + i * W).cast::<$int>();
                        // SAFETY: as in the whole-word case of the copy out, with the memory
                        // valid for writes.
                        let word = unsafe { <$atomic>::from_ptr(ptr) };
                        word.store(<$int>::from_ne_bytes(bytes), Ordering::Relaxed);
                    }
                    return;
                }
                // Otherwise store whole words where the range covers them, and merge into a
                // partly covered word with two atomic read-modify-writes (clear our bytes, then
                // set them) that leave its other bytes, perhaps being written by the peer, as
                // they are. No loop: a peer changing the word cannot stall us.
                let end = offset + len;
                let mut at = offset & !(W - 1);
                while at < end {
                    let (mut bytes, mut mask) = ([0u8; W], [0u8; W]);
                    for i in 0..W {
                        if (offset..end).contains(&(at + i)) {
                            bytes[i] = src[at + i - offset];
                            mask[i] = 0xff;
                        }
                    }
                    let ptr = base.wrapping_add(at).cast::<$int>();
                    // SAFETY: as in the partial case of the copy out, with the memory valid for
                    // writes.
                    let word = unsafe { <$atomic>::from_ptr(ptr) };
                    let (bytes, mask) = (<$int>::from_ne_bytes(bytes), <$int>::from_ne_bytes(mask));
                    if mask == <$int>::MAX {
                        word.store(bytes, Ordering::Relaxed);
                    } else {
                        word.fetch_and(!mask, Ordering::Relaxed);
                        word.fetch_or(bytes, Ordering::Relaxed);
                    }
                    at += W;
                }
            }
        }
    };
}

#[cfg(not(loom))]
word_copies!(AtomicU32, u32, copy_out_32, copy_in_32);
#[cfg(all(not(loom), target_pointer_width = "64"))]
word_copies!(core::sync::atomic::AtomicU64, u64, copy_out_64, copy_in_64);

/// Heap pages owned by [`RingMemory::allocate`].
#[cfg(all(not(loom), any(test, feature = "test-utils")))]
#[derive(Debug)]
struct PageAlloc {
    ptr: NonNull<u8>,
    layout: core::alloc::Layout,
}

#[cfg(all(not(loom), any(test, feature = "test-utils")))]
impl PageAlloc {
    fn new(size: usize) -> Result<Self, RingError> {
        let layout = core::alloc::Layout::from_size_align(size, XEN_PAGE_SIZE)
            .map_err(|_| RingError::InvalidMemory)?;
        // SAFETY: `layout` has a non-zero size (at least one page).
        let ptr = unsafe { alloc::alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).ok_or(RingError::InvalidMemory)?;
        Ok(Self { ptr, layout })
    }
}

#[cfg(all(not(loom), any(test, feature = "test-utils")))]
impl Drop for PageAlloc {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc_zeroed` with this `layout` and is freed only here, when
        // the last `RingMemory` holding the `Arc` is gone.
        unsafe { alloc::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

// SAFETY: the allocation is plain memory owned by this value; sharing or sending the owner only
// moves the right to free it, which happens once, in `drop`.
#[cfg(all(not(loom), any(test, feature = "test-utils")))]
unsafe impl Send for PageAlloc {}
// SAFETY: `PageAlloc` has no `&self` methods that touch the memory.
#[cfg(all(not(loom), any(test, feature = "test-utils")))]
unsafe impl Sync for PageAlloc {}

// ------------------------------------------------------------------------------------------------
// The loom model of the pages.

#[cfg(loom)]
impl RingMemory {
    pub(crate) fn load_idx(&self, which: RingIndex, order: Ordering) -> RingIdx {
        self.model.indices[which.position()].load(order)
    }

    pub(crate) fn store_idx(&self, which: RingIndex, value: RingIdx, order: Ordering) {
        self.model.indices[which.position()].store(value, order)
    }

    fn copy_out(&self, offset: usize, dst: &mut [u8], _grid: Grid) {
        self.model.copy_out(offset, dst)
    }

    fn copy_in(&self, offset: usize, src: &[u8], _grid: Grid) {
        self.model.copy_in(offset, src)
    }
}

#[cfg(loom)]
mod loom_model {
    use alloc::vec::Vec;
    use loom::cell::UnsafeCell;

    use super::AtomicU32;

    /// Bytes per tracked cell: loom reports unsynchronised accesses at this granularity, so loom
    /// tests use entry sizes that are multiples of it.
    pub(super) const BLOCK: usize = 64;

    /// Loom's view of the shared pages. The four indices are separate atomics; the bytes that
    /// overlap them in block 0 are not used for them.
    #[derive(Debug)]
    pub(super) struct Model {
        pub(super) indices: [AtomicU32; 4],
        blocks: Vec<UnsafeCell<[u8; BLOCK]>>,
    }

    // SAFETY: the model stands for memory shared between two ends. Its cells are loom cells:
    // loom runs one thread at a time and reports any pair of accesses to a block that the ring's
    // synchronisation does not order, so concurrent use is checked rather than undefined.
    unsafe impl Sync for Model {}
    // SAFETY: as for `Sync`; the model owns plain bytes and loom objects.
    unsafe impl Send for Model {}

    impl Model {
        pub(super) fn new(size: usize) -> Self {
            Self {
                indices: core::array::from_fn(|_| AtomicU32::new(0)),
                blocks: (0..size / BLOCK)
                    .map(|_| UnsafeCell::new([0; BLOCK]))
                    .collect(),
            }
        }

        pub(super) fn copy_out(&self, offset: usize, dst: &mut [u8]) {
            let mut done = 0;
            while done < dst.len() {
                let at = offset + done;
                let (block, within) = (at / BLOCK, at % BLOCK);
                let n = (BLOCK - within).min(dst.len() - done);
                self.blocks[block].with(|p| {
                    // SAFETY: loom's cell hands out a pointer valid for reads and checks that no
                    // write to this block races with this read.
                    let bytes = unsafe { &*p };
                    dst[done..done + n].copy_from_slice(&bytes[within..within + n]);
                });
                done += n;
            }
        }

        pub(super) fn copy_in(&self, offset: usize, src: &[u8]) {
            let mut done = 0;
            while done < src.len() {
                let at = offset + done;
                let (block, within) = (at / BLOCK, at % BLOCK);
                let n = (BLOCK - within).min(src.len() - done);
                self.blocks[block].with_mut(|p| {
                    // SAFETY: loom's cell hands out a pointer valid for writes and checks that no
                    // other access to this block races with this write.
                    let bytes = unsafe { &mut *p };
                    bytes[within..within + n].copy_from_slice(&src[done..done + n]);
                });
                done += n;
            }
        }
    }
}
