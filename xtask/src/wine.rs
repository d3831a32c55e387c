//! `cargo xtask wine-check`: the Wine load test of a driver package (see `windows/WINE.md`).
//!
//! For each phase (by default: xenpci's real INF on a root device carrying the platform device's
//! PCI hardware ID, then the test INF `windows/wine/xenpci-wine-test.inx` on
//! `ROOT\XENPCI_WINE_TEST`), in a fresh Wine prefix under `target/wine/`:
//! 1. `devinst install` creates a root-enumerated device and installs the driver from the INF
//!    through setupapi (`UpdateDriverForPlugAndPlayDevices`); Wine starts the service, runs
//!    `DriverEntry`, and its PnP manager calls `AddDevice` and sends `IRP_MN_START_DEVICE`;
//! 2. the services database is read back (`reg query`) and compared with the INF's service
//!    section;
//! 3. `devinst remove` removes the device; Wine's PnP manager sends `IRP_MN_SURPRISE_REMOVAL`
//!    and `IRP_MN_REMOVE_DEVICE`;
//! 4. the log (Wine's `plugplay`/`ntoskrnl` traces and the driver's `DbgPrint` lines) is checked
//!    step by step ([`analyse`]).
//!
//! Before the phases, a static import report compares the image's import table with what Wine's
//! `ntoskrnl.exe` and `hal.dll` export.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use crate::inf::{repo_root, stamp_and_check, stamp_date, DEFAULT_OUT};
use crate::pe::{utf16_identifiers, Image, Import};

/// Where Debian's Wine keeps its 64-bit PE modules.
pub const WINE_PE_DIR: &str = "/usr/lib/x86_64-linux-gnu/wine/x86_64-windows";

/// The Wine debug channels the analysis needs: the driver's `DbgPrint` (`warn+debugstr`), the
/// PnP manager (`+plugplay`) and the driver loader (`+ntoskrnl`); errors stay on.
/// `warn+module` names each import Wine could not resolve (`No implementation for ...`).
pub const WINE_DEBUG: &str = "err+all,warn+debugstr,warn+module,+plugplay,+ntoskrnl";

/// The options of `cargo xtask wine-check`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WineArgs {
    /// The driver image (default `target/drivers/x64/xenpci.sys`).
    pub sys: Option<PathBuf>,
    /// The INF to install (with `hardware_id`: one phase with this INF).
    pub inf: Option<PathBuf>,
    /// The hardware ID of the root device to create.
    pub hardware_id: Option<String>,
    /// The service name (default: the image's file stem).
    pub service: Option<String>,
}

/// Usage of `cargo xtask wine-check`.
pub const USAGE: &str = "\
usage: cargo xtask wine-check [--sys PATH] [--service NAME] [--inf PATH --hardware-id ID]

Installs a driver in fresh Wine prefixes (target/wine/) from its INF through setupapi on a
root-enumerated device, and checks that DriverEntry and AddDevice run, START fails with a logged
reason (no Xen under Wine) and the removal IRPs arrive; first prints which imports Wine lacks.

options:
  --sys PATH          the driver image (default: target/drivers/x64/xenpci.sys)
  --service NAME      its service name (default: the image's file stem)
  --inf PATH          install from this INF instead of xenpci's two phases (the stamped
                      xenpci.inf next to the image, then windows/wine/xenpci-wine-test.inx)
  --hardware-id ID    the root device's hardware ID for --inf
  -h, --help          show this text

See windows/WINE.md for what the test proves and what it cannot.";

/// Parses the arguments after `cargo xtask wine-check`; `Ok(None)` asks for the usage.
pub fn parse_args(args: &[String]) -> Result<Option<WineArgs>, String> {
    let mut parsed = WineArgs::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| match it.next() {
            Some(v) if !v.is_empty() && !v.starts_with("--") => Ok(v.clone()),
            _ => Err(format!("{name} needs a value")),
        };
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--sys" => parsed.sys = Some(PathBuf::from(value("--sys")?)),
            "--inf" => parsed.inf = Some(PathBuf::from(value("--inf")?)),
            "--hardware-id" => {
                let id = value("--hardware-id")?;
                win_inf::check::check_hardware_id(&id)
                    .map_err(|why| format!("--hardware-id {id:?}: {why}"))?;
                parsed.hardware_id = Some(id);
            }
            "--service" => parsed.service = Some(value("--service")?),
            other => return Err(format!("unknown option '{other}'")),
        }
    }
    if parsed.inf.is_some() != parsed.hardware_id.is_some() {
        return Err("--inf and --hardware-id go together".into());
    }
    Ok(Some(parsed))
}

/// One install-and-remove run in a fresh prefix.
#[derive(Debug, Clone)]
struct Phase {
    label: &'static str,
    slug: &'static str,
    inf: PathBuf,
    hardware_id: String,
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What is checked.
    pub what: String,
    /// `Ok(evidence)` or `Err(why it failed)`.
    pub result: Result<String, String>,
}

