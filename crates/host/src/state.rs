//! What the running host shares between its threads: the loaded modules, the
//! instances of the project, and a ring of recent events with a live feed of
//! it for the status page. The trigger engine (`engine`) and the HTTP server
//! (`http`) both run actions through [`HostState::run_action`], so every
//! action is logged and recorded the same way whoever asked for it.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Local};

use super::abi::{CallError, Instance, LoadError, Module, ModuleSource, PreparedAction};
use super::engine::Wiring;
use super::event_path::Counters;
use super::event_queue::EventQueue;
use super::manifest::ModuleManifest;
use super::project::Project;

/// How many events the ring keeps for the status page.
pub const RECENT_EVENTS: usize = 500;

/// How many live events may wait for one subscriber (a status page's
/// stream). One that falls further behind is dropped from the feed, which
/// ends its stream: the page reconnects and starts again from a snapshot,
/// so it is never silently missing events.
pub const SUBSCRIBER_BACKLOG: usize = 4096;

/// A loaded module with the id `/io_modules` shows for it. Modules are
/// loaded on demand (at load, by an apply, by `POST /modules`) and kept
/// until the host stops.
pub struct LoadedModule {
    pub id: u64,
    /// Where it was loaded from: a file's path as resolved (before
    /// canonicalising), or the module built into the executable.
    pub source: ModuleSource,
    pub module: Module,
}

/// A project instance, created and running.
pub struct RunningInstance {
    pub name: String,
    pub module: Arc<LoadedModule>,
    pub instance: Instance,
    /// Triggers fired, wires run, events lost (`GET /io_modules`).
    pub counters: Arc<Counters>,
    /// The properties it was created with (secrets included): an apply
    /// keeps the instance, and its connection, while they are unchanged.
    pub properties: serde_json::Map<String, serde_json::Value>,
}

impl RunningInstance {
    pub fn id(&self) -> u64 {
        self.instance.id()
    }

    pub fn manifest(&self) -> &ModuleManifest {
        self.module.module.manifest()
    }

    /// The instance's status variables as the module reports them
    /// (`[{"key","label","value","timestamp"}]`); empty if it reports none
    /// or something that is not a JSON array (logged).
    pub fn status(&self) -> Vec<serde_json::Value> {
        let Some(text) = self.instance.status_json() else {
            return Vec::new();
        };
        match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(serde_json::Value::Array(status)) => status,
            _ => {
                log::warn!(
                    "{}: the module's status is not a JSON array: {text}",
                    self.name
                );
                Vec::new()
            }
        }
    }
}

/// An action ready to run: properties serialised once, and a copy safe to
/// show (secret properties masked) for logs and the recent-events ring.
#[derive(Clone)]
pub struct ActionCall {
    /// The instance it runs on (a wire of an older configuration may still
    /// name one an apply destroyed: the module then refuses the call).
    pub instance: Arc<RunningInstance>,
    pub action: String,
    pub properties_json: String,
    pub shown: String,
    /// The action compiled once (`iom_action_prepare`) for wires and startup
    /// actions; None for one-off calls (the page's action form) and for
    /// modules without prepared actions.
    pub prepared: Option<Arc<PreparedAction>>,
}

impl ActionCall {
    /// Properties the instance's manifest marks `secret` never appear in
    /// `shown`.
    pub fn new(
        instance: &Arc<RunningInstance>,
        action: &str,
        properties: &serde_json::Map<String, serde_json::Value>,
    ) -> ActionCall {
        ActionCall {
            instance: instance.clone(),
            action: action.to_string(),
            properties_json: serde_json::Value::Object(properties.clone()).to_string(),
            shown: shown_properties(instance.manifest(), action, properties),
            prepared: None,
        }
    }
}

