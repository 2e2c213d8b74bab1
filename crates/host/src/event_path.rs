//! Where a fired trigger arrives: on the module's thread, in the instance's
//! sink ([`InstanceEvents`]).
//!
//! The trigger is counted, and every wire of that instance and trigger is
//! tested right there (`iom_trigger_test` never waits, and the header allows
//! it inside a callback). Only what must happen goes to the engine's thread
//! ([`EventQueue`]): the matched wires with their variables, a trigger whose
//! data is too large to test on the module's thread (the engine tests it),
//! and, while few wait, a record for the log and the status page. A trigger
//! with no matching wire costs the engine nothing once records back up.
//!
//! When the queue is full, a trigger with work to do is refused: the module
//! holds it and stops reading that connection (flow control), and the engine
//! resumes the instance once it has caught up. A module without flow control
//! cannot hold it: the event is then counted in `events_lost` and logged.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::abi::{EventSink, FiredTrigger, ModuleEvent};
use super::engine::{WireSet, Wiring};
use super::event_queue::{Admission, Admitted, EventQueue, HostEvent};
use super::runaway::RunRate;
use super::state::shorten;

/// Records (log line and page entry) of one instance's triggers per
/// [`RECORD_WINDOW`]: a flood of messages is sampled, so the engine's thread
/// is not kept busy logging it; every trigger is still counted.
pub const RECORDS_PER_WINDOW: u32 = 100;
pub const RECORD_WINDOW: Duration = Duration::from_millis(100);

/// Data longer than this is tested on the engine's thread, not the
/// module's: a Regex over megabytes would stall every instance of the
/// module meanwhile.
pub const TEST_HERE_MAX: usize = 64 * 1024;

/// A matched wire: its index in the wire set and the trigger variables.
pub type WireRun = (usize, Vec<Vec<u8>>);

/// A fired trigger, as far as the engine must still handle it.
#[derive(Debug)]
pub struct Fired {
    pub instance_id: u64,
    pub trigger: String,
    /// The data as the log and the page show it; None when records backed
    /// up (the trigger is still counted).
    pub shown: Option<String>,
    /// Wires tested where the trigger arrived that matched: the wire's
    /// index in the engine's list, and the trigger variables.
    pub runs: Vec<WireRun>,
    /// Data (and flags) the engine tests against every wire of this
    /// instance and trigger: large data, or wires not known yet.
    pub untested: Option<(Vec<u8>, u32)>,
    /// The wire set the trigger was tested against (`runs` index it); the
    /// engine runs wires from it, whatever an apply did since. None when
    /// no set was applied yet.
    pub wires: Option<Arc<WireSet>>,
}

impl Fired {
    /// The bytes it holds, for the queue's bound.
    fn bytes(&self) -> usize {
        const OVERHEAD: usize = 128;
        OVERHEAD
            + self.trigger.len()
            + self.shown.as_ref().map_or(0, String::len)
            + self
                .runs
                .iter()
                .flat_map(|(_, variables)| variables)
                .map(|v| v.len() + 24)
                .sum::<usize>()
            + self.untested.as_ref().map_or(0, |(data, _)| data.len())
    }
}

/// What `GET /io_modules` shows of an instance's event path.
#[derive(Default)]
pub struct Counters {
    /// The manifest's triggers, counted without a lock.
    triggers: Vec<(String, AtomicU64)>,
    /// Per trigger of `triggers`, whether the current wire set has a wire
    /// on it for this instance (set by each apply, after the set): a
    /// trigger without one is not tested, and the sink does not even read
    /// the wire set for it (the common case, millions of times a second).
    wired: Vec<AtomicBool>,
    /// Any trigger the manifest does not name (a module's mistake; counted
    /// all the same).
    others: Mutex<BTreeMap<String, u64>>,
    /// Wires whose actions ran.
    pub wire_runs: AtomicU64,
    /// Triggers that could neither be queued nor held (should stay 0).
    pub events_lost: AtomicU64,
    /// Times the host refused a trigger and the module held it (flow
    /// control at work: the instance's connection was paused).
    pub refusals: AtomicU64,
    /// The run rates of the wires this instance's triggers start, by wire
    /// number; set by each apply.
    pub wire_rates: Mutex<Vec<(usize, Arc<RunRate>)>>,
}

