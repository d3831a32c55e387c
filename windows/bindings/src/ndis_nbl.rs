//! `NET_BUFFER_LIST`, `NET_BUFFER`, `NET_BUFFER_DATA`, the `NET_BUFFER_LIST_INFO` indices, and
//! typed accessors for the per-NBL information a miniport reads and writes (checksum, LSO, RSS
//! hash, 802.1Q, RSC).
//!
//! NDIS allocates every NBL and NB (`NdisAllocateNetBufferList` and friends); a miniport only
//! reads and writes them through pointers, so `NET_BUFFER_LIST` is declared with the NDIS 6.30
//! x64 count of information slots (24): later NDIS versions append slots, which only lengthens
//! the allocation.
// Field and value names are the headers'; Microsoft documents each of them.
#![allow(missing_docs)]

use core::ffi::c_void;

use crate::assert_layout;
pub use windows_sys::Wdk::Foundation::MDL;

/// `NET_BUFFER_DATA` (also the first 0x30 bytes of `NET_BUFFER`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NET_BUFFER_DATA {
    pub Next: *mut NET_BUFFER,
    pub CurrentMdl: *mut MDL,
    pub CurrentMdlOffset: u32,
    /// Union of `ULONG DataLength` and `SIZE_T stDataLength`; the low 32 bits are `DataLength`.
    pub DataLength: usize,
    pub MdlChain: *mut MDL,
    pub DataOffset: u32,
}
assert_layout!(NET_BUFFER_DATA, size 0x30, Next @ 0x00, CurrentMdl @ 0x08,
    CurrentMdlOffset @ 0x10, DataLength @ 0x18, MdlChain @ 0x20, DataOffset @ 0x28);

/// `NET_BUFFER` (16-byte aligned: its head is a union with an `SLIST_HEADER`).
#[repr(C, align(16))]
#[derive(Debug, Clone, Copy)]
pub struct NET_BUFFER {
    pub Data: NET_BUFFER_DATA,
    pub ChecksumBias: u16,
    pub Reserved: u16,
    pub NdisPoolHandle: *mut c_void,
    pub NdisReserved: [*mut c_void; 2],
    pub ProtocolReserved: [*mut c_void; 6],
    pub MiniportReserved: [*mut c_void; 4],
    pub DataPhysicalAddress: i64,
    /// Union of `SharedMemoryInfo` and `ScatterGatherList`.
    pub SharedMemoryInfo: *mut c_void,
}
assert_layout!(NET_BUFFER, size 0xb0, Data @ 0x00, ChecksumBias @ 0x30, Reserved @ 0x32,
    NdisPoolHandle @ 0x38, NdisReserved @ 0x40, ProtocolReserved @ 0x50,
    MiniportReserved @ 0x80, DataPhysicalAddress @ 0xa0, SharedMemoryInfo @ 0xa8);

/// `NDIS_NET_BUFFER_LIST_INFO` indices into `NetBufferListInfo` (x64, NDIS 6.30).
pub mod info {
    pub const TcpIpChecksumNetBufferListInfo: usize = 0;
    pub const IPsecOffloadV1NetBufferListInfo: usize = 1;
    pub const TcpLargeSendNetBufferListInfo: usize = 2;
    pub const TcpReceiveNoPush: usize = 2;
    pub const ClassificationHandleNetBufferListInfo: usize = 3;
    pub const Ieee8021QNetBufferListInfo: usize = 4;
    pub const NetBufferListCancelId: usize = 5;
    pub const MediaSpecificInformation: usize = 6;
    pub const NetBufferListFrameType: usize = 7;
    pub const NetBufferListHashValue: usize = 8;
    pub const NetBufferListHashInfo: usize = 9;
    pub const WfpNetBufferListInfo: usize = 10;
    pub const IPsecOffloadV2TunnelNetBufferListInfo: usize = 11;
    pub const IPsecOffloadV2HeaderNetBufferListInfo: usize = 12;
    pub const NetBufferListCorrelationId: usize = 13;
    pub const NetBufferListFilteringInfo: usize = 14;
    pub const MediaSpecificInformationEx: usize = 15;
    pub const NblOriginalInterfaceIfIndex: usize = 16;
    pub const TcpReceiveBytesTransferred: usize = 17;
    pub const SwitchForwardingReserved: usize = 18;
    pub const SwitchForwardingDetail: usize = 19;
    pub const VirtualSubnetInfo: usize = 20;
    pub const IMReserved: usize = 21;
    pub const TcpRecvSegCoalesceInfo: usize = 22;
    pub const RscTcpTimestampDelta: usize = 23;
    /// `MaxNetBufferListInfo` for NDIS 6.30 on x64.
    pub const MaxNetBufferListInfo: usize = 24;
}

