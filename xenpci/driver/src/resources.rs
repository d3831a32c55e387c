//! Choosing the Xen platform PCI device's resources from the translated resource list of
//! `IRP_MN_START_DEVICE`.
//!
//! The device (`PCI\VEN_5853&DEV_0001`) has an I/O BAR (QEMU's unplug ports live elsewhere, at
//! fixed ports) and a memory BAR (16 MiB on QEMU) that the bus uses as the window for Xen pages
//! (grant frames, shared info), plus one interrupt (line-based; Xen raises it for event
//! channels when no per-vCPU vector is in use). The binding layer copies each descriptor into a
//! [`Descriptor`]; [`select`] picks the resources and explains what is missing.
#![forbid(unsafe_code)]

use core::fmt;

/// The smallest memory window the bus can use: the shared-info page and one grant frame.
pub const MIN_WINDOW_BYTES: u64 = 2 * 4096;

/// Descriptors looked at, at most; a longer list is refused rather than walked.
pub const MAX_DESCRIPTORS: usize = 64;

/// One partial resource descriptor, as the binding layer read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Descriptor {
    /// `CmResourceTypeMemory` (also the `Memory40/48/64` forms after decoding their length).
    Memory {
        /// Physical start address.
        start: u64,
        /// Length in bytes.
        length: u64,
    },
    /// `CmResourceTypePort`.
    Port {
        /// First port.
        start: u64,
        /// Number of ports.
        length: u32,
    },
    /// `CmResourceTypeInterrupt` without `CM_RESOURCE_INTERRUPT_MESSAGE`.
    LineInterrupt {
        /// Translated level (IRQL).
        level: u32,
        /// Translated vector.
        vector: u32,
        /// Processor affinity.
        affinity: u64,
        /// `CM_RESOURCE_INTERRUPT_LATCHED` (edge) rather than level-sensitive.
        latched: bool,
        /// Shared with other devices.
        shared: bool,
    },
    /// `CmResourceTypeInterrupt` with `CM_RESOURCE_INTERRUPT_MESSAGE` (MSI/MSI-X).
    MessageInterrupt {
        /// Translated level.
        level: u32,
        /// Translated vector.
        vector: u32,
        /// Processor affinity.
        affinity: u64,
    },
    /// Any other type (its `CmResourceType*` code).
    Other(u8),
}

/// The device's interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interrupt {
    /// A line-based interrupt.
    Line {
        /// Translated level (IRQL).
        level: u32,
        /// Translated vector.
        vector: u32,
        /// Processor affinity.
        affinity: u64,
        /// Edge-triggered.
        latched: bool,
        /// Shared.
        shared: bool,
    },
    /// A message-signalled interrupt.
    Message {
        /// Translated level.
        level: u32,
        /// Translated vector.
        vector: u32,
        /// Processor affinity.
        affinity: u64,
    },
}

/// What the bus takes from the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlatformResources {
    /// Physical start of the memory BAR (page aligned).
    pub window_start: u64,
    /// Its length in bytes.
    pub window_length: u64,
    /// The interrupt, if the device was given one.
    pub interrupt: Option<Interrupt>,
}

/// Why the resources cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceError {
    /// The start IRP carried no resource list at all (a device that is not the Xen platform PCI
    /// device, for example a root-enumerated test device).
    NoResourceList,
    /// More descriptors than [`MAX_DESCRIPTORS`].
    TooManyDescriptors(usize),
    /// No memory range at all.
    NoMemoryWindow,
    /// The largest memory range is too small or not page aligned.
    UnusableWindow {
        /// Its start.
        start: u64,
        /// Its length.
        length: u64,
    },
}

impl fmt::Display for ResourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoResourceList => f.write_str("the device was started without resources"),
            Self::TooManyDescriptors(n) => {
                write!(f, "{n} resource descriptors (more than {MAX_DESCRIPTORS})")
            }
            Self::NoMemoryWindow => f.write_str("the device has no memory BAR"),
            Self::UnusableWindow { start, length } => write!(
                f,
                "the memory BAR at {start:#x} ({length:#x} bytes) is smaller than {MIN_WINDOW_BYTES:#x} bytes or not page aligned"
            ),
        }
    }
}

/// Bytes of one `CM_PARTIAL_RESOURCE_DESCRIPTOR` on x64 (`Type`, `ShareDisposition`, `Flags`,
/// then a 16-byte union; `wdm.h` packs it to 4 bytes).
pub const DESCRIPTOR_BYTES: usize = 20;

