//! Ownership against a backend that keeps pages mapped: no completion and no reuse of a pool
//! page while the backend maps it, revocations retried from the timer, and the bound past which
//! a page is leaked on purpose.

use super::hostile::{check_honest_finish, completions_per_tag, operation};
use super::*;

/// `pages` whole pages for operation `tag`, or (`sub_page`) the last 3.5 KiB of each page only.
fn buffer(tag: u64, count: u8, sub_page: bool) -> Vec<Segment> {
    pages(u64::from(count), 0x10_0000 + tag * 64)
        .into_iter()
        .map(|s| {
            if sub_page {
                Segment {
                    offset: 512,
                    length: 3584,
                    ..s
                }
            } else {
                s
            }
        })
        .collect()
}

fn write_op(sector: u64, segs: &[Segment]) -> BlockOp {
    let bytes: u64 = segs.iter().map(|s| u64::from(s.length)).sum();
    BlockOp::Write {
        sector,
        sectors: bytes / 512,
        fua: false,
    }
}

/// The frames of `segs` that have a grant in force.
fn granted_frames(grants: &TestGrants, segs: &[Segment]) -> Vec<u64> {
    let frames: HashSet<u64> = grants.active.values().map(|(f, _)| *f).collect();
    segs.iter()
        .map(|s| s.frame)
        .filter(|f| frames.contains(f))
        .collect()
}

#[test]
fn a_completion_waits_until_the_backend_unmaps_the_buffer() {
    let mut h = Harness::<8>::new(features(0, false), config(0), Layout::X86_64);
    let segs = pages(2, 0x100);
    h.submit(1, write_op(0, &segs), &segs).unwrap();
    h.be.take(&h.grants, &h.mem);
    let grefs: Vec<GrantRef> = h.be.pending[0].segs.iter().map(|s| s.gref).collect();
    h.grants.mapped.extend(grefs.iter().copied());
    h.be.answer(&h.grants, &mut h.mem);
    h.poll().unwrap();
    assert!(
        h.done.is_empty(),
        "completed while the backend maps the buffer"
    );
    assert_eq!(h.eng.holdings().operations, 1);
    assert_eq!(h.eng.counters().deferred_revocations, 2);
    assert_eq!(h.timer(5).revoking, 2);
    assert!(h.done.is_empty());
    // One page unmapped: still held by the other.
    h.grants.mapped.remove(&grefs[0]);
    h.timer(6);
    assert!(h.done.is_empty());
    h.grants.mapped.clear();
    let report = h.timer(7);
    assert_eq!(report.revoking, 0);
    assert_eq!(
        h.done.iter().map(|c| (c.tag, c.status)).collect::<Vec<_>>(),
        [(Tag(1), BlockStatus::Ok)]
    );
    assert!(h.grants.active.len() == 1, "only the ring stays granted");
    assert_eq!(h.eng.counters().revocations_completed, 2);
    assert!(h.eng.holdings().is_empty());
}

#[test]
fn a_bounce_page_is_not_reused_while_the_backend_maps_it() {
    let mut h = Harness::<1>::new(features(0, false), config(0), Layout::X86_64);
    let a = buffer(1, 1, true);
    h.submit(1, write_op(0, &a), &a).unwrap();
    h.be.take(&h.grants, &h.mem);
    let bounce = h.be.pending[0].segs[0].gref;
    assert_eq!(h.grants.active[&bounce].0, 0x9000, "the pool's page");
    h.grants.mapped.insert(bounce);
    h.be.answer(&h.grants, &mut h.mem);
    h.poll().unwrap();
    // The caller's buffer was never granted: the write completes. The bounce page is held.
    assert_eq!(h.done.len(), 1);
    assert_eq!(h.eng.holdings().pool_pages, 1);
    let b = buffer(2, 1, true);
    h.submit(2, write_op(8, &b), &b).unwrap();
    h.timer(1);
    assert_eq!(h.eng.in_flight(), 0, "the only bounce page is still mapped");
    h.grants.mapped.clear();
    h.timer(2);
    assert_eq!(h.eng.in_flight(), 1);
    h.run();
    assert_eq!(h.done.len(), 2);
    assert!(h.eng.holdings().is_empty());
}

