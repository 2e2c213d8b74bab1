//! Status variables: what the controller shows on its status page.
//!
//! Each variable has a key and label from the manifest, a value, and the
//! timestamp of its last change: ISO 8601 / RFC 3339 in local time with
//! milliseconds and the UTC offset, e.g. `2026-11-21T06:34:21.123+00:00`.
//!
//! Values are set as the machine runs but pushed to the host in batches
//! ([`StatusChanges::apply`]): under a flood of messages Last Received
//! changes thousands of times a second, and formatting and pushing each one
//! would cost more than receiving the message. The driver flushes whenever
//! it has drained what the socket had ready, so the page lags by at most one
//! batch and the timestamp is the time of that batch.
//!
//! An instance keeps one copy of its values ([`StatusVariables`], shared
//! with the instance handle), holding times rather than their text and the
//! initial values as static text: an idle instance's status costs well
//! under 1 KiB. The [`StatusVariable`]s the host sees are made on demand.

use crate::vocabulary::StatusKey;
use bytes::Bytes;
use chrono::{DateTime, Local, SecondsFormat};
use serde::Serialize;
use std::borrow::Cow;

const COUNT: usize = StatusKey::ALL.len();

/// One status variable as shown to the controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusVariable {
    pub key: &'static str,
    pub label: &'static str,
    pub value: String,
    /// When the value last changed (see the module doc for the format).
    pub timestamp: String,
}

/// A value waiting for the next flush. Received payloads are kept as the
/// refcounted frame bytes, so a burst costs no copy or UTF-8 conversion.
#[derive(Debug)]
enum Pending {
    Text(String),
    Payload(Bytes),
}

/// Formats a time the way status timestamps are shown.
pub fn format_timestamp(at: DateTime<Local>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, false)
}

/// One variable's value and the time it last changed.
#[derive(Debug)]
struct Slot {
    value: Cow<'static, str>,
    changed: DateTime<Local>,
}

/// The current status variables of one instance.
#[derive(Debug)]
pub struct StatusVariables {
    slots: [Slot; COUNT],
}

impl Default for StatusVariables {
    fn default() -> Self {
        Self::new()
    }
}

impl StatusVariables {
    /// Initial values ([`StatusKey::initial_value`]), stamped with the
    /// creation time.
    pub fn new() -> Self {
        let now = Local::now();
        StatusVariables {
            slots: StatusKey::ALL.map(|key| Slot {
                value: Cow::Borrowed(key.initial_value()),
                changed: now,
            }),
        }
    }

    /// All variables in manifest order.
    pub fn snapshot(&self) -> Vec<StatusVariable> {
        StatusKey::ALL
            .iter()
            .map(|&key| self.variable(key, format_timestamp(self.slots[key.index()].changed)))
            .collect()
    }

    /// The current value of one variable.
    #[cfg(test)]
    pub fn value(&self, key: StatusKey) -> &str {
        &self.slots[key.index()].value
    }

    fn variable(&self, key: StatusKey, timestamp: String) -> StatusVariable {
        StatusVariable {
            key: key.key(),
            label: key.label(),
            value: self.slots[key.index()].value.clone().into_owned(),
            timestamp,
        }
    }
}

/// Values set since the last flush: what the driver collects while it
/// drains the socket, applied to the [`StatusVariables`] in one go. A short
/// list rather than a slot per variable: a burst sets two or three, and an
/// idle instance holds nothing here.
#[derive(Debug)]
pub struct StatusChanges {
    pending: Vec<(StatusKey, Pending)>,
}

impl Default for StatusChanges {
    fn default() -> Self {
        Self::new()
    }
}

impl StatusChanges {
    pub fn new() -> Self {
        StatusChanges {
            pending: Vec::new(),
        }
    }

    /// Sets a value; it is pushed at the next flush.
    pub fn set(&mut self, key: StatusKey, value: impl Into<String>) {
        self.put(key, Pending::Text(value.into()));
    }

    /// Sets a value from payload bytes (converted lossily at flush).
    pub fn set_payload(&mut self, key: StatusKey, payload: Bytes) {
        self.put(key, Pending::Payload(payload));
    }

    fn put(&mut self, key: StatusKey, value: Pending) {
        match self.pending.iter_mut().find(|(k, _)| *k == key) {
            Some((_, slot)) => *slot = value,
            None => self.pending.push((key, value)),
        }
    }

