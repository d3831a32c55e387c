//! A network backend (netback) model: the guest's transmit rings read and answered, frames
//! copied out through the simulated grant table; frames queued for the guest copied into the
//! buffers it posts on its receive rings, as a backend domain in rx-copy mode does.
//!
//! The model reads and writes the rings with its own offsets (it does not use xen-ring or the
//! ABI structs), so it is an independent reading of `io/netif.h` and `io/ring.h`: 64-byte ring
//! header, 12-byte transmit slots (request: `gref`, `offset`, `flags`, `id`, `size`; response:
//! `id`, `status`), 8-byte receive slots (request: `id`, `pad`, `gref`; response: `id`,
//! `offset`, `flags`, `status`), 8-byte extra-info slots (`type`, `flags`, then GSO `size`,
//! `type` or hash `type`, `algorithm`, `value`).
//!
//! It checks what Linux's netback checks on transmit (each slot inside its page, the first
//! slot's size covering the others, at most `XEN_NETIF_NR_SLOTS_MIN` data slots, GSO only when
//! offered) and answers a bad packet with `NETIF_RSP_ERROR`; every data slot gets a response
//! with its id and every extra-info slot a `NETIF_RSP_NULL` one. On receive it writes each
//! response in the slot of the request it consumed, first data slot, then the extra-info
//! chain, then the rest, each data slot up to a page.
//!
//! What it advertises is switchable ([`NetFeatures`]); [`NetFaults`] makes the next responses
//! hostile (unknown ids, impossible statuses, held responses; receive responses with a wrong
//! id, out-of-page data, unknown flags, bad extra info, an insane GSO size, an endless chain).
//! [`bridge`] moves the frames one model took from its guest to another model's guest, as a
//! bridge in dom0 does (GSO frames stay GSO, blank checksums stay blank).

use std::collections::VecDeque;

use xen_abi::types::{EvtchnPort, GrantRef};

use crate::grant::{GntError, MappedGrant};
use crate::memory::PAGE_SIZE;
use crate::Backend;

const HEADER: usize = 64;
const TX_ENTRY: usize = 12;
const RX_ENTRY: usize = 8;
const SLOTS: u32 = 256;
const MAX_DATA_SLOTS: usize = 18;

const NETTXF_CSUM_BLANK: u16 = 1;
const NETTXF_DATA_VALIDATED: u16 = 2;
const NETTXF_MORE_DATA: u16 = 4;
const NETTXF_EXTRA_INFO: u16 = 8;
const NETRXF_DATA_VALIDATED: u16 = 1;
const NETRXF_CSUM_BLANK: u16 = 2;
const NETRXF_MORE_DATA: u16 = 4;
const NETRXF_EXTRA_INFO: u16 = 8;
const EXTRA_TYPE_GSO: u8 = 1;
const EXTRA_TYPE_HASH: u8 = 4;
const EXTRA_FLAG_MORE: u8 = 1;
const RSP_ERROR: i16 = -1;
const RSP_OKAY: i16 = 0;
const RSP_NULL: i16 = 1;

/// What the backend advertises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetFeatures {
    /// The MAC address the toolstack gives the frontend.
    pub mac: [u8; 6],
    /// `mtu` (not written when `None`).
    pub mtu: Option<u32>,
    /// `feature-rx-copy`.
    pub rx_copy: bool,
    /// `feature-sg`.
    pub sg: bool,
    /// `feature-gso-tcpv4`.
    pub gso_tcpv4: bool,
    /// `feature-gso-tcpv6`.
    pub gso_tcpv6: bool,
    /// `feature-no-csum-offload`.
    pub no_csum_offload: bool,
    /// `feature-ipv6-csum-offload`.
    pub ipv6_csum_offload: bool,
    /// `feature-split-event-channels`.
    pub split_event_channels: bool,
    /// `multi-queue-max-queues` (not written when 1).
    pub max_queues: u32,
}

