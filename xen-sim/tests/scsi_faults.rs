//! Task management, timeouts, deferred revocation and a hostile backend: every request is
//! completed exactly once, never while its pages are mapped, and a bad backend ends in an error
//! state, not a panic or a hang.

mod scsi_support;

use scsi_support::{Rig, DISK, TAPE};
use xen_abi::xenbus::XenbusState;
use xenscsi_core::engine::{EngineError, TmError};
use xenscsi_core::sense::KEY_UNIT_ATTENTION;
use xenscsi_core::{DataDirection, EngineState, HostStatus, LogEvent, Outcome, SubmitError, Tag};

const MINUTE: u64 = 60_000;

fn read10(lba: u32, blocks: u16) -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = 0x28;
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[7..9].copy_from_slice(&blocks.to_be_bytes());
    c
}

const SPACE_EOD: [u8; 6] = [0x11, 3, 0, 0, 0, 0];
const REWIND: [u8; 6] = [0x01, 0, 0, 0, 0, 0];

#[test]
fn a_long_tape_command_is_aborted_only_after_its_own_timeout() {
    let mut r = Rig::new(128);
    r.be.faults.hold_opcode = Some(0x11);
    r.submit(1, TAPE, &SPACE_EOD, DataDirection::None, &[], 5 * MINUTE)
        .unwrap();
    r.serve();
    assert_eq!(r.be.held(), 1);
    // Four minutes: still running, nothing sent.
    r.tick(4 * MINUTE);
    r.serve();
    r.poll().unwrap();
    assert_eq!(r.eng.counters().aborts, 0);
    assert!(r.done.is_empty());
    // Past five minutes: an abort; scsiback answers the command (ABORT) and then the abort.
    r.tick(5 * MINUTE + 1);
    assert_eq!(r.eng.counters().timeouts, 1);
    assert!(matches!(r.ev.log[..], [LogEvent::TimedOut { .. }]));
    r.serve();
    let seen = r.be.log.last().unwrap();
    assert_eq!(seen.act, 2);
    assert_eq!(seen.ref_rqid, r.be.log[r.be.log.len() - 2].rqid);
    assert_eq!(seen.address, (0, 2, 0));
    r.poll().unwrap();
    let c = r.take(1);
    assert_eq!(
        (c.outcome, c.host, c.timed_out),
        (Outcome::Answered, HostStatus::Aborted, true)
    );
    assert!(
        r.tm.is_empty(),
        "an internal abort reports nothing of its own"
    );
    assert_eq!(r.eng.in_flight(), 0);
    // The request carried its timeout in seconds.
    assert_eq!(r.be.log[r.be.log.len() - 2].timeout, 300);
    // The drive works on.
    let c = r.command(2, TAPE, &REWIND, DataDirection::None, &[]);
    assert_eq!(c.scsi_status, 0);
}

#[test]
fn a_refused_abort_escalates_to_a_lun_reset() {
    let mut r = Rig::new(128);
    r.be.faults.hold = true;
    r.be.faults.fail_aborts = true;
    let segs = r.segments(0, 4096, 4096);
    r.submit(
        1,
        DISK,
        &read10(0, 8),
        DataDirection::FromDevice,
        &segs,
        1000,
    )
    .unwrap();
    r.serve();
    r.tick(1001);
    r.serve();
    r.poll().unwrap();
    assert!(r.done.is_empty());
    // The refusal makes the next tick reset the LUN; scsiback answers the command RESET.
    r.tick(1002);
    assert_eq!(r.eng.counters().resets, 1);
    r.serve();
    assert_eq!(r.be.log.last().unwrap().act, 3);
    r.poll().unwrap();
    let c = r.take(1);
    assert_eq!(
        (c.host, c.timed_out, c.residual),
        (HostStatus::Reset, true, 4096)
    );
    r.be.faults.hold = false;
    let c = r.command(2, DISK, &read10(0, 8), DataDirection::FromDevice, &segs);
    let s = c.sense.decode().unwrap();
    assert_eq!((s.key, s.asc), (KEY_UNIT_ATTENTION, 0x29));
    assert_eq!(r.eng.in_flight(), 0);
}

#[test]
fn unanswered_task_management_ends_in_the_error_state_and_a_reconnect() {
    let mut r = Rig::new(128);
    r.be.faults.hold = true;
    r.be.faults.ignore_task_management = true;
    let segs = r.segments(0, 512, 4096);
    r.submit(
        1,
        DISK,
        &read10(0, 1),
        DataDirection::FromDevice,
        &segs,
        1000,
    )
    .unwrap();
    r.serve();
    r.tick(1000);
    r.serve();
    // The abort's own timeout (10 s) passes: reset.
    r.tick(11_000);
    assert_eq!(r.eng.counters().resets, 1);
    r.serve();
    // The reset's (30 s) passes: the device is failed, nothing completed yet (the backend
    // still maps the buffer).
    r.tick(41_001);
    assert!(matches!(
        r.eng.state(),
        EngineState::Failed(EngineError::ResetFailed { address: DISK })
    ));
    assert!(r.done.is_empty());
    assert_eq!(
        r.submit(2, DISK, &read10(0, 1), DataDirection::FromDevice, &segs, 0),
        Err(SubmitError::Unavailable)
    );
    // The shell recovers: the backend restarts, the handshake reconnects.
    r.be.faults = Default::default();
    r.be.restart().unwrap();
    r.settle();
    assert_eq!(r.eng.state(), EngineState::Running);
    let c = r.take(1);
    assert_eq!((c.outcome, c.timed_out), (Outcome::Disconnected, true));
    let c = r.command(3, DISK, &read10(0, 1), DataDirection::FromDevice, &segs);
    assert_eq!(c.scsi_status, 0);
    assert!(r.done.is_empty());
}

