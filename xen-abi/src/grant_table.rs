//! Grant tables (`grant_table.h`): the entries a guest writes to let another domain access its
//! pages, and the `GNTTABOP_*` sub-ops of [`crate::hypercall::HYPERVISOR_GRANT_TABLE_OP`].
//!
//! A grant table is an array of entries in frames shared with Xen; a grant reference
//! ([`GrantRef`]) is an index into it. Version 1 entries ([`GrantEntryV1`], 8 bytes) hold the
//! flags, the grantee and the frame together, and Xen reports the grantee's use in the same
//! `flags` word. Version 2 entries are 16 bytes ([`GRANT_ENTRY_V2_SIZE`]: a [`GrantEntryHeader`]
//! then one of [`GrantEntryV2FullPage`], [`GrantEntryV2SubPage`], [`GrantEntryV2Transitive`]) and
//! Xen reports use in a separate array of [`GrantStatus`] words.
//!
//! # Updating an entry (from the header's rules)
//! - To grant: write `domid` and `frame`, issue a write barrier, then write `flags` with the type.
//! - To revoke an unused [`GrantFlags::PERMIT_ACCESS`] entry: read `flags`, check that neither
//!   [`GrantFlags::READING`] nor [`GrantFlags::WRITING`] is set, and replace `flags` with 0 by
//!   an atomic compare-exchange against the value read. An entry in use cannot be revoked.
//! - To make a writable grant read-only: set [`GrantFlags::READONLY`] with a compare-exchange
//!   that checks [`GrantFlags::WRITING`] is clear.

use crate::types::{DomId, GrantRef, XenPfn};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Maps a foreign grant into the caller's address space, a backend's operation
/// (`GNTTABOP_map_grant_ref`, argument [`GnttabMapGrantRef`]).
#[doc(alias = "GNTTABOP_map_grant_ref")]
pub const GNTTABOP_MAP_GRANT_REF: u32 = 0;

/// Removes a mapping made with map-grant-ref (`GNTTABOP_unmap_grant_ref`, argument
/// [`GnttabUnmapGrantRef`]).
#[doc(alias = "GNTTABOP_unmap_grant_ref")]
pub const GNTTABOP_UNMAP_GRANT_REF: u32 = 1;

/// Grows the grant table and returns its frames (`GNTTABOP_setup_table`, argument
/// [`GnttabSetupTable`]). An HVM guest maps the frames itself with
/// [`crate::memory::XENMAPSPACE_GRANT_TABLE`] instead of using the frame list.
#[doc(alias = "GNTTABOP_setup_table")]
pub const GNTTABOP_SETUP_TABLE: u32 = 2;

/// Dumps the grant table to Xen's console, for debugging (`GNTTABOP_dump_table`).
#[doc(alias = "GNTTABOP_dump_table")]
pub const GNTTABOP_DUMP_TABLE: u32 = 3;

/// Transfers page ownership to another domain (`GNTTABOP_transfer`).
#[doc(alias = "GNTTABOP_transfer")]
pub const GNTTABOP_TRANSFER: u32 = 4;

/// Copies bytes between frames and/or grants (`GNTTABOP_copy`, argument an array of
/// [`GnttabCopy`]).
#[doc(alias = "GNTTABOP_copy")]
pub const GNTTABOP_COPY: u32 = 5;

/// Reads the current and maximum number of grant frames (`GNTTABOP_query_size`, argument
/// [`GnttabQuerySize`]).
#[doc(alias = "GNTTABOP_query_size")]
pub const GNTTABOP_QUERY_SIZE: u32 = 6;

/// Unmaps a grant and puts another mapping in its place (`GNTTABOP_unmap_and_replace`).
#[doc(alias = "GNTTABOP_unmap_and_replace")]
pub const GNTTABOP_UNMAP_AND_REPLACE: u32 = 7;

/// Selects the grant-table version, 1 or 2, while no grant is active (`GNTTABOP_set_version`,
/// argument [`GnttabSetVersion`]).
#[doc(alias = "GNTTABOP_set_version")]
pub const GNTTABOP_SET_VERSION: u32 = 8;

/// Returns the frames of the v2 status array (`GNTTABOP_get_status_frames`, argument
/// [`GnttabGetStatusFrames`]).
#[doc(alias = "GNTTABOP_get_status_frames")]
pub const GNTTABOP_GET_STATUS_FRAMES: u32 = 9;

