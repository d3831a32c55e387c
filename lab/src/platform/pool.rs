//! A pool of pages granted once to a backend domain, addressed by frame-like numbers.
//!
//! A Windows guest hands the block driver guest frame numbers; dom0 userspace has none it could
//! grant one by one, so [`PagePool`] grants `count` pages with gntalloc up front (one grant
//! reference per page, writable by the peer) and numbers them [`PagePool::FIRST_FRAME`],
//! `FIRST_FRAME + 1`, …. "Granting a frame" is then looking up the reference the page already
//! has (see [`super::vbd`]), and guest memory is the pool's mapping. The grants end when the
//! pool is released.

use std::collections::HashMap;
use std::io;

use xen_ring::RingMemory;

use super::gntalloc::{Gntalloc, GrantedPages};
use super::PAGE_SIZE;

/// Pages granted to one domain, numbered like guest frames.
#[derive(Debug)]
pub struct PagePool<'g> {
    pages: GrantedPages<'g>,
    domid: u16,
    /// Page index by grant reference, so that ending a grant costs what it costs in a guest,
    /// not a scan of the pool.
    by_gref: HashMap<u32, usize>,
}

impl<'g> PagePool<'g> {
    /// The number of the first page. Not 0, so that a frame number that did not come from the
    /// pool is unlikely to name one of its pages.
    pub const FIRST_FRAME: u64 = 0x10_0000;

    /// Allocates `count` zeroed pages and grants them, writable, to `domid`.
    pub fn new(gnt: &'g Gntalloc, domid: u16, count: u32) -> io::Result<Self> {
        let pages = gnt.grant(domid, count, true)?;
        let by_gref = pages
            .refs()
            .iter()
            .enumerate()
            .map(|(i, r)| (*r, i))
            .collect();
        Ok(Self {
            pages,
            domid,
            by_gref,
        })
    }

    /// The domain the pages are granted to.
    pub fn domid(&self) -> u16 {
        self.domid
    }

    /// The number of pages.
    pub fn len(&self) -> usize {
        self.pages.refs().len()
    }

    /// Whether the pool has no pages (it never has: gntalloc refuses an empty grant).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The frame number of page `index`.
    pub fn frame(&self, index: usize) -> u64 {
        assert!(
            index < self.len(),
            "page {index} of a pool of {}",
            self.len()
        );
        Self::FIRST_FRAME + index as u64
    }

    /// The page index of `frame`, if it is one of the pool's.
    pub fn index(&self, frame: u64) -> Option<usize> {
        let index = usize::try_from(frame.checked_sub(Self::FIRST_FRAME)?).ok()?;
        (index < self.len()).then_some(index)
    }

    /// The grant reference of `frame`, if it is one of the pool's.
    pub fn gref(&self, frame: u64) -> Option<u32> {
        self.index(frame).map(|i| self.pages.refs()[i])
    }

    /// The page index whose grant reference is `gref`.
    pub fn index_of_gref(&self, gref: u32) -> Option<usize> {
        self.by_gref.get(&gref).copied()
    }

    fn byte_offset(&self, frame: u64, offset: usize, len: usize) -> usize {
        let index = self
            .index(frame)
            .unwrap_or_else(|| panic!("frame {frame:#x} is not in the pool"));
        assert!(
            offset + len <= PAGE_SIZE,
            "{len} bytes at {offset} run past the page"
        );
        index * PAGE_SIZE + offset
    }

    /// Copies bytes out of `frame` at `offset`. Panics outside the pool or the page.
    pub fn read(&self, frame: u64, offset: usize, buf: &mut [u8]) {
        let at = self.byte_offset(frame, offset, buf.len());
        self.pages.pages().read(at, buf);
    }

    /// Copies bytes into `frame` at `offset`. Panics outside the pool or the page.
    pub fn write(&self, frame: u64, offset: usize, data: &[u8]) {
        let at = self.byte_offset(frame, offset, data.len());
        self.pages.pages().write(at, data);
    }

    /// Copies `len` bytes from `src_frame` at `src_offset` to `dst_frame` at `dst_offset`, each
    /// range within its page, directly inside the mapping. Panics outside the pool or a page.
    pub fn copy(
        &self,
        dst_frame: u64,
        dst_offset: usize,
        src_frame: u64,
        src_offset: usize,
        len: usize,
    ) {
        let from = self.byte_offset(src_frame, src_offset, len);
        let to = self.byte_offset(dst_frame, dst_offset, len);
        self.pages.pages().copy_within(from, to, len);
    }

    /// A ring over the 2^`order` pages starting at page `first`.
    ///
    /// # Safety
    /// The handle points into the pool's mapping without borrowing it: the caller must drop
    /// every handle (and every ring made from it) before the pool is released or dropped, and
    /// must not use those pages for anything else while a ring lives in them.
    pub unsafe fn ring_memory(&self, first: usize, order: u32) -> io::Result<RingMemory> {
        let count = 1usize << order;
        if first + count > self.len() {
            return Err(io::Error::other(format!(
                "a ring of {count} pages at page {first} of a pool of {}",
                self.len()
            )));
        }
        let base = self.pages.pages().as_ptr().wrapping_add(first * PAGE_SIZE);
        // SAFETY: `base` is page-aligned (the mapping is, and `first * PAGE_SIZE` keeps it so),
        // and the 2^order pages from it are inside the writable shared mapping (checked above),
        // which stays mapped as long as the caller keeps its promise above.
        unsafe { RingMemory::new(base, order) }.map_err(|e| io::Error::other(format!("ring: {e}")))
    }

    /// Unmaps the pages and ends their grants.
    pub fn release(self) -> io::Result<()> {
        self.pages.release()
    }
}
