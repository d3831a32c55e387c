//! Event channels: binding ports, masking and unmasking them, and the upcall scan that finds
//! the ports that fired, over either event ABI.
//!
//! [`EventChannels`] is the one interface. At start it tries the FIFO ABI (`EVTCHNOP_init_control`
//! for every vCPU) and falls back to the 2-level ABI if Xen answers `ENOSYS`. Hypercalls go
//! through [`EventChannelOps`]; shared memory through [`SharedInfoEvents`] (the 2-level bitmaps
//! and per-vCPU upcall state) and [`FifoShared`] (the FIFO event array and control blocks). The
//! event array grows by pages the shell provides on request; the core never allocates.
//!
//! Ports are mapped to shell handlers by a fixed-size [`DispatchTable`]. The upcall scan
//! ([`EventChannels::scan`]) reports fired ports to a callback, at most `budget` per call, fairly
//! (see [`two_level`] and [`fifo`] for how each ABI stays fair and bounded). A port that fires
//! without a handler is masked and counted.
//!
//! # Concurrency contract
//! [`EventChannels`] is shared by every CPU through `&self`; only start-up
//! ([`EventChannels::start`], in place) and resume ([`EventChannels::reinit`], in place, with
//! every other CPU quiesced) take it exclusively.
//! - [`EventChannels::scan`] runs at DIRQL (the upcall's ISR) or DISPATCH_LEVEL (a DPC), for each
//!   vCPU on its own and for all vCPUs at once, with no lock shared between vCPUs: the shared
//!   words are atomics ([`shared`]), each vCPU's resume point and scan counters live in its own
//!   slot, and the dispatch table is read with single atomic loads. One scan of a
//!   given vCPU runs at a time (the shell scans a vCPU from one place, or nests an ISR's scan
//!   in a DPC's on the same CPU only if it accepts [`EvtchnError::ScanInProgress`]).
//! - [`EventChannels::mask`], [`EventChannels::unmask`], [`EventChannels::send`] (notify),
//!   [`EventChannels::clear_pending`], [`EventChannels::is_pending`],
//!   [`EventChannels::is_masked`] and [`EventChannels::status`] run at IRQL <= DIRQL on any CPU,
//!   concurrently with each other and with scans (children's DPCs and ISRs).
//! - Binding changes ([`EventChannels::attach`], [`EventChannels::alloc_unbound`],
//!   [`EventChannels::bind_interdomain`], [`EventChannels::bind_virq`],
//!   [`EventChannels::bind_vcpu`], [`EventChannels::set_priority`], [`EventChannels::close`],
//!   [`EventChannels::set_upcall_reach`]) run at PASSIVE_LEVEL under the shell's lock for binding
//!   changes (one at a time), concurrently with scans and with the calls above. If two ever race
//!   anyway, each table change is still one atomic operation, and a second FIFO event-array
//!   growth is refused ([`EvtchnError::ConcurrentChange`]) rather than asking for a page twice.
//!
//! A scan that started before [`EventChannels::close`] returned may still report the port once
//! (it cleared the pending bit before the close unregistered the handler): the shell keeps the
//! handler's callback valid until every vCPU's scan in flight has finished (for example by
//! flushing its DPCs).
//!
//! # vCPUs the upcall reaches
//! Only the per-vCPU upcall vector and the callback vector interrupt every vCPU; the INTx/GSI
//! callback interrupts vCPU 0 only, so events Xen sends to another vCPU would wait forever.
//! Until the shell states which upcall is installed ([`EventChannels::set_upcall_reach`], from
//! [`UpcallReach::of`] of [`crate::hypervisor::hvm::choose_upcall`]'s choice), binding a port to
//! a vCPU other than 0 is refused with [`EvtchnError::UnreachableVcpu`].

pub mod dispatch;
pub mod fifo;
pub mod ops;
pub mod shared;
pub mod two_level;
mod vcpu;

#[cfg(test)]
mod tests;

use core::fmt;

use xen_abi::event_channel::{
    EventWordFlags, EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindVcpu, EvtchnBindVirq,
    EvtchnClose, EvtchnExpandArray, EvtchnInitControl, EvtchnSend, EvtchnSetPriority, EvtchnStatus,
    EvtchnUnmask, EVTCHNOP_ALLOC_UNBOUND, EVTCHNOP_BIND_INTERDOMAIN, EVTCHNOP_BIND_VCPU,
    EVTCHNOP_BIND_VIRQ, EVTCHNOP_CLOSE, EVTCHNOP_EXPAND_ARRAY, EVTCHNOP_INIT_CONTROL,
    EVTCHNOP_SEND, EVTCHNOP_SET_PRIORITY, EVTCHNOP_STATUS, EVTCHNOP_UNMASK, EVTCHN_2L_NR_CHANNELS,
    EVTCHN_FIFO_EVENT_WORDS_PER_PAGE, EVTCHN_FIFO_NR_CHANNELS, EVTCHN_FIFO_PRIORITY_MIN,
};
use xen_abi::shared_info::EVTCHN_2L_WORDS;
use xen_abi::types::{DomId, EvtchnPort, DOMID_SELF};

