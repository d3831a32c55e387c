//! An emulated optical writer (MMC subset): a DVD-R (or CD-R) drive with a sequentially recorded
//! disc of 2048-byte blocks, tracks and sessions, and media changes.
//!
//! Commands: TEST UNIT READY, INQUIRY (type 5, removable), GET CONFIGURATION (the profile list
//! feature: DVD-R and CD-R, the current profile), READ DISC INFORMATION (disc and last-session
//! status), READ TRACK INFORMATION (by track number: start, size, blank bit, next writable
//! address), READ TOC (format 0: the written tracks and the lead-out), READ CAPACITY(10),
//! READ(10), WRITE(10) (only at the next writable address of an open disc: else ILLEGAL REQUEST
//! 21/02), CLOSE TRACK/SESSION (closing the session finalises the disc), START STOP UNIT (eject).
//! Without a disc every medium command gets NOT READY 3A/00; a newly inserted disc raises UNIT
//! ATTENTION 28/00 on the next command.

use super::{fixed_sense, inquiry, CommandResult, ScsiDevice};

/// Bytes per block.
pub const BLOCK: usize = 2048;
/// MMC profile DVD-R sequential recording.
pub const PROFILE_DVD_R: u16 = 0x0011;
/// MMC profile CD-R.
pub const PROFILE_CD_R: u16 = 0x0009;

/// A recordable disc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disc {
    /// Blocks the disc holds.
    pub capacity: u32,
    /// The recorded blocks, in order.
    pub data: Vec<u8>,
    /// Closed tracks' `(start, length)` in blocks.
    pub tracks: Vec<(u32, u32)>,
    /// The start of the open (being written) track, if any.
    pub open_track: Option<u32>,
    /// The session is closed: the disc is complete.
    pub finalised: bool,
}

impl Disc {
    /// A blank disc of `capacity` blocks.
    pub fn blank(capacity: u32) -> Self {
        Disc {
            capacity,
            data: Vec::new(),
            tracks: Vec::new(),
            open_track: None,
            finalised: false,
        }
    }

    fn written(&self) -> u32 {
        (self.data.len() / BLOCK) as u32
    }

    fn all_tracks(&self) -> Vec<(u32, u32)> {
        let mut t = self.tracks.clone();
        if let Some(start) = self.open_track {
            t.push((start, self.written() - start));
        }
        t
    }
}

/// The drive.
#[derive(Debug, Clone)]
pub struct Optical {
    disc: Option<Disc>,
    unit_attention: Option<(u8, u8)>,
}

impl Optical {
    /// A drive with a blank disc of `capacity` blocks loaded.
    pub fn new(capacity: u32) -> Self {
        Optical {
            disc: Some(Disc::blank(capacity)),
            unit_attention: None,
        }
    }

    /// The disc, if one is loaded.
    pub fn disc(&self) -> Option<&Disc> {
        self.disc.as_ref()
    }

    /// Takes the disc out (as a user pressing eject).
    pub fn eject(&mut self) {
        self.disc = None;
    }

    /// Loads `disc`: the next command gets UNIT ATTENTION, NOT READY TO READY CHANGE.
    pub fn insert(&mut self, disc: Disc) {
        self.disc = Some(disc);
        self.unit_attention = Some((0x28, 0x00));
    }

    fn get_configuration(&self) -> Vec<u8> {
        let current = if self.disc.is_some() {
            PROFILE_DVD_R
        } else {
            0
        };
        let mut d = vec![0u8; 8];
        d[6..8].copy_from_slice(&current.to_be_bytes());
        // Feature 0000h, the profile list: two 4-byte profile descriptors.
        d.extend_from_slice(&[0x00, 0x00, 0x03, 8]);
        for p in [PROFILE_DVD_R, PROFILE_CD_R] {
            let mut desc = [0u8; 4];
            desc[0..2].copy_from_slice(&p.to_be_bytes());
            desc[2] = u8::from(p == current);
            d.extend_from_slice(&desc);
        }
        let len = (d.len() - 4) as u32;
        d[0..4].copy_from_slice(&len.to_be_bytes());
        d
    }

    fn disc_information(disc: &Disc) -> Vec<u8> {
        let mut d = vec![0u8; 34];
        d[0..2].copy_from_slice(&32u16.to_be_bytes());
        let (status, session) = match (disc.written(), disc.finalised) {
            (0, false) => (0, 0),
            (_, false) => (1, 1),
            (_, true) => (2, 3),
        };
        d[2] = status | session << 2;
        d[3] = 1;
        d[4] = 1;
        let tracks = disc.all_tracks().len() as u8;
        d[5] = 1;
        d[6] = if disc.finalised {
            tracks
        } else {
            tracks
                .saturating_add(u8::from(disc.open_track.is_none()))
                .max(1)
        };
        d
    }

    fn track_information(disc: &Disc, track: u32) -> Option<Vec<u8>> {
        let tracks = disc.all_tracks();
        let mut d = vec![0u8; 36];
        d[0..2].copy_from_slice(&34u16.to_be_bytes());
        d[2] = track as u8;
        d[3] = 1;
        let n = tracks.len() as u32;
        let (start, size, blank, nwa) = if track >= 1 && track <= n {
            let (start, len) = tracks[track as usize - 1];
            let open = disc.open_track == Some(start);
            (start, len, false, open.then_some(disc.written()))
        } else if track == n + 1 && disc.open_track.is_none() && !disc.finalised {
            // The invisible track: the rest of the disc, blank.
            let start = disc.written();
            (start, disc.capacity - start, true, Some(start))
        } else {
            return None;
        };
        if blank {
            d[6] |= 0x40;
        }
        d[8..12].copy_from_slice(&start.to_be_bytes());
        if let Some(nwa) = nwa {
            d[7] |= 1;
            d[12..16].copy_from_slice(&nwa.to_be_bytes());
        }
        d[24..28].copy_from_slice(&size.to_be_bytes());
        Some(d)
    }

