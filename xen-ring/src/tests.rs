//! Unit tests. They run under Miri too (`cargo +nightly miri test -p xen-ring --lib`), which checks
//! the shared-memory layer for undefined behaviour and data races.

#![allow(unsafe_code)]

use std::vec::Vec;

use xen_abi::ring::{ring_slots, RingIdx, XEN_PAGE_SIZE};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::testing::{HostilePeer, MockBackend, MockFrontend};
use crate::{BackRing, FrontRing, RawBackRing, RawFrontRing, RingError, RingIndex, RingMemory};

/// A request shaped like blkif's x86_64 request: 112 bytes, 8-byte aligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Req {
    id: u64,
    payload: [u64; 13],
}

impl Req {
    fn new(id: u64) -> Self {
        let mut payload = [0; 13];
        for (i, word) in payload.iter_mut().enumerate() {
            *word = id.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(i as u32) ^ i as u64;
        }
        Self { id, payload }
    }

    fn checksum(&self) -> u64 {
        self.payload
            .iter()
            .fold(self.id, |acc, w| acc.rotate_left(5) ^ w)
    }
}

/// A response shaped like blkif's: 16 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Rsp {
    id: u64,
    checksum: u64,
}

fn answer(req: Req) -> Rsp {
    Rsp {
        id: req.id,
        checksum: req.checksum(),
    }
}

/// A 1008-byte entry: one page holds exactly 4 slots, the smallest rings worth testing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Wide {
    id: u64,
    fill: [u8; 1000],
}

impl Wide {
    fn new(id: u64) -> Self {
        Self {
            id,
            fill: [id as u8; 1000],
        }
    }
}

type Front = FrontRing<Req, Rsp>;
type Back = BackRing<Req, Rsp>;

fn pages(order: u32) -> RingMemory {
    RingMemory::allocate(order).expect("allocation")
}

fn blk_pair(order: u32, start: RingIdx) -> (Front, Back, HostilePeer) {
    let mem = pages(order);
    let front = Front::init_at(mem.clone(), start).unwrap();
    let back = Back::attach_at(mem.clone(), start).unwrap();
    (front, back, HostilePeer::new(mem, Front::ENTRY_SIZE))
}

fn wide_pair(start: RingIdx) -> (FrontRing<Wide, Wide>, BackRing<Wide, Wide>, HostilePeer) {
    let mem = pages(0);
    let front = FrontRing::init_at(mem.clone(), start).unwrap();
    let back = BackRing::attach_at(mem.clone(), start).unwrap();
    (
        front,
        back,
        HostilePeer::new(mem, FrontRing::<Wide, Wide>::ENTRY_SIZE),
    )
}

// ---------------------------------------------------------------------------------------------
// Geometry and initialisation.

#[test]
fn geometry_matches_xen_for_every_order() {
    assert_eq!(Front::ENTRY_SIZE, 112);
    for order in 0..=4 {
        let front = Front::init(pages(order)).unwrap();
        assert_eq!(front.slots(), 32 << order, "order {order}");
        assert_eq!(front.slots(), ring_slots(1 << order, 112));
        assert_eq!(front.memory().size_bytes(), XEN_PAGE_SIZE << order);
    }
    assert_eq!(FrontRing::<Wide, Wide>::init(pages(0)).unwrap().slots(), 4);
    // The entry is the padded union, as in C.
    assert_eq!(FrontRing::<[u8; 6], u32>::ENTRY_SIZE, 8);
    assert_eq!(FrontRing::<u8, u8>::init(pages(0)).unwrap().slots(), 2048);
}

#[test]
fn init_writes_shared_ring_init_header() {
    let mem = pages(1);
    let peer = HostilePeer::new(mem.clone(), 112);
    for which in [
        RingIndex::ReqProd,
        RingIndex::ReqEvent,
        RingIndex::RspProd,
        RingIndex::RspEvent,
    ] {
        peer.set(which, 0xdead_beef);
    }
    peer.write_raw(16, &[0xff; 48]).unwrap();
    let _front = Front::init(mem.clone()).unwrap();
    assert_eq!(peer.get(RingIndex::ReqProd), 0);
    assert_eq!(peer.get(RingIndex::RspProd), 0);
    assert_eq!(peer.get(RingIndex::ReqEvent), 1);
    assert_eq!(peer.get(RingIndex::RspEvent), 1);
    let mut header = [0xaa; 48];
    mem.read_bytes(16, &mut header).unwrap();
    assert_eq!(header, [0; 48]);
}

#[test]
fn attach_writes_nothing() {
    let mem = pages(0);
    let peer = HostilePeer::new(mem.clone(), 112);
    peer.set(RingIndex::ReqEvent, 77);
    peer.set(RingIndex::RspProd, 5);
    let _back = Back::attach(mem.clone()).unwrap();
    let _front = Front::attach_at(mem, 5).unwrap();
    assert_eq!(peer.get(RingIndex::ReqEvent), 77);
    assert_eq!(peer.get(RingIndex::RspProd), 5);
}

