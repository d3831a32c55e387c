//! xenscsi-core against the scsiback model: the handshake, the LUN list and hotplug, disk I/O
//! with byte-granular direct and indirect segments, and the limits.

mod scsi_support;

use scsi_support::{Rig, DISK, TAPE};
use xen_abi::xenbus::XenbusState;
use xen_sim::scsiback::{Disk, Emulated};
use xenpci_core::xenbus::Backend;
use xenscsi_core::luns::{Address, LunEvent, LunRefusal};
use xenscsi_core::{DataDirection, EngineState, HostStatus, Outcome, SubmitError};

fn read10(lba: u32, blocks: u16) -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = 0x28;
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[7..9].copy_from_slice(&blocks.to_be_bytes());
    c
}

fn write10(lba: u32, blocks: u16) -> [u8; 10] {
    let mut c = read10(lba, blocks);
    c[0] = 0x2a;
    c
}

#[test]
fn connects_and_reports_the_luns_with_the_state_handshake() {
    let r = Rig::new(128);
    assert_eq!(r.hs.state(), XenbusState::Connected);
    assert_eq!(r.eng.state(), EngineState::Running);
    assert_eq!(r.handshake_errors, 0);
    // LUN state 3 -> the frontend writes 4 for each; the toolstack then sets 4.
    for dev in [0, 1] {
        assert_eq!(r.be.frontend_dev_state(dev), 4);
        assert_eq!(r.be.lun_state(dev), 4);
    }
    assert_eq!(r.eng.luns().len(), 2);
    assert_eq!(r.eng.luns().by_dev(1).unwrap().address, TAPE);
    assert!(matches!(
        r.lun_events[..],
        [LunEvent::Added(_), LunEvent::Added(_)]
    ));
    let limits = r.eng.limits();
    assert_eq!(limits.max_segments, 128);
    assert!(limits.indirect);
    assert_eq!(limits.max_transfer, 127 * 4096);
    assert_eq!(limits.queue_depth, 7);
    // The published nodes.
    let fe = r.be.frontend_dir().to_string();
    let ring_ref = r.xen.dom0().xs_read(&format!("{fe}/ring-ref")).unwrap();
    assert_eq!(
        String::from_utf8(ring_ref).unwrap(),
        r.eng.ring_ref().unwrap().to_string()
    );
}

#[test]
fn disk_io_with_byte_granular_and_indirect_segments() {
    let mut r = Rig::new(128);
    // INQUIRY with a 255-byte buffer: 36 bytes come back, the residual says so exactly.
    let segs = r.segments(0, 255, 4096);
    let c = r.command(
        1,
        DISK,
        &[0x12, 0, 0, 0, 255, 0],
        DataDirection::FromDevice,
        &segs,
    );
    assert_eq!(
        (c.outcome, c.scsi_status, c.host),
        (Outcome::Answered, 0, HostStatus::Ok)
    );
    assert_eq!((c.residual, c.transferred()), (219, 36));
    let inq = r.gather(&segs);
    assert_eq!(&inq[8..16], b"XENSIM  ");
    assert_eq!(inq[0], 0);

    // A 2-block write from segments cut every 100 bytes at an odd start: 11 segments.
    let payload: Vec<u8> = (0..1024u32).map(|i| (i * 7 + 3) as u8).collect();
    let segs = r.segments(4096 + 33, 1024, 100);
    assert_eq!(segs.len(), 11);
    r.fill(&segs, &payload);
    let c = r.command(2, DISK, &write10(10, 2), DataDirection::ToDevice, &segs);
    assert_eq!((c.scsi_status, c.residual), (0, 0));
    let Some(Emulated::Disk(d)) = r.be.device(0) else {
        panic!()
    };
    assert_eq!(&d.image()[10 * 512..12 * 512], &payload[..]);
    // Data went byte-granular: the model saw the same offsets and lengths.
    let seen = r.be.log.last().unwrap();
    assert_eq!(seen.segments.len(), 11);
    assert_eq!((seen.segments[0].1, seen.segments[0].2), (33, 100));
    assert!(!seen.indirect);

    // Read it back into 3-byte-aligned pieces of 700 bytes.
    let segs = r.segments(3 * 4096 + 3, 1024, 700);
    let c = r.command(3, DISK, &read10(10, 2), DataDirection::FromDevice, &segs);
    assert_eq!(c.residual, 0);
    assert_eq!(r.gather(&segs), payload);

    // 256 KiB in 64 page segments: an indirect request.
    let big: Vec<u8> = (0..256 * 1024u32).map(|i| (i % 249) as u8 ^ 0x5a).collect();
    let segs = r.segments(8 * 4096, big.len(), 4096);
    assert_eq!(segs.len(), 64);
    r.fill(&segs, &big);
    let c = r.command(4, DISK, &write10(100, 512), DataDirection::ToDevice, &segs);
    assert_eq!((c.scsi_status, c.residual), (0, 0));
    assert!(r.be.log.last().unwrap().indirect);
    assert_eq!(r.eng.counters().indirect, 1);
    let segs2 = r.segments(80 * 4096 + 1, big.len(), 4096);
    assert_eq!(segs2.len(), 65);
    let c = r.command(
        5,
        DISK,
        &read10(100, 512),
        DataDirection::FromDevice,
        &segs2,
    );
    assert_eq!(c.residual, 0);
    assert_eq!(r.gather(&segs2), big);

    // Out of range: CHECK CONDITION with the device's sense, nothing transferred.
    let segs = r.segments(0, 512, 4096);
    let c = r.command(6, DISK, &read10(4096, 1), DataDirection::FromDevice, &segs);
    assert_eq!((c.scsi_status, c.residual), (2, 512));
    let s = c.sense.decode().unwrap();
    assert_eq!((s.key, s.asc), (5, 0x21));
    assert_eq!(c.sense.as_bytes().len(), 18);

    // Every grant is back (the ring's stays).
    r.grants.retry_deferred(u32::MAX);
    assert_eq!(r.grants.free_count() + 1, r.free_grants_at_start);
}

