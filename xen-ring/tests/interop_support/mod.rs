//! The Rust side of the interoperability tests and benchmarks: frontend and backend loops built
//! on xen-ring's `FrontRing` / `BackRing`, written the way a driver uses them and mirroring the C
//! peer's loops in `c-peer/csrc/peer.c` step for step (same protocol, same batching, same
//! event-channel model), so that either end can face either implementation and the two
//! implementations can be timed on equal terms.
//!
//! Shared by `tests/interop.rs` and `benches/roundtrip.rs` (included there with `#[path]`).

use std::time::Duration;

use xen_ring::{BackRing, FrontRing, RingError, RingMemory};
use xen_ring_c_peer::{
    FrontConfig, Link, PeerError, PeerErrorKind, SharedPages, Stats, TestRequest, TestResponse,
    Waiter, Xorshift,
};

/// Our frontend on the test protocol.
pub type Front = FrontRing<TestRequest, TestResponse>;
/// Our backend on the test protocol.
pub type Back = BackRing<TestRequest, TestResponse>;

/// A `RingMemory` handle on `pages`.
///
/// # Safety
///
/// The handle and every clone of it must be dropped before `pages` is.
pub unsafe fn ring_memory(pages: &SharedPages) -> RingMemory {
    let order = pages.order().expect("ring pages must be a power of two");
    // SAFETY: `pages` is a live, page-aligned allocation of 2^order pages that nothing accesses
    // through Rust references; the caller drops the handle (and clones) before the allocation.
    unsafe { RingMemory::new(pages.as_ptr(), order) }.expect("page-aligned ring memory")
}

/// The four shared indices: `req_prod`, `req_event`, `rsp_prod`, `rsp_event`.
pub fn shared_indices(memory: &RingMemory) -> [u32; 4] {
    use xen_ring::RingIndex::{ReqEvent, ReqProd, RspEvent, RspProd};
    [ReqProd, ReqEvent, RspProd, RspEvent].map(|which| memory.load_index(which))
}

/// Serves `count` requests on `back`, as `xrp_back_serve` does: take each request, check its id
/// and payload, answer it; publish with the notify decision after each pass; final check; wait on
/// `link.to_back` only when that says there is nothing to do.
pub fn rust_back_serve(
    back: &mut Back,
    count: u64,
    link: &Link,
    timeout: Duration,
) -> Result<Stats, Box<PeerError>> {
    let mut stats = Stats::default();
    let mut waiter = Waiter::new();
    let mut served = 0u64;
    macro_rules! fail {
        ($kind:expr, $expected:expr, $got:expr, $detail:expr) => {{
            stats.items = served;
            return Err(Box::new(PeerError {
                side: "Rust back",
                kind: $kind,
                at: served,
                expected: $expected,
                got: $got,
                shared: shared_indices(back.memory()),
                private: [back.rsp_prod_pvt(), back.req_cons()],
                stats,
                detail: $detail,
            }));
        }};
    }
    let ring_error = |e: RingError| (PeerErrorKind::Ring, e.to_string());

    while served < count {
        // One pass over the requests visible now, each answered as it is taken (the C loop reads
        // `req_prod` once, copies each request and writes its response into the ring).
        let mut bad: Option<(PeerErrorKind, u64, u64, String)> = None;
        let answered = back.serve(|req| {
            if bad.is_none() {
                if req.id != served {
                    bad = Some((PeerErrorKind::BadRequest, served, req.id, String::new()));
                } else if !req.payload_is_intact() {
                    let detail = format!("payload {:x?}", req.payload);
                    bad = Some((PeerErrorKind::BadRequest, 0, 0, detail));
                }
            }
            served += 1;
            TestResponse::answer(&req)
        });
        if let Some((kind, expected, got, detail)) = bad {
            fail!(kind, expected, got, detail)
        }
        if let Err(e) = answered {
            let (kind, detail) = ring_error(e);
            fail!(kind, 0, 0, detail)
        }
        stats.pushes += 1;
        if back.push_responses_and_check_notify() {
            stats.notifies += 1;
            link.to_front.notify();
        }
        if served == count {
            break;
        }
        stats.final_checks += 1;
        match back.final_check_for_requests() {
            Ok(true) => {}
            Ok(false) => {
                if let Err(kind) = waiter.wait(link, &link.to_back, timeout, &mut stats) {
                    fail!(kind, 0, 0, String::new())
                }
                if back.unconsumed_requests() == Ok(0) {
                    stats.idle_wakes += 1;
                }
            }
            Err(e) => {
                let (kind, detail) = ring_error(e);
                fail!(kind, 0, 0, detail)
            }
        }
    }
    stats.items = served;
    Ok(stats)
}

