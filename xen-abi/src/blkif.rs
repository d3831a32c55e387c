//! The block-device ring protocol (`io/blkif.h`) and the ABI names of `io/protocols.h`.
//!
//! A blkif frontend grants one or more ring pages to the backend and places requests in them;
//! each request names up to [`BLKIF_MAX_SEGMENTS_PER_REQUEST`] granted data pages directly, or,
//! with [`BLKIF_OP_INDIRECT`], up to [`BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST`] granted pages that
//! hold arrays of [`BlkifRequestSegment`]s. All sector numbers are in 512-byte units unless the
//! frontend negotiated `feature-large-sector-size`.
//!
//! # Two layouts
//! The request and response structures contain a `uint64_t`, which the x86_32 C ABI aligns to
//! 4 bytes and the x86_64 ABI to 8, so the ring has two incompatible layouts. The frontend writes
//! the name of the layout it uses to its `protocol` xenstore node ([`XEN_IO_PROTO_ABI_X86_64`] or
//! [`XEN_IO_PROTO_ABI_X86_32`]); a backend that does not find the node assumes its own native
//! layout. The types at the top of this module are the x86_64 layout (the one this project's
//! frontends use); [`x86_32`] has the same names in the x86_32 layout, for talking to a backend
//! that only speaks that one.
//!
//! # Requests are variants of one ring slot
//! Xen's header declares the read/write request (`struct blkif_request`), the discard request
//! (`struct blkif_request_discard`) and the indirect request (`struct blkif_request_indirect`) as
//! separate structures that share their first bytes (`operation`, then `id` at the same offset).
//! Each is a separate Rust type of exactly its C size: a ring slot is [`BLKIF_RING_ENTRY_SIZE`]
//! bytes and a smaller request occupies its prefix; the rest of the slot is ignored. Flush and
//! barrier requests use [`BlkifRequestRw`] (with `nr_segments` 0 for a flush without data), so
//! there is no separate "other" variant.

use bitflags::bitflags;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::ring::{ring_entry_size, ring_slots, XEN_PAGE_SIZE};
use crate::types::{BlkifSector, GrantRef};

pub mod x86_32;

/// The virtual device number in a request (`blkif_vdev_t`); frontends put the value of their
/// `virtual-device` node here, backends ignore it.
#[doc(alias = "blkif_vdev_t")]
pub type BlkifVdev = u16;

/// Read sectors into the segments' pages.
pub const BLKIF_OP_READ: u8 = 0;
/// Write sectors from the segments' pages.
pub const BLKIF_OP_WRITE: u8 = 1;
/// A write that completes only after all earlier writes are on stable storage and before any
/// later one starts; offered when the backend sets `feature-barrier`.
pub const BLKIF_OP_WRITE_BARRIER: u8 = 2;
/// Flush the backend's write cache; offered when the backend sets `feature-flush-cache`.
pub const BLKIF_OP_FLUSH_DISKCACHE: u8 = 3;
/// Reserved (once a Citrix-specific operation); never send it.
pub const BLKIF_OP_RESERVED_1: u8 = 4;
/// Discard (trim/unmap) a range of sectors, as [`BlkifRequestDiscard`]; offered when the backend
/// sets `feature-discard`.
pub const BLKIF_OP_DISCARD: u8 = 5;
/// A read or write whose segments are in granted indirect pages, as [`BlkifRequestIndirect`];
/// offered when the backend sets `feature-max-indirect-segments`.
pub const BLKIF_OP_INDIRECT: u8 = 6;

/// The most segments a [`BlkifRequestRw`] names directly.
pub const BLKIF_MAX_SEGMENTS_PER_REQUEST: usize = 11;

/// The most indirect pages a [`BlkifRequestIndirect`] names.
pub const BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST: usize = 8;

/// How many [`BlkifRequestSegment`]s fit in one indirect page: 512.
#[doc(alias = "BLKIF_SEGS_PER_INDIRECT_FRAME")]
pub const BLKIF_SEGMENTS_PER_INDIRECT_PAGE: usize =
    XEN_PAGE_SIZE / size_of::<BlkifRequestSegment>();

/// The upper bound on `feature-max-indirect-segments` that the request format allows:
/// [`BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST`] full indirect pages, 4096 segments.
pub const BLKIF_MAX_INDIRECT_SEGMENTS: usize =
    BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST * BLKIF_SEGMENTS_PER_INDIRECT_PAGE;

/// The number of indirect pages a request with `segments` indirect segments needs:
/// `ceil(segments / BLKIF_SEGMENTS_PER_INDIRECT_PAGE)`.
pub const fn blkif_indirect_pages(segments: usize) -> usize {
    segments.div_ceil(BLKIF_SEGMENTS_PER_INDIRECT_PAGE)
}

