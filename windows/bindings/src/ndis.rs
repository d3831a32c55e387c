//! The NDIS 6.30 miniport interface (`ndis.h`, `ntddndis.h`): object headers, the driver
//! characteristics, the adapter attributes, initialisation parameters, OID requests, status
//! indications, link state, statistics, RSS, configuration and interrupt registration, and the
//! `NDIS_STATUS` values.
//!
//! Structures that NDIS allocates and passes in (`NDIS_OID_REQUEST`, `NDIS_MINIPORT_INIT_PARAMETERS`)
//! are declared through the revision an NDIS 6.30 miniport reads; later revisions only append.
//! Structures the miniport fills in carry a `*_SIZEOF_*` constant equal to the header's
//! `NDIS_SIZEOF_..._REVISION_n` (`RTL_SIZEOF_THROUGH_FIELD` of the revision's last field), which
//! goes into `Header.Size`.
// Field and value names are the headers'; Microsoft documents each of them.
#![allow(missing_docs)]

use core::ffi::c_void;

use crate::assert_layout;
use crate::ndis_nbl::NET_BUFFER_LIST;

/// `NDIS_HANDLE`.
pub type NDIS_HANDLE = *mut c_void;
/// `NDIS_STATUS` (an NTSTATUS-sized code).
pub type NDIS_STATUS = i32;
/// `NDIS_OID`.
pub type NDIS_OID = u32;
/// `NDIS_PORT_NUMBER`.
pub type NDIS_PORT_NUMBER = u32;
/// `NDIS_PHYSICAL_ADDRESS` (`PHYSICAL_ADDRESS`, a `LARGE_INTEGER`).
pub type NDIS_PHYSICAL_ADDRESS = i64;

/// `NDIS_OBJECT_HEADER`: type, revision and size of every NDIS 6 structure.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NDIS_OBJECT_HEADER {
    pub Type: u8,
    pub Revision: u8,
    pub Size: u16,
}
assert_layout!(NDIS_OBJECT_HEADER, size 4, Type @ 0, Revision @ 1, Size @ 2);

impl NDIS_OBJECT_HEADER {
    /// A header of `object_type`, `revision` and `size` bytes.
    pub const fn new(object_type: u8, revision: u8, size: usize) -> Self {
        NDIS_OBJECT_HEADER {
            Type: object_type,
            Revision: revision,
            Size: size as u16,
        }
    }
}

/// `NDIS_OBJECT_TYPE_*` values.
pub const NDIS_OBJECT_TYPE_DEFAULT: u8 = 0x80;
pub const NDIS_OBJECT_TYPE_MINIPORT_INIT_PARAMETERS: u8 = 0x81;
pub const NDIS_OBJECT_TYPE_MINIPORT_INTERRUPT: u8 = 0x84;
pub const NDIS_OBJECT_TYPE_RSS_CAPABILITIES: u8 = 0x88;
pub const NDIS_OBJECT_TYPE_RSS_PARAMETERS: u8 = 0x89;
pub const NDIS_OBJECT_TYPE_MINIPORT_DRIVER_CHARACTERISTICS: u8 = 0x8a;
pub const NDIS_OBJECT_TYPE_OID_REQUEST: u8 = 0x96;
pub const NDIS_OBJECT_TYPE_STATUS_INDICATION: u8 = 0x98;
pub const NDIS_OBJECT_TYPE_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES: u8 = 0x9e;
pub const NDIS_OBJECT_TYPE_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES: u8 = 0x9f;
pub const NDIS_OBJECT_TYPE_MINIPORT_ADAPTER_OFFLOAD_ATTRIBUTES: u8 = 0xa0;
pub const NDIS_OBJECT_TYPE_OFFLOAD: u8 = 0xa7;
pub const NDIS_OBJECT_TYPE_CONFIGURATION_OBJECT: u8 = 0xa9;

