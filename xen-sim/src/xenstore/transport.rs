//! The client ends of a daemon connection: a byte stream, and the guest's shared page.

use std::time::{Duration, Instant};

use xen_abi::types::{DomId, EvtchnPort};
use xen_abi::xenstore::{
    interface_offsets as off, XENSTORE_SERVER_FEATURE_ERROR, XENSTORE_SERVER_FEATURE_RECONNECTION,
};
use xenpci_core::xenstore::{RingTransport, StorePage, Transport, TransportError, Wait, XsError};

use super::service_rings;
use crate::{evtchn, Xen};

/// How long [`Wait::wait`] blocks for the daemon before giving up with
/// [`TransportError::TimedOut`].
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_millis(500);

/// A byte-stream connection to the daemon, like `/dev/xen/xenbus` or the daemon's socket. The
/// daemon answers each request as soon as its last byte is written.
#[derive(Debug)]
pub struct StoreStream {
    xen: Xen,
    conn: u32,
    timeout: Duration,
    deadline: Option<Instant>,
}

impl StoreStream {
    pub(crate) fn connect(xen: Xen, domid: DomId) -> Self {
        let conn = xen.with(|s| s.store.new_conn(domid));
        StoreStream {
            xen,
            conn,
            timeout: DEFAULT_WAIT_TIMEOUT,
            deadline: None,
        }
    }

    /// Sets the time limit of one blocking operation (from [`Wait::begin`]).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// What the store's event channel would signal for this connection.
    pub fn events(&self) -> StoreEvents {
        StoreEvents::new(self.xen.clone(), self.conn)
    }

    /// Bytes the daemon has queued for this connection.
    pub fn queued(&self) -> usize {
        self.xen
            .lock()
            .store
            .conns
            .get(&self.conn)
            .map_or(0, |c| c.output.len())
    }

    fn check(&self) -> Result<(), XsError> {
        let s = self.xen.lock();
        if s.store.faults.vanished || s.store.conns.get(&self.conn).is_none_or(|c| c.closed) {
            Err(TransportError::Closed.into())
        } else {
            Ok(())
        }
    }
}

impl Transport for StoreStream {
    fn write(&mut self, data: &[u8]) -> Result<usize, XsError> {
        self.check()?;
        self.xen.with(|s| {
            if let Some(c) = s.store.conns.get_mut(&self.conn) {
                c.input.extend_from_slice(data);
            }
            s.store.process(self.conn);
            service_rings(s);
        });
        Ok(data.len())
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, XsError> {
        self.check()?;
        self.xen.with(|s| {
            let Some(c) = s.store.conns.get_mut(&self.conn) else {
                return Ok(0);
            };
            let n = buf.len().min(c.output.len());
            for (dst, src) in buf.iter_mut().zip(c.output.drain(..n)) {
                *dst = src;
            }
            Ok(n)
        })
    }
}

/// What is left of an operation's time limit (all of `timeout` when none was begun); `None`
/// once it has passed.
fn remaining(deadline: Option<Instant>, timeout: Duration) -> Option<Duration> {
    match deadline {
        None => Some(timeout),
        Some(d) => d
            .checked_duration_since(Instant::now())
            .filter(|r| !r.is_zero()),
    }
}

impl Wait for StoreStream {
    fn begin(&mut self) {
        self.deadline = Some(Instant::now() + self.timeout);
    }

    fn expired(&mut self) -> bool {
        remaining(self.deadline, self.timeout).is_none()
    }

    fn wait(&mut self) -> Result<(), XsError> {
        let conn = self.conn;
        let Some(left) = remaining(self.deadline, self.timeout) else {
            return Err(TransportError::TimedOut.into());
        };
        let ready = self.xen.wait_until(left, |s| {
            s.store.faults.vanished
                || s.store
                    .conns
                    .get(&conn)
                    .is_none_or(|c| c.closed || !c.output.is_empty())
        });
        self.check()?;
        if ready {
            Ok(())
        } else {
            Err(TransportError::TimedOut.into())
        }
    }
}

/// The guest's `xenstore_domain_interface` page in guest memory, as the guest's
/// [`StorePage`]. Notifying the peer kicks the daemon, which serves the ring at once.
#[derive(Clone, Debug)]
pub struct StoreRingPage {
    xen: Xen,
    gfn: u64,
    port: EvtchnPort,
}

impl StoreRingPage {
    /// The frame holding the page.
    pub fn gfn(&self) -> u64 {
        self.gfn
    }
}

impl StorePage for StoreRingPage {
    fn load_u32(&self, offset: usize) -> u32 {
        self.xen.lock().mem.read_u32(self.gfn, offset).unwrap_or(0)
    }

