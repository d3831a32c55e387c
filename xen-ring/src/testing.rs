//! Software peers for tests (feature `test-utils`): well-behaved ends that serve a ring in the
//! calling thread, and a hostile peer that writes whatever it is told to.
//!
//! ```
//! use xen_ring::testing::MockBackend;
//! use xen_ring::{FrontRing, RingMemory};
//!
//! let mem = RingMemory::allocate(0)?;
//! let mut front = FrontRing::<u64, u64>::init(mem.clone())?;
//! let mut back = MockBackend::<u64, u64>::attach(mem)?;
//! front.push_request(&20)?;
//! assert!(front.push_requests_and_check_notify());
//! let served = back.serve(|req| req + 1)?;
//! assert_eq!((served.entries, served.notify), (1, true));
//! assert_eq!(front.take_response()?, Some(21));
//! # Ok::<(), xen_ring::RingError>(())
//! ```

use xen_abi::ring::{ring_slots, RingIdx, RING_ENTRIES_OFFSET};

use crate::error::RingError;
use crate::shared::{Grid, RingIndex, RingMemory};
use crate::{BackRing, FrontRing, RingEntry};

/// What one call of [`MockBackend::serve`] or [`MockFrontend::collect`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Served {
    /// Entries consumed (and, for the backend, answered).
    pub entries: usize,
    /// Whether the peer asked for an event for the responses published (backend only).
    pub notify: bool,
}

/// A software backend: answers every request with a handler, in the caller's thread.
#[derive(Debug)]
pub struct MockBackend<Req, Rsp> {
    ring: BackRing<Req, Rsp>,
}

impl<Req: RingEntry, Rsp: RingEntry> MockBackend<Req, Rsp> {
    /// Attaches at index 0 to a ring a frontend initialised.
    pub fn attach(mem: RingMemory) -> Result<Self, RingError> {
        Ok(Self {
            ring: BackRing::attach(mem)?,
        })
    }

    /// Attaches at `index` (for rings initialised with `FrontRing::init_at`).
    pub fn attach_at(mem: RingMemory, index: RingIdx) -> Result<Self, RingError> {
        Ok(Self {
            ring: BackRing::attach_at(mem, index)?,
        })
    }

    /// The backend ring, for finer-grained steps.
    pub fn ring(&mut self) -> &mut BackRing<Req, Rsp> {
        &mut self.ring
    }

    /// The backend's event loop, run until idle: takes every request, pushes `handler`'s answer to
    /// each, publishes (noting whether the frontend wants an event), and repeats until
    /// `RING_FINAL_CHECK_FOR_REQUESTS` finds nothing, leaving `req_event` armed.
    pub fn serve(&mut self, mut handler: impl FnMut(Req) -> Rsp) -> Result<Served, RingError> {
        let mut served = Served::default();
        loop {
            served.entries += self.ring.serve(&mut handler)?;
            served.notify |= self.ring.push_responses_and_check_notify();
            if !self.ring.final_check_for_requests()? {
                return Ok(served);
            }
        }
    }
}

/// A software frontend: submits requests and collects responses, in the caller's thread.
#[derive(Debug)]
pub struct MockFrontend<Req, Rsp> {
    ring: FrontRing<Req, Rsp>,
}

impl<Req: RingEntry, Rsp: RingEntry> MockFrontend<Req, Rsp> {
    /// Initialises the shared ring and attaches at index 0.
    pub fn init(mem: RingMemory) -> Result<Self, RingError> {
        Ok(Self {
            ring: FrontRing::init(mem)?,
        })
    }

    /// Initialises the shared ring with every index at `index`.
    pub fn init_at(mem: RingMemory, index: RingIdx) -> Result<Self, RingError> {
        Ok(Self {
            ring: FrontRing::init_at(mem, index)?,
        })
    }

    /// The frontend ring, for finer-grained steps.
    pub fn ring(&mut self) -> &mut FrontRing<Req, Rsp> {
        &mut self.ring
    }

    /// Pushes as many of `reqs` as fit and publishes them; returns how many were pushed and
    /// whether the backend wants an event.
    pub fn submit(&mut self, reqs: &[Req]) -> (usize, bool) {
        let pushed = self.ring.push_batch(reqs);
        (pushed, self.ring.push_requests_and_check_notify())
    }

    /// The frontend's response loop, run until idle: passes every response to `f` and repeats
    /// until `RING_FINAL_CHECK_FOR_RESPONSES` finds nothing, leaving `rsp_event` armed.
    pub fn collect(&mut self, mut f: impl FnMut(Rsp)) -> Result<Served, RingError> {
        let mut served = Served::default();
        loop {
            served.entries += self.ring.drain_responses(&mut f)?;
            if !self.ring.final_check_for_responses()? {
                return Ok(served);
            }
        }
    }
}

/// A peer that writes whatever it is told to into the shared pages: indices, event indices and
/// entry bytes. For hardening tests and fuzzing.
#[derive(Clone, Debug)]
pub struct HostilePeer {
    mem: RingMemory,
    entry_size: usize,
    slots: u32,
}

impl HostilePeer {
    /// A hostile peer on `mem`, whose entries the victim lays out `entry_size` bytes apart.
    pub fn new(mem: RingMemory, entry_size: usize) -> Self {
        let slots = ring_slots(mem.pages(), entry_size);
        Self {
            mem,
            entry_size,
            slots,
        }
    }

    /// The number of slots of the victim's ring.
    pub fn slots(&self) -> u32 {
        self.slots
    }

    /// Reads a header index.
    pub fn get(&self, which: RingIndex) -> RingIdx {
        self.mem.load_index(which)
    }

    /// Writes a header index.
    pub fn set(&self, which: RingIndex, value: RingIdx) {
        self.mem.store_index(which, value)
    }

    /// Writes `bytes` (truncated to the entry size) at the start of the slot of free-running index
    /// `idx`. Does nothing if the ring has no slots.
    pub fn write_slot(&self, idx: RingIdx, bytes: &[u8]) {
        if self.slots == 0 {
            return;
        }
        let offset = RING_ENTRIES_OFFSET + (idx & (self.slots - 1)) as usize * self.entry_size;
        let n = bytes.len().min(self.entry_size);
        // In the words the ring itself uses for its entries.
        self.mem
            .write_entry(offset, &bytes[..n], Grid::for_entry_size(self.entry_size));
    }

    /// Fills the whole slot of free-running index `idx` with `byte`.
    pub fn fill_slot(&self, idx: RingIdx, byte: u8) {
        let buf = [byte; 256];
        if self.slots == 0 {
            return;
        }
        let base = RING_ENTRIES_OFFSET + (idx & (self.slots - 1)) as usize * self.entry_size;
        let grid = Grid::for_entry_size(self.entry_size);
        // Chunks of 256 bytes keep to the ring's word grid.
        let mut done = 0;
        while done < self.entry_size {
            let n = (self.entry_size - done).min(buf.len());
            self.mem.write_entry(base + done, &buf[..n], grid);
            done += n;
        }
    }

    /// Writes `bytes` at byte `offset` of the pages, if in bounds, in 32-bit words (see
    /// [`RingMemory::write_bytes`]).
    pub fn write_raw(&self, offset: usize, bytes: &[u8]) -> Result<(), RingError> {
        self.mem.write_bytes(offset, bytes)
    }
}
