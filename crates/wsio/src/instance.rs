//! Instance: the Rust API of one configured WebSocket Client.
//!
//! An [`Instance`] is what a controller creates per configured module
//! instance: properties in, actions and status out, triggers and log lines
//! delivered to a [`Host`](crate::Host). Actions return at once; the work happens on the
//! driver thread. Dropping the instance closes cleanly (close frame 1000,
//! Disconnected fires if it was connected) and returns only when no further
//! callback can arrive. The C ABI (`abi`) is a thin layer over this.
//!
//! ```no_run
//! use std::sync::Arc;
//! use wsio::{Host, Instance, LogLevel, Options, StatusVariable, Trigger};
//!
//! struct Print;
//! impl Host for Print {
//!     fn fire_trigger(&self, trigger: Trigger, data: &[u8], _binary: bool) {
//!         println!("{}: {}", trigger.name(), String::from_utf8_lossy(data));
//!     }
//!     fn status_changed(&self, v: &StatusVariable) { println!("{} = {}", v.label, v.value); }
//!     fn log(&self, _level: LogLevel, message: &str) { println!("{message}"); }
//! }
//!
//! let instance = Instance::from_json(
//!     r#"{"Hostname": "127.0.0.1", "Port": 8765, "Path": "/v3/1?api_key=demo&notify_self=1"}"#,
//!     Arc::new(Print),
//!     Options::default(),
//! ).unwrap();
//! instance.action("Connect", &serde_json::json!({}), &[] as &[&str]).unwrap();
//! ```

use crate::driver::{Input, Runner, Shared, on_driver_thread, shown_route, spawn};
use crate::host::Host;
use crate::inbox::Inbox;
use crate::machine::{Machine, Outbound, Settings};
use crate::manifest::{Manifest, names};
use crate::matching::{fill_placeholders, has_placeholders};
use crate::message_type::{MessageType, compose};
use crate::properties::{
    Properties, PropertyError, PropertyValues, Protocol, validate_bearer_token,
};
use crate::status::{StatusVariable, StatusVariables};
use crate::tls;
use crate::vocabulary::{LogLevel, Secret, Timing};
use async_tungstenite::tungstenite::Utf8Bytes;
use futures_rustls::pki_types::CertificateDer;
use serde_json::Value;
use smol::Task;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the C ABI needs of the driver: it goes through this layer, never
/// around it.
pub(crate) mod driver {
    /// Whether the caller is on the driver thread, i.e. inside a host
    /// callback, where waiting for an instance would deadlock.
    pub(crate) use crate::driver::on_driver_thread;
}

/// At most this many Send Message actions may wait for the socket; more are
/// refused with [`ActionError::Backlog`] instead of growing memory without
/// bound when a server stops reading.
pub const SEND_BACKLOG: usize = 10_000;

/// At most this many bytes of Send Message payload may wait for the socket
/// (whichever of this and [`SEND_BACKLOG`] comes first): 10,000 large
/// messages would otherwise hold gigabytes. One message larger than this
/// is still accepted when nothing else waits.
pub const SEND_BACKLOG_BYTES: usize = 16 * 1024 * 1024;

/// Options that are not instance properties: for hosts embedding the Rust
/// API and for tests.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Extra trusted root certificates for WSS (in addition to the webpki
    /// roots and `WSIO_EXTRA_CA_FILE`).
    pub extra_root_certificates: Vec<CertificateDer<'static>>,
    /// Seed of the reconnect jitter (None: random).
    pub jitter_seed: Option<u64>,
    /// Keep-alive, connect and close timeouts (default: the module's).
    pub timing: Timing,
}

/// Why an instance could not be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceError {
    /// A property is bad: the message names it and what is accepted.
    Properties(PropertyError),
    /// TLS could not be set up (e.g. an unreadable extra CA file).
    Tls(String),
}

impl fmt::Display for InstanceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstanceError::Properties(e) => e.fmt(f),
            InstanceError::Tls(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for InstanceError {}

/// Why an action was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionError {
    /// Unknown action, or bad action properties.
    Invalid(PropertyError),
    /// Send Message while the WebSocket is not established.
    NotEstablished { state: &'static str },
    /// Too many messages wait for the server to read them.
    Backlog { waiting: usize, bytes: usize },
    /// The instance is shutting down.
    Stopped,
}

impl fmt::Display for ActionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActionError::Invalid(e) => e.fmt(f),
            ActionError::NotEstablished { state } => write!(
                f,
                "Send Message failed: the WebSocket is not established (state: {state}); nothing was sent"
            ),
            ActionError::Backlog { waiting, bytes } => write!(
                f,
                "Send Message refused: {waiting} messages ({bytes} bytes) are already waiting for the server to read them (limit {SEND_BACKLOG} messages or {SEND_BACKLOG_BYTES} bytes); nothing was sent"
            ),
            ActionError::Stopped => f.write_str("the instance is shutting down"),
        }
    }
}