impl Counters {
    pub fn new<'a>(triggers: impl IntoIterator<Item = &'a str>) -> Counters {
        Counters {
            triggers: triggers
                .into_iter()
                .map(|t| (t.to_string(), AtomicU64::new(0)))
                .collect::<Vec<_>>(),
            ..Counters::default()
        }
        .with_wired_flags()
    }

    fn with_wired_flags(mut self) -> Counters {
        self.wired = self
            .triggers
            .iter()
            .map(|_| AtomicBool::new(false))
            .collect();
        self
    }

    /// The index of a manifest trigger in `triggers` and `wired`.
    fn slot(&self, trigger: &str) -> Option<usize> {
        self.triggers.iter().position(|(name, _)| name == trigger)
    }

    /// Sets each trigger's "has a wire" flag (`apply`, after the set).
    pub fn set_wired(&self, wired: impl Fn(&str) -> bool) {
        for ((name, _), flag) in self.triggers.iter().zip(&self.wired) {
            flag.store(wired(name), Ordering::Release);
        }
    }

    /// Whether the trigger in `slot` surely has no wire now (false when
    /// unsure: a trigger the manifest does not name).
    fn unwired(&self, slot: Option<usize>) -> bool {
        slot.is_some_and(|i| !self.wired[i].load(Ordering::Acquire))
    }

    fn count_trigger(&self, slot: Option<usize>, trigger: &str) {
        match slot.map(|i| &self.triggers[i]) {
            Some((_, count)) => {
                count.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                *self
                    .others
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(trigger.to_string())
                    .or_default() += 1;
            }
        }
    }

    /// How often `trigger` fired.
    pub fn fired(&self, trigger: &str) -> u64 {
        match self.triggers.iter().find(|(name, _)| name == trigger) {
            Some((_, count)) => count.load(Ordering::Relaxed),
            None => self
                .others
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(trigger)
                .copied()
                .unwrap_or(0),
        }
    }

    /// The numbers of this instance's wires that run too fast to be
    /// anything but a loop (see `runaway`).
    pub fn looping_wires(&self, now: Instant) -> Vec<usize> {
        self.wire_rates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, rate)| rate.looping(now))
            .map(|(number, _)| *number)
            .collect()
    }

    /// `{"triggers": {...}, "wire_runs": n, "events_lost": n, "refusals": n,
    /// "looping_wires": [n, ...]}`.
    pub fn to_json(&self) -> Value {
        let mut triggers = serde_json::Map::new();
        for (name, count) in &self.triggers {
            triggers.insert(name.clone(), count.load(Ordering::Relaxed).into());
        }
        for (name, count) in self.others.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            triggers.insert(name.clone(), (*count).into());
        }
        json!({
            "triggers": triggers,
            "wire_runs": self.wire_runs.load(Ordering::Relaxed),
            "events_lost": self.events_lost.load(Ordering::Relaxed),
            "refusals": self.refusals.load(Ordering::Relaxed),
            "looping_wires": self.looping_wires(Instant::now()),
        })
    }
}

/// One instance's sink. See the module documentation.
pub struct InstanceEvents {
    pub id: u64,
    pub name: String,
    pub queue: Arc<EventQueue>,
    pub counters: Arc<Counters>,
    /// The module can hold a refused trigger (`iom_instance_resume`).
    pub flow_control: bool,
    /// The wires of every instance (shared): this sink tests the ones its
    /// triggers start. Until a set is applied the engine tests what fires.
    pub wires: Arc<Wiring>,
    /// The current record window's start and the records taken in it.
    records: Mutex<(Option<Instant>, u32)>,
}

impl InstanceEvents {
    pub fn new(
        id: u64,
        name: &str,
        queue: Arc<EventQueue>,
        counters: Arc<Counters>,
        flow_control: bool,
        wires: Arc<Wiring>,
    ) -> InstanceEvents {
        InstanceEvents {
            id,
            name: name.to_string(),
            queue,
            counters,
            flow_control,
            wires,
            records: Mutex::new((None, 0)),
        }
    }

