//! A WDM function driver without `unsafe` in the driver: the driver implements [`FdoDriver`]
//! (safe methods over an owned [`Irp`] and its per-device state) and names it with
//! [`driver_entry!`](crate::driver_entry); this module holds the `extern "system"` entry points,
//! the device extension and the device-object lifetime.
//!
//! Rules the module keeps:
//! - AddDevice creates the FDO (no name, `FILE_DEVICE_SECURE_OPEN`), initialises the extension in
//!   place, attaches to the PDO's stack, sets `DO_POWER_PAGABLE` and clears
//!   `DO_DEVICE_INITIALIZING` last.
//! - PnP IRPs are serialised by the PnP manager, so [`FdoDriver::pnp`] gets `&mut` state.
//!   Power and WMI IRPs may arrive concurrently; their handlers only read the device objects
//!   (never changed after AddDevice) and never touch the state.
//! - Every dispatch routine holds the FDO's remove lock while it uses the device; REMOVE waits
//!   for all holders (`IoReleaseRemoveLockAndWaitEx`) before the driver passes it down, and IRPs
//!   arriving after that fail with `STATUS_NO_SUCH_DEVICE`.
//! - An [`Irp`] is consumed by completing or passing it on, so it is finished exactly once.
//! - When `pnp` returns [`Disposition::Delete`] (after passing REMOVE down), the state is dropped,
//!   the FDO detached and deleted.

use core::cell::UnsafeCell;
use core::marker::PhantomData;
use core::mem::{align_of, offset_of, size_of};
use core::ptr::{self, NonNull};

use windows_sys::Wdk::Foundation::{DEVICE_OBJECT, DRIVER_OBJECT, IRP};
use windows_sys::Wdk::Storage::FileSystem::{DO_DEVICE_INITIALIZING, DO_POWER_PAGABLE};
use windows_sys::Wdk::System::SystemServices as ss;
use windows_sys::Win32::Foundation::UNICODE_STRING;

use crate::irp;
use crate::layout;
use crate::pool_tag::PoolTag;
use crate::status::{nt_success, NtStatus, STATUS_NO_SUCH_DEVICE, STATUS_SUCCESS};

/// `FILE_DEVICE_SECURE_OPEN`.
const FILE_DEVICE_SECURE_OPEN: u32 = 0x100;
const IRP_MJ_POWER: usize = 0x16;
const IRP_MJ_SYSTEM_CONTROL: usize = 0x17;
const IRP_MJ_PNP: usize = 0x1B;

/// Bytes of one `CM_PARTIAL_RESOURCE_DESCRIPTOR` on x64 (see [`crate::layout`]: the resource
/// list is read as bytes because `windows-sys`'s declaration of it differs from `wdm.h`).
pub const PARTIAL_DESCRIPTOR_BYTES: usize = layout::CM_PARTIAL_RESOURCE_DESCRIPTOR_BYTES;
const LIST_FIRST_FULL: usize = layout::CM_RESOURCE_LIST_LIST;
const FULL_PARTIAL_COUNT: usize = layout::CM_FULL_RESOURCE_DESCRIPTOR_COUNT;
const FULL_FIRST_PARTIAL: usize = layout::CM_FULL_RESOURCE_DESCRIPTOR_PARTIALS;

/// What a PnP handler did with the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// The device lives on; return this status from the dispatch routine.
    Keep(NtStatus),
    /// REMOVE was passed down: drop the state, detach and delete the FDO, return this status.
    Delete(NtStatus),
}

/// A WDM function driver for one kind of device.
pub trait FdoDriver: 'static {
    /// Per-device state, kept in the FDO's extension.
    type State;
    /// The device type given to `IoCreateDevice` (for example `FILE_DEVICE_BUS_EXTENDER`).
    const DEVICE_TYPE: u32;
    /// The driver's name in log lines.
    const NAME: &'static str;

    /// `DriverEntry`'s own work (after the entry points are set). PASSIVE_LEVEL.
    fn init() -> NtStatus {
        STATUS_SUCCESS
    }

    /// The state of a new FDO. PASSIVE_LEVEL.
    fn new_state() -> Self::State;

    /// An `IRP_MJ_PNP` IRP. PASSIVE_LEVEL, serialised per device.
    fn pnp(state: &mut Self::State, device: Device, irp: Irp) -> Disposition;

    /// Unload. PASSIVE_LEVEL.
    fn unload() {}
}

/// The device below an FDO. Valid while the FDO exists (the I/O manager keeps the stack alive).
#[derive(Clone, Copy, Debug)]
pub struct Lower(NonNull<DEVICE_OBJECT>);

