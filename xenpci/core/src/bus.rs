//! The bus as a whole: bringing Xen's interfaces up in order, running the store's watches,
//! resuming after a suspend, and driving one child's handshake.
//!
//! The pieces in the other modules each do one thing; this module composes them the way the
//! Windows bus driver (and the lab, and xen-sim's tests) runs them. Nothing here allocates or
//! blocks except through the store transport's [`Wait`].
//!
//! # Bring-up ([`Bus::bring_up_in_place`], or the three steps it runs)
//! 1. [`start_hypervisor`]: [`Step::Detect`] (CPUID, Viridian first or not, the hypercall
//!    mechanism, `XENVER_get_features`), [`Step::Unplug`] (the emulated-device unplug decided
//!    from the options, see below), [`Step::SharedInfo`] (mapped at a window GFN),
//!    [`Step::VcpuInfo`] (`VCPUOP_register_vcpu_info` for vCPUs beyond the 32 shared-info
//!    slots, at areas from [`BusHooks::vcpu_info_area`]), [`Step::GrantTable`] (query size,
//!    ensure v1), [`Step::StoreRing`] (`HVM_PARAM_STORE_PFN` / `_EVTCHN`).
//! 2. [`Bus::init_in_place`]: the initial grant frames are mapped and the [`GrantTable`] grows over them
//!    ([`Step::GrantTable`]); [`EventChannels`] start (FIFO, falling back to 2-level;
//!    [`Step::EventChannels`]), and only then, with every port masked, the upcall is installed
//!    ([`Step::Upcall`]: per-vCPU vector, else the callback vector, else the platform device's
//!    line); the store's port is attached to [`BusConfig::store_handler`].
//! 3. [`Bus::start_store`]: the transport is pointed at the ring ([`StoreLink::connect`]), the
//!    control features are advertised and `control/shutdown` / `control/sysrq` watched
//!    ([`Step::Control`]), and `device` is watched ([`Step::Devices`]). The first
//!    [`Bus::process_store`] enumerates every child (the hotplug state starts with a full
//!    rescan pending) and reports each as [`BusEvent::Child`].
//!
//! Every failure is a [`BusError`] naming its [`Step`]. The steps may be retried: a store
//! step that failed (a malformed reply, say) can be run again after
//! [`XsConnection::reset`](crate::xenstore::XsConnection::reset).
//!
//! # When to unplug
//! The unplug handshake ([`BusConfig::unplug`], computed by the shell with
//! [`crate::unplug::evaluate`] from the registry and boot options) runs right after detection,
//! in the boot-start bus driver's start, before any hypercall that sets up the PV side and
//! before any child is enumerated. That is before Windows binds its storage and network
//! drivers to the emulated devices (the bus driver sits in an earlier boot load-order group, a
//! bus extender one, than the IDE/SCSI miniports and NDIS drivers), and before a PV frontend
//! can connect to a backend that QEMU still emulates: the two
//! must never drive the same disk. A blacklisted build stops the bring-up
//! ([`UnplugError::Blacklisted`]); a missing protocol is recorded in [`HvLevel::unplug`] and the
//! shell must then not start frontends for devices QEMU still emulates.
//!
//! # Running
//! The shell's upcall handler calls [`EventChannels::scan`] (through [`Bus::evtchn`]); when the
//! store's handler fires it wakes whatever waits in the transport, and from passive level calls
//! [`Bus::process_store`], which takes watch events: control requests come back as
//! [`BusEvent::Control`] (already acknowledged in the store), hotplug as [`BusEvent::Child`],
//! any other watch (a child's backend `state`) as [`BusEvent::Watch`] for the shell to route
//! to that child's [`ChildRunner`], and lost events as [`BusEvent::EventsLost`] (every child
//! should re-read its backend).
//!
//! # Resume
//! [`Bus::resume`] redoes the hypervisor-level parts after a resume in a new domain, in the
//! order of [`crate::suspend::SuspendStep::RESTORE`]: shared info at the same GFN (and the
//! vCPU-info areas), the grant frames at their GFNs, the event channels
//! ([`EventChannels::reinit`], the upcall, the store's port read again from the HVM parameter
//! and attached, the bus's VIRQs bound again), the store ring ([`StoreLink::connect`] and a
//! connection reset) and every watch. [`BusSuspend`] adapts it to
//! [`SuspendPlatform`] so that [`crate::suspend::SuspendSequence`] drives it, with the children's
//! parts supplied through [`SuspendChildren`].
//!
//! # Children
//! [`ChildRunner`] runs one child's handshake with a [`FrontendDriver`]: it watches the
//! backend's `state`, and on each event reads it ([`read_backend_state`]), feeds it to
//! [`Handshake::on_backend`] and [`execute`]s the plan. The block, network and SCSI cores reuse
//! it; they only implement [`FrontendDriver`].
//!
//! # Limits
//! At most [`MAX_GRANT_FRAMES`] grant frames (their GFNs are kept for the resume) and
//! [`MAX_BUS_VIRQS`] VIRQs bound through the bus. vCPUs beyond 32 need
//! [`BusHooks::vcpu_info_area`] (for [`shared_info::register_vcpu_info`]); without it the bring-up
//! fails with [`Cause::NoVcpuInfo`] rather than running vCPUs that can never take an event.

