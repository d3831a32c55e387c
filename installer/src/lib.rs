//! The suite's MSI on Linux.
//!
//! - [`render`]: the WiX source (`installer/xen-pv-rs.wxs`) with the driver packages filled in;
//! - [`build`]: wixl (`-a x64`) builds it into an MSI;
//! - [`Table`], [`export_table`]: a table read back with `msiinfo export`;
//! - [`check`]: the MSI's tables against what the suite means to ship (files, components,
//!   custom actions and their sequencing, upgrade code, version), one message per problem;
//! - [`extract`]: the MSI's files unpacked with `msiextract`.
//!
//! Tool output is untrusted text: it is parsed without panics and a malformed export gives an
//! error.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Debian packages the installer's build and checks run (`wixl`, `msiinfo`, `msiextract`).
pub const PACKAGES: &[&str] = &["wixl", "msitools"];

/// The upgrade code of every version of the suite's MSI (fixed: it identifies the product line
/// for major upgrades). Must equal the WiX source's `UpgradeCode`.
pub const UPGRADE_CODE: &str = "{6B9D2A4E-52C3-4F0B-9E1A-7A5C2D3B8F10}";

/// The WiX source, relative to the repository root.
pub const WXS: &str = "installer/xen-pv-rs.wxs";

/// Component of the driver helper, and its file.
pub const HELPER_FILE: &str = "drvsetup.exe";
/// The test certificate shipped for the administrator to import.
pub const CERTIFICATE_FILE: &str = "test-signing.cer";

/// One driver package: its name (`xenpci`) and file names (`xenpci.sys`, `.inf`, `.cat`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverPackage {
    /// The package name: the stem of its files and its folder under `drivers\`.
    pub name: String,
    /// Its files, in the staging folder's `<name>/` subfolder.
    pub files: Vec<String>,
}

impl DriverPackage {
    /// The usual package: `<name>.sys`, `<name>.inf`, `<name>.cat`.
    pub fn standard(name: &str) -> Self {
        Self {
            name: name.into(),
            files: ["sys", "inf", "cat"]
                .iter()
                .map(|ext| format!("{name}.{ext}"))
                .collect(),
        }
    }

    /// The MSI directory key of the package's folder.
    pub fn directory_id(&self) -> String {
        format!("Pkg_{}", self.name)
    }

    /// The MSI component key of the package.
    pub fn component_id(&self) -> String {
        format!("Pkg_{}", self.name)
    }

    /// The MSI file key of one of its files.
    pub fn file_id(file: &str) -> String {
        format!("F_{}", file.replace(['-', ' '], "_"))
    }

    fn inf(&self) -> Option<&String> {
        self.files
            .iter()
            .find(|f| f.to_ascii_lowercase().ends_with(".inf"))
    }
}

/// Why the installer could not be built or checked.
pub type Error = String;

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// The WiX source with the driver packages filled in: a folder and a component per package
/// under `drivers\`, their references in the feature, and the quoted INF paths in the custom
/// actions' command lines.
pub fn render(template: &str, packages: &[DriverPackage]) -> Result<String, Error> {
    let mut directories = String::new();
    let mut references = String::new();
    let mut infs = Vec::new();
    for package in packages {
        if !is_identifier(&package.name) || !package.files.iter().all(|f| is_identifier(f)) {
            return Err(format!(
                "driver package {:?}: names must be letters, digits, '_', '.', '-'",
                package.name
            ));
        }
        let inf = package
            .inf()
            .ok_or_else(|| format!("driver package {} has no INF", package.name))?;
        let dir = package.directory_id();
        directories.push_str(&format!(
            "            <Directory Id=\"{dir}\" Name=\"{name}\">\n              \
             <Component Id=\"{component}\" Guid=\"*\" Win64=\"yes\">\n",
            name = package.name,
            component = package.component_id()
        ));
        for (i, file) in package.files.iter().enumerate() {
            let key_path = if file == inf || (i == 0 && package.inf().is_none()) {
                " KeyPath=\"yes\""
            } else {
                ""
            };
            directories.push_str(&format!(
                "                <File Id=\"{id}\" Name=\"{file}\" \
                 Source=\"$(var.SourceDir)/{name}/{file}\"{key_path} />\n",
                id = DriverPackage::file_id(file),
                name = package.name
            ));
        }
        directories.push_str("              </Component>\n            </Directory>\n");
        references.push_str(&format!(
            "      <ComponentRef Id=\"{}\" />\n",
            package.component_id()
        ));
        infs.push(format!("&quot;[{dir}]{inf}&quot;"));
    }
    if packages.is_empty() {
        return Err("no driver package to install".into());
    }
    let mut out = String::new();
    for line in template.lines() {
        match line.trim() {
            "<!-- DRIVER PACKAGES: directories -->" => out.push_str(&directories),
            "<!-- DRIVER PACKAGES: component references -->" => out.push_str(&references),
            _ => {
                out.push_str(&line.replace("@DRIVER_INFS@", &infs.join(" ")));
                out.push('\n');
            }
        }
    }
    for marker in [
        "DRIVER PACKAGES: directories",
        "DRIVER PACKAGES: component references",
    ] {
        if !template.contains(marker) {
            return Err(format!("the WiX template lacks the marker {marker:?}"));
        }
    }
    Ok(out)
}

