//! SCSI request blocks: the classic `SCSI_REQUEST_BLOCK`, the extended `STORAGE_REQUEST_BLOCK`
//! with its addresses and extended data blocks, `SENSE_DATA`, and the SRB function, status and
//! flag values (`srb.h`/`storport.h`).
//!
//! StorPort hands a miniport either kind through the same pointer: a pointer to the first bytes
//! is read as [`STORAGE_REQUEST_BLOCK_HEADER`]; when its `Function` is
//! [`SRB_FUNCTION_STORAGE_REQUEST_BLOCK`] the request is extended (its real function is
//! `SrbFunction`), otherwise it is a classic [`SCSI_REQUEST_BLOCK`].

// Field and value names are the headers'; Microsoft documents each of them.
#![allow(missing_docs)]

use core::ffi::c_void;

use crate::assert_layout;

/// `SCSI_REQUEST_BLOCK` (`srb.h`), 0x58 bytes on x64.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SCSI_REQUEST_BLOCK {
    pub Length: u16,
    pub Function: u8,
    pub SrbStatus: u8,
    pub ScsiStatus: u8,
    pub PathId: u8,
    pub TargetId: u8,
    pub Lun: u8,
    pub QueueTag: u8,
    pub QueueAction: u8,
    pub CdbLength: u8,
    pub SenseInfoBufferLength: u8,
    pub SrbFlags: u32,
    pub DataTransferLength: u32,
    pub TimeOutValue: u32,
    pub DataBuffer: *mut c_void,
    pub SenseInfoBuffer: *mut c_void,
    pub NextSrb: *mut SCSI_REQUEST_BLOCK,
    pub OriginalRequest: *mut c_void,
    pub SrbExtension: *mut c_void,
    /// Union of `InternalStatus`, `QueueSortKey` and `LinkTimeoutValue`.
    pub InternalStatus: u32,
    /// Present on 64-bit Windows only.
    pub Reserved: u32,
    pub Cdb: [u8; 16],
}
assert_layout!(SCSI_REQUEST_BLOCK, size 0x58,
    Length @ 0x00, Function @ 0x02, SrbStatus @ 0x03, ScsiStatus @ 0x04, PathId @ 0x05,
    TargetId @ 0x06, Lun @ 0x07, QueueTag @ 0x08, QueueAction @ 0x09, CdbLength @ 0x0a,
    SenseInfoBufferLength @ 0x0b, SrbFlags @ 0x0c, DataTransferLength @ 0x10,
    TimeOutValue @ 0x14, DataBuffer @ 0x18, SenseInfoBuffer @ 0x20, NextSrb @ 0x28,
    OriginalRequest @ 0x30, SrbExtension @ 0x38, InternalStatus @ 0x40, Reserved @ 0x44,
    Cdb @ 0x48);

/// The first bytes common to both SRB kinds (`STORAGE_REQUEST_BLOCK_HEADER`).
#[repr(C, align(8))]
#[derive(Debug, Clone, Copy)]
pub struct STORAGE_REQUEST_BLOCK_HEADER {
    pub Length: u16,
    pub Function: u8,
    pub SrbStatus: u8,
}
assert_layout!(STORAGE_REQUEST_BLOCK_HEADER, size 8, Length @ 0, Function @ 2, SrbStatus @ 3);