/// `NDIS_STATUS_*` values (`ndis.h`; the NTSTATUS-based ones equal the named `STATUS_*`).
pub const NDIS_STATUS_SUCCESS: NDIS_STATUS = 0;
pub const NDIS_STATUS_PENDING: NDIS_STATUS = 0x0000_0103;
pub const NDIS_STATUS_NOT_ACCEPTED: NDIS_STATUS = 0x0001_0003;
pub const NDIS_STATUS_MEDIA_CONNECT: NDIS_STATUS = 0x4001_000B;
pub const NDIS_STATUS_MEDIA_DISCONNECT: NDIS_STATUS = 0x4001_000C;
pub const NDIS_STATUS_LINK_STATE: NDIS_STATUS = 0x4001_0017;
pub const NDIS_STATUS_BUFFER_OVERFLOW: NDIS_STATUS = 0x8000_0005_u32 as i32;
pub const NDIS_STATUS_FAILURE: NDIS_STATUS = 0xC000_0001_u32 as i32;
pub const NDIS_STATUS_RESOURCES: NDIS_STATUS = 0xC000_009A_u32 as i32;
pub const NDIS_STATUS_NOT_SUPPORTED: NDIS_STATUS = 0xC000_00BB_u32 as i32;
pub const NDIS_STATUS_INVALID_PARAMETER: NDIS_STATUS = 0xC000_000D_u32 as i32;
pub const NDIS_STATUS_REQUEST_ABORTED: NDIS_STATUS = 0xC001_000C_u32 as i32;
pub const NDIS_STATUS_RESET_IN_PROGRESS: NDIS_STATUS = 0xC001_000D_u32 as i32;
pub const NDIS_STATUS_INVALID_PACKET: NDIS_STATUS = 0xC001_000F_u32 as i32;
pub const NDIS_STATUS_ADAPTER_NOT_READY: NDIS_STATUS = 0xC001_0011_u32 as i32;
pub const NDIS_STATUS_INVALID_LENGTH: NDIS_STATUS = 0xC001_0014_u32 as i32;
pub const NDIS_STATUS_INVALID_DATA: NDIS_STATUS = 0xC001_0015_u32 as i32;
pub const NDIS_STATUS_BUFFER_TOO_SHORT: NDIS_STATUS = 0xC001_0016_u32 as i32;
pub const NDIS_STATUS_INVALID_OID: NDIS_STATUS = 0xC001_0017_u32 as i32;
/// `STATUS_NDIS_PAUSED`.
pub const NDIS_STATUS_PAUSED: NDIS_STATUS = 0xC023_002A_u32 as i32;
/// `STATUS_NDIS_LOW_POWER_STATE`.
pub const NDIS_STATUS_LOW_POWER_STATE: NDIS_STATUS = 0xC023_002F_u32 as i32;

/// NDIS 6.30 (`NDIS_MINIPORT_MAJOR_VERSION` / `MINOR_VERSION`).
pub const NDIS_MINIPORT_MAJOR_VERSION: u8 = 6;
pub const NDIS_MINIPORT_MINOR_VERSION: u8 = 30;

/// Miniport handler signatures (`MINIPORT_*`).
pub type SET_OPTIONS_HANDLER = Option<
    unsafe extern "system" fn(
        driver_handle: NDIS_HANDLE,
        driver_context: NDIS_HANDLE,
    ) -> NDIS_STATUS,
>;
pub type MINIPORT_INITIALIZE_HANDLER = Option<
    unsafe extern "system" fn(
        adapter_handle: NDIS_HANDLE,
        driver_context: NDIS_HANDLE,
        init_parameters: *mut NDIS_MINIPORT_INIT_PARAMETERS,
    ) -> NDIS_STATUS,
>;
pub type MINIPORT_HALT_HANDLER =
    Option<unsafe extern "system" fn(adapter_context: NDIS_HANDLE, halt_action: u32)>;
pub type MINIPORT_UNLOAD_HANDLER = Option<unsafe extern "system" fn(driver_object: *mut c_void)>;
pub type MINIPORT_PAUSE_HANDLER = Option<
    unsafe extern "system" fn(adapter_context: NDIS_HANDLE, parameters: *mut c_void) -> NDIS_STATUS,
>;
pub type MINIPORT_RESTART_HANDLER = Option<
    unsafe extern "system" fn(adapter_context: NDIS_HANDLE, parameters: *mut c_void) -> NDIS_STATUS,
>;
pub type MINIPORT_OID_REQUEST_HANDLER = Option<
    unsafe extern "system" fn(
        adapter_context: NDIS_HANDLE,
        request: *mut NDIS_OID_REQUEST,
    ) -> NDIS_STATUS,
>;
pub type MINIPORT_SEND_NET_BUFFER_LISTS_HANDLER = Option<
    unsafe extern "system" fn(
        adapter_context: NDIS_HANDLE,
        net_buffer_lists: *mut NET_BUFFER_LIST,
        port_number: NDIS_PORT_NUMBER,
        send_flags: u32,
    ),
>;
pub type MINIPORT_RETURN_NET_BUFFER_LISTS_HANDLER = Option<
    unsafe extern "system" fn(
        adapter_context: NDIS_HANDLE,
        net_buffer_lists: *mut NET_BUFFER_LIST,
        return_flags: u32,
    ),
>;
pub type MINIPORT_CANCEL_SEND_HANDLER =
    Option<unsafe extern "system" fn(adapter_context: NDIS_HANDLE, cancel_id: *mut c_void)>;
pub type MINIPORT_CHECK_FOR_HANG_HANDLER =
    Option<unsafe extern "system" fn(adapter_context: NDIS_HANDLE) -> u8>;
pub type MINIPORT_RESET_HANDLER = Option<
    unsafe extern "system" fn(
        adapter_context: NDIS_HANDLE,
        addressing_reset: *mut u8,
    ) -> NDIS_STATUS,
