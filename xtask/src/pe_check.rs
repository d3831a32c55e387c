//! The image checks every built driver (`.sys`) must pass.
//!
//! [`read_facts`] reads what the rules need from a PE file (with the `object` crate) into
//! [`ImageFacts`]; [`check`] applies the rules and returns every violation with a message:
//! - PE32+ for AMD64, native subsystem;
//! - the entry point is the `DriverEntry` export;
//! - `FORCE_INTEGRITY` and `NX_COMPAT` set;
//! - no section both writable and executable;
//! - base relocations present;
//! - imports only from `ntoskrnl.exe`, `hal.dll`, `storport.sys` and `ndis.sys`, by name, and
//!   only names those modules export according to [`KernelExports`]: the declarations of
//!   `windows-sys` for those modules plus the suite's own `raw-dylib` binding lists (both read
//!   from source, see [`KernelExports::from_sources`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use object::pe;
use object::read::pe::{ImageNtHeaders, ImageOptionalHeader, PeFile64};
use object::LittleEndian as LE;

/// The kernel modules a driver may import from (lower case).
pub const KERNEL_MODULES: [&str; 4] = ["ntoskrnl.exe", "hal.dll", "storport.sys", "ndis.sys"];

/// One section's name and characteristics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The section name.
    pub name: String,
    /// `IMAGE_SCN_*` flags.
    pub characteristics: u32,
}

/// One import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Import {
    /// By name.
    Name(String),
    /// By ordinal.
    Ordinal(u16),
}

impl fmt::Display for Import {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Import::Name(name) => f.write_str(name),
            Import::Ordinal(n) => write!(f, "#{n}"),
        }
    }
}

/// What the rules look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFacts {
    /// `IMAGE_FILE_HEADER.Machine`.
    pub machine: u16,
    /// The optional header's magic (0x20b for PE32+).
    pub magic: u16,
    /// `Subsystem`.
    pub subsystem: u16,
    /// `DllCharacteristics`.
    pub dll_characteristics: u16,
    /// `AddressOfEntryPoint`.
    pub entry_rva: u32,
    /// Named exports and their RVAs.
    pub exports: Vec<(String, u32)>,
    /// The sections.
    pub sections: Vec<Section>,
    /// Size of the base relocation directory.
    pub relocation_bytes: u32,
    /// Imports, by module name as written in the image.
    pub imports: Vec<(String, Vec<Import>)>,
}

/// Reads the facts from a PE32+ file.
pub fn read_facts(data: &[u8]) -> Result<ImageFacts, String> {
    let file = PeFile64::parse(data).map_err(|e| format!("not a PE32+ image: {e}"))?;
    let nt = file.nt_headers();
    let optional = nt.optional_header();
    let mut sections = Vec::new();
    for header in file.section_table().iter() {
        let name = String::from_utf8_lossy(header.raw_name())
            .trim_end_matches('\0')
            .to_owned();
        sections.push(Section {
            name,
            characteristics: header.characteristics.get(LE).0,
        });
    }
    let relocation_bytes = file
        .data_directory(pe::IMAGE_DIRECTORY_ENTRY_BASERELOC)
        .map_or(0, |d| d.size.get(LE));
    let mut exports = Vec::new();
    if let Some(table) = file
        .export_table()
        .map_err(|e| format!("export table: {e}"))?
    {
        for export in table.exports().map_err(|e| format!("exports: {e}"))? {
            if let (Some(name), object::read::pe::ExportTarget::Address(rva)) =
                (export.name, export.target)
            {
                exports.push((String::from_utf8_lossy(name).into_owned(), rva));
            }
        }
    }
    let mut imports = Vec::new();
    if let Some(table) = file
        .import_table()
        .map_err(|e| format!("import table: {e}"))?
    {
        let mut descriptors = table.descriptors().map_err(|e| format!("imports: {e}"))?;
        while let Some(descriptor) = descriptors.next().map_err(|e| format!("imports: {e}"))? {
            let module = table
                .name(descriptor.name.get(LE))
                .map_err(|e| format!("import module name: {e}"))?;
            let module = String::from_utf8_lossy(module).into_owned();
            let first_thunk = match descriptor.original_first_thunk.get(LE) {
                0 => descriptor.first_thunk.get(LE),
                rva => rva,
            };
            let mut thunks = table
                .thunks(first_thunk)
                .map_err(|e| format!("imports of {module}: {e}"))?;
            let mut names = Vec::new();
            while let Some(thunk) = thunks
                .next::<pe::ImageNtHeaders64>()
                .map_err(|e| format!("imports of {module}: {e}"))?
            {
                match table
                    .import::<pe::ImageNtHeaders64>(thunk)
                    .map_err(|e| format!("imports of {module}: {e}"))?
                {
                    object::read::pe::Import::Name(_hint, name) => {
                        names.push(Import::Name(String::from_utf8_lossy(name).into_owned()))
                    }
                    object::read::pe::Import::Ordinal(ordinal) => {
                        names.push(Import::Ordinal(ordinal))
                    }
                }
            }
            imports.push((module, names));
        }
    }
    Ok(ImageFacts {
        machine: nt.file_header().machine.get(LE).0,
        magic: optional.magic(),
        subsystem: optional.subsystem().0,
        dll_characteristics: optional.dll_characteristics().0,
        entry_rva: optional.address_of_entry_point(),
        exports,
        sections,
        relocation_bytes,
        imports,
    })
}

