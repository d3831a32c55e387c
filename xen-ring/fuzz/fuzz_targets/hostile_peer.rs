//! A hostile peer: between the operations of one well-behaved ring end, the peer writes arbitrary
//! values into every header index and arbitrary bytes into the slots.
//!
//! Checked on every input: no panic (so no out-of-bounds access), no hang (every call returns;
//! drains are bounded by the ring size), the entries consumed bounded by what the protocol
//! allows, and a poisoned ring refusing all work with the same error until it is reset.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xen_ring::testing::HostilePeer;
use xen_ring::{BackRing, FrontRing, RawBackRing, RawFrontRing, RingError, RingIndex, RingMemory};

/// The input, consumed a byte at a time; reads past the end yield zeroes.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

const INDICES: [RingIndex; 4] = [
    RingIndex::ReqProd,
    RingIndex::ReqEvent,
    RingIndex::RspProd,
    RingIndex::RspEvent,
];

/// One step of the hostile peer.
fn hostile(input: &mut Input, peer: &HostilePeer) {
    let op = input.byte();
    let which = INDICES[usize::from(op >> 4) % 4];
    match op % 6 {
        0 => peer.set(which, input.u32()),
        1 => peer.set(which, peer.get(which).wrapping_add(u32::from(input.byte()))),
        2 => peer.set(which, peer.get(which).wrapping_sub(u32::from(input.byte()))),
        3 => {
            let idx = input.u32();
            let len = usize::from(input.byte());
            let bytes: Vec<u8> = (0..len).map(|_| input.byte()).collect();
            peer.write_slot(idx, &bytes);
        }
        4 => peer.fill_slot(input.u32(), input.byte()),
        _ => {
            let offset = usize::from(u16::from_le_bytes([input.byte(), input.byte()]));
            let bytes = [input.byte(); 7];
            let _ = peer.write_raw(offset, &bytes);
        }
    }
}

/// Checks that a poisoned ring keeps returning its error.
fn check_error(result: Result<impl Sized, RingError>, poisoned: Option<RingError>) {
    if let Err(e) = result {
        if e.is_peer_violation() {
            assert!(poisoned.is_none() || poisoned == Some(e));
        } else {
            assert_eq!(e, RingError::Full);
        }
    }
}

/// Drives a typed frontend against a hostile backend.
fn typed_front(input: &mut Input, mem: RingMemory, start: u32) {
    type Req = [u64; 14]; // 112 bytes, like blkif
    type Rsp = [u64; 2];
    let Ok(mut front) = FrontRing::<Req, Rsp>::init_at(mem.clone(), start) else {
        return;
    };
    let peer = HostilePeer::new(mem, FrontRing::<Req, Rsp>::ENTRY_SIZE);
    let slots = front.slots();
    // The index the frontend counts from, the last request index it published, and the
    // responses it consumed since then.
    let (mut base, mut published, mut consumed) = (start, start, 0u64);
    while !input.is_empty() {
        let op = input.byte();
        let poisoned = front.error();
        match op % 10 {
            0 | 1 => {
                let n = usize::from(input.byte() % 8);
                let pushed = front.push_batch(&vec![[op.into(); 14]; n]);
                assert!(pushed <= n && (poisoned.is_none() || pushed == 0));
            }
            2 => check_error(front.push_request(&[0; 14]), poisoned),
            3 => {
                let notify = front.push_requests_and_check_notify();
                if poisoned.is_none() {
                    published = front.req_prod_pvt();
                } else {
                    assert!(!notify);
                }
            }
            4 => match front.take_response() {
                Ok(r) => consumed += u64::from(r.is_some()),
                Err(e) => check_error(Err::<(), _>(e), poisoned),
            },
            5 => {
                let mut n = 0;
                match front.drain_responses(|_| n += 1) {
                    Ok(count) => assert_eq!(count, n),
                    Err(e) => check_error(Err::<(), _>(e), poisoned),
                }
                assert!(n <= slots as usize);
                consumed += n as u64;
            }
            6 => check_error(front.final_check_for_responses(), poisoned),
            7 => check_error(front.unconsumed_responses(), poisoned),
            8 if op & 0x80 != 0 => {
                front.reinit();
                (base, published, consumed) = (0, 0, 0);
                assert_eq!(front.free_requests(), slots);
                assert_eq!(front.error(), None);
                continue;
            }
            _ => hostile(input, &peer),
        }
        if poisoned.is_some() {
            assert_eq!(
                front.error(),
                poisoned,
                "a poisoned ring stays poisoned until reset"
            );
        }
        assert!(front.free_requests() <= slots);
        // Every response consumed answers a request the backend was shown.
        assert_eq!(consumed, u64::from(front.rsp_cons().wrapping_sub(base)));
        assert!(front.rsp_cons().wrapping_sub(base) <= published.wrapping_sub(base));
    }
}

