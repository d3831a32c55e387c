//! The checker against a good INF and one breakage at a time: the good INF passes, and each
//! broken one is refused with the named problem (some breakages also cause follow-on problems,
//! for example a service that fails to parse is also no associated service).

use win_inf::{check, parse, Arch, ProblemKind};

/// A complete, correct device INF shaped like the suite's (a boot-start bus driver).
const GOOD: &str = r#"
[Version]
Signature   = "$WINDOWS NT$"
Class       = System
ClassGuid   = {4d36e97d-e325-11ce-bfc1-08002be10318}
Provider    = %Provider%
DriverVer   = 12/07/2026,0.1.0.0
CatalogFile = bus.cat
PnpLockdown = 1

[DestinationDirs]
DefaultDestDir = 12
Bus_Files      = 12

[SourceDisksNames]
1 = %Disk%

[SourceDisksFiles]
bus.sys = 1

[Manufacturer]
%Mfg% = Bus, NTamd64, NTamd64.10.0...17763

[Bus.NTamd64]
%Bus.Desc% = Bus_Install, PCI\VEN_5853&DEV_0001
%Bus.Desc% = Bus_Install, PCI\VEN_5853&DEV_C000&SUBSYS_C0005853&REV_01

[Bus.NTamd64.10.0...17763]
%Bus.Desc% = Bus_Install, ROOT\BUS_TEST

[Bus_Install.NTamd64]
CopyFiles = Bus_Files

[Bus_Install.NTamd64.HW]
AddReg = Bus_HW_AddReg

[Bus_Install.NTamd64.Services]
AddService = bus, 0x00000002, Bus_Service, Bus_EventLog

[Bus_Files]
bus.sys

[Bus_HW_AddReg]
HKR, Interrupt Management\MessageSignaledInterruptProperties, MSISupported, 0x00010001, 1

[Bus_Service]
ServiceType    = 1
StartType      = 0
ErrorControl   = 1
LoadOrderGroup = Boot Bus Extender
ServiceBinary  = %12%\bus.sys
AddReg         = Bus_Parameters

[Bus_Parameters]
HKR, Parameters, Unplug, 0x00000002, "all"

[Bus_EventLog]
AddReg = Bus_EventLog_AddReg

[Bus_EventLog_AddReg]
HKR, , EventMessageFile, 0x00020000, "%%SystemRoot%%\System32\IoLogMsg.dll"

[Strings]
Provider = "Xen Project"
Mfg      = "Xen Project"
Disk     = "Disk 1"
Bus.Desc = "Xen Project PV Bus"
"#;

fn problems(text: &str) -> Vec<win_inf::Problem> {
    check(&parse(text).expect("the test INF parses"), Arch::Amd64)
}

#[test]
fn the_good_inf_passes() {
    let found = problems(GOOD);
    assert!(found.is_empty(), "unexpected problems:\n{found:#?}");
}

