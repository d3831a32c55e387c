//! A model of xenstored: the node tree with permissions, transactions, watches and quotas, and
//! connections speaking the real wire protocol over a byte stream ([`StoreStream`]) or the
//! guest's shared page ([`StoreRingPage`], served from the daemon's side).
//!
//! # Semantics (those of the C xenstored)
//! - Paths: absolute, or relative to `/local/domain/<domid>`; characters `[A-Za-z0-9/_@-]`, no
//!   empty components, no trailing `/`; `@`-paths only for watches.
//! - Permissions: the first entry names the owner and the access of everyone not listed; the
//!   owner and dom0 may do anything. Reading needs `r`/`b`, writing `w`/`b`; creating a node
//!   needs write access to its nearest existing ancestor, and the new node inherits that
//!   ancestor's permissions with an unprivileged creator as owner. Only the owner (or dom0) sets
//!   permissions, and an unprivileged owner cannot give the node away (`EPERM`).
//! - Transactions see a snapshot taken at their start. A commit fails with `EAGAIN` if any node
//!   the transaction read or wrote (a listed directory counts as read) changed since; each node
//!   carries a generation number for this.
//! - Watches fire once when registered, and on every write, mkdir of a new node, set_perms or rm
//!   at or below the watched path; removing a subtree also fires the watches inside it (with
//!   their own path). Inside a transaction they fire at commit. An unprivileged watcher only
//!   hears of nodes it may read.
//! - Quotas: nodes owned per domain (`ENOSPC`), value size (`E2BIG`), watches per connection
//!   (`E2BIG`), transactions per connection (`ENOSPC`). dom0 is exempt.

mod host;
mod transport;
mod wire;

pub use host::{HostLock, HostWaiter};
pub(crate) use transport::reconnect_guest_rings;
pub use transport::{
    SimRingTransport, StoreEvents, StoreRingPage, StoreStream, DEFAULT_WAIT_TIMEOUT,
};
pub use wire::StoreFault;
pub(crate) use wire::{release_domain, service_rings};

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use xen_abi::types::DomId;
use xen_abi::xenstore::{XsErrno, XENSTORE_ABS_PATH_MAX, XENSTORE_REL_PATH_MAX};
use xenpci_core::xenstore::Access;

use crate::{Config, State, Xen};

/// Limits the daemon enforces on unprivileged domains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Nodes a domain may own.
    pub max_nodes: usize,
    /// Bytes in one node's value.
    pub max_value: usize,
    /// Watches per connection.
    pub max_watches: usize,
    /// Open transactions per connection.
    pub max_transactions: usize,
}

impl Default for Quota {
    fn default() -> Self {
        // The C xenstored's defaults.
        Quota {
            max_nodes: 1000,
            max_value: 2048,
            max_watches: 128,
            max_transactions: 10,
        }
    }
}

/// One permission entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Perm {
    pub(crate) access: Access,
    pub(crate) domid: DomId,
}

impl Perm {
    /// Parses `"r5"` and friends.
    pub(crate) fn parse(text: &[u8]) -> Option<Perm> {
        let (&letter, digits) = text.split_first()?;
        let access = Access::from_letter(letter)?;
        if digits.is_empty() || digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let domid = std::str::from_utf8(digits).ok()?.parse().ok()?;
        Some(Perm { access, domid })
    }
}

impl fmt::Display for Perm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.access.letter() as char, self.domid)
    }
}

#[derive(Clone, Debug)]
struct Node {
    value: Vec<u8>,
    perms: Vec<Perm>,
    generation: u64,
}

type Tree = BTreeMap<String, Node>;

/// What a change fires: watches at or above `path`, and with `recurse` also those below it.
#[derive(Clone, Debug)]
struct Fire {
    path: String,
    recurse: bool,
}

#[derive(Debug, Default)]
struct TxLog {
    /// Generation of each node touched, as the snapshot had it (`None`: absent).
    accessed: BTreeMap<String, Option<u64>>,
    written: BTreeSet<String>,
    fires: Vec<Fire>,
}

#[derive(Debug)]
struct Tx {
    conn: u32,
    tree: Tree,
    log: TxLog,
}

