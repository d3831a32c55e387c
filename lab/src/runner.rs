//! Runs a list of scenarios and reports each as a record line.
//!
//! Every scenario runs on its own thread, so a panic becomes a failure and a scenario that does
//! not finish within its timeout is reported as failed instead of stalling the run.

use std::io::Write;
use std::sync::mpsc;
use std::time::Instant;

use lab_protocol::{encode, Record, RunRequest, ScenarioInfo, ScenarioResult};

use crate::scenario::{Context, Failure, Scenario};

/// How a run went.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Summary {
    /// Scenarios that passed.
    pub passed: u32,
    /// Scenarios that failed.
    pub failed: u32,
    /// Scenarios not run because an earlier one failed.
    pub not_run: Vec<String>,
    /// The results, in order.
    pub results: Vec<ScenarioResult>,
}

/// The registry as the protocol lists it.
pub fn list(registry: &[Scenario]) -> Vec<ScenarioInfo> {
    registry
        .iter()
        .map(|s| ScenarioInfo {
            name: s.name.to_owned(),
            description: s.description.to_owned(),
            default: s.default,
            timeout_s: s.timeout.as_secs(),
        })
        .collect()
}

/// The names to run when none are given: the default scenarios, in registry order.
pub fn default_names(registry: &[Scenario]) -> Vec<String> {
    registry
        .iter()
        .filter(|s| s.default)
        .map(|s| s.name.to_owned())
        .collect()
}

fn emit(out: &mut dyn Write, nonce: &str, record: &Record) {
    // One write per record, so that nothing else on the console lands inside it.
    let line = format!("{}\n", encode(nonce, record));
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
}

/// Runs one scenario on its own thread and waits for it, at most its timeout.
fn run_one(scenario: &Scenario) -> ScenarioResult {
    let started = Instant::now();
    let (tx, rx) = mpsc::channel();
    let run = scenario.run;
    let name = scenario.name;
    let thread = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let mut cx = Context::new(name);
            let outcome = run(&mut cx);
            let _ = tx.send((outcome, cx.into_results()));
        });
    let (pass, (figures, report), message) = match thread {
        Err(e) => (
            false,
            Default::default(),
            format!("could not start its thread: {e}"),
        ),
        Ok(handle) => match rx.recv_timeout(scenario.timeout) {
            Ok((outcome, results)) => {
                let _ = handle.join();
                match outcome {
                    Ok(()) => (true, results, String::new()),
                    Err(Failure(message)) => (false, results, message),
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => (
                false,
                Default::default(),
                format!(
                    "did not finish within its timeout of {} s",
                    scenario.timeout.as_secs()
                ),
            ),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let message = match handle.join() {
                    Err(payload) => {
                        let text = payload
                            .downcast_ref::<&str>()
                            .map(|s| (*s).to_owned())
                            .or_else(|| payload.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "(no message)".to_owned());
                        format!("panicked: {text}")
                    }
                    Ok(()) => "ended without a result".to_owned(),
                };
                (false, Default::default(), message)
            }
        },
    };
    ScenarioResult {
        scenario: name.to_owned(),
        pass,
        seconds: started.elapsed().as_secs_f64(),
        figures,
        message,
        report,
    }
}

