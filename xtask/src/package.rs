//! `cargo xtask package`: from a fresh clone to a test-signed MSI, everything verified.
//!
//! 1. install the Debian packages of signing and the installer (as root, when missing);
//! 2. `cargo xtask drivers`: link every driver, check the images, stamp and check the INFs;
//! 3. per driver package (`target/package/stage/<name>/`): the catalog generated from the INF
//!    and the files its `[SourceDisksFiles]` names (hardware IDs from its models sections),
//!    test-signed; the `.sys` test-signed; then verified: osslsigncode (signatures, and each
//!    `.sys` against its catalog), the catalog parsed back and compared with the files, and the
//!    independent asn1crypto checker (`signing/tests/check_catalog.py`);
//! 4. the installer's helper `drvsetup.exe` checked by clippy (`-D warnings`) and built for
//!    Windows by the Debian rust-web lane, signed;
//! 5. the WiX source rendered, built by wixl, signed, verified; its tables checked
//!    (xen-installer's `check`); each `.sys` extracted from it is byte-identical to the staged
//!    signed one, whose Authenticode hash is the linked image's;
//! 6. under Wine's msiexec in a fresh prefix: the MSI installed, upgraded by a build one patch
//!    version newer, uninstalled, each step checked ([`crate::package_wine`]);
//! 7. the attestation-signing submission CAB (`gcab`) of the unsigned packages with symbols;
//! 8. the MSI's path printed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use xen_installer::{self as installer, DriverPackage, Tables};
use xen_signing::catalog::{self, CatalogSpec, OsTarget, PackageFile};
use xen_signing::pe_hash;
use xen_signing::tools::TestCertificate;

use crate::host;

/// Debian packages of this command beyond the driver lane's.
pub const PACKAGES: &[&str] = &[
    "wine",
    "wine64",
    "openssl",
    "osslsigncode",
    "python3-asn1crypto",
    "wixl",
    "msitools",
    "gcab",
];

