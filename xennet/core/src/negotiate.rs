//! Connect-time negotiation: the backend's xenstore features, the frontend's choices, and the
//! nodes the frontend publishes (`io/netif.h`'s xenstore protocol).
//!
//! Feature nodes are directional. A backend's `feature-sg`, `feature-gso-tcpv4/6`,
//! `feature-no-csum-offload` and `feature-ipv6-csum-offload` say what it accepts on the
//! *transmit* ring; the frontend's nodes of the same names say what the frontend accepts on the
//! *receive* ring. This core accepts everything on receive (multi-slot packets, GSO packets,
//! blank checksums of IPv4 and IPv6, which it fills in), so it always publishes them; what it
//! uses on transmit is what the backend offers and the configuration allows, and what is
//! missing it does in software.

use core::fmt::{self, Write};

use xen_abi::types::GrantRef;
use xenpci_core::xenbus::{parse_mac, FixedStr, FrontendStore};
use xenpci_core::xenstore::XsError;

use crate::types::MacAddress;

/// The most queues the core drives.
pub const MAX_QUEUES: u32 = 8;

/// The smallest MTU accepted from the backend (IPv4's minimum datagram size).
pub const MIN_MTU: u32 = 68;
/// The largest MTU accepted: a frame of 65535 bytes, the largest a netif packet can be.
pub const MAX_MTU: u32 = 65535 - 14;
/// The MTU when the backend does not say.
pub const DEFAULT_MTU: u32 = 1500;

/// Why a node could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeatureError {
    /// A node that must exist is missing.
    Missing {
        /// The node.
        node: &'static str,
    },
    /// The node does not hold a decimal number (or is too long to be one).
    NotANumber {
        /// The node.
        node: &'static str,
    },
    /// The number is outside the range the protocol allows.
    OutOfRange {
        /// The node.
        node: &'static str,
        /// The value read.
        value: u64,
    },
    /// `mac` is not `xx:xx:xx:xx:xx:xx`, or is a group or all-zero address.
    BadMac,
    /// The backend cannot copy into our buffers (`feature-rx-copy` missing or 0); flipping
    /// pages is not supported.
    NoRxCopy,
    /// Reading the store failed for another reason than the node missing.
    Store {
        /// The node.
        node: &'static str,
        /// The failure.
        error: XsError,
    },
}

impl fmt::Display for FeatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FeatureError::Missing { node } => write!(f, "node {node} is missing"),
            FeatureError::NotANumber { node } => write!(f, "node {node} is not a number"),
            FeatureError::OutOfRange { node, value } => {
                write!(f, "node {node} = {value} is out of range")
            }
            FeatureError::BadMac => write!(f, "mac is not a usable unicast address"),
            FeatureError::NoRxCopy => write!(f, "the backend does not offer feature-rx-copy"),
            FeatureError::Store { node, error } => write!(f, "reading {node} failed: {error:?}"),
        }
    }
}

/// Which directory a node is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The frontend's own directory (the toolstack writes `mac` there).
    Frontend,
    /// The backend's directory.
    Backend,
}

/// What the backend offers (and the MAC the toolstack assigned), read at `InitWait`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendFeatures {
    /// `mac` (frontend directory).
    pub mac: MacAddress,
    /// `mtu` (backend directory; [`DEFAULT_MTU`] when absent).
    pub mtu: u32,
    /// `feature-rx-copy`.
    pub rx_copy: bool,
    /// `feature-sg`: multi-slot transmit packets accepted.
    pub sg: bool,
    /// `feature-gso-tcpv4`.
    pub gso_tcpv4: bool,
    /// `feature-gso-tcpv6`.
    pub gso_tcpv6: bool,
    /// Not `feature-no-csum-offload`: IPv4 TCP/UDP packets may be sent with a blank checksum.
    pub csum_ipv4: bool,
    /// `feature-ipv6-csum-offload`.
    pub csum_ipv6: bool,
    /// `feature-split-event-channels`.
    pub split_event_channels: bool,
    /// `multi-queue-max-queues` (1 when absent).
    pub max_queues: u32,
    /// `feature-ctrl-ring`: the shell may attach a [`ControlRing`](crate::ControlRing).
    pub ctrl_ring: bool,
    /// `feature-multicast-control` (recorded; not driven yet).
    pub multicast_control: bool,
    /// `feature-dynamic-multicast-control` (recorded; not driven yet).
    pub dynamic_multicast_control: bool,
}

