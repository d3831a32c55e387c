//! The host side: running commands, Debian packages, and unpacking Xen and the dom0 kernel.
//!
//! The hypervisor and kernel packages are not installed (that would touch the host's boot setup):
//! they are downloaded with `apt-get download` and unpacked with `dpkg -x` into the cache.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// An error of the harness: one readable message.
pub type Error = String;
/// A result of the harness.
pub type Result<T> = std::result::Result<T, Error>;

/// Packages installed on the host. Xen's tools are installed only to copy them, with their
/// libraries, into dom0's initramfs; nothing Xen runs on the host.
pub const HOST_PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "busybox-static",
    "kmod",
    "xen-utils-4.17",
    "xenstore-utils",
];

/// The hypervisor package, unpacked and never installed.
pub const HYPERVISOR_PACKAGE: &str = "xen-hypervisor-4.17-amd64";
/// The meta-package whose dependency names the dom0 kernel package, unpacked and never installed.
pub const KERNEL_META_PACKAGE: &str = "linux-image-amd64";

/// Runs a command and returns its standard output; a failure includes its standard error.
pub fn output(cmd: &mut Command) -> Result<String> {
    let shown = describe(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "{shown} failed ({}): {}",
            out.status,
            last_lines(&stderr, 15)
        ))
    }
}

/// Runs a command with its output going to `log` (appended); a failure quotes the log's end.
pub fn run_logged(cmd: &mut Command, log: &Path) -> Result<()> {
    let shown = describe(cmd);
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    let file2 = file.try_clone().map_err(|e| e.to_string())?;
    let status = cmd
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(file2)
        .status()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        let text = fs::read_to_string(log).unwrap_or_default();
        Err(format!(
            "{shown} failed ({status}); end of {}:\n{}",
            log.display(),
            last_lines(&text, 15)
        ))
    }
}

/// Runs a command with its output on this terminal.
pub fn run_visible(cmd: &mut Command) -> Result<()> {
    let shown = describe(cmd);
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status})"))
    }
}

/// The command as a person would type it.
pub fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// The last `n` non-empty lines of a text.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Whether this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| parse_effective_uid(&s))
        .is_some_and(|uid| uid == 0)
}

