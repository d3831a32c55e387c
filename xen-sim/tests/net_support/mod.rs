//! Shared pieces of the network tests: a frontend (xennet-core) over the model, connected to the
//! model's netback, plus an independent reading of the packet formats: frame builders, checksum
//! checks and a reference TCP segmentation.
#![allow(dead_code)]

use xen_abi::event_channel::{EvtchnAllocUnbound, EvtchnSend};
use xen_abi::types::EvtchnPort;
use xen_ring::RingMemory;
use xen_sim::netback::{NetFeatures, Netback, QueueRefs};
use xen_sim::{SimEvtchnOps, SimGrantEntries, Xen};
use xennet_core::negotiate::Side;
use xennet_core::{
    BackendFeatures, Events, Fragment, FrontendConfig, Io, LogEvent, NetConfig, Netfront, RingKind,
    RingPages, RxPacket, RxVerdict, SubmitError, Tag, TxCompletion, TxOffload, TxPacket,
};
use xenpci_core::evtchn::EventChannelOps;
use xenpci_core::grant_table::{GrantLink, GrantTable};

pub const QUEUES: usize = 4;
pub const PENDING: usize = 32;
pub const POOL: usize = 32;
pub const RXB: usize = 64;
pub type Front = Netfront<QUEUES, PENDING, POOL, RXB>;

/// Guest memory of the simulated host.
pub struct SimMem(pub Xen);

impl xennet_core::GuestMemory for SimMem {
    fn read(&self, frame: u64, offset: usize, buf: &mut [u8]) {
        assert!(offset + buf.len() <= 4096, "read past the page");
        self.0.read_guest(frame, offset, buf).unwrap();
    }
    fn write(&mut self, frame: u64, offset: usize, data: &[u8]) {
        assert!(offset + data.len() <= 4096, "write past the page");
        self.0.write_guest(frame, offset, data).unwrap();
    }
}

/// The guest ends of the event channels: a real `EVTCHNOP_send` per notification.
pub struct SimEvents {
    pub ops: SimEvtchnOps,
    /// `(tx, rx)` per queue (the same port twice without split channels).
    pub ports: Vec<(EvtchnPort, EvtchnPort)>,
    pub notifies: Vec<(usize, RingKind)>,
    pub log: Vec<LogEvent>,
}

impl Events for SimEvents {
    fn notify(&mut self, queue: usize, ring: RingKind) {
        let (tx, rx) = self.ports[queue];
        let port = if ring == RingKind::Tx { tx } else { rx };
        self.notifies.push((queue, ring));
        self.ops.send(&EvtchnSend { port }).unwrap();
    }
    fn log(&mut self, event: LogEvent) {
        self.log.push(event);
    }
}

/// A received packet, copied out.
#[derive(Clone, Debug)]
pub struct Received {
    pub queue: u16,
    pub data: Vec<u8>,
    pub tcp_ok: Option<bool>,
    pub udp_ok: Option<bool>,
    pub ipv4_ok: Option<bool>,
    pub coalesced: u16,
    pub mss: u16,
    pub hash: Option<xennet_core::RssHash>,
    pub vlan: Option<xennet_core::VlanTag>,
    pub buffers: Vec<u16>,
    pub low_resources: bool,
}

pub struct Harness {
    pub xen: Xen,
    pub grants: GrantTable<'static, SimGrantEntries>,
    pub grants_free_at_start: u32,
    pub ev: SimEvents,
    pub mem: SimMem,
    pub front: Box<Front>,
    pub back: Netback,
    pub cfg: FrontendConfig,
    /// Each queue's ring memories and frames, kept in step with the model around backend steps.
    pub rings: Vec<(RingMemory, u64)>,
    /// Data pages for test frames, used in turn.
    pub data: Vec<u64>,
    pub next_page: std::cell::Cell<usize>,
    pub done: Vec<TxCompletion>,
    pub received: Vec<Received>,
    /// Keep received buffers instead of giving them back at once.
    pub keep: bool,
}

