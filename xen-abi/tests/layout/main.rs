//! Checks every `#[repr(C)]` type and constant of xen-abi against Xen's installed public headers.
//!
//! A C probe generated from the descriptions below is compiled with the system C compiler for
//! `-m64` and `-m32` and prints `sizeof`, `_Alignof`, `offsetof` and member sizes, and constant
//! values; each must equal what the Rust compiler computed for the Rust definition.

#[macro_use]
mod harness;

mod blkif;
mod cprogram;
mod cpuid;
mod event_channel;
mod features;
mod grant_table;
mod hvm;
mod hypercall;
mod memory;
mod netif;
mod padding;
mod ring;
mod sched;
mod shared_info;
mod unplug;
mod version;
mod vscsiif;
mod xenbus;
mod xenstore;

use harness::{Catalogue, Target};

/// The full catalogue of checked structs and constants, one module per area of the ABI.
fn catalogue() -> Catalogue {
    let mut catalogue = Catalogue::default();
    blkif::describe(&mut catalogue);
    cpuid::describe(&mut catalogue);
    event_channel::describe(&mut catalogue);
    features::describe(&mut catalogue);
    grant_table::describe(&mut catalogue);
    hvm::describe(&mut catalogue);
    hypercall::describe(&mut catalogue);
    memory::describe(&mut catalogue);
    netif::describe(&mut catalogue);
    ring::describe(&mut catalogue);
    sched::describe(&mut catalogue);
    shared_info::describe(&mut catalogue);
    version::describe(&mut catalogue);
    vscsiif::describe(&mut catalogue);
    xenbus::describe(&mut catalogue);
    xenstore::describe(&mut catalogue);
    catalogue
}

fn assert_target_matches(target: Target) {
    let catalogue = catalogue();
    let probe = harness::run_probe(&catalogue, target);
    let errors = harness::compare(&catalogue, &probe, target);
    assert!(
        errors.is_empty(),
        "{} layout mismatches against Xen's headers:\n{}",
        errors.len(),
        errors.join("\n")
    );
    let checked = catalogue
        .structs
        .iter()
        .filter(|s| s.abi.includes(target))
        .count();
    let consts = catalogue
        .consts
        .iter()
        .filter(|c| c.abi.includes(target))
        .count();
    assert!(checked > 0, "no struct was checked for {}", target.name());
    println!(
        "{}: {checked} structs and {consts} constants match",
        target.name()
    );
}

#[test]
fn layouts_match_xen_headers_x86_64() {
    assert_target_matches(Target::X86_64);
}

#[test]
fn layouts_match_xen_headers_x86_32() {
    assert_target_matches(Target::X86_32);
}

/// A deliberately wrong copy of the ring header: `rsp_prod` and `req_event` swapped, and 4 bytes
/// of padding missing.
#[allow(dead_code)]
#[repr(C)]
struct WrongRingHeader {
    req_prod: u32,
    rsp_prod: u32,
    req_event: u32,
    rsp_event: u32,
    pvt: [u8; 4],
    pad: [u8; 40],
}

#[test]
fn comparison_catches_a_wrong_layout() {
    let mut catalogue = Catalogue::default();
    catalogue.structs.push(layout!(Both, WrongRingHeader = "struct blkif_sring" size "offsetof(struct blkif_sring, ring)" {
        req_prod => "req_prod",
        rsp_prod => "rsp_prod",
        req_event => "req_event",
        rsp_event => "rsp_event",
        pvt => "pvt",
        pad => "__pad",
    }));
    const WRONG_SLOT_SIZE: u32 = 5;
    catalogue
        .consts
        .extend(consts!(Both; WRONG_SLOT_SIZE => "BLKIF_OP_WRITE"));
    let probe = harness::run_probe(&catalogue, Target::X86_64);
    let errors = harness::compare(&catalogue, &probe, Target::X86_64);
    let expect = [
        "WrongRingHeader (struct blkif_sring): size is 60 in Rust but 64 in C",
        "WrongRingHeader.rsp_prod (C struct blkif_sring.rsp_prod): offset is 4 in Rust but 8 in C",
        "WrongRingHeader.req_event (C struct blkif_sring.req_event): offset is 8 in Rust but 4 in C",
        "WrongRingHeader.pad (C struct blkif_sring.__pad): size is 40 in Rust but 44 in C",
        "constant WRONG_SLOT_SIZE (BLKIF_OP_WRITE): 5 in Rust but 1 in C",
    ];
    for e in expect {
        assert!(
            errors.iter().any(|got| got.ends_with(e)),
            "expected a mismatch {e:?}, got:\n{}",
            errors.join("\n")
        );
    }
    assert_eq!(
        errors.len(),
        expect.len(),
        "unexpected extra mismatches: {errors:#?}"
    );
}

/// Every `#[repr(C...)]` struct in the crate's sources must be in the catalogue and in the C-names
/// table of the crate docs, so that a new type cannot skip the check.
#[test]
fn every_repr_c_struct_is_checked_and_documented() {
    let catalogue = catalogue();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let names_table = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("C-NAMES.md"),
    )
    .unwrap();
    let mut missing = Vec::new();
    let mut found = 0;
    let mut stack = vec![src];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut repr_c = false;
        for line in text.lines().map(str::trim) {
            if line.starts_with("#[repr(C") {
                repr_c = true;
            } else if let Some(rest) = line.strip_prefix("pub struct ") {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if repr_c {
                    found += 1;
                    let module = path.file_stem().unwrap().to_string_lossy();
                    let qualified = format!("{module}::{name}");
                    if !catalogue
                        .structs
                        .iter()
                        .any(|s| s.rust.ends_with(&qualified) || s.rust == name)
                    {
                        missing.push(format!("{qualified}: not described in tests/layout"));
                    }
                    if !names_table.contains(&format!("`{qualified}`")) {
                        missing.push(format!(
                            "{qualified}: not in the C-names table (C-NAMES.md)"
                        ));
                    }
                }
                repr_c = false;
            } else if !line.starts_with("#[") && !line.starts_with("///") && !line.is_empty() {
                repr_c = false;
            }
        }
    }
    assert!(found > 0, "no #[repr(C)] struct found in the sources");
    assert!(
        missing.is_empty(),
        "unchecked or undocumented types:\n{}",
        missing.join("\n")
    );
}
