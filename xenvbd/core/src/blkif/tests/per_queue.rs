//! One engine per queue, each under its own (here: exclusive) borrow, sharing only the device's
//! [`DeviceOrder`]: requests stay on the submitting queue, and a flush waits for the writes
//! accepted earlier on every queue.

use super::*;
use crate::blkif::DeviceOrder;

struct PerQueue {
    engines: Vec<Box<Engine>>,
    models: Vec<Model>,
    order: DeviceOrder,
    grants: TestGrants,
    mem: Mem,
    ev: Ev,
    disk: Vec<u8>,
    done: Vec<BlockCompletion>,
}

impl PerQueue {
    fn new(queues: u32, layout: Layout) -> Self {
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
        let mut h = PerQueue {
            engines: Vec::new(),
            models: Vec::new(),
            order: DeviceOrder::new(),
            grants: TestGrants::default(),
            mem: Mem::default(),
            ev: Ev::default(),
            disk: disk_image(),
            done: Vec::new(),
        };
        for q in 0..queues {
            // Each queue's pool and indirect pages are its own.
            let base = 0x9000 + 0x100 * u64::from(q);
            let pool: [u64; 8] = core::array::from_fn(|i| base + i as u64);
            let mut eng = boxed_engine(
                EngineConfig::for_queue(7, 0x300, q as u8),
                &pool,
                &[base + 0x10, base + 0x11],
            );
            let mem = RingMemory::allocate(0).unwrap();
            h.models.push(Model::new(mem.clone(), layout));
            let mut io = Io::new(&mut h.grants, &mut h.ev, &mut h.mem).with_order(&h.order);
            eng.attach_queue(params, mem, &[0x5000 + u64::from(q)], &mut io)
                .unwrap();
            eng.connected(&feat, &mut io);
            h.engines.push(eng);
        }
        h.run();
        for eng in &h.engines {
            assert_eq!(eng.state(), EngineState::Running);
            assert_eq!(eng.counters().layout, Some(layout));
        }
        h
    }

    fn serve(&mut self, q: usize) {
        let model = &mut self.models[q];
        core::mem::swap(&mut model.disk, &mut self.disk);
        model.serve(&self.grants, &mut self.mem);
        core::mem::swap(&mut model.disk, &mut self.disk);
    }

    fn submit(&mut self, q: usize, tag: u64, op: BlockOp, segs: &[Segment]) {
        let mut io = Io::new(&mut self.grants, &mut self.ev, &mut self.mem).with_order(&self.order);
        let done = &mut self.done;
        self.engines[q]
            .submit(Tag(tag), op, segs, &mut io, |c| done.push(c))
            .unwrap();
    }

    fn poll(&mut self, q: usize) {
        let mut io = Io::new(&mut self.grants, &mut self.ev, &mut self.mem).with_order(&self.order);
        let done = &mut self.done;
        self.engines[q].poll(&mut io, |c| done.push(c)).unwrap();
    }

    /// Polls the queues the engines asked to be woken, until none is left.
    fn poll_woken(&mut self) {
        while let Some(q) = self.ev.wakes.pop() {
            self.poll(q);
        }
    }

    fn run(&mut self) {
        for _ in 0..1000 {
            for q in 0..self.models.len() {
                self.serve(q);
                self.poll(q);
            }
            self.poll_woken();
            if self
                .engines
                .iter()
                .all(|e| e.in_flight() == 0 && e.state() != EngineState::Probing)
            {
                return;
            }
        }
        panic!("no progress");
    }

    fn flushes(&self, q: usize) -> usize {
        self.models[q]
            .log
            .iter()
            .filter(|s| s.op == blkif::BLKIF_OP_FLUSH_DISKCACHE)
            .count()
    }
}

fn write(sector: u64) -> BlockOp {
    BlockOp::Write {
        sector,
        sectors: 8,
        fua: false,
    }
}

#[test]
fn each_queue_issues_on_its_own_ring_and_data_comes_back() {
    for layout in [Layout::X86_64, Layout::X86_32] {
        let mut h = PerQueue::new(3, layout);
        let mut written = Vec::new();
        for k in 0..9u64 {
            let q = (k % 3) as usize;
            let segs = pages(1, 0x100 + k);
            let data = fill(&mut h.mem, &segs, k as u8);
            // Queue 0 gets all of the first three: least-loaded spreading would move them.
            let q = if k < 3 { 0 } else { q };
            h.submit(q, k, write(8 * k), &segs);
            written.push((q, 8 * k, data));
        }
        let sent: Vec<u64> = h
            .engines
            .iter()
            .map(|e| e.counters().ring_requests)
            .collect();
        assert_eq!(sent, [5, 2, 2], "{layout:?}");
        let on_ring: Vec<u32> = h
            .models
            .iter_mut()
            .map(|m| m.ring.unconsumed_requests().unwrap())
            .collect();
        assert_eq!(on_ring, [5, 2, 2], "{layout:?}");
        // Each engine notified its own queue's channel only.
        assert!(h.ev.per_queue.len() == 3 && h.ev.per_queue.iter().all(|&n| n > 0));
        h.run();
        assert_eq!(h.done.len(), 9);
        assert!(h.done.iter().all(|c| c.status == BlockStatus::Ok));
        for (_, sector, data) in &written {
            let a = *sector as usize * 512;
            assert_eq!(&h.disk[a..a + data.len()], &data[..]);
        }
        // Read back on another queue than each was written on.
        h.done.clear();
        for (k, (q, sector, data)) in written.iter().enumerate() {
            let segs = pages(1, 0x400 + k as u64);
            h.submit(
                (q + 1) % 3,
                100 + k as u64,
                BlockOp::Read {
                    sector: *sector,
                    sectors: 8,
                },
                &segs,
            );
            h.run();
            assert_eq!(gather(&h.mem, &segs), *data);
        }
    }
}