pub fn parse_features(back: &Netback) -> BackendFeatures {
    let nodes = back.nodes();
    BackendFeatures::parse(|side, node, buf| {
        let v = match side {
            Side::Frontend if node == "mac" => Some(back.features().mac_text()),
            Side::Frontend => None,
            Side::Backend => nodes
                .iter()
                .find(|(k, _)| *k == node)
                .map(|(_, v)| v.clone()),
        };
        Ok(v.map(|v| {
            buf[..v.len()].copy_from_slice(v.as_bytes());
            v.len()
        }))
    })
    .unwrap()
}

impl Harness {
    pub fn new(features: NetFeatures, cfg: FrontendConfig) -> Self {
        Self::with_config(features, cfg, NetConfig::default())
    }

    pub fn with_config(features: NetFeatures, cfg: FrontendConfig, net: NetConfig) -> Self {
        let mut h = Self::unconnected(features, cfg, net);
        h.connect();
        h
    }

    /// Everything set up but the connection (for the xenbus handshake tests).
    pub fn unconnected(features: NetFeatures, cfg: FrontendConfig, net: NetConfig) -> Self {
        let xen = Xen::default();
        xen.set_grant_frames(8).unwrap();
        let capacity = xen.grant_entries().capacity();
        let links: &'static [GrantLink] =
            Box::leak(xen_sim::grant_links(capacity as usize).into_boxed_slice());
        let grants = GrantTable::new(xen.grant_entries(), links, capacity).unwrap();
        let grants_free_at_start = grants.free_count();
        let pool: [[u64; POOL]; QUEUES] =
            core::array::from_fn(|_| core::array::from_fn(|_| xen.alloc_page()));
        let rx: [[u64; RXB]; QUEUES] =
            core::array::from_fn(|_| core::array::from_fn(|_| xen.alloc_page()));
        let data = (0..96).map(|_| xen.alloc_page()).collect();
        // Built where it lives, as the shell does.
        let mut front = Box::new(Front::EMPTY);
        front.init(net, &pool, &rx);
        let back = Netback::new(xen.dom0(), features);
        Harness {
            ev: SimEvents {
                ops: xen.evtchn_ops(),
                ports: Vec::new(),
                notifies: Vec::new(),
                log: Vec::new(),
            },
            mem: SimMem(xen.clone()),
            xen,
            grants,
            grants_free_at_start,
            front,
            back,
            cfg,
            rings: Vec::new(),
            data,
            next_page: std::cell::Cell::new(0),
            done: Vec::new(),
            received: Vec::new(),
            keep: false,
        }
    }

    pub fn alloc_port(&self) -> EvtchnPort {
        let mut arg = EvtchnAllocUnbound {
            dom: self.xen.guest_domid(),
            remote_dom: 0,
            port: 0,
        };
        self.xen.evtchn_ops().alloc_unbound(&mut arg).unwrap();
        arg.port
    }

