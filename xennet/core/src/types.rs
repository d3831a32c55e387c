//! The vocabulary shared by the core and the NDIS shell.
//!
//! The shapes follow what NDIS 6 hands a miniport and expects back: a send is a
//! `NET_BUFFER_LIST` whose data is a chain of MDL pieces ([`Fragment`]s) with per-list offload
//! information (`TcpIpChecksumNetBufferListInfo`, `TcpLargeSendNetBufferListInfo`,
//! `Ieee8021QNetBufferListInfo`: [`TxOffload`]); a receive indication carries the data, the
//! checksum results, the RSS hash value and type, the 802.1Q tag and, for coalesced TCP
//! segments, their count ([`RxPacket`]). Counters follow `NDIS_STATISTICS_INFO`.

/// Size of a guest page, the unit of fragments and buffers.
pub const PAGE_SIZE: usize = 4096;

/// An opaque tag the shell attaches to a packet and gets back with its completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(pub u64);

/// One piece of a packet's data: `length` bytes at `offset` within guest frame `frame`.
/// `offset + length` must not exceed [`PAGE_SIZE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Fragment {
    /// Guest frame number of the page.
    pub frame: u64,
    /// Byte offset within the page.
    pub offset: u16,
    /// Byte count within the page.
    pub length: u16,
}

/// An 802.1Q tag (`NDIS_NET_BUFFER_LIST_8021Q_INFO`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VlanTag {
    /// User priority (0..=7).
    pub priority: u8,
    /// VLAN identifier (0..=4095; 0 carries a priority only).
    pub vlan_id: u16,
}

impl VlanTag {
    /// The tag control information as it goes on the wire.
    pub fn tci(&self) -> u16 {
        (u16::from(self.priority & 7) << 13) | (self.vlan_id & 0x0fff)
    }

    /// From the wire's tag control information (the CFI/DEI bit is dropped).
    pub fn from_tci(tci: u16) -> Self {
        VlanTag {
            priority: (tci >> 13) as u8,
            vlan_id: tci & 0x0fff,
        }
    }
}

/// Which checksums the sender wants computed (`NDIS_TCP_IP_CHECKSUM_NET_BUFFER_LIST_INFO`,
/// transmit half). The core finds the headers itself; a request the packet's headers do not
/// match (TCP asked for a UDP packet, IPv4 header checksum for IPv6) is refused as invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TxChecksum {
    /// Compute the IPv4 header checksum.
    pub ipv4_header: bool,
    /// Compute the TCP checksum.
    pub tcp: bool,
    /// Compute the UDP checksum.
    pub udp: bool,
}

/// What the sender asks the NIC to do with a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TxOffload {
    /// Checksums to compute.
    pub checksum: TxChecksum,
    /// Large send: cut the TCP payload into segments of at most this many bytes
    /// (`TcpLargeSendNetBufferListInfo.LsoV2Transmit.MSS`); every segment gets correct IP and TCP
    /// checksums. `None`: an ordinary packet.
    pub lso_mss: Option<u16>,
    /// Insert this 802.1Q tag.
    pub vlan: Option<VlanTag>,
}

/// A packet to send. The fragment list is borrowed for the call only (the core copies it); the
/// memory it describes belongs to the core until the completion with the same tag.
#[derive(Clone, Copy, Debug)]
pub struct TxPacket<'a> {
    /// Returned with the completion.
    pub tag: Tag,
    /// The frame, in order.
    pub fragments: &'a [Fragment],
    /// The offloads asked for.
    pub offload: TxOffload,
}

/// How a send ended (mapped by the shell onto an NDIS status).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxStatus {
    /// The backend took the packet (every segment).
    Ok,
    /// The backend dropped it (`NETIF_RSP_DROPPED`), for at least one segment.
    Dropped,
    /// The backend failed it (`NETIF_RSP_ERROR`), for at least one segment.
    Error,
    /// The connection went away with the packet on the ring; it may or may not have been sent.
    Aborted,
}

