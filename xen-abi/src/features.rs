//! Feature bits reported by [`crate::version::XENVER_GET_FEATURES`] (`features.h`).
//!
//! Feature `n` is bit `n % 32` of submap `n / 32`; Xen 4.17 defines one submap
//! ([`XENFEAT_NR_SUBMAPS`]). The constants are bit numbers, as in C; [`Features`] holds submap 0
//! as a bit set. `XENFEAT_grant_map_identity` (12) is deprecated and commented out in the header,
//! so it is absent here too.

/// The guest may write its page tables directly, without write-protecting them (PV)
/// (`XENFEAT_writable_page_tables`).
#[doc(alias = "XENFEAT_writable_page_tables")]
pub const XENFEAT_WRITABLE_PAGE_TABLES: u32 = 0;

/// The guest may write its descriptor tables directly (PV) (`XENFEAT_writable_descriptor_tables`).
#[doc(alias = "XENFEAT_writable_descriptor_tables")]
pub const XENFEAT_WRITABLE_DESCRIPTOR_TABLES: u32 = 1;

/// Xen translates between guest-physical and machine addresses; always set for HVM and PVH guests
/// (`XENFEAT_auto_translated_physmap`).
#[doc(alias = "XENFEAT_auto_translated_physmap")]
pub const XENFEAT_AUTO_TRANSLATED_PHYSMAP: u32 = 2;

/// The guest kernel runs in supervisor mode (x86 ring 0) (`XENFEAT_supervisor_mode_kernel`).
#[doc(alias = "XENFEAT_supervisor_mode_kernel")]
pub const XENFEAT_SUPERVISOR_MODE_KERNEL: u32 = 3;

/// PAE page directories need not be below 4 GiB (`XENFEAT_pae_pgdir_above_4gb`).
#[doc(alias = "XENFEAT_pae_pgdir_above_4gb")]
pub const XENFEAT_PAE_PGDIR_ABOVE_4GB: u32 = 4;

/// x86: the `MMU_PT_UPDATE_PRESERVE_AD` page-table update is supported
/// (`XENFEAT_mmu_pt_update_preserve_ad`).
#[doc(alias = "XENFEAT_mmu_pt_update_preserve_ad")]
pub const XENFEAT_MMU_PT_UPDATE_PRESERVE_AD: u32 = 5;

/// x86: the `MMUEXT_CLEAR_PAGE` / `MMUEXT_COPY_PAGE` operations are supported
/// (`XENFEAT_highmem_assist`).
#[doc(alias = "XENFEAT_highmem_assist")]
pub const XENFEAT_HIGHMEM_ASSIST: u32 = 6;

/// Grant mapping honours the `GNTMAP_guest_avail` PTE bits (`XENFEAT_gnttab_map_avail_bits`).
#[doc(alias = "XENFEAT_gnttab_map_avail_bits")]
pub const XENFEAT_GNTTAB_MAP_AVAIL_BITS: u32 = 7;

/// x86: event notifications can be delivered by injecting a vector
/// ([`crate::hvm::HVM_PARAM_CALLBACK_TYPE_VECTOR`]) (`XENFEAT_hvm_callback_vector`).
#[doc(alias = "XENFEAT_hvm_callback_vector")]
pub const XENFEAT_HVM_CALLBACK_VECTOR: u32 = 8;

/// x86: the PV clock ([`crate::shared_info::VcpuTimeInfo`]) is safe to use in an HVM guest
/// (`XENFEAT_hvm_safe_pvclock`).
#[doc(alias = "XENFEAT_hvm_safe_pvclock")]
pub const XENFEAT_HVM_SAFE_PVCLOCK: u32 = 9;

/// x86: HVM guests may use PIRQs (physical interrupts as event channels) (`XENFEAT_hvm_pirqs`).
#[doc(alias = "XENFEAT_hvm_pirqs")]
pub const XENFEAT_HVM_PIRQS: u32 = 10;

/// The domain may run as dom0 (`XENFEAT_dom0`).
#[doc(alias = "XENFEAT_dom0")]
pub const XENFEAT_DOM0: u32 = 11;

/// Memory operations accept [`crate::memory::XENMEMF_VNODE`] (`XENFEAT_memory_op_vnode_supported`).
#[doc(alias = "XENFEAT_memory_op_vnode_supported")]
pub const XENFEAT_MEMORY_OP_VNODE_SUPPORTED: u32 = 13;

/// Arm: the hypervisor supports the SMC calling convention (`XENFEAT_ARM_SMCCC_supported`).
#[doc(alias = "XENFEAT_ARM_SMCCC_supported")]
pub const XENFEAT_ARM_SMCCC_SUPPORTED: u32 = 14;

/// x86 PVH: the ACPI RSDP may be anywhere, not only below 1 MiB (for guests that declare themselves
/// Linux) (`XENFEAT_linux_rsdp_unrestricted`).
#[doc(alias = "XENFEAT_linux_rsdp_unrestricted")]
pub const XENFEAT_LINUX_RSDP_UNRESTRICTED: u32 = 15;

/// The domain's pages are not mapped 1:1 (gfn ≠ mfn) (`XENFEAT_not_direct_mapped`).
#[doc(alias = "XENFEAT_not_direct_mapped")]
pub const XENFEAT_NOT_DIRECT_MAPPED: u32 = 16;

/// The domain's pages are mapped 1:1 (gfn = mfn) (`XENFEAT_direct_mapped`).
#[doc(alias = "XENFEAT_direct_mapped")]
pub const XENFEAT_DIRECT_MAPPED: u32 = 17;

