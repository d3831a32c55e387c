//! Page arithmetic for MDLs and physical ranges (x64: 4 KiB pages).
#![forbid(unsafe_code)]

/// Bytes per page.
pub const PAGE_SIZE: usize = 4096;

/// `ADDRESS_AND_SIZE_TO_SPAN_PAGES`: pages touched by `length` bytes at `address`; 0 for an
/// empty range; `None` if the range wraps the address space.
pub fn spanned_pages(address: usize, length: usize) -> Option<usize> {
    if length == 0 {
        return Some(0);
    }
    let last = address.checked_add(length - 1)?;
    Some(last / PAGE_SIZE - address / PAGE_SIZE + 1)
}

/// Whether `offset..offset + width` lies inside a mapping of `length` bytes.
pub fn access_in_bounds(offset: usize, width: usize, length: usize) -> bool {
    offset.checked_add(width).is_some_and(|end| end <= length)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans() {
        assert_eq!(spanned_pages(0x1000, 0), Some(0));
        assert_eq!(spanned_pages(0x1000, 1), Some(1));
        assert_eq!(spanned_pages(0x1000, 0x1000), Some(1));
        assert_eq!(spanned_pages(0x1fff, 2), Some(2));
        assert_eq!(spanned_pages(0x1800, 0x1000), Some(2));
        assert_eq!(spanned_pages(usize::MAX, 2), None);
    }

    #[test]
    fn bounds() {
        assert!(access_in_bounds(0, 4, 4));
        assert!(!access_in_bounds(1, 4, 4));
        assert!(!access_in_bounds(usize::MAX, 4, 8));
    }
}