#[test]
fn an_indirect_page_is_not_reused_while_the_backend_maps_it() {
    let mut h = Harness::<8>::new(features(32, false), config(32), Layout::X86_64);
    let a = pages(20, 0x100);
    h.submit(1, write_op(0, &a), &a).unwrap();
    h.be.take(&h.grants, &h.mem);
    let indirect: Vec<GrantRef> = h.be.indirect_grefs.iter().copied().collect();
    assert_eq!(indirect.len(), 1);
    h.grants.mapped.insert(indirect[0]);
    h.be.answer(&h.grants, &mut h.mem);
    h.poll().unwrap();
    assert_eq!(h.done.len(), 1);
    assert_eq!(h.eng.holdings().indirect_pages, 1);
    // Two writes of 20 pages: one indirect page is left, so the second goes out as two
    // direct requests (the grant table fails the test if the held page is granted again).
    h.grants.exclusive = true;
    let b = pages(20, 0x200);
    let c = pages(20, 0x300);
    h.submit(2, write_op(200, &b), &b).unwrap();
    h.submit(3, write_op(400, &c), &c).unwrap();
    assert_eq!(h.eng.in_flight(), 3);
    assert_eq!(h.eng.counters().indirect_requests, 2);
    h.run();
    assert_eq!(h.done.len(), 3);
    h.grants.mapped.clear();
    h.timer(1);
    assert!(h.eng.holdings().is_empty());
}

#[test]
fn past_the_revocation_limit_the_page_is_leaked_and_the_device_fails() {
    let mut h = Harness::<8>::new(features(0, false), config(0), Layout::X86_64);
    let segs = pages(1, 0x100);
    h.submit(1, write_op(0, &segs), &segs).unwrap();
    h.be.take(&h.grants, &h.mem);
    let gref = h.be.pending[0].segs[0].gref;
    h.grants.mapped.insert(gref);
    h.be.answer(&h.grants, &mut h.mem);
    h.poll().unwrap();
    let limit = Timeouts::default().revocation;
    h.timer(limit - 1);
    assert_eq!(h.eng.state(), EngineState::Running);
    let report = h.timer(limit);
    assert_eq!(report.leaked, 1);
    assert_eq!(
        h.eng.state(),
        EngineState::Failed(EngineError::GrantHeld { gref })
    );
    assert!(h.ev.log.contains(&LogEvent::Leaked {
        gref,
        tag: Some(Tag(1))
    }));
    assert_eq!(h.eng.counters().leaked_pages, 1);
    // The backend lets go later: the engine no longer asks, the page stays out of reach, and
    // the operation never completes, not even on shutdown.
    h.grants.mapped.clear();
    h.timer(limit + 10);
    let mut io = Io::new(&mut h.grants, &mut h.ev, &mut h.mem);
    let mut late = Vec::new();
    h.eng.shutdown(&mut io, |c| late.push(c));
    h.timer(limit + 20);
    assert!(h.done.is_empty() && late.is_empty());
    assert!(
        h.grants.active.contains_key(&gref),
        "a leaked grant is never ended"
    );
    let held = h.eng.holdings();
    assert_eq!((held.operations, held.leaked), (1, 1));
}

#[test]
fn an_operation_with_a_leaked_page_blocks_nothing_after_a_reconnect() {
    let mut h = Harness::<8>::new(features(32, false), config(32), Layout::X86_64);
    // Two requests: the backend answers the first and keeps its pages mapped, then goes away
    // before answering the second.
    let segs = pages(40, 0x100);
    h.submit(1, write_op(0, &segs), &segs).unwrap();
    let other = pages(1, 0x400);
    h.submit(2, write_op(400, &other), &other).unwrap();
    h.be.take(&h.grants, &h.mem);
    assert_eq!(h.be.pending.len(), 3);
    let first = h.be.pending.remove(0);
    let status = h.be.execute(&first, &h.grants, &mut h.mem);
    h.be.respond(first.id, first.op, status);
    h.be.ring.push_responses();
    h.grants.mapped.extend(first.segs.iter().map(|s| s.gref));
    h.poll().unwrap();
    let mut io = Io::new(&mut h.grants, &mut h.ev, &mut h.mem);
    h.eng.disconnect(&mut io);
    let limit = Timeouts::default().revocation;
    h.timer(limit);
    assert!(matches!(
        h.eng.state(),
        EngineState::Failed(EngineError::GrantHeld { .. })
    ));
    // The shell reconnects: operation 2 goes through, operation 1 stays out of reach.
    let mem = RingMemory::allocate(0).unwrap();
    h.be = Model::new(mem.clone(), Layout::X86_64);
    h.connect(mem, features(32, false), config(32));
    h.run();
    assert_eq!(
        h.done.iter().map(|c| (c.tag, c.status)).collect::<Vec<_>>(),
        [(Tag(2), BlockStatus::Ok)]
    );
    assert_eq!(h.eng.holdings().operations, 1);
}

