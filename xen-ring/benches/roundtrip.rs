//! Round trips per second through a shared ring: xen-ring against Xen's `io/ring.h` macros
//! compiled at `-O2` (the `xen-ring-c-peer` crate), in the same run.
//!
//! A round trip is one request produced by the frontend, consumed by the backend, answered, and
//! the response consumed by the frontend, with the payload checked on both sides (the same work
//! on both implementations: see `tests/interop_support/mod.rs` and `c-peer/csrc/peer.c`).
//!
//! Modes:
//! - `ping-pong`: two threads; the frontend pushes a batch of B requests with one push (and
//!   notify decision), then takes all B responses before the next batch. B = 1 is pure latency.
//! - `stream`: two threads; the frontend pushes batches of up to B whenever the ring has room and
//!   takes responses as they come, so the ring stays busy.
//! - `1 thread`: both ends in one thread, B requests per round: the cost of the ring code and the
//!   payload work, without cross-core cache traffic or waiting.
//! - `ring only`: as `1 thread`, with almost no work besides the ring (every request is one
//!   template with its id changed; the answer is `{id, id}`): the ring code and entry copies.
//!
//! The two-thread modes use the modelled event channel of the C peer (a counter in shared memory;
//! a waiter polls it, yielding every `--spins` polls) on both implementations; a side waits only
//! after a final check. The frontend runs on CPU 0 and the backend on CPU 1 (`--no-pin` to let
//! the scheduler choose), and by default a waiter polls 2^20 times between yields, so a wake-up
//! costs a cache-line transfer, not a trip through the scheduler. On a busy machine, run it at a
//! high priority (`nice -n -20`), or the numbers measure the other load.
//!
//! Each configuration runs `--reps` times (default 15), the implementations back to back in
//! alternating order; the table gives the median rate of each, and as the ratio the median of the
//! per-repetition ratios ours/C (each from two runs made seconds apart, which cancels most of the
//! drift of a machine's background load). Run with
//! `cargo bench -p xen-ring --bench roundtrip [-- options]`: `--reps N`, `--ms N` (target duration
//! of one run, default 60), `--filter TEXT`, `--spins N`, `--no-pin`, `--markdown` (the table
//! as Markdown).
//!
//! The two-thread modes also run a control, *C front in Rust*: the C frontend's loop transcribed
//! into Rust statement by statement (raw atomic accesses where the macros touch the shared page,
//! none of xen-ring's copies or checks), against the C backend. Where it trails the C frontend,
//! the row measures how code from the two compilers lines up in time against the other CPU, not
//! the cost of xen-ring.
//!
//! `--single c|ours|c-light|ours-light PAGES BATCH ROUNDS` runs one single-thread measurement and nothing else, for
//! counting instructions under `valgrind --tool=cachegrind` (independent of machine load).

#[path = "../tests/interop_support/mod.rs"]
#[allow(dead_code)]
mod interop_support;

use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use interop_support::{
    ring_memory, rust_back_serve, rust_front_run, rust_single_thread, rust_single_thread_light,
    Back, Front,
};
use xen_ring_c_peer::{
    c_back_serve, c_front_run, c_shared_ring_init, c_single_thread, c_single_thread_light,
    pin_current_thread, FrontConfig, Link, SharedPages,
};

const WAIT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    PingPong,
    Stream,
    SingleThread,
    /// One thread, and almost no work besides the ring (a template request, `{id, id}` answers).
    RingOnly,
}

impl Mode {
    fn single_thread(self) -> bool {
        matches!(self, Mode::SingleThread | Mode::RingOnly)
    }

    fn name(self) -> &'static str {
        match self {
            Mode::PingPong => "ping-pong",
            Mode::Stream => "stream",
            Mode::SingleThread => "1 thread",
            Mode::RingOnly => "ring only",
        }
    }
}

/// Which implementation runs each end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pair {
    /// Both ends from the C macros.
    C,
    /// Both ends from xen-ring.
    Ours,
    /// Our frontend, the C backend.
    OurFront,
    /// The C frontend, our backend.
    OurBack,
    /// The control: the C frontend's loop transcribed into Rust (no xen-ring), the C backend.
    Transcribed,
}

#[derive(Clone, Copy, Debug)]
struct Config {
    mode: Mode,
    pages: usize,
    batch: u32,
}

impl Config {
    fn label(&self) -> String {
        format!(
            "{:<9} {:>2} page{} B={:<2}",
            self.mode.name(),
            self.pages,
            if self.pages == 1 { " " } else { "s" },
            self.batch
        )
    }
}

