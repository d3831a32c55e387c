extern crate std;

use std::vec;
use std::vec::Vec;

use super::sense::*;
use super::*;
use crate::types::{DiscardInfo, Segment};

/// Guest memory as a vector of pages, frame `n` at index `n`.
struct Mem(Vec<[u8; PAGE]>);

const PAGE: usize = crate::types::PAGE_SIZE;

impl GuestMemory for Mem {
    fn read(&self, frame: u64, offset: usize, buf: &mut [u8]) {
        buf.copy_from_slice(&self.0[frame as usize][offset..offset + buf.len()]);
    }
    fn write(&mut self, frame: u64, offset: usize, data: &[u8]) {
        self.0[frame as usize][offset..offset + data.len()].copy_from_slice(data);
    }
}

fn info() -> DiskInfo {
    DiskInfo {
        sectors: 2048 * 1024, // 1 GiB
        logical_block_size: 512,
        physical_block_size: 512,
        read_only: false,
        removable: false,
        cdrom: false,
        flush: true,
        barrier: false,
        discard: None,
    }
}

fn discard() -> Option<DiscardInfo> {
    Some(DiscardInfo {
        granularity: 4096,
        alignment: 0,
        secure: false,
    })
}

fn cd_info() -> DiskInfo {
    DiskInfo {
        sectors: 4 * 300_000,
        cdrom: true,
        read_only: true,
        removable: true,
        flush: false,
        ..info()
    }
}

fn disk(info: DiskInfo) -> Disk {
    Disk::new(DiskConfig::new(
        info,
        Identity::new(&info, "768", b"/local/domain/0/backend/vbd/1/768"),
    ))
}

/// A test harness: one request at a time over a buffer that starts 512 bytes into frame 1 and
/// spans the following frames.
struct Run {
    mem: Mem,
}

struct Out {
    action: Action,
    data: Vec<u8>,
}

impl Out {
    fn completion(&self) -> ScsiCompletion {
        match self.action {
            Action::Complete(c) => c,
            Action::Block(b) => panic!("expected a completion, got {:?}", b.ops()),
        }
    }
    fn good(&self) -> &[u8] {
        let c = self.completion();
        assert_eq!(c.status, ScsiStatus::Good, "sense {:?}", c.sense);
        &self.data[..c.transferred as usize]
    }
    fn sense(&self) -> (u8, u8, u8) {
        let c = self.completion();
        assert_eq!(c.status, ScsiStatus::CheckCondition);
        assert_eq!(c.transferred, 0);
        (c.sense.key, c.sense.asc, c.sense.ascq)
    }
    fn ops(&self) -> Vec<BlockOp> {
        match self.action {
            Action::Block(b) => b.ops().to_vec(),
            Action::Complete(c) => panic!("expected block ops, got {c:?}"),
        }
    }
    fn block(&self) -> BlockRequest {
        match self.action {
            Action::Block(b) => b,
            Action::Complete(c) => panic!("expected block ops, got {c:?}"),
        }
    }
}

fn segments(len: usize) -> Vec<Segment> {
    let mut segs = Vec::new();
    let mut left = len;
    let mut frame = 1;
    let mut offset = 512;
    while left > 0 {
        let n = left.min(PAGE - offset);
        segs.push(Segment {
            frame,
            offset: offset as u16,
            length: n as u16,
        });
        left -= n;
        frame += 1;
        offset = 0;
    }
    segs
}

impl Run {
    fn new() -> Self {
        Run {
            mem: Mem(vec![[0xee; PAGE]; 40]),
        }
    }

    fn with_lun(
        &mut self,
        d: &mut Disk,
        cdb: &[u8],
        direction: DataDirection,
        len: usize,
        lun: u8,
    ) -> Out {
        let segs = segments(len);
        let req = ScsiRequest {
            tag: Tag(7),
            cdb,
            direction,
            segments: &segs,
            transfer_length: len as u32,
            lun,
        };
        let action = d.submit(&req, &mut self.mem);
        if let Action::Complete(c) = action {
            assert_eq!(c.tag, Tag(7));
            assert!(c.transferred as usize <= len);
        }
        let mut data = vec![0u8; len];
        buffer::copy_from_guest(&self.mem, &segs, len, &mut data);
        Out { action, data }
    }

    fn io(&mut self, d: &mut Disk, cdb: &[u8], direction: DataDirection, len: usize) -> Out {
        self.with_lun(d, cdb, direction, len, 0)
    }

    fn din(&mut self, d: &mut Disk, cdb: &[u8], len: usize) -> Out {
        self.io(d, cdb, DataDirection::FromDevice, len)
    }

    fn nodata(&mut self, d: &mut Disk, cdb: &[u8]) -> Out {
        self.io(d, cdb, DataDirection::None, 0)
    }

    /// A data-out command whose buffer holds `payload`.
    fn dout(&mut self, d: &mut Disk, cdb: &[u8], payload: &[u8]) -> Out {
        let segs = segments(payload.len());
        copy_to_guest(&mut self.mem, &segs, payload.len(), payload);
        self.io(d, cdb, DataDirection::ToDevice, payload.len())
    }
}

fn cdb10(op: u8, flags: u8, lba: u32, len: u16) -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = op;
    c[1] = flags;
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[7..9].copy_from_slice(&len.to_be_bytes());
    c
}

fn cdb16(op: u8, flags: u8, lba: u64, len: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = op;
    c[1] = flags;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&len.to_be_bytes());
    c
}

fn cdb12(op: u8, flags: u8, lba: u32, len: u32) -> [u8; 12] {
    let mut c = [0u8; 12];
    c[0] = op;
    c[1] = flags;
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[6..10].copy_from_slice(&len.to_be_bytes());
    c
}

const INVALID_FIELD: (u8, u8, u8) = (0x05, 0x24, 0x00);
const INVALID_OP: (u8, u8, u8) = (0x05, 0x20, 0x00);
const OUT_OF_RANGE: (u8, u8, u8) = (0x05, 0x21, 0x00);
const PROTECTED: (u8, u8, u8) = (0x07, 0x27, 0x00);

// ---- INQUIRY ----

#[test]
fn standard_inquiry_of_a_disk() {
    let mut d = disk(info());
    let mut r = Run::new();
    let out = r.din(&mut d, &[0x12, 0, 0, 0, 255, 0], 255);
    let data = out.good();
    assert_eq!(data.len(), 36);
    assert_eq!(data[0], 0x00);
    assert_eq!(data[1], 0x00);
    assert_eq!(data[2], 0x06);
    assert_eq!(data[3], 0x12);
    assert_eq!(data[4], 31);
    assert_eq!(data[7], 0x02);
    assert_eq!(&data[8..16], b"XEN     ");
    assert_eq!(&data[16..32], b"PV DISK         ");
    assert_eq!(&data[32..36], b"1.0 ");
}

#[test]
fn inquiry_is_truncated_to_allocation_length_and_buffer() {
    let mut d = disk(info());
    let mut r = Run::new();
    let out = r.din(&mut d, &[0x12, 0, 0, 0, 5, 0], 100);
    assert_eq!(out.good(), &[0, 0, 6, 0x12, 31]);
    // The buffer beyond the transfer is untouched.
    assert_eq!(out.data[5], 0xee);
    let out = r.din(&mut d, &[0x12, 0, 0, 0, 36, 0], 10);
    assert_eq!(out.good().len(), 10);
    // Allocation length 0: GOOD, nothing transferred.
    assert_eq!(r.din(&mut d, &[0x12, 0, 0, 0, 0, 0], 100).good().len(), 0);
    // No data-in buffer at all.
    assert_eq!(r.nodata(&mut d, &[0x12, 0, 0, 0, 36, 0]).good().len(), 0);
}

#[test]
fn inquiry_of_a_cdrom() {
    let mut d = disk(cd_info());
    let mut r = Run::new();
    let out = r.din(&mut d, &[0x12, 0, 0, 0, 36, 0], 36);
    let data = out.good();
    assert_eq!(data[0], 0x05);
    assert_eq!(data[1], 0x80);
    assert_eq!(&data[16..32], b"PV CDROM        ");
}

#[test]
fn inquiry_rejects_bad_fields() {
    let mut d = disk(info());
    let mut r = Run::new();
    // A page code without EVPD.
    assert_eq!(
        r.din(&mut d, &[0x12, 0, 0x80, 0, 36, 0], 36).sense(),
        INVALID_FIELD
    );
    // CMDDT.
    assert_eq!(
        r.din(&mut d, &[0x12, 2, 0, 0, 36, 0], 36).sense(),
        INVALID_FIELD
    );
    // An unsupported VPD page.
    assert_eq!(
        r.din(&mut d, &[0x12, 1, 0x89, 0, 36, 0], 36).sense(),
        INVALID_FIELD
    );
    // The CD-ROM has no block limits page.
    let mut cd = disk(cd_info());
    assert_eq!(
        r.din(&mut cd, &[0x12, 1, 0xb0, 0, 64, 0], 64).sense(),
        INVALID_FIELD
    );
}

