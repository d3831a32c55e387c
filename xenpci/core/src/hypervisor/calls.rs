//! Every hypercall the core makes, once: the hypercall, its sub-op, and what each of the five
//! argument registers carries, as Xen 4.17's public headers and hypercall handlers define them.
//!
//! The typed wrappers ([`super::gnttab`], [`super::hvm`], [`super::shared_info`],
//! [`super::version`], [`super::sched`], [`crate::evtchn::ops::HypercallEventChannels`]) issue their
//! calls through [`invoke`], which checks the arguments against the entry before anything reaches
//! the platform: a missing, extra or wrongly sized argument is [`HvError::Arity`], never a
//! hypercall. The models (xen-sim and the test fakes) check the same calls again from Xen's side,
//! written from the handlers rather than from this table, so a wrong entry fails their tests too.
//!
//! | call | hypercall | register 1 | register 2 | register 3 | Xen's rule on the arguments |
//! |---|---|---|---|---|---|
//! | `XENVER_version` | `xen_version` (17) | cmd 0 | NULL | — | returns `major << 16 \| minor`; the handle is not read |
//! | `XENVER_extraversion` | `xen_version` | cmd 1 | `char[16]` out | — | 16 bytes written |
//! | `XENVER_get_features` | `xen_version` | cmd 6 | `xen_feature_info` in/out | — | `submap_idx` other than 0 is `-EINVAL` |
//! | `GNTTABOP_setup_table` | `grant_table_op` (20) | cmd 2 | `gnttab_setup_table` with a handle to `nr_frames` `xen_pfn_t` | count = 1 | `count != 1` is `-EINVAL` |
//! | `GNTTABOP_query_size` | `grant_table_op` | cmd 6 | `gnttab_query_size` in/out | count = 1 | `count != 1` is `-EINVAL` |
//! | `GNTTABOP_set_version` | `grant_table_op` | cmd 8 | `gnttab_set_version` in/out | count = 1 | Xen does not read `count` for this sub-op (the interface passes the number of structures, 1) |
//! | `GNTTABOP_get_version` | `grant_table_op` | cmd 10 | `gnttab_get_version` in/out | count = 1 | as `set_version` |
//! | `XENMEM_add_to_physmap` | `memory_op` (12) | cmd 7 (extent 0 in bits 6+) | `xen_add_to_physmap` | — | a translated (HVM/PVH) domain only: `-EACCES` otherwise |
//! | `HVMOP_set_param` / `HVMOP_get_param` | `hvm_op` (34) | cmd 0 / 1 | `xen_hvm_param` | — | index below 39 (`HVM_NR_PARAMS`); `-EINVAL` for a domain that is not HVM |
//! | `HVMOP_set_evtchn_upcall_vector` | `hvm_op` | cmd 23 | `xen_hvm_evtchn_upcall_vector` | — | HVM only; vector ≥ 0x10 |
//! | `VCPUOP_register_vcpu_info` | `vcpu_op` (24) | cmd 10 | vCPU id | `vcpu_register_vcpu_info` | once per vCPU; offset inside the page and aligned (`-ENXIO`) |
//! | `SCHEDOP_shutdown` | `sched_op` (29) | cmd 2 | `sched_shutdown` | — | returns 1 when a suspend was cancelled |
//! | `EVTCHNOP_*` (11 sub-ops) | `event_channel_op` (32) | cmd | the sub-op's structure | — | see [`EVTCHN`] |
//!
//! Registers 4 and 5 are unused by every call here.

use core::fmt;
use core::mem::offset_of;