impl Default for NetFeatures {
    /// What Linux's netback offers.
    fn default() -> Self {
        NetFeatures {
            mac: [0x00, 0x16, 0x3e, 0x12, 0x34, 0x56],
            mtu: None,
            rx_copy: true,
            sg: true,
            gso_tcpv4: true,
            gso_tcpv6: true,
            no_csum_offload: false,
            ipv6_csum_offload: true,
            split_event_channels: true,
            max_queues: 4,
        }
    }
}

impl NetFeatures {
    /// A backend that offers no offload at all (and no scatter-gather).
    pub fn bare() -> Self {
        NetFeatures {
            sg: false,
            gso_tcpv4: false,
            gso_tcpv6: false,
            no_csum_offload: true,
            ipv6_csum_offload: false,
            split_event_channels: false,
            max_queues: 1,
            ..NetFeatures::default()
        }
    }

    /// The MAC address as the `mac` node writes it.
    pub fn mac_text(&self) -> String {
        let m = self.mac;
        format!(
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// A frame the backend took from the guest's transmit ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxFrame {
    /// The queue.
    pub queue: usize,
    /// The frame's bytes.
    pub data: Vec<u8>,
    /// The GSO extra info: (`XEN_NETIF_GSO_TYPE_*`, size).
    pub gso: Option<(u8, u16)>,
    /// `NETTXF_csum_blank`.
    pub csum_blank: bool,
    /// `NETTXF_data_validated`.
    pub data_validated: bool,
    /// Data slots used.
    pub slots: usize,
}

/// How a frame for the guest is to be presented.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxMeta {
    /// A GSO extra info: (`XEN_NETIF_GSO_TYPE_*`, size).
    pub gso: Option<(u8, u16)>,
    /// `NETRXF_csum_blank` (with `NETRXF_data_validated`, as netback sets them).
    pub csum_blank: bool,
    /// `NETRXF_data_validated`.
    pub data_validated: bool,
    /// A hash extra info: (hash type bit number, value).
    pub hash: Option<(u8, u32)>,
    /// Make this frame's responses hostile.
    pub fault: Option<RxFault>,
}

/// A hostile transmit response, applied to the next data response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxFault {
    /// The id is replaced by one never used.
    UnknownId,
    /// The status is replaced.
    Status(i16),
    /// The response is pushed twice (the copy in the slot of the next one, or extra).
    Duplicate,
}

/// A hostile receive response, applied to a frame's first data response (or its chain).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxFault {
    /// The id names another buffer.
    WrongId,
    /// `offset + size` runs past the page.
    OutOfPage,
    /// These flag bits are added.
    Flags(u16),
    /// The status is replaced.
    Status(i16),
    /// The extra-info slot gets this type.
    ExtraType(u8),
    /// The GSO size is 0.
    GsoSizeZero,
    /// The GSO type is the wrong IP version.
    GsoWrongType,
    /// Every data slot says more data follows, past the slot limit.
    EndlessChain,
}

/// Fault switches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetFaults {
    /// Transmit faults, one per data response, in order (receive faults go with each frame:
    /// [`RxMeta::fault`]).
    pub tx: VecDeque<TxFault>,
    /// Hold transmit responses until [`Netback::release_held`].
    pub hold_tx: bool,
}

/// Why the backend stopped serving a ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetbackError {
    /// Not connected (or the queue does not exist).
    NotConnected,
    /// A grant operation on a ring failed.
    Grant(GntError),
    /// `req_prod` ran more than a ring ahead.
    RingOverflow,
}

impl From<GntError> for NetbackError {
    fn from(e: GntError) -> Self {
        NetbackError::Grant(e)
    }
}

/// One queue's connection, as the frontend published it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueRefs {
    /// `tx-ring-ref`.
    pub tx_ring: GrantRef,
    /// `rx-ring-ref`.
    pub rx_ring: GrantRef,
    /// The backend's local port for transmit notifications (bound already).
    pub tx_port: Option<EvtchnPort>,
    /// The backend's local port for receive notifications (the same without split channels).
    pub rx_port: Option<EvtchnPort>,
}

