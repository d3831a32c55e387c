//! Hypercall numbers (`xen.h`).

use crate::harness::Catalogue;
use xen_abi::hypercall::*;

pub fn describe(c: &mut Catalogue) {
    c.consts.extend(consts!(Both;
        HYPERVISOR_MEMORY_OP => "__HYPERVISOR_memory_op",
        HYPERVISOR_SET_TIMER_OP => "__HYPERVISOR_set_timer_op",
        HYPERVISOR_XEN_VERSION => "__HYPERVISOR_xen_version",
        HYPERVISOR_CONSOLE_IO => "__HYPERVISOR_console_io",
        HYPERVISOR_GRANT_TABLE_OP => "__HYPERVISOR_grant_table_op",
        HYPERVISOR_VCPU_OP => "__HYPERVISOR_vcpu_op",
        HYPERVISOR_SCHED_OP => "__HYPERVISOR_sched_op",
        HYPERVISOR_EVENT_CHANNEL_OP => "__HYPERVISOR_event_channel_op",
        HYPERVISOR_PHYSDEV_OP => "__HYPERVISOR_physdev_op",
        HYPERVISOR_HVM_OP => "__HYPERVISOR_hvm_op",
        CONSOLEIO_WRITE => "CONSOLEIO_write",
        CONSOLEIO_READ => "CONSOLEIO_read",
    ));
}
