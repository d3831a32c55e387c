//! The shared-info page and per-vCPU info (`xen.h`, `arch-x86/xen.h`, `arch-x86/xen-x86_64.h`),
//! in the x86_64 layout, and the registration of a vCPU-info area (`vcpu.h`).
//!
//! An HVM guest maps the shared-info page into its physical address space with
//! [`crate::memory::XENMEM_ADD_TO_PHYSMAP`] and [`crate::memory::XENMAPSPACE_SHARED_INFO`]. It
//! holds a [`VcpuInfo`] for each of the first [`XEN_LEGACY_MAX_VCPUS`] vCPUs, the 2-level
//! event-channel pending and mask bitmaps, and the wall-clock time. A guest with more vCPUs (or
//! wanting the area elsewhere) places each vCPU's [`VcpuInfo`] in its own memory with
//! [`VCPUOP_REGISTER_VCPU_INFO`].
//!
//! # Reading the time consistently
//! Xen updates a [`VcpuTimeInfo`] (and the wall clock, with `wc_version`) like a sequence lock: it
//! increments `version` to an odd value, writes the fields, then increments `version` to an even
//! value. A reader reads `version`, then the fields, then `version` again (with read barriers in
//! between), and retries while the two reads differ or are odd ([`time_version_is_stable`]).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The number of [`VcpuInfo`] slots in the shared-info page (`XEN_LEGACY_MAX_VCPUS`).
pub const XEN_LEGACY_MAX_VCPUS: usize = 32;

/// The number of 64-bit words in each 2-level event bitmap (`sizeof(xen_ulong_t) * 8`).
pub const EVTCHN_2L_WORDS: usize = 64;

/// The per-vCPU time parameters Xen maintains (`struct vcpu_time_info`).
///
/// System time (ns since boot) at TSC value `tsc` is [`VcpuTimeInfo::system_time_at`].
#[doc(alias = "vcpu_time_info")]
#[doc(alias = "vcpu_time_info_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct VcpuTimeInfo {
    /// Sequence counter: odd while Xen updates the fields.
    pub version: u32,
    /// Reserved.
    pub pad0: u32,
    /// The TSC when the fields were last updated.
    pub tsc_timestamp: u64,
    /// System time in ns since boot at `tsc_timestamp`.
    pub system_time: u64,
    /// Multiplier from (shifted) TSC ticks to ns, a 32.32 fixed-point fraction.
    pub tsc_to_system_mul: u32,
    /// Power-of-two shift applied to the TSC delta before the multiplication (negative: right).
    pub tsc_shift: i8,
    /// [`PvclockFlags`] bits.
    pub flags: u8,
    /// Reserved.
    pub pad1: [u8; 2],
}

impl VcpuTimeInfo {
    /// System time in ns at TSC value `tsc`: `system_time + (((tsc - tsc_timestamp) << tsc_shift)
    /// * tsc_to_system_mul) >> 32`, with the shift to the right when `tsc_shift` is negative. The
    /// fields must come from one consistent read ([`time_version_is_stable`]).
    pub const fn system_time_at(&self, tsc: u64) -> u64 {
        let mut delta = tsc.wrapping_sub(self.tsc_timestamp);
        if self.tsc_shift >= 0 {
            delta <<= self.tsc_shift as u32 & 63;
        } else {
            delta >>= self.tsc_shift.unsigned_abs() as u32 & 63;
        }
        let scaled = ((delta as u128 * self.tsc_to_system_mul as u128) >> 32) as u64;
        self.system_time.wrapping_add(scaled)
    }
}

/// Whether two reads of a `version` (or `wc_version`) counter, before and after reading the
/// fields it protects, show that the fields read are consistent: equal and even.
pub const fn time_version_is_stable(before: u32, after: u32) -> bool {
    before == after && before & 1 == 0
}

bitflags::bitflags! {
    /// The `flags` of [`VcpuTimeInfo`] (`XEN_PVCLOCK_*`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct PvclockFlags: u8 {
        /// The TSC is stable across vCPUs, so times read on different vCPUs are monotonic
        /// together (`XEN_PVCLOCK_TSC_STABLE_BIT`).
        #[doc(alias = "XEN_PVCLOCK_TSC_STABLE_BIT")]
        const TSC_STABLE = 1 << 0;
        /// The guest was paused, for example by the toolstack (`XEN_PVCLOCK_GUEST_STOPPED`).
        #[doc(alias = "XEN_PVCLOCK_GUEST_STOPPED")]
        const GUEST_STOPPED = 1 << 1;
    }
}

/// The x86_64 architecture part of [`VcpuInfo`] (`struct arch_vcpu_info`).
#[doc(alias = "arch_vcpu_info")]
#[doc(alias = "arch_vcpu_info_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct ArchVcpuInfo {
    /// The faulting address of a PV guest's last page fault.
    pub cr2: u64,
    /// Reserved; makes [`VcpuInfo`] 64 bytes.
    pub pad: u64,
}

/// A vCPU's event-upcall state and time (`struct vcpu_info`), 64 bytes.
#[doc(alias = "vcpu_info")]
#[doc(alias = "vcpu_info_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct VcpuInfo {
    /// Set non-zero by Xen when an event is pending for the vCPU; the guest clears it before
    /// scanning for pending events.
    pub evtchn_upcall_pending: u8,
    /// While non-zero, Xen makes no upcall to the vCPU (PV; HVM guests mask with the interrupt
    /// flag instead).
    pub evtchn_upcall_mask: u8,
    /// Padding to the alignment of `evtchn_pending_sel` (implicit in C).
    pub pad: [u8; 6],
    /// 2-level ABI: bit `i` set means word `i` of the shared-info `evtchn_pending` may have a
    /// pending, unmasked port for this vCPU. Cleared by the guest with an atomic exchange.
    pub evtchn_pending_sel: u64,
    /// Architecture-specific state.
    pub arch: ArchVcpuInfo,
    /// Time parameters.
    pub time: VcpuTimeInfo,
}

