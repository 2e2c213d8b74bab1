//! The machine: the WebSocket Client's behaviour as a pure state machine.
//!
//! No sockets, no threads, no clock: the caller passes `now` into every call,
//! like `quinn-proto`. So reconnect backoff, keep-alive and every trigger
//! order are tested in virtual time, instantly and deterministically, and the
//! [`crate::driver`] only executes what the machine asks for.
//!
//! The methods fall in four groups:
//! - getters (`&self`): [`Machine::state_name`], [`Machine::is_established`], …
//! - actions from the controller: [`Machine::handle_connect`],
//!   [`Machine::handle_disconnect`], [`Machine::handle_send`],
//!   [`Machine::handle_network`], [`Machine::handle_shutdown`];
//! - events from the network and the clock: [`Machine::handle_tcp_connected`],
//!   [`Machine::handle_established`], [`Machine::handle_message`],
//!   [`Machine::handle_activity`], [`Machine::handle_server_close`],
//!   [`Machine::handle_closed`], [`Machine::handle_timeout`];
//! - outputs: [`Machine::poll_effect`] (what to do now) and
//!   [`Machine::poll_deadline`] (when to call `handle_timeout` next).
//!
//! Every connection attempt gets a [`ConnId`]; events for an attempt that is
//! no longer current are ignored, so a late event from an aborted socket can
//! never fire a trigger twice.
//!
//! Outcomes are types ([`Ending`], [`ConnectionState`], in [`outcome`]); the
//! words of the status variables and the log are made from them by
//! [`crate::presentation`]. The machine's work is split by subsystem, one
//! file each under `machine/`: `lifecycle` (connect, handshake, close,
//! loss), `keepalive` (pings, dead links), `reconnect` (backoff, giving up)
//! and `messaging` (send pacing, the offline queue, received messages).
//! This file holds the types the driver exchanges with the machine, its
//! state and its getters.

mod keepalive;
mod lifecycle;
mod messaging;
pub mod outcome;
mod reconnect;

pub use crate::presentation::unsent_note;
pub use outcome::{Closure, ConnectionState, Ending, Expired, GiveUp, Loss, Peer, Stage};

use crate::presentation;
use crate::vocabulary::{
    LogLevel, Messaging, RECONNECT_FLOOR, ReconnectPolicy, STABLE_AFTER, Secret, StatusKey, Timing,
    Trigger,
};
use async_tungstenite::tungstenite::Utf8Bytes;
use bytes::Bytes;
use messaging::Bucket;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Identifies one connection attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// A message that fires Messages Received, returned by
/// [`Machine::receive_message`] for the caller to fire at once.
#[derive(Debug, PartialEq, Eq)]
pub struct Received {
    /// Variable 1: the text, or a binary payload as hex (or as text, with
    /// Binary As Text and valid UTF-8).
    pub data: Bytes,
    pub binary: bool,
}

/// What the machine wants done. The driver executes effects in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Open a connection (TCP, TLS for WSS, WebSocket handshake). Report
    /// progress with `handle_tcp_connected`, `handle_established` and
    /// `handle_closed`, all tagged with `conn`.
    Open {
        conn: ConnId,
        bearer_token: Option<Secret>,
    },
    /// Send a message on the connection. The message is also the new Last
    /// Sent: the driver sets the status variable from the last one of a
    /// burst ([`Outbound::shown`]), so a burst is not copied per message.
    Send { conn: ConnId, message: Outbound },
    /// Send a keep-alive ping.
    Ping { conn: ConnId },
    /// Send a close frame and wait for the server's close (then report
    /// `handle_closed`).
    Close {
        conn: ConnId,
        code: u16,
        reason: String,
    },
    /// Drop the connection at once without a close handshake (a dead link, a
    /// cancelled attempt). No `handle_closed` is expected afterwards.
    Abort { conn: ConnId },
    /// Fire a trigger with its data (the message; the reason for
    /// Disconnected; empty otherwise). `binary`: a binary message, whose
    /// data is its hex (or text, with Binary As Text). For Messages
    /// Received, `data` is also the new Last Received: the driver sets the
    /// status variable from it (coalesced until its next flush).
    Fire {
        trigger: Trigger,
        data: Bytes,
        binary: bool,
    },
    /// Set a status variable.
    Status { key: StatusKey, value: String },
    /// Set a status variable to a payload (coalesced, converted at flush).
    StatusPayload { key: StatusKey, payload: Bytes },
    /// Set a status variable to the wall-clock time of `at`.
    StatusAt { key: StatusKey, at: Instant },
    /// A log line for the controller.
    Log { level: LogLevel, message: String },
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    Text(Utf8Bytes),
    Binary(Bytes),
}

