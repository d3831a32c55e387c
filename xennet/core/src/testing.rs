//! Test doubles and a scripted hostile backend (feature `test-utils`).
//!
//! [`TestMemory`] is guest memory in plain pages; [`TestGrants`] a grant table that checks its
//! rules (ending a reference it never gave, or twice, panics; a write by the backend into a
//! read-only grant panics; references run out at a limit); [`TestEvents`] counts notifications
//! and checks their queue. [`hostile_run`] drives one queue from a byte string — packets sent,
//! responses written by a backend that may be honest or anything else, polls, buffers returned,
//! reconnects — and checks after every step that no tag completes twice, no received fragment
//! leaves its page, no buffer is presented twice, and at the end that every grant is ended.

extern crate std;

use std::collections::{BTreeMap, BTreeSet};
use std::vec::Vec;

use xen_abi::netif::{NetifRxRequest, NetifTxRequest};
use xen_abi::types::{DomId, GrantRef};
use xen_ring::{RingIndex, RingMemory};
use xenpci_core::grant_table::{GrantError, Revocation};
use zerocopy::FromBytes;

use crate::negotiate::FrontendParams;
use crate::platform::{Events, Grants, GuestMemory, Io, LogEvent, RingKind};
use crate::queue::{NetQueue, QueueState};
use crate::types::{
    Fragment, MacAddress, RxVerdict, Tag, TxChecksum, TxOffload, TxPacket, PAGE_SIZE,
};

/// Guest memory in plain pages, created on first touch.
#[derive(Debug, Default)]
pub struct TestMemory {
    pages: BTreeMap<u64, Vec<u8>>,
}

impl TestMemory {
    fn page(&mut self, frame: u64) -> &mut Vec<u8> {
        self.pages
            .entry(frame)
            .or_insert_with(|| std::vec![0; PAGE_SIZE])
    }
}

impl GuestMemory for TestMemory {
    fn read(&self, frame: u64, offset: usize, buf: &mut [u8]) {
        assert!(offset + buf.len() <= PAGE_SIZE, "read past the page");
        match self.pages.get(&frame) {
            Some(p) => buf.copy_from_slice(&p[offset..offset + buf.len()]),
            None => buf.fill(0),
        }
    }

    fn write(&mut self, frame: u64, offset: usize, data: &[u8]) {
        assert!(offset + data.len() <= PAGE_SIZE, "write past the page");
        self.page(frame)[offset..offset + data.len()].copy_from_slice(data);
    }
}

/// A grant table that checks its rules.
#[derive(Debug, Default)]
pub struct TestGrants {
    live: BTreeMap<GrantRef, (u64, bool)>,
    next: GrantRef,
    /// The most references live at once (0: no limit).
    pub limit: usize,
    /// References the backend maps: ending them is deferred, and they are never reused.
    pub mapped: BTreeSet<GrantRef>,
}

impl TestGrants {
    /// References given and not ended.
    pub fn live(&self) -> usize {
        self.live.len()
    }

    /// The frame behind a live reference and whether it is read-only.
    pub fn lookup(&self, gref: GrantRef) -> Option<(u64, bool)> {
        self.live.get(&gref).copied()
    }
}

impl Grants for TestGrants {
    fn grant(&mut self, _domid: DomId, frame: u64, readonly: bool) -> Result<GrantRef, GrantError> {
        if self.limit != 0 && self.live.len() >= self.limit {
            return Err(GrantError::Exhausted);
        }
        self.next += 1;
        self.live.insert(self.next, (frame, readonly));
        Ok(self.next)
    }

    fn end(&mut self, gref: GrantRef) -> Result<Revocation, GrantError> {
        assert!(
            self.live.remove(&gref).is_some(),
            "ending reference {gref}, which is not granted"
        );
        if self.mapped.contains(&gref) {
            return Ok(Revocation::Deferred);
        }
        Ok(Revocation::Revoked)
    }
}

