//! `vbd-bench`: our block frontend and Linux's xen-blkfront side by side, on the same backend.
//!
//! Both drive xen-blkback over a loop device on a 64 MiB image in dom0's tmpfs (each frontend
//! its own image of identical content), through the same workloads in one boot: 4 KiB random
//! read and write, 64 KiB sequential read and write, each at queue depth 1 and 32, with the same
//! offset sequence (a seeded generator per cell).
//!
//! - Ours: xenvbd-core as the Windows StorPort glue will drive it, READ(10)/WRITE(10) CDBs
//!   through `Disk::submit` into the blkif engine ([`BenchFront`]: 32 operations, a 512-page
//!   pool), with everything blkback offers negotiated (multi-page ring, indirect segments,
//!   persistent grants, flush). It runs as a dom0 process: completions are polled for a short
//!   while before waiting on the event channel.
//! - Linux: xen-blkfront's `/dev/xvdh`, opened with `O_DIRECT`, the queue kept full with native
//!   AIO as fio's libaio engine does ([`Aio`]).
//!
//! Both are connected at once: Linux's VBD first, with xen-blkfront loaded, then
//! `/sys/bus/xen/drivers_autoprobe` is turned off so that xen-blkfront does not grab ours when
//! its nodes appear (it would grab every `device/vbd` node). Each cell runs in `ROUNDS` short
//! rounds per side, alternating, so that both sides see the same load on the shared machine.
//! Hot loops are timed with the time-stamp counter ([`crate::platform::clock`]): in this dom0
//! `Instant::now()` is a system call. Every eighth read is checked against a model of what each
//! 4 KiB block holds, and at the end, after a flush, a sample of blocks is read from each image
//! file. The table (IOPS and MB/s of both, ours/Linux and the geometric mean) is the result's
//! report; profiles say where our side's time went and what the layers below both saw.

use std::fs::{File, OpenOptions};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::time::{Duration, Instant};

use xen_abi::xenbus::XenbusState;
use xenvbd_core::blkif::{BlockCompletion, Counters, EngineState, FrontendConfig, FrontendParams};
use xenvbd_core::scsi::{opcode, Action, BlockOutcome, Disk, DiskConfig, Identity, PendingCommand};
use xenvbd_core::{
    BlockOp, DataDirection, GuestMemory, ScsiRequest, ScsiStatus, Segment, Tag, PAGE_SIZE,
};

use super::linux_frontends::{load_frontend, unload_frontend};
use super::toolstack::{
    device_dirs, modprobe, module_loaded, remove_device, wait_path, write_vbd_nodes, LoopImage,
    Store,
};
use super::vbd_core::{
    all_grants_back, bind_queue_ports, features, publish_and_connect, wait_queue_events,
};
use crate::platform::aio::{Aio, AioCompletion, AioRequest};
use crate::platform::clock::{ticks, Tsc};
use crate::platform::evtchn::EventChannels;
use crate::platform::gntalloc::Gntalloc;
use crate::platform::pool::PagePool;
use crate::platform::vbd::{BenchFront, EvtchnEvents, BENCH_DATA_START, BENCH_JOBS, QUEUES};
use crate::scenario::{ensure, Context, Failure, Outcome, ResultExt, Scenario};

/// The scenario (not in the default set).
pub const SCENARIO: Scenario = Scenario {
    name: "vbd-bench",
    description: "benchmark: xenvbd-core (SCSI layer + blkif engine, every queue, persistent \
                  grants, indirect, multi-page ring, one kick per batch) vs Linux's \
                  xen-blkfront (O_DIRECT, native AIO) on xen-blkback over tmpfs loop devices: \
                  4k random read/write, 64k sequential read/write at QD1 and QD32; IOPS, MB/s, \
                  ours/Linux and the geometric mean",
    default: false,
    timeout: Duration::from_secs(480),
    run: |cx| run(cx, true),
};

/// `vbd-bench` with our glue sending each notification the engine asks for at once, one per
/// submission that finds blkback idle, where Linux's side (one `io_submit` per batch, blk-mq's
/// `bd->last`) and `vbd-bench` kick once per batch: what batching is worth.
pub const UNBATCHED: Scenario = Scenario {
    name: "vbd-bench-unbatched",
    description: "vbd-bench with our side's event-channel notifications sent as the engine \
                  asks, one per submission (no batching)",
    default: false,
    timeout: Duration::from_secs(480),
    run: |cx| run(cx, false),
};

/// Our VBD: xvdg.
const OURS: (u32, &str) = (51808, "xvdg");
/// Linux's VBD: xvdh.
const LINUX: (u32, &str) = (51824, "xvdh");
/// The size of each image.
const IMAGE_BYTES: u64 = 64 << 20;
/// Rounds per cell and side, ours and Linux's alternating (in each four rounds, ours first in
/// the first and the last, Linux's in the two between), so that both see the same load on the
/// machine.
const ROUNDS: usize = 8;
/// How long each round runs (then the requests in flight are drained).
const ROUND_TIME: Duration = Duration::from_millis(750);
/// How long the warm-up runs (64 KiB sequential reads at the deepest queue, not measured).
const WARM_UP: Duration = Duration::from_millis(500);
/// The deepest queue.
const MAX_QD: usize = 32;
/// The largest request.
const MAX_BS: usize = 64 * 1024;
/// Data pages per request slot.
const PAGES_PER_SLOT: usize = MAX_BS / PAGE_SIZE;
/// Every this many reads (by sequence number) is checked against the model.
const VERIFY_EVERY: u64 = 8;
/// Blocks of each image file checked at the end (random ones and written ones).
const FILE_SAMPLE: usize = 512;
/// How long our side polls the ring for completions before it waits on the event channel.
const SPIN: Duration = Duration::from_micros(50);
/// How long one request may take.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the backend may take to change state.
const STATE_TIMEOUT: Duration = Duration::from_secs(20);
/// The offset generator's seed (each cell adds its index).
const RNG_SEED: u64 = 0x7ab1_e5ee_d000_0001;
/// Whether a new device on the frontend bus is bound to its driver at once.
const AUTOPROBE: &str = "/sys/bus/xen/drivers_autoprobe";
/// gntalloc's module parameter capping the pages it grants.
const GNTALLOC_LIMIT: &str = "/sys/module/xen_gntalloc/parameters/limit";

/// One workload.
#[derive(Clone, Copy, Debug)]
struct Cell {
    label: &'static str,
    random: bool,
    write: bool,
    bs: usize,
    qd: usize,
}

const fn cell(label: &'static str, random: bool, write: bool, bs: usize, qd: usize) -> Cell {
    Cell {
        label,
        random,
        write,
        bs,
        qd,
    }
}