impl Outbound {
    pub fn len(&self) -> usize {
        match self {
            Outbound::Text(t) => t.len(),
            Outbound::Binary(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What Last Sent shows: the text, or the hex of binary data.
    /// The message as the Last Sent status shows it: text as is, binary
    /// as lowercase hex.
    pub fn shown(&self) -> Bytes {
        match self {
            Outbound::Text(t) => Bytes::from(t.clone()),
            Outbound::Binary(b) => Bytes::from(hex::encode(b)),
        }
    }
}

/// Traffic counters, shown as status variables (pushed in batches).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub messages_in: u64,
    pub messages_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Queued messages dropped (full queue, TTL, Clear Queue, lost link).
    pub dropped: u64,
    /// Messages that fired no trigger because of Trigger Rate Limit.
    pub suppressed: u64,
    pub queue_depth: usize,
}

/// What the machine needs from the instance properties.
#[derive(Debug, Clone)]
pub struct Settings {
    pub timing: Timing,
    pub reconnect: ReconnectPolicy,
    pub messaging: Messaging,
    pub keep_alive: bool,
    pub auto_reconnect: bool,
    pub extended_logging: bool,
    /// The URL without its query, for log lines.
    pub display_url: String,
    /// The proxy connections go through, as log lines name it ("via proxy
    /// http://host:port (the Proxy property)", never its password); None
    /// for a direct connection.
    pub route: Option<String>,
}

#[derive(Debug)]
enum State {
    /// Not connected and not trying to.
    Idle,
    /// TCP connect in progress (no Connected yet).
    Connecting { conn: ConnId, since: Instant },
    /// TCP up (Connected fired), TLS and WebSocket handshake in progress.
    Handshaking { conn: ConnId, since: Instant },
    Established {
        conn: ConnId,
        since: Instant,
        last_rx: Instant,
        ping_sent: Option<Instant>,
    },
    /// A close frame was sent (ours, or our answer to the server's);
    /// waiting for the connection to end.
    Closing {
        conn: ConnId,
        since: Instant,
        established_since: Instant,
        reason: String,
        /// The server closed first: how the connection ends, also when the
        /// server never closes TCP after its close frame.
        server: Option<Box<Ending>>,
    },
    /// Waiting to reconnect.
    Waiting { until: Instant },
}

/// The WebSocket Client state machine. See the module documentation.
#[derive(Debug)]
pub struct Machine {
    settings: Settings,
    /// Messages the driver holds for the connection and has not written
    /// (its outbox), as it last said before an event that may drop it.
    unwritten: usize,
    state: State,
    next_conn: u64,
    /// The bearer token of the last Connect, reused by reconnects.
    token: Option<Secret>,
    /// The controller asked for a connection (Connect, and no Disconnect since).
    wanted: bool,
    network_up: bool,
    shutting_down: bool,
    /// A Connect arrived while closing: connect again once closed.
    connect_after_close: bool,
    /// Reconnect attempts since the last stable connection or Connect action.
    attempt: u32,
    /// Auto-Reconnect gave up; Connect or Reset Reconnect clears it.
    gave_up: bool,
    /// Automatic reconnect attempts since the instance started.
    reconnects: u64,
    rng: fastrand::Rng,
    effects: VecDeque<Effect>,
    /// Last Received of a message that fired no trigger (Trigger Rate
    /// Limit), coalesced: emitted once after the burst, or before any other
    /// effect (see [`Machine::push`]).
    last_received: Option<Bytes>,
    /// Messages waiting to be sent: offline queue and send-rate pacing.
    queue: VecDeque<(Instant, Outbound)>,
    send_bucket: Bucket,
    trigger_bucket: Bucket,
    /// Trigger Rate Limit is suppressing (logged once per episode).
    suppressing: bool,
    counters: Counters,
    /// The status values last emitted (by StatusKey), to skip repeats.
    shown: Vec<Cow<'static, str>>,
    /// Where the connection stands, as last shown.
    connection: ConnectionState,
    /// The driver does not read the connection (flow control: the host
    /// holds back triggers), so keep-alive is suspended.
    reading_paused: bool,
}

impl Machine {
    /// A machine in the Idle state. `seed` drives the reconnect jitter, so
    /// tests can replay a backoff sequence.
    pub fn new(settings: Settings, seed: u64) -> Self {
        let messaging = settings.messaging;
        Machine {
            unwritten: 0,
            queue: VecDeque::new(),
            send_bucket: Bucket::new(messaging.max_send_rate, false),
            trigger_bucket: Bucket::new(messaging.trigger_rate_limit, true),
            suppressing: false,
            counters: Counters::default(),
            settings,
            state: State::Idle,
            next_conn: 0,
            token: None,
            wanted: false,
            network_up: true,
            shutting_down: false,
            connect_after_close: false,
            attempt: 0,
            gave_up: false,
            reconnects: 0,
            rng: fastrand::Rng::with_seed(seed),
            effects: VecDeque::new(),
            last_received: None,
            connection: ConnectionState::INITIAL,
            reading_paused: false,
            shown: StatusKey::ALL
                .iter()
                .map(|key| Cow::Borrowed(key.initial_value()))
                .collect(),
        }
    }

    // ------------------------------------------------------------ getters

    /// A short name of the current state, for log lines and errors.
    pub fn state_name(&self) -> &'static str {
        match self.state {
            State::Idle => "disconnected",
            State::Connecting { .. } => "connecting",
            State::Handshaking { .. } => "connected, WebSocket handshake in progress",
            State::Established { .. } => "established",
            State::Closing { .. } => "closing",
            State::Waiting { .. } => "waiting to reconnect",
        }
    }

    #[cfg(test)]
    /// Where the connection stands, typed (Connection Status and
    /// Connection State are made from it).
    pub fn connection_state(&self) -> &ConnectionState {
        &self.connection
    }

    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Established { .. })
    }

    /// Frees the effect queue's memory once it is empty. A connection's
    /// start is a burst of effects that steady traffic never needs again;
    /// with many idle instances the spare room adds up.
    pub fn release_spare_capacity(&mut self) {
        if self.effects.is_empty() {
            self.effects = VecDeque::new();
        }
    }

    /// Nothing open, nothing scheduled.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle)
    }

    /// The connection attempt currently in use, if any.
    pub fn current_conn(&self) -> Option<ConnId> {
        match self.state {
            State::Connecting { conn, .. }
            | State::Handshaking { conn, .. }
            | State::Established { conn, .. }
            | State::Closing { conn, .. } => Some(conn),
            State::Idle | State::Waiting { .. } => None,
        }
    }

    /// Traffic counters and the queue depth.
    pub fn counters(&self) -> Counters {
        Counters {
            queue_depth: self.queue.len(),
            ..self.counters
        }
    }

    /// How long a close handshake may take.
    pub fn close_timeout(&self) -> Duration {
        self.settings.timing.close_timeout
    }

    #[cfg(test)]
    /// Reconnect attempts since the last stable connection.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    // ------------------------------------------------------------ outputs

    /// The next thing to do, in order. A pending Last Received comes after
    /// the burst of message triggers that set it, before any other effect.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front().or_else(|| {
            self.last_received
                .take()
                .map(|payload| Effect::StatusPayload {
                    key: StatusKey::LastReceived,
                    payload,
                })
        })
    }

    /// When `handle_timeout` must be called next (None: nothing scheduled).
    pub fn poll_deadline(&self) -> Option<Instant> {
        self.state_deadline()
            .into_iter()
            .chain(self.queue_deadline())
            .min()
    }

    fn state_deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Idle => None,
            State::Connecting { since, .. } | State::Handshaking { since, .. } => {
                Some(*since + self.settings.timing.connect_timeout)
            }
            // Not read, so no pong or frame could be seen: nothing is due.
            State::Established { .. } if self.reading_paused => None,
            State::Established {
                last_rx, ping_sent, ..
            } => {
                let timing = &self.settings.timing;
                let keep_alive = match ping_sent {
                    _ if !self.settings.keep_alive => None,
                    Some(sent) => Some(*sent + timing.pong_timeout),
                    None => Some(*last_rx + timing.keepalive_interval),
                };
                let idle = timing.idle_timeout.map(|idle| *last_rx + idle);
                keep_alive.into_iter().chain(idle).min()
            }
            State::Closing { since, .. } => Some(*since + self.settings.timing.close_timeout),
            State::Waiting { until } => Some(*until),
        }
    }

    // ------------------------------------------------------------ effects

    /// Queues an effect. A pending Last Received goes first, so every
    /// effect other than a message trigger sees the status up to date.
    fn push(&mut self, effect: Effect) {
        if let Some(payload) = self.last_received.take() {
            self.effects.push_back(Effect::StatusPayload {
                key: StatusKey::LastReceived,
                payload,
            });
        }
        self.effects.push_back(effect);
    }

    fn fire(&mut self, trigger: Trigger, data: Bytes) {
        self.push(Effect::Fire {
            trigger,
            data,
            binary: false,
        });
    }

    /// Sets a status variable; the same value twice in a row is one change.
    fn set(&mut self, key: StatusKey, value: String) {
        let shown = &mut self.shown[key as usize];
        if *shown == value {
            return;
        }
        match shown {
            Cow::Owned(text) => text.clone_from(&value),
            Cow::Borrowed(_) => *shown = Cow::Owned(value.clone()),
        }
        self.push(Effect::Status { key, value });
    }

    /// Moves to a new connection state: Connection Status in words (see
    /// [`crate::presentation`]) and Connection State in one word.
    fn show(&mut self, state: ConnectionState) {
        self.set(
            StatusKey::ConnectionStatus,
            presentation::connection_status(&state),
        );
        self.set(StatusKey::ConnectionState, state.word().to_owned());
        self.connection = state;
    }

    fn log(&mut self, level: LogLevel, message: String) {
        self.push(Effect::Log { level, message });
    }

    fn extended(&mut self, message: String) {
        if self.settings.extended_logging {
            self.log(LogLevel::Extended, message);
        }
    }
}

#[cfg(test)]
mod tests;
