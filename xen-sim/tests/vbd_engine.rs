//! The blkif engine of xenvbd-core over the model's blkback: grants, event channels and guest
//! memory are the simulated host's; the backend reads the ring with its own parser.

use proptest::prelude::*;
use xen_abi::event_channel::{EvtchnAllocUnbound, EvtchnSend};
use xen_abi::types::EvtchnPort;
use xen_ring::RingMemory;
use xen_sim::blkback::{BlkFeatures, Blkback, RingAbi};
use xen_sim::{SimEvtchnOps, SimGrantEntries, Xen};
use xenpci_core::evtchn::EventChannelOps;
use xenpci_core::grant_table::{GrantLink, GrantTable};
use xenvbd_core::blkif::{
    BackendFeatures, Blkif, BlockCompletion, BlockStatus, EngineConfig, EngineError, EngineState,
    Events, FrontendConfig, FrontendParams, Io, Layout, LogEvent,
};
use xenvbd_core::{BlockOp, Segment, Tag};

const SECTORS: u64 = 8192;
const DATA_PAGES: u64 = 64;

/// Guest memory of the simulated host, as the engine sees it.
struct SimMem(Xen);

impl xenvbd_core::GuestMemory for SimMem {
    fn read(&self, frame: u64, offset: usize, buf: &mut [u8]) {
        self.0.read_guest(frame, offset, buf).unwrap();
    }
    fn write(&mut self, frame: u64, offset: usize, data: &[u8]) {
        self.0.write_guest(frame, offset, data).unwrap();
    }
}

/// The guest end of the event channel: a real `EVTCHNOP_send`.
struct SimEvents {
    ops: SimEvtchnOps,
    port: EvtchnPort,
    notifies: u32,
    log: Vec<LogEvent>,
}

impl Events for SimEvents {
    fn notify(&mut self, queue: usize) {
        assert_eq!(queue, 0, "the model serves one queue");
        self.notifies += 1;
        self.ops.send(&EvtchnSend { port: self.port }).unwrap();
    }
    fn log(&mut self, event: LogEvent) {
        self.log.push(event);
    }
}

type Engine = Blkif<16, 64, 32, 8, 2>;

/// An engine initialised in place on the heap (`Blkif::EMPTY`, then `init`).
fn boxed_engine<
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

struct Harness {
    xen: Xen,
    grants: GrantTable<'static, SimGrantEntries>,
    ev: SimEvents,
    mem: SimMem,
    eng: Box<Engine>,
    be: Blkback,
    feat: BackendFeatures,
    cfg: FrontendConfig,
    /// The engine's view of the ring pages and their guest frames (kept in step with the
    /// simulated memory around every backend step).
    ring: Option<(RingMemory, Vec<u64>)>,
    /// The `protocol` node the frontend published.
    published: &'static str,
    data: u64,
    done: Vec<BlockCompletion>,
}

fn parse_features(be: &Blkback) -> BackendFeatures {
    let nodes = be.nodes();
    BackendFeatures::parse(|node, buf| {
        Ok(nodes.iter().find(|(k, _)| *k == node).map(|(_, v)| {
            buf[..v.len()].copy_from_slice(v.as_bytes());
            v.len()
        }))
    })
    .unwrap()
}

impl Harness {
    fn new(features: BlkFeatures, x86_32: bool, cfg: FrontendConfig) -> Self {
        let xen = Xen::default();
        let capacity = xen.grant_entries().capacity();
        let links: &'static [GrantLink] =
            Box::leak(xen_sim::grant_links(capacity as usize).into_boxed_slice());
        let grants = GrantTable::new(xen.grant_entries(), links, capacity).unwrap();
        let mut arg = EvtchnAllocUnbound {
            dom: xen.guest_domid(),
            remote_dom: 0,
            port: 0,
        };
        xen.evtchn_ops().alloc_unbound(&mut arg).unwrap();
        let pool: [u64; 8] = core::array::from_fn(|_| xen.alloc_page());
        let ind: [u64; 2] = core::array::from_fn(|_| xen.alloc_page());
        let data = xen.alloc_page();
        for _ in 1..DATA_PAGES {
            xen.alloc_page();
        }
        let eng = boxed_engine(EngineConfig::new(0, 0x300), &pool, &ind);
        let mut be = Blkback::new(xen.dom0(), SECTORS, features);
        be.force_x86_32(x86_32);
        let feat = parse_features(&be);
        let mut h = Harness {
            ev: SimEvents {
                ops: xen.evtchn_ops(),
                port: arg.port,
                notifies: 0,
                log: Vec::new(),
            },
            mem: SimMem(xen.clone()),
            xen,
            grants,
            eng,
            be,
            feat,
            cfg,
            ring: None,
            published: "",
            data,
            done: Vec::new(),
        };
        h.connect();
        h
    }

