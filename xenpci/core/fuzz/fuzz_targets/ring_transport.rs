//! A hostile daemon on the shared page: arbitrary ring contents and indices, changed between
//! arbitrary reads and writes of the guest. The transport must never panic nor move more than the
//! ring holds, and a connection on top must survive.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xen_abi::xenstore::{XenstoreDomainInterface, XENSTORE_RING_SIZE};
use xenpci_core::xenstore::{RingTransport, Transport, TxId, XsConnection};

fn word(bytes: &mut &[u8]) -> u32 {
    let mut w = [0u8; 4];
    let n = bytes.len().min(4);
    w[..n].copy_from_slice(&bytes[..n]);
    *bytes = &bytes[n..];
    u32::from_le_bytes(w)
}

fuzz_target!(|input: &[u8]| {
    let mut bytes = input;
    let mut page = Box::new(XenstoreDomainInterface {
        req: [0; XENSTORE_RING_SIZE],
        rsp: [0; XENSTORE_RING_SIZE],
        req_cons: word(&mut bytes),
        req_prod: word(&mut bytes),
        rsp_cons: word(&mut bytes),
        rsp_prod: word(&mut bytes),
        server_features: 0,
        connection: 0,
        error: 0,
    });
    for (i, b) in bytes.iter().take(2 * XENSTORE_RING_SIZE).enumerate() {
        page.rsp[(i * 7) % XENSTORE_RING_SIZE] ^= *b;
    }
    let mut ring = RingTransport::new(&mut *page);
    let mut conn: Box<XsConnection<4, 2, 256>> = Box::new(XsConnection::new());
    let _ = conn.submit_read(TxId::NONE, "x");
    let _ = conn.submit_watch("w");
    let mut buf = [0u8; 2 * XENSTORE_RING_SIZE];
    // At most one step per remaining 5 input bytes: bounded work.
    while bytes.len() >= 5 {
        let op = bytes[0];
        bytes = &bytes[1..];
        let arg = word(&mut bytes);
        match op % 6 {
            0 => {
                let want = arg as usize % buf.len();
                if let Ok(n) = ring.read(&mut buf[..want]) {
                    assert!(n <= want && n <= XENSTORE_RING_SIZE);
                }
            }
            1 => {
                let want = arg as usize % buf.len();
                if let Ok(n) = ring.write(&buf[..want]) {
                    assert!(n <= want && n <= XENSTORE_RING_SIZE);
                }
            }
            // The peer moves its indices anywhere.
            2 => ring.page_mut().rsp_prod = arg,
            3 => ring.page_mut().req_cons = arg,
            4 => {
                let _ = conn.poll(&mut ring);
            }
            _ => {
                conn.reset();
                ring.resync();
                let _ = conn.submit_rewatches();
            }
        }
    }
});
