//! Entries for the System event log: an `IO_ERROR_LOG_PACKET` followed by insertion strings.
//!
//! [`build_entry`] lays out the packet bytes (pure, tested on every host); on Windows,
//! `event_log_writer::write` copies them into an entry from `IoAllocateErrorLogEntry` and hands it
//! to `IoWriteErrorLogEntry`. The whole entry must fit in `ERROR_LOG_MAXIMUM_SIZE` (240 bytes on
//! x64), which leaves 96 UTF-16 units for the strings: a string that does not fit is cut and ends
//! with `...`, later strings are dropped, and the entry records how many were written.
//!
//! The event's code is a project code ([`event_code`]: customer bit set, so it cannot collide
//! with Microsoft's). Event Viewer formats a description only from a message table registered for
//! the driver's event source; the suite's images carry none yet, so the entry shows the code and
//! the insertion strings (the message text), not a formatted description.
#![forbid(unsafe_code)]

use crate::layout;
use crate::status::NtStatus;

/// `ERROR_LOG_MAXIMUM_SIZE` on x64.
pub const MAX_ENTRY_BYTES: usize = layout::ERROR_LOG_MAXIMUM_SIZE;
/// Where the strings start: right after the fixed packet (no dump data).
pub const STRING_OFFSET: usize = layout::IO_ERROR_LOG_PACKET_BYTES;
/// The mark that ends a cut string.
const CUT_MARK: &str = "...";

/// How serious an event is (the NTSTATUS severity bits of its code).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Informational.
    Information,
    /// A warning.
    Warning,
    /// An error.
    Error,
}

/// The event code for `number` at `severity`: severity bits, the customer bit, facility 0.
pub const fn event_code(severity: Severity, number: u16) -> NtStatus {
    let severity_bits: u32 = match severity {
        Severity::Information => 0x4000_0000,
        Severity::Warning => 0x8000_0000,
        Severity::Error => 0xC000_0000,
    };
    (severity_bits | 0x2000_0000 | number as u32) as NtStatus
}

/// A laid-out entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    bytes: [u8; MAX_ENTRY_BYTES],
    len: usize,
    strings: usize,
}

impl Entry {
    /// The entry's bytes (what `IoAllocateErrorLogEntry` must provide room for).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// How many insertion strings it holds.
    pub fn strings(&self) -> usize {
        self.strings
    }
}

/// Lays out an entry with `code`, `unique` (a driver-chosen value identifying the call site),
/// `final_status` and the insertion `strings` (the first is `%2` in a message; `%1` is the
/// device or driver name, which the I/O manager supplies).
pub fn build_entry(code: NtStatus, unique: u32, final_status: NtStatus, strings: &[&str]) -> Entry {
    let mut entry = Entry {
        bytes: [0; MAX_ENTRY_BYTES],
        len: STRING_OFFSET,
        strings: 0,
    };
    // UTF-16 units left for strings, NULs included.
    let mut room = (MAX_ENTRY_BYTES - STRING_OFFSET) / 2;
    for text in strings {
        let units = text.encode_utf16().count();
        if units < room {
            for unit in text.encode_utf16() {
                push_unit(&mut entry, unit);
            }
            push_unit(&mut entry, 0);
            room -= units + 1;
        } else {
            // Cut: what fits before the mark and the NUL, never half a surrogate pair.
            let Some(keep) = room.checked_sub(1 + CUT_MARK.len()) else {
                break;
            };
            let mut kept = 0;
            let mut previous_high = false;
            for unit in text.encode_utf16().take(keep) {
                previous_high = (0xD800..0xDC00).contains(&unit);
                kept += 1;
            }
            if previous_high {
                kept -= 1;
            }
            for unit in text
                .encode_utf16()
                .take(kept)
                .chain(CUT_MARK.encode_utf16())
            {
                push_unit(&mut entry, unit);
            }
            push_unit(&mut entry, 0);
            entry.strings += 1;
            break;
        }
        entry.strings += 1;
    }
    let header = &mut entry.bytes[..STRING_OFFSET];
    header[layout::IO_ERROR_LOG_PACKET_NUMBER_OF_STRINGS..][..2]
        .copy_from_slice(&(entry.strings as u16).to_le_bytes());
    header[layout::IO_ERROR_LOG_PACKET_STRING_OFFSET..][..2]
        .copy_from_slice(&(STRING_OFFSET as u16).to_le_bytes());
    header[layout::IO_ERROR_LOG_PACKET_ERROR_CODE..][..4].copy_from_slice(&code.to_le_bytes());
    header[layout::IO_ERROR_LOG_PACKET_UNIQUE_ERROR_VALUE..][..4]
        .copy_from_slice(&unique.to_le_bytes());
    header[layout::IO_ERROR_LOG_PACKET_FINAL_STATUS..][..4]
        .copy_from_slice(&final_status.to_le_bytes());
    entry
}

