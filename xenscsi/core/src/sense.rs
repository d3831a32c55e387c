//! Sense data, decoded: what tape and optical drives report through it.
//!
//! Fixed format (response codes 0x70/0x71): byte 2 holds FILEMARK (bit 7), EOM (bit 6), ILI
//! (bit 5) and the sense key; bytes 3–6 the INFORMATION field, valid when bit 7 of byte 0 is
//! set; bytes 12 and 13 the additional sense code and qualifier. Descriptor format (0x72/0x73):
//! the key and codes in bytes 1–3, the information in an information descriptor (type 0), the
//! FILEMARK/EOM/ILI bits in a stream-commands descriptor (type 4).

/// Sense key NO SENSE (with FILEMARK/EOM/ILI set: a tape condition, not an error).
pub const KEY_NO_SENSE: u8 = 0x0;
/// Sense key MEDIUM ERROR.
pub const KEY_MEDIUM_ERROR: u8 = 0x3;
/// Sense key ILLEGAL REQUEST.
pub const KEY_ILLEGAL_REQUEST: u8 = 0x5;
/// Sense key UNIT ATTENTION.
pub const KEY_UNIT_ATTENTION: u8 = 0x6;
/// Sense key BLANK CHECK (a tape's end of data).
pub const KEY_BLANK_CHECK: u8 = 0x8;
/// Sense key VOLUME OVERFLOW.
pub const KEY_VOLUME_OVERFLOW: u8 = 0xd;

/// Decoded sense data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Sense {
    /// The response code (0x70, 0x71, 0x72, 0x73).
    pub response_code: u8,
    /// The sense key.
    pub key: u8,
    /// Additional sense code.
    pub asc: u8,
    /// Additional sense code qualifier.
    pub ascq: u8,
    /// FILEMARK: a filemark was crossed.
    pub filemark: bool,
    /// EOM: end of medium or beginning of partition reached.
    pub eom: bool,
    /// ILI: the block read had another length than requested.
    pub ili: bool,
    /// The INFORMATION field when valid (for a tape read: the residue in bytes or blocks,
    /// negative when the block was longer than requested).
    pub information: Option<i64>,
}

impl Sense {
    /// Decodes `data`; `None` when it is too short or of an unknown format.
    pub fn parse(data: &[u8]) -> Option<Sense> {
        let code = data.first()? & 0x7f;
        match code {
            0x70 | 0x71 => {
                if data.len() < 3 {
                    return None;
                }
                let b2 = data[2];
                let info = data
                    .get(3..7)
                    .map(|b| i64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]])));
                Some(Sense {
                    response_code: code,
                    key: b2 & 0x0f,
                    asc: data.get(12).copied().unwrap_or(0),
                    ascq: data.get(13).copied().unwrap_or(0),
                    filemark: b2 & 0x80 != 0,
                    eom: b2 & 0x40 != 0,
                    ili: b2 & 0x20 != 0,
                    information: if data[0] & 0x80 != 0 { info } else { None },
                })
            }
            0x72 | 0x73 => {
                if data.len() < 4 {
                    return None;
                }
                let mut s = Sense {
                    response_code: code,
                    key: data[1] & 0x0f,
                    asc: data[2],
                    ascq: data[3],
                    ..Sense::default()
                };
                let additional = usize::from(*data.get(7).unwrap_or(&0));
                let end = data.len().min(8 + additional);
                let mut at = 8;
                while at + 2 <= end {
                    let kind = data[at];
                    let len = usize::from(data[at + 1]);
                    let body = data.get(at + 2..(at + 2 + len).min(end)).unwrap_or(&[]);
                    match kind {
                        0 if body.len() >= 10 && body[0] & 0x80 != 0 => {
                            let mut v = [0u8; 8];
                            v.copy_from_slice(&body[2..10]);
                            s.information = Some(i64::from_be_bytes(v));
                        }
                        4 if body.len() >= 2 => {
                            s.filemark = body[1] & 0x80 != 0;
                            s.eom = body[1] & 0x40 != 0;
                            s.ili = body[1] & 0x20 != 0;
                        }
                        _ => {}
                    }
                    at += 2 + len;
                }
                Some(s)
            }
            _ => None,
        }
    }

    /// A UNIT ATTENTION for a medium change (ASC 0x28: NOT READY TO READY, MEDIUM MAY HAVE
    /// CHANGED) or a removal (ASC 0x3a: MEDIUM NOT PRESENT).
    pub fn is_media_change(&self) -> bool {
        self.key == KEY_UNIT_ATTENTION && matches!(self.asc, 0x28 | 0x3a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_format_tape_conditions() {
        // Incorrect length: ILI, VALID, information -512 (the block was 512 bytes longer).
        let mut d = [0u8; 18];
        d[0] = 0xf0;
        d[2] = 0x20;
        d[3..7].copy_from_slice(&(-512i32).to_be_bytes());
        d[7] = 10;
        let s = Sense::parse(&d).unwrap();
        assert!(s.ili && !s.filemark && !s.eom);
        assert_eq!(s.information, Some(-512));
        assert_eq!(s.key, KEY_NO_SENSE);
        // Filemark without VALID: no information.
        d[0] = 0x70;
        d[2] = 0x80;
        d[12] = 0;
        d[13] = 1;
        let s = Sense::parse(&d).unwrap();
        assert!(s.filemark);
        assert_eq!((s.asc, s.ascq, s.information), (0, 1, None));
        assert_eq!(Sense::parse(&[0x70, 0]), None);
        assert_eq!(Sense::parse(&[0x10; 18]), None);
        assert_eq!(Sense::parse(&[]), None);
    }

    #[test]
    fn descriptor_format() {
        let mut d = [0u8; 8 + 12 + 4];
        d[0] = 0x72;
        d[1] = KEY_BLANK_CHECK;
        d[2] = 0x00;
        d[3] = 0x05;
        d[7] = 16;
        d[8] = 0;
        d[9] = 10;
        d[10] = 0x80;
        d[12..20].copy_from_slice(&4096i64.to_be_bytes());
        d[20] = 4;
        d[21] = 2;
        d[23] = 0x40;
        let s = Sense::parse(&d).unwrap();
        assert_eq!(s.key, KEY_BLANK_CHECK);
        assert_eq!(s.information, Some(4096));
        assert!(s.eom && !s.ili);
        // A descriptor claiming more than there is stops at the end.
        d[7] = 255;
        d[21] = 200;
        assert!(Sense::parse(&d).is_some());
    }
}
