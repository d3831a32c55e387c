//! Response building and copies between the core and a request's data buffer.

use crate::types::{GuestMemory, Segment, PAGE_SIZE};

/// The largest response any command handler builds.
pub(crate) const RESPONSE_MAX: usize = 256;

/// A response under construction: a zeroed fixed-size buffer and the length written so far.
pub(crate) struct Response {
    buf: [u8; RESPONSE_MAX],
    len: usize,
}

impl Response {
    pub(crate) fn new() -> Self {
        Response {
            buf: [0; RESPONSE_MAX],
            len: 0,
        }
    }

    /// Appends `n` zero bytes and returns them for filling in.
    pub(crate) fn extend(&mut self, n: usize) -> &mut [u8] {
        let start = self.len;
        self.len += n;
        &mut self.buf[start..self.len]
    }

    /// Appends `data`.
    pub(crate) fn push(&mut self, data: &[u8]) {
        self.extend(data.len()).copy_from_slice(data);
    }

    /// The bytes written so far, mutably (for length fields filled in last).
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }

    /// The bytes written so far.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// Copies `data` to the start of the buffer described by `segments`, stopping at `limit` bytes
/// or the end of the segments; returns the bytes copied.
pub(crate) fn copy_to_guest<M: GuestMemory + ?Sized>(
    mem: &mut M,
    segments: &[Segment],
    limit: usize,
    data: &[u8],
) -> usize {
    let total = data.len().min(limit);
    let mut done = 0;
    for s in segments {
        if done == total {
            break;
        }
        let offset = usize::from(s.offset);
        let room = usize::from(s.length).min(PAGE_SIZE.saturating_sub(offset));
        let n = room.min(total - done);
        mem.write(s.frame, offset, &data[done..done + n]);
        done += n;
    }
    done
}

/// Copies the start of the buffer described by `segments` into `out`, stopping at `limit`
/// bytes or the end of the segments; returns the bytes copied.
pub(crate) fn copy_from_guest<M: GuestMemory + ?Sized>(
    mem: &M,
    segments: &[Segment],
    limit: usize,
    out: &mut [u8],
) -> usize {
    let total = out.len().min(limit);
    let mut done = 0;
    for s in segments {
        if done == total {
            break;
        }
        let offset = usize::from(s.offset);
        let room = usize::from(s.length).min(PAGE_SIZE.saturating_sub(offset));
        let n = room.min(total - done);
        mem.read(s.frame, offset, &mut out[done..done + n]);
        done += n;
    }
    done
}

/// Big-endian field helpers over a CDB or a response.
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

pub(crate) fn be24(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([0, b[at], b[at + 1], b[at + 2]])
}

pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(crate) fn be64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(x)
}

pub(crate) fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

pub(crate) fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

pub(crate) fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_be_bytes());
}
