//! Memory reservation and physmap operations (`memory.h`), the sub-ops of
//! [`crate::hypercall::HYPERVISOR_MEMORY_OP`].
//!
//! A guest uses them to map Xen-provided pages into its physical address space (the shared-info
//! page and the grant-table frames, through [`XENMEM_ADD_TO_PHYSMAP`]) and to give pages back to
//! Xen or take them again (ballooning, through [`XENMEM_DECREASE_RESERVATION`] and
//! [`XENMEM_POPULATE_PHYSMAP`]).
//!
//! Guest handles are 64-bit guest virtual addresses in the x86_64 ABI and appear here as `u64`.

use crate::types::{DomId, XenPfn, XenUlong};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Adds extents to the reservation of a domain; returns the number of extents allocated
/// (`XENMEM_increase_reservation`, argument [`MemoryReservation`]).
#[doc(alias = "XENMEM_increase_reservation")]
pub const XENMEM_INCREASE_RESERVATION: u32 = 0;

/// Frees the extents whose GFNs are listed; returns the number freed
/// (`XENMEM_decrease_reservation`, argument [`MemoryReservation`]).
#[doc(alias = "XENMEM_decrease_reservation")]
pub const XENMEM_DECREASE_RESERVATION: u32 = 1;

/// Returns the highest machine frame of RAM; argument NULL (`XENMEM_maximum_ram_page`).
#[doc(alias = "XENMEM_maximum_ram_page")]
pub const XENMEM_MAXIMUM_RAM_PAGE: u32 = 2;

/// Returns a domain's current reservation in pages (`XENMEM_current_reservation`, argument
/// [`MemoryDomain`]).
#[doc(alias = "XENMEM_current_reservation")]
pub const XENMEM_CURRENT_RESERVATION: u32 = 3;

/// Returns a domain's maximum reservation in pages (`XENMEM_maximum_reservation`, argument
/// [`MemoryDomain`]).
#[doc(alias = "XENMEM_maximum_reservation")]
pub const XENMEM_MAXIMUM_RESERVATION: u32 = 4;

/// Populates the listed GFNs with memory; returns the number of extents populated
/// (`XENMEM_populate_physmap`, argument [`MemoryReservation`]).
#[doc(alias = "XENMEM_populate_physmap")]
pub const XENMEM_POPULATE_PHYSMAP: u32 = 6;

/// Maps a Xen-provided page (shared info, grant frame) or moves a GFN within the physmap
/// (`XENMEM_add_to_physmap`, argument [`AddToPhysmap`]).
#[doc(alias = "XENMEM_add_to_physmap")]
pub const XENMEM_ADD_TO_PHYSMAP: u32 = 7;

/// Returns the domain's pseudo-physical memory map in E820 format (`XENMEM_memory_map`,
/// argument [`MemoryMap`]).
#[doc(alias = "XENMEM_memory_map")]
pub const XENMEM_MEMORY_MAP: u32 = 9;

/// Exchanges one set of extents for another, for example to obtain memory below an address limit
/// (`XENMEM_exchange`, argument [`MemoryExchange`]).
#[doc(alias = "XENMEM_exchange")]
pub const XENMEM_EXCHANGE: u32 = 11;

/// Returns the highest GFN in use by a domain (`XENMEM_maximum_gpfn`, argument [`MemoryDomain`]).
#[doc(alias = "XENMEM_maximum_gpfn")]
pub const XENMEM_MAXIMUM_GPFN: u32 = 14;

/// Unmaps the page at a GFN (`XENMEM_remove_from_physmap`, argument [`RemoveFromPhysmap`]).
#[doc(alias = "XENMEM_remove_from_physmap")]
pub const XENMEM_REMOVE_FROM_PHYSMAP: u32 = 15;

/// The batched form of add-to-physmap (`XENMEM_add_to_physmap_batch`, argument
/// [`AddToPhysmapBatch`]).
#[doc(alias = "XENMEM_add_to_physmap_batch")]
pub const XENMEM_ADD_TO_PHYSMAP_BATCH: u32 = 23;