    /// Whether this trigger gets a record (see [`RECORDS_PER_WINDOW`]); the
    /// clock is read only once a window's records are used up.
    fn take_record(&self) -> bool {
        if !self.queue.has_room_for_records() {
            return false;
        }
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let (start, taken) = &mut *records;
        if *taken < RECORDS_PER_WINDOW {
            *taken += 1;
            if start.is_none() {
                *start = Some(Instant::now());
            }
            return true;
        }
        let now = Instant::now();
        if start.is_none_or(|s| now.duration_since(s) >= RECORD_WINDOW) {
            *start = Some(now);
            *taken = 1;
            return true;
        }
        false
    }

    /// Tests the wires of `fired`'s trigger where it arrived, against the
    /// current wire set (returned too: the engine runs the matched wires
    /// from that same set): the matched wires, and whether the engine must
    /// test the data instead (too large here, or no set applied yet).
    fn test_wires(&self, fired: &FiredTrigger<'_>) -> (Vec<WireRun>, bool, Option<Arc<WireSet>>) {
        let current = self.wires.peek();
        let Some(wires) = current.as_ref() else {
            return (Vec::new(), true, None);
        };
        let mut mine = wires.of(self.id, fired.trigger).peekable();
        if mine.peek().is_none() {
            return (Vec::new(), false, None);
        }
        if fired.data.len() > TEST_HERE_MAX {
            drop(mine);
            return (Vec::new(), true, Some(Arc::clone(wires)));
        }
        let mut runs = Vec::new();
        for (index, wire) in mine {
            match wire.test.test(fired.data, fired.flags) {
                Ok(Some(variables)) => runs.push((index, variables)),
                Ok(None) => log::debug!(
                    "wire {}: {}: {} does not match",
                    wire.number,
                    self.name,
                    fired.trigger
                ),
                Err(e) => log::error!(
                    "wire {}: {}: testing {} failed: {e}",
                    wire.number,
                    self.name,
                    fired.trigger
                ),
            }
        }
        let tested = (!runs.is_empty()).then(|| Arc::clone(wires));
        (runs, false, tested)
    }
}

