//! xen-ring against Xen's own `io/ring.h` macros (compiled from Debian's `libxen-dev` by the
//! `xen-ring-c-peer` crate).
//!
//! - Geometry: our slot counts and `SHARED_RING_INIT` match the macros' for 1 to 16 pages.
//! - Lock step: one thread drives a C front/back pair and our front/back pair through the same
//!   random sequence of single macro-sized steps, on two separate rings, and compares every
//!   result (entries, notify decisions, final checks) and every byte of the shared pages.
//! - Two threads: our `FrontRing` against the C backend loop and the C frontend loop against our
//!   `BackRing`, on the same pages, for a 1-page and a 16-page ring, with random batch sizes;
//!   every payload is checked by the backend and every response by the frontend. Waits follow a
//!   final check and are bounded: a notification that a side wrongly suppressed shows up as a
//!   wait that times out, reported as a lost wake-up.
//!
//! - blkif: our `FrontRing` with xen-abi's x86_64 blkif types against a C backend on
//!   `blkif_back_ring_t` from `io/blkif.h`, which checks every field of every request.
//!
//! Request counts: 10^5 per run in debug builds, 2·10^6 with `--release`; the environment
//! variable `XEN_RING_INTEROP_COUNT` overrides both.

#[path = "interop_support/mod.rs"]
#[allow(dead_code)] // the single-thread loop is for the benchmark
mod interop_support;

use std::thread;
use std::time::Duration;

use interop_support::{ring_memory, rust_back_serve, rust_front_run, Back, Front};
use xen_abi::blkif::{BlkifRequestRw, BlkifRequestSegment, BlkifResponse, BLKIF_RING_SLOTS};
use xen_ring::{FrontRing, RingIndex, RingMemory};
use xen_ring_c_peer::{
    blkif, c_back_serve, c_blkif_back_serve, c_blkif_ring_size, c_front_run, c_layout, c_ring_size,
    c_shared_ring_init, CBackRing, CFrontRing, EventChannel, FrontConfig, Link, PeerError,
    PeerErrorKind, SharedPages, Stats, TestRequest, TestResponse, Xorshift,
};

/// How long one wait may last before it counts as a lost wake-up. Generous, since `cargo test`
/// runs several of these pairs at once on a small machine.
const WAIT_TIMEOUT: Duration = Duration::from_secs(20);

fn request_count() -> u64 {
    if let Some(n) = std::env::var("XEN_RING_INTEROP_COUNT")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    if cfg!(debug_assertions) {
        100_000
    } else {
        2_000_000
    }
}

// ------------------------------------------------------------------------------------------------
// Geometry.

#[test]
fn geometry_matches_the_c_macros() {
    let [request, response, entry, _, _] = c_layout();
    assert_eq!(request, size_of::<TestRequest>());
    assert_eq!(response, size_of::<TestResponse>());
    assert_eq!(entry, Front::ENTRY_SIZE);
    assert_eq!(entry, Back::ENTRY_SIZE);

    for order in 0..=4u32 {
        let ours = SharedPages::new(1 << order);
        let theirs = SharedPages::new(1 << order);
        {
            // SAFETY: the handle and its clones (in the rings below) are dropped at the end of
            // this block, before `ours`.
            let memory = unsafe { ring_memory(&ours) };
            // Garbage everywhere first, so that init has to clear what it must.
            let garbage = vec![0xa5; memory.size_bytes()];
            memory.write_bytes(0, &garbage).unwrap();
            let front = Front::init(memory.clone()).unwrap();
            let back = Back::attach(memory.clone()).unwrap();
            assert_eq!(front.slots(), c_ring_size(&theirs), "order {order}");
            assert_eq!(back.slots(), c_ring_size(&theirs), "order {order}");
        }
        {
            // SAFETY: as above, for `theirs`.
            let memory = unsafe { ring_memory(&theirs) };
            memory
                .write_bytes(0, &vec![0xa5; memory.size_bytes()])
                .unwrap();
        }
        c_shared_ring_init(&theirs);
        assert_eq!(
            ours.snapshot(),
            theirs.snapshot(),
            "SHARED_RING_INIT, order {order}"
        );
    }
    // blkif's sizes: 32 slots in one page, 512 in sixteen.
    assert_eq!(c_ring_size(&SharedPages::new(1)), 32);
    assert_eq!(c_ring_size(&SharedPages::new(16)), 512);
}

// ------------------------------------------------------------------------------------------------
// Lock step.

