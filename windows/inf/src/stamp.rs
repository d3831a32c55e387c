//! The stamping step (what the WDK's `stampinf` does): from an `.inx` template to the `.inf`
//! that ships next to the `.sys`.
//!
//! - every `$ARCH$` becomes the architecture (`amd64`), so `[Manufacturer]`'s `NT$ARCH$`
//!   becomes `NTamd64`;
//! - `[Version]` gets `DriverVer = mm/dd/yyyy,w.x.y.z` and `CatalogFile = <name>.cat`, replacing
//!   the template's entries or added after the header;
//! - any other `$NAME$` left is an error, and so is a template that is not plain ASCII;
//! - the result has CRLF line ends and is checked to parse.
//!
//! Encoding: templates and stamped INFs are ASCII. Windows reads an INF without a byte-order mark
//! in the system code page, which agrees with ASCII everywhere, so ASCII INFs need no conversion
//! and stay readable in diffs; the WDK samples' UTF-16LE is needed only for text outside ASCII,
//! which the suite's INFs do not have. The parser also reads UTF-16LE with a BOM.

use std::fmt;

use crate::check::placeholders;
use crate::parse::{self, eq_name, ParseError};
use crate::Arch;

/// A calendar date (Gregorian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Date {
    /// The year (four digits).
    pub year: u32,
    /// The month, 1..=12.
    pub month: u32,
    /// The day of the month, 1..=31.
    pub day: u32,
}

impl Date {
    /// The UTC date of a Unix time (seconds since 1970-01-01).
    pub fn from_unix_seconds(seconds: u64) -> Self {
        // Days since 1970-01-01 to a civil date (the era-based algorithm of H. Hinnant's
        // `civil_from_days`, for non-negative days).
        let days = seconds / 86_400 + 719_468;
        let era = days / 146_097;
        let day_of_era = days - era * 146_097;
        let year_of_era =
            (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let mp = (5 * day_of_year + 2) / 153;
        let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = (year_of_era + era * 400 + u64::from(month <= 2)) as u32;
        Date { year, month, day }
    }
}

/// What the stamping step writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StampParams {
    /// The architecture.
    pub arch: Arch,
    /// `DriverVer`'s date.
    pub date: Date,
    /// `DriverVer`'s version.
    pub version: [u16; 4],
    /// `CatalogFile`'s value (a file name ending in `.cat`).
    pub catalog: String,
}

impl StampParams {
    /// `DriverVer`'s value: `mm/dd/yyyy,w.x.y.z`.
    pub fn driver_ver(&self) -> String {
        let [a, b, c, d] = self.version;
        format!(
            "{:02}/{:02}/{:04},{a}.{b}.{c}.{d}",
            self.date.month, self.date.day, self.date.year
        )
    }
}

/// Why a template could not be stamped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StampError {
    /// A character outside ASCII (see the module docs for the encoding).
    NotAscii {
        /// The line (1-based).
        line: usize,
    },
    /// The template has no `[Version]` section.
    NoVersionSection,
    /// A `$NAME$` the stamping step does not know.
    UnknownPlaceholder {
        /// The line (1-based).
        line: usize,
        /// The placeholder.
        placeholder: String,
    },
    /// The catalog name is not a plain file name ending in `.cat`.
    BadCatalogName(String),
    /// The date is not a real date from 1980 on, or the year has more than four digits.
    BadDate(Date),
    /// The template (or the stamped text) does not parse.
    Parse(ParseError),
}

