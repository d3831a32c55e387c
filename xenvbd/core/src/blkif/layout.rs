//! The two blkif ring layouts, request encoding and response decoding, and the layout probe.

use xen_abi::blkif::{
    self, x86_32, BlkifRequestSegment, BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST,
    BLKIF_MAX_SEGMENTS_PER_REQUEST,
};
use xen_abi::types::GrantRef;
use zerocopy::{FromBytes, FromZeros, IntoBytes};

/// The ring layout: where the 64-bit fields of requests sit, and how large a slot is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `x86_64-abi`: 112-byte slots, `id` at offset 8 of a request.
    X86_64,
    /// `x86_32-abi`: 108-byte slots, `id` at offset 4 of a request.
    X86_32,
}

impl Layout {
    /// The size of a ring slot.
    pub const fn entry_size(self) -> usize {
        match self {
            Layout::X86_64 => blkif::BLKIF_RING_ENTRY_SIZE,
            Layout::X86_32 => x86_32::BLKIF_RING_ENTRY_SIZE,
        }
    }

    /// The name written to the `protocol` node.
    pub const fn protocol(self) -> &'static str {
        match self {
            Layout::X86_64 => blkif::XEN_IO_PROTO_ABI_X86_64,
            Layout::X86_32 => blkif::XEN_IO_PROTO_ABI_X86_32,
        }
    }
}

/// The largest request encoding (one x86_64 slot).
pub(crate) const MAX_ENTRY: usize = blkif::BLKIF_RING_ENTRY_SIZE;

/// A request before encoding.
#[derive(Clone, Copy, Debug)]
pub(crate) enum WireRequest<'a> {
    /// Read, write, barrier or flush with direct segments.
    Direct {
        operation: u8,
        id: u64,
        sector: u64,
        segments: &'a [BlkifRequestSegment],
    },
    /// An indirect read or write.
    Indirect {
        indirect_op: u8,
        id: u64,
        sector: u64,
        nr_segments: u16,
        pages: &'a [GrantRef],
    },
    /// A discard.
    Discard {
        id: u64,
        sector: u64,
        sectors: u64,
        secure: bool,
    },
}

/// Encodes `req` for `layout` into `out`; returns the encoded length.
pub(crate) fn encode(
    layout: Layout,
    handle: u16,
    req: &WireRequest<'_>,
    out: &mut [u8; MAX_ENTRY],
) -> usize {
    macro_rules! encode_with {
        ($m:path) => {{
            use $m as l;
            match *req {
                WireRequest::Direct {
                    operation,
                    id,
                    sector,
                    segments,
                } => {
                    let mut r = l::BlkifRequestRw::new_zeroed();
                    r.operation = operation;
                    r.nr_segments = segments.len() as u8;
                    r.handle = handle;
                    r.id = id;
                    r.sector_number = sector;
                    let mut seg =
                        [BlkifRequestSegment::new(0, 0, 0); BLKIF_MAX_SEGMENTS_PER_REQUEST];
                    seg[..segments.len()].copy_from_slice(segments);
                    r.seg = seg;
                    let b = r.as_bytes();
                    out[..b.len()].copy_from_slice(b);
                    b.len()
                }
                WireRequest::Indirect {
                    indirect_op,
                    id,
                    sector,
                    nr_segments,
                    pages,
                } => {
                    let mut r = l::BlkifRequestIndirect::new_zeroed();
                    r.operation = blkif::BLKIF_OP_INDIRECT;
                    r.indirect_op = indirect_op;
                    r.nr_segments = nr_segments;
                    r.id = id;
                    r.sector_number = sector;
                    r.handle = handle;
                    let mut g = [0; BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
                    g[..pages.len()].copy_from_slice(pages);
                    r.indirect_grefs = g;
                    let b = r.as_bytes();
                    out[..b.len()].copy_from_slice(b);
                    b.len()
                }
                WireRequest::Discard {
                    id,
                    sector,
                    sectors,
                    secure,
                } => {
                    let mut r = l::BlkifRequestDiscard::new_zeroed();
                    r.operation = blkif::BLKIF_OP_DISCARD;
                    r.flag = if secure {
                        blkif::BlkifDiscardFlags::SECURE.bits()
                    } else {
                        0
                    };
                    r.handle = handle;
                    r.id = id;
                    r.sector_number = sector;
                    r.nr_sectors = sectors;
                    let b = r.as_bytes();
                    out[..b.len()].copy_from_slice(b);
                    b.len()
                }
            }
        }};
    }
    match layout {
        Layout::X86_64 => encode_with!(blkif),
        Layout::X86_32 => encode_with!(x86_32),
    }
}

/// A response as read from the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WireResponse {
    pub id: u64,
    pub operation: u8,
    pub status: i16,
}

