//! `storport.sys` imports (raw-dylib) and typed wrappers for the calls `storport.h` defines
//! inline.
//!
//! # Variadic calls
//! `StorPortNotification` and `StorPortExtendedFunction` are C variadic functions whose extra
//! arguments depend on the first one. They are declared once, privately, as variadic; each
//! notification or extended function a miniport uses gets its own public function here with
//! exactly the argument list `storport.h`'s inline wrapper passes, so a caller can never pass
//! the wrong number or kind of arguments. Arguments narrower than `int` are passed widened to
//! `u32`, as C's default argument promotion does. On x64 a variadic call passes integer and
//! pointer arguments exactly as a fixed call does; the wrappers pass nothing else.
//!
//! Every function here is an export of `storport.sys` (Windows 8 and later); the image check of
//! `cargo xtask drivers` reads this file's `#[link]` blocks as the list of names a driver may
//! import from `storport.sys`.
//!
//! IRQL and lock rules are StorPort's and are stated on each wrapper; the caller's `unsafe`
//! block promises them.

use core::ffi::c_void;

use crate::srb::{SCSI_REQUEST_BLOCK, STOR_ADDRESS};
use crate::storport::{
    ext_function, notification, PHW_DPC_ROUTINE, PHW_PASSIVE_INITIALIZE_ROUTINE, PHW_STATE_CHANGE,
    PORT_CONFIGURATION_INFORMATION, STOR_DPC, STOR_SCATTER_GATHER_LIST,
    STOR_STATUS_NOT_IMPLEMENTED, VIRTUAL_HW_INITIALIZATION_DATA,
};

#[link(name = "storport.sys", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "system" {
    /// `StorPortInitialize(DriverObject, RegistryPath, HwInitializationData, HwContext)`.
    pub fn StorPortInitialize(
        driver_object: *mut c_void,
        registry_path: *mut c_void,
        hw_initialization_data: *mut VIRTUAL_HW_INITIALIZATION_DATA,
        hw_context: *mut c_void,
    ) -> u32;
    /// `StorPortGetScatterGatherList(HwDeviceExtension, Srb)`.
    pub fn StorPortGetScatterGatherList(
        hw_device_extension: *mut c_void,
        srb: *mut SCSI_REQUEST_BLOCK,
    ) -> *mut STOR_SCATTER_GATHER_LIST;
    /// `StorPortGetPhysicalAddress(HwDeviceExtension, Srb, VirtualAddress, Length)`; the
    /// `STOR_PHYSICAL_ADDRESS` (8 bytes) is returned in RAX.
    pub fn StorPortGetPhysicalAddress(
        hw_device_extension: *mut c_void,
        srb: *mut SCSI_REQUEST_BLOCK,
        virtual_address: *mut c_void,
        length: *mut u32,
    ) -> i64;
    /// `StorPortGetUncachedExtension(HwDeviceExtension, ConfigInfo, NumberOfBytes)`; only
    /// from `HwFindAdapter`.
    pub fn StorPortGetUncachedExtension(
        hw_device_extension: *mut c_void,
        config_info: *mut PORT_CONFIGURATION_INFORMATION,
        number_of_bytes: u32,
    ) -> *mut c_void;
    /// `StorPortSetDeviceQueueDepth(HwDeviceExtension, PathId, TargetId, Lun, Depth)`.
    pub fn StorPortSetDeviceQueueDepth(
        hw_device_extension: *mut c_void,
        path_id: u8,
        target_id: u8,
        lun: u8,
        depth: u32,
    ) -> u8;
    /// `StorPortCompleteRequest(HwDeviceExtension, PathId, TargetId, Lun, SrbStatus)`:
    /// completes every outstanding request of the address (0xFF = all) with `SrbStatus`.
    pub fn StorPortCompleteRequest(
        hw_device_extension: *mut c_void,
        path_id: u8,
        target_id: u8,
        lun: u8,
        srb_status: u8,
    );
    /// `StorPortLogError(HwDeviceExtension, Srb, PathId, TargetId, Lun, ErrorCode, UniqueId)`.
    pub fn StorPortLogError(
        hw_device_extension: *mut c_void,
        srb: *mut SCSI_REQUEST_BLOCK,
        path_id: u8,
        target_id: u8,
        lun: u8,
        error_code: u32,
        unique_id: u32,
    );
    /// `StorPortStallExecution(Delay)` in microseconds (the dump path's polling wait).
    pub fn StorPortStallExecution(delay: u32);
}

