//! The network core against a hostile netback: every bad response is dropped and counted while
//! good traffic around it flows, a backend that keeps misbehaving fails the queue, a poisoned
//! ring fails it at once, and a grant the backend keeps mapped keeps its memory from the shell.

mod net_support;

use net_support::*;
use xen_sim::netback::{NetFeatures, RxFault, RxMeta, TxFault};
use xennet_core::{
    FrontendConfig, NetConfig, QueueError, QueueState, SubmitError, TxOffload, TxStatus,
};

fn good(len: usize, seed: u8) -> Vec<u8> {
    frame(false, true, len, seed, false)
}

#[test]
fn every_bad_receive_response_is_dropped_and_counted() {
    let faults = [
        RxFault::WrongId,
        RxFault::OutOfPage,
        RxFault::Flags(0x10),
        RxFault::Flags(0x40),
        RxFault::Status(-7),
        RxFault::ExtraType(2),
        RxFault::ExtraType(9),
        RxFault::GsoSizeZero,
        RxFault::GsoWrongType,
        RxFault::EndlessChain,
    ];
    for fault in faults {
        let mut h = Harness::new(NetFeatures::default(), FrontendConfig::default());
        let big = good(9000, 2);
        let meta = RxMeta {
            gso: Some((1, 1448)),
            hash: Some((1, 7)),
            ..RxMeta::default()
        };
        h.back.inject(0, &good(200, 1), RxMeta::default()).unwrap();
        let bad = RxMeta {
            fault: Some(fault),
            ..meta
        };
        h.back.inject(0, &big, bad).unwrap();
        h.back.inject(0, &good(300, 3), RxMeta::default()).unwrap();
        h.back.inject(0, &big, meta).unwrap();
        h.run();
        let got: Vec<Vec<u8>> = h.received.iter().map(|r| r.data.clone()).collect();
        // A chain that never ends swallows the next frame's slot, as it must: the frontend
        // cannot tell where that frame starts.
        let expect = if fault == RxFault::EndlessChain {
            vec![good(200, 1), big.clone()]
        } else {
            vec![good(200, 1), good(300, 3), big.clone()]
        };
        assert_eq!(got, expect, "{fault:?}");
        let q = h.front.queue(0).unwrap();
        let c = q.counters();
        assert!(c.bad_responses >= 1, "{fault:?}");
        assert_eq!(c.rx.errors, 1, "{fault:?}");
        assert_eq!(q.state(), QueueState::Running, "{fault:?}");
        // No buffer lost.
        assert_eq!(q.rx_posted(), RXB, "{fault:?}");
        h.disconnect();
        assert_eq!(h.grants_in_use(), 0, "{fault:?}");
    }
}

#[test]
fn an_error_status_from_the_backend_is_an_error_not_a_violation() {
    let mut h = Harness::new(NetFeatures::default(), FrontendConfig::default());
    let bad = RxMeta {
        fault: Some(RxFault::Status(-1)),
        ..RxMeta::default()
    };
    h.back.inject(1, &good(500, 1), bad).unwrap();
    h.back.faults.tx.push_back(TxFault::Status(-2));
    let c = h.send(1, 1, &good(100, 1), TxOffload::default());
    assert_eq!(c.status, TxStatus::Dropped);
    let c = h.front.queue(1).unwrap().counters();
    assert_eq!((c.rx.errors, c.tx.discards, c.bad_responses), (1, 1, 0));
}

#[test]
fn bad_transmit_responses() {
    let mut h = Harness::new(NetFeatures::default(), FrontendConfig::default());
    // An impossible status: counted, the packet fails.
    h.back.faults.tx.push_back(TxFault::Status(9));
    assert_eq!(
        h.send(0, 1, &good(100, 1), TxOffload::default()).status,
        TxStatus::Error
    );
    // An unknown id: counted; the packet stays the core's until the connection goes.
    h.back.faults.tx.push_back(TxFault::UnknownId);
    let frags = h.lay_out(&good(100, 2), &[]);
    h.submit(0, 2, &frags, TxOffload::default()).unwrap();
    h.run();
    assert!(h.done.is_empty());
    // Good traffic still flows.
    assert_eq!(
        h.send(0, 3, &good(100, 3), TxOffload::default()).status,
        TxStatus::Ok
    );
    let c = h.front.queue(0).unwrap().counters();
    assert_eq!(c.bad_responses, 2);
    let done = h.disconnect();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].status, TxStatus::Aborted);
    assert_eq!(h.grants_in_use(), 0);
}

#[test]
fn a_backend_that_keeps_misbehaving_fails_the_queue() {
    let net = NetConfig {
        max_violations: 4,
        ..NetConfig::default()
    };
    let mut h = Harness::with_config(NetFeatures::default(), FrontendConfig::default(), net);
    for i in 0..6 {
        let bad = RxMeta {
            fault: Some(RxFault::WrongId),
            ..RxMeta::default()
        };
        h.back.inject(2, &good(100, i), bad).unwrap();
    }
    h.run();
    let q = h.front.queue(2).unwrap();
    assert!(matches!(
        q.state(),
        QueueState::Failed(QueueError::RxWrongId { .. })
    ));
    assert_eq!(q.counters().bad_responses, 5);
    let frags = h.lay_out(&good(100, 1), &[]);
    assert_eq!(
        h.submit(2, 1, &frags, TxOffload::default()),
        Err(SubmitError::NotRunning)
    );
    // The other queues are untouched.
    assert_eq!(
        h.send(1, 2, &good(100, 1), TxOffload::default()).status,
        TxStatus::Ok
    );
    h.disconnect();
    assert_eq!(h.grants_in_use(), 0);
}

