extern crate std;

use std::prelude::rust_2021::*;
use std::vec;

use proptest::prelude::*;
use xen_abi::xenbus::{ParseXenbusStateError, XenbusState};

use super::{put, store, value};
use crate::xenbus::*;
use crate::xenstore::XsError;
use Action::*;
use XenbusState as S;

/// Applies a plan as if every action succeeded; Publish goes to `target`.
fn run(hs: &mut Handshake, plan: &Plan, target: XenbusState) {
    for a in plan.actions() {
        hs.apply(match *a {
            SetState(s) => Done::SetState(s),
            Publish => Done::Published(target),
            BackendConnected => Done::BackendConnected,
            Quiesce => Done::Quiesced,
            Release => Done::Released,
            Reconfigure { .. } => Done::Reconfigured,
        });
    }
}

/// Drives a handshake (blk style, via Initialised) to frontend state `f`.
fn at(f: XenbusState) -> Handshake {
    let mut hs = Handshake::new();
    let p = hs.start();
    run(&mut hs, &p, S::Initialised);
    let feed = |hs: &mut Handshake, b| {
        let p = hs.on_backend(Backend::State(b));
        run(hs, &p, S::Initialised);
    };
    match f {
        S::Initialising => {}
        S::Initialised => feed(&mut hs, S::InitWait),
        S::Connected => {
            feed(&mut hs, S::InitWait);
            feed(&mut hs, S::Connected);
        }
        S::Reconfiguring => {
            feed(&mut hs, S::InitWait);
            feed(&mut hs, S::Connected);
            feed(&mut hs, S::Reconfiguring);
        }
        S::Closing => {
            feed(&mut hs, S::InitWait);
            feed(&mut hs, S::Connected);
            let p = hs.close();
            run(&mut hs, &p, S::Initialised);
        }
        S::Closed => {
            feed(&mut hs, S::InitWait);
            feed(&mut hs, S::Connected);
            feed(&mut hs, S::Closed);
        }
        _ => unreachable!(),
    }
    assert_eq!(hs.state(), f);
    hs
}

const FRONTEND: [XenbusState; 6] = [
    S::Initialising,
    S::Initialised,
    S::Connected,
    S::Reconfiguring,
    S::Closing,
    S::Closed,
];

/// The module's transition table, written out.
fn expected(f: XenbusState, b: Backend) -> (Vec<Action>, bool) {
    let held = matches!(
        f,
        S::Initialised | S::Connected | S::Reconfiguring | S::Closing
    );
    let qr = |mut v: Vec<Action>| {
        if held {
            v.splice(0..0, [Quiesce, Release]);
        }
        v
    };
    let b = match b {
        Backend::Garbage(_) => return (vec![], true),
        Backend::Gone => S::Closed,
        Backend::State(b) => b,
    };
    let active = matches!(
        f,
        S::Initialising | S::Initialised | S::Connected | S::Reconfiguring
    );
    match (b, f) {
        (S::Unknown | S::Initialising, S::Initialised | S::Connected | S::Reconfiguring) => {
            (vec![], true)
        }
        (S::Unknown | S::Initialising, _) => (vec![], false),
        (S::InitWait, S::Initialising) => (vec![Publish], false),
        (S::InitWait, S::Closing) => (vec![Release, SetState(S::Closed)], false),
        (S::InitWait, S::Closed) => (vec![SetState(S::Initialising), Publish], false),
        (S::InitWait, _) => (qr(vec![SetState(S::Initialising), Publish]), false),
        (S::Initialised, _) => (vec![], active),
        (S::Connected, S::Initialising) => (vec![SetState(S::Closing)], true),
        (S::Connected, S::Initialised) => (vec![BackendConnected, SetState(S::Connected)], false),
        (S::Connected, _) => (vec![], false),
        (S::Closing | S::Closed, S::Closing) => (vec![Release, SetState(S::Closed)], false),
        (S::Closing | S::Closed, S::Closed) => (vec![], false),
        (S::Closing | S::Closed, _) => (qr(vec![SetState(S::Closed)]), false),
        (S::Reconfiguring, S::Connected) => (
            vec![Reconfigure { done: false }, SetState(S::Reconfiguring)],
            false,
        ),
        (S::Reconfigured, S::Reconfiguring) => (
            vec![Reconfigure { done: true }, SetState(S::Connected)],
            false,
        ),
        _ => (vec![], false),
    }
}

