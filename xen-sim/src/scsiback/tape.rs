//! An emulated sequential-access device (SSC subset): a tape of variable-length blocks and
//! filemarks, in fixed or variable block mode.
//!
//! Commands: TEST UNIT READY, REWIND, REQUEST SENSE, READ BLOCK LIMITS, READ(6), WRITE(6),
//! WRITE FILEMARKS(6), SPACE(6) (blocks, filemarks, end of data; forward and backward), INQUIRY,
//! MODE SELECT(6)/MODE SENSE(6) (the block descriptor's block length: 0 is variable mode),
//! LOCATE(10), READ POSITION (short form). Reads report what SSC says: a filemark (FILEMARK,
//! ASC 00/01), end of data (BLANK CHECK, ASC 00/05), an incorrect-length block (ILI with the
//! INFORMATION field holding requested minus actual, negative for a longer block, unless SILI),
//! the beginning of the partition when spacing back (EOM, ASC 00/04), and a full medium (EOM,
//! VOLUME OVERFLOW) — each with the residual the backend reports.

use super::{fixed_sense, inquiry, CommandResult, ScsiDevice};

/// One logical object on the tape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TapeObject {
    /// A data block.
    Block(Vec<u8>),
    /// A filemark.
    Filemark,
}

/// A tape drive with a loaded tape.
#[derive(Debug, Clone)]
pub struct Tape {
    objects: Vec<TapeObject>,
    position: usize,
    /// 0: variable mode; otherwise the fixed block length.
    block_length: u32,
    capacity: usize,
    unit_attention: bool,
}

const FLAG_FILEMARK: u8 = 0x80;
const FLAG_EOM: u8 = 0x40;
const FLAG_ILI: u8 = 0x20;

impl Tape {
    /// An empty tape of `capacity` data bytes, in variable mode.
    pub fn new(capacity: usize) -> Self {
        Tape {
            objects: Vec::new(),
            position: 0,
            block_length: 0,
            capacity,
            unit_attention: false,
        }
    }

    /// The logical objects on the tape.
    pub fn objects(&self) -> &[TapeObject] {
        &self.objects
    }

    /// The position (logical object number).
    pub fn position(&self) -> usize {
        self.position
    }

    /// The fixed block length (0: variable mode).
    pub fn block_length(&self) -> u32 {
        self.block_length
    }

    fn used(&self) -> usize {
        self.objects
            .iter()
            .map(|o| match o {
                TapeObject::Block(b) => b.len(),
                TapeObject::Filemark => 0,
            })
            .sum()
    }

    fn truncate_for_write(&mut self) {
        self.objects.truncate(self.position);
    }

    fn read(&mut self, cdb: &[u8]) -> CommandResult {
        let fixed = cdb[1] & 1 != 0;
        let sili = cdb[1] & 2 != 0;
        let count = be24(&cdb[2..5]) as usize;
        if fixed && self.block_length == 0 {
            return CommandResult::check(fixed_sense(0x5, 0x24, 0, 0, None));
        }
        if fixed && sili {
            return CommandResult::check(fixed_sense(0x5, 0x24, 0, 0, None));
        }
        if count == 0 {
            return CommandResult::good(Vec::new());
        }
        if fixed {
            let bl = self.block_length as usize;
            let mut data = Vec::new();
            for done in 0..count {
                match self.objects.get(self.position).cloned() {
                    Some(TapeObject::Block(b)) => {
                        self.position += 1;
                        if b.len() != bl {
                            // A block of another length in fixed mode: ILI, the residue in blocks.
                            data.extend_from_slice(&b[..b.len().min(bl)]);
                            let rest = (count - done - 1) as i32;
                            return CommandResult::check_with(
                                fixed_sense(0, 0, 0, FLAG_ILI, Some(rest + 1)),
                                data,
                            );
                        }
                        data.extend_from_slice(&b);
                    }
                    Some(TapeObject::Filemark) => {
                        self.position += 1;
                        let rest = (count - done) as i32;
                        return CommandResult::check_with(
                            fixed_sense(0, 0, 1, FLAG_FILEMARK, Some(rest)),
                            data,
                        );
                    }
                    None => {
                        let rest = (count - done) as i32;
                        return CommandResult::check_with(
                            fixed_sense(0x8, 0, 5, 0, Some(rest)),
                            data,
                        );
                    }
                }
            }
            return CommandResult::good(data);
        }
        match self.objects.get(self.position).cloned() {
            Some(TapeObject::Block(b)) => {
                self.position += 1;
                let n = b.len().min(count);
                let data = b[..n].to_vec();
                if b.len() == count || sili && b.len() < count {
                    CommandResult::good(data)
                } else {
                    let info = count as i64 - b.len() as i64;
                    CommandResult::check_with(
                        fixed_sense(0, 0, 0, FLAG_ILI, Some(info as i32)),
                        data,
                    )
                }
            }
            Some(TapeObject::Filemark) => {
                self.position += 1;
                CommandResult::check(fixed_sense(0, 0, 1, FLAG_FILEMARK, Some(count as i32)))
            }
            None => CommandResult::check(fixed_sense(0x8, 0, 5, 0, Some(count as i32))),
        }
    }

