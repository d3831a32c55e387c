//! [`XsMux`]: one store connection shared by many concurrent callers.
//!
//! The connection state machine ([`XsConnection`]) wants one owner. A kernel has many: every
//! child's handshake, the hotplug worker, the control worker, each at PASSIVE_LEVEL on any CPU.
//! The multiplexer puts the connection, the transport, a fixed table of request slots and one
//! bounded event queue per watch behind the shell's lock ([`MuxLock`]), and blocks callers
//! through the shell's wait primitive ([`MuxWait`]) with the lock released:
//!
//! - a caller takes a free request slot, submits its request and flushes it (one short hold of
//!   the lock), then waits on its slot;
//! - whoever holds the lock moves the connection forward ([`POLL_ROUNDS`] bounded polls): each
//!   reply is copied into the slot its request id names and that slot's waiter is woken; each
//!   watch event is copied into its registration's queue and that registration's waiter is
//!   woken. Nobody's reply or event is consumed by someone else's poll;
//! - every wait has a deadline taken once, when the operation starts, from [`MuxWait::now`],
//!   and checked after every bounded hold of the lock, so a steady stream of events cannot keep
//!   a caller from timing out;
//! - a caller that times out leaves its slot `Abandoned`: the slot, and with it the request id,
//!   stays reserved until the late reply arrives and is dropped, so it can never be taken for an
//!   answer to a newer request;
//! - a transaction is a sequence of independent round trips (start, the body's requests, end),
//!   redone on `EAGAIN`; nothing holds the lock between them.
//!
//! Nothing here allocates or uses `unsafe`: the shell places the [`MuxCore`] (about 100 KiB with
//! the default parameters) in memory it owns, either as a `static` through the `const`
//! constructors or in place with [`MuxCore::clear`] on a zeroed, already valid value.

use core::marker::PhantomData;

use xen_abi::types::DomId;
use xen_abi::xenstore::{XsErrno, XsMsgType, XENSTORE_PAYLOAD_MAX};

use super::events::EventQueue;
use super::perms::{Perm, PermList};
use super::wire::NulList;
use super::{
    LimitError, ProtocolError, Reply, ReqId, Transport, TransportError, TxId, WatchId,
    XsConnection, XsError, POLL_BYTE_BUDGET,
};

/// The most polls one hold of the lock makes. Each poll reads at most [`POLL_BYTE_BUDGET`]
/// bytes and returns at the first reply, so a hold moves at most this many replies.
pub const POLL_ROUNDS: usize = 8;

/// Bytes of the connection's own event queue inside the multiplexer: one poll's budget, so the
/// events one poll can meet always fit (an event's record is shorter than its message), and
/// every poll is followed by moving them to their registrations.
const CONN_EVENT_BYTES: usize = POLL_BYTE_BUDGET;

/// The shell's lock around the multiplexer's state: a guarded or fast mutex at PASSIVE_LEVEL in
/// the Windows driver, a `std::sync::Mutex` on a host.
///
/// `with` runs `f` with exclusive access and returns its result. The multiplexer never calls
/// [`MuxWait::wait`] inside `f`, and holds the lock for bounded work only.
pub trait MuxLock<S> {
    /// Runs `f` with the state locked.
    fn with<R>(&self, f: impl FnOnce(&mut S) -> R) -> R;
}

/// The shell's clock and wait primitive.
///
/// Waits are keyed: [`MuxCore::slot_key`] for a request slot (one waiter at a time),
/// [`MuxCore::watch_key`] for a watch registration (one consumer at a time),
/// [`MuxCore::free_key`] for callers waiting for a free slot, and [`MuxCore::control_key`] for
/// watch re-registration. A wake is sticky: a `wake(key)` that comes before the `wait(key, …)`
/// it is meant for makes that wait return at once (a synchronisation event per key in Windows).
/// Spurious returns are allowed; the multiplexer re-checks its state after every return.
pub trait MuxWait {
    /// The current time in the shell's ticks (any monotonic unit; deadlines are
    /// `now() + timeout`).
    fn now(&self) -> u64;
    /// Blocks until `key` is woken, the store's event channel fires (see
    /// [`XsMux::store_event`]), or `now() >= deadline`.
    fn wait(&self, key: usize, deadline: u64);
    /// Wakes the waiter of `key` (or the next one to wait on it).
    fn wake(&self, key: usize);
    /// Wakes every key: the store's event channel fired, so whoever waits should look at the
    /// connection.
    fn wake_all(&self);
}

