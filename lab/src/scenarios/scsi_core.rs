//! `scsi-core`: xenscsi-core's engine, driven through xenpci-core's xenbus handshake, against
//! the real xen-scsiback and a LIO fileio LUN (set up as `scsi-smoke` does).
//!
//! The handshake runs over `/dev/xen/xenbus` with the same `Handshake` and `execute` the guest
//! driver uses; the LUN (`v-dev` `0:0:1:0`) is found by the engine's scan and confirmed with
//! state 4. Then: TEST UNIT READY, INQUIRY into a byte-granular buffer (the bytes past the
//! residual untouched), READ CAPACITY, READ and WRITE through unaligned byte-granular segments
//! checked against the image file, 1 MiB READ and WRITE in commands of the largest size
//! scsiback's `feature-sg-grant` allows (indirect segment lists; one 1 MiB command is refused), a LUN
//! reset and an abort with commands in flight (each command completed exactly once), and a clean
//! Closing/Closed with every grant given back.

use std::fs;
use std::time::{Duration, Instant};

use xen_abi::xenbus::XenbusState;
use xenpci_core::xenbus::{
    execute, read_backend_state, FrontendPaths, Handshake, PathBuf as XsPath, Plan,
};
use xenpci_core::xenstore::{TxId, XsConnection, XsError};
use xenscsi_core::engine::Finished;
use xenscsi_core::frontend::ScsiFrontend;
use xenscsi_core::luns::{Address, DeviceList, LunEvent};
use xenscsi_core::{
    Completion, DataDirection, EngineState, HostStatus, Io, Outcome as CoreOutcome, ScsiRequest,
    Segment, Tag, TmCompletion,
};

use super::scsi_smoke::{Lio, TARGET_WWN};
use super::toolstack::{device_dirs, modprobe, remove_device, sectors_content, Store};
use crate::platform::evtchn::{EventChannels, Port};
use crate::platform::gntalloc::Gntalloc;
use crate::platform::pool::PagePool;
use crate::platform::scsi::{ScsiEvents, ScsiFront, DATA_START};
use crate::platform::xenbus::XenbusDevice;
use crate::platform::PAGE_SIZE;
use crate::scenario::{ensure, Context, Failure, Outcome, ResultExt, Scenario};

/// The scenario.
pub const SCENARIO: Scenario = Scenario {
    name: "scsi-core",
    description: "xenscsi-core (engine + xenbus handshake) against the real xen-scsiback and a \
                  LIO fileio LUN: LUN scan (3 -> 4), INQUIRY with exact residual, byte-granular \
                  READ/WRITE checked against the image, 1 MiB indirect READ/WRITE, LUN reset \
                  and abort with commands in flight, clean close with every grant back",
    default: true,
    timeout: Duration::from_secs(180),
    run,
};

const VHOST: u32 = 1;
const SEED: u8 = 23;
/// 8 MiB of 512-byte blocks.
const IMAGE_BLOCKS: u64 = 16384;
const V_DEV: &str = "0:0:1:0";
const LUN: Address = Address {
    bus: 0,
    target: 1,
    lun: 0,
};
/// Data pages: gntalloc grants at most 1024 pages per open file by default.
const DATA_PAGES: usize = 300;
const STEP: Duration = Duration::from_secs(10);
const IO_TIMEOUT: Duration = Duration::from_secs(10);

fn run(cx: &mut Context) -> Outcome {
    for module in [
        "configfs",
        "target_core_mod",
        "target_core_file",
        "xen-scsiback",
    ] {
        modprobe(module)?;
    }
    let mut store = Store::open()?;
    let (fe, be) = device_dirs("vscsi", VHOST);
    remove_device(&mut store, &fe, &be)?;
    let image = format!("/dev/shm/{}.img", cx.name());
    fs::write(&image, sectors_content(SEED, 0, IMAGE_BLOCKS)).context(format!("write {image}"))?;
    let lio = Lio::paths();
    let outcome = lio
        .create(&image, IMAGE_BLOCKS * 512)
        .and_then(|()| session(cx, &mut store, &image, &fe, &be));
    let removed = remove_device(&mut store, &fe, &be);
    let second = SecondLun::paths(&lio).remove();
    let torn_down = lio.remove();
    let _ = fs::remove_file(&image);
    let _ = fs::remove_file(second_image(cx));
    outcome.and(removed).and(second).and(torn_down)
}

