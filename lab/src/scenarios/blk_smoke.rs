//! `blk-smoke`: a userspace blkfront in dom0, built on `xen-ring` and the `xen-abi` blkif types,
//! against the real xen-blkback over a loop device; and `blk-smoke-wrong-ring-ref`, the same with
//! a ring-ref no grant has, which must fail and say why.

use std::time::{Duration, Instant};

use xen_abi::blkif::{
    BlkifRequestRw, BlkifRequestSegment, BlkifResponse, BLKIF_MAX_SEGMENTS_PER_REQUEST,
    BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_READ, BLKIF_OP_WRITE, BLKIF_RSP_OKAY,
    XEN_IO_PROTO_ABI_X86_64,
};
use xen_abi::xenbus::XenbusState;

use super::toolstack::{
    device_dirs, mean_us, modprobe, remove_device, sectors_content, share, wait_event,
    write_vbd_nodes, LoopImage, Store,
};
use crate::platform::evtchn::{EventChannels, Port};
use crate::platform::gntalloc::Gntalloc;
use crate::platform::ring::GrantedRing;
use crate::platform::PAGE_SIZE;
use crate::scenario::{ensure, Context, Failure, Outcome, ResultExt, Scenario};

/// The scenario.
pub const SCENARIO: Scenario = Scenario {
    name: "blk-smoke",
    description: "userspace blkfront (xen-ring + xen-abi blkif) against the real xen-blkback over \
                  a loop device: connect, READ sector 0, WRITE + READ back, FLUSH, 64 sequential \
                  4 KiB reads, clean Closing/Closed",
    default: true,
    timeout: Duration::from_secs(120),
    run,
};

/// The broken variant: publishes a ring-ref that no grant has; must fail, naming the reason.
pub const WRONG_RING_REF: Scenario = Scenario {
    name: "blk-smoke-wrong-ring-ref",
    description: "blk-smoke with a deliberately wrong ring-ref: must FAIL, with the backend's \
                  state, its error node and the kernel's messages (proves a broken frontend \
                  fails the lab)",
    default: false,
    timeout: Duration::from_secs(60),
    run: run_wrong_ring_ref,
};

/// xvda.
const VDEV: u32 = 51712;
/// The image's content seed.
const SEED: u8 = 1;
/// 1 MiB.
const IMAGE_SECTORS: u64 = 2048;
/// Sequential 4 KiB reads timed (the workload `linux-blkfront` repeats).
pub const READS: u64 = 64;
/// Where the write test writes (sectors).
const WRITE_SECTOR: u64 = 1024;
/// How long the backend may take to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request may take.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// A grant reference beyond any grant table dom0 has.
const BOGUS_RING_REF: u32 = 0x00ff_fff0;

fn run(cx: &mut Context) -> Outcome {
    run_with(cx, false)
}

fn run_wrong_ring_ref(cx: &mut Context) -> Outcome {
    run_with(cx, true)
}

fn run_with(cx: &mut Context, wrong_ring_ref: bool) -> Outcome {
    modprobe("xen-blkback")?;
    let mut store = Store::open()?;
    let (fe, be) = device_dirs("vbd", VDEV);
    remove_device(&mut store, &fe, &be)?;
    let image = LoopImage::create(cx.name(), SEED, IMAGE_SECTORS, None)?;
    let outcome = session(cx, &mut store, &image, &fe, &be, wrong_ring_ref);
    // Whatever happened, take the device away (the backend then unmaps and frees everything).
    let removed = remove_device(&mut store, &fe, &be);
    outcome.and(removed)
}

type Ring<'p> = GrantedRing<'p, BlkifRequestRw, BlkifResponse>;

/// One request at a time over the ring.
struct Front<'p, 'e> {
    ring: Ring<'p>,
    events: &'e mut EventChannels,
    port: Port,
    next_id: u64,
}

