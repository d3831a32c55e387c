//! [`NetQueue`]: one queue's transmit and receive rings and everything they hold.
//!
//! # Transmit
//! [`submit`](NetQueue::submit) validates a packet, copies its fragment list and decides how it
//! goes on the ring (a `TxPlan`), then queues it in a bounded FIFO of `PENDING` packets; a full
//! FIFO refuses with [`SubmitError::Busy`](crate::SubmitError::Busy). Dispatch puts packets on the ring in order when the
//! ring, the copy pages and the grant table have room for the whole packet:
//!
//! - *copy-free*: each fragment is granted read-only and becomes one slot
//!   (`NETTXF_more_data` between them);
//! - *header copy* (a VLAN tag to insert, a checksum field to fill, a GSO packet): the headers
//!   are copied into a copy page and edited there; the payload's fragments are granted as they
//!   are;
//! - *whole copy* (more fragments than the backend accepts slots, or software segmentation): the
//!   packet, or each segment of it, is written into copy pages.
//!
//! A checksum is left to the backend (`NETTXF_csum_blank | NETTXF_data_validated`, the field
//! holding the pseudo-header sum) when it accepts that for the IP version, and computed in
//! software otherwise; the IPv4 header checksum is always computed by the core. A large send
//! goes as one GSO packet (a `XEN_NETIF_EXTRA_TYPE_GSO` slot after the first) when the backend
//! accepts GSO for the IP version, and is cut into segments in software otherwise. The shell
//! therefore advertises the same offloads whatever the backend.
//!
//! Each data slot has an id (0..256) naming its packet; extra-info slots get a
//! `NETIF_RSP_NULL` response, which is skipped. A packet completes when every one of its slots
//! is answered; its grants are ended first, and a grant the backend still maps keeps the packet
//! (and its pages) out of use for good, counted in `still_mapped`.
//!
//! # Receive
//! `RXB` buffers (guest frames given at construction) are granted writable and posted with
//! their index as id; the ring position of each is remembered, because netback answers a
//! request in the slot of the same position and extra-info responses carry no id. A packet is a
//! first data response, its extra-info chain (GSO, hash) when `NETRXF_extra_info` is set, and
//! further data responses while `NETRXF_more_data` is set. Each response is copied once and
//! checked: the id against the buffer posted at that position, `offset + size` within the page,
//! the status, the flags (no unknown bits, extra info only on the first slot), the extra-info
//! types and chain length, the slot count, the GSO type against the headers and its size. A
//! packet with a bad response is dropped whole and counted; after `max_violations` bad responses
//! the queue fails. The grant of every buffer is ended as its response arrives, before the data
//! is read or handed to the shell.

use xen_abi::netif::{NetifRxRequest, NetifRxResponse, NetifTxRequest, NetifTxResponse};
use xen_abi::types::{DomId, GrantRef};
use xen_ring::{FrontRing, RingError, RingMemory};
use xenpci_core::grant_table::{GrantError, Revocation};

use crate::negotiate::FrontendParams;
use crate::platform::{Events, Grants, GuestMemory, Io, LogEvent};
use crate::rx::{Assembly, RxBuf};
use crate::tx::{Pending, PoolPage, TX_IDS};
use crate::types::QueueCounters;

pub(crate) const NONE16: u16 = u16::MAX;

/// Where a queue is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueState {
    /// No rings.
    Idle,
    /// Rings granted and published; waiting for the backend to connect.
    Attached,
    /// Packets flow.
    Running,
    /// The backend misbehaved too often: nothing is sent or received until a disconnect.
    Failed(QueueError),
}

