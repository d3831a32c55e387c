//! IRP plumbing: the `wdm.h` inline helpers (`IoGetCurrentIrpStackLocation`,
//! `IoSkipCurrentIrpStackLocation`, `IoCopyCurrentIrpStackLocationToNext`,
//! `IoSetCompletionRoutine`, `IoCompleteRequest`, `IoCallDriver`) that exist only as C macros and
//! so are in no import list, plus forwarding an IRP down synchronously.

use core::ffi::c_void;
use core::ptr;

use windows_sys::Wdk::Foundation::{DEVICE_OBJECT, IO_STACK_LOCATION, IRP, KEVENT};
use windows_sys::Wdk::System::SystemServices as ss;
use windows_sys::Win32::System::Kernel::NotificationEvent;

use crate::status::{NtStatus, STATUS_MORE_PROCESSING_REQUIRED, STATUS_PENDING};

/// `SL_PENDING_RETURNED`.
pub(crate) const SL_PENDING_RETURNED: u8 = 0x01;
/// `SL_INVOKE_ON_CANCEL | SL_INVOKE_ON_SUCCESS | SL_INVOKE_ON_ERROR`.
const SL_INVOKE_ALWAYS: u8 = 0x20 | 0x40 | 0x80;
/// `IO_NO_INCREMENT`.
const IO_NO_INCREMENT: i8 = 0;

/// A completion routine as the I/O manager calls it (`windows-sys` declares the type without
/// parameters).
pub type CompletionRoutine = unsafe extern "system" fn(
    device: *const DEVICE_OBJECT,
    irp: *mut IRP,
    context: *mut c_void,
) -> NtStatus;

/// The `Tail.Overlay.CurrentStackLocation` field of an IRP a driver owns.
pub(crate) fn current_location_slot(irp: &mut IRP) -> &mut *mut IO_STACK_LOCATION {
    // SAFETY: while a driver owns an IRP (it is in a dispatch or completion routine), the I/O
    // manager uses the `Overlay` variant of `Tail`.
    let overlay = unsafe { &mut irp.Tail.Overlay };
    // SAFETY: in that variant the second union holds `CurrentStackLocation`.
    unsafe { &mut overlay.Anonymous2.Anonymous.CurrentStackLocation }
}

/// `IoGetCurrentIrpStackLocation`.
///
/// # Safety
/// `irp` points to a live IRP owned by the caller's driver (it is in the caller's dispatch or
/// completion routine), and no reference to it is live.
pub unsafe fn current_stack_location(irp: *mut IRP) -> *mut IO_STACK_LOCATION {
    // SAFETY: the caller guarantees `irp` is live, owned and unaliased.
    let irp = unsafe { &mut *irp };
    *current_location_slot(irp)
}

/// The current stack location's major and minor function codes.
///
/// # Safety
/// As [`current_stack_location`].
pub unsafe fn function_codes(irp: *mut IRP) -> (u8, u8) {
    // SAFETY: the caller's contract.
    let location = unsafe { current_stack_location(irp) };
    // SAFETY: the current location of an owned IRP is valid to read.
    let location = unsafe { &*location };
    (location.MajorFunction, location.MinorFunction)
}

/// `IoSkipCurrentIrpStackLocation`: the next driver sees this driver's stack location.
///
/// # Safety
/// As [`current_stack_location`]; the IRP is passed down right after.
pub unsafe fn skip_current_stack_location(irp: *mut IRP) {
    // SAFETY: the caller guarantees `irp` is live, owned and unaliased.
    let irp = unsafe { &mut *irp };
    irp.CurrentLocation += 1;
    let slot = current_location_slot(irp);
    // Moving one location up stays inside the IRP's stack array: the current location is not the
    // IRP's first (the caller is not the IRP's creator), and `wrapping_add` makes no claim the
    // compiler could exploit.
    *slot = slot.wrapping_add(1);
}

/// `IoCopyCurrentIrpStackLocationToNext`: the next location gets this one's parameters, without
/// the completion routine.
///
/// # Safety
/// As [`current_stack_location`]; the IRP has a location below the current one (the device has a
/// lower device, so the I/O manager allocated one).
pub unsafe fn copy_current_stack_location_to_next(irp: *mut IRP) {
    // SAFETY: the caller's contract.
    let current = unsafe { current_stack_location(irp) };
    let next = current.wrapping_sub(1);
    let copy_len = core::mem::offset_of!(IO_STACK_LOCATION, CompletionRoutine);
    // SAFETY: both locations are in the IRP's stack array (the caller guarantees a next one),
    // distinct, and at least `copy_len` bytes long.
    unsafe { ptr::copy_nonoverlapping(current.cast::<u8>(), next.cast::<u8>(), copy_len) };
    // SAFETY: `next` is a valid location of the owned IRP.
    unsafe { (*next).Control = 0 };
}