    fn write(&mut self, cdb: &[u8], data: &[u8]) -> CommandResult {
        let fixed = cdb[1] & 1 != 0;
        let count = be24(&cdb[2..5]) as usize;
        let bytes = if fixed {
            if self.block_length == 0 {
                return CommandResult::check(fixed_sense(0x5, 0x24, 0, 0, None));
            }
            count * self.block_length as usize
        } else {
            count
        };
        if data.len() < bytes {
            return CommandResult::check(fixed_sense(0x5, 0x24, 0, 0, None));
        }
        self.truncate_for_write();
        if self.used() + bytes > self.capacity {
            let info = if fixed { count } else { bytes } as i32;
            return CommandResult::check(fixed_sense(0xd, 0, 2, FLAG_EOM, Some(info)));
        }
        if fixed {
            for chunk in data[..bytes].chunks(self.block_length as usize) {
                self.objects.push(TapeObject::Block(chunk.to_vec()));
                self.position += 1;
            }
        } else if bytes > 0 {
            self.objects.push(TapeObject::Block(data[..bytes].to_vec()));
            self.position += 1;
        }
        CommandResult::consumed(bytes)
    }

    fn space(&mut self, cdb: &[u8]) -> CommandResult {
        let code = cdb[1] & 0x7;
        let raw = be24(&cdb[2..5]);
        let count = if raw & 0x80_0000 != 0 {
            raw as i32 - 0x100_0000
        } else {
            raw as i32
        };
        match code {
            // Blocks.
            0 if count >= 0 => {
                for done in 0..count {
                    match self.objects.get(self.position) {
                        Some(TapeObject::Block(_)) => self.position += 1,
                        Some(TapeObject::Filemark) => {
                            self.position += 1;
                            return CommandResult::check(fixed_sense(
                                0,
                                0,
                                1,
                                FLAG_FILEMARK,
                                Some(count - done),
                            ));
                        }
                        None => {
                            return CommandResult::check(fixed_sense(
                                0x8,
                                0,
                                5,
                                0,
                                Some(count - done),
                            ))
                        }
                    }
                }
                CommandResult::good(Vec::new())
            }
            0 => {
                for done in 0..-count {
                    if self.position == 0 {
                        return CommandResult::check(fixed_sense(
                            0,
                            0,
                            4,
                            FLAG_EOM,
                            Some(-count - done),
                        ));
                    }
                    self.position -= 1;
                    if self.objects[self.position] == TapeObject::Filemark {
                        return CommandResult::check(fixed_sense(
                            0,
                            0,
                            1,
                            FLAG_FILEMARK,
                            Some(-count - done),
                        ));
                    }
                }
                CommandResult::good(Vec::new())
            }
            // Filemarks.
            1 if count >= 0 => {
                let mut left = count;
                while left > 0 {
                    match self.objects.get(self.position) {
                        Some(TapeObject::Filemark) => left -= 1,
                        Some(TapeObject::Block(_)) => {}
                        None => return CommandResult::check(fixed_sense(0x8, 0, 5, 0, Some(left))),
                    }
                    self.position += 1;
                }
                CommandResult::good(Vec::new())
            }
            1 => {
                let mut left = -count;
                while left > 0 {
                    if self.position == 0 {
                        return CommandResult::check(fixed_sense(0, 0, 4, FLAG_EOM, Some(left)));
                    }
                    self.position -= 1;
                    if self.objects[self.position] == TapeObject::Filemark {
                        left -= 1;
                    }
                }
                CommandResult::good(Vec::new())
            }
            // End of data.
            3 => {
                self.position = self.objects.len();
                CommandResult::good(Vec::new())
            }
            _ => CommandResult::check(fixed_sense(0x5, 0x24, 0, 0, None)),
        }
    }

