//! A block child driven through the table exactly as `xenvbd.sys` will be: it asks the bus for
//! the interface (a query answered by the provider adapter over xenpci-core's `Bus` on a
//! simulated Xen), checks it, watches its backend's `state`, runs the xenbus handshake through
//! the table, and runs xenvbd-core's engine unchanged on the table's grants and events against
//! xen-sim's blkback: negotiation from the backend's nodes, the layout probe, writes and reads
//! with the data checked on the backend's disk and back in guest memory, completions from the
//! event channel's DPC, then close, release and the rule book's end-of-life checks.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use support::*;
use xen_abi::types::{DomId, EvtchnPort, GrantRef};
use xen_abi::xenbus::XenbusState;
use xen_ring::RingMemory;
use xen_sim::blkback::{BlkFeatures, Blkback};
use xen_sim::Xen;
use xenpci_core::suspend::SuspendOutcome;
use xenpci_core::xenbus::{FrontendDriver, FrontendStore, Handshake};
use xenpci_core::xenstore::XsError;
use xenpci_interface::blkif::{TableEvents, TableGrants};
use xenpci_interface::frontend::{execute, read_backend_state};
use xenpci_interface::{
    BusCallbacks, BusClient, ChildInterface, Delivery, Irql, QueryRequest, StoreBase, SuspendPhase,
    XenBusInterfaceV1,
};
use xenvbd_core::blkif::{
    BackendFeatures, Blkif, BlockCompletion, BlockStatus, EngineConfig, EngineState,
    FrontendConfig, FrontendParams, Io, LogEvent,
};
use xenvbd_core::{BlockOp, Segment, Tag};

const SECTORS: u64 = 8192;
type Engine = Blkif<16, 64, 32, 8, 2>;

/// An engine initialised in place on the heap (`Blkif::EMPTY`, then `init`).
fn boxed_engine<
    const JOBS: usize,
    const SEGS: usize,
    const SLOTS: usize,
    const POOL: usize,
    const IND: usize,
>(
    config: EngineConfig,
    pool_frames: &[u64; POOL],
    indirect_frames: &[u64; IND],
) -> Box<Blkif<JOBS, SEGS, SLOTS, POOL, IND>> {
    let mut engine = Box::new(Blkif::EMPTY);
    engine.init(config, pool_frames, indirect_frames);
    engine
}

/// Guest memory of the simulated host, as the engine sees it.
struct SimMem(Xen);

impl xenvbd_core::GuestMemory for SimMem {
    fn read(&self, frame: u64, offset: usize, buf: &mut [u8]) {
        self.0.read_guest(frame, offset, buf).unwrap();
    }
    fn write(&mut self, frame: u64, offset: usize, data: &[u8]) {
        self.0.write_guest(frame, offset, data).unwrap();
    }
}

/// The child's handlers, as its device extension holds them: they record what arrived (with
/// the IRQL it arrived at) for the child's DPC and work item to act on.
#[derive(Default)]
struct Handlers {
    events: Mutex<Vec<(EvtchnPort, Irql)>>,
    watches: Mutex<Vec<(u32, Vec<u8>)>>,
    phases: Mutex<Vec<(SuspendPhase, Irql)>>,
    running: AtomicU32,
}

impl BusCallbacks for Handlers {
    fn on_event(&self, port: EvtchnPort) {
        assert_eq!(self.running.fetch_add(1, Ordering::SeqCst), 0, "re-entered");
        self.events.lock().unwrap().push((port, current_irql()));
        self.running.fetch_sub(1, Ordering::SeqCst);
    }
    fn on_watch(&self, watch: u32, path: &[u8]) {
        assert_eq!(current_irql(), Irql::PASSIVE);
        self.watches.lock().unwrap().push((watch, path.to_vec()));
    }
    fn on_suspend(&self, phase: SuspendPhase) {
        self.phases.lock().unwrap().push((phase, current_irql()));
    }
}