#[test]
fn vpd_supported_pages() {
    let mut r = Run::new();
    let mut d = disk(info());
    let out = r.din(&mut d, &[0x12, 1, 0, 0, 255, 0], 255);
    assert_eq!(
        out.good(),
        &[0, 0, 0, 6, 0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2]
    );
    let mut cd = disk(cd_info());
    let out = r.din(&mut cd, &[0x12, 1, 0, 0, 255, 0], 255);
    assert_eq!(out.good(), &[5, 0, 0, 3, 0x00, 0x80, 0x83]);
}

#[test]
fn vpd_unit_serial_number() {
    let mut r = Run::new();
    let i = info();
    let mut d = Disk::new(DiskConfig::new(
        i,
        Identity::new(&i, "vbd 51712\u{1}", b"x"),
    ));
    let out = r.din(&mut d, &[0x12, 1, 0x80, 0, 255, 0], 255);
    assert_eq!(out.good(), b"\x00\x80\x00\x0avbd_51712_");
}

#[test]
fn vpd_device_identification() {
    let mut r = Run::new();
    let mut d = disk(info());
    let out = r.din(&mut d, &[0x12, 1, 0x83, 0, 255, 0], 255);
    let data = out.good();
    assert_eq!(&data[0..2], &[0, 0x83]);
    assert_eq!(usize::from(be16(data, 2)), data.len() - 4);
    // T10 vendor id designator.
    assert_eq!(&data[4..8], &[0x02, 0x01, 0, 8 + 16 + 3]);
    assert_eq!(&data[8..16], b"XEN     ");
    assert_eq!(&data[16..32], b"PV DISK         ");
    assert_eq!(&data[32..35], b"768");
    // NAA IEEE Registered designator with the Xen OUI.
    let naa = &data[35..47];
    assert_eq!(&naa[0..4], &[0x01, 0x03, 0, 8]);
    assert_eq!(naa[4] >> 4, 5);
    assert_eq!(be64(naa, 4) >> 36 & 0xff_ffff, u64::from(XEN_OUI));
    assert_eq!(be64(naa, 4), d.config().identity.naa());
    // Derived from the unique identity: stable, and distinct between VBDs.
    let i = info();
    let same = Identity::new(&i, "768", b"/local/domain/0/backend/vbd/1/768");
    let other = Identity::new(&i, "832", b"/local/domain/0/backend/vbd/1/832");
    assert_eq!(same.naa(), d.config().identity.naa());
    assert_ne!(other.naa(), same.naa());
}

#[test]
fn vpd_block_limits() {
    let mut r = Run::new();
    let mut i = info();
    i.physical_block_size = 4096;
    i.discard = Some(DiscardInfo {
        granularity: 1 << 20,
        alignment: 4096,
        secure: false,
    });
    let mut cfg = DiskConfig::new(i, Identity::new(&i, "1", b"1"));
    cfg.max_transfer_bytes = 44 * 4096;
    cfg.max_unmap_blocks = 1 << 22;
    let mut d = Disk::new(cfg);
    let out = r.din(&mut d, &[0x12, 1, 0xb0, 0, 255, 0], 255);
    let p = out.good();
    assert_eq!(p.len(), 64);
    assert_eq!(&p[0..4], &[0, 0xb0, 0, 0x3c]);
    assert_eq!(p[4], 0x01); // WSNZ
    assert_eq!(be16(p, 6), 8); // optimal granularity: one physical block
    assert_eq!(be32(p, 8), 44 * 8); // maximum transfer length
    assert_eq!(be32(p, 20), 1 << 22); // maximum unmap LBA count
    assert_eq!(be32(p, 24), MAX_OPS as u32); // maximum unmap descriptors
    assert_eq!(be32(p, 28), 2048); // optimal unmap granularity
    assert_eq!(be32(p, 32), 0x8000_0008); // UGAVALID, alignment
    assert_eq!(be64(p, 36), 1 << 22); // maximum write same length
                                      // Without discard the unmap fields are zero; without a limit the transfer length too.
    let mut d = disk(info());
    let out = r.din(&mut d, &[0x12, 1, 0xb0, 0, 255, 0], 255);
    let p = out.good();
    assert_eq!(be32(p, 8), 0);
    assert!(p[20..44].iter().all(|&b| b == 0));
}

#[test]
fn vpd_block_device_characteristics() {
    let mut r = Run::new();
    let mut d = disk(info());
    let out = r.din(&mut d, &[0x12, 1, 0xb1, 0, 255, 0], 255);
    let p = out.good();
    assert_eq!(p.len(), 64);
    assert_eq!(&p[0..6], &[0, 0xb1, 0, 0x3c, 0, 1]);
    let i = info();
    let mut cfg = DiskConfig::new(i, Identity::new(&i, "1", b"1"));
    cfg.rotation_rate = 7200;
    let mut d = Disk::new(cfg);
    let out = r.din(&mut d, &[0x12, 1, 0xb1, 0, 255, 0], 255);
    assert_eq!(be16(out.good(), 4), 7200);
}

#[test]
fn vpd_logical_block_provisioning() {
    let mut r = Run::new();
    let mut d = disk(info());
    let out = r.din(&mut d, &[0x12, 1, 0xb2, 0, 255, 0], 255);
    assert_eq!(out.good(), &[0, 0xb2, 0, 4, 0, 0, 0, 0]);
    let mut d = disk(DiskInfo {
        discard: discard(),
        ..info()
    });
    let out = r.din(&mut d, &[0x12, 1, 0xb2, 0, 255, 0], 255);
    assert_eq!(out.good(), &[0, 0xb2, 0, 4, 0, 0xc0, 0x02, 0]);
}

#[test]
fn inquiry_and_commands_on_other_luns() {
    let mut r = Run::new();
    let mut d = disk(info());
    let out = r.with_lun(
        &mut d,
        &[0x12, 0, 0, 0, 36, 0],
        DataDirection::FromDevice,
        36,
        1,
    );
    assert_eq!(out.good()[0], 0x7f);
    let out = r.with_lun(&mut d, &[0, 0, 0, 0, 0, 0], DataDirection::None, 0, 3);
    assert_eq!(out.sense(), (0x05, 0x25, 0x00));
    let out = r.with_lun(
        &mut d,
        &[0x03, 0, 0, 0, 18, 0],
        DataDirection::FromDevice,
        18,
        1,
    );
    assert_eq!(&out.good()[12..14], &[0x25, 0x00]);
}

// ---- READ CAPACITY ----

#[test]
fn read_capacity_of_a_512_byte_disk() {
    let mut r = Run::new();
    let mut d = disk(info());
    let out = r.din(&mut d, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8);
    assert_eq!(out.good(), &[0, 0x1f, 0xff, 0xff, 0, 0, 2, 0]);
    let mut rc16 = cdb16(0x9e, 0x10, 0, 32);
    let out = r.din(&mut d, &rc16, 32);
    let p = out.good();
    assert_eq!(p.len(), 32);
    assert_eq!(be64(p, 0), 2048 * 1024 - 1);
    assert_eq!(be32(p, 8), 512);
    assert_eq!(&p[12..16], &[0, 0, 0, 0]);
    // Truncated to the allocation length.
    rc16[13] = 12;
    assert_eq!(r.din(&mut d, &rc16, 32).good().len(), 12);
}

#[test]
fn read_capacity_of_4k_and_512e_disks() {
    let mut r = Run::new();
    let mut d = disk(DiskInfo {
        sectors: 8 * 1000,
        logical_block_size: 4096,
        physical_block_size: 4096,
        ..info()
    });
    let out = r.din(&mut d, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8);
    assert_eq!(out.good(), &[0, 0, 0x03, 0xe7, 0, 0, 0x10, 0]);
    let out = r.din(&mut d, &cdb16(0x9e, 0x10, 0, 32), 32);
    assert_eq!(out.good()[13], 0);
    // 512-byte logical blocks on 4096-byte physical ones, with discard.
    let mut d = disk(DiskInfo {
        physical_block_size: 4096,
        discard: discard(),
        ..info()
    });
    let out = r.din(&mut d, &cdb16(0x9e, 0x10, 0, 32), 32);
    let p = out.good();
    assert_eq!(p[13], 3);
    assert_eq!(p[14], 0x80); // LBPME
}

