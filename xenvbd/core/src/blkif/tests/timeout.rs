//! Deadlines, abort, reset, quiesce, and work that waits for grants woken by the timer.

use super::*;

impl<const P: usize> Harness<P> {
    fn abort(&mut self, tag: u64) -> bool {
        let mut io = Io::new(&mut self.grants, &mut self.ev, &mut self.mem);
        let done = &mut self.done;
        self.eng.abort(Tag(tag), &mut io, |c| done.push(c))
    }

    fn reset(&mut self) -> usize {
        let mut io = Io::new(&mut self.grants, &mut self.ev, &mut self.mem);
        let done = &mut self.done;
        self.eng.reset(&mut io, |c| done.push(c))
    }

    fn statuses(&self) -> Vec<(u64, BlockStatus)> {
        self.done.iter().map(|c| (c.tag.0, c.status)).collect()
    }
}

fn read(sector: u64, segs: &[Segment]) -> BlockOp {
    BlockOp::Read {
        sector,
        sectors: segs.len() as u64 * 8,
    }
}

#[test]
fn a_timed_out_operation_is_reported_and_the_shell_aborts_it() {
    let mut h = Harness::<8>::new(features(0, false), config(0), Layout::X86_64);
    h.timer(1000);
    let segs = pages(2, 0x100);
    h.submit(1, read(0, &segs), &segs).unwrap();
    h.be.take(&h.grants, &h.mem);
    let deadline = Timeouts::default().request;
    let report = h.timer(1000 + deadline - 1);
    assert!(!report.needs_decision());
    let report = h.timer(1000 + deadline);
    assert_eq!(
        (report.timed_out, report.first_timed_out),
        (1, Some(Tag(1)))
    );
    assert!(report.needs_decision());
    // The engine decided nothing.
    assert!(h.done.is_empty());
    assert_eq!(h.eng.state(), EngineState::Running);
    assert!(h.abort(1));
    assert!(!h.abort(1), "an operation is aborted once");
    assert_eq!(h.statuses(), [(1, BlockStatus::Aborted)]);
    assert_eq!(
        granted_data_frames(&h.grants),
        0,
        "the buffer's grants ended with the abort"
    );
    // The backend answers late: the answer frees the slot and completes nothing.
    h.be.answer(&h.grants, &mut h.mem);
    h.poll().unwrap();
    assert_eq!(h.done.len(), 1);
    assert_eq!(h.eng.in_flight(), 0);
    assert_eq!(h.eng.counters().aborted, 1);
    // The device goes on.
    write_then_read(&mut h, 0, &pages(1, 0x200), &pages(1, 0x300));
}

fn granted_data_frames(grants: &TestGrants) -> usize {
    grants
        .active
        .values()
        .filter(|(f, _)| (0x100..0x1000).contains(f))
        .count()
}

#[test]
fn an_aborted_operation_completes_only_when_its_pages_are_unmapped() {
    let mut h = Harness::<8>::new(features(0, false), config(0), Layout::X86_64);
    let segs = pages(1, 0x100);
    h.submit(1, read(0, &segs), &segs).unwrap();
    h.be.take(&h.grants, &h.mem);
    // The backend is in the middle of the read: it maps the page.
    h.grants.mapped.insert(h.be.pending[0].segs[0].gref);
    assert!(h.abort(1));
    assert!(h.done.is_empty());
    assert_eq!(h.eng.holdings().operations, 1);
    h.timer(5);
    assert!(h.done.is_empty());
    h.grants.mapped.clear();
    h.timer(6);
    assert_eq!(h.statuses(), [(1, BlockStatus::Aborted)]);
    h.be.answer(&h.grants, &mut h.mem);
    h.poll().unwrap();
    assert_eq!(h.done.len(), 1);
    assert_eq!(h.eng.in_flight(), 0);
}

#[test]
fn aborting_a_queued_flush_lets_later_work_go() {
    let mut h = Harness::<8>::new(features(0, false), config(0), Layout::X86_64);
    let w = pages(1, 0x100);
    h.submit(
        1,
        BlockOp::Write {
            sector: 0,
            sectors: 8,
            fua: false,
        },
        &w,
    )
    .unwrap();
    h.submit(2, BlockOp::Flush, &[]).unwrap();
    let r = pages(1, 0x200);
    h.submit(3, read(8, &r), &r).unwrap();
    assert_eq!(h.eng.in_flight(), 1, "the flush holds the read back");
    assert!(h.abort(2));
    assert_eq!(h.eng.in_flight(), 2);
    h.run();
    assert_eq!(
        h.statuses(),
        [
            (2, BlockStatus::Aborted),
            (1, BlockStatus::Ok),
            (3, BlockStatus::Ok)
        ]
    );
}

