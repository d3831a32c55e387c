//! An emulated direct-access device (SBC subset) on a memory image.

use super::{fixed_sense, inquiry, CommandResult, ScsiDevice};

/// A disk of 512-byte blocks in memory.
#[derive(Debug, Clone)]
pub struct Disk {
    image: Vec<u8>,
    unit_attention: bool,
}

const BLOCK: usize = 512;

impl Disk {
    /// A disk of `blocks` blocks filled with a deterministic pattern.
    pub fn new(blocks: usize) -> Self {
        let image = (0..blocks * BLOCK)
            .map(|i| (i % 251) as u8 ^ (i / BLOCK) as u8)
            .collect();
        Disk {
            image,
            unit_attention: false,
        }
    }

    /// The image.
    pub fn image(&self) -> &[u8] {
        &self.image
    }

    fn range(&self, lba: u64, blocks: u64) -> Option<std::ops::Range<usize>> {
        let end = lba.checked_add(blocks)?;
        if end > (self.image.len() / BLOCK) as u64 {
            return None;
        }
        Some(lba as usize * BLOCK..end as usize * BLOCK)
    }
}

fn be(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |v, &x| v << 8 | u64::from(x))
}

impl ScsiDevice for Disk {
    fn execute(&mut self, cdb: &[u8], data_out: &[u8]) -> CommandResult {
        let op = cdb[0];
        if self.unit_attention && op != 0x12 && op != 0x03 {
            self.unit_attention = false;
            return CommandResult::check(fixed_sense(0x6, 0x29, 0x00, 0, None));
        }
        match op {
            0x00 => CommandResult::good(Vec::new()),
            0x03 => CommandResult::good(fixed_sense(0, 0, 0, 0, None)),
            0x12 => CommandResult::good(inquiry(0x00, false, b"VDISK           ")),
            0x25 => {
                let last = (self.image.len() / BLOCK) as u32 - 1;
                let mut d = last.to_be_bytes().to_vec();
                d.extend_from_slice(&(BLOCK as u32).to_be_bytes());
                CommandResult::good(d)
            }
            0x35 => CommandResult::good(Vec::new()),
            0x28 | 0x2a | 0x88 | 0x8a => {
                if cdb.len() < if op >= 0x88 { 16 } else { 10 } {
                    return CommandResult::check(fixed_sense(0x5, 0x20, 0, 0, None));
                }
                let (lba, blocks) = if op >= 0x88 {
                    (be(&cdb[2..10]), be(&cdb[10..14]))
                } else {
                    (be(&cdb[2..6]), be(&cdb[7..9]))
                };
                let Some(r) = self.range(lba, blocks) else {
                    return CommandResult::check(fixed_sense(0x5, 0x21, 0, 0, None));
                };
                if op == 0x28 || op == 0x88 {
                    CommandResult::good(self.image[r].to_vec())
                } else {
                    let n = data_out.len().min(r.len());
                    self.image[r.start..r.start + n].copy_from_slice(&data_out[..n]);
                    CommandResult::consumed(n)
                }
            }
            _ => CommandResult::check(fixed_sense(0x5, 0x20, 0, 0, None)),
        }
    }

    fn reset(&mut self) {
        self.unit_attention = true;
    }
}
