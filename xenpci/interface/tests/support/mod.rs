//! The bus side of the tests: xenpci-core's `Bus` brought up on a simulated Xen (its grant
//! table, event channels and xenstored), serving one child through [`BusServices`] as
//! `xenpci.sys` will, with the rules of the interface checked on every call:
//!
//! - the IRQL of the calling "CPU" (a thread-local the test sets as Windows would: DIRQL in the
//!   interrupt, DISPATCH_LEVEL in the DPC, PASSIVE_LEVEL elsewhere) is what the adapter sees;
//!   every refusal it reports is recorded;
//! - no service is reached after the last dereference, and the release comes exactly once;
//! - a port, watch, suspend handle or grant the child does not own is refused;
//! - an event port is masked before its callback and stays masked until the child unmasks it;
//!   no callback is entered while the same registration's callback runs;
//! - at the end: references balanced, nothing registered, no transaction open, no grant left.
#![allow(dead_code)]

use std::cell::Cell;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use xen_abi::types::{DomId, EvtchnPort, GrantRef};
use xen_abi::xenbus::XenbusState;
use xen_sim::SuspendOutcome as SimOutcome;
use xen_sim::{
    Backend, Config, HvConfig, SimEvtchnOps, SimFifo, SimGrantEntries, SimHypervisor,
    SimRingTransport, SimSharedInfo, Xen,
};
use xenpci_core::bus::{
    Bus, BusConfig, BusEvent, BusSuspend, SuspendChildren, UnplugFlags, UnplugPlan,
};
use xenpci_core::evtchn::{Config as EvtchnConfig, EventChannels, HandlerId};
use xenpci_core::grant_table::{GrantLink, GrantTable, Revocation};
use xenpci_core::hypervisor::hvm::{CallbackVia, UpcallResources};
use xenpci_core::hypervisor::Policy;
use xenpci_core::suspend::{SuspendOutcome, SuspendSequence};
use xenpci_core::xenbus::{read_child, Change, ChildInfo, ReadBuffers};
use xenpci_core::xenstore::{TxId, WatchId, XsConnection, XsError};
use xenpci_interface::provider::ChildDevice;
use xenpci_interface::{
    BusError, BusServices, ChildInterface, Delivery, EventHandler, Irql, QueryRefusal,
    QueryRequest, SuspendHandler, SuspendPhase, Violation, WatchHandler, XenBusInterfaceV1,
};

pub type TestBus = Bus<
    'static,
    SimHypervisor,
    SimEvtchnOps,
    SimSharedInfo,
    SimFifo,
    SimGrantEntries,
    1024,
    4,
    16,
    8,
>;

pub const GUEST: u16 = 1;
pub const VBD: u32 = 51712;
const STORE_HANDLER: HandlerId = HandlerId(100);
/// Every port bound for the child is dispatched to this handler id; the registration table
/// below says which callback.
const CHILD_HANDLER: HandlerId = HandlerId(7);

thread_local! {
    static IRQL: Cell<u8> = const { Cell::new(0) };
    static HOLDING: Cell<bool> = const { Cell::new(false) };
}

/// The bus's lock, held by this thread.
struct BusGuard<'a>(MutexGuard<'a, Inner>);

impl Drop for BusGuard<'_> {
    fn drop(&mut self) {
        HOLDING.with(|c| c.set(false));
    }
}

impl std::ops::Deref for BusGuard<'_> {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl std::ops::DerefMut for BusGuard<'_> {
    fn deref_mut(&mut self) -> &mut Inner {
        &mut self.0
    }
}

/// Runs `f` with the calling thread at `irql`, as Windows would run an ISR or a DPC.
pub fn at_irql<R>(irql: Irql, f: impl FnOnce() -> R) -> R {
    let before = IRQL.with(|c| c.replace(irql.0));
    let r = f();
    IRQL.with(|c| c.set(before));
    r
}

pub fn current_irql() -> Irql {
    Irql(IRQL.with(Cell::get))
}

/// A DIRQL the tests use for the bus's interrupt.
pub const DIRQL: Irql = Irql(5);

