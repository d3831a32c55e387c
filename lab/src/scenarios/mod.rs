//! The registry of scenarios.
//!
//! To add one: write `src/scenarios/<name>.rs` with a `pub const SCENARIO: Scenario` (see
//! [`crate::scenario`]), declare the module here and append it to [`REGISTRY`]. The harness asks
//! the lab program for this list (`lab list --json`), so nothing else needs to know about it.

use crate::scenario::Scenario;

pub mod boot;
pub mod gntalloc_evtchn;
pub mod selftest;
pub mod xenstore;

/// Every scenario, in the order they run by default.
pub const REGISTRY: &[Scenario] = &[
    boot::SCENARIO,
    gntalloc_evtchn::SCENARIO,
    xenstore::SCENARIO,
    selftest::FAIL,
    selftest::PANIC,
    selftest::TIMEOUT,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_and_unique() {
        for (i, scenario) in REGISTRY.iter().enumerate() {
            assert!(
                lab_protocol::is_valid_name(scenario.name),
                "{}",
                scenario.name
            );
            assert!(!scenario.description.is_empty());
            assert!(!scenario.timeout.is_zero());
            assert!(
                REGISTRY[..i].iter().all(|s| s.name != scenario.name),
                "{} registered twice",
                scenario.name
            );
        }
    }

    #[test]
    fn self_tests_do_not_run_by_default() {
        for scenario in REGISTRY.iter().filter(|s| s.name.starts_with("selftest-")) {
            assert!(!scenario.default, "{}", scenario.name);
        }
        assert!(REGISTRY.iter().any(|s| s.default));
    }
}
