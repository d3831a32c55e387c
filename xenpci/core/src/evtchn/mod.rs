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

pub mod dispatch;
pub mod fifo;
pub mod ops;
pub mod shared;
pub mod two_level;

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
/// vCPUs.
#[derive(Debug)]
pub struct EventChannels<O, S, F, const PORTS: usize, const VCPUS: usize> {
    ops: O,
    shared: S,
    fifo: F,
    abi: Abi,
    vcpus: u32,
    array_pages: u32,
    dispatch: DispatchTable<PORTS>,
    cursors: [two_level::Cursor; VCPUS],
    queues: [fifo::Queues; VCPUS],
    stats: EvtchnStats,
}

impl<O, S, F, const PORTS: usize, const VCPUS: usize> EventChannels<O, S, F, PORTS, VCPUS>
where
    O: EventChannelOps,
    S: SharedInfoEvents,
    F: FifoShared,
{
    /// Sets up event delivery: the FIFO ABI if preferred and available, else the 2-level ABI
    /// with every port masked. Call before binding any port.
    pub fn new(ops: O, shared: S, fifo: F, config: Config) -> Result<Self, EvtchnError> {
        if config.vcpus == 0 || config.vcpus as usize > VCPUS {
            return Err(EvtchnError::InvalidVcpu { vcpu: config.vcpus });
        }
        let mut this = EventChannels {
            ops,
            shared,
            fifo,
            abi: Abi::TwoLevel,
            vcpus: config.vcpus,
            array_pages: 0,
            dispatch: DispatchTable::new(),
            cursors: [two_level::Cursor::default(); VCPUS],
            queues: [fifo::Queues::default(); VCPUS],
            stats: EvtchnStats::default(),
        };
        if config.prefer_fifo && this.init_fifo()? {
            this.abi = Abi::Fifo;
        } else {
            for word in 0..EVTCHN_2L_WORDS {
                this.shared.fetch_or(L2Bitmap::Mask, word, u64::MAX);
            }
        }
        Ok(this)
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
    /// cursor and event-array page, then runs the start-up of [`new`](Self::new) again (FIFO if
    /// `prefer_fifo` and still available, else 2-level with every port masked and no stale
    /// pending bit). The shell is asked for control blocks and event-array pages again, from
    /// page 0. Ports the bus needs (xenstore, VIRQs) must be bound or attached again afterwards.
    pub fn reinit(&mut self, prefer_fifo: bool) -> Result<Abi, EvtchnError> {
        self.dispatch = DispatchTable::new();
        self.cursors = [two_level::Cursor::default(); VCPUS];
        self.queues = [fifo::Queues::default(); VCPUS];
        self.array_pages = 0;
        self.abi = Abi::TwoLevel;
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

    /// The counters.
    pub fn stats(&self) -> EvtchnStats {
        self.stats
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
        match self.abi {
            Abi::Fifo => self.array_pages * EVTCHN_FIFO_EVENT_WORDS_PER_PAGE,
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

    /// FIFO: adds event-array pages until `port` has an event word.
    fn ensure_array(&mut self, port: EvtchnPort) -> Result<(), EvtchnError> {
        if self.abi != Abi::Fifo {
            return Ok(());
        }
        if port >= EVTCHN_FIFO_NR_CHANNELS {
            return Err(EvtchnError::PortOutOfRange {
                port,
                capacity: EVTCHN_FIFO_NR_CHANNELS,
            });
        }
        while port >= self.abi_limit() {
            let page = self.array_pages;
            let gfn = self
                .fifo
                .prepare_array_page(page)
                .ok_or(EvtchnError::NoArrayPage { page })?;
            self.ops
                .expand_array(&EvtchnExpandArray { array_gfn: gfn })
                .map_err(hypercall(EVTCHNOP_EXPAND_ARRAY))?;
            self.array_pages += 1;
            self.stats.array_pages += 1;
        }
        Ok(())
    }

    /// Takes a port Xen just bound into use: makes sure the ABI can address it, registers the
    /// handler and unmasks it. On failure the port is closed again.
    fn adopt(
        &mut self,
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
        &mut self,
        port: EvtchnPort,
        handler: HandlerId,
        vcpu: u32,
    ) -> Result<(), EvtchnError> {
        self.check_vcpu(vcpu)?;
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
        &mut self,
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
        &mut self,
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
        &mut self,
        virq: u32,
        vcpu: u32,
        handler: HandlerId,
    ) -> Result<EvtchnPort, EvtchnError> {
        self.check_vcpu(vcpu)?;
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

    /// Makes `port` notify `vcpu`.
    pub fn bind_vcpu(&mut self, port: EvtchnPort, vcpu: u32) -> Result<(), EvtchnError> {
        self.check_vcpu(vcpu)?;
        self.check_port(port)?;
        self.ops
            .bind_vcpu(&EvtchnBindVcpu { port, vcpu })
            .map_err(hypercall(EVTCHNOP_BIND_VCPU))?;
        self.dispatch.set_vcpu(port, vcpu)
    }

    /// Sets the FIFO priority of `port` (0 highest, 15 lowest).
    pub fn set_priority(&mut self, port: EvtchnPort, priority: u32) -> Result<(), EvtchnError> {
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
    pub fn close(&mut self, port: EvtchnPort) -> Result<(), EvtchnError> {
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
    pub fn unmask(&mut self, port: EvtchnPort) -> Result<(), EvtchnError> {
        self.check_port(port)?;
        let needs_hypercall = match self.abi {
            Abi::Fifo => !self.unmask_fifo_locally(port),
            Abi::TwoLevel => {
                let (word, bit) = split_2l(port);
                if self.shared.load(L2Bitmap::Pending, word) & bit != 0 {
                    true
                } else {
                    self.shared.fetch_and(L2Bitmap::Mask, word, !bit);
                    self.shared.load(L2Bitmap::Pending, word) & bit != 0
                }
            }
        };
        if needs_hypercall {
            self.stats.unmask_hypercalls += 1;
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
    pub fn scan(
        &mut self,
        vcpu: u32,
        budget: u32,
        mut sink: impl FnMut(EvtchnPort, HandlerId),
    ) -> Result<ScanOutcome, EvtchnError> {
        self.check_vcpu(vcpu)?;
        self.shared.clear_upcall_pending(vcpu);
        let index = vcpu as usize;
        Ok(match self.abi {
            Abi::Fifo => fifo::scan(
                &mut self.queues[index],
                &self.fifo,
                self.array_pages * EVTCHN_FIFO_EVENT_WORDS_PER_PAGE,
                &self.dispatch,
                vcpu,
                budget,
                &mut self.stats,
                &mut sink,
            ),
            Abi::TwoLevel => two_level::scan(
                &mut self.cursors[index],
                &self.shared,
                &self.dispatch,
                vcpu,
                budget,
                &mut self.stats,
                &mut sink,
            ),
        })
    }
}

/// The word index and bit of a 2-level port.
fn split_2l(port: EvtchnPort) -> (usize, u64) {
    ((port / 64) as usize, 1u64 << (port % 64))
}