impl std::error::Error for ActionError {}

impl From<PropertyError> for ActionError {
    fn from(e: PropertyError) -> Self {
        ActionError::Invalid(e)
    }
}

/// An action with its properties parsed and placeholders filled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Connect { bearer_token: Option<Secret> },
    Disconnect,
    SendMessage { message: Outbound },
    ResetReconnect,
    ClearQueue,
}

impl Action {
    /// Parses an action by manifest name. String properties have `<1>`,
    /// `<2>` … replaced by `variables` (the firing trigger's variables).
    /// Send Message's Message Type As Received reads them too: it sends a
    /// binary frame when they are those of a binary message (the last, the
    /// Message Type, is `binary`), a text frame otherwise.
    pub fn parse<S: AsRef<str>>(
        name: &str,
        properties: &Value,
        variables: &[S],
    ) -> Result<Action, PropertyError> {
        let manifest = Manifest::get();
        let Some(spec) = manifest.action(name) else {
            return Err(PropertyError {
                property: String::new(),
                message: format!(
                    "unknown action \"{name}\"; this module offers {}",
                    Manifest::list(manifest.actions.iter().map(|a| a.name.as_str()))
                ),
            });
        };
        let owner = format!("action \"{name}\"");
        let values = PropertyValues::parse(&spec.properties, properties, &owner)?;
        Ok(match name {
            names::ACTION_CONNECT => {
                let token = fill_placeholders(&values.string(names::BEARER_TOKEN), variables);
                let token = token.trim();
                if token.is_empty() {
                    Action::Connect { bearer_token: None }
                } else {
                    validate_bearer_token(token)?;
                    Action::Connect {
                        bearer_token: Some(Secret::new(token.to_owned())),
                    }
                }
            }
            names::ACTION_DISCONNECT => Action::Disconnect,
            names::ACTION_RESET_RECONNECT => Action::ResetReconnect,
            names::ACTION_CLEAR_QUEUE => Action::ClearQueue,
            _ => Action::SendMessage {
                message: compose(
                    &values.string(names::MESSAGE),
                    MessageType::from_option(&values.string(names::MESSAGE_TYPE)),
                    variables,
                )?,
            },
        })
    }
}

/// An action with its properties parsed once, to run many times (a wire's
/// action, compiled when the controller loads its project): no JSON and no
/// property checks per run, and no copy of a message that has no
/// placeholder.
#[derive(Debug, Clone)]
pub struct PreparedAction {
    name: String,
    properties: Value,
    /// The action when it does not depend on the firing trigger's variables.
    fixed: Option<Action>,
    /// Send Message that does: its Message and Message Type.
    template: Option<(String, MessageType)>,
}

impl PreparedAction {
    /// Checks and compiles an action's properties (see [`Action::parse`]).
    /// A Binary message with placeholders is checked for hex when it runs,
    /// since its digits may come from the variables; so is As Received,
    /// which is hex or text by the firing message.
    pub fn prepare(name: &str, properties: &Value) -> Result<PreparedAction, PropertyError> {
        let templated = match properties {
            Value::Object(map) => map
                .values()
                .any(|v| v.as_str().is_some_and(has_placeholders)),
            _ => false,
        };
        let parsed = Action::parse(name, properties, &[] as &[&str]);
        let mut prepared = PreparedAction {
            name: name.to_owned(),
            properties: properties.clone(),
            fixed: None,
            template: None,
        };
        let kind = properties
            .get(names::MESSAGE_TYPE)
            .and_then(Value::as_str)
            .map_or(MessageType::Text, MessageType::from_option);
        match parsed {
            Ok(action) if !templated && kind != MessageType::AsReceived => {
                prepared.fixed = Some(action)
            }
            Ok(Action::SendMessage { .. }) => {
                prepared.template = Some(send_template(properties, kind))
            }
            Ok(_) => {}
            // Hex that a variable completes: checked per run.
            Err(e) if templated && e.property == names::MESSAGE => {
                prepared.template = Some(send_template(properties, kind))
            }
            Err(e) => return Err(e),
        }
        Ok(prepared)
    }