/// What the child keeps between calls (its device extension).
struct Child {
    xen: Xen,
    mem: SimMem,
    engine: Box<Engine>,
    cfg: FrontendConfig,
    domid: DomId,
    port: Option<EvtchnPort>,
    ring: Option<(RingMemory, Vec<u64>)>,
    log: Vec<LogEvent>,
    done: Vec<BlockCompletion>,
    data: u64,
}

/// The block driver's part of the handshake, through the table.
struct BlockDriver<'a, 'c, 'h> {
    client: &'c BusClient<'h, Handlers>,
    child: &'a mut Child,
}

#[derive(Clone, Copy, Debug)]
#[allow(dead_code)]
enum DriverError {
    Feature(xenvbd_core::blkif::FeatureError),
    Bus(xenpci_interface::BusError),
    Grant(xenpci_core::grant_table::GrantError),
    Publish(XsError),
}

impl FrontendDriver for BlockDriver<'_, '_, '_> {
    type Error = DriverError;

    fn on_backend_init_wait(
        &mut self,
        store: &mut dyn FrontendStore,
    ) -> Result<XenbusState, DriverError> {
        let c = &mut *self.child;
        let feat = BackendFeatures::read_from(store).map_err(DriverError::Feature)?;
        let params = FrontendParams::negotiate(&c.cfg, &feat);
        if c.port.is_none() {
            // As xenvbd.sys: completions from the event channel's DPC.
            let port = self
                .client
                .alloc_unbound(c.domid, Delivery::Dpc)
                .map_err(DriverError::Bus)?;
            c.port = Some(port);
        }
        let port = c.port.unwrap();
        if c.ring.is_none() {
            let mem = RingMemory::allocate(params.ring_page_order).unwrap();
            let frames: Vec<u64> = (0..params.ring_pages())
                .map(|_| c.xen.alloc_page())
                .collect();
            let mut grants = TableGrants::new(self.client);
            let log = &mut c.log;
            let mut events = TableEvents::new(self.client, &[port], |e| log.push(e));
            let mut io = Io::new(&mut grants, &mut events, &mut c.mem);
            at_irql(Irql::PASSIVE, || {
                c.engine.attach_ring(params, mem.clone(), &frames, &mut io)
            })
            .map_err(DriverError::Grant)?;
            c.ring = Some((mem, frames));
        }
        let mut refs = [0; 16];
        let n = c.engine.ring_refs(&mut refs);
        params
            .publish(&[&refs[..n]], &[port], store)
            .map_err(|e| match e {
                xenvbd_core::blkif::negotiate::NodeError::Store(x) => DriverError::Publish(x),
                xenvbd_core::blkif::negotiate::NodeError::Shape => {
                    DriverError::Bus(xenpci_interface::BusError::InvalidParameter)
                }
            })?;
        Ok(XenbusState::Initialised)
    }

    fn on_backend_connected(&mut self, store: &mut dyn FrontendStore) -> Result<(), DriverError> {
        let c = &mut *self.child;
        let feat = BackendFeatures::read_from(store).map_err(DriverError::Feature)?;
        let port = c.port.unwrap();
        let mut grants = TableGrants::new(self.client);
        let log = &mut c.log;
        let mut events = TableEvents::new(self.client, &[port], |e| log.push(e));
        let mut io = Io::new(&mut grants, &mut events, &mut c.mem);
        c.engine.connected(&feat, &mut io);
        Ok(())
    }

    fn on_backend_closing(&mut self) -> Result<(), DriverError> {
        Ok(())
    }

    fn on_backend_closed(&mut self) {
        let c = &mut *self.child;
        if let Some(port) = c.port {
            let mut grants = TableGrants::new(self.client);
            let log = &mut c.log;
            let mut events = TableEvents::new(self.client, &[port], |e| log.push(e));
            let mut io = Io::new(&mut grants, &mut events, &mut c.mem);
            c.engine.disconnect(&mut io);
            assert_eq!(grants.end_failures(), 0);
        }
        c.ring = None;
        if let Some(port) = c.port.take() {
            self.client.close(port).unwrap();
        }
    }
}

