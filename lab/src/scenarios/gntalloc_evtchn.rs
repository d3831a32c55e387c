//! `gntalloc-evtchn`: the two primitives every frontend is built on, looped back in dom0.
//!
//! dom0 plays both ends, as the lab's frontends do against dom0's backends: pages granted to
//! domain 0 through gntalloc are mapped back through gntdev (as a backend maps a frontend's
//! ring), and an unbound event channel for domain 0 is bound from a second event-channel handle
//! (as a backend binds a frontend's port), then events go both ways.

use std::time::{Duration, Instant};

use crate::platform::evtchn::EventChannels;
use crate::platform::gntalloc::Gntalloc;
use crate::platform::gntdev::Gntdev;
use crate::platform::PAGE_SIZE;
use crate::scenario::{ensure, Context, Failure, Outcome, ResultExt, Scenario};

/// The scenario.
pub const SCENARIO: Scenario = Scenario {
    name: "gntalloc-evtchn",
    description: "grant pages to domain 0 with gntalloc, map them back with gntdev and check \
                  both views; bind an unbound and an interdomain event channel in dom0 and \
                  send events both ways, with masking and timeouts",
    default: true,
    timeout: Duration::from_secs(120),
    run,
};

/// The domain both ends live in.
const DOM0: u16 = 0;
/// Pages granted in the main check.
const PAGES: u32 = 4;
/// Grant, map, unmap and end cycles timed after it.
const CYCLES: u32 = 20;
/// Event round trips timed.
const ROUND_TRIPS: u32 = 200;
/// How long an expected event may take.
const EVENT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to watch for an event that must not come.
const QUIET_TIME: Duration = Duration::from_millis(100);

fn run(cx: &mut Context) -> Outcome {
    grants(cx)?;
    events(cx)
}

/// The byte the granting side writes at `offset` of page `page`.
fn pattern(page: usize, offset: usize) -> u8 {
    (page * 37 + offset * 11 + 5) as u8
}

fn grants(cx: &mut Context) -> Outcome {
    let gntalloc = Gntalloc::open().context("open gntalloc")?;
    let gntdev = Gntdev::open().context("open gntdev")?;

    let granted = gntalloc
        .grant(DOM0, PAGES, true)
        .context("grant pages to domain 0")?;
    let refs = granted.refs().to_vec();
    cx.log(format!(
        "granted {PAGES} pages to domain 0: grant refs {refs:?}"
    ));
    let mut sorted = refs.clone();
    sorted.sort_unstable();
    sorted.dedup();
    ensure(sorted.len() == refs.len() && !refs.contains(&0), || {
        format!("grant references not distinct and non-zero: {refs:?}")
    })?;

    let pages = granted.pages();
    let mut page_buf = vec![0u8; PAGE_SIZE];
    pages.read(0, &mut page_buf);
    ensure(page_buf.iter().all(|b| *b == 0), || {
        "a newly granted page is not zeroed".into()
    })?;
    for page in 0..PAGES as usize {
        let bytes: Vec<u8> = (0..PAGE_SIZE).map(|offset| pattern(page, offset)).collect();
        pages.write(page * PAGE_SIZE, &bytes);
    }

    let started = Instant::now();
    let foreign = gntdev
        .map(DOM0, &refs, true)
        .context("map the grants with gntdev")?;
    cx.duration("first map", started.elapsed(), "ms");
    let mapped = foreign.pages();
    for (page, gref) in refs.iter().enumerate() {
        mapped.read(page * PAGE_SIZE, &mut page_buf);
        if let Some(offset) = (0..PAGE_SIZE).find(|&o| page_buf[o] != pattern(page, o)) {
            return Err(Failure(format!(
                "gntdev view of grant {gref} (page {page}) differs at byte {offset}: {:#04x}, \
                 expected {:#04x}",
                page_buf[offset],
                pattern(page, offset)
            )));
        }
    }
    // The mapping side writes back; the granting side must see it in the same page.
    for page in 0..PAGES as usize {
        let reply = format!("reply from the mapping side, page {page}");
        mapped.write(page * PAGE_SIZE + 2048, reply.as_bytes());
        let mut seen = vec![0u8; reply.len()];
        pages.read(page * PAGE_SIZE + 2048, &mut seen);
        ensure(seen == reply.as_bytes(), || {
            format!("write through gntdev not visible in granted page {page}")
        })?;
    }
    foreign.release().context("unmap the gntdev mapping")?;
    granted.release().context("unmap and end the grants")?;

    let started = Instant::now();
    for cycle in 0..CYCLES {
        let granted = gntalloc
            .grant(DOM0, 1, true)
            .context(format!("cycle {cycle}: grant"))?;
        let foreign = gntdev
            .map(DOM0, granted.refs(), true)
            .context(format!("cycle {cycle}: map"))?;
        foreign.release().context(format!("cycle {cycle}: unmap"))?;
        granted
            .release()
            .context(format!("cycle {cycle}: end grant"))?;
    }
    cx.duration("grant cycle", started.elapsed() / CYCLES, "ms");
    Ok(())
}

