//! The one error type of the xenstore client, split by whose fault the failure is.

use core::fmt;

use xen_abi::xenstore::{XsErrno, XsMsgType};

/// Why a xenstore operation failed.
///
/// The four kinds are deliberately distinct: [`XsError::Store`] is a normal answer (a node is
/// missing, a transaction must be redone); [`XsError::Protocol`] means the peer broke the wire
/// protocol; [`XsError::Limit`] means the request was refused locally before anything was sent
/// (or the caller's buffer was too small for the answer); [`XsError::Transport`] means bytes could
/// not be moved at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XsError {
    /// The store answered with an error (an `XS_ERROR` reply naming an errno).
    Store(XsErrno),
    /// The peer violated the protocol.
    Protocol(ProtocolError),
    /// One of our own limits was exceeded, or the caller misused the API.
    Limit(LimitError),
    /// The transport failed.
    Transport(TransportError),
}

impl XsError {
    /// Whether this is the store saying `EAGAIN` (a transaction conflicted and must be redone).
    pub fn is_eagain(&self) -> bool {
        matches!(self, XsError::Store(XsErrno::Eagain))
    }

    /// Whether this is the store saying `ENOENT`.
    pub fn is_enoent(&self) -> bool {
        matches!(self, XsError::Store(XsErrno::Enoent))
    }
}

/// A violation of the wire protocol by the peer (the store daemon, or whatever sits behind the
/// transport).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// A message header claimed a payload longer than `XENSTORE_PAYLOAD_MAX`. The byte stream
    /// cannot be resynchronised after this; the connection is broken until
    /// [`reset`](super::XsConnection::reset).
    PayloadTooLong {
        /// The claimed length.
        len: u32,
    },
    /// A message carried a type number that names no message type.
    UnknownMessageType {
        /// The raw type number.
        raw: u32,
    },
    /// A reply's type is neither the request's type nor `XS_ERROR`.
    UnexpectedReplyType {
        /// The type of the request.
        expected: XsMsgType,
        /// The type of the reply.
        got: XsMsgType,
    },
    /// A reply carried a request id that matches no outstanding request.
    UnknownRequestId {
        /// The request id of the reply.
        req_id: u32,
    },
    /// A payload that must end in a NUL terminator does not.
    MissingNul,
    /// A payload is not what its type requires (not `"OK"`, not a number, not a permission, not
    /// `path\0token\0`, …).
    MalformedPayload,
    /// An `XS_ERROR` reply named an error that is not in `xsd_errors`.
    UnknownErrorName,
    /// A shared-ring producer index claims more bytes outstanding than the ring holds (or the
    /// consumer index is ahead of the producer). Nothing is read or written past the ring.
    RingIndex {
        /// The producer index read from (or held for) the ring.
        prod: u32,
        /// The consumer index read from (or held for) the ring.
        cons: u32,
    },
    /// An earlier fatal violation broke the connection; it stays broken until
    /// [`reset`](super::XsConnection::reset).
    Broken,
}

/// A limit of this client (or of the protocol, enforced before sending) that a request exceeded,
/// or a misuse of the API. Nothing was sent when a request fails with one of these, except for
/// [`LimitError::BufferTooSmall`], which describes the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitError {
    /// A path was empty.
    EmptyPath,
    /// A path is longer than the store accepts (`XENSTORE_ABS_PATH_MAX` for absolute paths,
    /// `XENSTORE_REL_PATH_MAX` for relative ones).
    PathTooLong {
        /// The path's length in bytes.
        len: usize,
        /// The applicable limit.
        max: usize,
    },
    /// A string argument (path, token) contains a NUL byte.
    NulInArgument,
    /// A permission list to set is empty (it needs at least the owner).
    NoPermissions,
    /// The request's payload would exceed `XENSTORE_PAYLOAD_MAX`.
    PayloadTooLong {
        /// The payload's length in bytes.
        len: usize,
    },
    /// The caller's buffer is too small for the encoded request or for the reply.
    BufferTooSmall {
        /// The number of bytes that would have been needed.
        needed: usize,
    },
    /// Every pending-request slot is in use; poll for replies first.
    TooManyRequests,
    /// The outgoing queue has no room for this request; poll (which flushes it) first.
    SendQueueFull,
    /// Every watch slot is in use.
    TooManyWatches,
    /// A watched path is longer than this client stores for re-registration
    /// ([`MAX_WATCH_PATH`](super::MAX_WATCH_PATH)).
    WatchPathTooLong {
        /// The path's length in bytes.
        len: usize,
    },
    /// The watch id does not name a registered watch (it was removed, or never existed).
    UnknownWatch,
    /// A blocking helper was called while asynchronously submitted requests are outstanding;
    /// the helpers need the connection to themselves.
    Busy,
}

