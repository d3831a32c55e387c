//! The suite's own `#[repr(C)]` bindings for the two Windows driver interfaces no maintained crate
//! covers: the StorPort virtual-miniport interface (classic `SCSI_REQUEST_BLOCK` and extended
//! `STORAGE_REQUEST_BLOCK`) and the NDIS 6.30 miniport interface.
//!
//! - Structures, constants and callback types compile on every host, so host tests (and the
//!   test doubles of StorPort and NDIS) use the same definitions the drivers use. Each structure
//!   has compile-time size and offset assertions for x86_64 next to its definition; the crate
//!   README names the source of every golden value and which structures are also checked by the
//!   probe against mingw-w64's C headers (`tests/c_probe.rs`) and against `windows-sys`
//!   (`tests/windows_sys.rs`).
//! - The imports (`storport.sys`, `ndis.sys`) are declared with `raw-dylib` and compiled only for
//!   `target_os = "windows"` (modules `storport_sys` and `ndis_sys`). Every function declared
//!   there is an export of that module; helpers that the WDK headers define as inline wrappers
//!   (for example `StorPortAllocatePool`, `StorPortIssueDpc`, `NET_BUFFER_LIST_INFO`) are written
//!   here in Rust over the real exports.
//!
//! Names follow the C headers (`SCSI_REQUEST_BLOCK`, `HwInitialize`) so that the Microsoft
//! documentation applies word for word.
#![cfg_attr(not(test), no_std)]
#![allow(non_camel_case_types, non_snake_case, non_upper_case_globals)]

pub mod layout_rows;
pub mod ndis;
pub mod ndis_nbl;
pub mod ndis_offload;
pub mod srb;
pub mod storport;

#[cfg(target_os = "windows")]
pub mod ndis_sys;
#[cfg(target_os = "windows")]
pub mod storport_sys;

/// Asserts at compile time that `$ty` is `$size` bytes and that each listed field is at its
/// offset (x86_64 only; the drivers are built for x64).
#[macro_export]
macro_rules! assert_layout {
    ($ty:ty, size $size:expr $(, $field:ident @ $offset:expr)* $(,)?) => {
        #[cfg(target_arch = "x86_64")]
        const _: () = {
            assert!(::core::mem::size_of::<$ty>() == $size);
            $(assert!(::core::mem::offset_of!($ty, $field) == $offset);)*
        };
    };
}