#[link(name = "storport.sys", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "C" {
    /// `VOID StorPortNotification(SCSI_NOTIFICATION_TYPE, PVOID HwDeviceExtension, ...)`;
    /// reached only through the typed wrappers below.
    fn StorPortNotification(notification_type: u32, hw_device_extension: *mut c_void, ...);
    /// `ULONG StorPortExtendedFunction(STORPORT_FUNCTION_CODE, PVOID HwDeviceExtension, ...)`;
    /// reached only through the typed wrappers below.
    fn StorPortExtendedFunction(function_code: u32, hw_device_extension: *mut c_void, ...) -> u32;
}

/// `StorPortNotification(RequestComplete, ext, srb)`: hands `srb` back to StorPort.
///
/// # Safety
/// `ext` is the adapter's device extension; `srb` is an SRB StorPort gave this miniport that has
/// not been completed yet (never complete one twice); any IRQL <= DIRQL.
pub unsafe fn request_complete(ext: *mut c_void, srb: *mut SCSI_REQUEST_BLOCK) {
    // SAFETY:
    // 1. `RequestComplete` takes exactly one extra argument, the SRB pointer.
    // 2. The caller guarantees the extension and the not-yet-completed SRB.
    unsafe { StorPortNotification(notification::RequestComplete, ext, srb) }
}

/// `StorPortNotification(NextRequest, ext)`: the miniport can take another request.
///
/// # Safety
/// `ext` is the adapter's device extension.
pub unsafe fn next_request(ext: *mut c_void) {
    // SAFETY:
    // 1. `NextRequest` takes no extra argument.
    // 2. The caller guarantees the extension.
    unsafe { StorPortNotification(notification::NextRequest, ext) }
}

/// `StorPortNotification(NextLuRequest, ext, PathId, TargetId, Lun)`.
///
/// # Safety
/// `ext` is the adapter's device extension.
pub unsafe fn next_lu_request(ext: *mut c_void, path_id: u8, target_id: u8, lun: u8) {
    // SAFETY:
    // 1. `NextLuRequest` takes three `UCHAR`s, passed promoted to `int` as C does.
    // 2. The caller guarantees the extension.
    unsafe {
        StorPortNotification(
            notification::NextLuRequest,
            ext,
            u32::from(path_id),
            u32::from(target_id),
            u32::from(lun),
        )
    }
}

/// `StorPortNotification(ResetDetected, ext)`: the miniport reset its bus on its own.
///
/// # Safety
/// `ext` is the adapter's device extension.
pub unsafe fn reset_detected(ext: *mut c_void) {
    // SAFETY:
    // 1. `ResetDetected` takes no extra argument.
    // 2. The caller guarantees the extension.
    unsafe { StorPortNotification(notification::ResetDetected, ext) }
}

/// `StorPortNotification(BusChangeDetected, ext, PathId)`: StorPort re-enumerates the bus
/// (targets added or removed).
///
/// # Safety
/// `ext` is the adapter's device extension.
pub unsafe fn bus_change_detected(ext: *mut c_void, path_id: u8) {
    // SAFETY:
    // 1. `BusChangeDetected` takes one `UCHAR`, passed promoted to `int`.
    // 2. The caller guarantees the extension.
    unsafe { StorPortNotification(notification::BusChangeDetected, ext, u32::from(path_id)) }
}

/// `StorPortEnablePassiveInitialization(ext, routine)`: from `HwFindAdapter` only; `routine`
/// then runs at PASSIVE_LEVEL after `HwInitialize`. Returns whether StorPort accepted.
///
/// # Safety
/// `ext` is the adapter's device extension, called from `HwFindAdapter`.
pub unsafe fn enable_passive_initialization(
    ext: *mut c_void,
    routine: PHW_PASSIVE_INITIALIZE_ROUTINE,
) -> bool {
    let mut accepted: i32 = 0;
    // SAFETY:
    // 1. `EnablePassiveInitialization` takes the routine and a `LONG *` for the result, which
    //    points at a live local.
    // 2. The caller guarantees the extension and the calling context.
    unsafe {
        StorPortNotification(
            notification::EnablePassiveInitialization,
            ext,
            routine,
            &mut accepted as *mut i32,
        )
    }
    accepted != 0
}

/// `StorPortInitializeDpc(ext, dpc, routine)`.
///
/// # Safety
/// `ext` is the adapter's device extension; `dpc` is storage inside it (or other nonpaged memory
/// that outlives every issue of the DPC), initialised once, from `HwInitialize` or the passive
/// initialisation routine.
pub unsafe fn initialize_dpc(ext: *mut c_void, dpc: *mut STOR_DPC, routine: PHW_DPC_ROUTINE) {
    // SAFETY:
    // 1. `InitializeDpc` takes the `STOR_DPC` pointer and the routine.
    // 2. The caller guarantees the extension and the storage.
    unsafe { StorPortNotification(notification::InitializeDpc, ext, dpc, routine) }
}

