//! The ring's error type.

use core::fmt;
use xen_abi::ring::RingIdx;

/// Why a ring operation failed.
///
/// The variants fall into two groups, told apart by [`RingError::is_peer_violation`]:
///
/// - **Protocol violations by the peer** ([`Overflow`](Self::Overflow),
///   [`ProducerWentBackwards`](Self::ProducerWentBackwards),
///   [`UnrequestedResponses`](Self::UnrequestedResponses)). The peer wrote a producer index that
///   no well-behaved peer can write. The ring is *poisoned*: no entry past the bad index is read,
///   and every later operation on this ring returns the same error (pushes are refused, publishing
///   does nothing) until it is re-initialised (`reinit`/`reattach`). The right reaction is to
///   treat the peer as broken or hostile, typically by disconnecting.
/// - **Misuse by this side** ([`Full`](Self::Full), [`EntryTooLarge`](Self::EntryTooLarge),
///   [`InvalidMemory`](Self::InvalidMemory), [`RingTooSmall`](Self::RingTooSmall)). Nothing was
///   changed and the ring stays usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RingError {
    /// The peer's producer index claims more unconsumed entries than the ring can hold.
    ///
    /// For a frontend reading `rsp_prod`: `rsp_prod - rsp_cons > slots`. For a backend reading
    /// `req_prod`: `req_prod - rsp_prod_pvt > slots` (Xen's `RING_REQUEST_PROD_OVERFLOW`): the
    /// requests already consumed but not yet answered still occupy their slots.
    Overflow {
        /// The producer index the peer wrote.
        prod: RingIdx,
        /// The index the bound was measured from (`rsp_cons` or `rsp_prod_pvt`).
        base: RingIdx,
        /// The number of slots in the ring.
        slots: u32,
    },
    /// The peer's producer index moved backwards: it is behind the value read before.
    ///
    /// Indices are free-running 32-bit counters, so "behind" is decided by the shorter way round:
    /// `prod - last`, taken modulo 2^32, is at least 2^31 (negative as an `i32`). Every valid move
    /// is at most `slots` (< 2^31) forward, so such a value is invalid either way; the split
    /// between this variant and [`Overflow`](Self::Overflow) only names the likelier mistake.
    ProducerWentBackwards {
        /// The producer index the peer wrote.
        prod: RingIdx,
        /// The last producer index read and accepted from the peer.
        last: RingIdx,
    },
    /// A frontend saw more responses than it has published requests:
    /// `rsp_prod - rsp_cons > req_prod - rsp_cons`, with `req_prod` the last value this frontend
    /// published. No backend can answer a request it has not been shown.
    UnrequestedResponses {
        /// The response producer index the backend wrote.
        rsp_prod: RingIdx,
        /// The request producer index this frontend last published.
        req_prod: RingIdx,
    },
    /// No slot is available for another entry: a frontend already has `slots` requests
    /// outstanding, or a backend has answered every request it consumed. Our own misuse; retry
    /// after consuming responses (frontend) or requests (backend).
    Full,
    /// A raw ring was handed an entry longer than its entry size.
    EntryTooLarge {
        /// The length of the entry handed to the ring.
        len: usize,
        /// The ring's entry size.
        entry_size: usize,
    },
    /// The memory handed to [`RingMemory::new`](crate::RingMemory::new) is null, not page
    /// aligned, or of an order above [`RingMemory::MAX_ORDER`](crate::RingMemory::MAX_ORDER); or a
    /// byte range given to the memory accessors lies outside the region.
    InvalidMemory,
    /// Not even one entry of this size fits in the region after the 64-byte header.
    RingTooSmall {
        /// The number of pages in the region.
        pages: usize,
        /// The entry size asked for.
        entry_size: usize,
    },
}

impl RingError {
    /// True for the errors caused by the peer writing an impossible index (the ring is poisoned);
    /// false for errors caused by this side's own use of the ring.
    pub const fn is_peer_violation(&self) -> bool {
        matches!(
            self,
            Self::Overflow { .. }
                | Self::ProducerWentBackwards { .. }
                | Self::UnrequestedResponses { .. }
        )
    }
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Overflow { prod, base, slots } => write!(
                f,
                "peer protocol violation: producer index {prod} is {} entries past {base}, more than the ring's {slots} slots",
                prod.wrapping_sub(base)
            ),
            Self::ProducerWentBackwards { prod, last } => write!(
                f,
                "peer protocol violation: producer index went backwards from {last} to {prod}"
            ),
            Self::UnrequestedResponses { rsp_prod, req_prod } => write!(
                f,
                "peer protocol violation: response producer index {rsp_prod} is past the published request producer index {req_prod}"
            ),
            Self::Full => f.write_str("ring full: no slot available for another entry"),
            Self::EntryTooLarge { len, entry_size } => {
                write!(f, "entry of {len} bytes does not fit the ring's {entry_size}-byte entries")
            }
            Self::InvalidMemory => f.write_str(
                "ring memory is null, not page aligned, too large, or the byte range is outside it",
            ),
            Self::RingTooSmall { pages, entry_size } => write!(
                f,
                "no {entry_size}-byte entry fits in a {pages}-page ring after its header"
            ),
        }
    }
}

impl core::error::Error for RingError {}
