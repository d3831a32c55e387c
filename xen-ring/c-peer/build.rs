//! Compiles `csrc/peer.c` against Xen's `io/ring.h` as installed by Debian's `libxen-dev`.
//!
//! The headers are never copied into this repository: the point of the peer is to exercise
//! xen-ring against the reference macros exactly as Xen ships them.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=csrc/peer.c");
    println!("cargo:rerun-if-env-changed=XEN_INCLUDE_DIR");

    // The directory that contains `xen/io/ring.h`.
    let include = std::env::var_os("XEN_INCLUDE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/include"));
    let ring_h = include.join("xen/io/ring.h");
    println!("cargo:rerun-if-changed={}", ring_h.display());
    if !ring_h.is_file() {
        panic!(
            "xen-ring-c-peer needs Xen's public headers, but {} does not exist.\n\
             Install them with `scripts/setup` (or `apt-get install libxen-dev` on Debian/Ubuntu),\n\
             or point XEN_INCLUDE_DIR at the directory that contains xen/io/ring.h.",
            ring_h.display()
        );
    }

    cc::Build::new()
        .file("csrc/peer.c")
        .include(&include)
        .std("gnu11")
        .flag("-D_GNU_SOURCE")
        .opt_level(2)
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .compile("xen_ring_c_peer");
}
