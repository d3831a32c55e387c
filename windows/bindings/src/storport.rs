//! The StorPort virtual-miniport interface (`storport.h`): the initialization data, the port
//! configuration, scatter-gather lists, DPCs, the callback signatures and the enumerations a
//! miniport receives or passes.
//!
//! # `VIRTUAL_HW_INITIALIZATION_DATA` is 0xD0 bytes, not 0xB0
//! Microsoft's page for `VIRTUAL_HW_INITIALIZATION_DATA` still shows the Windows 7 declaration,
//! which ends with `HwCleanupTracing` (0xB0 bytes on x64). Windows 8 appended, in both
//! `HW_INITIALIZATION_DATA` and `VIRTUAL_HW_INITIALIZATION_DATA`, `HwTracingEnabled`,
//! `FeatureSupport`, `SrbTypeFlags`, `AddressTypeFlags`, `Reserved1` and (Windows 8.1)
//! `HwUnitControl`, which makes both 0xD0 bytes. StorPort reads the tail only when
//! `HwInitializationDataSize` covers it, so a miniport declared from the documentation
//! (size 0xB0) can never announce `SRB_TYPE_FLAG_STORAGE_REQUEST_BLOCK` (at 0xBC) and never
//! receives extended SRBs or unit-control calls. This crate declares the full 0xD0 layout.
//!
//! The same page notes that `HwBuildIo` is not used for virtual miniports: StorPort calls a
//! virtual miniport's `HwStartIo` without its StartIo lock held instead.
// Field and value names are the headers'; Microsoft documents each of them.
#![allow(missing_docs)]

use core::ffi::c_void;

use crate::assert_layout;
use crate::srb::SCSI_REQUEST_BLOCK;

/// `HwStorInitialize`: `BOOLEAN (PVOID DeviceExtension)`.
pub type PHW_INITIALIZE = Option<unsafe extern "system" fn(device_extension: *mut c_void) -> u8>;
/// `HwStorStartIo` / `HwStorBuildIo`: `BOOLEAN (PVOID, PSCSI_REQUEST_BLOCK)`; the SRB pointer
/// may point at a `STORAGE_REQUEST_BLOCK` (see [`crate::srb`]).
pub type PHW_STARTIO = Option<
    unsafe extern "system" fn(device_extension: *mut c_void, srb: *mut SCSI_REQUEST_BLOCK) -> u8,
>;
/// `HwStorBuildIo` (same signature as [`PHW_STARTIO`]).
pub type PHW_BUILDIO = PHW_STARTIO;
/// `HwStorInterrupt`: `BOOLEAN (PVOID)`.
pub type PHW_INTERRUPT = Option<unsafe extern "system" fn(device_extension: *mut c_void) -> u8>;
/// `VirtualHwStorFindAdapter`: `ULONG (DeviceExtension, HwContext, BusInformation, LowerDevice,
/// ArgumentString, ConfigInfo, Again)`, returning an `SP_RETURN_*` value.
pub type PVIRTUAL_HW_FIND_ADAPTER = Option<
    unsafe extern "system" fn(
        device_extension: *mut c_void,
        hw_context: *mut c_void,
        bus_information: *mut c_void,
        lower_device: *mut c_void,
        argument_string: *mut i8,
        config_info: *mut PORT_CONFIGURATION_INFORMATION,
        again: *mut u8,
    ) -> u32,
>;
/// `HwStorResetBus`: `BOOLEAN (PVOID, ULONG PathId)`.
pub type PHW_RESET_BUS =
    Option<unsafe extern "system" fn(device_extension: *mut c_void, path_id: u32) -> u8>;
/// `HwDmaStarted` (not used by virtual miniports).
pub type PHW_DMA_STARTED = Option<unsafe extern "system" fn(device_extension: *mut c_void)>;
/// `HwAdapterState` (must be null for StorPort).
pub type PHW_ADAPTER_STATE = Option<
    unsafe extern "system" fn(device_extension: *mut c_void, context: *mut c_void, save: u8) -> u8,
