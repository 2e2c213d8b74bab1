//! What a runner publishes: the status variables and counters to the host
//! (coalesced while messages flow, see [`STATUS_EVERY`]), and the state the
//! instance handle reads without waiting for the driver (established, the
//! state name, the Send Message backlog).

use super::runner::{Runner, STATUS_EVERY};
use crate::vocabulary::StatusKey;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl Runner {
    /// Publishes the outbox length as `Shared::unwritten` (the Send
    /// Message backlog also counts it), when it changed.
    pub(super) fn store_unwritten(&mut self) {
        let unwritten = self
            .connection
            .as_ref()
            .map_or((0, 0), |c| (c.outbox.len(), c.outbox_bytes));
        if unwritten != self.unwritten {
            // Bytes first: a Send Message that reads between the stores
            // sees at worst the old count with the new bytes.
            if unwritten.1 != self.unwritten.1 {
                self.shared
                    .unwritten_bytes
                    .store(unwritten.1, Ordering::SeqCst);
            }
            if unwritten.0 != self.unwritten.0 {
                self.shared.unwritten.store(unwritten.0, Ordering::SeqCst);
            }
            self.unwritten = unwritten;
        }
    }

    /// The loop's publish: traffic status waits while it was pushed less
    /// than `STATUS_EVERY` ago (a deadline brings it); anything else goes at
    /// once ([`Runner::publish`]).
    pub(super) fn publish_coalesced(&mut self) {
        self.stage_last_received();
        if let Some(at) = self.published_at
            && self.status.is_traffic_only()
        {
            let counters = self.machine.counters();
            let p = &self.published;
            let traffic_only = counters.dropped == p.dropped
                && counters.suppressed == p.suppressed
                && counters.queue_depth == p.queue_depth;
            let due = at + STATUS_EVERY;
            if traffic_only && Instant::now() < due {
                if self.status.is_dirty() || counters != self.published {
                    self.status_due.get_or_insert(due);
                }
                self.publish_state();
                return;
            }
        }
        self.publish();
    }

    /// Hands the newest message to the status list as Last Received.
    pub(super) fn stage_last_received(&mut self) {
        if let Some(data) = self.last_received.take() {
            self.status.set_payload(StatusKey::LastReceived, data);
        }
    }

    /// What Send Message and status reads check: up to date at once.
    pub(super) fn publish_state(&self) {
        self.shared
            .established
            .store(self.machine.is_established(), Ordering::Relaxed);
        *self
            .shared
            .state_name
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = self.machine.state_name();
    }

    /// Pushes the status changes (coalesced since the last push) to the
    /// host and the shared snapshot.
    pub(super) fn publish(&mut self) {
        self.stage_last_received();
        self.publish_state();
        self.status_due = None;
        let counters = self.machine.counters();
        if counters != self.published {
            let pairs = [
                (
                    StatusKey::MessagesIn,
                    counters.messages_in,
                    self.published.messages_in,
                ),
                (
                    StatusKey::MessagesOut,
                    counters.messages_out,
                    self.published.messages_out,
                ),
                (
                    StatusKey::BytesIn,
                    counters.bytes_in,
                    self.published.bytes_in,
                ),
                (
                    StatusKey::BytesOut,
                    counters.bytes_out,
                    self.published.bytes_out,
                ),
                (StatusKey::Dropped, counters.dropped, self.published.dropped),
                (
                    StatusKey::Suppressed,
                    counters.suppressed,
                    self.published.suppressed,
                ),
                (
                    StatusKey::QueueDepth,
                    counters.queue_depth as u64,
                    self.published.queue_depth as u64,
                ),
            ];
            for (key, now, before) in pairs {
                if now != before {
                    self.status.set(key, now.to_string());
                }
            }
            self.published = counters;
        }
        if !self.status.is_dirty() {
            return;
        }
        self.published_at = Some(Instant::now());
        // The values live once, in the shared state the instance handle
        // reads; only what changed is copied out for the host.
        let changed = {
            let mut current = self.shared.status.lock().unwrap_or_else(|e| e.into_inner());
            self.status.apply(&mut current, chrono::Local::now())
        };
        for variable in &changed {
            self.host.status_changed(variable);
        }
    }
}
