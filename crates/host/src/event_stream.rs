//! `GET /events`: the status page's live feed, as Server-Sent Events.
//!
//! A stream lasts as long as the page stays open, and tiny_http writes a
//! response on the thread that answers it; so each stream gets a thread of
//! its own (at most [`MAX_CLIENTS`]) and the HTTP worker is free at once.
//! The response is written by hand, one HTTP chunk per batch of events,
//! flushed at once: tiny_http's own chunked encoder holds back 8 KiB before
//! it sends anything, which would stall a live page.
//!
//! Events, each `data:` one line of JSON:
//!
//! - `snapshot`, first on every connection (a page that reconnects starts
//!   over from it): `{"now", "instances": [{"instance", "status": […]}],
//!   "events": [log…]}` — the status of every instance and the recent-events
//!   ring, oldest first;
//! - `status`: `{"instance", "now", "key", "label", "value", "timestamp"}`
//!   (plus `"connection"` for Connection State, see `page::status_view`);
//! - `log`: `{"time", "kind": "trigger"|"action"|"error", "instance", "name",
//!   "source", "detail", "variables", "error"}`.
//!
//! The subscription is taken before the status is read, so a change cannot
//! fall between the snapshot and the stream. Everything sent comes from the
//! ring and status variables, which hold no secret (action properties are in
//! their shown form, secrets as "(secret)"). A comment every [`KEEP_ALIVE`]
//! keeps the connection in use, so a page that went away is noticed at the
//! next write and its thread ends.

use std::io::Write;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Local, SecondsFormat};
use serde_json::{Value, json};
use tiny_http::Request;

use super::page;
use super::state::{HostState, LiveEvent, RecentEvent, RecentEventKind};

/// Open streams at most (one thread each).
pub const MAX_CLIENTS: usize = 32;

/// The longest a stream stays silent.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How long a page waits before it reconnects (the SSE `retry` field).
const RETRY_MS: u32 = 2000;

/// Events written in one chunk at most, so a flood is sent in pieces.
const BATCH: usize = 256;

/// Why a stream was not started: the HTTP status and a message.
pub type Refusal = (u16, String);

/// The open streams of one HTTP server.
#[derive(Default)]
pub struct EventStreams {
    open: Arc<OpenStreams>,
}

#[derive(Default)]
struct OpenStreams {
    count: Mutex<usize>,
    changed: Condvar,
}