/// An action's properties as logs and the page show them: secret ones
/// (by `manifest`) as "(secret)"; empty when there are none.
pub fn shown_properties(
    manifest: &ModuleManifest,
    action: &str,
    properties: &serde_json::Map<String, serde_json::Value>,
) -> String {
    let spec = manifest.action(action);
    let shown: serde_json::Map<String, serde_json::Value> = properties
        .iter()
        .map(|(name, value)| {
            let secret = spec
                .and_then(|s| s.property(name))
                .is_some_and(|p| p.secret);
            let value = if secret {
                "(secret)".into()
            } else {
                value.clone()
            };
            (name.clone(), value)
        })
        .collect();
    if shown.is_empty() {
        String::new()
    } else {
        serde_json::Value::Object(shown).to_string()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecentEventKind {
    TriggerFired,
    ActionRun,
    ActionError,
}

/// One line of the host's recent history.
///
/// Built only from what is safe to show: an action's properties are its
/// [`ActionCall::shown`] form, so a secret cannot reach the ring, the live
/// feed or the status page through here.
#[derive(Debug, Clone)]
pub struct RecentEvent {
    pub time: DateTime<Local>,
    pub kind: RecentEventKind,
    pub instance: String,
    /// The trigger or action name.
    pub name: String,
    /// Who ran an action: "wire 2", "startup 1", "http"; empty for triggers.
    pub source: String,
    /// The trigger's data, or the action's properties (secrets masked).
    pub detail: String,
    /// The trigger variables an action ran with.
    pub variables: Vec<String>,
    /// The module's message when an action failed.
    pub error: Option<String>,
}

/// What the live feed carries to each subscriber.
#[derive(Debug)]
pub enum LiveEvent {
    /// An event just pushed into the ring.
    Recent(RecentEvent),
    /// A status variable of an instance changed.
    Status {
        /// The instance's id.
        instance: u64,
        key: String,
        value: String,
        timestamp: String,
    },
    /// An apply changed the running project (`{"applied":{…}}`): open
    /// pages refresh.
    Project(serde_json::Value),
}

/// What a new subscriber gets: the ring as it was when it subscribed and,
/// from then on, every live event, with nothing lost or repeated between
/// the two.
pub struct Subscription {
    pub recent: Vec<RecentEvent>,
    /// Ends (disconnects) when the feed closes or the subscriber fell more
    /// than [`SUBSCRIBER_BACKLOG`] events behind.
    pub events: Receiver<Arc<LiveEvent>>,
}

/// The last [`RECENT_EVENTS`] events, oldest first, and the live feed of
/// them (plus status changes) to the status page's streams.
#[derive(Default)]
pub struct RecentEvents {
    inner: Mutex<Recent>,
}

#[derive(Default)]
struct Recent {
    ring: VecDeque<RecentEvent>,
    subscribers: Vec<SyncSender<Arc<LiveEvent>>>,
    /// Set when the host stops serving: no new subscriber is taken.
    closed: bool,
}

impl Recent {
    /// Sends to every subscriber without ever blocking the caller (the
    /// engine's thread): a full or gone subscriber is dropped.
    fn publish(&mut self, event: LiveEvent) {
        if self.subscribers.is_empty() {
            return;
        }
        let event = Arc::new(event);
        self.subscribers
            .retain(|subscriber| match subscriber.try_send(event.clone()) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    log::warn!(
                        "a status page fell more than {SUBSCRIBER_BACKLOG} events behind; \
                         its live stream restarts from a fresh snapshot"
                    );
                    false
                }
                Err(TrySendError::Disconnected(_)) => false,
            });
    }
}

impl RecentEvents {
    pub fn push(&self, event: RecentEvent) {
        let mut recent = self.lock();
        if recent.ring.len() == RECENT_EVENTS {
            recent.ring.pop_front();
        }
        recent.ring.push_back(event.clone());
        // Under the same lock as the ring, so subscribers see events in ring
        // order and `subscribe` can neither miss nor repeat one.
        recent.publish(LiveEvent::Recent(event));
    }

    /// Tells the subscribers that a status variable changed (not kept: the
    /// module's status snapshot is the truth for a new subscriber).
    pub fn status_changed(&self, instance: u64, key: &str, value: &str, timestamp: &str) {
        self.lock().publish(LiveEvent::Status {
            instance,
            key: key.to_string(),
            value: value.to_string(),
            timestamp: timestamp.to_string(),
        });
    }

