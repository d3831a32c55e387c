//! The machine layer of the kernel: the multiboot entry and the switch to 64-bit mode, port I/O,
//! CPUID, MSRs, the hypercall instructions and access to guest-physical memory. This is the only
//! module with `unsafe` code; everything above it is the safe library (`hvm_guest`).
//!
//! Memory: the first 4 GiB are identity-mapped with 2 MiB pages by the entry code, so a pointer
//! is its own guest-physical address (what a hypercall argument needs) and the platform PCI
//! device's BAR1 (below 4 GiB) is reachable at its bus address.

use core::cell::Cell;
use core::fmt;

use hvm_guest::report::ByteSink;
use xenpci_core::hypervisor::shared_info::SharedMemory;
use xenpci_core::hypervisor::{Arg, HypercallMechanism, Hypervisor, PortIo};

// Multiboot v1 header with the a.out kludge (flag bit 16): the loader copies the flat image
// from the file to `__load_start` without parsing ELF (QEMU's loader takes only 32-bit ELF),
// then jumps to `start32` in 32-bit protected mode with paging off. The entry zeroes .bss,
// builds the identity map (PML4 → PDPT → four page directories of 2 MiB pages = 4 GiB),
// enables PAE, long mode (EFER.LME) and paging, loads a 64-bit GDT and far-jumps to 64-bit code,
// which sets up the stack and calls `kernel_main`.
core::arch::global_asm!(
    r#"
    .section .multiboot, "a"
    .balign 4
multiboot_header:
    .long 0x1BADB002
    .long 0x00010000
    .long -(0x1BADB002 + 0x00010000)
    .long multiboot_header
    .long __load_start
    .long __load_end
    .long __bss_end
    .long start32

    .section .text.start32, "ax"
    .code32
    .global start32
start32:
    cli
    cld
    mov $__bss_start, %edi
    mov $__bss_end, %ecx
    sub %edi, %ecx
    xor %eax, %eax
    rep stosb

    mov $boot_pdpt, %eax
    or $3, %eax
    mov %eax, boot_pml4

    mov $boot_pd, %eax
    or $3, %eax
    xor %ecx, %ecx
1:
    mov %eax, boot_pdpt(,%ecx,8)
    add $4096, %eax
    inc %ecx
    cmp $4, %ecx
    jne 1b

    mov $0x83, %eax
    xor %ecx, %ecx
2:
    mov %eax, boot_pd(,%ecx,8)
    add $0x200000, %eax
    inc %ecx
    cmp $2048, %ecx
    jne 2b

    mov %cr4, %eax
    or $0x20, %eax
    mov %eax, %cr4
    mov $boot_pml4, %eax
    mov %eax, %cr3
    mov $0xC0000080, %ecx
    rdmsr
    or $0x100, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80000001, %eax
    mov %eax, %cr0
    lgdt boot_gdt_ptr
    ljmp $0x08, $start64

    .code64
start64:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %ax, %fs
    mov %ax, %gs
    lea boot_stack_top(%rip), %rsp
    call kernel_main
3:
    cli
    hlt
    jmp 3b

    .section .rodata.boot_gdt, "a"
    .balign 8
boot_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF
    .quad 0x00CF92000000FFFF
boot_gdt_ptr:
    .word boot_gdt_ptr - boot_gdt - 1
    .long boot_gdt

    .section .bss.boot, "aw", @nobits
    .balign 4096
boot_pml4:
    .skip 4096
boot_pdpt:
    .skip 4096
boot_pd:
    .skip 4 * 4096
boot_stack:
    .skip 65536
boot_stack_top:
"#,
    options(att_syntax)
);

/// Xen's HVM debug port (and QEMU's `isa-debugcon` on bare QEMU): bytes written here appear,
/// line by line, on the hypervisor console as `(dN) ...`.
const DEBUG_PORT: u16 = 0xe9;
/// QEMU's `isa-debug-exit` device, present only when the harness asks bare QEMU for it.
const QEMU_EXIT_PORT: u16 = 0xf4;

/// Port I/O on this CPU.
#[derive(Debug, Clone, Copy)]
pub struct Ports;

