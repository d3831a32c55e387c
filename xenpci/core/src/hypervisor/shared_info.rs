//! The shared-info page: mapping it, and reading the wall clock and per-vCPU system time.
//!
//! The page is mapped with `XENMEM_add_to_physmap(XENMAPSPACE_shared_info)` at a GFN of the
//! platform's window ([`map`]); the shell then maps that GFN as memory and gives the core read
//! access through [`SharedMemory`]. The time fields are protected by sequence counters Xen makes
//! odd while it updates them; readers retry while a counter is odd or changed, at most
//! [`SEQLOCK_RETRIES`] times, then report [`TimeError::Unstable`] rather than spin forever.

use core::fmt;
use core::mem::offset_of;
use core::sync::atomic::{fence, Ordering};

use xen_abi::memory::{AddToPhysmap, XENMAPSPACE_SHARED_INFO};
use xen_abi::shared_info::{
    SharedInfo, VcpuInfo, VcpuRegisterVcpuInfo, VcpuTimeInfo, XEN_LEGACY_MAX_VCPUS,
};
use xen_abi::types::DOMID_SELF;
use zerocopy::{FromBytes, IntoBytes};

use super::calls::{
    cmd_struct, invoke, VCPUOP_REGISTER_VCPU_INFO_CALL, XENMEM_ADD_TO_PHYSMAP_CALL,
};
use super::{Arg, HvError, Hypervisor, XenErrno};

/// How many times a sequence-locked read is attempted before giving up.
pub const SEQLOCK_RETRIES: u32 = 64;

/// Read access to the mapped shared-info page.
pub trait SharedMemory {
    /// Copies `out.len()` bytes from byte `offset` of the page (plain loads; the copy may be
    /// torn, the sequence counter detects it). `offset + out.len()` is at most 4096.
    fn read_bytes(&self, offset: usize, out: &mut [u8]);
    /// Loads the 32-bit word at byte `offset` (4-aligned) with acquire ordering.
    fn load_u32_acquire(&self, offset: usize) -> u32;
}

impl<T: SharedMemory + ?Sized> SharedMemory for &T {
    fn read_bytes(&self, offset: usize, out: &mut [u8]) {
        (**self).read_bytes(offset, out)
    }
    fn load_u32_acquire(&self, offset: usize) -> u32 {
        (**self).load_u32_acquire(offset)
    }
}

/// Why reading the time failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeError {
    /// The counter stayed odd or kept changing for [`SEQLOCK_RETRIES`] attempts.
    Unstable {
        /// Attempts made.
        attempts: u32,
    },
    /// The vCPU has no slot in the shared-info page.
    InvalidVcpu {
        /// The vCPU.
        vcpu: u32,
    },
}

impl fmt::Display for TimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeError::Unstable { attempts } => {
                write!(f, "time fields unstable after {attempts} attempts")
            }
            TimeError::InvalidVcpu { vcpu } => {
                write!(f, "vCPU {vcpu} has no slot in the shared-info page")
            }
        }
    }
}

/// Maps the shared-info page at a fresh GFN of the platform's window and returns the GFN.
pub fn map<H: Hypervisor + ?Sized>(hv: &H) -> Result<u64, HvError> {
    let gfn = hv
        .allocate_frames(1)
        .ok_or(HvError::WindowExhausted { count: 1 })?;
    map_at(hv, gfn)?;
    Ok(gfn)
}

/// Maps the shared-info page at `gfn` (again, after a resume).
pub fn map_at<H: Hypervisor + ?Sized>(hv: &H, gfn: u64) -> Result<(), HvError> {
    let mut arg = AddToPhysmap {
        domid: DOMID_SELF,
        size: 0,
        space: XENMAPSPACE_SHARED_INFO,
        idx: 0,
        gpfn: gfn,
    };
    invoke(
        hv,
        &XENMEM_ADD_TO_PHYSMAP_CALL,
        &mut cmd_struct(&XENMEM_ADD_TO_PHYSMAP_CALL, arg.as_mut_bytes()),
    )
    .map(drop)
}

/// Places `vcpu`'s `vcpu_info` at byte `offset` of the page at `gfn`
/// (`VCPUOP_register_vcpu_info`). Needed for vCPUs at or beyond [`XEN_LEGACY_MAX_VCPUS`], which
/// have no slot in the shared-info page; once per vCPU (and again after a resume in a new
/// domain). The area must lie inside the page and be 8-byte aligned, as Xen requires (it answers
/// `ENXIO` otherwise; the core refuses such an offset without issuing the call). `ENOSYS` (an old
/// Xen) means only the first 32 vCPUs can take events.
pub fn register_vcpu_info<H: Hypervisor + ?Sized>(
    hv: &H,
    vcpu: u32,
    gfn: u64,
    offset: u32,
) -> Result<(), HvError> {
    let call = &VCPUOP_REGISTER_VCPU_INFO_CALL;
    let size = size_of::<VcpuInfo>();
    if offset as usize + size > 4096 || offset % 8 != 0 {
        return Err(HvError::Hypercall {
            op: call.op,
            cmd: u64::from(call.cmd),
            errno: XenErrno::ENXIO,
        });
    }
    let mut arg = VcpuRegisterVcpuInfo {
        mfn: gfn,
        offset,
        rsvd: 0,
    };
    let mut args = [
        Arg::Value(u64::from(call.cmd)),
        Arg::Value(u64::from(vcpu)),
        Arg::Buffer(arg.as_mut_bytes()),
        Arg::Unused,
        Arg::Unused,
    ];
    invoke(hv, call, &mut args).map(drop)
}

