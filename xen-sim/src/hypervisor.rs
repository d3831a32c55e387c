//! The hypervisor level: CPUID leaves, the hypercall MSR and page, hypercalls decoded from their
//! argument bytes, the platform device's I/O ports (the unplug protocol) and the frame window,
//! implementing `xenpci_core::hypervisor::{Hypervisor, PortIo}` over the model.
//!
//! Hypercalls reach the same model as the trait-level handles: `EVTCHNOP_*` go to the event
//! channels, `GNTTABOP_query_size`/`get_version`/`set_version` and `XENMEM_add_to_physmap` to the
//! grant table and shared-info page (mapping really moves the page to the GFN asked for), HVM
//! parameters to a table the xenstore ring fills in. `GNTTABOP_setup_table` fills the frame list
//! its structure names through a guest handle ([`Arg::BufferWithHandle`]).
//!
//! Every call is decoded as Xen's handler reads its registers, from the handlers' prototypes
//! (`do_grant_table_op(cmd, uop, count)`, `do_vcpu_op(cmd, vcpuid, arg)`, two registers for the
//! others), not from the core's table: a register the handler reads that was not passed reads as
//! 0, as it would on hardware, and is a violation; so is a register passed that the handler does
//! not read. The handlers' own argument checks follow Xen 4.17: `count != 1` for
//! `GNTTABOP_query_size`/`setup_table` is `-EINVAL`, as is a negative count or continuation bits
//! on any grant-table sub-op; `XENVER_get_features` beyond submap 0 and `XENVER_pagesize` with a
//! handle are `-EINVAL`; HVM parameters at or beyond `HVM_NR_PARAMS` (39) are `-EINVAL`;
//! `VCPUOP_register_vcpu_info` with an offset past the page or unaligned is `-ENXIO`, and a
//! second registration `-EINVAL`; a NULL or short structure is `-EFAULT`.
//!
//! Misuse is counted in [`HvState::violations`] rather than panicking: a hypercall before a
//! mechanism was chosen, the wrong instruction for the CPU vendor (which would fault), a
//! hypercall page never installed, or a register the handler reads left out (or one it does not
//! read passed).

use std::collections::BTreeMap;

use xen_abi::cpuid::{
    XEN_CPUID_LEAF_HVM_FEATURES, XEN_CPUID_LEAF_HYPERCALL, XEN_CPUID_LEAF_VERSION,
    XEN_CPUID_MAX_NUM_LEAVES, XEN_CPUID_SIGNATURE_EBX, XEN_CPUID_SIGNATURE_ECX,
    XEN_CPUID_SIGNATURE_EDX,
};
use xen_abi::event_channel::*;
use xen_abi::grant_table::{
    GnttabGetVersion, GnttabQuerySize, GnttabSetVersion, GnttabSetupTable, GNTST_GENERAL_ERROR,
    GNTST_OKAY, GNTTABOP_GET_VERSION, GNTTABOP_QUERY_SIZE, GNTTABOP_SETUP_TABLE,
    GNTTABOP_SET_VERSION,
};
use xen_abi::hvm::{
    HvmEvtchnUpcallVector, HvmParam, HVMOP_GET_PARAM, HVMOP_SET_EVTCHN_UPCALL_VECTOR,
    HVMOP_SET_PARAM,
};
use xen_abi::hypercall::{
    HYPERVISOR_EVENT_CHANNEL_OP, HYPERVISOR_GRANT_TABLE_OP, HYPERVISOR_HVM_OP,
    HYPERVISOR_MEMORY_OP, HYPERVISOR_SCHED_OP, HYPERVISOR_VCPU_OP, HYPERVISOR_XEN_VERSION,
};
use xen_abi::memory::{
    AddToPhysmap, XENMAPIDX_GRANT_TABLE_STATUS, XENMAPSPACE_GRANT_TABLE, XENMAPSPACE_SHARED_INFO,
    XENMEM_ADD_TO_PHYSMAP,
};
use xen_abi::sched::{SchedShutdown, SCHEDOP_SHUTDOWN, SCHEDOP_YIELD, SHUTDOWN_SUSPEND};
use xen_abi::shared_info::{VcpuRegisterVcpuInfo, VCPUOP_REGISTER_VCPU_INFO};
use xen_abi::types::DOMID_SELF;
use xen_abi::unplug::{
    PORT_LOG, PORT_MAGIC, PORT_PROTOCOL_VERSION, PORT_UNPLUG, UNPLUG_MAGIC,
    UNPLUG_MAGIC_BLACKLISTED,
};
use xen_abi::version::{
    FeatureInfo, XENVER_EXTRAVERSION, XENVER_GET_FEATURES, XENVER_PAGESIZE, XENVER_VERSION,
};
use xenpci_core::evtchn::{EventChannelOps, XenErrno};
use xenpci_core::hypervisor::{Arg, HypercallMechanism, Hypervisor, PortIo};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::memory::PAGE_SIZE;
use crate::{evtchn, xenstore, State, Xen};