#[derive(Debug)]
struct EventReg {
    port: EvtchnPort,
    handler: EventHandler,
    /// Masked by the bus for a callback, not yet unmasked by the child.
    masked: bool,
    running: bool,
    calls: u32,
}

#[derive(Debug)]
struct WatchReg {
    handle: u32,
    core: WatchId,
    path: String,
    handler: WatchHandler,
    running: bool,
}

#[derive(Debug)]
struct SuspendReg {
    handle: u32,
    handler: SuspendHandler,
    running: bool,
}

struct Inner {
    /// Built in place in memory of its own (leaked), as the shell does: never moved.
    bus: &'static mut TestBus,
    ring: SimRingTransport,
    bufs: Box<ReadBuffers>,
    events: Vec<EventReg>,
    watches: Vec<WatchReg>,
    suspends: Vec<SuspendReg>,
    /// DPC-mode events waiting for the DPC.
    dpc_queue: Vec<EvtchnPort>,
    grants: BTreeSet<GrantRef>,
    deferred: u32,
    transactions: BTreeSet<u32>,
    next_handle: u32,
    children_added: Vec<ChildInfo>,
}

/// The simulated bus: Xen, the bring-up, and the rule book of one child.
pub struct SimBus {
    pub xen: Xen,
    inner: Mutex<Inner>,
    /// Rule breaks by the child (through the adapter) or by the bus itself.
    pub violations: Mutex<Vec<String>>,
    pub releases: AtomicU32,
    pub acquisitions: AtomicU32,
    pub service_calls: AtomicU32,
    /// Ports the child closed.
    pub closes: AtomicU32,
}

fn config() -> BusConfig {
    BusConfig {
        policy: Policy::Auto,
        vcpus: 1,
        prefer_fifo: false,
        upcall: UpcallResources {
            vector: Some(0xf3),
            line: CallbackVia::Gsi(28),
        },
        grant_frames: 2,
        max_grant_frames: 8,
        store_handler: STORE_HANDLER,
        unplug: Some(UnplugPlan {
            product: 3,
            build: 1,
            flags: UnplugFlags::ALL_IDE_DISKS | UnplugFlags::ALL_NICS,
        }),
    }
}

pub fn frontend_dir(id: u32) -> String {
    format!("/local/domain/{GUEST}/device/vbd/{id}")
}

pub fn backend_dir(id: u32) -> String {
    format!("/local/domain/0/backend/vbd/{GUEST}/{id}")
}

/// The toolstack's part of adding a disk, as libxl writes it.
pub fn add_vbd(dom0: &Backend, id: u32) {
    let back = backend_dir(id);
    dom0.xs_mkdir(&back).unwrap();
    dom0.xs_set_perms(&back, &["n0", "r1"]).unwrap();
    dom0.xs_write(&format!("{back}/frontend"), frontend_dir(id).as_bytes())
        .unwrap();
    dom0.xs_write(&format!("{back}/frontend-id"), b"1").unwrap();
    dom0.xs_write(&format!("{back}/state"), b"1").unwrap();
    let front = frontend_dir(id);
    dom0.xs_write(&format!("{front}/backend"), back.as_bytes())
        .unwrap();
    dom0.xs_write(&format!("{front}/backend-id"), b"0").unwrap();
    dom0.xs_write(
        &format!("{front}/virtual-device"),
        id.to_string().as_bytes(),
    )
    .unwrap();
    dom0.xs_write(&format!("{front}/state"), b"1").unwrap();
}

pub fn set_backend_state(dom0: &Backend, id: u32, state: XenbusState) {
    dom0.xs_write(
        &format!("{}/state", backend_dir(id)),
        state.as_u32().to_string().as_bytes(),
    )
    .unwrap();
}

pub fn frontend_state(dom0: &Backend, id: u32) -> XenbusState {
    let v = dom0
        .xs_read(&format!("{}/state", frontend_dir(id)))
        .unwrap();
    XenbusState::parse(&v).unwrap()
}

fn store(e: XsError) -> BusError {
    BusError::from_xs_error(e)
}

