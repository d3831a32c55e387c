//! A small xenstored for unit tests: a tree of nodes with permissions, transactions (snapshot and
//! commit, with commits forced to fail with EAGAIN on demand), and watches, speaking the wire
//! protocol over bytes. Plus the transports the tests drive it through: an in-memory pipe with a
//! chunk limit, and the shared ring page.

extern crate std;

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::prelude::rust_2021::*;
use std::rc::Rc;
use std::vec;

use xen_abi::xenstore::{
    mask_xenstore_idx, XenstoreDomainInterface, XsMsgType, XENSTORE_RING_SIZE,
};

use crate::xenstore::wire::{FrameHeader, HEADER_SIZE};
use crate::xenstore::{RingTransport, StorePage, Transport, TransportError, Wait, XsError};

/// Encodes one message as the daemon would.
pub fn msg(t: u32, req_id: u32, tx_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = FrameHeader {
        raw_type: t,
        req_id,
        tx_id,
        len: payload.len() as u32,
    }
    .to_bytes()
    .to_vec();
    out.extend_from_slice(payload);
    out
}

type Tree = BTreeMap<Vec<u8>, Node>;

#[derive(Clone, Debug)]
pub struct Node {
    pub value: Vec<u8>,
    pub perms: Vec<Vec<u8>>,
}

#[derive(Default)]
pub struct FakeXenstored {
    pub nodes: Tree,
    txns: BTreeMap<u32, (Tree, Vec<Vec<u8>>)>,
    next_tx: u32,
    /// Registered watches: (path, token).
    pub watches: Vec<(Vec<u8>, Vec<u8>)>,
    /// Commits to fail with EAGAIN before one succeeds.
    pub fail_commits: u32,
    /// Every request handled: (type, req_id, tx_id).
    pub seen: Vec<(u32, u32, u32)>,
    inbox: Vec<u8>,
    pub outbox: VecDeque<u8>,
}

fn err(name: &str) -> (u32, Vec<u8>) {
    let mut p = name.as_bytes().to_vec();
    p.push(0);
    (XsMsgType::Error.as_u32(), p)
}

fn ok(t: XsMsgType) -> (u32, Vec<u8>) {
    (t.as_u32(), b"OK\0".to_vec())
}

fn strings(payload: &[u8]) -> Vec<&[u8]> {
    let mut v: Vec<&[u8]> = payload.split(|&b| b == 0).collect();
    if payload.last() == Some(&0) {
        v.pop();
    }
    v
}

fn parent(path: &[u8]) -> Option<&[u8]> {
    let i = path.iter().rposition(|&b| b == b'/')?;
    if i == 0 {
        None
    } else {
        Some(&path[..i])
    }
}

fn create(tree: &mut Tree, path: &[u8]) {
    let mut p = Some(path);
    while let Some(at) = p {
        tree.entry(at.to_vec()).or_insert_with(|| Node {
            value: Vec::new(),
            perms: vec![b"n0".to_vec()],
        });
        p = parent(at);
    }
}

fn is_under(path: &[u8], top: &[u8]) -> bool {
    path == top || (path.starts_with(top) && path.get(top.len()) == Some(&b'/'))
}

impl FakeXenstored {
    pub fn new() -> Self {
        FakeXenstored {
            next_tx: 1,
            ..Default::default()
        }
    }

    pub fn receive(&mut self, bytes: &[u8]) {
        self.inbox.extend_from_slice(bytes);
    }

    /// Handles every complete request received so far.
    pub fn process(&mut self) {
        loop {
            if self.inbox.len() < HEADER_SIZE {
                return;
            }
            let h = FrameHeader::from_bytes(self.inbox[..HEADER_SIZE].try_into().unwrap());
            let total = HEADER_SIZE + h.len as usize;
            if self.inbox.len() < total {
                return;
            }
            let payload: Vec<u8> = self.inbox[HEADER_SIZE..total].to_vec();
            self.inbox.drain(..total);
            self.seen.push((h.raw_type, h.req_id, h.tx_id));
            if let Some((t, reply)) = self.handle(&h, &payload) {
                self.outbox.extend(msg(t, h.req_id, h.tx_id, &reply));
            }
        }
    }

    pub fn fire(&mut self, changed: &[u8]) {
        let hits: Vec<Vec<u8>> = self
            .watches
            .iter()
            .filter(|(p, _)| is_under(changed, p) || is_under(p, changed))
            .map(|(p, tok)| {
                let path = if is_under(changed, p) { changed } else { p };
                let mut payload = path.to_vec();
                payload.push(0);
                payload.extend_from_slice(tok);
                payload.push(0);
                payload
            })
            .collect();
        for payload in hits {
            self.outbox
                .extend(msg(XsMsgType::WatchEvent.as_u32(), 0, 0, &payload));
        }
    }

