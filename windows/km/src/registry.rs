//! Registry parameters: reading a value is untrusted input. A value that is missing, of the wrong
//! type or size, or out of range is a typed [`ValueError`], and the caller uses the parameter's
//! default (and logs the error); nothing a registry value holds can make the driver fail.
//!
//! This module is the pure part: parameter descriptions and the parsing of what
//! `ZwQueryValueKey(KeyValuePartialInformation)` returns. The Windows part (opening the service's
//! `Parameters` key and querying it) is in `registry_key`.
#![forbid(unsafe_code)]

use core::fmt;

use crate::status::NtStatus;

/// `REG_DWORD`.
pub const REG_DWORD: u32 = 4;
/// Bytes before the data in `KEY_VALUE_PARTIAL_INFORMATION`: `TitleIndex`, `Type`,
/// `DataLength`.
pub const PARTIAL_INFORMATION_HEADER: usize = 12;

/// A `REG_DWORD` parameter with its default and its allowed range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DwordParameter {
    /// The value's name (ASCII).
    pub name: &'static str,
    /// Used when the value is missing or bad.
    pub default: u32,
    /// Smallest accepted value.
    pub min: u32,
    /// Largest accepted value.
    pub max: u32,
}

impl DwordParameter {
    /// A switch: 0 or 1.
    pub const fn switch(name: &'static str, default: bool) -> Self {
        Self {
            name,
            default: default as u32,
            min: 0,
            max: 1,
        }
    }

    /// Validates what the registry returned for this parameter.
    pub fn parse(&self, value: Result<RawValue<'_>, ValueError>) -> Result<u32, ValueError> {
        let value = value?;
        if value.value_type != REG_DWORD {
            return Err(ValueError::WrongType {
                found: value.value_type,
            });
        }
        let bytes: [u8; 4] = value.data.try_into().map_err(|_| ValueError::WrongSize {
            length: value.data.len(),
        })?;
        let number = u32::from_le_bytes(bytes);
        if number < self.min || number > self.max {
            return Err(ValueError::OutOfRange {
                value: number,
                min: self.min,
                max: self.max,
            });
        }
        Ok(number)
    }

    /// The value to use: the registry's if valid, else the default together with the reason
    /// (`None` for a missing value, which is the normal case and not worth a log line).
    pub fn value_or_default(
        &self,
        value: Result<RawValue<'_>, ValueError>,
    ) -> (u32, Option<ValueError>) {
        match self.parse(value) {
            Ok(number) => (number, None),
            Err(ValueError::Missing) => (self.default, None),
            Err(e) => (self.default, Some(e)),
        }
    }
}

/// A value as the registry returned it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawValue<'a> {
    /// `REG_*` type.
    pub value_type: u32,
    /// The data bytes.
    pub data: &'a [u8],
}

/// Why a parameter's value cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueError {
    /// The value does not exist (or the key does not).
    Missing,
    /// Not `REG_DWORD`.
    WrongType {
        /// The type found.
        found: u32,
    },
    /// Data of the wrong size.
    WrongSize {
        /// Its length.
        length: usize,
    },
    /// Outside the parameter's range.
    OutOfRange {
        /// The value.
        value: u32,
        /// Smallest accepted.
        min: u32,
        /// Largest accepted.
        max: u32,
    },
    /// The registry's answer is inconsistent (a data length beyond the returned bytes).
    Malformed,
    /// The query failed with this status.
    Unreadable(NtStatus),
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("not set"),
            Self::WrongType { found } => write!(f, "has type {found}, not REG_DWORD"),
            Self::WrongSize { length } => write!(f, "holds {length} bytes, not 4"),
            Self::OutOfRange { value, min, max } => {
                write!(f, "is {value}, outside {min}..={max}")
            }
            Self::Malformed => f.write_str("came back malformed from the registry"),
            Self::Unreadable(status) => write!(f, "cannot be read ({:#010x})", *status as u32),
        }
    }
}