/// The cells, in the order both sides run them (sequential reads after random writes read
/// back what those wrote).
const CELLS: [Cell; 8] = [
    cell("4k randread", true, false, 4096, 1),
    cell("4k randread", true, false, 4096, 32),
    cell("4k randwrite", true, true, 4096, 1),
    cell("4k randwrite", true, true, 4096, 32),
    cell("64k seqread", false, false, 65536, 1),
    cell("64k seqread", false, false, 65536, 32),
    cell("64k seqwrite", false, true, 65536, 1),
    cell("64k seqwrite", false, true, 65536, 32),
];

/// The warm-up.
const WARM: Cell = cell("warm-up", false, false, 65536, MAX_QD);

/// The byte offsets of a cell's requests, in submission order.
#[derive(Debug)]
struct Offsets {
    state: u64,
    random: bool,
    bs: u64,
    next: u64,
}

impl Offsets {
    fn new(index: usize, cell: Cell) -> Self {
        Self {
            state: RNG_SEED.wrapping_add(index as u64),
            random: cell.random,
            bs: cell.bs as u64,
            next: 0,
        }
    }

    fn next(&mut self) -> u64 {
        let slots = IMAGE_BYTES / self.bs;
        if self.random {
            // splitmix64
            self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) % slots * self.bs
        } else {
            let at = self.next % slots * self.bs;
            self.next += 1;
            at
        }
    }
}

/// Where a side is in a cell's request sequence, kept across rounds.
#[derive(Debug)]
struct Stream {
    offsets: Offsets,
    n: u64,
}

impl Stream {
    fn new(index: usize, cell: Cell) -> Self {
        Self {
            offsets: Offsets::new(index, cell),
            n: 0,
        }
    }

    /// The next request's number and offset.
    fn next(&mut self) -> (u64, u64) {
        let n = self.n;
        self.n += 1;
        (n, self.offsets.next())
    }
}

/// Word `k` of 512-byte sector `lba` as written by `writer` (0: the image as created).
fn word(writer: u8, lba: u64, k: u64) -> u64 {
    lba.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (u64::from(writer) << 56) ^ (k << 40) ^ 0x5a5a
}

/// Fills `buf` with `writer`'s content of the sectors from `lba`.
fn fill(buf: &mut [u8], writer: u8, lba: u64) {
    for (i, chunk) in buf.chunks_exact_mut(8).enumerate() {
        let (sector, k) = ((i / 64) as u64, (i % 64) as u64);
        chunk.copy_from_slice(&word(writer, lba + sector, k).to_le_bytes());
    }
}

/// Which writer last wrote each 4 KiB block of an image.
#[derive(Debug)]
struct Model {
    writer: Vec<u8>,
}

impl Model {
    fn new() -> Self {
        Self {
            writer: vec![0; (IMAGE_BYTES / PAGE_SIZE as u64) as usize],
        }
    }

    fn record(&mut self, offset: u64, len: usize, writer: u8) {
        let first = (offset / PAGE_SIZE as u64) as usize;
        let n = len / PAGE_SIZE;
        if let Some(blocks) = self.writer.get_mut(first..first + n) {
            blocks.fill(writer);
        }
    }

    /// Checks `data` read at `offset` against the model.
    fn check(&self, offset: u64, data: &[u8]) -> Result<(), String> {
        for (b, block) in data.chunks(PAGE_SIZE).enumerate() {
            let at = offset + (b * PAGE_SIZE) as u64;
            let Some(&writer) = self.writer.get((at / PAGE_SIZE as u64) as usize) else {
                return Err(format!("offset {at} is outside the image"));
            };
            for (i, chunk) in block.chunks_exact(8).enumerate() {
                let lba = at / 512 + (i / 64) as u64;
                let want = word(writer, lba, (i % 64) as u64);
                let got = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
                if got != want {
                    return Err(format!(
                        "byte {} of the 4 KiB block at offset {at}: {got:#018x}, expected \
                         {want:#018x} (written by {})",
                        i * 8,
                        if writer == 0 {
                            "nobody: the image as created".to_owned()
                        } else {
                            format!("cell {writer}")
                        }
                    ));
                }
            }
        }
        Ok(())
    }

    /// The blocks checked in the image file at the end: random ones, and as many of those
    /// written during the run, evenly spaced.
    fn sample(&self) -> Vec<usize> {
        let mut picks = Offsets::new(99, cell("", true, false, PAGE_SIZE, 1));
        let mut blocks: Vec<usize> = (0..FILE_SAMPLE / 2)
            .map(|_| (picks.next() / PAGE_SIZE as u64) as usize)
            .collect();
        let written: Vec<usize> = (0..self.writer.len())
            .filter(|b| self.writer[*b] != 0)
            .collect();
        let step = (written.len() / (FILE_SAMPLE / 2)).max(1);
        blocks.extend(written.iter().step_by(step).take(FILE_SAMPLE / 2));
        blocks
    }

    /// Checks the sample of blocks in the image file; returns the bytes checked.
    fn check_file(&self, image: &LoopImage) -> Result<usize, Failure> {
        let file = File::open(&image.file).context(format!("open {}", image.file))?;
        let mut buf = vec![0u8; PAGE_SIZE];
        let blocks = self.sample();
        for b in &blocks {
            let at = (*b * PAGE_SIZE) as u64;
            file.read_exact_at(&mut buf, at)
                .context(format!("read {}", image.file))?;
            self.check(at, &buf)
                .map_err(|e| Failure(format!("{}: {e}", image.file)))?;
        }
        Ok(blocks.len() * PAGE_SIZE)
    }
}

/// Writes an image of the initial content and attaches it to a loop device.
fn make_image(name: &str) -> Result<LoopImage, Failure> {
    let path = format!("/dev/shm/{name}.img");
    let file = File::create(&path).context(format!("create {path}"))?;
    let mut chunk = vec![0u8; 1 << 20];
    for at in (0..IMAGE_BYTES).step_by(chunk.len()) {
        fill(&mut chunk, 0, at / 512);
        file.write_all_at(&chunk, at)
            .context(format!("write {path}"))?;
    }
    drop(file);
    LoopImage::attach(path, IMAGE_BYTES / 512, None)
}

/// What a cell measured.
#[derive(Clone, Copy, Debug, Default)]
struct Measured {
    ops: u64,
    bytes: u64,
    secs: f64,
    verified: u64,
}

impl Measured {
    fn add(&mut self, o: Self) {
        self.ops += o.ops;
        self.bytes += o.bytes;
        self.secs += o.secs;
        self.verified += o.verified;
    }

    fn iops(&self) -> f64 {
        self.ops as f64 / self.secs.max(1e-9)
    }

    fn mbps(&self) -> f64 {
        self.bytes as f64 / self.secs.max(1e-9) / 1e6
    }
}

/// Where our side's time went in a cell.
#[derive(Clone, Copy, Debug, Default)]
struct Profile {
    counters: Counters,
    notifies: u64,
    /// Calls of the engine's `poll`, and those that completed nothing.
    polls: u64,
    empty_polls: u64,
    /// Waits on the event channel (the spin found nothing).
    blocks: u64,
    /// Counter ticks ([`clock`]) in the SCSI layer (`Disk::submit`, completing the command).
    scsi: u64,
    /// Time in the engine's `submit` and `poll`, notifications included.
    submit: u64,
    poll: u64,
    /// Time notifying the backend (`IOCTL_EVTCHN_NOTIFY`).
    notify: u64,
    /// Time blocked on the event channel (poll, read, unmask).
    waiting: u64,
    /// Time filling write buffers and checking read data.
    data: u64,
}