use xen_abi::event_channel::{
    EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindVcpu, EvtchnBindVirq, EvtchnClose,
    EvtchnExpandArray, EvtchnInitControl, EvtchnSend, EvtchnSetPriority, EvtchnStatus,
    EvtchnUnmask, EVTCHNOP_ALLOC_UNBOUND, EVTCHNOP_BIND_INTERDOMAIN, EVTCHNOP_BIND_VCPU,
    EVTCHNOP_BIND_VIRQ, EVTCHNOP_CLOSE, EVTCHNOP_EXPAND_ARRAY, EVTCHNOP_INIT_CONTROL,
    EVTCHNOP_SEND, EVTCHNOP_SET_PRIORITY, EVTCHNOP_STATUS, EVTCHNOP_UNMASK,
};
use xen_abi::grant_table::{
    GnttabGetVersion, GnttabQuerySize, GnttabSetVersion, GnttabSetupTable, GNTTABOP_GET_VERSION,
    GNTTABOP_QUERY_SIZE, GNTTABOP_SETUP_TABLE, GNTTABOP_SET_VERSION,
};
use xen_abi::hvm::{
    HvmEvtchnUpcallVector, HvmParam, HVMOP_GET_PARAM, HVMOP_SET_EVTCHN_UPCALL_VECTOR,
    HVMOP_SET_PARAM,
};
use xen_abi::hypercall::{
    HYPERVISOR_EVENT_CHANNEL_OP, HYPERVISOR_GRANT_TABLE_OP, HYPERVISOR_HVM_OP,
    HYPERVISOR_MEMORY_OP, HYPERVISOR_SCHED_OP, HYPERVISOR_VCPU_OP, HYPERVISOR_XEN_VERSION,
};
use xen_abi::memory::{AddToPhysmap, XENMEM_ADD_TO_PHYSMAP};
use xen_abi::sched::{SchedShutdown, SCHEDOP_SHUTDOWN};
use xen_abi::shared_info::{VcpuRegisterVcpuInfo, VCPUOP_REGISTER_VCPU_INFO};
use xen_abi::version::{FeatureInfo, XENVER_EXTRAVERSION, XENVER_GET_FEATURES, XENVER_VERSION};

use super::{Arg, HvError, Hypervisor, XenErrno};

/// The length of `XENVER_extraversion`'s answer (`xen_extraversion_t`).
pub const EXTRAVERSION_LEN: usize = 16;

/// What one argument register carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Param {
    /// Xen does not read the register: the call passes [`Arg::Unused`].
    Unused,
    /// The sub-op, [`Call::cmd`], as [`Arg::Value`].
    Cmd,
    /// A number, as [`Arg::Value`]; with `exactly`, Xen accepts only that value.
    Value {
        /// What it is.
        meaning: &'static str,
        /// The only value Xen accepts, if there is one.
        exactly: Option<u64>,
    },
    /// A NULL guest handle ([`Arg::Null`]): Xen must not follow it.
    Null,
    /// A guest handle to a structure of `size` bytes ([`Arg::Buffer`]).
    Struct {
        /// The structure.
        name: &'static str,
        /// Its size in bytes.
        size: usize,
    },
    /// A guest handle to a structure of `size` bytes whose field at `handle_offset` is itself a
    /// guest handle, naming an array of `element`-byte items ([`Arg::BufferWithHandle`]).
    StructWithHandle {
        /// The structure.
        name: &'static str,
        /// Its size in bytes.
        size: usize,
        /// The byte offset of the handle field.
        handle_offset: usize,
        /// The size of one array item.
        element: usize,
    },
}

