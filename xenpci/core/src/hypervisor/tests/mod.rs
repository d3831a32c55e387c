extern crate std;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;
use xen_abi::cpuid::XEN_CPUID_SIGNATURE_EDX;
use xen_abi::cpuid::{HvmCpuidFeatures, XEN_CPUID_SIGNATURE_EBX, XEN_CPUID_SIGNATURE_ECX};
use xen_abi::features::Features;
use xen_abi::grant_table::{
    GnttabQuerySize, GnttabSetVersion, GnttabSetupTable, GNTTABOP_GET_VERSION, GNTTABOP_QUERY_SIZE,
    GNTTABOP_SETUP_TABLE, GNTTABOP_SET_VERSION,
};
use xen_abi::hvm::{
    callback_via_vector, HvmEvtchnUpcallVector, HvmParam, HVMOP_GET_PARAM,
    HVMOP_SET_EVTCHN_UPCALL_VECTOR, HVMOP_SET_PARAM, HVM_PARAM_CALLBACK_IRQ,
    HVM_PARAM_CONSOLE_EVTCHN, HVM_PARAM_CONSOLE_PFN, HVM_PARAM_STORE_EVTCHN, HVM_PARAM_STORE_PFN,
};
use xen_abi::hypercall::{
    HYPERVISOR_EVENT_CHANNEL_OP, HYPERVISOR_GRANT_TABLE_OP, HYPERVISOR_HVM_OP,
    HYPERVISOR_MEMORY_OP, HYPERVISOR_SCHED_OP, HYPERVISOR_VCPU_OP, HYPERVISOR_XEN_VERSION,
};
use xen_abi::memory::{
    AddToPhysmap, XENMAPSPACE_GRANT_TABLE, XENMAPSPACE_SHARED_INFO, XENMEM_ADD_TO_PHYSMAP,
};
use xen_abi::sched::SCHEDOP_SHUTDOWN;
use xen_abi::shared_info::{
    SharedInfo, VcpuRegisterVcpuInfo, VcpuTimeInfo, VCPUOP_REGISTER_VCPU_INFO,
};
use xen_abi::version::{FeatureInfo, XENVER_EXTRAVERSION, XENVER_GET_FEATURES, XENVER_VERSION};
use zerocopy::{FromBytes, FromZeros, IntoBytes};

use super::calls::{self, invoke, GNTTABOP_QUERY_SIZE_CALL};
use super::detect::{self, CpuVendor, DetectError};
use super::gnttab::{self, GrantFrames};
use super::hvm::{self, CallbackVia, UpcallMethod, UpcallResources};
use super::mechanism::{self, Decision, HypercallMechanism, Policy};
use super::shared_info::{self as si, SharedMemory, TimeError, WallClock, SEQLOCK_RETRIES};
use super::*;
use crate::grant_table::{GrantEntries, GrantLink, GrantTable};

mod calls_arity;
mod fake;

use fake::*;

// ---- detection ----

#[test]
fn detects_xen_at_the_first_base() {
    let f = FakeXen::new();
    let c = detect::detect(&f).unwrap();
    assert_eq!(c.base, 0x4000_0000);
    assert_eq!((c.version.major, c.version.minor), (4, 19));
    assert_eq!(std::format!("{}", c.version), "4.19");
    assert_eq!(c.hypercall_pages, 1);
    assert_eq!(c.hypercall_msr, 0x4000_0000);
    assert!(c.upcall_vector_supported());
    assert_eq!(c.vcpu_id, None);
    assert_eq!(c.vendor, CpuVendor::Intel);
}

#[test]
fn detects_xen_behind_viridian() {
    let mut f = FakeXen::new();
    f.cpuid.clear();
    // "Microsoft Hv" at the first base.
    f.cpuid.insert(
        (0x4000_0000, 0),
        [0x4000_0005, 0x7263_694d, 0x666f_736f, 0x7648_2074],
    );
    let hvm = (HvmCpuidFeatures::VCPU_ID_PRESENT | HvmCpuidFeatures::DOMID_PRESENT).bits();
    f.set_xen(0x4000_0100, 5, 0x0004_0011, hvm);
    let c = detect::detect(&f).unwrap();
    assert_eq!(c.base, 0x4000_0100);
    assert_eq!(c.vcpu_id, Some(3));
    assert_eq!(c.domid, Some(7));
    assert!(!c.upcall_vector_supported());
    assert_eq!(detect::vcpu_id(&f, &c), Some(3));
    assert!(matches!(c.vendor, CpuVendor::Unknown(_)));
}

