//! An in-process model of Xen (hypercalls, grant tables, event channels, xenstored) for tests.
//!
//! [`Xen`] is one simulated host: the guest under test (domain [`Config::guest_domid`]), its
//! memory, grant table, event channels and xenstore, and any number of simulated backend
//! domains ([`Backend`], dom0 by default). All state sits behind one mutex, so a backend driven
//! from another thread and the guest code under test see the same model, and every trait method
//! the cores call is one atomic step.
//!
//! The model implements the core crates' platform traits at the ABI level:
//!
//! | trait (xenpci-core) | implementation |
//! |---|---|
//! | `grant_table::GrantEntries` | [`SimGrantEntries`]: v1 entries in grant frames in guest memory |
//! | `evtchn::EventChannelOps` | [`SimEvtchnOps`]: the `EVTCHNOP_*` semantics of Xen |
//! | `evtchn::SharedInfoEvents` | [`SimSharedInfo`]: the 2-level bitmaps in the shared-info page |
//! | `evtchn::FifoShared` | [`SimFifo`]: the FIFO event array and control blocks |
//! | `xenstore::Transport` + `Wait` | [`StoreStream`] (byte stream) and [`SimRingTransport`] (shared page) |
//! | `hypervisor::Hypervisor` + `PortIo` | [`SimHypervisor`]: CPUID, the hypercall MSR and page, hypercalls decoded from their argument bytes, the unplug ports, the frame window |
//! | `xenstore::StorePage` | [`StoreRingPage`]: the guest's `xenstore_domain_interface`, served by the model's xenstored |
//!
//! Fault injection: [`EventFaults`] (drop, delay events), [`StoreFault`] and the store's fault
//! switches (dropped or delayed watch events, `EAGAIN` storms, malformed replies, wrong request
//! ids, a vanished daemon), and backends that keep grants mapped or vanish ([`Backend::vanish`]).
//!
//! Device backends: [`blkback`] serves a memory disk over a blkif ring through the grant table,
//! with switchable features, an x86_32-only mode and response faults; [`netback`] serves a
//! network frontend's transmit and receive rings (rx-copy), with switchable features, hostile
//! responses, and a bridge between two frontends; [`scsiback`] serves emulated SCSI devices (a
//! disk, a tape drive, a DVD-R writer) over a vscsiif ring, with scsiback's xenstore handshake,
//! LUN hotplug, task management and response faults.
#![forbid(unsafe_code)]

mod backend;
pub mod blkback;
mod evtchn;
mod grant;
mod hypervisor;
pub mod memory;
pub mod netback;
pub mod scsiback;
pub mod xenstore;

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use xen_abi::types::DomId;

pub use backend::Backend;
pub use evtchn::{EventFaults, SimEvtchnOps, SimFifo, SimSharedInfo};
pub use grant::{grant_links, GntError, MappedGrant, SimGrantEntries};
pub use hypervisor::{HvConfig, HvState, SimHypervisor, SuspendOutcome, UnplugMode, Vendor};
pub use memory::{GuestMemory, MemError, PAGE_SIZE};
pub use xenstore::{
    HostLock, HostWaiter, Quota, SimRingTransport, StoreEvents, StoreFault, StoreRingPage,
    StoreStream, DEFAULT_WAIT_TIMEOUT,
};

/// How the simulated host is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// The domain id of the guest under test.
    pub guest_domid: DomId,
    /// The guest's vCPUs (at most 32: the legacy `vcpu_info` slots of the shared-info page).
    pub vcpus: u32,
    /// Whether Xen offers the FIFO event ABI (`EVTCHNOP_init_control` answers `ENOSYS` if not).
    pub fifo: bool,
    /// The highest event-channel port a domain may allocate (xl's `max_event_channels` - 1).
    pub max_evtchn_port: u32,
    /// The most grant frames the guest's table may have.
    pub max_grant_frames: u32,
    /// Grant frames set up at start.
    pub grant_frames: u32,
    /// Xenstore quotas.
    pub quota: Quota,
    /// The hypervisor level (CPUID, features, platform device).
    pub hv: HvConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            guest_domid: 1,
            vcpus: 1,
            fifo: true,
            max_evtchn_port: 1023,
            max_grant_frames: 64,
            grant_frames: 1,
            quota: Quota::default(),
            hv: HvConfig::default(),
        }
    }
}

/// The whole model.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) config: Config,
    pub(crate) mem: GuestMemory,
    pub(crate) grants: grant::GrantModel,
    pub(crate) evtchn: evtchn::EvtchnModel,
    pub(crate) store: xenstore::Store,
    pub(crate) hv: HvState,
}

#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

/// A handle on the simulated host; cheap to clone, shareable between threads.
#[derive(Clone, Debug)]
pub struct Xen {
    pub(crate) shared: Arc<Shared>,
}

impl Default for Xen {
    fn default() -> Self {
        Xen::new(Config::default())
    }
}

impl Xen {
    /// A host with the guest set up as `config` says: its shared-info page and grant frames
    /// populated, dom0 present, and a xenstore holding `/local/domain/<guest>` owned by the guest.
    pub fn new(config: Config) -> Self {
        assert!(
            (1..=32).contains(&config.vcpus),
            "the model supports 1 to 32 vCPUs"
        );
        let mut mem = GuestMemory::new();
        let shared_info_gfn = mem.alloc();
        let mut grants = grant::GrantModel::new(config.max_grant_frames);
        grants
            .setup(&mut mem, config.grant_frames)
            .expect("initial grant frames within the maximum");
        let evtchn = evtchn::EvtchnModel::new(&config, shared_info_gfn);
        let store = xenstore::Store::new(&config);
        Xen {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    config,
                    mem,
                    grants,
                    evtchn,
                    store,
                    hv: HvState {
                        grant_version: 1,
                        ..HvState::default()
                    },
                }),
                changed: Condvar::new(),
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Wakes every thread waiting for the model to change.
    pub(crate) fn notify(&self) {
        self.shared.changed.notify_all();
    }

