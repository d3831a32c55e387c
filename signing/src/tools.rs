//! The test certificate and the signing tools.
//!
//! The certificate is a self-signed RSA-3072 code-signing certificate made by `openssl` into a
//! folder under `target/` (its private key is never part of the repository). Signing and
//! verification run Debian's `osslsigncode`; every failure carries the tool's own output.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Debian packages the signing step runs.
pub const PACKAGES: &[&str] = &["openssl", "osslsigncode"];

/// The subject of the test certificate.
pub const TEST_SUBJECT: &str = "/CN=xen-pv-rs Test Code Signing/O=xen-pv-rs test";

/// The PKCS#12 password of the test certificate (it protects nothing: the key is a test key in
/// the build folder; osslsigncode needs one).
const TEST_PASSWORD: &str = "xen-pv-rs-test";

/// A test code-signing certificate on disk.
#[derive(Debug, Clone)]
pub struct TestCertificate {
    /// The certificate, PEM (also the trust anchor for verification).
    pub certificate: PathBuf,
    /// The certificate, DER (`.cer`: what an administrator imports into the Root and
    /// TrustedPublisher stores of a test machine).
    pub certificate_der: PathBuf,
    /// Certificate and key, PKCS#12, for osslsigncode.
    pub pkcs12: PathBuf,
}

/// Runs `cmd`; on failure returns its name, status and output.
pub fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy()).collect();
        Err(format!(
            "{} {} failed ({}):\n{}",
            cmd.get_program().to_string_lossy(),
            args.join(" "),
            out.status,
            text.trim_end()
        ))
    }
}

impl TestCertificate {
    /// The certificate in `dir`, created there (with a new key) if it is not there yet.
    pub fn ensure(dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let cert = Self {
            certificate: dir.join("test-signing.pem"),
            certificate_der: dir.join("test-signing.cer"),
            pkcs12: dir.join("test-signing.pfx"),
        };
        if cert.certificate.is_file() && cert.certificate_der.is_file() && cert.pkcs12.is_file() {
            return Ok(cert);
        }
        let key = dir.join("test-signing.key");
        run(Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:3072", "-sha256", "-nodes"])
            .args(["-days", "3650", "-subj", TEST_SUBJECT])
            .args(["-addext", "extendedKeyUsage=critical,codeSigning"])
            .args(["-addext", "keyUsage=critical,digitalSignature"])
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert.certificate))?;
        run(Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert.certificate)
            .arg("-out")
            .arg(&cert.certificate_der))?;
        run(Command::new("openssl")
            .args(["pkcs12", "-export", "-passout"])
            .arg(format!("pass:{TEST_PASSWORD}"))
            .arg("-inkey")
            .arg(&key)
            .arg("-in")
            .arg(&cert.certificate)
            .arg("-out")
            .arg(&cert.pkcs12))?;
        Ok(cert)
    }

    /// Signs `input` (a PE image, catalog or MSI) into `output` with SHA-256; `description` is
    /// the signature's program name.
    pub fn sign(&self, input: &Path, output: &Path, description: &str) -> Result<(), String> {
        // osslsigncode refuses to overwrite, and does not create folders.
        let _ = std::fs::remove_file(output);
        if let Some(dir) = output.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        run(Command::new("osslsigncode")
            .arg("sign")
            .arg("-pkcs12")
            .arg(&self.pkcs12)
            .args(["-pass", TEST_PASSWORD, "-h", "sha256", "-n", description])
            .arg("-in")
            .arg(input)
            .arg("-out")
            .arg(output))
        .map(drop)
    }

    /// Verifies the signature of `file` against this certificate; returns osslsigncode's report.
    pub fn verify(&self, file: &Path) -> Result<String, String> {
        let report = run(Command::new("osslsigncode")
            .arg("verify")
            .arg("-CAfile")
            .arg(&self.certificate)
            .arg("-in")
            .arg(file))?;
        expect_success(file, report)
    }

    /// Verifies that `image` is listed in `catalog` (osslsigncode computes the image's hash and
    /// looks for it among the catalog's members) and that the catalog's signature verifies.
    pub fn verify_in_catalog(&self, catalog: &Path, image: &Path) -> Result<String, String> {
        let report = run(Command::new("osslsigncode")
            .arg("verify")
            .arg("-CAfile")
            .arg(&self.certificate)
            .arg("-catalog")
            .arg(catalog)
            .arg("-in")
            .arg(image))?;
        expect_success(image, report)
    }
}

/// osslsigncode's exit status is not enough: its report must end with `Succeeded` and hold no
/// failed check.
fn expect_success(file: &Path, report: String) -> Result<String, String> {
    let failed = report
        .lines()
        .any(|l| l.contains("verification: failed") || l.trim() == "Failed");
    if failed || !report.lines().any(|l| l.trim() == "Succeeded") {
        return Err(format!(
            "osslsigncode does not accept {}:\n{}",
            file.display(),
            report.trim_end()
        ));
    }
    Ok(report)
}
