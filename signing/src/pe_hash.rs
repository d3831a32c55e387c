//! The Authenticode hash of a PE image, the digest a catalog records for a `.sys` and that a
//! signature embedded in the image signs.
//!
//! The hash covers the whole file except three places that signing itself changes: the
//! optional header's `CheckSum` field, the certificate-table entry of the data directory, and
//! the certificate table (the embedded signatures) at the end of the file. Everything else —
//! headers, section data, data after the last section — is hashed in file order, so the hash of
//! an image is the same before and after it is signed.
//!
//! The image is untrusted input: every offset is checked against the file's length and a
//! malformed image gives a [`PeError`], never a panic.

use core::fmt;

use sha1::Digest;

/// Why a file is not a PE image whose Authenticode hash can be computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeError {
    /// The file ends before a structure the hash needs; the structure is named.
    Truncated(&'static str),
    /// No `MZ` at offset 0.
    NotMz,
    /// No `PE\0\0` where `e_lfanew` points.
    NotPe,
    /// The optional header's magic is neither PE32 (0x10b) nor PE32+ (0x20b).
    UnknownMagic(u16),
    /// The data directory has no certificate-table entry (fewer than five entries).
    NoCertificateEntry,
    /// The certificate table is not inside the file, or does not end it (an image whose
    /// signature is followed by other data cannot be hashed the Authenticode way).
    BadCertificateTable {
        /// The table's file offset.
        offset: u32,
        /// The table's size.
        size: u32,
        /// The file's length.
        file_len: usize,
    },
}

impl fmt::Display for PeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated(what) => write!(f, "the file ends inside the {what}"),
            Self::NotMz => f.write_str("no MZ signature"),
            Self::NotPe => f.write_str("no PE signature at e_lfanew"),
            Self::UnknownMagic(m) => write!(f, "unknown optional-header magic {m:#x}"),
            Self::NoCertificateEntry => {
                f.write_str("the data directory has no certificate-table entry")
            }
            Self::BadCertificateTable {
                offset,
                size,
                file_len,
            } => write!(
                f,
                "certificate table at {offset:#x} of {size:#x} bytes does not end the \
                 {file_len:#x}-byte file"
            ),
        }
    }
}

impl std::error::Error for PeError {}

/// The three byte ranges of an image that the Authenticode hash leaves out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exclusions {
    /// Offset of the 4-byte `CheckSum` field.
    pub checksum: usize,
    /// Offset of the 8-byte certificate-table directory entry.
    pub certificate_entry: usize,
    /// Start of the certificate table (the file's length when the image is unsigned).
    pub certificate_table: usize,
}

