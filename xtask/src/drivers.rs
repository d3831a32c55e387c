//! `cargo xtask drivers`: builds every Windows driver crate into a `.sys` for x64 and checks it.
//!
//! The driver lane uses Debian's `rustc-web`/`cargo-web`/`rust-web-src`/`rust-web-clippy` (one
//! Rust release for compiler, library source and clippy) with `-Zbuild-std=core,alloc` for
//! `x86_64-pc-windows-msvc`, linked by `lld-link-19` with the kernel-driver flags. The host's
//! rustup toolchain, which runs this program, is not used for the drivers. Steps:
//! 1. install the Debian packages that are missing (as root; `apt-get`);
//! 2. build the driver crates in their own target folder (`target/windows`), so the host lane's
//!    builds are never invalidated;
//! 3. run clippy on the Windows crates for the Windows target with `-D warnings`;
//! 4. copy each image with its `.pdb` and `.map` to `target/drivers/x64/`;
//! 5. run the layout probe ([`crate::layout_probe`]);
//! 6. check each image ([`crate::pe_check`]), then check that mutated copies of it fail with
//!    the expected violations (the checks can fail).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use crate::host::{self, Result};
use crate::pe_check::{self, KernelExports, Violation};

/// Debian packages of the driver lane.
pub const PACKAGES: &[&str] = &[
    "rustc-web",
    "cargo-web",
    "rust-web-src",
    "rust-web-clippy",
    "lld-19",
    // The layout probe: clang and mingw-w64's DDK headers.
    "clang-19",
    "mingw-w64-x86-64-dev",
];

/// The lane's compiler, cargo and linker.
const RUSTC: &str = "/usr/bin/rustc";
const CARGO: &str = "/usr/bin/cargo";
const LINKER: &str = "lld-link-19";
const TARGET: &str = "x86_64-pc-windows-msvc";

/// The driver crates: package name, and the image name (`<name>.sys`).
pub const DRIVERS: &[(&str, &str)] = &[("xenpci", "xenpci")];

/// The Windows-only crates clippy checks for the Windows target (the drivers and their
/// kernel layer).
pub const WINDOWS_CRATES: &[&str] = &["win-km", "xenpci"];

/// Folders of the suite's own `raw-dylib` declarations, read for the import check.
pub const BINDING_SOURCES: &[&str] = &["windows/km/src"];

/// The linker flags of a kernel driver (the WDK's, less MSVC-only `/KERNEL`): `/MAP` writes the
/// map next to the image.
pub const LINK_ARGS: &[&str] = &[
    "/DRIVER",
    "/SUBSYSTEM:NATIVE",
    "/ENTRY:DriverEntry",
    "/NODEFAULTLIB",
    "/MERGE:.rdata=.text",
    "/INTEGRITYCHECK",
    "/NXCOMPAT",
    "/DYNAMICBASE",
    "/RELEASE",
    "/MAP",
];

