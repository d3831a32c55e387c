//! What the block-core scenarios beyond `vbd-core` share: setting a session up (toolstack nodes,
//! page pool, event channel, engine), the connect handshake (which a reconnect repeats),
//! operations kept in flight without waiting for each, and blkback's own statistics.
//!
//! The single-command helpers (`command`, `poll_until`, `scatter`, …) are `vbd_core`'s.

use std::collections::BTreeMap;
use std::time::Duration;

use xen_abi::xenbus::XenbusState;
use xenvbd_core::blkif::{
    BackendFeatures, BlockCompletion, EngineState, FrontendConfig, FrontendParams, Layout,
    SubmitError,
};
use xenvbd_core::{BlockOp, DiskInfo, Segment, Tag};

use super::toolstack::{write_vbd_nodes_typed, LoopImage, Store};
use super::vbd_core::{
    all_grants_back, bind_queue_ports, features, first_difference, gather, poll_until,
    publish_and_connect, scatter, seg, wait_queue_events,
};
use crate::platform::evtchn::EventChannels;
use crate::platform::gntalloc::Gntalloc;
use crate::platform::pool::PagePool;
use crate::platform::vbd::{EvtchnEvents, VbdFront, DATA_START};
use crate::scenario::{ensure, Context, Failure, Outcome, ResultExt};

/// How long the backend may take to change state: blkback's hotplug script runs under full
/// emulation and took up to 9.8 s on a loaded 2-core machine, so 10 s was too tight.
pub(crate) const STATE_TIMEOUT: Duration = Duration::from_secs(30);

/// What a session is built from.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Setup {
    /// The `virtual-device` number.
    pub vdev: u32,
    /// The device name (`dev` node).
    pub dev: &'static str,
    /// The backend's `mode`: `w` or `r`.
    pub mode: &'static str,
    /// `disk` or `cdrom`.
    pub device_type: &'static str,
    /// What the frontend is willing to use.
    pub config: FrontendConfig,
    /// Pages for data buffers after the engine's own.
    pub data_pages: usize,
}

/// A connected device: what was negotiated and what the backend said at Connected.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Link {
    /// Negotiated at InitWait.
    pub params: FrontendParams,
    /// The backend's nodes at Connected.
    pub features: BackendFeatures,
    /// The disk as the SCSI layer presents it.
    pub info: DiskInfo,
    /// From Initialised to the backend's Connected.
    pub connect: Duration,
}