#[derive(Clone, Debug)]
pub(crate) struct Watch {
    pub(crate) path: String,
    pub(crate) token: Vec<u8>,
    pub(crate) relative: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Conn {
    pub(crate) domid: DomId,
    pub(crate) watches: Vec<Watch>,
    pub(crate) input: Vec<u8>,
    pub(crate) output: VecDeque<u8>,
    /// The guest frame of the shared page, for a ring connection.
    pub(crate) ring: Option<u64>,
    /// The daemon's event-channel port for a ring connection (dom0's end).
    pub(crate) ring_port: Option<u32>,
    /// Ring connections: times the daemon notified the guest (after consuming requests or
    /// producing responses).
    pub(crate) kicks: u64,
    /// Messages the daemon queued for this connection (what an event channel would signal).
    pub(crate) produced: u64,
    pub(crate) closed: bool,
}

/// The daemon.
#[derive(Debug)]
pub(crate) struct Store {
    tree: Tree,
    generation: u64,
    txs: BTreeMap<u32, Tx>,
    next_tx: u32,
    pub(crate) conns: BTreeMap<u32, Conn>,
    next_conn: u32,
    pub(crate) quota: Quota,
    pub(crate) faults: wire::Faults,
}

/// Splits `path` into its parent (None for "/").
fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

/// Whether `path` is `base` or below it.
fn is_at_or_below(path: &str, base: &str) -> bool {
    base == "/"
        || path == base
        || (path.starts_with(base) && path.as_bytes().get(base.len()) == Some(&b'/'))
}

fn domain_home(domid: DomId) -> String {
    format!("/local/domain/{domid}")
}

/// Checks and canonicalises a path (relative paths are under the caller's home); returns
/// (absolute path, was relative). `@`-paths pass through when `special` allows them.
pub(crate) fn canonical(
    domid: DomId,
    raw: &[u8],
    special: bool,
) -> Result<(String, bool), XsErrno> {
    let text = std::str::from_utf8(raw).map_err(|_| XsErrno::Einval)?;
    if text.is_empty()
        || !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_@-".contains(&b))
    {
        return Err(XsErrno::Einval);
    }
    if text.starts_with('@') {
        return if special && !text.contains('/') {
            Ok((text.to_owned(), false))
        } else {
            Err(XsErrno::Einval)
        };
    }
    let (abs, relative) = if text.starts_with('/') {
        if text.len() > XENSTORE_ABS_PATH_MAX {
            return Err(XsErrno::Einval);
        }
        (text.to_owned(), false)
    } else {
        if text.len() > XENSTORE_REL_PATH_MAX {
            return Err(XsErrno::Einval);
        }
        (format!("{}/{text}", domain_home(domid)), true)
    };
    if abs.contains("//") || (abs.len() > 1 && abs.ends_with('/')) {
        return Err(XsErrno::Einval);
    }
    Ok((abs, relative))
}

fn access_for(domid: DomId, perms: &[Perm]) -> Access {
    if domid == 0 {
        return Access::Both;
    }
    let Some(owner) = perms.first() else {
        return Access::None;
    };
    if owner.domid == domid {
        return Access::Both;
    }
    perms[1..]
        .iter()
        .find(|p| p.domid == domid)
        .map_or(owner.access, |p| p.access)
}

/// A tree being operated on: the live one, or a transaction's snapshot with its log.
struct View<'a> {
    tree: &'a mut Tree,
    generation: &'a mut u64,
    log: Option<&'a mut TxLog>,
    fires: &'a mut Vec<Fire>,
    quota: Quota,
}

