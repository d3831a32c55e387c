//! The Xen public interface as `#[repr(C)]` Rust types.
//!
//! Everything a Windows (or any HVM/PVH) guest's paravirtual drivers exchange with Xen and with
//! backend domains: hypercall numbers and arguments, the shared-info page, grant-table entries,
//! event-channel operations and the FIFO control block, the xenstore wire protocol, the xenbus
//! state enumeration, the blkif, netif and vscsiif ring protocols, and QEMU's emulated-device
//! unplug protocol.
//!
//! # Rules of this crate
//! - `#![no_std]`, no allocation, no `unsafe`: the types derive zerocopy's `FromBytes`,
//!   `IntoBytes`, `KnownLayout` and `Immutable`, so they can be read from and written to shared
//!   memory as plain bytes.
//! - Fixed-width integers only. Windows is LLP64 (`long` is 32 bits) while the x86_64 Xen ABI's
//!   `xen_ulong_t` is 64 bits; see [`types`].
//! - Every item with a C counterpart is found by its C name: constants keep the C spelling
//!   (`BLKIF_OP_READ`, `GTF_reading` as `GrantFlags::READING`), and every type or constant whose Rust
//!   name differs carries `#[doc(alias = "<C name>")]`, so searching the docs for the C name finds it.
//!   Items without a C counterpart (helpers, values Xen documents only in prose) say so.
//! - Types are laid out for the x86_64 ABI unless their name says otherwise (`X86_32` variants exist
//!   where a 64-bit frontend must speak to a backend using the 32-bit layout, as for blkif).
//!
//! # Proof
//! `tests/layout` compiles a probe with the system C compiler against Xen's installed public headers
//! (`libxen-dev`) for `-m64` and `-m32`, and compares the size, alignment and every field's offset
//! and size of each struct here, and the value of each constant, with these definitions.
//!
//! # C names to Rust names
//! The table below is checked by the layout test: every struct the test covers is listed.
//!
#![doc = include_str!("../C-NAMES.md")]
#![no_std]
#![forbid(unsafe_code)]

pub mod blkif;
pub mod cpuid;
pub mod event_channel;
pub mod features;
pub mod grant_table;
pub mod hvm;
pub mod hypercall;
pub mod memory;
pub mod netif;
pub mod ring;
pub mod sched;
pub mod shared_info;
pub mod types;
pub mod unplug;
pub mod version;
pub mod vscsiif;
pub mod xenbus;
pub mod xenstore;
