//! `cargo xtask lab`: the steps from a fresh machine to a table of results.
//!
//! 1. build the `lab` program, static, and ask it for its scenarios (`lab list --json`);
//! 2. install the host packages that are missing (apt-get);
//! 3. download and unpack Xen and the dom0 kernel (cached);
//! 4. build dom0's base initramfs (cached), then this run's initrd (base + `/init` + `lab`);
//! 5. boot Xen and dom0 in QEMU, follow the serial console, stop when the lab program is done;
//! 6. print the results and the timings; exit 1 if anything failed.
//!
//! Everything lives under `target/lab` (or `$LAB_DIR`): `cache/` for what is reused, `cargo/`
//! for the lab program's build, `runs/<id>/` for each run's console log and results (the last few
//! are kept; `last-run` points at the newest).

use std::collections::hash_map::RandomState;
use std::fs;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lab_protocol::{RunRequest, ScenarioInfo};

use crate::cli::{LabArgs, LabMode};
use crate::host::{self, Result};
use crate::hvm_guest;
use crate::initramfs;
use crate::qemu::{self, Boot, Console};
use crate::report::{render_reports, render_table, Collector};

/// The target the lab program is built for: glibc, linked statically.
const LAB_TARGET: &str = "x86_64-unknown-linux-gnu";
/// How many runs' folders are kept.
const RUNS_KEPT: usize = 5;

/// The steps' durations, printed at the end.
#[derive(Debug, Default)]
struct Timings(Vec<(String, Duration)>);

impl Timings {
    fn add(&mut self, step: &str, took: Duration) {
        self.0.push((step.to_owned(), took));
    }

    fn line(&self, total: Duration) -> String {
        let mut parts: Vec<String> = self
            .0
            .iter()
            .map(|(s, d)| format!("{s} {:.1} s", d.as_secs_f64()))
            .collect();
        parts.push(format!("total {:.1} s", total.as_secs_f64()));
        parts.join(" | ")
    }
}

/// Runs a step, printing its name first, and times it.
fn step<T>(timings: &mut Timings, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    println!("lab: {name}");
    let started = Instant::now();
    let value = f().map_err(|e| format!("{name}: {e}"))?;
    timings.add(name, started.elapsed());
    Ok(value)
}

fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_owned()
}

fn lab_dir(workspace: &Path) -> PathBuf {
    match std::env::var_os("LAB_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace.join("target/lab"),
    }
}

