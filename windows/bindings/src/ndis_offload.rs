//! `NDIS_OFFLOAD` through revision 3 (NDIS 6.30: checksum, LSOv1, IPsecV1, LSOv2, IPsecV2, RSC,
//! GRE encapsulated-packet offload) with its parts, and the RSS hash values (`ntddndis.h`).
//!
//! C bit fields are held as one `u32` per group; the `*_bits` helpers place the 2-bit values at
//! the positions the C declaration gives them (bit fields are allocated from the least
//! significant bit by both MSVC and GCC/clang for `ULONG` fields).
// Field and value names are the headers'; Microsoft documents each of them.
#![allow(missing_docs)]

use crate::assert_layout;
use crate::ndis::NDIS_OBJECT_HEADER;

/// `NDIS_OFFLOAD_NOT_SUPPORTED` / `NDIS_OFFLOAD_SUPPORTED` (values of the 2-bit fields).
pub const NDIS_OFFLOAD_NOT_SUPPORTED: u32 = 0;
pub const NDIS_OFFLOAD_SUPPORTED: u32 = 1;
/// `NDIS_ENCAPSULATION_*` bits.
pub const NDIS_ENCAPSULATION_NOT_SUPPORTED: u32 = 0;
pub const NDIS_ENCAPSULATION_NULL: u32 = 0x1;
pub const NDIS_ENCAPSULATION_IEEE_802_3: u32 = 0x2;
pub const NDIS_ENCAPSULATION_IEEE_802_3_P_AND_Q: u32 = 0x4;
pub const NDIS_ENCAPSULATION_IEEE_802_3_P_AND_Q_IN_OOB: u32 = 0x8;

/// One direction of IPv4 checksum offload: `Encapsulation` and the bit fields
/// `IpOptionsSupported:2, TcpOptionsSupported:2, TcpChecksum:2, UdpChecksum:2, IpChecksum:2`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NDIS_CHECKSUM_OFFLOAD_IPV4 {
    pub Encapsulation: u32,
    pub Bits: u32,
}

/// One direction of IPv6 checksum offload: `Encapsulation` and the bit fields
/// `IpExtensionHeadersSupported:2, TcpOptionsSupported:2, TcpChecksum:2, UdpChecksum:2`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NDIS_CHECKSUM_OFFLOAD_IPV6 {
    pub Encapsulation: u32,
    pub Bits: u32,
}

/// The IPv4 bit fields, each `NDIS_OFFLOAD_SUPPORTED` or not.
pub const fn checksum_ipv4_bits(
    ip_options: u32,
    tcp_options: u32,
    tcp: u32,
    udp: u32,
    ip: u32,
) -> u32 {
    (ip_options & 3) | (tcp_options & 3) << 2 | (tcp & 3) << 4 | (udp & 3) << 6 | (ip & 3) << 8
}

/// The IPv6 bit fields, each `NDIS_OFFLOAD_SUPPORTED` or not.
pub const fn checksum_ipv6_bits(ext_headers: u32, tcp_options: u32, tcp: u32, udp: u32) -> u32 {
    (ext_headers & 3) | (tcp_options & 3) << 2 | (tcp & 3) << 4 | (udp & 3) << 6
}

/// `NDIS_TCP_IP_CHECKSUM_OFFLOAD`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NDIS_TCP_IP_CHECKSUM_OFFLOAD {
    pub IPv4Transmit: NDIS_CHECKSUM_OFFLOAD_IPV4,
    pub IPv4Receive: NDIS_CHECKSUM_OFFLOAD_IPV4,
    pub IPv6Transmit: NDIS_CHECKSUM_OFFLOAD_IPV6,
    pub IPv6Receive: NDIS_CHECKSUM_OFFLOAD_IPV6,
}
assert_layout!(NDIS_TCP_IP_CHECKSUM_OFFLOAD, size 32,
    IPv4Transmit @ 0, IPv4Receive @ 8, IPv6Transmit @ 16, IPv6Receive @ 24);

