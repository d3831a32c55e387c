//! Engine tests against a small blkback model over plain memory and a memory disk image.

extern crate std;

use std::boxed::Box;
use std::collections::{HashMap, HashSet};
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;
use xen_abi::blkif::{self, x86_32, BlkifRequestSegment};
use xen_abi::types::{DomId, GrantRef};
use xen_ring::{RawBackRing, RingMemory};
use xenpci_core::grant_table::GrantError;
use zerocopy::{FromBytes, IntoBytes};

use super::*;
use crate::types::{BlockOp, GuestMemory, Segment, Tag, PAGE_SIZE};

mod adapter;
mod held;
mod hostile;
mod multi;
mod negotiate;
mod per_queue;
mod stack;
mod timeout;
mod trust;

#[derive(Default)]
struct Mem {
    pages: HashMap<u64, Box<[u8; PAGE_SIZE]>>,
}

impl Mem {
    fn page(&mut self, frame: u64) -> &mut [u8; PAGE_SIZE] {
        self.pages
            .entry(frame)
            .or_insert_with(|| Box::new([0; PAGE_SIZE]))
    }
}

impl GuestMemory for Mem {
    fn read(&self, frame: u64, offset: usize, buf: &mut [u8]) {
        stack::probe();
        match self.pages.get(&frame) {
            Some(p) => buf.copy_from_slice(&p[offset..offset + buf.len()]),
            None => buf.fill(0),
        }
    }
    fn write(&mut self, frame: u64, offset: usize, data: &[u8]) {
        stack::probe();
        self.page(frame)[offset..offset + data.len()].copy_from_slice(data);
    }
}

/// A grant table that checks the [`Grants`] contract: only granted references are ended, a
/// reference the backend maps stays granted (and is ended again later), and every frame ever
/// granted is recorded.
#[derive(Default)]
struct TestGrants {
    active: HashMap<GrantRef, (u64, bool)>,
    next: GrantRef,
    /// Grants the backend maps: ending them answers `StillMapped`.
    mapped: HashSet<GrantRef>,
    /// `end` calls answered `StillMapped`.
    still_mapped: u64,
    granted: u64,
    limit: Option<usize>,
    /// Every frame ever granted.
    frames: HashSet<u64>,
    /// Refuse to grant a frame that has a grant in force (a page reused while it may be
    /// mapped): the test fails.
    exclusive: bool,
}

impl Grants for TestGrants {
    fn grant(&mut self, domid: DomId, frame: u64, readonly: bool) -> Result<GrantRef, GrantError> {
        stack::probe();
        assert_eq!(domid, 7);
        if self.limit.is_some_and(|l| self.active.len() >= l) {
            return Err(GrantError::Exhausted);
        }
        if self.exclusive {
            let again = self.active.iter().find(|(_, (f, _))| *f == frame);
            assert!(
                again.is_none(),
                "frame {frame:#x} granted again while {again:?} is in force"
            );
        }
        self.next += 1;
        self.active.insert(self.next, (frame, readonly));
        self.granted += 1;
        self.frames.insert(frame);
        Ok(self.next)
    }
    fn end(&mut self, gref: GrantRef) -> Result<Ended, GrantError> {
        stack::probe();
        if !self.active.contains_key(&gref) {
            return Err(GrantError::NotGranted { gref });
        }
        if self.mapped.contains(&gref) {
            self.still_mapped += 1;
            return Ok(Ended::StillMapped);
        }
        self.active.remove(&gref);
        Ok(Ended::Revoked)
    }
}

#[derive(Default)]
struct Ev {
    notifies: u32,
    per_queue: Vec<u32>,
    log: Vec<LogEvent>,
    /// Queues another queue's engine asked to be polled.
    wakes: Vec<usize>,
}

impl Events for Ev {
    fn notify(&mut self, queue: usize) {
        stack::probe();
        self.notifies += 1;
        if self.per_queue.len() <= queue {
            self.per_queue.resize(queue + 1, 0);
        }
        self.per_queue[queue] += 1;
    }
    fn log(&mut self, event: LogEvent) {
        self.log.push(event);
    }
    fn wake(&mut self, queue: usize) {
        self.wakes.push(queue);
    }
}

/// A request as the backend model understood it.
#[derive(Clone, Debug)]
struct Seen {
    op: u8,
    inner: u8,
    id: u64,
    sector: u64,
    segs: Vec<BlkifRequestSegment>,
    discard: Option<(u64, u8)>,
}

struct Model {
    ring: RawBackRing,
    layout: Layout,
    disk: Vec<u8>,
    /// Requests taken but not answered yet.
    pending: Vec<Seen>,
    /// Every request seen, in order.
    log: Vec<Seen>,
    /// Answer requests covering this sector with an error.
    fail_sector: Option<u64>,
    /// Operations answered with EOPNOTSUPP although advertised.
    refuse: Vec<u8>,
    /// Persistent grants are in use (indirect pages may then be writable).
    persistent: bool,
    /// Indirect pages seen, by grant reference.
    indirect_grefs: HashSet<GrantRef>,
}

const DISK_SECTORS: u64 = 4096;

/// The model's disk at the start: byte `i` is `i % 251`, so no two sectors are alike.
fn disk_image() -> Vec<u8> {
    let pattern: Vec<u8> = (0..251).collect();
    let size = DISK_SECTORS as usize * 512;
    let mut disk = Vec::with_capacity(size);
    while disk.len() < size {
        let n = pattern.len().min(size - disk.len());
        disk.extend_from_slice(&pattern[..n]);
    }
    disk
}