/// Reads the grant-table version in use (`GNTTABOP_get_version`, argument
/// [`GnttabGetVersion`]).
#[doc(alias = "GNTTABOP_get_version")]
pub const GNTTABOP_GET_VERSION: u32 = 10;

/// Swaps two grant entries (`GNTTABOP_swap_grant_ref`).
#[doc(alias = "GNTTABOP_swap_grant_ref")]
pub const GNTTABOP_SWAP_GRANT_REF: u32 = 11;

/// Cleans or invalidates the cache for a grant, Arm only (`GNTTABOP_cache_flush`).
#[doc(alias = "GNTTABOP_cache_flush")]
pub const GNTTABOP_CACHE_FLUSH: u32 = 12;

/// Entries at the start of the table that the toolstack may use and that survive a table reset
/// (`GNTTAB_NR_RESERVED_ENTRIES`); a guest allocates its grants from this index up.
pub const GNTTAB_NR_RESERVED_ENTRIES: GrantRef = 8;

/// The reserved entry granting the console ring to the console backend
/// (`GNTTAB_RESERVED_CONSOLE`).
pub const GNTTAB_RESERVED_CONSOLE: GrantRef = 0;

/// The reserved entry granting the xenstore ring to xenstored (`GNTTAB_RESERVED_XENSTORE`).
pub const GNTTAB_RESERVED_XENSTORE: GrantRef = 1;

/// The `flags` value of an entry that grants nothing (`GTF_invalid`).
#[doc(alias = "GTF_invalid")]
pub const GTF_INVALID: u16 = 0;

bitflags::bitflags! {
    /// The `flags` word of a grant entry (`GTF_*`).
    ///
    /// Bits 1–0 are not independent flags but the entry type: [`GTF_INVALID`] (0),
    /// [`PERMIT_ACCESS`](Self::PERMIT_ACCESS) (1), [`ACCEPT_TRANSFER`](Self::ACCEPT_TRANSFER) (2)
    /// or [`TRANSITIVE`](Self::TRANSITIVE) (3). Compare [`entry_type`](Self::entry_type) with one
    /// of them rather than using `contains` (a transitive entry "contains" both other types).
    /// The other bits are single flags; some have different meanings for different types.
    #[doc(alias = "GTF")]
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct GrantFlags: u16 {
        /// Type: the grantee may map and access `frame` (`GTF_permit_access`).
        #[doc(alias = "GTF_permit_access")]
        const PERMIT_ACCESS = 1;
        /// Type: the grantee may transfer a page into `frame` (`GTF_accept_transfer`).
        #[doc(alias = "GTF_accept_transfer")]
        const ACCEPT_TRANSFER = 2;
        /// Type (v2 only): the grantee may copy from a grant of another domain
        /// (`GTF_transitive`).
        #[doc(alias = "GTF_transitive")]
        const TRANSITIVE = 3;
        /// The bits holding the entry type (`GTF_type_mask`).
        #[doc(alias = "GTF_type_mask")]
        const TYPE_MASK = 3;
        /// Access and transitive grants: read-only for the grantee (`GTF_readonly`).
        #[doc(alias = "GTF_readonly")]
        const READONLY = 1 << 2;
        /// Access and transitive grants, written by Xen: mapped for reading (`GTF_reading`).
        #[doc(alias = "GTF_reading")]
        const READING = 1 << 3;
        /// Access and transitive grants, written by Xen: mapped for writing (`GTF_writing`).
        #[doc(alias = "GTF_writing")]
        const WRITING = 1 << 4;
        /// Access grants on x86: the grantee's mappings use write-through caching (`GTF_PWT`).
        #[doc(alias = "GTF_PWT")]
        const PWT = 1 << 5;
        /// Access grants on x86: the grantee's mappings are uncached (`GTF_PCD`).
        #[doc(alias = "GTF_PCD")]
        const PCD = 1 << 6;
        /// Access grants on x86: the PAT bit of the grantee's mappings (`GTF_PAT`).
        #[doc(alias = "GTF_PAT")]
        const PAT = 1 << 7;
        /// Access grants (v2 only): only a byte range of the page is granted, for copying
        /// (`GTF_sub_page`).
        #[doc(alias = "GTF_sub_page")]
        const SUB_PAGE = 1 << 8;
        /// Transfer grants, written by Xen: the transfer is committed and the entry must not be
        /// changed until [`TRANSFER_COMPLETED`](Self::TRANSFER_COMPLETED)
        /// (`GTF_transfer_committed`; the same bit as [`READONLY`](Self::READONLY)).
        #[doc(alias = "GTF_transfer_committed")]
        const TRANSFER_COMMITTED = 1 << 2;
        /// Transfer grants, written by Xen: the frame was written and the transfer is complete
        /// (`GTF_transfer_completed`; the same bit as [`READING`](Self::READING)).
        #[doc(alias = "GTF_transfer_completed")]
        const TRANSFER_COMPLETED = 1 << 3;
    }
}