    /// The xenbus handshake as far as the ring goes: negotiate, attach, connect the backend,
    /// probe.
    fn connect(&mut self) {
        self.feat = parse_features(&self.be);
        let params = FrontendParams::negotiate(&self.cfg, &self.feat);
        let mem = RingMemory::allocate(params.ring_page_order).unwrap();
        let frames: Vec<u64> = (0..params.ring_pages())
            .map(|_| self.xen.alloc_page())
            .collect();
        let mut io = Io::new(&mut self.grants, &mut self.ev, &mut self.mem);
        self.eng
            .attach_ring(params, mem.clone(), &frames, &mut io)
            .unwrap();
        let mut refs = [0; 16];
        let n = self.eng.ring_refs(&mut refs);
        self.ring = Some((mem, frames));
        self.published = params.layout.protocol();
        self.ring_to_sim();
        let dom0 = self.xen.dom0();
        let back_port = dom0
            .bind_interdomain(self.xen.guest_domid(), self.ev.port)
            .unwrap();
        self.be
            .connect(
                &refs[..n],
                Some(params.layout.protocol()),
                Some(back_port),
                params.persistent,
            )
            .unwrap();
        let mut io = Io::new(&mut self.grants, &mut self.ev, &mut self.mem);
        self.eng.connected(&self.feat, &mut io);
        self.run();
        assert_eq!(self.eng.state(), EngineState::Running);
    }

    fn ring_to_sim(&self) {
        let (mem, frames) = self.ring.as_ref().unwrap();
        for (i, f) in frames.iter().enumerate() {
            let mut page = vec![0; 4096];
            mem.read_bytes(i * 4096, &mut page).unwrap();
            self.xen.write_guest(*f, 0, &page).unwrap();
        }
    }

    fn ring_from_sim(&self) {
        let (mem, frames) = self.ring.as_ref().unwrap();
        for (i, f) in frames.iter().enumerate() {
            let mut page = vec![0; 4096];
            self.xen.read_guest(*f, 0, &mut page).unwrap();
            mem.write_bytes(i * 4096, &page).unwrap();
        }
    }

    /// One backend pass over the ring.
    fn serve(&mut self) -> usize {
        self.ring_to_sim();
        let n = self.be.serve().unwrap();
        self.ring_from_sim();
        n
    }

    fn release(&mut self) -> usize {
        self.ring_to_sim();
        let n = self.be.release_held().unwrap();
        self.ring_from_sim();
        n
    }

    fn poll(&mut self) -> Result<(), EngineError> {
        let mut io = Io::new(&mut self.grants, &mut self.ev, &mut self.mem);
        let done = &mut self.done;
        self.eng.poll(&mut io, |c| done.push(c))
    }

    fn submit(&mut self, tag: u64, op: BlockOp, segs: &[Segment]) {
        let mut io = Io::new(&mut self.grants, &mut self.ev, &mut self.mem);
        let done = &mut self.done;
        self.eng
            .submit(Tag(tag), op, segs, &mut io, |c| done.push(c))
            .unwrap();
    }

    /// Serves and polls until nothing is in flight.
    fn run(&mut self) {
        for _ in 0..1000 {
            self.serve();
            self.poll().unwrap();
            if self.eng.in_flight() == 0 && self.eng.state() != EngineState::Probing {
                return;
            }
        }
        panic!("no progress");
    }

    fn take(&mut self, tag: u64) -> BlockCompletion {
        let i = self
            .done
            .iter()
            .position(|c| c.tag == Tag(tag))
            .unwrap_or_else(|| panic!("no completion for {tag}"));
        self.done.remove(i)
    }