    /// Negotiate, attach, connect the backend, post buffers.
    pub fn connect(&mut self) {
        let feat = parse_features(&self.back);
        let params = self.front.negotiate(&self.cfg, &feat).unwrap();
        let mut pages = Vec::new();
        self.rings.clear();
        for _ in 0..params.queues {
            let tx = (RingMemory::allocate(0).unwrap(), self.xen.alloc_page());
            let rx = (RingMemory::allocate(0).unwrap(), self.xen.alloc_page());
            self.rings.push((tx.0.clone(), tx.1));
            self.rings.push((rx.0.clone(), rx.1));
            pages.push(RingPages { tx, rx });
        }
        let mut io = Io::new(&mut self.grants, &mut self.ev, &mut self.mem);
        self.front.attach(pages, &mut io).unwrap();
        let mut refs = [(0, 0); QUEUES];
        let n = self.front.ring_refs(&mut refs);
        assert_eq!(n, params.queues as usize);
        self.ev.ports.clear();
        let dom0 = self.xen.dom0();
        let mut qrefs = Vec::new();
        for r in &refs[..n] {
            let tx = self.alloc_port();
            let rx = if params.split_event_channels {
                self.alloc_port()
            } else {
                tx
            };
            self.ev.ports.push((tx, rx));
            let btx = dom0.bind_interdomain(self.xen.guest_domid(), tx).unwrap();
            let brx = if params.split_event_channels {
                dom0.bind_interdomain(self.xen.guest_domid(), rx).unwrap()
            } else {
                btx
            };
            qrefs.push(QueueRefs {
                tx_ring: r.0,
                rx_ring: r.1,
                tx_port: Some(btx),
                rx_port: Some(brx),
            });
        }
        self.ring_to_sim();
        self.back.connect(&qrefs).unwrap();
        let mut io = Io::new(&mut self.grants, &mut self.ev, &mut self.mem);
        self.front.connected(&mut io);
        self.front
            .set_backend_state(xen_abi::xenbus::XenbusState::Connected);
        self.run();
    }

    pub fn ring_to_sim(&self) {
        for (mem, frame) in &self.rings {
            let mut page = vec![0; 4096];
            mem.read_bytes(0, &mut page).unwrap();
            self.xen.write_guest(*frame, 0, &page).unwrap();
        }
    }

    pub fn ring_from_sim(&self) {
        for (mem, frame) in &self.rings {
            let mut page = vec![0; 4096];
            self.xen.read_guest(*frame, 0, &mut page).unwrap();
            mem.write_bytes(0, &page).unwrap();
        }
    }

    /// One backend pass.
    pub fn serve(&mut self) -> (usize, usize) {
        self.ring_to_sim();
        let r = self.back.serve().unwrap();
        self.ring_from_sim();
        r
    }

    pub fn release_held(&mut self) -> usize {
        self.ring_to_sim();
        let n = self.back.release_held().unwrap();
        self.ring_from_sim();
        n
    }

