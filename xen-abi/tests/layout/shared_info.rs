//! The shared-info page and vCPU info (`xen.h`, `arch-x86/xen*.h`, `vcpu.h`), x86_64 layout.

use crate::harness::Catalogue;
use crate::padding;
use xen_abi::shared_info;

pub fn describe(c: &mut Catalogue) {
    c.structs.push(
        layout!(X86_64, shared_info::VcpuTimeInfo = "struct vcpu_time_info" {
            version => "version",
            pad0 => "pad0",
            tsc_timestamp => "tsc_timestamp",
            system_time => "system_time",
            tsc_to_system_mul => "tsc_to_system_mul",
            tsc_shift => "tsc_shift",
            flags => "flags",
            pad1 => "pad1",
        }),
    );
    c.structs.push(
        layout!(X86_64, shared_info::ArchVcpuInfo = "struct arch_vcpu_info" {
            cr2 => "cr2",
            pad => "pad",
        }),
    );
    padding::push(
        c,
        layout!(X86_64, shared_info::VcpuInfo = "struct vcpu_info" {
            evtchn_upcall_pending => "evtchn_upcall_pending",
            evtchn_upcall_mask => "evtchn_upcall_mask",
            pad => "(implicit padding)",
            evtchn_pending_sel => "evtchn_pending_sel",
            arch => "arch",
            time => "time",
        }),
    );
    c.structs.push(
        layout!(X86_64, shared_info::ArchSharedInfo = "struct arch_shared_info" {
            max_pfn => "max_pfn",
            pfn_to_mfn_frame_list_list => "pfn_to_mfn_frame_list_list",
            nmi_reason => "nmi_reason",
            p2m_cr3 => "p2m_cr3",
            p2m_vaddr => "p2m_vaddr",
            p2m_generation => "p2m_generation",
        }),
    );
    c.structs.push(
        layout!(X86_64, shared_info::SharedInfo = "struct shared_info" {
            vcpu_info => "vcpu_info",
            evtchn_pending => "evtchn_pending",
            evtchn_mask => "evtchn_mask",
            wc_version => "wc_version",
            wc_sec => "wc_sec",
            wc_nsec => "wc_nsec",
            wc_sec_hi => "wc_sec_hi",
            arch => "arch",
        }),
    );
    c.structs.push(
        layout!(X86_64, shared_info::VcpuRegisterVcpuInfo = "struct vcpu_register_vcpu_info" {
            mfn => "mfn",
            offset => "offset",
            rsvd => "rsvd",
        }),
    );
    constants(c);
}

fn constants(c: &mut Catalogue) {
    use xen_abi::shared_info::*;

    c.consts
        .extend(consts!(Both; VCPUOP_REGISTER_VCPU_INFO => "VCPUOP_register_vcpu_info"));
    let xen_legacy_max_vcpus = XEN_LEGACY_MAX_VCPUS as u64;
    let evtchn_2l_words = EVTCHN_2L_WORDS as u64;
    let xen_pvclock_tsc_stable = PvclockFlags::TSC_STABLE.bits();
    let xen_pvclock_guest_stopped = PvclockFlags::GUEST_STOPPED.bits();
    c.consts.extend(consts!(Both;
        xen_legacy_max_vcpus => "XEN_LEGACY_MAX_VCPUS",
        xen_pvclock_tsc_stable => "XEN_PVCLOCK_TSC_STABLE_BIT",
        xen_pvclock_guest_stopped => "XEN_PVCLOCK_GUEST_STOPPED",
    ));
    c.consts.extend(consts!(X86_64;
        evtchn_2l_words => "sizeof(((struct shared_info *)0)->evtchn_pending) / sizeof(xen_ulong_t)",
    ));
}
