//! Typed outcomes: how a connection ended ([`Ending`], [`Closure`]) and
//! where the connection stands ([`ConnectionState`]).
//!
//! The driver and the machine describe what happened with these types; the
//! text a person reads (Connection Status, Last Error, Last Close, the
//! Disconnected reason, the log) is made from them in one place,
//! [`crate::presentation`], and the machine-readable Connection State status
//! variable from [`ConnectionState::word`].

use std::time::{Duration, Instant};

/// Where a connection attempt or connection failed (Last Error shows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Dns,
    Tcp,
    Proxy,
    Tls,
    HttpUpgrade,
    WebSocket,
    ConnectTimeout,
    PingTimeout,
    IdleTimeout,
}

/// A deadline the machine keeps that passed, ending the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// Connect Timeout before TCP was up.
    Connect { after: Duration },
    /// Connect Timeout during the TLS and WebSocket handshakes.
    Handshake { after: Duration },
    /// Idle Timeout: no frame at all from the server.
    Idle { after: Duration },
    /// Pong Timeout: no answer to a keep-alive ping.
    Pong { after: Duration },
}

impl Expired {
    pub fn stage(self) -> Stage {
        match self {
            Expired::Connect { .. } | Expired::Handshake { .. } => Stage::ConnectTimeout,
            Expired::Idle { .. } => Stage::IdleTimeout,
            Expired::Pong { .. } => Stage::PingTimeout,
        }
    }
}

/// The side of the connection that started a close handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    Client,
    Server,
}

/// How the WebSocket itself ended (Last Close shows it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closure {
    /// A close frame was sent by `by`. `code` is None when the server's
    /// close frame carried no code (the close is then reported as 1005).
    Handshake {
        by: Peer,
        code: Option<u16>,
        reason: String,
    },
    /// TCP ended without any close frame (reported as 1006).
    Lost,
    /// The client dropped TCP without a close handshake: a dead link
    /// (reported as 1006).
    Dropped,
}

impl Closure {
    /// A close frame the client sent first.
    pub fn by_client(code: u16, reason: &str) -> Closure {
        Closure::Handshake {
            by: Peer::Client,
            code: Some(code),
            reason: reason.to_owned(),
        }
    }

    /// A close frame the server sent first (`code` None: a frame with no
    /// code).
    pub fn by_server(code: Option<u16>, reason: &str) -> Closure {
        Closure::Handshake {
            by: Peer::Server,
            code,
            reason: reason.to_owned(),
        }
    }
}

/// How a connection (attempt) ended, as the driver saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    /// For the Disconnected trigger, the log and Connection Status.
    pub reason: String,
    /// Set for errors (shown in Last Error); None for orderly closes.
    pub stage: Option<Stage>,
    /// Retrying cannot help (401/403/404, certificate failures): give up.
    pub fatal: bool,
    /// The close handshake, or its absence, for Last Close.
    pub close: Option<Closure>,
}

impl Ending {
    pub fn error(stage: Stage, reason: String) -> Ending {
        Ending {
            reason,
            stage: Some(stage),
            fatal: false,
            close: None,
        }
    }

    /// A deadline passed. A dead link (Idle, Pong) is dropped by the
    /// client without a close handshake: a close frame would not get
    /// through either.
    pub fn expired(expired: Expired) -> Ending {
        let close = match expired {
            Expired::Idle { .. } | Expired::Pong { .. } => Some(Closure::Dropped),
            Expired::Connect { .. } | Expired::Handshake { .. } => None,
        };
        Ending {
            close,
            ..Ending::error(
                expired.stage(),
                crate::presentation::expired_reason(expired),
            )
        }
    }

    /// The server closed with this code and reason (None: a close frame
    /// without a code).
    pub fn closed_by_server(frame: Option<(u16, &str)>) -> Ending {
        let close = match frame {
            Some((code, reason)) => Closure::by_server(Some(code), reason),
            None => Closure::by_server(None, ""),
        };
        Ending {
            close: Some(close.clone()),
            ..Ending::from(crate::presentation::server_close_reason(&close))
        }
    }

    /// Our own close handshake (Disconnect, removal) completed.
    pub fn closed_by_client() -> Ending {
        Ending {
            close: Some(Closure::by_client(1000, "")),
            ..Ending::from("closed")
        }
    }
}

