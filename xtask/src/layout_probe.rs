//! The layout probe: the structure sizes and field offsets the drivers rely on, checked against
//! an independent C definition, mingw-w64's DDK headers, compiled by clang for
//! `x86_64-w64-mingw32`.
//!
//! Two sources are checked:
//! - `windows-sys`'s structures that `win-km` uses through their fields (IRP, stack location,
//!   device and driver objects, kernel objects it embeds, interrupt and registry parameters).
//!   Their layout is computed here, on the host: they consist of integers, pointers, `bool` and
//!   nested structures/unions, which x86-64 lays out the same way under the System V and the
//!   Windows ABIs.
//! - the raw offsets `win-km` uses instead of `windows-sys`'s structures (`win_km::layout`).
//!
//! Each row becomes a `_Static_assert` in one C file; clang reports the rows that fail. The probe
//! requires that exactly the rows in [`KNOWN_DIFFERENCES`] fail: those are `windows-sys`
//! declarations known to differ from `wdm.h`, which `win-km` therefore does not use (so the probe
//! also shows it can fail).

use std::mem::{offset_of, size_of};

use windows_sys::Wdk::Foundation as f;
use windows_sys::Wdk::System::SystemServices as ss;
use windows_sys::Win32::Foundation as w;

use win_km::layout as raw;

/// One checked size or offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Who declares the value here: `windows-sys` or `win-km`.
    pub source: &'static str,
    /// The C expression with the header's value.
    pub c_expr: &'static str,
    /// Our value.
    pub ours: usize,
}

/// Rows that must fail: `windows-sys` declares the interrupt member of the partial descriptor's
/// union without `wdm.h`'s 4-byte packing, which makes the descriptor and everything containing
/// it larger.
pub const KNOWN_DIFFERENCES: &[&str] = &[
    "sizeof(CM_PARTIAL_RESOURCE_DESCRIPTOR)",
    "offsetof(CM_RESOURCE_LIST, List)",
];

macro_rules! row {
    ($source:literal, $c:literal, $ours:expr) => {
        Row {
            source: $source,
            c_expr: $c,
            ours: $ours,
        }
    };
}

