//! Reading the import and export tables of PE32+ images (`.sys`, `.dll`, `.exe`), for the Wine
//! import report. Images are untrusted input: every offset is checked, and a malformed image is
//! a [`PeError`], never a panic.

use std::fmt;

/// Why an image could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeError {
    /// Not an `MZ` image with a `PE\0\0` header.
    NotPe,
    /// Not PE32+ (the optional header's magic is not 0x20b).
    NotPe32Plus,
    /// A header, table or string lies outside the file or outside every section.
    Truncated(&'static str),
}

impl fmt::Display for PeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeError::NotPe => f.write_str("not a PE image"),
            PeError::NotPe32Plus => f.write_str("not a PE32+ (64-bit) image"),
            PeError::Truncated(what) => write!(f, "malformed image: {what} out of bounds"),
        }
    }
}

/// One imported function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Import {
    /// Imported by name.
    Name(String),
    /// Imported by ordinal.
    Ordinal(u16),
}

impl fmt::Display for Import {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Import::Name(name) => f.write_str(name),
            Import::Ordinal(n) => write!(f, "#{n}"),
        }
    }
}

struct Section {
    virtual_address: u32,
    virtual_size: u32,
    raw_offset: u32,
    raw_size: u32,
}

/// A parsed image: its bytes and section table.
pub struct Image<'a> {
    bytes: &'a [u8],
    sections: Vec<Section>,
    /// Data directories: (RVA, size).
    directories: Vec<(u32, u32)>,
}

fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        bytes.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        bytes.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        bytes.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// The longest name read from an image (import and export names are far shorter).
const NAME_MAX: usize = 512;
/// The most imports or exports read from one table (a bound against hostile counts).
const ENTRIES_MAX: usize = 65_536;

