//! [`FixedStr`]: a string in an inline, fixed-size buffer.

use core::fmt;

/// A string that did not fit its [`FixedStr`] buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapacityError;

impl fmt::Display for CapacityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("string does not fit its buffer")
    }
}

/// A UTF-8 string of at most `N` bytes held inline: nothing allocates.
///
/// Appending (with [`push_str`](Self::push_str) or [`core::fmt::Write`]) either appends the
/// whole piece or fails with [`CapacityError`] and leaves the string as it was, so a string is
/// never silently truncated.
#[derive(Clone, Copy)]
pub struct FixedStr<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> FixedStr<N> {
    /// The empty string.
    pub const fn new() -> Self {
        FixedStr {
            buf: [0; N],
            len: 0,
        }
    }

    /// A copy of `s`.
    pub fn try_from_str(s: &str) -> Result<Self, CapacityError> {
        let mut out = Self::new();
        out.push_str(s)?;
        Ok(out)
    }

    /// A copy of `bytes` if they are printable ASCII (0x20–0x7e), as xenstore paths and the
    /// values this crate copies are; `None` otherwise or when they do not fit.
    pub fn from_printable_ascii(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > N || !bytes.iter().all(|b| (0x20..0x7f).contains(b)) {
            return None;
        }
        let mut out = Self::new();
        out.buf[..bytes.len()].copy_from_slice(bytes);
        out.len = bytes.len();
        Some(out)
    }

    /// Appends `s` whole, or fails and changes nothing.
    pub fn push_str(&mut self, s: &str) -> Result<(), CapacityError> {
        let end = self.len.checked_add(s.len()).ok_or(CapacityError)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(CapacityError)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }

    /// Empties the string.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Shortens the string to `len` bytes (no effect if it is shorter); `len` must fall on a
    /// character boundary, which it always does for the ASCII strings this crate builds.
    pub fn truncate(&mut self, len: usize) {
        if len < self.len && self.as_str().is_char_boundary(len) {
            self.len = len;
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only whole `&str`s and printable ASCII are ever copied in, so this cannot fail.
        core::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    /// The bytes of the text.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the string is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The capacity in bytes.
    pub const fn capacity(&self) -> usize {
        N
    }
}

impl<const N: usize> Default for FixedStr<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Write for FixedStr<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push_str(s).map_err(|_| fmt::Error)
    }
}

impl<const N: usize> fmt::Debug for FixedStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> fmt::Display for FixedStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> PartialEq for FixedStr<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl<const N: usize> Eq for FixedStr<N> {}

impl<const N: usize> PartialEq<str> for FixedStr<N> {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl<const N: usize> PartialEq<&str> for FixedStr<N> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl<const N: usize> AsRef<[u8]> for FixedStr<N> {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// Formats into a new [`FixedStr`]; `Err` when the text does not fit.
pub fn format_fixed<const N: usize>(
    args: fmt::Arguments<'_>,
) -> Result<FixedStr<N>, CapacityError> {
    let mut out = FixedStr::new();
    fmt::write(&mut out, args).map_err(|_| CapacityError)?;
    Ok(out)
}