impl SimBus {
    /// Brings the bus up on a fresh simulated host.
    pub fn new() -> Arc<SimBus> {
        let xen = Xen::new(Config {
            fifo: false,
            vcpus: 1,
            max_grant_frames: 8,
            hv: HvConfig::default(),
            ..Config::default()
        });
        let mut ring = xen.store_ring();
        let links: &'static [GrantLink] =
            Box::leak(xen_sim::grant_links(8 * 512).into_boxed_slice());
        let grants = GrantTable::new(xen.grant_entries(), links, 0).unwrap();
        let cfg = config();
        // Written unstarted, then started in place, as the shell does.
        let evtchn = Box::leak(Box::new_uninit()).write(EventChannels::unstarted(
            xen.evtchn_ops(),
            xen.shared_info(),
            xen.fifo(),
        ));
        evtchn
            .start(EvtchnConfig {
                vcpus: cfg.vcpus,
                prefer_fifo: cfg.prefer_fifo,
            })
            .unwrap();
        let store = Box::leak(Box::new_uninit()).write(XsConnection::new());
        let bus = TestBus::bring_up_in_place(
            Box::leak(Box::new_uninit()),
            xen.hypervisor(),
            cfg,
            grants,
            evtchn,
            store,
            &mut ring,
            &mut (),
        )
        .unwrap();
        Arc::new(SimBus {
            xen,
            inner: Mutex::new(Inner {
                bus,
                ring,
                bufs: Box::new(ReadBuffers::new()),
                events: Vec::new(),
                watches: Vec::new(),
                suspends: Vec::new(),
                dpc_queue: Vec::new(),
                grants: BTreeSet::new(),
                deferred: 0,
                transactions: BTreeSet::new(),
                next_handle: 1,
                children_added: Vec::new(),
            }),
            violations: Mutex::new(Vec::new()),
            releases: AtomicU32::new(0),
            acquisitions: AtomicU32::new(0),
            service_calls: AtomicU32::new(0),
            closes: AtomicU32::new(0),
        })
    }

