//! Grant tables (`grant_table.h`).

use crate::harness::Catalogue;
use crate::padding;
use xen_abi::grant_table;

pub fn describe(c: &mut Catalogue) {
    c.structs.push(
        layout!(Both, grant_table::GrantEntryV1 = "struct grant_entry_v1" {
            flags => "flags",
            domid => "domid",
            frame => "frame",
        }),
    );
    c.structs.push(
        layout!(Both, grant_table::GrantEntryHeader = "struct grant_entry_header" {
            flags => "flags",
            domid => "domid",
        }),
    );
    // The members of union grant_entry_v2, named through the union. The two holding a uint64_t
    // are 4-aligned in the x86_32 ABI, so they are compared in the x86_64 ABI only.
    c.structs.push(layout!(X86_64, grant_table::GrantEntryV2FullPage = "__typeof__(((union grant_entry_v2 *)0)->full_page)" {
        hdr => "hdr",
        pad0 => "pad0",
        frame => "frame",
    }));
    c.structs.push(layout!(X86_64, grant_table::GrantEntryV2SubPage = "__typeof__(((union grant_entry_v2 *)0)->sub_page)" {
        hdr => "hdr",
        page_off => "page_off",
        length => "length",
        frame => "frame",
    }));
    c.structs.push(layout!(Both, grant_table::GrantEntryV2Transitive = "__typeof__(((union grant_entry_v2 *)0)->transitive)" {
        hdr => "hdr",
        trans_domid => "trans_domid",
        pad0 => "pad0",
        gref => "gref",
    }));
    c.structs.push(
        layout!(X86_64, grant_table::GnttabMapGrantRef = "struct gnttab_map_grant_ref" {
            host_addr => "host_addr",
            flags => "flags",
            gref => "ref",
            dom => "dom",
            status => "status",
            handle => "handle",
            dev_bus_addr => "dev_bus_addr",
        }),
    );
    padding::push(
        c,
        layout!(X86_64, grant_table::GnttabUnmapGrantRef = "struct gnttab_unmap_grant_ref" {
            host_addr => "host_addr",
            dev_bus_addr => "dev_bus_addr",
            handle => "handle",
            status => "status",
            pad => "(implicit padding)",
        }),
    );
    padding::push(
        c,
        layout!(X86_64, grant_table::GnttabSetupTable = "struct gnttab_setup_table" {
            dom => "dom",
            pad0 => "(implicit padding)",
            nr_frames => "nr_frames",
            status => "status",
            pad1 => "(implicit padding)",
            frame_list => "frame_list",
        }),
    );
    padding::push(
        c,
        layout!(X86_64, grant_table::GnttabCopyPtr = "struct gnttab_copy_ptr" {
            u => "u",
            domid => "domid",
            offset => "offset",
            pad => "(implicit padding)",
        }),
    );
    padding::push(
        c,
        layout!(X86_64, grant_table::GnttabCopy = "struct gnttab_copy" {
            source => "source",
            dest => "dest",
            len => "len",
            flags => "flags",
            status => "status",
            pad => "(implicit padding)",
        }),
    );
    padding::push(
        c,
        layout!(Both, grant_table::GnttabQuerySize = "struct gnttab_query_size" {
            dom => "dom",
            pad0 => "(implicit padding)",
            nr_frames => "nr_frames",
            max_nr_frames => "max_nr_frames",
            status => "status",
            pad1 => "(implicit padding)",
        }),
    );
    c.structs.push(
        layout!(Both, grant_table::GnttabSetVersion = "struct gnttab_set_version" {
            version => "version",
        }),
    );
    c.structs.push(
        layout!(X86_64, grant_table::GnttabGetStatusFrames = "struct gnttab_get_status_frames" {
            nr_frames => "nr_frames",
            dom => "dom",
            status => "status",
            frame_list => "frame_list",
        }),
    );
    c.structs.push(
        layout!(Both, grant_table::GnttabGetVersion = "struct gnttab_get_version" {
            dom => "dom",
            pad => "pad",
            version => "version",
        }),
    );
    constants(c);
}

