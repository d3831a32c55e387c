//! The event-channel hypercalls the core issues ([`EventChannelOps`]), their implementation over
//! [`Hypervisor`] through the hypercall table ([`HypercallEventChannels`]), and Xen's error
//! numbers ([`XenErrno`]).

use core::fmt;

use zerocopy::IntoBytes;

use crate::hypervisor::calls::{
    cmd_struct, invoke, Call, EVTCHNOP_ALLOC_UNBOUND_CALL, EVTCHNOP_BIND_INTERDOMAIN_CALL,
    EVTCHNOP_BIND_VCPU_CALL, EVTCHNOP_BIND_VIRQ_CALL, EVTCHNOP_CLOSE_CALL,
    EVTCHNOP_EXPAND_ARRAY_CALL, EVTCHNOP_INIT_CONTROL_CALL, EVTCHNOP_SEND_CALL,
    EVTCHNOP_SET_PRIORITY_CALL, EVTCHNOP_STATUS_CALL, EVTCHNOP_UNMASK_CALL,
};
use crate::hypervisor::{HvError, Hypervisor};

use xen_abi::event_channel::{
    EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindVcpu, EvtchnBindVirq, EvtchnClose,
    EvtchnExpandArray, EvtchnInitControl, EvtchnSend, EvtchnSetPriority, EvtchnStatus,
    EvtchnUnmask,
};

/// A Xen error number, positive (a hypercall returns its negation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct XenErrno(pub i32);

impl XenErrno {
    /// Operation not permitted.
    pub const EPERM: Self = Self(1);
    /// No such file or directory (for event channels: no such port or VIRQ binding).
    pub const ENOENT: Self = Self(2);
    /// No such domain.
    pub const ESRCH: Self = Self(3);
    /// Try again.
    pub const EAGAIN: Self = Self(11);
    /// Out of memory.
    pub const ENOMEM: Self = Self(12);
    /// Permission denied.
    pub const EACCES: Self = Self(13);
    /// No such device or address (`VCPUOP_register_vcpu_info` with an offset Xen cannot use).
    pub const ENXIO: Self = Self(6);
    /// Bad address.
    pub const EFAULT: Self = Self(14);
    /// Resource busy.
    pub const EBUSY: Self = Self(16);
    /// Already exists (for example a VIRQ already bound on that vCPU).
    pub const EEXIST: Self = Self(17);
    /// Invalid argument.
    pub const EINVAL: Self = Self(22);
    /// No space left (no free port).
    pub const ENOSPC: Self = Self(28);
    /// The operation is not implemented (for example the FIFO ABI on an old hypervisor).
    pub const ENOSYS: Self = Self(38);
    /// Operation not supported.
    pub const EOPNOTSUPP: Self = Self(95);

    /// Splits a raw hypercall return value: non-negative is success, negative is `-errno`.
    pub const fn from_ret(ret: i64) -> Result<u64, XenErrno> {
        if ret >= 0 {
            Ok(ret as u64)
        } else if ret < i32::MIN as i64 {
            Err(XenErrno(i32::MAX))
        } else {
            Err(XenErrno(-(ret as i32)))
        }
    }
}

impl fmt::Display for XenErrno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Xen error {}", self.0)
    }
}

/// The `EVTCHNOP_*` sub-ops of the event-channel hypercall that the core needs.
///
/// The shell implements each method with the real hypercall (passing the argument structure by
/// address and turning a negative return into [`XenErrno`] with [`XenErrno::from_ret`]); xen-sim
/// and tests implement them over a model. Output fields are written into the argument.
/// Methods take `&self`: hypercalls are re-entrant, so one instance may be shared between vCPUs.
pub trait EventChannelOps {
    /// `EVTCHNOP_alloc_unbound`; on success `arg.port` is the new port.
    fn alloc_unbound(&self, arg: &mut EvtchnAllocUnbound) -> Result<(), XenErrno>;
    /// `EVTCHNOP_bind_interdomain`; on success `arg.local_port` is the new port.
    fn bind_interdomain(&self, arg: &mut EvtchnBindInterdomain) -> Result<(), XenErrno>;
    /// `EVTCHNOP_bind_virq`; on success `arg.port` is the new port.
    fn bind_virq(&self, arg: &mut EvtchnBindVirq) -> Result<(), XenErrno>;
    /// `EVTCHNOP_send`.
    fn send(&self, arg: &EvtchnSend) -> Result<(), XenErrno>;
    /// `EVTCHNOP_close`.
    fn close(&self, arg: &EvtchnClose) -> Result<(), XenErrno>;
    /// `EVTCHNOP_unmask`: Xen clears the mask and re-raises the port if it is pending.
    fn unmask(&self, arg: &EvtchnUnmask) -> Result<(), XenErrno>;
    /// `EVTCHNOP_status`; on success the output fields of `arg` are filled in.
    fn status(&self, arg: &mut EvtchnStatus) -> Result<(), XenErrno>;
    /// `EVTCHNOP_init_control`; [`XenErrno::ENOSYS`] means the FIFO ABI is unavailable.
    fn init_control(&self, arg: &mut EvtchnInitControl) -> Result<(), XenErrno>;
    /// `EVTCHNOP_expand_array`.
    fn expand_array(&self, arg: &EvtchnExpandArray) -> Result<(), XenErrno>;
    /// `EVTCHNOP_set_priority`.
    fn set_priority(&self, arg: &EvtchnSetPriority) -> Result<(), XenErrno>;
    /// `EVTCHNOP_bind_vcpu`.
    fn bind_vcpu(&self, arg: &EvtchnBindVcpu) -> Result<(), XenErrno>;
}

