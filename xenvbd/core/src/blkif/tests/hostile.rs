//! Hostile backends: answers in any order and with any status, protocol violations, held
//! mappings and timeouts, over one queue and several.

use super::multi::MultiHarness;
use super::*;

/// One step of the guest or of an honest backend that answers in its own order (see
/// [`a_hostile_backend_loses_no_operation`]).
#[derive(Clone, Debug)]
enum Step {
    /// The guest submits an operation (0 read, 1 write, 2 flush, 3 discard) of `pages` pages.
    Submit { kind: u8, sector: u16, pages: u8 },
    /// The backend takes every published request.
    Take,
    /// The backend answers one of the requests it took with a status a backend may give.
    Answer { pick: u8, status: i16 },
    /// The backend publishes the responses it wrote.
    Publish,
    /// The guest's interrupt: the engine takes responses.
    Poll,
    /// The backend maps one of the pages granted to it (any: a buffer, a pool, indirect or ring
    /// page) and keeps it mapped for `ticks`.
    Hold { pick: u8, ticks: u8 },
    /// Time passes, due mappings are dropped and the shell's timer runs; the shell aborts the
    /// oldest operation past its deadline, or resets the device when `reset`.
    Tick { dt: u8, reset: bool },
}

/// What a hostile backend does besides (see [`a_hostile_backend_loses_no_operation`]).
#[derive(Clone, Debug)]
enum Attack {
    /// Answers a request it answered already.
    Again { pick: u8 },
    /// Answers a request with another operation.
    WrongOperation { pick: u8, op: u8 },
    /// Answers a request with a status outside the protocol.
    BadStatus { pick: u8, status: i16 },
    /// Answers an id of its own invention.
    Forge { id: u64 },
    /// Writes arbitrary bytes as a response.
    Raw { bytes: [u8; 16] },
    /// Writes `rsp_prod` anywhere near its private producer index.
    Scribble { ahead: i8 },
    /// Answers a request on another queue's ring than the one it came on.
    OtherQueue { pick: u8 },
}

fn guest_or_honest_step() -> impl Strategy<Value = Step> {
    let status = prop_oneof![
        8 => Just(blkif::BLKIF_RSP_OKAY),
        2 => Just(blkif::BLKIF_RSP_ERROR),
        1 => Just(blkif::BLKIF_RSP_EOPNOTSUPP),
    ];
    prop_oneof![
        4 => (0u8..4, 0u16..4096, 1u8..=40)
            .prop_map(|(kind, sector, pages)| Step::Submit { kind, sector, pages }),
        3 => Just(Step::Take),
        6 => (any::<u8>(), status).prop_map(|(pick, status)| Step::Answer { pick, status }),
        3 => Just(Step::Publish),
        4 => Just(Step::Poll),
        2 => (any::<u8>(), 1u8..=200).prop_map(|(pick, ticks)| Step::Hold { pick, ticks }),
        3 => (1u8..=64, prop::bool::weighted(0.2))
            .prop_map(|(dt, reset)| Step::Tick { dt, reset }),
    ]
}

/// Deadlines of the hostile-backend properties: operations time out often, the backend's
/// mappings (at most 200 ticks) never reach the revocation limit.
const HOSTILE_TIMEOUTS: Timeouts = Timeouts {
    request: 200,
    revocation: 1_000_000,
};

/// The backend's mappings and the shell's clock in the hostile-backend properties.
#[derive(Default)]
struct Clock {
    now: u64,
    /// Mapped references and when the backend lets go of each.
    releases: Vec<(GrantRef, u64)>,
}

impl Clock {
    /// [`Step::Hold`]: maps the `pick`th reference granted (in reference order).
    fn hold(&mut self, grants: &mut TestGrants, pick: u8, ticks: u8) {
        let mut active: Vec<GrantRef> = grants.active.keys().copied().collect();
        if active.is_empty() {
            return;
        }
        active.sort_unstable();
        let gref = active[usize::from(pick) % active.len()];
        grants.mapped.insert(gref);
        self.releases.push((gref, self.now + u64::from(ticks)));
    }

