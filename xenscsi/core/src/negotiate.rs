//! Connect-time negotiation: what the backend offers, the limits that follow, the nodes the
//! frontend publishes.

use xen_abi::types::{EvtchnPort, GrantRef};
use xen_abi::vscsiif::{VSCSIIF_RING_SLOTS, VSCSIIF_SG_PER_PAGE, VSCSIIF_SG_TABLESIZE};
use xenpci_core::xenbus::FrontendStore;
use xenpci_core::xenstore::XsError;

use crate::types::PAGE_SIZE;

/// Why a backend node could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeatureError {
    /// The node does not hold a decimal number (or is too long to be one).
    NotANumber {
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

/// What the backend offers, read from its directory when it is Connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BackendFeatures {
    /// `feature-sg-grant`: the most data segments of one request with indirect segment pages
    /// (0: not offered, [`VSCSIIF_SG_TABLESIZE`] direct segments only).
    pub sg_grant: u32,
    /// `feature-host`: the backend accepts resets of the whole host.
    pub host_reset: bool,
}

fn parse_u32(node: &'static str, raw: &[u8]) -> Result<u32, FeatureError> {
    let mut s = raw;
    while let [rest @ .., 0 | b'\n' | b' '] = s {
        s = rest;
    }
    if s.is_empty() || s.len() > 10 || !s.iter().all(u8::is_ascii_digit) {
        return Err(FeatureError::NotANumber { node });
    }
    let v = s.iter().fold(0u64, |v, d| v * 10 + u64::from(d - b'0'));
    Ok(v.min(u64::from(u32::MAX)) as u32)
}

impl BackendFeatures {
    /// Parses the nodes through `read`, which copies a node's value (relative to the backend
    /// directory) into the buffer and returns its length, `Ok(None)` if it does not exist.
    pub fn parse(
        mut read: impl FnMut(&'static str, &mut [u8]) -> Result<Option<usize>, FeatureError>,
    ) -> Result<Self, FeatureError> {
        let mut buf = [0u8; 16];
        let mut number = |node: &'static str| -> Result<Option<u32>, FeatureError> {
            match read(node, &mut buf)? {
                Some(n) if n <= buf.len() => parse_u32(node, &buf[..n]).map(Some),
                Some(_) => Err(FeatureError::NotANumber { node }),
                None => Ok(None),
            }
        };
        Ok(BackendFeatures {
            sg_grant: number("feature-sg-grant")?.unwrap_or(0),
            host_reset: number("feature-host")?.unwrap_or(0) != 0,
        })
    }

    /// Parses the nodes from the store (a missing node is `ENOENT`).
    pub fn read_from(store: &mut dyn FrontendStore) -> Result<Self, FeatureError> {
        Self::parse(|node, buf| match store.read_backend(node, buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.is_enoent() => Ok(None),
            Err(XsError::Limit(_)) => Err(FeatureError::NotANumber { node }),
            Err(error) => Err(FeatureError::Store { node, error }),
        })
    }
}

/// The limits the shell advertises to Windows (StorPort's `MaximumTransferLength`,
/// `NumberOfPhysicalBreaks`, queue depth).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Data segments one command carries.
    pub max_segments: usize,
    /// The largest transfer that always fits, however the buffer is aligned: one segment less
    /// than the maximum, times a page (a buffer not starting on a page boundary touches one page
    /// more than its length suggests).
    pub max_transfer: u32,
    /// Commands in flight at once.
    pub queue_depth: u32,
    /// Whether indirect segment pages are in use.
    pub indirect: bool,
}

/// Commands in flight leave this many ring slots for task management, so an abort or reset
/// can always be sent.
pub const TM_RESERVE: u32 = 1;

impl Limits {
    /// The limits for `features`, an engine of `slots` request slots and `segments` segments
    /// per slot, with or without indirect pages.
    pub fn negotiate(
        features: &BackendFeatures,
        slots: usize,
        segments: usize,
        have_indirect: bool,
    ) -> Limits {
        let direct = VSCSIIF_SG_TABLESIZE.min(segments);
        let (max_segments, indirect) = if features.sg_grant > 0 && have_indirect {
            // One indirect page per request holds 512 descriptors.
            let offered = (features.sg_grant as usize).min(VSCSIIF_SG_PER_PAGE);
            let n = offered.max(VSCSIIF_SG_TABLESIZE).min(segments);
            (n, n > direct)
        } else {
            (direct, false)
        };
        let ring = VSCSIIF_RING_SLOTS - TM_RESERVE;
        let queue_depth = (slots as u32).saturating_sub(TM_RESERVE).clamp(1, ring);
        Limits {
            max_segments,
            max_transfer: (max_segments.saturating_sub(1).max(1) * PAGE_SIZE) as u32,
            queue_depth,
            indirect,
        }
    }
}

/// Writes the frontend's transport nodes: `ring-ref` and `event-channel` (inside the
/// publishing transaction).
pub fn publish(
    store: &mut dyn FrontendStore,
    ring_ref: GrantRef,
    port: EvtchnPort,
) -> Result<(), XsError> {
    store.write_u32("ring-ref", ring_ref)?;
    store.write_u32("event-channel", port)
}