/// `STORAGE_REQUEST_BLOCK` (`srb.h`, Windows 8 and later), 0x80 bytes on x64 including the first
/// element of `SrbExDataOffset`. The `STOR_ADDRESS` and the extended data blocks follow at the
/// offsets it names, inside `SrbLength`.
#[repr(C, align(8))]
#[derive(Debug, Clone, Copy)]
pub struct STORAGE_REQUEST_BLOCK {
    pub Length: u16,
    /// [`SRB_FUNCTION_STORAGE_REQUEST_BLOCK`].
    pub Function: u8,
    pub SrbStatus: u8,
    pub ReservedUchar: [u8; 4],
    /// [`SRB_SIGNATURE`].
    pub Signature: u32,
    /// [`STORAGE_REQUEST_BLOCK_VERSION_1`].
    pub Version: u32,
    pub SrbLength: u32,
    pub SrbFunction: u32,
    pub SrbFlags: u32,
    pub ReservedUlong: u32,
    pub RequestTag: u32,
    pub RequestPriority: u16,
    pub RequestAttribute: u16,
    pub TimeOutValue: u32,
    pub SystemStatus: u32,
    pub ZeroGuard1: u32,
    pub AddressOffset: u32,
    pub NumSrbExData: u32,
    pub DataTransferLength: u32,
    pub DataBuffer: *mut c_void,
    pub ZeroGuard2: *mut c_void,
    pub OriginalRequest: *mut c_void,
    pub ClassContext: *mut c_void,
    pub PortContext: *mut c_void,
    pub MiniportContext: *mut c_void,
    pub NextSrb: *mut STORAGE_REQUEST_BLOCK,
    /// The first of `NumSrbExData` offsets (from the start of the SRB) of `SRBEX_DATA` blocks.
    pub SrbExDataOffset: [u32; 1],
}
assert_layout!(STORAGE_REQUEST_BLOCK, size 0x80,
    Length @ 0x00, Function @ 0x02, SrbStatus @ 0x03, ReservedUchar @ 0x04, Signature @ 0x08,
    Version @ 0x0c, SrbLength @ 0x10, SrbFunction @ 0x14, SrbFlags @ 0x18,
    ReservedUlong @ 0x1c, RequestTag @ 0x20, RequestPriority @ 0x24, RequestAttribute @ 0x26,
    TimeOutValue @ 0x28, SystemStatus @ 0x2c, ZeroGuard1 @ 0x30, AddressOffset @ 0x34,
    NumSrbExData @ 0x38, DataTransferLength @ 0x3c, DataBuffer @ 0x40, ZeroGuard2 @ 0x48,
    OriginalRequest @ 0x50, ClassContext @ 0x58, PortContext @ 0x60, MiniportContext @ 0x68,
    NextSrb @ 0x70, SrbExDataOffset @ 0x78);

/// `SRB_SIGNATURE`: `'SRBX'`.
pub const SRB_SIGNATURE: u32 = 0x5352_4258;
/// `STORAGE_REQUEST_BLOCK_VERSION_1`.
pub const STORAGE_REQUEST_BLOCK_VERSION_1: u32 = 1;
/// `SRB_TYPE_FLAG_SCSI_REQUEST_BLOCK`, for `HW_INITIALIZATION_DATA.SrbTypeFlags`: the miniport
/// accepts classic SRBs.
pub const SRB_TYPE_FLAG_SCSI_REQUEST_BLOCK: u32 = 0x1;
/// `SRB_TYPE_FLAG_STORAGE_REQUEST_BLOCK`: the miniport accepts extended SRBs.
pub const SRB_TYPE_FLAG_STORAGE_REQUEST_BLOCK: u32 = 0x2;
/// `ADDRESS_TYPE_FLAG_BTL8`, for `HW_INITIALIZATION_DATA.AddressTypeFlags`.
pub const ADDRESS_TYPE_FLAG_BTL8: u32 = 0x1;

/// `STOR_ADDRESS`: the generic head of every storage address (8-byte aligned on 64-bit).
#[repr(C, align(8))]
#[derive(Debug, Clone, Copy)]
pub struct STOR_ADDRESS {
    pub Type: u16,
    pub Port: u16,
    pub AddressLength: u32,
    pub AddressData: [u8; 1],
}
assert_layout!(STOR_ADDRESS, size 16, Type @ 0, Port @ 2, AddressLength @ 4, AddressData @ 8);

/// `STOR_ADDR_BTL8`: an 8-bit bus/target/LUN address.
#[repr(C, align(8))]
#[derive(Debug, Clone, Copy)]
pub struct STOR_ADDR_BTL8 {
    /// [`STOR_ADDRESS_TYPE_BTL8`].
    pub Type: u16,
    pub Port: u16,
    /// [`STOR_ADDR_BTL8_ADDRESS_LENGTH`].
    pub AddressLength: u32,
    pub Path: u8,
    pub Target: u8,
    pub Lun: u8,
    pub Reserved: u8,
}
assert_layout!(STOR_ADDR_BTL8, size 16,
    Type @ 0, Port @ 2, AddressLength @ 4, Path @ 8, Target @ 9, Lun @ 10, Reserved @ 11);