/// The bytes of a slot this frontend copies for a response: the x86_64 response (the x86_32
/// one is its 12-byte prefix; a slot is always larger than either).
pub(crate) const RESPONSE_BYTES: usize = size_of::<blkif::BlkifResponse>();

/// Decodes a response in `layout` from the first bytes of a slot.
pub(crate) fn decode(layout: Layout, bytes: &[u8]) -> Option<WireResponse> {
    match layout {
        Layout::X86_64 => {
            let (r, _) = blkif::BlkifResponse::read_from_prefix(bytes).ok()?;
            Some(WireResponse {
                id: r.id,
                operation: r.operation,
                status: r.status,
            })
        }
        Layout::X86_32 => {
            let (r, _) = x86_32::BlkifResponse::read_from_prefix(bytes).ok()?;
            Some(WireResponse {
                id: r.id,
                operation: r.operation,
                status: r.status,
            })
        }
    }
}

/// The operation code of the probe requests: not a blkif operation, so every backend answers it
/// with an error without touching any data.
pub(crate) const PROBE_OPERATION: u8 = 0xfe;
/// The `id` of the first probe, at the x86_64 offset of `id`.
pub(crate) const PROBE_ID_64: u64 = 0x7072_6f62_6536_3401;
/// The 32 bits at the x86_32 offset of `id` that the x86_64 layout uses as padding.
pub(crate) const PROBE_MARK_32: u32 = 0x3233_5f70;
/// The `id` of the confirming probe.
pub(crate) const PROBE_ID_CONFIRM: u64 = 0x7072_6f62_6532_0002;

/// The first probe: an x86_64-shaped request whose padding makes an x86_32 reader see a
/// different, equally known `id`. It sits in slot 0, which starts at the same offset in both
/// layouts, and so does its response.
pub(crate) fn first_probe(handle: u16) -> [u8; MAX_ENTRY] {
    let mut r = blkif::BlkifRequestRw::new_zeroed();
    r.operation = PROBE_OPERATION;
    r.handle = handle;
    r.pad0 = PROBE_MARK_32.to_le_bytes();
    r.id = PROBE_ID_64;
    let mut out = [0u8; MAX_ENTRY];
    out.copy_from_slice(r.as_bytes());
    out
}

/// The `id` an x86_32 backend reads from [`first_probe`] (bytes 4..12).
pub(crate) const fn probe_id_seen_by_x86_32() -> u64 {
    (PROBE_MARK_32 as u64) | ((PROBE_ID_64 & 0xffff_ffff) << 32)
}

/// Which layout echoed the first probe's `id`; the response's first 12 bytes are the same
/// fields at the same offsets in both layouts.
pub(crate) fn classify_first_probe(rsp: &WireResponse) -> Option<Layout> {
    if rsp.id == PROBE_ID_64 {
        Some(Layout::X86_64)
    } else if rsp.id == probe_id_seen_by_x86_32() {
        Some(Layout::X86_32)
    } else {
        None
    }
}

/// The confirming probe, encoded in the chosen layout: its slot (1) sits at a different offset
/// in each layout, so only a backend really using that layout answers it where expected.
pub(crate) fn confirm_probe(layout: Layout, handle: u16, out: &mut [u8; MAX_ENTRY]) -> usize {
    encode(
        layout,
        handle,
        &WireRequest::Direct {
            operation: PROBE_OPERATION,
            id: PROBE_ID_CONFIRM,
            sector: 0,
            segments: &[],
        },
        out,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_fields_share_offsets() {
        let r = blkif::BlkifResponse {
            id: 0x1122_3344_5566_7788,
            operation: 3,
            pad0: 0,
            status: -2,
            pad1: [0; 4],
        };
        let a = decode(Layout::X86_64, r.as_bytes()).unwrap();
        let b = decode(Layout::X86_32, &r.as_bytes()[..12]).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.status, -2);
    }

    #[test]
    fn first_probe_reads_differently_in_each_layout() {
        let bytes = first_probe(7);
        let as64 = blkif::BlkifRequestRw::read_from_prefix(&bytes).unwrap().0;
        let as32 = x86_32::BlkifRequestRw::read_from_prefix(&bytes).unwrap().0;
        assert_eq!(as64.id, PROBE_ID_64);
        let id32 = as32.id;
        assert_eq!(id32, probe_id_seen_by_x86_32());
        assert_ne!(id32, PROBE_ID_64);
    }

    #[test]
    fn entry_sizes() {
        assert_eq!(Layout::X86_64.entry_size(), 112);
        assert_eq!(Layout::X86_32.entry_size(), 108);
    }
}
