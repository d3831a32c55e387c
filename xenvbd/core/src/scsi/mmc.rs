//! Multimedia commands (MMC) a CD-ROM needs to be mounted: configuration, TOC, disc and track
//! information, event status, the capabilities mode page, mechanism status and speed.

use super::buffer::Response;
use super::sense::{self, ScsiResult};
use super::{be16, be32, put16, put32, Cmd, Disk, Done, MEDIA_EVENT_NONE};

/// CD-ROM profile.
pub const PROFILE_CD_ROM: u16 = 0x0008;
/// DVD-ROM profile.
pub const PROFILE_DVD_ROM: u16 = 0x0010;
/// Blocks of an 80-minute CD; a larger medium is presented as a DVD-ROM.
pub const CD_MAX_BLOCKS: u64 = 80 * 60 * 75;

/// The address of `lba` in minutes/seconds/frames (with the 2-second pregap), saturated.
fn msf(lba: u64) -> [u8; 4] {
    let a = lba + 150;
    let m = (a / (60 * 75)).min(255) as u8;
    let s = ((a / 75) % 60) as u8;
    let f = (a % 75) as u8;
    [0, m, s, f]
}

/// Data track, copy not permitted, Q sub-channel mode 1 (ADR 1, CONTROL 4).
const ADR_CONTROL_DATA: u8 = 0x14;

impl Disk {
    /// The current profile: none without a medium, DVD-ROM for a medium larger than a CD,
    /// otherwise CD-ROM.
    pub(crate) fn current_profile(&self) -> u16 {
        match self.blocks() {
            0 => 0,
            n if n > CD_MAX_BLOCKS => PROFILE_DVD_ROM,
            _ => PROFILE_CD_ROM,
        }
    }

    fn address(&self, lba: u64, use_msf: bool) -> [u8; 4] {
        if use_msf {
            msf(lba)
        } else {
            u32::try_from(lba).unwrap_or(u32::MAX).to_be_bytes()
        }
    }

    /// MODE SENSE page 2Ah, CD/DVD capabilities and mechanical status (26 bytes).
    pub(crate) fn capabilities_page(&self, changeable: bool, r: &mut Response) {
        let d = r.extend(26);
        d[0] = 0x2a;
        d[1] = 26 - 2;
        if changeable {
            return;
        }
        // Reads CD-R, CD-RW and DVD-ROM media.
        d[2] = 0x08 | 0x02 | 0x01;
        // Mode 2 form 1.
        d[4] = 0x10;
        // Tray loading mechanism, lock supported, the current lock state.
        d[6] = 0x20 | 0x01 | if self.prevent_removal { 0x02 } else { 0 };
        // Maximum and current read speed (obsolete fields): 8x DVD in kB/s.
        put16(d, 8, 11080);
        put16(d, 14, 11080);
    }

    /// READ TOC/PMA/ATIP, formats 0 (TOC), 1 (session information) and 2 (raw TOC). The
    /// format comes from byte 2, or from the two top bits of the control byte (the older
    /// placement) when byte 2 holds none.
    pub(crate) fn read_toc(&self, cmd: &Cmd<'_, '_>) -> ScsiResult<Done> {
        let cdb = cmd.cdb;
        let use_msf = cdb[1] & 0x02 != 0;
        if cdb[1] & 0xfd != 0 || cdb[2] & 0xf0 != 0 {
            return sense::invalid_field();
        }
        let format = match cdb[2] & 0x0f {
            0 => cdb[9] >> 6,
            f => f,
        };
        let track = cdb[6];
        let alloc = usize::from(be16(cdb, 7));
        let lead_out = self.blocks();
        let mut r = Response::new();
        match format {
            0 => {
                let h = r.extend(4);
                h[2] = 1;
                h[3] = 1;
                match track {
                    0 | 1 => {
                        let d = r.extend(8);
                        d[1] = ADR_CONTROL_DATA;
                        d[2] = 1;
                        d[4..8].copy_from_slice(&self.address(0, use_msf));
                    }
                    0xaa => {}
                    _ => return sense::invalid_field(),
                }
                let d = r.extend(8);
                d[1] = ADR_CONTROL_DATA;
                d[2] = 0xaa;
                d[4..8].copy_from_slice(&self.address(lead_out, use_msf));
            }
            1 => {
                let h = r.extend(12);
                h[2] = 1;
                h[3] = 1;
                h[5] = ADR_CONTROL_DATA;
                h[6] = 1;
                h[8..12].copy_from_slice(&self.address(0, use_msf));
            }
            2 => {
                let h = r.extend(4);
                h[2] = 1;
                h[3] = 1;
                let lead_out_msf = msf(lead_out);
                let first = msf(0);
                // Points A0 (first track, CD-ROM disc type), A1 (last track), A2 (lead-out)
                // and track 1.
                let entries: [(u8, [u8; 3]); 4] = [
                    (0xa0, [1, 0x00, 0]),
                    (0xa1, [1, 0, 0]),
                    (0xa2, [lead_out_msf[1], lead_out_msf[2], lead_out_msf[3]]),
                    (0x01, [first[1], first[2], first[3]]),
                ];
                for (point, p) in entries {
                    let d = r.extend(11);
                    d[0] = 1;
                    d[1] = ADR_CONTROL_DATA;
                    d[3] = point;
                    d[8..11].copy_from_slice(&p);
                }
            }
            _ => return sense::invalid_field(),
        }
        let len = (r.len() - 2) as u16;
        put16(r.bytes_mut(), 0, len);
        Ok(Done::Data(r, alloc))
    }

