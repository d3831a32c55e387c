//! A PvSCSI backend (scsiback) model: emulated SCSI devices served to the guest over a vscsiif
//! ring through the simulated grant table, with the xenstore handshake scsiback and the
//! toolstack run, LUN hotplug, task management and fault injection.
//!
//! The model maps the frontend's ring page with [`Backend::map_grant`] and reads requests with
//! its own offsets (not the ABI structs, so it is an independent reading of `io/vscsiif.h`):
//! `rqid` at 0, `act` 2, `cmd_len` 3, `cmnd` 4–19, `channel` 22, `id` 24, `lun` 26, `ref_rqid`
//! 28, `sc_data_direction` 30, `nr_segments` 31, `seg[26]` from 32 in 8-byte entries; responses
//! carry `sense_len` at 3, the sense bytes from 4, `rslt` at 100 and `residual_len` at 104; slots
//! are 252 bytes after the 64-byte header. Indirect segment lists (`VSCSIIF_SG_GRANT`) are read
//! from the granted pages and bounded by the advertised `feature-sg-grant`.
//!
//! Data moves with grant copies, byte-granular (each segment's offset and length), honouring
//! read-only grants; a held request ([`ScsiFaults::hold`]) maps its data pages instead and keeps
//! them mapped until it is answered (or forever with [`ScsiFaults::keep_mappings`]), so the
//! frontend's revocations are deferred as they are against a real backend.
//!
//! Devices: [`Disk`] (SBC subset), [`Tape`] (SSC subset) and [`Optical`] (MMC subset; see their
//! modules). Each command's
//! status, sense (fixed format, as LIO returns it) and residual come from the device.
//!
//! Task management: an abort answers the held command it names with host status ABORT and then
//! reports success (failure when no such command is held); a reset answers every held command of
//! the LUN with host status RESET, gives the device a unit attention (power on/reset, ASC 29/00)
//! and reports success. [`ScsiFaults`] makes them fail or go unanswered.

mod disk;
mod optical;
mod tape;

use xen_abi::types::{DomId, EvtchnPort, GrantRef};

pub use disk::Disk;
pub use optical::{Disc, Optical, PROFILE_CD_R, PROFILE_DVD_R};
pub use tape::{Tape, TapeObject};

use crate::grant::{GntError, MappedGrant};
use crate::memory::PAGE_SIZE;
use crate::Backend;

const HEADER: usize = 64;
const ENTRY: usize = 252;
const SLOTS: u32 = 16;
const DIRECT: usize = 26;

/// What one emulated command produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandResult {
    /// The SCSI status.
    pub status: u8,
    /// Sense data (with CHECK CONDITION).
    pub sense: Vec<u8>,
    /// Data for the initiator (reads).
    pub data: Vec<u8>,
    /// Bytes of the initiator's data the device took (writes).
    pub consumed: usize,
}

impl CommandResult {
    /// GOOD with `data`.
    pub fn good(data: Vec<u8>) -> Self {
        CommandResult {
            status: 0,
            sense: Vec::new(),
            data,
            consumed: 0,
        }
    }

    /// GOOD, `n` bytes written.
    pub fn consumed(n: usize) -> Self {
        CommandResult {
            status: 0,
            sense: Vec::new(),
            data: Vec::new(),
            consumed: n,
        }
    }

    /// CHECK CONDITION with `sense`.
    pub fn check(sense: Vec<u8>) -> Self {
        Self::check_with(sense, Vec::new())
    }

    /// CHECK CONDITION with `sense`, after `data` was transferred.
    pub fn check_with(sense: Vec<u8>, data: Vec<u8>) -> Self {
        CommandResult {
            status: 2,
            sense,
            data,
            consumed: 0,
        }
    }
}

/// Fixed-format sense data (18 bytes): key, ASC/ASCQ, the FILEMARK/EOM/ILI `flags` (byte 2's
/// top bits) and the INFORMATION field (setting VALID) if given.
pub fn fixed_sense(key: u8, asc: u8, ascq: u8, flags: u8, information: Option<i32>) -> Vec<u8> {
    let mut s = vec![0u8; 18];
    s[0] = 0x70;
    s[2] = flags | (key & 0x0f);
    if let Some(i) = information {
        s[0] |= 0x80;
        s[3..7].copy_from_slice(&i.to_be_bytes());
    }
    s[7] = 10;
    s[12] = asc;
    s[13] = ascq;
    s
}

