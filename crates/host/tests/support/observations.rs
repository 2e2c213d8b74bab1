//! What a fixture server saw, shared between its thread and the test.
//!
//! Tests never sleep to wait for the server: they block on a condition
//! variable ([`Observations::wait_for`]) or await a notification
//! ([`Observations::wait_for_async`]) until a predicate over the snapshot
//! holds, with a timeout so a broken client fails the test instead of
//! hanging it.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::Message;
use futures_rustls::rustls::{HandshakeKind, ServerConnection};
use rustls_pki_types::CertificateDer;
use smol::channel::Sender;

/// One WebSocket upgrade request as the server received it (also recorded
/// when the server refuses it).
#[derive(Clone, Debug)]
pub struct Handshake {
    /// Path and query, e.g. `/v3/1?api_key=demo`.
    pub path: String,
    /// Every header, names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    pub at: Instant,
}

impl Handshake {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A close frame the client sent. `code` is 1005 ("no status received", as
/// RFC 6455 reports it) when the frame carried no code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseReceived {
    pub code: u16,
    pub reason: String,
}

/// Everything a fixture server observed so far, across all its connections.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// When each TCP connection was accepted: the count is the number of
    /// connection attempts, the gaps show a client's reconnect backoff.
    pub accepted: Vec<Instant>,
    pub handshakes: Vec<Handshake>,
    /// Text and binary messages from clients, in the order read.
    pub messages: Vec<Message>,
    /// Pings received (each one was answered with a pong, unless the server
    /// is the silent one).
    pub pings: usize,
    /// Pongs received (answers to pings the test sent with `send_to_all`).
    pub pongs: usize,
    pub closes: Vec<CloseReceived>,
    /// Connections that have ended, whatever the reason.
    pub disconnects: usize,
    /// TLS fixtures: each completed TLS handshake, in order.
    pub tls_sessions: Vec<TlsSession>,
    /// TLS fixtures: each failed TLS handshake, as rustls reported it (e.g.
    /// a client certificate missing or refused).
    pub tls_failures: Vec<String>,
}

/// A completed server-side TLS handshake.
#[derive(Clone, Debug)]
pub struct TlsSession {
    /// The client's end-entity certificate, when it presented one.
    pub client_certificate: Option<CertificateDer<'static>>,
    /// The client resumed an earlier session (its client configuration
    /// kept a ticket from a handshake with this server).
    pub resumed: bool,
}

impl TlsSession {
    pub fn of(connection: &ServerConnection) -> TlsSession {
        TlsSession {
            client_certificate: connection
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|cert| cert.clone().into_owned()),
            resumed: connection.handshake_kind() == Some(HandshakeKind::Resumed),
        }
    }
}

impl Observed {
    pub fn connections(&self) -> usize {
        self.accepted.len()
    }

    /// Connections accepted and not ended yet.
    pub fn open_connections(&self) -> usize {
        self.accepted.len() - self.disconnects
    }

    /// The text messages received, in order (binary ones left out).
    pub fn texts(&self) -> Vec<String> {
        self.messages
            .iter()
            .filter_map(|m| match m {
                Message::Text(t) => Some(t.to_string()),
                _ => None,
            })
            .collect()
    }

    /// The most recent handshake, if any.
    pub fn last_handshake(&self) -> Option<&Handshake> {
        self.handshakes.last()
    }
}

/// The shared record: the server thread writes, tests wait and read.
#[derive(Default)]
pub struct Observations {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    observed: Observed,
    /// Async waiters, poked on every change (dropped ones are pruned).
    watchers: Vec<Sender<()>>,
}

impl Observations {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock must not hide the
        // observations from the next assertion.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of everything observed so far.
    pub fn snapshot(&self) -> Observed {
        self.lock().observed.clone()
    }

    /// Blocks until `predicate` holds (true) or `timeout` passes (false).
    /// For synchronous tests, or when the client runs on another thread.
    pub fn wait_for(
        &self,
        mut predicate: impl FnMut(&Observed) -> bool,
        timeout: Duration,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            if predicate(&state.observed) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// The async form of [`wait_for`](Self::wait_for), for tests whose client
    /// runs on the same thread and must keep being polled while waiting.
    pub async fn wait_for_async(
        &self,
        mut predicate: impl FnMut(&Observed) -> bool,
        timeout: Duration,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        let (poke, poked) = smol::channel::bounded(1);
        self.lock().watchers.push(poke);
        loop {
            if predicate(&self.lock().observed) {
                return true;
            }
            let woke = smol::future::or(async { poked.recv().await.is_ok() }, async {
                smol::Timer::at(deadline).await;
                false
            })
            .await;
            if !woke {
                return predicate(&self.lock().observed);
            }
        }
    }

    /// Applies `change` and wakes every waiter.
    pub fn record(&self, change: impl FnOnce(&mut Observed)) {
        let mut state = self.lock();
        change(&mut state.observed);
        // `Full` means a poke is already pending; `Closed` means the waiter left.
        state
            .watchers
            .retain(|w| !w.try_send(()).is_err_and(|e| e.is_closed()));
        drop(state);
        self.changed.notify_all();
    }
}