    /// The manifest name of the action.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The action with `<n>` placeholders filled from `variables`.
    pub fn action<S: AsRef<str>>(&self, variables: &[S]) -> Result<Action, PropertyError> {
        if let Some(action) = &self.fixed {
            return Ok(action.clone());
        }
        if let Some((template, kind)) = &self.template {
            return Ok(Action::SendMessage {
                message: compose(template, *kind, variables)?,
            });
        }
        Action::parse(&self.name, &self.properties, variables)
    }
}

/// Send Message's Message (checked by parsing: a string, default blank) and
/// Message Type, for [`PreparedAction`].
fn send_template(properties: &Value, kind: MessageType) -> (String, MessageType) {
    let message = properties.get(names::MESSAGE).and_then(Value::as_str);
    (message.unwrap_or_default().to_owned(), kind)
}

/// Send Message texts up to this many bytes reach the driver copied, not
/// shared ([`Instance::send_text`]); a longer copy would cost more than the
/// shared reference count it saves.
pub const COPIED_TEXT: usize = 1024;

/// One configured WebSocket Client. See the module documentation.
pub struct Instance {
    /// Send Message's check-and-queue and Disconnect's count-and-queue
    /// each run under the inbox's lock (`Inbox::push_with`), so no Send is
    /// accepted behind a queued Disconnect (it would be dropped when the
    /// Disconnect runs).
    inputs: Inbox<Input>,
    /// Send Message while not established is queued, not refused.
    queue_while_disconnected: bool,
    shared: Arc<Shared>,
    task: Mutex<Option<Task<()>>>,
}

impl Instance {
    /// Creates an instance from its properties. It starts disconnected.
    pub fn new(
        properties: Properties,
        host: Arc<dyn Host>,
        options: Options,
    ) -> Result<Instance, InstanceError> {
        let tls = match properties.protocol {
            Protocol::Ws => None,
            Protocol::Wss => {
                let mut roots = options.extra_root_certificates.clone();
                roots.extend(tls::roots_from_env().map_err(InstanceError::Tls)?);
                Some(
                    tls::shared_client_config(&properties.tls, &roots)
                        .map_err(InstanceError::Tls)?,
                )
            }
        };
        // Properties set the timeouts; Options may only shorten them (tests
        // of keep-alive in real time) — a default Options changes nothing.
        let defaults = Timing::default();
        let pick = |from_options: Duration, default: Duration, from_properties: Duration| {
            if from_options != default {
                from_options
            } else {
                from_properties
            }
        };
        let timing = Timing {
            keepalive_interval: pick(
                options.timing.keepalive_interval,
                defaults.keepalive_interval,
                properties.keepalive_interval,
            ),
            pong_timeout: pick(
                options.timing.pong_timeout,
                defaults.pong_timeout,
                properties.pong_timeout,
            ),
            connect_timeout: pick(
                options.timing.connect_timeout,
                defaults.connect_timeout,
                properties.connect_timeout,
            ),
            close_timeout: options.timing.close_timeout,
            idle_timeout: options.timing.idle_timeout.or(properties.idle_timeout),
        };
        let messaging = properties.messaging;
        let settings = Settings {
            timing,
            reconnect: properties.reconnect,
            messaging,
            keep_alive: properties.keep_alive,
            auto_reconnect: properties.auto_reconnect,
            extended_logging: properties.extended_logging,
            display_url: properties.display_url(),
            // The environment (Use System Proxy) is the process's own: what
            // it names now is what each connect will read.
            route: shown_route(
                &properties.proxy,
                &properties.hostname,
                properties.protocol == Protocol::Wss,
            ),
        };
        let seed = options.jitter_seed.unwrap_or_else(|| fastrand::u64(..));
        let machine = Machine::new(settings, seed);
        let shared = Arc::new(Shared {
            status: Mutex::new(StatusVariables::new()),
            established: AtomicBool::new(false),
            state_name: Mutex::new(machine.state_name()),
            pending_sends: AtomicUsize::new(0),
            pending_send_bytes: AtomicUsize::new(0),
            disconnects_pending: AtomicUsize::new(0),
            unwritten: AtomicUsize::new(0),
            unwritten_bytes: AtomicUsize::new(0),
        });
        let inputs = Inbox::new();
        for note in &properties.notes {
            let _ = inputs.push(Input::Log(LogLevel::Normal, note.clone()));
        }
        let properties = Arc::new(properties);
        let runner = Runner::new(
            machine,
            properties,
            host,
            tls,
            shared.clone(),
            inputs.clone(),
        );
        let task = spawn(Box::new(runner).run());
        Ok(Instance {
            inputs,
            queue_while_disconnected: messaging.queue_while_disconnected,
            shared,
            task: Mutex::new(Some(task)),
        })
    }

