//! The portable core of the Xen PvSCSI driver (`xenscsi`).
//!
//! The StorPort shell hands this core SCSI requests ([`ScsiRequest`]: a CDB of up to 16 bytes,
//! the data buffer as byte-granular guest page segments, the direction, a timeout, a tag) and
//! task-management functions, and receives [`Completion`]s (SCSI status, host and driver
//! errors, sense data, residual). Everything between lives here:
//!
//! - [`negotiate`]: the backend's `feature-sg-grant`, the limits that follow (segments per
//!   command, largest transfer, queue depth), the nodes the frontend publishes.
//! - [`luns`]: the device list `vscsi-devs/dev-N/{v-dev,state}`, mapped from the virtual
//!   `host:channel:target:lun` to the bus/target/LUN the Windows adapter reports, and LUN
//!   hotplug with scsiback's state handshake.
//! - [`engine`]: [`Vscsi`], the ring, the request slots, grants (direct and indirect segment
//!   lists), response validation, timeouts, abort and reset, disconnect and reconnect.
//! - [`frontend`]: the xenbus handshake glue: [`frontend::ScsiFrontend`] implements
//!   xenpci-core's `FrontendDriver` over the engine.
//! - [`sense`]: decoding fixed and descriptor sense data (tape filemark, end-of-medium,
//!   incorrect length and the information field; unit attentions).
//!
//! # Platform
//! The core reaches the platform only through [`Grants`], [`Events`] and [`GuestMemory`], passed
//! per call in an [`Io`]; the ring is xen-ring's [`xen_ring::FrontRing`] over memory the shell
//! supplies.
//!
//! # Concurrency contract
//! The engine is one `&mut` object: the shell serialises every call on it (one lock per vhost,
//! taken at dispatch level by the StartIo path, the DPC that polls responses and the timer that
//! calls [`Vscsi::tick`]). No call blocks, allocates or loops without a bound; every call is
//! valid at dispatch level.
//!
//! `#![no_std]`, no allocation: the request slots and their grant tables are sized by const
//! parameters and built at start ([`Vscsi::new`] returns the value for the shell to place, e.g.
//! in a nonpaged pool block).
#![no_std]
#![forbid(unsafe_code)]

pub mod engine;
pub mod frontend;
#[cfg(any(test, feature = "hostile"))]
pub mod hostile;
pub mod luns;
pub mod negotiate;
pub mod platform;
pub mod sense;
pub mod types;

#[cfg(test)]
mod tests;

pub use engine::{EngineConfig, EngineState, Vscsi};
pub use luns::{Address, LunEvent, LunTable};
pub use platform::{EndGrant, Events, Grants, GuestMemory, Io, LogEvent};
pub use types::*;
