//! Scheduler operations (`sched.h`).

use crate::harness::Catalogue;
use crate::padding;
use xen_abi::sched;

pub fn describe(c: &mut Catalogue) {
    c.structs.push(
        layout!(Both, sched::SchedShutdown = "struct sched_shutdown" {
            reason => "reason",
        }),
    );
    padding::push(
        c,
        layout!(X86_64, sched::SchedPoll = "struct sched_poll" {
            ports => "ports",
            nr_ports => "nr_ports",
            pad => "(implicit padding)",
            timeout => "timeout",
        }),
    );
    padding::push(
        c,
        layout!(Both, sched::SchedRemoteShutdown = "struct sched_remote_shutdown" {
            domain_id => "domain_id",
            pad => "(implicit padding)",
            reason => "reason",
        }),
    );
    c.structs.push(
        layout!(Both, sched::SchedWatchdog = "struct sched_watchdog" {
            id => "id",
            timeout => "timeout",
        }),
    );
    c.structs.push(
        layout!(Both, sched::SchedPinOverride = "struct sched_pin_override" {
            pcpu => "pcpu",
        }),
    );
    constants(c);
}

fn constants(c: &mut Catalogue) {
    use xen_abi::sched::*;

    c.consts.extend(consts!(Both;
        SCHEDOP_YIELD => "SCHEDOP_yield",
        SCHEDOP_BLOCK => "SCHEDOP_block",
        SCHEDOP_SHUTDOWN => "SCHEDOP_shutdown",
        SCHEDOP_POLL => "SCHEDOP_poll",
        SCHEDOP_REMOTE_SHUTDOWN => "SCHEDOP_remote_shutdown",
        SCHEDOP_SHUTDOWN_CODE => "SCHEDOP_shutdown_code",
        SCHEDOP_WATCHDOG => "SCHEDOP_watchdog",
        SCHEDOP_PIN_OVERRIDE => "SCHEDOP_pin_override",
        SHUTDOWN_POWEROFF => "SHUTDOWN_poweroff",
        SHUTDOWN_REBOOT => "SHUTDOWN_reboot",
        SHUTDOWN_SUSPEND => "SHUTDOWN_suspend",
        SHUTDOWN_CRASH => "SHUTDOWN_crash",
        SHUTDOWN_WATCHDOG => "SHUTDOWN_watchdog",
        SHUTDOWN_SOFT_RESET => "SHUTDOWN_soft_reset",
        SHUTDOWN_MAX => "SHUTDOWN_MAX",
    ));
}