#[test]
fn detects_xen_at_the_last_base_and_stops_at_the_first() {
    let mut f = FakeXen::new();
    f.cpuid.clear();
    f.set_xen(0x4000_ff00, 2, 0x0003_0004, 0);
    assert_eq!(detect::find_base(&f), Some(0x4000_ff00));
    f.set_xen(0x4000_0300, 4, 0x0004_0000, 0);
    assert_eq!(detect::find_base(&f), Some(0x4000_0300));
}

#[test]
fn not_xen() {
    let mut f = FakeXen::new();
    f.cpuid.clear();
    assert_eq!(detect::detect(&f), Err(DetectError::NotXen));
    assert_eq!(
        init(&f, Policy::Auto),
        Err(HvError::Detect(DetectError::NotXen))
    );
    assert_eq!(f.mechanism.get(), None);
}

#[test]
fn odd_cpuid_values_are_typed_errors() {
    let mut f = FakeXen::new();
    f.cpuid.get_mut(&(0x4000_0000, 0)).unwrap()[0] = 0x4000_0001;
    assert_eq!(
        detect::detect(&f),
        Err(DetectError::MaxLeafTooLow {
            base: 0x4000_0000,
            max_leaf: 0x4000_0001
        })
    );
    // Max leaf below the base itself (garbage).
    f.cpuid.get_mut(&(0x4000_0000, 0)).unwrap()[0] = 3;
    assert!(matches!(
        detect::detect(&f),
        Err(DetectError::MaxLeafTooLow { .. })
    ));
    let mut f = FakeXen::new();
    f.cpuid.get_mut(&(0x4000_0002, 0)).unwrap()[0] = 0;
    assert_eq!(detect::detect(&f), Err(DetectError::NoHypercallPages));
    // HVM leaf beyond max: no features, not an error.
    let mut f = FakeXen::new();
    f.cpuid.get_mut(&(0x4000_0000, 0)).unwrap()[0] = 0x4000_0002;
    let c = detect::detect(&f).unwrap();
    assert!(c.hvm_features.is_empty());
    assert_eq!(detect::vcpu_id(&f, &c), None);
}

proptest! {
    #[test]
    fn detection_never_panics(entries in proptest::collection::vec(
        ((0u32..0x110, 0u32..8), any::<[u32; 4]>(), any::<bool>()), 0..40)) {
        let mut f = FakeXen::new();
        f.cpuid.clear();
        for ((base_idx, off), mut regs, sig) in entries {
            let base = 0x4000_0000 + (base_idx % 0x100) * 0x100;
            if sig && off == 0 {
                regs[1] = XEN_CPUID_SIGNATURE_EBX;
                regs[2] = XEN_CPUID_SIGNATURE_ECX;
                regs[3] = XEN_CPUID_SIGNATURE_EDX;
            }
            f.cpuid.insert((base + off, 0), regs);
        }
        if let Ok(c) = detect::detect(&f) {
            prop_assert!(c.hypercall_pages > 0);
            prop_assert!(c.max_leaf >= c.base + 2);
        }
    }
}

// ---- mechanism ----

#[test]
fn vendor_strings() {
    for (sig, vendor, decision) in [
        (b"GenuineIntel", CpuVendor::Intel, Decision::Vmcall),
        (b"AuthenticAMD", CpuVendor::Amd, Decision::Vmmcall),
        (b"HygonGenuine", CpuVendor::Hygon, Decision::Vmmcall),
        (b"CentaurHauls", CpuVendor::Centaur, Decision::Vmcall),
        (b"  Shanghai  ", CpuVendor::Zhaoxin, Decision::Vmcall),
    ] {
        let v = CpuVendor::from_leaf0(vendor_regs(sig));
        assert_eq!(v, vendor);
        assert_eq!(mechanism::choose(v, Policy::Auto), decision);
        assert_eq!(
            mechanism::choose(v, Policy::HypercallPage),
            Decision::HypercallPage
        );
    }
    let odd = CpuVendor::from_leaf0(vendor_regs(b"VIA VIA VIA "));
    assert_eq!(odd, CpuVendor::Unknown(*b"VIA VIA VIA "));
    assert_eq!(
        mechanism::choose(odd, Policy::Auto),
        Decision::HypercallPage
    );
}

