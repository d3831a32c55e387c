//! The Linux dom0 platform: Xen's character devices as safe Rust types.
//!
//! - [`gntalloc`]: `/dev/xen/gntalloc`, grant pages of this domain to another domain (the
//!   frontend side of a shared ring).
//! - [`gntdev`]: `/dev/xen/gntdev`, map another domain's grants (the backend side).
//! - [`evtchn`]: `/dev/xen/evtchn`, event channels: allocate, bind, notify, wait, unmask.
//! - [`xenbus`]: `/dev/xen/xenbus`, the byte stream to xenstored.
//! - [`hypervisor`]: the core's `Hypervisor` over `/dev/xen/privcmd` (hypercalls with buffers in
//!   `/dev/xen/hypercall`) and Xen's forced-emulation CPUID.
//! - [`ring`]: a frontend's shared ring (`xen_ring::FrontRing`) over pages granted with gntalloc.
//! - [`packet`]: raw Ethernet frames on a dom0 interface (`AF_PACKET`).
//! - [`pool`]: pages granted once to a backend, numbered like guest frames.
//! - [`vbd`]: xenvbd-core's blkif engine over a pool and an event channel.
//! - [`clock`]: the time-stamp counter, for timing hot loops.
//! - [`aio`]: Linux native AIO with buffers it owns (the benchmark's Linux side).
//!
//! This module holds all of the crate's `unsafe` code: the `ioctl`, `mmap`, `munmap`, `poll` and
//! socket calls, the forced-emulation CPUID, laying a ring over granted pages, and the volatile accesses to shared pages.
//! Each unsafe block has its own `SAFETY:` comment. The ioctl numbers and argument layouts are
//! those of Linux's `include/uapi/xen/*.h` for x86_64.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

pub mod aio;
pub mod clock;
pub mod evtchn;
pub mod gntalloc;
pub mod gntdev;
pub mod hypervisor;
pub mod net;
pub mod net_vnet;
pub mod packet;
pub mod pool;
pub mod ring;
pub mod scsi;
pub mod vbd;
pub mod xenbus;

/// The size of a page shared through the grant table.
pub const PAGE_SIZE: usize = 4096;

/// The number of an ioctl that passes a pointer and lets the driver copy in either direction
/// (`_IOC(_IOC_NONE, ty, nr, size)`, the encoding Xen's Linux drivers use).
pub const fn ioc_none(ty: u8, nr: u8, size: usize) -> libc::c_ulong {
    // _IOC_NONE is 0; the size field is 14 bits at bit 16, the type at bit 8, the number at bit 0.
    ((size as libc::c_ulong & 0x3fff) << 16) | ((ty as libc::c_ulong) << 8) | nr as libc::c_ulong
}

/// Opens one of Xen's devices for reading and writing, without blocking reads.
fn open_device(path: &str) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("open {path}: {e}")))
}

/// Adds what was being done to an OS error, keeping its kind.
fn annotate(what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Converts an `ioctl` return value.
fn check_ioctl(what: &str, rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(annotate(what, io::Error::last_os_error()))
    } else {
        Ok(rc)
    }
}

/// `LOOP_SET_BLOCK_SIZE` from Linux's `include/uapi/linux/loop.h` (the argument is the size
/// itself, not a pointer).
const LOOP_SET_BLOCK_SIZE: libc::c_ulong = 0x4c09;

/// Sets the logical block size of a loop device (what `losetup --sector-size` does; dom0's
/// busybox `losetup` has no such option).
pub fn set_loop_block_size(device: &str, size: u32) -> io::Result<()> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(device)
        .map_err(|e| annotate(&format!("open {device}"), e))?;
    // SAFETY: LOOP_SET_BLOCK_SIZE takes its argument by value and reads no memory of ours; the
    // descriptor is open for the whole call.
    let rc = unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            LOOP_SET_BLOCK_SIZE as _,
            libc::c_ulong::from(size),
        )
    };
    check_ioctl(&format!("LOOP_SET_BLOCK_SIZE {size} on {device}"), rc).map(drop)
}