#[test]
fn construction_errors_are_misuse() {
    assert_eq!(
        FrontRing::<[u8; 4096], u8>::init(pages(0)).unwrap_err(),
        RingError::RingTooSmall {
            pages: 1,
            entry_size: 4096
        }
    );
    assert_eq!(
        FrontRing::<[u8; 4096], u8>::init(pages(1)).unwrap().slots(),
        1
    );
    assert!(RawFrontRing::init(pages(0), 0).is_err());
    assert!(RawBackRing::attach(pages(0), 5000).is_err());
    assert_eq!(
        RingMemory::allocate(RingMemory::MAX_ORDER + 1).unwrap_err(),
        RingError::InvalidMemory
    );

    let mem = pages(1);
    // SAFETY: null is rejected before anything is accessed.
    let null = unsafe { RingMemory::new(core::ptr::null_mut(), 0) };
    assert_eq!(null.unwrap_err(), RingError::InvalidMemory);
    // SAFETY: a misaligned pointer is rejected before anything is accessed.
    let misaligned = unsafe { RingMemory::new(mem.as_ptr().wrapping_add(64), 0) };
    assert_eq!(misaligned.unwrap_err(), RingError::InvalidMemory);
    // SAFETY: the order is rejected before anything is accessed.
    let too_big = unsafe { RingMemory::new(mem.as_ptr(), RingMemory::MAX_ORDER + 1) };
    assert_eq!(too_big.unwrap_err(), RingError::InvalidMemory);
    // SAFETY: the first page of `mem`'s two is valid while `mem` lives, which outlives `view`, and
    // is only accessed through ring memory handles.
    let view = unsafe { RingMemory::new(mem.as_ptr(), 0) }.unwrap();
    assert_eq!(view.pages(), 1);
    view.store_index(RingIndex::RspEvent, 9);
    assert_eq!(mem.load_index(RingIndex::RspEvent), 9);
}

#[test]
fn byte_access_is_bounds_checked_at_every_alignment() {
    let mem = pages(0);
    let data: Vec<u8> = (0..=255u8).cycle().take(300).collect();
    for offset in [64usize, 65, 66, 67, 68, 71, 4096 - 300] {
        for len in [0usize, 1, 2, 3, 5, 8, 9, 17, 300] {
            mem.write_bytes(offset, &data[..len]).unwrap();
            let mut back = [0u8; 300];
            mem.read_bytes(offset, &mut back[..len]).unwrap();
            assert_eq!(&back[..len], &data[..len], "offset {offset} len {len}");
        }
    }
    let mut buf = [0u8; 8];
    assert_eq!(
        mem.read_bytes(4090, &mut buf),
        Err(RingError::InvalidMemory)
    );
    assert_eq!(
        mem.write_bytes(usize::MAX, &buf),
        Err(RingError::InvalidMemory)
    );
    assert_eq!(mem.read_bytes(4096, &mut buf[..0]), Ok(()));
    assert_eq!(
        mem.read_bytes(4097, &mut buf[..0]),
        Err(RingError::InvalidMemory)
    );
}

// ---------------------------------------------------------------------------------------------
// Normal operation.

#[test]
fn round_trip_in_order() {
    let (mut front, mut back, _) = blk_pair(0, 0);
    for id in 0..3 {
        front.push_request(&Req::new(id)).unwrap();
    }
    assert_eq!(front.free_requests(), 29);
    assert!(
        front.push_requests_and_check_notify(),
        "req_event starts at 1"
    );
    assert_eq!(back.unconsumed_requests(), Ok(3));
    for id in 0..3 {
        let req = back.take_request().unwrap().unwrap();
        assert_eq!(req, Req::new(id));
        back.push_response(&answer(req)).unwrap();
    }
    assert_eq!(back.take_request(), Ok(None));
    assert!(
        back.push_responses_and_check_notify(),
        "rsp_event starts at 1"
    );
    let mut got = Vec::new();
    assert_eq!(front.drain_responses(|rsp| got.push(rsp)), Ok(3));
    assert_eq!(
        got,
        (0..3).map(|id| answer(Req::new(id))).collect::<Vec<_>>()
    );
    assert_eq!(front.free_requests(), 32);
    assert_eq!(front.take_response(), Ok(None));
}

