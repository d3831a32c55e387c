//! Our NDIS declarations against `windows-sys`'s (generated from Microsoft's metadata) wherever
//! `windows-sys` declares the same structure: every field offset, and the size where both
//! declare the same revision. `windows-sys` declares the first revision of
//! `NDIS_RECEIVE_SCALE_CAPABILITIES`, `NDIS_RECEIVE_SCALE_PARAMETERS` and `NDIS_OFFLOAD`; for
//! those the common fields are compared and the size difference is asserted to be exactly the
//! later revisions' fields.

use std::mem::{offset_of, size_of};

use win_bindings::{ndis, ndis_offload as off};
use windows_sys::Wdk::NetworkManagement::Ndis as wdk;
use windows_sys::Win32::NetworkManagement::Ndis as sys;

/// One compared value.
struct Pair {
    what: &'static str,
    ours: usize,
    theirs: usize,
}

macro_rules! field {
    ($ours:ty, $theirs:ty, $field:ident) => {
        Pair {
            what: concat!(stringify!($ours), ".", stringify!($field)),
            ours: offset_of!($ours, $field),
            theirs: offset_of!($theirs, $field),
        }
    };
}

macro_rules! size {
    ($ours:ty, $theirs:ty) => {
        Pair {
            what: concat!("sizeof ", stringify!($ours)),
            ours: size_of::<$ours>(),
            theirs: size_of::<$theirs>(),
        }
    };
}