impl Front<'_, '_> {
    /// Sends `req` (its id is set here) and waits for its response, which must match it and be
    /// OKAY.
    fn request(&mut self, mut req: BlkifRequestRw) -> Result<BlkifResponse, Failure> {
        self.next_id += 1;
        req.id = 0x1ab0_0000 + self.next_id;
        self.ring
            .push_request(&req)
            .context("push a request on the ring")?;
        if self.ring.push_requests_and_check_notify() {
            self.events
                .notify(self.port)
                .context("notify the backend")?;
        }
        loop {
            let mut got = Vec::new();
            self.ring
                .drain_responses(|rsp| got.push(rsp))
                .context("read responses")?;
            if let Some(rsp) = got.first() {
                ensure(got.len() == 1, || {
                    format!("{} responses to one request", got.len())
                })?;
                ensure(rsp.id == req.id && rsp.operation == req.operation, || {
                    format!(
                        "response id {:#x} op {} to request id {:#x} op {}",
                        rsp.id, rsp.operation, req.id, req.operation
                    )
                })?;
                ensure(rsp.status == BLKIF_RSP_OKAY, || {
                    format!(
                        "request op {} at sector {}: status {}",
                        req.operation, req.sector_number, rsp.status
                    )
                })?;
                return Ok(*rsp);
            }
            if self
                .ring
                .final_check_for_responses()
                .context("check for responses")?
            {
                continue;
            }
            wait_event(self.events, self.port, IO_TIMEOUT, "a block response")?;
        }
    }
}

/// A 4 KiB read or write of the page granted as `gref` at `sector`.
fn rw(operation: u8, sector: u64, gref: u32) -> BlkifRequestRw {
    let mut seg = [BlkifRequestSegment::new(0, 0, 0); BLKIF_MAX_SEGMENTS_PER_REQUEST];
    seg[0] = BlkifRequestSegment::new(gref, 0, 7);
    BlkifRequestRw {
        operation,
        nr_segments: 1,
        handle: VDEV as u16,
        pad0: [0; 4],
        id: 0,
        sector_number: sector,
        seg,
    }
}

fn flush() -> BlkifRequestRw {
    BlkifRequestRw {
        operation: BLKIF_OP_FLUSH_DISKCACHE,
        nr_segments: 0,
        ..rw(BLKIF_OP_FLUSH_DISKCACHE, 0, 0)
    }
}

fn first_difference(got: &[u8], want: &[u8]) -> String {
    match got.iter().zip(want).position(|(a, b)| a != b) {
        Some(at) => format!(
            "first difference at byte {at}: {:#04x}, expected {:#04x}",
            got[at], want[at]
        ),
        None => format!("{} bytes, expected {}", got.len(), want.len()),
    }
}

