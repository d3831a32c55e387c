//! Work that runs later: [`Dpc`] (at DISPATCH_LEVEL, soon), [`Timer`] (a DPC after a delay, once
//! or periodically) and [`WorkItem`] (at PASSIVE_LEVEL on a system worker thread).
//!
//! Each owns its target (the code to run and its data) together with the kernel object in one
//! [`PoolBox`], so the address the kernel holds never changes and the target outlives every run:
//! dropping a `Dpc` or `Timer` dequeues/cancels it and waits for a run in progress
//! (`KeFlushQueuedDpcs`), dropping a `WorkItem` waits for a queued run to finish. Dropping is
//! therefore a PASSIVE_LEVEL operation; dropping at a higher IRQL is a bug and bug-checks.

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::mem::MaybeUninit;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};

use windows_sys::Wdk::Foundation::{DEVICE_OBJECT, KDPC, KEVENT};
use windows_sys::Wdk::System::SystemServices as ss;
use windows_sys::Win32::System::Kernel::{NotificationEvent, NotificationTimer};

use crate::irql::{self, PASSIVE_LEVEL};
use crate::pool_box::PoolBox;
use crate::pool_tag::PoolTag;

/// Code run by a [`Dpc`] or [`Timer`], at DISPATCH_LEVEL, on any processor, possibly
/// concurrently with other code using the target (but never twice at once for one DPC).
pub trait Deferred: Sync + Send + 'static {
    /// Runs once per queued DPC or timer expiry.
    fn run(&self);
}

/// Code run by a [`WorkItem`] at PASSIVE_LEVEL.
pub trait Work: Sync + Send + 'static {
    /// Runs once per queueing.
    fn run(&self);
}

fn assert_passive(what: &str) {
    let level = irql::current();
    if level != PASSIVE_LEVEL {
        panic!("{what} dropped at IRQL {level}; it must be dropped at PASSIVE_LEVEL");
    }
}

type DeferredRoutine =
    unsafe extern "system" fn(*const KDPC, *const c_void, *const c_void, *const c_void);

/// The routine field's declared type in `windows-sys` has no parameters; the kernel calls it with
/// four. Same size and representation.
fn deferred_routine(routine: DeferredRoutine) -> windows_sys::Wdk::Foundation::PKDEFERRED_ROUTINE {
    // SAFETY: both are `extern "system"` function pointers; the kernel calls the stored pointer
    // with the four arguments `DeferredRoutine` declares.
    Some(unsafe { core::mem::transmute::<DeferredRoutine, unsafe extern "system" fn()>(routine) })
}

unsafe extern "system" fn run_deferred<T: Deferred>(
    _dpc: *const KDPC,
    context: *const c_void,
    _a1: *const c_void,
    _a2: *const c_void,
) {
    // SAFETY: the context is the target inside the `PoolBox` of the `Dpc` or `Timer` that
    // initialised this DPC; its drop waits for this routine, so the target is live.
    let target = unsafe { &*context.cast::<T>() };
    target.run();
}

struct DpcInner<T> {
    kdpc: UnsafeCell<KDPC>,
    target: T,
}

/// A DPC bound to its target.
pub struct Dpc<T: Deferred> {
    inner: PoolBox<DpcInner<T>>,
}

impl<T: Deferred> core::fmt::Debug for Dpc<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Dpc")
    }
}

// SAFETY: the KDPC is only touched through kernel calls, which synchronise internally; the
// target is `Sync + Send`.
unsafe impl<T: Deferred> Sync for DpcInner<T> {}
// SAFETY: as above.
unsafe impl<T: Deferred> Send for DpcInner<T> {}

impl<T: Deferred> Dpc<T> {
    /// Allocates and initialises a DPC for `target`. IRQL <= DISPATCH_LEVEL.
    pub fn new(target: T, tag: PoolTag) -> Option<Self> {
        let inner = PoolBox::new(
            DpcInner {
                // SAFETY: a zeroed KDPC is a valid bit pattern for the plain-data structure;
                // `KeInitializeDpc` below sets it up.
                kdpc: UnsafeCell::new(unsafe { MaybeUninit::zeroed().assume_init() }),
                target,
            },
            tag,
        )?;
        // SAFETY:
        // 1. The KDPC is at a fixed pool address for the box's life.
        // 2. The context is the target in the same allocation, live while the DPC can run.
        unsafe {
            ss::KeInitializeDpc(
                inner.kdpc.get(),
                deferred_routine(run_deferred::<T>),
                core::ptr::from_ref(&inner.target).cast(),
            )
        };
        Some(Self { inner })
    }

