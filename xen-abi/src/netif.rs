//! The network-device ring protocol (`io/netif.h`): transmit, receive and control rings.
//!
//! A netif frontend has, per queue, a transmit ring (frontend → backend packets, slot 12 bytes)
//! and a receive ring (backend → frontend packets, slot 8 bytes), each one page, plus optionally
//! one control ring for hash configuration. All structures have the same layout in the x86_32 and
//! x86_64 ABIs.
//!
//! # Packets on the rings
//! A transmitted packet is a [`NetifTxRequest`] whose `size` is the whole packet's length,
//! optionally followed (when its flags include [`NetTxFlags::EXTRA_INFO`]) by one or more
//! extra-info slots, then one request per further fragment while [`NetTxFlags::MORE_DATA`] is set.
//! A received packet is the same on the receive ring, in [`NetifRxResponse`]s, except that every
//! response carries its own fragment's size. Extra-info slots overlay a request on the transmit
//! ring and a response on the receive ring; they have no `id`, so no response is produced for them
//! (their transmit response slot has status [`NETIF_RSP_NULL`]).
//!
//! # Extra info
//! `struct netif_extra_info` is a 2-byte header (type, flags) followed by a 6-byte union. Each
//! union member is a separate 8-byte Rust type: [`NetifExtraInfo`] (the header and raw bytes),
//! [`NetifExtraInfoGso`], [`NetifExtraInfoMcast`] and [`NetifExtraInfoHash`]. Read the header
//! with [`NetifExtraInfo`], then reinterpret the same bytes as the variant its type names.
//!
//! # Hash key and mapping sizes
//! The headers fix neither the Toeplitz key size nor the mapping-table size: the backend reports
//! and bounds them in control-ring responses. [`TOEPLITZ_KEY_SIZE`] is the 40-byte key Windows
//! (NDIS receive-side scaling) uses, which Linux's backend also accepts as its maximum; a mapping
//! table is an array of `u32` queue numbers ([`HASH_MAPPING_ENTRY_SIZE`]), at most
//! [`HASH_MAPPING_ENTRIES_PER_PAGE`] per granted page.

use bitflags::bitflags;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::ring::{ring_entry_size, ring_slots, XEN_PAGE_SIZE};
use crate::types::GrantRef;

/// The number of slots one packet may use that every backend must accept without negotiation
/// (old Linux's `MAX_SKB_FRAGS`); a frontend sending a packet in more slots risks a drop.
pub const XEN_NETIF_NR_SLOTS_MIN: usize = 18;

/// The largest packet a transmit request can describe (its `size` is 16 bits).
pub const XEN_NETIF_MAX_TX_SIZE: u32 = 0xFFFF;

bitflags! {
    /// The `flags` of a [`NetifTxRequest`] (`NETTXF_*`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct NetTxFlags: u16 {
        /// The protocol checksum field is blank; the backend (or hardware) must fill it in.
        #[doc(alias = "NETTXF_csum_blank")]
        const CSUM_BLANK = 1 << 0;
        /// The packet's data has been validated against its protocol checksum.
        #[doc(alias = "NETTXF_data_validated")]
        const DATA_VALIDATED = 1 << 1;
        /// The packet continues in the next request.
        #[doc(alias = "NETTXF_more_data")]
        const MORE_DATA = 1 << 2;
        /// The request is followed by one or more extra-info slots.
        #[doc(alias = "NETTXF_extra_info")]
        const EXTRA_INFO = 1 << 3;
    }
}

bitflags! {
    /// The `flags` of a [`NetifRxResponse`] (`NETRXF_*`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct NetRxFlags: u16 {
        /// The packet's data has been validated against its protocol checksum.
        #[doc(alias = "NETRXF_data_validated")]
        const DATA_VALIDATED = 1 << 0;
        /// The protocol checksum field is blank (the sender offloaded it).
        #[doc(alias = "NETRXF_csum_blank")]
        const CSUM_BLANK = 1 << 1;
        /// The packet continues in the next response.
        #[doc(alias = "NETRXF_more_data")]
        const MORE_DATA = 1 << 2;
        /// The response is followed by one or more extra-info slots.
        #[doc(alias = "NETRXF_extra_info")]
        const EXTRA_INFO = 1 << 3;
        /// The packet has a GSO prefix slot (deprecated; kept for compatibility).
        #[doc(alias = "NETRXF_gso_prefix")]
        const GSO_PREFIX = 1 << 4;
    }
}

