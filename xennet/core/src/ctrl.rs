//! The control ring (`feature-ctrl-ring`, `io/netif.h`'s `XEN_NETIF_CTRL_TYPE_*`): the receive
//! side scaling configuration NDIS hands the shell (`NDIS_RECEIVE_SCALE_PARAMETERS`: hash
//! types, a Toeplitz key of up to 40 bytes, an indirection table) given to the backend, so that
//! the backend steers each received flow to the queue Windows expects and reports the hash in
//! the receive extra info (`XEN_NETIF_EXTRA_TYPE_HASH`).
//!
//! # Protocol
//! The frontend grants a one-page ring and publishes `ctrl-ring-ref` and `event-channel-ctrl`
//! before it connects. [`ControlRing::configure`] puts the whole configuration on the ring at
//! once, in the order the backend needs it (the algorithm first: Linux's netback refuses hash
//! flags while the algorithm is `NONE`): `SET_HASH_ALGORITHM(TOEPLITZ)`,
//! `SET_HASH_FLAGS`, `SET_HASH_KEY` (a page holding the key), `SET_HASH_MAPPING_SIZE`,
//! `SET_HASH_MAPPING` (a page of `u32` queue numbers). The backend answers in order;
//! [`ControlRing::poll`] copies each response once, checks its id and type against the request
//! at that position, and reports the first failure with the request it concerns. The key and
//! table pages stay granted (read-only) until every response is in: the backend copies them
//! while it serves the request.
//!
//! # Concurrency
//! One control ring per device, driven under the device's configuration lock (OID requests
//! are serialised by NDIS) at `PASSIVE_LEVEL` or `DISPATCH_LEVEL`; no call blocks.

use core::fmt::Write;

use xen_abi::netif::{
    XenNetifCtrlRequest, XenNetifCtrlResponse, XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ,
    XEN_NETIF_CTRL_STATUS_SUCCESS, XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM,
    XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS, XEN_NETIF_CTRL_TYPE_SET_HASH_KEY,
    XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE,
};
use xen_abi::types::{DomId, GrantRef};
use xen_ring::{FrontRing, RingMemory};
use xenpci_core::grant_table::Revocation;

use crate::platform::{Events, Grants, GuestMemory, Io, RingKind};
use crate::types::RssHashType;

/// The longest Toeplitz key (NDIS's `NDIS_RSS_HASH_SECRET_KEY_MAX_SIZE_REVISION_1`, and what
/// Linux's netback keeps).
pub const MAX_KEY: usize = 40;
/// The largest indirection table (NDIS's 128 entries, netback's `XEN_NETBK_MAX_HASH_MAPPING_SIZE`).
pub const MAX_TABLE: usize = 128;

/// The Toeplitz hash of `input` under `key` (`io/netif.h`'s definition, Microsoft's RSS hash):
/// for each input bit that is set, the 32 key bits starting at that bit's position are XORed
/// into the result. Key bits past the end of `key` are zero.
pub fn toeplitz(key: &[u8], input: &[u8]) -> u32 {
    let key_byte = |i: usize| u32::from(key.get(i).copied().unwrap_or(0));
    // The 32-bit window of the key at the current bit, and the next key byte to shift in.
    let mut window = (key_byte(0) << 24) | (key_byte(1) << 16) | (key_byte(2) << 8) | key_byte(3);
    let mut hash = 0;
    for (i, &byte) in input.iter().enumerate() {
        let next = key_byte(i + 4);
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                hash ^= window;
            }
            window = (window << 1) | ((next >> (7 - bit)) & 1);
        }
    }
    hash
}

