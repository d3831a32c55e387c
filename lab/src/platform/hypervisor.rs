//! The core's [`Hypervisor`] in a Linux PV dom0: hypercalls through `/dev/xen/privcmd`
//! (`IOCTL_PRIVCMD_HYPERCALL`) with argument buffers in a page of `/dev/xen/hypercall`, and
//! CPUID through Xen's forced-emulation prefix.
//!
//! - **Hypercalls.** Linux issues a privcmd hypercall from the kernel with the five registers
//!   the caller passed; addresses in them are user addresses Xen follows with dom0's page tables.
//!   Linux wants such memory to come from `/dev/xen/hypercall` (pages it keeps mapped and never
//!   migrates while a hypercall may touch them), so [`LinuxHypervisor::hypercall`] copies every
//!   [`Arg::Buffer`] into one page of that device, passes the copies' addresses, and copies them
//!   back afterwards. An [`Arg::BufferWithHandle`] is laid out the same way, with the address of
//!   the copied buffer written into the copied structure's handle field. A call whose buffers do
//!   not fit the page is refused with `-ENOMEM` before reaching Xen.
//! - **CPUID.** A PV guest's CPUID is not Xen's view unless Xen intercepts it; the sequence
//!   `ud2; .ascii "xen"; cpuid` always traps to Xen, which emulates the CPUID with the domain's
//!   policy (Xen's leaves at `0x4000_0000`), also from user mode. It is used only when
//!   `/sys/hypervisor/guest_type` is `PV` ([`LinuxHypervisor::open`] refuses otherwise): on bare
//!   metal or in an HVM guest the sequence is an invalid opcode.
//! - **What dom0 cannot do.** A PV dom0 has no platform PCI device, so no window for Xen pages
//!   ([`Hypervisor::allocate_frames`] answers `None`), no page for the hypercall-page fallback,
//!   and no MSR writes from user mode ([`Hypervisor::write_msr`] is recorded and not performed;
//!   [`LinuxHypervisor::msr_writes`] lets a scenario check that none was attempted). Port I/O
//!   reads as an absent device (all ones) and writes go nowhere: the unplug protocol belongs to
//!   QEMU's Xen platform device, which only an HVM guest has. Hypercalls always go through
//!   Linux's own mechanism; the one the core chooses is recorded
//!   ([`LinuxHypervisor::mechanism`]).

use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Mutex;

use xenpci_core::hypervisor::{Arg, HypercallMechanism, Hypervisor, PortIo};

use super::{annotate, ioc_none, open_device, Mapping, PAGE_SIZE};

/// The privcmd device.
pub const PRIVCMD: &str = "/dev/xen/privcmd";
/// privcmd's hypercall-buffer device.
pub const HYPERCALL_BUFFERS: &str = "/dev/xen/hypercall";

/// `struct privcmd_hypercall` from Linux's `include/uapi/xen/privcmd.h`.
#[repr(C)]
#[derive(Debug, Default)]
struct PrivcmdHypercall {
    op: u64,
    arg: [u64; 5],
}

/// `IOCTL_PRIVCMD_HYPERCALL`: `_IOC(_IOC_NONE, 'P', 0, sizeof(privcmd_hypercall))`.
pub const IOCTL_PRIVCMD_HYPERCALL: libc::c_ulong = ioc_none(b'P', 0, size_of::<PrivcmdHypercall>());

/// The errno the platform answers when the buffers do not fit its page.
const ENOMEM: i64 = 12;
/// The errno for a handle outside its structure.
const EINVAL: i64 = 22;

/// Xen's forced-emulation CPUID (see the module docs). Only valid in a PV guest of Xen.
fn forced_cpuid(leaf: u32, subleaf: u32) -> [u32; 4] {
    let (eax, ebx, ecx, edx);
    // SAFETY:
    // 1. The sequence is `ud2; "xen"; cpuid`, which Xen emulates as CPUID for a PV guest
    //    (`LinuxHypervisor::open` checked that this is one) and resumes after it.
    // 2. It reads no memory and writes only eax, ebx, ecx and edx; rbx, which LLVM reserves, is
    //    saved in a scratch register and swapped back after the instruction.
    // 3. The stack is untouched.
    unsafe {
        std::arch::asm!(
            "mov {saved:r}, rbx",
            ".byte 0x0f, 0x0b, 0x78, 0x65, 0x6e, 0x0f, 0xa2",
            "xchg {saved:r}, rbx",
            saved = out(reg) ebx,
            inout("eax") leaf => eax,
            inout("ecx") subleaf => ecx,
            out("edx") edx,
            options(nostack, preserves_flags),
        );
    }
    [eax, ebx, ecx, edx]
}

