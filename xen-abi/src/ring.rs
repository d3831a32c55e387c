//! The header of a shared ring page (`io/ring.h`) and the slot-count rule.
//!
//! A shared ring is one or more contiguous pages (granted to the backend as separate frames) that
//! start with [`SharedRingHeader`] and continue with an array of entries, each the size of the
//! union of the request and response types. The number of entries is what fits after the header,
//! rounded down to a power of two so that indices can be masked.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// A free-running ring index (`RING_IDX`). Slots are `index & (slots - 1)`.
#[doc(alias = "RING_IDX")]
pub type RingIdx = u32;

/// The size of a Xen page, the unit of grants and of ring sizes.
pub const XEN_PAGE_SIZE: usize = 4096;

/// The largest ring-page order the project negotiates (2^4 = 16 pages), as Linux's frontends do.
pub const MAX_RING_PAGE_ORDER: u32 = 4;

/// The four indices and padding at the start of every shared ring (`struct *_sring` up to `ring`).
///
/// Requests are produced by the frontend at `req_prod`; responses by the backend at `rsp_prod`.
/// `req_event` / `rsp_event` hold the index at which the consumer next wants a notification.
#[doc(alias = "sring")]
#[doc(alias = "DEFINE_RING_TYPES")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct SharedRingHeader {
    /// Requests produced so far by the frontend.
    pub req_prod: RingIdx,
    /// The backend wants an event when `req_prod` passes this index.
    pub req_event: RingIdx,
    /// Responses produced so far by the backend.
    pub rsp_prod: RingIdx,
    /// The frontend wants an event when `rsp_prod` passes this index.
    pub rsp_event: RingIdx,
    /// Protocol-private bytes (`pvt`: netif's `smartpoll_active`, otherwise unused).
    pub pvt: [u8; 4],
    /// Padding to 64 bytes so that entries start cache-line aligned (`__pad`).
    pub pad: [u8; 44],
}

/// Byte offset of the first ring entry within the first ring page.
pub const RING_ENTRIES_OFFSET: usize = size_of::<SharedRingHeader>();

/// Byte offsets of the header's index fields, for code that accesses them atomically.
pub mod offsets {
    /// Offset of `req_prod`.
    pub const REQ_PROD: usize = core::mem::offset_of!(super::SharedRingHeader, req_prod);
    /// Offset of `req_event`.
    pub const REQ_EVENT: usize = core::mem::offset_of!(super::SharedRingHeader, req_event);
    /// Offset of `rsp_prod`.
    pub const RSP_PROD: usize = core::mem::offset_of!(super::SharedRingHeader, rsp_prod);
    /// Offset of `rsp_event`.
    pub const RSP_EVENT: usize = core::mem::offset_of!(super::SharedRingHeader, rsp_event);
}

/// The size of one ring entry: the union of a request and a response, padded to the alignment of
/// the more aligned of the two, as the C `union *_sring_entry` is.
pub const fn ring_entry_size(
    request_size: usize,
    request_align: usize,
    response_size: usize,
    response_align: usize,
) -> usize {
    let size = if request_size > response_size {
        request_size
    } else {
        response_size
    };
    let align = if request_align > response_align {
        request_align
    } else {
        response_align
    };
    size.div_ceil(align) * align
}

/// The number of slots in a shared ring of `pages` pages whose entries are `entry_size` bytes,
/// computed as `__RING_SIZE` does: the entries that fit after the header, rounded down to a power
/// of two. Returns 0 when not even one entry fits (or `entry_size` is 0).
#[doc(alias = "__RING_SIZE")]
#[doc(alias = "__CONST_RING_SIZE")]
pub const fn ring_slots(pages: usize, entry_size: usize) -> u32 {
    if entry_size == 0 || pages == 0 {
        return 0;
    }
    let bytes = match pages.checked_mul(XEN_PAGE_SIZE) {
        Some(bytes) => bytes,
        None => return 0,
    };
    if bytes <= RING_ENTRIES_OFFSET {
        return 0;
    }
    let fit = (bytes - RING_ENTRIES_OFFSET) / entry_size;
    if fit == 0 {
        return 0;
    }
    // Round down to a power of two, clamped to what a RingIdx can express as a ring size.
    let pow = 1usize << (usize::BITS - 1 - fit.leading_zeros());
    if pow > (1usize << 31) {
        1 << 31
    } else {
        pow as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_64_bytes() {
        assert_eq!(RING_ENTRIES_OFFSET, 64);
    }

    #[test]
    fn slot_counts_match_xen_for_known_protocols() {
        // blkif x86_64: request 112, response 16 → entry 112: (4096-64)/112 = 36 → 32.
        assert_eq!(ring_slots(1, 112), 32);
        // netif tx: request 12, response 4 → entry 12: 336 → 256.
        assert_eq!(ring_slots(1, 12), 256);
        // netif rx: request 8, response 8 → 504 → 256.
        assert_eq!(ring_slots(1, 8), 256);
        // Multi-page blkif: 16 pages → (65536-64)/112 = 584 → 512.
        assert_eq!(ring_slots(16, 112), 512);
    }

    #[test]
    fn slot_count_degenerate_inputs() {
        assert_eq!(ring_slots(0, 112), 0);
        assert_eq!(ring_slots(1, 0), 0);
        assert_eq!(ring_slots(1, 8192), 0);
        assert_eq!(ring_slots(usize::MAX, 8), 0);
    }

    #[test]
    fn entry_size_is_padded_union() {
        assert_eq!(ring_entry_size(112, 8, 16, 8), 112);
        assert_eq!(ring_entry_size(108, 4, 12, 4), 108);
        assert_eq!(ring_entry_size(12, 4, 4, 2), 12);
        assert_eq!(ring_entry_size(6, 2, 4, 4), 8);
    }
}
