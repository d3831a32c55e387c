//! The network-device rings (`io/netif.h`): transmit, receive, extra info and control.

use crate::harness::Catalogue;
use crate::padding;
use xen_abi::netif::{
    self, NetRxFlags, NetTxFlags, NetifCtrlHashType, NetifExtraFlags, XenNetifGrefFlags,
};
use xen_abi::netif::{
    NETIF_RSP_DROPPED, NETIF_RSP_ERROR, NETIF_RSP_NULL, NETIF_RSP_OKAY, NETIF_RX_RING_SLOTS,
    NETIF_TX_RING_SLOTS, XEN_NETIF_CTRL_HASH_ALGORITHM_NONE,
    XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ, XEN_NETIF_CTRL_RING_SLOTS,
    XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW, XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER,
    XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED, XEN_NETIF_CTRL_STATUS_SUCCESS,
    XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING, XEN_NETIF_CTRL_TYPE_DEL_GREF_MAPPING,
    XEN_NETIF_CTRL_TYPE_GET_GREF_MAPPING_SIZE, XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS,
    XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE, XEN_NETIF_CTRL_TYPE_INVALID,
    XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM, XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS,
    XEN_NETIF_CTRL_TYPE_SET_HASH_KEY, XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING,
    XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE, XEN_NETIF_EXTRA_TYPE_GSO, XEN_NETIF_EXTRA_TYPE_HASH,
    XEN_NETIF_EXTRA_TYPE_MAX, XEN_NETIF_EXTRA_TYPE_MCAST_ADD, XEN_NETIF_EXTRA_TYPE_MCAST_DEL,
    XEN_NETIF_EXTRA_TYPE_NONE, XEN_NETIF_GSO_TYPE_NONE, XEN_NETIF_GSO_TYPE_TCPV4,
    XEN_NETIF_GSO_TYPE_TCPV6, XEN_NETIF_MAX_TX_SIZE,
};