impl Profile {
    fn add(&mut self, o: Self) {
        let (a, b) = (&mut self.counters, o.counters);
        a.requests += b.requests;
        a.ring_requests += b.ring_requests;
        a.segments += b.segments;
        a.bounced_segments += b.bounced_segments;
        a.indirect_requests += b.indirect_requests;
        a.persistent_hits += b.persistent_hits;
        a.errors += b.errors;
        self.notifies += o.notifies;
        self.polls += o.polls;
        self.empty_polls += o.empty_polls;
        self.blocks += o.blocks;
        self.scsi += o.scsi;
        self.submit += o.submit;
        self.poll += o.poll;
        self.notify += o.notify;
        self.waiting += o.waiting;
        self.data += o.data;
    }
}

/// A request of ours in flight.
#[derive(Clone, Copy, Debug)]
struct Flight {
    n: u64,
    offset: u64,
    op: BlockOp,
    pending: PendingCommand,
}

/// Our frontend with its SCSI disk, as the StorPort glue would hold them.
struct Ours<'r, 'a, 'g, 'e> {
    front: &'r mut BenchFront<'a, 'g, 'e>,
    disk: Disk,
    scratch: Vec<u8>,
    done: Vec<BlockCompletion>,
    profile: Profile,
    tsc: Tsc,
    /// [`SPIN`] in counter ticks.
    spin: u64,
}

fn cdb10(op: u8, lba: u64, blocks: u16) -> Result<[u8; 10], Failure> {
    let lba = u32::try_from(lba)
        .context("LBA beyond READ(10)")?
        .to_be_bytes();
    let n = blocks.to_be_bytes();
    Ok([op, 0, lba[0], lba[1], lba[2], lba[3], 0, n[0], n[1], 0])
}

impl Ours<'_, '_, '_, '_> {
    /// The segments of slot `s`'s buffer for `bs` bytes (whole pages).
    fn segments(&self, s: usize, bs: usize) -> Vec<Segment> {
        (0..bs / PAGE_SIZE)
            .map(|p| Segment {
                frame: self.front.data_frame(s * PAGES_PER_SLOT + p),
                offset: 0,
                length: PAGE_SIZE as u16,
            })
            .collect()
    }

    /// Issues one SCSI command; returns what completing it needs.
    fn issue(
        &mut self,
        tag: u64,
        cdb: &[u8],
        direction: DataDirection,
        segments: &[Segment],
    ) -> Result<(BlockOp, PendingCommand), Failure> {
        let req = ScsiRequest {
            tag: Tag(tag),
            cdb,
            direction,
            segments,
            transfer_length: segments.iter().map(|s| u32::from(s.length)).sum(),
            lun: 0,
        };
        let started = ticks();
        let action = self.disk.submit(&req, &mut self.front.memory);
        self.profile.scsi += ticks().saturating_sub(started);
        let block = match action {
            Action::Complete(c) => {
                return Err(Failure(format!(
                    "command {:#04x} completed without the backend: {c:?}",
                    cdb[0]
                )))
            }
            Action::Block(b) => b,
        };
        let [op] = block.ops() else {
            return Err(Failure(format!(
                "command {:#04x} became {} block operations",
                cdb[0],
                block.ops().len()
            )));
        };
        let op = *op;
        let data: &[Segment] = match op {
            BlockOp::Read { .. } | BlockOp::Write { .. } => segments,
            _ => &[],
        };
        let done = &mut self.done;
        let started = ticks();
        self.front
            .with_io(|engine, io| engine.submit(Tag(tag), op, data, io, |c| done.push(c)))
            .map_err(|e| Failure(format!("the engine refused {op:?}: {e:?}")))?;
        self.profile.submit += ticks().saturating_sub(started);
        Ok((op, block.pending()))
    }

    /// Sends the notifications held back (not with `vbd-bench-unbatched`), timed as
    /// notification.
    fn kick(&mut self) {
        self.front.events.flush();
    }

    /// Polls until some completion is there: the ring first, for up to [`SPIN`], then the
    /// event channel.
    fn reap(&mut self) -> Outcome {
        let spin_until = ticks() + self.spin;
        loop {
            let started = ticks();
            let done = &mut self.done;
            let polled = self
                .front
                .with_io(|engine, io| engine.poll(io, |c| done.push(c)));
            self.profile.poll += ticks().saturating_sub(started);
            self.profile.polls += 1;
            polled.map_err(|e| Failure(format!("the engine stopped: {e}")))?;
            // A poll may issue operations that waited for resources: do not hold them back.
            self.kick();
            if let Some(e) = self.front.events.notify_error.take() {
                return Err(Failure(format!("notify the backend: {e}")));
            }
            if !self.done.is_empty() {
                return Ok(());
            }
            self.profile.empty_polls += 1;
            if ticks() < spin_until {
                std::hint::spin_loop();
                continue;
            }
            self.kick();
            let started = ticks();
            wait_queue_events(&mut self.front.events, "a completion")?;
            self.profile.waiting += ticks().saturating_sub(started);
            self.profile.blocks += 1;
        }
    }

    /// Runs one SCSI command without data to completion.
    fn command(&mut self, tag: u64, cdb: &[u8]) -> Outcome {
        let (op, pending) = self.issue(tag, cdb, DataDirection::None, &[])?;
        self.kick();
        while self.done.is_empty() {
            self.reap()?;
        }
        let c = self.done.remove(0);
        let sc = pending.complete(BlockOutcome::from_blkif(&op, &c));
        ensure(
            c.tag == Tag(tag) && self.done.is_empty() && sc.status == ScsiStatus::Good,
            || format!("command {:#04x}: {c:?}, {sc:?}", cdb[0]),
        )
    }

    /// Starts request `n` of `cell` in slot `s`.
    fn start(
        &mut self,
        cell: Cell,
        id: u8,
        s: usize,
        n: u64,
        offset: u64,
        model: &mut Model,
    ) -> Result<Flight, Failure> {
        let segments = self.segments(s, cell.bs);
        let lba = offset / 512;
        if cell.write {
            let started = ticks();
            fill(&mut self.scratch[..cell.bs], id, lba);
            for (p, seg) in segments.iter().enumerate() {
                let page = &self.scratch[p * PAGE_SIZE..(p + 1) * PAGE_SIZE];
                self.front.memory.write(seg.frame, 0, page);
            }
            model.record(offset, cell.bs, id);
            self.profile.data += ticks().saturating_sub(started);
        }
        let (code, direction) = if cell.write {
            (opcode::WRITE_10, DataDirection::ToDevice)
        } else {
            (opcode::READ_10, DataDirection::FromDevice)
        };
        let cdb = cdb10(code, lba, (cell.bs / 512) as u16)?;
        let (op, pending) = self.issue(n << 8 | s as u64, &cdb, direction, &segments)?;
        Ok(Flight {
            n,
            offset,
            op,
            pending,
        })
    }

