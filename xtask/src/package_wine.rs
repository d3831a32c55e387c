//! The MSI under Wine's msiexec, an independent Windows Installer engine: install, upgrade to a
//! newer build, uninstall, each checked (files, the product's registration, the helper's run,
//! the driver store). Run by `cargo xtask package` after the MSI is built; what Wine cannot show
//! is listed in `installer/README.md`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The product's uninstall registration, where Windows Installer lists installed products.
const UNINSTALL_KEY: &str = r"HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall";
/// The product name of the WiX source.
const PRODUCT_NAME: &str = "Xen PV drivers (xen-pv-rs)";
/// The install folder under `C:\Program Files`.
const INSTALL_DIR: &str = "xen-pv-rs";

/// One MSI to install: its path and version.
pub struct Build<'a> {
    /// The `.msi`.
    pub msi: &'a Path,
    /// Its `ProductVersion`.
    pub version: &'a str,
}

/// Runs the install, upgrade and uninstall in a fresh prefix under `work`; `stage` is the
/// staging folder the MSIs were built from (its files must appear installed, byte for byte).
/// Returns the lines to print; an error names the first failed check.
pub fn run(
    work: &Path,
    stage: &Path,
    first: &Build<'_>,
    upgrade: &Build<'_>,
    infs: &[String],
) -> Result<Vec<String>, String> {
    let _ = fs::remove_dir_all(work);
    fs::create_dir_all(work).map_err(|e| format!("{}: {e}", work.display()))?;
    let prefix = work.join("prefix");
    let mut lines = Vec::new();
    wine(
        &prefix,
        &["wineboot", "-i"],
        &work.join("wineboot.log"),
        300,
    )?;
    lines.push(format!("fresh prefix {}", prefix.display()));

    let installed_dir = prefix.join("drive_c/Program Files").join(INSTALL_DIR);
    for (step, build) in [("install", first), ("upgrade", upgrade)] {
        let log = work.join(format!("{step}.log"));
        let output = msiexec(&prefix, "/i", build.msi, &log, work)?;
        lines.push(format!(
            "{step}: msiexec /i {} /qn exited 0",
            build.msi.file_name().unwrap_or_default().to_string_lossy()
        ));
        for line in output
            .lines()
            .filter(|l| l.starts_with("drvsetup:"))
            .map(str::trim)
        {
            lines.push(format!("  helper: {line}"));
        }
        let msi_log = read_log(&log)?;
        for action in ["SetDriverSetupPath", "DriverInstall"] {
            if !action_succeeded(&msi_log, action) {
                return Err(format!(
                    "{step}: {action} did not end with success (log {})",
                    log.display()
                ));
            }
        }
        lines.push(format!(
            "  {step}: SetDriverSetupPath and DriverInstall returned success"
        ));
        let count = compare_tree(stage, &installed_dir)?;
        lines.push(format!(
            "  files: the {count} staged files are in C:\\Program Files\\{INSTALL_DIR}, byte-identical"
        ));
        let products = registered_products(&prefix, work)?;
        match products.as_slice() {
            [(name, version)] if name == PRODUCT_NAME && version == build.version => lines.push(
                format!("  registry: one product registered, {name} {version}"),
            ),
            other => {
                return Err(format!(
                    "{step}: expected one registered {PRODUCT_NAME} {}, found {other:?}",
                    build.version
                ))
            }
        }
        for inf in infs {
            let staged = staged_copy(&prefix, &stage.join(inf))?
                .ok_or_else(|| format!("{step}: {inf} is not in C:\\windows\\inf"))?;
            lines.push(format!(
                "  driver store: {inf} staged as C:\\windows\\inf\\{staged}"
            ));
        }
    }

    let log = work.join("uninstall.log");
    let output = msiexec(&prefix, "/x", upgrade.msi, &log, work)?;
    lines.push("uninstall: msiexec /x /qn exited 0".into());
    for line in output
        .lines()
        .filter(|l| l.starts_with("drvsetup:"))
        .map(str::trim)
    {
        lines.push(format!("  helper: {line}"));
    }
    if !action_succeeded(&read_log(&log)?, "DriverUninstall") {
        return Err(format!(
            "uninstall: DriverUninstall did not succeed (log {})",
            log.display()
        ));
    }
    if installed_dir.exists() {
        return Err(format!(
            "uninstall: {} is still there",
            installed_dir.display()
        ));
    }
    lines.push(format!("  files: C:\\Program Files\\{INSTALL_DIR} removed"));
    let products = registered_products(&prefix, work)?;
    if !products.is_empty() {
        return Err(format!("uninstall: still registered: {products:?}"));
    }
    lines.push("  registry: no product registered".into());
    for inf in infs {
        if let Some(staged) = staged_copy(&prefix, &stage.join(inf))? {
            return Err(format!("uninstall: {inf} is still staged as {staged}"));
        }
        lines.push(format!("  driver store: {inf} removed"));
    }
    let _ = Command::new("wineserver")
        .arg("-k")
        .env("WINEPREFIX", &prefix)
        .status();
    Ok(lines)
}

