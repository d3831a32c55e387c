//! Tests of the xenstore client against scripted byte streams and a small in-crate daemon.

extern crate std;

mod fake;
mod props;

use std::prelude::rust_2021::*;
use std::vec;

use xen_abi::xenstore::{XsErrno, XsMsgType, XENSTORE_PAYLOAD_MAX, XENSTORE_RING_SIZE};

use super::conn::testing;
use super::wire::{encode_request, parse_watch_event, Arg, FrameHeader, NulList, ReplyParser};
use super::*;
use fake::{msg, Pipe, RingPeer, Script};

type Conn = XsConnection<8, 8, 1024>;

fn new_conn() -> Box<Conn> {
    Box::new(Conn::new())
}

const READ: u32 = XsMsgType::Read as u32;
const ERROR: u32 = XsMsgType::Error as u32;
const WATCH_EVENT: u32 = XsMsgType::WatchEvent as u32;

fn event(path: &str, token: &[u8]) -> Vec<u8> {
    let mut p = path.as_bytes().to_vec();
    p.push(0);
    p.extend_from_slice(token);
    p.push(0);
    msg(WATCH_EVENT, 0, 0, &p)
}

/// What a connection produced from a stream: replies (req id, payload or error) and events.
#[derive(Debug, PartialEq)]
struct Outcome {
    replies: Vec<(u32, Result<Vec<u8>, XsError>)>,
    events: Vec<(usize, Vec<u8>)>,
    stats: XsStats,
}

fn drain(conn: &mut Conn, t: &mut impl Transport) -> Outcome {
    let mut replies = Vec::new();
    loop {
        match conn.poll(t).unwrap() {
            Some(r) => replies.push((r.req_id.0, r.result.map(<[u8]>::to_vec))),
            None => {
                if !conn.poll_again() {
                    break;
                }
            }
        }
    }
    let mut events = Vec::new();
    let mut buf = [0; 4096];
    while let Some(e) = conn.pop_watch_event(&mut buf).unwrap() {
        events.push((e.watch.slot(), e.path.to_vec()));
    }
    Outcome {
        replies,
        events,
        stats: conn.stats(),
    }
}

/// A connection with one registered watch (slot 0) and three reads outstanding (ids 2, 3, 4).
fn conn_with_requests() -> (Box<Conn>, WatchId, Vec<ReqId>) {
    let mut conn = new_conn();
    let (w, wreq) = conn.submit_watch("device").unwrap();
    let mut t = Script::new(&msg(XsMsgType::Watch as u32, wreq.0, 0, b"OK\0"), 4096);
    assert_eq!(conn.poll(&mut t).unwrap().unwrap().result, Ok(&b"OK\0"[..]));
    let ids = (0..3)
        .map(|i| conn.submit_read(TxId::NONE, format_path(i)).unwrap())
        .collect();
    (conn, w, ids)
}

fn format_path(i: usize) -> String {
    std::format!("device/vbd/{i}/state")
}

/// A reply stream answering `ids` out of order, with watch events, an error and a stray reply.
fn mixed_stream(w: WatchId, ids: &[ReqId]) -> Vec<u8> {
    let token = testing::token_of(w);
    let mut s = Vec::new();
    s.extend(msg(READ, ids[2].0, 0, b"4"));
    s.extend(event("device/vbd/0/state", &token));
    s.extend(msg(READ, 999, 0, b"stray"));
    s.extend(msg(ERROR, ids[0].0, 0, b"ENOENT\0"));
    s.extend(event("device", &token));
    s.extend(msg(READ, ids[1].0, 0, b""));
    s
}

fn expected_outcome(ids: &[ReqId]) -> Vec<(u32, Result<Vec<u8>, XsError>)> {
    vec![
        (ids[2].0, Ok(b"4".to_vec())),
        (ids[0].0, Err(XsError::Store(XsErrno::Enoent))),
        (ids[1].0, Ok(Vec::new())),
    ]
}

