//! The layout-comparison machinery: a description of each Rust type, a C probe generated from
//! those descriptions, and the comparison between the two.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Which C ABI a description must match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Abi {
    /// The same layout in both ABIs: shared-ring protocols and other ABI-neutral structures.
    Both,
    /// Only the x86_64 ABI (hypercall arguments and structures holding `xen_ulong_t`).
    X86_64,
    /// Only the x86_32 ABI (the `X86_32` variants of a protocol).
    X86_32,
}

impl Abi {
    pub fn includes(self, target: Target) -> bool {
        matches!(
            (self, target),
            (Abi::Both, _) | (Abi::X86_64, Target::X86_64) | (Abi::X86_32, Target::X86_32)
        )
    }
}

/// A C compilation target of the probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    X86_64,
    X86_32,
}

impl Target {
    pub fn flag(self) -> &'static str {
        match self {
            Target::X86_64 => "-m64",
            Target::X86_32 => "-m32",
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Target::X86_64 => "x86_64",
            Target::X86_32 => "x86_32",
        }
    }
}

/// One field of a Rust struct and the C member expression it corresponds to.
#[derive(Clone, Debug)]
pub struct FieldLayout {
    pub rust: &'static str,
    pub c: &'static str,
    pub offset: usize,
    pub size: usize,
}

/// A Rust struct and the C type it must match.
#[derive(Clone, Debug)]
pub struct StructLayout {
    pub abi: Abi,
    pub rust: &'static str,
    pub c_type: &'static str,
    /// A C expression for the size to compare with, when it is not `sizeof(c_type)` (for the
    /// header of a shared ring, which C declares together with its first entry). Alignment is
    /// then not compared, since the C type's alignment is that of the whole.
    pub c_size: Option<&'static str>,
    pub size: usize,
    pub align: usize,
    pub fields: Vec<FieldLayout>,
}

/// A Rust constant and the C expression it must equal.
#[derive(Clone, Debug)]
pub struct ConstCheck {
    pub abi: Abi,
    pub rust: &'static str,
    pub c: &'static str,
    pub value: i128,
}

/// Everything the probe checks.
#[derive(Default)]
pub struct Catalogue {
    pub structs: Vec<StructLayout>,
    pub consts: Vec<ConstCheck>,
}

/// Size of the type a closure returns; used to measure a field without referencing it (which a
/// packed struct would not allow).
pub fn size_of_output<T, F>(_: impl Fn(T) -> F) -> usize {
    size_of::<F>()
}