impl Model {
    fn new(mem: RingMemory, layout: Layout) -> Self {
        Model {
            ring: RawBackRing::attach(mem, layout.entry_size()).unwrap(),
            layout,
            disk: disk_image(),
            pending: Vec::new(),
            log: Vec::new(),
            fail_sector: None,
            refuse: Vec::new(),
            persistent: false,
            indirect_grefs: HashSet::new(),
        }
    }

    /// Takes every published request without answering.
    fn take(&mut self, grants: &TestGrants, mem: &Mem) {
        let mut buf = [0u8; 112];
        let n = self.layout.entry_size();
        while self.ring.take_request(&mut buf[..n]).unwrap().is_some() {
            let seen = self.parse(&buf[..n], grants, mem);
            self.log.push(seen.clone());
            self.pending.push(seen);
        }
    }

    fn parse(&mut self, b: &[u8], grants: &TestGrants, mem: &Mem) -> Seen {
        let op = b[0];
        let (id, sector, direct, ind) = match self.layout {
            Layout::X86_64 => {
                if op == blkif::BLKIF_OP_INDIRECT {
                    let r = blkif::BlkifRequestIndirect::read_from_prefix(b).unwrap().0;
                    (
                        r.id,
                        r.sector_number,
                        None,
                        Some((r.indirect_op, r.nr_segments, r.indirect_grefs)),
                    )
                } else if op == blkif::BLKIF_OP_DISCARD {
                    let r = blkif::BlkifRequestDiscard::read_from_prefix(b).unwrap().0;
                    return Seen {
                        op,
                        inner: op,
                        id: r.id,
                        sector: r.sector_number,
                        segs: vec![],
                        discard: Some((r.nr_sectors, r.flag)),
                    };
                } else {
                    let r = blkif::BlkifRequestRw::read_from_prefix(b).unwrap().0;
                    (r.id, r.sector_number, Some((r.nr_segments, r.seg)), None)
                }
            }
            Layout::X86_32 => {
                if op == blkif::BLKIF_OP_INDIRECT {
                    let r = x86_32::BlkifRequestIndirect::read_from_prefix(b).unwrap().0;
                    (
                        r.id,
                        r.sector_number,
                        None,
                        Some((r.indirect_op, r.nr_segments, r.indirect_grefs)),
                    )
                } else if op == blkif::BLKIF_OP_DISCARD {
                    let r = x86_32::BlkifRequestDiscard::read_from_prefix(b).unwrap().0;
                    return Seen {
                        op,
                        inner: op,
                        id: r.id,
                        sector: r.sector_number,
                        segs: vec![],
                        discard: Some((r.nr_sectors, r.flag)),
                    };
                } else {
                    let r = x86_32::BlkifRequestRw::read_from_prefix(b).unwrap().0;
                    (r.id, r.sector_number, Some((r.nr_segments, r.seg)), None)
                }
            }
        };
        let mut segs = Vec::new();
        let mut inner = op;
        if let Some((n, seg)) = direct {
            if op == blkif::BLKIF_OP_READ || op == blkif::BLKIF_OP_WRITE {
                segs.extend_from_slice(&seg[..n as usize]);
            }
        }
        if let Some((iop, n, grefs)) = ind {
            inner = iop;
            for i in 0..n as usize {
                let page = grefs[i / 512];
                let (frame, ro) = grants.active[&page];
                assert!(
                    ro || self.persistent,
                    "indirect pages are granted read-only without persistent grants"
                );
                self.indirect_grefs.insert(page);
                let mut s = [0u8; 8];
                mem.read(frame, (i % 512) * 8, &mut s);
                segs.push(BlkifRequestSegment::read_from_bytes(&s).unwrap());
            }
        }
        Seen {
            op,
            inner,
            id,
            sector,
            segs,
            discard: None,
        }
    }

    /// Answers every pending request.
    fn answer(&mut self, grants: &TestGrants, mem: &mut Mem) {
        for req in std::mem::take(&mut self.pending) {
            let status = self.execute(&req, grants, mem);
            self.respond(req.id, req.op, status);
        }
        self.ring.push_responses();
    }

    fn serve(&mut self, grants: &TestGrants, mem: &mut Mem) {
        self.take(grants, mem);
        self.answer(grants, mem);
    }

    fn respond(&mut self, id: u64, op: u8, status: i16) {
        match self.layout {
            Layout::X86_64 => {
                let r = blkif::BlkifResponse {
                    id,
                    operation: op,
                    pad0: 0,
                    status,
                    pad1: [0; 4],
                };
                self.ring.push_response(r.as_bytes()).unwrap();
            }
            Layout::X86_32 => {
                let r = x86_32::BlkifResponse {
                    id,
                    operation: op,
                    pad0: 0,
                    status,
                };
                self.ring.push_response(r.as_bytes()).unwrap();
            }
        }
    }