/// The session's body: runs with the engine connected (probe done, frontend Connected).
pub(crate) type Body<'b> =
    dyn FnOnce(&mut Context, &mut Store, &mut VbdFront<'_, '_, '_>, Link) -> Outcome + 'b;

/// Sets up the device over `image` (nodes, InitWait, negotiation, pool, event channel, engine,
/// connect), runs `body`, then disconnects cleanly when the body passed, and always gives every
/// grant back and releases the pool. The caller removes the device's nodes afterwards.
pub(crate) fn with_session(
    cx: &mut Context,
    store: &mut Store,
    image: &LoopImage,
    fe: &str,
    be: &str,
    setup: Setup,
    body: Box<Body<'_>>,
) -> Outcome {
    write_vbd_nodes_typed(
        store,
        image,
        fe,
        be,
        setup.vdev,
        setup.dev,
        setup.mode,
        setup.device_type,
    )?;
    store.expect_state("backend", be, XenbusState::InitWait, STATE_TIMEOUT)?;
    let offer = features(store, be)?;
    let params = FrontendParams::negotiate(&setup.config, &offer);
    cx.log(format!(
        "backend offers max-ring-page-order {}, queues {}, indirect {}; chosen: ring-page-order \
         {}, indirect segments {}, persistent offered {}",
        offer.max_ring_page_order,
        offer.max_queues,
        offer.max_indirect_segments,
        params.ring_page_order,
        params.indirect_segments,
        params.offer_persistent
    ));

    let gnt = Gntalloc::open().context("open gntalloc")?;
    let pool = PagePool::new(&gnt, 0, (DATA_START + setup.data_pages) as u32)
        .context("grant the page pool")?;
    let mut events = EventChannels::open().context("open evtchn")?;
    let ports = bind_queue_ports(&mut events, params.queues)?;
    let current;
    let outcome = {
        let mut front = VbdFront::new(
            &pool,
            EvtchnEvents::with_ports(&mut events, ports.clone()),
            setup.vdev as u16,
        )
        .context("build the engine")?;
        let mut early = Vec::new();
        let result = connect(cx, store, fe, be, &mut front, params, &mut early)
            .and_then(|link| {
                ensure(early.is_empty(), || {
                    format!("completions before any submission: {early:?}")
                })?;
                body(cx, store, &mut front, link)
            })
            .and_then(|()| {
                let took = store.disconnect(fe, be, STATE_TIMEOUT)?;
                cx.duration("disconnect", took, "ms");
                Ok(())
            });
        // Whatever happened, the engine gives every grant back (the backend is Closed, or going
        // away when the caller removes its nodes).
        let outstanding = front.disconnect();
        cx.figure("grants used", front.grants.granted as f64, "");
        // A body that reconnected may have moved to new event channels.
        current = front.events.ports.clone();
        result.and(all_grants_back(outstanding))
    };
    for port in current.iter().filter(|p| !ports.contains(p)) {
        events
            .unbind(*port)
            .context("unbind the reconnection's event channels")?;
    }
    for port in ports {
        events.unbind(port).context("unbind the event channels")?;
    }
    pool.release().context("end the pool's grants")?;
    outcome
}

/// The frontend's part of connecting, with the backend in InitWait: attach the ring, publish the
/// nodes (`protocol` from `params.layout`) and Initialised, wait for Connected, read the backend's nodes, run the layout probe,
/// write Connected. Operations queued in the engine (after a reconnect) start flowing as soon as
/// the probe settles; their completions go to `completions`.
pub(crate) fn connect(
    cx: &mut Context,
    store: &mut Store,
    fe: &str,
    be: &str,
    front: &mut VbdFront<'_, '_, '_>,
    params: FrontendParams,
    completions: &mut Vec<BlockCompletion>,
) -> Result<Link, Failure> {
    // The engine always starts on the x86_64 layout; `params.layout` is what the frontend
    // announces in `protocol`, and only the probe tells the engine which one blkback uses.
    front
        .attach_ring(FrontendParams {
            layout: Layout::X86_64,
            ..params
        })
        .context("attach the ring")?;
    let refs = front.queue_ring_refs();
    let connect = publish_and_connect(store, fe, be, &params, &refs, &front.events.ports)?;
    let features = features(store, be)?;
    let info = features
        .disk_info()
        .map_err(|e| Failure(format!("disk info: {e}")))?;
    front.with_io(|engine, io| engine.connected(&features, io));
    poll_until(front, completions, "the layout probe", |f, _| {
        f.engine.state() != EngineState::Probing
    })?;
    ensure(front.engine.state() == EngineState::Running, || {
        format!("after the probe the engine is {:?}", front.engine.state())
    })?;
    let layout = front.engine.counters().layout;
    ensure(layout == Some(params.layout), || {
        format!(
            "the probe chose {layout:?}, the frontend announced {}",
            params.layout.protocol()
        )
    })?;
    store.set_state(fe, XenbusState::Connected)?;
    cx.log(format!(
        "connected in {:.1} ms: {info:?}, layout {:?}",
        connect.as_secs_f64() * 1e3,
        front.engine.counters().layout
    ));
    Ok(Link {
        params,
        features,
        info,
        connect,
    })
}

/// Submits an operation without waiting for it; `false` when every job slot is busy. Operations
/// that need no ring request complete at once into `done`.
pub(crate) fn try_submit(
    front: &mut VbdFront<'_, '_, '_>,
    tag: u64,
    op: BlockOp,
    segments: &[Segment],
    done: &mut Vec<BlockCompletion>,
) -> Result<bool, Failure> {
    match front.with_io(|engine, io| engine.submit(Tag(tag), op, segments, io, |c| done.push(c))) {
        Ok(()) => Ok(true),
        Err(SubmitError::QueueFull) => Ok(false),
        Err(e) => Err(Failure(format!(
            "the engine refused {op:?} over {} segments ({segments:?}): {e:?}",
            segments.len()
        ))),
    }
}

/// Takes what the backend answered (completions into `done`) and issues what waited.
pub(crate) fn poll(front: &mut VbdFront<'_, '_, '_>, done: &mut Vec<BlockCompletion>) -> Outcome {
    front
        .with_io(|engine, io| engine.poll(io, |c| done.push(c)))
        .map_err(|e| Failure(format!("engine stopped: {e}")))?;
    if let Some(e) = front.events.notify_error.take() {
        return Err(Failure(format!("notify the backend: {e}")));
    }
    Ok(())
}

/// Waits for the backend's next event.
pub(crate) fn wait(front: &mut VbdFront<'_, '_, '_>, what: &str) -> Outcome {
    wait_queue_events(&mut front.events, what)
}

/// Polls (and waits for events) until the engine has nothing outstanding.
pub(crate) fn drain(
    front: &mut VbdFront<'_, '_, '_>,
    done: &mut Vec<BlockCompletion>,
    what: &str,
) -> Outcome {
    poll_until(front, done, what, |f, _| f.engine.outstanding() == 0)
}

/// blkback's counters for the device (`/sys/bus/xen-backend/devices/vbd-0-<vdev>/statistics`:
/// `rd_req`, `wr_req`, `f_req`, `ds_req`, `oo_req`, `rd_sect`, `wr_sect`); empty when the
/// directory cannot be read.
pub(crate) fn blkback_stats(vdev: u32) -> BTreeMap<String, u64> {
    let dir = format!("/sys/bus/xen-backend/devices/vbd-0-{vdev}/statistics");
    let mut stats = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return stats;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Ok(text) = std::fs::read_to_string(entry.path()) {
            if let Ok(n) = text.trim().parse() {
                stats.insert(name, n);
            }
        }
    }
    stats
}

/// One counter of [`blkback_stats`] (0 when missing).
pub(crate) fn stat(stats: &BTreeMap<String, u64>, name: &str) -> u64 {
    stats.get(name).copied().unwrap_or(0)
}