/// The CPU's own CPUID instruction in user mode: Xen's view only when Xen intercepts CPUID for
/// PV guests (CPUID faulting); the scenario reports which it is.
pub fn native_cpuid(leaf: u32, subleaf: u32) -> [u32; 4] {
    let r = std::arch::x86_64::__cpuid_count(leaf, subleaf);
    [r.eax, r.ebx, r.ecx, r.edx]
}

/// Linux's `cpuid` driver: `/dev/cpu/<cpu>/cpuid`, 16 bytes at offset `leaf | subleaf << 32`.
/// `None` when the device is absent (the `cpuid` module is not loaded) or the read fails.
pub fn dev_cpuid(cpu: u32, leaf: u32, subleaf: u32) -> Option<[u32; 4]> {
    use std::os::unix::fs::FileExt;
    let file = File::open(format!("/dev/cpu/{cpu}/cpuid")).ok()?;
    let mut raw = [0u8; 16];
    file.read_exact_at(&mut raw, u64::from(leaf) | u64::from(subleaf) << 32)
        .ok()?;
    let w = |i: usize| u32::from_le_bytes([raw[i], raw[i + 1], raw[i + 2], raw[i + 3]]);
    Some([w(0), w(4), w(8), w(12)])
}

/// [`Hypervisor`] over privcmd in a PV dom0.
#[derive(Debug)]
pub struct LinuxHypervisor {
    privcmd: File,
    /// One page of `/dev/xen/hypercall`; the lock serialises its use between calls.
    page: Mutex<Mapping>,
    mechanism: Mutex<Option<HypercallMechanism>>,
    msr_writes: Mutex<Vec<(u32, u64)>>,
}

impl LinuxHypervisor {
    /// Opens privcmd and one page of hypercall buffers; refuses unless this is a PV guest of
    /// Xen (where the forced-emulation CPUID is defined).
    pub fn open() -> io::Result<Self> {
        let kind = fs::read_to_string("/sys/hypervisor/type").unwrap_or_default();
        let guest = fs::read_to_string("/sys/hypervisor/guest_type").unwrap_or_default();
        if kind.trim() != "xen" || guest.trim() != "PV" {
            return Err(io::Error::other(format!(
                "not a PV guest of Xen (/sys/hypervisor/type '{}', guest_type '{}')",
                kind.trim(),
                guest.trim()
            )));
        }
        let privcmd = open_device(PRIVCMD)?;
        let buffers = open_device(HYPERCALL_BUFFERS)?;
        let page = Mapping::new(buffers.as_fd(), PAGE_SIZE, 0, true)
            .map_err(|e| annotate(&format!("map a page of {HYPERCALL_BUFFERS}"), e))?;
        Ok(Self {
            privcmd,
            page: Mutex::new(page),
            mechanism: Mutex::new(None),
            msr_writes: Mutex::new(Vec::new()),
        })
    }