impl GrantFlags {
    /// The entry type: `self & TYPE_MASK`, to compare with [`GTF_INVALID`] (as
    /// [`GrantFlags::empty`]) or one of the type values.
    pub const fn entry_type(self) -> GrantFlags {
        self.intersection(GrantFlags::TYPE_MASK)
    }
}

/// A version 1 grant entry (`struct grant_entry_v1`).
#[doc(alias = "grant_entry_v1")]
#[doc(alias = "grant_entry_v1_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct GrantEntryV1 {
    /// [`GrantFlags`] bits, written by the guest and (usage bits) by Xen.
    pub flags: u16,
    /// The domain granted access.
    pub domid: DomId,
    /// The granted GFN (access) or the slot to transfer into (transfer).
    pub frame: u32,
}

/// Grant entries in one 4 KiB frame of a version 1 table.
pub const GRANT_ENTRIES_V1_PER_FRAME: u32 = (4096 / size_of::<GrantEntryV1>()) as u32;

/// The prefix common to version 1 and version 2 entries (`struct grant_entry_header`).
#[doc(alias = "grant_entry_header")]
#[doc(alias = "grant_entry_header_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct GrantEntryHeader {
    /// [`GrantFlags`] bits; in version 2 the usage bits are in the status array instead.
    pub flags: u16,
    /// The domain granted access.
    pub domid: DomId,
}

/// The size of a version 2 entry (`sizeof(union grant_entry_v2)`); every variant below starts at
/// a multiple of it.
pub const GRANT_ENTRY_V2_SIZE: usize = 16;

/// Grant entries in one 4 KiB frame of a version 2 table.
pub const GRANT_ENTRIES_V2_PER_FRAME: u32 = (4096 / GRANT_ENTRY_V2_SIZE) as u32;

/// A version 2 entry granting a whole page, for access or transfer (`union grant_entry_v2`
/// member `full_page`).
#[doc(alias = "grant_entry_v2")]
#[doc(alias = "grant_entry_v2_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct GrantEntryV2FullPage {
    /// Flags and grantee.
    pub hdr: GrantEntryHeader,
    /// Reserved.
    pub pad0: u32,
    /// The granted GFN.
    pub frame: u64,
}

/// A version 2 entry granting bytes `page_off .. page_off + length` of a page, for copying only
/// ([`GrantFlags::SUB_PAGE`]; `union grant_entry_v2` member `sub_page`).
#[doc(alias = "grant_entry_v2")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct GrantEntryV2SubPage {
    /// Flags and grantee.
    pub hdr: GrantEntryHeader,
    /// First byte granted.
    pub page_off: u16,
    /// Number of bytes granted.
    pub length: u16,
    /// The GFN of the page.
    pub frame: u64,
}

/// A version 2 entry letting the grantee use grant `gref` of domain `trans_domid` as if it were
/// the granter's own ([`GrantFlags::TRANSITIVE`]; `union grant_entry_v2` member `transitive`).
/// It is 12 bytes; the entry slot is still [`GRANT_ENTRY_V2_SIZE`].
#[doc(alias = "grant_entry_v2")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct GrantEntryV2Transitive {
    /// Flags and grantee.
    pub hdr: GrantEntryHeader,
    /// The domain owning the original grant.
    pub trans_domid: DomId,
    /// Reserved.
    pub pad0: u16,
    /// The original grant reference in `trans_domid`'s table.
    pub gref: GrantRef,
}

/// A version 2 status word, one per entry in the status frames (`grant_status_t`): the
/// [`GrantFlags::READING`] / [`GrantFlags::WRITING`] bits Xen keeps in `flags` in version 1.
#[doc(alias = "grant_status_t")]
pub type GrantStatus = u16;