/// The request was carried out.
pub const BLKIF_RSP_OKAY: i16 = 0;
/// The request failed (the backend's `-EIO`).
pub const BLKIF_RSP_ERROR: i16 = -1;
/// The operation is not supported (only for barrier writes and discards, after which the
/// frontend must stop sending them).
pub const BLKIF_RSP_EOPNOTSUPP: i16 = -2;

/// The ABI name a frontend writes to `protocol` when it uses the x86_32 layout ([`x86_32`]).
pub const XEN_IO_PROTO_ABI_X86_32: &str = "x86_32-abi";
/// The ABI name a frontend writes to `protocol` when it uses the x86_64 layout (this module).
pub const XEN_IO_PROTO_ABI_X86_64: &str = "x86_64-abi";
/// The ABI name of Arm guests, which may appear in a backend's view but never in ours.
pub const XEN_IO_PROTO_ABI_ARM: &str = "arm-abi";
/// The ABI name of this module's (un-prefixed) types: the x86_64 layout. This is what the C
/// headers call the native protocol of an x86_64 compiler.
pub const XEN_IO_PROTO_ABI_NATIVE: &str = XEN_IO_PROTO_ABI_X86_64;

/// One data page of a request (`struct blkif_request_segment`): the granted frame and the first
/// and last 512-byte sectors within it to transfer (inclusive, 0..=7 for a 4 KiB page).
///
/// The same 8 bytes in both ABIs; indirect pages are arrays of these.
#[doc(alias = "blkif_request_segment")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct BlkifRequestSegment {
    /// The grant of the data page.
    pub gref: GrantRef,
    /// The first sector of the page to transfer.
    pub first_sect: u8,
    /// The last sector of the page to transfer (inclusive).
    pub last_sect: u8,
    /// Padding to the 4-byte alignment of `gref` (implicit in C).
    pub pad: [u8; 2],
}

impl BlkifRequestSegment {
    /// A segment covering sectors `first_sect..=last_sect` of the page granted as `gref`.
    pub const fn new(gref: GrantRef, first_sect: u8, last_sect: u8) -> Self {
        Self {
            gref,
            first_sect,
            last_sect,
            pad: [0; 2],
        }
    }
}

/// A read, write, barrier or flush request in the x86_64 layout (`struct blkif_request`).
#[doc(alias = "blkif_request")]
#[doc(alias = "blkif_request_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct BlkifRequestRw {
    /// One of the `BLKIF_OP_*` values.
    pub operation: u8,
    /// How many entries of `seg` are used.
    pub nr_segments: u8,
    /// The virtual device number (`virtual-device`); only meaningful for reads and writes.
    pub handle: BlkifVdev,
    /// Padding to the 8-byte alignment of `id` (implicit in C; absent in the x86_32 layout).
    pub pad0: [u8; 4],
    /// A frontend-private value echoed in the response.
    pub id: u64,
    /// The first sector on the disk to transfer.
    pub sector_number: BlkifSector,
    /// The data pages, in disk order.
    pub seg: [BlkifRequestSegment; BLKIF_MAX_SEGMENTS_PER_REQUEST],
}

bitflags! {
    /// The `flag` byte of a [`BlkifRequestDiscard`].
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct BlkifDiscardFlags: u8 {
        /// Erase the range securely; only honoured when the backend sets `discard-secure`.
        #[doc(alias = "BLKIF_DISCARD_SECURE")]
        const SECURE = 1 << 0;
    }
}

/// A discard request in the x86_64 layout (`struct blkif_request_discard`).
#[doc(alias = "blkif_request_discard")]
#[doc(alias = "blkif_request_discard_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct BlkifRequestDiscard {
    /// [`BLKIF_OP_DISCARD`].
    pub operation: u8,
    /// [`BlkifDiscardFlags`] bits.
    pub flag: u8,
    /// The virtual device number, as for reads and writes.
    pub handle: BlkifVdev,
    /// Padding to the 8-byte alignment of `id` (implicit in C).
    pub pad0: [u8; 4],
    /// A frontend-private value echoed in the response.
    pub id: u64,
    /// The first sector to discard.
    pub sector_number: BlkifSector,
    /// The number of contiguous sectors to discard.
    pub nr_sectors: u64,
}

/// An indirect read or write in the x86_64 layout (`struct blkif_request_indirect`).
#[doc(alias = "blkif_request_indirect")]
#[doc(alias = "blkif_request_indirect_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct BlkifRequestIndirect {
    /// [`BLKIF_OP_INDIRECT`].
    pub operation: u8,
    /// [`BLKIF_OP_READ`] or [`BLKIF_OP_WRITE`].
    pub indirect_op: u8,
    /// The number of segments in the indirect pages (not the number of pages).
    pub nr_segments: u16,
    /// Padding to the 8-byte alignment of `id` (implicit in C).
    pub pad0: [u8; 4],
    /// A frontend-private value echoed in the response.
    pub id: u64,
    /// The first sector on the disk to transfer.
    pub sector_number: BlkifSector,
    /// The virtual device number, as for reads and writes.
    pub handle: BlkifVdev,
    /// Padding to the 4-byte alignment of `indirect_grefs` (implicit in C).
    pub pad1: [u8; 2],
    /// Grants of the pages holding the segments; the first
    /// [`blkif_indirect_pages`]`(nr_segments)` are used.
    pub indirect_grefs: [GrantRef; BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST],
    /// Tail padding to the 8-byte alignment of the structure (implicit in C).
    pub pad2: [u8; 4],
}