#[test]
fn init_uses_the_direct_instruction() {
    let f = FakeXen::new();
    let i = init(&f, Policy::Auto).unwrap();
    assert_eq!(i.mechanism, HypercallMechanism::Vmcall);
    assert_eq!(f.mechanism.get(), Some(HypercallMechanism::Vmcall));
    assert!(f.msrs.borrow().is_empty());
    let mut f = FakeXen::new();
    f.cpuid.insert((0, 0), vendor_regs(b"AuthenticAMD"));
    assert_eq!(
        init(&f, Policy::Auto).unwrap().mechanism,
        HypercallMechanism::Vmmcall
    );
}

#[test]
fn hypercall_page_fallback() {
    // Forced by policy.
    let f = FakeXen::new();
    let i = init(&f, Policy::HypercallPage).unwrap();
    assert_eq!(
        i.mechanism,
        HypercallMechanism::HypercallPage { gfn: 0x1234 }
    );
    assert_eq!(*f.msrs.borrow(), vec![(0x4000_0000, 0x0123_4000)]);
    assert_eq!(f.mechanism.get(), Some(i.mechanism));
    // Unknown vendor.
    let mut f = FakeXen::new();
    f.cpuid.insert((0, 0), [0; 4]);
    assert!(matches!(
        init(&f, Policy::Auto).unwrap().mechanism,
        HypercallMechanism::HypercallPage { .. }
    ));
    // No page available.
    f.hypercall_page = None;
    assert_eq!(init(&f, Policy::Auto), Err(HvError::NoHypercallPage));
    assert_eq!(mechanism::hypercall_msr_value(5, 1), 0x5001);
}

// ---- shared info ----

#[test]
fn shared_info_is_mapped_in_the_window() {
    let f = ready();
    assert_eq!(si::map(&f), Ok(0xf000));
    assert_eq!(
        *f.physmap.borrow(),
        vec![(XENMAPSPACE_SHARED_INFO, 0, 0xf000)]
    );
    f.window_next.set(f.window_end);
    assert_eq!(si::map(&f), Err(HvError::WindowExhausted { count: 1 }));
    f.fail.borrow_mut().insert(
        (HYPERVISOR_MEMORY_OP, u64::from(XENMEM_ADD_TO_PHYSMAP)),
        -12,
    );
    assert!(matches!(
        si::map_at(&f, 1),
        Err(HvError::Hypercall {
            errno: XenErrno::ENOMEM,
            ..
        })
    ));
}

/// A shared-info page whose sequence counters follow a script: each acquire load of a counter
/// returns the next scripted value (then sticks at the last one).
struct Page {
    bytes: RefCell<Vec<u8>>,
    script: RefCell<BTreeMap<usize, Vec<u32>>>,
    loads: Cell<u32>,
    /// Applied to the page between the field copy and the second counter read.
    tear: RefCell<Option<(usize, u8)>>,
}

impl Page {
    fn new(info: &SharedInfo) -> Self {
        let mut bytes = vec![0u8; 4096];
        bytes[..size_of::<SharedInfo>()].copy_from_slice(info.as_bytes());
        Page {
            bytes: RefCell::new(bytes),
            script: RefCell::new(BTreeMap::new()),
            loads: Cell::new(0),
            tear: RefCell::new(None),
        }
    }
}

impl SharedMemory for Page {
    fn read_bytes(&self, offset: usize, out: &mut [u8]) {
        out.copy_from_slice(&self.bytes.borrow()[offset..offset + out.len()]);
        if let Some((at, v)) = self.tear.borrow_mut().take() {
            self.bytes.borrow_mut()[at] = v;
        }
    }
    fn load_u32_acquire(&self, offset: usize) -> u32 {
        self.loads.set(self.loads.get() + 1);
        let mut script = self.script.borrow_mut();
        if let Some(s) = script.get_mut(&offset) {
            if s.len() > 1 {
                return s.remove(0);
            }
            return s[0];
        }
        let b = self.bytes.borrow();
        u32::from_le_bytes(b[offset..offset + 4].try_into().unwrap())
    }
}