#[test]
fn a_flush_on_one_queue_waits_for_earlier_writes_on_the_others_and_is_woken() {
    let mut h = PerQueue::new(3, Layout::X86_64);
    for q in 0..2u64 {
        let segs = pages(1, 0x100 + q);
        fill(&mut h.mem, &segs, q as u8);
        h.submit(q as usize, q, write(8 * q), &segs);
    }
    h.submit(2, 9, BlockOp::Flush, &[]);
    // A write accepted after the flush, on queue 0, does not hold it back.
    let later = pages(1, 0x180);
    h.submit(0, 10, write(800), &later);
    h.serve(2);
    h.poll(2);
    assert_eq!(h.flushes(2), 0, "flush issued before earlier writes");
    // Queue 0 answers both of its writes; queue 1's is still out.
    h.serve(0);
    h.poll(0);
    assert_eq!(h.done.len(), 2);
    h.poll_woken();
    h.serve(2);
    assert_eq!(h.flushes(2), 0, "flush issued before queue 1's write");
    // Queue 1 answers: its engine asks for queue 2 to be polled, and the flush goes out then.
    h.ev.wakes.clear();
    h.serve(1);
    h.poll(1);
    assert_eq!(h.ev.wakes, [2]);
    h.poll_woken();
    h.serve(2);
    assert_eq!(h.flushes(2), 1);
    h.poll(2);
    assert_eq!(
        h.done.last().map(|c| (c.tag, c.status)),
        Some((Tag(9), BlockStatus::Ok))
    );
    // Nothing else waits: no queue is woken for nothing.
    h.ev.wakes.clear();
    let segs = pages(1, 0x190);
    h.submit(1, 11, write(900), &segs);
    h.run();
    assert!(h.ev.wakes.is_empty());
}

#[test]
fn a_queue_refuses_an_index_beyond_the_device() {
    let feat = BackendFeatures {
        max_queues: 2,
        ..features(0, false)
    };
    let cfg = FrontendConfig {
        max_queues: MAX_QUEUES,
        ..config(0)
    };
    let params = FrontendParams::negotiate(&cfg, &feat);
    let pool: [u64; 8] = core::array::from_fn(|i| 0x9000 + i as u64);
    let mut eng = boxed_engine::<16, 64, 32, 8, 2>(
        EngineConfig::for_queue(7, 0x300, 2),
        &pool,
        &[0xa000, 0xa001],
    );
    let (mut grants, mut ev, mut mem) = (TestGrants::default(), Ev::default(), Mem::default());
    let mut io = Io::new(&mut grants, &mut ev, &mut mem);
    let ring = RingMemory::allocate(params.ring_page_order).unwrap();
    let frames: Vec<u64> = (0..params.ring_pages() as u64)
        .map(|i| 0x5000 + i)
        .collect();
    assert!(eng.attach_queue(params, ring, &frames, &mut io).is_err());
    assert!(grants.frames.is_empty());
}

#[test]
fn an_aborted_waiting_flush_is_not_woken_any_more() {
    let mut h = PerQueue::new(2, Layout::X86_64);
    let segs = pages(1, 0x100);
    h.submit(0, 1, write(0), &segs);
    h.submit(1, 2, BlockOp::Flush, &[]);
    assert_eq!(h.flushes(1), 0);
    {
        let mut io = Io::new(&mut h.grants, &mut h.ev, &mut h.mem).with_order(&h.order);
        let done = &mut h.done;
        assert!(h.engines[1].abort(Tag(2), &mut io, |c| done.push(c)));
    }
    assert_eq!(
        h.done.last().map(|c| (c.tag, c.status)),
        Some((Tag(2), BlockStatus::Aborted))
    );
    // Queue 0's answer asks nobody to poll: queue 1 no longer waits.
    h.ev.wakes.clear();
    h.serve(0);
    h.poll(0);
    assert!(h.ev.wakes.is_empty());
    assert_eq!(h.flushes(1), 0);
}
