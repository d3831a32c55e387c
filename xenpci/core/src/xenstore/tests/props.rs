//! Property tests of the framing: any fragmentation of a valid stream parses identically, and
//! arbitrary bytes never panic.

extern crate std;

use std::prelude::rust_2021::*;
use std::vec;

use proptest::prelude::*;

use super::fake::{msg, Script};
use super::{Conn, Transport};
use crate::xenstore::wire::ReplyParser;
use crate::xenstore::{TxId, XsError, XsMsgType};

/// A transport handing out its input in the given piece sizes (cycled).
struct Pieces {
    input: Vec<u8>,
    at: usize,
    sizes: Vec<usize>,
    next: usize,
}

impl Transport for Pieces {
    fn write(&mut self, data: &[u8]) -> Result<usize, XsError> {
        Ok(data.len())
    }
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, XsError> {
        let size = self.sizes[self.next % self.sizes.len()];
        self.next += 1;
        let n = size.min(buf.len()).min(self.input.len() - self.at);
        buf[..n].copy_from_slice(&self.input[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn frames() -> impl Strategy<Value = Vec<(u32, u32, u32, Vec<u8>)>> {
    prop::collection::vec(
        (
            0u32..24,
            any::<u32>(),
            any::<u32>(),
            prop::collection::vec(any::<u8>(), 0..300),
        ),
        1..12,
    )
}

proptest! {
    #[test]
    fn any_split_of_a_valid_stream_parses_identically(
        frames in frames(),
        sizes in prop::collection::vec(1usize..600, 1..20),
    ) {
        let stream: Vec<u8> = frames.iter().flat_map(|(t, r, x, p)| msg(*t, *r, *x, p)).collect();
        let mut parser = ReplyParser::new();
        let mut got = Vec::new();
        let mut at = 0;
        let mut i = 0;
        while at < stream.len() {
            let end = (at + sizes[i % sizes.len()]).min(stream.len());
            i += 1;
            let mut piece = &stream[at..end];
            at = end;
            while !piece.is_empty() {
                let n = parser.push(piece).unwrap();
                piece = &piece[n..];
                if let Some(f) = parser.frame() {
                    let h = f.header;
                    got.push((h.raw_type, h.req_id, h.tx_id, f.payload.to_vec()));
                    parser.next();
                }
            }
        }
        prop_assert!(parser.is_idle());
        prop_assert_eq!(got, frames);
    }

    #[test]
    fn replies_in_any_order_and_fragmentation_reach_their_requests(
        order_seed in any::<u64>(),
        values in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..8),
        sizes in prop::collection::vec(1usize..300, 1..10),
    ) {
        let mut conn = Box::new(Conn::new());
        let ids: Vec<_> = values.iter().map(|_| conn.submit_read(TxId::NONE, "k").unwrap()).collect();
        let mut order: Vec<usize> = (0..values.len()).collect();
        // A deterministic shuffle from the seed.
        let mut s = order_seed;
        for i in (1..order.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            order.swap(i, (s >> 33) as usize % (i + 1));
        }
        let stream: Vec<u8> = order
            .iter()
            .flat_map(|&i| msg(XsMsgType::Read as u32, ids[i].0, 0, &values[i]))
            .collect();
        let mut t = Pieces { input: stream, at: 0, sizes, next: 0 };
        let mut got = vec![None; values.len()];
        let mut polls = 0;
        while got.iter().any(Option::is_none) {
            polls += 1;
            prop_assert!(polls < 10_000);
            if let Some(r) = conn.poll(&mut t).unwrap() {
                let i = ids.iter().position(|id| *id == r.req_id).unwrap();
                got[i] = Some(r.result.unwrap().to_vec());
            }
        }
        let got: Vec<Vec<u8>> = got.into_iter().map(Option::unwrap).collect();
        prop_assert_eq!(got, values);
        prop_assert_eq!(conn.stats().protocol_errors, 0);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..5000),
        chunk in 1usize..64,
        requests in 0usize..8,
    ) {
        let mut conn = Box::new(Conn::new());
        for _ in 0..requests {
            conn.submit_read(TxId::NONE, "k").unwrap();
        }
        conn.submit_watch("w").unwrap();
        let mut t = Script::new(&bytes, chunk);
        let mut buf = [0; 4096];
        for _ in 0..10_000 {
            match conn.poll(&mut t) {
                Ok(Some(_)) => {}
                Ok(None) => {
                    if !conn.poll_again() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        while let Ok(Some(_)) = conn.pop_watch_event(&mut buf) {}
        prop_assert!(t.input.is_empty() || conn.broken().is_some());
    }
}
