//! Connecting a device interrupt with `IoConnectInterruptEx`: line-based from the translated
//! resources (`CONNECT_FULLY_SPECIFIED`), or message-signalled (`CONNECT_MESSAGE_BASED`, which
//! the kernel may satisfy with a line interrupt: the version it returns says which). The
//! [`Interrupt`] owns its service target; dropping it disconnects (PASSIVE_LEVEL), after which
//! the target cannot run again.

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::ptr::NonNull;

use windows_sys::Wdk::Foundation::DEVICE_OBJECT;
use windows_sys::Wdk::System::SystemServices as ss;

use crate::irql::{self, PASSIVE_LEVEL};
use crate::pool_box::PoolBox;
use crate::pool_tag::PoolTag;
use crate::status::{nt_success, NtStatus, STATUS_INSUFFICIENT_RESOURCES};

/// An interrupt service routine's target, called at the interrupt's DIRQL.
pub trait InterruptService: Sync + Send + 'static {
    /// Handles the interrupt; returns whether the device raised it (for shared lines).
    /// `message` is the message number for message-signalled interrupts.
    fn service(&self, message: Option<u32>) -> bool;
}

/// The interrupt to connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterruptSpec {
    /// A line interrupt from the translated resources.
    Line {
        /// Translated vector.
        vector: u32,
        /// Translated level (DIRQL).
        irql: u8,
        /// Processor affinity.
        affinity: u64,
        /// Edge-triggered (`Latched`) rather than level-sensitive.
        latched: bool,
        /// Shared with other devices.
        shared: bool,
    },
    /// The device's message-signalled interrupts (falls back to its line interrupt).
    Message,
}

/// How the connection was made, for the disconnect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connected {
    /// `CONNECT_FULLY_SPECIFIED` or `CONNECT_LINE_BASED`: one interrupt object.
    Line,
    /// `CONNECT_MESSAGE_BASED`: a message table.
    Message,
}

struct Inner<T> {
    /// The interrupt object or message table the kernel returned.
    connection: UnsafeCell<*mut c_void>,
    /// The connect version the kernel used.
    version: UnsafeCell<u32>,
    target: T,
}

// SAFETY: `connection` and `version` are written only during `connect`, before the box is
// shared, and read in `drop`; the target is `Sync + Send`.
unsafe impl<T: InterruptService> Sync for Inner<T> {}
// SAFETY: as above.
unsafe impl<T: InterruptService> Send for Inner<T> {}

/// A connected interrupt.
pub struct Interrupt<T: InterruptService> {
    inner: PoolBox<Inner<T>>,
}

impl<T: InterruptService> core::fmt::Debug for Interrupt<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Interrupt")
            .field("connected", &self.connected())
            .finish()
    }
}

unsafe extern "system" fn line_isr<T: InterruptService>(
    _interrupt: *const isize,
    context: *const c_void,
) -> bool {
    // SAFETY: the context is the target of a connected `Interrupt`, which disconnects before
    // freeing it.
    let inner = unsafe { &*context.cast::<Inner<T>>() };
    inner.target.service(None)
}

unsafe extern "system" fn message_isr<T: InterruptService>(
    _interrupt: *const isize,
    context: *const c_void,
    message: u32,
) -> bool {
    // SAFETY: as for `line_isr`.
    let inner = unsafe { &*context.cast::<Inner<T>>() };
    inner.target.service(Some(message))
}

type LineIsr = unsafe extern "system" fn(*const isize, *const c_void) -> bool;

fn line_routine<T: InterruptService>() -> ss::PKSERVICE_ROUTINE {
    let routine: LineIsr = line_isr::<T>;
    // SAFETY: `windows-sys` declares the field without parameters; the kernel calls it with the
    // two of `LineIsr`. Same size and representation.
    Some(unsafe { core::mem::transmute::<LineIsr, unsafe extern "system" fn() -> bool>(routine) })
}

type MessageIsr = unsafe extern "system" fn(*const isize, *const c_void, u32) -> bool;

fn message_routine<T: InterruptService>() -> ss::PKMESSAGE_SERVICE_ROUTINE {
    let routine: MessageIsr = message_isr::<T>;
    // SAFETY: as for `line_routine`, with the three parameters of `MessageIsr`.
    Some(unsafe {
        core::mem::transmute::<MessageIsr, unsafe extern "system" fn() -> bool>(routine)
    })
}