fn info() -> SharedInfo {
    let mut s = SharedInfo::new_zeroed();
    s.wc_version = 2;
    s.wc_sec = 0x8000_0001;
    s.wc_sec_hi = 1;
    s.wc_nsec = 999_999_999;
    let t = &mut s.vcpu_info[3].time;
    t.version = 10;
    t.tsc_timestamp = 1_000;
    t.system_time = 5_000_000;
    t.tsc_to_system_mul = 1 << 31;
    s
}

#[test]
fn wall_clock_reads() {
    let page = Page::new(&info());
    assert_eq!(
        si::wall_clock(&page),
        Ok(WallClock {
            sec: 0x1_8000_0001,
            nsec: 999_999_999
        })
    );
    let now = si::read_wall_time(&page, 3, 3_000).unwrap();
    // 999_999_999 ns + 1_000 ns system-time delta + 5 ms.
    assert_eq!(now.sec, 0x1_8000_0002);
    assert_eq!(now.nsec, 5_000_999);
}

#[test]
fn seqlock_retries_odd_and_changed_versions() {
    let page = Page::new(&info());
    let wc = core::mem::offset_of!(SharedInfo, wc_version);
    // Odd, odd, then 4 before and 6 after (changed), then stable at 6.
    page.script.borrow_mut().insert(wc, vec![1, 3, 4, 6, 6, 6]);
    assert!(si::wall_clock(&page).is_ok());
    // Always odd: bounded.
    page.script.borrow_mut().insert(wc, vec![7]);
    assert_eq!(
        si::wall_clock(&page),
        Err(TimeError::Unstable {
            attempts: SEQLOCK_RETRIES
        })
    );
    // Always changing: bounded.
    page.script
        .borrow_mut()
        .insert(wc, (0..1000).map(|i| i * 2).collect());
    page.loads.set(0);
    assert!(si::wall_clock(&page).is_err());
    assert_eq!(page.loads.get(), 2 * SEQLOCK_RETRIES);
}

#[test]
fn torn_time_read_is_retried() {
    let page = Page::new(&info());
    let off = si::vcpu_time_offset(3).unwrap();
    // Xen updates system_time during the first copy: version goes 10 → 12.
    page.script.borrow_mut().insert(off, vec![10, 12, 12, 12]);
    let sys = off + core::mem::offset_of!(VcpuTimeInfo, system_time);
    *page.tear.borrow_mut() = Some((sys, 0x10));
    let t = si::vcpu_time(&page, 3).unwrap();
    assert_eq!(t.system_time & 0xff, 0x10);
    assert_eq!(
        si::vcpu_time(&page, 32),
        Err(TimeError::InvalidVcpu { vcpu: 32 })
    );
    assert_eq!(
        si::read_system_time(&page, 99, 0),
        Err(TimeError::InvalidVcpu { vcpu: 99 })
    );
}

#[test]
fn scaling_matches_xen() {
    // 2 GHz: 0.5 ns per tick.
    assert_eq!(si::scale_delta(2_000, 1 << 31, 0), 1_000);
    assert_eq!(si::scale_delta(2_000, 1 << 30, 1), 1_000);
    assert_eq!(si::scale_delta(2_000, u32::MAX, -1), 999);
    // Large deltas don't overflow the product.
    assert_eq!(
        si::scale_delta(u64::MAX, u32::MAX, 0),
        ((u64::MAX as u128 * u32::MAX as u128) >> 32) as u64
    );
    // A TSC behind the timestamp wraps as Xen's unsigned arithmetic does.
    let mut t = VcpuTimeInfo::new_zeroed();
    t.tsc_timestamp = 10;
    t.tsc_to_system_mul = 1 << 31;
    assert_eq!(si::system_time_ns(&t, 10), 0);
}

