//! Finding Xen's CPUID leaves and reading what they say.
//!
//! Xen's leaves start at `0x4000_0000 + k * 0x100` for the first `k` in `0..=0xff` whose leaf
//! carries the signature `"XenVMMXenVMM"`. With Viridian enabled (the normal case for Windows
//! guests) the Hyper-V leaves sit at `0x4000_0000` and Xen's at `0x4000_0100`. The scan stops at
//! the first Xen signature. Every value read is treated as untrusted: a maximum leaf too low for
//! the leaves the core needs, or zero hypercall pages, is a [`DetectError`], never a panic.

use core::fmt;

use xen_abi::cpuid::{
    is_xen_signature, xen_cpuid_leaf, HvmCpuidFeatures, XEN_CPUID_FIRST_LEAF,
    XEN_CPUID_LEAF_HVM_FEATURES, XEN_CPUID_LEAF_HYPERCALL, XEN_CPUID_LEAF_SIGNATURE,
    XEN_CPUID_LEAF_STRIDE, XEN_CPUID_LEAF_VERSION, XEN_CPUID_SEARCH_END,
};

use super::Hypervisor;

/// The CPU vendor from CPUID leaf 0, which decides the hypercall instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CpuVendor {
    /// `"GenuineIntel"`.
    Intel,
    /// `"AuthenticAMD"`.
    Amd,
    /// `"HygonGenuine"` (AMD-derived).
    Hygon,
    /// `"CentaurHauls"` (VIA/Centaur, Intel-compatible VMX).
    Centaur,
    /// `"  Shanghai  "` (Zhaoxin, Intel-compatible VMX).
    Zhaoxin,
    /// Anything else: the 12 signature bytes (EBX, EDX, ECX).
    Unknown([u8; 12]),
}

impl CpuVendor {
    /// Classifies the registers of CPUID leaf 0.
    pub fn from_leaf0(regs: [u32; 4]) -> Self {
        let mut sig = [0u8; 12];
        sig[..4].copy_from_slice(&regs[1].to_le_bytes());
        sig[4..8].copy_from_slice(&regs[3].to_le_bytes());
        sig[8..].copy_from_slice(&regs[2].to_le_bytes());
        match &sig {
            b"GenuineIntel" => CpuVendor::Intel,
            b"AuthenticAMD" => CpuVendor::Amd,
            b"HygonGenuine" => CpuVendor::Hygon,
            b"CentaurHauls" => CpuVendor::Centaur,
            b"  Shanghai  " => CpuVendor::Zhaoxin,
            _ => CpuVendor::Unknown(sig),
        }
    }
}

/// Xen's version from the version leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct XenVersion {
    /// Major version (bits 31–16).
    pub major: u16,
    /// Minor version (bits 15–0).
    pub minor: u16,
}

impl fmt::Display for XenVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// What Xen's CPUID leaves say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenCpuid {
    /// The base leaf where the signature was found.
    pub base: u32,
    /// The largest leaf (absolute) Xen reports.
    pub max_leaf: u32,
    /// Xen's version.
    pub version: XenVersion,
    /// Hypercall pages Xen can fill (at least 1).
    pub hypercall_pages: u32,
    /// The MSR to write a hypercall page's address to.
    pub hypercall_msr: u32,
    /// The HVM feature bits; empty when the leaf is beyond `max_leaf`.
    pub hvm_features: HvmCpuidFeatures,
    /// This vCPU's Xen id, when [`HvmCpuidFeatures::VCPU_ID_PRESENT`] is set. It differs per
    /// vCPU: read it on each one.
    pub vcpu_id: Option<u32>,
    /// The domain id, when [`HvmCpuidFeatures::DOMID_PRESENT`] is set.
    pub domid: Option<u16>,
    /// The CPU vendor (leaf 0).
    pub vendor: CpuVendor,
}

impl XenCpuid {
    /// Whether Xen supports per-vCPU upcall vectors (`HVMOP_set_evtchn_upcall_vector`).
    pub fn upcall_vector_supported(&self) -> bool {
        self.hvm_features.contains(HvmCpuidFeatures::UPCALL_VECTOR)
    }
}

