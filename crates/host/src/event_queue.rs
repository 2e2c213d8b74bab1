//! The engine's queue: what the modules' threads hand to the engine's
//! thread, bounded in entries and in bytes, never blocking a module.
//!
//! Work that must happen (a matched wire, a trigger whose wires the engine
//! tests) is *refusable*: when the queue is past its limits the module's
//! callback answers "full" (`fire_trigger_flow`), the module holds the event
//! and stops reading that connection, and the instance is remembered; once
//! the engine has drained the queue to half its limits it resumes every
//! instance it refused (`iom_instance_resume`). Nothing is dropped.
//!
//! What cannot be refused (status changes, log lines, and triggers from a
//! module without flow control) is taken up to twice the limits; past that
//! it is counted and reported, never silently lost. Records for the page's
//! log are optional: at most [`RECORD_BACKLOG`] wait, the rest are counted
//! (the instance's counters still count every trigger).
//!
//! Memory bound: the queue's entries hold at most [`HARD_BYTES`] bytes of
//! event data, plus one refusable event admitted just under its limit (a
//! trigger's data: at most one message, so the module's Max Message Size).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use super::abi::ModuleEvent;
use super::event_path::Fired;

/// Refusable work is taken while fewer entries than this wait…
pub const WAIT_ENTRIES: usize = 16 * 1024;
/// …and fewer bytes of event data than this.
pub const WAIT_BYTES: usize = 16 * 1024 * 1024;
/// What cannot be refused is taken up to these.
pub const HARD_ENTRIES: usize = 2 * WAIT_ENTRIES;
pub const HARD_BYTES: usize = 2 * WAIT_BYTES;
/// Trigger records (for the log and the page) that may wait at once.
pub const RECORD_BACKLOG: usize = 1024;

/// `EventQueue::records_hint` once stopping.
const STOPPING: usize = usize::MAX / 2;

/// What the engine handles.
#[derive(Debug)]
pub enum HostEvent {
    Fired(Fired),
    Module(ModuleEvent),
    /// Stop the engine (Ctrl-C, SIGTERM); the reason is logged.
    Shutdown(&'static str),
}

/// How a piece of work may be admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Must run; the module holds it if refused (flow control).
    Refusable,
    /// Must run and cannot be held (no flow control, status, log).
    Unrefusable,
    /// Only a record for the log and page: skipped when records back up.
    Record,
}

/// What became of a piece of work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    Queued,
    /// Refused: the instance is resumed once the queue has room.
    Full,
    /// Past the hard limits (unrefusable) or the record backlog (record).
    Dropped,
}

#[derive(Default)]
struct Inner {
    items: VecDeque<(HostEvent, usize, bool)>,
    bytes: usize,
    records: usize,
    /// Instances refused since the last resume, by id, each once.
    paused: Vec<u64>,
    /// Shutting down: everything is taken (the engine drains it after the
    /// instances are destroyed, so a held trigger is not lost at the end).
    stopping: bool,
}

/// The queue, shared by every sink and the engine.
#[derive(Default)]
pub struct EventQueue {
    inner: Mutex<Inner>,
    ready: Condvar,
    /// `Inner::records`, readable without the lock (a hint for the sinks),
    /// or `usize::MAX / 2` once stopping (always room).
    records_hint: AtomicUsize,
    /// Reported by the engine, never silent: triggers lost (no flow
    /// control and past the hard limits), triggers not logged one by one,
    /// status changes and log lines not shown.
    pub lost: AtomicU64,
    pub unrecorded: AtomicU64,
    pub unshown: AtomicU64,
}

impl EventQueue {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Offers work of `bytes` bytes of data from instance `instance_id`;
    /// `record`: it carries a record for the log (counted against the
    /// record backlog). Never blocks beyond the queue's lock.
    pub fn offer(
        &self,
        event: HostEvent,
        bytes: usize,
        record: bool,
        admission: Admission,
        instance_id: u64,
    ) -> Admitted {
        let mut inner = self.lock();
        let stopping = inner.stopping;
        let admitted = match admission {
            _ if stopping => true,
            Admission::Refusable => inner.items.len() < WAIT_ENTRIES && inner.bytes < WAIT_BYTES,
            Admission::Unrefusable => {
                inner.items.len() < HARD_ENTRIES && inner.bytes + bytes <= HARD_BYTES
            }
            Admission::Record => {
                inner.records < RECORD_BACKLOG
                    && inner.items.len() < WAIT_ENTRIES
                    && inner.bytes < WAIT_BYTES
            }
        };
        if !admitted {
            if admission == Admission::Refusable {
                if !inner.paused.contains(&instance_id) {
                    inner.paused.push(instance_id);
                }
                return Admitted::Full;
            }
            return Admitted::Dropped;
        }
        inner.bytes += bytes;
        inner.records += usize::from(record);
        if !stopping {
            self.records_hint.store(inner.records, Ordering::Relaxed);
        }
        inner.items.push_back((event, bytes, record));
        drop(inner);
        self.ready.notify_one();
        Admitted::Queued
    }