    /// [`Step::Tick`]: time passes, due mappings are dropped, the shell's timer runs and acts
    /// on a timeout. Checks that the engine reports only operations it has not completed and
    /// never gives up on a page.
    fn tick(
        &mut self,
        dt: u8,
        reset: bool,
        eng: &mut Engine,
        mut io: Io<'_, TestGrants, Ev, Mem>,
        done: &mut Vec<BlockCompletion>,
    ) -> Result<(), TestCaseError> {
        self.now += u64::from(dt);
        let now = self.now;
        let mapped = &mut io.grants.mapped;
        self.releases.retain(|&(g, at)| {
            if at <= now {
                mapped.remove(&g);
            }
            at > now
        });
        let report = eng.on_timer(now, &mut io, |c| done.push(c));
        prop_assert_eq!(report.leaked, 0);
        let Some(tag) = report.first_timed_out else {
            prop_assert!(!report.needs_decision());
            return Ok(());
        };
        prop_assert!(
            !done.iter().any(|c| c.tag == tag),
            "operation {} reported after it completed",
            tag.0
        );
        if reset {
            prop_assert!(eng.reset(&mut io, |c| done.push(c)) >= 1);
        } else {
            prop_assert!(eng.abort(tag, &mut io, |c| done.push(c)));
        }
        Ok(())
    }

    /// The backend lets go of every page and the timer runs.
    fn release_all(
        &mut self,
        eng: &mut Engine,
        mut io: Io<'_, TestGrants, Ev, Mem>,
        done: &mut Vec<BlockCompletion>,
    ) {
        io.grants.mapped.clear();
        self.releases.clear();
        self.now += 1;
        eng.on_timer(self.now, &mut io, |c| done.push(c));
    }
}

/// Checks that no operation completed while a grant on its buffer is in force (buffers from
/// [`operation`]: pages of their own per tag).
fn check_buffers_released(
    grants: &TestGrants,
    done: &[BlockCompletion],
) -> Result<(), TestCaseError> {
    let busy: HashSet<u64> = grants
        .active
        .values()
        .filter(|(f, _)| *f >= 0x10_0000)
        .map(|(f, _)| (f - 0x10_0000) / 64)
        .collect();
    for c in done {
        prop_assert!(
            !busy.contains(&c.tag.0),
            "operation {} completed with a grant on its buffer in force",
            c.tag.0
        );
    }
    Ok(())
}

fn attack(across_queues: bool) -> impl Strategy<Value = Attack> {
    let not_a_status = any::<i16>().prop_filter("a status the protocol defines", |s| {
        ![
            blkif::BLKIF_RSP_OKAY,
            blkif::BLKIF_RSP_ERROR,
            blkif::BLKIF_RSP_EOPNOTSUPP,
        ]
        .contains(s)
    });
    prop_oneof![
        any::<u8>().prop_map(|pick| Attack::Again { pick }),
        (any::<u8>(), any::<u8>()).prop_map(|(pick, op)| Attack::WrongOperation { pick, op }),
        (any::<u8>(), not_a_status).prop_map(|(pick, status)| Attack::BadStatus { pick, status }),
        any::<u64>().prop_map(|id| Attack::Forge { id }),
        any::<[u8; 16]>().prop_map(|bytes| Attack::Raw { bytes }),
        any::<i8>().prop_map(|ahead| Attack::Scribble { ahead }),
        any::<u8>().prop_map(move |pick| if across_queues {
            Attack::OtherQueue { pick }
        } else {
            Attack::Again { pick }
        }),
    ]
}

/// The operation [`Step::Submit`] asks for, with its buffers (pages of their own per tag).
pub(super) fn operation(tag: u64, kind: u8, sector: u16, count: u8) -> (BlockOp, Vec<Segment>) {
    let sectors = u64::from(count) * 8;
    let sector = u64::from(sector) % (DISK_SECTORS - sectors);
    match kind {
        0 => (
            BlockOp::Read { sector, sectors },
            pages(u64::from(count), 0x10_0000 + tag * 64),
        ),
        1 => (
            BlockOp::Write {
                sector,
                sectors,
                fua: false,
            },
            pages(u64::from(count), 0x10_0000 + tag * 64),
        ),
        2 => (BlockOp::Flush, Vec::new()),
        _ => (
            BlockOp::Discard {
                sector,
                sectors,
                secure: false,
            },
            Vec::new(),
        ),
    }
}

