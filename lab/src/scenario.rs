//! What a scenario is, and what it gets to report with.
//!
//! A scenario is a plain function from a [`Context`] to an [`Outcome`], registered with a name and
//! a description in [`crate::scenarios::REGISTRY`]. It records its key figures on the context as
//! it goes (they are reported even if it fails later) and returns `Err` with a sentence saying
//! what went wrong.

use std::fmt;
use std::io::Write;
use std::time::{Duration, Instant};

use lab_protocol::Figure;

/// A scenario the lab program can run.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// The name used to select it: lowercase letters, digits and `-`.
    pub name: &'static str,
    /// One sentence saying what it checks.
    pub description: &'static str,
    /// Whether it runs when no scenario is named (self-tests of the harness are not).
    pub default: bool,
    /// How long it may take before it is reported as failed.
    pub timeout: Duration,
    /// The scenario itself.
    pub run: fn(&mut Context) -> Outcome,
}

/// What a scenario returns: `Ok` when it passed.
pub type Outcome = Result<(), Failure>;

/// Why a scenario failed: one readable sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(pub String);

impl Failure {
    /// A failure with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Turns any error into a [`Failure`] that says what was being done.
pub trait ResultExt<T> {
    /// `Err(e)` becomes a failure reading "`what`: `e`".
    fn context(self, what: impl fmt::Display) -> Result<T, Failure>;
}

impl<T, E: fmt::Display> ResultExt<T> for Result<T, E> {
    fn context(self, what: impl fmt::Display) -> Result<T, Failure> {
        self.map_err(|e| Failure(format!("{what}: {e}")))
    }
}

/// Fails with `message` unless `condition` holds.
pub fn ensure(condition: bool, message: impl FnOnce() -> String) -> Outcome {
    if condition {
        Ok(())
    } else {
        Err(Failure(message()))
    }
}

/// What a running scenario reports through.
#[derive(Debug)]
pub struct Context {
    name: &'static str,
    started: Instant,
    figures: Vec<Figure>,
    report: Vec<String>,
}

impl Context {
    /// A context for the scenario called `name`.
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            started: Instant::now(),
            figures: Vec::new(),
            report: Vec::new(),
        }
    }

    /// The scenario's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Time since the scenario started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Records a numeric key figure.
    pub fn figure(&mut self, name: &str, value: f64, unit: &str) {
        self.figures.push(Figure::number(name, value, unit));
    }

    /// Records a duration as a key figure in the given unit (`s`, `ms` or `us`).
    pub fn duration(&mut self, name: &str, value: Duration, unit: &str) {
        let secs = value.as_secs_f64();
        let scaled = match unit {
            "ms" => secs * 1e3,
            "us" => secs * 1e6,
            _ => secs,
        };
        self.figure(name, scaled, unit);
    }

    /// Records a text key figure, such as a version.
    pub fn text(&mut self, name: &str, value: &str) {
        self.figures.push(Figure::text(name, value));
    }

    /// Prints a progress line on the console (it ends up in the harness's serial log).
    pub fn log(&self, message: impl fmt::Display) {
        let line = format!("[{}] {message}\n", self.name);
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
    }

    /// Adds a line to the scenario's report (a benchmark's table), which the harness prints
    /// after its table of results; the line is also logged.
    pub fn report(&mut self, line: impl Into<String>) {
        let line = line.into();
        self.log(&line);
        self.report.push(line);
    }

    /// The figures recorded so far.
    pub fn into_figures(self) -> Vec<Figure> {
        self.figures
    }

    /// The figures and the report lines recorded so far.
    pub fn into_results(self) -> (Vec<Figure>, Vec<String>) {
        (self.figures, self.report)
    }
}