>;
/// `HwStorAdapterControl`: `SCSI_ADAPTER_CONTROL_STATUS (PVOID, SCSI_ADAPTER_CONTROL_TYPE,
/// PVOID Parameters)`.
pub type PHW_ADAPTER_CONTROL = Option<
    unsafe extern "system" fn(
        device_extension: *mut c_void,
        control_type: u32,
        parameters: *mut c_void,
    ) -> u32,
>;
/// `HwStorFreeAdapterResources`.
pub type PHW_FREE_ADAPTER_RESOURCES =
    Option<unsafe extern "system" fn(device_extension: *mut c_void)>;
/// `HwStorProcessServiceRequest`: `VOID (PVOID, PVOID Irp)`.
pub type PHW_PROCESS_SERVICE_REQUEST =
    Option<unsafe extern "system" fn(device_extension: *mut c_void, irp: *mut c_void)>;
/// `HwStorCompleteServiceIrp`.
pub type PHW_COMPLETE_SERVICE_IRP =
    Option<unsafe extern "system" fn(device_extension: *mut c_void)>;
/// `HwStorInitializeTracing`: `VOID (PVOID Arg1, PVOID Arg2)`.
pub type PHW_INITIALIZE_TRACING =
    Option<unsafe extern "system" fn(arg1: *mut c_void, arg2: *mut c_void)>;
/// `HwStorCleanupTracing`: `VOID (PVOID Arg1)`.
pub type PHW_CLEANUP_TRACING = Option<unsafe extern "system" fn(arg1: *mut c_void)>;
/// `HwStorTracingEnabled`: `VOID (PVOID, BOOLEAN Enabled)`.
pub type PHW_TRACING_ENABLED =
    Option<unsafe extern "system" fn(device_extension: *mut c_void, enabled: u8)>;
/// `HwStorUnitControl`: `SCSI_UNIT_CONTROL_STATUS (PVOID, SCSI_UNIT_CONTROL_TYPE, PVOID)`.
pub type PHW_UNIT_CONTROL = Option<
    unsafe extern "system" fn(
        device_extension: *mut c_void,
        control_type: u32,
        parameters: *mut c_void,
    ) -> u32,
>;
/// `HwStorPassiveInitializeRoutine`: `BOOLEAN (PVOID)`, run at PASSIVE_LEVEL after
/// `HwInitialize` when enabled with `StorPortEnablePassiveInitialization`.
pub type PHW_PASSIVE_INITIALIZE_ROUTINE =
    Option<unsafe extern "system" fn(device_extension: *mut c_void) -> u8>;
/// `HwStorDpcRoutine`: `VOID (PSTOR_DPC, PVOID HwDeviceExtension, PVOID, PVOID)`.
pub type PHW_DPC_ROUTINE = Option<
    unsafe extern "system" fn(
        dpc: *mut STOR_DPC,
        device_extension: *mut c_void,
        system_argument1: *mut c_void,
        system_argument2: *mut c_void,
    ),
>;
/// `HwStorStateChange`: `VOID (PVOID, PVOID Context, SHORT AddressType, PVOID Address,
/// ULONG Status)`, the completion of `StorPortStateChangeDetected`.
pub type PHW_STATE_CHANGE = Option<
    unsafe extern "system" fn(
        device_extension: *mut c_void,
        context: *mut c_void,
        address_type: i16,
        address: *mut c_void,
        status: u32,
    ),
>;

