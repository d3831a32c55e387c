//! Event channels (`event_channel.h`, virtual IRQ numbers from `xen.h`): the `EVTCHNOP_*` sub-ops
//! of [`crate::hypercall::HYPERVISOR_EVENT_CHANNEL_OP`], their argument structures, and the
//! memory layouts of the 2-level and FIFO event ABIs.
//!
//! # 2-level ABI
//! The default. Pending and mask bits live in the shared-info page
//! ([`crate::shared_info::SharedInfo`]'s `evtchn_pending` / `evtchn_mask`, one bit per port); a
//! per-vCPU selector word (`evtchn_pending_sel`) has one bit per pending word. With 64-bit words
//! there are [`EVTCHN_2L_NR_CHANNELS`] ports.
//!
//! # FIFO ABI
//! Set up per vCPU with [`EVTCHNOP_INIT_CONTROL`]: each vCPU has a control block
//! ([`EvtchnFifoControlBlock`]) with one queue head per priority, and the domain has an array of
//! 32-bit event words, one per port, in pages added with [`EVTCHNOP_EXPAND_ARRAY`]. An event word
//! holds the [`EventWordFlags`] bits and, in its low [`EVTCHN_FIFO_LINK_BITS`] bits, the next port
//! in the queue.

use crate::types::{DomId, EvtchnPort};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Connects a local port to a port another domain allocated with alloc-unbound
/// (`EVTCHNOP_bind_interdomain`, argument [`EvtchnBindInterdomain`]).
#[doc(alias = "EVTCHNOP_bind_interdomain")]
pub const EVTCHNOP_BIND_INTERDOMAIN: u32 = 0;

/// Binds a virtual IRQ (`VIRQ_*`) of a vCPU to a new port (`EVTCHNOP_bind_virq`, argument
/// [`EvtchnBindVirq`]).
#[doc(alias = "EVTCHNOP_bind_virq")]
pub const EVTCHNOP_BIND_VIRQ: u32 = 1;

/// Binds a physical IRQ to a new port (`EVTCHNOP_bind_pirq`, argument [`EvtchnBindPirq`]).
#[doc(alias = "EVTCHNOP_bind_pirq")]
pub const EVTCHNOP_BIND_PIRQ: u32 = 2;

/// Closes a port (`EVTCHNOP_close`, argument [`EvtchnClose`]).
#[doc(alias = "EVTCHNOP_close")]
pub const EVTCHNOP_CLOSE: u32 = 3;

/// Notifies the remote end of a port (`EVTCHNOP_send`, argument [`EvtchnSend`]).
#[doc(alias = "EVTCHNOP_send")]
pub const EVTCHNOP_SEND: u32 = 4;

/// Reads the state of a port (`EVTCHNOP_status`, argument [`EvtchnStatus`]).
#[doc(alias = "EVTCHNOP_status")]
pub const EVTCHNOP_STATUS: u32 = 5;

/// Allocates a port that a given remote domain may bind to (`EVTCHNOP_alloc_unbound`, argument
/// [`EvtchnAllocUnbound`]).
#[doc(alias = "EVTCHNOP_alloc_unbound")]
pub const EVTCHNOP_ALLOC_UNBOUND: u32 = 6;

/// Allocates a port for inter-vCPU notifications (`EVTCHNOP_bind_ipi`, argument
/// [`EvtchnBindIpi`]).
#[doc(alias = "EVTCHNOP_bind_ipi")]
pub const EVTCHNOP_BIND_IPI: u32 = 7;

/// Changes the vCPU a port notifies (`EVTCHNOP_bind_vcpu`, argument [`EvtchnBindVcpu`]).
#[doc(alias = "EVTCHNOP_bind_vcpu")]
pub const EVTCHNOP_BIND_VCPU: u32 = 8;

