//! The lab program: runs inside a Linux dom0 booted on real Xen (under QEMU, by
//! `cargo xtask lab`) and exercises the project's code against Xen and Linux's real backends.
//!
//! - [`platform`]: Xen's Linux devices (gntalloc, gntdev, evtchn, xenbus) as safe types; the only
//!   place with `unsafe` code.
//! - [`scenario`]: what a scenario is and how it reports key figures and failures.
//! - [`scenarios`]: the registry of scenarios.
//! - [`runner`]: runs scenarios and writes [`lab_protocol`] records to the console.
//!
//! See `lab/README.md` for the lab as a whole.
#![deny(unsafe_code)]

#[allow(unsafe_code)]
pub mod platform;
pub mod runner;
pub mod scenario;
pub mod scenarios;