impl EventSink for InstanceEvents {
    fn trigger_fired(&self, fired: FiredTrigger<'_>) -> bool {
        let slot = self.counters.slot(fired.trigger);
        let (runs, engine_tests, wires) = if self.wires.is_set() && self.counters.unwired(slot) {
            (Vec::new(), false, None)
        } else {
            self.test_wires(&fired)
        };
        let must = !runs.is_empty() || engine_tests;
        let shown = self.take_record().then(|| shorten(fired.data));
        if !must && shown.is_none() {
            self.counters.count_trigger(slot, fired.trigger);
            self.queue.not_recorded();
            return true;
        }
        let recorded = shown.is_some();
        let work = Fired {
            instance_id: self.id,
            trigger: fired.trigger.to_string(),
            shown,
            runs,
            untested: engine_tests.then(|| (fired.data.to_vec(), fired.flags)),
            wires,
        };
        let bytes = work.bytes();
        let admission = match must {
            false => Admission::Record,
            true if fired.can_hold && self.flow_control => Admission::Refusable,
            true => Admission::Unrefusable,
        };
        match self
            .queue
            .offer(HostEvent::Fired(work), bytes, recorded, admission, self.id)
        {
            Admitted::Queued => {}
            Admitted::Full => {
                self.counters.refusals.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            Admitted::Dropped if must => {
                self.counters.events_lost.fetch_add(1, Ordering::Relaxed);
                self.queue.lost();
            }
            Admitted::Dropped => self.queue.not_recorded(),
        }
        self.counters.count_trigger(slot, fired.trigger);
        true
    }

    fn event(&self, event: ModuleEvent) {
        let bytes = match &event {
            ModuleEvent::StatusChanged {
                key,
                value,
                timestamp,
                ..
            } => key.len() + value.len() + timestamp.len(),
            ModuleEvent::Log { message, .. } => message.len(),
        } + 64;
        if self.queue.offer(
            HostEvent::Module(event),
            bytes,
            false,
            Admission::Unrefusable,
            self.id,
        ) == Admitted::Dropped
        {
            self.queue.not_shown();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event_queue::WAIT_BYTES;

    fn fired(data: &[u8], can_hold: bool) -> FiredTrigger<'_> {
        FiredTrigger {
            instance_id: 1,
            trigger: "Messages Received",
            data,
            flags: 0,
            can_hold,
        }
    }

    fn sink(queue: &Arc<EventQueue>, flow_control: bool) -> InstanceEvents {
        let counters = Arc::new(Counters::new(["Messages Received"]));
        InstanceEvents::new(
            1,
            "a",
            queue.clone(),
            counters,
            flow_control,
            Arc::default(),
        )
    }

    #[test]
    fn a_trigger_without_wires_is_counted_and_never_refused_and_records_are_sampled() {
        let queue = Arc::new(EventQueue::default());
        let events = sink(&queue, true);
        events.wires.set(Arc::default());
        // A full queue refuses work, not a trigger that needs none.
        queue.offer(
            HostEvent::Shutdown("fill"),
            WAIT_BYTES,
            false,
            Admission::Refusable,
            9,
        );
        let n = 3 * RECORDS_PER_WINDOW as usize;
        for _ in 0..n {
            assert!(events.trigger_fired(fired(b"x", true)));
        }
        assert_eq!(events.counters.fired("Messages Received"), n as u64);
        assert_eq!(
            queue.unrecorded.load(Ordering::Relaxed),
            n as u64,
            "the queue was full: no record"
        );
        let queue = Arc::new(EventQueue::default());
        let events = sink(&queue, true);
        events.wires.set(Arc::default());
        for _ in 0..n {
            assert!(events.trigger_fired(fired(b"x", true)));
        }
        // One window's worth of records (the test runs within one window,
        // or the next one's first records are taken too).
        let unrecorded = queue.unrecorded.load(Ordering::Relaxed);
        assert!(
            unrecorded >= n as u64 - 2 * u64::from(RECORDS_PER_WINDOW),
            "{unrecorded}"
        );
    }

    #[test]
    fn work_the_full_queue_cannot_take_is_refused_when_the_module_can_hold_it_and_lost_otherwise() {
        let queue = Arc::new(EventQueue::default());
        // Wires not known yet: the engine must test the data (work).
        let holding = sink(&queue, true);
        let legacy = sink(&queue, false);
        queue.offer(
            HostEvent::Shutdown("fill"),
            WAIT_BYTES,
            false,
            Admission::Refusable,
            9,
        );
        assert!(!holding.trigger_fired(fired(b"x", true)), "refused");
        assert_eq!(holding.counters.fired("Messages Received"), 0);
        assert_eq!(holding.counters.refusals.load(Ordering::Relaxed), 1);
        // The module called the callback that cannot be refused: taken up
        // to the hard limit, past it counted as lost and reported.
        assert!(legacy.trigger_fired(fired(b"x", false)));
        assert_eq!(legacy.counters.fired("Messages Received"), 1);
        assert_eq!(legacy.counters.events_lost.load(Ordering::Relaxed), 0);
        while queue.offer(
            HostEvent::Shutdown("fill"),
            1,
            false,
            Admission::Unrefusable,
            9,
        ) == Admitted::Queued
        {}
        assert!(legacy.trigger_fired(fired(b"x", false)));
        assert_eq!(legacy.counters.events_lost.load(Ordering::Relaxed), 1);
        assert_eq!(queue.lost.load(Ordering::Relaxed), 1);
        // Drained to half: the refused instance is resumed, once.
        let mut resumed = Vec::new();
        while let Some((_, resume)) = queue.try_next() {
            resumed.extend(resume);
        }
        assert_eq!(resumed, [1]);
        assert!(holding.trigger_fired(fired(b"x", true)));
        assert_eq!(holding.counters.fired("Messages Received"), 1);
    }

    #[test]
    fn counters_count_every_trigger_by_name_and_show_as_json() {
        let counters = Counters::new(["Connected", "Messages Received"]);
        counters.count_trigger(counters.slot("Messages Received"), "Messages Received");
        counters.count_trigger(counters.slot("Messages Received"), "Messages Received");
        counters.count_trigger(counters.slot("Surprise"), "Surprise");
        counters.wire_runs.fetch_add(3, Ordering::Relaxed);
        assert_eq!(counters.fired("Messages Received"), 2);
        assert_eq!(counters.fired("Surprise"), 1);
        assert_eq!(
            counters.to_json(),
            json!({
                "triggers": {"Connected": 0, "Messages Received": 2, "Surprise": 1},
                "wire_runs": 3,
                "events_lost": 0,
                "refusals": 0,
                "looping_wires": [],
            })
        );
    }
}