use crate::hypervisor::hvm::{CallbackVia, UpcallMethod};
use crate::sync::{const_unless_loom, fence, AtomicBool, AtomicU32, Ordering};
use vcpu::{AtomicStats, VcpuSlot};

pub use dispatch::{Binding, DispatchTable, HandlerId};
pub use ops::{EventChannelOps, XenErrno};
pub use shared::{FifoShared, L2Bitmap, SharedInfoEvents};

/// Why an event-channel operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvtchnError {
    /// A hypercall failed.
    Hypercall {
        /// The `EVTCHNOP_*` sub-op.
        op: u32,
        /// Xen's error.
        errno: XenErrno,
    },
    /// The port does not fit the dispatch table or the ABI's port range.
    PortOutOfRange {
        /// The port.
        port: EvtchnPort,
        /// The number of ports available.
        capacity: u32,
    },
    /// Port 0 is never a valid port.
    InvalidPort {
        /// The port.
        port: EvtchnPort,
    },
    /// The port already has a handler.
    PortInUse {
        /// The port.
        port: EvtchnPort,
    },
    /// The port has no handler.
    NotRegistered {
        /// The port.
        port: EvtchnPort,
    },
    /// The vCPU is beyond the number the instance was created for.
    InvalidVcpu {
        /// The vCPU.
        vcpu: u32,
    },
    /// The priority is outside 0 ([`xen_abi::event_channel::EVTCHN_FIFO_PRIORITY_MAX`]) to 15.
    InvalidPriority {
        /// The priority.
        priority: u32,
    },
    /// The shell had no control block for the vCPU (FIFO start-up).
    NoControlBlock {
        /// The vCPU.
        vcpu: u32,
    },
    /// The shell could not provide the next page of the FIFO event array.
    NoArrayPage {
        /// The page index.
        page: u32,
    },
    /// The operation exists only in the FIFO ABI.
    NotFifo,
    /// The installed upcall does not interrupt this vCPU (the INTx/GSI callback reaches vCPU 0
    /// only), so events bound to it would be lost.
    UnreachableVcpu {
        /// The vCPU.
        vcpu: u32,
    },
    /// A port is bound to a vCPU the new upcall would not reach.
    BoundOffVcpu0 {
        /// The port.
        port: EvtchnPort,
        /// Its vCPU.
        vcpu: u32,
    },
    /// A scan of this vCPU is already running (a nested call on the same CPU, or the same vCPU
    /// scanned from two places).
    ScanInProgress {
        /// The vCPU.
        vcpu: u32,
    },
    /// Another binding change was growing the FIFO event array: binding changes must be
    /// serialised by the shell's lock.
    ConcurrentChange,
}

impl fmt::Display for EvtchnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvtchnError::Hypercall { op, errno } => {
                write!(f, "event channel op {op} failed: {errno}")
            }
            EvtchnError::PortOutOfRange { port, capacity } => {
                write!(f, "port {port} is beyond the {capacity} ports available")
            }
            EvtchnError::InvalidPort { port } => write!(f, "port {port} is not a valid port"),
            EvtchnError::PortInUse { port } => write!(f, "port {port} already has a handler"),
            EvtchnError::NotRegistered { port } => write!(f, "port {port} has no handler"),
            EvtchnError::InvalidVcpu { vcpu } => write!(f, "vCPU {vcpu} is out of range"),
            EvtchnError::InvalidPriority { priority } => {
                write!(f, "priority {priority} is out of range")
            }
            EvtchnError::NoControlBlock { vcpu } => {
                write!(f, "no FIFO control block for vCPU {vcpu}")
            }
            EvtchnError::NoArrayPage { page } => {
                write!(f, "no page {page} for the FIFO event array")
            }
            EvtchnError::NotFifo => f.write_str("the FIFO event ABI is not in use"),
            EvtchnError::UnreachableVcpu { vcpu } => {
                write!(f, "the upcall does not interrupt vCPU {vcpu}")
            }
            EvtchnError::BoundOffVcpu0 { port, vcpu } => write!(
                f,
                "port {port} is bound to vCPU {vcpu}, which the upcall would not reach"
            ),
            EvtchnError::ScanInProgress { vcpu } => {
                write!(f, "a scan of vCPU {vcpu} is already running")
            }
            EvtchnError::ConcurrentChange => {
                f.write_str("another binding change is growing the event array")
            }
        }
    }
}