fn pairs() -> Vec<Pair> {
    vec![
        size!(ndis::NDIS_OBJECT_HEADER, sys::NDIS_OBJECT_HEADER),
        field!(ndis::NDIS_OBJECT_HEADER, sys::NDIS_OBJECT_HEADER, Revision),
        field!(ndis::NDIS_OBJECT_HEADER, sys::NDIS_OBJECT_HEADER, Size),
        size!(ndis::NDIS_STATISTICS_INFO, sys::NDIS_STATISTICS_INFO),
        field!(
            ndis::NDIS_STATISTICS_INFO,
            sys::NDIS_STATISTICS_INFO,
            SupportedStatistics
        ),
        field!(
            ndis::NDIS_STATISTICS_INFO,
            sys::NDIS_STATISTICS_INFO,
            ifInDiscards
        ),
        field!(
            ndis::NDIS_STATISTICS_INFO,
            sys::NDIS_STATISTICS_INFO,
            ifInErrors
        ),
        field!(
            ndis::NDIS_STATISTICS_INFO,
            sys::NDIS_STATISTICS_INFO,
            ifHCInOctets
        ),
        field!(
            ndis::NDIS_STATISTICS_INFO,
            sys::NDIS_STATISTICS_INFO,
            ifHCInUcastPkts
        ),
        field!(
            ndis::NDIS_STATISTICS_INFO,
            sys::NDIS_STATISTICS_INFO,
            ifHCInMulticastPkts
        ),
        field!(
            ndis::NDIS_STATISTICS_INFO,
            sys::NDIS_STATISTICS_INFO,
            ifHCInBroadcastPkts
        ),
        field!(
            ndis::NDIS_STATISTICS_INFO,
            sys::NDIS_STATISTICS_INFO,
            ifHCOutOctets
        ),
        field!(
            ndis::NDIS_STATISTICS_INFO,
            sys::NDIS_STATISTICS_INFO,
            ifHCOutUcastPkts
        ),
        field!(
            ndis::NDIS_STATISTICS_INFO,
            sys::NDIS_STATISTICS_INFO,
            ifHCOutMulticastPkts
        ),
        field!(
            ndis::NDIS_STATISTICS_INFO,
            sys::NDIS_STATISTICS_INFO,
            ifHCOutBroadcastPkts
        ),
        field!(
            ndis::NDIS_STATISTICS_INFO,
            sys::NDIS_STATISTICS_INFO,
            ifOutErrors
        ),
        field!(
            ndis::NDIS_STATISTICS_INFO,
            sys::NDIS_STATISTICS_INFO,
            ifOutDiscards
        ),
        field!(
            ndis::NDIS_STATISTICS_INFO,
            sys::NDIS_STATISTICS_INFO,
            ifHCInUcastOctets
        ),
        field!(
            ndis::NDIS_STATISTICS_INFO,
            sys::NDIS_STATISTICS_INFO,
            ifHCInMulticastOctets
        ),
        field!(
            ndis::NDIS_STATISTICS_INFO,
            sys::NDIS_STATISTICS_INFO,
            ifHCInBroadcastOctets
        ),
        field!(
            ndis::NDIS_STATISTICS_INFO,
            sys::NDIS_STATISTICS_INFO,
            ifHCOutUcastOctets
        ),
        field!(
            ndis::NDIS_STATISTICS_INFO,
            sys::NDIS_STATISTICS_INFO,
            ifHCOutMulticastOctets
        ),
        field!(
            ndis::NDIS_STATISTICS_INFO,
            sys::NDIS_STATISTICS_INFO,
            ifHCOutBroadcastOctets
        ),
        size!(ndis::NDIS_LINK_STATE, sys::NDIS_LINK_STATE),
        field!(
            ndis::NDIS_LINK_STATE,
            sys::NDIS_LINK_STATE,
            MediaConnectState
        ),
        field!(
            ndis::NDIS_LINK_STATE,
            sys::NDIS_LINK_STATE,
            MediaDuplexState
        ),
        field!(ndis::NDIS_LINK_STATE, sys::NDIS_LINK_STATE, XmitLinkSpeed),
        field!(ndis::NDIS_LINK_STATE, sys::NDIS_LINK_STATE, RcvLinkSpeed),
        field!(ndis::NDIS_LINK_STATE, sys::NDIS_LINK_STATE, PauseFunctions),
        field!(
            ndis::NDIS_LINK_STATE,
            sys::NDIS_LINK_STATE,
            AutoNegotiationFlags
        ),
        field!(
            ndis::NDIS_RECEIVE_SCALE_CAPABILITIES,
            sys::NDIS_RECEIVE_SCALE_CAPABILITIES,
            CapabilitiesFlags
        ),
        field!(
            ndis::NDIS_RECEIVE_SCALE_CAPABILITIES,
            sys::NDIS_RECEIVE_SCALE_CAPABILITIES,
            NumberOfInterruptMessages
        ),
        field!(
            ndis::NDIS_RECEIVE_SCALE_CAPABILITIES,
            sys::NDIS_RECEIVE_SCALE_CAPABILITIES,
            NumberOfReceiveQueues
        ),
        field!(
            ndis::NDIS_RECEIVE_SCALE_PARAMETERS,
            sys::NDIS_RECEIVE_SCALE_PARAMETERS,
            Flags
        ),
        field!(
            ndis::NDIS_RECEIVE_SCALE_PARAMETERS,
            sys::NDIS_RECEIVE_SCALE_PARAMETERS,
            BaseCpuNumber
        ),
        field!(
            ndis::NDIS_RECEIVE_SCALE_PARAMETERS,
            sys::NDIS_RECEIVE_SCALE_PARAMETERS,
            HashInformation
        ),
        field!(
            ndis::NDIS_RECEIVE_SCALE_PARAMETERS,
            sys::NDIS_RECEIVE_SCALE_PARAMETERS,
            IndirectionTableSize
        ),
        field!(
            ndis::NDIS_RECEIVE_SCALE_PARAMETERS,
            sys::NDIS_RECEIVE_SCALE_PARAMETERS,
            IndirectionTableOffset
        ),
        field!(
            ndis::NDIS_RECEIVE_SCALE_PARAMETERS,
            sys::NDIS_RECEIVE_SCALE_PARAMETERS,
            HashSecretKeySize
        ),
        field!(
            ndis::NDIS_RECEIVE_SCALE_PARAMETERS,
            sys::NDIS_RECEIVE_SCALE_PARAMETERS,
            HashSecretKeyOffset
        ),
        size!(
            off::NDIS_TCP_IP_CHECKSUM_OFFLOAD,
            sys::NDIS_TCP_IP_CHECKSUM_OFFLOAD
        ),
        field!(
            off::NDIS_TCP_IP_CHECKSUM_OFFLOAD,
            sys::NDIS_TCP_IP_CHECKSUM_OFFLOAD,
            IPv4Receive
        ),
        field!(
            off::NDIS_TCP_IP_CHECKSUM_OFFLOAD,
            sys::NDIS_TCP_IP_CHECKSUM_OFFLOAD,
            IPv6Transmit
        ),
        field!(
            off::NDIS_TCP_IP_CHECKSUM_OFFLOAD,
            sys::NDIS_TCP_IP_CHECKSUM_OFFLOAD,
            IPv6Receive
        ),
        size!(
            off::NDIS_TCP_LARGE_SEND_OFFLOAD_V1,
            sys::NDIS_TCP_LARGE_SEND_OFFLOAD_V1
        ),
        size!(off::NDIS_IPSEC_OFFLOAD_V1, sys::NDIS_IPSEC_OFFLOAD_V1),
        size!(
            off::NDIS_TCP_LARGE_SEND_OFFLOAD_V2,
            sys::NDIS_TCP_LARGE_SEND_OFFLOAD_V2
        ),
        field!(
            off::NDIS_TCP_LARGE_SEND_OFFLOAD_V2,
            sys::NDIS_TCP_LARGE_SEND_OFFLOAD_V2,
            IPv6
        ),
        field!(off::NDIS_OFFLOAD, sys::NDIS_OFFLOAD, Checksum),
        field!(off::NDIS_OFFLOAD, sys::NDIS_OFFLOAD, LsoV1),
        field!(off::NDIS_OFFLOAD, sys::NDIS_OFFLOAD, IPsecV1),
        field!(off::NDIS_OFFLOAD, sys::NDIS_OFFLOAD, LsoV2),
        field!(off::NDIS_OFFLOAD, sys::NDIS_OFFLOAD, Flags),
        size!(
            ndis::NDIS_CONFIGURATION_PARAMETER,
            wdk::NDIS_CONFIGURATION_PARAMETER
        ),
        field!(
            ndis::NDIS_CONFIGURATION_PARAMETER,
            wdk::NDIS_CONFIGURATION_PARAMETER,
            ParameterData
        ),
    ]
}