    /// Polls every queue, copying received packets out: with split event channels each ring on
    /// its own (as its channel's handler does), otherwise both in one call.
    pub fn poll(&mut self) {
        let keep = self.keep;
        let split = self.front.params().is_some_and(|p| p.split_event_channels);
        let mut io = Io::new(&mut self.grants, &mut self.ev, &mut self.mem);
        let done = &mut self.done;
        let received = &mut self.received;
        let xen = self.xen.clone();
        let mut deliver = |p: &RxPacket<'_>| {
            received.push(copy_packet(&xen, p));
            if keep {
                RxVerdict::Keep
            } else {
                RxVerdict::Done
            }
        };
        for q in self.front.queues_mut() {
            if split {
                q.poll_tx(&mut io, |c| done.push(c));
                q.poll_rx(&mut io, &mut deliver);
            } else {
                q.poll(&mut io, |c| done.push(c), &mut deliver);
            }
        }
    }

    /// Serves and polls until nothing moves.
    pub fn run(&mut self) {
        for _ in 0..200 {
            let (t, g) = self.serve();
            let before = (self.done.len(), self.received.len());
            self.poll();
            if t == 0 && g == 0 && before == (self.done.len(), self.received.len()) {
                let (t, g) = self.serve();
                if t == 0 && g == 0 {
                    return;
                }
                self.poll();
            }
        }
        panic!("no progress");
    }

    /// Lays `frame` out in the data pages as `layout` says (pairs of offset in page and length;
    /// the rest of the frame goes in one more fragment) and returns the fragments.
    /// Pages are taken in turn, so the frames of a batch do not overlap.
    pub fn lay_out(&self, frame: &[u8], layout: &[(u16, u16)]) -> Vec<Fragment> {
        let mut frags = Vec::new();
        let mut at = 0usize;
        let worst = layout.len() + frame.len().div_ceil(4096);
        if self.next_page.get() + worst > self.data.len() {
            self.next_page.set(0);
        }
        let mut page = self.next_page.get();
        for &(off, len) in layout {
            if at >= frame.len() {
                break;
            }
            let len = usize::from(len)
                .min(frame.len() - at)
                .min(4096 - usize::from(off));
            if len == 0 {
                continue;
            }
            self.xen
                .write_guest(self.data[page], off.into(), &frame[at..at + len])
                .unwrap();
            frags.push(Fragment {
                frame: self.data[page],
                offset: off,
                length: len as u16,
            });
            at += len;
            page += 1;
        }
        while at < frame.len() {
            let len = (frame.len() - at).min(4096);
            self.xen
                .write_guest(self.data[page], 0, &frame[at..at + len])
                .unwrap();
            frags.push(Fragment {
                frame: self.data[page],
                offset: 0,
                length: len as u16,
            });
            at += len;
            page += 1;
        }
        self.next_page.set(page);
        frags
    }

    pub fn submit(
        &mut self,
        queue: usize,
        tag: u64,
        frags: &[Fragment],
        offload: TxOffload,
    ) -> Result<(), SubmitError> {
        let mut io = Io::new(&mut self.grants, &mut self.ev, &mut self.mem);
        self.front.queue_mut(queue).unwrap().submit(
            &TxPacket {
                tag: Tag(tag),
                fragments: frags,
                offload,
            },
            &mut io,
        )
    }

    /// Sends `frame` (laid out in page-sized fragments) and runs until it completes.
    pub fn send(
        &mut self,
        queue: usize,
        tag: u64,
        frame: &[u8],
        offload: TxOffload,
    ) -> TxCompletion {
        let frags = self.lay_out(frame, &[]);
        self.submit(queue, tag, &frags, offload).unwrap();
        self.run();
        let i = self
            .done
            .iter()
            .position(|c| c.tag == Tag(tag))
            .expect("no completion");
        self.done.remove(i)
    }

    pub fn return_buffers(&mut self, queue: usize, buffers: &[u16]) -> usize {
        let mut io = Io::new(&mut self.grants, &mut self.ev, &mut self.mem);
        self.front
            .queue_mut(queue)
            .unwrap()
            .return_buffers(buffers, &mut io)
    }

    /// Disconnects the frontend and the backend; returns the completions.
    pub fn disconnect(&mut self) -> Vec<TxCompletion> {
        self.back.disconnect();
        let mut out = Vec::new();
        let mut io = Io::new(&mut self.grants, &mut self.ev, &mut self.mem);
        self.front.disconnect(&mut io, |c| out.push(c));
        out
    }

    /// Grants currently given out.
    pub fn grants_in_use(&self) -> u32 {
        self.grants_free_at_start - self.grants.free_count()
    }
}

fn copy_packet(xen: &Xen, p: &RxPacket<'_>) -> Received {
    let mut data = Vec::new();
    for f in p.fragments {
        assert!(usize::from(f.offset) + usize::from(f.length) <= 4096);
        let mut b = vec![0; f.length.into()];
        xen.read_guest(f.frame, f.offset.into(), &mut b).unwrap();
        data.extend_from_slice(&b);
    }
    assert_eq!(data.len(), p.length as usize);
    Received {
        queue: p.queue,
        data,
        tcp_ok: p.checksum.tcp,
        udp_ok: p.checksum.udp,
        ipv4_ok: p.checksum.ipv4_header,
        coalesced: p.coalesced_segments,
        mss: p.mss,
        hash: p.hash,
        vlan: p.vlan,
        buffers: p.fragments.iter().map(|f| f.buffer).collect(),
        low_resources: p.low_resources,
    }
}

// ---------------------------------------------------------------------------------------------
// Frames, checksums and segmentation, written independently of the core.

pub const SRC_MAC: [u8; 6] = [0x00, 0x16, 0x3e, 0x12, 0x34, 0x56];
pub const DST_MAC: [u8; 6] = [0x00, 0x16, 0x3e, 0xab, 0xcd, 0xef];

