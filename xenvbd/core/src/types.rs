//! The vocabulary shared by the SCSI layer, the blkif engine and the StorPort glue.

/// Size of a guest page, the unit of the data buffer's segments.
pub const PAGE_SIZE: usize = 4096;

/// An opaque tag the glue attaches to a request and gets back with its completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(pub u64);

/// One piece of a request's data buffer: `length` bytes at `offset` within guest frame `frame`.
///
/// `offset + length` never exceeds [`PAGE_SIZE`]; the glue builds the list from the request's
/// MDL/SGL, and [`validate_segments`] checks it before the core uses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Guest frame number of the page.
    pub frame: u64,
    /// Byte offset within the page.
    pub offset: u16,
    /// Byte count within the page.
    pub length: u16,
}

/// Which way data moves for a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataDirection {
    /// No data phase.
    None,
    /// Device to memory (reads, INQUIRY, …).
    FromDevice,
    /// Memory to device (writes, UNMAP parameter lists, MODE SELECT, …).
    ToDevice,
}

/// A SCSI request from the storage port driver.
///
/// The segment list is borrowed for the duration of the submit call only: the core copies the
/// segments it needs into its own fixed-size request slot (Tock's split-phase rule — the buffer
/// itself stays the glue's, and the glue learns that the core is done with it from the
/// completion carrying the same tag, on success and on error alike).
#[derive(Clone, Copy, Debug)]
pub struct ScsiRequest<'a> {
    /// Returned with the completion.
    pub tag: Tag,
    /// The command descriptor block (6 to 16 bytes).
    pub cdb: &'a [u8],
    /// The data phase's direction.
    pub direction: DataDirection,
    /// The data buffer.
    pub segments: &'a [Segment],
    /// Total bytes the data buffer holds (the sum of the segments' lengths).
    pub transfer_length: u32,
    /// The logical unit addressed (a VBD has only LUN 0).
    pub lun: u8,
}

/// SCSI status codes the core returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ScsiStatus {
    /// GOOD.
    Good = 0x00,
    /// CHECK CONDITION: sense data describes why.
    CheckCondition = 0x02,
    /// BUSY: retry later.
    Busy = 0x08,
    /// TASK SET FULL: too many outstanding commands.
    TaskSetFull = 0x28,
    /// TASK ABORTED: ended by an abort or a reset.
    TaskAborted = 0x40,
}

/// Fixed-format sense data, the part the core fills in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Sense {
    /// Sense key (ILLEGAL REQUEST, MEDIUM ERROR, UNIT ATTENTION, …).
    pub key: u8,
    /// Additional sense code.
    pub asc: u8,
    /// Additional sense code qualifier.
    pub ascq: u8,
    /// The INFORMATION field (for example the first failing LBA), when `information_valid`.
    pub information: u32,
    /// Whether `information` is meaningful (the VALID bit).
    pub information_valid: bool,
}

/// What the core reports for a finished request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScsiCompletion {
    /// The request's tag.
    pub tag: Tag,
    /// SCSI status.
    pub status: ScsiStatus,
    /// Sense data, meaningful with [`ScsiStatus::CheckCondition`].
    pub sense: Sense,
    /// Bytes actually transferred (the residual is `transfer_length - transferred`).
    pub transferred: u32,
}

/// Why a segment list is unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentError {
    /// Segment `index` runs past the end of its page or is empty.
    OutOfPage {
        /// Index in the list.
        index: usize,
    },
    /// The lengths do not add up to the request's transfer length.
    LengthMismatch {
        /// Sum of the segments' lengths.
        sum: u64,
        /// The transfer length the request declared.
        declared: u32,
    },
}

/// Checks a request's segment list: every segment non-empty and inside its page, lengths adding
/// up to `transfer_length`.
pub fn validate_segments(segments: &[Segment], transfer_length: u32) -> Result<(), SegmentError> {
    let mut sum = 0u64;
    for (index, s) in segments.iter().enumerate() {
        if s.length == 0 || usize::from(s.offset) + usize::from(s.length) > PAGE_SIZE {
            return Err(SegmentError::OutOfPage { index });
        }
        sum += u64::from(s.length);
    }
    if sum != u64::from(transfer_length) {
        return Err(SegmentError::LengthMismatch {
            sum,
            declared: transfer_length,
        });
    }
    Ok(())
}

