//! Fields that exist only on the Rust side: padding that C leaves implicit.
//!
//! zerocopy's `IntoBytes` needs every byte of a struct to belong to a field, so where C pads
//! implicitly the Rust struct has a `pad…` field. C has no member to compare it with; such a
//! field is described with the C member [`IMPLICIT`] and [`push`] drops it from the comparison
//! after checking that the Rust fields cover the struct exactly, without gaps or overlaps. With
//! every other field's offset and size and the struct's size matching C, the padding fields are
//! then exactly C's implicit padding.

use crate::harness::{Catalogue, StructLayout};

/// The "C member" of a Rust field that fills implicit C padding (the `layout!` macro needs a
/// literal, so descriptions spell it out as `"(implicit padding)"`).
pub const IMPLICIT: &str = "(implicit padding)";

/// Adds a described struct to the catalogue, comparing all fields but the implicit padding.
pub fn push(c: &mut Catalogue, mut s: StructLayout) {
    let mut fields: Vec<_> = s
        .fields
        .iter()
        .map(|f| (f.offset, f.size, f.rust))
        .collect();
    fields.sort_unstable();
    let mut end = 0;
    for (offset, size, name) in fields {
        assert_eq!(
            offset, end,
            "{}.{name} does not start where the previous field ends",
            s.rust
        );
        end = offset + size;
    }
    assert_eq!(
        end, s.size,
        "{}: its fields do not reach the end of the struct",
        s.rust
    );
    s.fields.retain(|f| f.c != IMPLICIT);
    c.structs.push(s);
}

/// A struct with a hole the Rust description does not fill must be refused.
#[test]
#[should_panic(expected = "Gap.b does not start where the previous field ends")]
fn push_refuses_a_struct_with_a_hole() {
    #[allow(dead_code)]
    #[repr(C)]
    struct Gap {
        a: u8,
        b: u32,
    }
    let mut c = Catalogue::default();
    push(
        &mut c,
        layout!(Both, Gap = "struct netif_tx_request" { a => "gref", b => "offset" }),
    );
}
