//! A double of the Windows kernel for host tests of the binding modules (`irp`, `wdm`, `pool`,
//! `event_log_writer`). It provides, as the symbols `windows-sys` and `sys` declare, the kernel
//! functions they call, and records the rules a driver must keep instead of panicking (a panic
//! cannot unwind out of the `extern "system"` functions it stands in for): an IRP is completed
//! once, passed down only while it has a location left, a completion routine runs in its own
//! location and may reclaim the IRP, a wait on an event nobody will set is a hang, power IRPs
//! start the next one before they are passed on, the remove lock is balanced and REMOVE waits
//! for it, a device is detached before it is deleted.
#![allow(non_snake_case, unsafe_code, missing_docs, clippy::missing_safety_doc)]

use core::ffi::c_void;
use core::ptr;
use std::alloc::Layout;

use windows_sys::Wdk::Foundation::{DEVICE_OBJECT, IO_STACK_LOCATION, IRP, KEVENT};

use crate::irp::{current_location_slot, function_codes, CompletionRoutine, SL_PENDING_RETURNED};
use crate::status::{NtStatus, STATUS_MORE_PROCESSING_REQUIRED, STATUS_PENDING};
use crate::status::{STATUS_NOT_SUPPORTED, STATUS_SUCCESS};
use core::cell::RefCell;
use core::mem::{size_of, MaybeUninit};

/// What the device below does with an IRP it receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LowerBehaviour {
    /// Completes it at once with this status.
    Complete(NtStatus),
    /// Marks it pending; it completes (with this status) while the caller waits.
    Pend(NtStatus),
}

#[derive(Default)]
pub(crate) struct Kernel {
    pub(crate) lower: Option<LowerBehaviour>,
    /// What the lower device saw: (major, minor) of its location.
    pub(crate) lower_saw: Vec<(u8, u8)>,
    pub(crate) pended: Option<(usize, NtStatus)>,
    pub(crate) completed: u32,
    /// IRPs the double has completed to the I/O manager.
    pub(crate) completed_irps: Vec<usize>,
    pub(crate) final_status: Option<NtStatus>,
    pub(crate) events_set: u32,
    pub(crate) power_next_started: u32,
    pub(crate) po_calls: u32,
    /// Broken rules. The double records them instead of panicking: a panic cannot unwind
    /// out of the `extern "system"` functions it stands in for.
    pub(crate) violations: Vec<&'static str>,
    /// Kernel calls whose order matters, in order.
    pub(crate) calls: Vec<&'static str>,
    /// Holds of each remove lock (by address); `None` once REMOVE released and waited.
    pub(crate) remove_locks: Vec<(usize, Option<u32>)>,
    /// Device objects the double created, with their extension buffers (kept until the test
    /// ends, so a use after delete reads test memory, and is caught by `deleted`).
    pub(crate) devices: Vec<(Box<DEVICE_OBJECT>, Vec<u128>)>,
    /// Devices deleted, by address.
    pub(crate) deleted: Vec<usize>,
    /// Event log entries written, as bytes.
    pub(crate) event_log: Vec<Vec<u8>>,
}

thread_local! {
    static KERNEL: RefCell<Kernel> = RefCell::new(Kernel::default());
}

pub(crate) fn kernel<R>(f: impl FnOnce(&mut Kernel) -> R) -> R {
    KERNEL.with(|k| f(&mut k.borrow_mut()))
}

pub(crate) fn violation(rule: &'static str) {
    kernel(|k| k.violations.push(rule));
}

/// Moves the IRP one location down, as `IoCallDriver` does; a driver that calls down without
/// a location left breaks a rule (and the IRP stays where it is).
pub(crate) fn enter_lower(irp: &mut IRP) -> bool {
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
pub(crate) fn complete_upwards(irp: *mut IRP) {
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
                if unsafe { routine(ptr::null(), irp, context) } == STATUS_MORE_PROCESSING_REQUIRED
                {
                    return;
                }
            }
        }
    }
}

