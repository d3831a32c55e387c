//! Test-only: a ring peer built from Xen's own `io/ring.h` macros.
//!
//! `csrc/peer.c` is compiled at `-O2` against the `io/ring.h` that Debian's `libxen-dev` installs
//! and drives a shared ring with the header's macros only (`SHARED_RING_INIT`, `FRONT_RING_INIT`,
//! `BACK_RING_INIT`, `RING_GET_REQUEST`, `RING_COPY_REQUEST`, `RING_PUSH_*_AND_CHECK_NOTIFY`,
//! `RING_FINAL_CHECK_FOR_*`, ...). This crate wraps it for xen-ring's interoperability tests and
//! benchmarks:
//!
//! * [`SharedPages`]: page-aligned, zeroed memory for a shared ring of one or more pages;
//! * [`TestRequest`] / [`TestResponse`]: the test protocol, sized like blkif's x86_64 request
//!   (112 bytes) and response (16 bytes), with deterministic payloads ([`TestRequest::new`]) and a
//!   checksum the backend computes from what it read ([`TestResponse::answer`]);
//! * [`Link`]: two modelled event channels (one per direction) and an abort flag, shared by both
//!   sides; [`Waiter`] is the Rust side of a wait with the same semantics as the C side's;
//! * [`c_back_serve`], [`c_front_run`]: the C backend and frontend loops, for one thread each;
//! * [`c_single_thread`]: both ends in one thread, for measuring the ring code alone.
//!
//! # Event-channel model
//!
//! An [`EventChannel`] is a counter: notifying increments it; a waiter remembers the last value it
//! saw and waits (spinning, then yielding) until the counter moves. That is a real event
//! channel's latched pending bit: a notification sent between a waiter's final check and its sleep
//! ends the sleep at once. A side only waits after a final check (`RING_FINAL_CHECK_FOR_*`) said
//! there is nothing to do, so a notification that a producer wrongly suppressed leaves the waiter
//! asleep for good; the wait gives up after a timeout and reports [`PeerErrorKind::LostWakeup`].

use core::fmt;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::alloc::{self, Layout};
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The size of a Xen page.
pub const PAGE_SIZE: usize = 4096;

/// The number of payload words in a [`TestRequest`].
pub const PAYLOAD_WORDS: usize = 13;

/// A request of the test protocol: 112 bytes, as blkif's x86_64 `blkif_request`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct TestRequest {
    /// The request's number: the frontend issues 0, 1, 2, ...
    pub id: u64,
    /// Words derived from `id` by [`payload_word`].
    pub payload: [u64; PAYLOAD_WORDS],
}

/// A response of the test protocol: 16 bytes, as blkif's `blkif_response`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct TestResponse {
    /// The id of the request answered.
    pub id: u64,
    /// [`checksum_of`] the payload the backend read.
    pub checksum: u64,
}

/// Word `i` of the payload of request `id` (the same function as the C peer's).
#[inline]
pub fn payload_word(id: u64, i: usize) -> u64 {
    id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03)
}

/// The checksum a backend answers for a request with this payload and id (the same function as
/// the C peer's). It depends on every word and on its position.
#[inline]
pub fn checksum_of(payload: &[u64; PAYLOAD_WORDS], id: u64) -> u64 {
    let mut acc = id;
    for (i, word) in payload.iter().enumerate() {
        acc = acc.wrapping_add(word.wrapping_mul(2 * i as u64 + 1));
    }
    acc
}

impl TestRequest {
    /// The request the frontend issues as number `id`.
    #[inline]
    pub fn new(id: u64) -> Self {
        let mut payload = [0; PAYLOAD_WORDS];
        for (i, word) in payload.iter_mut().enumerate() {
            *word = payload_word(id, i);
        }
        TestRequest { id, payload }
    }

    /// Whether the payload is the one [`TestRequest::new`] gives for this id.
    #[inline]
    pub fn payload_is_intact(&self) -> bool {
        self.payload
            .iter()
            .enumerate()
            .all(|(i, &word)| word == payload_word(self.id, i))
    }
}

impl TestResponse {
    /// The backend's answer to `request`, computed from what it read.
    #[inline]
    pub fn answer(request: &TestRequest) -> Self {
        TestResponse {
            id: request.id,
            checksum: checksum_of(&request.payload, request.id),
        }
    }

    /// The answer a frontend expects to request number `id`.
    #[inline]
    pub fn expected(id: u64) -> Self {
        Self::answer(&TestRequest::new(id))
    }
}

/// A xorshift64 generator (the same as the C peer's), for batch sizes.
#[derive(Clone, Debug)]
pub struct Xorshift(u64);

impl Xorshift {
    /// A generator from a seed (any value; 0 is replaced).
    pub fn new(seed: u64) -> Self {
        Xorshift(seed | 1)
    }