#[test]
fn requests_are_checked_before_anything_is_granted() {
    let mut r = Rig::new(0);
    let free = r.grants.free_count();
    let seen = r.be.log.len();
    let segs = r.segments(0, 512, 4096);
    let long_cdb = [0u8; 17];
    assert_eq!(
        r.submit(1, DISK, &long_cdb, DataDirection::FromDevice, &segs, 0),
        Err(SubmitError::BadCdb { len: 17 })
    );
    assert_eq!(
        r.submit(1, DISK, &[], DataDirection::FromDevice, &segs, 0),
        Err(SubmitError::BadCdb { len: 0 })
    );
    assert_eq!(
        r.submit(1, DISK, &read10(0, 1), DataDirection::None, &segs, 0),
        Err(SubmitError::BadSegments)
    );
    let mut bad = segs.clone();
    bad[0].offset = 4000;
    assert_eq!(
        r.submit(1, DISK, &read10(0, 1), DataDirection::FromDevice, &bad, 0),
        Err(SubmitError::BadSegments)
    );
    let nowhere = Address {
        bus: 0,
        target: 9,
        lun: 0,
    };
    assert_eq!(
        r.submit(
            1,
            nowhere,
            &read10(0, 1),
            DataDirection::FromDevice,
            &segs,
            0
        ),
        Err(SubmitError::NoSuchLun)
    );
    // Without feature-sg-grant a request carries 26 segments: 27 are refused, not split.
    assert_eq!(r.eng.limits().max_segments, 26);
    assert_eq!(r.eng.limits().max_transfer, 25 * 4096);
    let segs = r.segments(0, 27 * 4096, 4096);
    assert_eq!(
        r.submit(
            1,
            DISK,
            &read10(0, 216),
            DataDirection::FromDevice,
            &segs,
            0
        ),
        Err(SubmitError::TooLarge {
            segments: 27,
            max: 26
        })
    );
    assert_eq!(r.grants.free_count(), free);
    assert_eq!(r.be.log.len(), seen);
}

#[test]
fn lun_hotplug_add_remove_and_readd() {
    let mut r = Rig::new(128);
    let third = Address {
        bus: 0,
        target: 3,
        lun: 0,
    };
    r.lun_events.clear();
    // Add: Reconfiguring -> the frontend follows -> LUN 3 -> Reconfigured -> added, 4.
    r.be.add_lun(2, "0:0:3:0", Emulated::Disk(Disk::new(64)))
        .unwrap();
    r.settle();
    assert_eq!(r.hs.state(), XenbusState::Connected);
    assert!(matches!(r.lun_events[..], [LunEvent::Added(l)] if l.address == third));
    assert_eq!(r.be.frontend_dev_state(2), 4);
    assert_eq!(r.be.lun_state(2), 4);
    let segs = r.segments(0, 512, 4096);
    let c = r.command(1, third, &read10(0, 1), DataDirection::FromDevice, &segs);
    assert_eq!((c.scsi_status, c.residual), (0, 0));

    // Remove: the LUN goes Closing; the frontend drops it and writes Closed.
    r.lun_events.clear();
    r.be.remove_lun(2).unwrap();
    r.settle();
    assert!(matches!(r.lun_events[..], [LunEvent::Removed(l)] if l.address == third));
    assert_eq!(r.be.frontend_dev_state(2), 6);
    assert_eq!(r.be.lun_state(2), 0, "the toolstack removed the directory");
    assert_eq!(
        r.submit(2, third, &read10(0, 1), DataDirection::FromDevice, &segs, 0),
        Err(SubmitError::NoSuchLun)
    );
    // The others carry on.
    let c = r.command(3, DISK, &read10(0, 1), DataDirection::FromDevice, &segs);
    assert_eq!(c.scsi_status, 0);

    // Re-add the same dev-N and address.
    r.lun_events.clear();
    r.be.add_lun(2, "0:0:3:0", Emulated::Disk(Disk::new(64)))
        .unwrap();
    r.settle();
    assert!(matches!(r.lun_events[..], [LunEvent::Added(l)] if l.address == third));
    let c = r.command(4, third, &read10(0, 1), DataDirection::FromDevice, &segs);
    assert_eq!((c.scsi_status, c.residual), (0, 0));
    assert_eq!(r.hs.state(), XenbusState::Connected);
    assert_eq!(r.handshake_errors, 0);
}