    /// The mechanism the core chose (hypercalls still go through Linux's).
    pub fn mechanism(&self) -> Option<HypercallMechanism> {
        *self.mechanism.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// MSR writes the core attempted (none were performed).
    pub fn msr_writes(&self) -> Vec<(u32, u64)> {
        self.msr_writes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn privcmd_call(&self, op: u32, regs: [u64; 5]) -> i64 {
        let mut call = PrivcmdHypercall {
            op: u64::from(op),
            arg: regs,
        };
        // SAFETY:
        // 1. IOCTL_PRIVCMD_HYPERCALL reads one `struct privcmd_hypercall`, which `call` is
        //    (`repr(C)`, six u64), live for the whole call.
        // 2. Every address in `regs` points into the hypercall-buffer page, which the caller
        //    holds locked and mapped for the whole call; Xen touches at most the bytes the
        //    caller copied there (each buffer's length), all inside the page.
        let rc = unsafe {
            libc::ioctl(
                self.privcmd.as_raw_fd(),
                IOCTL_PRIVCMD_HYPERCALL,
                &mut call as *mut PrivcmdHypercall,
            )
        };
        if rc >= 0 {
            i64::from(rc)
        } else {
            -i64::from(
                io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(EINVAL as i32),
            )
        }
    }
}

/// Where each argument's copy lives in the page.
#[derive(Clone, Copy, Debug)]
enum Placed {
    Scalar(u64),
    Buffer { at: usize },
    WithHandle { arg_at: usize, buffer_at: usize },
}

/// Reserves `len` bytes at the next 8-byte boundary of the page.
fn reserve(next: &mut usize, len: usize) -> Option<usize> {
    let at = next.checked_next_multiple_of(8)?;
    let end = at.checked_add(len)?;
    if end > PAGE_SIZE {
        return None;
    }
    *next = end;
    Some(at)
}

impl PortIo for LinuxHypervisor {
    fn inb(&self, _port: u16) -> u8 {
        0xff
    }
    fn inw(&self, _port: u16) -> u16 {
        0xffff
    }
    fn inl(&self, _port: u16) -> u32 {
        0xffff_ffff
    }
    fn outb(&self, _port: u16, _value: u8) {}
    fn outw(&self, _port: u16, _value: u16) {}
    fn outl(&self, _port: u16, _value: u32) {}
}

impl Hypervisor for LinuxHypervisor {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4] {
        forced_cpuid(leaf, subleaf)
    }

    fn write_msr(&self, msr: u32, value: u64) {
        self.msr_writes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((msr, value));
    }

    fn set_hypercall_mechanism(&self, mechanism: HypercallMechanism) {
        *self.mechanism.lock().unwrap_or_else(|e| e.into_inner()) = Some(mechanism);
    }

    fn hypercall(&self, op: u32, args: &mut [Arg<'_>; 5]) -> i64 {
        let page = self.page.lock().unwrap_or_else(|e| e.into_inner());
        let base = page.as_ptr() as u64;
        let mut next = 0usize;
        let mut placed = [Placed::Scalar(0); 5];
        for (slot, arg) in placed.iter_mut().zip(args.iter()) {
            *slot = match arg {
                Arg::Unused | Arg::Null | Arg::Value(_) => {
                    Placed::Scalar(arg.scalar().unwrap_or(0))
                }
                Arg::Buffer(bytes) => {
                    let Some(at) = reserve(&mut next, bytes.len()) else {
                        return -ENOMEM;
                    };
                    page.write(at, bytes);
                    Placed::Buffer { at }
                }
                Arg::BufferWithHandle {
                    arg,
                    handle_offset,
                    buffer,
                } => {
                    if handle_offset
                        .checked_add(8)
                        .is_none_or(|end| end > arg.len())
                    {
                        return -EINVAL;
                    }
                    let (Some(buffer_at), Some(arg_at)) = (
                        reserve(&mut next, buffer.len()),
                        reserve(&mut next, arg.len()),
                    ) else {
                        return -ENOMEM;
                    };
                    page.write(buffer_at, buffer);
                    page.write(arg_at, arg);
                    let handle = base + buffer_at as u64;
                    page.write(arg_at + handle_offset, &handle.to_le_bytes());
                    Placed::WithHandle { arg_at, buffer_at }
                }
            };
        }
        let regs = placed.map(|p| match p {
            Placed::Scalar(v) => v,
            Placed::Buffer { at } => base + at as u64,
            Placed::WithHandle { arg_at, .. } => base + arg_at as u64,
        });
        let ret = self.privcmd_call(op, regs);
        for (p, arg) in placed.iter().zip(args.iter_mut()) {
            match (p, arg) {
                (Placed::Buffer { at }, Arg::Buffer(bytes)) => page.read(*at, bytes),
                (
                    Placed::WithHandle { arg_at, buffer_at },
                    Arg::BufferWithHandle { arg, buffer, .. },
                ) => {
                    page.read(*arg_at, arg);
                    page.read(*buffer_at, buffer);
                }
                _ => {}
            }
        }
        ret
    }

    fn allocate_frames(&self, _count: u32) -> Option<u64> {
        None
    }

    fn allocate_hypercall_page(&self) -> Option<u64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_placed_at_8_byte_boundaries_inside_the_page() {
        let mut next = 0;
        assert_eq!(reserve(&mut next, 3), Some(0));
        assert_eq!(reserve(&mut next, 16), Some(8));
        assert_eq!(next, 24);
        assert_eq!(reserve(&mut next, PAGE_SIZE - 24), Some(24));
        assert_eq!(reserve(&mut next, 0), Some(PAGE_SIZE));
        assert_eq!(reserve(&mut next, 1), None);
        let mut next = 1;
        assert_eq!(reserve(&mut next, usize::MAX), None);
        assert_eq!(next, 1, "a refused reservation takes nothing");
    }

    #[test]
    fn the_ioctl_number_is_linuxs() {
        // _IOC(_IOC_NONE, 'P', 0, 48) from include/uapi/xen/privcmd.h on x86_64.
        assert_eq!(IOCTL_PRIVCMD_HYPERCALL, 0x0030_5000);
    }
}