    fn lock(&self) -> BusGuard<'_> {
        // The same thread locking twice means the bus was entered from inside one of its own
        // callbacks while holding its state: a deadlock on Windows. Fail loudly instead.
        assert!(
            !HOLDING.with(Cell::get),
            "bus state locked twice: a callback ran under the bus's lock"
        );
        let guard = self.inner.lock().unwrap();
        HOLDING.with(|c| c.set(true));
        BusGuard(guard)
    }

    fn violation(&self, what: String) {
        self.violations.lock().unwrap().push(what);
    }

    /// Whether the child holds the interface (acquired more often than released).
    pub fn held(&self) -> bool {
        self.acquisitions.load(Ordering::Acquire) > self.releases.load(Ordering::Acquire)
    }

    /// The rule violations recorded so far.
    pub fn violations(&self) -> Vec<String> {
        self.violations.lock().unwrap().clone()
    }

    /// Takes the violations recorded so far (a test that breaks a rule on purpose).
    pub fn take_violations(&self) -> Vec<String> {
        std::mem::take(&mut *self.violations.lock().unwrap())
    }

    /// What every service call checks first.
    fn service(&self) {
        self.service_calls.fetch_add(1, Ordering::Relaxed);
        if !self.held() {
            self.violation("a service was reached with no reference held".into());
        }
    }

    /// Takes the store's events: children that appeared, and the child's watches, whose
    /// callbacks run at PASSIVE_LEVEL with the bus unlocked. Returns the children added.
    pub fn process_store(&self) -> Vec<ChildInfo> {
        let mut added = Vec::new();
        for _ in 0..64 {
            let mut fire = Vec::new();
            let more = {
                let mut guard = self.lock();
                let inner = &mut *guard;
                let mut events = Vec::new();
                let more = inner
                    .bus
                    .process_store(&mut inner.ring, &mut inner.bufs, |e| events.push(e))
                    .unwrap();
                for e in events {
                    match e {
                        BusEvent::Child(Change::Added { class, id }) => {
                            let info = read_child(
                                inner.bus.xs,
                                &mut inner.ring,
                                class,
                                id,
                                &mut inner.bufs,
                            )
                            .unwrap();
                            inner.children_added.push(info);
                            added.push(info);
                        }
                        BusEvent::Watch(w) => {
                            if let Some(reg) = inner.watches.iter().find(|r| r.core == w) {
                                fire.push((reg.handle, reg.path.clone(), reg.handler));
                            }
                        }
                        _ => {}
                    }
                }
                more
            };
            let fired = !fire.is_empty();
            for (handle, path, handler) in fire {
                {
                    let mut inner = self.lock();
                    // Removed by an earlier callback of this batch: not called any more.
                    let Some(reg) = inner.watches.iter_mut().find(|r| r.handle == handle) else {
                        continue;
                    };
                    if reg.running {
                        drop(inner);
                        self.violation(format!("watch {handle} re-entered"));
                        continue;
                    }
                    reg.running = true;
                }
                at_irql(Irql::PASSIVE, || handler.fire(handle, path.as_bytes()));
                if let Some(reg) = self.lock().watches.iter_mut().find(|r| r.handle == handle) {
                    reg.running = false;
                }
            }
            if !more && !fired {
                break;
            }
        }
        added
    }

    /// The bus's interrupt: the upcall scan at DIRQL. Ports of DIRQL registrations are masked
    /// and their callbacks run here; DPC registrations are masked and queued for
    /// [`run_dpc`](Self::run_dpc). Returns the ports that fired.
    pub fn interrupt(&self) -> Vec<EvtchnPort> {
        at_irql(DIRQL, || {
            let mut fired = Vec::new();
            let mut direct = Vec::new();
            {
                let mut guard = self.lock();
                let inner = &mut *guard;
                loop {
                    let mut ports = Vec::new();
                    let outcome = inner
                        .bus
                        .evtchn
                        .scan(0, 64, |port, handler| {
                            if handler == CHILD_HANDLER {
                                ports.push(port);
                            }
                        })
                        .unwrap();
                    for port in ports {
                        let Some(reg) = inner.events.iter_mut().find(|r| r.port == port) else {
                            self.violation(format!("event on port {port} with no registration"));
                            continue;
                        };
                        if reg.masked {
                            self.violation(format!("port {port} fired while masked"));
                            continue;
                        }
                        inner.bus.evtchn.mask(port).unwrap();
                        reg.masked = true;
                        fired.push(port);
                        match reg.handler.delivery() {
                            Delivery::Dirql => direct.push((port, reg.handler)),
                            Delivery::Dpc => inner.dpc_queue.push(port),
                        }
                    }
                    if !outcome.more {
                        break;
                    }
                }
            }
            for (port, handler) in direct {
                self.run_event(port, handler);
            }
            fired
        })
    }

    fn run_event(&self, port: EvtchnPort, handler: EventHandler) {
        {
            let mut inner = self.lock();
            let Some(reg) = inner.events.iter_mut().find(|r| r.port == port) else {
                return;
            };
            if reg.running {
                drop(inner);
                self.violation(format!("event callback of port {port} re-entered"));
                return;
            }
            reg.running = true;
            reg.calls += 1;
        }
        handler.fire(port);
        if let Some(reg) = self.lock().events.iter_mut().find(|r| r.port == port) {
            reg.running = false;
        }
    }

    /// The bus's DPC: runs the queued DPC-mode callbacks at DISPATCH_LEVEL.
    pub fn run_dpc(&self) -> usize {
        at_irql(Irql::DISPATCH, || {
            let queued: Vec<EvtchnPort> = std::mem::take(&mut self.lock().dpc_queue);
            let n = queued.len();
            for port in queued {
                let handler = self
                    .lock()
                    .events
                    .iter()
                    .find(|r| r.port == port)
                    .map(|r| r.handler);
                if let Some(h) = handler {
                    self.run_event(port, h);
                }
            }
            n
        })
    }

    /// Tells every suspend handler of `phase`, at its IRQL.
    pub fn suspend_phase(&self, phase: SuspendPhase) {
        let irql = match phase {
            SuspendPhase::ResumedEarly => Irql::HIGH,
            _ => Irql::PASSIVE,
        };
        let handlers: Vec<(u32, SuspendHandler)> = self
            .lock()
            .suspends
            .iter()
            .map(|r| (r.handle, r.handler))
            .collect();
        for (handle, h) in handlers {
            {
                let mut inner = self.lock();
                let Some(reg) = inner.suspends.iter_mut().find(|r| r.handle == handle) else {
                    continue;
                };
                assert!(!reg.running, "suspend callback re-entered");
                reg.running = true;
            }
            at_irql(irql, || h.fire(phase));
            if let Some(reg) = self.lock().suspends.iter_mut().find(|r| r.handle == handle) {
                reg.running = false;
            }
        }
    }

    /// The bus's suspend, as `xenpci.sys` runs it: `Suspending` (PASSIVE_LEVEL, the bus
    /// unlocked, so the child may still use the store), the core's suspend sequence over the bus
    /// (in a new domain when `new_domain`), then `ResumedEarly` (HIGH_LEVEL) and `Resumed`, or
    /// `Cancelled`. In a new domain the child's ports and grant references are void: the bus
    /// drops their registrations and reclaims the references before `ResumedEarly`, and the
    /// child forgets them.
    pub fn suspend(&self, new_domain: bool) -> SuspendOutcome {
        self.suspend_phase(SuspendPhase::Suspending);
        self.xen.set_suspend_outcome(if new_domain {
            SimOutcome::Resumed
        } else {
            SimOutcome::Cancelled
        });
        let outcome = {
            let mut guard = self.lock();
            let inner = &mut *guard;
            let outcome = SuspendSequence::new()
                .run(&mut BusSuspend {
                    bus: &mut *inner.bus,
                    store: &mut inner.ring,
                    hooks: &mut (),
                    children: &mut NoChildren,
                })
                .unwrap();
            if outcome == SuspendOutcome::Resumed {
                inner.events.clear();
                inner.dpc_queue.clear();
                for gref in std::mem::take(&mut inner.grants) {
                    if inner.bus.grants.end_access(gref) == Ok(Revocation::Deferred) {
                        inner.deferred += 1;
                    }
                }
            }
            outcome
        };
        match outcome {
            SuspendOutcome::Resumed => {
                self.suspend_phase(SuspendPhase::ResumedEarly);
                self.suspend_phase(SuspendPhase::Resumed);
            }
            SuspendOutcome::Cancelled => self.suspend_phase(SuspendPhase::Cancelled),
        }
        outcome
    }

    /// The grants the child holds now.
    pub fn grants_held(&self) -> usize {
        self.lock().grants.len()
    }

    /// Revocations the grant table deferred.
    pub fn deferred(&self) -> u32 {
        self.lock().deferred
    }

    /// Ports, watches and suspend handlers the child has registered.
    pub fn registrations(&self) -> (usize, usize, usize) {
        let inner = self.lock();
        (
            inner.events.len(),
            inner.watches.len(),
            inner.suspends.len(),
        )
    }

    /// Times the callback of `port` ran.
    pub fn event_calls(&self, port: EvtchnPort) -> u32 {
        self.lock()
            .events
            .iter()
            .find(|r| r.port == port)
            .map_or(0, |r| r.calls)
    }

    /// Whether `port` is masked in the bus's event channels.
    pub fn is_masked(&self, port: EvtchnPort) -> bool {
        self.lock().bus.evtchn.is_masked(port).unwrap()
    }

    /// Open transactions.
    pub fn transactions_open(&self) -> usize {
        self.lock().transactions.len()
    }

    /// The end-of-life checks of the child's use of the bus.
    pub fn assert_clean(&self) {
        assert_eq!(self.violations(), Vec::<String>::new(), "rule violations");
        let acquisitions = self.acquisitions.load(Ordering::Acquire);
        assert!(acquisitions > 0, "never acquired");
        assert_eq!(
            self.releases.load(Ordering::Acquire),
            acquisitions,
            "one release per acquisition"
        );
        assert_eq!(self.registrations(), (0, 0, 0), "registrations left");
        assert_eq!(self.transactions_open(), 0, "transactions left open");
        assert_eq!(self.grants_held(), 0, "grants left");
    }
}