/// `STOR_ADDRESS_TYPE_UNKNOWN`.
pub const STOR_ADDRESS_TYPE_UNKNOWN: u16 = 0;
/// `STOR_ADDRESS_TYPE_BTL8`.
pub const STOR_ADDRESS_TYPE_BTL8: u16 = 1;
/// `STOR_ADDR_BTL8_ADDRESS_LENGTH`.
pub const STOR_ADDR_BTL8_ADDRESS_LENGTH: u32 = 4;

/// `SRBEXDATATYPE` values.
pub mod srbex_type {
    /// `SrbExDataTypeUnknown`.
    pub const UNKNOWN: u32 = 0;
    /// `SrbExDataTypeBidirectional`.
    pub const BIDIRECTIONAL: u32 = 1;
    /// `SrbExDataTypeScsiCdb16`.
    pub const SCSI_CDB16: u32 = 0x40;
    /// `SrbExDataTypeScsiCdb32`.
    pub const SCSI_CDB32: u32 = 0x41;
    /// `SrbExDataTypeScsiCdbVar`.
    pub const SCSI_CDB_VAR: u32 = 0x42;
    /// `SrbExDataTypeWmi`.
    pub const WMI: u32 = 0x60;
    /// `SrbExDataTypePower`.
    pub const POWER: u32 = 0x61;
    /// `SrbExDataTypePnP`.
    pub const PNP: u32 = 0x62;
    /// `SrbExDataTypeIoInfo`.
    pub const IO_INFO: u32 = 0x80;
}

/// `SRBEX_DATA`: the head of every extended data block.
#[repr(C, align(8))]
#[derive(Debug, Clone, Copy)]
pub struct SRBEX_DATA {
    /// One of [`srbex_type`].
    pub Type: u32,
    /// Bytes after `Length`.
    pub Length: u32,
    pub Data: [u8; 1],
}
assert_layout!(SRBEX_DATA, size 16, Type @ 0, Length @ 4, Data @ 8);

/// `SRBEX_DATA_SCSI_CDB16`.
#[repr(C, align(8))]
#[derive(Debug, Clone, Copy)]
pub struct SRBEX_DATA_SCSI_CDB16 {
    pub Type: u32,
    /// [`SRBEX_DATA_SCSI_CDB16_LENGTH`].
    pub Length: u32,
    pub ScsiStatus: u8,
    pub SenseInfoBufferLength: u8,
    pub CdbLength: u8,
    pub Reserved: u8,
    pub Reserved1: u32,
    pub SenseInfoBuffer: *mut c_void,
    pub Cdb: [u8; 16],
}
assert_layout!(SRBEX_DATA_SCSI_CDB16, size 40,
    Type @ 0, Length @ 4, ScsiStatus @ 8, SenseInfoBufferLength @ 9, CdbLength @ 10,
    Reserved @ 11, Reserved1 @ 12, SenseInfoBuffer @ 16, Cdb @ 24);
/// `SRBEX_DATA_SCSI_CDB16_LENGTH`: 20 bytes + `ULONG` + pointer.
pub const SRBEX_DATA_SCSI_CDB16_LENGTH: u32 = 0x20;

/// `SRBEX_DATA_SCSI_CDB32`.
#[repr(C, align(8))]
#[derive(Debug, Clone, Copy)]
pub struct SRBEX_DATA_SCSI_CDB32 {
    pub Type: u32,
    /// [`SRBEX_DATA_SCSI_CDB32_LENGTH`].
    pub Length: u32,
    pub ScsiStatus: u8,
    pub SenseInfoBufferLength: u8,
    pub CdbLength: u8,
    pub Reserved: u8,
    pub Reserved1: u32,
    pub SenseInfoBuffer: *mut c_void,
    pub Cdb: [u8; 32],
}
assert_layout!(SRBEX_DATA_SCSI_CDB32, size 56,
    Type @ 0, Length @ 4, ScsiStatus @ 8, SenseInfoBufferLength @ 9, CdbLength @ 10,
    Reserved @ 11, Reserved1 @ 12, SenseInfoBuffer @ 16, Cdb @ 24);
/// `SRBEX_DATA_SCSI_CDB32_LENGTH`: 36 bytes + `ULONG` + pointer.
pub const SRBEX_DATA_SCSI_CDB32_LENGTH: u32 = 0x30;