#[test]
fn out_of_order_replies_are_matched_by_request_id() {
    let (mut conn, w, ids) = conn_with_requests();
    let mut t = Script::new(&mixed_stream(w, &ids), 4096);
    let out = drain(&mut conn, &mut t);
    assert_eq!(out.replies, expected_outcome(&ids));
    assert_eq!(
        out.events,
        vec![(0, b"device/vbd/0/state".to_vec()), (0, b"device".to_vec())]
    );
    assert_eq!(out.stats.stray_replies, 1);
    assert_eq!(conn.outstanding(), 0);
    // Every request went out whole and in order.
    let mut p = ReplyParser::new();
    let mut sent = &t.sent[..];
    let mut seen = Vec::new();
    while !sent.is_empty() {
        sent = &sent[p.push(sent).unwrap()..];
        let f = p.frame().unwrap();
        seen.push((f.header.msg_type(), f.header.req_id));
        p.next();
    }
    let want: Vec<_> = ids.iter().map(|id| (Some(XsMsgType::Read), id.0)).collect();
    assert_eq!(seen, want);
}

#[test]
fn fragmentation_at_every_byte_boundary_and_chunk_size() {
    let (_, w, ids) = conn_with_requests();
    let stream = mixed_stream(w, &ids);
    let reference = {
        let (mut conn, _, _) = conn_with_requests();
        drain(&mut conn, &mut Script::new(&stream, 4096))
    };
    // Two pieces, split at every byte.
    for split in 0..=stream.len() {
        let (mut conn, _, _) = conn_with_requests();
        let mut t = Script::new(&stream[..split], 4096);
        let mut replies = Vec::new();
        while let Some(r) = conn.poll(&mut t).unwrap() {
            replies.push((r.req_id.0, r.result.map(<[u8]>::to_vec)));
        }
        t.input.extend(&stream[split..]);
        let mut rest = drain(&mut conn, &mut t);
        replies.append(&mut rest.replies);
        rest.replies = replies;
        assert_eq!(rest, reference, "split at {split}");
    }
    // Every chunk size.
    for chunk in 1..=stream.len() {
        let (mut conn, _, _) = conn_with_requests();
        assert_eq!(
            drain(&mut conn, &mut Script::new(&stream, chunk)),
            reference,
            "chunk {chunk}"
        );
    }
}

#[test]
fn parser_takes_nothing_past_a_frame() {
    let mut stream = msg(READ, 1, 0, b"abc");
    stream.extend(msg(READ, 2, 0, b""));
    let mut p = ReplyParser::new();
    assert_eq!(p.push(&stream), Ok(19));
    assert_eq!(p.frame().unwrap().payload, b"abc");
    // Until `next`, the parser takes nothing more.
    assert_eq!(p.push(&stream[19..]), Ok(0));
    p.next();
    assert_eq!(p.push(&stream[19..]), Ok(16));
    assert_eq!(p.frame().unwrap().header.req_id, 2);
}

#[test]
fn oversized_length_breaks_the_connection_until_reset() {
    let mut conn = new_conn();
    let id = conn.submit_read(TxId::NONE, "a").unwrap();
    let bad = FrameHeader {
        raw_type: READ,
        req_id: id.0,
        tx_id: 0,
        len: 4097,
    }
    .to_bytes();
    let mut t = Script::new(&bad, 4096);
    assert_eq!(
        conn.poll(&mut t).unwrap_err(),
        XsError::Protocol(ProtocolError::PayloadTooLong { len: 4097 })
    );
    assert_eq!(conn.outstanding(), 0);
    assert_eq!(
        conn.poll(&mut t).unwrap_err(),
        XsError::Protocol(ProtocolError::Broken)
    );
    assert_eq!(
        conn.submit_read(TxId::NONE, "a").unwrap_err(),
        XsError::Protocol(ProtocolError::Broken)
    );
    assert!(conn.take_watch_overflow());
    conn.reset();
    let id = conn.submit_read(TxId::NONE, "a").unwrap();
    let mut t = Script::new(&msg(READ, id.0, 0, &[7; XENSTORE_PAYLOAD_MAX]), 4096);
    assert_eq!(
        conn.poll(&mut t).unwrap().unwrap().result.unwrap().len(),
        XENSTORE_PAYLOAD_MAX
    );
}

