//! The daemon's side of the wire protocol: framing requests out of a connection's input,
//! answering them, queueing watch events, serving shared rings, and the reply faults.

use std::collections::VecDeque;

use xen_abi::types::DomId;
use xen_abi::xenstore::{
    interface_offsets as off, mask_xenstore_idx, XsErrno, XsMsgType, XENSTORE_ERROR_RINGIDX,
    XENSTORE_PAYLOAD_MAX, XENSTORE_RING_SIZE, XSD_SOCKMSG_SIZE,
};

use super::{Perm, Store};
use crate::{evtchn, State};

/// A way to corrupt one reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreFault {
    /// The header claims a payload longer than `XENSTORE_PAYLOAD_MAX`.
    OversizedLen,
    /// The header carries a type number that names no message type.
    UnknownType,
    /// The payload's final NUL is cut off.
    MissingNul,
    /// The reply is an `XS_ERROR` naming an error that does not exist.
    GarbageErrorName,
    /// The reply carries a request id nobody asked with.
    WrongReqId,
    /// The reply is never sent.
    Drop,
}

#[derive(Debug, Default)]
pub(crate) struct Faults {
    pub(crate) drop_watch_events: u32,
    pub(crate) delay_watch_events: bool,
    pub(crate) delayed: Vec<(u32, Vec<u8>)>,
    pub(crate) dropped_watch_events: u64,
    pub(crate) eagain_storm: u32,
    pub(crate) reply_faults: VecDeque<StoreFault>,
    pub(crate) vanished: bool,
    /// Replies are held back (whole messages, per connection) while set.
    pub(crate) hold_replies: bool,
    pub(crate) held_replies: Vec<(u32, Vec<u8>)>,
}

