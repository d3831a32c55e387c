//! `vbd-resize`: the disk grows under a connected frontend. The image file is extended and the
//! loop device told (`LOOP_SET_CAPACITY`); blkback notices, writes the new `sectors` (and its
//! state again, to wake the frontend's watch), and the SCSI layer, given the new capacity with
//! `Disk::set_capacity`, raises CAPACITY DATA HAS CHANGED before READ CAPACITY shows the new
//! size; the new blocks are read and written through the engine.

use std::time::{Duration, Instant};

use xen_abi::xenbus::XenbusState;
use xenvbd_core::blkif::FrontendConfig;
use xenvbd_core::scsi::sense::{KEY_ILLEGAL_REQUEST, KEY_UNIT_ATTENTION};
use xenvbd_core::scsi::{opcode, Disk, DiskConfig, Identity};
use xenvbd_core::{DataDirection, ScsiStatus, Segment};

use super::toolstack::{device_dirs, modprobe, remove_device, sectors_content, LoopImage, Store};
use super::vbd_core::{
    cdb10, command, expect_in_image, features, gather, good, read10_expect, seg, write10,
    READ_CAPACITY_16,
};
use super::vbd_session::{with_session, Link, Setup};
use crate::platform::vbd::VbdFront;
use crate::platform::PAGE_SIZE;
use crate::scenario::{ensure, Context, Failure, Outcome, ResultExt, Scenario};

/// The scenario.
pub const SCENARIO: Scenario = Scenario {
    name: "vbd-resize",
    description: "online resize under the block core: the image grows from 2 to 3 MiB \
                  (LOOP_SET_CAPACITY), blkback publishes the new sectors while Connected, \
                  Disk::set_capacity raises CAPACITY DATA HAS CHANGED once, READ CAPACITY(16) \
                  shows the new size, the new blocks read and write through the engine, past \
                  the new end is out of range",
    default: true,
    timeout: Duration::from_secs(120),
    run,
};

/// xvdp.
const VDEV: u32 = 51952;
/// The image's content seed.
const SEED: u8 = 31;
/// 2 MiB, then 3 MiB.
const SECTORS: u64 = 4096;
const GROWN: u64 = 6144;
/// How long blkback may take to notice (its thread looks every 100 ms).
const RESIZE_TIMEOUT: Duration = Duration::from_secs(10);

fn run(cx: &mut Context) -> Outcome {
    modprobe("xen-blkback")?;
    let mut store = Store::open()?;
    let (fe, be) = device_dirs("vbd", VDEV);
    remove_device(&mut store, &fe, &be)?;
    let image = LoopImage::create(cx.name(), SEED, SECTORS, None)?;
    let setup = Setup {
        vdev: VDEV,
        dev: "xvdp",
        mode: "w",
        device_type: "disk",
        config: FrontendConfig {
            persistent: false,
            ..FrontendConfig::default()
        },
        data_pages: 16,
    };
    let outcome = with_session(
        cx,
        &mut store,
        &image,
        &fe,
        &be,
        setup,
        Box::new(|cx, store, front, link| body(cx, store, &image, &be, front, link)),
    );
    let removed = remove_device(&mut store, &fe, &be);
    outcome.and(removed)
}

/// READ CAPACITY(16): (blocks, block size).
fn read_capacity(
    front: &mut VbdFront<'_, '_, '_>,
    disk: &mut Disk,
    tag: u64,
) -> Result<(xenvbd_core::ScsiCompletion, u64, u32), Failure> {
    let buf = [seg(front.data_frame(0), 0, 32)];
    let c = command(
        front,
        disk,
        tag,
        &READ_CAPACITY_16,
        DataDirection::FromDevice,
        &buf,
    )?;
    let cap = gather(front, &buf);
    let mut last = [0u8; 8];
    last.copy_from_slice(&cap[0..8]);
    let block = u32::from_be_bytes([cap[8], cap[9], cap[10], cap[11]]);
    Ok((c, u64::from_be_bytes(last).wrapping_add(1), block))
}

