//! The blkif ring in the x86_32 layout: `uint64_t` aligned to 4 bytes.
//!
//! The same names as the x86_64 types in [`super`], so that code written for one layout compiles
//! for the other by changing a `use`. A frontend that places these in the ring writes
//! [`PROTOCOL`] (`"x86_32-abi"`) to its `protocol` node. The structures are
//! `#[repr(C, packed(4))]`: the C x86_32 ABI aligns 8-byte integers inside structures to 4 bytes,
//! which a packed-to-4 Rust structure reproduces on any host.
//!
//! Segments and all constants are the same in both layouts; [`BlkifRequestSegment`] is re-exported
//! here for convenience.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::{BlkifVdev, BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST, BLKIF_MAX_SEGMENTS_PER_REQUEST};
use crate::ring::{ring_entry_size, ring_slots};
use crate::types::{BlkifSector, GrantRef};

pub use super::BlkifRequestSegment;

/// The ABI name of this layout, for the frontend's `protocol` node.
#[doc(alias = "XEN_IO_PROTO_ABI_X86_32")]
pub const PROTOCOL: &str = super::XEN_IO_PROTO_ABI_X86_32;

/// A read, write, barrier or flush request in the x86_32 layout (`struct blkif_request`,
/// compiled for i386): 108 bytes.
#[doc(alias = "blkif_request")]
#[doc(alias = "blkif_x86_32_request")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C, packed(4))]
pub struct BlkifRequestRw {
    /// One of the `BLKIF_OP_*` values.
    pub operation: u8,
    /// How many entries of `seg` are used.
    pub nr_segments: u8,
    /// The virtual device number (`virtual-device`); only meaningful for reads and writes.
    pub handle: BlkifVdev,
    /// A frontend-private value echoed in the response.
    pub id: u64,
    /// The first sector on the disk to transfer.
    pub sector_number: BlkifSector,
    /// The data pages, in disk order.
    pub seg: [BlkifRequestSegment; BLKIF_MAX_SEGMENTS_PER_REQUEST],
}

/// A discard request in the x86_32 layout (`struct blkif_request_discard`, compiled for i386).
#[doc(alias = "blkif_request_discard")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C, packed(4))]
pub struct BlkifRequestDiscard {
    /// [`BLKIF_OP_DISCARD`](super::BLKIF_OP_DISCARD).
    pub operation: u8,
    /// [`BlkifDiscardFlags`](super::BlkifDiscardFlags) bits.
    pub flag: u8,
    /// The virtual device number, as for reads and writes.
    pub handle: BlkifVdev,
    /// A frontend-private value echoed in the response.
    pub id: u64,
    /// The first sector to discard.
    pub sector_number: BlkifSector,
    /// The number of contiguous sectors to discard.
    pub nr_sectors: u64,
}

/// An indirect read or write in the x86_32 layout (`struct blkif_request_indirect`, compiled for
/// i386, where the header adds an explicit `pad` to make it 64 bytes like the x86_64 one).
#[doc(alias = "blkif_request_indirect")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C, packed(4))]
pub struct BlkifRequestIndirect {
    /// [`BLKIF_OP_INDIRECT`](super::BLKIF_OP_INDIRECT).
    pub operation: u8,
    /// [`BLKIF_OP_READ`](super::BLKIF_OP_READ) or [`BLKIF_OP_WRITE`](super::BLKIF_OP_WRITE).
    pub indirect_op: u8,
    /// The number of segments in the indirect pages (not the number of pages).
    pub nr_segments: u16,
    /// A frontend-private value echoed in the response.
    pub id: u64,
    /// The first sector on the disk to transfer.
    pub sector_number: BlkifSector,
    /// The virtual device number, as for reads and writes.
    pub handle: BlkifVdev,
    /// Padding to the 4-byte alignment of `indirect_grefs` (implicit in C).
    pub pad0: [u8; 2],
    /// Grants of the pages holding the segments.
    pub indirect_grefs: [GrantRef; BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST],
    /// The header's explicit padding to 64 bytes (`pad`, present only for i386).
    pub pad: u64,
}

/// A response in the x86_32 layout (`struct blkif_response`, compiled for i386): 12 bytes.
#[doc(alias = "blkif_response")]
#[doc(alias = "blkif_x86_32_response")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C, packed(4))]
pub struct BlkifResponse {
    /// The `id` of the request.
    pub id: u64,
    /// The `operation` of the request.
    pub operation: u8,
    /// Padding to the 2-byte alignment of `status` (implicit in C).
    pub pad0: u8,
    /// One of the `BLKIF_RSP_*` values.
    pub status: i16,
}

/// The size of one x86_32 ring slot (`union blkif_sring_entry` compiled for i386): 108 bytes.
pub const BLKIF_RING_ENTRY_SIZE: usize = ring_entry_size(
    size_of::<BlkifRequestRw>(),
    align_of::<BlkifRequestRw>(),
    size_of::<BlkifResponse>(),
    align_of::<BlkifResponse>(),
);

/// The number of slots of a one-page x86_32 ring: 32 (the same as x86_64, although the slots
/// are smaller).
pub const BLKIF_RING_SLOTS: u32 = ring_slots(1, BLKIF_RING_ENTRY_SIZE);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_of_the_x86_32_layout() {
        assert_eq!(
            (size_of::<BlkifRequestRw>(), align_of::<BlkifRequestRw>()),
            (108, 4)
        );
        assert_eq!(size_of::<BlkifRequestDiscard>(), 28);
        assert_eq!(size_of::<BlkifRequestIndirect>(), 64);
        assert_eq!(
            (size_of::<BlkifResponse>(), align_of::<BlkifResponse>()),
            (12, 4)
        );
        assert_eq!(BLKIF_RING_ENTRY_SIZE, 108);
        assert_eq!(BLKIF_RING_SLOTS, 32);
        assert_eq!(PROTOCOL, "x86_32-abi");
    }

    #[test]
    fn id_follows_handle_without_padding() {
        use zerocopy::FromZeros;
        let mut req = BlkifRequestRw::new_zeroed();
        req.handle = 0x0300;
        req.id = 0x0102_0304_0506_0708;
        req.sector_number = 9;
        let bytes = req.as_bytes();
        assert_eq!(bytes[2..4], [0x00, 0x03]);
        assert_eq!(bytes[4..12], 0x0102_0304_0506_0708u64.to_le_bytes());
        assert_eq!(bytes[12..20], 9u64.to_le_bytes());
    }
}