fn header(ty: u32, req_id: u32, tx_id: u32, len: u32) -> [u8; XSD_SOCKMSG_SIZE] {
    let mut h = [0; XSD_SOCKMSG_SIZE];
    for (i, v) in [ty, req_id, tx_id, len].into_iter().enumerate() {
        h[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
    }
    h
}

impl Store {
    fn push(&mut self, conn: u32, ty: u32, req_id: u32, tx_id: u32, payload: &[u8]) {
        if self.faults.hold_replies && ty != XsMsgType::WatchEvent.as_u32() {
            let mut message = header(ty, req_id, tx_id, payload.len() as u32).to_vec();
            message.extend_from_slice(payload);
            self.faults.held_replies.push((conn, message));
            return;
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.produced += 1;
            c.output
                .extend(header(ty, req_id, tx_id, payload.len() as u32));
            c.output.extend(payload);
        }
    }

    /// Sends a reply, corrupted if a reply fault is queued.
    fn reply(&mut self, conn: u32, ty: XsMsgType, req_id: u32, tx_id: u32, payload: &[u8]) {
        let mut ty = ty.as_u32();
        let mut req_id = req_id;
        let mut payload = payload.to_vec();
        match self.faults.reply_faults.pop_front() {
            None => {}
            Some(StoreFault::Drop) => return,
            Some(StoreFault::OversizedLen) => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.output
                        .extend(header(ty, req_id, tx_id, XENSTORE_PAYLOAD_MAX as u32 + 1));
                    c.output.extend(&payload);
                }
                return;
            }
            Some(StoreFault::UnknownType) => ty = 999,
            Some(StoreFault::MissingNul) if payload.last() == Some(&0) => {
                payload.pop();
            }
            Some(StoreFault::MissingNul) => {}
            Some(StoreFault::GarbageErrorName) => {
                ty = XsMsgType::Error.as_u32();
                payload = b"EWHATEVER\0".to_vec();
            }
            Some(StoreFault::WrongReqId) => req_id = req_id.wrapping_add(0x1000),
        }
        self.push(conn, ty, req_id, tx_id, &payload);
    }

    fn reply_error(&mut self, conn: u32, req_id: u32, tx_id: u32, e: XsErrno) {
        let mut p = e.name().as_bytes().to_vec();
        p.push(0);
        self.reply(conn, XsMsgType::Error, req_id, tx_id, &p);
    }

    pub(crate) fn send_watch_event(&mut self, conn: u32, payload: Vec<u8>) {
        if self.faults.drop_watch_events > 0 {
            self.faults.drop_watch_events -= 1;
            self.faults.dropped_watch_events += 1;
            return;
        }
        if self.faults.delay_watch_events {
            self.faults.delayed.push((conn, payload));
            return;
        }
        self.push(conn, XsMsgType::WatchEvent.as_u32(), 0, 0, &payload);
    }

    /// Answers every complete request in `conn`'s input.
    pub(crate) fn process(&mut self, conn: u32) {
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            if c.closed || c.input.len() < XSD_SOCKMSG_SIZE {
                return;
            }
            let word = |i: usize| {
                u32::from_le_bytes([
                    c.input[i * 4],
                    c.input[i * 4 + 1],
                    c.input[i * 4 + 2],
                    c.input[i * 4 + 3],
                ])
            };
            let (ty, req_id, tx_id, len) = (word(0), word(1), word(2), word(3) as usize);
            if len > XENSTORE_PAYLOAD_MAX {
                // The C daemon drops such a connection.
                c.closed = true;
                c.input.clear();
                return;
            }
            if c.input.len() < XSD_SOCKMSG_SIZE + len {
                return;
            }
            let payload: Vec<u8> = c.input[XSD_SOCKMSG_SIZE..XSD_SOCKMSG_SIZE + len].to_vec();
            c.input.drain(..XSD_SOCKMSG_SIZE + len);
            let domid = c.domid;
            self.handle(conn, domid, ty, req_id, tx_id, &payload);
        }
    }

    fn handle(&mut self, conn: u32, domid: DomId, ty: u32, req_id: u32, tx_id: u32, p: &[u8]) {
        let Some(t) = XsMsgType::from_u32(ty) else {
            self.reply_error(conn, req_id, tx_id, XsErrno::Einval);
            return;
        };
        let tx = (tx_id != 0).then_some(tx_id);
        let c = Some(conn);
        let ok = b"OK\0";
        let args: Vec<&[u8]> = p.split(|&b| b == 0).collect();
        // Most requests carry one NUL-terminated string.
        let single = || -> Result<&[u8], XsErrno> {
            match p.split_last() {
                Some((0, rest)) if !rest.contains(&0) => Ok(rest),
                _ => Err(XsErrno::Einval),
            }
        };
        let result: Result<Vec<u8>, XsErrno> = match t {
            XsMsgType::Read => single().and_then(|path| self.read_on(c, domid, tx, path)),
            XsMsgType::Write => match p.iter().position(|&b| b == 0) {
                Some(i) => self
                    .write_on(c, domid, tx, &p[..i], &p[i + 1..])
                    .map(|()| ok.to_vec()),
                None => Err(XsErrno::Einval),
            },
            XsMsgType::Mkdir => single()
                .and_then(|path| self.mkdir_on(c, domid, tx, path))
                .map(|()| ok.to_vec()),
            XsMsgType::Rm => single()
                .and_then(|path| self.rm_on(c, domid, tx, path))
                .map(|()| ok.to_vec()),
            XsMsgType::Directory => single()
                .and_then(|path| self.directory_on(c, domid, tx, path))
                .map(|names| {
                    let mut out = Vec::new();
                    for n in names {
                        out.extend_from_slice(n.as_bytes());
                        out.push(0);
                    }
                    out
                }),
            XsMsgType::GetPerms => single()
                .and_then(|path| self.get_perms_on(c, domid, tx, path))
                .map(|perms| {
                    let mut out = Vec::new();
                    for perm in perms {
                        out.extend_from_slice(perm.to_string().as_bytes());
                        out.push(0);
                    }
                    out
                }),
            XsMsgType::SetPerms => {
                if p.last() != Some(&0) || args.len() < 3 {
                    Err(XsErrno::Einval)
                } else {
                    let perms: Option<Vec<Perm>> = args[1..args.len() - 1]
                        .iter()
                        .map(|a| Perm::parse(a))
                        .collect();
                    match perms {
                        Some(perms) => self
                            .set_perms_on(c, domid, tx, args[0], perms)
                            .map(|()| ok.to_vec()),
                        None => Err(XsErrno::Einval),
                    }
                }
            }
            XsMsgType::TransactionStart => {
                if tx.is_some() {
                    Err(XsErrno::Ebusy)
                } else {
                    self.transaction_start(conn)
                        .map(|id| format!("{id}\0").into_bytes())
                }
            }
            XsMsgType::TransactionEnd => match single() {
                Ok(b"T") => self.transaction_end(conn, tx_id, true),
                Ok(b"F") => self.transaction_end(conn, tx_id, false),
                _ => Err(XsErrno::Einval),
            }
            .map(|()| ok.to_vec()),
            XsMsgType::GetDomainPath => single().and_then(|d| {
                std::str::from_utf8(d)
                    .ok()
                    .and_then(|d| d.parse::<DomId>().ok())
                    .map(|d| format!("/local/domain/{d}\0").into_bytes())
                    .ok_or(XsErrno::Einval)
            }),
            XsMsgType::Watch | XsMsgType::Unwatch => {
                if p.last() != Some(&0) || args.len() < 3 {
                    Err(XsErrno::Einval)
                } else if t == XsMsgType::Watch {
                    match self.watch(conn, args[0], args[1]) {
                        Ok(w) => {
                            self.reply(conn, t, req_id, tx_id, ok);
                            let path = if w.relative {
                                String::from_utf8_lossy(args[0]).into_owned()
                            } else {
                                w.path.clone()
                            };
                            // The event path is relative already when the watch was.
                            let mut payload = path.into_bytes();
                            payload.push(0);
                            payload.extend_from_slice(&w.token);
                            payload.push(0);
                            self.send_watch_event(conn, payload);
                            return;
                        }
                        Err(e) => Err(e),
                    }
                } else {
                    self.unwatch(conn, args[0], args[1]).map(|()| ok.to_vec())
                }
            }
            XsMsgType::ResetWatches => {
                if let Some(cn) = self.conns.get_mut(&conn) {
                    cn.watches.clear();
                }
                Ok(ok.to_vec())
            }
            XsMsgType::WatchEvent | XsMsgType::Error | XsMsgType::DirectoryPart => {
                Err(XsErrno::Einval)
            }
            _ if domid != 0 => Err(XsErrno::Eacces),
            _ => Err(XsErrno::Enosys),
        };
        match result {
            Ok(payload) => self.reply(conn, t, req_id, tx_id, &payload),
            Err(e) => self.reply_error(conn, req_id, tx_id, e),
        }
    }
}

