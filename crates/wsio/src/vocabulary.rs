//! Vocabulary: the words every layer of the module shares.
//!
//! The first step of the data flow and a leaf: it imports nothing from the
//! crate, so the layers above it (manifest → properties → matching →
//! machine → status → driver → instance → abi) can all use these types
//! without reaching into each other. What each word is called in
//! `module.toml` (a trigger's name, a status variable's key and label) is
//! the manifest's business, see [`crate::manifest`].

use std::fmt;
use std::time::Duration;

/// The kinds of trigger this module fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    Connected,
    Established,
    Disconnected,
    MessagesReceived,
    GaveUp,
}

impl Trigger {
    pub const ALL: [Trigger; 5] = [
        Trigger::Connected,
        Trigger::Established,
        Trigger::Disconnected,
        Trigger::MessagesReceived,
        Trigger::GaveUp,
    ];
}

/// The status variables of this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusKey {
    ConnectionStatus,
    LastSent,
    LastReceived,
    LastError,
    LastClose,
    Reconnects,
    NextRetry,
    Subprotocol,
    PingRtt,
    QueueDepth,
    Dropped,
    Suppressed,
    MessagesIn,
    MessagesOut,
    BytesIn,
    BytesOut,
    ConnectionState,
}

impl StatusKey {
    pub const ALL: [StatusKey; 17] = [
        StatusKey::ConnectionStatus,
        StatusKey::LastSent,
        StatusKey::LastReceived,
        StatusKey::LastError,
        StatusKey::LastClose,
        StatusKey::Reconnects,
        StatusKey::NextRetry,
        StatusKey::Subprotocol,
        StatusKey::PingRtt,
        StatusKey::QueueDepth,
        StatusKey::Dropped,
        StatusKey::Suppressed,
        StatusKey::MessagesIn,
        StatusKey::MessagesOut,
        StatusKey::BytesIn,
        StatusKey::BytesOut,
        StatusKey::ConnectionState,
    ];

    /// The value before anything happened: Connection Status
    /// "Disconnected", Connection State "disconnected", the counters "0",
    /// the others empty.
    pub fn initial_value(self) -> &'static str {
        match self {
            StatusKey::ConnectionStatus => "Disconnected",
            StatusKey::ConnectionState => "disconnected",
            StatusKey::Reconnects
            | StatusKey::QueueDepth
            | StatusKey::Dropped
            | StatusKey::Suppressed
            | StatusKey::MessagesIn
            | StatusKey::MessagesOut
            | StatusKey::BytesIn
            | StatusKey::BytesOut => "0",
            _ => "",
        }
    }

    /// Set by every message: Last Sent, Last Received and the message and
    /// byte counters. While messages flow these are pushed at most once
    /// per `STATUS_EVERY` (driver); any other change is pushed at once.
    pub fn is_traffic(self) -> bool {
        matches!(
            self,
            StatusKey::LastSent
                | StatusKey::LastReceived
                | StatusKey::MessagesIn
                | StatusKey::MessagesOut
                | StatusKey::BytesIn
                | StatusKey::BytesOut
        )
    }

    /// The key's place in [`StatusKey::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Controller log levels, most to least important (values match `iom.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u32)]
pub enum LogLevel {
    Critical = 0,
    Terse = 1,
    Normal = 2,
    Extended = 3,
    Verbose = 4,
    Debug = 5,
}

/// A value that must never be printed: bearer tokens, passwords, keys.
/// `Debug` shows only that it is set; there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }
    /// The secret itself, for the one place that sends it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

// The machine's timeouts and the reconnect backoff, by default.

/// Send a ping after this long without any frame from the server.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// A ping not answered (by a pong or any frame) within this is a dead link.
pub const PONG_TIMEOUT: Duration = Duration::from_secs(10);
/// TCP + TLS + WebSocket handshake must finish within this.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// After sending a close frame, wait this long for the server's close; after
/// answering the server's, this long for it to end TCP.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Reconnect backoff: the first delay is at most this…
pub const RECONNECT_MIN: Duration = Duration::from_secs(1);
/// …doubling per failed attempt up to this cap.
pub const RECONNECT_MAX: Duration = Duration::from_secs(60);
/// No two attempts closer than this, whatever the jitter draws.
pub const RECONNECT_FLOOR: Duration = Duration::from_millis(100);
/// A connection established at least this long resets the backoff.
pub const STABLE_AFTER: Duration = Duration::from_secs(10);

/// The machine's timeouts. Defaults are the constants above; the Rust API
/// can shorten them (tests of half-open detection in real time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub keepalive_interval: Duration,
    pub pong_timeout: Duration,
    pub connect_timeout: Duration,
    pub close_timeout: Duration,
    /// No frame at all from the server for this long is a dead link.
    pub idle_timeout: Option<Duration>,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            keepalive_interval: KEEPALIVE_INTERVAL,
            pong_timeout: PONG_TIMEOUT,
            connect_timeout: CONNECT_TIMEOUT,
            close_timeout: CLOSE_TIMEOUT,
            idle_timeout: None,
        }
    }
}

/// Auto-Reconnect's backoff policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// Ceiling of the first delay; doubles per failed attempt.
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// Failed attempts in a row before giving up (0 = never).
    pub max_attempts: u32,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            min_delay: RECONNECT_MIN,
            max_delay: RECONNECT_MAX,
            max_attempts: 0,
        }
    }
}

/// Messaging options (all off by default: the classic behaviour).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Messaging {
    pub binary_as_text: bool,
    pub queue_while_disconnected: bool,
    pub queue_size: usize,
    /// None: queued messages never expire.
    pub queue_ttl: Option<Duration>,
    /// When full: drop the oldest queued message (true) or the new one.
    pub drop_oldest: bool,
    /// Messages per second at most (0 = unlimited).
    pub max_send_rate: u32,
    /// Messages Received triggers per second at most (0 = unlimited).
    pub trigger_rate_limit: u32,
}

impl Default for Messaging {
    fn default() -> Self {
        Messaging {
            binary_as_text: false,
            queue_while_disconnected: false,
            queue_size: 100,
            queue_ttl: Some(Duration::from_secs(60)),
            drop_oldest: true,
            max_send_rate: 0,
            trigger_rate_limit: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_is_redacted() {
        let s = Secret::new("hunter2".into());
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }
}
