//! Unplugging QEMU's emulated disks and NICs, and the product numbers of `hvm/pvdrivers.h`.
//!
//! An HVM guest starts with emulated IDE, SCSI or NVMe disks and emulated NICs backed by the same
//! images and networks as its PV devices. Before Windows binds drivers to them, the PV bus driver
//! asks QEMU to remove them, through I/O ports of the Xen platform PCI device (the protocol only
//! works when that device is present). The protocol, from the driver's side (Xen's
//! `docs/misc/hvm-emulated-unplug.pandoc`, implemented by QEMU's Xen platform device):
//!
//! 1. Read a 16-bit word from port [`PORT_MAGIC`] (0x10). [`UNPLUG_MAGIC`] (0x49d2) means the
//!    protocol is available; anything else means it is not, and the driver does nothing more
//!    ([`unplug_support`]).
//! 2. Read a byte from port [`PORT_PROTOCOL_VERSION`] (0x12). If it is 0, go to step 6.
//! 3. Write the driver's 16-bit product number (one of the `PVDRIVERS_PRODUCT_*` values) to port
//!    [`PORT_PRODUCT_NUMBER`] (0x12).
//! 4. Write the driver's 32-bit build number to port [`PORT_BUILD_NUMBER`] (0x10).
//! 5. Read the 16-bit magic from port 0x10 again. If it is no longer [`UNPLUG_MAGIC`] (the
//!    documented answer is [`UNPLUG_MAGIC_BLACKLISTED`], 0xd249) this product and build are
//!    blacklisted: the drivers must not load and the emulated devices must stay
//!    ([`is_blacklisted`]). The toolstack blacklists a build by creating
//!    `/mh/driver-blacklist/<product name>/<build number>` in xenstore.
//! 6. Write the 16-bit [`UnplugFlags`] mask of the devices to remove to port [`PORT_UNPLUG`]
//!    (0x10). They disappear from their buses, so this must happen before the guest enumerates
//!    them (for Windows: from a boot-start driver, before the storage and network class drivers
//!    bind).
//!
//! Once the magic has been seen (0x49d2 or 0xd249), the driver may also log to QEMU's log by
//! writing bytes to port [`PORT_LOG`] (0x12), one byte at a time, each line ending in `\n`.
//! QEMU rate-limits these messages heavily; they are for support, not for volume.
//!
//! Byte accesses to port 0x10 read and write the platform flags (bit 0 locks the legacy BIOS ROM
//! area); they are not part of unplugging.

use bitflags::bitflags;

/// The first I/O port of the platform device's fixed range.
#[doc(alias = "XEN_IOPORT_BASE")]
pub const PORT_BASE: u16 = 0x10;
/// 16-bit read: [`UNPLUG_MAGIC`] if the protocol is available.
#[doc(alias = "XEN_IOPORT_MAGIC")]
pub const PORT_MAGIC: u16 = PORT_BASE;
/// 16-bit write: the [`UnplugFlags`] of the devices to remove.
#[doc(alias = "XEN_IOPORT_UNPLUG")]
pub const PORT_UNPLUG: u16 = PORT_BASE;
/// 32-bit write: the driver's build number.
#[doc(alias = "XEN_IOPORT_DRVVER")]
pub const PORT_BUILD_NUMBER: u16 = PORT_BASE;
/// 8-bit read: the protocol version (0 means "no product registration").
#[doc(alias = "XEN_IOPORT_PROTOVER")]
pub const PORT_PROTOCOL_VERSION: u16 = PORT_BASE + 2;
/// 16-bit write: the driver's product number (`PVDRIVERS_PRODUCT_*`).
#[doc(alias = "XEN_IOPORT_PRODNUM")]
pub const PORT_PRODUCT_NUMBER: u16 = PORT_BASE + 2;
/// 8-bit write: one byte of a log line for QEMU's log.
#[doc(alias = "XEN_IOPORT_SYSLOG")]
pub const PORT_LOG: u16 = PORT_BASE + 2;

/// The magic number read from [`PORT_MAGIC`] when the protocol is available.
#[doc(alias = "XEN_IOPORT_MAGIC_VAL")]
pub const UNPLUG_MAGIC: u16 = 0x49d2;
/// The byte-swapped magic read from [`PORT_MAGIC`] when this driver build is blacklisted.
pub const UNPLUG_MAGIC_BLACKLISTED: u16 = 0xd249;

bitflags! {
    /// The devices to unplug, written to [`PORT_UNPLUG`].
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct UnplugFlags: u16 {
        /// All emulated IDE and SCSI disks, but not CD drives.
        #[doc(alias = "UNPLUG_ALL_IDE_DISKS")]
        #[doc(alias = "UNPLUG_ALL_DISKS")]
        const ALL_IDE_DISKS = 1 << 0;
        /// All emulated NICs.
        #[doc(alias = "UNPLUG_ALL_NICS")]
        const ALL_NICS = 1 << 1;
        /// All IDE disks except the primary master (not CD drives); overridden by
        /// [`ALL_IDE_DISKS`](Self::ALL_IDE_DISKS).
        #[doc(alias = "UNPLUG_AUX_IDE_DISKS")]
        const AUX_IDE_DISKS = 1 << 2;
        /// All emulated NVMe disks.
        #[doc(alias = "UNPLUG_NVME_DISKS")]
        const NVME_DISKS = 1 << 3;
    }
}