/// A grant table that takes over the references the backend maps: `end` answers `Abandoned`.
struct Abandoning(TestGrants);

impl Grants for Abandoning {
    fn grant(&mut self, d: DomId, f: u64, ro: bool) -> Result<GrantRef, GrantError> {
        self.0.grant(d, f, ro)
    }
    fn end(&mut self, gref: GrantRef) -> Result<Ended, GrantError> {
        if self.0.mapped.contains(&gref) {
            return Ok(Ended::Abandoned);
        }
        self.0.end(gref)
    }
}

#[test]
fn a_grant_the_table_takes_over_is_never_reused() {
    let mut h = Harness::<1>::new(features(0, false), config(0), Layout::X86_64);
    let a = buffer(1, 1, true);
    h.submit(1, write_op(0, &a), &a).unwrap();
    h.be.take(&h.grants, &h.mem);
    h.grants.mapped.insert(h.be.pending[0].segs[0].gref);
    h.be.answer(&h.grants, &mut h.mem);
    let mut grants = Abandoning(core::mem::take(&mut h.grants));
    let mut io = Io::new(&mut grants, &mut h.ev, &mut h.mem);
    let mut done = Vec::new();
    h.eng.poll(&mut io, |c| done.push(c)).unwrap();
    assert_eq!(done.len(), 1);
    let b = buffer(2, 1, true);
    h.eng
        .submit(Tag(2), write_op(8, &b), &b, &mut io, |c| done.push(c))
        .unwrap();
    h.eng.on_timer(1, &mut io, |c| done.push(c));
    assert_eq!(h.eng.in_flight(), 0, "the only pool page is lost");
    assert_eq!(h.eng.holdings().pool_pages, 1);
    assert_eq!(h.eng.counters().leaked_pages, 1);
}

/// A step of [`a_backend_holding_mappings_delays_but_loses_nothing`].
#[derive(Clone, Debug)]
enum HoldStep {
    /// The guest submits (0 read, 1 write, 2 flush, 3 discard) over whole or sub-page pieces.
    Submit {
        kind: u8,
        sector: u16,
        pages: u8,
        sub_page: bool,
    },
    /// The backend takes every published request.
    Take,
    /// The backend serves one request it took, keeping its data pages mapped `hold` ticks.
    Answer { pick: u8, hold: u8, status: i16 },
    /// The backend publishes its responses.
    Publish,
    /// The guest's interrupt.
    Poll,
    /// Time passes; mappings due are dropped; the shell's timer runs.
    Tick { dt: u8 },
}

fn hold_step() -> impl Strategy<Value = HoldStep> {
    let status = prop_oneof![
        8 => Just(blkif::BLKIF_RSP_OKAY),
        1 => Just(blkif::BLKIF_RSP_ERROR),
    ];
    prop_oneof![
        4 => (0u8..4, 0u16..4096, 1u8..=24, any::<bool>()).prop_map(
            |(kind, sector, pages, sub_page)| HoldStep::Submit { kind, sector, pages, sub_page }
        ),
        3 => Just(HoldStep::Take),
        5 => (any::<u8>(), any::<u8>(), status)
            .prop_map(|(pick, hold, status)| HoldStep::Answer { pick, hold, status }),
        3 => Just(HoldStep::Publish),
        3 => Just(HoldStep::Poll),
        3 => (1u8..=64).prop_map(|dt| HoldStep::Tick { dt }),
    ]
}