/// `IoSetCompletionRoutine` with invoke-on-success, error and cancel.
///
/// # Safety
/// As [`copy_current_stack_location_to_next`]; `context` stays valid until `routine` runs.
pub unsafe fn set_completion_routine(
    irp: *mut IRP,
    routine: CompletionRoutine,
    context: *mut c_void,
) {
    // SAFETY: the caller's contract.
    let next = unsafe { current_stack_location(irp) }.wrapping_sub(1);
    // SAFETY: the field's declared type is `Option<unsafe extern "system" fn() -> NTSTATUS>`; a
    // function pointer of another signature has the same size and representation, and the I/O
    // manager calls it with the three arguments of `CompletionRoutine`.
    let routine = unsafe {
        core::mem::transmute::<CompletionRoutine, unsafe extern "system" fn() -> i32>(routine)
    };
    // SAFETY: the next location is in the owned IRP (the caller's contract).
    let next = unsafe { &mut *next };
    next.CompletionRoutine = Some(routine);
    next.Context = context;
    next.Control = SL_INVOKE_ALWAYS;
}

/// `IoMarkIrpPending`.
///
/// # Safety
/// As [`current_stack_location`].
pub unsafe fn mark_pending(irp: *mut IRP) {
    // SAFETY: the caller's contract.
    let location = unsafe { current_stack_location(irp) };
    // SAFETY: the current location of an owned IRP is valid to write.
    unsafe { (*location).Control |= SL_PENDING_RETURNED };
}

/// Sets the IRP's final status and information and completes it (`IoCompleteRequest`).
///
/// # Safety
/// `irp` is live and owned by the caller, who never touches it again.
pub unsafe fn complete(irp: *mut IRP, status: NtStatus, information: usize) -> NtStatus {
    // SAFETY: the caller owns the live IRP.
    let owned = unsafe { &mut *irp };
    owned.IoStatus.Anonymous.Status = status;
    owned.IoStatus.Information = information;
    // SAFETY:
    // 1. The caller owns the IRP and gives it up here.
    // 2. `IofCompleteRequest` may be called at IRQL <= DISPATCH_LEVEL.
    unsafe { ss::IofCompleteRequest(irp, IO_NO_INCREMENT) };
    status
}

/// The IRP's `IoStatus` (status, information).
///
/// # Safety
/// As [`current_stack_location`].
pub unsafe fn io_status(irp: *mut IRP) -> (NtStatus, usize) {
    // SAFETY: the caller guarantees the IRP is live.
    let irp = unsafe { &*irp };
    // SAFETY: drivers only ever store the `Status` variant of the union.
    let status = unsafe { irp.IoStatus.Anonymous.Status };
    (status, irp.IoStatus.Information)
}

/// Sets `IoStatus.Status` without completing (before passing a PnP IRP down).
///
/// # Safety
/// As [`current_stack_location`].
pub unsafe fn set_status(irp: *mut IRP, status: NtStatus) {
    // SAFETY: the caller guarantees the IRP is live and owned.
    let irp = unsafe { &mut *irp };
    irp.IoStatus.Anonymous.Status = status;
}

/// `IoCallDriver`.
///
/// # Safety
/// `device` is a live device object (normally this driver's lower device); `irp` is live and
/// owned, its next stack location is set up, and the caller gives up ownership.
pub unsafe fn call_driver(device: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY:
    // 1. The caller guarantees `device` is live and `irp` is ready for the next driver.
    // 2. `IofCallDriver` may be called at IRQL <= DISPATCH_LEVEL.
    unsafe { ss::IofCallDriver(device, irp) }
}

/// Passes an IRP down unchanged: skip this location, `IoCallDriver`.
///
/// # Safety
/// As [`call_driver`].
pub unsafe fn pass_down(device: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: the caller's contract.
    unsafe { skip_current_stack_location(irp) };
    // SAFETY: the caller's contract; the location was skipped just above.
    unsafe { call_driver(device, irp) }
}

