//! `vbd-core`: xenvbd-core's blkif engine and SCSI layer against the real xen-blkback.
//!
//! The toolstack part is blk-smoke's; the frontend is the driver's portable core on the lab
//! platform ([`crate::platform::vbd`]): negotiation from the backend's nodes, the ring and every
//! I/O buffer in a gntalloc-backed [`PagePool`], the layout probe, then SCSI commands through
//! `Disk::submit` and the engine.
//!
//! The variants run the same session with one thing changed (`Variant`): a loop device with
//! 4096-byte logical blocks (`vbd-4k`), a read-only backend (`vbd-readonly`), a frontend
//! that announces the 32-bit ring layout (`vbd-x86-32`), and one ring per queue the backend
//! offers (`vbd-multiqueue`).

use std::time::{Duration, Instant};

use xen_abi::xenbus::XenbusState;
use xenvbd_core::adapter::ScsiAdapter;
use xenvbd_core::blkif::{
    BackendFeatures, Counters, EngineState, FeatureError, FrontendConfig, FrontendParams, Layout,
    LogEvent,
};
use xenvbd_core::scsi::sense::KEY_DATA_PROTECT;
use xenvbd_core::scsi::{opcode, Disk, DiskConfig, Identity};
use xenvbd_core::{
    DataDirection, GuestMemory, ScsiCompletion, ScsiRequest, ScsiStatus, Segment, Tag,
};

use super::toolstack::{
    device_dirs, modprobe, remove_device, sectors_content, write_vbd_nodes, LoopImage, Store,
};
use crate::platform::evtchn::{EventChannels, Port};
use crate::platform::gntalloc::Gntalloc;
use crate::platform::pool::PagePool;
use crate::platform::vbd::{EvtchnEvents, VbdFront, DATA_START, QUEUES};
use crate::platform::PAGE_SIZE;
use crate::scenario::{ensure, Context, Failure, Outcome, ResultExt, Scenario};

/// The scenario.
pub const SCENARIO: Scenario = Scenario {
    name: "vbd-core",
    description: "xenvbd-core's blkif engine and SCSI layer (ring and buffers in a gntalloc \
                  page pool) against the real xen-blkback: negotiate, connect, layout probe, \
                  INQUIRY, READ CAPACITY(16), scattered WRITE(10) with unaligned segments + \
                  READ(10) back, a 64 KiB WRITE/READ, SYNCHRONIZE CACHE, disconnect",
    default: true,
    timeout: Duration::from_secs(120),
    run: |cx| run(cx, Variant::Core),
};

/// `vbd-4k`.
pub const FOUR_K: Scenario = Scenario {
    name: "vbd-4k",
    description: "vbd-core over a loop device with 4096-byte logical blocks: blkback's \
                  sector-size 4096, READ CAPACITY(16) in 4 KiB blocks, WRITE/READ in 4 KiB \
                  blocks with sub-page segments bounced",
    default: true,
    timeout: Duration::from_secs(120),
    run: |cx| run(cx, Variant::FourK),
};

/// `vbd-readonly`.
pub const READ_ONLY: Scenario = Scenario {
    name: "vbd-readonly",
    description: "vbd-core against a backend with mode = r: MODE SENSE(6) write-protected, \
                  WRITE(10) refused with DATA PROTECT before the ring, READ(10) of the image",
    default: true,
    timeout: Duration::from_secs(120),
    run: |cx| run(cx, Variant::ReadOnly),
};

/// `vbd-x86-32`.
pub const X86_32: Scenario = Scenario {
    name: "vbd-x86-32",
    description: "vbd-core with protocol = x86_32-abi published while the engine starts on \
                  the x86_64 layout: the probe must switch to x86_32, then the same I/O",
    default: true,
    timeout: Duration::from_secs(120),
    run: |cx| run(cx, Variant::X86_32),
};

/// `vbd-multiqueue`.
pub const MULTI_QUEUE: Scenario = Scenario {
    name: "vbd-multiqueue",
    description: "vbd-core with every queue blkback offers (one per dom0 vCPU): a ring and an \
                  event channel per queue under queue-N/, the probe on queue 0, then the same \
                  I/O spread over the rings (each ring must carry requests)",
    default: true,
    timeout: Duration::from_secs(120),
    run: |cx| run(cx, Variant::MultiQueue),
};

