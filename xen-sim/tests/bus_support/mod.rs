//! Shared pieces of the bus tests: the bus type over the model, a toolstack adding a vbd, a
//! trivial block frontend driver, a simulated backend, and an event loop routing the bus's
//! events to the child.
#![allow(dead_code)]

use xen_abi::types::EvtchnPort;
use xen_abi::types::GrantRef;
use xen_abi::xenbus::XenbusState;
use xen_sim::{
    Backend, Config, HvConfig, MappedGrant, SimEvtchnOps, SimFifo, SimGrantEntries, SimHypervisor,
    SimRingTransport, SimSharedInfo, Xen,
};
use xenpci_core::bus::{Bus, BusConfig, BusEvent, ChildRunner, UnplugFlags, UnplugPlan};
use xenpci_core::control::ControlRequest;
use xenpci_core::evtchn::{EventChannels, HandlerId};
use xenpci_core::grant_table::{GrantLink, GrantTable, Revocation};
use xenpci_core::hypervisor::hvm::{CallbackVia, UpcallResources};
use xenpci_core::hypervisor::Policy;
use xenpci_core::xenbus::{read_child, Change, FrontendDriver, FrontendStore, ReadBuffers};
use xenpci_core::xenstore::{XsConnection, XsError};

pub type Chans = EventChannels<SimEvtchnOps, SimSharedInfo, SimFifo, 1024, 4>;
pub type TestBus<'g> =
    Bus<'g, SimHypervisor, SimEvtchnOps, SimSharedInfo, SimFifo, SimGrantEntries, 1024, 4, 16, 8>;

pub const GUEST: u16 = 1;
pub const VBD: u32 = 51712;
pub const STORE_HANDLER: HandlerId = HandlerId(100);
pub const VBD_HANDLER: HandlerId = HandlerId(7);
pub const VECTOR: u8 = 0xf3;

pub fn sim(fifo: bool, hv: HvConfig, vcpus: u32) -> Xen {
    Xen::new(Config {
        fifo,
        vcpus,
        max_grant_frames: 8,
        hv,
        ..Config::default()
    })
}