/// Checks what `submit` said of operation `tag` against the engine's state before it.
fn check_submission(
    result: Result<(), SubmitError>,
    was_failed: bool,
    tag: u64,
    accepted: &mut Vec<u64>,
) -> Result<(), TestCaseError> {
    match result {
        Ok(()) => {
            prop_assert!(!was_failed, "a stopped engine accepted work");
            accepted.push(tag);
        }
        Err(e) => prop_assert!(
            !was_failed || e == SubmitError::Unavailable,
            "a stopped engine refused work with {:?}",
            e
        ),
    }
    Ok(())
}

/// After an honest backend has served everything: checks that every accepted operation
/// completed exactly once and nothing else did, then that shutting down finds nothing left and
/// leaves no grant behind.
pub(super) fn check_honest_finish(
    eng: &mut Engine,
    grants: &mut TestGrants,
    ev: &mut Ev,
    mem: &mut Mem,
    done: &[BlockCompletion],
    accepted: &[u64],
) -> Result<(), TestCaseError> {
    let count = completions_per_tag(done)?;
    for tag in accepted {
        prop_assert_eq!(
            count.get(tag),
            Some(&1),
            "operation {} never completed",
            tag
        );
    }
    prop_assert_eq!(
        count.len(),
        accepted.len(),
        "completions of operations never accepted"
    );
    let mut io = Io::new(grants, ev, mem);
    let mut late = Vec::new();
    eng.shutdown(&mut io, |c| late.push(c));
    prop_assert!(
        late.is_empty(),
        "an honest backend left {} operations",
        late.len()
    );
    prop_assert!(grants.active.is_empty(), "grants left after shutdown");
    Ok(())
}

/// Checks that no operation completed twice; returns how often each tag completed.
pub(super) fn completions_per_tag(
    done: &[BlockCompletion],
) -> Result<HashMap<u64, u32>, TestCaseError> {
    let mut count = HashMap::new();
    for c in done {
        let n = count.entry(c.tag.0).or_insert(0u32);
        *n += 1;
        prop_assert_eq!(*n, 1, "operation {} completed twice", c.tag.0);
    }
    Ok(count)
}

/// The backend's side of [`a_hostile_backend_loses_no_operation`]: the requests it took and has
/// not answered, and those it answered, as (id, operation).
#[derive(Default)]
struct BackendView {
    taken: Vec<(u64, u8)>,
    answered: Vec<(u64, u8)>,
}

impl BackendView {
    /// Takes every request published on `ring`, noting its id and operation (every request
    /// starts with its operation; the id follows at offset 8 in x86_64 layout, 4 in x86_32).
    fn take(&mut self, ring: &mut RawBackRing, layout: Layout) {
        let id_at = match layout {
            Layout::X86_64 => 8,
            Layout::X86_32 => 4,
        };
        let mut buf = [0u8; 112];
        while ring
            .take_request(&mut buf[..layout.entry_size()])
            .unwrap()
            .is_some()
        {
            let id = u64::from_le_bytes(buf[id_at..id_at + 8].try_into().unwrap());
            self.taken.push((id, buf[0]));
        }
    }

    /// Removes and returns a taken request, if `ring` lets the backend answer one.
    fn answer(&mut self, ring: &RawBackRing, pick: u8) -> Option<(u64, u8)> {
        if self.taken.is_empty() || ring.unanswered_requests() == 0 {
            return None;
        }
        let request = self.taken.remove(usize::from(pick) % self.taken.len());
        self.answered.push(request);
        Some(request)
    }