/// Status words in one 4 KiB status frame.
pub const GRANT_STATUS_PER_FRAME: u32 = (4096 / size_of::<GrantStatus>()) as u32;

/// A grant mapping handle returned by map-grant-ref (`grant_handle_t`).
#[doc(alias = "grant_handle_t")]
pub type GrantHandle = u32;

bitflags::bitflags! {
    /// The `flags` of [`GnttabMapGrantRef`] (`GNTMAP_*`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct GntmapFlags: u32 {
        /// Map for access by I/O devices; `dev_bus_addr` returns the bus address
        /// (`GNTMAP_device_map`).
        #[doc(alias = "GNTMAP_device_map")]
        const DEVICE_MAP = 1 << 0;
        /// Map for access by host CPUs at `host_addr` (`GNTMAP_host_map`).
        #[doc(alias = "GNTMAP_host_map")]
        const HOST_MAP = 1 << 1;
        /// Map read-only (`GNTMAP_readonly`).
        #[doc(alias = "GNTMAP_readonly")]
        const READONLY = 1 << 2;
        /// With host-map: usable by the current application as well as the kernel
        /// (`GNTMAP_application_map`).
        #[doc(alias = "GNTMAP_application_map")]
        const APPLICATION_MAP = 1 << 3;
        /// With host-map: `host_addr` is the machine address of a PTE to update
        /// (`GNTMAP_contains_pte`).
        #[doc(alias = "GNTMAP_contains_pte")]
        const CONTAINS_PTE = 1 << 4;
    }
}

/// Arguments of [`GNTTABOP_MAP_GRANT_REF`] (`struct gnttab_map_grant_ref`).
#[doc(alias = "gnttab_map_grant_ref")]
#[doc(alias = "gnttab_map_grant_ref_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct GnttabMapGrantRef {
    /// Where to map: a guest-physical or virtual address, or a PTE's machine address.
    pub host_addr: u64,
    /// [`GntmapFlags`] bits.
    pub flags: u32,
    /// The grant reference in `dom`'s table (C `ref`).
    pub gref: GrantRef,
    /// The granting domain.
    pub dom: DomId,
    /// On return, `GNTST_*`.
    pub status: i16,
    /// On return, the handle to unmap with.
    pub handle: GrantHandle,
    /// On return with [`GntmapFlags::DEVICE_MAP`], the bus address of the frame.
    pub dev_bus_addr: u64,
}

/// Arguments of [`GNTTABOP_UNMAP_GRANT_REF`] (`struct gnttab_unmap_grant_ref`).
#[doc(alias = "gnttab_unmap_grant_ref")]
#[doc(alias = "gnttab_unmap_grant_ref_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct GnttabUnmapGrantRef {
    /// The host address given to map, or 0.
    pub host_addr: u64,
    /// The device address returned by map, or 0.
    pub dev_bus_addr: u64,
    /// The handle returned by map.
    pub handle: GrantHandle,
    /// On return, `GNTST_*`.
    pub status: i16,
    /// Padding to the 8-byte alignment of the structure (implicit in C).
    pub pad: u16,
}

/// Arguments of [`GNTTABOP_SETUP_TABLE`] (`struct gnttab_setup_table`).
#[doc(alias = "gnttab_setup_table")]
#[doc(alias = "gnttab_setup_table_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct GnttabSetupTable {
    /// The domain, [`crate::types::DOMID_SELF`].
    pub dom: DomId,
    /// Padding to the alignment of `nr_frames` (implicit in C).
    pub pad0: u16,
    /// The number of frames wanted (at least).
    pub nr_frames: u32,
    /// On return, `GNTST_*`.
    pub status: i16,
    /// Padding to the alignment of `frame_list` (implicit in C).
    pub pad1: [u8; 6],
    /// Guest handle of an array of `nr_frames` [`XenPfn`], filled with the table's frames.
    pub frame_list: u64,
}

bitflags::bitflags! {
    /// The `flags` of [`GnttabCopy`] (`GNTCOPY_*`): which ends are grant references rather than
    /// the caller's own frames.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct GntcopyFlags: u16 {
        /// The source is a grant reference of `source.domid` (`GNTCOPY_source_gref`).
        #[doc(alias = "GNTCOPY_source_gref")]
        const SOURCE_GREF = 1 << 0;
        /// The destination is a grant reference of `dest.domid` (`GNTCOPY_dest_gref`).
        #[doc(alias = "GNTCOPY_dest_gref")]
        const DEST_GREF = 1 << 1;
    }
}