/// `VIRTUAL_HW_INITIALIZATION_DATA` as the Windows 8.1 and later `storport.h` declares it
/// (0xD0 bytes; see the module documentation for the documented 0xB0 trap).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct VIRTUAL_HW_INITIALIZATION_DATA {
    /// `size_of::<VIRTUAL_HW_INITIALIZATION_DATA>()` (0xD0).
    pub HwInitializationDataSize: u32,
    /// `INTERFACE_TYPE`; virtual miniports use `Internal` (0).
    pub AdapterInterfaceType: i32,
    pub HwInitialize: PHW_INITIALIZE,
    pub HwStartIo: PHW_STARTIO,
    pub HwInterrupt: PHW_INTERRUPT,
    pub HwFindAdapter: PVIRTUAL_HW_FIND_ADAPTER,
    pub HwResetBus: PHW_RESET_BUS,
    pub HwDmaStarted: PHW_DMA_STARTED,
    pub HwAdapterState: PHW_ADAPTER_STATE,
    pub DeviceExtensionSize: u32,
    pub SpecificLuExtensionSize: u32,
    pub SrbExtensionSize: u32,
    pub NumberOfAccessRanges: u32,
    pub Reserved: *mut c_void,
    pub MapBuffers: u8,
    pub NeedPhysicalAddresses: u8,
    pub TaggedQueuing: u8,
    pub AutoRequestSense: u8,
    pub MultipleRequestPerLu: u8,
    pub ReceiveEvent: u8,
    pub VendorIdLength: u16,
    pub VendorId: *mut c_void,
    /// Union of `ReservedUshort` and `PortVersionFlags`.
    pub PortVersionFlags: u16,
    pub DeviceIdLength: u16,
    pub DeviceId: *mut c_void,
    pub HwAdapterControl: PHW_ADAPTER_CONTROL,
    pub HwBuildIo: PHW_BUILDIO,
    pub HwFreeAdapterResources: PHW_FREE_ADAPTER_RESOURCES,
    pub HwProcessServiceRequest: PHW_PROCESS_SERVICE_REQUEST,
    pub HwCompleteServiceIrp: PHW_COMPLETE_SERVICE_IRP,
    pub HwInitializeTracing: PHW_INITIALIZE_TRACING,
    pub HwCleanupTracing: PHW_CLEANUP_TRACING,
    pub HwTracingEnabled: PHW_TRACING_ENABLED,
    /// `STOR_FEATURE_*` bits.
    pub FeatureSupport: u32,
    /// `SRB_TYPE_FLAG_*` bits ([`crate::srb::SRB_TYPE_FLAG_STORAGE_REQUEST_BLOCK`]).
    pub SrbTypeFlags: u32,
    /// `ADDRESS_TYPE_FLAG_*` bits ([`crate::srb::ADDRESS_TYPE_FLAG_BTL8`]).
    pub AddressTypeFlags: u32,
    pub Reserved1: u32,
    pub HwUnitControl: PHW_UNIT_CONTROL,
}
assert_layout!(VIRTUAL_HW_INITIALIZATION_DATA, size 0xd0,
    HwInitializationDataSize @ 0x00, AdapterInterfaceType @ 0x04, HwInitialize @ 0x08,
    HwStartIo @ 0x10, HwInterrupt @ 0x18, HwFindAdapter @ 0x20, HwResetBus @ 0x28,
    HwDmaStarted @ 0x30, HwAdapterState @ 0x38, DeviceExtensionSize @ 0x40,
    SpecificLuExtensionSize @ 0x44, SrbExtensionSize @ 0x48, NumberOfAccessRanges @ 0x4c,
    Reserved @ 0x50, MapBuffers @ 0x58, NeedPhysicalAddresses @ 0x59, TaggedQueuing @ 0x5a,
    AutoRequestSense @ 0x5b, MultipleRequestPerLu @ 0x5c, ReceiveEvent @ 0x5d,
    VendorIdLength @ 0x5e, VendorId @ 0x60, PortVersionFlags @ 0x68, DeviceIdLength @ 0x6a,
    DeviceId @ 0x70, HwAdapterControl @ 0x78, HwBuildIo @ 0x80, HwFreeAdapterResources @ 0x88,
    HwProcessServiceRequest @ 0x90, HwCompleteServiceIrp @ 0x98, HwInitializeTracing @ 0xa0,
    HwCleanupTracing @ 0xa8, HwTracingEnabled @ 0xb0, FeatureSupport @ 0xb8,
    SrbTypeFlags @ 0xbc, AddressTypeFlags @ 0xc0, Reserved1 @ 0xc4, HwUnitControl @ 0xc8);

/// Size of the Windows 7 declaration that Microsoft's page still shows (through
/// `HwCleanupTracing`); kept to document the trap, never to be used as `HwInitializationDataSize`.
pub const VIRTUAL_HW_INITIALIZATION_DATA_DOCUMENTED_SIZE: usize = 0xb0;