#[test]
fn every_frontend_backend_pair() {
    let mut backends: Vec<Backend> = XenbusState::ALL
        .iter()
        .map(|&s| Backend::State(s))
        .collect();
    backends.push(Backend::Gone);
    backends.push(Backend::Garbage(ParseXenbusStateError::NotDecimal));
    for f in FRONTEND {
        for &b in &backends {
            let mut hs = at(f);
            let plan = hs.on_backend(b);
            let (actions, error) = expected(f, b);
            assert_eq!(plan.actions(), &actions[..], "F={f:?} B={b:?}");
            assert_eq!(
                plan.error.is_some(),
                error,
                "F={f:?} B={b:?}: {:?}",
                plan.error
            );
            // Planning changes no state by itself.
            assert_eq!(hs.state(), f);
        }
    }
}

#[test]
fn net_connects_directly_and_reads_features_once() {
    let mut hs = Handshake::new();
    let p = hs.start();
    run(&mut hs, &p, S::Connected);
    let p = hs.on_backend(Backend::State(S::InitWait));
    assert_eq!(p.actions(), &[Publish]);
    run(&mut hs, &p, S::Connected);
    assert_eq!(hs.state(), S::Connected);
    let p = hs.on_backend(Backend::State(S::Connected));
    assert_eq!(p.actions(), &[BackendConnected]);
    run(&mut hs, &p, S::Connected);
    assert!(hs.on_backend(Backend::State(S::Connected)).is_empty());
}

#[test]
fn stale_connected_backend_is_reset() {
    let mut hs = at(S::Initialising);
    let p = hs.on_backend(Backend::State(S::Connected));
    assert_eq!(p.actions(), &[SetState(S::Closing)]);
    run(&mut hs, &p, S::Initialised);
    let p = hs.on_backend(Backend::State(S::Closing));
    assert_eq!(p.actions(), &[SetState(S::Closed)]);
    run(&mut hs, &p, S::Initialised);
    let p = hs.on_backend(Backend::State(S::Closed));
    assert_eq!(p.actions(), &[SetState(S::Initialising)]);
    run(&mut hs, &p, S::Initialised);
    let p = hs.on_backend(Backend::State(S::InitWait));
    assert_eq!(p.actions(), &[Publish]);
}

#[test]
fn closed_by_request_stays_closed() {
    let mut hs = at(S::Closing);
    assert!(!hs.enabled());
    let p = hs.on_backend(Backend::State(S::Closed));
    run(&mut hs, &p, S::Initialised);
    assert_eq!(hs.state(), S::Closed);
    assert!(hs.on_backend(Backend::State(S::InitWait)).is_empty());
    // Started again, it reconnects.
    let p = hs.start();
    run(&mut hs, &p, S::Initialised);
    assert_eq!(
        hs.on_backend(Backend::State(S::InitWait)).actions(),
        &[Publish]
    );
}

#[test]
fn resume_releases_and_restarts() {
    let mut hs = at(S::Connected);
    let p = hs.resume();
    assert_eq!(p.actions(), &[Release, SetState(S::Initialising)]);
    run(&mut hs, &p, S::Initialised);
    assert!(!hs.holds_resources());
    assert_eq!(
        hs.on_backend(Backend::State(S::InitWait)).actions(),
        &[Publish]
    );
}

fn backend_strategy() -> impl Strategy<Value = Backend> {
    prop_oneof![
        8 => (0u32..9).prop_map(|v| Backend::State(XenbusState::from_u32(v).unwrap())),
        1 => Just(Backend::Gone),
        1 => Just(Backend::Garbage(ParseXenbusStateError::Empty)),
    ]
}