impl<T: EventChannelOps + ?Sized> EventChannelOps for &T {
    fn alloc_unbound(&self, arg: &mut EvtchnAllocUnbound) -> Result<(), XenErrno> {
        (**self).alloc_unbound(arg)
    }
    fn bind_interdomain(&self, arg: &mut EvtchnBindInterdomain) -> Result<(), XenErrno> {
        (**self).bind_interdomain(arg)
    }
    fn bind_virq(&self, arg: &mut EvtchnBindVirq) -> Result<(), XenErrno> {
        (**self).bind_virq(arg)
    }
    fn send(&self, arg: &EvtchnSend) -> Result<(), XenErrno> {
        (**self).send(arg)
    }
    fn close(&self, arg: &EvtchnClose) -> Result<(), XenErrno> {
        (**self).close(arg)
    }
    fn unmask(&self, arg: &EvtchnUnmask) -> Result<(), XenErrno> {
        (**self).unmask(arg)
    }
    fn status(&self, arg: &mut EvtchnStatus) -> Result<(), XenErrno> {
        (**self).status(arg)
    }
    fn init_control(&self, arg: &mut EvtchnInitControl) -> Result<(), XenErrno> {
        (**self).init_control(arg)
    }
    fn expand_array(&self, arg: &EvtchnExpandArray) -> Result<(), XenErrno> {
        (**self).expand_array(arg)
    }
    fn set_priority(&self, arg: &EvtchnSetPriority) -> Result<(), XenErrno> {
        (**self).set_priority(arg)
    }
    fn bind_vcpu(&self, arg: &EvtchnBindVcpu) -> Result<(), XenErrno> {
        (**self).bind_vcpu(arg)
    }
}

/// [`EventChannelOps`] as hypercalls: each sub-op is issued through its entry in
/// [`crate::hypervisor::calls::EVTCHN`] (`event_channel_op(cmd, &arg)`). Structures Xen only
/// reads are copied first, so Xen's writes cannot reach the caller's `&` argument. A call whose
/// arguments do not fit the table (which would be a bug in this file) answers
/// [`XenErrno::EINVAL`] without reaching the platform.
#[derive(Clone, Copy, Debug)]
pub struct HypercallEventChannels<'h, H: ?Sized>(pub &'h H);

impl<H: Hypervisor + ?Sized> HypercallEventChannels<'_, H> {
    fn issue<T: IntoBytes + zerocopy::FromBytes>(
        &self,
        call: &Call,
        arg: &mut T,
    ) -> Result<(), XenErrno> {
        match invoke(self.0, call, &mut cmd_struct(call, arg.as_mut_bytes())) {
            Ok(_) => Ok(()),
            Err(HvError::Hypercall { errno, .. }) => Err(errno),
            Err(_) => Err(XenErrno::EINVAL),
        }
    }
}

impl<H: Hypervisor + ?Sized> EventChannelOps for HypercallEventChannels<'_, H> {
    fn alloc_unbound(&self, arg: &mut EvtchnAllocUnbound) -> Result<(), XenErrno> {
        self.issue(&EVTCHNOP_ALLOC_UNBOUND_CALL, arg)
    }
    fn bind_interdomain(&self, arg: &mut EvtchnBindInterdomain) -> Result<(), XenErrno> {
        self.issue(&EVTCHNOP_BIND_INTERDOMAIN_CALL, arg)
    }
    fn bind_virq(&self, arg: &mut EvtchnBindVirq) -> Result<(), XenErrno> {
        self.issue(&EVTCHNOP_BIND_VIRQ_CALL, arg)
    }
    fn send(&self, arg: &EvtchnSend) -> Result<(), XenErrno> {
        self.issue(&EVTCHNOP_SEND_CALL, &mut arg.clone())
    }
    fn close(&self, arg: &EvtchnClose) -> Result<(), XenErrno> {
        self.issue(&EVTCHNOP_CLOSE_CALL, &mut arg.clone())
    }
    fn unmask(&self, arg: &EvtchnUnmask) -> Result<(), XenErrno> {
        self.issue(&EVTCHNOP_UNMASK_CALL, &mut arg.clone())
    }
    fn status(&self, arg: &mut EvtchnStatus) -> Result<(), XenErrno> {
        self.issue(&EVTCHNOP_STATUS_CALL, arg)
    }
    fn init_control(&self, arg: &mut EvtchnInitControl) -> Result<(), XenErrno> {
        self.issue(&EVTCHNOP_INIT_CONTROL_CALL, arg)
    }
    fn expand_array(&self, arg: &EvtchnExpandArray) -> Result<(), XenErrno> {
        self.issue(&EVTCHNOP_EXPAND_ARRAY_CALL, &mut arg.clone())
    }
    fn set_priority(&self, arg: &EvtchnSetPriority) -> Result<(), XenErrno> {
        self.issue(&EVTCHNOP_SET_PRIORITY_CALL, &mut arg.clone())
    }
    fn bind_vcpu(&self, arg: &EvtchnBindVcpu) -> Result<(), XenErrno> {
        self.issue(&EVTCHNOP_BIND_VCPU_CALL, &mut arg.clone())
    }
}
