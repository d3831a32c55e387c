//! `cargo xtask`: the project's own commands (see `cargo xtask help`).
//!
//! - `cargo xtask lab`: boot Xen and a Linux dom0 under QEMU and run the lab's scenarios in dom0
//!   (see `lab/README.md`).
//! - `cargo xtask drivers`: build the Windows drivers into `.sys` images, run clippy for the
//!   Windows target and the image checks (see the README).
//! - `cargo xtask inf`: stamp every driver's INF template into `target/drivers/x64/` and check it.
//! - `cargo xtask wine-check`: the Wine load test of the built drivers (see `windows/WINE.md`).
//! - `cargo xtask package`: the drivers, their catalogs, test signatures and the MSI, verified
//!   (see `installer/README.md`).
#![forbid(unsafe_code)]

use std::process::ExitCode;

mod cli;
mod drivers;
mod host;
mod hvm_guest;
mod inf;
mod initramfs;
mod lab;
mod layout_probe;
mod package;
mod package_wine;
mod pe_check;
mod qemu;
mod report;
mod wine;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("inf") => {
            return match &args[1..] {
                [] => inf::main(None),
                [flag, dir] if flag == "--out" => inf::main(Some(dir)),
                _ => {
                    eprintln!("usage: cargo xtask inf [--out DIR]");
                    ExitCode::from(2)
                }
            }
        }
        Some("package") if args.len() == 1 => return package::main(),
        Some("wine-check") => {
            return match wine::parse_args(&args[1..]) {
                Ok(Some(wine_args)) => wine::main(&wine_args),
                Ok(None) => {
                    println!("{}", wine::USAGE);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}\n\n{}", wine::USAGE);
                    ExitCode::from(2)
                }
            }
        }
        _ => {}
    }
    match cli::parse(&args) {
        Ok(cli::Command::Help) => {
            println!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Ok(cli::Command::LabHelp) => {
            println!("{}", cli::LAB_USAGE);
            ExitCode::SUCCESS
        }
        Ok(cli::Command::Lab(lab_args)) => lab::main(&lab_args),
        Ok(cli::Command::Drivers) => drivers::main(),
        Err(e) => {
            let usage = if args.first().is_some_and(|a| a == "lab") {
                cli::LAB_USAGE
            } else {
                cli::USAGE
            };
            eprintln!("error: {e}\n\n{usage}");
            ExitCode::from(2)
        }
    }
}