fn run(cmd: &mut Command) -> Result<String, Error> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy()).collect();
        return Err(format!(
            "{} {} failed ({}):\n{}",
            cmd.get_program().to_string_lossy(),
            args.join(" "),
            out.status,
            stderr.trim_end()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Builds `wxs` into `msi` with wixl for x64, with `Version` and `SourceDir` defined.
/// `source_dir` must be inside the folder of `wxs` (wixl takes only relative `Source` paths,
/// from the folder it runs in). wixl reports some errors only as `CRITICAL` lines while writing
/// a broken MSI, so any such line fails the build.
pub fn build(wxs: &Path, version: &str, source_dir: &Path, msi: &Path) -> Result<(), Error> {
    let folder = wxs.parent().ok_or("the WiX source has no folder")?;
    let relative = source_dir.strip_prefix(folder).map_err(|_| {
        format!(
            "{} is not inside {}",
            source_dir.display(),
            folder.display()
        )
    })?;
    let msi = std::path::absolute(msi).map_err(|e| format!("{}: {e}", msi.display()))?;
    let wxs = std::path::absolute(wxs).map_err(|e| format!("{}: {e}", wxs.display()))?;
    let out = Command::new("wixl")
        .current_dir(folder)
        .args(["-a", "x64", "-D"])
        .arg(format!("Version={version}"))
        .arg("-D")
        .arg(format!("SourceDir={}", relative.display()))
        .arg("-o")
        .arg(&msi)
        .arg(&wxs)
        .output()
        .map_err(|e| format!("cannot run wixl: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || stderr.contains("CRITICAL") {
        return Err(format!(
            "wixl failed ({}) on {}:\n{}",
            out.status,
            wxs.display(),
            stderr.trim_end()
        ));
    }
    Ok(())
}

/// A table exported by `msiinfo export`: its column names and rows (tab-separated text; the
/// second and third lines give column types and the table name with its keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// The table's name.
    pub name: String,
    /// Column names, in order.
    pub columns: Vec<String>,
    /// Rows: one value per column (missing trailing values are empty).
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// Parses the text of `msiinfo export MSI TABLE`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let mut lines = text.split("\r\n").flat_map(|l| l.split('\n'));
        let columns: Vec<String> = lines
            .next()
            .filter(|l| !l.is_empty())
            .ok_or("an empty table export")?
            .split('\t')
            .map(str::to_owned)
            .collect();
        lines.next().ok_or("a table export without column types")?;
        let name = lines
            .next()
            .and_then(|l| l.split('\t').next())
            .filter(|n| !n.is_empty())
            .ok_or("a table export without its name")?
            .to_owned();
        let mut rows = Vec::new();
        for line in lines.filter(|l| !l.is_empty()) {
            let mut row: Vec<String> = line.split('\t').map(str::to_owned).collect();
            if row.len() > columns.len() {
                return Err(format!("table {name}: a row with more values than columns"));
            }
            row.resize(columns.len(), String::new());
            rows.push(row);
        }
        Ok(Self {
            name,
            columns,
            rows,
        })
    }

    /// The index of column `name`.
    pub fn column(&self, name: &str) -> Result<usize, Error> {
        self.columns
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| format!("table {} has no column {name}", self.name))
    }

    /// The value of `column` in the row whose first column is `key`.
    pub fn value(&self, key: &str, column: &str) -> Result<Option<&str>, Error> {
        let at = self.column(column)?;
        Ok(self
            .rows
            .iter()
            .find(|r| r.first().is_some_and(|k| k == key))
            .map(|r| r[at].as_str()))
    }
}

