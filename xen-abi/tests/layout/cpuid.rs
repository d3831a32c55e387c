//! Xen's CPUID leaves (`arch-x86/cpuid.h`).

use crate::harness::Catalogue;
use xen_abi::cpuid::*;

pub fn describe(c: &mut Catalogue) {
    c.consts.extend(consts!(Both;
        XEN_CPUID_FIRST_LEAF => "XEN_CPUID_FIRST_LEAF",
        XEN_CPUID_MAX_NUM_LEAVES => "XEN_CPUID_MAX_NUM_LEAVES",
        XEN_CPUID_SIGNATURE_EBX => "XEN_CPUID_SIGNATURE_EBX",
        XEN_CPUID_SIGNATURE_ECX => "XEN_CPUID_SIGNATURE_ECX",
        XEN_CPUID_SIGNATURE_EDX => "XEN_CPUID_SIGNATURE_EDX",
        XEN_CPUID_FEAT1_MMU_PT_UPDATE_PRESERVE_AD => "XEN_CPUID_FEAT1_MMU_PT_UPDATE_PRESERVE_AD",
        XEN_CPUID_MACHINE_ADDRESS_WIDTH_MASK => "XEN_CPUID_MACHINE_ADDRESS_WIDTH_MASK",
    ));
    // The leaf offsets have no C names; the header's comments number the leaves from 1 at
    // XEN_CPUID_LEAF(0), and the macro places them.
    let xen_cpuid_leaf_version = xen_cpuid_leaf(XEN_CPUID_FIRST_LEAF, XEN_CPUID_LEAF_VERSION);
    let xen_cpuid_leaf_hvm = xen_cpuid_leaf(XEN_CPUID_FIRST_LEAF, XEN_CPUID_LEAF_HVM_FEATURES);
    let xen_cpuid_leaf_pv = xen_cpuid_leaf(XEN_CPUID_FIRST_LEAF, XEN_CPUID_LEAF_PV);
    let xen_hvm_cpuid_apic_access_virt = HvmCpuidFeatures::APIC_ACCESS_VIRT.bits();
    let xen_hvm_cpuid_x2apic_virt = HvmCpuidFeatures::X2APIC_VIRT.bits();
    let xen_hvm_cpuid_iommu_mappings = HvmCpuidFeatures::IOMMU_MAPPINGS.bits();
    let xen_hvm_cpuid_vcpu_id_present = HvmCpuidFeatures::VCPU_ID_PRESENT.bits();
    let xen_hvm_cpuid_domid_present = HvmCpuidFeatures::DOMID_PRESENT.bits();
    let xen_hvm_cpuid_ext_dest_id = HvmCpuidFeatures::EXT_DEST_ID.bits();
    let xen_hvm_cpuid_upcall_vector = HvmCpuidFeatures::UPCALL_VECTOR.bits();
    c.consts.extend(consts!(Both;
        xen_cpuid_leaf_version => "XEN_CPUID_LEAF(1)",
        xen_cpuid_leaf_hvm => "XEN_CPUID_LEAF(4)",
        xen_cpuid_leaf_pv => "XEN_CPUID_LEAF(XEN_CPUID_MAX_NUM_LEAVES)",
        xen_hvm_cpuid_apic_access_virt => "XEN_HVM_CPUID_APIC_ACCESS_VIRT",
        xen_hvm_cpuid_x2apic_virt => "XEN_HVM_CPUID_X2APIC_VIRT",
        xen_hvm_cpuid_iommu_mappings => "XEN_HVM_CPUID_IOMMU_MAPPINGS",
        xen_hvm_cpuid_vcpu_id_present => "XEN_HVM_CPUID_VCPU_ID_PRESENT",
        xen_hvm_cpuid_domid_present => "XEN_HVM_CPUID_DOMID_PRESENT",
        xen_hvm_cpuid_ext_dest_id => "XEN_HVM_CPUID_EXT_DEST_ID",
        xen_hvm_cpuid_upcall_vector => "XEN_HVM_CPUID_UPCALL_VECTOR",
    ));
}