/// Unmasks a port and re-raises it if pending (`EVTCHNOP_unmask`, argument [`EvtchnUnmask`]).
#[doc(alias = "EVTCHNOP_unmask")]
pub const EVTCHNOP_UNMASK: u32 = 9;

/// Closes all of a domain's ports and returns to the 2-level ABI (`EVTCHNOP_reset`, argument
/// [`EvtchnReset`]).
#[doc(alias = "EVTCHNOP_reset")]
pub const EVTCHNOP_RESET: u32 = 10;

/// Switches to the FIFO ABI by registering a vCPU's control block (`EVTCHNOP_init_control`,
/// argument [`EvtchnInitControl`]). Events pending at that moment are lost, so it is done before
/// any port is bound.
#[doc(alias = "EVTCHNOP_init_control")]
pub const EVTCHNOP_INIT_CONTROL: u32 = 11;

/// Adds a page of event words to the FIFO event array (`EVTCHNOP_expand_array`, argument
/// [`EvtchnExpandArray`]).
#[doc(alias = "EVTCHNOP_expand_array")]
pub const EVTCHNOP_EXPAND_ARRAY: u32 = 12;

/// Sets a port's FIFO priority (`EVTCHNOP_set_priority`, argument [`EvtchnSetPriority`]).
#[doc(alias = "EVTCHNOP_set_priority")]
pub const EVTCHNOP_SET_PRIORITY: u32 = 13;

/// Arguments of [`EVTCHNOP_ALLOC_UNBOUND`] (`struct evtchn_alloc_unbound`).
#[doc(alias = "evtchn_alloc_unbound")]
#[doc(alias = "evtchn_alloc_unbound_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct EvtchnAllocUnbound {
    /// The allocating domain, [`crate::types::DOMID_SELF`].
    pub dom: DomId,
    /// The domain allowed to bind to the port.
    pub remote_dom: DomId,
    /// On return, the allocated port.
    pub port: EvtchnPort,
}

/// Arguments of [`EVTCHNOP_BIND_INTERDOMAIN`] (`struct evtchn_bind_interdomain`).
#[doc(alias = "evtchn_bind_interdomain")]
#[doc(alias = "evtchn_bind_interdomain_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct EvtchnBindInterdomain {
    /// The remote domain.
    pub remote_dom: DomId,
    /// Padding to the alignment of `remote_port` (implicit in C).
    pub pad: u16,
    /// The remote domain's unbound port.
    pub remote_port: EvtchnPort,
    /// On return, the local port now connected to it.
    pub local_port: EvtchnPort,
}

/// Arguments of [`EVTCHNOP_BIND_VIRQ`] (`struct evtchn_bind_virq`).
#[doc(alias = "evtchn_bind_virq")]
#[doc(alias = "evtchn_bind_virq_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct EvtchnBindVirq {
    /// The virtual IRQ, `VIRQ_*`.
    pub virq: u32,
    /// The vCPU to notify (per-vCPU VIRQs are bound once per vCPU).
    pub vcpu: u32,
    /// On return, the bound port.
    pub port: EvtchnPort,
}

/// [`EvtchnBindPirq::flags`]: the PIRQ may be shared with other domains
/// (`BIND_PIRQ__WILL_SHARE`).
#[doc(alias = "BIND_PIRQ__WILL_SHARE")]
pub const BIND_PIRQ_WILL_SHARE: u32 = 1;

/// Arguments of [`EVTCHNOP_BIND_PIRQ`] (`struct evtchn_bind_pirq`).
#[doc(alias = "evtchn_bind_pirq")]
#[doc(alias = "evtchn_bind_pirq_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct EvtchnBindPirq {
    /// The physical IRQ.
    pub pirq: u32,
    /// `BIND_PIRQ_*` flags.
    pub flags: u32,
    /// On return, the bound port.
    pub port: EvtchnPort,
}

