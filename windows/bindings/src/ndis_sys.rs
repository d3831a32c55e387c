//! `ndis.sys` imports (raw-dylib): the calls an NDIS 6.30 miniport makes.
//!
//! Every function here is an export of `ndis.sys` (Windows 8 and later); the image check of
//! `cargo xtask drivers` reads this file's `#[link]` block as the list of names a driver may
//! import from `ndis.sys`. The IRQL each may be called at is NDIS's (stated per function); the
//! miniport's binding module, which wraps these in safe functions, is where that is enforced.
#![allow(missing_docs)]

use core::ffi::c_void;

use windows_sys::Win32::Foundation::UNICODE_STRING;

use crate::ndis::{
    NDIS_CONFIGURATION_OBJECT, NDIS_CONFIGURATION_PARAMETER, NDIS_HANDLE,
    NDIS_MINIPORT_DRIVER_CHARACTERISTICS, NDIS_MINIPORT_INTERRUPT_CHARACTERISTICS,
    NDIS_OID_REQUEST, NDIS_PHYSICAL_ADDRESS, NDIS_PORT_NUMBER, NDIS_STATUS, NDIS_STATUS_INDICATION,
    NET_BUFFER_LIST_POOL_PARAMETERS,
};
use crate::ndis_nbl::{MDL, NET_BUFFER, NET_BUFFER_LIST};