    /// Queues the DPC; `false` if it was already queued. IRQL <= HIGH_LEVEL.
    pub fn queue(&self) -> bool {
        // SAFETY: the KDPC was initialised in `new` and stays at its address.
        unsafe { ss::KeInsertQueueDpc(self.inner.kdpc.get(), core::ptr::null(), core::ptr::null()) }
    }

    /// The target.
    pub fn target(&self) -> &T {
        &self.inner.target
    }
}

impl<T: Deferred> Drop for Dpc<T> {
    fn drop(&mut self) {
        assert_passive("a Dpc");
        // SAFETY: the KDPC is initialised; removing it from a queue is allowed at any IRQL.
        unsafe { ss::KeRemoveQueueDpc(self.inner.kdpc.get()) };
        // SAFETY: PASSIVE_LEVEL (checked); waits for a run already in progress.
        unsafe { ss::KeFlushQueuedDpcs() };
    }
}

struct TimerInner<T> {
    timer: UnsafeCell<ss::KTIMER>,
    kdpc: UnsafeCell<KDPC>,
    target: T,
}

// SAFETY: as for `DpcInner`.
unsafe impl<T: Deferred> Sync for TimerInner<T> {}
// SAFETY: as for `DpcInner`.
unsafe impl<T: Deferred> Send for TimerInner<T> {}

/// A kernel timer whose expiry queues a DPC that runs the target.
pub struct Timer<T: Deferred> {
    inner: PoolBox<TimerInner<T>>,
}

impl<T: Deferred> core::fmt::Debug for Timer<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Timer")
    }
}

/// Relative due time in 100 ns units, as `KeSetTimerEx` takes it (negative = relative).
pub fn relative_due_time(milliseconds: u32) -> i64 {
    -(i64::from(milliseconds) * 10_000)
}

impl<T: Deferred> Timer<T> {
    /// Allocates and initialises a timer for `target`. IRQL <= DISPATCH_LEVEL.
    pub fn new(target: T, tag: PoolTag) -> Option<Self> {
        let inner = PoolBox::new(
            TimerInner {
                // SAFETY: zeroed plain-data kernel structures, set up by the calls below.
                timer: UnsafeCell::new(unsafe { MaybeUninit::zeroed().assume_init() }),
                // SAFETY: as above.
                kdpc: UnsafeCell::new(unsafe { MaybeUninit::zeroed().assume_init() }),
                target,
            },
            tag,
        )?;
        // SAFETY: the KTIMER is at a fixed pool address for the box's life.
        unsafe { ss::KeInitializeTimerEx(inner.timer.get(), NotificationTimer) };
        // SAFETY: as in `Dpc::new`.
        unsafe {
            ss::KeInitializeDpc(
                inner.kdpc.get(),
                deferred_routine(run_deferred::<T>),
                core::ptr::from_ref(&inner.target).cast(),
            )
        };
        Some(Self { inner })
    }

    /// (Re)arms the timer to fire after `milliseconds`, then every `period_ms` if non-zero;
    /// `true` if it was already armed. IRQL <= DISPATCH_LEVEL.
    pub fn set(&self, milliseconds: u32, period_ms: u32) -> bool {
        let period = i32::try_from(period_ms).unwrap_or(i32::MAX);
        // SAFETY: the timer and DPC were initialised in `new` and stay at their addresses.
        unsafe {
            ss::KeSetTimerEx(
                self.inner.timer.get(),
                relative_due_time(milliseconds),
                period,
                self.inner.kdpc.get(),
            )
        }
    }

    /// Disarms the timer; `true` if it was armed. A DPC already queued may still run.
    /// IRQL <= DISPATCH_LEVEL.
    pub fn cancel(&self) -> bool {
        // SAFETY: the timer was initialised in `new`.
        unsafe { ss::KeCancelTimer(self.inner.timer.get()) }
    }

    /// The target.
    pub fn target(&self) -> &T {
        &self.inner.target
    }
}

impl<T: Deferred> Drop for Timer<T> {
    fn drop(&mut self) {
        assert_passive("a Timer");
        self.cancel();
        // SAFETY: the KDPC is initialised; dequeuing is allowed at any IRQL.
        unsafe { ss::KeRemoveQueueDpc(self.inner.kdpc.get()) };
        // SAFETY: PASSIVE_LEVEL (checked); waits for a run already in progress.
        unsafe { ss::KeFlushQueuedDpcs() };
    }
}