#[test]
fn reset_completes_everything_once_with_its_own_status() {
    let mut h = Harness::<8>::new(features(0, false), config(0), Layout::X86_64);
    let a = pages(1, 0x100);
    h.submit(1, read(0, &a), &a).unwrap();
    h.run();
    let b = pages(2, 0x200);
    h.submit(2, read(0, &b), &b).unwrap();
    h.submit(3, BlockOp::Flush, &[]).unwrap();
    let c = pages(1, 0x300);
    h.submit(4, read(0, &c), &c).unwrap();
    h.be.take(&h.grants, &h.mem);
    h.grants.mapped.insert(h.be.pending[0].segs[1].gref);
    assert_eq!(h.reset(), 3);
    assert_eq!(h.reset(), 0);
    // Operation 2's second page is still mapped: its completion waits.
    assert_eq!(
        h.statuses(),
        [
            (1, BlockStatus::Ok),
            (3, BlockStatus::Reset),
            (4, BlockStatus::Reset)
        ]
    );
    h.grants.mapped.clear();
    h.timer(1);
    h.be.answer(&h.grants, &mut h.mem);
    h.poll().unwrap();
    assert_eq!(h.statuses()[3], (2, BlockStatus::Reset));
    assert_eq!(h.done.len(), 4);
    assert_eq!(h.eng.in_flight(), 0);
    assert_eq!(h.eng.counters().aborted, 3);
    write_then_read(&mut h, 0, &pages(1, 0x400), &pages(1, 0x500));
}

#[test]
fn quiesce_stops_issuing_until_the_next_ring() {
    let mut h = Harness::<8>::new(features(0, false), config(0), Layout::X86_64);
    let a = pages(1, 0x100);
    h.submit(1, read(0, &a), &a).unwrap();
    h.eng.quiesce();
    assert!(!h.eng.quiesced());
    let b = pages(1, 0x200);
    h.submit(2, read(8, &b), &b).unwrap();
    h.timer(1);
    assert_eq!(h.eng.in_flight(), 1, "nothing new goes out");
    h.be.serve(&h.grants, &mut h.mem);
    h.poll().unwrap();
    assert!(h.eng.quiesced());
    assert_eq!(h.statuses(), [(1, BlockStatus::Ok)]);
    // The backend closes and comes back: the queued read goes out on the new ring.
    let mut io = Io::new(&mut h.grants, &mut h.ev, &mut h.mem);
    h.eng.disconnect(&mut io);
    let mem = RingMemory::allocate(0).unwrap();
    h.be = Model::new(mem.clone(), Layout::X86_64);
    h.connect(mem, features(0, false), config(0));
    h.run();
    assert_eq!(h.statuses(), [(1, BlockStatus::Ok), (2, BlockStatus::Ok)]);
}

#[test]
fn work_waiting_for_grants_is_issued_by_the_timer() {
    let mut h = Harness::<8>::new(features(0, false), config(0), Layout::X86_64);
    h.grants.limit = Some(1); // the ring only
    let segs = pages(2, 0x100);
    h.submit(1, read(0, &segs), &segs).unwrap();
    assert_eq!(h.eng.in_flight(), 0);
    assert_eq!(h.eng.outstanding(), 1);
    // Grants come free elsewhere (another device ended some); nothing else happens here but
    // the timer.
    h.grants.limit = None;
    h.timer(1);
    assert_eq!(h.eng.in_flight(), 1);
    h.run();
    assert_eq!(h.statuses(), [(1, BlockStatus::Ok)]);
}

#[test]
fn an_aborted_or_reset_command_reports_task_aborted() {
    use crate::scsi::BlockOutcome;
    let op = BlockOp::Read {
        sector: 0,
        sectors: 8,
    };
    for status in [BlockStatus::Aborted, BlockStatus::Reset] {
        let c = BlockCompletion {
            tag: Tag(1),
            status,
            transferred: 0,
        };
        assert!(matches!(
            BlockOutcome::from_blkif(&op, &c),
            BlockOutcome::Failed {
                error: crate::scsi::BlockError::Aborted,
                ..
            }
        ));
    }
}