/// blkback's xenbus side, as dom0's backend driver runs it.
struct BackendSide {
    be: Blkback,
    connected: bool,
}

impl BackendSide {
    /// Seeing the frontend Initialised: read its nodes, map the ring, bind the channel, go
    /// Connected.
    fn step(&mut self, bus: &SimBus, child: &Child) {
        let dom0 = bus.xen.dom0();
        if self.connected || frontend_state(&dom0, VBD) != XenbusState::Initialised {
            return;
        }
        let front = frontend_dir(VBD);
        let node = |n: &str| -> Option<String> {
            dom0.xs_read(&format!("{front}/{n}"))
                .ok()
                .map(|v| String::from_utf8(v).unwrap())
        };
        let order: u32 = node("ring-page-order").map_or(0, |v| v.parse().unwrap());
        let refs: Vec<GrantRef> = if order == 0 {
            vec![node("ring-ref").unwrap().parse().unwrap()]
        } else {
            (0..1 << order)
                .map(|i| node(&format!("ring-ref{i}")).unwrap().parse().unwrap())
                .collect()
        };
        let port: u32 = node("event-channel").unwrap().parse().unwrap();
        let protocol = node("protocol");
        let persistent = node("feature-persistent").as_deref() == Some("1");
        let back_port = dom0.bind_interdomain(GUEST, port).unwrap();
        ring_to_sim(child);
        self.be
            .connect(&refs, protocol.as_deref(), Some(back_port), persistent)
            .unwrap();
        set_backend_state(&dom0, VBD, XenbusState::Connected);
        self.connected = true;
    }

    fn serve(&mut self, child: &Child) -> usize {
        if !self.connected || child.ring.is_none() {
            return 0;
        }
        ring_to_sim(child);
        let n = self.be.serve().unwrap();
        ring_from_sim(child);
        n
    }
}

fn ring_to_sim(child: &Child) {
    let (mem, frames) = child.ring.as_ref().unwrap();
    for (i, f) in frames.iter().enumerate() {
        let mut page = vec![0; 4096];
        mem.read_bytes(i * 4096, &mut page).unwrap();
        child.xen.write_guest(*f, 0, &page).unwrap();
    }
}

fn ring_from_sim(child: &Child) {
    let (mem, frames) = child.ring.as_ref().unwrap();
    for (i, f) in frames.iter().enumerate() {
        let mut page = vec![0; 4096];
        child.xen.read_guest(*f, 0, &mut page).unwrap();
        mem.write_bytes(i * 4096, &page).unwrap();
    }
}

/// The machine: bus, child, backend, and the loop that moves events between them.
struct Rig<'h> {
    bus: Arc<SimBus>,
    iface: &'static ChildInterface<SimChild>,
    handlers: &'h Handlers,
    client: Option<BusClient<'h, Handlers>>,
    child: Child,
    hs: Handshake,
    watch: Option<u32>,
    backend: BackendSide,
}