/// The x86 CPU vendor the model reports in leaf 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vendor {
    /// "GenuineIntel": hypercalls use `VMCALL`.
    Intel,
    /// "AuthenticAMD": hypercalls use `VMMCALL`.
    Amd,
    /// A vendor string the core does not know; only the hypercall page works.
    Other,
}

/// What the platform device (QEMU's Xen platform PCI device) answers on the unplug port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnplugMode {
    /// The protocol is available and the drivers are welcome.
    Available,
    /// The protocol is available, but after registration the drivers are blacklisted.
    Blacklisted,
    /// No platform device.
    Absent,
}

/// How the hypervisor level looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HvConfig {
    /// Xen's CPUID base leaf (0x4000_0100 when Viridian occupies 0x4000_0000).
    pub cpuid_base: u32,
    /// `major << 16 | minor`.
    pub version: u32,
    /// The CPU vendor.
    pub vendor: Vendor,
    /// Leaf base+4 EAX (`XEN_HVM_CPUID_*`).
    pub hvm_features: u32,
    /// `XENVER_get_features` submap 0 (`XENFEAT_*` bits).
    pub xen_features: u32,
    /// The first GFN of the platform's window for Xen pages.
    pub window_base: u64,
    /// Frames in that window.
    pub window_frames: u32,
    /// The unplug protocol.
    pub unplug: UnplugMode,
    /// Whether `GNTTABOP_get_version`/`set_version` exist (`ENOSYS` if not).
    pub grant_version_ops: bool,
    /// `XENVER_extraversion` (at most 15 bytes are answered, NUL-padded to 16).
    pub extraversion: &'static str,
}

impl Default for HvConfig {
    fn default() -> Self {
        HvConfig {
            cpuid_base: 0x4000_0000,
            version: 4 << 16 | 17,
            vendor: Vendor::Intel,
            // VCPU_ID_PRESENT | DOMID_PRESENT | UPCALL_VECTOR
            hvm_features: (1 << 3) | (1 << 4) | (1 << 6),
            // XENFEAT_auto_translated_physmap | XENFEAT_hvm_callback_vector | hvm_safe_pvclock
            xen_features: (1 << 2) | (1 << 8) | (1 << 9),
            window_base: 0xf_0000,
            window_frames: 64,
            unplug: UnplugMode::Available,
            grant_version_ops: true,
            extraversion: ".7-sim",
        }
    }
}

/// What happens when the guest asks to be suspended (`SCHEDOP_shutdown(SHUTDOWN_suspend)`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SuspendOutcome {
    /// The suspend was cancelled: the guest continues in the same domain (returns 1).
    #[default]
    Cancelled,
    /// The guest was saved and restored into a new domain (returns 0): every event channel is
    /// closed, the FIFO ABI is reset, and xenstored has forgotten its watches and transactions.
    Resumed,
}

/// The hypervisor-level state the guest has set up, for inspection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HvState {
    /// The mechanism the platform was told to use.
    pub mechanism: Option<HypercallMechanism>,
    /// Where Xen wrote the hypercall page (through the MSR).
    pub hypercall_page: Option<u64>,
    /// MSR writes, in order.
    pub msr_writes: Vec<(u32, u64)>,
    /// Hypercalls made, in order: (op, cmd) (the sub-op register; 0 if it was not a number).
    pub calls: Vec<(u32, u64)>,
    /// Misuse noticed (see the module documentation).
    pub violations: Vec<String>,
    /// HVM parameters.
    pub params: BTreeMap<u32, u64>,
    /// Per-vCPU upcall vectors set.
    pub upcall_vectors: BTreeMap<u32, u8>,
    /// Frames handed out of the window.
    pub window_used: u32,
    /// Product number written to the unplug port.
    pub unplug_product: Option<u16>,
    /// Build number written to the unplug port.
    pub unplug_build: Option<u32>,
    /// Devices unplugged (the `UnplugFlags` bits written).
    pub unplugged: Option<u16>,
    /// Bytes logged through the log port.
    pub log: Vec<u8>,
    /// Shutdown reasons requested.
    pub shutdowns: Vec<u32>,
    /// What a suspend request does.
    pub suspend_outcome: SuspendOutcome,
    /// The grant-table version in force.
    pub grant_version: u32,
    /// `vcpu_info` areas placed with `VCPUOP_register_vcpu_info`: vCPU → (GFN, offset).
    pub vcpu_info: BTreeMap<u32, (u64, u32)>,
}