/// Describes a struct: `layout!(Abi, path::Type = "C type" [size "C expr"] { field => "c.member", ... })`.
///
/// The generated `let Type { .. } = ..` pattern lists every field without `..`, so a Rust field
/// missing from the description is a compile error: no field goes unchecked.
#[macro_export]
macro_rules! layout {
    ($abi:ident, $ty:path = $cty:literal $(size $csize:literal)? { $($field:ident => $cfield:literal),* $(,)? }) => {{
        #[allow(dead_code, clippy::unused_unit)]
        fn every_field_is_described(value: $ty) {
            let $ty { $($field: _),* } = value;
        }
        $crate::harness::StructLayout {
            abi: $crate::harness::Abi::$abi,
            rust: stringify!($ty),
            c_type: $cty,
            c_size: { let _size: Option<&'static str> = None; $(let _size = Some($csize);)? _size },
            size: size_of::<$ty>(),
            align: align_of::<$ty>(),
            fields: vec![$($crate::harness::FieldLayout {
                rust: stringify!($field),
                c: $cfield,
                offset: core::mem::offset_of!($ty, $field),
                size: $crate::harness::size_of_output(|v: $ty| v.$field),
            }),*],
        }
    }};
}

/// Describes constants: `consts!(Abi; path::NAME => "C_EXPR", ...)`.
#[macro_export]
macro_rules! consts {
    ($abi:ident; $($name:path => $c:literal),* $(,)?) => {
        vec![$($crate::harness::ConstCheck {
            abi: $crate::harness::Abi::$abi,
            rust: stringify!($name),
            c: $c,
            value: i128::try_from($name).expect("constant fits in i128"),
        }),*]
    };
}

/// The headers the probe includes, all from the installed `libxen-dev`.
pub const HEADERS: &[&str] = &[
    "xen/xen.h",
    "xen/memory.h",
    "xen/hvm/hvm_op.h",
    "xen/hvm/params.h",
    "xen/hvm/pvdrivers.h",
    "xen/event_channel.h",
    "xen/grant_table.h",
    "xen/sched.h",
    "xen/version.h",
    "xen/features.h",
    "xen/arch-x86/cpuid.h",
    "xen/vcpu.h",
    "xen/io/ring.h",
    "xen/io/blkif.h",
    "xen/io/netif.h",
    "xen/io/vscsiif.h",
    "xen/io/xs_wire.h",
    "xen/io/xenbus.h",
    "xen/io/protocols.h",
];

/// The interface version the probe asks the headers for: the latest of Xen 4.17's headers, so that
/// no definition is hidden behind a compatibility guard.
pub const INTERFACE_VERSION: &str = "0x00040e00";

/// Builds the probe's C source for one target.
pub fn probe_source(catalogue: &Catalogue, target: Target) -> String {
    let mut src = String::new();
    src.push_str("/* Generated by xen-abi's layout test. */\n#include <stdint.h>\n#include <stddef.h>\n#include <stdio.h>\n");
    for header in HEADERS {
        writeln!(src, "#include <{header}>").unwrap();
    }
    src.push_str("#define FIELD_SIZE(t, f) sizeof(((t *)0)->f)\n");
    src.push_str("int main(void) {\n");
    for s in catalogue.structs.iter().filter(|s| s.abi.includes(target)) {
        let size = s
            .c_size
            .map_or_else(|| format!("sizeof({})", s.c_type), str::to_owned);
        writeln!(
            src,
            "  printf(\"S {} %zu %zu\\n\", (size_t)({size}), (size_t)_Alignof({}));",
            s.rust, s.c_type
        )
        .unwrap();
        for f in &s.fields {
            writeln!(
                src,
                "  printf(\"F {}.{} %zu %zu\\n\", (size_t)offsetof({ty}, {m}), (size_t)FIELD_SIZE({ty}, {m}));",
                s.rust,
                f.rust,
                ty = s.c_type,
                m = f.c
            )
            .unwrap();
        }
    }
    for c in catalogue.consts.iter().filter(|c| c.abi.includes(target)) {
        // Print negative values as signed and everything else as unsigned so 64-bit masks survive.
        writeln!(
            src,
            "  if ((long long)({e}) < 0 && ({e}) < 0) printf(\"C {r} %lld\\n\", (long long)({e})); else printf(\"C {r} %llu\\n\", (unsigned long long)({e}));",
            e = c.c,
            r = c.rust
        )
        .unwrap();
    }
    src.push_str("  return 0;\n}\n");
    src
}

/// What the probe printed: sizes/alignments, field offsets/sizes and constant values by Rust name.
#[derive(Default, Debug)]
pub struct ProbeOutput {
    pub structs: BTreeMap<String, (usize, usize)>,
    pub fields: BTreeMap<String, (usize, usize)>,
    pub consts: BTreeMap<String, i128>,
}

pub fn parse_probe_output(text: &str) -> ProbeOutput {
    let mut out = ProbeOutput::default();
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            ["S", name, size, align] => {
                out.structs.insert(
                    (*name).to_owned(),
                    (size.parse().unwrap(), align.parse().unwrap()),
                );
            }
            ["F", name, offset, size] => {
                out.fields.insert(
                    (*name).to_owned(),
                    (offset.parse().unwrap(), size.parse().unwrap()),
                );
            }
            ["C", name, value] => {
                out.consts
                    .insert((*name).to_owned(), value.parse().unwrap());
            }
            _ => panic!("unexpected probe output line: {line:?}"),
        }
    }
    out
}