/// One operation of a batch run by [`run_ops`]: its data buffer is laid out as `layout`
/// (`(page, offset, length)`, pages counted from the start of the buffer slot it is given).
#[derive(Clone, Debug)]
pub(crate) struct OpSpec {
    /// Write (`data` goes to the disk) or read (`data` is what must come back).
    pub write: bool,
    /// The first 512-byte sector.
    pub sector: u64,
    /// The buffer's pieces.
    pub layout: Vec<(usize, u16, u16)>,
    /// What is written, or expected.
    pub data: Vec<u8>,
}

impl OpSpec {
    /// Lays the buffer out over `pages` data pages from `first_page`, fills it (the data of a
    /// write, zeros for a read) and returns its segments with the block operation.
    pub(crate) fn stage(
        &self,
        front: &mut VbdFront<'_, '_, '_>,
        first_page: usize,
        pages: usize,
    ) -> Result<(Vec<Segment>, BlockOp), Failure> {
        let segments = slot_segments(front, first_page, pages, &self.layout)?;
        let sectors = self.data.len() as u64 / 512;
        let op = if self.write {
            scatter(front, &segments, &self.data);
            BlockOp::Write {
                sector: self.sector,
                sectors,
                fua: false,
            }
        } else {
            scatter(front, &segments, &vec![0; self.data.len()]);
            BlockOp::Read {
                sector: self.sector,
                sectors,
            }
        };
        Ok((segments, op))
    }
}

/// What [`run_ops`] saw.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct BatchStats {
    /// Operations completed.
    pub ops: u64,
    /// Bytes written and read, each read compared.
    pub bytes: u64,
    /// The most operations in flight at once.
    pub max_in_flight: usize,
}

/// Runs `ops` keeping as many in flight as the engine takes, each in its own buffer slot of
/// `slot_pages` data pages (`slots` of them): writes are scattered into the slot first, reads
/// land in a zeroed slot and are compared with their `data`. Every operation must complete
/// exactly once, with every byte transferred.
pub(crate) fn run_ops(
    front: &mut VbdFront<'_, '_, '_>,
    ops: &[OpSpec],
    slots: usize,
    slot_pages: usize,
    first_tag: u64,
) -> Result<BatchStats, Failure> {
    let mut free: Vec<usize> = (0..slots).rev().collect();
    // tag → (op index, slot, segments)
    let mut flying: BTreeMap<u64, (usize, usize, Vec<Segment>)> = BTreeMap::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut stats = BatchStats::default();
    let mut next = 0usize;
    let mut done = Vec::new();
    while next < ops.len() || !flying.is_empty() {
        while next < ops.len() {
            let Some(&slot) = free.last() else { break };
            let spec = &ops[next];
            let (segments, op) = spec.stage(front, slot * slot_pages, slot_pages)?;
            let tag = first_tag + next as u64;
            if !try_submit(front, tag, op, &segments, &mut done)? {
                break;
            }
            free.pop();
            flying.insert(tag, (next, slot, segments));
            next += 1;
            stats.max_in_flight = stats.max_in_flight.max(flying.len());
        }
        poll(front, &mut done)?;
        if done.is_empty() {
            wait(front, "a batch of operations")?;
            continue;
        }
        for c in done.drain(..) {
            let Some((i, slot, segments)) = flying.remove(&c.tag.0) else {
                return Err(Failure(format!(
                    "a completion for tag {} that is not in flight (seen before: {}): {c:?}",
                    c.tag.0,
                    seen.contains(&c.tag.0)
                )));
            };
            seen.insert(c.tag.0);
            let spec = &ops[i];
            let len = spec.data.len() as u64;
            ensure(
                c.status == xenvbd_core::blkif::BlockStatus::Ok && c.transferred == len,
                || {
                    format!(
                        "operation {i} ({} of {len} bytes at sector {}): {c:?}",
                        if spec.write { "write" } else { "read" },
                        spec.sector
                    )
                },
            )?;
            if !spec.write {
                let got = gather(front, &segments);
                ensure(got == spec.data, || {
                    format!(
                        "read {i} at sector {}: {}",
                        spec.sector,
                        first_difference(&got, &spec.data)
                    )
                })?;
            }
            stats.ops += 1;
            stats.bytes += len;
            free.push(slot);
        }
    }
    Ok(stats)
}

/// The segments of `layout` in the data pages from `first_page` (at most `pages` of them).
pub(crate) fn slot_segments(
    front: &VbdFront<'_, '_, '_>,
    first_page: usize,
    pages: usize,
    layout: &[(usize, u16, u16)],
) -> Result<Vec<Segment>, Failure> {
    layout
        .iter()
        .map(|&(page, offset, length)| {
            ensure(
                page < pages
                    && first_page + page < front.data_pages()
                    && length > 0
                    && usize::from(offset) + usize::from(length) <= crate::platform::PAGE_SIZE,
                || format!("a bad buffer layout: page {page} offset {offset} length {length}"),
            )?;
            Ok(seg(front.data_frame(first_page + page), offset, length))
        })
        .collect()
}