/// (what is broken, text replaced, replacement, the problem expected).
const BREAKAGES: &[(&str, &str, &str, &str)] = &[
    ("no [Version]", "[Version]", "[Versio]", "missing-section"),
    (
        "wrong signature",
        "\"$WINDOWS NT$\"",
        "\"$WINDOWS 95$\"",
        "bad-value",
    ),
    (
        "no Class",
        "Class       = System\n",
        "",
        "missing-directive",
    ),
    (
        "ClassGuid of another class",
        "{4d36e97d-",
        "{4d36e97b-",
        "class-guid-mismatch",
    ),
    (
        "malformed ClassGuid",
        "{4d36e97d-e325-",
        "{4d36e97d-e325",
        "bad-value",
    ),
    (
        "unknown class",
        "Class       = System",
        "Class       = Sytsem",
        "bad-value",
    ),
    (
        "no Provider",
        "Provider    = %Provider%\n",
        "",
        "missing-directive",
    ),
    (
        "no CatalogFile",
        "CatalogFile = bus.cat\n",
        "",
        "missing-directive",
    ),
    (
        "catalog with a path",
        "= bus.cat",
        "= ..\\bus.cat",
        "bad-value",
    ),
    ("catalog not .cat", "= bus.cat", "= bus.inf", "bad-value"),
    (
        "no DriverVer",
        "DriverVer   = 12/07/2026,0.1.0.0\n",
        "",
        "missing-directive",
    ),
    (
        "DriverVer month 13",
        "12/07/2026,",
        "13/07/2026,",
        "bad-value",
    ),
    (
        "DriverVer 31 November",
        "12/07/2026,",
        "11/31/2026,",
        "bad-value",
    ),
    (
        "DriverVer 29 February 2026",
        "12/07/2026,",
        "02/29/2026,",
        "bad-value",
    ),
    (
        "DriverVer without version",
        "12/07/2026,0.1.0.0",
        "12/07/2026",
        "bad-value",
    ),
    (
        "DriverVer three-part version",
        ",0.1.0.0",
        ",0.1.0",
        "bad-value",
    ),
    (
        "DriverVer version part too big",
        ",0.1.0.0",
        ",0.1.0.65536",
        "bad-value",
    ),
    (
        "no PnpLockdown",
        "PnpLockdown = 1\n",
        "",
        "missing-directive",
    ),
    (
        "no [Manufacturer]",
        "[Manufacturer]",
        "[Manufacturers]",
        "missing-section",
    ),
    (
        "no amd64 decoration",
        "Bus, NTamd64, NTamd64.10.0...17763",
        "Bus, NTx86",
        "missing-arch-decoration",
    ),
    (
        "misspelt decoration",
        ", NTamd64.10.0...17763",
        ", NTamd46",
        "unknown-decoration",
    ),
    (
        "decorated models section missing",
        "[Bus.NTamd64.10.0...17763]",
        "[Bus.NTamd64.10.0...19041]",
        "missing-section",
    ),
    (
        "models entry without hardware ID",
        "= Bus_Install, ROOT\\BUS_TEST",
        "= Bus_Install",
        "too-few-fields",
    ),
    (
        "install section missing",
        "[Bus_Install.NTamd64]",
        "[Bus_Instal.NTamd64]",
        "missing-section",
    ),
    (
        "PCI ID with three-digit vendor",
        "VEN_5853&DEV_0001",
        "VEN_585&DEV_0001",
        "bad-hardware-id",
    ),
    (
        "PCI ID with DEV before VEN",
        "VEN_5853&DEV_0001",
        "DEV_0001&VEN_5853",
        "bad-hardware-id",
    ),
    (
        "PCI ID with short SUBSYS",
        "SUBSYS_C0005853",
        "SUBSYS_C000",
        "bad-hardware-id",
    ),
    (
        "PCI ID with REV before SUBSYS",
        "&SUBSYS_C0005853&REV_01",
        "&REV_01&SUBSYS_C0005853",
        "bad-hardware-id",
    ),
    (
        "hardware ID with a blank",
        "ROOT\\BUS_TEST",
        "ROOT\\BUS TEST",
        "bad-hardware-id",
    ),
    (
        "hardware ID without enumerator",
        "ROOT\\BUS_TEST",
        "BUS_TEST",
        "bad-hardware-id",
    ),
    (
        "no .Services section",
        "[Bus_Install.NTamd64.Services]",
        "[Bus_Install.NTamd64.Service]",
        "missing-section",
    ),
    (
        "service not associated",
        "bus, 0x00000002,",
        "bus, 0x00000000,",
        "associated-service-count",
    ),
    (
        "AddService flags not a number",
        "bus, 0x00000002,",
        "bus, 0xZ,",
        "bad-value",
    ),
    (
        "AddService too short",
        "bus, 0x00000002, Bus_Service, Bus_EventLog",
        "bus, 0x00000002",
        "too-few-fields",
    ),
    (
        "service section missing",
        "[Bus_Service]",
        "[Bus_Servic]",
        "missing-section",
    ),
    (
        "event-log section missing",
        "[Bus_EventLog]",
        "[Bus_EventLo]",
        "missing-section",
    ),
    (
        "no ServiceType",
        "ServiceType    = 1\n",
        "",
        "missing-directive",
    ),
    (
        "ServiceType 3",
        "ServiceType    = 1",
        "ServiceType    = 3",
        "bad-value",
    ),
    (
        "StartType 5",
        "StartType      = 0",
        "StartType      = 5",
        "bad-value",
    ),
    (
        "ErrorControl 4",
        "ErrorControl   = 1",
        "ErrorControl   = 4",
        "bad-value",
    ),
    (
        "no ErrorControl",
        "ErrorControl   = 1\n",
        "",
        "missing-directive",
    ),
    (
        "boot start without LoadOrderGroup",
        "LoadOrderGroup = Boot Bus Extender\n",
        "",
        "missing-directive",
    ),
    (
        "boot-start Win32 service",
        "ServiceType    = 1",
        "ServiceType    = 0x10",
        "bad-value",
    ),
    (
        "no ServiceBinary",
        "ServiceBinary  = %12%\\bus.sys\n",
        "",
        "missing-directive",
    ),
    (
        "ServiceBinary outside the driver directories",
        "%12%\\bus.sys",
        "%11%\\bus.sys",
        "bad-value",
    ),
    (
        "ServiceBinary not copied",
        "%12%\\bus.sys",
        "%12%\\other.sys",
        "service-binary-not-copied",
    ),
    (
        "copied file not on a source disk",
        "bus.sys = 1",
        "bux.sys = 1",
        "file-not-in-source-disks",
    ),
    (
        "source file on an unknown disk",
        "bus.sys = 1",
        "bus.sys = 2",
        "unknown-disk",
    ),
    (
        "disk ID not a number",
        "1 = %Disk%",
        "one = %Disk%",
        "bad-value",
    ),
    (
        "CopyFiles section missing",
        "[Bus_Files]",
        "[Bus_File]",
        "missing-section",
    ),
    (
        "no destination",
        "DefaultDestDir = 12\nBus_Files      = 12\n",
        "",
        "missing-destination-dir",
    ),
    (
        "DestinationDirs names a missing section",
        "Bus_Files      = 12",
        "Bus_Filez      = 12",
        "missing-section",
    ),
    (
        "dirid not a number",
        "DefaultDestDir = 12",
        "DefaultDestDir = twelve",
        "bad-value",
    ),
    (
        "AddReg section missing",
        "[Bus_Parameters]",
        "[Bus_Parameter]",
        "missing-section",
    ),
    (
        ".HW AddReg section missing",
        "[Bus_HW_AddReg]",
        "[Bus_HW_AddRe]",
        "missing-section",
    ),
    (
        "registry entry with an unknown root",
        "HKR, Parameters,",
        "HKX, Parameters,",
        "bad-value",
    ),
    (
        "registry flags not a number",
        "Unplug, 0x00000002,",
        "Unplug, 0xG,",
        "bad-value",
    ),
    (
        "registry entry with one field",
        "HKR, Parameters, Unplug, 0x00000002, \"all\"",
        "HKR",
        "too-few-fields",
    ),
    (
        "undefined string",
        "%Bus.Desc% = Bus_Install, ROOT",
        "%Bus.Dsec% = Bus_Install, ROOT",
        "undefined-string",
    ),
    (
        "unbalanced percent",
        "Provider    = %Provider%",
        "Provider    = %Provider",
        "unbalanced-percent",
    ),
    (
        "unstamped $ARCH$",
        "Bus, NTamd64, NTamd64.10.0...17763",
        "Bus, NTamd64, NT$ARCH$",
        "unstamped-placeholder",
    ),
];

