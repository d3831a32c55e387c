//! HVM operations and parameters (`hvm/hvm_op.h`, `hvm/params.h`).
//!
//! An HVM guest learns where its xenstore and console rings are, and tells Xen how to deliver
//! event-channel notifications, through the HVM parameters: [`HvmParam`] with
//! [`HVMOP_GET_PARAM`] / [`HVMOP_SET_PARAM`], sub-ops of [`crate::hypercall::HYPERVISOR_HVM_OP`].
//!
//! The PV-driver product numbers of `hvm/pvdrivers.h` are in [`crate::unplug`], next to the
//! unplug protocol that announces them.

use crate::types::DomId;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Sets an HVM parameter (`HVMOP_set_param`, argument [`HvmParam`]).
#[doc(alias = "HVMOP_set_param")]
pub const HVMOP_SET_PARAM: u32 = 0;

/// Reads an HVM parameter (`HVMOP_get_param`, argument [`HvmParam`]).
#[doc(alias = "HVMOP_get_param")]
pub const HVMOP_GET_PARAM: u32 = 1;

/// Flushes every vCPU's TLB; the argument must be NULL (`HVMOP_flush_tlbs`).
#[doc(alias = "HVMOP_flush_tlbs")]
pub const HVMOP_FLUSH_TLBS: u32 = 5;

/// Hints that a page-table root is about to be freed (`HVMOP_pagetable_dying`, argument
/// [`HvmPagetableDying`]).
#[doc(alias = "HVMOP_pagetable_dying")]
pub const HVMOP_PAGETABLE_DYING: u32 = 9;

/// Reads Xen's system time in nanoseconds since boot (`HVMOP_get_time`, argument
/// [`HvmGetTime`]).
#[doc(alias = "HVMOP_get_time")]
pub const HVMOP_GET_TIME: u32 = 10;

/// Sets a per-vCPU interrupt vector for event-channel upcalls, used in preference to the
/// domain-wide [`HVM_PARAM_CALLBACK_IRQ`] (`HVMOP_set_evtchn_upcall_vector`, argument
/// [`HvmEvtchnUpcallVector`]; x86 only).
#[doc(alias = "HVMOP_set_evtchn_upcall_vector")]
pub const HVMOP_SET_EVTCHN_UPCALL_VECTOR: u32 = 23;

/// Arguments of [`HVMOP_SET_PARAM`] and [`HVMOP_GET_PARAM`] (`struct xen_hvm_param`).
#[doc(alias = "xen_hvm_param")]
#[doc(alias = "xen_hvm_param_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct HvmParam {
    /// The domain, [`crate::types::DOMID_SELF`] for a guest's own parameters.
    pub domid: DomId,
    /// Reserved, zero.
    pub pad: u16,
    /// The parameter, `HVM_PARAM_*`.
    pub index: u32,
    /// The value written, or read on return.
    pub value: u64,
}

/// Arguments of [`HVMOP_SET_EVTCHN_UPCALL_VECTOR`] (`struct xen_hvm_evtchn_upcall_vector`).
#[doc(alias = "xen_hvm_evtchn_upcall_vector")]
#[doc(alias = "xen_hvm_evtchn_upcall_vector_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct HvmEvtchnUpcallVector {
    /// The vCPU (its Xen vCPU id).
    pub vcpu: u32,
    /// The interrupt vector Xen injects on that vCPU when an event is pending.
    pub vector: u8,
    /// Padding to the 4-byte alignment of the structure (implicit in C).
    pub pad: [u8; 3],
}

/// Arguments of [`HVMOP_PAGETABLE_DYING`] (`struct xen_hvm_pagetable_dying`).
#[doc(alias = "xen_hvm_pagetable_dying")]
#[doc(alias = "xen_hvm_pagetable_dying_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct HvmPagetableDying {
    /// The domain, [`crate::types::DOMID_SELF`].
    pub domid: DomId,
    /// Reserved, aligns `gpa`.
    pub pad: [u16; 3],
    /// Guest-physical address of the top-level page table about to be freed.
    pub gpa: u64,
}

/// Result of [`HVMOP_GET_TIME`] (`struct xen_hvm_get_time`).
#[doc(alias = "xen_hvm_get_time")]
#[doc(alias = "xen_hvm_get_time_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct HvmGetTime {
    /// Xen system time in nanoseconds since boot.
    pub now: u64,
}

/// How event-channel notifications for vCPU 0 are delivered (`HVM_PARAM_CALLBACK_IRQ`): 0 for not
/// at all, otherwise a value built with [`callback_via_gsi`], [`callback_via_pci_intx`] or
/// [`callback_via_vector`].
pub const HVM_PARAM_CALLBACK_IRQ: u32 = 0;

/// The guest-physical frame of the xenstore ring page (`HVM_PARAM_STORE_PFN`).
pub const HVM_PARAM_STORE_PFN: u32 = 1;

/// The event channel of the xenstore ring (`HVM_PARAM_STORE_EVTCHN`).
pub const HVM_PARAM_STORE_EVTCHN: u32 = 2;

/// The frame of the device model's synchronous ioreq page (`HVM_PARAM_IOREQ_PFN`).
pub const HVM_PARAM_IOREQ_PFN: u32 = 5;

/// The frame of the device model's buffered ioreq page (`HVM_PARAM_BUFIOREQ_PFN`).
pub const HVM_PARAM_BUFIOREQ_PFN: u32 = 6;

/// The Viridian (Hyper-V) enlightenments offered to the guest, a mask of `HVMPV_*` bits
/// (`HVM_PARAM_VIRIDIAN`; x86 only).
pub const HVM_PARAM_VIRIDIAN: u32 = 9;