    fn execute(&mut self, req: &Seen, grants: &TestGrants, mem: &mut Mem) -> i16 {
        if self.refuse.contains(&req.op) {
            return blkif::BLKIF_RSP_EOPNOTSUPP;
        }
        match req.inner {
            blkif::BLKIF_OP_READ | blkif::BLKIF_OP_WRITE => {
                let total: u64 = req
                    .segs
                    .iter()
                    .map(|s| u64::from(s.last_sect - s.first_sect + 1))
                    .sum();
                if let Some(f) = self.fail_sector {
                    if (req.sector..req.sector + total).contains(&f) {
                        return blkif::BLKIF_RSP_ERROR;
                    }
                }
                let mut at = req.sector as usize * 512;
                for s in &req.segs {
                    assert!(s.first_sect <= s.last_sect && s.last_sect < 8);
                    // Mapping a revoked grant fails, as it does in Xen.
                    let Some(&(frame, ro)) = grants.active.get(&s.gref) else {
                        return blkif::BLKIF_RSP_ERROR;
                    };
                    let off = s.first_sect as usize * 512;
                    let len = (s.last_sect - s.first_sect + 1) as usize * 512;
                    if req.inner == blkif::BLKIF_OP_READ {
                        assert!(!ro, "read into a read-only grant");
                        mem.write(frame, off, &self.disk[at..at + len]);
                    } else {
                        let mut b = vec![0; len];
                        mem.read(frame, off, &mut b);
                        self.disk[at..at + len].copy_from_slice(&b);
                    }
                    at += len;
                }
                blkif::BLKIF_RSP_OKAY
            }
            blkif::BLKIF_OP_FLUSH_DISKCACHE | blkif::BLKIF_OP_WRITE_BARRIER => {
                blkif::BLKIF_RSP_OKAY
            }
            blkif::BLKIF_OP_DISCARD => {
                let (n, _) = req.discard.unwrap();
                let a = req.sector as usize * 512;
                self.disk[a..a + n as usize * 512].fill(0);
                blkif::BLKIF_RSP_OKAY
            }
            _ => blkif::BLKIF_RSP_EOPNOTSUPP,
        }
    }
}

type Engine = Blkif<16, 64, 32, 8, 2>;

/// An engine initialised in place on the heap (`Blkif::EMPTY`, then `init`).
pub(super) fn boxed_engine<
    const JOBS: usize,
    const SEGS: usize,
    const SLOTS: usize,
    const POOL: usize,
    const IND: usize,
>(
    config: EngineConfig,
    pool_frames: &[u64; POOL],
    indirect_frames: &[u64; IND],
) -> Box<Blkif<JOBS, SEGS, SLOTS, POOL, IND>> {
    let mut engine = Box::new(Blkif::EMPTY);
    engine.init(config, pool_frames, indirect_frames);
    engine
}

struct Harness<const P: usize> {
    eng: Box<Blkif<16, 64, 32, P, 2>>,
    grants: TestGrants,
    mem: Mem,
    ev: Ev,
    be: Model,
    done: Vec<BlockCompletion>,
}

fn features(indirect: u32, persistent: bool) -> BackendFeatures {
    BackendFeatures {
        max_ring_page_order: 1,
        max_queues: 1,
        max_indirect_segments: indirect,
        persistent,
        flush_cache: true,
        barrier: false,
        discard: Some(crate::types::DiscardInfo {
            granularity: 512,
            alignment: 0,
            secure: false,
        }),
        sectors: Some(DISK_SECTORS),
        sector_size: Some(512),
        ..BackendFeatures::default()
    }
}

fn config(indirect: u32) -> FrontendConfig {
    FrontendConfig {
        max_indirect_segments: indirect,
        ..FrontendConfig::default()
    }
}

impl<const P: usize> Harness<P> {
    fn new(feat: BackendFeatures, cfg: FrontendConfig, layout: Layout) -> Self {
        Self::with_timeouts(feat, cfg, layout, Timeouts::default())
    }

    fn with_timeouts(
        feat: BackendFeatures,
        cfg: FrontendConfig,
        layout: Layout,
        timeouts: Timeouts,
    ) -> Self {
        let pool: [u64; P] = core::array::from_fn(|i| 0x9000 + i as u64);
        let eng = boxed_engine(
            EngineConfig {
                timeouts,
                ..EngineConfig::new(7, 0x300)
            },
            &pool,
            &[0xa000, 0xa001],
        );
        let mem = RingMemory::allocate(0).unwrap();
        let mut h = Harness {
            eng,
            grants: TestGrants::default(),
            mem: Mem::default(),
            ev: Ev::default(),
            be: Model::new(mem.clone(), layout),
            done: Vec::new(),
        };
        h.connect(mem, feat, cfg);
        h
    }

    fn connect(&mut self, mem: RingMemory, feat: BackendFeatures, cfg: FrontendConfig) {
        self.connect_only(mem, feat, cfg);
        self.run();
        assert_eq!(self.eng.state(), EngineState::Running);
    }

    /// [`connect`](Self::connect) up to the layout probe, without running it.
    fn connect_only(&mut self, mem: RingMemory, feat: BackendFeatures, cfg: FrontendConfig) {
        // Linux's blkback publishes these only when it connects: negotiate without them at
        // InitWait, as a real frontend must, and hand the full set over at Connected.
        let at_init_wait = BackendFeatures {
            flush_cache: false,
            barrier: false,
            discard: None,
            persistent: false,
            ..feat
        };
        let params = FrontendParams::negotiate(&cfg, &at_init_wait);
        let params = FrontendParams {
            ring_page_order: 0,
            ..params
        };
        let mut io = Io::new(&mut self.grants, &mut self.ev, &mut self.mem);
        self.eng
            .attach_ring(params, mem, &[0x5000], &mut io)
            .unwrap();
        self.eng.connected(&feat, &mut io);
        self.be.persistent = self.eng.params().is_some_and(|p| p.persistent);
    }