/// `NET_BUFFER_LIST` (16-byte aligned).
#[repr(C, align(16))]
#[derive(Debug, Clone, Copy)]
pub struct NET_BUFFER_LIST {
    pub Next: *mut NET_BUFFER_LIST,
    pub FirstNetBuffer: *mut NET_BUFFER,
    pub Context: *mut c_void,
    pub ParentNetBufferList: *mut NET_BUFFER_LIST,
    pub NdisPoolHandle: *mut c_void,
    /// Padding: `NdisReserved` is declared `DECLSPEC_ALIGN(16)`.
    pub AlignmentPadding: usize,
    pub NdisReserved: [*mut c_void; 2],
    pub ProtocolReserved: [*mut c_void; 4],
    pub MiniportReserved: [*mut c_void; 2],
    pub Scratch: *mut c_void,
    pub SourceHandle: *mut c_void,
    pub NblFlags: u32,
    pub ChildRefCount: i32,
    pub Flags: u32,
    /// Union of `NDIS_STATUS Status` and `ULONG NdisReserved2`.
    pub Status: i32,
    pub NetBufferListInfo: [*mut c_void; info::MaxNetBufferListInfo],
}
assert_layout!(NET_BUFFER_LIST, size 0x150, Next @ 0x00, FirstNetBuffer @ 0x08,
    Context @ 0x10, ParentNetBufferList @ 0x18, NdisPoolHandle @ 0x20, NdisReserved @ 0x30,
    ProtocolReserved @ 0x40, MiniportReserved @ 0x60, Scratch @ 0x70, SourceHandle @ 0x78,
    NblFlags @ 0x80, ChildRefCount @ 0x84, Flags @ 0x88, Status @ 0x8c,
    NetBufferListInfo @ 0x90);

impl NET_BUFFER_LIST {
    /// `NET_BUFFER_LIST_INFO(nbl, id)` as the pointer-sized value.
    pub fn info(&self, id: usize) -> usize {
        self.NetBufferListInfo.get(id).map_or(0, |p| *p as usize)
    }

    /// Sets `NET_BUFFER_LIST_INFO(nbl, id)`; an index outside the table is ignored.
    pub fn set_info(&mut self, id: usize, value: usize) {
        if let Some(slot) = self.NetBufferListInfo.get_mut(id) {
            *slot = value as *mut c_void;
        }
    }
}

/// `NDIS_TCP_IP_CHECKSUM_NET_BUFFER_LIST_INFO.Transmit` (what the stack asks on send):
/// `IsIPv4:1, IsIPv6:1, TcpChecksum:1, UdpChecksum:1, IpHeaderChecksum:1, Reserved:11,
/// TcpHeaderOffset:10`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChecksumTransmitInfo(pub usize);

impl ChecksumTransmitInfo {
    pub const fn is_ipv4(self) -> bool {
        self.0 & 1 != 0
    }
    pub const fn is_ipv6(self) -> bool {
        self.0 & 2 != 0
    }
    pub const fn tcp_checksum(self) -> bool {
        self.0 & 4 != 0
    }
    pub const fn udp_checksum(self) -> bool {
        self.0 & 8 != 0
    }
    pub const fn ip_header_checksum(self) -> bool {
        self.0 & 0x10 != 0
    }
    pub const fn tcp_header_offset(self) -> u32 {
        ((self.0 >> 16) & 0x3ff) as u32
    }
}

/// `NDIS_TCP_IP_CHECKSUM_NET_BUFFER_LIST_INFO.Receive` (what the miniport reports on receive):
/// `TcpChecksumFailed:1, UdpChecksumFailed:1, IpChecksumFailed:1, TcpChecksumSucceeded:1,
/// UdpChecksumSucceeded:1, IpChecksumSucceeded:1, Loopback:1, TcpChecksumValueInvalid:1,
/// IpChecksumValueInvalid:1`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChecksumReceiveInfo(pub usize);

