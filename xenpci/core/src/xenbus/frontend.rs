//! The frontend side of the xenbus state handshake, shared by the block, network and SCSI
//! frontends.
//!
//! [`Handshake`] is a pure state machine: fed the backend's `state` ([`Backend`]), it returns a
//! [`Plan`], a short list of [`Action`]s, and changes nothing until each action is reported done
//! with [`Handshake::apply`]. [`execute`] runs a plan against the store (blocking) and a
//! [`FrontendDriver`], the trait the class cores implement. Every frontend state change is an
//! [`Action::SetState`] (or the state written with [`Action::Publish`]'s transaction), so the
//! frontend's `state` node always says where the machine is.
//!
//! # Transitions
//! `F` is the frontend's state, `B` the backend's; "held" means ring references and event
//! channels are published and not yet released.
//!
//! | B \ F | Initialising | Initialised | Connected | Reconfiguring | Closing | Closed |
//! |---|---|---|---|---|---|---|
//! | Unknown, Initialising | — | error (backwards) | error (backwards) | error (backwards) | — | — |
//! | InitWait | Publish | reconnect | reconnect | reconnect | release, →Closed | →Initialising, Publish if enabled |
//! | Initialised | error | error | error | error | — | — |
//! | Connected | error, →Closing (reset a stale backend) | BackendConnected, →Connected | BackendConnected once | — | — | — |
//! | Closing, Closed, gone | quiesce, release, →Closed | same | same | same | release, →Closed | (Closed + resetting: →Initialising) |
//! | Reconfiguring | — | — | Reconfigure, →Reconfiguring | — | — | — |
//! | Reconfigured | — | — | — | Reconfigure(done), →Connected | — | — |
//! | garbage | error, no change | … | | | | |
//!
//! "reconnect" (the backend is back in InitWait, as after a migration) is quiesce, release,
//! →Initialising, Publish. Quiesce and release are only planned while resources are held.
//! Publish writes the state the driver returns (Initialised for blk/SCSI, Connected for net);
//! anything else is refused. A stale backend found Connected while the frontend is still
//! Initialising is reset: the frontend goes Closing, then Closed when the backend closes, then
//! Initialising again. After [`close`](Handshake::close) (or a failed publish) the frontend
//! stays Closed.

use core::fmt;

use xen_abi::xenbus::{ParseXenbusStateError, XenbusState};

use crate::xenstore::{TxId, Wait, XsConnection, XsError};

use super::device::PathBuf;
use super::text::format_fixed;

/// What was observed of the backend's `state` node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A valid state.
    State(XenbusState),
    /// The node holds no xenbus state.
    Garbage(ParseXenbusStateError),
    /// The node (or the backend directory) is gone: surprise removal; handled as Closed.
    Gone,
}

impl Backend {
    /// Classifies the result of reading the backend's `state` node.
    pub fn from_read(result: Result<&[u8], XsError>) -> Result<Backend, XsError> {
        match result {
            Ok(text) => Ok(match XenbusState::parse(text) {
                Ok(s) => Backend::State(s),
                Err(e) => Backend::Garbage(e),
            }),
            Err(e) if e.is_enoent() => Ok(Backend::Gone),
            Err(e) => Err(e),
        }
    }
}

/// One step of a [`Plan`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Write this state to the frontend's `state` node.
    SetState(XenbusState),
    /// Publish ring references, event channels and features, and the state the driver chooses,
    /// in one transaction ([`FrontendDriver::on_backend_init_wait`]).
    Publish,
    /// Read the backend's features ([`FrontendDriver::on_backend_connected`]).
    BackendConnected,
    /// Stop issuing requests and wait for those in flight ([`FrontendDriver::on_backend_closing`]).
    Quiesce,
    /// Release rings, grants and event channels ([`FrontendDriver::on_backend_closed`]).
    Release,
    /// The backend is reconfiguring (pvSCSI LUN hotplug); `done` once it finished.
    Reconfigure {
        /// Whether this is the end of the reconfiguration.
        done: bool,
    },
}

