//! What the block and network scenarios share: the toolstack's part (xenstore nodes, loop
//! devices, modules, interfaces), waiting for a backend's state, and saying why a backend did not
//! connect.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use xen_abi::xenbus::XenbusState;
use xenpci_core::xenstore::{TxId, XsConnection, XsError};

use crate::platform;
use crate::platform::evtchn::{EventChannels, Port};
use crate::platform::xenbus::XenbusDevice;
use crate::scenario::{Failure, ResultExt};

/// How long one xenstore reply may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a state node is read while waiting for it.
const POLL_INTERVAL: Duration = Duration::from_millis(2);

/// The project's xenstore client over `/dev/xen/xenbus`.
pub struct Store {
    bus: XenbusDevice,
    conn: Box<XsConnection>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Connects to xenstored.
    pub fn open() -> Result<Self, Failure> {
        Ok(Self {
            bus: XenbusDevice::open(REPLY_TIMEOUT).context("open /dev/xen/xenbus")?,
            conn: Box::default(),
        })
    }

    /// Reads a node; `None` if it does not exist.
    pub fn read(&mut self, path: &str) -> Result<Option<String>, Failure> {
        let mut buf = vec![0u8; 4096];
        match self.conn.read(&mut self.bus, TxId::NONE, path, &mut buf) {
            Ok(n) => Ok(Some(String::from_utf8_lossy(&buf[..n]).into_owned())),
            Err(e) if e.is_enoent() => Ok(None),
            Err(e) => Err(Failure(format!("read {path}: {e}"))),
        }
    }

    /// Reads a node that must exist and hold a number.
    pub fn read_u64(&mut self, path: &str) -> Result<u64, Failure> {
        let text = self
            .read(path)?
            .ok_or_else(|| Failure(format!("{path} is missing")))?;
        text.trim()
            .parse()
            .map_err(|_| Failure(format!("{path} is '{text}', not a number")))
    }

    /// Writes a node.
    pub fn write(&mut self, path: &str, value: &str) -> Result<(), Failure> {
        self.conn
            .write(&mut self.bus, TxId::NONE, path, value.as_bytes())
            .context(format!("write {path}"))
    }

    /// Removes a node and everything below it (a missing node is fine).
    pub fn rm(&mut self, path: &str) -> Result<(), Failure> {
        match self.conn.rm(&mut self.bus, TxId::NONE, path) {
            Err(e) if !e.is_enoent() => Err(Failure(format!("rm {path}: {e}"))),
            _ => Ok(()),
        }
    }

    /// Writes all of `nodes` in one transaction (retried on conflicts).
    pub fn write_all(&mut self, nodes: &[(String, String)]) -> Result<(), Failure> {
        self.conn
            .transaction(&mut self.bus, 10, |c, t, tx| {
                for (path, value) in nodes {
                    c.write(t, tx, path, value.as_bytes())?;
                }
                Ok::<(), XsError>(())
            })
            .context("write the device's nodes in a transaction")
    }

    /// The state in `dir/state` (`Unknown` if missing or unreadable).
    pub fn state(&mut self, dir: &str) -> Result<XenbusState, Failure> {
        let text = self.read(&format!("{dir}/state"))?;
        Ok(text
            .and_then(|t| XenbusState::parse(t.trim().as_bytes()).ok())
            .unwrap_or(XenbusState::Unknown))
    }

    /// Writes `dir/state`.
    pub fn set_state(&mut self, dir: &str, state: XenbusState) -> Result<(), Failure> {
        self.write(&format!("{dir}/state"), state.as_str())
    }

