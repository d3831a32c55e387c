//! The scripted hostile backend of `xennet_core::testing` over random scripts: no panic, no tag
//! completed twice, no fragment outside its page, no buffer presented twice, every grant ended.

use proptest::prelude::*;
use xennet_core::testing::hostile_run;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_script(script in prop::collection::vec(any::<u8>(), 0..600)) {
        hostile_run(&script);
    }

    /// Scripts made mostly of honest steps: packets, honest answers, polls.
    #[test]
    fn mostly_honest(script in prop::collection::vec(prop_oneof![
        Just(0u8), Just(1u8), Just(5u8), Just(6u8), any::<u8>()
    ], 0..600)) {
        hostile_run(&script);
    }
}

#[test]
fn an_honest_script_sends_and_receives() {
    let script = [
        0x1f, // scatter-gather, GSO and checksum offload for both IP versions
        0, 100, 0, 0x04, // a 114-byte TCP/IPv4 packet with checksum offload
        1,    // the backend answers it
        3, 0, 0, 0, 0, 0, 0, 200, 0, // a 200-byte response in the first posted buffer
        5, 0, // poll
    ];
    let s = hostile_run(&script);
    assert_eq!((s.accepted, s.completed, s.delivered), (1, 1, 1));
    assert_eq!(s.bad_responses, 0);
    // The same with a response naming another buffer: dropped and counted.
    let mut bad = script;
    bad[7] = 1;
    let s = hostile_run(&bad);
    assert_eq!((s.completed, s.delivered, s.bad_responses), (1, 0, 1));
}

#[test]
fn a_device_is_initialised_where_it_lives() {
    use xennet_core::{NetConfig, Netfront, QueueState};
    type Dev = Netfront<2, 8, 8, 16>;
    let mut dev = Box::new(Dev::EMPTY);
    let pool = [[1u64; 8], [2; 8]];
    let rx = [[3u64; 16], [4; 16]];
    dev.init(NetConfig::default(), &pool, &rx);
    assert_eq!(dev.queue_count(), 2);
    for (i, q) in dev.queues_mut().iter().enumerate() {
        assert_eq!((q.index(), q.state()), (i as u16, QueueState::Idle));
        assert_eq!(q.tx_outstanding(), 0);
    }
    // The README quotes these sizes: too big for a kernel stack, hence `EMPTY` and `init`.
    assert_eq!(size_of::<xennet_core::NetQueue<32, 32, 64>>() / 1024, 31);
    assert_eq!(size_of::<xennet_core::NetQueue<64, 64, 256>>() / 1024, 61);
}