#[unsafe(no_mangle)]
pub(crate) extern "system" fn IofCallDriver(
    _device: *const DEVICE_OBJECT,
    irp: *mut IRP,
) -> NtStatus {
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
pub(crate) extern "system" fn IofCompleteRequest(irp: *const IRP, _boost: i8) {
    if kernel(|k| k.completed_irps.contains(&(irp as usize))) {
        violation("IRP completed twice");
        return;
    }
    complete_upwards(irp.cast_mut());
}

#[unsafe(no_mangle)]
pub(crate) extern "system" fn KeInitializeEvent(event: *mut KEVENT, _kind: i32, state: bool) {
    // SAFETY: the caller passes a KEVENT-sized buffer; the double keeps the state in its
    // first byte.
    unsafe { event.cast::<u8>().write(u8::from(state)) };
}

#[unsafe(no_mangle)]
pub(crate) extern "system" fn KeSetEvent(event: *mut KEVENT, _increment: i32, _wait: bool) -> i32 {
    kernel(|k| k.events_set += 1);
    // SAFETY: as `KeInitializeEvent`.
    unsafe { event.cast::<u8>().write(1) };
    0
}

#[unsafe(no_mangle)]
pub(crate) extern "system" fn KeWaitForSingleObject(
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
pub(crate) extern "system" fn PoStartNextPowerIrp(irp: *mut IRP) {
    // SAFETY: the test owns the IRP buffer.
    let major = unsafe { function_codes(irp) }.0;
    if major != 0x16 {
        violation("PoStartNextPowerIrp on a non-power IRP");
    }
    kernel(|k| k.power_next_started += 1);
}

#[unsafe(no_mangle)]
pub(crate) extern "system" fn PoCallDriver(
    device: *const DEVICE_OBJECT,
    irp: *mut IRP,
) -> NtStatus {
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
pub(crate) struct TestIrp {
    buffer: Vec<MaybeUninit<u64>>,
}

impl TestIrp {
    pub(crate) fn new(locations: i8, major: u8, minor: u8) -> Self {
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

    pub(crate) fn irp(&mut self) -> *mut IRP {
        self.buffer.as_mut_ptr().cast()
    }
}

pub(crate) fn lower_device() -> *mut DEVICE_OBJECT {
    ptr::NonNull::dangling().as_ptr()
}

pub(crate) fn reset(lower: LowerBehaviour) {
    kernel(|k| {
        *k = Kernel::default();
        k.lower = Some(lower);
    });
}

// --- Device objects ---

#[unsafe(no_mangle)]
pub(crate) extern "system" fn IoCreateDevice(
    _driver: *const windows_sys::Wdk::Foundation::DRIVER_OBJECT,
    extension_size: u32,
    _name: *const windows_sys::Win32::Foundation::UNICODE_STRING,
    device_type: u32,
    characteristics: u32,
    _exclusive: bool,
    device: *mut *mut DEVICE_OBJECT,
) -> NtStatus {
    let mut object: Box<DEVICE_OBJECT> = Box::default();
    let mut extension = vec![0u128; (extension_size as usize).div_ceil(16)];
    object.DeviceType = device_type;
    object.Characteristics = characteristics;
    object.Flags = 0x80; // DO_DEVICE_INITIALIZING
    object.DeviceExtension = extension.as_mut_ptr().cast();
    let address: *mut DEVICE_OBJECT = &mut *object;
    kernel(|k| {
        k.calls.push("IoCreateDevice");
        k.devices.push((object, extension));
    });
    // SAFETY: the caller passes a place for the device pointer.
    unsafe { device.write(address) };
    0
}

/// The device every FDO is attached above.
pub(crate) fn attached_lower() -> *mut DEVICE_OBJECT {
    ptr::NonNull::<DEVICE_OBJECT>::dangling()
        .as_ptr()
        .wrapping_add(1)
}

#[unsafe(no_mangle)]
pub(crate) extern "system" fn IoAttachDeviceToDeviceStack(
    _source: *const DEVICE_OBJECT,
    _target: *const DEVICE_OBJECT,
) -> *mut DEVICE_OBJECT {
    kernel(|k| k.calls.push("IoAttachDeviceToDeviceStack"));
    attached_lower()
}

#[unsafe(no_mangle)]
pub(crate) extern "system" fn IoDetachDevice(target: *mut DEVICE_OBJECT) {
    if target != attached_lower() {
        violation("IoDetachDevice of a device this FDO is not attached to");
    }
    kernel(|k| k.calls.push("IoDetachDevice"));
}

#[unsafe(no_mangle)]
pub(crate) extern "system" fn IoDeleteDevice(device: *const DEVICE_OBJECT) {
    kernel(|k| {
        if !k.calls.contains(&"IoDetachDevice") {
            k.violations.push("IoDeleteDevice before IoDetachDevice");
        }
        if k.deleted.contains(&(device as usize)) {
            k.violations.push("IoDeleteDevice twice");
        }
        k.deleted.push(device as usize);
        k.calls.push("IoDeleteDevice");
    });
}

// --- Remove locks ---

fn remove_lock_holds(lock: *mut c_void) -> Option<Option<u32>> {
    kernel(|k| {
        k.remove_locks
            .iter()
            .find(|(at, _)| *at == lock as usize)
            .map(|(_, holds)| *holds)
    })
}

fn set_remove_lock(lock: *mut c_void, holds: Option<u32>) {
    kernel(|k| {
        if let Some(entry) = k
            .remove_locks
            .iter_mut()
            .find(|(at, _)| *at == lock as usize)
        {
            entry.1 = holds;
        } else {
            k.remove_locks.push((lock as usize, holds));
        }
    });
}

#[unsafe(no_mangle)]
pub(crate) extern "system" fn IoInitializeRemoveLockEx(
    lock: *mut c_void,
    _tag: u32,
    _minutes: u32,
    _high_water: u32,
    _size: u32,
) {
    set_remove_lock(lock, Some(0));
}

#[unsafe(no_mangle)]
pub(crate) extern "system" fn IoAcquireRemoveLockEx(
    lock: *mut c_void,
    _tag: *const c_void,
    _file: *const u8,
    _line: u32,
    _size: u32,
) -> NtStatus {
    match remove_lock_holds(lock) {
        None => {
            violation("IoAcquireRemoveLockEx on an uninitialised lock");
            crate::status::STATUS_NO_SUCH_DEVICE
        }
        Some(None) => 0xC000_0056_u32 as i32, // STATUS_DELETE_PENDING
        Some(Some(n)) => {
            set_remove_lock(lock, Some(n + 1));
            0
        }
    }
}

#[unsafe(no_mangle)]
pub(crate) extern "system" fn IoReleaseRemoveLockEx(
    lock: *mut c_void,
    _tag: *const c_void,
    _size: u32,
) {
    match remove_lock_holds(lock) {
        Some(Some(n)) if n > 0 => set_remove_lock(lock, Some(n - 1)),
        _ => violation("IoReleaseRemoveLockEx without a hold"),
    }
}

#[unsafe(no_mangle)]
pub(crate) extern "system" fn IoReleaseRemoveLockAndWaitEx(
    lock: *mut c_void,
    _tag: *const c_void,
    _size: u32,
) {
    match remove_lock_holds(lock) {
        // The caller's own hold is the only one: releasing it ends the wait at once. Other holds
        // would be released by other threads, which a single-threaded test does not have.
        Some(Some(1)) => set_remove_lock(lock, None),
        Some(Some(_)) => violation("IoReleaseRemoveLockAndWaitEx with other holders: would wait"),
        _ => violation("IoReleaseRemoveLockAndWaitEx without a hold"),
    }
    kernel(|k| k.calls.push("IoReleaseRemoveLockAndWaitEx"));
}

/// The holds on the remove lock of the first device's extension-relative `lock`.
pub(crate) fn remove_lock_state() -> Vec<Option<u32>> {
    kernel(|k| k.remove_locks.iter().map(|(_, h)| *h).collect())
}

// --- Pool, run-time linking, logging ---

const POOL_HEADER: usize = 16;

#[unsafe(no_mangle)]
pub(crate) extern "system" fn ExAllocatePoolWithTag(
    _pool: i32,
    bytes: usize,
    _tag: u32,
) -> *mut c_void {
    let layout = Layout::from_size_align(bytes + POOL_HEADER, 16).expect("pool size");
    // SAFETY: a non-zero layout.
    let memory = unsafe { std::alloc::alloc(layout) };
    if memory.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: the header is inside the allocation.
    unsafe { memory.cast::<usize>().write(bytes) };
    memory.wrapping_add(POOL_HEADER).cast()
}

#[unsafe(no_mangle)]
pub(crate) extern "system" fn ExFreePoolWithTag(memory: *mut c_void, _tag: u32) {
    let base = memory.cast::<u8>().wrapping_sub(POOL_HEADER);
    // SAFETY: `ExAllocatePoolWithTag` wrote the size in the header.
    let bytes = unsafe { base.cast::<usize>().read() };
    let layout = Layout::from_size_align(bytes + POOL_HEADER, 16).expect("pool size");
    // SAFETY: allocated by `ExAllocatePoolWithTag` with this layout.
    unsafe { std::alloc::dealloc(base, layout) };
}

#[unsafe(no_mangle)]
pub(crate) extern "system" fn MmGetSystemRoutineAddress(
    _name: *const windows_sys::Win32::Foundation::UNICODE_STRING,
) -> *mut c_void {
    // An older kernel: no `ExAllocatePool2`, no `MmMapIoSpaceEx`.
    ptr::null_mut()
}

/// The non-variadic shape of the one call `sys::debug_print` makes (`"%s"`, one string); on
/// x86-64 the two calling conventions pass these arguments alike.
#[unsafe(no_mangle)]
pub(crate) extern "C" fn DbgPrintEx(
    _component: u32,
    _level: u32,
    _format: *const u8,
    _text: *const u8,
) -> u32 {
    0
}

#[unsafe(no_mangle)]
pub(crate) extern "system" fn IoAllocateErrorLogEntry(
    _object: *const c_void,
    size: u8,
) -> *mut c_void {
    ExAllocatePoolWithTag(0, usize::from(size), 0)
}

#[unsafe(no_mangle)]
pub(crate) extern "system" fn IoWriteErrorLogEntry(entry: *const c_void) {
    let base = entry.cast::<u8>().wrapping_sub(POOL_HEADER);
    // SAFETY: allocated by `IoAllocateErrorLogEntry`, which recorded its size.
    let bytes = unsafe { base.cast::<usize>().read() };
    // SAFETY: `bytes` bytes were allocated after the header.
    let copy = unsafe { core::slice::from_raw_parts(entry.cast::<u8>(), bytes) }.to_vec();
    kernel(|k| k.event_log.push(copy));
    ExFreePoolWithTag(entry.cast_mut(), 0);
}
