//! `hvm-guest`: the HVM test kernel (`lab/hvm-guest`) as a real Xen HVM domain. dom0 creates it
//! with `xl create` (`type="hvm"`, `kernel=` the multiboot image, Debian's `qemu-system-xen` as
//! the device model), then reads the kernel's report from Xen's console ring (`xl dmesg`: port
//! 0xe9 lines appear there as `(dN) ...`): every step of `hvm_guest::steps::STEPS` must say
//! `PASS`, the report must end with `DONE`, and the domain must power itself off.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hvm_guest::steps::STEPS;

use super::toolstack::sh;
use crate::scenario::{Context, Failure, Outcome, ResultExt, Scenario};

/// The scenario.
pub const SCENARIO: Scenario = Scenario {
    name: "hvm-guest",
    description: "the HVM test kernel runs xenpci-core in a real HVM domain: platform PCI device, \
                  CPUID detection, VMCALL/VMMCALL, xen_version, shared info and a grant frame in \
                  BAR1, grant table setup, a 2-level event channel to itself, the xenstore HVM \
                  params, the unplug of an emulated IDE disk, then SCHEDOP_shutdown",
    default: false,
    timeout: Duration::from_secs(150),
    run,
};

/// Where the harness puts the kernel (`xtask/src/hvm_guest.rs`).
const KERNEL: &str = "/hvm/kernel.bin";
const DEVICE_MODEL: &str = "/usr/libexec/xen-qemu-system-i386";
const DOMAIN: &str = "hvm-guest";
const CONFIG: &str = "/tmp/hvm-guest.cfg";
/// An emulated IDE disk (served by QEMU itself: `backendtype=qdisk` needs no hotplug script),
/// for the unplug step to remove.
const DISK: &str = "/tmp/hvm-guest-disk.img";
/// How long the guest may take from `xl create` to its `DONE` line (7-11 s is typical).
const REPORT_TIMEOUT: Duration = Duration::from_secs(90);

fn config() -> String {
    format!(
        "name=\"{DOMAIN}\"\ntype=\"hvm\"\nkernel=\"{KERNEL}\"\nmemory=128\nvcpus=1\n\
         disk=[\"format=raw,vdev=hda,access=rw,backendtype=qdisk,target={DISK}\"]\n\
         vnc=0\nsdl=0\nvga=\"none\"\nserial=\"file:/tmp/hvm-guest-serial.log\"\n\
         tsc_mode=\"native\"\non_poweroff=\"destroy\"\non_reboot=\"destroy\"\n\
         on_crash=\"preserve\"\n"
    )
}

/// The lines domain `domid` wrote to Xen's debug port, in order, from `xl dmesg` output.
pub fn guest_lines(dmesg: &str, domid: u32) -> Vec<String> {
    let tag = format!("(d{domid}) ");
    dmesg
        .lines()
        .filter_map(|line| {
            line.find(&tag)
                .map(|at| line[at + tag.len()..].trim_end().to_owned())
        })
        .collect()
}

/// Whether the report is complete (the kernel wrote `DONE` or panicked).
pub fn finished(lines: &[String]) -> bool {
    lines
        .iter()
        .any(|l| l.starts_with("DONE ") || l.starts_with("PANIC"))
}

/// Checks a finished report: a panic, a missing, repeated or failed step is a failure naming
/// it; returns each step's detail, in [`STEPS`] order.
pub fn check_report(lines: &[String]) -> Result<Vec<String>, Failure> {
    if let Some(panic) = lines.iter().find(|l| l.starts_with("PANIC")) {
        return Err(Failure(format!("the guest kernel panicked: {panic}")));
    }
    let mut details = Vec::new();
    for name in STEPS {
        let prefix = format!("STEP {name} ");
        let found: Vec<&String> = lines.iter().filter(|l| l.starts_with(&prefix)).collect();
        let [line] = found[..] else {
            return Err(Failure(format!(
                "step {name}: reported {} times (expected once)",
                found.len()
            )));
        };
        let rest = &line[prefix.len()..];
        match rest.split_once(' ').unwrap_or((rest, "")) {
            ("PASS", detail) => details.push(detail.to_owned()),
            ("FAIL", detail) => return Err(Failure(format!("step {name} failed: {detail}"))),
            _ => return Err(Failure(format!("step {name}: malformed line '{line}'"))),
        }
    }
    let done = format!("DONE {} passed 0 failed", STEPS.len());
    if !lines.contains(&done) {
        return Err(Failure(format!("no '{done}' line")));
    }
    Ok(details)
}

/// The last lines of the device model's log (QEMU's own complaints when it exits early).
fn device_model_log() -> String {
    let path = format!("/var/log/xen/qemu-dm-{DOMAIN}.log");
    match fs::read_to_string(&path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(15)..].join(" | ")
        }
        Err(e) => format!("{path}: {e}"),
    }
}

