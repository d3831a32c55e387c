//! Block commands (SBC): capacity, reads and writes, verify, cache and discards.

use super::buffer::{copy_from_guest, Response};
use super::opcode::*;
use super::sense::{self, ScsiResult};
use super::{be16, be24, be32, be64, put32, put64, BlockRequest, Cmd, CommandKind, Disk, Done};
use crate::types::{BlockOp, GuestMemory};

/// The UNMAP parameter list the core reads: the header and [`super::MAX_OPS`] descriptors.
const UNMAP_LIST_MAX: usize = 8 + 16 * super::MAX_OPS;

impl Disk {
    /// READ CAPACITY (10). A capacity past 2^32 - 1 blocks reports FFFFFFFFh (use READ
    /// CAPACITY (16)); an empty unit reports LBA 0.
    pub(crate) fn read_capacity_10(&self, cmd: &Cmd<'_, '_>) -> ScsiResult<Done> {
        let cdb = cmd.cdb;
        let pmi = cdb[8] & 0x01 != 0;
        if cdb[1] & 0xfe != 0 || cdb[8] & 0xfe != 0 || (!pmi && be32(cdb, 2) != 0) {
            return sense::invalid_field();
        }
        let last = self.blocks().saturating_sub(1);
        let mut r = Response::new();
        let d = r.extend(8);
        put32(d, 0, u32::try_from(last).unwrap_or(u32::MAX));
        put32(d, 4, self.block_size());
        Ok(Done::Data(r, 8))
    }

    /// SERVICE ACTION IN (16): READ CAPACITY (16) only.
    pub(crate) fn service_action_in_16(&self, cmd: &Cmd<'_, '_>) -> ScsiResult<Done> {
        let cdb = cmd.cdb;
        if cdb[1] & 0x1f != 0x10 || cdb[1] & 0xe0 != 0 {
            return sense::invalid_field();
        }
        let pmi = cdb[14] & 0x01 != 0;
        if cdb[14] & 0xfe != 0 || (!pmi && be64(cdb, 2) != 0) {
            return sense::invalid_field();
        }
        let alloc = be32(cdb, 10) as usize;
        let mut r = Response::new();
        let d = r.extend(32);
        put64(d, 0, self.blocks().saturating_sub(1));
        put32(d, 8, self.block_size());
        d[13] = self.physical_exponent();
        if self.cfg.info.discard.is_some() {
            d[14] = 0x80; // LBPME
        }
        Ok(Done::Data(r, alloc))
    }

    /// READ and WRITE (6), (10), (12), (16).
    pub(crate) fn read_write(&self, cmd: &Cmd<'_, '_>) -> ScsiResult<Done> {
        let cdb = cmd.cdb;
        let op = cdb[0];
        let write = matches!(op, WRITE_6 | WRITE_10 | WRITE_12 | WRITE_16);
        let (lba, blocks, flags) = match op {
            READ_6 | WRITE_6 => {
                if cdb[1] & 0xe0 != 0 {
                    return sense::invalid_field();
                }
                let lba = u64::from(be24(cdb, 1) & 0x1f_ffff);
                // A zero length means 256 blocks.
                let blocks = if cdb[4] == 0 { 256 } else { u64::from(cdb[4]) };
                (lba, blocks, 0)
            }
            READ_10 | WRITE_10 => {
                if cdb[6] & 0xe0 != 0 {
                    return sense::invalid_field();
                }
                (u64::from(be32(cdb, 2)), u64::from(be16(cdb, 7)), cdb[1])
            }
            READ_12 | WRITE_12 => {
                if cdb[10] & 0xe0 != 0 {
                    return sense::invalid_field();
                }
                (u64::from(be32(cdb, 2)), u64::from(be32(cdb, 6)), cdb[1])
            }
            _ => (be64(cdb, 2), u64::from(be32(cdb, 10)), cdb[1]),
        };
        // RDPROTECT/WRPROTECT: no protection information; bit 2 is reserved for writes.
        if flags & 0xe0 != 0 || (write && flags & 0x04 != 0) {
            return sense::invalid_field();
        }
        let fua = flags & 0x08 != 0;
        if write && self.read_only() {
            return Err(sense::WRITE_PROTECTED.into());
        }
        self.check_range(lba, blocks)?;
        if blocks == 0 {
            return Ok(Done::Good);
        }
        let bytes = blocks * u64::from(self.block_size());
        let max = u64::from(self.cfg.max_transfer_bytes);
        let room = if write {
            cmd.data_out_len()
        } else {
            cmd.data_in_len()
        };
        if bytes > room as u64 || (max != 0 && bytes > max) {
            return sense::invalid_field();
        }
        let per_block = self.sectors_per_block();
        let sector = lba * per_block;
        let sectors = blocks * per_block;
        let (kind, op) = if write {
            let fua = fua && self.write_cache();
            let op = BlockOp::Write {
                sector,
                sectors,
                fua,
            };
            (CommandKind::Write, op)
        } else {
            (CommandKind::Read, BlockOp::Read { sector, sectors })
        };
        let pending = self.pending(cmd.req.tag, kind, lba, blocks);
        Ok(Done::Block(BlockRequest::single(pending, op)))
    }