fn pass(what: &str, evidence: impl Into<String>) -> Check {
    Check {
        what: what.to_owned(),
        result: Ok(evidence.into()),
    }
}

fn fail(what: &str, why: impl Into<String>) -> Check {
    Check {
        what: what.to_owned(),
        result: Err(why.into()),
    }
}

/// `cargo xtask wine-check`.
pub fn main(args: &WineArgs) -> ExitCode {
    match run(args) {
        Ok(true) => {
            println!("wine-check: all checks passed");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            eprintln!("wine-check: FAILED (logs under target/wine/)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("wine-check: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &WineArgs) -> Result<bool, String> {
    let root = repo_root();
    let work = root.join("target/wine");
    for tool in ["wine", "wineserver", "wineboot"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map_or(true, |s| !s.success())
        {
            return Err(format!(
                "{tool} is not installed (scripts/setup installs Wine)"
            ));
        }
    }
    let sys = args
        .sys
        .clone()
        .unwrap_or_else(|| root.join(DEFAULT_OUT).join("xenpci.sys"));
    if !sys.is_file() {
        return Err(format!(
            "{} does not exist: build the drivers first (`cargo xtask drivers`)",
            sys.display()
        ));
    }
    let sys = fs::canonicalize(&sys).map_err(|e| format!("{}: {e}", sys.display()))?;
    let service = match &args.service {
        Some(s) => s.clone(),
        None => sys
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .ok_or("the image path has no file name")?,
    };
    fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;

    let mut all_passed = true;
    println!("== static import report: {}", sys.display());
    let report = import_report(&sys, Path::new(WINE_PE_DIR))?;
    print!("{report}");

    let devinst = build_devinst(&root)?;
    let phases = phases(args, &root, &sys, &work)?;
    for phase in &phases {
        println!(
            "\n== {}: {} on a root device with hardware ID {}",
            phase.label,
            phase.inf.display(),
            phase.hardware_id
        );
        let dir = work.join(phase.slug);
        let checks = run_phase(phase, &service, &devinst, &dir)?;
        // A prefix is about half a gigabyte: keep it only when something failed (the log stays).
        if checks.iter().all(|c| c.result.is_ok()) {
            let _ = fs::remove_dir_all(dir.join("prefix"));
        }
        for check in &checks {
            match &check.result {
                Ok(evidence) => println!("  ok    {}: {evidence}", check.what),
                Err(why) => {
                    all_passed = false;
                    println!("  FAIL  {}: {why}", check.what);
                }
            }
        }
    }
    Ok(all_passed)
}

/// The phases to run: the one given on the command line, or xenpci's two.
fn phases(args: &WineArgs, root: &Path, sys: &Path, work: &Path) -> Result<Vec<Phase>, String> {
    match (&args.inf, &args.hardware_id) {
        (Some(inf), Some(id)) => Ok(vec![Phase {
            label: "the given INF",
            slug: "given",
            inf: fs::canonicalize(inf).map_err(|e| format!("{}: {e}", inf.display()))?,
            hardware_id: id.clone(),
        }]),
        (None, None) => {
            let real_inf = sys.with_extension("inf");
            if !real_inf.is_file() {
                return Err(format!(
                    "{} does not exist (`cargo xtask drivers` stamps it next to the .sys)",
                    real_inf.display()
                ));
            }
            // The test package: the stamped test INF next to a copy of the same image.
            let package = work.join("test-package");
            fs::create_dir_all(&package).map_err(|e| format!("{}: {e}", package.display()))?;
            let template = fs::read_to_string(root.join("windows/wine/xenpci-wine-test.inx"))
                .map_err(|e| format!("windows/wine/xenpci-wine-test.inx: {e}"))?;
            let text = stamp_and_check(
                &template,
                "xenpci-wine-test",
                stamp_date(root)?,
                [0, 1, 0, 0],
            )?;
            let test_inf = package.join("xenpci-wine-test.inf");
            fs::write(&test_inf, text).map_err(|e| format!("{}: {e}", test_inf.display()))?;
            let file_name = sys.file_name().ok_or("the image path has no file name")?;
            fs::copy(sys, package.join(file_name))
                .map_err(|e| format!("copying the image: {e}"))?;
            Ok(vec![
                Phase {
                    label: "the real INF",
                    slug: "real-inf",
                    inf: real_inf,
                    hardware_id: "PCI\\VEN_5853&DEV_0001".into(),
                },
                Phase {
                    label: "the test INF",
                    slug: "test-inf",
                    inf: test_inf,
                    hardware_id: "ROOT\\XENPCI_WINE_TEST".into(),
                },
            ])
        }
        _ => Err("--inf and --hardware-id go together".into()),
    }
}

/// The Debian rust-web toolchain's library source (`/usr/src/rustc-<version>/library`).
fn rust_web_library() -> Result<PathBuf, String> {
    let mut found: Vec<PathBuf> = fs::read_dir("/usr/src")
        .map_err(|e| format!("/usr/src: {e}"))?
        .flatten()
        .map(|e| e.path().join("library"))
        .filter(|p| {
            p.is_dir()
                && p.parent()
                    .and_then(|d| d.file_name())
                    .is_some_and(|n| n.to_string_lossy().starts_with("rustc-"))
        })
        .collect();
    found.sort();
    found
        .pop()
        .ok_or_else(|| "no /usr/src/rustc-*/library: install rust-web-src (scripts/setup)".into())
}

/// Lints (clippy `-D warnings`) and builds the `devinst` helper for Windows with the Debian
/// rust-web lane; returns the `.exe`.
fn build_devinst(root: &Path) -> Result<PathBuf, String> {
    let crate_dir = root.join("windows/devinst");
    let target_dir = root.join("target/devinst");
    let library = rust_web_library()?;
    // The lane's own cargo-clippy and clippy-driver (rust-web-clippy) come first in PATH.
    let path = format!("/usr/bin:{}", std::env::var("PATH").unwrap_or_default());
    for (command, trailing) in [
        ("clippy", &["--", "-D", "warnings"][..]),
        ("build", &[][..]),
    ] {
        let status = Command::new("/usr/bin/cargo")
            .arg(command)
            .args([
                "--release",
                "--locked",
                "-Zbuild-std=core",
                "-Zbuild-std-features=compiler-builtins-mem",
                "--target",
                "x86_64-pc-windows-msvc",
            ])
            .args(trailing)
            // The crate's .cargo/config.toml (linker and entry point) is read from the current
            // folder.
            .current_dir(&crate_dir)
            .env("PATH", &path)
            .env("RUSTC", "/usr/bin/rustc")
            .env("RUSTC_BOOTSTRAP", "1")
            .env("__CARGO_TESTS_ONLY_SRC_ROOT", &library)
            .env("CARGO_TARGET_DIR", &target_dir)
            .env_remove("RUSTFLAGS")
            .status()
            .map_err(|e| format!("cannot run /usr/bin/cargo (install cargo-web): {e}"))?;
        if !status.success() {
            return Err(format!("cargo {command} of windows/devinst failed"));
        }
    }
    Ok(target_dir.join("x86_64-pc-windows-msvc/release/devinst.exe"))
}

/// A Unix path as Wine sees it through drive Z:.
fn wine_path(path: &Path) -> String {
    format!("Z:{}", path.display()).replace('/', "\\")
}

/// A command with the prefix's environment.
fn wine_command(prefix: &Path, program: &str, debug: &str) -> Command {
    let mut command = Command::new(program);
    command
        .env("WINEPREFIX", prefix)
        .env("WINEARCH", "win64")
        .env("WINEDEBUG", debug)
        // No Mono or Gecko installer dialogs, no menu entries; no display (headless: Wine uses
        // its null display driver).
        .env("WINEDLLOVERRIDES", "mscoree,mshtml=;winemenubuilder.exe=d")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .stdin(Stdio::null());
    command
}

fn log_handles(log: &Path) -> Result<(File, File), String> {
    let file = File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let second = file
        .try_clone()
        .map_err(|e| format!("{}: {e}", log.display()))?;
    Ok((file, second))
}

/// Waits for `child` up to `limit`; kills it when the time is up.
fn wait(mut child: Child, limit: Duration, what: &str) -> Result<i32, String> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status.code().unwrap_or(-1)),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{what} did not finish within {}s", limit.as_secs()));
            }
            Err(e) => return Err(format!("{what}: {e}")),
        }
    }
}