/// The wall clock at Xen system time 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WallClock {
    /// Seconds since the Unix epoch.
    pub sec: u64,
    /// Nanoseconds, below 10^9 when Xen is sane (not enforced).
    pub nsec: u32,
}

impl WallClock {
    /// The wall clock `system_ns` nanoseconds after system time 0, normalised.
    pub fn plus_ns(self, system_ns: u64) -> WallClock {
        let total = u128::from(self.nsec) + u128::from(system_ns);
        let sec = self.sec.wrapping_add((total / 1_000_000_000) as u64);
        WallClock {
            sec,
            nsec: (total % 1_000_000_000) as u32,
        }
    }
}

/// Reads `T` under the sequence counter at `version_offset`, the fields at `offset`.
fn seq_read<M: SharedMemory + ?Sized, const N: usize>(
    mem: &M,
    version_offset: usize,
    offset: usize,
) -> Result<[u8; N], TimeError> {
    let mut buf = [0u8; N];
    for _ in 0..SEQLOCK_RETRIES {
        let before = mem.load_u32_acquire(version_offset);
        if before & 1 != 0 {
            core::hint::spin_loop();
            continue;
        }
        mem.read_bytes(offset, &mut buf);
        fence(Ordering::Acquire);
        let after = mem.load_u32_acquire(version_offset);
        if before == after {
            return Ok(buf);
        }
        core::hint::spin_loop();
    }
    Err(TimeError::Unstable {
        attempts: SEQLOCK_RETRIES,
    })
}

const WC_OFFSET: usize = offset_of!(SharedInfo, wc_version);
const WC_LEN: usize = offset_of!(SharedInfo, arch) - WC_OFFSET;

/// Reads the wall clock (`wc_sec_hi:wc_sec`, `wc_nsec`) under `wc_version`.
pub fn wall_clock<M: SharedMemory + ?Sized>(mem: &M) -> Result<WallClock, TimeError> {
    let bytes: [u8; WC_LEN] = seq_read(mem, WC_OFFSET, WC_OFFSET)?;
    let word = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let (sec, nsec, sec_hi) = (word(4), word(8), word(12));
    Ok(WallClock {
        sec: u64::from(sec_hi) << 32 | u64::from(sec),
        nsec,
    })
}

const TIME_LEN: usize = size_of::<VcpuTimeInfo>();

/// Byte offset of vCPU `vcpu`'s `vcpu_time_info` in the shared-info page.
pub fn vcpu_time_offset(vcpu: u32) -> Result<usize, TimeError> {
    if vcpu as usize >= XEN_LEGACY_MAX_VCPUS {
        return Err(TimeError::InvalidVcpu { vcpu });
    }
    Ok(offset_of!(SharedInfo, vcpu_info)
        + vcpu as usize * size_of::<VcpuInfo>()
        + offset_of!(VcpuInfo, time))
}

/// Reads vCPU `vcpu`'s time parameters consistently.
pub fn vcpu_time<M: SharedMemory + ?Sized>(mem: &M, vcpu: u32) -> Result<VcpuTimeInfo, TimeError> {
    let offset = vcpu_time_offset(vcpu)?;
    let bytes: [u8; TIME_LEN] = seq_read(mem, offset, offset)?;
    // The array has exactly the structure's size, so this cannot fail.
    VcpuTimeInfo::read_from_bytes(&bytes).map_err(|_| TimeError::Unstable { attempts: 0 })
}

/// Scales a TSC delta to nanoseconds as Xen defines it: shift the delta left by `shift` (right
/// by `-shift` when negative), multiply by `mul` as a 32.32 fixed-point fraction, keep the
/// integer part. The product is computed in 128 bits, so it does not overflow for any input.
pub const fn scale_delta(delta: u64, mul: u32, shift: i8) -> u64 {
    let shifted = if shift >= 0 {
        delta << (shift as u32 & 63)
    } else {
        delta >> (shift.unsigned_abs() as u32 & 63)
    };
    ((shifted as u128 * mul as u128) >> 32) as u64
}

/// System time in ns at TSC value `tsc` from consistent time parameters.
pub const fn system_time_ns(time: &VcpuTimeInfo, tsc: u64) -> u64 {
    let delta = tsc.wrapping_sub(time.tsc_timestamp);
    time.system_time
        .wrapping_add(scale_delta(delta, time.tsc_to_system_mul, time.tsc_shift))
}

/// Reads vCPU `vcpu`'s time parameters and returns the system time at `tsc` (the caller's
/// `rdtsc` on that vCPU).
pub fn read_system_time<M: SharedMemory + ?Sized>(
    mem: &M,
    vcpu: u32,
    tsc: u64,
) -> Result<u64, TimeError> {
    Ok(system_time_ns(&vcpu_time(mem, vcpu)?, tsc))
}

/// The current wall-clock time: the wall clock at system time 0 plus the system time at `tsc`.
pub fn read_wall_time<M: SharedMemory + ?Sized>(
    mem: &M,
    vcpu: u32,
    tsc: u64,
) -> Result<WallClock, TimeError> {
    let base = wall_clock(mem)?;
    Ok(base.plus_ns(read_system_time(mem, vcpu, tsc)?))
}
