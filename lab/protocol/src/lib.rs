//! The protocol between the lab program that runs inside dom0 and the harness on the host
//! (`cargo xtask lab`).
//!
//! The harness asks for a run on dom0's kernel command line ([`RunRequest`]); the lab program
//! answers with [`Record`]s, one per line on the console, which reaches the host through Xen's
//! serial port. A record line is the marker `@@LAB:<nonce>@@`, a space and one JSON object:
//!
//! ```text
//! @@LAB:k3j9x2@@ {"kind":"begin","scenario":"boot"}
//! @@LAB:k3j9x2@@ {"kind":"result","scenario":"boot","pass":true,"seconds":0.04,"figures":[...],"message":""}
//! ```
//!
//! The nonce is chosen afresh by the harness for every run, so nothing else on the console (Xen's
//! and Linux's messages, a scenario printing a file) can be taken for a record. The console is
//! shared with Xen, so a record may arrive with other text before it on the same line, or after
//! its JSON object; [`decode`] tolerates both.
#![forbid(unsafe_code)]

use std::fmt;

use serde::{Deserialize, Serialize};

/// Kernel command line key holding the run's nonce.
pub const NONCE_KEY: &str = "lab.nonce";
/// Kernel command line key holding the comma-separated scenario names to run, in order.
pub const SCENARIOS_KEY: &str = "lab.scenarios";
/// Kernel command line key that, set to `1`, makes the lab run every scenario even after one
/// fails.
pub const KEEP_GOING_KEY: &str = "lab.keep_going";

/// The file in dom0 where its init writes its uptime (seconds, as in `/proc/uptime`) once Xen's
/// devices, xenstored and `xen-init-dom0` are ready.
pub const READY_FILE: &str = "/run/lab/ready";

/// The longest scenario name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// One scenario as the lab program lists it (`lab list --json` prints one per line).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioInfo {
    /// The name used to select it (`cargo xtask lab --scenario NAME`).
    pub name: String,
    /// One sentence saying what it checks.
    pub description: String,
    /// Whether it runs when no scenario is named.
    pub default: bool,
    /// How long the lab program lets it run before reporting it as failed.
    pub timeout_s: u64,
}

/// A scenario as one line of `lab list --json`.
pub fn scenario_info_line(info: &ScenarioInfo) -> String {
    // Cannot fail: the struct holds only strings, a bool and an integer.
    serde_json::to_string(info).unwrap_or_default()
}

/// Reads the output of `lab list --json`.
pub fn parse_scenario_list(text: &str) -> Result<Vec<ScenarioInfo>, String> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line).map_err(|e| format!("bad scenario line '{line}': {e}"))
        })
        .collect()
}

/// A measured value reported by a scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FigureValue {
    /// A number (always finite).
    Number(f64),
    /// A text, such as a version.
    Text(String),
}

/// A key figure of a scenario: a name, a value and a unit (empty for texts and counts).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// What was measured, for example `ready`.
    pub name: String,
    /// The value.
    pub value: FigureValue,
    /// The unit, for example `ms`; empty when there is none.
    #[serde(default)]
    pub unit: String,
}

impl Figure {
    /// A numeric figure. A value that is not finite (which JSON cannot carry) becomes a text.
    pub fn number(name: &str, value: f64, unit: &str) -> Self {
        let value = if value.is_finite() {
            FigureValue::Number(value)
        } else {
            FigureValue::Text(value.to_string())
        };
        Self {
            name: name.to_owned(),
            value,
            unit: unit.to_owned(),
        }
    }

    /// A text figure.
    pub fn text(name: &str, value: &str) -> Self {
        Self {
            name: name.to_owned(),
            value: FigureValue::Text(value.to_owned()),
            unit: String::new(),
        }
    }
}

impl fmt::Display for Figure {
    /// `name value unit`, numbers with at most three significant decimals.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            FigureValue::Number(n) => {
                let shown = format_number(*n);
                if self.unit.is_empty() {
                    write!(f, "{} {shown}", self.name)
                } else {
                    write!(f, "{} {shown} {}", self.name, self.unit)
                }
            }
            FigureValue::Text(t) => write!(f, "{} {t}", self.name),
        }
    }
}