    /// Whether anything waits for a flush.
    pub fn is_dirty(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Whether what waits is traffic only ([`StatusKey::is_traffic`]).
    pub fn is_traffic_only(&self) -> bool {
        self.pending.iter().all(|(key, _)| key.is_traffic())
    }

    /// Applies the pending values to `current`, stamped `at`, and returns
    /// the changed variables in manifest order.
    pub fn apply(
        &mut self,
        current: &mut StatusVariables,
        at: DateTime<Local>,
    ) -> Vec<StatusVariable> {
        if !self.is_dirty() {
            return Vec::new();
        }
        let stamp = format_timestamp(at);
        // Taken, not drained: the list's buffer goes with the burst.
        let mut pending = std::mem::take(&mut self.pending);
        pending.sort_unstable_by_key(|(key, _)| key.index());
        pending
            .into_iter()
            .map(|(key, value)| {
                let slot = &mut current.slots[key.index()];
                slot.value = Cow::Owned(match value {
                    Pending::Text(s) => s,
                    Pending::Payload(b) => String::from_utf8_lossy(&b).into_owned(),
                });
                slot.changed = at;
                current.variable(key, stamp.clone())
            })
            .collect()
    }
}

/// The snapshot as JSON: `[{"key","label","value","timestamp"}]`.
pub fn to_json(vars: &[StatusVariable]) -> String {
    serde_json::to_string(vars).unwrap_or_else(|_| "[]".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_values_and_labels_come_from_the_manifest() {
        let s = StatusVariables::new();
        assert_eq!(s.value(StatusKey::MessagesIn), "0");
        let snap = s.snapshot();
        assert_eq!(snap.len(), StatusKey::ALL.len());
        assert_eq!(snap[0].key, "ConnectionStatus");
        assert_eq!(snap[0].label, "Connection Status");
        assert_eq!(snap[0].value, "Disconnected");
        assert_eq!(snap[1].label, "Last Sent");
        assert_eq!(snap[2].label, "Last Received");
        assert_eq!(s.value(StatusKey::ConnectionState), "disconnected");
        assert_eq!(
            crate::machine::ConnectionState::INITIAL.word(),
            s.value(StatusKey::ConnectionState)
        );
    }

    #[test]
    fn keys_fit_the_controller_framework() {
        // At most 50 status variables, each key at most 20 alphanumerics.
        assert!(StatusKey::ALL.len() <= 50);
        for key in StatusKey::ALL {
            let key = key.key();
            assert!(key.len() <= 20, "{key}");
            assert!(key.chars().all(|c| c.is_ascii_alphanumeric()), "{key}");
        }
    }

    #[test]
    fn changes_are_coalesced_until_flush_and_stamped() {
        let mut s = StatusVariables::new();
        let mut changes = StatusChanges::new();
        for i in 0..1000 {
            changes.set_payload(StatusKey::LastReceived, Bytes::from(format!("m{i}")));
        }
        assert_eq!(
            s.value(StatusKey::LastReceived),
            "",
            "not applied before flush"
        );
        let at = Local::now();
        let changed = changes.apply(&mut s, at);
        assert_eq!(changed.len(), 1, "one push for the whole batch");
        assert_eq!(changed[0].value, "m999");
        assert_eq!(changed[0].timestamp, format_timestamp(at));
        assert!(changes.apply(&mut s, at).is_empty());
        // Several changes come out in manifest order, each once.
        changes.set(StatusKey::BytesOut, "9");
        changes.set(StatusKey::ConnectionStatus, "Established");
        changes.set(StatusKey::BytesOut, "10");
        let changed = changes.apply(&mut s, at);
        let keys: Vec<_> = changed.iter().map(|v| (v.key, v.value.as_str())).collect();
        assert_eq!(
            keys,
            [("ConnectionStatus", "Established"), ("BytesOut", "10")]
        );
        let snapshot = s.snapshot();
        assert_eq!(snapshot[2].value, "m999");
        assert_eq!(snapshot[2].timestamp, format_timestamp(at));
    }

    #[test]
    fn timestamp_format_is_rfc3339_with_millis_and_offset() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-11-21T06:34:21.123+02:00").unwrap();
        let local = t.with_timezone(&Local);
        let text = format_timestamp(local);
        let back = chrono::DateTime::parse_from_rfc3339(&text).unwrap();
        assert_eq!(back, t);
        assert_eq!(text.len(), "2026-11-21T06:34:21.123+00:00".len());
    }

    #[test]
    fn json_has_the_controller_shape() {
        let s = StatusVariables::new();
        let v: serde_json::Value = serde_json::from_str(&to_json(&s.snapshot())).unwrap();
        assert_eq!(v[0]["key"], "ConnectionStatus");
        assert_eq!(v[0]["label"], "Connection Status");
        assert!(v[0]["timestamp"].is_string());
    }
}