    fn fill(&self, segs: &[Segment], seed: u8) -> Vec<u8> {
        let mut all = Vec::new();
        for (k, s) in segs.iter().enumerate() {
            let b: Vec<u8> = (0..s.length)
                .map(|i| {
                    (i as u8)
                        .wrapping_mul(29)
                        .wrapping_add(seed ^ (k as u8 * 7))
                })
                .collect();
            self.xen.write_guest(s.frame, s.offset.into(), &b).unwrap();
            all.extend_from_slice(&b);
        }
        all
    }

    fn gather(&self, segs: &[Segment]) -> Vec<u8> {
        let mut all = Vec::new();
        for s in segs {
            let mut b = vec![0; s.length.into()];
            self.xen
                .read_guest(s.frame, s.offset.into(), &mut b)
                .unwrap();
            all.extend_from_slice(&b);
        }
        all
    }

    fn pages(&self, first: u64, n: u64) -> Vec<Segment> {
        (first..first + n)
            .map(|i| Segment {
                frame: self.data + i,
                offset: 0,
                length: 4096,
            })
            .collect()
    }

    fn write_read(&mut self, sector: u64, wsegs: &[Segment], rsegs: &[Segment]) {
        let data = self.fill(wsegs, sector as u8);
        let sectors = data.len() as u64 / 512;
        let op = BlockOp::Write {
            sector,
            sectors,
            fua: false,
        };
        self.submit(1, op, wsegs);
        self.run();
        let c = self.take(1);
        assert_eq!(
            (c.status, c.transferred),
            (BlockStatus::Ok, data.len() as u64)
        );
        let a = sector as usize * 512;
        assert_eq!(
            &self.be.disk()[a..a + data.len()],
            &data[..],
            "disk after write"
        );
        self.submit(2, BlockOp::Read { sector, sectors }, rsegs);
        self.run();
        assert_eq!(self.take(2).status, BlockStatus::Ok);
        assert_eq!(self.gather(rsegs), data, "data read back");
    }
}

fn indirect(n: u32) -> BlkFeatures {
    BlkFeatures {
        max_indirect_segments: n,
        ..BlkFeatures::default()
    }
}

fn cfg(indirect: u32, persistent: bool, order: u32) -> FrontendConfig {
    FrontendConfig {
        max_ring_page_order: order,
        max_queues: 1,
        max_indirect_segments: indirect,
        persistent,
        trust_backend: true,
    }
}

/// Random segments over distinct data pages (`base` onwards), whose lengths add up to a whole
/// number of sectors.
fn segments(base: u64, spec: &[(u16, u16)]) -> Vec<Segment> {
    let mut out: Vec<Segment> = spec
        .iter()
        .enumerate()
        .map(|(i, &(off, len))| {
            let off = off % 4096;
            let len = 1 + len % (4096 - off);
            Segment {
                frame: base + i as u64,
                offset: off,
                length: len,
            }
        })
        .collect();
    let sum: u64 = out.iter().map(|s| u64::from(s.length)).sum();
    let pad = (512 - sum % 512) % 512;
    if pad > 0 {
        out.push(Segment {
            frame: base + spec.len() as u64,
            offset: 0,
            length: pad as u16,
        });
    }
    out
}

/// Cuts `total` bytes into segments of random lengths (at most a page each).
fn resplit(base: u64, total: u64, cuts: &[u16]) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut left = total;
    let mut i = 0;
    while left > 0 {
        let c = cuts.get(i).copied().unwrap_or(4096);
        let len = u64::from(1 + c % 4096).min(left);
        let off = if len < 4096 { (4096 - len) / 2 } else { 0 };
        out.push(Segment {
            frame: base + i as u64,
            offset: off as u16,
            length: len as u16,
        });
        left -= len;
        i += 1;
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn scatter_gather_read_write_is_byte_exact(
        x86_32 in any::<bool>(),
        ind in prop_oneof![Just(0u32), Just(32u32)],
        persistent in any::<bool>(),
        order in 0u32..2,
        spec in prop::collection::vec((any::<u16>(), any::<u16>()), 1..14),
        cuts in prop::collection::vec(any::<u16>(), 0..14),
        sector in 0u64..(SECTORS - 64 * 8),
    ) {
        let features = BlkFeatures {
            persistent,
            max_ring_page_order: 1,
            ..indirect(ind)
        };
        let mut h = Harness::new(features, x86_32, cfg(ind, true, order));
        let expect = if x86_32 { Layout::X86_32 } else { Layout::X86_64 };
        prop_assert_eq!(h.eng.counters().layout, Some(expect));
        let wsegs = segments(h.data, &spec);
        let total: u64 = wsegs.iter().map(|s| u64::from(s.length)).sum();
        let rsegs = resplit(h.data + 32, total, &cuts);
        prop_assume!(rsegs.len() <= 30);
        h.write_read(sector, &wsegs, &rsegs);
        if persistent {
            prop_assert!(h.be.persistent_mappings() > 0);
        }
    }
}