const TYPE_PORT: u8 = 1;
const TYPE_INTERRUPT: u8 = 2;
const TYPE_MEMORY: u8 = 3;
const TYPE_MEMORY_LARGE: u8 = 7;
const SHARE_SHARED: u8 = 3;
const INTERRUPT_LATCHED: u16 = 0x1;
const INTERRUPT_MESSAGE: u16 = 0x2;
const MEMORY_LARGE_40: u16 = 0x200;
const MEMORY_LARGE_48: u16 = 0x400;
const MEMORY_LARGE_64: u16 = 0x800;

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from(u32_at(bytes, at)) | (u64::from(u32_at(bytes, at + 4)) << 32)
}

impl Descriptor {
    /// Decodes a copy of one translated partial descriptor.
    pub fn decode(bytes: &[u8; DESCRIPTOR_BYTES]) -> Self {
        let (kind, share, flags) = (bytes[0], bytes[1], u16::from_le_bytes([bytes[2], bytes[3]]));
        let u = &bytes[4..];
        match kind {
            TYPE_PORT => Self::Port {
                start: u64_at(u, 0),
                length: u32_at(u, 8),
            },
            TYPE_INTERRUPT => {
                // The translated form: a 16-bit level (then the group), the vector, the affinity.
                let (level, vector, affinity) = (u32_at(u, 0) & 0xFFFF, u32_at(u, 4), u64_at(u, 8));
                if flags & INTERRUPT_MESSAGE != 0 {
                    Self::MessageInterrupt {
                        level,
                        vector,
                        affinity,
                    }
                } else {
                    Self::LineInterrupt {
                        level,
                        vector,
                        affinity,
                        latched: flags & INTERRUPT_LATCHED != 0,
                        shared: share == SHARE_SHARED,
                    }
                }
            }
            TYPE_MEMORY => Self::Memory {
                start: u64_at(u, 0),
                length: u64::from(u32_at(u, 8)),
            },
            TYPE_MEMORY_LARGE => {
                let shift = match flags & (MEMORY_LARGE_40 | MEMORY_LARGE_48 | MEMORY_LARGE_64) {
                    MEMORY_LARGE_40 => 8,
                    MEMORY_LARGE_48 => 16,
                    MEMORY_LARGE_64 => 32,
                    _ => return Self::Other(kind),
                };
                Self::Memory {
                    start: u64_at(u, 0),
                    length: u64::from(u32_at(u, 8)) << shift,
                }
            }
            other => Self::Other(other),
        }
    }
}

