//! A loaded IO module, seen only through the C ABI of `include/iom.h`.
//!
//! The host loads a shared library with `dlopen` (libloading), resolves every
//! `iom_*` symbol once with the types of the `iom` crate, checks the ABI
//! version, and hands out safe types (or takes the same table from the wsio
//! module linked into the executable, [`ModuleSource::BuiltIn`]): [`Module`] (manifest, instance
//! creation, trigger preparation), [`Instance`] (actions, status, network,
//! destroyed on drop), [`PreparedTrigger`] (a compiled trigger test) and
//! [`PreparedAction`] (a compiled action). Any module exporting the ABI can
//! be loaded; nothing here uses the wsio library's Rust API, only its C
//! functions (`wsio::c_abi`) for the built-in module.
//!
//! All `unsafe` code of the host lives in this folder, one file per concept:
//! `library` (the shared library and its function table), `module`,
//! `instance`, `prepared` (triggers and actions compiled once), `events`
//! (the callbacks, turning what the module reports into [`ModuleEvent`]s
//! for the instance's [`EventSink`]) and `errors`.

mod errors;
mod events;
mod instance;
mod library;
mod module;
mod prepared;

pub use errors::{CallError, CallErrorKind, LoadError};
pub use events::{EventSink, FiredTrigger, ModuleEvent, ModuleLogLevel};
pub use instance::Instance;
/// The ABI version this host implements (`IOM_ABI_VERSION`).
pub use iom::IOM_ABI_VERSION as ABI_VERSION;
pub use library::ModuleSource;
pub use module::Module;
pub use prepared::{PreparedAction, PreparedTrigger};