/// A transmit request (`struct netif_tx_request`): one fragment of a packet.
#[doc(alias = "netif_tx_request")]
#[doc(alias = "netif_tx_request_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct NetifTxRequest {
    /// The grant of the page holding the fragment.
    pub gref: GrantRef,
    /// The fragment's offset within the page.
    pub offset: u16,
    /// [`NetTxFlags`] bits.
    pub flags: u16,
    /// A frontend-chosen identifier echoed in the response.
    pub id: u16,
    /// The whole packet's size in the first request of a packet, the fragment's size otherwise.
    pub size: u16,
}

/// A transmit response (`struct netif_tx_response`).
#[doc(alias = "netif_tx_response")]
#[doc(alias = "netif_tx_response_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct NetifTxResponse {
    /// The `id` of the request.
    pub id: u16,
    /// One of the `NETIF_RSP_*` values.
    pub status: i16,
}

/// A receive request (`struct netif_rx_request`): a granted page the backend may fill.
#[doc(alias = "netif_rx_request")]
#[doc(alias = "netif_rx_request_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct NetifRxRequest {
    /// A frontend-chosen identifier echoed in the response.
    pub id: u16,
    /// Reserved.
    pub pad: u16,
    /// The grant of the page to receive into.
    pub gref: GrantRef,
}

/// A receive response (`struct netif_rx_response`): one fragment of a received packet.
#[doc(alias = "netif_rx_response")]
#[doc(alias = "netif_rx_response_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct NetifRxResponse {
    /// The `id` of the request (Linux-compatible backends also keep the response in the slot of
    /// its request).
    pub id: u16,
    /// The fragment's offset within the page.
    pub offset: u16,
    /// [`NetRxFlags`] bits.
    pub flags: u16,
    /// The fragment's size if non-negative, otherwise one of the `NETIF_RSP_*` errors.
    pub status: i16,
}

/// The packet was dropped.
#[doc(alias = "XEN_NETIF_RSP_DROPPED")]
pub const NETIF_RSP_DROPPED: i16 = -2;
/// The packet could not be handled.
#[doc(alias = "XEN_NETIF_RSP_ERROR")]
pub const NETIF_RSP_ERROR: i16 = -1;
/// The packet was handled.
#[doc(alias = "XEN_NETIF_RSP_OKAY")]
pub const NETIF_RSP_OKAY: i16 = 0;
/// No response: the status of the slots of auxiliary requests such as extra info.
#[doc(alias = "XEN_NETIF_RSP_NULL")]
pub const NETIF_RSP_NULL: i16 = 1;

/// No extra info (never valid on a ring).
pub const XEN_NETIF_EXTRA_TYPE_NONE: u8 = 0;
/// Segmentation offload parameters ([`NetifExtraInfoGso`]).
pub const XEN_NETIF_EXTRA_TYPE_GSO: u8 = 1;
/// Add a multicast address to the backend's filter ([`NetifExtraInfoMcast`]).
pub const XEN_NETIF_EXTRA_TYPE_MCAST_ADD: u8 = 2;
/// Remove a multicast address from the backend's filter ([`NetifExtraInfoMcast`]).
pub const XEN_NETIF_EXTRA_TYPE_MCAST_DEL: u8 = 3;
/// The packet's hash ([`NetifExtraInfoHash`]).
pub const XEN_NETIF_EXTRA_TYPE_HASH: u8 = 4;
/// One more than the largest extra-info type.
pub const XEN_NETIF_EXTRA_TYPE_MAX: u8 = 5;

bitflags! {
    /// The `flags` of an extra-info slot (`XEN_NETIF_EXTRA_FLAG_*`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct NetifExtraFlags: u8 {
        /// Another extra-info slot follows this one.
        #[doc(alias = "XEN_NETIF_EXTRA_FLAG_MORE")]
        const MORE = 1 << 0;
    }
}

/// No segmentation.
pub const XEN_NETIF_GSO_TYPE_NONE: u8 = 0;
/// TCP over IPv4 segmentation.
pub const XEN_NETIF_GSO_TYPE_TCPV4: u8 = 1;
/// TCP over IPv6 segmentation.
pub const XEN_NETIF_GSO_TYPE_TCPV6: u8 = 2;

/// An extra-info slot seen through its header (`struct netif_extra_info` with the union as raw
/// `u.pad`).
#[doc(alias = "netif_extra_info")]
#[doc(alias = "netif_extra_info_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct NetifExtraInfo {
    /// One of the `XEN_NETIF_EXTRA_TYPE_*` values.
    #[doc(alias = "type")]
    pub extra_type: u8,
    /// [`NetifExtraFlags`] bits.
    pub flags: u8,
    /// The type-specific data (`u.pad`).
    pub pad: [u16; 3],
}

