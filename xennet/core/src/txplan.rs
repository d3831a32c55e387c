//! Planning a transmit packet: how it goes on the ring (copy-free, header copy, whole copy,
//! software segmentation), what happens to its checksums, and how many slots and copy pages it
//! needs. Pure functions of the packet, its first bytes and the negotiated parameters.

use xen_abi::netif::{XEN_NETIF_GSO_TYPE_TCPV4, XEN_NETIF_GSO_TYPE_TCPV6};

use crate::negotiate::FrontendParams;
use crate::packet::{self, Headers, Ip, L4, MAX_HEADER};
use crate::tx::TX_IDS;
use crate::types::{Cast, Fragment, InvalidPacket, TxOffload, PAGE_SIZE};

/// How a packet goes on the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Every fragment granted as it is.
    Direct,
    /// Headers copied and edited in a copy page; payload fragments granted as they are.
    Header,
    /// The whole (edited) frame copied into copy pages.
    Whole,
    /// A large send cut into segments in copy pages.
    Segment,
}

/// What happens to the transport checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum L4Sum {
    /// Left as the sender wrote it.
    Untouched,
    /// Left to the backend (`NETTXF_csum_blank`); the field holds the pseudo-header sum.
    Blank,
    /// Computed by the core.
    Software,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct TxPlan {
    pub(crate) mode: Mode,
    /// Bytes at the start of the original frame that are copied as headers (then edited).
    pub(crate) hdr_orig: u16,
    /// The tag control information to insert after the MAC addresses.
    pub(crate) vlan: Option<u16>,
    /// The frame's length on the wire (with an inserted tag).
    pub(crate) out_len: u32,
    /// The headers, in the coordinates of the frame on the wire, when an offload needs them.
    pub(crate) headers: Option<Headers>,
    pub(crate) l4: Option<L4>,
    pub(crate) l4_sum: L4Sum,
    pub(crate) ipv4_header: bool,
    /// Native GSO: the `XEN_NETIF_GSO_TYPE_*` and the MSS.
    pub(crate) gso: Option<(u8, u16)>,
    /// Software segmentation: the MSS.
    pub(crate) mss: u16,
    /// Ring slots (data and extra).
    pub(crate) slots: u16,
    /// Data slots (each with an id).
    pub(crate) data_slots: u16,
    /// Copy pages.
    pub(crate) pages: u8,
    pub(crate) cast: Cast,
    /// A large send's TCP payload bytes.
    pub(crate) lso_payload: u32,
}

/// The fragments' pieces covering bytes `[start, len)`: `(fragment index, offset in page,
/// length)`.
pub(crate) fn pieces(
    frags: &[Fragment],
    start: usize,
    mut f: impl FnMut(usize, u16, u16),
) -> usize {
    let mut at = 0usize;
    let mut n = 0;
    for (i, fr) in frags.iter().enumerate() {
        let len = usize::from(fr.length);
        if start < at + len {
            let skip = start.saturating_sub(at);
            f(i, fr.offset + skip as u16, (len - skip) as u16);
            n += 1;
        }
        at += len;
    }
    n
}

/// Lays netif packets of the given lengths out in copy pages, one after the other, moving a
/// packet that fits in a page but would straddle two to the next page. Calls `f(start, len)`
/// and returns the bytes used.
pub(crate) fn place(lens: impl Iterator<Item = usize>, mut f: impl FnMut(usize, usize)) -> usize {
    let mut pos = 0usize;
    for len in lens {
        let in_page = pos % PAGE_SIZE;
        if in_page != 0 && len <= PAGE_SIZE && in_page + len > PAGE_SIZE {
            pos += PAGE_SIZE - in_page;
        }
        f(pos, len);
        pos += len;
    }
    pos
}

pub(crate) fn pages_touched(start: usize, len: usize) -> usize {
    (start + len - 1) / PAGE_SIZE - start / PAGE_SIZE + 1
}

/// The lengths of the segments of a software large send.
pub(crate) fn segment_lens(hdr: usize, payload: usize, mss: usize) -> impl Iterator<Item = usize> {
    let segs = payload.div_ceil(mss).max(1);
    (0..segs).map(move |i| hdr + (payload - i * mss).min(mss))
}

/// Builds the first bytes of the frame as it goes on the wire: `hdr` with `vlan` inserted after
/// the MAC addresses. Returns the length.
pub(crate) fn out_header(hdr: &[u8], vlan: Option<u16>, out: &mut [u8; MAX_HEADER + 4]) -> usize {
    match vlan {
        Some(tci) if hdr.len() >= 12 => {
            out[..12].copy_from_slice(&hdr[..12]);
            out[12..14].copy_from_slice(&packet::ETHERTYPE_VLAN.to_be_bytes());
            out[14..16].copy_from_slice(&tci.to_be_bytes());
            out[16..16 + hdr.len() - 12].copy_from_slice(&hdr[12..]);
            hdr.len() + 4
        }
        _ => {
            out[..hdr.len()].copy_from_slice(hdr);
            hdr.len()
        }
    }
}

