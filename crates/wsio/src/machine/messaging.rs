//! Messaging: Send Message (paced by Max Send Rate, queued while
//! disconnected), the send queue's drop policy and expiry, and received
//! messages (Messages Received, paced by Trigger Rate Limit).
//!
//! Two paths per direction: the general one through effects
//! ([`Machine::handle_send`], [`Machine::handle_message`]) and the driver's
//! per-message fast path ([`Machine::send_message`],
//! [`Machine::receive_message`]) that hands the message straight back when
//! nothing waits before it. The fast path's result is the message itself:
//! dropping it would lose the message, so both are `#[must_use]`.

use super::{ConnId, Effect, LogLevel, Machine, Outbound, Received, State};
use crate::presentation::secs;
use crate::vocabulary::Trigger;
use bytes::Bytes;
use std::time::{Duration, Instant};

/// A token bucket in virtual time.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    at: Option<Instant>,
}

impl Bucket {
    pub(super) fn new(rate: u32, burst: bool) -> Bucket {
        let rate = f64::from(rate);
        let capacity = if burst { rate.max(1.0) } else { 1.0 };
        Bucket {
            rate,
            capacity,
            tokens: capacity,
            at: None,
        }
    }

    pub(super) fn unlimited(&self) -> bool {
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
    pub(super) fn next(&self, now: Instant) -> Instant {
        let missing = (1.0 - self.tokens).max(0.0);
        let at = self.at.unwrap_or(now);
        at + Duration::from_secs_f64(missing / self.rate)
    }
}

impl Machine {
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
    #[must_use = "a returned message must be written, or it is lost"]
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

    #[cfg(test)]
    /// A message arrived: fires Messages Received (one per message, in
    /// order, unless Trigger Rate Limit suppresses it) and sets Last
    /// Received. Binary payloads are shown as lowercase hex (or as text with
    /// Binary As Text, when valid UTF-8).
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
    #[must_use = "a returned message must fire Messages Received, or it is lost"]
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

    /// Sends a message now and counts it.
    pub(super) fn transmit(&mut self, conn: ConnId, message: Outbound) {
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
    pub(super) fn drop_queued(&mut self, n: usize, why: &str) {
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
    pub(super) fn flush_queue(&mut self, now: Instant) {
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

    pub(super) fn service_queue(&mut self, now: Instant) {
        if self.is_established() {
            self.flush_queue(now);
        } else {
            self.expire_queue(now);
        }
    }

    /// After a loss: paced messages wait only with Queue While Disconnected.
    pub(super) fn keep_or_drop_queue(&mut self) {
        if !self.settings.messaging.queue_while_disconnected || self.shutting_down {
            let n = self.queue.len();
            self.drop_queued(n, "the connection closed before they could be sent");
        }
    }

    /// The queue's next event: the next send token while established and
    /// paced, or the oldest message's expiry while waiting.
    pub(super) fn queue_deadline(&self) -> Option<Instant> {
        let (enqueued, _) = self.queue.front()?;
        if self.is_established() {
            (!self.send_bucket.unlimited()).then(|| self.send_bucket.next(*enqueued))
        } else {
            self.settings.messaging.queue_ttl.map(|ttl| *enqueued + ttl)
        }
    }
}