use core::fmt;
use core::mem::MaybeUninit;

use xen_abi::features::Features;
use xen_abi::shared_info::XEN_LEGACY_MAX_VCPUS;
use xen_abi::types::EvtchnPort;

use crate::control::{Control, ControlRequest};
use crate::evtchn::{
    EventChannelOps, EventChannels, EvtchnError, FifoShared, HandlerId, SharedInfoEvents,
    UpcallReach,
};
use crate::grant_table::{GrantEntries, GrantError, GrantTable};
use crate::hypervisor::detect::XenCpuid;
use crate::hypervisor::gnttab::{self, GrantFrames, VersionReport};
use crate::hypervisor::hvm::{self, RingInfo, UpcallMethod, UpcallResources};
use crate::hypervisor::{self as hv, shared_info, HvError, HypercallMechanism, Hypervisor, Policy};
use crate::suspend::SuspendPlatform;
use crate::unplug::{self, UnplugError, UnplugReport};
use crate::xenbus::{
    execute, read_backend_state, Backend, Change, ChildInfo, FrontendDriver, FrontendError,
    FrontendPaths, Handshake, HandshakeError, Hotplug, ReadBuffers,
};
use crate::xenstore::{LimitError, Wait, WatchId, XsConnection, XsError};

pub use xen_abi::unplug::UnplugFlags;

/// The most grant frames the bus maps (64 Ki references); their GFNs are kept for the resume.
pub const MAX_GRANT_FRAMES: usize = 128;

/// The most VIRQs bound through [`Bus::bind_virq`] (bound again after a resume).
pub const MAX_BUS_VIRQS: usize = 8;

/// The most watch events [`Bus::process_store`] takes in one call.
pub const EVENTS_PER_PASS: u32 = 64;

/// A store transport the bus can point at the ring.
pub trait StoreLink: Wait {
    /// Uses the ring page at `ring.pfn` and notifies through `ring.evtchn`. Called at bring-up
    /// and after each resume in a new domain, or to recover a connection the peer broke (same
    /// page; the port may be new): the transport discards the responses not read yet (sets
    /// `rsp_cons` to `rsp_prod`, as Linux does on resume; they answer requests of the old
    /// connection) and takes the page's indices as they are (for
    /// [`RingTransport`](crate::xenstore::RingTransport): `resync` after that store).
    fn connect(&mut self, ring: RingInfo) -> Result<(), XsError>;
}

impl<T: StoreLink + ?Sized> StoreLink for &mut T {
    fn connect(&mut self, ring: RingInfo) -> Result<(), XsError> {
        (**self).connect(ring)
    }
}

/// What the bus tells the shell (or asks it) while bringing Xen's pages up. Every method has a
/// default, so `()` is a valid implementation for platforms that need none of them.
pub trait BusHooks {
    /// The shared-info page is now at `gfn` (map it for the shell's `SharedInfoEvents`).
    fn shared_info_mapped(&mut self, gfn: u64) {
        let _ = gfn;
    }
    /// Grant frame `frame` is now at `gfn` (map it for the shell's `GrantEntries`).
    fn grant_frame_mapped(&mut self, frame: u32, gfn: u64) {
        let _ = (frame, gfn);
    }
    /// Where `vcpu`'s `vcpu_info` lives when it has no slot in the shared-info page (`vcpu` of
    /// 32 and above): `(gfn, byte offset)`, the same area on every call. `None`: there is none.
    fn vcpu_info_area(&mut self, vcpu: u32) -> Option<(u64, u32)> {
        let _ = vcpu;
        None
    }
}

impl BusHooks for () {}

/// The unplug handshake to run at bring-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnplugPlan {
    /// The product number registered with QEMU.
    pub product: u16,
    /// The build number registered with QEMU.
    pub build: u32,
    /// What to unplug ([`crate::unplug::evaluate`]'s `flags`).
    pub flags: UnplugFlags,
}

/// How to bring the bus up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusConfig {
    /// The hypercall mechanism policy.
    pub policy: Policy,
    /// vCPUs (Xen ids `0..vcpus`), at most the `VCPUS` parameter of the event channels.
    pub vcpus: u32,
    /// Try the FIFO event ABI first.
    pub prefer_fifo: bool,
    /// What the shell offers for upcalls.
    pub upcall: UpcallResources,
    /// Grant frames mapped at bring-up (at least 1).
    pub grant_frames: u32,
    /// The most grant frames the bus may map (capped by [`MAX_GRANT_FRAMES`], by Xen's limit
    /// and by the grant table's link storage).
    pub max_grant_frames: u32,
    /// The handler the store's event channel is reported to.
    pub store_handler: HandlerId,
    /// The unplug handshake, or `None` to leave the emulated devices alone.
    pub unplug: Option<UnplugPlan>,
}