    /// The next value.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A value uniform-ish in `min..=max`.
    #[inline]
    pub fn in_range(&mut self, min: u32, max: u32) -> u32 {
        let span = u64::from(max - min) + 1;
        if span == 1 {
            min
        } else {
            min + (self.next_u64() % span) as u32
        }
    }
}

/// Page-aligned, zero-initialised memory for a shared ring, owned for its lifetime.
///
/// The memory is only ever accessed through raw pointers (by the C peer and by xen-ring), never
/// through Rust references, so two threads can drive the two ends of a ring in it at once.
#[derive(Debug)]
pub struct SharedPages {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: `SharedPages` owns its allocation; it hands out only a raw pointer, and every access
// through that pointer is made by code that treats the memory as shared with another thread.
unsafe impl Send for SharedPages {}
// SAFETY: as above: `&SharedPages` gives nothing but the raw pointer and the length.
unsafe impl Sync for SharedPages {}

impl SharedPages {
    /// Zeroed memory of `pages` pages (at least one), aligned to a page.
    pub fn new(pages: usize) -> Self {
        assert!(pages > 0, "a ring needs at least one page");
        let layout = Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE).expect("ring layout");
        // SAFETY: the layout's size is not zero (at least one page).
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).unwrap_or_else(|| alloc::handle_alloc_error(layout));
        SharedPages { ptr, layout }
    }

    /// The start of the memory.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The start of the memory.
    pub fn as_non_null(&self) -> NonNull<u8> {
        self.ptr
    }

    /// The size in bytes.
    pub fn len(&self) -> usize {
        self.layout.size()
    }

    /// Always false: a ring has at least one page.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The number of pages.
    pub fn pages(&self) -> usize {
        self.layout.size() / PAGE_SIZE
    }

    /// The page order, if the number of pages is a power of two.
    pub fn order(&self) -> Option<u32> {
        let pages = self.pages();
        pages.is_power_of_two().then(|| pages.trailing_zeros())
    }

    /// Copies the whole memory out (with volatile reads), for comparing two rings' states. Only
    /// meaningful when no other thread is using the memory.
    pub fn snapshot(&self) -> Vec<u8> {
        self.snapshot_range(0, self.len())
    }

    /// Copies `len` bytes from byte `offset` out, as [`snapshot`](Self::snapshot) does.
    pub fn snapshot_range(&self, offset: usize, len: usize) -> Vec<u8> {
        assert!(
            offset <= self.len() && len <= self.len() - offset,
            "range out of bounds"
        );
        (offset..offset + len)
            .map(|i| {
                let byte = self.as_ptr().wrapping_add(i);
                // SAFETY: `i` is within the allocation, which lives as long as `self`; a volatile
                // byte read creates no reference into the memory.
                unsafe { byte.read_volatile() }
            })
            .collect()
    }
}