/// A protocol violation by the backend, reported with the plan that handles it safely.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeError {
    /// The backend's `state` is not a state; nothing changes.
    BadBackendState(ParseXenbusStateError),
    /// The backend is in a state that makes no sense for the frontend's.
    Unexpected {
        /// The frontend's state.
        frontend: XenbusState,
        /// The backend's state.
        backend: XenbusState,
    },
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadBackendState(e) => write!(f, "backend state: {e}"),
            Self::Unexpected { frontend, backend } => write!(
                f,
                "backend state {backend:?} unexpected in frontend state {frontend:?}"
            ),
        }
    }
}

/// The most actions in one plan.
pub const MAX_ACTIONS: usize = 4;

/// What to do about one backend state: a few actions, in order, and possibly an error to
/// report (the actions are then the safe way out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    actions: [Action; MAX_ACTIONS],
    len: usize,
    /// The violation this plan answers, if any.
    pub error: Option<HandshakeError>,
}

impl Plan {
    const fn empty() -> Plan {
        Plan {
            actions: [Action::Release; MAX_ACTIONS],
            len: 0,
            error: None,
        }
    }

    fn push(&mut self, action: Action) {
        // Plans are built below with at most MAX_ACTIONS steps.
        if let Some(slot) = self.actions.get_mut(self.len) {
            *slot = action;
            self.len += 1;
        }
    }

    fn with_error(mut self, error: HandshakeError) -> Plan {
        self.error = Some(error);
        self
    }

    /// The actions, in order.
    pub fn actions(&self) -> &[Action] {
        &self.actions[..self.len]
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// An action done, reported to [`Handshake::apply`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Done {
    /// The state was written.
    SetState(XenbusState),
    /// Resources were published with this state.
    Published(XenbusState),
    /// The backend's features were read.
    BackendConnected,
    /// I/O is quiesced.
    Quiesced,
    /// Resources were released.
    Released,
    /// A reconfiguration step was handled.
    Reconfigured,
}

/// Counters of backend misbehaviour.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HandshakeStats {
    /// Backend states that were not states.
    pub bad_states: u64,
    /// Backend states unexpected for the frontend's.
    pub unexpected: u64,
    /// Reconnections after the backend returned to InitWait.
    pub reconnects: u64,
    /// Times the backend vanished.
    pub surprise_removals: u64,
}

/// The frontend's half of the handshake; the transition table is in the `xenbus::frontend` module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handshake {
    state: XenbusState,
    held: bool,
    backend_connected: bool,
    enabled: bool,
    resetting: bool,
    stats: HandshakeStats,
}

impl Default for Handshake {
    fn default() -> Self {
        Self::new()
    }
}

impl Handshake {
    /// A frontend not started yet (state Unknown).
    pub const fn new() -> Self {
        Handshake {
            state: XenbusState::Unknown,
            held: false,
            backend_connected: false,
            enabled: true,
            resetting: false,
            stats: HandshakeStats {
                bad_states: 0,
                unexpected: 0,
                reconnects: 0,
                surprise_removals: 0,
            },
        }
    }

    /// The frontend's state (as last written).
    pub fn state(&self) -> XenbusState {
        self.state
    }

    /// Whether ring references and event channels are published and not released.
    pub fn holds_resources(&self) -> bool {
        self.held
    }

    /// Whether the backend's features were read since the last publish.
    pub fn backend_connected(&self) -> bool {
        self.backend_connected
    }

    /// Whether the frontend will (re)connect when the backend is ready.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The counters.
    pub fn stats(&self) -> HandshakeStats {
        self.stats
    }

    /// The plan to start: write Initialising. Then read the backend's state (its watch fires
    /// once when registered) and feed it to [`on_backend`](Self::on_backend).
    pub fn start(&mut self) -> Plan {
        self.enabled = true;
        let mut plan = Plan::empty();
        plan.push(Action::SetState(XenbusState::Initialising));
        plan
    }

