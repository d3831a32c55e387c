//! `/dev/xen/gntalloc`: grant pages of this domain to another domain.
//!
//! [`Gntalloc::grant`] allocates pages, grants them to a domain and maps them here; the grant
//! references go to the peer (through xenstore, for a frontend) and the peer maps them.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd};

use super::{check_ioctl, ioc_none, open_device, Mapping, PAGE_SIZE};

/// The device's path.
pub const PATH: &str = "/dev/xen/gntalloc";

/// `IOCTL_GNTALLOC_ALLOC_GREF`: `struct ioctl_gntalloc_alloc_gref` is 24 bytes with one grant.
pub const IOCTL_ALLOC_GREF: libc::c_ulong = ioc_none(b'G', 5, 24);
/// `IOCTL_GNTALLOC_DEALLOC_GREF`: `struct ioctl_gntalloc_dealloc_gref` is 16 bytes.
pub const IOCTL_DEALLOC_GREF: libc::c_ulong = ioc_none(b'G', 6, 16);
/// `GNTALLOC_FLAG_WRITABLE`: the peer may write to the pages.
const FLAG_WRITABLE: u16 = 1;

/// An open `/dev/xen/gntalloc`.
#[derive(Debug)]
pub struct Gntalloc {
    file: File,
}

impl Gntalloc {
    /// Opens the device (needs the `xen-gntalloc` module).
    pub fn open() -> io::Result<Self> {
        Ok(Self {
            file: open_device(PATH)?,
        })
    }

    /// Allocates `count` zeroed pages, grants them to domain `domid` (writable by it if
    /// `writable`) and maps them here.
    pub fn grant(&self, domid: u16, count: u32, writable: bool) -> io::Result<GrantedPages<'_>> {
        if count == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "grant of 0 pages",
            ));
        }
        let flags = if writable { FLAG_WRITABLE } else { 0 };
        // struct ioctl_gntalloc_alloc_gref { u16 domid; u16 flags; u32 count; u64 index;
        // u32 gref_ids[count]; } as 32-bit words (x86_64 is little-endian); at least 24 bytes,
        // the size of the struct the driver copies in and out.
        let mut words = vec![0u32; (4 + count as usize).max(6)];
        words[0] = u32::from(domid) | (u32::from(flags) << 16);
        words[1] = count;
        // SAFETY: `words` is a live, writable buffer of at least 24 bytes and of 16 + 4 * count
        // bytes, which is all the driver reads and writes for this request.
        let rc =
            unsafe { libc::ioctl(self.file.as_raw_fd(), IOCTL_ALLOC_GREF, words.as_mut_ptr()) };
        check_ioctl("IOCTL_GNTALLOC_ALLOC_GREF", rc)?;
        let index = u64::from(words[2]) | (u64::from(words[3]) << 32);
        let refs = words[4..4 + count as usize].to_vec();
        let mut pages = GrantedPages {
            dev: self,
            index,
            refs,
            map: None,
        };
        let len = count as usize * PAGE_SIZE;
        pages.map = Some(Mapping::new(self.file.as_fd(), len, index, true)?);
        Ok(pages)
    }

    fn dealloc(&self, index: u64, count: u32) -> io::Result<()> {
        // struct ioctl_gntalloc_dealloc_gref { u64 index; u32 count; } (16 bytes with padding).
        let mut words = [index as u32, (index >> 32) as u32, count, 0];
        // SAFETY: `words` is a live, writable 16-byte buffer, the size of the request's struct.
        let rc = unsafe {
            libc::ioctl(
                self.file.as_raw_fd(),
                IOCTL_DEALLOC_GREF,
                words.as_mut_ptr(),
            )
        };
        check_ioctl("IOCTL_GNTALLOC_DEALLOC_GREF", rc).map(drop)
    }
}

/// Pages granted to another domain and mapped here. Dropping them unmaps them and ends the
/// grants (Linux keeps a page until the peer has unmapped it too).
#[derive(Debug)]
pub struct GrantedPages<'a> {
    dev: &'a Gntalloc,
    index: u64,
    refs: Vec<u32>,
    map: Option<Mapping>,
}

impl GrantedPages<'_> {
    /// The grant references, one per page, in page order.
    pub fn refs(&self) -> &[u32] {
        &self.refs
    }

    /// The pages as mapped here.
    pub fn pages(&self) -> &Mapping {
        // Present from creation until `release` or drop consume it.
        self.map.as_ref().expect("granted pages are mapped")
    }

    /// Unmaps the pages and ends the grants, reporting the first error.
    pub fn release(mut self) -> io::Result<()> {
        self.release_inner()
    }

    fn release_inner(&mut self) -> io::Result<()> {
        let unmapped = match self.map.take() {
            Some(map) => map.unmap(),
            None => Ok(()),
        };
        if self.refs.is_empty() {
            return unmapped;
        }
        let count = self.refs.len() as u32;
        self.refs.clear();
        let deallocated = self.dev.dealloc(self.index, count);
        unmapped.and(deallocated)
    }
}

impl Drop for GrantedPages<'_> {
    fn drop(&mut self) {
        let _ = self.release_inner();
    }
}