/// `SRBEX_DATA_SCSI_CDB_VAR`: a CDB of `CdbLength` bytes starting at `Cdb`.
#[repr(C, align(8))]
#[derive(Debug, Clone, Copy)]
pub struct SRBEX_DATA_SCSI_CDB_VAR {
    pub Type: u32,
    pub Length: u32,
    pub ScsiStatus: u8,
    pub SenseInfoBufferLength: u8,
    pub Reserved: [u8; 2],
    pub CdbLength: u32,
    pub Reserved1: [u32; 2],
    pub SenseInfoBuffer: *mut c_void,
    pub Cdb: [u8; 1],
}
assert_layout!(SRBEX_DATA_SCSI_CDB_VAR, size 40,
    Type @ 0, Length @ 4, ScsiStatus @ 8, SenseInfoBufferLength @ 9, Reserved @ 10,
    CdbLength @ 12, Reserved1 @ 16, SenseInfoBuffer @ 24, Cdb @ 32);
/// `SRBEX_DATA_SCSI_CDB_VAR_LENGTH_MIN`: 4 bytes + 3 `ULONG`s + pointer.
pub const SRBEX_DATA_SCSI_CDB_VAR_LENGTH_MIN: u32 = 0x18;

/// `SRBEX_DATA_POWER`, with `SRB_FUNCTION_POWER`.
#[repr(C, align(8))]
#[derive(Debug, Clone, Copy)]
pub struct SRBEX_DATA_POWER {
    pub Type: u32,
    /// [`SRBEX_DATA_POWER_LENGTH`].
    pub Length: u32,
    pub SrbPowerFlags: u8,
    pub Reserved: [u8; 3],
    /// `STOR_DEVICE_POWER_STATE` (`StorPowerDeviceD0` = 1 … `StorPowerDeviceD3` = 4).
    pub DevicePowerState: u32,
    /// `STOR_POWER_ACTION` (`StorPowerActionNone` = 0, … `StorPowerActionHibernate` = 3).
    pub PowerAction: u32,
}
assert_layout!(SRBEX_DATA_POWER, size 24,
    Type @ 0, Length @ 4, SrbPowerFlags @ 8, Reserved @ 9, DevicePowerState @ 12,
    PowerAction @ 16);
/// `SRBEX_DATA_POWER_LENGTH`.
pub const SRBEX_DATA_POWER_LENGTH: u32 = 0x0c;

/// `SRBEX_DATA_PNP`, with `SRB_FUNCTION_PNP`.
#[repr(C, align(8))]
#[derive(Debug, Clone, Copy)]
pub struct SRBEX_DATA_PNP {
    pub Type: u32,
    /// [`SRBEX_DATA_PNP_LENGTH`].
    pub Length: u32,
    pub PnPSubFunction: u8,
    pub Reserved: [u8; 3],
    /// `STOR_PNP_ACTION` (see [`stor_pnp_action`]).
    pub PnPAction: u32,
    pub SrbPnPFlags: u32,
    pub Reserved1: u32,
}
assert_layout!(SRBEX_DATA_PNP, size 24,
    Type @ 0, Length @ 4, PnPSubFunction @ 8, Reserved @ 9, PnPAction @ 12, SrbPnPFlags @ 16,
    Reserved1 @ 20);
/// `SRBEX_DATA_PNP_LENGTH`.
pub const SRBEX_DATA_PNP_LENGTH: u32 = 0x10;

/// `STOR_PNP_ACTION` values.
pub mod stor_pnp_action {
    /// `StorStartDevice`.
    pub const START_DEVICE: u32 = 0x0;
    /// `StorRemoveDevice`.
    pub const REMOVE_DEVICE: u32 = 0x2;
    /// `StorStopDevice`.
    pub const STOP_DEVICE: u32 = 0x4;
    /// `StorQueryCapabilities`.
    pub const QUERY_CAPABILITIES: u32 = 0x9;
    /// `StorSurpriseRemoval`.
    pub const SURPRISE_REMOVAL: u32 = 0x17;
}
/// `SRB_PNP_FLAGS_ADAPTER_REQUEST`: the PnP SRB is for the adapter, not a unit.
pub const SRB_PNP_FLAGS_ADAPTER_REQUEST: u32 = 0x1;
/// `SRB_POWER_FLAGS_ADAPTER_REQUEST`.
pub const SRB_POWER_FLAGS_ADAPTER_REQUEST: u8 = 0x1;

