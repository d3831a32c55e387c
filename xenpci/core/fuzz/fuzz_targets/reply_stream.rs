//! Arbitrary bytes as the daemon's reply stream, delivered in arbitrary fragments to a connection
//! with requests and a watch outstanding: no panic, bounded work, and the parser alone agrees.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenpci_core::xenstore::wire::ReplyParser;
use xenpci_core::xenstore::{Transport, TxId, XsConnection, XsError};

/// Hands out the input in pieces whose sizes come from the input itself.
struct Fragments<'a> {
    data: &'a [u8],
    sizes: &'a [u8],
    next: usize,
}

impl Transport for Fragments<'_> {
    fn write(&mut self, data: &[u8]) -> Result<usize, XsError> {
        // Accept a varying amount, to exercise partial sends.
        let size = self.sizes.get(self.next % self.sizes.len().max(1)).copied().unwrap_or(255);
        Ok(data.len().min(usize::from(size) + 1))
    }
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, XsError> {
        let size = self.sizes.get(self.next % self.sizes.len().max(1)).copied().unwrap_or(255);
        self.next += 1;
        let n = buf.len().min(self.data.len()).min(usize::from(size) + 1);
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&header, rest)) = input.split_first() else { return };
    let sizes_len = usize::from(header & 0x0f).min(rest.len());
    let (sizes, data) = rest.split_at(sizes_len);
    let requests = usize::from(header >> 4) % 9;

    let mut conn: Box<XsConnection<8, 4, 512>> = Box::new(XsConnection::new());
    for i in 0..requests {
        // Request ids are handed out from 1, so a fuzzer finds matching replies easily.
        let _ = match i % 4 {
            0 => conn.submit_read(TxId::NONE, "device/vbd"),
            1 => conn.submit_directory(TxId::NONE, "device"),
            2 => conn.submit_transaction_start(),
            _ => conn.submit_get_perms(TxId::NONE, "a"),
        };
    }
    let _ = conn.submit_watch("device");
    let mut t = Fragments { data, sizes, next: 0 };
    let mut path = [0u8; 4096];
    // Every poll makes progress or stops, so the number of polls is bounded by the input size.
    for _ in 0..=input.len() + 2 {
        match conn.poll(&mut t) {
            Ok(Some(reply)) => {
                let _ = reply.directory().map(|d| d.iter().count());
                let _ = reply.perms().map(|p| p.iter().count());
                let _ = reply.transaction();
            }
            Ok(None) => {
                if !conn.poll_again() {
                    break;
                }
            }
            Err(_) => break,
        }
        while let Ok(Some(_)) = conn.pop_watch_event(&mut path) {}
    }
    assert!(t.data.is_empty() || conn.broken().is_some());

    // The parser on its own, fed the same bytes in one piece.
    let mut parser = ReplyParser::new();
    let mut rest = data;
    while !rest.is_empty() {
        match parser.push(rest) {
            Ok(n) => {
                rest = &rest[n..];
                if let Some(f) = parser.frame() {
                    assert_eq!(f.payload.len(), f.header.len as usize);
                    parser.next();
                }
            }
            Err(_) => break,
        }
    }
});