    fn submit(&mut self, tag: u64, op: BlockOp, segs: &[Segment]) -> Result<(), SubmitError> {
        let mut io = Io::new(&mut self.grants, &mut self.ev, &mut self.mem);
        let done = &mut self.done;
        self.eng
            .submit(Tag(tag), op, segs, &mut io, |c| done.push(c))
    }

    fn poll(&mut self) -> Result<(), EngineError> {
        let mut io = Io::new(&mut self.grants, &mut self.ev, &mut self.mem);
        let done = &mut self.done;
        self.eng.poll(&mut io, |c| done.push(c))
    }

    fn timer(&mut self, now: u64) -> TimerReport {
        let mut io = Io::new(&mut self.grants, &mut self.ev, &mut self.mem);
        let done = &mut self.done;
        self.eng.on_timer(now, &mut io, |c| done.push(c))
    }

    /// Serves and polls until nothing moves.
    fn run(&mut self) {
        for _ in 0..1000 {
            self.be.serve(&self.grants, &mut self.mem);
            self.poll().unwrap();
            if self.be.ring.unconsumed_requests().unwrap() == 0
                && self.eng.in_flight() == 0
                && !matches!(self.eng.state(), EngineState::Probing)
            {
                return;
            }
        }
        panic!("no progress");
    }
}

fn fill(mem: &mut Mem, segs: &[Segment], seed: u8) -> Vec<u8> {
    let mut data = Vec::new();
    for (k, s) in segs.iter().enumerate() {
        let bytes: Vec<u8> = (0..s.length)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed ^ k as u8))
            .collect();
        mem.write(s.frame, s.offset as usize, &bytes);
        data.extend_from_slice(&bytes);
    }
    data
}

fn gather(mem: &Mem, segs: &[Segment]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in segs {
        let mut b = vec![0; s.length as usize];
        mem.read(s.frame, s.offset as usize, &mut b);
        out.extend_from_slice(&b);
    }
    out
}

fn pages(n: u64, base: u64) -> Vec<Segment> {
    (0..n)
        .map(|i| Segment {
            frame: base + i,
            offset: 0,
            length: 4096,
        })
        .collect()
}

fn write_then_read<const P: usize>(
    h: &mut Harness<P>,
    sector: u64,
    wsegs: &[Segment],
    rsegs: &[Segment],
) {
    let data = fill(&mut h.mem, wsegs, sector as u8);
    let sectors = data.len() as u64 / 512;
    h.submit(
        1,
        BlockOp::Write {
            sector,
            sectors,
            fua: false,
        },
        wsegs,
    )
    .unwrap();
    h.run();
    let c = h.done.pop().unwrap();
    assert_eq!(
        (c.tag, c.status, c.transferred),
        (Tag(1), BlockStatus::Ok, data.len() as u64)
    );
    let a = sector as usize * 512;
    assert_eq!(
        &h.be.disk[a..a + data.len()],
        &data[..],
        "disk image after write"
    );
    h.submit(2, BlockOp::Read { sector, sectors }, rsegs)
        .unwrap();
    h.run();
    let c = h.done.pop().unwrap();
    assert_eq!((c.tag, c.status), (Tag(2), BlockStatus::Ok));
    assert_eq!(gather(&h.mem, rsegs), data, "data read back");
}

#[test]
fn layout_probe_selects_x86_64() {
    let mut h = Harness::<8>::new(features(0, false), config(0), Layout::X86_64);
    assert_eq!(h.eng.counters().layout, Some(Layout::X86_64));
    assert!(h.ev.log.contains(&LogEvent::LayoutSelected(Layout::X86_64)));
    write_then_read(&mut h, 8, &pages(3, 0x100), &pages(3, 0x200));
}

#[test]
fn layout_probe_selects_x86_32() {
    let mut h = Harness::<8>::new(features(64, false), config(64), Layout::X86_32);
    assert_eq!(h.eng.counters().layout, Some(Layout::X86_32));
    assert_eq!(h.eng.params().unwrap().layout, Layout::X86_32);
    write_then_read(&mut h, 8, &pages(3, 0x100), &pages(3, 0x200));
    write_then_read(&mut h, 100, &pages(40, 0x300), &pages(40, 0x400));
    assert!(h.eng.counters().indirect_requests > 0);
}

#[test]
fn a_probe_answer_matching_neither_layout_fails() {
    let pool = [0x9000u64; 8];
    let mut eng: Box<Engine> = boxed_engine(EngineConfig::new(7, 0), &pool, &[1, 2]);
    let (mut g, mut ev, mut mem) = (TestGrants::default(), Ev::default(), Mem::default());
    let ring = RingMemory::allocate(0).unwrap();
    let mut be = RawBackRing::attach(ring.clone(), 112).unwrap();
    let mut io = Io::new(&mut g, &mut ev, &mut mem);
    let p = FrontendParams::negotiate(&config(0), &features(0, false));
    eng.attach_ring(
        FrontendParams {
            ring_page_order: 0,
            ..p
        },
        ring,
        &[1],
        &mut io,
    )
    .unwrap();
    eng.connected(&features(0, false), &mut io);
    let mut b = [0u8; 112];
    be.take_request(&mut b).unwrap().unwrap();
    let r = blkif::BlkifResponse {
        id: 42,
        operation: 0xfe,
        pad0: 0,
        status: -1,
        pad1: [0; 4],
    };
    be.push_response(r.as_bytes()).unwrap();
    be.push_responses();
    assert_eq!(
        eng.poll(&mut io, |_| {}),
        Err(EngineError::ProbeFailed { id: 42 })
    );
    assert!(matches!(eng.state(), EngineState::Failed(_)));
}