/// `SENSE_DATA` (fixed-format sense, `scsi.h`), 18 bytes. The first three bytes hold bit fields:
/// byte 0 = `ErrorCode:7, Valid:1`; byte 2 = `SenseKey:4, Reserved:1, IncorrectLength:1,
/// EndOfMedia:1, FileMark:1`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SENSE_DATA {
    pub ErrorCodeValid: u8,
    pub SegmentNumber: u8,
    pub SenseKeyFlags: u8,
    pub Information: [u8; 4],
    pub AdditionalSenseLength: u8,
    pub CommandSpecificInformation: [u8; 4],
    pub AdditionalSenseCode: u8,
    pub AdditionalSenseCodeQualifier: u8,
    pub FieldReplaceableUnitCode: u8,
    pub SenseKeySpecific: [u8; 3],
}
assert_layout!(SENSE_DATA, size 18,
    ErrorCodeValid @ 0, SegmentNumber @ 1, SenseKeyFlags @ 2, Information @ 3,
    AdditionalSenseLength @ 7, CommandSpecificInformation @ 8, AdditionalSenseCode @ 12,
    AdditionalSenseCodeQualifier @ 13, FieldReplaceableUnitCode @ 14, SenseKeySpecific @ 15);

impl SENSE_DATA {
    /// Current-error fixed-format sense (`SCSI_SENSE_ERRORCODE_FIXED_CURRENT` = 0x70, `Valid`
    /// clear) with the given key, additional sense code and qualifier.
    pub const fn fixed(sense_key: u8, asc: u8, ascq: u8) -> Self {
        SENSE_DATA {
            ErrorCodeValid: 0x70,
            SegmentNumber: 0,
            SenseKeyFlags: sense_key & 0x0f,
            Information: [0; 4],
            // Bytes after this field: 18 - 8.
            AdditionalSenseLength: 10,
            CommandSpecificInformation: [0; 4],
            AdditionalSenseCode: asc,
            AdditionalSenseCodeQualifier: ascq,
            FieldReplaceableUnitCode: 0,
            SenseKeySpecific: [0; 3],
        }
    }

    /// The sense key (low four bits of byte 2).
    pub const fn sense_key(&self) -> u8 {
        self.SenseKeyFlags & 0x0f
    }
}

/// `SRB_FUNCTION_*` values.
pub const SRB_FUNCTION_EXECUTE_SCSI: u8 = 0x00;
pub const SRB_FUNCTION_IO_CONTROL: u8 = 0x02;
pub const SRB_FUNCTION_RECEIVE_EVENT: u8 = 0x03;
pub const SRB_FUNCTION_SHUTDOWN: u8 = 0x07;
pub const SRB_FUNCTION_FLUSH: u8 = 0x08;
pub const SRB_FUNCTION_ABORT_COMMAND: u8 = 0x10;
pub const SRB_FUNCTION_RELEASE_RECOVERY: u8 = 0x11;
pub const SRB_FUNCTION_RESET_BUS: u8 = 0x12;
pub const SRB_FUNCTION_RESET_DEVICE: u8 = 0x13;
pub const SRB_FUNCTION_TERMINATE_IO: u8 = 0x14;
pub const SRB_FUNCTION_FLUSH_QUEUE: u8 = 0x15;
pub const SRB_FUNCTION_REMOVE_DEVICE: u8 = 0x16;
pub const SRB_FUNCTION_WMI: u8 = 0x17;
pub const SRB_FUNCTION_LOCK_QUEUE: u8 = 0x18;
pub const SRB_FUNCTION_UNLOCK_QUEUE: u8 = 0x19;
pub const SRB_FUNCTION_QUIESCE_DEVICE: u8 = 0x1a;
pub const SRB_FUNCTION_RESET_LOGICAL_UNIT: u8 = 0x20;
pub const SRB_FUNCTION_SET_LINK_TIMEOUT: u8 = 0x21;
pub const SRB_FUNCTION_LINK_TIMEOUT_OCCURRED: u8 = 0x22;
pub const SRB_FUNCTION_LINK_TIMEOUT_COMPLETE: u8 = 0x23;
pub const SRB_FUNCTION_POWER: u8 = 0x24;
pub const SRB_FUNCTION_PNP: u8 = 0x25;
pub const SRB_FUNCTION_DUMP_POINTERS: u8 = 0x26;
pub const SRB_FUNCTION_FREE_DUMP_POINTERS: u8 = 0x27;
/// In `Function`: the block is a [`STORAGE_REQUEST_BLOCK`]; its function is in `SrbFunction`.
pub const SRB_FUNCTION_STORAGE_REQUEST_BLOCK: u8 = 0x28;