impl<T: InterruptService> Interrupt<T> {
    /// Connects `spec` for the device whose PDO is `pdo`. PASSIVE_LEVEL.
    ///
    /// # Safety
    /// `pdo` is the live PDO of this driver's device, and for `InterruptSpec::Line` the values
    /// come from its translated resources.
    pub unsafe fn connect(
        pdo: NonNull<DEVICE_OBJECT>,
        spec: InterruptSpec,
        target: T,
        tag: PoolTag,
    ) -> Result<Self, NtStatus> {
        let inner = PoolBox::new(
            Inner {
                connection: UnsafeCell::new(core::ptr::null_mut()),
                version: UnsafeCell::new(0),
                target,
            },
            tag,
        )
        .ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
        let context = inner.as_ptr().cast_mut().cast::<c_void>();
        let mut parameters: ss::IO_CONNECT_INTERRUPT_PARAMETERS = Default::default();
        match spec {
            InterruptSpec::Line {
                vector,
                irql,
                affinity,
                latched,
                shared,
            } => {
                parameters.Version = ss::CONNECT_FULLY_SPECIFIED;
                parameters.Anonymous.FullySpecified =
                    ss::IO_CONNECT_INTERRUPT_FULLY_SPECIFIED_PARAMETERS {
                        PhysicalDeviceObject: pdo.as_ptr(),
                        InterruptObject: inner.connection.get().cast(),
                        ServiceRoutine: line_routine::<T>(),
                        ServiceContext: context,
                        SpinLock: core::ptr::null_mut(),
                        SynchronizeIrql: irql,
                        FloatingSave: false,
                        ShareVector: shared,
                        Vector: vector,
                        Irql: irql,
                        InterruptMode: if latched {
                            ss::Latched
                        } else {
                            ss::LevelSensitive
                        },
                        ProcessorEnableMask: affinity as usize,
                        Group: 0,
                    };
            }
            InterruptSpec::Message => {
                parameters.Version = ss::CONNECT_MESSAGE_BASED;
                parameters.Anonymous.MessageBased =
                    ss::IO_CONNECT_INTERRUPT_MESSAGE_BASED_PARAMETERS {
                        PhysicalDeviceObject: pdo.as_ptr(),
                        ConnectionContext: ss::IO_CONNECT_INTERRUPT_MESSAGE_BASED_PARAMETERS_0 {
                            Generic: inner.connection.get(),
                        },
                        MessageServiceRoutine: message_routine::<T>(),
                        ServiceContext: context,
                        SpinLock: core::ptr::null_mut(),
                        SynchronizeIrql: 0,
                        FloatingSave: false,
                        FallBackServiceRoutine: line_routine::<T>(),
                    };
            }
        }
        // SAFETY:
        // 1. The parameters are complete for their version; the PDO is live (the caller's
        //    contract); the context and the connection slot are in the pool box, which outlives
        //    the connection (`drop` disconnects first).
        // 2. PASSIVE_LEVEL (this function's contract).
        let status = unsafe { ss::IoConnectInterruptEx(&mut parameters) };
        if !nt_success(status) {
            return Err(status);
        }
        // SAFETY: the box is not shared yet; the kernel reports in `Version` how it connected
        // (a message-based request may come back as `CONNECT_LINE_BASED`).
        unsafe { *inner.version.get() = parameters.Version };
        Ok(Self { inner })
    }

    /// How the interrupt is connected.
    pub fn connected(&self) -> Connected {
        // SAFETY: written once in `connect` before `self` existed.
        match unsafe { *self.inner.version.get() } {
            ss::CONNECT_MESSAGE_BASED => Connected::Message,
            _ => Connected::Line,
        }
    }

    /// The target.
    pub fn target(&self) -> &T {
        &self.inner.target
    }
}

impl<T: InterruptService> Drop for Interrupt<T> {
    fn drop(&mut self) {
        let level = irql::current();
        if level != PASSIVE_LEVEL {
            panic!("an Interrupt dropped at IRQL {level}; it must be dropped at PASSIVE_LEVEL");
        }
        // SAFETY: written once in `connect`.
        let version = unsafe { *self.inner.version.get() };
        // SAFETY: written by the kernel during `connect`.
        let connection = unsafe { *self.inner.connection.get() };
        let parameters = ss::IO_DISCONNECT_INTERRUPT_PARAMETERS {
            Version: version,
            ConnectionContext: ss::IO_DISCONNECT_INTERRUPT_PARAMETERS_0 {
                Generic: connection,
            },
        };
        // SAFETY: disconnects what `connect` connected, with the version the kernel reported, at
        // PASSIVE_LEVEL (checked); afterwards the routines cannot run, so the box may be freed.
        unsafe { ss::IoDisconnectInterruptEx(&parameters) };
    }
}