/// Entry point of `cargo xtask package`.
pub fn main() -> ExitCode {
    match run() {
        Ok(msi) => {
            println!("package: done: {}", msi.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("package: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    write(to, &read(from)?)
}

/// `version` of `[workspace.package]` in the root manifest.
pub fn workspace_version(manifest: &str) -> Result<String, String> {
    let mut in_section = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_section = line == "[workspace.package]";
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            if in_section && key.trim() == "version" {
                let version = value.trim().trim_matches('"');
                let parts: Vec<&str> = version.split('.').collect();
                if parts.len() != 3 || !parts.iter().all(|p| p.parse::<u16>().is_ok()) {
                    return Err(format!("workspace version {version:?} is not x.y.z"));
                }
                return Ok(version.to_owned());
            }
        }
    }
    Err("the root manifest has no [workspace.package] version".into())
}

/// The files a driver package ships besides its INF (`[SourceDisksFiles]` keys) and the hardware
/// IDs of its models sections, read from the stamped INF.
pub fn package_contents(inf_text: &str) -> Result<(Vec<String>, Vec<String>), String> {
    let inf = win_inf::parse::parse(inf_text).map_err(|e| format!("{e:?}"))?;
    let files: Vec<String> = inf
        .section("SourceDisksFiles")
        .ok_or("no [SourceDisksFiles]")?
        .entries
        .iter()
        .filter_map(|e| e.key.clone())
        .collect();
    let mut ids = Vec::new();
    for entry in &inf
        .section("Manufacturer")
        .ok_or("no [Manufacturer]")?
        .entries
    {
        let Some((models, decorations)) = entry.values.split_first() else {
            continue;
        };
        let names = std::iter::once(models.clone())
            .chain(decorations.iter().map(|d| format!("{models}.{d}")));
        for name in names {
            for model in inf
                .section(&name)
                .map(|s| s.entries.as_slice())
                .unwrap_or(&[])
            {
                for id in model.values.iter().skip(1) {
                    if !ids
                        .iter()
                        .any(|known: &String| known.eq_ignore_ascii_case(id))
                    {
                        ids.push(id.clone());
                    }
                }
            }
        }
    }
    if files.is_empty() || ids.is_empty() {
        return Err("the INF names no files or no hardware IDs".into());
    }
    Ok((files, ids))
}

fn run() -> Result<PathBuf, String> {
    let root = crate::inf::repo_root();
    let out = root.join("target/package");
    let stage = out.join("stage");
    let _ = fs::remove_dir_all(&stage);
    fs::create_dir_all(&stage).map_err(|e| format!("{}: {e}", stage.display()))?;

    println!("package: packages ({})", PACKAGES.join(" "));
    let installed = host::ensure_packages(PACKAGES, &out.join("setup.log"))?;
    if !installed.is_empty() {
        println!("  installed {}", installed.join(" "));
    }

    println!("package: cargo xtask drivers");
    let exe = std::env::current_exe().map_err(|e| format!("cannot find xtask: {e}"))?;
    host::run_visible(Command::new(exe).arg("drivers").current_dir(&root))?;

    let drivers = root.join(crate::inf::DEFAULT_OUT);
    let certificate = TestCertificate::ensure(&out.join("test-signing"))?;
    println!(
        "package: test certificate {} (key beside it, never committed)",
        certificate.certificate.display()
    );
    let seconds = stamp_seconds(&root);
    let checker = root.join("signing/tests/check_catalog.py");
    let mut packages = Vec::new();
    let mut linked_images = Vec::new();
    for package in crate::inf::PACKAGES {
        let name = package.name;
        println!("package: {name}: catalog, signatures, verification");
        let dir = stage.join(name);
        let inf_path = drivers.join(format!("{name}.inf"));
        let inf_bytes = read(&inf_path)?;
        let inf_text = String::from_utf8(inf_bytes.clone())
            .map_err(|_| format!("{}: not UTF-8", inf_path.display()))?;
        let (files, hardware_ids) =
            package_contents(&inf_text).map_err(|e| format!("{}: {e}", inf_path.display()))?;
        let mut members = vec![PackageFile {
            name: format!("{name}.inf"),
            contents: inf_bytes.clone(),
        }];
        copy(&inf_path, &dir.join(format!("{name}.inf")))?;
        for file in &files {
            members.push(PackageFile {
                name: file.clone(),
                contents: read(&drivers.join(file))?,
            });
        }
        let unsigned_cat = out.join(format!("unsigned/{name}.cat"));
        let spec = CatalogSpec {
            files: members.clone(),
            hardware_ids,
            os: OsTarget::windows10_x64(),
            time_unix_seconds: seconds,
        };
        write(
            &unsigned_cat,
            &catalog::build(&spec).map_err(|e| e.to_string())?,
        )?;
        let cat = dir.join(format!("{name}.cat"));
        certificate.sign(&unsigned_cat, &cat, &format!("{name} driver package"))?;
        let mut staged_files = vec![format!("{name}.inf"), format!("{name}.cat")];
        for file in &files {
            let target = dir.join(file);
            if catalog::hash_kind_of(file) == catalog::HashKind::PeImage {
                certificate.sign(&drivers.join(file), &target, name)?;
                certificate.verify(&target)?;
                certificate.verify_in_catalog(&cat, &target)?;
                println!("  {file}: signed; osslsigncode verifies it and finds it in {name}.cat");
                linked_images.push((drivers.join(file), target.clone()));
            } else {
                copy(&drivers.join(file), &target)?;
            }
            staged_files.push(file.clone());
        }
        certificate.verify(&cat)?;
        let parsed = catalog::parse(&read(&cat)?).map_err(|e| e.to_string())?;
        let mut on_disk = Vec::new();
        for member in &members {
            on_disk.push(PackageFile {
                name: member.name.clone(),
                contents: read(&dir.join(&member.name))?,
            });
        }
        let problems = catalog::mismatches(&parsed, &on_disk);
        if !problems.is_empty() || parsed.signers != 1 {
            return Err(format!(
                "{name}.cat does not match the package ({} signers): {problems:?}",
                parsed.signers
            ));
        }
        println!(
            "  {name}.cat: signed, {} members ({} files x SHA-1/SHA-256), attributes {:?}",
            parsed.members.len(),
            members.len(),
            parsed.attributes
        );
        let mut check = Command::new("/usr/bin/python3");
        check.arg(&checker).arg(&cat);
        for member in &members {
            check.arg(dir.join(&member.name));
        }
        let report = host::output(&mut check)?;
        println!(
            "  independent check (asn1crypto): {}",
            report.lines().last().unwrap_or("")
        );
        packages.push(DriverPackage {
            name: name.to_owned(),
            files: staged_files,
        });
    }

    println!("package: drvsetup.exe (the installer's driver helper)");
    let helper = build_helper(&root)?;
    let staged_helper = stage.join(installer::HELPER_FILE);
    certificate.sign(&helper, &staged_helper, "xen-pv-rs driver setup")?;
    certificate.verify(&staged_helper)?;
    copy(
        &certificate.certificate_der,
        &stage.join(installer::CERTIFICATE_FILE),
    )?;

    let manifest = String::from_utf8(read(&root.join("Cargo.toml"))?)
        .map_err(|_| "Cargo.toml is not UTF-8".to_string())?;
    let version = workspace_version(&manifest)?;
    println!("package: MSI {version} (wixl)");
    let template = String::from_utf8(read(&root.join(installer::WXS))?)
        .map_err(|_| "the WiX source is not UTF-8".to_string())?;
    let wxs = out.join("xen-pv-rs.wxs");
    write(&wxs, installer::render(&template, &packages)?.as_bytes())?;
    let unsigned_msi = out.join("unsigned/xen-pv-rs.msi");
    installer::build(&wxs, &version, &stage, &unsigned_msi)?;
    let msi = out.join(format!("xen-pv-rs-{version}-x64.msi"));
    certificate.sign(&unsigned_msi, &msi, "Xen PV drivers (xen-pv-rs)")?;
    certificate.verify(&msi)?;
    println!("  signed; osslsigncode verifies it");
    let tables = Tables::export(&msi)?;
    let problems = installer::check(&tables, &version, &packages);
    if !problems.is_empty() {
        return Err(format!("the MSI's tables:\n  {}", problems.join("\n  ")));
    }
    println!(
        "  tables: {} files, {} components, custom actions and sequence, upgrade code {}, \
         version {version}: ok",
        tables.file.rows.len(),
        tables.component.rows.len(),
        installer::UPGRADE_CODE
    );
    let extracted_dir = out.join("extracted");
    let _ = fs::remove_dir_all(&extracted_dir);
    let extracted = installer::extract(&msi, &extracted_dir)?;
    for (linked, signed) in &linked_images {
        let file_name = signed.file_name().unwrap_or_default();
        let inside = extracted
            .iter()
            .find(|p| p.file_name() == Some(file_name))
            .ok_or_else(|| format!("{} is not in the MSI", file_name.to_string_lossy()))?;
        let (inside_bytes, signed_bytes, linked_bytes) =
            (read(inside)?, read(signed)?, read(linked)?);
        if inside_bytes != signed_bytes {
            return Err(format!("{} differs from the staged one", inside.display()));
        }
        let hash = |b: &[u8]| pe_hash::authenticode_sha256(b).map_err(|e| e.to_string());
        if hash(&inside_bytes)? != hash(&linked_bytes)? {
            return Err(format!("{} is not the linked image", inside.display()));
        }
        println!(
            "  {}: byte-identical to the signed image; same Authenticode hash as {}",
            file_name.to_string_lossy(),
            linked.display()
        );
    }

    let upgrade_version = next_patch(&version)?;
    println!("package: Wine's msiexec: install {version}, upgrade to {upgrade_version}, uninstall");
    let upgrade_msi = out.join(format!("upgrade-test/xen-pv-rs-{upgrade_version}-x64.msi"));
    installer::build(
        &wxs,
        &upgrade_version,
        &stage,
        &out.join("unsigned/upgrade.msi"),
    )?;
    certificate.sign(
        &out.join("unsigned/upgrade.msi"),
        &upgrade_msi,
        "Xen PV drivers (xen-pv-rs)",
    )?;
    let infs: Vec<String> = packages
        .iter()
        .map(|p| format!("{}/{}.inf", p.name, p.name))
        .collect();
    let report = crate::package_wine::run(
        &out.join("wine"),
        &stage,
        &crate::package_wine::Build {
            msi: &msi,
            version: &version,
        },
        &crate::package_wine::Build {
            msi: &upgrade_msi,
            version: &upgrade_version,
        },
        &infs,
    )?;
    for line in report {
        println!("  {line}");
    }

    println!("package: attestation-signing submission CAB (gcab)");
    let cab = submission_cab(&root, &out)?;
    println!(
        "  {} (unsigned: to be signed with the EV certificate); read back with gcab: every \
         file present and identical",
        cab.display()
    );
    Ok(msi)
}

/// `x.y.z` → `x.y.(z+1)`: the "newer build" of the upgrade test.
pub fn next_patch(version: &str) -> Result<String, String> {
    let (head, patch) = version
        .rsplit_once('.')
        .ok_or_else(|| format!("{version} is not x.y.z"))?;
    let patch: u16 = patch
        .parse()
        .map_err(|_| format!("{version} is not x.y.z"))?;
    let next = patch
        .checked_add(1)
        .ok_or_else(|| format!("{version}: no next patch version"))?;
    Ok(format!("{head}.{next}"))
}

/// The catalog's `thisUpdate`: `SOURCE_DATE_EPOCH`, else the last commit's date, else now.
fn stamp_seconds(root: &Path) -> u64 {
    let from_env = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let from_git = || {
        Command::new("git")
            .args(["log", "-1", "--format=%ct"])
            .current_dir(root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|t| t.trim().parse().ok())
    };
    from_env.or_else(from_git).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    })
}