/// The hypervisor as the guest's platform layer sees it.
#[derive(Clone, Debug)]
pub struct SimHypervisor {
    xen: Xen,
}

impl Xen {
    /// The hypervisor level of the guest (`Hypervisor` + `PortIo`).
    pub fn hypervisor(&self) -> SimHypervisor {
        SimHypervisor { xen: self.clone() }
    }

    /// A copy of the hypervisor-level state.
    pub fn hv_state(&self) -> HvState {
        self.lock().hv.clone()
    }

    /// Chooses what a suspend request does.
    pub fn set_suspend_outcome(&self, outcome: SuspendOutcome) {
        self.with(|s| s.hv.suspend_outcome = outcome);
    }
}

fn le_regs(text: &[u8; 12]) -> [u32; 3] {
    let w = |i: usize| u32::from_le_bytes([text[i], text[i + 1], text[i + 2], text[i + 3]]);
    [w(0), w(4), w(8)]
}

/// Reads a `T` from the argument bytes, runs `f` on it, and writes it back.
fn with_arg<T, R>(arg: &mut [u8], f: impl FnOnce(&mut T) -> Result<R, XenErrno>) -> i64
where
    T: FromBytes + IntoBytes + KnownLayout + Immutable,
    R: Into<i64>,
{
    let Ok(mut value) = T::read_from_bytes(arg) else {
        return -i64::from(XenErrno::EFAULT.0);
    };
    match f(&mut value) {
        Ok(r) => {
            arg.copy_from_slice(value.as_bytes());
            r.into()
        }
        Err(e) => -i64::from(e.0),
    }
}

impl SimHypervisor {
    fn violation(&self, what: String) {
        self.xen.with(|s| s.hv.violations.push(what));
    }

    fn check_mechanism(&self) -> bool {
        let s = self.xen.lock();
        let vendor = s.config.hv.vendor;
        let problem = match s.hv.mechanism {
            None => Some("hypercall before a mechanism was chosen".to_owned()),
            Some(HypercallMechanism::Vmcall) if vendor != Vendor::Intel => {
                Some("VMCALL on a CPU that is not Intel (#UD)".to_owned())
            }
            Some(HypercallMechanism::Vmmcall) if vendor != Vendor::Amd => {
                Some("VMMCALL on a CPU that is not AMD (#UD)".to_owned())
            }
            Some(HypercallMechanism::HypercallPage { gfn }) if s.hv.hypercall_page != Some(gfn) => {
                Some(format!("hypercall page {gfn:#x} was never installed"))
            }
            _ => None,
        };
        drop(s);
        match problem {
            Some(p) => {
                self.violation(p);
                false
            }
            None => true,
        }
    }

    fn evtchn_op(&self, cmd: u32, arg: &mut [u8]) -> i64 {
        let ops = self.xen.evtchn_ops();
        let ok = |r: Result<(), XenErrno>| r.map(|()| 0i64);
        match cmd {
            EVTCHNOP_ALLOC_UNBOUND => {
                with_arg(arg, |a: &mut EvtchnAllocUnbound| ok(ops.alloc_unbound(a)))
            }
            EVTCHNOP_BIND_INTERDOMAIN => with_arg(arg, |a: &mut EvtchnBindInterdomain| {
                ok(ops.bind_interdomain(a))
            }),
            EVTCHNOP_BIND_VIRQ => with_arg(arg, |a: &mut EvtchnBindVirq| ok(ops.bind_virq(a))),
            EVTCHNOP_SEND => with_arg(arg, |a: &mut EvtchnSend| ok(ops.send(a))),
            EVTCHNOP_CLOSE => with_arg(arg, |a: &mut EvtchnClose| ok(ops.close(a))),
            EVTCHNOP_UNMASK => with_arg(arg, |a: &mut EvtchnUnmask| ok(ops.unmask(a))),
            EVTCHNOP_STATUS => with_arg(arg, |a: &mut EvtchnStatus| ok(ops.status(a))),
            EVTCHNOP_INIT_CONTROL => {
                with_arg(arg, |a: &mut EvtchnInitControl| ok(ops.init_control(a)))
            }
            EVTCHNOP_EXPAND_ARRAY => {
                with_arg(arg, |a: &mut EvtchnExpandArray| ok(ops.expand_array(a)))
            }
            EVTCHNOP_SET_PRIORITY => {
                with_arg(arg, |a: &mut EvtchnSetPriority| ok(ops.set_priority(a)))
            }
            EVTCHNOP_BIND_VCPU => with_arg(arg, |a: &mut EvtchnBindVcpu| ok(ops.bind_vcpu(a))),
            _ => -i64::from(XenErrno::ENOSYS.0),
        }
    }