impl View<'_> {
    fn touch(&mut self, path: &str) {
        if let Some(log) = self.log.as_deref_mut() {
            if !log.accessed.contains_key(path) {
                let g = self.tree.get(path).map(|n| n.generation);
                log.accessed.insert(path.to_owned(), g);
            }
        }
    }

    fn get(&mut self, path: &str) -> Option<&Node> {
        self.touch(path);
        self.tree.get(path)
    }

    fn bump(&mut self) -> u64 {
        *self.generation += 1;
        *self.generation
    }

    fn put(&mut self, path: &str, value: Vec<u8>, perms: Vec<Perm>) {
        self.touch(path);
        let created = !self.tree.contains_key(path);
        let generation = self.bump();
        self.tree.insert(
            path.to_owned(),
            Node {
                value,
                perms,
                generation,
            },
        );
        if let Some(log) = self.log.as_deref_mut() {
            log.written.insert(path.to_owned());
        }
        if created {
            if let Some(p) = parent(path) {
                self.touch_parent(p);
            }
        }
    }

    /// The children of `path` changed.
    fn touch_parent(&mut self, path: &str) {
        self.touch(path);
        let generation = self.bump();
        if let Some(n) = self.tree.get_mut(path) {
            n.generation = generation;
            if let Some(log) = self.log.as_deref_mut() {
                log.written.insert(path.to_owned());
            }
        }
    }

    fn children(&self, path: &str) -> Vec<String> {
        let prefix = if path == "/" {
            "/".to_owned()
        } else {
            format!("{path}/")
        };
        self.tree
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| k.len() > prefix.len() && !k[prefix.len()..].contains('/'))
            .map(|(k, _)| k[prefix.len()..].to_owned())
            .collect()
    }

    fn subtree(&self, path: &str) -> Vec<String> {
        self.tree
            .range(path.to_owned()..)
            .take_while(|(k, _)| k.starts_with(path))
            .filter(|(k, _)| is_at_or_below(k, path))
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn owned_by(&self, domid: DomId) -> usize {
        self.tree
            .values()
            .filter(|n| n.perms.first().is_some_and(|p| p.domid == domid))
            .count()
    }

    fn readable(&mut self, domid: DomId, path: &str) -> Result<&Node, XsErrno> {
        let node = self.get(path).ok_or(XsErrno::Enoent)?;
        if access_for(domid, &node.perms).can_read() {
            Ok(node)
        } else {
            Err(XsErrno::Eacces)
        }
    }

    /// Creates `path` (and missing ancestors) with `value`.
    fn create(&mut self, domid: DomId, path: &str, value: Vec<u8>) -> Result<(), XsErrno> {
        let mut missing = vec![path.to_owned()];
        let mut at = parent(path);
        let base_perms = loop {
            let Some(p) = at else {
                return Err(XsErrno::Enoent);
            };
            if let Some(node) = self.get(p) {
                break node.perms.clone();
            }
            missing.push(p.to_owned());
            at = parent(p);
        };
        if !access_for(domid, &base_perms).can_write() {
            return Err(XsErrno::Eacces);
        }
        let mut perms = base_perms;
        if domid != 0 {
            perms[0].domid = domid;
            if self.owned_by(domid) + missing.len() > self.quota.max_nodes {
                return Err(XsErrno::Enospc);
            }
        }
        let mut value = Some(value);
        while let Some(p) = missing.pop() {
            let v = if missing.is_empty() {
                value.take().unwrap_or_default()
            } else {
                Vec::new()
            };
            self.put(&p, v, perms.clone());
        }
        Ok(())
    }

    fn fire(&mut self, path: &str, recurse: bool) {
        self.fires.push(Fire {
            path: path.to_owned(),
            recurse,
        });
        if let Some(log) = self.log.as_deref_mut() {
            log.fires.push(Fire {
                path: path.to_owned(),
                recurse,
            });
        }
    }
}

impl Store {
    pub(crate) fn new(config: &Config) -> Self {
        let mut store = Store {
            tree: Tree::new(),
            generation: 0,
            txs: BTreeMap::new(),
            next_tx: 1,
            conns: BTreeMap::new(),
            next_conn: 1,
            quota: config.quota,
            faults: wire::Faults::default(),
        };
        let dom0_only = vec![Perm {
            access: Access::None,
            domid: 0,
        }];
        for p in ["/", "/local", "/local/domain", "/tool"] {
            store.insert_raw(p, b"", dom0_only.clone());
        }
        for d in [0, config.guest_domid] {
            let home = domain_home(d);
            let perms = vec![
                Perm {
                    access: Access::None,
                    domid: d,
                },
                Perm {
                    access: Access::Read,
                    domid: 0,
                },
            ];
            store.insert_raw(&home, b"", perms.clone());
            for sub in ["device", "control", "data"] {
                store.insert_raw(&format!("{home}/{sub}"), b"", perms.clone());
            }
            store.insert_raw(&format!("{home}/domid"), d.to_string().as_bytes(), perms);
        }
        store
    }

    fn insert_raw(&mut self, path: &str, value: &[u8], perms: Vec<Perm>) {
        self.generation += 1;
        self.tree.insert(
            path.to_owned(),
            Node {
                value: value.to_vec(),
                perms,
                generation: self.generation,
            },
        );
    }

