//! A hostile backend against the PvSCSI engine: arbitrary responses (rqid, status, sense length,
//! residual, producer indices), pages mapped and unmapped at will, timer jumps, aborts, resets,
//! disconnects and reconnects with arbitrary limits. `xenscsi_core::hostile::run` panics if a
//! request completes twice or not at all, completes while a grant on its pages is still held, or
//! a grant is ended twice.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = xenscsi_core::hostile::run(data);
});
