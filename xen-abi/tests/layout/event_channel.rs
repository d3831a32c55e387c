//! Event channels (`event_channel.h`, virtual IRQs of `xen.h`).

use crate::harness::Catalogue;
use crate::padding;
use xen_abi::event_channel;

pub fn describe(c: &mut Catalogue) {
    c.structs.push(
        layout!(Both, event_channel::EvtchnAllocUnbound = "struct evtchn_alloc_unbound" {
            dom => "dom",
            remote_dom => "remote_dom",
            port => "port",
        }),
    );
    padding::push(
        c,
        layout!(Both, event_channel::EvtchnBindInterdomain = "struct evtchn_bind_interdomain" {
            remote_dom => "remote_dom",
            pad => "(implicit padding)",
            remote_port => "remote_port",
            local_port => "local_port",
        }),
    );
    c.structs.push(
        layout!(Both, event_channel::EvtchnBindVirq = "struct evtchn_bind_virq" {
            virq => "virq",
            vcpu => "vcpu",
            port => "port",
        }),
    );
    c.structs.push(
        layout!(Both, event_channel::EvtchnBindPirq = "struct evtchn_bind_pirq" {
            pirq => "pirq",
            flags => "flags",
            port => "port",
        }),
    );
    c.structs.push(
        layout!(Both, event_channel::EvtchnBindIpi = "struct evtchn_bind_ipi" {
            vcpu => "vcpu",
            port => "port",
        }),
    );
    c.structs.push(
        layout!(Both, event_channel::EvtchnClose = "struct evtchn_close" {
            port => "port",
        }),
    );
    c.structs.push(
        layout!(Both, event_channel::EvtchnSend = "struct evtchn_send" {
            port => "port",
        }),
    );
    padding::push(
        c,
        layout!(Both, event_channel::EvtchnStatus = "struct evtchn_status" {
            dom => "dom",
            pad => "(implicit padding)",
            port => "port",
            status => "status",
            vcpu => "vcpu",
            u => "u",
        }),
    );
    // The union member, named through its containing structure.
    padding::push(
        c,
        layout!(Both, event_channel::EvtchnStatusInterdomain = "__typeof__(((struct evtchn_status *)0)->u.interdomain)" {
            dom => "dom",
            pad => "(implicit padding)",
            port => "port",
        }),
    );
    let evtchn_status_u_unbound_dom = 0u64;
    let evtchn_status_u_pirq = 0u64;
    let evtchn_status_u_virq = 0u64;
    let evtchn_status_u_interdomain = 0u64;
    c.consts.extend(consts!(Both;
        evtchn_status_u_unbound_dom => "offsetof(struct evtchn_status, u.unbound.dom) - offsetof(struct evtchn_status, u)",
        evtchn_status_u_pirq => "offsetof(struct evtchn_status, u.pirq) - offsetof(struct evtchn_status, u)",
        evtchn_status_u_virq => "offsetof(struct evtchn_status, u.virq) - offsetof(struct evtchn_status, u)",
        evtchn_status_u_interdomain => "offsetof(struct evtchn_status, u.interdomain) - offsetof(struct evtchn_status, u)",
    ));
    c.structs.push(
        layout!(Both, event_channel::EvtchnBindVcpu = "struct evtchn_bind_vcpu" {
            port => "port",
            vcpu => "vcpu",
        }),
    );
    c.structs.push(
        layout!(Both, event_channel::EvtchnUnmask = "struct evtchn_unmask" {
            port => "port",
        }),
    );
    c.structs.push(
        layout!(Both, event_channel::EvtchnReset = "struct evtchn_reset" {
            dom => "dom",
        }),
    );
    c.structs.push(
        layout!(X86_64, event_channel::EvtchnInitControl = "struct evtchn_init_control" {
            control_gfn => "control_gfn",
            offset => "offset",
            vcpu => "vcpu",
            link_bits => "link_bits",
            pad => "_pad",
        }),
    );
    c.structs.push(
        layout!(X86_64, event_channel::EvtchnExpandArray = "struct evtchn_expand_array" {
            array_gfn => "array_gfn",
        }),
    );
    c.structs.push(
        layout!(Both, event_channel::EvtchnSetPriority = "struct evtchn_set_priority" {
            port => "port",
            priority => "priority",
        }),
    );
    c.structs.push(
        layout!(Both, event_channel::EvtchnFifoControlBlock = "struct evtchn_fifo_control_block" {
            ready => "ready",
            rsvd => "_rsvd",
            head => "head",
        }),
    );

    constants(c);
}