#[test]
fn the_probe_finds_an_x86_32_backend_that_ignores_protocol() {
    let mut h = Harness::new(indirect(64), true, cfg(64, false, 0));
    // The frontend published x86_64-abi; the backend reads x86_32 anyway.
    assert_eq!(h.published, "x86_64-abi");
    assert_eq!(h.be.abi(), Some(RingAbi::X86_32));
    assert_eq!(h.eng.counters().layout, Some(Layout::X86_32));
    assert!(h.ev.log.contains(&LogEvent::LayoutSelected(Layout::X86_32)));
    let (w, r) = (h.pages(0, 3), h.pages(3, 3));
    h.write_read(8, &w, &r);
    let (w, r) = (h.pages(0, 30), h.pages(30, 30));
    h.write_read(200, &w, &r);
    assert!(h.eng.counters().indirect_requests > 0);
    assert!(h.be.log.iter().any(|q| q.operation == 6 && q.inner == 1));
    // The notifications went through the simulated event channel.
    assert!(h.ev.notifies > 0);
    assert!(h.xen.dom0().events_received() > 0);
}

#[test]
fn the_probe_keeps_x86_64_with_a_native_backend() {
    let mut h = Harness::new(BlkFeatures::default(), false, cfg(0, false, 0));
    assert_eq!(h.be.abi(), Some(RingAbi::X86_64));
    assert_eq!(h.eng.counters().layout, Some(Layout::X86_64));
    let (w, r) = (h.pages(0, 20), h.pages(20, 20));
    h.write_read(0, &w, &r);
    // No indirect: split into direct requests of at most 11 segments.
    assert!(h.be.log.iter().all(|q| q.segments.len() <= 11));
    assert_eq!(h.eng.counters().indirect_requests, 0);
}

#[test]
fn flush_and_discard_follow_what_is_advertised() {
    let mut h = Harness::new(BlkFeatures::default(), false, cfg(0, false, 0));
    h.submit(1, BlockOp::Flush, &[]);
    h.run();
    assert_eq!(h.take(1).status, BlockStatus::Ok);
    assert_eq!(h.be.flushes, 1);
    h.submit(
        2,
        BlockOp::Discard {
            sector: 16,
            sectors: 8,
            secure: false,
        },
        &[],
    );
    h.run();
    assert_eq!(h.take(2).status, BlockStatus::Ok);
    assert!(h.be.disk()[16 * 512..24 * 512].iter().all(|&b| b == 0));
    assert_ne!(h.be.disk()[24 * 512], 0);

    // A backend without flush or discard: nothing goes on the ring for them.
    let mut h = Harness::new(
        BlkFeatures {
            flush_cache: false,
            discard: false,
            ..BlkFeatures::default()
        },
        false,
        cfg(0, false, 0),
    );
    let before = h.be.log.len();
    h.submit(3, BlockOp::Flush, &[]);
    h.submit(
        4,
        BlockOp::Discard {
            sector: 0,
            sectors: 8,
            secure: false,
        },
        &[],
    );
    h.run();
    assert_eq!(h.take(3).status, BlockStatus::Ok);
    assert_eq!(h.take(4).status, BlockStatus::NotSupported);
    assert_eq!(h.be.log.len(), before);
    assert_eq!(h.be.flushes, 0);
}

#[test]
fn persistent_grants_are_mapped_once_and_reused() {
    let features = BlkFeatures {
        persistent: true,
        ..BlkFeatures::default()
    };
    let mut h = Harness::new(features, false, cfg(0, true, 0));
    assert!(h.eng.params().unwrap().persistent);
    let (w, r) = (h.pages(0, 4), h.pages(4, 4));
    h.write_read(0, &w, &r);
    let mapped = h.be.persistent_mappings();
    assert!(mapped > 0 && mapped <= 8);
    h.write_read(64, &w, &r);
    assert_eq!(h.be.persistent_mappings(), mapped);
    assert!(h.eng.counters().persistent_hits > 0);
}