/// Runs a Wine program with its output appended to `log`; returns its exit code.
fn run_logged(
    prefix: &Path,
    log: &Path,
    program: &str,
    args: &[&str],
    limit: Duration,
) -> Result<i32, String> {
    let (out, err) = log_handles(log)?;
    let child = wine_command(prefix, program, WINE_DEBUG)
        .args(args)
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    wait(child, limit, &format!("{program} {}", args.join(" ")))
}

/// Polls `log` until `done` holds for its text, up to `limit`.
fn wait_for_log(log: &Path, limit: Duration, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let text = fs::read(log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        if done(&text) || Instant::now() >= deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn run_phase(
    phase: &Phase,
    service: &str,
    devinst: &Path,
    dir: &Path,
) -> Result<Vec<Check>, String> {
    let prefix = dir.join("prefix");
    let log = dir.join("wine.log");
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let quiet = |program: &str, args: &[&str]| -> Result<i32, String> {
        let child = wine_command(&prefix, program, "-all")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        wait(child, Duration::from_secs(300), program)
    };
    quiet("wineboot", &["-i"])?;
    quiet("wineserver", &["-w"])?;
    // Keep the server (and with it services.exe and winedevice.exe) alive between the steps;
    // its output, and that of the processes the first client starts, goes to the log.
    let (out, err) = log_handles(&log)?;
    let server = wine_command(&prefix, "wineserver", WINE_DEBUG)
        .args(["-p", "-f"])
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot start wineserver: {e}"))?;

    let result = (|| {
        let devinst = devinst.to_string_lossy();
        let inf = wine_path(&phase.inf);
        let install = run_logged(
            &prefix,
            &log,
            "wine",
            &[&devinst, "install", &inf, &phase.hardware_id],
            Duration::from_secs(180),
        )?;
        let start_marker = format!("{service}: START");
        wait_for_log(&log, Duration::from_secs(30), |t| t.contains(&start_marker));
        let services = reg_query(
            &prefix,
            &format!("HKLM\\System\\CurrentControlSet\\Services\\{service}"),
        )?;
        let parameters = reg_query(
            &prefix,
            &format!("HKLM\\System\\CurrentControlSet\\Services\\{service}\\Parameters"),
        )?;
        let remove = run_logged(
            &prefix,
            &log,
            "wine",
            &[&devinst, "remove", &phase.hardware_id],
            Duration::from_secs(180),
        )?;
        let text = wait_for_log(&log, Duration::from_secs(30), |t| {
            t.contains("send_remove_device_irp") && t.contains(", code 2.")
        });
        Ok::<_, String>((install, remove, services, parameters, text))
    })();
    let _ = quiet("wineserver", &["-k"]);
    let _ = wait(server, Duration::from_secs(30), "wineserver");
    let (install, remove, services, parameters, text) = result?;
    let unresolved = unresolved_imports(&text, service);
    println!(
        "  note  imports Wine's loader left unresolved (stubs that fault if called): {}",
        if unresolved.is_empty() {
            "none".to_owned()
        } else {
            unresolved.join(", ")
        }
    );

    let mut checks = Vec::new();
    checks.push(match install {
        0 => pass("setupapi install from the INF", "devinst install exited 0"),
        code => fail(
            "setupapi install from the INF",
            format!("devinst install exited {code}"),
        ),
    });
    let inf_text = fs::read(&phase.inf).map_err(|e| format!("{}: {e}", phase.inf.display()))?;
    checks.push(
        match win_inf::check_bytes(&inf_text, win_inf::Arch::Amd64) {
            Ok(_) => pass("the INF passes the INF checker", "no problem found"),
            Err(e) => fail(
                "the INF passes the INF checker",
                e.to_string().replace('\n', "; "),
            ),
        },
    );
    checks.extend(service_checks(&inf_text, service, &services, &parameters));
    checks.extend(analyse(&text, service));
    checks.push(match remove {
        0 => pass("setupapi removal", "devinst remove exited 0"),
        code => fail("setupapi removal", format!("devinst remove exited {code}")),
    });
    Ok(checks)
}

/// `reg query KEY` in the prefix: (name, type, data) of each value; empty when the key is absent.
fn reg_query(prefix: &Path, key: &str) -> Result<Vec<(String, String, String)>, String> {
    let output = wine_command(prefix, "wine", "-all")
        .args(["reg", "query", key])
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("wine reg query: {e}"))?;
    Ok(parse_reg_query(&String::from_utf8_lossy(&output.stdout)))
}

/// Parses `reg query` output: value lines are `    NAME    TYPE    DATA`.
pub fn parse_reg_query(text: &str) -> Vec<(String, String, String)> {
    text.lines()
        .filter(|l| l.starts_with("    "))
        .filter_map(|l| {
            let mut fields = l.trim().splitn(3, "    ");
            let name = fields.next()?.trim().to_owned();
            let kind = fields.next()?.trim().to_owned();
            let data = fields.next().unwrap_or("").trim().to_owned();
            kind.starts_with("REG_").then_some((name, kind, data))
        })
        .collect()
}

/// The services database against the INF's service section (and its `Parameters` values).
fn service_checks(
    inf_bytes: &[u8],
    service: &str,
    values: &[(String, String, String)],
    parameters: &[(String, String, String)],
) -> Vec<Check> {
    let what = "services database matches the INF";
    let inf = match win_inf::decode(inf_bytes).and_then(|t| win_inf::parse(&t)) {
        Ok(inf) => inf,
        Err(e) => return vec![fail(what, format!("the INF does not parse: {e}"))],
    };
    // The service-install section named by `AddService = <service>, ...`.
    let install = inf.sections.iter().find_map(|s| {
        s.all("AddService")
            .find(|e| e.first().eq_ignore_ascii_case(service))
            .and_then(|e| inf.section(e.values.get(2)?))
    });
    let Some(install) = install else {
        return vec![fail(
            what,
            format!("the INF has no AddService for {service}"),
        )];
    };
    let value = |name: &str| {
        values
            .iter()
            .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, _, d)| d.as_str())
    };
    let mut problems = Vec::new();
    let mut evidence = Vec::new();
    for (directive, registry) in [
        ("ServiceType", "Type"),
        ("StartType", "Start"),
        ("ErrorControl", "ErrorControl"),
    ] {
        let expected = install
            .get(directive)
            .and_then(|e| win_inf::check::parse_number(e.first()));
        let found = value(registry).and_then(win_inf::check::parse_number);
        match (expected, found) {
            (Some(e), Some(f)) if e == f => evidence.push(format!("{registry}={f}")),
            _ => problems.push(format!("{registry}: INF {expected:?}, registry {found:?}")),
        }
    }
    if let Some(group) = install.get("LoadOrderGroup") {
        match value("Group") {
            Some(found) if found == group.first() => evidence.push(format!("Group={found:?}")),
            found => problems.push(format!(
                "Group: INF {:?}, registry {found:?}",
                group.first()
            )),
        }
    }
    let binary = format!("\\{service}.sys");
    match value("ImagePath") {
        Some(path)
            if path
                .to_ascii_lowercase()
                .ends_with(&binary.to_ascii_lowercase()) =>
        {
            evidence.push(format!("ImagePath={path}"));
        }
        found => problems.push(format!("ImagePath {found:?} does not end in {binary}")),
    }
    // Registry parameters the INF adds under the service key's Parameters subkey.
    for section in install.all("AddReg").flat_map(|e| e.values.clone()) {
        let Some(reg) = inf.section(&section) else {
            continue;
        };
        for entry in &reg.entries {
            let [root, subkey, name, ..] = &entry.values[..] else {
                continue;
            };
            if !root.eq_ignore_ascii_case("HKR") || !subkey.eq_ignore_ascii_case("Parameters") {
                continue;
            }
            let expected = entry.values.get(4).cloned().unwrap_or_default();
            match parameters
                .iter()
                .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
            {
                Some((_, _, data)) if *data == expected => {
                    evidence.push(format!("Parameters\\{name}={data:?}"))
                }
                found => problems.push(format!(
                    "Parameters\\{name}: INF {expected:?}, registry {:?}",
                    found.map(|f| &f.2)
                )),
            }
        }
    }
    if problems.is_empty() {
        vec![pass(what, evidence.join(", "))]
    } else {
        vec![fail(what, problems.join("; "))]
    }
}