/// `SRB_STATUS_*` values.
pub const SRB_STATUS_PENDING: u8 = 0x00;
pub const SRB_STATUS_SUCCESS: u8 = 0x01;
pub const SRB_STATUS_ABORTED: u8 = 0x02;
pub const SRB_STATUS_ABORT_FAILED: u8 = 0x03;
pub const SRB_STATUS_ERROR: u8 = 0x04;
pub const SRB_STATUS_BUSY: u8 = 0x05;
pub const SRB_STATUS_INVALID_REQUEST: u8 = 0x06;
pub const SRB_STATUS_INVALID_PATH_ID: u8 = 0x07;
pub const SRB_STATUS_NO_DEVICE: u8 = 0x08;
pub const SRB_STATUS_TIMEOUT: u8 = 0x09;
pub const SRB_STATUS_SELECTION_TIMEOUT: u8 = 0x0a;
pub const SRB_STATUS_COMMAND_TIMEOUT: u8 = 0x0b;
pub const SRB_STATUS_BUS_RESET: u8 = 0x0e;
pub const SRB_STATUS_DATA_OVERRUN: u8 = 0x12;
pub const SRB_STATUS_BAD_SRB_BLOCK_LENGTH: u8 = 0x15;
pub const SRB_STATUS_REQUEST_FLUSHED: u8 = 0x16;
pub const SRB_STATUS_INVALID_LUN: u8 = 0x20;
pub const SRB_STATUS_INVALID_TARGET_ID: u8 = 0x21;
pub const SRB_STATUS_BAD_FUNCTION: u8 = 0x22;
pub const SRB_STATUS_ERROR_RECOVERY: u8 = 0x23;
pub const SRB_STATUS_NOT_POWERED: u8 = 0x24;
pub const SRB_STATUS_LINK_DOWN: u8 = 0x25;
pub const SRB_STATUS_INSUFFICIENT_RESOURCES: u8 = 0x26;
pub const SRB_STATUS_INTERNAL_ERROR: u8 = 0x30;
/// Bit: the queue of the unit is frozen.
pub const SRB_STATUS_QUEUE_FROZEN: u8 = 0x40;
/// Bit: the sense buffer holds valid sense data.
pub const SRB_STATUS_AUTOSENSE_VALID: u8 = 0x80;

/// `SRB_STATUS(status)`: the status without the two flag bits.
pub const fn srb_status(status: u8) -> u8 {
    status & !(SRB_STATUS_AUTOSENSE_VALID | SRB_STATUS_QUEUE_FROZEN)
}

/// `SRB_FLAGS_*` values.
pub const SRB_FLAGS_QUEUE_ACTION_ENABLE: u32 = 0x0000_0002;
pub const SRB_FLAGS_DISABLE_DISCONNECT: u32 = 0x0000_0004;
pub const SRB_FLAGS_DISABLE_SYNCH_TRANSFER: u32 = 0x0000_0008;
pub const SRB_FLAGS_BYPASS_FROZEN_QUEUE: u32 = 0x0000_0010;
pub const SRB_FLAGS_DISABLE_AUTOSENSE: u32 = 0x0000_0020;
pub const SRB_FLAGS_DATA_IN: u32 = 0x0000_0040;
pub const SRB_FLAGS_DATA_OUT: u32 = 0x0000_0080;
pub const SRB_FLAGS_NO_DATA_TRANSFER: u32 = 0x0000_0000;
pub const SRB_FLAGS_UNSPECIFIED_DIRECTION: u32 = SRB_FLAGS_DATA_IN | SRB_FLAGS_DATA_OUT;
pub const SRB_FLAGS_NO_QUEUE_FREEZE: u32 = 0x0000_0100;
pub const SRB_FLAGS_ADAPTER_CACHE_ENABLE: u32 = 0x0000_0200;
pub const SRB_FLAGS_FREE_SENSE_BUFFER: u32 = 0x0000_0400;
pub const SRB_FLAGS_D3_PROCESSING: u32 = 0x0000_0800;
pub const SRB_FLAGS_SEQUENTIAL_REQUIRED: u32 = 0x0000_1000;
pub const SRB_FLAGS_BYPASS_LOCKED_QUEUE: u32 = 0x0008_0000;
pub const SRB_FLAGS_NO_KEEP_AWAKE: u32 = 0x0010_0000;