/// What a scenario of this file changes in the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    /// `vbd-core` itself.
    Core,
    /// 4096-byte logical blocks.
    FourK,
    /// `mode = r`.
    ReadOnly,
    /// `protocol = x86_32-abi`.
    X86_32,
    /// `multi-queue-num-queues` = what the backend offers.
    MultiQueue,
}

impl Variant {
    /// The virtual device: xvdc.. (blk-smoke uses xvda, linux-blkfront xvdb). Each variant has
    /// its own, so that blkback is never handed a device it is still tearing down.
    fn vdev(self) -> (u32, &'static str) {
        match self {
            Variant::Core => (51744, "xvdc"),
            Variant::FourK => (51760, "xvdd"),
            Variant::ReadOnly => (51776, "xvde"),
            Variant::X86_32 => (51792, "xvdf"),
            Variant::MultiQueue => (51904, "xvdm"),
        }
    }

    /// The loop device's logical block size, if not 512.
    fn sector_size(self) -> Option<u32> {
        (self == Variant::FourK).then_some(4096)
    }

    /// The backend's `mode`.
    fn mode(self) -> &'static str {
        if self == Variant::ReadOnly {
            "r"
        } else {
            "w"
        }
    }

    /// The ring layout the frontend announces in `protocol`.
    fn published_layout(self) -> Layout {
        if self == Variant::X86_32 {
            Layout::X86_32
        } else {
            Layout::X86_64
        }
    }
}
/// The image's content seed.
const SEED: u8 = 3;
/// 1 MiB.
const IMAGE_SECTORS: u64 = 2048;
/// Pages for data buffers after the engine's own.
const DATA_PAGES: usize = 20;
/// Where the scattered write goes, in 512-byte sectors (a multiple of 8: 4 KiB-aligned too).
const SCATTER_SECTOR: u64 = 1000;
/// Where the 64 KiB write goes, in 512-byte sectors.
const BIG_SECTOR: u64 = 1200;
/// Pages of the 64 KiB write.
const BIG_PAGES: usize = 16;
/// How long the backend may take to change state: blkback's hotplug script runs under full
/// emulation and took up to 9.8 s on a loaded 2-core machine, so 10 s was too tight.
const STATE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one request may take.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

fn run(cx: &mut Context, variant: Variant) -> Outcome {
    modprobe("xen-blkback")?;
    let mut store = Store::open()?;
    let (fe, be) = device_dirs("vbd", variant.vdev().0);
    remove_device(&mut store, &fe, &be)?;
    let image = LoopImage::create(cx.name(), SEED, IMAGE_SECTORS, variant.sector_size())?;
    let outcome = session(cx, variant, &mut store, &image, &fe, &be);
    let removed = remove_device(&mut store, &fe, &be);
    outcome.and(removed)
}

