//! Finding the Xen platform PCI device (5853:0001) on bus 0 through configuration mechanism #1
//! (ports 0xcf8/0xcfc), as firmware left it: BAR0 (I/O) and BAR1 (memory: the window where
//! shared info and grant frames are placed), each with its size.

use xenpci_core::hypervisor::PortIo;

const CONFIG_ADDRESS: u16 = 0xcf8;
const CONFIG_DATA: u16 = 0xcfc;
/// Xen's PCI vendor id.
pub const XEN_VENDOR: u16 = 0x5853;
/// The platform device's id.
pub const PLATFORM_DEVICE: u16 = 0x0001;

/// A base address register, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bar {
    /// I/O ports from `base`, `len` of them.
    Io {
        /// First port.
        base: u16,
        /// Ports decoded.
        len: u32,
    },
    /// 32-bit memory from `base`, `len` bytes.
    Memory {
        /// First byte.
        base: u32,
        /// Bytes decoded.
        len: u32,
        /// Prefetchable.
        prefetchable: bool,
    },
    /// Not implemented, 64-bit, or not assigned: unusable here.
    Unusable(u32),
}

/// The platform device as found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlatformDevice {
    /// Device number on bus 0.
    pub slot: u8,
    /// Revision id.
    pub revision: u8,
    /// BAR0.
    pub bar0: Bar,
    /// BAR1.
    pub bar1: Bar,
    /// Interrupt pin (1 = INTA) and line.
    pub pin: u8,
    /// Interrupt line firmware routed.
    pub line: u8,
}

fn address(slot: u8, offset: u8) -> u32 {
    0x8000_0000 | (u32::from(slot) << 11) | u32::from(offset & 0xfc)
}

fn read(io: &impl PortIo, slot: u8, offset: u8) -> u32 {
    io.outl(CONFIG_ADDRESS, address(slot, offset));
    io.inl(CONFIG_DATA)
}

fn write(io: &impl PortIo, slot: u8, offset: u8, value: u32) {
    io.outl(CONFIG_ADDRESS, address(slot, offset));
    io.outl(CONFIG_DATA, value);
}

/// Decodes the BAR at `offset`, sizing it (all-ones written, the original put back).
fn bar(io: &impl PortIo, slot: u8, offset: u8) -> Bar {
    let original = read(io, slot, offset);
    write(io, slot, offset, 0xffff_ffff);
    let mask = read(io, slot, offset);
    write(io, slot, offset, original);
    if original & 1 == 1 {
        let size_mask = mask & 0xffff_fffc;
        let len = (!(size_mask | 0xffff_0000)).wrapping_add(1);
        match u16::try_from(original & 0xffff_fffc) {
            Ok(base) if size_mask != 0 && base != 0 => Bar::Io { base, len },
            _ => Bar::Unusable(original),
        }
    } else {
        let size_mask = mask & 0xffff_fff0;
        let memory_type = (original >> 1) & 3;
        let base = original & 0xffff_fff0;
        if size_mask == 0 || memory_type != 0 || base == 0 {
            return Bar::Unusable(original);
        }
        Bar::Memory {
            base,
            len: (!size_mask).wrapping_add(1),
            prefetchable: original & 8 != 0,
        }
    }
}

