//! The SCSI-to-engine adapter over the engine and the blkback model.

use super::*;
use crate::adapter::ScsiAdapter;
use crate::scsi::{Disk, DiskConfig, Identity};
use crate::types::{DataDirection, ScsiCompletion, ScsiRequest, ScsiStatus};

struct Lun<const CMDS: usize> {
    h: Harness<8>,
    disk: Disk,
    adapter: ScsiAdapter<CMDS>,
    scsi: Vec<ScsiCompletion>,
}

fn cdb10(op: u8, lba: u32, blocks: u16) -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = op;
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[7..9].copy_from_slice(&blocks.to_be_bytes());
    c
}

fn unmap_list(descriptors: &[(u64, u32)]) -> Vec<u8> {
    let mut v = vec![0u8; 8];
    v[0..2].copy_from_slice(&((6 + 16 * descriptors.len()) as u16).to_be_bytes());
    v[2..4].copy_from_slice(&((16 * descriptors.len()) as u16).to_be_bytes());
    for &(lba, n) in descriptors {
        v.extend_from_slice(&lba.to_be_bytes());
        v.extend_from_slice(&n.to_be_bytes());
        v.extend_from_slice(&[0; 4]);
    }
    v
}

impl<const CMDS: usize> Lun<CMDS> {
    fn new() -> Self {
        let feat = features(0, false);
        let info = feat.disk_info().unwrap();
        Lun {
            h: Harness::<8>::new(feat, config(0), Layout::X86_64),
            disk: Disk::new(DiskConfig::new(info, Identity::new(&info, "1", b"1"))),
            adapter: ScsiAdapter::new(),
            scsi: Vec::new(),
        }
    }

    fn submit(&mut self, tag: u64, cdb: &[u8], direction: DataDirection, segs: &[Segment]) {
        let req = ScsiRequest {
            tag: Tag(tag),
            cdb,
            direction,
            segments: segs,
            transfer_length: segs.iter().map(|s| u32::from(s.length)).sum(),
            lun: 0,
        };
        let h = &mut self.h;
        let mut io = Io::new(&mut h.grants, &mut h.ev, &mut h.mem);
        let scsi = &mut self.scsi;
        self.adapter
            .submit(&mut self.disk, &mut h.eng, &req, &mut io, |c| scsi.push(c));
    }

    fn poll(&mut self) {
        let h = &mut self.h;
        let mut io = Io::new(&mut h.grants, &mut h.ev, &mut h.mem);
        let scsi = &mut self.scsi;
        self.adapter
            .poll(&mut h.eng, &mut io, |c| scsi.push(c))
            .unwrap();
    }

    fn run(&mut self) {
        for _ in 0..100 {
            self.h.be.serve(&self.h.grants, &mut self.h.mem);
            self.poll();
            if self.h.eng.in_flight() == 0 && self.h.eng.state() != EngineState::Probing {
                return;
            }
        }
        panic!("no progress");
    }

    fn statuses(&self) -> Vec<(u64, ScsiStatus)> {
        self.scsi.iter().map(|c| (c.tag.0, c.status)).collect()
    }
}

#[test]
fn reads_and_writes_go_through_the_engine_and_complete_once() {
    let mut l = Lun::<4>::new();
    let w = pages(2, 0x100);
    let data = fill(&mut l.h.mem, &w, 3);
    l.submit(1, &cdb10(0x2a, 10, 16), DataDirection::ToDevice, &w);
    l.run();
    assert_eq!(l.statuses(), [(1, ScsiStatus::Good)]);
    assert_eq!(l.scsi[0].transferred, 8192);
    assert_eq!(&l.h.be.disk[10 * 512..26 * 512], &data[..]);
    // A buffer larger than the transfer: the first 8 blocks land at its start.
    let r = pages(3, 0x200);
    l.submit(2, &cdb10(0x28, 10, 8), DataDirection::FromDevice, &r);
    l.run();
    assert_eq!(l.statuses()[1], (2, ScsiStatus::Good));
    assert_eq!(l.scsi[1].transferred, 4096);
    assert_eq!(gather(&l.h.mem, &r[..1]), data[..4096]);
    assert_eq!(l.adapter.in_flight(), 0);
}