#[test]
fn malformed_replies_fail_only_their_request() {
    let mut conn = new_conn();
    let reads: Vec<ReqId> = (0..5)
        .map(|_| conn.submit_read(TxId::NONE, "x").unwrap())
        .collect();
    let wr = conn.submit_write(TxId::NONE, "x", b"v").unwrap();
    let mut s = Vec::new();
    s.extend(msg(1234, reads[0].0, 0, b"")); // unknown type
    s.extend(msg(ERROR, reads[1].0, 0, b"ENOENT")); // missing NUL
    s.extend(msg(ERROR, reads[2].0, 0, b"EWHATEVER\0")); // garbage error name
    s.extend(msg(XsMsgType::Directory as u32, reads[3].0, 0, b"a\0")); // wrong type
    s.extend(msg(READ, 77, 0, b"x")); // unknown request id
    s.extend(msg(XsMsgType::Write as u32, wr.0, 0, b"KO\0")); // not an acknowledgement
    s.extend(event("x", b"nonsense")); // token of no watch
    s.extend(msg(WATCH_EVENT, 0, 0, b"only-a-path\0")); // malformed event
    s.extend(msg(READ, reads[4].0, 0, b"fine"));
    let out = drain(&mut conn, &mut Script::new(&s, 4096));
    let p = |e| Err(XsError::Protocol(e));
    assert_eq!(
        out.replies,
        vec![
            (
                reads[0].0,
                p(ProtocolError::UnknownMessageType { raw: 1234 })
            ),
            (reads[1].0, p(ProtocolError::MissingNul)),
            (reads[2].0, p(ProtocolError::UnknownErrorName)),
            (
                reads[3].0,
                p(ProtocolError::UnexpectedReplyType {
                    expected: XsMsgType::Read,
                    got: XsMsgType::Directory
                })
            ),
            (wr.0, p(ProtocolError::MalformedPayload)),
            (reads[4].0, Ok(b"fine".to_vec())),
        ]
    );
    assert_eq!(out.stats.stray_replies, 1);
    assert_eq!(out.stats.stray_watch_events, 1);
    assert_eq!(out.stats.malformed_watch_events, 1);
    assert_eq!(out.stats.protocol_errors, 7);
    assert!(conn.take_watch_overflow());
    assert!(conn.broken().is_none());
}

#[test]
fn watch_flood_overflows_into_a_rescan_flag() {
    let mut conn = Box::new(XsConnection::<4, 4, 128>::new());
    let (w, req) = conn.submit_watch("data").unwrap();
    let token = testing::token_of(w);
    let mut s = msg(XsMsgType::Watch as u32, req.0, 0, b"OK\0");
    for i in 0..1000 {
        s.extend(event(&std::format!("data/{i}"), &token));
    }
    let mut t = Script::new(&s, 4096);
    assert_eq!(conn.poll(&mut t).unwrap().unwrap().req_id, req);
    let mut polls = 0;
    while conn.poll(&mut t).unwrap().is_none() && conn.poll_again() {
        polls += 1;
    }
    assert!(
        polls > 0,
        "a flood takes several polls (bounded work per poll)"
    );
    let queued = conn.watch_events_queued();
    // 128 bytes hold 6 + 6-byte records of "data/N".
    assert!(queued > 0 && queued <= 128 / 12, "{queued}");
    assert_eq!(conn.watch_events_dropped() as usize + queued, 1000);
    assert!(conn.watch_overflowed());
    let mut buf = [0; 64];
    let first = conn.pop_watch_event(&mut buf).unwrap().unwrap();
    assert_eq!((first.watch, first.path), (w, &b"data/0"[..]));
    while conn.pop_watch_event(&mut buf).unwrap().is_some() {}
    assert!(conn.take_watch_overflow());
    assert!(!conn.take_watch_overflow());
    // The queue is usable again.
    let mut t = Script::new(&event("data/x", &token), 4096);
    assert!(conn.poll(&mut t).unwrap().is_none());
    assert_eq!(
        conn.pop_watch_event(&mut buf).unwrap().unwrap().path,
        b"data/x"
    );
    assert!(!conn.watch_overflowed());
}

#[test]
fn event_queue_wraps_records_around_its_end() {
    let mut conn = Box::new(XsConnection::<4, 4, 50>::new());
    let (w, req) = conn.submit_watch("p").unwrap();
    let token = testing::token_of(w);
    let mut t = Script::new(&msg(XsMsgType::Watch as u32, req.0, 0, b"OK\0"), 4096);
    conn.poll(&mut t).unwrap();
    let mut buf = [0; 64];
    for i in 0..200 {
        let path = std::format!("p/{}", "x".repeat(i % 17));
        t.input.extend(event(&path, &token));
        t.input.extend(event(&path, &token));
        assert!(conn.poll(&mut t).unwrap().is_none());
        for _ in 0..2 {
            assert_eq!(
                conn.pop_watch_event(&mut buf).unwrap().unwrap().path,
                path.as_bytes()
            );
        }
    }
    assert_eq!(conn.watch_events_dropped(), 0);
    // Too small a buffer leaves the event queued.
    t.input.extend(event("p/long/path", &token));
    conn.poll(&mut t).unwrap();
    assert_eq!(
        conn.pop_watch_event(&mut buf[..3]).unwrap_err(),
        XsError::Limit(LimitError::BufferTooSmall { needed: 11 })
    );
    assert_eq!(
        conn.pop_watch_event(&mut buf).unwrap().unwrap().path,
        b"p/long/path"
    );
}