#[test]
fn the_shells_abort_and_reset_with_commands_in_flight() {
    let mut r = Rig::new(128);
    r.be.faults.hold = true;
    let segs: Vec<_> = (0..3).map(|i| r.segments(i * 4096, 512, 4096)).collect();
    for (i, s) in segs.iter().enumerate() {
        r.submit(
            i as u64 + 1,
            DISK,
            &read10(i as u32, 1),
            DataDirection::FromDevice,
            s,
            0,
        )
        .unwrap();
    }
    r.submit(4, TAPE, &REWIND, DataDirection::None, &[], 0)
        .unwrap();
    r.serve();
    assert_eq!(r.be.held(), 4);
    assert_eq!(r.abort(10, 99), Err(TmError::NotOutstanding));
    r.abort(10, 2).unwrap();
    r.serve();
    r.poll().unwrap();
    assert_eq!(r.tm.len(), 1);
    assert_eq!((r.tm[0].tag, r.tm[0].success), (Tag(10), true));
    let c = r.take(2);
    assert_eq!(
        (c.host, c.residual, c.timed_out),
        (HostStatus::Aborted, 512, false)
    );
    // A LUN reset answers the disk's other two; the tape's command is untouched.
    r.reset(11, DISK).unwrap();
    r.serve();
    r.poll().unwrap();
    assert_eq!((r.tm[1].tag, r.tm[1].success), (Tag(11), true));
    assert_eq!(r.take(1).host, HostStatus::Reset);
    assert_eq!(r.take(3).host, HostStatus::Reset);
    assert!(r.done.is_empty());
    assert_eq!(r.be.held(), 1);
    r.release();
    r.poll().unwrap();
    assert_eq!(r.take(4).scsi_status, 0);
    assert_eq!(r.eng.in_flight(), 0);
}

#[test]
fn a_completion_waits_while_the_backend_still_maps_the_buffer() {
    let mut r = Rig::new(128);
    r.be.faults.hold = true;
    r.be.faults.keep_mappings = true;
    let segs = r.segments(100, 1024, 300);
    r.submit(1, DISK, &read10(3, 2), DataDirection::FromDevice, &segs, 0)
        .unwrap();
    r.serve();
    r.release();
    r.poll().unwrap();
    // Answered, but the pages are still mapped: no completion, the slot is held.
    assert!(r.done.is_empty());
    assert_eq!(r.eng.in_flight(), 1);
    assert!(r.eng.counters().still_mapped > 0);
    r.tick(10);
    assert!(r.done.is_empty());
    // Once unmapped, the next tick delivers it, once.
    r.be.unmap_leaked();
    r.tick(20);
    let c = r.take(1);
    assert_eq!((c.scsi_status, c.residual), (0, 0));
    let Some(xen_sim::scsiback::Emulated::Disk(d)) = r.be.device(0) else {
        panic!()
    };
    let want = d.image()[3 * 512..5 * 512].to_vec();
    assert_eq!(r.gather(&segs), want);
    r.tick(30);
    assert!(r.done.is_empty());
}

#[test]
fn a_reset_whose_commands_answer_late_completes_each_once() {
    let mut r = Rig::new(128);
    r.be.faults.hold = true;
    r.be.faults.silent_resets = true;
    let segs = r.segments(0, 512, 4096);
    r.submit(1, DISK, &read10(0, 1), DataDirection::FromDevice, &segs, 0)
        .unwrap();
    r.serve();
    r.reset(5, DISK).unwrap();
    r.serve();
    r.poll().unwrap();
    assert_eq!(r.tm.len(), 1);
    // The reset succeeded but the command is still held (and mapped): it waits.
    assert!(r.done.is_empty());
    // The late answer arrives; the mapping goes; the completion says Reset, once.
    r.release();
    r.poll().unwrap();
    r.tick(1);
    let c = r.take(1);
    assert_eq!(c.outcome, Outcome::Reset);
    assert_eq!(r.eng.abandoned(), 0);
    assert_eq!(r.eng.in_flight(), 0);
    // (The late answer itself was the unit attention the reset left; it was not delivered.)
    assert_eq!(r.be.log.len(), 2);
    r.be.faults = Default::default();
    let c = r.command(2, DISK, &read10(0, 1), DataDirection::FromDevice, &segs);
    assert_eq!((c.scsi_status, c.residual), (0, 0));
}