/// Runs `steps` random steps on a C pair and on our pair side by side and compares everything.
fn lock_step(pages: usize, steps: u64, seed: u64) {
    let c_pages = SharedPages::new(pages);
    let our_pages = SharedPages::new(pages);
    // SAFETY: the handle and its clones (in the rings) are dropped at the end of this function,
    // before `our_pages`, which was declared earlier.
    let memory = unsafe { ring_memory(&our_pages) };
    let mut c_front = CFrontRing::init(&c_pages);
    let mut c_back = CBackRing::init(&c_pages);
    let mut front = Front::init(memory.clone()).unwrap();
    let mut back = Back::attach(memory.clone()).unwrap();
    assert_eq!(front.slots(), c_front.slots());
    assert_eq!(back.slots(), c_back.slots());

    let mut rng = Xorshift::new(seed);
    let mut next_id = 0u64;
    let mut next_rsp = 0u64;
    let mut unanswered = std::collections::VecDeque::new();
    let max = front.slots() + 3;
    let mut counts = [0u64; 8];

    for step in 0..steps {
        let op = rng.in_range(0, 7);
        let k = rng.in_range(1, max);
        let ctx = |what: &str| format!("step {step} (op {op}, k {k}): {what}");
        counts[op as usize] += 1;
        match op {
            // Front: push up to k requests (our push refuses exactly when C's free count is 0).
            0 => {
                for _ in 0..k {
                    let req = TestRequest::new(next_id);
                    let c_ok = c_front.push(&req);
                    let ours = front.push_request(&req);
                    assert_eq!(c_ok, ours.is_ok(), "{}", ctx("push"));
                    if !c_ok {
                        break;
                    }
                    next_id += 1;
                }
            }
            1 => assert_eq!(
                c_front.push_and_check_notify(),
                front.push_requests_and_check_notify(),
                "{}",
                ctx("RING_PUSH_REQUESTS_AND_CHECK_NOTIFY")
            ),
            2 => {
                for _ in 0..k {
                    let c = c_front.take();
                    let ours = front.take_response().unwrap();
                    assert_eq!(c, ours, "{}", ctx("take response"));
                    match c {
                        Some(rsp) => {
                            assert_eq!(rsp, TestResponse::expected(next_rsp), "{}", ctx("rsp"));
                            next_rsp += 1;
                        }
                        None => break,
                    }
                }
            }
            3 => assert_eq!(
                c_front.final_check(),
                front.final_check_for_responses().unwrap(),
                "{}",
                ctx("RING_FINAL_CHECK_FOR_RESPONSES")
            ),
            4 => {
                for _ in 0..k {
                    let c = c_back.take();
                    let ours = back.take_request().unwrap();
                    assert_eq!(c, ours, "{}", ctx("take request"));
                    match c {
                        Some(req) => {
                            assert!(req.payload_is_intact(), "{}", ctx("payload"));
                            unanswered.push_back(req);
                        }
                        None => break,
                    }
                }
            }
            5 => {
                for _ in 0..k {
                    let Some(req) = unanswered.pop_front() else {
                        break;
                    };
                    let rsp = TestResponse::answer(&req);
                    assert!(c_back.respond(&rsp), "{}", ctx("respond"));
                    back.push_response(&rsp).unwrap();
                }
            }
            6 => assert_eq!(
                c_back.push_and_check_notify(),
                back.push_responses_and_check_notify(),
                "{}",
                ctx("RING_PUSH_RESPONSES_AND_CHECK_NOTIFY")
            ),
            _ => assert_eq!(
                c_back.final_check(),
                back.final_check_for_requests().unwrap(),
                "{}",
                ctx("RING_FINAL_CHECK_FOR_REQUESTS")
            ),
        }
        assert_eq!(
            [
                c_front.req_prod_pvt(),
                c_front.rsp_cons(),
                c_front.free_requests()
            ],
            [
                front.req_prod_pvt(),
                front.rsp_cons(),
                front.free_requests()
            ],
            "{}",
            ctx("front private indices")
        );
        assert_eq!(
            [c_back.rsp_prod_pvt(), c_back.req_cons()],
            [back.rsp_prod_pvt(), back.req_cons()],
            "{}",
            ctx("back private indices")
        );
        let c_header = c_pages.snapshot_range(0, 64);
        let our_header = our_pages.snapshot_range(0, 64);
        assert_eq!(c_header, our_header, "{}", ctx("shared header"));
        if step % 256 == 0 {
            assert!(
                c_pages.snapshot() == our_pages.snapshot(),
                "{}",
                ctx("shared pages")
            );
        }
    }
    assert!(
        c_pages.snapshot() == our_pages.snapshot(),
        "shared pages at the end"
    );
    // Every kind of step ran, and the rings went round many times.
    assert!(counts.iter().all(|&n| n > steps / 16), "{counts:?}");
    assert!(
        next_rsp > 4 * u64::from(front.slots()),
        "only {next_rsp} responses"
    );
}

