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
const SL_PENDING_RETURNED: u8 = 0x01;
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
fn current_location_slot(irp: &mut IRP) -> &mut *mut IO_STACK_LOCATION {
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

/// A double of the I/O manager's IRP handling, for host tests of the helpers above. It provides
/// the kernel functions they call (as the symbols `windows-sys` declares) and checks the rules a
/// driver must keep: an IRP is completed once, passed down only while it has a location left, a
/// completion routine runs in its own location and may reclaim the IRP, a wait on an event nobody
/// will set is a hang, and power IRPs start the next one before they are passed on.
#[cfg(all(test, not(target_os = "windows")))]
mod tests {
    #![allow(non_snake_case, unsafe_code)]

    use super::*;
    use crate::status::{STATUS_NOT_SUPPORTED, STATUS_SUCCESS};
    use core::cell::RefCell;
    use core::mem::{size_of, MaybeUninit};

    /// What the device below does with an IRP it receives.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum LowerBehaviour {
        /// Completes it at once with this status.
        Complete(NtStatus),
        /// Marks it pending; it completes (with this status) while the caller waits.
        Pend(NtStatus),
    }

    #[derive(Debug, Default)]
    struct Kernel {
        lower: Option<LowerBehaviour>,
        /// What the lower device saw: (major, minor, had a completion routine in its location).
        lower_saw: Vec<(u8, u8)>,
        pended: Option<(usize, NtStatus)>,
        completed: u32,
        /// IRPs the double has completed to the I/O manager.
        completed_irps: Vec<usize>,
        final_status: Option<NtStatus>,
        events_set: u32,
        power_next_started: u32,
        po_calls: u32,
        /// Broken rules. The double records them instead of panicking: a panic cannot unwind
        /// out of the `extern "system"` functions it stands in for.
        violations: Vec<&'static str>,
    }

    thread_local! {
        static KERNEL: RefCell<Kernel> = RefCell::new(Kernel::default());
    }

    fn kernel<R>(f: impl FnOnce(&mut Kernel) -> R) -> R {
        KERNEL.with(|k| f(&mut k.borrow_mut()))
    }

    fn violation(rule: &'static str) {
        kernel(|k| k.violations.push(rule));
    }

    /// Moves the IRP one location down, as `IoCallDriver` does; a driver that calls down without
    /// a location left breaks a rule (and the IRP stays where it is).
    fn enter_lower(irp: &mut IRP) -> bool {
        if irp.CurrentLocation <= 1 {
            violation("IoCallDriver without a stack location left");
            return false;
        }
        irp.CurrentLocation -= 1;
        let slot = current_location_slot(irp);
        *slot = slot.wrapping_sub(1);
        true
    }

    /// `IoCompleteRequest`'s walk up the stack: each location's completion routine runs with the
    /// IRP one location up (its owner's), and `STATUS_MORE_PROCESSING_REQUIRED` stops the walk.
    fn complete_upwards(irp: *mut IRP) {
        loop {
            // SAFETY: the test owns the IRP buffer.
            let owned = unsafe { &mut *irp };
            let location = *current_location_slot(owned);
            // SAFETY: the current location is inside the test's buffer.
            let current = unsafe { &*location };
            let (routine, context, control) =
                (current.CompletionRoutine, current.Context, current.Control);
            owned.CurrentLocation += 1;
            let slot = current_location_slot(owned);
            *slot = slot.wrapping_add(1);
            if owned.CurrentLocation > owned.StackCount {
                kernel(|k| {
                    k.completed += 1;
                    k.completed_irps.push(irp as usize);
                    // SAFETY: drivers store the `Status` variant.
                    k.final_status = Some(unsafe { owned.IoStatus.Anonymous.Status });
                });
                return;
            }
            if let Some(routine) = routine {
                // SAFETY: a status (negative) selects SL_INVOKE_ON_ERROR, else ON_SUCCESS.
                let status = unsafe { owned.IoStatus.Anonymous.Status };
                let wanted = if status < 0 { 0x80 } else { 0x40 };
                if control & wanted != 0 {
                    // SAFETY: the routine was stored by `set_completion_routine` with the
                    // three-parameter signature.
                    let routine = unsafe {
                        core::mem::transmute::<unsafe extern "system" fn() -> i32, CompletionRoutine>(
                            routine,
                        )
                    };
                    // SAFETY: called as the I/O manager would, with the stored context.
                    if unsafe { routine(ptr::null(), irp, context) }
                        == STATUS_MORE_PROCESSING_REQUIRED
                    {
                        return;
                    }
                }
            }
        }
    }

    #[unsafe(no_mangle)]
    extern "system" fn IofCallDriver(_device: *const DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
        // SAFETY: the test owns the IRP buffer.
        let owned = unsafe { &mut *irp };
        if !enter_lower(owned) {
            return crate::status::STATUS_INVALID_DEVICE_REQUEST;
        }
        let location = *current_location_slot(owned);
        // SAFETY: inside the buffer.
        let lower_location = unsafe { &*location };
        let seen = (lower_location.MajorFunction, lower_location.MinorFunction);
        let behaviour = kernel(|k| {
            k.lower_saw.push(seen);
            k.lower.unwrap_or(LowerBehaviour::Complete(STATUS_SUCCESS))
        });
        match behaviour {
            LowerBehaviour::Complete(status) => {
                owned.IoStatus.Anonymous.Status = status;
                complete_upwards(irp);
                status
            }
            LowerBehaviour::Pend(status) => {
                // SAFETY: inside the buffer (`IoMarkIrpPending` by the lower driver).
                unsafe { (*location).Control |= SL_PENDING_RETURNED };
                kernel(|k| k.pended = Some((irp as usize, status)));
                STATUS_PENDING
            }
        }
    }

    #[unsafe(no_mangle)]
    extern "system" fn IofCompleteRequest(irp: *const IRP, _boost: i8) {
        if kernel(|k| k.completed_irps.contains(&(irp as usize))) {
            violation("IRP completed twice");
            return;
        }
        complete_upwards(irp.cast_mut());
    }

    #[unsafe(no_mangle)]
    extern "system" fn KeInitializeEvent(event: *mut KEVENT, _kind: i32, state: bool) {
        // SAFETY: the caller passes a KEVENT-sized buffer; the double keeps the state in its
        // first byte.
        unsafe { event.cast::<u8>().write(u8::from(state)) };
    }

    #[unsafe(no_mangle)]
    extern "system" fn KeSetEvent(event: *mut KEVENT, _increment: i32, _wait: bool) -> i32 {
        kernel(|k| k.events_set += 1);
        // SAFETY: as `KeInitializeEvent`.
        unsafe { event.cast::<u8>().write(1) };
        0
    }

    #[unsafe(no_mangle)]
    extern "system" fn KeWaitForSingleObject(
        object: *const c_void,
        _reason: i32,
        _mode: i8,
        _alertable: bool,
        _timeout: *const i64,
    ) -> NtStatus {
        // Another processor finishes the pended IRP while this thread waits.
        if let Some((irp, status)) = kernel(|k| k.pended.take()) {
            let irp = irp as *mut IRP;
            // SAFETY: the pended IRP is the test's buffer.
            let pended = unsafe { &mut *irp };
            pended.IoStatus.Anonymous.Status = status;
            complete_upwards(irp);
        }
        // SAFETY: as `KeInitializeEvent`.
        let signalled = unsafe { object.cast::<u8>().read() } == 1;
        if !signalled {
            violation("KeWaitForSingleObject on an event nobody will set: a hang");
        }
        STATUS_SUCCESS
    }

    #[unsafe(no_mangle)]
    extern "system" fn PoStartNextPowerIrp(irp: *mut IRP) {
        // SAFETY: the test owns the IRP buffer.
        let major = unsafe { function_codes(irp) }.0;
        if major != 0x16 {
            violation("PoStartNextPowerIrp on a non-power IRP");
        }
        kernel(|k| k.power_next_started += 1);
    }

    #[unsafe(no_mangle)]
    extern "system" fn PoCallDriver(device: *const DEVICE_OBJECT, irp: *mut IRP) -> NtStatus {
        kernel(|k| {
            if k.power_next_started != k.po_calls + 1 {
                k.violations.push("PoCallDriver before PoStartNextPowerIrp");
            }
            k.po_calls += 1;
        });
        IofCallDriver(device, irp)
    }

    /// An IRP with `locations` stack locations, entered by the test's driver at the top (as the
    /// I/O manager's `IoCallDriver` to it would leave it).
    struct TestIrp {
        buffer: Vec<MaybeUninit<u64>>,
    }

    impl TestIrp {
        fn new(locations: i8, major: u8, minor: u8) -> Self {
            let bytes = size_of::<IRP>() + locations as usize * size_of::<IO_STACK_LOCATION>();
            let mut buffer = vec![MaybeUninit::<u64>::zeroed(); bytes.div_ceil(8)];
            let irp = buffer.as_mut_ptr().cast::<IRP>();
            // SAFETY: the buffer is zeroed, big and aligned enough for the IRP and its locations.
            let owned = unsafe { &mut *irp };
            owned.StackCount = locations;
            owned.CurrentLocation = locations + 1;
            let first = irp.wrapping_add(1).cast::<IO_STACK_LOCATION>();
            *current_location_slot(owned) = first.wrapping_add(locations as usize);
            owned.IoStatus.Anonymous.Status = STATUS_NOT_SUPPORTED;
            assert!(enter_lower(owned));
            let top = *current_location_slot(owned);
            // SAFETY: the top location is inside the buffer.
            let top = unsafe { &mut *top };
            top.MajorFunction = major;
            top.MinorFunction = minor;
            Self { buffer }
        }

        fn irp(&mut self) -> *mut IRP {
            self.buffer.as_mut_ptr().cast()
        }
    }

    fn lower_device() -> *mut DEVICE_OBJECT {
        ptr::NonNull::dangling().as_ptr()
    }

    fn reset(lower: LowerBehaviour) {
        kernel(|k| {
            *k = Kernel::default();
            k.lower = Some(lower);
        });
    }

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
