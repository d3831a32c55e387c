//! Byte layouts this crate reads without `windows-sys`'s structures, because `windows-sys`
//! declares them differently from `wdm.h` or because the data is variable-length. The values are
//! for x64; `cargo xtask drivers` checks each one against mingw-w64's DDK headers with clang.
#![forbid(unsafe_code)]

/// `sizeof(CM_PARTIAL_RESOURCE_DESCRIPTOR)` (`wdm.h` packs it to 4 bytes; `windows-sys`'s
/// declaration is 24 bytes).
pub const CM_PARTIAL_RESOURCE_DESCRIPTOR_BYTES: usize = 20;
/// `offsetof(CM_RESOURCE_LIST, List)`.
pub const CM_RESOURCE_LIST_LIST: usize = 4;
/// `offsetof(CM_FULL_RESOURCE_DESCRIPTOR, PartialResourceList.Count)`.
pub const CM_FULL_RESOURCE_DESCRIPTOR_COUNT: usize = 12;
/// `offsetof(CM_FULL_RESOURCE_DESCRIPTOR, PartialResourceList.PartialDescriptors)`.
pub const CM_FULL_RESOURCE_DESCRIPTOR_PARTIALS: usize = 16;
/// `offsetof(KEY_VALUE_PARTIAL_INFORMATION, Type)`.
pub const KEY_VALUE_PARTIAL_INFORMATION_TYPE: usize = 4;
/// `offsetof(KEY_VALUE_PARTIAL_INFORMATION, DataLength)`.
pub const KEY_VALUE_PARTIAL_INFORMATION_DATA_LENGTH: usize = 8;
/// `offsetof(KEY_VALUE_PARTIAL_INFORMATION, Data)`.
pub const KEY_VALUE_PARTIAL_INFORMATION_DATA: usize = 12;
/// `sizeof(MDL)`: the page frame array follows the header (`MmGetMdlPfnArray`).
pub const MDL_HEADER_BYTES: usize = 48;
/// `sizeof(PFN_NUMBER)`.
pub const PFN_NUMBER_BYTES: usize = 8;
/// `ERROR_LOG_MAXIMUM_SIZE`: the largest event log entry.
pub const ERROR_LOG_MAXIMUM_SIZE: usize = 240;
/// `sizeof(IO_ERROR_LOG_PACKET)`.
pub const IO_ERROR_LOG_PACKET_BYTES: usize = 48;
/// `offsetof(IO_ERROR_LOG_PACKET, NumberOfStrings)`.
pub const IO_ERROR_LOG_PACKET_NUMBER_OF_STRINGS: usize = 4;
/// `offsetof(IO_ERROR_LOG_PACKET, StringOffset)`.
pub const IO_ERROR_LOG_PACKET_STRING_OFFSET: usize = 6;
/// `offsetof(IO_ERROR_LOG_PACKET, ErrorCode)`.
pub const IO_ERROR_LOG_PACKET_ERROR_CODE: usize = 12;
/// `offsetof(IO_ERROR_LOG_PACKET, UniqueErrorValue)`.
pub const IO_ERROR_LOG_PACKET_UNIQUE_ERROR_VALUE: usize = 16;
/// `offsetof(IO_ERROR_LOG_PACKET, FinalStatus)`.
pub const IO_ERROR_LOG_PACKET_FINAL_STATUS: usize = 20;
