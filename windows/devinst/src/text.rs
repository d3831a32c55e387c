//! Fixed-capacity UTF-16 strings and console output, without a heap.

use crate::sys;

/// The longest string the program handles, in UTF-16 units (paths, IDs, MULTI_SZ lists).
pub const WIDE_CAPACITY: usize = 1024;

/// A UTF-16 string of at most `WIDE_CAPACITY - 1` units, always followed by a NUL in `units`.
#[derive(Clone)]
pub struct WideBuf {
    units: [u16; WIDE_CAPACITY],
    len: usize,
}

impl Default for WideBuf {
    fn default() -> Self {
        Self {
            units: [0; WIDE_CAPACITY],
            len: 0,
        }
    }
}

impl WideBuf {
    /// Copies `units` up to (not including) the first NUL; longer input is cut at capacity.
    pub fn from_units(units: &[u16]) -> Self {
        let mut buf = Self::default();
        for &unit in units.iter().take_while(|&&u| u != 0) {
            buf.push(unit);
        }
        buf
    }

    /// Appends one unit (also a NUL, to build MULTI_SZ lists); ignored when full.
    pub fn push(&mut self, unit: u16) {
        if self.len + 1 < WIDE_CAPACITY {
            self.units[self.len] = unit;
            self.len += 1;
            self.units[self.len] = 0;
        }
    }

    /// The units, without the final NUL.
    pub fn as_slice(&self) -> &[u16] {
        &self.units[..self.len]
    }

    /// A pointer to the NUL-terminated string.
    pub fn as_ptr(&self) -> *const u16 {
        self.units.as_ptr()
    }

    /// A mutable pointer to the whole buffer, for calls that fill it.
    pub fn as_mut_ptr(&mut self) -> *mut u16 {
        self.units.as_mut_ptr()
    }

    /// The capacity in bytes, for calls that take a byte size.
    pub fn byte_capacity(&self) -> u32 {
        (WIDE_CAPACITY * 2) as u32
    }

    /// Sets the length after a call filled the buffer with `units_written` units (clamped).
    pub fn set_len(&mut self, units_written: usize) {
        self.len = units_written.min(WIDE_CAPACITY - 1);
        self.units[self.len] = 0;
    }

    /// The string and its final NUL as little-endian bytes, for registry properties.
    pub fn as_bytes_with_nul(&self) -> ([u8; WIDE_CAPACITY * 2], usize) {
        let mut bytes = [0u8; WIDE_CAPACITY * 2];
        for (i, unit) in self.units[..=self.len].iter().enumerate() {
            bytes[2 * i..2 * i + 2].copy_from_slice(&unit.to_le_bytes());
        }
        (bytes, 2 * (self.len + 1))
    }
}

/// Whether `wide` equals the ASCII string `ascii`, ignoring ASCII case.
pub fn eq_ascii(wide: &WideBuf, ascii: &str) -> bool {
    let units = wide.as_slice();
    units.len() == ascii.len()
        && units
            .iter()
            .zip(ascii.bytes())
            .all(|(&u, b)| u < 0x80 && (u as u8).eq_ignore_ascii_case(&b))
}

/// Whether the MULTI_SZ list `list` contains `id` (ASCII case-insensitive, as setupapi compares
/// hardware IDs).
pub fn multi_sz_contains(list: &[u16], id: &[u16]) -> bool {
    let lower = |u: u16| {
        if (u16::from(b'A')..=u16::from(b'Z')).contains(&u) {
            u + 32
        } else {
            u
        }
    };
    list.split(|&u| u == 0).any(|entry| {
        !entry.is_empty()
            && entry.len() == id.len()
            && entry.iter().zip(id).all(|(&a, &b)| lower(a) == lower(b))
    })
}

/// A line of console output collected in a fixed buffer and written with one `WriteFile`.
pub struct Out {
    bytes: [u8; 1024],
    len: usize,
}

impl Out {
    /// An empty line.
    pub fn new() -> Self {
        Self {
            bytes: [0; 1024],
            len: 0,
        }
    }

    fn byte(&mut self, b: u8) {
        if self.len < self.bytes.len() {
            self.bytes[self.len] = b;
            self.len += 1;
        }
    }

    /// Appends ASCII text.
    pub fn str(&mut self, s: &str) -> &mut Self {
        s.bytes().for_each(|b| self.byte(b));
        self
    }

    /// Appends UTF-16 text; units outside ASCII become `?`.
    pub fn wide(&mut self, units: &[u16]) -> &mut Self {
        for &u in units {
            self.byte(if (0x20..0x7f).contains(&u) {
                u as u8
            } else {
                b'?'
            });
        }
        self
    }

    /// Appends `0x` and eight hex digits.
    pub fn hex(&mut self, value: u32) -> &mut Self {
        self.str("0x");
        for shift in (0..8).rev() {
            self.byte(b"0123456789abcdef"[((value >> (shift * 4)) & 0xf) as usize]);
        }
        self
    }

    /// Writes what was collected to standard output.
    pub fn flush(&mut self) {
        sys::write_stdout(&self.bytes[..self.len]);
        self.len = 0;
    }
}
