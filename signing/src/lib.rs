//! Test-signing of the suite's driver packages on Linux.
//!
//! - [`pe_hash`]: the Authenticode hash of a PE image (what a catalog records for a `.sys`);
//! - [`catalog`]: the package catalog (`.cat`) — generated here, read back and compared with
//!   the files on disk;
//! - [`tools`]: the test code-signing certificate (openssl) and signing and verification with
//!   Debian's `osslsigncode`.
//!
//! Everything is host code; the inputs (images, catalogs) are treated as untrusted and a
//! malformed one gives a typed error.
#![forbid(unsafe_code)]

pub mod catalog;
pub mod pe_hash;
pub mod tools;

#[cfg(test)]
mod testpe;
