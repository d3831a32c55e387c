//! Catalog generation, test-signing and verification end to end, on a small PE image and an
//! INF: the catalog made by this crate is signed and verified by osslsigncode, the image is
//! matched to its catalog entry by osslsigncode, and the catalog is parsed back by an
//! independent parser (asn1crypto, `tests/check_catalog.py`) that recomputes the hashes itself.
//! The tools come from `scripts/setup` (osslsigncode, openssl, python3-asn1crypto).

#[path = "../src/testpe.rs"]
mod testpe;

use std::path::{Path, PathBuf};
use std::process::Command;

use xen_signing::catalog::{self, CatalogSpec, DigestAlgorithm, OsTarget, PackageFile};
use xen_signing::pe_hash;
use xen_signing::tools::TestCertificate;

fn work_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("signing-end-to-end");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const INF: &[u8] = b"[Version]\r\nSignature=\"$WINDOWS NT$\"\r\nCatalogFile=demo.cat\r\n";

/// Runs the independent checker; returns (passed, output).
fn independent_check(catalog: &Path, files: &[&Path]) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/check_catalog.py");
    let out = Command::new("/usr/bin/python3")
        .arg(script)
        .arg(catalog)
        .args(files)
        .output()
        .expect("python3 runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The digest osslsigncode reports for an embedded signature ("Current message digest").
fn reported_digest(report: &str) -> String {
    report
        .lines()
        .find_map(|l| l.strip_prefix("Current message digest"))
        .and_then(|rest| rest.split(':').nth(1))
        .map(|d| d.trim().to_ascii_uppercase())
        .unwrap_or_else(|| panic!("no message digest in:\n{report}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[test]
fn catalog_sign_verify_and_independent_parse() {
    let dir = work_dir();
    let sys = dir.join("demo.sys");
    let inf = dir.join("demo.inf");
    let image = testpe::tiny_pe(0x20b);
    std::fs::write(&sys, &image).unwrap();
    std::fs::write(&inf, INF).unwrap();

    let spec = CatalogSpec {
        files: vec![
            PackageFile {
                name: "demo.inf".into(),
                contents: INF.to_vec(),
            },
            PackageFile {
                name: "demo.sys".into(),
                contents: image.clone(),
            },
        ],
        hardware_ids: vec!["ROOT\\DEMO".into()],
        os: OsTarget::windows10_x64(),
        time_unix_seconds: 1_796_601_600,
    };
    let unsigned_cat = dir.join("demo.unsigned.cat");
    std::fs::write(&unsigned_cat, catalog::build(&spec).unwrap()).unwrap();
    let (ok, text) = independent_check(&unsigned_cat, &[&inf, &sys]);
    assert!(ok, "{text}");
    assert!(
        text.contains("demo.sys: sha256 Authenticode hash matches"),
        "{text}"
    );
    assert!(text.contains("demo.inf: sha1 flat hash matches"), "{text}");
    assert!(text.contains("catalog attribute OS = _v100_X64"), "{text}");

    let cert = TestCertificate::ensure(&dir.join("cert")).unwrap();
    let cat = dir.join("demo.cat");
    cert.sign(&unsigned_cat, &cat, "demo").unwrap();
    cert.verify(&cat).unwrap();
    let parsed = catalog::parse(&std::fs::read(&cat).unwrap()).unwrap();
    assert_eq!(parsed.signers, 1);
    assert!(catalog::mismatches(&parsed, &spec.files).is_empty());

    // The signed image: its embedded signature signs the same Authenticode hash we compute, and
    // the catalog entry still matches it (the hash leaves the signature out).
    let signed_sys = dir.join("signed/demo.sys");
    std::fs::create_dir_all(signed_sys.parent().unwrap()).unwrap();
    cert.sign(&sys, &signed_sys, "demo").unwrap();
    let report = cert.verify(&signed_sys).unwrap();
    assert_eq!(
        reported_digest(&report),
        hex(&pe_hash::authenticode_sha256(&image).unwrap())
    );
    let signed_image = std::fs::read(&signed_sys).unwrap();
    assert_ne!(signed_image, image);
    assert_eq!(
        pe_hash::authenticode_sha256(&signed_image).unwrap(),
        pe_hash::authenticode_sha256(&image).unwrap()
    );
    cert.verify_in_catalog(&cat, &sys).unwrap();
    cert.verify_in_catalog(&cat, &signed_sys).unwrap();
    let (ok, text) = independent_check(&cat, &[&inf, &signed_sys]);
    assert!(ok, "{text}");
    assert!(text.contains("1 signer(s)"), "{text}");

    // A changed image is no longer in the catalog, for osslsigncode and for the checker.
    let mut tampered = image.clone();
    tampered[0x300] ^= 1;
    let tampered_sys = dir.join("tampered/demo.sys");
    std::fs::create_dir_all(tampered_sys.parent().unwrap()).unwrap();
    std::fs::write(&tampered_sys, &tampered).unwrap();
    let err = cert.verify_in_catalog(&cat, &tampered_sys).unwrap_err();
    assert!(err.contains("demo.sys"), "{err}");
    let (ok, text) = independent_check(&cat, &[&inf, &tampered_sys]);
    assert!(!ok, "{text}");
    assert!(text.contains("demo.sys: sha1 digest"), "{text}");

    // A catalog signed by another certificate does not verify against ours.
    let other = TestCertificate::ensure(&dir.join("other-cert")).unwrap();
    assert!(other.verify(&cat).is_err());

    // Both algorithms are present for each file.
    for file in ["demo.sys", "demo.inf"] {
        for algorithm in [DigestAlgorithm::Sha1, DigestAlgorithm::Sha256] {
            assert!(parsed
                .members
                .iter()
                .any(|m| m.file == file && m.algorithm == algorithm));
        }
    }
}