    /// Does `attack` through `model`'s ring; true if it wrote something.
    fn attack(&mut self, model: &mut Model, attack: &Attack) -> bool {
        let room = model.ring.unanswered_requests() > 0;
        match *attack {
            Attack::Again { pick } if room && !self.answered.is_empty() => {
                let (id, op) = self.answered[usize::from(pick) % self.answered.len()];
                model.respond(id, op, blkif::BLKIF_RSP_OKAY);
            }
            Attack::WrongOperation { pick, op } => match self.answer(&model.ring, pick) {
                Some((id, _)) => model.respond(id, op, blkif::BLKIF_RSP_OKAY),
                None => return false,
            },
            Attack::BadStatus { pick, status } => match self.answer(&model.ring, pick) {
                Some((id, op)) => model.respond(id, op, status),
                None => return false,
            },
            Attack::Forge { id } if room => {
                model.respond(id, blkif::BLKIF_OP_READ, blkif::BLKIF_RSP_OKAY);
            }
            Attack::Raw { bytes } if room => model.ring.push_response(&bytes).unwrap(),
            Attack::Scribble { ahead } => {
                let at = model.ring.rsp_prod_pvt().wrapping_add(ahead as i32 as u32);
                model
                    .ring
                    .memory()
                    .store_index(xen_ring::RingIndex::RspProd, at);
            }
            _ => return false,
        }
        true
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A backend answers in any order, with any status it may give, keeps pages mapped for
    /// random times, and at up to three moments does what it must not (answers twice, with the
    /// wrong operation or a status outside the protocol, invents an id, writes raw bytes, or
    /// moves `rsp_prod` anywhere); operations time out and the shell aborts them or resets the
    /// device. The engine never panics, never completes an operation twice or while a grant on
    /// its buffer is in force; once it stops on a violation it refuses new work; and after the
    /// backend lets go of its mappings and the engine reconnects to an honest backend every
    /// operation it accepted has completed exactly once, and shutting down leaves no grant
    /// behind.
    #[test]
    fn a_hostile_backend_loses_no_operation(
        mut steps in prop::collection::vec(guest_or_honest_step().prop_map(Ok), 1..150),
        attacks in prop::collection::vec((any::<prop::sample::Index>(), attack(false)), 0..=3),
        persistent in any::<bool>(),
        indirect in any::<bool>(),
        x86_32 in any::<bool>(),
    ) {
        for (at, attack) in attacks {
            let at = at.index(steps.len() + 1);
            steps.insert(at, Err(attack));
        }
        let n = if indirect { 32 } else { 0 };
        let layout = if x86_32 { Layout::X86_32 } else { Layout::X86_64 };
        let (feat, cfg) = (features(n, persistent), config(n));
        let mut h = Harness::<8>::with_timeouts(feat, cfg, layout, HOSTILE_TIMEOUTS);
        let mut backend = BackendView::default();
        let mut clock = Clock::default();
        let mut accepted: Vec<u64> = Vec::new();
        for (tag, step) in (1u64..).zip(steps) {
            match step {
                Ok(Step::Submit { kind, sector, pages }) => {
                    let (op, segs) = operation(tag, kind, sector, pages);
                    let was_failed = matches!(h.eng.state(), EngineState::Failed(_));
                    check_submission(h.submit(tag, op, &segs), was_failed, tag, &mut accepted)?;
                }
                Ok(Step::Take) => backend.take(&mut h.be.ring, layout),
                Ok(Step::Answer { pick, status }) => {
                    if let Some((id, op)) = backend.answer(&h.be.ring, pick) {
                        h.be.respond(id, op, status);
                    }
                }
                Ok(Step::Publish) => h.be.ring.push_responses(),
                Ok(Step::Poll) => {
                    if let Err(e) = h.poll() {
                        prop_assert_eq!(h.eng.state(), EngineState::Failed(e));
                    }
                }
                Ok(Step::Hold { pick, ticks }) => clock.hold(&mut h.grants, pick, ticks),
                Ok(Step::Tick { dt, reset }) => {
                    let io = Io::new(&mut h.grants, &mut h.ev, &mut h.mem);
                    clock.tick(dt, reset, &mut h.eng, io, &mut h.done)?;
                }
                Err(attack) => {
                    // A violation written but not yet published would show only by chance.
                    if backend.attack(&mut h.be, &attack) {
                        h.be.ring.push_responses();
                    }
                }
            }
            completions_per_tag(&h.done)?;
            check_buffers_released(&h.grants, &h.done)?;
        }

        // The backend lets go of its mappings, goes away, and an honest one takes over: what
        // was not completed is issued again from its start.
        let io = Io::new(&mut h.grants, &mut h.ev, &mut h.mem);
        clock.release_all(&mut h.eng, io, &mut h.done);
        let mut io = Io::new(&mut h.grants, &mut h.ev, &mut h.mem);
        h.eng.disconnect(&mut io);
        let mem = RingMemory::allocate(0).unwrap();
        h.be = Model::new(mem.clone(), layout);
        h.connect(mem, feat, cfg);
        h.run();
        let io = Io::new(&mut h.grants, &mut h.ev, &mut h.mem);
        clock.release_all(&mut h.eng, io, &mut h.done);
        h.run();
        check_honest_finish(&mut h.eng, &mut h.grants, &mut h.ev, &mut h.mem, &h.done, &accepted)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// [`a_hostile_backend_loses_no_operation`] over two to four queues, each ring with its own
    /// backend that answers in its own order, with held mappings and timeouts; the violations
    /// also include answering a request on another queue's ring. The same guarantees hold, and
    /// the reconnect brings every queue back.
    #[test]
    fn a_hostile_multi_queue_backend_loses_no_operation(
        mut steps in prop::collection::vec(
            (any::<u8>(), guest_or_honest_step().prop_map(Ok)),
            1..150,
        ),
        attacks in prop::collection::vec(
            (any::<prop::sample::Index>(), any::<u8>(), attack(true)),
            0..=3,
        ),
        queues in 2u32..=4,
        x86_32 in any::<bool>(),
    ) {
        for (at, queue, attack) in attacks {
            let at = at.index(steps.len() + 1);
            steps.insert(at, (queue, Err(attack)));
        }
        let layout = if x86_32 { Layout::X86_32 } else { Layout::X86_64 };
        let mut h = MultiHarness::with_timeouts(queues, layout, HOSTILE_TIMEOUTS);
        let mut backends: Vec<BackendView> =
            (0..queues).map(|_| BackendView::default()).collect();
        let mut clock = Clock::default();
        let mut accepted: Vec<u64> = Vec::new();
        for (tag, (queue, step)) in (1u64..).zip(steps) {
            let q = usize::from(queue) % backends.len();
            match step {
                Ok(Step::Submit { kind, sector, pages }) => {
                    let (op, segs) = operation(tag, kind, sector, pages);
                    let was_failed = matches!(h.eng.state(), EngineState::Failed(_));
                    let result = h.try_submit(tag, op, &segs);
                    check_submission(result, was_failed, tag, &mut accepted)?;
                }
                // Every backend takes and publishes at once, so that answers, which come on one
                // queue at a time, meet requests often.
                Ok(Step::Take) => {
                    for (backend, model) in backends.iter_mut().zip(&mut h.queues) {
                        backend.take(&mut model.ring, layout);
                    }
                }
                Ok(Step::Answer { pick, status }) => {
                    if let Some((id, op)) = backends[q].answer(&h.queues[q].ring, pick) {
                        h.queues[q].respond(id, op, status);
                    }
                }
                Ok(Step::Publish) => {
                    for model in &mut h.queues {
                        model.ring.push_responses();
                    }
                }
                Ok(Step::Poll) => {
                    if let Err(e) = h.poll() {
                        prop_assert_eq!(h.eng.state(), EngineState::Failed(e));
                    }
                }
                Ok(Step::Hold { pick, ticks }) => clock.hold(&mut h.grants, pick, ticks),
                Ok(Step::Tick { dt, reset }) => {
                    let io = Io::new(&mut h.grants, &mut h.ev, &mut h.mem);
                    clock.tick(dt, reset, &mut h.eng, io, &mut h.done)?;
                }
                Err(Attack::OtherQueue { pick }) => {
                    let room = |o: &usize| h.queues[*o].ring.unanswered_requests() > 0;
                    let others = (1..backends.len()).map(|k| (q + k) % backends.len());
                    let Some(other) = others.into_iter().find(room) else {
                        continue;
                    };
                    if let Some((id, op)) = backends[q].answer(&h.queues[q].ring, pick) {
                        h.queues[other].respond(id, op, blkif::BLKIF_RSP_OKAY);
                        h.queues[other].ring.push_responses();
                    }
                }
                Err(attack) => {
                    if backends[q].attack(&mut h.queues[q], &attack) {
                        h.queues[q].ring.push_responses();
                    }
                }
            }
            completions_per_tag(&h.done)?;
            check_buffers_released(&h.grants, &h.done)?;
        }

        let io = Io::new(&mut h.grants, &mut h.ev, &mut h.mem);
        clock.release_all(&mut h.eng, io, &mut h.done);
        let mut io = Io::new(&mut h.grants, &mut h.ev, &mut h.mem);
        h.eng.disconnect(&mut io);
        h.attach(queues, layout);
        h.run();
        let io = Io::new(&mut h.grants, &mut h.ev, &mut h.mem);
        clock.release_all(&mut h.eng, io, &mut h.done);
        h.run();
        check_honest_finish(&mut h.eng, &mut h.grants, &mut h.ev, &mut h.mem, &h.done, &accepted)?;
    }
}