fn hypercall(op: u32) -> impl Fn(XenErrno) -> EvtchnError {
    move |errno| EvtchnError::Hypercall { op, errno }
}

/// The event ABI in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Abi {
    /// Per-vCPU priority queues (`EVTCHNOP_init_control` succeeded).
    Fifo,
    /// The shared-info bitmaps.
    TwoLevel,
}

/// What one call of [`EventChannels::scan`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanOutcome {
    /// Ports reported to the callback.
    pub delivered: u32,
    /// Ports that fired without a handler and were masked.
    pub unhandled: u32,
    /// Work remains (the budget ran out): the shell should scan again soon (for example from a
    /// re-queued DPC).
    pub more: bool,
}

/// Counters the driver exposes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnStats {
    /// Ports reported to handlers.
    pub delivered: u64,
    /// Ports that fired without a handler and were masked.
    pub unhandled_masked: u64,
    /// Scans that stopped with work left because the budget ran out.
    pub budget_exhausted: u64,
    /// FIFO queues cut short by a corrupt chain: a head or link beyond the array, an event on a
    /// chain that is not linked (a cycle), or `ready` bits naming no queue.
    pub fifo_bad_links: u64,
    /// FIFO scans stopped because an event word kept changing under the unlink.
    pub fifo_unlink_contention: u64,
    /// 2-level scans stopped by the step limit (bitmaps changing under the scan).
    pub scan_step_limit: u64,
    /// Unmasks that needed `EVTCHNOP_unmask`.
    pub unmask_hypercalls: u64,
    /// Pages added to the FIFO event array.
    pub array_pages: u64,
}

/// Which vCPUs the installed upcall interrupts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UpcallReach {
    /// Every vCPU (the per-vCPU upcall vector, or the callback vector).
    AllVcpus,
    /// vCPU 0 only (the callback through a GSI or the PCI INTx line).
    Vcpu0,
}

impl UpcallReach {
    /// The vCPUs `method` interrupts. Xen injects the per-vCPU vector and the callback vector on
    /// the vCPU the event is bound to; it asserts the GSI or INTx line only for vCPU 0's
    /// `evtchn_upcall_pending`.
    pub fn of(method: UpcallMethod) -> Self {
        match method {
            UpcallMethod::PerVcpuVector(_) | UpcallMethod::CallbackIrq(CallbackVia::Vector(_)) => {
                UpcallReach::AllVcpus
            }
            UpcallMethod::CallbackIrq(CallbackVia::Gsi(_) | CallbackVia::PciIntx { .. }) => {
                UpcallReach::Vcpu0
            }
        }
    }
}

/// Which ABI to try at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// vCPUs to set up (at most the `VCPUS` parameter).
    pub vcpus: u32,
    /// Try the FIFO ABI first (falling back to 2-level on `ENOSYS`).
    pub prefer_fifo: bool,
}

/// Attempts at clearing a FIFO mask bit locally before leaving it to the hypercall.
const UNMASK_ATTEMPTS: u32 = 16;

/// Event channels over one ABI, with handlers for ports `1..PORTS` and state for up to `VCPUS`
/// vCPUs. See the module documentation for which calls may run concurrently.
///
/// `repr(C)` with the dispatch table first, so that no padding after a field of the shell's
/// types sits next to it: the table is then one run of zeros that the compiler writes straight
/// into the memory [`unstarted`](Self::unstarted) initialises (measured by the stack-bound test).
#[derive(Debug)]
#[repr(C)]
pub struct EventChannels<O, S, F, const PORTS: usize, const VCPUS: usize> {
    dispatch: DispatchTable<PORTS>,
    slots: [VcpuSlot; VCPUS],
    /// Counters of the calls other than scans (unmask hypercalls, array pages); the scans count
    /// in their vCPU's slot.
    stats: AtomicStats,
    /// FIFO event-array pages added; only grows (release) between resumes, read by scans
    /// (acquire) to bound the ports they touch.
    array_pages: AtomicU32,
    vcpus: u32,
    abi: Abi,
    /// Held while a binding change grows the event array.
    growing: AtomicBool,
    /// Whether the installed upcall interrupts every vCPU ([`UpcallReach::AllVcpus`]).
    all_vcpus_reached: AtomicBool,
    ops: O,
    shared: S,
    fifo: F,
}

