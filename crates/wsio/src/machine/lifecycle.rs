//! The connection's lifecycle: Connect and Disconnect, the network going
//! down and up, TCP up, the WebSocket handshake, the close handshake, and
//! how an ending is recorded (Last Error, Last Close, the Disconnected
//! trigger) before [`reconnect`](super::reconnect) decides what follows.

use super::{
    ConnId, ConnectionState, Effect, Ending, Expired, LogLevel, Loss, Machine, STABLE_AFTER, State,
};
use crate::presentation;
use crate::vocabulary::Secret;
use crate::vocabulary::StatusKey;
use crate::vocabulary::Trigger;
use bytes::Bytes;
use std::time::Instant;

impl Machine {
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
                    self.show(ConnectionState::WaitingForNetwork { after: None });
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
                self.show(ConnectionState::WaitingForNetwork { after: None });
            }
            State::Connecting { conn, .. } => {
                self.push(Effect::Abort { conn });
                self.state = State::Idle;
                self.show(ConnectionState::Disconnected {
                    why: Some(Ending::from("network down")),
                });
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
            self.show(ConnectionState::Handshaking);
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
            self.show(ConnectionState::Established);
            self.fire(Trigger::Established, Bytes::new());
            // Queued messages go first, in order, before anything sent later.
            self.flush_queue(now);
            self.log(
                LogLevel::Normal,
                format!("WebSocket established with {}", self.settings.display_url),
            );
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
        self.show(ConnectionState::Closing);
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
                let after = timing.connect_timeout;
                self.connect_failed(now, Ending::expired(Expired::Connect { after }));
            }
            State::Handshaking { conn, .. } => {
                self.push(Effect::Abort { conn });
                let after = timing.connect_timeout;
                self.lost(now, Ending::expired(Expired::Handshake { after }));
            }
            State::Established { .. } => self.liveness_timeout(now),
            State::Closing {
                conn,
                ref reason,
                ref mut server,
                ..
            } => match server.take() {
                Some(ending) => {
                    self.log(
                        LogLevel::Normal,
                        presentation::server_kept_tcp_open_log(timing.close_timeout),
                    );
                    self.abort(now, conn, *ending);
                }
                None => {
                    let ending = Ending::from(presentation::close_unanswered_reason(reason));
                    self.abort(now, conn, ending);
                }
            },
        }
    }

    // ------------------------------------------------------------ internals

    pub(super) fn open(&mut self, now: Instant) {
        self.next_conn += 1;
        let conn = ConnId(self.next_conn);
        self.state = State::Connecting { conn, since: now };
        self.show(ConnectionState::Connecting {
            attempt: self.attempt + 1,
        });
        let route = self
            .settings
            .route
            .as_ref()
            .map_or_else(String::new, |via| format!(" {via}"));
        self.extended(format!(
            "connecting to {}{route} (attempt {})",
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
                self.show(ConnectionState::Disconnected {
                    why: Some(Ending::from(why)),
                });
                self.log(LogLevel::Normal, format!("{why}: reconnect cancelled"));
            }
            State::Connecting { conn, .. } => {
                // No Connected was fired, so no Disconnected either.
                self.push(Effect::Abort { conn });
                self.state = State::Idle;
                self.show(ConnectionState::Disconnected {
                    why: Some(Ending::from(why)),
                });
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
                self.show(ConnectionState::Closing);
            }
            State::Closing { .. } => {}
        }
    }
    /// A TCP connect that never reached Connected: no trigger, a log line,
    /// the status, and a retry per policy.
    fn connect_failed(&mut self, now: Instant, ending: Ending) {
        self.log(
            LogLevel::Critical,
            presentation::connect_failed_log(&self.settings.display_url, &ending),
        );
        self.record(&ending);
        self.after_loss(now, Loss::ConnectFailed { ending });
    }

    /// Drops `conn` without a close handshake and reports the loss, with
    /// the messages the driver still held for it (`set_unwritten`): they
    /// go with the connection, and the reason says so.
    pub(super) fn abort(&mut self, now: Instant, conn: ConnId, mut ending: Ending) {
        self.push(Effect::Abort { conn });
        let unwritten = std::mem::take(&mut self.unwritten);
        if unwritten > 0 {
            ending
                .reason
                .push_str(&presentation::unsent_note(unwritten));
        }
        self.lost(now, ending);
    }

    /// A connection that reached Connected ended: Disconnected fires once.
    fn lost(&mut self, now: Instant, ending: Ending) {
        // Status first: a controller reacting to the trigger sees it.
        self.log(LogLevel::Normal, presentation::disconnected_log(&ending));
        self.record(&ending);
        let reason = Bytes::from(ending.reason.clone().into_bytes());
        let loss = Loss::Disconnected { ending };
        self.show(self.state_after(loss.clone()));
        self.fire(Trigger::Disconnected, reason);
        self.after_loss(now, loss);
    }

    /// Last Error and Last Close.
    fn record(&mut self, ending: &Ending) {
        if let Some(error) = presentation::last_error(ending) {
            self.set(StatusKey::LastError, error);
        }
        if let Some(close) = &ending.close {
            self.set(StatusKey::LastClose, close.to_string());
        }
    }
}