    /// Runs `cell` (written data tagged `id`) for `time`, continuing `stream`.
    fn run_cell(
        &mut self,
        cell: Cell,
        id: u8,
        stream: &mut Stream,
        time: Duration,
        model: &mut Model,
    ) -> Result<(Measured, Profile), Failure> {
        let mut flights: Vec<Option<Flight>> = vec![None; cell.qd];
        let mut m = Measured::default();
        self.profile = Profile::default();
        let counters = self.front.engine.counters();
        let notifies = self.front.events.notifies;
        let notify_ticks = self.front.events.notify_ticks;
        let started = Instant::now();
        let deadline = ticks() + self.tsc.ticks_in(time);
        for (s, flight) in flights.iter_mut().enumerate() {
            let (n, offset) = stream.next();
            *flight = Some(self.start(cell, id, s, n, offset, model)?);
        }
        self.kick();
        let mut busy = cell.qd;
        while busy > 0 {
            if self.done.is_empty() {
                self.reap()?;
            }
            let done = std::mem::take(&mut self.done);
            for c in &done {
                let s = (c.tag.0 & 0xff) as usize;
                let f = flights
                    .get_mut(s)
                    .and_then(Option::take)
                    .ok_or_else(|| Failure(format!("a completion for no request: {c:?}")))?;
                busy -= 1;
                let scsi = ticks();
                let sc = f.pending.complete(BlockOutcome::from_blkif(&f.op, c));
                self.profile.scsi += ticks().saturating_sub(scsi);
                ensure(
                    c.tag.0 >> 8 == f.n
                        && sc.status == ScsiStatus::Good
                        && sc.transferred as usize == cell.bs,
                    || {
                        format!(
                            "{} request {} at offset {}: {c:?}, SCSI {sc:?}",
                            cell.label, f.n, f.offset
                        )
                    },
                )?;
                m.ops += 1;
                m.bytes += cell.bs as u64;
                if !cell.write && f.n % VERIFY_EVERY == 0 {
                    let checked = ticks();
                    for (p, seg) in self.segments(s, cell.bs).iter().enumerate() {
                        let page = &mut self.scratch[p * PAGE_SIZE..(p + 1) * PAGE_SIZE];
                        self.front.memory.read(seg.frame, 0, page);
                    }
                    model
                        .check(f.offset, &self.scratch[..cell.bs])
                        .map_err(|e| Failure(format!("ours, {}: {e}", cell.label)))?;
                    m.verified += 1;
                    self.profile.data += ticks().saturating_sub(checked);
                }
                if ticks() < deadline {
                    let (n, offset) = stream.next();
                    flights[s] = Some(self.start(cell, id, s, n, offset, model)?);
                    busy += 1;
                }
            }
            self.kick();
            self.done = done;
            self.done.clear();
        }
        m.secs = started.elapsed().as_secs_f64();
        let k = self.front.engine.counters();
        self.profile.counters = Counters {
            requests: k.requests - counters.requests,
            ring_requests: k.ring_requests - counters.ring_requests,
            segments: k.segments - counters.segments,
            bounced_segments: k.bounced_segments - counters.bounced_segments,
            indirect_requests: k.indirect_requests - counters.indirect_requests,
            persistent_hits: k.persistent_hits - counters.persistent_hits,
            errors: k.errors - counters.errors,
            ..k
        };
        self.profile.notifies = self.front.events.notifies - notifies;
        self.profile.notify = self.front.events.notify_ticks.saturating_sub(notify_ticks);
        ensure(self.profile.counters.errors == 0, || {
            format!("ours, {}: engine counters {k:?}", cell.label)
        })?;
        Ok((m, self.profile))
    }
}

/// Results of both sides.
#[derive(Debug)]
struct Results {
    tsc: Tsc,
    /// Our notifications are held until the end of each batch (not with `vbd-bench-unbatched`).
    batched: bool,
    ours: Vec<(Measured, Profile, Below)>,
    /// The lowest and highest ratio of a round of ours to the round of Linux's beside it.
    spread: Vec<(f64, f64)>,
    linux: Vec<(Measured, Below)>,
}

fn run(cx: &mut Context, batched: bool) -> Outcome {
    modprobe("xen-blkback")?;
    ensure(!module_loaded("xen-blkfront"), || {
        "xen-blkfront is already loaded: it would grab our VBD".into()
    })?;
    let mut store = Store::open()?;
    let (ofe, obe) = device_dirs("vbd", OURS.0);
    let (lfe, lbe) = device_dirs("vbd", LINUX.0);
    remove_device(&mut store, &ofe, &obe)?;
    remove_device(&mut store, &lfe, &lbe)?;
    let ours_image = make_image("vbd-bench-ours")?;
    let linux_image = make_image("vbd-bench-linux")?;
    let limit = raise_gntalloc_limit(cx)?;
    let autoprobe = sys_text(AUTOPROBE);
    let tsc = Tsc::calibrate(Duration::from_millis(100))
        .ok_or_else(|| Failure("the time-stamp counter does not advance".into()))?;
    log_clock_costs(cx, tsc);
    let mut results = Results {
        tsc,
        batched,
        ours: Vec::new(),
        spread: Vec::new(),
        linux: Vec::new(),
    };

    let outcome = (|| {
        let mut linux = linux_connect(cx, results.tsc, &mut store, &linux_image, &lfe, &lbe)?;
        // xen-blkfront is loaded and bound to its device: keep it from binding ours.
        std::fs::write(AUTOPROBE, "0").context(format!("write 0 to {AUTOPROBE}"))?;
        let ours = ours_session(
            cx,
            &mut store,
            &ours_image,
            &ofe,
            &obe,
            &mut linux,
            &mut results,
        );
        let removed = remove_device(&mut store, &ofe, &obe);
        ours.and(removed)?;
        linux.finish(cx)
    })();

    let unloaded = if module_loaded("xen-blkfront") {
        unload_frontend(
            cx,
            &mut store,
            "xen-blkfront",
            &format!("vbd-{}", LINUX.0),
            &lbe,
        )
    } else {
        Ok(())
    };
    let removed = remove_device(&mut store, &ofe, &obe).and(remove_device(&mut store, &lfe, &lbe));
    let restored = match limit {
        Some(old) => {
            std::fs::write(GNTALLOC_LIMIT, old).context(format!("restore {GNTALLOC_LIMIT}"))
        }
        None => Ok(()),
    }
    .and(if autoprobe == "-" {
        Ok(())
    } else {
        std::fs::write(AUTOPROBE, &autoprobe).context(format!("restore {AUTOPROBE}"))
    });
    outcome.and(unloaded).and(removed).and(restored)?;
    report(cx, &results);
    Ok(())
}

