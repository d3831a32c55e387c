//! A backup-like command sequence on the model's tape drive through xenscsi-core: data, sense
//! and residual checked byte for byte.

mod scsi_support;

use scsi_support::{Rig, TAPE};
use xen_sim::scsiback::{Emulated, TapeObject};
use xenscsi_core::sense::{Sense, KEY_BLANK_CHECK, KEY_NO_SENSE, KEY_UNIT_ATTENTION};
use xenscsi_core::{Completion, DataDirection, SubmitError, STATUS_CHECK_CONDITION};

fn cdb6(op: u8, byte1: u8, count: u32) -> [u8; 6] {
    let c = count.to_be_bytes();
    [op, byte1, c[1], c[2], c[3], 0]
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

fn sense(c: &Completion) -> Sense {
    assert_eq!(c.scsi_status, STATUS_CHECK_CONDITION, "{c:?}");
    c.sense.decode().expect("sense")
}

/// Writes one variable-length block.
fn write_block(r: &mut Rig, tag: u64, data: &[u8]) {
    let segs = r.segments(0, data.len(), 4096);
    r.fill(&segs, data);
    let c = r.command(
        tag,
        TAPE,
        &cdb6(0x0a, 0, data.len() as u32),
        DataDirection::ToDevice,
        &segs,
    );
    assert_eq!((c.scsi_status, c.residual), (0, 0), "{c:?}");
}

fn read_position(r: &mut Rig, tag: u64) -> (bool, u32) {
    let segs = r.segments(0, 20, 4096);
    let mut cdb = [0u8; 10];
    cdb[0] = 0x34;
    let c = r.command(tag, TAPE, &cdb, DataDirection::FromDevice, &segs);
    assert_eq!((c.scsi_status, c.residual), (0, 0));
    let d = r.gather(&segs);
    (
        d[0] & 0x80 != 0,
        u32::from_be_bytes([d[4], d[5], d[6], d[7]]),
    )
}

#[test]
fn variable_block_backup_and_restore() {
    let mut r = Rig::new(128);
    // The drive says it is a tape.
    let segs = r.segments(0, 36, 4096);
    let c = r.command(
        1,
        TAPE,
        &[0x12, 0, 0, 0, 36, 0],
        DataDirection::FromDevice,
        &segs,
    );
    assert_eq!(c.residual, 0);
    assert_eq!(r.gather(&segs)[0] & 0x1f, 1);

    // Two files: [64 KiB, 256 KiB] FM [10 000 bytes] FM.
    let a = pattern(64 * 1024, 1);
    let b = pattern(256 * 1024, 2);
    let c3 = pattern(10_000, 3);
    write_block(&mut r, 2, &a);
    write_block(&mut r, 3, &b);
    let c = r.command(4, TAPE, &cdb6(0x10, 0, 1), DataDirection::None, &[]);
    assert_eq!(c.scsi_status, 0);
    write_block(&mut r, 5, &c3);
    let c = r.command(6, TAPE, &cdb6(0x10, 0, 1), DataDirection::None, &[]);
    assert_eq!(c.scsi_status, 0);
    // The 256 KiB block went as one block (one request, indirect).
    let Some(Emulated::Tape(t)) = r.be.device(1) else {
        panic!()
    };
    assert_eq!(t.objects().len(), 5);
    assert_eq!(t.objects()[1], TapeObject::Block(b.clone()));
    assert_eq!(read_position(&mut r, 7), (false, 5));

    // Rewind; at the beginning.
    let c = r.command(8, TAPE, &cdb6(0x01, 0, 0), DataDirection::None, &[]);
    assert_eq!(c.scsi_status, 0);
    assert_eq!(read_position(&mut r, 9), (true, 0));

    // Read the first block exactly.
    let segs = r.segments(0, a.len(), 4096);
    let c = r.command(
        10,
        TAPE,
        &cdb6(0x08, 0, a.len() as u32),
        DataDirection::FromDevice,
        &segs,
    );
    assert_eq!((c.scsi_status, c.residual), (0, 0));
    assert_eq!(r.gather(&segs), a);

    // Read the 256 KiB block into a larger buffer (300 000 bytes): incorrect length, ILI, the
    // information field and the residual both 300 000 - 262 144.
    let want = 300_000usize;
    let segs = r.segments(0, want, 4096);
    let c = r.command(
        11,
        TAPE,
        &cdb6(0x08, 0, want as u32),
        DataDirection::FromDevice,
        &segs,
    );
    let s = sense(&c);
    assert!(s.ili && !s.filemark);
    assert_eq!(s.key, KEY_NO_SENSE);
    assert_eq!(s.information, Some((want - b.len()) as i64));
    assert_eq!(c.residual as usize, want - b.len());
    assert_eq!(c.transferred() as usize, b.len());
    assert_eq!(&r.gather(&segs)[..b.len()], &b[..]);

    // Next comes the filemark: FILEMARK, ASC 00/01, information = the requested length, and
    // nothing transferred (residual = everything).
    let segs = r.segments(0, 4096, 4096);
    let c = r.command(
        12,
        TAPE,
        &cdb6(0x08, 0, 4096),
        DataDirection::FromDevice,
        &segs,
    );
    let s = sense(&c);
    assert!(s.filemark && !s.ili);
    assert_eq!((s.asc, s.ascq, s.information), (0, 1, Some(4096)));
    assert_eq!((c.residual, c.transferred()), (4096, 0));

    // The second file's block into a smaller buffer: ILI with a negative information field,
    // the buffer full, residual 0.
    let segs = r.segments(0, 4000, 4096);
    let c = r.command(
        13,
        TAPE,
        &cdb6(0x08, 0, 4000),
        DataDirection::FromDevice,
        &segs,
    );
    let s = sense(&c);
    assert!(s.ili);
    assert_eq!(s.information, Some(4000 - 10_000));
    assert_eq!(c.residual, 0);
    assert_eq!(r.gather(&segs), &c3[..4000]);

    // Past the second filemark is the end of data: BLANK CHECK, 00/05.
    let segs = r.segments(0, 4096, 4096);
    let c = r.command(
        14,
        TAPE,
        &cdb6(0x08, 0, 4096),
        DataDirection::FromDevice,
        &segs,
    );
    let s = sense(&c);
    assert!(s.filemark);
    let c = r.command(
        15,
        TAPE,
        &cdb6(0x08, 0, 4096),
        DataDirection::FromDevice,
        &segs,
    );
    let s = sense(&c);
    assert_eq!((s.key, s.asc, s.ascq), (KEY_BLANK_CHECK, 0, 5));
    assert_eq!(c.residual, 4096);

    // SPACE back one filemark, back over it again to the end of file 1, then forward one
    // filemark: the start of file 2.
    let back = |n: i32| cdb6(0x11, 1, (n as u32) & 0xff_ffff);
    let c = r.command(16, TAPE, &back(-2), DataDirection::None, &[]);
    assert_eq!(c.scsi_status, 0);
    assert_eq!(read_position(&mut r, 17), (false, 2));
    let c = r.command(18, TAPE, &cdb6(0x11, 1, 1), DataDirection::None, &[]);
    assert_eq!(c.scsi_status, 0);
    assert_eq!(read_position(&mut r, 19), (false, 3));
    // SPACE 5 blocks forward hits the filemark after one: FILEMARK, information = 4 left.
    let c = r.command(20, TAPE, &cdb6(0x11, 0, 5), DataDirection::None, &[]);
    let s = sense(&c);
    assert!(s.filemark);
    assert_eq!(s.information, Some(4));
    // SPACE 10 filemarks backwards: two are crossed, then the beginning of the partition:
    // EOM, 00/04, information = the 8 not spaced.
    let c = r.command(21, TAPE, &back(-10), DataDirection::None, &[]);
    let s = sense(&c);
    assert!(s.eom);
    assert_eq!((s.asc, s.ascq, s.information), (0, 4, Some(8)));
    assert_eq!(read_position(&mut r, 22), (true, 0));
    // SPACE to end of data, then LOCATE to object 1 and read the big block again, exactly.
    let c = r.command(23, TAPE, &cdb6(0x11, 3, 0), DataDirection::None, &[]);
    assert_eq!(c.scsi_status, 0);
    assert_eq!(read_position(&mut r, 24), (false, 5));
    let mut locate = [0u8; 10];
    locate[0] = 0x2b;
    locate[3..7].copy_from_slice(&1u32.to_be_bytes());
    let c = r.command(25, TAPE, &locate, DataDirection::None, &[]);
    assert_eq!(c.scsi_status, 0);
    let segs = r.segments(4096 + 17, b.len(), 4096);
    let c = r.command(
        26,
        TAPE,
        &cdb6(0x08, 0, b.len() as u32),
        DataDirection::FromDevice,
        &segs,
    );
    assert_eq!((c.scsi_status, c.residual), (0, 0));
    assert_eq!(r.gather(&segs), b);
    assert!(r.done.is_empty());
}

#[test]
fn fixed_block_mode() {
    let mut r = Rig::new(128);
    // MODE SELECT(6): header + block descriptor with block length 512.
    let mut params = [0u8; 12];
    params[3] = 8;
    params[9..12].copy_from_slice(&[0, 2, 0]);
    let segs = r.segments(0, 12, 4096);
    r.fill(&segs, &params);
    let c = r.command(
        1,
        TAPE,
        &[0x15, 0x10, 0, 0, 12, 0],
        DataDirection::ToDevice,
        &segs,
    );
    assert_eq!((c.scsi_status, c.residual), (0, 0));
    // MODE SENSE reports it.
    let segs = r.segments(0, 12, 4096);
    let c = r.command(
        2,
        TAPE,
        &[0x1a, 0, 0, 0, 12, 0],
        DataDirection::FromDevice,
        &segs,
    );
    assert_eq!(c.scsi_status, 0);
    assert_eq!(&r.gather(&segs)[9..12], &[0, 2, 0]);

    // WRITE 6 fixed blocks, a filemark.
    let data = pattern(6 * 512, 9);
    let segs = r.segments(100, data.len(), 1000);
    r.fill(&segs, &data);
    let c = r.command(3, TAPE, &cdb6(0x0a, 1, 6), DataDirection::ToDevice, &segs);
    assert_eq!((c.scsi_status, c.residual), (0, 0));
    let c = r.command(4, TAPE, &cdb6(0x10, 0, 1), DataDirection::None, &[]);
    assert_eq!(c.scsi_status, 0);
    let c = r.command(5, TAPE, &cdb6(0x01, 0, 0), DataDirection::None, &[]);
    assert_eq!(c.scsi_status, 0);

    // READ 8 blocks: 6 come, then the filemark: information = 2 blocks, residual = 1024.
    let segs = r.segments(0, 8 * 512, 4096);
    let c = r.command(6, TAPE, &cdb6(0x08, 1, 8), DataDirection::FromDevice, &segs);
    let s = sense(&c);
    assert!(s.filemark);
    assert_eq!(s.information, Some(2));
    assert_eq!(c.residual, 2 * 512);
    assert_eq!(&r.gather(&segs)[..6 * 512], &data[..]);
    // Fixed and SILI together is an illegal request.
    let c = r.command(
        7,
        TAPE,
        &cdb6(0x08, 3, 1),
        DataDirection::FromDevice,
        &segs[..1],
    );
    assert_eq!(sense(&c).key, 5);
    assert!(r.done.is_empty());
}

#[test]
fn a_tape_block_is_never_split() {
    // Without feature-sg-grant: 26 segments per request, so a 256 KiB block (64 pages) does not
    // fit and is refused whole; the tape is untouched.
    let mut r = Rig::new(0);
    let block = pattern(256 * 1024, 4);
    let segs = r.segments(0, block.len(), 4096);
    assert_eq!(
        r.submit(
            1,
            TAPE,
            &cdb6(0x0a, 0, block.len() as u32),
            DataDirection::ToDevice,
            &segs,
            0
        ),
        Err(SubmitError::TooLarge {
            segments: 64,
            max: 26
        })
    );
    r.run();
    let Some(Emulated::Tape(t)) = r.be.device(1) else {
        panic!()
    };
    assert!(t.objects().is_empty());
    // What fits (max_transfer bytes, however aligned) goes as one block.
    let max = r.eng.limits().max_transfer as usize;
    let block = pattern(max, 5);
    let segs = r.segments(4095, max, 4096);
    assert_eq!(segs.len(), 26);
    r.fill(&segs, &block);
    let c = r.command(
        2,
        TAPE,
        &cdb6(0x0a, 0, max as u32),
        DataDirection::ToDevice,
        &segs,
    );
    assert_eq!((c.scsi_status, c.residual), (0, 0));
    let Some(Emulated::Tape(t)) = r.be.device(1) else {
        panic!()
    };
    assert_eq!(t.objects(), &[TapeObject::Block(block)]);
}

#[test]
fn full_tape_reports_end_of_medium() {
    let mut r = Rig::bare(128);
    r.be.add_lun(
        1,
        "0:0:2:0",
        Emulated::Tape(xen_sim::scsiback::Tape::new(100_000)),
    )
    .unwrap();
    r.start();
    write_block(&mut r, 1, &pattern(65_536, 1));
    let data = pattern(65_536, 2);
    let segs = r.segments(0, data.len(), 4096);
    r.fill(&segs, &data);
    let c = r.command(
        2,
        TAPE,
        &cdb6(0x0a, 0, 65_536),
        DataDirection::ToDevice,
        &segs,
    );
    let s = sense(&c);
    assert!(s.eom);
    assert_eq!((s.key, s.asc, s.ascq), (0xd, 0, 2));
    assert_eq!(c.residual, 65_536);
    // A LUN reset leaves a unit attention for the next command (power on, reset).
    r.reset(90, TAPE).unwrap();
    r.run();
    assert_eq!(r.tm.len(), 1);
    assert!(r.tm[0].success);
    let c = r.command(3, TAPE, &cdb6(0x00, 0, 0), DataDirection::None, &[]);
    let s = sense(&c);
    assert_eq!((s.key, s.asc), (KEY_UNIT_ATTENTION, 0x29));
}
