//! Test frames for the network scenarios and the dom0-side checks, written independently of
//! xennet-core (its own checksum code is what is being checked).

/// The ethertype of plain test frames (IEEE local experimental).
pub const ETHERTYPE_TEST: u16 = 0x88b5;
/// IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// The IPv4 address the frontend sends from.
pub const FRONT_IP: [u8; 4] = [10, 99, 0, 2];
/// The IPv4 address dom0's peer sends from.
pub const PEER_IP: [u8; 4] = [10, 99, 0, 1];
/// Ethernet + IPv4 + TCP headers, no options.
pub const TCP4_HEADERS: usize = 14 + 20 + 20;

/// A plain frame of `len` bytes (at least 32): to `dst`, from `src`, of [`ETHERTYPE_TEST`],
/// carrying a label and a pattern seeded by `n`.
pub fn plain_frame(dst: [u8; 6], src: [u8; 6], len: usize, n: u32) -> Vec<u8> {
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ETHERTYPE_TEST.to_be_bytes());
    f.extend_from_slice(format!("NC {n:08} {len:05}").as_bytes());
    let seed = n.wrapping_mul(2_654_435_761);
    while f.len() < len {
        let i = f.len() as u32;
        f.push((i.wrapping_mul(31) ^ seed.rotate_left(i % 32)) as u8);
    }
    f.truncate(len);
    f
}

/// The 16-bit ones' complement sum of `data` added to `sum` (not folded).
pub fn ones_sum(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

/// Folds a ones' complement sum to 16 bits.
pub fn fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

fn pseudo_sum_v4(frame: &[u8], l4_len: usize) -> u32 {
    let mut sum = ones_sum(0, &frame[26..34]);
    sum += u32::from(frame[23]);
    sum + l4_len as u32
}

/// A TCP/IPv4 frame from `src` (`src_ip`, port `sport`) to `dst` carrying `payload` bytes of a
/// pattern seeded by `n`, sequence number `seq`, IPv4 id `n`; both checksums correct.
#[allow(clippy::too_many_arguments)]
pub fn tcp4_frame(
    dst: [u8; 6],
    src: [u8; 6],
    src_ip: [u8; 4],
    dst_ip: [u8; 4],
    sport: u16,
    dport: u16,
    seq: u32,
    payload: usize,
    n: u16,
) -> Vec<u8> {
    let mut f = Vec::with_capacity(TCP4_HEADERS + payload);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    let total = (20 + 20 + payload) as u16;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&n.to_be_bytes());
    f.extend_from_slice(&[0x40, 0, 64, 6, 0, 0]); // DF, TTL 64, TCP, checksum
    f.extend_from_slice(&src_ip);
    f.extend_from_slice(&dst_ip);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&0x1000_0000u32.to_be_bytes()); // ack
    f.extend_from_slice(&[0x50, 0x18]); // data offset 5, ACK|PSH
    f.extend_from_slice(&0xffffu16.to_be_bytes()); // window
    f.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent
    for i in 0..payload {
        f.push((i as u32).wrapping_mul(7).wrapping_add(u32::from(n) * 13) as u8);
    }
    fill_ipv4_header_checksum(&mut f);
    fill_tcp4_checksum(&mut f);
    f
}

/// Writes the IPv4 header checksum of a frame with a 20-byte IPv4 header.
pub fn fill_ipv4_header_checksum(f: &mut [u8]) {
    f[24..26].copy_from_slice(&[0, 0]);
    let c = !fold(ones_sum(0, &f[14..34]));
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

/// Writes the TCP checksum of a TCP/IPv4 frame (20-byte IPv4 header).
pub fn fill_tcp4_checksum(f: &mut [u8]) {
    f[50..52].copy_from_slice(&[0, 0]);
    let l4 = f.len() - 34;
    let c = !fold(ones_sum(pseudo_sum_v4(f, l4), &f[34..]));
    f[50..52].copy_from_slice(&c.to_be_bytes());
}

/// The pseudo-header sum of a TCP/IPv4 frame, folded: what the checksum field holds while the
/// checksum is partial.
pub fn tcp4_pseudo_seed(f: &[u8]) -> u16 {
    fold(pseudo_sum_v4(f, f.len() - 34))
}

/// Whether the IPv4 header checksum verifies.
pub fn ipv4_header_ok(f: &[u8]) -> bool {
    f.len() >= 34 && fold(ones_sum(0, &f[14..34])) == 0xffff
}

/// Whether the TCP checksum of a TCP/IPv4 frame verifies (over the pseudo-header).
pub fn tcp4_checksum_ok(f: &[u8]) -> bool {
    f.len() >= TCP4_HEADERS && fold(ones_sum(pseudo_sum_v4(f, f.len() - 34), &f[34..])) == 0xffff
}

/// How a TCP checksum arrived on the dom0 side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChecksumForm {
    /// Complete and correct.
    Complete,
    /// Partial (`CHECKSUM_PARTIAL`, what a `NETTXF_csum_blank` packet is in dom0): the field
    /// holds the pseudo-header sum, and completing it over the segment gives a correct
    /// checksum.
    Partial,
}

