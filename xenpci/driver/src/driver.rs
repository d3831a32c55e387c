//! The bus driver's FDO: the PnP handling of [`crate::pnp`] and the start checks of
//! [`crate::start`] over `win-km`'s WDM layer. No `unsafe` here.
#![forbid(unsafe_code)]

use win_km::event_log::{build_entry, event_code, Severity};
use win_km::fmt_buf::{self, FixedBuf};
use win_km::mdl::IoMapping;
use win_km::status::{nt_success, STATUS_SUCCESS};
use win_km::wdm::{Device, Disposition, FdoDriver, Irp, PARTIAL_DESCRIPTOR_BYTES};
use win_km::{error, event_log_writer, info, warn};
use xenpci_core::hypervisor::shared_info::{wall_clock, SharedMemory, TimeError, WallClock};

use crate::platform::X86;
use crate::pnp::{Fdo, FdoAction};
use crate::resources::{Descriptor, DESCRIPTOR_BYTES, MAX_DESCRIPTORS};
use crate::start::{bring_up, check_platform, Platform, StartFailure};

const _: () = assert!(DESCRIPTOR_BYTES == PARTIAL_DESCRIPTOR_BYTES);

/// `FILE_DEVICE_BUS_EXTENDER`.
const FILE_DEVICE_BUS_EXTENDER: u32 = 0x2A;

/// The CPU, shared by every device of the driver.
static CPU: X86 = X86::new();

/// The bus driver.
#[derive(Debug)]
pub struct XenPci;

/// The state of the FDO on the Xen platform PCI device.
#[derive(Debug)]
pub struct BusState {
    pnp: Fdo,
    /// What START found, while the device is started.
    platform: Option<Started>,
}

/// What a successful START holds until the hardware is released.
#[derive(Debug)]
struct Started {
    platform: Platform,
    /// The shared-info page, mapped from its frame in the device's window.
    shared_info: IoMapping,
}

/// The shared-info page through its mapping, for `xenpci-core`'s time readers.
struct SharedInfoView<'a>(&'a IoMapping);

impl SharedMemory for SharedInfoView<'_> {
    fn read_bytes(&self, offset: usize, out: &mut [u8]) {
        // The core keeps its reads inside the page, which the mapping covers.
        if !self.0.read_bytes(offset, out) {
            out.fill(0);
        }
    }

    fn load_u32_acquire(&self, offset: usize) -> u32 {
        // An odd value makes the core's sequence-locked read retry, then fail cleanly.
        self.0.read_u32_acquire(offset).unwrap_or(1)
    }
}

impl FdoDriver for XenPci {
    type State = BusState;
    const DEVICE_TYPE: u32 = FILE_DEVICE_BUS_EXTENDER;
    const NAME: &'static str = "xenpci";

    fn new_state() -> BusState {
        BusState {
            pnp: Fdo::new(),
            platform: None,
        }
    }

    fn pnp(state: &mut BusState, device: Device, mut irp: Irp) -> Disposition {
        let lower = device.lower();
        let minor = irp.minor_function();
        match state.pnp.on_pnp(minor) {
            FdoAction::Start => {
                let lower_status = irp.forward_and_wait(lower);
                let result = if nt_success(lower_status) {
                    start(&irp)
                } else {
                    Err(StartFailure::LowerDrivers(lower_status))
                };
                let status = match result {
                    Ok(started) => {
                        state.platform = Some(started);
                        STATUS_SUCCESS
                    }
                    Err(failure) => {
                        error!("xenpci: START failed: {failure}");
                        log_start_failure(&failure);
                        failure.status()
                    }
                };
                state.pnp.start_finished(nt_success(status));
                Disposition::Keep(irp.complete(status, 0))
            }
            FdoAction::SucceedAndPassDown => Disposition::Keep(irp.succeed_and_pass_down(lower)),
            FdoAction::ReleaseAndPassDown => {
                release(state);
                Disposition::Keep(irp.succeed_and_pass_down(lower))
            }
            FdoAction::Remove { release: held } => {
                if held {
                    release(state);
                }
                info!("xenpci: REMOVE");
                Disposition::Delete(irp.succeed_and_pass_down(lower))
            }
            FdoAction::PassDown => Disposition::Keep(irp.pass_down(lower)),
            FdoAction::Complete(status) => {
                if status != STATUS_SUCCESS {
                    warn!(
                        "xenpci: PnP minor {minor:#x} refused with {:#010x}",
                        status as u32
                    );
                }
                Disposition::Keep(irp.complete_keeping_information(status))
            }
        }
    }
}