/// Runs `count` round trips of `pair` in `config`; returns the elapsed time.
fn run(config: Config, pair: Pair, count: u64, options: &Options) -> Duration {
    let shared = SharedPages::new(config.pages);
    if config.mode.single_thread() {
        let rounds = count / u64::from(config.batch);
        let expected = rounds * u64::from(config.batch);
        let start = Instant::now();
        let light = config.mode == Mode::RingOnly;
        let done = match pair {
            Pair::C => {
                let mut shared = shared;
                if light {
                    c_single_thread_light(&mut shared, rounds, config.batch)
                } else {
                    c_single_thread(&mut shared, rounds, config.batch)
                }
            }
            _ => {
                // SAFETY: the handle and its clones (in the rings inside the call) are dropped
                // before `shared`, at the end of this arm.
                let memory = unsafe { ring_memory(&shared) };
                if light {
                    rust_single_thread_light(&memory, rounds, config.batch)
                } else {
                    rust_single_thread(&memory, rounds, config.batch)
                }
            }
        };
        let elapsed = start.elapsed();
        assert_eq!(done, Some(expected), "{config:?} {pair:?}");
        return elapsed;
    }

    let closed_loop = config.mode == Mode::PingPong;
    let front_config = FrontConfig::new(
        count,
        1,
        config.batch..=config.batch,
        closed_loop,
        WAIT_TIMEOUT,
    );
    let link = Link::with_spins(options.spins);
    let barrier = Barrier::new(2);
    let our_front_side = matches!(pair, Pair::Ours | Pair::OurFront);
    let transcribed_front = pair == Pair::Transcribed;
    let our_back_side = matches!(pair, Pair::Ours | Pair::OurBack);
    // SAFETY: the handle and its clones (moved into the rings, which live until the end of this
    // function) are dropped before `shared`, which was declared earlier.
    let memory = unsafe { ring_memory(&shared) };
    let mut front = if our_front_side {
        Some(Front::init(memory.clone()).expect("front"))
    } else {
        c_shared_ring_init(&shared);
        None
    };
    let mut back = our_back_side.then(|| Back::attach(memory.clone()).expect("back"));

    let (elapsed, front_result, back_result) = thread::scope(|s| {
        let back_thread = s.spawn(|| {
            if options.pin {
                pin_current_thread(1);
            }
            barrier.wait();
            let result = match back.as_mut() {
                Some(back) => rust_back_serve(back, count, &link, WAIT_TIMEOUT),
                None => c_back_serve(&shared, count, &link, WAIT_TIMEOUT),
            };
            if result.is_err() {
                link.abort();
            }
            result
        });
        barrier.wait();
        let start = Instant::now();
        let result = match front.as_mut() {
            Some(front) => rust_front_run(front, &front_config, &link),
            None if transcribed_front => transcribed::front_run(&shared, &front_config, &link),
            None => c_front_run(&shared, &front_config, &link),
        };
        let elapsed = start.elapsed();
        if result.is_err() {
            link.abort();
        }
        (elapsed, result, back_thread.join().expect("backend thread"))
    });
    if let Err(e) = front_result {
        panic!("{config:?} {pair:?}: {e}");
    }
    if let Err(e) = back_result {
        panic!("{config:?} {pair:?}: {e}");
    }
    elapsed
}

/// The 1-minute load average, to print with the results.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

struct Options {
    reps: usize,
    target: Duration,
    filter: Option<String>,
    single: Option<(Pair, Config, u64)>,
    spins: u32,
    pin: bool,
    markdown: bool,
}

fn options() -> Options {
    let mut options = Options {
        reps: 15,
        target: Duration::from_millis(60),
        filter: None,
        single: None,
        spins: 1 << 20,
        pin: true,
        markdown: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--reps" => options.reps = args.next().and_then(|v| v.parse().ok()).expect("--reps N"),
            "--ms" => {
                let ms = args.next().and_then(|v| v.parse().ok()).expect("--ms N");
                options.target = Duration::from_millis(ms);
            }
            "--filter" => options.filter = args.next(),
            "--spins" => {
                options.spins = args.next().and_then(|v| v.parse().ok()).expect("--spins N");
            }
            "--no-pin" => options.pin = false,
            "--markdown" => options.markdown = true,
            "--single" => {
                let usage = "--single c|ours|c-light|ours-light PAGES BATCH ROUNDS";
                let (pair, mode) = match args.next().as_deref() {
                    Some("c") => (Pair::C, Mode::SingleThread),
                    Some("ours") => (Pair::Ours, Mode::SingleThread),
                    Some("c-light") => (Pair::C, Mode::RingOnly),
                    Some("ours-light") => (Pair::Ours, Mode::RingOnly),
                    _ => panic!("{usage}"),
                };
                let mut number = || {
                    args.next()
                        .and_then(|v| v.parse::<u64>().ok())
                        .expect(usage)
                };
                let pages = number() as usize;
                let batch = number() as u32;
                let rounds = number();
                let config = Config { mode, pages, batch };
                options.single = Some((pair, config, rounds));
            }
            // `cargo bench` passes `--bench`; ignore it and anything else of libtest's.
            _ => {}
        }
    }
    options.reps = options.reps.max(1);
    options
}