    fn handle(&mut self, h: &FrameHeader, payload: &[u8]) -> Option<(u32, Vec<u8>)> {
        let (t, reply) = self.handle_inner(h, payload);
        (t != QUEUED).then_some((t, reply))
    }

    fn handle_inner(&mut self, h: &FrameHeader, payload: &[u8]) -> (u32, Vec<u8>) {
        let Some(t) = h.msg_type() else {
            return err("EINVAL");
        };
        let args = strings(payload);
        let tx = h.tx_id;
        if tx != 0 && !self.txns.contains_key(&tx) {
            return err("ENOENT");
        }
        let mut changed: Option<Vec<u8>> = None;
        let reply = {
            let tree = if tx == 0 {
                &mut self.nodes
            } else {
                &mut self.txns.get_mut(&tx).unwrap().0
            };
            match t {
                XsMsgType::Read => match args.first().and_then(|p| tree.get(*p)) {
                    Some(n) => (t.as_u32(), n.value.clone()),
                    None => err("ENOENT"),
                },
                XsMsgType::Write => {
                    let Some(i) = payload.iter().position(|&b| b == 0) else {
                        return err("EINVAL");
                    };
                    let path = &payload[..i];
                    create(tree, path);
                    tree.get_mut(path).unwrap().value = payload[i + 1..].to_vec();
                    changed = Some(path.to_vec());
                    ok(t)
                }
                XsMsgType::Mkdir => {
                    create(tree, args[0]);
                    changed = Some(args[0].to_vec());
                    ok(t)
                }
                XsMsgType::Rm => {
                    let top = args[0].to_vec();
                    if !tree.contains_key(&top) {
                        return err("ENOENT");
                    }
                    tree.retain(|k, _| !is_under(k, &top));
                    changed = Some(top);
                    ok(t)
                }
                XsMsgType::Directory => {
                    let top = args[0];
                    if !tree.contains_key(top) {
                        return err("ENOENT");
                    }
                    let mut out = Vec::new();
                    for k in tree.keys() {
                        if k.len() > top.len() + 1
                            && is_under(k, top)
                            && !k[top.len() + 1..].contains(&b'/')
                        {
                            out.extend_from_slice(&k[top.len() + 1..]);
                            out.push(0);
                        }
                    }
                    (t.as_u32(), out)
                }
                XsMsgType::GetPerms => match tree.get(args[0]) {
                    Some(n) => (
                        t.as_u32(),
                        n.perms
                            .iter()
                            .flat_map(|p| p.iter().copied().chain([0]))
                            .collect(),
                    ),
                    None => err("ENOENT"),
                },
                XsMsgType::SetPerms => match tree.get_mut(args[0]) {
                    Some(n) if args.len() > 1 => {
                        n.perms = args[1..].iter().map(|p| p.to_vec()).collect();
                        ok(t)
                    }
                    Some(_) => err("EINVAL"),
                    None => err("ENOENT"),
                },
                XsMsgType::GetDomainPath => {
                    let mut p = b"/local/domain/".to_vec();
                    p.extend_from_slice(args[0]);
                    p.push(0);
                    (t.as_u32(), p)
                }
                _ => (NOT_HANDLED, Vec::new()),
            }
        };
        if reply.0 != NOT_HANDLED {
            if let Some(c) = changed {
                match self.txns.get_mut(&tx) {
                    Some((_, pending)) => pending.push(c),
                    None => self.fire(&c),
                }
            }
            return reply;
        }
        match t {
            XsMsgType::Watch | XsMsgType::Unwatch => {
                if args.len() < 2 {
                    return err("EINVAL");
                }
                let w = (args[0].to_vec(), args[1].to_vec());
                let at = self.watches.iter().position(|x| *x == w);
                if t == XsMsgType::Watch {
                    if at.is_some() {
                        return err("EEXIST");
                    }
                    self.watches.push(w.clone());
                    // Reply first, then the initial event, as the daemon does.
                    let mut out = msg(t.as_u32(), h.req_id, 0, b"OK\0");
                    let mut ev = w.0.clone();
                    ev.push(0);
                    ev.extend_from_slice(&w.1);
                    ev.push(0);
                    out.extend(msg(XsMsgType::WatchEvent.as_u32(), 0, 0, &ev));
                    self.outbox.extend(out);
                    return (QUEUED, Vec::new());
                }
                match at {
                    Some(i) => {
                        self.watches.remove(i);
                        ok(t)
                    }
                    None => err("ENOENT"),
                }
            }
            XsMsgType::TransactionStart => {
                let id = self.next_tx;
                self.next_tx += 1;
                self.txns.insert(id, (self.nodes.clone(), Vec::new()));
                let mut p = std::format!("{id}").into_bytes();
                p.push(0);
                (t.as_u32(), p)
            }
            XsMsgType::TransactionEnd => {
                let (tree, changed) = self.txns.remove(&tx).unwrap_or_default();
                if tx == 0 {
                    return err("ENOENT");
                }
                if args.first() == Some(&&b"T"[..]) {
                    if self.fail_commits > 0 {
                        self.fail_commits -= 1;
                        return err("EAGAIN");
                    }
                    self.nodes = tree;
                    for c in changed {
                        self.fire(&c);
                    }
                }
                ok(t)
            }
            _ => err("ENOSYS"),
        }
    }
}