/// Logs what moving 64 KiB costs: through `GuestMemory` in 512-byte chunks, read then write,
/// as the engine's `copy_in`/`copy_out` do for persistent grants, against one `memcpy` of
/// ordinary memory.
fn log_copy_costs(cx: &Context, ours: &mut Ours<'_, '_, '_, '_>) {
    const ROUNDS: u32 = 20;
    let tsc = ours.tsc;
    // Two slots' buffers that no request uses yet.
    let from = ours.segments(MAX_QD - 2, MAX_BS);
    let to = ours.segments(MAX_QD - 1, MAX_BS);
    let mut chunk = [0u8; 512];
    let mut t = ticks();
    // Round 0 is not timed: it faults the pages in.
    for round in 0..=ROUNDS {
        if round == 1 {
            t = ticks();
        }
        for (a, b) in from.iter().zip(&to) {
            for at in (0..PAGE_SIZE).step_by(chunk.len()) {
                ours.front.memory.read(a.frame, at, &mut chunk);
                ours.front.memory.write(b.frame, at, &chunk);
            }
        }
    }
    let chunked = tsc.duration(ticks().saturating_sub(t)) / ROUNDS;
    let src = vec![7u8; MAX_BS];
    let mut dst = vec![0u8; MAX_BS];
    let mut t = ticks();
    for round in 0..=ROUNDS {
        if round == 1 {
            t = ticks();
        }
        dst.copy_from_slice(std::hint::black_box(&src));
        std::hint::black_box(&mut dst);
    }
    let memcpy = tsc.duration(ticks().saturating_sub(t)) / ROUNDS;
    cx.log(format!(
        "copy 64 KiB: through GuestMemory in 512-byte chunks {:.1} us, memcpy {:.1} us",
        chunked.as_secs_f64() * 1e6,
        memcpy.as_secs_f64() * 1e6
    ));
}

/// Logs what reading each clock costs here (`clock_gettime` may be a system call).
fn log_clock_costs(cx: &Context, tsc: Tsc) {
    const N: u32 = 200;
    let t = ticks();
    for _ in 0..N {
        std::hint::black_box(Instant::now());
    }
    let instant = tsc.duration(ticks().saturating_sub(t)) / N;
    let t = ticks();
    for _ in 0..N {
        std::hint::black_box(ticks());
    }
    let counter = tsc.duration(ticks().saturating_sub(t)) / N;
    cx.log(format!(
        "clocks: time-stamp counter at {:.1} MHz; Instant::now() costs {:.2} us, rdtsc {:.2} us",
        tsc.per_second() / 1e6,
        instant.as_secs_f64() * 1e6,
        counter.as_secs_f64() * 1e6
    ));
}

/// Makes gntalloc grant as many pages as our pool needs; returns the old limit to restore.
fn raise_gntalloc_limit(cx: &Context) -> Result<Option<String>, Failure> {
    let need = BENCH_DATA_START + MAX_QD * PAGES_PER_SLOT + 64;
    let old = std::fs::read_to_string(GNTALLOC_LIMIT).context(format!("read {GNTALLOC_LIMIT}"))?;
    let current: usize = old
        .trim()
        .parse()
        .context(format!("parse {GNTALLOC_LIMIT}"))?;
    if current >= need {
        return Ok(None);
    }
    std::fs::write(GNTALLOC_LIMIT, need.to_string())
        .context(format!("raise {GNTALLOC_LIMIT} to {need}"))?;
    cx.log(format!(
        "gntalloc limit raised from {current} to {need} pages"
    ));
    Ok(Some(old.trim().to_owned()))
}

fn ours_session(
    cx: &mut Context,
    store: &mut Store,
    image: &LoopImage,
    fe: &str,
    be: &str,
    linux: &mut LinuxSide<'_>,
    results: &mut Results,
) -> Outcome {
    let (vdev, dev) = OURS;
    write_vbd_nodes(store, image, fe, be, vdev, dev, "w")?;
    store.expect_state("backend", be, XenbusState::InitWait, STATE_TIMEOUT)?;
    let offer = features(store, be)?;
    // Everything blkback offers: the largest ring, every queue, indirect segments, persistent
    // grants.
    let config = FrontendConfig {
        max_queues: QUEUES as u32,
        ..FrontendConfig::default()
    };
    let params = FrontendParams::negotiate(&config, &offer);
    let gnt = Gntalloc::open().context("open gntalloc")?;
    let pages = BENCH_DATA_START + MAX_QD * PAGES_PER_SLOT;
    let pool = PagePool::new(&gnt, 0, pages as u32).context("grant the page pool")?;
    let mut events = EventChannels::open().context("open evtchn")?;
    let ports = bind_queue_ports(&mut events, params.queues)?;
    let outcome = {
        let queue_events = EvtchnEvents::with_ports(&mut events, ports.clone());
        let mut front =
            BenchFront::new(&pool, queue_events, vdev as u16).context("build the engine")?;
        let result = ours_drive(cx, store, image, fe, be, params, &mut front, linux, results);
        result.and(all_grants_back(front.disconnect()))
    };
    for port in ports {
        events.unbind(port).context("unbind the event channels")?;
    }
    pool.release().context("end the pool's grants")?;
    outcome
}