/// xenpci.sys's IRP_MN_QUERY_INTERFACE handler for a child PDO: negotiates and copies the
/// table into the child's buffer; a refusal leaves the buffer as it was.
pub fn query_interface(
    iface: &'static ChildInterface<SimChild>,
    request: &QueryRequest,
    buffer: &mut XenBusInterfaceV1,
) -> Result<(), QueryRefusal> {
    *buffer = iface.answer_query(request)?;
    Ok(())
}

/// The children's part of the core's suspend sequence: nothing, the interface's suspend
/// handlers are told around it (see [`SimBus::suspend`]).
struct NoChildren;

impl SuspendChildren<TestBus, SimRingTransport> for NoChildren {
    type Error = ();
    fn quiesce(&mut self, _: &mut TestBus, _: &mut SimRingTransport) -> Result<(), ()> {
        Ok(())
    }
    fn resume(&mut self, _: &mut TestBus, _: &mut SimRingTransport) -> Result<(), ()> {
        Ok(())
    }
    fn reconnect(&mut self, _: &mut TestBus, _: &mut SimRingTransport) -> Result<(), ()> {
        Ok(())
    }
}

/// [`ChildDevice`] from what the bus read of a child.
pub fn child_device(info: &ChildInfo) -> ChildDevice {
    ChildDevice::from_child_info(info)
}