/// `STOR_FEATURE_VIRTUAL_MINIPORT`.
pub const STOR_FEATURE_VIRTUAL_MINIPORT: u32 = 0x0000_0001;
/// `STOR_FEATURE_FULL_PNP_DEVICE_CAPABILITIES`.
pub const STOR_FEATURE_FULL_PNP_DEVICE_CAPABILITIES: u32 = 0x0000_0004;
/// `STOR_FEATURE_DUMP_RESUME_CAPABLE`.
pub const STOR_FEATURE_DUMP_RESUME_CAPABLE: u32 = 0x0000_0020;
/// `STOR_FEATURE_DEVICE_NAME_NO_SUFFIX`.
pub const STOR_FEATURE_DEVICE_NAME_NO_SUFFIX: u32 = 0x0000_0010;

/// `ACCESS_RANGE`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ACCESS_RANGE {
    pub RangeStart: i64,
    pub RangeLength: u32,
    pub RangeInMemory: u8,
}
assert_layout!(ACCESS_RANGE, size 16, RangeStart @ 0, RangeLength @ 8, RangeInMemory @ 12);

/// `MEMORY_REGION`: physically contiguous memory (the crash-dump region).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MEMORY_REGION {
    pub VirtualBase: *mut u8,
    pub PhysicalBase: i64,
    pub Length: u32,
}
assert_layout!(MEMORY_REGION, size 24, VirtualBase @ 0, PhysicalBase @ 8, Length @ 16);