impl Param {
    /// Whether `arg` fits this parameter of `call`.
    pub fn accepts(&self, call: &Call, arg: &Arg<'_>) -> bool {
        match (*self, arg) {
            (Param::Unused, Arg::Unused) | (Param::Null, Arg::Null) => true,
            (Param::Cmd, Arg::Value(v)) => *v == u64::from(call.cmd),
            (Param::Value { exactly, .. }, Arg::Value(v)) => exactly.is_none_or(|e| e == *v),
            (Param::Struct { size, .. }, Arg::Buffer(bytes)) => bytes.len() == size,
            (
                Param::StructWithHandle {
                    size,
                    handle_offset,
                    element,
                    ..
                },
                Arg::BufferWithHandle {
                    arg,
                    handle_offset: offset,
                    buffer,
                },
            ) => {
                arg.len() == size
                    && *offset == handle_offset
                    && handle_offset + 8 <= size
                    && buffer.len().checked_rem(element) == Some(0)
            }
            _ => false,
        }
    }
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Param::Unused => f.write_str("unused"),
            Param::Cmd => f.write_str("the sub-op"),
            Param::Value {
                meaning,
                exactly: Some(v),
            } => write!(f, "{meaning} = {v}"),
            Param::Value { meaning, .. } => f.write_str(meaning),
            Param::Null => f.write_str("NULL"),
            Param::Struct { name, size } => write!(f, "&{name} ({size} bytes)"),
            Param::StructWithHandle { name, size, .. } => {
                write!(f, "&{name} ({size} bytes) naming an array")
            }
        }
    }
}

/// One hypercall the core makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Call {
    /// Xen's name of the sub-op (`GNTTABOP_query_size`).
    pub name: &'static str,
    /// The hypercall (`__HYPERVISOR_*`).
    pub op: u32,
    /// The sub-op, passed in register 1.
    pub cmd: u32,
    /// What the five registers carry.
    pub params: [Param; 5],
}

const fn st<T>(name: &'static str) -> Param {
    Param::Struct {
        name,
        size: size_of::<T>(),
    }
}

/// `cmd, &struct` (the usual two-argument shape).
const fn two<T>(name: &'static str, op: u32, cmd: u32, arg: &'static str) -> Call {
    Call {
        name,
        op,
        cmd,
        params: [
            Param::Cmd,
            st::<T>(arg),
            Param::Unused,
            Param::Unused,
            Param::Unused,
        ],
    }
}

/// `GNTTABOP_*`: `cmd, &struct, count = 1`.
const fn gnttab(name: &'static str, cmd: u32, arg: Param) -> Call {
    Call {
        name,
        op: HYPERVISOR_GRANT_TABLE_OP,
        cmd,
        params: [
            Param::Cmd,
            arg,
            Param::Value {
                meaning: "count",
                exactly: Some(1),
            },
            Param::Unused,
            Param::Unused,
        ],
    }
}