/// `<backend>/vscsi-devs` over a connection of its own.
struct Devices {
    xb: XenbusDevice,
    xs: XsConnection,
    path: String,
}

impl DeviceList for Devices {
    fn list(&mut self, visit: &mut dyn FnMut(&[u8])) -> Result<(), XsError> {
        let mut buf = [0u8; 4096];
        match self
            .xs
            .directory(&mut self.xb, TxId::NONE, &self.path, &mut buf)
        {
            Ok(names) => {
                for name in names.iter() {
                    visit(name);
                }
                Ok(())
            }
            Err(e) if e.is_enoent() => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The hot-plugged LUN's image.
fn second_image(cx: &Context) -> String {
    format!("/dev/shm/{}-2.img", cx.name())
}

/// A second LUN on the same LIO target port group (`lun_1` over its own fileio backstore).
struct SecondLun {
    backstore: std::path::PathBuf,
    lun: std::path::PathBuf,
    link: std::path::PathBuf,
}

impl SecondLun {
    fn paths(lio: &Lio) -> Self {
        let backstore = lio.hba_dir().join("lab_scsi2");
        let lun = lio.tpg_dir().join("lun/lun_1");
        let link = lun.join("lab_scsi2");
        SecondLun {
            backstore,
            lun,
            link,
        }
    }

    fn create(&self, image: &str, size: u64) -> Outcome {
        fs::create_dir_all(&self.backstore).context("mkdir the second backstore")?;
        fs::write(
            self.backstore.join("control"),
            format!("fd_dev_name={image},fd_dev_size={size}"),
        )
        .context("configure the second backstore")?;
        fs::write(self.backstore.join("enable"), "1").context("enable the second backstore")?;
        fs::create_dir_all(&self.lun).context("mkdir lun_1")?;
        std::os::unix::fs::symlink(&self.backstore, &self.link).context("link lun_1")
    }

    /// Takes it down (scsiback lets go of a removed LUN shortly after: retried for a while).
    fn remove(&self) -> Outcome {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let r = (|| -> std::io::Result<()> {
                if fs::symlink_metadata(&self.link).is_ok() {
                    fs::remove_file(&self.link)?;
                }
                for dir in [&self.lun, &self.backstore] {
                    match fs::remove_dir(dir) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                        _ => {}
                    }
                }
                Ok(())
            })();
            match r {
                Ok(()) => return Ok(()),
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(Failure(format!("second LUN teardown: {e}"))),
            }
        }
    }
}

fn session(cx: &mut Context, store: &mut Store, image: &str, fe: &str, be: &str) -> Outcome {
    let node = |dir: &str, key: &str, value: &str| (format!("{dir}/{key}"), value.to_owned());
    let lun_dir = format!("{be}/vscsi-devs/dev-0");
    let p_dev = format!("{TARGET_WWN}:0");
    store.write_all(&[
        node(be, "frontend", fe),
        node(be, "frontend-id", "0"),
        node(be, "online", "1"),
        node(be, "state", "1"),
        node(be, "feature-host", "0"),
        node(&lun_dir, "p-dev", &p_dev),
        node(&lun_dir, "v-dev", V_DEV),
        node(&lun_dir, "state", "1"),
        node(fe, "backend", be),
        node(fe, "backend-id", "0"),
        node(fe, "state", "1"),
    ])?;
    store.expect_state("backend", be, XenbusState::InitWait, STEP)?;

    let gnt = Gntalloc::open().context("open gntalloc")?;
    let pool =
        PagePool::new(&gnt, 0, (DATA_START + DATA_PAGES) as u32).context("grant the pool")?;
    let mut events = EventChannels::open().context("open evtchn")?;
    let port = events
        .bind_unbound(0)
        .context("allocate an event channel")?;
    let outcome = {
        let ev = ScsiEvents {
            events: &mut events,
            port,
            notifies: 0,
            failed: 0,
            log: Vec::new(),
        };
        let mut front = ScsiFront::new(&pool, ev).context("build the engine")?;
        let result = drive(cx, store, image, fe, be, &mut front, port);
        let outstanding = front.grants.outstanding();
        cx.figure("grants used", front.grants.granted as f64, "");
        result.and(ensure(outstanding == 0, || {
            format!("{outstanding} grants still in use after the close")
        }))
    };
    events.unbind(port).context("unbind the event channel")?;
    pool.release().context("end the pool's grants")?;
    outcome
}

/// The frontend's state as the scenario drives it.
struct Driver<'f, 'a, 'g, 'e> {
    front: &'f mut ScsiFront<'a, 'g, 'e>,
    port: Port,
    hs: Handshake,
    xb: XenbusDevice,
    xs: XsConnection,
    paths: FrontendPaths,
    devices: Devices,
    luns: Vec<LunEvent>,
    done: Vec<Completion>,
    tm: Vec<TmCompletion>,
    started: Instant,
    last_fed: Option<xenpci_core::xenbus::Backend>,
}

impl Driver<'_, '_, '_, '_> {
    fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn run_plan(&mut self, plan: &Plan) -> Outcome {
        let ring = self.front.ring();
        let f = &mut *self.front;
        let mut io = Io::new(&mut f.grants, &mut f.events, &mut f.memory);
        let (luns, done, tm) = (&mut self.luns, &mut self.done, &mut self.tm);
        let mut on_lun = |e| luns.push(e);
        let mut on_finished = |x| match x {
            Finished::Command(c) => done.push(c),
            Finished::TaskManagement(t) => tm.push(t),
        };
        let mut driver = ScsiFrontend {
            engine: &mut f.engine,
            io: &mut io,
            ring: Some(ring),
            port: self.port,
            devices: &mut self.devices,
            lun_events: &mut on_lun,
            finished: &mut on_finished,
        };
        execute(
            &mut self.hs,
            plan,
            &mut self.xs,
            &mut self.xb,
            &self.paths,
            &mut driver,
        )
        .map_err(|e| Failure(format!("handshake: {e:?}")))
    }

