//! The rows the C probe (`tests/c_probe.rs`) checks: for each structure mingw-w64's headers
//! also define, its size and every field offset, and the constants those headers define, each
//! as the C expression and our value. Generated from this crate's declarations; kept in the
//! crate (not in the test) so that the README's list of probed structures and the probe cannot
//! drift apart.

use core::mem::{offset_of, size_of};

use crate::{ndis, ndis_offload, srb, storport};

macro_rules! row {
    ($c_expr:literal, $value:expr) => {
        LayoutRow {
            c_expr: $c_expr,
            value: $value,
        }
    };
}

/// One checked value: the C expression (evaluated by clang against mingw-w64's headers) and
/// ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayoutRow {
    /// A C constant expression.
    pub c_expr: &'static str,
    /// Our value.
    pub value: u64,
}

/// The C text before the assertions of [`SRB_ROWS`]: mingw-w64's kernel headers.
pub const SRB_PRELUDE: &str = "#include <ntddk.h>\n#include <srb.h>\n#include <scsi.h>\n";

/// `SCSI_REQUEST_BLOCK`, `SENSE_DATA`, scsiport's `PORT_CONFIGURATION_INFORMATION` prefix,
/// `ACCESS_RANGE`, and the SRB, adapter-control and notification values.
#[rustfmt::skip]
pub const SRB_ROWS: &[LayoutRow] = &[
    row!("sizeof(SCSI_REQUEST_BLOCK)", size_of::<srb::SCSI_REQUEST_BLOCK>() as u64),
    row!("offsetof(SCSI_REQUEST_BLOCK, Length)", offset_of!(srb::SCSI_REQUEST_BLOCK, Length) as u64),
    row!("offsetof(SCSI_REQUEST_BLOCK, Function)", offset_of!(srb::SCSI_REQUEST_BLOCK, Function) as u64),
    row!("offsetof(SCSI_REQUEST_BLOCK, SrbStatus)", offset_of!(srb::SCSI_REQUEST_BLOCK, SrbStatus) as u64),
    row!("offsetof(SCSI_REQUEST_BLOCK, ScsiStatus)", offset_of!(srb::SCSI_REQUEST_BLOCK, ScsiStatus) as u64),
    row!("offsetof(SCSI_REQUEST_BLOCK, PathId)", offset_of!(srb::SCSI_REQUEST_BLOCK, PathId) as u64),
    row!("offsetof(SCSI_REQUEST_BLOCK, TargetId)", offset_of!(srb::SCSI_REQUEST_BLOCK, TargetId) as u64),
    row!("offsetof(SCSI_REQUEST_BLOCK, Lun)", offset_of!(srb::SCSI_REQUEST_BLOCK, Lun) as u64),
    row!("offsetof(SCSI_REQUEST_BLOCK, QueueTag)", offset_of!(srb::SCSI_REQUEST_BLOCK, QueueTag) as u64),
    row!("offsetof(SCSI_REQUEST_BLOCK, QueueAction)", offset_of!(srb::SCSI_REQUEST_BLOCK, QueueAction) as u64),
    row!("offsetof(SCSI_REQUEST_BLOCK, CdbLength)", offset_of!(srb::SCSI_REQUEST_BLOCK, CdbLength) as u64),
    row!("offsetof(SCSI_REQUEST_BLOCK, SenseInfoBufferLength)", offset_of!(srb::SCSI_REQUEST_BLOCK, SenseInfoBufferLength) as u64),
    row!("offsetof(SCSI_REQUEST_BLOCK, SrbFlags)", offset_of!(srb::SCSI_REQUEST_BLOCK, SrbFlags) as u64),
    row!("offsetof(SCSI_REQUEST_BLOCK, DataTransferLength)", offset_of!(srb::SCSI_REQUEST_BLOCK, DataTransferLength) as u64),
    row!("offsetof(SCSI_REQUEST_BLOCK, TimeOutValue)", offset_of!(srb::SCSI_REQUEST_BLOCK, TimeOutValue) as u64),
    row!("offsetof(SCSI_REQUEST_BLOCK, DataBuffer)", offset_of!(srb::SCSI_REQUEST_BLOCK, DataBuffer) as u64),
    row!("offsetof(SCSI_REQUEST_BLOCK, SenseInfoBuffer)", offset_of!(srb::SCSI_REQUEST_BLOCK, SenseInfoBuffer) as u64),
    row!("offsetof(SCSI_REQUEST_BLOCK, NextSrb)", offset_of!(srb::SCSI_REQUEST_BLOCK, NextSrb) as u64),
    row!("offsetof(SCSI_REQUEST_BLOCK, OriginalRequest)", offset_of!(srb::SCSI_REQUEST_BLOCK, OriginalRequest) as u64),
    row!("offsetof(SCSI_REQUEST_BLOCK, SrbExtension)", offset_of!(srb::SCSI_REQUEST_BLOCK, SrbExtension) as u64),
    row!("offsetof(SCSI_REQUEST_BLOCK, InternalStatus)", offset_of!(srb::SCSI_REQUEST_BLOCK, InternalStatus) as u64),
    row!("offsetof(SCSI_REQUEST_BLOCK, Reserved)", offset_of!(srb::SCSI_REQUEST_BLOCK, Reserved) as u64),
    row!("offsetof(SCSI_REQUEST_BLOCK, Cdb)", offset_of!(srb::SCSI_REQUEST_BLOCK, Cdb) as u64),
    row!("sizeof(SENSE_DATA)", size_of::<srb::SENSE_DATA>() as u64),
    row!("offsetof(SENSE_DATA, SegmentNumber)", offset_of!(srb::SENSE_DATA, SegmentNumber) as u64),
    row!("offsetof(SENSE_DATA, Information)", offset_of!(srb::SENSE_DATA, Information) as u64),
    row!("offsetof(SENSE_DATA, AdditionalSenseLength)", offset_of!(srb::SENSE_DATA, AdditionalSenseLength) as u64),
    row!("offsetof(SENSE_DATA, CommandSpecificInformation)", offset_of!(srb::SENSE_DATA, CommandSpecificInformation) as u64),
    row!("offsetof(SENSE_DATA, AdditionalSenseCode)", offset_of!(srb::SENSE_DATA, AdditionalSenseCode) as u64),
    row!("offsetof(SENSE_DATA, AdditionalSenseCodeQualifier)", offset_of!(srb::SENSE_DATA, AdditionalSenseCodeQualifier) as u64),
    row!("offsetof(SENSE_DATA, FieldReplaceableUnitCode)", offset_of!(srb::SENSE_DATA, FieldReplaceableUnitCode) as u64),
    row!("offsetof(SENSE_DATA, SenseKeySpecific)", offset_of!(srb::SENSE_DATA, SenseKeySpecific) as u64),
    row!("offsetof(PORT_CONFIGURATION_INFORMATION, Length)", offset_of!(storport::PORT_CONFIGURATION_INFORMATION, Length) as u64),
    row!("offsetof(PORT_CONFIGURATION_INFORMATION, SystemIoBusNumber)", offset_of!(storport::PORT_CONFIGURATION_INFORMATION, SystemIoBusNumber) as u64),
    row!(
        "offsetof(PORT_CONFIGURATION_INFORMATION, AdapterInterfaceType)",
        offset_of!(
            storport::PORT_CONFIGURATION_INFORMATION,
            AdapterInterfaceType
        ) as u64
    ),
    row!("offsetof(PORT_CONFIGURATION_INFORMATION, BusInterruptLevel)", offset_of!(storport::PORT_CONFIGURATION_INFORMATION, BusInterruptLevel) as u64),
    row!("offsetof(PORT_CONFIGURATION_INFORMATION, BusInterruptVector)", offset_of!(storport::PORT_CONFIGURATION_INFORMATION, BusInterruptVector) as u64),
    row!("offsetof(PORT_CONFIGURATION_INFORMATION, InterruptMode)", offset_of!(storport::PORT_CONFIGURATION_INFORMATION, InterruptMode) as u64),
    row!(
        "offsetof(PORT_CONFIGURATION_INFORMATION, MaximumTransferLength)",
        offset_of!(
            storport::PORT_CONFIGURATION_INFORMATION,
            MaximumTransferLength
        ) as u64
    ),
    row!(
        "offsetof(PORT_CONFIGURATION_INFORMATION, NumberOfPhysicalBreaks)",
        offset_of!(
            storport::PORT_CONFIGURATION_INFORMATION,
            NumberOfPhysicalBreaks
        ) as u64
    ),
    row!("offsetof(PORT_CONFIGURATION_INFORMATION, DmaChannel)", offset_of!(storport::PORT_CONFIGURATION_INFORMATION, DmaChannel) as u64),
    row!("offsetof(PORT_CONFIGURATION_INFORMATION, DmaPort)", offset_of!(storport::PORT_CONFIGURATION_INFORMATION, DmaPort) as u64),
    row!("offsetof(PORT_CONFIGURATION_INFORMATION, DmaWidth)", offset_of!(storport::PORT_CONFIGURATION_INFORMATION, DmaWidth) as u64),
    row!("offsetof(PORT_CONFIGURATION_INFORMATION, DmaSpeed)", offset_of!(storport::PORT_CONFIGURATION_INFORMATION, DmaSpeed) as u64),
    row!("offsetof(PORT_CONFIGURATION_INFORMATION, AlignmentMask)", offset_of!(storport::PORT_CONFIGURATION_INFORMATION, AlignmentMask) as u64),
    row!(
        "offsetof(PORT_CONFIGURATION_INFORMATION, NumberOfAccessRanges)",
        offset_of!(
            storport::PORT_CONFIGURATION_INFORMATION,
            NumberOfAccessRanges
        ) as u64
    ),
    row!("offsetof(PORT_CONFIGURATION_INFORMATION, AccessRanges)", offset_of!(storport::PORT_CONFIGURATION_INFORMATION, AccessRanges) as u64),
    row!("offsetof(PORT_CONFIGURATION_INFORMATION, Reserved)", offset_of!(storport::PORT_CONFIGURATION_INFORMATION, MiniportDumpData) as u64),
    row!("offsetof(PORT_CONFIGURATION_INFORMATION, NumberOfBuses)", offset_of!(storport::PORT_CONFIGURATION_INFORMATION, NumberOfBuses) as u64),
    row!("offsetof(PORT_CONFIGURATION_INFORMATION, InitiatorBusId)", offset_of!(storport::PORT_CONFIGURATION_INFORMATION, InitiatorBusId) as u64),
    row!("offsetof(PORT_CONFIGURATION_INFORMATION, ScatterGather)", offset_of!(storport::PORT_CONFIGURATION_INFORMATION, ScatterGather) as u64),
    row!("offsetof(PORT_CONFIGURATION_INFORMATION, Master)", offset_of!(storport::PORT_CONFIGURATION_INFORMATION, Master) as u64),
    row!("offsetof(PORT_CONFIGURATION_INFORMATION, CachesData)", offset_of!(storport::PORT_CONFIGURATION_INFORMATION, CachesData) as u64),
    row!("offsetof(PORT_CONFIGURATION_INFORMATION, AdapterScansDown)", offset_of!(storport::PORT_CONFIGURATION_INFORMATION, AdapterScansDown) as u64),
    row!(
        "offsetof(PORT_CONFIGURATION_INFORMATION, AtdiskPrimaryClaimed)",
        offset_of!(
            storport::PORT_CONFIGURATION_INFORMATION,
            AtdiskPrimaryClaimed
        ) as u64
    ),
    row!(
        "offsetof(PORT_CONFIGURATION_INFORMATION, AtdiskSecondaryClaimed)",
        offset_of!(
            storport::PORT_CONFIGURATION_INFORMATION,
            AtdiskSecondaryClaimed
        ) as u64
    ),
    row!("offsetof(PORT_CONFIGURATION_INFORMATION, Dma32BitAddresses)", offset_of!(storport::PORT_CONFIGURATION_INFORMATION, Dma32BitAddresses) as u64),
    row!("offsetof(PORT_CONFIGURATION_INFORMATION, DemandMode)", offset_of!(storport::PORT_CONFIGURATION_INFORMATION, DemandMode) as u64),
    row!("offsetof(PORT_CONFIGURATION_INFORMATION, MapBuffers)", offset_of!(storport::PORT_CONFIGURATION_INFORMATION, MapBuffers) as u64),
    row!(
        "offsetof(PORT_CONFIGURATION_INFORMATION, NeedPhysicalAddresses)",
        offset_of!(
            storport::PORT_CONFIGURATION_INFORMATION,
            NeedPhysicalAddresses
        ) as u64
    ),
    row!("offsetof(PORT_CONFIGURATION_INFORMATION, TaggedQueuing)", offset_of!(storport::PORT_CONFIGURATION_INFORMATION, TaggedQueuing) as u64),
    row!("offsetof(PORT_CONFIGURATION_INFORMATION, AutoRequestSense)", offset_of!(storport::PORT_CONFIGURATION_INFORMATION, AutoRequestSense) as u64),
    row!(
        "offsetof(PORT_CONFIGURATION_INFORMATION, MultipleRequestPerLu)",
        offset_of!(
            storport::PORT_CONFIGURATION_INFORMATION,
            MultipleRequestPerLu
        ) as u64
    ),
    row!("offsetof(PORT_CONFIGURATION_INFORMATION, ReceiveEvent)", offset_of!(storport::PORT_CONFIGURATION_INFORMATION, ReceiveEvent) as u64),
    row!(
        "offsetof(PORT_CONFIGURATION_INFORMATION, RealModeInitialized)",
        offset_of!(
            storport::PORT_CONFIGURATION_INFORMATION,
            RealModeInitialized
        ) as u64
    ),
    row!(
        "offsetof(PORT_CONFIGURATION_INFORMATION, BufferAccessScsiPortControlled)",
        offset_of!(
            storport::PORT_CONFIGURATION_INFORMATION,
            BufferAccessScsiPortControlled
        ) as u64
    ),
    row!(
        "offsetof(PORT_CONFIGURATION_INFORMATION, MaximumNumberOfTargets)",
        offset_of!(
            storport::PORT_CONFIGURATION_INFORMATION,
            MaximumNumberOfTargets
        ) as u64
    ),
    row!("offsetof(PORT_CONFIGURATION_INFORMATION, ReservedUchars)", offset_of!(storport::PORT_CONFIGURATION_INFORMATION, ReservedUchars) as u64),
    row!("offsetof(PORT_CONFIGURATION_INFORMATION, SlotNumber)", offset_of!(storport::PORT_CONFIGURATION_INFORMATION, SlotNumber) as u64),
    row!("offsetof(PORT_CONFIGURATION_INFORMATION, BusInterruptLevel2)", offset_of!(storport::PORT_CONFIGURATION_INFORMATION, BusInterruptLevel2) as u64),
    row!(
        "offsetof(PORT_CONFIGURATION_INFORMATION, BusInterruptVector2)",
        offset_of!(
            storport::PORT_CONFIGURATION_INFORMATION,
            BusInterruptVector2
        ) as u64
    ),
    row!("offsetof(PORT_CONFIGURATION_INFORMATION, InterruptMode2)", offset_of!(storport::PORT_CONFIGURATION_INFORMATION, InterruptMode2) as u64),
    row!("offsetof(PORT_CONFIGURATION_INFORMATION, DmaChannel2)", offset_of!(storport::PORT_CONFIGURATION_INFORMATION, DmaChannel2) as u64),
    row!("offsetof(PORT_CONFIGURATION_INFORMATION, DmaPort2)", offset_of!(storport::PORT_CONFIGURATION_INFORMATION, DmaPort2) as u64),
    row!("offsetof(PORT_CONFIGURATION_INFORMATION, DmaWidth2)", offset_of!(storport::PORT_CONFIGURATION_INFORMATION, DmaWidth2) as u64),
    row!("offsetof(PORT_CONFIGURATION_INFORMATION, DmaSpeed2)", offset_of!(storport::PORT_CONFIGURATION_INFORMATION, DmaSpeed2) as u64),
    row!(
        "offsetof(PORT_CONFIGURATION_INFORMATION, DeviceExtensionSize)",
        offset_of!(
            storport::PORT_CONFIGURATION_INFORMATION,
            DeviceExtensionSize
        ) as u64
    ),
    row!(
        "offsetof(PORT_CONFIGURATION_INFORMATION, SpecificLuExtensionSize)",
        offset_of!(
            storport::PORT_CONFIGURATION_INFORMATION,
            SpecificLuExtensionSize
        ) as u64
    ),
    row!("offsetof(PORT_CONFIGURATION_INFORMATION, SrbExtensionSize)", offset_of!(storport::PORT_CONFIGURATION_INFORMATION, SrbExtensionSize) as u64),
    row!("offsetof(PORT_CONFIGURATION_INFORMATION, Dma64BitAddresses)", offset_of!(storport::PORT_CONFIGURATION_INFORMATION, Dma64BitAddresses) as u64),
    row!(
        "offsetof(PORT_CONFIGURATION_INFORMATION, ResetTargetSupported)",
        offset_of!(
            storport::PORT_CONFIGURATION_INFORMATION,
            ResetTargetSupported
        ) as u64
    ),
    row!(
        "offsetof(PORT_CONFIGURATION_INFORMATION, MaximumNumberOfLogicalUnits)",
        offset_of!(
            storport::PORT_CONFIGURATION_INFORMATION,
            MaximumNumberOfLogicalUnits
        ) as u64
    ),
    row!("offsetof(PORT_CONFIGURATION_INFORMATION, WmiDataProvider)", offset_of!(storport::PORT_CONFIGURATION_INFORMATION, WmiDataProvider) as u64),
    row!("sizeof(ACCESS_RANGE)", size_of::<storport::ACCESS_RANGE>() as u64),
    row!("offsetof(ACCESS_RANGE, RangeStart)", offset_of!(storport::ACCESS_RANGE, RangeStart) as u64),
    row!("offsetof(ACCESS_RANGE, RangeLength)", offset_of!(storport::ACCESS_RANGE, RangeLength) as u64),
    row!("offsetof(ACCESS_RANGE, RangeInMemory)", offset_of!(storport::ACCESS_RANGE, RangeInMemory) as u64),
    row!("ScsiQuerySupportedControlTypes", storport::adapter_control::ScsiQuerySupportedControlTypes as u64),
    row!("ScsiStopAdapter", storport::adapter_control::ScsiStopAdapter as u64),
    row!("ScsiRestartAdapter", storport::adapter_control::ScsiRestartAdapter as u64),
    row!("ScsiSetBootConfig", storport::adapter_control::ScsiSetBootConfig as u64),
    row!("ScsiSetRunningConfig", storport::adapter_control::ScsiSetRunningConfig as u64),
    row!("ScsiAdapterControlSuccess", storport::adapter_control::ScsiAdapterControlSuccess as u64),
    row!("ScsiAdapterControlUnsuccessful", storport::adapter_control::ScsiAdapterControlUnsuccessful as u64),
    row!("RequestComplete", storport::notification::RequestComplete as u64),
    row!("NextRequest", storport::notification::NextRequest as u64),
    row!("NextLuRequest", storport::notification::NextLuRequest as u64),
    row!("ResetDetected", storport::notification::ResetDetected as u64),
    row!("RequestTimerCall", storport::notification::RequestTimerCall as u64),
    row!("BusChangeDetected", storport::notification::BusChangeDetected as u64),
    row!("WMIEvent", storport::notification::WMIEvent as u64),
    row!("WMIReregister", storport::notification::WMIReregister as u64),
    row!("LinkUp", storport::notification::LinkUp as u64),
    row!("LinkDown", storport::notification::LinkDown as u64),
    row!("QueryTickCount", storport::notification::QueryTickCount as u64),
    row!("BufferOverrunDetected", storport::notification::BufferOverrunDetected as u64),
    row!("TraceNotification", storport::notification::TraceNotification as u64),
    row!("SRB_FUNCTION_EXECUTE_SCSI", srb::SRB_FUNCTION_EXECUTE_SCSI as u64),
    row!("SRB_FUNCTION_IO_CONTROL", srb::SRB_FUNCTION_IO_CONTROL as u64),
    row!("SRB_FUNCTION_RECEIVE_EVENT", srb::SRB_FUNCTION_RECEIVE_EVENT as u64),
    row!("SRB_FUNCTION_SHUTDOWN", srb::SRB_FUNCTION_SHUTDOWN as u64),
    row!("SRB_FUNCTION_FLUSH", srb::SRB_FUNCTION_FLUSH as u64),
    row!("SRB_FUNCTION_ABORT_COMMAND", srb::SRB_FUNCTION_ABORT_COMMAND as u64),
    row!("SRB_FUNCTION_RELEASE_RECOVERY", srb::SRB_FUNCTION_RELEASE_RECOVERY as u64),
    row!("SRB_FUNCTION_RESET_BUS", srb::SRB_FUNCTION_RESET_BUS as u64),
    row!("SRB_FUNCTION_RESET_DEVICE", srb::SRB_FUNCTION_RESET_DEVICE as u64),
    row!("SRB_FUNCTION_TERMINATE_IO", srb::SRB_FUNCTION_TERMINATE_IO as u64),
    row!("SRB_FUNCTION_FLUSH_QUEUE", srb::SRB_FUNCTION_FLUSH_QUEUE as u64),
    row!("SRB_FUNCTION_REMOVE_DEVICE", srb::SRB_FUNCTION_REMOVE_DEVICE as u64),
    row!("SRB_FUNCTION_WMI", srb::SRB_FUNCTION_WMI as u64),
    row!("SRB_FUNCTION_LOCK_QUEUE", srb::SRB_FUNCTION_LOCK_QUEUE as u64),
    row!("SRB_FUNCTION_UNLOCK_QUEUE", srb::SRB_FUNCTION_UNLOCK_QUEUE as u64),
    row!("SRB_FUNCTION_RESET_LOGICAL_UNIT", srb::SRB_FUNCTION_RESET_LOGICAL_UNIT as u64),
    row!("SRB_FUNCTION_SET_LINK_TIMEOUT", srb::SRB_FUNCTION_SET_LINK_TIMEOUT as u64),
    row!("SRB_FUNCTION_LINK_TIMEOUT_OCCURRED", srb::SRB_FUNCTION_LINK_TIMEOUT_OCCURRED as u64),
    row!("SRB_FUNCTION_LINK_TIMEOUT_COMPLETE", srb::SRB_FUNCTION_LINK_TIMEOUT_COMPLETE as u64),
    row!("SRB_FUNCTION_POWER", srb::SRB_FUNCTION_POWER as u64),
    row!("SRB_FUNCTION_PNP", srb::SRB_FUNCTION_PNP as u64),
    row!("SRB_FUNCTION_DUMP_POINTERS", srb::SRB_FUNCTION_DUMP_POINTERS as u64),
    row!("SRB_STATUS_PENDING", srb::SRB_STATUS_PENDING as u64),
    row!("SRB_STATUS_SUCCESS", srb::SRB_STATUS_SUCCESS as u64),
    row!("SRB_STATUS_ABORTED", srb::SRB_STATUS_ABORTED as u64),
    row!("SRB_STATUS_ABORT_FAILED", srb::SRB_STATUS_ABORT_FAILED as u64),
    row!("SRB_STATUS_ERROR", srb::SRB_STATUS_ERROR as u64),
    row!("SRB_STATUS_BUSY", srb::SRB_STATUS_BUSY as u64),
    row!("SRB_STATUS_INVALID_REQUEST", srb::SRB_STATUS_INVALID_REQUEST as u64),
    row!("SRB_STATUS_INVALID_PATH_ID", srb::SRB_STATUS_INVALID_PATH_ID as u64),
    row!("SRB_STATUS_NO_DEVICE", srb::SRB_STATUS_NO_DEVICE as u64),
    row!("SRB_STATUS_TIMEOUT", srb::SRB_STATUS_TIMEOUT as u64),
    row!("SRB_STATUS_SELECTION_TIMEOUT", srb::SRB_STATUS_SELECTION_TIMEOUT as u64),
    row!("SRB_STATUS_COMMAND_TIMEOUT", srb::SRB_STATUS_COMMAND_TIMEOUT as u64),
    row!("SRB_STATUS_BUS_RESET", srb::SRB_STATUS_BUS_RESET as u64),
    row!("SRB_STATUS_DATA_OVERRUN", srb::SRB_STATUS_DATA_OVERRUN as u64),
    row!("SRB_STATUS_BAD_SRB_BLOCK_LENGTH", srb::SRB_STATUS_BAD_SRB_BLOCK_LENGTH as u64),
    row!("SRB_STATUS_REQUEST_FLUSHED", srb::SRB_STATUS_REQUEST_FLUSHED as u64),
    row!("SRB_STATUS_INVALID_LUN", srb::SRB_STATUS_INVALID_LUN as u64),
    row!("SRB_STATUS_INVALID_TARGET_ID", srb::SRB_STATUS_INVALID_TARGET_ID as u64),
    row!("SRB_STATUS_BAD_FUNCTION", srb::SRB_STATUS_BAD_FUNCTION as u64),
    row!("SRB_STATUS_ERROR_RECOVERY", srb::SRB_STATUS_ERROR_RECOVERY as u64),
    row!("SRB_STATUS_NOT_POWERED", srb::SRB_STATUS_NOT_POWERED as u64),
    row!("SRB_STATUS_LINK_DOWN", srb::SRB_STATUS_LINK_DOWN as u64),
    row!("SRB_STATUS_INTERNAL_ERROR", srb::SRB_STATUS_INTERNAL_ERROR as u64),
    row!("SRB_STATUS_QUEUE_FROZEN", srb::SRB_STATUS_QUEUE_FROZEN as u64),
    row!("SRB_STATUS_AUTOSENSE_VALID", srb::SRB_STATUS_AUTOSENSE_VALID as u64),
    row!("SRB_FLAGS_QUEUE_ACTION_ENABLE", srb::SRB_FLAGS_QUEUE_ACTION_ENABLE as u64),
    row!("SRB_FLAGS_DISABLE_DISCONNECT", srb::SRB_FLAGS_DISABLE_DISCONNECT as u64),
    row!("SRB_FLAGS_DISABLE_SYNCH_TRANSFER", srb::SRB_FLAGS_DISABLE_SYNCH_TRANSFER as u64),
    row!("SRB_FLAGS_BYPASS_FROZEN_QUEUE", srb::SRB_FLAGS_BYPASS_FROZEN_QUEUE as u64),
    row!("SRB_FLAGS_DISABLE_AUTOSENSE", srb::SRB_FLAGS_DISABLE_AUTOSENSE as u64),
    row!("SRB_FLAGS_DATA_IN", srb::SRB_FLAGS_DATA_IN as u64),
    row!("SRB_FLAGS_DATA_OUT", srb::SRB_FLAGS_DATA_OUT as u64),
    row!("SRB_FLAGS_NO_DATA_TRANSFER", srb::SRB_FLAGS_NO_DATA_TRANSFER as u64),
    row!("SRB_FLAGS_UNSPECIFIED_DIRECTION", srb::SRB_FLAGS_UNSPECIFIED_DIRECTION as u64),
    row!("SRB_FLAGS_NO_QUEUE_FREEZE", srb::SRB_FLAGS_NO_QUEUE_FREEZE as u64),
    row!("SRB_FLAGS_ADAPTER_CACHE_ENABLE", srb::SRB_FLAGS_ADAPTER_CACHE_ENABLE as u64),
    row!("SRB_FLAGS_FREE_SENSE_BUFFER", srb::SRB_FLAGS_FREE_SENSE_BUFFER as u64),
    row!("SRB_FLAGS_BYPASS_LOCKED_QUEUE", srb::SRB_FLAGS_BYPASS_LOCKED_QUEUE as u64),
    row!("SRB_FLAGS_NO_KEEP_AWAKE", srb::SRB_FLAGS_NO_KEEP_AWAKE as u64),
    row!("SP_RETURN_NOT_FOUND", storport::SP_RETURN_NOT_FOUND as u64),
    row!("SP_RETURN_FOUND", storport::SP_RETURN_FOUND as u64),
    row!("SP_RETURN_ERROR", storport::SP_RETURN_ERROR as u64),
    row!("SP_RETURN_BAD_CONFIG", storport::SP_RETURN_BAD_CONFIG as u64),
];

