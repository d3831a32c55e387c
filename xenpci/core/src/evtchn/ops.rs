//! The event-channel hypercalls the core issues ([`EventChannelOps`]) and Xen's error numbers
//! ([`XenErrno`]).

use core::fmt;

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
