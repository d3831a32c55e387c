//! HVM operations and parameters (`hvm/hvm_op.h`, `hvm/params.h`).

use crate::harness::Catalogue;
use crate::padding;
use xen_abi::hvm;

pub fn describe(c: &mut Catalogue) {
    c.structs
        .push(layout!(X86_64, hvm::HvmParam = "struct xen_hvm_param" {
            domid => "domid",
            pad => "pad",
            index => "index",
            value => "value",
        }));
    padding::push(
        c,
        layout!(Both, hvm::HvmEvtchnUpcallVector = "struct xen_hvm_evtchn_upcall_vector" {
            vcpu => "vcpu",
            vector => "vector",
            pad => "(implicit padding)",
        }),
    );
    c.structs.push(
        layout!(X86_64, hvm::HvmPagetableDying = "struct xen_hvm_pagetable_dying" {
            domid => "domid",
            pad => "pad",
            gpa => "gpa",
        }),
    );
    c.structs.push(
        layout!(X86_64, hvm::HvmGetTime = "struct xen_hvm_get_time" {
            now => "now",
        }),
    );
    constants(c);
}

fn constants(c: &mut Catalogue) {
    use xen_abi::hvm::*;

    c.consts.extend(consts!(Both;
        HVMOP_SET_PARAM => "HVMOP_set_param",
        HVMOP_GET_PARAM => "HVMOP_get_param",
        HVMOP_FLUSH_TLBS => "HVMOP_flush_tlbs",
        HVMOP_PAGETABLE_DYING => "HVMOP_pagetable_dying",
        HVMOP_GET_TIME => "HVMOP_get_time",
        HVMOP_SET_EVTCHN_UPCALL_VECTOR => "HVMOP_set_evtchn_upcall_vector",
        HVM_PARAM_CALLBACK_IRQ => "HVM_PARAM_CALLBACK_IRQ",
        HVM_PARAM_STORE_PFN => "HVM_PARAM_STORE_PFN",
        HVM_PARAM_STORE_EVTCHN => "HVM_PARAM_STORE_EVTCHN",
        HVM_PARAM_IOREQ_PFN => "HVM_PARAM_IOREQ_PFN",
        HVM_PARAM_BUFIOREQ_PFN => "HVM_PARAM_BUFIOREQ_PFN",
        HVM_PARAM_VIRIDIAN => "HVM_PARAM_VIRIDIAN",
        HVM_PARAM_TIMER_MODE => "HVM_PARAM_TIMER_MODE",
        HVM_PARAM_HPET_ENABLED => "HVM_PARAM_HPET_ENABLED",
        HVM_PARAM_ACPI_S_STATE => "HVM_PARAM_ACPI_S_STATE",
        HVM_PARAM_VPT_ALIGN => "HVM_PARAM_VPT_ALIGN",
        HVM_PARAM_CONSOLE_PFN => "HVM_PARAM_CONSOLE_PFN",
        HVM_PARAM_CONSOLE_EVTCHN => "HVM_PARAM_CONSOLE_EVTCHN",
        HVM_PARAM_ACPI_IOPORTS_LOCATION => "HVM_PARAM_ACPI_IOPORTS_LOCATION",
        HVM_PARAM_TRIPLE_FAULT_REASON => "HVM_PARAM_TRIPLE_FAULT_REASON",
        HVM_PARAM_VM_GENERATION_ID_ADDR => "HVM_PARAM_VM_GENERATION_ID_ADDR",
        HVM_NR_PARAMS => "HVM_NR_PARAMS",
        HVM_PARAM_CALLBACK_IRQ_TYPE_MASK => "HVM_PARAM_CALLBACK_IRQ_TYPE_MASK",
        HVM_PARAM_CALLBACK_TYPE_SHIFT => "__builtin_ctzll(HVM_PARAM_CALLBACK_IRQ_TYPE_MASK)",
        HVM_PARAM_CALLBACK_TYPE_GSI => "HVM_PARAM_CALLBACK_TYPE_GSI",
        HVM_PARAM_CALLBACK_TYPE_PCI_INTX => "HVM_PARAM_CALLBACK_TYPE_PCI_INTX",
        HVM_PARAM_CALLBACK_TYPE_VECTOR => "HVM_PARAM_CALLBACK_TYPE_VECTOR",
    ));
}