/// One end of a [`GnttabCopy`] (`struct gnttab_copy_ptr`).
#[doc(alias = "gnttab_copy_ptr")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct GnttabCopyPtr {
    /// The C union `u`: a grant reference (zero-extended, as [`GnttabCopyPtr::gref`] stores
    /// it) when the matching `GNTCOPY_*_gref` flag is set, otherwise a GFN ([`XenPfn`]).
    pub u: u64,
    /// The domain owning the grant or frame.
    pub domid: DomId,
    /// Byte offset within the page.
    pub offset: u16,
    /// Padding to the 8-byte alignment of the structure (implicit in C).
    pub pad: u32,
}

impl GnttabCopyPtr {
    /// An end naming grant `gref` of domain `domid`, at byte `offset`.
    pub const fn gref(gref: GrantRef, domid: DomId, offset: u16) -> Self {
        Self {
            u: gref as u64,
            domid,
            offset,
            pad: 0,
        }
    }

    /// An end naming the caller's frame `gmfn` (with `domid` [`crate::types::DOMID_SELF`]), at
    /// byte `offset`.
    pub const fn gmfn(gmfn: XenPfn, domid: DomId, offset: u16) -> Self {
        Self {
            u: gmfn,
            domid,
            offset,
            pad: 0,
        }
    }
}

/// Arguments of [`GNTTABOP_COPY`], one per copy (`struct gnttab_copy`). A copy must not cross a
/// page boundary at either end.
#[doc(alias = "gnttab_copy")]
#[doc(alias = "gnttab_copy_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct GnttabCopy {
    /// Where to copy from.
    pub source: GnttabCopyPtr,
    /// Where to copy to.
    pub dest: GnttabCopyPtr,
    /// Bytes to copy.
    pub len: u16,
    /// [`GntcopyFlags`] bits.
    pub flags: u16,
    /// On return, `GNTST_*`.
    pub status: i16,
    /// Padding to the 8-byte alignment of the structure (implicit in C).
    pub pad: u16,
}

/// Arguments of [`GNTTABOP_QUERY_SIZE`] (`struct gnttab_query_size`).
#[doc(alias = "gnttab_query_size")]
#[doc(alias = "gnttab_query_size_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct GnttabQuerySize {
    /// The domain, [`crate::types::DOMID_SELF`].
    pub dom: DomId,
    /// Padding to the alignment of `nr_frames` (implicit in C).
    pub pad0: u16,
    /// On return, the frames in use.
    pub nr_frames: u32,
    /// On return, the most frames the table may grow to.
    pub max_nr_frames: u32,
    /// On return, `GNTST_*`.
    pub status: i16,
    /// Padding to the 4-byte alignment of the structure (implicit in C).
    pub pad1: u16,
}

/// Arguments of [`GNTTABOP_SET_VERSION`] (`struct gnttab_set_version`).
#[doc(alias = "gnttab_set_version")]
#[doc(alias = "gnttab_set_version_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct GnttabSetVersion {
    /// The version wanted, 1 or 2; on return, the version in use.
    pub version: u32,
}

/// Arguments of [`GNTTABOP_GET_STATUS_FRAMES`] (`struct gnttab_get_status_frames`).
#[doc(alias = "gnttab_get_status_frames")]
#[doc(alias = "gnttab_get_status_frames_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct GnttabGetStatusFrames {
    /// The size of the `frame_list` array.
    pub nr_frames: u32,
    /// The domain, [`crate::types::DOMID_SELF`].
    pub dom: DomId,
    /// On return, `GNTST_*`.
    pub status: i16,
    /// Guest handle of an array of `nr_frames` `u64` frame numbers, filled by Xen.
    pub frame_list: u64,
}

/// Arguments of [`GNTTABOP_GET_VERSION`] (`struct gnttab_get_version`).
#[doc(alias = "gnttab_get_version")]
#[doc(alias = "gnttab_get_version_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct GnttabGetVersion {
    /// The domain, [`crate::types::DOMID_SELF`].
    pub dom: DomId,
    /// Reserved.
    pub pad: u16,
    /// On return, the version in use.
    pub version: u32,
}