#[test]
fn blocking_operations_against_the_fake_daemon() {
    for chunk in [1, 3, 16, 4096] {
        let mut t = Pipe::new(chunk);
        let mut c = new_conn();
        let mut buf = [0; 4096];
        assert_eq!(
            c.read(&mut t, TxId::NONE, "device/vbd/768/state", &mut buf),
            Err(XsError::Store(XsErrno::Enoent))
        );
        c.write(&mut t, TxId::NONE, "device/vbd/768/state", b"1")
            .unwrap();
        c.write(&mut t, TxId::NONE, "device/vbd/832/state", b"4")
            .unwrap();
        c.mkdir(&mut t, TxId::NONE, "device/vif").unwrap();
        let n = c
            .read(&mut t, TxId::NONE, "device/vbd/768/state", &mut buf)
            .unwrap();
        assert_eq!(&buf[..n], b"1");
        let list = c
            .directory(&mut t, TxId::NONE, "device/vbd", &mut buf)
            .unwrap();
        assert_eq!(list.iter().collect::<Vec<_>>(), vec![&b"768"[..], b"832"]);
        let list = c
            .directory(&mut t, TxId::NONE, "device/vif", &mut buf)
            .unwrap();
        assert!(list.is_empty());
        c.rm(&mut t, TxId::NONE, "device/vbd").unwrap();
        assert_eq!(
            c.directory(&mut t, TxId::NONE, "device/vbd", &mut buf)
                .unwrap_err(),
            XsError::Store(XsErrno::Enoent)
        );
        let perms = [
            Perm::new(Access::None, 5),
            Perm::new(Access::Read, 0),
            Perm::new(Access::Both, 7),
        ];
        c.set_perms(&mut t, TxId::NONE, "device/vif", &perms)
            .unwrap();
        let got = c
            .get_perms(&mut t, TxId::NONE, "device/vif", &mut buf)
            .unwrap();
        assert_eq!(got.iter().collect::<Vec<_>>(), perms);
        assert_eq!(got.owner(), perms[0]);
        let path = c.get_domain_path(&mut t, 12, &mut buf).unwrap();
        assert_eq!(path, b"/local/domain/12");
        // A value as large as the protocol allows, written and read back.
        let big = vec![b'z'; XENSTORE_PAYLOAD_MAX - "big".len() - 1];
        c.write(&mut t, TxId::NONE, "big", &big).unwrap();
        assert_eq!(
            c.read(&mut t, TxId::NONE, "big", &mut buf).unwrap(),
            big.len()
        );
        assert_eq!(
            c.read(&mut t, TxId::NONE, "big", &mut buf[..10]),
            Err(XsError::Limit(LimitError::BufferTooSmall {
                needed: big.len()
            }))
        );
        assert_eq!(c.outstanding(), 0);
        assert!(t.notifies > 0);
    }
}

#[test]
fn transaction_retries_on_eagain_up_to_the_bound() {
    let mut t = Pipe::new(4096);
    let mut c = new_conn();
    c.write(&mut t, TxId::NONE, "counter", b"1").unwrap();
    t.server.fail_commits = 2;
    let mut attempts = 0;
    let value = c
        .transaction(&mut t, 5, |c, t, tx| {
            attempts += 1;
            let mut buf = [0; 16];
            let n = c.read(t, tx, "counter", &mut buf)?;
            let v: u32 = std::str::from_utf8(&buf[..n]).unwrap().parse().unwrap();
            c.write(t, tx, "counter", std::format!("{}", v + 1).as_bytes())?;
            Ok(v + 1)
        })
        .unwrap();
    assert_eq!((attempts, value), (3, 2));
    let mut buf = [0; 16];
    let n = c.read(&mut t, TxId::NONE, "counter", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"2");

    // Exhausted: the last EAGAIN is returned and nothing was committed.
    t.server.fail_commits = 10;
    let mut attempts = 0;
    let r = c.transaction(&mut t, 3, |c, t, tx| {
        attempts += 1;
        c.write(t, tx, "counter", b"99")
    });
    assert_eq!((r, attempts), (Err(XsError::Store(XsErrno::Eagain)), 3));
    let n = c.read(&mut t, TxId::NONE, "counter", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"2");

    // A failing body aborts without retrying.
    t.server.fail_commits = 0;
    let mut attempts = 0;
    let r = c.transaction(&mut t, 3, |c, t, tx| {
        attempts += 1;
        c.write(t, tx, "counter", b"7")?;
        c.read(t, tx, "missing", &mut [0; 4]).map(|_| ())
    });
    assert_eq!((r, attempts), (Err(XsError::Store(XsErrno::Enoent)), 1));
    let n = c.read(&mut t, TxId::NONE, "counter", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"2");
    let ends = t
        .server
        .seen
        .iter()
        .filter(|s| s.0 == XsMsgType::TransactionEnd as u32)
        .count();
    assert_eq!(ends, 3 + 3 + 1);
}