fn events(cx: &mut Context) -> Outcome {
    let mut front = EventChannels::open().context("open evtchn (frontend handle)")?;
    let mut back = EventChannels::open().context("open evtchn (backend handle)")?;
    let a = front
        .bind_unbound(DOM0)
        .context("bind an unbound port for domain 0")?;
    let b = back
        .bind_interdomain(DOM0, a)
        .context(format!("bind interdomain to port {a}"))?;
    cx.log(format!(
        "event channel: unbound port {a} <-> interdomain port {b}"
    ));
    ensure(a != b, || format!("both ends got port {a}"))?;

    let early = front
        .wait_any(QUIET_TIME)
        .context("wait on the unbound port")?;
    ensure(early.is_empty(), || {
        format!("events before any notify: ports {early:?}")
    })?;

    let started = Instant::now();
    back.notify(b).context(format!("notify port {b}"))?;
    ensure(front.wait_for(a, EVENT_TIMEOUT).context("wait")?, || {
        format!("no event on port {a} within {EVENT_TIMEOUT:?} of a notify on port {b}")
    })?;
    cx.duration("first event", started.elapsed(), "ms");

    // The port stays masked until written back: an event sent now is held, not lost.
    back.notify(b)
        .context(format!("notify port {b} while {a} is masked"))?;
    ensure(!front.wait_for(a, QUIET_TIME).context("wait")?, || {
        format!("port {a} delivered an event before it was unmasked")
    })?;
    front.unmask(a).context(format!("unmask port {a}"))?;
    ensure(front.wait_for(a, EVENT_TIMEOUT).context("wait")?, || {
        format!("the event sent while port {a} was masked was not delivered after unmasking")
    })?;
    front.unmask(a).context(format!("unmask port {a}"))?;

    front.notify(a).context(format!("notify port {a}"))?;
    ensure(back.wait_for(b, EVENT_TIMEOUT).context("wait")?, || {
        format!("no event on port {b} within {EVENT_TIMEOUT:?} of a notify on port {a}")
    })?;
    back.unmask(b).context(format!("unmask port {b}"))?;

    let started = Instant::now();
    for round in 0..ROUND_TRIPS {
        front
            .notify(a)
            .context(format!("round {round}: notify {a}"))?;
        ensure(back.wait_for(b, EVENT_TIMEOUT).context("wait")?, || {
            format!("round {round}: no event on port {b}")
        })?;
        back.unmask(b)
            .context(format!("round {round}: unmask {b}"))?;
        back.notify(b)
            .context(format!("round {round}: notify {b}"))?;
        ensure(front.wait_for(a, EVENT_TIMEOUT).context("wait")?, || {
            format!("round {round}: no event on port {a}")
        })?;
        front
            .unmask(a)
            .context(format!("round {round}: unmask {a}"))?;
    }
    cx.duration("event round trip", started.elapsed() / ROUND_TRIPS, "ms");

    let stray = front.wait_any(QUIET_TIME).context("wait")?;
    ensure(stray.is_empty(), || {
        format!("unexpected events after the round trips: {stray:?}")
    })?;
    back.unbind(b).context(format!("unbind port {b}"))?;
    front.unbind(a).context(format!("unbind port {a}"))?;
    ensure(front.notify(a).is_err(), || {
        format!("notify on unbound port {a} succeeded")
    })?;
    Ok(())
}