/// A stage of the bring-up or of the resume.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// CPUID, the hypercall mechanism, Xen's features.
    Detect,
    /// The emulated-device unplug.
    Unplug,
    /// Mapping the shared-info page.
    SharedInfo,
    /// Placing `vcpu_info` for vCPUs beyond 32.
    VcpuInfo,
    /// Grant-table size, version and frames.
    GrantTable,
    /// The event-channel ABI and the store's port.
    EventChannels,
    /// The upcall route.
    Upcall,
    /// The store ring's parameters and the transport.
    StoreRing,
    /// Control features and watches.
    Control,
    /// The `device` watch and enumeration.
    Devices,
    /// Re-registering the watches after a resume.
    Watches,
    /// Binding a VIRQ.
    Virq,
}

/// What failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// A hypervisor-level operation.
    Hv(HvError),
    /// An event-channel operation.
    Evtchn(EvtchnError),
    /// The store.
    Store(XsError),
    /// The grant table.
    Grant(GrantError),
    /// The unplug handshake (only [`UnplugError::Blacklisted`] stops the bring-up).
    Unplug(UnplugError),
    /// `vcpus` is 0 or beyond what the bus was built for.
    BadVcpuCount {
        /// The count asked for.
        vcpus: u32,
    },
    /// A vCPU beyond the shared-info slots has no `vcpu_info` area.
    NoVcpuInfo {
        /// The vCPU.
        vcpu: u32,
    },
    /// More VIRQs than [`MAX_BUS_VIRQS`].
    TooManyVirqs,
}

/// A failed bring-up or resume step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusError {
    /// The step.
    pub step: Step,
    /// What failed.
    pub cause: Cause,
}

impl fmt::Display for BusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bus step {:?} failed: {:?}", self.step, self.cause)
    }
}

fn fail<E: Into<Cause>>(step: Step) -> impl Fn(E) -> BusError {
    move |e| BusError {
        step,
        cause: e.into(),
    }
}

impl From<HvError> for Cause {
    fn from(e: HvError) -> Self {
        Cause::Hv(e)
    }
}
impl From<EvtchnError> for Cause {
    fn from(e: EvtchnError) -> Self {
        Cause::Evtchn(e)
    }
}
impl From<XsError> for Cause {
    fn from(e: XsError) -> Self {
        Cause::Store(e)
    }
}
impl From<GrantError> for Cause {
    fn from(e: GrantError) -> Self {
        Cause::Grant(e)
    }
}
impl From<UnplugError> for Cause {
    fn from(e: UnplugError) -> Self {
        Cause::Unplug(e)
    }
}

/// What the hypervisor-level bring-up found and set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HvLevel {
    /// Xen's CPUID view.
    pub cpuid: XenCpuid,
    /// How hypercalls are made.
    pub mechanism: HypercallMechanism,
    /// `XENVER_get_features` submap 0.
    pub features: Features,
    /// The unplug outcome (`None`: not asked for).
    pub unplug: Option<Result<UnplugReport, UnplugError>>,
    /// Where the shared-info page is.
    pub shared_info_gfn: u64,
    /// The grant-table version negotiation.
    pub grant_version: VersionReport,
    /// The store ring (the port changes after a resume in a new domain).
    pub store: RingInfo,
}

/// Step 1 of the bring-up: everything up to the store ring's parameters (see the module docs).
/// Returns what was found and the (still empty) set of grant frames.
pub fn start_hypervisor<H, K>(
    hv: &H,
    config: &BusConfig,
    hooks: &mut K,
) -> Result<(HvLevel, GrantFrames), BusError>
where
    H: Hypervisor + ?Sized,
    K: BusHooks + ?Sized,
{
    if config.vcpus == 0 {
        return Err(BusError {
            step: Step::Detect,
            cause: Cause::BadVcpuCount {
                vcpus: config.vcpus,
            },
        });
    }
    let init = hv::init(hv, config.policy).map_err(fail(Step::Detect))?;
    let features = hvm::xen_features(hv).map_err(fail(Step::Detect))?;

    let unplug = match config.unplug {
        None => None,
        Some(plan) => match unplug::unplug(hv, plan.product, plan.build, plan.flags) {
            Err(e @ UnplugError::Blacklisted { .. }) => return Err(fail(Step::Unplug)(e)),
            other => Some(other),
        },
    };

    let shared_info_gfn = shared_info::map(hv).map_err(fail(Step::SharedInfo))?;
    hooks.shared_info_mapped(shared_info_gfn);
    register_vcpu_areas(hv, config.vcpus, hooks)?;

    let frames = GrantFrames::setup(hv, config.max_grant_frames.min(MAX_GRANT_FRAMES as u32))
        .map_err(fail(Step::GrantTable))?;

    let store = hvm::store_ring(hv).map_err(fail(Step::StoreRing))?;
    Ok((
        HvLevel {
            cpuid: init.cpuid,
            mechanism: init.mechanism,
            features,
            unplug,
            shared_info_gfn,
            grant_version: frames.version(),
            store,
        },
        frames,
    ))
}