#[test]
fn read_capacity_10_of_a_huge_disk_and_bad_fields() {
    let mut r = Run::new();
    let mut d = disk(DiskInfo {
        sectors: 1 << 40,
        ..info()
    });
    let out = r.din(&mut d, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8);
    assert_eq!(&out.good()[0..4], &[0xff; 4]);
    let out = r.din(&mut d, &cdb16(0x9e, 0x10, 0, 32), 32);
    assert_eq!(be64(out.good(), 0), (1 << 40) - 1);
    // An LBA without PMI.
    assert_eq!(
        r.din(&mut d, &[0x25, 0, 0, 0, 0, 1, 0, 0, 0, 0], 8).sense(),
        INVALID_FIELD
    );
    // With PMI it is accepted.
    r.din(&mut d, &[0x25, 0, 0, 0, 0, 1, 0, 0, 1, 0], 8).good();
    // Another SERVICE ACTION IN service action.
    assert_eq!(
        r.din(&mut d, &cdb16(0x9e, 0x12, 0, 32), 32).sense(),
        INVALID_FIELD
    );
}

// ---- READ / WRITE ----

#[test]
fn reads_and_writes_of_every_size() {
    let mut r = Run::new();
    let mut d = disk(info());
    let read = |sector, sectors| BlockOp::Read { sector, sectors };
    let write = |sector, sectors, fua| BlockOp::Write {
        sector,
        sectors,
        fua,
    };
    assert_eq!(
        r.din(&mut d, &[0x08, 0x01, 0x02, 0x03, 4, 0], 2048).ops(),
        [read(0x10203, 4)]
    );
    assert_eq!(
        r.dout(&mut d, &[0x0a, 0, 0, 9, 1, 0], &[0; 512]).ops(),
        [write(9, 1, false)]
    );
    assert_eq!(
        r.din(&mut d, &cdb10(0x28, 0, 100, 8), 4096).ops(),
        [read(100, 8)]
    );
    assert_eq!(
        r.dout(&mut d, &cdb10(0x2a, 0x08, 100, 8), &[0; 4096]).ops(),
        [write(100, 8, true)]
    );
    assert_eq!(
        r.din(&mut d, &cdb12(0xa8, 0x10, 5, 2), 1024).ops(),
        [read(5, 2)]
    );
    assert_eq!(
        r.dout(&mut d, &cdb12(0xaa, 0x18, 5, 2), &[0; 1024]).ops(),
        [write(5, 2, true)]
    );
    assert_eq!(
        r.din(&mut d, &cdb16(0x88, 0, 7, 3), 1536).ops(),
        [read(7, 3)]
    );
    let out = r.dout(&mut d, &cdb16(0x8a, 0, 2048 * 1024 - 1, 1), &[0; 512]);
    assert_eq!(out.ops(), [write(2048 * 1024 - 1, 1, false)]);
    assert_eq!(out.block().tag(), Tag(7));
    assert_eq!(out.block().pending().kind(), CommandKind::Write);
}

#[test]
fn fua_is_dropped_without_a_write_cache() {
    let mut r = Run::new();
    let mut d = disk(DiskInfo {
        flush: false,
        ..info()
    });
    assert_eq!(
        r.dout(&mut d, &cdb10(0x2a, 0x08, 0, 1), &[0; 512]).ops(),
        [BlockOp::Write {
            sector: 0,
            sectors: 1,
            fua: false
        }]
    );
}

#[test]
fn zero_lengths() {
    let mut r = Run::new();
    let mut d = disk(info());
    // READ (6) with a zero length reads 256 blocks.
    assert_eq!(
        r.din(&mut d, &[0x08, 0, 0, 0, 0, 0], 256 * 512).ops(),
        [BlockOp::Read {
            sector: 0,
            sectors: 256
        }]
    );
    // READ (10), (12), (16) and WRITE (10) with a zero length transfer nothing.
    assert_eq!(r.nodata(&mut d, &cdb10(0x28, 0, 5, 0)).good().len(), 0);
    assert_eq!(r.nodata(&mut d, &cdb12(0xa8, 0, 5, 0)).good().len(), 0);
    assert_eq!(r.nodata(&mut d, &cdb16(0x88, 0, 5, 0)).good().len(), 0);
    assert_eq!(r.nodata(&mut d, &cdb10(0x2a, 0, 5, 0)).good().len(), 0);
    // ...but the LBA is still checked.
    assert_eq!(
        r.nodata(&mut d, &cdb10(0x28, 0, 2048 * 1024, 0)).sense(),
        OUT_OF_RANGE
    );
}

#[test]
fn lba_range_checks() {
    let mut r = Run::new();
    let mut d = disk(info());
    let last = 2048 * 1024 - 1;
    r.din(&mut d, &cdb10(0x28, 0, last, 1), 512).ops();
    let out = r.din(&mut d, &cdb10(0x28, 0, last, 2), 1024);
    assert_eq!(out.sense(), OUT_OF_RANGE);
    assert!(!out.completion().sense.information_valid);
    assert_eq!(
        r.din(&mut d, &cdb10(0x28, 0, last + 1, 1), 512).sense(),
        OUT_OF_RANGE
    );
    // Wrapping past 2^64.
    assert_eq!(
        r.din(&mut d, &cdb16(0x88, 0, u64::MAX - 1, 4), 2048)
            .sense(),
        OUT_OF_RANGE
    );
    assert_eq!(
        r.din(&mut d, &cdb16(0x88, 0, u64::MAX, 1), 512).sense(),
        OUT_OF_RANGE
    );
    // READ (6) addresses 21 bits: the top bits of byte 1 are reserved.
    assert_eq!(
        r.din(&mut d, &[0x08, 0x20, 0, 0, 1, 0], 512).sense(),
        INVALID_FIELD
    );
}

#[test]
fn transfer_length_against_the_buffer() {
    let mut r = Run::new();
    let mut d = disk(info());
    // The buffer is smaller than the transfer.
    assert_eq!(
        r.din(&mut d, &cdb10(0x28, 0, 0, 8), 4095).sense(),
        INVALID_FIELD
    );
    // The wrong direction offers no buffer.
    assert_eq!(
        r.dout(&mut d, &cdb10(0x28, 0, 0, 1), &[0; 512]).sense(),
        INVALID_FIELD
    );
    assert_eq!(
        r.din(&mut d, &cdb10(0x2a, 0, 0, 1), 512).sense(),
        INVALID_FIELD
    );
    // A larger buffer is fine; completion reports what moved.
    let out = r.din(&mut d, &cdb10(0x28, 0, 0, 1), 4096);
    let c = out.block().pending().complete(BlockOutcome::Success);
    assert_eq!(c.transferred, 512);
    // The engine's limit.
    let i = info();
    let mut cfg = DiskConfig::new(i, Identity::new(&i, "1", b"1"));
    cfg.max_transfer_bytes = 4096;
    let mut d = Disk::new(cfg);
    r.din(&mut d, &cdb10(0x28, 0, 0, 8), 8192).ops();
    assert_eq!(
        r.din(&mut d, &cdb10(0x28, 0, 0, 9), 8192).sense(),
        INVALID_FIELD
    );
}

#[test]
fn protection_and_reserved_bits() {
    let mut r = Run::new();
    let mut d = disk(info());
    // RDPROTECT / WRPROTECT.
    assert_eq!(
        r.din(&mut d, &cdb10(0x28, 0x20, 0, 1), 512).sense(),
        INVALID_FIELD
    );
    assert_eq!(
        r.dout(&mut d, &cdb16(0x8a, 0x40, 0, 1), &[0; 512]).sense(),
        INVALID_FIELD
    );
    // Reserved bits of the group number byte.
    let mut c = cdb10(0x28, 0, 0, 1);
    c[6] = 0x80;
    assert_eq!(r.din(&mut d, &c, 512).sense(), INVALID_FIELD);
    // NACA in the control byte.
    let mut c = cdb10(0x28, 0, 0, 1);
    c[9] = 0x04;
    assert_eq!(r.din(&mut d, &c, 512).sense(), INVALID_FIELD);
    // DPO and FUA are accepted on reads.
    r.din(&mut d, &cdb10(0x28, 0x18, 0, 1), 512).ops();
}

#[test]
fn logical_blocks_of_4k_disks_map_to_sectors() {
    let mut r = Run::new();
    let mut d = disk(DiskInfo {
        sectors: 8 * 1000,
        logical_block_size: 4096,
        physical_block_size: 4096,
        ..info()
    });
    assert_eq!(
        r.din(&mut d, &cdb10(0x28, 0, 10, 2), 8192).ops(),
        [BlockOp::Read {
            sector: 80,
            sectors: 16
        }]
    );
    assert_eq!(
        r.din(&mut d, &cdb10(0x28, 0, 999, 2), 8192).sense(),
        OUT_OF_RANGE
    );
    // A 512-byte buffer cannot hold a 4096-byte block.
    assert_eq!(
        r.din(&mut d, &cdb10(0x28, 0, 0, 1), 512).sense(),
        INVALID_FIELD
    );
    // Failure reporting counts in logical blocks.
    let p = r
        .din(&mut d, &cdb10(0x28, 0, 10, 4), 16384)
        .block()
        .pending();
    let c = p.complete(BlockOutcome::Failed {
        error: BlockError::Io,
        sector: Some(8 * 12 + 3),
    });
    assert_eq!(c.sense.information, 12);
    assert_eq!(c.transferred, 2 * 4096);
}

