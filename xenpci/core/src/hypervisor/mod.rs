//! The hypervisor level of the bus: finding Xen, choosing how to make hypercalls, mapping the
//! shared-info page and the grant-table frames, HVM parameters and event-channel upcall setup.
//!
//! # API summary (what a platform implements)
//! A platform is the Windows driver (instructions, the Xen platform PCI device's BAR), the lab's
//! Linux dom0 program (`lab/src/platform/hypervisor.rs`: `/dev/xen/privcmd`, CPUID through Xen's
//! forced-emulation prefix) or xen-sim (a model). It implements two traits; everything else in
//! this module is portable logic over them.
//!
//! - [`PortIo`]: `inb`/`inw`/`inl` and `outb`/`outw`/`outl` on an I/O port (`&self`). Used by
//!   [`crate::unplug`].
//! - [`Hypervisor`] (`PortIo` is a supertrait; every method takes `&self`, so one instance may be
//!   shared between vCPUs; use interior mutability in models):
//!   - `cpuid(leaf, subleaf) -> [u32; 4]`: EAX, EBX, ECX, EDX in that order.
//!   - `write_msr(msr, value)`: only used for the hypercall-page MSR.
//!   - `set_hypercall_mechanism(HypercallMechanism)`: called once by [`init`] before the first
//!     hypercall: `Vmcall`, `Vmmcall`, or `HypercallPage { gfn }` (the page Xen filled after the
//!     core wrote its address to the MSR; the platform calls stub `op` at `op * 32` in it).
//!   - `hypercall(op, &mut [Arg; 5]) -> i64`: issues hypercall `op` with the five argument
//!     registers (`rdi`, `rsi`, `rdx`, `r10`, `r8` on x86_64) loaded from the [`Arg`]s:
//!     [`Arg::Unused`] and [`Arg::Null`] as 0, [`Arg::Value`] as is, [`Arg::Buffer`] as the
//!     guest address of its bytes, and [`Arg::BufferWithHandle`] as the guest address of `arg`
//!     after writing the guest address of `buffer` as a little-endian `u64` at `handle_offset`
//!     of `arg` (a guest-handle field). Xen may write into the buffers; the platform makes its
//!     writes visible in the slices before returning (in place, or by copying back from the
//!     memory it passed). The slices are ordinary memory of the caller: the platform decides how
//!     Xen reaches them (on Windows non-paged memory and its linear address; in the lab a page
//!     of `/dev/xen/hypercall`). Returns Xen's raw return value (negative: `-errno`).
//!   - `allocate_frames(count) -> Option<u64>`: `count` consecutive unused guest frames (GFNs)
//!     of the window the platform reserves for mapping Xen pages into (on Windows the platform
//!     PCI device's memory BAR), or `None` when the window is exhausted. Never returns RAM.
//!   - `allocate_hypercall_page() -> Option<u64>`: the GFN of one page of executable RAM owned
//!     by the bus, for the hypercall-page fallback only; `None` if the platform cannot provide
//!     one (then the fallback is unavailable).
//!
//! Portable entry points built on them:
//! - [`detect::detect`] → [`detect::XenCpuid`] (base leaf, version, hypercall MSR, HVM features,
//!   vendor) or [`detect::DetectError`].
//! - [`mechanism::choose`] (a pure decision from the CPU vendor and a [`mechanism::Policy`]) and
//!   [`init`], which detects, decides, installs the hypercall page if needed and hands the
//!   mechanism to the platform.
//! - [`calls`]: the table of every hypercall the core makes and [`calls::invoke`], which checks
//!   a call's arguments against its entry before issuing it ([`HvError::Arity`] otherwise).
//! - [`version`]: `XENVER_version`, `XENVER_extraversion`, `XENVER_get_features`.
//! - [`shared_info`]: map the shared-info page; read the wall clock and per-vCPU time through
//!   [`shared_info::SharedMemory`] with bounded sequence-lock retries.
//! - [`gnttab`]: query size, grant-table version, the table's frames, map frames and grow a
//!   [`crate::grant_table::GrantTable`].
//! - [`hvm`]: HVM parameters (xenstore and console rings) and the event-channel upcall
//!   (per-vCPU vector or `HVM_PARAM_CALLBACK_IRQ`).
//! - [`sched`]: the suspend request.
//! - [`crate::evtchn::ops::HypercallEventChannels`]: the event-channel sub-ops over [`Hypervisor`].

pub mod calls;
pub mod detect;
pub mod gnttab;
pub mod hvm;
pub mod mechanism;
pub mod sched;
pub mod shared_info;
pub mod version;

#[cfg(test)]
mod tests;

use core::fmt;