fn constants(c: &mut Catalogue) {
    use xen_abi::event_channel::*;

    c.consts.extend(consts!(Both;
        EVTCHNOP_BIND_INTERDOMAIN => "EVTCHNOP_bind_interdomain",
        EVTCHNOP_BIND_VIRQ => "EVTCHNOP_bind_virq",
        EVTCHNOP_BIND_PIRQ => "EVTCHNOP_bind_pirq",
        EVTCHNOP_CLOSE => "EVTCHNOP_close",
        EVTCHNOP_SEND => "EVTCHNOP_send",
        EVTCHNOP_STATUS => "EVTCHNOP_status",
        EVTCHNOP_ALLOC_UNBOUND => "EVTCHNOP_alloc_unbound",
        EVTCHNOP_BIND_IPI => "EVTCHNOP_bind_ipi",
        EVTCHNOP_BIND_VCPU => "EVTCHNOP_bind_vcpu",
        EVTCHNOP_UNMASK => "EVTCHNOP_unmask",
        EVTCHNOP_RESET => "EVTCHNOP_reset",
        EVTCHNOP_INIT_CONTROL => "EVTCHNOP_init_control",
        EVTCHNOP_EXPAND_ARRAY => "EVTCHNOP_expand_array",
        EVTCHNOP_SET_PRIORITY => "EVTCHNOP_set_priority",
        BIND_PIRQ_WILL_SHARE => "BIND_PIRQ__WILL_SHARE",
        EVTCHNSTAT_CLOSED => "EVTCHNSTAT_closed",
        EVTCHNSTAT_UNBOUND => "EVTCHNSTAT_unbound",
        EVTCHNSTAT_INTERDOMAIN => "EVTCHNSTAT_interdomain",
        EVTCHNSTAT_PIRQ => "EVTCHNSTAT_pirq",
        EVTCHNSTAT_VIRQ => "EVTCHNSTAT_virq",
        EVTCHNSTAT_IPI => "EVTCHNSTAT_ipi",
        EVTCHN_FIFO_PRIORITY_MAX => "EVTCHN_FIFO_PRIORITY_MAX",
        EVTCHN_FIFO_PRIORITY_DEFAULT => "EVTCHN_FIFO_PRIORITY_DEFAULT",
        EVTCHN_FIFO_PRIORITY_MIN => "EVTCHN_FIFO_PRIORITY_MIN",
        EVTCHN_FIFO_PENDING => "EVTCHN_FIFO_PENDING",
        EVTCHN_FIFO_MASKED => "EVTCHN_FIFO_MASKED",
        EVTCHN_FIFO_LINKED => "EVTCHN_FIFO_LINKED",
        EVTCHN_FIFO_BUSY => "EVTCHN_FIFO_BUSY",
        EVTCHN_FIFO_LINK_BITS => "EVTCHN_FIFO_LINK_BITS",
        EVTCHN_FIFO_LINK_MASK => "EVTCHN_FIFO_LINK_MASK",
        EVTCHN_FIFO_NR_CHANNELS => "EVTCHN_FIFO_NR_CHANNELS",
        EVTCHN_FIFO_EVENT_WORDS_PER_PAGE => "4096 / sizeof(event_word_t)",
        VIRQ_TIMER => "VIRQ_TIMER",
        VIRQ_DEBUG => "VIRQ_DEBUG",
        VIRQ_CONSOLE => "VIRQ_CONSOLE",
        VIRQ_DOM_EXC => "VIRQ_DOM_EXC",
        VIRQ_TBUF => "VIRQ_TBUF",
        VIRQ_DEBUGGER => "VIRQ_DEBUGGER",
        VIRQ_XENOPROF => "VIRQ_XENOPROF",
        VIRQ_CON_RING => "VIRQ_CON_RING",
        VIRQ_PCPU_STATE => "VIRQ_PCPU_STATE",
        VIRQ_MEM_EVENT => "VIRQ_MEM_EVENT",
        VIRQ_ARGO => "VIRQ_ARGO",
        VIRQ_ENOMEM => "VIRQ_ENOMEM",
        VIRQ_XENPMU => "VIRQ_XENPMU",
        NR_VIRQS => "NR_VIRQS",
    ));
    // The 2-level limit depends on the width of xen_ulong_t; this crate has the x86_64 value.
    c.consts
        .extend(consts!(X86_64; EVTCHN_2L_NR_CHANNELS => "EVTCHN_2L_NR_CHANNELS"));
    let evtchn_fifo_max_queues = EVTCHN_FIFO_MAX_QUEUES as u64;
    let event_word_size = size_of::<EventWord>() as u64;
    let event_word_pending = EventWordFlags::PENDING.bits();
    let event_word_masked = EventWordFlags::MASKED.bits();
    let event_word_linked = EventWordFlags::LINKED.bits();
    let event_word_busy = EventWordFlags::BUSY.bits();
    c.consts.extend(consts!(Both;
        evtchn_fifo_max_queues => "EVTCHN_FIFO_MAX_QUEUES",
        event_word_size => "sizeof(event_word_t)",
        event_word_pending => "1u << EVTCHN_FIFO_PENDING",
        event_word_masked => "1u << EVTCHN_FIFO_MASKED",
        event_word_linked => "1u << EVTCHN_FIFO_LINKED",
        event_word_busy => "1u << EVTCHN_FIFO_BUSY",
    ));
}
