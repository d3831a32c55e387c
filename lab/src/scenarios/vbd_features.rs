//! The block core against blkback's optional features: persistent grants (`vbd-persistent`),
//! discard on a sparse image (`vbd-discard`) and a CD-ROM (`vbd-cdrom`).
//!
//! Each runs a session of [`super::vbd_session`] on its own vdev (xvdg, xvdh, xvdi), so that
//! blkback is never handed a device it is still tearing down.

use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use xen_abi::blkif::VdiskInfo;
use xenvbd_core::blkif::{BlockStatus, FrontendConfig};
use xenvbd_core::scsi::sense::{KEY_DATA_PROTECT, KEY_ILLEGAL_REQUEST};
use xenvbd_core::scsi::{opcode, Disk, DiskConfig, Identity};
use xenvbd_core::{BlockOp, DataDirection, ScsiStatus, Segment};

use super::toolstack::{device_dirs, modprobe, remove_device, sectors_content, LoopImage, Store};
use super::vbd_core::{
    cdb10, command, data_in, expect_in_image, first_difference, gather, good, poll_until,
    read10_expect, scatter, seg, vdev_unique, write10, READ_CAPACITY_16,
};
use super::vbd_session::{
    blkback_stats, run_ops, stat, try_submit, with_session, Link, OpSpec, Setup,
};
use crate::platform::vbd::{VbdFront, BOUNCE_PAGES};
use crate::platform::PAGE_SIZE;
use crate::scenario::{ensure, Context, Failure, Outcome, ResultExt, Scenario};

/// `vbd-persistent`.
pub const PERSISTENT: Scenario = Scenario {
    name: "vbd-persistent",
    description: "the block core with persistent grants negotiated with the real xen-blkback \
                  (frontend and backend feature-persistent): 80 writes and reads of mixed sizes \
                  and alignments, up to 8 in flight, every read and the image file checked; \
                  persistent pages reused (hits) instead of granted again",
    default: true,
    timeout: Duration::from_secs(180),
    run: run_persistent,
};

/// `vbd-discard`.
pub const DISCARD: Scenario = Scenario {
    name: "vbd-discard",
    description: "the block core's UNMAP on a loop device over a sparse tmpfs image: blkback's \
                  feature-discard, discard-granularity and discard-alignment parsed, LBPME and \
                  VPD B0h, UNMAP of four ranges and WRITE SAME(16) with UNMAP of a fifth punch \
                  holes (lseek SEEK_DATA/SEEK_HOLE, st_blocks) exactly there, the ranges read \
                  back as zeros and the rest is unchanged",
    default: true,
    timeout: Duration::from_secs(120),
    run: run_discard,
};

/// `vbd-cdrom`.
pub const CDROM: Scenario = Scenario {
    name: "vbd-cdrom",
    description: "a read-only VBD whose frontend says device-type = cdrom over an ISO9660-like \
                  image: blkback's info has VDISK_CDROM, INQUIRY type 5, READ CAPACITY, GET \
                  CONFIGURATION and READ TOC in 2048-byte blocks, READ(10) returns the image, \
                  WRITE(10) refused with DATA PROTECT, and blkback itself refuses a write",
    default: true,
    timeout: Duration::from_secs(120),
    run: |cx| run_cdrom(cx, CDROM_VDEV, "xvdi", None),
};

/// `vbd-cdrom-2k`.
pub const CDROM_2K: Scenario = Scenario {
    name: "vbd-cdrom-2k",
    description: "vbd-cdrom over a loop device with 2048-byte logical blocks, as an optical \
                  drive has: blkback's sector-size 2048, the engine's requests in whole \
                  2048-byte blocks (sub-block pieces bounced), the same checks",
    default: true,
    timeout: Duration::from_secs(120),
    run: |cx| run_cdrom(cx, CDROM_2K_VDEV, "xvdn", Some(2048)),
};

/// The image's content seed of this file's scenarios.
const SEED: u8 = 11;

/// Runs `session` over a fresh device `vdev` on `image`, removing the nodes before and after.
fn on_device(
    cx: &mut Context,
    vdev: u32,
    image: impl FnOnce(&str) -> Result<LoopImage, Failure>,
    session: impl FnOnce(&mut Context, &mut Store, &LoopImage, &str, &str) -> Outcome,
) -> Outcome {
    modprobe("xen-blkback")?;
    let mut store = Store::open()?;
    let (fe, be) = device_dirs("vbd", vdev);
    remove_device(&mut store, &fe, &be)?;
    let image = image(cx.name())?;
    let outcome = session(cx, &mut store, &image, &fe, &be);
    let removed = remove_device(&mut store, &fe, &be);
    outcome.and(removed)
}

// ---- vbd-persistent ----

/// xvdg.
const PERSISTENT_VDEV: u32 = 51808;
/// 6 MiB.
const PERSISTENT_SECTORS: u64 = 12288;
/// Operations in each direction.
const PERSISTENT_OPS: usize = 40;
/// Buffer slots (the engine's job count) and pages per slot.
const SLOTS: usize = 8;
const SLOT_PAGES: usize = 33;