pub use crate::evtchn::XenErrno;
pub use calls::{Call, Param};
pub use detect::{CpuVendor, DetectError, XenCpuid};
pub use mechanism::{HypercallMechanism, Policy};

/// Port I/O, by width.
pub trait PortIo {
    /// Reads a byte from `port`.
    fn inb(&self, port: u16) -> u8;
    /// Reads a 16-bit word from `port`.
    fn inw(&self, port: u16) -> u16;
    /// Reads a 32-bit word from `port`.
    fn inl(&self, port: u16) -> u32;
    /// Writes a byte to `port`.
    fn outb(&self, port: u16, value: u8);
    /// Writes a 16-bit word to `port`.
    fn outw(&self, port: u16, value: u16);
    /// Writes a 32-bit word to `port`.
    fn outl(&self, port: u16, value: u32);
}

/// One of the five argument registers of a hypercall.
#[derive(Debug, PartialEq, Eq)]
pub enum Arg<'a> {
    /// Not passed: the handler does not read the register (the platform loads 0).
    Unused,
    /// A number: a sub-op, a count, a vCPU id.
    Value(u64),
    /// A NULL guest handle (0) where the hypercall takes a handle Xen must not follow.
    Null,
    /// The guest address of these bytes (an argument structure, or an array Xen fills).
    Buffer(&'a mut [u8]),
    /// The guest address of `arg`, a structure whose 8 bytes at `handle_offset` the platform
    /// sets to the guest address of `buffer` (a guest-handle field) before the call.
    BufferWithHandle {
        /// The structure.
        arg: &'a mut [u8],
        /// Where in `arg` the handle goes (`handle_offset + 8 <= arg.len()`, checked by
        /// [`calls::invoke`]; a platform still must not panic on a bad one).
        handle_offset: usize,
        /// The memory the handle names.
        buffer: &'a mut [u8],
    },
}

impl Arg<'_> {
    /// The register's value when it is not an address ([`Arg::Unused`] and [`Arg::Null`] are
    /// 0); `None` for the buffers.
    pub fn scalar(&self) -> Option<u64> {
        match self {
            Arg::Unused | Arg::Null => Some(0),
            Arg::Value(v) => Some(*v),
            Arg::Buffer(_) | Arg::BufferWithHandle { .. } => None,
        }
    }
}

/// What the hypervisor level needs from the platform. See the [module docs](self) for the
/// contract of each method.
pub trait Hypervisor: PortIo {
    /// Executes CPUID; returns `[eax, ebx, ecx, edx]`.
    fn cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4];
    /// Writes a model-specific register.
    fn write_msr(&self, msr: u32, value: u64);
    /// Selects the instruction (or page) later hypercalls use.
    fn set_hypercall_mechanism(&self, mechanism: HypercallMechanism);
    /// Issues hypercall `op` with the five argument registers loaded from `args` (see the
    /// [module docs](self)); returns Xen's raw return value.
    fn hypercall(&self, op: u32, args: &mut [Arg<'_>; 5]) -> i64;
    /// `count` consecutive free GFNs of the platform's window for Xen pages.
    fn allocate_frames(&self, count: u32) -> Option<u64>;
    /// The GFN of an executable RAM page for the hypercall-page fallback.
    fn allocate_hypercall_page(&self) -> Option<u64>;
}

impl<T: PortIo + ?Sized> PortIo for &T {
    fn inb(&self, port: u16) -> u8 {
        (**self).inb(port)
    }
    fn inw(&self, port: u16) -> u16 {
        (**self).inw(port)
    }
    fn inl(&self, port: u16) -> u32 {
        (**self).inl(port)
    }
    fn outb(&self, port: u16, value: u8) {
        (**self).outb(port, value)
    }
    fn outw(&self, port: u16, value: u16) {
        (**self).outw(port, value)
    }
    fn outl(&self, port: u16, value: u32) {
        (**self).outl(port, value)
    }
}

impl<T: Hypervisor + ?Sized> Hypervisor for &T {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4] {
        (**self).cpuid(leaf, subleaf)
    }
    fn write_msr(&self, msr: u32, value: u64) {
        (**self).write_msr(msr, value)
    }
    fn set_hypercall_mechanism(&self, mechanism: HypercallMechanism) {
        (**self).set_hypercall_mechanism(mechanism)
    }
    fn hypercall(&self, op: u32, args: &mut [Arg<'_>; 5]) -> i64 {
        (**self).hypercall(op, args)
    }
    fn allocate_frames(&self, count: u32) -> Option<u64> {
        (**self).allocate_frames(count)
    }
    fn allocate_hypercall_page(&self) -> Option<u64> {
        (**self).allocate_hypercall_page()
    }
}

/// Why a hypervisor-level operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HvError {
    /// A hypercall returned an error.
    Hypercall {
        /// The hypercall (`HYPERVISOR_*`).
        op: u32,
        /// Its sub-op.
        cmd: u64,
        /// Xen's error.
        errno: XenErrno,
    },
    /// A hypercall's arguments do not fit its entry in [`calls::TABLE`]; nothing was issued.
    Arity {
        /// The call's name.
        call: &'static str,
        /// The register (0-based) that does not fit.
        index: u8,
        /// What the table says it carries.
        expected: Param,
    },
    /// A grant-table operation returned a negative `GNTST_*` status.
    GrantStatus {
        /// The `GNTTABOP_*` sub-op.
        cmd: u32,
        /// The status.
        status: i16,
    },
    /// The platform's window for Xen pages has no room for `count` more frames.
    WindowExhausted {
        /// Frames asked for.
        count: u32,
    },
    /// The platform has no page for the hypercall-page fallback.
    NoHypercallPage,
    /// Detection failed.
    Detect(DetectError),
    /// An HVM parameter that must be set reads as 0.
    ParamUnset {
        /// The `HVM_PARAM_*` index.
        index: u32,
    },
    /// An HVM parameter holds a value out of its range (an event channel above 32 bits, …).
    ParamOutOfRange {
        /// The `HVM_PARAM_*` index.
        index: u32,
        /// The value read.
        value: u64,
    },
    /// Xen reports a grant-table size the core cannot use (no frames at all).
    BadGrantTableSize {
        /// Frames in use.
        nr_frames: u32,
        /// Maximum frames.
        max_nr_frames: u32,
    },
    /// Xen runs a grant-table version the core does not drive (v1 only) and refuses to switch.
    UnsupportedGrantVersion {
        /// The version in use.
        version: u32,
    },
    /// A grow request beyond the maximum (or below the frames already mapped).
    BadFrameCount {
        /// Frames asked for.
        requested: u32,
        /// The limit.
        max: u32,
    },
    /// [`crate::grant_table::GrantTable::grow`] refused the new capacity.
    Grant(crate::grant_table::GrantError),
    /// The upcall vector is not usable (vectors below 0x10 are reserved for exceptions).
    BadVector {
        /// The vector.
        vector: u8,
    },
}