    /// Decodes the registers as the handler of `op` reads them (see the module docs) and runs
    /// the call.
    fn dispatch(&self, op: u32, args: &mut [Arg<'_>; 5]) -> i64 {
        let enosys = -i64::from(XenErrno::ENOSYS.0);
        let efault = -i64::from(XenErrno::EFAULT.0);
        let einval = -i64::from(XenErrno::EINVAL.0);
        let arity = match op {
            HYPERVISOR_GRANT_TABLE_OP | HYPERVISOR_VCPU_OP => 3,
            HYPERVISOR_EVENT_CHANNEL_OP
            | HYPERVISOR_MEMORY_OP
            | HYPERVISOR_HVM_OP
            | HYPERVISOR_XEN_VERSION
            | HYPERVISOR_SCHED_OP => 2,
            _ => return enosys,
        };
        for (i, arg) in args.iter().enumerate() {
            if i < arity && *arg == Arg::Unused {
                self.violation(format!(
                    "hypercall {op}: register {} is read by Xen but was not passed",
                    i + 1
                ));
            } else if i >= arity && *arg != Arg::Unused {
                self.violation(format!(
                    "hypercall {op}: register {} is passed but Xen does not read it",
                    i + 1
                ));
            }
        }
        let [cmd, second, third, ..] = args;
        let Some(cmd) = cmd.scalar() else {
            self.violation(format!("hypercall {op}: an address as the sub-op"));
            return einval;
        };
        let Ok(cmd32) = u32::try_from(cmd) else {
            return enosys;
        };
        match op {
            HYPERVISOR_EVENT_CHANNEL_OP => match second {
                Arg::Buffer(arg) => self.evtchn_op(cmd32, arg),
                _ => efault,
            },
            HYPERVISOR_MEMORY_OP => {
                // Bits 6 and up of the command are the continuation's start extent.
                if cmd32 != XENMEM_ADD_TO_PHYSMAP {
                    return enosys;
                }
                let Arg::Buffer(arg) = second else {
                    return efault;
                };
                with_arg(arg, |a: &mut AddToPhysmap| {
                    self.xen.with(|s| add_to_physmap(s, a)).map(|()| 0i64)
                })
            }
            HYPERVISOR_GRANT_TABLE_OP => {
                // do_grant_table_op: a negative count, then continuation bits on a sub-op
                // that has none.
                let count = third.scalar().unwrap_or(u64::MAX) as u32;
                if (count as i32) < 0 || cmd32 & !0x7f != 0 {
                    return einval;
                }
                match second {
                    Arg::Buffer(arg) => self.xen.with(|s| grant_op(s, cmd32, count, arg)),
                    Arg::BufferWithHandle {
                        arg,
                        handle_offset,
                        buffer,
                    } if cmd32 == GNTTABOP_SETUP_TABLE => {
                        if count != 1 {
                            return einval;
                        }
                        self.xen
                            .with(|s| setup_table(s, arg, *handle_offset, buffer))
                    }
                    _ => efault,
                }
            }
            HYPERVISOR_HVM_OP => match second {
                Arg::Buffer(arg) => self.xen.with(|s| hvm_op(s, cmd32, arg)),
                _ => efault,
            },
            HYPERVISOR_XEN_VERSION => {
                let s = self.xen.lock();
                match (cmd32, second) {
                    // The handle is not read.
                    (XENVER_VERSION, _) => i64::from(s.config.hv.version),
                    (XENVER_PAGESIZE, Arg::Null | Arg::Unused) => PAGE_SIZE as i64,
                    (XENVER_PAGESIZE, _) => einval,
                    (XENVER_EXTRAVERSION, Arg::Buffer(out)) => {
                        let mut text = [0u8; 16];
                        let extra = s.config.hv.extraversion.as_bytes();
                        let n = extra.len().min(15);
                        text[..n].copy_from_slice(&extra[..n]);
                        match out.get_mut(..16) {
                            Some(out) => {
                                out.copy_from_slice(&text);
                                0
                            }
                            None => efault,
                        }
                    }
                    (XENVER_GET_FEATURES, Arg::Buffer(arg)) => {
                        with_arg(arg, |a: &mut FeatureInfo| {
                            if a.submap_idx != 0 {
                                return Err(XenErrno::EINVAL);
                            }
                            a.submap = s.config.hv.xen_features;
                            Ok(0i64)
                        })
                    }
                    (XENVER_EXTRAVERSION | XENVER_GET_FEATURES, _) => efault,
                    _ => enosys,
                }
            }
            HYPERVISOR_SCHED_OP => match (cmd32, second) {
                (SCHEDOP_YIELD, _) => 0,
                (SCHEDOP_SHUTDOWN, Arg::Buffer(arg)) => with_arg(arg, |a: &mut SchedShutdown| {
                    Ok(self.xen.with(|s| shutdown(s, a.reason)))
                }),
                (SCHEDOP_SHUTDOWN, _) => efault,
                _ => enosys,
            },
            HYPERVISOR_VCPU_OP => {
                let vcpu = second.scalar();
                match (vcpu, third) {
                    (Some(vcpu), Arg::Buffer(arg)) => self.vcpu_op(cmd32, vcpu, arg),
                    (None, _) => {
                        self.violation("vcpu_op: an address as the vCPU id".to_owned());
                        efault
                    }
                    _ => efault,
                }
            }
            _ => enosys,
        }
    }

    fn vcpu_op(&self, cmd: u32, vcpu: u64, arg: &mut [u8]) -> i64 {
        if cmd != VCPUOP_REGISTER_VCPU_INFO {
            return -i64::from(XenErrno::ENOSYS.0);
        }
        self.xen.with(|s| {
            with_arg(arg, |a: &mut VcpuRegisterVcpuInfo| {
                let vcpu = u32::try_from(vcpu).map_err(|_| XenErrno::ENOENT)?;
                if vcpu >= s.config.vcpus {
                    return Err(XenErrno::ENOENT);
                }
                // map_vcpu_info: inside the page and aligned, else ENXIO; once per vCPU.
                let size = size_of::<xen_abi::shared_info::VcpuInfo>();
                if a.offset as usize > PAGE_SIZE - size || a.offset % 8 != 0 {
                    return Err(XenErrno::ENXIO);
                }
                if s.hv.vcpu_info.contains_key(&vcpu) {
                    return Err(XenErrno::EINVAL);
                }
                s.hv.vcpu_info.insert(vcpu, (a.mfn, a.offset));
                Ok(0i64)
            })
        })
    }
}

/// `GNTTABOP_setup_table` for this domain: grows the table to `nr_frames` (up to the maximum)
/// and writes the frames' GFNs into the list the structure's handle names.
fn setup_table(s: &mut State, arg: &mut [u8], handle_offset: usize, list: &mut [u8]) -> i64 {
    let Ok(mut a) = GnttabSetupTable::read_from_bytes(arg) else {
        return -i64::from(XenErrno::EFAULT.0);
    };
    // The handle the platform wrote must sit in the structure's `frame_list` field, and name
    // room for `nr_frames` entries (guest_handle_okay).
    let field = core::mem::offset_of!(GnttabSetupTable, frame_list);
    if handle_offset != field || list.len() < a.nr_frames as usize * 8 {
        s.hv.violations.push(format!(
            "setup_table: handle at byte {handle_offset} naming {} bytes for {} frames",
            list.len(),
            a.nr_frames
        ));
        return -i64::from(XenErrno::EFAULT.0);
    }
    if a.dom != DOMID_SELF && a.dom != s.config.guest_domid {
        a.status = xen_abi::grant_table::GNTST_BAD_DOMAIN;
    } else if a.nr_frames > s.config.max_grant_frames
        || s.grants.setup(&mut s.mem, a.nr_frames).is_err()
    {
        a.status = GNTST_GENERAL_ERROR;
    } else {
        for (out, gfn) in list.chunks_exact_mut(8).zip(s.grants.frames()) {
            out.copy_from_slice(&gfn.to_le_bytes());
        }
        a.status = GNTST_OKAY;
    }
    // Only status is written back (`__copy_field_to_guest`); keep the platform's handle.
    let mut out = a;
    out.frame_list = GnttabSetupTable::read_from_bytes(arg).map_or(0, |o| o.frame_list);
    arg.copy_from_slice(out.as_bytes());
    0
}

fn add_to_physmap(s: &mut State, a: &AddToPhysmap) -> Result<(), XenErrno> {
    if a.domid != DOMID_SELF && a.domid != s.config.guest_domid {
        return Err(XenErrno::EPERM);
    }
    match a.space {
        XENMAPSPACE_SHARED_INFO => {
            if a.idx != 0 {
                return Err(XenErrno::EINVAL);
            }
            let from = s.evtchn.shared_info_gfn;
            move_page(s, from, a.gpfn);
            s.evtchn.shared_info_gfn = a.gpfn;
            Ok(())
        }
        XENMAPSPACE_GRANT_TABLE => {
            if a.idx & XENMAPIDX_GRANT_TABLE_STATUS != 0 {
                return Err(XenErrno::EINVAL);
            }
            let idx = u32::try_from(a.idx).map_err(|_| XenErrno::EINVAL)?;
            s.grants
                .setup(&mut s.mem, idx + 1)
                .map_err(|_| XenErrno::EINVAL)?;
            let from = s.grants.frames()[idx as usize];
            move_page(s, from, a.gpfn);
            s.grants.move_frame(idx, a.gpfn);
            Ok(())
        }
        _ => Err(XenErrno::ENOSYS),
    }
}

/// Makes the page at `from` appear at `to` instead (whatever was at `to` is replaced).
fn move_page(s: &mut State, from: u64, to: u64) {
    if from == to {
        return;
    }
    let page = s.mem.page(from).copied().unwrap_or([0; PAGE_SIZE]);
    s.mem.populate(to);
    let _ = s.mem.write(to, 0, &page);
    s.mem.depopulate(from);
}

fn grant_op(s: &mut State, cmd: u32, count: u32, arg: &mut [u8]) -> i64 {
    let enosys = -i64::from(XenErrno::ENOSYS.0);
    match cmd {
        // gnttab_query_size: exactly one structure (set/get_version do not read `count`).
        GNTTABOP_QUERY_SIZE if count != 1 => -i64::from(XenErrno::EINVAL.0),
        GNTTABOP_QUERY_SIZE => with_arg(arg, |a: &mut GnttabQuerySize| {
            a.nr_frames = s.grants.frames().len() as u32;
            a.max_nr_frames = s.config.max_grant_frames;
            a.status = GNTST_OKAY;
            Ok(0i64)
        }),
        GNTTABOP_GET_VERSION if s.config.hv.grant_version_ops => {
            let version = s.hv.grant_version.max(1);
            with_arg(arg, |a: &mut GnttabGetVersion| {
                a.version = version;
                Ok(0i64)
            })
        }
        GNTTABOP_SET_VERSION if s.config.hv.grant_version_ops => {
            with_arg(arg, |a: &mut GnttabSetVersion| match a.version {
                1 | 2 => {
                    s.hv.grant_version = a.version;
                    Ok(0i64)
                }
                _ => Err(XenErrno::EINVAL),
            })
        }
        _ => enosys,
    }
}

fn hvm_op(s: &mut State, cmd: u32, arg: &mut [u8]) -> i64 {
    match cmd {
        HVMOP_GET_PARAM | HVMOP_SET_PARAM => with_arg(arg, |a: &mut HvmParam| {
            if a.domid != DOMID_SELF && a.domid != s.config.guest_domid {
                return Err(XenErrno::EPERM);
            }
            // HVM_NR_PARAMS in Xen 4.17.
            if a.index >= 39 {
                return Err(XenErrno::EINVAL);
            }
            if cmd == HVMOP_GET_PARAM {
                a.value = s.hv.params.get(&a.index).copied().unwrap_or(0);
            } else {
                s.hv.params.insert(a.index, a.value);
            }
            Ok(0i64)
        }),
        HVMOP_SET_EVTCHN_UPCALL_VECTOR => with_arg(arg, |a: &mut HvmEvtchnUpcallVector| {
            if a.vector < 0x10 {
                return Err(XenErrno::EINVAL);
            }
            if a.vcpu >= s.config.vcpus {
                return Err(XenErrno::ENOENT);
            }
            s.hv.upcall_vectors.insert(a.vcpu, a.vector);
            Ok(0i64)
        }),
        _ => -i64::from(XenErrno::ENOSYS.0),
    }
}

fn shutdown(s: &mut State, reason: u32) -> i64 {
    s.hv.shutdowns.push(reason);
    if reason != SHUTDOWN_SUSPEND {
        return 0;
    }
    match s.hv.suspend_outcome {
        SuspendOutcome::Cancelled => 1,
        SuspendOutcome::Resumed => {
            let guest = s.config.guest_domid;
            evtchn::reset_guest(s);
            s.store.forget_domain_state(guest);
            // The toolstack gives the new domain's store ring a new event channel.
            xenstore::reconnect_guest_rings(s);
            s.hv.vcpu_info.clear();
            xenstore::service_rings(s);
            0
        }
    }
}

impl PortIo for SimHypervisor {
    fn inb(&self, port: u16) -> u8 {
        let s = self.xen.lock();
        match (s.config.hv.unplug, port) {
            (UnplugMode::Absent, _) => 0xff,
            (_, PORT_PROTOCOL_VERSION) => 1,
            // Byte reads of 0x10 are the platform flags.
            (_, PORT_MAGIC) => 0,
            _ => 0xff,
        }
    }

