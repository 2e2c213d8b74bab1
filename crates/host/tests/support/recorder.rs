//! A [`Host`] that records what an instance reports, for tests to wait on:
//! the one recording host of every Rust-API test (client, interop and fault
//! suites).
//!
//! Like the fixture servers' observations, every wait blocks on a condition
//! variable with a timeout: no sleeps. It stays cheap under a million
//! messages: trigger counts are kept as they arrive (a wait predicate costs
//! O(1)), messages can be checked on arrival instead of kept
//! ([`Recorder::checking`]), log lines are capped, and every log line,
//! status value and trigger payload is scanned for the [`SECRETS`] as it
//! arrives. Panics on the module's driver thread, where every callback is
//! made, are counted ([`driver_panics`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use wsio::Host;
use wsio::LogLevel;
use wsio::StatusVariable;
use wsio::Trigger;

use super::TIMEOUT;

/// The bearer token every fault test connects with.
pub const TOKEN: &str = "TOKEN-s3cr3t-123";
/// The Basic-auth password every fault test configures.
pub const PASSWORD: &str = "PASSWD-s3cr3t-456";
/// What must never be shown: in no log line, status value or trigger data.
pub const SECRETS: [&str; 2] = [TOKEN, PASSWORD];

/// Log lines kept for assertions and failure messages; later ones are
/// counted and scanned, not kept (Log Comms under a flood).
const LOG_CAP: usize = 20_000;

/// Checks message `index` (0-based) as it arrives.
pub type MessageCheck = Box<dyn Fn(usize, &[u8]) -> bool + Send + Sync>;

/// Everything an instance reported so far, in order.
#[derive(Clone, Debug, Default)]
pub struct Recorded {
    /// Every trigger, in order.
    pub triggers: Vec<Trigger>,
    /// For each of `triggers`: whether it was a binary message.
    pub binary: Vec<bool>,
    /// The data of every trigger other than Messages Received (reasons).
    pub reasons: Vec<(Trigger, String)>,
    /// The messages, unless the recorder checks them on arrival instead.
    pub messages: Vec<Vec<u8>>,
    pub message_count: usize,
    pub message_bytes: usize,
    /// Messages the check refused, and the first of them.
    pub mismatches: usize,
    pub first_mismatch: Option<String>,
    counts: [usize; Trigger::ALL.len()],
    /// Every status change pushed, in order.
    pub status: Vec<StatusVariable>,
    /// When each of `status` was pushed (the clock Instant reads).
    pub status_at: Vec<Instant>,
    /// The first log lines ([`LOG_CAP`]) and how many there were.
    pub logs: Vec<(LogLevel, String)>,
    pub log_count: usize,
    /// When each connection attempt started (the "connecting to" line of
    /// Extended Logging).
    pub attempts: Vec<Instant>,
    /// The automatic ones among them (Auto-Reconnect: attempt 2 and on;
    /// a Connect or Reset Reconnect action starts again at attempt 1).
    pub retries: Vec<Instant>,
    /// Where a secret showed up.
    pub leaks: Vec<String>,
}

impl Recorded {
    pub fn count(&self, trigger: Trigger) -> usize {
        self.counts[index(trigger)]
    }

    /// Trigger names in order.
    pub fn trigger_names(&self) -> Vec<Trigger> {
        self.triggers.clone()
    }