impl Drop for SharedPages {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc_zeroed` with this very layout and is freed only here.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

/// A modelled event channel: a counter of notifications in its own cache line.
#[derive(Debug, Default)]
#[repr(C, align(64))]
pub struct EventChannel {
    count: AtomicU64,
    sleeping: AtomicU32,
}

impl EventChannel {
    /// Sends a notification.
    #[inline]
    pub fn notify(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
    }

    /// The number of notifications sent so far.
    pub fn sent(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    /// Whether a waiter is asleep on the channel right now (it made its final check, found
    /// nothing and no notification was pending). For tests that need a peer to be asleep.
    pub fn has_sleeper(&self) -> bool {
        self.sleeping.load(Ordering::Relaxed) != 0
    }
}

/// What two ends of a ring share besides the ring: an event channel each way, an abort flag, and
/// how long a waiter spins before it yields the CPU.
#[derive(Debug)]
#[repr(C, align(64))]
pub struct Link {
    /// The frontend notifies the backend here.
    pub to_back: EventChannel,
    /// The backend notifies the frontend here.
    pub to_front: EventChannel,
    abort: AtomicU32,
    spins: u32,
}

impl Default for Link {
    fn default() -> Self {
        Self::with_spins(Self::DEFAULT_SPINS)
    }
}

impl Link {
    /// Polls of the event counter between yields by default: a few microseconds of spinning,
    /// then the waiter lets other threads run (tests share a small machine).
    pub const DEFAULT_SPINS: u32 = 128;

    /// A link with no notifications sent, whose waiters spin [`Link::DEFAULT_SPINS`] times
    /// between yields.
    pub fn new() -> Self {
        Self::default()
    }

    /// A link whose waiters poll `spins` times between yields (at least once). Benchmarks with
    /// one CPU per side use a large value, so that a wake-up is a cache-line transfer rather than
    /// a trip through the scheduler.
    pub fn with_spins(spins: u32) -> Self {
        Link {
            to_back: EventChannel::default(),
            to_front: EventChannel::default(),
            abort: AtomicU32::new(0),
            spins: spins.max(1),
        }
    }

    /// Makes every wait on this link, current or future, give up with
    /// [`PeerErrorKind::Aborted`]: for ending one side when the other failed.
    pub fn abort(&self) {
        self.abort.store(1, Ordering::Relaxed);
    }

    /// Whether [`Link::abort`] was called.
    pub fn is_aborted(&self) -> bool {
        self.abort.load(Ordering::Relaxed) != 0
    }
}

/// Counters kept by one side of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Stats {
    /// Requests served (backend) or responses checked (frontend).
    pub items: u64,
    /// Pushes of the producer index (each with its notification decision).
    pub pushes: u64,
    /// Pushes whose decision was to notify, i.e. notifications sent.
    pub notifies: u64,
    /// Final checks (`RING_FINAL_CHECK_FOR_*` or their equivalent).
    pub final_checks: u64,
    /// Waits that found no pending notification and had to sleep.
    pub sleeps: u64,
    /// Waits that ended by a notification.
    pub wakes: u64,
    /// Wakes after which there was nothing to consume.
    pub idle_wakes: u64,
}

/// How a run failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerErrorKind {
    /// A wait outlasted its timeout: a notification that was needed was never sent.
    LostWakeup,
    /// The link was aborted (the other side failed).
    Aborted,
    /// The backend read a request whose id or payload was not the one issued.
    BadRequest,
    /// The frontend read a response whose id or checksum was not the expected one.
    BadResponse,
    /// The peer's producer index ran more than a ring ahead of the consumer.
    PeerOverflow,
    /// The run's parameters were invalid.
    BadConfig,
    /// The ring implementation under test returned an error (Rust side only).
    Ring,
}

/// A failed run: what went wrong, where, and the ring's state when it was detected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerError {
    /// Which side failed: "C back", "C front", "Rust back", "Rust front".
    pub side: &'static str,
    /// What went wrong.
    pub kind: PeerErrorKind,
    /// The item number at which it went wrong.
    pub at: u64,
    /// The expected value (id, word or checksum), where one applies.
    pub expected: u64,
    /// The value found.
    pub got: u64,
    /// `req_prod`, `req_event`, `rsp_prod`, `rsp_event` in the shared page at that moment.
    pub shared: [u32; 4],
    /// The side's private producer and consumer indices.
    pub private: [u32; 2],
    /// The side's counters up to the failure.
    pub stats: Stats,
    /// A description from the ring under test, for [`PeerErrorKind::Ring`].
    pub detail: String,
}

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            PeerErrorKind::LostWakeup => "lost wake-up (a wait timed out with no notification)",
            PeerErrorKind::Aborted => "aborted because the other side failed",
            PeerErrorKind::BadRequest => "bad request",
            PeerErrorKind::BadResponse => "bad response",
            PeerErrorKind::PeerOverflow => "peer's producer index overflowed the ring",
            PeerErrorKind::BadConfig => "bad configuration",
            PeerErrorKind::Ring => "ring error",
        };
        write!(
            f,
            "{}: {what} at item {} (expected {:#x}, got {:#x}); shared req_prod={} req_event={} \
             rsp_prod={} rsp_event={}; private prod={} cons={}; {:?}",
            self.side,
            self.at,
            self.expected,
            self.got,
            self.shared[0],
            self.shared[1],
            self.shared[2],
            self.shared[3],
            self.private[0],
            self.private[1],
            self.stats
        )?;
        if !self.detail.is_empty() {
            write!(f, "; {}", self.detail)?;
        }
        Ok(())
    }
}

impl std::error::Error for PeerError {}

/// The Rust side of waiting on an [`EventChannel`], with the same semantics as the C side's.
#[derive(Debug, Default)]
pub struct Waiter {
    seen: u64,
}

impl Waiter {
    /// A waiter that has seen no notification.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits until a notification newer than the last one seen is pending on `channel`, and
    /// consumes it. Call only after a final check said there is nothing to do.
    pub fn wait(
        &mut self,
        link: &Link,
        channel: &EventChannel,
        timeout: Duration,
        stats: &mut Stats,
    ) -> Result<(), PeerErrorKind> {
        let mut v = channel.count.load(Ordering::Acquire);
        if v == self.seen {
            stats.sleeps += 1;
            channel.sleeping.store(1, Ordering::Relaxed);
            let slept = Self::sleep(link, channel, self.seen, timeout);
            channel.sleeping.store(0, Ordering::Relaxed);
            v = slept?;
        }
        self.seen = v;
        stats.wakes += 1;
        Ok(())
    }

    /// Spins, then yields, until `channel` moves past `seen`; returns its new value.
    fn sleep(
        link: &Link,
        channel: &EventChannel,
        seen: u64,
        timeout: Duration,
    ) -> Result<u64, PeerErrorKind> {
        let mut yields = 0u32;
        let mut start = None;
        loop {
            for _ in 0..link.spins {
                core::hint::spin_loop();
                let v = channel.count.load(Ordering::Acquire);
                if v != seen {
                    return Ok(v);
                }
            }
            if link.is_aborted() {
                return Err(PeerErrorKind::Aborted);
            }
            std::thread::yield_now();
            yields = yields.wrapping_add(1);
            if yields % 64 == 0 {
                let t0 = *start.get_or_insert_with(Instant::now);
                if t0.elapsed() > timeout {
                    return Err(PeerErrorKind::LostWakeup);
                }
            }
        }
    }
}

/// Parameters of a frontend run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct FrontConfig {
    /// Requests to issue (ids `0..count`).
    pub count: u64,
    /// Seed of the batch sizes.
    pub seed: u64,
    /// Requests pushed at once: uniform in `batch_min..=batch_max`, cut to the free slots.
    pub batch_min: u32,
    /// See `batch_min`.
    pub batch_max: u32,
    /// Non-zero: wait for every response before pushing the next batch (ping-pong of batches).
    /// Zero: push whenever there is room (the ring fills and wraps).
    pub closed_loop: u32,
    pad: u32,
    /// How long one wait may last before it counts as a lost wake-up, in nanoseconds.
    pub timeout_ns: u64,
}

impl FrontConfig {
    /// A configuration; see the fields.
    pub fn new(
        count: u64,
        seed: u64,
        batch: core::ops::RangeInclusive<u32>,
        closed_loop: bool,
        timeout: Duration,
    ) -> Self {
        FrontConfig {
            count,
            seed,
            batch_min: *batch.start(),
            batch_max: *batch.end(),
            closed_loop: u32::from(closed_loop),
            pad: 0,
            timeout_ns: u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX),
        }
    }
}

/// The C peer's report (`struct xrp_result`).
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
struct CResult {
    code: i32,
    ring_size: u32,
    at: u64,
    expected: u64,
    got: u64,
    req_prod: u32,
    req_event: u32,
    rsp_prod: u32,
    rsp_event: u32,
    private_prod: u32,
    private_cons: u32,
    stats: Stats,
}

mod ffi {
    use super::{CBackState, CFrontState, CResult, FrontConfig, Link, TestRequest, TestResponse};

    extern "C" {
        pub fn xrp_step_front_init(ring: *mut CFrontState, mem: *mut u8, bytes: usize);
        pub fn xrp_step_back_init(ring: *mut CBackState, mem: *mut u8, bytes: usize);
        pub fn xrp_step_front_free(ring: *const CFrontState) -> u32;
        pub fn xrp_step_front_push(ring: *mut CFrontState, req: *const TestRequest);
        pub fn xrp_step_front_push_and_check_notify(ring: *mut CFrontState) -> i32;
        pub fn xrp_step_front_take(ring: *mut CFrontState, rsp: *mut TestResponse) -> i32;
        pub fn xrp_step_front_final_check(ring: *mut CFrontState) -> i32;
        pub fn xrp_step_back_take(ring: *mut CBackState, req: *mut TestRequest) -> i32;
        pub fn xrp_step_back_respond(ring: *mut CBackState, rsp: *const TestResponse);
        pub fn xrp_step_back_push_and_check_notify(ring: *mut CBackState) -> i32;
        pub fn xrp_step_back_final_check(ring: *mut CBackState) -> i32;
        pub fn xrp_pin_to_cpu(cpu: u32) -> i32;
        pub fn xrp_blkif_back_serve(
            mem: *mut u8,
            bytes: usize,
            count: u64,
            link: *const Link,
            timeout_ns: u64,
            result: *mut CResult,
        );
        pub fn xrp_blkif_ring_size(mem: *mut u8, bytes: usize) -> u32;
        pub fn xrp_sring_init(mem: *mut u8);
        pub fn xrp_ring_size(mem: *mut u8, bytes: usize) -> u32;
        pub fn xrp_request_size() -> usize;
        pub fn xrp_response_size() -> usize;
        pub fn xrp_entry_size() -> usize;
        pub fn xrp_link_size() -> usize;
        pub fn xrp_result_size() -> usize;
        pub fn xrp_back_serve(
            mem: *mut u8,
            bytes: usize,
            count: u64,
            link: *const Link,
            timeout_ns: u64,
            result: *mut CResult,
        );
        pub fn xrp_front_run(
            mem: *mut u8,
            bytes: usize,
            config: *const FrontConfig,
            link: *const Link,
            result: *mut CResult,
        );
        pub fn xrp_single_thread(mem: *mut u8, bytes: usize, rounds: u64, batch: u32) -> u64;
        pub fn xrp_single_thread_light(mem: *mut u8, bytes: usize, rounds: u64, batch: u32) -> u64;
    }
}

impl CResult {
    fn into_result(self, side: &'static str) -> Result<Stats, Box<PeerError>> {
        let kind = match self.code {
            0 => return Ok(self.stats),
            1 => PeerErrorKind::LostWakeup,
            2 => PeerErrorKind::Aborted,
            3 => PeerErrorKind::BadRequest,
            4 => PeerErrorKind::BadResponse,
            5 => PeerErrorKind::PeerOverflow,
            _ => PeerErrorKind::BadConfig,
        };
        Err(Box::new(PeerError {
            side,
            kind,
            at: self.at,
            expected: self.expected,
            got: self.got,
            shared: [self.req_prod, self.req_event, self.rsp_prod, self.rsp_event],
            private: [self.private_prod, self.private_cons],
            stats: self.stats,
            detail: String::new(),
        }))
    }
}

/// Pins the calling thread to CPU `cpu` (`sched_setaffinity`); false if that failed.
pub fn pin_current_thread(cpu: usize) -> bool {
    let Ok(cpu) = u32::try_from(cpu) else {
        return false;
    };
    // SAFETY: the call only changes the calling thread's CPU affinity.
    unsafe { ffi::xrp_pin_to_cpu(cpu) == 0 }
}

/// `SHARED_RING_INIT` on `memory`: indices 0, event indices 1, padding zeroed. Do it before
/// either end attaches.
pub fn c_shared_ring_init(memory: &SharedPages) {
    // SAFETY: the memory is at least one page, more than the 64-byte header the macro writes;
    // callers initialise before starting either end, so nothing else accesses it meanwhile.
    unsafe { ffi::xrp_sring_init(memory.as_ptr()) }
}

/// The number of slots Xen's `__RING_SIZE` gives the test protocol in `memory`.
pub fn c_ring_size(memory: &SharedPages) -> u32 {
    // SAFETY: `FRONT_RING_INIT` only computes the size from the pointer and writes a local
    // front ring; it does not access the memory.
    unsafe { ffi::xrp_ring_size(memory.as_ptr(), memory.len()) }
}

/// The C sizes of the request, response, ring entry, [`Link`] and result structures, for checking
/// that this crate mirrors them.
pub fn c_layout() -> [usize; 5] {
    // SAFETY: the functions take nothing and return constants.
    let request = unsafe { ffi::xrp_request_size() };
    // SAFETY: as above.
    let response = unsafe { ffi::xrp_response_size() };
    // SAFETY: as above.
    let entry = unsafe { ffi::xrp_entry_size() };
    // SAFETY: as above.
    let link = unsafe { ffi::xrp_link_size() };
    // SAFETY: as above.
    let result = unsafe { ffi::xrp_result_size() };
    [request, response, entry, link, result]
}

/// Runs the C backend (`BACK_RING_INIT` on `memory`, already initialised as a shared ring) until it
/// has served `count` requests: each request's id and payload are checked and answered with
/// [`TestResponse::answer`]; notifications go to `link.to_front`, waits are on `link.to_back`.
pub fn c_back_serve(
    memory: &SharedPages,
    count: u64,
    link: &Link,
    timeout: Duration,
) -> Result<Stats, Box<PeerError>> {
    let mut result = CResult::default();
    let timeout_ns = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
    // SAFETY: `memory` is a live allocation of `memory.len()` bytes that is only accessed through
    // raw pointers, by the two ends of the ring; `link` outlives the call and is accessed
    // atomically by both sides; `result` is a valid, exclusive `struct xrp_result`.
    unsafe {
        ffi::xrp_back_serve(
            memory.as_ptr(),
            memory.len(),
            count,
            link,
            timeout_ns,
            &mut result,
        )
    };
    result.into_result("C back")
}

/// Runs the C frontend (`FRONT_RING_INIT` on `memory`, already initialised as a shared ring):
/// issues `config.count` requests in batches and checks every response; notifications go to
/// `link.to_back`, waits are on `link.to_front`.
pub fn c_front_run(
    memory: &SharedPages,
    config: &FrontConfig,
    link: &Link,
) -> Result<Stats, Box<PeerError>> {
    let mut result = CResult::default();
    // SAFETY: as for `c_back_serve`; `config` is a valid `struct xrp_front_config`.
    unsafe { ffi::xrp_front_run(memory.as_ptr(), memory.len(), config, link, &mut result) };
    result.into_result("C front")
}

/// Runs a C blkif backend (`blkif_back_ring_t` from `io/blkif.h`, `BACK_RING_INIT` on `memory`,
/// already initialised as a shared ring) until it has served `count` requests. Request `n` must
/// be the read/write described by [`blkif`]; each is answered field by field with its id and
/// operation and [`blkif::status`]`(n)`. Notifications and waits as for [`c_back_serve`].
pub fn c_blkif_back_serve(
    memory: &SharedPages,
    count: u64,
    link: &Link,
    timeout: Duration,
) -> Result<Stats, Box<PeerError>> {
    let mut result = CResult::default();
    let timeout_ns = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
    // SAFETY: as for `c_back_serve`.
    unsafe {
        ffi::xrp_blkif_back_serve(
            memory.as_ptr(),
            memory.len(),
            count,
            link,
            timeout_ns,
            &mut result,
        )
    };
    result.into_result("C blkif back")
}

/// The number of slots Xen's `__RING_SIZE` gives `blkif_sring_t` in `memory`.
pub fn c_blkif_ring_size(memory: &SharedPages) -> u32 {
    // SAFETY: as for `c_ring_size`: only the size is computed.
    unsafe { ffi::xrp_blkif_ring_size(memory.as_ptr(), memory.len()) }
}

/// The blkif requests the C blkif backend expects, as plain values (so that this crate need not
/// know the Rust blkif types): request `n` is a read (`n` even) or write (`n` odd).
pub mod blkif {
    /// `BLKIF_OP_READ`.
    pub const OP_READ: u8 = 0;
    /// `BLKIF_OP_WRITE`.
    pub const OP_WRITE: u8 = 1;
    /// `BLKIF_RSP_OKAY`.
    pub const RSP_OKAY: i16 = 0;
    /// `BLKIF_RSP_ERROR`.
    pub const RSP_ERROR: i16 = -1;
    /// `BLKIF_MAX_SEGMENTS_PER_REQUEST`.
    pub const MAX_SEGMENTS: usize = 11;

    /// The request's `id`.
    pub fn id(n: u64) -> u64 {
        0xb10c_0000_0000_0000 ^ n
    }

    /// The request's `operation`.
    pub fn operation(n: u64) -> u8 {
        if n % 2 == 1 {
            OP_WRITE
        } else {
            OP_READ
        }
    }

    /// The request's `nr_segments`: 1 to 11.
    pub fn nr_segments(n: u64) -> u8 {
        (1 + n % MAX_SEGMENTS as u64) as u8
    }

    /// The request's `handle`.
    pub fn handle(n: u64) -> u16 {
        n.wrapping_mul(7) as u16
    }

    /// The request's `sector_number`.
    pub fn sector_number(n: u64) -> u64 {
        n.wrapping_mul(8)
    }

    /// Segment `i`'s `(gref, first_sect, last_sect)`.
    pub fn segment(n: u64, i: usize) -> (u32, u8, u8) {
        (
            n.wrapping_mul(11).wrapping_add(i as u64) as u32,
            (i % 8) as u8,
            7,
        )
    }

    /// The `status` the backend answers request `n` with.
    pub fn status(n: u64) -> i16 {
        if n % 5 == 0 {
            RSP_ERROR
        } else {
            RSP_OKAY
        }
    }
}

/// Both C ends in one thread, `rounds` times: push `batch` requests, serve them, take and check
/// the responses. Returns the number of responses checked, or `None` on a mismatch or a batch
/// larger than the ring.
pub fn c_single_thread(memory: &mut SharedPages, rounds: u64, batch: u32) -> Option<u64> {
    // SAFETY: `memory` is borrowed exclusively, so nothing else accesses it during the call, and
    // the C code stays within its `len()` bytes.
    let n = unsafe { ffi::xrp_single_thread(memory.as_ptr(), memory.len(), rounds, batch) };
    (n != u64::MAX).then_some(n)
}

/// `struct xrp_front_ring`: a C frontend's private indices.
#[derive(Debug)]
#[repr(C)]
struct CFrontState {
    req_prod_pvt: u32,
    rsp_cons: u32,
    nr_ents: u32,
    sring: *mut u8,
}

/// `struct xrp_back_ring`: a C backend's private indices.
#[derive(Debug)]
#[repr(C)]
struct CBackState {
    rsp_prod_pvt: u32,
    req_cons: u32,
    nr_ents: u32,
    sring: *mut u8,
}

/// A C frontend (`struct xrp_front_ring`) driven one macro at a time, for lock-step comparisons.
#[derive(Debug)]
pub struct CFrontRing<'a> {
    state: CFrontState,
    memory: PhantomData<&'a SharedPages>,
}

impl<'a> CFrontRing<'a> {
    /// `XEN_FRONT_RING_INIT`: `SHARED_RING_INIT` and `FRONT_RING_INIT` on `memory`.
    ///
    /// The ring accesses `memory` without synchronisation other than the macros' barriers: use it
    /// from one thread, with any peer in the same thread.
    pub fn init(memory: &'a SharedPages) -> Self {
        let mut state = CFrontState {
            req_prod_pvt: 0,
            rsp_cons: 0,
            nr_ents: 0,
            sring: core::ptr::null_mut(),
        };
        // SAFETY: `state` is a valid `struct xrp_front_ring`; the macros write the 64-byte header
        // of `memory`, which is at least a page and outlives `'a`.
        unsafe { ffi::xrp_step_front_init(&mut state, memory.as_ptr(), memory.len()) };
        CFrontRing {
            state,
            memory: PhantomData,
        }
    }

    /// `RING_SIZE`.
    pub fn slots(&self) -> u32 {
        self.state.nr_ents
    }

    /// `req_prod_pvt`.
    pub fn req_prod_pvt(&self) -> u32 {
        self.state.req_prod_pvt
    }

    /// `rsp_cons`.
    pub fn rsp_cons(&self) -> u32 {
        self.state.rsp_cons
    }

    /// `RING_FREE_REQUESTS`.
    pub fn free_requests(&self) -> u32 {
        // SAFETY: the macro reads only the private state.
        unsafe { ffi::xrp_step_front_free(&self.state) }
    }

    /// Writes `req` at `RING_GET_REQUEST(req_prod_pvt)` and advances `req_prod_pvt`. Refuses (as
    /// C would not) when the ring is full, returning false.
    pub fn push(&mut self, req: &TestRequest) -> bool {
        if self.free_requests() == 0 {
            return false;
        }
        // SAFETY: the state was set up by `init` on memory that outlives `'a`; the slot is masked
        // into the ring, so the write stays within the memory.
        unsafe { ffi::xrp_step_front_push(&mut self.state, req) };
        true
    }

    /// `RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`.
    pub fn push_and_check_notify(&mut self) -> bool {
        // SAFETY: as in `push`; the macro touches only the header.
        unsafe { ffi::xrp_step_front_push_and_check_notify(&mut self.state) != 0 }
    }

    /// `RING_HAS_UNCONSUMED_RESPONSES`, then `RING_COPY_RESPONSE` of one response. Trusts the
    /// peer, as the macros do: use it with a well-behaved backend only.
    pub fn take(&mut self) -> Option<TestResponse> {
        let mut rsp = TestResponse::default();
        // SAFETY: as in `push`; the slot read is masked into the ring and `rsp` is a valid
        // destination.
        let taken = unsafe { ffi::xrp_step_front_take(&mut self.state, &mut rsp) };
        (taken != 0).then_some(rsp)
    }

    /// `RING_FINAL_CHECK_FOR_RESPONSES`.
    pub fn final_check(&mut self) -> bool {
        // SAFETY: as in `push`; the macro touches only the header.
        unsafe { ffi::xrp_step_front_final_check(&mut self.state) != 0 }
    }
}

