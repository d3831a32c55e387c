//! `scsi-smoke`: a userspace scsifront in dom0, built on `xen-ring` and the `xen-abi` vscsiif
//! types, against the real xen-scsiback, which passes the commands to a LIO fileio LUN over an
//! image of known content.
//!
//! The scenario is the toolstack too: it sets LIO up through configfs (a fileio backstore, a
//! `xen-pvscsi` target with one LUN and an I_T nexus) and writes the vscsi nodes, with the LUN in
//! `vscsi-devs/dev-0`. scsiback attaches the LUN when the frontend is Initialised and sets the
//! LUN's `state` to 3; the frontend answers with 4, as Linux's scsifront does.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use xen_abi::vscsiif::{
    rslt_host, rslt_status, Hctl, ScsiifRequestSegment, VscsiifRequest, VscsiifResponse,
    VSCSIIF_ACT_SCSI_CDB, VSCSIIF_DMA_FROM_DEVICE, VSCSIIF_DMA_NONE, VSCSIIF_DMA_TO_DEVICE,
    VSCSIIF_MAX_COMMAND_SIZE, VSCSIIF_RING_SLOTS, VSCSIIF_SENSE_BUFFERSIZE, VSCSIIF_SG_TABLESIZE,
};
use xen_abi::xenbus::XenbusState;

use super::toolstack::{
    device_dirs, mean_us, modprobe, remove_device, sectors_content, sh, wait_event, Store,
};
use crate::platform::evtchn::{EventChannels, Port};
use crate::platform::gntalloc::Gntalloc;
use crate::platform::ring::GrantedRing;
use crate::platform::PAGE_SIZE;
use crate::scenario::{ensure, Context, Failure, Outcome, ResultExt, Scenario};

/// The scenario.
pub const SCENARIO: Scenario = Scenario {
    name: "scsi-smoke",
    description: "userspace scsifront (xen-ring + xen-abi vscsiif) against the real xen-scsiback \
                  and a LIO fileio LUN: connect (LUN state 3 -> 4), TEST UNIT READY, INQUIRY, \
                  READ CAPACITY(10), READ(10) of known data, WRITE(10) + READ back, clean \
                  Closing/Closed",
    default: true,
    timeout: Duration::from_secs(120),
    run,
};

/// The vscsi device (vhost) id.
const VHOST: u32 = 0;
/// The image's content seed.
const SEED: u8 = 7;
/// 512-byte blocks in the image: 1 MiB.
const IMAGE_BLOCKS: u64 = 2048;
/// Where the write test writes (blocks).
const WRITE_LBA: u64 = 1024;
/// Sequential 4 KiB READ(10)s timed after the functional checks.
const READS: u64 = 16;
/// The LUN's address as the frontend sees it.
const V_DEV: &str = "0:0:0:0";
/// The target's WWN (the `p-dev` names it) and the initiator's, for the nexus.
pub(crate) const TARGET_WWN: &str = "naa.6001405000000001";
const INITIATOR_WWN: &str = "naa.6001405000000002";
/// The fileio HBA and backstore directories under `target/core`.
const HBA: &str = "fileio_0";
const BACKSTORE: &str = "lab_scsi";
/// Where configfs is mounted.
const CONFIGFS: &str = "/sys/kernel/config";
/// How long the backend may take to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one command may take.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// SCSI status GOOD and CHECK CONDITION.
const STATUS_GOOD: u8 = 0x00;
const STATUS_CHECK_CONDITION: u8 = 0x02;
/// Sense key UNIT ATTENTION.
const SENSE_UNIT_ATTENTION: u8 = 0x06;

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
    let started = Instant::now();
    let lio = Lio::paths();
    let outcome = lio.create(&image, IMAGE_BLOCKS * 512).and_then(|()| {
        cx.duration("LIO setup", started.elapsed(), "ms");
        session(cx, &mut store, &image, &fe, &be)
    });
    // Whatever happened: take the device away (scsiback then lets the LUN go), then LIO.
    let removed = remove_device(&mut store, &fe, &be);
    let torn_down = lio.remove();
    let _ = fs::remove_file(&image);
    outcome.and(removed).and(torn_down)
}

/// The LIO objects the scenario made in configfs: a fileio backstore and a `xen-pvscsi` target
/// port group with LUN 0 on it and an I_T nexus.
#[derive(Debug)]
pub(crate) struct Lio {
    target: PathBuf,
    hba: PathBuf,
    backstore: PathBuf,
    wwn: PathBuf,
    tpg: PathBuf,
    lun: PathBuf,
    link: PathBuf,
}

