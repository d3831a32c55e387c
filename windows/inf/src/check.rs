//! The checker: what `infverif` would refuse in our INFs, checked on any host.
//!
//! Starting from `[Version]` and `[Manufacturer]`, the checker follows every reference the
//! installer would follow for one architecture — models section, install section (`DDInstall`,
//! chosen the way setupapi chooses it: `.NTamd64`, then `.NT`, then undecorated), its `.Services`
//! and `.HW` sections, `CopyFiles`, `AddReg`/`DelReg`, `AddService` and its service-install
//! section, `DestinationDirs`, `SourceDisksNames`, `SourceDisksFiles` — and reports each missing
//! or malformed piece as a [`Problem`] with its line. Every `%string%` token outside `[Strings]`
//! must be defined there, and no stamping placeholder (`$ARCH$`) may be left.

use std::fmt;

use crate::parse::{eq_name, Entry, Inf, Section};
use crate::Arch;

/// One thing wrong with an INF, with the line it is on (0 when it is about a missing piece).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The line (1-based), or 0 when the problem is an absence.
    pub line: usize,
    /// What is wrong.
    pub kind: ProblemKind,
}

/// What is wrong (each with a stable [`ProblemKind::code`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemKind {
    /// A section that is referenced (or required) does not exist.
    MissingSection {
        /// The section's name (for a decorated lookup: the undecorated name and the decoration).
        name: String,
        /// Who refers to it.
        referenced_by: String,
    },
    /// A required directive is absent from a section.
    MissingDirective {
        /// The section.
        section: String,
        /// The directive.
        directive: &'static str,
    },
    /// A directive has a value it may not have.
    BadValue {
        /// The directive.
        directive: String,
        /// The value found.
        value: String,
        /// What it should be.
        expected: &'static str,
    },
    /// `ClassGuid` is not the GUID of `Class`.
    ClassGuidMismatch {
        /// The class name.
        class: String,
        /// The GUID found.
        found: String,
        /// The class's GUID.
        expected: &'static str,
    },
    /// `[Manufacturer]` has no decoration for the architecture being checked.
    MissingArchDecoration {
        /// The models section.
        models: String,
        /// The decoration expected (`NTamd64`).
        expected: &'static str,
    },
    /// A decoration naming no known platform.
    UnknownDecoration {
        /// The decoration.
        decoration: String,
    },
    /// A hardware or compatible ID that Windows would not match.
    BadHardwareId {
        /// The ID.
        id: String,
        /// Why.
        reason: &'static str,
    },
    /// A `%name%` token with no entry in `[Strings]`.
    UndefinedString {
        /// The token's name.
        name: String,
    },
    /// An odd number of `%` in an entry.
    UnbalancedPercent,
    /// A stamping placeholder (`$ARCH$`, ...) left in the text.
    UnstampedPlaceholder {
        /// The placeholder.
        placeholder: String,
    },
    /// A file copied or named as a service binary is not listed in `[SourceDisksFiles]`.
    FileNotInSourceDisks {
        /// The file.
        file: String,
    },
    /// A `[SourceDisksFiles]` entry names a disk `[SourceDisksNames]` does not define.
    UnknownDisk {
        /// The disk ID.
        disk: String,
    },
    /// A copy-files section without an entry in `[DestinationDirs]` and no `DefaultDestDir`.
    MissingDestinationDir {
        /// The copy-files section.
        section: String,
    },
    /// The service binary is not one of the files the install section copies.
    ServiceBinaryNotCopied {
        /// The binary's file name.
        file: String,
    },
    /// No `AddService` with flag 0x2 (`SPSVCINST_ASSOCSERVICE`): no function driver for the
    /// device; or more than one.
    AssociatedServiceCount {
        /// The `.Services` section.
        section: String,
        /// How many `AddService` entries have the flag.
        count: usize,
    },
    /// An entry with too few fields.
    TooFewFields {
        /// The directive or section.
        what: String,
        /// How many fields it needs at least.
        needed: usize,
    },
}