/// Every row.
pub fn rows() -> Vec<Row> {
    vec![
        // windows-sys structures used field by field.
        row!("windows-sys", "sizeof(IRP)", size_of::<f::IRP>()),
        row!(
            "windows-sys",
            "offsetof(IRP, IoStatus)",
            offset_of!(f::IRP, IoStatus)
        ),
        row!(
            "windows-sys",
            "offsetof(IRP, CurrentLocation)",
            offset_of!(f::IRP, CurrentLocation)
        ),
        row!(
            "windows-sys",
            "offsetof(IRP, Tail.Overlay.CurrentStackLocation)",
            offset_of!(f::IRP, Tail)
                + offset_of!(f::IRP_3_0, Anonymous2)
                + offset_of!(f::IRP_3_0_1, Anonymous)
        ),
        row!(
            "windows-sys",
            "sizeof(IO_STATUS_BLOCK)",
            size_of::<windows_sys::Win32::System::IO::IO_STATUS_BLOCK>()
        ),
        row!(
            "windows-sys",
            "sizeof(IO_STACK_LOCATION)",
            size_of::<f::IO_STACK_LOCATION>()
        ),
        row!(
            "windows-sys",
            "offsetof(IO_STACK_LOCATION, Parameters)",
            offset_of!(f::IO_STACK_LOCATION, Parameters)
        ),
        row!(
            "windows-sys",
            "offsetof(IO_STACK_LOCATION, Parameters.StartDevice.AllocatedResourcesTranslated)",
            offset_of!(f::IO_STACK_LOCATION, Parameters)
                + offset_of!(f::IO_STACK_LOCATION_0_36, AllocatedResourcesTranslated)
        ),
        row!(
            "windows-sys",
            "offsetof(IO_STACK_LOCATION, CompletionRoutine)",
            offset_of!(f::IO_STACK_LOCATION, CompletionRoutine)
        ),
        row!(
            "windows-sys",
            "offsetof(IO_STACK_LOCATION, Context)",
            offset_of!(f::IO_STACK_LOCATION, Context)
        ),
        row!(
            "windows-sys",
            "offsetof(DEVICE_OBJECT, Flags)",
            offset_of!(f::DEVICE_OBJECT, Flags)
        ),
        row!(
            "windows-sys",
            "offsetof(DEVICE_OBJECT, DeviceExtension)",
            offset_of!(f::DEVICE_OBJECT, DeviceExtension)
        ),
        row!(
            "windows-sys",
            "offsetof(DRIVER_OBJECT, DriverExtension)",
            offset_of!(f::DRIVER_OBJECT, DriverExtension)
        ),
        row!(
            "windows-sys",
            "offsetof(DRIVER_OBJECT, DriverUnload)",
            offset_of!(f::DRIVER_OBJECT, DriverUnload)
        ),
        row!(
            "windows-sys",
            "offsetof(DRIVER_OBJECT, MajorFunction)",
            offset_of!(f::DRIVER_OBJECT, MajorFunction)
        ),
        row!(
            "windows-sys",
            "sizeof(((DRIVER_OBJECT *)0)->MajorFunction)",
            size_of::<[f::DRIVER_DISPATCH; 28]>()
        ),
        row!(
            "windows-sys",
            "offsetof(DRIVER_EXTENSION, AddDevice)",
            offset_of!(f::DRIVER_EXTENSION, AddDevice)
        ),
        row!("windows-sys", "sizeof(KDPC)", size_of::<f::KDPC>()),
        row!("windows-sys", "sizeof(KEVENT)", size_of::<f::KEVENT>()),
        row!("windows-sys", "sizeof(KTIMER)", size_of::<ss::KTIMER>()),
        row!(
            "windows-sys",
            "sizeof(KLOCK_QUEUE_HANDLE)",
            size_of::<ss::KLOCK_QUEUE_HANDLE>()
        ),
        row!(
            "windows-sys",
            "sizeof(IO_REMOVE_LOCK)",
            size_of::<ss::IO_REMOVE_LOCK>()
        ),
        row!("windows-sys", "sizeof(MDL)", size_of::<f::MDL>()),
        row!(
            "windows-sys",
            "sizeof(OBJECT_ATTRIBUTES)",
            size_of::<f::OBJECT_ATTRIBUTES>()
        ),
        row!(
            "windows-sys",
            "sizeof(UNICODE_STRING)",
            size_of::<w::UNICODE_STRING>()
        ),
        row!(
            "windows-sys",
            "sizeof(IO_CONNECT_INTERRUPT_PARAMETERS)",
            size_of::<ss::IO_CONNECT_INTERRUPT_PARAMETERS>()
        ),
        row!(
            "windows-sys",
            "offsetof(IO_CONNECT_INTERRUPT_PARAMETERS, FullySpecified.Vector)",
            offset_of!(ss::IO_CONNECT_INTERRUPT_PARAMETERS, Anonymous)
                + offset_of!(ss::IO_CONNECT_INTERRUPT_FULLY_SPECIFIED_PARAMETERS, Vector)
        ),
        row!(
            "windows-sys",
            "offsetof(IO_CONNECT_INTERRUPT_PARAMETERS, FullySpecified.ProcessorEnableMask)",
            offset_of!(ss::IO_CONNECT_INTERRUPT_PARAMETERS, Anonymous)
                + offset_of!(
                    ss::IO_CONNECT_INTERRUPT_FULLY_SPECIFIED_PARAMETERS,
                    ProcessorEnableMask
                )
        ),
        row!(
            "windows-sys",
            "offsetof(IO_CONNECT_INTERRUPT_PARAMETERS, MessageBased.FallBackServiceRoutine)",
            offset_of!(ss::IO_CONNECT_INTERRUPT_PARAMETERS, Anonymous)
                + offset_of!(
                    ss::IO_CONNECT_INTERRUPT_MESSAGE_BASED_PARAMETERS,
                    FallBackServiceRoutine
                )
        ),
        row!(
            "windows-sys",
            "sizeof(IO_DISCONNECT_INTERRUPT_PARAMETERS)",
            size_of::<ss::IO_DISCONNECT_INTERRUPT_PARAMETERS>()
        ),
        row!(
            "windows-sys",
            "sizeof(CM_PARTIAL_RESOURCE_DESCRIPTOR)",
            size_of::<ss::CM_PARTIAL_RESOURCE_DESCRIPTOR>()
        ),
        row!(
            "windows-sys",
            "offsetof(CM_RESOURCE_LIST, List)",
            offset_of!(ss::CM_RESOURCE_LIST, List)
        ),
        // win-km's raw offsets.
        row!(
            "win-km",
            "sizeof(CM_PARTIAL_RESOURCE_DESCRIPTOR) + 0",
            raw::CM_PARTIAL_RESOURCE_DESCRIPTOR_BYTES
        ),
        row!(
            "win-km",
            "offsetof(CM_RESOURCE_LIST, List) + 0",
            raw::CM_RESOURCE_LIST_LIST
        ),
        row!(
            "win-km",
            "offsetof(CM_FULL_RESOURCE_DESCRIPTOR, PartialResourceList.Count)",
            raw::CM_FULL_RESOURCE_DESCRIPTOR_COUNT
        ),
        row!(
            "win-km",
            "offsetof(CM_FULL_RESOURCE_DESCRIPTOR, PartialResourceList.PartialDescriptors)",
            raw::CM_FULL_RESOURCE_DESCRIPTOR_PARTIALS
        ),
        row!(
            "win-km",
            "offsetof(KEY_VALUE_PARTIAL_INFORMATION, Type)",
            raw::KEY_VALUE_PARTIAL_INFORMATION_TYPE
        ),
        row!(
            "win-km",
            "offsetof(KEY_VALUE_PARTIAL_INFORMATION, DataLength)",
            raw::KEY_VALUE_PARTIAL_INFORMATION_DATA_LENGTH
        ),
        row!(
            "win-km",
            "offsetof(KEY_VALUE_PARTIAL_INFORMATION, Data)",
            raw::KEY_VALUE_PARTIAL_INFORMATION_DATA
        ),
        row!("win-km", "sizeof(MDL) + 0", raw::MDL_HEADER_BYTES),
        row!("win-km", "sizeof(PFN_NUMBER)", raw::PFN_NUMBER_BYTES),
        row!(
            "win-km",
            "ERROR_LOG_MAXIMUM_SIZE",
            raw::ERROR_LOG_MAXIMUM_SIZE
        ),
        row!(
            "win-km",
            "sizeof(IO_ERROR_LOG_PACKET)",
            raw::IO_ERROR_LOG_PACKET_BYTES
        ),
        row!(
            "win-km",
            "offsetof(IO_ERROR_LOG_PACKET, NumberOfStrings)",
            raw::IO_ERROR_LOG_PACKET_NUMBER_OF_STRINGS
        ),
        row!(
            "win-km",
            "offsetof(IO_ERROR_LOG_PACKET, StringOffset)",
            raw::IO_ERROR_LOG_PACKET_STRING_OFFSET
        ),
        row!(
            "win-km",
            "offsetof(IO_ERROR_LOG_PACKET, ErrorCode)",
            raw::IO_ERROR_LOG_PACKET_ERROR_CODE
        ),
        row!(
            "win-km",
            "offsetof(IO_ERROR_LOG_PACKET, UniqueErrorValue)",
            raw::IO_ERROR_LOG_PACKET_UNIQUE_ERROR_VALUE
        ),
        row!(
            "win-km",
            "offsetof(IO_ERROR_LOG_PACKET, FinalStatus)",
            raw::IO_ERROR_LOG_PACKET_FINAL_STATUS
        ),
    ]
}