impl ChecksumReceiveInfo {
    pub const TCP_CHECKSUM_FAILED: usize = 1 << 0;
    pub const UDP_CHECKSUM_FAILED: usize = 1 << 1;
    pub const IP_CHECKSUM_FAILED: usize = 1 << 2;
    pub const TCP_CHECKSUM_SUCCEEDED: usize = 1 << 3;
    pub const UDP_CHECKSUM_SUCCEEDED: usize = 1 << 4;
    pub const IP_CHECKSUM_SUCCEEDED: usize = 1 << 5;
    pub const LOOPBACK: usize = 1 << 6;
}

/// `NDIS_TCP_LARGE_SEND_OFFLOAD_NET_BUFFER_LIST_INFO`: on send, `LsoV1Transmit`/`LsoV2Transmit`
/// = `MSS:20, TcpHeaderOffset:10, Type:1, (Reserved2 | IPVersion):1`; on completion the
/// miniport writes `LsoV1TransmitComplete.TcpPayload:30` or leaves `LsoV2TransmitComplete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LsoInfo(pub usize);

/// `NDIS_TCP_LARGE_SEND_OFFLOAD_V1_TYPE` / `V2_TYPE`.
pub const NDIS_TCP_LARGE_SEND_OFFLOAD_V1_TYPE: u32 = 0;
pub const NDIS_TCP_LARGE_SEND_OFFLOAD_V2_TYPE: u32 = 1;
/// `NDIS_TCP_LARGE_SEND_OFFLOAD_IPv4` / `IPv6` (`LsoV2Transmit.IPVersion`).
pub const NDIS_TCP_LARGE_SEND_OFFLOAD_IPv4: u32 = 0;
pub const NDIS_TCP_LARGE_SEND_OFFLOAD_IPv6: u32 = 1;

impl LsoInfo {
    pub const fn mss(self) -> u32 {
        (self.0 & 0xf_ffff) as u32
    }
    pub const fn tcp_header_offset(self) -> u32 {
        ((self.0 >> 20) & 0x3ff) as u32
    }
    /// `NDIS_TCP_LARGE_SEND_OFFLOAD_V1_TYPE` or `V2_TYPE`.
    pub const fn lso_type(self) -> u32 {
        ((self.0 >> 30) & 1) as u32
    }
    /// `LsoV2Transmit.IPVersion`.
    pub const fn ip_version(self) -> u32 {
        ((self.0 >> 31) & 1) as u32
    }
    /// `LsoV1TransmitComplete` with `TcpPayload` bytes sent (type V1).
    pub const fn v1_complete(tcp_payload: u32) -> Self {
        LsoInfo((tcp_payload & 0x3fff_ffff) as usize)
    }
    /// `LsoV2TransmitComplete` (type V2, no payload count).
    pub const fn v2_complete() -> Self {
        LsoInfo(1 << 30)
    }
}

/// `NDIS_NET_BUFFER_LIST_8021Q_INFO.TagHeader`: `UserPriority:3, CanonicalFormatId:1,
/// VlanId:12`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ieee8021QInfo(pub usize);

impl Ieee8021QInfo {
    pub const fn new(user_priority: u8, vlan_id: u16) -> Self {
        Ieee8021QInfo(((user_priority as usize) & 7) | ((vlan_id as usize & 0xfff) << 4))
    }
    pub const fn user_priority(self) -> u8 {
        (self.0 & 7) as u8
    }
    pub const fn vlan_id(self) -> u16 {
        ((self.0 >> 4) & 0xfff) as u16
    }
}

/// `NDIS_RSC_NBL_INFO.Info`: `USHORT CoalescedSegCount` then `USHORT DupAckCount`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RscInfo(pub usize);

impl RscInfo {
    pub const fn new(coalesced_segments: u16, dup_acks: u16) -> Self {
        RscInfo(coalesced_segments as usize | (dup_acks as usize) << 16)
    }
    pub const fn coalesced_segments(self) -> u16 {
        self.0 as u16
    }
    pub const fn dup_acks(self) -> u16 {
        (self.0 >> 16) as u16
    }
}

