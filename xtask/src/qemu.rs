//! Booting Xen and dom0 in QEMU and watching the serial console.
//!
//! Xen is loaded as a multiboot kernel (QEMU needs its ELF image, not the gzipped one), with the
//! dom0 kernel and initrd as multiboot modules: `-initrd "vmlinuz <cmdline>,initrd"`. Each
//! module's command line follows its path after a space, and modules are separated by commas, so
//! commas inside a command line are doubled.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::host::Result;
use crate::report::{Ended, Watch};

/// The QEMU program.
pub const QEMU: &str = "qemu-system-x86_64";

/// Xen's command line. `smap=0 smep=0` is required under TCG: without it dom0 dies at once in
/// Xen's exception bounce-frame code. `noreboot` keeps a crash on screen instead of looping.
pub const XEN_CMDLINE: &str = "console=com1 com1=115200,8n1 dom0_mem=1024M,max:1024M \
     dom0_max_vcpus=2 loglvl=all guest_loglvl=all noreboot smap=0 smep=0";

/// dom0's command line before the lab's own words. Kernel messages go to the console during the
/// boot; `/init` quiets them before the scenarios run.
pub const DOM0_CMDLINE: &str = "console=hvc0 earlyprintk=xen loglevel=6";

/// What to boot.
#[derive(Debug, Clone)]
pub struct Boot {
    /// Xen's ELF image.
    pub xen: PathBuf,
    /// dom0's kernel.
    pub kernel: PathBuf,
    /// dom0's initrd.
    pub initrd: PathBuf,
    /// Words added to dom0's command line.
    pub dom0_words: Vec<String>,
}

/// Where the serial console goes.
#[derive(Debug, Clone)]
pub enum Console {
    /// To a file, watched by the harness.
    File(PathBuf),
    /// To this terminal, interactive.
    Terminal,
}

/// Doubles commas, as QEMU's option parser needs inside a value.
pub fn escape_commas(text: &str) -> String {
    text.replace(',', ",,")
}

fn plain_path(path: &Path) -> Result<String> {
    let text = path
        .to_str()
        .ok_or_else(|| format!("{} is not UTF-8", path.display()))?;
    if text.contains(char::is_whitespace) || text.contains(',') {
        return Err(format!(
            "{text}: QEMU's multiboot and serial options cannot take a path with spaces or commas \
             (set LAB_DIR to another folder)"
        ));
    }
    Ok(text.to_owned())
}

/// QEMU's arguments for a boot.
pub fn qemu_args(boot: &Boot, console: &Console) -> Result<Vec<String>> {
    let mut args: Vec<String> = [
        "-accel",
        "tcg,thread=multi",
        "-machine",
        "q35",
        "-cpu",
        "max",
        "-smp",
        "2",
        "-m",
        "2048",
        "-nic",
        "none",
        "-no-reboot",
    ]
    .map(str::to_owned)
    .to_vec();
    match console {
        Console::File(path) => {
            let path = plain_path(path)?;
            args.extend(["-display", "none", "-monitor", "none", "-serial"].map(str::to_owned));
            args.push(format!("file:{path}"));
        }
        Console::Terminal => args.push("-nographic".to_owned()),
    }
    let mut dom0_cmdline = DOM0_CMDLINE.to_owned();
    for word in &boot.dom0_words {
        dom0_cmdline.push(' ');
        dom0_cmdline.push_str(word);
    }
    let modules = format!(
        "{} {},{}",
        plain_path(&boot.kernel)?,
        escape_commas(&dom0_cmdline),
        plain_path(&boot.initrd)?
    );
    args.extend(["-kernel".to_owned(), plain_path(&boot.xen)?]);
    args.extend(["-append".to_owned(), XEN_CMDLINE.to_owned()]);
    args.extend(["-initrd".to_owned(), modules]);
    Ok(args)
}

/// Boots with the console on this terminal and waits for QEMU to end.
pub fn run_interactive(args: &[String]) -> Result<()> {
    let status = Command::new(QEMU)
        .args(args)
        .status()
        .map_err(|e| format!("cannot run {QEMU}: {e}"))?;
    println!("QEMU ended ({status})");
    Ok(())
}

/// Reads a growing file line by line.
#[derive(Debug)]
struct Tail {
    path: PathBuf,
    file: Option<fs::File>,
    offset: u64,
    partial: Vec<u8>,
}

impl Tail {
    fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            file: None,
            offset: 0,
            partial: Vec::new(),
        }
    }

    /// The complete lines added since the last call (all remaining text if `flush`).
    fn lines(&mut self, flush: bool) -> Vec<String> {
        if self.file.is_none() {
            self.file = fs::File::open(&self.path).ok();
        }
        if let Some(file) = &mut self.file {
            let mut chunk = Vec::new();
            if file.seek(SeekFrom::Start(self.offset)).is_ok()
                && file.read_to_end(&mut chunk).is_ok()
            {
                self.offset += chunk.len() as u64;
                self.partial.extend_from_slice(&chunk);
            }
        }
        let mut lines = Vec::new();
        while let Some(at) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=at).collect();
            lines.push(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
        }
        if flush && !self.partial.is_empty() {
            lines.push(String::from_utf8_lossy(&self.partial).into_owned());
            self.partial.clear();
        }
        lines
    }
}