pub(crate) fn release_delayed(s: &mut State) -> usize {
    let events = std::mem::take(&mut s.store.faults.delayed);
    let n = events.len();
    for (conn, payload) in events {
        s.store
            .push(conn, XsMsgType::WatchEvent.as_u32(), 0, 0, &payload);
    }
    n
}

/// Sends the replies held back, in order; returns how many.
pub(crate) fn release_held_replies(s: &mut State) -> usize {
    let replies = std::mem::take(&mut s.store.faults.held_replies);
    let n = replies.len();
    for (conn, message) in replies {
        if let Some(c) = s.store.conns.get_mut(&conn) {
            c.produced += 1;
            c.output.extend(message);
        }
    }
    n
}

/// When delaying was switched off, what was held back goes out.
pub(crate) fn release_if_undelayed(s: &mut State) {
    if !s.store.faults.delay_watch_events {
        release_delayed(s);
    }
}

/// Serves every ring connection: takes requests from `req`, answers them, and moves replies and
/// events into `rsp` as space allows, kicking the guest's event channel when bytes went out.
pub(crate) fn service_rings(s: &mut State) {
    if s.store.faults.vanished {
        return;
    }
    loop {
        let mut progress = false;
        let rings: Vec<(u32, u64, Option<u32>)> = s
            .store
            .conns
            .iter()
            .filter(|(_, c)| !c.closed)
            .filter_map(|(&id, c)| c.ring.map(|g| (id, g, c.ring_port)))
            .collect();
        for (id, gfn, port) in rings {
            progress |= service_ring(s, id, gfn, port);
        }
        if !progress {
            return;
        }
    }
}