/// Access to guest memory by frame, for copying through bounce pages and persistent grants and
/// for writing command response data (INQUIRY, MODE SENSE, …). The Windows glue implements it
/// over mapped MDLs, the lab over its own buffers, tests over plain memory.
pub trait GuestMemory {
    /// Copies `buf.len()` bytes from guest frame `frame` at `offset` (within the page).
    fn read(&self, frame: u64, offset: usize, buf: &mut [u8]);
    /// Copies `data` into guest frame `frame` at `offset` (within the page).
    fn write(&mut self, frame: u64, offset: usize, data: &[u8]);
    /// Copies `len` bytes from `src_frame` at `src_offset` to `dst_frame` at `dst_offset` (each
    /// range within its page; the two never overlap): the bounce and persistent-page copies. The
    /// default goes through a 512-byte buffer; a platform with both pages mapped copies directly,
    /// touching each byte once.
    fn copy(
        &mut self,
        dst_frame: u64,
        dst_offset: usize,
        src_frame: u64,
        src_offset: usize,
        len: usize,
    ) {
        let mut chunk = [0u8; 512];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(chunk.len());
            self.read(src_frame, src_offset + done, &mut chunk[..n]);
            self.write(dst_frame, dst_offset + done, &chunk[..n]);
            done += n;
        }
    }
}

/// What the backend told us about the disk (from its xenstore nodes at Connected), in the form
/// the SCSI layer presents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskInfo {
    /// Capacity in 512-byte sectors (`sectors`: blkif always counts 512-byte units).
    pub sectors: u64,
    /// Logical block size in bytes (`sector-size`: 512 or 4096).
    pub logical_block_size: u32,
    /// Physical block size in bytes (`physical-sector-size`, defaults to the logical size).
    pub physical_block_size: u32,
    /// Read-only (`mode = r` or `info` VDISK_READONLY).
    pub read_only: bool,
    /// Removable medium (`info` VDISK_REMOVABLE).
    pub removable: bool,
    /// A CD-ROM (`device-type = cdrom` or `info` VDISK_CDROM).
    pub cdrom: bool,
    /// The backend honours cache flushes (`feature-flush-cache`) — reported as a write-back cache.
    pub flush: bool,
    /// The backend supports barriers (`feature-barrier`).
    pub barrier: bool,
    /// Discard support (`feature-discard`), with its parameters.
    pub discard: Option<DiscardInfo>,
}

/// Discard parameters (`discard-granularity`, `discard-alignment`, `discard-secure`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiscardInfo {
    /// Granularity in bytes.
    pub granularity: u32,
    /// Alignment offset in bytes.
    pub alignment: u32,
    /// Secure discard available.
    pub secure: bool,
}

impl DiskInfo {
    /// Capacity in logical blocks.
    pub fn logical_blocks(&self) -> u64 {
        let per_block = u64::from(self.logical_block_size / 512).max(1);
        self.sectors / per_block
    }
}

/// A block operation: what a SCSI READ/WRITE/SYNCHRONIZE CACHE/UNMAP becomes, in 512-byte
/// sectors (blkif's unit whatever the logical block size).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockOp {
    /// Read `sectors` sectors from `sector` into the data buffer.
    Read {
        /// First 512-byte sector.
        sector: u64,
        /// Sector count.
        sectors: u64,
    },
    /// Write `sectors` sectors at `sector` from the data buffer; `fua` forces them to stable
    /// storage before completion (a write followed by a flush when the backend has no FUA).
    Write {
        /// First 512-byte sector.
        sector: u64,
        /// Sector count.
        sectors: u64,
        /// Force unit access.
        fua: bool,
    },
    /// Flush the backend's write cache.
    Flush,
    /// Discard a range.
    Discard {
        /// First 512-byte sector.
        sector: u64,
        /// Sector count.
        sectors: u64,
        /// Secure erase.
        secure: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_checked() {
        let ok = [
            Segment {
                frame: 1,
                offset: 0,
                length: 4096,
            },
            Segment {
                frame: 2,
                offset: 512,
                length: 512,
            },
        ];
        assert_eq!(validate_segments(&ok, 4608), Ok(()));
        assert_eq!(
            validate_segments(&ok, 4096),
            Err(SegmentError::LengthMismatch {
                sum: 4608,
                declared: 4096
            })
        );
        let bad = [Segment {
            frame: 1,
            offset: 4000,
            length: 200,
        }];
        assert_eq!(
            validate_segments(&bad, 200),
            Err(SegmentError::OutOfPage { index: 0 })
        );
        let empty = [Segment {
            frame: 1,
            offset: 0,
            length: 0,
        }];
        assert_eq!(
            validate_segments(&empty, 0),
            Err(SegmentError::OutOfPage { index: 0 })
        );
    }

    #[test]
    fn logical_blocks_of_4k_disks() {
        let info = DiskInfo {
            sectors: 8 * 1000,
            logical_block_size: 4096,
            physical_block_size: 4096,
            read_only: false,
            removable: false,
            cdrom: false,
            flush: true,
            barrier: false,
            discard: None,
        };
        assert_eq!(info.logical_blocks(), 1000);
    }
}