/// The counters of a multiplexer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MuxStats {
    /// Replies copied to the slot that waited for them.
    pub replies_routed: u64,
    /// Replies that came after their caller gave up; the slot was freed then.
    pub late_replies: u64,
    /// Operations that ran out of time.
    pub timeouts: u64,
    /// Watch events moved to their registration's queue.
    pub events_routed: u64,
    /// Watch events that did not fit their registration's queue (its overflow flag was raised).
    pub events_overflowed: u64,
    /// Transaction attempts redone after `EAGAIN`.
    pub transaction_retries: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotState {
    Free,
    /// Submitted; the caller waits.
    Waiting,
    /// The reply (or the connection's failure) is in the slot.
    Done,
    /// The caller gave up; the slot is freed by the late reply (or a reset).
    Abandoned,
}

struct Slot {
    state: SlotState,
    req: ReqId,
    request: XsMsgType,
    tx_id: TxId,
    /// The payload's length in `buf`, or why the request failed.
    result: Result<usize, XsError>,
    buf: [u8; XENSTORE_PAYLOAD_MAX],
}

const FREE_SLOT: Slot = Slot {
    state: SlotState::Free,
    req: ReqId(0),
    request: XsMsgType::Control,
    tx_id: TxId::NONE,
    result: Ok(0),
    buf: [0; XENSTORE_PAYLOAD_MAX],
};

/// What a watch registration has to report (see [`XsMux::next_watch_event`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchNews<'b> {
    /// The watch fired for this path (copied into the caller's buffer).
    Fired(&'b [u8]),
    /// Events of this watch were lost (its queue was full, the connection was reset or broke):
    /// treat the watch as fired for everything under it and read the state again. Events
    /// queued before are discarded with this news, since the re-read covers them.
    Overflow,
}

/// The state the shell's lock protects: the connection, the transport, the request slots and
/// one event queue per watch registration.
///
/// Parameters: `SLOTS` concurrent requests (and the connection's pending table), `REGS` watch
/// registrations, `REG_BYTES` bytes of queued events per registration.
pub struct MuxCore<T, const SLOTS: usize = 16, const REGS: usize = 32, const REG_BYTES: usize = 512>
{
    conn: XsConnection<SLOTS, REGS, CONN_EVENT_BYTES>,
    transport: Option<T>,
    slots: [Slot; SLOTS],
    queues: [EventQueue<REG_BYTES>; REGS],
    scratch: [u8; XENSTORE_PAYLOAD_MAX],
    stats: MuxStats,
}