#[derive(Debug)]
struct Queue {
    refs: QueueRefs,
    tx: MappedGrant,
    rx: MappedGrant,
    tx_req_cons: u32,
    tx_rsp_prod_pvt: u32,
    rx_req_cons: u32,
    to_guest: VecDeque<(Vec<u8>, RxMeta)>,
    held: Vec<(u16, i16)>,
}

/// The netback model. Drive it with [`serve`](Self::serve).
#[derive(Debug)]
pub struct Netback {
    backend: Backend,
    features: NetFeatures,
    queues: Vec<Queue>,
    /// Fault switches.
    pub faults: NetFaults,
    /// Frames taken from the guest, in order.
    pub sent: Vec<TxFrame>,
    /// Transmitted packets answered with an error (bad slots, an offload not offered).
    pub tx_errors: u64,
    /// Receive copies that failed (a buffer granted read-only, or not granted).
    pub rx_errors: u64,
    /// Frames delivered to the guest.
    pub delivered: u64,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl Netback {
    /// A backend in `backend`'s domain.
    pub fn new(backend: Backend, features: NetFeatures) -> Self {
        Netback {
            backend,
            features,
            queues: Vec::new(),
            faults: NetFaults::default(),
            sent: Vec::new(),
            tx_errors: 0,
            rx_errors: 0,
            delivered: 0,
        }
    }

    /// What is advertised.
    pub fn features(&self) -> NetFeatures {
        self.features
    }

    /// Changes what is advertised (for the next connection).
    pub fn set_features(&mut self, features: NetFeatures) {
        self.features = features;
    }

    /// The backend's nodes (relative to its device directory).
    pub fn nodes(&self) -> Vec<(&'static str, String)> {
        let f = self.features;
        let b = |v: bool| String::from(if v { "1" } else { "0" });
        let mut n = vec![
            ("mac", f.mac_text()),
            ("feature-rx-copy", b(f.rx_copy)),
            ("feature-rx-flip", "0".to_string()),
            ("feature-sg", b(f.sg)),
            ("feature-gso-tcpv4", b(f.gso_tcpv4)),
            ("feature-gso-tcpv6", b(f.gso_tcpv6)),
            ("feature-no-csum-offload", b(f.no_csum_offload)),
            ("feature-ipv6-csum-offload", b(f.ipv6_csum_offload)),
            ("feature-split-event-channels", b(f.split_event_channels)),
        ];
        if f.max_queues > 1 {
            n.push(("multi-queue-max-queues", f.max_queues.to_string()));
        }
        if let Some(mtu) = f.mtu {
            n.push(("mtu", mtu.to_string()));
        }
        n
    }

    /// Writes [`nodes`](Self::nodes) under `backend_dir`, and `mac` under `frontend_dir` as the
    /// toolstack does.
    pub fn advertise(
        &self,
        backend_dir: &str,
        frontend_dir: &str,
    ) -> Result<(), xen_abi::xenstore::XsErrno> {
        for (k, v) in self.nodes() {
            self.backend
                .xs_write(&format!("{backend_dir}/{k}"), v.as_bytes())?;
        }
        self.backend.xs_write(
            &format!("{frontend_dir}/mac"),
            self.features.mac_text().as_bytes(),
        )
    }

    /// Connects to the frontend's queues: maps every ring page writable.
    pub fn connect(&mut self, queues: &[QueueRefs]) -> Result<(), NetbackError> {
        self.disconnect();
        for r in queues {
            let tx = self.backend.map_grant(r.tx_ring, true)?;
            let rx = match self.backend.map_grant(r.rx_ring, true) {
                Ok(h) => h,
                Err(e) => {
                    let _ = self.backend.unmap_grant(tx);
                    self.disconnect();
                    return Err(e.into());
                }
            };
            let mut q = Queue {
                refs: *r,
                tx,
                rx,
                tx_req_cons: 0,
                tx_rsp_prod_pvt: 0,
                rx_req_cons: 0,
                to_guest: VecDeque::new(),
                held: Vec::new(),
            };
            let mut b = [0u8; 4];
            self.backend.read_mapped(tx, 0, &mut b)?;
            q.tx_req_cons = u32::from_le_bytes(b);
            q.tx_rsp_prod_pvt = q.tx_req_cons;
            self.backend.read_mapped(rx, 8, &mut b)?;
            q.rx_req_cons = u32::from_le_bytes(b);
            self.queues.push(q);
        }
        Ok(())
    }

    /// Unmaps every ring and closes the ports; frames waiting for the guest are dropped.
    pub fn disconnect(&mut self) {
        for q in self.queues.drain(..) {
            let _ = self.backend.unmap_grant(q.tx);
            let _ = self.backend.unmap_grant(q.rx);
            for p in [q.refs.tx_port, q.refs.rx_port].into_iter().flatten() {
                let _ = self.backend.close(p);
            }
        }
    }

    /// The connected queues.
    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }

