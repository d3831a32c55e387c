//! Several queues: one ring and backend model per queue, on one disk image.

use super::*;

/// An engine with several queues, one backend model per ring, all on one disk image.
pub(super) struct MultiHarness {
    pub(super) eng: Box<Engine>,
    pub(super) grants: TestGrants,
    pub(super) mem: Mem,
    pub(super) ev: Ev,
    pub(super) queues: Vec<Model>,
    pub(super) disk: Vec<u8>,
    pub(super) done: Vec<BlockCompletion>,
}

impl MultiHarness {
    pub(super) fn new(queues: u32, layout: Layout) -> Self {
        Self::with_timeouts(queues, layout, Timeouts::default())
    }

    pub(super) fn with_timeouts(queues: u32, layout: Layout, timeouts: Timeouts) -> Self {
        let pool: [u64; 8] = core::array::from_fn(|i| 0x9000 + i as u64);
        let eng = boxed_engine(
            EngineConfig {
                timeouts,
                ..EngineConfig::new(7, 0x300)
            },
            &pool,
            &[0xa000, 0xa001],
        );
        let mut h = MultiHarness {
            eng,
            grants: TestGrants::default(),
            mem: Mem::default(),
            ev: Ev::default(),
            queues: Vec::new(),
            disk: disk_image(),
            done: Vec::new(),
        };
        h.attach(queues, layout);
        h
    }

    /// Lays out `queues` fresh rings, each with an honest backend model, connects and runs
    /// until the engine is up.
    pub(super) fn attach(&mut self, queues: u32, layout: Layout) {
        let feat = BackendFeatures {
            max_queues: queues,
            ..features(0, false)
        };
        let cfg = FrontendConfig {
            max_queues: MAX_QUEUES,
            ..config(0)
        };
        let params = FrontendParams {
            ring_page_order: 0,
            ..FrontendParams::negotiate(&cfg, &feat)
        };
        assert_eq!(params.queues, queues);
        let mems: Vec<RingMemory> = (0..queues)
            .map(|_| RingMemory::allocate(0).unwrap())
            .collect();
        let frames: Vec<[u64; 1]> = (0..queues).map(|q| [0x5000 + u64::from(q)]).collect();
        self.queues = mems.iter().map(|m| Model::new(m.clone(), layout)).collect();
        let mut io = Io::new(&mut self.grants, &mut self.ev, &mut self.mem);
        self.eng
            .attach_rings(
                params,
                mems.into_iter()
                    .zip(&frames)
                    .map(|(m, f)| (m, f.as_slice())),
                &mut io,
            )
            .unwrap();
        assert_eq!(self.eng.queues(), queues as usize);
        self.eng.connected(&feat, &mut io);
        self.run();
        assert_eq!(self.eng.state(), EngineState::Running);
    }

    /// Lets queue `q`'s backend take and answer everything it has, on the shared disk.
    pub(super) fn serve(&mut self, q: usize) {
        let model = &mut self.queues[q];
        core::mem::swap(&mut model.disk, &mut self.disk);
        model.serve(&self.grants, &mut self.mem);
        core::mem::swap(&mut model.disk, &mut self.disk);
    }

    pub(super) fn submit(&mut self, tag: u64, op: BlockOp, segs: &[Segment]) {
        self.try_submit(tag, op, segs).unwrap();
    }

    pub(super) fn try_submit(
        &mut self,
        tag: u64,
        op: BlockOp,
        segs: &[Segment],
    ) -> Result<(), SubmitError> {
        let mut io = Io::new(&mut self.grants, &mut self.ev, &mut self.mem);
        let done = &mut self.done;
        self.eng
            .submit(Tag(tag), op, segs, &mut io, |c| done.push(c))
    }

    pub(super) fn poll(&mut self) -> Result<(), EngineError> {
        let mut io = Io::new(&mut self.grants, &mut self.ev, &mut self.mem);
        let done = &mut self.done;
        self.eng.poll(&mut io, |c| done.push(c))
    }

    pub(super) fn run(&mut self) {
        for _ in 0..1000 {
            for q in 0..self.queues.len() {
                self.serve(q);
            }
            self.poll().unwrap();
            if self.eng.in_flight() == 0 && self.eng.state() != EngineState::Probing {
                return;
            }
        }
        panic!("no progress");
    }
}