#[test]
fn large_requests_split_without_indirect() {
    let mut h = Harness::<8>::new(features(0, false), config(0), Layout::X86_64);
    write_then_read(&mut h, 0, &pages(40, 0x100), &pages(40, 0x200));
    let writes: Vec<_> =
        h.be.log
            .iter()
            .filter(|s| s.op == blkif::BLKIF_OP_WRITE)
            .collect();
    assert_eq!(
        writes.iter().map(|s| s.segs.len()).collect::<Vec<_>>(),
        [11, 11, 11, 7]
    );
    assert_eq!(
        writes.iter().map(|s| s.sector).collect::<Vec<_>>(),
        [0, 88, 176, 264]
    );
    assert_eq!(h.eng.counters().indirect_requests, 0);
}

#[test]
fn indirect_requests_carry_many_segments() {
    let mut h = Harness::<8>::new(features(32, false), config(32), Layout::X86_64);
    write_then_read(&mut h, 16, &pages(40, 0x100), &pages(40, 0x200));
    let writes: Vec<_> =
        h.be.log
            .iter()
            .filter(|s| s.inner == blkif::BLKIF_OP_WRITE)
            .collect();
    assert_eq!(
        writes
            .iter()
            .map(|s| (s.op, s.segs.len()))
            .collect::<Vec<_>>(),
        [(6, 32), (1, 8)]
    );
    assert_eq!(h.eng.counters().indirect_requests, 2);
    // Every grant (data and indirect pages) is ended after completion.
    assert_eq!(h.grants.active.len(), 1, "only the ring stays granted");
}

#[test]
fn split_requests_complete_as_one_with_partial_transfer() {
    let mut h = Harness::<8>::new(features(0, false), config(0), Layout::X86_64);
    h.be.fail_sector = Some(2 * 88 + 3);
    let segs = pages(40, 0x100);
    fill(&mut h.mem, &segs, 1);
    h.submit(
        9,
        BlockOp::Write {
            sector: 0,
            sectors: 320,
            fua: false,
        },
        &segs,
    )
    .unwrap();
    h.run();
    assert_eq!(
        h.done,
        [BlockCompletion {
            tag: Tag(9),
            status: BlockStatus::IoError,
            transferred: 22 * 4096
        }]
    );
    assert_eq!(h.eng.counters().errors, 1);
    assert_eq!(h.eng.state(), EngineState::Running);
}

#[test]
fn unaligned_buffers_bounce_and_the_pool_waits_when_empty() {
    let mut h = Harness::<2>::new(features(0, false), config(0), Layout::X86_64);
    // Six 1 KiB pieces at odd offsets: 6 KiB of data, two bounce pages at least.
    let segs: Vec<Segment> = (0..6)
        .map(|i| Segment {
            frame: 0x100 + i,
            offset: 100 + i as u16,
            length: 1024,
        })
        .collect();
    let data = fill(&mut h.mem, &segs, 3);
    h.submit(
        1,
        BlockOp::Write {
            sector: 40,
            sectors: 12,
            fua: false,
        },
        &segs,
    )
    .unwrap();
    // A second unaligned write queues behind: the pool (2 pages) is held by the first.
    let segs2: Vec<Segment> = (0..2)
        .map(|i| Segment {
            frame: 0x200 + i,
            offset: 7,
            length: 2048,
        })
        .collect();
    let data2 = fill(&mut h.mem, &segs2, 4);
    h.submit(
        2,
        BlockOp::Write {
            sector: 80,
            sectors: 8,
            fua: false,
        },
        &segs2,
    )
    .unwrap();
    h.be.take(&h.grants, &h.mem);
    assert_eq!(h.be.pending.len(), 1, "second write waits for bounce pages");
    assert_eq!(h.eng.outstanding(), 2);
    h.be.answer(&h.grants, &mut h.mem);
    h.poll().unwrap();
    h.run();
    assert_eq!(
        h.done
            .iter()
            .map(|c| (c.tag.0, c.status))
            .collect::<Vec<_>>(),
        [(1, BlockStatus::Ok), (2, BlockStatus::Ok)]
    );
    assert_eq!(&h.be.disk[40 * 512..52 * 512], &data[..]);
    assert_eq!(&h.be.disk[80 * 512..88 * 512], &data2[..]);
    assert!(h.eng.counters().bounced_segments >= 3);
    // And back through bounce pages into unaligned buffers.
    let rsegs: Vec<Segment> = (0..3)
        .map(|i| Segment {
            frame: 0x300 + i,
            offset: 3,
            length: 2048,
        })
        .collect();
    h.done.clear();
    h.submit(
        3,
        BlockOp::Read {
            sector: 40,
            sectors: 12,
        },
        &rsegs,
    )
    .unwrap();
    h.run();
    assert_eq!(h.done[0].status, BlockStatus::Ok);
    assert_eq!(gather(&h.mem, &rsegs), data);
}