fn register_vcpu_areas<H, K>(hv: &H, vcpus: u32, hooks: &mut K) -> Result<(), BusError>
where
    H: Hypervisor + ?Sized,
    K: BusHooks + ?Sized,
{
    for vcpu in XEN_LEGACY_MAX_VCPUS as u32..vcpus {
        let (gfn, offset) = hooks.vcpu_info_area(vcpu).ok_or(BusError {
            step: Step::VcpuInfo,
            cause: Cause::NoVcpuInfo { vcpu },
        })?;
        shared_info::register_vcpu_info(hv, vcpu, gfn, offset).map_err(fail(Step::VcpuInfo))?;
    }
    Ok(())
}

/// A VIRQ bound through the bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirqBinding {
    /// The VIRQ.
    pub virq: u32,
    /// Its vCPU.
    pub vcpu: u32,
    /// Its handler.
    pub handler: HandlerId,
    /// The port (a new one after each resume).
    pub port: EvtchnPort,
}

/// What [`Bus::process_store`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusEvent {
    /// A control request, already taken (cleared) in the store.
    Control(ControlRequest),
    /// A child appeared, changed or went away.
    Child(Change),
    /// A watch the bus does not own fired (a child's backend `state`): route it to its owner.
    Watch(WatchId),
    /// Watch events were lost: every child should re-read its backend (hotplug already
    /// rescans).
    EventsLost,
}

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BusStats {
    /// Resumes in a new domain completed.
    pub resumes: u64,
    /// Grant frames mapped.
    pub grant_frames: u32,
    /// Watch events taken.
    pub watch_events: u64,
    /// Times watch events were lost.
    pub events_lost: u64,
}

/// The bus: Xen's interfaces, brought up, with the store's watches.
///
/// The fields the shell and the class cores use directly are public (the event channels for
/// binding ports and scanning, the grant table for granting, the store connection for the
/// children's handshakes); the rest is reached through methods. Parameters: `PORTS` and
/// `VCPUS` of the [`EventChannels`], `N` known children and `P` pending probes of the
/// [`Hotplug`] state.
pub struct Bus<
    'g,
    H,
    O,
    S,
    F,
    E,
    const PORTS: usize,
    const VCPUS: usize,
    const N: usize,
    const P: usize,
> {
    /// The hypervisor interface.
    pub hv: H,
    /// The event channels (in the shell's memory).
    pub evtchn: &'g mut EventChannels<O, S, F, PORTS, VCPUS>,
    /// The grant table.
    pub grants: GrantTable<'g, E>,
    /// The store connection (in the shell's memory).
    pub xs: &'g mut XsConnection,
    /// The control node.
    pub control: Control,
    /// The children known and hotplug work pending.
    pub hotplug: Hotplug<N, P>,
    config: BusConfig,
    level: HvLevel,
    frames: GrantFrames,
    frame_gfns: [u64; MAX_GRANT_FRAMES],
    device_watch: Option<WatchId>,
    virqs: [Option<VirqBinding>; MAX_BUS_VIRQS],
    stats: BusStats,
}

impl<'g, H, O, S, F, E, const PORTS: usize, const VCPUS: usize, const N: usize, const P: usize>
    Bus<'g, H, O, S, F, E, PORTS, VCPUS, N, P>
