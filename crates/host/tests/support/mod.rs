//! Fixture servers and client helpers for the integration tests: a test file
//! says `mod support;` and starts the servers it needs.
//!
//! Every server binds 127.0.0.1 (port 0 unless told), runs a smol executor
//! on its own thread, records what it observes (handshake headers, messages,
//! pings, close frames, connection count and times) and shuts down on drop,
//! bounded in time. Tests wait on those observations with
//! `server.wait_for(|o| predicate, timeout)` (a condition variable) or
//! `server.observations().wait_for_async(..)`, never with sleeps.
//!
//! - [`EchoServer`]: echoes; the test can `send_to_all`, `close_all`,
//!   `abort_all`; TLS, fixed-port (restart) and burst variants.
//! - [`CloseServer`]: handshake, optional burst, then a given close code.
//! - [`RefuseServer`]: answers the upgrade with an HTTP error status.
//! - [`SilentServer`]: handshake, then silence (half-open connection).
//! - [`BlackHoleServer`]: accepts TCP, never answers the handshake.
//! - [`ConnectProxy`]: an HTTP CONNECT proxy, optionally requiring Basic
//!   credentials; records targets and `Proxy-Authorization`.
//! - [`RealProxy`]: tinyproxy or squid from Debian, as a child process with
//!   a configuration of its own on a free port.
//! - [`test_pki`]: CAs, server and client certificates, and server TLS
//!   configurations (with client authentication) for
//!   [`EchoServer::start_tls_with`]; TLS fixtures record the client's
//!   certificate (`tls_sessions`) and failed TLS handshakes.
//!
//! - [`Recorder`]: the Host an instance reports to in every Rust-API test,
//!   waited on like the servers' observations; the fault suite's setup and
//!   closing invariants ([`assert_invariants`]) build on it.
//! - [`iom`] and [`abi_host`]: the C ABI loaded with dlopen and called as a
//!   controller calls it.
//! - [`HostProcess`]: the `wsio` binary with its output read line by line
//!   ([`access`]: with users and tokens);
//!   [`host_http`]: its HTTP API and `/events` stream.
//!
//! A behaviour not covered here is a few lines with [`Fixture::start`] and
//! [`accept_websocket`], which do the threading, TLS and recording.

// Each test binary uses a different part of this module.
#![allow(dead_code, unused_imports)]

pub mod abi_host;
pub mod access;
mod client;
mod faults;
mod fixture;
pub mod host_http;
mod host_process;
mod instance;
pub mod iom;
mod lines;
mod netns;
mod observations;
mod pki;
mod proxy;
mod real_proxy;
mod recorder;
mod script_server;
mod server_process;
mod servers;

pub use client::{
    ClientWs, TIMEOUT, assert_ping_answered, client_config_trusting, connect, connect_with,
    deadline, recv, recv_close, recv_text, request_with, tls_client_config,
};
pub use fixture::{
    Answer, Connection, Fixture, Io, accept_websocket, accept_websocket_with, tls_identity, within,
};
pub use observations::{CloseReceived, Handshake, Observations, Observed, TlsSession};
pub use pki::{
    Authority, ClientAuth, Credential, RSA_CLIENT_KEY_FILE, TestPki, rsa_client_key_pem,
    sha256_fingerprint, sha256_fingerprint_colons, test_pki,
};
pub use proxy::{ConnectProxy, ProxyObserved, ProxyRequest};
pub use real_proxy::{PROXIES_REQUIRED, ProxyKind, RealProxy};
pub use recorder::{PASSWORD, Recorded, Recorder, SECRETS, TOKEN, driver_panics};
// The fault suite (tests/fault_*.rs).
pub use faults::{
    QUIET, SLACK, assert_invariants, assert_last_error, assert_unknown_ca, attempts_between,
    connect_instance, disconnected, ending, established, expect_handshake_timeout, fault_instance,
    fault_properties, one_connection, open_fds, rss_kib, status, with,
};
pub use host_process::{HOST_TIMEOUT, HostProcess, project_instance};
pub use instance::send_hex;
pub use lines::read_lines_until;
pub use netns::NetNs;
pub use script_server::{Peer, ScriptServer, raw_frame, set_linger_zero};
pub use server_process::{ServerProcess, demo_path, free_port};
pub use servers::{
    BlackHoleServer, CloseServer, EchoOptions, EchoServer, RefuseServer, SilentServer,
    burst_message,
};
