//! Hypercall numbers (`xen.h`) and the layout of the hypercall page.
//!
//! An HVM or PVH guest on x86 does not issue `vmcall`/`vmmcall` itself: it asks Xen to fill a page
//! of its own memory with one call stub per hypercall, then calls into that page. The page is
//! installed by writing its guest-physical address to the MSR whose index CPUID leaf
//! [`crate::cpuid::XEN_CPUID_LEAF_HYPERCALL`] reports in EBX. Stub `n` starts at byte
//! `n * HYPERCALL_ENTRY_SIZE` ([`hypercall_offset`]).
//!
//! In the x86_64 ABI the stub takes the arguments in `rdi`, `rsi`, `rdx`, `r10` and `r8`
//! (arguments 1 to 5) and returns a `long` in `rax`: zero or a positive value on success, a
//! negated Xen errno on failure. Argument registers are clobbered.
//!
//! Only the hypercalls an HVM/PVH guest's drivers use are listed; the PV-only ones (page-table
//! updates, trap tables, segment bases …) and the toolstack ones (domctl, sysctl, dm_op) are not.

/// Creates, reads and releases guest memory (`__HYPERVISOR_memory_op`, sub-ops `XENMEM_*` in
/// [`crate::memory`]).
#[doc(alias = "__HYPERVISOR_memory_op")]
pub const HYPERVISOR_MEMORY_OP: u32 = 12;

/// Sets a one-shot timer for the calling vCPU (`__HYPERVISOR_set_timer_op`).
#[doc(alias = "__HYPERVISOR_set_timer_op")]
pub const HYPERVISOR_SET_TIMER_OP: u32 = 15;

/// Queries the hypervisor version and features (`__HYPERVISOR_xen_version`, sub-ops `XENVER_*` in
/// [`crate::version`]).
#[doc(alias = "__HYPERVISOR_xen_version")]
pub const HYPERVISOR_XEN_VERSION: u32 = 17;

/// Writes to (or, for the hardware domain, reads from) Xen's console (`__HYPERVISOR_console_io`,
/// commands [`CONSOLEIO_WRITE`] and [`CONSOLEIO_READ`]).
#[doc(alias = "__HYPERVISOR_console_io")]
pub const HYPERVISOR_CONSOLE_IO: u32 = 18;

/// Grant-table operations (`__HYPERVISOR_grant_table_op`, sub-ops `GNTTABOP_*` in
/// [`crate::grant_table`]).
#[doc(alias = "__HYPERVISOR_grant_table_op")]
pub const HYPERVISOR_GRANT_TABLE_OP: u32 = 20;

/// Per-vCPU operations (`__HYPERVISOR_vcpu_op`, sub-ops `VCPUOP_*`, such as
/// [`crate::shared_info::VCPUOP_REGISTER_VCPU_INFO`]).
#[doc(alias = "__HYPERVISOR_vcpu_op")]
pub const HYPERVISOR_VCPU_OP: u32 = 24;

/// Scheduler operations: yield, block, shutdown, poll (`__HYPERVISOR_sched_op`, sub-ops
/// `SCHEDOP_*` in [`crate::sched`]).
#[doc(alias = "__HYPERVISOR_sched_op")]
pub const HYPERVISOR_SCHED_OP: u32 = 29;

/// Event-channel operations (`__HYPERVISOR_event_channel_op`, sub-ops `EVTCHNOP_*` in
/// [`crate::event_channel`]).
#[doc(alias = "__HYPERVISOR_event_channel_op")]
pub const HYPERVISOR_EVENT_CHANNEL_OP: u32 = 32;

/// Physical-device operations: PIRQ mapping, EOI (`__HYPERVISOR_physdev_op`).
#[doc(alias = "__HYPERVISOR_physdev_op")]
pub const HYPERVISOR_PHYSDEV_OP: u32 = 33;

/// HVM-specific operations: parameters, upcall vectors (`__HYPERVISOR_hvm_op`, sub-ops `HVMOP_*`
/// in [`crate::hvm`]).
#[doc(alias = "__HYPERVISOR_hvm_op")]
pub const HYPERVISOR_HVM_OP: u32 = 34;

/// `console_io` command: write `count` bytes from the buffer to Xen's console (`CONSOLEIO_write`).
/// Unprivileged domains' output is filtered to printable characters and may be buffered until a
/// newline.
#[doc(alias = "CONSOLEIO_write")]
pub const CONSOLEIO_WRITE: u32 = 0;

/// `console_io` command: read up to `count` bytes from Xen's console (`CONSOLEIO_read`); only the
/// hardware domain may use it.
#[doc(alias = "CONSOLEIO_read")]
pub const CONSOLEIO_READ: u32 = 1;

/// Bytes per stub in the hypercall page: hypercall `n`'s stub starts at `n * 32`.
pub const HYPERCALL_ENTRY_SIZE: usize = 32;

/// The size of the hypercall page (one 4 KiB page).
pub const HYPERCALL_PAGE_SIZE: usize = 4096;

/// Stubs in one hypercall page, so the hypercall numbers one page covers (0 to 127).
pub const HYPERCALL_PAGE_ENTRIES: usize = HYPERCALL_PAGE_SIZE / HYPERCALL_ENTRY_SIZE;

/// Byte offset of hypercall `nr`'s stub in the hypercall page, or `None` when `nr` is beyond the
/// page.
pub const fn hypercall_offset(nr: u32) -> Option<usize> {
    let nr = nr as usize;
    if nr < HYPERCALL_PAGE_ENTRIES {
        Some(nr * HYPERCALL_ENTRY_SIZE)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stubs_are_32_bytes_apart() {
        assert_eq!(HYPERCALL_PAGE_ENTRIES, 128);
        assert_eq!(hypercall_offset(0), Some(0));
        assert_eq!(hypercall_offset(HYPERVISOR_MEMORY_OP), Some(12 * 32));
        assert_eq!(hypercall_offset(HYPERVISOR_HVM_OP), Some(34 * 32));
        assert_eq!(hypercall_offset(127), Some(4064));
        assert_eq!(hypercall_offset(128), None);
        assert_eq!(hypercall_offset(u32::MAX), None);
    }
}
