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

use crate::vocabulary::{
    LogLevel, Messaging, RECONNECT_FLOOR, ReconnectPolicy, STABLE_AFTER, Secret, StatusKey, Timing,
    Trigger,
};
use async_tungstenite::tungstenite::Utf8Bytes;
use bytes::Bytes;
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

/// A token bucket in virtual time.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    at: Option<Instant>,
}

impl Bucket {
    fn new(rate: u32, burst: bool) -> Bucket {
        let rate = f64::from(rate);
        let capacity = if burst { rate.max(1.0) } else { 1.0 };
        Bucket {
            rate,
            capacity,
            tokens: capacity,
            at: None,
        }
    }

    fn unlimited(&self) -> bool {
        self.rate == 0.0
    }

    fn refill(&mut self, now: Instant) {
        if let Some(at) = self.at {
            let elapsed = now.saturating_duration_since(at).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        }
        self.at = Some(now);
    }

    fn take(&mut self, now: Instant) -> bool {
        if self.unlimited() {
            return true;
        }
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// When the next token is there.
    fn next(&self, now: Instant) -> Instant {
        let missing = (1.0 - self.tokens).max(0.0);
        let at = self.at.unwrap_or(now);
        at + Duration::from_secs_f64(missing / self.rate)
    }
}

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

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Dns => "DNS",
            Stage::Tcp => "TCP",
            Stage::Proxy => "Proxy",
            Stage::Tls => "TLS",
            Stage::HttpUpgrade => "HTTP upgrade",
            Stage::WebSocket => "WebSocket",
            Stage::ConnectTimeout => "Connect timeout",
            Stage::PingTimeout => "Ping timeout",
            Stage::IdleTimeout => "Idle timeout",
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
    /// The close handshake, for Last Close ("1000 bye (closed by server)").
    pub close: Option<String>,
}