/// Arguments of [`EVTCHNOP_BIND_IPI`] (`struct evtchn_bind_ipi`).
#[doc(alias = "evtchn_bind_ipi")]
#[doc(alias = "evtchn_bind_ipi_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct EvtchnBindIpi {
    /// The vCPU the port notifies (fixed for the port's lifetime).
    pub vcpu: u32,
    /// On return, the allocated port.
    pub port: EvtchnPort,
}

/// Arguments of [`EVTCHNOP_CLOSE`] (`struct evtchn_close`).
#[doc(alias = "evtchn_close")]
#[doc(alias = "evtchn_close_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct EvtchnClose {
    /// The local port to close.
    pub port: EvtchnPort,
}

/// Arguments of [`EVTCHNOP_SEND`] (`struct evtchn_send`).
#[doc(alias = "evtchn_send")]
#[doc(alias = "evtchn_send_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct EvtchnSend {
    /// The local port whose remote end is notified.
    pub port: EvtchnPort,
}

/// [`EvtchnStatus::status`]: the port is not in use (`EVTCHNSTAT_closed`).
#[doc(alias = "EVTCHNSTAT_closed")]
pub const EVTCHNSTAT_CLOSED: u32 = 0;

/// [`EvtchnStatus::status`]: the port waits for a remote domain to bind
/// (`EVTCHNSTAT_unbound`); [`EvtchnStatus::unbound_dom`] names that domain.
#[doc(alias = "EVTCHNSTAT_unbound")]
pub const EVTCHNSTAT_UNBOUND: u32 = 1;

/// [`EvtchnStatus::status`]: the port is connected to a remote domain
/// (`EVTCHNSTAT_interdomain`); see [`EvtchnStatus::interdomain`].
#[doc(alias = "EVTCHNSTAT_interdomain")]
pub const EVTCHNSTAT_INTERDOMAIN: u32 = 2;

/// [`EvtchnStatus::status`]: the port is bound to a physical IRQ (`EVTCHNSTAT_pirq`).
#[doc(alias = "EVTCHNSTAT_pirq")]
pub const EVTCHNSTAT_PIRQ: u32 = 3;

/// [`EvtchnStatus::status`]: the port is bound to a virtual IRQ (`EVTCHNSTAT_virq`).
#[doc(alias = "EVTCHNSTAT_virq")]
pub const EVTCHNSTAT_VIRQ: u32 = 4;

/// [`EvtchnStatus::status`]: the port is an inter-vCPU channel (`EVTCHNSTAT_ipi`).
#[doc(alias = "EVTCHNSTAT_ipi")]
pub const EVTCHNSTAT_IPI: u32 = 5;

/// Arguments of [`EVTCHNOP_STATUS`] (`struct evtchn_status`).
///
/// The C structure ends in a union `u` whose member depends on `status`. It is kept here as its
/// 8 raw bytes, read through the accessors [`unbound_dom`](Self::unbound_dom),
/// [`interdomain`](Self::interdomain), [`pirq`](Self::pirq) and [`virq`](Self::virq); the
/// largest member has its own type, [`EvtchnStatusInterdomain`].
#[doc(alias = "evtchn_status")]
#[doc(alias = "evtchn_status_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct EvtchnStatus {
    /// The domain owning the port, [`crate::types::DOMID_SELF`] for the caller.
    pub dom: DomId,
    /// Padding to the alignment of `port` (implicit in C).
    pub pad: u16,
    /// The port queried.
    pub port: EvtchnPort,
    /// On return, `EVTCHNSTAT_*`.
    pub status: u32,
    /// On return, the vCPU the port notifies.
    pub vcpu: u32,
    /// On return, the union `u`, interpreted according to `status`.
    pub u: [u8; 8],
}

/// The `u.interdomain` member of [`EvtchnStatus`], valid when the status is
/// [`EVTCHNSTAT_INTERDOMAIN`].
#[doc(alias = "evtchn_status.u.interdomain")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct EvtchnStatusInterdomain {
    /// The remote domain.
    pub dom: DomId,
    /// Padding to the alignment of `port` (implicit in C).
    pub pad: u16,
    /// The remote port.
    pub port: EvtchnPort,
}

