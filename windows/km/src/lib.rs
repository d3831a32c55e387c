//! The small kernel layer of the suite's Windows drivers.
//!
//! Every `unsafe` call from a driver into the Windows kernel goes through this crate (and, for the
//! StorPort and NDIS miniport interfaces, through the suite's binding crate). The base kernel API
//! comes from `windows-sys` (its `Wdk_*` namespaces, imported with `raw-dylib`); what
//! `windows-sys` lacks or places in the wrong module for kernel mode (it lists `DbgPrintEx`, `Zw*`
//! and `Rtl*` under `ntdll.dll`, which a driver cannot import) is declared in `sys`.
//!
//! The crate has two halves:
//! - pure logic (message formatting into a fixed buffer, pool tags, bug-check parameters,
//!   registry parameter validation, NTSTATUS classification, IRQL rules), compiled and tested on
//!   every host;
//! - the kernel bindings, compiled only for `target_os = "windows"` (the driver lane built by
//!   `cargo xtask drivers`).
//!
//! The crate is `#![no_std]` except under `cfg(test)`.
#![cfg_attr(not(test), no_std)]

pub mod event_log;
pub mod fmt_buf;
pub mod irql;
pub mod layout;
pub mod log;
pub mod pages;
pub mod panic_info;
pub mod pool_tag;
pub mod registry;
pub mod status;

#[cfg(target_os = "windows")]
pub mod deferred;
#[cfg(target_os = "windows")]
pub mod event_log_writer;
#[cfg(target_os = "windows")]
pub mod interrupt;
// Also compiled for host tests, against a double of the I/O manager (see its tests).
#[cfg(any(target_os = "windows", test))]
pub mod irp;
#[cfg(target_os = "windows")]
pub mod mdl;
#[cfg(target_os = "windows")]
pub mod pool;
#[cfg(target_os = "windows")]
pub mod pool_box;
#[cfg(target_os = "windows")]
pub mod registry_key;
#[cfg(target_os = "windows")]
mod runtime;
#[cfg(target_os = "windows")]
pub mod sync;
#[cfg(target_os = "windows")]
pub mod sys;
#[cfg(target_os = "windows")]
pub mod wdm;

/// The kernel's base types and functions, re-exported from `windows-sys` for the drivers.
pub use windows_sys;