/// Passes a power IRP down: `PoStartNextPowerIrp`, skip this location, `PoCallDriver`.
///
/// # Safety
/// As [`call_driver`]; `irp` is an `IRP_MJ_POWER` IRP.
pub unsafe fn pass_power_down(device: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    // SAFETY: `PoStartNextPowerIrp` is called while the driver still owns the power IRP
    // (required before Windows Vista, harmless after).
    unsafe { ss::PoStartNextPowerIrp(irp) };
    // SAFETY: the caller's contract.
    unsafe { skip_current_stack_location(irp) };
    // SAFETY:
    // 1. The caller guarantees `device` is live and gives up the IRP.
    // 2. `PoCallDriver` may be called at IRQL <= DISPATCH_LEVEL.
    unsafe { ss::PoCallDriver(device, irp) }
}

unsafe extern "system" fn signal_event(
    _device: *const DEVICE_OBJECT,
    _irp: *mut IRP,
    context: *mut c_void,
) -> NtStatus {
    // SAFETY:
    // 1. `context` is the `KEVENT` on the stack of `forward_and_wait`, which waits for this
    //    signal before returning, so the event is live.
    // 2. `KeSetEvent` with `Wait = FALSE` may be called at IRQL <= DISPATCH_LEVEL.
    unsafe { ss::KeSetEvent(context.cast::<KEVENT>(), 0, false) };
    // Keep the IRP: the forwarding routine finishes it.
    STATUS_MORE_PROCESSING_REQUIRED
}

/// Passes the IRP to `lower` and waits for the lower drivers to complete it, then returns their
/// status; the caller owns the IRP again and must complete it. PASSIVE_LEVEL only.
///
/// # Safety
/// As [`call_driver`] for `lower`, except that ownership of `irp` comes back to the caller; the
/// current stack location is valid to copy to the next.
pub unsafe fn forward_and_wait(lower: *mut DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
    let mut event = core::mem::MaybeUninit::<KEVENT>::zeroed();
    let event = event.as_mut_ptr();
    // SAFETY: `event` points to stack memory of the right size and alignment for a `KEVENT`,
    // which this initialises; it lives until this function returns, after the completion
    // routine has signalled it.
    unsafe { ss::KeInitializeEvent(event, NotificationEvent, false) };
    // SAFETY: the caller guarantees the IRP is owned and has a next location.
    unsafe { copy_current_stack_location_to_next(irp) };
    // SAFETY: as above; the context is the event, live until the routine ran (see below).
    unsafe { set_completion_routine(irp, signal_event, event.cast()) };
    // SAFETY: `lower` is live (the caller's contract) and the next location is set up.
    let status = unsafe { ss::IofCallDriver(lower, irp) };
    if status == STATUS_PENDING {
        // SAFETY:
        // 1. The event is initialised and live.
        // 2. A wait with no timeout is legal at PASSIVE_LEVEL (the caller's contract);
        //    `Executive`/`KernelMode` as for any driver wait.
        unsafe {
            ss::KeWaitForSingleObject(
                event.cast_const().cast(),
                ss::Executive,
                0,
                false,
                ptr::null(),
            )
        };
    }
    // SAFETY: the completion routine returned `STATUS_MORE_PROCESSING_REQUIRED`, so the IRP
    // belongs to the caller again and its status is final.
    unsafe { io_status(irp) }.0
}

#[cfg(all(test, not(target_os = "windows")))]
mod tests {
    #![allow(unsafe_code)]

    use super::*;
    use crate::kernel_double::*;
    use crate::status::{STATUS_NOT_SUPPORTED, STATUS_SUCCESS};
    use core::mem::MaybeUninit;

    const PNP: u8 = 0x1B;
    const POWER: u8 = 0x16;

    #[test]
    fn forward_and_wait_gets_the_irp_back_with_the_lower_status() {
        for lower in [
            LowerBehaviour::Complete(STATUS_SUCCESS),
            LowerBehaviour::Pend(STATUS_SUCCESS),
            LowerBehaviour::Complete(STATUS_NOT_SUPPORTED),
        ] {
            reset(lower);
            let mut test = TestIrp::new(2, PNP, 0);
            let irp = test.irp();
            // SAFETY: the test owns the IRP, which has a location below.
            let status = unsafe { forward_and_wait(lower_device(), irp) };
            let expected = match lower {
                LowerBehaviour::Complete(s) | LowerBehaviour::Pend(s) => s,
            };
            assert_eq!(status, expected);
            kernel(|k| {
                assert_eq!(
                    k.lower_saw,
                    [(PNP, 0)],
                    "the lower driver saw a copy of the location"
                );
                assert_eq!(k.events_set, 1);
                assert_eq!(k.completed, 0, "the IRP must come back, not complete");
            });
            // The IRP is back in the driver's own location, and completing it finishes it.
            // SAFETY: owned again.
            assert_eq!(unsafe { function_codes(irp) }, (PNP, 0));
            // SAFETY: owned; completed once.
            unsafe { complete(irp, expected, 0) };
            kernel(|k| {
                assert_eq!(k.completed, 1);
                assert_eq!(k.final_status, Some(expected));
                assert!(k.violations.is_empty(), "{:?}", k.violations);
            });
        }
    }