/// Success (`GNTST_okay`).
#[doc(alias = "GNTST_okay")]
pub const GNTST_OKAY: i16 = 0;
/// Unspecified error (`GNTST_general_error`).
#[doc(alias = "GNTST_general_error")]
pub const GNTST_GENERAL_ERROR: i16 = -1;
/// Unknown domain (`GNTST_bad_domain`).
#[doc(alias = "GNTST_bad_domain")]
pub const GNTST_BAD_DOMAIN: i16 = -2;
/// Unknown or unsuitable grant reference (`GNTST_bad_gntref`).
#[doc(alias = "GNTST_bad_gntref")]
pub const GNTST_BAD_GNTREF: i16 = -3;
/// Unknown or unsuitable mapping handle (`GNTST_bad_handle`).
#[doc(alias = "GNTST_bad_handle")]
pub const GNTST_BAD_HANDLE: i16 = -4;
/// Unsuitable virtual address to map at (`GNTST_bad_virt_addr`).
#[doc(alias = "GNTST_bad_virt_addr")]
pub const GNTST_BAD_VIRT_ADDR: i16 = -5;
/// Unsuitable device address to unmap (`GNTST_bad_dev_addr`).
#[doc(alias = "GNTST_bad_dev_addr")]
pub const GNTST_BAD_DEV_ADDR: i16 = -6;
/// No space left in the I/O MMU (`GNTST_no_device_space`).
#[doc(alias = "GNTST_no_device_space")]
pub const GNTST_NO_DEVICE_SPACE: i16 = -7;
/// Not privileged enough (`GNTST_permission_denied`).
#[doc(alias = "GNTST_permission_denied")]
pub const GNTST_PERMISSION_DENIED: i16 = -8;
/// The page is not valid for the operation (`GNTST_bad_page`).
#[doc(alias = "GNTST_bad_page")]
pub const GNTST_BAD_PAGE: i16 = -9;
/// The copy crosses a page boundary (`GNTST_bad_copy_arg`).
#[doc(alias = "GNTST_bad_copy_arg")]
pub const GNTST_BAD_COPY_ARG: i16 = -10;
/// The transferred page's address is too large (`GNTST_address_too_big`).
#[doc(alias = "GNTST_address_too_big")]
pub const GNTST_ADDRESS_TOO_BIG: i16 = -11;
/// Not done; try again (`GNTST_eagain`).
#[doc(alias = "GNTST_eagain")]
pub const GNTST_EAGAIN: i16 = -12;
/// Out of space, for handles and the like (`GNTST_no_space`).
#[doc(alias = "GNTST_no_space")]
pub const GNTST_NO_SPACE: i16 = -13;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_type_is_a_field_not_a_flag() {
        let transitive = GrantFlags::TRANSITIVE | GrantFlags::READONLY;
        assert_eq!(transitive.entry_type(), GrantFlags::TRANSITIVE);
        assert_ne!(transitive.entry_type(), GrantFlags::PERMIT_ACCESS);
        let access = GrantFlags::PERMIT_ACCESS | GrantFlags::READING | GrantFlags::WRITING;
        assert_eq!(access.entry_type(), GrantFlags::PERMIT_ACCESS);
        assert_eq!(
            GrantFlags::from_bits_retain(GTF_INVALID).entry_type(),
            GrantFlags::empty()
        );
    }

    #[test]
    fn per_frame_counts() {
        assert_eq!(GRANT_ENTRIES_V1_PER_FRAME, 512);
        assert_eq!(GRANT_ENTRIES_V2_PER_FRAME, 256);
        assert_eq!(GRANT_STATUS_PER_FRAME, 2048);
        assert_eq!(size_of::<GrantEntryV2FullPage>(), GRANT_ENTRY_V2_SIZE);
        assert_eq!(size_of::<GrantEntryV2SubPage>(), GRANT_ENTRY_V2_SIZE);
    }

    #[test]
    fn copy_ptr_grant_ref_is_the_low_half_of_the_union() {
        use zerocopy::IntoBytes;
        let ptr = GnttabCopyPtr::gref(0x1234_5678, 7, 512);
        assert_eq!(&ptr.as_bytes()[..4], &0x1234_5678u32.to_ne_bytes());
        assert_eq!(&ptr.as_bytes()[4..8], &[0; 4]);
    }
}