fn constants(c: &mut Catalogue) {
    use xen_abi::grant_table::*;

    c.consts.extend(consts!(Both;
        GNTTABOP_MAP_GRANT_REF => "GNTTABOP_map_grant_ref",
        GNTTABOP_UNMAP_GRANT_REF => "GNTTABOP_unmap_grant_ref",
        GNTTABOP_SETUP_TABLE => "GNTTABOP_setup_table",
        GNTTABOP_DUMP_TABLE => "GNTTABOP_dump_table",
        GNTTABOP_TRANSFER => "GNTTABOP_transfer",
        GNTTABOP_COPY => "GNTTABOP_copy",
        GNTTABOP_QUERY_SIZE => "GNTTABOP_query_size",
        GNTTABOP_UNMAP_AND_REPLACE => "GNTTABOP_unmap_and_replace",
        GNTTABOP_SET_VERSION => "GNTTABOP_set_version",
        GNTTABOP_GET_STATUS_FRAMES => "GNTTABOP_get_status_frames",
        GNTTABOP_GET_VERSION => "GNTTABOP_get_version",
        GNTTABOP_SWAP_GRANT_REF => "GNTTABOP_swap_grant_ref",
        GNTTABOP_CACHE_FLUSH => "GNTTABOP_cache_flush",
        GNTTAB_NR_RESERVED_ENTRIES => "GNTTAB_NR_RESERVED_ENTRIES",
        GNTTAB_RESERVED_CONSOLE => "GNTTAB_RESERVED_CONSOLE",
        GNTTAB_RESERVED_XENSTORE => "GNTTAB_RESERVED_XENSTORE",
        GTF_INVALID => "GTF_invalid",
        GRANT_ENTRIES_V1_PER_FRAME => "4096 / sizeof(grant_entry_v1_t)",
        GRANT_ENTRIES_V2_PER_FRAME => "4096 / sizeof(grant_entry_v2_t)",
        GRANT_STATUS_PER_FRAME => "4096 / sizeof(grant_status_t)",
        GNTST_OKAY => "GNTST_okay",
        GNTST_GENERAL_ERROR => "GNTST_general_error",
        GNTST_BAD_DOMAIN => "GNTST_bad_domain",
        GNTST_BAD_GNTREF => "GNTST_bad_gntref",
        GNTST_BAD_HANDLE => "GNTST_bad_handle",
        GNTST_BAD_VIRT_ADDR => "GNTST_bad_virt_addr",
        GNTST_BAD_DEV_ADDR => "GNTST_bad_dev_addr",
        GNTST_NO_DEVICE_SPACE => "GNTST_no_device_space",
        GNTST_PERMISSION_DENIED => "GNTST_permission_denied",
        GNTST_BAD_PAGE => "GNTST_bad_page",
        GNTST_BAD_COPY_ARG => "GNTST_bad_copy_arg",
        GNTST_ADDRESS_TOO_BIG => "GNTST_address_too_big",
        GNTST_EAGAIN => "GNTST_eagain",
        GNTST_NO_SPACE => "GNTST_no_space",
    ));
    let grant_entry_v2_size = GRANT_ENTRY_V2_SIZE as u64;
    let grant_status_size = size_of::<GrantStatus>() as u64;
    let grant_handle_size = size_of::<GrantHandle>() as u64;
    c.consts.extend(consts!(Both;
        grant_entry_v2_size => "sizeof(union grant_entry_v2)",
        grant_status_size => "sizeof(grant_status_t)",
        grant_handle_size => "sizeof(grant_handle_t)",
    ));

    let gtf_permit_access = GrantFlags::PERMIT_ACCESS.bits();
    let gtf_accept_transfer = GrantFlags::ACCEPT_TRANSFER.bits();
    let gtf_transitive = GrantFlags::TRANSITIVE.bits();
    let gtf_type_mask = GrantFlags::TYPE_MASK.bits();
    let gtf_readonly = GrantFlags::READONLY.bits();
    let gtf_reading = GrantFlags::READING.bits();
    let gtf_writing = GrantFlags::WRITING.bits();
    let gtf_pwt = GrantFlags::PWT.bits();
    let gtf_pcd = GrantFlags::PCD.bits();
    let gtf_pat = GrantFlags::PAT.bits();
    let gtf_sub_page = GrantFlags::SUB_PAGE.bits();
    let gtf_transfer_committed = GrantFlags::TRANSFER_COMMITTED.bits();
    let gtf_transfer_completed = GrantFlags::TRANSFER_COMPLETED.bits();
    let gntmap_device_map = GntmapFlags::DEVICE_MAP.bits();
    let gntmap_host_map = GntmapFlags::HOST_MAP.bits();
    let gntmap_readonly = GntmapFlags::READONLY.bits();
    let gntmap_application_map = GntmapFlags::APPLICATION_MAP.bits();
    let gntmap_contains_pte = GntmapFlags::CONTAINS_PTE.bits();
    let gntcopy_source_gref = GntcopyFlags::SOURCE_GREF.bits();
    let gntcopy_dest_gref = GntcopyFlags::DEST_GREF.bits();
    c.consts.extend(consts!(Both;
        gtf_permit_access => "GTF_permit_access",
        gtf_accept_transfer => "GTF_accept_transfer",
        gtf_transitive => "GTF_transitive",
        gtf_type_mask => "GTF_type_mask",
        gtf_readonly => "GTF_readonly",
        gtf_reading => "GTF_reading",
        gtf_writing => "GTF_writing",
        gtf_pwt => "GTF_PWT",
        gtf_pcd => "GTF_PCD",
        gtf_pat => "GTF_PAT",
        gtf_sub_page => "GTF_sub_page",
        gtf_transfer_committed => "GTF_transfer_committed",
        gtf_transfer_completed => "GTF_transfer_completed",
        gntmap_device_map => "GNTMAP_device_map",
        gntmap_host_map => "GNTMAP_host_map",
        gntmap_readonly => "GNTMAP_readonly",
        gntmap_application_map => "GNTMAP_application_map",
        gntmap_contains_pte => "GNTMAP_contains_pte",
        gntcopy_source_gref => "GNTCOPY_source_gref",
        gntcopy_dest_gref => "GNTCOPY_dest_gref",
    ));
}