#[test]
fn an_io_error_fails_the_operation_only() {
    let mut h = Harness::new(BlkFeatures::default(), false, cfg(0, false, 0));
    h.be.faults.fail_sector = Some(40);
    let segs = h.pages(0, 2);
    h.submit(
        1,
        BlockOp::Read {
            sector: 32,
            sectors: 16,
        },
        &segs,
    );
    h.run();
    assert_eq!(h.take(1).status, BlockStatus::IoError);
    assert_eq!(h.eng.state(), EngineState::Running);
}

#[test]
fn delayed_responses_complete_when_released() {
    let mut h = Harness::new(BlkFeatures::default(), false, cfg(0, false, 0));
    h.be.faults.hold = true;
    let segs = h.pages(0, 2);
    h.submit(
        1,
        BlockOp::Read {
            sector: 0,
            sectors: 16,
        },
        &segs,
    );
    assert_eq!(h.serve(), 1);
    h.poll().unwrap();
    assert!(h.done.is_empty());
    assert_eq!(h.eng.in_flight(), 1);
    assert_eq!(h.release(), 1);
    h.poll().unwrap();
    assert_eq!(h.take(1).status, BlockStatus::Ok);
    assert_eq!(h.gather(&segs), h.be.disk()[..8192]);
}

#[test]
fn reordered_responses_are_handled() {
    let mut h = Harness::new(BlkFeatures::default(), false, cfg(0, false, 0));
    h.be.faults.hold = true;
    h.be.faults.reverse = true;
    let mut expect = Vec::new();
    for k in 0..4u64 {
        let segs = h.pages(k * 2, 2);
        let data = h.fill(&segs, k as u8 + 1);
        let op = BlockOp::Write {
            sector: k * 100,
            sectors: 16,
            fua: false,
        };
        h.submit(k, op, &segs);
        expect.push((k * 100, data));
    }
    assert_eq!(h.serve(), 4);
    assert_eq!(h.release(), 4);
    h.poll().unwrap();
    for k in 0..4 {
        assert_eq!(h.take(k).status, BlockStatus::Ok);
    }
    for (sector, data) in expect {
        let a = sector as usize * 512;
        assert_eq!(&h.be.disk()[a..a + data.len()], &data[..]);
    }
    assert_eq!(h.eng.state(), EngineState::Running);
}

#[test]
fn a_duplicated_response_is_a_protocol_error() {
    let mut h = Harness::new(BlkFeatures::default(), false, cfg(0, false, 0));
    h.be.faults.duplicate_next = 1;
    let segs = h.pages(0, 2);
    h.submit(
        1,
        BlockOp::Read {
            sector: 0,
            sectors: 8,
        },
        &segs[..1],
    );
    h.submit(
        2,
        BlockOp::Read {
            sector: 8,
            sectors: 8,
        },
        &segs[1..],
    );
    assert_eq!(h.serve(), 2);
    let e = h.poll().unwrap_err();
    assert!(matches!(e, EngineError::DuplicateId { .. }), "{e:?}");
    assert_eq!(h.eng.state(), EngineState::Failed(e));
    assert!(h.ev.log.contains(&LogEvent::Error(e)));
    // The first completed; nothing completed on the strength of the copy.
    assert_eq!(h.take(1).status, BlockStatus::Ok);
    assert!(h.done.is_empty());
}

#[test]
fn an_extra_response_poisons_the_ring() {
    let mut h = Harness::new(BlkFeatures::default(), false, cfg(0, false, 0));
    h.be.faults.duplicate_next = 1;
    let segs = h.pages(0, 1);
    h.submit(
        1,
        BlockOp::Read {
            sector: 0,
            sectors: 8,
        },
        &segs,
    );
    h.serve();
    let e = h.poll().unwrap_err();
    assert!(matches!(e, EngineError::Ring(_)), "{e:?}");
    assert!(matches!(h.eng.state(), EngineState::Failed(_)));
    assert!(h.done.is_empty());
}