fn push_unit(entry: &mut Entry, unit: u16) {
    entry.bytes[entry.len..entry.len + 2].copy_from_slice(&unit.to_le_bytes());
    entry.len += 2;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings_of(entry: &Entry) -> Vec<String> {
        let units: Vec<u16> = entry.bytes()[STRING_OFFSET..]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        units
            .split(|&u| u == 0)
            .take(entry.strings())
            .map(|s| String::from_utf16(s).unwrap())
            .collect()
    }

    fn u16_at(entry: &Entry, at: usize) -> u16 {
        u16::from_le_bytes([entry.bytes()[at], entry.bytes()[at + 1]])
    }

    fn u32_at(entry: &Entry, at: usize) -> u32 {
        u32::from_le_bytes(entry.bytes()[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn header_fields_and_strings() {
        let code = event_code(Severity::Error, 1);
        assert_eq!(code as u32, 0xE000_0001);
        let e = build_entry(
            code,
            7,
            0xC000_0182_u32 as i32,
            &["not running on Xen", "START"],
        );
        assert_eq!(strings_of(&e), ["not running on Xen", "START"]);
        assert_eq!(u16_at(&e, layout::IO_ERROR_LOG_PACKET_NUMBER_OF_STRINGS), 2);
        assert_eq!(
            usize::from(u16_at(&e, layout::IO_ERROR_LOG_PACKET_STRING_OFFSET)),
            STRING_OFFSET
        );
        assert_eq!(
            u32_at(&e, layout::IO_ERROR_LOG_PACKET_ERROR_CODE),
            0xE000_0001
        );
        assert_eq!(
            u32_at(&e, layout::IO_ERROR_LOG_PACKET_UNIQUE_ERROR_VALUE),
            7
        );
        assert_eq!(
            u32_at(&e, layout::IO_ERROR_LOG_PACKET_FINAL_STATUS),
            0xC000_0182
        );
        assert_eq!(e.bytes().len(), STRING_OFFSET + 2 * (18 + 1 + 5 + 1));
    }

    #[test]
    fn codes_by_severity() {
        assert_eq!(event_code(Severity::Information, 2) as u32, 0x6000_0002);
        assert_eq!(event_code(Severity::Warning, 3) as u32, 0xA000_0003);
    }

    #[test]
    fn long_strings_are_cut_and_the_entry_never_exceeds_the_limit() {
        let long = "x".repeat(500);
        let e = build_entry(0, 0, 0, &[&long, "dropped"]);
        assert!(e.bytes().len() <= MAX_ENTRY_BYTES);
        let s = strings_of(&e);
        assert_eq!(s.len(), 1, "{s:?}");
        assert!(s[0].ends_with("..."));
        assert_eq!(
            s[0].encode_utf16().count(),
            (MAX_ENTRY_BYTES - STRING_OFFSET) / 2 - 1
        );
    }

    #[test]
    fn a_cut_never_splits_a_surrogate_pair() {
        let emoji = "\u{1F600}".repeat(100);
        let e = build_entry(0, 0, 0, &[&emoji]);
        let s = strings_of(&e);
        assert!(s[0].ends_with("..."));
        assert!(s[0]
            .trim_end_matches("...")
            .chars()
            .all(|c| c == '\u{1F600}'));
    }

    #[test]
    fn many_strings_fill_up_then_stop() {
        let parts: Vec<String> = (0..60).map(|i| format!("s{i}")).collect();
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        let e = build_entry(0, 0, 0, &refs);
        assert!(e.bytes().len() <= MAX_ENTRY_BYTES);
        let s = strings_of(&e);
        assert_eq!(s.len(), e.strings());
        assert!(s.len() < 60);
        for (i, text) in s.iter().enumerate() {
            assert!(text == &format!("s{i}") || text.ends_with("..."), "{text}");
        }
    }
}