/// A finished send: the fragments' memory is the shell's again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxCompletion {
    /// The packet's tag.
    pub tag: Tag,
    /// How it ended.
    pub status: TxStatus,
    /// For a large send, the TCP payload bytes it carried (what an LSOv1 completion reports in
    /// `LsoV1TransmitComplete.TcpPayload`); 0 otherwise.
    pub lso_payload: u32,
}

/// Why a packet cannot be sent at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidPacket {
    /// No fragments, or more than [`MAX_TX_FRAGMENTS`].
    FragmentCount,
    /// Fragment `index` is empty or runs past the end of its page.
    FragmentOutOfPage {
        /// Index in the list.
        index: usize,
    },
    /// Shorter than an Ethernet header.
    TooShort,
    /// Longer than a netif packet can be (65535 bytes), or than the MTU without large send.
    TooLong,
    /// An offload was asked for but the headers are not Ethernet / (VLAN) / IPv4 or IPv6 / TCP
    /// or UDP, or do not match the request.
    Headers,
    /// A large send with an MSS of 0.
    Mss,
    /// The packet needs more copy pages or ring slots than the queue has in total.
    TooBig,
}

/// Why a packet was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// The bounded transmit queue is full: the shell pauses and retries after a completion.
    Busy,
    /// The packet can never be sent.
    Invalid(InvalidPacket),
    /// The queue is not running (not connected, or failed).
    NotRunning,
}

/// The most fragments one packet may have.
pub const MAX_TX_FRAGMENTS: usize = 32;

/// The most slots one received packet may use (data and extra info), as Linux's netfront
/// accepts (`MAX_SKB_FRAGS + 1` data slots, plus extras).
pub const MAX_RX_SLOTS: usize = 20;

/// One piece of a received packet, in a receive buffer of the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RxFragment {
    /// The buffer's index in the queue's pool (give it back with
    /// [`NetQueue::return_buffers`](crate::NetQueue::return_buffers)).
    pub buffer: u16,
    /// The buffer's guest frame.
    pub frame: u64,
    /// Offset of the data in the page.
    pub offset: u16,
    /// Bytes of data.
    pub length: u16,
}

/// Checksum results for a received packet (`NDIS_TCP_IP_CHECKSUM_NET_BUFFER_LIST_INFO`, receive
/// half). `None`: not checked (the stack checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RxChecksum {
    /// The IPv4 header checksum (always checked by the core for IPv4 packets).
    pub ipv4_header: Option<bool>,
    /// The TCP checksum.
    pub tcp: Option<bool>,
    /// The UDP checksum.
    pub udp: Option<bool>,
}

/// The type of an RSS hash (`NDIS_HASH_*`), as the backend reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RssHashType {
    /// Over the IPv4 addresses.
    Ipv4,
    /// Over the IPv4 addresses and TCP ports.
    TcpIpv4,
    /// Over the IPv6 addresses.
    Ipv6,
    /// Over the IPv6 addresses and TCP ports.
    TcpIpv6,
}

/// The hash the backend computed for a received packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RssHash {
    /// The value.
    pub value: u32,
    /// What it was computed over.
    pub hash_type: RssHashType,
}

/// The kind of destination address (for the NDIS statistics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cast {
    /// An individual address.
    Unicast,
    /// A group address other than broadcast.
    Multicast,
    /// `ff:ff:ff:ff:ff:ff`.
    Broadcast,
}

impl Cast {
    /// Classifies a destination MAC address.
    pub fn of(dst: &[u8; 6]) -> Cast {
        if *dst == [0xff; 6] {
            Cast::Broadcast
        } else if dst[0] & 1 != 0 {
            Cast::Multicast
        } else {
            Cast::Unicast
        }
    }
}

