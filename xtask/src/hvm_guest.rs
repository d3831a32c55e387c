//! What the lab adds to dom0 for HVM guests (see `lab/hvm-guest/README.md` and the `hvm-guest`
//! scenario), only when a run asks for a scenario that needs it:
//!
//! - the test kernel, built for `x86_64-unknown-none` as a flat multiboot image, at
//!   `/hvm/kernel.bin`;
//! - a cached archive with the device model (`/usr/libexec/xen-qemu-system-i386` from Debian's
//!   `qemu-system-xen`, with its shared libraries and `/usr/share/qemu`), SeaBIOS, hvmloader,
//!   `xenconsoled`, `libgcc_s.so.1` and the directories xl and QEMU expect.
//!
//! QEMU 7.2 always loads the multiboot option ROM that copies through fw_cfg DMA, which is off
//! under Xen: the ROM waits forever. The archive's `multiboot_dma.bin` is therefore the older
//! port-copying `multiboot.bin`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::host::{self, Result};
use crate::initramfs::{parse_ldd, CpioWriter};

/// Scenarios that boot an HVM guest.
pub const SCENARIOS: &[&str] = &["hvm-guest"];
/// Host packages the archive is made from.
pub const HOST_PACKAGES: &[&str] = &["qemu-system-xen", "seabios", "xen-utils-4.17"];
/// Where the kernel goes in dom0 (the scenario's `kernel=`).
pub const KERNEL_PATH: &str = "hvm/kernel.bin";
/// The target the kernel is built for.
const KERNEL_TARGET: &str = "x86_64-unknown-none";
/// Programs copied with their libraries.
const PROGRAMS: &[&str] = &[
    "/usr/libexec/xen-qemu-system-i386",
    "/usr/lib/xen-4.17/bin/xenconsoled",
];
/// Single files copied as they are.
const FILES: &[&str] = &[
    "/usr/share/seabios/bios-256k.bin",
    "/usr/lib/xen-4.17/boot/hvmloader",
    "/lib/x86_64-linux-gnu/libgcc_s.so.1",
];
/// Directories created empty.
const DIRS: &[&str] = &["var/lock", "run/lock", "var/log/xen/console", "hvm"];
/// Changing this string rebuilds the cached archive.
const RECIPE_VERSION: &str = "dom0-hvm v2";

/// Whether any of `scenarios` boots an HVM guest.
pub fn needed(scenarios: &[String]) -> bool {
    scenarios.iter().any(|s| SCENARIOS.contains(&s.as_str()))
}

/// Builds the test kernel (release) and returns the flat image's path.
pub fn build_kernel(workspace: &Path, lab_dir: &Path) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = lab_dir.join("hvm-guest-cargo");
    host::run_visible(
        Command::new(cargo)
            .current_dir(workspace)
            .args(["build", "--quiet", "--release", "--package", "hvm-guest"])
            .args(["--bin", "hvm-guest", "--target", KERNEL_TARGET])
            .env("CARGO_TARGET_DIR", &target_dir)
            // Absolute addresses in the 32-bit entry need a non-PIE link at 1 MiB.
            .env("RUSTFLAGS", "-C relocation-model=static")
            .env_remove("CARGO_ENCODED_RUSTFLAGS"),
    )?;
    let image = target_dir.join(KERNEL_TARGET).join("release/hvm-guest");
    let bytes = fs::read(&image).map_err(|e| format!("read {}: {e}", image.display()))?;
    check_multiboot_image(&bytes)?;
    Ok(image)
}

/// Checks that `image` starts with a multiboot v1 header using the a.out kludge (what QEMU's
/// loader needs for a 64-bit kernel) whose load range fits the file.
pub fn check_multiboot_image(image: &[u8]) -> Result<()> {
    let word = |i: usize| {
        image
            .get(i * 4..i * 4 + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| "image shorter than a multiboot header".to_owned())
    };
    let (magic, flags, checksum) = (word(0)?, word(1)?, word(2)?);
    if magic != 0x1bad_b002 || magic.wrapping_add(flags).wrapping_add(checksum) != 0 {
        return Err(format!(
            "no multiboot header at offset 0 (magic {magic:#x})"
        ));
    }
    if flags & 0x1_0000 == 0 {
        return Err("multiboot header without load addresses (a.out kludge)".into());
    }
    let (header, load, load_end, bss_end, entry) =
        (word(3)?, word(4)?, word(5)?, word(6)?, word(7)?);
    if header != load || load_end < load || bss_end < load_end || !(load..load_end).contains(&entry)
    {
        return Err(format!(
            "multiboot addresses inconsistent: header {header:#x} load {load:#x}..{load_end:#x} \
             bss end {bss_end:#x} entry {entry:#x}"
        ));
    }
    if (load_end - load) as usize > image.len() {
        return Err(format!(
            "multiboot load range {:#x} bytes exceeds the {}-byte file",
            load_end - load,
            image.len()
        ));
    }
    Ok(())
}

fn copy_into(root: &Path, host_path: &str) -> Result<()> {
    let dest = root.join(host_path.trim_start_matches('/'));
    if dest.exists() {
        return Ok(());
    }
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("create {}: {e}", parent.display()))?;
    }
    fs::copy(host_path, &dest).map_err(|e| format!("copy {host_path}: {e}"))?;
    Ok(())
}

