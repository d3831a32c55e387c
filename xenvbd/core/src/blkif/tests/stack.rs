//! Stack use of every entry point the shell calls, on a thread with a small stack.
//!
//! The whole sequence (connect, submissions of every kind, poll, the timer, abort, reset,
//! quiesce, disconnect, shutdown) runs on a thread whose stack is 32 KiB in a release build: a
//! call that needed more would hit the guard page and kill the test binary. Each call's depth is
//! also measured: the test doubles of the platform ([`Grants`], [`Events`], [`GuestMemory`]),
//! which the engine calls from its deepest paths, record the lowest stack address they run at,
//! and the depth is the distance from the caller's frame to it. `cargo test --release -p
//! xenvbd-core stack -- --nocapture` prints the depths; the README quotes them.

use core::cell::Cell;
use std::eprintln;
use std::thread;

use super::*;

std::thread_local! {
    static LOWEST: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// Records how deep the stack is here (called by the test doubles).
#[inline(never)]
pub(super) fn probe() {
    let here = 0u8;
    let addr = core::hint::black_box(&here) as *const u8 as usize;
    LOWEST.with(|l| l.set(l.get().min(addr)));
}

/// Runs `f` and returns how many bytes of stack below this frame the platform calls it made
/// ran at (0 if it made none).
#[inline(never)]
fn depth(f: impl FnOnce()) -> usize {
    let anchor = 0u8;
    let top = core::hint::black_box(&anchor) as *const u8 as usize;
    LOWEST.with(|l| l.set(usize::MAX));
    f();
    let low = LOWEST.with(Cell::get);
    if low == usize::MAX {
        0
    } else {
        top.saturating_sub(low)
    }
}

/// The bound each call is held to: 8 KiB in release builds (what a kernel shell gets); debug
/// builds keep every temporary on the stack, so they are only held to 64 KiB.
const BOUND: usize = if cfg!(debug_assertions) {
    64 * 1024
} else {
    8 * 1024
};
const THREAD_STACK: usize = if cfg!(debug_assertions) {
    1024 * 1024
} else {
    32 * 1024
};

#[test]
fn every_entry_point_stays_within_the_stack_bound() {
    // Built here (the harness's model and memory are test machinery), run on the small stack.
    let mut h = Harness::<8>::new(features(32, false), config(32), Layout::X86_64);
    let worst = thread::Builder::new()
        .stack_size(THREAD_STACK)
        .spawn(move || {
            let mut report: Vec<(&str, usize)> = Vec::new();
            let mut measure = |name, d: usize| report.push((name, d));

            // Connect again on a fresh ring: attach (grants the ring) and connected (probe).
            let d = depth(|| {
                let mut io = Io::new(&mut h.grants, &mut h.ev, &mut h.mem);
                h.eng.disconnect(&mut io);
            });
            measure("disconnect", d);
            let ring = RingMemory::allocate(0).unwrap();
            h.be = Model::new(ring.clone(), Layout::X86_64);
            let feat = features(32, false);
            let params = FrontendParams {
                ring_page_order: 0,
                ..FrontendParams::negotiate(&config(32), &feat)
            };
            let d = depth(|| {
                let mut io = Io::new(&mut h.grants, &mut h.ev, &mut h.mem);
                h.eng.attach_ring(params, ring, &[0x5000], &mut io).unwrap();
            });
            measure("attach_ring", d);
            let d = depth(|| {
                let mut io = Io::new(&mut h.grants, &mut h.ev, &mut h.mem);
                h.eng.connected(&feat, &mut io);
            });
            measure("connected", d);
            h.run();
            assert_eq!(h.eng.state(), EngineState::Running);

            // Submissions of every kind: a large indirect write of whole pages, an
            // unaligned read, a flush, a discard.
            let big = pages(40, 0x100);
            fill(&mut h.mem, &big, 1);
            let unaligned = [Segment {
                frame: 0x300,
                offset: 512,
                length: 1024,
            }];
            let ops: [(BlockOp, &[Segment]); 4] = [
                (
                    BlockOp::Write {
                        sector: 0,
                        sectors: 320,
                        fua: true,
                    },
                    &big,
                ),
                (
                    BlockOp::Read {
                        sector: 8,
                        sectors: 2,
                    },
                    &unaligned,
                ),
                (BlockOp::Flush, &[]),
                (
                    BlockOp::Discard {
                        sector: 1000,
                        sectors: 8,
                        secure: false,
                    },
                    &[],
                ),
            ];
            for (k, (op, segs)) in ops.into_iter().enumerate() {
                let d = depth(|| h.submit(k as u64, op, segs).unwrap());
                measure("submit", d);
            }
            h.be.serve(&h.grants, &mut h.mem);
            let d = depth(|| h.poll().unwrap());
            measure("poll", d);
            h.run();
            assert_eq!(h.done.len(), 4);
            assert!(h.done.iter().all(|c| c.status == BlockStatus::Ok));

            // The timer with work outstanding, then abort one operation and reset the rest.
            for k in 10..14u64 {
                h.submit(
                    k,
                    BlockOp::Read {
                        sector: 8 * k,
                        sectors: 64,
                    },
                    &pages(8, 0x400 + 8 * k),
                )
                .unwrap();
            }
            let d = depth(|| {
                h.timer(1_000_000);
            });
            measure("on_timer", d);
            let d = depth(|| {
                let mut io = Io::new(&mut h.grants, &mut h.ev, &mut h.mem);
                let done = &mut h.done;
                assert!(h.eng.abort(Tag(10), &mut io, |c| done.push(c)));
            });
            measure("abort", d);
            let d = depth(|| {
                let mut io = Io::new(&mut h.grants, &mut h.ev, &mut h.mem);
                let done = &mut h.done;
                assert_eq!(h.eng.reset(&mut io, |c| done.push(c)), 3);
            });
            measure("reset", d);
            h.run();
            let d = depth(|| h.eng.quiesce());
            measure("quiesce", d);
            let d = depth(|| {
                let mut io = Io::new(&mut h.grants, &mut h.ev, &mut h.mem);
                let done = &mut h.done;
                h.eng.shutdown(&mut io, |c| done.push(c));
            });
            measure("shutdown", d);
            assert_eq!(h.done.len(), 8);
            report
        })
        .unwrap()
        .join()
        .expect("the engine overflowed or panicked on the small stack");
    for (name, d) in &worst {
        eprintln!("stack: {name}: {d} bytes");
        assert!(*d < BOUND, "{name} used {d} bytes of stack");
    }
    // The measurement saw the platform calls of the data paths.
    assert!(worst.iter().any(|(name, d)| *name == "submit" && *d > 0));
}