struct WorkInner<T> {
    item: windows_sys::Wdk::Foundation::PIO_WORKITEM,
    queued: AtomicBool,
    done: UnsafeCell<KEVENT>,
    target: T,
}

// SAFETY: the work item and event are used through kernel calls that synchronise internally;
// `queued` is atomic; the target is `Sync + Send`.
unsafe impl<T: Work> Sync for WorkInner<T> {}
// SAFETY: as above.
unsafe impl<T: Work> Send for WorkInner<T> {}

/// An `IO_WORKITEM` bound to its target and to a device object (which the I/O manager keeps
/// referenced while the item is queued, so the driver cannot unload under it).
pub struct WorkItem<T: Work> {
    inner: PoolBox<WorkInner<T>>,
}

impl<T: Work> core::fmt::Debug for WorkItem<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("WorkItem")
    }
}

type WorkRoutine = unsafe extern "system" fn(*const DEVICE_OBJECT, *const c_void);

unsafe extern "system" fn run_work<T: Work>(_device: *const DEVICE_OBJECT, context: *const c_void) {
    // SAFETY: the context is the `WorkInner` in the pool box of the `WorkItem` that queued this
    // run; its drop waits for `done`, so it is live.
    let inner = unsafe { &*context.cast::<WorkInner<T>>() };
    inner.target.run();
    inner.queued.store(false, Ordering::Release);
    // SAFETY: the event was initialised in `WorkItem::new`; signalling at PASSIVE_LEVEL.
    unsafe { ss::KeSetEvent(inner.done.get(), 0, false) };
}

impl<T: Work> WorkItem<T> {
    /// Allocates a work item for `device` (a live device object of this driver) and `target`.
    /// IRQL <= DISPATCH_LEVEL.
    ///
    /// # Safety
    /// `device` stays a live device object until the work item is dropped.
    pub unsafe fn new(device: NonNull<DEVICE_OBJECT>, target: T, tag: PoolTag) -> Option<Self> {
        // SAFETY: the caller guarantees `device` is live.
        let item = unsafe { ss::IoAllocateWorkItem(device.as_ptr()) };
        if item == 0 {
            return None;
        }
        let Some(inner) = PoolBox::new(
            WorkInner {
                item,
                queued: AtomicBool::new(false),
                // SAFETY: a zeroed KEVENT is plain data, initialised below.
                done: UnsafeCell::new(unsafe { MaybeUninit::zeroed().assume_init() }),
                target,
            },
            tag,
        ) else {
            // SAFETY: the item was allocated above and never queued.
            unsafe { ss::IoFreeWorkItem(item) };
            return None;
        };
        // SAFETY: the event is at a fixed pool address for the box's life.
        unsafe { ss::KeInitializeEvent(inner.done.get(), NotificationEvent, true) };
        Some(Self { inner })
    }

    /// Queues the item on the delayed work queue; `false` if it is already queued.
    /// IRQL <= DISPATCH_LEVEL.
    pub fn queue(&self) -> bool {
        if self.inner.queued.swap(true, Ordering::AcqRel) {
            return false;
        }
        // SAFETY: the event is initialised; clearing it marks a run outstanding.
        unsafe { ss::KeClearEvent(self.inner.done.get()) };
        let routine: WorkRoutine = run_work::<T>;
        // SAFETY: same-size `extern "system"` function pointers; the I/O manager calls the
        // routine with the two arguments `WorkRoutine` declares.
        let routine =
            unsafe { core::mem::transmute::<WorkRoutine, unsafe extern "system" fn()>(routine) };
        // SAFETY:
        // 1. The item was allocated in `new` and is not queued (`queued` was false).
        // 2. The context is the inner structure, live until the run finished (drop waits).
        unsafe {
            ss::IoQueueWorkItem(
                self.inner.item,
                Some(routine),
                ss::DelayedWorkQueue,
                self.inner.as_ptr().cast(),
            )
        };
        true
    }

    /// The target.
    pub fn target(&self) -> &T {
        &self.inner.target
    }
}

impl<T: Work> Drop for WorkItem<T> {
    fn drop(&mut self) {
        assert_passive("a WorkItem");
        // SAFETY: the event is initialised; a wait without timeout at PASSIVE_LEVEL (checked).
        unsafe {
            ss::KeWaitForSingleObject(
                self.inner.done.get().cast_const().cast(),
                ss::Executive,
                0,
                false,
                core::ptr::null(),
            )
        };
        // SAFETY: the item is no longer queued (its run signalled `done`).
        unsafe { ss::IoFreeWorkItem(self.inner.item) };
    }
}
