//! Formatting into a fixed, stack-allocated byte buffer.
//!
//! Kernel log lines are formatted with `core::fmt` into a [`FixedBuf`] on the stack (no pool
//! allocation, so logging works at any IRQL the sink allows). A message longer than the buffer is
//! cut at a UTF-8 character boundary and ends with [`TRUNCATION_MARK`]; the buffer always keeps
//! room for a terminating NUL so it can be handed to C as a string.
#![forbid(unsafe_code)]

use core::fmt;

/// Appended to a message that did not fit.
pub const TRUNCATION_MARK: &str = "...";

/// A fixed-capacity text buffer that accepts `core::fmt` output and never fails or panics.
#[derive(Debug)]
pub struct FixedBuf<const N: usize> {
    bytes: [u8; N],
    len: usize,
    truncated: bool,
}

impl<const N: usize> Default for FixedBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> FixedBuf<N> {
    /// Bytes of text the buffer holds at most: one byte is kept for the NUL.
    pub const CAPACITY: usize = {
        assert!(N > TRUNCATION_MARK.len() + 1, "buffer too small");
        N - 1
    };

    /// An empty buffer.
    pub const fn new() -> Self {
        Self {
            bytes: [0; N],
            len: 0,
            truncated: false,
        }
    }

    /// The text written so far (with the truncation mark if the message was cut).
    pub fn as_str(&self) -> &str {
        // Only whole UTF-8 characters are ever copied in, so this cannot fail; fall back to the
        // empty string rather than panic.
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }

    /// The text followed by a NUL byte, for C functions that take a string.
    pub fn as_c_bytes(&mut self) -> &[u8] {
        self.bytes[self.len] = 0;
        &self.bytes[..=self.len]
    }

    /// Whether some of the message was dropped.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Empties the buffer.
    pub fn clear(&mut self) {
        self.len = 0;
        self.truncated = false;
    }

    /// Copies the longest prefix of `s` that fits below `limit` and ends on a character
    /// boundary.
    fn push_prefix(&mut self, s: &str, limit: usize) {
        let mut cut = limit.saturating_sub(self.len).min(s.len());
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        self.bytes[self.len..self.len + cut].copy_from_slice(&s.as_bytes()[..cut]);
        self.len += cut;
    }
}

impl<const N: usize> fmt::Write for FixedBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.truncated {
            return Ok(());
        }
        if self.len + s.len() <= Self::CAPACITY {
            self.push_prefix(s, Self::CAPACITY);
            return Ok(());
        }
        // Does not fit: keep what fits before the mark, then the mark.
        let text_limit = Self::CAPACITY - TRUNCATION_MARK.len();
        if self.len > text_limit {
            // Back off to a character boundary at or below the limit (a UTF-8 continuation byte
            // has the form 0b10xx_xxxx).
            let mut cut = text_limit;
            while cut > 0 && self.bytes[cut] & 0xC0 == 0x80 {
                cut -= 1;
            }
            self.len = cut;
        } else {
            self.push_prefix(s, text_limit);
        }
        self.push_prefix(TRUNCATION_MARK, Self::CAPACITY);
        self.truncated = true;
        Ok(())
    }
}

/// Formats `args` into a new buffer.
pub fn format<const N: usize>(args: fmt::Arguments<'_>) -> FixedBuf<N> {
    let mut buf = FixedBuf::new();
    // `write_str` never fails; a `Display` impl that returns an error only ends the message.
    let _ = fmt::write(&mut buf, args);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_message_is_kept_whole_and_nul_terminated() {
        let mut buf: FixedBuf<32> = format(format_args!("start {} {:#x}", 7, 0x1f));
        assert_eq!(buf.as_str(), "start 7 0x1f");
        assert!(!buf.truncated());
        assert_eq!(buf.as_c_bytes(), b"start 7 0x1f\0");
    }

    #[test]
    fn exactly_full_message_is_not_truncated() {
        let buf: FixedBuf<8> = format(format_args!("{}", "1234567"));
        assert_eq!(buf.as_str(), "1234567");
        assert!(!buf.truncated());
    }

    #[test]
    fn long_message_is_cut_with_a_mark_and_fits() {
        let mut buf: FixedBuf<16> = format(format_args!("{}{}", "abcdefghij", "klmnopqrst"));
        assert!(buf.truncated());
        assert_eq!(buf.as_str(), "abcdefghijkl...");
        assert_eq!(buf.as_c_bytes().len(), 16);
        assert_eq!(buf.as_c_bytes().last(), Some(&0));
    }

    #[test]
    fn cut_never_splits_a_character() {
        // Each 'é' is two bytes; the cut must land on a boundary.
        let buf: FixedBuf<12> = format(format_args!("{}", "éééééééééé"));
        assert!(buf.truncated());
        assert!(buf.as_str().ends_with(TRUNCATION_MARK));
        assert_eq!(buf.as_str(), "éééé...");
    }

    #[test]
    fn writes_after_truncation_are_dropped() {
        let mut buf: FixedBuf<10> = FixedBuf::new();
        let _ = fmt::Write::write_str(&mut buf, "0123456789abc");
        let _ = fmt::Write::write_str(&mut buf, "more");
        assert_eq!(buf.as_str(), "012345...");
        buf.clear();
        assert_eq!(buf.as_str(), "");
        assert!(!buf.truncated());
    }
}