pub fn describe(c: &mut Catalogue) {
    padding::push(
        c,
        layout!(Both, netif::NetifTxRequest = "struct netif_tx_request" {
            gref => "gref",
            offset => "offset",
            flags => "flags",
            id => "id",
            size => "size",
        }),
    );
    padding::push(
        c,
        layout!(Both, netif::NetifTxResponse = "struct netif_tx_response" {
            id => "id",
            status => "status",
        }),
    );
    padding::push(
        c,
        layout!(Both, netif::NetifRxRequest = "struct netif_rx_request" {
            id => "id",
            pad => "pad",
            gref => "gref",
        }),
    );
    padding::push(
        c,
        layout!(Both, netif::NetifRxResponse = "struct netif_rx_response" {
            id => "id",
            offset => "offset",
            flags => "flags",
            status => "status",
        }),
    );

    // Each member of the union `u` as its own full-size struct.
    padding::push(
        c,
        layout!(Both, netif::NetifExtraInfo = "struct netif_extra_info" {
            extra_type => "type",
            flags => "flags",
            pad => "u.pad",
        }),
    );
    padding::push(
        c,
        layout!(Both, netif::NetifExtraInfoGso = "struct netif_extra_info" {
            extra_type => "type",
            flags => "flags",
            size => "u.gso.size",
            gso_type => "u.gso.type",
            pad => "u.gso.pad",
            features => "u.gso.features",
        }),
    );
    padding::push(
        c,
        layout!(Both, netif::NetifExtraInfoMcast = "struct netif_extra_info" {
            extra_type => "type",
            flags => "flags",
            addr => "u.mcast.addr",
        }),
    );
    padding::push(
        c,
        layout!(Both, netif::NetifExtraInfoHash = "struct netif_extra_info" {
            extra_type => "type",
            flags => "flags",
            hash_type => "u.hash.type",
            algorithm => "u.hash.algorithm",
            value => "u.hash.value",
        }),
    );

    padding::push(
        c,
        layout!(Both, netif::XenNetifCtrlRequest = "struct xen_netif_ctrl_request" {
            id => "id",
            ctrl_type => "type",
            data => "data",
        }),
    );
    padding::push(
        c,
        layout!(Both, netif::XenNetifCtrlResponse = "struct xen_netif_ctrl_response" {
            id => "id",
            ctrl_type => "type",
            status => "status",
            data => "data",
        }),
    );
    padding::push(
        c,
        layout!(Both, netif::XenNetifGref = "struct xen_netif_gref" {
            gref => "ref",
            flags => "flags",
            status => "status",
        }),
    );

    c.consts.extend(consts!(Both;
        XEN_NETIF_MAX_TX_SIZE => "XEN_NETIF_MAX_TX_SIZE",
        NETIF_RSP_DROPPED => "NETIF_RSP_DROPPED",
        NETIF_RSP_ERROR => "NETIF_RSP_ERROR",
        NETIF_RSP_OKAY => "NETIF_RSP_OKAY",
        NETIF_RSP_NULL => "NETIF_RSP_NULL",
        XEN_NETIF_EXTRA_TYPE_NONE => "XEN_NETIF_EXTRA_TYPE_NONE",
        XEN_NETIF_EXTRA_TYPE_GSO => "XEN_NETIF_EXTRA_TYPE_GSO",
        XEN_NETIF_EXTRA_TYPE_MCAST_ADD => "XEN_NETIF_EXTRA_TYPE_MCAST_ADD",
        XEN_NETIF_EXTRA_TYPE_MCAST_DEL => "XEN_NETIF_EXTRA_TYPE_MCAST_DEL",
        XEN_NETIF_EXTRA_TYPE_HASH => "XEN_NETIF_EXTRA_TYPE_HASH",
        XEN_NETIF_EXTRA_TYPE_MAX => "XEN_NETIF_EXTRA_TYPE_MAX",
        XEN_NETIF_GSO_TYPE_NONE => "XEN_NETIF_GSO_TYPE_NONE",
        XEN_NETIF_GSO_TYPE_TCPV4 => "XEN_NETIF_GSO_TYPE_TCPV4",
        XEN_NETIF_GSO_TYPE_TCPV6 => "XEN_NETIF_GSO_TYPE_TCPV6",
        XEN_NETIF_CTRL_TYPE_INVALID => "XEN_NETIF_CTRL_TYPE_INVALID",
        XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS => "XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS",
        XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS => "XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS",
        XEN_NETIF_CTRL_TYPE_SET_HASH_KEY => "XEN_NETIF_CTRL_TYPE_SET_HASH_KEY",
        XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE => "XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE",
        XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE => "XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE",
        XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING => "XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING",
        XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM => "XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM",
        XEN_NETIF_CTRL_TYPE_GET_GREF_MAPPING_SIZE => "XEN_NETIF_CTRL_TYPE_GET_GREF_MAPPING_SIZE",
        XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING => "XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING",
        XEN_NETIF_CTRL_TYPE_DEL_GREF_MAPPING => "XEN_NETIF_CTRL_TYPE_DEL_GREF_MAPPING",
        XEN_NETIF_CTRL_STATUS_SUCCESS => "XEN_NETIF_CTRL_STATUS_SUCCESS",
        XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED => "XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED",
        XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER => "XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER",
        XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW => "XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW",
        XEN_NETIF_CTRL_HASH_ALGORITHM_NONE => "XEN_NETIF_CTRL_HASH_ALGORITHM_NONE",
        XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ => "XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ",
        NETIF_TX_RING_SLOTS => "__CONST_RING_SIZE(netif_tx, 4096)",
        NETIF_RX_RING_SLOTS => "__CONST_RING_SIZE(netif_rx, 4096)",
        XEN_NETIF_CTRL_RING_SLOTS => "__CONST_RING_SIZE(xen_netif_ctrl, 4096)",
    ));

    // Flags are bitflags and sizes `usize` in Rust; compare them through locals.
    let nettxf_csum_blank = NetTxFlags::CSUM_BLANK.bits();
    let nettxf_data_validated = NetTxFlags::DATA_VALIDATED.bits();
    let nettxf_more_data = NetTxFlags::MORE_DATA.bits();
    let nettxf_extra_info = NetTxFlags::EXTRA_INFO.bits();
    let netrxf_data_validated = NetRxFlags::DATA_VALIDATED.bits();
    let netrxf_csum_blank = NetRxFlags::CSUM_BLANK.bits();
    let netrxf_more_data = NetRxFlags::MORE_DATA.bits();
    let netrxf_extra_info = NetRxFlags::EXTRA_INFO.bits();
    let netrxf_gso_prefix = NetRxFlags::GSO_PREFIX.bits();
    let xen_netif_extra_flag_more = NetifExtraFlags::MORE.bits();
    let xen_netif_ctrlf_gref_readonly = XenNetifGrefFlags::READONLY.bits();
    let xen_netif_ctrl_hash_type_ipv4 = NetifCtrlHashType::IPV4.bits();
    let xen_netif_ctrl_hash_type_ipv4_tcp = NetifCtrlHashType::IPV4_TCP.bits();
    let xen_netif_ctrl_hash_type_ipv6 = NetifCtrlHashType::IPV6.bits();
    let xen_netif_ctrl_hash_type_ipv6_tcp = NetifCtrlHashType::IPV6_TCP.bits();
    // A hash extra-info slot carries the bit number, `_XEN_NETIF_CTRL_HASH_TYPE_*`.
    let xen_netif_ctrl_hash_type_ipv4_bit = NetifCtrlHashType::IPV4.bits().trailing_zeros();
    let xen_netif_ctrl_hash_type_ipv4_tcp_bit = NetifCtrlHashType::IPV4_TCP.bits().trailing_zeros();
    let xen_netif_ctrl_hash_type_ipv6_bit = NetifCtrlHashType::IPV6.bits().trailing_zeros();
    let xen_netif_ctrl_hash_type_ipv6_tcp_bit = NetifCtrlHashType::IPV6_TCP.bits().trailing_zeros();
    let xen_netif_nr_slots_min = netif::XEN_NETIF_NR_SLOTS_MIN as u64;
    let netif_tx_ring_entry_size = netif::NETIF_TX_RING_ENTRY_SIZE as u64;
    let netif_rx_ring_entry_size = netif::NETIF_RX_RING_ENTRY_SIZE as u64;
    let xen_netif_ctrl_ring_entry_size = netif::XEN_NETIF_CTRL_RING_ENTRY_SIZE as u64;
    c.consts.extend(consts!(Both;
        nettxf_csum_blank => "NETTXF_csum_blank",
        nettxf_data_validated => "NETTXF_data_validated",
        nettxf_more_data => "NETTXF_more_data",
        nettxf_extra_info => "NETTXF_extra_info",
        netrxf_data_validated => "NETRXF_data_validated",
        netrxf_csum_blank => "NETRXF_csum_blank",
        netrxf_more_data => "NETRXF_more_data",
        netrxf_extra_info => "NETRXF_extra_info",
        netrxf_gso_prefix => "NETRXF_gso_prefix",
        xen_netif_extra_flag_more => "XEN_NETIF_EXTRA_FLAG_MORE",
        xen_netif_ctrlf_gref_readonly => "XEN_NETIF_CTRLF_GREF_readonly",
        xen_netif_ctrl_hash_type_ipv4 => "XEN_NETIF_CTRL_HASH_TYPE_IPV4",
        xen_netif_ctrl_hash_type_ipv4_tcp => "XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP",
        xen_netif_ctrl_hash_type_ipv6 => "XEN_NETIF_CTRL_HASH_TYPE_IPV6",
        xen_netif_ctrl_hash_type_ipv6_tcp => "XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP",
        xen_netif_ctrl_hash_type_ipv4_bit => "_XEN_NETIF_CTRL_HASH_TYPE_IPV4",
        xen_netif_ctrl_hash_type_ipv4_tcp_bit => "_XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP",
        xen_netif_ctrl_hash_type_ipv6_bit => "_XEN_NETIF_CTRL_HASH_TYPE_IPV6",
        xen_netif_ctrl_hash_type_ipv6_tcp_bit => "_XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP",
        xen_netif_nr_slots_min => "XEN_NETIF_NR_SLOTS_MIN",
        netif_tx_ring_entry_size => "sizeof(union netif_tx_sring_entry)",
        netif_rx_ring_entry_size => "sizeof(union netif_rx_sring_entry)",
        xen_netif_ctrl_ring_entry_size => "sizeof(union xen_netif_ctrl_sring_entry)",
    ));
}