impl PortIo for Ports {
    fn inb(&self, port: u16) -> u8 {
        let value: u8;
        // SAFETY: a port read has no memory effects; the kernel owns the whole machine, and
        // every port it reads (PCI configuration, unplug) is a device register with no side
        // effect on memory the compiler knows about.
        unsafe {
            core::arch::asm!("in al, dx", out("al") value, in("dx") port, options(nomem, nostack, preserves_flags))
        };
        value
    }
    fn inw(&self, port: u16) -> u16 {
        let value: u16;
        // SAFETY: as `inb`.
        unsafe {
            core::arch::asm!("in ax, dx", out("ax") value, in("dx") port, options(nomem, nostack, preserves_flags))
        };
        value
    }
    fn inl(&self, port: u16) -> u32 {
        let value: u32;
        // SAFETY: as `inb`.
        unsafe {
            core::arch::asm!("in eax, dx", out("eax") value, in("dx") port, options(nomem, nostack, preserves_flags))
        };
        value
    }
    fn outb(&self, port: u16, value: u8) {
        // SAFETY: a port write touches no memory of this program; the devices written (debug
        // port, PCI configuration address/data, unplug) do not DMA into RAM on these writes.
        unsafe {
            core::arch::asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
        };
    }
    fn outw(&self, port: u16, value: u16) {
        // SAFETY: as `outb`.
        unsafe {
            core::arch::asm!("out dx, ax", in("dx") port, in("ax") value, options(nomem, nostack, preserves_flags))
        };
    }
    fn outl(&self, port: u16, value: u32) {
        // SAFETY: as `outb`.
        unsafe {
            core::arch::asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags))
        };
    }
}

/// The report channel: port 0xe9.
#[derive(Debug, Clone, Copy)]
pub struct DebugPort;

impl ByteSink for DebugPort {
    fn put(&mut self, byte: u8) {
        Ports.outb(DEBUG_PORT, byte);
    }
}

impl fmt::Write for DebugPort {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        s.bytes().for_each(|b| self.put(b));
        Ok(())
    }
}