/// Writes a configfs attribute (one `write`, as configfs wants).
fn attr(path: &Path, value: &str) -> Result<(), Failure> {
    fs::write(path, value).context(format!("write '{value}' to {}", path.display()))
}

fn mkdir(path: &Path) -> Result<(), Failure> {
    fs::create_dir_all(path).context(format!("mkdir {}", path.display()))
}

impl Lio {
    pub(crate) fn paths() -> Self {
        let target = Path::new(CONFIGFS).join("target");
        let hba = target.join("core").join(HBA);
        let backstore = hba.join(BACKSTORE);
        let wwn = target.join("xen-pvscsi").join(TARGET_WWN);
        let tpg = wwn.join("tpgt_1");
        let lun = tpg.join("lun/lun_0");
        let link = lun.join(BACKSTORE);
        Self {
            target,
            hba,
            backstore,
            wwn,
            tpg,
            lun,
            link,
        }
    }

    /// The fileio HBA's directory.
    pub(crate) fn hba_dir(&self) -> &Path {
        &self.hba
    }

    /// The target port group's directory.
    pub(crate) fn tpg_dir(&self) -> &Path {
        &self.tpg
    }

    /// Mounts configfs if needed and builds the target over `image` (`size` bytes).
    pub(crate) fn create(&self, image: &str, size: u64) -> Result<(), Failure> {
        let mounted = fs::read_to_string("/proc/mounts")
            .context("read /proc/mounts")?
            .lines()
            .any(|l| l.split(' ').nth(1) == Some(CONFIGFS));
        if !mounted {
            sh("mount", &["-t", "configfs", "configfs", CONFIGFS])?;
        }
        ensure(self.target.is_dir(), || {
            format!(
                "{} is missing after loading target_core_mod",
                self.target.display()
            )
        })?;
        // Leftovers of an earlier run in this boot would make the mkdirs below fail.
        self.remove()?;
        mkdir(&self.backstore)?;
        attr(
            &self.backstore.join("control"),
            &format!("fd_dev_name={image},fd_dev_size={size}"),
        )?;
        attr(&self.backstore.join("enable"), "1")?;
        mkdir(&self.lun)?;
        symlink(&self.backstore, &self.link).context(format!(
            "link {} to {}",
            self.link.display(),
            self.backstore.display()
        ))?;
        attr(&self.tpg.join("nexus"), INITIATOR_WWN)?;
        Ok(())
    }

    /// Takes down whatever exists of it, in the reverse order (the LUN link, the nexus, then the
    /// directories). scsiback lets go of the LUN shortly after its device is removed, so a busy
    /// object is tried again for a while.
    pub(crate) fn remove(&self) -> Result<(), Failure> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.remove_once() {
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                other => return other,
            }
        }
    }

    fn remove_once(&self) -> Result<(), Failure> {
        let gone = |r: std::io::Result<()>, what: &str, path: &Path| match r {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Failure(format!(
                "LIO teardown: {what} {}: {e}",
                path.display()
            ))),
            _ => Ok(()),
        };
        if fs::symlink_metadata(&self.link).is_ok() {
            gone(fs::remove_file(&self.link), "unlink", &self.link)?;
        }
        gone(fs::remove_dir(&self.lun), "rmdir", &self.lun)?;
        // Reading `nexus` fails when there is none.
        let nexus = self.tpg.join("nexus");
        if fs::read_to_string(&nexus).is_ok() {
            gone(fs::write(&nexus, "NULL"), "drop the nexus in", &nexus)?;
        }
        for dir in [&self.tpg, &self.wwn, &self.backstore, &self.hba] {
            gone(fs::remove_dir(dir), "rmdir", dir)?;
        }
        Ok(())
    }
}

type Ring<'p> = GrantedRing<'p, VscsiifRequest, VscsiifResponse>;

/// Which way a command's data goes, and through which granted page.
#[derive(Clone, Copy, Debug)]
enum Data {
    None,
    /// `len` bytes from the device into the page granted as the `u32`.
    In(u32, u16),
    /// `len` bytes from the page granted as the `u32` to the device.
    Out(u32, u16),
}

/// What a completed command gave back.
#[derive(Clone, Copy, Debug)]
struct Completion {
    /// Bytes asked for minus the residual.
    transferred: u32,
    latency: Duration,
}