/// StorPort's `PORT_CONFIGURATION_INFORMATION`, through `FeatureSupport` (0xE0 bytes).
///
/// StorPort allocates this structure and passes it to `HwFindAdapter`; its `Length` is the size
/// StorPort allocated. Newer WDKs append fields (for example `DmaAddressWidth`, Windows 10 2004);
/// a miniport never allocates or copies the structure, so declaring the common prefix is sound.
/// The first 0x94 bytes are scsiport's declaration (mingw-w64's `srb.h`, which names
/// `MiniportDumpData` `Reserved`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PORT_CONFIGURATION_INFORMATION {
    pub Length: u32,
    pub SystemIoBusNumber: u32,
    pub AdapterInterfaceType: i32,
    pub BusInterruptLevel: u32,
    pub BusInterruptVector: u32,
    pub InterruptMode: i32,
    pub MaximumTransferLength: u32,
    pub NumberOfPhysicalBreaks: u32,
    pub DmaChannel: u32,
    pub DmaPort: u32,
    pub DmaWidth: i32,
    pub DmaSpeed: i32,
    pub AlignmentMask: u32,
    pub NumberOfAccessRanges: u32,
    pub AccessRanges: *mut ACCESS_RANGE,
    pub MiniportDumpData: *mut c_void,
    pub NumberOfBuses: u8,
    pub InitiatorBusId: [u8; 8],
    pub ScatterGather: u8,
    pub Master: u8,
    pub CachesData: u8,
    pub AdapterScansDown: u8,
    pub AtdiskPrimaryClaimed: u8,
    pub AtdiskSecondaryClaimed: u8,
    pub Dma32BitAddresses: u8,
    pub DemandMode: u8,
    pub MapBuffers: u8,
    pub NeedPhysicalAddresses: u8,
    pub TaggedQueuing: u8,
    pub AutoRequestSense: u8,
    pub MultipleRequestPerLu: u8,
    pub ReceiveEvent: u8,
    pub RealModeInitialized: u8,
    pub BufferAccessScsiPortControlled: u8,
    pub MaximumNumberOfTargets: u8,
    pub ReservedUchars: [u8; 2],
    pub SlotNumber: u32,
    pub BusInterruptLevel2: u32,
    pub BusInterruptVector2: u32,
    pub InterruptMode2: i32,
    pub DmaChannel2: u32,
    pub DmaPort2: u32,
    pub DmaWidth2: i32,
    pub DmaSpeed2: i32,
    pub DeviceExtensionSize: u32,
    pub SpecificLuExtensionSize: u32,
    pub SrbExtensionSize: u32,
    pub Dma64BitAddresses: u8,
    pub ResetTargetSupported: u8,
    pub MaximumNumberOfLogicalUnits: u8,
    pub WmiDataProvider: u8,
    /// `STOR_SYNCHRONIZATION_MODEL` ([`StorSynchronizeFullDuplex`]).
    pub SynchronizationModel: i32,
    pub HwMSInterruptRoutine: *mut c_void,
    pub InterruptSynchronizationMode: i32,
    pub DumpRegion: MEMORY_REGION,
    pub RequestedDumpBufferSize: u32,
    pub VirtualDevice: u8,
    /// `DUMP_MODE_*` when StorPort loaded the miniport for crash dump or hibernation.
    pub DumpMode: u8,
    pub ExtendedFlags1: u32,
    pub MaxNumberOfIO: u32,
    pub MaxIOsPerLun: u32,
    pub InitialLunQueueDepth: u32,
    pub BusResetHoldTime: u32,
    pub FeatureSupport: u32,
}
assert_layout!(PORT_CONFIGURATION_INFORMATION, size 0xe0,
    Length @ 0x00, SystemIoBusNumber @ 0x04, AdapterInterfaceType @ 0x08,
    BusInterruptLevel @ 0x0c, BusInterruptVector @ 0x10, InterruptMode @ 0x14,
    MaximumTransferLength @ 0x18, NumberOfPhysicalBreaks @ 0x1c, DmaChannel @ 0x20,
    DmaPort @ 0x24, DmaWidth @ 0x28, DmaSpeed @ 0x2c, AlignmentMask @ 0x30,
    NumberOfAccessRanges @ 0x34, AccessRanges @ 0x38, MiniportDumpData @ 0x40,
    NumberOfBuses @ 0x48, InitiatorBusId @ 0x49, ScatterGather @ 0x51, Master @ 0x52,
    CachesData @ 0x53, AdapterScansDown @ 0x54, AtdiskPrimaryClaimed @ 0x55,
    AtdiskSecondaryClaimed @ 0x56, Dma32BitAddresses @ 0x57, DemandMode @ 0x58,
    MapBuffers @ 0x59, NeedPhysicalAddresses @ 0x5a, TaggedQueuing @ 0x5b,
    AutoRequestSense @ 0x5c, MultipleRequestPerLu @ 0x5d, ReceiveEvent @ 0x5e,
    RealModeInitialized @ 0x5f, BufferAccessScsiPortControlled @ 0x60,
    MaximumNumberOfTargets @ 0x61, ReservedUchars @ 0x62, SlotNumber @ 0x64,
    BusInterruptLevel2 @ 0x68, BusInterruptVector2 @ 0x6c, InterruptMode2 @ 0x70,
    DmaChannel2 @ 0x74, DmaPort2 @ 0x78, DmaWidth2 @ 0x7c, DmaSpeed2 @ 0x80,
    DeviceExtensionSize @ 0x84, SpecificLuExtensionSize @ 0x88, SrbExtensionSize @ 0x8c,
    Dma64BitAddresses @ 0x90, ResetTargetSupported @ 0x91,
    MaximumNumberOfLogicalUnits @ 0x92, WmiDataProvider @ 0x93, SynchronizationModel @ 0x94,
    HwMSInterruptRoutine @ 0x98, InterruptSynchronizationMode @ 0xa0, DumpRegion @ 0xa8,
    RequestedDumpBufferSize @ 0xc0, VirtualDevice @ 0xc4, DumpMode @ 0xc5,
    ExtendedFlags1 @ 0xc8, MaxNumberOfIO @ 0xcc, MaxIOsPerLun @ 0xd0,
    InitialLunQueueDepth @ 0xd4, BusResetHoldTime @ 0xd8, FeatureSupport @ 0xdc);

