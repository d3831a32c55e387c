//! The block core under load and through reconnects: `vbd-reconnect` (the frontend closes and
//! reopens with operations queued and on the ring), `vbd-reconnect-backend` (the backend driver
//! is unbound from the device and bound again), `vbd-soak` (a random read/write/flush soak
//! checked against a model of the disk) and `vbd-soak-persistent` (the same with persistent
//! grants).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use xen_abi::xenbus::XenbusState;
use xenvbd_core::blkif::{BlockCompletion, BlockStatus, FrontendConfig, FrontendParams, Layout};
use xenvbd_core::{BlockOp, Segment};

use super::toolstack::{device_dirs, modprobe, remove_device, sectors_content, LoopImage, Store};
use super::vbd_core::{
    expect_in_image, features, first_difference, gather, report_queues, scatter,
};
use super::vbd_session::{
    blkback_stats, connect, drain, poll, run_ops, slot_segments, stat, try_submit, wait,
    with_session, Link, OpSpec, Setup, STATE_TIMEOUT,
};
use crate::platform::evtchn::Port;
use crate::platform::vbd::{VbdFront, QUEUES};
use crate::scenario::{ensure, Context, Failure, Outcome, ResultExt, Scenario};

/// `vbd-reconnect`.
pub const RECONNECT: Scenario = Scenario {
    name: "vbd-reconnect",
    description: "8 writes and reads of 252 KiB (48 ring requests for 32 slots: some on the \
                  ring, some queued), then the frontend closes (Closing/Closed, blkback tears \
                  down) and reconnects (Initialising, InitWait, new event channel, a 16-page \
                  ring, persistent grants and the x86_32 layout this time): each operation \
                  completes once with OK after being resubmitted, re-split and re-encoded, the \
                  disk holds exactly what was written (read back and in the image file)",
    default: true,
    timeout: Duration::from_secs(180),
    run: |cx| run_reconnect(cx, Restart::Frontend),
};

/// `vbd-reconnect-backend`.
pub const RECONNECT_BACKEND: Scenario = Scenario {
    name: "vbd-reconnect-backend",
    description: "vbd-reconnect, but the backend goes away instead: the device is unbound from \
                  xen-blkback in /sys/bus/xen-backend with operations in flight and bound \
                  again; the frontend restarts its handshake and every operation completes \
                  once with OK",
    default: true,
    timeout: Duration::from_secs(180),
    run: |cx| run_reconnect(cx, Restart::Backend),
};

/// `vbd-soak`.
pub const SOAK: Scenario = Scenario {
    name: "vbd-soak",
    description: "25 s of seeded random reads, writes (1 sector to 256 KiB, random buffer \
                  offsets and pieces, so some bounce; some FUA), discards and flushes, as many \
                  in flight as the engine takes over every queue blkback offers, every read \
                  compared with a model of the disk and the whole image file compared with it \
                  at the end",
    default: true,
    timeout: Duration::from_secs(240),
    run: |cx| {
        run_soak(
            cx,
            SoakKind {
                vdev: 51888,
                dev: "xvdl",
                persistent: false,
                time: Duration::from_secs(25),
                reconnect_every: None,
                queues: QUEUES as u32,
                sector_size: None,
            },
        )
    },
};

/// `vbd-soak-persistent`.
pub const SOAK_PERSISTENT: Scenario = Scenario {
    name: "vbd-soak-persistent",
    description: "vbd-soak for 10 s with persistent grants in force (every piece copied \
                  through the engine's kept pool pages) and the frontend closing and \
                  reconnecting every 2 s with operations in flight: each completes once, every \
                  read compared with the model, the whole image at the end",
    default: true,
    timeout: Duration::from_secs(180),
    run: |cx| {
        run_soak(
            cx,
            SoakKind {
                vdev: 51904,
                dev: "xvdm",
                persistent: true,
                time: Duration::from_secs(10),
                reconnect_every: Some(Duration::from_secs(2)),
                queues: 1,
                sector_size: None,
            },
        )
    },
};

/// `vbd-soak-4k`.
pub const SOAK_4K: Scenario = Scenario {
    name: "vbd-soak-4k",
    description: "vbd-soak for 10 s over a loop device with 4096-byte logical blocks: every \
                  operation in whole 4 KiB blocks, buffers at sector or byte offsets bounced \
                  into whole blocks, every read compared with the model, the whole image at \
                  the end",
    default: true,
    timeout: Duration::from_secs(180),
    run: |cx| {
        run_soak(
            cx,
            SoakKind {
                vdev: 51936,
                dev: "xvdo",
                persistent: false,
                time: Duration::from_secs(10),
                reconnect_every: None,
                queues: 1,
                sector_size: Some(4096),
            },
        )
    },
};