/// Events that count notifications and check their queue.
#[derive(Debug, Default)]
pub struct TestEvents {
    /// The queues that exist.
    pub queues: usize,
    /// Notifications sent.
    pub notifies: Vec<(usize, RingKind)>,
    /// Log events.
    pub log: Vec<LogEvent>,
}

impl Events for TestEvents {
    fn notify(&mut self, queue: usize, ring: RingKind) {
        assert!(queue < self.queues, "notify on queue {queue}");
        self.notifies.push((queue, ring));
    }
    fn log(&mut self, event: LogEvent) {
        self.log.push(event);
    }
}

/// The queue [`hostile_run`] drives.
pub type HostileQueue = NetQueue<8, 8, 16>;

struct Script<'a> {
    bytes: &'a [u8],
}

impl Script<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.bytes.split_first()?;
        self.bytes = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.byte()?, self.byte()?]))
    }
}

/// A TCP frame of `len` bytes (over IPv6 when `v6`), for the script.
pub fn tcp_frame(v6: bool, len: usize, seed: u8) -> Vec<u8> {
    let hdr = if v6 { 74 } else { 54 };
    let len = len.max(hdr);
    let mut f: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(13) ^ seed)
        .collect();
    f[..12].copy_from_slice(&[0, 1, 2, 3, 4, 5, 0, 0x16, 0x3e, 1, 2, 3]);
    let l4 = if v6 {
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        f[14] = 0x60;
        f[18..20].copy_from_slice(&((len - 54) as u16).to_be_bytes());
        f[20] = 6;
        54
    } else {
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&((len - 14) as u16).to_be_bytes());
        f[20] = 0x40;
        f[21] = 0;
        f[23] = 6;
        34
    };
    f[l4 + 12] = 0x50;
    f
}

struct Backend {
    tx: RingMemory,
    rx: RingMemory,
    tx_cons: u32,
    tx_prod: u32,
    rx_prod: u32,
    /// A transmit packet continues (more data or extra info pending) at `tx_cons`.
    extras_left: bool,
}

impl Backend {
    fn new(tx: RingMemory, rx: RingMemory) -> Self {
        Backend {
            tx,
            rx,
            tx_cons: 0,
            tx_prod: 0,
            rx_prod: 0,
            extras_left: false,
        }
    }

    fn tx_request(&self, idx: u32) -> NetifTxRequest {
        let mut b = [0u8; 12];
        let _ = self.tx.read_bytes(64 + (idx % 256) as usize * 12, &mut b);
        NetifTxRequest::read_from_bytes(&b).unwrap_or(NetifTxRequest {
            gref: 0,
            offset: 0,
            flags: 0,
            id: 0,
            size: 0,
        })
    }

    fn push_tx(&mut self, id: u16, status: i16) {
        let mut b = [0u8; 4];
        b[..2].copy_from_slice(&id.to_le_bytes());
        b[2..].copy_from_slice(&status.to_le_bytes());
        let _ = self
            .tx
            .write_bytes(64 + (self.tx_prod % 256) as usize * 12, &b);
        self.tx_prod = self.tx_prod.wrapping_add(1);
        self.tx.store_index(RingIndex::RspProd, self.tx_prod);
    }

    /// Answers every published transmit request honestly.
    fn answer_tx(&mut self) {
        let req_prod = self.tx.load_index(RingIndex::ReqProd);
        while self.tx_cons != req_prod && self.tx_prod.wrapping_sub(self.tx_cons) == 0 {
            let r = self.tx_request(self.tx_cons);
            self.tx_cons = self.tx_cons.wrapping_add(1);
            if self.extras_left {
                // An extra-info slot: NULL, and whether another follows.
                self.extras_left = r.gref & (1 << 8) != 0;
                self.push_tx(0, 1);
                continue;
            }
            self.extras_left = r.flags & 8 != 0;
            self.push_tx(r.id, 0);
        }
    }
}

/// What a [`hostile_run`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostileSummary {
    /// Packets accepted.
    pub accepted: usize,
    /// Completions.
    pub completed: usize,
    /// Packets presented.
    pub delivered: usize,
    /// Bad responses counted (over every connection).
    pub bad_responses: u64,
}