/// `XENVER_version`: the version as `major << 16 | minor` in the return value.
pub const XENVER_VERSION_CALL: Call = Call {
    name: "XENVER_version",
    op: HYPERVISOR_XEN_VERSION,
    cmd: XENVER_VERSION,
    params: [
        Param::Cmd,
        Param::Null,
        Param::Unused,
        Param::Unused,
        Param::Unused,
    ],
};
/// `XENVER_extraversion`: 16 bytes, NUL-padded.
pub const XENVER_EXTRAVERSION_CALL: Call = Call {
    name: "XENVER_extraversion",
    op: HYPERVISOR_XEN_VERSION,
    cmd: XENVER_EXTRAVERSION,
    params: [
        Param::Cmd,
        Param::Struct {
            name: "xen_extraversion_t",
            size: EXTRAVERSION_LEN,
        },
        Param::Unused,
        Param::Unused,
        Param::Unused,
    ],
};
/// `XENVER_get_features`.
pub const XENVER_GET_FEATURES_CALL: Call = two::<FeatureInfo>(
    "XENVER_get_features",
    HYPERVISOR_XEN_VERSION,
    XENVER_GET_FEATURES,
    "xen_feature_info",
);
/// `GNTTABOP_setup_table`: the frames backing the table.
pub const GNTTABOP_SETUP_TABLE_CALL: Call = gnttab(
    "GNTTABOP_setup_table",
    GNTTABOP_SETUP_TABLE,
    Param::StructWithHandle {
        name: "gnttab_setup_table",
        size: size_of::<GnttabSetupTable>(),
        handle_offset: offset_of!(GnttabSetupTable, frame_list),
        element: size_of::<u64>(),
    },
);
/// `GNTTABOP_query_size`.
pub const GNTTABOP_QUERY_SIZE_CALL: Call = gnttab(
    "GNTTABOP_query_size",
    GNTTABOP_QUERY_SIZE,
    st::<GnttabQuerySize>("gnttab_query_size"),
);
/// `GNTTABOP_set_version`.
pub const GNTTABOP_SET_VERSION_CALL: Call = gnttab(
    "GNTTABOP_set_version",
    GNTTABOP_SET_VERSION,
    st::<GnttabSetVersion>("gnttab_set_version"),
);
/// `GNTTABOP_get_version`.
pub const GNTTABOP_GET_VERSION_CALL: Call = gnttab(
    "GNTTABOP_get_version",
    GNTTABOP_GET_VERSION,
    st::<GnttabGetVersion>("gnttab_get_version"),
);
/// `XENMEM_add_to_physmap` (shared-info page and grant frames).
pub const XENMEM_ADD_TO_PHYSMAP_CALL: Call = two::<AddToPhysmap>(
    "XENMEM_add_to_physmap",
    HYPERVISOR_MEMORY_OP,
    XENMEM_ADD_TO_PHYSMAP,
    "xen_add_to_physmap",
);
/// `HVMOP_set_param`.
pub const HVMOP_SET_PARAM_CALL: Call = two::<HvmParam>(
    "HVMOP_set_param",
    HYPERVISOR_HVM_OP,
    HVMOP_SET_PARAM,
    "xen_hvm_param",
);
/// `HVMOP_get_param`.
pub const HVMOP_GET_PARAM_CALL: Call = two::<HvmParam>(
    "HVMOP_get_param",
    HYPERVISOR_HVM_OP,
    HVMOP_GET_PARAM,
    "xen_hvm_param",
);
/// `HVMOP_set_evtchn_upcall_vector`.
pub const HVMOP_SET_EVTCHN_UPCALL_VECTOR_CALL: Call = two::<HvmEvtchnUpcallVector>(
    "HVMOP_set_evtchn_upcall_vector",
    HYPERVISOR_HVM_OP,
    HVMOP_SET_EVTCHN_UPCALL_VECTOR,
    "xen_hvm_evtchn_upcall_vector",
);
/// `VCPUOP_register_vcpu_info`: `cmd, vcpu, &arg`.
pub const VCPUOP_REGISTER_VCPU_INFO_CALL: Call = Call {
    name: "VCPUOP_register_vcpu_info",
    op: HYPERVISOR_VCPU_OP,
    cmd: VCPUOP_REGISTER_VCPU_INFO,
    params: [
        Param::Cmd,
        Param::Value {
            meaning: "vCPU id",
            exactly: None,
        },
        st::<VcpuRegisterVcpuInfo>("vcpu_register_vcpu_info"),
        Param::Unused,
        Param::Unused,
    ],
};
/// `SCHEDOP_shutdown` (the core asks only for `SHUTDOWN_suspend`).
pub const SCHEDOP_SHUTDOWN_CALL: Call = two::<SchedShutdown>(
    "SCHEDOP_shutdown",
    HYPERVISOR_SCHED_OP,
    SCHEDOP_SHUTDOWN,
    "sched_shutdown",
);

const fn evtchn<T>(name: &'static str, cmd: u32, arg: &'static str) -> Call {
    two::<T>(name, HYPERVISOR_EVENT_CHANNEL_OP, cmd, arg)
}