fn trimmed(raw: &[u8]) -> &[u8] {
    let mut s = raw;
    while let [rest @ .., 0 | b'\n' | b' '] = s {
        s = rest;
    }
    s
}

fn parse_u64(node: &'static str, raw: &[u8]) -> Result<u64, FeatureError> {
    let s = trimmed(raw);
    if s.is_empty() {
        return Err(FeatureError::NotANumber { node });
    }
    let mut v: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return Err(FeatureError::NotANumber { node });
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or(FeatureError::NotANumber { node })?;
    }
    Ok(v)
}

/// Parses a `mac` node and checks it names a unicast, non-zero address.
pub fn parse_unicast_mac(raw: &[u8]) -> Result<MacAddress, FeatureError> {
    let mac = parse_mac(trimmed(raw)).ok_or(FeatureError::BadMac)?;
    if mac[0] & 1 != 0 || mac == [0; 6] {
        return Err(FeatureError::BadMac);
    }
    Ok(MacAddress(mac))
}

impl BackendFeatures {
    /// Parses the nodes through `read`, which copies the value of `node` in directory `side`
    /// into the buffer and returns its length, `Ok(None)` if the node does not exist.
    pub fn parse(
        mut read: impl FnMut(Side, &'static str, &mut [u8]) -> Result<Option<usize>, FeatureError>,
    ) -> Result<Self, FeatureError> {
        let mut buf = [0u8; 32];
        let mut get = |side, node: &'static str, buf: &mut [u8; 32]| -> Result<Option<usize>, _> {
            match read(side, node, buf)? {
                Some(n) if n > buf.len() => Err(FeatureError::NotANumber { node }),
                other => Ok(other),
            }
        };
        macro_rules! num {
            ($node:literal) => {
                match get(Side::Backend, $node, &mut buf)? {
                    Some(n) => Some(parse_u64($node, &buf[..n])?),
                    None => None,
                }
            };
        }
        macro_rules! flag {
            ($node:literal, $default:expr) => {
                num!($node).map_or($default, |v| v != 0)
            };
        }
        let mac = match get(Side::Frontend, "mac", &mut buf)? {
            Some(n) => parse_unicast_mac(&buf[..n])?,
            None => return Err(FeatureError::Missing { node: "mac" }),
        };
        let mtu = match num!("mtu") {
            None => DEFAULT_MTU,
            Some(v) if (u64::from(MIN_MTU)..=u64::from(MAX_MTU)).contains(&v) => v as u32,
            Some(value) => return Err(FeatureError::OutOfRange { node: "mtu", value }),
        };
        let max_queues = match num!("multi-queue-max-queues") {
            None => 1,
            Some(0) => {
                return Err(FeatureError::OutOfRange {
                    node: "multi-queue-max-queues",
                    value: 0,
                })
            }
            Some(v) => v.min(u64::from(u32::MAX)) as u32,
        };
        Ok(BackendFeatures {
            mac,
            mtu,
            rx_copy: flag!("feature-rx-copy", false),
            sg: flag!("feature-sg", false),
            gso_tcpv4: flag!("feature-gso-tcpv4", false),
            gso_tcpv6: flag!("feature-gso-tcpv6", false),
            csum_ipv4: !flag!("feature-no-csum-offload", false),
            csum_ipv6: flag!("feature-ipv6-csum-offload", false),
            split_event_channels: flag!("feature-split-event-channels", false),
            max_queues,
            ctrl_ring: flag!("feature-ctrl-ring", false),
            multicast_control: flag!("feature-multicast-control", false),
            dynamic_multicast_control: flag!("feature-dynamic-multicast-control", false),
        })
    }

