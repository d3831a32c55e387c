//! Connect-time negotiation: the backend's xenstore features, the frontend's choices, and the
//! nodes the frontend publishes.

use core::fmt::{self, Write};

use xen_abi::blkif::{VdiskInfo, BLKIF_MAX_INDIRECT_SEGMENTS, BLKIF_MAX_SEGMENTS_PER_REQUEST};
use xen_abi::types::GrantRef;
use xenpci_core::xenbus::{FixedStr, FrontendStore};
use xenpci_core::xenstore::XsError;

use super::layout::Layout;
use crate::types::{DiscardInfo, DiskInfo};

/// The largest ring-page order the frontend ever asks for (16 pages).
pub const MAX_RING_PAGE_ORDER: u32 = 4;

/// The most queues (rings) the frontend ever uses.
pub const MAX_QUEUES: u32 = 16;

/// Why a backend node could not be used.
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
    /// The node holds an unknown word (`device-type`, `mode`).
    UnknownValue {
        /// The node.
        node: &'static str,
    },
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
            FeatureError::Missing { node } => write!(f, "backend node {node} is missing"),
            FeatureError::NotANumber { node } => write!(f, "backend node {node} is not a number"),
            FeatureError::OutOfRange { node, value } => {
                write!(f, "backend node {node} = {value} is out of range")
            }
            FeatureError::UnknownValue { node } => {
                write!(f, "backend node {node} holds an unknown value")
            }
            FeatureError::Store { node, error } => {
                write!(f, "reading backend node {node} failed: {error:?}")
            }
        }
    }
}

/// The kind of device the backend exports (`device-type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceType {
    /// A disk (`disk`, or no node).
    #[default]
    Disk,
    /// A CD-ROM (`cdrom`).
    Cdrom,
}

/// What the backend offers, read from its xenstore directory.
///
/// The ring-related nodes are meaningful at `InitWait`; the disk geometry (`sectors`,
/// `sector-size`, …) only at `Connected`, so those are optional here and required by
/// [`disk_info`](Self::disk_info).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BackendFeatures {
    /// `max-ring-page-order` (0 when absent).
    pub max_ring_page_order: u32,
    /// `multi-queue-max-queues` (1 when absent).
    pub max_queues: u32,
    /// `feature-max-indirect-segments` (0 when absent: no indirect requests).
    pub max_indirect_segments: u32,
    /// `feature-persistent`.
    pub persistent: bool,
    /// `feature-flush-cache`.
    pub flush_cache: bool,
    /// `feature-barrier`.
    pub barrier: bool,
    /// `feature-discard` with `discard-granularity`, `discard-alignment`, `discard-secure`.
    pub discard: Option<DiscardInfo>,
    /// `sectors`: capacity in 512-byte sectors.
    pub sectors: Option<u64>,
    /// `sector-size`: the logical block size.
    pub sector_size: Option<u32>,
    /// `physical-sector-size`.
    pub physical_sector_size: Option<u32>,
    /// `info` bits ([`VdiskInfo`]).
    pub info: u32,
    /// `device-type`.
    pub device_type: DeviceType,
    /// `mode` is `r`.
    pub read_only_mode: bool,
    /// `trusted` is 0: the toolstack says the backend must see no guest page (every byte goes
    /// through the engine's own pages). Absent means trusted.
    pub untrusted: bool,
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

fn parse_u32(node: &'static str, raw: &[u8], max: u32) -> Result<u32, FeatureError> {
    let v = parse_u64(node, raw)?;
    if v > u64::from(max) {
        return Err(FeatureError::OutOfRange { node, value: v });
    }
    Ok(v as u32)
}

fn parse_block_size(node: &'static str, raw: &[u8]) -> Result<u32, FeatureError> {
    let v = parse_u64(node, raw)?;
    if !(512..=65536).contains(&v) || !v.is_power_of_two() {
        return Err(FeatureError::OutOfRange { node, value: v });
    }
    Ok(v as u32)
}