/// An IRP this driver owns; consumed by completing it or passing it on.
#[derive(Debug)]
pub struct Irp {
    irp: NonNull<IRP>,
    _not_send: PhantomData<*mut IRP>,
}

impl Irp {
    fn raw(&self) -> *mut IRP {
        self.irp.as_ptr()
    }

    /// The current stack location's minor function code.
    pub fn minor_function(&self) -> u8 {
        // SAFETY: `self` owns the live IRP and no reference into it is held.
        unsafe { irp::function_codes(self.raw()) }.1
    }

    /// Completes the IRP with `status` and `information`; returns `status`.
    pub fn complete(self, status: NtStatus, information: usize) -> NtStatus {
        // SAFETY: `self` owns the IRP and is consumed.
        unsafe { irp::complete(self.raw(), status, information) }
    }

    /// Completes the IRP with `status`, keeping the information it carries.
    pub fn complete_keeping_information(self, status: NtStatus) -> NtStatus {
        // SAFETY: `self` owns the live IRP.
        let (_, information) = unsafe { irp::io_status(self.raw()) };
        self.complete(status, information)
    }

    /// Passes the IRP down unchanged.
    pub fn pass_down(self, lower: Lower) -> NtStatus {
        // SAFETY: `self` owns the IRP and is consumed; `lower` is the live lower device, so the
        // IRP has its location.
        unsafe { irp::pass_down(lower.0.as_ptr(), self.raw()) }
    }

    /// Sets the status to success and passes the IRP down (a PnP IRP this driver handled).
    pub fn succeed_and_pass_down(self, lower: Lower) -> NtStatus {
        // SAFETY: `self` owns the live IRP.
        unsafe { irp::set_status(self.raw(), STATUS_SUCCESS) };
        self.pass_down(lower)
    }

    /// Forwards the IRP to `lower` and waits until the lower drivers complete it; returns their
    /// status, and the IRP is owned again. PASSIVE_LEVEL only (PnP dispatch).
    pub fn forward_and_wait(&mut self, lower: Lower) -> NtStatus {
        // SAFETY: `self` owns the IRP, `lower` is live and the IRP has a location for it;
        // ownership returns when the call does.
        unsafe { irp::forward_and_wait(lower.0.as_ptr(), self.raw()) }
    }

    /// Copies the partial descriptors of a start IRP's translated resource list into `out` as
    /// bytes (see [`PARTIAL_DESCRIPTOR_BYTES`]); returns how many, `out.len() + 1` if there are
    /// more than `out` holds, or `None` when the IRP carries no list. Only for
    /// `IRP_MN_START_DEVICE`.
    pub fn start_resources_translated(
        &self,
        out: &mut [[u8; PARTIAL_DESCRIPTOR_BYTES]],
    ) -> Option<usize> {
        if self.minor_function() != 0 {
            return None;
        }
        // SAFETY: `self` owns the live IRP.
        let location = unsafe { irp::current_stack_location(self.raw()) };
        // SAFETY: the current location of an owned IRP is valid to read.
        let location = unsafe { &*location };
        // SAFETY: for IRP_MN_START_DEVICE (checked above) the parameters are the `StartDevice`
        // variant.
        let list = unsafe { location.Parameters.StartDevice.AllocatedResourcesTranslated };
        if list.is_null() {
            return None;
        }
        // SAFETY: the PnP manager built the list for this start IRP; it stays valid while the
        // IRP is owned.
        Some(unsafe { copy_partial_descriptors(list.cast(), out) })
    }
}

/// Walks a `CM_RESOURCE_LIST` and copies its partial descriptors.
///
/// # Safety
/// `list` points to a valid resource list: `Count` full descriptors, each followed by its
/// `Count` partial descriptors.
unsafe fn copy_partial_descriptors(
    list: *const u8,
    out: &mut [[u8; PARTIAL_DESCRIPTOR_BYTES]],
) -> usize {
    // SAFETY: the list starts with its `u32` count (unaligned read; the list is packed).
    let full_count = unsafe { ptr::read_unaligned(list.cast::<u32>()) };
    let mut full = list.wrapping_add(LIST_FIRST_FULL);
    let mut count = 0;
    for _ in 0..full_count {
        // SAFETY: `full` points at a full descriptor of the list (the caller's contract).
        let partials =
            unsafe { ptr::read_unaligned(full.wrapping_add(FULL_PARTIAL_COUNT).cast::<u32>()) };
        let mut partial = full.wrapping_add(FULL_FIRST_PARTIAL);
        for _ in 0..partials {
            if count == out.len() {
                return count + 1;
            }
            // SAFETY: `partial` points at one of the full descriptor's partial descriptors.
            out[count] =
                unsafe { ptr::read_unaligned(partial.cast::<[u8; PARTIAL_DESCRIPTOR_BYTES]>()) };
            count += 1;
            partial = partial.wrapping_add(PARTIAL_DESCRIPTOR_BYTES);
        }
        full = partial;
    }
    count
}