/// SCSI status bytes (`SCSISTAT_*`).
pub const SCSISTAT_GOOD: u8 = 0x00;
pub const SCSISTAT_CHECK_CONDITION: u8 = 0x02;
pub const SCSISTAT_BUSY: u8 = 0x08;
pub const SCSISTAT_RESERVATION_CONFLICT: u8 = 0x18;
pub const SCSISTAT_QUEUE_FULL: u8 = 0x28;

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn fixed_sense_data_has_the_spc_layout() {
        let sense = SENSE_DATA::fixed(0x05, 0x24, 0x00);
        let bytes = field_bytes(&sense);
        assert_eq!(bytes[0], 0x70);
        assert_eq!(bytes[2], 0x05);
        assert_eq!(bytes[7], 10, "additional length counts bytes 8..18");
        assert_eq!((bytes[12], bytes[13]), (0x24, 0x00));
        assert_eq!(sense.sense_key(), 5);
    }

    fn field_bytes(sense: &SENSE_DATA) -> [u8; 18] {
        let mut out = [0u8; 18];
        out[0] = sense.ErrorCodeValid;
        out[1] = sense.SegmentNumber;
        out[2] = sense.SenseKeyFlags;
        out[3..7].copy_from_slice(&sense.Information);
        out[7] = sense.AdditionalSenseLength;
        out[8..12].copy_from_slice(&sense.CommandSpecificInformation);
        out[12] = sense.AdditionalSenseCode;
        out[13] = sense.AdditionalSenseCodeQualifier;
        out[14] = sense.FieldReplaceableUnitCode;
        out[15..18].copy_from_slice(&sense.SenseKeySpecific);
        out
    }

    #[test]
    fn srb_status_strips_only_the_flag_bits() {
        assert_eq!(
            srb_status(SRB_STATUS_ERROR | SRB_STATUS_AUTOSENSE_VALID | SRB_STATUS_QUEUE_FROZEN),
            SRB_STATUS_ERROR
        );
        assert_eq!(
            srb_status(SRB_STATUS_INTERNAL_ERROR),
            SRB_STATUS_INTERNAL_ERROR
        );
    }

    #[test]
    fn extended_data_lengths_are_the_bytes_after_the_length_field() {
        // Each *_LENGTH constant is the structure's declared length minus Type and Length.
        assert_eq!(
            SRBEX_DATA_SCSI_CDB16_LENGTH as usize,
            16 + 4 + 4 + 8 + 16 - 8 - 8 + 8 - 8
        );
        assert_eq!(
            SRBEX_DATA_SCSI_CDB16_LENGTH as usize,
            size_of::<SRBEX_DATA_SCSI_CDB16>() - 8
        );
        assert_eq!(
            SRBEX_DATA_SCSI_CDB32_LENGTH as usize,
            size_of::<SRBEX_DATA_SCSI_CDB32>() - 8
        );
        assert_eq!(
            SRBEX_DATA_SCSI_CDB_VAR_LENGTH_MIN as usize,
            core::mem::offset_of!(SRBEX_DATA_SCSI_CDB_VAR, Cdb) - 8
        );
        assert_eq!(
            SRBEX_DATA_PNP_LENGTH as usize,
            size_of::<SRBEX_DATA_PNP>() - 8
        );
        // The power block's declared contents end at 20; the 8-byte alignment pads it to 24.
        assert_eq!(SRBEX_DATA_POWER_LENGTH as usize, 20 - 8);
    }
}