#[test]
fn writes_to_read_only_media() {
    let mut r = Run::new();
    let mut d = disk(DiskInfo {
        read_only: true,
        discard: discard(),
        ..info()
    });
    assert_eq!(
        r.dout(&mut d, &cdb10(0x2a, 0, 0, 1), &[0; 512]).sense(),
        PROTECTED
    );
    assert_eq!(
        r.dout(&mut d, &[0x0a, 0, 0, 0, 1, 0], &[0; 512]).sense(),
        PROTECTED
    );
    assert_eq!(
        r.dout(&mut d, &cdb16(0x93, 0x08, 0, 1), &[0; 512]).sense(),
        PROTECTED
    );
    let mut unmap = [0u8; 10];
    unmap[0] = 0x42;
    unmap[8] = 24;
    assert_eq!(r.dout(&mut d, &unmap, &[0; 24]).sense(), PROTECTED);
    // Reads still work.
    r.din(&mut d, &cdb10(0x28, 0, 0, 1), 512).ops();
    let mut cd = disk(cd_info());
    assert_eq!(
        r.dout(&mut cd, &cdb10(0x2a, 0, 0, 1), &[0; 2048]).sense(),
        PROTECTED
    );
}

// ---- completions ----

#[test]
fn completing_block_requests() {
    let mut r = Run::new();
    let mut d = disk(info());
    let p = r
        .din(&mut d, &cdb10(0x28, 0, 100, 8), 4096)
        .block()
        .pending();
    assert_eq!(
        p.complete(BlockOutcome::Success),
        ScsiCompletion {
            tag: Tag(7),
            status: ScsiStatus::Good,
            sense: Sense::default(),
            transferred: 4096
        }
    );
    let c = p.complete(BlockOutcome::Failed {
        error: BlockError::Io,
        sector: Some(103),
    });
    assert_eq!(c.status, ScsiStatus::CheckCondition);
    assert_eq!((c.sense.key, c.sense.asc, c.sense.ascq), (0x03, 0x11, 0x00));
    assert!(c.sense.information_valid);
    assert_eq!(c.sense.information, 103);
    assert_eq!(c.transferred, 3 * 512);
    // Unknown or implausible sector: the first LBA.
    for sector in [None, Some(5)] {
        let c = p.complete(BlockOutcome::Failed {
            error: BlockError::Io,
            sector,
        });
        assert_eq!(c.sense.information, 100);
        assert_eq!(c.transferred, 0);
    }
    let p = r
        .dout(&mut d, &cdb10(0x2a, 0, 100, 1), &[0; 512])
        .block()
        .pending();
    let c = p.complete(BlockOutcome::Failed {
        error: BlockError::Io,
        sector: None,
    });
    assert_eq!((c.sense.key, c.sense.asc), (0x03, 0x0c));
    let c = p.complete(BlockOutcome::Failed {
        error: BlockError::Busy,
        sector: None,
    });
    assert_eq!(c.status, ScsiStatus::Busy);
    let c = p.complete(BlockOutcome::Failed {
        error: BlockError::Aborted,
        sector: None,
    });
    assert_eq!((c.status, c.transferred), (ScsiStatus::TaskAborted, 0));
    let p = r.nodata(&mut d, &cdb10(0x35, 0, 0, 0)).block().pending();
    let c = p.complete(BlockOutcome::Failed {
        error: BlockError::NotSupported,
        sector: None,
    });
    assert_eq!((c.sense.key, c.sense.asc), (0x05, 0x20));
    let c = p.complete(BlockOutcome::Failed {
        error: BlockError::Io,
        sector: None,
    });
    assert_eq!((c.sense.key, c.sense.asc), (0x03, 0x0c));
    assert!(!c.sense.information_valid);
    assert_eq!(p.complete(BlockOutcome::Success).transferred, 0);
}

#[test]
fn several_operations_complete_together() {
    let mut r = Run::new();
    let mut d = disk(DiskInfo {
        discard: discard(),
        ..info()
    });
    let list = unmap_list(&[(10, 5), (100, 1), (200, 2)]);
    let b = r.dout(&mut d, &unmap_cdb(list.len()), &list).block();
    let mut p = b.pending();
    assert_eq!(p.outstanding(), 3);
    assert_eq!(p.record(BlockOutcome::Success), None);
    let failed = BlockOutcome::Failed {
        error: BlockError::Io,
        sector: Some(100),
    };
    assert_eq!(p.record(failed), None);
    let busy = BlockOutcome::Failed {
        error: BlockError::Busy,
        sector: None,
    };
    let c = p.record(busy).expect("the last outcome completes");
    assert_eq!((c.sense.key, c.sense.asc), (0x03, 0x0c));
    assert_eq!(c.sense.information, 100);
    // All good.
    let mut p = b.pending();
    for _ in 0..2 {
        assert_eq!(p.record(BlockOutcome::Success), None);
    }
    assert_eq!(
        p.record(BlockOutcome::Success).unwrap().status,
        ScsiStatus::Good
    );
    // A single operation.
    let mut p = r.din(&mut d, &cdb10(0x28, 0, 0, 2), 1024).block().pending();
    assert_eq!(p.record(BlockOutcome::Success).unwrap().transferred, 1024);
}

#[test]
fn outcomes_from_the_blkif_engine() {
    use crate::blkif::{BlockCompletion, BlockStatus};
    let op = BlockOp::Read {
        sector: 1000,
        sectors: 64,
    };
    let done = |status, transferred| BlockCompletion {
        tag: Tag(7),
        status,
        transferred,
    };
    assert_eq!(
        BlockOutcome::from_blkif(&op, &done(BlockStatus::Ok, 32768)),
        BlockOutcome::Success
    );
    assert_eq!(
        BlockOutcome::from_blkif(&op, &done(BlockStatus::IoError, 4096)),
        BlockOutcome::Failed {
            error: BlockError::Io,
            sector: Some(1008)
        }
    );
    assert_eq!(
        BlockOutcome::from_blkif(&BlockOp::Flush, &done(BlockStatus::NotSupported, 0)),
        BlockOutcome::Failed {
            error: BlockError::NotSupported,
            sector: None
        }
    );
    let mut r = Run::new();
    let mut d = disk(info());
    let p = r.din(&mut d, &cdb10(0x28, 0, 0, 1), 512).block().pending();
    for (status, sense) in [
        (BlockStatus::Invalid, (0x04, 0x44, 0x00)),
        (BlockStatus::Disconnected, (0x04, 0x3e, 0x01)),
    ] {
        let c = p.complete(BlockOutcome::from_blkif(&op, &done(status, 0)));
        assert_eq!((c.sense.key, c.sense.asc, c.sense.ascq), sense);
    }
}

#[test]
fn fixed_sense_format() {
    let s = WRITE_ERROR.sense_with_information(0x1234);
    let b = fixed_sense(&s);
    assert_eq!(b[0], 0xf0);
    assert_eq!(b[2], 0x03);
    assert_eq!(&b[3..7], &[0, 0, 0x12, 0x34]);
    assert_eq!(b[7], 10);
    assert_eq!((b[12], b[13]), (0x0c, 0x00));
    // An LBA past 32 bits cannot be reported.
    assert!(
        !WRITE_ERROR
            .sense_with_information(1 << 32)
            .information_valid
    );
}

#[test]
fn bad_segment_lists_are_refused() {
    let mut d = disk(info());
    let mut mem = Mem(vec![[0; PAGE]; 2]);
    let segs = [Segment {
        frame: 1,
        offset: 4000,
        length: 512,
    }];
    let req = ScsiRequest {
        tag: Tag(1),
        cdb: &cdb10(0x28, 0, 0, 1),
        direction: DataDirection::FromDevice,
        segments: &segs,
        transfer_length: 512,
        lun: 0,
    };
    let Action::Complete(c) = d.submit(&req, &mut mem) else {
        panic!("accepted a bad segment list");
    };
    assert_eq!((c.sense.key, c.sense.asc), (0x04, 0x44));
}

// ---- cache, verify, discard ----

