//! Reading the serial console of a lab run, and reporting on it.
//!
//! [`Collector`] takes the console one line at a time, picks out the lab program's records and
//! the signs of a crash, and says when the run is over. [`Collector::problems`] then lists
//! everything that went wrong, each naming the scenario concerned, and [`render_table`] shows the
//! results.

use std::collections::VecDeque;
use std::time::Duration;

use lab_protocol::{decode, Record, ScenarioResult};

/// Console lines that mean Xen or dom0's kernel died; the run stops shortly after one.
const FATAL_SIGNS: &[(&str, &str)] = &[
    ("Panic on CPU", "Xen panicked"),
    ("Hardware Dom0 crashed", "Xen reports that dom0 crashed"),
    ("Kernel panic - not syncing", "dom0's kernel panicked"),
];

/// What the line printed by `/init` after the lab program starts with.
const LAB_EXIT_PREFIX: &str = "lab-init: lab exited rc=";
/// What the line printed by `/init` when dom0 is ready starts with.
const READY_PREFIX: &str = "lab-init: dom0 ready at ";

/// How long QEMU gets to power off after the lab program's last record.
pub const POWEROFF_GRACE: Duration = Duration::from_secs(60);
/// How much more console output to collect after a crash is seen.
pub const CRASH_GRACE: Duration = Duration::from_secs(3);

/// How many console lines to keep for error messages.
const TAIL_LINES: usize = 25;

/// What the watcher should do after a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watch {
    /// Keep going.
    Continue,
    /// The run is over: let QEMU run at most this much longer, then stop it.
    StopAfter(Duration),
}

/// How QEMU ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// It exited by itself, with this description of its status.
    Exited(String),
    /// The run's time limit passed and it was stopped.
    TimedOut,
    /// The harness stopped it after the run was over (or after a crash).
    Stopped,
}

/// The state of a run, built from its console.
#[derive(Debug)]
pub struct Collector {
    nonce: String,
    /// When the lab program started (since QEMU started) and dom0's uptime when it was ready.
    pub started: Option<(Duration, Option<f64>)>,
    /// When `/init` said dom0 was ready (since QEMU started).
    pub ready_at: Option<Duration>,
    /// The scenario that began and has no result yet.
    pub current: Option<String>,
    /// Results, in the order they came.
    pub results: Vec<ScenarioResult>,
    /// When the end record came, and the scenarios it says were not run.
    pub end: Option<(Duration, Vec<String>)>,
    /// Every record, as JSON, for `results.jsonl`.
    pub records: Vec<String>,
    /// Marker lines that could not be read.
    pub damaged: Vec<String>,
    /// The first sign of a crash: what it means, and the line.
    pub fatal: Option<String>,
    /// The lab program's exit status, as `/init` printed it.
    pub lab_exit: Option<i32>,
    /// Progress messages for the person watching, drained by the caller.
    pub notes: Vec<String>,
    tail: VecDeque<String>,
}

impl Collector {
    /// A collector for the run with this nonce.
    pub fn new(nonce: &str) -> Self {
        Self {
            nonce: nonce.to_owned(),
            started: None,
            ready_at: None,
            current: None,
            results: Vec::new(),
            end: None,
            records: Vec::new(),
            damaged: Vec::new(),
            fatal: None,
            lab_exit: None,
            notes: Vec::new(),
            tail: VecDeque::new(),
        }
    }

    /// Takes one console line, seen `at` after QEMU started.
    pub fn line(&mut self, line: &str, at: Duration) -> Watch {
        let line = line.trim_end_matches(['\r', '\n']);
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line.to_owned());

