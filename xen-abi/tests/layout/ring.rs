//! Shared ring header (`io/ring.h`).

use crate::harness::Catalogue;
use xen_abi::ring;

pub fn describe(c: &mut Catalogue) {
    // Any DEFINE_RING_TYPES instance has the same header; blkif's is used.
    c.structs.push(layout!(Both, ring::SharedRingHeader = "struct blkif_sring" size "offsetof(struct blkif_sring, ring)" {
        req_prod => "req_prod",
        req_event => "req_event",
        rsp_prod => "rsp_prod",
        rsp_event => "rsp_event",
        pvt => "pvt",
        pad => "__pad",
    }));
    let blkif_slots = ring::ring_slots(1, 112);
    c.consts
        .extend(consts!(X86_64; blkif_slots => "__CONST_RING_SIZE(blkif, 4096)"));
    let blkif_slots_32 = ring::ring_slots(1, 108);
    c.consts
        .extend(consts!(X86_32; blkif_slots_32 => "__CONST_RING_SIZE(blkif, 4096)"));
    c.consts
        .extend(consts!(Both; ring::RING_ENTRIES_OFFSET => "offsetof(struct blkif_sring, ring)"));
    let netif_tx_slots = ring::ring_slots(1, 12);
    let netif_rx_slots = ring::ring_slots(1, 8);
    c.consts.extend(consts!(Both;
        netif_tx_slots => "__CONST_RING_SIZE(netif_tx, 4096)",
        netif_rx_slots => "__CONST_RING_SIZE(netif_rx, 4096)",
    ));
}