/// `EVTCHNOP_alloc_unbound`.
pub const EVTCHNOP_ALLOC_UNBOUND_CALL: Call = evtchn::<EvtchnAllocUnbound>(
    "EVTCHNOP_alloc_unbound",
    EVTCHNOP_ALLOC_UNBOUND,
    "evtchn_alloc_unbound",
);
/// `EVTCHNOP_bind_interdomain`.
pub const EVTCHNOP_BIND_INTERDOMAIN_CALL: Call = evtchn::<EvtchnBindInterdomain>(
    "EVTCHNOP_bind_interdomain",
    EVTCHNOP_BIND_INTERDOMAIN,
    "evtchn_bind_interdomain",
);
/// `EVTCHNOP_bind_virq`.
pub const EVTCHNOP_BIND_VIRQ_CALL: Call =
    evtchn::<EvtchnBindVirq>("EVTCHNOP_bind_virq", EVTCHNOP_BIND_VIRQ, "evtchn_bind_virq");
/// `EVTCHNOP_send`.
pub const EVTCHNOP_SEND_CALL: Call =
    evtchn::<EvtchnSend>("EVTCHNOP_send", EVTCHNOP_SEND, "evtchn_send");
/// `EVTCHNOP_close`.
pub const EVTCHNOP_CLOSE_CALL: Call =
    evtchn::<EvtchnClose>("EVTCHNOP_close", EVTCHNOP_CLOSE, "evtchn_close");
/// `EVTCHNOP_unmask`.
pub const EVTCHNOP_UNMASK_CALL: Call =
    evtchn::<EvtchnUnmask>("EVTCHNOP_unmask", EVTCHNOP_UNMASK, "evtchn_unmask");
/// `EVTCHNOP_status`.
pub const EVTCHNOP_STATUS_CALL: Call =
    evtchn::<EvtchnStatus>("EVTCHNOP_status", EVTCHNOP_STATUS, "evtchn_status");
/// `EVTCHNOP_init_control`.
pub const EVTCHNOP_INIT_CONTROL_CALL: Call = evtchn::<EvtchnInitControl>(
    "EVTCHNOP_init_control",
    EVTCHNOP_INIT_CONTROL,
    "evtchn_init_control",
);
/// `EVTCHNOP_expand_array`.
pub const EVTCHNOP_EXPAND_ARRAY_CALL: Call = evtchn::<EvtchnExpandArray>(
    "EVTCHNOP_expand_array",
    EVTCHNOP_EXPAND_ARRAY,
    "evtchn_expand_array",
);
/// `EVTCHNOP_set_priority`.
pub const EVTCHNOP_SET_PRIORITY_CALL: Call = evtchn::<EvtchnSetPriority>(
    "EVTCHNOP_set_priority",
    EVTCHNOP_SET_PRIORITY,
    "evtchn_set_priority",
);
/// `EVTCHNOP_bind_vcpu`.
pub const EVTCHNOP_BIND_VCPU_CALL: Call =
    evtchn::<EvtchnBindVcpu>("EVTCHNOP_bind_vcpu", EVTCHNOP_BIND_VCPU, "evtchn_bind_vcpu");

/// The event-channel sub-ops the core issues (`do_event_channel_op(cmd, arg)`: each copies its
/// structure in, and the ones with outputs copy it back).
pub const EVTCHN: [Call; 11] = [
    EVTCHNOP_ALLOC_UNBOUND_CALL,
    EVTCHNOP_BIND_INTERDOMAIN_CALL,
    EVTCHNOP_BIND_VIRQ_CALL,
    EVTCHNOP_SEND_CALL,
    EVTCHNOP_CLOSE_CALL,
    EVTCHNOP_UNMASK_CALL,
    EVTCHNOP_STATUS_CALL,
    EVTCHNOP_INIT_CONTROL_CALL,
    EVTCHNOP_EXPAND_ARRAY_CALL,
    EVTCHNOP_SET_PRIORITY_CALL,
    EVTCHNOP_BIND_VCPU_CALL,
];