fn u16_at(bytes: &[u8], at: usize, what: &'static str) -> Result<u16, PeError> {
    bytes
        .get(at..at + 2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or(PeError::Truncated(what))
}

fn u32_at(bytes: &[u8], at: usize, what: &'static str) -> Result<u32, PeError> {
    bytes
        .get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(PeError::Truncated(what))
}

/// Finds the ranges the hash excludes, validating the headers on the way.
pub fn exclusions(image: &[u8]) -> Result<Exclusions, PeError> {
    if image.get(..2).ok_or(PeError::Truncated("DOS header"))? != b"MZ" {
        return Err(PeError::NotMz);
    }
    let nt = u32_at(image, 0x3c, "DOS header")? as usize;
    if image
        .get(nt..nt + 4)
        .ok_or(PeError::Truncated("PE signature"))?
        != b"PE\0\0"
    {
        return Err(PeError::NotPe);
    }
    let optional = nt + 4 + 20;
    let magic = u16_at(image, optional, "optional header")?;
    // Offsets of NumberOfRvaAndSizes and of the data directory in each optional-header format.
    let (count_at, directory_at) = match magic {
        0x10b => (optional + 92, optional + 96),
        0x20b => (optional + 108, optional + 112),
        other => return Err(PeError::UnknownMagic(other)),
    };
    let count = u32_at(image, count_at, "optional header")?;
    if count < 5 {
        return Err(PeError::NoCertificateEntry);
    }
    // IMAGE_DIRECTORY_ENTRY_SECURITY is entry 4; its "address" is a file offset.
    let certificate_entry = directory_at + 4 * 8;
    let table_offset = u32_at(image, certificate_entry, "data directory")?;
    let table_size = u32_at(image, certificate_entry + 4, "data directory")?;
    let certificate_table = if table_size == 0 {
        image.len()
    } else {
        let end = (table_offset as usize).checked_add(table_size as usize);
        if end != Some(image.len()) || (table_offset as usize) < certificate_entry + 8 {
            return Err(PeError::BadCertificateTable {
                offset: table_offset,
                size: table_size,
                file_len: image.len(),
            });
        }
        table_offset as usize
    };
    Ok(Exclusions {
        checksum: optional + 64,
        certificate_entry,
        certificate_table,
    })
}

/// Feeds the hashed ranges of `image` to `hasher`.
fn hash_into<D: Digest>(image: &[u8], hasher: &mut D) -> Result<(), PeError> {
    let ex = exclusions(image)?;
    hasher.update(&image[..ex.checksum]);
    hasher.update(&image[ex.checksum + 4..ex.certificate_entry]);
    hasher.update(&image[ex.certificate_entry + 8..ex.certificate_table]);
    Ok(())
}

/// The SHA-1 Authenticode hash of `image`.
pub fn authenticode_sha1(image: &[u8]) -> Result<[u8; 20], PeError> {
    let mut hasher = sha1::Sha1::new();
    hash_into(image, &mut hasher)?;
    Ok(hasher.finalize().into())
}

/// The SHA-256 Authenticode hash of `image`.
pub fn authenticode_sha256(image: &[u8]) -> Result<[u8; 32], PeError> {
    let mut hasher = sha2::Sha256::new();
    hash_into(image, &mut hasher)?;
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testpe::tiny_pe;

    #[test]
    fn exclusions_of_an_unsigned_image() {
        let image = tiny_pe(0x20b);
        let ex = exclusions(&image).unwrap();
        assert_eq!(ex.checksum, 0x80 + 24 + 64);
        assert_eq!(ex.certificate_entry, 0x80 + 24 + 112 + 32);
        assert_eq!(ex.certificate_table, image.len());
    }

    #[test]
    fn the_hash_ignores_checksum_certificate_entry_and_table() {
        let image = tiny_pe(0x20b);
        let ex = exclusions(&image).unwrap();
        let base = authenticode_sha256(&image).unwrap();

        let mut changed = image.clone();
        changed[ex.checksum..ex.checksum + 4].copy_from_slice(&0x1234_5678u32.to_le_bytes());
        assert_eq!(authenticode_sha256(&changed).unwrap(), base);

        // A "signature" appended and the directory entry pointing at it.
        let mut signed = image.clone();
        let offset = signed.len() as u32;
        signed.extend_from_slice(&[0xAA; 24]);
        signed[ex.certificate_entry..ex.certificate_entry + 4]
            .copy_from_slice(&offset.to_le_bytes());
        signed[ex.certificate_entry + 4..ex.certificate_entry + 8]
            .copy_from_slice(&24u32.to_le_bytes());
        assert_eq!(authenticode_sha256(&signed).unwrap(), base);
        assert_eq!(
            authenticode_sha1(&signed).unwrap(),
            authenticode_sha1(&image).unwrap()
        );

        // Any other byte counts.
        let mut code = image.clone();
        let last = code.len() - 1;
        code[last] ^= 1;
        assert_ne!(authenticode_sha256(&code).unwrap(), base);
        let mut header = image;
        header[ex.checksum + 4] ^= 1;
        assert_ne!(authenticode_sha256(&header).unwrap(), base);
    }

    #[test]
    fn pe32_images_use_their_own_offsets() {
        let image = tiny_pe(0x10b);
        let ex = exclusions(&image).unwrap();
        assert_eq!(ex.certificate_entry, 0x80 + 24 + 96 + 32);
        assert!(authenticode_sha1(&image).is_ok());
    }

    #[test]
    fn hostile_images_are_rejected_without_panic() {
        assert_eq!(exclusions(b""), Err(PeError::Truncated("DOS header")));
        assert_eq!(exclusions(b"ZM\0\0"), Err(PeError::NotMz));
        let image = tiny_pe(0x20b);
        for len in 0..image.len().min(0x200) {
            let _ = exclusions(&image[..len]);
        }
        let mut bad = image.clone();
        bad[0x3c..0x40].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(exclusions(&bad), Err(PeError::Truncated("PE signature")));
        let mut bad = image.clone();
        bad[0x80 + 24] = 0x07;
        assert!(matches!(exclusions(&bad), Err(PeError::UnknownMagic(_))));
        // A certificate table that does not end the file.
        let ex = exclusions(&image).unwrap();
        let mut bad = image.clone();
        bad[ex.certificate_entry..ex.certificate_entry + 4].copy_from_slice(&16u32.to_le_bytes());
        bad[ex.certificate_entry + 4..ex.certificate_entry + 8]
            .copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            exclusions(&bad),
            Err(PeError::BadCertificateTable { .. })
        ));
        let mut bad = image;
        bad[0x80 + 24 + 108..0x80 + 24 + 112].copy_from_slice(&4u32.to_le_bytes());
        assert_eq!(exclusions(&bad), Err(PeError::NoCertificateEntry));
    }
}