impl<T, const SLOTS: usize, const REGS: usize, const REG_BYTES: usize>
    MuxCore<T, SLOTS, REGS, REG_BYTES>
{
    const EMPTY_QUEUE: EventQueue<REG_BYTES> = EventQueue::new();

    /// A core with no transport and nothing outstanding; `const`, so that it can initialise a
    /// `static` without passing through the stack.
    // No `Default`: it would return the core by value, through the stack.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        MuxCore {
            conn: XsConnection::new(),
            transport: None,
            slots: [FREE_SLOT; SLOTS],
            queues: [Self::EMPTY_QUEUE; REGS],
            scratch: [0; XENSTORE_PAYLOAD_MAX],
            stats: MuxStats {
                replies_routed: 0,
                late_replies: 0,
                timeouts: 0,
                events_routed: 0,
                events_overflowed: 0,
                transaction_retries: 0,
            },
        }
    }

    /// Brings a core already in place back to the state of [`new`](Self::new), field by field
    /// (nothing large passes through the stack): every watch is forgotten, the transport
    /// dropped.
    pub fn clear(&mut self) {
        self.conn.clear();
        self.transport = None;
        for s in &mut self.slots {
            s.state = SlotState::Free;
            s.req = ReqId(0);
            s.result = Ok(0);
        }
        for q in &mut self.queues {
            q.clear();
            q.take_overflow();
        }
        self.stats = MuxStats::default();
    }

    /// The key of request slot `slot`.
    pub const fn slot_key(slot: usize) -> usize {
        slot
    }

    /// The key of the registration of the watch in table slot `slot`.
    pub const fn watch_key(slot: usize) -> usize {
        SLOTS + slot
    }

    /// The key callers wait on for a free request slot.
    pub const fn free_key() -> usize {
        SLOTS + REGS
    }

    /// The key of watch re-registration.
    pub const fn control_key() -> usize {
        SLOTS + REGS + 1
    }

    /// How many keys the shell's [`MuxWait`] must serve.
    pub const fn key_count() -> usize {
        SLOTS + REGS + 2
    }

    /// The connection (for its statistics and watch table).
    pub fn connection(&self) -> &XsConnection<SLOTS, REGS, CONN_EVENT_BYTES> {
        &self.conn
    }

    /// The transport, if attached.
    pub fn transport_mut(&mut self) -> Option<&mut T> {
        self.transport.as_mut()
    }

    /// The counters.
    pub fn stats(&self) -> MuxStats {
        self.stats
    }

    /// Requests submitted whose slot is still taken (waiting, answered but not yet taken, or
    /// abandoned with the reply still due).
    pub fn slots_in_use(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.state != SlotState::Free)
            .count()
    }

    /// Slots whose caller gave up and whose reply has not come yet.
    pub fn slots_abandoned(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.state == SlotState::Abandoned)
            .count()
    }

    /// Every waiting request fails with `e`; abandoned slots are freed (their replies can no
    /// longer come). Wakes every waiter.
    fn fail_all(&mut self, e: XsError, w: &impl MuxWait) {
        for s in &mut self.slots {
            match s.state {
                SlotState::Waiting => {
                    s.state = SlotState::Done;
                    s.result = Err(e);
                }
                SlotState::Abandoned => s.state = SlotState::Free,
                SlotState::Free | SlotState::Done => {}
            }
        }
        w.wake_all();
    }

    /// Moves the connection's queued watch events to their registrations, and its overflow
    /// flag to every registration.
    fn route_events(&mut self, w: &impl MuxWait) {
        if self.conn.take_watch_overflow() {
            for (slot, q) in self.queues.iter_mut().enumerate() {
                q.clear();
                q.mark_overflow();
                w.wake(Self::watch_key(slot));
            }
        }
        // Each event fits the scratch buffer: paths are at most a payload.
        while let Ok(Some(event)) = self.conn.pop_watch_event(&mut self.scratch) {
            let slot = event.watch.slot();
            let Some(q) = self.queues.get_mut(slot) else {
                continue;
            };
            if q.push(event.watch.slot16(), event.watch.generation(), event.path) {
                self.stats.events_routed += 1;
            } else {
                self.stats.events_overflowed += 1;
            }
            w.wake(Self::watch_key(slot));
        }
    }
}

impl<T: Transport, const SLOTS: usize, const REGS: usize, const REG_BYTES: usize>
    MuxCore<T, SLOTS, REGS, REG_BYTES>
{
    /// Sends what is queued and makes at most [`POLL_ROUNDS`] polls, routing every reply and
    /// event met. An error is the connection's or the transport's: a broken connection fails
    /// every waiting request.
    fn progress(&mut self, w: &impl MuxWait) -> Result<(), XsError> {
        let Some(t) = self.transport.as_mut() else {
            return Err(TransportError::Closed.into());
        };
        if let Err(e) = self.conn.flush(t) {
            return Err(self.after_failure(e, w));
        }
        for _ in 0..POLL_ROUNDS {
            let Some(t) = self.transport.as_mut() else {
                break;
            };
            match self.conn.poll(t) {
                Ok(Some(reply)) => {
                    // `reply` borrows the connection, the slots are a separate field.
                    route_reply(
                        &mut self.slots,
                        &mut self.stats,
                        &reply,
                        w,
                        Self::free_key(),
                    );
                    self.route_events(w);
                }
                Ok(None) => {
                    self.route_events(w);
                    if !self.conn.poll_again() {
                        break;
                    }
                }
                Err(e) => {
                    self.route_events(w);
                    return Err(self.after_failure(e, w));
                }
            }
        }
        // What was read may have made room (a transport that carries one request at a time,
        // a ring the daemon drained): send what is still queued now, not at the next call.
        if self.conn.has_unsent() {
            if let Some(t) = self.transport.as_mut() {
                if let Err(e) = self.conn.flush(t) {
                    return Err(self.after_failure(e, w));
                }
            }
        }
        Ok(())
    }

    fn after_failure(&mut self, e: XsError, w: &impl MuxWait) -> XsError {
        if self.conn.broken().is_some() {
            self.fail_all(e, w);
            self.route_events(w);
        }
        e
    }
}