/// Drives a typed backend against a hostile frontend.
fn typed_back(input: &mut Input, mem: RingMemory, start: u32) {
    type Req = [u32; 3]; // 12 bytes, like netif tx
    type Rsp = [u16; 2];
    let Ok(mut back) = BackRing::<Req, Rsp>::attach_at(mem.clone(), start) else {
        return;
    };
    let peer = HostilePeer::new(mem, BackRing::<Req, Rsp>::ENTRY_SIZE);
    let slots = back.slots();
    while !input.is_empty() {
        let op = input.byte();
        let poisoned = back.error();
        match op % 9 {
            0 | 1 => match back.take_request() {
                Ok(_) => {}
                Err(e) => check_error(Err::<(), _>(e), poisoned),
            },
            2 => {
                let mut n = 0;
                match back.drain_requests(|_| n += 1) {
                    Ok(count) => assert_eq!(count, n),
                    Err(e) => check_error(Err::<(), _>(e), poisoned),
                }
                assert!(n <= slots as usize);
            }
            3 => check_error(back.push_response(&[1, 2]), poisoned),
            4 => {
                let n = usize::from(input.byte() % 8);
                back.push_batch(&vec![[3, 4]; n]);
            }
            5 => {
                back.push_responses_and_check_notify();
            }
            6 => check_error(back.final_check_for_requests(), poisoned),
            7 if op & 0x80 != 0 => {
                back.reattach_at(peer.get(RingIndex::RspProd));
                assert_eq!(back.error(), None);
                continue;
            }
            _ => hostile(input, &peer),
        }
        if poisoned.is_some() {
            assert_eq!(back.error(), poisoned);
        }
        // Consumed-but-unanswered requests never exceed the ring.
        assert!(back.unanswered_requests() <= slots);
        assert!(back.req_cons().wrapping_sub(back.rsp_prod_pvt()) <= slots);
    }
}

/// Drives raw rings of an arbitrary entry size: a frontend and a backend on the same pages, with
/// the hostile peer interfering with both.
fn raw_pair(input: &mut Input, mem: RingMemory, entry_size: usize) {
    let Ok(mut front) = RawFrontRing::init(mem.clone(), entry_size) else {
        return;
    };
    let Ok(mut back) = RawBackRing::attach(mem.clone(), entry_size) else {
        return;
    };
    let peer = HostilePeer::new(mem, entry_size);
    let slots = front.slots();
    let mut buf = [0u8; 300];
    while !input.is_empty() {
        let op = input.byte();
        let len = usize::from(input.byte());
        match op % 9 {
            0 => {
                let _ = front.push_request(&buf[..len.min(buf.len())]);
            }
            1 => {
                front.push_requests_and_check_notify();
            }
            2 => {
                let mut n = 0;
                let _ = back.drain_requests(&mut buf[..len], |b| {
                    assert!(b.len() <= entry_size);
                    n += 1
                });
                assert!(n <= slots);
            }
            3 => {
                let _ = back.push_response(&buf[..len.min(buf.len())]);
                back.push_responses_and_check_notify();
            }
            4 => {
                let mut n = 0;
                let _ = front.drain_responses(&mut buf[..len], |_| n += 1);
                assert!(n <= slots);
            }
            5 => {
                let _ = front.final_check_for_responses();
                let _ = back.final_check_for_requests();
            }
            6 if op & 0x80 != 0 => {
                front.reinit();
                back.reattach_at(0);
            }
            _ => hostile(input, &peer),
        }
        assert!(front.free_requests() <= slots);
        assert!(back.unanswered_requests() <= slots);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let mode = input.byte();
    let order = u32::from(mode >> 6); // 0..=3
    let Ok(mem) = RingMemory::allocate(order) else {
        return;
    };
    // Start next to the 2^32 wrap-around often, anywhere otherwise.
    let start = if mode & 0x08 != 0 {
        u32::MAX - u32::from(input.byte())
    } else {
        input.u32()
    };
    match mode % 3 {
        0 => typed_front(&mut input, mem, start),
        1 => typed_back(&mut input, mem, start),
        _ => {
            let entry_size = usize::from(input.byte()) + 1;
            raw_pair(&mut input, mem, entry_size)
        }
    }
});