#[test]
fn a_corrupted_response_id_is_a_protocol_error() {
    let mut h = Harness::new(BlkFeatures::default(), false, cfg(0, false, 0));
    h.be.faults.corrupt_next = 1;
    let segs = h.pages(0, 1);
    h.submit(
        1,
        BlockOp::Read {
            sector: 0,
            sectors: 8,
        },
        &segs,
    );
    h.serve();
    let e = h.poll().unwrap_err();
    assert!(matches!(e, EngineError::UnknownId { .. }), "{e:?}");
    assert!(matches!(h.eng.state(), EngineState::Failed(_)));
    // Nothing completed on the strength of the bad response.
    assert!(h.done.is_empty());
}

#[test]
fn a_backend_restart_mid_io_loses_no_data() {
    let features = BlkFeatures {
        persistent: true,
        ..indirect(32)
    };
    let mut h = Harness::new(features, false, cfg(32, true, 0));
    h.be.faults.hold = true;
    let mut expect = Vec::new();
    for k in 0..3u64 {
        let segs = h.pages(k * 12, 12);
        let data = h.fill(&segs, 0x40 + k as u8);
        let op = BlockOp::Write {
            sector: 512 + k * 96,
            sectors: 96,
            fua: false,
        };
        h.submit(k, op, &segs);
        expect.push((512 + k * 96, data));
    }
    let rsegs = h.pages(40, 4);
    h.submit(
        9,
        BlockOp::Read {
            sector: 512,
            sectors: 32,
        },
        &rsegs,
    );
    assert!(h.serve() > 0);
    assert!(h.be.held() > 0);
    // The backend dies with the responses unsent; the frontend sees it close and reconnects.
    h.be.restart();
    assert!(h.be.lost > 0);
    let mut io = Io::new(&mut h.grants, &mut h.ev, &mut h.mem);
    h.eng.disconnect(&mut io);
    assert!(h
        .ev
        .log
        .iter()
        .any(|e| matches!(e, LogEvent::Resubmitting(_))));
    h.be.faults.hold = false;
    h.connect();
    h.run();
    for k in 0..3 {
        assert_eq!(h.take(k).status, BlockStatus::Ok);
    }
    assert_eq!(h.take(9).status, BlockStatus::Ok);
    for (sector, data) in &expect {
        let a = *sector as usize * 512;
        assert_eq!(&h.be.disk()[a..a + data.len()], &data[..]);
    }
    assert_eq!(h.gather(&rsegs), expect[0].1[..16384]);
    assert!(h.eng.counters().resubmitted > 0);
}

#[test]
fn a_page_the_backend_keeps_mapped_holds_the_completion_until_unmapped() {
    let mut h = Harness::new(BlkFeatures::default(), false, cfg(0, false, 0));
    h.be.faults.keep_mapped = true;
    let w = h.pages(0, 2);
    let data = h.fill(&w, 9);
    let op = BlockOp::Write {
        sector: 64,
        sectors: 16,
        fua: false,
    };
    h.submit(1, op, &w);
    h.serve();
    h.poll().unwrap();
    assert_eq!(h.be.kept(), 2);
    // The real grant table's entries carry the backend's mapping: the engine keeps the grants
    // (nothing parked on the table's deferred list) and the operation open.
    assert!(
        h.done.is_empty(),
        "completed while the backend maps the buffer"
    );
    assert_eq!(h.eng.counters().deferred_revocations, 2);
    assert_eq!(h.grants.deferred_count(), 0);
    assert_eq!(h.eng.holdings().operations, 1);
    let mut io = Io::new(&mut h.grants, &mut h.ev, &mut h.mem);
    let done = &mut h.done;
    let report = h.eng.on_timer(10, &mut io, |c| done.push(c));
    assert_eq!(report.revoking, 2);
    assert!(h.done.is_empty());
    assert_eq!(h.be.unmap_kept().unwrap(), 2);
    let mut io = Io::new(&mut h.grants, &mut h.ev, &mut h.mem);
    let done = &mut h.done;
    let report = h.eng.on_timer(20, &mut io, |c| done.push(c));
    assert_eq!(report.revoking, 0);
    assert_eq!(h.take(1).status, BlockStatus::Ok);
    assert_eq!(h.eng.counters().revocations_completed, 2);
    assert!(h.eng.holdings().is_empty());
    assert_eq!(&h.be.disk()[64 * 512..80 * 512], &data[..]);
    h.be.faults.keep_mapped = false;
    let r = h.pages(8, 2);
    h.write_read(100, &w, &r);
}