impl BackendFeatures {
    /// Parses the backend's nodes through `read`, which copies the value of a node (a name
    /// relative to the backend directory) into the buffer and returns its length, `Ok(None)` if
    /// the node does not exist.
    pub fn parse(
        mut read: impl FnMut(&'static str, &mut [u8]) -> Result<Option<usize>, FeatureError>,
    ) -> Result<Self, FeatureError> {
        let mut buf = [0u8; 32];
        let mut get = |node: &'static str, buf: &mut [u8; 32]| -> Result<Option<usize>, _> {
            match read(node, buf)? {
                Some(n) if n > buf.len() => Err(FeatureError::NotANumber { node }),
                other => Ok(other),
            }
        };
        let mut f = BackendFeatures {
            max_queues: 1,
            ..BackendFeatures::default()
        };
        macro_rules! num {
            ($node:literal, $max:expr) => {
                match get($node, &mut buf)? {
                    Some(n) => Some(parse_u32($node, &buf[..n], $max)?),
                    None => None,
                }
            };
        }
        macro_rules! flag {
            ($node:literal) => {
                match get($node, &mut buf)? {
                    Some(n) => parse_u64($node, &buf[..n])? != 0,
                    None => false,
                }
            };
        }
        f.max_ring_page_order = num!("max-ring-page-order", 16).unwrap_or(0);
        f.max_queues = num!("multi-queue-max-queues", u32::MAX).unwrap_or(1).max(1);
        f.max_indirect_segments = num!("feature-max-indirect-segments", u32::MAX).unwrap_or(0);
        f.persistent = flag!("feature-persistent");
        f.flush_cache = flag!("feature-flush-cache");
        f.barrier = flag!("feature-barrier");
        if flag!("feature-discard") {
            let granularity = num!("discard-granularity", u32::MAX).unwrap_or(0);
            let alignment = num!("discard-alignment", u32::MAX).unwrap_or(0);
            let secure = flag!("discard-secure");
            f.discard = Some(DiscardInfo {
                granularity,
                alignment,
                secure,
            });
        }
        f.sectors = match get("sectors", &mut buf)? {
            Some(n) => Some(parse_u64("sectors", &buf[..n])?),
            None => None,
        };
        f.sector_size = match get("sector-size", &mut buf)? {
            Some(n) => Some(parse_block_size("sector-size", &buf[..n])?),
            None => None,
        };
        f.physical_sector_size = match get("physical-sector-size", &mut buf)? {
            Some(n) => Some(parse_block_size("physical-sector-size", &buf[..n])?),
            None => None,
        };
        if let Some(n) = get("info", &mut buf)? {
            f.info = parse_u32("info", &buf[..n], u32::MAX)?;
        }
        if let Some(n) = get("device-type", &mut buf)? {
            f.device_type = match trimmed(&buf[..n]) {
                b"disk" => DeviceType::Disk,
                b"cdrom" => DeviceType::Cdrom,
                _ => {
                    return Err(FeatureError::UnknownValue {
                        node: "device-type",
                    })
                }
            };
        }
        if let Some(n) = get("trusted", &mut buf)? {
            f.untrusted = parse_u64("trusted", &buf[..n])? == 0;
        }
        if let Some(n) = get("mode", &mut buf)? {
            f.read_only_mode = match trimmed(&buf[..n]) {
                b"r" => true,
                b"w" | b"!" => false,
                _ => return Err(FeatureError::UnknownValue { node: "mode" }),
            };
        }
        Ok(f)
    }

    /// Parses the backend's nodes from the store (a missing node is `ENOENT`).
    pub fn read_from(store: &mut dyn FrontendStore) -> Result<Self, FeatureError> {
        Self::parse(|node, buf| match store.read_backend(node, buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.is_enoent() => Ok(None),
            Err(error) => Err(FeatureError::Store { node, error }),
        })
    }

    /// The disk as the SCSI layer presents it; needs the `Connected` nodes.
    pub fn disk_info(&self) -> Result<DiskInfo, FeatureError> {
        let sectors = self
            .sectors
            .ok_or(FeatureError::Missing { node: "sectors" })?;
        let logical = self.sector_size.ok_or(FeatureError::Missing {
            node: "sector-size",
        })?;
        let info = VdiskInfo::from_bits_truncate(self.info);
        let physical = self.physical_sector_size.unwrap_or(logical).max(logical);
        let discard = self.discard.map(|d| DiscardInfo {
            granularity: if d.granularity == 0 {
                logical
            } else {
                d.granularity
            },
            alignment: d.alignment,
            secure: d.secure,
        });
        Ok(DiskInfo {
            sectors,
            logical_block_size: logical,
            physical_block_size: physical,
            read_only: self.read_only_mode || info.contains(VdiskInfo::READONLY),
            removable: info.contains(VdiskInfo::REMOVABLE),
            cdrom: self.device_type == DeviceType::Cdrom || info.contains(VdiskInfo::CDROM),
            flush: self.flush_cache,
            barrier: self.barrier,
            discard,
        })
    }
}