#[link(name = "ndis.sys", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "system" {
    /// PASSIVE_LEVEL, from `DriverEntry`.
    pub fn NdisMRegisterMiniportDriver(
        driver_object: *mut c_void,
        registry_path: *mut UNICODE_STRING,
        miniport_driver_context: NDIS_HANDLE,
        characteristics: *mut NDIS_MINIPORT_DRIVER_CHARACTERISTICS,
        driver_handle: *mut NDIS_HANDLE,
    ) -> NDIS_STATUS;
    /// PASSIVE_LEVEL.
    pub fn NdisMDeregisterMiniportDriver(driver_handle: NDIS_HANDLE);
    /// PASSIVE_LEVEL, from `MiniportInitializeEx`; `attributes` points at one of the
    /// `NDIS_MINIPORT_ADAPTER_*_ATTRIBUTES` structures (told apart by its header type).
    pub fn NdisMSetMiniportAttributes(
        adapter_handle: NDIS_HANDLE,
        attributes: *mut c_void,
    ) -> NDIS_STATUS;
    /// <= DISPATCH_LEVEL.
    pub fn NdisMIndicateReceiveNetBufferLists(
        adapter_handle: NDIS_HANDLE,
        net_buffer_lists: *mut NET_BUFFER_LIST,
        port_number: NDIS_PORT_NUMBER,
        number_of_net_buffer_lists: u32,
        receive_flags: u32,
    );
    /// <= DISPATCH_LEVEL.
    pub fn NdisMSendNetBufferListsComplete(
        adapter_handle: NDIS_HANDLE,
        net_buffer_lists: *mut NET_BUFFER_LIST,
        send_complete_flags: u32,
    );
    /// <= DISPATCH_LEVEL.
    pub fn NdisMOidRequestComplete(
        adapter_handle: NDIS_HANDLE,
        request: *mut NDIS_OID_REQUEST,
        status: NDIS_STATUS,
    );
    /// <= DISPATCH_LEVEL.
    pub fn NdisMIndicateStatusEx(
        adapter_handle: NDIS_HANDLE,
        indication: *mut NDIS_STATUS_INDICATION,
    );
    /// <= DISPATCH_LEVEL.
    pub fn NdisAllocateNetBufferListPool(
        ndis_handle: NDIS_HANDLE,
        parameters: *mut NET_BUFFER_LIST_POOL_PARAMETERS,
    ) -> NDIS_HANDLE;
    /// <= DISPATCH_LEVEL.
    pub fn NdisFreeNetBufferListPool(pool_handle: NDIS_HANDLE);
    /// <= DISPATCH_LEVEL.
    pub fn NdisAllocateNetBufferList(
        pool_handle: NDIS_HANDLE,
        context_size: u16,
        context_back_fill: u16,
    ) -> *mut NET_BUFFER_LIST;
    /// <= DISPATCH_LEVEL.
    pub fn NdisAllocateNetBufferAndNetBufferList(
        pool_handle: NDIS_HANDLE,
        context_size: u16,
        context_back_fill: u16,
        mdl_chain: *mut MDL,
        data_offset: u32,
        data_length: usize,
    ) -> *mut NET_BUFFER_LIST;
    /// <= DISPATCH_LEVEL.
    pub fn NdisFreeNetBufferList(net_buffer_list: *mut NET_BUFFER_LIST);
    /// <= DISPATCH_LEVEL.
    pub fn NdisAllocateNetBuffer(
        pool_handle: NDIS_HANDLE,
        mdl_chain: *mut MDL,
        data_offset: u32,
        data_length: usize,
    ) -> *mut NET_BUFFER;
    /// <= DISPATCH_LEVEL.
    pub fn NdisFreeNetBuffer(net_buffer: *mut NET_BUFFER);
    /// <= DISPATCH_LEVEL: an MDL for nonpaged `virtual_address`.
    pub fn NdisAllocateMdl(
        ndis_handle: NDIS_HANDLE,
        virtual_address: *mut c_void,
        length: u32,
    ) -> *mut MDL;
    /// <= DISPATCH_LEVEL.
    pub fn NdisFreeMdl(mdl: *mut MDL);
    /// PASSIVE_LEVEL.
    pub fn NdisMAllocateSharedMemory(
        adapter_handle: NDIS_HANDLE,
        length: u32,
        cached: u8,
        virtual_address: *mut *mut c_void,
        physical_address: *mut NDIS_PHYSICAL_ADDRESS,
    );
    /// PASSIVE_LEVEL.
    pub fn NdisMFreeSharedMemory(
        adapter_handle: NDIS_HANDLE,
        length: u32,
        cached: u8,
        virtual_address: *mut c_void,
        physical_address: NDIS_PHYSICAL_ADDRESS,
    );
    /// PASSIVE_LEVEL.
    pub fn NdisMRegisterInterruptEx(
        adapter_handle: NDIS_HANDLE,
        interrupt_context: NDIS_HANDLE,
        characteristics: *mut NDIS_MINIPORT_INTERRUPT_CHARACTERISTICS,
        interrupt_handle: *mut NDIS_HANDLE,
    ) -> NDIS_STATUS;
    /// PASSIVE_LEVEL.
    pub fn NdisMDeregisterInterruptEx(interrupt_handle: NDIS_HANDLE);
    /// <= DIRQL: queues the interrupt's DPC on the processors of `target_processors`
    /// (a `GROUP_AFFINITY`); the return value is a processor mask this crate does not use.
    pub fn NdisMQueueDpcEx(
        interrupt_handle: NDIS_HANDLE,
        message_id: u32,
        target_processors: *mut c_void,
        dpc_context: *mut c_void,
    ) -> u32;
    /// <= DISPATCH_LEVEL, once per pause.
    pub fn NdisMPauseComplete(adapter_handle: NDIS_HANDLE);
    /// <= DISPATCH_LEVEL, once per pending restart.
    pub fn NdisMRestartComplete(adapter_handle: NDIS_HANDLE, status: NDIS_STATUS);
    /// <= DISPATCH_LEVEL, once per pending reset.
    pub fn NdisMResetComplete(
        adapter_handle: NDIS_HANDLE,
        status: NDIS_STATUS,
        addressing_reset: u8,
    );
    /// <= DISPATCH_LEVEL: a pointer to `bytes_needed` contiguous bytes at the NB's data start,
    /// copied into `storage` when they span MDLs (null when `storage` is null and they do).
    pub fn NdisGetDataBuffer(
        net_buffer: *mut NET_BUFFER,
        bytes_needed: u32,
        storage: *mut c_void,
        align_multiple: u32,
        align_offset: u32,
    ) -> *mut c_void;
    /// PASSIVE_LEVEL.
    pub fn NdisOpenConfigurationEx(
        configuration_object: *mut NDIS_CONFIGURATION_OBJECT,
        configuration_handle: *mut NDIS_HANDLE,
    ) -> NDIS_STATUS;
    /// PASSIVE_LEVEL; `parameter_type` is an `NDIS_PARAMETER_TYPE`.
    pub fn NdisReadConfiguration(
        status: *mut NDIS_STATUS,
        parameter_value: *mut *mut NDIS_CONFIGURATION_PARAMETER,
        configuration_handle: NDIS_HANDLE,
        keyword: *mut UNICODE_STRING,
        parameter_type: i32,
    );
    /// PASSIVE_LEVEL: the `NetworkAddress` override (a locally administered MAC), if any.
    pub fn NdisReadNetworkAddress(
        status: *mut NDIS_STATUS,
        network_address: *mut *mut c_void,
        network_address_length: *mut u32,
        configuration_handle: NDIS_HANDLE,
    );
    /// PASSIVE_LEVEL.
    pub fn NdisCloseConfiguration(configuration_handle: NDIS_HANDLE);
}