/// `NDIS_TCP_LARGE_SEND_OFFLOAD_V1.IPv4`: bit fields `TcpOptions:2, IpOptions:2`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NDIS_TCP_LARGE_SEND_OFFLOAD_V1 {
    pub Encapsulation: u32,
    pub MaxOffLoadSize: u32,
    pub MinSegmentCount: u32,
    pub Bits: u32,
}
assert_layout!(NDIS_TCP_LARGE_SEND_OFFLOAD_V1, size 16,
    Encapsulation @ 0, MaxOffLoadSize @ 4, MinSegmentCount @ 8, Bits @ 12);

/// `NDIS_IPSEC_OFFLOAD_V1` (not offered; declared for the layout).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NDIS_IPSEC_OFFLOAD_V1 {
    pub Supported: [u32; 5],
    pub IPv4AH: u32,
    pub IPv4ESP: u32,
}
assert_layout!(NDIS_IPSEC_OFFLOAD_V1, size 28, Supported @ 0, IPv4AH @ 20, IPv4ESP @ 24);

/// `NDIS_TCP_LARGE_SEND_OFFLOAD_V2.IPv4`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NDIS_LSOV2_IPV4 {
    pub Encapsulation: u32,
    pub MaxOffLoadSize: u32,
    pub MinSegmentCount: u32,
}

/// `NDIS_TCP_LARGE_SEND_OFFLOAD_V2.IPv6`: bit fields `IpExtensionHeadersSupported:2,
/// TcpOptionsSupported:2`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NDIS_LSOV2_IPV6 {
    pub Encapsulation: u32,
    pub MaxOffLoadSize: u32,
    pub MinSegmentCount: u32,
    pub Bits: u32,
}

/// `NDIS_TCP_LARGE_SEND_OFFLOAD_V2`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NDIS_TCP_LARGE_SEND_OFFLOAD_V2 {
    pub IPv4: NDIS_LSOV2_IPV4,
    pub IPv6: NDIS_LSOV2_IPV6,
}
assert_layout!(NDIS_TCP_LARGE_SEND_OFFLOAD_V2, size 28, IPv4 @ 0, IPv6 @ 12);

/// `NDIS_IPSEC_OFFLOAD_V2` (not offered; declared for the layout).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NDIS_IPSEC_OFFLOAD_V2 {
    pub Encapsulation: u32,
    /// `IPv6Supported` … `ExtendedSequenceNumbers` (11 `BOOLEAN`s).
    pub Booleans: [u8; 11],
    pub UdpEsp: u32,
    pub AuthenticationAlgorithms: u32,
    pub EncryptionAlgorithms: u32,
    pub SaOffloadCapacity: u32,
}
assert_layout!(NDIS_IPSEC_OFFLOAD_V2, size 32, Encapsulation @ 0, Booleans @ 4, UdpEsp @ 16,
    AuthenticationAlgorithms @ 20, EncryptionAlgorithms @ 24, SaOffloadCapacity @ 28);

/// `NDIS_TCP_RECV_SEG_COALESCE_OFFLOAD` (RSC): `IPv4.Enabled`, `IPv6.Enabled`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NDIS_TCP_RECV_SEG_COALESCE_OFFLOAD {
    pub IPv4Enabled: u8,
    pub IPv6Enabled: u8,
}
assert_layout!(NDIS_TCP_RECV_SEG_COALESCE_OFFLOAD, size 2, IPv4Enabled @ 0, IPv6Enabled @ 1);

/// `NDIS_ENCAPSULATED_PACKET_TASK_OFFLOAD` (bit fields of 4 bits each, then
/// `MaxHeaderSizeSupported`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NDIS_ENCAPSULATED_PACKET_TASK_OFFLOAD {
    pub Bits: u32,
    pub MaxHeaderSizeSupported: u32,
}
assert_layout!(NDIS_ENCAPSULATED_PACKET_TASK_OFFLOAD, size 8, Bits @ 0,
    MaxHeaderSizeSupported @ 4);