fn sum16(data: &[u8]) -> u32 {
    let mut s = 0u32;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u32::from(c[0]) << 8 | u32::from(c[1])
        } else {
            u32::from(c[0]) << 8
        };
        s = s.wrapping_add(w);
    }
    s
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// Where a test frame's headers are: (IP version, IP offset, transport offset, protocol).
pub fn layout_of(frame: &[u8]) -> (u8, usize, usize, u8) {
    let mut l3 = 14;
    let mut et = u16::from_be_bytes([frame[12], frame[13]]);
    if et == 0x8100 {
        et = u16::from_be_bytes([frame[16], frame[17]]);
        l3 = 18;
    }
    if et == 0x0800 {
        let ihl = usize::from(frame[l3] & 15) * 4;
        (4, l3, l3 + ihl, frame[l3 + 9])
    } else {
        (6, l3, l3 + 40, frame[l3 + 6])
    }
}

/// The pseudo-header sum (not folded) of a frame's transport segment.
pub fn pseudo(frame: &[u8]) -> u32 {
    let (v, l3, l4, proto) = layout_of(frame);
    let len = (frame.len() - l4) as u32;
    if v == 4 {
        sum16(&frame[l3 + 12..l3 + 20]) + u32::from(proto) + len
    } else {
        sum16(&frame[l3 + 8..l3 + 40]) + (len >> 16) + (len & 0xffff) + u32::from(proto)
    }
}

/// Whether a frame's IPv4 header checksum and transport checksum are right.
pub fn checksums_ok(frame: &[u8]) -> bool {
    let (v, l3, l4, _) = layout_of(frame);
    if v == 4 && fold(sum16(&frame[l3..l4])) != 0xffff {
        return false;
    }
    fold(pseudo(frame) + sum16(&frame[l4..])) == 0xffff
}

/// Completes a blank checksum as a backend's NIC does: the field holds the pseudo-header sum,
/// the sum over the segment from the transport header is stored inverted. Returns whether the
/// field held the pseudo-header sum for the frame's length (Linux's `CHECKSUM_PARTIAL`).
pub fn complete_blank(frame: &mut [u8]) -> bool {
    let (_, _, l4, proto) = layout_of(frame);
    let at = l4 + if proto == 6 { 16 } else { 6 };
    let field = u16::from_be_bytes([frame[at], frame[at + 1]]);
    let pseudo_ok = field == fold(pseudo(frame));
    let mut v = !fold(sum16(&frame[l4..]));
    if proto == 17 && v == 0 {
        v = 0xffff;
    }
    frame[at..at + 2].copy_from_slice(&v.to_be_bytes());
    pseudo_ok
}