/// The services for one child, as `xenpci.sys` keeps them in the PDO.
pub struct SimChild {
    pub bus: Arc<SimBus>,
}

impl SimChild {
    fn bind(
        &self,
        handler: EventHandler,
        bind: impl FnOnce(&mut Inner) -> Result<EvtchnPort, BusError>,
    ) -> Result<EvtchnPort, BusError> {
        self.bus.service();
        let mut inner = self.bus.lock();
        let port = bind(&mut inner)?;
        inner.events.push(EventReg {
            port,
            handler,
            masked: false,
            running: false,
            calls: 0,
        });
        Ok(port)
    }

    fn owned_port(inner: &mut Inner, port: EvtchnPort) -> Result<&mut EventReg, BusError> {
        inner
            .events
            .iter_mut()
            .find(|r| r.port == port)
            .ok_or(BusError::NotOwned)
    }

    fn handle(inner: &mut Inner) -> u32 {
        let h = inner.next_handle;
        inner.next_handle += 1;
        h
    }

    fn tx(&self, inner: &Inner, tx: u32) -> Result<TxId, BusError> {
        if tx != 0 && !inner.transactions.contains(&tx) {
            return Err(BusError::NotOwned);
        }
        Ok(TxId(tx))
    }
}

fn evtchn(e: xenpci_core::evtchn::EvtchnError) -> BusError {
    use xenpci_core::evtchn::EvtchnError;
    match e {
        EvtchnError::Hypercall { errno, .. } => BusError::Hypervisor(errno.0.unsigned_abs()),
        _ => BusError::InvalidParameter,
    }
}

impl BusServices for SimChild {
    fn current_irql(&self) -> Irql {
        current_irql()
    }

    fn grant_access(&self, domid: DomId, frame: u64, readonly: bool) -> Result<GrantRef, BusError> {
        self.bus.service();
        let mut inner = self.bus.lock();
        let gref = inner
            .bus
            .grants
            .grant_access(domid, frame, readonly)
            .map_err(BusError::from_grant_error)?;
        inner.grants.insert(gref);
        Ok(gref)
    }

    fn end_access(&self, gref: GrantRef) -> Result<Revocation, BusError> {
        self.bus.service();
        let mut inner = self.bus.lock();
        if !inner.grants.remove(&gref) {
            return Err(BusError::NotGranted);
        }
        let r = inner
            .bus
            .grants
            .end_access(gref)
            .map_err(BusError::from_grant_error)?;
        if r == Revocation::Deferred {
            inner.deferred += 1;
        }
        Ok(r)
    }

    fn alloc_unbound(&self, remote: DomId, handler: EventHandler) -> Result<EvtchnPort, BusError> {
        self.bind(handler, |inner| {
            inner
                .bus
                .evtchn
                .alloc_unbound(remote, CHILD_HANDLER)
                .map_err(evtchn)
        })
    }

    fn bind_interdomain(
        &self,
        remote: DomId,
        remote_port: EvtchnPort,
        handler: EventHandler,
    ) -> Result<EvtchnPort, BusError> {
        self.bind(handler, |inner| {
            inner
                .bus
                .evtchn
                .bind_interdomain(remote, remote_port, CHILD_HANDLER)
                .map_err(evtchn)
        })
    }