/// One command at a time over the ring.
struct Front<'p, 'e> {
    ring: Ring<'p>,
    events: &'e mut EventChannels,
    port: Port,
    target: Hctl,
    sent: u32,
}

/// A request with everything zero.
fn blank_request() -> VscsiifRequest {
    VscsiifRequest {
        rqid: 0,
        act: 0,
        cmd_len: 0,
        cmnd: [0; VSCSIIF_MAX_COMMAND_SIZE],
        timeout_per_command: 0,
        channel: 0,
        id: 0,
        lun: 0,
        ref_rqid: 0,
        sc_data_direction: VSCSIIF_DMA_NONE,
        nr_segments: 0,
        seg: [ScsiifRequestSegment {
            gref: 0,
            offset: 0,
            length: 0,
        }; VSCSIIF_SG_TABLESIZE],
        reserved: [0; 3],
    }
}

/// Sense key, ASC and ASCQ of fixed or descriptor format sense data.
fn sense_codes(sense: &[u8]) -> Option<(u8, u8, u8)> {
    match sense.first().map(|b| b & 0x7f) {
        Some(0x70 | 0x71) if sense.len() >= 14 => Some((sense[2] & 0x0f, sense[12], sense[13])),
        Some(0x72 | 0x73) if sense.len() >= 4 => Some((sense[1] & 0x0f, sense[2], sense[3])),
        _ => None,
    }
}

/// Why a command did not complete with GOOD.
#[derive(Debug)]
enum CommandError {
    /// CHECK CONDITION with this sense key, ASC and ASCQ.
    Check(u8, u8, u8),
    /// Anything else: a readable sentence.
    Other(Failure),
}

impl From<Failure> for CommandError {
    fn from(f: Failure) -> Self {
        Self::Other(f)
    }
}

impl CommandError {
    fn into_failure(self, what: &str) -> Failure {
        match self {
            Self::Check(key, asc, ascq) => Failure(format!(
                "{what}: CHECK CONDITION, sense key {key:#x} ASC {asc:#04x} ASCQ {ascq:#04x}"
            )),
            Self::Other(Failure(m)) => Failure(format!("{what}: {m}")),
        }
    }
}

impl Front<'_, '_> {
    /// Sends one CDB and waits for its response, which must carry the same rqid, a sense length
    /// within the buffer, a residual no larger than the transfer, and GOOD with host status OK.
    fn command(&mut self, cdb: &[u8], data: Data) -> Result<Completion, CommandError> {
        let mut req = blank_request();
        // As Linux's scsifront, the id is a slot-sized number; one command is in flight.
        req.rqid = (self.sent % VSCSIIF_RING_SLOTS) as u16;
        self.sent += 1;
        req.act = VSCSIIF_ACT_SCSI_CDB;
        req.cmd_len = cdb.len() as u8;
        req.cmnd[..cdb.len()].copy_from_slice(cdb);
        req.channel = self.target.channel;
        req.id = self.target.target;
        req.lun = self.target.lun;
        let asked = match data {
            Data::None => 0,
            Data::In(gref, len) | Data::Out(gref, len) => {
                req.nr_segments = 1;
                req.seg[0] = ScsiifRequestSegment {
                    gref,
                    offset: 0,
                    length: len,
                };
                req.sc_data_direction = if matches!(data, Data::In(..)) {
                    VSCSIIF_DMA_FROM_DEVICE
                } else {
                    VSCSIIF_DMA_TO_DEVICE
                };
                u32::from(len)
            }
        };
        let started = Instant::now();
        self.ring
            .push_request(&req)
            .context("push a request on the ring")?;
        if self.ring.push_requests_and_check_notify() {
            self.events
                .notify(self.port)
                .context("notify the backend")?;
        }
        let rsp = loop {
            let mut got = Vec::new();
            self.ring
                .drain_responses(|rsp| got.push(rsp))
                .context("read responses")?;
            if let Some(rsp) = got.first() {
                ensure(got.len() == 1, || {
                    format!("{} responses to one request", got.len())
                })?;
                break *rsp;
            }
            if self
                .ring
                .final_check_for_responses()
                .context("check for responses")?
            {
                continue;
            }
            wait_event(self.events, self.port, IO_TIMEOUT, "a SCSI response")?;
        };
        let latency = started.elapsed();
        ensure(rsp.rqid == req.rqid, || {
            format!("response rqid {} to request rqid {}", rsp.rqid, req.rqid)
        })?;
        let sense_len = usize::from(rsp.sense_len);
        ensure(sense_len <= VSCSIIF_SENSE_BUFFERSIZE, || {
            format!("sense length {sense_len} > {VSCSIIF_SENSE_BUFFERSIZE}")
        })?;
        ensure(rsp.residual_len <= asked, || {
            format!(
                "residual {} bytes of a {asked}-byte transfer",
                rsp.residual_len
            )
        })?;
        let (status, host) = (rslt_status(rsp.rslt), rslt_host(rsp.rslt));
        if rsp.rslt != 0 {
            if status == STATUS_CHECK_CONDITION && host == 0 {
                if let Some((key, asc, ascq)) = sense_codes(&rsp.sense_buffer[..sense_len]) {
                    return Err(CommandError::Check(key, asc, ascq));
                }
            }
            return Err(CommandError::Other(Failure(format!(
                "result {:#010x} (SCSI status {status:#04x}, host status {host}), {sense_len} \
                 bytes of sense",
                rsp.rslt
            ))));
        }
        debug_assert_eq!(status, STATUS_GOOD);
        Ok(Completion {
            transferred: asked - rsp.residual_len,
            latency,
        })
    }

