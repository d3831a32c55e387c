//! The engine against a hostile backend with pseudo-random scripts (the fuzz target's driver,
//! run on stable with a fixed generator).

use crate::hostile;

/// xorshift64*: deterministic, so a failure names its seed.
fn script(seed: u64, len: usize) -> alloc_free::Bytes {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = alloc_free::Bytes::new();
    for _ in 0..len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.push((x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8);
    }
    out
}

mod alloc_free {
    /// A fixed buffer of script bytes.
    pub struct Bytes {
        buf: [u8; 8192],
        len: usize,
    }

    impl Bytes {
        pub fn new() -> Self {
            Bytes {
                buf: [0; 8192],
                len: 0,
            }
        }
        pub fn push(&mut self, b: u8) {
            self.buf[self.len] = b;
            self.len += 1;
        }
        pub fn as_slice(&self) -> &[u8] {
            &self.buf[..self.len]
        }
    }
}

#[test]
fn hostile_backend_scripts() {
    let mut total = hostile::Summary::default();
    for seed in 0..400 {
        let s = script(seed, 4096);
        let one = hostile::run(s.as_slice());
        total.accepted += one.accepted;
        total.answered += one.answered;
        total.violations += one.violations;
        total.still_mapped += one.still_mapped;
    }
    // The scripts reach every part: commands go out, answers are accepted, violations are
    // caught, and revocations meet mapped pages.
    assert!(total.accepted > 2000, "{total:?}");
    assert!(total.answered > 100, "{total:?}");
    assert!(total.violations > 100, "{total:?}");
    assert!(total.still_mapped > 100, "{total:?}");
}

#[test]
fn hostile_backend_edge_scripts() {
    hostile::run(&[]);
    hostile::run(&[0; 64]);
    hostile::run(&[0xff; 256]);
    // Submit, answer with the request's rqid, poll: the well-behaved path.
    hostile::run(&[
        0, 3, 1, 0, 0, 0, 16, 6, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
    ]);
}
