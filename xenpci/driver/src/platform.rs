//! The x86-64 instructions behind `xenpci-core`'s [`Hypervisor`] and [`PortIo`] traits: CPUID,
//! WRMSR, port I/O and the `vmcall`/`vmmcall` hypercall instructions.
//!
//! Xen's 64-bit HVM hypercall ABI: the hypercall number in RAX, arguments in RDI, RSI, RDX, R10,
//! R8; the result in RAX; Xen may change the argument registers. Arguments are guest virtual
//! addresses of nonpaged memory (the caller's stack or pool).
//!
//! The hypercall-page fallback is not offered (no executable page is allocated), and the window
//! for Xen pages is a bump allocator over the memory BAR taken with [`X86::claim_window`]; frames
//! handed out are mapped with [`X86::map_window_frame`].
#![allow(unsafe_code)]

use core::arch::asm;
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use win_km::mdl::{Caching, IoMapping};
use xenpci_core::hypervisor::{Arg, HypercallMechanism, Hypervisor, PortIo};

const PAGE_SHIFT: u32 = 12;
const MECHANISM_NONE: u8 = 0;
const MECHANISM_VMCALL: u8 = 1;
const MECHANISM_VMMCALL: u8 = 2;
/// Hypercall failure when no instruction was chosen: `-ENOSYS`.
const ENOSYS: i64 = -38;
/// A malformed argument the core should have refused: `-EINVAL`.
const EINVAL: i64 = -22;

/// The bus's view of the CPU. One instance is shared by all vCPUs; every field is atomic.
#[derive(Debug)]
pub struct X86 {
    mechanism: AtomicU8,
    /// First GFN of the window, the next free one, and the GFN after its end.
    first_gfn: AtomicU64,
    next_gfn: AtomicU64,
    end_gfn: AtomicU64,
}

impl X86 {
    /// No window, no hypercall mechanism chosen.
    pub const fn new() -> Self {
        Self {
            mechanism: AtomicU8::new(MECHANISM_NONE),
            first_gfn: AtomicU64::new(0),
            next_gfn: AtomicU64::new(0),
            end_gfn: AtomicU64::new(0),
        }
    }

    /// Takes the physical window for Xen pages (the memory BAR); `false` if another device's
    /// window is in use (the bus serves one Xen platform device).
    pub fn claim_window(&self, start: u64, length: u64) -> bool {
        let first = start >> PAGE_SHIFT;
        let end = first + (length >> PAGE_SHIFT);
        if self
            .end_gfn
            .compare_exchange(0, end, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        self.first_gfn.store(first, Ordering::Release);
        self.next_gfn.store(first, Ordering::Release);
        true
    }

    /// Gives the window back (the device stopped or went away).
    pub fn release_window(&self) {
        self.first_gfn.store(0, Ordering::Release);
        self.next_gfn.store(0, Ordering::Release);
        self.end_gfn.store(0, Ordering::Release);
    }

    /// Maps one frame of the window that Xen backs (handed out by `allocate_frames`), cached;
    /// `None` for a frame outside the window or when the mapping fails. PASSIVE_LEVEL.
    pub fn map_window_frame(&self, gfn: u64) -> Option<IoMapping> {
        let first = self.first_gfn.load(Ordering::Acquire);
        let next = self.next_gfn.load(Ordering::Acquire);
        if gfn < first || gfn >= next {
            return None;
        }
        // SAFETY: the frame lies in the part of this device's memory BAR that `allocate_frames`
        // handed out, which Xen backs with RAM (the caller placed a Xen page there), so a cached
        // mapping fits it.
        unsafe { IoMapping::map(gfn << PAGE_SHIFT, 1 << PAGE_SHIFT, Caching::Cached) }
    }
}

impl PortIo for X86 {
    fn inb(&self, port: u16) -> u8 {
        let value: u8;
        // SAFETY: port I/O is permitted at CPL 0; the core only reads QEMU's unplug ports.
        unsafe {
            asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack, preserves_flags))
        };
        value
    }
    fn inw(&self, port: u16) -> u16 {
        let value: u16;
        // SAFETY: as `inb`.
        unsafe {
            asm!("in ax, dx", in("dx") port, out("ax") value, options(nomem, nostack, preserves_flags))
        };
        value
    }
    fn inl(&self, port: u16) -> u32 {
        let value: u32;
        // SAFETY: as `inb`.
        unsafe {
            asm!("in eax, dx", in("dx") port, out("eax") value, options(nomem, nostack, preserves_flags))
        };
        value
    }
    fn outb(&self, port: u16, value: u8) {
        // SAFETY: port I/O is permitted at CPL 0; the core only writes QEMU's unplug ports.
        unsafe {
            asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
        };
    }
    fn outw(&self, port: u16, value: u16) {
        // SAFETY: as `outb`.
        unsafe {
            asm!("out dx, ax", in("dx") port, in("ax") value, options(nomem, nostack, preserves_flags))
        };
    }
    fn outl(&self, port: u16, value: u32) {
        // SAFETY: as `outb`.
        unsafe {
            asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags))
        };
    }
}