#[test]
fn full_ring_is_misuse_not_poison() {
    let (mut front, mut back, _) = blk_pair(0, 0);
    let reqs: Vec<Req> = (0..40).map(Req::new).collect();
    assert_eq!(front.push_batch(&reqs), 32);
    assert!(front.is_full());
    assert_eq!(front.push_request(&reqs[0]), Err(RingError::Full));
    assert_eq!(front.push_batch(&reqs), 0);
    assert_eq!(front.error(), None);
    front.push_requests();
    // The backend cannot answer before it has taken a request.
    assert_eq!(back.push_response(&answer(reqs[0])), Err(RingError::Full));
    assert_eq!(back.push_batch(&[answer(reqs[0])]), 0);
    let req = back.take_request().unwrap().unwrap();
    assert_eq!(back.unanswered_requests(), 1);
    back.push_response(&answer(req)).unwrap();
    assert_eq!(back.push_response(&answer(req)), Err(RingError::Full));
    assert_eq!(back.error(), None);
    back.push_responses();
    assert_eq!(front.take_response(), Ok(Some(answer(reqs[0]))));
    assert_eq!(front.free_requests(), 1);
    assert!(!RingError::Full.is_peer_violation());
}

#[test]
fn wraps_around_u32_indices() {
    for start in [
        u32::MAX - 40,
        u32::MAX - 31,
        u32::MAX,
        u32::MAX / 2,
        0x7fff_fff0,
    ] {
        let (mut front, mut back, _) = blk_pair(0, start);
        let mut next = 0u64;
        let mut answered = 0u64;
        for round in 0..6 {
            let batch: Vec<Req> = (next..next + 29 + round).map(Req::new).collect();
            let pushed = front.push_batch(&batch);
            next += pushed as u64;
            front.push_requests();
            back.drain_requests(|req| {
                assert_eq!(req.checksum(), Req::new(req.id).checksum());
            })
            .unwrap();
            // Answer in bulk from copies, to exercise push_batch on the backend.
            let rsps: Vec<Rsp> = (answered..next).map(|id| answer(Req::new(id))).collect();
            assert_eq!(back.push_batch(&rsps), rsps.len());
            back.push_responses();
            front
                .drain_responses(|rsp| {
                    assert_eq!(rsp, answer(Req::new(answered)));
                    answered += 1;
                })
                .unwrap();
        }
        assert_eq!(answered, next);
        assert_eq!(front.req_prod_pvt(), start.wrapping_add(next as u32));
        assert_eq!(front.rsp_cons(), front.req_prod_pvt());
        assert_eq!(back.req_cons(), back.rsp_prod_pvt());
    }
}

#[test]
fn multi_page_rings_fill_every_slot() {
    for order in [1, 2, 4] {
        let (mut front, mut back, _) = blk_pair(order, u32::MAX - 100);
        let slots = front.slots() as u64;
        for lap in 0..2u64 {
            let reqs: Vec<Req> = (lap * slots..(lap + 1) * slots).map(Req::new).collect();
            assert_eq!(front.push_batch(&reqs), reqs.len());
            assert!(front.is_full());
            front.push_requests();
            let mut seen = 0;
            back.drain_requests(|req| {
                assert_eq!(req, reqs[seen]);
                seen += 1;
            })
            .unwrap();
            assert_eq!(seen as u64, slots);
            for req in &reqs {
                back.push_response(&answer(*req)).unwrap();
            }
            back.push_responses();
            let mut i = 0;
            front
                .drain_responses(|rsp| {
                    assert_eq!(rsp, answer(reqs[i]));
                    i += 1;
                })
                .unwrap();
            assert_eq!(i as u64, slots);
        }
    }
}

#[test]
fn raw_rings_interoperate_with_typed_rings() {
    // A raw frontend using the 108-byte x86_32 blkif layout against a raw backend, and a raw
    // frontend against a typed backend with the 112-byte layout.
    let mem = pages(0);
    let mut front = RawFrontRing::init(mem.clone(), 108).unwrap();
    let mut back = RawBackRing::attach(mem, 108).unwrap();
    assert_eq!((front.slots(), front.entry_size()), (32, 108));
    assert_eq!(
        front.push_request(&[7; 109]),
        Err(RingError::EntryTooLarge {
            len: 109,
            entry_size: 108
        })
    );
    for i in 0..32u8 {
        front.push_request(&[i; 108]).unwrap();
    }
    assert!(front.is_full());
    assert!(front.push_requests_and_check_notify());
    let mut buf = [0u8; 200];
    assert_eq!(back.take_request(&mut buf), Ok(Some(108)));
    assert_eq!(buf[..108], [0; 108]);
    let mut n = 1u8;
    assert_eq!(
        back.drain_requests(&mut buf[..4], |bytes| {
            assert_eq!(bytes, [n; 4]);
            n += 1;
        }),
        Ok(31)
    );
    assert_eq!(back.unanswered_requests(), 32);
    for i in 0..32u8 {
        back.push_response(&[i ^ 0xff; 12]).unwrap();
    }
    assert_eq!(back.push_response(&[0; 12]), Err(RingError::Full));
    assert!(back.push_responses_and_check_notify());
    let mut rsp = [0u8; 12];
    assert_eq!(front.take_response(&mut rsp), Ok(Some(12)));
    assert_eq!(rsp, [0xff; 12]);
    let mut i = 1u8;
    assert_eq!(
        front.drain_responses(&mut rsp, |bytes| {
            assert_eq!(bytes, [i ^ 0xff; 12]);
            i += 1;
        }),
        Ok(31)
    );
    assert!(!front.final_check_for_responses().unwrap());

    let mem = pages(0);
    let mut front = RawFrontRing::init(mem.clone(), Front::ENTRY_SIZE).unwrap();
    let mut back = Back::attach(mem).unwrap();
    front.push_request(Req::new(5).as_bytes()).unwrap();
    front.push_requests();
    assert_eq!(back.take_request(), Ok(Some(Req::new(5))));
    back.push_response(&answer(Req::new(5))).unwrap();
    back.push_responses();
    let mut rsp = [0u8; 16];
    assert_eq!(front.take_response(&mut rsp), Ok(Some(16)));
    assert_eq!(Rsp::read_from_bytes(&rsp).unwrap(), answer(Req::new(5)));
}