    /// Runs `f` on the live tree or the transaction's snapshot; fires live changes at once.
    fn view<R>(
        &mut self,
        conn: Option<u32>,
        tx: Option<u32>,
        f: impl FnOnce(&mut View<'_>) -> Result<R, XsErrno>,
    ) -> Result<R, XsErrno> {
        let mut fires = Vec::new();
        let quota = self.quota;
        let result = match tx {
            None => f(&mut View {
                tree: &mut self.tree,
                generation: &mut self.generation,
                log: None,
                fires: &mut fires,
                quota,
            }),
            Some(id) => {
                let tx = self
                    .txs
                    .get_mut(&id)
                    .filter(|t| conn.is_none_or(|c| c == t.conn))
                    .ok_or(XsErrno::Enoent)?;
                let mut scratch = Vec::new();
                let r = f(&mut View {
                    tree: &mut tx.tree,
                    generation: &mut self.generation,
                    log: Some(&mut tx.log),
                    fires: &mut scratch,
                    quota,
                });
                return r;
            }
        };
        if result.is_ok() {
            for fire in fires {
                self.fire(&fire);
            }
        }
        result
    }

    pub(crate) fn read(
        &mut self,
        domid: DomId,
        tx: Option<u32>,
        path: &str,
    ) -> Result<Vec<u8>, XsErrno> {
        self.read_on(None, domid, tx, path.as_bytes())
    }

    pub(crate) fn read_on(
        &mut self,
        conn: Option<u32>,
        domid: DomId,
        tx: Option<u32>,
        path: &[u8],
    ) -> Result<Vec<u8>, XsErrno> {
        let (path, _) = canonical(domid, path, false)?;
        self.view(conn, tx, |v| Ok(v.readable(domid, &path)?.value.clone()))
    }

    pub(crate) fn write(
        &mut self,
        domid: DomId,
        tx: Option<u32>,
        path: &str,
        value: &[u8],
    ) -> Result<(), XsErrno> {
        self.write_on(None, domid, tx, path.as_bytes(), value)
    }

    pub(crate) fn write_on(
        &mut self,
        conn: Option<u32>,
        domid: DomId,
        tx: Option<u32>,
        path: &[u8],
        value: &[u8],
    ) -> Result<(), XsErrno> {
        let (path, _) = canonical(domid, path, false)?;
        if domid != 0 && value.len() > self.quota.max_value {
            return Err(XsErrno::E2big);
        }
        self.view(conn, tx, |v| {
            match v.get(&path).map(|n| n.perms.clone()) {
                Some(perms) => {
                    if !access_for(domid, &perms).can_write() {
                        return Err(XsErrno::Eacces);
                    }
                    v.put(&path, value.to_vec(), perms);
                }
                None => v.create(domid, &path, value.to_vec())?,
            }
            v.fire(&path, false);
            Ok(())
        })
    }

    pub(crate) fn mkdir(
        &mut self,
        domid: DomId,
        tx: Option<u32>,
        path: &str,
    ) -> Result<(), XsErrno> {
        self.mkdir_on(None, domid, tx, path.as_bytes())
    }

    pub(crate) fn mkdir_on(
        &mut self,
        conn: Option<u32>,
        domid: DomId,
        tx: Option<u32>,
        path: &[u8],
    ) -> Result<(), XsErrno> {
        let (path, _) = canonical(domid, path, false)?;
        self.view(conn, tx, |v| {
            if v.get(&path).is_some() {
                return Ok(());
            }
            v.create(domid, &path, Vec::new())?;
            v.fire(&path, false);
            Ok(())
        })
    }

    pub(crate) fn rm(&mut self, domid: DomId, tx: Option<u32>, path: &str) -> Result<(), XsErrno> {
        self.rm_on(None, domid, tx, path.as_bytes())
    }

    pub(crate) fn rm_on(
        &mut self,
        conn: Option<u32>,
        domid: DomId,
        tx: Option<u32>,
        path: &[u8],
    ) -> Result<(), XsErrno> {
        let (path, _) = canonical(domid, path, false)?;
        let Some(up) = parent(&path).map(str::to_owned) else {
            return Err(XsErrno::Einval);
        };
        self.view(conn, tx, |v| {
            let Some(node) = v.get(&path) else {
                // Removing a node that is already gone is fine if its parent exists.
                return if v.get(&up).is_some() {
                    Ok(())
                } else {
                    Err(XsErrno::Enoent)
                };
            };
            if !access_for(domid, &node.perms).can_write() {
                return Err(XsErrno::Eacces);
            }
            v.fire(&path, true);
            for p in v.subtree(&path) {
                v.touch(&p);
                v.tree.remove(&p);
                if let Some(log) = v.log.as_deref_mut() {
                    log.written.insert(p);
                }
            }
            v.touch_parent(&up);
            Ok(())
        })
    }

    pub(crate) fn directory(
        &mut self,
        domid: DomId,
        tx: Option<u32>,
        path: &str,
    ) -> Result<Vec<String>, XsErrno> {
        self.directory_on(None, domid, tx, path.as_bytes())
    }

    pub(crate) fn directory_on(
        &mut self,
        conn: Option<u32>,
        domid: DomId,
        tx: Option<u32>,
        path: &[u8],
    ) -> Result<Vec<String>, XsErrno> {
        let (path, _) = canonical(domid, path, false)?;
        self.view(conn, tx, |v| {
            v.readable(domid, &path)?;
            Ok(v.children(&path))
        })
    }

    pub(crate) fn get_perms(
        &mut self,
        domid: DomId,
        tx: Option<u32>,
        path: &str,
    ) -> Result<Vec<Perm>, XsErrno> {
        self.get_perms_on(None, domid, tx, path.as_bytes())
    }

    pub(crate) fn get_perms_on(
        &mut self,
        conn: Option<u32>,
        domid: DomId,
        tx: Option<u32>,
        path: &[u8],
    ) -> Result<Vec<Perm>, XsErrno> {
        let (path, _) = canonical(domid, path, false)?;
        self.view(conn, tx, |v| Ok(v.readable(domid, &path)?.perms.clone()))
    }

    pub(crate) fn set_perms(
        &mut self,
        domid: DomId,
        tx: Option<u32>,
        path: &str,
        perms: Vec<Perm>,
    ) -> Result<(), XsErrno> {
        self.set_perms_on(None, domid, tx, path.as_bytes(), perms)
    }

    pub(crate) fn set_perms_on(
        &mut self,
        conn: Option<u32>,
        domid: DomId,
        tx: Option<u32>,
        path: &[u8],
        perms: Vec<Perm>,
    ) -> Result<(), XsErrno> {
        let (path, _) = canonical(domid, path, false)?;
        if perms.is_empty() {
            return Err(XsErrno::Einval);
        }
        self.view(conn, tx, |v| {
            let node = v.get(&path).ok_or(XsErrno::Enoent)?;
            let owner = node.perms.first().map_or(0, |p| p.domid);
            if domid != 0 && owner != domid {
                return Err(XsErrno::Eacces);
            }
            if domid != 0 && perms[0].domid != owner {
                return Err(XsErrno::Eperm);
            }
            let value = node.value.clone();
            v.put(&path, value, perms);
            v.fire(&path, false);
            Ok(())
        })
    }

    pub(crate) fn transaction_start(&mut self, conn: u32) -> Result<u32, XsErrno> {
        let open = self.txs.values().filter(|t| t.conn == conn).count();
        let domid = self.conns.get(&conn).map_or(0, |c| c.domid);
        if domid != 0 && open >= self.quota.max_transactions {
            return Err(XsErrno::Enospc);
        }
        let id = self.next_tx;
        self.next_tx = self.next_tx.wrapping_add(1).max(1);
        self.txs.insert(
            id,
            Tx {
                conn,
                tree: self.tree.clone(),
                log: TxLog::default(),
            },
        );
        Ok(id)
    }

    pub(crate) fn transaction_end(
        &mut self,
        conn: u32,
        id: u32,
        commit: bool,
    ) -> Result<(), XsErrno> {
        match self.txs.get(&id) {
            Some(t) if t.conn == conn => {}
            _ => return Err(XsErrno::Enoent),
        }
        let tx = self.txs.remove(&id).ok_or(XsErrno::Enoent)?;
        if !commit {
            return Ok(());
        }
        if self.faults.eagain_storm > 0 {
            self.faults.eagain_storm -= 1;
            return Err(XsErrno::Eagain);
        }
        let conflict = tx
            .log
            .accessed
            .iter()
            .any(|(p, g)| self.tree.get(p).map(|n| n.generation) != *g);
        if conflict {
            return Err(XsErrno::Eagain);
        }
        for p in &tx.log.written {
            match tx.tree.get(p) {
                Some(node) => {
                    self.generation += 1;
                    let mut node = node.clone();
                    node.generation = self.generation;
                    self.tree.insert(p.clone(), node);
                }
                None => {
                    self.tree.remove(p);
                }
            }
        }
        for fire in &tx.log.fires {
            self.fire(fire);
        }
        Ok(())
    }

    /// Queues the watch events a change at `fire.path` causes.
    fn fire(&mut self, fire: &Fire) {
        let mut events = Vec::new();
        for (&id, conn) in &self.conns {
            if conn.closed {
                continue;
            }
            for w in &conn.watches {
                let event_path = if is_at_or_below(&fire.path, &w.path) {
                    &fire.path
                } else if fire.recurse && is_at_or_below(&w.path, &fire.path) {
                    &w.path
                } else {
                    continue;
                };
                if conn.domid != 0 && !self.may_read_nearest(conn.domid, event_path) {
                    continue;
                }
                events.push((id, w.clone(), event_path.clone()));
            }
        }
        for (id, w, path) in events {
            self.queue_event(id, &w, &path);
        }
    }

    /// Whether `domid` may read `path`, or if it is gone, its nearest existing ancestor.
    fn may_read_nearest(&self, domid: DomId, path: &str) -> bool {
        let mut at = Some(path);
        while let Some(p) = at {
            if let Some(n) = self.tree.get(p) {
                return access_for(domid, &n.perms).can_read();
            }
            at = parent(p);
        }
        false
    }

    /// Fires a special (`@...`) watch path.
    pub(crate) fn fire_special(&mut self, path: &str) {
        let mut events = Vec::new();
        for (&id, conn) in &self.conns {
            for w in conn.watches.iter().filter(|w| w.path == path) {
                events.push((id, w.clone()));
            }
        }
        for (id, w) in events {
            self.queue_event(id, &w, path);
        }
    }

    fn queue_event(&mut self, conn: u32, w: &Watch, path: &str) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let home = format!("{}/", domain_home(c.domid));
        let shown = if w.relative {
            path.strip_prefix(&home).unwrap_or(path)
        } else {
            path
        };
        let mut payload = shown.as_bytes().to_vec();
        payload.push(0);
        payload.extend_from_slice(&w.token);
        payload.push(0);
        self.send_watch_event(conn, payload);
    }

