//! The fake platform: a CPUID table, MSR and port logs, and a small Xen behind the
//! hypercalls that decodes the registers as Xen's handlers do.

use super::*;

pub(super) const EINVAL: i64 = -22;
pub(super) const ENOSYS: i64 = -38;

pub(super) fn vendor_regs(s: &[u8; 12]) -> [u32; 4] {
    let w = |i: usize| u32::from_le_bytes([s[i], s[i + 1], s[i + 2], s[i + 3]]);
    [0xd, w(0), w(8), w(4)]
}

/// A model of the platform: CPUID table, MSR and port logs, and a tiny Xen behind hypercalls.
#[derive(Debug, Default)]
pub(super) struct FakeXen {
    pub(super) cpuid: BTreeMap<(u32, u32), [u32; 4]>,
    pub(super) msrs: RefCell<Vec<(u32, u64)>>,
    pub(super) mechanism: Cell<Option<HypercallMechanism>>,
    pub(super) calls: RefCell<Vec<(u32, u64)>>,
    pub(super) physmap: RefCell<Vec<(u32, u64, u64)>>,
    pub(super) params: RefCell<BTreeMap<u32, u64>>,
    pub(super) upcall_vectors: RefCell<Vec<(u32, u8)>>,
    pub(super) gnttab_version: Cell<u32>,
    pub(super) gnttab_max: u32,
    pub(super) gnttab_status: i16,
    pub(super) has_get_version: bool,
    pub(super) refuse_v1: bool,
    pub(super) features: u32,
    pub(super) fail: RefCell<BTreeMap<(u32, u64), i64>>,
    pub(super) fail_physmap_idx: Option<u64>,
    pub(super) window_next: Cell<u64>,
    pub(super) window_end: u64,
    pub(super) hypercall_page: Option<u64>,
    pub(super) handles: RefCell<Vec<(usize, usize)>>,
    pub(super) grant_frames: Vec<u64>,
    pub(super) vcpu_info: RefCell<Vec<(u32, u64, u32)>>,
    pub(super) abi: AbiLog,
}

/// Broken rules of Xen's hypercall ABI (see [`FakeXen::decode`]); a test that expects none
/// fails when the fake is dropped with some.
#[derive(Debug, Default)]
pub(super) struct AbiLog {
    pub(super) violations: RefCell<Vec<std::string::String>>,
    pub(super) expect_violations: bool,
}

impl Drop for AbiLog {
    fn drop(&mut self) {
        if !self.expect_violations && !std::thread::panicking() {
            assert!(
                self.violations.borrow().is_empty(),
                "hypercall ABI violations: {:?}",
                self.violations.borrow()
            );
        }
    }
}

/// How many registers each hypercall's handler reads, from its prototype in Xen 4.17
/// (`do_xen_version(cmd, arg)`, `do_grant_table_op(cmd, uop, count)`, `do_vcpu_op(cmd, vcpuid,
/// arg)`, …). Written from Xen's sources, not from the core's table.
pub(super) fn handler_arity(op: u32) -> Option<usize> {
    match op {
        HYPERVISOR_XEN_VERSION
        | HYPERVISOR_MEMORY_OP
        | HYPERVISOR_HVM_OP
        | HYPERVISOR_SCHED_OP
        | HYPERVISOR_EVENT_CHANNEL_OP => Some(2),
        HYPERVISOR_GRANT_TABLE_OP | HYPERVISOR_VCPU_OP => Some(3),
        _ => None,
    }
}

impl FakeXen {
    pub(super) fn new() -> Self {
        let mut f = FakeXen {
            gnttab_version: Cell::new(1),
            gnttab_max: 4,
            has_get_version: true,
            window_next: Cell::new(0xf000),
            window_end: 0xf010,
            hypercall_page: Some(0x1234),
            features: Features::HVM_CALLBACK_VECTOR.bits(),
            ..FakeXen::default()
        };
        f.set_xen(
            0x4000_0000,
            4,
            0x0004_0013,
            HvmCpuidFeatures::UPCALL_VECTOR.bits(),
        );
        f.cpuid.insert((0, 0), vendor_regs(b"GenuineIntel"));
        f
    }

    pub(super) fn set_xen(&mut self, base: u32, max_off: u32, version: u32, hvm: u32) {
        self.cpuid.insert(
            (base, 0),
            [
                base + max_off,
                XEN_CPUID_SIGNATURE_EBX,
                XEN_CPUID_SIGNATURE_ECX,
                XEN_CPUID_SIGNATURE_EDX,
            ],
        );
        self.cpuid.insert((base + 1, 0), [version, 0, 0, 0]);
        self.cpuid.insert((base + 2, 0), [1, 0x4000_0000, 0, 0]);
        self.cpuid.insert((base + 4, 0), [hvm, 3, 7, 0]);
    }

    pub(super) fn violation(&self, what: std::string::String) {
        self.abi.violations.borrow_mut().push(what);
    }

