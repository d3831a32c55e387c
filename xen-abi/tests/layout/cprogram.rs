//! Small C programs against Xen's headers, for what the catalogue cannot express: string
//! constants and the X-macro product list of `hvm/pvdrivers.h`.

use std::process::Command;

use crate::harness::{self, Target};

/// Compiles `body` (the statements of `main`, after every header of [`harness::HEADERS`]) for
/// `target`, runs it and returns what it printed.
pub fn run(name: &str, body: &str, target: Target) -> String {
    harness::check_headers_installed();
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("cprogram-{name}-{}", target.name()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut src = String::from("#include <stdint.h>\n#include <stddef.h>\n#include <stdio.h>\n");
    for header in harness::HEADERS {
        src.push_str(&format!("#include <{header}>\n"));
    }
    src.push_str(&format!("int main(void) {{\n{body}\n  return 0;\n}}\n"));
    let c_path = dir.join(format!("{name}.c"));
    let exe_path = dir.join(name);
    std::fs::write(&c_path, src).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let compiled = Command::new(&cc)
        .arg(target.flag())
        .arg(format!(
            "-D__XEN_INTERFACE_VERSION__={}",
            harness::INTERFACE_VERSION
        ))
        .args(["-std=gnu11", "-Wall", "-Werror", "-o"])
        .arg(&exe_path)
        .arg(&c_path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler {cc:?}: {e}"));
    assert!(
        compiled.status.success(),
        "{} did not compile with {cc} {}:\n{}",
        c_path.display(),
        target.flag(),
        String::from_utf8_lossy(&compiled.stderr)
    );
    let ran = Command::new(&exe_path).output().expect("run the C program");
    assert!(
        ran.status.success(),
        "{} failed: {ran:?}",
        exe_path.display()
    );
    String::from_utf8(ran.stdout).expect("the C program prints ASCII")
}
