//! What `IRP_MN_START_DEVICE` checks after the lower drivers started the PCI device: that the
//! machine runs on Xen (CPUID, through `xenpci-core`'s detection) and that the device's
//! resources give the bus a memory window. This module is the driver's only path into
//! `xenpci-core` so far.
#![forbid(unsafe_code)]

use core::fmt;

use win_km::status::{NtStatus, STATUS_DEVICE_CONFIGURATION_ERROR};
use xenpci_core::hypervisor::{detect::detect, DetectError, Hypervisor, XenCpuid};

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
}

impl StartFailure {
    /// The status the start IRP completes with.
    pub fn status(&self) -> NtStatus {
        match self {
            Self::LowerDrivers(status) => *status,
            Self::NotXen(_) | Self::Resources(_) => STATUS_DEVICE_CONFIGURATION_ERROR,
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

    #[test]
    fn lower_driver_failure_keeps_its_status() {
        let failure = StartFailure::LowerDrivers(0xC000_0001_u32 as i32);
        assert_eq!(failure.status(), 0xC000_0001_u32 as i32);
        assert!(failure.to_string().contains("0xc0000001"));
    }
}