/// `NDIS_OFFLOAD`, revision 3 (NDIS 6.30).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NDIS_OFFLOAD {
    pub Header: NDIS_OBJECT_HEADER,
    pub Checksum: NDIS_TCP_IP_CHECKSUM_OFFLOAD,
    pub LsoV1: NDIS_TCP_LARGE_SEND_OFFLOAD_V1,
    pub IPsecV1: NDIS_IPSEC_OFFLOAD_V1,
    pub LsoV2: NDIS_TCP_LARGE_SEND_OFFLOAD_V2,
    pub Flags: u32,
    pub IPsecV2: NDIS_IPSEC_OFFLOAD_V2,
    pub Rsc: NDIS_TCP_RECV_SEG_COALESCE_OFFLOAD,
    pub EncapsulatedPacketTaskOffloadGre: NDIS_ENCAPSULATED_PACKET_TASK_OFFLOAD,
}
assert_layout!(NDIS_OFFLOAD, size 0x9c,
    Header @ 0x00, Checksum @ 0x04, LsoV1 @ 0x24, IPsecV1 @ 0x34, LsoV2 @ 0x50, Flags @ 0x6c,
    IPsecV2 @ 0x70, Rsc @ 0x90, EncapsulatedPacketTaskOffloadGre @ 0x94);
pub const NDIS_OFFLOAD_REVISION_3: u8 = 3;
/// Through `EncapsulatedPacketTaskOffloadGre`.
pub const NDIS_SIZEOF_NDIS_OFFLOAD_REVISION_3: usize = 0x9c;

/// RSS hash function and types (`NDIS_HASH_*`, `NetBufferListHashInfo`).
pub const NDIS_HASH_FUNCTION_TOEPLITZ: u32 = 0x0000_0001;
pub const NDIS_HASH_FUNCTION_MASK: u32 = 0x0000_00ff;
pub const NDIS_HASH_TYPE_MASK: u32 = 0x00ff_ff00;
pub const NDIS_HASH_IPV4: u32 = 0x0000_0100;
pub const NDIS_HASH_TCP_IPV4: u32 = 0x0000_0200;
pub const NDIS_HASH_IPV6: u32 = 0x0000_0400;
pub const NDIS_HASH_IPV6_EX: u32 = 0x0000_0800;
pub const NDIS_HASH_TCP_IPV6: u32 = 0x0000_1000;
pub const NDIS_HASH_TCP_IPV6_EX: u32 = 0x0000_2000;
/// RSS capability bits (`NDIS_RSS_CAPS_*`).
pub const NDIS_RSS_CAPS_MESSAGE_SIGNALED_INTERRUPTS: u32 = 0x0100_0000;
pub const NDIS_RSS_CAPS_CLASSIFICATION_AT_ISR: u32 = 0x0200_0000;
pub const NDIS_RSS_CAPS_CLASSIFICATION_AT_DPC: u32 = 0x0400_0000;
pub const NDIS_RSS_CAPS_HASH_TYPE_TCP_IPV4: u32 = 0x0000_0100;
pub const NDIS_RSS_CAPS_HASH_TYPE_TCP_IPV6: u32 = 0x0000_0200;
pub const NDIS_RSS_CAPS_HASH_TYPE_TCP_IPV6_EX: u32 = 0x0000_0400;
/// `NDIS_RSS_PARAM_FLAG_*`.
pub const NDIS_RSS_PARAM_FLAG_BASE_CPU_UNCHANGED: u16 = 0x0001;
pub const NDIS_RSS_PARAM_FLAG_HASH_INFO_UNCHANGED: u16 = 0x0002;
pub const NDIS_RSS_PARAM_FLAG_ITABLE_UNCHANGED: u16 = 0x0004;
pub const NDIS_RSS_PARAM_FLAG_HASH_KEY_UNCHANGED: u16 = 0x0008;
pub const NDIS_RSS_PARAM_FLAG_DISABLE_RSS: u16 = 0x0010;
/// `NDIS_RSS_HASH_SECRET_KEY_MAX_SIZE_REVISION_2`.
pub const NDIS_RSS_HASH_SECRET_KEY_MAX_SIZE_REVISION_2: u16 = 40;

/// `NDIS_RSS_HASH_FUNC_FROM_HASH_INFO`.
pub const fn hash_function(hash_info: u32) -> u32 {
    hash_info & NDIS_HASH_FUNCTION_MASK
}

/// `NDIS_RSS_HASH_TYPE_FROM_HASH_INFO`.
pub const fn hash_type(hash_info: u32) -> u32 {
    hash_info & NDIS_HASH_TYPE_MASK
}