where
    H: Hypervisor,
    O: EventChannelOps,
    S: SharedInfoEvents,
    F: FifoShared,
    E: GrantEntries,
{
    /// Step 2 of the bring-up: grant frames, upcall, the store's port, with the bus built in
    /// `slot`, memory the shell provides. The large parts live in the shell's memory too and
    /// are lent for the bus's lifetime: the event channels (written there by the shell with
    /// [`EventChannels::unstarted`], or a `static`, then [`EventChannels::start`]ed in place,
    /// every port masked), the store connection (a `static` through [`XsConnection::new`], or
    /// [`XsConnection::clear`] in place), the grant table over the shell's link storage (any
    /// capacity; it grows over the frames mapped here). Nothing large is built on the stack or
    /// returned by value.
    ///
    /// On an error the slot may hold a partly brought-up bus; treat it as uninitialised (the
    /// bus owns nothing that needs dropping: what it set up at the hypervisor is undone by the
    /// shell's failure path).
    #[allow(clippy::too_many_arguments)]
    pub fn init_in_place<'s, K: BusHooks + ?Sized>(
        slot: &'s mut MaybeUninit<Self>,
        hv: H,
        config: BusConfig,
        level: HvLevel,
        frames: GrantFrames,
        grants: GrantTable<'g, E>,
        evtchn: &'g mut EventChannels<O, S, F, PORTS, VCPUS>,
        xs: &'g mut XsConnection,
        hooks: &mut K,
    ) -> Result<&'s mut Self, BusError> {
        if config.vcpus == 0 || config.vcpus as usize > VCPUS {
            return Err(BusError {
                step: Step::EventChannels,
                cause: Cause::BadVcpuCount {
                    vcpus: config.vcpus,
                },
            });
        }
        let bus = slot.write(Bus {
            hv,
            evtchn,
            grants,
            xs,
            control: Control::new(),
            hotplug: Hotplug::new(),
            config,
            level,
            frames,
            frame_gfns: [0; MAX_GRANT_FRAMES],
            device_watch: None,
            virqs: [None; MAX_BUS_VIRQS],
            stats: BusStats::default(),
        });
        bus.grow_grants(config.grant_frames.max(1), hooks)?;
        bus.install_upcall()?;
        bus.evtchn
            .attach(level.store.evtchn, config.store_handler, 0)
            .map_err(fail(Step::EventChannels))?;
        Ok(bus)
    }

    /// The whole bring-up into `slot`: [`start_hypervisor`],
    /// [`init_in_place`](Self::init_in_place), [`start_store`](Self::start_store). Enumeration
    /// follows with the first [`process_store`](Self::process_store).
    #[allow(clippy::too_many_arguments)]
    pub fn bring_up_in_place<'s, T: StoreLink + ?Sized, K: BusHooks + ?Sized>(
        slot: &'s mut MaybeUninit<Self>,
        hv: H,
        config: BusConfig,
        grants: GrantTable<'g, E>,
        evtchn: &'g mut EventChannels<O, S, F, PORTS, VCPUS>,
        xs: &'g mut XsConnection,
        store: &mut T,
        hooks: &mut K,
    ) -> Result<&'s mut Self, BusError> {
        let (level, frames) = start_hypervisor(&hv, &config, hooks)?;
        let bus = Self::init_in_place(slot, hv, config, level, frames, grants, evtchn, xs, hooks)?;
        bus.start_store(store)?;
        Ok(bus)
    }

    fn install_upcall(&mut self) -> Result<(), BusError> {
        let method = self.upcall_method();
        hvm::setup_upcall(&self.hv, method, 0..self.config.vcpus).map_err(fail(Step::Upcall))?;
        self.evtchn
            .set_upcall_reach(UpcallReach::of(method))
            .map_err(fail(Step::Upcall))
    }

    /// The upcall route chosen from Xen's features and the shell's resources.
    pub fn upcall_method(&self) -> UpcallMethod {
        hvm::choose_upcall(
            self.level.cpuid.hvm_features,
            self.level.features,
            self.config.upcall,
        )
    }

    /// Step 3 of the bring-up: the store transport, the control node, the `device` watch.
    /// Safe to run again after a failure (watches already registered are kept).
    pub fn start_store<T: StoreLink + ?Sized>(&mut self, t: &mut T) -> Result<(), BusError> {
        t.connect(self.level.store).map_err(fail(Step::StoreRing))?;
        if self.xs.broken().is_some() {
            self.xs.reset();
        }
        if self.xs.rewatches_needed() {
            self.xs.reregister_watches(t).map_err(fail(Step::Watches))?;
        }
        self.control
            .advertise(&mut *self.xs, t)
            .map_err(fail(Step::Control))?;
        self.control
            .watch(&mut *self.xs, t)
            .map_err(fail(Step::Control))?;
        if self.device_watch.is_none() {
            self.device_watch = Some(self.xs.watch(t, "device").map_err(fail(Step::Devices))?);
        }
        Ok(())
    }

    /// What the hypervisor-level bring-up found.
    pub fn level(&self) -> &HvLevel {
        &self.level
    }

    /// The configuration.
    pub fn config(&self) -> &BusConfig {
        &self.config
    }

    /// The grant frames mapped so far.
    pub fn grant_frames(&self) -> &GrantFrames {
        &self.frames
    }

    /// The counters.
    pub fn stats(&self) -> BusStats {
        self.stats
    }

    /// The watch on `device`.
    pub fn device_watch(&self) -> Option<WatchId> {
        self.device_watch
    }

    /// The VIRQs bound through the bus.
    pub fn virqs(&self) -> impl Iterator<Item = &VirqBinding> {
        self.virqs.iter().flatten()
    }

    /// Maps grant frames until `frames` are mapped (when the table runs out of references)
    /// and grows the table over them.
    pub fn grow_grants<K: BusHooks + ?Sized>(
        &mut self,
        frames: u32,
        hooks: &mut K,
    ) -> Result<u32, BusError> {
        let gfns = &mut self.frame_gfns;
        let mapped = self
            .frames
            .grow(&self.hv, &mut self.grants, frames, |frame, gfn| {
                if let Some(slot) = gfns.get_mut(frame as usize) {
                    *slot = gfn;
                }
                hooks.grant_frame_mapped(frame, gfn);
            });
        self.stats.grant_frames = self.frames.mapped();
        mapped.map_err(fail(Step::GrantTable))
    }

    /// Binds `virq` of `vcpu` to a new port handled by `handler`; it is bound again after a
    /// resume (with a new port: see [`virqs`](Self::virqs)).
    pub fn bind_virq(
        &mut self,
        virq: u32,
        vcpu: u32,
        handler: HandlerId,
    ) -> Result<EvtchnPort, BusError> {
        let slot = self
            .virqs
            .iter()
            .position(Option::is_none)
            .ok_or(BusError {
                step: Step::Virq,
                cause: Cause::TooManyVirqs,
            })?;
        let port = self
            .evtchn
            .bind_virq(virq, vcpu, handler)
            .map_err(fail(Step::Virq))?;
        self.virqs[slot] = Some(VirqBinding {
            virq,
            vcpu,
            handler,
            port,
        });
        Ok(port)
    }

    /// Takes the store's watch events (at most [`EVENTS_PER_PASS`]) and runs the hotplug work,
    /// reporting to `sink` (see [`BusEvent`]). Blocks only through the transport, for the
    /// control node's transactions and the hotplug reads. Returns whether events are left
    /// (call again).
    pub fn process_store<T: Wait + ?Sized>(
        &mut self,
        t: &mut T,
        bufs: &mut ReadBuffers,
        mut sink: impl FnMut(BusEvent),
    ) -> Result<bool, XsError> {
        self.xs.pump(t)?;
        if self.xs.take_watch_overflow() {
            self.stats.events_lost += 1;
            self.hotplug.note_overflow();
            sink(BusEvent::EventsLost);
        }
        let mut taken = 0;
        while taken < EVENTS_PER_PASS {
            let watch = match self.xs.pop_watch_event(&mut bufs.value)? {
                None => break,
                Some(ev) => {
                    if Some(ev.watch) == self.device_watch {
                        self.hotplug.note_event(ev.path);
                        None
                    } else {
                        Some(ev.watch)
                    }
                }
            };
            taken += 1;
            self.stats.watch_events += 1;
            let Some(watch) = watch else { continue };
            if Some(watch) == self.control.shutdown_watch()
                || Some(watch) == self.control.sysrq_watch()
            {
                if let Some(request) = self.control.on_watch_event(&mut *self.xs, t, watch)? {
                    sink(BusEvent::Control(request));
                }
            } else {
                sink(BusEvent::Watch(watch));
            }
        }
        self.hotplug
            .process(&mut *self.xs, t, bufs, |c| sink(BusEvent::Child(c)))?;
        Ok(self.xs.has_watch_event())
    }

    /// Issues `SCHEDOP_shutdown(SHUTDOWN_suspend)`: 1 cancelled, 0 resumed in a new domain,
    /// negative an error (the raw value [`SuspendPlatform::suspend_hypercall`] wants).
    pub fn suspend_hypercall(&self) -> i64 {
        hv::sched::suspend(&self.hv).unwrap_or(-i64::from(crate::evtchn::XenErrno::EINVAL.0))
    }

    /// Resume: the shared-info page at the same GFN, and the vCPU-info areas.
    pub fn restore_shared_info<K: BusHooks + ?Sized>(
        &mut self,
        hooks: &mut K,
    ) -> Result<(), BusError> {
        shared_info::map_at(&self.hv, self.level.shared_info_gfn)
            .map_err(fail(Step::SharedInfo))?;
        hooks.shared_info_mapped(self.level.shared_info_gfn);
        register_vcpu_areas(&self.hv, self.config.vcpus, hooks)
    }

    /// Resume: every grant frame at its GFN (v1 again). References the children still hold are
    /// void; their handshakes release them.
    pub fn restore_grant_table<K: BusHooks + ?Sized>(
        &mut self,
        hooks: &mut K,
    ) -> Result<(), BusError> {
        gnttab::ensure_v1(&self.hv).map_err(fail(Step::GrantTable))?;
        for frame in 0..self.frames.mapped() {
            let gfn = self.frame_gfns[frame as usize];
            gnttab::map_frame(&self.hv, frame, gfn).map_err(fail(Step::GrantTable))?;
            hooks.grant_frame_mapped(frame, gfn);
        }
        Ok(())
    }

    /// Resume: the event-channel ABI, the upcall, the store's port (read again: the toolstack
    /// may have given the new domain another one) and the bus's VIRQs.
    pub fn restore_event_channels(&mut self) -> Result<(), BusError> {
        self.evtchn
            .reinit(self.config.prefer_fifo)
            .map_err(fail(Step::EventChannels))?;
        self.install_upcall()?;
        self.level.store = hvm::store_ring(&self.hv).map_err(fail(Step::StoreRing))?;
        self.evtchn
            .attach(self.level.store.evtchn, self.config.store_handler, 0)
            .map_err(fail(Step::EventChannels))?;
        for b in self.virqs.iter_mut().flatten() {
            b.port = self
                .evtchn
                .bind_virq(b.virq, b.vcpu, b.handler)
                .map_err(fail(Step::Virq))?;
        }
        Ok(())
    }

    /// Resume: the store transport on the ring again, and the connection reset (requests in
    /// flight are forgotten; watches are kept for [`reregister_watches`](Self::reregister_watches)).
    pub fn reset_store<T: StoreLink + ?Sized>(&mut self, t: &mut T) -> Result<(), BusError> {
        t.connect(self.level.store).map_err(fail(Step::StoreRing))?;
        self.xs.reset();
        Ok(())
    }

    /// Resume: every watch registered again (each fires once), and a full rescan of the
    /// children (the new host's tree may differ).
    pub fn reregister_watches<T: Wait + ?Sized>(&mut self, t: &mut T) -> Result<(), BusError> {
        self.xs.reregister_watches(t).map_err(fail(Step::Watches))?;
        self.hotplug.pending.request_full_rescan();
        Ok(())
    }

    /// Everything the bus itself redoes after a resume in a new domain, in order (see the
    /// module docs). The children reconnect afterwards ([`ChildRunner::resume`]).
    pub fn resume<T: StoreLink + ?Sized, K: BusHooks + ?Sized>(
        &mut self,
        t: &mut T,
        hooks: &mut K,
    ) -> Result<(), BusError> {
        self.restore_shared_info(hooks)?;
        self.restore_grant_table(hooks)?;
        self.restore_event_channels()?;
        self.reset_store(t)?;
        self.reregister_watches(t)?;
        self.stats.resumes += 1;
        Ok(())
    }
}

