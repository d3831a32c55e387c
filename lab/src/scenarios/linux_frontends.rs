//! `linux-blkfront` and `linux-netfront`: the same workloads as `blk-smoke` and `net-smoke`, through
//! Linux's own xen-blkfront and xen-netfront loaded in dom0 against the same kind of backend, so the
//! figures of ours and Linux's come from one boot. Each loads its module only for itself and
//! unloads it at the end (loaded, it would grab the lab's own frontends' devices).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use xen_abi::xenbus::XenbusState;

use super::net_smoke::{counter, frame, mac_text, recv_frame, ETHERTYPE, FRAMES};
use super::toolstack::{
    device_dirs, mean_us, modprobe, module_loaded, remove_device, sectors_content, sh, shared,
    wait_path, LoopImage, Store,
};
use crate::platform::packet::PacketSocket;
use crate::scenario::{ensure, Context, Failure, Outcome, ResultExt, Scenario};

/// Linux's blkfront.
pub const BLKFRONT: Scenario = Scenario {
    name: "linux-blkfront",
    description: "blk-smoke's workload through Linux's xen-blkfront (loaded only here) against \
                  xen-blkback over a loop device: READ sector 0, WRITE + READ back + fsync, 64 \
                  sequential 4 KiB O_DIRECT reads; prints ours/Linux when blk-smoke ran before",
    default: true,
    timeout: Duration::from_secs(120),
    run: run_blkfront,
};

/// Linux's netfront.
pub const NETFRONT: Scenario = Scenario {
    name: "linux-netfront",
    description: "net-smoke's workload through Linux's xen-netfront (loaded only here) against \
                  xen-netback: 16 frames each way between its interface and vif0.1, each \
                  checked; prints ours/Linux when net-smoke ran before",
    default: true,
    timeout: Duration::from_secs(120),
    run: run_netfront,
};

