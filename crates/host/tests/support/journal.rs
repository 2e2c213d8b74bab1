//! The fault suite's host and its invariants.
//!
//! [`Journal`] records what an instance reports, like `Recorder`, but stays
//! cheap under a million messages: trigger counts are kept as they arrive
//! (a wait predicate costs O(1)), messages can be checked on arrival
//! instead of kept, log lines are capped, and every log line, status value
//! and trigger payload is scanned for the [`SECRETS`] as it arrives.
//!
//! [`assert_invariants`] is how every fault test ends: the checks that must
//! hold whatever the fault was (see its doc).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Once, mpsc};
use std::time::{Duration, Instant};

use wsio::instance::{Host, Instance};
use wsio::machine::LogLevel;
use wsio::matching::Trigger;
use wsio::status::StatusVariable;

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

/// Everything an instance reported, as far as the fault tests need it.
#[derive(Clone, Debug, Default)]
pub struct Entries {
    /// Every trigger, in order.
    pub triggers: Vec<Trigger>,
    /// The data of every trigger other than Messages Received (reasons).
    pub reasons: Vec<(Trigger, String)>,
    /// The messages, unless the journal checks them on arrival instead.
    pub messages: Vec<Vec<u8>>,
    pub message_count: usize,
    pub message_bytes: usize,
    /// Messages the check refused, and the first of them.
    pub mismatches: usize,
    pub first_mismatch: Option<String>,
    counts: [usize; Trigger::ALL.len()],
    /// Every status change, in order.
    pub status: Vec<StatusVariable>,
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

impl Entries {
    pub fn count(&self, trigger: Trigger) -> usize {
        self.counts[index(trigger)]
    }