fn vmcall(op: u32, regs: [u64; 5], amd: bool) -> i64 {
    let mut rax = u64::from(op);
    let [a1, a2, a3, a4, a5] = regs;
    if amd {
        // SAFETY: Xen's hypercall ABI (module docs); the argument pointers are valid for the
        // hypercall's reads and writes (the callers' contract); the argument registers are
        // declared clobbered.
        unsafe {
            asm!("vmmcall", inout("rax") rax, inout("rdi") a1 => _, inout("rsi") a2 => _,
                 inout("rdx") a3 => _, inout("r10") a4 => _, inout("r8") a5 => _,
                 options(nostack))
        };
    } else {
        // SAFETY: as above, with Intel's instruction.
        unsafe {
            asm!("vmcall", inout("rax") rax, inout("rdi") a1 => _, inout("rsi") a2 => _,
                 inout("rdx") a3 => _, inout("r10") a4 => _, inout("r8") a5 => _,
                 options(nostack))
        };
    }
    rax as i64
}

impl Hypervisor for X86 {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4] {
        let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
        [r.eax, r.ebx, r.ecx, r.edx]
    }

    fn write_msr(&self, msr: u32, value: u64) {
        // SAFETY: WRMSR at CPL 0 on the MSR Xen names in its CPUID leaf (the core's only use).
        unsafe {
            asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
                 options(nostack, preserves_flags))
        };
    }

    fn set_hypercall_mechanism(&self, mechanism: HypercallMechanism) {
        let code = match mechanism {
            HypercallMechanism::Vmcall => MECHANISM_VMCALL,
            HypercallMechanism::Vmmcall => MECHANISM_VMMCALL,
            // Never offered: `allocate_hypercall_page` returns `None`.
            HypercallMechanism::HypercallPage { .. } => MECHANISM_NONE,
        };
        self.mechanism.store(code, Ordering::Release);
    }

    fn hypercall(&self, op: u32, args: &mut [Arg<'_>; 5]) -> i64 {
        let mut regs = [0u64; 5];
        for (reg, arg) in regs.iter_mut().zip(args.iter_mut()) {
            *reg = match arg {
                Arg::Unused | Arg::Null => 0,
                Arg::Value(value) => *value,
                Arg::Buffer([]) => 0,
                Arg::Buffer(bytes) => bytes.as_mut_ptr() as u64,
                Arg::BufferWithHandle {
                    arg,
                    handle_offset,
                    buffer,
                } => {
                    let address = buffer.as_mut_ptr() as u64;
                    let handle = handle_offset
                        .checked_add(8)
                        .and_then(|end| arg.get_mut(*handle_offset..end));
                    let Some(handle) = handle else {
                        return EINVAL; // The core checks the offset; never panic on a bad one.
                    };
                    handle.copy_from_slice(&address.to_le_bytes());
                    arg.as_mut_ptr() as u64
                }
            };
        }
        match self.mechanism.load(Ordering::Acquire) {
            MECHANISM_VMCALL => vmcall(op, regs, false),
            MECHANISM_VMMCALL => vmcall(op, regs, true),
            _ => ENOSYS,
        }
    }

    fn allocate_frames(&self, count: u32) -> Option<u64> {
        let end = self.end_gfn.load(Ordering::Acquire);
        self.next_gfn
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |next| {
                next.checked_add(u64::from(count))
                    .filter(|&after| after <= end)
            })
            .ok()
    }

    fn allocate_hypercall_page(&self) -> Option<u64> {
        None
    }
}
