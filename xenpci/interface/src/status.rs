//! The status codes the table's functions return, and [`BusError`], their typed form.
//!
//! 0 is success. `-1` to `-31` are the interface's own failures; `-0x100 - i` is the store's
//! error `i` of `xsd_errors` ([`XsErrno`] in table order); `-0x1000 - e` is a hypervisor
//! failure with Xen errno `e`. Any other negative value decodes to [`BusError::Unknown`], so a
//! newer provider's code is still reported (never mistaken for success).

#![forbid(unsafe_code)]

use core::fmt;

use xen_abi::xenstore::XsErrno;
use xenpci_core::grant_table::GrantError;
use xenpci_core::xenstore::XsError;

use crate::abi::Status;

/// Success.
pub const STATUS_SUCCESS: Status = 0;
/// A pointer, length or enumeration value was invalid.
pub const STATUS_INVALID_PARAMETER: Status = -1;
/// The caller's buffer is too small; the needed length was written to the length output.
pub const STATUS_BUFFER_TOO_SMALL: Status = -2;
/// No grant reference is free.
pub const STATUS_GRANT_EXHAUSTED: Status = -3;
/// The frame does not fit a grant entry.
pub const STATUS_FRAME_TOO_LARGE: Status = -4;
/// The reference is not granted (double end, stale reference).
pub const STATUS_NOT_GRANTED: Status = -5;
/// Every registration slot (port, watch, suspend callback) is in use.
pub const STATUS_NO_SLOT: Status = -6;
/// The port, watch or handle is not this child's.
pub const STATUS_NOT_OWNED: Status = -7;
/// The store broke its protocol (the bus logged the details).
pub const STATUS_STORE_PROTOCOL: Status = -8;
/// A store request exceeded a limit (path, payload, too many requests).
pub const STATUS_STORE_LIMIT: Status = -9;
/// The store could not be reached (transport closed, reconnecting, timed out).
pub const STATUS_STORE_TRANSPORT: Status = -10;
/// The function was called above its highest IRQL.
pub const STATUS_WRONG_IRQL: Status = -11;
/// The interface was released (its last reference dropped) or the device removed.
pub const STATUS_RELEASED: Status = -12;
/// A composed path (base directory and relative path) is too long.
pub const STATUS_PATH_TOO_LONG: Status = -13;
/// A callback was called while the bus was already inside one for the same registration.
pub const STATUS_REENTERED: Status = -14;

const STORE_BASE: Status = -0x100;
const HYPERVISOR_BASE: Status = -0x1000;

/// A failure of a bus function, as both sides see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusError {
    /// A pointer, length or enumeration value was invalid.
    InvalidParameter,
    /// The buffer is too small; `needed` bytes are.
    BufferTooSmall {
        /// The length needed.
        needed: usize,
    },
    /// No grant reference is free.
    GrantExhausted,
    /// The frame does not fit a grant entry.
    FrameTooLarge,
    /// The reference is not granted.
    NotGranted,
    /// Every registration slot is in use.
    NoSlot,
    /// The port, watch or handle is not this child's.
    NotOwned,
    /// The store answered with an error.
    Store(XsErrno),
    /// The store broke its protocol.
    StoreProtocol,
    /// A store request exceeded a limit.
    StoreLimit,
    /// The store could not be reached.
    StoreTransport,
    /// Called above the function's highest IRQL.
    WrongIrql,
    /// The interface was released or the device removed.
    Released,
    /// A composed path is too long.
    PathTooLong,
    /// A callback would have been re-entered.
    Reentered,
    /// The hypervisor refused, with this Xen errno (positive).
    Hypervisor(u32),
    /// A status this crate does not know (from a newer provider).
    Unknown(Status),
}