#[test]
fn grant_exhaustion_waits_then_completes() {
    let mut h = Harness::<8>::new(features(0, false), config(0), Layout::X86_64);
    h.grants.limit = Some(4); // the ring plus three data pages
    let segs = pages(8, 0x100);
    let data = fill(&mut h.mem, &segs, 9);
    h.submit(
        1,
        BlockOp::Write {
            sector: 0,
            sectors: 64,
            fua: false,
        },
        &segs,
    )
    .unwrap();
    h.run();
    assert_eq!(h.done[0].status, BlockStatus::Ok);
    assert_eq!(&h.be.disk[..8 * 4096], &data[..]);
    assert!(
        h.be.log
            .iter()
            .filter(|s| s.op == blkif::BLKIF_OP_WRITE)
            .count()
            >= 3
    );
}

#[test]
fn persistent_grants_are_reused() {
    let mut h = Harness::<8>::new(features(0, true), config(0), Layout::X86_64);
    assert!(h.eng.params().unwrap().persistent);
    write_then_read(&mut h, 0, &pages(4, 0x100), &pages(4, 0x200));
    let granted = h.grants.granted;
    write_then_read(&mut h, 64, &pages(4, 0x300), &pages(4, 0x400));
    assert_eq!(
        h.grants.granted, granted,
        "no new grants for the second pair"
    );
    assert!(h.eng.counters().persistent_hits >= 8);
    // Pool pages stay granted (ring + 8 pool pages at most).
    assert!(h.grants.active.len() <= 9);
}

#[test]
fn flush_is_a_barrier_and_fua_adds_a_flush() {
    let mut h = Harness::<8>::new(features(0, false), config(0), Layout::X86_64);
    let a = pages(1, 0x100);
    let b = pages(1, 0x200);
    fill(&mut h.mem, &a, 1);
    fill(&mut h.mem, &b, 2);
    h.submit(
        1,
        BlockOp::Write {
            sector: 0,
            sectors: 8,
            fua: false,
        },
        &a,
    )
    .unwrap();
    h.submit(2, BlockOp::Flush, &[]).unwrap();
    h.submit(
        3,
        BlockOp::Write {
            sector: 8,
            sectors: 8,
            fua: true,
        },
        &b,
    )
    .unwrap();
    h.be.take(&h.grants, &h.mem);
    assert_eq!(h.be.pending.len(), 1, "flush waits for the earlier write");
    h.be.answer(&h.grants, &mut h.mem);
    h.poll().unwrap();
    h.be.take(&h.grants, &h.mem);
    assert_eq!(
        h.be.pending.iter().map(|s| s.op).collect::<Vec<_>>(),
        [blkif::BLKIF_OP_FLUSH_DISKCACHE]
    );
    h.run();
    let ops: Vec<u8> =
        h.be.log
            .iter()
            .map(|s| s.op)
            .filter(|&o| o != 0xfe)
            .collect();
    assert_eq!(ops, [1, 3, 1, 3]);
    assert_eq!(
        h.done.iter().map(|c| c.tag.0).collect::<Vec<_>>(),
        [1, 2, 3]
    );
}

#[test]
fn discard_and_unsupported_operations() {
    let mut h = Harness::<8>::new(features(0, false), config(0), Layout::X86_64);
    h.submit(
        1,
        BlockOp::Discard {
            sector: 8,
            sectors: 8,
            secure: false,
        },
        &[],
    )
    .unwrap();
    h.run();
    assert_eq!(h.done[0].status, BlockStatus::Ok);
    assert!(h.be.disk[8 * 512..16 * 512].iter().all(|&b| b == 0));
    // Secure discard is not offered: refused without a ring request.
    h.submit(
        2,
        BlockOp::Discard {
            sector: 8,
            sectors: 8,
            secure: true,
        },
        &[],
    )
    .unwrap();
    assert_eq!(h.done[1].status, BlockStatus::NotSupported);
    // Invalid: segments do not add up.
    assert_eq!(
        h.submit(
            3,
            BlockOp::Read {
                sector: 0,
                sectors: 9
            },
            &pages(1, 1)
        ),
        Err(SubmitError::Invalid)
    );
}

fn hostile(rsp: impl FnOnce(&Seen) -> (u64, u8, i16), twice: bool) -> EngineError {
    let mut h = Harness::<8>::new(features(0, false), config(0), Layout::X86_64);
    h.submit(
        1,
        BlockOp::Read {
            sector: 0,
            sectors: 8,
        },
        &pages(1, 0x100),
    )
    .unwrap();
    h.submit(
        2,
        BlockOp::Read {
            sector: 8,
            sectors: 8,
        },
        &pages(1, 0x101),
    )
    .unwrap();
    h.be.take(&h.grants, &h.mem);
    let req = h.be.pending[0].clone();
    let (id, op, status) = rsp(&req);
    h.be.respond(id, op, status);
    if twice {
        h.be.respond(id, op, status);
    }
    h.be.ring.push_responses();
    let e = h.poll().unwrap_err();
    assert_eq!(h.eng.state(), EngineState::Failed(e));
    assert!(h.ev.log.contains(&LogEvent::Error(e)));
    assert_eq!(
        h.submit(2, BlockOp::Flush, &[]),
        Err(SubmitError::Unavailable)
    );
    if !twice {
        assert!(h.done.is_empty(), "nothing completed on a bad response");
    }
    // Shutting down completes the request with a clear error and revokes everything.
    let mut io = Io::new(&mut h.grants, &mut h.ev, &mut h.mem);
    let mut done = Vec::new();
    h.eng.shutdown(&mut io, |c| done.push(c));
    assert!(h.grants.active.is_empty());
    e
}

