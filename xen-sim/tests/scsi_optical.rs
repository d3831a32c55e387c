//! A burning sequence on the model's DVD-R writer through xenscsi-core, and media changes.

mod scsi_support;

use scsi_support::Rig;
use xen_sim::scsiback::{Disc, Emulated, Optical, PROFILE_CD_R, PROFILE_DVD_R};
use xenscsi_core::luns::Address;
use xenscsi_core::sense::KEY_UNIT_ATTENTION;
use xenscsi_core::{Completion, DataDirection};

const DRIVE: Address = Address {
    bus: 0,
    target: 4,
    lun: 0,
};

fn cdb10(op: u8, byte1: u8, lba: u32, len: u16) -> [u8; 10] {
    let l = lba.to_be_bytes();
    let n = len.to_be_bytes();
    [op, byte1, l[0], l[1], l[2], l[3], 0, n[0], n[1], 0]
}

fn rig() -> Rig {
    let mut r = Rig::bare(128);
    r.be.add_lun(0, "0:0:4:0", Emulated::Optical(Optical::new(10_000)))
        .unwrap();
    r.start();
    r
}

fn data_in(r: &mut Rig, tag: u64, cdb: &[u8], len: usize) -> (Completion, Vec<u8>) {
    let segs = r.segments(0, len, 4096);
    let c = r.command(tag, DRIVE, cdb, DataDirection::FromDevice, &segs);
    let d = r.gather(&segs);
    (c, d)
}

fn check(c: &Completion) -> (u8, u8, u8) {
    assert_eq!(c.scsi_status, 2, "{c:?}");
    let s = c.sense.decode().unwrap();
    (s.key, s.asc, s.ascq)
}