    fn inw(&self, port: u16) -> u16 {
        let s = self.xen.lock();
        match (s.config.hv.unplug, port) {
            (UnplugMode::Absent, _) => 0xffff,
            (UnplugMode::Blacklisted, PORT_MAGIC) if s.hv.unplug_build.is_some() => {
                UNPLUG_MAGIC_BLACKLISTED
            }
            (_, PORT_MAGIC) => UNPLUG_MAGIC,
            (_, PORT_LOG) => 1,
            _ => 0xffff,
        }
    }

    fn inl(&self, _port: u16) -> u32 {
        0xffff_ffff
    }

    fn outb(&self, port: u16, value: u8) {
        self.xen.with(|s| {
            if s.config.hv.unplug != UnplugMode::Absent && port == PORT_LOG {
                s.hv.log.push(value);
            }
        })
    }

    fn outw(&self, port: u16, value: u16) {
        self.xen.with(|s| {
            if s.config.hv.unplug == UnplugMode::Absent {
                return;
            }
            match port {
                PORT_UNPLUG => s.hv.unplugged = Some(s.hv.unplugged.unwrap_or(0) | value),
                PORT_LOG => s.hv.unplug_product = Some(value),
                _ => {}
            }
        })
    }

    fn outl(&self, port: u16, value: u32) {
        self.xen.with(|s| {
            if s.config.hv.unplug != UnplugMode::Absent && port == PORT_MAGIC {
                s.hv.unplug_build = Some(value);
            }
        })
    }
}

impl Hypervisor for SimHypervisor {
    fn cpuid(&self, leaf: u32, _subleaf: u32) -> [u32; 4] {
        let s = self.xen.lock();
        let hv = s.config.hv;
        if leaf == 0 {
            let [b, d, c] = le_regs(match hv.vendor {
                Vendor::Intel => b"GenuineIntel",
                Vendor::Amd => b"AuthenticAMD",
                Vendor::Other => b"SomeCPUVndor",
            });
            return [0xd, b, c, d];
        }
        let base = hv.cpuid_base;
        if leaf == 0x4000_0000 && base != leaf {
            // Viridian first.
            let [b, c, d] = le_regs(b"Microsoft Hv");
            return [0x4000_0006, b, c, d];
        }
        match leaf.checked_sub(base) {
            Some(0) => [
                base + XEN_CPUID_MAX_NUM_LEAVES,
                XEN_CPUID_SIGNATURE_EBX,
                XEN_CPUID_SIGNATURE_ECX,
                XEN_CPUID_SIGNATURE_EDX,
            ],
            Some(XEN_CPUID_LEAF_VERSION) => [hv.version, 0, 0, 0],
            Some(XEN_CPUID_LEAF_HYPERCALL) => [1, 0x4000_0000, 0, 0],
            Some(XEN_CPUID_LEAF_HVM_FEATURES) => {
                [hv.hvm_features, 0, u32::from(s.config.guest_domid), 0]
            }
            _ => [0; 4],
        }
    }