    /// The reasons (data) of every firing of `trigger`.
    pub fn reasons_of(&self, trigger: Trigger) -> Vec<String> {
        self.reasons
            .iter()
            .filter(|(t, _)| *t == trigger)
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// The data of every firing of `trigger`, as text (for Messages
    /// Received: the kept messages).
    pub fn data_of(&self, trigger: Trigger) -> Vec<String> {
        if trigger == Trigger::MessagesReceived {
            self.texts()
        } else {
            self.reasons_of(trigger)
        }
    }

    /// The data of every trigger fired, as text: kept messages, then
    /// reasons.
    pub fn all_data(&self) -> Vec<String> {
        let mut all = self.texts();
        all.extend(self.reasons.iter().map(|(_, r)| r.clone()));
        all
    }

    /// Whether each Messages Received was a binary message, in order.
    pub fn message_binary_flags(&self) -> Vec<bool> {
        self.triggers
            .iter()
            .zip(&self.binary)
            .filter(|(t, _)| **t == Trigger::MessagesReceived)
            .map(|(_, b)| *b)
            .collect()
    }

    /// The kept messages as text.
    pub fn texts(&self) -> Vec<String> {
        self.messages
            .iter()
            .map(|m| String::from_utf8_lossy(m).into_owned())
            .collect()
    }

    /// The latest pushed value of a status variable.
    pub fn status_value(&self, key: &str) -> Option<String> {
        self.last_status(key).map(|v| v.value.clone())
    }

    pub fn last_status(&self, key: &str) -> Option<&StatusVariable> {
        self.status.iter().rev().find(|v| v.key == key)
    }

    /// Whether the latest value of `key` contains `text`.
    pub fn status_has(&self, key: &str, text: &str) -> bool {
        self.status_value(key).is_some_and(|v| v.contains(text))
    }

    /// Every log line, one per line, for searching.
    pub fn log_text(&self) -> String {
        self.logs
            .iter()
            .map(|(l, m)| format!("{l:?}: {m}\n"))
            .collect()
    }

    /// A summary for failure messages.
    pub fn describe(&self) -> String {
        let status: Vec<String> = self
            .status
            .iter()
            .map(|v| format!("{} = {}", v.key, v.value))
            .collect();
        let mut log = self.log_text();
        if log.len() > 8000 {
            let mut cut = log.len() - 8000;
            while !log.is_char_boundary(cut) {
                cut += 1;
            }
            log = format!("…{}", &log[cut..]);
        }
        format!(
            "triggers: {}\nreasons: {:?}\nmessages: {}\nstatus: {status:#?}\nlog:\n{log}",
            shorten(&self.triggers),
            self.reasons,
            self.message_count,
        )
    }
}

fn index(trigger: Trigger) -> usize {
    Trigger::ALL
        .iter()
        .position(|t| *t == trigger)
        .expect("every trigger is in Trigger::ALL")
}

/// Trigger lists shortened around long runs of messages.
pub fn shorten(triggers: &[Trigger]) -> String {
    let mut out = Vec::new();
    let mut run = 0usize;
    for t in triggers {
        if *t == Trigger::MessagesReceived {
            run += 1;
            continue;
        }
        if run > 0 {
            out.push(format!("MessagesReceived×{run}"));
            run = 0;
        }
        out.push(format!("{t:?}"));
    }
    if run > 0 {
        out.push(format!("MessagesReceived×{run}"));
    }
    out.join(", ")
}

/// The recording host. Pass `recorder.host()` to `Instance::new` or
/// `Instance::from_json`.
pub struct Recorder {
    state: Mutex<Recorded>,
    changed: Condvar,
    check: Option<MessageCheck>,
    pub created: Instant,
}

impl Recorder {
    pub fn new() -> Arc<Recorder> {
        Self::build(None)
    }

    /// Messages are checked by `check` as they arrive and not kept.
    pub fn checking(check: impl Fn(usize, &[u8]) -> bool + Send + Sync + 'static) -> Arc<Recorder> {
        Self::build(Some(Box::new(check)))
    }

    fn build(check: Option<MessageCheck>) -> Arc<Recorder> {
        watch_driver_panics();
        Arc::new(Recorder {
            state: Mutex::new(Recorded::default()),
            changed: Condvar::new(),
            check,
            created: Instant::now(),
        })
    }