    /// Creates an instance from a JSON object of properties by manifest name.
    pub fn from_json(
        properties_json: &str,
        host: Arc<dyn Host>,
        options: Options,
    ) -> Result<Instance, InstanceError> {
        let properties =
            Properties::from_json_str(properties_json).map_err(InstanceError::Properties)?;
        Self::new(properties, host, options)
    }

    /// Runs an action by manifest name with its properties (a JSON object or
    /// `null`) and the firing trigger's variables for `<n>` placeholders.
    pub fn action<S: AsRef<str>>(
        &self,
        name: &str,
        properties: &Value,
        variables: &[S],
    ) -> Result<(), ActionError> {
        self.run(Action::parse(name, properties, variables)?)
    }

    /// Runs a parsed action. Returns at once.
    pub fn run(&self, action: Action) -> Result<(), ActionError> {
        match action {
            Action::Connect { bearer_token } => self.input(Input::Connect(bearer_token)),
            Action::Disconnect => self
                .inputs
                .push_with(|_| {
                    self.shared
                        .disconnects_pending
                        .fetch_add(1, Ordering::SeqCst);
                    Ok::<_, ()>(Input::Disconnect)
                })
                .map(|_| ())
                .map_err(|_| ActionError::Stopped),
            Action::ResetReconnect => self.input(Input::ResetReconnect),
            Action::ClearQueue => self.input(Input::ClearQueue),
            Action::SendMessage { message } => self.send(message),
        }
    }

    /// Connect (optionally with a bearer token).
    pub fn connect(&self, bearer_token: Option<&str>) -> Result<(), ActionError> {
        let properties = match bearer_token {
            Some(token) => serde_json::json!({ names::BEARER_TOKEN: token }),
            None => Value::Null,
        };
        self.action(names::ACTION_CONNECT, &properties, &[] as &[&str])
    }

    pub fn disconnect(&self) -> Result<(), ActionError> {
        self.run(Action::Disconnect)
    }

    /// Send a text message. See [`Instance::send`].
    pub fn send_message(&self, message: impl Into<String>) -> Result<(), ActionError> {
        self.send(Outbound::Text(Utf8Bytes::from(message.into())))
    }

    /// Send a message. When the WebSocket is not established it is queued
    /// (Queue While Disconnected) or refused with an error (and an error in
    /// the log): nothing is sent.
    pub fn send(&self, message: Outbound) -> Result<(), ActionError> {
        match message {
            Outbound::Text(text) if text.len() <= COPIED_TEXT => self.send_text(&text),
            message => self.send_input(message.len(), |_| Input::Send(message)),
        }
    }

    /// Send a text message given by reference (see [`Instance::send`]).
    /// Up to [`COPIED_TEXT`] bytes it is copied into the instance's inbox
    /// (see `inbox`), with no allocation and no count shared with the
    /// driver thread.
    pub fn send_text(&self, text: &str) -> Result<(), ActionError> {
        if text.len() > COPIED_TEXT {
            return self.send_input(text.len(), |_| {
                Input::Send(Outbound::Text(Utf8Bytes::from(text.to_owned())))
            });
        }
        self.send_input(text.len(), |bytes| {
            bytes.extend_from_slice(text.as_bytes());
            Input::SendText(text.len())
        })
    }

