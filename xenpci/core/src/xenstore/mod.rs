//! The xenstore client: wire framing, transports, and a non-blocking connection state machine
//! with blocking-style helpers on top.
//!
//! # Layers
//! - [`wire`]: [`encode_request`](wire::encode_request) into caller buffers with the protocol's
//!   limits enforced, and [`ReplyParser`](wire::ReplyParser), an incremental parser of the reply
//!   stream that copes with any fragmentation and rejects oversized messages.
//! - [`Transport`]: moving bytes. [`RingTransport`] implements it over the guest's shared page
//!   (reached through [`StorePage`], supplied by the Windows shell, xen-sim or tests); a Linux
//!   process implements it over `/dev/xen/xenbus`, which carries the same wire format.
//! - [`XsConnection`]: pending requests matched by request id (several may be outstanding,
//!   answered in any order), watch registration and re-registration, a bounded queue of watch
//!   events with an overflow flag, and error mapping to [`XsError`]. Nothing blocks: an
//!   asynchronous caller submits and polls.
//! - The blocking helpers on [`XsConnection`] ([`read`](XsConnection::read),
//!   [`write`](XsConnection::write), [`directory`](XsConnection::directory),
//!   [`transaction`](XsConnection::transaction), …) need a transport that can also
//!   [`Wait`]; they submit, then poll and wait until their reply arrives.
//!
//! ```
//! use xenpci_core::xenstore::{TxId, Wait, Transport, XsConnection, XsError};
//!
//! fn backend_path<T: Wait>(t: &mut T, buf: &mut [u8]) -> Result<usize, XsError> {
//!     let mut client: XsConnection = XsConnection::new();
//!     client.read(t, TxId::NONE, "device/vbd/768/backend", buf)
//! }
//! ```
//!
//! Nothing here allocates: replies are copied into the caller's buffers, and every table has a
//! fixed size chosen by the connection's const parameters.

mod blocking;
mod conn;
mod error;
mod events;
mod mux;
pub mod perms;
mod ring;
mod transport;
pub mod wire;

#[cfg(test)]
mod tests;

pub use conn::{
    Reply, ReqId, TxId, WatchEvent, WatchId, WatchState, XsConnection, XsStats, MAX_WATCH_PATH,
    POLL_BYTE_BUDGET,
};
pub use error::{LimitError, ProtocolError, TransportError, XsError};
pub use mux::{MuxCore, MuxLock, MuxStats, MuxWait, WatchNews, XsMux, POLL_ROUNDS};
pub use perms::{Access, Perm, PermList};
pub use ring::{RingTransport, StorePage};
pub use transport::{Transport, Wait};
pub use xen_abi::xenstore::{XsErrno, XsMsgType};