#[test]
fn watches_fire_unwatch_and_reregister_after_resume() {
    let mut t = Pipe::new(7);
    let mut c = new_conn();
    let mut buf = [0; 256];
    let a = c.watch(&mut t, "backend/vbd").unwrap();
    let b = c.watch(&mut t, "control/shutdown").unwrap();
    assert_eq!(c.watch_state(a), Some(WatchState::Active));
    assert_eq!(c.watch_path(b), Some(&b"control/shutdown"[..]));
    // The initial events; the second arrives after the reply `watch` waited for.
    assert_eq!(c.pop_watch_event(&mut buf).unwrap().unwrap().watch, a);
    assert!(c.pop_watch_event(&mut buf).unwrap().is_none());
    assert_eq!(c.wait_watch_event(&mut t, &mut buf).unwrap().watch, b);
    c.write(&mut t, TxId::NONE, "backend/vbd/5/768/state", b"4")
        .unwrap();
    let e = c.pop_watch_event(&mut buf).unwrap().unwrap();
    assert_eq!((e.watch, e.path), (a, &b"backend/vbd/5/768/state"[..]));

    // Resume: the daemon forgot every watch.
    t.server.watches.clear();
    c.reset();
    assert!(c.take_watch_overflow());
    assert_eq!(c.watch_state(a), Some(WatchState::NeedsRewatch));
    c.reregister_watches(&mut t).unwrap();
    assert_eq!(c.watch_state(a), Some(WatchState::Active));
    assert_eq!(c.watch_state(b), Some(WatchState::Active));
    assert_eq!(t.server.watches.len(), 2);
    assert_eq!(t.server.watches[0].1, testing::token_of(a));
    c.pump(&mut t).unwrap();
    while c.pop_watch_event(&mut buf).unwrap().is_some() {}
    c.write(&mut t, TxId::NONE, "control/shutdown", b"poweroff")
        .unwrap();
    assert_eq!(c.pop_watch_event(&mut buf).unwrap().unwrap().watch, b);

    // Re-registering against a daemon that still has them is fine (EEXIST).
    c.reset();
    c.reregister_watches(&mut t).unwrap();
    assert_eq!(c.stats().rewatch_failures, 0);

    // Unwatch: later events are dropped, the id goes stale, the slot is reused.
    c.unwatch(&mut t, a).unwrap();
    c.pump(&mut t).unwrap();
    assert_eq!(c.watch_state(a), None);
    assert_eq!(
        c.unwatch(&mut t, a),
        Err(XsError::Limit(LimitError::UnknownWatch))
    );
    while c.pop_watch_event(&mut buf).unwrap().is_some() {}
    c.write(&mut t, TxId::NONE, "backend/vbd/5/768/state", b"5")
        .unwrap();
    assert!(c.pop_watch_event(&mut buf).unwrap().is_none());
    let a2 = c.watch(&mut t, "backend/vif").unwrap();
    assert_eq!(a2.slot(), a.slot());
    assert_ne!(a2, a);
    assert_eq!(c.watch_path(a), None);
    // An event carrying the stale token is a stray.
    let before = c.stats().stray_watch_events;
    t.server
        .outbox
        .extend(event("backend/vbd", &testing::token_of(a)));
    assert!(c.poll(&mut t).unwrap().is_none());
    assert_eq!(c.stats().stray_watch_events, before + 1);
}