/// A C backend (`struct xrp_back_ring`) driven one macro at a time, for lock-step comparisons.
#[derive(Debug)]
pub struct CBackRing<'a> {
    state: CBackState,
    memory: PhantomData<&'a SharedPages>,
}

impl<'a> CBackRing<'a> {
    /// `BACK_RING_INIT` on `memory`, already initialised by a frontend. Same single-thread rule as
    /// [`CFrontRing::init`].
    pub fn init(memory: &'a SharedPages) -> Self {
        let mut state = CBackState {
            rsp_prod_pvt: 0,
            req_cons: 0,
            nr_ents: 0,
            sring: core::ptr::null_mut(),
        };
        // SAFETY: `state` is a valid `struct xrp_back_ring`; the macro only computes the size and
        // stores the pointer, which stays valid for `'a`.
        unsafe { ffi::xrp_step_back_init(&mut state, memory.as_ptr(), memory.len()) };
        CBackRing {
            state,
            memory: PhantomData,
        }
    }

    /// `RING_SIZE`.
    pub fn slots(&self) -> u32 {
        self.state.nr_ents
    }

    /// `rsp_prod_pvt`.
    pub fn rsp_prod_pvt(&self) -> u32 {
        self.state.rsp_prod_pvt
    }

    /// `req_cons`.
    pub fn req_cons(&self) -> u32 {
        self.state.req_cons
    }

