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
            if self.h.eng.in_flight() == 0 {
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
