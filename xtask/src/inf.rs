//! `cargo xtask inf`: stamps every driver's `.inx` template into the `.inf` that ships next to
//! its `.sys` (by default in `target/drivers/x64/`) and checks the result with win-inf's checker.
//! `cargo xtask drivers` calls [`stamp_drivers`] after linking.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use win_inf::{check_bytes, stamp, Arch, Date, StampParams};

/// A driver package: its name (the `.sys`, `.inf` and `.cat` stem), template and crate manifest.
pub struct Package {
    /// `xenpci` for `xenpci.sys`, `xenpci.inf`, `xenpci.cat`.
    pub name: &'static str,
    /// The template, relative to the repository root.
    pub template: &'static str,
    /// The driver crate's manifest, whose `version` gives `DriverVer`'s version.
    pub manifest: &'static str,
}

/// Every driver package the suite builds.
pub const PACKAGES: &[Package] = &[Package {
    name: "xenpci",
    template: "xenpci/driver/xenpci.inx",
    manifest: "xenpci/driver/Cargo.toml",
}];

/// The default output folder of the x64 driver packages, relative to the repository root.
pub const DEFAULT_OUT: &str = "target/drivers/x64";

/// The repository root (the parent of the xtask crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the repository")
        .to_path_buf()
}

/// `DriverVer`'s date: `SOURCE_DATE_EPOCH` when set (reproducible builds), else the date of the
/// last commit, else today (UTC).
pub fn stamp_date(root: &Path) -> Result<Date, String> {
    if let Ok(text) = std::env::var("SOURCE_DATE_EPOCH") {
        let seconds = text
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("SOURCE_DATE_EPOCH must be a number of seconds, got {text:?}"))?;
        return Ok(Date::from_unix_seconds(seconds));
    }
    let commit = Command::new("git")
        .args(["log", "-1", "--format=%ct"])
        .current_dir(root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|t| t.trim().parse::<u64>().ok());
    let seconds = commit.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    Ok(Date::from_unix_seconds(seconds))
}

/// `DriverVer`'s version from a crate manifest's `version = "x.y.z"`: `x.y.z.0`.
pub fn manifest_version(manifest: &str) -> Result<[u16; 4], String> {
    let line = manifest
        .lines()
        .find(|l| l.split('=').next().is_some_and(|k| k.trim() == "version"))
        .ok_or("the manifest has no version")?;
    let value = line
        .split_once('=')
        .map(|(_, v)| v.trim().trim_matches('"'))
        .unwrap_or("");
    let core = value.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() != 3 {
        return Err(format!("version {value:?} is not x.y.z"));
    }
    let mut version = [0u16; 4];
    for (slot, part) in version.iter_mut().zip(&parts) {
        *slot = part
            .parse()
            .map_err(|_| format!("version {value:?}: {part:?} is not a number up to 65535"))?;
    }
    Ok(version)
}

/// Stamps `template` (text of the `.inx`) for package `name` and checks the result.
pub fn stamp_and_check(
    template: &str,
    name: &str,
    date: Date,
    version: [u16; 4],
) -> Result<String, String> {
    let params = StampParams {
        arch: Arch::Amd64,
        date,
        version,
        catalog: format!("{name}.cat"),
    };
    let text = stamp(template, &params).map_err(|e| format!("stamping {name}: {e}"))?;
    check_bytes(text.as_bytes(), Arch::Amd64)
        .map_err(|e| format!("{name}.inf fails the INF checker:\n{e}"))?;
    Ok(text)
}

/// Stamps and checks every package's INF into `out_dir`; returns the files written.
pub fn stamp_drivers(out_dir: &Path) -> Result<Vec<PathBuf>, String> {
    let root = repo_root();
    let date = stamp_date(&root)?;
    std::fs::create_dir_all(out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let mut written = Vec::new();
    for package in PACKAGES {
        let read = |rel: &str| {
            std::fs::read_to_string(root.join(rel)).map_err(|e| format!("cannot read {rel}: {e}"))
        };
        let version = manifest_version(&read(package.manifest)?)
            .map_err(|e| format!("{}: {e}", package.manifest))?;
        let text = stamp_and_check(&read(package.template)?, package.name, date, version)?;
        let path = out_dir.join(format!("{}.inf", package.name));
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// `cargo xtask inf [--out DIR]`.
pub fn main(out: Option<&str>) -> std::process::ExitCode {
    let out_dir = out.map_or_else(|| repo_root().join(DEFAULT_OUT), PathBuf::from);
    match stamp_drivers(&out_dir) {
        Ok(files) => {
            for file in files {
                println!("inf: wrote {} (checked)", file.display());
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("inf: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_manifests() {
        assert_eq!(
            manifest_version("[package]\nname = \"x\"\nversion = \"1.2.3\"\n"),
            Ok([1, 2, 3, 0])
        );
        assert_eq!(
            manifest_version("version = \"0.1.0-rc.1\""),
            Ok([0, 1, 0, 0])
        );
        assert!(manifest_version("version = \"1.2\"").is_err());
        assert!(manifest_version("version = \"1.2.70000\"").is_err());
        assert!(manifest_version("name = \"x\"").is_err());
    }

    #[test]
    fn every_package_stamps_and_passes_the_checker() {
        let root = repo_root();
        let date = Date {
            year: 2026,
            month: 12,
            day: 7,
        };
        for package in PACKAGES {
            let template = std::fs::read_to_string(root.join(package.template)).unwrap();
            let text = stamp_and_check(&template, package.name, date, [0, 1, 0, 0]).unwrap();
            assert!(text.contains("DriverVer   = 12/07/2026,0.1.0.0\r\n"));
            assert!(text.contains(&format!("CatalogFile = {}.cat\r\n", package.name)));
            assert!(!text.contains("$ARCH$"));
        }
    }
}
