//! `lab`: the program the lab runs inside dom0.
//!
//! ```text
//! lab list [--json]                          the scenarios (the harness reads --json)
//! lab run [--keep-going] [--nonce N] [NAME…] run scenarios here (default: the default set)
//! lab init-run                               run what dom0's kernel command line asks for
//! ```
//! Exit status: 0 when every scenario passed, 1 when one failed, 2 for a usage error.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use lab::runner;
use lab::scenarios::{boot, REGISTRY};
use lab_protocol::RunRequest;

const USAGE: &str = "usage:
  lab list [--json]                           list the scenarios
  lab run [--keep-going] [--nonce N] [NAME...] run scenarios (default: the default set)
  lab init-run                                run what the kernel command line asks for";

fn usage_error(message: &str) -> ExitCode {
    eprintln!("lab: {message}\n{USAGE}");
    ExitCode::from(2)
}

fn list(json: bool) -> ExitCode {
    for info in runner::list(REGISTRY) {
        if json {
            println!("{}", lab_protocol::scenario_info_line(&info));
        } else {
            let default = if info.default {
                ""
            } else {
                " (not run by default)"
            };
            println!("{:<20} {}{default}", info.name, info.description);
        }
    }
    ExitCode::SUCCESS
}

fn finish(summary: &runner::Summary) -> ExitCode {
    if summary.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run(args: &[String]) -> ExitCode {
    let mut keep_going = false;
    let mut nonce = String::from("local");
    let mut names = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--keep-going" => keep_going = true,
            "--nonce" => match it.next() {
                Some(n) if lab_protocol::is_valid_nonce(n) => nonce = n.clone(),
                _ => return usage_error("--nonce needs 4 to 32 letters or digits"),
            },
            flag if flag.starts_with('-') => {
                return usage_error(&format!("unknown flag '{flag}'"));
            }
            name => names.push(name.to_owned()),
        }
    }
    if names.is_empty() {
        names = runner::default_names(REGISTRY);
    }
    let request = RunRequest {
        nonce,
        scenarios: names,
        keep_going,
    };
    let summary = runner::run(
        REGISTRY,
        &request,
        boot::ready_uptime(),
        &mut std::io::stdout(),
    );
    println!();
    for result in &summary.results {
        let verdict = if result.pass { "PASS" } else { "FAIL" };
        let figures: Vec<String> = result.figures.iter().map(ToString::to_string).collect();
        println!(
            "{verdict} {} ({:.2} s) {}",
            result.scenario,
            result.seconds,
            figures.join(", ")
        );
        if !result.pass {
            println!("     {}", result.message);
        }
    }
    for name in &summary.not_run {
        println!("not run: {name}");
    }
    finish(&summary)
}

fn init_run() -> ExitCode {
    let cmdline = match std::fs::read_to_string("/proc/cmdline") {
        Ok(c) => c,
        Err(e) => {
            eprintln!("lab: cannot read /proc/cmdline: {e}");
            return ExitCode::from(2);
        }
    };
    let request = match RunRequest::from_cmdline(&cmdline) {
        Ok(Some(request)) => request,
        Ok(None) => {
            eprintln!(
                "lab: no {} on the kernel command line",
                lab_protocol::NONCE_KEY
            );
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("lab: bad request on the kernel command line: {e}");
            return ExitCode::from(2);
        }
    };
    let summary = runner::run(
        REGISTRY,
        &request,
        boot::ready_uptime(),
        &mut std::io::stdout(),
    );
    finish(&summary)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("list") => match &args[1..] {
            [] => list(false),
            [flag] if flag == "--json" => list(true),
            _ => usage_error("list takes only --json"),
        },
        Some("run") => run(&args[1..]),
        Some("init-run") if args.len() == 1 => init_run(),
        Some("help" | "--help" | "-h") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => usage_error(&format!("unknown command '{other}'")),
        None => usage_error("no command"),
    }
}