/// A 36-byte standard INQUIRY answer.
pub fn inquiry(peripheral_type: u8, removable: bool, product: &[u8; 16]) -> Vec<u8> {
    let mut d = vec![0u8; 36];
    d[0] = peripheral_type;
    d[1] = if removable { 0x80 } else { 0 };
    d[2] = 0x05;
    d[3] = 0x02;
    d[4] = 31;
    d[8..16].copy_from_slice(b"XENSIM  ");
    d[16..32].copy_from_slice(product);
    d[32..36].copy_from_slice(b"0001");
    d
}

/// An emulated SCSI device.
pub trait ScsiDevice: std::fmt::Debug + Send {
    /// Carries out `cdb` with `data_out` (the initiator's data, empty for reads).
    fn execute(&mut self, cdb: &[u8], data_out: &[u8]) -> CommandResult;
    /// A LUN reset: the next command gets a unit attention.
    fn reset(&mut self);
}

/// The device kinds the model emulates.
#[derive(Debug, Clone)]
pub enum Emulated {
    /// A disk.
    Disk(Disk),
    /// A tape drive.
    Tape(Tape),
    /// A DVD/CD writer.
    Optical(Optical),
}

impl Emulated {
    fn device(&mut self) -> &mut dyn ScsiDevice {
        match self {
            Emulated::Disk(d) => d,
            Emulated::Tape(t) => t,
            Emulated::Optical(o) => o,
        }
    }
}

/// Fault switches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScsiFaults {
    /// Hold every command (mapping its data pages) until [`Scsiback::release_held`] or task
    /// management answers it.
    pub hold: bool,
    /// Hold commands with this opcode only.
    pub hold_opcode: Option<u8>,
    /// Keep the data pages of answered held commands mapped (a backend that leaks mappings);
    /// [`Scsiback::unmap_leaked`] drops them.
    pub keep_mappings: bool,
    /// Never answer aborts and resets.
    pub ignore_task_management: bool,
    /// Answer aborts with failure.
    pub fail_aborts: bool,
    /// Answer resets with failure.
    pub fail_resets: bool,
    /// Answer resets with success but leave the LUN's held commands held (their answers come
    /// late, with [`Scsiback::release_held`]).
    pub silent_resets: bool,
    /// The next `n` responses carry a corrupted `rqid`.
    pub corrupt_rqid_next: u32,
    /// The next response claims this `sense_len`.
    pub sense_len_next: Option<u8>,
    /// The next response claims this `residual_len`.
    pub residual_next: Option<u32>,
    /// The next `n` responses are pushed twice.
    pub duplicate_next: u32,
}

/// A request as the model read it off the ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenRequest {
    /// `rqid`.
    pub rqid: u16,
    /// `act`.
    pub act: u8,
    /// The CDB (`cmd_len` bytes of `cmnd`).
    pub cdb: Vec<u8>,
    /// `channel`, `id`, `lun`.
    pub address: (u16, u16, u16),
    /// `ref_rqid`.
    pub ref_rqid: u16,
    /// `sc_data_direction`.
    pub direction: u8,
    /// `timeout_per_command`.
    pub timeout: u16,
    /// Data segments `(gref, offset, length)`, direct or read from the indirect pages.
    pub segments: Vec<(GrantRef, u16, u16)>,
    /// Whether the segments came through indirect pages.
    pub indirect: bool,
}

impl SeenRequest {
    fn transfer(&self) -> u32 {
        self.segments.iter().map(|s| u32::from(s.2)).sum()
    }
}

/// Why the model stopped serving the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScsibackError {
    /// Not connected.
    NotConnected,
    /// A grant operation on the ring failed.
    Grant(GntError),
    /// `req_prod` ran more than a ring ahead.
    RingOverflow,
    /// A xenstore node the model needs is missing or malformed.
    Store(&'static str),
}

impl From<GntError> for ScsibackError {
    fn from(e: GntError) -> Self {
        ScsibackError::Grant(e)
    }
}