#[test]
fn hostile_responses_stop_the_device() {
    assert!(matches!(
        hostile(|r| (r.id ^ (1 << 40), r.op, 0), false),
        EngineError::UnknownId { .. }
    ));
    assert!(matches!(
        hostile(|r| (r.id + 5, r.op, 0), false),
        EngineError::UnknownId { .. }
    ));
    assert!(matches!(
        hostile(|r| (r.id, r.op, 0), true),
        EngineError::DuplicateId { .. }
    ));
    assert!(matches!(
        hostile(|r| (r.id, blkif::BLKIF_OP_WRITE, 0), false),
        EngineError::WrongOperation {
            expected: 0,
            got: 1,
            ..
        }
    ));
    assert!(matches!(
        hostile(|r| (r.id, r.op, 7), false),
        EngineError::BadStatus { status: 7, .. }
    ));
}

#[test]
fn reconnect_resubmits_in_flight_requests() {
    let mut h = Harness::<8>::new(features(32, false), config(32), Layout::X86_64);
    let w = pages(40, 0x100);
    let data = fill(&mut h.mem, &w, 5);
    h.submit(
        1,
        BlockOp::Write {
            sector: 0,
            sectors: 320,
            fua: false,
        },
        &w,
    )
    .unwrap();
    h.submit(2, BlockOp::Flush, &[]).unwrap();
    let r = pages(2, 0x300);
    h.submit(
        3,
        BlockOp::Read {
            sector: 1000,
            sectors: 16,
        },
        &r,
    )
    .unwrap();
    h.be.take(&h.grants, &h.mem);
    assert!(!h.be.pending.is_empty());
    // The backend goes away with the requests unanswered and still mapping one page.
    let held = h.be.pending[0].segs[0].gref;
    h.grants.mapped.insert(held);
    let mut io = Io::new(&mut h.grants, &mut h.ev, &mut h.mem);
    h.eng.disconnect(&mut io);
    assert_eq!(
        h.grants.active.keys().collect::<Vec<_>>(),
        [&held],
        "every grant but the mapped one revoked on disconnect"
    );
    assert_eq!(h.eng.counters().deferred_revocations, 1);
    assert_eq!(h.eng.outstanding(), 3);
    assert!(h.ev.log.contains(&LogEvent::Resubmitting(3)));
    // A new backend without indirect segments and with the other layout.
    let old_disk = h.be.disk.clone();
    let mem = RingMemory::allocate(0).unwrap();
    h.be = Model::new(mem.clone(), Layout::X86_32);
    h.be.disk = old_disk;
    h.connect(mem, features(0, false), config(32));
    h.run();
    // The write still has a page the old backend maps: it is not issued again (its old grant
    // would be forgotten), and everything behind it waits.
    assert!(h.done.is_empty());
    assert_eq!(h.eng.in_flight(), 0);
    h.timer(10);
    assert!(h.done.is_empty());
    h.grants.mapped.clear();
    assert_eq!(h.timer(20).revoking, 0);
    h.run();
    assert_eq!(
        h.done
            .iter()
            .map(|c| (c.tag.0, c.status))
            .collect::<Vec<_>>(),
        [
            (1, BlockStatus::Ok),
            (2, BlockStatus::Ok),
            (3, BlockStatus::Ok)
        ]
    );
    assert_eq!(&h.be.disk[..40 * 4096], &data[..]);
    let ops: Vec<(u8, usize)> =
        h.be.log
            .iter()
            .filter(|s| s.op != 0xfe)
            .map(|s| (s.op, s.segs.len()))
            .collect();
    assert_eq!(ops, [(1, 11), (1, 11), (1, 11), (1, 7), (3, 0), (0, 2)]);
    assert_eq!(h.eng.counters().resubmitted, 3);
}

#[test]
fn backend_gone_for_good_completes_everything_and_revokes() {
    let mut h = Harness::<8>::new(features(0, true), config(0), Layout::X86_64);
    write_then_read(&mut h, 0, &pages(2, 0x100), &pages(2, 0x200));
    h.submit(
        5,
        BlockOp::Read {
            sector: 0,
            sectors: 8,
        },
        &pages(1, 0x100),
    )
    .unwrap();
    h.submit(
        6,
        BlockOp::Write {
            sector: 0,
            sectors: 8,
            fua: false,
        },
        &pages(1, 0x100),
    )
    .unwrap();
    h.be.take(&h.grants, &h.mem);
    let mapped: Vec<GrantRef> = h.grants.active.keys().copied().take(2).collect();
    h.grants.mapped.extend(mapped.iter().copied());
    let mut io = Io::new(&mut h.grants, &mut h.ev, &mut h.mem);
    let mut done = Vec::new();
    h.eng.shutdown(&mut io, |c| done.push(c));
    // The buffers were never granted (persistent grants: everything is copied), so the
    // operations complete; the two pages the backend maps stay out of reach.
    assert_eq!(
        done.iter().map(|c| (c.tag.0, c.status)).collect::<Vec<_>>(),
        [
            (5, BlockStatus::Disconnected),
            (6, BlockStatus::Disconnected)
        ]
    );
    assert_eq!(h.grants.active.len(), 2);
    assert_eq!(h.eng.counters().deferred_revocations, 2);
    let held = h.eng.holdings();
    assert_eq!(held.pool_pages + held.indirect_pages + held.ring_pages, 2);
    assert_eq!(h.eng.state(), EngineState::Closed);
    h.grants.mapped.clear();
    h.timer(1);
    assert!(h.grants.active.is_empty());
    assert!(h.eng.holdings().is_empty());
    assert_eq!(
        h.submit(7, BlockOp::Flush, &[]),
        Err(SubmitError::Unavailable)
    );
}