impl<H, O, S, F, E, const PORTS: usize, const VCPUS: usize, const N: usize, const P: usize>
    fmt::Debug for Bus<'_, H, O, S, F, E, PORTS, VCPUS, N, P>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bus")
            .field("level", &self.level)
            .field("frames", &self.frames)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// The children's part of a suspend, for [`BusSuspend`]. `B` is the bus type, `T` the store
/// transport; each call gets both so the children can run their handshakes.
pub trait SuspendChildren<B: ?Sized, T: ?Sized> {
    /// The children's error.
    type Error: Copy + fmt::Debug;
    /// Stop every child's I/O and wait for what is in flight.
    fn quiesce(&mut self, bus: &mut B, t: &mut T) -> Result<(), Self::Error>;
    /// Let them go on in the same domain (cancelled suspend).
    fn resume(&mut self, bus: &mut B, t: &mut T) -> Result<(), Self::Error>;
    /// Reconnect each to its backend in the new domain ([`ChildRunner::resume`]).
    fn reconnect(&mut self, bus: &mut B, t: &mut T) -> Result<(), Self::Error>;
}

/// Why a [`BusSuspend`] step failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResumeError<E> {
    /// The bus's own part.
    Bus(BusError),
    /// The children's part.
    Children(E),
}

/// [`SuspendPlatform`] over a [`Bus`], its store transport, the hooks and the children.
#[derive(Debug)]
pub struct BusSuspend<'a, B: ?Sized, T: ?Sized, K: ?Sized, C: ?Sized> {
    /// The bus.
    pub bus: &'a mut B,
    /// Its store transport.
    pub store: &'a mut T,
    /// The shell's hooks.
    pub hooks: &'a mut K,
    /// The children.
    pub children: &'a mut C,
}