impl EvtchnStatus {
    /// `u.unbound.dom`: the domain allowed to bind, valid for [`EVTCHNSTAT_UNBOUND`].
    pub const fn unbound_dom(&self) -> DomId {
        DomId::from_ne_bytes([self.u[0], self.u[1]])
    }

    /// `u.interdomain`: the remote end, valid for [`EVTCHNSTAT_INTERDOMAIN`].
    pub fn interdomain(&self) -> EvtchnStatusInterdomain {
        zerocopy::transmute!(self.u)
    }

    /// `u.pirq`: the physical IRQ, valid for [`EVTCHNSTAT_PIRQ`].
    pub const fn pirq(&self) -> u32 {
        u32::from_ne_bytes([self.u[0], self.u[1], self.u[2], self.u[3]])
    }

    /// `u.virq`: the virtual IRQ, valid for [`EVTCHNSTAT_VIRQ`].
    pub const fn virq(&self) -> u32 {
        self.pirq()
    }
}

/// Arguments of [`EVTCHNOP_BIND_VCPU`] (`struct evtchn_bind_vcpu`). IPI and per-vCPU VIRQ ports
/// cannot be moved; other ports notify vCPU 0 until moved.
#[doc(alias = "evtchn_bind_vcpu")]
#[doc(alias = "evtchn_bind_vcpu_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct EvtchnBindVcpu {
    /// The local port.
    pub port: EvtchnPort,
    /// The vCPU to notify from now on.
    pub vcpu: u32,
}

/// Arguments of [`EVTCHNOP_UNMASK`] (`struct evtchn_unmask`).
#[doc(alias = "evtchn_unmask")]
#[doc(alias = "evtchn_unmask_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct EvtchnUnmask {
    /// The local port to unmask.
    pub port: EvtchnPort,
}

/// Arguments of [`EVTCHNOP_RESET`] (`struct evtchn_reset`).
#[doc(alias = "evtchn_reset")]
#[doc(alias = "evtchn_reset_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct EvtchnReset {
    /// The domain, [`crate::types::DOMID_SELF`].
    pub dom: DomId,
}

/// Arguments of [`EVTCHNOP_INIT_CONTROL`] (`struct evtchn_init_control`).
#[doc(alias = "evtchn_init_control")]
#[doc(alias = "evtchn_init_control_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct EvtchnInitControl {
    /// The GFN of the page holding the vCPU's control block.
    pub control_gfn: u64,
    /// Byte offset of the control block within that page (8-byte aligned, and the block must
    /// not cross the page end).
    pub offset: u32,
    /// The vCPU whose control block this is.
    pub vcpu: u32,
    /// On return, the number of link bits in an event word ([`EVTCHN_FIFO_LINK_BITS`]).
    pub link_bits: u8,
    /// Reserved (C `_pad`).
    pub pad: [u8; 7],
}

/// Arguments of [`EVTCHNOP_EXPAND_ARRAY`] (`struct evtchn_expand_array`).
#[doc(alias = "evtchn_expand_array")]
#[doc(alias = "evtchn_expand_array_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct EvtchnExpandArray {
    /// The GFN of the next page of event words ([`EVTCHN_FIFO_EVENT_WORDS_PER_PAGE`] ports).
    pub array_gfn: u64,
}

/// Arguments of [`EVTCHNOP_SET_PRIORITY`] (`struct evtchn_set_priority`).
#[doc(alias = "evtchn_set_priority")]
#[doc(alias = "evtchn_set_priority_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct EvtchnSetPriority {
    /// The local port.
    pub port: EvtchnPort,
    /// The priority, [`EVTCHN_FIFO_PRIORITY_MAX`] (0, highest) to [`EVTCHN_FIFO_PRIORITY_MIN`].
    pub priority: u32,
}