pub fn config(vcpus: u32, prefer_fifo: bool) -> BusConfig {
    BusConfig {
        policy: Policy::Auto,
        vcpus,
        prefer_fifo,
        upcall: UpcallResources {
            vector: Some(VECTOR),
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

pub fn links() -> Vec<GrantLink> {
    xen_sim::grant_links(8 * 512)
}

/// The event channels in memory of their own (leaked), as the shell sets them up: written
/// unstarted (a `const` value, never a started one passed by value), then started in place.
pub fn event_channels(xen: &Xen, cfg: &BusConfig) -> &'static mut Chans {
    let chans = Box::leak(Box::new_uninit()).write(Chans::unstarted(
        xen.evtchn_ops(),
        xen.shared_info(),
        xen.fifo(),
    ));
    chans
        .start(xenpci_core::evtchn::Config {
            vcpus: cfg.vcpus,
            prefer_fifo: cfg.prefer_fifo,
        })
        .unwrap();
    chans
}

/// A store connection in memory of its own (leaked).
pub fn store_connection() -> &'static mut XsConnection {
    Box::leak(Box::new_uninit()).write(XsConnection::new())
}

/// The whole bring-up over the model, into memory of its own (leaked: the bus is never moved
/// nor returned by value).
pub fn bring_up<'g>(
    xen: &Xen,
    cfg: BusConfig,
    links: &'g [GrantLink],
    ring: &mut SimRingTransport,
) -> &'g mut TestBus<'g> {
    let grants = GrantTable::new(xen.grant_entries(), links, 0).unwrap();
    TestBus::bring_up_in_place(
        Box::leak(Box::new_uninit()),
        xen.hypervisor(),
        cfg,
        grants,
        event_channels(xen, &cfg),
        store_connection(),
        ring,
        &mut (),
    )
    .unwrap()
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

/// A simulated blkback's connection: the frontend's ring mapped, its channel bound.
#[derive(Debug)]
pub struct BackendConn {
    pub ring: MappedGrant,
    pub port: EvtchnPort,
}

/// blkback seeing the frontend Initialised: maps the ring, binds the channel, Connected.
pub fn backend_connect(dom0: &Backend, id: u32) -> BackendConn {
    let front = frontend_dir(id);
    let num = |node: &str| -> u32 {
        let v = dom0.xs_read(&format!("{front}/{node}")).unwrap();
        String::from_utf8(v).unwrap().parse().unwrap()
    };
    let ring = dom0.map_grant(num("ring-ref"), true).unwrap();
    let port = dom0.bind_interdomain(GUEST, num("event-channel")).unwrap();
    dom0.xs_write(&format!("{}/sectors", backend_dir(id)), b"2048")
        .unwrap();
    set_backend_state(dom0, id, XenbusState::Connected);
    BackendConn { ring, port }
}

/// The trivial block frontend's state between calls.
#[derive(Debug, Default)]
pub struct VbdState {
    pub page: u64,
    pub gref: Option<GrantRef>,
    pub port: Option<EvtchnPort>,
    pub connected: bool,
    pub sectors: u64,
    pub publishes: u32,
    pub releases: u32,
    pub deferred: u32,
}

/// A frontend that publishes one ring page and one event channel.
pub struct Vbd<'a, 'g> {
    pub evtchn: &'a mut Chans,
    pub grants: &'a mut GrantTable<'g, SimGrantEntries>,
    pub st: &'a mut VbdState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VbdError {
    NoGrant,
    NoPort,
    Store(XsError),
}

impl FrontendDriver for Vbd<'_, '_> {
    type Error = VbdError;

    fn on_backend_init_wait(
        &mut self,
        store: &mut dyn FrontendStore,
    ) -> Result<XenbusState, VbdError> {
        let gref = match self.st.gref {
            Some(g) => g,
            None => {
                let g = self
                    .grants
                    .grant_access(0, self.st.page, false)
                    .map_err(|_| VbdError::NoGrant)?;
                self.st.gref = Some(g);
                g
            }
        };
        let port = match self.st.port {
            Some(p) => p,
            None => {
                let p = self
                    .evtchn
                    .alloc_unbound(0, VBD_HANDLER)
                    .map_err(|_| VbdError::NoPort)?;
                self.st.port = Some(p);
                p
            }
        };
        store.write_u32("ring-ref", gref).map_err(VbdError::Store)?;
        store
            .write_u32("event-channel", port)
            .map_err(VbdError::Store)?;
        store
            .write("protocol", b"x86_64-abi")
            .map_err(VbdError::Store)?;
        self.st.publishes += 1;
        Ok(XenbusState::Initialised)
    }

    fn on_backend_connected(&mut self, store: &mut dyn FrontendStore) -> Result<(), VbdError> {
        let mut buf = [0; 24];
        let n = store
            .read_backend("sectors", &mut buf)
            .map_err(VbdError::Store)?;
        self.st.sectors = std::str::from_utf8(&buf[..n]).unwrap().parse().unwrap();
        self.st.connected = true;
        Ok(())
    }

    fn on_backend_closing(&mut self) -> Result<(), VbdError> {
        self.st.connected = false;
        Ok(())
    }

    fn on_backend_closed(&mut self) {
        self.st.connected = false;
        self.st.releases += 1;
        if let Some(g) = self.st.gref.take() {
            if self.grants.end_access(g) == Ok(Revocation::Deferred) {
                self.st.deferred += 1;
            }
        }
        if let Some(p) = self.st.port.take() {
            // After a resume the port is already gone; that is fine.
            let _ = self.evtchn.close(p);
        }
    }
}

/// What the event loop saw.
#[derive(Debug, Default)]
pub struct Seen {
    pub controls: Vec<ControlRequest>,
    pub changes: Vec<Change>,
    pub lost: u32,
}

/// The shell's loop: takes the bus's events, creates and starts the child when it appears,
/// routes its watch to its runner. Runs until the store has nothing more.
pub fn run(
    bus: &mut TestBus<'_>,
    ring: &mut SimRingTransport,
    child: &mut Option<ChildRunner>,
    st: &mut VbdState,
    seen: &mut Seen,
) {
    let mut bufs = Box::new(ReadBuffers::new());
    for _ in 0..64 {
        let mut events = Vec::new();
        let more = bus
            .process_store(ring, &mut bufs, |e| events.push(e))
            .unwrap();
        if events.is_empty() && !more {
            return;
        }
        for e in events {
            match e {
                BusEvent::Control(r) => seen.controls.push(r),
                BusEvent::EventsLost => seen.lost += 1,
                BusEvent::Child(c) => {
                    seen.changes.push(c);
                    if let Change::Added { class, id } = c {
                        let info = read_child(&mut *bus.xs, ring, class, id, &mut bufs).unwrap();
                        let mut runner = ChildRunner::new(&info);
                        let mut drv = Vbd {
                            evtchn: &mut *bus.evtchn,
                            grants: &mut bus.grants,
                            st,
                        };
                        runner.start(&mut *bus.xs, ring, &mut drv).unwrap();
                        *child = Some(runner);
                    }
                }
                BusEvent::Watch(w) => {
                    let runner = child.as_mut().expect("a watch without a child");
                    assert_eq!(runner.watch(), Some(w));
                    let mut drv = Vbd {
                        evtchn: &mut *bus.evtchn,
                        grants: &mut bus.grants,
                        st,
                    };
                    runner.on_event(&mut *bus.xs, ring, &mut drv).unwrap();
                }
            }
        }
    }
    panic!("the store never settled");
}
