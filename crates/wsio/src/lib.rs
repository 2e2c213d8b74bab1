//! wsio: a WebSocket Client IO module for building-automation controllers.
//!
//! A controller loads it as `libwsio.so` through the C ABI (`include/iom.h`);
//! a Rust host can embed it through the API re-exported here: create an
//! [`Instance`] from its [`Properties`] with a [`Host`] that receives its
//! triggers, status changes and log lines, run [`Action`]s on it, and test
//! its triggers with [`PreparedTrigger`].
//!
//! The data flow, one layer per module, each using only the ones before it:
//! `vocabulary` (the shared words: [`Trigger`], [`LogLevel`], timing) →
//! `manifest` (module.toml, embedded) → `properties` (validated, typed;
//! `tls` owns its settings) → `matching` (trigger properties compiled) →
//! `machine` (the sans-IO state machine) → `message_type` (the frame Send
//! Message sends) → `status` (the status variables) → `host` (the trait the driver calls) → `driver` (one smol thread for
//! every instance) → `instance` (the Rust API) → `abi` (the C exports).

#![deny(unsafe_code)]

// The C exports: the only module with unsafe code.
#[allow(unsafe_code)]
mod abi;
mod driver;
mod host;
mod inbox;
mod instance;
mod machine;
mod manifest;
mod matching;
mod message_type;
mod presentation;
mod preview;
mod properties;
mod read_ahead;
mod status;
mod tls;
mod vocabulary;

pub use host::Host;
pub use instance::{
    Action, ActionError, Instance, InstanceError, Options, PreparedAction, SEND_BACKLOG,
    SEND_BACKLOG_BYTES,
};
pub use machine::Outbound;
pub use manifest::MANIFEST_TOML;
pub use matching::PreparedTrigger;
pub use properties::{Properties, PropertyError, closest_name};
pub use status::StatusVariable;
pub use vocabulary::{LogLevel, Secret, Timing, Trigger};

/// The C ABI functions of `include/iom.h`, the very ones the cdylib
/// exports, reachable as Rust paths for a host that links the module in
/// rather than loading `libwsio.so` (the `wsio` binary's built-in module).
/// A host calls them only through the header's contract, exactly as it
/// would after `dlsym`.
pub use abi::exports as c_abi;

/// Internals that the integration tests, the fuzz targets and the soak
/// example check or drive directly. Not part of the API: they may change
/// with any release.
#[doc(hidden)]
pub mod testing {
    /// How often traffic status reaches the host at most while messages flow.
    pub use crate::driver::STATUS_EVERY;
    /// Send Message texts up to this size are copied into the inbox.
    pub use crate::instance::COPIED_TEXT;
    /// The connection states and their machine-readable words (the
    /// Connection State status variable).
    pub use crate::machine::ConnectionState;
    /// The parsed manifest, to compare against what the module reports.
    pub use crate::manifest::Manifest;
    /// `<n>` placeholders filled from trigger variables.
    pub use crate::matching::fill_placeholders;
    /// The Proxy property's parser.
    pub use crate::properties::parse_proxy;
    /// The close timeout a default [`Timing`](crate::Timing) has.
    pub use crate::vocabulary::CLOSE_TIMEOUT;
}