    fn notify(&self, port: EvtchnPort) -> Result<(), BusError> {
        self.bus.service();
        let mut inner = self.bus.lock();
        Self::owned_port(&mut inner, port)?;
        inner.bus.evtchn.send(port).map_err(evtchn)
    }

    fn unmask(&self, port: EvtchnPort) -> Result<(), BusError> {
        self.bus.service();
        let mut inner = self.bus.lock();
        Self::owned_port(&mut inner, port)?.masked = false;
        inner.bus.evtchn.unmask(port).map_err(evtchn)
    }

    fn close(&self, port: EvtchnPort) -> Result<(), BusError> {
        self.bus.service();
        let mut inner = self.bus.lock();
        let reg = Self::owned_port(&mut inner, port)?;
        if reg.running {
            drop(inner);
            self.bus
                .violation(format!("port {port} closed from inside its own callback"));
            return Err(BusError::Reentered);
        }
        inner.events.retain(|r| r.port != port);
        inner.dpc_queue.retain(|&p| p != port);
        self.bus.closes.fetch_add(1, Ordering::Relaxed);
        inner.bus.evtchn.close(port).map_err(evtchn)
    }

    fn store_read(&self, tx: u32, path: &[u8], buf: &mut [u8]) -> Result<usize, BusError> {
        self.bus.service();
        let mut guard = self.bus.lock();
        let inner = &mut *guard;
        let tx = self.tx(inner, tx)?;
        inner
            .bus
            .xs
            .read(&mut inner.ring, tx, path, buf)
            .map_err(store)
    }

    fn store_write(&self, tx: u32, path: &[u8], value: &[u8]) -> Result<(), BusError> {
        self.bus.service();
        let mut guard = self.bus.lock();
        let inner = &mut *guard;
        let tx = self.tx(inner, tx)?;
        inner
            .bus
            .xs
            .write(&mut inner.ring, tx, path, value)
            .map_err(store)
    }

    fn store_remove(&self, tx: u32, path: &[u8]) -> Result<(), BusError> {
        self.bus.service();
        let mut guard = self.bus.lock();
        let inner = &mut *guard;
        let tx = self.tx(inner, tx)?;
        inner.bus.xs.rm(&mut inner.ring, tx, path).map_err(store)
    }

    fn store_directory(&self, tx: u32, path: &[u8], buf: &mut [u8]) -> Result<usize, BusError> {
        self.bus.service();
        let mut guard = self.bus.lock();
        let inner = &mut *guard;
        let tx = self.tx(inner, tx)?;
        inner
            .bus
            .xs
            .directory(&mut inner.ring, tx, path, buf)
            .map(|list| list.as_bytes().len())
            .map_err(store)
    }

    fn store_watch(&self, path: &[u8], handler: WatchHandler) -> Result<u32, BusError> {
        self.bus.service();
        let mut guard = self.bus.lock();
        let inner = &mut *guard;
        let core = inner.bus.xs.watch(&mut inner.ring, path).map_err(store)?;
        let handle = Self::handle(inner);
        inner.watches.push(WatchReg {
            handle,
            core,
            path: String::from_utf8(path.to_vec()).unwrap(),
            handler,
            running: false,
        });
        Ok(handle)
    }

    fn store_unwatch(&self, watch: u32) -> Result<(), BusError> {
        self.bus.service();
        let mut guard = self.bus.lock();
        let inner = &mut *guard;
        let i = inner
            .watches
            .iter()
            .position(|r| r.handle == watch)
            .ok_or(BusError::NotOwned)?;
        let reg = inner.watches.remove(i);
        inner
            .bus
            .xs
            .unwatch(&mut inner.ring, reg.core)
            .map_err(store)
    }

    fn transaction_start(&self) -> Result<u32, BusError> {
        self.bus.service();
        let mut guard = self.bus.lock();
        let inner = &mut *guard;
        let tx = inner
            .bus
            .xs
            .transaction_start(&mut inner.ring)
            .map_err(store)?;
        inner.transactions.insert(tx.0);
        Ok(tx.0)
    }