/// The device objects around one FDO, fixed from AddDevice on.
#[derive(Clone, Copy, Debug)]
pub struct Device {
    this: NonNull<DEVICE_OBJECT>,
    lower: Lower,
    pdo: NonNull<DEVICE_OBJECT>,
}

impl Device {
    /// The device below the FDO, where IRPs are passed.
    pub fn lower(&self) -> Lower {
        self.lower
    }

    /// The PDO (for interrupt connection and device registry keys).
    pub fn pdo(&self) -> NonNull<DEVICE_OBJECT> {
        self.pdo
    }

    /// The FDO itself (for work items).
    pub fn this(&self) -> NonNull<DEVICE_OBJECT> {
        self.this
    }
}

/// The FDO's extension.
struct Extension<D: FdoDriver> {
    /// Set in AddDevice, never changed: read by every dispatch routine.
    device: Device,
    /// Keeps REMOVE from deleting the FDO while another IRP is in a dispatch routine.
    remove_lock: UnsafeCell<ss::IO_REMOVE_LOCK>,
    /// Touched only by PnP dispatch (serialised).
    state: D::State,
}

/// The pool tag of the remove lock's tracking.
const REMOVE_LOCK_TAG: PoolTag = PoolTag::new(b"XPrl");
const REMOVE_LOCK_SIZE: u32 = size_of::<ss::IO_REMOVE_LOCK>() as u32;
/// `IRP_MN_REMOVE_DEVICE`.
const IRP_MN_REMOVE_DEVICE: u8 = 0x02;

/// Field pointers into one of this driver's FDO extensions, without creating a reference to the
/// whole extension (PnP may hold `&mut` to the state while other dispatch routines run).
struct ExtensionFields<D: FdoDriver> {
    device: *const Device,
    remove_lock: *mut ss::IO_REMOVE_LOCK,
    state: *mut D::State,
}

fn fields<D: FdoDriver>(fdo: *const DEVICE_OBJECT) -> Option<ExtensionFields<D>> {
    let fdo = NonNull::new(fdo.cast_mut())?;
    // SAFETY: the I/O manager calls the dispatch routines with a live device object of this
    // driver, and this driver creates only FDOs with an `Extension<D>`.
    let extension = unsafe { fdo.as_ref() }
        .DeviceExtension
        .cast::<Extension<D>>();
    Some(ExtensionFields {
        device: extension
            .wrapping_byte_add(offset_of!(Extension<D>, device))
            .cast(),
        remove_lock: extension
            .wrapping_byte_add(offset_of!(Extension<D>, remove_lock))
            .cast(),
        state: extension
            .wrapping_byte_add(offset_of!(Extension<D>, state))
            .cast(),
    })
}

impl<D: FdoDriver> ExtensionFields<D> {
    fn device(&self) -> Device {
        // SAFETY: AddDevice initialised the extension; `device` is never written again.
        unsafe { self.device.read() }
    }

    /// `IoAcquireRemoveLock` with the IRP as tag; `false` once REMOVE has begun.
    fn acquire(&self, irp: *mut IRP) -> bool {
        // SAFETY:
        // 1. The remove lock was initialised in AddDevice and lives in the extension until the
        //    FDO is deleted, which waits for every holder.
        // 2. The tag is the IRP pointer (released with the same tag); no file/line tracking.
        let status = unsafe {
            ss::IoAcquireRemoveLockEx(
                self.remove_lock,
                irp.cast_const().cast(),
                c"".as_ptr().cast(),
                0,
                REMOVE_LOCK_SIZE,
            )
        };
        nt_success(status)
    }

    fn release(&self, irp: *mut IRP) {
        // SAFETY: releases a hold taken by `acquire` with the same tag.
        unsafe {
            ss::IoReleaseRemoveLockEx(self.remove_lock, irp.cast_const().cast(), REMOVE_LOCK_SIZE)
        };
    }
}

