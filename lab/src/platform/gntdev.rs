//! `/dev/xen/gntdev`: map grants that another domain (or this one) made, as a backend does.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd};

use super::{check_ioctl, ioc_none, open_device, Mapping, PAGE_SIZE};

/// The device's path.
pub const PATH: &str = "/dev/xen/gntdev";

/// `IOCTL_GNTDEV_MAP_GRANT_REF`: `struct ioctl_gntdev_map_grant_ref` is 24 bytes with one grant.
pub const IOCTL_MAP_GRANT_REF: libc::c_ulong = ioc_none(b'G', 0, 24);
/// `IOCTL_GNTDEV_UNMAP_GRANT_REF`: `struct ioctl_gntdev_unmap_grant_ref` is 16 bytes.
pub const IOCTL_UNMAP_GRANT_REF: libc::c_ulong = ioc_none(b'G', 1, 16);

/// An open `/dev/xen/gntdev`.
#[derive(Debug)]
pub struct Gntdev {
    file: File,
}

impl Gntdev {
    /// Opens the device (needs the `xen-gntdev` module).
    pub fn open() -> io::Result<Self> {
        Ok(Self {
            file: open_device(PATH)?,
        })
    }

    /// Maps the grants `refs` of domain `domid` here, consecutively, writable if `writable`
    /// (which the grants must allow).
    pub fn map(&self, domid: u16, refs: &[u32], writable: bool) -> io::Result<ForeignPages<'_>> {
        if refs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "map of 0 grants",
            ));
        }
        let count = u32::try_from(refs.len()).map_err(|_| io::Error::other("too many grants"))?;
        // struct ioctl_gntdev_map_grant_ref { u32 count; u32 pad; u64 index;
        // struct { u32 domid; u32 ref; } refs[count]; } as 32-bit words, at least 24 bytes.
        let mut words = vec![0u32; 4 + 2 * refs.len()];
        words[0] = count;
        for (i, gref) in refs.iter().enumerate() {
            words[4 + 2 * i] = u32::from(domid);
            words[5 + 2 * i] = *gref;
        }
        // SAFETY: `words` is a live, writable buffer of 16 + 8 * count bytes (at least 24), all the
        // driver reads and writes for this request.
        let rc = unsafe {
            libc::ioctl(
                self.file.as_raw_fd(),
                IOCTL_MAP_GRANT_REF,
                words.as_mut_ptr(),
            )
        };
        check_ioctl("IOCTL_GNTDEV_MAP_GRANT_REF", rc)?;
        let index = u64::from(words[2]) | (u64::from(words[3]) << 32);
        let mut pages = ForeignPages {
            dev: self,
            index,
            count,
            map: None,
        };
        let len = refs.len() * PAGE_SIZE;
        pages.map = Some(Mapping::new(self.file.as_fd(), len, index, writable)?);
        Ok(pages)
    }

    fn unmap(&self, index: u64, count: u32) -> io::Result<()> {
        // struct ioctl_gntdev_unmap_grant_ref { u64 index; u32 count; u32 pad; }
        let mut words = [index as u32, (index >> 32) as u32, count, 0];
        // SAFETY: `words` is a live, writable 16-byte buffer, the size of the request's struct.
        let rc = unsafe {
            libc::ioctl(
                self.file.as_raw_fd(),
                IOCTL_UNMAP_GRANT_REF,
                words.as_mut_ptr(),
            )
        };
        check_ioctl("IOCTL_GNTDEV_UNMAP_GRANT_REF", rc).map(drop)
    }
}

/// Another domain's grants, mapped here. Dropping them unmaps them.
#[derive(Debug)]
pub struct ForeignPages<'a> {
    dev: &'a Gntdev,
    index: u64,
    count: u32,
    map: Option<Mapping>,
}

impl ForeignPages<'_> {
    /// The pages as mapped here.
    pub fn pages(&self) -> &Mapping {
        // Present from creation until `release` or drop consume it.
        self.map.as_ref().expect("foreign pages are mapped")
    }

    /// Unmaps the pages, reporting the first error.
    pub fn release(mut self) -> io::Result<()> {
        self.release_inner()
    }

    fn release_inner(&mut self) -> io::Result<()> {
        // The memory mapping goes first: the driver drops the grant mappings when it is gone.
        let unmapped = match self.map.take() {
            Some(map) => map.unmap(),
            None => Ok(()),
        };
        if self.count == 0 {
            return unmapped;
        }
        let count = std::mem::take(&mut self.count);
        let released = self.dev.unmap(self.index, count);
        unmapped.and(released)
    }
}

impl Drop for ForeignPages<'_> {
    fn drop(&mut self) {
        let _ = self.release_inner();
    }
}