#[test]
fn mock_peers_serve_each_other() {
    let mem = pages(0);
    let mut front = MockFrontend::<Req, Rsp>::init_at(mem.clone(), u32::MAX - 3).unwrap();
    let mut back = MockBackend::<Req, Rsp>::attach_at(mem, u32::MAX - 3).unwrap();
    let reqs: Vec<Req> = (0..50).map(Req::new).collect();
    let (pushed, notify) = front.submit(&reqs);
    assert_eq!((pushed, notify), (32, true));
    let served = back.serve(answer).unwrap();
    assert_eq!((served.entries, served.notify), (32, true));
    let mut got = Vec::new();
    assert_eq!(front.collect(|rsp| got.push(rsp)).unwrap().entries, 32);
    assert_eq!(
        got,
        reqs[..32].iter().map(|r| answer(*r)).collect::<Vec<_>>()
    );
    // Both are now idle with their event indices armed.
    let (pushed, notify) = front.submit(&reqs[32..]);
    assert_eq!((pushed, notify), (18, true));
    assert_eq!(
        back.serve(answer).unwrap(),
        crate::testing::Served {
            entries: 18,
            notify: true
        }
    );
    assert_eq!(front.ring().rsp_cons(), (u32::MAX - 3).wrapping_add(32));
    assert_eq!(front.collect(|_| ()).unwrap().entries, 18);
    assert_eq!(back.ring().req_cons(), (u32::MAX - 3).wrapping_add(50));
}

// ---------------------------------------------------------------------------------------------
// Event suppression: the same decisions as io/ring.h.

/// `RING_PUSH_*_AND_CHECK_NOTIFY`'s decision.
fn c_notify(old: RingIdx, new: RingIdx, event: RingIdx) -> bool {
    new.wrapping_sub(event) < new.wrapping_sub(old)
}

#[test]
fn notify_only_when_the_consumer_asked() {
    let (mut front, mut back, peer) = blk_pair(0, 0);
    front.push_request(&Req::new(0)).unwrap();
    assert!(front.push_requests_and_check_notify()); // req_event = 1
    front.push_request(&Req::new(1)).unwrap();
    assert!(
        !front.push_requests_and_check_notify(),
        "backend has not re-armed"
    );
    assert!(!front.push_requests_and_check_notify(), "nothing new");
    assert_eq!(back.drain_requests(|_| ()), Ok(2));
    assert!(!back.final_check_for_requests().unwrap());
    assert_eq!(
        peer.get(RingIndex::ReqEvent),
        3,
        "final check arms req_event = req_cons + 1"
    );
    // A batch passing the event index notifies once.
    for id in 2..6 {
        front.push_request(&Req::new(id)).unwrap();
    }
    assert!(front.push_requests_and_check_notify());
    // Final check with work pending reports it without touching the event index.
    assert!(back.final_check_for_requests().unwrap());
    assert_eq!(peer.get(RingIndex::ReqEvent), 3);
    // A consumer asking for an event further ahead (batching) is notified only when passed.
    assert_eq!(back.drain_requests(|_| ()), Ok(4));
    peer.set(RingIndex::ReqEvent, 9);
    front.push_batch(&[Req::new(6), Req::new(7)]);
    assert!(!front.push_requests_and_check_notify()); // 6..8 does not reach 9
    front.push_request(&Req::new(8)).unwrap();
    assert!(front.push_requests_and_check_notify()); // 9 published
                                                     // Responses: the frontend arms rsp_event in its final check.
    assert_eq!(back.drain_requests(|_| ()), Ok(3));
    for _ in 0..9 {
        back.push_response(&answer(Req::new(0))).unwrap();
        assert!(back.push_responses_and_check_notify() == (back.rsp_prod_pvt() == 1));
    }
    assert_eq!(front.drain_responses(|_| ()), Ok(9));
    assert!(!front.final_check_for_responses().unwrap());
    assert_eq!(peer.get(RingIndex::RspEvent), 10);
    assert_eq!(back.drain_requests(|_| ()), Ok(0));
}