    /// VERIFY (10) and (16): the range is checked, nothing is read (BYTCHK must be 0).
    pub(crate) fn verify(&self, cmd: &Cmd<'_, '_>) -> ScsiResult<Done> {
        let cdb = cmd.cdb;
        if cdb[1] & 0xe6 != 0 {
            return sense::invalid_field();
        }
        let (lba, blocks) = if cdb[0] == VERIFY_10 {
            (u64::from(be32(cdb, 2)), u64::from(be16(cdb, 7)))
        } else {
            (be64(cdb, 2), u64::from(be32(cdb, 10)))
        };
        self.check_range(lba, blocks)?;
        Ok(Done::Good)
    }

    /// SYNCHRONIZE CACHE (10) and (16): a flush with a write cache, GOOD without one. A zero
    /// count means "to the end of the medium".
    pub(crate) fn synchronize_cache(&self, cmd: &Cmd<'_, '_>) -> ScsiResult<Done> {
        let cdb = cmd.cdb;
        if cdb[1] & 0xf8 != 0 {
            return sense::invalid_field();
        }
        let (lba, blocks) = if cdb[0] == SYNCHRONIZE_CACHE_10 {
            (u64::from(be32(cdb, 2)), u64::from(be16(cdb, 7)))
        } else {
            (be64(cdb, 2), u64::from(be32(cdb, 10)))
        };
        self.check_range(lba, blocks)?;
        if !self.write_cache() {
            return Ok(Done::Good);
        }
        let pending = self.pending(cmd.req.tag, CommandKind::Flush, lba, blocks);
        Ok(Done::Block(BlockRequest::single(pending, BlockOp::Flush)))
    }

    fn discard_op(&self, lba: u64, blocks: u64) -> BlockOp {
        let per_block = self.sectors_per_block();
        BlockOp::Discard {
            sector: lba * per_block,
            sectors: blocks * per_block,
            secure: false,
        }
    }

    /// UNMAP: the parameter list is read from the data buffer; each non-empty descriptor
    /// becomes a discard.
    pub(crate) fn unmap<M: GuestMemory + ?Sized>(
        &self,
        cmd: &Cmd<'_, '_>,
        mem: &mut M,
    ) -> ScsiResult<Done> {
        let cdb = cmd.cdb;
        if self.cfg.info.discard.is_none() {
            return Err(sense::INVALID_OPCODE.into());
        }
        // ANCHOR is not supported; the rest of byte 1 is reserved.
        if cdb[1] != 0 || cdb[6] & 0xe0 != 0 {
            return sense::invalid_field();
        }
        if self.read_only() {
            return Err(sense::WRITE_PROTECTED.into());
        }
        let len = usize::from(be16(cdb, 7));
        if len == 0 {
            return Ok(Done::Good);
        }
        if len < 8 {
            return Err(sense::PARAMETER_LIST_LENGTH_ERROR.into());
        }
        if len > cmd.data_out_len() {
            return sense::invalid_field();
        }
        let mut list = [0u8; UNMAP_LIST_MAX];
        let got = copy_from_guest(mem, cmd.req.segments, len, &mut list);
        let descriptor_bytes = usize::from(be16(&list, 2)).min(len - 8);
        let count = descriptor_bytes / 16;
        if count > super::MAX_OPS || got < 8 + count * 16 {
            return Err(sense::INVALID_FIELD_IN_PARAMETER_LIST.into());
        }
        let pending = self.pending(cmd.req.tag, CommandKind::Discard, 0, 0);
        let mut request = BlockRequest::new(pending);
        let mut total = 0u64;
        for i in 0..count {
            let d = &list[8 + i * 16..8 + (i + 1) * 16];
            let lba = be64(d, 0);
            let blocks = u64::from(be32(d, 8));
            if blocks == 0 {
                continue;
            }
            self.check_range(lba, blocks)?;
            total += blocks;
            if total > u64::from(self.max_unmap_blocks()) {
                return Err(sense::INVALID_FIELD_IN_PARAMETER_LIST.into());
            }
            if request.count == 0 {
                request.pending.lba = lba;
                request.pending.blocks = blocks;
            }
            request.push(self.discard_op(lba, blocks));
        }
        if request.count == 0 {
            return Ok(Done::Good);
        }
        Ok(Done::Block(request))
    }

    /// WRITE SAME (16) with UNMAP set: a discard of the range. The data block is not
    /// examined; without UNMAP (a pattern write) the command is refused.
    pub(crate) fn write_same_16(&self, cmd: &Cmd<'_, '_>) -> ScsiResult<Done> {
        let cdb = cmd.cdb;
        let unmap = cdb[1] & 0x08 != 0;
        // WRPROTECT, ANCHOR, PBDATA and LBDATA are not supported.
        if cdb[1] & 0xf6 != 0 || !unmap || self.cfg.info.discard.is_none() {
            return sense::invalid_field();
        }
        if self.read_only() {
            return Err(sense::WRITE_PROTECTED.into());
        }
        let lba = be64(cdb, 2);
        let blocks = u64::from(be32(cdb, 10));
        if blocks == 0 || blocks > u64::from(self.max_unmap_blocks()) {
            return sense::invalid_field();
        }
        self.check_range(lba, blocks)?;
        let pending = self.pending(cmd.req.tag, CommandKind::Discard, lba, blocks);
        let op = self.discard_op(lba, blocks);
        Ok(Done::Block(BlockRequest::single(pending, op)))
    }
}