#[test]
fn burn_a_disc_and_read_it_back() {
    let mut r = rig();
    let (c, d) = data_in(&mut r, 1, &[0x12, 0, 0, 0, 96, 0], 96);
    assert_eq!((c.scsi_status, c.residual), (0, 60));
    assert_eq!((d[0], d[1] & 0x80), (5, 0x80));

    // GET CONFIGURATION: DVD-R current, CD-R offered; 64 bytes asked, 20 come.
    let (c, d) = data_in(&mut r, 2, &cdb10(0x46, 0, 0, 64), 64);
    assert_eq!((c.scsi_status, c.residual), (0, 44));
    assert_eq!(u16::from_be_bytes([d[6], d[7]]), PROFILE_DVD_R);
    assert_eq!(u16::from_be_bytes([d[12], d[13]]), PROFILE_DVD_R);
    assert_eq!(d[14] & 1, 1);
    assert_eq!(u16::from_be_bytes([d[16], d[17]]), PROFILE_CD_R);

    // READ DISC INFORMATION: empty; READ TRACK INFORMATION of track 1: blank, NWA 0.
    let (c, d) = data_in(&mut r, 3, &cdb10(0x51, 0, 0, 34), 34);
    assert_eq!((c.scsi_status, d[2] & 3), (0, 0));
    let (_, d) = data_in(&mut r, 4, &cdb10(0x52, 1, 1, 36), 36);
    assert_eq!(d[6] & 0x40, 0x40);
    assert_eq!(d[7] & 1, 1);
    assert_eq!(u32::from_be_bytes([d[12], d[13], d[14], d[15]]), 0);
    assert_eq!(u32::from_be_bytes([d[24], d[25], d[26], d[27]]), 10_000);
    // No TOC on a blank disc.
    let (c, _) = data_in(&mut r, 5, &cdb10(0x43, 0, 0, 100), 100);
    assert_eq!(check(&c), (5, 0x24, 0));

    // Write a track: 32 blocks, then 16 more, from byte-granular buffers.
    let image: Vec<u8> = (0..48 * 2048u32)
        .map(|i| (i % 241) as u8 ^ (i >> 11) as u8)
        .collect();
    let segs = r.segments(5, 32 * 2048, 3000);
    r.fill(&segs, &image[..32 * 2048]);
    let c = r.command(
        6,
        DRIVE,
        &cdb10(0x2a, 0, 0, 32),
        DataDirection::ToDevice,
        &segs,
    );
    assert_eq!((c.scsi_status, c.residual), (0, 0));
    // Not at the next writable address: refused, nothing written.
    let segs = r.segments(0, 16 * 2048, 4096);
    r.fill(&segs, &image[32 * 2048..]);
    let c = r.command(
        7,
        DRIVE,
        &cdb10(0x2a, 0, 100, 16),
        DataDirection::ToDevice,
        &segs,
    );
    assert_eq!(check(&c), (5, 0x21, 2));
    assert_eq!(c.residual, 16 * 2048);
    let c = r.command(
        8,
        DRIVE,
        &cdb10(0x2a, 0, 32, 16),
        DataDirection::ToDevice,
        &segs,
    );
    assert_eq!((c.scsi_status, c.residual), (0, 0));
    // The open track: NWA 48.
    let (_, d) = data_in(&mut r, 9, &cdb10(0x52, 1, 1, 36), 36);
    assert_eq!(u32::from_be_bytes([d[12], d[13], d[14], d[15]]), 48);
    let (_, d) = data_in(&mut r, 10, &cdb10(0x51, 0, 0, 34), 34);
    assert_eq!(d[2] & 3, 1, "incomplete");

    // Close the track, close the session: the disc is complete.
    let c = r.command(
        11,
        DRIVE,
        &cdb10(0x5b, 0, 0x0100_0000, 0),
        DataDirection::None,
        &[],
    );
    assert_eq!(c.scsi_status, 0);
    let mut close_session = cdb10(0x5b, 0, 0, 0);
    close_session[2] = 2;
    let c = r.command(12, DRIVE, &close_session, DataDirection::None, &[]);
    assert_eq!(c.scsi_status, 0);
    let (_, d) = data_in(&mut r, 13, &cdb10(0x51, 0, 0, 34), 34);
    assert_eq!((d[2] & 3, (d[2] >> 2) & 3), (2, 3));

    // READ TOC: track 1 at 0, lead-out at 48.
    let (c, d) = data_in(&mut r, 14, &cdb10(0x43, 0, 0, 100), 100);
    assert_eq!((c.scsi_status, c.residual), (0, 100 - 20));
    assert_eq!((d[2], d[3]), (1, 1));
    assert_eq!(
        (d[6], u32::from_be_bytes([d[8], d[9], d[10], d[11]])),
        (1, 0)
    );
    assert_eq!(
        (d[14], u32::from_be_bytes([d[16], d[17], d[18], d[19]])),
        (0xaa, 48)
    );
    // READ CAPACITY and the data back.
    let (_, d) = data_in(&mut r, 15, &cdb10(0x25, 0, 0, 0), 8);
    assert_eq!(u32::from_be_bytes([d[0], d[1], d[2], d[3]]), 47);
    let segs = r.segments(777, 48 * 2048, 4096);
    let c = r.command(
        16,
        DRIVE,
        &cdb10(0x28, 0, 0, 48),
        DataDirection::FromDevice,
        &segs,
    );
    assert_eq!((c.scsi_status, c.residual), (0, 0));
    assert_eq!(r.gather(&segs), image);
    // A finalised disc takes no more data.
    let segs = r.segments(0, 2048, 4096);
    let c = r.command(
        17,
        DRIVE,
        &cdb10(0x2a, 0, 48, 1),
        DataDirection::ToDevice,
        &segs,
    );
    assert_eq!(check(&c), (5, 0x21, 2));
    let Some(Emulated::Optical(o)) = r.be.device(0) else {
        panic!()
    };
    assert_eq!(o.disc().unwrap().tracks, vec![(0, 48)]);
    assert!(r.done.is_empty());
}

#[test]
fn media_change_raises_unit_attention() {
    let mut r = rig();
    let c = r.command(1, DRIVE, &[0; 6], DataDirection::None, &[]);
    assert_eq!(c.scsi_status, 0);
    // Eject: MEDIUM NOT PRESENT.
    let c = r.command(2, DRIVE, &[0x1b, 0, 0, 0, 2, 0], DataDirection::None, &[]);
    assert_eq!(c.scsi_status, 0);
    let c = r.command(3, DRIVE, &[0; 6], DataDirection::None, &[]);
    assert_eq!(check(&c), (2, 0x3a, 0));
    // With no disc the current profile is none.
    let (_, d) = data_in(&mut r, 4, &cdb10(0x46, 0, 0, 8), 8);
    assert_eq!(u16::from_be_bytes([d[6], d[7]]), 0);
    // A new blank disc: the next command reports the change, once.
    if let Some(Emulated::Optical(o)) = r.be.device_mut(0) {
        o.insert(Disc::blank(500));
    }
    let c = r.command(5, DRIVE, &[0; 6], DataDirection::None, &[]);
    let s = c.sense.decode().unwrap();
    assert_eq!((s.key, s.asc, s.ascq), (KEY_UNIT_ATTENTION, 0x28, 0));
    assert!(s.is_media_change());
    let c = r.command(6, DRIVE, &[0; 6], DataDirection::None, &[]);
    assert_eq!(c.scsi_status, 0);
    let (_, d) = data_in(&mut r, 7, &cdb10(0x52, 1, 1, 36), 36);
    assert_eq!(u32::from_be_bytes([d[24], d[25], d[26], d[27]]), 500);
}
