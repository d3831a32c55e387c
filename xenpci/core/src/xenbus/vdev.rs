//! Decoding a vbd's `virtual-device` number into a disk and partition index.
//!
//! The toolstack names a virtual disk by a number that follows the Linux device-number
//! conventions of Xen's `vbd-interface` document; every scheme maps to the same disk index
//! (`xvda` = `hda` = `sda` = disk 0):
//!
//! | scheme | number | disks | partitions |
//! |---|---|---|---|
//! | `xvd` | `202 << 8 \| disk << 4 \| part` | 0–15 | 0–15 |
//! | `xvd` extended | `1 << 28 \| disk << 8 \| part` | 0–2^20−1 | 0–255 |
//! | `hd` | `major << 8 \| (disk % 2) << 6 \| part`, major 3, 22, 33, 34, 56, 57, 88, 89, 90, 91 for disks 0–1, 2–3, … 18–19 | 0–19 | 0–63 |
//! | `sd` | `major << 8 \| (disk % 16) << 4 \| part`, major 8 (disks 0–15), 65–71 (16–127), 128–135 (128–255) | 0–255 | 0–15 |
//!
//! Anything else (another major, bits above the extended flag, an extended number that encodes
//! a disk the short form could name) is [`VdevError`].

use core::fmt;

use super::text::{CapacityError, FixedStr};

/// The extended-numbering flag.
pub const VDEV_EXTENDED: u32 = 1 << 28;
/// The major number of the `xvd` scheme.
pub const XVD_MAJOR: u32 = 202;
/// The majors of the `hd` scheme, two disks each, in disk order.
pub const HD_MAJORS: [u32; 10] = [3, 22, 33, 34, 56, 57, 88, 89, 90, 91];
/// The major of the first sixteen `sd` disks.
pub const SD_MAJOR_0: u32 = 8;

/// Which convention a `virtual-device` number uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VdevScheme {
    /// `xvd`, major 202.
    Xvd,
    /// `xvd` with the `1 << 28` flag.
    XvdExtended,
    /// IDE (`hd`) majors.
    Hd,
    /// SCSI (`sd`) majors.
    Sd,
}

/// A decoded `virtual-device` number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Vdev {
    /// The number as read.
    pub raw: u32,
    /// Its scheme.
    pub scheme: VdevScheme,
    /// The disk index (0 for `xvda`, `hda`, `sda`).
    pub disk: u32,
    /// The partition (0 for the whole disk).
    pub partition: u32,
}

/// Why a `virtual-device` number is not valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VdevError {
    /// The text is not a decimal number that fits 32 bits.
    NotANumber,
    /// The major number belongs to no disk scheme.
    UnknownMajor(u32),
    /// Bits above the extended flag are set.
    ReservedBits,
}

impl fmt::Display for VdevError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotANumber => f.write_str("virtual-device is not a number"),
            Self::UnknownMajor(m) => write!(f, "virtual-device major {m} is not a disk"),
            Self::ReservedBits => f.write_str("virtual-device has reserved bits set"),
        }
    }
}

impl Vdev {
    /// Decodes the text of a `virtual-device` node.
    pub fn parse(text: &[u8]) -> Result<Vdev, VdevError> {
        let raw = crate::xenstore::wire::parse_u32(text).ok_or(VdevError::NotANumber)?;
        Self::decode(raw)
    }

    /// Decodes a `virtual-device` number.
    pub fn decode(raw: u32) -> Result<Vdev, VdevError> {
        if raw & !(VDEV_EXTENDED | (VDEV_EXTENDED - 1)) != 0 {
            return Err(VdevError::ReservedBits);
        }
        if raw & VDEV_EXTENDED != 0 {
            let rest = raw & !VDEV_EXTENDED;
            return Ok(Vdev {
                raw,
                scheme: VdevScheme::XvdExtended,
                disk: rest >> 8,
                partition: rest & 0xff,
            });
        }
        let major = raw >> 8;
        let minor = raw & 0xff;
        let (scheme, disk, partition) = if major == XVD_MAJOR {
            (VdevScheme::Xvd, minor >> 4, minor & 0xf)
        } else if let Some(i) = HD_MAJORS.iter().position(|&m| m == major) {
            // `i` < 10, so the cast cannot truncate.
            (VdevScheme::Hd, 2 * i as u32 + (minor >> 6), minor & 0x3f)
        } else if major == SD_MAJOR_0 {
            (VdevScheme::Sd, minor >> 4, minor & 0xf)
        } else if (65..=71).contains(&major) {
            (
                VdevScheme::Sd,
                16 * (major - 64) + (minor >> 4),
                minor & 0xf,
            )
        } else if (128..=135).contains(&major) {
            (
                VdevScheme::Sd,
                16 * (major - 120) + (minor >> 4),
                minor & 0xf,
            )
        } else {
            return Err(VdevError::UnknownMajor(major));
        };
        Ok(Vdev {
            raw,
            scheme,
            disk,
            partition,
        })
    }

    /// The Linux-style name: `xvda`, `xvdb3`, `xvdaa`, … (the disk letters, then the partition
    /// if any). Whatever the scheme the toolstack used, the name uses the `xvd` prefix, since
    /// the disk is a PV disk.
    pub fn name(&self) -> Result<FixedStr<16>, CapacityError> {
        let mut out = FixedStr::<16>::new();
        out.push_str("xvd")?;
        push_disk_letters(&mut out, self.disk)?;
        if self.partition != 0 {
            let mut digits = [0; 10];
            let text = crate::xenstore::wire::format_u32(self.partition, &mut digits);
            out.push_str(core::str::from_utf8(text).map_err(|_| CapacityError)?)?;
        }
        Ok(out)
    }
}

/// Appends the letters of disk `disk`: 0 → `a`, 25 → `z`, 26 → `aa`, 701 → `zz`, 702 → `aaa`.
fn push_disk_letters<const N: usize>(
    out: &mut FixedStr<N>,
    disk: u32,
) -> Result<(), CapacityError> {
    let mut letters = [0u8; 8];
    let mut at = letters.len();
    let mut n = u64::from(disk) + 1;
    while n > 0 {
        n -= 1;
        at -= 1;
        // `n % 26` < 26, so the cast cannot truncate.
        letters[at] = b'a' + (n % 26) as u8;
        n /= 26;
    }
    out.push_str(core::str::from_utf8(&letters[at..]).map_err(|_| CapacityError)?)
}
