//! [`XsConnection`]: the non-blocking state machine of a xenstore client.

use xen_abi::types::DomId;
use xen_abi::xenstore::{XsErrno, XsMsgType};

use super::events::EventQueue;
use super::perms::{Perm, PermList};
use super::wire::{
    check_path, encode_request, format_u32, parse_ack, parse_error_reply, parse_u32,
    parse_watch_event, single_string, Arg, FrameHeader, NulList, ReplyParser, HEADER_SIZE,
    MAX_MESSAGE,
};
use super::{LimitError, ProtocolError, Transport, XsError};

/// The longest watched path a connection keeps (for re-registration after a resume). Paths the
/// drivers watch (`device/vbd/768/state`, `/local/domain/0/backend/vif/5/0/state`, `control/…`)
/// are far shorter.
pub const MAX_WATCH_PATH: usize = 256;

/// The most bytes one [`XsConnection::poll`] reads before returning, so that a peer producing
/// without end cannot keep a DPC running. [`XsConnection::poll_again`] then says so.
pub const POLL_BYTE_BUDGET: usize = 4 * MAX_MESSAGE;

/// The longest token this client generates (`w<slot>-<generation>`).
const TOKEN_MAX: usize = 12;

/// The id of a submitted request, echoed in its reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReqId(pub u32);

/// A transaction id; [`TxId::NONE`] for requests outside any transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct TxId(pub u32);

impl TxId {
    /// No transaction (`XBT_NIL`).
    #[doc(alias = "XBT_NIL")]
    pub const NONE: TxId = TxId(0);
}

/// A registered watch. Stale ids (of a removed watch whose slot was reused) are recognised and
/// refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WatchId {
    slot: u16,
    generation: u16,
}

impl WatchId {
    /// The index of the watch's slot in the connection's table (`0..WATCHES`).
    pub fn slot(&self) -> usize {
        usize::from(self.slot)
    }

    pub(crate) fn slot16(&self) -> u16 {
        self.slot
    }

    pub(crate) fn generation(&self) -> u16 {
        self.generation
    }
}

/// Where a watch stands with the daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchState {
    /// `XS_WATCH` sent, no reply yet.
    Registering,
    /// Registered.
    Active,
    /// Not registered with the current daemon connection (after [`XsConnection::reset`], or a
    /// failed re-registration); [`XsConnection::submit_rewatches`] registers it again.
    NeedsRewatch,
    /// Re-registration sent, no reply yet.
    Rewatching,
    /// `XS_UNWATCH` sent; events for it are dropped and the slot is freed by the reply.
    Unregistering,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    /// A request whose reply goes to the caller.
    Caller,
    /// The caller's `XS_WATCH` for a watch slot; the reply goes to the caller too.
    Watch(WatchId),
    /// The caller's `XS_UNWATCH`; the reply goes to the caller too.
    Unwatch(WatchId),
    /// A re-registration made by the connection itself; the reply is consumed internally.
    Rewatch(WatchId),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotState {
    Free,
    Waiting,
    /// Cancelled by the caller; the reply will be discarded, and the id stays reserved until then.
    Abandoned,
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    state: SlotState,
    req_id: u32,
    msg_type: XsMsgType,
    purpose: Purpose,
}

const FREE_PENDING: Pending = Pending {
    state: SlotState::Free,
    req_id: 0,
    msg_type: XsMsgType::Control,
    purpose: Purpose::Caller,
};

#[derive(Clone, Copy)]
struct WatchSlot {
    state: Option<WatchState>,
    generation: u16,
    path_len: u16,
    path: [u8; MAX_WATCH_PATH],
}

const FREE_WATCH: WatchSlot = WatchSlot {
    state: None,
    generation: 0,
    path_len: 0,
    path: [0; MAX_WATCH_PATH],
};

impl WatchSlot {
    fn path(&self) -> &[u8] {
        &self.path[..usize::from(self.path_len)]
    }
    fn release(&mut self) {
        self.state = None;
        self.generation = self.generation.wrapping_add(1);
    }
    /// Whether events for this slot are still wanted.
    fn wants_events(&self) -> bool {
        matches!(
            self.state,
            Some(
                WatchState::Registering
                    | WatchState::Active
                    | WatchState::NeedsRewatch
                    | WatchState::Rewatching
            )
        )
    }
}

/// Counters of what a connection saw; protocol violations that are survivable are counted here
/// rather than failing anything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XsStats {
    /// Replies matched to a request.
    pub replies: u64,
    /// Replies whose request id matched no outstanding request (dropped).
    pub stray_replies: u64,
    /// Replies to cancelled requests (dropped).
    pub abandoned_replies: u64,
    /// Watch events queued.
    pub watch_events: u64,
    /// Watch events whose token names no live watch (dropped).
    pub stray_watch_events: u64,
    /// Watch events with a malformed payload (dropped; the overflow flag is raised).
    pub malformed_watch_events: u64,
    /// Protocol violations of any kind, fatal or not.
    pub protocol_errors: u64,
    /// Watch re-registrations the daemon refused.
    pub rewatch_failures: u64,
}

