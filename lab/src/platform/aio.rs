//! Linux native AIO (`io_setup`, `io_submit`, `io_getevents`, `io_destroy`, as fio's libaio
//! engine uses them) with buffers it owns.
//!
//! [`Aio`] owns one 4096-byte-aligned buffer per slot (O_DIRECT needs aligned memory) and the
//! control blocks. A slot's buffer can be borrowed only while no request of that slot is in
//! flight, so the kernel never writes to memory a Rust reference points at; dropping [`Aio`]
//! destroys the context first, which waits for every request still in flight, and only then
//! frees the buffers.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::time::Duration;

/// `IOCB_CMD_PREAD`.
const CMD_PREAD: u16 = 0;
/// `IOCB_CMD_PWRITE`.
const CMD_PWRITE: u16 = 1;
/// Buffer alignment.
const ALIGN: usize = 4096;

/// `struct iocb` of `include/uapi/linux/aio_abi.h` (x86_64, little-endian).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct Iocb {
    aio_data: u64,
    aio_key: u32,
    aio_rw_flags: i32,
    aio_lio_opcode: u16,
    aio_reqprio: i16,
    aio_fildes: u32,
    aio_buf: u64,
    aio_nbytes: u64,
    aio_offset: i64,
    aio_reserved2: u64,
    aio_flags: u32,
    aio_resfd: u32,
}

/// `struct io_event`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct IoEvent {
    data: u64,
    obj: u64,
    res: i64,
    res2: i64,
}

/// One request to submit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AioRequest {
    /// The slot whose buffer the request uses.
    pub slot: usize,
    /// A write (from the buffer) or a read (into it).
    pub write: bool,
    /// Byte offset in the file.
    pub offset: u64,
    /// Bytes, at most the slot's buffer length.
    pub len: usize,
}

/// A finished request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AioCompletion {
    /// Its slot.
    pub slot: usize,
    /// The kernel's result: bytes transferred, or a negative errno.
    pub res: i64,
}

/// An AIO context with `slots` buffers of `slot_len` bytes.
#[derive(Debug)]
pub struct Aio {
    ctx: u64,
    buffers: NonNull<u8>,
    layout: Layout,
    slot_len: usize,
    in_flight: Vec<bool>,
    /// Control blocks, one per slot; the kernel reads them during `io_submit` only.
    iocbs: Vec<Iocb>,
    events: Vec<IoEvent>,
}

// SAFETY: the buffers are owned by the value (a raw allocation and a kernel context that refer to
// nothing thread-local), so moving it to another thread is as safe as moving a Vec.
unsafe impl Send for Aio {}

fn check(what: &str, rc: libc::c_long) -> io::Result<libc::c_long> {
    if rc < 0 {
        let e = io::Error::last_os_error();
        Err(io::Error::new(e.kind(), format!("{what}: {e}")))
    } else {
        Ok(rc)
    }
}