        match decode(&self.nonce, line) {
            Some(Ok(record)) => return self.record(record, at),
            Some(Err(e)) => {
                self.notes.push(format!("warning: {e}"));
                self.damaged.push(line.to_owned());
                return Watch::Continue;
            }
            None => {}
        }
        if let Some(rest) = line.split(LAB_EXIT_PREFIX).nth(1) {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            self.lab_exit = digits.parse().ok();
        }
        if let Some(rest) = line.split(READY_PREFIX).nth(1) {
            if self.ready_at.is_none() {
                self.ready_at = Some(at);
                let uptime = rest.trim_end_matches(" s");
                self.notes.push(format!(
                    "dom0 ready {:.1} s after QEMU started (dom0 uptime {uptime} s)",
                    at.as_secs_f64()
                ));
            }
        }
        if self.fatal.is_none() {
            if let Some((_, meaning)) = FATAL_SIGNS.iter().find(|(sign, _)| line.contains(sign)) {
                self.fatal = Some(format!("{meaning}: {}", line.trim()));
                self.notes.push(format!("{meaning}; stopping"));
                return Watch::StopAfter(CRASH_GRACE);
            }
        }
        Watch::Continue
    }

    fn record(&mut self, record: Record, at: Duration) -> Watch {
        self.records.push(lab_protocol::to_json(&record));
        match record {
            Record::Start {
                ready_s, scenarios, ..
            } => {
                self.started = Some((at, ready_s));
                self.notes
                    .push(format!("lab started: {}", scenarios.join(", ")));
            }
            Record::Begin { scenario } => {
                self.notes.push(format!("running {scenario}"));
                self.current = Some(scenario);
            }
            Record::Result(result) => {
                let verdict = if result.pass { "PASS" } else { "FAIL" };
                let mut note = format!("{} {verdict} in {:.2} s", result.scenario, result.seconds);
                if !result.pass {
                    note.push_str(&format!(": {}", result.message));
                }
                self.notes.push(note);
                if self.current.as_deref() == Some(result.scenario.as_str()) {
                    self.current = None;
                }
                self.results.push(result);
            }
            Record::End { not_run, .. } => {
                self.end = Some((at, not_run));
                return Watch::StopAfter(POWEROFF_GRACE);
            }
        }
        Watch::Continue
    }

    /// The last console lines, indented, for error messages.
    pub fn tail(&self, n: usize) -> String {
        let skip = self.tail.len().saturating_sub(n);
        self.tail
            .iter()
            .skip(skip)
            .map(|l| format!("    | {l}\n"))
            .collect()
    }

    /// Everything that went wrong in a run of `expected` that ended as `ended`; empty when the
    /// run passed. The scenarios in `expect_fail` must fail, with a reason; one that passes, fails
    /// without saying why, or does not run is a problem.
    pub fn problems(
        &self,
        expected: &[String],
        expect_fail: &[String],
        ended: &Ended,
        timeout_secs: u64,
    ) -> Vec<String> {
        let mut problems: Vec<String> = self
            .results
            .iter()
            .filter_map(|r| {
                let must_fail = expect_fail.contains(&r.scenario);
                match (must_fail, r.pass) {
                    (false, true) => None,
                    (false, false) => {
                        Some(format!("scenario {} failed: {}", r.scenario, r.message))
                    }
                    (true, true) => Some(format!(
                        "scenario {} passed, but it must fail (--expect-fail)",
                        r.scenario
                    )),
                    (true, false) if r.message.trim().is_empty() => Some(format!(
                        "scenario {} failed as expected, but without a reason",
                        r.scenario
                    )),
                    (true, false) => None,
                }
            })
            .collect();
        if let Some((_, not_run)) = &self.end {
            for name in expect_fail.iter().filter(|n| not_run.contains(n)) {
                problems.push(format!(
                    "scenario {name} must fail (--expect-fail), but it did not run"
                ));
            }
        }
        if let Some(fatal) = &self.fatal {
            problems.push(format!("{fatal} ({})", self.whereabouts()));
        }
        match &self.end {
            Some((_, not_run)) => {
                for name in expected {
                    let has_result = self.results.iter().any(|r| &r.scenario == name);
                    if !has_result && !not_run.contains(name) {
                        problems.push(format!(
                            "scenario {name}: no result came back (damaged console line?)"
                        ));
                    }
                }
            }
            None if self.fatal.is_none() => {
                let whereabouts = self.whereabouts();
                let qemu = match ended {
                    Ended::Exited(status) => format!("QEMU exited ({status})"),
                    Ended::Stopped => "QEMU was stopped".to_owned(),
                    Ended::TimedOut => String::new(),
                };
                problems.push(match (ended, self.lab_exit) {
                    (Ended::TimedOut, _) => {
                        format!("the run timed out after {timeout_secs} s {whereabouts}")
                    }
                    (_, Some(rc)) => {
                        format!("the lab program exited with status {rc} {whereabouts} ({qemu})")
                    }
                    (_, None) => format!("{qemu} {whereabouts}"),
                });
            }
            None => {}
        }
        problems
    }

    /// Where the run had got to, for messages.
    fn whereabouts(&self) -> String {
        if let Some(current) = &self.current {
            format!("while scenario {current} was running")
        } else if self.started.is_some() {
            "between scenarios".to_owned()
        } else if self.ready_at.is_some() {
            "after dom0 was ready, before the lab program reported".to_owned()
        } else {
            "before dom0 was ready".to_owned()
        }
    }
}