/// The buffer layout and size of write/read `i`: one unaligned sector, a page, 6 KiB over two
/// pages at odd offsets, 64 KiB in 16 pages, 128 KiB in 32 pages plus an odd head and tail.
fn persistent_layout(i: usize) -> Vec<(usize, u16, u16)> {
    match i % 5 {
        0 => vec![(0, (i * 100 % 3584) as u16, 512)],
        1 => vec![(0, 0, 4096)],
        2 => vec![(0, 1000, 3096), (1, 0, 3048)],
        3 => (0..16).map(|p| (p, 0, 4096)).collect(),
        _ => {
            let mut v = vec![(0, 3072, 1024)];
            v.extend((1..32).map(|p| (p, 0, 4096)));
            v.push((32, 0, 3072));
            v
        }
    }
}

fn run_persistent(cx: &mut Context) -> Outcome {
    on_device(
        cx,
        PERSISTENT_VDEV,
        |name| LoopImage::create(name, SEED, PERSISTENT_SECTORS, None),
        |cx, store, image, fe, be| {
            let setup = Setup {
                vdev: PERSISTENT_VDEV,
                dev: "xvdg",
                mode: "w",
                device_type: "disk",
                config: FrontendConfig::default(),
                data_pages: SLOTS * SLOT_PAGES,
            };
            with_session(
                cx,
                store,
                image,
                fe,
                be,
                setup,
                Box::new(|cx, store, front, link| {
                    persistent_body(cx, store, image, fe, front, link)
                }),
            )
        },
    )
}

fn persistent_body(
    cx: &mut Context,
    store: &mut Store,
    image: &LoopImage,
    fe: &str,
    front: &mut VbdFront<'_, '_, '_>,
    link: Link,
) -> Outcome {
    cx.duration("connect", link.connect, "ms");
    // Both ends must say so: the frontend's node (written by write_nodes) and blkback's, which
    // it writes only at Connected; the engine takes it in then.
    let ours = store.read(&format!("{fe}/feature-persistent"))?;
    let in_force = front.engine.params().is_some_and(|p| p.persistent);
    cx.log(format!(
        "feature-persistent: frontend {ours:?}, backend {}, in force {in_force}",
        link.features.persistent
    ));
    ensure(
        ours.as_deref() == Some("1") && link.features.persistent && in_force,
        || {
            format!(
                "persistent grants not in force: frontend node {ours:?}, backend offers {}, \
                 engine params {:?}",
                link.features.persistent,
                front.engine.params()
            )
        },
    )?;
    cx.text("persistent", "in force");

    // Writes to 40 regions of 128 KiB (at a sector offset that varies), then reads of each.
    let region = |i: usize| (i as u64) * 256 + (i as u64 % 3) * 8;
    let mut writes = Vec::new();
    let mut reads = Vec::new();
    for i in 0..PERSISTENT_OPS {
        let layout = persistent_layout(i);
        let bytes: usize = layout.iter().map(|l| usize::from(l.2)).sum();
        let data = sectors_content(SEED.wrapping_add(40), region(i), bytes as u64 / 512);
        writes.push(OpSpec {
            write: true,
            sector: region(i),
            layout: layout.clone(),
            data: data.clone(),
        });
        reads.push(OpSpec {
            write: false,
            sector: region(i),
            layout,
            data,
        });
    }
    let before = blkback_stats(PERSISTENT_VDEV);
    let started = Instant::now();
    let w = run_ops(front, &writes, SLOTS, SLOT_PAGES, 1)?;
    let r = run_ops(front, &reads, SLOTS, SLOT_PAGES, 1000)?;
    let took = started.elapsed();
    let after = blkback_stats(PERSISTENT_VDEV);
    let mut verified = r.bytes;
    for spec in &writes {
        expect_in_image(image, spec.sector, &spec.data, "after the writes")?;
        verified += spec.data.len() as u64;
    }
    let k = front.engine.counters();
    cx.log(format!("engine counters: {k:?}"));
    cx.log(format!(
        "blkback statistics before {before:?} after {after:?}"
    ));
    cx.figure("operations", (w.ops + r.ops) as f64, "");
    cx.duration("time", took, "ms");
    cx.figure(
        "max in flight",
        w.max_in_flight.max(r.max_in_flight) as f64,
        "",
    );
    cx.figure("segments", k.segments as f64, "");
    cx.figure("persistent hits", k.persistent_hits as f64, "");
    cx.figure("indirect requests", k.indirect_requests as f64, "");
    cx.figure("verified", verified as f64 / 1024.0, "KiB");
    // With persistent grants every piece goes through one of the pool's pages; only the first
    // use of each page grants it, every later use is a hit. Nothing is bounced in the
    // non-persistent sense.
    ensure(
        k.errors == 0
            && k.persistent_hits > 0
            && k.persistent_hits + BOUNCE_PAGES as u64 >= k.segments
            && k.bounced_segments == 0,
        || format!("engine counters with persistent grants: {k:?}"),
    )?;
    // blkback saw them all as ring requests (its counters are per device, so a difference).
    let backend_requests = ["rd_req", "wr_req", "f_req"]
        .iter()
        .map(|n| stat(&after, n).saturating_sub(stat(&before, n)))
        .sum::<u64>();
    cx.figure("blkback requests", backend_requests as f64, "");
    ensure(
        after.is_empty() || backend_requests == k.ring_requests,
        || {
            format!(
            "blkback counted {backend_requests} read/write/flush requests, the engine issued {}",
            k.ring_requests
        )
        },
    )?;
    Ok(())
}