/// Picks the largest memory range as the window for Xen pages and the first interrupt (a
/// message interrupt is preferred over a line interrupt when both are present).
pub fn select(descriptors: &[Descriptor]) -> Result<PlatformResources, ResourceError> {
    if descriptors.len() > MAX_DESCRIPTORS {
        return Err(ResourceError::TooManyDescriptors(descriptors.len()));
    }
    let mut window: Option<(u64, u64)> = None;
    let mut line = None;
    let mut message = None;
    for descriptor in descriptors {
        match *descriptor {
            Descriptor::Memory { start, length }
                if window.is_none_or(|(_, best)| length > best) =>
            {
                window = Some((start, length));
            }
            Descriptor::LineInterrupt {
                level,
                vector,
                affinity,
                latched,
                shared,
            } if line.is_none() => {
                line = Some(Interrupt::Line {
                    level,
                    vector,
                    affinity,
                    latched,
                    shared,
                })
            }
            Descriptor::MessageInterrupt {
                level,
                vector,
                affinity,
            } if message.is_none() => {
                message = Some(Interrupt::Message {
                    level,
                    vector,
                    affinity,
                })
            }
            _ => {}
        }
    }
    let (start, length) = window.ok_or(ResourceError::NoMemoryWindow)?;
    if length < MIN_WINDOW_BYTES || start % 4096 != 0 || start.checked_add(length).is_none() {
        return Err(ResourceError::UnusableWindow { start, length });
    }
    Ok(PlatformResources {
        window_start: start,
        window_length: length,
        interrupt: message.or(line),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const IO_BAR: Descriptor = Descriptor::Port {
        start: 0xc000,
        length: 0x100,
    };
    const MEM_BAR: Descriptor = Descriptor::Memory {
        start: 0xf000_0000,
        length: 16 << 20,
    };
    const LINE: Descriptor = Descriptor::LineInterrupt {
        level: 5,
        vector: 0x51,
        affinity: 1,
        latched: false,
        shared: true,
    };

    #[test]
    fn qemu_platform_device_resources() {
        let r = select(&[IO_BAR, MEM_BAR, LINE]).unwrap();
        assert_eq!(r.window_start, 0xf000_0000);
        assert_eq!(r.window_length, 16 << 20);
        assert!(matches!(
            r.interrupt,
            Some(Interrupt::Line {
                vector: 0x51,
                shared: true,
                ..
            })
        ));
    }

    #[test]
    fn largest_memory_range_wins_and_message_interrupt_is_preferred() {
        let small = Descriptor::Memory {
            start: 0xfe00_0000,
            length: 0x1000,
        };
        let msi = Descriptor::MessageInterrupt {
            level: 6,
            vector: 0x90,
            affinity: 3,
        };
        let r = select(&[small, LINE, MEM_BAR, msi]).unwrap();
        assert_eq!(r.window_start, 0xf000_0000);
        assert_eq!(
            r.interrupt,
            Some(Interrupt::Message {
                level: 6,
                vector: 0x90,
                affinity: 3
            })
        );
    }

    #[test]
    fn no_interrupt_is_allowed() {
        assert_eq!(select(&[MEM_BAR]).unwrap().interrupt, None);
    }

    #[test]
    fn missing_or_unusable_window_is_a_typed_error() {
        assert_eq!(select(&[]), Err(ResourceError::NoMemoryWindow));
        assert_eq!(select(&[IO_BAR, LINE]), Err(ResourceError::NoMemoryWindow));
        let tiny = Descriptor::Memory {
            start: 0x1000,
            length: 0x800,
        };
        assert_eq!(
            select(&[tiny]),
            Err(ResourceError::UnusableWindow {
                start: 0x1000,
                length: 0x800
            })
        );
        let unaligned = Descriptor::Memory {
            start: 0x1010,
            length: 1 << 20,
        };
        assert!(matches!(
            select(&[unaligned]),
            Err(ResourceError::UnusableWindow { .. })
        ));
        let wrapping = Descriptor::Memory {
            start: !0xfff,
            length: 1 << 20,
        };
        assert!(matches!(
            select(&[wrapping]),
            Err(ResourceError::UnusableWindow { .. })
        ));
    }

    #[test]
    fn overlong_list_is_refused() {
        let list = [Descriptor::Other(7); MAX_DESCRIPTORS + 1];
        assert_eq!(
            select(&list),
            Err(ResourceError::TooManyDescriptors(MAX_DESCRIPTORS + 1))
        );
    }

    fn raw(kind: u8, share: u8, flags: u16, u: [u8; 16]) -> [u8; DESCRIPTOR_BYTES] {
        let mut b = [0u8; DESCRIPTOR_BYTES];
        b[0] = kind;
        b[1] = share;
        b[2..4].copy_from_slice(&flags.to_le_bytes());
        b[4..].copy_from_slice(&u);
        b
    }

    fn union(a: u64, b: u32, c: u32) -> [u8; 16] {
        let mut u = [0u8; 16];
        u[..8].copy_from_slice(&a.to_le_bytes());
        u[8..12].copy_from_slice(&b.to_le_bytes());
        u[12..].copy_from_slice(&c.to_le_bytes());
        u
    }

    #[test]
    fn decodes_the_descriptor_forms() {
        assert_eq!(
            Descriptor::decode(&raw(3, 1, 0, union(0xf000_0000, 0x100_0000, 0))),
            Descriptor::Memory {
                start: 0xf000_0000,
                length: 0x100_0000
            }
        );
        assert_eq!(
            Descriptor::decode(&raw(7, 1, 0x400, union(0x8_0000_0000, 0x100, 0))),
            Descriptor::Memory {
                start: 0x8_0000_0000,
                length: 0x100 << 16
            }
        );
        assert_eq!(
            Descriptor::decode(&raw(7, 1, 0, union(0, 1, 0))),
            Descriptor::Other(7)
        );
        assert_eq!(
            Descriptor::decode(&raw(1, 1, 0, union(0xc000, 0x100, 0))),
            Descriptor::Port {
                start: 0xc000,
                length: 0x100
            }
        );
        // Level 5 in the low half, group 1 in the high half; vector 0x51; affinity 0x3.
        let line = union(0x51_0001_0005, 0x3, 0);
        assert_eq!(
            Descriptor::decode(&raw(2, 3, 0, line)),
            Descriptor::LineInterrupt {
                level: 5,
                vector: 0x51,
                affinity: 3,
                latched: false,
                shared: true
            }
        );
        assert_eq!(
            Descriptor::decode(&raw(2, 1, 3, line)),
            Descriptor::MessageInterrupt {
                level: 5,
                vector: 0x51,
                affinity: 3
            }
        );
        assert_eq!(
            Descriptor::decode(&raw(0x81, 0, 0, [0xff; 16])),
            Descriptor::Other(0x81)
        );
    }

    #[test]
    fn errors_read_as_reasons() {
        let text = format!("{}", ResourceError::NoResourceList);
        assert!(text.contains("without resources"));
    }
}