/// The x86_64 architecture part of [`SharedInfo`] (`struct arch_shared_info`); used by PV
/// guests' physical-to-machine tables, unused by HVM guests.
#[doc(alias = "arch_shared_info")]
#[doc(alias = "arch_shared_info_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct ArchSharedInfo {
    /// The number of valid P2M entries.
    pub max_pfn: u64,
    /// The frame of the P2M frame-list list (0 if not set up, !0 if invalid).
    pub pfn_to_mfn_frame_list_list: u64,
    /// The NMI reason bits.
    pub nmi_reason: u64,
    /// The CR3 of the address space of the linear P2M list (0 if not used).
    pub p2m_cr3: u64,
    /// The virtual address of the linear P2M list.
    pub p2m_vaddr: u64,
    /// Incremented by the guest before and after each change of the P2M list (odd: changing).
    pub p2m_generation: u64,
}

/// The shared-info page in the x86_64 layout (`struct shared_info`). It is smaller than a page;
/// the rest of the page is unused.
#[doc(alias = "shared_info")]
#[doc(alias = "shared_info_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct SharedInfo {
    /// The first vCPUs' info, unless moved with [`VCPUOP_REGISTER_VCPU_INFO`].
    pub vcpu_info: [VcpuInfo; XEN_LEGACY_MAX_VCPUS],
    /// 2-level ABI: bit `p % 64` of word `p / 64` is set by Xen when port `p` becomes pending;
    /// cleared by the guest.
    pub evtchn_pending: [u64; EVTCHN_2L_WORDS],
    /// 2-level ABI: while bit `p` is set, port `p` raises no upcall. Written by the guest only.
    pub evtchn_mask: [u64; EVTCHN_2L_WORDS],
    /// Sequence counter of the wall clock, used like [`VcpuTimeInfo::version`].
    pub wc_version: u32,
    /// Wall-clock seconds since the Unix epoch (low 32 bits) at system time 0, adjusted by the
    /// domain's time offset.
    pub wc_sec: u32,
    /// Nanoseconds part of the wall clock.
    pub wc_nsec: u32,
    /// High 32 bits of the wall-clock seconds (x86_64 layout only).
    pub wc_sec_hi: u32,
    /// Architecture-specific state.
    pub arch: ArchSharedInfo,
}

impl SharedInfo {
    /// The wall-clock seconds at system time 0, combining `wc_sec_hi` and `wc_sec`. Read within a
    /// stable `wc_version` ([`time_version_is_stable`]).
    pub const fn wall_clock_seconds(&self) -> u64 {
        (self.wc_sec_hi as u64) << 32 | self.wc_sec as u64
    }
}

/// Places a vCPU's [`VcpuInfo`] in guest memory (`VCPUOP_register_vcpu_info`, a sub-op of
/// [`crate::hypercall::HYPERVISOR_VCPU_OP`] taking the vCPU id and a [`VcpuRegisterVcpuInfo`]).
/// It can be done once per vCPU; afterwards Xen no longer updates the vCPU's slot in the
/// shared-info page.
#[doc(alias = "VCPUOP_register_vcpu_info")]
pub const VCPUOP_REGISTER_VCPU_INFO: u32 = 10;

/// Argument of [`VCPUOP_REGISTER_VCPU_INFO`] (`struct vcpu_register_vcpu_info`).
#[doc(alias = "vcpu_register_vcpu_info")]
#[doc(alias = "vcpu_register_vcpu_info_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct VcpuRegisterVcpuInfo {
    /// The GFN of the page holding the [`VcpuInfo`].
    pub mfn: u64,
    /// Byte offset of the [`VcpuInfo`] within the page; it must not cross the page end.
    pub offset: u32,
    /// Reserved, zero.
    pub rsvd: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    #[test]
    fn shared_info_fits_in_a_page() {
        assert_eq!(size_of::<VcpuInfo>(), 64);
        assert!(size_of::<SharedInfo>() <= 4096);
        let zero = SharedInfo::new_zeroed();
        assert_eq!(zero.vcpu_info[31].time.version, 0);
    }

    #[test]
    fn system_time_scales_the_tsc_delta() {
        let mut t = VcpuTimeInfo::new_zeroed();
        t.tsc_timestamp = 1_000;
        t.system_time = 5_000_000;
        // A 2 GHz TSC: 0.5 ns per tick is mul = 2^31 with shift 0.
        t.tsc_to_system_mul = 1 << 31;
        assert_eq!(t.system_time_at(3_000), 5_001_000);
        // The same with the delta pre-shifted right by one and a multiplier of 1.0.
        t.tsc_shift = -1;
        t.tsc_to_system_mul = u32::MAX;
        assert_eq!(t.system_time_at(3_000), 5_000_000 + 999);
        t.tsc_shift = 1;
        t.tsc_to_system_mul = 1 << 30;
        assert_eq!(t.system_time_at(3_000), 5_001_000);
    }

    #[test]
    fn version_stability() {
        assert!(time_version_is_stable(4, 4));
        assert!(!time_version_is_stable(5, 5));
        assert!(!time_version_is_stable(4, 6));
    }

    #[test]
    fn wall_clock_combines_the_halves() {
        let mut s = SharedInfo::new_zeroed();
        s.wc_sec = 0x8000_0000;
        s.wc_sec_hi = 1;
        assert_eq!(s.wall_clock_seconds(), 0x1_8000_0000);
    }
}
