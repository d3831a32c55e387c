//! Commands every logical unit has (SPC), and MODE SENSE with its pages.

use super::buffer::Response;
use super::sense::{self, ScsiResult};
use super::{be16, put16, put32, put64, BlockRequest, Cmd, CommandKind, Disk, Done};
use crate::types::{BlockOp, Sense};

/// VPD pages of a direct-access disk, ascending.
const DISK_VPD_PAGES: [u8; 6] = [0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2];
/// VPD pages of a CD-ROM, ascending.
const CDROM_VPD_PAGES: [u8; 3] = [0x00, 0x80, 0x83];

impl Disk {
    /// INQUIRY: standard data or a VPD page. For a LUN other than 0 only the standard data,
    /// with peripheral qualifier 011b (no unit there).
    pub(crate) fn inquiry(&self, cmd: &Cmd<'_, '_>) -> ScsiResult<Done> {
        let cdb = cmd.cdb;
        let evpd = cdb[1] & 0x01 != 0;
        if cdb[1] & 0xfe != 0 || (!evpd && cdb[2] != 0) {
            return sense::invalid_field();
        }
        let alloc = usize::from(be16(cdb, 3));
        let mut r = Response::new();
        if cmd.req.lun != 0 {
            if evpd {
                return sense::invalid_field();
            }
            let d = r.extend(36);
            d[0] = 0x7f;
            d[2] = 0x06;
            d[3] = 0x12;
            d[4] = 31;
            return Ok(Done::Data(r, alloc));
        }
        if !evpd {
            self.standard_inquiry(&mut r);
        } else {
            self.vpd_page(cdb[2], &mut r)?;
        }
        Ok(Done::Data(r, alloc))
    }

    fn standard_inquiry(&self, r: &mut Response) {
        let id = &self.cfg.identity;
        let d = r.extend(36);
        d[0] = self.device_type();
        d[1] = if self.removable() { 0x80 } else { 0 };
        // SPC-4 for a disk; SPC-3 (as MMC-6 references) for a CD-ROM.
        d[2] = if self.cfg.info.cdrom { 0x05 } else { 0x06 };
        // HISUP, response data format 2.
        d[3] = 0x12;
        d[4] = 36 - 5;
        // CMDQUE: tagged command queuing.
        d[7] = 0x02;
        d[8..16].copy_from_slice(&id.vendor);
        d[16..32].copy_from_slice(&id.product);
        d[32..36].copy_from_slice(&id.revision);
    }