/// Ends the run on bare QEMU (no Xen to shut the domain down): the exit device turns the write
/// into QEMU's exit status; where there is no such device the CPU halts for good.
pub fn halt_forever(code: u8) -> ! {
    Ports.outb(QEMU_EXIT_PORT, code);
    loop {
        // SAFETY: `cli; hlt` stops this (only) CPU; no memory or stack is touched.
        unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// The xenpci core's platform on this kernel: the instructions, and the platform PCI device's
/// BAR1 as the window for Xen pages (handed out from its start upwards, never given back).
#[derive(Debug)]
pub struct XenHvm {
    mechanism: Cell<Option<HypercallMechanism>>,
    window_base_gfn: u64,
    window_frames: u64,
    next_frame: Cell<u64>,
}

impl XenHvm {
    /// A platform whose window is BAR1 at `bar1_base` (bytes, page-aligned), `bar1_len` bytes.
    pub fn new(bar1_base: u64, bar1_len: u64) -> Self {
        XenHvm {
            mechanism: Cell::new(None),
            window_base_gfn: bar1_base >> 12,
            window_frames: bar1_len >> 12,
            next_frame: Cell::new(0),
        }
    }
}

impl PortIo for XenHvm {
    fn inb(&self, port: u16) -> u8 {
        Ports.inb(port)
    }
    fn inw(&self, port: u16) -> u16 {
        Ports.inw(port)
    }
    fn inl(&self, port: u16) -> u32 {
        Ports.inl(port)
    }
    fn outb(&self, port: u16, value: u8) {
        Ports.outb(port, value)
    }
    fn outw(&self, port: u16, value: u16) {
        Ports.outw(port, value)
    }
    fn outl(&self, port: u16, value: u32) {
        Ports.outl(port, value)
    }
}

/// CPUID, as the core's `Hypervisor::cpuid` wants it.
pub fn cpuid(leaf: u32, subleaf: u32) -> [u32; 4] {
    // CPUID is architecturally available in 64-bit mode.
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    [r.eax, r.ebx, r.ecx, r.edx]
}

/// The guest-physical address of a slice (the identity map makes it the pointer's value).
fn address(bytes: &[u8]) -> u64 {
    bytes.as_ptr() as u64
}

impl Hypervisor for XenHvm {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4] {
        cpuid(leaf, subleaf)
    }

    fn write_msr(&self, msr: u32, value: u64) {
        // SAFETY: the core writes only Xen's hypercall-page MSR (from CPUID leaf base+2); the
        // write makes Xen fill a RAM page the platform handed out for that purpose.
        unsafe {
            core::arch::asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nostack))
        };
    }

    fn set_hypercall_mechanism(&self, mechanism: HypercallMechanism) {
        self.mechanism.set(Some(mechanism));
    }

    fn hypercall(&self, op: u32, args: &mut [Arg<'_>; 5]) -> i64 {
        let mut regs = [0u64; 5];
        for (reg, arg) in regs.iter_mut().zip(args.iter_mut()) {
            *reg = match arg {
                Arg::Unused | Arg::Null => 0,
                Arg::Value(v) => *v,
                Arg::Buffer(bytes) => address(bytes),
                Arg::BufferWithHandle {
                    arg,
                    handle_offset,
                    buffer,
                } => {
                    let handle = address(buffer).to_le_bytes();
                    match arg.get_mut(*handle_offset..handle_offset.saturating_add(8)) {
                        Some(field) => field.copy_from_slice(&handle),
                        // The core's table checks the offset; refuse rather than guess.
                        None => return -(xenpci_core::hypervisor::XenErrno::EINVAL.0 as i64),
                    }
                    address(arg)
                }
            };
        }
        let result: i64;
        match self.mechanism.get() {
            Some(HypercallMechanism::Vmcall) => {
                // SAFETY:
                // 1. VMCALL traps to Xen with the hypercall number in rax and the arguments in
                //    rdi, rsi, rdx, r10, r8 (Xen's 64-bit HVM ABI); Xen returns in rax and may
                //    clobber the argument registers, which are declared clobbered.
                // 2. Every address among the arguments names a live, exclusively borrowed slice
                //    of `args` (identity-mapped RAM), so Xen's writes land in memory the caller
                //    lent for exactly that; no other memory is touched (Rust sees the asm as
                //    reading and writing memory, so nothing is cached across it).
                unsafe {
                    core::arch::asm!("vmcall",
                        inlateout("rax") u64::from(op) => result,
                        inlateout("rdi") regs[0] => _, inlateout("rsi") regs[1] => _,
                        inlateout("rdx") regs[2] => _, inlateout("r10") regs[3] => _,
                        inlateout("r8") regs[4] => _, options(nostack))
                };
            }
            Some(HypercallMechanism::Vmmcall) => {
                // SAFETY: as the VMCALL branch; VMMCALL is AMD's instruction for the same trap.
                unsafe {
                    core::arch::asm!("vmmcall",
                        inlateout("rax") u64::from(op) => result,
                        inlateout("rdi") regs[0] => _, inlateout("rsi") regs[1] => _,
                        inlateout("rdx") regs[2] => _, inlateout("r10") regs[3] => _,
                        inlateout("r8") regs[4] => _, options(nostack))
                };
            }
            // The hypercall page is not offered by this platform (`allocate_hypercall_page`
            // returns `None`), and no hypercall may be made before a mechanism is chosen.
            Some(HypercallMechanism::HypercallPage { .. }) | None => {
                return -(xenpci_core::hypervisor::XenErrno::ENOSYS.0 as i64)
            }
        }
        result
    }

    fn allocate_frames(&self, count: u32) -> Option<u64> {
        let first = self.next_frame.get();
        let end = first.checked_add(u64::from(count))?;
        if end > self.window_frames {
            return None;
        }
        self.next_frame.set(end);
        Some(self.window_base_gfn + first)
    }

    fn allocate_hypercall_page(&self) -> Option<u64> {
        None
    }
}

/// A page of guest-physical memory Xen has mapped into the BAR1 window (shared info).
#[derive(Debug, Clone, Copy)]
pub struct MappedPage {
    base: u64,
}

impl MappedPage {
    /// The page at `gfn`, which the caller has had Xen map (XENMEM_add_to_physmap succeeded)
    /// and which is below 4 GiB, hence covered by the identity map.
    pub fn new(gfn: u64) -> Option<Self> {
        let base = gfn.checked_mul(4096)?;
        (base < (4u64 << 30)).then_some(MappedPage { base })
    }
}

impl SharedMemory for MappedPage {
    fn read_bytes(&self, offset: usize, out: &mut [u8]) {
        for (i, byte) in out.iter_mut().enumerate() {
            let at = (offset + i).min(4095) as u64;
            // SAFETY: `self.base` is a mapped, identity-mapped page (see `new`) and `at` is
            // clamped inside it; a volatile read because Xen changes the page behind our back.
            *byte = unsafe { core::ptr::read_volatile((self.base + at) as *const u8) };
        }
    }

    fn load_u32_acquire(&self, offset: usize) -> u32 {
        let at = (offset & !3).min(4092) as u64;
        // SAFETY: as `read_bytes`; the address is 4-aligned inside the page.
        let value = unsafe { core::ptr::read_volatile((self.base + at) as *const u32) };
        core::sync::atomic::fence(core::sync::atomic::Ordering::Acquire);
        value
    }
}