/// The C text before the assertions of [`NDIS_ROWS`]: `ntddndis.h` is a user-mode header, so
/// it is compiled with the user-mode prelude it needs (`winsock2.h`, `windows.h`, `ntstatus.h`)
/// and `UM_NDIS630` for the NDIS 6.30 declarations.
pub const NDIS_PRELUDE: &str = "#define UM_NDIS630 1\n#define WIN32_NO_STATUS\n#include <winsock2.h>\n#include <windows.h>\n#undef WIN32_NO_STATUS\n#include <ntstatus.h>\n#include <ntddndis.h>\n";

/// `NDIS_OBJECT_HEADER`, `NDIS_STATISTICS_INFO`, `NDIS_LINK_STATE`, the RSS structures,
/// `NDIS_OFFLOAD` (revision 3) and its parts, and the NDIS values `ntddndis.h`/`ntstatus.h`
/// define.
#[rustfmt::skip]
pub const NDIS_ROWS: &[LayoutRow] = &[
    row!("sizeof(NDIS_OBJECT_HEADER)", size_of::<ndis::NDIS_OBJECT_HEADER>() as u64),
    row!("offsetof(NDIS_OBJECT_HEADER, Type)", offset_of!(ndis::NDIS_OBJECT_HEADER, Type) as u64),
    row!("offsetof(NDIS_OBJECT_HEADER, Revision)", offset_of!(ndis::NDIS_OBJECT_HEADER, Revision) as u64),
    row!("offsetof(NDIS_OBJECT_HEADER, Size)", offset_of!(ndis::NDIS_OBJECT_HEADER, Size) as u64),
    row!("sizeof(NDIS_STATISTICS_INFO)", size_of::<ndis::NDIS_STATISTICS_INFO>() as u64),
    row!("offsetof(NDIS_STATISTICS_INFO, Header)", offset_of!(ndis::NDIS_STATISTICS_INFO, Header) as u64),
    row!("offsetof(NDIS_STATISTICS_INFO, SupportedStatistics)", offset_of!(ndis::NDIS_STATISTICS_INFO, SupportedStatistics) as u64),
    row!("offsetof(NDIS_STATISTICS_INFO, ifInDiscards)", offset_of!(ndis::NDIS_STATISTICS_INFO, ifInDiscards) as u64),
    row!("offsetof(NDIS_STATISTICS_INFO, ifInErrors)", offset_of!(ndis::NDIS_STATISTICS_INFO, ifInErrors) as u64),
    row!("offsetof(NDIS_STATISTICS_INFO, ifHCInOctets)", offset_of!(ndis::NDIS_STATISTICS_INFO, ifHCInOctets) as u64),
    row!("offsetof(NDIS_STATISTICS_INFO, ifHCInUcastPkts)", offset_of!(ndis::NDIS_STATISTICS_INFO, ifHCInUcastPkts) as u64),
    row!("offsetof(NDIS_STATISTICS_INFO, ifHCInMulticastPkts)", offset_of!(ndis::NDIS_STATISTICS_INFO, ifHCInMulticastPkts) as u64),
    row!("offsetof(NDIS_STATISTICS_INFO, ifHCInBroadcastPkts)", offset_of!(ndis::NDIS_STATISTICS_INFO, ifHCInBroadcastPkts) as u64),
    row!("offsetof(NDIS_STATISTICS_INFO, ifHCOutOctets)", offset_of!(ndis::NDIS_STATISTICS_INFO, ifHCOutOctets) as u64),
    row!("offsetof(NDIS_STATISTICS_INFO, ifHCOutUcastPkts)", offset_of!(ndis::NDIS_STATISTICS_INFO, ifHCOutUcastPkts) as u64),
    row!("offsetof(NDIS_STATISTICS_INFO, ifHCOutMulticastPkts)", offset_of!(ndis::NDIS_STATISTICS_INFO, ifHCOutMulticastPkts) as u64),
    row!("offsetof(NDIS_STATISTICS_INFO, ifHCOutBroadcastPkts)", offset_of!(ndis::NDIS_STATISTICS_INFO, ifHCOutBroadcastPkts) as u64),
    row!("offsetof(NDIS_STATISTICS_INFO, ifOutErrors)", offset_of!(ndis::NDIS_STATISTICS_INFO, ifOutErrors) as u64),
    row!("offsetof(NDIS_STATISTICS_INFO, ifOutDiscards)", offset_of!(ndis::NDIS_STATISTICS_INFO, ifOutDiscards) as u64),
    row!("offsetof(NDIS_STATISTICS_INFO, ifHCInUcastOctets)", offset_of!(ndis::NDIS_STATISTICS_INFO, ifHCInUcastOctets) as u64),
    row!("offsetof(NDIS_STATISTICS_INFO, ifHCInMulticastOctets)", offset_of!(ndis::NDIS_STATISTICS_INFO, ifHCInMulticastOctets) as u64),
    row!("offsetof(NDIS_STATISTICS_INFO, ifHCInBroadcastOctets)", offset_of!(ndis::NDIS_STATISTICS_INFO, ifHCInBroadcastOctets) as u64),
    row!("offsetof(NDIS_STATISTICS_INFO, ifHCOutUcastOctets)", offset_of!(ndis::NDIS_STATISTICS_INFO, ifHCOutUcastOctets) as u64),
    row!("offsetof(NDIS_STATISTICS_INFO, ifHCOutMulticastOctets)", offset_of!(ndis::NDIS_STATISTICS_INFO, ifHCOutMulticastOctets) as u64),
    row!("offsetof(NDIS_STATISTICS_INFO, ifHCOutBroadcastOctets)", offset_of!(ndis::NDIS_STATISTICS_INFO, ifHCOutBroadcastOctets) as u64),
    row!("NDIS_SIZEOF_STATISTICS_INFO_REVISION_1", ndis::NDIS_SIZEOF_STATISTICS_INFO_REVISION_1 as u64),
    row!("sizeof(NDIS_LINK_STATE)", size_of::<ndis::NDIS_LINK_STATE>() as u64),
    row!("offsetof(NDIS_LINK_STATE, Header)", offset_of!(ndis::NDIS_LINK_STATE, Header) as u64),
    row!("offsetof(NDIS_LINK_STATE, MediaConnectState)", offset_of!(ndis::NDIS_LINK_STATE, MediaConnectState) as u64),
    row!("offsetof(NDIS_LINK_STATE, MediaDuplexState)", offset_of!(ndis::NDIS_LINK_STATE, MediaDuplexState) as u64),
    row!("offsetof(NDIS_LINK_STATE, XmitLinkSpeed)", offset_of!(ndis::NDIS_LINK_STATE, XmitLinkSpeed) as u64),
    row!("offsetof(NDIS_LINK_STATE, RcvLinkSpeed)", offset_of!(ndis::NDIS_LINK_STATE, RcvLinkSpeed) as u64),
    row!("offsetof(NDIS_LINK_STATE, PauseFunctions)", offset_of!(ndis::NDIS_LINK_STATE, PauseFunctions) as u64),
    row!("offsetof(NDIS_LINK_STATE, AutoNegotiationFlags)", offset_of!(ndis::NDIS_LINK_STATE, AutoNegotiationFlags) as u64),
    row!("sizeof(NDIS_RECEIVE_SCALE_CAPABILITIES)", size_of::<ndis::NDIS_RECEIVE_SCALE_CAPABILITIES>() as u64),
    row!("offsetof(NDIS_RECEIVE_SCALE_CAPABILITIES, Header)", offset_of!(ndis::NDIS_RECEIVE_SCALE_CAPABILITIES, Header) as u64),
    row!("offsetof(NDIS_RECEIVE_SCALE_CAPABILITIES, CapabilitiesFlags)", offset_of!(ndis::NDIS_RECEIVE_SCALE_CAPABILITIES, CapabilitiesFlags) as u64),
    row!(
        "offsetof(NDIS_RECEIVE_SCALE_CAPABILITIES, NumberOfInterruptMessages)",
        offset_of!(
            ndis::NDIS_RECEIVE_SCALE_CAPABILITIES,
            NumberOfInterruptMessages
        ) as u64
    ),
    row!("offsetof(NDIS_RECEIVE_SCALE_CAPABILITIES, NumberOfReceiveQueues)", offset_of!(ndis::NDIS_RECEIVE_SCALE_CAPABILITIES, NumberOfReceiveQueues) as u64),
    row!(
        "offsetof(NDIS_RECEIVE_SCALE_CAPABILITIES, NumberOfIndirectionTableEntries)",
        offset_of!(
            ndis::NDIS_RECEIVE_SCALE_CAPABILITIES,
            NumberOfIndirectionTableEntries
        ) as u64
    ),
    row!("NDIS_SIZEOF_RECEIVE_SCALE_CAPABILITIES_REVISION_2", ndis::NDIS_SIZEOF_RECEIVE_SCALE_CAPABILITIES_REVISION_2 as u64),
    row!("NDIS_RECEIVE_SCALE_CAPABILITIES_REVISION_2", ndis::NDIS_RECEIVE_SCALE_CAPABILITIES_REVISION_2 as u64),
    row!("sizeof(NDIS_RECEIVE_SCALE_PARAMETERS)", size_of::<ndis::NDIS_RECEIVE_SCALE_PARAMETERS>() as u64),
    row!("offsetof(NDIS_RECEIVE_SCALE_PARAMETERS, Header)", offset_of!(ndis::NDIS_RECEIVE_SCALE_PARAMETERS, Header) as u64),
    row!("offsetof(NDIS_RECEIVE_SCALE_PARAMETERS, Flags)", offset_of!(ndis::NDIS_RECEIVE_SCALE_PARAMETERS, Flags) as u64),
    row!("offsetof(NDIS_RECEIVE_SCALE_PARAMETERS, BaseCpuNumber)", offset_of!(ndis::NDIS_RECEIVE_SCALE_PARAMETERS, BaseCpuNumber) as u64),
    row!("offsetof(NDIS_RECEIVE_SCALE_PARAMETERS, HashInformation)", offset_of!(ndis::NDIS_RECEIVE_SCALE_PARAMETERS, HashInformation) as u64),
    row!("offsetof(NDIS_RECEIVE_SCALE_PARAMETERS, IndirectionTableSize)", offset_of!(ndis::NDIS_RECEIVE_SCALE_PARAMETERS, IndirectionTableSize) as u64),
    row!("offsetof(NDIS_RECEIVE_SCALE_PARAMETERS, IndirectionTableOffset)", offset_of!(ndis::NDIS_RECEIVE_SCALE_PARAMETERS, IndirectionTableOffset) as u64),
    row!("offsetof(NDIS_RECEIVE_SCALE_PARAMETERS, HashSecretKeySize)", offset_of!(ndis::NDIS_RECEIVE_SCALE_PARAMETERS, HashSecretKeySize) as u64),
    row!("offsetof(NDIS_RECEIVE_SCALE_PARAMETERS, HashSecretKeyOffset)", offset_of!(ndis::NDIS_RECEIVE_SCALE_PARAMETERS, HashSecretKeyOffset) as u64),
    row!("offsetof(NDIS_RECEIVE_SCALE_PARAMETERS, ProcessorMasksOffset)", offset_of!(ndis::NDIS_RECEIVE_SCALE_PARAMETERS, ProcessorMasksOffset) as u64),
    row!("offsetof(NDIS_RECEIVE_SCALE_PARAMETERS, NumberOfProcessorMasks)", offset_of!(ndis::NDIS_RECEIVE_SCALE_PARAMETERS, NumberOfProcessorMasks) as u64),
    row!("offsetof(NDIS_RECEIVE_SCALE_PARAMETERS, ProcessorMasksEntrySize)", offset_of!(ndis::NDIS_RECEIVE_SCALE_PARAMETERS, ProcessorMasksEntrySize) as u64),
    row!("sizeof(NDIS_OFFLOAD)", size_of::<ndis_offload::NDIS_OFFLOAD>() as u64),
    row!("offsetof(NDIS_OFFLOAD, Header)", offset_of!(ndis_offload::NDIS_OFFLOAD, Header) as u64),
    row!("offsetof(NDIS_OFFLOAD, Checksum)", offset_of!(ndis_offload::NDIS_OFFLOAD, Checksum) as u64),
    row!("offsetof(NDIS_OFFLOAD, LsoV1)", offset_of!(ndis_offload::NDIS_OFFLOAD, LsoV1) as u64),
    row!("offsetof(NDIS_OFFLOAD, IPsecV1)", offset_of!(ndis_offload::NDIS_OFFLOAD, IPsecV1) as u64),
    row!("offsetof(NDIS_OFFLOAD, LsoV2)", offset_of!(ndis_offload::NDIS_OFFLOAD, LsoV2) as u64),
    row!("offsetof(NDIS_OFFLOAD, Flags)", offset_of!(ndis_offload::NDIS_OFFLOAD, Flags) as u64),
    row!("offsetof(NDIS_OFFLOAD, IPsecV2)", offset_of!(ndis_offload::NDIS_OFFLOAD, IPsecV2) as u64),
    row!("offsetof(NDIS_OFFLOAD, Rsc)", offset_of!(ndis_offload::NDIS_OFFLOAD, Rsc) as u64),
    row!("offsetof(NDIS_OFFLOAD, EncapsulatedPacketTaskOffloadGre)", offset_of!(ndis_offload::NDIS_OFFLOAD, EncapsulatedPacketTaskOffloadGre) as u64),
    row!("NDIS_SIZEOF_NDIS_OFFLOAD_REVISION_3", ndis_offload::NDIS_SIZEOF_NDIS_OFFLOAD_REVISION_3 as u64),
    row!("NDIS_OFFLOAD_REVISION_3", ndis_offload::NDIS_OFFLOAD_REVISION_3 as u64),
    row!("sizeof(NDIS_TCP_IP_CHECKSUM_OFFLOAD)", size_of::<ndis_offload::NDIS_TCP_IP_CHECKSUM_OFFLOAD>() as u64),
    row!("offsetof(NDIS_TCP_IP_CHECKSUM_OFFLOAD, IPv4Transmit)", offset_of!(ndis_offload::NDIS_TCP_IP_CHECKSUM_OFFLOAD, IPv4Transmit) as u64),
    row!("offsetof(NDIS_TCP_IP_CHECKSUM_OFFLOAD, IPv4Receive)", offset_of!(ndis_offload::NDIS_TCP_IP_CHECKSUM_OFFLOAD, IPv4Receive) as u64),
    row!("offsetof(NDIS_TCP_IP_CHECKSUM_OFFLOAD, IPv6Transmit)", offset_of!(ndis_offload::NDIS_TCP_IP_CHECKSUM_OFFLOAD, IPv6Transmit) as u64),
    row!("offsetof(NDIS_TCP_IP_CHECKSUM_OFFLOAD, IPv6Receive)", offset_of!(ndis_offload::NDIS_TCP_IP_CHECKSUM_OFFLOAD, IPv6Receive) as u64),
    row!("sizeof(NDIS_TCP_LARGE_SEND_OFFLOAD_V1)", size_of::<ndis_offload::NDIS_TCP_LARGE_SEND_OFFLOAD_V1>() as u64),
    row!(
        "offsetof(NDIS_TCP_LARGE_SEND_OFFLOAD_V1, IPv4.MinSegmentCount)",
        offset_of!(
            ndis_offload::NDIS_TCP_LARGE_SEND_OFFLOAD_V1,
            MinSegmentCount
        ) as u64
    ),
    row!("sizeof(NDIS_IPSEC_OFFLOAD_V1)", size_of::<ndis_offload::NDIS_IPSEC_OFFLOAD_V1>() as u64),
    row!("offsetof(NDIS_IPSEC_OFFLOAD_V1, IPv4AH)", offset_of!(ndis_offload::NDIS_IPSEC_OFFLOAD_V1, IPv4AH) as u64),
    row!("offsetof(NDIS_IPSEC_OFFLOAD_V1, IPv4ESP)", offset_of!(ndis_offload::NDIS_IPSEC_OFFLOAD_V1, IPv4ESP) as u64),
    row!("sizeof(NDIS_TCP_LARGE_SEND_OFFLOAD_V2)", size_of::<ndis_offload::NDIS_TCP_LARGE_SEND_OFFLOAD_V2>() as u64),
    row!("offsetof(NDIS_TCP_LARGE_SEND_OFFLOAD_V2, IPv6)", offset_of!(ndis_offload::NDIS_TCP_LARGE_SEND_OFFLOAD_V2, IPv6) as u64),
    row!("sizeof(NDIS_IPSEC_OFFLOAD_V2)", size_of::<ndis_offload::NDIS_IPSEC_OFFLOAD_V2>() as u64),
    row!("offsetof(NDIS_IPSEC_OFFLOAD_V2, IPv6Supported)", offset_of!(ndis_offload::NDIS_IPSEC_OFFLOAD_V2, Booleans) as u64),
    row!("offsetof(NDIS_IPSEC_OFFLOAD_V2, UdpEsp)", offset_of!(ndis_offload::NDIS_IPSEC_OFFLOAD_V2, UdpEsp) as u64),
    row!(
        "offsetof(NDIS_IPSEC_OFFLOAD_V2, AuthenticationAlgorithms)",
        offset_of!(
            ndis_offload::NDIS_IPSEC_OFFLOAD_V2,
            AuthenticationAlgorithms
        ) as u64
    ),
    row!("offsetof(NDIS_IPSEC_OFFLOAD_V2, EncryptionAlgorithms)", offset_of!(ndis_offload::NDIS_IPSEC_OFFLOAD_V2, EncryptionAlgorithms) as u64),
    row!("offsetof(NDIS_IPSEC_OFFLOAD_V2, SaOffloadCapacity)", offset_of!(ndis_offload::NDIS_IPSEC_OFFLOAD_V2, SaOffloadCapacity) as u64),
    row!("sizeof(NDIS_TCP_RECV_SEG_COALESCE_OFFLOAD)", size_of::<ndis_offload::NDIS_TCP_RECV_SEG_COALESCE_OFFLOAD>() as u64),
    row!(
        "offsetof(NDIS_TCP_RECV_SEG_COALESCE_OFFLOAD, IPv6.Enabled)",
        offset_of!(
            ndis_offload::NDIS_TCP_RECV_SEG_COALESCE_OFFLOAD,
            IPv6Enabled
        ) as u64
    ),
    row!("sizeof(NDIS_ENCAPSULATED_PACKET_TASK_OFFLOAD)", size_of::<ndis_offload::NDIS_ENCAPSULATED_PACKET_TASK_OFFLOAD>() as u64),
    row!(
        "offsetof(NDIS_ENCAPSULATED_PACKET_TASK_OFFLOAD, MaxHeaderSizeSupported)",
        offset_of!(
            ndis_offload::NDIS_ENCAPSULATED_PACKET_TASK_OFFLOAD,
            MaxHeaderSizeSupported
        ) as u64
    ),
    row!("NDIS_OBJECT_TYPE_DEFAULT", ndis::NDIS_OBJECT_TYPE_DEFAULT as u64),
    row!("NDIS_OBJECT_TYPE_MINIPORT_INIT_PARAMETERS", ndis::NDIS_OBJECT_TYPE_MINIPORT_INIT_PARAMETERS as u64),
    row!("NDIS_OBJECT_TYPE_MINIPORT_INTERRUPT", ndis::NDIS_OBJECT_TYPE_MINIPORT_INTERRUPT as u64),
    row!("NDIS_OBJECT_TYPE_RSS_CAPABILITIES", ndis::NDIS_OBJECT_TYPE_RSS_CAPABILITIES as u64),
    row!("NDIS_OBJECT_TYPE_RSS_PARAMETERS", ndis::NDIS_OBJECT_TYPE_RSS_PARAMETERS as u64),
    row!("NDIS_OBJECT_TYPE_MINIPORT_DRIVER_CHARACTERISTICS", ndis::NDIS_OBJECT_TYPE_MINIPORT_DRIVER_CHARACTERISTICS as u64),
    row!("NDIS_OBJECT_TYPE_OID_REQUEST", ndis::NDIS_OBJECT_TYPE_OID_REQUEST as u64),
    row!("NDIS_OBJECT_TYPE_STATUS_INDICATION", ndis::NDIS_OBJECT_TYPE_STATUS_INDICATION as u64),
    row!("NDIS_OBJECT_TYPE_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES", ndis::NDIS_OBJECT_TYPE_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES as u64),
    row!("NDIS_OBJECT_TYPE_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES", ndis::NDIS_OBJECT_TYPE_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES as u64),
    row!("NDIS_OBJECT_TYPE_MINIPORT_ADAPTER_OFFLOAD_ATTRIBUTES", ndis::NDIS_OBJECT_TYPE_MINIPORT_ADAPTER_OFFLOAD_ATTRIBUTES as u64),
    row!("NDIS_OBJECT_TYPE_OFFLOAD", ndis::NDIS_OBJECT_TYPE_OFFLOAD as u64),
    row!("NDIS_OBJECT_TYPE_CONFIGURATION_OBJECT", ndis::NDIS_OBJECT_TYPE_CONFIGURATION_OBJECT as u64),
    row!("NDIS_OFFLOAD_NOT_SUPPORTED", ndis_offload::NDIS_OFFLOAD_NOT_SUPPORTED as u64),
    row!("NDIS_OFFLOAD_SUPPORTED", ndis_offload::NDIS_OFFLOAD_SUPPORTED as u64),
    row!("NDIS_ENCAPSULATION_NOT_SUPPORTED", ndis_offload::NDIS_ENCAPSULATION_NOT_SUPPORTED as u64),
    row!("NDIS_ENCAPSULATION_NULL", ndis_offload::NDIS_ENCAPSULATION_NULL as u64),
    row!("NDIS_ENCAPSULATION_IEEE_802_3", ndis_offload::NDIS_ENCAPSULATION_IEEE_802_3 as u64),
    row!("NDIS_ENCAPSULATION_IEEE_802_3_P_AND_Q", ndis_offload::NDIS_ENCAPSULATION_IEEE_802_3_P_AND_Q as u64),
    row!("NDIS_ENCAPSULATION_IEEE_802_3_P_AND_Q_IN_OOB", ndis_offload::NDIS_ENCAPSULATION_IEEE_802_3_P_AND_Q_IN_OOB as u64),
    row!("NDIS_HASH_FUNCTION_MASK", ndis_offload::NDIS_HASH_FUNCTION_MASK as u64),
    row!("NDIS_HASH_TYPE_MASK", ndis_offload::NDIS_HASH_TYPE_MASK as u64),
    row!("NDIS_HASH_IPV4", ndis_offload::NDIS_HASH_IPV4 as u64),
    row!("NDIS_HASH_TCP_IPV4", ndis_offload::NDIS_HASH_TCP_IPV4 as u64),
    row!("NDIS_HASH_IPV6", ndis_offload::NDIS_HASH_IPV6 as u64),
    row!("NDIS_HASH_IPV6_EX", ndis_offload::NDIS_HASH_IPV6_EX as u64),
    row!("NDIS_HASH_TCP_IPV6", ndis_offload::NDIS_HASH_TCP_IPV6 as u64),
    row!("NDIS_HASH_TCP_IPV6_EX", ndis_offload::NDIS_HASH_TCP_IPV6_EX as u64),
    row!("NDIS_RSS_CAPS_MESSAGE_SIGNALED_INTERRUPTS", ndis_offload::NDIS_RSS_CAPS_MESSAGE_SIGNALED_INTERRUPTS as u64),
    row!("NDIS_RSS_CAPS_CLASSIFICATION_AT_ISR", ndis_offload::NDIS_RSS_CAPS_CLASSIFICATION_AT_ISR as u64),
    row!("NDIS_RSS_CAPS_CLASSIFICATION_AT_DPC", ndis_offload::NDIS_RSS_CAPS_CLASSIFICATION_AT_DPC as u64),
    row!("NDIS_RSS_CAPS_HASH_TYPE_TCP_IPV4", ndis_offload::NDIS_RSS_CAPS_HASH_TYPE_TCP_IPV4 as u64),
    row!("NDIS_RSS_CAPS_HASH_TYPE_TCP_IPV6", ndis_offload::NDIS_RSS_CAPS_HASH_TYPE_TCP_IPV6 as u64),
    row!("NDIS_RSS_CAPS_HASH_TYPE_TCP_IPV6_EX", ndis_offload::NDIS_RSS_CAPS_HASH_TYPE_TCP_IPV6_EX as u64),
    row!("NDIS_RSS_PARAM_FLAG_BASE_CPU_UNCHANGED", ndis_offload::NDIS_RSS_PARAM_FLAG_BASE_CPU_UNCHANGED as u64),
    row!("NDIS_RSS_PARAM_FLAG_HASH_INFO_UNCHANGED", ndis_offload::NDIS_RSS_PARAM_FLAG_HASH_INFO_UNCHANGED as u64),
    row!("NDIS_RSS_PARAM_FLAG_ITABLE_UNCHANGED", ndis_offload::NDIS_RSS_PARAM_FLAG_ITABLE_UNCHANGED as u64),
    row!("NDIS_RSS_PARAM_FLAG_HASH_KEY_UNCHANGED", ndis_offload::NDIS_RSS_PARAM_FLAG_HASH_KEY_UNCHANGED as u64),
    row!("NDIS_RSS_PARAM_FLAG_DISABLE_RSS", ndis_offload::NDIS_RSS_PARAM_FLAG_DISABLE_RSS as u64),
    row!("NDIS_RSS_HASH_SECRET_KEY_MAX_SIZE_REVISION_2", ndis_offload::NDIS_RSS_HASH_SECRET_KEY_MAX_SIZE_REVISION_2 as u64),
    row!("MediaConnectStateUnknown", ndis::MediaConnectStateUnknown as u64),
    row!("MediaConnectStateConnected", ndis::MediaConnectStateConnected as u64),
    row!("MediaConnectStateDisconnected", ndis::MediaConnectStateDisconnected as u64),
    row!("MediaDuplexStateFull", ndis::MediaDuplexStateFull as u64),
    row!("(unsigned int)(STATUS_SUCCESS)", ndis::NDIS_STATUS_SUCCESS as u32 as u64),
    row!("(unsigned int)(STATUS_PENDING)", ndis::NDIS_STATUS_PENDING as u32 as u64),
    row!("(unsigned int)(STATUS_UNSUCCESSFUL)", ndis::NDIS_STATUS_FAILURE as u32 as u64),
    row!("(unsigned int)(STATUS_INSUFFICIENT_RESOURCES)", ndis::NDIS_STATUS_RESOURCES as u32 as u64),
    row!("(unsigned int)(STATUS_NOT_SUPPORTED)", ndis::NDIS_STATUS_NOT_SUPPORTED as u32 as u64),
    row!("(unsigned int)(STATUS_INVALID_PARAMETER)", ndis::NDIS_STATUS_INVALID_PARAMETER as u32 as u64),
    row!("(unsigned int)(STATUS_BUFFER_OVERFLOW)", ndis::NDIS_STATUS_BUFFER_OVERFLOW as u32 as u64),
    row!("(unsigned int)(STATUS_NDIS_PAUSED)", ndis::NDIS_STATUS_PAUSED as u32 as u64),
    row!("(unsigned int)(STATUS_NDIS_LOW_POWER_STATE)", ndis::NDIS_STATUS_LOW_POWER_STATE as u32 as u64),
];