    fn write_msr(&self, msr: u32, value: u64) {
        self.xen.with(|s| {
            s.hv.msr_writes.push((msr, value));
            if msr != 0x4000_0000 {
                s.hv.violations.push(format!("write to MSR {msr:#x}"));
                return;
            }
            let gfn = value >> 12;
            let index = value & 0xfff;
            if index != 0 || !s.mem.is_populated(gfn) {
                s.hv.violations
                    .push(format!("bad hypercall page MSR value {value:#x}"));
                return;
            }
            // Xen fills the page with one 32-byte stub per hypercall: mov eax, op; vmcall; ret.
            let mut page = [0xccu8; PAGE_SIZE];
            for op in 0..(PAGE_SIZE / 32) as u32 {
                let at = op as usize * 32;
                page[at] = 0xb8;
                page[at + 1..at + 5].copy_from_slice(&op.to_le_bytes());
                page[at + 5..at + 9].copy_from_slice(&[0x0f, 0x01, 0xc1, 0xc3]);
            }
            let _ = s.mem.write(gfn, 0, &page);
            s.hv.hypercall_page = Some(gfn);
        })
    }

    fn set_hypercall_mechanism(&self, mechanism: HypercallMechanism) {
        self.xen.with(|s| s.hv.mechanism = Some(mechanism));
    }