    /// `RING_HAS_UNCONSUMED_REQUESTS`, then `RING_COPY_REQUEST` of one request.
    pub fn take(&mut self) -> Option<TestRequest> {
        let mut req = TestRequest::default();
        // SAFETY: the state was set up by `init` on memory that outlives `'a`; the slot read is
        // masked into the ring and `req` is a valid destination.
        let taken = unsafe { ffi::xrp_step_back_take(&mut self.state, &mut req) };
        (taken != 0).then_some(req)
    }

    /// Writes `rsp` at `RING_GET_RESPONSE(rsp_prod_pvt)` and advances `rsp_prod_pvt`. Refuses
    /// (returning false) when every consumed request has been answered.
    pub fn respond(&mut self, rsp: &TestResponse) -> bool {
        if self.state.req_cons == self.state.rsp_prod_pvt {
            return false;
        }
        // SAFETY: as in `take`; the slot written is masked into the ring.
        unsafe { ffi::xrp_step_back_respond(&mut self.state, rsp) };
        true
    }

    /// `RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`.
    pub fn push_and_check_notify(&mut self) -> bool {
        // SAFETY: as in `take`; the macro touches only the header.
        unsafe { ffi::xrp_step_back_push_and_check_notify(&mut self.state) != 0 }
    }

    /// `RING_FINAL_CHECK_FOR_REQUESTS`.
    pub fn final_check(&mut self) -> bool {
        // SAFETY: as in `take`; the macro touches only the header.
        unsafe { ffi::xrp_step_back_final_check(&mut self.state) != 0 }
    }
}