fn service_ring(s: &mut State, id: u32, gfn: u64, port: Option<u32>) -> bool {
    let mem = &mut s.mem;
    let (Ok(cons), Ok(prod)) = (
        mem.read_u32(gfn, off::REQ_CONS),
        mem.read_u32(gfn, off::REQ_PROD),
    ) else {
        return false;
    };
    let avail = prod.wrapping_sub(cons) as usize;
    if avail > XENSTORE_RING_SIZE {
        let _ = mem.write_u32(gfn, off::ERROR, XENSTORE_ERROR_RINGIDX);
        if let Some(c) = s.store.conns.get_mut(&id) {
            c.closed = true;
        }
        return false;
    }
    let mut progress = false;
    if avail > 0 {
        let mut bytes = vec![0; avail];
        for (i, b) in bytes.iter_mut().enumerate() {
            let at = mask_xenstore_idx(cons.wrapping_add(i as u32));
            let mut one = [0];
            let _ = mem.read(gfn, off::REQ + at, &mut one);
            *b = one[0];
        }
        let _ = mem.write_u32(gfn, off::REQ_CONS, prod);
        if let Some(c) = s.store.conns.get_mut(&id) {
            c.input.extend_from_slice(&bytes);
        }
        s.store.process(id);
        progress = true;
    }
    let consumed = progress;
    let mem = &mut s.mem;
    let (Ok(rcons), Ok(rprod)) = (
        mem.read_u32(gfn, off::RSP_CONS),
        mem.read_u32(gfn, off::RSP_PROD),
    ) else {
        return progress;
    };
    let used = rprod.wrapping_sub(rcons) as usize;
    if used > XENSTORE_RING_SIZE {
        let _ = mem.write_u32(gfn, off::ERROR, XENSTORE_ERROR_RINGIDX);
        if let Some(c) = s.store.conns.get_mut(&id) {
            c.closed = true;
        }
        return progress;
    }
    let Some(c) = s.store.conns.get_mut(&id) else {
        return progress;
    };
    let n = (XENSTORE_RING_SIZE - used).min(c.output.len());
    if n > 0 {
        for i in 0..n {
            let b = c.output.pop_front().unwrap_or(0);
            let at = mask_xenstore_idx(rprod.wrapping_add(i as u32));
            let _ = mem.write(gfn, off::RSP + at, &[b]);
        }
        let _ = mem.write_u32(gfn, off::RSP_PROD, rprod.wrapping_add(n as u32));
        progress = true;
    }
    if consumed || n > 0 {
        // Like xenstored: tell the guest that space was freed or responses are there.
        c.kicks += 1;
        if let Some(p) = port {
            let _ = evtchn::send(s, 0, p);
        }
    }
    progress
}

/// The domain is gone: its connections close and `@releaseDomain` fires.
pub(crate) fn release_domain(s: &mut State, domid: DomId) {
    let ids: Vec<u32> = s
        .store
        .conns
        .iter()
        .filter(|(_, c)| c.domid == domid)
        .map(|(id, _)| *id)
        .collect();
    for id in ids {
        if let Some(c) = s.store.conns.get_mut(&id) {
            c.closed = true;
            c.watches.clear();
        }
        s.store.txs.retain(|_, t| t.conn != id);
    }
    s.store.fire_special("@releaseDomain");
    service_rings(s);
}
