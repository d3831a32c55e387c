//! Walking a `CM_RESOURCE_LIST` (the resources of a start IRP) as bytes, with the offsets of
//! [`crate::layout`] (`windows-sys`'s declaration of these structures differs from `wdm.h`).

use core::ptr;

use crate::layout;

const PARTIAL_DESCRIPTOR_BYTES: usize = layout::CM_PARTIAL_RESOURCE_DESCRIPTOR_BYTES;
const LIST_FIRST_FULL: usize = layout::CM_RESOURCE_LIST_LIST;
const FULL_PARTIAL_COUNT: usize = layout::CM_FULL_RESOURCE_DESCRIPTOR_COUNT;
const FULL_FIRST_PARTIAL: usize = layout::CM_FULL_RESOURCE_DESCRIPTOR_PARTIALS;

/// Walks a `CM_RESOURCE_LIST` and copies its partial descriptors.
///
/// # Safety
/// `list` points to a valid resource list: `Count` full descriptors, each followed by its
/// `Count` partial descriptors.
pub(crate) unsafe fn copy_partial_descriptors(
    list: *const u8,
    out: &mut [[u8; PARTIAL_DESCRIPTOR_BYTES]],
) -> usize {
    // SAFETY: the list starts with its `u32` count (unaligned read; the list is packed).
    let full_count = unsafe { ptr::read_unaligned(list.cast::<u32>()) };
    let mut full = list.wrapping_add(LIST_FIRST_FULL);
    let mut count = 0;
    for _ in 0..full_count {
        // SAFETY: `full` points at a full descriptor of the list (the caller's contract).
        let partials =
            unsafe { ptr::read_unaligned(full.wrapping_add(FULL_PARTIAL_COUNT).cast::<u32>()) };
        let mut partial = full.wrapping_add(FULL_FIRST_PARTIAL);
        for _ in 0..partials {
            if count == out.len() {
                return count + 1;
            }
            // SAFETY: `partial` points at one of the full descriptor's partial descriptors.
            out[count] =
                unsafe { ptr::read_unaligned(partial.cast::<[u8; PARTIAL_DESCRIPTOR_BYTES]>()) };
            count += 1;
            partial = partial.wrapping_add(PARTIAL_DESCRIPTOR_BYTES);
        }
        full = partial;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A resource list as the PnP manager lays it out: `Count`, then each full descriptor
    /// (interface type, bus number, version, revision, partial count, partials).
    fn list(fulls: &[&[[u8; PARTIAL_DESCRIPTOR_BYTES]]]) -> Vec<u8> {
        let mut bytes = (fulls.len() as u32).to_le_bytes().to_vec();
        for partials in fulls {
            bytes.extend_from_slice(&5u32.to_le_bytes()); // PCIBus
            bytes.extend_from_slice(&0u32.to_le_bytes());
            bytes.extend_from_slice(&1u16.to_le_bytes());
            bytes.extend_from_slice(&1u16.to_le_bytes());
            bytes.extend_from_slice(&(partials.len() as u32).to_le_bytes());
            for p in *partials {
                bytes.extend_from_slice(p);
            }
        }
        bytes
    }

    fn partial(tag: u8) -> [u8; PARTIAL_DESCRIPTOR_BYTES] {
        [tag; PARTIAL_DESCRIPTOR_BYTES]
    }

    #[test]
    fn every_partial_of_every_full_descriptor_is_copied_in_order() {
        let bytes = list(&[&[partial(1), partial(2)], &[partial(3)]]);
        let mut out = [[0u8; PARTIAL_DESCRIPTOR_BYTES]; 8];
        // SAFETY: `bytes` is a complete list of the layout the function expects.
        let n = unsafe { copy_partial_descriptors(bytes.as_ptr(), &mut out) };
        assert_eq!(n, 3);
        assert_eq!(&out[..3], &[partial(1), partial(2), partial(3)]);
    }

    #[test]
    fn a_list_longer_than_the_output_reports_one_more_and_stops() {
        let bytes = list(&[&[partial(1), partial(2), partial(3)]]);
        let mut out = [[0u8; PARTIAL_DESCRIPTOR_BYTES]; 2];
        // SAFETY: as above.
        let n = unsafe { copy_partial_descriptors(bytes.as_ptr(), &mut out) };
        assert_eq!(n, 3);
        assert_eq!(out, [partial(1), partial(2)]);
    }

    #[test]
    fn an_empty_list_copies_nothing() {
        let bytes = list(&[]);
        let mut out = [[0u8; PARTIAL_DESCRIPTOR_BYTES]; 2];
        // SAFETY: as above.
        let n = unsafe { copy_partial_descriptors(bytes.as_ptr(), &mut out) };
        assert_eq!(n, 0);
    }
}