fn wine_env(cmd: &mut Command, prefix: &Path) {
    cmd.env("WINEPREFIX", prefix)
        .env("WINEARCH", "win64")
        .env("WINEDEBUG", "-all")
        // No Mono or Gecko installer, no menu entries, no display.
        .env("WINEDLLOVERRIDES", "mscoree,mshtml=;winemenubuilder.exe=d")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .stdin(Stdio::null());
}

/// Runs a Wine program with a time limit; its output goes to `log`; returns the output.
fn wine(prefix: &Path, args: &[&str], log: &Path, seconds: u64) -> Result<String, String> {
    let out_path = log.with_extension("out");
    let out = fs::File::create(&out_path).map_err(|e| format!("{}: {e}", out_path.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("{}: {e}", out_path.display()))?;
    let mut cmd = Command::new(args[0]);
    cmd.args(&args[1..]).stdout(out).stderr(err);
    wine_env(&mut cmd, prefix);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {} (install wine): {e}", args[0]))?;
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if start.elapsed() > Duration::from_secs(seconds) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{} did not finish in {seconds} s", args.join(" ")));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = fs::read_to_string(&out_path).unwrap_or_default();
    if !status.success() {
        return Err(format!(
            "{} failed ({status}); output in {}:\n{}",
            args.join(" "),
            out_path.display(),
            text.lines().rev().take(10).collect::<Vec<_>>().join("\n")
        ));
    }
    Ok(text)
}

/// `msiexec <verb> <msi> /qn /l*v <log>`; returns the output (the helper's lines among it).
fn msiexec(
    prefix: &Path,
    verb: &str,
    msi: &Path,
    log: &Path,
    work: &Path,
) -> Result<String, String> {
    let msi = windows_path(msi);
    let log_arg = windows_path(log);
    wine(
        prefix,
        &["wine", "msiexec", verb, &msi, "/qn", "/l*v", &log_arg],
        &work.join(format!("msiexec{}", verb.replace('/', "-"))),
        300,
    )
}

/// A Unix path as Wine sees it through drive Z:.
fn windows_path(path: &Path) -> String {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    format!("Z:{}", absolute.display()).replace('/', "\\")
}

fn read_log(log: &Path) -> Result<String, String> {
    let bytes = fs::read(log).map_err(|e| format!("{}: {e}", log.display()))?;
    // Windows Installer writes its log in the ANSI code page or in UTF-16LE with a BOM.
    if bytes.starts_with(&[0xff, 0xfe]) {
        let units: Vec<u16> = bytes[2..]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        return Ok(String::from_utf16_lossy(&units));
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Whether the Windows Installer log says `action` ended with return value 1 (success).
pub fn action_succeeded(log: &str, action: &str) -> bool {
    log.lines().any(|l| {
        l.contains("Action ended")
            && l.contains(&format!(": {action}."))
            && l.trim_end().ends_with("Return value 1.")
    })
}

/// Checks every file under `stage` is installed (packages under `drivers\\`) with the same
/// bytes; returns the count.
fn compare_tree(stage: &Path, installed: &Path) -> Result<usize, String> {
    let mut count = 0;
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        let dir = stage.join(&rel);
        for entry in fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
            let entry = entry.map_err(|e| e.to_string())?;
            let rel_path = rel.join(entry.file_name());
            if entry.path().is_dir() {
                pending.push(rel_path);
                continue;
            }
            // The staging folder holds the packages at its top; the MSI puts them in `drivers\`.
            let there = if rel.as_os_str().is_empty() {
                installed.join(&rel_path)
            } else {
                installed.join("drivers").join(&rel_path)
            };
            let same = fs::read(&there).ok() == fs::read(entry.path()).ok();
            if !same {
                return Err(format!(
                    "{} is missing or differs from the staged file",
                    there.display()
                ));
            }
            count += 1;
        }
    }
    Ok(count)
}

/// The products registered under the uninstall key: (DisplayName, DisplayVersion) of each
/// subkey with our product name.
fn registered_products(prefix: &Path, work: &Path) -> Result<Vec<(String, String)>, String> {
    let out = wine(
        prefix,
        &["wine", "reg", "query", UNINSTALL_KEY, "/s"],
        &work.join("reg-query"),
        120,
    )?;
    Ok(parse_products(&out))
}

/// Reads `reg query /s` output into (DisplayName, DisplayVersion) of each key naming our product.
pub fn parse_products(text: &str) -> Vec<(String, String)> {
    let mut products = Vec::new();
    let mut name = None;
    let mut version = None;
    let mut flush = |name: &mut Option<String>, version: &mut Option<String>| {
        if let Some(n) = name.take() {
            if n == PRODUCT_NAME {
                products.push((n, version.take().unwrap_or_default()));
            }
        }
        *version = None;
    };
    for line in text.lines() {
        let line = line.trim_end();
        if line.starts_with("HKEY_") {
            flush(&mut name, &mut version);
            continue;
        }
        let mut parts = line.trim_start().splitn(3, "    ");
        let (Some(key), Some(_kind), Some(value)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        match key {
            "DisplayName" => name = Some(value.trim().to_owned()),
            "DisplayVersion" => version = Some(value.trim().to_owned()),
            _ => {}
        }
    }
    flush(&mut name, &mut version);
    products
}

/// The name of the file in the prefix's `C:\windows\inf` whose bytes are the INF's, if any.
fn staged_copy(prefix: &Path, inf: &Path) -> Result<Option<String>, String> {
    let wanted = fs::read(inf).map_err(|e| format!("{}: {e}", inf.display()))?;
    let dir = prefix.join("drive_c/windows/inf");
    for entry in fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let entry = entry.map_err(|e| e.to_string())?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.to_ascii_lowercase().ends_with(".inf")
            && fs::read(entry.path()).ok() == Some(wanted.clone())
        {
            return Ok(Some(name));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_from_reg_query() {
        let text = "\r\nHKEY_LOCAL_MACHINE\\Software\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\{A}\r\n    \
                    DisplayName    REG_SZ    Xen PV drivers (xen-pv-rs)\r\n    DisplayVersion    REG_SZ    0.1.1\r\n\r\n\
                    HKEY_LOCAL_MACHINE\\Software\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\Other\r\n    \
                    DisplayName    REG_SZ    Something else\r\n";
        assert_eq!(
            parse_products(text),
            vec![(PRODUCT_NAME.to_string(), "0.1.1".to_string())]
        );
        assert!(parse_products("").is_empty());
    }

    #[test]
    fn action_results_in_the_log() {
        let log = "Action ended 4:16:47: DriverInstall. Return value 1.\r\n\
                   Action ended 4:16:47: DriverUninstall. Return value 3.\r\n";
        assert!(action_succeeded(log, "DriverInstall"));
        assert!(!action_succeeded(log, "DriverUninstall"));
        assert!(!action_succeeded(log, "Driver"));
    }
}