#[test]
fn a_command_the_disk_answers_completes_at_once() {
    let mut l = Lun::<4>::new();
    let buf = [Segment {
        frame: 0x100,
        offset: 0,
        length: 36,
    }];
    l.submit(7, &[0x12, 0, 0, 0, 36, 0], DataDirection::FromDevice, &buf);
    assert_eq!(l.statuses(), [(7, ScsiStatus::Good)]);
    assert_eq!(l.h.eng.counters().requests, 0);
}

#[test]
fn an_unmap_of_several_ranges_completes_once_after_all_of_them() {
    let mut l = Lun::<4>::new();
    let list = unmap_list(&[(100, 8), (300, 16), (600, 8)]);
    let buf = [Segment {
        frame: 0x100,
        offset: 0,
        length: list.len() as u16,
    }];
    l.h.mem.write(0x100, 0, &list);
    let mut cdb = [0u8; 10];
    cdb[0] = 0x42;
    cdb[7..9].copy_from_slice(&(list.len() as u16).to_be_bytes());
    l.submit(3, &cdb, DataDirection::ToDevice, &buf);
    assert!(l.scsi.is_empty());
    l.run();
    assert_eq!(l.statuses(), [(3, ScsiStatus::Good)]);
    assert_eq!(l.h.eng.counters().requests, 3);
    for (lba, n) in [(100usize, 8usize), (300, 16), (600, 8)] {
        assert!(l.h.be.disk[lba * 512..(lba + n) * 512]
            .iter()
            .all(|b| *b == 0));
    }
}

#[test]
fn abort_reset_and_timeouts_speak_scsi_tags() {
    let mut l = Lun::<4>::new();
    l.h.timer(100);
    let a = pages(1, 0x100);
    let b = pages(1, 0x200);
    l.submit(41, &cdb10(0x28, 0, 8), DataDirection::FromDevice, &a);
    l.submit(42, &cdb10(0x28, 8, 8), DataDirection::FromDevice, &b);
    l.h.be.take(&l.h.grants, &l.h.mem);
    let report = {
        let h = &mut l.h;
        let mut io = Io::new(&mut h.grants, &mut h.ev, &mut h.mem);
        let scsi = &mut l.scsi;
        l.adapter.on_timer(
            &mut h.eng,
            100 + Timeouts::default().request,
            &mut io,
            |c| scsi.push(c),
        )
    };
    assert_eq!(
        (report.timed_out, report.first_timed_out),
        (2, Some(Tag(41)))
    );
    let h = &mut l.h;
    let mut io = Io::new(&mut h.grants, &mut h.ev, &mut h.mem);
    let scsi = &mut l.scsi;
    assert!(l
        .adapter
        .abort(&mut h.eng, Tag(41), &mut io, |c| scsi.push(c)));
    assert!(!l
        .adapter
        .abort(&mut h.eng, Tag(41), &mut io, |c| scsi.push(c)));
    assert_eq!(l.adapter.reset(&mut h.eng, &mut io, |c| scsi.push(c)), 1);
    assert_eq!(
        l.statuses(),
        [(41, ScsiStatus::TaskAborted), (42, ScsiStatus::TaskAborted)]
    );
    // The backend's late answers complete nothing more.
    l.h.be.answer(&l.h.grants, &mut l.h.mem);
    l.poll();
    assert_eq!(l.scsi.len(), 2);
    assert_eq!(l.adapter.in_flight(), 0);
}

#[test]
fn a_full_adapter_or_engine_answers_busy() {
    let mut l = Lun::<1>::new();
    let a = pages(1, 0x100);
    l.submit(1, &cdb10(0x28, 0, 8), DataDirection::FromDevice, &a);
    l.submit(2, &cdb10(0x28, 8, 8), DataDirection::FromDevice, &a);
    assert_eq!(l.statuses(), [(2, ScsiStatus::Busy)]);
    l.run();
    assert_eq!(l.statuses()[1], (1, ScsiStatus::Good));
    // The engine's 16 job slots full behind a backend that answers nothing.
    let mut l = Lun::<32>::new();
    for tag in 0..17 {
        let buf = pages(1, 0x100 + tag);
        l.submit(tag, &cdb10(0x28, 0, 8), DataDirection::FromDevice, &buf);
    }
    assert_eq!(l.statuses(), [(16, ScsiStatus::Busy)]);
    l.run();
    assert_eq!(l.scsi.len(), 17);
    assert_eq!(l.adapter.in_flight(), 0);
}