    /// [`Front::command`] with errors as failures naming the command.
    fn run(&mut self, what: &str, cdb: &[u8], data: Data) -> Result<Completion, Failure> {
        self.command(cdb, data).map_err(|e| e.into_failure(what))
    }
}

/// READ(10) or WRITE(10) of `blocks` 512-byte blocks at `lba`.
fn rw10(opcode: u8, lba: u64, blocks: u16) -> [u8; 10] {
    let lba = (lba as u32).to_be_bytes();
    let len = blocks.to_be_bytes();
    [
        opcode, 0, lba[0], lba[1], lba[2], lba[3], 0, len[0], len[1], 0,
    ]
}

const OP_TEST_UNIT_READY: u8 = 0x00;
const OP_INQUIRY: u8 = 0x12;
const OP_READ_CAPACITY_10: u8 = 0x25;
const OP_READ_10: u8 = 0x28;
const OP_WRITE_10: u8 = 0x2a;
/// The INQUIRY allocation length.
const INQUIRY_LEN: u16 = 96;

fn first_difference(got: &[u8], want: &[u8]) -> String {
    match got.iter().zip(want).position(|(a, b)| a != b) {
        Some(at) => format!(
            "first difference at byte {at}: {:#04x}, expected {:#04x}",
            got[at], want[at]
        ),
        None => format!("{} bytes, expected {}", got.len(), want.len()),
    }
}