/// The results as a table: one row per scenario asked for, in order. A scenario in
/// `expect_fail` shows `XFAIL` when it failed as it must (the reason in parentheses) and `XPASS`
/// when it passed.
pub fn render_table(expected: &[String], expect_fail: &[String], collector: &Collector) -> String {
    let mut rows = vec![[
        "scenario".to_owned(),
        "result".into(),
        "time".into(),
        "key figures".into(),
    ]];
    let not_run = collector
        .end
        .as_ref()
        .map(|(_, n)| n.clone())
        .unwrap_or_default();
    for name in expected {
        let must_fail = expect_fail.contains(name);
        let row = match collector.results.iter().find(|r| &r.scenario == name) {
            Some(r) => {
                let mut figures: Vec<String> = r.figures.iter().map(ToString::to_string).collect();
                if !r.pass {
                    figures.insert(0, format!("({})", r.message));
                }
                let verdict = match (must_fail, r.pass) {
                    (false, true) => "PASS",
                    (false, false) => "FAIL",
                    (true, true) => "XPASS",
                    (true, false) => "XFAIL",
                };
                [
                    name.clone(),
                    verdict.to_owned(),
                    format!("{:.2} s", r.seconds),
                    figures.join(", "),
                ]
            }
            None if not_run.contains(name) => [
                name.clone(),
                "not run".into(),
                "-".into(),
                "an earlier scenario failed".into(),
            ],
            None if collector.current.as_ref() == Some(name) => [
                name.clone(),
                "FAIL".into(),
                "-".into(),
                "did not finish".into(),
            ],
            None if collector.started.is_none() => [
                name.clone(),
                "FAIL".into(),
                "-".into(),
                "dom0 did not get to run it".into(),
            ],
            None => [name.clone(), "FAIL".into(), "-".into(), "no result".into()],
        };
        rows.push(row);
    }
    let width = |col: usize| {
        rows.iter()
            .map(|r| r[col].chars().count())
            .max()
            .unwrap_or(0)
    };
    let (w0, w1, w2) = (width(0), width(1), width(2));
    let mut table: String = rows
        .iter()
        .map(|r| {
            format!("{:<w0$}  {:<w1$}  {:>w2$}  {}\n", r[0], r[1], r[2], r[3]).replace("  \n", "\n")
        })
        .collect();
    if !expect_fail.is_empty() {
        table.push_str(
            "(XFAIL: failed as it must, --expect-fail; XPASS: passed although it must fail)\n",
        );
    }
    table
}