/// The C file: one `_Static_assert` per row, its message naming the row's index.
pub fn c_source(rows: &[Row]) -> String {
    let mut text = String::from(
        "/* Generated by cargo xtask drivers: the layout probe. */\n\
         #include <ntifs.h>\n#include <stddef.h>\n\n",
    );
    for (i, row) in rows.iter().enumerate() {
        text.push_str(&format!(
            "_Static_assert(({}) == {}, \"probe row {i}\");\n",
            row.c_expr, row.ours
        ));
    }
    text
}

/// The indices of the rows clang reported as failing.
pub fn failed_rows(clang_output: &str) -> Vec<usize> {
    let mut failed: Vec<usize> = clang_output
        .lines()
        .filter(|line| line.contains("static assertion failed"))
        .filter_map(|line| {
            let at = line.find("probe row ")? + "probe row ".len();
            let digits: String = line[at..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        })
        .collect();
    failed.sort_unstable();
    failed.dedup();
    failed
}

/// The compiler and headers of the probe.
const CLANG: &str = "clang-19";
const DDK_INCLUDE: &str = "/usr/x86_64-w64-mingw32/include/ddk";
const INCLUDE: &str = "/usr/x86_64-w64-mingw32/include";

/// Runs the probe: writes the C file to `c_path`, compiles it, and requires that exactly the
/// known differences fail. Returns a summary line.
pub fn run(c_path: &std::path::Path) -> Result<String, String> {
    let rows = rows();
    std::fs::write(c_path, c_source(&rows)).map_err(|e| format!("{}: {e}", c_path.display()))?;
    let out = std::process::Command::new(CLANG)
        .args([
            "-target",
            "x86_64-w64-mingw32",
            "-fsyntax-only",
            "-ferror-limit=0",
            "-I",
            DDK_INCLUDE,
            "-isystem",
            INCLUDE,
        ])
        .arg(c_path)
        .output()
        .map_err(|e| format!("cannot run {CLANG}: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let failed = failed_rows(&stderr);
    let errors = stderr.lines().filter(|l| l.contains(" error: ")).count();
    if errors != failed.len() {
        return Err(format!(
            "clang reported errors other than failed rows:\n{stderr}"
        ));
    }
    let expected: Vec<usize> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.source == "windows-sys" && KNOWN_DIFFERENCES.contains(&r.c_expr))
        .map(|(i, _)| i)
        .collect();
    if failed != expected {
        let describe = |set: &[usize]| {
            set.iter()
                .map(|&i| {
                    format!(
                        "{} {} (ours {})",
                        rows[i].source, rows[i].c_expr, rows[i].ours
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        return Err(format!(
            "layout probe: rows failing: [{}]; expected to fail: [{}]\n{stderr}",
            describe(&failed),
            describe(&expected)
        ));
    }
    let from = |source: &str| rows.iter().filter(|r| r.source == source).count();
    Ok(format!(
        "{} rows agree with mingw-w64's DDK headers ({} windows-sys, {} win-km); the {} known windows-sys differences fail as expected: {}",
        rows.len() - failed.len(),
        from("windows-sys") - failed.len(),
        from("win-km"),
        failed.len(),
        KNOWN_DIFFERENCES.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_becomes_an_assertion() {
        let rows = rows();
        let text = c_source(&rows);
        assert_eq!(text.matches("_Static_assert").count(), rows.len());
        assert!(text.contains("_Static_assert((sizeof(IRP)) == "));
    }

    #[test]
    fn the_known_differences_are_rows_with_values_that_differ_from_win_km() {
        let rows = rows();
        for known in KNOWN_DIFFERENCES {
            let sys = rows
                .iter()
                .find(|r| r.source == "windows-sys" && r.c_expr == *known)
                .expect("known difference is a row");
            let ours = rows
                .iter()
                .find(|r| r.source == "win-km" && r.c_expr.starts_with(known))
                .expect("win-km has its own value");
            assert_ne!(sys.ours, ours.ours, "{known}");
        }
    }

    #[test]
    fn clang_failures_are_read() {
        let out = "probe.c:7:16: error: static assertion failed due to requirement '(sizeof(CM_PARTIAL_RESOURCE_DESCRIPTOR)) == 24': probe row 30\n\
                   probe.c:8:16: error: static assertion failed: probe row 3\n\
                   probe.c:9:1: note: something else\n";
        assert_eq!(failed_rows(out), vec![3, 30]);
    }
}
