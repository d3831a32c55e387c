//! Command-line parsing for `cargo xtask`.

use std::fmt;

/// Usage of the whole tool.
pub const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  package     the main job: build the drivers, generate and test-sign their catalogs, sign them,
              build and sign the MSI, verify everything (also under Wine's msiexec); prints the
              MSI's path (target/package/)
  lab         boot Xen and a Linux dom0 under QEMU and run the lab's scenarios in dom0
  drivers     build every Windows driver into a .sys for x64 (target/drivers/x64), run clippy for
              the Windows target and the image checks (installs its Debian packages as root)
  inf         stamp every driver's INF template into target/drivers/x64/ and check it
  wine-check  the Wine load test of the built drivers (see windows/WINE.md)
  help        show this text

Run `cargo xtask lab --help` for the lab's options.";

/// Usage of `cargo xtask lab`.
pub const LAB_USAGE: &str = "\
usage: cargo xtask lab [--scenario NAME]... [--expect-fail NAME]... [--keep-going] [--timeout SECS]
       cargo xtask lab --list
       cargo xtask lab --shell

Boots Xen 4.17 and a Linux dom0 under QEMU (TCG) and runs scenarios inside dom0.

options:
  --scenario NAME   run this scenario (repeatable, or NAME,NAME); default: the default set
  --expect-fail NAME
                    also run this scenario, last, and require it to FAIL with a reason: the run
                    passes when the other scenarios pass and this one fails (repeatable, or
                    NAME,NAME); with more than one, the run keeps going past their failures
  --list            list the scenarios and exit
  --keep-going      run every scenario even after one fails
  --timeout SECS    give up on the boot and run after SECS seconds (default 600)
  --shell           boot to an interactive dom0 shell on this terminal (Ctrl-a x quits QEMU)
  -h, --help        show this text

Environment: LAB_DIR overrides the cache and run folder (default: target/lab).";

/// The default limit for one boot and run, in seconds.
pub const DEFAULT_TIMEOUT_SECS: u64 = 600;

/// What `cargo xtask` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Print the usage.
    Help,
    /// `cargo xtask lab …`.
    Lab(LabArgs),
    /// `cargo xtask lab --help`.
    LabHelp,
    /// `cargo xtask drivers`.
    Drivers,
}

/// What the lab should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabMode {
    /// Run scenarios and report.
    Run,
    /// List the scenarios.
    List,
    /// Boot to an interactive shell.
    Shell,
}

/// The options of `cargo xtask lab`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabArgs {
    /// What to do.
    pub mode: LabMode,
    /// Scenarios named with `--scenario`, in order, without duplicates; empty for the default set.
    pub scenarios: Vec<String>,
    /// Scenarios named with `--expect-fail`, in order, without duplicates: run after the others,
    /// and required to fail.
    pub expect_fail: Vec<String>,
    /// Run every scenario even after one fails.
    pub keep_going: bool,
    /// The limit for one boot and run, in seconds.
    pub timeout_secs: u64,
}

/// A command line that cannot be used; the tool exits with status 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(message: impl Into<String>) -> Result<T, UsageError> {
    Err(UsageError(message.into()))
}

/// Parses the arguments after `cargo xtask`.
pub fn parse(args: &[String]) -> Result<Command, UsageError> {
    match args.first().map(String::as_str) {
        None => err("no command given"),
        Some("help" | "-h" | "--help") => Ok(Command::Help),
        Some("lab") => parse_lab(&args[1..]),
        Some("drivers") => match args.get(1) {
            None => Ok(Command::Drivers),
            Some(extra) => err(format!("drivers takes no arguments, got '{extra}'")),
        },
        Some(other) => err(format!(
            "unknown command '{other}' (known: lab, drivers, inf, wine-check, help)"
        )),
    }
}

/// Parses the arguments after `cargo xtask lab`.
fn parse_lab(args: &[String]) -> Result<Command, UsageError> {
    let mut parsed = LabArgs {
        mode: LabMode::Run,
        scenarios: Vec::new(),
        expect_fail: Vec::new(),
        keep_going: false,
        timeout_secs: DEFAULT_TIMEOUT_SECS,
    };
    let (mut list, mut shell, mut timeout_given) = (false, false, false);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        // `--flag=value` and `--flag value` are both accepted for flags that take a value.
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
            _ => (arg.as_str(), None),
        };
        if inline.is_some() && matches!(flag, "--list" | "--shell" | "--keep-going" | "--help") {
            return err(format!("{flag} takes no value"));
        }
        let mut value = |name: &str| -> Result<String, UsageError> {
            match inline.clone().or_else(|| it.next().cloned()) {
                Some(v) if !v.is_empty() => Ok(v),
                _ => err(format!("{name} needs a value")),
            }
        };
        match flag {
            "-h" | "--help" => return Ok(Command::LabHelp),
            "--scenario" | "-s" => add_names(&mut parsed.scenarios, &value("--scenario")?)?,
            "--expect-fail" => add_names(&mut parsed.expect_fail, &value("--expect-fail")?)?,
            "--list" => list = true,
            "--shell" => shell = true,
            "--keep-going" => parsed.keep_going = true,
            "--timeout" => {
                let text = value("--timeout")?;
                parsed.timeout_secs = match text.parse::<u64>() {
                    Ok(secs) if secs > 0 => secs,
                    _ => {
                        return err(format!(
                            "--timeout needs a positive number of seconds, got '{text}'"
                        ))
                    }
                };
                timeout_given = true;
            }
            other if other.starts_with('-') => return err(format!("unknown option '{other}'")),
            other => {
                return err(format!(
                    "unexpected argument '{other}' (name scenarios with --scenario {other})"
                ))
            }
        }
    }
    match (list, shell) {
        (true, true) => return err("--list and --shell cannot be combined"),
        (true, false) => parsed.mode = LabMode::List,
        (false, true) => parsed.mode = LabMode::Shell,
        (false, false) => {}
    }
    if parsed.mode != LabMode::Run {
        let what = if list { "--list" } else { "--shell" };
        if !parsed.scenarios.is_empty() || !parsed.expect_fail.is_empty() || parsed.keep_going {
            return err(format!(
                "{what} cannot be combined with --scenario, --expect-fail or --keep-going"
            ));
        }
        if list && timeout_given {
            return err("--list cannot be combined with --timeout");
        }
    }
    Ok(Command::Lab(parsed))
}