#[test]
fn refused_watch_frees_its_slot() {
    let mut t = Pipe::new(4096);
    let mut c = Box::new(XsConnection::<4, 1, 256>::new());
    let a = c.watch(&mut t, "x").unwrap();
    assert_eq!(
        c.watch(&mut t, "y"),
        Err(XsError::Limit(LimitError::TooManyWatches))
    );
    c.unwatch(&mut t, a).unwrap();
    // The daemon refuses a watch (here: duplicate path and token by hand).
    let (w, req) = c.submit_watch("z").unwrap();
    let mut s = Script::new(&msg(ERROR, req.0, 0, b"EACCES\0"), 4096);
    let r = c.poll(&mut s).unwrap().unwrap();
    assert_eq!(r.result, Err(XsError::Store(XsErrno::Eacces)));
    assert_eq!(c.watch_state(w), None);
    c.watch(&mut t, "z").unwrap();
}

#[test]
fn ring_transport_wraps_indices_and_ring() {
    // Indices start just below 2^32 and at an offset that is not a message boundary.
    for (start, chunk) in [(u32::MAX - 700, 1024), (u32::MAX - 3, 61), (1000, 1)] {
        let mut t = RingPeer::new(start, chunk);
        let mut c = new_conn();
        let mut buf = [0; 4096];
        for i in 0..40usize {
            let value = vec![b'a' + (i % 26) as u8; (i * 97) % 3000];
            let path = std::format!("data/{i}");
            c.write(&mut t, TxId::NONE, &path, &value).unwrap();
            let n = c.read(&mut t, TxId::NONE, &path, &mut buf).unwrap();
            assert_eq!(&buf[..n], &value[..], "start {start} chunk {chunk} i {i}");
        }
        let p = t.page.0.borrow();
        if start > u32::MAX - 10_000 {
            assert!(p.req_prod < start, "the request index wrapped");
        }
        assert_eq!(p.req_prod, p.req_cons);
        assert_eq!(p.rsp_prod, p.rsp_cons);
    }
}

#[test]
fn ring_transport_rejects_impossible_indices() {
    let page = fake::SharedPage::new();
    page.0.borrow_mut().rsp_prod = XENSTORE_RING_SIZE as u32 + 1;
    let mut ring = RingTransport::new(page.clone());
    let mut buf = [0; 8];
    assert_eq!(
        ring.read(&mut buf),
        Err(XsError::Protocol(ProtocolError::RingIndex {
            prod: 1025,
            cons: 0
        }))
    );
    // A consumer index "behind" zero looks like 2^32 - 5 bytes in flight.
    page.0.borrow_mut().rsp_prod = 0;
    page.0.borrow_mut().req_cons = 5;
    assert_eq!(
        ring.write(b"x"),
        Err(XsError::Protocol(ProtocolError::RingIndex {
            prod: 0,
            cons: 5
        }))
    );
    // Exactly full is fine: nothing more fits, nothing is lost.
    page.0.borrow_mut().req_cons = 0;
    assert_eq!(ring.write(&[1; 2000]), Ok(1024));
    assert_eq!(ring.write(&[1; 10]), Ok(0));
    page.0.borrow_mut().rsp_prod = 1024;
    assert_eq!(ring.read(&mut [0; 2000]), Ok(1024));

    // Through a connection: the violation breaks it, and reset + resync recovers.
    let mut c = new_conn();
    c.submit_read(TxId::NONE, "a").unwrap();
    page.0.borrow_mut().rsp_prod = 5000;
    assert!(matches!(
        c.poll(&mut ring),
        Err(XsError::Protocol(ProtocolError::RingIndex { .. }))
    ));
    assert_eq!(
        c.broken(),
        Some(ProtocolError::RingIndex {
            prod: 5000,
            cons: 1024
        })
    );
    page.0.borrow_mut().rsp_cons = 5000;
    ring.resync();
    c.reset();
    assert_eq!(c.poll(&mut ring).map(|r| r.is_none()), Ok(true));
}

