//! The driver's thin layer over `xenpci-core`'s [`Bus`]: the configuration the driver brings
//! the bus up with, the upcall (what the ISR runs) and an enumeration pass (what the store's
//! deferred work runs) that keeps the [`ChildTable`] of PDOs in step with xenbus.
//!
//! Generic over the core's platform traits, so the same code runs in `xenpci.sys` (over the
//! x86 instructions and the device's memory window) and in the host tests (over `xen-sim`'s
//! model of Xen, its event channels and its xenstored).
//!
//! Concurrency: [`on_upcall`] only takes `&` of the event channels and may run in the ISR
//! (DIRQL) on every vCPU at once (the core serialises scans per vCPU); [`bring_up`] and
//! [`enumerate`] run at PASSIVE_LEVEL (they block in the store transport), one at a time, with
//! the child table under the bus's child-list lock.
#![forbid(unsafe_code)]

use core::mem::MaybeUninit;

use xenpci_core::bus::{Bus, BusConfig, BusError, BusEvent, BusHooks, StoreLink};
use xenpci_core::control::ControlRequest;
use xenpci_core::evtchn::{
    EventChannelOps, EventChannels, EvtchnError, FifoShared, HandlerId, ScanOutcome,
    SharedInfoEvents,
};
use xenpci_core::grant_table::{GrantEntries, GrantTable};
use xenpci_core::hypervisor::hvm::{CallbackVia, UpcallResources};
use xenpci_core::hypervisor::{Hypervisor, Policy};
use xenpci_core::xenbus::{read_child, ReadBuffers};
use xenpci_core::xenstore::{Wait, XsConnection, XsError};

use crate::enumeration::{ChildTable, Noted, Undescribed};

/// Event-channel ports the bus serves.
pub const PORTS: usize = 4096;
/// vCPUs the bus serves.
pub const VCPUS: usize = 64;
/// xenbus children (PDOs) the bus serves.
pub const CHILDREN: usize = 64;
/// Child probes pending at once in the core's hotplug state.
pub const PROBES: usize = 16;
/// Ports one upcall scan delivers before the rest is left to the next one.
pub const UPCALL_BUDGET: u32 = 64;
/// The handler id of the store's event channel.
pub const STORE_HANDLER: HandlerId = HandlerId(0);

/// The bus as the driver instantiates it.
pub type DriverBus<'g, H, O, S, F, E> = Bus<'g, H, O, S, F, E, PORTS, VCPUS, CHILDREN, PROBES>;

/// The bring-up settings: `vcpus` vCPUs (from Windows' active processor count), upcalls through
/// the platform device's line `line` (the driver offers no per-vCPU vector yet), the emulated
/// devices left alone (the unplug policy is not wired).
pub fn bus_config(vcpus: u32, line: CallbackVia) -> BusConfig {
    BusConfig {
        policy: Policy::Auto,
        vcpus,
        prefer_fifo: true,
        upcall: UpcallResources { vector: None, line },
        grant_frames: 4,
        max_grant_frames: 64,
        store_handler: STORE_HANDLER,
        unplug: None,
    }
}

/// Brings the bus up with [`bus_config`] into `slot`, memory the shell provides (the bus is
/// never moved nor returned by value): Xen's interfaces, the grant frames in the window, the
/// event channels (`evtchn`, built in place by the shell with `EventChannels::unstarted` and
/// `start`) and the upcall, the store connection (`xs`) with its `device` watch. PASSIVE_LEVEL.
#[allow(clippy::too_many_arguments)]
pub fn bring_up<'s, 'g, H, O, S, F, E, T, K>(
    slot: &'s mut MaybeUninit<DriverBus<'g, H, O, S, F, E>>,
    hv: H,
    vcpus: u32,
    line: CallbackVia,
    grants: GrantTable<'g, E>,
    evtchn: &'g mut EventChannels<O, S, F, PORTS, VCPUS>,
    xs: &'g mut XsConnection,
    store: &mut T,
    hooks: &mut K,
) -> Result<&'s mut DriverBus<'g, H, O, S, F, E>, BusError>
where
    H: Hypervisor,
    O: EventChannelOps,
    S: SharedInfoEvents,
    F: FifoShared,
    E: GrantEntries,
    T: StoreLink + ?Sized,
    K: BusHooks + ?Sized,
{
    DriverBus::bring_up_in_place(
        slot,
        hv,
        bus_config(vcpus, line),
        grants,
        evtchn,
        xs,
        store,
        hooks,
    )
}