/// The Toeplitz input for IPv4 (source address, destination address) and, with `ports`,
/// TCP (then source port, destination port), in network byte order; returns its length.
pub fn ipv4_input(
    src: [u8; 4],
    dst: [u8; 4],
    ports: Option<(u16, u16)>,
    out: &mut [u8; 36],
) -> usize {
    out[..4].copy_from_slice(&src);
    out[4..8].copy_from_slice(&dst);
    match ports {
        Some((s, d)) => {
            out[8..10].copy_from_slice(&s.to_be_bytes());
            out[10..12].copy_from_slice(&d.to_be_bytes());
            12
        }
        None => 8,
    }
}

/// The Toeplitz input for IPv6, as [`ipv4_input`]; returns its length.
pub fn ipv6_input(
    src: [u8; 16],
    dst: [u8; 16],
    ports: Option<(u16, u16)>,
    out: &mut [u8; 36],
) -> usize {
    out[..16].copy_from_slice(&src);
    out[16..32].copy_from_slice(&dst);
    match ports {
        Some((s, d)) => {
            out[32..34].copy_from_slice(&s.to_be_bytes());
            out[34..36].copy_from_slice(&d.to_be_bytes());
            36
        }
        None => 32,
    }
}

/// The hash types to compute (`NDIS_HASH_IPV4` …), as `XEN_NETIF_CTRL_HASH_TYPE_*` bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HashTypes {
    /// Over the IPv4 addresses.
    pub ipv4: bool,
    /// Over the IPv4 addresses and TCP ports.
    pub tcp_ipv4: bool,
    /// Over the IPv6 addresses.
    pub ipv6: bool,
    /// Over the IPv6 addresses and TCP ports.
    pub tcp_ipv6: bool,
}

impl HashTypes {
    /// The `XEN_NETIF_CTRL_HASH_TYPE_*` bits.
    pub fn bits(&self) -> u32 {
        u32::from(self.ipv4)
            | (u32::from(self.tcp_ipv4) << 1)
            | (u32::from(self.ipv6) << 2)
            | (u32::from(self.tcp_ipv6) << 3)
    }

    /// Whether the type the backend reported is one asked for.
    pub fn includes(&self, t: RssHashType) -> bool {
        match t {
            RssHashType::Ipv4 => self.ipv4,
            RssHashType::TcpIpv4 => self.tcp_ipv4,
            RssHashType::Ipv6 => self.ipv6,
            RssHashType::TcpIpv6 => self.tcp_ipv6,
        }
    }
}

/// A receive-side-scaling configuration, with the indirection table already translated from
/// processors to queue numbers by the shell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RssConfig {
    /// What to hash.
    pub hash_types: HashTypes,
    /// The Toeplitz key (the first `key_len` bytes).
    pub key: [u8; MAX_KEY],
    /// The key's length in bytes.
    pub key_len: usize,
    /// The indirection table: entry `hash % table_len` is the queue (the first `table_len`).
    pub table: [u32; MAX_TABLE],
    /// Entries in the table (1..=[`MAX_TABLE`]).
    pub table_len: usize,
}

impl RssConfig {
    /// The queue a packet with `hash` belongs on.
    pub fn queue_for(&self, hash: u32) -> u32 {
        let len = self.table_len.clamp(1, MAX_TABLE);
        self.table[hash as usize % len]
    }

    /// The key in use.
    pub fn key(&self) -> &[u8] {
        &self.key[..self.key_len.min(MAX_KEY)]
    }
}

/// Why the control ring could not be used, or what the backend refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlError {
    /// The ring is not attached (the backend offered no `feature-ctrl-ring`).
    NotAttached,
    /// A configuration is still being applied.
    Busy,
    /// The configuration is unusable: a key longer than [`MAX_KEY`], an empty or oversized
    /// table, or a table entry naming a queue that does not exist.
    InvalidConfig,
    /// Granting a page failed.
    Grant,
    /// The backend answered a request with a status other than success.
    Refused {
        /// The `XEN_NETIF_CTRL_TYPE_*` of the request.
        ctrl_type: u16,
        /// The `XEN_NETIF_CTRL_STATUS_*` it returned.
        status: u32,
    },
    /// A response that answers no outstanding request (wrong id or type), or a ring whose
    /// indexes are corrupt; the ring is unusable until the next connection.
    BadResponse,
}