    /// The plan for the frontend to close on its own (device removal): quiesce, then Closing;
    /// it becomes Closed when the backend follows, and stays Closed.
    pub fn close(&mut self) -> Plan {
        self.enabled = false;
        let mut plan = Plan::empty();
        match self.state {
            XenbusState::Closing | XenbusState::Closed => {}
            _ => {
                if self.held {
                    plan.push(Action::Quiesce);
                }
                plan.push(Action::SetState(XenbusState::Closing));
            }
        }
        plan
    }

    /// The plan after the domain resumed in a new domain (the old rings, grants and channels
    /// are void): release, then Initialising; the backend's InitWait then reconnects.
    pub fn resume(&mut self) -> Plan {
        self.resetting = false;
        let mut plan = Plan::empty();
        if self.held {
            plan.push(Action::Release);
        }
        if self.enabled {
            plan.push(Action::SetState(XenbusState::Initialising));
        }
        plan
    }

    /// The plan for an observed backend state (see the module's table).
    pub fn on_backend(&mut self, backend: Backend) -> Plan {
        use XenbusState as S;
        let f = self.state;
        let mut plan = Plan::empty();
        let b = match backend {
            Backend::State(b) => b,
            Backend::Gone => {
                if !matches!(f, S::Closed | S::Unknown) {
                    self.stats.surprise_removals += 1;
                }
                S::Closed
            }
            Backend::Garbage(e) => {
                self.stats.bad_states += 1;
                return plan.with_error(HandshakeError::BadBackendState(e));
            }
        };
        let unexpected = HandshakeError::Unexpected {
            frontend: f,
            backend: b,
        };
        let active = matches!(
            f,
            S::Initialising | S::Initialised | S::Connected | S::Reconfiguring
        );
        match b {
            S::Unknown | S::Initialising => {
                if matches!(f, S::Initialised | S::Connected | S::Reconfiguring) {
                    self.stats.unexpected += 1;
                    return plan.with_error(unexpected);
                }
            }
            S::InitWait => match f {
                S::Initialising => plan.push(Action::Publish),
                S::Initialised | S::Connected | S::Reconfiguring => {
                    self.stats.reconnects += 1;
                    if self.held {
                        plan.push(Action::Quiesce);
                        plan.push(Action::Release);
                    }
                    plan.push(Action::SetState(S::Initialising));
                    plan.push(Action::Publish);
                }
                S::Closing => {
                    if self.held {
                        plan.push(Action::Release);
                    }
                    plan.push(Action::SetState(S::Closed));
                }
                S::Closed if self.enabled => {
                    self.resetting = false;
                    plan.push(Action::SetState(S::Initialising));
                    plan.push(Action::Publish);
                }
                _ => {}
            },
            S::Initialised => {
                if active {
                    self.stats.unexpected += 1;
                    return plan.with_error(unexpected);
                }
            }
            S::Connected => match f {
                S::Initialising => {
                    // A backend left connected by an earlier frontend: reset it.
                    self.stats.unexpected += 1;
                    self.resetting = true;
                    plan.push(Action::SetState(S::Closing));
                    return plan.with_error(unexpected);
                }
                S::Initialised => {
                    plan.push(Action::BackendConnected);
                    plan.push(Action::SetState(S::Connected));
                }
                S::Connected if !self.backend_connected => plan.push(Action::BackendConnected),
                _ => {}
            },
            S::Closing | S::Closed => match f {
                _ if active => {
                    if self.held {
                        plan.push(Action::Quiesce);
                        plan.push(Action::Release);
                    }
                    plan.push(Action::SetState(S::Closed));
                }
                S::Closing => {
                    if self.held {
                        plan.push(Action::Release);
                    }
                    plan.push(Action::SetState(S::Closed));
                }
                S::Closed if b == S::Closed && self.resetting && self.enabled => {
                    self.resetting = false;
                    plan.push(Action::SetState(S::Initialising));
                }
                _ => {}
            },
            S::Reconfiguring => {
                if f == S::Connected {
                    plan.push(Action::Reconfigure { done: false });
                    plan.push(Action::SetState(S::Reconfiguring));
                }
            }
            S::Reconfigured => {
                if f == S::Reconfiguring {
                    plan.push(Action::Reconfigure { done: true });
                    plan.push(Action::SetState(S::Connected));
                }
            }
        }
        plan
    }

