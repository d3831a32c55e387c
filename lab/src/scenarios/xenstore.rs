//! `xenstore`: the project's xenstore client (`xenpci_core::xenstore`) against the real
//! xenstored, over `/dev/xen/xenbus`.

use std::time::{Duration, Instant};

use xenpci_core::xenstore::{Access, Perm, TxId, XsConnection, XsErrno, XsError};

use crate::platform::xenbus::XenbusDevice;
use crate::scenario::{ensure, Context, Failure, Outcome, ResultExt, Scenario};

/// The scenario.
pub const SCENARIO: Scenario = Scenario {
    name: "xenstore",
    description: "the project's xenstore client against the real xenstored over /dev/xen/xenbus: \
                  read, write, directory, permissions, a transaction with a forced conflict, \
                  a watch and error replies",
    default: true,
    timeout: Duration::from_secs(60),
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

    c.rm(t, NONE, BASE).context("remove the scenario's nodes")?;
    expect_error(
        "read after rm",
        read_string(c, t, NONE, BASE),
        XsErrno::Enoent,
    )?;
    Ok(())
}