/// A [`XEN_NETIF_EXTRA_TYPE_GSO`] extra-info slot (`struct netif_extra_info`, member `u.gso`).
#[doc(alias = "netif_extra_info")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct NetifExtraInfoGso {
    /// [`XEN_NETIF_EXTRA_TYPE_GSO`].
    #[doc(alias = "type")]
    pub extra_type: u8,
    /// [`NetifExtraFlags`] bits.
    pub flags: u8,
    /// The maximum payload of each segment (the TCP MSS) (`u.gso.size`).
    pub size: u16,
    /// One of the `XEN_NETIF_GSO_TYPE_*` values (`u.gso.type`).
    #[doc(alias = "type")]
    pub gso_type: u8,
    /// Reserved (`u.gso.pad`).
    pub pad: u8,
    /// GSO feature bits; none are defined (`u.gso.features`).
    pub features: u16,
}

/// A [`XEN_NETIF_EXTRA_TYPE_MCAST_ADD`] or [`XEN_NETIF_EXTRA_TYPE_MCAST_DEL`] extra-info slot
/// (`struct netif_extra_info`, member `u.mcast`).
#[doc(alias = "netif_extra_info")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C, align(2))]
pub struct NetifExtraInfoMcast {
    /// [`XEN_NETIF_EXTRA_TYPE_MCAST_ADD`] or [`XEN_NETIF_EXTRA_TYPE_MCAST_DEL`].
    #[doc(alias = "type")]
    pub extra_type: u8,
    /// [`NetifExtraFlags`] bits.
    pub flags: u8,
    /// The Ethernet multicast address (`u.mcast.addr`).
    pub addr: [u8; 6],
}

/// A [`XEN_NETIF_EXTRA_TYPE_HASH`] extra-info slot (`struct netif_extra_info`, member `u.hash`).
#[doc(alias = "netif_extra_info")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C, align(2))]
pub struct NetifExtraInfoHash {
    /// [`XEN_NETIF_EXTRA_TYPE_HASH`].
    #[doc(alias = "type")]
    pub extra_type: u8,
    /// [`NetifExtraFlags`] bits.
    pub flags: u8,
    /// Which hash this is: the bit *number* of one [`NetifCtrlHashType`] flag, e.g. 1 for
    /// IPv4+TCP (`u.hash.type`).
    #[doc(alias = "type")]
    pub hash_type: u8,
    /// The `XEN_NETIF_CTRL_HASH_ALGORITHM_*` used (`u.hash.algorithm`).
    pub algorithm: u8,
    /// The hash value, least significant byte first (`u.hash.value`); see [`Self::hash_value`].
    pub value: [u8; 4],
}

impl NetifExtraInfoHash {
    /// The hash value as a number.
    pub const fn hash_value(&self) -> u32 {
        u32::from_le_bytes(self.value)
    }
}

/// The size of one transmit-ring slot (`union netif_tx_sring_entry`): 12 bytes.
pub const NETIF_TX_RING_ENTRY_SIZE: usize = ring_entry_size(
    size_of::<NetifTxRequest>(),
    align_of::<NetifTxRequest>(),
    size_of::<NetifTxResponse>(),
    align_of::<NetifTxResponse>(),
);
/// The number of slots of the (one-page) transmit ring (`__CONST_RING_SIZE(netif_tx, 4096)`): 256.
#[doc(alias = "NET_TX_RING_SIZE")]
pub const NETIF_TX_RING_SLOTS: u32 = ring_slots(1, NETIF_TX_RING_ENTRY_SIZE);

/// The size of one receive-ring slot (`union netif_rx_sring_entry`): 8 bytes.
pub const NETIF_RX_RING_ENTRY_SIZE: usize = ring_entry_size(
    size_of::<NetifRxRequest>(),
    align_of::<NetifRxRequest>(),
    size_of::<NetifRxResponse>(),
    align_of::<NetifRxResponse>(),
);
/// The number of slots of the (one-page) receive ring (`__CONST_RING_SIZE(netif_rx, 4096)`): 256.
#[doc(alias = "NET_RX_RING_SIZE")]
pub const NETIF_RX_RING_SLOTS: u32 = ring_slots(1, NETIF_RX_RING_ENTRY_SIZE);

// ---------------------------------------------------------------------------------------------
// Control ring.

/// A control-ring request (`struct xen_netif_ctrl_request`).
#[doc(alias = "xen_netif_ctrl_request")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct XenNetifCtrlRequest {
    /// A frontend-chosen identifier echoed in the response.
    pub id: u16,
    /// One of the `XEN_NETIF_CTRL_TYPE_*` values.
    #[doc(alias = "type")]
    pub ctrl_type: u16,
    /// The request's arguments; their meaning depends on `ctrl_type`, unused ones are zero.
    pub data: [u32; 3],
}