fn sg_list(base: u64) -> impl Strategy<Value = Vec<Segment>> {
    prop::collection::vec((0u16..4096, 1u16..4096, any::<bool>()), 1..20).prop_map(move |raw| {
        let mut segs = Vec::new();
        let mut total = 0u32;
        for (k, (off, len, aligned)) in raw.into_iter().enumerate() {
            let (offset, length) = if aligned {
                let off = off & !511;
                (off, (len & !511).clamp(512, 4096 - off))
            } else {
                (off, len.min(4096 - off))
            };
            segs.push(Segment {
                frame: base + k as u64,
                offset,
                length,
            });
            total += u32::from(length);
        }
        let pad = (512 - total % 512) % 512;
        if pad > 0 {
            segs.push(Segment {
                frame: base + 100,
                offset: 17,
                length: pad as u16,
            });
        }
        segs
    })
}

/// Another list of the same total length, cut differently.
fn recut(segs: &[Segment], base: u64, cut: u16) -> Vec<Segment> {
    let mut total: u32 = segs.iter().map(|s| u32::from(s.length)).sum();
    let mut out = Vec::new();
    let mut k = 0;
    while total > 0 {
        let offset = (cut.wrapping_mul(k as u16 + 1)) % 4000;
        let length = (4096 - u32::from(offset))
            .min(total)
            .min(u32::from(cut.max(1)) * 7);
        out.push(Segment {
            frame: base + k,
            offset,
            length: length as u16,
        });
        total -= length;
        k += 1;
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_scatter_gather_round_trips(
        segs in sg_list(0x1000),
        cut in 100u16..600,
        sector in 0u64..2000,
        persistent in any::<bool>(),
        indirect in any::<bool>(),
        x86_32 in any::<bool>(),
    ) {
        let n = if indirect { 64 } else { 0 };
        let layout = if x86_32 { Layout::X86_32 } else { Layout::X86_64 };
        let mut h = Harness::<8>::new(features(n, persistent), config(n), layout);
        let rsegs = recut(&segs, 0x3000, cut);
        prop_assume!(rsegs.len() <= 64);
        write_then_read(&mut h, sector, &segs, &rsegs);
        prop_assert_eq!(h.grants.active.len(), if persistent { h.grants.active.len() } else { 1 });
    }
}

#[test]
fn an_advertised_operation_the_backend_refuses_is_not_sent_again() {
    let mut h = Harness::<8>::new(features(0, false), config(0), Layout::X86_64);
    h.be.refuse = vec![blkif::BLKIF_OP_FLUSH_DISKCACHE, blkif::BLKIF_OP_DISCARD];
    let discard = BlockOp::Discard {
        sector: 8,
        sectors: 8,
        secure: false,
    };
    for round in 0..2u64 {
        h.submit(10 * round + 1, BlockOp::Flush, &[]).unwrap();
        h.run();
        h.submit(10 * round + 2, discard, &[]).unwrap();
        h.run();
    }
    let on_ring = |op| h.be.log.iter().filter(|s| s.op == op).count();
    assert_eq!(on_ring(blkif::BLKIF_OP_FLUSH_DISKCACHE), 1);
    assert_eq!(on_ring(blkif::BLKIF_OP_DISCARD), 1);
    let statuses: Vec<(Tag, BlockStatus)> = h.done.iter().map(|c| (c.tag, c.status)).collect();
    assert_eq!(
        statuses,
        [
            (Tag(1), BlockStatus::NotSupported),
            (Tag(2), BlockStatus::NotSupported),
            // No flush on offer any more and no barrier: nothing to flush.
            (Tag(11), BlockStatus::Ok),
            (Tag(12), BlockStatus::NotSupported),
        ]
    );
    assert!(h
        .ev
        .log
        .contains(&LogEvent::NotSupported(blkif::BLKIF_OP_FLUSH_DISKCACHE)));
    assert!(h
        .ev
        .log
        .contains(&LogEvent::NotSupported(blkif::BLKIF_OP_DISCARD)));
    let p = h.eng.params().unwrap();
    assert!(!p.flush && p.discard.is_none());
}

#[test]
fn indirect_pages_keep_their_grants_with_persistent_grants() {
    // A pool as large as the requests, so that every piece finds a kept page.
    let mut h = Harness::<40>::new(features(32, true), config(32), Layout::X86_64);
    assert!(h.eng.params().unwrap().persistent);
    write_then_read(&mut h, 16, &pages(40, 0x100), &pages(40, 0x200));
    let granted = h.grants.granted;
    write_then_read(&mut h, 512, &pages(40, 0x300), &pages(40, 0x400));
    assert_eq!(
        h.grants.granted, granted,
        "the second pair needs no new grant, indirect pages included"
    );
    assert!(h.eng.counters().indirect_requests >= 4);
    assert_eq!(
        h.be.indirect_grefs.len(),
        1,
        "one indirect page, granted once"
    );
    // Disconnecting ends every kept grant.
    let mut io = Io::new(&mut h.grants, &mut h.ev, &mut h.mem);
    h.eng.disconnect(&mut io);
    assert!(h.grants.active.is_empty());
}