/// A bad response, or a poisoned ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// The ring's indices were impossible.
    Ring(RingError),
    /// A transmit response names no slot in flight.
    TxUnknownId {
        /// The id.
        id: u16,
    },
    /// A transmit response's status is none of OKAY, ERROR, DROPPED, NULL.
    TxBadStatus {
        /// The status.
        status: i16,
    },
    /// A receive response's id is not the buffer posted at its ring position.
    RxWrongId {
        /// The buffer posted there.
        expected: u16,
        /// The id in the response.
        got: u16,
    },
    /// A receive response at a ring position where no buffer is posted.
    RxNoBuffer,
    /// `offset + size` runs past the page.
    RxOutOfPage {
        /// The offset.
        offset: u16,
        /// The size.
        size: u16,
    },
    /// A negative status other than ERROR or DROPPED.
    RxBadStatus {
        /// The status.
        status: i16,
    },
    /// Unknown flag bits, `NETRXF_gso_prefix`, or extra info on a later slot.
    RxBadFlags {
        /// The flags.
        flags: u16,
    },
    /// An extra-info slot of an unknown or unexpected type, or a type seen twice.
    RxBadExtra {
        /// The type.
        extra_type: u8,
    },
    /// More slots than a packet may use.
    RxTooManySlots,
    /// A GSO extra whose type does not match the packet's headers, or whose size is 0.
    RxBadGso {
        /// The GSO type.
        gso_type: u8,
        /// The GSO size.
        size: u16,
    },
    /// A hash extra whose type is unknown.
    RxBadHash {
        /// The hash type (bit number).
        hash_type: u8,
    },
    /// A packet shorter than an Ethernet header.
    RxRunt {
        /// Its length.
        length: u32,
    },
    /// The backend still mapped a grant it had answered for (or that the connection is
    /// dropping): the page is kept out of use for good.
    StillMapped,
}

/// One queue. See the module documentation.
///
/// - `PENDING`: packets accepted for sending and not yet completed (the bounded FIFO).
/// - `POOL`: copy pages (at most 64), for header copies, whole copies and software segments.
/// - `RXB`: receive buffers (at most 256, the receive ring's size).
#[derive(Debug)]
pub struct NetQueue<const PENDING: usize, const POOL: usize, const RXB: usize> {
    pub(crate) index: u16,
    pub(crate) backend: DomId,
    pub(crate) state: QueueState,
    pub(crate) params: Option<FrontendParams>,
    pub(crate) strip_vlan: bool,
    pub(crate) max_violations: u32,
    pub(crate) violations: u32,
    pub(crate) tx_ring: Option<FrontRing<NetifTxRequest, NetifTxResponse>>,
    pub(crate) rx_ring: Option<FrontRing<NetifRxRequest, NetifRxResponse>>,
    pub(crate) tx_ring_gref: Option<GrantRef>,
    pub(crate) rx_ring_gref: Option<GrantRef>,
    pub(crate) pending: [Pending; PENDING],
    /// Pending packets not yet on the ring, in submission order (a circular list).
    pub(crate) fifo: [u16; PENDING],
    pub(crate) fifo_head: usize,
    pub(crate) fifo_len: usize,
    /// The pending packet of each transmit id in flight.
    pub(crate) tx_ids: [u16; TX_IDS],
    pub(crate) tx_free_ids: [u16; TX_IDS],
    pub(crate) tx_free_id_count: usize,
    pub(crate) pool: [PoolPage; POOL],
    pub(crate) bufs: [RxBuf; RXB],
    /// The buffer posted at each receive ring position.
    pub(crate) rx_at: [u16; TX_IDS],
    pub(crate) rx_posted: usize,
    pub(crate) assembly: Assembly,
    pub(crate) counters: QueueCounters,
}

impl<const PENDING: usize, const POOL: usize, const RXB: usize> NetQueue<PENDING, POOL, RXB> {
    /// A queue with no pages yet, as a constant: the shell can place it in its device memory
    /// (a `static`, or storage initialised from the constant) without building it on the stack,
    /// then call [`init`](Self::init) there.
    pub const EMPTY: Self = {
        assert!(POOL <= 64 && RXB <= TX_IDS && PENDING > 0 && PENDING < 0xffff);
        NetQueue {
            index: 0,
            backend: 0,
            state: QueueState::Idle,
            params: None,
            strip_vlan: false,
            max_violations: 16,
            violations: 0,
            tx_ring: None,
            rx_ring: None,
            tx_ring_gref: None,
            rx_ring_gref: None,
            pending: [Pending::EMPTY; PENDING],
            fifo: [NONE16; PENDING],
            fifo_head: 0,
            fifo_len: 0,
            tx_ids: [NONE16; TX_IDS],
            tx_free_ids: [0; TX_IDS],
            tx_free_id_count: 0,
            pool: [PoolPage::EMPTY; POOL],
            bufs: [RxBuf::EMPTY; RXB],
            rx_at: [NONE16; TX_IDS],
            rx_posted: 0,
            assembly: Assembly::EMPTY,
            counters: QueueCounters::ZERO,
        }
    };