impl ProblemKind {
    /// A short stable name of the kind, for tests and for grepping logs.
    pub fn code(&self) -> &'static str {
        match self {
            ProblemKind::MissingSection { .. } => "missing-section",
            ProblemKind::MissingDirective { .. } => "missing-directive",
            ProblemKind::BadValue { .. } => "bad-value",
            ProblemKind::ClassGuidMismatch { .. } => "class-guid-mismatch",
            ProblemKind::MissingArchDecoration { .. } => "missing-arch-decoration",
            ProblemKind::UnknownDecoration { .. } => "unknown-decoration",
            ProblemKind::BadHardwareId { .. } => "bad-hardware-id",
            ProblemKind::UndefinedString { .. } => "undefined-string",
            ProblemKind::UnbalancedPercent => "unbalanced-percent",
            ProblemKind::UnstampedPlaceholder { .. } => "unstamped-placeholder",
            ProblemKind::FileNotInSourceDisks { .. } => "file-not-in-source-disks",
            ProblemKind::UnknownDisk { .. } => "unknown-disk",
            ProblemKind::MissingDestinationDir { .. } => "missing-destination-dir",
            ProblemKind::ServiceBinaryNotCopied { .. } => "service-binary-not-copied",
            ProblemKind::AssociatedServiceCount { .. } => "associated-service-count",
            ProblemKind::TooFewFields { .. } => "too-few-fields",
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: ", self.line)?;
        }
        write!(f, "[{}] ", self.kind.code())?;
        match &self.kind {
            ProblemKind::MissingSection {
                name,
                referenced_by,
            } => write!(f, "section [{name}] (referenced by {referenced_by}) does not exist"),
            ProblemKind::MissingDirective { section, directive } => {
                write!(f, "[{section}] has no {directive}")
            }
            ProblemKind::BadValue {
                directive,
                value,
                expected,
            } => write!(f, "{directive} = {value:?}: expected {expected}"),
            ProblemKind::ClassGuidMismatch {
                class,
                found,
                expected,
            } => write!(f, "ClassGuid {found} is not the GUID of class {class} ({expected})"),
            ProblemKind::MissingArchDecoration { models, expected } => {
                write!(f, "[Manufacturer] entry for {models} has no {expected} decoration")
            }
            ProblemKind::UnknownDecoration { decoration } => {
                write!(f, "decoration {decoration:?} names no known platform")
            }
            ProblemKind::BadHardwareId { id, reason } => {
                write!(f, "hardware ID {id:?} is malformed: {reason}")
            }
            ProblemKind::UndefinedString { name } => {
                write!(f, "%{name}% is not defined in [Strings]")
            }
            ProblemKind::UnbalancedPercent => f.write_str("odd number of '%' in the entry"),
            ProblemKind::UnstampedPlaceholder { placeholder } => {
                write!(f, "placeholder {placeholder} was not stamped")
            }
            ProblemKind::FileNotInSourceDisks { file } => {
                write!(f, "file {file} is not listed in [SourceDisksFiles]")
            }
            ProblemKind::UnknownDisk { disk } => {
                write!(f, "disk {disk} is not defined in [SourceDisksNames]")
            }
            ProblemKind::MissingDestinationDir { section } => write!(
                f,
                "copy-files section [{section}] has no [DestinationDirs] entry and there is no DefaultDestDir"
            ),
            ProblemKind::ServiceBinaryNotCopied { file } => {
                write!(f, "service binary {file} is not copied by the install section")
            }
            ProblemKind::AssociatedServiceCount { section, count } => write!(
                f,
                "[{section}] has {count} AddService entries with flag 0x2 (SPSVCINST_ASSOCSERVICE); exactly one is needed"
            ),
            ProblemKind::TooFewFields { what, needed } => {
                write!(f, "{what} needs at least {needed} fields")
            }
        }
    }
}

/// Device setup classes the suite's INFs may use, with their GUIDs (from Microsoft's
/// "System-Defined Device Setup Classes Available to Vendors").
pub const KNOWN_CLASSES: &[(&str, &str)] = &[
    ("System", "{4d36e97d-e325-11ce-bfc1-08002be10318}"),
    ("SCSIAdapter", "{4d36e97b-e325-11ce-bfc1-08002be10318}"),
    ("Net", "{4d36e972-e325-11ce-bfc1-08002be10318}"),
    ("HDC", "{4d36e96a-e325-11ce-bfc1-08002be10318}"),
    ("DiskDrive", "{4d36e967-e325-11ce-bfc1-08002be10318}"),
    ("Extension", "{e2f84ce7-8efa-411c-aa69-97454ca4cb57}"),
];

