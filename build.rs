//! Link settings for the `wharf` binary.
//!
//! The binary is linked as a position-dependent executable (`-no-pie`), as
//! Go links its binaries by default. A position-independent one carries
//! about 18,000 relative relocations that the dynamic loader applies at every
//! start, dirtying some 80 pages of relocated data and faulting in the 430 KB
//! relocation table: measured on a 2-core VM, that is 0.6-0.7 ms of a 2-4 ms
//! start (issue 7 targets 5 ms to the first answered Metadata). The price is
//! that the binary's own code and data sit at a fixed address (libraries,
//! heap and stacks are still randomised). For a memory-safe Rust program we
//! judge the start-up time worth more than that layer of hardening.
//!
//! Only on Linux with the GNU toolchain, where `-no-pie` is known to the
//! linker driver; other targets keep their defaults.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