/// [`c_single_thread`] with almost no work besides the ring: every request is one template with
/// only its id changed, the backend answers `{id, id}` without reading the payload, and the
/// frontend checks the id. What remains is the ring code and the entry copies.
pub fn c_single_thread_light(memory: &mut SharedPages, rounds: u64, batch: u32) -> Option<u64> {
    // SAFETY: as for `c_single_thread`.
    let n = unsafe { ffi::xrp_single_thread_light(memory.as_ptr(), memory.len(), rounds, batch) };
    (n != u64::MAX).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_the_c_peer() {
        assert_eq!(
            c_layout(),
            [
                size_of::<TestRequest>(),
                size_of::<TestResponse>(),
                112,
                size_of::<Link>(),
                size_of::<CResult>(),
            ]
        );
    }

    #[test]
    fn ring_sizes_are_blkif_sized() {
        assert_eq!(c_ring_size(&SharedPages::new(1)), 32);
        assert_eq!(c_ring_size(&SharedPages::new(4)), 128);
        assert_eq!(c_ring_size(&SharedPages::new(16)), 512);
    }

    #[test]
    fn single_thread_round_trips() {
        let mut memory = SharedPages::new(1);
        assert_eq!(c_single_thread(&mut memory, 1000, 32), Some(32_000));
        assert_eq!(c_single_thread(&mut memory, 1000, 33), None);
        assert_eq!(c_single_thread_light(&mut memory, 1000, 32), Some(32_000));
    }

    #[test]
    fn c_front_against_c_back() {
        for pages in [1, 4] {
            for closed_loop in [false, true] {
                let memory = SharedPages::new(pages);
                let link = Link::new();
                c_shared_ring_init(&memory);
                let timeout = Duration::from_secs(20);
                let config = FrontConfig::new(200_000, 7, 1..=40, closed_loop, timeout);
                let (front, back) = std::thread::scope(|s| {
                    let back = s.spawn(|| c_back_serve(&memory, 200_000, &link, timeout));
                    let front = c_front_run(&memory, &config, &link);
                    (front, back.join().unwrap())
                });
                let (front, back) = (front.unwrap(), back.unwrap());
                assert_eq!(front.items, 200_000);
                assert_eq!(back.items, 200_000);
                assert_eq!(front.notifies, link.to_back.sent());
                assert_eq!(back.notifies, link.to_front.sent());
                // Both C waiters slept and woke: neither is still marked asleep.
                assert!(front.sleeps > 0 && back.sleeps > 0);
                assert!(!link.to_front.has_sleeper() && !link.to_back.has_sleeper());
            }
        }
    }

    #[test]
    fn a_wait_without_notification_times_out() {
        let link = Link::new();
        let mut stats = Stats::default();
        let mut waiter = Waiter::new();
        let timeout = Duration::from_millis(100);
        assert_eq!(
            waiter.wait(&link, &link.to_front, timeout, &mut stats),
            Err(PeerErrorKind::LostWakeup)
        );
        assert!(!link.to_front.has_sleeper());
        // A notification sent before the wait is latched: the wait returns at once.
        link.to_front.notify();
        assert_eq!(
            waiter.wait(&link, &link.to_front, timeout, &mut stats),
            Ok(())
        );
        assert_eq!((stats.sleeps, stats.wakes), (1, 1));
        link.abort();
        assert_eq!(
            waiter.wait(&link, &link.to_front, timeout, &mut stats),
            Err(PeerErrorKind::Aborted)
        );
    }

    #[test]
    fn same_item_functions_as_the_c_peer() {
        let request = TestRequest::new(12345);
        assert!(request.payload_is_intact());
        let mut bad = request;
        bad.payload[3] ^= 1;
        assert!(!bad.payload_is_intact());
        assert_ne!(TestResponse::answer(&bad), TestResponse::expected(12345));
    }
}
