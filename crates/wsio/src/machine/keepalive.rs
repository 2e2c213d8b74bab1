//! Keep-alive: any frame from the server is proof of life; a ping after
//! Keep Alive Interval of silence, and a link that stays silent past Pong
//! Timeout (or Idle Timeout, pings or not) is dropped as dead.

use super::{ConnId, Effect, Ending, Expired, Machine, State};
use crate::presentation::secs;
use crate::vocabulary::StatusKey;
use std::time::Instant;

impl Machine {
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

    /// Flow control: the driver stops (`true`) or resumes (`false`)
    /// reading the connection. While it does not read, no pong or other
    /// frame can be seen, so keep-alive is suspended: no ping, no Pong
    /// Timeout, no Idle Timeout. On resuming, the silence is counted from
    /// `now`, as if a frame had just arrived.
    pub fn handle_reading_paused(&mut self, now: Instant, paused: bool) {
        if self.reading_paused == paused {
            return;
        }
        self.reading_paused = paused;
        if !paused
            && let State::Established {
                last_rx, ping_sent, ..
            } = &mut self.state
        {
            *last_rx = now;
            *ping_sent = None;
        }
    }

    /// A keep-alive or idle deadline passed while established: ping, or
    /// drop a dead link.
    pub(super) fn liveness_timeout(&mut self, now: Instant) {
        if self.reading_paused {
            return;
        }
        let timing = self.settings.timing;
        let State::Established {
            conn,
            last_rx,
            ref mut ping_sent,
            ..
        } = self.state
        else {
            return;
        };
        if let Some(idle) = timing.idle_timeout
            && now >= last_rx + idle
        {
            self.abort(now, conn, Ending::expired(Expired::Idle { after: idle }));
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
                let ending = Ending::expired(Expired::Pong {
                    after: timing.pong_timeout,
                });
                self.abort(now, conn, ending);
            }
            _ => {}
        }
    }
}