fn body(
    cx: &mut Context,
    store: &mut Store,
    image: &LoopImage,
    be: &str,
    front: &mut VbdFront<'_, '_, '_>,
    link: Link,
) -> Outcome {
    cx.duration("connect", link.connect, "ms");
    let mut disk = Disk::new(DiskConfig::new(
        link.info,
        Identity::new(&link.info, "lab-vbd-resize", b"lab/vbd/51952"),
    ));
    let mut tag = 0u64;
    let mut next = || {
        tag += 1;
        tag
    };
    let (c, blocks, _) = read_capacity(front, &mut disk, next())?;
    good(&c, "READ CAPACITY(16)")?;
    ensure(blocks == SECTORS, || {
        format!("READ CAPACITY(16) before: {blocks} blocks")
    })?;

    // Grow the file with known content in the new part, then the loop device.
    {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&image.file)
            .context(format!("open {}", image.file))?;
        file.write_all_at(
            &sectors_content(SEED, SECTORS, GROWN - SECTORS),
            SECTORS * 512,
        )
        .context(format!("extend {}", image.file))?;
    }
    crate::platform::set_loop_capacity(&image.device)
        .context(format!("LOOP_SET_CAPACITY on {}", image.device))?;
    let started = Instant::now();
    let node = format!("{be}/sectors");
    loop {
        let now = store.read_u64(&node)?;
        if now == GROWN {
            break;
        }
        ensure(started.elapsed() < RESIZE_TIMEOUT, || {
            format!(
                "blkback's sectors still {now} {} s after the loop device grew to {GROWN}",
                RESIZE_TIMEOUT.as_secs()
            )
        })?;
        std::thread::sleep(Duration::from_millis(5));
    }
    let noticed = started.elapsed();
    cx.duration("blkback noticed", noticed, "ms");
    let state = store.state(be)?;
    let offer = features(store, be)?;
    let info = offer
        .disk_info()
        .map_err(|e| Failure(format!("disk info after the resize: {e}")))?;
    cx.log(format!(
        "after the resize blkback is {state:?} with {} sectors",
        info.sectors
    ));
    ensure(
        state == XenbusState::Connected && info.sectors == GROWN,
        || format!("after the resize: backend {state:?}, {info:?}"),
    )?;

    // The glue hands the new size to the SCSI layer: the next command reports the change once.
    disk.set_capacity(info.sectors);
    let (c, _, _) = read_capacity(front, &mut disk, next())?;
    cx.log(format!(
        "first command after set_capacity: {:?}, sense key {:#x} asc {:#x} ascq {:#x}",
        c.status, c.sense.key, c.sense.asc, c.sense.ascq
    ));
    ensure(
        c.status == ScsiStatus::CheckCondition
            && c.sense.key == KEY_UNIT_ATTENTION
            && c.sense.asc == 0x2a
            && c.sense.ascq == 0x09,
        || {
            format!(
                "the first command after the resize: {:?}, sense key {:#x} asc {:#x} ascq {:#x}; \
                 expected CAPACITY DATA HAS CHANGED",
                c.status, c.sense.key, c.sense.asc, c.sense.ascq
            )
        },
    )?;
    let (c, blocks, block) = read_capacity(front, &mut disk, next())?;
    good(&c, "READ CAPACITY(16) after the unit attention")?;
    ensure(blocks == GROWN && block == 512, || {
        format!("READ CAPACITY(16) after the resize: {blocks} blocks of {block}")
    })?;
    cx.figure("blocks before", SECTORS as f64, "");
    cx.figure("after", blocks as f64, "");

    // The new blocks: read the content the file got, write the last 64 KiB and read it back.
    let pages: Vec<Segment> = (0..16)
        .map(|i| seg(front.data_frame(i), 0, PAGE_SIZE as u16))
        .collect();
    let mut verified = 0usize;
    let want = sectors_content(SEED, SECTORS, 128);
    read10_expect(
        front,
        &mut disk,
        next(),
        SECTORS,
        128,
        &pages,
        &want,
        "READ(10) of the new blocks",
    )?;
    verified += want.len();
    let last = GROWN - 128;
    let pattern = sectors_content(SEED.wrapping_add(50), last, 128);
    write10(
        front,
        &mut disk,
        next(),
        last,
        128,
        &pages,
        &pattern,
        "WRITE(10) of the last 64 KiB",
    )?;
    read10_expect(
        front,
        &mut disk,
        next(),
        last,
        128,
        &pages,
        &pattern,
        "READ(10) of the last 64 KiB",
    )?;
    expect_in_image(image, last, &pattern, "the last 64 KiB")?;
    verified += 2 * pattern.len();

    // Past the new end: refused by the SCSI layer.
    let c = command(
        front,
        &mut disk,
        next(),
        &cdb10(opcode::READ_10, GROWN - 8, 16),
        DataDirection::FromDevice,
        &pages[..2],
    )?;
    ensure(
        c.status == ScsiStatus::CheckCondition
            && c.sense.key == KEY_ILLEGAL_REQUEST
            && c.sense.asc == 0x21,
        || {
            format!(
                "READ(10) past the new end: {:?}, sense key {:#x} asc {:#x}",
                c.status, c.sense.key, c.sense.asc
            )
        },
    )?;
    cx.figure("verified", verified as f64 / 1024.0, "KiB");
    let k = front.engine.counters();
    ensure(k.errors == 0, || format!("engine counters: {k:?}"))?;
    Ok(())
}
