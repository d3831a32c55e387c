//! What `IRP_MN_START_DEVICE` checks after the lower drivers started the PCI device: that the
//! machine runs on Xen (CPUID, through `xenpci-core`'s detection) and that the device's
//! resources give the bus a memory window. This module is the driver's only path into
//! `xenpci-core` so far.
#![forbid(unsafe_code)]

use core::fmt;

use win_km::status::{NtStatus, STATUS_DEVICE_CONFIGURATION_ERROR, STATUS_UNSUCCESSFUL};
use xenpci_core::hypervisor::{
    detect::detect, init, shared_info, DetectError, HvError, Hypervisor, Initialised, Policy,
    XenCpuid,
};

use crate::resources::{select, Descriptor, PlatformResources, ResourceError};

/// Why START failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartFailure {
    /// The lower drivers (the PCI bus driver) failed the start with this status.
    LowerDrivers(NtStatus),
    /// Xen was not found.
    NotXen(DetectError),
    /// The device's resources cannot be used.
    Resources(ResourceError),
    /// Setting up hypercalls or mapping the shared-info page failed.
    Hypervisor(HvError),
    /// Windows could not map the frame the shared-info page was placed at.
    SharedInfoUnmapped {
        /// The frame.
        gfn: u64,
    },
}

impl StartFailure {
    /// The status the start IRP completes with.
    pub fn status(&self) -> NtStatus {
        match self {
            Self::LowerDrivers(status) => *status,
            Self::NotXen(_) | Self::Resources(_) => STATUS_DEVICE_CONFIGURATION_ERROR,
            Self::Hypervisor(_) | Self::SharedInfoUnmapped { .. } => STATUS_UNSUCCESSFUL,
        }
    }
}

impl fmt::Display for StartFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LowerDrivers(status) => {
                write!(
                    f,
                    "the lower drivers failed the start with status {:#010x}",
                    *status as u32
                )
            }
            Self::NotXen(e) => write!(f, "not running on Xen: {e}"),
            Self::Resources(e) => write!(f, "unusable device resources: {e}"),
            Self::Hypervisor(e) => write!(f, "Xen did not accept the bus: {e}"),
            Self::SharedInfoUnmapped { gfn } => {
                write!(
                    f,
                    "the shared-info page at frame {gfn:#x} could not be mapped"
                )
            }
        }
    }
}

/// What a successful start found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Platform {
    /// Xen's CPUID leaves.
    pub xen: XenCpuid,
    /// The device's resources.
    pub resources: PlatformResources,
}

/// Checks Xen first (the clearest reason on a machine without it), then the resources
/// (`None`: the IRP carried no translated resource list). Makes no hypercall.
pub fn check_platform<H: Hypervisor + ?Sized>(
    hv: &H,
    descriptors: Option<&[Descriptor]>,
) -> Result<Platform, StartFailure> {
    let xen = detect(hv).map_err(StartFailure::NotXen)?;
    let descriptors = descriptors.ok_or(StartFailure::Resources(ResourceError::NoResourceList))?;
    let resources = select(descriptors).map_err(StartFailure::Resources)?;
    Ok(Platform { xen, resources })
}

/// What the bus set up with Xen after the checks passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BroughtUp {
    /// Xen's CPUID view and the hypercall mechanism in use.
    pub hypervisor: Initialised,
    /// Where the shared-info page now lives (a frame of the device's memory window).
    pub shared_info_gfn: u64,
}