/// `NDIS_RECEIVE_FLAGS_*` for `NdisMIndicateReceiveNetBufferLists`.
pub const NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL: u32 = 0x0000_0001;
pub const NDIS_RECEIVE_FLAGS_RESOURCES: u32 = 0x0000_0002;
/// `NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL`.
pub const NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL: u32 = 0x0000_0001;
/// `NDIS_SEND_FLAGS_DISPATCH_LEVEL` (in the send handler's flags).
pub const NDIS_SEND_FLAGS_DISPATCH_LEVEL: u32 = 0x0000_0001;
/// `NDIS_RETURN_FLAGS_DISPATCH_LEVEL`.
pub const NDIS_RETURN_FLAGS_DISPATCH_LEVEL: u32 = 0x0000_0001;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_transmit_bits_are_read_where_the_c_bit_fields_are() {
        // IsIPv4 | TcpChecksum | TcpHeaderOffset = 34 (Ethernet 14 + IPv4 20).
        let info = ChecksumTransmitInfo(1 | 4 | (34 << 16));
        assert!(info.is_ipv4() && !info.is_ipv6());
        assert!(info.tcp_checksum() && !info.udp_checksum() && !info.ip_header_checksum());
        assert_eq!(info.tcp_header_offset(), 34);
        let v6 = ChecksumTransmitInfo(2 | 8 | 0x10);
        assert!(v6.is_ipv6() && v6.udp_checksum() && v6.ip_header_checksum());
    }

    #[test]
    fn lso_v2_fields_and_completions() {
        // MSS 1460, header offset 54, type V2, IPv6.
        let info = LsoInfo(1460 | (54 << 20) | (1 << 30) | (1 << 31));
        assert_eq!(info.mss(), 1460);
        assert_eq!(info.tcp_header_offset(), 54);
        assert_eq!(info.lso_type(), NDIS_TCP_LARGE_SEND_OFFLOAD_V2_TYPE);
        assert_eq!(info.ip_version(), NDIS_TCP_LARGE_SEND_OFFLOAD_IPv6);
        assert_eq!(LsoInfo::v2_complete().lso_type(), 1);
        let v1 = LsoInfo::v1_complete(0xffff_ffff);
        assert_eq!(v1.0, 0x3fff_ffff, "TcpPayload is 30 bits; Type stays V1");
        assert_eq!(v1.lso_type(), NDIS_TCP_LARGE_SEND_OFFLOAD_V1_TYPE);
    }

    #[test]
    fn vlan_and_rsc_info_round_trip() {
        let tag = Ieee8021QInfo::new(5, 0x123);
        assert_eq!((tag.user_priority(), tag.vlan_id()), (5, 0x123));
        assert_eq!(
            Ieee8021QInfo::new(9, 0xffff).0,
            1 | (0xfff << 4),
            "fields are masked"
        );
        let rsc = RscInfo::new(7, 2);
        assert_eq!((rsc.coalesced_segments(), rsc.dup_acks()), (7, 2));
    }

    #[test]
    fn info_slots_outside_the_table_are_ignored() {
        let mut nbl = NET_BUFFER_LIST {
            Next: core::ptr::null_mut(),
            FirstNetBuffer: core::ptr::null_mut(),
            Context: core::ptr::null_mut(),
            ParentNetBufferList: core::ptr::null_mut(),
            NdisPoolHandle: core::ptr::null_mut(),
            AlignmentPadding: 0,
            NdisReserved: [core::ptr::null_mut(); 2],
            ProtocolReserved: [core::ptr::null_mut(); 4],
            MiniportReserved: [core::ptr::null_mut(); 2],
            Scratch: core::ptr::null_mut(),
            SourceHandle: core::ptr::null_mut(),
            NblFlags: 0,
            ChildRefCount: 0,
            Flags: 0,
            Status: 0,
            NetBufferListInfo: [core::ptr::null_mut(); info::MaxNetBufferListInfo],
        };
        nbl.set_info(info::NetBufferListHashValue, 0xdead_beef);
        nbl.set_info(info::MaxNetBufferListInfo, 1);
        assert_eq!(nbl.info(info::NetBufferListHashValue), 0xdead_beef);
        assert_eq!(nbl.info(info::MaxNetBufferListInfo), 0);
        // The slot is the pointer-sized entry at 0x90 + 8 * index.
        let base = &nbl as *const NET_BUFFER_LIST as usize;
        let slot = &nbl.NetBufferListInfo[info::NetBufferListHashValue] as *const _ as usize;
        assert_eq!(slot - base, 0x90 + 8 * 8);
    }
}