/// Runs the scenarios of `request` from `registry`, writing records to `out`.
///
/// Unknown names are reported as failed scenarios. `ready_s` is dom0's uptime when its init had
/// Xen ready, if known.
pub fn run(
    registry: &[Scenario],
    request: &RunRequest,
    ready_s: Option<f64>,
    out: &mut dyn Write,
) -> Summary {
    let nonce = request.nonce.as_str();
    emit(
        out,
        nonce,
        &Record::Start {
            scenarios: request.scenarios.clone(),
            keep_going: request.keep_going,
            ready_s,
        },
    );
    let mut summary = Summary::default();
    let mut stopped = false;
    for name in &request.scenarios {
        if stopped {
            summary.not_run.push(name.clone());
            continue;
        }
        emit(
            out,
            nonce,
            &Record::Begin {
                scenario: name.clone(),
            },
        );
        let result = match registry.iter().find(|s| s.name == name) {
            Some(scenario) => run_one(scenario),
            None => ScenarioResult {
                scenario: name.clone(),
                pass: false,
                seconds: 0.0,
                figures: Vec::new(),
                message: format!("unknown scenario '{name}'"),
                report: Vec::new(),
            },
        };
        if result.pass {
            summary.passed += 1;
        } else {
            summary.failed += 1;
            stopped = !request.keep_going;
        }
        emit(out, nonce, &Record::Result(result.clone()));
        summary.results.push(result);
    }
    emit(
        out,
        nonce,
        &Record::End {
            passed: summary.passed,
            failed: summary.failed,
            not_run: summary.not_run.clone(),
        },
    );
    summary
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use lab_protocol::{decode, FigureValue};

    use super::*;
    use crate::scenario::Outcome;

    fn pass(cx: &mut Context) -> Outcome {
        cx.figure("answer", 42.0, "");
        Ok(())
    }

    fn fail(cx: &mut Context) -> Outcome {
        cx.figure("before", 1.0, "ms");
        Err(Failure::new("it broke"))
    }

    fn panic(_: &mut Context) -> Outcome {
        panic!("boom")
    }

    fn hang(_: &mut Context) -> Outcome {
        std::thread::sleep(Duration::from_secs(5));
        Ok(())
    }

    const fn scenario(name: &'static str, run: fn(&mut Context) -> Outcome) -> Scenario {
        Scenario {
            name,
            description: "test",
            default: true,
            timeout: Duration::from_secs(5),
            run,
        }
    }

    const REGISTRY: &[Scenario] = &[
        scenario("pass", pass),
        scenario("fail", fail),
        scenario("panic", panic),
        Scenario {
            timeout: Duration::from_millis(100),
            ..scenario("hang", hang)
        },
    ];

    fn run_names(names: &[&str], keep_going: bool) -> (Summary, Vec<Record>) {
        let request = RunRequest {
            nonce: "test1234".into(),
            scenarios: names.iter().map(|s| (*s).to_owned()).collect(),
            keep_going,
        };
        let mut out = Vec::new();
        let summary = run(REGISTRY, &request, Some(1.5), &mut out);
        let text = String::from_utf8(out).unwrap();
        let records = text
            .lines()
            .map(|l| decode("test1234", l).unwrap().unwrap())
            .collect();
        (summary, records)
    }

    fn counts(summary: &Summary) -> (u32, u32, Vec<String>) {
        (summary.passed, summary.failed, summary.not_run.clone())
    }

    fn results(records: &[Record]) -> Vec<&ScenarioResult> {
        records
            .iter()
            .filter_map(|r| match r {
                Record::Result(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn passing_run_reports_start_begin_result_end() {
        let (summary, records) = run_names(&["pass"], false);
        assert_eq!(counts(&summary), (1, 0, vec![]));
        assert!(matches!(&records[0], Record::Start { ready_s: Some(r), .. } if *r == 1.5));
        assert_eq!(
            records[1],
            Record::Begin {
                scenario: "pass".into()
            }
        );
        let result = results(&records)[0];
        assert!(result.pass);
        assert_eq!(result.figures[0].value, FigureValue::Number(42.0));
        assert_eq!(records.len(), 4);
    }

    #[test]
    fn failure_stops_the_run_unless_keep_going() {
        let (summary, records) = run_names(&["fail", "pass"], false);
        assert_eq!(counts(&summary), (0, 1, vec!["pass".into()]));
        let result = results(&records)[0];
        assert_eq!(result.message, "it broke");
        assert_eq!(result.figures.len(), 1, "figures survive a failure");
        let (summary, _) = run_names(&["fail", "pass"], true);
        assert_eq!(counts(&summary), (1, 1, vec![]));
    }

    #[test]
    fn panics_timeouts_and_unknown_names_are_failures() {
        let (summary, records) = run_names(&["panic", "hang", "nope"], true);
        assert_eq!(summary.failed, 3);
        let messages: Vec<_> = results(&records)
            .iter()
            .map(|r| r.message.clone())
            .collect();
        assert_eq!(messages[0], "panicked: boom");
        assert!(messages[1].contains("timeout"), "{}", messages[1]);
        assert_eq!(messages[2], "unknown scenario 'nope'");
    }

    #[test]
    fn default_names_and_list() {
        assert_eq!(default_names(REGISTRY), ["pass", "fail", "panic", "hang"]);
        assert_eq!(list(REGISTRY)[3].timeout_s, 0);
    }
}