impl<
        'g,
        H,
        O,
        S,
        F,
        E,
        T,
        K,
        C,
        const PORTS: usize,
        const VCPUS: usize,
        const N: usize,
        const P: usize,
    > SuspendPlatform for BusSuspend<'_, Bus<'g, H, O, S, F, E, PORTS, VCPUS, N, P>, T, K, C>
where
    H: Hypervisor,
    O: EventChannelOps,
    S: SharedInfoEvents,
    F: FifoShared,
    E: GrantEntries,
    T: StoreLink + ?Sized,
    K: BusHooks + ?Sized,
    C: SuspendChildren<Bus<'g, H, O, S, F, E, PORTS, VCPUS, N, P>, T> + ?Sized,
{
    type Error = ResumeError<C::Error>;

    fn quiesce_children(&mut self) -> Result<(), Self::Error> {
        self.children
            .quiesce(self.bus, self.store)
            .map_err(ResumeError::Children)
    }
    fn suspend_hypercall(&mut self) -> i64 {
        self.bus.suspend_hypercall()
    }
    fn resume_children(&mut self) -> Result<(), Self::Error> {
        self.children
            .resume(self.bus, self.store)
            .map_err(ResumeError::Children)
    }
    fn restore_shared_info(&mut self) -> Result<(), Self::Error> {
        self.bus
            .restore_shared_info(self.hooks)
            .map_err(ResumeError::Bus)
    }
    fn restore_grant_table(&mut self) -> Result<(), Self::Error> {
        self.bus
            .restore_grant_table(self.hooks)
            .map_err(ResumeError::Bus)
    }
    fn restore_event_channels(&mut self) -> Result<(), Self::Error> {
        self.bus.restore_event_channels().map_err(ResumeError::Bus)
    }
    fn reset_store(&mut self) -> Result<(), Self::Error> {
        self.bus.reset_store(self.store).map_err(ResumeError::Bus)
    }
    fn reregister_watches(&mut self) -> Result<(), Self::Error> {
        self.bus
            .reregister_watches(self.store)
            .map_err(ResumeError::Bus)?;
        self.bus.stats.resumes += 1;
        Ok(())
    }
    fn reconnect_children(&mut self) -> Result<(), Self::Error> {
        self.children
            .reconnect(self.bus, self.store)
            .map_err(ResumeError::Children)
    }
}

/// Why a child's step failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunError<E> {
    /// Reading the backend's state, or (un)registering the watch.
    Store(XsError),
    /// Executing the plan.
    Frontend(FrontendError<E>),
}