/// Whether the toolstack trusts the backend, from the frontend's own `trusted` node (libxl
/// writes it there; absent means trusted). The shell folds it, with its registry switch, into
/// [`FrontendConfig::trust_backend`]; the backend's own `trusted` node is read by
/// [`BackendFeatures::parse`].
pub fn toolstack_trusts_backend(store: &mut dyn FrontendStore) -> Result<bool, FeatureError> {
    let node = "trusted";
    let mut buf = [0u8; 32];
    match store.read(node, &mut buf) {
        Ok(n) if n <= buf.len() => Ok(parse_u64(node, &buf[..n])? != 0),
        Ok(_) => Err(FeatureError::NotANumber { node }),
        Err(e) if e.is_enoent() => Ok(true),
        Err(error) => Err(FeatureError::Store { node, error }),
    }
}

/// What the frontend is willing to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrontendConfig {
    /// The largest ring-page order to ask for (capped at [`MAX_RING_PAGE_ORDER`]).
    pub max_ring_page_order: u32,
    /// The most queues to use (capped at [`MAX_QUEUES`]).
    pub max_queues: u32,
    /// The most indirect segments per request (0 disables indirect requests).
    pub max_indirect_segments: u32,
    /// Whether to use persistent grants when the backend offers them.
    pub persistent: bool,
    /// Whether the backend may be given the guest's own whole pages (the registry switch; a
    /// backend whose `trusted` node is 0 is never trusted). When false every byte goes through
    /// the engine's pool pages.
    pub trust_backend: bool,
}

impl Default for FrontendConfig {
    fn default() -> Self {
        FrontendConfig {
            max_ring_page_order: MAX_RING_PAGE_ORDER,
            max_queues: 1,
            max_indirect_segments: 256,
            persistent: true,
            trust_backend: true,
        }
    }
}

/// The parameters the frontend settled on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrontendParams {
    /// `ring-page-order`: each ring is 2^order pages.
    pub ring_page_order: u32,
    /// The number of queues (rings); `multi-queue-num-queues` is written when above 1.
    pub queues: u32,
    /// Segments per indirect request; 0 when indirect requests are not used.
    pub indirect_segments: u32,
    /// Persistent grants in use: offered by us and by the backend.
    pub persistent: bool,
    /// Whether we offer persistent grants (`feature-persistent`, written by the frontend before
    /// the backend connects; the backend answers with its own at Connected).
    pub offer_persistent: bool,
    /// The ring layout announced in `protocol`.
    pub layout: Layout,
    /// `feature-flush-cache` of the backend.
    pub flush: bool,
    /// `feature-barrier` of the backend.
    pub barrier: bool,
    /// `feature-discard` of the backend, with secure discard.
    pub discard: Option<DiscardInfo>,
    /// No guest page is granted: every byte is copied through the engine's pool pages (the
    /// backend is not trusted: [`FrontendConfig::trust_backend`] false or its `trusted` node
    /// 0).
    pub bounce_all: bool,
}

impl FrontendParams {
    /// Settles the frontend's parameters from its configuration and the backend's offer.
    pub fn negotiate(config: &FrontendConfig, backend: &BackendFeatures) -> Self {
        let ring_page_order = config
            .max_ring_page_order
            .min(MAX_RING_PAGE_ORDER)
            .min(backend.max_ring_page_order);
        let queues = config
            .max_queues
            .clamp(1, MAX_QUEUES)
            .min(backend.max_queues.max(1));
        let mut indirect = config
            .max_indirect_segments
            .min(backend.max_indirect_segments)
            .min(BLKIF_MAX_INDIRECT_SEGMENTS as u32);
        if indirect as usize <= BLKIF_MAX_SEGMENTS_PER_REQUEST {
            indirect = 0;
        }
        FrontendParams {
            ring_page_order,
            queues,
            indirect_segments: indirect,
            persistent: config.persistent && backend.persistent,
            offer_persistent: config.persistent,
            layout: Layout::X86_64,
            flush: backend.flush_cache,
            barrier: backend.barrier,
            discard: backend.discard,
            bounce_all: !config.trust_backend || backend.untrusted,
        }
    }

