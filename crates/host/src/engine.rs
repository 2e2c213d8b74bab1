//! The trigger engine: the host's own thread where everything the modules
//! report is handled, in order.
//!
//! Module callbacks (on the modules' threads) only push a [`HostEvent`] into
//! one bounded queue ([`EventQueue`]). The engine takes them out one at a time:
//! a fired trigger is logged and recorded, and every wire whose `when` names
//! that instance and trigger has its prepared test run on the data; on a
//! match the wire's actions run with the trigger variables. Actions return at
//! once, so the engine never waits on a module. Status changes go to the
//! status page's live feed (`state`), which never blocks either. Module log
//! lines are forwarded to `log` from here, so they interleave with trigger
//! and action lines in the order they happened.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use chrono::Local;

use super::abi::{EventSink, ModuleEvent, ModuleLogLevel, PreparedTrigger};
use super::state::{ActionCall, HostState, RecentEvent, RecentEventKind, shorten};

/// Events queued for the engine. Big enough to absorb bursts (one trigger per
/// WebSocket message) without ever blocking a module thread.
pub const QUEUE_CAPACITY: usize = 16 * 1024;

/// What the engine handles.
#[derive(Debug)]
pub enum HostEvent {
    Module(ModuleEvent),
    /// Stop the engine (Ctrl-C, SIGTERM); the reason is logged.
    Shutdown(&'static str),
}

/// The sending side of the engine's queue.
#[derive(Clone)]
pub struct EventQueue {
    sender: SyncSender<HostEvent>,
    /// Events lost because the queue was full: reported, never silent.
    dropped: Arc<AtomicU64>,
}

impl EventQueue {
    pub fn new() -> (EventQueue, Receiver<HostEvent>, Arc<AtomicU64>) {
        let (sender, receiver) = sync_channel(QUEUE_CAPACITY);
        let dropped = Arc::new(AtomicU64::new(0));
        (
            EventQueue {
                sender,
                dropped: dropped.clone(),
            },
            receiver,
            dropped,
        )
    }

    /// A sink for one instance's callbacks. It never blocks the module: when
    /// the queue is full the event is counted and the engine reports it.
    pub fn sink(&self) -> EventSink {
        let queue = self.clone();
        Box::new(move |event| {
            if let Err(TrySendError::Full(_)) = queue.sender.try_send(HostEvent::Module(event)) {
                queue.dropped.fetch_add(1, Ordering::Relaxed);
            }
        })
    }

    /// Asks the engine to stop. Blocks while the queue is full (the engine
    /// is draining it), so a shutdown request is never lost.
    pub fn shutdown(&self, reason: &'static str) {
        let _ = self.sender.send(HostEvent::Shutdown(reason));
    }
}

/// A project wire, prepared.
pub struct Wire {
    /// 1-based, as in the project file and in log lines.
    pub number: usize,
    pub instance_id: u64,
    pub trigger: String,
    pub test: PreparedTrigger,
    /// Run in order; the string names the action in log lines ("wire 2").
    pub actions: Vec<(String, ActionCall)>,
}

pub struct Engine {
    state: Arc<HostState>,
    wires: Vec<Wire>,
    events: Receiver<HostEvent>,
    dropped: Arc<AtomicU64>,
    dropped_reported: u64,
}

impl Engine {
    pub fn new(
        state: Arc<HostState>,
        wires: Vec<Wire>,
        events: Receiver<HostEvent>,
        dropped: Arc<AtomicU64>,
    ) -> Engine {
        Engine {
            state,
            wires,
            events,
            dropped,
            dropped_reported: 0,
        }
    }

    /// Handles events until a shutdown request; returns its reason.
    pub fn run(&mut self) -> &'static str {
        loop {
            let Ok(event) = self.events.recv() else {
                return "the event queue closed";
            };
            match event {
                HostEvent::Module(event) => self.handle(event, true),
                HostEvent::Shutdown(reason) => return reason,
            }
        }
    }

    /// Handles what is left in the queue once the instances are destroyed
    /// (e.g. their Disconnected triggers): logged and recorded, but no wire
    /// runs, since no instance is left to act.
    pub fn drain(&mut self) {
        while let Ok(event) = self.events.try_recv() {
            if let HostEvent::Module(event) = event {
                self.handle(event, false);
            }
        }
    }