    fn vpd_pages(&self) -> &'static [u8] {
        if self.cfg.info.cdrom {
            &CDROM_VPD_PAGES
        } else {
            &DISK_VPD_PAGES
        }
    }

    fn vpd_page(&self, page: u8, r: &mut Response) -> ScsiResult<()> {
        if !self.vpd_pages().contains(&page) {
            return sense::invalid_field();
        }
        let h = r.extend(4);
        h[0] = self.device_type();
        h[1] = page;
        match page {
            0x00 => r.push(self.vpd_pages()),
            0x80 => r.push(self.cfg.identity.serial()),
            0x83 => self.device_identification(r),
            0xb0 => self.block_limits(r),
            0xb1 => {
                let d = r.extend(60);
                put16(d, 0, self.cfg.rotation_rate);
            }
            _ => self.logical_block_provisioning(r),
        }
        let len = (r.len() - 4) as u16;
        put16(r.bytes_mut(), 2, len);
        Ok(())
    }

    /// VPD 83h: a T10 vendor id designator and an NAA designator, both for the logical unit.
    fn device_identification(&self, r: &mut Response) {
        let id = &self.cfg.identity;
        let serial = id.serial();
        let t10 = r.extend(4);
        t10[0] = 0x02; // ASCII
        t10[1] = 0x01; // logical unit, T10 vendor id
        t10[3] = (8 + 16 + serial.len()) as u8;
        r.push(&id.vendor);
        r.push(&id.product);
        r.push(serial);
        let naa = r.extend(12);
        naa[0] = 0x01; // binary
        naa[1] = 0x03; // logical unit, NAA
        naa[3] = 8;
        put64(naa, 4, id.naa);
    }

    /// VPD B0h, block limits.
    fn block_limits(&self, r: &mut Response) {
        let lbs = self.block_size();
        let d = r.extend(60);
        // WSNZ: WRITE SAME with a zero length is refused.
        d[0] = 0x01;
        let physical = self.physical_exponent();
        put16(d, 2, 1 << physical);
        put32(d, 4, self.cfg.max_transfer_bytes / lbs);
        if let Some(discard) = self.cfg.info.discard {
            let max_unmap = self.max_unmap_blocks();
            put32(d, 16, max_unmap);
            put32(d, 20, super::MAX_OPS as u32);
            put32(d, 24, (discard.granularity / lbs).max(1));
            put32(
                d,
                28,
                0x8000_0000 | ((discard.alignment / lbs) & 0x7fff_ffff),
            );
            put64(d, 32, u64::from(max_unmap));
        }
    }

    /// VPD B2h, logical block provisioning: with discard, LBPU and LBPWS and a thin
    /// provisioning type; unmapped blocks are not promised to read as zero.
    fn logical_block_provisioning(&self, r: &mut Response) {
        let d = r.extend(4);
        if self.cfg.info.discard.is_some() {
            d[1] = 0x80 | 0x40;
            d[2] = 0x02;
        }
    }

    /// log2(physical / logical), 0 when the physical size is not a power-of-two multiple.
    pub(crate) fn physical_exponent(&self) -> u8 {
        if self.cfg.info.cdrom {
            return 0;
        }
        let lbs = self.block_size();
        let pbs = self.cfg.info.physical_block_size;
        if pbs > lbs && pbs % lbs == 0 && (pbs / lbs).is_power_of_two() {
            (pbs / lbs).trailing_zeros().min(15) as u8
        } else {
            0
        }
    }

    /// The reported MAXIMUM UNMAP LBA COUNT.
    pub(crate) fn max_unmap_blocks(&self) -> u32 {
        match self.cfg.max_unmap_blocks {
            0 => u32::MAX,
            n => n,
        }
    }

    /// REPORT LUNS: LUN 0 only.
    pub(crate) fn report_luns(&self, cmd: &Cmd<'_, '_>) -> ScsiResult<Done> {
        let cdb = cmd.cdb;
        if cdb[2] > 0x02 {
            return sense::invalid_field();
        }
        let alloc = super::be32(cdb, 6) as usize;
        if alloc < 4 {
            return sense::invalid_field();
        }
        let mut r = Response::new();
        let d = r.extend(16);
        put32(d, 0, 8);
        Ok(Done::Data(r, alloc))
    }

    /// REQUEST SENSE: the pending unit attention (cleared), NOT READY for a CD-ROM without a
    /// medium, otherwise NO SENSE. Fixed format only.
    pub(crate) fn request_sense(&mut self, cmd: &Cmd<'_, '_>) -> ScsiResult<Done> {
        let s = if let Some(ua) = self.peek_attention_for_sense(cmd) {
            ua
        } else if self.medium_absent() {
            sense::MEDIUM_NOT_PRESENT.sense()
        } else {
            sense::SenseCode {
                key: sense::KEY_NO_SENSE,
                asc: 0,
                ascq: 0,
            }
            .sense()
        };
        self.request_sense_with(cmd, s)
    }

    /// Takes the pending unit attention if the CDB is valid (an invalid CDB must not clear it).
    fn peek_attention_for_sense(&mut self, cmd: &Cmd<'_, '_>) -> Option<Sense> {
        if cmd.cdb[1] & 0x01 != 0 {
            return None;
        }
        self.take_attention().map(|c| c.sense())
    }

    pub(crate) fn request_sense_with(&self, cmd: &Cmd<'_, '_>, s: Sense) -> ScsiResult<Done> {
        let cdb = cmd.cdb;
        // DESC: descriptor-format sense data is not supported.
        if cdb[1] & 0x01 != 0 {
            return sense::invalid_field();
        }
        let mut r = Response::new();
        r.push(&sense::fixed_sense(&s));
        Ok(Done::Data(r, usize::from(cdb[4])))
    }

    /// START STOP UNIT. Stopping a disk with a write cache (NO_FLUSH clear) flushes it;
    /// otherwise GOOD. On a removable unit an eject (LOEJ set, START clear) is refused with
    /// MEDIUM REMOVAL PREVENTED: the medium belongs to the backend and a frontend cannot
    /// remove it. A load (LOEJ and START set) is GOOD: the medium is already loaded.
    pub(crate) fn start_stop_unit(&self, cmd: &Cmd<'_, '_>) -> ScsiResult<Done> {
        let cdb = cmd.cdb;
        let power_condition = cdb[4] >> 4;
        let no_flush = cdb[4] & 0x04 != 0;
        let loej = cdb[4] & 0x02 != 0;
        let start = cdb[4] & 0x01 != 0;
        if cdb[1] & 0xfe != 0 || cdb[4] & 0x08 != 0 {
            return sense::invalid_field();
        }
        if power_condition != 0 {
            return Ok(Done::Good);
        }
        if loej && !start && self.removable() {
            return Err(sense::MEDIUM_REMOVAL_PREVENTED.into());
        }
        if !start && !no_flush && self.write_cache() {
            let pending = self.pending(cmd.req.tag, CommandKind::Flush, 0, 0);
            return Ok(Done::Block(BlockRequest::single(pending, BlockOp::Flush)));
        }
        Ok(Done::Good)
    }

    /// PREVENT ALLOW MEDIUM REMOVAL: recorded (reported in the capabilities page and the
    /// operational change event), no other effect.
    pub(crate) fn prevent_allow(&mut self, cmd: &Cmd<'_, '_>) -> ScsiResult<Done> {
        let prevent = cmd.cdb[4] & 0x03;
        if cmd.cdb[4] & 0xfc != 0 || (prevent > 1 && !self.cfg.info.cdrom) {
            return sense::invalid_field();
        }
        self.prevent_removal = prevent & 0x01 != 0;
        Ok(Done::Good)
    }

    /// MODE SENSE (6) and (10). Pages: caching (08h) and control (0Ah) on a disk,
    /// capabilities (2Ah) on a CD-ROM, all pages (3Fh). Changeable values are all zero
    /// (nothing can be changed: MODE SELECT is not supported); saved values are refused.
    pub(crate) fn mode_sense(&self, cmd: &Cmd<'_, '_>) -> ScsiResult<Done> {
        let cdb = cmd.cdb;
        let ten = cdb[0] == super::opcode::MODE_SENSE_10;
        let dbd = cdb[1] & 0x08 != 0;
        let llbaa = ten && cdb[1] & 0x10 != 0;
        let reserved = if ten { 0xe7 } else { 0xf7 };
        if cdb[1] & reserved != 0 {
            return sense::invalid_field();
        }
        let pc = cdb[2] >> 6;
        let page = cdb[2] & 0x3f;
        let subpage = cdb[3];
        if pc == 3 {
            return Err(sense::SAVING_NOT_SUPPORTED.into());
        }
        if subpage != 0 && !(page == 0x3f && subpage == 0xff) {
            return sense::invalid_field();
        }
        let cd = self.cfg.info.cdrom;
        let pages: &[u8] = match (cd, page) {
            (false, 0x08) => &[0x08],
            (false, 0x0a) => &[0x0a],
            (false, 0x3f) => &[0x08, 0x0a],
            (true, 0x2a) | (true, 0x3f) => &[0x2a],
            _ => return sense::invalid_field(),
        };
        let alloc = if ten {
            usize::from(be16(cdb, 7))
        } else {
            usize::from(cdb[4])
        };
        let mut r = Response::new();
        let header_len = if ten { 8 } else { 4 };
        r.extend(header_len);
        // Block descriptors: disks only (MMC does not use them).
        let descriptor_len = if dbd || cd {
            0
        } else if llbaa {
            16
        } else {
            8
        };
        if descriptor_len != 0 {
            let blocks = self.blocks();
            let d = r.extend(descriptor_len);
            if descriptor_len == 16 {
                put64(d, 0, blocks);
                put32(d, 12, self.block_size());
            } else {
                put32(d, 0, u32::try_from(blocks).unwrap_or(u32::MAX));
                put32(d, 4, self.block_size() & 0x00ff_ffff);
            }
        }
        let changeable = pc == 1;
        for &p in pages {
            match p {
                0x08 => {
                    let d = r.extend(20);
                    d[0] = 0x08;
                    d[1] = 0x12;
                    if !changeable && self.write_cache() {
                        d[2] = 0x04; // WCE
                    }
                }
                0x0a => {
                    let d = r.extend(12);
                    d[0] = 0x0a;
                    d[1] = 0x0a;
                    if !changeable {
                        d[2] = 0x02; // GLTSD: no log parameters to save
                        d[3] = 0x10; // unrestricted reordering
                    }
                }
                _ => self.capabilities_page(changeable, &mut r),
            }
        }
        let total = r.len();
        let device_specific = if cd {
            0
        } else {
            // WP, and DPOFUA: DPO and FUA are accepted.
            (if self.read_only() { 0x80 } else { 0 }) | 0x10
        };
        let h = r.bytes_mut();
        if ten {
            put16(h, 0, (total - 2) as u16);
            h[3] = device_specific;
            h[4] = u8::from(descriptor_len == 16);
            put16(h, 6, descriptor_len as u16);
        } else {
            h[0] = (total - 1) as u8;
            h[2] = device_specific;
            h[3] = descriptor_len as u8;
        }
        Ok(Done::Data(r, alloc))
    }
}