/// The names each kernel module exports, as far as the suite knows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelExports {
    /// Module (lower case) to names.
    pub by_module: BTreeMap<String, BTreeSet<String>>,
}

impl KernelExports {
    /// Whether `module` (any case) exports `name`.
    pub fn exports(&self, module: &str, name: &str) -> bool {
        self.by_module
            .get(&module.to_ascii_lowercase())
            .is_some_and(|names| names.contains(name))
    }

    fn add(&mut self, module: &str, name: &str) {
        let module = module.to_ascii_lowercase();
        if KERNEL_MODULES.contains(&module.as_str()) {
            self.by_module
                .entry(module)
                .or_default()
                .insert(name.to_owned());
        }
    }

    /// Adds the functions of `windows_link::link!("module" "abi" ["link name"] fn Name(...)`
    /// lines (how `windows-sys` declares its imports) for the kernel modules.
    pub fn add_windows_sys_source(&mut self, text: &str) {
        for line in text.lines() {
            let Some(at) = line.find("link!(\"") else {
                continue;
            };
            let rest = &line[at + "link!(\"".len()..];
            let Some((module, rest)) = rest.split_once('"') else {
                continue;
            };
            let Some((before_fn, after_fn)) = rest.split_once(" fn ") else {
                continue;
            };
            // An optional third literal is the symbol's link name.
            let literals: Vec<&str> = before_fn.split('"').collect();
            let name = if literals.len() >= 5 {
                literals[3].to_owned()
            } else {
                identifier_prefix(after_fn.trim_start()).to_owned()
            };
            if !name.is_empty() {
                self.add(module, &name);
            }
        }
    }

    /// Adds the functions declared in extern blocks under `link(name = "module", kind =
    /// "raw-dylib", ...)`, written as `#[link(...)]` or inside `#[cfg_attr(..., link(...))]` (how
    /// the suite's binding crates declare their imports).
    pub fn add_binding_source(&mut self, text: &str) {
        let mut rest = text;
        const TOKEN: &str = "link(name = \"";
        while let Some(at) = rest.find(TOKEN) {
            rest = &rest[at + TOKEN.len()..];
            let Some((module, after)) = rest.split_once('"') else {
                break;
            };
            let attribute_end = after.find(")]").unwrap_or(0);
            if !after[..attribute_end].contains("raw-dylib") {
                continue;
            }
            let Some(open) = after.find('{') else { break };
            let body = &after[open + 1..];
            let close = body.find("\n}").unwrap_or(body.len());
            for item in body[..close].split("fn ").skip(1) {
                let name = identifier_prefix(item);
                if !name.is_empty() {
                    self.add(module, name);
                }
            }
            rest = &body[close..];
        }
    }

    /// Reads `windows-sys`'s sources (all `.rs` files under `windows_sys_src`) and the binding
    /// sources (all `.rs` files under each of `binding_dirs`).
    pub fn from_sources(windows_sys_src: &Path, binding_dirs: &[PathBuf]) -> Result<Self, String> {
        let mut exports = Self::default();
        for file in rust_files(windows_sys_src)? {
            let text =
                std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            exports.add_windows_sys_source(&text);
        }
        for dir in binding_dirs {
            for file in rust_files(dir)? {
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| format!("{}: {e}", file.display()))?;
                exports.add_binding_source(&text);
            }
        }
        if !exports.exports("ntoskrnl.exe", "IoCreateDevice") {
            return Err(format!(
                "no ntoskrnl.exe declarations found under {}",
                windows_sys_src.display()
            ));
        }
        Ok(exports)
    }
}