>;
pub type MINIPORT_DEVICE_PNP_EVENT_NOTIFY_HANDLER =
    Option<unsafe extern "system" fn(adapter_context: NDIS_HANDLE, event: *mut c_void)>;
pub type MINIPORT_SHUTDOWN_HANDLER =
    Option<unsafe extern "system" fn(adapter_context: NDIS_HANDLE, shutdown_action: u32)>;
pub type MINIPORT_CANCEL_OID_REQUEST_HANDLER =
    Option<unsafe extern "system" fn(adapter_context: NDIS_HANDLE, request_id: *mut c_void)>;

/// `NDIS_MINIPORT_DRIVER_CHARACTERISTICS`, revision 2 (NDIS 6.20 and later, through
/// `CancelDirectOidRequestHandler`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NDIS_MINIPORT_DRIVER_CHARACTERISTICS {
    pub Header: NDIS_OBJECT_HEADER,
    pub MajorNdisVersion: u8,
    pub MinorNdisVersion: u8,
    pub MajorDriverVersion: u8,
    pub MinorDriverVersion: u8,
    pub Flags: u32,
    pub SetOptionsHandler: SET_OPTIONS_HANDLER,
    pub InitializeHandlerEx: MINIPORT_INITIALIZE_HANDLER,
    pub HaltHandlerEx: MINIPORT_HALT_HANDLER,
    pub UnloadHandler: MINIPORT_UNLOAD_HANDLER,
    pub PauseHandler: MINIPORT_PAUSE_HANDLER,
    pub RestartHandler: MINIPORT_RESTART_HANDLER,
    pub OidRequestHandler: MINIPORT_OID_REQUEST_HANDLER,
    pub SendNetBufferListsHandler: MINIPORT_SEND_NET_BUFFER_LISTS_HANDLER,
    pub ReturnNetBufferListsHandler: MINIPORT_RETURN_NET_BUFFER_LISTS_HANDLER,
    pub CancelSendHandler: MINIPORT_CANCEL_SEND_HANDLER,
    pub CheckForHangHandlerEx: MINIPORT_CHECK_FOR_HANG_HANDLER,
    pub ResetHandlerEx: MINIPORT_RESET_HANDLER,
    pub DevicePnPEventNotifyHandler: MINIPORT_DEVICE_PNP_EVENT_NOTIFY_HANDLER,
    pub ShutdownHandlerEx: MINIPORT_SHUTDOWN_HANDLER,
    pub CancelOidRequestHandler: MINIPORT_CANCEL_OID_REQUEST_HANDLER,
    pub DirectOidRequestHandler: MINIPORT_OID_REQUEST_HANDLER,
    pub CancelDirectOidRequestHandler: MINIPORT_CANCEL_OID_REQUEST_HANDLER,
}
assert_layout!(NDIS_MINIPORT_DRIVER_CHARACTERISTICS, size 0x98,
    Header @ 0x00, MajorNdisVersion @ 0x04, MinorNdisVersion @ 0x05, MajorDriverVersion @ 0x06,
    MinorDriverVersion @ 0x07, Flags @ 0x08, SetOptionsHandler @ 0x10,
    InitializeHandlerEx @ 0x18, HaltHandlerEx @ 0x20, UnloadHandler @ 0x28, PauseHandler @ 0x30,
    RestartHandler @ 0x38, OidRequestHandler @ 0x40, SendNetBufferListsHandler @ 0x48,
    ReturnNetBufferListsHandler @ 0x50, CancelSendHandler @ 0x58, CheckForHangHandlerEx @ 0x60,
    ResetHandlerEx @ 0x68, DevicePnPEventNotifyHandler @ 0x70, ShutdownHandlerEx @ 0x78,
    CancelOidRequestHandler @ 0x80, DirectOidRequestHandler @ 0x88,
    CancelDirectOidRequestHandler @ 0x90);
/// `NDIS_MINIPORT_DRIVER_CHARACTERISTICS_REVISION_2`.
pub const NDIS_MINIPORT_DRIVER_CHARACTERISTICS_REVISION_2: u8 = 2;
/// `NDIS_SIZEOF_MINIPORT_DRIVER_CHARACTERISTICS_REVISION_2`.
pub const NDIS_SIZEOF_MINIPORT_DRIVER_CHARACTERISTICS_REVISION_2: usize = 0x98;

/// `NDIS_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES` (revision 1).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NDIS_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES {
    pub Header: NDIS_OBJECT_HEADER,
    pub MiniportAdapterContext: NDIS_HANDLE,
    /// `NDIS_MINIPORT_ATTRIBUTES_*` bits.
    pub AttributeFlags: u32,
    pub CheckForHangTimeInSeconds: u32,
    /// `NDIS_INTERFACE_TYPE` (`NdisInterfaceInternal` = 0).
    pub InterfaceType: i32,
}
assert_layout!(NDIS_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES, size 0x20,
    Header @ 0x00, MiniportAdapterContext @ 0x08, AttributeFlags @ 0x10,
    CheckForHangTimeInSeconds @ 0x14, InterfaceType @ 0x18);