/// The allocated ranges of a (possibly sparse) file, as `(start, end)` byte offsets, found with
/// `lseek(SEEK_DATA)` / `lseek(SEEK_HOLE)`. A file system without hole reporting shows the whole
/// file as one range.
pub fn data_ranges(file: &File) -> io::Result<Vec<(u64, u64)>> {
    let len = file.metadata()?.len();
    let seek = |offset: u64, whence: libc::c_int| -> io::Result<Option<u64>> {
        let offset = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::other(format!("offset {offset:#x} too large")))?;
        // SAFETY: lseek only moves the descriptor's file position; the descriptor stays open
        // for the whole call (`file` is borrowed) and no memory of ours is involved.
        let rc = unsafe { libc::lseek(file.as_raw_fd(), offset, whence) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            // ENXIO: no data (SEEK_DATA) at or after the offset.
            if e.raw_os_error() == Some(libc::ENXIO) {
                return Ok(None);
            }
            return Err(annotate("lseek", e));
        }
        Ok(Some(rc as u64))
    };
    let mut ranges = Vec::new();
    let mut at = 0;
    while at < len {
        let Some(start) = seek(at, libc::SEEK_DATA)? else {
            break;
        };
        let end = seek(start, libc::SEEK_HOLE)?.unwrap_or(len).min(len);
        if end <= start {
            break;
        }
        ranges.push((start, end));
        at = end;
    }
    Ok(ranges)
}

/// `LOOP_SET_CAPACITY` from Linux's `include/uapi/linux/loop.h`.
const LOOP_SET_CAPACITY: libc::c_ulong = 0x4c07;

/// Makes a loop device take in its backing file's new size (what `losetup -c` does).
pub fn set_loop_capacity(device: &str) -> io::Result<()> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(device)
        .map_err(|e| annotate(&format!("open {device}"), e))?;
    // SAFETY: LOOP_SET_CAPACITY takes no argument and reads no memory of ours; the descriptor
    // is open for the whole call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), LOOP_SET_CAPACITY as _, 0 as libc::c_ulong) };
    check_ioctl(&format!("LOOP_SET_CAPACITY on {device}"), rc).map(drop)
}