    /// A queue with its copy pages and receive buffers (guest frames preallocated by the
    /// platform, never freed while the queue lives). Returns the whole state by value; see
    /// [`EMPTY`](Self::EMPTY) and [`init`](Self::init) to build it in place.
    pub fn new(
        index: u16,
        backend: DomId,
        pool_frames: &[u64; POOL],
        rx_frames: &[u64; RXB],
    ) -> Self {
        let mut q = Self::EMPTY;
        q.init(index, backend, pool_frames, rx_frames);
        q
    }

    /// (Re)initialises the queue where it is, field by field: Idle, no rings, the given pages,
    /// counters zero. Only for a queue that holds nothing (never attached, or disconnected with
    /// no buffer kept by the shell).
    pub fn init(
        &mut self,
        index: u16,
        backend: DomId,
        pool_frames: &[u64; POOL],
        rx_frames: &[u64; RXB],
    ) {
        self.index = index;
        self.backend = backend;
        self.state = QueueState::Idle;
        self.params = None;
        self.violations = 0;
        self.tx_ring = None;
        self.rx_ring = None;
        self.tx_ring_gref = None;
        self.rx_ring_gref = None;
        self.pending.fill(Pending::EMPTY);
        self.fifo.fill(NONE16);
        self.fifo_head = 0;
        self.fifo_len = 0;
        self.tx_ids.fill(NONE16);
        for (i, id) in self.tx_free_ids.iter_mut().enumerate() {
            *id = (TX_IDS - 1 - i) as u16;
        }
        self.tx_free_id_count = TX_IDS;
        for (p, f) in self.pool.iter_mut().zip(pool_frames) {
            *p = PoolPage::new(*f);
        }
        for (b, f) in self.bufs.iter_mut().zip(rx_frames) {
            *b = RxBuf::new(*f);
        }
        self.rx_at.fill(NONE16);
        self.rx_posted = 0;
        self.assembly = Assembly::EMPTY;
        self.counters = QueueCounters::ZERO;
    }

    /// The queue's index.
    pub fn index(&self) -> u16 {
        self.index
    }

    /// The state.
    pub fn state(&self) -> QueueState {
        self.state
    }

    /// The counters.
    pub fn counters(&self) -> QueueCounters {
        self.counters
    }

    /// Packets accepted and not yet completed (queued or on the ring).
    pub fn tx_outstanding(&self) -> usize {
        self.pending.iter().filter(|p| p.live).count()
    }

    /// Packets accepted and waiting for room on the ring.
    pub fn tx_queued(&self) -> usize {
        self.fifo_len
    }

    /// Receive buffers currently posted to the backend.
    pub fn rx_posted(&self) -> usize {
        self.rx_posted
    }

    /// Receive buffers the shell holds.
    pub fn rx_with_shell(&self) -> usize {
        self.bufs.iter().filter(|b| b.is_with_shell()).count()
    }

    /// The grant references of the transmit and receive rings, once attached.
    pub fn ring_refs(&self) -> Option<(GrantRef, GrantRef)> {
        Some((self.tx_ring_gref?, self.rx_ring_gref?))
    }

