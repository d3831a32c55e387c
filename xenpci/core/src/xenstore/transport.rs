//! Moving bytes to and from the store: the [`Transport`] and [`Wait`] traits.

use super::XsError;

/// A non-blocking, bidirectional byte channel to the store daemon carrying the wire format.
///
/// Implemented here by [`RingTransport`](super::RingTransport) for the shared page of a guest;
/// a Linux process implements it over `/dev/xen/xenbus` (a file), and tests over an in-memory
/// pipe. Message boundaries need not be preserved: the connection frames the stream itself and
/// copes with any fragmentation.
pub trait Transport {
    /// Writes a prefix of `data` and returns its length; 0 when no room is available now.
    ///
    /// `data` never spans two messages: it is one whole message or the rest of one. A stream
    /// that acts on each message as its writes complete it (Linux's `/dev/xen/xenbus` drops
    /// whatever follows the first complete message of a single write) can therefore pass it to
    /// the device as is.
    fn write(&mut self, data: &[u8]) -> Result<usize, XsError>;

    /// Reads up to `buf.len()` bytes and returns how many; 0 when nothing is available now.
    ///
    /// The connection never asks for more than the rest of the message it is assembling, so a
    /// transport that blocks until at least one byte arrives is also acceptable for callers that
    /// only poll while they expect an answer.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, XsError>;

    /// Tells the peer that bytes were written or space was freed (an event-channel kick for the
    /// shared ring). Called once per [`poll`](super::XsConnection::poll) or
    /// [`flush`](super::XsConnection::flush) that moved bytes. The default does nothing, which
    /// is right for streams.
    fn notify(&mut self) -> Result<(), XsError> {
        Ok(())
    }
}

/// A [`Transport`] that can also block until the peer may have made progress; what the blocking
/// helpers of [`XsConnection`](super::XsConnection) need.
///
/// The time limit belongs to an operation, not to one wait: a helper calls
/// [`begin`](Self::begin) once when it starts waiting for an answer, and the operation fails
/// when the limit since then has passed, even if the peer keeps producing (a stream of watch
/// events makes every single wait return at once, so a limit per wait would never expire).
pub trait Wait: Transport {
    /// Starts the time limit of one blocking operation.
    fn begin(&mut self);

    /// Whether the time limit started by the last [`begin`](Self::begin) has passed. The
    /// helpers ask this when they poll again without waiting (the peer had more bytes than one
    /// poll takes).
    fn expired(&mut self) -> bool;

    /// Blocks until the peer may have produced bytes or freed space (for the ring: until the
    /// event channel fires), or the operation's time limit passes. Returning an error
    /// (typically [`TransportError::TimedOut`](super::TransportError::TimedOut)) abandons the
    /// operation in progress; its reply, if it ever comes, is discarded.
    fn wait(&mut self) -> Result<(), XsError>;
}

impl<T: Transport + ?Sized> Transport for &mut T {
    fn write(&mut self, data: &[u8]) -> Result<usize, XsError> {
        (**self).write(data)
    }
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, XsError> {
        (**self).read(buf)
    }
    fn notify(&mut self) -> Result<(), XsError> {
        (**self).notify()
    }
}

impl<T: Wait + ?Sized> Wait for &mut T {
    fn begin(&mut self) {
        (**self).begin()
    }
    fn expired(&mut self) -> bool {
        (**self).expired()
    }
    fn wait(&mut self) -> Result<(), XsError> {
        (**self).wait()
    }
}