#[test]
fn synchronize_cache() {
    let mut r = Run::new();
    let mut d = disk(info());
    assert_eq!(
        r.nodata(&mut d, &cdb10(0x35, 0, 0, 0)).ops(),
        [BlockOp::Flush]
    );
    assert_eq!(
        r.nodata(&mut d, &cdb16(0x91, 0x02, 10, 10)).ops(),
        [BlockOp::Flush]
    );
    assert_eq!(
        r.nodata(&mut d, &cdb16(0x91, 0, 2048 * 1024, 0)).sense(),
        OUT_OF_RANGE
    );
    assert_eq!(
        r.nodata(&mut d, &cdb10(0x35, 0x80, 0, 0)).sense(),
        INVALID_FIELD
    );
    let mut d = disk(DiskInfo {
        flush: false,
        ..info()
    });
    r.nodata(&mut d, &cdb10(0x35, 0, 0, 0)).good();
}

#[test]
fn verify() {
    let mut r = Run::new();
    let mut d = disk(info());
    r.nodata(&mut d, &cdb10(0x2f, 0, 0, 100)).good();
    r.nodata(&mut d, &cdb16(0x8f, 0, 10, 0)).good();
    assert_eq!(
        r.nodata(&mut d, &cdb16(0x8f, 0, 2048 * 1024 - 1, 2))
            .sense(),
        OUT_OF_RANGE
    );
    // BYTCHK: no comparison.
    assert_eq!(
        r.dout(&mut d, &cdb10(0x2f, 0x02, 0, 1), &[0; 512]).sense(),
        INVALID_FIELD
    );
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

fn unmap_cdb(len: usize) -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = 0x42;
    c[7..9].copy_from_slice(&(len as u16).to_be_bytes());
    c
}

#[test]
fn unmap() {
    let mut r = Run::new();
    let mut d = disk(DiskInfo {
        discard: discard(),
        sectors: 8 * 1000,
        logical_block_size: 4096,
        physical_block_size: 4096,
        ..info()
    });
    let list = unmap_list(&[(10, 5), (20, 0), (100, 1)]);
    let out = r.dout(&mut d, &unmap_cdb(list.len()), &list);
    let disc = |sector, sectors| BlockOp::Discard {
        sector,
        sectors,
        secure: false,
    };
    assert_eq!(out.ops(), [disc(80, 40), disc(800, 8)]);
    let p = out.block().pending();
    assert_eq!(p.kind(), CommandKind::Discard);
    let c = p.complete(BlockOutcome::Failed {
        error: BlockError::Io,
        sector: Some(800),
    });
    assert_eq!(c.sense.information, 100);
    // Nothing to do.
    let list = unmap_list(&[(1, 0)]);
    r.dout(&mut d, &unmap_cdb(list.len()), &list).good();
    r.nodata(&mut d, &unmap_cdb(0)).good();
    // A descriptor off the end.
    let list = unmap_list(&[(10, 5), (999, 2)]);
    assert_eq!(
        r.dout(&mut d, &unmap_cdb(list.len()), &list).sense(),
        OUT_OF_RANGE
    );
    // A parameter list too short for its header.
    assert_eq!(
        r.dout(&mut d, &unmap_cdb(6), &[0; 6]).sense(),
        (0x05, 0x1a, 0x00)
    );
    // More descriptors than reported.
    let many: Vec<(u64, u32)> = (0..MAX_OPS as u64 + 1).map(|i| (i, 1)).collect();
    let list = unmap_list(&many);
    assert_eq!(
        r.dout(&mut d, &unmap_cdb(list.len()), &list).sense(),
        (0x05, 0x26, 0x00)
    );
    // Exactly the maximum.
    let list = unmap_list(&many[..MAX_OPS]);
    assert_eq!(
        r.dout(&mut d, &unmap_cdb(list.len()), &list).ops().len(),
        MAX_OPS
    );
    // The parameter list length exceeds the buffer.
    let list = unmap_list(&[(10, 5)]);
    assert_eq!(
        r.dout(&mut d, &unmap_cdb(list.len() + 16), &list).sense(),
        INVALID_FIELD
    );
    // ANCHOR.
    let mut c = unmap_cdb(list.len());
    c[1] = 1;
    assert_eq!(r.dout(&mut d, &c, &list).sense(), INVALID_FIELD);
    // No discard: the command does not exist.
    let mut d = disk(info());
    assert_eq!(
        r.dout(&mut d, &unmap_cdb(list.len()), &list).sense(),
        INVALID_OP
    );
}

#[test]
fn unmap_total_is_limited() {
    let mut r = Run::new();
    let i = DiskInfo {
        discard: discard(),
        ..info()
    };
    let mut cfg = DiskConfig::new(i, Identity::new(&i, "1", b"1"));
    cfg.max_unmap_blocks = 100;
    let mut d = Disk::new(cfg);
    let list = unmap_list(&[(0, 60), (100, 40)]);
    assert_eq!(r.dout(&mut d, &unmap_cdb(list.len()), &list).ops().len(), 2);
    let list = unmap_list(&[(0, 60), (100, 41)]);
    assert_eq!(
        r.dout(&mut d, &unmap_cdb(list.len()), &list).sense(),
        (0x05, 0x26, 0x00)
    );
    assert_eq!(
        r.dout(&mut d, &cdb16(0x93, 0x08, 0, 101), &[0; 512])
            .sense(),
        INVALID_FIELD
    );
}

#[test]
fn write_same_with_unmap() {
    let mut r = Run::new();
    let mut d = disk(DiskInfo {
        discard: discard(),
        ..info()
    });
    assert_eq!(
        r.dout(&mut d, &cdb16(0x93, 0x08, 64, 128), &[0; 512]).ops(),
        [BlockOp::Discard {
            sector: 64,
            sectors: 128,
            secure: false
        }]
    );
    // A pattern write, a zero length, a range off the end, ANCHOR.
    for (flags, lba, n, want) in [
        (0x00, 0, 1, INVALID_FIELD),
        (0x08, 0, 0, INVALID_FIELD),
        (0x08, 2048 * 1024 - 1, 2, OUT_OF_RANGE),
        (0x18, 0, 1, INVALID_FIELD),
    ] {
        assert_eq!(
            r.dout(&mut d, &cdb16(0x93, flags, lba, n), &[0; 512])
                .sense(),
            want
        );
    }
    let mut d = disk(info());
    assert_eq!(
        r.dout(&mut d, &cdb16(0x93, 0x08, 0, 1), &[0; 512]).sense(),
        INVALID_FIELD
    );
}

// ---- MODE SENSE ----

#[test]
fn mode_sense_caching_page() {
    let mut r = Run::new();
    let mut d = disk(info());
    let out = r.din(&mut d, &[0x1a, 0, 0x08, 0, 255, 0], 255);
    let p = out.good();
    assert_eq!(p.len(), 4 + 8 + 20);
    assert_eq!(&p[0..4], &[31, 0, 0x10, 8]);
    assert_eq!(be32(p, 4), 2048 * 1024);
    assert_eq!(be32(p, 8), 512);
    assert_eq!(&p[12..15], &[0x08, 0x12, 0x04]);
    // DBD: no block descriptor; no flush: no write cache.
    let mut d = disk(DiskInfo {
        flush: false,
        ..info()
    });
    let out = r.din(&mut d, &[0x1a, 0x08, 0x08, 0, 255, 0], 255);
    let p = out.good();
    assert_eq!(p.len(), 4 + 20);
    assert_eq!(&p[0..4], &[23, 0, 0x10, 0]);
    assert_eq!(&p[4..7], &[0x08, 0x12, 0x00]);
}

#[test]
fn mode_sense_header_and_pages() {
    let mut r = Run::new();
    let mut d = disk(DiskInfo {
        read_only: true,
        ..info()
    });
    // All pages, MODE SENSE (10) with long LBA descriptors.
    let out = r.din(&mut d, &[0x5a, 0x10, 0x3f, 0, 0, 0, 0, 1, 0, 0], 256);
    let p = out.good();
    assert_eq!(p.len(), 8 + 16 + 20 + 12);
    assert_eq!(be16(p, 0) as usize, p.len() - 2);
    assert_eq!(p[3], 0x90); // WP, DPOFUA
    assert_eq!(p[4], 0x01); // LONGLBA
    assert_eq!(be16(p, 6), 16);
    assert_eq!(be64(p, 8), 2048 * 1024);
    assert_eq!(be32(p, 20), 512);
    assert_eq!(p[24], 0x08);
    assert_eq!(p[26], 0x00); // read-only: no write cache
    assert_eq!(&p[44..48], &[0x0a, 0x0a, 0x02, 0x10]);
    // All pages and subpages.
    r.din(&mut d, &[0x1a, 0, 0x3f, 0xff, 255, 0], 255).good();
    // Truncation keeps the full mode data length.
    let out = r.din(&mut d, &[0x1a, 0, 0x3f, 0, 4, 0], 255);
    assert_eq!(out.good(), &[4 + 8 + 20 + 12 - 1, 0, 0x90, 8]);
}