    /// The reasons (data) of every firing of `trigger`.
    pub fn reasons_of(&self, trigger: Trigger) -> Vec<String> {
        self.reasons
            .iter()
            .filter(|(t, _)| *t == trigger)
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// The kept messages as text.
    pub fn texts(&self) -> Vec<String> {
        self.messages
            .iter()
            .map(|m| String::from_utf8_lossy(m).into_owned())
            .collect()
    }

    /// The latest value of a status variable.
    pub fn status_value(&self, key: &str) -> Option<String> {
        self.status
            .iter()
            .rev()
            .find(|v| v.key == key)
            .map(|v| v.value.clone())
    }

    /// Whether the latest value of `key` contains `text`.
    pub fn status_has(&self, key: &str, text: &str) -> bool {
        self.status_value(key).is_some_and(|v| v.contains(text))
    }

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
            "triggers: {:?}\nreasons: {:?}\nmessages: {}\nstatus: {status:#?}\nlog:\n{log}",
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
fn shorten(triggers: &[Trigger]) -> String {
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

/// The recording host of the fault suite. Pass `journal.host()` to
/// `Instance::from_json`.
pub struct Journal {
    state: Mutex<Entries>,
    changed: Condvar,
    check: Option<MessageCheck>,
    pub created: Instant,
}

impl Journal {
    pub fn new() -> Arc<Journal> {
        Self::build(None)
    }

    /// Messages are checked by `check` as they arrive and not kept.
    pub fn checking(check: impl Fn(usize, &[u8]) -> bool + Send + Sync + 'static) -> Arc<Journal> {
        Self::build(Some(Box::new(check)))
    }

    fn build(check: Option<MessageCheck>) -> Arc<Journal> {
        watch_driver_panics();
        Arc::new(Journal {
            state: Mutex::new(Entries::default()),
            changed: Condvar::new(),
            check,
            created: Instant::now(),
        })
    }

    pub fn host(self: &Arc<Self>) -> Arc<dyn Host> {
        self.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the entries under the lock (no copy).
    pub fn read<T>(&self, f: impl FnOnce(&Entries) -> T) -> T {
        f(&self.lock())
    }

    pub fn snapshot(&self) -> Entries {
        self.lock().clone()
    }

    /// Blocks until `predicate` holds (true) or `timeout` passes (false).
    pub fn wait_for(&self, mut predicate: impl FnMut(&Entries) -> bool, timeout: Duration) -> bool {
        let guard = self.lock();
        let (guard, _) = self
            .changed
            .wait_timeout_while(guard, timeout, |e| !predicate(e))
            .unwrap_or_else(|p| p.into_inner());
        predicate(&guard)
    }

    /// Waits up to [`TIMEOUT`] for `predicate`, or panics naming `what`.
    pub fn expect(&self, what: &str, predicate: impl FnMut(&Entries) -> bool) {
        self.expect_within(what, TIMEOUT, predicate);
    }

    /// Waits up to `limit` for `predicate`, or panics naming `what`.
    pub fn expect_within(
        &self,
        what: &str,
        limit: Duration,
        predicate: impl FnMut(&Entries) -> bool,
    ) {
        if !self.wait_for(predicate, limit) {
            panic!(
                "timed out after {limit:?} waiting for {what}\n{}",
                self.lock().describe()
            );
        }
    }

    fn record(&self, change: impl FnOnce(&mut Entries)) {
        change(&mut self.lock());
        self.changed.notify_all();
    }
}

fn leaked(what: &str, text: &str) -> Option<String> {
    SECRETS
        .iter()
        .find(|s| text.contains(*s))
        .map(|s| format!("{s:?} in {what}: {text:.300}"))
}

impl Host for Journal {
    fn fire_trigger(&self, trigger: Trigger, data: &[u8], _binary: bool) {
        self.record(|e| {
            e.triggers.push(trigger);
            e.counts[index(trigger)] += 1;
            if SECRETS
                .iter()
                .any(|s| data.windows(s.len()).any(|w| w == s.as_bytes()))
            {
                e.leaks.push(format!("a secret in the data of {trigger:?}"));
            }
            if trigger != Trigger::MessagesReceived {
                e.reasons
                    .push((trigger, String::from_utf8_lossy(data).into_owned()));
                return;
            }
            let n = e.message_count;
            e.message_count += 1;
            e.message_bytes += data.len();
            match &self.check {
                None => e.messages.push(data.to_vec()),
                Some(check) => {
                    if !check(n, data) {
                        e.mismatches += 1;
                        if e.first_mismatch.is_none() {
                            let shown = String::from_utf8_lossy(&data[..data.len().min(100)]);
                            e.first_mismatch = Some(format!("message {n}: {shown:?}"));
                        }
                    }
                }
            }
        });
    }

    fn status_changed(&self, variable: &StatusVariable) {
        self.record(|e| {
            if let Some(leak) = leaked(variable.key, &variable.value) {
                e.leaks.push(leak);
            }
            e.status.push(variable.clone());
        });
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.record(|e| {
            if let Some(leak) = leaked("a log line", message) {
                e.leaks.push(leak);
            }
            if message.starts_with("connecting to ") {
                let now = Instant::now();
                e.attempts.push(now);
                if !message.ends_with("(attempt 1)") {
                    e.retries.push(now);
                }
            }
            e.log_count += 1;
            if e.logs.len() < LOG_CAP {
                e.logs.push((level, message.to_owned()));
            }
        });
    }
}

// ------------------------------------------------------------ invariants

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

/// How fast connection attempts may come: never faster than the module's
/// 100 ms floor between automatic attempts, whatever happens.
const ATTEMPT_FLOOR: Duration = Duration::from_millis(100);

/// The checks every fault test ends with. Consumes the instance:
///
/// - **the instance keeps answering**: its status snapshot agrees with what
///   it pushed, and removing it completes (its runner is alive and
///   processes actions) within [`TIMEOUT`];
/// - **no panic** on the driver thread;
/// - **Disconnected never fires twice for one connection**: triggers follow
///   `(Connected [Established Messages*] Disconnected)* [Gave Up]`, so each
///   Disconnected follows exactly one Connected, and every connection that
///   reached Connected ends with one Disconnected;
/// - **no message lost or merged**: `messages` (when given) is the number
///   the server sent, and a checking journal saw no mismatch;
/// - **no busy loop**: automatic connection attempts stay under one per
///   100 ms (the module's floor) over the journal's life;
/// - **no secret shown**: [`SECRETS`] appear in no log line, status value
///   or trigger data (Extended Logging and Log Comms are on in every
///   fault test).
pub fn assert_invariants(journal: &Arc<Journal>, instance: Instance, messages: Option<usize>) {
    let shown = instance.status();
    assert_eq!(shown.len(), 17, "the status snapshot has every variable");
    let pushed = journal.read(|e| e.status_value("ConnectionStatus"));
    let snapshot = shown
        .iter()
        .find(|v| v.key == "ConnectionStatus")
        .map(|v| v.value.clone());
    // The snapshot is stored before the change is pushed to the host, and
    // an instance that is reconnecting changes on: the snapshot's value
    // must reach the host too (now or in a moment), not be the latest.
    if pushed.is_some()
        && let Some(snapshot) = snapshot
    {
        journal.expect(
            &format!("the snapshot's Connection Status {snapshot:?} pushed too"),
            |e| {
                e.status
                    .iter()
                    .any(|v| v.key == "ConnectionStatus" && v.value == snapshot)
            },
        );
    }
    for v in &shown {
        if let Some(leak) = leaked(v.key, &v.value) {
            panic!("secret in the status snapshot: {leak}");
        }
    }

    // Removal returns only when no callback can arrive: it proves the
    // runner still processes its inputs.
    let (done, removed) = mpsc::channel();
    std::thread::spawn(move || {
        drop(instance);
        let _ = done.send(());
    });
    if removed.recv_timeout(TIMEOUT).is_err() {
        panic!(
            "removing the instance did not complete within {TIMEOUT:?}: its runner is stuck or dead\n{}",
            journal.read(Entries::describe)
        );
    }

    let e = journal.snapshot();
    assert_eq!(
        driver_panics(),
        0,
        "a panic on the driver thread\n{}",
        e.describe()
    );
    assert!(e.leaks.is_empty(), "secrets shown: {:#?}", e.leaks);
    assert_trigger_grammar(&e);
    if let Some(expected) = messages {
        assert_eq!(
            e.message_count,
            expected,
            "Messages Received fired {} times for {expected} messages sent\n{}",
            e.message_count,
            e.describe()
        );
    }
    assert_eq!(
        e.mismatches, 0,
        "messages out of order or altered, first: {:?}",
        e.first_mismatch
    );
    let lifetime = journal.created.elapsed();
    let bound = 2 + (lifetime.as_millis() / ATTEMPT_FLOOR.as_millis()) as usize;
    assert!(
        e.retries.len() <= bound,
        "{} automatic connection attempts in {lifetime:?}: a busy loop",
        e.retries.len()
    );
}

/// `(Connected [Established Messages*] Disconnected)* [Gave Up]`, with
/// Gave Up only between connections.
fn assert_trigger_grammar(e: &Entries) {
    let mut connected = false;
    let mut established = false;
    for (i, t) in e.triggers.iter().enumerate() {
        let ok = match t {
            Trigger::Connected => !std::mem::replace(&mut connected, true),
            Trigger::Established => connected && !std::mem::replace(&mut established, true),
            Trigger::MessagesReceived => established,
            Trigger::Disconnected => {
                established = false;
                std::mem::replace(&mut connected, false)
            }
            Trigger::GaveUp => !connected,
        };
        assert!(
            ok,
            "trigger {i} ({t:?}) out of order: {}\n{}",
            shorten(&e.triggers),
            e.describe()
        );
    }
    assert!(
        !connected,
        "a connection ended without Disconnected: {}",
        shorten(&e.triggers)
    );
}

/// Connection attempts in a window: how many started between `from` and
/// `to`.
pub fn attempts_between(e: &Entries, from: Instant, to: Instant) -> usize {
    e.attempts
        .iter()
        .filter(|at| **at >= from && **at <= to)
        .count()
}

/// The resident set size of this process, in KiB (`VmRSS`).
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .expect("/proc/self/status has VmRSS")
}

/// Open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd is readable")
        .count()
}

// ------------------------------------------------------------ the setup

/// The properties every fault test starts from: the server on 127.0.0.1:
/// `port`, everything logged (Extended Logging, Log Comms), Basic
/// credentials with [`PASSWORD`] (the Connect's bearer token takes
/// precedence, but the password must stay hidden all the same), and
/// Auto-Reconnect with every retry within 1 s.
pub fn fault_properties(port: u16) -> serde_json::Value {
    serde_json::json!({
        "Hostname": "127.0.0.1",
        "Port": port,
        "Path": "/fault",
        "Extended Logging": true,
        "Log Comms": true,
        "Username": "operator",
        "Password": PASSWORD,
        "Auto-Reconnect": true,
        "Reconnect Min Delay": 1,
        "Reconnect Max Delay": 1,
    })
}

/// `base` with `more`'s keys set.
pub fn with(mut base: serde_json::Value, more: serde_json::Value) -> serde_json::Value {
    for (key, value) in more.as_object().expect("an object of properties") {
        base[key] = value.clone();
    }
    base
}

/// Creates an instance reporting to `journal` and connects it with the
/// bearer [`TOKEN`].
pub fn connect_instance(journal: &Arc<Journal>, properties: serde_json::Value) -> Instance {
    let instance = Instance::from_json(
        &properties.to_string(),
        journal.host(),
        wsio::instance::Options::default(),
    )
    .unwrap_or_else(|e| panic!("properties refused: {e}"));
    instance
        .action(
            "Connect",
            &serde_json::json!({"Bearer Token": TOKEN}),
            &[] as &[&str],
        )
        .expect("Connect is accepted");
    instance
}
