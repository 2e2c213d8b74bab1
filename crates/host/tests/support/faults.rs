//! The fault suite's setup, story steps and invariants: the properties
//! every fault test connects with (holding the [`SECRETS`]), the waits and
//! checks its stories share, and [`assert_invariants`], how every fault
//! test ends: the checks that must hold whatever the fault was (see its
//! doc). What the instance reported is recorded by [`Recorder`], which
//! scans everything it sees for the secrets.

use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use wsio::Instance;
use wsio::Trigger;

use super::TIMEOUT;
use super::recorder::{
    PASSWORD, Recorded, Recorder, SECRETS, TOKEN, driver_panics, leaked, shorten,
};

// ------------------------------------------------------------ invariants

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
///   the server sent, and a checking recorder saw no mismatch;
/// - **no busy loop**: automatic connection attempts stay under one per
///   100 ms (the module's floor) over the recorder's life;
/// - **no secret shown**: [`SECRETS`] appear in no log line, status value
///   or trigger data (Extended Logging and Log Comms are on in every
///   fault test).
pub fn assert_invariants(recorder: &Arc<Recorder>, instance: Instance, messages: Option<usize>) {
    let shown = instance.status();
    assert_eq!(shown.len(), 17, "the status snapshot has every variable");
    let pushed = recorder.read(|e| e.status_value("ConnectionStatus"));
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
        recorder.expect(
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
            recorder.read(Recorded::describe)
        );
    }

    let e = recorder.snapshot();
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
    let lifetime = recorder.created.elapsed();
    let bound = 2 + (lifetime.as_millis() / ATTEMPT_FLOOR.as_millis()) as usize;
    assert!(
        e.retries.len() <= bound,
        "{} automatic connection attempts in {lifetime:?}: a busy loop",
        e.retries.len()
    );
}

/// `(Connected [Established Messages*] Disconnected)* [Gave Up]`, with
/// Gave Up only between connections.
fn assert_trigger_grammar(e: &Recorded) {
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
pub fn attempts_between(e: &Recorded, from: Instant, to: Instant) -> usize {
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

// ------------------------------------------------------------ the stories

/// Slack on top of a bound the module promises, for a loaded 2-core CI
/// machine running debug builds.
pub const SLACK: Duration = Duration::from_secs(2);
/// How long a test listens to prove that something does *not* happen (no
/// retry after Gave Up): longer than the 1 s retry ceiling configured.
pub const QUIET: Duration = Duration::from_millis(1500);

/// WebSocket Established fired `n` times (at least).
pub fn established(n: usize) -> impl FnMut(&Recorded) -> bool {
    move |e| e.count(Trigger::Established) >= n
}

/// Disconnected fired `n` times (at least).
pub fn disconnected(n: usize) -> impl FnMut(&Recorded) -> bool {
    move |e| e.count(Trigger::Disconnected) >= n
}

/// The latest value of a status variable, empty if it was never pushed.
pub fn status(e: &Recorded, key: &str) -> String {
    e.status_value(key).unwrap_or_default()
}

/// The triggers of one connection that delivered `messages` messages and
/// then ended.
pub fn one_connection(messages: usize) -> Vec<Trigger> {
    let mut triggers = vec![Trigger::Connected, Trigger::Established];
    triggers.extend(std::iter::repeat_n(Trigger::MessagesReceived, messages));
    triggers.push(Trigger::Disconnected);
    triggers
}

/// Asserts that the triggers so far were exactly `triggers` and returns
/// the reason of the first Disconnected.
pub fn ending(e: &Recorded, triggers: &[Trigger]) -> String {
    assert_eq!(e.triggers, triggers, "{}", e.describe());
    e.reasons_of(Trigger::Disconnected).remove(0)
}

/// Asserts Last Error is `reason` at `stage`, as the module shows it.
pub fn assert_last_error(e: &Recorded, reason: &str, stage: &str) {
    assert_eq!(status(e, "LastError"), format!("{reason} (stage: {stage})"));
}

/// A WebSocket or TLS handshake that never completed: `rec` saw the
/// Connect Timeout of 2 s end it, no sooner than 2 s after `started`, with
/// Connected then Disconnected and the reason the module gives.
pub fn expect_handshake_timeout(rec: &Arc<Recorder>, started: Instant) {
    rec.expect("Disconnected", disconnected(1));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1900),
        "ended after {waited:?}, before the 2 s Connect Timeout"
    );
    let e = rec.snapshot();
    let reason = ending(&e, &[Trigger::Connected, Trigger::Disconnected]);
    assert_eq!(
        reason,
        "TLS/WebSocket handshake timed out after 2 s (Connect Timeout)"
    );
    assert_last_error(&e, &reason, "Connect timeout");
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

/// A new [`Recorder`] and an instance reporting to it, connected (see
/// [`connect_instance`]) with the fault properties for `port` and `more`.
pub fn fault_instance(port: u16, more: serde_json::Value) -> (Arc<Recorder>, Instance) {
    let recorder = Recorder::new();
    let instance = connect_instance(&recorder, with(fault_properties(port), more));
    (recorder, instance)
}

/// Creates an instance reporting to `recorder` and connects it with the
/// bearer [`TOKEN`].
pub fn connect_instance(recorder: &Arc<Recorder>, properties: serde_json::Value) -> Instance {
    let instance = Instance::from_json(
        &properties.to_string(),
        recorder.host(),
        wsio::Options::default(),
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

/// A TLS refusal of a server whose certificate no given or built-in CA
/// signed, for Hostname localhost: said in words, never rustls' Debug text.
pub fn assert_unknown_ca(reason: &str) {
    assert!(
        reason.starts_with("TLS handshake with localhost failed"),
        "{reason}"
    );
    assert!(
        reason.contains(
            "invalid peer certificate: issued by an unknown CA: give the CA that signed the server's certificate"
        ) && !reason.contains("UnknownIssuer"),
        "{reason}"
    );
}