/// Runs the script `data` against one queue; panics if a rule is broken.
pub fn hostile_run(data: &[u8]) -> HostileSummary {
    let mut s = Script { bytes: data };
    let features = s.byte().unwrap_or(0);
    let params = FrontendParams {
        queues: 1,
        split_event_channels: false,
        sg: features & 1 != 0,
        gso_tcpv4: features & 3 == 3,
        gso_tcpv6: features & 5 == 5,
        csum_ipv4: features & 8 != 0,
        csum_ipv6: features & 16 != 0,
        mtu: 1500,
        mac: MacAddress([0, 0x16, 0x3e, 1, 2, 3]),
    };
    let mut mem = TestMemory::default();
    let mut grants = TestGrants {
        limit: if features & 32 != 0 { 12 } else { 0 },
        ..TestGrants::default()
    };
    let mut events = TestEvents {
        queues: 1,
        ..TestEvents::default()
    };
    let pool: [u64; 8] = core::array::from_fn(|i| 100 + i as u64);
    let rxf: [u64; 16] = core::array::from_fn(|i| 200 + i as u64);
    let mut q = std::boxed::Box::new(HostileQueue::new(0, 0, &pool, &rxf));
    let mut back = attach(&mut q, params, &mut grants, &mut events, &mut mem);
    let mut completed = BTreeSet::new();
    let mut accepted = BTreeSet::new();
    let mut with_shell: Vec<u16> = Vec::new();
    let mut next_tag = 0u64;
    let mut steps = 0;
    let mut delivered = 0usize;
    while let Some(op) = s.byte() {
        steps += 1;
        if steps > 400 {
            break;
        }
        match op % 8 {
            0 => {
                let len = usize::from(s.u16().unwrap_or(60));
                let shape = s.byte().unwrap_or(0);
                let frame = tcp_frame(shape & 1 != 0, 14 + len % 20000, shape);
                let nfrags = 1 + usize::from(shape >> 5);
                let mut frags = Vec::new();
                let per = frame.len().div_ceil(nfrags).min(PAGE_SIZE - 100);
                for (k, chunk) in frame.chunks(per).enumerate() {
                    let off = (usize::from(shape) * 7 + k * 13) % 100;
                    let fr = 1000 + next_tag * 32 + k as u64;
                    mem.write(fr, off, chunk);
                    frags.push(Fragment {
                        frame: fr,
                        offset: off as u16,
                        length: chunk.len() as u16,
                    });
                }
                let offload = TxOffload {
                    checksum: TxChecksum {
                        ipv4_header: shape & 2 != 0 && shape & 1 == 0,
                        tcp: shape & 4 != 0,
                        udp: false,
                    },
                    lso_mss: (shape & 8 != 0).then_some(1 + u16::from(shape) * 9),
                    vlan: None,
                };
                let tag = Tag(next_tag);
                next_tag += 1;
                let mut io = Io::new(&mut grants, &mut events, &mut mem);
                if q.submit(
                    &TxPacket {
                        tag,
                        fragments: &frags,
                        offload,
                    },
                    &mut io,
                )
                .is_ok()
                {
                    accepted.insert(tag);
                }
            }
            1 => back.answer_tx(),
            2 => {
                let id = s.u16().unwrap_or(0);
                let status = s.byte().unwrap_or(0) as i8;
                // Half the time an id that was really used.
                let id = if id & 1 == 0 {
                    back.tx_request(back.tx_cons.wrapping_sub(u32::from(id >> 1) % 4))
                        .id
                } else {
                    id >> 1
                };
                back.push_tx(id, i16::from(status));
            }
            3 => {
                let mut rsp = [0u8; 8];
                for b in &mut rsp {
                    *b = s.byte().unwrap_or(0);
                }
                let mut req = [0u8; 8];
                let at = 64 + (back.rx_prod % 256) as usize * 8;
                let _ = back.rx.read_bytes(at, &mut req);
                if let Ok(r) = NetifRxRequest::read_from_bytes(&req) {
                    if rsp[0] & 1 == 0 {
                        rsp[..2].copy_from_slice(&r.id.to_le_bytes());
                    }
                    // The backend copies into the granted page, which must be writable.
                    if let Some((frame, readonly)) = grants.lookup(r.gref) {
                        assert!(!readonly, "receive buffer granted read-only");
                        let fill = tcp_frame(rsp[2] & 1 != 0, 200, rsp[3]);
                        mem.write(frame, 0, &fill);
                    }
                }
                let _ = back.rx.write_bytes(at, &rsp);
                back.rx_prod = back.rx_prod.wrapping_add(1);
                back.rx.store_index(RingIndex::RspProd, back.rx_prod);
            }
            4 => {
                let v = u32::from(s.u16().unwrap_or(0));
                if v & 1 == 0 {
                    back.tx_prod = back.tx_prod.wrapping_add(v >> 8);
                    back.tx.store_index(RingIndex::RspProd, back.tx_prod);
                } else {
                    back.rx_prod = back.rx_prod.wrapping_add(v >> 8);
                    back.rx.store_index(RingIndex::RspProd, back.rx_prod);
                }
            }
            5 => {
                let keep = s.byte().unwrap_or(0);
                let mut io = Io::new(&mut grants, &mut events, &mut mem);
                q.poll(
                    &mut io,
                    |c| {
                        assert!(completed.insert(c.tag), "tag {:?} completed twice", c.tag);
                        assert!(accepted.contains(&c.tag), "tag {:?} never accepted", c.tag);
                    },
                    |p| {
                        let mut sum = 0u32;
                        for f in p.fragments {
                            assert!(usize::from(f.offset) + usize::from(f.length) <= PAGE_SIZE);
                            assert!(!with_shell.contains(&f.buffer), "buffer presented twice");
                            sum += u32::from(f.length);
                        }
                        assert_eq!(sum, p.length);
                        delivered += 1;
                        if keep & 1 != 0 {
                            with_shell.extend(p.fragments.iter().map(|f| f.buffer));
                            RxVerdict::Keep
                        } else {
                            RxVerdict::Done
                        }
                    },
                );
            }
            6 => {
                let mut io = Io::new(&mut grants, &mut events, &mut mem);
                q.return_buffers(&with_shell, &mut io);
                with_shell.clear();
            }
            _ => {
                let mut io = Io::new(&mut grants, &mut events, &mut mem);
                q.disconnect(&mut io, |c| {
                    assert!(completed.insert(c.tag), "tag {:?} completed twice", c.tag);
                });
                back = attach(&mut q, params, &mut grants, &mut events, &mut mem);
            }
        }
    }
    let mut io = Io::new(&mut grants, &mut events, &mut mem);
    q.disconnect(&mut io, |c| {
        assert!(completed.insert(c.tag), "tag {:?} completed twice", c.tag);
    });
    assert_eq!(grants.live(), 0, "grants left after disconnect");
    assert_eq!(q.state(), QueueState::Idle);
    // Every accepted packet either completed or waits for the next connection.
    assert_eq!(accepted.len(), completed.len() + q.tx_outstanding());
    HostileSummary {
        accepted: accepted.len(),
        completed: completed.len(),
        delivered,
        bad_responses: q.counters().bad_responses,
    }
}

fn attach(
    q: &mut HostileQueue,
    params: FrontendParams,
    grants: &mut TestGrants,
    events: &mut TestEvents,
    mem: &mut TestMemory,
) -> Backend {
    let tx = RingMemory::allocate(0).expect("ring memory");
    let rx = RingMemory::allocate(0).expect("ring memory");
    let back = Backend::new(tx.clone(), rx.clone());
    let mut io = Io::new(grants, events, mem);
    q.attach(params, (tx, 1), (rx, 2), &mut io).expect("attach");
    q.connected(&mut io);
    back
}