/// The effective uid in the text of `/proc/self/status` (`Uid: real effective saved fs`).
fn parse_effective_uid(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// The packages among `packages` that are not installed.
pub fn missing_packages(packages: &[&str]) -> Vec<String> {
    packages
        .iter()
        .filter(|p| {
            let status = Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .stderr(Stdio::null())
                .output();
            !status.is_ok_and(|o| String::from_utf8_lossy(&o.stdout) == "install ok installed")
        })
        .map(|p| (*p).to_owned())
        .collect()
}

/// The installed versions of packages, as `name=version` words (for cache keys).
pub fn package_versions(packages: &[&str]) -> String {
    packages
        .iter()
        .map(|p| {
            let version = output(Command::new("dpkg-query").args(["-W", "-f=${Version}", p]))
                .unwrap_or_else(|_| "?".into());
            format!("{p}={version}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Installs what is missing of [`HOST_PACKAGES`] with apt-get; returns what it installed.
pub fn ensure_host_packages(log: &Path) -> Result<Vec<String>> {
    ensure_packages(HOST_PACKAGES, log)
}

/// Installs what is missing of `packages` with apt-get (as root); returns what it installed.
pub fn ensure_packages(packages: &[&str], log: &Path) -> Result<Vec<String>> {
    let missing = missing_packages(packages);
    if missing.is_empty() {
        return Ok(missing);
    }
    if !is_root() {
        return Err(format!(
            "packages missing: {}; run as root so they can be installed, or run \
             `apt-get install --no-install-recommends {}`",
            missing.join(" "),
            missing.join(" ")
        ));
    }
    println!(
        "  installing {} (log: {})",
        missing.join(" "),
        log.display()
    );
    apt_update(log)?;
    run_logged(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing),
        log,
    )?;
    let still = missing_packages(packages);
    if !still.is_empty() {
        return Err(format!("apt-get did not install: {}", still.join(" ")));
    }
    Ok(missing)
}

fn apt_update(log: &Path) -> Result<()> {
    run_logged(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["update", "-q"]),
        log,
    )
}

/// An exclusive hold on the lab's cache (several people may share a checkout), released when
/// dropped. A lock left by a process that is gone is taken over.
#[derive(Debug)]
pub struct CacheLock {
    path: PathBuf,
}

impl Drop for CacheLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Takes the cache lock, waiting up to 30 minutes for another run that holds it.
pub fn lock_cache(cache: &Path) -> Result<CacheLock> {
    let path = cache.join("lock");
    let deadline = Instant::now() + Duration::from_secs(30 * 60);
    let mut told = false;
    loop {
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut file) => {
                write!(file, "{}", std::process::id())
                    .map_err(|e| format!("write {}: {e}", path.display()))?;
                return Ok(CacheLock { path });
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let holder = fs::read_to_string(&path)
                    .ok()
                    .and_then(|s| s.trim().parse::<u32>().ok());
                let alive = match holder {
                    Some(pid) => Path::new(&format!("/proc/{pid}")).exists(),
                    // Just created, the pid not written yet: give its owner a moment.
                    None => fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .is_ok_and(|t| {
                            SystemTime::now().duration_since(t).unwrap_or_default()
                                < Duration::from_secs(10)
                        }),
                };
                if !alive {
                    let _ = fs::remove_file(&path);
                    continue;
                }
                if !told {
                    println!("  waiting for another lab run (pid {holder:?}) that is preparing the cache");
                    told = true;
                }
                if Instant::now() > deadline {
                    return Err(format!("{} is still held after 30 minutes", path.display()));
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(e) => return Err(format!("create {}: {e}", path.display())),
        }
    }
}

/// The first `linux-image-*` package that `apt-cache depends` lists as a dependency.
pub fn parse_kernel_dependency(depends: &str) -> Option<String> {
    depends.lines().find_map(|line| {
        let name = line.trim().strip_prefix("Depends:")?.trim();
        (name.starts_with("linux-image-") && !name.starts_with('<')).then(|| name.to_owned())
    })
}

/// What the cache holds once Xen and the kernel are unpacked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// The multiboot hypervisor image (Xen's gzipped image, unzipped: QEMU needs the ELF).
    pub xen: PathBuf,
    /// The dom0 kernel.
    pub kernel: PathBuf,
    /// The kernel's version (`uname -r`), naming `lib/modules/<version>`.
    pub kernel_version: String,
    /// The root where the packages were unpacked (`boot/`, `lib/modules/`).
    pub root: PathBuf,
    /// The packages unpacked, with versions.
    pub packages: String,
}

const STAMP: &str = "unpacked.stamp";

/// Reads a finished unpack from the cache.
fn read_unpacked(cache: &Path) -> Option<Unpacked> {
    let stamp = fs::read_to_string(cache.join(STAMP)).ok()?;
    let mut lines = stamp.lines();
    let kernel_version = lines.next()?.to_owned();
    let packages = lines.next()?.to_owned();
    let root = cache.join("unpacked");
    let unpacked = Unpacked {
        xen: cache.join("xen.elf"),
        kernel: root.join(format!("boot/vmlinuz-{kernel_version}")),
        kernel_version,
        root,
        packages,
    };
    (unpacked.xen.is_file() && unpacked.kernel.is_file()).then_some(unpacked)
}

/// Downloads and unpacks the hypervisor and the dom0 kernel into `cache`, unless already done.
/// Returns what is there and whether it did anything.
pub fn ensure_unpacked(cache: &Path, log: &Path) -> Result<(Unpacked, bool)> {
    if let Some(done) = read_unpacked(cache) {
        return Ok((done, false));
    }
    let depends = |cache_hint: &str| -> Result<Option<String>> {
        let text = output(Command::new("apt-cache").args(["depends", KERNEL_META_PACKAGE]))
            .map_err(|e| format!("{e} ({cache_hint})"))?;
        Ok(parse_kernel_dependency(&text))
    };
    let kernel_package = match depends("before apt-get update")? {
        Some(name) => name,
        None => {
            if !is_root() {
                return Err(format!(
                    "apt-cache does not know {KERNEL_META_PACKAGE}; run `apt-get update` as root"
                ));
            }
            apt_update(log)?;
            depends("after apt-get update")?.ok_or_else(|| {
                format!("`apt-cache depends {KERNEL_META_PACKAGE}` names no linux-image package")
            })?
        }
    };
    let debs = cache.join("debs");
    let _ = fs::remove_dir_all(&debs);
    fs::create_dir_all(&debs).map_err(|e| format!("create {}: {e}", debs.display()))?;
    println!("  downloading {HYPERVISOR_PACKAGE} and {kernel_package}");
    run_logged(
        Command::new("apt-get").current_dir(&debs).args([
            "download",
            "-q",
            HYPERVISOR_PACKAGE,
            &kernel_package,
        ]),
        log,
    )?;
    let staging = cache.join("unpacked.tmp");
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging).map_err(|e| format!("create {}: {e}", staging.display()))?;
    let mut names = Vec::new();
    for entry in fs::read_dir(&debs).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_some_and(|e| e == "deb") {
            run_logged(Command::new("dpkg").arg("-x").arg(&path).arg(&staging), log)?;
            names.push(
                path.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    names.sort();
    if names.len() != 2 {
        return Err(format!(
            "expected 2 packages in {}, found {names:?}",
            debs.display()
        ));
    }

    let modules = staging.join("lib/modules");
    let versions: Vec<String> = fs::read_dir(&modules)
        .map_err(|e| format!("read {}: {e}", modules.display()))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    let [kernel_version] = versions.as_slice() else {
        return Err(format!(
            "expected one kernel in {}, found {versions:?}",
            modules.display()
        ));
    };
    // Debian's package leaves modules.dep to its postinst; depmod writes it here.
    run_logged(
        Command::new("depmod")
            .arg("-b")
            .arg(&staging)
            .arg(kernel_version),
        log,
    )?;

    let boot = staging.join("boot");
    let xen_gz = fs::read_dir(&boot)
        .map_err(|e| format!("read {}: {e}", boot.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with("xen-") && name.ends_with(".gz")
        })
        .ok_or_else(|| format!("no xen-*.gz in {}", boot.display()))?;
    let xen = cache.join("xen.elf");
    let elf = Command::new("gzip")
        .arg("-dc")
        .arg(&xen_gz)
        .output()
        .map_err(|e| format!("cannot run gzip: {e}"))?;
    if !elf.status.success() || !elf.stdout.starts_with(b"\x7fELF") {
        return Err(format!(
            "{} did not unzip to an ELF image",
            xen_gz.display()
        ));
    }
    fs::write(&xen, &elf.stdout).map_err(|e| format!("write {}: {e}", xen.display()))?;

    let root = cache.join("unpacked");
    let _ = fs::remove_dir_all(&root);
    fs::rename(&staging, &root).map_err(|e| format!("rename to {}: {e}", root.display()))?;
    fs::write(
        cache.join(STAMP),
        format!("{kernel_version}\n{}\n", names.join(" ")),
    )
    .map_err(|e| format!("write the stamp: {e}"))?;
    read_unpacked(cache)
        .map(|u| (u, true))
        .ok_or_else(|| "the unpacked cache is incomplete".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_dependency_from_apt_cache() {
        let text = "linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n";
        assert_eq!(
            parse_kernel_dependency(text).as_deref(),
            Some("linux-image-6.1.0-56-amd64")
        );
        let virtual_first = "linux-image-amd64\n  Depends: <linux-image-virtual>\n  Depends: linux-image-6.1.0-9-amd64\n";
        assert_eq!(
            parse_kernel_dependency(virtual_first).as_deref(),
            Some("linux-image-6.1.0-9-amd64")
        );
        assert_eq!(parse_kernel_dependency("linux-image-amd64\n"), None);
        assert_eq!(
            parse_kernel_dependency("  Depends: initramfs-tools\n"),
            None
        );
    }

    #[test]
    fn effective_uid() {
        let status = "Name:\tx\nUid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\n";
        assert_eq!(parse_effective_uid(status), Some(0));
        assert_eq!(parse_effective_uid("Uid:\t5\t7\t7\t7\n"), Some(7));
        assert_eq!(parse_effective_uid("Name: x\n"), None);
    }

    #[test]
    fn cache_lock_is_exclusive_and_taken_over_from_dead_holders() {
        let dir = std::env::temp_dir().join(format!("xtask-lock-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let lock = lock_cache(&dir).unwrap();
        let text = fs::read_to_string(dir.join("lock")).unwrap();
        assert_eq!(text, std::process::id().to_string());
        drop(lock);
        assert!(!dir.join("lock").exists());
        // A holder that no longer exists (pid beyond the kernel's maximum).
        fs::write(dir.join("lock"), "4294967295").unwrap();
        let lock = lock_cache(&dir).unwrap();
        drop(lock);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn last_lines_skips_blank_lines() {
        assert_eq!(last_lines("a\n\nb\nc\n\n", 2), "b\nc");
        assert_eq!(last_lines("a", 5), "a");
    }
}