    pub(crate) fn watch(&mut self, conn: u32, path: &[u8], token: &[u8]) -> Result<Watch, XsErrno> {
        let c = self.conns.get(&conn).ok_or(XsErrno::Einval)?;
        let (abs, relative) = canonical(c.domid, path, true)?;
        if c.watches.iter().any(|w| w.path == abs && w.token == token) {
            return Err(XsErrno::Eexist);
        }
        if c.domid != 0 && c.watches.len() >= self.quota.max_watches {
            return Err(XsErrno::E2big);
        }
        let w = Watch {
            path: abs,
            token: token.to_vec(),
            relative,
        };
        if let Some(c) = self.conns.get_mut(&conn) {
            c.watches.push(w.clone());
        }
        Ok(w)
    }

    pub(crate) fn unwatch(&mut self, conn: u32, path: &[u8], token: &[u8]) -> Result<(), XsErrno> {
        let c = self.conns.get_mut(&conn).ok_or(XsErrno::Einval)?;
        let (abs, _) = canonical(c.domid, path, true)?;
        let before = c.watches.len();
        c.watches.retain(|w| !(w.path == abs && w.token == token));
        if c.watches.len() == before {
            Err(XsErrno::Enoent)
        } else {
            Ok(())
        }
    }

    /// Number of nodes.
    pub(crate) fn node_count(&self) -> usize {
        self.tree.len()
    }