    /// Parses the nodes from the store (a missing node is `ENOENT`).
    pub fn read_from(store: &mut dyn FrontendStore) -> Result<Self, FeatureError> {
        Self::parse(|side, node, buf| {
            let r = match side {
                Side::Frontend => store.read(node, buf),
                Side::Backend => store.read_backend(node, buf),
            };
            match r {
                Ok(n) => Ok(Some(n)),
                Err(e) if e.is_enoent() => Ok(None),
                Err(error) => Err(FeatureError::Store { node, error }),
            }
        })
    }
}

/// What the frontend is willing to use on transmit (receive always accepts everything).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrontendConfig {
    /// The most queues to use (capped at [`MAX_QUEUES`]).
    pub max_queues: u32,
    /// Use split event channels when offered.
    pub split_event_channels: bool,
    /// Send multi-slot packets when the backend accepts them.
    pub sg: bool,
    /// Hand large sends to the backend as GSO when it accepts them.
    pub gso: bool,
    /// Leave checksums to the backend when it accepts blank ones.
    pub checksum_offload: bool,
}

impl Default for FrontendConfig {
    fn default() -> Self {
        FrontendConfig {
            max_queues: MAX_QUEUES,
            split_event_channels: true,
            sg: true,
            gso: true,
            checksum_offload: true,
        }
    }
}

/// The parameters the frontend settled on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrontendParams {
    /// Queues (pairs of rings); `multi-queue-num-queues` is written when above 1.
    pub queues: u32,
    /// Separate transmit and receive event channels.
    pub split_event_channels: bool,
    /// Multi-slot transmit packets.
    pub sg: bool,
    /// GSO for TCP over IPv4 on transmit.
    pub gso_tcpv4: bool,
    /// GSO for TCP over IPv6 on transmit.
    pub gso_tcpv6: bool,
    /// Blank checksums for IPv4 on transmit.
    pub csum_ipv4: bool,
    /// Blank checksums for IPv6 on transmit.
    pub csum_ipv6: bool,
    /// The MTU.
    pub mtu: u32,
    /// The MAC address.
    pub mac: MacAddress,
}

impl FrontendParams {
    /// Settles the parameters from the configuration and the backend's offer. The backend must
    /// offer `feature-rx-copy`.
    pub fn negotiate(
        config: &FrontendConfig,
        backend: &BackendFeatures,
    ) -> Result<Self, FeatureError> {
        if !backend.rx_copy {
            return Err(FeatureError::NoRxCopy);
        }
        let sg = config.sg && backend.sg;
        // GSO packets span several slots: Linux's netback refuses GSO without scatter-gather.
        let gso = config.gso && sg;
        Ok(FrontendParams {
            queues: config
                .max_queues
                .clamp(1, MAX_QUEUES)
                .min(backend.max_queues.max(1)),
            split_event_channels: config.split_event_channels && backend.split_event_channels,
            sg,
            gso_tcpv4: gso && backend.gso_tcpv4,
            gso_tcpv6: gso && backend.gso_tcpv6,
            csum_ipv4: config.checksum_offload && backend.csum_ipv4,
            csum_ipv6: config.checksum_offload && backend.csum_ipv6,
            mtu: backend.mtu,
            mac: backend.mac,
        })
    }

    /// The most slots one transmitted packet may use: `XEN_NETIF_NR_SLOTS_MIN` with
    /// scatter-gather (what every backend must accept), 1 without.
    pub fn max_tx_slots(&self) -> usize {
        if self.sg {
            xen_abi::netif::XEN_NETIF_NR_SLOTS_MIN
        } else {
            1
        }
    }

