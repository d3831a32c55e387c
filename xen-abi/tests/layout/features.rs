//! Feature bits (`features.h`).

use crate::harness::Catalogue;
use xen_abi::features::*;

pub fn describe(c: &mut Catalogue) {
    c.consts.extend(consts!(Both;
        XENFEAT_WRITABLE_PAGE_TABLES => "XENFEAT_writable_page_tables",
        XENFEAT_WRITABLE_DESCRIPTOR_TABLES => "XENFEAT_writable_descriptor_tables",
        XENFEAT_AUTO_TRANSLATED_PHYSMAP => "XENFEAT_auto_translated_physmap",
        XENFEAT_SUPERVISOR_MODE_KERNEL => "XENFEAT_supervisor_mode_kernel",
        XENFEAT_PAE_PGDIR_ABOVE_4GB => "XENFEAT_pae_pgdir_above_4gb",
        XENFEAT_MMU_PT_UPDATE_PRESERVE_AD => "XENFEAT_mmu_pt_update_preserve_ad",
        XENFEAT_HIGHMEM_ASSIST => "XENFEAT_highmem_assist",
        XENFEAT_GNTTAB_MAP_AVAIL_BITS => "XENFEAT_gnttab_map_avail_bits",
        XENFEAT_HVM_CALLBACK_VECTOR => "XENFEAT_hvm_callback_vector",
        XENFEAT_HVM_SAFE_PVCLOCK => "XENFEAT_hvm_safe_pvclock",
        XENFEAT_HVM_PIRQS => "XENFEAT_hvm_pirqs",
        XENFEAT_DOM0 => "XENFEAT_dom0",
        XENFEAT_MEMORY_OP_VNODE_SUPPORTED => "XENFEAT_memory_op_vnode_supported",
        XENFEAT_ARM_SMCCC_SUPPORTED => "XENFEAT_ARM_SMCCC_supported",
        XENFEAT_LINUX_RSDP_UNRESTRICTED => "XENFEAT_linux_rsdp_unrestricted",
        XENFEAT_NOT_DIRECT_MAPPED => "XENFEAT_not_direct_mapped",
        XENFEAT_DIRECT_MAPPED => "XENFEAT_direct_mapped",
        XENFEAT_NR_SUBMAPS => "XENFEAT_NR_SUBMAPS",
    ));
    // Every bit of the Features set is `1 << XENFEAT_x` of the flag with the same name.
    for (name, flag) in Features::all().iter_names() {
        let c_name = CONST_NAMES
            .iter()
            .find(|(rust, _)| *rust == name)
            .unwrap_or_else(|| panic!("Features::{name} has no C name in tests/layout/features.rs"))
            .1;
        c.consts.push(crate::harness::ConstCheck {
            abi: crate::harness::Abi::Both,
            rust: Box::leak(format!("Features::{name}").into_boxed_str()),
            c: Box::leak(format!("1u << XENFEAT_{c_name}").into_boxed_str()),
            value: i128::from(flag.bits()),
        });
    }
}

/// The Rust flag names of [`Features`] and the C names they stand for (after `XENFEAT_`).
const CONST_NAMES: &[(&str, &str)] = &[
    ("WRITABLE_PAGE_TABLES", "writable_page_tables"),
    ("WRITABLE_DESCRIPTOR_TABLES", "writable_descriptor_tables"),
    ("AUTO_TRANSLATED_PHYSMAP", "auto_translated_physmap"),
    ("SUPERVISOR_MODE_KERNEL", "supervisor_mode_kernel"),
    ("PAE_PGDIR_ABOVE_4GB", "pae_pgdir_above_4gb"),
    ("MMU_PT_UPDATE_PRESERVE_AD", "mmu_pt_update_preserve_ad"),
    ("HIGHMEM_ASSIST", "highmem_assist"),
    ("GNTTAB_MAP_AVAIL_BITS", "gnttab_map_avail_bits"),
    ("HVM_CALLBACK_VECTOR", "hvm_callback_vector"),
    ("HVM_SAFE_PVCLOCK", "hvm_safe_pvclock"),
    ("HVM_PIRQS", "hvm_pirqs"),
    ("DOM0", "dom0"),
    ("MEMORY_OP_VNODE_SUPPORTED", "memory_op_vnode_supported"),
    ("ARM_SMCCC_SUPPORTED", "ARM_SMCCC_supported"),
    ("LINUX_RSDP_UNRESTRICTED", "linux_rsdp_unrestricted"),
    ("NOT_DIRECT_MAPPED", "not_direct_mapped"),
    ("DIRECT_MAPPED", "direct_mapped"),
];
