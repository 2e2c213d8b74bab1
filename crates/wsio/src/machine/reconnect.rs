//! Reconnect: what follows a loss (stay idle, wait for the network,
//! reconnect after a backoff with full jitter, or give up), and the Reset
//! Reconnect action.

use super::{ConnectionState, Effect, GiveUp, LogLevel, Loss, Machine, RECONNECT_FLOOR, State};
use crate::presentation;
use crate::vocabulary::StatusKey;
use crate::vocabulary::Trigger;
use bytes::Bytes;
use std::borrow::Cow;
use std::time::{Duration, Instant};

impl Machine {
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

    /// Decide what follows a loss: reconnect now (a Connect came while
    /// closing), later (auto-reconnect), give up, or stay idle.
    pub(super) fn after_loss(&mut self, now: Instant, loss: Loss) {
        self.state = State::Idle;
        self.keep_or_drop_queue();
        if self.shutting_down {
            self.show(loss.state());
            return;
        }
        if !self.network_up {
            self.show(ConnectionState::WaitingForNetwork { after: Some(loss) });
            return;
        }
        if std::mem::take(&mut self.connect_after_close) {
            self.show(loss.state());
            self.open(now);
            return;
        }
        if !(self.wanted && self.settings.auto_reconnect) {
            let state = self.state_after(loss);
            self.wanted = false;
            self.show(state);
            return;
        }
        let failures = self.attempt.saturating_add(1);
        let max = self.settings.reconnect.max_attempts;
        if loss.ending().fatal {
            self.give_up(GiveUp::Fatal {
                ending: loss.ending().clone(),
            });
        } else if max > 0 && failures >= max {
            self.give_up(GiveUp::MaxAttempts {
                failures,
                max,
                last: loss.ending().clone(),
            });
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
            self.show(ConnectionState::Reconnecting {
                at: until,
                delay,
                attempt: self.attempt + 1,
                after: loss,
            });
            self.extended(format!(
                "auto-reconnect: attempt {} in {} ms",
                self.attempt + 1,
                delay.as_millis()
            ));
        }
    }

    /// The state that shows `loss` when nothing reconnects at once: with
    /// Auto-Reconnect off after a Connect, it says that no retry follows (a
    /// Disconnect action's own ending needs no such note). The Disconnected
    /// trigger's status shows the same, so it is pushed once.
    pub(super) fn state_after(&self, loss: Loss) -> ConnectionState {
        // Reconnecting, connecting at once, waiting for the network and
        // shutting down each say what follows already.
        let something_follows = self.settings.auto_reconnect
            || self.connect_after_close
            || self.shutting_down
            || !self.network_up;
        if self.wanted && !something_follows {
            ConnectionState::NoRetry { after: loss }
        } else {
            loss.state()
        }
    }

    /// Auto-Reconnect stops: Gave Up fires; Connect or Reset Reconnect
    /// starts again.
    fn give_up(&mut self, why: GiveUp) {
        self.gave_up = true;
        self.log(LogLevel::Critical, presentation::gave_up_log(&why));
        self.set(StatusKey::NextRetry, "gave up".to_owned());
        let reason = presentation::give_up_reason(&why);
        self.show(ConnectionState::GaveUp { why });
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
}