/// Exports table `name` of `msi` with `msiinfo`.
pub fn export_table(msi: &Path, name: &str) -> Result<Table, Error> {
    let text = run(Command::new("msiinfo").arg("export").arg(msi).arg(name))?;
    Table::parse(&text)
}

/// Unpacks the files of `msi` into `dir` with `msiextract`; returns the extracted paths.
pub fn extract(msi: &Path, dir: &Path) -> Result<Vec<PathBuf>, Error> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let listing = run(Command::new("msiextract").arg("-C").arg(dir).arg(msi))?;
    Ok(listing
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| dir.join(l.trim()))
        .collect())
}

/// The tables [`check`] reads.
#[derive(Debug, Clone)]
pub struct Tables {
    /// `Property`.
    pub property: Table,
    /// `File`.
    pub file: Table,
    /// `Component`.
    pub component: Table,
    /// `CustomAction`.
    pub custom_action: Table,
    /// `InstallExecuteSequence`.
    pub sequence: Table,
    /// `Upgrade`.
    pub upgrade: Table,
}

impl Tables {
    /// Exports them from `msi`.
    pub fn export(msi: &Path) -> Result<Self, Error> {
        Ok(Self {
            property: export_table(msi, "Property")?,
            file: export_table(msi, "File")?,
            component: export_table(msi, "Component")?,
            custom_action: export_table(msi, "CustomAction")?,
            sequence: export_table(msi, "InstallExecuteSequence")?,
            upgrade: export_table(msi, "Upgrade")?,
        })
    }
}

/// `msidbCustomActionTypeExe + msidbCustomActionTypeProperty` (run an exe named by a property).
const CA_EXE_FROM_PROPERTY: u32 = 50;
/// `msidbCustomActionTypeTextData + msidbCustomActionTypeProperty` (set a property).
const CA_SET_PROPERTY: u32 = 51;
/// `msidbCustomActionTypeInScript` (deferred).
const CA_IN_SCRIPT: u32 = 0x400;
/// `msidbCustomActionTypeNoImpersonate`.
const CA_NO_IMPERSONATE: u32 = 0x800;
/// `msidbCustomActionTypeContinue` (return code ignored).
const CA_CONTINUE: u32 = 0x40;

/// Checks the MSI's tables: `version` and the upgrade code; every driver package's files in one
/// 64-bit component, plus the helper and the certificate; the property action and the two
/// deferred, non-impersonated, return-checked helper actions with the right command lines,
/// sequenced after `InstallInitialize` (install after `InstallFiles`, uninstall before
/// `RemoveFiles`) and before `InstallFinalize`, with their conditions. Returns every problem.
pub fn check(tables: &Tables, version: &str, packages: &[DriverPackage]) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = check_into(tables, version, packages, &mut problems) {
        problems.push(e);
    }
    problems
}