    /// Calls `write(key, value)` for every node the frontend publishes, given each queue's
    /// transmit and receive ring references and event channels (`(tx, rx)`; the same port
    /// twice without split event channels).
    ///
    /// Fails with [`NodeError::Shape`] when fewer entries than queues are given.
    pub fn write_nodes<E>(
        &self,
        rings: &[(GrantRef, GrantRef)],
        channels: &[(u32, u32)],
        mut write: impl FnMut(&str, &str) -> Result<(), E>,
    ) -> Result<(), NodeError<E>> {
        let queues = self.queues as usize;
        if rings.len() < queues || channels.len() < queues {
            return Err(NodeError::Shape);
        }
        let mut key: FixedStr<40> = FixedStr::new();
        let mut value: FixedStr<24> = FixedStr::new();
        macro_rules! emit {
            ($val:expr) => {{
                value.clear();
                write!(value, "{}", $val).map_err(|_| NodeError::Shape)?;
                write(key.as_str(), value.as_str()).map_err(NodeError::Store)?;
            }};
        }
        macro_rules! node {
            ($prefix:expr, $name:expr) => {{
                key.truncate($prefix);
                key.push_str($name).map_err(|_| NodeError::Shape)?;
            }};
        }
        if queues > 1 {
            node!(0, "multi-queue-num-queues");
            emit!(queues);
        }
        for q in 0..queues {
            key.clear();
            if queues > 1 {
                write!(key, "queue-{q}/").map_err(|_| NodeError::Shape)?;
            }
            let prefix = key.len();
            node!(prefix, "tx-ring-ref");
            emit!(rings[q].0);
            node!(prefix, "rx-ring-ref");
            emit!(rings[q].1);
            if self.split_event_channels {
                node!(prefix, "event-channel-tx");
                emit!(channels[q].0);
                node!(prefix, "event-channel-rx");
                emit!(channels[q].1);
            } else {
                node!(prefix, "event-channel");
                emit!(channels[q].0);
            }
        }
        for (name, v) in [
            ("request-rx-copy", 1),
            ("feature-rx-notify", 1),
            ("feature-sg", 1),
            ("feature-gso-tcpv4", 1),
            ("feature-gso-tcpv6", 1),
            ("feature-no-csum-offload", 0),
            ("feature-ipv6-csum-offload", 1),
        ] {
            node!(0, name);
            emit!(v);
        }
        Ok(())
    }

    /// [`write_nodes`](Self::write_nodes) into the store (inside the publishing transaction).
    pub fn publish(
        &self,
        rings: &[(GrantRef, GrantRef)],
        channels: &[(u32, u32)],
        store: &mut dyn FrontendStore,
    ) -> Result<(), NodeError<XsError>> {
        self.write_nodes(rings, channels, |k, v| store.write(k, v.as_bytes()))
    }
}

