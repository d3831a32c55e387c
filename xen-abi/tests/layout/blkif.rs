//! The block-device ring (`io/blkif.h`) in both layouts, and the ABI names of `io/protocols.h`.

use crate::cprogram;
use crate::harness::{Catalogue, Target};
use crate::padding;
use xen_abi::blkif::{self, BlkifDiscardFlags, VdiskInfo};
use xen_abi::blkif::{
    BLKIF_OP_DISCARD, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_INDIRECT, BLKIF_OP_READ,
    BLKIF_OP_RESERVED_1, BLKIF_OP_WRITE, BLKIF_OP_WRITE_BARRIER, BLKIF_RSP_EOPNOTSUPP,
    BLKIF_RSP_ERROR, BLKIF_RSP_OKAY,
};

pub fn describe(c: &mut Catalogue) {
    padding::push(
        c,
        layout!(Both, blkif::BlkifRequestSegment = "struct blkif_request_segment" {
            gref => "gref",
            first_sect => "first_sect",
            last_sect => "last_sect",
            pad => "(implicit padding)",
        }),
    );

    // x86_64: checked against the headers compiled with -m64.
    padding::push(
        c,
        layout!(X86_64, blkif::BlkifRequestRw = "struct blkif_request" {
            operation => "operation",
            nr_segments => "nr_segments",
            handle => "handle",
            pad0 => "(implicit padding)",
            id => "id",
            sector_number => "sector_number",
            seg => "seg",
        }),
    );
    padding::push(
        c,
        layout!(X86_64, blkif::BlkifRequestDiscard = "struct blkif_request_discard" {
            operation => "operation",
            flag => "flag",
            handle => "handle",
            pad0 => "(implicit padding)",
            id => "id",
            sector_number => "sector_number",
            nr_sectors => "nr_sectors",
        }),
    );
    padding::push(
        c,
        layout!(X86_64, blkif::BlkifRequestIndirect = "struct blkif_request_indirect" {
            operation => "operation",
            indirect_op => "indirect_op",
            nr_segments => "nr_segments",
            pad0 => "(implicit padding)",
            id => "id",
            sector_number => "sector_number",
            handle => "handle",
            pad1 => "(implicit padding)",
            indirect_grefs => "indirect_grefs",
            pad2 => "(implicit padding)",
        }),
    );
    padding::push(
        c,
        layout!(X86_64, blkif::BlkifResponse = "struct blkif_response" {
            id => "id",
            operation => "operation",
            pad0 => "(implicit padding)",
            status => "status",
            pad1 => "(implicit padding)",
        }),
    );

    // x86_32: the same C structures compiled with -m32.
    padding::push(
        c,
        layout!(X86_32, blkif::x86_32::BlkifRequestRw = "struct blkif_request" {
            operation => "operation",
            nr_segments => "nr_segments",
            handle => "handle",
            id => "id",
            sector_number => "sector_number",
            seg => "seg",
        }),
    );
    padding::push(
        c,
        layout!(X86_32, blkif::x86_32::BlkifRequestDiscard = "struct blkif_request_discard" {
            operation => "operation",
            flag => "flag",
            handle => "handle",
            id => "id",
            sector_number => "sector_number",
            nr_sectors => "nr_sectors",
        }),
    );
    padding::push(
        c,
        layout!(X86_32, blkif::x86_32::BlkifRequestIndirect = "struct blkif_request_indirect" {
            operation => "operation",
            indirect_op => "indirect_op",
            nr_segments => "nr_segments",
            id => "id",
            sector_number => "sector_number",
            handle => "handle",
            pad0 => "(implicit padding)",
            indirect_grefs => "indirect_grefs",
            pad => "pad",
        }),
    );
    padding::push(
        c,
        layout!(X86_32, blkif::x86_32::BlkifResponse = "struct blkif_response" {
            id => "id",
            operation => "operation",
            pad0 => "(implicit padding)",
            status => "status",
        }),
    );

    c.consts.extend(consts!(Both;
        BLKIF_OP_READ => "BLKIF_OP_READ",
        BLKIF_OP_WRITE => "BLKIF_OP_WRITE",
        BLKIF_OP_WRITE_BARRIER => "BLKIF_OP_WRITE_BARRIER",
        BLKIF_OP_FLUSH_DISKCACHE => "BLKIF_OP_FLUSH_DISKCACHE",
        BLKIF_OP_RESERVED_1 => "BLKIF_OP_RESERVED_1",
        BLKIF_OP_DISCARD => "BLKIF_OP_DISCARD",
        BLKIF_OP_INDIRECT => "BLKIF_OP_INDIRECT",
        BLKIF_RSP_OKAY => "BLKIF_RSP_OKAY",
        BLKIF_RSP_ERROR => "BLKIF_RSP_ERROR",
        BLKIF_RSP_EOPNOTSUPP => "BLKIF_RSP_EOPNOTSUPP",
    ));

    // Sizes are `usize` and flags are bitflags in Rust; compare them through locals.
    let blkif_max_segments_per_request = blkif::BLKIF_MAX_SEGMENTS_PER_REQUEST as u64;
    let blkif_max_indirect_pages_per_request = blkif::BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST as u64;
    let blkif_segments_per_indirect_page = blkif::BLKIF_SEGMENTS_PER_INDIRECT_PAGE as u64;
    let blkif_discard_secure = BlkifDiscardFlags::SECURE.bits();
    let vdisk_cdrom = VdiskInfo::CDROM.bits();
    let vdisk_removable = VdiskInfo::REMOVABLE.bits();
    let vdisk_readonly = VdiskInfo::READONLY.bits();
    c.consts.extend(consts!(Both;
        blkif_max_segments_per_request => "BLKIF_MAX_SEGMENTS_PER_REQUEST",
        blkif_max_indirect_pages_per_request => "BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST",
        blkif_segments_per_indirect_page => "4096 / sizeof(struct blkif_request_segment)",
        blkif_discard_secure => "BLKIF_DISCARD_SECURE",
        vdisk_cdrom => "VDISK_CDROM",
        vdisk_removable => "VDISK_REMOVABLE",
        vdisk_readonly => "VDISK_READONLY",
    ));

    // Ring slots of each layout, against the ring macros of the matching compilation.
    let blkif_x86_64_ring_entry_size = blkif::BLKIF_RING_ENTRY_SIZE as u64;
    let blkif_x86_64_ring_slots = blkif::BLKIF_RING_SLOTS;
    c.consts.extend(consts!(X86_64;
        blkif_x86_64_ring_entry_size => "sizeof(union blkif_sring_entry)",
        blkif_x86_64_ring_slots => "__CONST_RING_SIZE(blkif, 4096)",
    ));
    let blkif_x86_32_ring_entry_size = blkif::x86_32::BLKIF_RING_ENTRY_SIZE as u64;
    let blkif_x86_32_ring_slots = blkif::x86_32::BLKIF_RING_SLOTS;
    c.consts.extend(consts!(X86_32;
        blkif_x86_32_ring_entry_size => "sizeof(union blkif_sring_entry)",
        blkif_x86_32_ring_slots => "__CONST_RING_SIZE(blkif, 4096)",
    ));
}

/// The ABI names are strings, which the catalogue cannot compare: print them from C.
fn protocol_names(target: Target) -> Vec<String> {
    let body = r#"  printf("%s\n%s\n%s\n%s\n", XEN_IO_PROTO_ABI_X86_32, XEN_IO_PROTO_ABI_X86_64,
         XEN_IO_PROTO_ABI_ARM, XEN_IO_PROTO_ABI_NATIVE);"#;
    cprogram::run("protocols", body, target)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn protocol_names_match_protocols_h() {
    let m64 = protocol_names(Target::X86_64);
    assert_eq!(
        m64,
        [
            blkif::XEN_IO_PROTO_ABI_X86_32,
            blkif::XEN_IO_PROTO_ABI_X86_64,
            blkif::XEN_IO_PROTO_ABI_ARM,
            blkif::XEN_IO_PROTO_ABI_NATIVE,
        ]
    );
    // The native name of an i386 compilation is the protocol of the x86_32 layout.
    let m32 = protocol_names(Target::X86_32);
    assert_eq!(m32[3], blkif::x86_32::PROTOCOL);
}