#[test]
fn notify_decision_matches_c_for_any_event_index() {
    let interesting = [
        0u32,
        1,
        2,
        3,
        4,
        5,
        31,
        32,
        33,
        0x7fff_ffff,
        0x8000_0000,
        u32::MAX - 1,
        u32::MAX,
    ];
    for start in [0u32, 1, u32::MAX - 2, 0x8000_0000] {
        for pushed in 1..=4u32 {
            for delta in interesting {
                let event = start.wrapping_add(delta);
                let (mut front, _, peer) = blk_pair(0, start);
                for id in 0..pushed {
                    front.push_request(&Req::new(id.into())).unwrap();
                }
                peer.set(RingIndex::ReqEvent, event);
                let expect = c_notify(start, start.wrapping_add(pushed), event);
                assert_eq!(
                    front.push_requests_and_check_notify(),
                    expect,
                    "start {start} pushed {pushed} event {event}"
                );
                // The backend side decides the same way.
                let (mut front, mut back, peer) = blk_pair(0, start);
                front.push_batch(&[Req::new(0); 4][..pushed as usize]);
                front.push_requests();
                back.drain_requests(|_| ()).unwrap();
                for _ in 0..pushed {
                    back.push_response(&answer(Req::new(0))).unwrap();
                }
                peer.set(RingIndex::RspEvent, event);
                assert_eq!(back.push_responses_and_check_notify(), expect);
            }
        }
    }
}

#[test]
fn scribbled_own_producer_index_does_not_change_notify() {
    // The macro reads `old` from shared memory; we use the value we published, so a peer that
    // rewrites our producer index cannot make us skip a notification it asked for.
    let (mut front, mut back, peer) = blk_pair(0, 0);
    front.push_request(&Req::new(0)).unwrap();
    front.push_requests();
    back.drain_requests(|_| ()).unwrap();
    assert!(!back.final_check_for_requests().unwrap()); // req_event = 2
    peer.set(RingIndex::ReqProd, 5);
    front.push_request(&Req::new(1)).unwrap();
    assert!(front.push_requests_and_check_notify());
    assert_eq!(peer.get(RingIndex::ReqProd), 2);
}

// ---------------------------------------------------------------------------------------------
// Hostile indices.

fn assert_poisoned_front(front: &mut Front, error: RingError) {
    assert!(error.is_peer_violation());
    assert_eq!(front.error(), Some(error));
    assert_eq!(front.take_response(), Err(error));
    assert_eq!(
        front.drain_responses(|_| panic!("read after poison")),
        Err(error)
    );
    assert_eq!(front.final_check_for_responses(), Err(error));
    assert_eq!(front.unconsumed_responses(), Err(error));
    assert_eq!(front.push_request(&Req::new(0)), Err(error));
    assert_eq!(front.push_batch(&[Req::new(0)]), 0);
    let published = front.memory().load_index(RingIndex::ReqProd);
    assert!(!front.push_requests_and_check_notify());
    front.push_requests();
    assert_eq!(front.memory().load_index(RingIndex::ReqProd), published);
}

#[test]
fn frontend_rejects_more_responses_than_requests() {
    let (mut front, _, peer) = blk_pair(0, 10);
    front.push_batch(&[Req::new(0); 3]);
    front.push_requests();
    front.push_request(&Req::new(0)).unwrap(); // pushed, not published
    peer.set(RingIndex::RspProd, 14);
    let error = front.take_response().unwrap_err();
    assert_eq!(
        error,
        RingError::UnrequestedResponses {
            rsp_prod: 14,
            req_prod: 13
        }
    );
    assert_poisoned_front(&mut front, error);
    // Re-initialising recovers.
    front.reinit();
    assert_eq!(front.error(), None);
    assert_eq!(peer.get(RingIndex::RspProd), 0);
    assert_eq!(front.take_response(), Ok(None));
    assert_eq!(front.free_requests(), 32);
}

#[test]
fn frontend_rejects_overflow_and_backwards() {
    let (mut front, _, peer) = blk_pair(0, u32::MAX - 1);
    peer.set(RingIndex::RspProd, (u32::MAX - 1).wrapping_add(33));
    assert_eq!(
        front.final_check_for_responses(),
        Err(RingError::Overflow {
            prod: 31,
            base: u32::MAX - 1,
            slots: 32
        })
    );
    front.reattach_at(u32::MAX - 1);
    assert_eq!(front.error(), None);

    // Backwards relative to what was accepted before.
    let (mut front, mut back, peer) = blk_pair(0, u32::MAX - 1);
    front.push_batch(&[Req::new(1); 4]);
    front.push_requests();
    back.drain_requests(|_| ()).unwrap();
    back.push_batch(&[answer(Req::new(1)); 3]);
    back.push_responses();
    assert_eq!(front.unconsumed_responses(), Ok(3));
    peer.set(RingIndex::RspProd, u32::MAX);
    // The three responses already validated are delivered; the reload after them notices.
    assert_eq!(front.take_response().map(|r| r.is_some()), Ok(true));
    assert_eq!(front.take_response().map(|r| r.is_some()), Ok(true));
    assert_eq!(front.take_response().map(|r| r.is_some()), Ok(true));
    let error = front.take_response().unwrap_err();
    assert_eq!(
        error,
        RingError::ProducerWentBackwards {
            prod: u32::MAX,
            last: 1
        }
    );
    assert_poisoned_front(&mut front, error);
}