    fn store_u32(&mut self, offset: usize, value: u32) {
        self.xen.with(|s| {
            let _ = s.mem.write_u32(self.gfn, offset, value);
        })
    }

    fn read_bytes(&self, offset: usize, out: &mut [u8]) {
        let _ = self.xen.lock().mem.read(self.gfn, offset, out);
    }

    fn write_bytes(&mut self, offset: usize, data: &[u8]) {
        self.xen.with(|s| {
            let _ = s.mem.write(self.gfn, offset, data);
        })
    }

    fn notify_peer(&mut self) {
        self.xen.with(|s| {
            let guest = s.config.guest_domid;
            let _ = evtchn::send(s, guest, self.port);
            service_rings(s);
        })
    }
}

/// The toolstack's part of a store ring: an unbound port in the guest for dom0, which
/// xenstored binds, published with the page in `HVM_PARAM_STORE_PFN` / `_EVTCHN`. Returns the
/// guest's port (0 if none could be allocated).
fn store_channel(s: &mut crate::State, conn: u32, gfn: u64) -> EvtchnPort {
    let guest = s.config.guest_domid;
    let mut au = xen_abi::event_channel::EvtchnAllocUnbound {
        dom: guest,
        remote_dom: 0,
        port: 0,
    };
    let guest_port = match evtchn::alloc_unbound(s, guest, &mut au) {
        Ok(()) => au.port,
        Err(_) => 0,
    };
    let mut bi = xen_abi::event_channel::EvtchnBindInterdomain {
        remote_dom: guest,
        pad: 0,
        remote_port: guest_port,
        local_port: 0,
    };
    let dom0_port = evtchn::bind_interdomain(s, 0, &mut bi)
        .ok()
        .map(|()| bi.local_port);
    s.hv.params.insert(xen_abi::hvm::HVM_PARAM_STORE_PFN, gfn);
    s.hv.params
        .insert(xen_abi::hvm::HVM_PARAM_STORE_EVTCHN, u64::from(guest_port));
    if let Some(c) = s.store.conns.get_mut(&conn) {
        c.ring_port = dom0_port;
    }
    guest_port
}

/// What the toolstack does for the guest's store rings when it is restored into a new domain:
/// every port was closed, so each ring gets a new channel (and `HVM_PARAM_STORE_EVTCHN` the new
/// port); the page stays where it was.
pub(crate) fn reconnect_guest_rings(s: &mut crate::State) {
    let guest = s.config.guest_domid;
    let rings: Vec<(u32, u64)> = s
        .store
        .conns
        .iter()
        .filter(|(_, c)| c.domid == guest && !c.closed)
        .filter_map(|(&id, c)| c.ring.map(|g| (id, g)))
        .collect();
    for (conn, gfn) in rings {
        store_channel(s, conn, gfn);
    }
}

/// The guest's xenstore transport over the shared page ([`RingTransport`] over
/// [`StoreRingPage`]) that can also wait for the daemon.
#[derive(Debug)]
pub struct SimRingTransport {
    inner: RingTransport<StoreRingPage>,
    xen: Xen,
    conn: u32,
    seen_kicks: u64,
    timeout: Duration,
    deadline: Option<Instant>,
}

impl SimRingTransport {
    pub(crate) fn connect(xen: Xen) -> Self {
        let (gfn, port, conn) = xen.with(|s| {
            let guest = s.config.guest_domid;
            let gfn = s.mem.alloc();
            let _ = s.mem.write_u32(
                gfn,
                off::SERVER_FEATURES,
                XENSTORE_SERVER_FEATURE_RECONNECTION | XENSTORE_SERVER_FEATURE_ERROR,
            );
            let conn = s.store.new_conn(guest);
            if let Some(c) = s.store.conns.get_mut(&conn) {
                c.ring = Some(gfn);
            }
            let guest_port = store_channel(s, conn, gfn);
            (gfn, guest_port, conn)
        });
        let page = StoreRingPage {
            xen: xen.clone(),
            gfn,
            port,
        };
        SimRingTransport {
            inner: RingTransport::new(page),
            xen,
            conn,
            seen_kicks: 0,
            timeout: DEFAULT_WAIT_TIMEOUT,
            deadline: None,
        }
    }

    /// The guest's xenstore event-channel port (`HVM_PARAM_STORE_EVTCHN`).
    pub fn port(&self) -> EvtchnPort {
        self.inner.page().port
    }