    /// Takes in what the backend publishes only when it connects: Linux's blkback writes
    /// `feature-flush-cache`, `feature-barrier`, `feature-discard` and `feature-persistent` at
    /// Connected, after the frontend negotiated the ring at InitWait. Persistent grants are used
    /// only if we offered them; the ring geometry, queues and indirect segments stay as
    /// negotiated (the backend publishes those at InitWait).
    pub fn apply_connected(&mut self, backend: &BackendFeatures) {
        self.persistent = self.offer_persistent && backend.persistent;
        self.flush = backend.flush_cache;
        self.barrier = backend.barrier;
        self.discard = backend.discard;
        // Trust is only ever withdrawn.
        self.bounce_all |= backend.untrusted;
    }

    /// The most segments one ring request carries under these parameters.
    pub fn segments_per_request(&self) -> usize {
        if self.indirect_segments > 0 {
            self.indirect_segments as usize
        } else {
            BLKIF_MAX_SEGMENTS_PER_REQUEST
        }
    }

    /// The pages of each ring.
    pub fn ring_pages(&self) -> usize {
        1 << self.ring_page_order
    }

    /// Calls `write(key, value)` for every node the frontend publishes, given each queue's
    /// ring grant references (`ring_refs[q]`, [`ring_pages`](Self::ring_pages) of them) and
    /// event channel (`event_channels[q]`).
    ///
    /// Fails with [`NodeError::Shape`] when fewer references or channels than queues and pages
    /// are given.
    pub fn write_nodes<E>(
        &self,
        ring_refs: &[&[GrantRef]],
        event_channels: &[u32],
        mut write: impl FnMut(&str, &str) -> Result<(), E>,
    ) -> Result<(), NodeError<E>> {
        let queues = self.queues as usize;
        let pages = self.ring_pages();
        if ring_refs.len() < queues
            || event_channels.len() < queues
            || ring_refs[..queues].iter().any(|r| r.len() < pages)
        {
            return Err(NodeError::Shape);
        }
        let mut key: FixedStr<40> = FixedStr::new();
        let mut value: FixedStr<24> = FixedStr::new();
        let mut emit = |key: &FixedStr<40>, value: &FixedStr<24>| {
            write(key.as_str(), value.as_str()).map_err(NodeError::Store)
        };
        macro_rules! node {
            ($($k:tt)*) => {{
                key.clear();
                write!(key, $($k)*).map_err(|_| NodeError::Shape)?;
            }};
        }
        macro_rules! val {
            ($($v:tt)*) => {{
                value.clear();
                write!(value, $($v)*).map_err(|_| NodeError::Shape)?;
            }};
        }
        if self.ring_page_order > 0 {
            node!("ring-page-order");
            val!("{}", self.ring_page_order);
            emit(&key, &value)?;
        }
        if queues > 1 {
            node!("multi-queue-num-queues");
            val!("{}", queues);
            emit(&key, &value)?;
        }
        for q in 0..queues {
            let prefix_len = if queues > 1 {
                key.clear();
                write!(key, "queue-{q}/").map_err(|_| NodeError::Shape)?;
                key.len()
            } else {
                0
            };
            for (i, gref) in ring_refs[q][..pages].iter().enumerate() {
                key.truncate(prefix_len);
                if self.ring_page_order == 0 {
                    key.push_str("ring-ref").map_err(|_| NodeError::Shape)?;
                } else {
                    write!(key, "ring-ref{i}").map_err(|_| NodeError::Shape)?;
                }
                val!("{gref}");
                emit(&key, &value)?;
            }
            key.truncate(prefix_len);
            key.push_str("event-channel")
                .map_err(|_| NodeError::Shape)?;
            val!("{}", event_channels[q]);
            emit(&key, &value)?;
        }
        node!("protocol");
        val!("{}", self.layout.protocol());
        emit(&key, &value)?;
        node!("feature-persistent");
        val!("{}", u8::from(self.offer_persistent));
        emit(&key, &value)?;
        Ok(())
    }

    /// [`write_nodes`](Self::write_nodes) into the store (inside the publishing transaction).
    pub fn publish(
        &self,
        ring_refs: &[&[GrantRef]],
        event_channels: &[u32],
        store: &mut dyn FrontendStore,
    ) -> Result<(), NodeError<XsError>> {
        self.write_nodes(ring_refs, event_channels, |k, v| {
            store.write(k, v.as_bytes())
        })
    }
}

/// Why the nodes could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeError<E> {
    /// Not enough ring references or event channels for the queues and pages negotiated.
    Shape,
    /// Writing a node failed.
    Store(E),
}