impl<'a> Image<'a> {
    /// Parses the headers of a PE32+ image.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, PeError> {
        if bytes.get(..2) != Some(b"MZ") {
            return Err(PeError::NotPe);
        }
        let pe = read_u32(bytes, 0x3c).ok_or(PeError::NotPe)? as usize;
        if bytes.get(pe..pe.saturating_add(4)) != Some(b"PE\0\0") {
            return Err(PeError::NotPe);
        }
        let sections_count = read_u16(bytes, pe + 6).ok_or(PeError::Truncated("file header"))?;
        let optional_size =
            read_u16(bytes, pe + 20).ok_or(PeError::Truncated("file header"))? as usize;
        let optional = pe + 24;
        if read_u16(bytes, optional).ok_or(PeError::Truncated("optional header"))? != 0x20b {
            return Err(PeError::NotPe32Plus);
        }
        let directory_count = read_u32(bytes, optional + 108)
            .ok_or(PeError::Truncated("optional header"))?
            .min(16) as usize;
        let mut directories = Vec::with_capacity(directory_count);
        for i in 0..directory_count {
            let at = optional + 112 + 8 * i;
            let rva = read_u32(bytes, at).ok_or(PeError::Truncated("data directories"))?;
            let size = read_u32(bytes, at + 4).ok_or(PeError::Truncated("data directories"))?;
            directories.push((rva, size));
        }
        let table = optional + optional_size;
        let mut sections = Vec::with_capacity(sections_count as usize);
        for i in 0..sections_count as usize {
            let at = table + 40 * i;
            let field = |off| read_u32(bytes, at + off).ok_or(PeError::Truncated("section table"));
            sections.push(Section {
                virtual_size: field(8)?,
                virtual_address: field(12)?,
                raw_size: field(16)?,
                raw_offset: field(20)?,
            });
        }
        Ok(Self {
            bytes,
            sections,
            directories,
        })
    }

    /// The file offset of an RVA, if a section's raw data holds it.
    fn offset(&self, rva: u32) -> Option<usize> {
        self.sections.iter().find_map(|s| {
            let size = s.virtual_size.max(s.raw_size);
            let delta = rva.checked_sub(s.virtual_address)?;
            (delta < size && delta < s.raw_size).then(|| (s.raw_offset as usize) + delta as usize)
        })
    }

    fn u32_at(&self, rva: u32, what: &'static str) -> Result<u32, PeError> {
        self.offset(rva)
            .and_then(|o| read_u32(self.bytes, o))
            .ok_or(PeError::Truncated(what))
    }

    fn string_at(&self, rva: u32, what: &'static str) -> Result<String, PeError> {
        let start = self.offset(rva).ok_or(PeError::Truncated(what))?;
        let tail = self.bytes.get(start..).ok_or(PeError::Truncated(what))?;
        let tail = &tail[..tail.len().min(NAME_MAX)];
        let end = tail
            .iter()
            .position(|&b| b == 0)
            .ok_or(PeError::Truncated(what))?;
        Ok(String::from_utf8_lossy(&tail[..end]).into_owned())
    }

    /// The imports: each DLL name with its functions, in table order.
    pub fn imports(&self) -> Result<Vec<(String, Vec<Import>)>, PeError> {
        let Some(&(rva, size)) = self.directories.get(1) else {
            return Ok(Vec::new());
        };
        if rva == 0 || size == 0 {
            return Ok(Vec::new());
        }
        let mut modules = Vec::new();
        for index in 0..ENTRIES_MAX as u32 {
            let descriptor = rva
                .checked_add(index * 20)
                .ok_or(PeError::Truncated("import directory"))?;
            let lookup = self.u32_at(descriptor, "import directory")?;
            let name_rva = self.u32_at(descriptor.wrapping_add(12), "import directory")?;
            let address = self.u32_at(descriptor.wrapping_add(16), "import directory")?;
            if lookup == 0 && name_rva == 0 && address == 0 {
                break;
            }
            let name = self.string_at(name_rva, "import DLL name")?;
            let table = if lookup != 0 { lookup } else { address };
            let mut functions = Vec::new();
            for slot in 0..ENTRIES_MAX as u32 {
                let at = table
                    .checked_add(slot * 8)
                    .ok_or(PeError::Truncated("import lookup table"))?;
                let entry = self
                    .offset(at)
                    .and_then(|o| read_u64(self.bytes, o))
                    .ok_or(PeError::Truncated("import lookup table"))?;
                if entry == 0 {
                    break;
                }
                if entry & (1 << 63) != 0 {
                    functions.push(Import::Ordinal(entry as u16));
                } else {
                    let hint_name = (entry & 0x7fff_ffff) as u32;
                    functions.push(Import::Name(
                        self.string_at(hint_name.wrapping_add(2), "import name")?,
                    ));
                }
            }
            modules.push((name, functions));
        }
        Ok(modules)
    }

    /// The names the image exports.
    pub fn exports(&self) -> Result<Vec<String>, PeError> {
        let Some(&(rva, size)) = self.directories.first() else {
            return Ok(Vec::new());
        };
        if rva == 0 || size == 0 {
            return Ok(Vec::new());
        }
        let count = self.u32_at(rva.wrapping_add(24), "export directory")? as usize;
        let names = self.u32_at(rva.wrapping_add(32), "export directory")?;
        let mut exports = Vec::with_capacity(count.min(ENTRIES_MAX));
        for i in 0..count.min(ENTRIES_MAX) as u32 {
            let name_rva = self.u32_at(names.wrapping_add(4 * i), "export name table")?;
            exports.push(self.string_at(name_rva, "export name")?);
        }
        Ok(exports)
    }
}