/// Appends the comma-separated scenario names in `names` to `list`, skipping duplicates.
fn add_names(list: &mut Vec<String>, names: &str) -> Result<(), UsageError> {
    for name in names.split(',') {
        if !lab_protocol::is_valid_name(name) {
            return err(format!(
                "'{name}' is not a scenario name (lowercase letters, digits and '-')"
            ));
        }
        if !list.iter().any(|s| s == name) {
            list.push(name.to_owned());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    fn lab(text: &str) -> LabArgs {
        match parse(&args(&format!("lab {text}"))) {
            Ok(Command::Lab(a)) => a,
            other => panic!("{text}: {other:?}"),
        }
    }

    fn lab_err(text: &str) -> String {
        match parse(&args(&format!("lab {text}"))) {
            Err(UsageError(message)) => message,
            other => panic!("{text}: expected an error, got {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let a = lab("");
        assert_eq!(a.mode, LabMode::Run);
        assert!(a.scenarios.is_empty());
        assert!(a.expect_fail.is_empty());
        assert!(!a.keep_going);
        assert_eq!(a.timeout_secs, DEFAULT_TIMEOUT_SECS);
    }

    #[test]
    fn scenarios_in_every_spelling_without_duplicates() {
        let a = lab("--scenario boot --scenario=gntalloc-evtchn -s boot,selftest-fail");
        assert_eq!(a.scenarios, ["boot", "gntalloc-evtchn", "selftest-fail"]);
    }

    #[test]
    fn expected_failures() {
        let a = lab("--expect-fail blk-smoke-wrong-ring-ref --expect-fail=a,b,a -s boot");
        assert_eq!(a.expect_fail, ["blk-smoke-wrong-ring-ref", "a", "b"]);
        assert_eq!(a.scenarios, ["boot"]);
        assert!(lab_err("--expect-fail").contains("needs a value"));
        assert!(lab_err("--expect-fail Bad").contains("not a scenario name"));
        assert!(lab_err("--list --expect-fail boot").contains("cannot be combined"));
    }

    #[test]
    fn flags() {
        let a = lab("--keep-going --timeout 900 --scenario boot");
        assert!(a.keep_going);
        assert_eq!(a.timeout_secs, 900);
        assert_eq!(lab("--timeout=5").timeout_secs, 5);
        assert_eq!(lab("--list").mode, LabMode::List);
        assert_eq!(lab("--shell --timeout 60").mode, LabMode::Shell);
        assert_eq!(parse(&args("lab --list --help")), Ok(Command::LabHelp));
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        assert!(lab_err("--frobnicate").contains("unknown option '--frobnicate'"));
        assert!(lab_err("--timeout").contains("--timeout needs a value"));
        assert!(lab_err("--timeout 0").contains("positive number"));
        assert!(lab_err("--timeout ten").contains("'ten'"));
        assert!(lab_err("--timeout=-3").contains("'-3'"));
        assert!(lab_err("--scenario").contains("needs a value"));
        assert!(lab_err("--scenario Boot").contains("not a scenario name"));
        assert!(lab_err("--scenario a,,b").contains("not a scenario name"));
        assert!(lab_err("boot").contains("--scenario boot"));
        assert!(lab_err("--list --scenario boot").contains("cannot be combined"));
        assert!(lab_err("--list --shell").contains("cannot be combined"));
        assert!(lab_err("--shell --keep-going").contains("cannot be combined"));
        assert!(lab_err("--list --timeout 3").contains("cannot be combined"));
        assert!(lab_err("--keep-going=yes").contains("takes no value"));
    }

    #[test]
    fn top_level() {
        assert_eq!(parse(&args("help")), Ok(Command::Help));
        assert_eq!(parse(&args("drivers")), Ok(Command::Drivers));
        assert!(parse(&args("drivers --fast")).is_err());
        assert_eq!(parse(&args("--help")), Ok(Command::Help));
        assert!(parse(&[]).is_err());
        assert!(parse(&args("build"))
            .unwrap_err()
            .0
            .contains("unknown command 'build'"));
    }
}