/// Why the nodes could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeError<E> {
    /// Not enough ring references or event channels for the queues negotiated.
    Shape,
    /// Writing a node failed.
    Store(E),
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::{String, ToString};
    use std::vec::Vec;

    fn parse(
        front: &[(&str, &str)],
        back: &[(&str, &str)],
    ) -> Result<BackendFeatures, FeatureError> {
        BackendFeatures::parse(|side, node, buf| {
            let list = if side == Side::Frontend { front } else { back };
            Ok(list.iter().find(|(k, _)| *k == node).map(|(_, v)| {
                buf[..v.len()].copy_from_slice(v.as_bytes());
                v.len()
            }))
        })
    }

    const MAC: (&str, &str) = ("mac", "00:16:3e:0a:0b:0c");

    #[test]
    fn defaults_of_a_silent_backend() {
        let f = parse(&[MAC], &[]).unwrap();
        assert_eq!(f.mac, MacAddress([0, 0x16, 0x3e, 0x0a, 0x0b, 0x0c]));
        assert_eq!(f.mtu, DEFAULT_MTU);
        assert_eq!(f.max_queues, 1);
        assert!(f.csum_ipv4, "IPv4 checksum offload is on unless refused");
        assert!(!f.csum_ipv6 && !f.sg && !f.gso_tcpv4 && !f.rx_copy);
        assert_eq!(
            FrontendParams::negotiate(&FrontendConfig::default(), &f),
            Err(FeatureError::NoRxCopy)
        );
    }

    #[test]
    fn mac_and_mtu_are_validated() {
        assert_eq!(parse(&[], &[]), Err(FeatureError::Missing { node: "mac" }));
        for bad in [
            "01:16:3e:0a:0b:0c",
            "00:00:00:00:00:00",
            "00:16:3e:0a:0b",
            "zz:16:3e:0a:0b:0c",
        ] {
            assert_eq!(
                parse(&[("mac", bad)], &[]),
                Err(FeatureError::BadMac),
                "{bad}"
            );
        }
        assert_eq!(
            parse(&[("mac", "00:16:3E:0A:0B:0C\n")], &[]).unwrap().mac.0[3],
            0x0a
        );
        assert_eq!(parse(&[MAC], &[("mtu", "9000")]).unwrap().mtu, 9000);
        for (v, n) in [("67", 67), ("65522", 65522)] {
            assert_eq!(
                parse(&[MAC], &[("mtu", v)]),
                Err(FeatureError::OutOfRange {
                    node: "mtu",
                    value: n
                })
            );
        }
        assert_eq!(
            parse(&[MAC], &[("mtu", "15x")]),
            Err(FeatureError::NotANumber { node: "mtu" })
        );
        assert_eq!(
            parse(&[MAC], &[("multi-queue-max-queues", "0")]),
            Err(FeatureError::OutOfRange {
                node: "multi-queue-max-queues",
                value: 0
            })
        );
    }

    #[test]
    fn negotiation_takes_the_smaller_offer() {
        let f = parse(
            &[MAC],
            &[
                ("feature-rx-copy", "1"),
                ("feature-sg", "1"),
                ("feature-gso-tcpv4", "1"),
                ("feature-gso-tcpv6", "0"),
                ("feature-no-csum-offload", "1"),
                ("feature-ipv6-csum-offload", "1"),
                ("feature-split-event-channels", "1"),
                ("multi-queue-max-queues", "64"),
            ],
        )
        .unwrap();
        let p = FrontendParams::negotiate(&FrontendConfig::default(), &f).unwrap();
        assert_eq!(p.queues, MAX_QUEUES);
        assert!(p.sg && p.gso_tcpv4 && !p.gso_tcpv6 && !p.csum_ipv4 && p.csum_ipv6);
        assert_eq!(p.max_tx_slots(), 18);
        // GSO needs scatter-gather.
        let cfg = FrontendConfig {
            sg: false,
            max_queues: 2,
            ..FrontendConfig::default()
        };
        let p = FrontendParams::negotiate(&cfg, &f).unwrap();
        assert!(!p.gso_tcpv4 && p.queues == 2 && p.max_tx_slots() == 1);
    }

    fn nodes(p: &FrontendParams) -> Vec<(String, String)> {
        let mut out = Vec::new();
        p.write_nodes::<()>(&[(10, 11), (12, 13)], &[(5, 6), (7, 8)], |k, v| {
            out.push((k.to_string(), v.to_string()));
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn nodes_for_one_and_two_queues() {
        let f = parse(&[MAC], &[("feature-rx-copy", "1")]).unwrap();
        let mut p = FrontendParams::negotiate(&FrontendConfig::default(), &f).unwrap();
        let one = nodes(&p);
        let keys: Vec<&str> = one.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "tx-ring-ref",
                "rx-ring-ref",
                "event-channel",
                "request-rx-copy",
                "feature-rx-notify",
                "feature-sg",
                "feature-gso-tcpv4",
                "feature-gso-tcpv6",
                "feature-no-csum-offload",
                "feature-ipv6-csum-offload"
            ]
        );
        assert_eq!(one[0].1, "10");
        assert_eq!(one[2].1, "5");
        p.queues = 2;
        p.split_event_channels = true;
        let two = nodes(&p);
        assert_eq!(two[0], ("multi-queue-num-queues".into(), "2".into()));
        assert!(two.contains(&("queue-1/tx-ring-ref".into(), "12".into())));
        assert!(two.contains(&("queue-1/event-channel-rx".into(), "8".into())));
        assert!(two.contains(&("queue-0/event-channel-tx".into(), "5".into())));
        assert!(!two.iter().any(|(k, _)| k.ends_with("/event-channel")));
        p.queues = 3;
        assert_eq!(
            p.write_nodes::<()>(&[(1, 2)], &[(1, 1)], |_, _| Ok(())),
            Err(NodeError::Shape)
        );
    }
}