impl Aio {
    /// A context for `slots` requests in flight, each with its own zeroed buffer of `slot_len`
    /// bytes (a multiple of 4096).
    pub fn new(slots: usize, slot_len: usize) -> io::Result<Self> {
        if slots == 0 || slot_len == 0 || slot_len % ALIGN != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{slots} AIO slots of {slot_len} bytes"),
            ));
        }
        let size = slots
            .checked_mul(slot_len)
            .ok_or_else(|| io::Error::other("AIO buffers too large"))?;
        let layout = Layout::from_size_align(size, ALIGN).map_err(io::Error::other)?;
        // SAFETY: the layout has a non-zero size (checked above).
        let raw = unsafe { alloc_zeroed(layout) };
        let buffers = NonNull::new(raw).ok_or_else(|| io::Error::other("out of memory"))?;
        let mut ctx: u64 = 0;
        // SAFETY: io_setup writes the context id into `ctx`, a live u64, and reads nothing else.
        let rc = unsafe { libc::syscall(libc::SYS_io_setup, slots as libc::c_long, &mut ctx) };
        if let Err(e) = check("io_setup", rc) {
            // SAFETY: allocated above with this layout and not handed out.
            unsafe { dealloc(buffers.as_ptr(), layout) };
            return Err(e);
        }
        Ok(Self {
            ctx,
            buffers,
            layout,
            slot_len,
            in_flight: vec![false; slots],
            iocbs: vec![Iocb::default(); slots],
            events: vec![IoEvent::default(); slots],
        })
    }

    /// The number of slots.
    pub fn slots(&self) -> usize {
        self.in_flight.len()
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.iter().filter(|b| **b).count()
    }

    /// The buffer of `slot`, unless a request of it is in flight (or there is no such slot).
    pub fn buffer(&self, slot: usize) -> Option<&[u8]> {
        if *self.in_flight.get(slot)? {
            return None;
        }
        // SAFETY: the slot's range is inside the allocation, no request of the slot is in
        // flight so the kernel does not write it, and `&self` keeps `buffer_mut` (and a submit
        // of this slot) from running while the slice lives.
        Some(unsafe {
            std::slice::from_raw_parts(
                self.buffers.as_ptr().wrapping_add(slot * self.slot_len),
                self.slot_len,
            )
        })
    }

    /// The buffer of `slot` to fill, unless a request of it is in flight.
    pub fn buffer_mut(&mut self, slot: usize) -> Option<&mut [u8]> {
        if *self.in_flight.get(slot)? {
            return None;
        }
        // SAFETY: as in `buffer`, and `&mut self` makes this the only reference to it.
        Some(unsafe {
            std::slice::from_raw_parts_mut(
                self.buffers.as_ptr().wrapping_add(slot * self.slot_len),
                self.slot_len,
            )
        })
    }

    /// Submits `requests` on `fd` (all in one `io_submit` when the kernel takes them).
    pub fn submit(&mut self, fd: BorrowedFd<'_>, requests: &[AioRequest]) -> io::Result<()> {
        let mut ptrs: Vec<*mut Iocb> = Vec::with_capacity(requests.len());
        for r in requests {
            let bad = r.slot >= self.slots()
                || self.in_flight[r.slot]
                || r.len == 0
                || r.len > self.slot_len
                || ptrs
                    .iter()
                    .any(|p| *p == self.iocbs.as_mut_ptr().wrapping_add(r.slot));
            if bad {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("AIO request {r:?}"),
                ));
            }
            let offset = i64::try_from(r.offset).map_err(io::Error::other)?;
            self.iocbs[r.slot] = Iocb {
                aio_data: r.slot as u64,
                aio_lio_opcode: if r.write { CMD_PWRITE } else { CMD_PREAD },
                aio_fildes: fd.as_raw_fd() as u32,
                aio_buf: self.buffers.as_ptr().wrapping_add(r.slot * self.slot_len) as u64,
                aio_nbytes: r.len as u64,
                aio_offset: offset,
                ..Iocb::default()
            };
            ptrs.push(self.iocbs.as_mut_ptr().wrapping_add(r.slot));
        }
        let mut done = 0;
        while done < ptrs.len() {
            // SAFETY: every pointer is to a filled control block in `self.iocbs`, live for the
            // call; each names a buffer range of a slot not in flight, inside the allocation,
            // which stays allocated until the context is destroyed (see Drop); the slots are
            // marked in flight below, so no reference to their buffers is handed out until the
            // kernel reports them done.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_io_submit,
                    self.ctx as libc::c_ulong,
                    (ptrs.len() - done) as libc::c_long,
                    ptrs.as_mut_ptr().wrapping_add(done),
                )
            };
            let n = check("io_submit", rc)? as usize;
            for r in &requests[done..done + n] {
                self.in_flight[r.slot] = true;
            }
            if n == 0 {
                return Err(io::Error::other("io_submit took no request"));
            }
            done += n;
        }
        Ok(())
    }

    /// Waits up to `timeout` for at least `min` requests to finish and appends every finished
    /// one to `out`; returns how many.
    pub fn reap(
        &mut self,
        min: usize,
        timeout: Duration,
        out: &mut Vec<AioCompletion>,
    ) -> io::Result<usize> {
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        let max = self.events.len();
        // SAFETY: `events` is a live, writable array of `max` io_event structs and `ts` a live
        // timespec, for the whole call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_io_getevents,
                self.ctx as libc::c_ulong,
                min.min(max) as libc::c_long,
                max as libc::c_long,
                self.events.as_mut_ptr(),
                &ts as *const libc::timespec,
            )
        };
        let n = match check("io_getevents", rc) {
            Ok(n) => n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(e),
        };
        for ev in &self.events[..n] {
            let slot = ev.data as usize;
            if slot >= self.in_flight.len() || !self.in_flight[slot] {
                return Err(io::Error::other(format!("AIO event for slot {slot}")));
            }
            self.in_flight[slot] = false;
            out.push(AioCompletion { slot, res: ev.res });
        }
        Ok(n)
    }
}