proptest! {
    /// Hostile backends (any order, backwards, flapping): resources are published only on
    /// InitWait, never twice without a release, released only when held and quiesced first
    /// when I/O may run, and the frontend only reports Connected/Initialised while holding them.
    #[test]
    fn hostile_backend_orders_keep_invariants(
        seq in proptest::collection::vec(backend_strategy(), 1..60),
        net in any::<bool>(),
        closes in proptest::collection::vec(any::<bool>(), 60),
    ) {
        let target = if net { S::Connected } else { S::Initialised };
        let mut hs = Handshake::new();
        let p = hs.start();
        run(&mut hs, &p, target);
        for (i, b) in seq.into_iter().enumerate() {
            let plan = if closes[i] && i % 7 == 3 { hs.close() } else { hs.on_backend(b) };
            let mut held = hs.holds_resources();
            let mut quiesced = false;
            for a in plan.actions() {
                match a {
                    Publish => {
                        prop_assert_eq!(b, Backend::State(S::InitWait));
                        prop_assert!(!held);
                        held = true;
                    }
                    Release => {
                        prop_assert!(held);
                        prop_assert!(quiesced || hs.state() == S::Closing || !hs.backend_connected() || plan.actions()[0] == Release);
                        held = false;
                    }
                    Quiesce => {
                        prop_assert!(held);
                        quiesced = true;
                    }
                    BackendConnected => prop_assert_eq!(b, Backend::State(S::Connected)),
                    _ => {}
                }
            }
            run(&mut hs, &plan, target);
            prop_assert_eq!(hs.holds_resources(), held);
            if matches!(hs.state(), S::Initialised | S::Connected | S::Reconfiguring) {
                prop_assert!(hs.holds_resources());
            }
            if matches!(hs.state(), S::Closed | S::Initialising) {
                prop_assert!(!hs.holds_resources());
            }
        }
    }
}

/// A driver recording its calls.
#[derive(Default)]
struct Recorder {
    calls: Vec<&'static str>,
    target: Option<XenbusState>,
    fail_publish: bool,
    features: Option<String>,
}

impl FrontendDriver for Recorder {
    type Error = u32;

    fn on_backend_init_wait(&mut self, store: &mut dyn FrontendStore) -> Result<XenbusState, u32> {
        self.calls.push("publish");
        store.write_u32("ring-ref", 8).map_err(|_| 1u32)?;
        store.write("event-channel", b"5").map_err(|_| 1u32)?;
        if self.fail_publish {
            return Err(7);
        }
        Ok(self.target.unwrap_or(S::Initialised))
    }

    fn on_backend_connected(&mut self, store: &mut dyn FrontendStore) -> Result<(), u32> {
        self.calls.push("connected");
        let mut buf = [0; 32];
        let n = store
            .read_backend("feature-x", &mut buf)
            .map_err(|_| 2u32)?;
        self.features = Some(String::from_utf8(buf[..n].to_vec()).unwrap());
        Ok(())
    }

    fn on_backend_closing(&mut self) -> Result<(), u32> {
        self.calls.push("quiesce");
        Ok(())
    }

    fn on_backend_closed(&mut self) {
        self.calls.push("release");
    }
}

fn paths() -> FrontendPaths {
    FrontendPaths {
        frontend: PathBuf::try_from_str("device/vbd/51712").unwrap(),
        backend: PathBuf::try_from_str("/local/domain/0/backend/vbd/7/51712").unwrap(),
    }
}