#[allow(clippy::too_many_arguments)]
fn ours_drive(
    cx: &mut Context,
    store: &mut Store,
    image: &LoopImage,
    fe: &str,
    be: &str,
    params: FrontendParams,
    front: &mut BenchFront<'_, '_, '_>,
    linux: &mut LinuxSide<'_>,
    results: &mut Results,
) -> Outcome {
    front.attach_ring(params).context("attach the rings")?;
    let refs = front.queue_ring_refs();
    publish_and_connect(store, fe, be, &params, &refs, &front.events.ports)?;
    let features = features(store, be)?;
    let info = features
        .disk_info()
        .map_err(|e| Failure(format!("disk info: {e:?}")))?;
    ensure(info.sectors == image.sectors && !info.read_only, || {
        format!("backend: {info:?}, image of {} sectors", image.sectors)
    })?;
    front.with_io(|engine, io| engine.connected(&features, io));
    let probe_deadline = Instant::now() + STATE_TIMEOUT;
    while front.engine.state() == EngineState::Probing {
        front
            .with_io(|engine, io| engine.poll(io, |_| {}))
            .map_err(|e| Failure(format!("layout probe: {e}")))?;
        if front.engine.state() != EngineState::Probing {
            break;
        }
        ensure(Instant::now() < probe_deadline, || {
            "the layout probe hung".into()
        })?;
        wait_queue_events(&mut front.events, "the layout probe")?;
    }
    ensure(front.engine.state() == EngineState::Running, || {
        format!("after the probe the engine is {:?}", front.engine.state())
    })?;
    store.set_state(fe, XenbusState::Connected)?;
    let p = front
        .engine
        .params()
        .ok_or_else(|| Failure("no parameters after connecting".into()))?;
    let negotiated = format!(
        "ring-page-order {} (backend max {}), indirect segments {} (backend max {}), persistent \
         {} (backend {}), flush {}, queues {} (backend max {}), layout {}",
        p.ring_page_order,
        features.max_ring_page_order,
        p.indirect_segments,
        features.max_indirect_segments,
        p.persistent,
        features.persistent,
        p.flush,
        p.queues,
        features.max_queues,
        p.layout.protocol()
    );
    cx.log(format!("ours: {negotiated}"));
    ensure(
        p.ring_page_order == features.max_ring_page_order.min(4)
            && (features.max_indirect_segments <= 11 || p.indirect_segments > 0)
            && p.persistent == features.persistent
            && p.flush == features.flush_cache,
        || format!("not everything the backend offers is in use: {negotiated}"),
    )?;
    let mut ours = Ours {
        disk: Disk::new(DiskConfig::new(
            info,
            Identity::new(&info, "lab-vbd-bench", b"lab/vbd/bench"),
        )),
        front,
        scratch: vec![0u8; MAX_BS],
        done: Vec::with_capacity(BENCH_JOBS),
        profile: Profile::default(),
        tsc: results.tsc,
        spin: results.tsc.ticks_in(SPIN),
    };
    ours.front.events.defer = results.batched;
    let driver = format!("/sys/bus/xen/devices/vbd-{}/driver", OURS.0);
    ensure(!std::path::Path::new(&driver).exists(), || {
        format!("a Linux driver was bound to our VBD ({driver})")
    })?;
    log_copy_costs(cx, &mut ours);
    let mut model = Model::new();
    ours.run_cell(WARM, 100, &mut Stream::new(100, WARM), WARM_UP, &mut model)?;
    linux.run_cell(WARM, 100, &mut Stream::new(100, WARM), WARM_UP)?;
    for (i, c) in CELLS.iter().enumerate() {
        let id = i as u8 + 1;
        let (mut os, mut ls) = (Stream::new(i, *c), Stream::new(i, *c));
        let mut o = (Measured::default(), Profile::default(), Below::default());
        let mut l = (Measured::default(), Below::default());
        let (mut ours_rounds, mut linux_rounds) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            for linux_turn in [false, true] {
                // Ours first in rounds 0 and 3 of every four, Linux's first in 1 and 2.
                if linux_turn == (round % 4 == 0 || round % 4 == 3) {
                    let (m, under) = linux.run_cell(*c, id, &mut ls, ROUND_TIME)?;
                    linux_rounds.push(m.iops());
                    l.0.add(m);
                    l.1.add(under);
                } else {
                    let before = below(None, OURS.0, image)?;
                    let (m, prof) = ours.run_cell(*c, id, &mut os, ROUND_TIME, &mut model)?;
                    let under = below(None, OURS.0, image)?.since(before);
                    ours_rounds.push(m.iops());
                    o.0.add(m);
                    o.1.add(prof);
                    o.2.add(under);
                }
            }
        }
        for (who, m) in [("ours ", o.0), ("linux", l.0)] {
            cx.log(format!(
                "{who} {} QD{}: {} ops in {:.2} s, {:.0} IOPS, {:.2} MB/s, {} reads checked",
                c.label,
                c.qd,
                m.ops,
                m.secs,
                m.iops(),
                m.mbps(),
                m.verified
            ));
        }
        cx.log(format!("ours  {:?}; {:?}", o.1, o.2));
        cx.log(format!("linux {:?}", l.1));
        // Each round of ours against the round of Linux's next to it.
        let ratios: Vec<f64> = ours_rounds
            .iter()
            .zip(&linux_rounds)
            .map(|(o, l)| o / l.max(1e-9))
            .collect();
        let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ratios.iter().copied().fold(0.0, f64::max);
        results.spread.push((lo, hi));
        results.ours.push(o);
        results.linux.push(l);
    }
    ours.command(
        1,
        &[opcode::SYNCHRONIZE_CACHE_10, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    )?;
    let checked = model.check_file(image)?;
    let k = ours.front.engine.counters();
    cx.log(format!(
        "ours: flushed; {} KiB of the image file match the model; engine counters {k:?}",
        checked / 1024
    ));
    ensure(!p.persistent || k.persistent_hits > 0, || {
        format!("persistent grants negotiated but never reused: {k:?}")
    })?;
    ensure(p.indirect_segments == 0 || k.indirect_requests > 0, || {
        format!("indirect segments negotiated but never used: {k:?}")
    })?;
    store.disconnect(fe, be, STATE_TIMEOUT)?;
    Ok(())
}

/// Counters of `/sys/block/<dev>/stat`.
#[derive(Clone, Copy, Debug, Default)]
struct BlockStat {
    reads: u64,
    read_merges: u64,
    read_ms: u64,
    writes: u64,
    write_merges: u64,
    write_ms: u64,
}

impl BlockStat {
    fn read(dev: &str) -> Result<Self, Failure> {
        let path = format!("/sys/block/{dev}/stat");
        let text = std::fs::read_to_string(&path).context(format!("read {path}"))?;
        let v: Vec<u64> = text
            .split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        ensure(v.len() >= 8, || format!("{path}: '{}'", text.trim()))?;
        Ok(Self {
            reads: v[0],
            read_merges: v[1],
            read_ms: v[3],
            writes: v[4],
            write_merges: v[5],
            write_ms: v[7],
        })
    }

    fn since(self, before: Self) -> Self {
        Self {
            reads: self.reads.saturating_sub(before.reads),
            read_merges: self.read_merges.saturating_sub(before.read_merges),
            read_ms: self.read_ms.saturating_sub(before.read_ms),
            writes: self.writes.saturating_sub(before.writes),
            write_merges: self.write_merges.saturating_sub(before.write_merges),
            write_ms: self.write_ms.saturating_sub(before.write_ms),
        }
    }

    /// Requests completed.
    fn requests(&self) -> u64 {
        self.reads + self.writes
    }

    /// Mean time a request spent in the device, in milliseconds.
    fn ms_per_request(&self) -> f64 {
        (self.read_ms + self.write_ms) as f64 / self.requests().max(1) as f64
    }
}

/// blkback's counters of a VBD (`/sys/bus/xen-backend/devices/vbd-0-<vdev>/statistics`).
#[derive(Clone, Copy, Debug, Default)]
struct BackendStat {
    rd_req: u64,
    wr_req: u64,
    oo_req: u64,
}

impl BackendStat {
    fn read(vdev: u32) -> Self {
        let get = |name: &str| {
            std::fs::read_to_string(format!(
                "/sys/bus/xen-backend/devices/vbd-0-{vdev}/statistics/{name}"
            ))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
        };
        Self {
            rd_req: get("rd_req"),
            wr_req: get("wr_req"),
            oo_req: get("oo_req"),
        }
    }

    fn since(self, before: Self) -> Self {
        Self {
            rd_req: self.rd_req.saturating_sub(before.rd_req),
            wr_req: self.wr_req.saturating_sub(before.wr_req),
            oo_req: self.oo_req.saturating_sub(before.oo_req),
        }
    }
}