/// Decides how a packet of `len` bytes in `frags`, whose first bytes are `hdr`, goes on the
/// ring; refuses what can never be sent (a queue has `pool_pages` copy pages).
pub(crate) fn plan(
    params: &FrontendParams,
    pool_pages: usize,
    frags: &[Fragment],
    len: usize,
    offload: &TxOffload,
    hdr: &[u8],
) -> Result<TxPlan, InvalidPacket> {
    if len < packet::ETH_HEADER {
        return Err(InvalidPacket::TooShort);
    }
    let vlan = offload.vlan.map(|v| v.tci());
    let shift = if vlan.is_some() { 4 } else { 0 };
    let out_len = len + shift;
    let cs = offload.checksum;
    let wants_l4 = cs.tcp || cs.udp || offload.lso_mss.is_some();
    let mut out = [0u8; MAX_HEADER + 4];
    let out_n = out_header(hdr, vlan, &mut out);
    let headers = if wants_l4 || cs.ipv4_header {
        Some(packet::parse(&out[..out_n]).ok_or(InvalidPacket::Headers)?)
    } else {
        None
    };
    let l4 = headers.and_then(|h| h.transport);
    if (cs.tcp && l4 != Some(L4::Tcp))
        || (cs.udp && l4 != Some(L4::Udp))
        || (offload.lso_mss.is_some() && l4 != Some(L4::Tcp))
        || (cs.ipv4_header && headers.map(|h| h.ip) != Some(Ip::V4))
    {
        return Err(InvalidPacket::Headers);
    }
    let max_frame = if offload.lso_mss.is_some() {
        usize::from(u16::MAX)
    } else {
        params.mtu as usize + packet::ETH_HEADER + 4
    };
    if out_len > max_frame || out_len > usize::from(u16::MAX) {
        return Err(InvalidPacket::TooLong);
    }
    let mut plan = TxPlan {
        mode: Mode::Direct,
        hdr_orig: 0,
        vlan,
        out_len: out_len as u32,
        headers,
        l4,
        l4_sum: L4Sum::Untouched,
        ipv4_header: cs.ipv4_header,
        gso: None,
        mss: 0,
        slots: 0,
        data_slots: 0,
        pages: 0,
        cast: Cast::of(&[hdr[0], hdr[1], hdr[2], hdr[3], hdr[4], hdr[5]]),
        lso_payload: 0,
    };
    let native_csum = |ip: Ip| match ip {
        Ip::V4 => params.csum_ipv4,
        Ip::V6 => params.csum_ipv6,
    };
    if let (Some(h), Some(_)) = (headers, l4) {
        plan.hdr_orig = (h.payload - shift) as u16;
        plan.mode = Mode::Header;
        plan.l4_sum = if native_csum(h.ip) {
            L4Sum::Blank
        } else {
            L4Sum::Software
        };
        if !wants_l4 {
            plan.l4_sum = L4Sum::Untouched;
        }
        if let Some(mss) = offload.lso_mss {
            if mss == 0 {
                return Err(InvalidPacket::Mss);
            }
            let payload = out_len - h.payload;
            plan.lso_payload = payload as u32;
            let (native, gso_type) = match h.ip {
                Ip::V4 => (params.gso_tcpv4, XEN_NETIF_GSO_TYPE_TCPV4),
                Ip::V6 => (params.gso_tcpv6, XEN_NETIF_GSO_TYPE_TCPV6),
            };
            if payload > usize::from(mss) {
                if native {
                    plan.gso = Some((gso_type, mss));
                    plan.l4_sum = L4Sum::Blank;
                } else {
                    plan.mode = Mode::Segment;
                    plan.mss = mss;
                    plan.l4_sum = L4Sum::Software;
                }
            } else if out_len > params.mtu as usize + packet::ETH_HEADER + 4 {
                return Err(InvalidPacket::TooLong);
            }
        }
    } else if let Some(h) = headers {
        // IPv4 header checksum only.
        plan.hdr_orig = (h.l4 - shift) as u16;
        plan.mode = Mode::Header;
    } else if vlan.is_some() {
        plan.hdr_orig = 12;
        plan.mode = Mode::Header;
    }
    let max_slots = params.max_tx_slots();
    let extra = u16::from(plan.gso.is_some());
    match plan.mode {
        Mode::Direct => {
            if frags.len() <= max_slots {
                plan.data_slots = frags.len() as u16;
            } else {
                plan.mode = Mode::Whole;
            }
        }
        Mode::Header => {
            let data = 1 + pieces(frags, usize::from(plan.hdr_orig), |_, _, _| {});
            if data <= max_slots {
                plan.data_slots = data as u16;
                plan.pages = 1;
            } else {
                plan.mode = Mode::Whole;
            }
        }
        Mode::Whole | Mode::Segment => {}
    }
    match plan.mode {
        Mode::Whole => {
            let n = pages_touched(0, out_len);
            if n > max_slots {
                return Err(InvalidPacket::TooBig);
            }
            plan.data_slots = n as u16;
            plan.pages = out_len.div_ceil(PAGE_SIZE) as u8;
        }
        Mode::Segment => {
            let h = headers.ok_or(InvalidPacket::Headers)?;
            let mut data = 0usize;
            let mut too_many = false;
            let used = place(
                segment_lens(h.payload, out_len - h.payload, usize::from(plan.mss)),
                |start, len| {
                    let n = pages_touched(start, len);
                    too_many |= n > max_slots;
                    data += n;
                },
            );
            if too_many || data > TX_IDS {
                return Err(InvalidPacket::TooBig);
            }
            plan.data_slots = data as u16;
            plan.pages = used.div_ceil(PAGE_SIZE).min(255) as u8;
        }
        Mode::Direct | Mode::Header => {}
    }
    plan.slots = plan.data_slots + extra;
    if usize::from(plan.slots) > TX_IDS || usize::from(plan.pages) > pool_pages {
        return Err(InvalidPacket::TooBig);
    }
    Ok(plan)
}
