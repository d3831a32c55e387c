//! `xenstore`: the project's xenstore client (`xenpci_core::xenstore`) against the real
//! xenstored, over `/dev/xen/xenbus`.

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use xenpci_core::xenstore::{
    Access, MuxCore, MuxLock, MuxWait, Perm, Transport, TxId, WatchId, WatchNews, XsConnection,
    XsErrno, XsError, XsMsgType, XsMux,
};

use crate::platform::wait_readable;
use crate::platform::xenbus::XenbusDevice;
use crate::scenario::{ensure, Context, Failure, Outcome, ResultExt, Scenario};

/// The scenario.
pub const SCENARIO: Scenario = Scenario {
    name: "xenstore",
    description: "the project's xenstore client against the real xenstored over /dev/xen/xenbus: \
                  read, write, directory, permissions, a transaction with a forced conflict, \
                  a watch and error replies; then the multiplexed client shared by 8 threads \
                  (writes, reads and watches of their own, conflicting transactions on one \
                  counter)",
    default: true,
    timeout: Duration::from_secs(240),
    run,
};

/// Where the scenario works; removed at its start and end.
const BASE: &str = "/local/domain/0/lab-xenstore";
/// How long any one reply may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to watch for a watch event that must not come.
const QUIET_TIME: Duration = Duration::from_millis(200);

type Conn = XsConnection;