/// What an upcall found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Upcall {
    /// The store's port fired: queue the deferred store work (a DPC that wakes the transport's
    /// waiter and queues a work item for [`enumerate`]).
    pub store: bool,
    /// Ports of other handlers that fired (children's ports, routed by the interface).
    pub other: u32,
    /// The scan's own counts.
    pub scan: ScanOutcome,
}

/// The upcall on vCPU `vcpu`: scans the pending ports (what the ISR runs). Any IRQL.
pub fn on_upcall<O, S, F, const P: usize, const V: usize>(
    evtchn: &EventChannels<O, S, F, P, V>,
    vcpu: u32,
) -> Result<Upcall, EvtchnError>
where
    O: EventChannelOps,
    S: SharedInfoEvents,
    F: FifoShared,
{
    let mut store = false;
    let mut other = 0;
    let scan = evtchn.scan(vcpu, UPCALL_BUDGET, |_, handler| {
        if handler == STORE_HANDLER {
            store = true;
        } else {
            other += 1;
        }
    })?;
    Ok(Upcall { store, other, scan })
}

/// What the shell reports (logs) during an [`enumerate`] pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    /// A hotplug change and what it did to the table.
    Noted(Noted),
    /// A new child whose nodes could not be read; it is not reported.
    Undescribed(Undescribed),
    /// Watch events were lost; the core rescans.
    EventsLost,
}

/// What an [`enumerate`] pass leaves for the shell to do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    /// The children changed: call `IoInvalidateDeviceRelations(BusRelations)`.
    pub relations_changed: bool,
    /// The last control request taken (`control/shutdown`, `control/sysrq`).
    pub control: Option<ControlRequest>,
    /// Watch events for watches the bus does not own (children's), not yet routed.
    pub foreign_watches: u32,
    /// Events are left: run another pass.
    pub more: bool,
}

/// One pass over the store's events: hotplug changes go into `table`, new children are read
/// and described, and the pass says whether `BusRelations` must be queried again.
/// PASSIVE_LEVEL (blocks in the transport).
pub fn enumerate<'g, H, O, S, F, E, T, const N: usize>(
    bus: &mut DriverBus<'g, H, O, S, F, E>,
    t: &mut T,
    bufs: &mut ReadBuffers,
    table: &mut ChildTable<N>,
    mut report: impl FnMut(Report),
) -> Result<Pass, XsError>
where
    H: Hypervisor,
    O: EventChannelOps,
    S: SharedInfoEvents,
    F: FifoShared,
    E: GrantEntries,
    T: Wait + ?Sized,
{
    let mut pass = Pass::default();
    let more = bus.process_store(t, bufs, |event| match event {
        BusEvent::Child(change) => {
            let noted = table.note(change);
            pass.relations_changed |= noted.relations_changed();
            if noted != Noted::Nothing {
                report(Report::Noted(noted));
            }
        }
        BusEvent::Control(request) => pass.control = Some(request),
        BusEvent::Watch(_) => pass.foreign_watches += 1,
        BusEvent::EventsLost => report(Report::EventsLost),
    })?;
    pass.more = more;
    table.describe_pending(
        |class, id| read_child(bus.xs, t, class, id, bufs),
        |undescribed| report(Report::Undescribed(undescribed)),
    );
    Ok(pass)
}