    /// Grants the two ring pages and initialises the rings (`tx_frame`/`rx_frame` are the guest
    /// frames of the one-page `tx`/`rx` memories). Nothing is granted on failure.
    pub fn attach<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        params: FrontendParams,
        tx: (RingMemory, u64),
        rx: (RingMemory, u64),
        io: &mut Io<'_, G, N, M>,
    ) -> Result<(), AttachError> {
        if self.state != QueueState::Idle {
            return Err(AttachError::NotIdle);
        }
        if tx.0.pages() != 1 || rx.0.pages() != 1 {
            return Err(AttachError::RingSize);
        }
        let tx_ring = FrontRing::init(tx.0).map_err(AttachError::Ring)?;
        let rx_ring = FrontRing::init(rx.0).map_err(AttachError::Ring)?;
        let tx_gref = io
            .grants
            .grant(self.backend, tx.1, false)
            .map_err(AttachError::Grant)?;
        let rx_gref = match io.grants.grant(self.backend, rx.1, false) {
            Ok(g) => g,
            Err(e) => {
                let _ = io.grants.end(tx_gref);
                return Err(AttachError::Grant(e));
            }
        };
        self.tx_ring = Some(tx_ring);
        self.rx_ring = Some(rx_ring);
        self.tx_ring_gref = Some(tx_gref);
        self.rx_ring_gref = Some(rx_gref);
        self.params = Some(params);
        self.violations = 0;
        self.rx_at = [NONE16; TX_IDS];
        self.assembly = Assembly::EMPTY;
        self.state = QueueState::Attached;
        Ok(())
    }

    /// The backend is connected: post the receive buffers and send what is queued.
    pub fn connected<G: Grants, N: Events, M: GuestMemory>(&mut self, io: &mut Io<'_, G, N, M>) {
        if self.state == QueueState::Attached {
            self.state = QueueState::Running;
            self.refill(io);
            self.dispatch(io);
        }
    }

    /// Services both rings (from the event handler of either channel): completes sends through
    /// `complete`, presents received packets through `deliver`, refills, dispatches.
    pub fn poll<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        io: &mut Io<'_, G, N, M>,
        complete: impl FnMut(crate::types::TxCompletion),
        deliver: impl FnMut(&crate::types::RxPacket<'_>) -> crate::types::RxVerdict,
    ) {
        self.poll_tx(io, complete);
        self.poll_rx(io, deliver);
    }

    /// The backend went away (or the device stops): every grant is ended, packets on the ring
    /// complete [`Aborted`](crate::TxStatus::Aborted), packets not yet on the ring stay queued
    /// for the next connection (nothing is sent twice), posted receive buffers become free again
    /// and buffers the shell holds stay the shell's.
    pub fn disconnect<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        io: &mut Io<'_, G, N, M>,
        complete: impl FnMut(crate::types::TxCompletion),
    ) {
        self.abort_tx(io, complete);
        self.release_rx(io);
        for gref in [self.tx_ring_gref.take(), self.rx_ring_gref.take()]
            .into_iter()
            .flatten()
        {
            self.end_grant(io, gref);
        }
        self.tx_ring = None;
        self.rx_ring = None;
        self.params = None;
        self.state = QueueState::Idle;
    }

    /// Ends a grant; false (counted, logged) when the backend still maps it.
    pub(crate) fn end_grant<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        io: &mut Io<'_, G, N, M>,
        gref: GrantRef,
    ) -> bool {
        match io.grants.end(gref) {
            Ok(Revocation::Revoked) => true,
            Ok(Revocation::Deferred) | Err(GrantError::NotGranted { .. }) | Err(_) => {
                self.counters.still_mapped += 1;
                io.events.log(LogEvent::StillMapped { queue: self.index });
                self.violation(io, QueueError::StillMapped);
                false
            }
        }
    }

    /// Counts a bad response; fails the queue past the budget.
    pub(crate) fn violation<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        io: &mut Io<'_, G, N, M>,
        error: QueueError,
    ) {
        self.counters.bad_responses += 1;
        self.violations = self.violations.saturating_add(1);
        io.events.log(LogEvent::BadResponse {
            queue: self.index,
            error,
        });
        if self.violations > self.max_violations {
            self.fail(io, error);
        }
    }

    pub(crate) fn fail<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        io: &mut Io<'_, G, N, M>,
        error: QueueError,
    ) {
        if !matches!(self.state, QueueState::Failed(_)) {
            self.state = QueueState::Failed(error);
            io.events.log(LogEvent::Failed {
                queue: self.index,
                error,
            });
        }
    }
}

/// Why rings could not be attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachError {
    /// The queue already has rings.
    NotIdle,
    /// A ring memory is not one page (netif rings are one page each).
    RingSize,
    /// Initialising a ring failed.
    Ring(RingError),
    /// Granting a ring page failed.
    Grant(GrantError),
}