/// Builds `installer/drvsetup` for Windows with the Debian rust-web lane (as `windows/devinst`
/// is built); returns the `.exe`.
fn build_helper(root: &Path) -> Result<PathBuf, String> {
    let library = fs::read_dir("/usr/src")
        .map_err(|e| format!("/usr/src: {e}"))?
        .flatten()
        .map(|e| e.path().join("library"))
        .filter(|p| {
            p.join("Cargo.lock").is_file()
                && p.parent()
                    .and_then(|d| d.file_name())
                    .is_some_and(|n| n.to_string_lossy().starts_with("rustc-"))
        })
        .max()
        .ok_or("no /usr/src/rustc-*/library: install rust-web-src (scripts/setup)")?;
    let target_dir = root.join("target/drvsetup");
    let path = std::env::var("PATH").unwrap_or_default();
    for (verb, extra) in [
        ("clippy", &["--", "-D", "warnings"][..]),
        ("build", &[][..]),
    ] {
        host::run_visible(
            Command::new("/usr/bin/cargo")
                .args([verb, "--release", "--locked", "-Zbuild-std=core"])
                .args(["-Zbuild-std-features=compiler-builtins-mem"])
                .args(["--target", "x86_64-pc-windows-msvc"])
                .args(extra)
                // The crate's .cargo/config.toml (linker, entry point) is read from its folder.
                .current_dir(root.join("installer/drvsetup"))
                // Debian's cargo-clippy (same release as the compiler) before rustup's proxy.
                .env("PATH", format!("/usr/bin:{path}"))
                .env("RUSTC", "/usr/bin/rustc")
                .env("RUSTC_BOOTSTRAP", "1")
                .env("__CARGO_TESTS_ONLY_SRC_ROOT", &library)
                .env("CARGO_TARGET_DIR", &target_dir)
                .env_remove("RUSTFLAGS")
                .env_remove("RUSTUP_TOOLCHAIN")
                .env_remove("CARGO"),
        )?;
    }
    Ok(target_dir.join("x86_64-pc-windows-msvc/release/drvsetup.exe"))
}