fn main() {
    let options = options();
    let cpus = thread::available_parallelism().map_or(1, |n| n.get());
    let options = Options {
        pin: options.pin && cpus >= 2 && pin_current_thread(0),
        ..options
    };
    if let Some((pair, config, rounds)) = options.single {
        let elapsed = run(config, pair, rounds * u64::from(config.batch), &options);
        println!("{pair:?} {config:?}: {rounds} rounds in {elapsed:?}");
        return;
    }
    let mut configs = Vec::new();
    for mode in [Mode::PingPong, Mode::Stream] {
        for pages in [1, 16] {
            for batch in [1, 16, 32] {
                configs.push(Config { mode, pages, batch });
            }
        }
    }
    for mode in [Mode::SingleThread, Mode::RingOnly] {
        for pages in [1, 16] {
            for batch in [1, 32] {
                configs.push(Config { mode, pages, batch });
            }
        }
    }
    let pairs = [
        Pair::C,
        Pair::Ours,
        Pair::OurFront,
        Pair::OurBack,
        Pair::Transcribed,
    ];

    println!(
        "xen-ring round trips vs. Xen's io/ring.h macros (C at -O2); {cpus} CPUs ({}), load \
         average {} at start; waiters poll {} times between yields; median of {} runs of ~{} ms \
         each",
        if options.pin {
            "front on CPU 0, back on CPU 1"
        } else {
            "not pinned"
        },
        load_average(),
        options.spins,
        options.reps,
        options.target.as_millis()
    );
    println!("M round trips per second (higher is better); ratio = ours / C");
    println!();
    if options.markdown {
        println!(
            "| mode | ring | B | C | ours | ratio | ours front* | ours back* | C front in Rust† |"
        );
        println!("|---|---|--:|--:|--:|--:|--:|--:|--:|");
    } else {
        println!(
            "{:<26} {:>8} {:>8} {:>7}   {:>12} {:>12} {:>17}",
            "configuration", "C", "ours", "ratio", "ours front*", "ours back*", "C front in Rust†"
        );
    }
    let mut ratios = Vec::new();
    for config in configs {
        let label = config.label();
        if let Some(filter) = &options.filter {
            if !label.contains(filter.as_str()) {
                continue;
            }
        }
        // Calibrate the count on the C pair so that one run lasts about the target time.
        let probe = 20_000u64;
        let probe_time = run(config, Pair::C, probe, &options).max(Duration::from_micros(100));
        let count = ((probe as f64 * options.target.as_secs_f64() / probe_time.as_secs_f64())
            as u64)
            .clamp(10_000, 200_000_000);

        let mut rates: Vec<Vec<f64>> = vec![Vec::new(); pairs.len()];
        for rep in 0..options.reps {
            // Alternate the order so that neither implementation always runs first.
            // One thread plays both ends, so there is no mixed pair to run.
            let runs = if config.mode.single_thread() {
                2
            } else {
                pairs.len()
            };
            let mut order: Vec<usize> = (0..runs).collect();
            if rep % 2 == 1 {
                order.reverse();
            }
            for i in order {
                let elapsed = run(config, pairs[i], count, &options);
                rates[i].push(count as f64 / elapsed.as_secs_f64() / 1e6);
            }
        }
        let [c, ours, our_front, our_back, transcribed] =
            [0, 1, 2, 3, 4].map(|i| median(rates[i].clone()));
        let [our_front, our_back, transcribed] = [our_front, our_back, transcribed].map(|r| {
            if r.is_nan() {
                "-".to_owned()
            } else {
                format!("{r:.2}")
            }
        });
        let ratio = median(rates[1].iter().zip(&rates[0]).map(|(o, c)| o / c).collect());
        ratios.push(ratio);
        if options.markdown {
            println!(
                "| {} | {} page{} | {} | {c:.2} | {ours:.2} | {ratio:.2} | {our_front} | \
                 {our_back} | {transcribed} |",
                config.mode.name(),
                config.pages,
                if config.pages == 1 { "" } else { "s" },
                config.batch
            );
        } else {
            println!(
                "{label:<26} {c:>8.2} {ours:>8.2} {ratio:>7.2}   {our_front:>12} \
                 {our_back:>12} {transcribed:>17}"
            );
        }
    }
    println!();
    println!(
        "* mixed pairs: our frontend with the C backend, the C frontend with our backend (-: not \
         applicable to one thread)."
    );
    println!(
        "† control: the C frontend's loop transcribed into Rust with raw atomic accesses (no \
         xen-ring), against the C backend."
    );
    println!("load average at the end: {}", load_average());
    if !ratios.is_empty() {
        let geomean = (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64).exp();
        println!(
            "ratio ours/C: geometric mean {geomean:.2}, min {:.2}, max {:.2}",
            ratios.iter().copied().fold(f64::INFINITY, f64::min),
            ratios.iter().copied().fold(0.0, f64::max)
        );
    }
}