#[test]
fn a_hostile_backend_fails_the_device_and_finally_gives_up() {
    let mut r = Rig::new(128);
    let segs = r.segments(0, 512, 4096);
    // 1: a corrupted rqid.
    r.be.faults.corrupt_rqid_next = 1;
    r.submit(1, DISK, &read10(0, 1), DataDirection::FromDevice, &segs, 0)
        .unwrap();
    r.serve();
    assert!(matches!(r.poll(), Err(EngineError::UnknownRqid { .. })));
    assert!(r.done.is_empty(), "nothing completes on a bad response");
    r.be.restart().unwrap();
    r.settle();
    assert_eq!(r.take(1).outcome, Outcome::Disconnected);
    assert_eq!(r.eng.state(), EngineState::Running);
    // 2: sense longer than the buffer.
    r.be.faults.sense_len_next = Some(200);
    r.submit(2, DISK, &read10(0, 1), DataDirection::FromDevice, &segs, 0)
        .unwrap();
    r.serve();
    assert_eq!(
        r.poll(),
        Err(EngineError::SenseTooLong {
            rqid: r.be.log.last().unwrap().rqid,
            len: 200
        })
    );
    r.be.restart().unwrap();
    r.settle();
    assert_eq!(r.take(2).outcome, Outcome::Disconnected);
    // 3: a residual beyond the transfer, and a duplicate: the third violation is the last.
    r.be.faults.residual_next = Some(513);
    r.submit(3, DISK, &read10(0, 1), DataDirection::FromDevice, &segs, 0)
        .unwrap();
    r.serve();
    assert!(matches!(
        r.poll(),
        Err(EngineError::ResidualTooLarge {
            residual: 513,
            transfer: 512,
            ..
        })
    ));
    assert_eq!(r.eng.state(), EngineState::Dead);
    assert!(r.ev.log.contains(&LogEvent::GaveUp));
    r.be.restart().unwrap();
    r.settle();
    assert_eq!(r.take(3).outcome, Outcome::Disconnected);
    // Dead: the reconnect was refused (the frontend closes), submissions are refused.
    assert!(r.handshake_errors > 0);
    assert_eq!(r.eng.state(), EngineState::Dead);
    assert_ne!(r.hs.state(), XenbusState::Connected);
    assert_eq!(
        r.submit(4, DISK, &read10(0, 1), DataDirection::FromDevice, &segs, 0),
        Err(SubmitError::Unavailable)
    );
    assert!(r.done.is_empty());
    r.grants.retry_deferred(u32::MAX);
    assert_eq!(r.grants.free_count(), r.free_grants_at_start);
}

#[test]
fn duplicated_responses_are_violations() {
    let mut r = Rig::new(0);
    r.be.faults.duplicate_next = 1;
    let segs = r.segments(0, 512, 4096);
    r.submit(1, DISK, &read10(0, 1), DataDirection::FromDevice, &segs, 0)
        .unwrap();
    r.serve();
    // Two responses for one request: the ring itself refuses the producer index, before
    // either is read.
    assert!(matches!(r.poll(), Err(EngineError::Ring(_))));
    assert!(matches!(r.eng.state(), EngineState::Failed(_)));
    assert!(r.done.is_empty());
    r.disconnect();
    assert_eq!(r.take(1).outcome, Outcome::Disconnected);
    r.tick(1);
    assert!(r.done.is_empty());
}

#[test]
fn running_out_of_grants_refuses_the_command_and_returns_what_it_took() {
    let mut r = Rig::new(128);
    r.be.faults.hold = true;
    // 128 segments each: the one-frame grant table (512 entries) runs out on the fourth.
    let mut accepted = 0;
    let mut refused = None;
    for tag in 0..6u64 {
        let segs = r.segments(0, 128 * 4096, 4096);
        let free = r.grants.free_count();
        match r.submit(
            tag,
            DISK,
            &read10(0, 1024),
            DataDirection::FromDevice,
            &segs,
            0,
        ) {
            Ok(()) => accepted += 1,
            Err(e) => {
                assert_eq!(e, SubmitError::OutOfGrants);
                assert_eq!(r.grants.free_count(), free, "the partial grants were ended");
                refused = Some(tag);
                break;
            }
        }
    }
    assert_eq!((accepted, refused), (3, Some(3)));
    assert_eq!(r.eng.in_flight(), 3);
    r.serve();
    r.release();
    r.poll().unwrap();
    for tag in 0..3 {
        assert_eq!(r.take(tag).residual, 0);
    }
    r.be.faults.hold = false;
    let segs = r.segments(0, 128 * 4096, 4096);
    let c = r.command(3, DISK, &read10(0, 1024), DataDirection::FromDevice, &segs);
    assert_eq!((c.scsi_status, c.residual), (0, 0));
}