impl OpenStreams {
    fn count(&self) -> std::sync::MutexGuard<'_, usize> {
        self.count.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl EventStreams {
    /// Checks that a stream can start for `request`, and takes the snapshot
    /// it starts with; [`Opening::run`] then streams.
    pub fn open(&self, request: &Request, state: &HostState) -> Result<Opening, Refusal> {
        if *request.http_version() < (1, 1) {
            return Err((505, "/events needs HTTP/1.1 (a chunked stream)".to_string()));
        }
        let slot = Slot::take(&self.open).ok_or_else(|| {
            (
                503,
                format!(
                    "too many live status pages are open (at most {MAX_CLIENTS}); close some and reload"
                ),
            )
        })?;
        let subscription = state
            .recent
            .subscribe()
            .ok_or_else(|| (503, "the host is shutting down".to_string()))?;
        let snapshot = json!({
            "now": now(),
            "instances": page::all_status(state),
            "events": subscription.recent.iter().map(log_json).collect::<Vec<Value>>(),
        });
        Ok(Opening {
            slot,
            events: subscription.events,
            first: format!("retry: {RETRY_MS}\n{}", frame("snapshot", &snapshot)),
            allowed: Box::new(|| true),
        })
    }

    /// Waits until every stream has ended (after the feed closed), at most
    /// `timeout`: a stream stuck writing to a page that stopped reading
    /// cannot be interrupted. Returns how many are still open.
    pub fn wait_ended(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let mut count = self.open.count();
        while *count > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            count = self
                .open
                .changed
                .wait_timeout(count, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        *count
    }

    /// How many streams are open now.
    #[cfg(test)]
    pub fn count(&self) -> usize {
        *self.open.count()
    }
}

/// A stream about to start: its place, its feed and its first event.
pub struct Opening {
    slot: Slot,
    events: Receiver<Arc<LiveEvent>>,
    first: String,
    /// Asked before every write: false ends the stream (its session or
    /// token was removed; the page reconnects and is refused).
    allowed: Box<dyn Fn() -> bool + Send>,
}

impl Opening {
    /// Ends the stream, at its next write, once `allowed` says no.
    pub fn while_allowed(self, allowed: impl Fn() -> bool + Send + 'static) -> Opening {
        Opening {
            allowed: Box::new(allowed),
            ..self
        }
    }

    /// Takes over the request and streams to it on a thread of its own.
    pub fn run(self, request: Request, state: Arc<HostState>) {
        let out = request.into_writer();
        let spawned = std::thread::Builder::new()
            .name("wsio-events".to_string())
            .spawn(move || {
                let _slot = self.slot;
                stream(out, &self.first, &self.events, &state, &self.allowed);
            });
        if let Err(e) = spawned {
            // The connection goes with the thread's closure; the page retries.
            log::error!("cannot start a thread for a live status page: {e}");
        }
    }
}

/// One of the [`MAX_CLIENTS`] places, given back when dropped.
struct Slot(Arc<OpenStreams>);

impl Slot {
    fn take(open: &Arc<OpenStreams>) -> Option<Slot> {
        let mut count = open.count();
        if *count >= MAX_CLIENTS {
            return None;
        }
        *count += 1;
        Some(Slot(open.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        *self.0.count() -= 1;
        self.0.changed.notify_all();
    }
}

/// Writes the response until the feed ends (host stopping, page too slow)
/// or a write fails (the page went away).
fn stream(
    mut out: Box<dyn Write + Send>,
    first: &str,
    events: &Receiver<Arc<LiveEvent>>,
    state: &HostState,
    allowed: &dyn Fn() -> bool,
) {
    let head = "HTTP/1.1 200 OK\r\n\
                Content-Type: text/event-stream; charset=utf-8\r\n\
                Cache-Control: no-store\r\n\
                X-Content-Type-Options: nosniff\r\n\
                Transfer-Encoding: chunked\r\n\r\n";
    if out.write_all(head.as_bytes()).is_err() || write_chunk(&mut out, first).is_err() {
        return;
    }
    loop {
        let batch = match events.recv_timeout(KEEP_ALIVE) {
            Ok(event) => {
                let mut batch = live_frame(state, &event);
                for event in events.try_iter().take(BATCH - 1) {
                    batch.push_str(&live_frame(state, &event));
                }
                Some(batch)
            }
            Err(RecvTimeoutError::Timeout) => Some(": keep-alive\n\n".to_string()),
            Err(RecvTimeoutError::Disconnected) => None,
        };
        // The feed ended, or the page's session or token is gone.
        let Some(batch) = batch.filter(|_| allowed()) else {
            // The last chunk: the page sees the stream end and reconnects.
            let _ = out.write_all(b"0\r\n\r\n").and_then(|()| out.flush());
            return;
        };
        if write_chunk(&mut out, &batch).is_err() {
            log::debug!("a live status page went away");
            return;
        }
    }
}

fn write_chunk(out: &mut dyn Write, data: &str) -> std::io::Result<()> {
    write!(out, "{:x}\r\n{data}\r\n", data.len())?;
    out.flush()
}

fn live_frame(state: &HostState, event: &LiveEvent) -> String {
    match event {
        LiveEvent::Recent(event) => frame("log", &log_json(event)),
        LiveEvent::Status {
            instance,
            key,
            value,
            timestamp,
        } => {
            // An instance an apply removed since: its page is reloading.
            let config = state.config();
            let Some(running) = config.instance_by_id(*instance) else {
                return String::new();
            };
            let mut status = page::status_view(running.manifest(), key, value, timestamp);
            status["instance"] = running.name.as_str().into();
            status["now"] = now().into();
            frame("status", &status)
        }
        LiveEvent::Project(applied) => frame("project", applied),
    }
}

/// One SSE event. JSON text has no raw line break, so it is one data line.
fn frame(event: &str, data: &Value) -> String {
    format!("event: {event}\ndata: {data}\n\n")
}

/// A recent event as the page's log shows it.
pub fn log_json(event: &RecentEvent) -> Value {
    json!({
        "time": rfc3339(&event.time),
        "kind": match event.kind {
            RecentEventKind::TriggerFired => "trigger",
            RecentEventKind::ActionRun => "action",
            RecentEventKind::ActionError => "error",
        },
        "instance": event.instance,
        "name": event.name,
        "source": event.source,
        "detail": event.detail,
        "variables": event.variables,
        "error": event.error,
    })
}

/// The form the module stamps status with: `2026-11-21T06:34:21.123+00:00`.
fn rfc3339(time: &DateTime<Local>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, false)
}

fn now() -> String {
    rfc3339(&Local::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_one_event_with_one_data_line() {
        let frame = frame("log", &json!({"detail": "two\nlines"}));
        assert_eq!(frame, "event: log\ndata: {\"detail\":\"two\\nlines\"}\n\n");
    }

    #[test]
    fn chunks_carry_their_length_in_hex() {
        let mut out = Vec::new();
        write_chunk(&mut out, &"x".repeat(26)).unwrap();
        assert_eq!(out, format!("1a\r\n{}\r\n", "x".repeat(26)).into_bytes());
    }

    #[test]
    fn log_events_name_their_kind_and_keep_what_was_shown() {
        let event = RecentEvent {
            time: Local::now(),
            kind: RecentEventKind::ActionError,
            instance: "a".into(),
            name: "Connect".into(),
            source: "http".into(),
            detail: r#"{"Bearer Token":"(secret)"}"#.into(),
            variables: vec!["ping".into()],
            error: Some("nope".into()),
        };
        let json = log_json(&event);
        assert_eq!(json["kind"], "error");
        assert_eq!(json["detail"], r#"{"Bearer Token":"(secret)"}"#);
        assert_eq!(json["variables"], json!(["ping"]));
        assert_eq!(json["error"], "nope");
        assert!(json["time"].as_str().unwrap().contains('T'));
    }

    #[test]
    fn at_most_max_clients_slots_are_taken_and_they_come_back() {
        let streams = EventStreams::default();
        let slots: Vec<Slot> = (0..MAX_CLIENTS)
            .map(|_| Slot::take(&streams.open).unwrap())
            .collect();
        assert!(Slot::take(&streams.open).is_none());
        assert_eq!(streams.count(), MAX_CLIENTS);
        drop(slots);
        assert_eq!(streams.count(), 0);
        assert_eq!(streams.wait_ended(Duration::ZERO), 0);
    }
}