/// `mem_flags`: populate with populate-on-demand entries (`XENMEMF_populate_on_demand`).
#[doc(alias = "XENMEMF_populate_on_demand")]
pub const XENMEMF_POPULATE_ON_DEMAND: u32 = 1 << 16;

/// `mem_flags`: allocate only from the node given with [`xenmemf_node`]
/// (`XENMEMF_exact_node_request`).
#[doc(alias = "XENMEMF_exact_node_request")]
pub const XENMEMF_EXACT_NODE_REQUEST: u32 = 1 << 17;

/// `mem_flags`: the node given with [`xenmemf_node`] is a virtual node (`XENMEMF_vnode`).
#[doc(alias = "XENMEMF_vnode")]
pub const XENMEMF_VNODE: u32 = 1 << 18;

/// `mem_flags` bits 0–7: the allocated memory must be addressable with `bits` address bits
/// (0 for no limit; `XENMEMF_address_bits`).
#[doc(alias = "XENMEMF_address_bits")]
pub const fn xenmemf_address_bits(bits: u8) -> u32 {
    bits as u32
}

/// `mem_flags` bits 8–15: allocate from NUMA node `node` (`XENMEMF_node`, which stores
/// `node + 1` so that 0 means "any node").
#[doc(alias = "XENMEMF_node")]
pub const fn xenmemf_node(node: u8) -> u32 {
    (node as u32 + 1) << 8
}

/// Mapping space: the shared-info page; `idx` must be 0 (`XENMAPSPACE_shared_info`).
#[doc(alias = "XENMAPSPACE_shared_info")]
pub const XENMAPSPACE_SHARED_INFO: u32 = 0;

/// Mapping space: a grant-table frame; `idx` is the frame number, or'ed with
/// [`XENMAPIDX_GRANT_TABLE_STATUS`] for a v2 status frame (`XENMAPSPACE_grant_table`).
#[doc(alias = "XENMAPSPACE_grant_table")]
pub const XENMAPSPACE_GRANT_TABLE: u32 = 1;

/// Mapping space: one of the domain's own GFNs, moved to `gpfn` (`XENMAPSPACE_gmfn`).
#[doc(alias = "XENMAPSPACE_gmfn")]
pub const XENMAPSPACE_GMFN: u32 = 2;

/// Mapping space: `size` consecutive GFNs from `idx`, add-to-physmap only
/// (`XENMAPSPACE_gmfn_range`).
#[doc(alias = "XENMAPSPACE_gmfn_range")]
pub const XENMAPSPACE_GMFN_RANGE: u32 = 3;

/// Mapping space: GFNs of another domain, batch form only (`XENMAPSPACE_gmfn_foreign`).
#[doc(alias = "XENMAPSPACE_gmfn_foreign")]
pub const XENMAPSPACE_GMFN_FOREIGN: u32 = 4;

/// Mapping space: a device MMIO region, Arm only (`XENMAPSPACE_dev_mmio`).
#[doc(alias = "XENMAPSPACE_dev_mmio")]
pub const XENMAPSPACE_DEV_MMIO: u32 = 5;

/// Or'ed into `idx` with [`XENMAPSPACE_GRANT_TABLE`] to map a grant-status frame (v2) instead of
/// a grant-entry frame (`XENMAPIDX_grant_table_status`).
#[doc(alias = "XENMAPIDX_grant_table_status")]
pub const XENMAPIDX_GRANT_TABLE_STATUS: XenUlong = 0x8000_0000;

/// Arguments of increase/decrease-reservation and populate-physmap (`struct
/// xen_memory_reservation`).
#[doc(alias = "xen_memory_reservation")]
#[doc(alias = "xen_memory_reservation_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct MemoryReservation {
    /// Guest handle of an array of `nr_extents` frame numbers ([`XenPfn`]): the GFNs to free or
    /// populate; on return from populate-physmap, the frames allocated.
    pub extent_start: u64,
    /// Number of extents in the array.
    pub nr_extents: XenUlong,
    /// Each extent is `2^extent_order` pages.
    pub extent_order: u32,
    /// `XENMEMF_*` flags, address-bit limit and node ([`xenmemf_address_bits`], [`xenmemf_node`]).
    pub mem_flags: u32,
    /// The domain whose reservation changes; an unprivileged guest may only name
    /// [`crate::types::DOMID_SELF`].
    pub domid: DomId,
    /// Padding to the 8-byte alignment of the structure (implicit in C).
    pub pad: [u8; 6],
}