    #[test]
    fn pass_down_shows_the_lower_driver_this_location_and_its_status_completes_the_irp() {
        reset(LowerBehaviour::Complete(STATUS_SUCCESS));
        let mut test = TestIrp::new(2, PNP, 0x17);
        let irp = test.irp();
        // SAFETY: owned IRP with a location below; given away.
        let status = unsafe { pass_down(lower_device(), irp) };
        assert_eq!(status, STATUS_SUCCESS);
        kernel(|k| {
            assert_eq!(k.lower_saw, [(PNP, 0x17)]);
            assert_eq!(k.completed, 1);
            assert!(k.violations.is_empty(), "{:?}", k.violations);
        });
    }

    #[test]
    fn power_irps_start_the_next_one_before_they_go_down() {
        reset(LowerBehaviour::Complete(STATUS_SUCCESS));
        let mut test = TestIrp::new(2, POWER, 2);
        let irp = test.irp();
        // SAFETY: owned power IRP with a location below.
        let status = unsafe { pass_power_down(lower_device(), irp) };
        assert_eq!(status, STATUS_SUCCESS);
        kernel(|k| {
            assert_eq!((k.power_next_started, k.po_calls, k.completed), (1, 1, 1));
            assert_eq!(k.lower_saw, [(POWER, 2)]);
            assert!(k.violations.is_empty(), "{:?}", k.violations);
        });
    }

    #[test]
    fn set_status_then_pass_down_keeps_the_status_unless_the_lower_changes_it() {
        reset(LowerBehaviour::Complete(STATUS_NOT_SUPPORTED));
        let mut test = TestIrp::new(2, PNP, 0x09);
        let irp = test.irp();
        // SAFETY: owned.
        unsafe { set_status(irp, STATUS_SUCCESS) };
        // SAFETY: owned; the status is what the driver set.
        assert_eq!(unsafe { io_status(irp) }.0, STATUS_SUCCESS);
        // SAFETY: owned; given away.
        unsafe { pass_down(lower_device(), irp) };
        kernel(|k| assert_eq!(k.final_status, Some(STATUS_NOT_SUPPORTED)));
    }

    #[test]
    fn the_double_catches_a_call_down_from_the_last_location() {
        reset(LowerBehaviour::Complete(STATUS_SUCCESS));
        let mut test = TestIrp::new(1, PNP, 0);
        let irp = test.irp();
        // SAFETY: owned; the call is the mistake the double must catch.
        unsafe { call_driver(lower_device(), irp) };
        kernel(|k| assert_eq!(k.violations, ["IoCallDriver without a stack location left"]));
    }

    #[test]
    fn the_double_catches_a_wait_that_never_ends() {
        reset(LowerBehaviour::Complete(STATUS_SUCCESS));
        let mut event = MaybeUninit::<KEVENT>::zeroed();
        // SAFETY: the double's event functions take any KEVENT-sized buffer.
        unsafe { ss::KeInitializeEvent(event.as_mut_ptr(), NotificationEvent, false) };
        // SAFETY: as above; nothing will set the event, the mistake the double must catch.
        unsafe {
            ss::KeWaitForSingleObject(event.as_ptr().cast(), ss::Executive, 0, false, ptr::null())
        };
        kernel(|k| {
            assert_eq!(
                k.violations,
                ["KeWaitForSingleObject on an event nobody will set: a hang"]
            )
        });
    }

    #[test]
    fn the_double_catches_a_second_completion() {
        reset(LowerBehaviour::Complete(STATUS_SUCCESS));
        let mut test = TestIrp::new(2, PNP, 0);
        let irp = test.irp();
        // SAFETY: owned; the second completion is the mistake the double must catch (it does not
        // touch an IRP it has completed).
        unsafe { complete(irp, STATUS_SUCCESS, 0) };
        // SAFETY: as above.
        unsafe { complete(irp, STATUS_SUCCESS, 0) };
        kernel(|k| assert_eq!(k.violations, ["IRP completed twice"]));
    }
}