pub const NDIS_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES_REVISION_1: u8 = 1;
/// Through `InterfaceType`.
pub const NDIS_SIZEOF_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES_REVISION_1: usize = 0x1c;
/// `NDIS_MINIPORT_ATTRIBUTES_*` bits.
pub const NDIS_MINIPORT_ATTRIBUTES_HARDWARE_DEVICE: u32 = 0x0000_0001;
pub const NDIS_MINIPORT_ATTRIBUTES_NDIS_WDM: u32 = 0x0000_0002;
pub const NDIS_MINIPORT_ATTRIBUTES_SURPRISE_REMOVE_OK: u32 = 0x0000_0004;
pub const NDIS_MINIPORT_ATTRIBUTES_NOT_CO_NDIS: u32 = 0x0000_0008;
pub const NDIS_MINIPORT_ATTRIBUTES_BUS_MASTER: u32 = 0x0000_0040;

/// `NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES` (revision 2, NDIS 6.20 and later).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES {
    pub Header: NDIS_OBJECT_HEADER,
    pub Flags: u32,
    /// `NDIS_MEDIUM` (`NdisMedium802_3` = 0).
    pub MediaType: i32,
    /// `NDIS_PHYSICAL_MEDIUM`.
    pub PhysicalMediumType: i32,
    pub MtuSize: u32,
    pub MaxXmitLinkSpeed: u64,
    pub XmitLinkSpeed: u64,
    pub MaxRcvLinkSpeed: u64,
    pub RcvLinkSpeed: u64,
    /// `NDIS_MEDIA_CONNECT_STATE`.
    pub MediaConnectState: i32,
    /// `NDIS_MEDIA_DUPLEX_STATE`.
    pub MediaDuplexState: i32,
    pub LookaheadSize: u32,
    pub PowerManagementCapabilities: *mut c_void,
    pub MacOptions: u32,
    pub SupportedPacketFilters: u32,
    pub MaxMulticastListSize: u32,
    pub MacAddressLength: u16,
    pub PermanentMacAddress: [u8; 32],
    pub CurrentMacAddress: [u8; 32],
    pub RecvScaleCapabilities: *mut NDIS_RECEIVE_SCALE_CAPABILITIES,
    /// `NET_IF_ACCESS_TYPE`.
    pub AccessType: i32,
    /// `NET_IF_DIRECTION_TYPE`.
    pub DirectionType: i32,
    /// `NET_IF_CONNECTION_TYPE`.
    pub ConnectionType: i32,
    /// `NET_IFTYPE` (`IF_TYPE_ETHERNET_CSMACD` = 6).
    pub IfType: u16,
    pub IfConnectorPresent: u8,
    pub SupportedStatistics: u32,
    pub SupportedPauseFunctions: u32,
    pub DataBackFillSize: u32,
    pub ContextBackFillSize: u32,
    pub SupportedOidList: *mut NDIS_OID,
    pub SupportedOidListLength: u32,
    pub AutoNegotiationFlags: u32,
    pub PowerManagementCapabilitiesEx: *mut c_void,
}
assert_layout!(NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES, size 0xe0,
    Header @ 0x00, Flags @ 0x04, MediaType @ 0x08, PhysicalMediumType @ 0x0c, MtuSize @ 0x10,
    MaxXmitLinkSpeed @ 0x18, XmitLinkSpeed @ 0x20, MaxRcvLinkSpeed @ 0x28, RcvLinkSpeed @ 0x30,
    MediaConnectState @ 0x38, MediaDuplexState @ 0x3c, LookaheadSize @ 0x40,
    PowerManagementCapabilities @ 0x48, MacOptions @ 0x50, SupportedPacketFilters @ 0x54,
    MaxMulticastListSize @ 0x58, MacAddressLength @ 0x5c, PermanentMacAddress @ 0x5e,
    CurrentMacAddress @ 0x7e, RecvScaleCapabilities @ 0xa0, AccessType @ 0xa8,
    DirectionType @ 0xac, ConnectionType @ 0xb0, IfType @ 0xb4, IfConnectorPresent @ 0xb6,
    SupportedStatistics @ 0xb8, SupportedPauseFunctions @ 0xbc, DataBackFillSize @ 0xc0,
    ContextBackFillSize @ 0xc4, SupportedOidList @ 0xc8, SupportedOidListLength @ 0xd0,
    AutoNegotiationFlags @ 0xd4, PowerManagementCapabilitiesEx @ 0xd8);
pub const NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES_REVISION_2: u8 = 2;
/// Through `PowerManagementCapabilitiesEx`.
pub const NDIS_SIZEOF_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES_REVISION_2: usize = 0xe0;