/// The platform parts of decorations setupapi knows (compared without case).
const KNOWN_PLATFORMS: &[&str] = &["NT", "NTx86", "NTamd64", "NTia64", "NTarm", "NTarm64"];

/// Parses a number as INF fields write them: decimal, or hexadecimal with `0x`.
pub fn parse_number(text: &str) -> Option<u32> {
    let text = text.trim();
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) if !hex.is_empty() => u32::from_str_radix(hex, 16).ok(),
        Some(_) => None,
        None if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => text.parse().ok(),
        None => None,
    }
}

/// Checks `DriverVer`'s value `mm/dd/yyyy,w.x.y.z` (the version is required here: the stamping
/// step always writes one). Returns what is wrong.
pub fn check_driver_ver(value: &str) -> Result<(), &'static str> {
    let (date, version) = value
        .split_once(',')
        .ok_or("a date and a version separated by a comma")?;
    let parts: Vec<&str> = date.trim().split('/').collect();
    let [month, day, year] = parts[..] else {
        return Err("a date mm/dd/yyyy");
    };
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if !(digits(month, 2) || digits(month, 1))
        || !(digits(day, 2) || digits(day, 1))
        || !digits(year, 4)
    {
        return Err("a date mm/dd/yyyy");
    }
    let (month, day, year): (u32, u32, u32) = (
        month.parse().unwrap_or(0),
        day.parse().unwrap_or(0),
        year.parse().unwrap_or(0),
    );
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) || year < 1980 {
        return Err("a real calendar date from 1980 on");
    }
    let fields: Vec<&str> = version.trim().split('.').collect();
    if fields.len() != 4
        || !fields
            .iter()
            .all(|f| !f.is_empty() && f.len() <= 5 && f.parse::<u16>().is_ok())
    {
        return Err("a version of four numbers 0..=65535 separated by dots");
    }
    Ok(())
}

/// Days in `month` of `year` (Gregorian).
pub(crate) fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

/// Checks one hardware or compatible ID the way the PnP manager's matching needs it: printable
/// ASCII without blanks or commas, at most 200 characters (`MAX_DEVICE_ID_LEN`), an enumerator
/// and a device part; `PCI\` IDs in the exact form the PCI bus driver reports
/// (`VEN_xxxx&DEV_xxxx[&SUBSYS_xxxxxxxx][&REV_xx]` or a class code `CC_xxxx[xx[xx]]`).
pub fn check_hardware_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty() {
        return Err("empty");
    }
    if id.len() > 200 {
        return Err("longer than 200 characters");
    }
    if !id.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
        return Err("only printable ASCII without blanks or commas is allowed");
    }
    if id.starts_with('*') {
        return Ok(()); // a compatible ID in the `*PNPxxxx` form
    }
    let (enumerator, device) = id
        .split_once('\\')
        .ok_or("no enumerator (ENUMERATOR\\device)")?;
    if enumerator.is_empty()
        || !enumerator
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err("the enumerator must be letters, digits or '_'");
    }
    if device.is_empty() {
        return Err("nothing after the enumerator");
    }
    if eq_name(enumerator, "PCI") {
        return check_pci_device_part(device);
    }
    Ok(())
}

