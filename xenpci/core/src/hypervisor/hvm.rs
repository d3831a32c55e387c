//! HVM parameters and the event-channel upcall.
//!
//! The xenstore and console rings are found through `HVM_PARAM_STORE_*` and
//! `HVM_PARAM_CONSOLE_*` ([`store_ring`], [`console_ring`]). Event-channel notifications reach
//! the guest either through a per-vCPU interrupt vector (`HVMOP_set_evtchn_upcall_vector`, when
//! the HVM feature leaf has `XEN_HVM_CPUID_UPCALL_VECTOR` and the shell has a vector on every
//! vCPU), or through the domain-wide `HVM_PARAM_CALLBACK_IRQ`, which names a GSI, the platform
//! device's PCI INTx line, or a vector (the last only with `XENFEAT_hvm_callback_vector`).
//! [`choose_upcall`] decides; [`setup_upcall`] makes the calls.

use xen_abi::cpuid::HvmCpuidFeatures;
use xen_abi::features::Features;
use xen_abi::hvm::{
    callback_via_gsi, callback_via_pci_intx, callback_via_vector, HvmEvtchnUpcallVector, HvmParam,
    HVM_PARAM_CALLBACK_IRQ, HVM_PARAM_CONSOLE_EVTCHN, HVM_PARAM_CONSOLE_PFN,
    HVM_PARAM_STORE_EVTCHN, HVM_PARAM_STORE_PFN,
};
use xen_abi::types::{EvtchnPort, DOMID_SELF};
use zerocopy::IntoBytes;

use super::calls::{
    cmd_struct, invoke, HVMOP_GET_PARAM_CALL, HVMOP_SET_EVTCHN_UPCALL_VECTOR_CALL,
    HVMOP_SET_PARAM_CALL,
};
use super::{HvError, Hypervisor};

/// Reads HVM parameter `index` of this domain.
pub fn get_param<H: Hypervisor + ?Sized>(hv: &H, index: u32) -> Result<u64, HvError> {
    let mut arg = HvmParam {
        domid: DOMID_SELF,
        pad: 0,
        index,
        value: 0,
    };
    invoke(
        hv,
        &HVMOP_GET_PARAM_CALL,
        &mut cmd_struct(&HVMOP_GET_PARAM_CALL, arg.as_mut_bytes()),
    )?;
    Ok(arg.value)
}

/// Sets HVM parameter `index` of this domain.
pub fn set_param<H: Hypervisor + ?Sized>(hv: &H, index: u32, value: u64) -> Result<(), HvError> {
    let mut arg = HvmParam {
        domid: DOMID_SELF,
        pad: 0,
        index,
        value,
    };
    invoke(
        hv,
        &HVMOP_SET_PARAM_CALL,
        &mut cmd_struct(&HVMOP_SET_PARAM_CALL, arg.as_mut_bytes()),
    )
    .map(drop)
}

/// Where a ring shared with a backend (xenstore, console) is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RingInfo {
    /// The GFN of the ring page.
    pub pfn: u64,
    /// The event channel of the ring.
    pub evtchn: EvtchnPort,
}

fn ring_info<H: Hypervisor + ?Sized>(
    hv: &H,
    pfn_index: u32,
    evtchn_index: u32,
) -> Result<RingInfo, HvError> {
    let pfn = get_param(hv, pfn_index)?;
    if pfn == 0 {
        return Err(HvError::ParamUnset { index: pfn_index });
    }
    let evtchn = get_param(hv, evtchn_index)?;
    if evtchn == 0 {
        return Err(HvError::ParamUnset {
            index: evtchn_index,
        });
    }
    let evtchn = u32::try_from(evtchn).map_err(|_| HvError::ParamOutOfRange {
        index: evtchn_index,
        value: evtchn,
    })?;
    Ok(RingInfo { pfn, evtchn })
}

/// The xenstore ring (`HVM_PARAM_STORE_PFN`, `HVM_PARAM_STORE_EVTCHN`); 0 in either is
/// [`HvError::ParamUnset`].
pub fn store_ring<H: Hypervisor + ?Sized>(hv: &H) -> Result<RingInfo, HvError> {
    ring_info(hv, HVM_PARAM_STORE_PFN, HVM_PARAM_STORE_EVTCHN)
}

/// The PV console ring (`HVM_PARAM_CONSOLE_PFN`, `HVM_PARAM_CONSOLE_EVTCHN`); 0 in either (no
/// PV console configured) is [`HvError::ParamUnset`].
pub fn console_ring<H: Hypervisor + ?Sized>(hv: &H) -> Result<RingInfo, HvError> {
    ring_info(hv, HVM_PARAM_CONSOLE_PFN, HVM_PARAM_CONSOLE_EVTCHN)
}

/// Xen's feature submap 0 (`XENVER_get_features`); see [`super::version::features`].
pub fn xen_features<H: Hypervisor + ?Sized>(hv: &H) -> Result<Features, HvError> {
    super::version::features(hv)
}