/// Ports of the 2-level ABI in the x86_64 ABI: 64 selector bits × 64 bits per pending word
/// (`EVTCHN_2L_NR_CHANNELS`).
pub const EVTCHN_2L_NR_CHANNELS: u32 = 64 * 64;

/// The highest FIFO priority (`EVTCHN_FIFO_PRIORITY_MAX`).
pub const EVTCHN_FIFO_PRIORITY_MAX: u32 = 0;

/// The priority a port starts with (`EVTCHN_FIFO_PRIORITY_DEFAULT`).
pub const EVTCHN_FIFO_PRIORITY_DEFAULT: u32 = 7;

/// The lowest FIFO priority (`EVTCHN_FIFO_PRIORITY_MIN`).
pub const EVTCHN_FIFO_PRIORITY_MIN: u32 = 15;

/// Queues per vCPU, one per priority (`EVTCHN_FIFO_MAX_QUEUES`).
pub const EVTCHN_FIFO_MAX_QUEUES: usize = EVTCHN_FIFO_PRIORITY_MIN as usize + 1;

/// A FIFO event word (`event_word_t`): [`EventWordFlags`] in bits 31–28, the next port of the
/// queue in the low [`EVTCHN_FIFO_LINK_BITS`] bits.
#[doc(alias = "event_word_t")]
pub type EventWord = u32;

/// Bit number of the pending bit in an event word (`EVTCHN_FIFO_PENDING`).
pub const EVTCHN_FIFO_PENDING: u32 = 31;

/// Bit number of the masked bit in an event word (`EVTCHN_FIFO_MASKED`).
pub const EVTCHN_FIFO_MASKED: u32 = 30;

/// Bit number of the linked bit (the event is on a queue) in an event word
/// (`EVTCHN_FIFO_LINKED`).
pub const EVTCHN_FIFO_LINKED: u32 = 29;

/// Bit number of the busy bit (Xen is updating the link) in an event word (`EVTCHN_FIFO_BUSY`).
pub const EVTCHN_FIFO_BUSY: u32 = 28;

/// Width of the link field of an event word (`EVTCHN_FIFO_LINK_BITS`).
pub const EVTCHN_FIFO_LINK_BITS: u32 = 17;

/// The link field of an event word (`EVTCHN_FIFO_LINK_MASK`).
pub const EVTCHN_FIFO_LINK_MASK: u32 = (1 << EVTCHN_FIFO_LINK_BITS) - 1;

/// Ports of the FIFO ABI (`EVTCHN_FIFO_NR_CHANNELS`).
pub const EVTCHN_FIFO_NR_CHANNELS: u32 = 1 << EVTCHN_FIFO_LINK_BITS;

/// Event words in one 4 KiB page of the event array.
pub const EVTCHN_FIFO_EVENT_WORDS_PER_PAGE: u32 = 4096 / size_of::<EventWord>() as u32;

bitflags::bitflags! {
    /// The flag bits of a FIFO event word ([`EventWord`]); the remaining low bits are the link
    /// ([`EVTCHN_FIFO_LINK_MASK`]).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct EventWordFlags: u32 {
        /// The event is pending (`1 << EVTCHN_FIFO_PENDING`).
        const PENDING = 1 << EVTCHN_FIFO_PENDING;
        /// The event is masked (`1 << EVTCHN_FIFO_MASKED`).
        const MASKED = 1 << EVTCHN_FIFO_MASKED;
        /// The event is on a queue (`1 << EVTCHN_FIFO_LINKED`).
        const LINKED = 1 << EVTCHN_FIFO_LINKED;
        /// Xen is changing the event's link (`1 << EVTCHN_FIFO_BUSY`).
        const BUSY = 1 << EVTCHN_FIFO_BUSY;
    }
}

