//! `xenpci.sys`, the Xen PV bus driver for Windows: a WDM bus driver for the Xen platform PCI
//! device, over `xenpci-core`.
//!
//! The crate's pure logic ([`pnp`], [`resources`], [`start`]) builds and is tested on every host.
//! For `target_os = "windows"` (where `cargo xtask drivers` links the crate into `xenpci.sys`)
//! it adds the FDO (module `driver`, safe code over `win-km`'s WDM layer), the generated
//! `DriverEntry` (module `entry`) and the x86-64 instructions behind `xenpci-core`'s hypervisor
//! traits (module `platform`); `entry` and `platform` are the only modules that may use
//! `unsafe`.
#![cfg_attr(target_os = "windows", no_std)]
#![deny(unsafe_code)]

pub mod bus;
#[cfg(test)]
mod bus_tests;
pub mod child;
pub mod enumeration;
pub mod ids;
pub mod pdo;
pub mod pnp;
pub mod resources;
pub mod start;

#[cfg(target_os = "windows")]
mod driver;
#[cfg(target_os = "windows")]
mod entry;
#[cfg(target_os = "windows")]
mod platform;
