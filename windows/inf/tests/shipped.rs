//! Every INF template in the repository, stamped, passes the checker.

use std::path::{Path, PathBuf};

use win_inf::{check_bytes, stamp, Arch, Date, StampParams};

fn templates(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target" && name != ".git" {
                templates(&path, found);
            }
        } else if path.extension().is_some_and(|e| e == "inx") {
            found.push(path);
        }
    }
}

#[test]
fn every_template_stamps_into_an_inf_that_passes_the_checker() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut found = Vec::new();
    templates(&root, &mut found);
    let names: Vec<String> = found
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n == "xenpci.inx"),
        "xenpci.inx not found under {}: {names:?}",
        root.display()
    );
    for path in &found {
        let template = std::fs::read_to_string(path).unwrap();
        let stem = path.file_stem().unwrap().to_string_lossy();
        let params = StampParams {
            arch: Arch::Amd64,
            date: Date {
                year: 2026,
                month: 12,
                day: 7,
            },
            version: [0, 1, 0, 0],
            catalog: format!("{stem}.cat"),
        };
        let stamped = stamp(&template, &params)
            .unwrap_or_else(|e| panic!("{}: cannot stamp: {e}", path.display()));
        if let Err(e) = check_bytes(stamped.as_bytes(), Arch::Amd64) {
            panic!("{} (stamped):\n{e}", path.display());
        }
    }
}

#[test]
fn xenpci_inf_binds_the_platform_device_variants_as_a_boot_start_system_device() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let template = std::fs::read_to_string(root.join("xenpci/driver/xenpci.inx")).unwrap();
    let params = StampParams {
        arch: Arch::Amd64,
        date: Date {
            year: 2026,
            month: 12,
            day: 7,
        },
        version: [0, 1, 0, 0],
        catalog: "xenpci.cat".into(),
    };
    let inf = check_bytes(stamp(&template, &params).unwrap().as_bytes(), Arch::Amd64).unwrap();
    let version = inf.section("Version").unwrap();
    assert_eq!(version.get("Class").unwrap().first(), "System");
    assert_eq!(
        version.get("DriverVer").unwrap().values,
        ["12/07/2026", "0.1.0.0"]
    );
    assert_eq!(version.get("CatalogFile").unwrap().first(), "xenpci.cat");
    let models = inf.section("XenPci.NTamd64").unwrap();
    let ids: Vec<&str> = models
        .entries
        .iter()
        .map(|e| e.values[1].as_str())
        .collect();
    assert_eq!(
        ids,
        [
            "PCI\\VEN_5853&DEV_0001",
            "PCI\\VEN_5853&DEV_0002",
            "PCI\\VEN_5853&DEV_C000&SUBSYS_C0005853&REV_01"
        ]
    );
    let strings = inf.strings();
    assert!(strings
        .iter()
        .any(|(k, v)| k == "xenpci.devicedesc" && v == "Xen Project PV Bus"));
    let service = inf.section("XenPci_Service").unwrap();
    for (key, value) in [
        ("ServiceType", "1"),
        ("StartType", "0"),
        ("ErrorControl", "1"),
        ("LoadOrderGroup", "Boot Bus Extender"),
        ("ServiceBinary", "%12%\\xenpci.sys"),
    ] {
        assert_eq!(service.get(key).unwrap().first(), value, "{key}");
    }
    let services = inf.section("XenPci_Install.NTamd64.Services").unwrap();
    assert_eq!(services.get("AddService").unwrap().values[0], "xenpci");
}