/// Reads the backend's nodes into [`BackendFeatures`].
pub fn features(store: &mut Store, be: &str) -> Result<BackendFeatures, Failure> {
    let mut failed = None;
    let parsed = BackendFeatures::parse(|node, buf| match store.read(&format!("{be}/{node}")) {
        Ok(Some(value)) => {
            let bytes = value.as_bytes();
            let n = bytes.len().min(buf.len());
            buf[..n].copy_from_slice(&bytes[..n]);
            Ok(Some(bytes.len()))
        }
        Ok(None) => Ok(None),
        Err(e) => {
            failed.get_or_insert(e);
            Ok(None)
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    parsed.map_err(|e: FeatureError| Failure(format!("backend features: {e:?}")))
}

/// Fails unless the engine's disconnect left no grant in use (`outstanding` from
/// [`Front::disconnect`](crate::platform::vbd::Front::disconnect)).
pub(crate) fn all_grants_back(outstanding: u64) -> Outcome {
    ensure(outstanding == 0, || {
        format!("{outstanding} grants still in use after disconnect")
    })
}

/// One page-sized-or-less piece of a data buffer.
pub(crate) fn seg(frame: u64, offset: u16, length: u16) -> Segment {
    Segment {
        frame,
        offset,
        length,
    }
}

pub(crate) fn cdb10(op: u8, lba: u64, blocks: u16) -> [u8; 10] {
    let lba = (lba as u32).to_be_bytes();
    let n = blocks.to_be_bytes();
    [op, 0, lba[0], lba[1], lba[2], lba[3], 0, n[0], n[1], 0]
}

pub(crate) fn total(segments: &[Segment]) -> u32 {
    segments.iter().map(|s| u32::from(s.length)).sum()
}

pub(crate) fn scatter(front: &mut VbdFront<'_, '_, '_>, segments: &[Segment], data: &[u8]) {
    let mut at = 0;
    for s in segments {
        let len = usize::from(s.length);
        front
            .memory
            .write(s.frame, usize::from(s.offset), &data[at..at + len]);
        at += len;
    }
}

pub(crate) fn gather(front: &VbdFront<'_, '_, '_>, segments: &[Segment]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in segments {
        let mut buf = vec![0u8; usize::from(s.length)];
        front.memory.read(s.frame, usize::from(s.offset), &mut buf);
        out.extend_from_slice(&buf);
    }
    out
}

/// WRITE(10) of `data` (copied into `segments` first) at block `lba`, `blocks` long; requires
/// GOOD.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write10(
    front: &mut VbdFront<'_, '_, '_>,
    disk: &mut Disk,
    tag: u64,
    lba: u64,
    blocks: u16,
    segments: &[Segment],
    data: &[u8],
    what: &str,
) -> Outcome {
    scatter(front, segments, data);
    let cdb = cdb10(opcode::WRITE_10, lba, blocks);
    let c = command(front, disk, tag, &cdb, DataDirection::ToDevice, segments)?;
    good(&c, what)
}

/// READ(10) of `blocks` at block `lba` into `segments` (first filled with a byte the read must
/// replace); requires GOOD and exactly the bytes `want`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn read10_expect(
    front: &mut VbdFront<'_, '_, '_>,
    disk: &mut Disk,
    tag: u64,
    lba: u64,
    blocks: u16,
    segments: &[Segment],
    want: &[u8],
    what: &str,
) -> Outcome {
    scatter(front, segments, &vec![0xa5; want.len()]);
    let cdb = cdb10(opcode::READ_10, lba, blocks);
    let c = command(front, disk, tag, &cdb, DataDirection::FromDevice, segments)?;
    good(&c, what)?;
    let got = gather(front, segments);
    ensure(got == want, || {
        format!("{what}: {}", first_difference(&got, want))
    })
}

/// Fails unless the image file holds `want` at 512-byte sector `sector`; `what` names the check.
pub(crate) fn expect_in_image(image: &LoopImage, sector: u64, want: &[u8], what: &str) -> Outcome {
    let in_file = image.read_file(sector * 512, want.len())?;
    ensure(in_file == want, || {
        format!(
            "{what}: the image at sector {sector} differs: {}",
            first_difference(&in_file, want)
        )
    })
}

pub(crate) fn first_difference(got: &[u8], want: &[u8]) -> String {
    match got.iter().zip(want).position(|(a, b)| a != b) {
        Some(at) => format!(
            "first difference at byte {at}: {:#04x}, expected {:#04x}",
            got[at], want[at]
        ),
        None => format!("{} bytes, expected {}", got.len(), want.len()),
    }
}