    /// Send Message's check-and-queue of a message of `len` bytes: `make`
    /// gives the input (and may add its bytes) once the checks pass.
    fn send_input(
        &self,
        len: usize,
        make: impl FnOnce(&mut Vec<u8>) -> Input,
    ) -> Result<(), ActionError> {
        let queued = self.inputs.push_with(|bytes| {
            let disconnecting = self.shared.disconnects_pending.load(Ordering::SeqCst) > 0;
            if !self.queue_while_disconnected
                && (disconnecting || !self.shared.established.load(Ordering::Relaxed))
            {
                return Err(ActionError::NotEstablished {
                    state: if disconnecting {
                        "closing (a Disconnect is pending)"
                    } else {
                        self.state_name()
                    },
                });
            }
            // Waiting: actions not yet taken by the driver, plus messages
            // in the connection's outbox (a server that stops reading).
            // The driver moves a burst from the first count to the second
            // with no moment in neither.
            let waiting = self.shared.pending_sends.load(Ordering::SeqCst)
                + self.shared.unwritten.load(Ordering::SeqCst);
            let waiting_bytes = self.shared.pending_send_bytes.load(Ordering::SeqCst)
                + self.shared.unwritten_bytes.load(Ordering::SeqCst);
            if waiting >= SEND_BACKLOG
                || (waiting > 0 && waiting_bytes.saturating_add(len) > SEND_BACKLOG_BYTES)
            {
                return Err(ActionError::Backlog {
                    waiting,
                    bytes: waiting_bytes,
                });
            }
            self.shared.pending_sends.fetch_add(1, Ordering::SeqCst);
            self.shared
                .pending_send_bytes
                .fetch_add(len, Ordering::SeqCst);
            Ok(make(bytes))
        });
        match queued {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => {
                // Logged from the driver thread, like every callback.
                let _ = self
                    .inputs
                    .push(Input::Log(LogLevel::Critical, error.to_string()));
                Err(error)
            }
            Err(_) => Err(ActionError::Stopped),
        }
    }

    /// The controller's network went down or came up.
    pub fn set_network(&self, up: bool) -> Result<(), ActionError> {
        self.input(Input::Network(up))
    }

    /// Flow control: the host has room again after refusing a trigger
    /// ([`Host::try_fire_trigger`](crate::Host::try_fire_trigger) answered
    /// `false`). The held triggers are offered again from the driver thread,
    /// oldest first, then the connection is read again. Returns at once;
    /// harmless when nothing is held.
    pub fn resume_triggers(&self) -> Result<(), ActionError> {
        self.input(Input::Resume)
    }

    /// The status variables as of the last change.
    pub fn status(&self) -> Vec<StatusVariable> {
        self.shared
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .snapshot()
    }

    /// A short name of the connection state ("established", …).
    pub fn state_name(&self) -> &'static str {
        *self
            .shared
            .state_name
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_established(&self) -> bool {
        self.shared.established.load(Ordering::Relaxed)
    }

    fn input(&self, input: Input) -> Result<(), ActionError> {
        self.inputs.push(input).map_err(|_| ActionError::Stopped)
    }