/// Compares the catalogue with what the C compiler reported; returns one message per mismatch,
/// each naming the target, the struct (or constant) and the field.
pub fn compare(catalogue: &Catalogue, probe: &ProbeOutput, target: Target) -> Vec<String> {
    let t = target.name();
    let mut errors = Vec::new();
    for s in catalogue.structs.iter().filter(|s| s.abi.includes(target)) {
        match probe.structs.get(s.rust) {
            None => errors.push(format!("[{t}] {}: missing from probe output", s.rust)),
            Some(&(size, align)) => {
                if size != s.size {
                    errors.push(format!(
                        "[{t}] {} ({}): size is {} in Rust but {size} in C",
                        s.rust, s.c_type, s.size
                    ));
                }
                // A size override describes part of a C type, whose alignment is the whole's.
                if s.c_size.is_none() && align != s.align {
                    errors.push(format!(
                        "[{t}] {} ({}): alignment is {} in Rust but {align} in C",
                        s.rust, s.c_type, s.align
                    ));
                }
            }
        }
        for f in &s.fields {
            let key = format!("{}.{}", s.rust, f.rust);
            match probe.fields.get(&key) {
                None => errors.push(format!("[{t}] {key}: missing from probe output")),
                Some(&(offset, size)) => {
                    if offset != f.offset {
                        errors.push(format!(
                            "[{t}] {key} (C {}.{}): offset is {} in Rust but {offset} in C",
                            s.c_type, f.c, f.offset
                        ));
                    }
                    if size != f.size {
                        errors.push(format!(
                            "[{t}] {key} (C {}.{}): size is {} in Rust but {size} in C",
                            s.c_type, f.c, f.size
                        ));
                    }
                }
            }
        }
    }
    for c in catalogue.consts.iter().filter(|c| c.abi.includes(target)) {
        match probe.consts.get(c.rust) {
            None => errors.push(format!(
                "[{t}] constant {}: missing from probe output",
                c.rust
            )),
            Some(&value) if value != c.value => errors.push(format!(
                "[{t}] constant {} ({}): {} in Rust but {value} in C",
                c.rust, c.c, c.value
            )),
            Some(_) => {}
        }
    }
    errors
}

/// Where the Xen headers must be; the test fails (never skips) when they are absent.
pub fn check_headers_installed() {
    let ring = Path::new("/usr/include/xen/io/ring.h");
    assert!(
        ring.exists(),
        "Xen's public headers are not installed ({} is missing): run scripts/setup, which installs \
         Debian's libxen-dev and gcc-multilib",
        ring.display()
    );
}

/// Compiles and runs the probe for a target, returning its parsed output.
pub fn run_probe(catalogue: &Catalogue, target: Target) -> ProbeOutput {
    check_headers_installed();
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("layout-probe-{}", target.name()));
    std::fs::create_dir_all(&dir).unwrap();
    let c_path = dir.join("probe.c");
    let exe_path = dir.join("probe");
    std::fs::write(&c_path, probe_source(catalogue, target)).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let compiled = Command::new(&cc)
        .arg(target.flag())
        .arg(format!("-D__XEN_INTERFACE_VERSION__={INTERFACE_VERSION}"))
        .args(["-std=gnu11", "-Wall", "-Werror", "-o"])
        .arg(&exe_path)
        .arg(&c_path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler {cc:?}: {e}"));
    assert!(
        compiled.status.success(),
        "the {} layout probe ({}) did not compile with {cc} {} (for -m32 Debian's gcc-multilib is \
         needed):\n{}",
        target.name(),
        c_path.display(),
        target.flag(),
        String::from_utf8_lossy(&compiled.stderr)
    );
    let ran = Command::new(&exe_path)
        .output()
        .expect("run the layout probe");
    assert!(ran.status.success(), "the layout probe failed: {ran:?}");
    parse_probe_output(&String::from_utf8(ran.stdout).expect("probe output is ASCII"))
}
