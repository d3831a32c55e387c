//! Xen shared rings (`io/ring.h`): front and back, multi-page, hardened against a hostile peer.
//!
//! A shared ring is 2^order contiguous pages holding a 64-byte header (two producer indices, two
//! event indices) followed by a power-of-two array of slots. The frontend writes requests into the
//! slots and advances `req_prod`; the backend reads them, writes each response into the slot of the
//! request it answers, and advances `rsp_prod`. This crate implements both ends with the exact
//! index and event-suppression semantics of Xen's C macros, so either end interoperates with a
//! peer built from `io/ring.h`.
//!
//! # API summary
//!
//! ```text
//! RingMemory       unsafe new(base: *mut u8, order) -> Result<RingMemory>   // 2^order pages, page aligned
//!                  allocate(order)                          [test-utils]   // heap pages for tests
//!                  pages(), size_bytes(), as_ptr(), load_index/store_index(RingIndex), read_bytes/write_bytes
//!
//! FrontRing<Req, Rsp>                                       // Req, Rsp: zerocopy FromBytes + IntoBytes + Immutable
//!   init(mem)            XEN_FRONT_RING_INIT   attach_at(mem, idx)   FRONT_RING_ATTACH
//!   reinit(), reattach_at(idx)                 // also clear a poisoned ring
//!   slots(), free_requests(), is_full(), error(), req_prod_pvt(), rsp_cons()
//!   push_request(&Req) -> Result<()>           push_batch(&[Req]) -> usize
//!   push_requests()      RING_PUSH_REQUESTS    push_requests_and_check_notify() -> bool
//!   take_response() -> Result<Option<Rsp>>     drain_responses(|rsp| ..) -> Result<usize>
//!   unconsumed_responses() -> Result<u32>      final_check_for_responses() -> Result<bool>
//!
//! BackRing<Req, Rsp>
//!   attach(mem)          BACK_RING_INIT        attach_at(mem, idx)   BACK_RING_ATTACH
//!   reattach_at(idx), slots(), error(), req_cons(), rsp_prod_pvt(), unanswered_requests()
//!   take_request() -> Result<Option<Req>>      drain_requests(|req| ..) -> Result<usize>
//!   serve(|req| -> rsp) -> Result<usize>       // take and answer in one pass (the fast path)
//!   unconsumed_requests() -> Result<u32>       final_check_for_requests() -> Result<bool>
//!   push_response(&Rsp) -> Result<()>          push_batch(&[Rsp]) -> usize
//!   push_responses()     RING_PUSH_RESPONSES   push_responses_and_check_notify() -> bool
//!
//! RawFrontRing / RawBackRing                 // same, entry size chosen at run time, entries as &[u8]
//! RingError                                  // peer violations (poison the ring) vs. our misuse
//! testing::{MockBackend, MockFrontend, HostilePeer}                  [test-utils]
//! ```
//!
//! A frontend's I/O path:
//!
//! ```
//! # use xen_ring::{FrontRing, RingMemory};
//! # fn notify_backend() {}
//! # let mem = RingMemory::allocate(0).unwrap();
//! let mut front = FrontRing::<[u8; 16], [u8; 16]>::init(mem)?;
//! front.push_request(&[1; 16])?;
//! if front.push_requests_and_check_notify() {
//!     notify_backend();
//! }
//! // ... later, in the event-channel handler:
//! loop {
//!     front.drain_responses(|rsp| { let _ = rsp; })?;
//!     if !front.final_check_for_responses()? {
//!         break; // idle until the next event
//!     }
//! }
//! # Ok::<(), xen_ring::RingError>(())
//! ```
//!
//! # Typed and raw rings
//!
//! [`FrontRing`] and [`BackRing`] are generic over the request and response types; their entry size
//! is the compile-time constant `ring_entry_size(Req, Rsp)`, so entry copies are fixed-size.
//! [`RawFrontRing`] and [`RawBackRing`] take the entry size at run time and move entries as byte
//! slices, for layouts negotiated at connect time (blkif's x86_32 and x86_64 layouts). Both are the
//! same generic ring logic (`ring::Ring`), instantiated with a constant or a run-time entry size.
//!
//! # Shared memory and ordering
//!
//! All access to the shared pages goes through [`RingMemory`], the crate's only `unsafe` code: the
//! indices are `AtomicU32`s accessed through pointers, entries are copied with relaxed atomic word
//! accesses into a local (never a reference into shared memory), then interpreted with zerocopy.
//! The producer writes entries then stores its index with `Release`; the consumer loads the index
//! with `Acquire` then reads entries. The notify decision and the final check each put a
//! `SeqCst` fence between their store and their load, so no wake-up is lost (see the README).
//!
//! # Hardening
//!
//! The consumer validates the peer's producer index before reading any entry it covers: it may
//! not claim more entries than the ring holds, nor (for a frontend) more responses than requests
//! published, nor move backwards. A violation poisons the ring: see [`RingError`].
#![no_std]
#![deny(unsafe_code)]

#[cfg(any(test, feature = "test-utils", loom))]
extern crate alloc;
#[cfg(test)]
extern crate std;

mod back;
mod error;
mod front;
mod ring;
#[allow(unsafe_code)]
mod shared;
mod sync;
#[cfg(any(test, feature = "test-utils"))]
pub mod testing;
#[cfg(all(test, not(loom)))]
mod tests;

pub use back::{BackRing, RawBackRing};
pub use error::RingError;
pub use front::{FrontRing, RawFrontRing};
pub use ring::RingEntry;
pub use shared::{RingIndex, RingMemory};
pub use xen_abi::ring::RingIdx;