/// A step of [`every_scsi_command_completes_exactly_once`].
#[derive(Clone, Debug)]
enum CmdStep {
    /// 0 READ(10), 1 WRITE(10), 2 SYNCHRONIZE CACHE(10), 3 UNMAP of `blocks` one-block ranges.
    Submit {
        kind: u8,
        lba: u16,
        blocks: u8,
    },
    Take,
    Answer {
        pick: u8,
        status: i16,
    },
    Publish,
    Poll,
    /// The shell aborts the `pick`th command it has not seen complete.
    Abort {
        pick: u8,
    },
    Reset,
    Tick {
        dt: u8,
    },
}

fn cmd_step() -> impl Strategy<Value = CmdStep> {
    let status = prop_oneof![
        8 => Just(blkif::BLKIF_RSP_OKAY),
        1 => Just(blkif::BLKIF_RSP_ERROR),
        1 => Just(blkif::BLKIF_RSP_EOPNOTSUPP),
    ];
    prop_oneof![
        4 => (0u8..4, 0u16..2000, 1u8..=8)
            .prop_map(|(kind, lba, blocks)| CmdStep::Submit { kind, lba, blocks }),
        3 => Just(CmdStep::Take),
        5 => (any::<u8>(), status).prop_map(|(pick, status)| CmdStep::Answer { pick, status }),
        3 => Just(CmdStep::Publish),
        3 => Just(CmdStep::Poll),
        1 => any::<u8>().prop_map(|pick| CmdStep::Abort { pick }),
        1 => Just(CmdStep::Reset),
        2 => (1u8..=100).prop_map(|dt| CmdStep::Tick { dt }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Random SCSI commands through the adapter (reads, writes, flushes, multi-range UNMAPs)
    /// against a backend answering in any order with any status, with aborts, resets and the
    /// timer: every command completes exactly once with its own tag, an aborted one TASK
    /// ABORTED unless it had completed, and after a reconnect to an honest backend nothing is
    /// left in the adapter or the engine.
    #[test]
    fn every_scsi_command_completes_exactly_once(
        steps in prop::collection::vec(cmd_step(), 1..120),
    ) {
        let mut l = Lun::<8>::new();
        let mut submitted: Vec<u64> = Vec::new();
        let mut aborted: HashSet<u64> = HashSet::new();
        let mut now = 0u64;
        for (tag, step) in (1u64..).zip(steps) {
            match step {
                CmdStep::Submit { kind, lba, blocks } => {
                    let lba = u32::from(lba);
                    let n = u16::from(blocks);
                    let buf = pages(u64::from(blocks).div_ceil(8), 0x10_0000 + tag * 64);
                    let buf: Vec<Segment> = buf
                        .into_iter()
                        .enumerate()
                        .map(|(i, s)| Segment {
                            length: (usize::from(n) * 512 - i * 4096).min(4096) as u16,
                            ..s
                        })
                        .collect();
                    match kind {
                        0 => l.submit(tag, &cdb10(0x28, lba, n), DataDirection::FromDevice, &buf),
                        1 => l.submit(tag, &cdb10(0x2a, lba, n), DataDirection::ToDevice, &buf),
                        2 => l.submit(tag, &cdb10(0x35, 0, 0), DataDirection::None, &[]),
                        _ => {
                            let ranges: Vec<(u64, u32)> =
                                (0..u64::from(blocks)).map(|k| (u64::from(lba) + 16 * k, 1)).collect();
                            let list = unmap_list(&ranges);
                            let frame = 0x10_0000 + tag * 64;
                            l.h.mem.write(frame, 0, &list);
                            let seg = [Segment { frame, offset: 0, length: list.len() as u16 }];
                            let mut cdb = [0u8; 10];
                            cdb[0] = 0x42;
                            cdb[7..9].copy_from_slice(&(list.len() as u16).to_be_bytes());
                            l.submit(tag, &cdb, DataDirection::ToDevice, &seg);
                        }
                    }
                    submitted.push(tag);
                }
                CmdStep::Take => l.h.be.take(&l.h.grants, &l.h.mem),
                CmdStep::Answer { pick, status } => {
                    if l.h.be.pending.is_empty() || l.h.be.ring.unanswered_requests() == 0 {
                        continue;
                    }
                    let req = l.h.be.pending.remove(usize::from(pick) % l.h.be.pending.len());
                    let done = l.h.be.execute(&req, &l.h.grants, &mut l.h.mem);
                    let status = if done == blkif::BLKIF_RSP_OKAY { status } else { done };
                    l.h.be.respond(req.id, req.op, status);
                }
                CmdStep::Publish => l.h.be.ring.push_responses(),
                CmdStep::Poll => l.poll(),
                CmdStep::Abort { pick } => {
                    let open: Vec<u64> = submitted
                        .iter()
                        .copied()
                        .filter(|t| !l.scsi.iter().any(|c| c.tag.0 == *t))
                        .collect();
                    if open.is_empty() {
                        continue;
                    }
                    let t = open[usize::from(pick) % open.len()];
                    let h = &mut l.h;
                    let mut io = Io::new(&mut h.grants, &mut h.ev, &mut h.mem);
                    let scsi = &mut l.scsi;
                    if l.adapter.abort(&mut h.eng, Tag(t), &mut io, |c| scsi.push(c)) {
                        aborted.insert(t);
                    }
                }
                CmdStep::Reset => {
                    for t in &submitted {
                        if !l.scsi.iter().any(|c| c.tag.0 == *t) {
                            aborted.insert(*t);
                        }
                    }
                    let h = &mut l.h;
                    let mut io = Io::new(&mut h.grants, &mut h.ev, &mut h.mem);
                    let scsi = &mut l.scsi;
                    l.adapter.reset(&mut h.eng, &mut io, |c| scsi.push(c));
                }
                CmdStep::Tick { dt } => {
                    now += u64::from(dt);
                    let h = &mut l.h;
                    let mut io = Io::new(&mut h.grants, &mut h.ev, &mut h.mem);
                    let scsi = &mut l.scsi;
                    let report = l.adapter.on_timer(&mut h.eng, now, &mut io, |c| scsi.push(c));
                    if let Some(t) = report.first_timed_out {
                        prop_assert!(submitted.contains(&t.0));
                        prop_assert!(!l.scsi.iter().any(|c| c.tag == t));
                    }
                }
            }
            let mut seen = HashSet::new();
            for c in &l.scsi {
                prop_assert!(seen.insert(c.tag.0), "command {} completed twice", c.tag.0);
                prop_assert!(submitted.contains(&c.tag.0), "a completion for no command");
            }
        }
        // The backend goes away and an honest one finishes what is left.
        let h = &mut l.h;
        let mut io = Io::new(&mut h.grants, &mut h.ev, &mut h.mem);
        h.eng.disconnect(&mut io);
        let mem = RingMemory::allocate(0).unwrap();
        h.be = Model::new(mem.clone(), Layout::X86_64);
        h.connect_only(mem, features(0, false), config(0));
        l.run();
        prop_assert_eq!(l.h.eng.state(), EngineState::Running);
        let mut count: HashMap<u64, u32> = HashMap::new();
        for c in &l.scsi {
            *count.entry(c.tag.0).or_default() += 1;
            prop_assert!(
                c.status != ScsiStatus::TaskAborted || aborted.contains(&c.tag.0),
                "command {} reported TASK ABORTED without an abort or reset",
                c.tag.0
            );
        }
        for t in &submitted {
            prop_assert_eq!(count.get(t), Some(&1), "command {} completed {:?} times", t, count.get(t));
        }
        prop_assert_eq!(l.adapter.in_flight(), 0);
        prop_assert_eq!(l.h.eng.outstanding(), 0);
    }
}