fn check_into(
    t: &Tables,
    version: &str,
    packages: &[DriverPackage],
    problems: &mut Vec<String>,
) -> Result<(), Error> {
    let property = |name: &str| t.property.value(name, "Value");
    if property("ProductVersion")? != Some(version) {
        problems.push(format!(
            "ProductVersion is {:?}, not {version}",
            property("ProductVersion")?
        ));
    }
    if property("UpgradeCode")? != Some(UPGRADE_CODE) {
        problems.push(format!(
            "UpgradeCode is {:?}, not {UPGRADE_CODE}",
            property("UpgradeCode")?
        ));
    }
    let upgrade_code = t.upgrade.column("UpgradeCode")?;
    if !t
        .upgrade
        .rows
        .iter()
        .any(|r| r[upgrade_code] == UPGRADE_CODE)
    {
        problems.push("the Upgrade table does not name the upgrade code".into());
    }

    // Files: File.FileName is "SHORT~1|long name" or just the name.
    let file_name = t.file.column("FileName")?;
    let file_component = t.file.column("Component_")?;
    let component_of = |name: &str| {
        t.file
            .rows
            .iter()
            .find(|r| r[file_name].rsplit('|').next() == Some(name))
            .map(|r| r[file_component].clone())
    };
    let attributes = t.component.column("Attributes")?;
    let mut expect_component = |files: &[String], component: &str| -> Result<(), Error> {
        for file in files {
            match component_of(file) {
                None => problems.push(format!("{file} is not in the File table")),
                Some(c) if c != component => {
                    problems.push(format!("{file} is in component {c}, not {component}"))
                }
                Some(_) => {}
            }
        }
        match t.component.rows.iter().find(|r| r[0] == component) {
            None => problems.push(format!("component {component} is missing")),
            Some(row) => {
                // msidbComponentAttributes64bit
                if row[attributes].parse::<u32>().unwrap_or(0) & 0x100 == 0 {
                    problems.push(format!("component {component} is not 64-bit"));
                }
            }
        }
        Ok(())
    };
    expect_component(&[HELPER_FILE.into()], "DriverSetupHelper")?;
    expect_component(&[CERTIFICATE_FILE.into()], "TestCertificate")?;
    for package in packages {
        expect_component(&package.files, &package.component_id())?;
    }

    // Custom actions.
    let ca_type = t.custom_action.column("Type")?;
    let ca_source = t.custom_action.column("Source")?;
    let ca_target = t.custom_action.column("Target")?;
    let action = |id: &str| t.custom_action.rows.iter().find(|r| r[0] == id);
    match action("SetDriverSetupPath") {
        // Immediate (no in-script bit); wixl also sets the no-impersonate bit, which Windows
        // Installer ignores for immediate actions.
        Some(r)
            if r[ca_type]
                .parse::<u32>()
                .is_ok_and(|t| t & 0x3f == CA_SET_PROPERTY && t & CA_IN_SCRIPT == 0)
                && r[ca_source] == "DRVSETUP" =>
        {
            if r[ca_target] != "[INSTALLDIR]drvsetup.exe" {
                problems.push(format!("SetDriverSetupPath sets {:?}", r[ca_target]));
            }
        }
        Some(r) => problems.push(format!("SetDriverSetupPath is {r:?}")),
        None => problems.push("custom action SetDriverSetupPath is missing".into()),
    }
    let infs: Vec<String> = packages
        .iter()
        .filter_map(|p| {
            p.inf()
                .map(|inf| format!("\"[{}]{inf}\"", p.directory_id()))
        })
        .collect();
    for (id, verb) in [
        ("DriverInstall", "install"),
        ("DriverUninstall", "uninstall"),
    ] {
        let Some(r) = action(id) else {
            problems.push(format!("custom action {id} is missing"));
            continue;
        };
        let kind: u32 = r[ca_type].parse().unwrap_or(0);
        let want = CA_EXE_FROM_PROPERTY | CA_IN_SCRIPT | CA_NO_IMPERSONATE;
        if kind & !CA_CONTINUE != want || kind & CA_CONTINUE != 0 {
            problems.push(format!(
                "{id} has type {kind}, not {want} (deferred, no impersonation, exe from \
                 property, exit code checked)"
            ));
        }
        if r[ca_source] != "DRVSETUP" {
            problems.push(format!(
                "{id} runs {:?}, not the DRVSETUP property",
                r[ca_source]
            ));
        }
        let command = format!("{verb} {}", infs.join(" "));
        if r[ca_target] != command {
            problems.push(format!("{id} runs {:?}, not {command:?}", r[ca_target]));
        }
    }

    // Sequencing.
    let seq_number = t.sequence.column("Sequence")?;
    let seq_condition = t.sequence.column("Condition")?;
    let sequence_of = |action: &str| -> Option<i64> {
        t.sequence
            .rows
            .iter()
            .find(|r| r[0] == action)
            .and_then(|r| r[seq_number].parse().ok())
    };
    let condition_of = |action: &str| {
        t.sequence
            .rows
            .iter()
            .find(|r| r[0] == action)
            .map(|r| r[seq_condition].clone())
    };
    let standard = |name: &str| {
        sequence_of(name).ok_or_else(|| format!("standard action {name} is not sequenced"))
    };
    let initialize = standard("InstallInitialize")?;
    let finalize = standard("InstallFinalize")?;
    let install_files = standard("InstallFiles")?;
    let remove_files = standard("RemoveFiles")?;
    let mut in_window = |action: &str, after: i64, before: i64| match sequence_of(action) {
        None => problems.push(format!("{action} is not in InstallExecuteSequence")),
        Some(n) if n <= after || n >= before || n <= initialize || n >= finalize => {
            problems.push(format!(
                "{action} is at {n}: it must come after {after} and InstallInitialize \
                 ({initialize}) and before {before} and InstallFinalize ({finalize})"
            ))
        }
        Some(_) => {}
    };
    in_window("SetDriverSetupPath", initialize, finalize);
    in_window("DriverInstall", install_files, finalize);
    in_window("DriverUninstall", initialize, remove_files);
    if let (Some(set), Some(uninstall)) = (
        sequence_of("SetDriverSetupPath"),
        sequence_of("DriverUninstall"),
    ) {
        if set >= uninstall {
            problems.push("DriverUninstall runs before its property is set".into());
        }
    }
    if condition_of("DriverInstall").as_deref() != Some("NOT REMOVE=\"ALL\"") {
        problems.push(format!(
            "DriverInstall's condition is {:?}",
            condition_of("DriverInstall")
        ));
    }
    if condition_of("DriverUninstall").as_deref()
        != Some("REMOVE=\"ALL\" AND NOT UPGRADINGPRODUCTCODE")
    {
        problems.push(format!(
            "DriverUninstall's condition is {:?}",
            condition_of("DriverUninstall")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_parse_into_columns_and_rows() {
        let text = "Action\tType\tSource\tTarget\r\ns72\ti2\tS72\tS255\r\nCustomAction\tAction\r\n\
                    SetDriverSetupPath\t51\tDRVSETUP\t[INSTALLDIR]drvsetup.exe\r\nShort\t1\r\n";
        let table = Table::parse(text).unwrap();
        assert_eq!(table.name, "CustomAction");
        assert_eq!(table.columns, ["Action", "Type", "Source", "Target"]);
        assert_eq!(table.rows.len(), 2);
        assert_eq!(table.rows[1], ["Short", "1", "", ""]);
        assert_eq!(
            table.value("SetDriverSetupPath", "Target").unwrap(),
            Some("[INSTALLDIR]drvsetup.exe")
        );
        assert!(table.value("x", "Nope").is_err());
        assert!(Table::parse("").is_err());
        assert!(Table::parse("A\tB\r\n").is_err());
        assert!(Table::parse("A\r\ns72\r\nT\tA\r\n1\t2\r\n").is_err());
    }

    #[test]
    fn rendering_fills_every_marker() {
        let template =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("xen-pv-rs.wxs"))
                .unwrap();
        let packages = [
            DriverPackage::standard("xenpci"),
            DriverPackage::standard("xenvbd"),
        ];
        let wxs = render(&template, &packages).unwrap();
        assert!(!wxs.contains("@DRIVER_INFS@"));
        assert!(!wxs.contains("DRIVER PACKAGES"));
        assert!(wxs.contains(
            "ExeCommand=\"install &quot;[Pkg_xenpci]xenpci.inf&quot; \
             &quot;[Pkg_xenvbd]xenvbd.inf&quot;\""
        ));
        assert!(wxs.contains(
            "<File Id=\"F_xenvbd.cat\" Name=\"xenvbd.cat\" Source=\"$(var.SourceDir)/xenvbd/xenvbd.cat\" />"
        ));
        assert!(wxs.contains("Source=\"$(var.SourceDir)/xenpci/xenpci.inf\" KeyPath=\"yes\""));
        assert!(wxs.contains(&UPGRADE_CODE[1..UPGRADE_CODE.len() - 1]));
        assert!(render(&template, &[]).is_err());
        let hostile = DriverPackage {
            name: "x\" Evil=\"1".into(),
            files: vec!["x.inf".into()],
        };
        assert!(render(&template, &[hostile]).is_err());
        let no_inf = DriverPackage {
            name: "x".into(),
            files: vec!["x.sys".into()],
        };
        assert!(render(&template, &[no_inf]).is_err());
        assert!(render("<Wix/>", &packages).is_err());
    }
}
