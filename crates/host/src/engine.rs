//! The trigger engine: the host's own thread where what must happen after
//! a trigger is done, in order.
//!
//! The modules' callbacks test each fired trigger against its wires where
//! it arrives (`event_path`) and queue only the rest ([`EventQueue`]): the
//! matched wires with their variables, data too large to test on a module's
//! thread, records for the log and the status page, status changes and
//! module log lines. The engine takes them out one at a time and runs the
//! matched wires' actions (they return at once, so the engine never waits on
//! a module). As it catches up, it resumes the instances whose triggers the
//! queue refused (flow control), so no trigger is dropped. Status changes go
//! to the status page's live feed (`state`), which never blocks either.
//! Module log lines are forwarded to `log` from here, so they interleave with
//! trigger and action lines in the order they happened.
//!
//! Wires change live (an apply, `crate::apply`) as a whole: the wires are a
//! [`WireSet`], immutable once built, and [`Wiring`] holds the current one
//! behind an `Arc`. An instance's sink takes the current set once per
//! trigger, tests the trigger against it, and the queued [`Fired`] carries
//! that very set; the engine runs the matched wires from it (and tests data
//! the sink could not test against it too). So each event is handled by
//! exactly one configuration, the one in force when it arrived, however an
//! apply interleaves with the modules' threads: no event is handled by half
//! of one and half of another. Events of an instance an apply destroyed are
//! logged and recorded but run no wire (the instance is gone), as while
//! shutting down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use chrono::Local;

use super::abi::{ModuleEvent, ModuleLogLevel, PreparedTrigger};
use super::event_path::Counters;
use super::event_path::Fired;
pub use super::event_queue::{EventQueue, HostEvent};
use super::runaway::{LOOPING_FOR, LOOPING_RATE, RunRate};
use super::state::{ActionCall, HostState, RecentEvent, RecentEventKind};

/// A project wire, prepared.
pub struct Wire {
    /// 1-based, as in the project file and in log lines.
    pub number: usize,
    pub instance_id: u64,
    /// The counters of the instance whose trigger starts it (`wire_runs`).
    pub counters: Arc<Counters>,
    pub trigger: String,
    /// Tested by the instance's sink where triggers arrive.
    pub test: PreparedTrigger,
    /// Run in order; the string names the action in log lines ("wire 2").
    pub actions: Vec<(String, ActionCall)>,
    /// Its runs a second, to spot a loop; shared with `GET /io_modules`.
    pub rate: Arc<RunRate>,
}

/// Every wire of one configuration, in project order (see the module
/// documentation).
#[derive(Default)]
pub struct WireSet {
    pub wires: Vec<Wire>,
}

impl std::fmt::Debug for WireSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WireSet({} wires)", self.wires.len())
    }
}

impl WireSet {
    /// The wires `trigger` of instance `instance_id` starts, with their
    /// indices.
    pub fn of<'a>(
        &'a self,
        instance_id: u64,
        trigger: &'a str,
    ) -> impl Iterator<Item = (usize, &'a Wire)> + 'a {
        self.wires
            .iter()
            .enumerate()
            .filter(move |(_, w)| w.instance_id == instance_id && w.trigger == trigger)
    }
}

/// The current [`WireSet`]; None until the first configuration is applied
/// (the engine then tests what fires against the set current when it
/// handles it).
///
/// A fired trigger with a wire reads it, on the module's threads, up to
/// millions of times a second: `arc-swap` makes that read a load without a
/// lock or a reference count, and the set is cloned only for a trigger that
/// matched or that the engine must test. A trigger without a wire does not
/// read it at all: each instance's `Counters` flags its wired triggers.
#[derive(Default)]
pub struct Wiring(ArcSwapOption<WireSet>, AtomicBool);

impl Wiring {
    pub fn current(&self) -> Option<Arc<WireSet>> {
        self.0.load_full()
    }

    /// The current set, borrowed for one trigger's test.
    pub fn peek(&self) -> arc_swap::Guard<Option<Arc<WireSet>>> {
        self.0.load()
    }

    /// Swaps the whole set at once.
    pub fn set(&self, wires: Arc<WireSet>) {
        self.0.store(Some(wires));
        self.1.store(true, Ordering::Release);
    }

    /// Whether a set was applied (until then the engine tests what fires).
    pub fn is_set(&self) -> bool {
        self.1.load(Ordering::Acquire)
    }
}

/// How often, at most, the engine says how many triggers were not logged
/// one by one.
const UNRECORDED_EVERY: Duration = Duration::from_secs(1);