/// UTF-16LE strings in `bytes` that look like routine names (a capital letter, then at least
/// five letters or digits): what a driver hands to `MmGetSystemRoutineAddress`.
pub fn utf16_identifiers(bytes: &[u8]) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for parity in 0..2 {
        let mut current = String::new();
        let mut at = parity;
        while at + 1 < bytes.len() {
            let unit = u16::from_le_bytes([bytes[at], bytes[at + 1]]);
            let is_name_char = unit < 0x80 && (unit as u8).is_ascii_alphanumeric();
            if is_name_char && current.len() < NAME_MAX {
                current.push(unit as u8 as char);
            } else {
                if unit == 0
                    && current.len() >= 6
                    && current.starts_with(|c: char| c.is_ascii_uppercase())
                    && !found.contains(&current)
                {
                    found.push(current.clone());
                }
                current.clear();
            }
            at += 2;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal PE32+ image with one section holding an import directory (ntoskrnl.exe:
    /// DbgPrint and ordinal 7) and an export directory (DriverEntry).
    fn image() -> Vec<u8> {
        let mut b = vec![0u8; 0x400];
        b[0..2].copy_from_slice(b"MZ");
        b[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
        b[0x80..0x84].copy_from_slice(b"PE\0\0");
        b[0x86..0x88].copy_from_slice(&1u16.to_le_bytes()); // one section
        b[0x94..0x96].copy_from_slice(&240u16.to_le_bytes()); // optional header size
        let opt = 0x98;
        b[opt..opt + 2].copy_from_slice(&0x20bu16.to_le_bytes());
        b[opt + 108..opt + 112].copy_from_slice(&16u32.to_le_bytes());
        let dir = |b: &mut Vec<u8>, i: usize, rva: u32, size: u32| {
            b[opt + 112 + 8 * i..opt + 116 + 8 * i].copy_from_slice(&rva.to_le_bytes());
            b[opt + 116 + 8 * i..opt + 120 + 8 * i].copy_from_slice(&size.to_le_bytes());
        };
        dir(&mut b, 0, 0x1100, 40);
        dir(&mut b, 1, 0x1000, 40);
        // Section: RVA 0x1000, raw at 0x200, 0x200 bytes.
        let sec = opt + 240;
        b[sec + 8..sec + 12].copy_from_slice(&0x200u32.to_le_bytes());
        b[sec + 12..sec + 16].copy_from_slice(&0x1000u32.to_le_bytes());
        b[sec + 16..sec + 20].copy_from_slice(&0x200u32.to_le_bytes());
        b[sec + 20..sec + 24].copy_from_slice(&0x200u32.to_le_bytes());
        let put32 = |b: &mut Vec<u8>, rva: usize, v: u32| {
            let o = rva - 0x1000 + 0x200;
            b[o..o + 4].copy_from_slice(&v.to_le_bytes());
        };
        let put = |b: &mut Vec<u8>, rva: usize, s: &[u8]| {
            let o = rva - 0x1000 + 0x200;
            b[o..o + s.len()].copy_from_slice(s);
        };
        // Import descriptor at 0x1000: lookup table 0x1040, name 0x1080, IAT 0x1040.
        put32(&mut b, 0x1000, 0x1040);
        put32(&mut b, 0x100c, 0x1080);
        put32(&mut b, 0x1010, 0x1040);
        put32(&mut b, 0x1040, 0x1090); // hint/name entry
        put32(&mut b, 0x1048, 7);
        put32(&mut b, 0x104c, 0x8000_0000); // ordinal flag (bit 63)
        put(&mut b, 0x1080, b"ntoskrnl.exe\0");
        put(&mut b, 0x1092, b"DbgPrint\0");
        // Export directory at 0x1100: one name at 0x1140 -> "DriverEntry".
        put32(&mut b, 0x1100 + 24, 1);
        put32(&mut b, 0x1100 + 32, 0x1140);
        put32(&mut b, 0x1140, 0x1150);
        put(&mut b, 0x1150, b"DriverEntry\0");
        b
    }

    #[test]
    fn reads_imports_and_exports() {
        let bytes = image();
        let image = Image::parse(&bytes).unwrap();
        assert_eq!(
            image.imports().unwrap(),
            [(
                "ntoskrnl.exe".to_owned(),
                vec![Import::Name("DbgPrint".into()), Import::Ordinal(7)]
            )]
        );
        assert_eq!(image.exports().unwrap(), ["DriverEntry"]);
    }

    #[test]
    fn malformed_images_are_errors_not_panics() {
        let good = image();
        assert_eq!(Image::parse(b"MZ").err(), Some(PeError::NotPe));
        let mut not64 = good.clone();
        not64[0x98] = 0x0b;
        not64[0x99] = 0x01;
        assert_eq!(Image::parse(&not64).err(), Some(PeError::NotPe32Plus));
        // Every truncation and every single-byte corruption: errors or results, never a panic.
        for len in 0..good.len() {
            if let Ok(image) = Image::parse(&good[..len]) {
                let _ = image.imports();
                let _ = image.exports();
            }
        }
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0xff;
            if let Ok(image) = Image::parse(&bad) {
                let _ = image.imports();
                let _ = image.exports();
            }
        }
    }

    #[test]
    fn finds_utf16_routine_names() {
        let mut bytes = vec![1u8, 2, 3];
        for unit in "ExAllocatePool2\0short\0".encode_utf16() {
            bytes.extend_from_slice(&unit.to_le_bytes());
        }
        assert_eq!(utf16_identifiers(&bytes), ["ExAllocatePool2"]);
    }
}