impl BusError {
    /// The status code.
    pub fn status(self) -> Status {
        match self {
            BusError::InvalidParameter => STATUS_INVALID_PARAMETER,
            BusError::BufferTooSmall { .. } => STATUS_BUFFER_TOO_SMALL,
            BusError::GrantExhausted => STATUS_GRANT_EXHAUSTED,
            BusError::FrameTooLarge => STATUS_FRAME_TOO_LARGE,
            BusError::NotGranted => STATUS_NOT_GRANTED,
            BusError::NoSlot => STATUS_NO_SLOT,
            BusError::NotOwned => STATUS_NOT_OWNED,
            BusError::Store(e) => STORE_BASE - e as Status,
            BusError::StoreProtocol => STATUS_STORE_PROTOCOL,
            BusError::StoreLimit => STATUS_STORE_LIMIT,
            BusError::StoreTransport => STATUS_STORE_TRANSPORT,
            BusError::WrongIrql => STATUS_WRONG_IRQL,
            BusError::Released => STATUS_RELEASED,
            BusError::PathTooLong => STATUS_PATH_TOO_LONG,
            BusError::Reentered => STATUS_REENTERED,
            BusError::Hypervisor(errno) => {
                // Errnos are small; clamp anything absurd into the range rather than wrap.
                HYPERVISOR_BASE - errno.min(0x0fff_ffff) as Status
            }
            BusError::Unknown(s) => {
                if s < 0 {
                    s
                } else {
                    STATUS_INVALID_PARAMETER
                }
            }
        }
    }

    /// Decodes a status: `Ok(())` for success; `needed` is the length output of the call
    /// (meaningful with [`STATUS_BUFFER_TOO_SMALL`]). A positive status is no status this
    /// interface defines and decodes to [`BusError::Unknown`].
    pub fn check(status: Status, needed: usize) -> Result<(), BusError> {
        Err(match status {
            STATUS_SUCCESS => return Ok(()),
            STATUS_INVALID_PARAMETER => BusError::InvalidParameter,
            STATUS_BUFFER_TOO_SMALL => BusError::BufferTooSmall { needed },
            STATUS_GRANT_EXHAUSTED => BusError::GrantExhausted,
            STATUS_FRAME_TOO_LARGE => BusError::FrameTooLarge,
            STATUS_NOT_GRANTED => BusError::NotGranted,
            STATUS_NO_SLOT => BusError::NoSlot,
            STATUS_NOT_OWNED => BusError::NotOwned,
            STATUS_STORE_PROTOCOL => BusError::StoreProtocol,
            STATUS_STORE_LIMIT => BusError::StoreLimit,
            STATUS_STORE_TRANSPORT => BusError::StoreTransport,
            STATUS_WRONG_IRQL => BusError::WrongIrql,
            STATUS_RELEASED => BusError::Released,
            STATUS_PATH_TOO_LONG => BusError::PathTooLong,
            STATUS_REENTERED => BusError::Reentered,
            s if s <= STORE_BASE && s > STORE_BASE - XsErrno::ALL.len() as Status => {
                BusError::Store(XsErrno::ALL[(STORE_BASE - s) as usize])
            }
            s if s <= HYPERVISOR_BASE && s > HYPERVISOR_BASE - 0x1000_0000 => {
                BusError::Hypervisor((HYPERVISOR_BASE - s) as u32)
            }
            s => BusError::Unknown(s),
        })
    }

    /// The store error a [`FrontendStore`](xenpci_core::xenbus::FrontendStore) user expects:
    /// store answers and buffer sizes exactly; the rest as the nearest kind (the bus logged the
    /// precise failure).
    pub fn to_xs_error(self) -> XsError {
        use xenpci_core::xenstore::{LimitError, ProtocolError, TransportError};
        match self {
            BusError::Store(e) => XsError::Store(e),
            BusError::BufferTooSmall { needed } => {
                XsError::Limit(LimitError::BufferTooSmall { needed })
            }
            BusError::PathTooLong => XsError::Limit(LimitError::PathTooLong {
                len: 0,
                max: xenpci_core::xenbus::MAX_CHILD_PATH,
            }),
            BusError::StoreProtocol => XsError::Protocol(ProtocolError::Broken),
            BusError::StoreLimit | BusError::NoSlot => XsError::Limit(LimitError::TooManyRequests),
            BusError::InvalidParameter => XsError::Limit(LimitError::NulInArgument),
            BusError::Released => XsError::Transport(TransportError::Closed),
            other => XsError::Transport(TransportError::Io(other.status())),
        }
    }

