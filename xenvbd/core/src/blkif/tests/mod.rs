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
        match self.pages.get(&frame) {
            Some(p) => buf.copy_from_slice(&p[offset..offset + buf.len()]),
            None => buf.fill(0),
        }
    }
    fn write(&mut self, frame: u64, offset: usize, data: &[u8]) {
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
}

impl Events for Ev {
    fn notify(&mut self, queue: usize) {
        self.notifies += 1;
        if self.per_queue.len() <= queue {
            self.per_queue.resize(queue + 1, 0);
        }
        self.per_queue[queue] += 1;
    }
    fn log(&mut self, event: LogEvent) {
        self.log.push(event);
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
        let eng = Box::new(Blkif::new(
            EngineConfig {
                timeouts,
                ..EngineConfig::new(7, 0x300)
            },
            &pool,
            &[0xa000, 0xa001],
        ));
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
        self.run();
        assert_eq!(self.eng.state(), EngineState::Running);
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
fn negotiation_parses_and_chooses() {
    let nodes: HashMap<&str, &str> = [
        ("max-ring-page-order", "6"),
        ("multi-queue-max-queues", "4"),
        ("feature-max-indirect-segments", "8192"),
        ("feature-persistent", "1"),
        ("feature-flush-cache", "1"),
        ("feature-discard", "1"),
        ("discard-granularity", "4096"),
        ("discard-secure", "1"),
        ("sectors", "2097152"),
        ("sector-size", "4096"),
        ("info", "4"),
        ("device-type", "disk"),
    ]
    .into_iter()
    .collect();
    let f = BackendFeatures::parse(|node, buf| {
        Ok(nodes.get(node).map(|v| {
            buf[..v.len()].copy_from_slice(v.as_bytes());
            v.len()
        }))
    })
    .unwrap();
    assert_eq!(f.max_ring_page_order, 6);
    let info = f.disk_info().unwrap();
    assert_eq!(
        (
            info.logical_block_size,
            info.physical_block_size,
            info.read_only
        ),
        (4096, 4096, true)
    );
    assert!(info.discard.unwrap().secure);
    let cfg = FrontendConfig {
        max_queues: 2,
        max_indirect_segments: 5000,
        ..FrontendConfig::default()
    };
    let p = FrontendParams::negotiate(&cfg, &f);
    assert_eq!(
        (
            p.ring_page_order,
            p.queues,
            p.indirect_segments,
            p.persistent
        ),
        (4, 2, 4096, true)
    );

    let mut out = Vec::new();
    let refs: Vec<GrantRef> = (10..26).collect();
    p.write_nodes::<()>(&[&refs, &refs], &[5, 6], |k, v| {
        out.push((std::string::String::from(k), std::string::String::from(v)));
        Ok(())
    })
    .unwrap();
    let get = |k: &str| out.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
    assert_eq!(get("ring-page-order").as_deref(), Some("4"));
    assert_eq!(get("multi-queue-num-queues").as_deref(), Some("2"));
    assert_eq!(get("queue-1/ring-ref15").as_deref(), Some("25"));
    assert_eq!(get("queue-0/event-channel").as_deref(), Some("5"));
    assert_eq!(get("protocol").as_deref(), Some("x86_64-abi"));
    assert_eq!(get("feature-persistent").as_deref(), Some("1"));
    assert_eq!(
        p.write_nodes::<()>(&[&refs], &[5], |_, _| Ok(())),
        Err(NodeError::Shape)
    );

    let single = FrontendParams::negotiate(&FrontendConfig::default(), &BackendFeatures::default());
    let mut out = Vec::new();
    single
        .write_nodes::<()>(&[&[8]], &[3], |k, v| {
            out.push(std::format!("{k}={v}"));
            Ok(())
        })
        .unwrap();
    assert_eq!(
        out,
        [
            "ring-ref=8",
            "event-channel=3",
            "protocol=x86_64-abi",
            "feature-persistent=1"
        ]
    );
}

#[test]
fn negotiation_errors_are_typed() {
    let parse = |node: &'static str, value: &'static str| {
        BackendFeatures::parse(move |n, buf| {
            Ok((n == node).then(|| {
                buf[..value.len()].copy_from_slice(value.as_bytes());
                value.len()
            }))
        })
    };
    assert_eq!(
        parse("sector-size", "1000"),
        Err(FeatureError::OutOfRange {
            node: "sector-size",
            value: 1000
        })
    );
    assert_eq!(
        parse("sectors", "12x"),
        Err(FeatureError::NotANumber { node: "sectors" })
    );
    assert_eq!(
        parse("device-type", "tape"),
        Err(FeatureError::UnknownValue {
            node: "device-type"
        })
    );
    assert_eq!(
        parse("info", "1").unwrap().disk_info(),
        Err(FeatureError::Missing { node: "sectors" })
    );
    assert!(parse("device-type", "cdrom").is_ok());
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
    let mut eng: Box<Engine> = Box::new(Blkif::new(EngineConfig::new(7, 0), &pool, &[1, 2]));
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

/// An engine with several queues, one backend model per ring, all on one disk image.
struct MultiHarness {
    eng: Box<Engine>,
    grants: TestGrants,
    mem: Mem,
    ev: Ev,
    queues: Vec<Model>,
    disk: Vec<u8>,
    done: Vec<BlockCompletion>,
}

impl MultiHarness {
    fn new(queues: u32, layout: Layout) -> Self {
        Self::with_timeouts(queues, layout, Timeouts::default())
    }

    fn with_timeouts(queues: u32, layout: Layout, timeouts: Timeouts) -> Self {
        let pool: [u64; 8] = core::array::from_fn(|i| 0x9000 + i as u64);
        let eng = Box::new(Blkif::new(
            EngineConfig {
                timeouts,
                ..EngineConfig::new(7, 0x300)
            },
            &pool,
            &[0xa000, 0xa001],
        ));
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
    fn attach(&mut self, queues: u32, layout: Layout) {
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
    fn serve(&mut self, q: usize) {
        let model = &mut self.queues[q];
        core::mem::swap(&mut model.disk, &mut self.disk);
        model.serve(&self.grants, &mut self.mem);
        core::mem::swap(&mut model.disk, &mut self.disk);
    }

    fn submit(&mut self, tag: u64, op: BlockOp, segs: &[Segment]) {
        self.try_submit(tag, op, segs).unwrap();
    }

    fn try_submit(&mut self, tag: u64, op: BlockOp, segs: &[Segment]) -> Result<(), SubmitError> {
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

    fn run(&mut self) {
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
    let mut eng: Box<Engine> = Box::new(Blkif::new(
        EngineConfig::new(7, 0x300),
        &[0; 8],
        &[0xa000, 0xa001],
    ));
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
fn operation(tag: u64, kind: u8, sector: u16, count: u8) -> (BlockOp, Vec<Segment>) {
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
fn check_honest_finish(
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
fn completions_per_tag(done: &[BlockCompletion]) -> Result<HashMap<u64, u32>, TestCaseError> {
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