/// Stops QEMU (our own child, by its pid) and reaps it.
fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Boots with the console in `serial`, hands every console line (and the time since QEMU
/// started) to `on_line`, and returns how QEMU ended and how long it ran.
pub fn run_watched(
    args: &[String],
    serial: &Path,
    qemu_log: &Path,
    timeout: Duration,
    mut on_line: impl FnMut(&str, Duration) -> Watch,
) -> Result<(Ended, Duration)> {
    let _ = fs::remove_file(serial);
    let log =
        fs::File::create(qemu_log).map_err(|e| format!("create {}: {e}", qemu_log.display()))?;
    let log2 = log.try_clone().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut child = Command::new(QEMU)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(|e| format!("cannot start {QEMU}: {e}"))?;
    let mut tail = Tail::new(serial);
    let mut stop_at: Option<Instant> = None;
    loop {
        let exited = child
            .try_wait()
            .map_err(|e| format!("waiting for QEMU: {e}"))?;
        for line in tail.lines(exited.is_some()) {
            if let Watch::StopAfter(grace) = on_line(&line, started.elapsed()) {
                let at = Instant::now() + grace;
                stop_at = Some(stop_at.map_or(at, |t| t.min(at)));
            }
        }
        if let Some(status) = exited {
            return Ok((Ended::Exited(status.to_string()), started.elapsed()));
        }
        let now = Instant::now();
        if stop_at.is_some_and(|t| now >= t) {
            stop(&mut child);
            for line in tail.lines(true) {
                on_line(&line, started.elapsed());
            }
            return Ok((Ended::Stopped, started.elapsed()));
        }
        if now.duration_since(started) >= timeout {
            stop(&mut child);
            for line in tail.lines(true) {
                on_line(&line, started.elapsed());
            }
            return Ok((Ended::TimedOut, started.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boot() -> Boot {
        Boot {
            xen: "/c/xen.elf".into(),
            kernel: "/c/vmlinuz-6.1".into(),
            initrd: "/r/dom0.cpio".into(),
            dom0_words: vec![
                "lab.nonce=abcd".into(),
                "lab.scenarios=boot,gntalloc-evtchn".into(),
            ],
        }
    }

    #[test]
    fn multiboot_modules_double_the_commas() {
        let args = qemu_args(&boot(), &Console::File("/r/serial.log".into())).unwrap();
        let initrd = &args[args.iter().position(|a| a == "-initrd").unwrap() + 1];
        assert_eq!(
            initrd,
            "/c/vmlinuz-6.1 console=hvc0 earlyprintk=xen loglevel=6 lab.nonce=abcd \
             lab.scenarios=boot,,gntalloc-evtchn,/r/dom0.cpio"
        );
        let kernel = &args[args.iter().position(|a| a == "-kernel").unwrap() + 1];
        assert_eq!(kernel, "/c/xen.elf");
        let append = &args[args.iter().position(|a| a == "-append").unwrap() + 1];
        assert!(append.contains("smap=0 smep=0"));
        assert!(args
            .windows(2)
            .any(|w| w == ["-serial", "file:/r/serial.log"]));
        assert!(args.windows(2).any(|w| w == ["-accel", "tcg,thread=multi"]));
        assert!(args.windows(2).any(|w| w == ["-nic", "none"]));
    }

    #[test]
    fn terminal_console_and_bad_paths() {
        let args = qemu_args(&boot(), &Console::Terminal).unwrap();
        assert!(args.contains(&"-nographic".to_owned()));
        let mut spaced = boot();
        spaced.initrd = "/my dir/dom0.cpio".into();
        assert!(qemu_args(&spaced, &Console::Terminal)
            .unwrap_err()
            .contains("spaces or commas"));
        assert_eq!(escape_commas("a,b,,c"), "a,,b,,,,c");
    }

    #[test]
    fn tail_reads_complete_lines_as_the_file_grows() {
        let path = std::env::temp_dir().join(format!("xtask-tail-{}", std::process::id()));
        let _ = fs::remove_file(&path);
        let mut tail = Tail::new(&path);
        assert!(tail.lines(false).is_empty(), "no file yet");
        fs::write(&path, "one\r\ntw").unwrap();
        assert_eq!(tail.lines(false), ["one\r"]);
        fs::write(&path, "one\r\ntwo\nthr").unwrap();
        assert_eq!(tail.lines(false), ["two"]);
        assert_eq!(tail.lines(true), ["thr"]);
        fs::remove_file(&path).unwrap();
    }
}