    pub(crate) fn new_conn(&mut self, domid: DomId) -> u32 {
        let id = self.next_conn;
        self.next_conn += 1;
        self.conns.insert(
            id,
            Conn {
                domid,
                ..Conn::default()
            },
        );
        id
    }

    /// Forgets every watch and transaction of `domid`'s connections (the daemon's state after
    /// the guest was suspended and resumed, or migrated).
    pub(crate) fn forget_domain_state(&mut self, domid: DomId) {
        let ids: Vec<u32> = self
            .conns
            .iter()
            .filter(|(_, c)| c.domid == domid)
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            if let Some(c) = self.conns.get_mut(id) {
                c.watches.clear();
                c.output.clear();
                c.input.clear();
            }
        }
        self.txs.retain(|_, t| !ids.contains(&t.conn));
    }
}

/// Runs a direct (not wire) operation as `domid`, then serves the rings.
pub(crate) fn direct<R>(
    s: &mut State,
    domid: DomId,
    f: impl FnOnce(&mut Store, DomId) -> Result<R, XsErrno>,
) -> Result<R, XsErrno> {
    let r = f(&mut s.store, domid);
    service_rings(s);
    r
}

impl Xen {
    /// A xenstore connection for the guest over a byte stream (as `/dev/xen/xenbus` would be).
    pub fn store_stream(&self) -> StoreStream {
        StoreStream::connect(self.clone(), self.guest_domid())
    }