/// `NDIS_MINIPORT_ADAPTER_OFFLOAD_ATTRIBUTES` (revision 1).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NDIS_MINIPORT_ADAPTER_OFFLOAD_ATTRIBUTES {
    pub Header: NDIS_OBJECT_HEADER,
    pub DefaultOffloadConfiguration: *mut crate::ndis_offload::NDIS_OFFLOAD,
    pub HardwareOffloadCapabilities: *mut crate::ndis_offload::NDIS_OFFLOAD,
    pub DefaultTcpConnectionOffloadConfiguration: *mut c_void,
    pub TcpConnectionOffloadHardwareCapabilities: *mut c_void,
}
assert_layout!(NDIS_MINIPORT_ADAPTER_OFFLOAD_ATTRIBUTES, size 0x28,
    Header @ 0x00, DefaultOffloadConfiguration @ 0x08, HardwareOffloadCapabilities @ 0x10,
    DefaultTcpConnectionOffloadConfiguration @ 0x18,
    TcpConnectionOffloadHardwareCapabilities @ 0x20);
pub const NDIS_MINIPORT_ADAPTER_OFFLOAD_ATTRIBUTES_REVISION_1: u8 = 1;
pub const NDIS_SIZEOF_MINIPORT_ADAPTER_OFFLOAD_ATTRIBUTES_REVISION_1: usize = 0x28;

/// `NDIS_MINIPORT_INIT_PARAMETERS` (revision 1; NDIS allocates it).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NDIS_MINIPORT_INIT_PARAMETERS {
    pub Header: NDIS_OBJECT_HEADER,
    pub Flags: u32,
    /// `PNDIS_RESOURCE_LIST` (a `CM_PARTIAL_RESOURCE_LIST`).
    pub AllocatedResources: *mut c_void,
    pub IMDeviceInstanceContext: NDIS_HANDLE,
    pub MiniportAddDeviceContext: NDIS_HANDLE,
    pub IfIndex: u32,
    /// `NET_LUID`.
    pub NetLuid: u64,
    pub DefaultPortAuthStates: *mut c_void,
    pub PciDeviceCustomProperties: *mut c_void,
}
assert_layout!(NDIS_MINIPORT_INIT_PARAMETERS, size 0x40,
    Header @ 0x00, Flags @ 0x04, AllocatedResources @ 0x08, IMDeviceInstanceContext @ 0x10,
    MiniportAddDeviceContext @ 0x18, IfIndex @ 0x20, NetLuid @ 0x28,
    DefaultPortAuthStates @ 0x30, PciDeviceCustomProperties @ 0x38);

/// `NDIS_REQUEST_TYPE` values.
pub const NdisRequestQueryInformation: i32 = 0;
pub const NdisRequestSetInformation: i32 = 1;
pub const NdisRequestQueryStatistics: i32 = 2;
pub const NdisRequestMethod: i32 = 12;

/// `DATA.QUERY_INFORMATION` of an OID request.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NDIS_OID_QUERY_INFORMATION {
    pub Oid: NDIS_OID,
    pub InformationBuffer: *mut c_void,
    pub InformationBufferLength: u32,
    pub BytesWritten: u32,
    pub BytesNeeded: u32,
}
assert_layout!(NDIS_OID_QUERY_INFORMATION, size 0x20, Oid @ 0, InformationBuffer @ 8,
    InformationBufferLength @ 0x10, BytesWritten @ 0x14, BytesNeeded @ 0x18);

/// `DATA.SET_INFORMATION` of an OID request.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NDIS_OID_SET_INFORMATION {
    pub Oid: NDIS_OID,
    pub InformationBuffer: *mut c_void,
    pub InformationBufferLength: u32,
    pub BytesRead: u32,
    pub BytesNeeded: u32,
}
assert_layout!(NDIS_OID_SET_INFORMATION, size 0x20, Oid @ 0, InformationBuffer @ 8,
    InformationBufferLength @ 0x10, BytesRead @ 0x14, BytesNeeded @ 0x18);

/// `DATA.METHOD_INFORMATION` of an OID request.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NDIS_OID_METHOD_INFORMATION {
    pub Oid: NDIS_OID,
    pub InformationBuffer: *mut c_void,
    pub InputBufferLength: u32,
    pub OutputBufferLength: u32,
    pub MethodId: u32,
    pub BytesWritten: u32,
    pub BytesRead: u32,
    pub BytesNeeded: u32,
}
assert_layout!(NDIS_OID_METHOD_INFORMATION, size 0x28, Oid @ 0, InformationBuffer @ 8,
    InputBufferLength @ 0x10, OutputBufferLength @ 0x14, MethodId @ 0x18, BytesWritten @ 0x1c,
    BytesRead @ 0x20, BytesNeeded @ 0x24);

