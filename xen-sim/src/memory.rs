//! Guest memory: a sparse map of guest frame numbers to 4 KiB pages.
//!
//! Everything Xen and the guest share lives here, exactly where the ABI puts it: the shared-info
//! page, the grant-table frames, FIFO control blocks and event-array pages, the xenstore ring.
//! Accesses to a frame that is not populated fail with [`MemError`], as a hypercall naming an
//! unpopulated frame would.

use std::collections::BTreeMap;
use std::fmt;

/// Bytes per page.
pub const PAGE_SIZE: usize = 4096;

/// A guest access that hit no page or crossed the end of a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemError {
    /// The frame is not populated.
    NotPopulated {
        /// The frame.
        gfn: u64,
    },
    /// The access runs past the end of the page.
    OutOfPage {
        /// The byte offset.
        offset: usize,
        /// The length.
        len: usize,
    },
}

impl fmt::Display for MemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemError::NotPopulated { gfn } => write!(f, "frame {gfn:#x} is not populated"),
            MemError::OutOfPage { offset, len } => {
                write!(f, "{len} bytes at offset {offset} cross the end of a page")
            }
        }
    }
}

impl std::error::Error for MemError {}

/// The guest's physical memory (only the frames that exist).
#[derive(Default)]
pub struct GuestMemory {
    pages: BTreeMap<u64, Box<[u8; PAGE_SIZE]>>,
    next_alloc: u64,
}

impl fmt::Debug for GuestMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuestMemory")
            .field("pages", &self.pages.len())
            .finish()
    }
}

/// Where [`GuestMemory::alloc`] starts handing out frames (well above anything a test populates
/// by number).
pub const ALLOC_BASE_GFN: u64 = 0x10_0000;

impl GuestMemory {
    /// Empty memory.
    pub fn new() -> Self {
        GuestMemory {
            pages: BTreeMap::new(),
            next_alloc: ALLOC_BASE_GFN,
        }
    }

    /// Populates `gfn` with a zeroed page (a populated page is zeroed again).
    pub fn populate(&mut self, gfn: u64) {
        self.pages.insert(gfn, Box::new([0; PAGE_SIZE]));
    }

    /// Removes `gfn` (as `XENMEM_decrease_reservation` would).
    pub fn depopulate(&mut self, gfn: u64) -> bool {
        self.pages.remove(&gfn).is_some()
    }

    /// Populates a fresh zeroed frame the guest did not use yet and returns its number.
    pub fn alloc(&mut self) -> u64 {
        while self.pages.contains_key(&self.next_alloc) {
            self.next_alloc += 1;
        }
        let gfn = self.next_alloc;
        self.next_alloc += 1;
        self.populate(gfn);
        gfn
    }

    /// Whether `gfn` is populated.
    pub fn is_populated(&self, gfn: u64) -> bool {
        self.pages.contains_key(&gfn)
    }

    /// The number of populated frames.
    pub fn populated(&self) -> usize {
        self.pages.len()
    }

    fn range(offset: usize, len: usize) -> Result<std::ops::Range<usize>, MemError> {
        match offset.checked_add(len) {
            Some(end) if end <= PAGE_SIZE => Ok(offset..end),
            _ => Err(MemError::OutOfPage { offset, len }),
        }
    }

    /// The whole page, read-only.
    pub fn page(&self, gfn: u64) -> Result<&[u8; PAGE_SIZE], MemError> {
        self.pages
            .get(&gfn)
            .map(|p| &**p)
            .ok_or(MemError::NotPopulated { gfn })
    }

    /// The whole page, writable.
    pub fn page_mut(&mut self, gfn: u64) -> Result<&mut [u8; PAGE_SIZE], MemError> {
        self.pages
            .get_mut(&gfn)
            .map(|p| &mut **p)
            .ok_or(MemError::NotPopulated { gfn })
    }