/// A reply, as [`XsConnection::poll`] hands it over. Its payload borrows the connection: copy out
/// what is needed before polling again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply<'a> {
    /// The request this answers.
    pub req_id: ReqId,
    /// The request's type.
    pub request: XsMsgType,
    /// The transaction id in the reply's header.
    pub tx_id: TxId,
    /// The payload, or why the request failed: the daemon's error ([`XsError::Store`]) or a
    /// malformed reply ([`XsError::Protocol`]). Acknowledgements (`"OK"`) are already checked.
    pub result: Result<&'a [u8], XsError>,
}

impl<'a> Reply<'a> {
    /// The raw payload.
    pub fn payload(self) -> Result<&'a [u8], XsError> {
        self.result
    }

    /// For requests answered by `"OK"` (write, mkdir, rm, set-perms, watch, unwatch,
    /// transaction end).
    pub fn ack(self) -> Result<(), XsError> {
        self.result.map(|_| ())
    }

    /// For `XS_READ`: copies the value into `buf` and returns its length.
    pub fn value_into(self, buf: &mut [u8]) -> Result<usize, XsError> {
        let value = self.result?;
        let dst = buf
            .get_mut(..value.len())
            .ok_or(LimitError::BufferTooSmall {
                needed: value.len(),
            })?;
        dst.copy_from_slice(value);
        Ok(value.len())
    }

    /// For `XS_DIRECTORY`: the children's names.
    pub fn directory(self) -> Result<NulList<'a>, XsError> {
        Ok(NulList::new(self.result?)?)
    }

    /// For `XS_GET_PERMS`: the permission list.
    pub fn perms(self) -> Result<PermList<'a>, XsError> {
        Ok(PermList::parse(self.result?)?)
    }

    /// For `XS_TRANSACTION_START`: the new transaction's id.
    pub fn transaction(self) -> Result<TxId, XsError> {
        match parse_u32(single_string(self.result?)?) {
            Some(id) if id != 0 => Ok(TxId(id)),
            _ => Err(ProtocolError::MalformedPayload.into()),
        }
    }

    /// For replies holding one NUL-terminated string (`XS_GET_DOMAIN_PATH`): the string.
    pub fn string(self) -> Result<&'a [u8], XsError> {
        Ok(single_string(self.result?)?)
    }
}

/// A watch event taken from the queue; `path` is the node that changed (the watched path or
/// something under it), copied into the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchEvent<'b> {
    /// The watch that fired.
    pub watch: WatchId,
    /// The path that changed.
    pub path: &'b [u8],
}

/// What `dispatch` decided about a complete message, without borrowing it.
struct Delivered {
    req_id: u32,
    request: XsMsgType,
    tx_id: u32,
    result: Result<(), XsError>,
}

/// The non-blocking xenstore client state machine.
///
/// The caller owns it (it holds fixed buffers: one reply being assembled, one outgoing queue of
/// up to a maximum-size message, the watch table and the event queue) and drives it:
///
/// - **submit** requests (`submit_read`, `submit_write`, … or [`submit`](Self::submit)): each
///   takes one of `REQS` pending slots and gets a [`ReqId`]; the message is queued, not sent;
/// - **poll** ([`poll`](Self::poll)): sends what is queued, reads what the transport has, queues
///   watch events, and returns the next [`Reply`] (matched by request id, in whatever order the
///   daemon answers);
/// - **take watch events** ([`pop_watch_event`](Self::pop_watch_event)).
///
/// An asynchronous caller (the Windows DPC) submits and polls from its event-channel handler.
/// A synchronous caller uses the blocking helpers ([`read`](Self::read), [`write`](Self::write),
/// [`transaction`](Self::transaction), …), which submit, then poll and [`Wait`](super::Wait)
/// until their reply arrives.
///
/// # Watches
/// Up to `WATCHES` watches are registered, each with a token the connection generates, so events
/// map back to a [`WatchId`]. Their paths are kept, so that after a resume or a reconnection
/// ([`reset`](Self::reset)) [`submit_rewatches`](Self::submit_rewatches) (or the blocking
/// [`reregister_watches`](Self::reregister_watches)) registers them all again.
///
/// # Watch events and overflow
/// Events arrive unsolicited and are queued in a ring of `EVENT_BYTES` bytes. When one does not
/// fit it is dropped and the overflow flag is raised: after
/// [`take_watch_overflow`](Self::take_watch_overflow) returns true, the consumer must assume that
/// every watch fired and rescan the state it watches. A flood can therefore never exhaust memory
/// nor lose a change silently.
///
/// # Errors
/// A reply the daemon marks as an error, or that is malformed, fails only its own request. A
/// stray reply (unknown request id) or an unattributable watch event is counted in
/// [`stats`](Self::stats) and dropped. A message claiming more than `XENSTORE_PAYLOAD_MAX` bytes,
/// or a ring index out of range, breaks the connection: every pending request is forgotten and
/// everything fails with [`ProtocolError::Broken`] until [`reset`](Self::reset).
pub struct XsConnection<
    const REQS: usize = 16,
    const WATCHES: usize = 32,
    const EVENT_BYTES: usize = 8192,