/// xvdb (blk-smoke uses xvda).
const VDEV: u32 = 51728;
/// The image's content seed (as blk-smoke).
const SEED: u8 = 1;
const IMAGE_SECTORS: u64 = 2048;
const READS: u64 = super::blk_smoke::READS;
const WRITE_SECTOR: u64 = 1024;
/// vif handle 1 (net-smoke uses 0).
const HANDLE: u32 = 1;
const MAC: [u8; 6] = [0x00, 0x16, 0x3e, 0x00, 0x00, 0x02];
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Fails if the module is already loaded (it would have grabbed other scenarios' devices).
pub fn load_frontend(module: &str) -> Outcome {
    ensure(!module_loaded(module), || {
        format!("{module} is already loaded")
    })?;
    modprobe(module)
}

/// Detaches the driver from the device (the frontend closes it), waits for the backend to close,
/// then unloads the module (retrying while the kernel still holds a reference).
pub fn unload_frontend(
    cx: &Context,
    store: &mut Store,
    module: &str,
    device: &str,
    be: &str,
) -> Outcome {
    let driver = device.split('-').next().unwrap_or(device);
    let unbind = format!("/sys/bus/xen/drivers/{driver}/unbind");
    if Path::new(&format!("/sys/bus/xen/drivers/{driver}/{device}")).exists() {
        std::fs::write(&unbind, device).context(format!("write {device} to {unbind}"))?;
    }
    let (state, closed) = store.wait_state(be, XenbusState::Closed, CLOSE_TIMEOUT)?;
    if !closed {
        cx.log(format!("after unbinding {module} the backend is {state:?}"));
    }
    let deadline = Instant::now() + CLOSE_TIMEOUT;
    loop {
        match sh("rmmod", &[module]) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// A 4 KiB buffer aligned for O_DIRECT, inside `storage`.
fn aligned(storage: &mut [u8]) -> &mut [u8] {
    let at = storage.as_ptr().align_offset(4096);
    &mut storage[at..at + 4096]
}

fn ratio(cx: &mut Context, name: &str, ours: Option<f64>, linux: f64) {
    if let Some(ours) = ours {
        if linux > 0.0 {
            cx.figure(name, ours / linux, "x");
        }
    }
}

fn run_blkfront(cx: &mut Context) -> Outcome {
    modprobe("xen-blkback")?;
    let mut store = Store::open()?;
    let (fe, be) = device_dirs("vbd", VDEV);
    remove_device(&mut store, &fe, &be)?;
    let image = LoopImage::create(cx.name(), SEED, IMAGE_SECTORS, None)?;
    let outcome = blk_session(cx, &mut store, &image, &fe, &be);
    let unloaded = if module_loaded("xen-blkfront") {
        unload_frontend(cx, &mut store, "xen-blkfront", &format!("vbd-{VDEV}"), &be)
    } else {
        Ok(())
    };
    let removed = remove_device(&mut store, &fe, &be);
    outcome.and(unloaded).and(removed)
}

fn blk_session(
    cx: &mut Context,
    store: &mut Store,
    image: &LoopImage,
    fe: &str,
    be: &str,
) -> Outcome {
    let node = |dir: &str, key: &str, value: &str| (format!("{dir}/{key}"), value.to_owned());
    store.write_all(&[
        node(be, "frontend", fe),
        node(be, "frontend-id", "0"),
        node(be, "online", "1"),
        node(be, "state", "1"),
        node(be, "type", "phy"),
        node(be, "mode", "w"),
        node(be, "params", &image.device),
        node(be, "physical-device", &image.physical_device),
        node(be, "device-type", "disk"),
        node(be, "removable", "0"),
        node(be, "dev", "xvdb"),
        node(fe, "backend", be),
        node(fe, "backend-id", "0"),
        node(fe, "state", "1"),
        node(fe, "virtual-device", &VDEV.to_string()),
        node(fe, "device-type", "disk"),
    ])?;
    store.expect_state("backend", be, XenbusState::InitWait, CONNECT_TIMEOUT)?;
    let started = Instant::now();
    load_frontend("xen-blkfront")?;
    store.expect_state("backend", be, XenbusState::Connected, CONNECT_TIMEOUT)?;
    cx.duration("connect", started.elapsed(), "ms");
    wait_path("/dev/xvdb", CONNECT_TIMEOUT)?;
    store.expect_state("frontend", fe, XenbusState::Connected, CONNECT_TIMEOUT)?;
    cx.log(format!(
        "xen-blkfront connected xvdb to {} in {:.1} ms",
        image.device,
        started.elapsed().as_secs_f64() * 1e3
    ));

    let disk: File = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open("/dev/xvdb")
        .context("open /dev/xvdb with O_DIRECT")?;
    let mut storage = vec![0u8; 8192];
    let buf = aligned(&mut storage);
    let mut verified = 0usize;

    let started = Instant::now();
    disk.read_exact_at(buf, 0).context("read sector 0")?;
    cx.duration("first read", started.elapsed(), "ms");
    ensure(buf[..] == sectors_content(SEED, 0, 8)[..], || {
        "sector 0 of xvdb reads wrong".into()
    })?;
    verified += 4096;

    let pattern = sectors_content(SEED.wrapping_add(100), WRITE_SECTOR, 8);
    buf.copy_from_slice(&pattern);
    let started = Instant::now();
    disk.write_all_at(buf, WRITE_SECTOR * 512)
        .context("write to xvdb")?;
    cx.duration("write", started.elapsed(), "ms");
    buf.fill(0);
    disk.read_exact_at(buf, WRITE_SECTOR * 512)
        .context("read back")?;
    ensure(buf[..] == pattern[..], || {
        "written data reads back wrong".into()
    })?;
    verified += 4096;
    disk.sync_all().context("fsync xvdb (flush)")?;
    ensure(
        image.read_file(WRITE_SECTOR * 512, 4096)? == pattern,
        || "after fsync the image file differs".into(),
    )?;
    verified += 4096;

    let mut latencies = Vec::with_capacity(READS as usize);
    for i in 0..READS {
        let sector = i * 8;
        let started = Instant::now();
        disk.read_exact_at(buf, sector * 512)
            .context(format!("read sector {sector}"))?;
        latencies.push(started.elapsed());
        let want = if sector == WRITE_SECTOR {
            pattern.clone()
        } else {
            sectors_content(SEED, sector, 8)
        };
        ensure(buf[..] == want[..], || {
            format!("sector {sector} of xvdb reads wrong")
        })?;
        verified += 4096;
    }
    drop(disk);
    let mean = mean_us(&latencies);
    cx.figure(&format!("{READS} x 4k read, mean"), mean, "us");
    cx.figure("verified", verified as f64 / 1024.0, "KiB");
    let ours = shared().blk_read_us;
    ratio(cx, "ours/linux 4k read", ours, mean);
    if let Some(ours) = ours {
        cx.log(format!(
            "{READS} sequential 4 KiB reads: ours {ours:.0} us, Linux {mean:.0} us, ratio {:.2}",
            ours / mean
        ));
    }
    Ok(())
}

fn run_netfront(cx: &mut Context) -> Outcome {
    modprobe("xen-netback")?;
    let mut store = Store::open()?;
    let (fe, be) = device_dirs("vif", HANDLE);
    remove_device(&mut store, &fe, &be)?;
    let outcome = net_session(cx, &mut store, &fe, &be);
    let unloaded = if module_loaded("xen-netfront") {
        unload_frontend(
            cx,
            &mut store,
            "xen-netfront",
            &format!("vif-{HANDLE}"),
            &be,
        )
    } else {
        Ok(())
    };
    let removed = remove_device(&mut store, &fe, &be);
    outcome.and(unloaded).and(removed)
}

/// The interface xen-netfront made for `vif-<handle>`.
fn netfront_interface(timeout: Duration) -> Result<String, Failure> {
    let dir = format!("/sys/bus/xen/devices/vif-{HANDLE}/net");
    wait_path(&dir, timeout)?;
    let deadline = Instant::now() + timeout;
    loop {
        let names: Vec<String> = std::fs::read_dir(&dir)
            .context(format!("list {dir}"))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        if let Some(name) = names.into_iter().next() {
            return Ok(name);
        }
        if Instant::now() >= deadline {
            return Err(Failure(format!("no interface in {dir}")));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn net_session(cx: &mut Context, store: &mut Store, fe: &str, be: &str) -> Outcome {
    let node = |dir: &str, key: &str, value: &str| (format!("{dir}/{key}"), value.to_owned());
    let mac = mac_text(MAC);
    let handle = HANDLE.to_string();
    store.write_all(&[
        node(be, "frontend", fe),
        node(be, "frontend-id", "0"),
        node(be, "online", "1"),
        node(be, "state", "1"),
        node(be, "handle", &handle),
        node(be, "mac", &mac),
        node(be, "script", "/etc/xen/scripts/vif-bridge"),
        node(be, "type", "vif"),
        // The toolstack's hotplug script would write this once the vif is set up.
        node(be, "hotplug-status", "connected"),
        node(fe, "backend", be),
        node(fe, "backend-id", "0"),
        node(fe, "state", "1"),
        node(fe, "handle", &handle),
        node(fe, "mac", &mac),
    ])?;
    store.expect_state("backend", be, XenbusState::InitWait, CONNECT_TIMEOUT)?;
    let started = Instant::now();
    load_frontend("xen-netfront")?;
    store.expect_state("backend", be, XenbusState::Connected, CONNECT_TIMEOUT)?;
    cx.duration("connect", started.elapsed(), "ms");
    store.expect_state("frontend", fe, XenbusState::Connected, CONNECT_TIMEOUT)?;
    let eth = netfront_interface(CONNECT_TIMEOUT)?;
    let vif = format!("vif0.{HANDLE}");
    sh("ip", &["link", "set", &eth, "up"])?;
    sh("ip", &["link", "set", &vif, "up"])?;
    let fe_sock = PacketSocket::open(&eth, ETHERTYPE).context("open a packet socket")?;
    let vif_sock = PacketSocket::open(&vif, ETHERTYPE).context("open a packet socket")?;
    cx.log(format!("xen-netfront connected: {eth} <-> {vif}"));

    // TX: netfront's interface -> vif0.1.
    let rx_before = counter(&vif, "rx_packets")?;
    let mut tx_lat = Vec::new();
    for n in 0..FRAMES {
        let f = frame([0xff; 6], MAC, "linux-netfront tx", n);
        let started = Instant::now();
        fe_sock.send(&f).context(format!("send on {eth}"))?;
        recv_frame(&vif_sock, &f, &format!("tx frame {n} on {vif}"))?;
        tx_lat.push(started.elapsed());
    }
    let rx_after = counter(&vif, "rx_packets")?;
    ensure(rx_after >= rx_before + u64::from(FRAMES), || {
        format!("{vif} rx_packets went from {rx_before} to {rx_after} for {FRAMES} frames")
    })?;
    // RX: vif0.1 -> netfront's interface.
    let mut rx_lat = Vec::new();
    for n in 0..FRAMES {
        let f = frame(
            MAC,
            [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff],
            "linux-netfront rx",
            n,
        );
        let started = Instant::now();
        vif_sock.send(&f).context(format!("send on {vif}"))?;
        recv_frame(&fe_sock, &f, &format!("rx frame {n} on {eth}"))?;
        rx_lat.push(started.elapsed());
    }
    let (tx_us, rx_us) = (mean_us(&tx_lat), mean_us(&rx_lat));
    cx.figure(&format!("{FRAMES} x tx frame, mean"), tx_us, "us");
    cx.figure(&format!("{FRAMES} x rx frame, mean"), rx_us, "us");
    cx.figure("frames verified", f64::from(FRAMES) * 2.0, "");
    let ours = shared();
    ratio(cx, "ours/linux tx", ours.net_tx_us, tx_us);
    ratio(cx, "ours/linux rx", ours.net_rx_us, rx_us);
    if let (Some(t), Some(r)) = (ours.net_tx_us, ours.net_rx_us) {
        cx.log(format!(
            "frame latency tx/rx: ours {t:.0}/{r:.0} us, Linux {tx_us:.0}/{rx_us:.0} us"
        ));
    }
    drop((fe_sock, vif_sock));
    sh("ip", &["link", "set", &eth, "down"])?;
    sh("ip", &["link", "set", &vif, "down"])?;
    Ok(())
}