#[test]
fn multi_queue_spreads_requests_over_the_rings() {
    for layout in [Layout::X86_64, Layout::X86_32] {
        let mut h = MultiHarness::new(4, layout);
        assert_eq!(h.eng.counters().layout, Some(layout));
        // The probe ran on queue 0 only.
        assert!(h.queues[1..].iter().all(|m| m.log.is_empty()));
        let mut written = Vec::new();
        for k in 0..12u64 {
            let segs = pages(2, 0x100 + 2 * k);
            let data = fill(&mut h.mem, &segs, k as u8);
            let sector = 64 * k;
            h.submit(
                k,
                BlockOp::Write {
                    sector,
                    sectors: 16,
                    fua: false,
                },
                &segs,
            );
            written.push((sector, data));
        }
        // Twelve requests in flight, three on each ring.
        let loads: Vec<usize> = h
            .queues
            .iter_mut()
            .map(|m| m.ring.unconsumed_requests().unwrap() as usize)
            .collect();
        assert_eq!(loads, [3, 3, 3, 3], "{layout:?}");
        h.run();
        assert_eq!(h.done.len(), 12);
        assert!(h.done.iter().all(|c| c.status == BlockStatus::Ok));
        assert_eq!(h.eng.counters().queue_requests[..5], [3, 3, 3, 3, 0]);
        for (sector, data) in &written {
            let a = *sector as usize * 512;
            assert_eq!(&h.disk[a..a + data.len()], &data[..]);
        }
        // Every queue's backend was notified on its own channel.
        assert!(h.ev.per_queue.len() == 4 && h.ev.per_queue.iter().all(|&n| n > 0));
        // Read back through the rings.
        h.done.clear();
        for (k, (sector, data)) in written.iter().enumerate() {
            let segs = pages(2, 0x400 + 2 * k as u64);
            h.submit(
                100 + k as u64,
                BlockOp::Read {
                    sector: *sector,
                    sectors: 16,
                },
                &segs,
            );
            h.run();
            assert_eq!(gather(&h.mem, &segs), *data);
        }
        assert!(h.queues.iter().all(|m| m.log.len() >= 3));
    }
}

#[test]
fn a_flush_waits_for_the_writes_of_every_queue() {
    let mut h = MultiHarness::new(3, Layout::X86_64);
    for k in 0..3u64 {
        let segs = pages(1, 0x100 + k);
        fill(&mut h.mem, &segs, k as u8);
        h.submit(
            k,
            BlockOp::Write {
                sector: 8 * k,
                sectors: 8,
                fua: false,
            },
            &segs,
        );
    }
    h.submit(9, BlockOp::Flush, &[]);
    // Queues 0 and 1 answer; the write on queue 2 is still out, so the flush must wait.
    h.serve(0);
    h.serve(1);
    h.poll().unwrap();
    assert_eq!(h.done.len(), 2);
    let flushes = |h: &MultiHarness| {
        h.queues
            .iter()
            .flat_map(|m| &m.log)
            .filter(|s| s.op == blkif::BLKIF_OP_FLUSH_DISKCACHE)
            .count()
    };
    h.serve(0);
    h.serve(1);
    assert_eq!(flushes(&h), 0, "flush issued before every write completed");
    h.serve(2);
    h.poll().unwrap();
    h.run();
    assert_eq!(flushes(&h), 1);
    assert_eq!(
        h.done.last().map(|c| (c.tag, c.status)),
        Some((Tag(9), BlockStatus::Ok))
    );
}

#[test]
fn a_response_on_another_queue_stops_the_device() {
    let mut h = MultiHarness::new(2, Layout::X86_64);
    for k in 0..2u64 {
        let segs = pages(1, 0x100 + k);
        h.submit(
            k,
            BlockOp::Read {
                sector: 8 * k,
                sectors: 8,
            },
            &segs,
        );
    }
    let (grants, mem) = (&h.grants, &h.mem);
    h.queues[0].take(grants, mem);
    h.queues[1].take(grants, mem);
    // Queue 0's backend answers with the id of the request that went out on queue 1.
    let stolen = h.queues[1].pending[0].clone();
    h.queues[0].respond(stolen.id, stolen.op, blkif::BLKIF_RSP_OKAY);
    h.queues[0].ring.push_responses();
    let e = h.poll().unwrap_err();
    assert_eq!(
        e,
        EngineError::WrongQueue {
            id: stolen.id,
            issued_on: 1,
            answered_on: 0
        }
    );
    assert!(h.done.is_empty(), "nothing completed on a bad response");
    assert_eq!(h.eng.state(), EngineState::Failed(e));
}

#[test]
fn attach_rings_refuses_the_wrong_number_of_rings() {
    let mut eng: Box<Engine> =
        boxed_engine(EngineConfig::new(7, 0x300), &[0; 8], &[0xa000, 0xa001]);
    let (mut grants, mut ev, mut mem) = (TestGrants::default(), Ev::default(), Mem::default());
    let mut io = Io::new(&mut grants, &mut ev, &mut mem);
    let feat = BackendFeatures {
        max_queues: 2,
        ..features(0, false)
    };
    let cfg = FrontendConfig {
        max_queues: 2,
        ..config(0)
    };
    let params = FrontendParams {
        ring_page_order: 0,
        ..FrontendParams::negotiate(&cfg, &feat)
    };
    let one = [(RingMemory::allocate(0).unwrap(), &[0x5000u64][..])];
    assert!(eng.attach_rings(params, one, &mut io).is_err());
    let three = (0..3).map(|_| (RingMemory::allocate(0).unwrap(), &[0x5000u64][..]));
    assert!(eng.attach_rings(params, three, &mut io).is_err());
    assert_eq!(
        grants.active.len(),
        0,
        "a refused attach leaves no grant behind"
    );
    assert_eq!(eng.state(), EngineState::Disconnected);
}