    /// Queues a frame for the guest on `queue`.
    pub fn inject(&mut self, queue: usize, frame: &[u8], meta: RxMeta) -> Result<(), NetbackError> {
        let q = self
            .queues
            .get_mut(queue)
            .ok_or(NetbackError::NotConnected)?;
        q.to_guest.push_back((frame.to_vec(), meta));
        Ok(())
    }

    /// Frames waiting for receive buffers on `queue`.
    pub fn waiting(&self, queue: usize) -> usize {
        self.queues.get(queue).map_or(0, |q| q.to_guest.len())
    }

    /// Takes the frames sent so far.
    pub fn take_sent(&mut self) -> Vec<TxFrame> {
        std::mem::take(&mut self.sent)
    }

    /// Serves every queue: the transmit ring, then the receive ring. Returns the transmit
    /// packets taken and the frames delivered.
    pub fn serve(&mut self) -> Result<(usize, usize), NetbackError> {
        let mut taken = 0;
        let mut given = 0;
        for q in 0..self.queues.len() {
            taken += self.serve_tx(q)?;
            given += self.serve_rx(q)?;
        }
        Ok((taken, given))
    }

    /// Pushes the held transmit responses.
    pub fn release_held(&mut self) -> Result<usize, NetbackError> {
        let mut n = 0;
        for q in 0..self.queues.len() {
            let held = std::mem::take(&mut self.queues[q].held);
            n += held.len();
            self.push_tx(q, &held)?;
        }
        Ok(n)
    }

    fn read(&self, h: MappedGrant, at: usize, out: &mut [u8]) -> Result<(), NetbackError> {
        Ok(self.backend.read_mapped(h, at, out)?)
    }

    fn write(&self, h: MappedGrant, at: usize, data: &[u8]) -> Result<(), NetbackError> {
        Ok(self.backend.write_mapped(h, at, data)?)
    }