    /// Whether a record may still be queued: a cheap check before building
    /// one (it may still be refused by `offer`).
    pub fn has_room_for_records(&self) -> bool {
        let hint = self.records_hint.load(Ordering::Relaxed);
        hint < RECORD_BACKLOG || hint == STOPPING
    }

    pub fn lost(&self) {
        self.lost.fetch_add(1, Ordering::Relaxed);
    }

    pub fn not_recorded(&self) {
        self.unrecorded.fetch_add(1, Ordering::Relaxed);
    }

    pub fn not_shown(&self) {
        self.unshown.fetch_add(1, Ordering::Relaxed);
    }

    /// Asks the engine to stop; never refused, so a shutdown is never lost.
    pub fn shutdown(&self, reason: &'static str) {
        self.lock()
            .items
            .push_back((HostEvent::Shutdown(reason), 0, false));
        self.ready.notify_one();
    }

    /// From now on everything is taken (see `Inner::stopping`).
    pub fn stop_refusing(&self) {
        let mut inner = self.lock();
        inner.stopping = true;
        self.records_hint.store(STOPPING, Ordering::Relaxed);
    }

    /// The next event, waiting for one; and the instances to resume now
    /// (the queue fell to half its limits with some refused).
    pub fn next(&self) -> (HostEvent, Vec<u64>) {
        let mut inner = self.lock();
        loop {
            if let Some(found) = self.take(&mut inner) {
                return found;
            }
            inner = self.ready.wait(inner).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The next event if one waits.
    pub fn try_next(&self) -> Option<(HostEvent, Vec<u64>)> {
        self.take(&mut self.lock())
    }

    fn take(&self, inner: &mut Inner) -> Option<(HostEvent, Vec<u64>)> {
        let (event, bytes, record) = inner.items.pop_front()?;
        inner.bytes -= bytes;
        inner.records -= usize::from(record);
        if !inner.stopping {
            self.records_hint.store(inner.records, Ordering::Relaxed);
        }
        let resume = if !inner.paused.is_empty()
            && inner.items.len() <= WAIT_ENTRIES / 2
            && inner.bytes <= WAIT_BYTES / 2
        {
            std::mem::take(&mut inner.paused)
        } else {
            Vec::new()
        };
        Some((event, resume))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::ModuleLogLevel;

    fn log() -> HostEvent {
        HostEvent::Module(ModuleEvent::Log {
            instance_id: 1,
            level: ModuleLogLevel::Normal,
            message: String::new(),
        })
    }

    #[test]
    fn refusable_work_past_the_limit_is_refused_and_resumed_at_half() {
        let queue = EventQueue::default();
        for _ in 0..WAIT_ENTRIES {
            assert_eq!(
                queue.offer(log(), 1, false, Admission::Refusable, 7),
                Admitted::Queued
            );
        }
        assert_eq!(
            queue.offer(log(), 1, false, Admission::Refusable, 7),
            Admitted::Full
        );
        assert_eq!(
            queue.offer(log(), 1, false, Admission::Refusable, 7),
            Admitted::Full
        );
        // Unrefusable work still goes in, up to the hard limit.
        assert_eq!(
            queue.offer(log(), 1, false, Admission::Unrefusable, 8),
            Admitted::Queued
        );
        let mut resumed = Vec::new();
        for _ in 0..WAIT_ENTRIES / 2 + 1 {
            let (_, resume) = queue.try_next().unwrap();
            resumed.extend(resume);
        }
        assert_eq!(resumed, [7], "resumed once, at half the limit");
        assert_eq!(
            queue.offer(log(), 1, false, Admission::Refusable, 7),
            Admitted::Queued
        );
    }

    #[test]
    fn the_byte_limit_refuses_too_and_records_have_their_own_backlog() {
        let queue = EventQueue::default();
        assert_eq!(
            queue.offer(log(), WAIT_BYTES, false, Admission::Refusable, 1),
            Admitted::Queued
        );
        assert_eq!(
            queue.offer(log(), 1, false, Admission::Refusable, 1),
            Admitted::Full
        );
        assert_eq!(
            queue.offer(log(), HARD_BYTES, false, Admission::Unrefusable, 1),
            Admitted::Dropped
        );
        let queue = EventQueue::default();
        for _ in 0..RECORD_BACKLOG {
            assert_eq!(
                queue.offer(log(), 10, true, Admission::Record, 1),
                Admitted::Queued
            );
        }
        assert!(!queue.has_room_for_records());
        assert_eq!(
            queue.offer(log(), 10, true, Admission::Record, 1),
            Admitted::Dropped
        );
    }

    #[test]
    fn once_stopping_everything_is_taken() {
        let queue = EventQueue::default();
        queue.offer(log(), WAIT_BYTES, false, Admission::Refusable, 1);
        queue.stop_refusing();
        assert_eq!(
            queue.offer(log(), 1, false, Admission::Refusable, 1),
            Admitted::Queued
        );
    }
}