fn identifier_prefix(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

fn rust_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// Not AMD64.
    Machine(u16),
    /// Not PE32+.
    NotPe32Plus(u16),
    /// Not the native subsystem.
    Subsystem(u16),
    /// No `DriverEntry` export.
    NoDriverEntryExport,
    /// The entry point is not `DriverEntry`.
    EntryNotDriverEntry {
        /// `AddressOfEntryPoint`.
        entry: u32,
        /// The export's RVA.
        driver_entry: u32,
    },
    /// `IMAGE_DLLCHARACTERISTICS_FORCE_INTEGRITY` clear.
    NoForceIntegrity,
    /// `IMAGE_DLLCHARACTERISTICS_NX_COMPAT` clear.
    NoNxCompat,
    /// A section is writable and executable.
    WritableExecutable(String),
    /// No base relocations.
    NoRelocations,
    /// An import from a module that is not a kernel module.
    ForeignModule(String),
    /// An import by ordinal.
    ImportByOrdinal {
        /// The module.
        module: String,
        /// The ordinal.
        ordinal: u16,
    },
    /// An import of a name the module does not export.
    UnknownImport {
        /// The module.
        module: String,
        /// The name.
        name: String,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Machine(m) => write!(f, "machine is {m:#06x}, not AMD64 (0x8664)"),
            Self::NotPe32Plus(m) => write!(f, "optional header magic {m:#x}: not PE32+ (0x20b)"),
            Self::Subsystem(s) => write!(f, "subsystem is {s}, not native (1)"),
            Self::NoDriverEntryExport => f.write_str("no DriverEntry export"),
            Self::EntryNotDriverEntry {
                entry,
                driver_entry,
            } => write!(
                f,
                "entry point {entry:#x} is not DriverEntry ({driver_entry:#x})"
            ),
            Self::NoForceIntegrity => f.write_str("FORCE_INTEGRITY is not set"),
            Self::NoNxCompat => f.write_str("NX_COMPAT is not set"),
            Self::WritableExecutable(s) => write!(f, "section {s} is writable and executable"),
            Self::NoRelocations => f.write_str("no base relocations"),
            Self::ForeignModule(m) => write!(
                f,
                "imports from {m}, which is not one of {}",
                KERNEL_MODULES.join(", ")
            ),
            Self::ImportByOrdinal { module, ordinal } => {
                write!(
                    f,
                    "imports ordinal {ordinal} from {module} (only names are allowed)"
                )
            }
            Self::UnknownImport { module, name } => {
                write!(
                    f,
                    "imports {name} from {module}, which {module} does not export"
                )
            }
        }
    }
}

/// Applies every rule.
pub fn check(facts: &ImageFacts, known: &KernelExports) -> Vec<Violation> {
    let mut violations = Vec::new();
    if facts.machine != pe::IMAGE_FILE_MACHINE_AMD64.0 {
        violations.push(Violation::Machine(facts.machine));
    }
    if facts.magic != pe::IMAGE_NT_OPTIONAL_HDR64_MAGIC {
        violations.push(Violation::NotPe32Plus(facts.magic));
    }
    if facts.subsystem != pe::IMAGE_SUBSYSTEM_NATIVE.0 {
        violations.push(Violation::Subsystem(facts.subsystem));
    }
    match facts.exports.iter().find(|(name, _)| name == "DriverEntry") {
        None => violations.push(Violation::NoDriverEntryExport),
        Some(&(_, rva)) if rva != facts.entry_rva => {
            violations.push(Violation::EntryNotDriverEntry {
                entry: facts.entry_rva,
                driver_entry: rva,
            })
        }
        Some(_) => {}
    }
    if facts.dll_characteristics & pe::IMAGE_DLLCHARACTERISTICS_FORCE_INTEGRITY.0 == 0 {
        violations.push(Violation::NoForceIntegrity);
    }
    if facts.dll_characteristics & pe::IMAGE_DLLCHARACTERISTICS_NX_COMPAT.0 == 0 {
        violations.push(Violation::NoNxCompat);
    }
    for section in &facts.sections {
        let wx = pe::IMAGE_SCN_MEM_WRITE.0 | pe::IMAGE_SCN_MEM_EXECUTE.0;
        if section.characteristics & wx == wx {
            violations.push(Violation::WritableExecutable(section.name.clone()));
        }
    }
    if facts.relocation_bytes == 0 {
        violations.push(Violation::NoRelocations);
    }
    for (module, imports) in &facts.imports {
        if !KERNEL_MODULES.contains(&module.to_ascii_lowercase().as_str()) {
            violations.push(Violation::ForeignModule(module.clone()));
            continue;
        }
        for import in imports {
            match import {
                Import::Ordinal(ordinal) => violations.push(Violation::ImportByOrdinal {
                    module: module.clone(),
                    ordinal: *ordinal,
                }),
                Import::Name(name) if !known.exports(module, name) => {
                    violations.push(Violation::UnknownImport {
                        module: module.clone(),
                        name: name.clone(),
                    })
                }
                Import::Name(_) => {}
            }
        }
    }
    violations
}