    fn toc(disc: &Disc) -> Option<Vec<u8>> {
        let tracks = disc.all_tracks();
        if tracks.is_empty() {
            return None;
        }
        let mut d = vec![0u8; 4];
        d[2] = 1;
        d[3] = tracks.len() as u8;
        let mut entry = |number: u8, start: u32| {
            d.extend_from_slice(&[0, 0x14, number, 0]);
            d.extend_from_slice(&start.to_be_bytes());
        };
        for (i, (start, _)) in tracks.iter().enumerate() {
            entry(i as u8 + 1, *start);
        }
        entry(0xaa, disc.written());
        let len = (d.len() - 2) as u16;
        d[0..2].copy_from_slice(&len.to_be_bytes());
        Some(d)
    }
}

fn be(b: &[u8]) -> u32 {
    b.iter().fold(0u32, |v, &x| v << 8 | u32::from(x))
}

fn alloc(data: Vec<u8>, len: usize) -> CommandResult {
    let mut data = data;
    data.truncate(len);
    CommandResult::good(data)
}

impl ScsiDevice for Optical {
    fn execute(&mut self, cdb: &[u8], data_out: &[u8]) -> CommandResult {
        let op = cdb[0];
        let needs = match op {
            0x00 | 0x12 | 0x1b => 6,
            0x25 | 0x28 | 0x2a | 0x43 | 0x46 | 0x51 | 0x52 | 0x5b => 10,
            _ => 1,
        };
        if cdb.len() < needs {
            return CommandResult::check(fixed_sense(0x5, 0x20, 0, 0, None));
        }
        if op == 0x12 {
            return alloc(
                inquiry(0x05, true, b"VDVDRW          "),
                usize::from(cdb[4]),
            );
        }
        if op == 0x46 {
            return alloc(self.get_configuration(), be(&cdb[7..9]) as usize);
        }
        if let Some((asc, ascq)) = self.unit_attention.take() {
            return CommandResult::check(fixed_sense(0x6, asc, ascq, 0, None));
        }
        if op == 0x1b {
            if cdb[4] & 0x3 == 0x2 {
                self.disc = None;
            }
            return CommandResult::good(Vec::new());
        }
        let Some(disc) = self.disc.as_mut() else {
            return CommandResult::check(fixed_sense(0x2, 0x3a, 0, 0, None));
        };
        let illegal = |asc, ascq| CommandResult::check(fixed_sense(0x5, asc, ascq, 0, None));
        match op {
            0x00 => CommandResult::good(Vec::new()),
            0x25 => {
                let last = disc.written().saturating_sub(1);
                let mut d = last.to_be_bytes().to_vec();
                d.extend_from_slice(&(BLOCK as u32).to_be_bytes());
                CommandResult::good(d)
            }
            0x28 => {
                let (lba, n) = (be(&cdb[2..6]), be(&cdb[7..9]));
                if lba.checked_add(n).is_none_or(|end| end > disc.written()) {
                    return illegal(0x21, 0x00);
                }
                let r = lba as usize * BLOCK..(lba + n) as usize * BLOCK;
                CommandResult::good(disc.data[r].to_vec())
            }
            0x2a => {
                let (lba, n) = (be(&cdb[2..6]), be(&cdb[7..9]));
                let bytes = n as usize * BLOCK;
                if disc.finalised || lba != disc.written() || data_out.len() < bytes {
                    return illegal(0x21, 0x02);
                }
                if disc.written() + n > disc.capacity {
                    return CommandResult::check(fixed_sense(0x3, 0x0c, 0x00, 0, None));
                }
                disc.open_track.get_or_insert(lba);
                disc.data.extend_from_slice(&data_out[..bytes]);
                CommandResult::consumed(bytes)
            }
            0x43 => match Self::toc(disc) {
                Some(d) => alloc(d, be(&cdb[7..9]) as usize),
                None => illegal(0x24, 0x00),
            },
            0x51 => alloc(Self::disc_information(disc), be(&cdb[7..9]) as usize),
            0x52 => {
                if cdb[1] & 0x3 != 1 {
                    return illegal(0x24, 0x00);
                }
                match Self::track_information(disc, be(&cdb[2..6])) {
                    Some(d) => alloc(d, be(&cdb[7..9]) as usize),
                    None => illegal(0x24, 0x00),
                }
            }
            0x5b => match cdb[2] & 0x7 {
                1 => {
                    if let Some(start) = disc.open_track.take() {
                        let len = disc.written() - start;
                        disc.tracks.push((start, len));
                    }
                    CommandResult::good(Vec::new())
                }
                2 => {
                    if let Some(start) = disc.open_track.take() {
                        let len = disc.written() - start;
                        disc.tracks.push((start, len));
                    }
                    disc.finalised = true;
                    CommandResult::good(Vec::new())
                }
                _ => illegal(0x24, 0x00),
            },
            _ => illegal(0x20, 0x00),
        }
    }

    fn reset(&mut self) {
        self.unit_attention = Some((0x29, 0x00));
    }
}
