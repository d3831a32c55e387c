//! [`Netfront`]: the device — negotiated parameters, MAC, MTU, link state — over its queues.
//!
//! # Life cycle, driven by the xenbus handshake (xenpci-core's `xenbus::frontend`)
//! 1. At the backend's `InitWait` ([`FrontendDriver::on_backend_init_wait`] in the shell):
//!    [`BackendFeatures::read_from`] → [`Netfront::negotiate`] (queues, split event channels,
//!    transmit offloads; refuses a backend without `feature-rx-copy`) →
//!    [`Netfront::attach`] with one transmit and one receive ring page per queue →
//!    [`FrontendParams::publish`] with [`Netfront::ring_refs`] and the shell's event channels;
//!    the state to switch to is `Connected` (a network frontend connects without waiting for
//!    the backend).
//! 2. At the backend's `Connected`: [`Netfront::connected`] posts the receive buffers;
//!    [`Netfront::set_backend_state`] follows the link.
//! 3. I/O on each queue: [`NetQueue::submit`], [`NetQueue::poll`] from the queue's event
//!    handlers, [`NetQueue::return_buffers`].
//! 4. At the backend's `Closing`/`Closed` or removal: [`Netfront::disconnect`].
//!
//! [`FrontendDriver::on_backend_init_wait`]: xenpci_core::xenbus::FrontendDriver::on_backend_init_wait

use xen_abi::types::{DomId, GrantRef};
use xen_abi::xenbus::XenbusState;
use xen_ring::RingMemory;

use crate::negotiate::{BackendFeatures, FeatureError, FrontendConfig, FrontendParams};
use crate::platform::{Events, Grants, GuestMemory, Io};
use crate::queue::{AttachError, NetQueue};
use crate::types::{LinkState, MacAddress, QueueCounters, TxCompletion};

/// Fixed settings of a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetConfig {
    /// The backend's domain, to which grants are given.
    pub backend: DomId,
    /// Bad responses a queue tolerates (each dropped and counted) before it fails.
    pub max_violations: u32,
    /// Remove 802.1Q tags from received frames and report them in
    /// [`RxPacket::vlan`](crate::RxPacket::vlan) (NDIS's priority/VLAN tagging offload).
    pub strip_vlan: bool,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            backend: 0,
            max_violations: 16,
            strip_vlan: true,
        }
    }
}

/// The pages of one queue's two rings: each a one-page [`RingMemory`] and its guest frame.
#[derive(Debug)]
pub struct RingPages {
    /// The transmit ring.
    pub tx: (RingMemory, u64),
    /// The receive ring.
    pub rx: (RingMemory, u64),
}

/// The device: `Q` queues of [`NetQueue<PENDING, POOL, RXB>`].
#[derive(Debug)]
pub struct Netfront<const Q: usize, const PENDING: usize, const POOL: usize, const RXB: usize> {
    config: NetConfig,
    params: Option<FrontendParams>,
    link: LinkState,
    queues: [NetQueue<PENDING, POOL, RXB>; Q],
}

