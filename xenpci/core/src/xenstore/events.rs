//! The bounded queue of watch events.

/// Bytes of bookkeeping stored with each queued event: the watch slot (2 bytes), the watch's
/// generation (2 bytes) and the path length (2 bytes).
pub(crate) const EVENT_RECORD_HEADER: usize = 6;

/// A fixed-size FIFO of watch events, stored as variable-length records in a byte ring of `BYTES`
/// bytes: many short paths or a few long ones fit, and nothing grows.
///
/// When an event does not fit, it is dropped, [`dropped`](Self::dropped) counts it, and the
/// overflow flag is raised until [`take_overflow`](Self::take_overflow) clears it.
#[derive(Clone)]
pub(crate) struct EventQueue<const BYTES: usize> {
    buf: [u8; BYTES],
    /// Index of the first byte of the oldest record.
    head: usize,
    /// Bytes in use.
    used: usize,
    /// Records queued.
    count: usize,
    overflow: bool,
    dropped: u64,
}

impl<const BYTES: usize> EventQueue<BYTES> {
    pub(crate) const fn new() -> Self {
        EventQueue {
            buf: [0; BYTES],
            head: 0,
            used: 0,
            count: 0,
            overflow: false,
            dropped: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.count
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    pub(crate) fn overflowed(&self) -> bool {
        self.overflow
    }

    /// Raises the overflow flag without dropping anything (an event was lost elsewhere).
    pub(crate) fn mark_overflow(&mut self) {
        self.overflow = true;
    }

    pub(crate) fn take_overflow(&mut self) -> bool {
        core::mem::take(&mut self.overflow)
    }

    pub(crate) fn clear(&mut self) {
        self.head = 0;
        self.used = 0;
        self.count = 0;
    }

    fn put(&mut self, at: usize, data: &[u8]) {
        let start = (self.head + at) % BYTES;
        let first = data.len().min(BYTES - start);
        self.buf[start..start + first].copy_from_slice(&data[..first]);
        self.buf[..data.len() - first].copy_from_slice(&data[first..]);
    }

    fn get(&self, at: usize, out: &mut [u8]) {
        let start = (self.head + at) % BYTES;
        let first = out.len().min(BYTES - start);
        out[..first].copy_from_slice(&self.buf[start..start + first]);
        let rest = out.len() - first;
        out[first..].copy_from_slice(&self.buf[..rest]);
    }

    /// Queues an event; returns false (and records the overflow) when it does not fit.
    pub(crate) fn push(&mut self, slot: u16, generation: u16, path: &[u8]) -> bool {
        let need = EVENT_RECORD_HEADER + path.len();
        let Ok(path_len) = u16::try_from(path.len()) else {
            self.overflow = true;
            self.dropped += 1;
            return false;
        };
        if BYTES == 0 || need > BYTES - self.used {
            self.overflow = true;
            self.dropped += 1;
            return false;
        }
        let mut header = [0; EVENT_RECORD_HEADER];
        header[0..2].copy_from_slice(&slot.to_le_bytes());
        header[2..4].copy_from_slice(&generation.to_le_bytes());
        header[4..6].copy_from_slice(&path_len.to_le_bytes());
        self.put(self.used, &header);
        self.put(self.used + EVENT_RECORD_HEADER, path);
        self.used += need;
        self.count += 1;
        true
    }

    /// The oldest event's (slot, generation, path length).
    pub(crate) fn peek(&self) -> Option<(u16, u16, usize)> {
        if self.count == 0 {
            return None;
        }
        let mut header = [0; EVENT_RECORD_HEADER];
        self.get(0, &mut header);
        let slot = u16::from_le_bytes([header[0], header[1]]);
        let generation = u16::from_le_bytes([header[2], header[3]]);
        let len = usize::from(u16::from_le_bytes([header[4], header[5]]));
        Some((slot, generation, len))
    }

    /// Copies the oldest event's path into `out` (which must hold it) and removes the event.
    pub(crate) fn pop_into(&mut self, out: &mut [u8]) -> Option<(u16, u16, usize)> {
        let (slot, generation, len) = self.peek()?;
        if let Some(dst) = out.get_mut(..len) {
            self.get(EVENT_RECORD_HEADER, dst);
        }
        self.discard();
        Some((slot, generation, len))
    }

    /// Removes the oldest event.
    pub(crate) fn discard(&mut self) {
        if let Some((_, _, len)) = self.peek() {
            let size = EVENT_RECORD_HEADER + len;
            self.head = (self.head + size) % BYTES;
            self.used -= size;
            self.count -= 1;
            if self.count == 0 {
                self.head = 0;
            }
        }
    }
}
