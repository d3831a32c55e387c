//! The core's xenstore client against the model's xenstored, over the byte stream and over the
//! shared ring.

use std::time::Duration;

use xen_abi::xenstore::XsErrno;
use xen_sim::{StoreFault, Xen};
use xenpci_core::evtchn::{Config as EvConfig, EventChannels, HandlerId};
use xenpci_core::xenstore::{
    Access, Perm, ProtocolError, TransportError, TxId, Wait, WatchState, XsConnection, XsError,
};

/// Runs `f` once over a stream and once over the ring, each on a fresh host.
fn over_both(f: impl Fn(&Xen, &mut dyn Wait)) {
    let xen = Xen::default();
    let mut stream = xen.store_stream();
    f(&xen, &mut stream);
    let xen = Xen::default();
    let mut ring = xen.store_ring();
    f(&xen, &mut ring);
}

fn list(xs: xenpci_core::xenstore::wire::NulList<'_>) -> Vec<String> {
    xs.iter()
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

#[test]
fn read_write_directory_and_permissions() {
    over_both(|xen, t| {
        let mut c: XsConnection = XsConnection::new();
        let mut buf = [0u8; 4096];
        c.write(t, TxId::NONE, "data/a", b"1").unwrap();
        c.mkdir(t, TxId::NONE, "data/dir").unwrap();
        c.write(t, TxId::NONE, "data/dir/x", b"xx").unwrap();
        let n = c.read(t, TxId::NONE, "data/a", &mut buf).unwrap();
        assert_eq!(&buf[..n], b"1");
        let names = list(c.directory(t, TxId::NONE, "data", &mut buf).unwrap());
        assert_eq!(names, ["a", "dir"]);
        assert_eq!(
            c.read(t, TxId::NONE, "data/none", &mut buf),
            Err(XsError::Store(XsErrno::Enoent))
        );
        assert_eq!(
            c.write(t, TxId::NONE, "/local/domain/0/x", b""),
            Err(XsError::Store(XsErrno::Eacces))
        );
        let path = c.get_domain_path(t, 1, &mut buf).unwrap().to_vec();
        assert_eq!(path, b"/local/domain/1");

        // Permissions: the guest owns what it creates and may share it.
        c.set_perms(
            t,
            TxId::NONE,
            "data/a",
            &[
                Perm {
                    access: Access::None,
                    domid: 1,
                },
                Perm {
                    access: Access::Read,
                    domid: 5,
                },
            ],
        )
        .unwrap();
        let perms = c.get_perms(t, TxId::NONE, "data/a", &mut buf).unwrap();
        assert_eq!(perms.owner().domid, 1);
        assert_eq!(perms.access_for(5), Access::Read);
        assert_eq!(
            xen.backend(5).xs_read("/local/domain/1/data/a").unwrap(),
            b"1"
        );
        assert_eq!(
            xen.backend(6).xs_read("/local/domain/1/data/a"),
            Err(XsErrno::Eacces)
        );

        c.rm(t, TxId::NONE, "data/dir").unwrap();
        let names = list(c.directory(t, TxId::NONE, "data", &mut buf).unwrap());
        assert_eq!(names, ["a"]);
    });
}

#[test]
fn transaction_retried_after_a_forced_conflict() {
    over_both(|xen, t| {
        let mut c: XsConnection = XsConnection::new();
        c.write(t, TxId::NONE, "data/counter", b"0").unwrap();
        let dom0 = xen.dom0();
        let mut attempts = 0;
        c.transaction(t, 5, |c, t, tx| {
            attempts += 1;
            let mut buf = [0u8; 16];
            let n = c.read(t, tx, "data/counter", &mut buf)?;
            let v: u32 = std::str::from_utf8(&buf[..n]).unwrap().parse().unwrap();
            if attempts == 1 {
                // Another writer changes the node after the transaction read it.
                dom0.xs_write("/local/domain/1/data/counter", b"10")
                    .unwrap();
            }
            c.write(t, tx, "data/counter", (v + 1).to_string().as_bytes())
        })
        .unwrap();
        assert_eq!(attempts, 2);
        assert_eq!(dom0.xs_read("/local/domain/1/data/counter").unwrap(), b"11");
    });
}

#[test]
fn eagain_storm_is_ridden_out_or_reported() {
    over_both(|xen, t| {
        let mut c: XsConnection = XsConnection::new();
        xen.store_faults(|f| f.eagain_storm(3));
        let mut attempts = 0;
        c.transaction(t, 5, |c, t, tx| {
            attempts += 1;
            c.write(t, tx, "data/k", b"v")
        })
        .unwrap();
        assert_eq!(attempts, 4);
        xen.store_faults(|f| f.eagain_storm(10));
        let r = c.transaction(t, 5, |c, t, tx| c.write(t, tx, "data/k", b"w"));
        assert_eq!(r, Err(XsError::Store(XsErrno::Eagain)));
        assert_eq!(xen.dom0().xs_read("/local/domain/1/data/k").unwrap(), b"v");
    });
}

#[test]
fn watches_fire_and_are_reregistered_after_resume() {
    over_both(|xen, t| {
        let mut c: XsConnection = XsConnection::new();
        let mut buf = [0u8; 256];
        let dom0 = xen.dom0();
        dom0.xs_write("/local/domain/1/device/vif/0/state", b"1")
            .unwrap();
        let w = c.watch(t, "device/vif").unwrap();
        let ev = c.wait_watch_event(t, &mut buf).unwrap();
        assert_eq!((ev.watch, ev.path), (w, &b"device/vif"[..]));
        dom0.xs_write("/local/domain/1/device/vif/0/state", b"4")
            .unwrap();
        let ev = c.wait_watch_event(t, &mut buf).unwrap();
        assert_eq!(ev.path, b"device/vif/0/state");

        // Removing the subtree fires the watch above it.
        dom0.xs_rm("/local/domain/1/device/vif/0").unwrap();
        let ev = c.wait_watch_event(t, &mut buf).unwrap();
        assert_eq!(ev.path, b"device/vif/0");

        // Suspend/resume: the daemon forgets the watch; the client registers it again and the
        // daemon fires it once more.
        xen.store_forget_guest();
        assert_eq!(xen.store_watches(1), 0);
        c.reset();
        assert_eq!(c.submit_rewatches().unwrap(), 0);
        t.begin();
        while c.rewatches_in_flight() {
            if c.poll(t).unwrap().is_none() && c.rewatches_in_flight() {
                t.wait().unwrap();
            }
        }
        assert_eq!(c.watch_state(w), Some(WatchState::Active));
        assert_eq!(xen.store_watches(1), 1);
        c.take_watch_overflow();
        let ev = c.wait_watch_event(t, &mut buf).unwrap();
        assert_eq!(ev.path, b"device/vif");
        dom0.xs_write("/local/domain/1/device/vif/1", b"").unwrap();
        let ev = c.wait_watch_event(t, &mut buf).unwrap();
        assert_eq!(ev.path, b"device/vif/1");

        c.unwatch(t, w).unwrap();
        assert_eq!(xen.store_watches(1), 0);
    });
}

#[test]
fn dropped_and_delayed_watch_events() {
    let xen = Xen::default();
    let mut t = xen.store_stream();
    t.set_timeout(Duration::from_millis(30));
    let mut c: XsConnection = XsConnection::new();
    let mut buf = [0u8; 256];
    let dom0 = xen.dom0();
    c.watch(&mut t, "data").unwrap();
    c.wait_watch_event(&mut t, &mut buf).unwrap();

    xen.store_faults(|f| f.drop_watch_events(1));
    dom0.xs_write("/local/domain/1/data/x", b"").unwrap();
    assert_eq!(
        c.wait_watch_event(&mut t, &mut buf).map(|_| ()),
        Err(XsError::Transport(TransportError::TimedOut))
    );
    assert_eq!(xen.store_faults(|f| f.dropped_watch_events()), 1);

    xen.store_faults(|f| f.delay_watch_events(true));
    dom0.xs_write("/local/domain/1/data/y", b"").unwrap();
    c.pump(&mut t).unwrap();
    assert!(!c.has_watch_event());
    assert_eq!(xen.release_watch_events(), 1);
    let ev = c.wait_watch_event(&mut t, &mut buf).unwrap();
    assert_eq!(ev.path, b"data/y");
}

#[test]
fn malformed_replies_are_typed_errors() {
    over_both(|xen, t| {
        let mut c: XsConnection = XsConnection::new();
        let mut buf = [0u8; 256];
        let cases = [
            (
                StoreFault::UnknownType,
                XsError::Protocol(ProtocolError::UnknownMessageType { raw: 999 }),
            ),
            (
                StoreFault::GarbageErrorName,
                XsError::Protocol(ProtocolError::UnknownErrorName),
            ),
            (
                StoreFault::MissingNul,
                XsError::Protocol(ProtocolError::MissingNul),
            ),
        ];
        for (fault, expected) in cases {
            xen.store_faults(|f| f.corrupt_next_replies(&[fault]));
            let r = c.get_domain_path(t, 1, &mut buf).map(|p| p.to_vec());
            assert_eq!(r, Err(expected), "{fault:?}");
            // The connection carries on.
            assert_eq!(
                c.get_domain_path(t, 1, &mut buf).unwrap(),
                b"/local/domain/1"
            );
        }
    });
}

#[test]
fn wrong_request_id_and_dropped_reply_time_out() {
    let xen = Xen::default();
    let mut t = xen.store_stream();
    t.set_timeout(Duration::from_millis(30));
    let mut c: XsConnection = XsConnection::new();
    let mut buf = [0u8; 64];
    for fault in [StoreFault::WrongReqId, StoreFault::Drop] {
        xen.store_faults(|f| f.corrupt_next_replies(&[fault]));
        assert_eq!(
            c.read(&mut t, TxId::NONE, "domid", &mut buf),
            Err(XsError::Transport(TransportError::TimedOut)),
            "{fault:?}"
        );
        assert_eq!(c.read(&mut t, TxId::NONE, "domid", &mut buf), Ok(1));
    }
    assert!(c.stats().stray_replies >= 1);
}

#[test]
fn oversized_reply_breaks_the_connection_until_reset() {
    over_both(|xen, t| {
        let mut c: XsConnection = XsConnection::new();
        let mut buf = [0u8; 64];
        xen.store_faults(|f| f.corrupt_next_replies(&[StoreFault::OversizedLen]));
        assert_eq!(
            c.read(t, TxId::NONE, "domid", &mut buf),
            Err(XsError::Protocol(ProtocolError::PayloadTooLong {
                len: 4097
            }))
        );
        assert!(c.read(t, TxId::NONE, "domid", &mut buf).is_err());
        assert!(c.broken().is_some());
    });
}

#[test]
fn a_vanished_daemon_is_a_transport_error() {
    over_both(|xen, t| {
        let mut c: XsConnection = XsConnection::new();
        let mut buf = [0u8; 64];
        assert_eq!(c.read(t, TxId::NONE, "domid", &mut buf), Ok(1));
        xen.store_faults(|f| f.vanish());
        assert_eq!(
            c.read(t, TxId::NONE, "domid", &mut buf),
            Err(XsError::Transport(TransportError::Closed))
        );
    });
}

#[test]
fn quotas_reach_the_client_as_store_errors() {
    over_both(|xen, t| {
        let mut c: XsConnection = XsConnection::new();
        assert_eq!(
            c.write(t, TxId::NONE, "data/big", &[b'x'; 3000]),
            Err(XsError::Store(XsErrno::E2big))
        );
        xen.set_store_quota(xen_sim::Quota {
            max_nodes: 6,
            ..xen_sim::Quota::default()
        });
        c.write(t, TxId::NONE, "data/one", b"").unwrap();
        assert_eq!(
            c.write(t, TxId::NONE, "data/two", b""),
            Err(XsError::Store(XsErrno::Enospc))
        );
    });
}

#[test]
fn the_ring_kicks_the_xenstore_event_channel() {
    let xen = Xen::default();
    let mut ring = xen.store_ring();
    let mut chans: EventChannels<_, _, _, 64, 1> =
        EventChannels::unstarted(xen.evtchn_ops(), xen.shared_info(), xen.fifo());
    chans
        .start(EvConfig {
            vcpus: 1,
            prefer_fifo: true,
        })
        .unwrap();
    let port = ring.port();
    chans.attach(port, HandlerId(1), 0).unwrap();
    let mut fired = Vec::new();
    chans.scan(0, 16, |p, _| fired.push(p)).unwrap();
    fired.clear();
    let mut c: XsConnection = XsConnection::new();
    let mut buf = [0u8; 16];
    c.read(&mut ring, TxId::NONE, "domid", &mut buf).unwrap();
    chans.scan(0, 16, |p, _| fired.push(p)).unwrap();
    assert_eq!(fired, vec![port]);
}

#[test]
fn a_backend_on_another_thread() {
    let xen = Xen::default();
    let backend_xen = xen.clone();
    let backend = std::thread::spawn(move || {
        let mut t = backend_xen.dom0().store_stream();
        t.set_timeout(Duration::from_secs(10));
        let mut c: XsConnection = XsConnection::new();
        let mut buf = [0u8; 64];
        c.watch(&mut t, "/local/domain/1/data/ping").unwrap();
        loop {
            c.wait_watch_event(&mut t, &mut buf).unwrap();
            match c.read(&mut t, TxId::NONE, "/local/domain/1/data/ping", &mut buf) {
                Ok(n) => {
                    let mut reply = buf[..n].to_vec();
                    reply.extend_from_slice(b"-pong");
                    c.write(&mut t, TxId::NONE, "/local/domain/1/data/pong", &reply)
                        .unwrap();
                    return;
                }
                Err(e) if e.is_enoent() => continue,
                Err(e) => panic!("{e}"),
            }
        }
    });
    let mut ring = xen.store_ring();
    ring.set_timeout(Duration::from_secs(10));
    let mut c: XsConnection = XsConnection::new();
    let mut buf = [0u8; 64];
    c.watch(&mut ring, "data/pong").unwrap();
    c.wait_watch_event(&mut ring, &mut buf).unwrap();
    // Give the backend time to register its watch, then ping.
    while xen.store_watches(0) == 0 {
        std::thread::yield_now();
    }
    c.write(&mut ring, TxId::NONE, "data/ping", b"ping")
        .unwrap();
    let ev = c.wait_watch_event(&mut ring, &mut buf).unwrap();
    assert_eq!(ev.path, b"data/pong");
    let n = c
        .read(&mut ring, TxId::NONE, "data/pong", &mut buf)
        .unwrap();
    assert_eq!(&buf[..n], b"ping-pong");
    backend.join().unwrap();
}

/// After a resume, `XsConnection::reregister_watches` returns as soon as every watch is registered
/// again, without waiting for traffic a daemon with nothing more to send will never produce.
#[test]
fn reregister_watches_helper_returns_once_all_are_back() {
    over_both(|xen, t| {
        let mut c: XsConnection = XsConnection::new();
        let mut buf = [0u8; 256];
        c.watch(t, "device").unwrap();
        c.wait_watch_event(t, &mut buf).unwrap();
        xen.store_forget_guest();
        c.reset();
        c.reregister_watches(t).unwrap();
        assert_eq!(xen.store_watches(1), 1);
    });
}