/// Scans bus 0 (function 0 of each slot) for the platform device.
pub fn find_platform_device(io: &impl PortIo) -> Option<PlatformDevice> {
    (0u8..32).find_map(|slot| {
        let id = read(io, slot, 0);
        if id & 0xffff != u32::from(XEN_VENDOR) || id >> 16 != u32::from(PLATFORM_DEVICE) {
            return None;
        }
        let class = read(io, slot, 8);
        let interrupt = read(io, slot, 0x3c);
        Some(PlatformDevice {
            slot,
            revision: class as u8,
            bar0: bar(io, slot, 0x10),
            bar1: bar(io, slot, 0x14),
            pin: (interrupt >> 8) as u8,
            line: interrupt as u8,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::{Cell, RefCell};

    /// One device: its slot, configuration registers 0..16 and each BAR's size mask.
    struct Device(u8, [u32; 16], [u32; 6]);

    /// Configuration space of bus 0 behind mechanism #1: only aligned dword accesses to the two
    /// ports are legal (anything else panics), BARs answer sizing writes as hardware does.
    struct Bus {
        address: Cell<u32>,
        devices: RefCell<std::vec::Vec<Device>>,
    }

    impl Bus {
        fn slot_reg(&self) -> (u8, usize) {
            let a = self.address.get();
            assert!(a & 0x8000_0000 != 0, "enable bit");
            assert_eq!(a & 0x00ff_0000, 0, "bus 0 only");
            assert_eq!(a & 0x700, 0, "function 0 only");
            (((a >> 11) & 31) as u8, ((a & 0xfc) >> 2) as usize)
        }
    }

    impl PortIo for Bus {
        fn inb(&self, _: u16) -> u8 {
            panic!("byte read")
        }
        fn inw(&self, _: u16) -> u16 {
            panic!("word read")
        }
        fn inl(&self, port: u16) -> u32 {
            assert_eq!(port, CONFIG_DATA);
            let (slot, reg) = self.slot_reg();
            self.devices
                .borrow()
                .iter()
                .find(|d| d.0 == slot)
                .map_or(0xffff_ffff, |d| d.1[reg])
        }
        fn outb(&self, _: u16, _: u8) {
            panic!("byte write")
        }
        fn outw(&self, _: u16, _: u16) {
            panic!("word write")
        }
        fn outl(&self, port: u16, value: u32) {
            if port == CONFIG_ADDRESS {
                self.address.set(value);
                return;
            }
            assert_eq!(port, CONFIG_DATA);
            let (slot, reg) = self.slot_reg();
            let mut devices = self.devices.borrow_mut();
            let d = devices
                .iter_mut()
                .find(|d| d.0 == slot)
                .expect("write to absent device");
            assert!((4..10).contains(&reg), "only BARs are written");
            let size_mask = d.2[reg - 4];
            let flags = d.1[reg] & if d.1[reg] & 1 == 1 { 3 } else { 0xf };
            d.1[reg] = (value & size_mask) | flags;
        }
    }

    fn platform_bus() -> Bus {
        let mut regs = [0u32; 16];
        regs[0] = 0x0001_5853;
        regs[2] = 0xff80_0001;
        regs[4] = 0x0000_c001;
        regs[5] = 0xf000_0008;
        regs[15] = 0x0000_010b;
        let mut host = [0u32; 16];
        host[0] = 0x1237_8086;
        Bus {
            address: Cell::new(0),
            devices: RefCell::new(std::vec![
                Device(0, host, [0; 6]),
                Device(2, regs, [0xffff_ff00, 0xff00_0000, 0, 0, 0, 0]),
            ]),
        }
    }

    #[test]
    fn finds_the_device_the_lab_report_shows() {
        let bus = platform_bus();
        let dev = find_platform_device(&bus).expect("found");
        assert_eq!(dev.slot, 2);
        assert_eq!(dev.revision, 1);
        assert_eq!(
            dev.bar0,
            Bar::Io {
                base: 0xc000,
                len: 256
            }
        );
        assert_eq!(
            dev.bar1,
            Bar::Memory {
                base: 0xf000_0000,
                len: 16 << 20,
                prefetchable: true
            }
        );
        assert_eq!((dev.pin, dev.line), (1, 11));
        // Sizing put the BARs back.
        let devices = bus.devices.borrow();
        assert_eq!(devices[1].1[4], 0x0000_c001);
        assert_eq!(devices[1].1[5], 0xf000_0008);
    }

    #[test]
    fn absent_device_and_unassigned_bar() {
        let bus = platform_bus();
        bus.devices.borrow_mut().remove(1);
        assert_eq!(find_platform_device(&bus), None);
        let bus = platform_bus();
        bus.devices.borrow_mut()[1].1[5] = 0x8;
        assert_eq!(find_platform_device(&bus).unwrap().bar1, Bar::Unusable(0x8));
    }
}
