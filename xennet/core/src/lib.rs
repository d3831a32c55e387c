//! The portable core of the Xen PV network driver (`xennet`).
//!
//! The NDIS shell hands this core packets to send ([`TxPacket`]: a list of guest-page
//! [`Fragment`]s with an offload request — TCP/UDP checksum over IPv4/IPv6, large send with an
//! MSS, a VLAN tag) and takes received packets from it ([`RxPacket`]: fragments in the core's
//! receive buffers with checksum-verified flags, the backend's RSS hash and the number of
//! coalesced segments). Everything in between lives here: negotiation with netback
//! ([`negotiate`]), the transmit and receive rings of each queue ([`NetQueue`]), software
//! checksum and segmentation where the backend lacks an offload ([`packet`]), the receive side
//! scaling configuration given to the backend through the control ring ([`ctrl`]), and the
//! hardening of everything the backend writes.
//!
//! # Rules
//! - `#![no_std]`, no allocation: every pool (pending transmit packets, copy pages, receive
//!   buffers) is sized by const generics and filled with guest frames given at construction.
//! - The platform is reached only through the small traits of [`platform`] ([`Grants`],
//!   [`Events`], [`GuestMemory`]), bundled per call in an [`Io`].
//! - Every response is copied once out of the ring, then validated, then used; a bad one is
//!   dropped and counted, and a backend that keeps misbehaving puts the queue into
//!   [`QueueState::Failed`].
//!
//! # Concurrency contract
//! Each [`NetQueue`] is independent: the shell may run calls on different queues concurrently
//! (each queue under its own lock, at `DISPATCH_LEVEL` or below; the core never blocks). Calls on
//! one queue must be serialised. [`Netfront`] holds the device-wide state (negotiated parameters,
//! MAC, MTU, link); its connect and disconnect calls need every queue quiesced, which the
//! `&mut self` borrow enforces.
#![no_std]
#![forbid(unsafe_code)]

pub mod ctrl;
pub mod device;
pub mod negotiate;
pub mod packet;
pub mod platform;
pub mod queue;
mod rx;
#[cfg(any(test, feature = "test-utils"))]
pub mod testing;
mod tx;
mod txplan;
pub mod types;

pub use ctrl::{toeplitz, ControlError, ControlRing, HashTypes, RssConfig};
pub use device::{NetConfig, Netfront, RingPages};
pub use negotiate::{BackendFeatures, FeatureError, FrontendConfig, FrontendParams, MAX_QUEUES};
pub use platform::{Events, Grants, GuestMemory, Io, LogEvent, RingKind};
pub use queue::{AttachError, NetQueue, QueueError, QueueState};
pub use types::*;