/// The image's content seed of this file's scenarios.
const SEED: u8 = 23;
/// Buffer slots (the engine's job count) and pages per slot.
const SLOTS: usize = 8;
const SLOT_PAGES: usize = 64;

/// Who goes away in a reconnect scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Restart {
    /// The frontend closes and reopens.
    Frontend,
    /// The backend driver is unbound and bound again.
    Backend,
}

/// Runs `session` over a fresh device `vdev` on `image`, removing the nodes before and after.
fn on_device(
    cx: &mut Context,
    vdev: u32,
    image: LoopImage,
    session: impl FnOnce(&mut Context, &mut Store, &LoopImage, &str, &str) -> Outcome,
) -> Outcome {
    let mut store = Store::open()?;
    let (fe, be) = device_dirs("vbd", vdev);
    remove_device(&mut store, &fe, &be)?;
    let outcome = session(cx, &mut store, &image, &fe, &be);
    let removed = remove_device(&mut store, &fe, &be);
    outcome.and(removed)
}

// ---- vbd-reconnect ----

/// 4 MiB.
const RECONNECT_SECTORS: u64 = 8192;
/// Each operation: 62 whole pages, and half a page and 2 KiB at an odd offset (both bounced:
/// only whole pages are granted as they are).
fn reconnect_layout() -> Vec<(usize, u16, u16)> {
    let mut v: Vec<(usize, u16, u16)> = (0..62).map(|p| (p, 0, 4096)).collect();
    v.push((62, 0, 2048));
    v.push((63, 1000, 2048));
    v
}
const RECONNECT_BYTES: usize = 62 * 4096 + 4096;

fn run_reconnect(cx: &mut Context, restart: Restart) -> Outcome {
    modprobe("xen-blkback")?;
    let (vdev, dev) = match restart {
        Restart::Frontend => (51856, "xvdj"),
        Restart::Backend => (51872, "xvdk"),
    };
    let image = LoopImage::create(cx.name(), SEED, RECONNECT_SECTORS, None)?;
    on_device(cx, vdev, image, |cx, store, image, fe, be| {
        // One-page ring and no indirect requests, so that 8 operations need more ring
        // requests (8 × 6 of 11 segments) than the ring and the engine's 32 slots hold.
        let config = FrontendConfig {
            max_ring_page_order: 0,
            max_indirect_segments: 0,
            persistent: false,
            ..FrontendConfig::default()
        };
        let setup = Setup {
            vdev,
            dev,
            mode: "w",
            device_type: "disk",
            config,
            data_pages: SLOTS * SLOT_PAGES,
        };
        with_session(
            cx,
            store,
            image,
            fe,
            be,
            setup,
            Box::new(move |cx, store, front, link| {
                reconnect_body(cx, store, image, fe, be, front, link, config, restart, vdev)
            }),
        )
    })
}

/// blkback's name for the device on the xen-backend bus.
fn backend_device(vdev: u32) -> String {
    format!("vbd-0-{vdev}")
}

/// Writes `what` to a sysfs file of the vbd backend driver (`bind`, `unbind`).
fn blkback_driver(file: &str, device: &str) -> Outcome {
    let path = format!("/sys/bus/xen-backend/drivers/vbd/{file}");
    std::fs::write(&path, device).context(format!("write {device} to {path}"))
}

/// The frontend's way back after the engine was disconnected (the backend Closed, or unbound
/// and `bind` names the device to bind again): a new event channel (as a real frontend
/// allocates on every connect), Initialising, the backend's InitWait, negotiation with `config`
/// and [`connect`] announcing `layout`. Completions of requeued operations go to `done`. Returns the link and the
/// previous event channel, which the caller unbinds (unless it is the session's own).
#[allow(clippy::too_many_arguments)]
fn reopen(
    cx: &mut Context,
    store: &mut Store,
    fe: &str,
    be: &str,
    front: &mut VbdFront<'_, '_, '_>,
    config: FrontendConfig,
    layout: Layout,
    bind: Option<String>,
    done: &mut Vec<BlockCompletion>,
) -> Result<(Link, Port), Failure> {
    // The backend may still finish bios it started; they end within milliseconds on a loop
    // device over tmpfs, but blkback shows nothing userspace could wait on, and their responses
    // would land on the ring pages the engine is about to lay out again.
    std::thread::sleep(Duration::from_millis(300));
    let old_port = front.events.ports[0];
    let port = front
        .events
        .events
        .bind_unbound(0)
        .context("allocate a new event channel")?;
    front.events.ports = vec![port];
    store.set_state(fe, XenbusState::Initialising)?;
    if let Some(device) = bind {
        blkback_driver("bind", &device)?;
    }
    // blkback answers Initialising from Closed with InitWait ("prepare for reconnect"); it is
    // still Closed (or, unbound, Connected) when the wait starts, which expect_state would take
    // for giving up.
    wait_init_wait(store, be)?;
    let offer = features(store, be)?;
    let params = FrontendParams {
        layout,
        ..FrontendParams::negotiate(&config, &offer)
    };
    let link = connect(cx, store, fe, be, front, params, done)?;
    Ok((link, old_port))
}