/// What the first read of [`PORT_MAGIC`] says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnplugSupport {
    /// [`UNPLUG_MAGIC`]: the protocol is available.
    Available,
    /// [`UNPLUG_MAGIC_BLACKLISTED`]: the protocol is available but the drivers are blacklisted
    /// (seen when a driver reloads after a blacklisting); logging is still allowed.
    Blacklisted,
    /// Anything else: no Xen platform device, or a device model without the protocol.
    Absent,
}

/// Classifies the first 16-bit read of [`PORT_MAGIC`].
pub const fn unplug_support(magic: u16) -> UnplugSupport {
    match magic {
        UNPLUG_MAGIC => UnplugSupport::Available,
        UNPLUG_MAGIC_BLACKLISTED => UnplugSupport::Blacklisted,
        _ => UnplugSupport::Absent,
    }
}

/// Whether the read of [`PORT_MAGIC`] after writing the product and build numbers (step 5) says
/// the drivers must not load: anything other than [`UNPLUG_MAGIC`] does.
pub const fn is_blacklisted(magic_after_registration: u16) -> bool {
    magic_after_registration != UNPLUG_MAGIC
}

/// Citrix's XenSource Windows drivers.
pub const PVDRIVERS_PRODUCT_XENSOURCE_WINDOWS: u16 = 0x0001;
/// James Harper's GPLPV Windows drivers.
pub const PVDRIVERS_PRODUCT_GPLPV_WINDOWS: u16 = 0x0002;
/// Linux's PV-on-HVM drivers.
pub const PVDRIVERS_PRODUCT_LINUX: u16 = 0x0003;
/// Citrix's XenServer Windows drivers, version 7.0 and later.
pub const PVDRIVERS_PRODUCT_XENSERVER_WINDOWS_V7_0: u16 = 0x0004;
/// Citrix's XenServer Windows drivers, version 7.2 and later.
pub const PVDRIVERS_PRODUCT_XENSERVER_WINDOWS_V7_2: u16 = 0x0005;
/// Experimental drivers with no registered number.
pub const PVDRIVERS_PRODUCT_EXPERIMENTAL: u16 = 0xffff;

/// The registry of product names and numbers (`PVDRIVERS_PRODUCT_LIST`), in the header's order.
/// The name is the `<product name>` of the xenstore blacklist path.
#[doc(alias = "PVDRIVERS_PRODUCT_LIST")]
pub const PVDRIVERS_PRODUCTS: [(&str, u16); 6] = [
    ("xensource-windows", PVDRIVERS_PRODUCT_XENSOURCE_WINDOWS),
    ("gplpv-windows", PVDRIVERS_PRODUCT_GPLPV_WINDOWS),
    ("linux", PVDRIVERS_PRODUCT_LINUX),
    (
        "xenserver-windows-v7.0+",
        PVDRIVERS_PRODUCT_XENSERVER_WINDOWS_V7_0,
    ),
    (
        "xenserver-windows-v7.2+",
        PVDRIVERS_PRODUCT_XENSERVER_WINDOWS_V7_2,
    ),
    ("experimental", PVDRIVERS_PRODUCT_EXPERIMENTAL),
];

/// The registered name of a product number, if it has one.
pub fn pvdrivers_product_name(product: u16) -> Option<&'static str> {
    PVDRIVERS_PRODUCTS
        .iter()
        .find(|&&(_, number)| number == product)
        .map(|&(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!(
            (PORT_MAGIC, PORT_UNPLUG, PORT_BUILD_NUMBER),
            (0x10, 0x10, 0x10)
        );
        assert_eq!(
            (PORT_PROTOCOL_VERSION, PORT_PRODUCT_NUMBER, PORT_LOG),
            (0x12, 0x12, 0x12)
        );
    }

    #[test]
    fn unplug_bits() {
        assert_eq!(UnplugFlags::ALL_IDE_DISKS.bits(), 1);
        assert_eq!(UnplugFlags::ALL_NICS.bits(), 2);
        assert_eq!(UnplugFlags::AUX_IDE_DISKS.bits(), 4);
        assert_eq!(UnplugFlags::NVME_DISKS.bits(), 8);
        let all = UnplugFlags::ALL_IDE_DISKS | UnplugFlags::ALL_NICS | UnplugFlags::NVME_DISKS;
        assert_eq!(all.bits(), 0x0b);
    }

    #[test]
    fn magic_answers() {
        assert_eq!(unplug_support(0x49d2), UnplugSupport::Available);
        assert_eq!(unplug_support(0xd249), UnplugSupport::Blacklisted);
        assert_eq!(unplug_support(0xffff), UnplugSupport::Absent);
        assert_eq!(unplug_support(0), UnplugSupport::Absent);
        assert!(!is_blacklisted(0x49d2));
        assert!(is_blacklisted(0xd249));
        assert!(is_blacklisted(0xffff));
    }

    #[test]
    fn product_names() {
        assert_eq!(
            pvdrivers_product_name(PVDRIVERS_PRODUCT_GPLPV_WINDOWS),
            Some("gplpv-windows")
        );
        assert_eq!(pvdrivers_product_name(0xffff), Some("experimental"));
        assert_eq!(pvdrivers_product_name(0x0006), None);
    }
}