/// The thread ID prefix of a Wine debug line (`0114:trace:...`).
fn thread_of(line: &str) -> Option<&str> {
    let (id, rest) = line.split_once(':')?;
    (id.len() == 4 && id.bytes().all(|b| b.is_ascii_hexdigit()) && !rest.is_empty()).then_some(id)
}

/// The driver's own `DbgPrint` lines (Wine prints them on the `debugstr` channel).
fn driver_lines<'t>(log: &'t str, service: &str) -> Vec<&'t str> {
    let prefix = format!("{service}: ");
    log.lines()
        .filter(|l| l.contains(":debugstr:"))
        .filter_map(|l| l.find(&prefix).map(|at| l[at..].trim_end()))
        .collect()
}

/// The step-by-step analysis of one phase's log.
pub fn analyse(log: &str, service: &str) -> Vec<Check> {
    let mut checks = Vec::new();
    let lines: Vec<&str> = log.lines().collect();
    let ours = driver_lines(log, service);
    let driver_object = format!("L\"\\\\Driver\\\\{service}\"");

    // DriverEntry: Wine's loader traces "init done" only when DriverEntry returned success.
    let what = "DriverEntry ran and succeeded";
    let loaded = format!("init done for L\"{service}\"");
    checks.push(
        if let Some(line) = lines.iter().find(|l| l.contains(&loaded)) {
            let own = ours
                .iter()
                .find(|l| l.contains("DriverEntry"))
                .copied()
                .unwrap_or("(no DbgPrint line)");
            pass(what, format!("{} / {own}", line.trim()))
        } else if let Some(line) = lines.iter().find(|l| {
            l.contains("init failed") || (l.contains(&driver_object) && l.contains("err:"))
        }) {
            fail(what, line.trim().to_owned())
        } else {
            fail(
                what,
                format!(
                    "no \"{loaded}\" in the log: the driver did not load (see the import report)"
                ),
            )
        },
    );

    // AddDevice: the PnP manager resolves \Driver\<service> and calls AddDevice in the same
    // thread; it traces the status returned.
    let what = "AddDevice ran and succeeded";
    let add_device = lines.iter().enumerate().find_map(|(i, line)| {
        if !(line.contains("ObReferenceObjectByName") && line.contains(&driver_object)) {
            return None;
        }
        let thread = thread_of(line)?;
        lines[i + 1..].iter().find(|l| {
            thread_of(l) == Some(thread)
                && l.contains("AddDevice routine")
                && l.contains("returned")
        })
    });
    checks.push(match add_device {
        Some(line) if line.trim_end().ends_with("returned 0.") => {
            pass(what, line.trim().to_owned())
        }
        Some(line) => fail(what, line.trim().to_owned()),
        None => fail(what, "the PnP manager never called the driver's AddDevice"),
    });

    // START: the driver must fail it cleanly, saying why (it has no Xen under Wine).
    let what = "START failed cleanly with a logged reason";
    let start = ours
        .iter()
        .find_map(|l| l.strip_prefix(&format!("{service}: START failed: ")));
    checks.push(match start {
        Some(reason) if !reason.trim().is_empty() => {
            pass(what, format!("reason: {}", reason.trim()))
        }
        Some(_) => fail(what, "START failed without a reason"),
        None if ours.iter().any(|l| l.contains("START")) => fail(
            what,
            format!(
                "the driver logged START but not a failure: {:?}",
                ours.iter()
                    .filter(|l| l.contains("START"))
                    .collect::<Vec<_>>()
            ),
        ),
        None => fail(
            what,
            format!("no \"{service}: START failed: <reason>\" line from the driver"),
        ),
    });

    // Removal: Wine sends SURPRISE_REMOVAL (0x17) then REMOVE_DEVICE (0x2) to the device stack
    // (traced with the PDO's address); a WDM function driver must pass both down, so the PDO
    // (Wine's PnP manager) receives them.
    for (code, name) in [
        ("17", "IRP_MN_SURPRISE_REMOVAL"),
        ("2", "IRP_MN_REMOVE_DEVICE"),
    ] {
        let what = format!("{name} sent and passed down to the PDO");
        let sent = lines.iter().find_map(|l| {
            let rest = l.split("send_remove_device_irp Removing device ").nth(1)?;
            let (device, sent_code) = rest.split_once(", code ")?;
            (sent_code.trim_end().trim_end_matches('.') == code).then_some(device.to_owned())
        });
        checks.push(match sent {
            None => fail(&what, format!("Wine never sent {name}")),
            Some(pdo) => {
                let arrived = format!("pnp_manager_device_pnp device {pdo}, ");
                let minor = format!("minor function 0x{code}.");
                if lines
                    .iter()
                    .any(|l| l.contains(&arrived) && l.contains(&minor))
                {
                    pass(&what, format!("PDO {pdo} received minor 0x{code}"))
                } else {
                    fail(
                        &what,
                        format!("the driver did not pass {name} down to PDO {pdo}"),
                    )
                }
            }
        });
    }

    // No exception anywhere in the driver host.
    let what = "no exception in the driver host";
    let crash = lines.iter().find(|l| {
        l.contains("Unhandled exception")
            || l.contains("Unhandled page fault")
            || l.contains("err:seh:")
            || l.contains("Unhandled stack overflow")
    });
    checks.push(match crash {
        Some(line) => fail(what, line.trim().to_owned()),
        None => pass(what, "none logged"),
    });
    checks
}

