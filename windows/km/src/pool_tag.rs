//! Pool tags: four printable ASCII characters that name an allocation's owner in pool dumps
//! (`!poolused`, PoolMon).
#![forbid(unsafe_code)]

/// A validated pool tag. The first character is the least significant byte, so the tag reads
/// in order in a memory dump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolTag(u32);

impl PoolTag {
    /// Makes a tag from four printable ASCII bytes; a non-printable byte is a compile error when
    /// used in a `const`, and a panic otherwise (use [`PoolTag::try_new`] for run-time input).
    pub const fn new(tag: &[u8; 4]) -> Self {
        match Self::try_new(tag) {
            Some(tag) => tag,
            None => panic!("a pool tag is four printable ASCII characters"),
        }
    }

    /// Makes a tag from four printable ASCII bytes, or `None`.
    pub const fn try_new(tag: &[u8; 4]) -> Option<Self> {
        let mut i = 0;
        while i < 4 {
            if tag[i] < 0x20 || tag[i] > 0x7E {
                return None;
            }
            i += 1;
        }
        Some(Self(u32::from_le_bytes(*tag)))
    }

    /// The value the pool functions take.
    pub const fn value(self) -> u32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_reads_in_order_in_memory() {
        const TAG: PoolTag = PoolTag::new(b"XenP");
        assert_eq!(TAG.value().to_le_bytes(), *b"XenP");
        assert_eq!(TAG.value(), 0x506E_6558);
    }

    #[test]
    fn non_printable_tags_are_refused() {
        assert_eq!(PoolTag::try_new(b"Xe\0P"), None);
        assert_eq!(PoolTag::try_new(b"Xe\x7fP"), None);
        assert!(PoolTag::try_new(b"    ").is_some());
    }
}