// ---- vbd-discard ----

/// xvdh.
const DISCARD_VDEV: u32 = 51824;
/// 4 MiB.
const DISCARD_SECTORS: u64 = 8192;
/// The ranges of the sparse image that hold data at the start, in sectors (`first`, `count`).
const DATA_RANGES: [(u64, u64); 3] = [(0, 512), (1024, 1024), (4096, 512)];
/// Where the scenario writes into a hole first, and how much.
const HOLE_WRITE: (u64, u64) = (6144, 64);
/// The ranges UNMAP discards (4 KiB-aligned: tmpfs punches whole pages), in sectors.
const UNMAPPED: [(u64, u64); 4] = [(64, 128), (1280, 512), (4352, 256), (6144, 16)];
/// The range WRITE SAME(16) with UNMAP discards, in sectors.
const WRITE_SAME: (u64, u64) = (1856, 64);
/// Everything discarded.
const DISCARDED: [(u64, u64); 5] = [
    UNMAPPED[0],
    UNMAPPED[1],
    UNMAPPED[2],
    UNMAPPED[3],
    WRITE_SAME,
];

/// `ranges` (sorted, disjoint, in bytes) minus `holes`.
fn subtract(ranges: &[(u64, u64)], holes: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for &(mut start, end) in ranges {
        let mut cut: Vec<(u64, u64)> = holes
            .iter()
            .copied()
            .filter(|&(s, e)| s < end && e > start)
            .collect();
        cut.sort_unstable();
        for (s, e) in cut {
            if s > start {
                out.push((start, s));
            }
            start = start.max(e);
        }
        if start < end {
            out.push((start, end));
        }
    }
    out
}