    fn read_u32(&self, h: MappedGrant, at: usize) -> Result<u32, NetbackError> {
        let mut b = [0u8; 4];
        self.read(h, at, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn tx_slot(&self, q: usize, idx: u32) -> Result<[u8; TX_ENTRY], NetbackError> {
        let mut e = [0u8; TX_ENTRY];
        let at = HEADER + (idx % SLOTS) as usize * TX_ENTRY;
        self.read(self.queues[q].tx, at, &mut e)?;
        Ok(e)
    }

    fn serve_tx(&mut self, q: usize) -> Result<usize, NetbackError> {
        let ring = self.queues[q].tx;
        let mut taken = 0;
        let mut rsps: Vec<(u16, i16)> = Vec::new();
        loop {
            let req_prod = self.read_u32(ring, 0)?;
            let cons = self.queues[q].tx_req_cons;
            if req_prod.wrapping_sub(cons) > SLOTS {
                return Err(NetbackError::RingOverflow);
            }
            let mut at = cons;
            // Whole packets only: a packet whose slots are not all published waits.
            while at != req_prod {
                let first = self.tx_slot(q, at)?;
                let mut slots = vec![first];
                let mut extras = Vec::new();
                let mut idx = at.wrapping_add(1);
                let mut complete = true;
                let mut flags = u16_at(&first, 6);
                if flags & NETTXF_EXTRA_INFO != 0 {
                    loop {
                        if idx == req_prod {
                            complete = false;
                            break;
                        }
                        let e = self.tx_slot(q, idx)?;
                        idx = idx.wrapping_add(1);
                        extras.push(e);
                        if e[1] & EXTRA_FLAG_MORE == 0 || extras.len() > 4 {
                            break;
                        }
                    }
                }
                while complete && flags & NETTXF_MORE_DATA != 0 {
                    if idx == req_prod {
                        complete = false;
                        break;
                    }
                    let s = self.tx_slot(q, idx)?;
                    idx = idx.wrapping_add(1);
                    flags = u16_at(&s, 6);
                    slots.push(s);
                    if slots.len() > 64 {
                        break;
                    }
                }
                if !complete {
                    break;
                }
                at = idx;
                taken += 1;
                let status = self.take_packet(q, &slots, &extras);
                rsps.push((u16_at(&slots[0], 8), status));
                for _ in &extras {
                    rsps.push((0, RSP_NULL));
                }
                for s in &slots[1..] {
                    rsps.push((u16_at(s, 8), status));
                }
            }
            self.queues[q].tx_req_cons = at;
            // RING_FINAL_CHECK_FOR_REQUESTS.
            self.write(ring, 4, &at.wrapping_add(1).to_le_bytes())?;
            if self.read_u32(ring, 0)? == at {
                break;
            }
        }
        let mut out = Vec::new();
        let mut i = 0;
        while i < rsps.len() {
            let (mut id, mut status) = rsps[i];
            i += 1;
            if status != RSP_NULL {
                match self.faults.tx.pop_front() {
                    Some(TxFault::UnknownId) => id = 0x7fff,
                    Some(TxFault::Status(s)) => status = s,
                    Some(TxFault::Duplicate) => {
                        out.push((id, status));
                        i += 1;
                    }
                    None => {}
                }
            }
            out.push((id, status));
        }
        if self.faults.hold_tx {
            self.queues[q].held.extend(out);
        } else {
            self.push_tx(q, &out)?;
        }
        Ok(taken)
    }

    /// Checks and copies one transmit packet; returns its status.
    fn take_packet(
        &mut self,
        q: usize,
        slots: &[[u8; TX_ENTRY]],
        extras: &[[u8; TX_ENTRY]],
    ) -> i16 {
        let f = self.features;
        let first = &slots[0];
        let total = usize::from(u16_at(first, 10));
        let flags = u16_at(first, 6);
        let mut gso = None;
        for e in extras {
            if e[0] == EXTRA_TYPE_GSO {
                gso = Some((e[4], u16_at(e, 2)));
            } else {
                self.tx_errors += 1;
                return RSP_ERROR;
            }
        }
        let rest: usize = slots[1..].iter().map(|s| usize::from(u16_at(s, 10))).sum();
        let bad_slot = slots.iter().enumerate().any(|(i, s)| {
            let size = if i == 0 {
                total.wrapping_sub(rest)
            } else {
                usize::from(u16_at(s, 10))
            };
            usize::from(u16_at(s, 4)) + size > PAGE_SIZE
        });
        let gso_ok = match gso {
            None => true,
            Some((1, size)) => f.gso_tcpv4 && size > 0,
            Some((2, size)) => f.gso_tcpv6 && size > 0,
            Some(_) => false,
        };
        let max_slots = if f.sg { MAX_DATA_SLOTS } else { 1 };
        if rest > total || bad_slot || slots.len() > max_slots || !gso_ok {
            self.tx_errors += 1;
            return RSP_ERROR;
        }
        let mut data = vec![0u8; total];
        let mut pos = 0;
        for (i, s) in slots.iter().enumerate() {
            let size = if i == 0 {
                total - rest
            } else {
                usize::from(u16_at(s, 10))
            };
            let r = self.backend.copy_from_grant(
                u32_at(s, 0),
                usize::from(u16_at(s, 4)),
                &mut data[pos..pos + size],
            );
            if r.is_err() {
                self.tx_errors += 1;
                return RSP_ERROR;
            }
            pos += size;
        }
        // A blank checksum only where offered: IPv4 unless `feature-no-csum-offload`, IPv6 with
        // `feature-ipv6-csum-offload` (after one VLAN tag at most).
        if flags & NETTXF_CSUM_BLANK != 0 {
            let at = if data.len() >= 18 && data[12..14] == [0x81, 0x00] {
                16
            } else {
                12
            };
            let offered = match data.get(at..at + 2) {
                Some([0x08, 0x00]) => !f.no_csum_offload,
                Some([0x86, 0xdd]) => f.ipv6_csum_offload,
                _ => false,
            };
            if !offered {
                self.tx_errors += 1;
                return RSP_ERROR;
            }
        }
        self.sent.push(TxFrame {
            queue: q,
            data,
            gso,
            csum_blank: flags & NETTXF_CSUM_BLANK != 0,
            data_validated: flags & NETTXF_DATA_VALIDATED != 0,
            slots: slots.len(),
        });
        RSP_OKAY
    }

    fn push_tx(&mut self, q: usize, rsps: &[(u16, i16)]) -> Result<(), NetbackError> {
        if rsps.is_empty() {
            return Ok(());
        }
        let ring = self.queues[q].tx;
        for &(id, status) in rsps {
            let mut b = [0u8; 4];
            b[..2].copy_from_slice(&id.to_le_bytes());
            b[2..].copy_from_slice(&status.to_le_bytes());
            let at = HEADER + (self.queues[q].tx_rsp_prod_pvt % SLOTS) as usize * TX_ENTRY;
            self.write(ring, at, &b)?;
            self.queues[q].tx_rsp_prod_pvt = self.queues[q].tx_rsp_prod_pvt.wrapping_add(1);
        }
        let port = self.queues[q].refs.tx_port;
        self.publish(ring, self.queues[q].tx_rsp_prod_pvt, port)
    }

    /// RING_PUSH_RESPONSES_AND_CHECK_NOTIFY.
    fn publish(
        &self,
        ring: MappedGrant,
        new: u32,
        port: Option<EvtchnPort>,
    ) -> Result<(), NetbackError> {
        let old = self.read_u32(ring, 8)?;
        self.write(ring, 8, &new.to_le_bytes())?;
        let rsp_event = self.read_u32(ring, 12)?;
        if new.wrapping_sub(rsp_event) < new.wrapping_sub(old) {
            if let Some(p) = port {
                let _ = self.backend.send(p);
            }
        }
        Ok(())
    }

    fn serve_rx(&mut self, q: usize) -> Result<usize, NetbackError> {
        let ring = self.queues[q].rx;
        let mut given = 0;
        while let Some((frame, meta)) = self.queues[q].to_guest.front().cloned() {
            let req_prod = self.read_u32(ring, 0)?;
            let cons = self.queues[q].rx_req_cons;
            let avail = req_prod.wrapping_sub(cons);
            if avail > SLOTS {
                return Err(NetbackError::RingOverflow);
            }
            let fault = meta.fault;
            let data_slots = frame.len().div_ceil(PAGE_SIZE).max(1);
            let extras = usize::from(meta.gso.is_some()) + usize::from(meta.hash.is_some());
            let needed = if fault == Some(RxFault::EndlessChain) {
                MAX_DATA_SLOTS + 4
            } else {
                data_slots + extras
            };
            if (avail as usize) < needed {
                break;
            }
            self.queues[q].to_guest.pop_front();
            let mut idx = cons;
            let mut chunks: Vec<&[u8]> = frame.chunks(PAGE_SIZE).collect();
            if chunks.is_empty() {
                chunks.push(&[]);
            }
            if fault == Some(RxFault::EndlessChain) {
                while chunks.len() < needed {
                    chunks.push(&frame[..1.min(frame.len())]);
                }
            }
            let n = chunks.len();
            for (i, chunk) in chunks.iter().enumerate() {
                let mut req = [0u8; RX_ENTRY];
                let at = HEADER + (idx % SLOTS) as usize * RX_ENTRY;
                self.read(ring, at, &mut req)?;
                idx = idx.wrapping_add(1);
                let (mut id, gref) = (u16_at(&req, 0), u32_at(&req, 4));
                if self.backend.copy_to_grant(gref, 0, chunk).is_err() {
                    self.rx_errors += 1;
                }
                let mut flags = 0u16;
                if i == 0 {
                    if meta.csum_blank {
                        flags |= NETRXF_CSUM_BLANK | NETRXF_DATA_VALIDATED;
                    } else if meta.data_validated {
                        flags |= NETRXF_DATA_VALIDATED;
                    }
                    if extras > 0 {
                        flags |= NETRXF_EXTRA_INFO;
                    }
                }
                if i + 1 < n || fault == Some(RxFault::EndlessChain) {
                    flags |= NETRXF_MORE_DATA;
                }
                let mut offset = 0u16;
                let mut status = chunk.len() as i16;
                if i == 0 {
                    match fault {
                        Some(RxFault::WrongId) => id ^= 1,
                        Some(RxFault::OutOfPage) => offset = (PAGE_SIZE - chunk.len() / 2) as u16,
                        Some(RxFault::Flags(f)) => flags |= f,
                        Some(RxFault::Status(s)) => status = s,
                        _ => {}
                    }
                }
                let mut rsp = [0u8; RX_ENTRY];
                rsp[..2].copy_from_slice(&id.to_le_bytes());
                rsp[2..4].copy_from_slice(&offset.to_le_bytes());
                rsp[4..6].copy_from_slice(&flags.to_le_bytes());
                rsp[6..8].copy_from_slice(&status.to_le_bytes());
                self.write(ring, at, &rsp)?;
                if i == 0 {
                    let mut list = Vec::new();
                    if let Some((t, size)) = meta.gso {
                        let mut e = [0u8; RX_ENTRY];
                        e[0] = EXTRA_TYPE_GSO;
                        let (t, size) = match fault {
                            Some(RxFault::GsoSizeZero) => (t, 0),
                            Some(RxFault::GsoWrongType) => (3 - t, size),
                            _ => (t, size),
                        };
                        e[2..4].copy_from_slice(&size.to_le_bytes());
                        e[4] = t;
                        list.push(e);
                    }
                    if let Some((t, v)) = meta.hash {
                        let mut e = [0u8; RX_ENTRY];
                        e[0] = EXTRA_TYPE_HASH;
                        e[2] = t;
                        e[3] = 1;
                        e[4..8].copy_from_slice(&v.to_le_bytes());
                        list.push(e);
                    }
                    let k = list.len();
                    for (j, mut e) in list.into_iter().enumerate() {
                        if j + 1 < k {
                            e[1] |= EXTRA_FLAG_MORE;
                        }
                        if let Some(RxFault::ExtraType(t)) = fault {
                            e[0] = t;
                        }
                        let at = HEADER + (idx % SLOTS) as usize * RX_ENTRY;
                        idx = idx.wrapping_add(1);
                        self.write(ring, at, &e)?;
                    }
                }
            }
            self.queues[q].rx_req_cons = idx;
            given += 1;
            self.delivered += 1;
        }
        let port = self.queues[q].refs.rx_port;
        let prod = self.queues[q].rx_req_cons;
        if given > 0 {
            self.publish(ring, prod, port)?;
        }
        Ok(given)
    }
}

/// Moves the frames `from` took from its guest to `to`'s guest, on the same queue number
/// (modulo `to`'s queues), as a bridge in dom0 does: a GSO frame stays one GSO frame, a blank
/// checksum stays blank. Returns how many frames moved.
pub fn bridge(from: &mut Netback, to: &mut Netback) -> Result<usize, NetbackError> {
    let frames = from.take_sent();
    let queues = to.queue_count().max(1);
    for f in &frames {
        to.inject(
            f.queue % queues,
            &f.data,
            RxMeta {
                gso: f.gso,
                csum_blank: f.csum_blank,
                data_validated: f.data_validated,
                hash: None,
                fault: None,
            },
        )?;
    }
    Ok(frames.len())
}