/// Formats a number for people: integers as such, others with up to three decimals.
pub fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{n:.0}")
    } else if n.abs() >= 100.0 {
        format!("{n:.1}")
    } else {
        let s = format!("{n:.3}");
        let s = s.trim_end_matches('0');
        s.trim_end_matches('.').to_owned()
    }
}

/// The outcome of one scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScenarioResult {
    /// The scenario's name.
    pub scenario: String,
    /// Whether it passed.
    pub pass: bool,
    /// How long it ran, in seconds.
    pub seconds: f64,
    /// What it measured (also when it failed, as far as it got).
    #[serde(default)]
    pub figures: Vec<Figure>,
    /// Why it failed; empty when it passed.
    #[serde(default)]
    pub message: String,
    /// Lines of a report the harness prints after its table (a benchmark's own table); usually
    /// none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub report: Vec<String>,
}

/// One line of the lab program's report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// The lab program started and is about to run these scenarios.
    Start {
        /// The scenarios to run, in order.
        scenarios: Vec<String>,
        /// Whether a failure stops the run.
        keep_going: bool,
        /// dom0's uptime when its init had Xen's devices and xenstored ready, if it recorded it.
        ready_s: Option<f64>,
    },
    /// A scenario starts.
    Begin {
        /// Its name.
        scenario: String,
    },
    /// A scenario finished.
    Result(ScenarioResult),
    /// The run is over; the lab program exits next.
    End {
        /// Scenarios that passed.
        passed: u32,
        /// Scenarios that failed.
        failed: u32,
        /// Scenarios skipped because an earlier one failed.
        not_run: Vec<String>,
    },
}

/// The marker that starts a record line of the run with this nonce.
pub fn marker(nonce: &str) -> String {
    format!("@@LAB:{nonce}@@")
}

/// A record as one line of JSON.
pub fn to_json(record: &Record) -> String {
    // Serialising these types cannot fail: every map key is a string and every float is finite.
    serde_json::to_string(record).unwrap_or_else(|e| {
        format!(
            r#"{{"kind":"invalid","error":"{}"}}"#,
            e.to_string().replace('"', "'")
        )
    })
}

/// A record as one console line (without the newline).
pub fn encode(nonce: &str, record: &Record) -> String {
    format!("{} {}", marker(nonce), to_json(record))
}

/// A line that carries the marker but no readable record.
#[derive(Debug)]
pub struct DecodeError {
    /// What the JSON parser said.
    pub reason: String,
    /// The text after the marker.
    pub text: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unreadable record ({}): {}", self.reason, self.text)
    }
}

impl std::error::Error for DecodeError {}

/// Finds a record of the run with this nonce in a console line.
///
/// Returns `None` for lines without the marker, and an error for a line whose marker is followed
/// by something that is not a record. Text before the marker and after the JSON object is
/// ignored, since Xen's console can put other output on the same line.
pub fn decode(nonce: &str, line: &str) -> Option<Result<Record, DecodeError>> {
    let marker = marker(nonce);
    let start = line.find(&marker)? + marker.len();
    let text = line[start..].trim();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Record>();
    Some(match stream.next() {
        Some(Ok(record)) => Ok(record),
        Some(Err(e)) => Err(DecodeError {
            reason: e.to_string(),
            text: text.to_owned(),
        }),
        None => Err(DecodeError {
            reason: "nothing after the marker".into(),
            text: String::new(),
        }),
    })
}

/// Whether a scenario name is acceptable: 1 to [`MAX_NAME_LEN`] characters out of `a-z`, `0-9`
/// and `-`, starting with a letter.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Whether a nonce is acceptable: 4 to 32 ASCII letters and digits.
pub fn is_valid_nonce(nonce: &str) -> bool {
    (4..=32).contains(&nonce.len()) && nonce.chars().all(|c| c.is_ascii_alphanumeric())
}