impl<const Q: usize, const PENDING: usize, const POOL: usize, const RXB: usize>
    Netfront<Q, PENDING, POOL, RXB>
{
    /// A device with no pages yet, as a constant, to be placed in the shell's device memory
    /// without building it on the stack, then [`init`](Self::init)ialised there.
    pub const EMPTY: Self = Netfront {
        config: NetConfig {
            backend: 0,
            max_violations: 16,
            strip_vlan: true,
        },
        params: None,
        link: LinkState::Down,
        queues: [NetQueue::EMPTY; Q],
    };

    /// A device with each queue's copy pages and receive buffers (guest frames preallocated by
    /// the platform). Returns the whole state by value; see [`EMPTY`](Self::EMPTY) and
    /// [`init`](Self::init) to build it in place.
    pub fn new(
        config: NetConfig,
        pool_frames: &[[u64; POOL]; Q],
        rx_frames: &[[u64; RXB]; Q],
    ) -> Self {
        let mut dev = Self::EMPTY;
        dev.init(config, pool_frames, rx_frames);
        dev
    }

    /// (Re)initialises the device where it is (every queue with [`NetQueue::init`]).
    pub fn init(
        &mut self,
        config: NetConfig,
        pool_frames: &[[u64; POOL]; Q],
        rx_frames: &[[u64; RXB]; Q],
    ) {
        self.config = config;
        self.params = None;
        self.link = LinkState::Down;
        for (q, queue) in self.queues.iter_mut().enumerate() {
            queue.init(q as u16, config.backend, &pool_frames[q], &rx_frames[q]);
            queue.strip_vlan = config.strip_vlan;
            queue.max_violations = config.max_violations;
        }
    }

    /// The negotiated parameters, once negotiated.
    pub fn params(&self) -> Option<FrontendParams> {
        self.params
    }

    /// The MAC address the toolstack assigned, once negotiated.
    pub fn mac(&self) -> Option<MacAddress> {
        self.params.map(|p| p.mac)
    }

    /// The MTU, once negotiated.
    pub fn mtu(&self) -> Option<u32> {
        self.params.map(|p| p.mtu)
    }

    /// The link state.
    pub fn link(&self) -> LinkState {
        self.link
    }

    /// Follows the backend's xenbus state; returns the link state it means.
    pub fn set_backend_state(&mut self, state: XenbusState) -> LinkState {
        self.link = LinkState::from_backend(state);
        self.link
    }

    /// Settles the parameters (at most `Q` queues).
    pub fn negotiate(
        &mut self,
        config: &FrontendConfig,
        backend: &BackendFeatures,
    ) -> Result<FrontendParams, FeatureError> {
        let mut config = *config;
        config.max_queues = config.max_queues.min(Q as u32);
        let params = FrontendParams::negotiate(&config, backend)?;
        self.params = Some(params);
        Ok(params)
    }

    /// Grants and initialises the rings of every negotiated queue (`rings[q]` for queue `q`).
    /// On failure the queues attached so far are detached again.
    pub fn attach<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        rings: impl IntoIterator<Item = RingPages>,
        io: &mut Io<'_, G, N, M>,
    ) -> Result<(), AttachError> {
        let params = self.params.ok_or(AttachError::NotIdle)?;
        let n = params.queues as usize;
        let mut attached = 0;
        let mut result = Ok(());
        for (q, pages) in rings.into_iter().take(n).enumerate() {
            if let Err(e) = self.queues[q].attach(params, pages.tx, pages.rx, io) {
                result = Err(e);
                break;
            }
            attached += 1;
        }
        if result.is_ok() && attached < n {
            result = Err(AttachError::RingSize);
        }
        if result.is_err() {
            for q in &mut self.queues[..attached] {
                q.disconnect(io, |_| {});
            }
        }
        result
    }

    /// The `(tx-ring-ref, rx-ring-ref)` of each attached queue, into `out`; returns how many.
    pub fn ring_refs(&self, out: &mut [(GrantRef, GrantRef)]) -> usize {
        let mut n = 0;
        for (o, q) in out.iter_mut().zip(self.active()) {
            match q.ring_refs() {
                Some(r) => {
                    *o = r;
                    n += 1;
                }
                None => break,
            }
        }
        n
    }

    /// The backend connected: every queue posts its receive buffers.
    pub fn connected<G: Grants, N: Events, M: GuestMemory>(&mut self, io: &mut Io<'_, G, N, M>) {
        let n = self.queue_count();
        for q in &mut self.queues[..n] {
            q.connected(io);
        }
    }

    /// Every queue disconnects (see [`NetQueue::disconnect`]).
    pub fn disconnect<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        io: &mut Io<'_, G, N, M>,
        mut complete: impl FnMut(TxCompletion),
    ) {
        for q in &mut self.queues {
            q.disconnect(io, &mut complete);
        }
        self.link = LinkState::Down;
    }

    /// The queues in use (all `Q` before negotiation).
    pub fn queue_count(&self) -> usize {
        self.params.map_or(Q, |p| p.queues as usize).min(Q)
    }

    fn active(&self) -> &[NetQueue<PENDING, POOL, RXB>] {
        &self.queues[..self.queue_count()]
    }

    /// The queues in use, each independently borrowable (`split_at_mut`, `iter_mut`) so the
    /// shell can serve them from different processors.
    pub fn queues_mut(&mut self) -> &mut [NetQueue<PENDING, POOL, RXB>] {
        let n = self.queue_count();
        &mut self.queues[..n]
    }

    /// One queue.
    pub fn queue(&self, q: usize) -> Option<&NetQueue<PENDING, POOL, RXB>> {
        self.active().get(q)
    }

    /// One queue, mutably.
    pub fn queue_mut(&mut self, q: usize) -> Option<&mut NetQueue<PENDING, POOL, RXB>> {
        self.queues_mut().get_mut(q)
    }

    /// The counters of every queue added up.
    pub fn counters(&self) -> QueueCounters {
        let mut c = QueueCounters::default();
        for q in &self.queues {
            c.add(&q.counters());
        }
        c
    }

    /// The device's fixed settings.
    pub fn config(&self) -> NetConfig {
        self.config
    }
}