    /// GET CONFIGURATION: profile list (DVD-ROM, CD-ROM), core, morphing, removable medium,
    /// random readable and DVD read features.
    pub(crate) fn get_configuration(&self, cmd: &Cmd<'_, '_>) -> ScsiResult<Done> {
        let cdb = cmd.cdb;
        let rt = cdb[1] & 0x03;
        if cdb[1] & 0xfc != 0 || rt == 3 {
            return sense::invalid_field();
        }
        let start = be16(cdb, 2);
        let alloc = usize::from(be16(cdb, 7));
        let profile = self.current_profile();
        let medium = profile != 0;
        let mut r = Response::new();
        put16(r.extend(8), 6, profile);
        // (feature, version, persistent, current, additional data)
        let dvd = profile == PROFILE_DVD_ROM;
        let features: [(u16, u8, bool, bool); 6] = [
            (0x0000, 0, true, true),
            (0x0001, 2, true, true),
            (0x0002, 1, true, true),
            (0x0003, 0, true, true),
            (0x0010, 0, false, medium),
            (0x001f, 0, false, dvd),
        ];
        for (code, version, persistent, current) in features {
            let wanted = match rt {
                0 => code >= start,
                1 => code >= start && current,
                _ => code == start,
            };
            if !wanted {
                continue;
            }
            let additional: u8 = match code {
                0x0000 | 0x0001 | 0x0010 => 8,
                0x0002 | 0x0003 => 4,
                _ => 0,
            };
            let h = r.extend(4);
            put16(h, 0, code);
            h[2] = (version << 2) | (u8::from(persistent) << 1) | u8::from(current);
            h[3] = additional;
            let d = r.extend(usize::from(additional));
            match code {
                0x0000 => {
                    put16(d, 0, PROFILE_DVD_ROM);
                    d[2] = u8::from(dvd);
                    put16(d, 4, PROFILE_CD_ROM);
                    d[6] = u8::from(profile == PROFILE_CD_ROM);
                }
                // Physical interface: SCSI family; DBE: device busy events reported.
                0x0001 => {
                    put32(d, 0, 1);
                    d[4] = 0x01;
                }
                // OCEvent: operational change events; polled only.
                0x0002 => d[0] = 0x02,
                // Tray, lock supported, no eject.
                0x0003 => d[0] = 0x20 | 0x01,
                0x0010 => {
                    put32(d, 0, 2048);
                    put16(d, 4, if dvd { 16 } else { 1 });
                }
                _ => {}
            }
        }
        let len = (r.len() - 4) as u32;
        put32(r.bytes_mut(), 0, len);
        Ok(Done::Data(r, alloc))
    }