    /// Records an action as done.
    pub fn apply(&mut self, done: Done) {
        match done {
            Done::SetState(s) => self.state = s,
            Done::Published(s) => {
                self.state = s;
                self.held = true;
                self.backend_connected = false;
            }
            Done::BackendConnected => self.backend_connected = true,
            Done::Quiesced | Done::Reconfigured => {}
            Done::Released => {
                self.held = false;
                self.backend_connected = false;
            }
        }
    }

    /// Records that publishing failed: nothing is held, and the frontend will not reconnect on
    /// its own (it reports Closing; see [`execute`]).
    pub fn publish_failed(&mut self) {
        self.held = false;
        self.enabled = false;
    }
}

/// Access to the store for a [`FrontendDriver`]: nodes of the frontend directory (inside the
/// publishing transaction when there is one) and of the backend directory.
pub trait FrontendStore {
    /// Writes `<frontend>/<node>`.
    fn write(&mut self, node: &str, value: &[u8]) -> Result<(), XsError>;
    /// Reads `<frontend>/<node>` into `buf`.
    fn read(&mut self, node: &str, buf: &mut [u8]) -> Result<usize, XsError>;
    /// Reads `<backend>/<node>` into `buf`.
    fn read_backend(&mut self, node: &str, buf: &mut [u8]) -> Result<usize, XsError>;
    /// Removes `<frontend>/<node>` (missing is fine).
    fn remove(&mut self, node: &str) -> Result<(), XsError>;

    /// Writes `value` in decimal.
    fn write_u32(&mut self, node: &str, value: u32) -> Result<(), XsError> {
        let mut digits = [0; 10];
        let text = crate::xenstore::wire::format_u32(value, &mut digits);
        self.write(node, text)
    }
}

/// What a class core (block, net, SCSI) does at each step of the handshake.
pub trait FrontendDriver {
    /// The driver's own error.
    type Error: Copy + fmt::Debug;

    /// The backend waits for us: set up rings and event channels (once; this may run again if
    /// the transaction must be redone, and must then write the same values), write their
    /// references and the frontend's features through `store`, and say which state to switch
    /// to: [`XenbusState::Initialised`] (blk, SCSI) or [`XenbusState::Connected`] (net).
    fn on_backend_init_wait(
        &mut self,
        store: &mut dyn FrontendStore,
    ) -> Result<XenbusState, Self::Error>;

    /// The backend is connected: read its features and start I/O.
    fn on_backend_connected(&mut self, store: &mut dyn FrontendStore) -> Result<(), Self::Error>;

    /// Stop issuing requests and wait for those in flight.
    fn on_backend_closing(&mut self) -> Result<(), Self::Error>;

    /// Release rings, grants and event channels. Cannot fail: whatever cannot be revoked now is
    /// the driver's to retry later.
    fn on_backend_closed(&mut self);

    /// pvSCSI reconfiguration: LUNs are about to change (`done` false) or changed (`done`
    /// true). The default does nothing.
    fn on_reconfigure(
        &mut self,
        store: &mut dyn FrontendStore,
        done: bool,
    ) -> Result<(), Self::Error> {
        let _ = (store, done);
        Ok(())
    }
}

/// Why executing a plan stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrontendError<E> {
    /// The store failed during `action`.
    Store {
        /// The action.
        action: Action,
        /// The failure.
        error: XsError,
    },
    /// The driver failed during `action`.
    Driver {
        /// The action.
        action: Action,
        /// The failure.
        error: E,
    },
    /// The driver asked to switch to a state other than Initialised or Connected.
    BadTargetState(XenbusState),
}