> {
    parser: ReplyParser,
    tx: [u8; MAX_MESSAGE],
    tx_head: usize,
    tx_tail: usize,
    /// End of the message `tx_head` is in (so that one `write` never spans two messages).
    tx_msg_end: usize,
    pending: [Pending; REQS],
    next_req_id: u32,
    watches: [WatchSlot; WATCHES],
    events: EventQueue<EVENT_BYTES>,
    broken: Option<ProtocolError>,
    more: bool,
    last_rewatch_error: Option<XsError>,
    stats: XsStats,
}

impl<const REQS: usize, const WATCHES: usize, const EVENT_BYTES: usize> core::fmt::Debug
    for XsConnection<REQS, WATCHES, EVENT_BYTES>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("XsConnection")
            .field("outstanding", &self.outstanding())
            .field("queued_bytes", &(self.tx_tail - self.tx_head))
            .field("watch_events", &self.events.len())
            .field("broken", &self.broken)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<const REQS: usize, const WATCHES: usize, const EVENT_BYTES: usize> Default
    for XsConnection<REQS, WATCHES, EVENT_BYTES>
{
    fn default() -> Self {
        Self::new()
    }
}

fn watch_token(id: WatchId, buf: &mut [u8; TOKEN_MAX]) -> &[u8] {
    let mut digits = [0; 10];
    buf[0] = b'w';
    let mut at = 1;
    for (n, sep) in [(id.slot, b'-'), (id.generation, 0)] {
        let d = format_u32(u32::from(n), &mut digits);
        buf[at..at + d.len()].copy_from_slice(d);
        at += d.len();
        if sep != 0 {
            buf[at] = sep;
            at += 1;
        }
    }
    &buf[..at]
}

fn parse_token(token: &[u8]) -> Option<WatchId> {
    let rest = token.strip_prefix(b"w")?;
    let dash = rest.iter().position(|&b| b == b'-')?;
    let slot = u16::try_from(parse_u32(&rest[..dash])?).ok()?;
    let generation = u16::try_from(parse_u32(&rest[dash + 1..])?).ok()?;
    Some(WatchId { slot, generation })
}

/// Whether the daemon answers this request type with `"OK"`.
fn is_ack_type(t: XsMsgType) -> bool {
    matches!(
        t,
        XsMsgType::Write
            | XsMsgType::Mkdir
            | XsMsgType::Rm
            | XsMsgType::SetPerms
            | XsMsgType::Watch
            | XsMsgType::Unwatch
            | XsMsgType::TransactionEnd
            | XsMsgType::Introduce
            | XsMsgType::Release
            | XsMsgType::Resume
            | XsMsgType::SetTarget
            | XsMsgType::ResetWatches
    )
}

/// Judges a reply to a request of type `expected`.
fn judge(expected: XsMsgType, header: &FrameHeader, payload: &[u8]) -> Result<(), XsError> {
    match header.msg_type() {
        None => Err(ProtocolError::UnknownMessageType {
            raw: header.raw_type,
        }
        .into()),
        Some(XsMsgType::Error) => match parse_error_reply(payload) {
            Ok(errno) => Err(XsError::Store(errno)),
            Err(e) => Err(e.into()),
        },
        Some(got) if got != expected => {
            Err(ProtocolError::UnexpectedReplyType { expected, got }.into())
        }
        Some(t) if is_ack_type(t) => Ok(parse_ack(payload)?),
        Some(_) => Ok(()),
    }
}