/// The C text before the assertions of [`STORPORT_ROWS`] (mingw-w64's `storport.h` redefines
/// `SCSI_WMI_REQUEST_BLOCK` after `srb.h`, an error of the header the probe tolerates by name).
pub const STORPORT_PRELUDE: &str = "#include <ntddk.h>\n#include <storport.h>\n";

/// `STOR_SCATTER_GATHER_LIST` and `STOR_SCATTER_GATHER_ELEMENT`.
#[rustfmt::skip]
pub const STORPORT_ROWS: &[LayoutRow] = &[
    row!("sizeof(STOR_SCATTER_GATHER_LIST)", size_of::<storport::STOR_SCATTER_GATHER_LIST>() as u64),
    row!("offsetof(STOR_SCATTER_GATHER_LIST, NumberOfElements)", offset_of!(storport::STOR_SCATTER_GATHER_LIST, NumberOfElements) as u64),
    row!("offsetof(STOR_SCATTER_GATHER_LIST, Reserved)", offset_of!(storport::STOR_SCATTER_GATHER_LIST, Reserved) as u64),
    row!("offsetof(STOR_SCATTER_GATHER_LIST, List)", offset_of!(storport::STOR_SCATTER_GATHER_LIST, List) as u64),
    row!("sizeof(STOR_SCATTER_GATHER_ELEMENT)", size_of::<storport::STOR_SCATTER_GATHER_ELEMENT>() as u64),
    row!("offsetof(STOR_SCATTER_GATHER_ELEMENT, PhysicalAddress)", offset_of!(storport::STOR_SCATTER_GATHER_ELEMENT, PhysicalAddress) as u64),
    row!("offsetof(STOR_SCATTER_GATHER_ELEMENT, Length)", offset_of!(storport::STOR_SCATTER_GATHER_ELEMENT, Length) as u64),
    row!("offsetof(STOR_SCATTER_GATHER_ELEMENT, Reserved)", offset_of!(storport::STOR_SCATTER_GATHER_ELEMENT, Reserved) as u64),
];