    /// Tells the subscribers that an apply changed the project.
    pub fn project_changed(&self, applied: serde_json::Value) {
        self.lock().publish(LiveEvent::Project(applied));
    }

    /// The ring as it is (the streams take it with `subscribe`).
    #[cfg(test)]
    pub fn snapshot(&self) -> Vec<RecentEvent> {
        self.lock().ring.iter().cloned().collect()
    }

    /// The ring now and every event from now on; None once the feed closed.
    pub fn subscribe(&self) -> Option<Subscription> {
        let mut recent = self.lock();
        if recent.closed {
            return None;
        }
        let (sender, events) = sync_channel(SUBSCRIBER_BACKLOG);
        recent.subscribers.push(sender);
        Some(Subscription {
            recent: recent.ring.iter().cloned().collect(),
            events,
        })
    }

    /// Ends every subscription (their streams finish) and takes no new one.
    pub fn close_feed(&self) {
        let mut recent = self.lock();
        recent.closed = true;
        recent.subscribers.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One configuration of the running project: its instances and the project
/// they were created from. An apply builds a new one and swaps it in whole
/// (`HostState::config`); whoever holds a snapshot keeps a consistent view.
#[derive(Default)]
pub struct Config {
    /// In project order.
    pub instances: Vec<Arc<RunningInstance>>,
    /// The project the instances were created from, as the host read it
    /// (with the demo's Port filled in): the status page shows each
    /// instance's target and wires from it. None for a state made in tests.
    pub project: Option<Project>,
}

impl Config {
    pub fn instance(&self, name: &str) -> Option<&Arc<RunningInstance>> {
        self.instances.iter().find(|i| i.name == name)
    }

    pub fn instance_by_id(&self, id: u64) -> Option<&Arc<RunningInstance>> {
        self.instances.iter().find(|i| i.id() == id)
    }

    /// `"a", "b"` for messages that list what exists.
    pub fn instance_names(&self) -> String {
        super::manifest::quoted_list(self.instances.iter().map(|i| i.name.as_str()))
    }
}

/// The running project, shared by the engine, the HTTP server and the
/// instances' sinks.
#[derive(Default)]
pub struct HostState {
    /// Swapped whole by an apply (`crate::apply`).
    config: RwLock<Arc<Config>>,
    /// Every module loaded, in load order (ids from 1), kept.
    pub modules: Mutex<Vec<Arc<LoadedModule>>>,
    /// The wires, shared with every instance's sink (`crate::engine`).
    pub wiring: Arc<Wiring>,
    pub queue: Arc<EventQueue>,
    pub recent: RecentEvents,
    /// Names of instances an apply destroyed, by id, for the lines of what
    /// they report while closing.
    retired: Mutex<HashMap<u64, String>>,
    /// The last instance id given (ids are never reused; the ABI reserves 0).
    last_id: AtomicU64,
    /// Where the project came from, and the lock every apply holds.
    pub source: Mutex<Source>,
}

/// Where the running project came from; held locked for a whole apply, so
/// applies (HTTP, SIGHUP) happen one at a time.
#[derive(Default)]
pub struct Source {
    /// The project file; None while running the built-in demo unsaved.
    pub file: Option<PathBuf>,
    /// The file's bytes as loaded or last saved (a 409 when they differ).
    pub loaded: Vec<u8>,
    /// Relative module paths are resolved against this directory.
    pub project_dir: PathBuf,
    /// The module of instances that name none.
    pub default_module: ModuleSource,
}

impl HostState {
    pub fn new(queue: Arc<EventQueue>, source: Source) -> HostState {
        HostState {
            queue,
            source: Mutex::new(source),
            ..HostState::default()
        }
    }

    /// The configuration now (a snapshot: an apply does not change it).
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Swaps in a new configuration; returns the one it replaces.
    pub fn set_config(&self, config: Config) -> Arc<Config> {
        std::mem::replace(
            &mut *self.config.write().unwrap_or_else(|e| e.into_inner()),
            Arc::new(config),
        )
    }

    /// A fresh instance id.
    pub fn next_id(&self) -> u64 {
        self.last_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Remembers the name of an instance being destroyed.
    pub fn retire(&self, instance: &RunningInstance) {
        self.retired
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(instance.id(), instance.name.clone());
    }

    /// Whether an apply destroyed the instance with this id.
    pub fn is_retired(&self, id: u64) -> bool {
        self.retired
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&id)
    }

    /// The instance's name for log lines, also once an apply destroyed it.
    pub fn name_of(&self, id: u64) -> String {
        if let Some(instance) = self.config().instance_by_id(id) {
            return instance.name.clone();
        }
        match self
            .retired
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
        {
            Some(name) => name.clone(),
            None => format!("instance {id}"),
        }
    }

    /// The module loaded from `source` (files by canonical path), loading it
    /// now if no instance used it yet.
    pub fn module(&self, source: &ModuleSource) -> Result<Arc<LoadedModule>, LoadError> {
        let canonical = |source: &ModuleSource| match source {
            ModuleSource::File(path) => {
                ModuleSource::File(path.canonicalize().unwrap_or_else(|_| path.clone()))
            }
            ModuleSource::BuiltIn => ModuleSource::BuiltIn,
        };
        let key = canonical(source);
        let mut modules = self.modules.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = modules.iter().find(|m| canonical(&m.source) == key) {
            return Ok(found.clone());
        }
        let module = Module::open(source)?;
        log::info!(
            "loaded module {} {} from {source}",
            module.manifest().module.name,
            module.manifest().module.version,
        );
        let loaded = Arc::new(LoadedModule {
            id: modules.len() as u64 + 1,
            source: source.clone(),
            module,
        });
        modules.push(loaded.clone());
        Ok(loaded)
    }

    /// Every module loaded so far.
    pub fn modules(&self) -> Vec<Arc<LoadedModule>> {
        self.modules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Runs an action (returns at once: the module works on its own thread),
    /// logs it and records it. `variables` are the firing trigger's.
    pub fn run_action(
        &self,
        call: &ActionCall,
        variables: &[Vec<u8>],
        source: &str,
    ) -> Result<(), CallError> {
        let instance = &call.instance;
        let shown_variables: Vec<String> = variables.iter().map(|v| shorten(v)).collect();
        let with = describe_variables(&shown_variables);
        let result = match &call.prepared {
            Some(prepared) => prepared.run(variables),
            None => instance
                .instance
                .action(&call.action, &call.properties_json, variables),
        };
        // Recorded before it is logged, like fired triggers.
        self.recent.push(RecentEvent {
            time: Local::now(),
            kind: if result.is_ok() {
                RecentEventKind::ActionRun
            } else {
                RecentEventKind::ActionError
            },
            instance: instance.name.clone(),
            name: call.action.clone(),
            source: source.to_string(),
            detail: call.shown.clone(),
            variables: shown_variables,
            error: result.as_ref().err().map(|e| e.message.clone()),
        });
        let separator = if call.shown.is_empty() { "" } else { " " };
        match &result {
            Ok(()) => log::info!(
                "{source}: {}: {}{separator}{}{with}",
                instance.name,
                call.action,
                call.shown
            ),
            Err(e) => log::error!(
                "{source}: {}: {}{separator}{}{with} failed: {e}",
                instance.name,
                call.action,
                call.shown
            ),
        }
        result
    }

    /// Destroys every instance, last created first (each closes its
    /// connection with 1000). Failures are logged: shutdown goes on.
    pub fn destroy_all(&self) {
        destroy(&self.config().instances);
    }
}

/// Destroys `instances`, last first (each closes its connection with
/// 1000). Failures are logged: the caller goes on.
pub fn destroy(instances: &[Arc<RunningInstance>]) {
    for instance in instances.iter().rev() {
        log::debug!("{}: destroying", instance.name);
        if let Err(e) = instance.instance.destroy() {
            log::error!("{}: could not be destroyed: {e}", instance.name);
        }
    }
}

/// Bytes as text for a log line: lossy UTF-8, at most 200 characters (a
/// message may be megabytes; the log is for people).
pub fn shorten(bytes: &[u8]) -> String {
    shorten_to(bytes, 200)
}

/// Bytes as text, at most `max` characters, saying how long it was if cut.
pub fn shorten_to(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    match text.char_indices().nth(max) {
        None => text.into_owned(),
        Some((cut, _)) => format!("{}… ({} bytes)", &text[..cut], bytes.len()),
    }
}

/// ` with <1> = "ping", <2> = "x"`, or nothing when there are none.
fn describe_variables(variables: &[String]) -> String {
    if variables.is_empty() {
        return String::new();
    }
    let list: Vec<String> = variables
        .iter()
        .enumerate()
        .map(|(i, v)| format!("<{}> = {v:?}", i + 1))
        .collect();
    format!(" with {}", list.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: usize) -> RecentEvent {
        RecentEvent {
            time: Local::now(),
            kind: RecentEventKind::TriggerFired,
            instance: "a".into(),
            name: format!("t{n}"),
            source: String::new(),
            detail: String::new(),
            variables: Vec::new(),
            error: None,
        }
    }

    #[test]
    fn the_ring_keeps_the_last_500_events() {
        let recent = RecentEvents::default();
        for n in 0..RECENT_EVENTS + 7 {
            recent.push(event(n));
        }
        let kept = recent.snapshot();
        assert_eq!(kept.len(), RECENT_EVENTS);
        assert_eq!(kept[0].name, "t7");
        assert_eq!(kept.last().unwrap().name, format!("t{}", RECENT_EVENTS + 6));
    }

    #[test]
    fn a_subscriber_gets_the_ring_then_every_later_event_once() {
        let recent = RecentEvents::default();
        recent.push(event(1));
        let subscription = recent.subscribe().unwrap();
        recent.push(event(2));
        recent.status_changed(0, "LastSent", "hi", "2026-01-01T00:00:00.000+00:00");
        let names: Vec<String> = subscription.recent.iter().map(|e| e.name.clone()).collect();
        assert_eq!(names, ["t1"]);
        let live: Vec<Arc<LiveEvent>> = subscription.events.try_iter().collect();
        assert_eq!(live.len(), 2);
        assert!(matches!(&*live[0], LiveEvent::Recent(e) if e.name == "t2"));
        assert!(matches!(&*live[1], LiveEvent::Status { key, .. } if key == "LastSent"));
    }

    #[test]
    fn a_subscriber_that_falls_behind_is_dropped_not_blocked_on() {
        let recent = RecentEvents::default();
        let slow = recent.subscribe().unwrap();
        for n in 0..SUBSCRIBER_BACKLOG + 1 {
            recent.push(event(n));
        }
        // The backlog is delivered, then the stream ends: the page resyncs.
        assert_eq!(slow.events.try_iter().count(), SUBSCRIBER_BACKLOG);
        assert!(slow.events.recv().is_err());
        assert_eq!(recent.snapshot().len(), RECENT_EVENTS);
    }

    #[test]
    fn closing_the_feed_ends_subscriptions_and_refuses_new_ones() {
        let recent = RecentEvents::default();
        let subscription = recent.subscribe().unwrap();
        recent.close_feed();
        assert!(subscription.events.recv().is_err());
        assert!(recent.subscribe().is_none());
    }

    #[test]
    fn secret_properties_are_masked_in_what_is_shown() {
        let manifest = ModuleManifest::parse(include_str!("../../wsio/module.toml")).unwrap();
        let properties = serde_json::json!({"Bearer Token": "s3cr3t"});
        let shown = shown_properties(&manifest, "Connect", properties.as_object().unwrap());
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("(secret)"), "{shown}");
    }

    #[test]
    fn long_data_is_shortened_for_logs() {
        assert_eq!(shorten(b"ping"), "ping");
        let long = vec![b'x'; 1000];
        let shown = shorten(&long);
        assert!(shown.ends_with("… (1000 bytes)"), "{shown}");
        assert!(shown.len() < 230);
    }

    #[test]
    fn variables_are_numbered_from_one() {
        assert_eq!(describe_variables(&[]), "");
        assert_eq!(describe_variables(&["ping".into()]), " with <1> = \"ping\"");
    }
}