    /// GET EVENT STATUS NOTIFICATION, polled: operational change (no event), media (new
    /// medium or removal once after a change, otherwise no change, with the medium-present
    /// bit) and device busy (no event) classes. A pending media event is reported first.
    pub(crate) fn get_event_status(&mut self, cmd: &Cmd<'_, '_>) -> ScsiResult<Done> {
        let cdb = cmd.cdb;
        // Asynchronous notification is not supported.
        if cdb[1] != 0x01 {
            return sense::invalid_field();
        }
        const SUPPORTED: u8 = (1 << 1) | (1 << 4) | (1 << 6);
        let request = cdb[4];
        let alloc = usize::from(be16(cdb, 7));
        let mut r = Response::new();
        // The lowest requested class with an event (only the media class has any), else the
        // lowest requested class, reporting no change.
        let media_pending = request & (1 << 4) != 0 && self.media_event != MEDIA_EVENT_NONE;
        let class = if media_pending {
            4
        } else {
            (request & SUPPORTED).trailing_zeros() as u8
        };
        if class >= 8 {
            let h = r.extend(4);
            put16(h, 0, 2);
            h[2] = 0x80; // NEA
            h[3] = SUPPORTED;
            return Ok(Done::Data(r, alloc));
        }
        let h = r.extend(4);
        put16(h, 0, 6);
        h[2] = class;
        h[3] = SUPPORTED;
        let d = r.extend(4);
        match class {
            1 => {
                d[1] = if self.prevent_removal { 0x80 } else { 0 };
            }
            4 => {
                d[0] = self.media_event;
                d[1] = if self.blocks() != 0 { 0x02 } else { 0 };
                self.media_event = MEDIA_EVENT_NONE;
            }
            _ => {}
        }
        Ok(Done::Data(r, alloc))
    }

    /// READ DISC INFORMATION, standard disc information: a complete, finalised single-session
    /// disc with one track.
    pub(crate) fn read_disc_information(&self, cmd: &Cmd<'_, '_>) -> ScsiResult<Done> {
        let cdb = cmd.cdb;
        if cdb[1] != 0 {
            return sense::invalid_field();
        }
        let alloc = usize::from(be16(cdb, 7));
        let mut r = Response::new();
        let d = r.extend(34);
        put16(d, 0, 32);
        d[2] = 0x0e; // last session complete, disc complete
        d[3] = 1; // first track
        d[4] = 1; // sessions
        d[5] = 1; // first track in last session
        d[6] = 1; // last track in last session
        put32(d, 16, u32::MAX); // lead-in of the last session: none
        put32(d, 20, u32::MAX); // last possible lead-out: none
        Ok(Done::Data(r, alloc))
    }

    /// READ TRACK INFORMATION for the one data track, addressed by LBA, track 1 or session 1.
    pub(crate) fn read_track_information(&self, cmd: &Cmd<'_, '_>) -> ScsiResult<Done> {
        let cdb = cmd.cdb;
        if cdb[1] & 0xfc != 0 {
            return sense::invalid_field();
        }
        let number = be32(cdb, 2);
        match cdb[1] & 0x03 {
            0 => {
                if u64::from(number) >= self.blocks() {
                    return Err(sense::LBA_OUT_OF_RANGE.into());
                }
            }
            1 | 2 if number == 1 => {}
            _ => return sense::invalid_field(),
        }
        let alloc = usize::from(be16(cdb, 7));
        let size = u32::try_from(self.blocks()).unwrap_or(u32::MAX);
        let mut r = Response::new();
        let d = r.extend(48);
        put16(d, 0, 46);
        d[2] = 1; // track
        d[3] = 1; // session
        d[5] = 0x04; // data track, uninterrupted
        d[6] = 0x01; // data mode 1
        put32(d, 8, 0); // start
        put32(d, 24, size); // size
        put32(d, 28, size.saturating_sub(1)); // last recorded address
        Ok(Done::Data(r, alloc))
    }

    /// GET PERFORMANCE: the header alone (no descriptors: the speed is not meaningful).
    pub(crate) fn get_performance(&self, cmd: &Cmd<'_, '_>) -> ScsiResult<Done> {
        let alloc = usize::from(be16(cmd.cdb, 8)) * 16 + 8;
        let mut r = Response::new();
        put32(r.extend(8), 0, 4);
        Ok(Done::Data(r, alloc))
    }

    /// MECHANISM STATUS: idle, no changer, door closed.
    pub(crate) fn mechanism_status(&self, cmd: &Cmd<'_, '_>) -> ScsiResult<Done> {
        let alloc = usize::from(be16(cmd.cdb, 8));
        let mut r = Response::new();
        r.extend(8);
        Ok(Done::Data(r, alloc))
    }
}