/// Entry point of `cargo xtask drivers`.
pub fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn run() -> Result<()> {
    let root = workspace_root();
    let out_dir = root.join("target/drivers/x64");
    fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let log = root.join("target/drivers/setup.log");

    println!("drivers: packages ({})", PACKAGES.join(" "));
    let installed = host::ensure_packages(PACKAGES, &log)?;
    if !installed.is_empty() {
        println!("  installed {}", installed.join(" "));
    }
    let library = library_source()?;
    println!(
        "  {} with library source {}",
        rustc_version()?,
        library.display()
    );

    let target_dir = root.join("target/windows");
    println!(
        "drivers: build ({TARGET}, target folder {})",
        target_dir.display()
    );
    let mut build = lane_command(&root, &target_dir, &library);
    build.args(["build", "--release", "--locked", "--target", TARGET]);
    build.args([
        "-Zbuild-std=core,alloc",
        "-Zbuild-std-features=compiler-builtins-mem",
    ]);
    for (package, _) in DRIVERS {
        build.args(["-p", package]);
    }
    host::run_visible(&mut build)?;

    println!("drivers: clippy for {TARGET} (-D warnings)");
    let mut clippy = lane_command(&root, &target_dir, &library);
    clippy.args(["clippy", "--release", "--locked", "--target", TARGET]);
    clippy.args([
        "-Zbuild-std=core,alloc",
        "-Zbuild-std-features=compiler-builtins-mem",
    ]);
    for package in WINDOWS_CRATES {
        clippy.args(["-p", package]);
    }
    clippy.args(["--", "-D", "warnings"]);
    host::run_visible(&mut clippy)?;

    let release = target_dir.join(TARGET).join("release");
    let mut images = Vec::new();
    for (package, name) in DRIVERS {
        let lib_name = package.replace('-', "_");
        let copies = [
            (
                release.join(format!("{lib_name}.dll")),
                out_dir.join(format!("{name}.sys")),
            ),
            (
                release.join(format!("{lib_name}.pdb")),
                out_dir.join(format!("{name}.pdb")),
            ),
            (
                release.join("deps").join(format!("{lib_name}.map")),
                out_dir.join(format!("{name}.map")),
            ),
        ];
        for (from, to) in &copies {
            fs::copy(from, to)
                .map_err(|e| format!("copy {} to {}: {e}", from.display(), to.display()))?;
            println!("  {}", to.display());
        }
        images.push(copies[0].1.clone());
    }

    println!("drivers: layout probe (clang-19 against mingw-w64's DDK headers)");
    let probe = crate::layout_probe::run(&root.join("target/drivers/layout_probe.c"))?;
    println!("  {probe}");

    println!("drivers: image checks");
    let known = kernel_exports(&root)?;
    let names: usize = known.by_module.values().map(|n| n.len()).sum();
    println!(
        "  {names} kernel export names known ({})",
        known
            .by_module
            .iter()
            .map(|(m, n)| format!("{m}: {}", n.len()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for image in &images {
        let bytes = fs::read(image).map_err(|e| format!("{}: {e}", image.display()))?;
        let facts =
            pe_check::read_facts(&bytes).map_err(|e| format!("{}: {e}", image.display()))?;
        let violations = pe_check::check(&facts, &known);
        if !violations.is_empty() {
            let list: Vec<String> = violations.iter().map(|v| format!("  - {v}")).collect();
            return Err(format!(
                "{} fails the image checks:\n{}",
                image.display(),
                list.join("\n")
            ));
        }
        println!("  {}: ok: {}", image.display(), pe_check::summary(&facts));
        check_mutants(&bytes, &known).map_err(|e| format!("{}: {e}", image.display()))?;
        println!(
            "  {}: every mutated copy fails with its violation",
            image.display()
        );
    }
    println!("drivers: INFs (stamped and checked)");
    for inf in crate::inf::stamp_drivers(&out_dir)? {
        println!("  {}", inf.display());
    }
    println!("drivers: done");
    Ok(())
}

/// A command of the driver lane: Debian's cargo and rustc, its own target folder, the library
/// source of `rust-web-src`, the driver link flags; nothing inherited from the host lane.
fn lane_command(root: &Path, target_dir: &Path, library: &Path) -> Command {
    let mut cmd = Command::new(CARGO);
    cmd.current_dir(root);
    for var in [
        "RUSTUP_TOOLCHAIN",
        "CARGO",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTDOC",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_MAKEFLAGS",
    ] {
        cmd.env_remove(var);
    }
    // Debian's `cargo-clippy` must be found before rustup's proxy.
    let path = std::env::var("PATH").unwrap_or_default();
    cmd.env("PATH", format!("/usr/bin:{path}"));
    cmd.env("RUSTC", RUSTC);
    // `-Z` flags on a release compiler.
    cmd.env("RUSTC_BOOTSTRAP", "1");
    // Where `-Zbuild-std` finds the library source; `rust-web-src` does not install it in the
    // sysroot, and this avoids editing /usr.
    cmd.env("__CARGO_TESTS_ONLY_SRC_ROOT", library);
    cmd.env("CARGO_TARGET_DIR", target_dir);
    cmd.env("CARGO_TARGET_X86_64_PC_WINDOWS_MSVC_LINKER", LINKER);
    // A driver cannot unwind.
    cmd.env("CARGO_PROFILE_RELEASE_PANIC", "abort");
    let flags: Vec<String> = LINK_ARGS
        .iter()
        .map(|a| format!("-Clink-arg={a}"))
        .collect();
    cmd.env(
        "CARGO_TARGET_X86_64_PC_WINDOWS_MSVC_RUSTFLAGS",
        flags.join(" "),
    );
    cmd
}

fn rustc_version() -> Result<String> {
    Ok(host::output(Command::new(RUSTC).arg("--version"))?
        .trim()
        .to_owned())
}

/// `/usr/src/rustc-<version>/library` for the lane's rustc.
fn library_source() -> Result<PathBuf> {
    let version = rustc_version()?;
    let number = version
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| format!("cannot read the version in '{version}'"))?;
    let library = PathBuf::from(format!("/usr/src/rustc-{number}/library"));
    if !library.join("Cargo.lock").is_file() {
        return Err(format!(
            "{} is missing: rust-web-src does not match {version}",
            library.display()
        ));
    }
    Ok(library)
}

/// The kernel export names: `windows-sys`'s declarations (its source folder from `cargo
/// metadata`) plus the suite's binding lists.
fn kernel_exports(root: &Path) -> Result<KernelExports> {
    let metadata = host::output(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root)
            .args(["metadata", "--format-version", "1", "--locked"]),
    )?;
    let manifest = manifest_path_of(&metadata, "windows-sys")
        .ok_or("cargo metadata names no windows-sys package")?;
    let src = Path::new(&manifest)
        .parent()
        .ok_or("windows-sys manifest has no folder")?
        .join("src");
    let bindings: Vec<PathBuf> = BINDING_SOURCES.iter().map(|d| root.join(d)).collect();
    KernelExports::from_sources(&src, &bindings)
}

/// The `manifest_path` of the registry package whose folder is `<name>-<version>` in the JSON
/// of `cargo metadata` (the JSON writer escapes nothing in such paths).
pub fn manifest_path_of(metadata: &str, name: &str) -> Option<String> {
    metadata
        .split("\"manifest_path\":\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .find(|path| {
            Path::new(path)
                .parent()
                .and_then(|dir| dir.file_name())
                .and_then(|dir| dir.to_str())
                .and_then(|dir| dir.strip_prefix(name))
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|version| version.starts_with(|c: char| c.is_ascii_digit()))
        })
        .map(str::to_owned)
}