/// A vCPU's FIFO control block (`struct evtchn_fifo_control_block`).
#[doc(alias = "evtchn_fifo_control_block")]
#[doc(alias = "evtchn_fifo_control_block_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct EvtchnFifoControlBlock {
    /// Bit `q` is set while queue `q` may be non-empty.
    pub ready: u32,
    /// Reserved (C `_rsvd`).
    pub rsvd: u32,
    /// The port at the head of each priority's queue, 0 for empty.
    pub head: [EvtchnPort; EVTCHN_FIFO_MAX_QUEUES],
}

/// Per-vCPU timer tick or the timeout of a one-shot timer (`VIRQ_TIMER`).
pub const VIRQ_TIMER: u32 = 0;

/// Per-vCPU request to dump debug information (`VIRQ_DEBUG`).
pub const VIRQ_DEBUG: u32 = 1;

/// Bytes received on the emergency console, dom0 only (`VIRQ_CONSOLE`).
pub const VIRQ_CONSOLE: u32 = 2;

/// An exceptional event for some domain, dom0 only (`VIRQ_DOM_EXC`).
pub const VIRQ_DOM_EXC: u32 = 3;

/// Trace buffer records available, dom0 only (`VIRQ_TBUF`).
pub const VIRQ_TBUF: u32 = 4;

/// A domain paused for debugging, dom0 only (`VIRQ_DEBUGGER`).
pub const VIRQ_DEBUGGER: u32 = 6;

/// Per-vCPU profiling sample available (`VIRQ_XENOPROF`).
pub const VIRQ_XENOPROF: u32 = 7;

/// Bytes received on the console ring, dom0 only (`VIRQ_CON_RING`).
pub const VIRQ_CON_RING: u32 = 8;

/// A physical CPU changed state, dom0 only (`VIRQ_PCPU_STATE`).
pub const VIRQ_PCPU_STATE: u32 = 9;

/// A memory event occurred, dom0 only (`VIRQ_MEM_EVENT`).
pub const VIRQ_MEM_EVENT: u32 = 10;

/// An Argo message notification (`VIRQ_ARGO`).
pub const VIRQ_ARGO: u32 = 11;

/// Xen's heap is low on memory, dom0 only (`VIRQ_ENOMEM`).
pub const VIRQ_ENOMEM: u32 = 12;

/// Per-vCPU PMU counter interrupt (`VIRQ_XENPMU`).
pub const VIRQ_XENPMU: u32 = 13;

/// The number of virtual IRQs, including the 8 architecture-specific ones from 16 (`NR_VIRQS`).
pub const NR_VIRQS: u32 = 24;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_union_accessors_read_the_right_bytes() {
        let mut status = EvtchnStatus {
            dom: 0x7ff0,
            pad: 0,
            port: 5,
            status: EVTCHNSTAT_INTERDOMAIN,
            vcpu: 0,
            u: [0; 8],
        };
        status.u[..2].copy_from_slice(&3u16.to_ne_bytes());
        status.u[4..].copy_from_slice(&42u32.to_ne_bytes());
        assert_eq!(status.unbound_dom(), 3);
        assert_eq!(
            status.interdomain(),
            EvtchnStatusInterdomain {
                dom: 3,
                pad: 0,
                port: 42
            }
        );
        status.u[..4].copy_from_slice(&17u32.to_ne_bytes());
        assert_eq!(status.pirq(), 17);
        assert_eq!(status.virq(), 17);
    }

    #[test]
    fn fifo_event_word_fields_do_not_overlap() {
        assert_eq!(EventWordFlags::all().bits() & EVTCHN_FIFO_LINK_MASK, 0);
        assert_eq!(EVTCHN_FIFO_EVENT_WORDS_PER_PAGE, 1024);
        assert_eq!(
            EVTCHN_FIFO_NR_CHANNELS / EVTCHN_FIFO_EVENT_WORDS_PER_PAGE,
            128
        );
    }
}
