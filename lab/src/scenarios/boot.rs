//! `boot`: dom0 is up under Xen and ready for frontends.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::time::{Duration, Instant};

use crate::platform::{evtchn, gntalloc, gntdev, xenbus};
use crate::scenario::{ensure, Context, Failure, Outcome, ResultExt, Scenario};

/// The scenario.
pub const SCENARIO: Scenario = Scenario {
    name: "boot",
    description: "dom0 is up under Xen: /dev/xen/{evtchn,gntalloc,gntdev,xenbus} exist and \
                  xenstored answers a read over /dev/xen/xenbus",
    default: true,
    timeout: Duration::from_secs(60),
    run,
};

/// `XS_READ` and `XS_ERROR` from Xen's `io/xs_wire.h`.
const XS_READ: u32 = 2;
const XS_ERROR: u32 = 16;

/// dom0's uptime when its init had Xen ready, as the init recorded it.
pub fn ready_uptime() -> Option<f64> {
    fs::read_to_string(lab_protocol::READY_FILE)
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn run(cx: &mut Context) -> Outcome {
    if let Some(ready) = ready_uptime() {
        cx.figure("ready", ready, "s");
    }
    if let Ok(release) = fs::read_to_string("/proc/sys/kernel/osrelease") {
        cx.text("kernel", release.trim());
    }
    if let Some(version) = xen_version() {
        cx.text("xen", &version);
    }
    // Every timing figure depends on it (`xen` is Xen's paravirtual clock).
    let clock = "/sys/devices/system/clocksource/clocksource0/current_clocksource";
    if let Ok(source) = fs::read_to_string(clock) {
        cx.text("clocksource", source.trim());
    }

    let caps = fs::read_to_string("/proc/xen/capabilities")
        .context("read /proc/xen/capabilities (is xenfs mounted on /proc/xen?)")?;
    ensure(caps.contains("control_d"), || {
        format!(
            "not running as dom0: /proc/xen/capabilities is '{}'",
            caps.trim()
        )
    })?;

    let devices = [evtchn::PATH, gntalloc::PATH, gntdev::PATH, xenbus::PATH];
    let missing: Vec<&str> = devices
        .iter()
        .copied()
        .filter(|path| !fs::metadata(path).is_ok_and(|m| m.file_type().is_char_device()))
        .collect();
    ensure(missing.is_empty(), || {
        format!(
            "missing device(s): {} (are the Xen modules loaded?)",
            missing.join(", ")
        )
    })?;

    let started = Instant::now();
    let mut bus = xenbus::XenbusDevice::open(Duration::from_secs(10)).context("open xenbus")?;
    let name = xenstore_read(&mut bus, "/local/domain/0/name", 1)?;
    cx.duration("xenstore read", started.elapsed(), "ms");
    ensure(name == "Domain-0", || {
        format!("/local/domain/0/name is '{name}', expected 'Domain-0' (did xen-init-dom0 run?)")
    })?;
    cx.log(format!("xenstored answered: /local/domain/0/name = {name}"));
    Ok(())
}

/// The hypervisor's version from sysfs, for example `4.17.7+13-g2445b30a44`.
fn xen_version() -> Option<String> {
    let part = |name: &str| fs::read_to_string(format!("/sys/hypervisor/version/{name}")).ok();
    let major = part("major")?;
    let minor = part("minor")?;
    let extra = part("extra").unwrap_or_default();
    Some(format!("{}.{}{}", major.trim(), minor.trim(), extra.trim()))
}

/// Reads one xenstore node with a single `XS_READ` over the xenbus device: the smallest proof
/// that xenstored answers (the full client is `xenpci_core::xenstore`).
fn xenstore_read(
    bus: &mut xenbus::XenbusDevice,
    path: &str,
    req_id: u32,
) -> Result<String, Failure> {
    let mut request = Vec::with_capacity(16 + path.len() + 1);
    for word in [XS_READ, req_id, 0, path.len() as u32 + 1] {
        request.extend_from_slice(&word.to_le_bytes());
    }
    request.extend_from_slice(path.as_bytes());
    request.push(0);
    bus.write_all(&request).context("write XS_READ to xenbus")?;

    let mut header = [0u8; 16];
    bus.read_exact(&mut header)
        .context("read the reply header from xenbus")?;
    let word =
        |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let (kind, id, len) = (word(0), word(4), word(12));
    ensure(len <= 4096, || format!("xenstore reply of {len} bytes"))?;
    let mut payload = vec![0u8; len as usize];
    bus.read_exact(&mut payload)
        .context("read the reply payload from xenbus")?;
    ensure(id == req_id, || {
        format!("xenstore reply for request {id}, expected {req_id}")
    })?;
    let text = String::from_utf8_lossy(&payload)
        .trim_end_matches('\0')
        .to_owned();
    match kind {
        XS_READ => Ok(text),
        XS_ERROR => Err(Failure(format!(
            "xenstored answered XS_ERROR {text} for {path}"
        ))),
        other => Err(Failure(format!(
            "xenstore reply of type {other} to XS_READ {path}"
        ))),
    }
}