/// What the layers below a frontend saw during a cell: the frontend's block device (Linux
/// only), blkback, and the loop device.
#[derive(Clone, Copy, Debug, Default)]
struct Below {
    dev: BlockStat,
    backend: BackendStat,
    lower: BlockStat,
}

/// The counters below a frontend now: `dev` its block device if it has one, `vdev` the VBD,
/// `image` the loop device.
fn below(dev: Option<&str>, vdev: u32, image: &LoopImage) -> Result<Below, Failure> {
    Ok(Below {
        dev: match dev {
            Some(d) => BlockStat::read(d)?,
            None => BlockStat::default(),
        },
        backend: BackendStat::read(vdev),
        lower: BlockStat::read(image.device.trim_start_matches("/dev/"))?,
    })
}

impl Below {
    fn add(&mut self, o: Self) {
        for (a, b) in [(&mut self.dev, o.dev), (&mut self.lower, o.lower)] {
            a.reads += b.reads;
            a.read_merges += b.read_merges;
            a.read_ms += b.read_ms;
            a.writes += b.writes;
            a.write_merges += b.write_merges;
            a.write_ms += b.write_ms;
        }
        self.backend.rd_req += o.backend.rd_req;
        self.backend.wr_req += o.backend.wr_req;
        self.backend.oo_req += o.backend.oo_req;
    }

    fn since(self, before: Self) -> Self {
        Self {
            dev: self.dev.since(before.dev),
            backend: self.backend.since(before.backend),
            lower: self.lower.since(before.lower),
        }
    }
}

/// A sysfs file's text, trimmed, or "-".
fn sys_text(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "-".into())
}

/// A module's parameters as `name=value`, space-separated.
fn module_parameters(module: &str) -> String {
    let dir = format!("/sys/module/{module}/parameters");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
        .iter()
        .map(|n| format!("{n}={}", sys_text(&format!("{dir}/{n}"))))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Linux's side: xen-blkfront's disk opened with `O_DIRECT`, an AIO context, and the model of
/// its image.
struct LinuxSide<'i> {
    tsc: Tsc,
    image: &'i LoopImage,
    path: String,
    disk: File,
    aio: Aio,
    model: Model,
}

/// Attaches Linux's VBD and loads xen-blkfront, which connects it.
fn linux_connect<'i>(
    cx: &mut Context,
    tsc: Tsc,
    store: &mut Store,
    image: &'i LoopImage,
    fe: &str,
    be: &str,
) -> Result<LinuxSide<'i>, Failure> {
    let (vdev, dev) = LINUX;
    write_vbd_nodes(store, image, fe, be, vdev, dev, "w")?;
    store.expect_state("backend", be, XenbusState::InitWait, STATE_TIMEOUT)?;
    load_frontend("xen-blkfront")?;
    store.expect_state("backend", be, XenbusState::Connected, STATE_TIMEOUT)?;
    let path = format!("/dev/{dev}");
    wait_path(&path, STATE_TIMEOUT)?;
    store.expect_state("frontend", fe, XenbusState::Connected, STATE_TIMEOUT)?;
    let mut node = |key: &str| -> String {
        store
            .read(&format!("{fe}/{key}"))
            .ok()
            .flatten()
            .unwrap_or_else(|| "-".into())
    };
    cx.log(format!(
        "linux: ring-page-order {}, multi-queue-num-queues {}, feature-persistent {}; \
         xen_blkfront parameters: {}; scheduler {}, max_sectors_kb {}, nr_requests {}",
        node("ring-page-order"),
        node("multi-queue-num-queues"),
        node("feature-persistent"),
        module_parameters("xen_blkfront"),
        sys_text(&format!("/sys/block/{dev}/queue/scheduler")),
        sys_text(&format!("/sys/block/{dev}/queue/max_sectors_kb")),
        sys_text(&format!("/sys/block/{dev}/queue/nr_requests")),
    ));
    cx.log(format!(
        "xen_blkback parameters: {}",
        module_parameters("xen_blkback")
    ));
    let disk = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path)
        .context(format!("open {path} with O_DIRECT"))?;
    Ok(LinuxSide {
        tsc,
        image,
        path,
        disk,
        aio: Aio::new(MAX_QD, MAX_BS).context("set up AIO")?,
        model: Model::new(),
    })
}

impl LinuxSide<'_> {
    /// Runs `cell` (written data tagged `id`) for `time`, continuing `stream`.
    fn run_cell(
        &mut self,
        cell: Cell,
        id: u8,
        stream: &mut Stream,
        time: Duration,
    ) -> Result<(Measured, Below), Failure> {
        let before = below(Some(LINUX.1), LINUX.0, self.image)?;
        let m = self.cell(cell, id, stream, time)?;
        let under = below(Some(LINUX.1), LINUX.0, self.image)?.since(before);
        Ok((m, under))
    }

    fn start(
        &mut self,
        cell: Cell,
        id: u8,
        s: usize,
        stream: &mut Stream,
        flights: &mut [Option<(u64, u64)>],
    ) -> Result<AioRequest, Failure> {
        let (n, offset) = stream.next();
        if cell.write {
            let buf = self
                .aio
                .buffer_mut(s)
                .ok_or_else(|| Failure(format!("AIO slot {s} is busy")))?;
            fill(&mut buf[..cell.bs], id, offset / 512);
            self.model.record(offset, cell.bs, id);
        }
        flights[s] = Some((n, offset));
        Ok(AioRequest {
            slot: s,
            write: cell.write,
            offset,
            len: cell.bs,
        })
    }

    fn cell(
        &mut self,
        cell: Cell,
        id: u8,
        stream: &mut Stream,
        time: Duration,
    ) -> Result<Measured, Failure> {
        let mut flights: Vec<Option<(u64, u64)>> = vec![None; cell.qd];
        let mut m = Measured::default();
        let started = Instant::now();
        let deadline = ticks() + self.tsc.ticks_in(time);
        let mut requests = Vec::with_capacity(cell.qd);
        for s in 0..cell.qd {
            requests.push(self.start(cell, id, s, stream, &mut flights)?);
        }
        self.aio
            .submit(self.disk.as_fd(), &requests)
            .context("io_submit")?;
        let mut done: Vec<AioCompletion> = Vec::with_capacity(cell.qd);
        while self.aio.in_flight() > 0 {
            done.clear();
            let got = self
                .aio
                .reap(1, IO_TIMEOUT, &mut done)
                .context("io_getevents")?;
            ensure(got > 0, || {
                format!("no AIO completion within {} s", IO_TIMEOUT.as_secs())
            })?;
            requests.clear();
            for c in &done {
                let (n, offset) = flights
                    .get_mut(c.slot)
                    .and_then(Option::take)
                    .ok_or_else(|| Failure(format!("an AIO completion for no request: {c:?}")))?;
                ensure(c.res == cell.bs as i64, || {
                    format!(
                        "linux, {} request {n} at offset {offset}: result {}",
                        cell.label, c.res
                    )
                })?;
                m.ops += 1;
                m.bytes += cell.bs as u64;
                if !cell.write && n % VERIFY_EVERY == 0 {
                    let buf = self
                        .aio
                        .buffer(c.slot)
                        .ok_or_else(|| Failure(format!("AIO slot {} is busy", c.slot)))?;
                    self.model
                        .check(offset, &buf[..cell.bs])
                        .map_err(|e| Failure(format!("linux, {}: {e}", cell.label)))?;
                    m.verified += 1;
                }
                if ticks() < deadline {
                    requests.push(self.start(cell, id, c.slot, stream, &mut flights)?);
                }
            }
            if !requests.is_empty() {
                self.aio
                    .submit(self.disk.as_fd(), &requests)
                    .context("io_submit")?;
            }
        }
        m.secs = started.elapsed().as_secs_f64();
        Ok(m)
    }

    /// Flushes (fsync) and checks the sample of the image file.
    fn finish(self, cx: &Context) -> Outcome {
        let LinuxSide {
            tsc: _,
            image,
            path,
            disk,
            aio,
            model,
        } = self;
        drop(aio);
        disk.sync_all().context(format!("fsync {path} (flush)"))?;
        drop(disk);
        let checked = model.check_file(image)?;
        cx.log(format!(
            "linux: flushed; {} KiB of the image file match the model",
            checked / 1024
        ));
        Ok(())
    }
}