/// Sorted byte ranges from sector ranges, adjacent ones merged.
fn byte_ranges(sectors: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut v: Vec<(u64, u64)> = sectors
        .iter()
        .map(|&(s, n)| (s * 512, (s + n) * 512))
        .collect();
    v.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (s, e) in v {
        match out.last_mut() {
            Some(last) if last.1 >= s => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

fn file_ranges(image: &LoopImage) -> Result<(Vec<(u64, u64)>, u64), Failure> {
    let file = std::fs::File::open(&image.file).context(format!("open {}", image.file))?;
    let ranges = crate::platform::data_ranges(&file).context(format!("lseek {}", image.file))?;
    let blocks = file.metadata().context("stat the image")?.blocks();
    Ok((ranges, blocks))
}

fn sys_queue(image: &LoopImage, name: &str) -> Result<u64, Failure> {
    let dev = image.device.trim_start_matches("/dev/");
    let path = if name == "discard_alignment" {
        format!("/sys/block/{dev}/discard_alignment")
    } else {
        format!("/sys/block/{dev}/queue/{name}")
    };
    let text = std::fs::read_to_string(&path).context(format!("read {path}"))?;
    text.trim()
        .parse()
        .map_err(|_| Failure(format!("{path} is '{}'", text.trim())))
}

fn run_discard(cx: &mut Context) -> Outcome {
    on_device(
        cx,
        DISCARD_VDEV,
        |name| LoopImage::create_sparse(name, SEED, DISCARD_SECTORS, &DATA_RANGES),
        |cx, store, image, fe, be| {
            // What the loop device offers (loop over a file: discard = fallocate(PUNCH_HOLE),
            // granularity = the file system's block size).
            let max = sys_queue(image, "discard_max_bytes")?;
            let granularity = sys_queue(image, "discard_granularity")?;
            let alignment = sys_queue(image, "discard_alignment")?;
            cx.log(format!(
                "{}: discard_max_bytes {max}, discard_granularity {granularity}, \
                 discard_alignment {alignment}",
                image.device
            ));
            ensure(max > 0, || {
                format!("{} does not discard (discard_max_bytes 0)", image.device)
            })?;
            let (ranges, blocks) = file_ranges(image)?;
            cx.log(format!("sparse image: data {ranges:?}, {blocks} blocks"));
            ensure(ranges == byte_ranges(&DATA_RANGES), || {
                format!(
                    "the new sparse image has data at {ranges:?}, expected {:?}",
                    byte_ranges(&DATA_RANGES)
                )
            })?;
            let setup = Setup {
                vdev: DISCARD_VDEV,
                dev: "xvdh",
                mode: "w",
                device_type: "disk",
                config: FrontendConfig {
                    persistent: false,
                    ..FrontendConfig::default()
                },
                // Page 0 for parameter lists, 16 for a read of 64 KiB.
                data_pages: 17,
            };
            with_session(
                cx,
                store,
                image,
                fe,
                be,
                setup,
                Box::new(move |cx, store, front, link| {
                    discard_body(cx, store, image, be, front, link, (granularity, alignment))
                }),
            )
        },
    )
}

fn discard_body(
    cx: &mut Context,
    store: &mut Store,
    image: &LoopImage,
    be: &str,
    front: &mut VbdFront<'_, '_, '_>,
    link: Link,
    (granularity, alignment): (u64, u64),
) -> Outcome {
    cx.duration("connect", link.connect, "ms");
    // blkback's nodes, read raw and as the core parsed them.
    let raw: Vec<Option<String>> = [
        "feature-discard",
        "discard-granularity",
        "discard-alignment",
    ]
    .iter()
    .map(|n| store.read(&format!("{be}/{n}")))
    .collect::<Result<_, _>>()?;
    cx.log(format!(
        "blkback: feature-discard {:?}, discard-granularity {:?}, discard-alignment {:?}; parsed \
         {:?}",
        raw[0], raw[1], raw[2], link.features.discard
    ));
    let d = link
        .features
        .discard
        .ok_or_else(|| Failure(format!("no discard offered: feature-discard {:?}", raw[0])))?;
    ensure(
        u64::from(d.granularity) == granularity
            && u64::from(d.alignment) == alignment
            && raw[1].as_deref().map(str::trim) == Some(d.granularity.to_string().as_str())
            && link.info.discard.is_some(),
        || {
            format!(
                "discard parameters {d:?} (nodes {raw:?}), the loop device has granularity \
                 {granularity} alignment {alignment}"
            )
        },
    )?;
    cx.figure("granularity", f64::from(d.granularity), "B");
    cx.figure("alignment", f64::from(d.alignment), "B");

    let mut disk = Disk::new(DiskConfig::new(
        link.info,
        Identity::new(
            &link.info,
            "lab-vbd-discard",
            vdev_unique(DISCARD_VDEV).as_bytes(),
        ),
    ));
    let mut tag = 0u64;
    let mut next = || {
        tag += 1;
        tag
    };
    let d0 = front.data_frame(0);

    // READ CAPACITY(16): LBPME.
    let cap = data_in(
        front,
        &mut disk,
        next(),
        d0,
        &READ_CAPACITY_16,
        32,
        "READ CAPACITY(16)",
    )?;
    ensure(cap[14] & 0x80 != 0, || {
        format!(
            "READ CAPACITY(16) without LBPME: byte 14 = {:#04x}",
            cap[14]
        )
    })?;

    // VPD B0h: the unmap granularity and alignment the guest sees are blkback's, in blocks.
    let vpd = data_in(
        front,
        &mut disk,
        next(),
        d0,
        &[opcode::INQUIRY, 0x01, 0xb0, 0, 64, 0],
        64,
        "INQUIRY VPD B0h",
    )?;
    let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let (unmap_granularity, unmap_alignment) = (be32(&vpd[28..32]), be32(&vpd[32..36]));
    cx.log(format!(
        "VPD B0h: optimal unmap granularity {unmap_granularity} blocks, alignment {:#x}",
        unmap_alignment
    ));
    ensure(
        vpd[1] == 0xb0
            && unmap_granularity == d.granularity / 512
            && unmap_alignment == 0x8000_0000 | (d.alignment / 512),
        || {
            format!(
                "VPD B0h: page {:#04x}, unmap granularity {unmap_granularity}, alignment \
                 {unmap_alignment:#x}; blkback says {d:?}",
                vpd[1]
            )
        },
    )?;

    // Write 32 KiB into a hole: the file gets data there.
    let (hole_sector, hole_sectors) = HOLE_WRITE;
    let pages: Vec<Segment> = (0..(hole_sectors as usize * 512 / PAGE_SIZE))
        .map(|i| seg(front.data_frame(1 + i), 0, PAGE_SIZE as u16))
        .collect();
    let written = sectors_content(SEED.wrapping_add(60), hole_sector, hole_sectors);
    write10(
        front,
        &mut disk,
        next(),
        hole_sector,
        hole_sectors as u16,
        &pages,
        &written,
        "WRITE(10) into a hole",
    )?;

    let (before, blocks_before) = file_ranges(image)?;
    let mut data_sectors: Vec<(u64, u64)> = DATA_RANGES.to_vec();
    data_sectors.push(HOLE_WRITE);
    let expected_before = byte_ranges(&data_sectors);
    ensure(before == expected_before, || {
        format!("before UNMAP the image has data at {before:?}, expected {expected_before:?}")
    })?;

    // UNMAP: one parameter list with four descriptors.
    let mut list = vec![0u8; 8 + 16 * UNMAPPED.len()];
    let header = (list.len() - 2) as u16;
    list[0..2].copy_from_slice(&header.to_be_bytes());
    list[2..4].copy_from_slice(&((16 * UNMAPPED.len()) as u16).to_be_bytes());
    for (i, &(lba, n)) in UNMAPPED.iter().enumerate() {
        let d = &mut list[8 + 16 * i..8 + 16 * (i + 1)];
        d[0..8].copy_from_slice(&lba.to_be_bytes());
        d[8..12].copy_from_slice(&(n as u32).to_be_bytes());
    }
    let buf = [seg(d0, 0, list.len() as u16)];
    scatter(front, &buf, &list);
    let stats_before = blkback_stats(DISCARD_VDEV);
    let len = (list.len() as u16).to_be_bytes();
    let started = Instant::now();
    let c = command(
        front,
        &mut disk,
        next(),
        &[opcode::UNMAP, 0, 0, 0, 0, 0, 0, len[0], len[1], 0],
        DataDirection::ToDevice,
        &buf,
    )?;
    good(&c, "UNMAP")?;
    cx.duration("unmap", started.elapsed(), "ms");
    // WRITE SAME(16) with UNMAP: one more range.
    let (ws_lba, ws_blocks) = WRITE_SAME;
    let mut cdb = [0u8; 16];
    cdb[0] = opcode::WRITE_SAME_16;
    cdb[1] = 0x08;
    cdb[2..10].copy_from_slice(&ws_lba.to_be_bytes());
    cdb[10..14].copy_from_slice(&(ws_blocks as u32).to_be_bytes());
    let block = [seg(d0, 0, 512)];
    scatter(front, &block, &[0; 512]);
    let c = command(
        front,
        &mut disk,
        next(),
        &cdb,
        DataDirection::ToDevice,
        &block,
    )?;
    good(&c, "WRITE SAME(16) with UNMAP")?;
    let c = command(
        front,
        &mut disk,
        next(),
        &[opcode::SYNCHRONIZE_CACHE_10, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        DataDirection::None,
        &[],
    )?;
    good(&c, "SYNCHRONIZE CACHE(10)")?;
    let stats_after = blkback_stats(DISCARD_VDEV);
    let discards = stat(&stats_after, "ds_req").saturating_sub(stat(&stats_before, "ds_req"));
    cx.log(format!("blkback statistics after UNMAP: {stats_after:?}"));
    ensure(
        stats_after.is_empty() || discards == DISCARDED.len() as u64,
        || {
            format!(
                "blkback counted {discards} discard requests, UNMAP and WRITE SAME had {}",
                DISCARDED.len()
            )
        },
    )?;

    // The file: holes exactly where UNMAP said, st_blocks down by as much.
    let (after, blocks_after) = file_ranges(image)?;
    let expected = subtract(&expected_before, &byte_ranges(&DISCARDED));
    cx.log(format!(
        "after UNMAP: data {after:?}, {blocks_after} blocks (was {blocks_before})"
    ));
    ensure(after == expected, || {
        format!("after UNMAP the image has data at {after:?}, expected {expected:?}")
    })?;
    let unmapped_sectors: u64 = DISCARDED.iter().map(|u| u.1).sum();
    ensure(
        blocks_before - blocks_after.min(blocks_before) == unmapped_sectors,
        || {
            format!(
            "st_blocks went from {blocks_before} to {blocks_after}, {unmapped_sectors} sectors \
             were discarded"
        )
        },
    )?;
    cx.figure("data ranges before", before.len() as f64, "");
    cx.figure("after", after.len() as f64, "");
    cx.figure("st_blocks before", blocks_before as f64, "");
    cx.figure("after", blocks_after as f64, "");
    cx.figure("discarded", (unmapped_sectors * 512) as f64 / 1024.0, "KiB");

    // Read every range touched back through the SCSI layer, 8 sectors either side included:
    // zeros where discarded, the old content elsewhere; the file says the same.
    let content = |sector: u64| -> [u8; 512] {
        if DISCARDED.iter().any(|&(s, n)| (s..s + n).contains(&sector)) {
            [0; 512]
        } else if (hole_sector..hole_sector + hole_sectors).contains(&sector) {
            super::toolstack::sector_content(SEED.wrapping_add(60), sector)
        } else if DATA_RANGES
            .iter()
            .any(|&(s, n)| (s..s + n).contains(&sector))
        {
            super::toolstack::sector_content(SEED, sector)
        } else {
            [0; 512]
        }
    };
    let mut verified = 0usize;
    for &(s, n) in &DISCARDED {
        let from = s.saturating_sub(8);
        let to = (s + n + 8).min(DISCARD_SECTORS);
        // In pieces of at most 64 KiB (16 data pages).
        for first in (from..to).step_by(128) {
            let count = (to - first).min(128);
            let want: Vec<u8> = (first..first + count).flat_map(content).collect();
            let pages: Vec<Segment> = want
                .chunks(PAGE_SIZE)
                .enumerate()
                .map(|(i, c)| seg(front.data_frame(1 + i), 0, c.len() as u16))
                .collect();
            read10_expect(
                front,
                &mut disk,
                next(),
                first,
                count as u16,
                &pages,
                &want,
                "READ(10) of a discarded range",
            )?;
            verified += want.len();
        }
    }
    // And the whole file against the model.
    let whole: Vec<u8> = (0..DISCARD_SECTORS).flat_map(content).collect();
    let in_file = image.read_file(0, whole.len())?;
    ensure(in_file == whole, || {
        format!("the whole image: {}", first_difference(&in_file, &whole))
    })?;
    verified += whole.len();
    cx.figure("verified", verified as f64 / 1024.0, "KiB");
    let k = front.engine.counters();
    cx.log(format!("engine counters: {k:?}"));
    ensure(k.errors == 0, || format!("engine counters: {k:?}"))?;
    Ok(())
}

// ---- vbd-cdrom ----

/// xvdi.
const CDROM_VDEV: u32 = 51840;
/// xvdn.
const CDROM_2K_VDEV: u32 = 51920;
/// 2048-byte blocks of the image (600 KiB).
const CD_BLOCKS: u64 = 300;
const CD_BLOCK: usize = 2048;

/// A tiny ISO9660-like image: the known sector pattern everywhere, a primary volume
/// descriptor in block 16 and the set terminator in block 17.
fn cd_image() -> Vec<u8> {
    let mut image = sectors_content(SEED, 0, CD_BLOCKS * 4);
    let pvd = &mut image[16 * CD_BLOCK..17 * CD_BLOCK];
    pvd.fill(0);
    pvd[0] = 1;
    pvd[1..6].copy_from_slice(b"CD001");
    pvd[6] = 1;
    pvd[8..40].fill(b' ');
    pvd[40..72].fill(b' ');
    pvd[40..49].copy_from_slice(b"LAB_CDROM");
    pvd[80..84].copy_from_slice(&(CD_BLOCKS as u32).to_le_bytes());
    pvd[84..88].copy_from_slice(&(CD_BLOCKS as u32).to_be_bytes());
    pvd[120..122].copy_from_slice(&1u16.to_le_bytes());
    pvd[122..124].copy_from_slice(&1u16.to_be_bytes());
    pvd[124..126].copy_from_slice(&1u16.to_le_bytes());
    pvd[126..128].copy_from_slice(&1u16.to_be_bytes());
    pvd[128..130].copy_from_slice(&(CD_BLOCK as u16).to_le_bytes());
    pvd[130..132].copy_from_slice(&(CD_BLOCK as u16).to_be_bytes());
    pvd[881] = 1;
    let end = &mut image[17 * CD_BLOCK..18 * CD_BLOCK];
    end.fill(0);
    end[0] = 255;
    end[1..6].copy_from_slice(b"CD001");
    end[6] = 1;
    image
}

fn run_cdrom(cx: &mut Context, vdev: u32, dev: &'static str, block: Option<u32>) -> Outcome {
    let content = cd_image();
    on_device(
        cx,
        vdev,
        |name| LoopImage::create_from(name, &content, block),
        |cx, store, image, fe, be| {
            let setup = Setup {
                vdev,
                dev,
                mode: "r",
                device_type: "cdrom",
                config: FrontendConfig {
                    persistent: false,
                    ..FrontendConfig::default()
                },
                data_pages: 8,
            };
            with_session(
                cx,
                store,
                image,
                fe,
                be,
                setup,
                Box::new(|cx, _store, front, link| {
                    cdrom_body(cx, image, &content, front, link, vdev)
                }),
            )
        },
    )
}

/// Fails unless `c` is CHECK CONDITION with `key`/`asc` and nothing transferred.
fn refused(c: &xenvbd_core::ScsiCompletion, key: u8, asc: u8, what: &str) -> Outcome {
    ensure(
        c.status == ScsiStatus::CheckCondition
            && c.sense.key == key
            && c.sense.asc == asc
            && c.transferred == 0,
        || {
            format!(
                "{what}: status {:?}, sense key {:#x} asc {:#x}, {} bytes transferred; expected \
                 CHECK CONDITION key {key:#x} asc {asc:#x}",
                c.status, c.sense.key, c.sense.asc, c.transferred
            )
        },
    )
}

fn cdrom_body(
    cx: &mut Context,
    image: &LoopImage,
    content: &[u8],
    front: &mut VbdFront<'_, '_, '_>,
    link: Link,
    vdev: u32,
) -> Outcome {
    cx.duration("connect", link.connect, "ms");
    let info = VdiskInfo::from_bits_truncate(link.features.info);
    cx.log(format!(
        "blkback: info {:#x} ({info:?}), device-type {:?}, sectors {:?}, sector-size {:?}",
        link.features.info,
        link.features.device_type,
        link.features.sectors,
        link.features.sector_size
    ));
    cx.text("info", &format!("{:#x}", link.features.info));
    cx.figure("sector-size", f64::from(link.info.logical_block_size), "B");
    // blkback sets VDISK_CDROM from the frontend's device-type and VDISK_READONLY from mode r.
    ensure(
        info.contains(VdiskInfo::CDROM)
            && info.contains(VdiskInfo::READONLY)
            && link.info.cdrom
            && link.info.read_only
            && link.info.sectors == CD_BLOCKS * 4
            && link.info.logical_block_size == image.block_size,
        || format!("blkback's info {info:?}, disk {:?}", link.info),
    )?;
    let mut disk = Disk::new(DiskConfig::new(
        link.info,
        Identity::new(&link.info, "lab-vbd-cdrom", vdev_unique(vdev).as_bytes()),
    ));
    let mut tag = 0u64;
    let mut next = || {
        tag += 1;
        tag
    };
    let d = |i: usize| front.data_frame(i);
    let (d0, d1, d2, d3) = (d(0), d(1), d(2), d(3));

    // INQUIRY: CD/DVD (5), removable.
    let inq = data_in(
        front,
        &mut disk,
        next(),
        d0,
        &[opcode::INQUIRY, 0, 0, 0, 96, 0],
        96,
        "INQUIRY",
    )?;
    cx.log(format!(
        "INQUIRY: type {:#x}, rmb {}, '{}' '{}'",
        inq[0] & 0x1f,
        inq[1] >> 7,
        String::from_utf8_lossy(&inq[8..16]).trim(),
        String::from_utf8_lossy(&inq[16..32]).trim()
    ));
    ensure(inq[0] & 0x1f == 5 && inq[1] & 0x80 != 0, || {
        format!(
            "INQUIRY: peripheral {:#04x}, byte 1 {:#04x}",
            inq[0], inq[1]
        )
    })?;
    cx.figure("peripheral type", f64::from(inq[0] & 0x1f), "");

    // READ CAPACITY(10): 300 blocks of 2048.
    let cap = data_in(
        front,
        &mut disk,
        next(),
        d0,
        &[opcode::READ_CAPACITY_10, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        8,
        "READ CAPACITY(10)",
    )?;
    let last = u32::from_be_bytes([cap[0], cap[1], cap[2], cap[3]]);
    let block = u32::from_be_bytes([cap[4], cap[5], cap[6], cap[7]]);
    ensure(
        u64::from(last) + 1 == CD_BLOCKS && block as usize == CD_BLOCK,
        || format!("READ CAPACITY(10): last LBA {last}, block {block}"),
    )?;
    cx.figure("blocks", f64::from(last + 1), "");
    cx.figure("block", f64::from(block), "B");

    // GET CONFIGURATION, all features: current profile CD-ROM, random readable in 2048-byte
    // blocks.
    let buf = [seg(d0, 0, 512)];
    let c = command(
        front,
        &mut disk,
        next(),
        &[opcode::GET_CONFIGURATION, 0, 0, 0, 0, 0, 0, 2, 0, 0],
        DataDirection::FromDevice,
        &buf,
    )?;
    good(&c, "GET CONFIGURATION")?;
    let conf = gather(front, &buf);
    let conf = &conf[..(c.transferred as usize).min(conf.len())];
    ensure(conf.len() >= 8, || {
        format!("GET CONFIGURATION: {} bytes", conf.len())
    })?;
    let profile = u16::from_be_bytes([conf[6], conf[7]]);
    let mut at = 8;
    let mut random_block = None;
    let mut features = Vec::new();
    while at + 4 <= conf.len() {
        let code = u16::from_be_bytes([conf[at], conf[at + 1]]);
        let len = usize::from(conf[at + 3]);
        features.push(code);
        if code == 0x0010 && at + 8 <= conf.len() {
            random_block = Some(u32::from_be_bytes([
                conf[at + 4],
                conf[at + 5],
                conf[at + 6],
                conf[at + 7],
            ]));
        }
        at += 4 + len;
    }
    cx.log(format!(
        "GET CONFIGURATION: profile {profile:#06x}, features {features:04x?}, random readable \
         block {random_block:?}"
    ));
    ensure(profile == 0x0008 && random_block == Some(2048), || {
        format!(
            "GET CONFIGURATION: current profile {profile:#06x} (CD-ROM is 0x0008), random \
             readable block {random_block:?}"
        )
    })?;

    // READ TOC, format 0, LBA: track 1 at 0, lead-out at the capacity.
    let toc = data_in(
        front,
        &mut disk,
        next(),
        d0,
        &[opcode::READ_TOC, 0, 0, 0, 0, 0, 0, 0, 64, 0],
        64,
        "READ TOC",
    )?;
    let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let (first, last_track) = (toc[2], toc[3]);
    let (t1, t1_start) = (toc[6], be32(&toc[8..12]));
    let (lo, lead_out) = (toc[14], be32(&toc[16..20]));
    cx.log(format!(
        "READ TOC: tracks {first}..{last_track}, track {t1} at {t1_start}, {lo:#x} at {lead_out}"
    ));
    ensure(
        first == 1
            && last_track == 1
            && t1 == 1
            && t1_start == 0
            && lo == 0xaa
            && u64::from(lead_out) == CD_BLOCKS,
        || format!("READ TOC: {:02x?}", &toc[..20]),
    )?;

    // READ(10) of the volume descriptors (blocks 16 and 17, one page) and a scattered read of
    // three blocks in three sub-page pieces (bounced: only whole pages are granted as they
    // are).
    let mut verified = 0usize;
    let reads: [(u64, Vec<Segment>); 2] = [
        (16, vec![seg(d1, 0, 4096)]),
        (
            100,
            vec![seg(d1, 512, 3584), seg(d2, 100, 1000), seg(d3, 0, 1560)],
        ),
    ];
    for (lba, segs) in &reads {
        let bytes: usize = segs.iter().map(|s| usize::from(s.length)).sum();
        let want = &content[*lba as usize * CD_BLOCK..*lba as usize * CD_BLOCK + bytes];
        scatter(front, segs, &vec![0x5a; bytes]);
        let c = command(
            front,
            &mut disk,
            next(),
            &cdb10(opcode::READ_10, *lba, (bytes / CD_BLOCK) as u16),
            DataDirection::FromDevice,
            segs,
        )?;
        good(&c, "READ(10)")?;
        let got = gather(front, segs);
        ensure(got == want, || {
            format!("READ(10) at block {lba}: {}", first_difference(&got, want))
        })?;
        verified += bytes;
    }
    let pvd = gather(front, &[seg(d1, 0, 64)]);
    cx.log(format!(
        "block 16: type {}, '{}', volume '{}'",
        pvd[0],
        String::from_utf8_lossy(&pvd[1..6]),
        String::from_utf8_lossy(&pvd[40..49])
    ));

    // READ(10) past the end: LOGICAL BLOCK ADDRESS OUT OF RANGE, before the engine.
    let requests = front.engine.counters().requests;
    let c = command(
        front,
        &mut disk,
        next(),
        &cdb10(opcode::READ_10, CD_BLOCKS - 1, 2),
        DataDirection::FromDevice,
        &[seg(d1, 0, 4096)],
    )?;
    refused(&c, KEY_ILLEGAL_REQUEST, 0x21, "READ(10) past the end")?;

    // WRITE(10): DATA PROTECT / WRITE PROTECTED, nothing reaches the engine.
    scatter(front, &[seg(d1, 0, 4096)], &[0xee; 4096]);
    let c = command(
        front,
        &mut disk,
        next(),
        &cdb10(opcode::WRITE_10, 20, 2),
        DataDirection::ToDevice,
        &[seg(d1, 0, 4096)],
    )?;
    refused(&c, KEY_DATA_PROTECT, 0x27, "WRITE(10) on the CD-ROM")?;
    ensure(front.engine.counters().requests == requests, || {
        "a refused command reached the engine".into()
    })?;

    // blkback refuses a write itself (the engine asked directly, past the SCSI layer).
    let mut done = Vec::new();
    let op = BlockOp::Write {
        sector: 80,
        sectors: 8,
        fua: false,
    };
    ensure(
        try_submit(front, 99, op, &[seg(d1, 0, 4096)], &mut done)?,
        || "the engine's queue is full".into(),
    )?;
    poll_until(
        front,
        &mut done,
        "a write to the read-only backend",
        |_, c| !c.is_empty(),
    )?;
    cx.log(format!("a write past the SCSI layer: {done:?}"));
    ensure(
        done.len() == 1 && done[0].status == BlockStatus::IoError && done[0].transferred == 0,
        || format!("blkback accepted a write to a read-only CD-ROM: {done:?}"),
    )?;
    let in_file = image.read_file(0, content.len())?;
    ensure(in_file == content, || {
        format!(
            "the CD-ROM image changed: {}",
            first_difference(&in_file, content)
        )
    })?;
    verified += content.len();
    cx.figure("verified", verified as f64 / 1024.0, "KiB");
    // The scattered read's odd pieces went through bounce pages.
    let k = front.engine.counters();
    cx.log(format!("engine counters: {k:?}"));
    cx.figure("bounced segments", k.bounced_segments as f64, "");
    ensure(k.bounced_segments > 0, || format!("nothing bounced: {k:?}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(
            byte_ranges(&[(8, 8), (0, 8), (32, 8)]),
            vec![(0, 8192), (16384, 20480)]
        );
        assert_eq!(
            subtract(&[(0, 100), (200, 300)], &[(10, 20), (90, 210), (250, 260)]),
            vec![(0, 10), (20, 90), (210, 250), (260, 300)]
        );
        assert_eq!(subtract(&[(0, 100)], &[(0, 100)]), vec![]);
    }

    #[test]
    fn persistent_layouts_are_whole_sectors() {
        for i in 0..PERSISTENT_OPS + 2 {
            let layout = persistent_layout(i);
            let bytes: usize = layout.iter().map(|l| usize::from(l.2)).sum();
            assert_eq!(bytes % 512, 0, "{i}");
            assert!(layout
                .iter()
                .all(|&(p, o, l)| p < SLOT_PAGES && usize::from(o) + usize::from(l) <= PAGE_SIZE));
        }
    }

    #[test]
    fn cd_image_has_volume_descriptors() {
        let image = cd_image();
        assert_eq!(image.len(), CD_BLOCKS as usize * CD_BLOCK);
        assert_eq!(&image[16 * 2048 + 1..16 * 2048 + 6], b"CD001");
        assert_eq!(image[17 * 2048], 255);
    }
}