    fn hypercall(&self, op: u32, args: &mut [Arg<'_>; 5]) -> i64 {
        let cmd = args[0].scalar().unwrap_or(0);
        self.xen.with(|s| s.hv.calls.push((op, cmd)));
        if !self.check_mechanism() {
            return -i64::from(XenErrno::ENOSYS.0);
        }
        self.dispatch(op, args)
    }

    fn allocate_frames(&self, count: u32) -> Option<u64> {
        self.xen.with(|s| {
            let hv = s.config.hv;
            let used = s.hv.window_used;
            if count == 0 || used.checked_add(count)? > hv.window_frames {
                return None;
            }
            s.hv.window_used += count;
            Some(hv.window_base + u64::from(used))
        })
    }

    fn allocate_hypercall_page(&self) -> Option<u64> {
        Some(self.xen.with(|s| s.mem.alloc()))
    }
}

const WC_VERSION_OFF: usize = core::mem::offset_of!(xen_abi::shared_info::SharedInfo, wc_version);
const WC_SEC_OFF: usize = core::mem::offset_of!(xen_abi::shared_info::SharedInfo, wc_sec);
const WC_NSEC_OFF: usize = core::mem::offset_of!(xen_abi::shared_info::SharedInfo, wc_nsec);
const WC_SEC_HI_OFF: usize = core::mem::offset_of!(xen_abi::shared_info::SharedInfo, wc_sec_hi);
const TIME_OFF: usize = core::mem::offset_of!(xen_abi::shared_info::VcpuInfo, time);

impl Xen {
    /// Publishes the wall clock in the shared-info page (`wc_version` odd while updating).
    pub fn set_wall_clock(&self, sec: u64, nsec: u32) {
        self.with(|s| {
            let gfn = s.evtchn.shared_info_gfn;
            let mem = &mut s.mem;
            let v = mem.read_u32(gfn, WC_VERSION_OFF).unwrap_or(0);
            let odd = v | 1;
            let _ = mem.write_u32(gfn, WC_VERSION_OFF, odd);
            let _ = mem.write_u32(gfn, WC_SEC_OFF, sec as u32);
            let _ = mem.write_u32(gfn, WC_SEC_HI_OFF, (sec >> 32) as u32);
            let _ = mem.write_u32(gfn, WC_NSEC_OFF, nsec);
            let _ = mem.write_u32(gfn, WC_VERSION_OFF, odd.wrapping_add(1));
        })
    }