impl fmt::Display for StampError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StampError::NotAscii { line } => write!(
                f,
                "line {line}: character outside ASCII (templates are ASCII; see win-inf's docs)"
            ),
            StampError::NoVersionSection => f.write_str("the template has no [Version] section"),
            StampError::UnknownPlaceholder { line, placeholder } => {
                write!(f, "line {line}: unknown placeholder {placeholder}")
            }
            StampError::BadCatalogName(name) => {
                write!(f, "catalog name {name:?} is not a file name ending in .cat")
            }
            StampError::BadDate(d) => {
                write!(
                    f,
                    "date {}-{}-{} cannot be a DriverVer date",
                    d.year, d.month, d.day
                )
            }
            StampError::Parse(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StampError {}

/// The key of an INF line (`key = ...`), trimmed, or `None` for a line without `=` or a comment.
fn line_key(line: &str) -> Option<&str> {
    let code = line.split(';').next().unwrap_or("");
    let (key, _) = code.split_once('=')?;
    Some(key.trim())
}

/// Stamps `template` (see the module docs).
pub fn stamp(template: &str, params: &StampParams) -> Result<String, StampError> {
    if !crate::check::is_plain_file_name(&params.catalog)
        || !params.catalog.to_ascii_lowercase().ends_with(".cat")
    {
        return Err(StampError::BadCatalogName(params.catalog.clone()));
    }
    let date = params.date;
    if date.year < 1980
        || date.year > 9999
        || !(1..=12).contains(&date.month)
        || date.day == 0
        || date.day > crate::check::days_in_month(date.year, date.month)
    {
        return Err(StampError::BadDate(date));
    }
    if let Some(index) = template.lines().position(|l| !l.is_ascii()) {
        return Err(StampError::NotAscii { line: index + 1 });
    }
    // The template must parse before stamping (its line numbers are the ones reported).
    parse::parse(template).map_err(StampError::Parse)?;

    let mut out: Vec<String> = Vec::new();
    let mut in_version = false;
    let mut version_header = None;
    let (mut wrote_driver_ver, mut wrote_catalog) = (false, false);
    for (index, line) in template.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            in_version = trimmed
                .trim_start_matches('[')
                .split(']')
                .next()
                .is_some_and(|name| eq_name(name.trim(), "Version"));
            if in_version {
                version_header = Some(out.len());
            }
        }
        let key = if in_version { line_key(line) } else { None };
        let line = if key.is_some_and(|k| eq_name(k, "DriverVer")) {
            wrote_driver_ver = true;
            format!("DriverVer   = {}", params.driver_ver())
        } else if key.is_some_and(|k| eq_name(k, "CatalogFile")) {
            wrote_catalog = true;
            format!("CatalogFile = {}", params.catalog)
        } else {
            line.replace("$ARCH$", params.arch.name())
        };
        if let Some(placeholder) = placeholders(line.split(';').next().unwrap_or("")).pop() {
            return Err(StampError::UnknownPlaceholder {
                line: index + 1,
                placeholder,
            });
        }
        out.push(line);
    }
    let header = version_header.ok_or(StampError::NoVersionSection)?;
    if !wrote_catalog {
        out.insert(header + 1, format!("CatalogFile = {}", params.catalog));
    }
    if !wrote_driver_ver {
        out.insert(header + 1, format!("DriverVer   = {}", params.driver_ver()));
    }
    let mut text = out.join("\r\n");
    text.push_str("\r\n");
    parse::parse(&text).map_err(StampError::Parse)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> StampParams {
        StampParams {
            arch: Arch::Amd64,
            date: Date {
                year: 2026,
                month: 12,
                day: 7,
            },
            version: [0, 1, 0, 0],
            catalog: "xenpci.cat".into(),
        }
    }

    #[test]
    fn unix_time_to_date() {
        assert_eq!(
            Date::from_unix_seconds(0),
            Date {
                year: 1970,
                month: 1,
                day: 1
            }
        );
        // 2000-02-29 12:00:00 UTC, a leap day.
        assert_eq!(
            Date::from_unix_seconds(951_825_600),
            Date {
                year: 2000,
                month: 2,
                day: 29
            }
        );
        // 2026-12-31 23:59:59 UTC.
        assert_eq!(
            Date::from_unix_seconds(1_798_761_599),
            Date {
                year: 2026,
                month: 12,
                day: 31
            }
        );
    }

    #[test]
    fn stamps_arch_driver_ver_and_catalog() {
        let template =
            "[Version]\nSignature=\"$WINDOWS NT$\"\nDriverVer=$DRIVERVER$ ; set by stamping\n\
                        [Manufacturer]\n%Mfg%=Models,NT$ARCH$\n";
        let text = stamp(template, &params()).unwrap();
        assert_eq!(
            text,
            "[Version]\r\nCatalogFile = xenpci.cat\r\nSignature=\"$WINDOWS NT$\"\r\n\
             DriverVer   = 12/07/2026,0.1.0.0\r\n[Manufacturer]\r\n%Mfg%=Models,NTamd64\r\n"
        );
    }

    #[test]
    fn refuses_what_it_cannot_stamp() {
        let mut bad_catalog = params();
        bad_catalog.catalog = "..\\x.cat".into();
        assert_eq!(
            stamp("[Version]\n", &bad_catalog),
            Err(StampError::BadCatalogName("..\\x.cat".into()))
        );
        let mut bad_date = params();
        bad_date.date.day = 31;
        bad_date.date.month = 11;
        assert!(matches!(
            stamp("[Version]\n", &bad_date),
            Err(StampError::BadDate(_))
        ));
        assert_eq!(
            stamp("[Version]\n[S]\nA=\"caf\u{e9}\"\n", &params()),
            Err(StampError::NotAscii { line: 3 })
        );
        assert_eq!(
            stamp("[Strings]\n", &params()),
            Err(StampError::NoVersionSection)
        );
        assert_eq!(
            stamp("[Version]\n[S]\nx = $VERSION$\n", &params()),
            Err(StampError::UnknownPlaceholder {
                line: 3,
                placeholder: "$VERSION$".into()
            })
        );
        assert!(matches!(
            stamp("[Version\n", &params()),
            Err(StampError::Parse(_))
        ));
    }
}
