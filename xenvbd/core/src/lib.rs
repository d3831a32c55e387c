//! The portable core of the Xen PV block driver (`xenvbd`).
//!
//! The StorPort glue hands this core SCSI requests ([`ScsiRequest`]: a CDB, the data buffer as a
//! list of guest page segments, the direction, a tag) and receives completions
//! ([`ScsiCompletion`]: SCSI status, sense data, bytes transferred). Everything in between lives
//! here: presenting a VBD as a SCSI disk or CD-ROM (`scsi`), turning block operations into
//! blkif requests on the shared ring(s) and back (`blkif`), and the glue between the two
//! (`adapter`).
//!
//! `#![no_std]`, no allocation and no blocking on the I/O path: pools (bounce pages, persistent
//! grants, request slots) are sized at start.
#![no_std]
#![forbid(unsafe_code)]

pub mod adapter;
pub mod blkif;
pub mod scsi;
mod sync;
pub mod types;

pub use types::*;