/// How many times a publishing transaction is redone when the store answers `EAGAIN`.
pub const PUBLISH_ATTEMPTS: u32 = 8;

/// A frontend's two directories.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrontendPaths {
    /// `device/<class>/<id>`.
    pub frontend: PathBuf,
    /// The backend's directory.
    pub backend: PathBuf,
}

impl FrontendPaths {
    fn node(dir: &PathBuf, node: &str) -> Result<PathBuf, XsError> {
        format_fixed(format_args!("{dir}/{node}")).map_err(|_| {
            XsError::Limit(crate::xenstore::LimitError::PathTooLong {
                len: dir.len() + 1 + node.len(),
                max: super::device::MAX_CHILD_PATH,
            })
        })
    }

    /// `<frontend>/<node>`.
    pub fn frontend_node(&self, node: &str) -> Result<PathBuf, XsError> {
        Self::node(&self.frontend, node)
    }

    /// `<backend>/<node>`.
    pub fn backend_node(&self, node: &str) -> Result<PathBuf, XsError> {
        Self::node(&self.backend, node)
    }
}

/// [`FrontendStore`] over a connection, inside transaction `tx` (or none).
struct TxStore<'a, T: ?Sized, const R: usize, const W: usize, const E: usize> {
    xs: &'a mut XsConnection<R, W, E>,
    t: &'a mut T,
    tx: TxId,
    paths: &'a FrontendPaths,
}

impl<T: Wait + ?Sized, const R: usize, const W: usize, const E: usize> FrontendStore
    for TxStore<'_, T, R, W, E>
{
    fn write(&mut self, node: &str, value: &[u8]) -> Result<(), XsError> {
        let path = self.paths.frontend_node(node)?;
        self.xs.write(self.t, self.tx, path, value)
    }

    fn read(&mut self, node: &str, buf: &mut [u8]) -> Result<usize, XsError> {
        let path = self.paths.frontend_node(node)?;
        self.xs.read(self.t, self.tx, path, buf)
    }

    fn read_backend(&mut self, node: &str, buf: &mut [u8]) -> Result<usize, XsError> {
        let path = self.paths.backend_node(node)?;
        self.xs.read(self.t, self.tx, path, buf)
    }

    fn remove(&mut self, node: &str) -> Result<(), XsError> {
        let path = self.paths.frontend_node(node)?;
        match self.xs.rm(self.t, self.tx, path) {
            Err(e) if e.is_enoent() => Ok(()),
            other => other,
        }
    }
}

/// Reads the backend's `state` (blocking).
pub fn read_backend_state<T: Wait + ?Sized, const R: usize, const W: usize, const E: usize>(
    xs: &mut XsConnection<R, W, E>,
    t: &mut T,
    paths: &FrontendPaths,
) -> Result<Backend, XsError> {
    let mut buf = [0; 16];
    let path = paths.backend_node("state")?;
    match xs.read(t, TxId::NONE, path, &mut buf) {
        Ok(n) => Backend::from_read(Ok(&buf[..n])),
        // More than 16 bytes is no state either.
        Err(XsError::Limit(crate::xenstore::LimitError::BufferTooSmall { .. })) => Ok(
            Backend::Garbage(ParseXenbusStateError::UnknownState(u32::MAX)),
        ),
        Err(e) => Backend::from_read(Err(e)),
    }
}