    /// The guest's xenstore ring: a page in guest memory served by the daemon, with the
    /// xenstore event channel (an interdomain channel to dom0) set up as the toolstack does.
    pub fn store_ring(&self) -> SimRingTransport {
        SimRingTransport::connect(self.clone())
    }

    /// Runs `f` with the store's fault switches.
    pub fn store_faults<R>(&self, f: impl FnOnce(&mut StoreFaults<'_>) -> R) -> R {
        self.with(|s| {
            let r = f(&mut StoreFaults {
                faults: &mut s.store.faults,
            });
            wire::release_if_undelayed(s);
            service_rings(s);
            r
        })
    }

    /// Sends the replies held back by [`StoreFaults::hold_replies`]; returns how many.
    pub fn release_held_replies(&self) -> usize {
        self.with(|s| {
            let n = wire::release_held_replies(s);
            service_rings(s);
            n
        })
    }

    /// Delivers the watch events held back while delayed; returns how many.
    pub fn release_watch_events(&self) -> usize {
        self.with(|s| {
            let n = wire::release_delayed(s);
            service_rings(s);
            n
        })
    }

    /// What a suspend and resume does to xenstored's view of the guest: its watches and
    /// transactions are gone.
    pub fn store_forget_guest(&self) {
        self.with(|s| {
            let g = s.config.guest_domid;
            s.store.forget_domain_state(g)
        })
    }

    /// The number of nodes in the store.
    pub fn store_nodes(&self) -> usize {
        self.lock().store.node_count()
    }

    /// Sets the quotas.
    pub fn set_store_quota(&self, quota: Quota) {
        self.with(|s| s.store.quota = quota)
    }

    /// Watches registered by `domid`'s connections.
    pub fn store_watches(&self, domid: DomId) -> usize {
        self.lock()
            .store
            .conns
            .values()
            .filter(|c| c.domid == domid && !c.closed)
            .map(|c| c.watches.len())
            .sum()
    }
}

/// The store's fault switches (see [`Xen::store_faults`]).
#[derive(Debug)]
pub struct StoreFaults<'a> {
    faults: &'a mut wire::Faults,
}

impl StoreFaults<'_> {
    /// Drops the next `n` watch events.
    pub fn drop_watch_events(&mut self, n: u32) {
        self.faults.drop_watch_events = n;
    }

    /// Holds watch events back (until [`Xen::release_watch_events`], or this is switched off).
    pub fn delay_watch_events(&mut self, delay: bool) {
        self.faults.delay_watch_events = delay;
    }

    /// Holds every reply back (watch events still go out) until
    /// [`Xen::release_held_replies`]; switching it off does not release them.
    pub fn hold_replies(&mut self, hold: bool) {
        self.faults.hold_replies = hold;
    }

    /// Makes the next `n` transaction commits fail with `EAGAIN`.
    pub fn eagain_storm(&mut self, n: u32) {
        self.faults.eagain_storm = n;
    }

    /// Corrupts the next replies, one fault per reply, in order.
    pub fn corrupt_next_replies(&mut self, faults: &[StoreFault]) {
        self.faults.reply_faults.extend(faults.iter().copied());
    }

    /// The daemon vanishes: every transport fails from now on, nothing is answered.
    pub fn vanish(&mut self) {
        self.faults.vanished = true;
    }

    /// Watch events dropped so far.
    pub fn dropped_watch_events(&self) -> u64 {
        self.faults.dropped_watch_events
    }
}