    /// The page's frame (`HVM_PARAM_STORE_PFN`).
    pub fn gfn(&self) -> u64 {
        self.inner.page().gfn
    }

    /// The core's ring transport inside.
    pub fn ring(&mut self) -> &mut RingTransport<StoreRingPage> {
        &mut self.inner
    }

    /// Sets the time limit of one blocking operation (from [`Wait::begin`]).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// What the store's event channel signals for this ring.
    pub fn events(&self) -> StoreEvents {
        StoreEvents::new(self.xen.clone(), self.conn)
    }

    fn check(&self) -> Result<(), XsError> {
        if self.xen.lock().store.faults.vanished {
            Err(TransportError::Closed.into())
        } else {
            Ok(())
        }
    }
}

/// The bus points the transport at the ring it read from the HVM parameters: the page must be
/// this transport's; the port is taken over (it changes after a resume in a new domain), unread
/// responses are discarded and the ring's indices taken as they are.
impl xenpci_core::bus::StoreLink for SimRingTransport {
    fn connect(&mut self, ring: xenpci_core::hypervisor::hvm::RingInfo) -> Result<(), XsError> {
        self.check()?;
        if ring.pfn != self.gfn() {
            return Err(TransportError::Closed.into());
        }
        let page = self.inner.page_mut();
        page.port = ring.evtchn;
        // Responses nobody will ever match (to requests of the old connection) are dropped.
        let prod = page.load_u32(off::RSP_PROD);
        page.store_u32(off::RSP_CONS, prod);
        self.inner.resync();
        Ok(())
    }
}

impl Transport for SimRingTransport {
    fn write(&mut self, data: &[u8]) -> Result<usize, XsError> {
        self.check()?;
        self.inner.write(data)
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, XsError> {
        self.check()?;
        self.inner.read(buf)
    }

    fn notify(&mut self) -> Result<(), XsError> {
        self.check()?;
        self.inner.notify()
    }
}

impl Wait for SimRingTransport {
    fn begin(&mut self) {
        self.deadline = Some(Instant::now() + self.timeout);
    }

    fn expired(&mut self) -> bool {
        remaining(self.deadline, self.timeout).is_none()
    }

    fn wait(&mut self) -> Result<(), XsError> {
        self.check()?;
        let Some(left) = remaining(self.deadline, self.timeout) else {
            return Err(TransportError::TimedOut.into());
        };
        let gfn = self.gfn();
        let conn = self.conn;
        let mut seen = self.seen_kicks;
        // Wakes on the daemon's notification (it consumed requests or produced responses), as
        // the guest would on the xenstore event channel.
        let ready = self.xen.wait_until(left, |s| {
            service_rings(s);
            let kicks = s.store.conns.get(&conn).map_or(0, |c| c.kicks);
            let prod = s.mem.read_u32(gfn, off::RSP_PROD).unwrap_or(0);
            let cons = s.mem.read_u32(gfn, off::RSP_CONS).unwrap_or(0);
            let woke = kicks != seen || prod != cons || s.store.faults.vanished;
            seen = kicks;
            woke
        });
        self.seen_kicks = seen;
        self.check()?;
        if ready {
            Ok(())
        } else {
            Err(TransportError::TimedOut.into())
        }
    }
}

/// The store's event channel as a thread sees it: [`wait`](Self::wait) returns when the daemon
/// queued something for the connection since the last return. A test runs it in a thread that
/// plays the event-channel DPC and calls [`XsMux::store_event`](xenpci_core::xenstore::XsMux::store_event).
#[derive(Debug)]
pub struct StoreEvents {
    xen: Xen,
    conn: u32,
    seen: u64,
}

impl StoreEvents {
    fn new(xen: Xen, conn: u32) -> Self {
        let seen = Self::count(&xen, conn);
        StoreEvents { xen, conn, seen }
    }

    fn count(xen: &Xen, conn: u32) -> u64 {
        xen.lock()
            .store
            .conns
            .get(&conn)
            .map_or(0, |c| c.produced + c.kicks)
    }

    /// Waits until the daemon produced something for the connection (or it closed, or the
    /// daemon vanished), at most `timeout`; returns whether it did.
    pub fn wait(&mut self, timeout: Duration) -> bool {
        let conn = self.conn;
        let seen = self.seen;
        let mut now = seen;
        let fired = self.xen.wait_until(timeout, |s| {
            let c = s.store.conns.get(&conn);
            now = c.map_or(0, |c| c.produced + c.kicks);
            now != seen || s.store.faults.vanished || c.is_none_or(|c| c.closed)
        });
        self.seen = now;
        fired
    }
}