#[derive(Debug)]
struct Lun {
    dev: u32,
    address: (u16, u16, u16),
    device: Emulated,
}

#[derive(Debug)]
struct Conn {
    ring: MappedGrant,
    req_cons: u32,
    rsp_prod_pvt: u32,
    port: EvtchnPort,
}

#[derive(Debug)]
struct Held {
    req: SeenRequest,
    maps: Vec<MappedGrant>,
}

#[derive(Clone, Debug)]
struct Response {
    rqid: u16,
    sense: Vec<u8>,
    rslt: i32,
    residual: u32,
}

/// The scsiback model for one vhost. Drive it with [`step`](Self::step) (the xenstore side)
/// and [`serve`](Self::serve) (the ring) from the test.
#[derive(Debug)]
pub struct Scsiback {
    backend: Backend,
    guest: DomId,
    be_dir: String,
    fe_dir: String,
    sg_grant: u32,
    luns: Vec<Lun>,
    conn: Option<Conn>,
    held: Vec<Held>,
    leaked: Vec<MappedGrant>,
    /// Fault switches.
    pub faults: ScsiFaults,
    /// Every request read, in ring order.
    pub log: Vec<SeenRequest>,
    /// Task-management requests left unanswered ([`ScsiFaults::ignore_task_management`]).
    pub ignored_tm: Vec<SeenRequest>,
}

/// The host status ABORT in `rslt`.
pub const RSLT_ABORTED: i32 = 5 << 16;
/// The host status RESET in `rslt`.
pub const RSLT_RESET: i32 = 8 << 16;
/// The host status NO_CONNECT in `rslt`.
pub const RSLT_NO_CONNECT: i32 = 1 << 16;
/// The host status ERROR in `rslt`.
pub const RSLT_ERROR: i32 = 7 << 16;

impl Scsiback {
    /// A backend in `backend`'s domain for vhost `vhost` of `guest`, advertising
    /// `feature-sg-grant = sg_grant` (0: not advertised).
    pub fn new(backend: Backend, guest: DomId, vhost: u32, sg_grant: u32) -> Self {
        let be_dir = format!(
            "/local/domain/{}/backend/vscsi/{guest}/{vhost}",
            backend.domid()
        );
        let fe_dir = format!("/local/domain/{guest}/device/vscsi/{vhost}");
        Scsiback {
            backend,
            guest,
            be_dir,
            fe_dir,
            sg_grant,
            luns: Vec::new(),
            conn: None,
            held: Vec::new(),
            leaked: Vec::new(),
            faults: ScsiFaults::default(),
            log: Vec::new(),
            ignored_tm: Vec::new(),
        }
    }

    /// The backend's directory.
    pub fn backend_dir(&self) -> &str {
        &self.be_dir
    }

    /// The frontend's directory.
    pub fn frontend_dir(&self) -> &str {
        &self.fe_dir
    }

    /// Changes `feature-sg-grant` (takes effect at the next connection).
    pub fn set_sg_grant(&mut self, sg_grant: u32) {
        self.sg_grant = sg_grant;
        let _ = self.write("feature-sg-grant", &sg_grant.to_string());
    }

    fn write(&self, node: &str, value: &str) -> Result<(), ScsibackError> {
        self.backend
            .xs_write(&format!("{}/{node}", self.be_dir), value.as_bytes())
            .map_err(|_| ScsibackError::Store("write"))
    }

