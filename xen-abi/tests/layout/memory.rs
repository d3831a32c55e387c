//! Memory reservation and physmap operations (`memory.h`).

use crate::harness::Catalogue;
use crate::padding;
use xen_abi::memory;

pub fn describe(c: &mut Catalogue) {
    padding::push(
        c,
        layout!(X86_64, memory::MemoryReservation = "struct xen_memory_reservation" {
            extent_start => "extent_start",
            nr_extents => "nr_extents",
            extent_order => "extent_order",
            mem_flags => "mem_flags",
            domid => "domid",
            pad => "(implicit padding)",
        }),
    );
    c.structs.push(
        layout!(X86_64, memory::MemoryExchange = "struct xen_memory_exchange" {
            input => "in",
            output => "out",
            nr_exchanged => "nr_exchanged",
        }),
    );
    c.structs.push(
        layout!(Both, memory::MemoryDomain = "struct xen_memory_domain" {
            domid => "domid",
        }),
    );
    c.structs.push(
        layout!(X86_64, memory::AddToPhysmap = "struct xen_add_to_physmap" {
            domid => "domid",
            size => "size",
            space => "space",
            idx => "idx",
            gpfn => "gpfn",
        }),
    );
    c.structs.push(
        layout!(X86_64, memory::AddToPhysmapBatch = "struct xen_add_to_physmap_batch" {
            domid => "domid",
            space => "space",
            size => "size",
            foreign_domid => "u.foreign_domid",
            idxs => "idxs",
            gpfns => "gpfns",
            errs => "errs",
        }),
    );
    padding::push(
        c,
        layout!(X86_64, memory::RemoveFromPhysmap = "struct xen_remove_from_physmap" {
            domid => "domid",
            pad => "(implicit padding)",
            gpfn => "gpfn",
        }),
    );
    padding::push(
        c,
        layout!(X86_64, memory::MemoryMap = "struct xen_memory_map" {
            nr_entries => "nr_entries",
            pad => "(implicit padding)",
            buffer => "buffer",
        }),
    );
    constants(c);
}

fn constants(c: &mut Catalogue) {
    use xen_abi::memory::*;

    c.consts.extend(consts!(Both;
        XENMEM_INCREASE_RESERVATION => "XENMEM_increase_reservation",
        XENMEM_DECREASE_RESERVATION => "XENMEM_decrease_reservation",
        XENMEM_MAXIMUM_RAM_PAGE => "XENMEM_maximum_ram_page",
        XENMEM_CURRENT_RESERVATION => "XENMEM_current_reservation",
        XENMEM_MAXIMUM_RESERVATION => "XENMEM_maximum_reservation",
        XENMEM_POPULATE_PHYSMAP => "XENMEM_populate_physmap",
        XENMEM_ADD_TO_PHYSMAP => "XENMEM_add_to_physmap",
        XENMEM_MEMORY_MAP => "XENMEM_memory_map",
        XENMEM_EXCHANGE => "XENMEM_exchange",
        XENMEM_MAXIMUM_GPFN => "XENMEM_maximum_gpfn",
        XENMEM_REMOVE_FROM_PHYSMAP => "XENMEM_remove_from_physmap",
        XENMEM_ADD_TO_PHYSMAP_BATCH => "XENMEM_add_to_physmap_batch",
        XENMEMF_POPULATE_ON_DEMAND => "XENMEMF_populate_on_demand",
        XENMEMF_EXACT_NODE_REQUEST => "XENMEMF_exact_node_request",
        XENMEMF_VNODE => "XENMEMF_vnode",
        XENMAPSPACE_SHARED_INFO => "XENMAPSPACE_shared_info",
        XENMAPSPACE_GRANT_TABLE => "XENMAPSPACE_grant_table",
        XENMAPSPACE_GMFN => "XENMAPSPACE_gmfn",
        XENMAPSPACE_GMFN_RANGE => "XENMAPSPACE_gmfn_range",
        XENMAPSPACE_GMFN_FOREIGN => "XENMAPSPACE_gmfn_foreign",
        XENMAPSPACE_DEV_MMIO => "XENMAPSPACE_dev_mmio",
        XENMAPIDX_GRANT_TABLE_STATUS => "XENMAPIDX_grant_table_status",
    ));
    let xenmemf_address_bits_32 = xenmemf_address_bits(32);
    let xenmemf_node_0 = xenmemf_node(0);
    let xenmemf_node_5 = xenmemf_node(5);
    let xenmemf_exact_node_2 = xenmemf_node(2) | XENMEMF_EXACT_NODE_REQUEST;
    c.consts.extend(consts!(Both;
        xenmemf_address_bits_32 => "XENMEMF_address_bits(32)",
        xenmemf_node_0 => "XENMEMF_node(0)",
        xenmemf_node_5 => "XENMEMF_node(5)",
        xenmemf_exact_node_2 => "XENMEMF_exact_node(2)",
    ));
}