/// How virtual timers treat missed ticks, `HVMPTM_*` (`HVM_PARAM_TIMER_MODE`).
pub const HVM_PARAM_TIMER_MODE: u32 = 10;

/// Whether the virtual HPET is enabled (`HVM_PARAM_HPET_ENABLED`).
pub const HVM_PARAM_HPET_ENABLED: u32 = 11;

/// The ACPI sleep state, S0 or S3 (`HVM_PARAM_ACPI_S_STATE`).
pub const HVM_PARAM_ACPI_S_STATE: u32 = 14;

/// Whether periodic virtual timers are aligned to reduce interrupts (`HVM_PARAM_VPT_ALIGN`).
pub const HVM_PARAM_VPT_ALIGN: u32 = 16;

/// The guest-physical frame of the PV console ring page (`HVM_PARAM_CONSOLE_PFN`).
pub const HVM_PARAM_CONSOLE_PFN: u32 = 17;

/// The event channel of the PV console ring (`HVM_PARAM_CONSOLE_EVTCHN`).
pub const HVM_PARAM_CONSOLE_EVTCHN: u32 = 18;

/// Which I/O ports the ACPI PM1a and timer blocks use: 0 for the old, 1 for QEMU's
/// (`HVM_PARAM_ACPI_IOPORTS_LOCATION`).
pub const HVM_PARAM_ACPI_IOPORTS_LOCATION: u32 = 19;

/// The `SHUTDOWN_*` action Xen takes on a triple fault (`HVM_PARAM_TRIPLE_FAULT_REASON`).
pub const HVM_PARAM_TRIPLE_FAULT_REASON: u32 = 31;

/// The guest-physical address of the VM generation id (`HVM_PARAM_VM_GENERATION_ID_ADDR`).
pub const HVM_PARAM_VM_GENERATION_ID_ADDR: u32 = 34;

/// The number of HVM parameters; valid indexes are below it (`HVM_NR_PARAMS`).
pub const HVM_NR_PARAMS: u32 = 39;

/// The bits of an [`HVM_PARAM_CALLBACK_IRQ`] value that hold the delivery type (63–56;
/// `HVM_PARAM_CALLBACK_IRQ_TYPE_MASK`).
pub const HVM_PARAM_CALLBACK_IRQ_TYPE_MASK: u64 = 0xff00_0000_0000_0000;

/// The shift of the delivery type within an [`HVM_PARAM_CALLBACK_IRQ`] value.
pub const HVM_PARAM_CALLBACK_TYPE_SHIFT: u32 = 56;

/// Callback type: bits 55–0 are a GSI (not 0, which would read as "disabled";
/// `HVM_PARAM_CALLBACK_TYPE_GSI`).
pub const HVM_PARAM_CALLBACK_TYPE_GSI: u64 = 0;

/// Callback type: bits 55–0 name a PCI INTx line, the platform device's
/// (`HVM_PARAM_CALLBACK_TYPE_PCI_INTX`).
pub const HVM_PARAM_CALLBACK_TYPE_PCI_INTX: u64 = 1;

/// Callback type: bits 7–0 are an interrupt vector injected directly, without an interrupt
/// controller; available when [`crate::features::XENFEAT_HVM_CALLBACK_VECTOR`] is set
/// (`HVM_PARAM_CALLBACK_TYPE_VECTOR`; x86 only).
pub const HVM_PARAM_CALLBACK_TYPE_VECTOR: u64 = 2;

/// An [`HVM_PARAM_CALLBACK_IRQ`] value delivering through GSI `gsi` (only bits 55–0 are kept).
pub const fn callback_via_gsi(gsi: u64) -> u64 {
    (HVM_PARAM_CALLBACK_TYPE_GSI << HVM_PARAM_CALLBACK_TYPE_SHIFT)
        | (gsi & !HVM_PARAM_CALLBACK_IRQ_TYPE_MASK)
}

/// An [`HVM_PARAM_CALLBACK_IRQ`] value delivering through PCI INTx pin `intx` (0 = INTA … 3 =
/// INTD) of the device at `segment:bus:devfn`: segment in bits 47–32, bus in 31–16, devfn in
/// 15–8, pin in 1–0.
pub const fn callback_via_pci_intx(segment: u16, bus: u8, devfn: u8, intx: u8) -> u64 {
    (HVM_PARAM_CALLBACK_TYPE_PCI_INTX << HVM_PARAM_CALLBACK_TYPE_SHIFT)
        | ((segment as u64) << 32)
        | ((bus as u64) << 16)
        | ((devfn as u64) << 8)
        | (intx as u64 & 3)
}

/// An [`HVM_PARAM_CALLBACK_IRQ`] value delivering by injecting interrupt vector `vector`.
pub const fn callback_via_vector(vector: u8) -> u64 {
    (HVM_PARAM_CALLBACK_TYPE_VECTOR << HVM_PARAM_CALLBACK_TYPE_SHIFT) | vector as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_values_carry_their_type_in_the_top_byte() {
        assert_eq!(callback_via_vector(0xf3), 0x0200_0000_0000_00f3);
        assert_eq!(callback_via_gsi(28), 28);
        assert_eq!(callback_via_gsi(u64::MAX), 0x00ff_ffff_ffff_ffff);
        // Device 3 function 0 on bus 0, INTA.
        assert_eq!(
            callback_via_pci_intx(0, 0, 3 << 3, 0),
            0x0100_0000_0000_1800
        );
        assert_eq!(callback_via_pci_intx(1, 2, 0x18, 1), 0x0100_0001_0002_1801);
        assert_eq!(
            callback_via_vector(1) & HVM_PARAM_CALLBACK_IRQ_TYPE_MASK,
            HVM_PARAM_CALLBACK_TYPE_VECTOR << HVM_PARAM_CALLBACK_TYPE_SHIFT
        );
    }
}