/// Offsets in a PE file needed to mutate it.
struct Layout {
    file_header: usize,
    optional_header: usize,
    sections: usize,
    section_count: usize,
}

fn layout(bytes: &[u8]) -> Result<Layout> {
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
    let nt = u32_at(0x3c).ok_or("truncated DOS header")? as usize;
    let file_header = nt + 4;
    let section_count = u16_at(file_header + 2).ok_or("truncated file header")? as usize;
    let optional_size = u16_at(file_header + 16).ok_or("truncated file header")? as usize;
    let optional_header = file_header + 20;
    Ok(Layout {
        file_header,
        optional_header,
        sections: optional_header + optional_size,
        section_count,
    })
}

/// Recognises the violation a mutant must cause.
type IsExpected = fn(&Violation) -> bool;

/// Mutated copies of a good image, each of which must fail with its own violation.
fn check_mutants(good: &[u8], known: &KernelExports) -> Result<()> {
    let l = layout(good)?;
    // IMAGE_OPTIONAL_HEADER64: Subsystem at 68, DllCharacteristics at 70.
    let subsystem = l.optional_header + 68;
    let dll_characteristics = l.optional_header + 70;
    let mut mutants: Vec<(&str, Vec<u8>, IsExpected)> = Vec::new();

    let mut m = good.to_vec();
    m[l.file_header..l.file_header + 2].copy_from_slice(&0x14cu16.to_le_bytes());
    mutants.push(("machine set to i386", m, |v| {
        matches!(v, Violation::Machine(0x14c))
    }));

    // IMAGE_OPTIONAL_HEADER64.AddressOfEntryPoint at 16.
    let mut m = good.to_vec();
    let entry = l.optional_header + 16;
    let moved = u32::from_le_bytes(good[entry..entry + 4].try_into().map_err(|_| "entry")?) + 0x10;
    m[entry..entry + 4].copy_from_slice(&moved.to_le_bytes());
    mutants.push(("entry point moved off DriverEntry", m, |v| {
        matches!(v, Violation::EntryNotDriverEntry { .. })
    }));

    // The base relocation directory (data directory 5, from 112) emptied: its size at 156.
    let mut m = good.to_vec();
    let reloc_size = l.optional_header + 112 + 5 * 8 + 4;
    m[reloc_size..reloc_size + 4].copy_from_slice(&0u32.to_le_bytes());
    mutants.push(("relocations removed", m, |v| {
        matches!(v, Violation::NoRelocations)
    }));

    let mut m = good.to_vec();
    m[subsystem..subsystem + 2].copy_from_slice(&2u16.to_le_bytes());
    mutants.push(("Windows GUI subsystem", m, |v| {
        matches!(v, Violation::Subsystem(2))
    }));

    let mut m = good.to_vec();
    m[dll_characteristics] &= !0x80; // FORCE_INTEGRITY
    mutants.push(("FORCE_INTEGRITY cleared", m, |v| {
        matches!(v, Violation::NoForceIntegrity)
    }));

    let mut m = good.to_vec();
    m[dll_characteristics + 1] &= !0x01; // NX_COMPAT (0x100)
    mutants.push(("NX_COMPAT cleared", m, |v| {
        matches!(v, Violation::NoNxCompat)
    }));

    // The first executable section made writable: IMAGE_SECTION_HEADER.Characteristics at 36.
    let mut m = good.to_vec();
    let executable = (0..l.section_count)
        .map(|i| l.sections + 40 * i + 36)
        .find(|&at| good.get(at + 3).is_some_and(|b| b & 0x20 != 0))
        .ok_or("no executable section")?;
    m[executable + 3] |= 0x80;
    mutants.push(("code section made writable", m, |v| {
        matches!(v, Violation::WritableExecutable(_))
    }));

    // An imported name changed in the hint/name table.
    let facts = pe_check::read_facts(good)?;
    let name = facts
        .imports
        .iter()
        .flat_map(|(_, names)| names)
        .find_map(|i| match i {
            pe_check::Import::Name(n) if n.len() > 3 => Some(n.clone()),
            _ => None,
        })
        .ok_or("the image imports nothing by name")?;
    let mut needle = name.clone().into_bytes();
    needle.push(0);
    let at = good
        .windows(needle.len())
        .position(|w| w == needle.as_slice())
        .ok_or("imported name not found in the image")?;
    let mut m = good.to_vec();
    m[at + needle.len() - 2] ^= 0x20;
    mutants.push(("an import renamed to a name ntoskrnl.exe lacks", m, |v| {
        matches!(v, Violation::UnknownImport { .. })
    }));

    // The import module's name changed to a user-mode library.
    let module = b"ntoskrnl.exe\0";
    let at = good
        .windows(module.len())
        .position(|w| w.eq_ignore_ascii_case(module))
        .ok_or("the image names no ntoskrnl.exe")?;
    let mut m = good.to_vec();
    m[at..at + 10].copy_from_slice(b"ntdll.dll\0");
    mutants.push(("imports taken from ntdll.dll", m, |v| {
        matches!(v, Violation::ForeignModule(_))
    }));

    for (what, bytes, expected) in mutants {
        let facts = pe_check::read_facts(&bytes).map_err(|e| format!("mutant '{what}': {e}"))?;
        let violations = pe_check::check(&facts, known);
        match violations.as_slice() {
            [one] if expected(one) => println!("    mutant '{what}' fails: {one}"),
            other => {
                return Err(format!(
                    "mutant '{what}' should fail with exactly its violation, got: {other:?}"
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_path_is_found_by_folder_name() {
        let json = r#"{"packages":[{"name":"windows-link","manifest_path":"/r/windows-link-0.2.1/Cargo.toml"},{"name":"windows-sys","manifest_path":"/r/windows-sys-0.61.2/Cargo.toml"},{"name":"win-km","manifest_path":"/w/windows/km/Cargo.toml"}]}"#;
        assert_eq!(
            manifest_path_of(json, "windows-sys").as_deref(),
            Some("/r/windows-sys-0.61.2/Cargo.toml")
        );
        assert_eq!(
            manifest_path_of(json, "windows-link").as_deref(),
            Some("/r/windows-link-0.2.1/Cargo.toml")
        );
        assert_eq!(manifest_path_of(json, "windows"), None);
    }

    #[test]
    fn the_derived_export_list_has_the_kernel_and_not_user_mode() {
        let root = workspace_root();
        let known = kernel_exports(&root).expect("windows-sys is in the lock file");
        assert!(known.exports("ntoskrnl.exe", "IoCreateDevice"));
        assert!(known.exports("hal.dll", "KeStallExecutionProcessor"));
        // From the suite's own list only: windows-sys lists it under ntdll.dll.
        assert!(known.exports("ntoskrnl.exe", "DbgPrintEx"));
        assert!(!known.exports("ntoskrnl.exe", "CreateFileW"));
        assert!(!known.by_module.contains_key("ntdll.dll"));
    }
}