fn check_pci_device_part(device: &str) -> Result<(), &'static str> {
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let fields: Vec<&str> = device.split('&').collect();
    let field = |i: usize, prefix: &str| {
        fields.get(i).and_then(|f| {
            f.get(..prefix.len())
                .filter(|p| p.eq_ignore_ascii_case(prefix))
                .map(|_| &f[prefix.len()..])
        })
    };
    if let Some(code) = field(0, "CC_") {
        return if fields.len() == 1 && [4, 6].contains(&code.len()) && hex(code, code.len()) {
            Ok(())
        } else {
            Err("a PCI class code is CC_ and four or six hex digits")
        };
    }
    match (field(0, "VEN_"), field(1, "DEV_")) {
        (Some(ven), Some(dev)) if hex(ven, 4) && hex(dev, 4) => {}
        _ => return Err("a PCI ID starts VEN_xxxx&DEV_xxxx (four hex digits each)"),
    }
    let mut next = 2;
    if let Some(subsys) = field(next, "SUBSYS_") {
        if !hex(subsys, 8) {
            return Err("SUBSYS_ takes eight hex digits");
        }
        next += 1;
    }
    if let Some(rev) = field(next, "REV_") {
        if !hex(rev, 2) {
            return Err("REV_ takes two hex digits");
        }
        next += 1;
    }
    if next != fields.len() {
        return Err("after VEN_&DEV_ only &SUBSYS_xxxxxxxx then &REV_xx may follow");
    }
    Ok(())
}

/// The checker's state: the INF, the architecture, the problems found.
struct Checker<'a> {
    inf: &'a Inf,
    arch: Arch,
    strings: Vec<(String, String)>,
    problems: Vec<Problem>,
}

/// Checks `inf` for installation on `arch`; an empty list means no problem was found.
pub fn check(inf: &Inf, arch: Arch) -> Vec<Problem> {
    let mut checker = Checker {
        inf,
        arch,
        strings: inf.strings(),
        problems: Vec::new(),
    };
    checker.tokens();
    checker.version();
    checker.source_disks();
    checker.destination_dirs();
    checker.manufacturer();
    checker.problems.sort_by_key(|p| p.line);
    checker.problems
}

impl<'a> Checker<'a> {
    fn report(&mut self, line: usize, kind: ProblemKind) {
        let problem = Problem { line, kind };
        if !self.problems.contains(&problem) {
            self.problems.push(problem);
        }
    }

