//! The C probe: every row of `win_bindings::layout_rows` becomes a `_Static_assert` in a C file
//! that includes mingw-w64's DDK headers, compiled by clang-19 for `x86_64-w64-mingw32`; the
//! rows clang reports as failing are mismatches between our declarations and the headers.
//! `scripts/setup` installs clang-19 and mingw-w64-x86-64-dev.

use std::path::PathBuf;
use std::process::Command;

use win_bindings::layout_rows::{
    LayoutRow, NDIS_PRELUDE, NDIS_ROWS, SRB_PRELUDE, SRB_ROWS, STORPORT_PRELUDE, STORPORT_ROWS,
};

const CLANG: &str = "clang-19";
const DDK_INCLUDE: &str = "/usr/x86_64-w64-mingw32/include/ddk";
const INCLUDE: &str = "/usr/x86_64-w64-mingw32/include";
/// An error of mingw-w64's `storport.h` itself (it redefines this structure after `srb.h`),
/// not of a probe row.
const KNOWN_HEADER_DEFECT: &str = "_SCSI_WMI_REQUEST_BLOCK";

fn c_source(prelude: &str, rows: &[LayoutRow]) -> String {
    let mut text = format!("/* win-bindings C probe */\n{prelude}#include <stddef.h>\n\n");
    for (i, row) in rows.iter().enumerate() {
        text.push_str(&format!(
            "_Static_assert((unsigned long long)({}) == {}ull, \"probe row {i}\");\n",
            row.c_expr, row.value
        ));
    }
    text
}

/// What clang said: the failing rows, and every other error line (minus the known defect).
struct Outcome {
    failed: Vec<usize>,
    other_errors: Vec<String>,
}

fn compile(name: &str, prelude: &str, rows: &[LayoutRow]) -> Outcome {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.c"));
    std::fs::write(&path, c_source(prelude, rows)).expect("write the probe");
    let output = Command::new(CLANG)
        .args([
            "-target",
            "x86_64-w64-mingw32",
            "-fsyntax-only",
            "-ferror-limit=0",
        ])
        .args(["-Wno-everything", "-I", DDK_INCLUDE, "-isystem", INCLUDE])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {CLANG} (scripts/setup installs it): {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let mut failed = Vec::new();
    let mut other_errors = Vec::new();
    for line in stderr.lines().filter(|l| l.contains("error:")) {
        if let Some(at) = line.find("probe row ") {
            let digits: String = line[at + "probe row ".len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            failed.push(digits.parse().expect("row number"));
        } else if !line.contains(KNOWN_HEADER_DEFECT) {
            other_errors.push(line.to_owned());
        }
    }
    failed.sort_unstable();
    failed.dedup();
    Outcome {
        failed,
        other_errors,
    }
}

fn assert_agrees(name: &str, prelude: &str, rows: &[LayoutRow]) {
    let outcome = compile(name, prelude, rows);
    assert!(
        outcome.other_errors.is_empty(),
        "clang errors other than probe rows:\n{}",
        outcome.other_errors.join("\n")
    );
    let mismatches: Vec<String> = outcome
        .failed
        .iter()
        .map(|&i| format!("{} != {} (ours)", rows[i].c_expr, rows[i].value))
        .collect();
    assert!(
        mismatches.is_empty(),
        "layouts differ from mingw-w64's headers:\n{}",
        mismatches.join("\n")
    );
}

#[test]
fn srb_and_scsi_declarations_agree_with_mingw_headers() {
    assert!(SRB_ROWS.len() > 150, "{} rows", SRB_ROWS.len());
    assert_agrees("srb", SRB_PRELUDE, SRB_ROWS);
}

#[test]
fn ndis_declarations_agree_with_mingw_ntddndis_h() {
    assert!(NDIS_ROWS.len() > 130, "{} rows", NDIS_ROWS.len());
    assert_agrees("ndis", NDIS_PRELUDE, NDIS_ROWS);
}

#[test]
fn scatter_gather_lists_agree_with_mingw_storport_h() {
    assert_agrees("storport", STORPORT_PRELUDE, STORPORT_ROWS);
}

#[test]
fn a_wrong_layout_is_caught_and_named() {
    let mut rows = NDIS_ROWS.to_vec();
    let wrong = [
        "sizeof(NDIS_STATISTICS_INFO)",
        "offsetof(NDIS_OFFLOAD, Rsc)",
    ];
    let mut expected = Vec::new();
    for (i, row) in rows.iter_mut().enumerate() {
        if wrong.contains(&row.c_expr) {
            // A layout one field off: what a missing `Reserved` (64-bit) or a wrong revision
            // would produce.
            row.value += 4;
            expected.push(i);
        }
    }
    assert_eq!(expected.len(), wrong.len(), "the mutated rows exist");
    let outcome = compile("mutated", NDIS_PRELUDE, &rows);
    assert!(
        outcome.other_errors.is_empty(),
        "{:?}",
        outcome.other_errors
    );
    assert_eq!(outcome.failed, expected);
}

#[test]
fn an_expression_the_headers_lack_is_an_error_not_a_pass() {
    let rows = [LayoutRow {
        c_expr: "sizeof(NO_SUCH_STRUCTURE)",
        value: 8,
    }];
    let outcome = compile("unknown", SRB_PRELUDE, &rows);
    assert!(!outcome.other_errors.is_empty());
}
