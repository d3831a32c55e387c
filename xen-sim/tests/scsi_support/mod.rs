//! The rig for the PvSCSI tests: xenscsi-core's engine and xenpci-core's xenbus handshake over
//! the model's grant table, event channels, xenstored and scsiback.
#![allow(dead_code)]

use xen_abi::event_channel::{EvtchnAllocUnbound, EvtchnSend};
use xen_abi::types::EvtchnPort;
use xen_ring::RingMemory;
use xen_sim::scsiback::{Emulated, Scsiback};
use xen_sim::{Backend, SimEvtchnOps, SimGrantEntries, StoreStream, Xen};
use xenpci_core::evtchn::EventChannelOps;
use xenpci_core::grant_table::{GrantLink, GrantTable};
use xenpci_core::xenbus::{execute, read_backend_state, FrontendPaths, Handshake, PathBuf};
use xenpci_core::xenstore::{XsConnection, XsError};
use xenscsi_core::engine::{EngineConfig, Finished, TmError};
use xenscsi_core::frontend::ScsiFrontend;
use xenscsi_core::luns::{Address, DeviceList, LunEvent};
use xenscsi_core::{
    Completion, DataDirection, Events, GuestMemory, Io, LogEvent, ScsiRequest, Segment,
    SubmitError, Tag, TmCompletion, Vscsi,
};

/// Guest memory of the simulated host.
pub struct SimMem(pub Xen);

impl GuestMemory for SimMem {
    fn write(&mut self, frame: u64, offset: usize, data: &[u8]) {
        self.0.write_guest(frame, offset, data).unwrap();
    }
}

/// The guest end of the event channel: a real `EVTCHNOP_send`.
pub struct SimEvents {
    pub ops: SimEvtchnOps,
    pub port: EvtchnPort,
    pub notifies: u32,
    pub log: Vec<LogEvent>,
}

impl Events for SimEvents {
    fn notify(&mut self) {
        self.notifies += 1;
        self.ops.send(&EvtchnSend { port: self.port }).unwrap();
    }
    fn log(&mut self, event: LogEvent) {
        self.log.push(event);
    }
}

/// `<backend>/vscsi-devs`, listed as the guest.
pub struct DevList {
    pub guest: Backend,
    pub path: String,
}

impl DeviceList for DevList {
    fn list(&mut self, visit: &mut dyn FnMut(&[u8])) -> Result<(), XsError> {
        for name in self.guest.xs_directory(&self.path).unwrap_or_default() {
            visit(name.as_bytes());
        }
        Ok(())
    }
}

pub type Engine = Vscsi<8, 128, 8>;
pub const DATA_PAGES: u64 = 160;
pub const TAPE: Address = Address {
    bus: 0,
    target: 2,
    lun: 0,
};
pub const DISK: Address = Address {
    bus: 0,
    target: 1,
    lun: 0,
};

pub struct Rig {
    pub xen: Xen,
    pub grants: GrantTable<'static, SimGrantEntries>,
    pub ev: SimEvents,
    pub mem: SimMem,
    pub eng: Box<Engine>,
    pub be: Scsiback,
    pub hs: Handshake,
    pub xs: XsConnection,
    pub stream: StoreStream,
    pub paths: FrontendPaths,
    pub devices: DevList,
    pub ring: (RingMemory, u64),
    pub lun_events: Vec<LunEvent>,
    pub done: Vec<Completion>,
    pub tm: Vec<TmCompletion>,
    pub now: u64,
    /// The first of `DATA_PAGES` contiguous guest frames for data buffers.
    pub data: u64,
    pub handshake_errors: u32,
    pub free_grants_at_start: u32,
    pub last_fed: Option<xenpci_core::xenbus::Backend>,
}

impl Rig {
    /// A host with a disk (dev-0, `0:0:1:0`) and a tape drive (dev-1, `0:0:2:0`), connected.
    pub fn new(sg_grant: u32) -> Rig {
        let mut r = Self::bare(sg_grant);
        r.be.add_lun(
            0,
            "0:0:1:0",
            Emulated::Disk(xen_sim::scsiback::Disk::new(4096)),
        )
        .unwrap();
        r.be.add_lun(
            1,
            "0:0:2:0",
            Emulated::Tape(xen_sim::scsiback::Tape::new(8 << 20)),
        )
        .unwrap();
        r.start();
        r
    }

