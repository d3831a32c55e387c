//! Xen shared rings (io/ring.h): front and back, multi-page, hardened against a hostile peer.
#![no_std]
#![forbid(unsafe_code)]