/// A failure to move bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportError {
    /// The peer is gone (end of file on a stream, a ring torn down).
    Closed,
    /// An I/O error with a platform code (an errno, an `NTSTATUS`).
    Io(i32),
    /// A wait gave up.
    TimedOut,
    /// The connection is being re-established (the ring is reconnecting).
    Reconnecting,
}

impl From<ProtocolError> for XsError {
    fn from(e: ProtocolError) -> XsError {
        XsError::Protocol(e)
    }
}

impl From<LimitError> for XsError {
    fn from(e: LimitError) -> XsError {
        XsError::Limit(e)
    }
}

impl From<TransportError> for XsError {
    fn from(e: TransportError) -> XsError {
        XsError::Transport(e)
    }
}

impl From<XsErrno> for XsError {
    fn from(e: XsErrno) -> XsError {
        XsError::Store(e)
    }
}

impl fmt::Display for XsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XsError::Store(e) => write!(f, "xenstore: {}", e.name()),
            XsError::Protocol(e) => write!(f, "xenstore protocol violation: {e}"),
            XsError::Limit(e) => write!(f, "xenstore request refused: {e}"),
            XsError::Transport(e) => write!(f, "xenstore transport: {e}"),
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::PayloadTooLong { len } => {
                write!(
                    f,
                    "message claims a {len}-byte payload (the maximum is 4096)"
                )
            }
            ProtocolError::UnknownMessageType { raw } => write!(f, "unknown message type {raw}"),
            ProtocolError::UnexpectedReplyType { expected, got } => {
                write!(
                    f,
                    "{} reply to an {} request",
                    got.c_name(),
                    expected.c_name()
                )
            }
            ProtocolError::UnknownRequestId { req_id } => {
                write!(f, "reply to request id {req_id}, which is not outstanding")
            }
            ProtocolError::MissingNul => f.write_str("payload lacks its NUL terminator"),
            ProtocolError::MalformedPayload => f.write_str("malformed payload"),
            ProtocolError::UnknownErrorName => f.write_str("error reply names an unknown error"),
            ProtocolError::RingIndex { prod, cons } => {
                write!(
                    f,
                    "ring indices prod {prod} cons {cons} are more than 1024 bytes apart"
                )
            }
            ProtocolError::Broken => f.write_str("connection broken by an earlier violation"),
        }
    }
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitError::EmptyPath => f.write_str("empty path"),
            LimitError::PathTooLong { len, max } => {
                write!(f, "path of {len} bytes is longer than {max}")
            }
            LimitError::NulInArgument => f.write_str("argument contains a NUL byte"),
            LimitError::NoPermissions => f.write_str("empty permission list"),
            LimitError::PayloadTooLong { len } => {
                write!(f, "payload of {len} bytes is longer than 4096")
            }
            LimitError::BufferTooSmall { needed } => {
                write!(f, "buffer too small ({needed} needed)")
            }
            LimitError::TooManyRequests => f.write_str("too many outstanding requests"),
            LimitError::SendQueueFull => f.write_str("send queue full"),
            LimitError::TooManyWatches => f.write_str("too many watches"),
            LimitError::WatchPathTooLong { len } => {
                write!(f, "watched path of {len} bytes is too long to keep")
            }
            LimitError::UnknownWatch => f.write_str("no such watch"),
            LimitError::Busy => f.write_str("other requests are outstanding"),
        }
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::Closed => f.write_str("closed"),
            TransportError::Io(code) => write!(f, "I/O error {code:#x}"),
            TransportError::TimedOut => f.write_str("timed out"),
            TransportError::Reconnecting => f.write_str("reconnecting"),
        }
    }
}

impl core::error::Error for XsError {}