    fn handle(&mut self, event: ModuleEvent, run_wires: bool) {
        self.report_dropped();
        match event {
            ModuleEvent::TriggerFired {
                instance_id,
                trigger,
                data,
                flags,
            } => self.trigger_fired(instance_id, &trigger, &data, flags, run_wires),
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
                if let Some(index) = self.state.instance_index_by_id(instance_id) {
                    self.state
                        .recent
                        .status_changed(index, &key, &value, &timestamp);
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

    fn trigger_fired(
        &self,
        instance_id: u64,
        trigger: &str,
        data: &[u8],
        flags: u32,
        run_wires: bool,
    ) {
        let name = self.name(instance_id);
        let shown = shorten(data);
        // Into the event ring before the log line: whoever reads the log
        // (a person, a test) then finds it on the status page too.
        self.state.recent.push(RecentEvent {
            time: Local::now(),
            kind: RecentEventKind::TriggerFired,
            instance: name.clone(),
            name: trigger.to_string(),
            source: String::new(),
            detail: shown.clone(),
            variables: Vec::new(),
            error: None,
        });
        if data.is_empty() {
            log::info!("{name}: {trigger} fired");
        } else {
            log::info!("{name}: {trigger} fired: {shown:?}");
        }
        if !run_wires {
            return;
        }
        for wire in &self.wires {
            if wire.instance_id != instance_id || wire.trigger != trigger {
                continue;
            }
            let variables = match wire.test.test(data, flags) {
                Ok(Some(variables)) => variables,
                Ok(None) => {
                    log::debug!("wire {}: {name}: {trigger} does not match", wire.number);
                    continue;
                }
                Err(e) => {
                    log::error!(
                        "wire {}: {name}: testing {trigger} failed: {e}",
                        wire.number
                    );
                    continue;
                }
            };
            for (source, call) in &wire.actions {
                // Errors are logged and recorded by run_action; the next
                // action still runs, as on a controller.
                let _ = self.state.run_action(call, &variables, source);
            }
        }
    }

    fn name(&self, instance_id: u64) -> String {
        match self.state.instance_index_by_id(instance_id) {
            Some(index) => self.state.instances[index].name.clone(),
            None => format!("instance {instance_id}"),
        }
    }

    fn report_dropped(&mut self) {
        let dropped = self.dropped.load(Ordering::Relaxed);
        if dropped > self.dropped_reported {
            log::error!(
                "{} module events were lost because the host's queue ({QUEUE_CAPACITY} events) \
                 was full; the host cannot keep up with the modules",
                dropped - self.dropped_reported
            );
            self.dropped_reported = dropped;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_counts_lost_events_instead_of_blocking() {
        let (queue, receiver, dropped) = EventQueue::new();
        let sink = queue.sink();
        for _ in 0..QUEUE_CAPACITY + 3 {
            sink(ModuleEvent::Log {
                instance_id: 1,
                level: ModuleLogLevel::Normal,
                message: String::new(),
            });
        }
        assert_eq!(dropped.load(Ordering::Relaxed), 3);
        let mut engine = Engine::new(
            Arc::new(HostState::default()),
            Vec::new(),
            receiver,
            dropped,
        );
        engine.drain();
        assert_eq!(engine.dropped_reported, 3);
    }

    #[test]
    fn the_engine_stops_on_shutdown_and_leaves_later_events_for_drain() {
        let (queue, receiver, dropped) = EventQueue::new();
        let sink = queue.sink();
        queue.shutdown("test");
        sink(ModuleEvent::TriggerFired {
            instance_id: 1,
            trigger: "Disconnected".into(),
            data: Vec::new(),
            flags: 0,
        });
        let state = Arc::new(HostState::default());
        let mut engine = Engine::new(state.clone(), Vec::new(), receiver, dropped);
        assert_eq!(engine.run(), "test");
        assert!(state.recent.snapshot().is_empty());
        engine.drain();
        let recent = state.recent.snapshot();
        assert_eq!(recent.len(), 1);
        assert_eq!(recent[0].name, "Disconnected");
        assert_eq!(recent[0].instance, "instance 1");
    }
}