/// `StorPortIssueDpc(ext, dpc, arg1, arg2)`: queues the DPC; false if it was already queued.
///
/// # Safety
/// `dpc` was initialised with [`initialize_dpc`] for this `ext`; IRQL <= DIRQL.
pub unsafe fn issue_dpc(
    ext: *mut c_void,
    dpc: *mut STOR_DPC,
    system_argument1: *mut c_void,
    system_argument2: *mut c_void,
) -> bool {
    let mut queued: i32 = 0;
    // SAFETY:
    // 1. `IssueDpc` takes the DPC, two arguments and a `LONG *` for the result (a live local).
    // 2. The caller guarantees the initialised DPC.
    unsafe {
        StorPortNotification(
            notification::IssueDpc,
            ext,
            dpc,
            system_argument1,
            system_argument2,
            &mut queued as *mut i32,
        )
    }
    queued != 0
}

/// `StorPortStateChangeDetected(ext, ChangedEntity, Address, Attributes, HwStateChange,
/// Context)`: returns the `STOR_STATUS_*` StorPort wrote.
///
/// # Safety
/// `ext` is the adapter's device extension; `address` points at a valid `STOR_ADDRESS` for the
/// duration of the call; `callback` (if any) may run on another CPU at DISPATCH_LEVEL.
pub unsafe fn state_change_detected(
    ext: *mut c_void,
    changed_entity: u32,
    address: *mut STOR_ADDRESS,
    attributes: u32,
    callback: PHW_STATE_CHANGE,
    context: *mut c_void,
) -> u32 {
    let mut status = STOR_STATUS_NOT_IMPLEMENTED;
    // SAFETY:
    // 1. `StateChangeDetectedCall` takes entity, address, attributes, callback, context and a
    //    `ULONG *` for the status (a live local).
    // 2. The caller guarantees the extension and address.
    unsafe {
        StorPortNotification(
            notification::StateChangeDetectedCall,
            ext,
            changed_entity,
            address,
            attributes,
            callback,
            context,
            &mut status as *mut u32,
        )
    }
    status
}

/// `StorPortAllocatePool(ext, NumberOfBytes, Tag, &Buffer)`: nonpaged pool; returns the
/// `STOR_STATUS_*` and the buffer (null unless success). IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `ext` is the adapter's device extension.
pub unsafe fn allocate_pool(
    ext: *mut c_void,
    number_of_bytes: u32,
    tag: u32,
) -> (u32, *mut c_void) {
    let mut buffer: *mut c_void = core::ptr::null_mut();
    // SAFETY:
    // 1. `ExtFunctionAllocatePool` takes the size, the tag and a `PVOID *` (a live local).
    // 2. The caller guarantees the extension.
    let status = unsafe {
        StorPortExtendedFunction(
            ext_function::ExtFunctionAllocatePool,
            ext,
            number_of_bytes,
            tag,
            &mut buffer as *mut *mut c_void,
        )
    };
    (status, buffer)
}

/// `StorPortFreePool(ext, Buffer)`. IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `buffer` came from [`allocate_pool`] for this adapter and is not used afterwards.
pub unsafe fn free_pool(ext: *mut c_void, buffer: *mut c_void) -> u32 {
    // SAFETY:
    // 1. `ExtFunctionFreePool` takes the buffer pointer.
    // 2. The caller guarantees the buffer's origin and that it is unused from now on.
    unsafe { StorPortExtendedFunction(ext_function::ExtFunctionFreePool, ext, buffer) }
}

/// `StorPortGetSystemAddress(ext, srb, &Address)`: the system virtual address of the SRB's
/// data buffer; returns the `STOR_STATUS_*` and the address.
///
/// # Safety
/// `srb` is an uncompleted SRB of this adapter with a data buffer.
pub unsafe fn get_system_address(
    ext: *mut c_void,
    srb: *mut SCSI_REQUEST_BLOCK,
) -> (u32, *mut c_void) {
    let mut address: *mut c_void = core::ptr::null_mut();
    // SAFETY:
    // 1. `ExtFunctionGetSystemAddress` takes the SRB and a `PVOID *` (a live local).
    // 2. The caller guarantees the SRB.
    let status = unsafe {
        StorPortExtendedFunction(
            ext_function::ExtFunctionGetSystemAddress,
            ext,
            srb,
            &mut address as *mut *mut c_void,
        )
    };
    (status, address)
}
