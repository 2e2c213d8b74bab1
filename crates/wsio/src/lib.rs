//! wsio: a WebSocket Client IO module for building-automation controllers.
//!
//! The data flow, one module per step:
//! [`manifest`] (module.toml, embedded) → [`properties`] (validated, typed) →
//! [`machine`] (sans-IO state machine) → [`driver`] (smol + async-tungstenite)
//! → [`instance`] (the Rust API) → `abi` (the C plugin ABI, `include/iom.h`).
//! [`matching`] compiles trigger properties; [`status`] holds the status
//! variables.

#![deny(unsafe_code)]

#[allow(unsafe_code)]
mod abi;
pub mod driver;
mod inbox;
pub mod instance;
pub mod machine;
pub mod manifest;
pub mod matching;
pub mod properties;
pub mod proxy;
pub mod read_ahead;
pub mod status;
pub mod tls;