    fn read(&self, path: &str) -> Option<String> {
        self.backend
            .xs_read(path)
            .ok()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    fn be_state(&self) -> u32 {
        self.read(&format!("{}/state", self.be_dir))
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    fn fe_state(&self) -> u32 {
        self.read(&format!("{}/state", self.fe_dir))
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    fn dev_state(&self, dev: u32) -> u32 {
        self.read(&format!("{}/vscsi-devs/dev-{dev}/state", self.be_dir))
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The frontend's mirror of a LUN's state (`<frontend>/vscsi-devs/dev-N/state`).
    pub fn frontend_dev_state(&self, dev: u32) -> u32 {
        self.read(&format!("{}/vscsi-devs/dev-{dev}/state", self.fe_dir))
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The backend's state of LUN `dev-N` (0 when gone).
    pub fn lun_state(&self, dev: u32) -> u32 {
        self.dev_state(dev)
    }

    fn set_dev_state(&self, dev: u32, state: u32) -> Result<(), ScsibackError> {
        self.write(&format!("vscsi-devs/dev-{dev}/state"), &state.to_string())
    }

    /// The toolstack creates the vhost and scsiback probes it: the frontend directory
    /// (`backend`, `backend-id`, `state` 1), the backend's (`frontend`, `frontend-id`,
    /// `feature-sg-grant`, `state` 2 = InitWait).
    pub fn setup(&self) -> Result<(), ScsibackError> {
        let be = &self.be_dir;
        let fe = &self.fe_dir;
        let b = &self.backend;
        let err = |_| ScsibackError::Store("setup");
        b.xs_mkdir(be).map_err(err)?;
        b.xs_set_perms(
            be,
            &[&format!("n{}", b.domid()), &format!("r{}", self.guest)],
        )
        .map_err(err)?;
        b.xs_write(&format!("{be}/frontend"), fe.as_bytes())
            .map_err(err)?;
        b.xs_write(
            &format!("{be}/frontend-id"),
            self.guest.to_string().as_bytes(),
        )
        .map_err(err)?;
        b.xs_write(&format!("{fe}/backend"), be.as_bytes())
            .map_err(err)?;
        b.xs_write(
            &format!("{fe}/backend-id"),
            b.domid().to_string().as_bytes(),
        )
        .map_err(err)?;
        b.xs_write(&format!("{fe}/state"), b"1").map_err(err)?;
        if self.sg_grant > 0 {
            self.write("feature-sg-grant", &self.sg_grant.to_string())?;
        }
        self.write("feature-host", "0")?;
        self.write("state", "2")
    }

    /// The toolstack adds LUN `dev-N` with virtual address `v_dev` (`"h:c:t:l"`): its nodes
    /// with state Initialising, and the vhost to Reconfiguring if it is connected.
    pub fn add_lun(
        &mut self,
        dev: u32,
        v_dev: &str,
        device: Emulated,
    ) -> Result<(), ScsibackError> {
        let parts: Vec<u16> = v_dev
            .split(':')
            .skip(1)
            .filter_map(|p| p.parse().ok())
            .collect();
        let address = match parts[..] {
            [c, t, l] => (c, t, l),
            _ => (u16::MAX, u16::MAX, u16::MAX),
        };
        self.luns.retain(|l| l.dev != dev);
        self.luns.push(Lun {
            dev,
            address,
            device,
        });
        self.write(
            &format!("vscsi-devs/dev-{dev}/p-dev"),
            &format!("sim:{dev}"),
        )?;
        self.write(&format!("vscsi-devs/dev-{dev}/v-dev"), v_dev)?;
        self.set_dev_state(dev, 1)?;
        if self.be_state() == 4 {
            self.write("state", "7")?;
        }
        Ok(())
    }

    /// Writes `v-dev` of `dev-N` as given (malformed values are the test's point).
    pub fn write_raw_vdev(&self, dev: u32, v_dev: &str) -> Result<(), ScsibackError> {
        self.write(&format!("vscsi-devs/dev-{dev}/v-dev"), v_dev)?;
        self.set_dev_state(dev, 1)
    }

    /// The toolstack removes LUN `dev-N`: its state to Closing, the vhost to Reconfiguring.
    pub fn remove_lun(&mut self, dev: u32) -> Result<(), ScsibackError> {
        self.set_dev_state(dev, 5)?;
        self.write("state", "7")
    }

    /// The emulated device of `dev-N`.
    pub fn device(&self, dev: u32) -> Option<&Emulated> {
        self.luns.iter().find(|l| l.dev == dev).map(|l| &l.device)
    }

    /// The emulated device of `dev-N`, writable.
    pub fn device_mut(&mut self, dev: u32) -> Option<&mut Emulated> {
        self.luns
            .iter_mut()
            .find(|l| l.dev == dev)
            .map(|l| &mut l.device)
    }

    /// Whether the ring is connected.
    pub fn connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Commands held.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Data mappings kept after their commands were answered.
    pub fn leaked(&self) -> usize {
        self.leaked.len()
    }

    /// Drops the leaked mappings.
    pub fn unmap_leaked(&mut self) {
        for h in self.leaked.drain(..) {
            let _ = self.backend.unmap_grant(h);
        }
    }

    /// One reaction of scsiback (and the toolstack) to the frontend's state; returns whether
    /// anything changed.
    pub fn step(&mut self) -> Result<bool, ScsibackError> {
        let (be, fe) = (self.be_state(), self.fe_state());
        match (be, fe) {
            (2, 3) => {
                self.connect()?;
                for dev in self.devs() {
                    if self.dev_state(dev) == 1 {
                        self.set_dev_state(dev, 3)?;
                    }
                }
                self.write("state", "4")?;
                Ok(true)
            }
            (4, 4) | (8, 4) => {
                let mut changed = false;
                for dev in self.devs() {
                    let state = self.dev_state(dev);
                    if state == 3 && self.frontend_dev_state(dev) == 4 {
                        self.set_dev_state(dev, 4)?;
                        changed = true;
                    }
                    if state == 6 {
                        // The toolstack removes a closed LUN's directory.
                        let _ = self
                            .backend
                            .xs_rm(&format!("{}/vscsi-devs/dev-{dev}", self.be_dir));
                        self.luns.retain(|l| l.dev != dev);
                        changed = true;
                    }
                }
                if be == 8 {
                    self.write("state", "4")?;
                    changed = true;
                }
                Ok(changed)
            }
            (7, 7) => {
                for dev in self.devs() {
                    match self.dev_state(dev) {
                        1 => self.set_dev_state(dev, 3)?,
                        5 => self.set_dev_state(dev, 6)?,
                        _ => {}
                    }
                }
                self.write("state", "8")?;
                Ok(true)
            }
            (2..=8, 5 | 6) if self.conn.is_some() => {
                self.drop_connection();
                self.write("state", "6")?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn devs(&self) -> Vec<u32> {
        self.backend
            .xs_directory(&format!("{}/vscsi-devs", self.be_dir))
            .unwrap_or_default()
            .iter()
            .filter_map(|n| n.strip_prefix("dev-")?.parse().ok())
            .collect()
    }

    fn connect(&mut self) -> Result<(), ScsibackError> {
        self.drop_connection();
        let fe = self.fe_dir.clone();
        let ring_ref: GrantRef = self
            .read(&format!("{fe}/ring-ref"))
            .and_then(|s| s.trim().parse().ok())
            .ok_or(ScsibackError::Store("ring-ref"))?;
        let remote: EvtchnPort = self
            .read(&format!("{fe}/event-channel"))
            .and_then(|s| s.trim().parse().ok())
            .ok_or(ScsibackError::Store("event-channel"))?;
        let port = self
            .backend
            .bind_interdomain(self.guest, remote)
            .map_err(|_| ScsibackError::Store("bind"))?;
        let ring = self.backend.map_grant(ring_ref, true)?;
        let mut conn = Conn {
            ring,
            req_cons: 0,
            rsp_prod_pvt: 0,
            port,
        };
        conn.req_cons = self.read_u32(&conn, 0)?;
        conn.rsp_prod_pvt = conn.req_cons;
        self.conn = Some(conn);
        Ok(())
    }

    fn drop_connection(&mut self) {
        for h in self.held.drain(..) {
            for m in h.maps {
                if self.faults.keep_mappings {
                    self.leaked.push(m);
                } else {
                    let _ = self.backend.unmap_grant(m);
                }
            }
        }
        if let Some(conn) = self.conn.take() {
            let _ = self.backend.close(conn.port);
            let _ = self.backend.unmap_grant(conn.ring);
        }
    }

    /// scsiback restarts mid-I/O: held commands are lost (their mappings dropped unless
    /// [`ScsiFaults::keep_mappings`]), the ring is unmapped, the LUNs go back to Initialising
    /// and the vhost to InitWait, so the frontend reconnects.
    pub fn restart(&mut self) -> Result<(), ScsibackError> {
        self.drop_connection();
        for dev in self.devs() {
            if matches!(self.dev_state(dev), 3 | 4) {
                self.set_dev_state(dev, 1)?;
            }
        }
        self.write("state", "2")
    }

    fn read_u32(&self, conn: &Conn, at: usize) -> Result<u32, ScsibackError> {
        let mut b = [0u8; 4];
        self.backend.read_mapped(conn.ring, at, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Takes every published request, carries it out (or holds it) and pushes the responses;
    /// returns the number of requests taken.
    pub fn serve(&mut self) -> Result<usize, ScsibackError> {
        let mut conn = self.conn.take().ok_or(ScsibackError::NotConnected)?;
        let r = self.serve_conn(&mut conn);
        self.conn = Some(conn);
        r
    }

    fn serve_conn(&mut self, conn: &mut Conn) -> Result<usize, ScsibackError> {
        let mut taken = 0;
        let mut rsps = Vec::new();
        loop {
            let req_prod = self.read_u32(conn, 0)?;
            if req_prod.wrapping_sub(conn.req_cons) > SLOTS {
                return Err(ScsibackError::RingOverflow);
            }
            if req_prod == conn.req_cons {
                break;
            }
            while conn.req_cons != req_prod {
                let mut e = [0u8; ENTRY];
                let at = HEADER + (conn.req_cons % SLOTS) as usize * ENTRY;
                self.backend.read_mapped(conn.ring, at, &mut e)?;
                conn.req_cons = conn.req_cons.wrapping_add(1);
                taken += 1;
                self.take(&e, &mut rsps);
            }
            // RING_FINAL_CHECK_FOR_REQUESTS: req_event = req_cons + 1.
            let ev = conn.req_cons.wrapping_add(1);
            self.backend.write_mapped(conn.ring, 4, &ev.to_le_bytes())?;
        }
        self.push(conn, &rsps)?;
        Ok(taken)
    }

    /// Answers every held command (executing it now) and pushes the responses.
    pub fn release_held(&mut self) -> Result<usize, ScsibackError> {
        let mut conn = self.conn.take().ok_or(ScsibackError::NotConnected)?;
        let held: Vec<Held> = self.held.drain(..).collect();
        let n = held.len();
        let mut rsps = Vec::new();
        for h in held {
            rsps.push(self.execute(&h.req, Some(&h.maps)));
            self.unmap_held(h.maps);
        }
        let r = self.push(&mut conn, &rsps);
        self.conn = Some(conn);
        r.map(|()| n)
    }

    fn unmap_held(&mut self, maps: Vec<MappedGrant>) {
        for m in maps {
            if self.faults.keep_mappings {
                self.leaked.push(m);
            } else {
                let _ = self.backend.unmap_grant(m);
            }
        }
    }

    fn parse(&self, e: &[u8]) -> Result<SeenRequest, SeenRequest> {
        let u16_at = |o: usize| u16::from_le_bytes([e[o], e[o + 1]]);
        let cmd_len = usize::from(e[3]).min(16);
        let mut req = SeenRequest {
            rqid: u16_at(0),
            act: e[2],
            cdb: e[4..4 + cmd_len].to_vec(),
            address: (u16_at(22), u16_at(24), u16_at(26)),
            ref_rqid: u16_at(28),
            direction: e[30],
            timeout: u16_at(20),
            segments: Vec::new(),
            indirect: false,
        };
        let nr = e[31];
        let seg = |i: usize| {
            let o = 32 + i * 8;
            (
                u32::from_le_bytes([e[o], e[o + 1], e[o + 2], e[o + 3]]),
                u16_at(o + 4),
                u16_at(o + 6),
            )
        };
        if nr & 0x80 != 0 {
            req.indirect = true;
            let pages = usize::from(nr & 0x7f);
            if pages > DIRECT || self.sg_grant == 0 {
                return Err(req);
            }
            for i in 0..pages {
                let (gref, off, len) = seg(i);
                if len % 8 != 0 || usize::from(off) + usize::from(len) > PAGE_SIZE {
                    return Err(req);
                }
                let mut list = vec![0u8; usize::from(len)];
                if self
                    .backend
                    .copy_from_grant(gref, off.into(), &mut list)
                    .is_err()
                {
                    return Err(req);
                }
                for d in list.chunks(8) {
                    req.segments.push((
                        u32::from_le_bytes([d[0], d[1], d[2], d[3]]),
                        u16::from_le_bytes([d[4], d[5]]),
                        u16::from_le_bytes([d[6], d[7]]),
                    ));
                }
            }
            if req.segments.len() > self.sg_grant as usize {
                return Err(req);
            }
        } else {
            if usize::from(nr) > DIRECT {
                return Err(req);
            }
            req.segments = (0..usize::from(nr)).map(seg).collect();
        }
        if req
            .segments
            .iter()
            .any(|&(_, o, l)| l == 0 || usize::from(o) + usize::from(l) > PAGE_SIZE)
        {
            return Err(req);
        }
        Ok(req)
    }

    fn take(&mut self, e: &[u8], rsps: &mut Vec<Response>) {
        let req = match self.parse(e) {
            Ok(r) => r,
            Err(req) => {
                self.log.push(req.clone());
                rsps.push(Response {
                    rqid: req.rqid,
                    sense: Vec::new(),
                    rslt: RSLT_ERROR,
                    residual: req.transfer(),
                });
                return;
            }
        };
        self.log.push(req.clone());
        match req.act {
            1 => {
                let hold = self.faults.hold
                    || self
                        .faults
                        .hold_opcode
                        .is_some_and(|op| req.cdb.first() == Some(&op));
                if hold {
                    let writable = req.direction == 2;
                    let mut maps = Vec::new();
                    for &(gref, _, _) in &req.segments {
                        match self.backend.map_grant(gref, writable) {
                            Ok(h) => maps.push(h),
                            Err(_) => {
                                self.unmap_held(maps);
                                rsps.push(Response {
                                    rqid: req.rqid,
                                    sense: Vec::new(),
                                    rslt: RSLT_ERROR,
                                    residual: req.transfer(),
                                });
                                return;
                            }
                        }
                    }
                    self.held.push(Held { req, maps });
                } else {
                    rsps.push(self.execute(&req, None));
                }
            }
            2 | 3 if self.faults.ignore_task_management => self.ignored_tm.push(req),
            2 => {
                let victim = self
                    .held
                    .iter()
                    .position(|h| h.req.rqid == req.ref_rqid && h.req.address == req.address);
                match victim {
                    Some(i) if !self.faults.fail_aborts => {
                        let h = self.held.remove(i);
                        rsps.push(Response {
                            rqid: h.req.rqid,
                            sense: Vec::new(),
                            rslt: RSLT_ABORTED,
                            residual: h.req.transfer(),
                        });
                        self.unmap_held(h.maps);
                        rsps.push(Response {
                            rqid: req.rqid,
                            sense: Vec::new(),
                            rslt: 0x2002,
                            residual: 0,
                        });
                    }
                    _ => rsps.push(Response {
                        rqid: req.rqid,
                        sense: Vec::new(),
                        rslt: 0x2003,
                        residual: 0,
                    }),
                }
            }
            3 => {
                if self.faults.fail_resets {
                    rsps.push(Response {
                        rqid: req.rqid,
                        sense: Vec::new(),
                        rslt: 0x2003,
                        residual: 0,
                    });
                    return;
                }
                let (mine, rest): (Vec<Held>, Vec<Held>) = self
                    .held
                    .drain(..)
                    .partition(|h| h.req.address == req.address && !self.faults.silent_resets);
                self.held = rest;
                for h in mine {
                    rsps.push(Response {
                        rqid: h.req.rqid,
                        sense: Vec::new(),
                        rslt: RSLT_RESET,
                        residual: h.req.transfer(),
                    });
                    self.unmap_held(h.maps);
                }
                if let Some(l) = self.luns.iter_mut().find(|l| l.address == req.address) {
                    l.device.device().reset();
                }
                rsps.push(Response {
                    rqid: req.rqid,
                    sense: Vec::new(),
                    rslt: 0x2002,
                    residual: 0,
                });
            }
            _ => rsps.push(Response {
                rqid: req.rqid,
                sense: Vec::new(),
                rslt: RSLT_ERROR,
                residual: 0,
            }),
        }
    }

    /// Carries out a command: data through `maps` when held, grant copies otherwise.
    fn execute(&mut self, req: &SeenRequest, maps: Option<&[MappedGrant]>) -> Response {
        let transfer = req.transfer();
        let fail = |rslt| Response {
            rqid: req.rqid,
            sense: Vec::new(),
            rslt,
            residual: transfer,
        };
        let attached: Vec<u32> = self
            .devs()
            .into_iter()
            .filter(|&d| matches!(self.dev_state(d), 3 | 4))
            .collect();
        let Some(lun_index) = self
            .luns
            .iter()
            .position(|l| l.address == req.address && attached.contains(&l.dev))
        else {
            return fail(RSLT_NO_CONNECT);
        };
        let mut data_out = Vec::new();
        if req.direction == 1 {
            for (i, &(gref, off, len)) in req.segments.iter().enumerate() {
                let mut b = vec![0u8; usize::from(len)];
                let r = match maps {
                    Some(m) => self.backend.read_mapped(m[i], off.into(), &mut b),
                    None => self.backend.copy_from_grant(gref, off.into(), &mut b),
                };
                if r.is_err() {
                    return fail(RSLT_ERROR);
                }
                data_out.extend_from_slice(&b);
            }
        }
        let result = self.luns[lun_index]
            .device
            .device()
            .execute(&req.cdb, &data_out);
        let mut moved = 0usize;
        if req.direction == 2 {
            let mut rest = &result.data[..result.data.len().min(transfer as usize)];
            for (i, &(gref, off, len)) in req.segments.iter().enumerate() {
                if rest.is_empty() {
                    break;
                }
                let n = rest.len().min(usize::from(len));
                let r = match maps {
                    Some(m) => self.backend.write_mapped(m[i], off.into(), &rest[..n]),
                    None => self.backend.copy_to_grant(gref, off.into(), &rest[..n]),
                };
                if r.is_err() {
                    return fail(RSLT_ERROR);
                }
                moved += n;
                rest = &rest[n..];
            }
        } else if req.direction == 1 {
            moved = result.consumed.min(transfer as usize);
        }
        let mut sense = result.sense;
        sense.truncate(96);
        Response {
            rqid: req.rqid,
            sense: if result.status == 2 {
                sense
            } else {
                Vec::new()
            },
            rslt: i32::from(result.status),
            residual: transfer - moved as u32,
        }
    }

    fn push(&mut self, conn: &mut Conn, rsps: &[Response]) -> Result<(), ScsibackError> {
        if rsps.is_empty() {
            return Ok(());
        }
        let mut out = Vec::new();
        for r in rsps {
            let mut r = r.clone();
            if self.faults.corrupt_rqid_next > 0 {
                self.faults.corrupt_rqid_next -= 1;
                r.rqid ^= 0x5a5a;
            }
            out.push(r.clone());
            if self.faults.duplicate_next > 0 {
                self.faults.duplicate_next -= 1;
                out.push(r);
            }
        }
        for r in &out {
            let mut b = vec![0u8; 108];
            b[0..2].copy_from_slice(&r.rqid.to_le_bytes());
            let mut sense_len = r.sense.len() as u8;
            if let Some(l) = self.faults.sense_len_next.take() {
                sense_len = l;
            }
            b[3] = sense_len;
            b[4..4 + r.sense.len()].copy_from_slice(&r.sense);
            b[100..104].copy_from_slice(&r.rslt.to_le_bytes());
            let residual = self.faults.residual_next.take().unwrap_or(r.residual);
            b[104..108].copy_from_slice(&residual.to_le_bytes());
            let at = HEADER + (conn.rsp_prod_pvt % SLOTS) as usize * ENTRY;
            self.backend.write_mapped(conn.ring, at, &b)?;
            conn.rsp_prod_pvt = conn.rsp_prod_pvt.wrapping_add(1);
        }
        // RING_PUSH_RESPONSES_AND_CHECK_NOTIFY.
        let old = self.read_u32(conn, 8)?;
        let new = conn.rsp_prod_pvt;
        self.backend
            .write_mapped(conn.ring, 8, &new.to_le_bytes())?;
        let rsp_event = self.read_u32(conn, 12)?;
        if new.wrapping_sub(rsp_event) < new.wrapping_sub(old) {
            let _ = self.backend.send(conn.port);
        }
        Ok(())
    }
}