proptest! {
    #[test]
    fn scaling_agrees_with_the_abi(ts in any::<u64>(), tsc in any::<u64>(), sys in any::<u64>(),
                                   mul in any::<u32>(), shift in -40i8..40) {
        let mut t = VcpuTimeInfo::new_zeroed();
        t.tsc_timestamp = ts;
        t.system_time = sys;
        t.tsc_to_system_mul = mul;
        t.tsc_shift = shift;
        prop_assert_eq!(si::system_time_ns(&t, tsc), t.system_time_at(tsc));
    }

    #[test]
    fn wall_clock_normalises(sec in any::<u32>(), nsec in 0u32..1_000_000_000, ns in any::<u64>()) {
        let w = WallClock { sec: u64::from(sec), nsec }.plus_ns(ns);
        prop_assert!(w.nsec < 1_000_000_000);
        let total = u128::from(sec) * 1_000_000_000 + u128::from(nsec) + u128::from(ns);
        prop_assert_eq!(u128::from(w.sec) * 1_000_000_000 + u128::from(w.nsec), total);
    }
}

// ---- grant table ----

#[derive(Debug, Default)]
struct Entries(RefCell<Vec<u16>>);

impl GrantEntries for Entries {
    fn write_target(&self, _: u32, _: u16, _: u32) {}
    fn publish_flags(&self, gref: u32, flags: u16) {
        let mut e = self.0.borrow_mut();
        let i = gref as usize;
        if e.len() <= i {
            e.resize(i + 1, 0);
        }
        e[i] = flags;
    }
    fn compare_exchange_flags(&self, gref: u32, current: u16, new: u16) -> u16 {
        let mut e = self.0.borrow_mut();
        let old = e[gref as usize];
        if old == current {
            e[gref as usize] = new;
        }
        old
    }
    fn load_flags(&self, gref: u32) -> u16 {
        self.0.borrow()[gref as usize]
    }
}

fn grant_links(n: usize) -> Vec<GrantLink> {
    (0..n).map(|_| GrantLink::new()).collect()
}

#[test]
fn grant_frames_grow_the_table() {
    let f = ready();
    let links = grant_links(8 * 512);
    let mut table = GrantTable::new(Entries::default(), &links, 0).unwrap();
    let mut frames = GrantFrames::setup(&f, 8).unwrap();
    assert_eq!(frames.limit(), 4);
    assert_eq!(frames.size().max_nr_frames, 4);
    assert_eq!(frames.version().found, Some(1));
    assert!(table.grant_access(0, 1, false).is_err());
    let mut seen = Vec::new();
    assert_eq!(
        frames.grow(&f, &mut table, 2, |i, g| seen.push((i, g))),
        Ok(2)
    );
    assert_eq!(seen, vec![(0, 0xf000), (1, 0xf001)]);
    assert_eq!(table.capacity(), 1024);
    assert_eq!(frames.capacity(), 1024);
    assert!(table.grant_access(0, 1, false).is_ok());
    // Asking for fewer is a no-op.
    assert_eq!(frames.grow(&f, &mut table, 1, |_, _| panic!()), Ok(2));
    assert_eq!(frames.grow_one(&f, &mut table, |_, _| {}), Ok(3));
    assert_eq!(
        frames.grow(&f, &mut table, 5, |_, _| {}),
        Err(HvError::BadFrameCount {
            requested: 5,
            max: 4
        })
    );
    let grants: Vec<_> = f.physmap.borrow().iter().map(|&(s, i, _)| (s, i)).collect();
    assert_eq!(grants, vec![(1, 0), (1, 1), (1, 2)]);
}

#[test]
fn grant_frame_failures_keep_what_was_mapped() {
    let mut f = FakeXen::new();
    f.set_hypercall_mechanism(HypercallMechanism::Vmcall);
    f.fail_physmap_idx = Some(2);
    let links = grant_links(4 * 512);
    let mut table = GrantTable::new(Entries::default(), &links, 0).unwrap();
    let mut frames = GrantFrames::setup(&f, 4).unwrap();
    assert!(matches!(
        frames.grow(&f, &mut table, 4, |_, _| {}),
        Err(HvError::Hypercall {
            errno: XenErrno::EINVAL,
            ..
        })
    ));
    assert_eq!(frames.mapped(), 2);
    assert_eq!(table.capacity(), 1024);
    // Window exhausted.
    f.fail_physmap_idx = None;
    f.window_next.set(f.window_end);
    assert_eq!(
        frames.grow(&f, &mut table, 3, |_, _| {}),
        Err(HvError::WindowExhausted { count: 1 })
    );
    // The caller's link storage is smaller than the frames: refused by the limit.
    let small = grant_links(512);
    let mut table = GrantTable::new(Entries::default(), &small, 0).unwrap();
    let f = ready();
    let mut frames = GrantFrames::setup(&f, 1).unwrap();
    assert_eq!(frames.limit(), 1);
    assert_eq!(frames.grow(&f, &mut table, 1, |_, _| {}), Ok(1));
}