impl<'h> Rig<'h> {
    fn new(handlers: &'h Handlers, features: BlkFeatures, cfg: FrontendConfig) -> Rig<'h> {
        let bus = SimBus::new();
        let dom0 = bus.xen.dom0();
        let be = Blkback::new(bus.xen.dom0(), SECTORS, features);
        add_vbd(&dom0, VBD);
        be.advertise(&backend_dir(VBD)).unwrap();
        set_backend_state(&dom0, VBD, XenbusState::InitWait);

        // The bus enumerates the disk and makes its PDO, with the adapter in its extension.
        let added = bus.process_store();
        let info = added
            .iter()
            .find(|c| c.id == VBD)
            .expect("the disk appears");
        let iface: &'static ChildInterface<SimChild> = Box::leak(Box::new(ChildInterface::new(
            SimChild { bus: bus.clone() },
            child_device(info),
        )));

        // xenvbd.sys's AddDevice/START: IRP_MN_QUERY_INTERFACE with its own buffer.
        let mut buffer = XenBusInterfaceV1::EMPTY;
        query_interface(iface, &QueryRequest::V1, &mut buffer).expect("the bus fills version 1");
        assert_eq!(iface.references(), 1);
        // SAFETY:
        // 1. `buffer` is what the bus wrote in answer to this child's query, and its reference
        //    goes to the client;
        // 2. the client is dropped (in `finish`) before `handlers`, which outlives the rig.
        let client = unsafe { BusClient::new(&buffer, handlers) }.expect("a valid table");

        let xen = bus.xen.clone();
        let pool: [u64; 8] = core::array::from_fn(|_| xen.alloc_page());
        let ind: [u64; 2] = core::array::from_fn(|_| xen.alloc_page());
        let data = xen.alloc_page();
        for _ in 1..64 {
            xen.alloc_page();
        }
        let domid = client.backend_domid().unwrap();
        let engine = boxed_engine(EngineConfig::new(domid, VBD as u16), &pool, &ind);
        let child = Child {
            mem: SimMem(xen.clone()),
            xen,
            engine,
            cfg,
            domid,
            port: None,
            ring: None,
            log: Vec::new(),
            done: Vec::new(),
            data,
        };
        Rig {
            bus,
            iface,
            handlers,
            client: Some(client),
            child,
            hs: Handshake::new(),
            watch: None,
            backend: BackendSide {
                be,
                connected: false,
            },
        }
    }

    fn take_phases(&self) -> Vec<(SuspendPhase, Irql)> {
        std::mem::take(&mut *self.handlers.phases.lock().unwrap())
    }

    /// The child's work after `Resumed`: its ports and grant references are void (the bus
    /// reclaimed them), so the engine forgets its ring and grants without ending them, and the
    /// handshake releases and starts again.
    fn resumed(&mut self) {
        self.child.engine.resumed();
        self.child.port = None;
        self.child.ring = None;
        let client = self.client.as_ref().unwrap();
        let plan = self.hs.resume();
        let mut drv = BlockDriver {
            client,
            child: &mut self.child,
        };
        execute(&mut self.hs, &plan, client, &mut drv).unwrap();
    }

    fn client(&self) -> &BusClient<'h, Handlers> {
        self.client.as_ref().unwrap()
    }

    /// The child's start: watch the backend, start the handshake.
    fn start(&mut self) {
        let client = self.client.as_ref().unwrap();
        self.watch = Some(client.watch(StoreBase::Backend, "state").unwrap());
        let plan = self.hs.start();
        let mut drv = BlockDriver {
            client,
            child: &mut self.child,
        };
        execute(&mut self.hs, &plan, client, &mut drv).unwrap();
    }

    /// The child's work item for a watch event: read the backend, run the plan.
    fn on_watches(&mut self) -> bool {
        let fired: Vec<_> = std::mem::take(&mut *self.handlers.watches.lock().unwrap());
        let client = self.client.as_ref().unwrap();
        for (w, _) in &fired {
            assert_eq!(Some(*w), self.watch);
            let backend = read_backend_state(client).unwrap();
            let plan = self.hs.on_backend(backend);
            assert_eq!(plan.error, None);
            let mut drv = BlockDriver {
                client,
                child: &mut self.child,
            };
            execute(&mut self.hs, &plan, client, &mut drv).unwrap();
        }
        !fired.is_empty()
    }

    /// The child's DPC for its event channel: poll the engine, then unmask.
    fn on_events(&mut self) -> bool {
        let fired: Vec<_> = std::mem::take(&mut *self.handlers.events.lock().unwrap());
        let client = self.client.as_ref().unwrap();
        for &(port, irql) in &fired {
            assert_eq!(
                irql,
                Irql::DISPATCH,
                "a DPC-mode event arrives at DISPATCH_LEVEL"
            );
            assert_eq!(Some(port), self.child.port);
            assert!(self.bus.is_masked(port), "masked until the child unmasks");
            let c = &mut self.child;
            let mut grants = TableGrants::new(client);
            let log = &mut c.log;
            let mut events = TableEvents::new(client, &[port], |e| log.push(e));
            let mut io = Io::new(&mut grants, &mut events, &mut c.mem);
            let done = &mut c.done;
            at_irql(Irql::DISPATCH, || {
                c.engine.poll(&mut io, |x| done.push(x)).unwrap();
                client.unmask(port).unwrap();
            });
            assert_eq!(events.notify_failures(), 0);
        }
        !fired.is_empty()
    }

    /// Runs everything until nothing moves.
    fn settle(&mut self) {
        for _ in 0..500 {
            let mut moved = !self.bus.process_store().is_empty();
            moved |= self.on_watches();
            self.backend.step(&self.bus, &self.child);
            moved |= self.backend.serve(&self.child) > 0;
            moved |= !self.bus.interrupt().is_empty();
            moved |= self.bus.run_dpc() > 0;
            moved |= self.on_events();
            if !moved && self.bus.process_store().is_empty() && !self.on_watches() {
                return;
            }
        }
        panic!("the machine never settled");
    }

    /// StorPort's StartIo: submit at DISPATCH_LEVEL.
    fn submit(&mut self, tag: u64, op: BlockOp, segs: &[Segment]) {
        let client = self.client.as_ref().unwrap();
        let c = &mut self.child;
        let port = c.port.unwrap();
        let mut grants = TableGrants::new(client);
        let log = &mut c.log;
        let mut events = TableEvents::new(client, &[port], |e| log.push(e));
        let mut io = Io::new(&mut grants, &mut events, &mut c.mem);
        let done = &mut c.done;
        at_irql(Irql::DISPATCH, || {
            c.engine
                .submit(Tag(tag), op, segs, &mut io, |x| done.push(x))
                .unwrap()
        });
    }

    fn take(&mut self, tag: u64) -> BlockCompletion {
        let i = self
            .child
            .done
            .iter()
            .position(|c| c.tag == Tag(tag))
            .unwrap_or_else(|| panic!("no completion for {tag}"));
        self.child.done.remove(i)
    }

    fn pages(&self, first: u64, n: u64) -> Vec<Segment> {
        (first..first + n)
            .map(|i| Segment {
                frame: self.child.data + i,
                offset: 0,
                length: 4096,
            })
            .collect()
    }

    fn write_read(&mut self, tag: u64, sector: u64, wsegs: &[Segment], rsegs: &[Segment]) {
        let mut data = Vec::new();
        for (k, s) in wsegs.iter().enumerate() {
            let b: Vec<u8> = (0..s.length)
                .map(|i| (i as u8).wrapping_mul(31).wrapping_add(tag as u8 ^ k as u8))
                .collect();
            self.child
                .xen
                .write_guest(s.frame, s.offset.into(), &b)
                .unwrap();
            data.extend_from_slice(&b);
        }
        let sectors = data.len() as u64 / 512;
        let op = BlockOp::Write {
            sector,
            sectors,
            fua: false,
        };
        self.submit(tag, op, wsegs);
        self.settle();
        let c = self.take(tag);
        assert_eq!(
            (c.status, c.transferred),
            (BlockStatus::Ok, data.len() as u64)
        );
        let at = sector as usize * 512;
        assert_eq!(
            &self.backend.be.disk()[at..at + data.len()],
            &data[..],
            "the backend's disk after the write"
        );
        self.submit(tag + 1, BlockOp::Read { sector, sectors }, rsegs);
        self.settle();
        assert_eq!(self.take(tag + 1).status, BlockStatus::Ok);
        let mut back = Vec::new();
        for s in rsegs {
            let mut b = vec![0; s.length.into()];
            self.child
                .xen
                .read_guest(s.frame, s.offset.into(), &mut b)
                .unwrap();
            back.extend_from_slice(&b);
        }
        assert_eq!(back, data, "the data read back through the table");
    }

    /// The backend closes (after unmapping, as blkback does), the child releases, stops
    /// watching and drops its interface: the bus's checks run.
    fn finish(mut self) {
        let dom0 = self.bus.xen.dom0();
        // blkback disconnects (unmapping the ring and persistent grants), then says Closing:
        // the frontend quiesces, releases and goes Closed.
        self.backend.be.restart();
        self.backend.connected = false;
        set_backend_state(&dom0, VBD, XenbusState::Closing);
        self.settle();
        assert_eq!(frontend_state(&dom0, VBD), XenbusState::Closed);
        assert_eq!(self.child.port, None);
        assert_eq!(self.bus.grants_held(), 0, "every grant ended");
        assert_eq!(self.bus.deferred(), 0, "nothing was still mapped");
        let client = self.client.take().unwrap();
        client.unwatch(self.watch.take().unwrap()).unwrap();
        assert_eq!(self.bus.releases.load(Ordering::SeqCst), 0);
        drop(client);
        assert_eq!(self.iface.references(), 0, "references balanced");
        assert_eq!(self.iface.violations(), 0);
        self.bus.assert_clean();
    }
}

