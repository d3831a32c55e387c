//! The portable core of the Xen bus driver (`xenpci`).
//!
//! Everything the bus driver does that is not Windows plumbing: finding Xen and choosing how to
//! call it ([`hypervisor`]), shared info and time, grant tables ([`grant_table`]), event channels
//! ([`evtchn`]), the xenstore client ([`xenstore`]), the xenbus device model and the
//! frontend/backend handshake ([`xenbus`]), the control node ([`control`]), suspend and resume
//! ([`suspend`]) and QEMU's emulated-device unplug ([`unplug`]).
//!
//! The crate is `#![no_std]`, allocates nothing and never blocks on its own: each part is a state
//! machine or a bounded routine that reaches the platform through small traits (hypercalls, port
//! I/O and CPUID; shared pages; a byte transport for xenstore). The Windows driver, the lab's Linux
//! userspace platform and `xen-sim` each implement those traits; the README describes them.
#![no_std]
#![forbid(unsafe_code)]

pub mod bus;
pub mod control;
pub mod evtchn;
pub mod grant_table;
pub mod hypervisor;
pub mod suspend;
mod sync;
pub mod unplug;
pub mod xenbus;
pub mod xenstore;