/// Imports of `<service>.sys` that Wine's loader could not resolve (`warn+module`). The image
/// loads anyway, each such import pointing at a stub that raises an exception when called; a
/// call therefore shows as an exception, which [`analyse`] fails on.
pub fn unresolved_imports(log: &str, service: &str) -> Vec<String> {
    let image = format!("\\\\drivers\\\\{service}.sys\"").to_ascii_lowercase();
    log.lines()
        .filter(|l| l.contains("No implementation for ") && l.to_ascii_lowercase().contains(&image))
        .filter_map(|l| l.split("No implementation for ").nth(1)?.split(' ').next())
        .map(str::to_owned)
        .collect()
}

/// The static import report: each import of the image and whether Wine's module exports it;
/// names the image holds as UTF-16 strings (routines resolved at run time with
/// `MmGetSystemRoutineAddress`) and whether Wine's ntoskrnl.exe exports them.
pub fn import_report(sys: &Path, wine_dir: &Path) -> Result<String, String> {
    let bytes = fs::read(sys).map_err(|e| format!("{}: {e}", sys.display()))?;
    let image = Image::parse(&bytes).map_err(|e| format!("{}: {e}", sys.display()))?;
    let imports = image
        .imports()
        .map_err(|e| format!("{}: {e}", sys.display()))?;
    let exports_of = |module: &str| -> Option<Vec<String>> {
        let bytes = fs::read(wine_dir.join(module.to_ascii_lowercase())).ok()?;
        Image::parse(&bytes).ok()?.exports().ok()
    };
    let mut out = String::new();
    let mut missing_total = 0;
    for (module, functions) in &imports {
        let exports = exports_of(module);
        let missing: Vec<String> = functions
            .iter()
            .filter(|f| match (f, &exports) {
                (Import::Name(name), Some(exports)) => !exports.contains(name),
                _ => true,
            })
            .map(ToString::to_string)
            .collect();
        missing_total += missing.len();
        let state = match &exports {
            None => "module not provided by Wine".to_owned(),
            Some(_) if missing.is_empty() => "all exported by Wine".to_owned(),
            Some(_) => format!("Wine lacks {}: {}", missing.len(), missing.join(", ")),
        };
        out.push_str(&format!(
            "  {module}: {} imports; {state}\n",
            functions.len()
        ));
    }
    let ntoskrnl = exports_of("ntoskrnl.exe").unwrap_or_default();
    let imported: Vec<String> = imports
        .iter()
        .flat_map(|(_, f)| f.iter().map(ToString::to_string))
        .collect();
    let run_time: Vec<String> = utf16_identifiers(&bytes)
        .into_iter()
        .filter(|name| !imported.contains(name) && name.chars().any(|c| c.is_ascii_lowercase()))
        .collect();
    for name in &run_time {
        let state = if ntoskrnl.contains(name) {
            "exported by Wine's ntoskrnl.exe"
        } else {
            "not in Wine's ntoskrnl.exe: the driver's fallback path runs"
        };
        out.push_str(&format!("  run-time lookup candidate {name}: {state}\n"));
    }
    out.push_str(&format!(
        "  summary: {} modules, {} imports, {missing_total} not provided by Wine\n",
        imports.len(),
        imported.len()
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines in the shape Wine 8 prints them (taken from a run of a minimal WDM driver).
    const LOG: &str = r#"0114:trace:ntoskrnl:ZwLoadDriver (L"\\Registry\\Machine\\System\\CurrentControlSet\\Services\\drv")
0114:warn:debugstr:vDbgPrintExWithPrefix 00000000:00000001: drv: DriverEntry
0114:trace:ntoskrnl:init_driver init done for L"drv" obj 000000000034C370
0114:trace:plugplay:wine_enumerate_root_devices Searching for new root-enumerated devices for driver L"drv".
0114:trace:ntoskrnl:ObReferenceObjectByName mostly-stub:L"\\Driver\\drv" 64 0000000000000000 0 0000000000000000 0 0000000000000000 0000000001A9F2A8
0080:trace:plugplay:load_function_driver AddDevice routine 00000001E58A1230 returned 0.
0114:trace:plugplay:load_function_driver Calling AddDevice routine 00000001E58A1230.
0114:warn:debugstr:vDbgPrintExWithPrefix 00000000:00000001: drv: AddDevice
0114:trace:plugplay:load_function_driver AddDevice routine 00000001E58A1230 returned 0.
0114:warn:debugstr:vDbgPrintExWithPrefix 00000000:00000000: drv: START failed: not running on Xen: Xen's CPUID signature was not found
0114:trace:plugplay:send_remove_device_irp Removing device 000000000034E7A0, code 17.
0114:trace:plugplay:pnp_manager_device_pnp device 000000000034E7A0, irp 00000000014A0370, minor function 0x17.
0114:trace:plugplay:send_remove_device_irp Removing device 000000000034E7A0, code 2.
0114:trace:plugplay:pnp_manager_device_pnp device 000000000034E7A0, irp 00000000014A0370, minor function 0x2.
"#;

    fn failures(log: &str) -> Vec<String> {
        analyse(log, "drv")
            .into_iter()
            .filter_map(|c| c.result.err().map(|e| format!("{}: {e}", c.what)))
            .collect()
    }

    #[test]
    fn a_clean_run_passes_every_step() {
        assert_eq!(failures(LOG), Vec::<String>::new());
        let checks = analyse(LOG, "drv");
        let start = checks.iter().find(|c| c.what.starts_with("START")).unwrap();
        assert_eq!(
            start.result,
            Ok("reason: not running on Xen: Xen's CPUID signature was not found".into())
        );
    }

    #[test]
    fn each_missing_step_is_named() {
        let cases = [
            (
                "init done for",
                "init_driver nothing",
                "DriverEntry ran and succeeded",
            ),
            (
                "returned 0.\n0114:warn:debugstr:vDbgPrintExWithPrefix 00000000:00000000",
                "returned c0000001.\n0114:warn:debugstr:vDbgPrintExWithPrefix 00000000:00000000",
                "AddDevice ran and succeeded",
            ),
            (
                "drv: START failed: not",
                "drv: START ok: not",
                "START failed cleanly",
            ),
            (
                "minor function 0x17.",
                "minor function 0x7.",
                "IRP_MN_SURPRISE_REMOVAL",
            ),
            ("code 2.", "code 3.", "IRP_MN_REMOVE_DEVICE"),
            (
                "drv: DriverEntry\n",
                "drv: DriverEntry\n0114:err:seh:dispatch_exception Unhandled exception\n",
                "no exception",
            ),
        ];
        for (from, to, expected) in cases {
            assert!(LOG.contains(from), "{from}");
            let broken = LOG.replacen(from, to, 1);
            let found = failures(&broken);
            assert_eq!(found.len(), 1, "{expected}: {found:?}");
            assert!(found[0].starts_with(expected), "{expected}: {found:?}");
        }
        // AddDevice's status is taken from the driver's own thread, not another driver's.
        let other_thread_only = LOG.replacen(
            "0114:trace:plugplay:load_function_driver AddDevice routine 00000001E58A1230 returned 0.",
            "",
            1,
        );
        assert!(failures(&other_thread_only)[0].starts_with("AddDevice ran and succeeded"));
    }

    #[test]
    fn unresolved_imports_of_our_image_only() {
        let log = "0110:warn:module:import_dll No implementation for ntoskrnl.exe.ExAllocatePool2 imported from L\"C:\\\\windows\\\\system32\\\\drivers\\\\drv.sys\", setting to 00000000021A0000\n\
                   0110:warn:module:import_dll No implementation for ntoskrnl.exe.Foo imported from L\"C:\\\\windows\\\\system32\\\\drivers\\\\other.sys\", setting to 0\n";
        assert_eq!(
            unresolved_imports(log, "drv"),
            ["ntoskrnl.exe.ExAllocatePool2"]
        );
        assert!(unresolved_imports(log, "dr").is_empty());
    }

    #[test]
    fn reg_query_output() {
        let text = "\r\nHKEY_LOCAL_MACHINE\\System\\CurrentControlSet\\Services\\drv\r\n    ErrorControl    REG_DWORD    0x1\r\n    Group    REG_SZ    Boot Bus Extender\r\n    ImagePath    REG_SZ    C:\\windows\\system32\\drivers\\drv.sys\r\n\r\n";
        assert_eq!(
            parse_reg_query(text),
            [
                ("ErrorControl".into(), "REG_DWORD".into(), "0x1".into()),
                ("Group".into(), "REG_SZ".into(), "Boot Bus Extender".into()),
                (
                    "ImagePath".into(),
                    "REG_SZ".into(),
                    "C:\\windows\\system32\\drivers\\drv.sys".into()
                ),
            ]
        );
    }

    #[test]
    fn services_database_against_the_inf() {
        let inf = b"[Version]\n[Inst.Services]\nAddService = drv, 2, Svc\n[Svc]\nServiceType = 1\nStartType = 0\nErrorControl = 1\nLoadOrderGroup = Boot Bus Extender\nServiceBinary = %12%\\drv.sys\nAddReg = P\n[P]\nHKR, Parameters, Unplug, 0x2, \"all\"\n";
        let reg = |start: &str| {
            vec![
                ("Type".to_owned(), "REG_DWORD".to_owned(), "0x1".to_owned()),
                ("Start".into(), "REG_DWORD".into(), start.to_owned()),
                ("ErrorControl".into(), "REG_DWORD".into(), "0x1".into()),
                ("Group".into(), "REG_SZ".into(), "Boot Bus Extender".into()),
                (
                    "ImagePath".into(),
                    "REG_SZ".into(),
                    "C:\\windows\\system32\\drivers\\drv.sys".into(),
                ),
            ]
        };
        let params = vec![("Unplug".to_owned(), "REG_SZ".to_owned(), "all".to_owned())];
        let ok = service_checks(inf, "drv", &reg("0x0"), &params);
        assert!(ok[0].result.is_ok(), "{ok:?}");
        let wrong_start = service_checks(inf, "drv", &reg("0x3"), &params);
        assert!(wrong_start[0]
            .result
            .as_ref()
            .unwrap_err()
            .contains("Start"));
        let no_param = service_checks(inf, "drv", &reg("0x0"), &[]);
        assert!(no_param[0].result.as_ref().unwrap_err().contains("Unplug"));
    }

    #[test]
    fn command_line() {
        let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(parse_args(&args(&[])), Ok(Some(WineArgs::default())));
        assert_eq!(parse_args(&args(&["--help"])), Ok(None));
        assert_eq!(
            parse_args(&args(&[
                "--sys",
                "/tmp/d.sys",
                "--inf",
                "/tmp/d.inf",
                "--hardware-id",
                "ROOT\\D"
            ])),
            Ok(Some(WineArgs {
                sys: Some("/tmp/d.sys".into()),
                inf: Some("/tmp/d.inf".into()),
                hardware_id: Some("ROOT\\D".into()),
                service: None,
            }))
        );
        assert!(parse_args(&args(&["--inf", "/tmp/d.inf"])).is_err());
        assert!(parse_args(&args(&["--sys"])).is_err());
        assert!(parse_args(&args(&["--hardware-id", "NO ENUMERATOR", "--inf", "x"])).is_err());
        assert!(parse_args(&args(&["--frobnicate"])).is_err());
    }

    #[test]
    fn wine_paths() {
        assert_eq!(
            wine_path(Path::new("/work/target/x.inf")),
            "Z:\\work\\target\\x.inf"
        );
    }
}