/// Checks a TCP/IPv4 frame's checksum as dom0 received it: complete, or partial with exactly
/// the pseudo-header sum in the field. Completes it in place in the second case.
pub fn check_tcp4_checksum(f: &mut [u8]) -> Option<ChecksumForm> {
    if tcp4_checksum_ok(f) {
        return Some(ChecksumForm::Complete);
    }
    // What a NIC does with CHECKSUM_PARTIAL: sum from the transport header on (the field
    // included), complement, store. It verifies only if the field held the pseudo-header sum.
    let c = !fold(ones_sum(0, &f[34..]));
    f[50..52].copy_from_slice(&c.to_be_bytes());
    tcp4_checksum_ok(f).then_some(ChecksumForm::Partial)
}

/// The Toeplitz hash, computed bit by bit the way Microsoft's RSS documentation states it
/// (for every set input bit, the 32 key bits starting at that bit's index), independently of
/// xennet-core's implementation. Key bits past the key are zero.
pub fn toeplitz_reference(key: &[u8], input: &[u8]) -> u32 {
    let key_bit = |b: usize| {
        key.get(b / 8)
            .map_or(0, |k| u32::from(k >> (7 - b % 8)) & 1)
    };
    let mut hash = 0u32;
    for i in 0..input.len() * 8 {
        if input[i / 8] >> (7 - i % 8) & 1 == 1 {
            hash ^= (0..32).fold(0u32, |v, j| (v << 1) | key_bit(i + j));
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_reference_toeplitz_agrees_with_the_first_published_vector() {
        // Microsoft's RSS verification key and its first IPv4 + TCP case: source
        // 66.9.149.187:2794, destination 161.142.100.80:1766.
        let key = [
            0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
            0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
            0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
        ];
        let input = [66, 9, 149, 187, 161, 142, 100, 80, 0x0a, 0xea, 0x06, 0xe6];
        assert_eq!(toeplitz_reference(&key, &input), 0x51cc_c178);
        assert_eq!(toeplitz_reference(&key, &input[..8]), 0x323e_8fc2);
    }

    use super::*;

    #[test]
    fn frames_have_their_length_and_differ() {
        let a = plain_frame([0xff; 6], [2; 6], 60, 1);
        assert_eq!(a.len(), 60);
        assert_eq!(a[12..14], [0x88, 0xb5]);
        assert_ne!(a, plain_frame([0xff; 6], [2; 6], 60, 2));
        assert_eq!(plain_frame([0xff; 6], [2; 6], 1514, 3).len(), 1514);
    }

    #[test]
    fn tcp_frames_verify_and_a_flipped_bit_does_not() {
        for payload in [0, 1, 2, 1459, 1460] {
            let mut f = tcp4_frame([1; 6], [2; 6], FRONT_IP, PEER_IP, 1, 2, 3, payload, 9);
            assert!(ipv4_header_ok(&f));
            assert!(tcp4_checksum_ok(&f));
            assert_eq!(check_tcp4_checksum(&mut f), Some(ChecksumForm::Complete));
            let last = f.len() - 1;
            f[last] ^= 0x40;
            assert!(!tcp4_checksum_ok(&f));
        }
    }

    #[test]
    fn a_partial_checksum_is_recognised_and_a_wrong_seed_is_not() {
        let good = tcp4_frame([1; 6], [2; 6], FRONT_IP, PEER_IP, 1, 2, 3, 333, 9);
        let mut partial = good.clone();
        let seed = fold(pseudo_sum_v4(&partial, partial.len() - 34));
        partial[50..52].copy_from_slice(&seed.to_be_bytes());
        assert_eq!(
            check_tcp4_checksum(&mut partial),
            Some(ChecksumForm::Partial)
        );
        assert_eq!(partial, good);
        let mut wrong = good.clone();
        wrong[50..52].copy_from_slice(&seed.wrapping_add(1).to_be_bytes());
        assert_eq!(check_tcp4_checksum(&mut wrong), None);
    }
}
