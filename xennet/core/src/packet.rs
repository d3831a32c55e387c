//! Ethernet, IPv4/IPv6 and TCP/UDP headers: parsing, Internet checksums and the header edits
//! of segmentation. Pure functions over byte slices; the queues use them for the software
//! fallbacks and for checking received packets.

/// The most header bytes the core reads to find the transport header: Ethernet with one VLAN
/// tag, IPv6 with a few extension headers, TCP with options.
pub const MAX_HEADER: usize = 192;

/// Ethernet header length (without a VLAN tag).
pub const ETH_HEADER: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
/// The 802.1Q tag protocol identifier.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// IP protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const PROTO_UDP: u8 = 17;

/// The network layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ip {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// The transport layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// Where a frame's headers are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Headers {
    /// Offset of the IP header (14, or 18 after a VLAN tag).
    pub l3: usize,
    /// IPv4 or IPv6.
    pub ip: Ip,
    /// Offset of the transport header.
    pub l4: usize,
    /// TCP or UDP, when the packet is one (and, for IPv4, not a fragment).
    pub transport: Option<L4>,
    /// Offset of the payload after the transport header (TCP data offset, UDP 8).
    pub payload: usize,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Finds the headers of a frame from its first bytes (`hdr` need not be the whole frame).
/// `None` when the frame is not IPv4 or IPv6 over Ethernet (with at most one VLAN tag) or its
/// headers do not fit in `hdr`.
pub fn parse(hdr: &[u8]) -> Option<Headers> {
    let mut l3 = ETH_HEADER;
    let mut ethertype = be16(hdr, 12)?;
    if ethertype == ETHERTYPE_VLAN {
        ethertype = be16(hdr, 16)?;
        l3 += 4;
    }
    let (ip, l4, proto) = match ethertype {
        ETHERTYPE_IPV4 => {
            let vihl = *hdr.get(l3)?;
            let ihl = usize::from(vihl & 0x0f) * 4;
            if vihl >> 4 != 4 || ihl < 20 || hdr.len() < l3 + ihl {
                return None;
            }
            let frag = be16(hdr, l3 + 6)?;
            // More fragments, or a fragment offset: no transport header to speak of.
            let proto = if frag & 0x3fff != 0 { 0 } else { hdr[l3 + 9] };
            (Ip::V4, l3 + ihl, proto)
        }
        ETHERTYPE_IPV6 => {
            if *hdr.get(l3)? >> 4 != 6 {
                return None;
            }
            let mut next = *hdr.get(l3 + 6)?;
            let mut at = l3 + 40;
            // Hop-by-hop, routing and destination options headers are skipped; a fragment
            // header or anything else ends the walk.
            while matches!(next, 0 | 43 | 60) {
                let len = (usize::from(*hdr.get(at + 1)?) + 1) * 8;
                next = *hdr.get(at)?;
                at += len;
            }
            (Ip::V6, at, next)
        }
        _ => return None,
    };
    let (transport, payload) = match proto {
        PROTO_TCP => {
            let off = usize::from(*hdr.get(l4 + 12)? >> 4) * 4;
            if off < 20 {
                return None;
            }
            (Some(L4::Tcp), l4 + off)
        }
        PROTO_UDP => (Some(L4::Udp), l4 + 8),
        _ => (None, l4),
    };
    if hdr.len() < payload {
        return None;
    }
    Some(Headers {
        l3,
        ip,
        l4,
        transport,
        payload,
    })
}

/// A running Internet checksum (RFC 1071) over a byte stream fed in pieces of any length.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checksum {
    sum: u64,
    odd: bool,
}

impl Checksum {
    /// An empty sum.
    pub const fn new() -> Self {
        Checksum { sum: 0, odd: false }
    }

    /// Adds the next bytes of the stream.
    pub fn add(&mut self, mut data: &[u8]) {
        if self.odd {
            if let [first, rest @ ..] = data {
                self.sum += u64::from(*first);
                data = rest;
                self.odd = false;
            }
        }
        let mut words = data.chunks_exact(2);
        for w in &mut words {
            self.sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
        }
        if let [last] = words.remainder() {
            self.sum += u64::from(*last) << 8;
            self.odd = true;
        }
        // Folding keeps the sum far from overflow whatever the stream's length.
        if self.sum >> 48 != 0 {
            self.sum = (self.sum & 0xffff_ffff) + (self.sum >> 32);
        }
    }

    /// Adds a 16-bit word (at an even position of the stream).
    pub fn add_u16(&mut self, v: u16) {
        self.sum += u64::from(v);
    }