/// `StorSynchronizeHalfDuplex`.
pub const StorSynchronizeHalfDuplex: i32 = 0;
/// `StorSynchronizeFullDuplex`: StartIo may run concurrently with the ISR/DPC.
pub const StorSynchronizeFullDuplex: i32 = 1;
/// `DUMP_MODE_CRASH`.
pub const DUMP_MODE_CRASH: u8 = 0x01;
/// `DUMP_MODE_HIBER`.
pub const DUMP_MODE_HIBER: u8 = 0x02;
/// `DUMP_MODE_MARK_MEMORY`.
pub const DUMP_MODE_MARK_MEMORY: u8 = 0x03;
/// `DUMP_MODE_RESUME`.
pub const DUMP_MODE_RESUME: u8 = 0x04;
/// `SCSI_DMA64_MINIPORT_FULL64BIT_SUPPORTED`.
pub const SCSI_DMA64_MINIPORT_FULL64BIT_SUPPORTED: u8 = 0x02;
/// `STOR_MAP_NO_BUFFERS` … `STOR_MAP_ALL_BUFFERS_INCLUDING_READ_WRITE` (`MapBuffers`).
pub const STOR_MAP_NO_BUFFERS: u8 = 0;
pub const STOR_MAP_ALL_BUFFERS: u8 = 1;
pub const STOR_MAP_NON_READ_WRITE_BUFFERS: u8 = 2;
pub const STOR_MAP_ALL_BUFFERS_INCLUDING_READ_WRITE: u8 = 3;
/// `SP_RETURN_*` values of `HwFindAdapter`.
pub const SP_RETURN_NOT_FOUND: u32 = 0;
pub const SP_RETURN_FOUND: u32 = 1;
pub const SP_RETURN_ERROR: u32 = 2;
pub const SP_RETURN_BAD_CONFIG: u32 = 3;
/// `INTERFACE_TYPE` `Internal`.
pub const INTERFACE_TYPE_INTERNAL: i32 = 0;

/// `STOR_SCATTER_GATHER_ELEMENT`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct STOR_SCATTER_GATHER_ELEMENT {
    pub PhysicalAddress: i64,
    pub Length: u32,
    pub Reserved: usize,
}
assert_layout!(STOR_SCATTER_GATHER_ELEMENT, size 24, PhysicalAddress @ 0, Length @ 8,
    Reserved @ 16);

/// `STOR_SCATTER_GATHER_LIST`: `NumberOfElements` elements follow the header (`List`).
#[repr(C)]
#[derive(Debug)]
pub struct STOR_SCATTER_GATHER_LIST {
    pub NumberOfElements: u32,
    pub Reserved: usize,
    pub List: [STOR_SCATTER_GATHER_ELEMENT; 0],
}
assert_layout!(STOR_SCATTER_GATHER_LIST, size 16, NumberOfElements @ 0, Reserved @ 8, List @ 16);

/// `DPC_BUFFER`: StorPort's opaque image of a `KDPC`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct DPC_BUFFER {
    pub Type: i16,
    pub Number: u8,
    pub Importance: u8,
    pub F: *mut c_void,
    pub B: *mut c_void,
    pub DeferredRoutine: *mut c_void,
    pub DeferredContext: *mut c_void,
    pub SystemArgument1: *mut c_void,
    pub SystemArgument2: *mut c_void,
    pub DpcData: *mut c_void,
}
assert_layout!(DPC_BUFFER, size 0x40, Type @ 0, Number @ 2, Importance @ 3, F @ 8, B @ 16,
    DeferredRoutine @ 24, DeferredContext @ 32, SystemArgument1 @ 40, SystemArgument2 @ 48,
    DpcData @ 56);

/// `STOR_DPC`: storage the miniport provides (in its device extension) for
/// `StorPortInitializeDpc`. The WDK declares `{ DPC_BUFFER Dpc; ULONG_PTR Lock; }` (0x48 bytes);
/// ReactOS's header omits `Lock` (0x40). The larger size is declared: StorPort writes the
/// `Lock` member, so storage of 0x40 bytes would be overrun.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct STOR_DPC {
    pub Dpc: DPC_BUFFER,
    pub Lock: usize,
}
assert_layout!(STOR_DPC, size 0x48, Dpc @ 0, Lock @ 0x40);