#[test]
fn each_breakage_is_refused_with_its_named_problem() {
    let mut failures = Vec::new();
    for &(what, from, to, code) in BREAKAGES {
        assert!(GOOD.contains(from), "{what}: the good INF has no {from:?}");
        let broken = GOOD.replacen(from, to, 1);
        let found = problems(&broken);
        let codes: Vec<&str> = found.iter().map(|p| p.kind.code()).collect();
        if !codes.contains(&code) {
            failures.push(format!("{what}: expected {code}, got {codes:?}"));
        }
        // Every problem is printable with its line and code.
        for problem in &found {
            let text = problem.to_string();
            assert!(text.contains(problem.kind.code()), "{what}: {text}");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn problems_carry_the_line_of_the_broken_entry() {
    let broken = GOOD.replacen("StartType      = 0", "StartType      = 9", 1);
    let line = broken
        .lines()
        .position(|l| l.starts_with("StartType"))
        .unwrap()
        + 1;
    let found = problems(&broken);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].line, line);
    assert!(matches!(
        &found[0].kind,
        ProblemKind::BadValue { directive, value, .. } if directive == "StartType" && value == "9"
    ));
}

#[test]
fn hardware_ids() {
    use win_inf::check::check_hardware_id;
    for good in [
        "PCI\\VEN_5853&DEV_0001",
        "PCI\\VEN_5853&DEV_0002",
        "PCI\\VEN_5853&DEV_C000&SUBSYS_C0005853&REV_01",
        "PCI\\VEN_5853&DEV_0001&REV_01",
        "PCI\\CC_0100",
        "ROOT\\XENPCI_WINE_TEST",
        "XEN\\VBD",
        "*PNP0A03",
    ] {
        assert_eq!(check_hardware_id(good), Ok(()), "{good}");
    }
    let long = format!("ROOT\\{}", "A".repeat(196));
    for bad in [
        "",
        "PCI\\",
        "\\VBD",
        "PCI\\VEN_5853",
        "PCI\\VEN_58G3&DEV_0001",
        "PCI\\VEN_5853&DEV_0001&FOO_1",
        "PCI\\CC_01",
        "XEN\\V,BD",
        "XEN\\VBD\u{e9}",
        "X-N\\VBD",
        long.as_str(),
    ] {
        assert!(check_hardware_id(bad).is_err(), "{bad:?} was accepted");
    }
}

#[test]
fn hostile_text_never_panics() {
    // Fragments of INF syntax in every order and truncation: parse and check must return,
    // with errors or problems, but never panic.
    let pieces = [
        "[",
        "]",
        "=",
        ",",
        "%",
        "\"",
        ";",
        "\\\n",
        "\n",
        "$ARCH$",
        "Version",
        "AddService",
        "CopyFiles",
        "0x",
        "Manufacturer",
        "NTamd64",
        "PCI\\VEN_",
        "&",
    ];
    let mut state = 0x2545_f491_u32;
    for _ in 0..4000 {
        let mut text = String::new();
        for _ in 0..(state % 40) {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            text.push_str(pieces[(state as usize) % pieces.len()]);
        }
        if let Ok(inf) = parse(&text) {
            let _ = check(&inf, Arch::Amd64);
        }
    }
    for end in (0..GOOD.len()).step_by(5) {
        if let Ok(inf) = parse(&GOOD[..end]) {
            let _ = check(&inf, Arch::Amd64);
        }
    }
}