fn session(cx: &mut Context, store: &mut Store, image: &str, fe: &str, be: &str) -> Outcome {
    // The toolstack's part: both directories in one transaction, backend and LUN Initialising.
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
    store.expect_state("backend", be, XenbusState::InitWait, CONNECT_TIMEOUT)?;
    let sg_grant = store.read(&format!("{be}/feature-sg-grant"))?;
    cx.log(format!(
        "backend in InitWait (feature-sg-grant {})",
        sg_grant.as_deref().unwrap_or("absent")
    ));

    // The frontend's part: ring page, data pages, event channel.
    let v_dev = store
        .read(&format!("{lun_dir}/v-dev"))?
        .ok_or_else(|| Failure(format!("{lun_dir}/v-dev is missing")))?;
    let target: Hctl = v_dev
        .trim()
        .parse()
        .map_err(|e| Failure(format!("v-dev '{v_dev}': {e}")))?;
    let gnt = Gntalloc::open().context("open gntalloc")?;
    let ring_pages = gnt.grant(0, 1, true).context("grant the ring page")?;
    let data = gnt.grant(0, 2, true).context("grant the data pages")?;
    let (in_ref, out_ref) = (data.refs()[0], data.refs()[1]);
    let mut events = EventChannels::open().context("open evtchn")?;
    let port = events
        .bind_unbound(0)
        .context("allocate an event channel")?;
    let ring = Ring::init(&ring_pages).context("initialise the ring")?;
    ensure(ring.slots() == VSCSIIF_RING_SLOTS, || {
        format!("a one-page vscsiif ring has {} slots", ring.slots())
    })?;
    let started = Instant::now();
    store.write_all(&[
        node(fe, "ring-ref", &ring_pages.refs()[0].to_string()),
        node(fe, "event-channel", &port.to_string()),
        node(fe, "state", XenbusState::Initialised.as_str()),
    ])?;
    store.expect_state("backend", be, XenbusState::Connected, CONNECT_TIMEOUT)?;
    // scsiback attached the LUN: its state is Initialised; the frontend says Connected.
    store.expect_state("LUN", &lun_dir, XenbusState::Initialised, CONNECT_TIMEOUT)?;
    store.set_state(&format!("{fe}/vscsi-devs/dev-0"), XenbusState::Connected)?;
    store.set_state(&lun_dir, XenbusState::Connected)?;
    store.set_state(fe, XenbusState::Connected)?;
    cx.duration("connect", started.elapsed(), "ms");
    cx.log(format!(
        "backend Connected, LUN {p_dev} at {target} attached and Connected"
    ));

    let mut front = Front {
        ring,
        events: &mut events,
        port,
        target,
        sent: 0,
    };
    let pages = data.pages();
    let mut page = vec![0u8; PAGE_SIZE];

    // TEST UNIT READY; a UNIT ATTENTION (a new nexus) is answered by asking again.
    let mut attempts = 0;
    let tur = loop {
        attempts += 1;
        match front.command(&[OP_TEST_UNIT_READY, 0, 0, 0, 0, 0], Data::None) {
            Ok(c) => break c,
            Err(CommandError::Check(SENSE_UNIT_ATTENTION, asc, ascq)) if attempts < 3 => {
                cx.log(format!(
                    "TEST UNIT READY: UNIT ATTENTION ASC {asc:#04x} ASCQ {ascq:#04x}; again"
                ));
            }
            Err(e) => return Err(e.into_failure("TEST UNIT READY")),
        }
    };
    cx.duration("TUR", tur.latency, "ms");

    // INQUIRY: a disk (peripheral type 0, connected), LIO's vendor.
    pages.write(0, &[0xa5; PAGE_SIZE]);
    let len = INQUIRY_LEN.to_be_bytes();
    let inquiry = front.run(
        "INQUIRY",
        &[OP_INQUIRY, 0, 0, len[0], len[1], 0],
        Data::In(in_ref, INQUIRY_LEN),
    )?;
    pages.read(0, &mut page);
    ensure(inquiry.transferred >= 36, || {
        format!(
            "INQUIRY returned {} bytes, fewer than the standard 36",
            inquiry.transferred
        )
    })?;
    let text =
        |range: std::ops::Range<usize>| String::from_utf8_lossy(&page[range]).trim_end().to_owned();
    let (vendor, product, revision) = (text(8..16), text(16..32), text(32..36));
    ensure(page[0] == 0, || {
        format!(
            "INQUIRY: peripheral qualifier {} type {:#04x}, expected a connected disk (0, 0)",
            page[0] >> 5,
            page[0] & 0x1f
        )
    })?;
    ensure(vendor == "LIO-ORG", || {
        format!("INQUIRY: vendor '{vendor}', expected 'LIO-ORG'")
    })?;
    cx.duration("INQUIRY", inquiry.latency, "ms");
    cx.log(format!(
        "INQUIRY: type 0, '{vendor}' '{product}' '{revision}', {} bytes",
        inquiry.transferred
    ));

    // READ CAPACITY(10): the last block and the block size.
    pages.write(0, &[0xa5; 8]);
    let capacity = front.run(
        "READ CAPACITY(10)",
        &[OP_READ_CAPACITY_10, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        Data::In(in_ref, 8),
    )?;
    let mut cap = [0u8; 8];
    pages.read(0, &mut cap);
    let last_lba = u32::from_be_bytes([cap[0], cap[1], cap[2], cap[3]]);
    let block_size = u32::from_be_bytes([cap[4], cap[5], cap[6], cap[7]]);
    ensure(
        capacity.transferred == 8 && u64::from(last_lba) + 1 == IMAGE_BLOCKS && block_size == 512,
        || {
            format!(
                "READ CAPACITY(10): {} bytes, last LBA {last_lba}, block size {block_size}; \
                 expected 8 bytes, {} and 512",
                capacity.transferred,
                IMAGE_BLOCKS - 1
            )
        },
    )?;
    cx.duration("READ CAPACITY", capacity.latency, "ms");

    // READ(10) of LBA 0: the image's known content.
    let read = |front: &mut Front<'_, '_>, lba: u64| -> Result<Completion, Failure> {
        pages.write(0, &[0xa5; PAGE_SIZE]);
        let done = front.run(
            &format!("READ(10) at LBA {lba}"),
            &rw10(OP_READ_10, lba, 8),
            Data::In(in_ref, PAGE_SIZE as u16),
        )?;
        ensure(done.transferred == PAGE_SIZE as u32, || {
            format!(
                "READ(10) at LBA {lba}: {} bytes transferred of {PAGE_SIZE}",
                done.transferred
            )
        })?;
        Ok(done)
    };
    let first = read(&mut front, 0)?;
    pages.read(0, &mut page);
    let want = sectors_content(SEED, 0, 8);
    ensure(page == want, || {
        format!("LBA 0 reads wrong: {}", first_difference(&page, &want))
    })?;
    cx.duration("READ 4k", first.latency, "ms");

    // WRITE(10) a pattern, READ it back, and find it in the image file.
    let pattern = sectors_content(SEED.wrapping_add(100), WRITE_LBA, 8);
    pages.write(PAGE_SIZE, &pattern);
    let write = front.run(
        &format!("WRITE(10) at LBA {WRITE_LBA}"),
        &rw10(OP_WRITE_10, WRITE_LBA, 8),
        Data::Out(out_ref, PAGE_SIZE as u16),
    )?;
    ensure(write.transferred == PAGE_SIZE as u32, || {
        format!(
            "WRITE(10): {} bytes transferred of {PAGE_SIZE}",
            write.transferred
        )
    })?;
    cx.duration("WRITE 4k", write.latency, "ms");
    read(&mut front, WRITE_LBA)?;
    pages.read(0, &mut page);
    ensure(page == pattern, || {
        format!(
            "written data reads back wrong: {}",
            first_difference(&page, &pattern)
        )
    })?;
    let in_file = {
        use std::os::unix::fs::FileExt;
        let file = fs::File::open(image).context(format!("open {image}"))?;
        let mut buf = vec![0u8; PAGE_SIZE];
        file.read_exact_at(&mut buf, WRITE_LBA * 512)
            .context(format!("read {image}"))?;
        buf
    };
    ensure(in_file == pattern, || {
        format!(
            "after WRITE(10) the image file differs: {}",
            first_difference(&in_file, &pattern)
        )
    })?;

    // Sequential 4 KiB reads, each checked.
    let mut latencies = Vec::with_capacity(READS as usize);
    for i in 0..READS {
        let lba = i * 8;
        latencies.push(read(&mut front, lba)?.latency);
        pages.read(0, &mut page);
        let want = sectors_content(SEED, lba, 8);
        ensure(page == want, || {
            format!("LBA {lba} reads wrong: {}", first_difference(&page, &want))
        })?;
    }
    cx.figure(
        &format!("{READS} x 4k read, mean"),
        mean_us(&latencies),
        "us",
    );
    cx.log(format!("{} commands, every response checked", front.sent));

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdbs() {
        assert_eq!(
            rw10(OP_READ_10, 0x0102_0304, 8),
            [0x28, 0, 1, 2, 3, 4, 0, 0, 8, 0]
        );
        assert_eq!(rw10(OP_WRITE_10, WRITE_LBA, 8)[..6], [0x2a, 0, 0, 0, 4, 0]);
    }

    #[test]
    fn sense_formats() {
        let mut fixed = [0u8; 18];
        fixed[0] = 0x70;
        fixed[2] = 0x06;
        fixed[12] = 0x29;
        fixed[13] = 0x01;
        assert_eq!(sense_codes(&fixed), Some((6, 0x29, 1)));
        assert_eq!(sense_codes(&[0x72, 0x05, 0x24, 0x00]), Some((5, 0x24, 0)));
        assert_eq!(sense_codes(&[]), None);
        assert_eq!(sense_codes(&fixed[..10]), None);
    }

    #[test]
    fn lio_paths_nest() {
        let lio = Lio::paths();
        assert!(lio.link.starts_with(&lio.lun));
        assert!(lio.lun.starts_with(&lio.tpg));
        assert!(lio.backstore.starts_with(&lio.hba));
        assert_eq!(
            lio.tpg,
            Path::new("/sys/kernel/config/target/xen-pvscsi/naa.6001405000000001/tpgt_1")
        );
    }
}