fn read_string(
    c: &mut Conn,
    t: &mut XenbusDevice,
    tx: TxId,
    path: &str,
) -> Result<String, XsError> {
    let mut buf = [0u8; 4096];
    let n = c.read(t, tx, path, &mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Checks that `result` is the store's error `errno`.
fn expect_error<T>(what: &str, result: Result<T, XsError>, errno: XsErrno) -> Outcome {
    match result {
        Err(XsError::Store(got)) if got == errno => Ok(()),
        Err(other) => Err(Failure(format!(
            "{what}: expected {}, got {other}",
            errno.name()
        ))),
        Ok(_) => Err(Failure(format!(
            "{what}: succeeded, expected {}",
            errno.name()
        ))),
    }
}

fn run(cx: &mut Context) -> Outcome {
    let mut bus = XenbusDevice::open(REPLY_TIMEOUT).context("open xenbus")?;
    let mut conn: Box<Conn> = Box::default();
    let (c, t) = (&mut *conn, &mut bus);
    const NONE: TxId = TxId::NONE;

    // Read a node xen-init-dom0 wrote, and our home path.
    let started = Instant::now();
    let name = read_string(c, t, NONE, "/local/domain/0/name").context("read the domain name")?;
    cx.duration("read", started.elapsed(), "ms");
    ensure(name == "Domain-0", || {
        format!("/local/domain/0/name is '{name}'")
    })?;
    let mut buf = [0u8; 4096];
    let home = c
        .get_domain_path(t, 0, &mut buf)
        .context("get the domain path of domain 0")?;
    ensure(home == b"/local/domain/0", || {
        format!("domain path of 0 is '{}'", String::from_utf8_lossy(home))
    })?;

    match c.rm(t, NONE, BASE) {
        Err(e) if !e.is_enoent() => return Err(Failure(format!("remove {BASE}: {e}"))),
        _ => {}
    }

    // Write, read back, list.
    let started = Instant::now();
    c.write(t, NONE, format!("{BASE}/a"), b"1")
        .context("write a")?;
    cx.duration("write", started.elapsed(), "ms");
    c.write(t, NONE, format!("{BASE}/b"), b"two")
        .context("write b")?;
    c.mkdir(t, NONE, format!("{BASE}/dir"))
        .context("mkdir dir")?;
    let b = read_string(c, t, NONE, &format!("{BASE}/b")).context("read b")?;
    ensure(b == "two", || format!("{BASE}/b reads back as '{b}'"))?;
    let list = c
        .directory(t, NONE, BASE, &mut buf)
        .context("list the directory")?;
    let mut names: Vec<String> = list
        .iter()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    names.sort();
    ensure(names == ["a", "b", "dir"], || {
        format!("{BASE} lists {names:?}")
    })?;

    // Error replies.
    let missing = format!("{BASE}/missing");
    expect_error(
        "read of a missing node",
        read_string(c, t, NONE, &missing),
        XsErrno::Enoent,
    )?;
    expect_error(
        "directory of a missing node",
        c.directory(t, NONE, &missing, &mut buf).map(drop),
        XsErrno::Enoent,
    )?;
    expect_error(
        "write to a path with an empty component",
        c.write(t, NONE, format!("{BASE}//bad"), b"x"),
        XsErrno::Einval,
    )?;

    // Permissions: owner dom0 with no access for others, read for domain 5.
    let perms = [Perm::new(Access::None, 0), Perm::new(Access::Read, 5)];
    c.set_perms(t, NONE, format!("{BASE}/a"), &perms)
        .context("set permissions")?;
    let got: Vec<Perm> = c
        .get_perms(t, NONE, format!("{BASE}/a"), &mut buf)
        .context("get permissions")?
        .iter()
        .collect();
    ensure(got == perms, || {
        format!("permissions read back as {got:?}, set {perms:?}")
    })?;

    // A transaction that conflicts with an outside write must fail with EAGAIN and change nothing.
    let counter = format!("{BASE}/counter");
    c.write(t, NONE, &counter, b"0")
        .context("write the counter")?;
    let tx = c.transaction_start(t).context("start a transaction")?;
    let seen = read_string(c, t, tx, &counter).context("read in the transaction")?;
    ensure(seen == "0", || format!("the transaction reads '{seen}'"))?;
    c.write(t, tx, &counter, b"1")
        .context("write in the transaction")?;
    c.write(t, NONE, &counter, b"100")
        .context("write outside the transaction")?;
    expect_error(
        "commit after a conflicting write",
        c.transaction_end(t, tx, true),
        XsErrno::Eagain,
    )?;
    let after = read_string(c, t, NONE, &counter).context("read the counter")?;
    ensure(after == "100", || {
        format!("counter is '{after}' after the failed commit, not '100'")
    })?;

    // The retrying helper redoes the body after a conflict.
    let mut attempts = 0u32;
    let result = c.transaction(t, 5, |c, t, tx| {
        attempts += 1;
        let text = read_string(c, t, tx, &counter)?;
        let value: u32 = text.parse().map_err(|_| XsError::Store(XsErrno::Einval))?;
        if attempts == 1 {
            c.write(t, NONE, &counter, b"200")?;
        }
        c.write(t, tx, &counter, (value + 1).to_string().as_bytes())?;
        Ok(value + 1)
    });
    let value = result.context("transaction with a retry")?;
    let stored = read_string(c, t, NONE, &counter).context("read the counter")?;
    ensure(attempts == 2 && value == 201 && stored == "201", || {
        format!("retried transaction: {attempts} attempts, result {value}, stored '{stored}'")
    })?;
    cx.figure("tx attempts", f64::from(attempts), "");

    // A watch: its first event at once, then one per change below it, none once removed.
    let watched = format!("{BASE}/w");
    c.write(t, NONE, &watched, b"")
        .context("create the watched node")?;
    let watch = c.watch(t, &watched).context("register a watch")?;
    let event = c
        .wait_watch_event(t, &mut buf)
        .context("wait for the watch's first event")?;
    ensure(
        event.watch == watch && event.path == watched.as_bytes(),
        || {
            format!(
                "first watch event for '{}'",
                String::from_utf8_lossy(event.path)
            )
        },
    )?;
    let child = format!("{watched}/x");
    let started = Instant::now();
    c.write(t, NONE, &child, b"1")
        .context("write under the watch")?;
    let event = c
        .wait_watch_event(t, &mut buf)
        .context("wait for the watch event")?;
    cx.duration("watch event", started.elapsed(), "ms");
    ensure(
        event.watch == watch && event.path == child.as_bytes(),
        || {
            format!(
                "watch event for '{}', expected '{child}'",
                String::from_utf8_lossy(event.path)
            )
        },
    )?;
    c.unwatch(t, watch).context("remove the watch")?;
    c.write(t, NONE, format!("{watched}/y"), b"1")
        .context("write after unwatch")?;
    std::thread::sleep(QUIET_TIME);
    c.pump(t).context("poll")?;
    ensure(!c.has_watch_event(), || {
        "a watch event after the watch was removed".into()
    })?;

    cx.log("single-connection part done; the multiplexed part starts");
    concurrent(cx)?;

    c.rm(t, NONE, BASE).context("remove the scenario's nodes")?;
    expect_error(
        "read after rm",
        read_string(c, t, NONE, BASE),
        XsErrno::Enoent,
    )?;
    Ok(())
}

/// `/dev/xen/xenbus` as the multiplexer's transport, carrying one request at a time: Linux's
/// device transmits a request to xenstored from the file's single message buffer after `write`
/// has returned, so a second request written before the first was transmitted would overwrite
/// it. A request is held (`write` takes nothing) until the reply to the previous one has been
/// read; watch events do not count. Callers still run concurrently: the multiplexer queues,
/// routes replies and events, and interleaves their transactions; only the wire is one at a
/// time.
struct OneAtATime {
    device: XenbusDevice,
    /// A request was written whose reply has not been read yet.
    in_flight: bool,
    /// Bytes of the outgoing message not yet written.
    write_left: usize,
    /// The header of the incoming message being read, and how much of it has come.
    rx_header: [u8; 16],
    rx_have: usize,
    /// Payload bytes of the incoming message still to come.
    rx_left: usize,
}

impl OneAtATime {
    fn new(device: XenbusDevice) -> Self {
        OneAtATime {
            device,
            in_flight: false,
            write_left: 0,
            rx_header: [0; 16],
            rx_have: 0,
            rx_left: 0,
        }
    }

    /// Follows the incoming stream's message boundaries; a complete reply ends the request
    /// in flight.
    fn received(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.rx_have < self.rx_header.len() {
                let n = (self.rx_header.len() - self.rx_have).min(bytes.len());
                self.rx_header[self.rx_have..self.rx_have + n].copy_from_slice(&bytes[..n]);
                self.rx_have += n;
                bytes = &bytes[n..];
                if self.rx_have < self.rx_header.len() {
                    return;
                }
                let word = |i: usize| {
                    u32::from_le_bytes([
                        self.rx_header[i],
                        self.rx_header[i + 1],
                        self.rx_header[i + 2],
                        self.rx_header[i + 3],
                    ])
                };
                self.rx_left = word(12) as usize;
            } else {
                let n = self.rx_left.min(bytes.len());
                self.rx_left -= n;
                bytes = &bytes[n..];
            }
            if self.rx_have == self.rx_header.len() && self.rx_left == 0 {
                let kind = u32::from_le_bytes([
                    self.rx_header[0],
                    self.rx_header[1],
                    self.rx_header[2],
                    self.rx_header[3],
                ]);
                if kind != XsMsgType::WatchEvent.as_u32() {
                    self.in_flight = false;
                }
                self.rx_have = 0;
            }
        }
    }
}

impl Transport for OneAtATime {
    fn write(&mut self, data: &[u8]) -> Result<usize, XsError> {
        if self.write_left == 0 {
            // At a message's start (the multiplexer writes whole messages or their rests).
            if self.in_flight || data.len() < 16 {
                return Ok(0);
            }
            let len = u32::from_le_bytes([data[12], data[13], data[14], data[15]]) as usize;
            self.write_left = 16 + len;
            self.in_flight = true;
        }
        let n = self
            .device
            .write(&data[..data.len().min(self.write_left)])?;
        self.write_left -= n;
        Ok(n)
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, XsError> {
        let n = Transport::read(&mut self.device, buf)?;
        self.received(&buf[..n]);
        Ok(n)
    }
}

/// The multiplexer's lock in this process.
struct ProcessLock<S>(Mutex<S>);

impl<S> MuxLock<S> for ProcessLock<S> {
    fn with<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The multiplexer's wait primitive in this process: a sticky flag per key, a condition
/// variable, nanoseconds since the scenario's start. The device's readiness reaches it through
/// the event thread of [`concurrent`] (the role of the store's event-channel DPC).
struct ProcessWaiter<const KEYS: usize> {
    flags: Mutex<[bool; KEYS]>,
    changed: Condvar,
    epoch: Mutex<Option<Instant>>,
}

impl<const KEYS: usize> ProcessWaiter<KEYS> {
    const fn new() -> Self {
        ProcessWaiter {
            flags: Mutex::new([false; KEYS]),
            changed: Condvar::new(),
            epoch: Mutex::new(None),
        }
    }
}

impl<const KEYS: usize> MuxWait for ProcessWaiter<KEYS> {
    fn now(&self) -> u64 {
        let epoch = *self
            .epoch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(Instant::now);
        u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn wait(&self, key: usize, deadline: u64) {
        let mut flags = self.flags.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if std::mem::take(&mut flags[key]) {
                return;
            }
            let now = self.now();
            if now >= deadline {
                return;
            }
            flags = self
                .changed
                .wait_timeout(flags, Duration::from_nanos(deadline - now))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn wake(&self, key: usize) {
        self.flags.lock().unwrap_or_else(PoisonError::into_inner)[key] = true;
        self.changed.notify_all();
    }

    fn wake_all(&self) {
        *self.flags.lock().unwrap_or_else(PoisonError::into_inner) = [true; KEYS];
        self.changed.notify_all();
    }
}

const MUX_SLOTS: usize = 16;
const MUX_REGS: usize = 32;
type Core = MuxCore<OneAtATime, MUX_SLOTS, MUX_REGS, 512>;
const MUX_KEYS: usize = Core::key_count();
type Mux = XsMux<OneAtATime, ProcessLock<Core>, ProcessWaiter<MUX_KEYS>, MUX_SLOTS, MUX_REGS, 512>;

/// The multiplexer, in static memory (about 120 KiB).
static MUX: Mux = XsMux::new(
    ProcessLock(Mutex::new(MuxCore::new())),
    ProcessWaiter::new(),
    REPLY_TIMEOUT.as_nanos() as u64,
);

/// How long the event thread waits for the device in one go (it rechecks whether to stop).
const EVENT_POLL: Duration = Duration::from_millis(100);
/// How long the event thread lets the woken waiters read before it looks at the device again.
const EVENT_HOLDOFF: Duration = Duration::from_micros(500);

/// Threads sharing the multiplexer.
const THREADS: usize = 8;
/// Write, read and watch-event rounds per thread.
const ROUNDS: usize = 8;
/// Counter increments per transaction thread (every other thread).
const INCREMENTS: usize = 4;

/// The concurrent part: one `/dev/xen/xenbus` connection shared through `XsMux` by
/// [`THREADS`] threads. Each writes, reads back and lists its own nodes and must see its own
/// writes' watch events on its own registration; every other thread also increments one shared
/// counter in transactions, which the real xenstored makes conflict (`EAGAIN`, redone).
fn concurrent(cx: &mut Context) -> Outcome {
    let device = XenbusDevice::open(REPLY_TIMEOUT).context("open xenbus for the multiplexer")?;
    let events = device
        .as_fd()
        .try_clone_to_owned()
        .context("duplicate the xenbus descriptor")?;
    MUX.with_core(|core| core.clear());
    MUX.attach(OneAtATime::new(device));
    let stop = AtomicBool::new(false);
    let base = format!("{BASE}/mux");
    let counter = format!("{base}/counter");
    MUX.write(TxId::NONE, counter.as_str(), b"0")
        .context("create the counter")?;
    let watches = (0..THREADS)
        .map(|i| mux_watch(i, &base))
        .collect::<Result<Vec<_>, _>>()?;
    let started = Instant::now();
    let results: Vec<Outcome> = std::thread::scope(|s| {
        // The event thread: when the device has something to read, every waiter is woken so
        // that one of them reads it; then it lets them drain it before looking again.
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                if matches!(wait_readable(events.as_fd(), EVENT_POLL), Ok(true)) {
                    MUX.store_event();
                    std::thread::sleep(EVENT_HOLDOFF);
                }
            }
        });
        let handles: Vec<_> = watches
            .iter()
            .enumerate()
            .map(|(i, &watch)| {
                let (base, counter) = (&base, &counter);
                s.spawn(move || mux_thread(i, base, counter, watch))
            })
            .collect();
        let outcomes = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Failure("a thread panicked".into())))
            })
            .collect::<Vec<_>>();
        stop.store(true, Ordering::Relaxed);
        outcomes
    });
    cx.duration("8 threads, multiplexed", started.elapsed(), "ms");
    cx.log(format_args!("multiplexer: {:?}", MUX.stats()));
    for r in results {
        r?;
    }
    for watch in watches {
        MUX.unwatch(watch).context("unwatch")?;
    }
    let mut buf = [0u8; 32];
    let n = MUX
        .read(TxId::NONE, counter.as_str(), &mut buf)
        .context("read the counter")?;
    let want = (THREADS / 2 * INCREMENTS).to_string();
    ensure(buf[..n] == *want.as_bytes(), || {
        format!(
            "counter is '{}', expected {want}",
            String::from_utf8_lossy(&buf[..n])
        )
    })?;
    let stats = MUX.stats();
    cx.figure("transaction retries", stats.transaction_retries as f64, "");
    ensure(stats.timeouts == 0 && stats.late_replies == 0, || {
        format!("multiplexer: {stats:?}")
    })?;
    ensure(MUX.with_core(|core| core.slots_in_use()) == 0, || {
        "request slots still in use".into()
    })
}

