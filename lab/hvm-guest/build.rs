//! Links the kernel (only when built for the bare-metal target) with its linker script, as a
//! flat binary loaded at 1 MiB: the multiboot loader copies it as it is (a.out kludge).

fn main() {
    println!("cargo:rerun-if-changed=link.ld");
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        println!("cargo:rustc-link-arg-bins=-T{dir}/link.ld");
        println!("cargo:rustc-link-arg-bins=--oformat=binary");
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