impl<O, S, F, const PORTS: usize, const VCPUS: usize> EventChannels<O, S, F, PORTS, VCPUS>
where
    O: EventChannelOps,
    S: SharedInfoEvents,
    F: FifoShared,
{
    const_unless_loom! {
    /// An instance that is not started: every port and vCPU is refused until
    /// [`start`](Self::start). `const`, so it can initialise a static or memory the shell
    /// provides without a large value passing through the stack (its dispatch table is 8 bytes
    /// per port). There is no constructor that returns a started instance by value.
    #[inline(always)]
    pub fn unstarted(ops: O, shared: S, fifo: F) -> Self {
        EventChannels {
            ops,
            shared,
            fifo,
            abi: Abi::TwoLevel,
            vcpus: 0,
            array_pages: AtomicU32::new(0),
            growing: AtomicBool::new(false),
            all_vcpus_reached: AtomicBool::new(false),
            dispatch: DispatchTable::new(),
            slots: VcpuSlot::array(),
            stats: AtomicStats::new(),
        }
    }
    }

    /// Sets up event delivery in place: forgets every handler and scan position, then sets up
    /// the FIFO ABI if preferred and available, else the 2-level ABI with every port masked.
    /// Call before binding any port. On failure the instance is left unstarted.
    pub fn start(&mut self, config: Config) -> Result<Abi, EvtchnError> {
        if config.vcpus == 0 || config.vcpus as usize > VCPUS {
            return Err(EvtchnError::InvalidVcpu { vcpu: config.vcpus });
        }
        self.forget();
        self.vcpus = config.vcpus;
        if config.prefer_fifo {
            match self.init_fifo() {
                Ok(true) => {
                    self.abi = Abi::Fifo;
                    return Ok(self.abi);
                }
                Ok(false) => {}
                Err(e) => {
                    self.vcpus = 0;
                    return Err(e);
                }
            }
        }
        for word in 0..EVTCHN_2L_WORDS {
            self.shared.fetch_or(L2Bitmap::Mask, word, u64::MAX);
        }
        Ok(self.abi)
    }

    /// Back to the state of [`unstarted`](Self::unstarted), keeping the counters and vCPU count.
    fn forget(&mut self) {
        self.dispatch.clear();
        for slot in &mut self.slots {
            slot.reset();
        }
        self.array_pages = AtomicU32::new(0);
        self.growing = AtomicBool::new(false);
        self.all_vcpus_reached = AtomicBool::new(false);
        self.abi = Abi::TwoLevel;
    }

    /// Registers every vCPU's control block; `Ok(false)` if Xen lacks the FIFO ABI.
    fn init_fifo(&mut self) -> Result<bool, EvtchnError> {
        for vcpu in 0..self.vcpus {
            let (gfn, offset) = self
                .fifo
                .control_block(vcpu)
                .ok_or(EvtchnError::NoControlBlock { vcpu })?;
            let mut arg = EvtchnInitControl {
                control_gfn: gfn,
                offset,
                vcpu,
                link_bits: 0,
                pad: [0; 7],
            };
            match self.ops.init_control(&mut arg) {
                Ok(()) => {}
                Err(XenErrno::ENOSYS) if vcpu == 0 => return Ok(false),
                Err(errno) => return Err(hypercall(EVTCHNOP_INIT_CONTROL)(errno)),
            }
        }
        Ok(true)
    }

    /// Sets event delivery up again after the domain resumed in a new domain, where Xen closed
    /// every port and forgot the FIFO control blocks and event array: forgets every handler,
    /// cursor and event-array page, then runs the start-up of [`start`](Self::start) again (FIFO if
    /// `prefer_fifo` and still available, else 2-level with every port masked and no stale
    /// pending bit). The shell is asked for control blocks and event-array pages again, from
    /// page 0. The upcall must be installed and stated again
    /// ([`set_upcall_reach`](Self::set_upcall_reach)), then the ports the bus needs (xenstore,
    /// VIRQs) bound or attached again. Takes `&mut self`: nothing else runs during a resume.
    pub fn reinit(&mut self, prefer_fifo: bool) -> Result<Abi, EvtchnError> {
        self.forget();
        if prefer_fifo && self.init_fifo()? {
            self.abi = Abi::Fifo;
        } else {
            for word in 0..EVTCHN_2L_WORDS {
                self.shared.fetch_or(L2Bitmap::Mask, word, u64::MAX);
                self.shared.fetch_and(L2Bitmap::Pending, word, 0);
            }
        }
        Ok(self.abi)
    }

    /// The ABI in use.
    pub fn abi(&self) -> Abi {
        self.abi
    }

    /// The counters (each exact; taken one after the other while other CPUs may add to them).
    pub fn stats(&self) -> EvtchnStats {
        let mut sum = self.stats.snapshot();
        for slot in &self.slots {
            slot.counters.sum_into(&mut sum);
        }
        sum
    }

    /// States which vCPUs the upcall the shell installed interrupts (call after every
    /// installation, with [`UpcallReach::of`] the method [`crate::hypervisor::hvm::setup_upcall`]
    /// was given). Until then only vCPU 0 counts as reached. Refused with
    /// [`EvtchnError::BoundOffVcpu0`] if the upcall would no longer reach a vCPU a port is
    /// bound to. PASSIVE_LEVEL, under the shell's lock for binding changes.
    pub fn set_upcall_reach(&self, reach: UpcallReach) -> Result<(), EvtchnError> {
        let all = reach == UpcallReach::AllVcpus;
        if !all {
            if let Some((port, vcpu)) = self.dispatch.port_off_vcpu0() {
                return Err(EvtchnError::BoundOffVcpu0 { port, vcpu });
            }
        }
        self.all_vcpus_reached.store(all, Ordering::Release);
        Ok(())
    }

    /// Which vCPUs the upcall reaches, as last stated.
    pub fn upcall_reach(&self) -> UpcallReach {
        if self.all_vcpus_reached.load(Ordering::Acquire) {
            UpcallReach::AllVcpus
        } else {
            UpcallReach::Vcpu0
        }
    }

    /// The dispatch table.
    pub fn dispatch(&self) -> &DispatchTable<PORTS> {
        &self.dispatch
    }

    /// The hypercall interface, for the shell.
    pub fn ops(&self) -> &O {
        &self.ops
    }

    /// Ports the ABI can currently address (for FIFO: the mapped event words).
    fn abi_limit(&self) -> u32 {
        if self.vcpus == 0 {
            return 0; // Not started: no shared memory may be touched yet.
        }
        match self.abi {
            // Acquire: pairs with the release in `ensure_array`, so a port below the limit has
            // its event word mapped on this CPU too.
            Abi::Fifo => {
                self.array_pages.load(Ordering::Acquire) * EVTCHN_FIFO_EVENT_WORDS_PER_PAGE
            }
            Abi::TwoLevel => EVTCHN_2L_NR_CHANNELS,
        }
    }

    fn check_port(&self, port: EvtchnPort) -> Result<(), EvtchnError> {
        if port == 0 {
            return Err(EvtchnError::InvalidPort { port });
        }
        let capacity = self.abi_limit();
        if port >= capacity {
            return Err(EvtchnError::PortOutOfRange { port, capacity });
        }
        Ok(())
    }

    fn check_vcpu(&self, vcpu: u32) -> Result<(), EvtchnError> {
        if vcpu >= self.vcpus {
            return Err(EvtchnError::InvalidVcpu { vcpu });
        }
        Ok(())
    }

    /// A vCPU a port may be bound to: in range and interrupted by the upcall.
    fn check_target_vcpu(&self, vcpu: u32) -> Result<(), EvtchnError> {
        self.check_vcpu(vcpu)?;
        if vcpu != 0 && self.upcall_reach() != UpcallReach::AllVcpus {
            return Err(EvtchnError::UnreachableVcpu { vcpu });
        }
        Ok(())
    }

    /// FIFO: adds event-array pages until `port` has an event word.
    fn ensure_array(&self, port: EvtchnPort) -> Result<(), EvtchnError> {
        if self.abi != Abi::Fifo {
            return Ok(());
        }
        if port >= EVTCHN_FIFO_NR_CHANNELS {
            return Err(EvtchnError::PortOutOfRange {
                port,
                capacity: EVTCHN_FIFO_NR_CHANNELS,
            });
        }
        if port < self.abi_limit() {
            return Ok(());
        }
        // Acquire/release pair for the growth: a second binding change growing at once (the
        // shell's lock should make it impossible) is refused instead of asking for a page twice.
        if self.growing.swap(true, Ordering::Acquire) {
            return Err(EvtchnError::ConcurrentChange);
        }
        let result = self.grow_array(port);
        self.growing.store(false, Ordering::Release);
        result
    }

    fn grow_array(&self, port: EvtchnPort) -> Result<(), EvtchnError> {
        while port >= self.abi_limit() {
            let page = self.array_pages.load(Ordering::Relaxed);
            let gfn = self
                .fifo
                .prepare_array_page(page)
                .ok_or(EvtchnError::NoArrayPage { page })?;
            self.ops
                .expand_array(&EvtchnExpandArray { array_gfn: gfn })
                .map_err(hypercall(EVTCHNOP_EXPAND_ARRAY))?;
            // Release: the page the shell readied is mapped before any scan bounded by the new
            // limit touches its words.
            self.array_pages.store(page + 1, Ordering::Release);
            self.stats.add(&EvtchnStats {
                array_pages: 1,
                ..EvtchnStats::default()
            });
        }
        Ok(())
    }

    /// Takes a port Xen just bound into use: makes sure the ABI can address it, registers the
    /// handler and unmasks it. On failure the port is closed again.
    fn adopt(
        &self,
        port: EvtchnPort,
        handler: HandlerId,
        vcpu: u32,
    ) -> Result<EvtchnPort, EvtchnError> {
        let result = self.attach(port, handler, vcpu);
        if result.is_err() {
            // Best effort: the caller learns of the first failure.
            let _ = self.ops.close(&EvtchnClose { port });
        }
        result.map(|()| port)
    }

    /// Registers `handler` for a port bound outside this instance (for example the xenstore or
    /// console port the toolstack set up) and unmasks it.
    pub fn attach(
        &self,
        port: EvtchnPort,
        handler: HandlerId,
        vcpu: u32,
    ) -> Result<(), EvtchnError> {
        self.check_target_vcpu(vcpu)?;
        if port == 0 {
            return Err(EvtchnError::InvalidPort { port });
        }
        if port >= self.dispatch.capacity() {
            return Err(EvtchnError::PortOutOfRange {
                port,
                capacity: self.dispatch.capacity(),
            });
        }
        self.ensure_array(port)?;
        self.check_port(port)?;
        self.mask(port)?;
        self.dispatch.register(port, Binding { handler, vcpu })?;
        self.unmask(port)
    }

    /// Allocates a port `remote_dom` may bind to, handled by `handler` on vCPU 0.
    pub fn alloc_unbound(
        &self,
        remote_dom: DomId,
        handler: HandlerId,
    ) -> Result<EvtchnPort, EvtchnError> {
        let mut arg = EvtchnAllocUnbound {
            dom: DOMID_SELF,
            remote_dom,
            port: 0,
        };
        self.ops
            .alloc_unbound(&mut arg)
            .map_err(hypercall(EVTCHNOP_ALLOC_UNBOUND))?;
        self.adopt(arg.port, handler, 0)
    }

    /// Connects to `remote_port` of `remote_dom`; the local port is handled by `handler` on
    /// vCPU 0.
    pub fn bind_interdomain(
        &self,
        remote_dom: DomId,
        remote_port: EvtchnPort,
        handler: HandlerId,
    ) -> Result<EvtchnPort, EvtchnError> {
        let mut arg = EvtchnBindInterdomain {
            remote_dom,
            pad: 0,
            remote_port,
            local_port: 0,
        };
        self.ops
            .bind_interdomain(&mut arg)
            .map_err(hypercall(EVTCHNOP_BIND_INTERDOMAIN))?;
        self.adopt(arg.local_port, handler, 0)
    }

    /// Binds virtual IRQ `virq` of `vcpu` to a new port handled by `handler`.
    pub fn bind_virq(
        &self,
        virq: u32,
        vcpu: u32,
        handler: HandlerId,
    ) -> Result<EvtchnPort, EvtchnError> {
        self.check_target_vcpu(vcpu)?;
        let mut arg = EvtchnBindVirq {
            virq,
            vcpu,
            port: 0,
        };
        self.ops
            .bind_virq(&mut arg)
            .map_err(hypercall(EVTCHNOP_BIND_VIRQ))?;
        self.adopt(arg.port, handler, vcpu)
    }

    /// Makes `port` notify `vcpu`. Refused with [`EvtchnError::UnreachableVcpu`] when the
    /// upcall does not interrupt `vcpu` (see [`set_upcall_reach`](Self::set_upcall_reach)).
    pub fn bind_vcpu(&self, port: EvtchnPort, vcpu: u32) -> Result<(), EvtchnError> {
        self.check_target_vcpu(vcpu)?;
        self.check_port(port)?;
        // Only a registered port moves: its handler must follow it to the new vCPU's scan.
        if self.dispatch.get(port).is_none() {
            return Err(EvtchnError::NotRegistered { port });
        }
        self.ops
            .bind_vcpu(&EvtchnBindVcpu { port, vcpu })
            .map_err(hypercall(EVTCHNOP_BIND_VCPU))?;
        self.dispatch.set_vcpu(port, vcpu)
    }

    /// Sets the FIFO priority of `port` (0 highest, 15 lowest).
    pub fn set_priority(&self, port: EvtchnPort, priority: u32) -> Result<(), EvtchnError> {
        if self.abi != Abi::Fifo {
            return Err(EvtchnError::NotFifo);
        }
        if priority > EVTCHN_FIFO_PRIORITY_MIN {
            return Err(EvtchnError::InvalidPriority { priority });
        }
        self.check_port(port)?;
        self.ops
            .set_priority(&EvtchnSetPriority { port, priority })
            .map_err(hypercall(EVTCHNOP_SET_PRIORITY))
    }

    /// Reads the state of `port` in Xen (`EVTCHNOP_status`).
    pub fn status(&self, port: EvtchnPort) -> Result<EvtchnStatus, EvtchnError> {
        let mut arg = EvtchnStatus {
            dom: DOMID_SELF,
            pad: 0,
            port,
            status: 0,
            vcpu: 0,
            u: [0; 8],
        };
        self.ops
            .status(&mut arg)
            .map_err(hypercall(EVTCHNOP_STATUS))?;
        Ok(arg)
    }

    /// Notifies the remote end of `port`.
    pub fn send(&self, port: EvtchnPort) -> Result<(), EvtchnError> {
        self.check_port(port)?;
        self.ops
            .send(&EvtchnSend { port })
            .map_err(hypercall(EVTCHNOP_SEND))
    }

    /// Closes `port`: masks it, closes it in Xen, then drops its handler and pending state.
    pub fn close(&self, port: EvtchnPort) -> Result<(), EvtchnError> {
        self.check_port(port)?;
        self.mask(port)?;
        self.ops
            .close(&EvtchnClose { port })
            .map_err(hypercall(EVTCHNOP_CLOSE))?;
        // A port bound without a handler (or already unregistered) is fine to close.
        let _ = self.dispatch.unregister(port);
        self.clear_pending(port)
    }

    /// Stops `port` from raising upcalls (events still mark it pending).
    pub fn mask(&self, port: EvtchnPort) -> Result<(), EvtchnError> {
        self.check_port(port)?;
        match self.abi {
            Abi::Fifo => {
                self.fifo.fetch_or_word(port, EventWordFlags::MASKED.bits());
            }
            Abi::TwoLevel => {
                let (word, bit) = split_2l(port);
                self.shared.fetch_or(L2Bitmap::Mask, word, bit);
            }
        }
        Ok(())
    }

    /// Lets `port` raise upcalls again; an event that arrived while it was masked is raised now.
    ///
    /// A pending port is unmasked by `EVTCHNOP_unmask`, which re-raises it in Xen; otherwise the
    /// mask bit is cleared in place, re-checked for an event that raced with it, and handed to
    /// the hypercall if one did. FIFO words Xen is updating (`BUSY`) also go through the
    /// hypercall.
    ///
    /// Any CPU, IRQL <= DIRQL, concurrently with scans and other unmasks: it changes only the
    /// port's own mask bit (an atomic AND, or a compare-exchange of the FIFO word) and a counter.
    pub fn unmask(&self, port: EvtchnPort) -> Result<(), EvtchnError> {
        self.check_port(port)?;
        let needs_hypercall = match self.abi {
            Abi::Fifo => !self.unmask_fifo_locally(port),
            Abi::TwoLevel => {
                let (word, bit) = split_2l(port);
                if self.shared.load(L2Bitmap::Pending, word) & bit != 0 {
                    true
                } else {
                    // Xen sets the pending bit and then tests the mask; we clear the mask and
                    // then test the pending bit (a store-load pattern on two words). The fence
                    // keeps our load after our clear whatever ordering the shell's accessors
                    // use (Xen's side is a locked instruction, itself a full barrier), so at
                    // least one of us sees the other: either Xen raises the upcall or we hand
                    // the port to the hypercall.
                    self.shared.fetch_and(L2Bitmap::Mask, word, !bit);
                    fence(Ordering::SeqCst);
                    self.shared.load(L2Bitmap::Pending, word) & bit != 0
                }
            }
        };
        if needs_hypercall {
            self.stats.add(&EvtchnStats {
                unmask_hypercalls: 1,
                ..EvtchnStats::default()
            });
            self.ops
                .unmask(&EvtchnUnmask { port })
                .map_err(hypercall(EVTCHNOP_UNMASK))?;
        }
        Ok(())
    }

    /// Clears `MASKED` unless the event is pending or busy; false if the hypercall is needed.
    fn unmask_fifo_locally(&self, port: EvtchnPort) -> bool {
        let masked = EventWordFlags::MASKED.bits();
        let blocking = (EventWordFlags::PENDING | EventWordFlags::BUSY).bits();
        let mut word = self.fifo.load_word(port);
        for _ in 0..UNMASK_ATTEMPTS {
            if word & masked == 0 {
                return true;
            }
            if word & blocking != 0 {
                return false;
            }
            match self.fifo.compare_exchange_word(port, word, word & !masked) {
                Ok(_) => return true,
                Err(actual) => word = actual,
            }
        }
        false
    }

    /// Clears the pending state of `port`.
    pub fn clear_pending(&self, port: EvtchnPort) -> Result<(), EvtchnError> {
        self.check_port(port)?;
        match self.abi {
            Abi::Fifo => {
                self.fifo
                    .fetch_and_word(port, !EventWordFlags::PENDING.bits());
            }
            Abi::TwoLevel => {
                let (word, bit) = split_2l(port);
                self.shared.fetch_and(L2Bitmap::Pending, word, !bit);
            }
        }
        Ok(())
    }

    /// Whether `port` is pending.
    pub fn is_pending(&self, port: EvtchnPort) -> Result<bool, EvtchnError> {
        self.check_port(port)?;
        Ok(match self.abi {
            Abi::Fifo => self.fifo.load_word(port) & EventWordFlags::PENDING.bits() != 0,
            Abi::TwoLevel => {
                let (word, bit) = split_2l(port);
                self.shared.load(L2Bitmap::Pending, word) & bit != 0
            }
        })
    }

    /// Whether `port` is masked.
    pub fn is_masked(&self, port: EvtchnPort) -> Result<bool, EvtchnError> {
        self.check_port(port)?;
        Ok(match self.abi {
            Abi::Fifo => self.fifo.load_word(port) & EventWordFlags::MASKED.bits() != 0,
            Abi::TwoLevel => {
                let (word, bit) = split_2l(port);
                self.shared.load(L2Bitmap::Mask, word) & bit != 0
            }
        })
    }

    /// The upcall scan for `vcpu`: reports at most `budget` fired ports to `sink` as
    /// `(port, handler)`, clearing their pending state first, and masks fired ports without a
    /// handler. Clears the vCPU's `evtchn_upcall_pending` before looking, so events raised during
    /// the scan raise a new upcall. When [`ScanOutcome::more`] is set, call again (the scan
    /// resumes where it stopped).
    ///
    /// DIRQL or DISPATCH_LEVEL, on any CPU; scans of different vCPUs run concurrently without
    /// sharing a lock. A second scan of `vcpu` while one runs is refused with
    /// [`EvtchnError::ScanInProgress`] (nothing is taken from Xen).
    pub fn scan(
        &self,
        vcpu: u32,
        budget: u32,
        mut sink: impl FnMut(EvtchnPort, HandlerId),
    ) -> Result<ScanOutcome, EvtchnError> {
        self.check_vcpu(vcpu)?;
        let slot = &self.slots[vcpu as usize];
        if !slot.claim() {
            return Err(EvtchnError::ScanInProgress { vcpu });
        }
        self.shared.clear_upcall_pending(vcpu);
        let mut counted = EvtchnStats::default();
        let outcome = match self.abi {
            Abi::Fifo => {
                let mut queues = slot.queues();
                let ready_before = queues.ready;
                let outcome = fifo::scan(
                    &mut queues,
                    &self.fifo,
                    self.abi_limit(),
                    &self.dispatch,
                    vcpu,
                    budget,
                    &mut counted,
                    &mut sink,
                );
                slot.set_queues(&queues, ready_before);
                outcome
            }
            Abi::TwoLevel => {
                let mut cursor = slot.cursor();
                let outcome = two_level::scan(
                    &mut cursor,
                    &self.shared,
                    &self.dispatch,
                    vcpu,
                    budget,
                    &mut counted,
                    &mut sink,
                );
                slot.set_cursor(&cursor);
                outcome
            }
        };
        // Counted in the vCPU's own slot (no cache line shared with other vCPUs' scans).
        slot.counters.add(&counted);
        slot.release();
        Ok(outcome)
    }
}

/// The word index and bit of a 2-level port.
fn split_2l(port: EvtchnPort) -> (usize, u64) {
    ((port / 64) as usize, 1u64 << (port % 64))
}