/// A received packet, valid for the duration of the callback that presents it.
#[derive(Clone, Copy, Debug)]
pub struct RxPacket<'a> {
    /// The queue it arrived on.
    pub queue: u16,
    /// The data, in order, in the core's receive buffers.
    pub fragments: &'a [RxFragment],
    /// Total bytes.
    pub length: u32,
    /// Checksum results.
    pub checksum: RxChecksum,
    /// The backend's hash, when it sent one.
    pub hash: Option<RssHash>,
    /// The backend coalesced this many TCP segments into the packet (the receive-segment-
    /// coalescing count, `NDIS_RSC_NBL_INFO.CoalescedSegCount`); 0 for an ordinary packet.
    pub coalesced_segments: u16,
    /// The MSS of a coalesced packet (0 otherwise).
    pub mss: u16,
    /// The 802.1Q tag, when the core removed it from the frame.
    pub vlan: Option<VlanTag>,
    /// The destination's kind.
    pub cast: Cast,
    /// Few buffers are left posted: the shell should copy the data and answer
    /// [`RxVerdict::Done`] (NDIS's `NDIS_RECEIVE_FLAGS_RESOURCES`).
    pub low_resources: bool,
}

/// What the shell does with a presented packet's buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxVerdict {
    /// The shell keeps them and gives them back later with
    /// [`NetQueue::return_buffers`](crate::NetQueue::return_buffers).
    Keep,
    /// The shell is done with them (it copied the data); the core reuses them at once.
    Done,
}

/// Per-direction counters, as `NDIS_STATISTICS_INFO` wants them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirectionCounters {
    /// Unicast packets (`ifHCInUcastPkts` / `ifHCOutUcastPkts`).
    pub unicast_packets: u64,
    /// Their bytes.
    pub unicast_bytes: u64,
    /// Multicast packets.
    pub multicast_packets: u64,
    /// Their bytes.
    pub multicast_bytes: u64,
    /// Broadcast packets.
    pub broadcast_packets: u64,
    /// Their bytes.
    pub broadcast_bytes: u64,
    /// Packets that failed (`ifInErrors` / `ifOutErrors`): a backend error status, or a
    /// malformed response.
    pub errors: u64,
    /// Packets dropped (`ifInDiscards` / `ifOutDiscards`): by the backend, for lack of
    /// resources, or aborted by a disconnect.
    pub discards: u64,
}

impl DirectionCounters {
    /// All zero.
    pub const ZERO: DirectionCounters = DirectionCounters {
        unicast_packets: 0,
        unicast_bytes: 0,
        multicast_packets: 0,
        multicast_bytes: 0,
        broadcast_packets: 0,
        broadcast_bytes: 0,
        errors: 0,
        discards: 0,
    };

    pub(crate) fn count(&mut self, cast: Cast, bytes: u64) {
        let (p, b) = match cast {
            Cast::Unicast => (&mut self.unicast_packets, &mut self.unicast_bytes),
            Cast::Multicast => (&mut self.multicast_packets, &mut self.multicast_bytes),
            Cast::Broadcast => (&mut self.broadcast_packets, &mut self.broadcast_bytes),
        };
        *p += 1;
        *b += bytes;
    }

    /// Packets counted as sent or received.
    pub fn packets(&self) -> u64 {
        self.unicast_packets + self.multicast_packets + self.broadcast_packets
    }

    /// Bytes counted as sent or received.
    pub fn bytes(&self) -> u64 {
        self.unicast_bytes + self.multicast_bytes + self.broadcast_bytes
    }

    /// Adds `other` in.
    pub fn add(&mut self, other: &DirectionCounters) {
        self.unicast_packets += other.unicast_packets;
        self.unicast_bytes += other.unicast_bytes;
        self.multicast_packets += other.multicast_packets;
        self.multicast_bytes += other.multicast_bytes;
        self.broadcast_packets += other.broadcast_packets;
        self.broadcast_bytes += other.broadcast_bytes;
        self.errors += other.errors;
        self.discards += other.discards;
    }
}