/// The number of 32-bit feature submaps (`XENFEAT_NR_SUBMAPS`).
pub const XENFEAT_NR_SUBMAPS: u32 = 1;

bitflags::bitflags! {
    /// Submap 0 of the feature bits, as returned in [`crate::version::FeatureInfo::submap`].
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct Features: u32 {
        /// `1 << XENFEAT_writable_page_tables`: see [`XENFEAT_WRITABLE_PAGE_TABLES`].
        const WRITABLE_PAGE_TABLES = 1 << XENFEAT_WRITABLE_PAGE_TABLES;
        /// `1 << XENFEAT_writable_descriptor_tables`: see [`XENFEAT_WRITABLE_DESCRIPTOR_TABLES`].
        const WRITABLE_DESCRIPTOR_TABLES = 1 << XENFEAT_WRITABLE_DESCRIPTOR_TABLES;
        /// `1 << XENFEAT_auto_translated_physmap`: see [`XENFEAT_AUTO_TRANSLATED_PHYSMAP`].
        const AUTO_TRANSLATED_PHYSMAP = 1 << XENFEAT_AUTO_TRANSLATED_PHYSMAP;
        /// `1 << XENFEAT_supervisor_mode_kernel`: see [`XENFEAT_SUPERVISOR_MODE_KERNEL`].
        const SUPERVISOR_MODE_KERNEL = 1 << XENFEAT_SUPERVISOR_MODE_KERNEL;
        /// `1 << XENFEAT_pae_pgdir_above_4gb`: see [`XENFEAT_PAE_PGDIR_ABOVE_4GB`].
        const PAE_PGDIR_ABOVE_4GB = 1 << XENFEAT_PAE_PGDIR_ABOVE_4GB;
        /// `1 << XENFEAT_mmu_pt_update_preserve_ad`: see [`XENFEAT_MMU_PT_UPDATE_PRESERVE_AD`].
        const MMU_PT_UPDATE_PRESERVE_AD = 1 << XENFEAT_MMU_PT_UPDATE_PRESERVE_AD;
        /// `1 << XENFEAT_highmem_assist`: see [`XENFEAT_HIGHMEM_ASSIST`].
        const HIGHMEM_ASSIST = 1 << XENFEAT_HIGHMEM_ASSIST;
        /// `1 << XENFEAT_gnttab_map_avail_bits`: see [`XENFEAT_GNTTAB_MAP_AVAIL_BITS`].
        const GNTTAB_MAP_AVAIL_BITS = 1 << XENFEAT_GNTTAB_MAP_AVAIL_BITS;
        /// `1 << XENFEAT_hvm_callback_vector`: see [`XENFEAT_HVM_CALLBACK_VECTOR`].
        const HVM_CALLBACK_VECTOR = 1 << XENFEAT_HVM_CALLBACK_VECTOR;
        /// `1 << XENFEAT_hvm_safe_pvclock`: see [`XENFEAT_HVM_SAFE_PVCLOCK`].
        const HVM_SAFE_PVCLOCK = 1 << XENFEAT_HVM_SAFE_PVCLOCK;
        /// `1 << XENFEAT_hvm_pirqs`: see [`XENFEAT_HVM_PIRQS`].
        const HVM_PIRQS = 1 << XENFEAT_HVM_PIRQS;
        /// `1 << XENFEAT_dom0`: see [`XENFEAT_DOM0`].
        const DOM0 = 1 << XENFEAT_DOM0;
        /// `1 << XENFEAT_memory_op_vnode_supported`: see [`XENFEAT_MEMORY_OP_VNODE_SUPPORTED`].
        const MEMORY_OP_VNODE_SUPPORTED = 1 << XENFEAT_MEMORY_OP_VNODE_SUPPORTED;
        /// `1 << XENFEAT_ARM_SMCCC_supported`: see [`XENFEAT_ARM_SMCCC_SUPPORTED`].
        const ARM_SMCCC_SUPPORTED = 1 << XENFEAT_ARM_SMCCC_SUPPORTED;
        /// `1 << XENFEAT_linux_rsdp_unrestricted`: see [`XENFEAT_LINUX_RSDP_UNRESTRICTED`].
        const LINUX_RSDP_UNRESTRICTED = 1 << XENFEAT_LINUX_RSDP_UNRESTRICTED;
        /// `1 << XENFEAT_not_direct_mapped`: see [`XENFEAT_NOT_DIRECT_MAPPED`].
        const NOT_DIRECT_MAPPED = 1 << XENFEAT_NOT_DIRECT_MAPPED;
        /// `1 << XENFEAT_direct_mapped`: see [`XENFEAT_DIRECT_MAPPED`].
        const DIRECT_MAPPED = 1 << XENFEAT_DIRECT_MAPPED;
    }
}

impl Features {
    /// Whether feature bit `feature` (a `XENFEAT_*` number) is set; always false for numbers
    /// beyond submap 0.
    pub const fn has(self, feature: u32) -> bool {
        feature < 32 && self.bits() & (1 << feature) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_tests_bit_numbers() {
        let f = Features::from_bits_retain(1 << XENFEAT_HVM_CALLBACK_VECTOR | 1 << 31);
        assert!(f.has(XENFEAT_HVM_CALLBACK_VECTOR));
        assert!(f.contains(Features::HVM_CALLBACK_VECTOR));
        assert!(!f.has(XENFEAT_DOM0));
        assert!(f.has(31));
        assert!(!f.has(32));
    }
}
