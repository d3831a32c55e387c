//! Loom models of the core's lock-free sharing (placeholder filled below).
#![cfg(loom)]
