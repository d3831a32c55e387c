//! The xenbus handshake: [`ScsiFrontend`] implements xenpci-core's
//! [`FrontendDriver`] over a [`Vscsi`] engine, so xenpci-core's
//! [`Handshake`](xenpci_core::xenbus::Handshake) state machine (and its `execute`) drive the
//! connection, reconnection and the Reconfiguring/Reconfigured rounds of LUN hotplug.
//!
//! | step | what the engine does |
//! |---|---|
//! | backend InitWait: publish | initialise and grant the ring; write `ring-ref`, `event-channel`; go Initialised |
//! | backend Connected | read `feature-sg-grant`/`feature-host`, set the limits, scan the LUNs ([`ScanOp::Connect`]) |
//! | backend Reconfiguring | drop LUNs in state Closing ([`ScanOp::Remove`]) |
//! | backend Reconfigured | add LUNs in state Initialised ([`ScanOp::Add`]) |
//! | backend Closing | quiesce |
//! | backend Closed / gone | disconnect: unanswered commands complete, grants revoked |

use xen_abi::types::EvtchnPort;
use xen_abi::xenbus::XenbusState;
use xen_ring::RingMemory;
use xenpci_core::xenbus::{FrontendDriver, FrontendStore};
use xenpci_core::xenstore::XsError;

use crate::engine::{AttachError, Finished, Vscsi};
use crate::luns::{DeviceList, LunEvent, ScanOp};
use crate::negotiate::{self, BackendFeatures, FeatureError};
use crate::platform::{Events, Grants, GuestMemory, Io};

/// Why a handshake step failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrontendFailure {
    /// The ring could not be set up.
    Attach(AttachError),
    /// No ring memory was supplied for the publish step.
    NoRing,
    /// The backend's features are unusable.
    Feature(FeatureError),
    /// A store access failed.
    Store(XsError),
}

/// One handshake step's view of the engine and the platform.
pub struct ScsiFrontend<'a, 'io, G, N, M, const SLOTS: usize, const S: usize, const L: usize> {
    /// The engine.
    pub engine: &'a mut Vscsi<SLOTS, S, L>,
    /// The platform.
    pub io: &'a mut Io<'io, G, N, M>,
    /// The ring page (memory and guest frame) to attach when publishing.
    pub ring: Option<(RingMemory, u64)>,
    /// The event channel published with the ring.
    pub port: EvtchnPort,
    /// The backend's `vscsi-devs` directory.
    pub devices: &'a mut dyn DeviceList,
    /// LUN changes.
    pub lun_events: &'a mut dyn FnMut(LunEvent),
    /// Requests finished by a disconnect.
    pub finished: &'a mut dyn FnMut(Finished),
}

impl<G, N, M, const SLOTS: usize, const S: usize, const L: usize> core::fmt::Debug
    for ScsiFrontend<'_, '_, G, N, M, SLOTS, S, L>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ScsiFrontend")
            .field("engine", &self.engine)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl<G: Grants, N: Events, M: GuestMemory, const SLOTS: usize, const S: usize, const L: usize>
    FrontendDriver for ScsiFrontend<'_, '_, G, N, M, SLOTS, S, L>
{
    type Error = FrontendFailure;

    fn on_backend_init_wait(
        &mut self,
        store: &mut dyn FrontendStore,
    ) -> Result<XenbusState, FrontendFailure> {
        let gref = match self.engine.ring_ref() {
            Some(g) => g,
            None => {
                let (mem, frame) = self.ring.clone().ok_or(FrontendFailure::NoRing)?;
                self.engine
                    .attach_ring(mem, frame, self.io)
                    .map_err(FrontendFailure::Attach)?
            }
        };
        negotiate::publish(store, gref, self.port).map_err(FrontendFailure::Store)?;
        Ok(XenbusState::Initialised)
    }

    fn on_backend_connected(
        &mut self,
        store: &mut dyn FrontendStore,
    ) -> Result<(), FrontendFailure> {
        let features = BackendFeatures::read_from(store).map_err(FrontendFailure::Feature)?;
        self.engine.connected(&features);
        self.engine
            .luns_mut()
            .scan(ScanOp::Connect, store, self.devices, self.lun_events)
            .map_err(FrontendFailure::Store)
    }

    fn on_backend_closing(&mut self) -> Result<(), FrontendFailure> {
        self.engine.quiesce();
        Ok(())
    }

    fn on_backend_closed(&mut self) {
        self.engine.disconnect(self.io, self.finished);
    }

    fn on_reconfigure(
        &mut self,
        store: &mut dyn FrontendStore,
        done: bool,
    ) -> Result<(), FrontendFailure> {
        let op = if done { ScanOp::Add } else { ScanOp::Remove };
        self.engine
            .luns_mut()
            .scan(op, store, self.devices, self.lun_events)
            .map_err(FrontendFailure::Store)
    }
}
