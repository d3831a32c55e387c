//! Interrupt request levels.
#![cfg_attr(not(target_os = "windows"), forbid(unsafe_code))]

/// An IRQL.
pub type Irql = u8;
/// `PASSIVE_LEVEL`: threads; waits and paged memory allowed.
pub const PASSIVE_LEVEL: Irql = 0;
/// `APC_LEVEL`.
pub const APC_LEVEL: Irql = 1;
/// `DISPATCH_LEVEL`: DPCs and spin locks; no waits, nonpaged memory only.
pub const DISPATCH_LEVEL: Irql = 2;

/// The current processor's IRQL (`KeGetCurrentIrql`, which on x64 reads CR8).
#[cfg(target_os = "windows")]
pub fn current() -> Irql {
    let cr8: u64;
    // SAFETY: reading CR8 is permitted at CPL 0, has no side effects, and is what the inline
    // `KeGetCurrentIrql` of wdm.h does on x64.
    unsafe {
        core::arch::asm!("mov {}, cr8", out(reg) cr8, options(nomem, nostack, preserves_flags))
    };
    cr8 as Irql
}