fn domain_exists() -> bool {
    Command::new("xl")
        .args(["domid", DOMAIN])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Starts xenconsoled once (xl needs it for an HVM guest's console).
fn ensure_xenconsoled() -> Outcome {
    if Path::new("/run/xenconsoled.pid").exists() {
        return Ok(());
    }
    sh(
        "xenconsoled",
        &[
            "--log=guest",
            "--log-dir=/var/log/xen/console",
            "--pid-file=/run/xenconsoled.pid",
        ],
    )
    .map(drop)
}

fn run(cx: &mut Context) -> Outcome {
    for needed in [KERNEL, DEVICE_MODEL] {
        if !Path::new(needed).exists() {
            return Err(Failure(format!(
                "{needed} is missing: the harness adds the HVM files only for `--scenario hvm-guest`"
            )));
        }
    }
    for dir in ["/var/lock", "/run/lock", "/var/log/xen/console"] {
        fs::create_dir_all(dir).context(format!("create {dir}"))?;
    }
    ensure_xenconsoled()?;
    if domain_exists() {
        sh("xl", &["destroy", DOMAIN])?;
    }
    fs::write(DISK, vec![0u8; 1 << 20]).context(format!("write {DISK}"))?;
    fs::write(CONFIG, config()).context(format!("write {CONFIG}"))?;

    let created = Instant::now();
    sh("xl", &["create", CONFIG]).map_err(|e| {
        Failure(format!(
            "step xl-create: {e}; device model log: {}",
            device_model_log()
        ))
    })?;
    cx.duration("xl create", created.elapsed(), "s");
    let domid: u32 = sh("xl", &["domid", DOMAIN])?
        .trim()
        .parse()
        .context("parse the guest's domid")?;
    cx.figure("domid", f64::from(domid), "");

    let mut first_line = None;
    let lines = loop {
        let dmesg = sh("xl", &["dmesg"])?;
        let lines = guest_lines(&dmesg, domid);
        if first_line.is_none() && !lines.is_empty() {
            first_line = Some(created.elapsed());
        }
        if finished(&lines) {
            break lines;
        }
        if created.elapsed() > REPORT_TIMEOUT {
            let _ = sh("xl", &["destroy", DOMAIN]);
            let last = lines
                .last()
                .map_or("nothing".to_owned(), |l| format!("'{l}'"));
            return Err(Failure(format!(
                "step report: no DONE line within {} s of xl create; {} lines, the last {last}",
                REPORT_TIMEOUT.as_secs(),
                lines.len()
            )));
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let done = created.elapsed();
    // hvmloader and SeaBIOS write to the same port first; log the kernel's own lines.
    let start = lines
        .iter()
        .position(|l| l.starts_with("HVM-GUEST"))
        .unwrap_or(0);
    for line in &lines[start..] {
        cx.log(format!("guest: {line}"));
    }
    if let Some(first) = first_line {
        cx.duration("first line", first, "s");
    }
    cx.duration("report done", done, "s");
    let checked = check_report(&lines);

    // SCHEDOP_shutdown(poweroff) with on_poweroff="destroy": the domain goes away by itself.
    let deadline = Instant::now() + Duration::from_secs(15);
    while domain_exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let gone = !domain_exists();
    if !gone {
        let _ = sh("xl", &["destroy", DOMAIN]);
    }
    let details = checked?;
    if !gone {
        return Err(Failure(
            "step shutdown: the domain still exists 15 s after its SCHEDOP_shutdown(poweroff)"
                .into(),
        ));
    }
    cx.duration("powered off", created.elapsed(), "s");
    cx.figure("steps passed", STEPS.len() as f64, "");
    if let Some(mechanism) = details.get(2) {
        cx.text("hypercall", mechanism);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(fail: Option<&str>) -> Vec<String> {
        let mut lines = vec!["HVM-GUEST start".to_owned()];
        for name in STEPS {
            let word = if Some(name) == fail { "FAIL" } else { "PASS" };
            lines.push(format!("STEP {name} {word} detail of {name}"));
        }
        let failed = usize::from(fail.is_some());
        lines.push(format!(
            "DONE {} passed {failed} failed",
            STEPS.len() - failed
        ));
        lines
    }

    #[test]
    fn lines_of_one_domain() {
        let dmesg =
            "(XEN) d3v0 something\n(d3) HVM-GUEST start\n(d13) other\n(d3) STEP a PASS x  \n";
        assert_eq!(guest_lines(dmesg, 3), ["HVM-GUEST start", "STEP a PASS x"]);
    }

    #[test]
    fn a_full_report_passes() {
        let lines = report(None);
        assert!(finished(&lines));
        let details = check_report(&lines).unwrap();
        assert_eq!(details.len(), STEPS.len());
        assert_eq!(details[0], format!("detail of {}", STEPS[0]));
    }

    #[test]
    fn failures_name_the_step() {
        let e = check_report(&report(Some("grant-table"))).unwrap_err();
        assert!(
            e.0.starts_with("step grant-table failed: detail of grant-table"),
            "{e}"
        );
        let mut missing = report(None);
        missing.retain(|l| !l.contains("hvm-params"));
        let e = check_report(&missing).unwrap_err();
        assert!(e.0.contains("step hvm-params: reported 0 times"), "{e}");
        let mut twice = report(None);
        twice.push(format!("STEP {} PASS again", STEPS[1]));
        assert!(check_report(&twice).unwrap_err().0.contains("2 times"));
        let mut panicked = report(None);
        panicked.truncate(3);
        panicked.push("PANIC at src/x.rs".into());
        assert!(finished(&panicked));
        assert!(check_report(&panicked).unwrap_err().0.contains("panicked"));
        let mut no_done = report(None);
        no_done.pop();
        assert!(!finished(&no_done));
        assert!(check_report(&no_done).unwrap_err().0.contains("DONE"));
    }
}
