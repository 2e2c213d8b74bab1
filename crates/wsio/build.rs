//! Gives the cdylib its SONAME, `libwsio.so.<ABI major>`, so that a C
//! controller linked with `-lwsio` records the ABI it was built for and the
//! Debian package can install `libwsio.so.1` with a `libwsio.so` development
//! symlink (packaging/, docs/packaging.md). Only the cdylib's link changes:
//! the rlib and the `wsio` binary that links it are untouched, and loading
//! the library by path (`dlopen`) works as before.

/// `IOM_ABI_VERSION` of `include/iom.h`; the unit test
/// `the_soname_carries_the_abi_version` checks that they agree.
const ABI_MAJOR: u32 = 1;

fn main() {
    let soname = format!("libwsio.so.{ABI_MAJOR}");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{soname}");
    }
    println!("cargo:rustc-env=WSIO_SONAME={soname}");
    println!("cargo:rerun-if-changed=build.rs");
}