/// Waits until the file is readable or the timeout passes; returns whether it is readable.
pub fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // Round up so that a wait of a few microseconds still polls once with a timeout.
        let millis = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
        let mut pollfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pollfd` is a valid, writable array of one element for the whole call, and the
        // count passed is 1.
        let rc = unsafe { libc::poll(&mut pollfd, 1, millis) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(annotate("poll", e));
        }
        if rc > 0 {
            if pollfd.revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
                return Err(io::Error::other(format!(
                    "poll: revents {:#x}",
                    pollfd.revents
                )));
            }
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
    }
}

/// A shared mapping of pages from one of Xen's devices, unmapped when dropped.
///
/// The pages are shared with another domain (or with another mapping in this one), which may
/// change them at any time, so every access is a volatile byte copy and nothing hands out Rust
/// references into them.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    /// Maps `len` bytes of `fd` at `offset` (shared, readable, and writable if asked).
    fn new(fd: BorrowedFd<'_>, len: usize, offset: u64, writable: bool) -> io::Result<Self> {
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        let offset = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::other(format!("mmap offset {offset:#x} too large")))?;
        // SAFETY: a new mapping at an address of the kernel's choosing (no MAP_FIXED) cannot
        // overlap any memory this program uses; the result is checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                offset,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(annotate("mmap", io::Error::last_os_error()));
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave 0"))?;
        Ok(Self { ptr, len })
    }

    /// The size of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (it never is).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The start of the mapping, for code that lays a shared ring over it. Accesses through it
    /// must stay within [`Mapping::len`] bytes and end before the mapping is dropped.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    fn check_range(&self, offset: usize, len: usize) {
        let end = offset.checked_add(len);
        assert!(
            end.is_some_and(|end| end <= self.len),
            "access of {len} bytes at {offset} outside a mapping of {} bytes",
            self.len
        );
    }

    /// Copies bytes out of the mapping, starting at `offset`, with volatile reads: bytes up to
    /// an 8-byte boundary of the mapping, then 8-byte words, then the last bytes. Panics if the
    /// range is outside it.
    pub fn read(&self, offset: usize, buf: &mut [u8]) {
        self.check_range(offset, buf.len());
        let base = self.ptr.as_ptr().wrapping_add(offset);
        let (head, words) = split_words(base, buf.len());
        let read_byte = |i: usize| {
            // SAFETY: `offset + i` is within the mapping (checked above, `i < buf.len()`), which
            // stays mapped while `self` lives; a volatile byte read has no alignment requirement.
            unsafe { base.wrapping_add(i).read_volatile() }
        };
        for (i, byte) in buf[..head].iter_mut().enumerate() {
            *byte = read_byte(i);
        }
        let body = &mut buf[head..head + words * 8];
        for (w, chunk) in body.chunks_exact_mut(8).enumerate() {
            let src = base.wrapping_add(head + w * 8).cast::<u64>();
            // SAFETY: the 8 bytes are within the mapping (as above) and `src` is 8-byte aligned
            // (`split_words` puts the words after `head` bytes that reach an 8-byte boundary).
            let word = unsafe { src.read_volatile() };
            chunk.copy_from_slice(&word.to_ne_bytes());
        }
        let tail = head + words * 8;
        for (i, byte) in buf.iter_mut().enumerate().skip(tail) {
            *byte = read_byte(i);
        }
    }

    /// Copies bytes into the mapping at `offset`, with volatile writes (bytes, 8-byte words,
    /// bytes, as [`Mapping::read`]). Panics if the range is outside it.
    pub fn write(&self, offset: usize, data: &[u8]) {
        self.check_range(offset, data.len());
        let base = self.ptr.as_ptr().wrapping_add(offset);
        let (head, words) = split_words(base, data.len());
        let write_byte = |i: usize, byte: u8| {
            // SAFETY: as in `read`; the mapping is writable whenever a caller writes to it (a
            // read-only mapping faults, which is what a read-only grant should do).
            unsafe { base.wrapping_add(i).write_volatile(byte) };
        };
        for (i, byte) in data[..head].iter().enumerate() {
            write_byte(i, *byte);
        }
        let body = &data[head..head + words * 8];
        for (w, chunk) in body.chunks_exact(8).enumerate() {
            let dst = base.wrapping_add(head + w * 8).cast::<u64>();
            let word = u64::from_ne_bytes([
                chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7],
            ]);
            // SAFETY: as in `read` for the range and alignment, and as above for writability.
            unsafe { dst.write_volatile(word) };
        }
        let tail = head + words * 8;
        for (i, byte) in data.iter().enumerate().skip(tail) {
            write_byte(i, *byte);
        }
    }

    /// Copies `len` bytes from `from` to `to` inside the mapping, with volatile 8-byte words where
    /// both ends are aligned alike and volatile bytes otherwise. Panics if either range is
    /// outside the mapping or the two overlap.
    pub fn copy_within(&self, from: usize, to: usize, len: usize) {
        self.check_range(from, len);
        self.check_range(to, len);
        assert!(
            from + len <= to || to + len <= from,
            "overlapping copy of {len} bytes from {from} to {to}"
        );
        let src = self.ptr.as_ptr().wrapping_add(from);
        let dst = self.ptr.as_ptr().wrapping_add(to);
        let copy_byte = |i: usize| {
            // SAFETY: `from + i` and `to + i` are within the mapping (checked above, `i < len`),
            // which stays mapped while `self` lives; a volatile byte access has no alignment
            // requirement, and the mapping is writable whenever a caller copies into it.
            let byte = unsafe { src.wrapping_add(i).read_volatile() };
            // SAFETY: as for the read just above.
            unsafe { dst.wrapping_add(i).write_volatile(byte) };
        };
        let (head, words) = if (from ^ to) % 8 == 0 {
            split_words(src, len)
        } else {
            (len, 0)
        };
        for i in 0..head {
            copy_byte(i);
        }
        for w in 0..words {
            let at = head + w * 8;
            let s = src.wrapping_add(at).cast::<u64>();
            let d = dst.wrapping_add(at).cast::<u64>();
            // SAFETY: both 8-byte ranges are within the mapping (as above); `split_words` put
            // `s` on an 8-byte boundary, and `d` is too since `from` and `to` agree modulo 8.
            let word = unsafe { s.read_volatile() };
            // SAFETY: as for the read just above.
            unsafe { d.write_volatile(word) };
        }
        for i in head + words * 8..len {
            copy_byte(i);
        }
    }

    /// Unmaps, reporting an error instead of ignoring it as dropping does.
    pub fn unmap(self) -> io::Result<()> {
        let this = std::mem::ManuallyDrop::new(self);
        this.munmap()
    }

    fn munmap(&self) -> io::Result<()> {
        // SAFETY: the range is exactly one mapping made by `Mapping::new`; nothing refers into it
        // (no references are handed out) and it is unmapped only once, by `unmap` or `drop`.
        let rc = unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
        if rc < 0 {
            Err(annotate("munmap", io::Error::last_os_error()))
        } else {
            Ok(())
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        let _ = self.munmap();
    }
}

/// How a copy of `len` bytes at `at` splits: `head` bytes up to an 8-byte boundary, then
/// `words` whole 8-byte words (the rest are bytes).
fn split_words(at: *const u8, len: usize) -> (usize, usize) {
    let head = at.align_offset(8).min(len);
    (head, (len - head) / 8)
}

/// A new file of `len` bytes in the temporary directory, open for reading and writing, and its
/// path (the tests remove it).
#[cfg(test)]
pub(crate) fn scratch_file(name: &str, len: u64) -> (std::path::PathBuf, File) {
    let path = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    file.set_len(len).unwrap();
    (path, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_linux_uapi_headers() {
        // The values in Linux's include/uapi/xen/{gntalloc,gntdev,evtchn}.h for x86_64.
        assert_eq!(gntalloc::IOCTL_ALLOC_GREF, 0x18_4705);
        assert_eq!(gntalloc::IOCTL_DEALLOC_GREF, 0x10_4706);
        assert_eq!(gntdev::IOCTL_MAP_GRANT_REF, 0x18_4700);
        assert_eq!(gntdev::IOCTL_UNMAP_GRANT_REF, 0x10_4701);
        assert_eq!(evtchn::IOCTL_BIND_INTERDOMAIN, 0x8_4501);
        assert_eq!(evtchn::IOCTL_BIND_UNBOUND_PORT, 0x4_4502);
        assert_eq!(evtchn::IOCTL_UNBIND, 0x4_4503);
        assert_eq!(evtchn::IOCTL_NOTIFY, 0x4_4504);
    }

    /// A writable one-page mapping of a new file in the temporary directory, and the file's path.
    fn scratch_mapping(name: &str) -> (std::path::PathBuf, Mapping) {
        let (path, file) = scratch_file(name, PAGE_SIZE as u64);
        let map = Mapping::new(std::os::fd::AsFd::as_fd(&file), PAGE_SIZE, 0, true).unwrap();
        (path, map)
    }

    #[test]
    fn mapping_of_an_ordinary_file_reads_and_writes() {
        let (path, map) = scratch_mapping("lab-mapping");
        map.write(10, b"hello");
        let mut buf = [0u8; 5];
        map.read(10, &mut buf);
        assert_eq!(&buf, b"hello");
        map.unmap().unwrap();
        assert_eq!(&std::fs::read(&path).unwrap()[10..15], b"hello");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn mapping_copies_at_every_alignment_and_length() {
        let (path, map) = scratch_mapping("lab-words");
        for offset in 0..17 {
            for len in [0, 1, 7, 8, 9, 15, 16, 17, 31, 100] {
                let data: Vec<u8> = (0..len).map(|i| (i * 7 + offset + len) as u8).collect();
                map.write(offset, &data);
                let mut back = vec![0u8; len];
                map.read(offset, &mut back);
                assert_eq!(back, data, "offset {offset} len {len}");
            }
        }
        map.unmap().unwrap();
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn mapping_copies_within_at_every_alignment_and_length() {
        let (path, map) = scratch_mapping("lab-copy");
        let pattern: Vec<u8> = (0..2048).map(|i| (i * 13 + 5) as u8).collect();
        for from in 0..17 {
            for to in [2048, 2049, 2052, 2056, 2063] {
                for len in [0, 1, 7, 8, 9, 16, 17, 100, 1000] {
                    map.write(0, &pattern);
                    map.write(2048, &[0xee; 2048]);
                    map.copy_within(from, to, len);
                    let mut back = vec![0u8; PAGE_SIZE];
                    map.read(0, &mut back);
                    let mut want = pattern.clone();
                    want.extend_from_slice(&[0xee; 2048]);
                    want.copy_within(from..from + len, to);
                    assert_eq!(back, want, "from {from} to {to} len {len}");
                }
            }
        }
        map.unmap().unwrap();
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    #[should_panic(expected = "outside a mapping")]
    fn mapping_rejects_out_of_range_access() {
        let file = File::open("/dev/zero").unwrap();
        let map = Mapping::new(std::os::fd::AsFd::as_fd(&file), PAGE_SIZE, 0, false).unwrap();
        let mut buf = [0u8; 2];
        map.read(PAGE_SIZE - 1, &mut buf);
    }

    #[test]
    fn data_ranges_of_a_sparse_file() {
        use std::os::unix::fs::FileExt;
        let (path, file) = scratch_file("lab-sparse", 1 << 20);
        file.write_all_at(&[1u8; 4096], 256 << 10).unwrap();
        let ranges = data_ranges(&file).unwrap();
        std::fs::remove_file(&path).unwrap();
        // Whatever the file system's granularity, the written page is data and the file's
        // first page is not (unless holes are not reported at all: then one range).
        assert!(!ranges.is_empty());
        assert!(ranges
            .iter()
            .any(|&(s, e)| s <= 256 << 10 && e >= (256 << 10) + 4096));
        assert!(ranges.len() == 1 || ranges[0].0 > 0);
    }

    #[test]
    fn wait_readable_times_out_and_sees_data() {
        let (reader, mut writer) = std::os::unix::net::UnixStream::pair().unwrap();
        let fd = std::os::fd::AsFd::as_fd(&reader);
        assert!(!wait_readable(fd, Duration::from_millis(20)).unwrap());
        io::Write::write_all(&mut writer, b"x").unwrap();
        assert!(wait_readable(fd, Duration::from_millis(20)).unwrap());
    }
}