    /// Copies bytes out of one page.
    pub fn read(&self, gfn: u64, offset: usize, out: &mut [u8]) -> Result<(), MemError> {
        let r = Self::range(offset, out.len())?;
        out.copy_from_slice(&self.page(gfn)?[r]);
        Ok(())
    }

    /// Copies bytes into one page.
    pub fn write(&mut self, gfn: u64, offset: usize, data: &[u8]) -> Result<(), MemError> {
        let r = Self::range(offset, data.len())?;
        self.page_mut(gfn)?[r].copy_from_slice(data);
        Ok(())
    }

    /// Reads guest-physical memory at byte address `addr`, across pages.
    pub fn read_phys(&self, addr: u64, out: &mut [u8]) -> Result<(), MemError> {
        let mut done = 0;
        while done < out.len() {
            let a = addr + done as u64;
            let (gfn, off) = (a / PAGE_SIZE as u64, (a % PAGE_SIZE as u64) as usize);
            let n = (PAGE_SIZE - off).min(out.len() - done);
            self.read(gfn, off, &mut out[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    /// Writes guest-physical memory at byte address `addr`, across pages.
    pub fn write_phys(&mut self, addr: u64, data: &[u8]) -> Result<(), MemError> {
        let mut done = 0;
        while done < data.len() {
            let a = addr + done as u64;
            let (gfn, off) = (a / PAGE_SIZE as u64, (a % PAGE_SIZE as u64) as usize);
            let n = (PAGE_SIZE - off).min(data.len() - done);
            self.write(gfn, off, &data[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    /// Reads a little-endian `u16`.
    pub fn read_u16(&self, gfn: u64, offset: usize) -> Result<u16, MemError> {
        let mut b = [0; 2];
        self.read(gfn, offset, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    /// Reads a little-endian `u32`.
    pub fn read_u32(&self, gfn: u64, offset: usize) -> Result<u32, MemError> {
        let mut b = [0; 4];
        self.read(gfn, offset, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Reads a little-endian `u64`.
    pub fn read_u64(&self, gfn: u64, offset: usize) -> Result<u64, MemError> {
        let mut b = [0; 8];
        self.read(gfn, offset, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Writes a little-endian `u16`.
    pub fn write_u16(&mut self, gfn: u64, offset: usize, v: u16) -> Result<(), MemError> {
        self.write(gfn, offset, &v.to_le_bytes())
    }

    /// Writes a little-endian `u32`.
    pub fn write_u32(&mut self, gfn: u64, offset: usize, v: u32) -> Result<(), MemError> {
        self.write(gfn, offset, &v.to_le_bytes())
    }

    /// Writes a little-endian `u64`.
    pub fn write_u64(&mut self, gfn: u64, offset: usize, v: u64) -> Result<(), MemError> {
        self.write(gfn, offset, &v.to_le_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_pages_and_bounds() {
        let mut m = GuestMemory::new();
        assert_eq!(m.read_u32(5, 0), Err(MemError::NotPopulated { gfn: 5 }));
        m.populate(5);
        m.write_u32(5, 4092, 0xdead_beef).unwrap();
        assert_eq!(m.read_u32(5, 4092), Ok(0xdead_beef));
        assert_eq!(
            m.write_u32(5, 4093, 1),
            Err(MemError::OutOfPage {
                offset: 4093,
                len: 4
            })
        );
        let a = m.alloc();
        let b = m.alloc();
        assert_ne!(a, b);
        assert!(m.is_populated(a) && m.is_populated(b));
    }

    #[test]
    fn physical_access_spans_pages() {
        let mut m = GuestMemory::new();
        m.populate(1);
        m.populate(2);
        let data: Vec<u8> = (0..100).collect();
        m.write_phys(2 * 4096 - 50, &data).unwrap();
        let mut out = vec![0; 100];
        m.read_phys(2 * 4096 - 50, &mut out).unwrap();
        assert_eq!(out, data);
        assert!(m.read_phys(3 * 4096 - 1, &mut out).is_err());
    }
}