/// The start checks after the lower drivers started the device, then the bring-up with Xen.
fn start(irp: &Irp) -> Result<Started, StartFailure> {
    let mut raw = [[0u8; DESCRIPTOR_BYTES]; MAX_DESCRIPTORS];
    let found = irp.start_resources_translated(&mut raw);
    let mut descriptors = [Descriptor::Other(0); MAX_DESCRIPTORS + 1];
    let list = found.map(|n| {
        for (d, r) in descriptors.iter_mut().zip(&raw).take(n) {
            *d = Descriptor::decode(r);
        }
        // More than `MAX_DESCRIPTORS`: hand `select` one too many, which it refuses.
        &descriptors[..n.min(MAX_DESCRIPTORS + 1)]
    });
    let platform = check_platform(&CPU, list)?;
    let r = platform.resources;
    info!(
        "xenpci: START: Xen {}.{} (CPUID base {:#x}); window {:#x}+{:#x}; interrupt {:?}",
        platform.xen.version.major,
        platform.xen.version.minor,
        platform.xen.base,
        r.window_start,
        r.window_length,
        r.interrupt
    );
    CPU.set_window(r.window_start, r.window_length);
    match bring_up_and_map(platform) {
        Ok(started) => Ok(started),
        Err(failure) => {
            CPU.set_window(0, 0);
            Err(failure)
        }
    }
}

fn bring_up_and_map(platform: Platform) -> Result<Started, StartFailure> {
    let up = bring_up(&CPU)?;
    let shared_info =
        CPU.map_window_frame(up.shared_info_gfn)
            .ok_or(StartFailure::SharedInfoUnmapped {
                gfn: up.shared_info_gfn,
            })?;
    let started = Started {
        platform,
        shared_info,
    };
    match started.wall_clock() {
        Ok(wc) => info!(
            "xenpci: START: hypercalls by {:?}; shared info at frame {:#x}; wall clock {}.{:09} s",
            up.hypervisor.mechanism, up.shared_info_gfn, wc.sec, wc.nsec
        ),
        Err(e) => warn!(
            "xenpci: START: shared info at frame {:#x}, wall clock unreadable: {e}",
            up.shared_info_gfn
        ),
    }
    Ok(started)
}

impl Started {
    /// Xen's wall clock, read from the mapped shared-info page.
    fn wall_clock(&self) -> Result<WallClock, TimeError> {
        wall_clock(&SharedInfoView(&self.shared_info))
    }
}

/// The event code of a failed START (its message text is the first insertion string).
const EVENT_START_FAILED: i32 = event_code(Severity::Error, 1);

/// Writes a failed START to the System event log (best effort).
fn log_start_failure(failure: &StartFailure) {
    let text: FixedBuf<128> = fmt_buf::format(format_args!("START failed: {failure}"));
    let entry = build_entry(EVENT_START_FAILED, 1, failure.status(), &[text.as_str()]);
    if !event_log_writer::write(&entry) {
        warn!("xenpci: could not write the START failure to the event log");
    }
}

fn release(state: &mut BusState) {
    // Dropping `Started` unmaps the shared-info page.
    if let Some(started) = state.platform.take() {
        CPU.set_window(0, 0);
        let xen = started.platform.xen.version;
        info!(
            "xenpci: released the bus on Xen {}.{}",
            xen.major, xen.minor
        );
    }
}
