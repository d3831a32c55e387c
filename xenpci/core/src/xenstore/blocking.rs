//! Blocking-style helpers: submit, then poll and wait until the reply arrives.
//!
//! These need the connection to themselves: each refuses to start ([`LimitError::Busy`]) while
//! requests submitted through the asynchronous interface are outstanding, since their replies
//! could only be dropped here. Watch events that arrive meanwhile are queued as usual.

use xen_abi::types::DomId;
use xen_abi::xenstore::XsErrno;

use super::perms::{Perm, PermList};
use super::wire::NulList;
use super::{
    LimitError, Reply, ReqId, Transport, TransportError, TxId, Wait, WatchEvent, WatchId,
    XsConnection, XsError,
};

impl<const REQS: usize, const WATCHES: usize, const EVENT_BYTES: usize>
    XsConnection<REQS, WATCHES, EVENT_BYTES>
{
    fn ensure_exclusive(&self) -> Result<(), XsError> {
        if self.caller_outstanding() > 0 {
            return Err(LimitError::Busy.into());
        }
        Ok(())
    }

    /// Polls and waits until the reply to `id` arrives, and decodes it with `decode`.
    ///
    /// When waiting fails (the transport's time limit), the request is cancelled, so its reply
    /// is discarded if it comes later.
    pub fn wait_for<T, O>(
        &mut self,
        t: &mut T,
        id: ReqId,
        decode: impl FnOnce(Reply<'_>) -> Result<O, XsError>,
    ) -> Result<O, XsError>
    where
        T: Wait + ?Sized,
    {
        t.begin();
        loop {
            match self.poll(t) {
                Err(e) => {
                    self.cancel(id);
                    return Err(e);
                }
                Ok(Some(reply)) if reply.req_id == id => return decode(reply),
                // A reply to something else: impossible while this helper has the connection
                // to itself, except for requests submitted and left behind by the caller.
                Ok(Some(_)) => {}
                Ok(None) => {
                    // Polling again without waiting must not escape the time limit.
                    let waited = if self.poll_again() {
                        if t.expired() {
                            Err(TransportError::TimedOut.into())
                        } else {
                            Ok(())
                        }
                    } else {
                        t.wait()
                    };
                    if let Err(e) = waited {
                        self.cancel(id);
                        return Err(e);
                    }
                }
            }
        }
    }

    fn call<T, O>(
        &mut self,
        t: &mut T,
        submit: impl FnOnce(&mut Self) -> Result<ReqId, XsError>,
        decode: impl FnOnce(Reply<'_>) -> Result<O, XsError>,
    ) -> Result<O, XsError>
    where
        T: Wait + ?Sized,
    {
        self.ensure_exclusive()?;
        let id = submit(self)?;
        self.wait_for(t, id, decode)
    }

    /// Reads the value of `path` into `buf`; returns its length. A value longer than `buf`
    /// fails with [`LimitError::BufferTooSmall`] (`XENSTORE_PAYLOAD_MAX` always suffices).
    pub fn read<T: Wait + ?Sized>(
        &mut self,
        t: &mut T,
        tx: TxId,
        path: impl AsRef<[u8]>,
        buf: &mut [u8],
    ) -> Result<usize, XsError> {
        self.call(t, |c| c.submit_read(tx, path), |r| r.value_into(buf))
    }

    /// Writes `value` to `path`, creating it (and missing parents) if needed.
    pub fn write<T: Wait + ?Sized>(
        &mut self,
        t: &mut T,
        tx: TxId,
        path: impl AsRef<[u8]>,
        value: &[u8],
    ) -> Result<(), XsError> {
        self.call(t, |c| c.submit_write(tx, path, value), |r| r.ack())
    }

    /// Creates `path` with an empty value (succeeds if it exists).
    pub fn mkdir<T: Wait + ?Sized>(
        &mut self,
        t: &mut T,
        tx: TxId,
        path: impl AsRef<[u8]>,
    ) -> Result<(), XsError> {
        self.call(t, |c| c.submit_mkdir(tx, path), |r| r.ack())
    }

    /// Removes `path` and everything under it.
    pub fn rm<T: Wait + ?Sized>(
        &mut self,
        t: &mut T,
        tx: TxId,
        path: impl AsRef<[u8]>,
    ) -> Result<(), XsError> {
        self.call(t, |c| c.submit_rm(tx, path), |r| r.ack())
    }

    /// Lists the children of `path`, copying the reply into `buf`; iterate the returned list.
    pub fn directory<'b, T: Wait + ?Sized>(
        &mut self,
        t: &mut T,
        tx: TxId,
        path: impl AsRef<[u8]>,
        buf: &'b mut [u8],
    ) -> Result<NulList<'b>, XsError> {
        let n = self.call(
            t,
            |c| c.submit_directory(tx, path),
            |r| {
                r.directory()?;
                r.value_into(buf)
            },
        )?;
        Ok(NulList::new(&buf[..n])?)
    }

    /// Reads the permissions of `path`, copying the reply into `buf`.
    pub fn get_perms<'b, T: Wait + ?Sized>(
        &mut self,
        t: &mut T,
        tx: TxId,
        path: impl AsRef<[u8]>,
        buf: &'b mut [u8],
    ) -> Result<PermList<'b>, XsError> {
        let n = self.call(
            t,
            |c| c.submit_get_perms(tx, path),
            |r| {
                r.perms()?;
                r.value_into(buf)
            },
        )?;
        Ok(PermList::parse(&buf[..n])?)
    }

    /// Sets the permissions of `path`; `perms[0]` is the owner.
    pub fn set_perms<T: Wait + ?Sized>(
        &mut self,
        t: &mut T,
        tx: TxId,
        path: impl AsRef<[u8]>,
        perms: &[Perm],
    ) -> Result<(), XsError> {
        self.call(t, |c| c.submit_set_perms(tx, path, perms), |r| r.ack())
    }

    /// Asks for the home path of `domid` (`/local/domain/<domid>`), copied into `buf`.
    pub fn get_domain_path<'b, T: Wait + ?Sized>(
        &mut self,
        t: &mut T,
        domid: DomId,
        buf: &'b mut [u8],
    ) -> Result<&'b [u8], XsError> {
        let n = self.call(
            t,
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
    pub fn transaction_start<T: Wait + ?Sized>(&mut self, t: &mut T) -> Result<TxId, XsError> {
        self.call(t, |c| c.submit_transaction_start(), |r| r.transaction())
    }

    /// Ends a transaction: commits it (`commit`), or aborts it. A commit failing with `EAGAIN`
    /// ([`XsError::is_eagain`]) means another writer interfered: the transaction's effects are
    /// discarded and it must be redone from its start (see [`transaction`](Self::transaction)).
    pub fn transaction_end<T: Wait + ?Sized>(
        &mut self,
        t: &mut T,
        tx: TxId,
        commit: bool,
    ) -> Result<(), XsError> {
        self.call(t, |c| c.submit_transaction_end(tx, commit), |r| r.ack())
    }

    /// Runs `body` in a transaction, redoing it while the store answers `EAGAIN`, at most
    /// `max_attempts` times (at least once).
    ///
    /// Each attempt starts a transaction, runs `body` with its id, and commits. If `body` fails,
    /// the transaction is aborted and the error returned, unless it is `EAGAIN`, which counts as
    /// a conflict like a failed commit. When every attempt conflicted, the last `EAGAIN` is
    /// returned. `body` must therefore be safe to run several times: it should derive everything
    /// it writes from what it reads in the transaction.
    pub fn transaction<T, O>(
        &mut self,
        t: &mut T,
        max_attempts: u32,
        mut body: impl FnMut(&mut Self, &mut T, TxId) -> Result<O, XsError>,
    ) -> Result<O, XsError>
    where
        T: Wait + ?Sized,
    {
        let mut last = XsError::Store(XsErrno::Eagain);
        for _ in 0..max_attempts.max(1) {
            let tx = self.transaction_start(t)?;
            match body(self, t, tx) {
                Ok(value) => match self.transaction_end(t, tx, true) {
                    Ok(()) => return Ok(value),
                    Err(e) if e.is_eagain() => last = e,
                    Err(e) => return Err(e),
                },
                Err(e) => {
                    // The body's error is the one to report; an abort that fails too (the
                    // connection broke) will show on the next request.
                    let _ = self.transaction_end(t, tx, false);
                    if !e.is_eagain() {
                        return Err(e);
                    }
                    last = e;
                }
            }
        }
        Err(last)
    }

    /// Polls until the transport has nothing more, without waiting: picks up watch events that
    /// arrived after the last reply (the daemon sends a new watch's first event right after
    /// accepting it).
    pub fn pump<T: Transport + ?Sized>(&mut self, t: &mut T) -> Result<(), XsError> {
        self.ensure_exclusive()?;
        loop {
            let got_reply = self.poll(t)?.is_some();
            if !got_reply && !self.poll_again() {
                return Ok(());
            }
        }
    }

    /// Waits until a watch event is queued and takes it (see
    /// [`pop_watch_event`](Self::pop_watch_event)).
    pub fn wait_watch_event<'b, T: Wait + ?Sized>(
        &mut self,
        t: &mut T,
        buf: &'b mut [u8],
    ) -> Result<WatchEvent<'b>, XsError> {
        self.ensure_exclusive()?;
        t.begin();
        while !self.has_watch_event() {
            let got_reply = self.poll(t)?.is_some();
            if got_reply || self.has_watch_event() {
                continue;
            }
            if !self.poll_again() {
                t.wait()?;
            } else if t.expired() {
                return Err(TransportError::TimedOut.into());
            }
        }
        self.pop_watch_event(buf)?
            .ok_or(XsError::Limit(LimitError::UnknownWatch))
    }

    /// Registers a watch on `path` and waits for the daemon to accept it.
    pub fn watch<T: Wait + ?Sized>(
        &mut self,
        t: &mut T,
        path: impl AsRef<[u8]>,
    ) -> Result<WatchId, XsError> {
        self.ensure_exclusive()?;
        let (watch, req) = self.submit_watch(path)?;
        self.wait_for(t, req, |r| r.ack())?;
        Ok(watch)
    }

    /// Removes a watch and waits for the daemon's answer. The watch is gone locally whatever the
    /// answer.
    pub fn unwatch<T: Wait + ?Sized>(&mut self, t: &mut T, watch: WatchId) -> Result<(), XsError> {
        self.call(t, |c| c.submit_unwatch(watch), |r| r.ack())
    }

    /// Registers again every watch that needs it (after [`reset`](Self::reset) on resume) and
    /// waits until the daemon answered them all. Returns the first refusal, if any (those
    /// watches stay in [`WatchState::NeedsRewatch`](super::WatchState::NeedsRewatch)).
    pub fn reregister_watches<T: Wait + ?Sized>(&mut self, t: &mut T) -> Result<(), XsError> {
        self.ensure_exclusive()?;
        t.begin();
        self.take_last_rewatch_error();
        let failures_before = self.stats().rewatch_failures;
        loop {
            let left = self.submit_rewatches()?;
            if left > 0 && !self.rewatches_in_flight() {
                // Not even one fits with every slot free: the tables are too small.
                return Err(LimitError::TooManyRequests.into());
            }
            while self.rewatches_in_flight() {
                if self.poll(t)?.is_some() {
                    continue;
                }
                // The poll may have consumed the last re-registration reply (those are not
                // returned to the caller): only wait when something is still outstanding.
                if self.rewatches_in_flight() {
                    if !self.poll_again() {
                        t.wait()?;
                    } else if t.expired() {
                        return Err(TransportError::TimedOut.into());
                    }
                }
            }
            if self.stats().rewatch_failures != failures_before {
                return Err(self
                    .take_last_rewatch_error()
                    .unwrap_or(XsError::Store(XsErrno::Eio)));
            }
            if left == 0 {
                return Ok(());
            }
        }
    }
}