    /// A host with the vhost set up but no LUN and nothing started.
    pub fn bare(sg_grant: u32) -> Rig {
        let xen = Xen::default();
        let capacity = xen.grant_entries().capacity();
        let links: &'static [GrantLink] =
            Box::leak(xen_sim::grant_links(capacity as usize).into_boxed_slice());
        let grants = GrantTable::new(xen.grant_entries(), links, capacity).unwrap();
        let free_grants_at_start = grants.free_count();
        let mut arg = EvtchnAllocUnbound {
            dom: xen.guest_domid(),
            remote_dom: 0,
            port: 0,
        };
        xen.evtchn_ops().alloc_unbound(&mut arg).unwrap();
        let indirect: Vec<u64> = (0..8).map(|_| xen.alloc_page()).collect();
        let ring_frame = xen.alloc_page();
        let data = xen.alloc_page();
        for i in 1..DATA_PAGES {
            assert_eq!(xen.alloc_page(), data + i);
        }
        let be = Scsiback::new(xen.dom0(), xen.guest_domid(), 0, sg_grant);
        be.setup().unwrap();
        let paths = FrontendPaths {
            frontend: PathBuf::try_from_str(be.frontend_dir()).unwrap(),
            backend: PathBuf::try_from_str(be.backend_dir()).unwrap(),
        };
        let devices = DevList {
            guest: xen.backend(xen.guest_domid()),
            path: format!("{}/vscsi-devs", be.backend_dir()),
        };
        Rig {
            ev: SimEvents {
                ops: xen.evtchn_ops(),
                port: arg.port,
                notifies: 0,
                log: Vec::new(),
            },
            mem: SimMem(xen.clone()),
            stream: xen.store_stream(),
            eng: Box::new(Vscsi::new(EngineConfig::new(0), &indirect)),
            ring: (RingMemory::allocate(0).unwrap(), ring_frame),
            xen,
            grants,
            be,
            hs: Handshake::default(),
            xs: XsConnection::new(),
            paths,
            devices,
            lun_events: Vec::new(),
            done: Vec::new(),
            tm: Vec::new(),
            now: 0,
            data,
            handshake_errors: 0,
            free_grants_at_start,
            last_fed: None,
        }
    }

    pub fn start(&mut self) {
        let plan = self.hs.start();
        self.run_plan(&plan);
        self.settle();
    }

    fn run_plan(&mut self, plan: &xenpci_core::xenbus::Plan) {
        let port = self.ev.port;
        let mut io = Io::new(&mut self.grants, &mut self.ev, &mut self.mem);
        let lun_events = &mut self.lun_events;
        let done = &mut self.done;
        let tm = &mut self.tm;
        let mut on_lun = |e| lun_events.push(e);
        let mut on_finished = |f| match f {
            Finished::Command(c) => done.push(c),
            Finished::TaskManagement(t) => tm.push(t),
        };
        let mut fe = ScsiFrontend {
            engine: &mut self.eng,
            io: &mut io,
            ring: Some(self.ring.clone()),
            port,
            devices: &mut self.devices,
            lun_events: &mut on_lun,
            finished: &mut on_finished,
        };
        if execute(
            &mut self.hs,
            plan,
            &mut self.xs,
            &mut self.stream,
            &self.paths,
            &mut fe,
        )
        .is_err()
        {
            self.handshake_errors += 1;
        }
    }

    /// Runs scsiback's and the frontend's reactions until neither changes anything.
    pub fn settle(&mut self) {
        for _ in 0..32 {
            self.ring_to_sim();
            let changed = self.be.step().unwrap();
            self.ring_from_sim();
            let state = read_backend_state(&mut self.xs, &mut self.stream, &self.paths).unwrap();
            // As a watch would: each backend state is fed to the handshake once, when it changes.
            if self.last_fed == Some(state) {
                if !changed {
                    return;
                }
                continue;
            }
            self.last_fed = Some(state);
            let plan = self.hs.on_backend(state);
            self.run_plan(&plan);
        }
        panic!("the handshake does not settle");
    }

    pub fn ring_to_sim(&self) {
        let mut page = vec![0; 4096];
        self.ring.0.read_bytes(0, &mut page).unwrap();
        self.xen.write_guest(self.ring.1, 0, &page).unwrap();
    }

    pub fn ring_from_sim(&self) {
        let mut page = vec![0; 4096];
        self.xen.read_guest(self.ring.1, 0, &mut page).unwrap();
        self.ring.0.write_bytes(0, &page).unwrap();
    }

    /// One backend pass over the ring.
    pub fn serve(&mut self) -> usize {
        self.ring_to_sim();
        let n = self.be.serve().unwrap();
        self.ring_from_sim();
        n
    }

    pub fn release(&mut self) -> usize {
        self.ring_to_sim();
        let n = self.be.release_held().unwrap();
        self.ring_from_sim();
        n
    }

    pub fn io(&mut self) -> Io<'_, GrantTable<'static, SimGrantEntries>, SimEvents, SimMem> {
        Io::new(&mut self.grants, &mut self.ev, &mut self.mem)
    }