    /// Replaces `%name%` tokens with their strings (undefined ones are left as they are; the
    /// token check reports them).
    fn expand(&self, value: &str) -> String {
        let mut out = String::new();
        let mut rest = value;
        while let Some(start) = rest.find('%') {
            out.push_str(&rest[..start]);
            let after = &rest[start + 1..];
            let Some(end) = after.find('%') else {
                out.push_str(&rest[start..]);
                return out;
            };
            let name = &after[..end];
            match self
                .strings
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
            {
                Some((_, v)) => out.push_str(v),
                None => {
                    out.push('%');
                    out.push_str(name);
                    out.push('%');
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }

    /// `%string%` tokens and leftover `$PLACEHOLDER$`s, in every entry outside `[Strings]`.
    fn tokens(&mut self) {
        let inf = self.inf;
        for section in &inf.sections {
            let is_strings = eq_name(&section.name, "Strings");
            for entry in &section.entries {
                for placeholder in placeholders(&entry.raw) {
                    self.report(
                        entry.line,
                        ProblemKind::UnstampedPlaceholder { placeholder },
                    );
                }
                if is_strings {
                    continue;
                }
                let pieces: Vec<&str> = entry.raw.split('%').collect();
                if pieces.len() % 2 == 0 {
                    self.report(entry.line, ProblemKind::UnbalancedPercent);
                    continue;
                }
                for name in pieces.iter().skip(1).step_by(2) {
                    // `%%` is a literal percent; `%12%` is a directory ID.
                    if name.is_empty() || name.bytes().all(|b| b.is_ascii_digit()) {
                        continue;
                    }
                    if !self
                        .strings
                        .iter()
                        .any(|(k, _)| k.eq_ignore_ascii_case(name))
                    {
                        self.report(
                            entry.line,
                            ProblemKind::UndefinedString {
                                name: (*name).to_owned(),
                            },
                        );
                    }
                }
            }
        }
    }

    fn require<'s>(&mut self, section: &'s Section, directive: &'static str) -> Option<&'s Entry> {
        let entry = section.get(directive);
        if entry.is_none() {
            self.report(
                section.line,
                ProblemKind::MissingDirective {
                    section: section.name.clone(),
                    directive,
                },
            );
        }
        entry
    }

    fn bad_value(&mut self, entry: &Entry, directive: &str, value: &str, expected: &'static str) {
        self.report(
            entry.line,
            ProblemKind::BadValue {
                directive: directive.to_owned(),
                value: value.to_owned(),
                expected,
            },
        );
    }

    fn missing_section(&mut self, line: usize, name: &str, referenced_by: &str) {
        self.report(
            line,
            ProblemKind::MissingSection {
                name: name.to_owned(),
                referenced_by: referenced_by.to_owned(),
            },
        );
    }

    fn version(&mut self) {
        let inf = self.inf;
        let Some(version) = inf.section("Version") else {
            self.missing_section(0, "Version", "every INF");
            return;
        };
        if let Some(sig) = self.require(version, "Signature") {
            let value = sig.first();
            if !eq_name(value, "$WINDOWS NT$") && !eq_name(value, "$Chicago$") {
                self.bad_value(sig, "Signature", value, "\"$WINDOWS NT$\"");
            }
        }
        let class = self
            .require(version, "Class")
            .map(|e| self.expand(e.first()));
        if let Some(guid_entry) = self.require(version, "ClassGuid") {
            let guid = guid_entry.first();
            if !is_guid(guid) {
                self.bad_value(
                    guid_entry,
                    "ClassGuid",
                    guid,
                    "a GUID {xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}",
                );
            } else if let Some(class) = class {
                match KNOWN_CLASSES.iter().find(|(name, _)| eq_name(name, &class)) {
                    Some((_, expected)) if !guid.eq_ignore_ascii_case(expected) => self.report(
                        guid_entry.line,
                        ProblemKind::ClassGuidMismatch {
                            class,
                            found: guid.to_owned(),
                            expected,
                        },
                    ),
                    Some(_) => {}
                    None => {
                        let line = version.get("Class").map_or(0, |e| e.line);
                        self.report(
                            line,
                            ProblemKind::BadValue {
                                directive: "Class".into(),
                                value: class,
                                expected:
                                    "a device setup class the suite knows (win_inf::KNOWN_CLASSES)",
                            },
                        );
                    }
                }
            }
        }
        self.require(version, "Provider");
        let catalog = version
            .get("CatalogFile")
            .or_else(|| version.get(&format!("CatalogFile.{}", self.arch.decoration())));
        match catalog {
            None => self.report(
                version.line,
                ProblemKind::MissingDirective {
                    section: version.name.clone(),
                    directive: "CatalogFile",
                },
            ),
            Some(entry) => {
                let name = entry.first();
                if !is_plain_file_name(name) || !name.to_ascii_lowercase().ends_with(".cat") {
                    self.bad_value(
                        entry,
                        "CatalogFile",
                        name,
                        "a file name ending in .cat, without a path",
                    );
                }
            }
        }
        if let Some(entry) = self.require(version, "DriverVer") {
            let value = entry.values.join(",");
            if let Err(expected) = check_driver_ver(&value) {
                self.bad_value(entry, "DriverVer", &value, expected);
            }
        }
        if let Some(entry) = self.require(version, "PnpLockdown") {
            if entry.first() != "1" {
                self.bad_value(entry, "PnpLockdown", entry.first(), "1");
            }
        }
    }

    /// A section by the architecture-specific name first, then the plain one.
    fn decorated(&self, base: &str) -> Option<&'a Section> {
        let inf: &'a Inf = self.inf;
        inf.section(&format!("{base}.{}", self.arch.platform()))
            .or_else(|| inf.section(base))
    }

    fn source_disks(&mut self) {
        let disks: Vec<String> = self
            .decorated("SourceDisksNames")
            .map(|s| s.entries.iter().filter_map(|e| e.key.clone()).collect())
            .unwrap_or_default();
        let Some(files) = self.decorated("SourceDisksFiles") else {
            return; // reported when a file is looked up
        };
        for entry in &files.entries {
            let disk = entry.first();
            if entry.key.is_none() {
                self.report(
                    entry.line,
                    ProblemKind::TooFewFields {
                        what: "a [SourceDisksFiles] entry (file = disk)".into(),
                        needed: 2,
                    },
                );
            } else if !disks.iter().any(|d| d.trim() == disk.trim()) {
                self.report(
                    entry.line,
                    ProblemKind::UnknownDisk {
                        disk: disk.to_owned(),
                    },
                );
            }
        }
        if let Some(names) = self.decorated("SourceDisksNames") {
            for entry in &names.entries {
                let key = entry.key.as_deref().unwrap_or("");
                if parse_number(key).is_none() {
                    self.bad_value(entry, "a [SourceDisksNames] disk ID", key, "a number");
                }
            }
        }
    }

    fn destination_dirs(&mut self) {
        let inf = self.inf;
        let Some(dirs) = inf.section("DestinationDirs") else {
            return; // reported per copy-files section
        };
        for entry in &dirs.entries {
            let Some(key) = entry.key.as_deref() else {
                self.report(
                    entry.line,
                    ProblemKind::TooFewFields {
                        what: "a [DestinationDirs] entry (section = dirid)".into(),
                        needed: 2,
                    },
                );
                continue;
            };
            if parse_number(entry.first()).is_none() {
                self.bad_value(
                    entry,
                    key,
                    entry.first(),
                    "a directory ID (a number such as 12 or 13)",
                );
            }
            if !eq_name(key, "DefaultDestDir") && inf.section(key).is_none() {
                self.missing_section(entry.line, key, "[DestinationDirs]");
            }
        }
    }

    fn is_source_file(&self, file: &str) -> bool {
        self.decorated("SourceDisksFiles").is_some_and(|s| {
            s.entries
                .iter()
                .any(|e| e.key.as_deref().is_some_and(|k| eq_name(k, file)))
        })
    }

    fn manufacturer(&mut self) {
        let inf = self.inf;
        let Some(manufacturer) = inf.section("Manufacturer") else {
            self.missing_section(0, "Manufacturer", "every device INF");
            return;
        };
        for entry in &manufacturer.entries {
            let Some(models) = entry.values.first().filter(|m| !m.is_empty()) else {
                self.report(
                    entry.line,
                    ProblemKind::TooFewFields {
                        what: "a [Manufacturer] entry (name = models, decorations)".into(),
                        needed: 1,
                    },
                );
                continue;
            };
            let decorations = &entry.values[1..];
            for decoration in decorations {
                let platform = decoration.split('.').next().unwrap_or("");
                if !KNOWN_PLATFORMS.iter().any(|p| eq_name(p, platform)) {
                    self.report(
                        entry.line,
                        ProblemKind::UnknownDecoration {
                            decoration: decoration.clone(),
                        },
                    );
                    continue;
                }
                let name = format!("{models}.{decoration}");
                if inf.section(&name).is_none() {
                    self.missing_section(entry.line, &name, "[Manufacturer]");
                }
            }
            // Setupapi picks the best of our platform's decorations for the running Windows
            // version; every one of them must be installable.
            let ours: Vec<&String> = decorations
                .iter()
                .filter(|d| eq_name(d.split('.').next().unwrap_or(""), self.arch.platform()))
                .collect();
            if ours.is_empty() {
                self.report(
                    entry.line,
                    ProblemKind::MissingArchDecoration {
                        models: models.clone(),
                        expected: self.arch.platform(),
                    },
                );
            }
            for decoration in ours {
                if let Some(section) = inf.section(&format!("{models}.{decoration}")) {
                    self.models(section);
                }
            }
        }
    }

    fn models(&mut self, models: &Section) {
        for entry in &models.entries {
            if entry.key.is_none() || entry.values.len() < 2 {
                self.report(
                    entry.line,
                    ProblemKind::TooFewFields {
                        what: format!(
                            "a [{}] entry (description = install section, hardware ID)",
                            models.name
                        ),
                        needed: 3,
                    },
                );
                continue;
            }
            for id in &entry.values[1..] {
                let id = self.expand(id);
                if let Err(reason) = check_hardware_id(&id) {
                    self.report(entry.line, ProblemKind::BadHardwareId { id, reason });
                }
            }
            self.install_section(entry, &entry.values[0]);
        }
    }

    /// The `DDInstall` section for `base` and what hangs off it.
    fn install_section(&mut self, from: &Entry, base: &str) {
        let inf = self.inf;
        let candidates = [
            format!("{base}.{}", self.arch.platform()),
            format!("{base}.NT"),
            base.to_owned(),
        ];
        let Some(install) = candidates.iter().find_map(|name| inf.section(name)) else {
            self.missing_section(from.line, &candidates[0], "a models entry");
            return;
        };
        let copied = self.directives(install);
        if let Some(hw) = inf.section(&format!("{}.HW", install.name)) {
            self.directives(hw);
        }
        let services_name = format!("{}.Services", install.name);
        match inf.section(&services_name) {
            None => {
                self.missing_section(install.line, &services_name, &format!("[{}]", install.name))
            }
            Some(services) => self.services(services, &copied),
        }
    }

    /// `CopyFiles`, `AddReg`, `DelReg` of a section; returns the files copied.
    fn directives(&mut self, section: &Section) -> Vec<String> {
        let inf = self.inf;
        let mut copied = Vec::new();
        for entry in &section.entries {
            let Some(key) = entry.key.as_deref() else {
                continue;
            };
            if eq_name(key, "CopyFiles") {
                for target in &entry.values {
                    if let Some(file) = target.strip_prefix('@') {
                        if !self.is_source_file(file) {
                            self.report(
                                entry.line,
                                ProblemKind::FileNotInSourceDisks {
                                    file: file.to_owned(),
                                },
                            );
                        }
                        self.destination_for(entry.line, &section.name, true);
                        copied.push(file.to_owned());
                        continue;
                    }
                    let Some(files) = inf.section(target) else {
                        self.missing_section(
                            entry.line,
                            target,
                            &format!("CopyFiles in [{}]", section.name),
                        );
                        continue;
                    };
                    self.destination_for(entry.line, &files.name, false);
                    for file_entry in &files.entries {
                        let dest = file_entry.values.first().cloned().unwrap_or_default();
                        let source = file_entry
                            .values
                            .get(1)
                            .filter(|s| !s.is_empty())
                            .unwrap_or(&dest)
                            .clone();
                        if !self.is_source_file(&source) {
                            self.report(
                                file_entry.line,
                                ProblemKind::FileNotInSourceDisks { file: source },
                            );
                        }
                        copied.push(dest);
                    }
                }
            } else if eq_name(key, "AddReg") || eq_name(key, "DelReg") {
                for target in &entry.values {
                    match inf.section(target) {
                        None => self.missing_section(
                            entry.line,
                            target,
                            &format!("{key} in [{}]", section.name),
                        ),
                        Some(reg) => self.registry(reg),
                    }
                }
            }
        }
        copied
    }

    /// Whether a copy-files section has a destination.
    fn destination_for(&mut self, line: usize, section: &str, default_only: bool) {
        let dirs = self.inf.section("DestinationDirs");
        let has = dirs.is_some_and(|d| {
            d.get("DefaultDestDir").is_some() || (!default_only && d.get(section).is_some())
        });
        if !has {
            self.report(
                line,
                ProblemKind::MissingDestinationDir {
                    section: section.to_owned(),
                },
            );
        }
    }

    fn registry(&mut self, section: &Section) {
        for entry in &section.entries {
            if entry.key.is_some() || entry.values.len() < 2 {
                self.report(
                    entry.line,
                    ProblemKind::TooFewFields {
                        what: format!(
                            "a registry entry in [{}] (root, subkey[, value, flags, data])",
                            section.name
                        ),
                        needed: 2,
                    },
                );
                continue;
            }
            let root = &entry.values[0];
            if !["HKR", "HKLM", "HKCU", "HKCR", "HKU"]
                .iter()
                .any(|r| eq_name(r, root))
            {
                self.bad_value(entry, "registry root", root, "HKR, HKLM, HKCU, HKCR or HKU");
            }
            if let Some(flags) = entry.values.get(3).filter(|f| !f.is_empty()) {
                if parse_number(flags).is_none() {
                    self.bad_value(entry, "registry flags", flags, "a number");
                }
            }
        }
    }

    fn services(&mut self, services: &Section, copied: &[String]) {
        let inf = self.inf;
        let mut associated = 0;
        for entry in services.all("AddService") {
            if entry.values.len() < 3 {
                self.report(
                    entry.line,
                    ProblemKind::TooFewFields {
                        what: "AddService (name, flags, service-install section)".into(),
                        needed: 3,
                    },
                );
                continue;
            }
            match parse_number(&entry.values[1]) {
                Some(flags) if flags & 0x2 != 0 => associated += 1,
                Some(_) => {}
                None => self.bad_value(entry, "AddService flags", &entry.values[1], "a number"),
            }
            match inf.section(&entry.values[2]) {
                None => self.missing_section(entry.line, &entry.values[2], "AddService"),
                Some(install) => self.service_install(install, copied),
            }
            // The optional event-log section (its AddReg registers the message files).
            if let Some(event_log) = entry.values.get(3).filter(|s| !s.is_empty()) {
                match inf.section(event_log) {
                    None => self.missing_section(entry.line, event_log, "AddService"),
                    Some(section) => {
                        self.directives(section);
                    }
                }
            }
        }
        if associated != 1 {
            self.report(
                services.line,
                ProblemKind::AssociatedServiceCount {
                    section: services.name.clone(),
                    count: associated,
                },
            );
        }
    }

    fn service_install(&mut self, install: &Section, copied: &[String]) {
        let number =
            |this: &mut Self, name: &'static str, allowed: &[u32], expected: &'static str| {
                let entry = this.require(install, name)?;
                match parse_number(entry.first()) {
                    Some(v) if allowed.contains(&v) => Some(v),
                    _ => {
                        this.bad_value(entry, name, entry.first(), expected);
                        None
                    }
                }
            };
        let service_type = number(
            self,
            "ServiceType",
            &[1, 2, 0x10, 0x20],
            "1 (kernel driver), 2, 0x10 or 0x20",
        );
        let start_type = number(
            self,
            "StartType",
            &[0, 1, 2, 3, 4],
            "0 (boot) .. 4 (disabled)",
        );
        number(self, "ErrorControl", &[0, 1, 2, 3], "0 .. 3");
        if let (Some(service_type), Some(0 | 1)) = (service_type, start_type) {
            let entry = install.get("StartType").expect("checked above");
            if service_type > 2 {
                self.bad_value(
                    entry,
                    "StartType",
                    entry.first(),
                    "2, 3 or 4 for a service that is not a driver",
                );
            } else if install.get("LoadOrderGroup").is_none() {
                self.report(
                    install.line,
                    ProblemKind::MissingDirective {
                        section: install.name.clone(),
                        directive: "LoadOrderGroup (a boot- or system-start driver needs one)",
                    },
                );
            }
        }
        self.directives(install);
        if let Some(binary) = self.require(install, "ServiceBinary") {
            let path = self.expand(binary.first());
            let file = path.rsplit('\\').next().unwrap_or("").to_owned();
            let in_driver_dir = ["%12%\\", "%13%\\"]
                .iter()
                .any(|prefix| binary.first().to_ascii_lowercase().starts_with(prefix));
            if !in_driver_dir {
                self.bad_value(
                    binary,
                    "ServiceBinary",
                    binary.first(),
                    "%12%\\file.sys or %13%\\file.sys",
                );
            } else if !copied.iter().any(|c| eq_name(c, &file)) {
                self.report(binary.line, ProblemKind::ServiceBinaryNotCopied { file });
            }
        }
    }
}

/// `$NAME$` placeholders in `text` (the INF signatures `$WINDOWS NT$` and `$Chicago$` are not
/// placeholders).
pub fn placeholders(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let pieces: Vec<&str> = text.split('$').collect();
    let mut i = 1;
    while i + 1 < pieces.len() {
        let name = pieces[i];
        if !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
            && !eq_name(name, "Chicago")
        {
            found.push(format!("${name}$"));
            i += 2;
        } else {
            i += 1;
        }
    }
    found
}

/// Whether `text` is `{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}`.
pub fn is_guid(text: &str) -> bool {
    let Some(inner) = text.strip_prefix('{').and_then(|t| t.strip_suffix('}')) else {
        return false;
    };
    let groups: Vec<&str> = inner.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A file name without directory parts or characters Windows forbids in names.
pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.is_ascii()
        && !name.chars().any(|c| {
            matches!(c, '\\' | '/' | ':' | '*' | '?' | '"' | '<' | '>' | '|')
                || c.is_ascii_control()
        })
}