/// A TCP or UDP frame over IPv4 or IPv6 of `len` bytes (at least the headers), payload from
/// `seed`, a correct IPv4 header checksum, and a correct transport checksum unless `blank`
/// (then 0, as a sender asking for checksum offload leaves it).
pub fn frame(v6: bool, tcp: bool, len: usize, seed: u8, blank: bool) -> Vec<u8> {
    let l4 = if v6 { 54 } else { 34 };
    let hdr = l4 + if tcp { 20 } else { 8 };
    let len = len.max(hdr);
    let mut f = vec![0u8; len];
    f[..6].copy_from_slice(&DST_MAC);
    f[6..12].copy_from_slice(&SRC_MAC);
    let proto = if tcp { 6 } else { 17 };
    if v6 {
        f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
        f[14] = 0x60;
        f[18..20].copy_from_slice(&((len - 54) as u16).to_be_bytes());
        f[20] = proto;
        f[21] = 64;
        for i in 0..16 {
            f[22 + i] = 0x20 + i as u8;
            f[38 + i] = (0x40 + i as u8) ^ seed;
        }
    } else {
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        f[14] = 0x45;
        f[16..18].copy_from_slice(&((len - 14) as u16).to_be_bytes());
        f[18..20].copy_from_slice(&0x1234u16.to_be_bytes());
        f[20] = 0x40;
        f[22] = 64;
        f[23] = proto;
        f[26..30].copy_from_slice(&[10, 0, 0, 1]);
        f[30..34].copy_from_slice(&[10, 0, seed, 2]);
    }
    f[l4..l4 + 2].copy_from_slice(&40000u16.to_be_bytes());
    f[l4 + 2..l4 + 4].copy_from_slice(&80u16.to_be_bytes());
    if tcp {
        f[l4 + 4..l4 + 8].copy_from_slice(
            &0x0102_0304u32
                .wrapping_mul(u32::from(seed) + 1)
                .to_be_bytes(),
        );
        f[l4 + 12] = 0x50;
        f[l4 + 13] = 0x18 | 0x01 | 0x80; // PSH, ACK, FIN, CWR: all edited by segmentation
        f[l4 + 14..l4 + 16].copy_from_slice(&0xffffu16.to_be_bytes());
    } else {
        f[l4 + 4..l4 + 6].copy_from_slice(&((len - l4) as u16).to_be_bytes());
    }
    for (i, b) in f[hdr..].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8;
    }
    if blank {
        let (v, l3, l4, _) = layout_of(&f);
        if v == 4 {
            let c = !fold(sum16(&f[l3..l4]));
            f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        }
    } else {
        fill_checksums(&mut f);
    }
    f
}

/// Fills the IPv4 header checksum and the transport checksum.
pub fn fill_checksums(f: &mut [u8]) {
    let (v, l3, l4, proto) = layout_of(f);
    if v == 4 {
        f[l3 + 10..l3 + 12].fill(0);
        let c = !fold(sum16(&f[l3..l4]));
        f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
    }
    let at = l4 + if proto == 6 { 16 } else { 6 };
    f[at..at + 2].fill(0);
    let mut c = !fold(pseudo(f) + sum16(&f[l4..]));
    if proto == 17 && c == 0 {
        c = 0xffff;
    }
    f[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// Cuts a TCP frame into segments of at most `mss` payload bytes, as a NIC does for large send:
/// sequence numbers advanced, IPv4 id incremented, FIN/PSH on the last only, CWR on the first
/// only, lengths and all checksums recomputed.
pub fn reference_segments(big: &[u8], mss: usize) -> Vec<Vec<u8>> {
    let (v, l3, l4, _) = layout_of(big);
    let doff = usize::from(big[l4 + 12] >> 4) * 4;
    let hdr = l4 + doff;
    let payload = &big[hdr..];
    let n = payload.len().div_ceil(mss).max(1);
    let seq0 = u32::from_be_bytes(big[l4 + 4..l4 + 8].try_into().unwrap());
    let id0 = u16::from_be_bytes([big[l3 + 4], big[l3 + 5]]);
    (0..n)
        .map(|i| {
            let chunk = &payload[i * mss..((i + 1) * mss).min(payload.len())];
            let mut s = big[..hdr].to_vec();
            s.extend_from_slice(chunk);
            let len = s.len();
            s[l4 + 4..l4 + 8].copy_from_slice(&seq0.wrapping_add((i * mss) as u32).to_be_bytes());
            if i + 1 < n {
                s[l4 + 13] &= !0x09;
            }
            if i > 0 {
                s[l4 + 13] &= !0x80;
            }
            if v == 4 {
                s[l3 + 2..l3 + 4].copy_from_slice(&((len - l3) as u16).to_be_bytes());
                s[l3 + 4..l3 + 6].copy_from_slice(&id0.wrapping_add(i as u16).to_be_bytes());
            } else {
                s[l3 + 4..l3 + 6].copy_from_slice(&((len - l3 - 40) as u16).to_be_bytes());
            }
            fill_checksums(&mut s);
            s
        })
        .collect()
}