fn lock_step_count() -> u64 {
    if cfg!(debug_assertions) {
        50_000
    } else {
        1_000_000
    }
}

#[test]
fn lock_step_with_the_c_macros_one_page() {
    lock_step(1, lock_step_count(), 0x1234_5678);
}

#[test]
fn lock_step_with_the_c_macros_sixteen_pages() {
    lock_step(16, lock_step_count(), 0x8765_4321);
}

// ------------------------------------------------------------------------------------------------
// Two threads.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Impl {
    C,
    Rust,
}

/// Runs a frontend of `front_impl` against a backend of `back_impl` on a fresh ring of `pages`
/// pages, one thread each; returns both sides' counters after checking the notification books.
fn run_pair(front_impl: Impl, back_impl: Impl, pages: usize, config: FrontConfig) -> [Stats; 2] {
    let shared = SharedPages::new(pages);
    let link = Link::new();
    let count = config.count;
    let (front, back) = {
        // SAFETY: the handle and its clones (moved into the rings, which live in the scope
        // below) are dropped at the end of this block, before `shared`.
        let memory = unsafe { ring_memory(&shared) };
        // The frontend initialises the shared ring before either side starts.
        let mut our_front = match front_impl {
            Impl::Rust => Some(Front::init(memory.clone()).unwrap()),
            Impl::C => {
                c_shared_ring_init(&shared);
                None
            }
        };
        let mut our_back = match back_impl {
            Impl::Rust => Some(Back::attach(memory.clone()).unwrap()),
            Impl::C => None,
        };
        let outcome = |r: Result<Stats, Box<PeerError>>| {
            if r.is_err() {
                link.abort();
            }
            r
        };
        thread::scope(|s| {
            let back = s.spawn(|| {
                outcome(match our_back.as_mut() {
                    Some(back) => rust_back_serve(back, count, &link, WAIT_TIMEOUT),
                    None => c_back_serve(&shared, count, &link, WAIT_TIMEOUT),
                })
            });
            let front = outcome(match our_front.as_mut() {
                Some(front) => rust_front_run(front, &config, &link),
                None => c_front_run(&shared, &config, &link),
            });
            (front, back.join().expect("backend thread panicked"))
        })
    };
    let what = format!(
        "{front_impl:?} front / {back_impl:?} back, {pages} page(s), {}, batches {}..={}",
        if config.closed_loop != 0 {
            "ping-pong"
        } else {
            "streaming"
        },
        config.batch_min,
        config.batch_max
    );
    let (front, back) = match (front, back) {
        (Ok(f), Ok(b)) => (f, b),
        (f, b) => {
            // Report the root cause first: the side that did not merely abort.
            let errors: Vec<_> = [f.err(), b.err()].into_iter().flatten().collect();
            let first = errors
                .iter()
                .find(|e| e.kind != PeerErrorKind::Aborted)
                .unwrap_or(&errors[0]);
            panic!("{what}: {first}");
        }
    };

    assert_eq!(front.items, count, "{what}: responses checked");
    assert_eq!(back.items, count, "{what}: requests served");
    // Every notification counted was sent on the right channel and no other was.
    assert_eq!(link.to_back.sent(), front.notifies, "{what}");
    assert_eq!(link.to_front.sent(), back.notifies, "{what}");
    // A notification only follows a push, and a wake consumes at least one notification.
    assert!(
        front.notifies <= front.pushes && back.notifies <= back.pushes,
        "{what}"
    );
    assert!(
        back.wakes <= front.notifies && front.wakes <= back.notifies,
        "{what}"
    );
    eprintln!(
        "{what}: {count} requests; front pushes {} notifies {} sleeps {}; back pushes {} \
         notifies {} sleeps {}",
        front.pushes, front.notifies, front.sleeps, back.pushes, back.notifies, back.sleeps
    );
    [front, back]
}

fn streaming(seed: u64) -> FrontConfig {
    // Batches up to twice a one-page ring, cut to the free slots: the ring fills, wraps and
    // drains in every pattern.
    FrontConfig::new(request_count(), seed, 1..=64, false, WAIT_TIMEOUT)
}

fn ping_pong(seed: u64) -> FrontConfig {
    // Each batch is answered in full before the next: both sides sleep and wake all the time.
    FrontConfig::new(request_count() / 2, seed, 1..=40, true, WAIT_TIMEOUT)
}