/// The value of `key=value` on a kernel command line (the last one wins, as in Linux).
pub fn cmdline_value<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline
        .split_ascii_whitespace()
        .filter_map(|word| word.strip_prefix(key)?.strip_prefix('='))
        .next_back()
}

/// What the harness asks the lab program to do, carried on dom0's kernel command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunRequest {
    /// The nonce to put in every record's marker.
    pub nonce: String,
    /// The scenarios to run, in order.
    pub scenarios: Vec<String>,
    /// Run every scenario even after one fails.
    pub keep_going: bool,
}

impl RunRequest {
    /// The kernel command line words for this request.
    pub fn to_cmdline(&self) -> Vec<String> {
        vec![
            format!("{NONCE_KEY}={}", self.nonce),
            format!("{SCENARIOS_KEY}={}", self.scenarios.join(",")),
            format!("{KEEP_GOING_KEY}={}", u8::from(self.keep_going)),
        ]
    }

    /// Reads a request from a kernel command line; `Ok(None)` when it has none.
    pub fn from_cmdline(cmdline: &str) -> Result<Option<Self>, String> {
        let Some(nonce) = cmdline_value(cmdline, NONCE_KEY) else {
            return Ok(None);
        };
        if !is_valid_nonce(nonce) {
            return Err(format!("bad {NONCE_KEY} '{nonce}'"));
        }
        let list = cmdline_value(cmdline, SCENARIOS_KEY).unwrap_or("");
        let scenarios: Vec<String> = list
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if let Some(bad) = scenarios.iter().find(|s| !is_valid_name(s)) {
            return Err(format!("bad scenario name '{bad}' in {SCENARIOS_KEY}"));
        }
        let keep_going = match cmdline_value(cmdline, KEEP_GOING_KEY) {
            None | Some("0") => false,
            Some("1") => true,
            Some(other) => return Err(format!("bad {KEEP_GOING_KEY} '{other}'")),
        };
        Ok(Some(Self {
            nonce: nonce.to_owned(),
            scenarios,
            keep_going,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_result() -> Record {
        Record::Result(ScenarioResult {
            scenario: "gntalloc-evtchn".into(),
            pass: true,
            seconds: 0.25,
            figures: vec![
                Figure::number("grants", 4.0, ""),
                Figure::number("notify", 41.5, "us"),
                Figure::text("xen", "4.17.7"),
            ],
            message: String::new(),
            report: Vec::new(),
        })
    }

    #[test]
    fn records_round_trip() {
        let records = [
            Record::Start {
                scenarios: vec!["boot".into()],
                keep_going: false,
                ready_s: Some(9.5),
            },
            Record::Begin {
                scenario: "boot".into(),
            },
            sample_result(),
            Record::End {
                passed: 1,
                failed: 0,
                not_run: vec!["x".into()],
            },
        ];
        for record in records {
            let line = encode("abcd1234", &record);
            assert!(line.starts_with("@@LAB:abcd1234@@ {"), "{line}");
            assert_eq!(decode("abcd1234", &line).unwrap().unwrap(), record);
        }
    }

    #[test]
    fn result_json_shape() {
        let line = encode("n0nce", &sample_result());
        let json = line.split_once(' ').unwrap().1;
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(value["kind"], "result");
        assert_eq!(value["pass"], true);
        assert_eq!(value["figures"][1]["value"], 41.5);
        assert_eq!(value["figures"][1]["unit"], "us");
        assert_eq!(value["figures"][2]["value"], "4.17.7");
    }

    #[test]
    fn decode_tolerates_console_noise() {
        let line = encode("abcd", &sample_result());
        let noisy = format!("\r(XEN) something {line}(XEN) more\r");
        assert_eq!(decode("abcd", &noisy).unwrap().unwrap(), sample_result());
    }

    #[test]
    fn decode_ignores_other_lines_and_other_runs() {
        assert!(decode("abcd", "[    1.234] xen: something").is_none());
        let other = encode("zzzz", &sample_result());
        assert!(decode("abcd", &other).is_none());
    }

    #[test]
    fn decode_reports_damaged_records() {
        let line = encode("abcd", &sample_result());
        let cut = &line[..line.len() - 10];
        let err = decode("abcd", cut).unwrap().unwrap_err();
        assert!(err.to_string().contains("unreadable record"), "{err}");
        assert!(decode("abcd", "@@LAB:abcd@@").unwrap().is_err());
        assert!(decode("abcd", r#"@@LAB:abcd@@ {"kind":"nope"}"#)
            .unwrap()
            .is_err());
    }

    #[test]
    fn figures_display_and_non_finite_values() {
        assert_eq!(
            Figure::number("ready", 9.25, "s").to_string(),
            "ready 9.25 s"
        );
        assert_eq!(Figure::number("grants", 4.0, "").to_string(), "grants 4");
        assert_eq!(
            Figure::number("rtt", 1234.56, "us").to_string(),
            "rtt 1234.6 us"
        );
        assert_eq!(Figure::text("xen", "4.17").to_string(), "xen 4.17");
        assert_eq!(
            Figure::number("x", f64::NAN, "").value,
            FigureValue::Text("NaN".into())
        );
        assert_eq!(format_number(0.1), "0.1");
        assert_eq!(format_number(2.0005), "2.001");
    }

    #[test]
    fn names_and_nonces() {
        assert!(is_valid_name("boot"));
        assert!(is_valid_name("gntalloc-evtchn"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("Boot"));
        assert!(!is_valid_name("-x"));
        assert!(!is_valid_name("a,b"));
        assert!(!is_valid_name(&"a".repeat(MAX_NAME_LEN + 1)));
        assert!(is_valid_nonce("abc123XY"));
        assert!(!is_valid_nonce("ab"));
        assert!(!is_valid_nonce("abc-123"));
    }

    #[test]
    fn run_request_round_trips_through_a_cmdline() {
        let request = RunRequest {
            nonce: "Zx81abcd".into(),
            scenarios: vec!["boot".into(), "gntalloc-evtchn".into()],
            keep_going: true,
        };
        let cmdline = format!(
            "console=hvc0 loglevel=4 {} quiet",
            request.to_cmdline().join(" ")
        );
        assert_eq!(RunRequest::from_cmdline(&cmdline), Ok(Some(request)));
    }

    #[test]
    fn run_request_absent_or_bad() {
        assert_eq!(RunRequest::from_cmdline("console=hvc0"), Ok(None));
        assert!(RunRequest::from_cmdline("lab.nonce=x").is_err());
        assert!(RunRequest::from_cmdline("lab.nonce=abcd lab.scenarios=Bad").is_err());
        assert!(RunRequest::from_cmdline("lab.nonce=abcd lab.keep_going=yes").is_err());
        let empty = RunRequest::from_cmdline("lab.nonce=abcd").unwrap().unwrap();
        assert!(empty.scenarios.is_empty() && !empty.keep_going);
    }

    #[test]
    fn scenario_list_round_trips() {
        let infos = vec![
            ScenarioInfo {
                name: "boot".into(),
                description: "d".into(),
                default: true,
                timeout_s: 60,
            },
            ScenarioInfo {
                name: "x-y".into(),
                description: "e".into(),
                default: false,
                timeout_s: 2,
            },
        ];
        let text: String = infos.iter().map(|i| scenario_info_line(i) + "\n").collect();
        assert_eq!(parse_scenario_list(&text), Ok(infos));
        assert!(parse_scenario_list("{}").is_err());
    }

    #[test]
    fn cmdline_values() {
        assert_eq!(cmdline_value("a=1 b=2 a=3", "a"), Some("3"));
        assert_eq!(cmdline_value("ab=1", "a"), None);
        assert_eq!(cmdline_value("a", "a"), None);
        assert_eq!(cmdline_value("a=", "a"), Some(""));
    }
}