    /// Closes cleanly (close frame 1000; Disconnected fires if connected)
    /// and waits until no callback can arrive. Later actions get
    /// [`ActionError::Stopped`]. Dropping the instance does the same.
    ///
    /// Called on the driver thread (from inside a host callback), it cannot
    /// wait for the driver without deadlocking, so it only starts the close
    /// and returns false.
    pub fn shutdown(&self) -> bool {
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(task) = task else {
            return true;
        };
        let _ = self.inputs.push(Input::Shutdown);
        if on_driver_thread() {
            task.detach();
            false
        } else {
            smol::block_on(task);
            true
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instance")
            .field("state", &self.state_name())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn actions_parse_by_manifest_name_with_placeholders() {
        let a = Action::parse("Send Message", &json!({"Message": "pong: <1>"}), &["ping"]).unwrap();
        assert_eq!(
            a,
            Action::SendMessage {
                message: Outbound::Text("pong: ping".into())
            }
        );
        assert_eq!(
            Action::parse("Disconnect", &Value::Null, &[] as &[&str]).unwrap(),
            Action::Disconnect
        );
        let a = Action::parse("Connect", &json!({"Bearer Token": "abc"}), &[] as &[&str]).unwrap();
        assert!(matches!(a, Action::Connect { bearer_token: Some(ref t) } if t.expose() == "abc"));
        let a = Action::parse("Connect", &json!({"Bearer Token": ""}), &[] as &[&str]).unwrap();
        assert_eq!(a, Action::Connect { bearer_token: None });
    }

    #[test]
    fn prepared_actions_run_like_parsed_ones() {
        let vars = ["ping 1", "x"];
        for (name, properties) in [
            ("Send Message", json!({"Message": "pong <1> <2> <3>"})),
            ("Send Message", json!({"Message": "fixed"})),
            (
                "Send Message",
                json!({"Message": "0a <2>", "Message Type": "Binary"}),
            ),
            (
                "Send Message",
                json!({"Message": "0a ff", "Message Type": "Binary"}),
            ),
            ("Connect", json!({"Bearer Token": "abc"})),
            ("Disconnect", Value::Null),
        ] {
            let prepared = PreparedAction::prepare(name, &properties).unwrap();
            assert_eq!(prepared.name(), name);
            let hex_vars = ["", "0b"];
            let vars: &[&str] = if name == "Send Message" && properties["Message Type"] == "Binary"
            {
                &hex_vars
            } else {
                &vars
            };
            assert_eq!(
                prepared.action(vars).unwrap(),
                Action::parse(name, &properties, vars).unwrap(),
                "{name} {properties}"
            );
        }
    }

    #[test]
    fn as_received_follows_the_firing_message_prepared_or_not() {
        let binary = ["00ff", "binary"];
        let text = ["00ff", "text"];
        for message in ["<1>", "7e <1>", "7e80"] {
            let properties = json!({"Message": message, "Message Type": "As Received"});
            let prepared = PreparedAction::prepare("Send Message", &properties).unwrap();
            for vars in [&binary, &text] {
                assert_eq!(
                    prepared.action(vars).unwrap(),
                    Action::parse("Send Message", &properties, vars).unwrap(),
                    "{message} {vars:?}"
                );
            }
        }
        let properties = json!({"Message": "<1>", "Message Type": "As Received"});
        let prepared = PreparedAction::prepare("Send Message", &properties).unwrap();
        assert_eq!(
            prepared.action(&binary).unwrap(),
            Action::SendMessage {
                message: Outbound::Binary(vec![0x00, 0xff].into())
            }
        );
        assert_eq!(
            prepared.action(&text).unwrap(),
            Action::SendMessage {
                message: Outbound::Text("00ff".into())
            }
        );
        // A message that cannot be hex is refused for a binary firing
        // message, with the reason, and sent for a text one.
        let properties = json!({"Message": "got <1>", "Message Type": "As Received"});
        let prepared = PreparedAction::prepare("Send Message", &properties).unwrap();
        let e = prepared.action(&binary).unwrap_err();
        assert!(e.message.contains("As Received"), "{}", e.message);
        assert!(prepared.action(&text).is_ok());
    }

    #[test]
    fn prepared_actions_refuse_what_parsing_refuses() {
        let e = PreparedAction::prepare("Send", &json!({})).unwrap_err();
        assert!(e.message.contains("unknown action \"Send\""));
        let e = PreparedAction::prepare("Send Message", &json!({"Text": "<1>"})).unwrap_err();
        assert!(e.message.contains("accepted: \"Message\""));
        let e = PreparedAction::prepare(
            "Send Message",
            &json!({"Message": "zz", "Message Type": "Binary"}),
        )
        .unwrap_err();
        assert!(e.message.contains("not hex"));
        // Hex completed by a variable is checked when it runs.
        let p = PreparedAction::prepare(
            "Send Message",
            &json!({"Message": "<1>", "Message Type": "Binary"}),
        )
        .unwrap();
        assert!(p.action(&["0102"]).is_ok());
        assert!(
            p.action(&["nothex"])
                .unwrap_err()
                .message
                .contains("not hex")
        );
    }

    #[test]
    fn bad_actions_name_what_is_accepted() {
        let e = Action::parse("Send", &json!({}), &[] as &[&str]).unwrap_err();
        assert!(e.message.contains("unknown action \"Send\""));
        assert!(e.message.contains("\"Send Message\""));
        let e = Action::parse("Send Message", &json!({"Text": "x"}), &[] as &[&str]).unwrap_err();
        assert!(e.message.contains("accepted: \"Message\""));
        let e = Action::parse("Disconnect", &json!({"x": 1}), &[] as &[&str]).unwrap_err();
        assert!(e.message.contains("it takes no properties"));
    }

    #[test]
    fn a_bad_bearer_token_is_refused_without_echoing_it() {
        let e = Action::parse(
            "Connect",
            &json!({"Bearer Token": "sec ret"}),
            &[] as &[&str],
        )
        .unwrap_err();
        assert!(!e.message.contains("sec"));
        let e = Action::parse("Connect", &json!({"Bearer Token": 42}), &[] as &[&str]).unwrap_err();
        assert!(e.message.contains("(hidden)") && !e.message.contains("42"));
    }
}