impl Drop for Aio {
    fn drop(&mut self) {
        // SAFETY: io_destroy takes the context id only; it cancels or waits for every request
        // still in flight, so none can touch the buffers freed next.
        let rc = unsafe { libc::syscall(libc::SYS_io_destroy, self.ctx as libc::c_ulong) };
        if rc == 0 {
            // SAFETY: allocated in `new` with `self.layout`; no request uses it any more and no
            // reference to it outlives `&mut self`.
            unsafe { dealloc(self.buffers.as_ptr(), self.layout) };
        }
        // If the context could not be destroyed, the kernel might still write the buffers:
        // leaking them is the safe choice.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::fs::FileExt;

    #[test]
    fn control_block_layout_matches_the_kernel() {
        assert_eq!(size_of::<Iocb>(), 64);
        assert_eq!(std::mem::offset_of!(Iocb, aio_lio_opcode), 16);
        assert_eq!(std::mem::offset_of!(Iocb, aio_fildes), 20);
        assert_eq!(std::mem::offset_of!(Iocb, aio_buf), 24);
        assert_eq!(std::mem::offset_of!(Iocb, aio_offset), 40);
        assert_eq!(size_of::<IoEvent>(), 32);
    }

    #[test]
    fn writes_and_reads_a_file() {
        let (path, file) = crate::platform::scratch_file("lab-aio", 4 * 4096);
        let mut aio = Aio::new(2, 4096).unwrap();
        aio.buffer_mut(0).unwrap().fill(0xa5);
        aio.buffer_mut(1).unwrap().fill(0x5a);
        let reqs = [
            AioRequest {
                slot: 0,
                write: true,
                offset: 4096,
                len: 4096,
            },
            AioRequest {
                slot: 1,
                write: true,
                offset: 3 * 4096,
                len: 4096,
            },
        ];
        aio.submit(file.as_fd(), &reqs).unwrap();
        assert!(aio.buffer(0).is_none() || aio.in_flight() < 2);
        let mut out = Vec::new();
        while out.len() < 2 {
            aio.reap(1, Duration::from_secs(5), &mut out).unwrap();
        }
        assert!(out.iter().all(|c| c.res == 4096));
        let mut buf = [0u8; 4096];
        file.read_exact_at(&mut buf, 3 * 4096).unwrap();
        assert!(buf.iter().all(|b| *b == 0x5a));
        let read = AioRequest {
            slot: 0,
            write: false,
            offset: 3 * 4096,
            len: 4096,
        };
        aio.submit(file.as_fd(), &[read]).unwrap();
        assert!(aio.submit(file.as_fd(), &[read]).is_err(), "slot in flight");
        out.clear();
        while out.is_empty() {
            aio.reap(1, Duration::from_secs(5), &mut out).unwrap();
        }
        assert_eq!(aio.buffer(0).unwrap()[100], 0x5a);
        assert!(Aio::new(1, 100).is_err());
        std::fs::remove_file(path).unwrap();
    }
}