/// The entry point's work, for [`driver_entry!`](crate::driver_entry).
///
/// # Safety
/// Called only from `DriverEntry`, with the driver object the I/O manager passed.
pub unsafe fn driver_entry<D: FdoDriver>(
    driver: *mut DRIVER_OBJECT,
    _registry: *const UNICODE_STRING,
) -> NtStatus {
    crate::pool::init();
    crate::mdl::init();
    // SAFETY: the driver object lives until unload.
    unsafe { crate::event_log_writer::set_source(driver.cast()) };
    // SAFETY: the I/O manager hands `DriverEntry` a live, writable driver object.
    let object = unsafe { &mut *driver };
    object.MajorFunction[IRP_MJ_PNP] = Some(dispatch_pnp::<D>);
    object.MajorFunction[IRP_MJ_POWER] = Some(dispatch_power::<D>);
    object.MajorFunction[IRP_MJ_SYSTEM_CONTROL] = Some(dispatch_system_control::<D>);
    object.DriverUnload = Some(unload::<D>);
    // SAFETY: a driver object passed to `DriverEntry` has its extension.
    unsafe { (*object.DriverExtension).AddDevice = Some(add_device::<D>) };
    crate::info!("{}: DriverEntry", D::NAME);
    D::init()
}

unsafe extern "system" fn unload<D: FdoDriver>(_driver: *const DRIVER_OBJECT) {
    D::unload();
    crate::info!("{}: unloaded", D::NAME);
}

unsafe extern "system" fn add_device<D: FdoDriver>(
    driver: *const DRIVER_OBJECT,
    pdo: *const DEVICE_OBJECT,
) -> NtStatus {
    const {
        assert!(
            align_of::<Extension<D>>() <= 16,
            "device state needs more than 16-byte alignment"
        )
    };
    let Some(pdo_ref) = NonNull::new(pdo.cast_mut()) else {
        return STATUS_NO_SUCH_DEVICE;
    };
    let mut fdo: *mut DEVICE_OBJECT = ptr::null_mut();
    // SAFETY:
    // 1. `driver` is this driver's live object (AddDevice contract); no name.
    // 2. The extension size is that of `Extension<D>`, initialised below before the device can
    //    receive IRPs (it is still initialising).
    // 3. `fdo` receives the new device object.
    let status = unsafe {
        ss::IoCreateDevice(
            driver,
            size_of::<Extension<D>>() as u32,
            ptr::null(),
            D::DEVICE_TYPE,
            FILE_DEVICE_SECURE_OPEN,
            false,
            &mut fdo,
        )
    };
    let Some(this) = NonNull::new(fdo).filter(|_| nt_success(status)) else {
        crate::error!(
            "{}: AddDevice: IoCreateDevice failed with {:#010x}",
            D::NAME,
            status as u32
        );
        return status;
    };
    // SAFETY: `fdo` was just created and `pdo` is the live PDO the PnP manager passed;
    // AddDevice runs at PASSIVE_LEVEL.
    let lower = unsafe { ss::IoAttachDeviceToDeviceStack(fdo, pdo) };
    let Some(lower) = NonNull::new(lower) else {
        crate::error!(
            "{}: AddDevice: could not attach to the device stack",
            D::NAME
        );
        // SAFETY: `fdo` is ours, referenced nowhere else, and its extension was never written.
        unsafe { ss::IoDeleteDevice(fdo) };
        return STATUS_NO_SUCH_DEVICE;
    };
    // SAFETY: `fdo` is the live device object just created.
    let object = unsafe { &mut *fdo };
    let extension = object.DeviceExtension.cast::<Extension<D>>();
    // SAFETY: the extension is `size_of::<Extension<D>>()` bytes of nonpaged memory, 16-byte
    // aligned (checked above against `Extension<D>`), owned by the new device object and
    // uninitialised, so it is written, not assigned.
    unsafe {
        ptr::write(
            extension,
            Extension {
                device: Device {
                    this,
                    lower: Lower(lower),
                    pdo: pdo_ref,
                },
                remove_lock: UnsafeCell::new(Default::default()),
                state: D::new_state(),
            },
        )
    };
    let remove_lock = extension
        .wrapping_byte_add(offset_of!(Extension<D>, remove_lock))
        .cast::<ss::IO_REMOVE_LOCK>();
    // SAFETY: the extension was just initialised; the lock stays at this address until the FDO
    // is deleted. No lock-time limits (free-build remove lock).
    unsafe {
        ss::IoInitializeRemoveLockEx(remove_lock, REMOVE_LOCK_TAG.value(), 0, 0, REMOVE_LOCK_SIZE)
    };
    object.Flags |= DO_POWER_PAGABLE;
    // Last: publishes the initialised extension.
    object.Flags &= !DO_DEVICE_INITIALIZING;
    crate::info!("{}: AddDevice: FDO attached", D::NAME);
    STATUS_SUCCESS
}

