//! A [`Host`] that records what an instance reports, for tests to wait on.
//!
//! Like the fixture servers' observations, every wait blocks on a condition
//! variable with a timeout: no sleeps.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use wsio::Host;
use wsio::LogLevel;
use wsio::StatusVariable;
use wsio::Trigger;

/// Everything an instance reported so far, in order.
#[derive(Clone, Debug, Default)]
pub struct Recorded {
    /// Fired triggers with their data.
    pub triggers: Vec<(Trigger, Vec<u8>)>,
    /// For each fired trigger: whether it was a binary message.
    pub binary: Vec<bool>,
    /// Every status change pushed, in order.
    pub status: Vec<StatusVariable>,
    /// When each of `status` was pushed (the clock Instant reads).
    pub status_at: Vec<Instant>,
    pub logs: Vec<(LogLevel, String)>,
}

impl Recorded {
    pub fn count(&self, trigger: Trigger) -> usize {
        self.triggers.iter().filter(|(t, _)| *t == trigger).count()
    }

    /// Trigger names in order.
    pub fn trigger_names(&self) -> Vec<Trigger> {
        self.triggers.iter().map(|(t, _)| *t).collect()
    }

    /// The data of every firing of `trigger`, as text.
    pub fn data_of(&self, trigger: Trigger) -> Vec<String> {
        self.triggers
            .iter()
            .filter(|(t, _)| *t == trigger)
            .map(|(_, d)| String::from_utf8_lossy(d).into_owned())
            .collect()
    }

    /// The latest pushed value of a status variable.
    pub fn status_value(&self, key: &str) -> Option<String> {
        self.status
            .iter()
            .rev()
            .find(|v| v.key == key)
            .map(|v| v.value.clone())
    }

    pub fn last_status(&self, key: &str) -> Option<&StatusVariable> {
        self.status.iter().rev().find(|v| v.key == key)
    }

    /// Every log line, one per line, for searching.
    pub fn log_text(&self) -> String {
        self.logs
            .iter()
            .map(|(l, m)| format!("{l:?}: {m}\n"))
            .collect()
    }
}

/// The recording host. Pass `recorder.host()` to `Instance::new`.
#[derive(Default)]
pub struct Recorder {
    state: Mutex<Recorded>,
    changed: Condvar,
}

impl Recorder {
    pub fn new() -> Arc<Recorder> {
        Arc::new(Recorder::default())
    }

    pub fn host(self: &Arc<Self>) -> Arc<dyn Host> {
        self.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Recorded> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
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

    /// Waits for `predicate` or panics naming `what` and what was recorded.
    pub fn expect(&self, what: &str, predicate: impl FnMut(&Recorded) -> bool) {
        if !self.wait_for(predicate, super::TIMEOUT) {
            let r = self.snapshot();
            panic!(
                "timed out waiting for {what}\ntriggers: {:?}\nstatus: {:?}\nlog:\n{}",
                r.trigger_names(),
                r.status
                    .iter()
                    .map(|v| (v.key, &v.value))
                    .collect::<Vec<_>>(),
                r.log_text()
            );
        }
    }

    fn record(&self, change: impl FnOnce(&mut Recorded)) {
        change(&mut self.lock());
        self.changed.notify_all();
    }
}

impl Host for Recorder {
    fn fire_trigger(&self, trigger: Trigger, data: &[u8], binary: bool) {
        self.record(|r| {
            r.triggers.push((trigger, data.to_vec()));
            r.binary.push(binary);
        });
    }

    fn status_changed(&self, variable: &StatusVariable) {
        self.record(|r| {
            r.status.push(variable.clone());
            r.status_at.push(Instant::now());
        });
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.record(|r| r.logs.push((level, message.to_owned())));
    }
}