#[test]
fn mode_sense_page_control_and_bad_fields() {
    let mut r = Run::new();
    let mut d = disk(info());
    // Changeable values: nothing changes.
    let out = r.din(&mut d, &[0x1a, 0x08, 0x48, 0, 255, 0], 255);
    assert_eq!(&out.good()[4..7], &[0x08, 0x12, 0x00]);
    // Default values equal the current ones.
    let out = r.din(&mut d, &[0x1a, 0x08, 0x88, 0, 255, 0], 255);
    assert_eq!(out.good()[6], 0x04);
    // Saved values.
    assert_eq!(
        r.din(&mut d, &[0x1a, 0, 0xc8, 0, 255, 0], 255).sense(),
        (0x05, 0x39, 0x00)
    );
    // Unknown page, subpage, reserved bit.
    for cdb in [
        [0x1a, 0, 0x1c, 0, 255, 0],
        [0x1a, 0, 0x08, 0x01, 255, 0],
        [0x1a, 0x10, 0x08, 0, 255, 0],
        [0x1a, 0, 0x2a, 0, 255, 0],
    ] {
        assert_eq!(r.din(&mut d, &cdb, 255).sense(), INVALID_FIELD);
    }
}

// ---- REPORT LUNS, TEST UNIT READY, REQUEST SENSE, unit attentions ----