/// The `DATA` union of [`NDIS_OID_REQUEST`].
#[repr(C)]
#[derive(Clone, Copy)]
pub union NDIS_OID_REQUEST_DATA {
    pub QUERY_INFORMATION: NDIS_OID_QUERY_INFORMATION,
    pub SET_INFORMATION: NDIS_OID_SET_INFORMATION,
    pub METHOD_INFORMATION: NDIS_OID_METHOD_INFORMATION,
}
assert_layout!(NDIS_OID_REQUEST_DATA, size 0x28);

impl core::fmt::Debug for NDIS_OID_REQUEST_DATA {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("NDIS_OID_REQUEST_DATA")
    }
}

/// `NDIS_OID_REQUEST` (revision 1 prefix; NDIS allocates it and passes it to the miniport).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NDIS_OID_REQUEST {
    pub Header: NDIS_OBJECT_HEADER,
    /// `NDIS_REQUEST_TYPE`.
    pub RequestType: i32,
    pub PortNumber: NDIS_PORT_NUMBER,
    pub Timeout: u32,
    pub RequestId: *mut c_void,
    pub RequestHandle: NDIS_HANDLE,
    pub DATA: NDIS_OID_REQUEST_DATA,
    pub NdisReserved: [u8; 16 * 8],
    pub MiniportReserved: [u8; 2 * 8],
    pub SourceReserved: [u8; 2 * 8],
    pub SupportedRevision: u8,
    pub Reserved1: u8,
    pub Reserved2: u16,
}
assert_layout!(NDIS_OID_REQUEST, size 0xf0,
    Header @ 0x00, RequestType @ 0x04, PortNumber @ 0x08, Timeout @ 0x0c, RequestId @ 0x10,
    RequestHandle @ 0x18, DATA @ 0x20, NdisReserved @ 0x48, MiniportReserved @ 0xc8,
    SourceReserved @ 0xd8, SupportedRevision @ 0xe8, Reserved1 @ 0xe9, Reserved2 @ 0xea);

/// `NDIS_STATUS_INDICATION` (revision 1).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NDIS_STATUS_INDICATION {
    pub Header: NDIS_OBJECT_HEADER,
    pub SourceHandle: NDIS_HANDLE,
    pub PortNumber: NDIS_PORT_NUMBER,
    pub StatusCode: NDIS_STATUS,
    pub Flags: u32,
    pub DestinationHandle: NDIS_HANDLE,
    pub RequestId: *mut c_void,
    pub StatusBuffer: *mut c_void,
    pub StatusBufferSize: u32,
    /// `GUID`.
    pub Guid: [u32; 4],
    pub NdisReserved: [*mut c_void; 4],
}
assert_layout!(NDIS_STATUS_INDICATION, size 0x70,
    Header @ 0x00, SourceHandle @ 0x08, PortNumber @ 0x10, StatusCode @ 0x14, Flags @ 0x18,
    DestinationHandle @ 0x20, RequestId @ 0x28, StatusBuffer @ 0x30, StatusBufferSize @ 0x38,
    Guid @ 0x3c, NdisReserved @ 0x50);
pub const NDIS_STATUS_INDICATION_REVISION_1: u8 = 1;
pub const NDIS_SIZEOF_STATUS_INDICATION_REVISION_1: usize = 0x70;

/// `NDIS_LINK_STATE`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NDIS_LINK_STATE {
    pub Header: NDIS_OBJECT_HEADER,
    /// `NDIS_MEDIA_CONNECT_STATE`: 0 unknown, 1 connected, 2 disconnected.
    pub MediaConnectState: i32,
    /// `NDIS_MEDIA_DUPLEX_STATE`: 0 unknown, 1 half, 2 full.
    pub MediaDuplexState: i32,
    pub XmitLinkSpeed: u64,
    pub RcvLinkSpeed: u64,
    pub PauseFunctions: i32,
    pub AutoNegotiationFlags: u32,
}
assert_layout!(NDIS_LINK_STATE, size 0x28,
    Header @ 0x00, MediaConnectState @ 0x04, MediaDuplexState @ 0x08, XmitLinkSpeed @ 0x10,
    RcvLinkSpeed @ 0x18, PauseFunctions @ 0x20, AutoNegotiationFlags @ 0x24);
pub const NDIS_LINK_STATE_REVISION_1: u8 = 1;
pub const NDIS_SIZEOF_LINK_STATE_REVISION_1: usize = 0x28;
pub const MediaConnectStateUnknown: i32 = 0;
pub const MediaConnectStateConnected: i32 = 1;
pub const MediaConnectStateDisconnected: i32 = 2;
pub const MediaDuplexStateFull: i32 = 2;

