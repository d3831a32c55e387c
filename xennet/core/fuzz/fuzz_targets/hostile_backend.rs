//! A hostile netback: the input scripts packets sent, responses written (honest or anything),
//! ring indices moved, polls, buffers returned and reconnects on one queue. The core must never
//! panic, complete a packet twice, present a fragment outside its page or a buffer twice, or
//! keep a grant after disconnecting (`xennet_core::testing::hostile_run` checks it all).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let _ = xennet_core::testing::hostile_run(input);
});