    fn sink<'a>(
        done: &'a mut Vec<Completion>,
        tm: &'a mut Vec<TmCompletion>,
    ) -> impl FnMut(Finished) + 'a {
        move |f| match f {
            Finished::Command(c) => done.push(c),
            Finished::TaskManagement(t) => tm.push(t),
        }
    }

    pub fn poll(&mut self) -> Result<(), xenscsi_core::engine::EngineError> {
        let mut io = Io::new(&mut self.grants, &mut self.ev, &mut self.mem);
        let mut sink = Self::sink(&mut self.done, &mut self.tm);
        self.eng.poll(self.now, &mut io, &mut sink)
    }

    pub fn tick(&mut self, now: u64) {
        self.now = now;
        let mut io = Io::new(&mut self.grants, &mut self.ev, &mut self.mem);
        let mut sink = Self::sink(&mut self.done, &mut self.tm);
        self.eng.tick(now, &mut io, &mut sink);
    }

    pub fn disconnect(&mut self) {
        let mut io = Io::new(&mut self.grants, &mut self.ev, &mut self.mem);
        let mut sink = Self::sink(&mut self.done, &mut self.tm);
        self.eng.disconnect(&mut io, &mut sink);
    }

    /// Segments covering `len` bytes of the data area from byte `start`, cut at page ends and
    /// additionally every `piece` bytes (so they are byte-granular and unaligned).
    pub fn segments(&self, start: usize, len: usize, piece: usize) -> Vec<Segment> {
        let mut v = Vec::new();
        let mut at = start;
        let end = start + len;
        while at < end {
            let in_page = 4096 - at % 4096;
            let n = in_page.min(piece).min(end - at);
            v.push(Segment {
                frame: self.data + (at / 4096) as u64,
                offset: (at % 4096) as u16,
                length: n as u16,
            });
            at += n;
        }
        v
    }

    pub fn fill(&self, segs: &[Segment], bytes: &[u8]) {
        let mut at = 0;
        for s in segs {
            let n = usize::from(s.length);
            self.xen
                .write_guest(s.frame, s.offset.into(), &bytes[at..at + n])
                .unwrap();
            at += n;
        }
    }

    pub fn gather(&self, segs: &[Segment]) -> Vec<u8> {
        let mut all = Vec::new();
        for s in segs {
            let mut b = vec![0; s.length.into()];
            self.xen
                .read_guest(s.frame, s.offset.into(), &mut b)
                .unwrap();
            all.extend_from_slice(&b);
        }
        all
    }

    pub fn submit(
        &mut self,
        tag: u64,
        address: Address,
        cdb: &[u8],
        direction: DataDirection,
        segs: &[Segment],
        timeout_ms: u64,
    ) -> Result<(), SubmitError> {
        let req = ScsiRequest {
            tag: Tag(tag),
            address,
            cdb,
            direction,
            segments: segs,
            timeout_ms,
        };
        let now = self.now;
        let mut io = Io::new(&mut self.grants, &mut self.ev, &mut self.mem);
        self.eng.submit(&req, now, &mut io)
    }

    pub fn abort(&mut self, tag: u64, victim: u64) -> Result<(), TmError> {
        let now = self.now;
        let mut io = Io::new(&mut self.grants, &mut self.ev, &mut self.mem);
        self.eng.abort(Tag(tag), Tag(victim), now, &mut io)
    }

    pub fn reset(&mut self, tag: u64, address: Address) -> Result<(), TmError> {
        let now = self.now;
        let mut io = Io::new(&mut self.grants, &mut self.ev, &mut self.mem);
        self.eng.reset_lun(Tag(tag), address, now, &mut io)
    }

    /// Serves and polls until nothing is in flight.
    pub fn run(&mut self) {
        for _ in 0..64 {
            self.serve();
            self.poll().unwrap();
            if self.eng.in_flight() == 0 {
                return;
            }
        }
        panic!("no progress");
    }

    pub fn take(&mut self, tag: u64) -> Completion {
        let i = self
            .done
            .iter()
            .position(|c| c.tag == Tag(tag))
            .unwrap_or_else(|| panic!("no completion for {tag}"));
        let c = self.done.remove(i);
        assert!(
            !self.done.iter().any(|c| c.tag == Tag(tag)),
            "second completion for {tag}"
        );
        c
    }

    /// Submits a command, runs it to completion and returns it.
    pub fn command(
        &mut self,
        tag: u64,
        address: Address,
        cdb: &[u8],
        direction: DataDirection,
        segs: &[Segment],
    ) -> Completion {
        self.submit(tag, address, cdb, direction, segs, 0).unwrap();
        self.run();
        self.take(tag)
    }
}