#[test]
fn backend_rejects_requests_beyond_unanswered_room() {
    let (mut front, mut back, peer) = blk_pair(0, u32::MAX - 4);
    let start = u32::MAX - 4;
    front.push_batch(&[Req::new(1); 32]);
    front.push_requests();
    // Take 10 and do not answer: the ring still holds at most 32 requests beyond rsp_prod_pvt.
    for _ in 0..10 {
        back.take_request().unwrap().unwrap();
    }
    assert_eq!(back.unconsumed_requests(), Ok(22));
    peer.set(RingIndex::ReqProd, start.wrapping_add(33));
    let error = back.drain_requests(|_| ()).unwrap_err();
    assert_eq!(
        error,
        RingError::Overflow {
            prod: start.wrapping_add(33),
            base: start,
            slots: 32
        }
    );
    // Only the 22 validated requests were ever... not even those: drain reloads first once empty.
    assert_eq!(back.take_request(), Err(error));
    assert_eq!(back.push_response(&answer(Req::new(1))), Err(error));
    assert_eq!(back.push_batch(&[answer(Req::new(1))]), 0);
    assert!(!back.push_responses_and_check_notify());
    assert_eq!(peer.get(RingIndex::RspProd), start);
    assert_eq!(back.final_check_for_requests(), Err(error));
    back.reattach_at(start);
    assert_eq!(back.error(), None);
}

#[test]
fn drain_stops_at_a_violation_mid_batch() {
    let (mut front, mut back, peer) = blk_pair(0, 0);
    front.push_batch(&[Req::new(1); 4]);
    front.push_requests();
    let mut seen = 0;
    let error = back.drain_requests(|_| {
        seen += 1;
        if seen == 2 {
            peer.set(RingIndex::ReqProd, 2); // backwards from 4
        }
    });
    assert_eq!(seen, 4, "the validated batch is delivered");
    assert_eq!(
        error,
        Err(RingError::ProducerWentBackwards { prod: 2, last: 4 })
    );
}