impl From<String> for Ending {
    fn from(reason: String) -> Ending {
        Ending {
            reason,
            stage: None,
            fatal: false,
            close: None,
        }
    }
}

impl From<&str> for Ending {
    fn from(reason: &str) -> Ending {
        Ending::from(reason.to_owned())
    }
}

/// What ended the last connection or attempt, when nothing connects at
/// once: it stays part of the state that follows (a reconnect wait, a wait
/// for the network).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loss {
    /// A connection that had reached Connected ended (Disconnected fired).
    Disconnected { ending: Ending },
    /// A connection attempt failed before Connected.
    ConnectFailed { ending: Ending },
}

impl Loss {
    /// How the connection or attempt ended.
    pub fn ending(&self) -> &Ending {
        match self {
            Loss::Disconnected { ending } | Loss::ConnectFailed { ending } => ending,
        }
    }

    /// The state that says just this loss.
    pub fn state(self) -> ConnectionState {
        match self {
            Loss::Disconnected { ending } => ConnectionState::Disconnected { why: Some(ending) },
            Loss::ConnectFailed { ending } => ConnectionState::Failed { ending },
        }
    }
}

/// Why Auto-Reconnect stopped trying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GiveUp {
    /// The ending was fatal: retrying cannot help.
    Fatal { ending: Ending },
    /// Reconnect Max Attempts failed attempts in a row.
    MaxAttempts {
        failures: u32,
        max: u32,
        last: Ending,
    },
}

/// Where the connection stands: what Connection Status says in words and
/// Connection State in one word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionState {
    /// Not connected and not trying to; `why` ended the last connection
    /// (a Disconnect action, a loss; None before the first one).
    Disconnected { why: Option<Ending> },
    /// A connection attempt (DNS, TCP, proxy) is under way; `attempt`
    /// counts from 1 since the last Connect or stable connection.
    Connecting { attempt: u32 },
    /// TCP is up (Connected fired); the TLS and WebSocket handshakes are
    /// under way.
    Handshaking,
    /// The WebSocket is open: messages flow.
    Established,
    /// A close handshake is under way.
    Closing,
    /// A connection attempt failed and no retry follows.
    Failed { ending: Ending },
    /// Auto-Reconnect waits `delay` until `at` for attempt number `attempt`.
    Reconnecting {
        at: Instant,
        delay: Duration,
        attempt: u32,
        after: Loss,
    },
    /// A connection ended or an attempt failed with Auto-Reconnect off:
    /// nothing follows until the next Connect.
    NoRetry { after: Loss },
    /// Auto-Reconnect gave up (Gave Up fired).
    GaveUp { why: GiveUp },
    /// The controller's network is down; `after` ended the last connection
    /// if that is what happened just before.
    WaitingForNetwork { after: Option<Loss> },
}

impl ConnectionState {
    /// The state before anything happened.
    pub const INITIAL: ConnectionState = ConnectionState::Disconnected { why: None };

    /// The Connection State status variable: one of a fixed set of words
    /// for controllers, documented in `include/iom.h` and module.toml.
    pub fn word(&self) -> &'static str {
        match self {
            ConnectionState::Disconnected { .. } => "disconnected",
            ConnectionState::Connecting { .. } => "connecting",
            ConnectionState::Handshaking => "handshaking",
            ConnectionState::Established => "established",
            ConnectionState::Closing => "closing",
            ConnectionState::Failed { .. } => "failed",
            ConnectionState::Reconnecting { .. } => "reconnecting",
            // Still the loss's own word: the state a controller acts on is
            // the same; only the sentence adds what follows.
            ConnectionState::NoRetry { after } => after.clone().state().word(),
            ConnectionState::GaveUp { .. } => "gave-up",
            ConnectionState::WaitingForNetwork { .. } => "waiting-for-network",
        }
    }

    /// Every word [`ConnectionState::word`] can return.
    pub const WORDS: [&'static str; 9] = [
        "disconnected",
        "connecting",
        "handshaking",
        "established",
        "closing",
        "failed",
        "reconnecting",
        "gave-up",
        "waiting-for-network",
    ];
}