/// Chooses the hypercall mechanism and maps the shared-info page into the window (the
/// platform's window must be set to the device's memory BAR first). PASSIVE_LEVEL.
pub fn bring_up<H: Hypervisor + ?Sized>(hv: &H) -> Result<BroughtUp, StartFailure> {
    let hypervisor = init(hv, Policy::Auto).map_err(StartFailure::Hypervisor)?;
    let shared_info_gfn = shared_info::map(hv).map_err(StartFailure::Hypervisor)?;
    Ok(BroughtUp {
        hypervisor,
        shared_info_gfn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use xenpci_core::hypervisor::{Arg, HypercallMechanism, PortIo};

    /// A CPU that answers CPUID from a table; every other operation is a mistake at START.
    struct Cpu {
        leaves: Vec<(u32, [u32; 4])>,
    }

    impl Cpu {
        fn bare_metal() -> Self {
            Self {
                leaves: vec![(
                    0,
                    [
                        0xd,
                        u32::from_le_bytes(*b"Genu"),
                        u32::from_le_bytes(*b"ntel"),
                        u32::from_le_bytes(*b"ineI"),
                    ],
                )],
            }
        }

        fn xen() -> Self {
            let mut cpu = Self::bare_metal();
            let sig = *b"XenVMMXenVMM";
            let word = |i: usize| u32::from_le_bytes([sig[i], sig[i + 1], sig[i + 2], sig[i + 3]]);
            cpu.leaves
                .push((0x4000_0000, [0x4000_0005, word(0), word(4), word(8)]));
            cpu.leaves.push((0x4000_0001, [(4 << 16) | 17, 0, 0, 0]));
            cpu.leaves.push((0x4000_0002, [1, 0x4000_0000, 0, 0]));
            cpu
        }
    }

    impl PortIo for Cpu {
        fn inb(&self, _: u16) -> u8 {
            panic!("START must not touch I/O ports")
        }
        fn inw(&self, _: u16) -> u16 {
            panic!("START must not touch I/O ports")
        }
        fn inl(&self, _: u16) -> u32 {
            panic!("START must not touch I/O ports")
        }
        fn outb(&self, _: u16, _: u8) {
            panic!("START must not touch I/O ports")
        }
        fn outw(&self, _: u16, _: u16) {
            panic!("START must not touch I/O ports")
        }
        fn outl(&self, _: u16, _: u32) {
            panic!("START must not touch I/O ports")
        }
    }

    impl Hypervisor for Cpu {
        fn cpuid(&self, leaf: u32, _subleaf: u32) -> [u32; 4] {
            self.leaves
                .iter()
                .find(|(l, _)| *l == leaf)
                .map_or([0; 4], |(_, v)| *v)
        }
        fn write_msr(&self, _: u32, _: u64) {
            panic!("the start checks must not write MSRs")
        }
        fn set_hypercall_mechanism(&self, _: HypercallMechanism) {
            panic!("the start checks must not choose a hypercall mechanism")
        }
        fn hypercall(&self, _: u32, _: &mut [Arg<'_>; 5]) -> i64 {
            panic!("the start checks must not make hypercalls")
        }
        fn allocate_frames(&self, _: u32) -> Option<u64> {
            panic!("the start checks must not allocate frames")
        }
        fn allocate_hypercall_page(&self) -> Option<u64> {
            panic!("the start checks must not allocate a hypercall page")
        }
    }

    const BAR: Descriptor = Descriptor::Memory {
        start: 0xf000_0000,
        length: 16 << 20,
    };

    #[test]
    fn without_xen_start_fails_with_a_configuration_error_and_a_reason() {
        let failure = check_platform(&Cpu::bare_metal(), Some(&[BAR])).unwrap_err();
        assert_eq!(failure, StartFailure::NotXen(DetectError::NotXen));
        assert_eq!(failure.status(), STATUS_DEVICE_CONFIGURATION_ERROR);
        assert_eq!(
            failure.to_string(),
            "not running on Xen: Xen's CPUID signature was not found"
        );
    }

    #[test]
    fn xen_is_checked_before_resources() {
        let failure = check_platform(&Cpu::bare_metal(), None).unwrap_err();
        assert!(matches!(failure, StartFailure::NotXen(_)));
    }

    #[test]
    fn on_xen_without_resources_start_fails_with_the_resource_reason() {
        let failure = check_platform(&Cpu::xen(), None).unwrap_err();
        assert_eq!(
            failure,
            StartFailure::Resources(ResourceError::NoResourceList)
        );
        assert_eq!(failure.status(), STATUS_DEVICE_CONFIGURATION_ERROR);
        let failure = check_platform(&Cpu::xen(), Some(&[])).unwrap_err();
        assert_eq!(
            failure,
            StartFailure::Resources(ResourceError::NoMemoryWindow)
        );
    }

    #[test]
    fn on_xen_with_a_bar_start_succeeds() {
        let platform = check_platform(&Cpu::xen(), Some(&[BAR])).unwrap();
        assert_eq!(platform.xen.base, 0x4000_0000);
        assert_eq!(platform.xen.version.major, 4);
        assert_eq!(platform.xen.version.minor, 17);
        assert_eq!(platform.resources.window_start, 0xf000_0000);
    }

    mod against_the_model {
        use super::super::*;
        use xen_sim::{Config, HvConfig, Vendor, Xen};
        use xenpci_core::hypervisor::shared_info::wall_clock;
        use xenpci_core::hypervisor::HypercallMechanism;

        fn xen(hv: HvConfig) -> Xen {
            Xen::new(Config {
                hv,
                ..Config::default()
            })
        }

        #[test]
        fn bring_up_chooses_the_instruction_and_maps_shared_info_into_the_window() {
            for (vendor, mechanism) in [
                (Vendor::Intel, HypercallMechanism::Vmcall),
                (Vendor::Amd, HypercallMechanism::Vmmcall),
            ] {
                let model = xen(HvConfig {
                    vendor,
                    ..HvConfig::default()
                });
                let hv = model.hypervisor();
                let up = bring_up(&hv).unwrap();
                assert_eq!(up.hypervisor.mechanism, mechanism);
                assert_eq!(up.shared_info_gfn, model.shared_info_gfn());
                let window = HvConfig::default();
                // The first frame of the window (the model gives its base as a GFN).
                assert_eq!(up.shared_info_gfn, window.window_base);
                model.set_wall_clock(1_700_000_000, 7);
                let wc = wall_clock(&model.shared_info()).unwrap();
                assert_eq!((wc.sec, wc.nsec), (1_700_000_000, 7));
                assert!(
                    model.hv_state().violations.is_empty(),
                    "{:?}",
                    model.hv_state().violations
                );
            }
        }

        #[test]
        fn an_exhausted_window_fails_the_start_with_the_reason() {
            let model = xen(HvConfig {
                window_frames: 0,
                ..HvConfig::default()
            });
            let failure = bring_up(&model.hypervisor()).unwrap_err();
            assert_eq!(
                failure,
                StartFailure::Hypervisor(HvError::WindowExhausted { count: 1 })
            );
            assert_eq!(failure.status(), STATUS_UNSUCCESSFUL);
            assert!(failure
                .to_string()
                .starts_with("Xen did not accept the bus: "));
        }
    }

    #[test]
    fn lower_driver_failure_keeps_its_status() {
        let failure = StartFailure::LowerDrivers(0xC000_0001_u32 as i32);
        assert_eq!(failure.status(), 0xC000_0001_u32 as i32);
        assert!(failure.to_string().contains("0xc0000001"));
    }
}