#[test]
fn malformed_and_unmappable_luns_are_refused_alone() {
    let mut r = Rig::new(0);
    r.lun_events.clear();
    r.be.add_lun(5, "0:0:7:0", Emulated::Disk(Disk::new(8)))
        .unwrap();
    r.be.write_raw_vdev(5, "naa.6001405:0").unwrap();
    r.be.add_lun(6, "0:0:300:0", Emulated::Disk(Disk::new(8)))
        .unwrap();
    r.be.add_lun(7, "9:0:1:0", Emulated::Disk(Disk::new(8)))
        .unwrap();
    r.settle();
    let refused: Vec<_> = r
        .lun_events
        .iter()
        .filter_map(|e| match e {
            LunEvent::Refused { dev, reason } => Some((*dev, *reason)),
            _ => None,
        })
        .collect();
    assert_eq!(refused.len(), 3, "{:?}", r.lun_events);
    assert!(refused
        .iter()
        .any(|&(d, why)| d == 5 && matches!(why, LunRefusal::BadVdev(Some(_)))));
    assert!(refused
        .iter()
        .any(|&(d, why)| d == 6 && matches!(why, LunRefusal::Unmappable(_))));
    // Another host number with the disk's channel:target:lun collides on the adapter.
    assert!(refused
        .iter()
        .any(|&(d, why)| d == 7 && why == LunRefusal::Duplicate(DISK)));
    for dev in [5, 6, 7] {
        assert_eq!(r.be.frontend_dev_state(dev), 6);
    }
    assert_eq!(r.eng.luns().len(), 2);
    assert_eq!(r.hs.state(), XenbusState::Connected);
}

#[test]
fn reconnect_renegotiates_smaller_limits_and_confirms_the_luns() {
    let mut r = Rig::new(128);
    assert_eq!(r.eng.limits().max_segments, 128);
    // A command in flight when the backend restarts completes as disconnected, once.
    r.be.faults.hold = true;
    let segs = r.segments(0, 4096, 4096);
    r.submit(1, DISK, &read10(0, 8), DataDirection::FromDevice, &segs, 0)
        .unwrap();
    r.serve();
    assert_eq!(r.be.held(), 1);
    r.be.faults.hold = false;
    r.be.set_sg_grant(0);
    r.be.restart().unwrap();
    r.lun_events.clear();
    r.settle();
    assert_eq!(r.hs.state(), XenbusState::Connected);
    assert_eq!(r.eng.state(), EngineState::Running);
    let c = r.take(1);
    assert_eq!(c.outcome, Outcome::Disconnected);
    assert_eq!(c.residual, 4096);
    assert_eq!(r.eng.limits().max_segments, 26);
    assert!(!r.eng.limits().indirect);
    assert!(r
        .lun_events
        .iter()
        .all(|e| matches!(e, LunEvent::Confirmed(_))));
    assert_eq!(r.lun_events.len(), 2);
    // A transfer that fit before is refused now.
    let segs = r.segments(0, 64 * 4096, 4096);
    assert!(matches!(
        r.submit(
            2,
            DISK,
            &read10(0, 512),
            DataDirection::FromDevice,
            &segs,
            0
        ),
        Err(SubmitError::TooLarge { .. })
    ));
    let segs = r.segments(0, 512, 4096);
    let c = r.command(3, DISK, &read10(0, 1), DataDirection::FromDevice, &segs);
    assert_eq!(c.scsi_status, 0);
    assert!(r.done.is_empty());
    // The old ring's and the command's grants were all revoked.
    r.grants.retry_deferred(u32::MAX);
    assert_eq!(r.grants.free_count() + 1, r.free_grants_at_start);
    let _ = Backend::Gone;
}