#[test]
fn block_core_negotiates_and_moves_data_through_the_table() {
    let handlers = Handlers::default();
    let features = BlkFeatures {
        max_ring_page_order: 1,
        max_indirect_segments: 32,
        persistent: false,
        ..BlkFeatures::default()
    };
    let cfg = FrontendConfig {
        max_ring_page_order: 1,
        max_queues: 1,
        max_indirect_segments: 32,
        persistent: true,
        trust_backend: true,
    };
    let mut rig = Rig::new(&handlers, features, cfg);
    assert_eq!(
        rig.client().frontend_path().unwrap().as_str(),
        format!("device/vbd/{VBD}")
    );
    assert_eq!(
        rig.client().backend_path().unwrap().as_str(),
        backend_dir(VBD)
    );
    rig.start();
    rig.settle();

    // Negotiated through the table from the backend's nodes: two ring pages, indirect
    // segments, no persistent grants (the backend has none); the layout probe went through
    // the event channel's DPC.
    let dom0 = rig.bus.xen.dom0();
    assert_eq!(frontend_state(&dom0, VBD), XenbusState::Connected);
    assert_eq!(rig.child.engine.state(), EngineState::Running);
    let params = rig.child.engine.params().unwrap();
    assert_eq!(params.ring_page_order, 1);
    assert_eq!(params.indirect_segments, 32);
    assert!(!params.persistent);
    assert!(rig
        .child
        .log
        .iter()
        .any(|e| matches!(e, LogEvent::LayoutSelected(_))));
    let port = rig.child.port.unwrap();
    assert!(rig.bus.event_calls(port) > 0);

    // Single-page, multi-page and indirect I/O, data checked both ways.
    let w = rig.pages(0, 1);
    let r = rig.pages(1, 1);
    rig.write_read(10, 8, &w, &r);
    let w = rig.pages(2, 8);
    let r = rig.pages(10, 8);
    rig.write_read(20, 1000, &w, &r);
    let w = rig.pages(20, 20);
    let r = rig.pages(40, 20);
    rig.write_read(30, 4000, &w, &r);
    assert!(rig.child.engine.counters().indirect_requests > 0);
    assert!(rig.bus.grants_held() >= 2, "the ring's grants are held");
    assert_eq!(rig.child.engine.in_flight(), 0);

    rig.finish();
}