/// The table, the profile and the figures.
fn report(cx: &mut Context, results: &Results) {
    cx.report(format!(
        "ours = xenvbd-core (SCSI READ/WRITE(10) -> blkif engine, dom0 process{}); linux = \
         xen-blkfront /dev/{} (O_DIRECT, native AIO); xen-blkback on a tmpfs loop device each; \
         {ROUNDS} alternating rounds of {} ms per cell and side",
        if results.batched {
            ", notifications held to one per batch"
        } else {
            ""
        },
        LINUX.1,
        ROUND_TIME.as_millis()
    ));
    cx.report(format!(
        "{:<14} {:>4} {:>10} {:>9} {:>11} {:>10} {:>11}  {}",
        "workload",
        "QD",
        "ours IOPS",
        "ours MB/s",
        "linux IOPS",
        "linux MB/s",
        "ours/linux",
        "rounds"
    ));
    let mut log_sum = 0.0;
    let mut counted = 0;
    let rows = results.ours.iter().zip(&results.linux).zip(&results.spread);
    for (c, (((o, _, _), (l, _)), (lo, hi))) in CELLS.iter().zip(rows) {
        let ratio = o.iops() / l.iops().max(1e-9);
        if ratio > 0.0 {
            log_sum += ratio.ln();
            counted += 1;
        }
        cx.report(format!(
            "{:<14} {:>4} {:>10.0} {:>9.2} {:>11.0} {:>10.2} {:>11.2}  {lo:.2}-{hi:.2}",
            c.label,
            c.qd,
            o.iops(),
            o.mbps(),
            l.iops(),
            l.mbps(),
            ratio
        ));
        let name = format!("{} qd{}", c.label, c.qd);
        cx.figure(&format!("{name} ours"), o.iops(), "IOPS");
        cx.figure(&format!("{name} linux"), l.iops(), "IOPS");
        cx.figure(&format!("{name} ours/linux"), ratio, "x");
    }
    let geomean = if counted > 0 {
        (log_sum / f64::from(counted)).exp()
    } else {
        0.0
    };
    cx.report(format!("{:<14} {:>4} {:>65.2}", "geomean", "", geomean));
    cx.figure("geomean ours/linux", geomean, "x");
    cx.report(
        "(ours/linux: of the IOPS over all rounds; rounds: the lowest and highest ratio of a \
         round of ours to the round of Linux's beside it)",
    );

    cx.report("");
    cx.report(
        "per op (ours): ring requests, notifications, event-channel waits, then microseconds in \
         the SCSI layer, engine submit, engine poll (both with notify), notify, blocked on the \
         event channel, data fill/check; lat = 1/IOPS x QD",
    );
    cx.report(format!(
        "{:<14} {:>4} {:>6} {:>6} {:>6} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>8}",
        "workload",
        "QD",
        "ringrq",
        "notify",
        "waits",
        "scsi",
        "submit",
        "poll",
        "notify",
        "blocked",
        "data",
        "lat us"
    ));
    for (c, (o, p, _)) in CELLS.iter().zip(&results.ours) {
        let ops = o.ops.max(1) as f64;
        let per = |t: u64| results.tsc.duration(t).as_secs_f64() * 1e6 / ops;
        cx.report(format!(
            "{:<14} {:>4} {:>6.2} {:>6.2} {:>6.2} {:>7.1} {:>7.1} {:>7.1} {:>7.1} {:>7.1} {:>7.1} \
             {:>8.0}",
            c.label,
            c.qd,
            p.counters.ring_requests as f64 / ops,
            p.notifies as f64 / ops,
            p.blocks as f64 / ops,
            per(p.scsi),
            per(p.submit),
            per(p.poll),
            per(p.notify),
            per(p.waiting),
            per(p.data),
            1e6 * c.qd as f64 / o.iops().max(1e-9)
        ));
    }
    cx.report("");
    cx.report(
        "below each frontend: blkback requests per op and out-of-requests waits, the loop \
         device's requests per op and ms per request; Linux's xvd requests per op and ms per \
         request",
    );
    cx.report(format!(
        "{:<14} {:>4} | {:>7} {:>6} {:>7} {:>7} | {:>7} {:>6} {:>7} {:>7} {:>7} {:>7}",
        "workload",
        "QD",
        "ours bb",
        "oo",
        "loop rq",
        "loop ms",
        "linux bb",
        "oo",
        "loop rq",
        "loop ms",
        "xvd rq",
        "xvd ms"
    ));
    for (c, ((o, _, ob), (l, lb))) in CELLS.iter().zip(results.ours.iter().zip(&results.linux)) {
        let (oops, lops) = (o.ops.max(1) as f64, l.ops.max(1) as f64);
        cx.report(format!(
            "{:<14} {:>4} | {:>7.2} {:>6} {:>7.2} {:>7.2} | {:>8.2} {:>6} {:>7.2} {:>7.2} {:>7.2} \
             {:>7.2}",
            c.label,
            c.qd,
            (ob.backend.rd_req + ob.backend.wr_req) as f64 / oops,
            ob.backend.oo_req,
            ob.lower.requests() as f64 / oops,
            ob.lower.ms_per_request(),
            (lb.backend.rd_req + lb.backend.wr_req) as f64 / lops,
            lb.backend.oo_req,
            lb.lower.requests() as f64 / lops,
            lb.lower.ms_per_request(),
            lb.dev.requests() as f64 / lops,
            lb.dev.ms_per_request()
        ));
    }
}