/// The CAB a maintainer signs with the EV certificate and submits for attestation signing:
/// one folder per driver package with its unsigned `.sys`, its `.inf` and its `.pdb`.
fn submission_cab(root: &Path, out: &Path) -> Result<PathBuf, String> {
    let drivers = root.join(crate::inf::DEFAULT_OUT);
    let folder = out.join("submission");
    let _ = fs::remove_dir_all(&folder);
    let mut entries = Vec::new();
    for package in crate::inf::PACKAGES {
        for ext in ["sys", "inf", "pdb"] {
            let file = format!("{}/{}.{ext}", package.name, package.name);
            copy(
                &drivers.join(format!("{}.{ext}", package.name)),
                &folder.join("files").join(&file),
            )?;
            entries.push(file);
        }
    }
    let cab = folder.join("xen-pv-rs-drivers.cab");
    host::output(
        Command::new("gcab")
            .arg("-c")
            .arg(&cab)
            .args(&entries)
            .current_dir(folder.join("files")),
    )?;
    // Read back: every file is in the CAB, with the same bytes.
    let unpacked = folder.join("unpacked");
    fs::create_dir_all(&unpacked).map_err(|e| format!("{}: {e}", unpacked.display()))?;
    host::output(
        Command::new("gcab")
            .arg("-x")
            .arg("-C")
            .arg(&unpacked)
            .arg(&cab),
    )?;
    let listing = host::output(Command::new("gcab").arg("-t").arg(&cab))?;
    for entry in &entries {
        let listed = listing
            .lines()
            .any(|l| l.trim().replace('\\', "/") == *entry);
        let same =
            fs::read(unpacked.join(entry)).ok() == Some(read(&folder.join("files").join(entry))?);
        if !listed || !same {
            return Err(format!(
                "{entry} is missing from {} or differs:\n{listing}",
                cab.display()
            ));
        }
    }
    Ok(cab)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_patch_version() {
        assert_eq!(next_patch("0.1.0"), Ok("0.1.1".into()));
        assert_eq!(next_patch("1.2.9"), Ok("1.2.10".into()));
        assert!(next_patch("1.2.65535").is_err());
        assert!(next_patch("1").is_err());
    }

    #[test]
    fn the_workspace_version_is_read_from_its_section() {
        let manifest = "[workspace]\nmembers = []\n[workspace.package]\nedition = \"2021\"\n\
                        rust-version = \"1.85\"\nversion = \"0.2.0\"\n[workspace.dependencies]\n\
                        version = \"9.9.9\"\n";
        assert_eq!(workspace_version(manifest), Ok("0.2.0".into()));
        assert!(workspace_version("[workspace.package]\nversion = \"1.2\"\n").is_err());
        assert!(workspace_version("[package]\nversion = \"1.2.3\"\n").is_err());
        let real = fs::read_to_string(crate::inf::repo_root().join("Cargo.toml")).unwrap();
        assert!(workspace_version(&real).is_ok());
    }

    #[test]
    fn package_contents_of_every_driver_inf() {
        let inf = "[Version]\nSignature=\"$WINDOWS NT$\"\n[SourceDisksFiles]\nx.sys = 1\n\
                   [Manufacturer]\n%M% = Models, NTamd64\n[Models.NTamd64]\n\
                   %D% = Install, PCI\\VEN_1&DEV_2, PCI\\VEN_1\n%D% = Install, pci\\ven_1&dev_2\n";
        let (files, ids) = package_contents(inf).unwrap();
        assert_eq!(files, ["x.sys"]);
        assert_eq!(ids, ["PCI\\VEN_1&DEV_2", "PCI\\VEN_1"]);
        assert!(package_contents("[Version]\n").is_err());
        for package in crate::inf::PACKAGES {
            let root = crate::inf::repo_root();
            let template = fs::read_to_string(root.join(package.template)).unwrap();
            let date = win_inf::Date {
                year: 2026,
                month: 12,
                day: 7,
            };
            let text =
                crate::inf::stamp_and_check(&template, package.name, date, [0, 1, 0, 0]).unwrap();
            let (files, ids) = package_contents(&text).unwrap();
            assert!(files.contains(&format!("{}.sys", package.name)));
            assert!(!ids.is_empty());
        }
    }
}