#[test]
fn request_limits_are_enforced_before_sending() {
    let mut c = Box::new(XsConnection::<2, 2, 64>::new());
    let lim = |e| Err(XsError::Limit(e));
    let abs_ok = std::format!("/{}", "a".repeat(3071));
    let abs_long = std::format!("/{}", "a".repeat(3072));
    let rel_ok = "a".repeat(2048);
    let rel_long = "a".repeat(2049);
    assert!(wire::check_path(abs_ok.as_bytes()).is_ok());
    assert_eq!(
        c.submit_read(TxId::NONE, &abs_long).map(|_| ()),
        lim(LimitError::PathTooLong {
            len: 3073,
            max: 3072
        })
    );
    assert!(wire::check_path(rel_ok.as_bytes()).is_ok());
    assert_eq!(
        c.submit_read(TxId::NONE, &rel_long).map(|_| ()),
        lim(LimitError::PathTooLong {
            len: 2049,
            max: 2048
        })
    );
    assert_eq!(
        c.submit_read(TxId::NONE, "").map(|_| ()),
        lim(LimitError::EmptyPath)
    );
    assert_eq!(
        c.submit_read(TxId::NONE, "a\0b").map(|_| ()),
        lim(LimitError::NulInArgument)
    );
    // "p\0" + value: 4096 bytes is the maximum payload.
    assert!(c.submit_write(TxId::NONE, "p", &[0; 4094]).is_ok());
    assert_eq!(
        c.submit_write(TxId::NONE, "p", &[0; 4095]).map(|_| ()),
        lim(LimitError::PayloadTooLong { len: 4097 })
    );
    // The send queue holds one maximum-size message until flushed.
    assert_eq!(
        c.submit_write(TxId::NONE, "p", &[0; 100]).map(|_| ()),
        lim(LimitError::SendQueueFull)
    );
    let mut t = Script::new(&[], 4096);
    c.flush(&mut t).unwrap();
    assert_eq!(t.sent.len(), 16 + 4096);
    c.submit_read(TxId::NONE, "q").unwrap();
    assert_eq!(
        c.submit_read(TxId::NONE, "r").map(|_| ()),
        lim(LimitError::TooManyRequests)
    );
    assert_eq!(
        c.submit_set_perms(TxId::NONE, "q", &[]).map(|_| ()),
        lim(LimitError::NoPermissions)
    );
    let long = "w".repeat(MAX_WATCH_PATH + 1);
    assert_eq!(
        c.submit_watch(&long).map(|_| ()),
        lim(LimitError::WatchPathTooLong {
            len: MAX_WATCH_PATH + 1
        })
    );
    // Blocking helpers refuse to run beside asynchronous requests.
    let mut buf = [0; 8];
    assert_eq!(
        c.read(&mut t, TxId::NONE, "x", &mut buf).map(|_| ()),
        lim(LimitError::Busy)
    );

    // The encoder on its own.
    let mut out = [0; 20];
    assert_eq!(
        encode_request(&mut out, XsMsgType::Read, 1, 0, &[Arg::Str(b"abcd")]).map(|_| ()),
        lim(LimitError::BufferTooSmall { needed: 21 })
    );
    assert_eq!(
        encode_request(&mut out, XsMsgType::Read, 1, 0, &[Arg::Str(b"abc")]),
        Ok(20)
    );
    assert_eq!(&out[16..], b"abc\0");
}

#[test]
fn wait_failure_cancels_and_the_late_reply_is_discarded() {
    let mut c = new_conn();
    let mut t = Script::new(&[], 4096);
    let mut buf = [0; 8];
    assert_eq!(
        c.read(&mut t, TxId::NONE, "slow", &mut buf),
        Err(XsError::Transport(TransportError::TimedOut))
    );
    assert_eq!(c.outstanding(), 1, "the id stays reserved until the reply");
    assert_eq!(c.caller_outstanding(), 0);
    let late = t.sent[4..8].try_into().map(u32::from_ne_bytes).unwrap();
    t.input.extend(msg(READ, late, 0, b"late"));
    assert!(c.poll(&mut t).unwrap().is_none());
    assert_eq!(c.stats().abandoned_replies, 1);
    assert_eq!(c.outstanding(), 0);
}

#[test]
fn request_ids_are_unique_among_outstanding_requests() {
    let mut c = Box::new(XsConnection::<3, 1, 16>::new());
    let mut t = Script::new(&[], 4096);
    let mut live: Vec<ReqId> = Vec::new();
    for round in 0..20u32 {
        while let Ok(id) = c.submit_read(TxId::NONE, "a") {
            assert!(!live.contains(&id) && id.0 != 0);
            live.push(id);
        }
        c.flush(&mut t).unwrap();
        // Answer the oldest only, so ids wrap around the ones still in use.
        let id = live.remove(0);
        t.input.extend(msg(READ, id.0, 0, &round.to_ne_bytes()));
        assert_eq!(c.poll(&mut t).unwrap().unwrap().req_id, id);
    }
}