/// Creates thread `i`'s node and registers its watch, from the scenario's thread while nothing
/// else is outstanding on the device: Linux's `/dev/xen/xenbus` holds the file's message lock
/// while it registers a watch with xenstored, and delivering the reply of another request of
/// the same file takes that lock in xenbus's reader thread, so an `XS_WATCH` written while other
/// requests of the file are in flight can deadlock dom0's xenbus. (The Windows driver talks to
/// the ring itself and has no such lock.)
fn mux_watch(i: usize, base: &str) -> Result<WatchId, Failure> {
    let mine = format!("{base}/t{i}");
    MUX.mkdir(TxId::NONE, mine.as_str())
        .context("mkdir a thread's node")?;
    let watch = MUX.watch(mine.as_str()).context("watch a thread's node")?;
    let mut buf = [0u8; 512];
    let first = MUX
        .next_watch_event(watch, &mut buf)
        .context("first event")?;
    ensure(first == Some(WatchNews::Fired(mine.as_bytes())), || {
        format!("thread {i}: first event {first:?}")
    })?;
    Ok(watch)
}

fn mux_thread(i: usize, base: &str, counter: &str, watch: WatchId) -> Outcome {
    let mine = format!("{base}/t{i}");
    let mut buf = [0u8; 512];
    for r in 0..ROUNDS {
        let path = format!("{mine}/k{r}");
        let value = format!("{i}:{r}");
        MUX.write(TxId::NONE, path.as_str(), value.as_bytes())
            .context("write")?;
        let n = MUX
            .read(TxId::NONE, path.as_str(), &mut buf)
            .context("read back")?;
        ensure(buf[..n] == *value.as_bytes(), || {
            format!(
                "thread {i}: read back '{}'",
                String::from_utf8_lossy(&buf[..n])
            )
        })?;
        let news = MUX
            .next_watch_event(watch, &mut buf)
            .context("watch event")?;
        ensure(news == Some(WatchNews::Fired(path.as_bytes())), || {
            format!("thread {i} round {r}: {news:?}")
        })?;
    }
    let names = MUX
        .directory(TxId::NONE, mine.as_str(), &mut buf)
        .context("directory")?;
    ensure(names.count() == ROUNDS, || {
        format!("thread {i}: {} children", names.count())
    })?;
    if i % 2 == 0 {
        for _ in 0..INCREMENTS {
            MUX.transaction(64, |m, tx| {
                let mut v = [0u8; 32];
                let n = m.read(tx, counter, &mut v)?;
                let old: u64 = std::str::from_utf8(&v[..n])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or(XsError::Store(XsErrno::Einval))?;
                m.write(tx, counter, (old + 1).to_string().as_bytes())
            })
            .context("increment in a transaction")?;
        }
    }
    // Progress on the console (the scenario's context stays with its thread).
    println!("[xenstore] multiplexed thread {i} done");
    Ok(())
}