#[test]
fn single_page_ring_with_persistent_grants_and_no_indirect() {
    let handlers = Handlers::default();
    let mut rig = Rig::new(
        &handlers,
        BlkFeatures {
            persistent: true,
            ..BlkFeatures::default()
        },
        FrontendConfig {
            max_ring_page_order: 0,
            max_queues: 1,
            max_indirect_segments: 0,
            persistent: true,
            trust_backend: true,
        },
    );
    rig.start();
    rig.settle();
    assert_eq!(rig.child.engine.state(), EngineState::Running);
    let params = rig.child.engine.params().unwrap();
    assert_eq!((params.ring_page_order, params.indirect_segments), (0, 0));
    assert!(params.persistent);
    let w = rig.pages(0, 11);
    let r = rig.pages(11, 11);
    rig.write_read(1, 64, &w, &r);
    let w = rig.pages(30, 3);
    let r = rig.pages(33, 3);
    rig.write_read(3, 200, &w, &r);
    assert_eq!(rig.child.engine.counters().indirect_requests, 0);
    assert!(rig.child.engine.counters().persistent_hits > 0);
    assert!(rig.backend.be.persistent_mappings() > 0);
    rig.finish();
}

#[test]
fn suspend_handlers_hear_every_phase_at_its_irql_until_unregistered() {
    let handlers = Handlers::default();
    let rig = Rig::new(&handlers, BlkFeatures::default(), FrontendConfig::default());
    let handle = rig.client().register_suspend().unwrap();
    for phase in [
        SuspendPhase::Suspending,
        SuspendPhase::ResumedEarly,
        SuspendPhase::Resumed,
        SuspendPhase::Cancelled,
    ] {
        rig.bus.suspend_phase(phase);
    }
    assert_eq!(
        *handlers.phases.lock().unwrap(),
        vec![
            (SuspendPhase::Suspending, Irql::PASSIVE),
            (SuspendPhase::ResumedEarly, Irql::HIGH),
            (SuspendPhase::Resumed, Irql::PASSIVE),
            (SuspendPhase::Cancelled, Irql::PASSIVE),
        ]
    );
    rig.client().unregister_suspend(handle).unwrap();
    rig.bus.suspend_phase(SuspendPhase::Suspending);
    assert_eq!(handlers.phases.lock().unwrap().len(), 4);
    assert_eq!(
        rig.client().unregister_suspend(handle),
        Err(xenpci_interface::BusError::NotOwned)
    );
    // A registration left behind is revoked by the last dereference.
    rig.client().register_suspend().unwrap();
    let Rig {
        bus, iface, client, ..
    } = rig;
    drop(client);
    assert_eq!(iface.references(), 0);
    rig_clean(&bus);
    bus.suspend_phase(SuspendPhase::Suspending);
    assert_eq!(handlers.phases.lock().unwrap().len(), 4);
}

