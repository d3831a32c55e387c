//! The receive half of [`NetQueue`]: posting buffers, assembling packets from responses,
//! checking them and presenting them (see the `queue` module documentation).

use xen_abi::netif::{
    NetRxFlags, NetifExtraFlags, NetifExtraInfo, NetifExtraInfoGso, NetifExtraInfoHash,
    NetifRxRequest, NetifRxResponse, NETIF_RSP_DROPPED, NETIF_RSP_ERROR, XEN_NETIF_EXTRA_TYPE_GSO,
    XEN_NETIF_EXTRA_TYPE_HASH, XEN_NETIF_GSO_TYPE_TCPV4, XEN_NETIF_GSO_TYPE_TCPV6,
};
use xen_abi::types::GrantRef;
use zerocopy::{FromBytes, IntoBytes};

use crate::packet::{self, Ip, L4, MAX_HEADER};
use crate::platform::{Events, Grants, GuestMemory, Io, RingKind};
use crate::queue::{NetQueue, QueueError, QueueState, NONE16};
use crate::tx::{read_frame, TX_IDS};
use crate::types::{
    Cast, Fragment, RssHash, RssHashType, RxChecksum, RxFragment, RxPacket, RxVerdict, VlanTag,
    MAX_RX_SLOTS, PAGE_SIZE,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BufState {
    /// In the pool.
    Free,
    /// Granted and posted on the ring.
    Posted(GrantRef),
    /// Answered, grant ended; part of the packet being assembled.
    Assembling,
    /// Presented to the shell, which kept it.
    WithShell,
    /// The backend still mapped it when its grant was ended: never used again.
    Stuck,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct RxBuf {
    frame: u64,
    state: BufState,
}

impl RxBuf {
    pub(crate) const EMPTY: RxBuf = RxBuf::new(0);

    pub(crate) const fn new(frame: u64) -> Self {
        RxBuf {
            frame,
            state: BufState::Free,
        }
    }

    pub(crate) fn is_with_shell(&self) -> bool {
        self.state == BufState::WithShell
    }
}

/// The packet being assembled from responses (it may span several polls).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Assembly {
    active: bool,
    frags: [RxFragment; MAX_RX_SLOTS],
    nfrags: usize,
    slots: usize,
    first_flags: NetRxFlags,
    extras_pending: bool,
    more_data: bool,
    gso: Option<(u8, u16)>,
    hash: Option<(u8, u32)>,
    /// The first bad response of the packet.
    bad: Option<QueueError>,
    /// The backend reported an error for a slot of the packet.
    backend_error: bool,
}

impl Assembly {
    pub(crate) const EMPTY: Assembly = Assembly {
        active: false,
        frags: [RxFragment {
            buffer: 0,
            frame: 0,
            offset: 0,
            length: 0,
        }; MAX_RX_SLOTS],
        nfrags: 0,
        slots: 0,
        first_flags: NetRxFlags::empty(),
        extras_pending: false,
        more_data: false,
        gso: None,
        hash: None,
        bad: None,
        backend_error: false,
    };
}

/// Flags a receive response may carry (`NETRXF_gso_prefix` is never asked for).
const KNOWN_RX_FLAGS: u16 = NetRxFlags::DATA_VALIDATED.bits()
    | NetRxFlags::CSUM_BLANK.bits()
    | NetRxFlags::MORE_DATA.bits()
    | NetRxFlags::EXTRA_INFO.bits();

fn as_fragments(rx: &[RxFragment], out: &mut [Fragment; MAX_RX_SLOTS]) -> usize {
    for (o, f) in out.iter_mut().zip(rx) {
        *o = Fragment {
            frame: f.frame,
            offset: f.offset,
            length: f.length,
        };
    }
    rx.len()
}

/// Writes `data` at byte `pos` of the packet held in `frags`.
fn write_frame<M: GuestMemory>(mem: &mut M, frags: &[Fragment], pos: usize, data: &[u8]) {
    let mut at = 0usize;
    let mut done = 0usize;
    for f in frags {
        let len = usize::from(f.length);
        let want = pos + done;
        if done == data.len() {
            break;
        }
        if want < at + len {
            let from = want - at;
            let n = (len - from).min(data.len() - done);
            mem.write(f.frame, usize::from(f.offset) + from, &data[done..done + n]);
            done += n;
        }
        at += len;
    }
}

impl<const PENDING: usize, const POOL: usize, const RXB: usize> NetQueue<PENDING, POOL, RXB> {
    /// Gives back buffers the shell kept ([`RxVerdict::Keep`]); they are posted again. Returns
    /// how many were the shell's (others are ignored).
    pub fn return_buffers<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        buffers: &[u16],
        io: &mut Io<'_, G, N, M>,
    ) -> usize {
        let mut n = 0;
        for &b in buffers {
            if let Some(buf) = self.bufs.get_mut(usize::from(b)) {
                if buf.state == BufState::WithShell {
                    buf.state = BufState::Free;
                    n += 1;
                }
            }
        }
        self.refill(io);
        n
    }

    /// Posts free buffers while the ring has room.
    pub(crate) fn refill<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        io: &mut Io<'_, G, N, M>,
    ) {
        if self.state != QueueState::Running {
            return;
        }
        let Some(ring) = self.rx_ring.as_mut() else {
            return;
        };
        let mut pushed = false;
        for (b, buf) in self.bufs.iter_mut().enumerate() {
            if ring.free_requests() == 0 {
                break;
            }
            if buf.state != BufState::Free {
                continue;
            }
            let gref = match io.grants.grant(self.backend, buf.frame, false) {
                Ok(g) => g,
                Err(_) => {
                    self.counters.grant_shortages += 1;
                    break;
                }
            };
            let pos = ring.req_prod_pvt() as usize & (TX_IDS - 1);
            let req = NetifRxRequest {
                id: b as u16,
                pad: 0,
                gref,
            };
            if ring.push_request(&req).is_err() {
                let _ = io.grants.end(gref);
                break;
            }
            self.rx_at[pos] = b as u16;
            buf.state = BufState::Posted(gref);
            self.rx_posted += 1;
            pushed = true;
        }
        if pushed && ring.push_requests_and_check_notify() {
            io.events.notify(usize::from(self.index), RingKind::Rx);
        }
    }

    /// Takes the receive responses and presents finished packets, then refills: the receive
    /// channel's handler with split event channels ([`poll`](Self::poll) does both).
    pub fn poll_rx<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        io: &mut Io<'_, G, N, M>,
        mut deliver: impl FnMut(&RxPacket<'_>) -> RxVerdict,
    ) {
        if self.state != QueueState::Running {
            return;
        }
        loop {
            let Some(ring) = self.rx_ring.as_mut() else {
                return;
            };
            let pos = ring.rsp_cons() as usize & (TX_IDS - 1);
            let rsp = match ring.take_response() {
                Ok(Some(r)) => r,
                Ok(None) => match ring.final_check_for_responses() {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(e) => return self.fail(io, QueueError::Ring(e)),
                },
                Err(e) => return self.fail(io, QueueError::Ring(e)),
            };
            self.rx_response(io, pos, rsp, &mut deliver);
            if self.state != QueueState::Running {
                return;
            }
        }
        self.refill(io);
    }

    /// Marks the packet being assembled bad (the first reason is kept) and counts it.
    fn bad<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        io: &mut Io<'_, G, N, M>,
        error: QueueError,
    ) {
        if self.assembly.bad.is_none() {
            self.assembly.bad = Some(error);
        }
        self.violation(io, error);
    }

    fn rx_response<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        io: &mut Io<'_, G, N, M>,
        pos: usize,
        rsp: NetifRxResponse,
        deliver: &mut impl FnMut(&RxPacket<'_>) -> RxVerdict,
    ) {
        // The buffer posted at this position leaves the ring whatever the response says.
        let b = self.rx_at[pos];
        self.rx_at[pos] = NONE16;
        let mut have_buffer = false;
        if let Some(buf) = self.bufs.get(usize::from(b)) {
            if let BufState::Posted(gref) = buf.state {
                self.rx_posted -= 1;
                if self.end_grant(io, gref) {
                    self.bufs[usize::from(b)].state = BufState::Assembling;
                    have_buffer = true;
                } else {
                    self.bufs[usize::from(b)].state = BufState::Stuck;
                }
            }
        }
        let release = |q: &mut Self| {
            if have_buffer {
                q.bufs[usize::from(b)].state = BufState::Free;
            }
        };

        if self.assembly.active && self.assembly.extras_pending {
            release(self);
            self.assembly.slots += 1;
            let extra = NetifExtraInfo::read_from_bytes(rsp.as_bytes()).unwrap_or(NetifExtraInfo {
                extra_type: 0,
                flags: 0,
                pad: [0; 3],
            });
            match extra.extra_type {
                XEN_NETIF_EXTRA_TYPE_GSO if self.assembly.gso.is_none() => {
                    if let Ok(g) = NetifExtraInfoGso::read_from_bytes(rsp.as_bytes()) {
                        self.assembly.gso = Some((g.gso_type, g.size));
                    }
                }
                XEN_NETIF_EXTRA_TYPE_HASH if self.assembly.hash.is_none() => {
                    if let Ok(h) = NetifExtraInfoHash::read_from_bytes(rsp.as_bytes()) {
                        self.assembly.hash = Some((h.hash_type, h.hash_value()));
                    }
                }
                t => self.bad(io, QueueError::RxBadExtra { extra_type: t }),
            }
            self.assembly.extras_pending =
                NetifExtraFlags::from_bits_retain(extra.flags).contains(NetifExtraFlags::MORE);
            if self.assembly.slots > MAX_RX_SLOTS {
                self.bad(io, QueueError::RxTooManySlots);
            }
        } else {
            let first = !self.assembly.active;
            if first {
                self.assembly = Assembly::EMPTY;
                self.assembly.active = true;
            }
            self.assembly.slots += 1;
            if !have_buffer {
                self.bad(io, QueueError::RxNoBuffer);
            } else if rsp.id != b {
                self.bad(
                    io,
                    QueueError::RxWrongId {
                        expected: b,
                        got: rsp.id,
                    },
                );
            }
            let flags = NetRxFlags::from_bits_retain(rsp.flags);
            if rsp.flags & !KNOWN_RX_FLAGS != 0
                || (!first && flags.contains(NetRxFlags::EXTRA_INFO))
            {
                self.bad(io, QueueError::RxBadFlags { flags: rsp.flags });
            }
            let mut keep = false;
            if rsp.status < 0 {
                if matches!(rsp.status, NETIF_RSP_ERROR | NETIF_RSP_DROPPED) {
                    self.assembly.backend_error = true;
                } else {
                    self.bad(io, QueueError::RxBadStatus { status: rsp.status });
                }
            } else {
                let size = rsp.status as u16;
                if usize::from(rsp.offset) + usize::from(size) > PAGE_SIZE {
                    self.bad(
                        io,
                        QueueError::RxOutOfPage {
                            offset: rsp.offset,
                            size,
                        },
                    );
                } else if self.assembly.slots > MAX_RX_SLOTS {
                    self.bad(io, QueueError::RxTooManySlots);
                } else if size > 0 && have_buffer && self.assembly.bad.is_none() {
                    let a = &mut self.assembly;
                    a.frags[a.nfrags] = RxFragment {
                        buffer: b,
                        frame: self.bufs[usize::from(b)].frame,
                        offset: rsp.offset,
                        length: size,
                    };
                    a.nfrags += 1;
                    keep = true;
                }
            }
            if !keep {
                release(self);
            }
            if first {
                self.assembly.first_flags = flags;
                self.assembly.extras_pending = flags.contains(NetRxFlags::EXTRA_INFO);
            }
            self.assembly.more_data = flags.contains(NetRxFlags::MORE_DATA);
        }
        if self.state == QueueState::Running
            && !self.assembly.extras_pending
            && !self.assembly.more_data
        {
            self.complete_rx(io, deliver);
        }
    }

    fn free_assembly(&mut self) {
        let a = self.assembly;
        for f in &a.frags[..a.nfrags] {
            self.bufs[usize::from(f.buffer)].state = BufState::Free;
        }
        self.assembly = Assembly::EMPTY;
    }

    /// A packet's last response arrived: check it, fill a blank checksum, present it.
    fn complete_rx<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        io: &mut Io<'_, G, N, M>,
        deliver: &mut impl FnMut(&RxPacket<'_>) -> RxVerdict,
    ) {
        let mut a = self.assembly;
        if a.bad.is_some() || a.backend_error {
            self.counters.rx.errors += 1;
            return self.free_assembly();
        }
        let mut frags = [Fragment::default(); MAX_RX_SLOTS];
        let n = as_fragments(&a.frags[..a.nfrags], &mut frags);
        let frags = &frags[..n];
        let total: usize = frags.iter().map(|f| usize::from(f.length)).sum();
        if total < packet::ETH_HEADER {
            self.violation(
                io,
                QueueError::RxRunt {
                    length: total as u32,
                },
            );
            self.counters.rx.errors += 1;
            return self.free_assembly();
        }
        let mut hdr = [0u8; MAX_HEADER];
        let hn = total.min(MAX_HEADER);
        read_frame(&*io.memory, frags, 0, &mut hdr[..hn]);
        let headers = packet::parse(&hdr[..hn]);
        let mut coalesced = 0u16;
        let mut mss = 0u16;
        if let Some((gso_type, size)) = a.gso {
            let ok = match headers {
                Some(h) if h.transport == Some(L4::Tcp) && size > 0 => {
                    matches!(
                        (gso_type, h.ip),
                        (XEN_NETIF_GSO_TYPE_TCPV4, Ip::V4) | (XEN_NETIF_GSO_TYPE_TCPV6, Ip::V6)
                    )
                }
                _ => false,
            };
            if !ok {
                self.violation(io, QueueError::RxBadGso { gso_type, size });
                self.counters.rx.errors += 1;
                return self.free_assembly();
            }
            let payload = total - headers.map_or(total, |h| h.payload);
            coalesced = payload
                .div_ceil(usize::from(size))
                .clamp(1, usize::from(u16::MAX)) as u16;
            mss = size;
        }
        let hash = match a.hash {
            None => None,
            Some((t, value)) => {
                let hash_type = match t {
                    0 => RssHashType::Ipv4,
                    1 => RssHashType::TcpIpv4,
                    2 => RssHashType::Ipv6,
                    3 => RssHashType::TcpIpv6,
                    _ => {
                        self.violation(io, QueueError::RxBadHash { hash_type: t });
                        self.counters.rx.errors += 1;
                        return self.free_assembly();
                    }
                };
                Some(RssHash { value, hash_type })
            }
        };
        let mut checksum = RxChecksum::default();
        let mut filled = false;
        if let Some(h) = headers {
            if h.ip == Ip::V4 {
                checksum.ipv4_header = Some(packet::ipv4_header_ok(&hdr, &h));
            }
            let validated = a.first_flags.contains(NetRxFlags::DATA_VALIDATED)
                || a.first_flags.contains(NetRxFlags::CSUM_BLANK);
            if let (Some(l4), true) = (h.transport, validated) {
                if a.first_flags.contains(NetRxFlags::CSUM_BLANK) {
                    fill_checksum(&mut *io.memory, frags, &hdr, &h, l4, total);
                    filled = true;
                }
                match l4 {
                    L4::Tcp => checksum.tcp = Some(true),
                    L4::Udp => checksum.udp = Some(true),
                }
            }
        }
        if a.first_flags.contains(NetRxFlags::CSUM_BLANK) && !filled {
            // A blank checksum the core cannot fill: the packet is unusable.
            self.counters.rx.errors += 1;
            return self.free_assembly();
        }
        let cast = Cast::of(&[hdr[0], hdr[1], hdr[2], hdr[3], hdr[4], hdr[5]]);
        let mut vlan = None;
        let mut length = total;
        if self.strip_vlan
            && u16::from_be_bytes([hdr[12], hdr[13]]) == packet::ETHERTYPE_VLAN
            && a.frags[0].length >= 18
        {
            vlan = Some(VlanTag::from_tci(u16::from_be_bytes([hdr[14], hdr[15]])));
            let f = &mut a.frags[0];
            io.memory
                .write(f.frame, usize::from(f.offset) + 4, &hdr[..12]);
            f.offset += 4;
            f.length -= 4;
            length -= 4;
        }
        let pkt = RxPacket {
            queue: self.index,
            fragments: &a.frags[..a.nfrags],
            length: length as u32,
            checksum,
            hash,
            coalesced_segments: coalesced,
            mss,
            vlan,
            cast,
            low_resources: self.rx_posted < RXB / 4,
        };
        let verdict = deliver(&pkt);
        let state = match verdict {
            RxVerdict::Keep => BufState::WithShell,
            RxVerdict::Done => BufState::Free,
        };
        for f in &a.frags[..a.nfrags] {
            self.bufs[usize::from(f.buffer)].state = state;
        }
        self.assembly = Assembly::EMPTY;
        self.counters.rx.count(cast, length as u64);
        if filled {
            self.counters.rx_checksum_filled += 1;
        }
        if a.gso.is_some() {
            self.counters.rx_coalesced += 1;
        }
    }

    /// At disconnect: posted buffers' grants are ended, they and a half-assembled packet's
    /// buffers return to the pool; the shell's stay the shell's.
    pub(crate) fn release_rx<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        io: &mut Io<'_, G, N, M>,
    ) {
        self.free_assembly();
        for b in 0..RXB {
            if let BufState::Posted(gref) = self.bufs[b].state {
                self.bufs[b].state = if self.end_grant(io, gref) {
                    BufState::Free
                } else {
                    BufState::Stuck
                };
            }
        }
        self.rx_posted = 0;
        self.rx_at = [NONE16; TX_IDS];
    }
}

/// Computes the transport checksum of a received packet whose checksum field is blank and
/// stores it. The field's content is not trusted: it is zeroed and the sum computed from the
/// pseudo-header and the segment.
fn fill_checksum<M: GuestMemory>(
    mem: &mut M,
    frags: &[Fragment],
    hdr: &[u8],
    h: &packet::Headers,
    l4: L4,
    total: usize,
) {
    let at = h.l4 + packet::checksum_field(l4);
    write_frame(mem, frags, at, &[0, 0]);
    let mut c = packet::pseudo_header(hdr, h, packet::proto(l4), (total - h.l4) as u32);
    let mut chunk = [0u8; 512];
    let mut pos = h.l4;
    while pos < total {
        let n = (total - pos).min(chunk.len());
        read_frame(&*mem, frags, pos, &mut chunk[..n]);
        c.add(&chunk[..n]);
        pos += n;
    }
    let v = packet::transport_checksum_value(l4, c.finish());
    write_frame(mem, frags, at, &v.to_be_bytes());
}
