//! The scheduler hypercall the core makes: the suspend request.

use xen_abi::sched::{SchedShutdown, SHUTDOWN_SUSPEND};
use zerocopy::IntoBytes;

use super::calls::{cmd_struct, invoke_raw, SCHEDOP_SHUTDOWN_CALL};
use super::{HvError, Hypervisor};

/// `SCHEDOP_shutdown(SHUTDOWN_suspend)`: Xen's raw answer, 1 when the suspend was cancelled
/// (the domain continues), 0 when the domain was resumed in a new domain, negative an error.
/// [`HvError::Arity`] only if the table and this wrapper disagree (nothing issued).
pub fn suspend<H: Hypervisor + ?Sized>(hv: &H) -> Result<i64, HvError> {
    let mut arg = SchedShutdown {
        reason: SHUTDOWN_SUSPEND,
    };
    invoke_raw(
        hv,
        &SCHEDOP_SHUTDOWN_CALL,
        &mut cmd_struct(&SCHEDOP_SHUTDOWN_CALL, arg.as_mut_bytes()),
    )
}