/// A control-ring response (`struct xen_netif_ctrl_response`).
#[doc(alias = "xen_netif_ctrl_response")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct XenNetifCtrlResponse {
    /// The `id` of the request.
    pub id: u16,
    /// The `ctrl_type` of the request.
    #[doc(alias = "type")]
    pub ctrl_type: u16,
    /// One of the `XEN_NETIF_CTRL_STATUS_*` values.
    pub status: u32,
    /// The result, depending on the request's type.
    pub data: u32,
}

/// One entry of the table of a [`XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING`] or
/// [`XEN_NETIF_CTRL_TYPE_DEL_GREF_MAPPING`] request (`struct xen_netif_gref`).
#[doc(alias = "xen_netif_gref")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct XenNetifGref {
    /// The grant to map or unmap (`ref`).
    #[doc(alias = "ref")]
    pub gref: GrantRef,
    /// [`XenNetifGrefFlags`] bits.
    pub flags: u16,
    /// The entry's own `XEN_NETIF_CTRL_STATUS_*`, written by the backend on unmap.
    pub status: u16,
}

bitflags! {
    /// The `flags` of a [`XenNetifGref`] (`XEN_NETIF_CTRLF_GREF_*`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct XenNetifGrefFlags: u16 {
        /// Map the grant read-only.
        #[doc(alias = "XEN_NETIF_CTRLF_GREF_readonly")]
        const READONLY = 1 << 0;
    }
}

/// Never a valid request type.
pub const XEN_NETIF_CTRL_TYPE_INVALID: u16 = 0;
/// Ask which hash types the backend supports; the response `data` is [`NetifCtrlHashType`] bits.
pub const XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS: u16 = 1;
/// Set the hash types to compute: `data[0]` is [`NetifCtrlHashType`] bits (0 disables hashing).
pub const XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS: u16 = 2;
/// Set the hash key: `data[0]` is the grant of the page holding it, `data[1]` its size in bytes.
pub const XEN_NETIF_CTRL_TYPE_SET_HASH_KEY: u16 = 3;
/// Ask the largest mapping table the backend supports, in entries (0: no table, only modulo).
pub const XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE: u16 = 4;
/// Set the mapping table's size in entries (`data[0]`); the table is zero-filled.
pub const XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE: u16 = 5;
/// Set (part of) the mapping table: `data[0]` the grant of a page of `u32` queue numbers,
/// `data[1]` how many entries, `data[2]` the offset in entries within the table.
pub const XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING: u16 = 6;
/// Set the hash algorithm: `data[0]` is a `XEN_NETIF_CTRL_HASH_ALGORITHM_*` value.
pub const XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM: u16 = 7;
/// Ask how many grants the backend can keep mapped for a queue (`data[0]`).
pub const XEN_NETIF_CTRL_TYPE_GET_GREF_MAPPING_SIZE: u16 = 8;
/// Have the backend map a table of [`XenNetifGref`]: `data[0]` queue, `data[1]` the grant of the
/// table, `data[2]` its number of entries.
pub const XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING: u16 = 9;
/// Have the backend unmap a table of [`XenNetifGref`], with the same arguments as adding.
pub const XEN_NETIF_CTRL_TYPE_DEL_GREF_MAPPING: u16 = 10;

/// The request succeeded.
pub const XEN_NETIF_CTRL_STATUS_SUCCESS: u32 = 0;
/// The backend does not support the request type.
pub const XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED: u32 = 1;
/// An argument is invalid.
pub const XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER: u32 = 2;
/// A key or table is larger than the backend supports.
pub const XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW: u32 = 3;

/// No hashing; the backend steers packets to queues as it likes.
pub const XEN_NETIF_CTRL_HASH_ALGORITHM_NONE: u32 = 0;
/// The Toeplitz hash, keyed with a key set by [`XEN_NETIF_CTRL_TYPE_SET_HASH_KEY`].
pub const XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ: u32 = 1;

bitflags! {
    /// Which packets to hash and over which headers (`XEN_NETIF_CTRL_HASH_TYPE_*`). The bit
    /// numbers (`_XEN_NETIF_CTRL_HASH_TYPE_*`) are what a hash extra-info slot carries.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct NetifCtrlHashType: u32 {
        /// Over the IPv4 source and destination addresses (8 bytes).
        #[doc(alias = "XEN_NETIF_CTRL_HASH_TYPE_IPV4")]
        const IPV4 = 1 << 0;
        /// Over the IPv4 addresses and TCP ports (12 bytes).
        #[doc(alias = "XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP")]
        const IPV4_TCP = 1 << 1;
        /// Over the IPv6 source and destination addresses (32 bytes).
        #[doc(alias = "XEN_NETIF_CTRL_HASH_TYPE_IPV6")]
        const IPV6 = 1 << 2;
        /// Over the IPv6 addresses and TCP ports (36 bytes).
        #[doc(alias = "XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP")]
        const IPV6_TCP = 1 << 3;
    }
}