/// Checks each completion since `seen`: the operation's pages have no grant in force.
fn check_new_completions(
    h: &Harness<8>,
    buffers: &HashMap<u64, Vec<Segment>>,
    seen: &mut usize,
) -> Result<(), TestCaseError> {
    for c in &h.done[*seen..] {
        let segs = &buffers[&c.tag.0];
        let still = granted_frames(&h.grants, segs);
        prop_assert!(
            still.is_empty(),
            "operation {} completed with frames {:x?} still granted",
            c.tag.0,
            still
        );
    }
    *seen = h.done.len();
    completions_per_tag(&h.done)?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A backend serves requests in any order and keeps their data pages mapped for random
    /// times after answering. The engine never completes an operation while a grant on its
    /// buffer is in force, never grants a frame that is still granted (a pool or indirect page
    /// reused while mapped), and once the backend lets go every accepted operation has
    /// completed exactly once and shutting down leaves no grant behind. With and without
    /// indirect segments, persistent grants and trust.
    #[test]
    fn a_backend_holding_mappings_delays_but_loses_nothing(
        steps in prop::collection::vec(hold_step(), 1..200),
        persistent in any::<bool>(),
        indirect in any::<bool>(),
        trusted in any::<bool>(),
    ) {
        let n = if indirect { 32 } else { 0 };
        let cfg = FrontendConfig { trust_backend: trusted, ..config(n) };
        let mut h = Harness::<8>::new(features(n, persistent), cfg, Layout::X86_64);
        h.grants.exclusive = true;
        let mut buffers: HashMap<u64, Vec<Segment>> = HashMap::new();
        let mut accepted = Vec::new();
        let mut releases: Vec<(GrantRef, u64)> = Vec::new();
        let mut now = 0u64;
        let mut seen = 0;
        for (tag, step) in (1u64..).zip(steps) {
            match step {
                HoldStep::Submit { kind, sector, pages, sub_page } => {
                    let segs = buffer(tag, pages, sub_page);
                    let sectors = segs.iter().map(|s| u64::from(s.length)).sum::<u64>() / 512;
                    let (op, segs) = match operation(tag, kind, sector, pages) {
                        (BlockOp::Read { sector, .. }, _) => (BlockOp::Read { sector, sectors }, segs),
                        (BlockOp::Write { sector, .. }, _) => (write_op(sector, &segs), segs),
                        other => other,
                    };
                    buffers.insert(tag, segs.clone());
                    if h.submit(tag, op, &segs).is_ok() {
                        accepted.push(tag);
                    }
                }
                HoldStep::Take => h.be.take(&h.grants, &h.mem),
                HoldStep::Answer { pick, hold, status } => {
                    if h.be.pending.is_empty() || h.be.ring.unanswered_requests() == 0 {
                        continue;
                    }
                    let req = h.be.pending.remove(usize::from(pick) % h.be.pending.len());
                    let done = h.be.execute(&req, &h.grants, &mut h.mem);
                    let status = if done == blkif::BLKIF_RSP_OKAY { status } else { done };
                    if hold > 0 {
                        for s in &req.segs {
                            h.grants.mapped.insert(s.gref);
                            releases.push((s.gref, now + u64::from(hold)));
                        }
                    }
                    h.be.respond(req.id, req.op, status);
                }
                HoldStep::Publish => h.be.ring.push_responses(),
                HoldStep::Poll => h.poll().unwrap(),
                HoldStep::Tick { dt } => {
                    now += u64::from(dt);
                    releases.retain(|&(g, at)| {
                        let keep = at > now;
                        if !keep {
                            h.grants.mapped.remove(&g);
                        }
                        keep
                    });
                    let report = h.timer(now);
                    prop_assert_eq!(report.leaked, 0);
                }
            }
            check_new_completions(&h, &buffers, &mut seen)?;
        }
        // The backend lets go of everything and serves what is left.
        h.grants.mapped.clear();
        h.be.ring.push_responses();
        h.timer(now + 1);
        h.run();
        h.timer(now + 2);
        h.run();
        check_new_completions(&h, &buffers, &mut seen)?;
        prop_assert_eq!(h.eng.state(), EngineState::Running);
        check_honest_finish(&mut h.eng, &mut h.grants, &mut h.ev, &mut h.mem, &h.done, &accepted)?;
    }
}

#[test]
fn an_operation_whose_page_the_table_took_over_blocks_nothing() {
    let mut h = Harness::<8>::new(features(0, false), config(0), Layout::X86_64);
    let segs = pages(1, 0x100);
    h.submit(1, write_op(0, &segs), &segs).unwrap();
    let other = pages(1, 0x200);
    h.submit(2, write_op(8, &other), &other).unwrap();
    h.be.take(&h.grants, &h.mem);
    h.grants.mapped.insert(h.be.pending[0].segs[0].gref);
    // The backend goes away; ending the mapped grant hands it to the table.
    let mut grants = Abandoning(core::mem::take(&mut h.grants));
    let mut io = Io::new(&mut grants, &mut h.ev, &mut h.mem);
    h.eng.disconnect(&mut io);
    h.eng.on_timer(1, &mut io, |c| h.done.push(c));
    h.grants = grants.0;
    assert_eq!(h.eng.counters().leaked_pages, 1);
    let mem = RingMemory::allocate(0).unwrap();
    h.be = Model::new(mem.clone(), Layout::X86_64);
    h.connect(mem, features(0, false), config(0));
    h.run();
    assert_eq!(
        h.done.iter().map(|c| (c.tag, c.status)).collect::<Vec<_>>(),
        [(Tag(2), BlockStatus::Ok)]
    );
    assert_eq!(h.eng.holdings().operations, 1);
}