/// `handle_inner`'s marker for a reply it queued itself.
const QUEUED: u32 = u32::MAX;
/// `handle_inner`'s marker for a request the tree operations do not cover.
const NOT_HANDLED: u32 = u32::MAX - 1;

/// The daemon behind an in-memory pipe that moves at most `chunk` bytes per call.
pub struct Pipe {
    pub server: FakeXenstored,
    pub chunk: usize,
    pub waits: usize,
    pub max_waits: usize,
    pub notifies: usize,
}

impl Pipe {
    pub fn new(chunk: usize) -> Self {
        Pipe {
            server: FakeXenstored::new(),
            chunk,
            waits: 0,
            max_waits: 100_000,
            notifies: 0,
        }
    }
}

impl Transport for Pipe {
    fn write(&mut self, data: &[u8]) -> Result<usize, XsError> {
        let n = data.len().min(self.chunk);
        self.server.receive(&data[..n]);
        Ok(n)
    }
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, XsError> {
        let n = buf.len().min(self.chunk).min(self.server.outbox.len());
        for (dst, src) in buf[..n].iter_mut().zip(self.server.outbox.drain(..n)) {
            *dst = src;
        }
        Ok(n)
    }
    fn notify(&mut self) -> Result<(), XsError> {
        self.notifies += 1;
        Ok(())
    }
}

impl Wait for Pipe {
    // Deterministic: the bound is the count of waits.
    fn begin(&mut self) {}
    fn expired(&mut self) -> bool {
        false
    }
    fn wait(&mut self) -> Result<(), XsError> {
        self.waits += 1;
        if self.waits > self.max_waits {
            return Err(TransportError::TimedOut.into());
        }
        self.server.process();
        Ok(())
    }
}

/// Bytes scripted in advance; everything written is recorded.
pub struct Script {
    pub input: VecDeque<u8>,
    pub chunk: usize,
    pub sent: Vec<u8>,
}

impl Script {
    pub fn new(input: &[u8], chunk: usize) -> Self {
        Script {
            input: input.iter().copied().collect(),
            chunk,
            sent: Vec::new(),
        }
    }
}

impl Transport for Script {
    fn write(&mut self, data: &[u8]) -> Result<usize, XsError> {
        self.sent.extend_from_slice(data);
        Ok(data.len())
    }
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, XsError> {
        let n = buf.len().min(self.chunk).min(self.input.len());
        for (dst, src) in buf[..n].iter_mut().zip(self.input.drain(..n)) {
            *dst = src;
        }
        Ok(n)
    }
}

impl Wait for Script {
    // Deterministic: the bound is the count of waits.
    fn begin(&mut self) {}
    fn expired(&mut self) -> bool {
        false
    }
    fn wait(&mut self) -> Result<(), XsError> {
        Err(TransportError::TimedOut.into())
    }
}

/// The shared page, shared between the client's transport and the daemon in the test.
#[derive(Clone)]
pub struct SharedPage(pub Rc<RefCell<XenstoreDomainInterface>>);

impl SharedPage {
    pub fn new() -> Self {
        SharedPage(Rc::new(RefCell::new(XenstoreDomainInterface {
            req: [0; XENSTORE_RING_SIZE],
            rsp: [0; XENSTORE_RING_SIZE],
            req_cons: 0,
            req_prod: 0,
            rsp_cons: 0,
            rsp_prod: 0,
            server_features: 0,
            connection: 0,
            error: 0,
        })))
    }
}

