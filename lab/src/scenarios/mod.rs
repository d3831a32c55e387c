//! The registry of scenarios.
//!
//! To add one: write `src/scenarios/<name>.rs` with a `pub const SCENARIO: Scenario` (see
//! [`crate::scenario`]), declare the module here and append it to [`REGISTRY`]. The harness asks
//! the lab program for this list (`lab list --json`), so nothing else needs to know about it.

use crate::scenario::Scenario;

pub mod blk_smoke;
pub mod boot;
pub mod gntalloc_evtchn;
pub mod hvm_guest;
pub mod hypervisor;
pub mod linux_frontends;
pub mod net_checks;
pub mod net_core;
pub mod net_frames;
pub mod net_smoke;
pub mod scsi_core;
pub mod scsi_smoke;
pub mod selftest;
pub mod toolstack;
pub mod vbd_bench;
pub mod vbd_core;
pub mod vbd_features;
pub mod vbd_resize;
pub mod vbd_session;
pub mod vbd_stress;
pub mod xenstore;

/// Every scenario, in the order they run by default.
pub const REGISTRY: &[Scenario] = &[
    boot::SCENARIO,
    gntalloc_evtchn::SCENARIO,
    xenstore::SCENARIO,
    hypervisor::SCENARIO,
    blk_smoke::SCENARIO,
    vbd_core::SCENARIO,
    vbd_core::FOUR_K,
    vbd_core::READ_ONLY,
    vbd_core::X86_32,
    vbd_core::MULTI_QUEUE,
    vbd_features::PERSISTENT,
    vbd_features::DISCARD,
    vbd_features::CDROM,
    vbd_features::CDROM_2K,
    vbd_resize::SCENARIO,
    vbd_stress::RECONNECT,
    vbd_stress::RECONNECT_BACKEND,
    vbd_stress::SOAK,
    vbd_stress::SOAK_PERSISTENT,
    vbd_stress::SOAK_4K,
    net_smoke::SCENARIO,
    net_core::SCENARIO,
    net_core::ONE_QUEUE,
    scsi_smoke::SCENARIO,
    scsi_core::SCENARIO,
    linux_frontends::BLKFRONT,
    linux_frontends::NETFRONT,
    vbd_bench::SCENARIO,
    vbd_bench::UNBATCHED,
    hvm_guest::SCENARIO,
    selftest::FAIL,
    selftest::PANIC,
    selftest::TIMEOUT,
    blk_smoke::WRONG_RING_REF,
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
        const { assert!(!blk_smoke::WRONG_RING_REF.default) };
    }

    #[test]
    fn linux_frontends_run_after_the_lab_frontends() {
        // Loaded, xen-blkfront and xen-netfront grab every device/vbd and device/vif node in dom0.
        let at = |name: &str| REGISTRY.iter().position(|s| s.name == name).unwrap();
        for linux in ["linux-blkfront", "linux-netfront"] {
            for ours in [
                "blk-smoke",
                "vbd-core",
                "vbd-4k",
                "vbd-readonly",
                "vbd-x86-32",
                "vbd-multiqueue",
                "vbd-persistent",
                "vbd-discard",
                "vbd-cdrom",
                "vbd-cdrom-2k",
                "vbd-resize",
                "vbd-reconnect",
                "vbd-reconnect-backend",
                "vbd-soak",
                "vbd-soak-persistent",
                "vbd-soak-4k",
                "net-smoke",
                "net-core",
                "net-one-queue",
            ] {
                assert!(at(linux) > at(ours), "{linux} before {ours}");
            }
        }
    }
}