/// Every hypercall the core makes.
pub const TABLE: [Call; 24] = [
    XENVER_VERSION_CALL,
    XENVER_EXTRAVERSION_CALL,
    XENVER_GET_FEATURES_CALL,
    GNTTABOP_SETUP_TABLE_CALL,
    GNTTABOP_QUERY_SIZE_CALL,
    GNTTABOP_SET_VERSION_CALL,
    GNTTABOP_GET_VERSION_CALL,
    XENMEM_ADD_TO_PHYSMAP_CALL,
    HVMOP_SET_PARAM_CALL,
    HVMOP_GET_PARAM_CALL,
    HVMOP_SET_EVTCHN_UPCALL_VECTOR_CALL,
    VCPUOP_REGISTER_VCPU_INFO_CALL,
    SCHEDOP_SHUTDOWN_CALL,
    EVTCHN[0],
    EVTCHN[1],
    EVTCHN[2],
    EVTCHN[3],
    EVTCHN[4],
    EVTCHN[5],
    EVTCHN[6],
    EVTCHN[7],
    EVTCHN[8],
    EVTCHN[9],
    EVTCHN[10],
];

/// The entry for hypercall `op`, sub-op `cmd`.
pub fn lookup(op: u32, cmd: u32) -> Option<&'static Call> {
    TABLE.iter().find(|c| c.op == op && c.cmd == cmd)
}

/// Checks `args` against `call` and, if they fit, issues the hypercall. The raw return value
/// (negative: `-errno`) is returned as `Ok` so that callers that need it (a suspend's 0 or 1)
/// keep it; see [`invoke`] for the usual split.
pub fn invoke_raw<H: Hypervisor + ?Sized>(
    hv: &H,
    call: &Call,
    args: &mut [Arg<'_>; 5],
) -> Result<i64, HvError> {
    for (index, (param, arg)) in call.params.iter().zip(args.iter()).enumerate() {
        if !param.accepts(call, arg) {
            return Err(HvError::Arity {
                call: call.name,
                index: index as u8,
                expected: *param,
            });
        }
    }
    Ok(hv.hypercall(call.op, args))
}

/// [`invoke_raw`], with a negative return as [`HvError::Hypercall`].
pub fn invoke<H: Hypervisor + ?Sized>(
    hv: &H,
    call: &Call,
    args: &mut [Arg<'_>; 5],
) -> Result<u64, HvError> {
    let ret = invoke_raw(hv, call, args)?;
    XenErrno::from_ret(ret).map_err(|errno| HvError::Hypercall {
        op: call.op,
        cmd: u64::from(call.cmd),
        errno,
    })
}

/// The arguments of the usual shape: `cmd, &arg`.
pub fn cmd_struct<'a>(call: &Call, arg: &'a mut [u8]) -> [Arg<'a>; 5] {
    [
        Arg::Value(u64::from(call.cmd)),
        Arg::Buffer(arg),
        Arg::Unused,
        Arg::Unused,
        Arg::Unused,
    ]
}

#[cfg(test)]
mod table_tests {
    use super::*;

    const UNUSED_4_AND_5: [Param; 2] = [Param::Unused, Param::Unused];

    #[test]
    fn every_call_is_listed_once_with_the_sub_op_first_and_registers_4_and_5_unused() {
        for (i, call) in TABLE.iter().enumerate() {
            assert!(
                TABLE[..i]
                    .iter()
                    .all(|c| (c.op, c.cmd) != (call.op, call.cmd)),
                "{} listed twice",
                call.name
            );
            assert_eq!(call.params[0], Param::Cmd, "{}", call.name);
            assert_eq!(call.params[3..], UNUSED_4_AND_5, "{}", call.name);
            assert_eq!(lookup(call.op, call.cmd), Some(call));
        }
    }

    #[test]
    fn grant_table_calls_pass_count_1() {
        for call in TABLE.iter().filter(|c| c.op == HYPERVISOR_GRANT_TABLE_OP) {
            assert_eq!(
                call.params[2],
                Param::Value {
                    meaning: "count",
                    exactly: Some(1)
                },
                "{}",
                call.name
            );
        }
    }
}
