//! Scenarios that check the harness itself: each misbehaves on purpose. None runs by default.

use std::time::Duration;

use crate::scenario::{Context, Failure, Outcome, Scenario};

/// Always fails, with a figure recorded first.
pub const FAIL: Scenario = Scenario {
    name: "selftest-fail",
    description: "always fails on purpose, to show how the harness reports a failing scenario",
    default: false,
    timeout: Duration::from_secs(10),
    run: fail,
};

/// Always panics.
pub const PANIC: Scenario = Scenario {
    name: "selftest-panic",
    description: "always panics on purpose, to show that a panic is reported as a failure",
    default: false,
    timeout: Duration::from_secs(10),
    run: panic,
};

/// Never finishes within its timeout.
pub const TIMEOUT: Scenario = Scenario {
    name: "selftest-timeout",
    description: "sleeps past its 2 s timeout on purpose, to show how a hung scenario is reported",
    default: false,
    timeout: Duration::from_secs(2),
    run: sleep,
};

fn fail(cx: &mut Context) -> Outcome {
    cx.figure("answer", 42.0, "");
    Err(Failure::new(
        "deliberate failure (this scenario always fails)",
    ))
}

fn panic(_: &mut Context) -> Outcome {
    panic!("deliberate panic (this scenario always panics)")
}

fn sleep(cx: &mut Context) -> Outcome {
    cx.log("sleeping for 60 s");
    std::thread::sleep(Duration::from_secs(60));
    Ok(())
}