/// One queue's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueCounters {
    /// Sent packets (as the shell gave them: a large send counts once, with its bytes).
    pub tx: DirectionCounters,
    /// Received packets (a coalesced packet counts once).
    pub rx: DirectionCounters,
    /// Packets sent with their fragments granted as they are (no copy).
    pub tx_copy_free: u64,
    /// Packets whose headers were copied (to insert a tag or fill a checksum field); the payload
    /// was granted as it is.
    pub tx_header_copied: u64,
    /// Packets copied whole into copy pages (too many fragments, or software segmentation).
    pub tx_copied: u64,
    /// Bytes copied for the two above.
    pub tx_copied_bytes: u64,
    /// Checksums computed in software because the backend lacks the offload.
    pub tx_software_checksums: u64,
    /// Large sends segmented in software because the backend lacks GSO.
    pub tx_software_segmented: u64,
    /// Segments those produced.
    pub tx_software_segments: u64,
    /// Large sends handed to the backend as GSO.
    pub tx_gso: u64,
    /// Packets sent with the checksum left to the backend (`NETTXF_csum_blank`).
    pub tx_checksum_offloaded: u64,
    /// Sends refused with [`SubmitError::Busy`].
    pub tx_busy: u64,
    /// Received packets whose blank checksum field the core filled in.
    pub rx_checksum_filled: u64,
    /// Received packets that were coalesced segments (GSO).
    pub rx_coalesced: u64,
    /// Responses dropped as invalid (both rings).
    pub bad_responses: u64,
    /// Grants the backend still had mapped when they should have been free; their pages are
    /// kept out of use.
    pub still_mapped: u64,
    /// Times the grant table was out of references (the work waited).
    pub grant_shortages: u64,
}

impl QueueCounters {
    /// All zero.
    pub const ZERO: QueueCounters = QueueCounters {
        tx: DirectionCounters::ZERO,
        rx: DirectionCounters::ZERO,
        tx_copy_free: 0,
        tx_header_copied: 0,
        tx_copied: 0,
        tx_copied_bytes: 0,
        tx_software_checksums: 0,
        tx_software_segmented: 0,
        tx_software_segments: 0,
        tx_gso: 0,
        tx_checksum_offloaded: 0,
        tx_busy: 0,
        rx_checksum_filled: 0,
        rx_coalesced: 0,
        bad_responses: 0,
        still_mapped: 0,
        grant_shortages: 0,
    };

    /// Adds `other` in (for device-wide totals).
    pub fn add(&mut self, o: &QueueCounters) {
        self.tx.add(&o.tx);
        self.rx.add(&o.rx);
        self.tx_copy_free += o.tx_copy_free;
        self.tx_header_copied += o.tx_header_copied;
        self.tx_copied += o.tx_copied;
        self.tx_copied_bytes += o.tx_copied_bytes;
        self.tx_software_checksums += o.tx_software_checksums;
        self.tx_software_segmented += o.tx_software_segmented;
        self.tx_software_segments += o.tx_software_segments;
        self.tx_gso += o.tx_gso;
        self.tx_checksum_offloaded += o.tx_checksum_offloaded;
        self.tx_busy += o.tx_busy;
        self.rx_checksum_filled += o.rx_checksum_filled;
        self.rx_coalesced += o.rx_coalesced;
        self.bad_responses += o.bad_responses;
        self.still_mapped += o.still_mapped;
        self.grant_shortages += o.grant_shortages;
    }
}

/// A MAC address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MacAddress(pub [u8; 6]);

/// The link as NDIS reports it (`NDIS_STATUS_LINK_STATE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// The backend is connected.
    Up,
    /// The backend is anything else.
    Down,
}

impl LinkState {
    /// The link state a backend in `state` means.
    pub fn from_backend(state: xen_abi::xenbus::XenbusState) -> LinkState {
        if state == xen_abi::xenbus::XenbusState::Connected {
            LinkState::Up
        } else {
            LinkState::Down
        }
    }
}