fn rig_clean(bus: &SimBus) {
    bus.assert_clean();
}

#[test]
fn a_backend_restart_mid_io_reconnects_through_the_table_and_loses_nothing() {
    let handlers = Handlers::default();
    let mut rig = Rig::new(
        &handlers,
        BlkFeatures {
            max_ring_page_order: 1,
            ..BlkFeatures::default()
        },
        FrontendConfig::default(),
    );
    rig.start();
    rig.settle();
    assert_eq!(rig.child.engine.state(), EngineState::Running);

    // A write goes out; before the backend serves it, the backend restarts (unmapping
    // everything, closing its end) and waits for the frontend again.
    let segs = rig.pages(0, 4);
    let mut data = Vec::new();
    for (k, s) in segs.iter().enumerate() {
        let b = vec![0xa0 ^ k as u8; 4096];
        rig.child.xen.write_guest(s.frame, 0, &b).unwrap();
        data.extend_from_slice(&b);
    }
    rig.submit(
        77,
        BlockOp::Write {
            sector: 512,
            sectors: 32,
            fua: false,
        },
        &segs,
    );
    assert_eq!(rig.child.engine.in_flight(), 1);
    rig.backend.be.restart();
    rig.backend.connected = false;
    let dom0 = rig.bus.xen.dom0();
    set_backend_state(&dom0, VBD, XenbusState::InitWait);
    rig.settle();

    // The handshake reconnected through the table: a new port, the old one closed, the ring
    // granted again, the write issued again and completed once, on the disk.
    assert_eq!(frontend_state(&dom0, VBD), XenbusState::Connected);
    assert_eq!(rig.child.engine.state(), EngineState::Running);
    let port = rig.child.port.unwrap();
    assert_eq!(
        rig.bus.closes.load(Ordering::SeqCst),
        1,
        "the old port closed"
    );
    assert_eq!(rig.bus.registrations(), (1, 1, 0), "one port, one watch");
    assert!(rig.bus.event_calls(port) > 0);
    let c = rig.take(77);
    assert_eq!(
        (c.status, c.transferred),
        (BlockStatus::Ok, data.len() as u64)
    );
    assert!(rig.child.done.is_empty(), "completed once");
    assert_eq!(
        &rig.backend.be.disk()[512 * 512..512 * 512 + data.len()],
        &data[..]
    );
    assert!(rig.child.engine.counters().resubmitted >= 1);
    assert_eq!(
        rig.bus.deferred(),
        0,
        "the backend had unmapped before the revocations"
    );

    let w = rig.pages(8, 2);
    let r = rig.pages(10, 2);
    rig.write_read(80, 2048, &w, &r);
    rig.finish();
}