/// The pairs whose values differ.
fn mismatches(pairs: &[Pair]) -> Vec<String> {
    pairs
        .iter()
        .filter(|p| p.ours != p.theirs)
        .map(|p| format!("{}: ours {} windows-sys {}", p.what, p.ours, p.theirs))
        .collect()
}

#[test]
fn ndis_structures_agree_with_windows_sys() {
    let pairs = pairs();
    assert!(pairs.len() >= 50);
    let bad = mismatches(&pairs);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn later_revisions_only_append_to_windows_sys_revision_1() {
    // RSS capabilities revision 2 appends NumberOfIndirectionTableEntries (USHORT, padded).
    assert_eq!(
        ndis::NDIS_SIZEOF_RECEIVE_SCALE_CAPABILITIES_REVISION_2,
        size_of::<sys::NDIS_RECEIVE_SCALE_CAPABILITIES>() + 2
    );
    // RSS parameters revision 2 appends three ULONGs after HashSecretKeyOffset.
    assert_eq!(
        offset_of!(ndis::NDIS_RECEIVE_SCALE_PARAMETERS, ProcessorMasksOffset),
        size_of::<sys::NDIS_RECEIVE_SCALE_PARAMETERS>()
    );
    // NDIS_OFFLOAD revisions 2 and 3 append IPsecV2, Rsc and the GRE offload after Flags.
    assert_eq!(
        offset_of!(off::NDIS_OFFLOAD, IPsecV2),
        size_of::<sys::NDIS_OFFLOAD>()
    );
}

#[test]
fn a_wrong_offset_is_reported() {
    let mut pairs = pairs();
    pairs[4].ours += 8;
    let bad = mismatches(&pairs);
    assert_eq!(bad.len(), 1);
    assert!(bad[0].starts_with("ndis::NDIS_STATISTICS_INFO.SupportedStatistics"));
}