/// A one-line summary of a passing image.
pub fn summary(facts: &ImageFacts) -> String {
    let imports: Vec<String> = facts
        .imports
        .iter()
        .map(|(module, names)| format!("{module} ({} names)", names.len()))
        .collect();
    format!(
        "PE32+ AMD64, native, entry DriverEntry at {:#x}, FORCE_INTEGRITY, NX_COMPAT, no W+X section, {} bytes of relocations, imports: {}",
        facts.entry_rva,
        facts.relocation_bytes,
        imports.join(", ")
    )
}

/// The longest routine name [`utf16_identifiers`] collects.
const ROUTINE_NAME_MAX: usize = 512;

/// UTF-16LE strings in `bytes` that look like routine names (a capital letter, then at least
/// five letters or digits): what a driver hands to `MmGetSystemRoutineAddress`.
pub fn utf16_identifiers(bytes: &[u8]) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for parity in 0..2 {
        let mut current = String::new();
        let mut at = parity;
        while at + 1 < bytes.len() {
            let unit = u16::from_le_bytes([bytes[at], bytes[at + 1]]);
            let is_name_char = unit < 0x80 && (unit as u8).is_ascii_alphanumeric();
            if is_name_char && current.len() < ROUTINE_NAME_MAX {
                current.push(unit as u8 as char);
            } else {
                if unit == 0
                    && current.len() >= 6
                    && current.starts_with(|c: char| c.is_ascii_uppercase())
                    && !found.contains(&current)
                {
                    found.push(current.clone());
                }
                current.clear();
            }
            at += 2;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> ImageFacts {
        ImageFacts {
            machine: pe::IMAGE_FILE_MACHINE_AMD64.0,
            magic: pe::IMAGE_NT_OPTIONAL_HDR64_MAGIC,
            subsystem: pe::IMAGE_SUBSYSTEM_NATIVE.0,
            dll_characteristics: pe::IMAGE_DLLCHARACTERISTICS_FORCE_INTEGRITY.0
                | pe::IMAGE_DLLCHARACTERISTICS_NX_COMPAT.0
                | pe::IMAGE_DLLCHARACTERISTICS_DYNAMIC_BASE.0,
            entry_rva: 0x1000,
            exports: vec![("DriverEntry".into(), 0x1000)],
            sections: vec![
                Section {
                    name: ".text".into(),
                    characteristics: pe::IMAGE_SCN_MEM_EXECUTE.0 | pe::IMAGE_SCN_MEM_READ.0,
                },
                Section {
                    name: ".data".into(),
                    characteristics: pe::IMAGE_SCN_MEM_WRITE.0 | pe::IMAGE_SCN_MEM_READ.0,
                },
            ],
            relocation_bytes: 0x2c,
            imports: vec![(
                "ntoskrnl.exe".into(),
                vec![Import::Name("IoCreateDevice".into())],
            )],
        }
    }

    fn known() -> KernelExports {
        let mut k = KernelExports::default();
        k.add_windows_sys_source(
            "windows_link::link!(\"ntoskrnl.exe\" \"system\" fn IoCreateDevice(a : u32) -> i32);\n\
             windows_link::link!(\"ntdll.dll\" \"C\" fn DbgPrintEx(c : u32, ...) -> u32);\n\
             windows_link::link!(\"hal.dll\" \"system\" \"HalRenamed\" fn HalOriginal());",
        );
        k
    }

    #[test]
    fn a_good_image_passes() {
        assert_eq!(check(&good(), &known()), vec![]);
    }

    #[test]
    fn each_rule_reports_its_violation() {
        let k = known();
        let mut f = good();
        f.machine = pe::IMAGE_FILE_MACHINE_I386.0;
        f.subsystem = pe::IMAGE_SUBSYSTEM_WINDOWS_GUI.0;
        f.dll_characteristics = 0;
        f.relocation_bytes = 0;
        f.entry_rva = 0x2000;
        f.sections[1].characteristics |= pe::IMAGE_SCN_MEM_EXECUTE.0;
        let v = check(&f, &k);
        assert_eq!(
            v,
            vec![
                Violation::Machine(pe::IMAGE_FILE_MACHINE_I386.0),
                Violation::Subsystem(pe::IMAGE_SUBSYSTEM_WINDOWS_GUI.0),
                Violation::EntryNotDriverEntry {
                    entry: 0x2000,
                    driver_entry: 0x1000
                },
                Violation::NoForceIntegrity,
                Violation::NoNxCompat,
                Violation::WritableExecutable(".data".into()),
                Violation::NoRelocations,
            ]
        );
        assert_eq!(v[5].to_string(), "section .data is writable and executable");
    }

    #[test]
    fn imports_are_checked_by_module_and_name() {
        let k = known();
        let mut f = good();
        f.exports.clear();
        f.imports = vec![
            (
                "NTOSKRNL.EXE".into(),
                vec![
                    Import::Name("IoCreateDevice".into()),
                    Import::Name("IoCreateDevic3".into()),
                    Import::Ordinal(7),
                ],
            ),
            ("ntdll.dll".into(), vec![Import::Name("DbgPrintEx".into())]),
            ("hal.dll".into(), vec![Import::Name("HalRenamed".into())]),
        ];
        let v = check(&f, &k);
        assert_eq!(
            v,
            vec![
                Violation::NoDriverEntryExport,
                Violation::UnknownImport {
                    module: "NTOSKRNL.EXE".into(),
                    name: "IoCreateDevic3".into()
                },
                Violation::ImportByOrdinal {
                    module: "NTOSKRNL.EXE".into(),
                    ordinal: 7
                },
                Violation::ForeignModule("ntdll.dll".into()),
            ]
        );
        assert!(v[3].to_string().contains("not one of ntoskrnl.exe"));
    }

    #[test]
    fn windows_sys_lines_outside_the_kernel_modules_are_ignored() {
        let k = known();
        assert!(k.exports("ntoskrnl.exe", "IoCreateDevice"));
        assert!(k.exports("HAL.DLL", "HalRenamed"));
        assert!(!k.exports("hal.dll", "HalOriginal"));
        assert!(!k.exports("ntdll.dll", "DbgPrintEx"));
    }

    #[test]
    fn binding_blocks_are_read() {
        let mut k = KernelExports::default();
        k.add_binding_source(
            "#[link(name = \"ntoskrnl.exe\", kind = \"raw-dylib\", modifiers = \"+verbatim\")]\n\
             unsafe extern \"C\" {\n    pub fn DbgPrintEx(c: u32, ...) -> u32;\n}\n\
             fn not_an_import() {}\n\
             #[link(name = \"storport.sys\", kind = \"raw-dylib\")]\n\
             unsafe extern \"system\" {\n    pub fn StorPortInitialize(a: *mut u8) -> u32;\n    pub fn StorPortNotification(t: u32, ...);\n}\n\
             #[cfg_attr(\n    target_os = \"windows\",\n    link(name = \"hal.dll\", kind = \"raw-dylib\", modifiers = \"+verbatim\")\n)]\n\
             unsafe extern \"system\" {\n    pub fn KeStallExecutionProcessor(us: u32);\n}\n\
             #[link(name = \"user32.dll\", kind = \"raw-dylib\")]\n\
             unsafe extern \"system\" {\n    pub fn MessageBoxW();\n}\n",
        );
        assert!(k.exports("ntoskrnl.exe", "DbgPrintEx"));
        assert!(k.exports("storport.sys", "StorPortInitialize"));
        assert!(k.exports("storport.sys", "StorPortNotification"));
        assert!(k.exports("hal.dll", "KeStallExecutionProcessor"));
        assert!(!k.exports("ntoskrnl.exe", "not_an_import"));
        assert!(!k.by_module.contains_key("user32.dll"));
    }

    #[test]
    fn garbage_is_not_an_image() {
        let err = read_facts(b"MZ not really").unwrap_err();
        assert!(err.starts_with("not a PE32+ image"), "{err}");
    }

    /// A minimal PE32+ image with one section holding an import directory (ntoskrnl.exe:
    /// DbgPrint and ordinal 7) and an export directory (DriverEntry).
    fn image() -> Vec<u8> {
        let mut b = vec![0u8; 0x400];
        b[0..2].copy_from_slice(b"MZ");
        b[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
        b[0x80..0x84].copy_from_slice(b"PE\0\0");
        b[0x86..0x88].copy_from_slice(&1u16.to_le_bytes()); // one section
        b[0x94..0x96].copy_from_slice(&240u16.to_le_bytes()); // optional header size
        let opt = 0x98;
        b[opt..opt + 2].copy_from_slice(&0x20bu16.to_le_bytes());
        b[opt + 108..opt + 112].copy_from_slice(&16u32.to_le_bytes());
        let dir = |b: &mut Vec<u8>, i: usize, rva: u32, size: u32| {
            b[opt + 112 + 8 * i..opt + 116 + 8 * i].copy_from_slice(&rva.to_le_bytes());
            b[opt + 116 + 8 * i..opt + 120 + 8 * i].copy_from_slice(&size.to_le_bytes());
        };
        dir(&mut b, 0, 0x1100, 0x80);
        dir(&mut b, 1, 0x1000, 40);
        // Section: RVA 0x1000, raw at 0x200, 0x200 bytes.
        let sec = opt + 240;
        b[sec + 8..sec + 12].copy_from_slice(&0x200u32.to_le_bytes());
        b[sec + 12..sec + 16].copy_from_slice(&0x1000u32.to_le_bytes());
        b[sec + 16..sec + 20].copy_from_slice(&0x200u32.to_le_bytes());
        b[sec + 20..sec + 24].copy_from_slice(&0x200u32.to_le_bytes());
        let put32 = |b: &mut Vec<u8>, rva: usize, v: u32| {
            let o = rva - 0x1000 + 0x200;
            b[o..o + 4].copy_from_slice(&v.to_le_bytes());
        };
        let put = |b: &mut Vec<u8>, rva: usize, s: &[u8]| {
            let o = rva - 0x1000 + 0x200;
            b[o..o + s.len()].copy_from_slice(s);
        };
        // Import descriptor at 0x1000: lookup table 0x1040, name 0x1080, IAT 0x1040.
        put32(&mut b, 0x1000, 0x1040);
        put32(&mut b, 0x100c, 0x1080);
        put32(&mut b, 0x1010, 0x1040);
        put32(&mut b, 0x1040, 0x1090); // hint/name entry
        put32(&mut b, 0x1048, 7);
        put32(&mut b, 0x104c, 0x8000_0000); // ordinal flag (bit 63)
        put(&mut b, 0x1080, b"ntoskrnl.exe\0");
        put(&mut b, 0x1092, b"DbgPrint\0");
        // Export directory at 0x1100: one function (RVA 0x1190, outside the directory, address table at 0x1160) with
        // one name at 0x1140 -> "DriverEntry" (ordinal table at 0x1148).
        put32(&mut b, 0x1100 + 20, 1);
        put32(&mut b, 0x1100 + 24, 1);
        put32(&mut b, 0x1100 + 28, 0x1160);
        put32(&mut b, 0x1100 + 32, 0x1140);
        put32(&mut b, 0x1100 + 36, 0x1148);
        put32(&mut b, 0x1140, 0x1150);
        put(&mut b, 0x1150, b"DriverEntry\0");
        put32(&mut b, 0x1160, 0x1190);
        b
    }

    #[test]
    fn reads_imports_and_exports() {
        let facts = read_facts(&image()).unwrap();
        assert_eq!(
            facts.imports,
            [(
                "ntoskrnl.exe".to_owned(),
                vec![Import::Name("DbgPrint".into()), Import::Ordinal(7)]
            )]
        );
        assert_eq!(facts.exports, [("DriverEntry".to_owned(), 0x1190)]);
    }

    #[test]
    fn malformed_images_are_errors_not_panics() {
        let good = image();
        assert!(read_facts(b"MZ").is_err());
        let mut not64 = good.clone();
        not64[0x98] = 0x0b;
        not64[0x99] = 0x01;
        assert!(read_facts(&not64).is_err());
        // Every truncation and every single-byte corruption: errors or results, never a panic.
        for len in 0..good.len() {
            let _ = read_facts(&good[..len]);
        }
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0xff;
            let _ = read_facts(&bad);
        }
    }

    #[test]
    fn finds_utf16_routine_names() {
        let mut bytes = vec![1u8, 2, 3];
        for unit in "ExAllocatePool2\0short\0".encode_utf16() {
            bytes.extend_from_slice(&unit.to_le_bytes());
        }
        assert_eq!(utf16_identifiers(&bytes), ["ExAllocatePool2"]);
    }
}