/// How many requests a configuration takes.
const STEPS: usize = 5;

/// The control ring of a device.
#[derive(Debug)]
pub struct ControlRing {
    ring: Option<FrontRing<XenNetifCtrlRequest, XenNetifCtrlResponse>>,
    backend: DomId,
    ring_gref: Option<GrantRef>,
    key_frame: u64,
    table_frame: u64,
    /// Grants of the key and table pages while a configuration is in flight.
    data_grefs: Option<(GrantRef, GrantRef)>,
    sent: [XenNetifCtrlRequest; STEPS],
    answered: usize,
    in_flight: bool,
    next_id: u16,
    failed: bool,
    pending: Option<RssConfig>,
    applied: Option<RssConfig>,
}

const NO_REQUEST: XenNetifCtrlRequest = XenNetifCtrlRequest {
    id: 0,
    ctrl_type: 0,
    data: [0; 3],
};

impl ControlRing {
    /// No ring, as a constant.
    pub const EMPTY: Self = ControlRing {
        ring: None,
        backend: 0,
        ring_gref: None,
        key_frame: 0,
        table_frame: 0,
        data_grefs: None,
        sent: [NO_REQUEST; STEPS],
        answered: 0,
        in_flight: false,
        next_id: 0,
        failed: false,
        pending: None,
        applied: None,
    };