/// A delivery route for `HVM_PARAM_CALLBACK_IRQ`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallbackVia {
    /// A GSI (not 0).
    Gsi(u32),
    /// The platform device's PCI INTx pin.
    PciIntx {
        /// PCI segment.
        segment: u16,
        /// Bus.
        bus: u8,
        /// Device and function (`device << 3 | function`).
        devfn: u8,
        /// Pin, 0 = INTA … 3 = INTD.
        pin: u8,
    },
    /// An interrupt vector injected directly (needs `XENFEAT_hvm_callback_vector`).
    Vector(u8),
}

impl CallbackVia {
    /// The `HVM_PARAM_CALLBACK_IRQ` value.
    pub const fn encode(self) -> u64 {
        match self {
            CallbackVia::Gsi(gsi) => callback_via_gsi(gsi as u64),
            CallbackVia::PciIntx {
                segment,
                bus,
                devfn,
                pin,
            } => callback_via_pci_intx(segment, bus, devfn, pin),
            CallbackVia::Vector(vector) => callback_via_vector(vector),
        }
    }
}

/// How event-channel upcalls are delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UpcallMethod {
    /// `HVMOP_set_evtchn_upcall_vector` with this vector on every vCPU.
    PerVcpuVector(u8),
    /// `HVM_PARAM_CALLBACK_IRQ`, events for vCPU 0 only.
    CallbackIrq(CallbackVia),
}

/// What the shell can offer for upcalls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UpcallResources {
    /// A vector the shell owns on every vCPU, if it has one.
    pub vector: Option<u8>,
    /// The interrupt line of the platform PCI device (always available on HVM with the device):
    /// a [`CallbackVia::Gsi`] or [`CallbackVia::PciIntx`].
    pub line: CallbackVia,
}

/// Chooses the upcall method: per-vCPU vectors when Xen supports them and the shell has a
/// vector; else the callback vector when Xen supports `XENFEAT_hvm_callback_vector` and the
/// shell has a vector; else the interrupt line.
pub fn choose_upcall(
    hvm_features: HvmCpuidFeatures,
    xen_features: Features,
    resources: UpcallResources,
) -> UpcallMethod {
    match resources.vector {
        Some(v) if hvm_features.contains(HvmCpuidFeatures::UPCALL_VECTOR) => {
            UpcallMethod::PerVcpuVector(v)
        }
        Some(v) if xen_features.contains(Features::HVM_CALLBACK_VECTOR) => {
            UpcallMethod::CallbackIrq(CallbackVia::Vector(v))
        }
        _ => UpcallMethod::CallbackIrq(resources.line),
    }
}

/// Sets the per-vCPU upcall vector of Xen vCPU `vcpu`.
pub fn set_upcall_vector<H: Hypervisor + ?Sized>(
    hv: &H,
    vcpu: u32,
    vector: u8,
) -> Result<(), HvError> {
    if vector < 0x10 {
        return Err(HvError::BadVector { vector });
    }
    let mut arg = HvmEvtchnUpcallVector {
        vcpu,
        vector,
        pad: [0; 3],
    };
    invoke(
        hv,
        &HVMOP_SET_EVTCHN_UPCALL_VECTOR_CALL,
        &mut cmd_struct(&HVMOP_SET_EVTCHN_UPCALL_VECTOR_CALL, arg.as_mut_bytes()),
    )
    .map(drop)
}

/// Applies `method` for the Xen vCPU ids in `vcpus` (ignored for the callback IRQ, which is
/// domain-wide).
///
/// With per-vCPU vectors, `HVM_PARAM_CALLBACK_IRQ` is also set to "vector 0" afterwards: Xen
/// delivers through the per-vCPU vectors, and toolstacks that read the parameter to decide
/// whether PV drivers are active see a non-zero value.
pub fn setup_upcall<H: Hypervisor + ?Sized>(
    hv: &H,
    method: UpcallMethod,
    vcpus: impl IntoIterator<Item = u32>,
) -> Result<(), HvError> {
    match method {
        UpcallMethod::PerVcpuVector(vector) => {
            for vcpu in vcpus {
                set_upcall_vector(hv, vcpu, vector)?;
            }
            set_param(hv, HVM_PARAM_CALLBACK_IRQ, callback_via_vector(0))
        }
        UpcallMethod::CallbackIrq(via) => {
            match via {
                CallbackVia::Vector(vector) if vector < 0x10 => {
                    return Err(HvError::BadVector { vector })
                }
                // GSI 0 would read as "disabled".
                CallbackVia::Gsi(0) => {
                    return Err(HvError::ParamOutOfRange {
                        index: HVM_PARAM_CALLBACK_IRQ,
                        value: 0,
                    })
                }
                _ => {}
            }
            set_param(hv, HVM_PARAM_CALLBACK_IRQ, via.encode())
        }
    }
}

/// Turns upcalls off (`HVM_PARAM_CALLBACK_IRQ` = 0), before unloading.
pub fn disable_callback_irq<H: Hypervisor + ?Sized>(hv: &H) -> Result<(), HvError> {
    set_param(hv, HVM_PARAM_CALLBACK_IRQ, 0)
}