/// Why detection failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DetectError {
    /// No leaf in the search range carries Xen's signature: not running on Xen.
    NotXen,
    /// Xen's maximum leaf is below the hypercall leaf the core needs.
    MaxLeafTooLow {
        /// The base leaf.
        base: u32,
        /// The maximum leaf reported.
        max_leaf: u32,
    },
    /// The hypercall leaf reports zero hypercall pages.
    NoHypercallPages,
}

impl fmt::Display for DetectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DetectError::NotXen => f.write_str("Xen's CPUID signature was not found"),
            DetectError::MaxLeafTooLow { base, max_leaf } => write!(
                f,
                "Xen's leaves at {base:#x} end at {max_leaf:#x}, below the hypercall leaf"
            ),
            DetectError::NoHypercallPages => f.write_str("Xen reports no hypercall pages"),
        }
    }
}

/// Scans for Xen's base leaf; `None` when no candidate carries the signature.
pub fn find_base<H: Hypervisor + ?Sized>(hv: &H) -> Option<u32> {
    (XEN_CPUID_FIRST_LEAF..XEN_CPUID_SEARCH_END)
        .step_by(XEN_CPUID_LEAF_STRIDE as usize)
        .find(|&base| {
            let [_, ebx, ecx, edx] = hv.cpuid(base + XEN_CPUID_LEAF_SIGNATURE, 0);
            is_xen_signature(ebx, ecx, edx)
        })
}

/// Reads Xen's leaves on the calling vCPU.
pub fn detect<H: Hypervisor + ?Sized>(hv: &H) -> Result<XenCpuid, DetectError> {
    let base = find_base(hv).ok_or(DetectError::NotXen)?;
    let max_leaf = hv.cpuid(base, 0)[0];
    let hypercall_leaf = xen_cpuid_leaf(base, XEN_CPUID_LEAF_HYPERCALL);
    if max_leaf < hypercall_leaf {
        return Err(DetectError::MaxLeafTooLow { base, max_leaf });
    }
    let raw_version = hv.cpuid(xen_cpuid_leaf(base, XEN_CPUID_LEAF_VERSION), 0)[0];
    let version = XenVersion {
        major: (raw_version >> 16) as u16,
        minor: raw_version as u16,
    };
    let [pages, msr, _, _] = hv.cpuid(hypercall_leaf, 0);
    if pages == 0 {
        return Err(DetectError::NoHypercallPages);
    }
    let hvm_leaf = xen_cpuid_leaf(base, XEN_CPUID_LEAF_HVM_FEATURES);
    let (hvm_features, vcpu_id, domid) = if max_leaf >= hvm_leaf {
        let [eax, ebx, ecx, _] = hv.cpuid(hvm_leaf, 0);
        let features = HvmCpuidFeatures::from_bits_retain(eax);
        let vcpu = features
            .contains(HvmCpuidFeatures::VCPU_ID_PRESENT)
            .then_some(ebx);
        let domid = features
            .contains(HvmCpuidFeatures::DOMID_PRESENT)
            .then_some(ecx as u16);
        (features, vcpu, domid)
    } else {
        (HvmCpuidFeatures::empty(), None, None)
    };
    Ok(XenCpuid {
        base,
        max_leaf,
        version,
        hypercall_pages: pages,
        hypercall_msr: msr,
        hvm_features,
        vcpu_id,
        domid,
        vendor: CpuVendor::from_leaf0(hv.cpuid(0, 0)),
    })
}

/// This vCPU's Xen id from the HVM feature leaf, or `None` when Xen does not report it (the
/// caller then falls back to the ACPI/APIC order). Call on the vCPU in question.
pub fn vcpu_id<H: Hypervisor + ?Sized>(hv: &H, cpuid: &XenCpuid) -> Option<u32> {
    let hvm_leaf = xen_cpuid_leaf(cpuid.base, XEN_CPUID_LEAF_HVM_FEATURES);
    if cpuid.max_leaf < hvm_leaf {
        return None;
    }
    let [eax, ebx, _, _] = hv.cpuid(hvm_leaf, 0);
    HvmCpuidFeatures::from_bits_retain(eax)
        .contains(HvmCpuidFeatures::VCPU_ID_PRESENT)
        .then_some(ebx)
}