    pub fn host(self: &Arc<Self>) -> Arc<dyn Host> {
        self.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Recorded> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the record under the lock (no copy).
    pub fn read<T>(&self, f: impl FnOnce(&Recorded) -> T) -> T {
        f(&self.lock())
    }

    pub fn snapshot(&self) -> Recorded {
        self.lock().clone()
    }

    /// Blocks until `predicate` holds (true) or `timeout` passes (false).
    pub fn wait_for(
        &self,
        mut predicate: impl FnMut(&Recorded) -> bool,
        timeout: Duration,
    ) -> bool {
        let guard = self.lock();
        let (guard, _) = self
            .changed
            .wait_timeout_while(guard, timeout, |r| !predicate(r))
            .unwrap_or_else(|p| p.into_inner());
        predicate(&guard)
    }

    /// Waits up to [`TIMEOUT`] for `predicate`, or panics naming `what` and
    /// what was recorded.
    pub fn expect(&self, what: &str, predicate: impl FnMut(&Recorded) -> bool) {
        self.expect_within(what, TIMEOUT, predicate);
    }

    /// Waits up to `limit` for `predicate`, or panics naming `what`.
    pub fn expect_within(
        &self,
        what: &str,
        limit: Duration,
        predicate: impl FnMut(&Recorded) -> bool,
    ) {
        if !self.wait_for(predicate, limit) {
            panic!(
                "timed out after {limit:?} waiting for {what}\n{}",
                self.lock().describe()
            );
        }
    }

    fn record(&self, change: impl FnOnce(&mut Recorded)) {
        change(&mut self.lock());
        self.changed.notify_all();
    }
}

/// Which secret `text` shows, if any, described for a failure message.
pub fn leaked(what: &str, text: &str) -> Option<String> {
    SECRETS
        .iter()
        .find(|s| text.contains(*s))
        .map(|s| format!("{s:?} in {what}: {text:.300}"))
}

impl Host for Recorder {
    fn fire_trigger(&self, trigger: Trigger, data: &[u8], binary: bool) {
        self.record(|r| {
            r.triggers.push(trigger);
            r.binary.push(binary);
            r.counts[index(trigger)] += 1;
            if SECRETS
                .iter()
                .any(|s| data.windows(s.len()).any(|w| w == s.as_bytes()))
            {
                r.leaks.push(format!("a secret in the data of {trigger:?}"));
            }
            if trigger != Trigger::MessagesReceived {
                r.reasons
                    .push((trigger, String::from_utf8_lossy(data).into_owned()));
                return;
            }
            let n = r.message_count;
            r.message_count += 1;
            r.message_bytes += data.len();
            match &self.check {
                None => r.messages.push(data.to_vec()),
                Some(check) => {
                    if !check(n, data) {
                        r.mismatches += 1;
                        if r.first_mismatch.is_none() {
                            let shown = String::from_utf8_lossy(&data[..data.len().min(100)]);
                            r.first_mismatch = Some(format!("message {n}: {shown:?}"));
                        }
                    }
                }
            }
        });
    }

    fn status_changed(&self, variable: &StatusVariable) {
        self.record(|r| {
            if let Some(leak) = leaked(variable.key, &variable.value) {
                r.leaks.push(leak);
            }
            r.status.push(variable.clone());
            r.status_at.push(Instant::now());
        });
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.record(|r| {
            if let Some(leak) = leaked("a log line", message) {
                r.leaks.push(leak);
            }
            if message.starts_with("connecting to ") {
                let now = Instant::now();
                r.attempts.push(now);
                if !message.ends_with("(attempt 1)") {
                    r.retries.push(now);
                }
            }
            r.log_count += 1;
            if r.logs.len() < LOG_CAP {
                r.logs.push((level, message.to_owned()));
            }
        });
    }
}

static DRIVER_PANICS: AtomicUsize = AtomicUsize::new(0);

/// Counts panics on the module's driver thread (where every instance runs
/// and every host callback is made), then lets the previous hook report.
fn watch_driver_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() == Some("wsio-driver") {
                DRIVER_PANICS.fetch_add(1, Ordering::SeqCst);
            }
            previous(info);
        }));
    });
}

/// Panics seen on the driver thread so far, in this test binary.
pub fn driver_panics() -> usize {
    DRIVER_PANICS.load(Ordering::SeqCst)
}