#[test]
fn permissions_parse_and_format() {
    let cases: [(&[u8], Perm); 5] = [
        (b"r0", Perm::new(Access::Read, 0)),
        (b"b5", Perm::new(Access::Both, 5)),
        (b"w1", Perm::new(Access::Write, 1)),
        (b"n2", Perm::new(Access::None, 2)),
        (b"n65535", Perm::new(Access::None, 65535)),
    ];
    for (text, perm) in cases {
        assert_eq!(Perm::parse(text), Ok(perm));
        let mut buf = [0; perms::PERM_TEXT_MAX];
        assert_eq!(perm.format(&mut buf), text);
        assert_eq!(std::format!("{perm}").as_bytes(), text);
    }
    for bad in [
        &b""[..],
        b"r",
        b"x0",
        b"R0",
        b"r-1",
        b"r65536",
        b"r 1",
        b"r1a",
        b"rr1",
    ] {
        assert_eq!(Perm::parse(bad), Err(perms::InvalidPerm), "{bad:?}");
    }
    let list = PermList::parse(b"n5\0r0\0b7\0").unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list.access_for(5), Access::Both);
    assert_eq!(list.access_for(0), Access::Read);
    assert_eq!(list.access_for(7), Access::Both);
    assert_eq!(list.access_for(9), Access::None);
    assert!(Access::Both.can_read() && Access::Both.can_write() && !Access::Read.can_write());
    assert_eq!(PermList::parse(b""), Err(ProtocolError::MalformedPayload));
    assert_eq!(PermList::parse(b"r0"), Err(ProtocolError::MissingNul));
    assert_eq!(
        PermList::parse(b"r0\0q1\0"),
        Err(ProtocolError::MalformedPayload)
    );
}

#[test]
fn nul_lists_and_payload_helpers() {
    let l = NulList::new(b"a\0\0bc\0").unwrap();
    assert_eq!(l.iter().collect::<Vec<_>>(), vec![&b"a"[..], b"", b"bc"]);
    assert_eq!(l.count(), 3);
    assert!(NulList::new(b"").unwrap().is_empty());
    assert_eq!(NulList::new(b"a\0b"), Err(ProtocolError::MissingNul));
    assert_eq!(parse_watch_event(b"p\0t\0"), Ok((&b"p"[..], &b"t"[..])));
    assert_eq!(parse_watch_event(b"p\0t"), Err(ProtocolError::MissingNul));
    assert_eq!(
        parse_watch_event(b"p\0"),
        Err(ProtocolError::MalformedPayload)
    );
    assert_eq!(wire::parse_error_reply(b"EAGAIN\0"), Ok(XsErrno::Eagain));
    assert_eq!(
        wire::parse_error_reply(b"EAGAIN\0\0"),
        Err(ProtocolError::MalformedPayload)
    );
    assert_eq!(wire::parse_u32(b"4294967295"), Some(u32::MAX));
    assert_eq!(wire::parse_u32(b"4294967296"), None);
    assert_eq!(
        testing::parse(&testing::token_of(testing::parse(b"w3-65535").unwrap())),
        testing::parse(b"w3-65535")
    );
    assert_eq!(testing::parse(b"w3-65536"), None);
    assert_eq!(testing::parse(b"x3-1"), None);
}

#[test]
fn transaction_start_reply_must_be_a_nonzero_number() {
    for (payload, ok) in [
        (&b"17\0"[..], true),
        (b"0\0", false),
        (b"17", false),
        (b"x\0", false),
    ] {
        let mut c = new_conn();
        let id = c.submit_transaction_start().unwrap();
        let mut t = Script::new(
            &msg(XsMsgType::TransactionStart as u32, id.0, 0, payload),
            64,
        );
        let r = c.poll(&mut t).unwrap().unwrap().transaction();
        assert_eq!(r.is_ok(), ok, "{payload:?}");
    }
}

#[test]
fn each_write_carries_at_most_one_message() {
    for max_write in [5, 16, 17, 4096] {
        let mut dev = fake::MessageDevice::new(max_write);
        let mut c = new_conn();
        let ids: Vec<ReqId> = (0..6)
            .map(|i| {
                c.submit_write(TxId::NONE, std::format!("k{i}"), b"value")
                    .unwrap()
            })
            .collect();
        let mut answered = Vec::new();
        for _ in 0..1000 {
            if let Some(r) = c.poll(&mut dev).unwrap() {
                assert_eq!(r.ack(), Ok(()));
                answered.push(r.req_id);
            }
            if answered.len() == ids.len() {
                break;
            }
        }
        assert_eq!(answered, ids, "max_write {max_write}");
        assert_eq!(dev.dropped, 0);
        assert_eq!(dev.server.nodes.len(), 6);
    }
}