#[test]
fn report_luns() {
    let mut r = Run::new();
    let mut d = disk(info());
    let mut c = [0u8; 12];
    c[0] = 0xa0;
    c[9] = 255;
    let out = r.din(&mut d, &c, 255);
    assert_eq!(
        out.good(),
        &[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    c[9] = 3;
    assert_eq!(r.din(&mut d, &c, 255).sense(), INVALID_FIELD);
    c[9] = 16;
    c[2] = 0x10;
    assert_eq!(r.din(&mut d, &c, 255).sense(), INVALID_FIELD);
}

#[test]
fn test_unit_ready_and_request_sense() {
    let mut r = Run::new();
    let mut d = disk(info());
    r.nodata(&mut d, &[0, 0, 0, 0, 0, 0]).good();
    let out = r.din(&mut d, &[0x03, 0, 0, 0, 252, 0], 252);
    let s = out.good();
    assert_eq!(s.len(), 18);
    assert_eq!(&s[0..3], &[0x70, 0, 0]);
    assert_eq!(
        r.din(&mut d, &[0x03, 1, 0, 0, 252, 0], 252).sense(),
        INVALID_FIELD
    );
}

#[test]
fn capacity_change_raises_a_unit_attention() {
    let mut r = Run::new();
    let mut d = disk(info());
    d.set_capacity(4096 * 1024);
    // INQUIRY does not report it.
    r.din(&mut d, &[0x12, 0, 0, 0, 36, 0], 36).good();
    // The next other command does, once.
    let out = r.din(&mut d, &cdb10(0x28, 0, 0, 1), 512);
    assert_eq!(out.sense(), (0x06, 0x2a, 0x09));
    let out = r.din(&mut d, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8);
    assert_eq!(be32(out.good(), 0), 4096 * 1024 - 1);
    // The new capacity is usable.
    r.din(&mut d, &cdb10(0x28, 0, 3000 * 1024, 1), 512).ops();
    // The same capacity again: no attention.
    d.set_capacity(4096 * 1024);
    r.nodata(&mut d, &[0, 0, 0, 0, 0, 0]).good();
}

#[test]
fn request_sense_returns_and_clears_unit_attentions() {
    let mut r = Run::new();
    let mut d = disk(info());
    d.set_capacity(1024);
    d.reset();
    // Highest priority first: the reset.
    let out = r.din(&mut d, &[0x03, 0, 0, 0, 18, 0], 18);
    assert_eq!(&out.good()[12..14], &[0x29, 0x00]);
    assert_eq!(out.good()[2], 0x06);
    assert_eq!(
        r.nodata(&mut d, &[0, 0, 0, 0, 0, 0]).sense(),
        (0x06, 0x2a, 0x09)
    );
    let out = r.din(&mut d, &[0x03, 0, 0, 0, 18, 0], 18);
    assert_eq!(&out.good()[12..14], &[0, 0]);
    r.nodata(&mut d, &[0, 0, 0, 0, 0, 0]).good();
}

#[test]
fn start_stop_unit() {
    let mut r = Run::new();
    let mut d = disk(info());
    // Stop: flush the cache.
    assert_eq!(
        r.nodata(&mut d, &[0x1b, 0, 0, 0, 0x00, 0]).ops(),
        [BlockOp::Flush]
    );
    // Stop with NO_FLUSH, start, a power condition.
    for byte4 in [0x04, 0x01, 0x30] {
        r.nodata(&mut d, &[0x1b, 0, 0, 0, byte4, 0]).good();
    }
    assert_eq!(
        r.nodata(&mut d, &[0x1b, 0x02, 0, 0, 1, 0]).sense(),
        INVALID_FIELD
    );
    let mut cd = disk(cd_info());
    // Eject refused, load accepted.
    assert_eq!(
        r.nodata(&mut cd, &[0x1b, 0, 0, 0, 0x02, 0]).sense(),
        (0x05, 0x53, 0x02)
    );
    r.nodata(&mut cd, &[0x1b, 0, 0, 0, 0x03, 0]).good();
}

#[test]
fn unknown_short_and_empty_cdbs() {
    let mut r = Run::new();
    let mut d = disk(info());
    for op in [0x04, 0x15, 0x55, 0x5e, 0x85, 0xa1, 0x43, 0x46, 0x4a] {
        let mut c = [0u8; 16];
        c[0] = op;
        assert_eq!(r.nodata(&mut d, &c).sense(), INVALID_OP, "opcode {op:#x}");
    }
    // Groups without a defined length.
    assert_eq!(r.nodata(&mut d, &[0x7f; 16]).sense(), INVALID_OP);
    assert_eq!(r.nodata(&mut d, &[0xc0; 16]).sense(), INVALID_OP);
    assert_eq!(r.nodata(&mut d, &[]).sense(), INVALID_OP);
    // Short CDBs.
    assert_eq!(
        r.din(&mut d, &[0x28, 0, 0, 0, 0, 0], 512).sense(),
        INVALID_FIELD
    );
    assert_eq!(r.din(&mut d, &[0x12, 0, 0, 0], 36).sense(), INVALID_FIELD);
    // MMC commands on a disk, SBC-only commands on a CD-ROM.
    let mut cd = disk(cd_info());
    let list = unmap_list(&[(0, 1)]);
    assert_eq!(
        r.dout(&mut cd, &unmap_cdb(list.len()), &list).sense(),
        INVALID_OP
    );
    assert_eq!(
        r.din(&mut cd, &cdb16(0x88, 0, 0, 1), 2048).sense(),
        INVALID_OP
    );
}

// ---- CD-ROM ----

#[test]
fn cdrom_mount_sequence() {
    let mut r = Run::new();
    let mut cd = disk(cd_info());
    // INQUIRY.
    assert_eq!(r.din(&mut cd, &[0x12, 0, 0, 0, 96, 0], 96).good()[0], 0x05);
    // GET CONFIGURATION, all features.
    let out = r.din(&mut cd, &[0x46, 0, 0, 0, 0, 0, 0, 1, 0, 0], 256);
    let p = out.good();
    assert_eq!(be32(p, 0) as usize, p.len() - 4);
    assert_eq!(be16(p, 6), 0x0008);
    // Profile list: DVD-ROM, CD-ROM (current).
    assert_eq!(&p[8..12], &[0, 0, 0x03, 8]);
    assert_eq!(&p[12..20], &[0, 0x10, 0, 0, 0, 0x08, 1, 0]);
    // Core: version 2, SCSI interface, DBE.
    assert_eq!(&p[20..24], &[0, 0x01, 0x0b, 8]);
    assert_eq!(&p[24..29], &[0, 0, 0, 1, 1]);
    // Morphing: OCEvent.
    assert_eq!(&p[32..37], &[0, 0x02, 0x07, 4, 0x02]);
    // Removable medium: tray, lock.
    assert_eq!(&p[40..45], &[0, 0x03, 0x03, 4, 0x21]);
    // Random readable: 2048-byte blocks, blocking 1.
    assert_eq!(&p[48..52], &[0, 0x10, 0x01, 8]);
    assert_eq!(be32(p, 52), 2048);
    assert_eq!(be16(p, 56), 1);
    // DVD read: not current.
    assert_eq!(&p[60..64], &[0, 0x1f, 0x00, 0]);
    assert_eq!(p.len(), 64);
    // READ TOC, format 0.
    let out = r.din(&mut cd, &[0x43, 0, 0, 0, 0, 0, 0, 0, 255, 0], 255);
    assert_eq!(
        out.good(),
        &[
            0, 18, 1, 1, // header
            0, 0x14, 1, 0, 0, 0, 0, 0, // track 1 at 0
            0, 0x14, 0xaa, 0, 0, 0x04, 0x93, 0xe0, // lead-out at 300000
        ]
    );
    // READ CAPACITY: 2048-byte blocks.
    let out = r.din(&mut cd, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8);
    assert_eq!(out.good(), &[0, 0x04, 0x93, 0xdf, 0, 0, 0x08, 0]);
    // READ (10) of the volume descriptor: 2048-byte blocks in 512-byte sectors.
    assert_eq!(
        r.din(&mut cd, &cdb10(0x28, 0, 16, 1), 2048).ops(),
        [BlockOp::Read {
            sector: 64,
            sectors: 4
        }]
    );
    assert_eq!(
        r.din(&mut cd, &cdb12(0xa8, 0, 100, 2), 4096).ops(),
        [BlockOp::Read {
            sector: 400,
            sectors: 8
        }]
    );
    assert_eq!(
        r.din(&mut cd, &cdb10(0x28, 0, 300_000, 1), 2048).sense(),
        OUT_OF_RANGE
    );
}

#[test]
fn get_configuration_request_types() {
    let mut r = Run::new();
    let mut cd = disk(DiskInfo {
        sectors: 4 * 2_000_000,
        ..cd_info()
    });
    // A DVD-sized medium: DVD-ROM current, DVD read current, blocking 16.
    let out = r.din(&mut cd, &[0x46, 1, 0, 0, 0, 0, 0, 1, 0, 0], 256);
    let p = out.good();
    assert_eq!(be16(p, 6), 0x0010);
    assert_eq!(&p[12..20], &[0, 0x10, 1, 0, 0, 0x08, 0, 0]);
    assert_eq!(be16(p, 56), 16);
    assert_eq!(&p[60..64], &[0, 0x1f, 0x01, 0]);
    // One feature.
    let out = r.din(&mut cd, &[0x46, 2, 0, 0x03, 0, 0, 0, 1, 0, 0], 256);
    assert_eq!(&out.good()[8..], &[0, 3, 3, 4, 0x21, 0, 0, 0]);
    // From a starting feature.
    let out = r.din(&mut cd, &[0x46, 0, 0, 0x10, 0, 0, 0, 1, 0, 0], 256);
    assert_eq!(out.good().len(), 8 + 12 + 4);
    // The header alone, truncated, keeps the full length.
    let out = r.din(&mut cd, &[0x46, 0, 0, 0, 0, 0, 0, 0, 8, 0], 256);
    assert_eq!(be32(out.good(), 0), 60);
    assert_eq!(
        r.din(&mut cd, &[0x46, 3, 0, 0, 0, 0, 0, 1, 0, 0], 256)
            .sense(),
        INVALID_FIELD
    );
}

#[test]
fn read_toc_formats() {
    let mut r = Run::new();
    let mut cd = disk(cd_info());
    // MSF: track 1 at 00:02:00, lead-out at 300150 frames = 66:42:00.
    let out = r.din(&mut cd, &[0x43, 0x02, 0, 0, 0, 0, 0, 0, 255, 0], 255);
    let p = out.good();
    assert_eq!(&p[8..12], &[0, 0, 2, 0]);
    assert_eq!(&p[16..20], &[0, 66, 42, 0]);
    // Starting at the lead-out.
    let out = r.din(&mut cd, &[0x43, 0, 0, 0, 0, 0, 0xaa, 0, 255, 0], 255);
    assert_eq!(out.good().len(), 12);
    // Session information.
    let out = r.din(&mut cd, &[0x43, 0, 1, 0, 0, 0, 0, 0, 255, 0], 255);
    assert_eq!(out.good(), &[0, 10, 1, 1, 0, 0x14, 1, 0, 0, 0, 0, 0]);
    // The same through the older format field in the control byte.
    let out = r.din(&mut cd, &[0x43, 0, 0, 0, 0, 0, 0, 0, 255, 0x40], 255);
    assert_eq!(out.good().len(), 12);
    // Raw TOC.
    let out = r.din(&mut cd, &[0x43, 0, 2, 0, 0, 0, 1, 0, 255, 0], 255);
    let p = out.good();
    assert_eq!(p.len(), 4 + 4 * 11);
    assert_eq!(&p[4..15], &[1, 0x14, 0, 0xa0, 0, 0, 0, 0, 1, 0, 0]);
    assert_eq!(&p[26..37], &[1, 0x14, 0, 0xa2, 0, 0, 0, 0, 66, 42, 0]);
    // Other tracks and formats.
    assert_eq!(
        r.din(&mut cd, &[0x43, 0, 0, 0, 0, 0, 2, 0, 255, 0], 255)
            .sense(),
        INVALID_FIELD
    );
    assert_eq!(
        r.din(&mut cd, &[0x43, 0, 4, 0, 0, 0, 0, 0, 255, 0], 255)
            .sense(),
        INVALID_FIELD
    );
}

#[test]
fn event_status_and_media_changes() {
    let mut r = Run::new();
    let mut cd = disk(cd_info());
    let gesn = [0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8, 0];
    let out = r.din(&mut cd, &gesn, 8);
    assert_eq!(out.good(), &[0, 6, 4, 0x52, 0, 0x02, 0, 0]);
    // Operational change has priority when asked for.
    let out = r.din(&mut cd, &[0x4a, 1, 0, 0, 0x52, 0, 0, 0, 8, 0], 8);
    assert_eq!(out.good()[2], 1);
    // No supported class asked for.
    let out = r.din(&mut cd, &[0x4a, 1, 0, 0, 0x04, 0, 0, 0, 8, 0], 8);
    assert_eq!(out.good(), &[0, 2, 0x80, 0x52]);
    // Asynchronous mode.
    assert_eq!(
        r.din(&mut cd, &[0x4a, 0, 0, 0, 0x10, 0, 0, 0, 8, 0], 8)
            .sense(),
        INVALID_FIELD
    );
    // The medium goes away: removal event, then not ready.
    cd.set_capacity(0);
    let out = r.din(&mut cd, &gesn, 8);
    assert_eq!(&out.good()[4..6], &[3, 0]);
    assert_eq!(&r.din(&mut cd, &gesn, 8).good()[4..6], &[0, 0]);
    assert_eq!(r.nodata(&mut cd, &[0; 6]).sense(), (0x02, 0x3a, 0x00));
    let out = r.din(&mut cd, &[0x03, 0, 0, 0, 18, 0], 18);
    assert_eq!((out.good()[2], out.good()[12]), (0x02, 0x3a));
    // GET CONFIGURATION without a medium: no current profile.
    let out = r.din(&mut cd, &[0x46, 1, 0, 0, 0, 0, 0, 1, 0, 0], 256);
    assert_eq!(be16(out.good(), 6), 0);
    // A new medium: event, then a unit attention, then ready.
    cd.set_capacity(4 * 1000);
    let all = [0x4a, 1, 0, 0, 0x52, 0, 0, 0, 8, 0];
    let out = r.din(&mut cd, &all, 8);
    assert_eq!(&out.good()[2..6], &[4, 0x52, 2, 0x02]);
    assert_eq!(r.din(&mut cd, &all, 8).good()[2], 1);
    assert_eq!(r.nodata(&mut cd, &[0; 6]).sense(), (0x06, 0x28, 0x00));
    r.nodata(&mut cd, &[0; 6]).good();
}

#[test]
fn disc_and_track_information() {
    let mut r = Run::new();
    let mut cd = disk(cd_info());
    let out = r.din(&mut cd, &[0x51, 0, 0, 0, 0, 0, 0, 0, 34, 0], 34);
    let p = out.good();
    assert_eq!(p.len(), 34);
    assert_eq!(&p[0..7], &[0, 32, 0x0e, 1, 1, 1, 1]);
    assert_eq!(be32(p, 16), u32::MAX);
    assert_eq!(
        r.din(&mut cd, &[0x51, 1, 0, 0, 0, 0, 0, 0, 34, 0], 34)
            .sense(),
        INVALID_FIELD
    );
    // By track number, by LBA.
    for (kind, number) in [(1u8, 1u32), (0, 1234), (2, 1)] {
        let mut c = [0u8; 10];
        c[0] = 0x52;
        c[1] = kind;
        c[2..6].copy_from_slice(&number.to_be_bytes());
        c[8] = 48;
        let out = r.din(&mut cd, &c, 48);
        let p = out.good();
        assert_eq!(&p[0..7], &[0, 46, 1, 1, 0, 4, 1]);
        assert_eq!(be32(p, 24), 300_000);
    }
    let mut c = [0x52, 1, 0, 0, 0, 2, 0, 0, 48, 0];
    assert_eq!(r.din(&mut cd, &c, 48).sense(), INVALID_FIELD);
    c = [0x52, 0, 0, 0x04, 0x93, 0xe0, 0, 0, 48, 0];
    assert_eq!(r.din(&mut cd, &c, 48).sense(), OUT_OF_RANGE);
}

#[test]
fn cdrom_mode_sense_and_medium_removal() {
    let mut r = Run::new();
    let mut cd = disk(cd_info());
    let out = r.din(&mut cd, &[0x5a, 0, 0x2a, 0, 0, 0, 0, 0, 255, 0], 255);
    let p = out.good();
    assert_eq!(p.len(), 8 + 26);
    assert_eq!(&p[0..8], &[0, 32, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&p[8..10], &[0x2a, 24]);
    assert_eq!(p[8 + 6], 0x21);
    // Prevent removal: the lock state shows.
    r.nodata(&mut cd, &[0x1e, 0, 0, 0, 1, 0]).good();
    assert!(cd.removal_prevented());
    let out = r.din(&mut cd, &[0x5a, 0, 0x3f, 0, 0, 0, 0, 0, 255, 0], 255);
    assert_eq!(out.good()[8 + 6], 0x23);
    let out = r.din(&mut cd, &[0x4a, 1, 0, 0, 0x02, 0, 0, 0, 8, 0], 8);
    assert_eq!(out.good()[5], 0x80);
    r.nodata(&mut cd, &[0x1e, 0, 0, 0, 0, 0]).good();
    assert!(!cd.removal_prevented());
    // The caching page is not a CD-ROM page.
    assert_eq!(
        r.din(&mut cd, &[0x5a, 0, 0x08, 0, 0, 0, 0, 0, 255, 0], 255)
            .sense(),
        INVALID_FIELD
    );
    assert_eq!(
        r.nodata(&mut cd, &[0x1e, 0, 0, 0, 4, 0]).sense(),
        INVALID_FIELD
    );
}

#[test]
fn mechanism_status_speed_and_performance() {
    let mut r = Run::new();
    let mut cd = disk(cd_info());
    let mut c = [0u8; 12];
    c[0] = 0xbd;
    c[9] = 8;
    assert_eq!(r.din(&mut cd, &c, 8).good(), &[0; 8]);
    let mut c = [0u8; 12];
    c[0] = 0xbb;
    c[2] = 0xff;
    c[3] = 0xff;
    r.nodata(&mut cd, &c).good();
    let mut c = [0u8; 12];
    c[0] = 0xac;
    c[9] = 1;
    assert_eq!(r.din(&mut cd, &c, 24).good(), &[0, 0, 0, 4, 0, 0, 0, 0]);
    // SYNCHRONIZE CACHE and VERIFY are accepted on a CD-ROM.
    r.nodata(&mut cd, &cdb10(0x35, 0, 0, 0)).good();
    r.nodata(&mut cd, &cdb10(0x2f, 0, 0, 1)).good();
}

// ---- property: arbitrary CDBs ----

mod random_cdbs {
    use super::*;
    use proptest::prelude::*;

    const OPCODES: [u8; 34] = [
        0x00, 0x03, 0x08, 0x0a, 0x12, 0x1a, 0x1b, 0x1e, 0x25, 0x28, 0x2a, 0x2f, 0x35, 0x42, 0x43,
        0x46, 0x4a, 0x51, 0x52, 0x5a, 0x88, 0x8a, 0x8f, 0x91, 0x93, 0x9e, 0xa0, 0xa8, 0xaa, 0xac,
        0xbb, 0xbd, 0xff, 0x7e,
    ];

    fn any_info() -> impl Strategy<Value = DiskInfo> {
        (
            // Whatever `sectors` a backend writes, up to the largest number xenstore can carry.
            prop_oneof![
                4 => 0u64..(1 << 34),
                1 => (u64::MAX - 64)..=u64::MAX,
                1 => any::<u64>(),
            ],
            prop_oneof![Just(512u32), Just(4096), Just(1000), Just(0)],
            prop_oneof![Just(512u32), Just(4096), Just(0)],
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(sectors, lbs, pbs, ro, cd, flush, disc)| DiskInfo {
                sectors,
                logical_block_size: lbs,
                physical_block_size: pbs,
                read_only: ro,
                removable: cd,
                cdrom: cd,
                flush,
                barrier: false,
                discard: if disc { discard() } else { None },
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn any_cdb_is_handled(
            info in any_info(),
            op in prop::sample::select(&OPCODES[..]),
            mut cdb in prop::collection::vec(any::<u8>(), 0..=16),
            first_random in any::<bool>(),
            direction in 0u8..3,
            len in prop_oneof![Just(0usize), 1usize..600, Just(8192), 60_000usize..70_000],
            payload_byte in any::<u8>(),
            lun in prop_oneof![Just(0u8), any::<u8>()],
            attention in any::<bool>(),
        ) {
            if !first_random && !cdb.is_empty() {
                cdb[0] = op;
            }
            let mut d = disk(info);
            if attention {
                d.set_capacity(info.sectors / 2);
            }
            let direction = match direction {
                0 => DataDirection::None,
                1 => DataDirection::FromDevice,
                _ => DataDirection::ToDevice,
            };
            let len = if direction == DataDirection::None { 0 } else { len };
            let mut r = Run::new();
            r.mem = Mem(vec![[payload_byte; PAGE]; 40]);
            let out = r.with_lun(&mut d, &cdb, direction, len, lun);
            match out.action {
                Action::Complete(c) => {
                    prop_assert!(c.transferred as usize <= len);
                    if c.status == ScsiStatus::Good {
                        prop_assert_eq!(c.sense, Sense::default());
                    }
                }
                Action::Block(b) => {
                    prop_assert!(!b.ops().is_empty() && b.ops().len() <= MAX_OPS);
                    let sectors = d.info().sectors;
                    for op in b.ops() {
                        match *op {
                            BlockOp::Read { sector, sectors: n } => {
                                prop_assert_eq!(b.ops().len(), 1);
                                prop_assert!(n > 0 && sector + n <= sectors);
                                prop_assert!(n * 512 <= len as u64);
                                prop_assert_eq!(direction, DataDirection::FromDevice);
                            }
                            BlockOp::Write { sector, sectors: n, .. } => {
                                prop_assert_eq!(b.ops().len(), 1);
                                prop_assert!(n > 0 && sector + n <= sectors);
                                prop_assert!(n * 512 <= len as u64);
                                prop_assert!(!d.read_only());
                                prop_assert_eq!(direction, DataDirection::ToDevice);
                            }
                            BlockOp::Discard { sector, sectors: n, .. } => {
                                prop_assert!(n > 0 && sector + n <= sectors);
                                prop_assert!(!d.read_only());
                            }
                            BlockOp::Flush => prop_assert!(d.write_cache()),
                        }
                    }
                    let c = b.pending().complete(BlockOutcome::Success);
                    prop_assert!(c.transferred as usize <= len);
                    for sector in [None, Some(0), Some(u64::MAX)] {
                        let c = b.pending().complete(BlockOutcome::Failed {
                            error: BlockError::Io,
                            sector,
                        });
                        prop_assert!(c.transferred as usize <= len);
                    }
                }
            }
        }
    }
}

#[test]
fn features_the_backend_withdraws_are_no_longer_presented() {
    let mut r = Run::new();
    let mut d = disk(DiskInfo {
        discard: discard(),
        ..info()
    });
    assert!(d.write_cache());
    d.withdraw_flush();
    d.withdraw_discard();
    // The initiator hears of it once, then reads the new caching page: no write cache.
    assert_eq!(
        r.nodata(&mut d, &[0, 0, 0, 0, 0, 0]).sense(),
        (0x06, 0x2a, 0x01)
    );
    r.nodata(&mut d, &[0, 0, 0, 0, 0, 0]).good();
    let out = r.din(&mut d, &[0x1a, 0x08, 0x08, 0, 255, 0], 255);
    assert_eq!(&out.good()[4..7], &[0x08, 0x12, 0x00]);
    assert!(!d.write_cache());
    // UNMAP is refused now that discard is gone.
    let list = unmap_list(&[(10, 5)]);
    assert_eq!(
        r.dout(&mut d, &unmap_cdb(list.len()), &list).sense().0,
        0x05
    );
    // Withdrawing again changes nothing and raises nothing.
    d.withdraw_flush();
    d.withdraw_discard();
    r.nodata(&mut d, &[0, 0, 0, 0, 0, 0]).good();
}
