//! Xen's CPUID leaves on x86 (`arch-x86/cpuid.h`).
//!
//! Xen's leaves start at a base that is `0x4000_0000` or, when Xen also presents another
//! hypervisor's interface there (Viridian for Windows guests), a higher multiple of
//! [`XEN_CPUID_LEAF_STRIDE`]. A guest finds the base by scanning from [`XEN_CPUID_FIRST_LEAF`] in
//! steps of [`XEN_CPUID_LEAF_STRIDE`] below [`XEN_CPUID_SEARCH_END`] for the signature
//! ([`is_xen_signature`]); the leaves are then at `base + XEN_CPUID_LEAF_*`
//! ([`xen_cpuid_leaf`]).

/// The first candidate base of Xen's leaves (`XEN_CPUID_FIRST_LEAF`).
pub const XEN_CPUID_FIRST_LEAF: u32 = 0x4000_0000;

/// The distance between candidate bases of Xen's leaves.
pub const XEN_CPUID_LEAF_STRIDE: u32 = 0x100;

/// The end (exclusive) of the range scanned for Xen's base leaf.
pub const XEN_CPUID_SEARCH_END: u32 = 0x4001_0000;

/// Leaf offset 0: EAX is the largest leaf (absolute) Xen supports; EBX, ECX, EDX hold the
/// signature `"XenVMMXenVMM"`.
pub const XEN_CPUID_LEAF_SIGNATURE: u32 = 0;

/// Leaf offset 1: EAX is Xen's version, major in bits 31–16 and minor in 15–0.
pub const XEN_CPUID_LEAF_VERSION: u32 = 1;

/// Leaf offset 2: EAX is the number of hypercall pages (at least 1); EBX is the MSR index to
/// write a hypercall page's guest-physical address to (see [`crate::hypercall`]); ECX holds the
/// `XEN_CPUID_FEAT1_*` bits.
pub const XEN_CPUID_LEAF_HYPERCALL: u32 = 2;

/// Leaf offset 3: TSC and time parameters, in sub-leaves 0–2.
pub const XEN_CPUID_LEAF_TIME: u32 = 3;

/// Leaf offset 4, sub-leaf 0: EAX holds the [`HvmCpuidFeatures`] bits; EBX the vCPU id when
/// [`HvmCpuidFeatures::VCPU_ID_PRESENT`] is set; ECX the domain id when
/// [`HvmCpuidFeatures::DOMID_PRESENT`] is set.
pub const XEN_CPUID_LEAF_HVM_FEATURES: u32 = 4;

/// Leaf offset 5, sub-leaf 0: PV parameters; EAX is the largest sub-leaf and EBX bits 7–0 the
/// machine address width ([`XEN_CPUID_MACHINE_ADDRESS_WIDTH_MASK`]).
pub const XEN_CPUID_LEAF_PV: u32 = 5;

/// The largest leaf offset Xen 4.17's header describes (`XEN_CPUID_MAX_NUM_LEAVES`).
pub const XEN_CPUID_MAX_NUM_LEAVES: u32 = 5;

/// The CPUID leaf at `offset` from the base `base` found by the scan (`XEN_CPUID_LEAF`, which
/// assumes the first base).
#[doc(alias = "XEN_CPUID_LEAF")]
pub const fn xen_cpuid_leaf(base: u32, offset: u32) -> u32 {
    base + offset
}

/// EBX of the signature leaf: `"XenV"` (`XEN_CPUID_SIGNATURE_EBX`).
pub const XEN_CPUID_SIGNATURE_EBX: u32 = 0x566e_6558;

/// ECX of the signature leaf: `"MMXe"` (`XEN_CPUID_SIGNATURE_ECX`).
pub const XEN_CPUID_SIGNATURE_ECX: u32 = 0x6558_4d4d;

/// EDX of the signature leaf: `"nVMM"` (`XEN_CPUID_SIGNATURE_EDX`).
pub const XEN_CPUID_SIGNATURE_EDX: u32 = 0x4d4d_566e;

/// The signature as the bytes of EBX, ECX and EDX in that order.
pub const XEN_CPUID_SIGNATURE: &[u8; 12] = b"XenVMMXenVMM";

/// Whether the registers of a candidate base leaf carry Xen's signature.
pub const fn is_xen_signature(ebx: u32, ecx: u32, edx: u32) -> bool {
    ebx == XEN_CPUID_SIGNATURE_EBX
        && ecx == XEN_CPUID_SIGNATURE_ECX
        && edx == XEN_CPUID_SIGNATURE_EDX
}