    /// Follows the backend's state until `done` says so. As a watch would, each state is fed
    /// to the handshake once, when it changes (a backend still in InitWait after the frontend
    /// published is not a backend that came back).
    fn follow(&mut self, what: &str, mut done: impl FnMut(&mut Self) -> bool) -> Outcome {
        let deadline = Instant::now() + STEP;
        loop {
            let state = read_backend_state(&mut self.xs, &mut self.xb, &self.paths)
                .map_err(|e| Failure(format!("read the backend state: {e:?}")))?;
            if self.last_fed != Some(state) {
                self.last_fed = Some(state);
                let plan = self.hs.on_backend(state);
                if let Some(e) = plan.error {
                    return Err(Failure(format!("{what}: {e}")));
                }
                self.run_plan(&plan)?;
            }
            if done(self) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Failure(format!(
                    "{what}: frontend {:?}, engine {:?}, backend {state:?}",
                    self.hs.state(),
                    self.front.engine.state()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn poll(&mut self) -> Outcome {
        let now = self.now();
        let f = &mut *self.front;
        let mut io = Io::new(&mut f.grants, &mut f.events, &mut f.memory);
        let (done, tm) = (&mut self.done, &mut self.tm);
        f.engine
            .poll(now, &mut io, &mut |x| match x {
                Finished::Command(c) => done.push(c),
                Finished::TaskManagement(t) => tm.push(t),
            })
            .map_err(|e| Failure(format!("engine: {e}")))
    }

    fn submit(&mut self, tag: u64, cdb: &[u8], dir: DataDirection, segs: &[Segment]) -> Outcome {
        let now = self.now();
        let req = ScsiRequest {
            tag: Tag(tag),
            address: LUN,
            cdb,
            direction: dir,
            segments: segs,
            timeout_ms: 30_000,
        };
        let f = &mut *self.front;
        let mut io = Io::new(&mut f.grants, &mut f.events, &mut f.memory);
        f.engine
            .submit(&req, now, &mut io)
            .map_err(|e| Failure(format!("submit tag {tag}: {e:?}")))
    }

    /// Polls (waiting for events) until `want` holds.
    fn wait(&mut self, what: &str, mut want: impl FnMut(&Self) -> bool) -> Outcome {
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            self.poll()?;
            if want(self) {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Failure(format!("{what}: no answer within {IO_TIMEOUT:?}")));
            }
            let ev = &mut self.front.events;
            if ev
                .events
                .wait_for(self.port, left.min(Duration::from_millis(100)))
                .context("wait for an event")?
            {
                ev.events.unmask(self.port).context("unmask")?;
            }
        }
    }

    fn take(&mut self, tag: u64) -> Result<Completion, Failure> {
        let found: Vec<usize> = (0..self.done.len())
            .filter(|&i| self.done[i].tag == Tag(tag))
            .collect();
        ensure(found.len() == 1, || {
            format!("tag {tag} completed {} times", found.len())
        })?;
        Ok(self.done.remove(found[0]))
    }

    fn command(
        &mut self,
        tag: u64,
        cdb: &[u8],
        dir: DataDirection,
        segs: &[Segment],
    ) -> Result<Completion, Failure> {
        self.submit(tag, cdb, dir, segs)?;
        self.wait(&format!("command {tag}"), |d| {
            d.done.iter().any(|c| c.tag == Tag(tag))
        })?;
        self.take(tag)
    }

    /// A command that must end GOOD with no residual, retried once past a unit attention.
    fn good(
        &mut self,
        tag: u64,
        cdb: &[u8],
        dir: DataDirection,
        segs: &[Segment],
    ) -> Result<Completion, Failure> {
        for attempt in 0..3 {
            let c = self.command(tag + attempt * 1_000_000, cdb, dir, segs)?;
            if c.scsi_status == 2 && c.sense.decode().is_some_and(|s| s.key == 6) {
                continue;
            }
            ensure(
                c.outcome == CoreOutcome::Answered
                    && c.scsi_status == 0
                    && c.host == HostStatus::Ok,
                || format!("command {cdb:02x?}: {c:?}"),
            )?;
            return Ok(c);
        }
        Err(Failure(format!(
            "command {cdb:02x?}: unit attention three times"
        )))
    }

    /// Segments over data pages from byte `start`, cut at page ends and every `piece` bytes.
    fn segments(&self, start: usize, len: usize, piece: usize) -> Vec<Segment> {
        let mut v = Vec::new();
        let mut at = start;
        while at < start + len {
            let n = (PAGE_SIZE - at % PAGE_SIZE)
                .min(piece)
                .min(start + len - at);
            v.push(Segment {
                frame: self.front.data_frame(at / PAGE_SIZE),
                offset: (at % PAGE_SIZE) as u16,
                length: n as u16,
            });
            at += n;
        }
        v
    }

    fn fill(&self, segs: &[Segment], data: &[u8]) {
        let mut at = 0;
        for s in segs {
            let n = usize::from(s.length);
            self.front
                .pool()
                .write(s.frame, s.offset.into(), &data[at..at + n]);
            at += n;
        }
    }

    fn gather(&self, segs: &[Segment]) -> Vec<u8> {
        let mut out = Vec::new();
        for s in segs {
            let mut b = vec![0u8; usize::from(s.length)];
            self.front.pool().read(s.frame, s.offset.into(), &mut b);
            out.extend_from_slice(&b);
        }
        out
    }
}

fn rw10(op: u8, lba: u64, blocks: u16) -> [u8; 10] {
    let l = (lba as u32).to_be_bytes();
    let n = blocks.to_be_bytes();
    [op, 0, l[0], l[1], l[2], l[3], 0, n[0], n[1], 0]
}

fn in_file(image: &str, lba: u64, len: usize) -> Result<Vec<u8>, Failure> {
    use std::os::unix::fs::FileExt;
    let file = fs::File::open(image).context(format!("open {image}"))?;
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, lba * 512)
        .context(format!("read {image}"))?;
    Ok(buf)
}

fn drive(
    cx: &mut Context,
    store: &mut Store,
    image: &str,
    fe: &str,
    be: &str,
    front: &mut ScsiFront<'_, '_, '_>,
    port: Port,
) -> Outcome {
    let xb = XenbusDevice::open(Duration::from_secs(5)).context("open xenbus")?;
    let dev_xb = XenbusDevice::open(Duration::from_secs(5)).context("open xenbus")?;
    let path = |p: &str| XsPath::try_from_str(p).map_err(|_| Failure(format!("path {p}")));
    let paths = FrontendPaths {
        frontend: path(fe)?,
        backend: path(be)?,
    };
    let mut d = Driver {
        front,
        port,
        hs: Handshake::default(),
        xb,
        xs: XsConnection::new(),
        paths,
        devices: Devices {
            xb: dev_xb,
            xs: XsConnection::new(),
            path: format!("{be}/vscsi-devs"),
        },
        luns: Vec::new(),
        done: Vec::new(),
        tm: Vec::new(),
        started: Instant::now(),
        last_fed: None,
    };
    let lun_dir = format!("{be}/vscsi-devs/dev-0");

    // Connect through the handshake; the toolstack confirms the LUN once the frontend has.
    let connect = Instant::now();
    let plan = d.hs.start();
    d.run_plan(&plan)?;
    d.follow("connect", |d| {
        d.hs.state() == XenbusState::Connected && d.front.engine.state() == EngineState::Running
    })?;
    cx.duration("connect", connect.elapsed(), "ms");
    ensure(
        matches!(d.luns[..], [LunEvent::Added(l)] if l.address == LUN && l.dev == 0),
        || format!("LUN scan: {:?}", d.luns),
    )?;
    let fe_lun = store.read(&format!("{fe}/vscsi-devs/dev-0/state"))?;
    ensure(fe_lun.as_deref().map(str::trim) == Some("4"), || {
        format!("frontend LUN state {fe_lun:?}, expected 4")
    })?;
    store.set_state(&lun_dir, XenbusState::Connected)?;
    let limits = d.front.engine.limits();
    cx.log(format!(
        "connected: feature-sg-grant {}, {} segments per command, {} bytes max, queue depth {}",
        d.front.engine.features().sg_grant,
        limits.max_segments,
        limits.max_transfer,
        limits.queue_depth
    ));
    ensure(limits.indirect && limits.max_segments > 26, || {
        format!("scsiback's feature-sg-grant gives {limits:?}: no indirect segment lists")
    })?;

    d.good(1, &[0, 0, 0, 0, 0, 0], DataDirection::None, &[])?;

    // INQUIRY into 96 bytes at byte 100 of a page filled with 0xa5: what is not transferred
    // (the residual) stays 0xa5.
    let segs = d.segments(100, 96, PAGE_SIZE);
    d.fill(&segs, &[0xa5; 96]);
    let c = d.good(2, &[0x12, 0, 0, 0, 96, 0], DataDirection::FromDevice, &segs)?;
    let got = d.gather(&segs);
    let n = c.transferred() as usize;
    ensure(n >= 36 && got[0] == 0 && &got[8..15] == b"LIO-ORG", || {
        format!("INQUIRY: {n} bytes, {:02x?}", &got[..36.min(n)])
    })?;
    ensure(got[n..].iter().all(|&b| b == 0xa5), || {
        format!(
            "INQUIRY: residual {} but bytes past {n} were written",
            c.residual
        )
    })?;
    cx.log(format!("INQUIRY: {n} bytes, residual {}", c.residual));

    let segs = d.segments(0, 8, PAGE_SIZE);
    d.good(
        3,
        &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        DataDirection::FromDevice,
        &segs,
    )?;
    let cap = d.gather(&segs);
    ensure(
        u32::from_be_bytes([cap[0], cap[1], cap[2], cap[3]]) as u64 == IMAGE_BLOCKS - 1
            && u32::from_be_bytes([cap[4], cap[5], cap[6], cap[7]]) == 512,
        || format!("READ CAPACITY: {cap:02x?}"),
    )?;

    // READ into byte-granular pieces: 4 KiB from byte 7, cut every 1000 bytes.
    let segs = d.segments(7, 4096, 1000);
    d.good(4, &rw10(0x28, 16, 8), DataDirection::FromDevice, &segs)?;
    ensure(d.gather(&segs) == sectors_content(SEED, 16, 8), || {
        "READ into byte-granular segments: wrong data".to_owned()
    })?;

    // WRITE 8 KiB from pieces of 700 bytes at byte 4096 + 333; read back; the image has it.
    let pattern = sectors_content(SEED.wrapping_add(50), 4096, 16);
    let segs = d.segments(PAGE_SIZE + 333, pattern.len(), 700);
    d.fill(&segs, &pattern);
    d.good(5, &rw10(0x2a, 4096, 16), DataDirection::ToDevice, &segs)?;
    ensure(in_file(image, 4096, pattern.len())? == pattern, || {
        "WRITE from byte-granular segments: the image differs".to_owned()
    })?;
    cx.log(format!(
        "byte-granular READ/WRITE: {} segments each",
        segs.len()
    ));

    // 1 MiB: more segments than scsiback takes in one request (its feature-sg-grant), so one
    // command is refused whole; as Windows' disk class driver splits by the advertised maximum
    // transfer, it goes as commands of the largest page-aligned size (indirect segment lists),
    // read and written, checked against the image.
    let mib = 1usize << 20;
    let segs = d.segments(8 * PAGE_SIZE, mib, PAGE_SIZE);
    let refused = d.submit(6, &rw10(0x28, 0, 2048), DataDirection::FromDevice, &segs);
    ensure(refused.is_err(), || {
        "a 1 MiB command was accepted".to_owned()
    })?;
    let chunk = (limits.max_segments * PAGE_SIZE).min(mib);
    let started = Instant::now();
    for (i, at) in (0..mib).step_by(chunk).enumerate() {
        let n = chunk.min(mib - at);
        let segs = d.segments(8 * PAGE_SIZE + at, n, PAGE_SIZE);
        let blocks = (n / 512) as u16;
        d.good(
            40 + i as u64,
            &rw10(0x28, (at / 512) as u64, blocks),
            DataDirection::FromDevice,
            &segs,
        )?;
    }
    cx.duration("1 MiB READ", started.elapsed(), "ms");
    let segs = d.segments(8 * PAGE_SIZE, mib, PAGE_SIZE);
    ensure(d.gather(&segs) == sectors_content(SEED, 0, 2048), || {
        "1 MiB READ: wrong data".to_owned()
    })?;
    let pattern = sectors_content(SEED.wrapping_add(77), 8192, 2048);
    let segs = d.segments(8 * PAGE_SIZE, mib, PAGE_SIZE);
    d.fill(&segs, &pattern);
    for (i, at) in (0..mib).step_by(chunk).enumerate() {
        let n = chunk.min(mib - at);
        let segs = d.segments(8 * PAGE_SIZE + at, n, PAGE_SIZE);
        let blocks = (n / 512) as u16;
        d.good(
            50 + i as u64,
            &rw10(0x2a, 8192 + (at / 512) as u64, blocks),
            DataDirection::ToDevice,
            &segs,
        )?;
    }
    ensure(in_file(image, 8192, mib)? == pattern, || {
        "1 MiB WRITE: the image differs".to_owned()
    })?;
    cx.log(format!(
        "1 MiB in commands of {chunk} bytes ({} segments each)",
        chunk / PAGE_SIZE
    ));
    let k = d.front.engine.counters();
    ensure(k.indirect >= 2, || format!("indirect requests: {k:?}"))?;

    // Task management with commands in flight: four 256 KiB reads, then a LUN reset; then a
    // read and its abort. Every command completes exactly once.
    let quarter = 256 * 1024;
    for i in 0..4u64 {
        let segs = d.segments((8 + i as usize * 64) * PAGE_SIZE, quarter, PAGE_SIZE);
        d.submit(
            10 + i,
            &rw10(0x28, i * 512, 512),
            DataDirection::FromDevice,
            &segs,
        )?;
    }
    let now = d.now();
    {
        let f = &mut *d.front;
        let mut io = Io::new(&mut f.grants, &mut f.events, &mut f.memory);
        f.engine
            .reset_lun(Tag(100), LUN, now, &mut io)
            .map_err(|e| Failure(format!("reset: {e:?}")))?;
    }
    d.wait("the LUN reset", |d| {
        d.tm.len() == 1 && (10..14).all(|t| d.done.iter().any(|c| c.tag == Tag(t)))
    })?;
    let reset_ok = d.tm[0].success;
    let mut outcomes = Vec::new();
    for t in 10..14 {
        let c = d.take(t)?;
        outcomes.push((c.scsi_status, c.host, c.residual));
    }
    cx.log(format!(
        "LUN reset: success {reset_ok}; the four reads: {outcomes:?}"
    ));
    ensure(reset_ok, || "LIO refused the LUN reset".to_owned())?;
    let segs = d.segments(8 * PAGE_SIZE, quarter, PAGE_SIZE);
    d.submit(20, &rw10(0x28, 0, 512), DataDirection::FromDevice, &segs)?;
    let now = d.now();
    {
        let f = &mut *d.front;
        let mut io = Io::new(&mut f.grants, &mut f.events, &mut f.memory);
        // The read may already be answered: then there is nothing to abort.
        let _ = f.engine.abort(Tag(101), Tag(20), now, &mut io);
    }
    d.wait("the read and its abort", |d| {
        d.done.iter().any(|c| c.tag == Tag(20)) && d.front.engine.in_flight() == 0
    })?;
    let c = d.take(20)?;
    cx.log(format!(
        "abort: {:?}; the read: status {:#x}, host {:?}",
        d.tm.get(1).map(|t| t.success),
        c.scsi_status,
        c.host
    ));
    // The LUN works on (a unit attention after the reset is retried).
    d.good(30, &[0, 0, 0, 0, 0, 0], DataDirection::None, &[])?;
    let segs = d.segments(0, 4096, PAGE_SIZE);
    d.good(31, &rw10(0x28, 8192, 8), DataDirection::FromDevice, &segs)?;
    ensure(d.gather(&segs) == pattern[..4096], || {
        "after the reset: wrong data".to_owned()
    })?;
    ensure(d.done.is_empty(), || {
        format!("stray completions: {:?}", d.done)
    })?;

    // LUN hotplug with a command in flight on the first LUN: the toolstack adds dev-1 (a
    // second LIO LUN, v-dev 0:0:2:0) and sets the vhost Reconfiguring; the frontend follows,
    // scsiback attaches the LUN (3) and reports Reconfigured, the frontend adds it (writes 4)
    // and returns to Connected. Then the same LUN is removed (5 -> the frontend writes 6).
    let second = Address {
        bus: 0,
        target: 2,
        lun: 0,
    };
    let image2 = second_image(cx);
    fs::write(&image2, sectors_content(SEED.wrapping_add(9), 0, 2048))
        .context(format!("write {image2}"))?;
    SecondLun::paths(&Lio::paths()).create(&image2, 2048 * 512)?;
    let segs = d.segments(8 * PAGE_SIZE, 256 * 1024, PAGE_SIZE);
    d.submit(60, &rw10(0x28, 0, 512), DataDirection::FromDevice, &segs)?;
    let dev1 = format!("{be}/vscsi-devs/dev-1");
    store.write_all(&[
        (format!("{dev1}/p-dev"), format!("{TARGET_WWN}:1")),
        (format!("{dev1}/v-dev"), "0:0:2:0".to_owned()),
        (format!("{dev1}/state"), "1".to_owned()),
        (format!("{be}/state"), "7".to_owned()),
    ])?;
    d.luns.clear();
    let hotplug = Instant::now();
    d.follow("LUN add", |d| {
        d.hs.state() == XenbusState::Connected
            && d.luns
                .iter()
                .any(|e| matches!(e, LunEvent::Added(l) if l.address == second))
    })?;
    cx.duration("LUN add", hotplug.elapsed(), "ms");
    store.set_state(&dev1, XenbusState::Connected)?;
    d.wait("the read across the hotplug", |d| {
        d.done.iter().any(|c| c.tag == Tag(60))
    })?;
    let c = d.take(60)?;
    if c.scsi_status != 0 {
        // LIO tells the I_T nexus that its LUN inventory changed: UNIT ATTENTION, REPORTED
        // LUNS DATA HAS CHANGED (3F/0E), on a command that reaches it after the add.
        let s = c.sense.decode();
        ensure(
            s.is_some_and(|s| (s.key, s.asc, s.ascq) == (6, 0x3f, 0x0e)),
            || format!("the read across the hotplug: {c:?}"),
        )?;
        cx.log(format!(
            "the read across the hotplug: UNIT ATTENTION 3F/0E (residual {}), read again",
            c.residual
        ));
        d.good(65, &rw10(0x28, 0, 512), DataDirection::FromDevice, &segs)?;
    } else {
        ensure(c.residual == 0, || {
            format!("the read across the hotplug: {c:?}")
        })?;
    }
    ensure(d.gather(&segs) == sectors_content(SEED, 0, 512), || {
        "the read across the hotplug: wrong data".to_owned()
    })?;
    // The new LUN answers with its own image.
    let segs = d.segments(0, 4096, PAGE_SIZE);
    let req_second = |d: &mut Driver<'_, '_, '_, '_>, tag: u64, cdb: &[u8], segs: &[Segment]| {
        let now = d.now();
        let req = ScsiRequest {
            tag: Tag(tag),
            address: second,
            cdb,
            direction: if segs.is_empty() {
                DataDirection::None
            } else {
                DataDirection::FromDevice
            },
            segments: segs,
            timeout_ms: 30_000,
        };
        let f = &mut *d.front;
        let mut io = Io::new(&mut f.grants, &mut f.events, &mut f.memory);
        f.engine
            .submit(&req, now, &mut io)
            .map_err(|e| Failure(format!("submit to the new LUN: {e:?}")))?;
        d.wait("the new LUN", |d| d.done.iter().any(|c| c.tag == Tag(tag)))?;
        d.take(tag)
    };
    let mut read_ok = false;
    for attempt in 0..3 {
        let c = req_second(&mut d, 61 + attempt, &rw10(0x28, 8, 8), &segs)?;
        if c.scsi_status == 0 && c.residual == 0 {
            read_ok = true;
            break;
        }
    }
    ensure(read_ok, || "the new LUN does not read".to_owned())?;
    ensure(
        d.gather(&segs) == sectors_content(SEED.wrapping_add(9), 8, 8),
        || "the new LUN reads wrong data".to_owned(),
    )?;
    // Remove it.
    store.write_all(&[
        (format!("{dev1}/state"), "5".to_owned()),
        (format!("{be}/state"), "7".to_owned()),
    ])?;
    d.luns.clear();
    d.follow("LUN remove", |d| {
        d.hs.state() == XenbusState::Connected
            && d.luns
                .iter()
                .any(|e| matches!(e, LunEvent::Removed(l) if l.address == second))
    })?;
    let fe_dev1 = store.read(&format!("{fe}/vscsi-devs/dev-1/state"))?;
    ensure(fe_dev1.as_deref().map(str::trim) == Some("6"), || {
        format!("the frontend's dev-1 state {fe_dev1:?}, expected 6")
    })?;
    let gone = req_second(&mut d, 70, &[0, 0, 0, 0, 0, 0], &[]);
    ensure(gone.is_err(), || {
        "the removed LUN still takes commands".to_owned()
    })?;
    store.rm(&dev1)?;
    cx.log("LUN 0:0:2:0 added with a read in flight on 0:0:1:0, read, removed");

    // Close: Closing, the backend follows, the engine releases everything.
    let plan = d.hs.close();
    d.run_plan(&plan)?;
    d.follow("close", |d| {
        d.hs.state() == XenbusState::Closed && d.front.engine.state() == EngineState::Disconnected
    })?;
    let k = d.front.engine.counters();
    cx.figure("commands", k.commands as f64, "");
    cx.log(format!("closed; {k:?}"));
    ensure(d.done.is_empty(), || {
        format!("completions at close: {:?}", d.done)
    })
}
