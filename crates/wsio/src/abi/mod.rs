//! The IO module ABI: the `extern "C"` exports implementing `include/iom.h`.
//!
//! Last step of the data flow and the only place with `unsafe`. Every export
//! validates its input (NULL, UTF-8, JSON, names) and catches panics, so a
//! controller written in any language gets an error message, never a crash.
//! The types and constants are the `iom` crate's, the contract shared with
//! hosts; its functions reach C through the cdylib's symbol table
//! (`#[unsafe(no_mangle)]`) and a host that links the crate in (the `wsio`
//! binary's built-in module) through `wsio::c_abi`, the same functions.
//!
//! One file per concept: [`exports`] (the functions of the header),
//! [`arguments`] (reading the caller's pointers, writing its errors),
//! [`handles`] (what the handles stand for: registries by id and the boxed
//! trigger variables), [`c_host`] (the C callbacks as the instance's host),
//! [`send_fast_path`] (a wired Send Message without a JSON tree).

mod arguments;
mod c_host;
pub mod exports;
mod handles;
mod send_fast_path;

#[cfg(test)]
mod tests {
    /// build.rs names the cdylib `libwsio.so.<major>` (its SONAME): the
    /// major must be the ABI version the exports implement.
    #[test]
    fn the_soname_carries_the_abi_version() {
        assert_eq!(
            env!("WSIO_SONAME"),
            format!("libwsio.so.{}", iom::IOM_ABI_VERSION)
        );
    }
}