/// Polls the engine until `done` holds, waiting for the backend's events in between.
pub(crate) fn poll_until(
    front: &mut VbdFront<'_, '_, '_>,
    completions: &mut Vec<xenvbd_core::blkif::BlockCompletion>,
    what: &str,
    mut done: impl FnMut(&VbdFront<'_, '_, '_>, &[xenvbd_core::blkif::BlockCompletion]) -> bool,
) -> Outcome {
    loop {
        front
            .with_io(|engine, io| engine.poll(io, |c| completions.push(c)))
            .map_err(|e| Failure(format!("engine stopped during {what}: {e}")))?;
        if let Some(e) = front.events.notify_error.take() {
            return Err(Failure(format!("notify the backend: {e}")));
        }
        if done(front, completions) {
            return Ok(());
        }
        wait_queue_events(&mut front.events, what)?;
    }
}

/// Waits for an event on any of the engine's queues and unmasks the ports that signalled.
pub(crate) fn wait_queue_events(events: &mut EvtchnEvents<'_>, what: &str) -> Outcome {
    let signalled = events
        .events
        .wait_any(IO_TIMEOUT)
        .context(format!("wait for {what}"))?;
    if signalled.is_empty() {
        return Err(Failure(format!(
            "no event for {what} within {} s",
            IO_TIMEOUT.as_secs_f64()
        )));
    }
    for port in signalled {
        events
            .events
            .unmask(port)
            .context("unmask the event channel")?;
    }
    Ok(())
}

/// Reports the ring requests each queue carried (when there are several) and fails unless
/// every queue carried some.
pub(crate) fn report_queues(cx: &mut Context, k: &Counters, queues: usize) -> Outcome {
    let per_queue = &k.queue_requests[..queues.min(k.queue_requests.len())];
    cx.log(format!("ring requests per queue: {per_queue:?}"));
    if queues > 1 {
        let text: Vec<String> = per_queue.iter().map(u64::to_string).collect();
        cx.text("per queue", &text.join("/"));
    }
    ensure(per_queue.iter().all(|&n| n > 0), || {
        format!("a queue carried no request: {per_queue:?}")
    })
}

/// Publishes the frontend's nodes under `fe` — each queue's ring references (`refs[q]`) and
/// event channel (`ports[q]`), and the rest of `params` (`protocol` from `params.layout`) — then
/// Initialised, and waits for the backend's Connected; returns how long that took.
pub(crate) fn publish_and_connect(
    store: &mut Store,
    fe: &str,
    be: &str,
    params: &FrontendParams,
    refs: &[Vec<u32>],
    ports: &[Port],
) -> Result<Duration, Failure> {
    let refs: Vec<&[u32]> = refs.iter().map(Vec::as_slice).collect();
    let mut nodes = Vec::new();
    params
        .write_nodes(&refs, ports, |k, v| {
            nodes.push((format!("{fe}/{k}"), v.to_owned()));
            Ok::<(), ()>(())
        })
        .map_err(|e| Failure(format!("frontend nodes: {e:?}")))?;
    nodes.push((
        format!("{fe}/state"),
        XenbusState::Initialised.as_str().to_owned(),
    ));
    store.write_all(&nodes)?;
    store.expect_state("backend", be, XenbusState::Connected, STATE_TIMEOUT)
}

/// Binds `count` unbound event channels for dom0's backend, one per queue; none when one fails.
pub(crate) fn bind_queue_ports(
    events: &mut EventChannels,
    count: u32,
) -> Result<Vec<Port>, Failure> {
    let mut ports = Vec::new();
    for _ in 0..count {
        match events.bind_unbound(0) {
            Ok(port) => ports.push(port),
            Err(e) => {
                for port in ports {
                    let _ = events.unbind(port);
                }
                return Err(Failure(format!("allocate an event channel: {e}")));
            }
        }
    }
    Ok(ports)
}

/// Runs one SCSI command through the disk and, when it needs the backend, the engine: through
/// xenvbd-core's [`ScsiAdapter`], as the StorPort shell will.
pub(crate) fn command(
    front: &mut VbdFront<'_, '_, '_>,
    disk: &mut Disk,
    tag: u64,
    cdb: &[u8],
    direction: DataDirection,
    segments: &[Segment],
) -> Result<ScsiCompletion, Failure> {
    let req = ScsiRequest {
        tag: Tag(tag),
        cdb,
        direction,
        segments,
        transfer_length: total(segments),
        lun: 0,
    };
    let mut adapter = ScsiAdapter::<1>::new();
    let mut done: Vec<ScsiCompletion> = Vec::new();
    front.with_io(|engine, io| adapter.submit(disk, engine, &req, io, |c| done.push(c)));
    while done.is_empty() {
        front
            .with_io(|engine, io| adapter.poll(engine, io, |c| done.push(c)))
            .map_err(|e| Failure(format!("engine stopped during {:#04x}: {e}", cdb[0])))?;
        if let Some(e) = front.events.notify_error.take() {
            return Err(Failure(format!("notify the backend: {e}")));
        }
        if done.is_empty() {
            wait_queue_events(&mut front.events, &format!("command {:#04x}", cdb[0]))?;
        }
    }
    ensure(done.len() == 1 && done[0].tag == Tag(tag), || {
        format!("completions for command {:#04x}: {done:?}", cdb[0])
    })?;
    Ok(done[0])
}

/// READ CAPACITY(16) with an allocation length of 32.
pub(crate) const READ_CAPACITY_16: [u8; 16] = [
    opcode::SERVICE_ACTION_IN_16,
    0x10,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    32,
    0,
    0,
];

/// Runs a command that returns `len` bytes into data page `frame` (at offset 0), requires GOOD
/// and returns the bytes.
pub(crate) fn data_in(
    front: &mut VbdFront<'_, '_, '_>,
    disk: &mut Disk,
    tag: u64,
    frame: u64,
    cdb: &[u8],
    len: u16,
    what: &str,
) -> Result<Vec<u8>, Failure> {
    let buf = [seg(frame, 0, len)];
    let c = command(front, disk, tag, cdb, DataDirection::FromDevice, &buf)?;
    good(&c, what)?;
    Ok(gather(front, &buf))
}

pub(crate) fn good(c: &ScsiCompletion, what: &str) -> Outcome {
    ensure(c.status == ScsiStatus::Good, || {
        format!(
            "{what}: status {:?}, sense key {:#x} asc {:#x} ascq {:#x}",
            c.status, c.sense.key, c.sense.asc, c.sense.ascq
        )
    })
}

fn session(
    cx: &mut Context,
    variant: Variant,
    store: &mut Store,
    image: &LoopImage,
    fe: &str,
    be: &str,
) -> Outcome {
    // The toolstack's part, as blk-smoke does it.
    let (vdev, dev) = variant.vdev();
    write_vbd_nodes(store, image, fe, be, vdev, dev, variant.mode())?;
    store.expect_state("backend", be, XenbusState::InitWait, STATE_TIMEOUT)?;

    // Negotiate. Persistent grants stay off so that whole-page segments are granted directly
    // and only the others bounce.
    let offer = features(store, be)?;
    let config = FrontendConfig {
        persistent: false,
        max_queues: if variant == Variant::MultiQueue {
            QUEUES as u32
        } else {
            1
        },
        ..FrontendConfig::default()
    };
    let params = FrontendParams::negotiate(&config, &offer);
    cx.log(format!(
        "backend offers max-ring-page-order {}, queues {}, indirect {}, persistent {}, flush {}; \
         chosen: ring-page-order {}, indirect segments {}",
        offer.max_ring_page_order,
        offer.max_queues,
        offer.max_indirect_segments,
        offer.persistent,
        offer.flush_cache,
        params.ring_page_order,
        params.indirect_segments
    ));

    // The pool: ring, bounce, indirect and data pages, granted to the backend once.
    let gnt = Gntalloc::open().context("open gntalloc")?;
    let pool =
        PagePool::new(&gnt, 0, (DATA_START + DATA_PAGES) as u32).context("grant the page pool")?;
    if variant == Variant::MultiQueue {
        ensure(offer.max_queues >= 2 && params.queues >= 2, || {
            format!(
                "blkback offers {} queues, {} chosen: nothing to spread over",
                offer.max_queues, params.queues
            )
        })?;
        cx.figure("queues", f64::from(params.queues), "");
    }
    let mut events = EventChannels::open().context("open evtchn")?;
    let ports = bind_queue_ports(&mut events, params.queues)?;
    let outcome = {
        let events = EvtchnEvents::with_ports(&mut events, ports.clone());
        let mut front = VbdFront::new(&pool, events, vdev as u16).context("build the engine")?;
        let result = drive(cx, variant, store, image, fe, be, params, &mut front);
        // Whatever happened, the engine gives every grant back (the backend is Closed or
        // going away when this runs).
        let outstanding = front.disconnect();
        cx.figure("grants used", front.grants.granted as f64, "");
        result.and(all_grants_back(outstanding))
    };
    for port in ports {
        events.unbind(port).context("unbind the event channels")?;
    }
    pool.release().context("end the pool's grants")?;
    outcome
}

#[allow(clippy::too_many_arguments)]
fn drive(
    cx: &mut Context,
    variant: Variant,
    store: &mut Store,
    image: &LoopImage,
    fe: &str,
    be: &str,
    params: FrontendParams,
    front: &mut VbdFront<'_, '_, '_>,
) -> Outcome {
    front.attach_ring(params).context("attach the rings")?;
    // The engine was attached expecting x86_64; what the frontend announces decides which
    // layout blkback uses, and only the probe tells the engine.
    let published = FrontendParams {
        layout: variant.published_layout(),
        ..params
    };
    cx.text("protocol", published.layout.protocol());
    let refs = front.queue_ring_refs();
    let connect = publish_and_connect(store, fe, be, &published, &refs, &front.events.ports)?;
    cx.duration("connect", connect, "ms");

    let features = features(store, be)?;
    let info = features
        .disk_info()
        .map_err(|e| Failure(format!("disk info: {e:?}")))?;
    let read_only = variant == Variant::ReadOnly;
    let block_len = image.block_size;
    ensure(
        info.sectors == image.sectors
            && info.read_only == read_only
            && info.logical_block_size == block_len,
        || {
            format!(
                "backend: {info:?}, image has {} sectors, blocks of {block_len}, read-only \
                 {read_only}",
                image.sectors
            )
        },
    )?;
    cx.log(format!(
        "backend: sector-size {}, sectors {}, read-only {}",
        info.logical_block_size, info.sectors, info.read_only
    ));

    // The layout probe.
    let started = Instant::now();
    front.with_io(|engine, io| engine.connected(&features, io));
    let mut none = Vec::new();
    poll_until(front, &mut none, "the layout probe", |f, _| {
        f.engine.state() != EngineState::Probing
    })?;
    ensure(front.engine.state() == EngineState::Running, || {
        format!("after the probe the engine is {:?}", front.engine.state())
    })?;
    let layout = front
        .engine
        .counters()
        .layout
        .ok_or_else(|| Failure("the probe settled on no layout".into()))?;
    cx.duration("probe", started.elapsed(), "ms");
    cx.text("layout", layout.protocol());
    cx.log(format!(
        "layout probe chose {layout:?} ({})",
        layout.protocol()
    ));
    let logged = front.events.log.contains(&LogEvent::LayoutSelected(layout));
    ensure(layout == variant.published_layout() && logged, || {
        format!(
            "the probe chose {layout:?} (logged: {logged}), the frontend announced {}",
            variant.published_layout().protocol()
        )
    })?;
    store.set_state(fe, XenbusState::Connected)?;

    let mut disk = Disk::new(DiskConfig::new(
        info,
        Identity::new(
            &info,
            "lab-vbd-core",
            vdev_unique(variant.vdev().0).as_bytes(),
        ),
    ));
    let data = |i: usize| front.data_frame(i);
    let (d0, d1, d2, d3, d4) = (data(0), data(1), data(2), data(3), data(4));
    let big: Vec<Segment> = (0..BIG_PAGES)
        .map(|i| seg(data(4 + i), 0, PAGE_SIZE as u16))
        .collect();
    let mut verified = 0usize;
    let mut tag = 0u64;
    let mut next = || {
        tag += 1;
        tag
    };

    // INQUIRY.
    let buf = [seg(d0, 0, 96)];
    let c = command(
        front,
        &mut disk,
        next(),
        &[opcode::INQUIRY, 0, 0, 0, 96, 0],
        DataDirection::FromDevice,
        &buf,
    )?;
    good(&c, "INQUIRY")?;
    let inquiry = gather(front, &buf);
    ensure(c.transferred >= 36 && inquiry[0] & 0x1f == 0, || {
        format!(
            "INQUIRY: {} bytes, peripheral {:#x}",
            c.transferred, inquiry[0]
        )
    })?;
    cx.log(format!(
        "INQUIRY: '{}' '{}'",
        String::from_utf8_lossy(&inquiry[8..16]).trim(),
        String::from_utf8_lossy(&inquiry[16..32]).trim()
    ));

    // READ CAPACITY(16): blkif's `sectors` counts 512-byte units, the SCSI layer the disk's
    // logical blocks.
    let bl = u64::from(block_len);
    let cap = data_in(
        front,
        &mut disk,
        next(),
        d0,
        &READ_CAPACITY_16,
        32,
        "READ CAPACITY(16)",
    )?;
    let last_lba = u64::from_be_bytes(cap[0..8].try_into().expect("8 bytes"));
    let block = u32::from_be_bytes(cap[8..12].try_into().expect("4 bytes"));
    let want_blocks = image.sectors * 512 / bl;
    ensure(last_lba + 1 == want_blocks && block == block_len, || {
        format!(
            "READ CAPACITY(16): {} blocks of {block}, expected {want_blocks} of {block_len}",
            last_lba + 1
        )
    })?;
    cx.log(format!(
        "READ CAPACITY(16): {} blocks of {block}",
        last_lba + 1
    ));

    // MODE SENSE(6), all pages: WP in the device-specific parameter is the backend's mode.
    let buf = [seg(d0, 0, 255)];
    let c = command(
        front,
        &mut disk,
        next(),
        &[opcode::MODE_SENSE_6, 0x08, 0x3f, 0, 255, 0],
        DataDirection::FromDevice,
        &buf,
    )?;
    good(&c, "MODE SENSE(6)")?;
    let mode = gather(front, &buf);
    let write_protected = mode[2] & 0x80 != 0;
    cx.log(format!(
        "MODE SENSE(6): {} bytes, device-specific parameter {:#04x}",
        c.transferred, mode[2]
    ));
    ensure(write_protected == read_only, || {
        format!(
            "MODE SENSE(6): write-protect {write_protected} (device-specific {:#04x}), backend \
             mode {}",
            mode[2],
            variant.mode()
        )
    })?;

    // WRITE(10) scattered over five pages: two whole pages, an unaligned offset and two
    // odd-sized pieces (those three bounce; with 4 KiB blocks blkback takes only whole blocks
    // in a segment, so every piece short of a page must), then READ(10) it back into zeroed
    // pages. A read-only disk refuses the write itself and the read must find the image.
    let last = if block_len == 512 { 548 } else { 1572 };
    let scattered = [
        seg(d0, 0, 4096),
        seg(d1, 0, 4096),
        seg(d2, 100, 1024),
        seg(d3, 0, 1500),
        seg(d4, 2000, last),
    ];
    let sectors = u64::from(total(&scattered)) / 512;
    let blocks = u64::from(total(&scattered)) / bl;
    let scatter_lba = SCATTER_SECTOR * 512 / bl;
    let pattern = if read_only {
        sectors_content(SEED, SCATTER_SECTOR, sectors)
    } else {
        sectors_content(SEED.wrapping_add(100), SCATTER_SECTOR, sectors)
    };
    if read_only {
        let before = front.engine.counters().requests;
        scatter(
            front,
            &scattered,
            &sectors_content(SEED.wrapping_add(100), SCATTER_SECTOR, sectors),
        );
        let c = command(
            front,
            &mut disk,
            next(),
            &cdb10(opcode::WRITE_10, scatter_lba, blocks as u16),
            DataDirection::ToDevice,
            &scattered,
        )?;
        let after = front.engine.counters().requests;
        cx.log(format!(
            "WRITE(10) on the read-only disk: status {:?}, sense key {:#x} asc {:#x} ascq {:#x}",
            c.status, c.sense.key, c.sense.asc, c.sense.ascq
        ));
        ensure(
            c.status == ScsiStatus::CheckCondition
                && c.sense.key == KEY_DATA_PROTECT
                && c.transferred == 0,
            || {
                format!(
                    "WRITE(10) on a read-only disk: status {:?}, sense key {:#x}, {} bytes \
                     transferred",
                    c.status, c.sense.key, c.transferred
                )
            },
        )?;
        ensure(after == before, || {
            format!(
                "the refused WRITE(10) reached the engine: {} requests",
                after - before
            )
        })?;
    } else {
        scatter(front, &scattered, &pattern);
        let started = Instant::now();
        let c = command(
            front,
            &mut disk,
            next(),
            &cdb10(opcode::WRITE_10, scatter_lba, blocks as u16),
            DataDirection::ToDevice,
            &scattered,
        )?;
        good(&c, "scattered WRITE(10)")?;
        cx.duration("scattered write", started.elapsed(), "ms");
    }
    read10_expect(
        front,
        &mut disk,
        next(),
        scatter_lba,
        blocks as u16,
        &scattered,
        &pattern,
        "scattered READ(10)",
    )?;
    verified += pattern.len();

    // 64 KiB in 16 whole pages (indirect when negotiated).
    let big_sectors = (BIG_PAGES * PAGE_SIZE / 512) as u64;
    let big_blocks = (BIG_PAGES * PAGE_SIZE) as u64 / bl;
    let big_lba = BIG_SECTOR * 512 / bl;
    let big_pattern = if read_only {
        sectors_content(SEED, BIG_SECTOR, big_sectors)
    } else {
        sectors_content(SEED.wrapping_add(101), BIG_SECTOR, big_sectors)
    };
    if !read_only {
        scatter(front, &big, &big_pattern);
        let started = Instant::now();
        let c = command(
            front,
            &mut disk,
            next(),
            &cdb10(opcode::WRITE_10, big_lba, big_blocks as u16),
            DataDirection::ToDevice,
            &big,
        )?;
        good(&c, "64 KiB WRITE(10)")?;
        cx.duration("64k write", started.elapsed(), "us");
    }
    scatter(front, &big, &vec![0u8; big_pattern.len()]);
    let started = Instant::now();
    let c = command(
        front,
        &mut disk,
        next(),
        &cdb10(opcode::READ_10, big_lba, big_blocks as u16),
        DataDirection::FromDevice,
        &big,
    )?;
    good(&c, "64 KiB READ(10)")?;
    cx.duration("64k read", started.elapsed(), "us");
    let back = gather(front, &big);
    ensure(back == big_pattern, || {
        format!(
            "64 KiB read-back: {}",
            first_difference(&back, &big_pattern)
        )
    })?;
    verified += back.len();

    // SYNCHRONIZE CACHE, then both patterns must be in the image file (on a read-only disk,
    // the image's own content).
    let c = command(
        front,
        &mut disk,
        next(),
        &[opcode::SYNCHRONIZE_CACHE_10, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        DataDirection::None,
        &[],
    )?;
    good(&c, "SYNCHRONIZE CACHE(10)")?;
    for (sector, want) in [(SCATTER_SECTOR, &pattern), (BIG_SECTOR, &big_pattern)] {
        expect_in_image(image, sector, want, "after SYNCHRONIZE CACHE")?;
        verified += want.len();
    }

    let k = front.engine.counters();
    cx.log(format!("engine counters: {k:?}"));
    // blkback writes feature-flush-cache (and feature-persistent) only when it connects, after
    // the ring was negotiated at InitWait; the engine takes them in at Connected, so with a
    // write cache the SYNCHRONIZE CACHE above must have gone to the backend as a ring request.
    let flush_in_use = front.engine.params().is_some_and(|p| p.flush);
    cx.log(format!(
        "feature-flush-cache: {} at InitWait, {} at Connected, in use {flush_in_use}",
        params.flush, features.flush_cache
    ));
    ensure(flush_in_use == features.flush_cache, || {
        "the engine did not take in the backend's flush feature at Connected".into()
    })?;
    ensure(!flush_in_use || k.ring_requests >= k.requests, || {
        format!("a flush completed without a ring request: {k:?}")
    })?;
    cx.figure("requests", k.requests as f64, "");
    cx.figure("ring requests", k.ring_requests as f64, "");
    cx.figure("bounced segments", k.bounced_segments as f64, "");
    cx.figure("indirect requests", k.indirect_requests as f64, "");
    cx.figure("verified", verified as f64 / 1024.0, "KiB");
    // The scattered list bounces in each request that carries it: the WRITE (unless refused)
    // and the READ.
    let scattered_requests = if read_only { 1 } else { 2 };
    ensure(
        k.errors == 0 && k.bounced_segments >= scattered_requests,
        || format!("engine counters: {k:?}"),
    )?;
    ensure(
        params.indirect_segments == 0 || k.indirect_requests > 0,
        || "indirect segments negotiated but no indirect request issued".into(),
    )?;
    report_queues(cx, &k, params.queues as usize)?;

    // Disconnect: Closing, then Closed, on both ends.
    let took = store.disconnect(fe, be, STATE_TIMEOUT)?;
    cx.duration("disconnect", took, "ms");
    Ok(())
}

pub(crate) fn vdev_unique(vdev: u32) -> String {
    format!("lab/vbd/{vdev}")
}