/// One child's handshake: the backend `state` watch, [`read_backend_state`],
/// [`Handshake::on_backend`] and [`execute`], with any [`FrontendDriver`].
///
/// The watch is registered on the store connection (so it survives a resume with the others);
/// its events reach the shell as [`BusEvent::Watch`] with [`watch`](Self::watch)'s id, and the
/// shell calls [`on_event`](Self::on_event). An event that finds the backend in the state
/// already handled is ignored: a duplicate (the registration's event, one replayed after lost
/// events) must not be taken for the backend coming back to InitWait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChildRunner {
    paths: FrontendPaths,
    hs: Handshake,
    watch: Option<WatchId>,
    last: Option<Backend>,
}

impl ChildRunner {
    /// A runner for `child`, not started.
    pub fn new(child: &ChildInfo) -> Self {
        Self::from_paths(FrontendPaths {
            frontend: child.frontend_path(),
            backend: child.backend,
        })
    }

    /// A runner for the frontend and backend directories in `paths`.
    pub const fn from_paths(paths: FrontendPaths) -> Self {
        ChildRunner {
            paths,
            hs: Handshake::new(),
            watch: None,
            last: None,
        }
    }

    /// The child's directories.
    pub fn paths(&self) -> &FrontendPaths {
        &self.paths
    }

    /// The handshake's state.
    pub fn handshake(&self) -> &Handshake {
        &self.hs
    }

    /// The backend `state` watch, once started.
    pub fn watch(&self) -> Option<WatchId> {
        self.watch
    }

    /// Writes Initialising and watches the backend's `state`; the watch's first event (it
    /// fires when registered) drives the rest through [`on_event`](Self::on_event).
    pub fn start<T, D, const R: usize, const W: usize, const EV: usize>(
        &mut self,
        xs: &mut XsConnection<R, W, EV>,
        t: &mut T,
        driver: &mut D,
    ) -> Result<(), RunError<D::Error>>
    where
        T: Wait + ?Sized,
        D: FrontendDriver + ?Sized,
    {
        let plan = self.hs.start();
        self.last = None;
        execute(&mut self.hs, &plan, xs, t, &self.paths, driver).map_err(RunError::Frontend)?;
        if self.watch.is_none() {
            let path = self.paths.backend_node("state").map_err(RunError::Store)?;
            self.watch = Some(xs.watch(t, path).map_err(RunError::Store)?);
        }
        Ok(())
    }

    /// The watch fired (or events were lost): reads the backend's state and runs the plan for
    /// it. Returns the backend's protocol violation the plan answered, if any.
    pub fn on_event<T, D, const R: usize, const W: usize, const EV: usize>(
        &mut self,
        xs: &mut XsConnection<R, W, EV>,
        t: &mut T,
        driver: &mut D,
    ) -> Result<Option<HandshakeError>, RunError<D::Error>>
    where
        T: Wait + ?Sized,
        D: FrontendDriver + ?Sized,
    {
        let backend = read_backend_state(xs, t, &self.paths).map_err(RunError::Store)?;
        if self.last == Some(backend) {
            return Ok(None);
        }
        self.last = Some(backend);
        let plan = self.hs.on_backend(backend);
        execute(&mut self.hs, &plan, xs, t, &self.paths, driver).map_err(RunError::Frontend)?;
        Ok(plan.error)
    }

    /// After a resume in a new domain: releases what the driver held and goes back to
    /// Initialising; the backend's next state (InitWait) reconnects.
    pub fn resume<T, D, const R: usize, const W: usize, const EV: usize>(
        &mut self,
        xs: &mut XsConnection<R, W, EV>,
        t: &mut T,
        driver: &mut D,
    ) -> Result<(), RunError<D::Error>>
    where
        T: Wait + ?Sized,
        D: FrontendDriver + ?Sized,
    {
        let plan = self.hs.resume();
        self.last = None;
        execute(&mut self.hs, &plan, xs, t, &self.paths, driver).map_err(RunError::Frontend)
    }

    /// The frontend closes on its own (device removal): quiesce, Closing; Closed follows the
    /// backend through [`on_event`](Self::on_event).
    pub fn close<T, D, const R: usize, const W: usize, const EV: usize>(
        &mut self,
        xs: &mut XsConnection<R, W, EV>,
        t: &mut T,
        driver: &mut D,
    ) -> Result<(), RunError<D::Error>>
    where
        T: Wait + ?Sized,
        D: FrontendDriver + ?Sized,
    {
        let plan = self.hs.close();
        execute(&mut self.hs, &plan, xs, t, &self.paths, driver).map_err(RunError::Frontend)
    }

    /// Removes the watch (the child is gone). A daemon that no longer knows the watch is fine.
    pub fn stop<T, const R: usize, const W: usize, const EV: usize>(
        &mut self,
        xs: &mut XsConnection<R, W, EV>,
        t: &mut T,
    ) -> Result<(), XsError>
    where
        T: Wait + ?Sized,
    {
        match self.watch.take() {
            None => Ok(()),
            Some(w) => match xs.unwatch(t, w) {
                Err(e) if e.is_enoent() => Ok(()),
                Err(XsError::Limit(LimitError::UnknownWatch)) => Ok(()),
                other => other,
            },
        }
    }
}