/// `NDIS_STATISTICS_INFO` (`OID_GEN_STATISTICS`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct NDIS_STATISTICS_INFO {
    pub Header: NDIS_OBJECT_HEADER,
    pub SupportedStatistics: u32,
    pub ifInDiscards: u64,
    pub ifInErrors: u64,
    pub ifHCInOctets: u64,
    pub ifHCInUcastPkts: u64,
    pub ifHCInMulticastPkts: u64,
    pub ifHCInBroadcastPkts: u64,
    pub ifHCOutOctets: u64,
    pub ifHCOutUcastPkts: u64,
    pub ifHCOutMulticastPkts: u64,
    pub ifHCOutBroadcastPkts: u64,
    pub ifOutErrors: u64,
    pub ifOutDiscards: u64,
    pub ifHCInUcastOctets: u64,
    pub ifHCInMulticastOctets: u64,
    pub ifHCInBroadcastOctets: u64,
    pub ifHCOutUcastOctets: u64,
    pub ifHCOutMulticastOctets: u64,
    pub ifHCOutBroadcastOctets: u64,
}
assert_layout!(NDIS_STATISTICS_INFO, size 0x98,
    Header @ 0x00, SupportedStatistics @ 0x04, ifInDiscards @ 0x08, ifInErrors @ 0x10,
    ifHCInOctets @ 0x18, ifHCInUcastPkts @ 0x20, ifHCInMulticastPkts @ 0x28,
    ifHCInBroadcastPkts @ 0x30, ifHCOutOctets @ 0x38, ifHCOutUcastPkts @ 0x40,
    ifHCOutMulticastPkts @ 0x48, ifHCOutBroadcastPkts @ 0x50, ifOutErrors @ 0x58,
    ifOutDiscards @ 0x60, ifHCInUcastOctets @ 0x68, ifHCInMulticastOctets @ 0x70,
    ifHCInBroadcastOctets @ 0x78, ifHCOutUcastOctets @ 0x80, ifHCOutMulticastOctets @ 0x88,
    ifHCOutBroadcastOctets @ 0x90);
pub const NDIS_STATISTICS_INFO_REVISION_1: u8 = 1;
pub const NDIS_SIZEOF_STATISTICS_INFO_REVISION_1: usize = 0x98;

/// `NDIS_RECEIVE_SCALE_CAPABILITIES` (revision 2, NDIS 6.30: adds
/// `NumberOfIndirectionTableEntries`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NDIS_RECEIVE_SCALE_CAPABILITIES {
    pub Header: NDIS_OBJECT_HEADER,
    pub CapabilitiesFlags: u32,
    pub NumberOfInterruptMessages: u32,
    pub NumberOfReceiveQueues: u32,
    pub NumberOfIndirectionTableEntries: u16,
}
assert_layout!(NDIS_RECEIVE_SCALE_CAPABILITIES, size 0x14,
    Header @ 0x00, CapabilitiesFlags @ 0x04, NumberOfInterruptMessages @ 0x08,
    NumberOfReceiveQueues @ 0x0c, NumberOfIndirectionTableEntries @ 0x10);
pub const NDIS_RECEIVE_SCALE_CAPABILITIES_REVISION_2: u8 = 2;
/// Through `NumberOfIndirectionTableEntries`.
pub const NDIS_SIZEOF_RECEIVE_SCALE_CAPABILITIES_REVISION_2: usize = 0x12;

/// `NDIS_RECEIVE_SCALE_PARAMETERS` (revision 2): the indirection table, hash key and
/// processor masks follow at the given offsets from the start of the structure.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NDIS_RECEIVE_SCALE_PARAMETERS {
    pub Header: NDIS_OBJECT_HEADER,
    pub Flags: u16,
    pub BaseCpuNumber: u16,
    pub HashInformation: u32,
    pub IndirectionTableSize: u16,
    pub IndirectionTableOffset: u32,
    pub HashSecretKeySize: u16,
    pub HashSecretKeyOffset: u32,
    pub ProcessorMasksOffset: u32,
    pub NumberOfProcessorMasks: u32,
    pub ProcessorMasksEntrySize: u32,
}
assert_layout!(NDIS_RECEIVE_SCALE_PARAMETERS, size 0x28,
    Header @ 0x00, Flags @ 0x04, BaseCpuNumber @ 0x06, HashInformation @ 0x08,
    IndirectionTableSize @ 0x0c, IndirectionTableOffset @ 0x10, HashSecretKeySize @ 0x14,
    HashSecretKeyOffset @ 0x18, ProcessorMasksOffset @ 0x1c, NumberOfProcessorMasks @ 0x20,
    ProcessorMasksEntrySize @ 0x24);

/// `NET_BUFFER_LIST_POOL_PARAMETERS` (revision 1).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NET_BUFFER_LIST_POOL_PARAMETERS {
    pub Header: NDIS_OBJECT_HEADER,
    pub ProtocolId: u8,
    pub fAllocateNetBuffer: u8,
    pub ContextSize: u16,
    pub PoolTag: u32,
    pub DataSize: u32,
}
assert_layout!(NET_BUFFER_LIST_POOL_PARAMETERS, size 0x10,
    Header @ 0, ProtocolId @ 4, fAllocateNetBuffer @ 5, ContextSize @ 6, PoolTag @ 8,
    DataSize @ 0x0c);