pub struct Engine {
    state: Arc<HostState>,
    queue: Arc<EventQueue>,
    lost_reported: u64,
    unshown_reported: u64,
    unrecorded_reported: u64,
    unrecorded_at: Option<Instant>,
}

impl Engine {
    pub fn new(state: Arc<HostState>, queue: Arc<EventQueue>) -> Engine {
        Engine {
            state,
            queue,
            lost_reported: 0,
            unshown_reported: 0,
            unrecorded_reported: 0,
            unrecorded_at: None,
        }
    }

    /// Handles events until a shutdown request; returns its reason.
    pub fn run(&mut self) -> &'static str {
        loop {
            let (event, resume) = self.queue.next();
            self.resume(&resume);
            match event {
                HostEvent::Fired(fired) => self.fired(fired, true),
                HostEvent::Module(event) => self.module_event(event),
                HostEvent::Shutdown(reason) => {
                    // From now on the queue takes everything: what the
                    // instances still hold while they close is drained below.
                    self.queue.stop_refusing();
                    return reason;
                }
            }
        }
    }

    /// Handles what is left in the queue once the instances are destroyed
    /// (e.g. their Disconnected triggers): logged and recorded, but no wire
    /// runs, since no instance is left to act.
    pub fn drain(&mut self) {
        while let Some((event, _)) = self.queue.try_next() {
            match event {
                HostEvent::Fired(fired) => self.fired(fired, false),
                HostEvent::Module(event) => self.module_event(event),
                HostEvent::Shutdown(_) => {}
            }
        }
        self.report(true);
    }

    /// The queue has room again: the instances it refused read again.
    fn resume(&self, ids: &[u64]) {
        let config = self.state.config();
        for &id in ids {
            if let Some(instance) = config.instance_by_id(id)
                && let Err(e) = instance.instance.resume()
            {
                log::debug!("{}: resume: {e}", self.name(id));
            }
        }
    }

    fn module_event(&mut self, event: ModuleEvent) {
        self.report(false);
        match event {
            ModuleEvent::StatusChanged {
                instance_id,
                key,
                value,
                timestamp,
            } => {
                log::debug!(
                    "{}: status {key} = {value:?} at {timestamp}",
                    self.name(instance_id)
                );
                // The status page shows it live; status values are never
                // secret (the ABI's contract).
                if self.state.config().instance_by_id(instance_id).is_some() {
                    self.state
                        .recent
                        .status_changed(instance_id, &key, &value, &timestamp);
                }
            }
            ModuleEvent::Log {
                instance_id,
                level,
                message,
            } => {
                // Extended lines exist only because the integrator turned on
                // an instance's Extended Logging or Log Comms: show them at
                // the default filter, the toggle is the switch.
                let level = match level {
                    ModuleLogLevel::Critical => log::Level::Error,
                    ModuleLogLevel::Terse | ModuleLogLevel::Normal => log::Level::Info,
                    ModuleLogLevel::Extended => log::Level::Info,
                    ModuleLogLevel::Verbose | ModuleLogLevel::Debug => log::Level::Trace,
                };
                log::log!(target: "wsio::module", level, "{}: {message}", self.name(instance_id));
            }
        }
    }

    fn fired(&mut self, fired: Fired, run_wires: bool) {
        self.report(false);
        let name = self.name(fired.instance_id);
        let trigger = &fired.trigger;
        if let Some(shown) = fired.shown {
            // Into the event ring before the log line: whoever reads the
            // log (a person, a test) then finds it on the status page too.
            self.state.recent.push(RecentEvent {
                time: Local::now(),
                kind: RecentEventKind::TriggerFired,
                instance: name.clone(),
                name: trigger.clone(),
                source: String::new(),
                detail: shown.clone(),
                variables: Vec::new(),
                error: None,
            });
            if shown.is_empty() {
                log::info!("{name}: {trigger} fired");
            } else {
                log::info!("{name}: {trigger} fired: {shown:?}");
            }
        }
        if !run_wires {
            return;
        }
        if self.state.is_retired(fired.instance_id) {
            log::debug!("{name}: {trigger} came after an apply removed the instance: no wire runs");
            return;
        }
        let Some(wires) = fired.wires.or_else(|| self.state.wiring.current()) else {
            return;
        };
        for (index, variables) in &fired.runs {
            if let Some(wire) = wires.wires.get(*index) {
                self.run_wire(wire, variables);
            }
        }
        if let Some((data, flags)) = &fired.untested {
            for (_, wire) in wires.of(fired.instance_id, trigger) {
                match wire.test.test(data, *flags) {
                    Ok(Some(variables)) => self.run_wire(wire, &variables),
                    Ok(None) => {
                        log::debug!("wire {}: {name}: {trigger} does not match", wire.number)
                    }
                    Err(e) => log::error!(
                        "wire {}: {name}: testing {trigger} failed: {e}",
                        wire.number
                    ),
                }
            }
        }
    }

    fn run_wire(&self, wire: &Wire, variables: &[Vec<u8>]) {
        for (source, call) in &wire.actions {
            // Errors are logged and recorded by run_action; the next
            // action still runs, as on a controller.
            let _ = self.state.run_action(call, variables, source);
        }
        wire.counters.wire_runs.fetch_add(1, Ordering::Relaxed);
        if let Some(rate) = wire.rate.record(Instant::now()) {
            self.warn_looping(wire, rate);
        }
    }

    /// Names the wire, its trigger and its actions: enough to find the loop.
    fn warn_looping(&self, wire: &Wire, rate: u64) {
        let actions: Vec<String> = wire
            .actions
            .iter()
            .map(|(_, call)| format!("{}: {}", call.instance.name, call.action))
            .collect();
        log::warn!(
            "wire {} ({}: {} -> {}) ran {rate} times in the last second, over {LOOPING_RATE} a \
             second for {LOOPING_FOR} s in a row: it is probably looping (an action whose message \
             comes back, e.g. from an echo server, and matches the trigger again). It is listed \
             in looping_wires of GET /io_modules while it lasts; this is logged once a minute",
            wire.number,
            self.name(wire.instance_id),
            wire.trigger,
            actions.join(", ")
        );
    }

    fn name(&self, instance_id: u64) -> String {
        self.state.name_of(instance_id)
    }

    /// Says what the queue could not carry: never silent. `now`: report
    /// triggers not logged one by one without waiting for the next second.
    fn report(&mut self, now: bool) {
        let lost = self.queue.lost.load(Ordering::Relaxed);
        if lost > self.lost_reported {
            log::error!(
                "{} trigger(s) were lost (counted in events_lost of GET /io_modules): the host's \
                 queue was full and their module cannot hold them (it has no flow control)",
                lost - self.lost_reported
            );
            self.lost_reported = lost;
        }
        let unshown = self.queue.unshown.load(Ordering::Relaxed);
        if unshown > self.unshown_reported {
            log::warn!(
                "{} status change(s) or module log line(s) were not shown: the host's queue was full",
                unshown - self.unshown_reported
            );
            self.unshown_reported = unshown;
        }
        let unrecorded = self.queue.unrecorded.load(Ordering::Relaxed);
        if unrecorded > self.unrecorded_reported
            && (now
                || self
                    .unrecorded_at
                    .is_none_or(|at| at.elapsed() >= UNRECORDED_EVERY))
        {
            log::info!(
                "{} more trigger(s) fired while the host was busy and were not logged one by one \
                 (GET /io_modules counts every trigger)",
                unrecorded - self.unrecorded_reported
            );
            self.unrecorded_reported = unrecorded;
            self.unrecorded_at = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event_queue::Admission;

    #[test]
    fn the_engine_stops_on_shutdown_and_leaves_later_events_for_drain() {
        let queue = Arc::new(EventQueue::default());
        queue.shutdown("test");
        let fired = Fired {
            instance_id: 1,
            trigger: "Disconnected".into(),
            shown: Some(String::new()),
            runs: Vec::new(),
            untested: None,
            wires: None,
        };
        queue.offer(HostEvent::Fired(fired), 10, true, Admission::Record, 1);
        let state = Arc::new(HostState::default());
        let mut engine = Engine::new(state.clone(), queue);
        assert_eq!(engine.run(), "test");
        assert!(state.recent.snapshot().is_empty());
        engine.drain();
        let recent = state.recent.snapshot();
        assert_eq!(recent.len(), 1);
        assert_eq!(recent[0].name, "Disconnected");
        assert_eq!(recent[0].instance, "instance 1");
    }

    #[test]
    fn losses_are_reported_once() {
        let queue = Arc::new(EventQueue::default());
        queue.lost();
        queue.lost();
        let mut engine = Engine::new(Arc::new(HostState::default()), queue);
        engine.drain();
        assert_eq!(engine.lost_reported, 2);
    }
}