    /// Grants the ring page to `backend` and initialises the ring; `key_frame` and
    /// `table_frame` are two further pages of the device's own for the key and the table.
    /// Returns the reference to publish as `ctrl-ring-ref`.
    pub fn attach<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        backend: DomId,
        ring: (RingMemory, u64),
        key_frame: u64,
        table_frame: u64,
        io: &mut Io<'_, G, N, M>,
    ) -> Result<GrantRef, ControlError> {
        if self.ring.is_some() {
            return Err(ControlError::Busy);
        }
        let (memory, frame) = ring;
        let gref = io
            .grants
            .grant(backend, frame, false)
            .map_err(|_| ControlError::Grant)?;
        let ring = match FrontRing::init(memory) {
            Ok(r) => r,
            Err(_) => {
                let _ = io.grants.end(gref);
                return Err(ControlError::BadResponse);
            }
        };
        *self = ControlRing {
            ring: Some(ring),
            backend,
            ring_gref: Some(gref),
            key_frame,
            table_frame,
            ..ControlRing::EMPTY
        };
        Ok(gref)
    }

    /// Calls `write(key, value)` for the nodes that announce the ring (`ctrl-ring-ref`,
    /// `event-channel-ctrl`), published with the queues' nodes before connecting.
    pub fn write_nodes<E>(
        gref: GrantRef,
        port: u32,
        mut write: impl FnMut(&str, &str) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut value: xenpci_core::xenbus::FixedStr<12> = xenpci_core::xenbus::FixedStr::new();
        let _ = write!(value, "{gref}");
        write("ctrl-ring-ref", value.as_str())?;
        value.clear();
        let _ = write!(value, "{port}");
        write("event-channel-ctrl", value.as_str())
    }

    /// Whether the ring is attached.
    pub fn attached(&self) -> bool {
        self.ring.is_some()
    }

    /// The configuration the backend accepted last.
    pub fn applied(&self) -> Option<RssConfig> {
        self.applied
    }

    /// Whether a configuration is waiting for its responses.
    pub fn in_flight(&self) -> bool {
        self.in_flight
    }

    /// Puts `config` on the ring for a device with `queues` queues and notifies the backend;
    /// [`poll`](Self::poll) reports the outcome.
    pub fn configure<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        config: &RssConfig,
        queues: u32,
        io: &mut Io<'_, G, N, M>,
    ) -> Result<(), ControlError> {
        if self.failed || self.ring.is_none() {
            return Err(ControlError::NotAttached);
        }
        if self.in_flight {
            return Err(ControlError::Busy);
        }
        let table_len = config.table_len;
        if config.key_len > MAX_KEY
            || !(1..=MAX_TABLE).contains(&table_len)
            || config.table[..table_len].iter().any(|&q| q >= queues)
        {
            return Err(ControlError::InvalidConfig);
        }
        let key_gref = io
            .grants
            .grant(self.backend, self.key_frame, true)
            .map_err(|_| ControlError::Grant)?;
        let table_gref = match io.grants.grant(self.backend, self.table_frame, true) {
            Ok(g) => g,
            Err(_) => {
                let _ = io.grants.end(key_gref);
                return Err(ControlError::Grant);
            }
        };
        io.memory.write(self.key_frame, 0, config.key());
        let mut entry = [0u8; 4 * 16];
        for (chunk_index, chunk) in config.table[..table_len].chunks(16).enumerate() {
            for (i, q) in chunk.iter().enumerate() {
                entry[i * 4..i * 4 + 4].copy_from_slice(&q.to_le_bytes());
            }
            io.memory.write(
                self.table_frame,
                chunk_index * 64,
                &entry[..chunk.len() * 4],
            );
        }
        let steps = [
            (
                XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM,
                [XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ, 0, 0],
            ),
            (
                XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS,
                [config.hash_types.bits(), 0, 0],
            ),
            (
                XEN_NETIF_CTRL_TYPE_SET_HASH_KEY,
                [key_gref, config.key_len as u32, 0],
            ),
            (
                XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE,
                [table_len as u32, 0, 0],
            ),
            (
                XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING,
                [table_gref, table_len as u32, 0],
            ),
        ];
        let Some(ring) = self.ring.as_mut() else {
            return Err(ControlError::NotAttached);
        };
        if ring.free_requests() < STEPS as u32 {
            let _ = io.grants.end(key_gref);
            let _ = io.grants.end(table_gref);
            return Err(ControlError::Busy);
        }
        for (i, (ctrl_type, data)) in steps.into_iter().enumerate() {
            let req = XenNetifCtrlRequest {
                id: self.next_id,
                ctrl_type,
                data,
            };
            self.next_id = self.next_id.wrapping_add(1);
            if ring.push_request(&req).is_err() {
                // Checked above; a failure here means the ring's indexes are corrupt.
                self.failed = true;
                let _ = io.grants.end(key_gref);
                let _ = io.grants.end(table_gref);
                return Err(ControlError::BadResponse);
            }
            self.sent[i] = req;
        }
        self.data_grefs = Some((key_gref, table_gref));
        self.answered = 0;
        self.in_flight = true;
        self.pending = Some(*config);
        if ring.push_requests_and_check_notify() {
            io.events.notify(0, RingKind::Control);
        }
        Ok(())
    }

    /// Takes the responses (from the control channel's handler). `None` while the
    /// configuration is still in flight (or none was sent); `Some(Ok(()))` once every request
    /// succeeded; `Some(Err(..))` at the first refusal or bad response (a bad response also
    /// makes the ring unusable until it is attached again).
    pub fn poll<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        io: &mut Io<'_, G, N, M>,
    ) -> Option<Result<(), ControlError>> {
        if !self.in_flight {
            return None;
        }
        let ring = self.ring.as_mut()?;
        let mut refused = None;
        while self.answered < STEPS {
            // Copied out of the ring once; only the copy is looked at.
            let rsp = match ring.take_response() {
                Ok(Some(r)) => r,
                Ok(None) => match ring.final_check_for_responses() {
                    Ok(true) => continue,
                    Ok(false) => return None,
                    Err(_) => return Some(self.finish(io, Err(ControlError::BadResponse))),
                },
                Err(_) => return Some(self.finish(io, Err(ControlError::BadResponse))),
            };
            let req = self.sent[self.answered];
            if rsp.id != req.id || rsp.ctrl_type != req.ctrl_type {
                self.failed = true;
                return Some(self.finish(io, Err(ControlError::BadResponse)));
            }
            if rsp.status != XEN_NETIF_CTRL_STATUS_SUCCESS && refused.is_none() {
                refused = Some(ControlError::Refused {
                    ctrl_type: req.ctrl_type,
                    status: rsp.status,
                });
            }
            self.answered += 1;
            if let Some(e) = refused {
                // The later requests depend on this one; their answers are taken as they
                // come, but the configuration has failed.
                if self.answered == STEPS {
                    return Some(self.finish(io, Err(e)));
                }
            }
        }
        Some(self.finish(io, refused.map_or(Ok(()), Err)))
    }

    fn finish<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        io: &mut Io<'_, G, N, M>,
        outcome: Result<(), ControlError>,
    ) -> Result<(), ControlError> {
        self.in_flight = false;
        // Every response is in (or the ring is given up): the backend has finished copying.
        if self.answered == STEPS {
            if let Some((k, t)) = self.data_grefs.take() {
                let _ = io.grants.end(k);
                let _ = io.grants.end(t);
            }
        }
        let pending = self.pending.take();
        if outcome.is_ok() {
            self.applied = pending;
        }
        outcome
    }

    /// The backend went away: the grants end, the ring is dropped. Returns whether every
    /// grant could be ended (a `false` means a page is still mapped by the backend and must
    /// not be reused).
    pub fn disconnect<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        io: &mut Io<'_, G, N, M>,
    ) -> bool {
        let mut clean = true;
        let mut end = |g: GrantRef| {
            clean &= matches!(io.grants.end(g), Ok(Revocation::Revoked));
        };
        if let Some((k, t)) = self.data_grefs.take() {
            end(k);
            end(t);
        }
        if let Some(g) = self.ring_gref.take() {
            end(g);
        }
        self.ring = None;
        self.in_flight = false;
        self.failed = false;
        self.pending = None;
        clean
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::testing::{TestEvents, TestGrants, TestMemory};
    use std::vec::Vec;
    use xen_abi::netif::{
        XEN_NETIF_CTRL_HASH_ALGORITHM_NONE, XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW,
        XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER, XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED,
    };
    use xen_ring::testing::MockBackend;

    /// The key of Microsoft's "Verifying the RSS Hash Calculation".
    const MS_KEY: [u8; 40] = [
        0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f,
        0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30,
        0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
    ];

    #[test]
    fn toeplitz_matches_the_ipv4_verification_suite() {
        // (destination, destination port, source, source port, IPv4 hash, IPv4 + TCP hash)
        type Case = ([u8; 4], u16, [u8; 4], u16, u32, u32);
        let cases: [Case; 5] = [
            (
                [161, 142, 100, 80],
                1766,
                [66, 9, 149, 187],
                2794,
                0x323e_8fc2,
                0x51cc_c178,
            ),
            (
                [65, 69, 140, 83],
                4739,
                [199, 92, 111, 2],
                14230,
                0xd718_262a,
                0xc626_b0ea,
            ),
            (
                [12, 22, 207, 184],
                38024,
                [24, 19, 198, 95],
                12898,
                0xd2d0_a5de,
                0x5c2b_394a,
            ),
            (
                [209, 142, 163, 6],
                2217,
                [38, 27, 205, 30],
                48228,
                0x8298_9176,
                0xafc7_327f,
            ),
            (
                [202, 188, 127, 2],
                1303,
                [153, 39, 163, 191],
                44251,
                0x5d18_09c5,
                0x10e8_28a2,
            ),
        ];
        let mut buf = [0u8; 36];
        for (dst, dport, src, sport, ip, tcp) in cases {
            let n = ipv4_input(src, dst, None, &mut buf);
            assert_eq!(toeplitz(&MS_KEY, &buf[..n]), ip, "{dst:?}");
            let n = ipv4_input(src, dst, Some((sport, dport)), &mut buf);
            assert_eq!(toeplitz(&MS_KEY, &buf[..n]), tcp, "{dst:?} tcp");
        }
    }

    fn v6(words: [u16; 8]) -> [u8; 16] {
        let mut a = [0u8; 16];
        for (i, w) in words.iter().enumerate() {
            a[2 * i..2 * i + 2].copy_from_slice(&w.to_be_bytes());
        }
        a
    }

    #[test]
    fn toeplitz_matches_the_ipv6_verification_suite() {
        let cases = [
            (
                v6([0x3ffe, 0x2501, 0x200, 3, 0, 0, 0, 1]),
                1766,
                v6([0x3ffe, 0x2501, 0x200, 0x1fff, 0, 0, 0, 7]),
                2794,
                0x2cc1_8cd5u32,
                0x4020_7d3du32,
            ),
            (
                v6([0xff02, 0, 0, 0, 0, 0, 0, 1]),
                4739,
                v6([0x3ffe, 0x501, 8, 0, 0x260, 0x97ff, 0xfe40, 0xefab]),
                14230,
                0x0f0c_461c,
                0xdde5_1bbf,
            ),
            (
                v6([0xfe80, 0, 0, 0, 0x200, 0xf8ff, 0xfe21, 0x67cf]),
                38024,
                v6([0x3ffe, 0x1900, 0x4545, 3, 0x200, 0xf8ff, 0xfe21, 0x67cf]),
                44251,
                0x4b61_e985,
                0x02d1_feef,
            ),
        ];
        let mut buf = [0u8; 36];
        for (dst, dport, src, sport, ip, tcp) in cases {
            let n = ipv6_input(src, dst, None, &mut buf);
            assert_eq!(toeplitz(&MS_KEY, &buf[..n]), ip);
            let n = ipv6_input(src, dst, Some((sport, dport)), &mut buf);
            assert_eq!(toeplitz(&MS_KEY, &buf[..n]), tcp);
        }
    }

    #[test]
    fn a_short_key_is_zero_extended() {
        let input = [0xffu8; 12];
        let mut padded = [0u8; MAX_KEY];
        padded[..5].copy_from_slice(&MS_KEY[..5]);
        assert_eq!(toeplitz(&MS_KEY[..5], &input), toeplitz(&padded, &input));
        assert_eq!(toeplitz(&[], &input), 0);
    }

    /// What netback keeps, with its rules (Linux's `hash.c`).
    #[derive(Default)]
    struct Model {
        alg: u32,
        flags: u32,
        key: Vec<u8>,
        size: u32,
        table: Vec<u32>,
        refuse: Option<u16>,
    }

    fn serve(
        back: &mut MockBackend<XenNetifCtrlRequest, XenNetifCtrlResponse>,
        model: &mut Model,
        grants: &TestGrants,
        mem: &TestMemory,
        queues: u32,
    ) {
        back.serve(|req| {
            let d = req.data;
            let status = if Some(req.ctrl_type) == model.refuse {
                XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED
            } else {
                match req.ctrl_type {
                    XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM => {
                        model.alg = d[0];
                        0
                    }
                    XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS
                        if model.alg == XEN_NETIF_CTRL_HASH_ALGORITHM_NONE =>
                    {
                        XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED
                    }
                    XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS => {
                        model.flags = d[0];
                        0
                    }
                    XEN_NETIF_CTRL_TYPE_SET_HASH_KEY if d[1] > 40 => {
                        XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW
                    }
                    XEN_NETIF_CTRL_TYPE_SET_HASH_KEY => {
                        let (frame, _) = grants.lookup(d[0]).expect("key page granted");
                        let mut key = std::vec![0u8; d[1] as usize];
                        mem.read(frame, 0, &mut key);
                        model.key = key;
                        0
                    }
                    XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE if d[0] > 128 => {
                        XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER
                    }
                    XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE => {
                        model.size = d[0];
                        model.table = std::vec![0; d[0] as usize];
                        0
                    }
                    XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING => {
                        let (frame, _) = grants.lookup(d[0]).expect("table page granted");
                        let (len, off) = (d[1], d[2]);
                        if off + len > model.size {
                            XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER
                        } else {
                            let mut raw = std::vec![0u8; 4 * len as usize];
                            mem.read(frame, 0, &mut raw);
                            let entries: Vec<u32> = raw
                                .chunks_exact(4)
                                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                                .collect();
                            if entries.iter().any(|&q| q >= queues) {
                                XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER
                            } else {
                                model.table[off as usize..(off + len) as usize]
                                    .copy_from_slice(&entries);
                                0
                            }
                        }
                    }
                    _ => XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED,
                }
            };
            XenNetifCtrlResponse {
                id: req.id,
                ctrl_type: req.ctrl_type,
                status,
                data: 0,
            }
        })
        .expect("serve");
    }

    fn config(queues: u32) -> RssConfig {
        let mut table = [0u32; MAX_TABLE];
        for (i, e) in table.iter_mut().enumerate() {
            *e = (i as u32 * 7 + 3) % queues;
        }
        RssConfig {
            hash_types: HashTypes {
                ipv4: true,
                tcp_ipv4: true,
                ipv6: false,
                tcp_ipv6: true,
            },
            key: MS_KEY,
            key_len: 40,
            table,
            table_len: 128,
        }
    }

    struct Rig {
        ctrl: ControlRing,
        back: MockBackend<XenNetifCtrlRequest, XenNetifCtrlResponse>,
        grants: TestGrants,
        events: TestEvents,
        mem: TestMemory,
    }

    fn rig() -> Rig {
        let ring = RingMemory::allocate(0).expect("ring memory");
        let back = MockBackend::attach(ring.clone()).expect("backend");
        let mut rig = Rig {
            ctrl: ControlRing::EMPTY,
            back,
            grants: TestGrants::default(),
            events: TestEvents {
                queues: 1,
                ..TestEvents::default()
            },
            mem: TestMemory::default(),
        };
        let mut io = Io::new(&mut rig.grants, &mut rig.events, &mut rig.mem);
        rig.ctrl
            .attach(0, (ring, 10), 11, 12, &mut io)
            .expect("attach");
        rig
    }

    impl Rig {
        fn run(
            &mut self,
            model: &mut Model,
            cfg: &RssConfig,
            queues: u32,
        ) -> Result<(), ControlError> {
            let mut io = Io::new(&mut self.grants, &mut self.events, &mut self.mem);
            self.ctrl.configure(cfg, queues, &mut io)?;
            assert_eq!(self.events.notifies.last(), Some(&(0, RingKind::Control)));
            serve(&mut self.back, model, &self.grants, &self.mem, queues);
            let mut io = Io::new(&mut self.grants, &mut self.events, &mut self.mem);
            self.ctrl.poll(&mut io).expect("every response is in")
        }
    }

    #[test]
    fn a_configuration_reaches_the_backend_whole() {
        let mut rig = rig();
        let mut model = Model::default();
        let cfg = config(4);
        assert_eq!(rig.run(&mut model, &cfg, 4), Ok(()));
        assert_eq!(model.alg, XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ);
        assert_eq!(model.flags, 0b1011);
        assert_eq!(model.key, MS_KEY);
        assert_eq!(model.table, cfg.table.to_vec());
        assert_eq!(rig.ctrl.applied(), Some(cfg));
        // Only the ring stays granted.
        assert_eq!(rig.grants.live(), 1);
        let mut io = Io::new(&mut rig.grants, &mut rig.events, &mut rig.mem);
        assert!(rig.ctrl.disconnect(&mut io));
        assert_eq!(rig.grants.live(), 0);
    }

    #[test]
    fn a_short_table_and_key_are_sent_as_they_are() {
        let mut rig = rig();
        let mut model = Model::default();
        let mut cfg = config(2);
        cfg.key_len = 16;
        cfg.table_len = 5;
        assert_eq!(rig.run(&mut model, &cfg, 2), Ok(()));
        assert_eq!(model.key, MS_KEY[..16]);
        assert_eq!(model.table, cfg.table[..5]);
        assert_eq!(cfg.queue_for(7), cfg.table[2]);
    }

    #[test]
    fn a_refusal_names_the_request_and_keeps_the_old_configuration() {
        let mut rig = rig();
        let mut model = Model::default();
        let first = config(4);
        assert_eq!(rig.run(&mut model, &first, 4), Ok(()));
        model.refuse = Some(XEN_NETIF_CTRL_TYPE_SET_HASH_KEY);
        let mut second = config(4);
        second.key[0] ^= 1;
        assert_eq!(
            rig.run(&mut model, &second, 4),
            Err(ControlError::Refused {
                ctrl_type: XEN_NETIF_CTRL_TYPE_SET_HASH_KEY,
                status: XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED
            })
        );
        assert_eq!(rig.ctrl.applied(), Some(first));
        assert_eq!(rig.grants.live(), 1);
        // The ring is still usable.
        model.refuse = None;
        assert_eq!(rig.run(&mut model, &second, 4), Ok(()));
    }

    #[test]
    fn invalid_configurations_are_refused_before_the_ring() {
        let mut rig = rig();
        let mut io = Io::new(&mut rig.grants, &mut rig.events, &mut rig.mem);
        let mut cfg = config(4);
        assert_eq!(
            rig.ctrl.configure(&cfg, 3, &mut io),
            Err(ControlError::InvalidConfig)
        );
        cfg.key_len = 41;
        assert_eq!(
            rig.ctrl.configure(&cfg, 4, &mut io),
            Err(ControlError::InvalidConfig)
        );
        cfg.key_len = 40;
        cfg.table_len = 0;
        assert_eq!(
            rig.ctrl.configure(&cfg, 4, &mut io),
            Err(ControlError::InvalidConfig)
        );
        assert!(rig.events.notifies.is_empty());
        assert_eq!(rig.grants.live(), 1);
        let mut unattached = ControlRing::EMPTY;
        let mut io = Io::new(&mut rig.grants, &mut rig.events, &mut rig.mem);
        assert_eq!(
            unattached.configure(&config(4), 4, &mut io),
            Err(ControlError::NotAttached)
        );
    }

    #[test]
    fn a_response_out_of_order_fails_the_ring_without_leaking() {
        let mut rig = rig();
        let mut io = Io::new(&mut rig.grants, &mut rig.events, &mut rig.mem);
        rig.ctrl
            .configure(&config(4), 4, &mut io)
            .expect("configure");
        assert!(rig.ctrl.in_flight());
        assert_eq!(
            rig.ctrl.configure(&config(4), 4, &mut io),
            Err(ControlError::Busy)
        );
        rig.back
            .serve(|req| XenNetifCtrlResponse {
                id: req.id.wrapping_add(1),
                ctrl_type: req.ctrl_type,
                status: 0,
                data: 0,
            })
            .expect("serve");
        let mut io = Io::new(&mut rig.grants, &mut rig.events, &mut rig.mem);
        assert_eq!(rig.ctrl.poll(&mut io), Some(Err(ControlError::BadResponse)));
        assert_eq!(rig.ctrl.applied(), None);
        assert_eq!(
            rig.ctrl.configure(&config(4), 4, &mut io),
            Err(ControlError::NotAttached)
        );
        assert!(rig.ctrl.disconnect(&mut io));
        assert_eq!(rig.grants.live(), 0);
    }
}