/// What a loss adds to its reason when messages were still waiting to be
/// written: nothing is dropped without saying so.
pub fn unsent_note(messages: usize) -> String {
    format!("; {messages} queued message(s) were not sent")
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

    /// Reconnect attempts since the last stable connection.
    #[cfg(test)]
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

    /// The queue's next event: the next send token while established and
    /// paced, or the oldest message's expiry while waiting.
    fn queue_deadline(&self) -> Option<Instant> {
        let (enqueued, _) = self.queue.front()?;
        if self.is_established() {
            (!self.send_bucket.unlimited()).then(|| self.send_bucket.next(*enqueued))
        } else {
            self.settings.messaging.queue_ttl.map(|ttl| *enqueued + ttl)
        }
    }

    fn state_deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Idle => None,
            State::Connecting { since, .. } | State::Handshaking { since, .. } => {
                Some(*since + self.settings.timing.connect_timeout)
            }
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

    // ------------------------------------------------------------ actions

    /// The Connect action. Ignored (with a log line) while connecting,
    /// connected or closing; from a reconnect wait it connects at once.
    pub fn handle_connect(&mut self, now: Instant, bearer_token: Option<Secret>) {
        if self.shutting_down {
            return;
        }
        match self.state {
            State::Idle | State::Waiting { .. } => {
                self.wanted = true;
                self.token = bearer_token;
                self.attempt = 0;
                self.gave_up = false;
                if self.network_up {
                    self.open(now);
                } else {
                    self.state = State::Idle;
                    self.status("Waiting for the network");
                    self.log(
                        LogLevel::Normal,
                        "Connect: the network is down; connecting when it comes back up".into(),
                    );
                }
            }
            State::Closing { .. } => {
                // A Connect right after a Disconnect: finish the close, then
                // connect again (see handle_closed).
                self.wanted = true;
                self.connect_after_close = true;
                self.token = bearer_token;
                self.attempt = 0;
                self.log(
                    LogLevel::Normal,
                    "Connect: still closing the previous connection; connecting once it is closed"
                        .into(),
                );
            }
            State::Connecting { .. } | State::Handshaking { .. } | State::Established { .. } => {
                self.log(
                    LogLevel::Normal,
                    format!(
                        "Connect ignored: already {}; use Disconnect first to connect again",
                        self.state_name()
                    ),
                );
            }
        }
    }

    /// The Disconnect action: close (code 1000) and stop reconnecting until
    /// the next Connect.
    pub fn handle_disconnect(&mut self, now: Instant) {
        self.wanted = false;
        self.connect_after_close = false;
        self.end_by_request(now, "Disconnect action", 1000);
    }

    /// The instance is being removed: close cleanly like Disconnect; the
    /// driver stops once [`Machine::is_idle`].
    pub fn handle_shutdown(&mut self, now: Instant) {
        self.shutting_down = true;
        self.wanted = false;
        self.connect_after_close = false;
        self.end_by_request(now, "instance removed", 1000);
        if self.is_idle() {
            let n = self.queue.len();
            self.drop_queued(n, "instance removed");
        }
    }

    /// The Send Message action. Sends when established (paced by Max Send
    /// Rate); otherwise queues it with Queue While Disconnected, or (the
    /// classic behaviour) logs an error naming the state and sends nothing.
    /// Returns whether the message was sent or queued.
    pub fn handle_send(&mut self, now: Instant, message: Outbound) -> bool {
        if let State::Established { conn, .. } = self.state {
            if self.queue.is_empty() && self.send_bucket.take(now) {
                self.transmit(conn, message);
                return true;
            }
            return self.enqueue(now, message);
        }
        if self.settings.messaging.queue_while_disconnected && !self.shutting_down {
            return self.enqueue(now, message);
        }
        self.log(
            LogLevel::Critical,
            format!(
                "Send Message failed: the WebSocket is not established (state: {}); nothing was sent",
                self.state_name()
            ),
        );
        false
    }

    /// Send Message on the driver's per-message path: the message comes
    /// straight back (counted, as `transmit` counts it) when it can go out
    /// now and nothing waits before it: no queued message, no effect. Else
    /// it is handled as [`Machine::handle_send`] does, through the effects
    /// (or the queue, or an error in the log), and `None` is returned.
    pub fn send_message(&mut self, now: Instant, message: Outbound) -> Option<(ConnId, Outbound)> {
        if let State::Established { conn, .. } = self.state
            && self.queue.is_empty()
            && self.effects.is_empty()
            && self.last_received.is_none()
        {
            if !self.send_bucket.take(now) {
                self.enqueue(now, message);
                return None;
            }
            self.counters.messages_out += 1;
            self.counters.bytes_out += message.len() as u64;
            return Some((conn, message));
        }
        self.handle_send(now, message);
        None
    }

    /// The Clear Queue action.
    pub fn handle_clear_queue(&mut self, _now: Instant) {
        let n = self.queue.len();
        self.drop_queued(n, "Clear Queue");
    }

    /// The Reset Reconnect action: clear the attempt count (and a Gave Up)
    /// and connect again at once with the last Connect's token.
    pub fn handle_reset_reconnect(&mut self, now: Instant) {
        if self.shutting_down {
            return;
        }
        if !self.wanted {
            self.log(
                LogLevel::Normal,
                "Reset Reconnect: nothing to retry (no Connect since the last Disconnect); use Connect"
                    .into(),
            );
            return;
        }
        self.attempt = 0;
        self.gave_up = false;
        match self.state {
            State::Idle | State::Waiting { .. } if self.network_up => {
                self.log(LogLevel::Normal, "Reset Reconnect: connecting now".into());
                self.open(now);
            }
            _ => self.log(
                LogLevel::Normal,
                format!(
                    "Reset Reconnect: attempt count cleared (state: {})",
                    self.state_name()
                ),
            ),
        }
    }

    /// The driver's count of messages it holds for the connection and has
    /// not written yet. Given before `handle_timeout` and `handle_network`,
    /// which may drop the connection without a close handshake: the
    /// Disconnected reason then says how many were not sent.
    pub fn set_unwritten(&mut self, messages: usize) {
        self.unwritten = messages;
    }

    /// The controller's network went down or came up.
    pub fn handle_network(&mut self, now: Instant, up: bool) {
        if up == self.network_up {
            return;
        }
        self.network_up = up;
        if up {
            self.log(LogLevel::Normal, "network up".into());
            if self.wanted
                && !self.gave_up
                && matches!(self.state, State::Idle)
                && !self.shutting_down
            {
                self.attempt = 0;
                self.open(now);
            }
            return;
        }
        self.log(LogLevel::Normal, "network down".into());
        // Keep the wish to be connected only where the module would
        // reconnect by itself anyway.
        self.wanted &= self.settings.auto_reconnect;
        match self.state {
            State::Idle => {}
            State::Waiting { .. } => {
                self.state = State::Idle;
                self.status("Waiting for the network");
            }
            State::Connecting { conn, .. } => {
                self.push(Effect::Abort { conn });
                self.state = State::Idle;
                self.status("Disconnected: network down");
            }
            State::Handshaking { conn, .. }
            | State::Established { conn, .. }
            | State::Closing { conn, .. } => {
                self.abort(now, conn, "network down".into());
            }
        }
    }

    // ------------------------------------------------------------ events

    /// TCP is up for `conn`: fires Connected.
    pub fn handle_tcp_connected(&mut self, now: Instant, conn: ConnId) {
        if let State::Connecting { conn: c, since } = self.state
            && c == conn
        {
            self.state = State::Handshaking { conn, since };
            self.status("Connected, WebSocket handshake in progress");
            self.fire(Trigger::Connected, Bytes::new());
            self.extended(format!("TCP connected to {}", self.settings.display_url));
            let _ = now;
        }
    }

    /// The WebSocket handshake completed: fires WebSocket Established.
    pub fn handle_established(&mut self, now: Instant, conn: ConnId, subprotocol: Option<String>) {
        if let State::Handshaking { conn: c, .. } = self.state
            && c == conn
        {
            self.state = State::Established {
                conn,
                since: now,
                last_rx: now,
                ping_sent: None,
            };
            self.set(StatusKey::Subprotocol, subprotocol.unwrap_or_default());
            self.set(StatusKey::NextRetry, String::new());
            self.status("Established");
            self.fire(Trigger::Established, Bytes::new());
            // Queued messages go first, in order, before anything sent later.
            self.flush_queue(now);
            self.log(
                LogLevel::Normal,
                format!("WebSocket established with {}", self.settings.display_url),
            );
        }
    }

    /// A message arrived: fires Messages Received (one per message, in
    /// order, unless Trigger Rate Limit suppresses it) and sets Last
    /// Received. Binary payloads are shown as lowercase hex (or as text with
    /// Binary As Text, when valid UTF-8).
    #[cfg(test)]
    pub fn handle_message(&mut self, now: Instant, conn: ConnId, payload: Bytes, binary: bool) {
        if let Some(Received { data, binary }) = self.receive_message(now, conn, payload, binary) {
            self.effects.push_back(Effect::Fire {
                trigger: Trigger::MessagesReceived,
                data,
                binary,
            });
        }
    }

    /// [`Machine::handle_message`] for the per-message path: when no
    /// earlier effect waits, the Messages Received trigger is returned
    /// instead of queued, and the caller carries it out exactly as it
    /// would `Effect::Fire` (which also makes it Last Received). Otherwise
    /// it is queued behind those effects and None comes back.
    pub fn receive_message(
        &mut self,
        now: Instant,
        conn: ConnId,
        payload: Bytes,
        binary: bool,
    ) -> Option<Received> {
        let State::Established {
            conn: c,
            last_rx,
            ping_sent,
            ..
        } = &mut self.state
        else {
            return None;
        };
        if *c != conn {
            return None;
        }
        *last_rx = now;
        *ping_sent = None;
        self.counters.messages_in += 1;
        self.counters.bytes_in += payload.len() as u64;
        let data = if binary
            && !(self.settings.messaging.binary_as_text && std::str::from_utf8(&payload).is_ok())
        {
            Bytes::from(hex::encode(&payload))
        } else {
            payload
        };
        if !self.trigger_bucket.take(now) {
            // No trigger to carry it: Last Received waits in the slot.
            self.last_received = Some(data);
            self.counters.suppressed += 1;
            if !self.suppressing {
                self.suppressing = true;
                self.log(
                    LogLevel::Normal,
                    format!(
                        "Trigger Rate Limit ({}/s) reached: messages over it fire no trigger and are counted in Suppressed",
                        self.settings.messaging.trigger_rate_limit
                    ),
                );
            }
            return None;
        }
        self.suppressing = false;
        // The trigger carries Last Received (see Effect::Fire), so a burst
        // costs no copy and no status effect per message. Not `push`: it
        // supersedes a pending Last Received instead of flushing it.
        self.last_received = None;
        if self.effects.is_empty() {
            return Some(Received { data, binary });
        }
        self.effects.push_back(Effect::Fire {
            trigger: Trigger::MessagesReceived,
            data,
            binary,
        });
        None
    }

    /// A pong: proof of life, and the round trip time of a keep-alive ping.
    pub fn handle_pong(&mut self, now: Instant, conn: ConnId) {
        if let State::Established {
            conn: c, ping_sent, ..
        } = &self.state
            && *c == conn
            && let Some(sent) = *ping_sent
        {
            let rtt = now.saturating_duration_since(sent).as_millis();
            self.set(StatusKey::PingRtt, rtt.to_string());
        }
        self.handle_activity(now, conn);
    }

    /// Any other frame from the server (ping, close): proof of life.
    pub fn handle_activity(&mut self, now: Instant, conn: ConnId) {
        if let State::Established {
            conn: c,
            last_rx,
            ping_sent,
            ..
        } = &mut self.state
            && *c == conn
        {
            *last_rx = now;
            *ping_sent = None;
        }
    }

    /// The server's close frame arrived on `conn` (tungstenite answers it):
    /// the connection is closing and ends as `ending` when the server
    /// closes TCP. A server that never does is dropped after the close
    /// timeout, as when it leaves our own close unanswered (RFC 6455 7.1.1
    /// lets the client close TCP after both close frames).
    pub fn handle_server_close(&mut self, now: Instant, conn: ConnId, ending: Ending) {
        let State::Established { conn: c, since, .. } = self.state else {
            return;
        };
        if c != conn {
            return;
        }
        self.state = State::Closing {
            conn,
            since: now,
            established_since: since,
            reason: ending.reason.clone(),
            server: Some(Box::new(ending)),
        };
        self.status("Closing");
    }

    /// The connection `conn` ended or failed, for any reason (`reason` says
    /// which, for the log, the status and the Disconnected trigger).
    pub fn handle_closed(&mut self, now: Instant, conn: ConnId, ending: impl Into<Ending>) {
        if self.current_conn() != Some(conn) {
            return;
        }
        let mut ending = ending.into();
        match self.state {
            State::Connecting { .. } => self.connect_failed(now, ending),
            State::Closing {
                reason: ref why,
                established_since,
                ref server,
                ..
            } => {
                // Our own close completed: the Disconnect's reason stands.
                // After the server's close, the driver's ending says it all
                // (with what was not sent).
                if server.is_none() {
                    ending.reason = why.clone();
                }
                if now.duration_since(established_since) >= STABLE_AFTER {
                    self.attempt = 0;
                }
                self.lost(now, ending);
            }
            State::Established { since, .. } => {
                if now.duration_since(since) >= STABLE_AFTER {
                    self.attempt = 0;
                }
                self.lost(now, ending);
            }
            _ => self.lost(now, ending),
        }
    }

    /// A deadline from [`Machine::poll_deadline`] passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(deadline) = self.poll_deadline() else {
            return;
        };
        if now < deadline {
            return;
        }
        let timing = self.settings.timing;
        self.service_queue(now);
        let Some(due) = self.state_deadline() else {
            return;
        };
        if now < due {
            return;
        }
        match self.state {
            State::Idle => {}
            State::Waiting { .. } => {
                if self.wanted && self.network_up && !self.shutting_down {
                    self.reconnects += 1;
                    self.set(StatusKey::Reconnects, self.reconnects.to_string());
                    self.open(now);
                } else {
                    self.state = State::Idle;
                }
            }
            State::Connecting { conn, .. } => {
                self.push(Effect::Abort { conn });
                self.connect_failed(
                    now,
                    Ending::error(
                        Stage::ConnectTimeout,
                        format!(
                            "TCP connect timed out after {} (Connect Timeout)",
                            secs(timing.connect_timeout)
                        ),
                    ),
                );
            }
            State::Handshaking { conn, .. } => {
                self.push(Effect::Abort { conn });
                self.lost(
                    now,
                    Ending::error(
                        Stage::ConnectTimeout,
                        format!(
                            "TLS/WebSocket handshake timed out after {} (Connect Timeout)",
                            secs(timing.connect_timeout)
                        ),
                    ),
                );
            }
            State::Established {
                conn,
                last_rx,
                ref mut ping_sent,
                ..
            } => {
                let dropped = || Some("1006 (connection dropped by client)".to_owned());
                if timing
                    .idle_timeout
                    .is_some_and(|idle| now >= last_rx + idle)
                {
                    let mut ending = Ending::error(
                        Stage::IdleTimeout,
                        format!(
                            "no frame from the server for {}: connection is dead (Idle Timeout)",
                            secs(timing.idle_timeout.unwrap_or_default())
                        ),
                    );
                    ending.close = dropped();
                    self.abort(now, conn, ending);
                    return;
                }
                if !self.settings.keep_alive {
                    return;
                }
                match *ping_sent {
                    None if now >= last_rx + timing.keepalive_interval => {
                        *ping_sent = Some(now);
                        self.push(Effect::Ping { conn });
                        self.extended(format!(
                            "keep-alive: no frame for {}, ping sent",
                            secs(timing.keepalive_interval)
                        ));
                    }
                    Some(sent) if now >= sent + timing.pong_timeout => {
                        // Half-open: a close frame would not get through either.
                        let mut ending = Ending::error(
                            Stage::PingTimeout,
                            format!(
                                "no answer to keep-alive ping within {}: connection is dead",
                                secs(timing.pong_timeout)
                            ),
                        );
                        ending.close = dropped();
                        self.abort(now, conn, ending);
                    }
                    _ => {}
                }
            }
            State::Closing {
                conn,
                ref reason,
                ref mut server,
                ..
            } => match server.take() {
                Some(ending) => {
                    self.log(
                        LogLevel::Normal,
                        format!(
                            "the server sent its close frame but did not close the connection within {}; the client closed it",
                            secs(timing.close_timeout)
                        ),
                    );
                    self.abort(now, conn, *ending);
                }
                None => {
                    let reason = format!("{reason} (server did not answer the close frame)");
                    self.abort(now, conn, Ending::from(reason));
                }
            },
        }
    }

    // ------------------------------------------------------------ internals

    fn open(&mut self, now: Instant) {
        self.next_conn += 1;
        let conn = ConnId(self.next_conn);
        self.state = State::Connecting { conn, since: now };
        self.status(if self.attempt == 0 {
            "Connecting".to_owned()
        } else {
            format!("Connecting (attempt {})", self.attempt + 1)
        });
        self.extended(format!(
            "connecting to {} (attempt {})",
            self.settings.display_url,
            self.attempt + 1
        ));
        self.set(StatusKey::NextRetry, String::new());
        self.push(Effect::Open {
            conn,
            bearer_token: self.token.clone(),
        });
    }

    /// A Disconnect action or shutdown: the graceful end of whatever is open.
    fn end_by_request(&mut self, now: Instant, why: &str, code: u16) {
        match self.state {
            State::Idle => {
                if !self.shutting_down {
                    self.extended(format!("{why}: already disconnected"));
                }
            }
            State::Waiting { .. } => {
                self.state = State::Idle;
                self.status(format!("Disconnected: {why}"));
                self.log(LogLevel::Normal, format!("{why}: reconnect cancelled"));
            }
            State::Connecting { conn, .. } => {
                // No Connected was fired, so no Disconnected either.
                self.push(Effect::Abort { conn });
                self.state = State::Idle;
                self.status(format!("Disconnected: {why}"));
                self.log(
                    LogLevel::Normal,
                    format!("{why}: connection attempt cancelled"),
                );
            }
            State::Handshaking { conn, .. } => {
                // A close frame needs a WebSocket; before it exists, drop TCP.
                self.push(Effect::Abort { conn });
                self.lost(now, Ending::from(why));
            }
            State::Established { conn, since, .. } => {
                self.push(Effect::Close {
                    conn,
                    code,
                    reason: String::new(),
                });
                self.state = State::Closing {
                    conn,
                    since: now,
                    established_since: since,
                    reason: why.to_owned(),
                    server: None,
                };
                self.status("Closing");
            }
            State::Closing { .. } => {}
        }
    }

    /// Sends a message now and counts it.
    fn transmit(&mut self, conn: ConnId, message: Outbound) {
        self.counters.messages_out += 1;
        self.counters.bytes_out += message.len() as u64;
        // The message is Last Sent (Effect::Send): a burst costs no copy
        // and no status effect per message.
        self.push(Effect::Send { conn, message });
    }

    /// Puts a message in the send queue, applying the drop policy.
    fn enqueue(&mut self, now: Instant, message: Outbound) -> bool {
        let messaging = self.settings.messaging;
        self.expire_queue(now);
        if self.queue.len() >= messaging.queue_size {
            if !messaging.drop_oldest {
                self.counters.dropped += 1;
                self.log(
                    LogLevel::Critical,
                    format!(
                        "Send Message dropped: the send queue is full ({} messages, Queue Drop Policy: Drop Newest)",
                        messaging.queue_size
                    ),
                );
                return false;
            }
            self.drop_queued(1, "the send queue is full (Queue Drop Policy: Drop Oldest)");
        }
        self.queue.push_back((now, message));
        self.extended(format!(
            "Send Message queued ({} waiting; state: {})",
            self.queue.len(),
            self.state_name()
        ));
        true
    }

    /// Drops the `n` oldest queued messages, counted and logged.
    fn drop_queued(&mut self, n: usize, why: &str) {
        let n = n.min(self.queue.len());
        if n == 0 {
            return;
        }
        self.queue.drain(..n);
        self.counters.dropped += n as u64;
        self.log(
            LogLevel::Critical,
            format!("{n} queued message(s) dropped: {why}"),
        );
    }

    /// Drops queued messages older than Queue Message TTL.
    fn expire_queue(&mut self, now: Instant) {
        let Some(ttl) = self.settings.messaging.queue_ttl else {
            return;
        };
        let expired = self
            .queue
            .iter()
            .take_while(|(at, _)| now >= *at + ttl)
            .count();
        self.drop_queued(
            expired,
            &format!("older than Queue Message TTL ({})", secs(ttl)),
        );
    }

    /// Sends what the rate allows, in order.
    fn flush_queue(&mut self, now: Instant) {
        self.expire_queue(now);
        let State::Established { conn, .. } = self.state else {
            return;
        };
        while !self.queue.is_empty() && self.send_bucket.take(now) {
            if let Some((_, message)) = self.queue.pop_front() {
                self.transmit(conn, message);
            }
        }
    }

    fn service_queue(&mut self, now: Instant) {
        if self.is_established() {
            self.flush_queue(now);
        } else {
            self.expire_queue(now);
        }
    }

    /// After a loss: paced messages wait only with Queue While Disconnected.
    fn keep_or_drop_queue(&mut self) {
        if !self.settings.messaging.queue_while_disconnected || self.shutting_down {
            let n = self.queue.len();
            self.drop_queued(n, "the connection closed before they could be sent");
        }
    }

    /// A TCP connect that never reached Connected: no trigger, a log line,
    /// the status, and a retry per policy.
    fn connect_failed(&mut self, now: Instant, ending: Ending) {
        self.log(
            LogLevel::Critical,
            format!(
                "connect to {} failed: {}",
                self.settings.display_url, ending.reason
            ),
        );
        self.record(&ending);
        let status = format!("Connect failed: {}", ending.reason);
        self.after_loss(now, status, &ending);
    }

    /// Drops `conn` without a close handshake and reports the loss, with
    /// the messages the driver still held for it (`set_unwritten`): they
    /// go with the connection, and the reason says so.
    fn abort(&mut self, now: Instant, conn: ConnId, mut ending: Ending) {
        self.push(Effect::Abort { conn });
        let unwritten = std::mem::take(&mut self.unwritten);
        if unwritten > 0 {
            ending.reason.push_str(&unsent_note(unwritten));
        }
        self.lost(now, ending);
    }

    /// A connection that reached Connected ended: Disconnected fires once.
    fn lost(&mut self, now: Instant, ending: Ending) {
        // Status first: a controller reacting to the trigger sees it.
        self.log(LogLevel::Normal, format!("disconnected: {}", ending.reason));
        self.record(&ending);
        let status = format!("Disconnected: {}", ending.reason);
        self.status(status.clone());
        self.fire(
            Trigger::Disconnected,
            Bytes::from(ending.reason.clone().into_bytes()),
        );
        self.after_loss(now, status, &ending);
    }

    /// Last Error and Last Close.
    fn record(&mut self, ending: &Ending) {
        if let Some(stage) = ending.stage {
            self.set(
                StatusKey::LastError,
                format!("{} (stage: {})", ending.reason, stage.name()),
            );
        }
        if let Some(close) = &ending.close {
            self.set(StatusKey::LastClose, close.clone());
        }
    }

    /// Decide what follows a loss: reconnect now (a Connect came while
    /// closing), later (auto-reconnect), give up, or stay idle.
    fn after_loss(&mut self, now: Instant, status: String, ending: &Ending) {
        self.state = State::Idle;
        self.keep_or_drop_queue();
        if self.shutting_down {
            self.status(status);
            return;
        }
        if !self.network_up {
            self.status(format!("{status}; waiting for the network"));
            return;
        }
        if std::mem::take(&mut self.connect_after_close) {
            self.status(status);
            self.open(now);
            return;
        }
        if !(self.wanted && self.settings.auto_reconnect) {
            self.wanted = false;
            self.status(status);
            return;
        }
        let failures = self.attempt.saturating_add(1);
        let max = self.settings.reconnect.max_attempts;
        if ending.fatal {
            self.give_up(format!("{} (retrying cannot help)", ending.reason));
        } else if max > 0 && failures >= max {
            self.give_up(format!(
                "{failures} connection attempt(s) in a row failed (Reconnect Max Attempts {max}); last: {}",
                ending.reason
            ));
        } else {
            let delay = self.backoff();
            self.attempt = failures;
            let until = now + delay;
            self.state = State::Waiting { until };
            // The shown value becomes a time the machine cannot spell, so
            // the next set() of NextRetry always goes out.
            self.shown[StatusKey::NextRetry as usize] = Cow::Borrowed("\0time");
            self.push(Effect::StatusAt {
                key: StatusKey::NextRetry,
                at: until,
            });
            self.status(format!(
                "Reconnecting in {:.1} s (attempt {}); {status}",
                delay.as_secs_f64(),
                self.attempt + 1
            ));
            self.extended(format!(
                "auto-reconnect: attempt {} in {} ms",
                self.attempt + 1,
                delay.as_millis()
            ));
        }
    }

    /// Auto-Reconnect stops: Gave Up fires; Connect or Reset Reconnect
    /// starts again.
    fn give_up(&mut self, reason: String) {
        self.gave_up = true;
        self.log(
            LogLevel::Critical,
            format!("auto-reconnect gave up: {reason}"),
        );
        self.set(StatusKey::NextRetry, "gave up".to_owned());
        self.status(format!("Gave up: {reason}"));
        self.fire(Trigger::GaveUp, Bytes::from(reason.into_bytes()));
    }

    /// Exponential backoff with full jitter: uniform in
    /// [floor, min(cap, min_delay × 2^attempt)].
    fn backoff(&mut self) -> Duration {
        let policy = self.settings.reconnect;
        let ceiling = policy
            .min_delay
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(policy.max_delay);
        let floor = RECONNECT_FLOOR.as_millis() as u64;
        let ceiling = (ceiling.as_millis() as u64).max(floor);
        Duration::from_millis(self.rng.u64(floor..=ceiling))
    }

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

    /// Sets Connection Status.
    fn status(&mut self, value: impl Into<String>) {
        self.set(StatusKey::ConnectionStatus, value.into());
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

/// "30 s", "0.2 s": durations in log lines and reasons.
fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s:.1} s")
    }
}

#[cfg(test)]
mod tests;