impl StorePage for SharedPage {
    fn load_u32(&self, offset: usize) -> u32 {
        self.0.borrow().load_u32(offset)
    }
    fn store_u32(&mut self, offset: usize, value: u32) {
        self.0.borrow_mut().store_u32(offset, value)
    }
    fn read_bytes(&self, offset: usize, out: &mut [u8]) {
        self.0.borrow().read_bytes(offset, out)
    }
    fn write_bytes(&mut self, offset: usize, data: &[u8]) {
        self.0.borrow_mut().write_bytes(offset, data)
    }
}

/// The daemon on the other side of a shared page, moving at most `chunk` bytes each way per wait.
pub struct RingPeer {
    pub client: RingTransport<SharedPage>,
    pub page: SharedPage,
    pub server: FakeXenstored,
    pub chunk: usize,
    pub waits: usize,
}

impl RingPeer {
    /// A page whose four indices all start at `start` (to exercise index and ring wrap).
    pub fn new(start: u32, chunk: usize) -> Self {
        let page = SharedPage::new();
        {
            let mut p = page.0.borrow_mut();
            p.req_cons = start;
            p.req_prod = start;
            p.rsp_cons = start;
            p.rsp_prod = start;
        }
        RingPeer {
            client: RingTransport::new(page.clone()),
            page,
            server: FakeXenstored::new(),
            chunk,
            waits: 0,
        }
    }

    /// The daemon's side: consume requests, handle them, produce replies.
    pub fn serve(&mut self) {
        let mut p = self.page.0.borrow_mut();
        let avail = (p.req_prod.wrapping_sub(p.req_cons) as usize).min(self.chunk);
        let mut bytes = Vec::with_capacity(avail);
        for i in 0..avail {
            bytes.push(p.req[mask_xenstore_idx(p.req_cons.wrapping_add(i as u32))]);
        }
        p.req_cons = p.req_cons.wrapping_add(avail as u32);
        self.server.receive(&bytes);
        self.server.process();
        let room = XENSTORE_RING_SIZE - p.rsp_prod.wrapping_sub(p.rsp_cons) as usize;
        let n = room.min(self.chunk).min(self.server.outbox.len());
        for b in self.server.outbox.drain(..n) {
            let at = mask_xenstore_idx(p.rsp_prod);
            p.rsp[at] = b;
            p.rsp_prod = p.rsp_prod.wrapping_add(1);
        }
    }
}

impl Transport for RingPeer {
    fn write(&mut self, data: &[u8]) -> Result<usize, XsError> {
        self.client.write(data)
    }
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, XsError> {
        self.client.read(buf)
    }
}

impl Wait for RingPeer {
    // Deterministic: the bound is the count of waits.
    fn begin(&mut self) {}
    fn expired(&mut self) -> bool {
        false
    }
    fn wait(&mut self) -> Result<(), XsError> {
        self.waits += 1;
        if self.waits > 1_000_000 {
            return Err(TransportError::TimedOut.into());
        }
        self.serve();
        Ok(())
    }
}

/// A character device like Linux's `/dev/xen/xenbus`: it collects written bytes until a message is
/// complete, hands that message over and drops whatever else the same write carried.
pub struct MessageDevice {
    pub server: FakeXenstored,
    partial: Vec<u8>,
    pub dropped: usize,
    pub max_write: usize,
}

impl MessageDevice {
    pub fn new(max_write: usize) -> Self {
        MessageDevice {
            server: FakeXenstored::new(),
            partial: Vec::new(),
            dropped: 0,
            max_write,
        }
    }
}

impl Transport for MessageDevice {
    fn write(&mut self, data: &[u8]) -> Result<usize, XsError> {
        let data = &data[..data.len().min(self.max_write)];
        self.partial.extend_from_slice(data);
        if self.partial.len() >= HEADER_SIZE {
            let h = FrameHeader::from_bytes(self.partial[..HEADER_SIZE].try_into().unwrap());
            let total = HEADER_SIZE + h.len as usize;
            if self.partial.len() >= total {
                self.dropped += self.partial.len() - total;
                self.server.receive(&self.partial[..total]);
                self.server.process();
                self.partial.clear();
            }
        }
        Ok(data.len())
    }
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, XsError> {
        let n = buf.len().min(self.server.outbox.len());
        for (dst, src) in buf[..n].iter_mut().zip(self.server.outbox.drain(..n)) {
            *dst = src;
        }
        Ok(n)
    }
}