#[test]
fn our_front_against_c_back_one_page() {
    let [front, back] = run_pair(Impl::Rust, Impl::C, 1, streaming(1));
    assert!(front.pushes > 0 && back.pushes > 0);
    run_pair(Impl::Rust, Impl::C, 1, ping_pong(2));
}

#[test]
fn our_front_against_c_back_sixteen_pages() {
    run_pair(Impl::Rust, Impl::C, 16, streaming(3));
    run_pair(Impl::Rust, Impl::C, 16, ping_pong(4));
}

#[test]
fn c_front_against_our_back_one_page() {
    run_pair(Impl::C, Impl::Rust, 1, streaming(5));
    run_pair(Impl::C, Impl::Rust, 1, ping_pong(6));
}

#[test]
fn c_front_against_our_back_sixteen_pages() {
    run_pair(Impl::C, Impl::Rust, 16, streaming(7));
    run_pair(Impl::C, Impl::Rust, 16, ping_pong(8));
}

#[test]
fn our_front_against_our_back_four_pages() {
    run_pair(Impl::Rust, Impl::Rust, 4, streaming(9));
    run_pair(Impl::Rust, Impl::Rust, 4, ping_pong(10));
}

// ------------------------------------------------------------------------------------------------
// The stall detector itself: a side that withholds a needed notification is caught.

/// Waits (bounded) until `index` in the shared header reads `value`.
fn wait_for_index(memory: &RingMemory, index: RingIndex, value: u32) {
    let start = std::time::Instant::now();
    while memory.load_index(index) != value {
        assert!(
            start.elapsed() < WAIT_TIMEOUT,
            "{index:?} never became {value}"
        );
        thread::yield_now();
    }
}

/// Waits (bounded) until a waiter sleeps on `channel`.
fn wait_for_sleeper(channel: &EventChannel) {
    let start = std::time::Instant::now();
    while !channel.has_sleeper() {
        assert!(
            start.elapsed() < WAIT_TIMEOUT,
            "the peer never went to sleep"
        );
        thread::yield_now();
    }
}

#[test]
fn a_withheld_request_notification_is_reported_as_lost_wake_up() {
    let shared = SharedPages::new(1);
    let link = Link::new();
    let back = {
        // SAFETY: the handle and its clones are dropped at the end of this block.
        let memory = unsafe { ring_memory(&shared) };
        let mut front = Front::init(memory.clone()).unwrap();
        thread::scope(|s| {
            let back = s.spawn(|| c_back_serve(&shared, 2, &link, Duration::from_millis(300)));
            // Request 0, notified as the protocol says.
            front.push_request(&TestRequest::new(0)).unwrap();
            if front.push_requests_and_check_notify() {
                link.to_back.notify();
            }
            // Its answer tells that the backend served it; req_event = 2 that it then made its
            // final check; the sleeper flag that the check found nothing and it went to sleep.
            wait_for_index(&memory, RingIndex::RspProd, 1);
            wait_for_index(&memory, RingIndex::ReqEvent, 2);
            wait_for_sleeper(&link.to_back);
            // Request 1: the backend asked for this event, and we withhold it.
            front.push_request(&TestRequest::new(1)).unwrap();
            assert!(front.push_requests_and_check_notify());
            back.join().unwrap()
        })
    };
    let error = back.expect_err("the backend must report the stall");
    assert_eq!(error.kind, PeerErrorKind::LostWakeup, "{error}");
    assert!(error.to_string().contains("lost wake-up"), "{error}");
}

#[test]
fn a_withheld_response_notification_is_reported_as_lost_wake_up() {
    let shared = SharedPages::new(1);
    let link = Link::new();
    c_shared_ring_init(&shared);
    let front = {
        // SAFETY: the handle and its clones are dropped at the end of this block.
        let memory = unsafe { ring_memory(&shared) };
        let mut back = Back::attach(memory.clone()).unwrap();
        let config = FrontConfig::new(1, 1, 1..=1, true, Duration::from_millis(300));
        thread::scope(|s| {
            let front = s.spawn(|| c_front_run(&shared, &config, &link));
            // The frontend pushed request 0 and, after its final check, waits for rsp_prod 1.
            wait_for_index(&memory, RingIndex::ReqProd, 1);
            wait_for_index(&memory, RingIndex::RspEvent, 1);
            let req = loop {
                if let Some(req) = back.take_request().unwrap() {
                    break req;
                }
                thread::yield_now();
            };
            // Once the frontend sleeps, answer without the event it asked for.
            wait_for_sleeper(&link.to_front);
            back.push_response(&TestResponse::answer(&req)).unwrap();
            assert!(back.push_responses_and_check_notify());
            front.join().unwrap()
        })
    };
    let error = front.expect_err("the frontend must report the stall");
    assert_eq!(error.kind, PeerErrorKind::LostWakeup, "{error}");
}

