//! How hypercalls are made: a direct `vmcall`/`vmmcall`, or the classic hypercall page.
//!
//! The default is the direct instruction chosen from the CPU vendor: `vmcall` on Intel,
//! Centaur and Zhaoxin (VMX), `vmmcall` on AMD and Hygon (SVM). The hypercall page (Xen fills a
//! guest page with call stubs after the guest writes the page's address to the MSR of the
//! hypercall leaf) is exposed to speculative-execution attacks through its stubs (XSA-466), so it
//! is only a fallback: selected by [`Policy::HypercallPage`], or when the vendor is unknown.
//!
//! The instruction itself is the platform's (behind [`super::Hypervisor::hypercall`]); the
//! decision ([`choose`]) and the page installation ([`install`]) are here. After a resume on
//! another host, run [`install`] again: the vendor, and the page contents, may differ.

use xen_abi::hypercall::HYPERCALL_PAGE_SIZE;

use super::detect::{CpuVendor, XenCpuid};
use super::{HvError, Hypervisor};

/// The hypercall mechanism handed to the platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HypercallMechanism {
    /// Execute `vmcall` (Intel VMX) with the hypercall number in `rax`.
    Vmcall,
    /// Execute `vmmcall` (AMD SVM) with the hypercall number in `rax`.
    Vmmcall,
    /// Call stub `op` at byte `op * 32` of the page at this GFN, which Xen has filled.
    HypercallPage {
        /// The GFN of the page.
        gfn: u64,
    },
}

/// Which mechanism to prefer (a boot or registry option).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Policy {
    /// The direct instruction for the CPU vendor; the hypercall page only for unknown vendors.
    #[default]
    Auto,
    /// Always the hypercall page (for hypervisors or CPUs where the direct instruction fails).
    HypercallPage,
}

/// The outcome of [`choose`], before a page is allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Use `vmcall`.
    Vmcall,
    /// Use `vmmcall`.
    Vmmcall,
    /// Install and use the hypercall page.
    HypercallPage,
}

/// Chooses the mechanism for `vendor` under `policy`.
pub fn choose(vendor: CpuVendor, policy: Policy) -> Decision {
    match (policy, vendor) {
        (Policy::HypercallPage, _) => Decision::HypercallPage,
        (Policy::Auto, CpuVendor::Intel | CpuVendor::Centaur | CpuVendor::Zhaoxin) => {
            Decision::Vmcall
        }
        (Policy::Auto, CpuVendor::Amd | CpuVendor::Hygon) => Decision::Vmmcall,
        (Policy::Auto, CpuVendor::Unknown(_)) => Decision::HypercallPage,
    }
}

/// The value written to the hypercall MSR to have Xen fill page `index` of the hypercall area
/// at `gfn`: the page's guest-physical address with the page index in the low 12 bits.
pub const fn hypercall_msr_value(gfn: u64, index: u32) -> u64 {
    (gfn * HYPERCALL_PAGE_SIZE as u64) | (index as u64 & 0xfff)
}

/// Writes the hypercall MSR so that Xen fills page 0 of the hypercall area at `gfn`. One page
/// covers every hypercall the core issues (numbers below 128).
pub fn install_hypercall_page<H: Hypervisor + ?Sized>(hv: &H, cpuid: &XenCpuid, gfn: u64) {
    hv.write_msr(cpuid.hypercall_msr, hypercall_msr_value(gfn, 0));
}

/// Applies [`choose`]: for the page, asks the platform for one and installs it; then hands the
/// mechanism to the platform and returns it.
pub fn install<H: Hypervisor + ?Sized>(
    hv: &H,
    cpuid: &XenCpuid,
    policy: Policy,
) -> Result<HypercallMechanism, HvError> {
    let mechanism = match choose(cpuid.vendor, policy) {
        Decision::Vmcall => HypercallMechanism::Vmcall,
        Decision::Vmmcall => HypercallMechanism::Vmmcall,
        Decision::HypercallPage => {
            let gfn = hv
                .allocate_hypercall_page()
                .ok_or(HvError::NoHypercallPage)?;
            install_hypercall_page(hv, cpuid, gfn);
            HypercallMechanism::HypercallPage { gfn }
        }
    };
    hv.set_hypercall_mechanism(mechanism);
    Ok(mechanism)
}