/// Parses the first `returned` bytes of a `KEY_VALUE_PARTIAL_INFORMATION` buffer.
pub fn parse_partial_information(
    buffer: &[u8],
    returned: usize,
) -> Result<RawValue<'_>, ValueError> {
    let buffer = buffer.get(..returned).ok_or(ValueError::Malformed)?;
    if buffer.len() < PARTIAL_INFORMATION_HEADER {
        return Err(ValueError::Malformed);
    }
    let word = |at: usize| {
        u32::from_le_bytes([buffer[at], buffer[at + 1], buffer[at + 2], buffer[at + 3]])
    };
    let value_type = word(4);
    let length = word(8) as usize;
    let data = buffer
        .get(PARTIAL_INFORMATION_HEADER..)
        .and_then(|rest| rest.get(..length))
        .ok_or(ValueError::Malformed)?;
    Ok(RawValue { value_type, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RING_PAGES: DwordParameter = DwordParameter {
        name: "RingPages",
        default: 4,
        min: 1,
        max: 16,
    };

    fn answer(value_type: u32, data: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 4];
        b.extend_from_slice(&value_type.to_le_bytes());
        b.extend_from_slice(&(data.len() as u32).to_le_bytes());
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn a_good_dword_is_used() {
        let b = answer(REG_DWORD, &8u32.to_le_bytes());
        let raw = parse_partial_information(&b, b.len());
        assert_eq!(RING_PAGES.value_or_default(raw), (8, None));
    }

    #[test]
    fn a_missing_value_is_the_default_silently() {
        assert_eq!(
            RING_PAGES.value_or_default(Err(ValueError::Missing)),
            (4, None)
        );
    }

    #[test]
    fn bad_values_give_the_default_and_a_reason() {
        let cases: [(Vec<u8>, ValueError); 4] = [
            (answer(1, b"8\0"), ValueError::WrongType { found: 1 }),
            (
                answer(REG_DWORD, &[8, 0]),
                ValueError::WrongSize { length: 2 },
            ),
            (
                answer(REG_DWORD, &0u32.to_le_bytes()),
                ValueError::OutOfRange {
                    value: 0,
                    min: 1,
                    max: 16,
                },
            ),
            (
                answer(REG_DWORD, &u32::MAX.to_le_bytes()),
                ValueError::OutOfRange {
                    value: u32::MAX,
                    min: 1,
                    max: 16,
                },
            ),
        ];
        for (bytes, error) in cases {
            let raw = parse_partial_information(&bytes, bytes.len());
            assert_eq!(RING_PAGES.value_or_default(raw), (4, Some(error)));
        }
    }

    #[test]
    fn inconsistent_answers_are_malformed() {
        let mut b = answer(REG_DWORD, &8u32.to_le_bytes());
        // Claims 400 bytes of data.
        b[8..12].copy_from_slice(&400u32.to_le_bytes());
        assert_eq!(
            parse_partial_information(&b, b.len()),
            Err(ValueError::Malformed)
        );
        // Returned length beyond the buffer, and a truncated header.
        let b = answer(REG_DWORD, &8u32.to_le_bytes());
        assert_eq!(
            parse_partial_information(&b, b.len() + 1),
            Err(ValueError::Malformed)
        );
        assert_eq!(
            parse_partial_information(&b, 11),
            Err(ValueError::Malformed)
        );
        // Returned length shorter than the data: the data is cut off.
        assert_eq!(
            parse_partial_information(&b, 14),
            Err(ValueError::Malformed)
        );
    }

    #[test]
    fn unreadable_is_reported() {
        let status = 0xC000_0022_u32 as i32;
        let (value, error) = RING_PAGES.value_or_default(Err(ValueError::Unreadable(status)));
        assert_eq!(value, 4);
        assert_eq!(error.unwrap().to_string(), "cannot be read (0xc0000022)");
    }

    #[test]
    fn switches_are_zero_or_one() {
        let s = DwordParameter::switch("Unplug", true);
        assert_eq!(s.default, 1);
        let b = answer(REG_DWORD, &2u32.to_le_bytes());
        assert!(matches!(
            s.value_or_default(parse_partial_information(&b, b.len())),
            (1, Some(ValueError::OutOfRange { value: 2, .. }))
        ));
    }
}