    /// Runs `f` on the state, then wakes waiters.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let r = f(&mut self.lock());
        self.notify();
        r
    }

    /// Waits until `ready` holds or `timeout` passes; returns whether it held.
    pub(crate) fn wait_until(
        &self,
        timeout: Duration,
        mut ready: impl FnMut(&mut State) -> bool,
    ) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut guard = self.lock();
        loop {
            if ready(&mut guard) {
                return true;
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return false;
            }
            guard = self
                .shared
                .changed
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// The configuration.
    pub fn config(&self) -> Config {
        self.lock().config
    }

    /// The guest's domain id.
    pub fn guest_domid(&self) -> DomId {
        self.lock().config.guest_domid
    }

    /// Runs `f` with the guest's memory (to inspect or prepare pages).
    pub fn with_memory<R>(&self, f: impl FnOnce(&mut GuestMemory) -> R) -> R {
        self.with(|s| f(&mut s.mem))
    }

    /// Populates a fresh zeroed guest frame and returns its number.
    pub fn alloc_page(&self) -> u64 {
        self.with(|s| s.mem.alloc())
    }

    /// Copies bytes out of a guest page.
    pub fn read_guest(&self, gfn: u64, offset: usize, out: &mut [u8]) -> Result<(), MemError> {
        self.lock().mem.read(gfn, offset, out)
    }

    /// Copies bytes into a guest page.
    pub fn write_guest(&self, gfn: u64, offset: usize, data: &[u8]) -> Result<(), MemError> {
        self.with(|s| s.mem.write(gfn, offset, data))
    }

    /// The frame holding the guest's shared-info page.
    pub fn shared_info_gfn(&self) -> u64 {
        self.lock().evtchn.shared_info_gfn
    }

    /// A simulated backend domain (created if it does not exist yet; dom0 always does).
    pub fn backend(&self, domid: DomId) -> Backend {
        self.with(|s| s.evtchn.add_domain(domid));
        Backend::new(self.clone(), domid)
    }

    /// dom0.
    pub fn dom0(&self) -> Backend {
        self.backend(0)
    }

    /// The guest's grant entries, for `xenpci_core::grant_table::GrantTable`.
    pub fn grant_entries(&self) -> SimGrantEntries {
        SimGrantEntries::new(self.clone())
    }

    /// Sets the number of grant frames (`GNTTABOP_setup_table` / mapping more frames); returns
    /// the number of entries.
    pub fn set_grant_frames(&self, frames: u32) -> Result<u32, GntError> {
        self.with(|s| s.grants.setup(&mut s.mem, frames))
    }

    /// The frames of the guest's grant table.
    pub fn grant_frames(&self) -> Vec<u64> {
        self.lock().grants.frames().to_vec()
    }

    /// The guest's event-channel hypercalls, for `xenpci_core::evtchn::EventChannels`.
    pub fn evtchn_ops(&self) -> SimEvtchnOps {
        let domid = self.guest_domid();
        SimEvtchnOps::new(self.clone(), domid)
    }

    /// The guest's shared-info event words.
    pub fn shared_info(&self) -> SimSharedInfo {
        SimSharedInfo::new(self.clone())
    }

    /// The guest's FIFO event array and control blocks (the shell's side: it provides pages).
    pub fn fifo(&self) -> SimFifo {
        SimFifo::new(self.clone())
    }

    /// Runs `f` with the event fault switches.
    pub fn event_faults<R>(&self, f: impl FnOnce(&mut EventFaults) -> R) -> R {
        self.with(|s| f(&mut s.evtchn.faults))
    }

    /// Delivers the guest-bound events held back by [`EventFaults::delay`]; returns how many.
    pub fn release_delayed_events(&self) -> usize {
        self.with(evtchn::release_delayed)
    }

    /// Whether `evtchn_upcall_pending` is set for the guest's `vcpu`.
    pub fn upcall_pending(&self, vcpu: u32) -> bool {
        let s = self.lock();
        evtchn::upcall_pending(&s, vcpu)
    }

    /// Upcalls raised for `vcpu` so far (transitions of `evtchn_upcall_pending` from 0 to 1).
    pub fn upcalls(&self, vcpu: u32) -> u64 {
        self.lock()
            .evtchn
            .upcalls
            .get(vcpu as usize)
            .copied()
            .unwrap_or(0)
    }

    /// Upcalls raised for `vcpu` that the installed upcall does not deliver (the GSI/INTx
    /// callback interrupts vCPU 0 only): events bound to that vCPU that the guest never sees.
    pub fn stranded_upcalls(&self, vcpu: u32) -> u64 {
        self.lock()
            .evtchn
            .stranded
            .get(vcpu as usize)
            .copied()
            .unwrap_or(0)
    }

    /// Raises virtual IRQ `virq` on the guest's `vcpu`; false if nothing is bound to it.
    pub fn raise_virq(&self, virq: u32, vcpu: u32) -> bool {
        self.with(|s| evtchn::raise_virq(s, virq, vcpu))
    }

    /// Whether the guest switched to the FIFO ABI (`EVTCHNOP_init_control` succeeded).
    pub fn guest_uses_fifo(&self) -> bool {
        evtchn::guest_has_fifo(&self.lock())
    }

    /// Makes `EVTCHNOP_init_control` answer `ENOSYS` (a 2-level-only Xen) or not.
    pub fn set_fifo_available(&self, available: bool) {
        self.with(|s| s.config.fifo = available);
    }
}

#[cfg(test)]
mod tests;