/// The control for the two-thread rows: the C frontend loop (`xrp_front_run` in
/// `c-peer/csrc/peer.c`) transcribed into Rust statement by statement, reading and writing the
/// shared page where the macros do (indices and entries through raw-pointer atomics) and with none
/// of xen-ring's copies, validation or poisoning. It runs against the C backend. It says how much
/// of a row's result belongs to the language and compiler rather than to xen-ring: where the
/// control trails the C frontend as our frontend does, the gap is not xen-ring's code.
mod transcribed {
    use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
    use std::time::Duration;

    use xen_ring_c_peer::{
        c_ring_size, checksum_of, payload_word, FrontConfig, Link, PeerError, PeerErrorKind,
        SharedPages, Stats, TestRequest, Waiter, Xorshift, PAYLOAD_WORDS,
    };

    use xen_abi::ring::offsets::{REQ_EVENT, REQ_PROD, RSP_EVENT, RSP_PROD};
    use xen_abi::ring::RING_ENTRIES_OFFSET as ENTRIES;

    /// The size of a slot: the request, the larger of the two entries.
    const ENTRY_SIZE: usize = size_of::<TestRequest>();

    /// Raw access to the shared page, as the macros have it.
    struct Page<'a> {
        pages: &'a SharedPages,
        mask: u32,
    }

    impl Page<'_> {
        fn index(&self, offset: usize) -> &AtomicU32 {
            debug_assert!(offset <= RSP_EVENT && offset % 4 == 0);
            // SAFETY: `offset` is one of the four header offsets, 4-byte aligned and inside the
            // page-aligned allocation `pages` owns for at least `'_`; the peer accesses the same
            // word concurrently, which atomics permit.
            unsafe { AtomicU32::from_ptr(self.pages.as_ptr().wrapping_add(offset).cast()) }
        }

        fn word(&self, slot: u32, word: usize) -> &AtomicU64 {
            // As in the macros, no check on the hot path: `mask + 1` is the C peer's RING_SIZE
            // for these pages, so every slot lies inside them.
            let offset = ENTRIES + (slot & self.mask) as usize * ENTRY_SIZE + 8 * word;
            debug_assert!(word < ENTRY_SIZE / 8 && offset + 8 <= self.pages.len());
            // SAFETY: in bounds (RING_SIZE slots of ENTRY_SIZE bytes after the header fit in
            // the pages), 8-byte aligned (entries start at 64 and are 112 bytes), inside the
            // allocation `pages` owns for at least `'_`; the peer accesses whole words
            // concurrently, which atomics permit.
            unsafe { AtomicU64::from_ptr(self.pages.as_ptr().wrapping_add(offset).cast()) }
        }
    }

    /// `xrp_front_run`, transcribed.
    pub fn front_run(
        pages: &SharedPages,
        config: &FrontConfig,
        link: &Link,
    ) -> Result<Stats, Box<PeerError>> {
        let page = Page {
            pages,
            mask: c_ring_size(pages) - 1,
        };
        let slots = page.mask + 1;
        let (req_prod, req_event) = (page.index(REQ_PROD), page.index(REQ_EVENT));
        let (rsp_prod, rsp_event) = (page.index(RSP_PROD), page.index(RSP_EVENT));
        let mut stats = Stats::default();
        let mut waiter = Waiter::new();
        let mut rng = Xorshift::new(config.seed);
        let timeout = Duration::from_nanos(config.timeout_ns);
        let (mut sent, mut received) = (0u64, 0u64);
        let (mut req_prod_pvt, mut rsp_cons) = (0u32, 0u32);
        let fail = |kind, at, expected, got, private: [u32; 2], stats| {
            Box::new(PeerError {
                side: "C front in Rust",
                kind,
                at,
                expected,
                got,
                shared: [req_prod, req_event, rsp_prod, rsp_event]
                    .map(|index| index.load(Ordering::Relaxed)),
                private,
                stats,
                detail: String::new(),
            })
        };
        let closed_loop = config.closed_loop != 0;
        while received < config.count {
            let may_send = !closed_loop || sent == received;
            let full = req_prod_pvt.wrapping_sub(rsp_cons) == slots;
            if sent < config.count && may_send && !full {
                let room = u64::from(slots - req_prod_pvt.wrapping_sub(rsp_cons));
                let batch = u64::from(rng.in_range(config.batch_min, config.batch_max))
                    .min(room)
                    .min(config.count - sent);
                for _ in 0..batch {
                    // RING_GET_REQUEST, then the fields written in place.
                    page.word(req_prod_pvt, 0).store(sent, Ordering::Relaxed);
                    for i in 0..PAYLOAD_WORDS {
                        let word = payload_word(sent, i);
                        page.word(req_prod_pvt, 1 + i)
                            .store(word, Ordering::Relaxed);
                    }
                    req_prod_pvt = req_prod_pvt.wrapping_add(1);
                    sent += 1;
                }
                // RING_PUSH_REQUESTS_AND_CHECK_NOTIFY.
                let old = req_prod.load(Ordering::Relaxed);
                req_prod.store(req_prod_pvt, Ordering::Release); // xen_wmb(); req_prod = new
                fence(Ordering::SeqCst); // xen_mb()
                let event = req_event.load(Ordering::Relaxed);
                stats.pushes += 1;
                if req_prod_pvt.wrapping_sub(event) < req_prod_pvt.wrapping_sub(old) {
                    stats.notifies += 1;
                    link.to_back.notify();
                }
            }

            let rp = rsp_prod.load(Ordering::Acquire); // rp = rsp_prod; xen_rmb()
            if rp.wrapping_sub(rsp_cons) > slots {
                return Err(fail(
                    PeerErrorKind::PeerOverflow,
                    received,
                    0,
                    rp.into(),
                    [req_prod_pvt, rsp_cons],
                    stats,
                ));
            }
            while rsp_cons != rp {
                // RING_COPY_RESPONSE.
                let id = page.word(rsp_cons, 0).load(Ordering::Relaxed);
                let checksum = page.word(rsp_cons, 1).load(Ordering::Relaxed);
                rsp_cons = rsp_cons.wrapping_add(1);
                if id != received {
                    return Err(fail(
                        PeerErrorKind::BadResponse,
                        received,
                        received,
                        id,
                        [req_prod_pvt, rsp_cons],
                        stats,
                    ));
                }
                let want = checksum_of(&TestRequest::new(received).payload, received);
                if checksum != want {
                    return Err(fail(
                        PeerErrorKind::BadResponse,
                        received,
                        want,
                        checksum,
                        [req_prod_pvt, rsp_cons],
                        stats,
                    ));
                }
                received += 1;
            }
            if received == config.count {
                break;
            }
            let full = req_prod_pvt.wrapping_sub(rsp_cons) == slots;
            if sent < config.count && !full && (!closed_loop || sent == received) {
                continue;
            }
            // RING_FINAL_CHECK_FOR_RESPONSES.
            let mut more = rsp_prod.load(Ordering::Acquire) != rsp_cons;
            if !more {
                rsp_event.store(rsp_cons.wrapping_add(1), Ordering::Relaxed);
                fence(Ordering::SeqCst);
                more = rsp_prod.load(Ordering::Acquire) != rsp_cons;
            }
            stats.final_checks += 1;
            if !more {
                if let Err(kind) = waiter.wait(link, &link.to_front, timeout, &mut stats) {
                    return Err(fail(kind, received, 0, 0, [req_prod_pvt, rsp_cons], stats));
                }
                if rsp_prod.load(Ordering::Acquire) == rsp_cons {
                    stats.idle_wakes += 1;
                }
            }
        }
        stats.items = received;
        Ok(stats)
    }
}