// ------------------------------------------------------------------------------------------------
// blkif: the real protocol types against Xen's own blkif ring.

type BlkFront = FrontRing<BlkifRequestRw, BlkifResponse>;

/// Request `n` of the pattern the C blkif backend checks.
fn blkif_request(n: u64) -> BlkifRequestRw {
    let nr = blkif::nr_segments(n);
    let mut seg = [BlkifRequestSegment::new(0, 0, 0); blkif::MAX_SEGMENTS];
    for (i, s) in seg.iter_mut().enumerate().take(usize::from(nr)) {
        let (gref, first, last) = blkif::segment(n, i);
        *s = BlkifRequestSegment::new(gref, first, last);
    }
    BlkifRequestRw {
        operation: blkif::operation(n),
        nr_segments: nr,
        handle: blkif::handle(n),
        pad0: [0; 4],
        id: blkif::id(n),
        sector_number: blkif::sector_number(n),
        seg,
    }
}

/// Issues `count` blkif requests in random batches and checks every response's id, operation
/// and status (its padding holds whatever the backend left there, as with a real backend).
fn blkif_front_run(front: &mut BlkFront, count: u64, seed: u64, link: &Link) -> Result<(), String> {
    let mut rng = Xorshift::new(seed);
    let mut waiter = xen_ring_c_peer::Waiter::new();
    let mut stats = Stats::default();
    let (mut sent, mut received) = (0u64, 0u64);
    while received < count {
        if sent < count && !front.is_full() {
            let batch = u64::from(rng.in_range(1, 48))
                .min(u64::from(front.free_requests()))
                .min(count - sent);
            for _ in 0..batch {
                front
                    .push_request(&blkif_request(sent))
                    .map_err(|e| e.to_string())?;
                sent += 1;
            }
            if front.push_requests_and_check_notify() {
                link.to_back.notify();
            }
        }
        while let Some(rsp) = front.take_response().map_err(|e| e.to_string())? {
            let want = (
                blkif::id(received),
                blkif::operation(received),
                blkif::status(received),
            );
            if (rsp.id, rsp.operation, rsp.status) != want {
                return Err(format!("response {received}: {rsp:?}, want {want:?}"));
            }
            received += 1;
        }
        if received == count || (sent < count && !front.is_full()) {
            continue;
        }
        if !front
            .final_check_for_responses()
            .map_err(|e| e.to_string())?
        {
            waiter
                .wait(link, &link.to_front, WAIT_TIMEOUT, &mut stats)
                .map_err(|kind| format!("{kind:?} at response {received} (lost wake-up?)"))?;
        }
    }
    Ok(())
}

fn blkif_pair(pages: usize, seed: u64) {
    let shared = SharedPages::new(pages);
    let link = Link::new();
    let count = request_count();
    let (front, back) = {
        // SAFETY: the handle and its clone in the ring are dropped at the end of this block.
        let memory = unsafe { ring_memory(&shared) };
        let mut front = BlkFront::init(memory.clone()).unwrap();
        assert_eq!(front.slots(), c_blkif_ring_size(&shared));
        thread::scope(|s| {
            let back = s.spawn(|| {
                let r = c_blkif_back_serve(&shared, count, &link, WAIT_TIMEOUT);
                if r.is_err() {
                    link.abort();
                }
                r
            });
            let front = blkif_front_run(&mut front, count, seed, &link);
            if front.is_err() {
                link.abort();
            }
            (front, back.join().unwrap())
        })
    };
    if let Err(e) = &back {
        if e.kind != PeerErrorKind::Aborted || front.is_ok() {
            panic!("{e}");
        }
    }
    front.unwrap();
    assert_eq!(back.unwrap().items, count);
}

#[test]
fn blkif_geometry_matches_the_c_macros() {
    for order in 0..=4u32 {
        let shared = SharedPages::new(1 << order);
        // SAFETY: the handle and its clone in the ring are dropped at the end of this iteration.
        let memory = unsafe { ring_memory(&shared) };
        let front = BlkFront::init(memory).unwrap();
        assert_eq!(front.slots(), c_blkif_ring_size(&shared), "order {order}");
    }
    assert_eq!(BLKIF_RING_SLOTS, c_blkif_ring_size(&SharedPages::new(1)));
}

#[test]
fn our_blkif_front_against_c_blkif_back_one_page() {
    blkif_pair(1, 11);
}

#[test]
fn our_blkif_front_against_c_blkif_back_sixteen_pages() {
    blkif_pair(16, 12);
}