impl STOR_DPC {
    /// Zeroed storage, to be initialised by `StorPortInitializeDpc`.
    pub const fn zeroed() -> Self {
        STOR_DPC {
            Dpc: DPC_BUFFER {
                Type: 0,
                Number: 0,
                Importance: 0,
                F: core::ptr::null_mut(),
                B: core::ptr::null_mut(),
                DeferredRoutine: core::ptr::null_mut(),
                DeferredContext: core::ptr::null_mut(),
                SystemArgument1: core::ptr::null_mut(),
                SystemArgument2: core::ptr::null_mut(),
                DpcData: core::ptr::null_mut(),
            },
            Lock: 0,
        }
    }
}

/// `SCSI_ADAPTER_CONTROL_TYPE` values (`HwStorAdapterControl`'s `ControlType`).
pub mod adapter_control {
    pub const ScsiQuerySupportedControlTypes: u32 = 0;
    pub const ScsiStopAdapter: u32 = 1;
    pub const ScsiRestartAdapter: u32 = 2;
    pub const ScsiSetBootConfig: u32 = 3;
    pub const ScsiSetRunningConfig: u32 = 4;
    pub const ScsiPowerSettingNotification: u32 = 5;
    pub const ScsiAdapterPower: u32 = 6;
    pub const ScsiAdapterPoFxPowerRequired: u32 = 7;
    pub const ScsiAdapterPoFxPowerActive: u32 = 8;
    pub const ScsiAdapterPoFxPowerSetFState: u32 = 9;
    pub const ScsiAdapterPoFxPowerControl: u32 = 10;
    pub const ScsiAdapterPrepareForBusReScan: u32 = 11;
    pub const ScsiAdapterSystemPowerHints: u32 = 12;
    pub const ScsiAdapterFilterResourceRequirements: u32 = 13;
    pub const ScsiAdapterPoFxMaxOperationalPower: u32 = 14;
    pub const ScsiAdapterPoFxSetPerfState: u32 = 15;
    pub const ScsiAdapterSurpriseRemoval: u32 = 16;
    /// `ScsiAdapterControlSuccess`.
    pub const ScsiAdapterControlSuccess: u32 = 0;
    /// `ScsiAdapterControlUnsuccessful`.
    pub const ScsiAdapterControlUnsuccessful: u32 = 1;
}

/// `SCSI_SUPPORTED_CONTROL_TYPE_LIST`: `MaxControlType` booleans follow the header.
#[repr(C)]
#[derive(Debug)]
pub struct SCSI_SUPPORTED_CONTROL_TYPE_LIST {
    pub MaxControlType: u32,
    pub SupportedTypeList: [u8; 0],
}
assert_layout!(SCSI_SUPPORTED_CONTROL_TYPE_LIST, size 4, MaxControlType @ 0,
    SupportedTypeList @ 4);

/// `SCSI_NOTIFICATION_TYPE` values (first argument of `StorPortNotification`).
pub mod notification {
    pub const RequestComplete: u32 = 0;
    pub const NextRequest: u32 = 1;
    pub const NextLuRequest: u32 = 2;
    pub const ResetDetected: u32 = 3;
    pub const RequestTimerCall: u32 = 6;
    pub const BusChangeDetected: u32 = 7;
    pub const WMIEvent: u32 = 8;
    pub const WMIReregister: u32 = 9;
    pub const LinkUp: u32 = 10;
    pub const LinkDown: u32 = 11;
    pub const QueryTickCount: u32 = 12;
    pub const BufferOverrunDetected: u32 = 13;
    pub const TraceNotification: u32 = 14;
    pub const GetExtendedFunctionTable: u32 = 15;
    pub const EnablePassiveInitialization: u32 = 0x1000;
    pub const InitializeDpc: u32 = 0x1001;
    pub const IssueDpc: u32 = 0x1002;
    pub const AcquireSpinLock: u32 = 0x1003;
    pub const ReleaseSpinLock: u32 = 0x1004;
    pub const StateChangeDetectedCall: u32 = 0x1005;
}