/// The report lines of the scenarios that sent some (a benchmark's own table), each under a
/// line naming its scenario, in the order the results came; empty when none did.
pub fn render_reports(collector: &Collector) -> String {
    let mut out = String::new();
    for r in collector.results.iter().filter(|r| !r.report.is_empty()) {
        out.push_str(&format!("\n{}:\n", r.scenario));
        for line in &r.report {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use lab_protocol::{encode, Figure};

    use super::*;

    const NONCE: &str = "t3stn0nce";

    fn result(name: &str, pass: bool, message: &str) -> Record {
        Record::Result(ScenarioResult {
            scenario: name.into(),
            pass,
            seconds: 0.5,
            figures: vec![
                Figure::number("ready", 9.5, "s"),
                Figure::text("xen", "4.17"),
            ],
            message: message.into(),
            report: Vec::new(),
        })
    }

    fn feed(c: &mut Collector, records: &[Record]) -> Vec<Watch> {
        records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                c.line(
                    &format!("{}\r", encode(NONCE, r)),
                    Duration::from_secs(i as u64),
                )
            })
            .collect()
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn start(list: &[&str]) -> Record {
        Record::Start {
            scenarios: names(list),
            keep_going: false,
            ready_s: Some(9.0),
        }
    }

    fn begin(name: &str) -> Record {
        Record::Begin {
            scenario: name.into(),
        }
    }

    #[test]
    fn reports_follow_their_scenario() {
        let mut c = Collector::new(NONCE);
        let mut with_report = result("bench", true, "");
        if let Record::Result(r) = &mut with_report {
            r.report = vec!["row 1".into(), "row 2".into()];
        }
        feed(
            &mut c,
            &[
                start(&["boot", "bench"]),
                begin("boot"),
                result("boot", true, ""),
            ],
        );
        assert_eq!(render_reports(&c), "");
        feed(&mut c, &[begin("bench"), with_report]);
        assert_eq!(render_reports(&c), "\nbench:\nrow 1\nrow 2\n");
    }

    #[test]
    fn passing_run() {
        let mut c = Collector::new(NONCE);
        c.line("(XEN) Xen version 4.17", Duration::ZERO);
        c.line("lab-init: dom0 ready at 9.10 s", Duration::from_secs(30));
        let watches = feed(
            &mut c,
            &[
                start(&["boot"]),
                begin("boot"),
                result("boot", true, ""),
                Record::End {
                    passed: 1,
                    failed: 0,
                    not_run: vec![],
                },
            ],
        );
        assert_eq!(watches[3], Watch::StopAfter(POWEROFF_GRACE));
        assert_eq!(c.ready_at, Some(Duration::from_secs(30)));
        assert_eq!(c.started, Some((Duration::ZERO, Some(9.0))));
        assert_eq!(c.records.len(), 4);
        assert!(c
            .problems(&names(&["boot"]), &[], &Ended::Exited("exit 0".into()), 600)
            .is_empty());
        let table = render_table(&names(&["boot"]), &[], &c);
        assert_eq!(
            table,
            "scenario  result    time  key figures\n\
             boot      PASS    0.50 s  ready 9.5 s, xen 4.17\n"
        );
        assert!(c
            .notes
            .iter()
            .any(|n| n.contains("dom0 ready 30.0 s after QEMU started")));
    }

    #[test]
    fn failing_scenario_is_named_and_later_ones_not_run() {
        let mut c = Collector::new(NONCE);
        feed(
            &mut c,
            &[
                start(&["boot", "selftest-fail", "gntalloc-evtchn"]),
                begin("boot"),
                result("boot", true, ""),
                begin("selftest-fail"),
                result("selftest-fail", false, "deliberate failure"),
                Record::End {
                    passed: 1,
                    failed: 1,
                    not_run: names(&["gntalloc-evtchn"]),
                },
            ],
        );
        let expected = names(&["boot", "selftest-fail", "gntalloc-evtchn"]);
        let problems = c.problems(&expected, &[], &Ended::Exited("exit 0".into()), 600);
        assert_eq!(
            problems,
            ["scenario selftest-fail failed: deliberate failure"]
        );
        let table = render_table(&expected, &[], &c);
        assert!(
            table.contains("selftest-fail    FAIL     0.50 s  (deliberate failure), ready 9.5 s"),
            "{table}"
        );
        assert!(table.contains("gntalloc-evtchn  not run"), "{table}");
        assert!(c
            .notes
            .iter()
            .any(|n| n == "selftest-fail FAIL in 0.50 s: deliberate failure"));
    }

    #[test]
    fn expected_failure_passes_the_run_and_shows_its_reason() {
        let expected = names(&["boot", "blk-smoke-wrong-ring-ref"]);
        let must_fail = names(&["blk-smoke-wrong-ring-ref"]);
        let run = |outcome: Record| {
            let mut c = Collector::new(NONCE);
            feed(
                &mut c,
                &[
                    start(&["boot", "blk-smoke-wrong-ring-ref"]),
                    result("boot", true, ""),
                    outcome,
                    Record::End {
                        passed: 1,
                        failed: 1,
                        not_run: vec![],
                    },
                ],
            );
            let problems = c.problems(&expected, &must_fail, &Ended::Stopped, 600);
            (problems, render_table(&expected, &must_fail, &c))
        };
        let (problems, table) = run(result(
            "blk-smoke-wrong-ring-ref",
            false,
            "backend did not reach Connected",
        ));
        assert!(problems.is_empty(), "{problems:?}");
        assert!(
            table.contains(
                "blk-smoke-wrong-ring-ref  XFAIL   0.50 s  (backend did not reach Connected)"
            ),
            "{table}"
        );
        assert!(table.ends_with("must fail)\n"), "{table}");

        let (problems, table) = run(result("blk-smoke-wrong-ring-ref", true, ""));
        assert_eq!(
            problems,
            ["scenario blk-smoke-wrong-ring-ref passed, but it must fail (--expect-fail)"]
        );
        assert!(table.contains("XPASS"), "{table}");

        let (problems, _) = run(result("blk-smoke-wrong-ring-ref", false, " "));
        assert_eq!(
            problems,
            ["scenario blk-smoke-wrong-ring-ref failed as expected, but without a reason"]
        );
    }

    #[test]
    fn expected_failure_not_run_is_a_problem() {
        let mut c = Collector::new(NONCE);
        feed(
            &mut c,
            &[
                start(&["selftest-fail", "blk-smoke-wrong-ring-ref"]),
                result("selftest-fail", false, "deliberate failure"),
                Record::End {
                    passed: 0,
                    failed: 1,
                    not_run: names(&["blk-smoke-wrong-ring-ref"]),
                },
            ],
        );
        let problems = c.problems(
            &names(&["selftest-fail", "blk-smoke-wrong-ring-ref"]),
            &names(&["blk-smoke-wrong-ring-ref"]),
            &Ended::Stopped,
            600,
        );
        assert_eq!(
            problems,
            [
                "scenario selftest-fail failed: deliberate failure",
                "scenario blk-smoke-wrong-ring-ref must fail (--expect-fail), but it did not run"
            ]
        );
    }

    #[test]
    fn timeout_names_the_running_scenario() {
        let mut c = Collector::new(NONCE);
        feed(
            &mut c,
            &[
                start(&["boot", "gntalloc-evtchn"]),
                begin("boot"),
                result("boot", true, ""),
                begin("gntalloc-evtchn"),
            ],
        );
        let problems = c.problems(
            &names(&["boot", "gntalloc-evtchn"]),
            &[],
            &Ended::TimedOut,
            600,
        );
        assert_eq!(
            problems,
            ["the run timed out after 600 s while scenario gntalloc-evtchn was running"]
        );
        let table = render_table(&names(&["boot", "gntalloc-evtchn"]), &[], &c);
        assert!(table.contains("did not finish"), "{table}");
    }

    #[test]
    fn timeout_before_dom0_is_ready() {
        let mut c = Collector::new(NONCE);
        c.line("(XEN) still booting", Duration::from_secs(1));
        let problems = c.problems(&names(&["boot"]), &[], &Ended::TimedOut, 30);
        assert_eq!(
            problems,
            ["the run timed out after 30 s before dom0 was ready"]
        );
        assert_eq!(c.tail(5), "    | (XEN) still booting\n");
        assert!(render_table(&names(&["boot"]), &[], &c).contains("dom0 did not get to run it"));
    }

    #[test]
    fn crash_stops_the_run() {
        let mut c = Collector::new(NONCE);
        feed(&mut c, &[start(&["boot"]), begin("boot")]);
        let watch = c.line(
            "[   12.0] Kernel panic - not syncing: Attempted to kill init!",
            Duration::from_secs(9),
        );
        assert_eq!(watch, Watch::StopAfter(CRASH_GRACE));
        assert_eq!(
            c.line("Kernel panic - not syncing: again", Duration::from_secs(9)),
            Watch::Continue
        );
        let problems = c.problems(&names(&["boot"]), &[], &Ended::Stopped, 600);
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with("dom0's kernel panicked: [   12.0] Kernel panic"),
            "{problems:?}"
        );
        assert!(
            problems[0].ends_with("(while scenario boot was running)"),
            "{problems:?}"
        );
    }

    #[test]
    fn lab_program_dying_is_reported() {
        let mut c = Collector::new(NONCE);
        feed(&mut c, &[start(&["boot"]), begin("boot")]);
        c.line("lab-init: lab exited rc=139", Duration::from_secs(3));
        assert_eq!(c.lab_exit, Some(139));
        let problems = c.problems(
            &names(&["boot"]),
            &[],
            &Ended::Exited("exit status: 0".into()),
            600,
        );
        assert_eq!(
            problems,
            ["the lab program exited with status 139 while scenario boot was running (QEMU exited (exit status: 0))"]
        );
    }

    #[test]
    fn qemu_exiting_early() {
        let c = Collector::new(NONCE);
        let problems = c.problems(
            &names(&["boot"]),
            &[],
            &Ended::Exited("exit status: 1".into()),
            600,
        );
        assert_eq!(
            problems,
            ["QEMU exited (exit status: 1) before dom0 was ready"]
        );
    }

    #[test]
    fn damaged_result_line_means_no_result() {
        let mut c = Collector::new(NONCE);
        feed(&mut c, &[start(&["boot"]), begin("boot")]);
        let line = encode(NONCE, &result("boot", true, ""));
        c.line(&line[..line.len() - 20], Duration::from_secs(1));
        feed(
            &mut c,
            &[Record::End {
                passed: 1,
                failed: 0,
                not_run: vec![],
            }],
        );
        assert_eq!(c.damaged.len(), 1);
        let problems = c.problems(&names(&["boot"]), &[], &Ended::Exited("exit 0".into()), 600);
        assert_eq!(
            problems,
            ["scenario boot: no result came back (damaged console line?)"]
        );
    }

    #[test]
    fn other_runs_records_are_ignored() {
        let mut c = Collector::new(NONCE);
        c.line(&encode("otherrun", &start(&["boot"])), Duration::ZERO);
        assert!(c.started.is_none() && c.records.is_empty());
    }
}
