//! The reference controller host behind the `wsio` binary: it loads IO
//! modules through the C ABI only (`include/iom.h`, via dlopen), runs a
//! project of instances and wires, and serves `/io_modules` over HTTP.
//!
//! The flow, one file per step: [`project`] (the project file, checked) →
//! [`abi`] (the host side of the C ABI: dlopen, instances and prepared
//! triggers; the only module with raw FFI) with [`manifest`] (what the host reads of a module's manifest) →
//! [`engine`] (fired triggers → wired actions, on the host's thread, with
//! [`runaway`] to spot a wire that feeds itself, and [`loop_check`] to warn
//! of one before it runs) and
//! [`http`] (status and actions over HTTP, the status page in [`page`] and
//! its live feed in [`event_stream`]), sharing [`state`];
//! [`controller`] brings it all up in order and back down, through
//! [`apply`] (a project checked, then swapped in whole: at load and live),
//! with [`project_file`] (edits from HTTP and SIGHUP, and the file kept).
//! [`users`] is the users file that `http::access` checks every request
//! against.

#![deny(unsafe_code)]

#[allow(unsafe_code)]
pub mod abi;
pub mod apply;
pub mod controller;
pub mod demo_server;
pub mod engine;
pub mod event_path;
pub mod event_queue;
pub mod event_stream;
pub mod http;
pub mod loop_check;
pub mod manifest;
pub mod page;
pub mod private_file;
pub mod project;
pub mod project_file;
pub mod runaway;
pub mod state;
pub mod users;