/// Runs `plan` (blocking): each action against the store or the driver, recording it in `hs`
/// as it completes. Stops at the first failure, which names the action.
///
/// A failed publish is handled as Linux's `xenbus_dev_fatal` does: the driver releases what it
/// set up, the frontend writes Closing, and it does not reconnect on its own.
pub fn execute<T, D, const R: usize, const W: usize, const E: usize>(
    hs: &mut Handshake,
    plan: &Plan,
    xs: &mut XsConnection<R, W, E>,
    t: &mut T,
    paths: &FrontendPaths,
    driver: &mut D,
) -> Result<(), FrontendError<D::Error>>
where
    T: Wait + ?Sized,
    D: FrontendDriver + ?Sized,
{
    for &action in plan.actions() {
        let store_err = |error| FrontendError::Store { action, error };
        let driver_err = |error| FrontendError::Driver { action, error };
        match action {
            Action::SetState(s) => {
                let path = paths.frontend_node("state").map_err(store_err)?;
                xs.write(t, TxId::NONE, path, s.as_str().as_bytes())
                    .map_err(store_err)?;
                hs.apply(Done::SetState(s));
            }
            Action::Publish => match publish(xs, t, paths, driver) {
                Ok(s) => hs.apply(Done::Published(s)),
                Err(e) => {
                    driver.on_backend_closed();
                    hs.publish_failed();
                    if let Ok(path) = paths.frontend_node("state") {
                        let closing = XenbusState::Closing;
                        if xs
                            .write(t, TxId::NONE, path, closing.as_str().as_bytes())
                            .is_ok()
                        {
                            hs.apply(Done::SetState(closing));
                        }
                    }
                    return Err(e);
                }
            },
            Action::BackendConnected => {
                let mut store = TxStore {
                    xs: &mut *xs,
                    t: &mut *t,
                    tx: TxId::NONE,
                    paths,
                };
                driver
                    .on_backend_connected(&mut store)
                    .map_err(driver_err)?;
                hs.apply(Done::BackendConnected);
            }
            Action::Quiesce => {
                driver.on_backend_closing().map_err(driver_err)?;
                hs.apply(Done::Quiesced);
            }
            Action::Release => {
                driver.on_backend_closed();
                hs.apply(Done::Released);
            }
            Action::Reconfigure { done } => {
                let mut store = TxStore {
                    xs: &mut *xs,
                    t: &mut *t,
                    tx: TxId::NONE,
                    paths,
                };
                driver
                    .on_reconfigure(&mut store, done)
                    .map_err(driver_err)?;
                hs.apply(Done::Reconfigured);
            }
        }
    }
    Ok(())
}

/// The publishing transaction: the driver's nodes and the state it chooses, committed together,
/// redone on `EAGAIN`.
fn publish<T, D, const R: usize, const W: usize, const E: usize>(
    xs: &mut XsConnection<R, W, E>,
    t: &mut T,
    paths: &FrontendPaths,
    driver: &mut D,
) -> Result<XenbusState, FrontendError<D::Error>>
where
    T: Wait + ?Sized,
    D: FrontendDriver + ?Sized,
{
    let action = Action::Publish;
    let store_err = |error| FrontendError::Store { action, error };
    let state_path = paths.frontend_node("state").map_err(store_err)?;
    let mut last = XsError::Store(xen_abi::xenstore::XsErrno::Eagain);
    for _ in 0..PUBLISH_ATTEMPTS {
        let tx = xs.transaction_start(t).map_err(store_err)?;
        let mut store = TxStore {
            xs: &mut *xs,
            t: &mut *t,
            tx,
            paths,
        };
        let body = match driver.on_backend_init_wait(&mut store) {
            Ok(s @ (XenbusState::Initialised | XenbusState::Connected)) => store
                .xs
                .write(store.t, tx, state_path, s.as_str().as_bytes())
                .map(|()| s)
                .map_err(store_err),
            Ok(other) => Err(FrontendError::BadTargetState(other)),
            Err(error) => Err(FrontendError::Driver { action, error }),
        };
        match body {
            Ok(s) => match xs.transaction_end(t, tx, true) {
                Ok(()) => return Ok(s),
                Err(e) if e.is_eagain() => last = e,
                Err(e) => return Err(store_err(e)),
            },
            Err(FrontendError::Store { error, .. }) if error.is_eagain() => {
                let _ = xs.transaction_end(t, tx, false);
                last = error;
            }
            Err(e) => {
                let _ = xs.transaction_end(t, tx, false);
                return Err(e);
            }
        }
    }
    Err(store_err(last))
}
