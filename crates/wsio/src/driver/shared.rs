//! The state an instance handle shares with its runner: what the handle
//! reads or counts without waiting for the driver thread (status snapshot,
//! established, the Send Message backlog). The instance creates it; the
//! runner keeps it up to date ([`super::publish`]).

use crate::status::StatusVariables;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize};

/// State shared between the instance handle and its runner.
pub(crate) struct Shared {
    /// The status variables as of the last change.
    pub status: Mutex<StatusVariables>,
    pub established: AtomicBool,
    pub state_name: Mutex<&'static str>,
    pub pending_sends: AtomicUsize,
    /// The payload bytes of `pending_sends`.
    pub pending_send_bytes: AtomicUsize,
    /// Messages in the connection's outbox, not yet taken by the WebSocket.
    pub unwritten: AtomicUsize,
    /// The payload bytes of `unwritten`.
    pub unwritten_bytes: AtomicUsize,
    /// Disconnect actions queued and not yet run by the driver.
    pub disconnects_pending: AtomicUsize,
}
