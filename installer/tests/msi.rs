//! The MSI built by wixl from the suite's WiX source for a staged driver package, read back with
//! msiinfo and msiextract, signed and verified with osslsigncode; and the checks failing on
//! tables that break the rules. The tools come from `scripts/setup` (wixl, msitools,
//! osslsigncode).

#[path = "../../signing/src/testpe.rs"]
mod testpe;

use std::path::{Path, PathBuf};

use xen_installer::{self as installer, DriverPackage, Tables};
use xen_signing::catalog::{self, CatalogSpec, OsTarget, PackageFile};
use xen_signing::tools::TestCertificate;

const VERSION: &str = "0.3.1";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Stages one driver package (`demo`) with a real catalog, the helper and the certificate.
fn stage(dir: &Path) -> (DriverPackage, Vec<u8>) {
    let _ = std::fs::remove_dir_all(dir);
    let pkg_dir = dir.join("stage/demo");
    std::fs::create_dir_all(&pkg_dir).unwrap();
    let sys = testpe::tiny_pe(0x20b);
    let inf = b"[Version]\r\nSignature=\"$WINDOWS NT$\"\r\nCatalogFile=demo.cat\r\n".to_vec();
    let cat = catalog::build(&CatalogSpec {
        files: vec![
            PackageFile {
                name: "demo.sys".into(),
                contents: sys.clone(),
            },
            PackageFile {
                name: "demo.inf".into(),
                contents: inf.clone(),
            },
        ],
        hardware_ids: vec!["ROOT\\DEMO".into()],
        os: OsTarget::windows10_x64(),
        time_unix_seconds: 1_796_601_600,
    })
    .unwrap();
    std::fs::write(pkg_dir.join("demo.sys"), &sys).unwrap();
    std::fs::write(pkg_dir.join("demo.inf"), inf).unwrap();
    std::fs::write(pkg_dir.join("demo.cat"), cat).unwrap();
    std::fs::write(dir.join("stage/drvsetup.exe"), testpe::tiny_pe(0x20b)).unwrap();
    std::fs::write(
        dir.join("stage/test-signing.cer"),
        b"not a real certificate",
    )
    .unwrap();
    (DriverPackage::standard("demo"), sys)
}

fn build_msi(dir: &Path, package: &DriverPackage) -> PathBuf {
    let template = std::fs::read_to_string(root().join(installer::WXS)).unwrap();
    let wxs = dir.join("xen-pv-rs.wxs");
    std::fs::write(
        &wxs,
        installer::render(&template, std::slice::from_ref(package)).unwrap(),
    )
    .unwrap();
    let msi = dir.join("xen-pv-rs.msi");
    installer::build(&wxs, VERSION, &dir.join("stage"), &msi).unwrap();
    msi
}

#[test]
fn the_msi_has_the_packages_actions_and_sequence() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("installer-msi");
    let (package, sys) = stage(&dir);
    let msi = build_msi(&dir, &package);
    let tables = Tables::export(&msi).unwrap();
    let problems = installer::check(&tables, VERSION, std::slice::from_ref(&package));
    assert!(problems.is_empty(), "{problems:#?}");

    // The deferred actions as Windows Installer stores them: 50 + in-script + no impersonation.
    let ty = tables.custom_action.value("DriverInstall", "Type").unwrap();
    assert_eq!(ty, Some("3122"));

    // The files inside are the staged ones, byte for byte.
    let files = installer::extract(&msi, &dir.join("extracted")).unwrap();
    let extracted_sys = files
        .iter()
        .find(|p| p.ends_with("demo/demo.sys"))
        .unwrap_or_else(|| panic!("no demo.sys in {files:?}"));
    assert!(extracted_sys
        .to_string_lossy()
        .contains("xen-pv-rs/drivers/demo"));
    assert_eq!(std::fs::read(extracted_sys).unwrap(), sys);
    assert_eq!(files.len(), 5, "{files:?}");

    // Signed and verified.
    let cert = TestCertificate::ensure(&dir.join("cert")).unwrap();
    let signed = dir.join("signed.msi");
    cert.sign(&msi, &signed, "Xen PV drivers").unwrap();
    cert.verify(&signed).unwrap();
    assert!(Tables::export(&signed).is_ok());

    // A wrong version or package list is reported.
    let problems = installer::check(&tables, "0.3.2", std::slice::from_ref(&package));
    assert_eq!(problems.len(), 1, "{problems:?}");
    let other = DriverPackage::standard("other");
    let problems = installer::check(&tables, VERSION, &[package, other]);
    assert!(problems
        .iter()
        .any(|p| p == "other.sys is not in the File table"));
    assert!(problems.iter().any(|p| p.starts_with("DriverInstall runs")));
}

#[test]
fn broken_tables_fail_the_checks() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("installer-broken");
    let (package, _) = stage(&dir);
    let msi = build_msi(&dir, &package);
    let good = Tables::export(&msi).unwrap();
    let packages = [package];

    // The uninstall action sequenced before InstallInitialize (what Before="RemoveFiles" gives).
    let mut t = good.clone();
    let seq = t.sequence.column("Sequence").unwrap();
    let row = t
        .sequence
        .rows
        .iter_mut()
        .find(|r| r[0] == "DriverUninstall")
        .unwrap();
    row[seq] = "1402".into();
    let problems = installer::check(&t, VERSION, &packages);
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("DriverUninstall is at 1402")),
        "{problems:?}"
    );

    // An empty CustomAction table (what wixl writes for a type-34 action).
    let mut t = good.clone();
    t.custom_action.rows.clear();
    let problems = installer::check(&t, VERSION, &packages);
    assert!(problems.contains(&"custom action DriverInstall is missing".to_string()));
    assert!(problems.contains(&"custom action DriverUninstall is missing".to_string()));

    // An action whose exit code is ignored, or that impersonates the user.
    for (bits, what) in [(0x40u32, "ignored"), (0x800, "impersonating")] {
        let mut t = good.clone();
        let ty = t.custom_action.column("Type").unwrap();
        let row = t
            .custom_action
            .rows
            .iter_mut()
            .find(|r| r[0] == "DriverInstall")
            .unwrap();
        row[ty] = (row[ty].parse::<u32>().unwrap() ^ bits).to_string();
        let problems = installer::check(&t, VERSION, &packages);
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("DriverInstall has type")),
            "{what}: {problems:?}"
        );
    }

    // Another upgrade code.
    let mut t = good;
    let value = t.property.column("Value").unwrap();
    let row = t
        .property
        .rows
        .iter_mut()
        .find(|r| r[0] == "UpgradeCode")
        .unwrap();
    row[value] = "{00000000-0000-0000-0000-000000000000}".into();
    assert!(!installer::check(&t, VERSION, &packages).is_empty());

    // wixl's silent failure on a run-in-directory action is caught at build time.
    let template = std::fs::read_to_string(root().join(installer::WXS))
        .unwrap()
        .replace(
            "Property=\"DRVSETUP\" ExeCommand=\"install",
            "Directory=\"INSTALLDIR\" ExeCommand=\"drvsetup.exe install",
        );
    let wxs = dir.join("broken.wxs");
    std::fs::write(&wxs, installer::render(&template, &packages).unwrap()).unwrap();
    let err =
        installer::build(&wxs, VERSION, &dir.join("stage"), &dir.join("broken.msi")).unwrap_err();
    assert!(err.contains("CRITICAL"), "{err}");
}