    /// Waits up to `timeout` for `dir/state` to be `want`; returns the last state seen and
    /// whether it was reached.
    pub fn wait_state(
        &mut self,
        dir: &str,
        want: XenbusState,
        timeout: Duration,
    ) -> Result<(XenbusState, bool), Failure> {
        let deadline = Instant::now() + timeout;
        loop {
            let state = self.state(dir)?;
            if state == want {
                return Ok((state, true));
            }
            // An end that went to Closing or Closed while we wait for it to come up has given up.
            let given_up = want < XenbusState::Closing && state >= XenbusState::Closing;
            if given_up || Instant::now() >= deadline {
                return Ok((state, false));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Like [`Store::wait_state`], but a state not reached is a failure that says why.
    pub fn expect_state(
        &mut self,
        who: &str,
        dir: &str,
        want: XenbusState,
        timeout: Duration,
    ) -> Result<Duration, Failure> {
        let started = Instant::now();
        let (state, reached) = self.wait_state(dir, want, timeout)?;
        if reached {
            return Ok(started.elapsed());
        }
        let when = if state >= XenbusState::Closing && want < XenbusState::Closing {
            format!(
                " (it gave up after {:.2} s)",
                started.elapsed().as_secs_f64()
            )
        } else {
            String::new()
        };
        Err(Failure(format!(
            "{who} did not reach {want:?} within {} s{when}; {who} state {} ({state:?}); {}",
            timeout.as_secs_f64(),
            state.as_u32(),
            self.diagnose(dir)
        )))
    }

    /// The frontend's side of a clean disconnect: Closing, wait for the backend to follow, then
    /// Closed and the same. Returns how long it took.
    pub fn disconnect(
        &mut self,
        fe: &str,
        be: &str,
        timeout: Duration,
    ) -> Result<Duration, Failure> {
        let started = Instant::now();
        self.set_state(fe, XenbusState::Closing)?;
        self.expect_state("backend", be, XenbusState::Closing, timeout)?;
        self.set_state(fe, XenbusState::Closed)?;
        self.expect_state("backend", be, XenbusState::Closed, timeout)?;
        Ok(started.elapsed())
    }

    /// Why a device end might be stuck: its `error` node, and the kernel's last messages about
    /// Xen devices.
    pub fn diagnose(&mut self, dir: &str) -> String {
        // xenbus_dev_error() writes under the domain's error/ tree, at the device's path.
        let rel = dir.strip_prefix("/local/domain/0/").unwrap_or(dir);
        let error_path = format!("/local/domain/0/error/{rel}/error");
        let error = match self.read(&error_path) {
            Ok(Some(text)) => format!("error node: '{text}'"),
            Ok(None) => "no error node".to_owned(),
            Err(e) => format!("error node unreadable ({e})"),
        };
        format!("{error}; dmesg: {}", dmesg_tail(4))
    }
}

/// The last `lines` kernel messages about Xen devices, joined with " | " (stack traces and
/// register dumps left out).
pub fn dmesg_tail(lines: usize) -> String {
    let Ok(out) = Command::new("dmesg").output() else {
        return "(dmesg failed)".into();
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let keys = [
        "vbd", "vif", "blkback", "netback", "blkfront", "netfront", "xen-", "xen_", "grant",
        "WARNING", "BUG",
    ];
    let picked: Vec<&str> = text
        .lines()
        .filter(|line| {
            // "[   19.03] message": keep messages, not indented trace lines or register dumps.
            let message = line.split_once("] ").map_or(*line, |(_, m)| m);
            !message.starts_with(' ')
                && ![
                    "RIP:",
                    "RSP:",
                    "RAX:",
                    "CPU:",
                    "Code:",
                    "Call Trace",
                    "Modules linked in",
                ]
                .iter()
                .any(|p| message.starts_with(p))
                && keys.iter().any(|k| message.contains(k))
        })
        .collect();
    let tail = &picked[picked.len().saturating_sub(lines)..];
    if tail.is_empty() {
        "(nothing relevant)".into()
    } else {
        tail.join(" | ")
    }
}

/// Runs a program in dom0; fails with its output unless it succeeds. Returns its stdout.
pub fn sh(program: &str, args: &[&str]) -> Result<String, Failure> {
    let out = Command::new(program)
        .args(args)
        .output()
        .context(format!("run {program}"))?;
    if !out.status.success() {
        return Err(Failure(format!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Waits for a path to appear.
pub fn wait_path(path: &str, timeout: Duration) -> Result<(), Failure> {
    let deadline = Instant::now() + timeout;
    while !Path::new(path).exists() {
        if Instant::now() >= deadline {
            return Err(Failure(format!(
                "{path} did not appear within {} s",
                timeout.as_secs_f64()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// Loads a kernel module (already loaded is fine).
pub fn modprobe(module: &str) -> Result<(), Failure> {
    sh("modprobe", &[module]).map(drop)
}

/// Whether a module is loaded.
pub fn module_loaded(module: &str) -> bool {
    Path::new("/sys/module")
        .join(module.replace('-', "_"))
        .exists()
}

/// The known content of sector `lba` of a test image: a label and a pattern that differs for
/// every sector and every `seed`.
pub fn sector_content(seed: u8, lba: u64) -> [u8; 512] {
    let mut sector = [0u8; 512];
    for (i, byte) in sector.iter_mut().enumerate() {
        *byte = (lba as u8)
            .wrapping_mul(31)
            .wrapping_add(i as u8)
            .wrapping_add(seed.wrapping_mul(101))
            ^ ((lba >> 8) as u8);
    }
    let label = format!("LAB-IMAGE seed {seed} sector {lba}");
    sector[..label.len()].copy_from_slice(label.as_bytes());
    sector
}

/// The known content of `count` sectors from `lba`.
pub fn sectors_content(seed: u8, lba: u64, count: u64) -> Vec<u8> {
    (lba..lba + count)
        .flat_map(|s| sector_content(seed, s))
        .collect()
}

/// The toolstack's part of attaching a disk: the backend and frontend directories of a `vbd`
/// in one transaction, the backend in Initialising (the backend bus ignores a device it first
/// sees in another state), over the loop device of `image`, as `dev` with vdev number `vdev`,
/// attached with `mode` (`w`, or `r` for a read-only disk).
pub fn write_vbd_nodes(
    store: &mut Store,
    image: &LoopImage,
    fe: &str,
    be: &str,
    vdev: u32,
    dev: &str,
    mode: &str,
) -> Result<(), Failure> {
    write_vbd_nodes_typed(store, image, fe, be, vdev, dev, mode, "disk")
}

/// [`write_vbd_nodes`] for a device of `device_type` (`disk` or `cdrom`), written in both
/// directories as a toolstack does (blkback reads the frontend's).
#[allow(clippy::too_many_arguments)]
pub fn write_vbd_nodes_typed(
    store: &mut Store,
    image: &LoopImage,
    fe: &str,
    be: &str,
    vdev: u32,
    dev: &str,
    mode: &str,
    device_type: &str,
) -> Result<(), Failure> {
    let node = |dir: &str, key: &str, value: &str| (format!("{dir}/{key}"), value.to_owned());
    let removable = if device_type == "cdrom" { "1" } else { "0" };
    let vdev = vdev.to_string();
    store.write_all(&[
        node(be, "frontend", fe),
        node(be, "frontend-id", "0"),
        node(be, "online", "1"),
        node(be, "state", "1"),
        node(be, "type", "phy"),
        node(be, "mode", mode),
        node(be, "params", &image.device),
        node(be, "physical-device", &image.physical_device),
        node(be, "device-type", device_type),
        node(be, "removable", removable),
        node(be, "dev", dev),
        node(fe, "backend", be),
        node(fe, "backend-id", "0"),
        node(fe, "state", "1"),
        node(fe, "virtual-device", &vdev),
        node(fe, "device-type", device_type),
    ])
}

/// A loop device over an image file of known content in dom0's tmpfs; detached and deleted when
/// dropped.
#[derive(Debug)]
pub struct LoopImage {
    /// The loop device, `/dev/loopN`.
    pub device: String,
    /// The image file.
    pub file: String,
    /// `major:minor` in hex, as blkback's `physical-device` wants it.
    pub physical_device: String,
    /// Size in 512-byte sectors.
    pub sectors: u64,
    /// The loop device's logical block size in bytes.
    pub block_size: u32,
}

impl LoopImage {
    /// Creates `/dev/shm/<name>.img` of `sectors` sectors of [`sector_content`] with `seed` and
    /// attaches it to a free loop device, with a logical block size of `sector_size` bytes when
    /// given (512 otherwise).
    pub fn create(
        name: &str,
        seed: u8,
        sectors: u64,
        sector_size: Option<u32>,
    ) -> Result<Self, Failure> {
        let file = format!("/dev/shm/{name}.img");
        std::fs::write(&file, sectors_content(seed, 0, sectors))
            .context(format!("write {file}"))?;
        Self::attach(file, sectors, sector_size)
    }

    /// Creates `/dev/shm/<name>.img` holding `content` (a whole number of 512-byte sectors) and
    /// attaches it to a free loop device, with a logical block size of `sector_size` bytes when
    /// given (512 otherwise).
    pub fn create_from(
        name: &str,
        content: &[u8],
        sector_size: Option<u32>,
    ) -> Result<Self, Failure> {
        if content.is_empty() || content.len() % 512 != 0 {
            return Err(Failure(format!(
                "an image of {} bytes is not whole sectors",
                content.len()
            )));
        }
        let file = format!("/dev/shm/{name}.img");
        std::fs::write(&file, content).context(format!("write {file}"))?;
        Self::attach(file, content.len() as u64 / 512, sector_size)
    }

    /// Creates `/dev/shm/<name>.img`, a sparse file of `sectors` sectors holding only the
    /// [`sector_content`] of `seed` in the sector ranges `data` (`(first, count)`; the rest is
    /// unallocated), and attaches it to a free loop device.
    pub fn create_sparse(
        name: &str,
        seed: u8,
        sectors: u64,
        data: &[(u64, u64)],
    ) -> Result<Self, Failure> {
        use std::os::unix::fs::FileExt;
        let file = format!("/dev/shm/{name}.img");
        let _ = std::fs::remove_file(&file);
        let f = std::fs::File::create(&file).context(format!("create {file}"))?;
        f.set_len(sectors * 512).context(format!("size {file}"))?;
        for &(first, count) in data {
            f.write_all_at(&sectors_content(seed, first, count), first * 512)
                .context(format!("write {file}"))?;
        }
        drop(f);
        Self::attach(file, sectors, None)
    }

    /// Attaches the image file `file` of `sectors` sectors, already written, to a free loop
    /// device (see [`LoopImage::create`]); the file is deleted when the image is dropped.
    pub fn attach(file: String, sectors: u64, sector_size: Option<u32>) -> Result<Self, Failure> {
        modprobe("loop")?;
        let device = sh("losetup", &["-f"])?.trim().to_owned();
        if !device.starts_with("/dev/loop") {
            return Err(Failure(format!("losetup -f printed '{device}'")));
        }
        if let Err(e) = sh("losetup", &[&device, &file]) {
            let _ = std::fs::remove_file(&file);
            return Err(e);
        }
        let mut image = Self {
            device,
            file,
            physical_device: String::new(),
            sectors,
            block_size: sector_size.unwrap_or(512),
        };
        if let Some(size) = sector_size {
            platform::set_loop_block_size(&image.device, size)
                .context(format!("set the block size of {}", image.device))?;
            let queue = format!(
                "/sys/block/{}/queue/logical_block_size",
                image.device.trim_start_matches("/dev/")
            );
            let now = std::fs::read_to_string(&queue).context(format!("read {queue}"))?;
            if now.trim() != size.to_string() {
                return Err(Failure(format!("{queue} is '{}', not {size}", now.trim())));
            }
        }
        let sys = format!(
            "/sys/block/{}/dev",
            image.device.trim_start_matches("/dev/")
        );
        let dev = std::fs::read_to_string(&sys).context(format!("read {sys}"))?;
        let (major, minor) = dev
            .trim()
            .split_once(':')
            .ok_or_else(|| Failure(format!("{sys} is '{dev}'")))?;
        let major: u32 = major.parse().context("loop major")?;
        let minor: u32 = minor.parse().context("loop minor")?;
        image.physical_device = format!("{major:x}:{minor:x}");
        Ok(image)
    }

    /// Reads bytes of the image file (what the loop device wrote through to it).
    pub fn read_file(&self, offset: u64, len: usize) -> Result<Vec<u8>, Failure> {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::open(&self.file).context(format!("open {}", self.file))?;
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, offset)
            .context(format!("read {}", self.file))?;
        Ok(buf)
    }
}

impl Drop for LoopImage {
    fn drop(&mut self) {
        let _ = sh("losetup", &["-d", &self.device]);
        let _ = std::fs::remove_file(&self.file);
    }
}

/// The xenstore directories of a device of `kind` (`vbd`, `vif`) with id `id`, both ends in dom0.
pub fn device_dirs(kind: &str, id: u32) -> (String, String) {
    (
        format!("/local/domain/0/device/{kind}/{id}"),
        format!("/local/domain/0/backend/{kind}/0/{id}"),
    )
}

/// Removes a device's frontend, backend and error nodes.
pub fn remove_device(store: &mut Store, fe: &str, be: &str) -> Result<(), Failure> {
    store.rm(fe)?;
    store.rm(be)?;
    for dir in [fe, be] {
        let rel = dir.strip_prefix("/local/domain/0/").unwrap_or(dir);
        store.rm(&format!("/local/domain/0/error/{rel}"))?;
    }
    Ok(())
}

/// Waits for an event on `port` (then unmasks it); fails after `timeout`.
pub fn wait_event(
    events: &mut EventChannels,
    port: Port,
    timeout: Duration,
    what: &str,
) -> Result<(), Failure> {
    let got = events
        .wait_for(port, timeout)
        .context(format!("wait for {what}"))?;
    if !got {
        return Err(Failure(format!(
            "no event for {what} within {} s",
            timeout.as_secs_f64()
        )));
    }
    events.unmask(port).context("unmask the event channel")
}

/// Figures a userspace-frontend scenario leaves for the matching Linux-frontend scenario in the
/// same run, so that it can print the ratio.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shared {
    /// Mean latency of a sequential 4 KiB read through our blkfront, in microseconds.
    pub blk_read_us: Option<f64>,
    /// Mean frontend → vif latency of a frame through our netfront, in microseconds.
    pub net_tx_us: Option<f64>,
    /// Mean vif → frontend latency of a frame through our netfront, in microseconds.
    pub net_rx_us: Option<f64>,
}

/// See [`Shared`].
pub static SHARED: Mutex<Shared> = Mutex::new(Shared {
    blk_read_us: None,
    net_tx_us: None,
    net_rx_us: None,
});

/// Updates [`SHARED`].
pub fn share(f: impl FnOnce(&mut Shared)) {
    if let Ok(mut shared) = SHARED.lock() {
        f(&mut shared);
    }
}

/// Reads [`SHARED`].
pub fn shared() -> Shared {
    SHARED.lock().map(|s| *s).unwrap_or_default()
}

/// Mean of durations in microseconds.
pub fn mean_us(samples: &[Duration]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.iter().map(|d| d.as_secs_f64() * 1e6).sum::<f64>() / samples.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sectors_differ_and_are_labelled() {
        let a = sector_content(1, 0);
        assert!(a.starts_with(b"LAB-IMAGE seed 1 sector 0"));
        assert_ne!(a, sector_content(1, 1));
        assert_ne!(a, sector_content(2, 0));
        assert_ne!(sector_content(1, 3), sector_content(1, 259));
        let run = sectors_content(1, 8, 2);
        assert_eq!(run.len(), 1024);
        assert_eq!(run[512..], sector_content(1, 9));
    }

    #[test]
    fn means() {
        assert_eq!(mean_us(&[]), 0.0);
        let samples = [Duration::from_micros(100), Duration::from_micros(300)];
        assert!((mean_us(&samples) - 200.0).abs() < 1e-9);
    }
}