    /// Checks the registers as Xen's handler sees them: the registers it reads must be passed
    /// (a missing one reads as 0 on real hardware, and is a violation here), the ones it does not
    /// read must be [`Arg::Unused`]; then applies the handler's own argument checks (`count` of
    /// grant-table sub-ops) and runs the call.
    pub(super) fn decode(&self, op: u32, args: &mut [Arg<'_>; 5]) -> i64 {
        let Some(arity) = handler_arity(op) else {
            self.calls
                .borrow_mut()
                .push((op, args[0].scalar().unwrap_or(0)));
            return ENOSYS;
        };
        for (i, arg) in args.iter().enumerate() {
            match (i < arity, arg) {
                (true, Arg::Unused) => self.violation(std::format!(
                    "hypercall {op}: register {} not passed",
                    i + 1
                )),
                (false, a) if *a != Arg::Unused => {
                    self.violation(std::format!("hypercall {op}: extra register {}", i + 1))
                }
                _ => {}
            }
        }
        let [cmd, second, third, ..] = args;
        let Some(cmd) = cmd.scalar() else {
            self.violation(std::format!("hypercall {op}: a buffer as the sub-op"));
            return -14;
        };
        if op == HYPERVISOR_GRANT_TABLE_OP {
            // do_grant_table_op: a negative count, or continuation bits on these sub-ops.
            let count = third.scalar().unwrap_or(u64::MAX) as u32;
            if (count as i32) < 0 || cmd >> 12 != 0 {
                return EINVAL;
            }
            // gnttab_query_size and gnttab_setup_table: exactly one structure.
            if matches!(cmd as u32, GNTTABOP_QUERY_SIZE | GNTTABOP_SETUP_TABLE) && count != 1 {
                return EINVAL;
            }
        }
        let arg = if op == HYPERVISOR_VCPU_OP {
            let Some(vcpu) = second.scalar() else {
                return -14;
            };
            let Arg::Buffer(bytes) = third else {
                return -14;
            };
            return self.vcpu_op(cmd, vcpu, bytes);
        } else {
            second
        };
        match arg {
            Arg::Buffer(bytes) => self.run(op, cmd, bytes),
            Arg::BufferWithHandle {
                arg,
                handle_offset,
                buffer,
            } => {
                self.handles
                    .borrow_mut()
                    .push((*handle_offset, buffer.len()));
                self.run_with_buffer(op, cmd, arg, *handle_offset, buffer)
            }
            // XENVER_version does not follow its handle.
            Arg::Null | Arg::Unused | Arg::Value(_) => {
                if op == HYPERVISOR_XEN_VERSION && cmd == u64::from(XENVER_VERSION) {
                    self.calls.borrow_mut().push((op, cmd));
                    return 0x0004_0013;
                }
                self.calls.borrow_mut().push((op, cmd));
                -14
            }
        }
    }

    pub(super) fn vcpu_op(&self, cmd: u64, vcpu: u64, arg: &mut [u8]) -> i64 {
        self.calls.borrow_mut().push((HYPERVISOR_VCPU_OP, cmd));
        if cmd != u64::from(VCPUOP_REGISTER_VCPU_INFO) {
            return ENOSYS;
        }
        let Ok(a) = VcpuRegisterVcpuInfo::read_from_bytes(arg) else {
            return -14;
        };
        self.vcpu_info
            .borrow_mut()
            .push((vcpu as u32, a.mfn, a.offset));
        0
    }

    pub(super) fn run_with_buffer(
        &self,
        op: u32,
        cmd: u64,
        arg: &mut [u8],
        handle_offset: usize,
        buffer: &mut [u8],
    ) -> i64 {
        self.calls.borrow_mut().push((op, cmd));
        if (op, cmd) != (HYPERVISOR_GRANT_TABLE_OP, u64::from(GNTTABOP_SETUP_TABLE)) {
            return ENOSYS;
        }
        let Ok(mut a) = GnttabSetupTable::read_from_bytes(arg) else {
            return -14;
        };
        if handle_offset != core::mem::offset_of!(GnttabSetupTable, frame_list)
            || buffer.len() < a.nr_frames as usize * 8
        {
            self.violation(std::format!("setup_table: frame list at {handle_offset}"));
            return -14;
        }
        if a.nr_frames > self.gnttab_max {
            a.status = -1;
        } else {
            for (i, out) in buffer
                .chunks_exact_mut(8)
                .take(a.nr_frames as usize)
                .enumerate()
            {
                let frame = self
                    .grant_frames
                    .get(i)
                    .copied()
                    .unwrap_or(0x5000 + i as u64);
                out.copy_from_slice(&frame.to_le_bytes());
            }
            a.status = 0;
        }
        a.frame_list = 0xdead_0000;
        arg.copy_from_slice(a.as_bytes());
        0
    }

    pub(super) fn run(&self, op: u32, cmd: u64, arg: &mut [u8]) -> i64 {
        self.calls.borrow_mut().push((op, cmd));
        if let Some(&r) = self.fail.borrow().get(&(op, cmd)) {
            return r;
        }
        match (op, cmd as u32) {
            (HYPERVISOR_MEMORY_OP, XENMEM_ADD_TO_PHYSMAP) => {
                let a = AddToPhysmap::read_from_bytes(arg).unwrap();
                if Some(a.idx) == self.fail_physmap_idx && a.space == XENMAPSPACE_GRANT_TABLE {
                    return EINVAL;
                }
                if a.space == XENMAPSPACE_GRANT_TABLE && a.idx >= u64::from(self.gnttab_max) {
                    return EINVAL;
                }
                self.physmap.borrow_mut().push((a.space, a.idx, a.gpfn));
                0
            }
            (HYPERVISOR_GRANT_TABLE_OP, GNTTABOP_QUERY_SIZE) => {
                let mut a = GnttabQuerySize::read_from_bytes(arg).unwrap();
                a.nr_frames = 1;
                a.max_nr_frames = self.gnttab_max;
                a.status = self.gnttab_status;
                arg.copy_from_slice(a.as_bytes());
                0
            }
            (HYPERVISOR_GRANT_TABLE_OP, GNTTABOP_GET_VERSION) => {
                if !self.has_get_version {
                    return ENOSYS;
                }
                arg[4..8].copy_from_slice(&self.gnttab_version.get().to_le_bytes());
                0
            }
            (HYPERVISOR_GRANT_TABLE_OP, GNTTABOP_SET_VERSION) => {
                let mut a = GnttabSetVersion::read_from_bytes(arg).unwrap();
                if !self.refuse_v1 {
                    self.gnttab_version.set(a.version);
                }
                a.version = self.gnttab_version.get();
                arg.copy_from_slice(a.as_bytes());
                0
            }
            (HYPERVISOR_HVM_OP, HVMOP_GET_PARAM) => {
                let mut a = HvmParam::read_from_bytes(arg).unwrap();
                a.value = *self.params.borrow().get(&a.index).unwrap_or(&0);
                arg.copy_from_slice(a.as_bytes());
                0
            }
            (HYPERVISOR_HVM_OP, HVMOP_SET_PARAM) => {
                let a = HvmParam::read_from_bytes(arg).unwrap();
                self.params.borrow_mut().insert(a.index, a.value);
                0
            }
            (HYPERVISOR_HVM_OP, HVMOP_SET_EVTCHN_UPCALL_VECTOR) => {
                let a = HvmEvtchnUpcallVector::read_from_bytes(arg).unwrap();
                self.upcall_vectors.borrow_mut().push((a.vcpu, a.vector));
                0
            }
            (HYPERVISOR_SCHED_OP, SCHEDOP_SHUTDOWN) => 1,
            (HYPERVISOR_XEN_VERSION, XENVER_EXTRAVERSION) => {
                let Some(out) = arg.get_mut(..16) else {
                    return -14;
                };
                out.fill(0);
                out[..6].copy_from_slice(b".3-rc1");
                0
            }
            (HYPERVISOR_XEN_VERSION, XENVER_GET_FEATURES) => {
                let mut a = FeatureInfo::read_from_bytes(arg).unwrap();
                a.submap = self.features;
                arg.copy_from_slice(a.as_bytes());
                0
            }
            _ => ENOSYS,
        }
    }
}

impl PortIo for FakeXen {
    fn inb(&self, _: u16) -> u8 {
        0xff
    }
    fn inw(&self, _: u16) -> u16 {
        0xffff
    }
    fn inl(&self, _: u16) -> u32 {
        !0
    }
    fn outb(&self, _: u16, _: u8) {}
    fn outw(&self, _: u16, _: u16) {}
    fn outl(&self, _: u16, _: u32) {}
}

impl Hypervisor for FakeXen {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4] {
        self.cpuid.get(&(leaf, subleaf)).copied().unwrap_or([0; 4])
    }
    fn write_msr(&self, msr: u32, value: u64) {
        self.msrs.borrow_mut().push((msr, value));
    }
    fn set_hypercall_mechanism(&self, mechanism: HypercallMechanism) {
        self.mechanism.set(Some(mechanism));
    }
    fn hypercall(&self, op: u32, args: &mut [Arg<'_>; 5]) -> i64 {
        assert!(self.mechanism.get().is_some(), "hypercall before init");
        self.decode(op, args)
    }
    fn allocate_frames(&self, count: u32) -> Option<u64> {
        let first = self.window_next.get();
        let end = first.checked_add(u64::from(count))?;
        if end > self.window_end {
            return None;
        }
        self.window_next.set(end);
        Some(first)
    }
    fn allocate_hypercall_page(&self) -> Option<u64> {
        self.hypercall_page
    }
}

pub(super) fn ready() -> FakeXen {
    let f = FakeXen::new();
    f.set_hypercall_mechanism(HypercallMechanism::Vmcall);
    f
}