impl fmt::Display for HvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HvError::Hypercall { op, cmd, errno } => {
                write!(f, "hypercall {op} sub-op {cmd} failed: {errno}")
            }
            HvError::Arity {
                call,
                index,
                expected,
            } => write!(
                f,
                "{call}: argument {} does not fit the hypercall table (expected {expected})",
                index + 1
            ),
            HvError::GrantStatus { cmd, status } => {
                write!(f, "grant-table op {cmd} returned status {status}")
            }
            HvError::WindowExhausted { count } => {
                write!(f, "no room for {count} frames in the platform window")
            }
            HvError::NoHypercallPage => f.write_str("no page for the hypercall page"),
            HvError::Detect(e) => write!(f, "{e}"),
            HvError::ParamUnset { index } => write!(f, "HVM parameter {index} is not set"),
            HvError::ParamOutOfRange { index, value } => {
                write!(f, "HVM parameter {index} holds {value:#x}, out of range")
            }
            HvError::BadGrantTableSize {
                nr_frames,
                max_nr_frames,
            } => write!(
                f,
                "unusable grant-table size: {nr_frames} frames, at most {max_nr_frames}"
            ),
            HvError::UnsupportedGrantVersion { version } => {
                write!(f, "grant-table version {version} is not supported")
            }
            HvError::BadFrameCount { requested, max } => {
                write!(f, "cannot grow to {requested} grant frames (limit {max})")
            }
            HvError::Grant(e) => write!(f, "{e}"),
            HvError::BadVector { vector } => write!(f, "vector {vector:#x} is not usable"),
        }
    }
}

impl From<DetectError> for HvError {
    fn from(e: DetectError) -> Self {
        HvError::Detect(e)
    }
}

/// The result of [`init`]: what was found and how hypercalls are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Initialised {
    /// The CPUID view of Xen.
    pub cpuid: XenCpuid,
    /// The mechanism handed to the platform.
    pub mechanism: HypercallMechanism,
}

/// Detects Xen, chooses the hypercall mechanism under `policy`, installs the hypercall page if
/// that is the choice, and hands the mechanism to the platform. Must run before any hypercall.
pub fn init<H: Hypervisor + ?Sized>(hv: &H, policy: Policy) -> Result<Initialised, HvError> {
    let cpuid = detect::detect(hv)?;
    let mechanism = mechanism::install(hv, &cpuid, policy)?;
    Ok(Initialised { cpuid, mechanism })
}