/// Waits for the backend to come back to InitWait, whatever state it left.
fn wait_init_wait(store: &mut Store, be: &str) -> Outcome {
    let deadline = Instant::now() + STATE_TIMEOUT;
    loop {
        let state = store.state(be)?;
        if state == XenbusState::InitWait {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Failure(format!(
                "backend did not come back to InitWait within {} s; state {} ({state:?}); {}",
                STATE_TIMEOUT.as_secs(),
                state.as_u32(),
                store.diagnose(be)
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[allow(clippy::too_many_arguments)]
fn reconnect_body(
    cx: &mut Context,
    store: &mut Store,
    image: &LoopImage,
    fe: &str,
    be: &str,
    front: &mut VbdFront<'_, '_, '_>,
    link: Link,
    config: FrontendConfig,
    restart: Restart,
    vdev: u32,
) -> Outcome {
    cx.duration("connect", link.connect, "ms");
    ensure(
        link.params.ring_page_order == 0 && link.params.indirect_segments == 0,
        || format!("negotiated {:?}", link.params),
    )?;
    // Five writes (regions 0..5) and three reads (regions 5..8) of 252 KiB each, at 512-sector
    // strides.
    let region = |i: usize| 64 + 512 * i as u64;
    let sectors = (RECONNECT_BYTES / 512) as u64;
    let ops: Vec<OpSpec> = (0..SLOTS)
        .map(|i| {
            let write = i < 5;
            OpSpec {
                write,
                sector: region(i),
                layout: reconnect_layout(),
                data: if write {
                    sectors_content(SEED.wrapping_add(70 + i as u8), region(i), sectors)
                } else {
                    sectors_content(SEED, region(i), sectors)
                },
            }
        })
        .collect();
    let mut segments = Vec::new();
    let mut done = Vec::new();
    for (i, spec) in ops.iter().enumerate() {
        let (segs, op) = spec.stage(front, i * SLOT_PAGES, SLOT_PAGES)?;
        ensure(
            try_submit(front, i as u64 + 1, op, &segs, &mut done)?,
            || format!("the engine took only {i} operations"),
        )?;
        segments.push(segs);
    }
    let before = front.engine.counters();
    let on_ring = front.engine.in_flight();
    let outstanding = front.engine.outstanding();
    cx.log(format!(
        "submitted {outstanding} operations: {on_ring} ring requests in flight, {} issued",
        before.ring_requests
    ));
    cx.figure("on the ring", on_ring as f64, "");
    // 6 requests per operation; the rest waits in the engine's queue.
    ensure(
        done.is_empty() && outstanding == SLOTS && on_ring > 0 && on_ring < SLOTS * 6,
        || {
            format!(
                "before the disconnect: {outstanding} outstanding, {on_ring} on the ring, \
                 completions {done:?}"
            )
        },
    )?;

    // What blkback had already done (its answers are on the ring, unread).
    let stats = blkback_stats(vdev);
    let backend_done = stat(&stats, "rd_req") + stat(&stats, "wr_req");
    cx.log(format!("blkback before the disconnect: {stats:?}"));
    cx.figure("answered unread", backend_done as f64, "");

    // Going away, without ever polling the ring.
    let started = Instant::now();
    match restart {
        Restart::Frontend => {
            store.disconnect(fe, be, STATE_TIMEOUT)?;
        }
        Restart::Backend => {
            let device = backend_device(vdev);
            blkback_driver("unbind", &device)?;
            let link = format!("/sys/bus/xen-backend/devices/{device}/driver");
            ensure(std::fs::symlink_metadata(&link).is_err(), || {
                format!("{link} is still there after unbind")
            })?;
            let state = store.state(be)?;
            cx.log(format!(
                "unbound {device} from blkback; backend state now {state:?}"
            ));
            cx.text("backend state after unbind", &format!("{}", state.as_u32()));
        }
    }
    let grants = front.disconnect();
    let k = front.engine.counters();
    cx.log(format!(
        "engine disconnected: {} outstanding, resubmitted {}, grants outstanding {grants}, log \
         {:?}",
        front.engine.outstanding(),
        k.resubmitted,
        front.events.log
    ));
    ensure(
        front.engine.outstanding() == SLOTS
            && k.resubmitted.saturating_sub(before.resubmitted) == SLOTS as u64
            && grants == 0,
        || {
            format!(
                "after engine disconnect: {} outstanding, {} resubmitted, {grants} grants held",
                front.engine.outstanding(),
                k.resubmitted.saturating_sub(before.resubmitted)
            )
        },
    )?;
    // The frontend that closed comes back with everything on (a 16-page ring, indirect
    // segments, persistent grants) and the 32-bit ring layout: the queued operations are
    // re-split for the new limits and re-encoded after a new probe. The backend that went away
    // finds the frontend as it was.
    let (reconfig, layout) = match restart {
        Restart::Frontend => (FrontendConfig::default(), Layout::X86_32),
        Restart::Backend => (config, Layout::X86_64),
    };
    let bind = (restart == Restart::Backend).then(|| backend_device(vdev));
    let (relink, old_port) = reopen(cx, store, fe, be, front, reconfig, layout, bind, &mut done)?;
    let port = front.events.ports[0];
    let params = relink.params;
    let offer = features(store, be)?;
    let in_force = front.engine.params();
    cx.log(format!("after the reconnect: {in_force:?}"));
    if restart == Restart::Frontend {
        ensure(
            in_force.is_some_and(|p| {
                p.ring_page_order == offer.max_ring_page_order.min(4)
                    && p.persistent
                    && p.ring_page_order > 0
            }),
            || format!("after the reconnect the engine runs with {in_force:?}"),
        )?;
        cx.text("protocol then", layout.protocol());
        cx.text(
            "then",
            &format!("ring-page-order {}, persistent", params.ring_page_order),
        );
    }
    cx.duration("reconnect", started.elapsed(), "ms");
    cx.log(format!(
        "reconnected: event channel {old_port} → {port}, backend Connected {:.1} ms after \
         Initialised",
        relink.connect.as_secs_f64() * 1e3
    ));
    drain(front, &mut done, "the resubmitted operations")?;

    // Each exactly once, with everything transferred; reads hold the image's content.
    let mut count: BTreeMap<u64, Vec<BlockCompletion>> = BTreeMap::new();
    for c in &done {
        count.entry(c.tag.0).or_default().push(*c);
    }
    for (i, spec) in ops.iter().enumerate() {
        let tag = i as u64 + 1;
        let got = count.get(&tag).map(Vec::as_slice).unwrap_or(&[]);
        ensure(
            got.len() == 1
                && got[0].status == BlockStatus::Ok
                && got[0].transferred == spec.data.len() as u64,
            || format!("operation {tag} completed as {got:?}"),
        )?;
        if !spec.write {
            let back = gather(front, &segments[i]);
            ensure(back == spec.data, || {
                format!("read {tag}: {}", first_difference(&back, &spec.data))
            })?;
        }
    }
    ensure(done.len() == SLOTS, || {
        format!(
            "{} completions for {SLOTS} operations: {done:?}",
            done.len()
        )
    })?;
    let k = front.engine.counters();
    cx.log(format!("engine counters: {k:?}"));
    cx.figure("resubmitted", k.resubmitted as f64, "");
    cx.figure("ring requests", k.ring_requests as f64, "");
    ensure(k.errors == 0 && k.resubmitted > 0, || {
        format!("engine counters: {k:?}")
    })?;
    ensure(restart == Restart::Backend || k.persistent_hits > 0, || {
        format!("persistent grants in force after the reconnect, but no hits: {k:?}")
    })?;

    // What is on the disk: read back through the engine and in the image file.
    let reads: Vec<OpSpec> = ops
        .iter()
        .map(|spec| OpSpec {
            write: false,
            ..spec.clone()
        })
        .collect();
    let r = run_ops(front, &reads, SLOTS, SLOT_PAGES, 100)?;
    let mut verified = r.bytes;
    for spec in &ops {
        expect_in_image(image, spec.sector, &spec.data, "after the reconnect")?;
        verified += spec.data.len() as u64;
    }
    // And nothing else changed.
    let whole = image.read_file(0, (RECONNECT_SECTORS * 512) as usize)?;
    let mut want = sectors_content(SEED, 0, RECONNECT_SECTORS);
    for spec in ops.iter().filter(|s| s.write) {
        let at = spec.sector as usize * 512;
        want[at..at + spec.data.len()].copy_from_slice(&spec.data);
    }
    ensure(whole == want, || {
        format!("the whole image: {}", first_difference(&whole, &want))
    })?;
    verified += whole.len() as u64;
    cx.figure("verified", verified as f64 / 1024.0, "KiB");
    Ok(())
}

// ---- vbd-soak ----

/// 8 MiB.
const SOAK_SECTORS: u64 = 16384;
/// The RNG's seed.
const SOAK_SEED: u64 = 0x5eed_b10c;

/// SplitMix64: small, seeded, good enough to pick sizes and offsets.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    pub(crate) fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// A random number of sectors: mostly small, some large (up to 256 KiB).
fn soak_sectors(rng: &mut Rng) -> u64 {
    match rng.range(0, 9) {
        0..=5 => rng.range(1, 16),
        6..=8 => rng.range(17, 128),
        _ => rng.range(129, 512),
    }
}

/// A random buffer layout for `bytes` (whole sectors) in at most [`SLOT_PAGES`] pages: whole
/// pages; sector-aligned pieces; or byte-granular pieces at random offsets (all but whole pages
/// bounced).
fn soak_layout(rng: &mut Rng, bytes: usize) -> Vec<(usize, u16, u16)> {
    let style = if bytes > 224 * 1024 {
        0
    } else {
        rng.range(0, 2)
    };
    let mut out = Vec::new();
    let mut left = bytes;
    let mut page = 0;
    let mut piece = |out: &mut Vec<(usize, u16, u16)>, off: usize, len: usize| {
        out.push((page, off as u16, len as u16));
        page += 1;
        len
    };
    match style {
        0 => {
            while left > 0 {
                left -= piece(&mut out, 0, left.min(4096));
            }
        }
        1 => {
            let off = 512 * rng.range(0, 7) as usize;
            left -= piece(&mut out, off, left.min(4096 - off));
            for _ in 0..4 {
                if left == 0 {
                    break;
                }
                let len = 512 * rng.range(1, 8) as usize;
                left -= piece(&mut out, 0, left.min(len));
            }
            while left > 0 {
                left -= piece(&mut out, 0, left.min(4096));
            }
        }
        _ => {
            // A random head, whole pages, then up to three random pieces.
            let off = rng.range(0, 4095) as usize;
            let len = rng.range(1, (4096 - off).min(left) as u64) as usize;
            left -= piece(&mut out, off, len);
            while left > 3 * 4096 {
                left -= piece(&mut out, 0, 4096);
            }
            for k in 0..3 {
                if left == 0 {
                    break;
                }
                let off = rng.range(0, 4095) as usize;
                let room = 4096 - off;
                let len = if k == 2 || left <= room {
                    left.min(room)
                } else {
                    rng.range(1, room as u64) as usize
                };
                left -= piece(&mut out, off, len);
            }
            while left > 0 {
                left -= piece(&mut out, 0, left.min(4096));
            }
        }
    }
    out
}

/// A buffer layout: `(page, offset, length)` pieces.
type Pieces = Vec<(usize, u16, u16)>;

/// An operation of the soak not yet submitted: the operation, its buffer's layout, its data.
type Planned = (BlockOp, Pieces, Vec<u8>);

/// An operation of the soak in flight.
#[derive(Debug)]
struct Flying {
    op: BlockOp,
    slot: Option<usize>,
    segments: Vec<Segment>,
    data: Vec<u8>,
}

/// What a soak scenario varies.
#[derive(Clone, Copy, Debug)]
struct SoakKind {
    vdev: u32,
    dev: &'static str,
    /// Persistent grants offered: every piece is copied through a kept pool page.
    persistent: bool,
    /// How long operations are started for.
    time: Duration,
    /// Close and reconnect the frontend this often, with operations in flight.
    reconnect_every: Option<Duration>,
    /// The most queues to use (blkback offers one per dom0 vCPU).
    queues: u32,
    /// The loop device's logical block size, if not 512.
    sector_size: Option<u32>,
}

fn run_soak(cx: &mut Context, kind: SoakKind) -> Outcome {
    modprobe("xen-blkback")?;
    let image = LoopImage::create(cx.name(), SEED, SOAK_SECTORS, kind.sector_size)?;
    on_device(cx, kind.vdev, image, |cx, store, image, fe, be| {
        let setup = Setup {
            vdev: kind.vdev,
            dev: kind.dev,
            mode: "w",
            device_type: "disk",
            // Without persistent grants unaligned pieces bounce and aligned ones are granted
            // directly.
            config: FrontendConfig {
                persistent: kind.persistent,
                max_queues: kind.queues,
                ..FrontendConfig::default()
            },
            data_pages: SLOTS * SLOT_PAGES,
        };
        with_session(
            cx,
            store,
            image,
            fe,
            be,
            setup,
            Box::new(move |cx, store, front, link| {
                soak_body(cx, store, image, (fe, be), front, link, kind)
            }),
        )
    })
}

fn soak_body(
    cx: &mut Context,
    store: &mut Store,
    image: &LoopImage,
    (fe, be): (&str, &str),
    front: &mut VbdFront<'_, '_, '_>,
    link: Link,
    kind: SoakKind,
) -> Outcome {
    cx.duration("connect", link.connect, "ms");
    let mut rng = Rng(SOAK_SEED);
    let mut model = sectors_content(SEED, 0, SOAK_SECTORS);
    let mut free: Vec<usize> = (0..SLOTS).rev().collect();
    let mut flying: BTreeMap<u64, Flying> = BTreeMap::new();
    let mut done = Vec::new();
    let (mut reads, mut writes, mut flushes, mut bytes) = (0u64, 0u64, 0u64, 0u64);
    let (mut fuas, mut discards) = (0u64, 0u64);
    // Discards only when blkback offers them (else the engine refuses them at once).
    let discard = link.features.discard.is_some();
    // Sectors per logical block: operations are whole blocks.
    let align = u64::from(link.info.logical_block_size / 512).max(1);
    ensure(
        link.info.logical_block_size == kind.sector_size.unwrap_or(512),
        || format!("blkback's sector-size is {}", link.info.logical_block_size),
    )?;
    let mut max_in_flight = 0usize;
    let mut tag = 0u64;
    let mut next: Option<Planned> = None;
    let session_port = front.events.ports[0];
    let (mut reconnects, mut requeued) = (0u64, 0u64);
    let started = Instant::now();
    let mut last_reconnect = started;
    loop {
        let starting = started.elapsed() < kind.time;
        // Start as many as the engine takes.
        if starting {
            loop {
                if next.is_none() {
                    next = soak_op(&mut rng, &flying, discard, align);
                }
                let Some((op, layout, payload)) = next.take() else {
                    break; // every pick overlapped something in flight: wait for completions
                };
                let data = matches!(op, BlockOp::Read { .. } | BlockOp::Write { .. });
                let write = matches!(op, BlockOp::Write { .. });
                let slot = if data {
                    match free.last() {
                        Some(&s) => Some(s),
                        None => {
                            next = Some((op, layout, payload));
                            break;
                        }
                    }
                } else {
                    None
                };
                let segments = match slot {
                    Some(s) => slot_segments(front, s * SLOT_PAGES, SLOT_PAGES, &layout)?,
                    None => Vec::new(),
                };
                if data {
                    scatter(
                        front,
                        &segments,
                        &if write {
                            payload.clone()
                        } else {
                            vec![0xa5; payload.len()]
                        },
                    );
                }
                tag += 1;
                if !try_submit(front, tag, op, &segments, &mut done)? {
                    next = Some((op, layout, payload));
                    break;
                }
                if slot.is_some() {
                    free.pop();
                }
                flying.insert(
                    tag,
                    Flying {
                        op,
                        slot,
                        segments,
                        data: payload,
                    },
                );
                max_in_flight = max_in_flight.max(flying.len());
            }
        }
        if !starting && flying.is_empty() {
            break;
        }
        let due = kind
            .reconnect_every
            .is_some_and(|every| last_reconnect.elapsed() >= every);
        if starting && due && !flying.is_empty() {
            // Close and come back with whatever is queued or on the ring (some of it answered
            // and unread): it must all complete once, after the reconnect.
            let outstanding = front.engine.outstanding();
            store.disconnect(fe, be, STATE_TIMEOUT)?;
            let held = front.disconnect();
            ensure(held == 0, || {
                format!("{held} grants held after a disconnect with {outstanding} operations")
            })?;
            let config = FrontendConfig {
                persistent: kind.persistent,
                ..FrontendConfig::default()
            };
            let (_, old) = reopen(
                cx,
                store,
                fe,
                be,
                front,
                config,
                Layout::X86_64,
                None,
                &mut done,
            )?;
            if old != session_port {
                front
                    .events
                    .events
                    .unbind(old)
                    .context("unbind the previous event channel")?;
            }
            reconnects += 1;
            requeued += outstanding as u64;
            last_reconnect = Instant::now();
        }
        poll(front, &mut done)?;
        if done.is_empty() {
            wait(front, "the soak's operations")?;
            continue;
        }
        for c in done.drain(..) {
            let f = flying.remove(&c.tag.0).ok_or_else(|| {
                Failure(format!(
                    "a completion for tag {} not in flight: {c:?}",
                    c.tag.0
                ))
            })?;
            let len = f.data.len() as u64;
            ensure(c.status == BlockStatus::Ok && c.transferred == len, || {
                format!("{:?} ({len} bytes) completed as {c:?}", f.op)
            })?;
            match f.op {
                BlockOp::Write { sector, fua, .. } => {
                    let at = sector as usize * 512;
                    model[at..at + f.data.len()].copy_from_slice(&f.data);
                    writes += 1;
                    fuas += u64::from(fua);
                    bytes += len;
                }
                BlockOp::Discard {
                    sector, sectors, ..
                } => {
                    // A loop device over tmpfs punches whole pages: the range reads as zeros.
                    let at = sector as usize * 512;
                    model[at..at + sectors as usize * 512].fill(0);
                    discards += 1;
                }
                BlockOp::Read { sector, .. } => {
                    let at = sector as usize * 512;
                    let got = gather(front, &f.segments);
                    let want = &model[at..at + f.data.len()];
                    ensure(got == want, || {
                        format!(
                            "read of {len} bytes at sector {sector} (pieces {:?}): {}",
                            f.segments,
                            first_difference(&got, want)
                        )
                    })?;
                    reads += 1;
                    bytes += len;
                }
                BlockOp::Flush => flushes += 1,
            }
            if let Some(s) = f.slot {
                free.push(s);
            }
        }
    }
    let took = started.elapsed();
    let k = front.engine.counters();
    cx.log(format!("engine counters: {k:?}"));
    let whole = image.read_file(0, model.len())?;
    ensure(whole == model, || {
        format!(
            "the image against the model: {}",
            first_difference(&whole, &model)
        )
    })?;
    let ops = reads + writes + flushes + discards;
    cx.figure("operations", ops as f64, "");
    cx.figure("reads", reads as f64, "");
    cx.figure("writes", writes as f64, "");
    cx.figure("fua", fuas as f64, "");
    cx.figure("discards", discards as f64, "");
    cx.figure("flushes", flushes as f64, "");
    cx.figure("moved", bytes as f64 / (1024.0 * 1024.0), "MiB");
    cx.figure("ops/s", ops as f64 / took.as_secs_f64(), "");
    cx.figure("max in flight", max_in_flight as f64, "");
    if kind.reconnect_every.is_some() {
        cx.figure("reconnects", reconnects as f64, "");
        cx.figure("requeued", requeued as f64, "");
        ensure(reconnects > 0 && k.resubmitted == requeued, || {
            format!("{reconnects} reconnects, {requeued} operations requeued: {k:?}")
        })?;
    }
    cx.figure("bounced segments", k.bounced_segments as f64, "");
    cx.figure("indirect requests", k.indirect_requests as f64, "");
    report_queues(cx, &k, front.engine.queues())?;
    cx.figure(
        "verified",
        (bytes + model.len() as u64) as f64 / (1024.0 * 1024.0),
        "MiB",
    );
    ensure(
        k.errors == 0
            && reads > 0
            && writes > 0
            && fuas > 0
            && flushes > 0
            && (discards > 0 || !discard),
        || {
            format!(
                "{reads} reads, {writes} writes ({fuas} FUA), {discards} discards, {flushes} \
                 flushes; engine counters {k:?}"
            )
        },
    )?;
    let persistent = front.engine.params().is_some_and(|p| p.persistent);
    if kind.persistent {
        cx.figure("persistent hits", k.persistent_hits as f64, "");
        // Every piece is copied through the 8 pool pages: nothing is bounced in the
        // non-persistent sense, and no request has room for more than 8 segments.
        ensure(
            persistent && k.persistent_hits > 0 && k.bounced_segments == 0,
            || format!("persistent grants in force: {persistent}; engine counters {k:?}"),
        )?;
    } else {
        ensure(!persistent && k.bounced_segments > 0, || {
            format!("no bounced segments: {k:?}")
        })?;
        ensure(
            link.params.indirect_segments == 0 || k.indirect_requests > 0,
            || "indirect segments negotiated but none used".into(),
        )?;
    }
    Ok(())
}

/// The next random operation, or `None` when the ranges picked overlap operations in flight
/// (reads, writes and discards never overlap one in flight, so the model says what each read
/// returns): 45 % writes (one in eight FUA), 43 % reads, 6 % discards of 4 KiB-aligned ranges
/// (when `discard`; reads otherwise), 6 % flushes; whole blocks of `align` sectors.
fn soak_op(
    rng: &mut Rng,
    flying: &BTreeMap<u64, Flying>,
    discard: bool,
    align: u64,
) -> Option<Planned> {
    let kind = rng.range(0, 99);
    if kind >= 94 {
        return Some((BlockOp::Flush, Vec::new(), Vec::new()));
    }
    for _ in 0..4 {
        let (sector, sectors) = if kind >= 88 && discard {
            let sectors = 8 * rng.range(1, 64);
            (8 * rng.range(0, (SOAK_SECTORS - sectors) / 8), sectors)
        } else {
            let sectors = soak_sectors(rng).div_ceil(align) * align;
            (
                align * rng.range(0, (SOAK_SECTORS - sectors) / align),
                sectors,
            )
        };
        let overlaps = flying
            .values()
            .any(|f| op_range(&f.op).is_some_and(|(s, n)| s < sector + sectors && sector < s + n));
        if overlaps {
            continue;
        }
        if kind >= 88 && discard {
            let op = BlockOp::Discard {
                sector,
                sectors,
                secure: false,
            };
            return Some((op, Vec::new(), Vec::new()));
        }
        let bytes = sectors as usize * 512;
        let layout = soak_layout(rng, bytes);
        let mut data = vec![0u8; bytes];
        let op = if kind < 45 {
            rng.fill(&mut data);
            BlockOp::Write {
                sector,
                sectors,
                fua: rng.range(0, 7) == 0,
            }
        } else {
            BlockOp::Read { sector, sectors }
        };
        return Some((op, layout, data));
    }
    None
}

/// The sectors an operation touches.
fn op_range(op: &BlockOp) -> Option<(u64, u64)> {
    match *op {
        BlockOp::Read { sector, sectors }
        | BlockOp::Write {
            sector, sectors, ..
        }
        | BlockOp::Discard {
            sector, sectors, ..
        } => Some((sector, sectors)),
        BlockOp::Flush => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::vbd::{Engine, BOUNCE_PAGES, INDIRECT_PAGES};
    use xen_abi::types::{DomId, GrantRef};
    use xenpci_core::grant_table::GrantError;
    use xenvbd_core::blkif::{Ended, EngineConfig, Events, Grants, Io, SubmitError};
    use xenvbd_core::{GuestMemory, Tag};

    struct NoGrants;
    impl Grants for NoGrants {
        fn grant(&mut self, _: DomId, _: u64, _: bool) -> Result<GrantRef, GrantError> {
            Ok(1)
        }
        fn end(&mut self, _: GrantRef) -> Result<Ended, GrantError> {
            Ok(Ended::Revoked)
        }
    }
    struct NoEvents;
    impl Events for NoEvents {
        fn notify(&mut self, _queue: usize) {}
    }
    struct NoMemory;
    impl GuestMemory for NoMemory {
        fn read(&self, _: u64, _: usize, _: &mut [u8]) {}
        fn write(&mut self, _: u64, _: usize, _: &[u8]) {}
    }

    /// Every layout the soak makes fits a slot and is accepted by the engine (which refuses
    /// lists needing more pieces than a job holds).
    #[test]
    fn soak_layouts_fit_the_engine() {
        let mut rng = Rng(SOAK_SEED);
        let config = EngineConfig::new(0, 1);
        let bounce = [0x1000u64; BOUNCE_PAGES];
        let indirect = [0x2000u64; INDIRECT_PAGES];
        for round in 0..400 {
            let mut engine: Box<Engine> =
                crate::platform::vbd::boxed_engine(config, &bounce, &indirect);
            let (mut g, mut e, mut m) = (NoGrants, NoEvents, NoMemory);
            let mut io = Io::new(&mut g, &mut e, &mut m);
            for i in 0..8 {
                let sectors = if i == 0 { 512 } else { soak_sectors(&mut rng) };
                let bytes = sectors as usize * 512;
                let layout = soak_layout(&mut rng, bytes);
                assert_eq!(
                    layout.iter().map(|l| usize::from(l.2)).sum::<usize>(),
                    bytes
                );
                assert!(layout.len() <= SLOT_PAGES);
                let segs: Vec<Segment> = layout
                    .iter()
                    .map(|&(p, o, l)| {
                        assert!(l > 0 && usize::from(o) + usize::from(l) <= 4096);
                        Segment {
                            frame: 0x10_0000 + p as u64,
                            offset: o,
                            length: l,
                        }
                    })
                    .collect();
                let op = BlockOp::Write {
                    sector: 0,
                    sectors,
                    fua: false,
                };
                let r = engine.submit(Tag(i), op, &segs, &mut io, |_| {});
                assert!(
                    r.is_ok() || r == Err(SubmitError::QueueFull),
                    "round {round}: {r:?} for {layout:?}"
                );
            }
        }
    }

    #[test]
    fn reconnect_layout_is_its_size() {
        let l = reconnect_layout();
        assert_eq!(
            l.iter().map(|l| usize::from(l.2)).sum::<usize>(),
            RECONNECT_BYTES
        );
        assert!(l.len() <= SLOT_PAGES);
    }
}