#[test]
fn a_poisoned_ring_fails_the_queue_at_once() {
    let mut h = Harness::new(NetFeatures::default(), FrontendConfig::default());
    // Queue 3's receive ring: rsp_prod far beyond anything requested.
    let (_, rx_frame) = h.rings[7];
    h.back.disconnect();
    h.xen
        .write_guest(rx_frame, 8, &0x4000_0000u32.to_le_bytes())
        .unwrap();
    h.ring_from_sim();
    h.poll();
    let q = h.front.queue(3).unwrap();
    assert!(matches!(q.state(), QueueState::Failed(QueueError::Ring(_))));
    let mut io_done = Vec::new();
    let mut io = xennet_core::Io::new(&mut h.grants, &mut h.ev, &mut h.mem);
    h.front.disconnect(&mut io, |c| io_done.push(c));
    assert_eq!(h.grants_in_use(), 0);
}

#[test]
fn a_grant_kept_mapped_keeps_the_packet_from_the_shell() {
    let mut h = Harness::new(NetFeatures::default(), FrontendConfig::default());
    h.back.faults.hold_tx = true;
    let frags = h.lay_out(&good(100, 1), &[]);
    h.submit(0, 1, &frags, TxOffload::default()).unwrap();
    h.serve();
    // The request's grant, read from queue 0's transmit ring (slot 0: gref at offset 64).
    let (_, tx_frame) = h.rings[0];
    let mut b = [0u8; 4];
    h.xen.read_guest(tx_frame, 64, &mut b).unwrap();
    let dom0 = h.xen.dom0();
    let mapping = dom0.map_grant(u32::from_le_bytes(b), false).unwrap();
    h.back.faults.hold_tx = false;
    h.release_held();
    h.run();
    assert!(h.done.is_empty(), "completed while the backend maps it");
    let q = h.front.queue(0).unwrap();
    assert_eq!(q.counters().still_mapped, 1);
    assert_eq!(q.counters().bad_responses, 1);
    assert_eq!(q.tx_outstanding(), 1);
    // Disconnecting does not hand it back either.
    assert!(h.disconnect().is_empty());
    assert_eq!(h.front.queue(0).unwrap().tx_outstanding(), 1);
    dom0.unmap_grant(mapping).unwrap();
}

mod property {
    use super::*;
    use proptest::prelude::*;

    fn fault(i: u8) -> Option<RxFault> {
        [
            None,
            None,
            None,
            Some(RxFault::WrongId),
            Some(RxFault::OutOfPage),
            Some(RxFault::Flags(0x20)),
            Some(RxFault::Status(-9)),
            Some(RxFault::ExtraType(3)),
            Some(RxFault::GsoSizeZero),
            Some(RxFault::GsoWrongType),
        ][usize::from(i) % 10]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Frames of any size with and without GSO, some of them answered with a bad response,
        /// over any queue: every good frame arrives intact and in order per queue, every bad one
        /// is dropped and counted, no buffer or grant is lost.
        #[test]
        fn no_good_frame_is_lost(frames in prop::collection::vec(
            (60usize..20000, any::<u8>(), 0usize..4, any::<bool>()), 1..40))
        {
            // Every bad response is tolerated here (the budget has its own test).
            let net = NetConfig {
                max_violations: u32::MAX,
                ..NetConfig::default()
            };
            let mut h = Harness::with_config(NetFeatures::default(), FrontendConfig::default(), net);
            let mut expect: Vec<Vec<Vec<u8>>> = vec![Vec::new(); 4];
            let mut bad = [0u64; 4];
            for (i, &(len, f, q, v6)) in frames.iter().enumerate() {
                let data = frame(v6, true, len, i as u8, false);
                let gso = (len > 1514).then_some((if v6 { 2 } else { 1 }, 1400));
                let fault = fault(f);
                // A wrong GSO type or size needs a GSO slot to spoil.
                let fault = if gso.is_none()
                    && matches!(fault, Some(RxFault::GsoSizeZero | RxFault::GsoWrongType | RxFault::ExtraType(_)))
                {
                    None
                } else {
                    fault
                };
                h.back.inject(q, &data, RxMeta { gso, fault, ..RxMeta::default() }).unwrap();
                if fault.is_some() {
                    bad[q] += 1;
                } else {
                    expect[q].push(data);
                }
                if i % 7 == 6 {
                    h.run();
                }
            }
            h.run();
            for q in 0..4 {
                let got: Vec<Vec<u8>> = h
                    .received
                    .iter()
                    .filter(|r| usize::from(r.queue) == q)
                    .map(|r| r.data.clone())
                    .collect();
                prop_assert_eq!(&got, &expect[q]);
                let queue = h.front.queue(q).unwrap();
                prop_assert_eq!(queue.counters().rx.errors, bad[q]);
                prop_assert_eq!(queue.rx_posted(), RXB);
            }
            h.disconnect();
            prop_assert_eq!(h.grants_in_use(), 0);
        }
    }
}