/// Leaf 2 ECX: the `MMU_PT_UPDATE_PRESERVE_AD` update is supported (PV;
/// `XEN_CPUID_FEAT1_MMU_PT_UPDATE_PRESERVE_AD`).
pub const XEN_CPUID_FEAT1_MMU_PT_UPDATE_PRESERVE_AD: u32 = 1 << 0;

/// Leaf 5 EBX: the machine address width in bits, counting memory hotplug
/// (`XEN_CPUID_MACHINE_ADDRESS_WIDTH_MASK`).
pub const XEN_CPUID_MACHINE_ADDRESS_WIDTH_MASK: u32 = 0xff;

bitflags::bitflags! {
    /// EAX of the HVM features leaf ([`XEN_CPUID_LEAF_HVM_FEATURES`]; `XEN_HVM_CPUID_*`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct HvmCpuidFeatures: u32 {
        /// APIC register accesses are virtualized (`XEN_HVM_CPUID_APIC_ACCESS_VIRT`).
        #[doc(alias = "XEN_HVM_CPUID_APIC_ACCESS_VIRT")]
        const APIC_ACCESS_VIRT = 1 << 0;
        /// x2APIC accesses are virtualized (`XEN_HVM_CPUID_X2APIC_VIRT`).
        #[doc(alias = "XEN_HVM_CPUID_X2APIC_VIRT")]
        const X2APIC_VIRT = 1 << 1;
        /// Memory mapped from other domains has valid IOMMU entries
        /// (`XEN_HVM_CPUID_IOMMU_MAPPINGS`).
        #[doc(alias = "XEN_HVM_CPUID_IOMMU_MAPPINGS")]
        const IOMMU_MAPPINGS = 1 << 2;
        /// EBX holds the vCPU id (`XEN_HVM_CPUID_VCPU_ID_PRESENT`).
        #[doc(alias = "XEN_HVM_CPUID_VCPU_ID_PRESENT")]
        const VCPU_ID_PRESENT = 1 << 3;
        /// ECX holds the domain id (`XEN_HVM_CPUID_DOMID_PRESENT`).
        #[doc(alias = "XEN_HVM_CPUID_DOMID_PRESENT")]
        const DOMID_PRESENT = 1 << 4;
        /// IO-APIC RTE bits 55–49 and MSI address bits 11–5 extend the destination id to 15
        /// bits (`XEN_HVM_CPUID_EXT_DEST_ID`).
        #[doc(alias = "XEN_HVM_CPUID_EXT_DEST_ID")]
        const EXT_DEST_ID = 1 << 5;
        /// Per-vCPU upcall vectors ([`crate::hvm::HVMOP_SET_EVTCHN_UPCALL_VECTOR`]) work with
        /// physical IRQs bound to event channels (`XEN_HVM_CPUID_UPCALL_VECTOR`).
        #[doc(alias = "XEN_HVM_CPUID_UPCALL_VECTOR")]
        const UPCALL_VECTOR = 1 << 6;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_registers_spell_xenvmm() {
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&XEN_CPUID_SIGNATURE_EBX.to_le_bytes());
        bytes[4..8].copy_from_slice(&XEN_CPUID_SIGNATURE_ECX.to_le_bytes());
        bytes[8..].copy_from_slice(&XEN_CPUID_SIGNATURE_EDX.to_le_bytes());
        assert_eq!(&bytes, XEN_CPUID_SIGNATURE);
        assert!(is_xen_signature(0x566e_6558, 0x6558_4d4d, 0x4d4d_566e));
        assert!(!is_xen_signature(0x7263_694d, 0x666f_736f, 0x7648_2074)); // "Microsoft Hv"
    }

    #[test]
    fn leaves_relative_to_a_shifted_base() {
        let base = XEN_CPUID_FIRST_LEAF + XEN_CPUID_LEAF_STRIDE;
        assert_eq!(xen_cpuid_leaf(base, XEN_CPUID_LEAF_HYPERCALL), 0x4000_0102);
        assert_eq!(
            xen_cpuid_leaf(base, XEN_CPUID_LEAF_HVM_FEATURES),
            0x4000_0104
        );
        assert_eq!(
            (XEN_CPUID_SEARCH_END - XEN_CPUID_FIRST_LEAF) / XEN_CPUID_LEAF_STRIDE,
            256
        );
    }
}