/// Whether an ELF file has no program interpreter, i.e. is statically linked.
pub fn elf_is_static(bytes: &[u8]) -> Result<bool> {
    let u16_at = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |at: usize| {
        bytes
            .get(at..at + 8)
            .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    };
    if !bytes.starts_with(b"\x7fELF\x02\x01") {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let bad = || "truncated ELF header".to_owned();
    let phoff = u64_at(0x20).ok_or_else(bad)? as usize;
    let phentsize = u16_at(0x36).ok_or_else(bad)? as usize;
    let phnum = u16_at(0x38).ok_or_else(bad)? as usize;
    const PT_INTERP: u32 = 3;
    for i in 0..phnum {
        let kind = u32_at(phoff + i * phentsize).ok_or_else(bad)?;
        if kind == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Builds the lab program for dom0: release, glibc linked statically, without debug info.
fn build_lab_program(workspace: &Path, lab_dir: &Path) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = lab_dir.join("cargo");
    let mut rustflags = std::env::var("RUSTFLAGS").unwrap_or_default();
    rustflags.push_str(" -C target-feature=+crt-static");
    host::run_visible(
        Command::new(cargo)
            .current_dir(workspace)
            .args([
                "build",
                "--quiet",
                "--release",
                "--package",
                "lab",
                "--bin",
                "lab",
            ])
            .args(["--target", LAB_TARGET])
            .env("CARGO_TARGET_DIR", &target_dir)
            .env("RUSTFLAGS", rustflags.trim())
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
            .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo"),
    )?;
    let program = target_dir.join(LAB_TARGET).join("release/lab");
    let bytes = fs::read(&program).map_err(|e| format!("read {}: {e}", program.display()))?;
    if !elf_is_static(&bytes)? {
        return Err(format!("{} is not statically linked", program.display()));
    }
    Ok(program)
}

fn list_scenarios(program: &Path) -> Result<Vec<ScenarioInfo>> {
    let text = host::output(Command::new(program).args(["list", "--json"]))?;
    lab_protocol::parse_scenario_list(&text)
}

fn print_list(scenarios: &[ScenarioInfo]) {
    let width = scenarios.iter().map(|s| s.name.len()).max().unwrap_or(0);
    println!("{:<width$}  default  description", "scenario");
    for s in scenarios {
        let default = if s.default { "yes" } else { "no" };
        println!("{:<width$}  {default:<7}  {}", s.name, s.description);
    }
}

/// The scenarios to run: those named (all must exist), or the default set.
pub fn choose(
    named: &[String],
    known: &[ScenarioInfo],
) -> std::result::Result<Vec<String>, String> {
    if named.is_empty() {
        return Ok(known
            .iter()
            .filter(|s| s.default)
            .map(|s| s.name.clone())
            .collect());
    }
    let unknown: Vec<&str> = named
        .iter()
        .filter(|n| !known.iter().any(|s| &s.name == *n))
        .map(String::as_str)
        .collect();
    if unknown.is_empty() {
        Ok(named.to_vec())
    } else {
        let names: Vec<&str> = known.iter().map(|s| s.name.as_str()).collect();
        Err(format!(
            "unknown scenario{} {}; known scenarios: {}",
            if unknown.len() > 1 { "s" } else { "" },
            unknown
                .iter()
                .map(|n| format!("'{n}'"))
                .collect::<Vec<_>>()
                .join(", "),
            names.join(", ")
        ))
    }
}

/// The run order: the scenarios to run (those named, or the default set) without the expected
/// failures, then the expected failures, so that their failing stops nothing else.
pub fn plan(
    named: &[String],
    expect_fail: &[String],
    known: &[ScenarioInfo],
) -> std::result::Result<Vec<String>, String> {
    let mut order = choose(named, known)?;
    if !expect_fail.is_empty() {
        choose(expect_fail, known)?;
    }
    order.retain(|name| !expect_fail.contains(name));
    order.extend(expect_fail.iter().cloned());
    Ok(order)
}

fn new_nonce() -> String {
    let seed = (SystemTime::now(), std::process::id());
    let mut n = RandomState::new().hash_one(seed);
    let mut text = String::new();
    for _ in 0..10 {
        let digit = (n % 36) as u32;
        text.push(char::from_digit(digit, 36).unwrap_or('x'));
        n /= 36;
    }
    text
}

/// Creates this run's folder, points `last-run` at it and removes old runs.
fn new_run_dir(lab_dir: &Path) -> Result<PathBuf> {
    let runs = lab_dir.join("runs");
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let dir = runs.join(format!("{secs}-{}", std::process::id()));
    fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let mut old: Vec<PathBuf> = fs::read_dir(&runs)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    old.sort();
    for stale in old.iter().take(old.len().saturating_sub(RUNS_KEPT)) {
        let _ = fs::remove_dir_all(stale);
    }
    let link = lab_dir.join("last-run");
    let _ = fs::remove_file(&link);
    let _ = std::os::unix::fs::symlink(&dir, &link);
    Ok(dir)
}

/// `cargo xtask lab`.
pub fn main(args: &LabArgs) -> ExitCode {
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lab: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &LabArgs) -> Result<ExitCode> {
    let total = Instant::now();
    let mut timings = Timings::default();
    let workspace = workspace_root();
    let lab_dir = lab_dir(&workspace);
    let cache = lab_dir.join("cache");
    fs::create_dir_all(&cache).map_err(|e| format!("create {}: {e}", cache.display()))?;
    let apt_log = cache.join("apt.log");

    let program = step(&mut timings, "build the lab program", || {
        build_lab_program(&workspace, &lab_dir)
    })?;
    let known = list_scenarios(&program)?;
    if args.mode == LabMode::List {
        print_list(&known);
        return Ok(ExitCode::SUCCESS);
    }
    let scenarios = match plan(&args.scenarios, &args.expect_fail, &known) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("lab: {e}");
            return Ok(ExitCode::from(2));
        }
    };

    let lock = host::lock_cache(&cache)?;
    let installed = step(&mut timings, "host packages", || {
        host::ensure_host_packages(&apt_log)
    })?;
    if !installed.is_empty() {
        println!("  installed {}", installed.join(" "));
    }
    let (unpacked, fresh) = step(&mut timings, "Xen and the dom0 kernel", || {
        host::ensure_unpacked(&cache, &apt_log)
    })?;
    println!(
        "  {} {}, kernel {}",
        if fresh { "unpacked" } else { "cached:" },
        unpacked.packages,
        unpacked.kernel_version
    );
    let (base, built) = step(&mut timings, "dom0 base initramfs", || {
        initramfs::ensure_base(&unpacked, &cache, &apt_log)
    })?;
    println!(
        "  {} {}",
        if built { "built" } else { "cached:" },
        base.display()
    );
    drop(lock);

    let run_dir = new_run_dir(&lab_dir)?;
    let initrd = run_dir.join("dom0.cpio");
    let size = step(&mut timings, "dom0 initrd", || {
        initramfs::write_initrd(&base, &program, &initrd)
    })?;
    let size = if hvm_guest::needed(&scenarios) {
        let kernel = step(&mut timings, "HVM test kernel", || {
            hvm_guest::build_kernel(&workspace, &lab_dir)
        })?;
        step(&mut timings, "dom0 HVM additions", || {
            let archive = hvm_guest::ensure_archive(&cache, &apt_log)?;
            hvm_guest::append(&initrd, &archive, &kernel)
        })?
    } else {
        size
    };
    println!("  {} ({:.1} MB)", initrd.display(), size as f64 / 1e6);

    let request = RunRequest {
        nonce: new_nonce(),
        scenarios: scenarios.clone(),
        // An expected failure stops the run unless it is the last scenario.
        keep_going: args.keep_going || args.expect_fail.len() > 1,
    };
    let mut boot = Boot {
        xen: unpacked.xen.clone(),
        kernel: unpacked.kernel.clone(),
        initrd: initrd.clone(),
        dom0_words: request.to_cmdline(),
    };
    if args.mode == LabMode::Shell {
        boot.dom0_words.clear();
        let qemu_args = qemu::qemu_args(&boot, &Console::Terminal)?;
        println!("lab: booting to a dom0 shell; `poweroff -f` or Ctrl-a x ends QEMU");
        qemu::run_interactive(&qemu_args)?;
        let _ = fs::remove_file(&initrd);
        return Ok(ExitCode::SUCCESS);
    }

    let serial = run_dir.join("serial.log");
    let qemu_log = run_dir.join("qemu.log");
    let qemu_args = qemu::qemu_args(&boot, &Console::File(serial.clone()))?;
    fs::write(run_dir.join("qemu.args"), qemu_args.join("\n") + "\n").map_err(|e| e.to_string())?;
    println!(
        "lab: booting Xen and dom0 in QEMU (timeout {} s); console: {}",
        args.timeout_secs,
        serial.display()
    );
    let mut collector = Collector::new(&request.nonce);
    let (ended, ran) = qemu::run_watched(
        &qemu_args,
        &serial,
        &qemu_log,
        Duration::from_secs(args.timeout_secs),
        |line, at| {
            let watch = collector.line(line, at);
            for note in collector.notes.drain(..) {
                println!("  [{:6.1} s] {note}", at.as_secs_f64());
            }
            watch
        },
    )?;
    let _ = fs::remove_file(&initrd);
    let results = run_dir.join("results.jsonl");
    let jsonl: String = collector.records.iter().map(|r| format!("{r}\n")).collect();
    fs::write(&results, jsonl).map_err(|e| format!("write {}: {e}", results.display()))?;

    if let Some((ready, _)) = collector.started {
        timings.add("boot to lab start", ready);
        if let Some((end, _)) = &collector.end {
            timings.add("scenarios", end.saturating_sub(ready));
            timings.add("poweroff", ran.saturating_sub(*end));
        }
    } else {
        timings.add("QEMU", ran);
    }

    println!();
    print!(
        "{}",
        render_table(&scenarios, &args.expect_fail, &collector)
    );
    print!("{}", render_reports(&collector));
    println!();
    if let Some((_, Some(ready_s))) = collector.started {
        println!("dom0 was ready at {ready_s:.1} s of its uptime");
    }
    println!("timings: {}", timings.line(total.elapsed()));
    println!("console log: {}", serial.display());
    println!("results:     {}", results.display());

    let problems = collector.problems(&scenarios, &args.expect_fail, &ended, args.timeout_secs);
    if problems.is_empty() {
        let passed = scenarios.len() - args.expect_fail.len();
        if args.expect_fail.is_empty() {
            println!("lab: all {passed} scenario(s) passed");
        } else {
            println!(
                "lab: all {passed} scenario(s) passed and {} failed as expected ({})",
                args.expect_fail.len(),
                args.expect_fail.join(", ")
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!();
    for problem in &problems {
        eprintln!("lab: FAILED: {problem}");
    }
    if collector.started.is_none() || collector.end.is_none() {
        eprintln!("lab: last console lines:\n{}", collector.tail(15));
    }
    Ok(ExitCode::FAILURE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, default: bool) -> ScenarioInfo {
        ScenarioInfo {
            name: name.into(),
            description: "d".into(),
            default,
            timeout_s: 1,
        }
    }

    #[test]
    fn choosing_scenarios() {
        let known = [
            info("boot", true),
            info("gntalloc-evtchn", true),
            info("selftest-fail", false),
        ];
        assert_eq!(choose(&[], &known).unwrap(), ["boot", "gntalloc-evtchn"]);
        let named = ["selftest-fail".to_owned(), "boot".to_owned()];
        assert_eq!(choose(&named, &known).unwrap(), named);
        let err = choose(&["nope".to_owned()], &known).unwrap_err();
        assert_eq!(
            err,
            "unknown scenario 'nope'; known scenarios: boot, gntalloc-evtchn, selftest-fail"
        );
        let err = choose(&["a".to_owned(), "b".to_owned()], &known).unwrap_err();
        assert!(err.starts_with("unknown scenarios 'a', 'b';"), "{err}");
    }

    #[test]
    fn expected_failures_run_last() {
        let known = [
            info("boot", true),
            info("blk-smoke", true),
            info("blk-smoke-wrong-ring-ref", false),
            info("selftest-fail", false),
        ];
        let names = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            plan(&[], &names(&["blk-smoke-wrong-ring-ref"]), &known).unwrap(),
            ["boot", "blk-smoke", "blk-smoke-wrong-ring-ref"]
        );
        // A default scenario named as an expected failure moves to the end.
        assert_eq!(
            plan(&[], &names(&["boot", "selftest-fail"]), &known).unwrap(),
            ["blk-smoke", "boot", "selftest-fail"]
        );
        assert_eq!(
            plan(&names(&["boot"]), &names(&["selftest-fail"]), &known).unwrap(),
            ["boot", "selftest-fail"]
        );
        assert!(plan(&[], &names(&["nope"]), &known)
            .unwrap_err()
            .starts_with("unknown scenario 'nope'"));
    }

    #[test]
    fn static_elf_detection() {
        // This test program is linked dynamically (it has an interpreter).
        let me = fs::read("/proc/self/exe").unwrap();
        assert!(!elf_is_static(&me).unwrap());
        assert!(elf_is_static(b"not an elf").is_err());
        // A minimal ELF header with no program headers counts as static.
        let mut header = vec![0u8; 64];
        header[..6].copy_from_slice(b"\x7fELF\x02\x01");
        assert!(elf_is_static(&header).unwrap());
    }

    #[test]
    fn nonces_are_valid_and_differ() {
        let (a, b) = (new_nonce(), new_nonce());
        assert!(lab_protocol::is_valid_nonce(&a), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn timings_line() {
        let mut t = Timings::default();
        t.add("build", Duration::from_millis(1500));
        assert_eq!(t.line(Duration::from_secs(2)), "build 1.5 s | total 2.0 s");
    }
}