/// Issues `config.count` requests on `front` and checks every response, as `xrp_front_run` does.
pub fn rust_front_run(
    front: &mut Front,
    config: &FrontConfig,
    link: &Link,
) -> Result<Stats, Box<PeerError>> {
    let mut stats = Stats::default();
    let mut waiter = Waiter::new();
    let mut rng = Xorshift::new(config.seed);
    let (mut sent, mut received) = (0u64, 0u64);
    let timeout = Duration::from_nanos(config.timeout_ns);
    let closed_loop = config.closed_loop != 0;
    macro_rules! fail {
        ($kind:expr, $expected:expr, $got:expr, $detail:expr) => {{
            stats.items = received;
            return Err(Box::new(PeerError {
                side: "Rust front",
                kind: $kind,
                at: received,
                expected: $expected,
                got: $got,
                shared: shared_indices(front.memory()),
                private: [front.req_prod_pvt(), front.rsp_cons()],
                stats,
                detail: $detail,
            }));
        }};
    }
    if config.batch_min == 0 || config.batch_max < config.batch_min {
        fail!(PeerErrorKind::BadConfig, 0, 0, String::new())
    }

    while received < config.count {
        let may_send = !closed_loop || sent == received;
        if sent < config.count && may_send && !front.is_full() {
            let batch = u64::from(rng.in_range(config.batch_min, config.batch_max))
                .min(u64::from(front.free_requests()))
                .min(config.count - sent);
            for _ in 0..batch {
                if let Err(e) = front.push_request(&TestRequest::new(sent)) {
                    fail!(PeerErrorKind::Ring, 0, 0, e.to_string())
                }
                sent += 1;
            }
            stats.pushes += 1;
            if front.push_requests_and_check_notify() {
                stats.notifies += 1;
                link.to_back.notify();
            }
        }

        // One pass over the responses visible now (C: `rp = sring->rsp_prod; xen_rmb();`).
        let available = match front.unconsumed_responses() {
            Ok(n) => n,
            Err(e) => fail!(PeerErrorKind::Ring, 0, 0, e.to_string()),
        };
        for _ in 0..available {
            let rsp = match front.take_response() {
                Ok(Some(rsp)) => rsp,
                Ok(None) => fail!(PeerErrorKind::Ring, 0, 0, "response vanished".into()),
                Err(e) => fail!(PeerErrorKind::Ring, 0, 0, e.to_string()),
            };
            if rsp.id != received {
                fail!(PeerErrorKind::BadResponse, received, rsp.id, String::new())
            }
            let want = TestResponse::expected(received);
            if rsp.checksum != want.checksum {
                fail!(
                    PeerErrorKind::BadResponse,
                    want.checksum,
                    rsp.checksum,
                    String::new()
                )
            }
            received += 1;
        }
        if received == config.count {
            break;
        }
        // Sleep only when there is nothing to send and nothing to take.
        if sent < config.count && !front.is_full() && (!closed_loop || sent == received) {
            continue;
        }
        stats.final_checks += 1;
        match front.final_check_for_responses() {
            Ok(true) => {}
            Ok(false) => {
                if let Err(kind) = waiter.wait(link, &link.to_front, timeout, &mut stats) {
                    fail!(kind, 0, 0, String::new())
                }
                if front.unconsumed_responses() == Ok(0) {
                    stats.idle_wakes += 1;
                }
            }
            Err(e) => fail!(PeerErrorKind::Ring, 0, 0, e.to_string()),
        }
    }
    stats.items = received;
    Ok(stats)
}

/// Both of our ends in one thread, as `xrp_single_thread` does: `rounds` times, push `batch`
/// requests, serve them, take and check the responses. Returns the number of responses checked,
/// or `None` on a mismatch, a ring error or a batch larger than the ring.
pub fn rust_single_thread(memory: &RingMemory, rounds: u64, batch: u32) -> Option<u64> {
    let mut front = Front::init(memory.clone()).ok()?;
    let mut back = Back::attach(memory.clone()).ok()?;
    if batch == 0 || batch > front.slots() {
        return None;
    }
    let (mut next, mut received, mut notifies) = (0u64, 0u64, 0u64);
    for _ in 0..rounds {
        for _ in 0..batch {
            front.push_request(&TestRequest::new(next)).ok()?;
            next += 1;
        }
        notifies += u64::from(front.push_requests_and_check_notify());

        loop {
            for _ in 0..back.unconsumed_requests().ok()? {
                let req = back.take_request().ok()??;
                back.push_response(&TestResponse::answer(&req)).ok()?;
            }
            notifies += u64::from(back.push_responses_and_check_notify());
            if !back.final_check_for_requests().ok()? {
                break;
            }
        }

        loop {
            for _ in 0..front.unconsumed_responses().ok()? {
                let rsp = front.take_response().ok()??;
                if rsp != TestResponse::expected(received) {
                    return None;
                }
                received += 1;
            }
            if !front.final_check_for_responses().ok()? {
                break;
            }
        }
    }
    std::hint::black_box(notifies);
    Some(received)
}

/// [`rust_single_thread`] with almost no work besides the ring, as `xrp_single_thread_light`:
/// every request is one template with only its id changed, the backend answers `{id, id}`, the
/// frontend checks the id.
pub fn rust_single_thread_light(memory: &RingMemory, rounds: u64, batch: u32) -> Option<u64> {
    let mut front = Front::init(memory.clone()).ok()?;
    let mut back = Back::attach(memory.clone()).ok()?;
    if batch == 0 || batch > front.slots() {
        return None;
    }
    let mut template = TestRequest::new(0);
    let (mut next, mut received, mut notifies) = (0u64, 0u64, 0u64);
    for _ in 0..rounds {
        for _ in 0..batch {
            template.id = next;
            front.push_request(&template).ok()?;
            next += 1;
        }
        notifies += u64::from(front.push_requests_and_check_notify());

        loop {
            for _ in 0..back.unconsumed_requests().ok()? {
                let req = back.take_request().ok()??;
                let rsp = TestResponse {
                    id: req.id,
                    checksum: req.id,
                };
                back.push_response(&rsp).ok()?;
            }
            notifies += u64::from(back.push_responses_and_check_notify());
            if !back.final_check_for_requests().ok()? {
                break;
            }
        }

        loop {
            for _ in 0..front.unconsumed_responses().ok()? {
                let rsp = front.take_response().ok()??;
                if rsp.id != received || rsp.checksum != received {
                    return None;
                }
                received += 1;
            }
            if !front.final_check_for_responses().ok()? {
                break;
            }
        }
    }
    std::hint::black_box(notifies);
    Some(received)
}