/// Every candidate producer index around the interesting points, on a 4-slot ring: accepted iff
/// inside the window, and every rejection is a peer violation that poisons the ring.
///
/// Raw rings with 1008-byte slots (4 per page) and 8-byte entries: the validation is the same code
/// as the typed rings', and short entries keep the test quick under Miri.
#[test]
fn exhaustive_hostile_producer_indices() {
    // Miri is slow: there, fewer starting points and a narrower band around each point.
    let (starts, band): (&[u32], u32) = if cfg!(miri) {
        (&[u32::MAX - 1], 6)
    } else {
        (&[0, u32::MAX - 1, 0x8000_0000], 12)
    };
    let mut candidates = Vec::new();
    for centre in [0u32, 4, 0x7fff_ffff, 0x8000_0000, 0x8000_0004, u32::MAX - 4] {
        for d in 0..band {
            candidates.push(centre.wrapping_add(d).wrapping_sub(band / 2));
        }
    }
    let mem = pages(0);
    let peer = HostilePeer::new(mem.clone(), 1008);
    let mut buf = [0u8; 8];
    // A pair at `start` with `outstanding` requests published and taken, and `answered` of them
    // answered and published.
    let setup = |start: RingIdx, outstanding: u32, answered: u32| {
        let mut front = RawFrontRing::init_at(mem.clone(), 1008, start).unwrap();
        let mut back = RawBackRing::attach_at(mem.clone(), 1008, start).unwrap();
        assert_eq!(front.slots(), 4);
        for i in 0..outstanding {
            front.push_request(&u64::from(i).to_ne_bytes()).unwrap();
        }
        front.push_requests();
        assert_eq!(
            back.drain_requests(&mut [0; 8], |_| ()),
            Ok(outstanding as usize)
        );
        for _ in 0..answered {
            back.push_response(&[9; 8]).unwrap();
        }
        back.push_responses();
        (front, back)
    };
    for &start in starts {
        for outstanding in 0..=4u32 {
            for answered in 0..=outstanding {
                for offset in &candidates {
                    let prod = start.wrapping_add(*offset);
                    // Frontend: `answered` responses taken, then `rsp_prod` set to `prod`.
                    let (mut front, _) = setup(start, outstanding, answered);
                    for _ in 0..answered {
                        assert_eq!(front.take_response(&mut buf), Ok(Some(8)));
                    }
                    let cons = start.wrapping_add(answered);
                    peer.set(RingIndex::RspProd, prod);
                    let valid = prod.wrapping_sub(cons) <= outstanding - answered;
                    match front.drain_responses(&mut buf, |_| ()) {
                        Ok(n) => {
                            assert!(valid, "front accepted {prod:#x} (cons {cons:#x})");
                            assert_eq!(n as u32, prod.wrapping_sub(cons));
                        }
                        Err(e) => {
                            assert!(!valid, "front rejected {prod:#x} (cons {cons:#x}): {e}");
                            assert!(e.is_peer_violation());
                            let backwards = (prod.wrapping_sub(cons) as i32) < 0;
                            assert_eq!(
                                matches!(e, RingError::ProducerWentBackwards { .. }),
                                backwards,
                                "{e}"
                            );
                            assert_eq!(front.take_response(&mut buf), Err(e));
                            assert_eq!(front.push_request(&buf), Err(e));
                        }
                    }
                    // Backend: `outstanding - answered` requests taken and unanswered, then
                    // `req_prod` set to `prod`.
                    let (_, mut back) = setup(start, outstanding, answered);
                    let req_cons = start.wrapping_add(outstanding);
                    peer.set(RingIndex::ReqProd, prod);
                    let valid = prod.wrapping_sub(req_cons) <= 4 - (outstanding - answered);
                    match back.drain_requests(&mut buf, |_| ()) {
                        Ok(n) => {
                            assert!(valid, "back accepted {prod:#x}");
                            assert_eq!(n as u32, prod.wrapping_sub(req_cons));
                        }
                        Err(e) => {
                            assert!(!valid, "back rejected {prod:#x}: {e}");
                            assert!(e.is_peer_violation());
                            let backwards = (prod.wrapping_sub(req_cons) as i32) < 0;
                            assert_eq!(
                                matches!(e, RingError::ProducerWentBackwards { .. }),
                                backwards,
                                "{e}"
                            );
                            assert_eq!(back.take_request(&mut buf), Err(e));
                            assert_eq!(back.push_response(&buf), Err(e));
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn hostile_entry_bytes_are_just_data() {
    let (mut front, mut back, peer) = wide_pair(0);
    front.push_batch(&[Wide::new(1); 4]);
    front.push_requests();
    for idx in 0..4 {
        peer.fill_slot(idx, 0xa5);
    }
    let mut n = 0;
    back.drain_requests(|req| {
        assert_eq!(req.id, 0xa5a5_a5a5_a5a5_a5a5);
        n += 1;
    })
    .unwrap();
    assert_eq!(n, 4);
}

/// A deterministic random walk of well-behaved and hostile steps: no panic, no entry delivered
/// twice or out of order while the peer behaves, the consumed count bounded, and every error a
/// peer violation once the peer has misbehaved.
#[test]
fn random_walk_with_hostile_steps() {
    let steps = if cfg!(miri) { 300 } else { 20_000 };
    let mut rng = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for start in [0u32, u32::MAX - 50] {
        let (mut front, mut back, peer) = wide_pair(start);
        let (mut sent, mut received, mut taken) = (0u64, 0u64, 0u64);
        let mut hostile = false;
        for _ in 0..steps {
            let r = next();
            match r % 10 {
                0..=2 => {
                    if front.push_request(&Wide::new(sent)).is_ok() {
                        sent += 1;
                    }
                    front.push_requests_and_check_notify();
                }
                3..=4 => {
                    let res = back.drain_requests(|req| {
                        if !hostile {
                            assert_eq!(req.id, taken);
                        }
                        taken += 1;
                    });
                    if let Err(e) = res {
                        assert!(hostile && e.is_peer_violation());
                        back.reattach_at(peer.get(RingIndex::RspProd));
                    }
                }
                5..=6 => {
                    while back
                        .push_response(&Wide::new(back.rsp_prod_pvt().into()))
                        .is_ok()
                    {}
                    back.push_responses_and_check_notify();
                }
                7 => {
                    let res = front.drain_responses(|_| received += 1);
                    if let Err(e) = res {
                        assert!(hostile && e.is_peer_violation());
                        front.reinit();
                        back.reattach_at(0);
                        (sent, received, taken) = (0, 0, 0);
                        hostile = false;
                    }
                    assert!(received <= sent || hostile);
                }
                8 => {
                    let _ = front.final_check_for_responses();
                    let _ = back.final_check_for_requests();
                }
                _ => {
                    hostile = true;
                    let which = [
                        RingIndex::ReqProd,
                        RingIndex::RspProd,
                        RingIndex::ReqEvent,
                        RingIndex::RspEvent,
                    ][(r >> 8) as usize % 4];
                    let value = match (r >> 12) % 3 {
                        0 => (r >> 32) as u32,
                        1 => peer.get(which).wrapping_add((r >> 32) as u32 % 8),
                        _ => peer.get(which).wrapping_sub((r >> 32) as u32 % 8),
                    };
                    peer.set(which, value);
                    peer.fill_slot((r >> 40) as u32, r as u8);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Two threads.

/// An event channel: a counter a notifier bumps and a waiter watches (a latched pending bit).
struct Event(core::sync::atomic::AtomicU64);

impl Event {
    fn notify(&self) {
        self.0.fetch_add(1, core::sync::atomic::Ordering::SeqCst);
    }

    fn current(&self) -> u64 {
        self.0.load(core::sync::atomic::Ordering::SeqCst)
    }

    /// Waits for the counter to move past `seen`; panics on a lost wake-up (after 10 s, or a
    /// million yields under Miri, whose clock is virtual).
    fn wait(&self, seen: u64) -> u64 {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        for spins in 0u64.. {
            let now = self.current();
            if now != seen {
                return now;
            }
            if (cfg!(miri) && spins > 1_000_000)
                || (!cfg!(miri) && std::time::Instant::now() > deadline)
            {
                break;
            }
            std::thread::yield_now();
        }
        panic!("lost wake-up");
    }
}

#[test]
fn two_threads_round_trip_without_lost_wakeups() {
    let total: u64 = if cfg!(miri) { 40 } else { 100_000 };
    let order = if cfg!(miri) { 0 } else { 1 };
    let mem = pages(order);
    let mut front = Front::init_at(mem.clone(), u32::MAX - 7).unwrap();
    let mut back = Back::attach_at(mem, u32::MAX - 7).unwrap();
    let to_back = std::sync::Arc::new(Event(0.into()));
    let to_front = std::sync::Arc::new(Event(0.into()));
    let backend = {
        let (to_back, to_front) = (to_back.clone(), to_front.clone());
        std::thread::spawn(move || {
            let mut served = 0;
            let mut seen = to_back.current();
            while served < total {
                while let Some(req) = back.take_request().unwrap() {
                    back.push_response(&answer(req)).unwrap();
                    served += 1;
                }
                if back.push_responses_and_check_notify() {
                    to_front.notify();
                }
                if !back.final_check_for_requests().unwrap() && served < total {
                    seen = to_back.wait(seen);
                }
            }
        })
    };
    let (mut sent, mut received) = (0u64, 0u64);
    let mut seen = to_front.current();
    while received < total {
        let mut pushed = false;
        while sent < total && front.push_request(&Req::new(sent)).is_ok() {
            sent += 1;
            pushed = true;
        }
        if pushed && front.push_requests_and_check_notify() {
            to_back.notify();
        }
        front
            .drain_responses(|rsp| {
                assert_eq!(rsp, answer(Req::new(received)));
                received += 1;
            })
            .unwrap();
        if sent < total && !front.is_full() {
            continue; // room again: push before sleeping
        }
        if received < total && !front.final_check_for_responses().unwrap() {
            seen = to_front.wait(seen);
        }
    }
    backend.join().unwrap();
}

#[test]
fn errors_display() {
    let errors = [
        RingError::Overflow {
            prod: 40,
            base: 4,
            slots: 32,
        },
        RingError::ProducerWentBackwards { prod: 1, last: 2 },
        RingError::UnrequestedResponses {
            rsp_prod: 5,
            req_prod: 4,
        },
        RingError::Full,
        RingError::EntryTooLarge {
            len: 9,
            entry_size: 8,
        },
        RingError::InvalidMemory,
        RingError::RingTooSmall {
            pages: 1,
            entry_size: 5000,
        },
    ];
    for e in errors {
        let text = std::format!("{e}");
        assert!(!text.is_empty());
        assert_eq!(
            text.starts_with("peer protocol violation"),
            e.is_peer_violation(),
            "{text}"
        );
    }
    assert!(std::format!("{}", errors[0]).contains("36 entries past 4"));
}

#[test]
fn serve_answers_in_one_pass_and_refuses_a_hostile_index() {
    let (mut front, mut back, peer) = blk_pair(0, u32::MAX - 3);
    for id in 0..5 {
        front.push_request(&Req::new(id)).unwrap();
    }
    front.push_requests();
    assert_eq!(back.serve(answer), Ok(5));
    back.push_responses();
    let mut got = Vec::new();
    front.drain_responses(|rsp| got.push(rsp)).unwrap();
    let expected: Vec<Rsp> = (0..5).map(|id| answer(Req::new(id))).collect();
    assert_eq!(got, expected);
    // A frontend claiming more requests than the ring holds: nothing is read, the ring is
    // poisoned, and later calls say so.
    let claimed = back.req_cons().wrapping_add(back.slots() + 1);
    peer.set(RingIndex::ReqProd, claimed);
    assert!(matches!(
        back.serve(answer),
        Err(RingError::Overflow { .. })
    ));
    assert!(back.serve(answer).is_err());
}