fn session(
    cx: &mut Context,
    store: &mut Store,
    image: &LoopImage,
    fe: &str,
    be: &str,
    wrong_ring_ref: bool,
) -> Outcome {
    // The toolstack's part.
    write_vbd_nodes(store, image, fe, be, VDEV, "xvda", "w")?;
    let node = |dir: &str, key: &str, value: &str| (format!("{dir}/{key}"), value.to_owned());
    store.expect_state("backend", be, XenbusState::InitWait, CONNECT_TIMEOUT)?;
    cx.log(format!(
        "backend in InitWait over {} ({})",
        image.device, image.physical_device
    ));

    // The frontend's part: ring page, data pages, event channel.
    let gnt = Gntalloc::open().context("open gntalloc")?;
    let ring_pages = gnt.grant(0, 1, true).context("grant the ring page")?;
    let data = gnt.grant(0, 2, true).context("grant the data pages")?;
    let (read_ref, write_ref) = (data.refs()[0], data.refs()[1]);
    let mut events = EventChannels::open().context("open evtchn")?;
    let port = events
        .bind_unbound(0)
        .context("allocate an event channel")?;
    let ring = Ring::init(&ring_pages).context("initialise the ring")?;
    ensure(ring.slots() == 32, || {
        format!("a one-page blkif ring has {} slots", ring.slots())
    })?;
    let ring_ref = if wrong_ring_ref {
        cx.log(format!(
            "publishing the wrong ring-ref {BOGUS_RING_REF} (the ring is grant {})",
            ring_pages.refs()[0]
        ));
        BOGUS_RING_REF
    } else {
        ring_pages.refs()[0]
    };
    store.write_all(&[
        node(fe, "ring-ref", &ring_ref.to_string()),
        node(fe, "event-channel", &port.to_string()),
        node(fe, "protocol", XEN_IO_PROTO_ABI_X86_64),
        node(fe, "state", XenbusState::Initialised.as_str()),
    ])?;
    let timeout = if wrong_ring_ref {
        Duration::from_secs(5)
    } else {
        CONNECT_TIMEOUT
    };
    let connect = store.expect_state("backend", be, XenbusState::Connected, timeout)?;
    cx.duration("connect", connect, "ms");

    let sectors = store.read_u64(&format!("{be}/sectors"))?;
    let sector_size = store.read_u64(&format!("{be}/sector-size"))?;
    let info = store.read_u64(&format!("{be}/info"))?;
    let flush_cache = store
        .read(&format!("{be}/feature-flush-cache"))?
        .is_some_and(|v| v.trim() == "1");
    cx.log(format!(
        "backend Connected after {:.1} ms: sectors {sectors}, sector-size {sector_size}, info \
         {info}, feature-flush-cache {flush_cache}",
        connect.as_secs_f64() * 1e3
    ));
    ensure(sectors == image.sectors && sector_size == 512, || {
        format!(
            "backend reports {sectors} sectors of {sector_size} bytes, image has {} of 512",
            image.sectors
        )
    })?;
    ensure(info & 1 == 0, || {
        format!("backend says read-only (info {info})")
    })?;
    ensure(flush_cache, || {
        "backend offers no feature-flush-cache".into()
    })?;
    store.set_state(fe, XenbusState::Connected)?;

    let mut front = Front {
        ring,
        events: &mut events,
        port,
        next_id: 0,
    };
    let mut verified = 0usize;
    let mut page = vec![0u8; PAGE_SIZE];

    // READ sector 0.
    let started = Instant::now();
    front.request(rw(BLKIF_OP_READ, 0, read_ref))?;
    cx.duration("first read", started.elapsed(), "ms");
    data.pages().read(0, &mut page);
    let want = sectors_content(SEED, 0, 8);
    ensure(page == want, || {
        format!("sector 0 reads wrong: {}", first_difference(&page, &want))
    })?;
    verified += PAGE_SIZE;

    // WRITE a pattern, READ it back, FLUSH, and find it in the image file.
    let pattern = sectors_content(SEED.wrapping_add(100), WRITE_SECTOR, 8);
    data.pages().write(PAGE_SIZE, &pattern);
    let started = Instant::now();
    front.request(rw(BLKIF_OP_WRITE, WRITE_SECTOR, write_ref))?;
    cx.duration("write", started.elapsed(), "ms");
    data.pages().write(0, &[0u8; PAGE_SIZE]);
    front.request(rw(BLKIF_OP_READ, WRITE_SECTOR, read_ref))?;
    data.pages().read(0, &mut page);
    ensure(page == pattern, || {
        format!(
            "written data reads back wrong: {}",
            first_difference(&page, &pattern)
        )
    })?;
    verified += PAGE_SIZE;
    front.request(flush())?;
    let in_file = image.read_file(WRITE_SECTOR * 512, PAGE_SIZE)?;
    ensure(in_file == pattern, || {
        format!(
            "after FLUSH the image file differs: {}",
            first_difference(&in_file, &pattern)
        )
    })?;
    verified += PAGE_SIZE;

    // Sequential 4 KiB reads, each checked.
    let mut latencies = Vec::with_capacity(READS as usize);
    for i in 0..READS {
        let sector = i * 8;
        let started = Instant::now();
        front.request(rw(BLKIF_OP_READ, sector, read_ref))?;
        latencies.push(started.elapsed());
        data.pages().read(0, &mut page);
        let want = if sector == WRITE_SECTOR {
            pattern.clone()
        } else {
            sectors_content(SEED, sector, 8)
        };
        ensure(page == want, || {
            format!(
                "sector {sector} reads wrong: {}",
                first_difference(&page, &want)
            )
        })?;
        verified += PAGE_SIZE;
    }
    let mean = mean_us(&latencies);
    cx.figure(&format!("{READS} x 4k read, mean"), mean, "us");
    cx.figure("verified", verified as f64 / 1024.0, "KiB");
    share(|s| s.blk_read_us = Some(mean));

    // Disconnect: Closing, then Closed, on both ends.
    let took = store.disconnect(fe, be, CONNECT_TIMEOUT)?;
    cx.duration("disconnect", took, "ms");
    let Front { events, .. } = front;
    events.unbind(port).context("unbind the event channel")?;
    ring_pages.release().context("end the ring grant")?;
    data.release().context("end the data grants")?;
    cx.log("backend Closed; grants ended, event channel closed");
    Ok(())
}
