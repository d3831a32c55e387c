//! The product registry of `hvm/pvdrivers.h`, used by the emulated-device unplug protocol.
//!
//! The header defines the products only as an X-macro list (`PVDRIVERS_PRODUCT_LIST(EACH)`), with
//! no constant per product, so the catalogue's constant check cannot reach them; a small C
//! program expands the list instead and the whole list is compared, names included. The unplug
//! ports, magic numbers and flag bits are not in Xen's public headers (they are defined by
//! `docs/misc/hvm-emulated-unplug.pandoc` and QEMU), so they are covered by unit tests only.

use crate::cprogram;
use crate::harness::Target;
use xen_abi::unplug;

#[test]
fn product_list_matches_pvdrivers_h() {
    let body = r#"#define PRINT_PRODUCT(name, number) printf("%s %u\n", name, (unsigned)(number));
  PVDRIVERS_PRODUCT_LIST(PRINT_PRODUCT)"#;
    for target in [Target::X86_64, Target::X86_32] {
        let printed = cprogram::run("pvdrivers", body, target);
        let c_list: Vec<(String, u16)> = printed
            .lines()
            .map(|line| {
                let (name, number) = line.rsplit_once(' ').expect("name and number");
                (
                    name.to_owned(),
                    number.parse().expect("a 16-bit product number"),
                )
            })
            .collect();
        let rust_list: Vec<(String, u16)> = unplug::PVDRIVERS_PRODUCTS
            .iter()
            .map(|&(name, number)| (name.to_owned(), number))
            .collect();
        assert_eq!(rust_list, c_list, "{}", target.name());
    }
    // The named constants are the list's entries.
    assert_eq!(
        unplug::pvdrivers_product_name(unplug::PVDRIVERS_PRODUCT_XENSOURCE_WINDOWS),
        Some("xensource-windows")
    );
    assert_eq!(
        unplug::pvdrivers_product_name(unplug::PVDRIVERS_PRODUCT_GPLPV_WINDOWS),
        Some("gplpv-windows")
    );
    assert_eq!(
        unplug::pvdrivers_product_name(unplug::PVDRIVERS_PRODUCT_LINUX),
        Some("linux")
    );
    assert_eq!(
        unplug::pvdrivers_product_name(unplug::PVDRIVERS_PRODUCT_XENSERVER_WINDOWS_V7_0),
        Some("xenserver-windows-v7.0+")
    );
    assert_eq!(
        unplug::pvdrivers_product_name(unplug::PVDRIVERS_PRODUCT_XENSERVER_WINDOWS_V7_2),
        Some("xenserver-windows-v7.2+")
    );
    assert_eq!(
        unplug::pvdrivers_product_name(unplug::PVDRIVERS_PRODUCT_EXPERIMENTAL),
        Some("experimental")
    );
}