/// Copies a reply to the slot its request id names and wakes that slot's waiter, or frees the
/// slot of a caller that gave up (and wakes callers waiting for a free slot).
fn route_reply<const SLOTS: usize>(
    slots: &mut [Slot; SLOTS],
    stats: &mut MuxStats,
    reply: &Reply<'_>,
    w: &impl MuxWait,
    free_key: usize,
) {
    let Some(i) = slots.iter().position(|s| {
        matches!(s.state, SlotState::Waiting | SlotState::Abandoned) && s.req == reply.req_id
    }) else {
        return;
    };
    let slot = &mut slots[i];
    if slot.state == SlotState::Abandoned {
        slot.state = SlotState::Free;
        stats.late_replies += 1;
        w.wake(free_key);
        return;
    }
    slot.request = reply.request;
    slot.tx_id = reply.tx_id;
    slot.result = match reply.result {
        // The parser never assembles more than XENSTORE_PAYLOAD_MAX bytes of payload.
        Ok(payload) => match slot.buf.get_mut(..payload.len()) {
            Some(dst) => {
                dst.copy_from_slice(payload);
                Ok(payload.len())
            }
            None => Err(ProtocolError::MalformedPayload.into()),
        },
        Err(e) => Err(e),
    };
    slot.state = SlotState::Done;
    stats.replies_routed += 1;
    w.wake(i);
}

impl<T, const SLOTS: usize, const REGS: usize, const REG_BYTES: usize> core::fmt::Debug
    for MuxCore<T, SLOTS, REGS, REG_BYTES>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MuxCore")
            .field("conn", &self.conn)
            .field("attached", &self.transport.is_some())
            .field("slots_in_use", &self.slots_in_use())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// What one locked look at a request slot found.
enum Look<O> {
    Finished(Result<O, XsError>),
    Pending,
}

/// One store connection shared by many concurrent callers.
///
/// The connection state machine ([`XsConnection`]) wants one owner. A kernel has many: every
/// child's handshake, the hotplug worker, the control worker, each at PASSIVE_LEVEL on any CPU.
/// The multiplexer puts the connection, the transport, a fixed table of request slots and one
/// bounded event queue per watch behind the shell's lock ([`MuxLock`]), and blocks callers
/// through the shell's wait primitive ([`MuxWait`]) with the lock released:
///
/// - a caller takes a free request slot, submits its request and flushes it (one short hold of
///   the lock), then waits on its slot;
/// - whoever holds the lock moves the connection forward ([`POLL_ROUNDS`] bounded polls): each
///   reply is copied into the slot its request id names and that slot's waiter is woken; each
///   watch event is copied into its registration's queue and that registration's waiter is
///   woken. Nobody's reply or event is consumed by someone else's poll;
/// - every wait has a deadline taken once, when the operation starts, from [`MuxWait::now`],
///   and checked after every bounded hold of the lock, so a steady stream of events cannot keep
///   a caller from timing out;
/// - a caller that times out leaves its slot `Abandoned`: the slot, and with it the request id,
///   stays reserved until the late reply arrives and is dropped, so it can never be taken for an
///   answer to a newer request;
/// - a transaction is a sequence of independent round trips (start, the body's requests, end),
///   redone on `EAGAIN`; nothing holds the lock between them.
///
/// Nothing here allocates or uses `unsafe`: the shell places the [`MuxCore`] (about 100 KiB with
/// the default parameters) in memory it owns, either as a `static` through the `const`
/// constructors or in place with [`MuxCore::clear`] on a zeroed, already valid value.
///
/// # Concurrency contract
/// Every method takes `&self` and may run concurrently with every other, from any number of
/// threads at PASSIVE_LEVEL (the shell's [`MuxLock`] and [`MuxWait`] decide what PASSIVE_LEVEL
/// allows: a guarded mutex and per-key events in Windows). [`store_event`](Self::store_event)
/// takes no lock and may be called at any IRQL the shell's [`MuxWait::wake_all`] allows (the
/// store's event-channel DPC). One thread at a time waits on a given watch registration.
///
/// Every blocking method is bounded by the multiplexer's timeout (in the shell's ticks), taken
/// from [`MuxWait::now`] once when the operation starts, whatever the rate of replies and
/// events: it then fails with [`TransportError::TimedOut`]. A transaction's bound is per round
/// trip.
pub struct XsMux<
    T,
    L,
    W,
    const SLOTS: usize = 16,
    const REGS: usize = 32,
    const REG_BYTES: usize = 512,
> {
    lock: L,
    waiter: W,
    timeout: u64,
    transport: PhantomData<fn() -> T>,
}