#[test]
fn a_resume_in_a_new_domain_reconnects_through_the_table_and_loses_nothing() {
    let handlers = Handlers::default();
    let mut rig = Rig::new(&handlers, BlkFeatures::default(), FrontendConfig::default());
    let suspend = rig.client().register_suspend().unwrap();
    rig.start();
    rig.settle();
    assert_eq!(rig.child.engine.state(), EngineState::Running);

    // A cancelled suspend: the child hears Suspending then Cancelled and carries on.
    assert_eq!(rig.bus.suspend(false), SuspendOutcome::Cancelled);
    assert_eq!(
        rig.take_phases(),
        vec![
            (SuspendPhase::Suspending, Irql::PASSIVE),
            (SuspendPhase::Cancelled, Irql::PASSIVE)
        ]
    );
    let w = rig.pages(0, 1);
    let r = rig.pages(1, 1);
    rig.write_read(1, 16, &w, &r);

    // A write in flight when the domain migrates: the old host's backend is gone, the domain
    // resumes in a new one.
    let segs = rig.pages(4, 2);
    let data = vec![0x5a; 8192];
    for s in &segs {
        rig.child
            .xen
            .write_guest(s.frame, 0, &data[..4096])
            .unwrap();
    }
    rig.submit(
        50,
        BlockOp::Write {
            sector: 300,
            sectors: 16,
            fua: false,
        },
        &segs,
    );
    rig.backend.be.restart();
    rig.backend.connected = false;
    assert_eq!(rig.bus.suspend(true), SuspendOutcome::Resumed);
    let phases = rig.take_phases();
    assert_eq!(
        phases,
        vec![
            (SuspendPhase::Suspending, Irql::PASSIVE),
            (SuspendPhase::ResumedEarly, Irql::HIGH),
            (SuspendPhase::Resumed, Irql::PASSIVE)
        ]
    );
    rig.resumed();
    let dom0 = rig.bus.xen.dom0();
    assert_eq!(frontend_state(&dom0, VBD), XenbusState::Initialising);

    // The new host's blkback waits; the child reconnects through the table and the write
    // completes once, on the disk.
    set_backend_state(&dom0, VBD, XenbusState::InitWait);
    rig.settle();
    assert_eq!(frontend_state(&dom0, VBD), XenbusState::Connected);
    assert_eq!(rig.child.engine.state(), EngineState::Running);
    let c = rig.take(50);
    assert_eq!((c.status, c.transferred), (BlockStatus::Ok, 8192));
    assert!(rig.child.done.is_empty());
    assert_eq!(
        &rig.backend.be.disk()[300 * 512..300 * 512 + 8192],
        &data[..]
    );
    let w = rig.pages(8, 3);
    let r = rig.pages(11, 3);
    rig.write_read(60, 900, &w, &r);
    rig.client().unregister_suspend(suspend).unwrap();
    rig.finish();
}