    /// Publishes `vcpu`'s time record (its `version` field is managed here: even when done).
    pub fn set_vcpu_time(&self, vcpu: u32, time: xen_abi::shared_info::VcpuTimeInfo) {
        self.with(|s| {
            let gfn = s.evtchn.shared_info_gfn;
            let off = evtchn::vcpu_info_offset(vcpu) + TIME_OFF;
            let v = s.mem.read_u32(gfn, off).unwrap_or(0);
            let mut t = time;
            t.version = (v | 1).wrapping_add(1);
            let _ = s.mem.write(gfn, off, t.as_bytes());
        })
    }

    /// Leaves the wall clock's version odd, as if Xen were preempted mid-update (readers must
    /// retry, boundedly); [`Xen::set_wall_clock`] ends it.
    pub fn tear_wall_clock(&self) {
        self.with(|s| {
            let gfn = s.evtchn.shared_info_gfn;
            let v = s.mem.read_u32(gfn, WC_VERSION_OFF).unwrap_or(0);
            let _ = s.mem.write_u32(gfn, WC_VERSION_OFF, v | 1);
        })
    }
}

impl xenpci_core::hypervisor::shared_info::SharedMemory for crate::SimSharedInfo {
    fn read_bytes(&self, offset: usize, out: &mut [u8]) {
        let s = self.xen().lock();
        if s.mem.read(s.evtchn.shared_info_gfn, offset, out).is_err() {
            out.fill(0);
        }
    }

    fn load_u32_acquire(&self, offset: usize) -> u32 {
        let s = self.xen().lock();
        s.mem
            .read_u32(s.evtchn.shared_info_gfn, offset)
            .unwrap_or(0)
    }
}