    /// The store failure as the interface reports it.
    pub fn from_xs_error(e: XsError) -> BusError {
        use xenpci_core::xenstore::LimitError;
        match e {
            XsError::Store(errno) => BusError::Store(errno),
            XsError::Limit(LimitError::BufferTooSmall { needed }) => {
                BusError::BufferTooSmall { needed }
            }
            XsError::Limit(LimitError::PathTooLong { .. }) => BusError::PathTooLong,
            XsError::Limit(_) => BusError::StoreLimit,
            XsError::Protocol(_) => BusError::StoreProtocol,
            XsError::Transport(_) => BusError::StoreTransport,
        }
    }

    /// The grant failure as the interface reports it.
    pub fn from_grant_error(e: GrantError) -> BusError {
        match e {
            GrantError::Exhausted => BusError::GrantExhausted,
            GrantError::FrameTooLarge { .. } => BusError::FrameTooLarge,
            GrantError::NotGranted { .. } => BusError::NotGranted,
            GrantError::BadCapacity { .. } => BusError::InvalidParameter,
        }
    }

    /// The grant failure a block core expects; `gref` and `frame` fill in what the status
    /// cannot carry.
    pub fn to_grant_error(self, gref: u32, frame: u64) -> GrantError {
        match self {
            BusError::FrameTooLarge => GrantError::FrameTooLarge { frame },
            BusError::NotGranted => GrantError::NotGranted { gref },
            // Everything else means no reference could be had now: the engine retries later.
            _ => GrantError::Exhausted,
        }
    }
}

impl fmt::Display for BusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BusError::InvalidParameter => f.write_str("invalid parameter"),
            BusError::BufferTooSmall { needed } => {
                write!(f, "buffer too small ({needed} bytes needed)")
            }
            BusError::GrantExhausted => f.write_str("no free grant reference"),
            BusError::FrameTooLarge => f.write_str("frame does not fit a grant entry"),
            BusError::NotGranted => f.write_str("reference not granted"),
            BusError::NoSlot => f.write_str("no free registration slot"),
            BusError::NotOwned => f.write_str("not this child's"),
            BusError::Store(e) => write!(f, "store error {}", e.name()),
            BusError::StoreProtocol => f.write_str("store protocol violation"),
            BusError::StoreLimit => f.write_str("store request over a limit"),
            BusError::StoreTransport => f.write_str("store unreachable"),
            BusError::WrongIrql => f.write_str("called above its IRQL"),
            BusError::Released => f.write_str("interface released"),
            BusError::PathTooLong => f.write_str("path too long"),
            BusError::Reentered => f.write_str("callback re-entered"),
            BusError::Hypervisor(e) => write!(f, "hypervisor error {e}"),
            BusError::Unknown(s) => write!(f, "unknown status {s}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    #[test]
    fn every_error_round_trips_through_its_status() {
        let mut all = vec![
            BusError::InvalidParameter,
            BusError::BufferTooSmall { needed: 77 },
            BusError::GrantExhausted,
            BusError::FrameTooLarge,
            BusError::NotGranted,
            BusError::NoSlot,
            BusError::NotOwned,
            BusError::StoreProtocol,
            BusError::StoreLimit,
            BusError::StoreTransport,
            BusError::WrongIrql,
            BusError::Released,
            BusError::PathTooLong,
            BusError::Reentered,
            BusError::Hypervisor(22),
            BusError::Unknown(-0x7000_0000),
        ];
        for e in XsErrno::ALL {
            all.push(BusError::Store(e));
        }
        for e in all {
            let needed = if let BusError::BufferTooSmall { needed } = e {
                needed
            } else {
                0
            };
            assert!(e.status() < 0, "{e:?}");
            assert_eq!(BusError::check(e.status(), needed), Err(e), "{e:?}");
        }
        assert_eq!(BusError::check(STATUS_SUCCESS, 0), Ok(()));
        // A positive status is not success.
        assert_eq!(BusError::check(5, 0), Err(BusError::Unknown(5)));
    }

    #[test]
    fn store_errors_survive_the_trip_to_frontend_store_errors() {
        for e in XsErrno::ALL {
            let xs = BusError::Store(e).to_xs_error();
            assert_eq!(xs, XsError::Store(e));
            assert_eq!(BusError::from_xs_error(xs), BusError::Store(e));
        }
        let small = BusError::BufferTooSmall { needed: 9 };
        assert_eq!(BusError::from_xs_error(small.to_xs_error()), small);
    }
}