pub const NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1: u8 = 1;
pub const NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1: usize = 0x10;
/// `NDIS_PROTOCOL_ID_DEFAULT`.
pub const NDIS_PROTOCOL_ID_DEFAULT: u8 = 0;

/// `NDIS_CONFIGURATION_OBJECT` (for `NdisOpenConfigurationEx`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NDIS_CONFIGURATION_OBJECT {
    pub Header: NDIS_OBJECT_HEADER,
    pub NdisHandle: NDIS_HANDLE,
    pub Flags: u32,
}
assert_layout!(NDIS_CONFIGURATION_OBJECT, size 0x18, Header @ 0, NdisHandle @ 8, Flags @ 0x10);
pub const NDIS_CONFIGURATION_OBJECT_REVISION_1: u8 = 1;
pub const NDIS_SIZEOF_CONFIGURATION_OBJECT_REVISION_1: usize = 0x18;

/// `NDIS_PARAMETER_TYPE` values.
pub const NdisParameterInteger: i32 = 0;
pub const NdisParameterHexInteger: i32 = 1;
pub const NdisParameterString: i32 = 2;
pub const NdisParameterMultiString: i32 = 3;
pub const NdisParameterBinary: i32 = 4;

/// `NDIS_CONFIGURATION_PARAMETER`: `ParameterData` is a union of `ULONG IntegerData`,
/// `NDIS_STRING StringData` and `BINARY_DATA BinaryData` (16 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NDIS_CONFIGURATION_PARAMETER {
    pub ParameterType: i32,
    pub ParameterData: [u64; 2],
}
assert_layout!(NDIS_CONFIGURATION_PARAMETER, size 0x18, ParameterType @ 0, ParameterData @ 8);

/// Interrupt handler signatures of [`NDIS_MINIPORT_INTERRUPT_CHARACTERISTICS`].
pub type MINIPORT_ISR_HANDLER = Option<
    unsafe extern "system" fn(
        interrupt_context: NDIS_HANDLE,
        queue_default_interrupt_dpc: *mut u8,
        target_processors: *mut u32,
    ) -> u8,
>;
pub type MINIPORT_INTERRUPT_DPC_HANDLER = Option<
    unsafe extern "system" fn(
        interrupt_context: NDIS_HANDLE,
        dpc_context: *mut c_void,
        reserved1: *mut c_void,
        reserved2: *mut c_void,
    ),
>;
pub type MINIPORT_DISABLE_INTERRUPT_HANDLER =
    Option<unsafe extern "system" fn(interrupt_context: NDIS_HANDLE)>;

/// `NDIS_MINIPORT_INTERRUPT_CHARACTERISTICS` (revision 1).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NDIS_MINIPORT_INTERRUPT_CHARACTERISTICS {
    pub Header: NDIS_OBJECT_HEADER,
    pub InterruptHandler: MINIPORT_ISR_HANDLER,
    pub InterruptDpcHandler: MINIPORT_INTERRUPT_DPC_HANDLER,
    pub DisableInterruptHandler: MINIPORT_DISABLE_INTERRUPT_HANDLER,
    pub EnableInterruptHandler: MINIPORT_DISABLE_INTERRUPT_HANDLER,
    pub MsiSupported: u8,
    pub MsiSyncWithAllMessages: u8,
    pub MessageInterruptHandler: *mut c_void,
    pub MessageInterruptDpcHandler: *mut c_void,
    pub DisableMessageInterruptHandler: *mut c_void,
    pub EnableMessageInterruptHandler: *mut c_void,
    /// `NDIS_MINIPORT_INTERRUPT_TYPE` (out).
    pub InterruptType: i32,
    pub MessageInfoTable: *mut c_void,
}
assert_layout!(NDIS_MINIPORT_INTERRUPT_CHARACTERISTICS, size 0x60,
    Header @ 0x00, InterruptHandler @ 0x08, InterruptDpcHandler @ 0x10,
    DisableInterruptHandler @ 0x18, EnableInterruptHandler @ 0x20, MsiSupported @ 0x28,
    MsiSyncWithAllMessages @ 0x29, MessageInterruptHandler @ 0x30,
    MessageInterruptDpcHandler @ 0x38, DisableMessageInterruptHandler @ 0x40,
    EnableMessageInterruptHandler @ 0x48, InterruptType @ 0x50, MessageInfoTable @ 0x58);
pub const NDIS_MINIPORT_INTERRUPT_REVISION_1: u8 = 1;
pub const NDIS_SIZEOF_MINIPORT_INTERRUPT_CHARACTERISTICS_REVISION_1: usize = 0x60;