unsafe extern "system" fn dispatch_pnp<D: FdoDriver>(
    device: *const DEVICE_OBJECT,
    irp: *mut IRP,
) -> NtStatus {
    let (Some(fields), Some(irp_ref)) = (fields::<D>(device), NonNull::new(irp)) else {
        return STATUS_NO_SUCH_DEVICE;
    };
    let owned = Irp {
        irp: irp_ref,
        _not_send: PhantomData,
    };
    if !fields.acquire(irp) {
        return owned.complete(STATUS_NO_SUCH_DEVICE, 0);
    }
    let removing = owned.minor_function() == IRP_MN_REMOVE_DEVICE;
    if removing {
        // SAFETY: releases this IRP's hold and waits until every other holder (power and WMI
        // IRPs in flight) has released; later acquires fail, so no new IRP reaches the FDO.
        unsafe {
            ss::IoReleaseRemoveLockAndWaitEx(
                fields.remove_lock,
                irp.cast_const().cast(),
                REMOVE_LOCK_SIZE,
            )
        };
    }
    let device_handle = fields.device();
    // SAFETY: the extension was initialised by AddDevice; the PnP manager serialises PnP IRPs
    // for a device and only PnP dispatch borrows the state, so this is the only reference.
    let state = unsafe { &mut *fields.state };
    let disposition = D::pnp(state, device_handle, owned);
    match disposition {
        Disposition::Keep(status) => {
            if !removing {
                fields.release(irp);
            }
            status
        }
        Disposition::Delete(status) => {
            // SAFETY: REMOVE has been passed down and no other IRP holds the remove lock; the
            // state is dropped once, here, and nothing uses it afterwards.
            unsafe { ptr::drop_in_place(fields.state) };
            // SAFETY: the WDM order for REMOVE: pass down (done), detach, delete.
            unsafe { ss::IoDetachDevice(device_handle.lower.0.as_ptr()) };
            // SAFETY: the FDO is ours and detached; nothing uses it after this.
            unsafe { ss::IoDeleteDevice(device) };
            crate::info!("{}: FDO deleted", D::NAME);
            status
        }
    }
}

unsafe extern "system" fn dispatch_power<D: FdoDriver>(
    device: *const DEVICE_OBJECT,
    irp: *mut IRP,
) -> NtStatus {
    let Some(fields) = fields::<D>(device) else {
        return STATUS_NO_SUCH_DEVICE;
    };
    if !fields.acquire(irp) {
        // SAFETY: the live power IRP is owned here; the next one may start, then this one is
        // completed once.
        unsafe { ss::PoStartNextPowerIrp(irp) };
        // SAFETY: as above.
        return unsafe { irp::complete(irp, STATUS_NO_SUCH_DEVICE, 0) };
    }
    let lower = fields.device().lower;
    // SAFETY: the I/O manager hands over a live power IRP; it is passed down once.
    let status = unsafe { irp::pass_power_down(lower.0.as_ptr(), irp) };
    fields.release(irp);
    status
}

unsafe extern "system" fn dispatch_system_control<D: FdoDriver>(
    device: *const DEVICE_OBJECT,
    irp: *mut IRP,
) -> NtStatus {
    let Some(fields) = fields::<D>(device) else {
        return STATUS_NO_SUCH_DEVICE;
    };
    if !fields.acquire(irp) {
        // SAFETY: the live IRP is owned here and completed once.
        return unsafe { irp::complete(irp, STATUS_NO_SUCH_DEVICE, 0) };
    }
    let lower = fields.device().lower;
    // SAFETY: no WMI provider is registered, so the live IRP is passed down once unchanged.
    let status = unsafe { irp::pass_down(lower.0.as_ptr(), irp) };
    fields.release(irp);
    status
}

/// Defines the image's `DriverEntry` for an [`FdoDriver`]: `win_km::driver_entry!(MyDriver);`.
/// Use it in a module that allows `unsafe_code` (the attribute `no_mangle` counts as unsafe).
#[macro_export]
macro_rules! driver_entry {
    ($driver:ty) => {
        /// The image's entry point.
        ///
        /// # Safety
        /// Called once by the I/O manager with a live driver object.
        #[unsafe(no_mangle)]
        pub unsafe extern "system" fn DriverEntry(
            driver: *mut $crate::windows_sys::Wdk::Foundation::DRIVER_OBJECT,
            registry_path: *const $crate::windows_sys::Win32::Foundation::UNICODE_STRING,
        ) -> i32 {
            // SAFETY: this is `DriverEntry`, called by the I/O manager.
            unsafe { $crate::wdm::driver_entry::<$driver>(driver, registry_path) }
        }
    };
}