/// The size of a Toeplitz key as Windows' receive-side scaling supplies it: 40 bytes. The header
/// leaves the maximum to the backend (a larger key is answered with
/// [`XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW`]).
pub const TOEPLITZ_KEY_SIZE: usize = 40;

/// The size of one mapping-table entry (a `u32` queue number).
pub const HASH_MAPPING_ENTRY_SIZE: usize = size_of::<u32>();

/// The most mapping-table entries one granted page holds: 1024.
pub const HASH_MAPPING_ENTRIES_PER_PAGE: usize = XEN_PAGE_SIZE / HASH_MAPPING_ENTRY_SIZE;

/// The size of one control-ring slot (`union xen_netif_ctrl_sring_entry`): 16 bytes.
pub const XEN_NETIF_CTRL_RING_ENTRY_SIZE: usize = ring_entry_size(
    size_of::<XenNetifCtrlRequest>(),
    align_of::<XenNetifCtrlRequest>(),
    size_of::<XenNetifCtrlResponse>(),
    align_of::<XenNetifCtrlResponse>(),
);
/// The number of slots of the (one-page) control ring
/// (`__CONST_RING_SIZE(xen_netif_ctrl, 4096)`): 128.
pub const XEN_NETIF_CTRL_RING_SLOTS: u32 = ring_slots(1, XEN_NETIF_CTRL_RING_ENTRY_SIZE);

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    #[test]
    fn slot_sizes_and_counts() {
        assert_eq!(NETIF_TX_RING_ENTRY_SIZE, 12);
        assert_eq!(NETIF_RX_RING_ENTRY_SIZE, 8);
        assert_eq!(XEN_NETIF_CTRL_RING_ENTRY_SIZE, 16);
        assert_eq!(NETIF_TX_RING_SLOTS, 256);
        assert_eq!(NETIF_RX_RING_SLOTS, 256);
        assert_eq!(XEN_NETIF_CTRL_RING_SLOTS, 128);
        assert_eq!(HASH_MAPPING_ENTRIES_PER_PAGE, 1024);
    }

    #[test]
    fn extra_info_variants_are_views_of_the_same_8_bytes() {
        for (size, align) in [
            (size_of::<NetifExtraInfo>(), align_of::<NetifExtraInfo>()),
            (
                size_of::<NetifExtraInfoGso>(),
                align_of::<NetifExtraInfoGso>(),
            ),
            (
                size_of::<NetifExtraInfoMcast>(),
                align_of::<NetifExtraInfoMcast>(),
            ),
            (
                size_of::<NetifExtraInfoHash>(),
                align_of::<NetifExtraInfoHash>(),
            ),
        ] {
            assert_eq!((size, align), (8, 2));
        }
        let mut gso = NetifExtraInfoGso::new_zeroed();
        gso.extra_type = XEN_NETIF_EXTRA_TYPE_GSO;
        gso.flags = NetifExtraFlags::MORE.bits();
        gso.size = 1448;
        gso.gso_type = XEN_NETIF_GSO_TYPE_TCPV4;
        let header = NetifExtraInfo::read_from_bytes(gso.as_bytes()).unwrap();
        assert_eq!(header.extra_type, XEN_NETIF_EXTRA_TYPE_GSO);
        assert_eq!(header.pad[0], 1448);
        // An extra-info slot fits in a transmit request's slot and in a receive response's.
        assert!(size_of::<NetifExtraInfo>() <= size_of::<NetifTxRequest>());
        assert!(size_of::<NetifExtraInfo>() <= size_of::<NetifRxResponse>());
    }

    #[test]
    fn hash_value_is_little_endian() {
        let hash = NetifExtraInfoHash {
            extra_type: XEN_NETIF_EXTRA_TYPE_HASH,
            flags: 0,
            hash_type: 1,
            algorithm: XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ as u8,
            value: [0x78, 0x56, 0x34, 0x12],
        };
        assert_eq!(hash.hash_value(), 0x1234_5678);
        assert_eq!(
            NetifCtrlHashType::from_bits_retain(1 << hash.hash_type),
            NetifCtrlHashType::IPV4_TCP
        );
    }
}