impl<const REQS: usize, const WATCHES: usize, const EVENT_BYTES: usize>
    XsConnection<REQS, WATCHES, EVENT_BYTES>
{
    /// A connection with nothing outstanding.
    pub const fn new() -> Self {
        XsConnection {
            parser: ReplyParser::new(),
            tx: [0; MAX_MESSAGE],
            tx_head: 0,
            tx_tail: 0,
            tx_msg_end: 0,
            pending: [FREE_PENDING; REQS],
            next_req_id: 1,
            watches: [FREE_WATCH; WATCHES],
            events: EventQueue::new(),
            broken: None,
            more: false,
            last_rewatch_error: None,
            stats: XsStats {
                replies: 0,
                stray_replies: 0,
                abandoned_replies: 0,
                watch_events: 0,
                stray_watch_events: 0,
                malformed_watch_events: 0,
                protocol_errors: 0,
                rewatch_failures: 0,
            },
        }
    }

    /// Starts over on a new (or resynchronised) transport: forgets the partial reply, the unsent
    /// queue and every pending request (whose replies can no longer come), clears a broken state,
    /// and marks every watch as needing re-registration. Queued watch events are kept and the
    /// overflow flag is raised, since changes made while disconnected were not reported.
    ///
    /// Use after a resume from suspend (the daemon then knows nothing of this guest's watches),
    /// after reconnecting the ring, or to recover from [`ProtocolError::Broken`].
    pub fn reset(&mut self) {
        self.parser.reset();
        self.tx_head = 0;
        self.tx_tail = 0;
        self.tx_msg_end = 0;
        self.pending = [FREE_PENDING; REQS];
        self.broken = None;
        self.more = false;
        for w in &mut self.watches {
            match w.state {
                Some(WatchState::Unregistering) => w.release(),
                Some(_) => w.state = Some(WatchState::NeedsRewatch),
                None => {}
            }
        }
        self.events.mark_overflow();
    }

    /// Brings a connection already in place back to the state of [`new`](Self::new) without
    /// building one on the stack: nothing outstanding, no watch (ids handed out before are
    /// refused from now on), no queued event, zeroed counters.
    pub fn clear(&mut self) {
        self.parser.reset();
        self.tx_head = 0;
        self.tx_tail = 0;
        self.tx_msg_end = 0;
        self.pending = [FREE_PENDING; REQS];
        self.next_req_id = 1;
        for w in &mut self.watches {
            w.release();
        }
        self.events.clear();
        self.events.take_overflow();
        self.broken = None;
        self.more = false;
        self.last_rewatch_error = None;
        self.stats = XsStats::default();
    }

    /// The counters.
    pub fn stats(&self) -> XsStats {
        self.stats
    }

    /// The fatal violation that broke the connection, if any.
    pub fn broken(&self) -> Option<ProtocolError> {
        self.broken
    }

    /// Requests submitted and not yet answered (including cancelled ones whose reply is still
    /// expected, and internal re-registrations).
    pub fn outstanding(&self) -> usize {
        self.pending
            .iter()
            .filter(|p| p.state != SlotState::Free)
            .count()
    }

    /// Requests whose reply [`poll`](Self::poll) will hand to the caller.
    pub fn caller_outstanding(&self) -> usize {
        self.pending
            .iter()
            .filter(|p| p.state == SlotState::Waiting && !matches!(p.purpose, Purpose::Rewatch(_)))
            .count()
    }

    /// Whether queued bytes are still waiting to be sent (the transport had no room).
    pub fn has_unsent(&self) -> bool {
        self.tx_tail > self.tx_head
    }

    /// Whether the last [`poll`](Self::poll) stopped because of [`POLL_BYTE_BUDGET`] rather than
    /// because the transport ran dry: poll again without waiting for an event.
    pub fn poll_again(&self) -> bool {
        self.more
    }

    fn check_usable(&self) -> Result<(), XsError> {
        match self.broken {
            Some(_) => Err(ProtocolError::Broken.into()),
            None => Ok(()),
        }
    }

    fn break_connection(&mut self, e: ProtocolError) -> XsError {
        self.stats.protocol_errors += 1;
        self.broken = Some(e);
        self.pending = [FREE_PENDING; REQS];
        for w in &mut self.watches {
            if w.state == Some(WatchState::Rewatching) {
                w.state = Some(WatchState::NeedsRewatch);
            }
        }
        self.events.mark_overflow();
        e.into()
    }

    /// Queues a request of any type with the given payload pieces and returns its id. Paths are
    /// not checked here: the typed `submit_*` functions do that.
    pub fn submit(
        &mut self,
        msg_type: XsMsgType,
        tx: TxId,
        args: &[Arg<'_>],
    ) -> Result<ReqId, XsError> {
        self.enqueue(msg_type, tx, args, Purpose::Caller)
    }

    fn enqueue(
        &mut self,
        msg_type: XsMsgType,
        tx: TxId,
        args: &[Arg<'_>],
        purpose: Purpose,
    ) -> Result<ReqId, XsError> {
        self.check_usable()?;
        let slot = self
            .pending
            .iter()
            .position(|p| p.state == SlotState::Free)
            .ok_or(LimitError::TooManyRequests)?;
        let req_id = self.allocate_req_id();
        if self.tx_head > 0 {
            self.tx.copy_within(self.tx_head..self.tx_tail, 0);
            self.tx_tail -= self.tx_head;
            self.tx_msg_end = self.tx_msg_end.saturating_sub(self.tx_head);
            self.tx_head = 0;
        }
        let n = encode_request(&mut self.tx[self.tx_tail..], msg_type, req_id, tx.0, args)
            .map_err(|e| match e {
                XsError::Limit(LimitError::BufferTooSmall { .. }) => {
                    LimitError::SendQueueFull.into()
                }
                e => e,
            })?;
        self.tx_tail += n;
        self.pending[slot] = Pending {
            state: SlotState::Waiting,
            req_id,
            msg_type,
            purpose,
        };
        Ok(ReqId(req_id))
    }

    fn allocate_req_id(&mut self) -> u32 {
        // At most REQS ids are in use, so at most REQS + 1 candidates are tried.
        loop {
            let id = self.next_req_id;
            self.next_req_id = self.next_req_id.wrapping_add(1).max(1);
            if !self
                .pending
                .iter()
                .any(|p| p.state != SlotState::Free && p.req_id == id)
            {
                return id;
            }
        }
    }

    /// Gives up on a request: its reply, when it comes, is discarded. The request id stays
    /// reserved until then. Unknown ids are ignored.
    pub fn cancel(&mut self, id: ReqId) {
        if let Some(p) = self
            .pending
            .iter_mut()
            .find(|p| p.state == SlotState::Waiting && p.req_id == id.0)
        {
            p.state = SlotState::Abandoned;
        }
    }

    /// Queues `XS_READ` of `path`.
    pub fn submit_read(&mut self, tx: TxId, path: impl AsRef<[u8]>) -> Result<ReqId, XsError> {
        let path = path.as_ref();
        check_path(path)?;
        self.submit(XsMsgType::Read, tx, &[Arg::Str(path)])
    }

    /// Queues `XS_WRITE` of `value` (any bytes) to `path`.
    pub fn submit_write(
        &mut self,
        tx: TxId,
        path: impl AsRef<[u8]>,
        value: &[u8],
    ) -> Result<ReqId, XsError> {
        let path = path.as_ref();
        check_path(path)?;
        self.submit(XsMsgType::Write, tx, &[Arg::Str(path), Arg::Bytes(value)])
    }

    /// Queues `XS_MKDIR` of `path`.
    pub fn submit_mkdir(&mut self, tx: TxId, path: impl AsRef<[u8]>) -> Result<ReqId, XsError> {
        let path = path.as_ref();
        check_path(path)?;
        self.submit(XsMsgType::Mkdir, tx, &[Arg::Str(path)])
    }

    /// Queues `XS_RM` of `path` (and everything under it).
    pub fn submit_rm(&mut self, tx: TxId, path: impl AsRef<[u8]>) -> Result<ReqId, XsError> {
        let path = path.as_ref();
        check_path(path)?;
        self.submit(XsMsgType::Rm, tx, &[Arg::Str(path)])
    }

    /// Queues `XS_DIRECTORY` of `path`.
    pub fn submit_directory(&mut self, tx: TxId, path: impl AsRef<[u8]>) -> Result<ReqId, XsError> {
        let path = path.as_ref();
        check_path(path)?;
        self.submit(XsMsgType::Directory, tx, &[Arg::Str(path)])
    }

    /// Queues `XS_GET_PERMS` of `path`.
    pub fn submit_get_perms(&mut self, tx: TxId, path: impl AsRef<[u8]>) -> Result<ReqId, XsError> {
        let path = path.as_ref();
        check_path(path)?;
        self.submit(XsMsgType::GetPerms, tx, &[Arg::Str(path)])
    }

    /// Queues `XS_SET_PERMS` of `path`; `perms[0]` is the owner (and the access of unlisted
    /// domains). At least one entry is required.
    pub fn submit_set_perms(
        &mut self,
        tx: TxId,
        path: impl AsRef<[u8]>,
        perms: &[Perm],
    ) -> Result<ReqId, XsError> {
        let path = path.as_ref();
        check_path(path)?;
        if perms.is_empty() {
            return Err(LimitError::NoPermissions.into());
        }
        self.submit(
            XsMsgType::SetPerms,
            tx,
            &[Arg::Str(path), Arg::Perms(perms)],
        )
    }

    /// Queues `XS_TRANSACTION_START`.
    pub fn submit_transaction_start(&mut self) -> Result<ReqId, XsError> {
        self.submit(XsMsgType::TransactionStart, TxId::NONE, &[Arg::Str(b"")])
    }

    /// Queues `XS_TRANSACTION_END`: commit (`"T"`) or abort (`"F"`).
    pub fn submit_transaction_end(&mut self, tx: TxId, commit: bool) -> Result<ReqId, XsError> {
        let arg: &[u8] = if commit { b"T" } else { b"F" };
        self.submit(XsMsgType::TransactionEnd, tx, &[Arg::Str(arg)])
    }

    /// Queues `XS_GET_DOMAIN_PATH` for `domid`.
    pub fn submit_get_domain_path(&mut self, domid: DomId) -> Result<ReqId, XsError> {
        let mut digits = [0; 10];
        let text = format_u32(u32::from(domid), &mut digits);
        self.submit(XsMsgType::GetDomainPath, TxId::NONE, &[Arg::Str(text)])
    }

    /// Registers a watch on `path` (and everything under it): takes a watch slot and queues
    /// `XS_WATCH`. The reply (through [`poll`](Self::poll)) says whether the daemon accepted;
    /// if not, the slot is freed again. The daemon fires each new watch once right away.
    pub fn submit_watch(&mut self, path: impl AsRef<[u8]>) -> Result<(WatchId, ReqId), XsError> {
        let path = path.as_ref();
        check_path(path)?;
        if path.len() > MAX_WATCH_PATH {
            return Err(LimitError::WatchPathTooLong { len: path.len() }.into());
        }
        self.check_usable()?;
        let slot = self
            .watches
            .iter()
            .position(|w| w.state.is_none())
            .ok_or(LimitError::TooManyWatches)?;
        let w = &mut self.watches[slot];
        w.path[..path.len()].copy_from_slice(path);
        // MAX_WATCH_PATH fits in u16.
        w.path_len = path.len() as u16;
        // WATCHES beyond u16::MAX slots could not be named; such slots are never handed out.
        let Ok(slot16) = u16::try_from(slot) else {
            return Err(LimitError::TooManyWatches.into());
        };
        let id = WatchId {
            slot: slot16,
            generation: w.generation,
        };
        w.state = Some(WatchState::Registering);
        match self.enqueue_watch(XsMsgType::Watch, id, Purpose::Watch(id)) {
            Ok(req) => Ok((id, req)),
            Err(e) => {
                self.watches[slot].release();
                Err(e)
            }
        }
    }

    fn enqueue_watch(
        &mut self,
        t: XsMsgType,
        id: WatchId,
        purpose: Purpose,
    ) -> Result<ReqId, XsError> {
        let w = self.watches[id.slot()];
        let mut token = [0; TOKEN_MAX];
        let token = watch_token(id, &mut token);
        self.enqueue(
            t,
            TxId::NONE,
            &[Arg::Str(w.path()), Arg::Str(token)],
            purpose,
        )
    }

    fn live_watch(&self, id: WatchId) -> Option<&WatchSlot> {
        self.watches
            .get(id.slot())
            .filter(|w| w.state.is_some() && w.generation == id.generation)
    }

    /// Removes a watch: queues `XS_UNWATCH`; from now on its events are dropped, and the slot is
    /// freed when the reply comes (whatever it says).
    pub fn submit_unwatch(&mut self, id: WatchId) -> Result<ReqId, XsError> {
        match self.live_watch(id).and_then(|w| w.state) {
            None | Some(WatchState::Unregistering) => Err(LimitError::UnknownWatch.into()),
            Some(_) => {
                let req = self.enqueue_watch(XsMsgType::Unwatch, id, Purpose::Unwatch(id))?;
                self.watches[id.slot()].state = Some(WatchState::Unregistering);
                Ok(req)
            }
        }
    }

    /// The path a watch watches.
    pub fn watch_path(&self, id: WatchId) -> Option<&[u8]> {
        self.live_watch(id).map(WatchSlot::path)
    }

    /// Where a watch stands, or `None` for a removed or unknown one.
    pub fn watch_state(&self, id: WatchId) -> Option<WatchState> {
        self.live_watch(id).and_then(|w| w.state)
    }

    /// Queues a re-registration (`XS_WATCH` with the same token) for each watch that needs one,
    /// as far as pending slots and queue space allow, and returns how many still need one. The
    /// replies are consumed by [`poll`](Self::poll), not handed out; a refusal (other than
    /// `EEXIST`, which means the daemon still had it) is counted in
    /// [`XsStats::rewatch_failures`] and leaves the watch needing re-registration.
    pub fn submit_rewatches(&mut self) -> Result<usize, XsError> {
        self.check_usable()?;
        let mut left = 0;
        for slot in 0..WATCHES {
            let w = self.watches[slot];
            if w.state != Some(WatchState::NeedsRewatch) {
                continue;
            }
            let Ok(slot16) = u16::try_from(slot) else {
                continue;
            };
            let id = WatchId {
                slot: slot16,
                generation: w.generation,
            };
            match self.enqueue_watch(XsMsgType::Watch, id, Purpose::Rewatch(id)) {
                Ok(_) => self.watches[slot].state = Some(WatchState::Rewatching),
                Err(XsError::Limit(LimitError::TooManyRequests | LimitError::SendQueueFull)) => {
                    left += 1
                }
                Err(e) => return Err(e),
            }
        }
        Ok(left)
    }

    /// Whether re-registrations are in flight.
    pub fn rewatches_in_flight(&self) -> bool {
        self.watches
            .iter()
            .any(|w| w.state == Some(WatchState::Rewatching))
    }

    /// Whether any watch still needs re-registration.
    pub fn rewatches_needed(&self) -> bool {
        self.watches
            .iter()
            .any(|w| w.state == Some(WatchState::NeedsRewatch))
    }

    /// Sends as much of the queue as the transport takes; notifies the peer if anything went.
    pub fn flush<T: Transport + ?Sized>(&mut self, t: &mut T) -> Result<(), XsError> {
        self.check_usable()?;
        if self.flush_inner(t)? {
            t.notify()?;
        }
        Ok(())
    }

    fn flush_inner<T: Transport + ?Sized>(&mut self, t: &mut T) -> Result<bool, XsError> {
        let mut moved = false;
        while self.tx_head < self.tx_tail {
            if self.tx_msg_end <= self.tx_head {
                // At a message boundary: the queue holds whole messages we encoded, so the
                // header is there and its length is at most XENSTORE_PAYLOAD_MAX.
                let h = &self.tx[self.tx_head + 12..self.tx_head + HEADER_SIZE];
                let len = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]) as usize;
                self.tx_msg_end = (self.tx_head + HEADER_SIZE + len).min(self.tx_tail);
            }
            let n = match t.write(&self.tx[self.tx_head..self.tx_msg_end]) {
                Ok(n) => n.min(self.tx_msg_end - self.tx_head),
                Err(e) => return Err(self.transport_failed(e)),
            };
            if n == 0 {
                break;
            }
            moved = true;
            self.tx_head += n;
        }
        if self.tx_head == self.tx_tail {
            self.tx_head = 0;
            self.tx_tail = 0;
            self.tx_msg_end = 0;
        }
        Ok(moved)
    }

    /// A transport error; protocol violations it detected (ring indices) break the connection.
    fn transport_failed(&mut self, e: XsError) -> XsError {
        match e {
            XsError::Protocol(p) => self.break_connection(p),
            e => e,
        }
    }

    /// Sends queued requests, reads whatever the transport has, and returns the next reply.
    ///
    /// Watch events met on the way are queued; stray replies are counted and dropped. Returns
    /// `Ok(None)` when the transport has nothing more (or [`POLL_BYTE_BUDGET`] was reached, see
    /// [`poll_again`](Self::poll_again)). Notifies the peer once if bytes moved either way.
    /// An `Err` is a failure of the connection, not of one request.
    pub fn poll<T: Transport + ?Sized>(&mut self, t: &mut T) -> Result<Option<Reply<'_>>, XsError> {
        self.check_usable()?;
        self.parser.next();
        self.more = false;
        let mut moved = self.flush_inner(t)?;
        let mut budget = POLL_BYTE_BUDGET;
        let delivered = loop {
            if budget == 0 {
                self.more = true;
                break None;
            }
            let spare = self.parser.spare();
            let want = spare.len().min(budget);
            if want > 0 {
                let n = match t.read(&mut spare[..want]) {
                    Ok(n) => n.min(want),
                    Err(e) => {
                        if moved {
                            let _ = t.notify();
                        }
                        return Err(self.transport_failed(e));
                    }
                };
                if n == 0 {
                    break None;
                }
                moved = true;
                budget -= n;
                if let Err(e) = self.parser.advance(n) {
                    let _ = t.notify();
                    return Err(self.break_connection(e));
                }
            }
            if !self.parser.is_complete() {
                if want == 0 {
                    break None;
                }
                continue;
            }
            if let Some(d) = self.dispatch() {
                break Some(d);
            }
            self.parser.next();
        };
        if moved {
            t.notify()?;
        }
        let Some(d) = delivered else { return Ok(None) };
        let payload = self.parser.frame().map_or(&[][..], |f| f.payload);
        Ok(Some(Reply {
            req_id: ReqId(d.req_id),
            request: d.request,
            tx_id: TxId(d.tx_id),
            result: d.result.map(|()| payload),
        }))
    }

    /// Handles the complete message in the parser; returns what to hand to the caller, if
    /// anything.
    fn dispatch(&mut self) -> Option<Delivered> {
        let frame = self.parser.frame()?;
        let header = frame.header;
        let payload = frame.payload;
        if header.raw_type == XsMsgType::WatchEvent.as_u32() {
            let Ok((path, token)) = parse_watch_event(payload) else {
                self.stats.malformed_watch_events += 1;
                self.stats.protocol_errors += 1;
                self.events.mark_overflow();
                return None;
            };
            match parse_token(token).filter(|id| {
                self.watches
                    .get(id.slot())
                    .is_some_and(|w| w.generation == id.generation && w.wants_events())
            }) {
                Some(id) => {
                    if self.events.push(id.slot, id.generation, path) {
                        self.stats.watch_events += 1;
                    }
                }
                None => self.stats.stray_watch_events += 1,
            }
            return None;
        }
        let Some(i) = self
            .pending
            .iter()
            .position(|p| p.state != SlotState::Free && p.req_id == header.req_id)
        else {
            self.stats.stray_replies += 1;
            self.stats.protocol_errors += 1;
            return None;
        };
        let p = self.pending[i];
        self.pending[i] = FREE_PENDING;
        let result = judge(p.msg_type, &header, payload);
        if matches!(result, Err(XsError::Protocol(_))) {
            self.stats.protocol_errors += 1;
        }
        match p.purpose {
            Purpose::Caller => {}
            Purpose::Watch(id) => {
                if let Some(w) = self.watches.get_mut(id.slot()) {
                    if w.generation == id.generation && w.state == Some(WatchState::Registering) {
                        match result {
                            Ok(()) => w.state = Some(WatchState::Active),
                            Err(_) => w.release(),
                        }
                    }
                }
            }
            Purpose::Unwatch(id) => {
                if let Some(w) = self.watches.get_mut(id.slot()) {
                    if w.generation == id.generation {
                        w.release();
                    }
                }
            }
            Purpose::Rewatch(id) => {
                if let Some(w) = self.watches.get_mut(id.slot()) {
                    if w.generation == id.generation && w.state == Some(WatchState::Rewatching) {
                        match result {
                            Ok(()) | Err(XsError::Store(XsErrno::Eexist)) => {
                                w.state = Some(WatchState::Active)
                            }
                            Err(e) => {
                                w.state = Some(WatchState::NeedsRewatch);
                                self.stats.rewatch_failures += 1;
                                self.last_rewatch_error = Some(e);
                            }
                        }
                    }
                }
                return None;
            }
        }
        if p.state == SlotState::Abandoned {
            self.stats.abandoned_replies += 1;
            return None;
        }
        self.stats.replies += 1;
        Some(Delivered {
            req_id: p.req_id,
            request: p.msg_type,
            tx_id: header.tx_id,
            result,
        })
    }

    pub(crate) fn take_last_rewatch_error(&mut self) -> Option<XsError> {
        self.last_rewatch_error.take()
    }

    /// The number of queued watch events.
    pub fn watch_events_queued(&self) -> usize {
        self.events.len()
    }

    /// Watch events dropped because the queue was full.
    pub fn watch_events_dropped(&self) -> u64 {
        self.events.dropped()
    }

    /// Whether events were lost since the flag was last taken (see the type's documentation).
    pub fn watch_overflowed(&self) -> bool {
        self.events.overflowed()
    }

    /// Returns and clears the overflow flag. True means: events were lost, treat every watch
    /// as fired and rescan.
    pub fn take_watch_overflow(&mut self) -> bool {
        self.events.take_overflow()
    }

    /// Takes the oldest queued watch event, copying its path into `buf`. Events of watches
    /// removed since they were queued are skipped. When `buf` is too small the event stays
    /// queued and [`LimitError::BufferTooSmall`] says how much is needed (at most
    /// `XENSTORE_PAYLOAD_MAX`).
    pub fn pop_watch_event<'b>(
        &mut self,
        buf: &'b mut [u8],
    ) -> Result<Option<WatchEvent<'b>>, XsError> {
        if !self.has_watch_event() {
            return Ok(None);
        }
        let Some((slot, generation, len)) = self.events.peek() else {
            return Ok(None);
        };
        if len > buf.len() {
            return Err(LimitError::BufferTooSmall { needed: len }.into());
        }
        self.events.pop_into(buf);
        Ok(Some(WatchEvent {
            watch: WatchId { slot, generation },
            path: &buf[..len],
        }))
    }

    /// Whether a watch event is queued (events of watches removed since they were queued are
    /// discarded first).
    pub fn has_watch_event(&mut self) -> bool {
        while let Some((slot, generation, _)) = self.events.peek() {
            if self
                .live_watch(WatchId { slot, generation })
                .is_some_and(WatchSlot::wants_events)
            {
                return true;
            }
            self.events.discard();
        }
        false
    }

    /// Drops every queued watch event (the overflow flag is left as it is).
    pub fn clear_watch_events(&mut self) {
        self.events.clear();
    }
}

#[cfg(test)]
pub(crate) mod testing {
    extern crate std;

    use super::*;

    pub(crate) fn token_of(id: WatchId) -> std::vec::Vec<u8> {
        let mut buf = [0; TOKEN_MAX];
        watch_token(id, &mut buf).to_vec()
    }

    pub(crate) fn parse(token: &[u8]) -> Option<WatchId> {
        parse_token(token)
    }
}