/// `STORPORT_FUNCTION_CODE` values (first argument of `StorPortExtendedFunction`). The
/// enumeration starts at 0 with `ExtFunctionAllocatePool`.
pub mod ext_function {
    pub const ExtFunctionAllocatePool: u32 = 0;
    pub const ExtFunctionFreePool: u32 = 1;
    pub const ExtFunctionAllocateMdl: u32 = 2;
    pub const ExtFunctionFreeMdl: u32 = 3;
    pub const ExtFunctionBuildMdlForNonPagedPool: u32 = 4;
    pub const ExtFunctionGetSystemAddress: u32 = 5;
    pub const ExtFunctionGetOriginalMdl: u32 = 6;
    pub const ExtFunctionCompleteServiceIrp: u32 = 7;
    pub const ExtFunctionGetDeviceObjects: u32 = 8;
    pub const ExtFunctionGetCurrentProcessorNumber: u32 = 17;
    pub const ExtFunctionGetActiveGroupCount: u32 = 18;
    pub const ExtFunctionAllocateContiguousMemorySpecifyCacheNode: u32 = 24;
    pub const ExtFunctionFreeContiguousMemorySpecifyCache: u32 = 25;
    pub const ExtFunctionInitializeTimer: u32 = 32;
    pub const ExtFunctionRequestTimer: u32 = 33;
    pub const ExtFunctionFreeTimer: u32 = 34;
}

/// `STOR_STATUS_*` (return values of `StorPortExtendedFunction`).
pub const STOR_STATUS_SUCCESS: u32 = 0x0000_0000;
pub const STOR_STATUS_UNSUCCESSFUL: u32 = 0xC100_0001;
pub const STOR_STATUS_NOT_IMPLEMENTED: u32 = 0xC100_0002;
pub const STOR_STATUS_INSUFFICIENT_RESOURCES: u32 = 0xC100_0003;
pub const STOR_STATUS_BUFFER_TOO_SMALL: u32 = 0xC100_0004;
pub const STOR_STATUS_INVALID_PARAMETER: u32 = 0xC100_0006;
pub const STOR_STATUS_INVALID_IRQL: u32 = 0xC100_0008;
pub const STOR_STATUS_INVALID_DEVICE_STATE: u32 = 0xC100_0009;
pub const STOR_STATUS_BUSY: u32 = 0xC100_000C;

/// `STATE_CHANGE_*` bits for `StorPortStateChangeDetected`'s `ChangedEntity`.
pub const STATE_CHANGE_LUN: u32 = 0x1;
pub const STATE_CHANGE_TARGET: u32 = 0x2;
pub const STATE_CHANGE_BUS: u32 = 0x4;

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn the_extended_srb_flag_lies_beyond_the_documented_size() {
        // A miniport that announced the documented 0xB0 bytes could not reach these fields.
        let documented = VIRTUAL_HW_INITIALIZATION_DATA_DOCUMENTED_SIZE;
        assert_eq!(
            core::mem::offset_of!(VIRTUAL_HW_INITIALIZATION_DATA, HwCleanupTracing) + 8,
            documented
        );
        assert!(core::mem::offset_of!(VIRTUAL_HW_INITIALIZATION_DATA, SrbTypeFlags) >= documented);
        assert!(core::mem::offset_of!(VIRTUAL_HW_INITIALIZATION_DATA, HwUnitControl) >= documented);
        assert_eq!(size_of::<VIRTUAL_HW_INITIALIZATION_DATA>(), 0xd0);
    }

    #[test]
    fn extended_function_codes_follow_the_enumeration_order() {
        // STORPORT_FUNCTION_CODE starts at ExtFunctionAllocatePool = 0 and counts up.
        assert_eq!(
            ext_function::ExtFunctionFreePool,
            ext_function::ExtFunctionAllocatePool + 1
        );
        assert_eq!(ext_function::ExtFunctionGetSystemAddress, 5);
        assert_eq!(
            ext_function::ExtFunctionFreeTimer,
            ext_function::ExtFunctionInitializeTimer + 2
        );
    }
}