/// Arguments of [`XENMEM_EXCHANGE`] (`struct xen_memory_exchange`).
#[doc(alias = "xen_memory_exchange")]
#[doc(alias = "xen_memory_exchange_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct MemoryExchange {
    /// The extents given up (C `in`).
    pub input: MemoryReservation,
    /// The extents wanted in exchange; the same number of pages in total (C `out`).
    pub output: MemoryReservation,
    /// On return, how many input extents were exchanged. Must be zero on the call.
    pub nr_exchanged: XenUlong,
}

/// Argument of the reservation and maximum-GPFN queries (`struct xen_memory_domain`).
#[doc(alias = "xen_memory_domain")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct MemoryDomain {
    /// The domain queried, usually [`crate::types::DOMID_SELF`].
    pub domid: DomId,
}

/// Arguments of [`XENMEM_ADD_TO_PHYSMAP`] (`struct xen_add_to_physmap`).
#[doc(alias = "xen_add_to_physmap")]
#[doc(alias = "xen_add_to_physmap_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct AddToPhysmap {
    /// The domain whose physmap changes, usually [`crate::types::DOMID_SELF`].
    pub domid: DomId,
    /// Number of pages for [`XENMAPSPACE_GMFN_RANGE`].
    pub size: u16,
    /// The source mapping space, `XENMAPSPACE_*`.
    pub space: u32,
    /// Index within the space (the grant frame number, for example).
    pub idx: XenUlong,
    /// The GFN at which the page appears.
    pub gpfn: XenPfn,
}

/// Arguments of [`XENMEM_ADD_TO_PHYSMAP_BATCH`] (`struct xen_add_to_physmap_batch`).
#[doc(alias = "xen_add_to_physmap_batch")]
#[doc(alias = "xen_add_to_physmap_batch_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct AddToPhysmapBatch {
    /// The domain whose physmap changes.
    pub domid: DomId,
    /// The source mapping space, `XENMAPSPACE_*`.
    pub space: u16,
    /// Number of pages.
    pub size: u16,
    /// The foreign domain for [`XENMAPSPACE_GMFN_FOREIGN`], otherwise 0 (C `u.foreign_domid`,
    /// a union with `u.res0`).
    pub foreign_domid: DomId,
    /// Guest handle of `size` indexes into the space ([`XenUlong`] each).
    pub idxs: u64,
    /// Guest handle of `size` GFNs where the pages appear ([`XenPfn`] each).
    pub gpfns: u64,
    /// Guest handle of `size` per-page error codes (`int` each, written by Xen).
    pub errs: u64,
}

/// Arguments of [`XENMEM_REMOVE_FROM_PHYSMAP`] (`struct xen_remove_from_physmap`).
#[doc(alias = "xen_remove_from_physmap")]
#[doc(alias = "xen_remove_from_physmap_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct RemoveFromPhysmap {
    /// The domain whose physmap changes.
    pub domid: DomId,
    /// Padding to the alignment of `gpfn` (implicit in C).
    pub pad: [u8; 6],
    /// The GFN to unmap.
    pub gpfn: XenPfn,
}

/// Arguments of [`XENMEM_MEMORY_MAP`] (`struct xen_memory_map`).
#[doc(alias = "xen_memory_map")]
#[doc(alias = "xen_memory_map_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct MemoryMap {
    /// On the call, how many entries the buffer holds; on return, how many were written.
    pub nr_entries: u32,
    /// Padding to the alignment of `buffer` (implicit in C).
    pub pad: u32,
    /// Guest handle of the buffer of 20-byte E820 entries (base, length, type).
    pub buffer: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_flags_encode_node_plus_one() {
        assert_eq!(xenmemf_node(0), 0x100);
        assert_eq!(xenmemf_node(3), 0x400);
        assert_eq!(xenmemf_address_bits(32), 32);
    }
}