impl<T, L, W, const SLOTS: usize, const REGS: usize, const REG_BYTES: usize> core::fmt::Debug
    for XsMux<T, L, W, SLOTS, REGS, REG_BYTES>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("XsMux")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl<T, L, W, const SLOTS: usize, const REGS: usize, const REG_BYTES: usize>
    XsMux<T, L, W, SLOTS, REGS, REG_BYTES>
{
    /// A multiplexer over the core inside `lock`; every operation waits at most `timeout`
    /// ticks of `waiter`'s clock.
    pub const fn new(lock: L, waiter: W, timeout: u64) -> Self {
        XsMux {
            lock,
            waiter,
            timeout,
            transport: PhantomData,
        }
    }

    /// The wait primitive.
    pub fn waiter(&self) -> &W {
        &self.waiter
    }
}

type Core<T, const SLOTS: usize, const REGS: usize, const REG_BYTES: usize> =
    MuxCore<T, SLOTS, REGS, REG_BYTES>;

impl<T, L, W, const SLOTS: usize, const REGS: usize, const REG_BYTES: usize>
    XsMux<T, L, W, SLOTS, REGS, REG_BYTES>
where
    T: Transport,
    L: MuxLock<Core<T, SLOTS, REGS, REG_BYTES>>,
    W: MuxWait,
{
    /// Runs `f` on the locked core (to attach or resynchronise the transport, read the
    /// counters, …). `f` must not block.
    pub fn with_core<R>(&self, f: impl FnOnce(&mut Core<T, SLOTS, REGS, REG_BYTES>) -> R) -> R {
        self.lock.with(f)
    }

    /// Attaches the transport (at bring-up), replacing any previous one.
    pub fn attach(&self, transport: T) {
        self.lock.with(|core| core.transport = Some(transport));
    }

    /// The counters.
    pub fn stats(&self) -> MuxStats {
        self.lock.with(|core| core.stats)
    }

    /// The store's event channel fired: wakes every waiter so that one of them reads the
    /// connection. Takes no lock.
    pub fn store_event(&self) {
        self.waiter.wake_all();
    }

    fn deadline(&self) -> u64 {
        self.waiter.now().saturating_add(self.timeout)
    }

    fn timed_out(core: &mut Core<T, SLOTS, REGS, REG_BYTES>) -> XsError {
        core.stats.timeouts += 1;
        TransportError::TimedOut.into()
    }

    /// Takes a free slot and submits the request in it; waits (bounded) for a free slot or
    /// room in the send queue.
    fn submit(
        &self,
        deadline: u64,
        mut submit: impl FnMut(
            &mut XsConnection<SLOTS, REGS, CONN_EVENT_BYTES>,
        ) -> Result<ReqId, XsError>,
    ) -> Result<usize, XsError> {
        loop {
            let taken = self.lock.with(|core| {
                if core.conn.broken().is_some() {
                    return Err(ProtocolError::Broken.into());
                }
                let mut free = core.slots.iter().position(|s| s.state == SlotState::Free);
                if free.is_none() {
                    // Late replies free abandoned slots: route what has come.
                    core.progress(&self.waiter)?;
                    free = core.slots.iter().position(|s| s.state == SlotState::Free);
                }
                let Some(i) = free else {
                    return if self.waiter.now() >= deadline {
                        Err(Self::timed_out(core))
                    } else {
                        Ok(None)
                    };
                };
                match submit(&mut core.conn) {
                    Ok(req) => {
                        let slot = &mut core.slots[i];
                        slot.state = SlotState::Waiting;
                        slot.req = req;
                        slot.result = Ok(0);
                        // Pass the free-slot wake on while slots remain (wakes are sticky and
                        // coalesce, so one wake may stand for several freed slots).
                        if core.slots.iter().any(|s| s.state == SlotState::Free) {
                            self.waiter
                                .wake(Core::<T, SLOTS, REGS, REG_BYTES>::free_key());
                        }
                        if let Err(e) = core.progress(&self.waiter) {
                            core.slots[i].state = match core.slots[i].state {
                                // The reply may still come: keep the id reserved.
                                SlotState::Waiting => SlotState::Abandoned,
                                // Failed with the connection, or answered already: nobody
                                // will take it.
                                SlotState::Done | SlotState::Free => SlotState::Free,
                                SlotState::Abandoned => SlotState::Abandoned,
                            };
                            return Err(e);
                        }
                        Ok(Some(i))
                    }
                    // The connection's own table (re-registrations) or send queue is full:
                    // move it forward and try again after the next event.
                    Err(XsError::Limit(
                        LimitError::TooManyRequests | LimitError::SendQueueFull,
                    )) => {
                        core.progress(&self.waiter)?;
                        if self.waiter.now() >= deadline {
                            Err(Self::timed_out(core))
                        } else {
                            Ok(None)
                        }
                    }
                    Err(e) => Err(e),
                }
            })?;
            match taken {
                Some(i) => return Ok(i),
                None => self
                    .waiter
                    .wait(Core::<T, SLOTS, REGS, REG_BYTES>::free_key(), deadline),
            }
        }
    }

    /// Waits (bounded) for the reply in slot `i` and decodes it with `decode`, under the lock.
    fn finish<O>(
        &self,
        i: usize,
        deadline: u64,
        decode: impl FnOnce(Reply<'_>) -> Result<O, XsError>,
    ) -> Result<O, XsError> {
        let mut decode = Some(decode);
        loop {
            let look = self.lock.with(|core| {
                let progress = if core.slots[i].state == SlotState::Done {
                    Ok(())
                } else {
                    core.progress(&self.waiter)
                };
                let slot = &mut core.slots[i];
                if slot.state == SlotState::Done {
                    slot.state = SlotState::Free;
                    let reply = Reply {
                        req_id: slot.req,
                        request: slot.request,
                        tx_id: slot.tx_id,
                        result: match slot.result {
                            Ok(n) => Ok(&slot.buf[..n]),
                            Err(e) => Err(e),
                        },
                    };
                    let out = match decode.take() {
                        Some(d) => d(reply),
                        None => Err(LimitError::Busy.into()),
                    };
                    self.waiter
                        .wake(Core::<T, SLOTS, REGS, REG_BYTES>::free_key());
                    return Look::Finished(out);
                }
                let give_up = match progress {
                    Err(e) => Some(e),
                    Ok(()) if self.waiter.now() >= deadline => Some(Self::timed_out(core)),
                    Ok(()) => None,
                };
                match give_up {
                    Some(e) => {
                        let slot = &mut core.slots[i];
                        if slot.state == SlotState::Waiting {
                            // Reserved until the late reply comes: its id stays taken.
                            slot.state = SlotState::Abandoned;
                        }
                        Look::Finished(Err(e))
                    }
                    None => Look::Pending,
                }
            });
            match look {
                Look::Finished(out) => return out,
                Look::Pending => self
                    .waiter
                    .wait(Core::<T, SLOTS, REGS, REG_BYTES>::slot_key(i), deadline),
            }
        }
    }

    /// One round trip: submits with `submit`, waits for the reply and decodes it with
    /// `decode`; bounded by the multiplexer's timeout.
    pub fn call<O>(
        &self,
        submit: impl FnMut(&mut XsConnection<SLOTS, REGS, CONN_EVENT_BYTES>) -> Result<ReqId, XsError>,
        decode: impl FnOnce(Reply<'_>) -> Result<O, XsError>,
    ) -> Result<O, XsError> {
        let deadline = self.deadline();
        let i = self.submit(deadline, submit)?;
        self.finish(i, deadline, decode)
    }

    /// Reads the value of `path` into `buf`; returns its length.
    pub fn read(&self, tx: TxId, path: impl AsRef<[u8]>, buf: &mut [u8]) -> Result<usize, XsError> {
        let path = path.as_ref();
        self.call(|c| c.submit_read(tx, path), |r| r.value_into(buf))
    }

    /// Writes `value` to `path`.
    pub fn write(&self, tx: TxId, path: impl AsRef<[u8]>, value: &[u8]) -> Result<(), XsError> {
        let path = path.as_ref();
        self.call(|c| c.submit_write(tx, path, value), |r| r.ack())
    }

    /// Creates `path` with an empty value (succeeds if it exists).
    pub fn mkdir(&self, tx: TxId, path: impl AsRef<[u8]>) -> Result<(), XsError> {
        let path = path.as_ref();
        self.call(|c| c.submit_mkdir(tx, path), |r| r.ack())
    }

    /// Removes `path` and everything under it.
    pub fn rm(&self, tx: TxId, path: impl AsRef<[u8]>) -> Result<(), XsError> {
        let path = path.as_ref();
        self.call(|c| c.submit_rm(tx, path), |r| r.ack())
    }

    /// Lists the children of `path` into `buf`.
    pub fn directory<'b>(
        &self,
        tx: TxId,
        path: impl AsRef<[u8]>,
        buf: &'b mut [u8],
    ) -> Result<NulList<'b>, XsError> {
        let path = path.as_ref();
        let n = self.call(
            |c| c.submit_directory(tx, path),
            |r| {
                r.directory()?;
                r.value_into(buf)
            },
        )?;
        Ok(NulList::new(&buf[..n])?)
    }

    /// Reads the permissions of `path` into `buf`.
    pub fn get_perms<'b>(
        &self,
        tx: TxId,
        path: impl AsRef<[u8]>,
        buf: &'b mut [u8],
    ) -> Result<PermList<'b>, XsError> {
        let path = path.as_ref();
        let n = self.call(
            |c| c.submit_get_perms(tx, path),
            |r| {
                r.perms()?;
                r.value_into(buf)
            },
        )?;
        Ok(PermList::parse(&buf[..n])?)
    }

    /// Sets the permissions of `path`; `perms[0]` is the owner.
    pub fn set_perms(
        &self,
        tx: TxId,
        path: impl AsRef<[u8]>,
        perms: &[Perm],
    ) -> Result<(), XsError> {
        let path = path.as_ref();
        self.call(|c| c.submit_set_perms(tx, path, perms), |r| r.ack())
    }

    /// The home path of `domid`, copied into `buf`.
    pub fn get_domain_path<'b>(
        &self,
        domid: DomId,
        buf: &'b mut [u8],
    ) -> Result<&'b [u8], XsError> {
        let n = self.call(
            |c| c.submit_get_domain_path(domid),
            |r| {
                let path = r.string()?;
                let dst = buf
                    .get_mut(..path.len())
                    .ok_or(LimitError::BufferTooSmall { needed: path.len() })?;
                dst.copy_from_slice(path);
                Ok(path.len())
            },
        )?;
        Ok(&buf[..n])
    }

    /// Starts a transaction.
    pub fn transaction_start(&self) -> Result<TxId, XsError> {
        self.call(|c| c.submit_transaction_start(), |r| r.transaction())
    }

    /// Commits (`commit`) or aborts a transaction; `EAGAIN` means it must be redone.
    pub fn transaction_end(&self, tx: TxId, commit: bool) -> Result<(), XsError> {
        self.call(|c| c.submit_transaction_end(tx, commit), |r| r.ack())
    }

    /// Runs `body` in a transaction, redoing it while the store answers `EAGAIN`, at most
    /// `max_attempts` times (at least once); as
    /// [`XsConnection::transaction`], but every request is its own round trip, so other callers
    /// use the connection between them.
    pub fn transaction<O>(
        &self,
        max_attempts: u32,
        mut body: impl FnMut(&Self, TxId) -> Result<O, XsError>,
    ) -> Result<O, XsError> {
        let mut last = XsError::Store(XsErrno::Eagain);
        for attempt in 0..max_attempts.max(1) {
            if attempt > 0 {
                self.lock.with(|core| core.stats.transaction_retries += 1);
            }
            let tx = self.transaction_start()?;
            match body(self, tx) {
                Ok(value) => match self.transaction_end(tx, true) {
                    Ok(()) => return Ok(value),
                    Err(e) if e.is_eagain() => last = e,
                    Err(e) => return Err(e),
                },
                Err(e) => {
                    let _ = self.transaction_end(tx, false);
                    if !e.is_eagain() {
                        return Err(e);
                    }
                    last = e;
                }
            }
        }
        Err(last)
    }

    /// Registers a watch on `path` and waits for the daemon to accept it. Its events go to its
    /// own queue, read with [`next_watch_event`](Self::next_watch_event); the daemon fires it
    /// once at registration.
    pub fn watch(&self, path: impl AsRef<[u8]>) -> Result<WatchId, XsError> {
        let path = path.as_ref();
        let mut watch = None;
        let result = self.call(
            |c| {
                let (id, req) = c.submit_watch(path)?;
                watch = Some(id);
                Ok(req)
            },
            |r| r.ack(),
        );
        match (result, watch) {
            (Ok(()), Some(id)) => Ok(id),
            (Ok(()), None) => Err(LimitError::UnknownWatch.into()),
            (Err(e), Some(id)) if e == XsError::Transport(TransportError::TimedOut) => {
                // Nobody will know this watch if the daemon accepts it late: take it back
                // (best effort; its reply is dropped like a late one).
                self.lock.with(|core| {
                    let _ = core.conn.submit_unwatch(id);
                    let _ = core.progress(&self.waiter);
                });
                Err(e)
            }
            (Err(e), _) => Err(e),
        }
    }

    /// Removes a watch; its queued events are dropped.
    pub fn unwatch(&self, watch: WatchId) -> Result<(), XsError> {
        let result = self.call(|c| c.submit_unwatch(watch), |r| r.ack());
        self.lock.with(|core| {
            if let Some(q) = core.queues.get_mut(watch.slot()) {
                q.clear();
                q.take_overflow();
            }
        });
        result
    }

    /// Takes the next news of `watch` into `buf`: a path it fired for, or
    /// [`WatchNews::Overflow`]. Waits (bounded) while there is none; `Ok(None)` when the
    /// timeout passed with nothing to report. A path longer than `buf` stays queued and fails
    /// with [`LimitError::BufferTooSmall`].
    pub fn next_watch_event<'b>(
        &self,
        watch: WatchId,
        buf: &'b mut [u8],
    ) -> Result<Option<WatchNews<'b>>, XsError> {
        self.watch_news(watch, buf, self.deadline())
    }

    /// As [`next_watch_event`](Self::next_watch_event) without waiting: moves the connection
    /// forward once and reports what is queued.
    pub fn try_watch_event<'b>(
        &self,
        watch: WatchId,
        buf: &'b mut [u8],
    ) -> Result<Option<WatchNews<'b>>, XsError> {
        self.watch_news(watch, buf, 0)
    }

    fn watch_news<'b>(
        &self,
        watch: WatchId,
        buf: &'b mut [u8],
        deadline: u64,
    ) -> Result<Option<WatchNews<'b>>, XsError> {
        if watch.slot() >= REGS {
            return Err(LimitError::UnknownWatch.into());
        }
        loop {
            let got = self.lock.with(|core| {
                if core.conn.watch_state(watch).is_none() {
                    return Err(XsError::Limit(LimitError::UnknownWatch));
                }
                let progress = core.progress(&self.waiter);
                let q = &mut core.queues[watch.slot()];
                if q.take_overflow() {
                    q.clear();
                    return Ok(Some(None));
                }
                while let Some((_, generation, len)) = q.peek() {
                    if generation != watch.generation() {
                        // Left by an earlier watch in this slot.
                        q.discard();
                        continue;
                    }
                    if len > buf.len() {
                        return Err(LimitError::BufferTooSmall { needed: len }.into());
                    }
                    q.pop_into(buf);
                    return Ok(Some(Some(len)));
                }
                progress?;
                Ok(None)
            })?;
            match got {
                Some(None) => return Ok(Some(WatchNews::Overflow)),
                Some(Some(len)) => return Ok(Some(WatchNews::Fired(&buf[..len]))),
                None if self.waiter.now() >= deadline => return Ok(None),
                None => self.waiter.wait(
                    Core::<T, SLOTS, REGS, REG_BYTES>::watch_key(watch.slot()),
                    deadline,
                ),
            }
        }
    }

    /// Starts over on a new or resynchronised transport (after a resume, or to recover from a
    /// broken connection): see [`XsConnection::reset`]. Waiting requests fail with
    /// [`TransportError::Reconnecting`], abandoned slots are freed, and every registration
    /// reports [`WatchNews::Overflow`] next.
    pub fn reset(&self) {
        self.lock.with(|core| {
            core.conn.reset();
            core.fail_all(TransportError::Reconnecting.into(), &self.waiter);
            core.route_events(&self.waiter);
        });
    }

    /// Registers again every watch that needs it (after [`reset`](Self::reset)) and waits
    /// (bounded) until the daemon answered them all. Returns the first refusal, if any.
    pub fn reregister_watches(&self) -> Result<(), XsError> {
        let deadline = self.deadline();
        let failures_before = self.lock.with(|core| {
            core.conn.take_last_rewatch_error();
            core.conn.stats().rewatch_failures
        });
        loop {
            let done = self.lock.with(|core| {
                if !core.conn.rewatches_in_flight() && core.conn.rewatches_needed() {
                    core.conn.submit_rewatches()?;
                }
                core.progress(&self.waiter)?;
                if core.conn.rewatches_in_flight() || core.conn.rewatches_needed() {
                    if core.conn.stats().rewatch_failures != failures_before
                        && !core.conn.rewatches_in_flight()
                    {
                        return Err(core
                            .conn
                            .take_last_rewatch_error()
                            .unwrap_or(XsError::Store(XsErrno::Eio)));
                    }
                    if self.waiter.now() >= deadline {
                        return Err(Self::timed_out(core));
                    }
                    return Ok(false);
                }
                if core.conn.stats().rewatch_failures != failures_before {
                    return Err(core
                        .conn
                        .take_last_rewatch_error()
                        .unwrap_or(XsError::Store(XsErrno::Eio)));
                }
                Ok(true)
            })?;
            if done {
                return Ok(());
            }
            self.waiter
                .wait(Core::<T, SLOTS, REGS, REG_BYTES>::control_key(), deadline);
        }
    }
}