#[test]
fn block_handshake_through_the_store() {
    let (mut xs, mut pipe) = store();
    let paths = paths();
    put(
        &mut xs,
        &mut pipe,
        &[
            ("/local/domain/0/backend/vbd/7/51712/state", "2"),
            ("/local/domain/0/backend/vbd/7/51712/feature-x", "yes"),
        ],
    );
    let mut hs = Handshake::new();
    let mut d = Recorder::default();
    let p = hs.start();
    execute(&mut hs, &p, &mut *xs, &mut pipe, &paths, &mut d).unwrap();
    assert_eq!(value(&pipe, "device/vbd/51712/state").as_deref(), Some("1"));

    // The first publishing commit conflicts; the transaction is redone.
    pipe.server.fail_commits = 1;
    let b = read_backend_state(&mut *xs, &mut pipe, &paths).unwrap();
    assert_eq!(b, Backend::State(S::InitWait));
    let p = hs.on_backend(b);
    execute(&mut hs, &p, &mut *xs, &mut pipe, &paths, &mut d).unwrap();
    assert_eq!(d.calls, vec!["publish", "publish"]);
    assert_eq!(value(&pipe, "device/vbd/51712/state").as_deref(), Some("3"));
    assert_eq!(
        value(&pipe, "device/vbd/51712/ring-ref").as_deref(),
        Some("8")
    );
    assert_eq!(
        value(&pipe, "device/vbd/51712/event-channel").as_deref(),
        Some("5")
    );

    put(
        &mut xs,
        &mut pipe,
        &[("/local/domain/0/backend/vbd/7/51712/state", "4")],
    );
    let b = read_backend_state(&mut *xs, &mut pipe, &paths).unwrap();
    let p = hs.on_backend(b);
    execute(&mut hs, &p, &mut *xs, &mut pipe, &paths, &mut d).unwrap();
    assert_eq!(d.features.as_deref(), Some("yes"));
    assert_eq!(value(&pipe, "device/vbd/51712/state").as_deref(), Some("4"));

    // Migration: the backend is back in InitWait.
    put(
        &mut xs,
        &mut pipe,
        &[("/local/domain/0/backend/vbd/7/51712/state", "2")],
    );
    let b = read_backend_state(&mut *xs, &mut pipe, &paths).unwrap();
    let p = hs.on_backend(b);
    execute(&mut hs, &p, &mut *xs, &mut pipe, &paths, &mut d).unwrap();
    assert_eq!(
        d.calls,
        vec![
            "publish",
            "publish",
            "connected",
            "quiesce",
            "release",
            "publish"
        ]
    );
    assert_eq!(hs.state(), S::Initialised);

    // Garbage, then the backend vanishes.
    put(
        &mut xs,
        &mut pipe,
        &[("/local/domain/0/backend/vbd/7/51712/state", "connected")],
    );
    let b = read_backend_state(&mut *xs, &mut pipe, &paths).unwrap();
    assert_eq!(b, Backend::Garbage(ParseXenbusStateError::NotDecimal));
    let p = hs.on_backend(b);
    assert!(p.is_empty() && p.error.is_some());
    xs.rm(
        &mut pipe,
        crate::xenstore::TxId::NONE,
        "/local/domain/0/backend/vbd/7/51712",
    )
    .unwrap();
    let b = read_backend_state(&mut *xs, &mut pipe, &paths).unwrap();
    assert_eq!(b, Backend::Gone);
    let p = hs.on_backend(b);
    execute(&mut hs, &p, &mut *xs, &mut pipe, &paths, &mut d).unwrap();
    assert_eq!(hs.state(), S::Closed);
    assert_eq!(value(&pipe, "device/vbd/51712/state").as_deref(), Some("6"));
    assert_eq!(hs.stats().surprise_removals, 1);
    assert_eq!(hs.stats().bad_states, 1);
}

#[test]
fn failed_publish_closes() {
    let (mut xs, mut pipe) = store();
    let paths = paths();
    let mut hs = Handshake::new();
    let mut d = Recorder {
        fail_publish: true,
        ..Default::default()
    };
    let p = hs.start();
    execute(&mut hs, &p, &mut *xs, &mut pipe, &paths, &mut d).unwrap();
    let p = hs.on_backend(Backend::State(S::InitWait));
    let e = execute(&mut hs, &p, &mut *xs, &mut pipe, &paths, &mut d).unwrap_err();
    assert_eq!(
        e,
        FrontendError::Driver {
            action: Publish,
            error: 7
        }
    );
    assert_eq!(d.calls, vec!["publish", "release"]);
    assert_eq!(hs.state(), S::Closing);
    // The aborted transaction left nothing behind.
    assert_eq!(value(&pipe, "device/vbd/51712/ring-ref"), None);
    assert_eq!(value(&pipe, "device/vbd/51712/state").as_deref(), Some("5"));
    assert!(!hs.enabled());

    let mut d = Recorder {
        target: Some(S::Closing),
        ..Default::default()
    };
    let mut hs = Handshake::new();
    let p = hs.on_backend(Backend::State(S::InitWait));
    let _ = p;
    let p = hs.start();
    execute(&mut hs, &p, &mut *xs, &mut pipe, &paths, &mut d).unwrap();
    let p = hs.on_backend(Backend::State(S::InitWait));
    assert_eq!(
        execute(&mut hs, &p, &mut *xs, &mut pipe, &paths, &mut d),
        Err(FrontendError::BadTargetState(S::Closing))
    );
    let _: Option<XsError> = None;
}