/// Copies a directory tree, following symbolic links.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).map_err(|e| format!("create {}: {e}", to.display()))?;
    for entry in fs::read_dir(from).map_err(|e| format!("read {}: {e}", from.display()))? {
        let entry = entry.map_err(|e| e.to_string())?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if src.is_dir() {
            copy_tree(&src, &dst)?;
        } else if src.is_file() {
            fs::copy(&src, &dst).map_err(|e| format!("copy {}: {e}", src.display()))?;
        }
    }
    Ok(())
}

/// Builds (or finds in the cache) the archive of HVM support files; returns its path.
pub fn ensure_archive(cache: &Path, log: &Path) -> Result<PathBuf> {
    let installed = host::ensure_packages(HOST_PACKAGES, log)?;
    if !installed.is_empty() {
        println!("  installed {}", installed.join(" "));
    }
    let cpio = cache.join("dom0-hvm.cpio");
    let stamp = cache.join("dom0-hvm.stamp");
    let key = format!(
        "{RECIPE_VERSION}\n{PROGRAMS:?}\n{FILES:?}\n{DIRS:?}\n{}\n",
        host::package_versions(HOST_PACKAGES)
    );
    if cpio.is_file() && fs::read_to_string(&stamp).is_ok_and(|s| s == key) {
        return Ok(cpio);
    }
    let _ = fs::remove_file(&stamp);
    let root = cache.join("dom0-hvm.tmp");
    let _ = fs::remove_dir_all(&root);
    for program in PROGRAMS {
        copy_into(&root, program)?;
        let ldd = host::output(Command::new("ldd").arg(program))?;
        for lib in parse_ldd(&ldd).map_err(|e| format!("{program}: {e}"))? {
            copy_into(&root, &lib)?;
        }
    }
    for file in FILES {
        copy_into(&root, file)?;
    }
    copy_tree(Path::new("/usr/share/qemu"), &root.join("usr/share/qemu"))?;
    fs::copy(
        "/usr/share/qemu/multiboot.bin",
        root.join("usr/share/qemu/multiboot_dma.bin"),
    )
    .map_err(|e| format!("replace multiboot_dma.bin: {e}"))?;
    for dir in DIRS {
        fs::create_dir_all(root.join(dir)).map_err(|e| format!("create {dir}: {e}"))?;
    }
    let tmp = cache.join("dom0-hvm.cpio.tmp");
    let file = fs::File::create(&tmp).map_err(|e| format!("create {}: {e}", tmp.display()))?;
    let mut writer = CpioWriter::new(std::io::BufWriter::new(file));
    writer
        .tree(&root)
        .map_err(|e| format!("write the HVM cpio: {e}"))?;
    writer
        .finish()
        .map_err(|e| format!("finish the HVM cpio: {e}"))?;
    fs::rename(&tmp, &cpio).map_err(|e| format!("rename the HVM cpio: {e}"))?;
    let _ = fs::remove_dir_all(&root);
    fs::write(&stamp, key).map_err(|e| format!("write the HVM stamp: {e}"))?;
    Ok(cpio)
}

/// Appends the HVM archive and the kernel to `initrd`; returns its new size.
pub fn append(initrd: &Path, archive: &Path, kernel: &Path) -> Result<u64> {
    let archive = fs::read(archive).map_err(|e| format!("read {}: {e}", archive.display()))?;
    let kernel = fs::read(kernel).map_err(|e| format!("read {}: {e}", kernel.display()))?;
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(initrd)
        .map_err(|e| format!("open the initrd: {e}"))?;
    // Each archive ends 4-byte aligned (the writer pads), so the next one can follow directly.
    std::io::Write::write_all(&mut file, &archive).map_err(|e| format!("append: {e}"))?;
    let mut writer = CpioWriter::new(std::io::BufWriter::new(file));
    (|| {
        writer.dir("hvm", 0o755)?;
        writer.file(KERNEL_PATH, 0o644, &kernel)?;
        writer.finish()
    })()
    .map_err(|e| format!("append the kernel: {e}"))?;
    fs::metadata(initrd)
        .map(|m| m.len())
        .map_err(|e| format!("stat the initrd: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(words: [u32; 8], len: usize) -> Vec<u8> {
        let mut image: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        image.resize(len, 0);
        image
    }

    const MAGIC: u32 = 0x1bad_b002;
    const FLAGS: u32 = 0x1_0000;
    const SUM: u32 = 0u32.wrapping_sub(MAGIC.wrapping_add(FLAGS));

    #[test]
    fn multiboot_headers() {
        let good = [
            MAGIC, FLAGS, SUM, 0x10_0000, 0x10_0000, 0x10_2000, 0x12_0000, 0x10_0020,
        ];
        check_multiboot_image(&header(good, 0x2000)).unwrap();
        // The load range must fit the file (QEMU's fread fails otherwise).
        assert!(check_multiboot_image(&header(good, 0x1fff)).is_err());
        let mut bad_sum = good;
        bad_sum[2] ^= 1;
        assert!(check_multiboot_image(&header(bad_sum, 0x2000)).is_err());
        let mut elf_style = good;
        elf_style[1] = 0;
        elf_style[2] = 0u32.wrapping_sub(MAGIC);
        assert!(check_multiboot_image(&header(elf_style, 0x2000)).is_err());
        let mut entry_outside = good;
        entry_outside[7] = 0x20_0000;
        assert!(check_multiboot_image(&header(entry_outside, 0x2000)).is_err());
        assert!(check_multiboot_image(&[0; 8]).is_err());
    }

    #[test]
    fn only_hvm_scenarios_need_it() {
        assert!(!needed(&["boot".into(), "hypervisor".into()]));
        assert!(needed(&["boot".into(), "hvm-guest".into()]));
    }
}