#[test]
fn grant_table_size_and_version() {
    let mut f = FakeXen::new();
    f.set_hypercall_mechanism(HypercallMechanism::Vmcall);
    f.gnttab_max = 0;
    assert_eq!(
        GrantFrames::setup(&f, 8),
        Err(HvError::BadGrantTableSize {
            nr_frames: 1,
            max_nr_frames: 0
        })
    );
    f.gnttab_max = 4;
    f.gnttab_status = -1;
    assert_eq!(
        gnttab::query_size(&f),
        Err(HvError::GrantStatus {
            cmd: GNTTABOP_QUERY_SIZE,
            status: -1
        })
    );
    f.gnttab_status = 0;
    // Found at v2: switched back and reported.
    f.gnttab_version.set(2);
    let frames = GrantFrames::setup(&f, 8).unwrap();
    assert_eq!(frames.version().found, Some(2));
    assert!(frames.version().v2_seen);
    assert_eq!(f.gnttab_version.get(), 1);
    // Xen refuses to go back to v1.
    f.gnttab_version.set(2);
    f.refuse_v1 = true;
    assert_eq!(
        GrantFrames::setup(&f, 8),
        Err(HvError::UnsupportedGrantVersion { version: 2 })
    );
    // An old Xen without get_version: v1 assumed.
    f.has_get_version = false;
    let r = gnttab::ensure_v1(&f).unwrap();
    assert_eq!(r.found, None);
    assert!(!r.v2_seen);
    // set_version missing altogether.
    f.fail.borrow_mut().insert(
        (HYPERVISOR_GRANT_TABLE_OP, u64::from(GNTTABOP_SET_VERSION)),
        ENOSYS,
    );
    assert_eq!(gnttab::set_version(&f, 1), Ok(None));
    f.fail.borrow_mut().insert(
        (HYPERVISOR_GRANT_TABLE_OP, u64::from(GNTTABOP_GET_VERSION)),
        -1,
    );
    assert!(gnttab::get_version(&f).is_err());
}

// ---- HVM params and upcalls ----

#[test]
fn rings_from_params() {
    let f = ready();
    assert_eq!(
        hvm::store_ring(&f),
        Err(HvError::ParamUnset {
            index: HVM_PARAM_STORE_PFN
        })
    );
    hvm::set_param(&f, HVM_PARAM_STORE_PFN, 0xfeffc).unwrap();
    assert_eq!(
        hvm::store_ring(&f),
        Err(HvError::ParamUnset {
            index: HVM_PARAM_STORE_EVTCHN
        })
    );
    hvm::set_param(&f, HVM_PARAM_STORE_EVTCHN, 1 << 40).unwrap();
    assert_eq!(
        hvm::store_ring(&f),
        Err(HvError::ParamOutOfRange {
            index: HVM_PARAM_STORE_EVTCHN,
            value: 1 << 40
        })
    );
    hvm::set_param(&f, HVM_PARAM_STORE_EVTCHN, 3).unwrap();
    assert_eq!(
        hvm::store_ring(&f),
        Ok(hvm::RingInfo {
            pfn: 0xfeffc,
            evtchn: 3
        })
    );
    hvm::set_param(&f, HVM_PARAM_CONSOLE_PFN, 0xfefff).unwrap();
    hvm::set_param(&f, HVM_PARAM_CONSOLE_EVTCHN, 2).unwrap();
    assert_eq!(
        hvm::console_ring(&f),
        Ok(hvm::RingInfo {
            pfn: 0xfefff,
            evtchn: 2
        })
    );
}