    fn mode_sense(&self) -> Vec<u8> {
        let mut d = vec![11, 0, 0x10, 8];
        d.extend_from_slice(&[0, 0, 0, 0, 0]);
        d.extend_from_slice(&self.block_length.to_be_bytes()[1..]);
        d
    }

    fn read_position(&self) -> Vec<u8> {
        let mut d = vec![0u8; 20];
        if self.position == 0 {
            d[0] |= 0x80;
        }
        let pos = (self.position as u32).to_be_bytes();
        d[4..8].copy_from_slice(&pos);
        d[8..12].copy_from_slice(&pos);
        d
    }
}

fn be24(b: &[u8]) -> u32 {
    u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2])
}

impl ScsiDevice for Tape {
    fn execute(&mut self, cdb: &[u8], data_out: &[u8]) -> CommandResult {
        let op = cdb[0];
        if self.unit_attention && op != 0x12 && op != 0x03 {
            self.unit_attention = false;
            return CommandResult::check(fixed_sense(0x6, 0x29, 0x00, 0, None));
        }
        let needs = match op {
            0x08 | 0x0a | 0x10 | 0x11 | 0x15 | 0x1a | 0x12 | 0x05 | 0x01 | 0x00 | 0x03 => 6,
            0x2b | 0x34 => 10,
            _ => 1,
        };
        if cdb.len() < needs {
            return CommandResult::check(fixed_sense(0x5, 0x20, 0, 0, None));
        }
        match op {
            0x00 => CommandResult::good(Vec::new()),
            0x01 => {
                self.position = 0;
                CommandResult::good(Vec::new())
            }
            0x03 => CommandResult::good(fixed_sense(0, 0, 0, 0, None)),
            0x05 => CommandResult::good(vec![0, 0x10, 0x00, 0x00, 0x00, 0x01]),
            0x08 => self.read(cdb),
            0x0a => self.write(cdb, data_out),
            0x10 => {
                let count = be24(&cdb[2..5]) as usize;
                self.truncate_for_write();
                for _ in 0..count {
                    self.objects.push(TapeObject::Filemark);
                    self.position += 1;
                }
                CommandResult::good(Vec::new())
            }
            0x11 => self.space(cdb),
            0x12 => CommandResult::good(inquiry(0x01, true, b"VTAPE           ")),
            0x15 => {
                if data_out.len() >= 12 && data_out[3] >= 8 {
                    self.block_length = be24(&data_out[9..12]);
                }
                CommandResult::consumed(data_out.len())
            }
            0x1a => CommandResult::good(self.mode_sense()),
            0x2b => {
                let target = u32::from_be_bytes([cdb[3], cdb[4], cdb[5], cdb[6]]) as usize;
                if target > self.objects.len() {
                    self.position = self.objects.len();
                    return CommandResult::check(fixed_sense(0x8, 0, 5, 0, None));
                }
                self.position = target;
                CommandResult::good(Vec::new())
            }
            0x34 => CommandResult::good(self.read_position()),
            _ => CommandResult::check(fixed_sense(0x5, 0x20, 0, 0, None)),
        }
    }

    fn reset(&mut self) {
        self.unit_attention = true;
    }
}