/// A response in the x86_64 layout (`struct blkif_response`).
#[doc(alias = "blkif_response")]
#[doc(alias = "blkif_response_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct BlkifResponse {
    /// The `id` of the request.
    pub id: u64,
    /// The `operation` of the request.
    pub operation: u8,
    /// Padding to the 2-byte alignment of `status` (implicit in C).
    pub pad0: u8,
    /// One of the `BLKIF_RSP_*` values.
    pub status: i16,
    /// Tail padding to the 8-byte alignment of the structure (implicit in C).
    pub pad1: [u8; 4],
}

/// The size of one x86_64 ring slot (`union blkif_sring_entry`): 112 bytes.
pub const BLKIF_RING_ENTRY_SIZE: usize = ring_entry_size(
    size_of::<BlkifRequestRw>(),
    align_of::<BlkifRequestRw>(),
    size_of::<BlkifResponse>(),
    align_of::<BlkifResponse>(),
);

/// The number of slots of a one-page x86_64 ring (`__CONST_RING_SIZE(blkif, 4096)`): 32. For a
/// multi-page ring use [`ring_slots`]`(pages, BLKIF_RING_ENTRY_SIZE)`.
pub const BLKIF_RING_SLOTS: u32 = ring_slots(1, BLKIF_RING_ENTRY_SIZE);

bitflags! {
    /// The `info` node a block backend publishes: what kind of disk it is.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct VdiskInfo: u32 {
        /// The device is a CD/DVD drive.
        #[doc(alias = "VDISK_CDROM")]
        const CDROM = 0x1;
        /// The medium is removable.
        #[doc(alias = "VDISK_REMOVABLE")]
        const REMOVABLE = 0x2;
        /// The device is read-only.
        #[doc(alias = "VDISK_READONLY")]
        const READONLY = 0x4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_of_the_x86_64_layout() {
        assert_eq!(size_of::<BlkifRequestSegment>(), 8);
        assert_eq!(size_of::<BlkifRequestRw>(), 112);
        assert_eq!(size_of::<BlkifRequestDiscard>(), 32);
        assert_eq!(size_of::<BlkifRequestIndirect>(), 64);
        assert_eq!(size_of::<BlkifResponse>(), 16);
        assert_eq!(BLKIF_RING_ENTRY_SIZE, 112);
        assert_eq!(BLKIF_RING_SLOTS, 32);
    }

    #[test]
    fn indirect_page_counts() {
        assert_eq!(BLKIF_SEGMENTS_PER_INDIRECT_PAGE, 512);
        assert_eq!(BLKIF_MAX_INDIRECT_SEGMENTS, 4096);
        assert_eq!(blkif_indirect_pages(0), 0);
        assert_eq!(blkif_indirect_pages(1), 1);
        assert_eq!(blkif_indirect_pages(512), 1);
        assert_eq!(blkif_indirect_pages(513), 2);
        assert_eq!(blkif_indirect_pages(BLKIF_MAX_INDIRECT_SEGMENTS), 8);
    }

    #[test]
    fn protocol_names() {
        assert_eq!(XEN_IO_PROTO_ABI_X86_32, "x86_32-abi");
        assert_eq!(XEN_IO_PROTO_ABI_X86_64, "x86_64-abi");
        assert_eq!(XEN_IO_PROTO_ABI_ARM, "arm-abi");
        assert_eq!(XEN_IO_PROTO_ABI_NATIVE, XEN_IO_PROTO_ABI_X86_64);
    }

    #[test]
    fn request_bytes_put_id_and_sector_where_the_backend_reads_them() {
        use zerocopy::FromZeros;
        let mut req = BlkifRequestRw::new_zeroed();
        req.operation = BLKIF_OP_WRITE;
        req.nr_segments = 1;
        req.id = 0x1122_3344_5566_7788;
        req.sector_number = 0x10;
        req.seg[0] = BlkifRequestSegment::new(0xabcd, 0, 7);
        let bytes = req.as_bytes();
        assert_eq!(bytes[0], 1);
        assert_eq!(bytes[8..16], 0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(bytes[16..24], 0x10u64.to_le_bytes());
        assert_eq!(bytes[24..32], [0xcd, 0xab, 0, 0, 0, 7, 0, 0]);
    }
}