#[test]
fn upcall_decision() {
    let line = CallbackVia::PciIntx {
        segment: 0,
        bus: 0,
        devfn: 3 << 3,
        pin: 0,
    };
    let with_vector = UpcallResources {
        vector: Some(0xf3),
        line,
    };
    let without = UpcallResources { vector: None, line };
    let up = HvmCpuidFeatures::UPCALL_VECTOR;
    let none = HvmCpuidFeatures::empty();
    let cbv = Features::HVM_CALLBACK_VECTOR;
    let nof = Features::empty();
    assert_eq!(
        hvm::choose_upcall(up, cbv, with_vector),
        UpcallMethod::PerVcpuVector(0xf3)
    );
    assert_eq!(
        hvm::choose_upcall(up, nof, with_vector),
        UpcallMethod::PerVcpuVector(0xf3)
    );
    assert_eq!(
        hvm::choose_upcall(none, cbv, with_vector),
        UpcallMethod::CallbackIrq(CallbackVia::Vector(0xf3))
    );
    assert_eq!(
        hvm::choose_upcall(none, nof, with_vector),
        UpcallMethod::CallbackIrq(line)
    );
    assert_eq!(
        hvm::choose_upcall(up, cbv, without),
        UpcallMethod::CallbackIrq(line)
    );
    assert_eq!(CallbackVia::Gsi(28).encode(), 28);
    assert_eq!(line.encode(), 0x0100_0000_0000_1800);
    assert_eq!(CallbackVia::Vector(0xf3).encode(), 0x0200_0000_0000_00f3);
}

#[test]
fn upcall_setup_calls() {
    let f = ready();
    assert_eq!(hvm::xen_features(&f), Ok(Features::HVM_CALLBACK_VECTOR));
    hvm::setup_upcall(&f, UpcallMethod::PerVcpuVector(0xf3), [0, 1, 2]).unwrap();
    assert_eq!(
        *f.upcall_vectors.borrow(),
        vec![(0, 0xf3), (1, 0xf3), (2, 0xf3)]
    );
    assert_eq!(
        f.params.borrow()[&HVM_PARAM_CALLBACK_IRQ],
        callback_via_vector(0)
    );
    hvm::setup_upcall(&f, UpcallMethod::CallbackIrq(CallbackVia::Gsi(28)), []).unwrap();
    assert_eq!(f.params.borrow()[&HVM_PARAM_CALLBACK_IRQ], 28);
    assert_eq!(
        hvm::setup_upcall(&f, UpcallMethod::CallbackIrq(CallbackVia::Gsi(0)), []),
        Err(HvError::ParamOutOfRange {
            index: HVM_PARAM_CALLBACK_IRQ,
            value: 0
        })
    );
    assert_eq!(
        hvm::setup_upcall(&f, UpcallMethod::CallbackIrq(CallbackVia::Vector(2)), []),
        Err(HvError::BadVector { vector: 2 })
    );
    assert_eq!(
        hvm::setup_upcall(&f, UpcallMethod::PerVcpuVector(1), [0]),
        Err(HvError::BadVector { vector: 1 })
    );
    hvm::disable_callback_irq(&f).unwrap();
    assert_eq!(f.params.borrow()[&HVM_PARAM_CALLBACK_IRQ], 0);
    // A failing vCPU stops the setup with Xen's error.
    f.fail.borrow_mut().insert(
        (HYPERVISOR_HVM_OP, u64::from(HVMOP_SET_EVTCHN_UPCALL_VECTOR)),
        EINVAL,
    );
    assert!(hvm::setup_upcall(&f, UpcallMethod::PerVcpuVector(0xf3), [0]).is_err());
}

#[test]
fn errors_display() {
    let errs = [
        HvError::NoHypercallPage,
        HvError::WindowExhausted { count: 2 },
        HvError::Detect(DetectError::NotXen),
        HvError::Detect(DetectError::NoHypercallPages),
        HvError::Detect(DetectError::MaxLeafTooLow {
            base: 1,
            max_leaf: 0,
        }),
        HvError::Grant(crate::grant_table::GrantError::Exhausted),
        HvError::UnsupportedGrantVersion { version: 2 },
    ];
    for e in errs {
        assert!(!std::format!("{e}").is_empty());
    }
    assert!(std::format!("{}", TimeError::Unstable { attempts: 3 }).contains('3'));
}