    /// The folded one's-complement sum (not inverted).
    pub fn fold(&self) -> u16 {
        let mut s = self.sum;
        while s >> 16 != 0 {
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    /// The checksum field's value: the inverted sum.
    pub fn finish(&self) -> u16 {
        !self.fold()
    }
}

/// The checksum of `data` (for example an IPv4 header with its checksum field zeroed).
pub fn checksum(data: &[u8]) -> u16 {
    let mut c = Checksum::new();
    c.add(data);
    c.finish()
}

/// The pseudo-header sum of a transport segment of `l4_len` bytes (header and payload), from
/// the IP header at `hdr[h.l3..]`. Not inverted: it is the value a blank checksum field holds
/// (Linux's `CHECKSUM_PARTIAL` convention that netback expects) and the start of a full sum.
pub fn pseudo_header(hdr: &[u8], h: &Headers, proto: u8, l4_len: u32) -> Checksum {
    let mut c = Checksum::new();
    match h.ip {
        Ip::V4 => {
            c.add(&hdr[h.l3 + 12..h.l3 + 20]);
            c.add_u16(u16::from(proto));
            c.add_u16(l4_len as u16);
            c.add_u16((l4_len >> 16) as u16);
        }
        Ip::V6 => {
            c.add(&hdr[h.l3 + 8..h.l3 + 40]);
            c.add_u16((l4_len >> 16) as u16);
            c.add_u16(l4_len as u16);
            c.add_u16(u16::from(proto));
        }
    }
    c
}

/// Offset of the checksum field within the transport header.
pub fn checksum_field(l4: L4) -> usize {
    match l4 {
        L4::Tcp => 16,
        L4::Udp => 6,
    }
}

/// IP protocol number of a transport.
pub fn proto(l4: L4) -> u8 {
    match l4 {
        L4::Tcp => PROTO_TCP,
        L4::Udp => PROTO_UDP,
    }
}

/// The checksum value to store for a transport whose inverted sum is `v`: UDP over IPv4 sends
/// a computed 0 as 0xffff (0 means "no checksum").
pub fn transport_checksum_value(l4: L4, v: u16) -> u16 {
    if l4 == L4::Udp && v == 0 {
        0xffff
    } else {
        v
    }
}

/// Sets the IP length field for a frame of `frame_len` bytes and, for IPv4, recomputes the
/// header checksum.
pub fn set_ip_length(hdr: &mut [u8], h: &Headers, frame_len: usize) {
    match h.ip {
        Ip::V4 => {
            let total = (frame_len - h.l3) as u16;
            hdr[h.l3 + 2..h.l3 + 4].copy_from_slice(&total.to_be_bytes());
            fill_ipv4_header_checksum(hdr, h);
        }
        Ip::V6 => {
            let payload = (frame_len - h.l3 - 40) as u16;
            hdr[h.l3 + 4..h.l3 + 6].copy_from_slice(&payload.to_be_bytes());
        }
    }
}

/// Recomputes the IPv4 header checksum in place.
pub fn fill_ipv4_header_checksum(hdr: &mut [u8], h: &Headers) {
    hdr[h.l3 + 10..h.l3 + 12].fill(0);
    let c = checksum(&hdr[h.l3..h.l4]);
    hdr[h.l3 + 10..h.l3 + 12].copy_from_slice(&c.to_be_bytes());
}

/// Whether an IPv4 header's checksum is right.
pub fn ipv4_header_ok(hdr: &[u8], h: &Headers) -> bool {
    checksum(&hdr[h.l3..h.l4]) == 0
}

/// Edits the headers of a TCP segment cut from a large send: sequence number advanced by
/// `offset` payload bytes, IPv4 identification advanced by `index`, FIN and PSH only on the
/// last segment, CWR only on the first; IP length for `frame_len`.
pub fn segment_headers(
    hdr: &mut [u8],
    h: &Headers,
    index: u16,
    offset: u32,
    last: bool,
    frame_len: usize,
) {
    let seq_at = h.l4 + 4;
    let seq = u32::from_be_bytes([
        hdr[seq_at],
        hdr[seq_at + 1],
        hdr[seq_at + 2],
        hdr[seq_at + 3],
    ]);
    hdr[seq_at..seq_at + 4].copy_from_slice(&seq.wrapping_add(offset).to_be_bytes());
    let flags = &mut hdr[h.l4 + 13];
    if !last {
        *flags &= !(0x01 | 0x08);
    }
    if index != 0 {
        *flags &= !0x80;
    }
    if h.ip == Ip::V4 {
        let id = u16::from_be_bytes([hdr[h.l3 + 4], hdr[h.l3 + 5]]).wrapping_add(index);
        hdr[h.l3 + 4..h.l3 + 6].copy_from_slice(&id.to_be_bytes());
    }
    set_ip_length(hdr, h, frame_len);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp4() -> [u8; 54] {
        let mut f = [0u8; 54];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        f[14] = 0x45;
        f[16..18].copy_from_slice(&40u16.to_be_bytes());
        f[23] = 6;
        f[26..30].copy_from_slice(&[10, 0, 0, 1]);
        f[30..34].copy_from_slice(&[10, 0, 0, 2]);
        f[46] = 0x50;
        f
    }

    #[test]
    fn checksum_is_the_same_whatever_the_pieces() {
        let data: [u8; 37] = core::array::from_fn(|i| (i * 37 + 11) as u8);
        let whole = checksum(&data);
        for cut in 0..data.len() {
            for cut2 in cut..data.len() {
                let mut c = Checksum::new();
                c.add(&data[..cut]);
                c.add(&data[cut..cut2]);
                c.add(&data[cut2..]);
                assert_eq!(c.finish(), whole, "{cut} {cut2}");
            }
        }
        // RFC 1071's example.
        assert_eq!(Checksum { sum: 0, odd: false }.finish(), 0xffff);
        assert_eq!(
            !checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
    }

    #[test]
    fn headers_are_found() {
        let f = tcp4();
        let h = parse(&f).unwrap();
        assert_eq!((h.l3, h.l4, h.payload), (14, 34, 54));
        assert_eq!(h.transport, Some(L4::Tcp));
        // Truncated: no.
        assert_eq!(parse(&f[..40]), None);
        // A fragment has no transport.
        let mut frag = f;
        frag[20] = 0x20;
        assert_eq!(parse(&frag).unwrap().transport, None);
        // Bad IHL.
        let mut bad = f;
        bad[14] = 0x44;
        assert_eq!(parse(&bad), None);
    }

    #[test]
    fn ipv4_header_checksum_round_trips() {
        let mut f = tcp4();
        let h = parse(&f).unwrap();
        fill_ipv4_header_checksum(&mut f, &h);
        assert!(ipv4_header_ok(&f, &h));
        f[22] ^= 1;
        assert!(!ipv4_header_ok(&f, &h));
    }
}