    fn transaction_end(&self, tx: u32, commit: bool) -> Result<(), BusError> {
        self.bus.service();
        let mut guard = self.bus.lock();
        let inner = &mut *guard;
        if !inner.transactions.remove(&tx) {
            return Err(BusError::NotOwned);
        }
        inner
            .bus
            .xs
            .transaction_end(&mut inner.ring, TxId(tx), commit)
            .map_err(store)
    }

    fn register_suspend(&self, handler: SuspendHandler) -> Result<u32, BusError> {
        self.bus.service();
        let mut inner = self.bus.lock();
        let handle = Self::handle(&mut inner);
        inner.suspends.push(SuspendReg {
            handle,
            handler,
            running: false,
        });
        Ok(handle)
    }

    fn unregister_suspend(&self, handle: u32) -> Result<(), BusError> {
        self.bus.service();
        let mut inner = self.bus.lock();
        let before = inner.suspends.len();
        inner.suspends.retain(|r| r.handle != handle);
        if inner.suspends.len() == before {
            return Err(BusError::NotOwned);
        }
        Ok(())
    }

    fn release(&self) {
        if current_irql() != Irql::PASSIVE {
            self.bus.violation("release above PASSIVE_LEVEL".into());
        }
        if !self.bus.held() {
            self.bus.violation("released while not held".into());
        }
        self.bus.releases.fetch_add(1, Ordering::AcqRel);
        // Revoke whatever the child left registered, as the bus does on the last dereference.
        let mut guard = self.bus.lock();
        let inner = &mut *guard;
        if !inner.transactions.is_empty() {
            self.bus
                .violation("a transaction was left open at the release".into());
        }
        if inner.events.iter().any(|r| r.running)
            || inner.watches.iter().any(|r| r.running)
            || inner.suspends.iter().any(|r| r.running)
        {
            self.bus
                .violation("released while a callback was running".into());
        }
        for reg in std::mem::take(&mut inner.events) {
            let _ = inner.bus.evtchn.close(reg.port);
        }
        inner.dpc_queue.clear();
        for reg in std::mem::take(&mut inner.watches) {
            let _ = inner.bus.xs.unwatch(&mut inner.ring, reg.core);
        }
        inner.suspends.clear();
        for tx in std::mem::take(&mut inner.transactions) {
            let _ = inner
                .bus
                .xs
                .transaction_end(&mut inner.ring, TxId(tx), false);
        }
    }

    fn acquired(&self) {
        if self.bus.held() {
            self.bus.violation("acquired while already held".into());
        }
        self.bus.acquisitions.fetch_add(1, Ordering::AcqRel);
    }

    fn violation(&self, violation: Violation) {
        self.bus.violation(format!("refused: {violation}"));
    }
}

/// A bus with one disk enumerated and its PDO's adapter made (nothing queried yet).
pub fn bus_with_vbd() -> (Arc<SimBus>, &'static ChildInterface<SimChild>) {
    let bus = SimBus::new();
    let dom0 = bus.xen.dom0();
    add_vbd(&dom0, VBD);
    set_backend_state(&dom0, VBD, XenbusState::InitWait);
    let added = bus.process_store();
    let info = added
        .iter()
        .find(|c| c.id == VBD)
        .expect("the disk appears");
    let iface: &'static ChildInterface<SimChild> = Box::leak(Box::new(ChildInterface::new(
        SimChild { bus: bus.clone() },
        child_device(info),
    )));
    (bus, iface)
}

/// Handlers that record what arrives and at which IRQL.
#[derive(Default)]
pub struct Recorder {
    pub events: Mutex<Vec<(EvtchnPort, Irql)>>,
    pub watches: Mutex<Vec<(u32, Vec<u8>)>>,
    running: AtomicU32,
}

impl xenpci_interface::BusCallbacks for Recorder {
    fn on_event(&self, port: EvtchnPort) {
        assert_eq!(self.running.fetch_add(1, Ordering::SeqCst), 0, "re-entered");
        self.events.lock().unwrap().push((port, current_irql()));
        self.running.fetch_sub(1, Ordering::SeqCst);
    }
    fn on_watch(&self, watch: u32, path: &[u8]) {
        self.watches.lock().unwrap().push((watch, path.to_vec()));
    }
}
