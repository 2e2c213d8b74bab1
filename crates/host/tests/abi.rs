//! The C ABI (`include/iom.h`) exercised the way a controller written in
//! another language uses it: `libwsio.so` is loaded with dlopen
//! (libloading), every `iom_*` entry point is resolved by name, the structs
//! come from the `iom` crate (checked against the header), and the host callbacks are plain
//! `extern "C"` functions recording into a mutex + condition variable. None
//! of the wsio crate's Rust API is used for the instance itself, so what
//! passes here is what a C, C++ or Python controller gets.
//!
//! The stories: a round trip through a local echo server, every kind of
//! misuse answered by an error that names the problem, secrets kept out of
//! what the host sees, older and newer callback structs (fire_trigger_ex),
//! destroy under load and from inside a callback, and eight host threads
//! sharing one instance.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use async_tungstenite::tungstenite::Message;
use serde_json::{Value, json};
use support::{EchoServer, TIMEOUT};

/// How long a test listens for callbacks that must not come: long enough
/// for a stray callback queued on the driver thread to show up.
const QUIET: Duration = Duration::from_millis(300);

// ------------------------------------------------------------------ iom.h
// The header's types come from the iom crate (tests/support/iom.rs).
use support::iom::*;

// ------------------------------------------------------------- calling helpers
// The controller's calls and a callback's strings: tests/support/abi_host.rs.
use support::abi_host::*;

// ------------------------------------------------------------- the recording host

/// Everything the module called back with, in order.
#[derive(Default)]
struct Events {
    triggers: Vec<(String, Vec<u8>)>,
    statuses: Vec<(String, String, String)>,
    logs: Vec<(c_int, String)>,
    /// Callbacks of any kind.
    count: usize,
    /// Callbacks that started after iom_instance_destroy returned.
    late: usize,
    /// Callbacks that carried another instance id than the one created.
    wrong_id: usize,
    /// Return codes of iom_instance_destroy called from inside a callback.
    destroy_in_callback: Vec<c_int>,
    /// The flags of each fire_trigger_ex call, with its trigger.
    flags: Vec<(String, u32)>,
    /// What each wire run inside fire_trigger got: the Send Message code
    /// and whether iom_instance_status answered from inside the callback.
    wired: Vec<(c_int, bool)>,
}

impl Events {
    fn fired(&self, trigger: &str) -> usize {
        self.triggers.iter().filter(|(t, _)| t == trigger).count()
    }

    fn data_of(&self, trigger: &str) -> Vec<String> {
        self.triggers
            .iter()
            .filter(|(t, _)| t == trigger)
            .map(|(_, d)| String::from_utf8_lossy(d).into_owned())
            .collect()
    }

    /// Everything the host was shown, as one text to search.
    fn all_text(&self) -> String {
        let mut text = String::new();
        for (t, d) in &self.triggers {
            text += &format!("trigger {t}: {}\n", String::from_utf8_lossy(d));
        }
        for (k, v, ts) in &self.statuses {
            text += &format!("status {k} = {v} @ {ts}\n");
        }
        for (level, m) in &self.logs {
            text += &format!("log {level}: {m}\n");
        }
        text
    }
}

/// The host's side of one instance: `user_data` points at it.
struct Recorder {
    instance_id: u64,
    events: Mutex<Events>,
    changed: Condvar,
    /// Set once iom_instance_destroy has returned.
    destroyed: AtomicBool,
    /// A handle the next fire_trigger destroys from inside the callback.
    destroy_on_fire: AtomicUsize,
    /// A wire run inside fire_trigger: (prepared trigger, instance) handles.
    /// Messages Received data that matches the prepared trigger is answered
    /// with Send Message "pong <1>" on the instance, from the callback.
    wire: OnceLock<(usize, usize)>,
}

impl Recorder {
    fn new(instance_id: u64) -> Arc<Recorder> {
        Arc::new(Recorder {
            instance_id,
            events: Mutex::new(Events::default()),
            changed: Condvar::new(),
            destroyed: AtomicBool::new(false),
            destroy_on_fire: AtomicUsize::new(0),
            wire: OnceLock::new(),
        })
    }

    /// The callbacks struct for this recorder; the caller keeps the Arc
    /// alive for as long as the instance lives.
    fn callbacks(self: &Arc<Self>) -> IomHostCallbacks {
        callbacks_for(self, on_fire_trigger, on_status_changed, on_log)
    }

    fn lock(&self) -> MutexGuard<'_, Events> {
        // A callback must never panic (it would abort across extern "C"),
        // so a poisoned lock is used as is.
        self.events.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, instance_id: u64, change: impl FnOnce(&mut Events)) {
        let mut events = self.lock();
        events.count += 1;
        if self.destroyed.load(Ordering::SeqCst) {
            events.late += 1;
        }
        if instance_id != self.instance_id {
            events.wrong_id += 1;
        }
        change(&mut events);
        drop(events);
        self.changed.notify_all();
    }

    /// Blocks until `predicate` holds (true) or `timeout` passes (false).
    fn wait_for(&self, mut predicate: impl FnMut(&Events) -> bool, timeout: Duration) -> bool {
        let (events, _) = self
            .changed
            .wait_timeout_while(self.lock(), timeout, |e| !predicate(e))
            .unwrap_or_else(|p| p.into_inner());
        predicate(&events)
    }

    /// Waits for `predicate` or panics naming `what` and what was recorded.
    fn expect(&self, what: &str, predicate: impl FnMut(&Events) -> bool) {
        if !self.wait_for(predicate, TIMEOUT) {
            panic!(
                "timed out waiting for {what}; recorded:\n{}",
                self.lock().all_text()
            );
        }
    }
}

/// Copies a callback's C string (NULL shows up as a visible marker rather
/// than a crash inside the callback).
///
/// # Safety
/// `s` is NULL or NUL-terminated and valid for the call.
unsafe fn callback_text(s: *const c_char) -> String {
    // SAFETY: forwarded to the caller.
    match unsafe { callback_string(s) } {
        None => "<NULL>".to_owned(),
        Some(Ok(text) | Err(text)) => text,
    }
}

unsafe extern "C" fn on_fire_trigger(
    user_data: *mut c_void,
    instance_id: u64,
    trigger: *const c_char,
    data: *const u8,
    len: usize,
) {
    // SAFETY: user_data is the Recorder of Recorder::callbacks, kept alive by
    // the test for longer than the instance; the pointers are valid for the
    // duration of the call (iom.h).
    let (recorder, trigger, data) = unsafe {
        (
            &*user_data.cast::<Recorder>(),
            callback_text(trigger),
            callback_bytes(data, len),
        )
    };
    // The one iom_* call a callback may make, to check that it is refused.
    let handle = recorder.destroy_on_fire.swap(0, Ordering::SeqCst);
    let destroyed = (handle != 0).then(|| destroy_raw(handle as *mut IomInstance));
    // A wire, run where the event arrives (iom.h allows the calls that
    // never wait): test, then Send Message with the trigger's variables.
    let wired = match recorder.wire.get() {
        Some(&(prepared, instance)) if trigger == "Messages Received" => {
            let (matched, variables) = test_raw(
                prepared as *const IomPreparedTrigger,
                data.as_ptr(),
                data.len(),
            );
            (matched == 1).then(|| {
                let variables: Vec<&str> = variables
                    .iter()
                    .map(|v| std::str::from_utf8(v).unwrap_or("<not UTF-8>"))
                    .collect();
                let instance = instance as *mut IomInstance;
                let (code, _) = action_on(
                    instance,
                    "Send Message",
                    r#"{"Message": "pong <1>"}"#,
                    &variables,
                );
                (code, status_of(instance).is_some())
            })
        }
        _ => None,
    };
    recorder.record(instance_id, |e| {
        e.triggers.push((trigger, data));
        e.destroy_in_callback.extend(destroyed);
        e.wired.extend(wired);
    });
}

unsafe extern "C" fn on_fire_trigger_ex(
    user_data: *mut c_void,
    instance_id: u64,
    trigger: *const c_char,
    data: *const u8,
    len: usize,
    flags: u32,
) {
    // The flags first: a test that sees the trigger (on_fire_trigger
    // notifies) then finds its flags too.
    // SAFETY: as in on_fire_trigger.
    let (recorder, name) = unsafe { (&*user_data.cast::<Recorder>(), callback_text(trigger)) };
    recorder.lock().flags.push((name, flags));
    // SAFETY: as in on_fire_trigger, whose contract this shares.
    unsafe { on_fire_trigger(user_data, instance_id, trigger, data, len) };
}

unsafe extern "C" fn on_status_changed(
    user_data: *mut c_void,
    instance_id: u64,
    key: *const c_char,
    value: *const c_char,
    timestamp: *const c_char,
) {
    // SAFETY: as in on_fire_trigger.
    let (recorder, key, value, timestamp) = unsafe {
        (
            &*user_data.cast::<Recorder>(),
            callback_text(key),
            callback_text(value),
            callback_text(timestamp),
        )
    };
    recorder.record(instance_id, |e| e.statuses.push((key, value, timestamp)));
}

unsafe extern "C" fn on_log(
    user_data: *mut c_void,
    instance_id: u64,
    level: c_int,
    message: *const c_char,
) {
    // SAFETY: as in on_fire_trigger.
    let (recorder, message) = unsafe { (&*user_data.cast::<Recorder>(), callback_text(message)) };
    recorder.record(instance_id, |e| e.logs.push((level, message)));
}

// ------------------------------------------------------------- an instance under test

/// A live instance with its recorder; destroyed on drop if the test did not.
struct Instance {
    raw: *mut IomInstance,
    recorder: Arc<Recorder>,
    live: bool,
}

// SAFETY: iom.h allows every function to be called from any host thread
// concurrently; the handle is an opaque value the module validates.
unsafe impl Send for Instance {}
// SAFETY: as above; the struct is not mutated through a shared reference.
unsafe impl Sync for Instance {}

impl Instance {
    fn create(instance_id: u64, properties: &str) -> Instance {
        Self::create_with(instance_id, properties, |_| {})
    }

    /// Creates with the recorder's callbacks as changed by `adjust`.
    fn create_with(
        instance_id: u64,
        properties: &str,
        adjust: impl FnOnce(&mut IomHostCallbacks),
    ) -> Instance {
        let recorder = Recorder::new(instance_id);
        let mut callbacks = recorder.callbacks();
        adjust(&mut callbacks);
        let properties = c(properties);
        let raw = create_raw(&callbacks, instance_id, properties.as_ptr())
            .unwrap_or_else(|e| panic!("iom_instance_create failed: {e}"));
        Instance {
            raw,
            recorder,
            live: true,
        }
    }

    fn action(&self, name: &str, properties: &str, variables: &[&str]) -> (c_int, Option<String>) {
        action_on(self.raw, name, properties, variables)
    }

    fn expect_ok(&self, name: &str, properties: &str, variables: &[&str]) {
        let (code, error) = self.action(name, properties, variables);
        assert_eq!(code, IOM_OK, "{name} failed: {error:?}");
    }

    fn status(&self) -> Value {
        let text = status_of(self.raw).expect("a live instance has a status");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("status is not JSON ({e}): {text}"))
    }

    /// Connect and wait for WebSocket Established.
    fn connect(&self) {
        self.expect_ok("Connect", "{}", &[]);
        self.recorder.expect("WebSocket Established", |e| {
            e.fired("WebSocket Established") >= 1
        });
    }

    /// iom_instance_destroy; from then on any callback counts as late.
    fn destroy(&mut self) -> c_int {
        assert!(self.live, "destroyed twice through the helper");
        let code = destroy_raw(self.raw);
        if code == IOM_OK {
            self.live = false;
            self.recorder.destroyed.store(true, Ordering::SeqCst);
        }
        code
    }

    /// Destroys and checks the header's promise: no callback after return.
    fn destroy_and_expect_silence(&mut self) {
        assert_eq!(self.destroy(), IOM_OK);
        let count = self.recorder.lock().count;
        assert!(
            !self.recorder.wait_for(|e| e.count != count, QUIET),
            "a callback arrived after iom_instance_destroy returned"
        );
        let events = self.recorder.lock();
        assert_eq!(events.late, 0, "callbacks after destroy returned");
        assert_eq!(events.wrong_id, 0, "callbacks with another instance id");
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if self.live {
            destroy_raw(self.raw);
        }
    }
}

fn echo_properties(server: &EchoServer) -> String {
    format!(
        r#"{{"Hostname": "127.0.0.1", "Port": {}, "Path": "/"}}"#,
        server.port()
    )
}

/// A timestamp as the header specifies: ISO 8601 with offset and milliseconds.
fn assert_timestamp(timestamp: &str) {
    let parsed = chrono::DateTime::parse_from_rfc3339(timestamp);
    assert!(
        parsed.is_ok() && timestamp.len() == "2026-11-21T06:34:21.123+00:00".len(),
        "timestamp {timestamp:?} is not ISO 8601 with milliseconds and offset"
    );
}

// ------------------------------------------------------------- the stories

#[test]
fn abi_version_is_1_and_the_manifest_is_toml_naming_the_module() {
    let api = api();
    // SAFETY: no arguments; the manifest is a static NUL-terminated string
    // owned by the module.
    let (version, manifest) = unsafe {
        (
            (api.abi_version)(),
            CStr::from_ptr((api.module_manifest)()).to_str(),
        )
    };
    assert_eq!(version, IOM_ABI_VERSION);
    let manifest: toml::Table =
        toml::from_str(manifest.expect("manifest is UTF-8")).expect("manifest is valid TOML");
    assert_eq!(
        manifest["module"]["name"].as_str(),
        Some("WebSocket Client")
    );
    assert_eq!(manifest["module"]["api_version"].as_integer(), Some(1));
}

#[test]
fn round_trip_through_an_echo_server_fires_triggers_that_test_and_fill_placeholders() {
    let server = EchoServer::start();
    let mut instance = Instance::create(1, &echo_properties(&server));
    let matching = prepare(
        instance.raw,
        "Messages Received",
        r#"{"Match String": "ping"}"#,
    )
    .expect("prepare Messages Received");
    let any_established =
        prepare(instance.raw, "WebSocket Established", "{}").expect("prepare Established");

    let initial = instance.status();
    assert!(
        initial
            .as_array()
            .expect("status is a JSON array")
            .iter()
            .any(|v| v["key"] == "ConnectionStatus" && v["value"] == "Disconnected"),
        "{initial}"
    );

    instance.connect();
    let events = instance.recorder.lock();
    let order: Vec<&str> = events.triggers.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(order, ["Connected", "WebSocket Established"]);
    assert_eq!(test_data(&any_established, b"").0, 1);
    drop(events);

    instance.expect_ok("Send Message", r#"{"Message": "ping <1>"}"#, &["42"]);
    assert!(
        server.wait_for(|o| o.texts().contains(&"ping 42".into()), TIMEOUT),
        "the server did not receive \"ping 42\": {:?}",
        server.snapshot().texts()
    );
    // As a controller does: test the data the trigger fired with.
    instance
        .recorder
        .expect("the echo", |e| e.fired("Messages Received") == 1);
    let fired = instance.recorder.lock().triggers.last().cloned().unwrap();
    assert_eq!(fired, ("Messages Received".into(), b"ping 42".to_vec()));
    let (matched, variables) = test_data(&matching, &fired.1);
    assert_eq!(matched, 1);
    // Variable 1 is the message; the Message Type comes last.
    assert_eq!(variables, [b"ping 42".to_vec(), b"text".to_vec()]);

    instance.expect_ok("Send Message", r#"{"Message": "hello"}"#, &[]);
    instance
        .recorder
        .expect("the echo", |e| e.fired("Messages Received") == 2);
    let fired = instance.recorder.lock().triggers.last().cloned().unwrap();
    assert_eq!(fired.1, b"hello");
    assert_eq!(test_data(&matching, &fired.1).0, 0);
    // Bytes, not C strings: a NUL inside the message is data.
    assert_eq!(test_data(&matching, b"a\0ping").0, 1);

    // The snapshot: the three variables of the brief (the module may add
    // more), each with a label, a value and a timestamp.
    // Last Received is pushed in batches after the trigger; once pushed, the
    // snapshot has it too.
    instance.recorder.expect("Last Received = hello", |e| {
        e.statuses
            .iter()
            .any(|(k, v, _)| k == "LastReceived" && v == "hello")
    });
    let status = instance.status();
    let variables = status.as_array().expect("status is a JSON array");
    for variable in variables {
        for field in ["key", "label", "value", "timestamp"] {
            assert!(variable[field].is_string(), "{field} in {variable}");
        }
    }
    let value_of = |key: &str| {
        let variable = variables
            .iter()
            .find(|v| v["key"] == key)
            .unwrap_or_else(|| panic!("no status variable {key}: {status}"));
        assert_timestamp(variable["timestamp"].as_str().unwrap_or_default());
        variable["value"].as_str().unwrap_or_default().to_owned()
    };
    assert_eq!(value_of("ConnectionStatus"), "Established");
    assert_eq!(value_of("LastSent"), "hello");
    assert_eq!(value_of("LastReceived"), "hello");

    // The same changes were pushed to the host as they happened.
    let events = instance.recorder.lock();
    for key in ["ConnectionStatus", "LastSent", "LastReceived"] {
        assert!(
            events.statuses.iter().any(|(k, _, _)| k == key),
            "no status_changed for {key}"
        );
    }
    for (_, _, timestamp) in &events.statuses {
        assert_timestamp(timestamp);
    }
    assert!(
        events
            .logs
            .iter()
            .all(|(level, _)| (IOM_LOG_CRITICAL..=IOM_LOG_DEBUG).contains(level))
    );
    drop(events);

    // The network toggles are accepted on a live instance.
    assert_eq!(network_of(instance.raw, true), IOM_OK);

    instance.destroy_and_expect_silence();
    assert!(
        server.wait_for(|o| o.closes.iter().any(|c| c.code == 1000), TIMEOUT),
        "destroy did not close with 1000: {:?}",
        server.snapshot().closes
    );
    assert_eq!(instance.recorder.lock().fired("Disconnected"), 1);
}

#[test]
fn send_message_while_not_established_is_rejected_naming_the_state() {
    let instance = Instance::create(2, r#"{"Hostname": "127.0.0.1", "Port": 9}"#);
    let (code, error) = instance.action("Send Message", r#"{"Message": "hi"}"#, &[]);
    assert_eq!(code, IOM_ERR_REJECTED);
    let error = error.expect("an error message");
    assert!(
        error.contains("not established") && error.contains("state: disconnected"),
        "{error}"
    );
    // The controller's log says so too.
    instance.recorder.expect("the error in the log", |e| {
        e.logs
            .iter()
            .any(|(l, m)| *l == IOM_LOG_CRITICAL && m.contains("not established"))
    });
}

#[test]
fn create_refuses_bad_input_with_a_message_naming_it() {
    let recorder = Recorder::new(3);
    let good = recorder.callbacks();
    let props = c(r#"{"Hostname": "127.0.0.1"}"#);
    let create = |host: &IomHostCallbacks, id: u64, properties: &[u8]| {
        let properties = CString::new(properties).expect("no NUL");
        create_raw(host, id, properties.as_ptr()).map(destroy_raw)
    };
    let refused = |result: Result<c_int, String>| match result {
        Err(message) => message,
        Ok(_) => panic!("created an instance from bad input"),
    };

    let e = create_raw(ptr::null(), 3, props.as_ptr()).expect_err("NULL host");
    assert!(e.contains("host callbacks are NULL"), "{e}");

    let newer = IomHostCallbacks {
        abi_version: 2,
        ..good
    };
    let e = refused(create(&newer, 3, br#"{"Hostname": "127.0.0.1"}"#));
    assert!(e.contains("version 2") && e.contains("version 1"), "{e}");

    let short = IomHostCallbacks {
        struct_size: 8,
        ..good
    };
    let e = refused(create(&short, 3, br#"{"Hostname": "127.0.0.1"}"#));
    assert!(e.contains("struct_size is 8"), "{e}");

    let e = refused(create(&good, 0, br#"{"Hostname": "127.0.0.1"}"#));
    assert!(e.contains("instance_id"), "{e}");

    let e = refused(create(&good, 3, b"{Hostname: 127.0.0.1"));
    assert!(e.contains("not valid JSON"), "{e}");

    let e = refused(create(&good, 3, br#"{"Hostname": "h", "Port": 70000}"#));
    assert!(
        e.contains("Port must be an integer from 0 to 65535, got 70000"),
        "{e}"
    );

    let e = refused(create(&good, 3, br#"{"Hostname": "h", "Colour": "red"}"#));
    assert!(e.contains("\"Colour\"") && e.contains("Hostname"), "{e}");

    // A name off by case or a small typo: the one meant, not the whole list.
    let e = refused(create(&good, 3, br#"{"hostname": "127.0.0.1"}"#));
    assert_eq!(
        e,
        "unknown instance property \"hostname\"; did you mean \"Hostname\"?"
    );
    let e = refused(create(
        &good,
        3,
        br#"{"Hostname": "h", "Auto Reconnect": true}"#,
    ));
    assert_eq!(
        e,
        "unknown instance property \"Auto Reconnect\"; did you mean \"Auto-Reconnect\"?"
    );

    let e = refused(create(&good, 3, br#"{"Hostname": "wss://x"}"#));
    assert!(e.contains("wss://") && e.contains("WSS"), "{e}");

    let e = refused(create(&good, 3, b"{\"Hostname\": \"h\xff\"}"));
    assert!(e.contains("not valid UTF-8"), "{e}");

    let e = refused(create(&good, 3, b"{}"));
    assert!(e.contains("Hostname is required"), "{e}");

    // A NULL error pointer is allowed: the failure is still a NULL handle.
    // SAFETY: NULL `error` is allowed by the header.
    let handle = unsafe { (api().instance_create)(&short, 3, props.as_ptr(), ptr::null_mut()) };
    assert!(handle.is_null());

    // Success clears *error even if the host left garbage in it.
    let mut error = ptr::dangling_mut::<c_char>();
    // SAFETY: valid arguments; `error` is writable storage for one pointer.
    let handle = unsafe { (api().instance_create)(&good, 3, props.as_ptr(), &mut error) };
    assert!(!handle.is_null() && error.is_null());
    assert_eq!(destroy_raw(handle), IOM_OK);
}

#[test]
fn actions_refuse_bad_input_with_a_message_naming_it() {
    let instance = Instance::create(4, r#"{"Hostname": "127.0.0.1", "Port": 9}"#);
    let send = c("Send Message");
    let message = c(r#"{"Message": "x"}"#);

    let (code, e) = action_raw(instance.raw, ptr::null(), message.as_ptr(), ptr::null(), 0);
    assert_eq!(code, IOM_ERR_INVALID_ARGUMENT);
    assert!(e.unwrap().contains("action is NULL"));

    let (code, e) = instance.action("Send", "{}", &[]);
    assert_eq!(code, IOM_ERR_INVALID_ARGUMENT);
    let e = e.unwrap();
    assert!(
        e.contains("unknown action \"Send\"") && e.contains("\"Send Message\""),
        "{e}"
    );

    let bad_name = CString::new(b"Send \xffMessage".to_vec()).unwrap();
    let (code, e) = action_raw(
        instance.raw,
        bad_name.as_ptr(),
        message.as_ptr(),
        ptr::null(),
        0,
    );
    assert_eq!(code, IOM_ERR_INVALID_ARGUMENT);
    let e = e.unwrap();
    assert!(e.contains("action is not valid UTF-8"), "{e}");

    let variables = [IomStr::of(b"fine"), IomStr::of(b"bad \xc3")];
    let (code, e) = action_raw(
        instance.raw,
        send.as_ptr(),
        message.as_ptr(),
        variables.as_ptr(),
        2,
    );
    assert_eq!(code, IOM_ERR_INVALID_ARGUMENT);
    let e = e.unwrap();
    assert!(e.contains("variable 2 is not valid UTF-8"), "{e}");

    let (code, e) = action_raw(
        instance.raw,
        send.as_ptr(),
        message.as_ptr(),
        ptr::null(),
        3,
    );
    assert_eq!(code, IOM_ERR_INVALID_ARGUMENT);
    assert!(
        e.unwrap()
            .contains("variables is NULL but n_variables is 3")
    );

    let null_variable = [IomStr {
        ptr: ptr::null(),
        len: 4,
    }];
    let (code, e) = action_raw(
        instance.raw,
        send.as_ptr(),
        message.as_ptr(),
        null_variable.as_ptr(),
        1,
    );
    assert_eq!(code, IOM_ERR_INVALID_ARGUMENT);
    assert!(e.unwrap().contains("variable 1 is NULL"));

    let wrong_types = [
        (
            "Send Message",
            r#"{"Message": 5}"#,
            "Message must be a string",
        ),
        ("Send Message", r#"{"Text": "x"}"#, "accepted: \"Message\""),
        (
            "Send Message",
            r#"{"message": "x"}"#,
            "unknown action \"Send Message\" property \"message\"; did you mean \"Message\"?",
        ),
        ("Send Message", "{}", "Message is required"),
        (
            "Connect",
            r#"{"Bearer token": "t"}"#,
            "unknown action \"Connect\" property \"Bearer token\"; did you mean \"Bearer Token\"?",
        ),
        ("Send Message", "[1, 2]", "must be a JSON object"),
        ("Send Message", "{", "not valid JSON"),
        ("Disconnect", r#"{"x": 1}"#, "it takes no properties"),
        ("Connect", r#"{"Bearer Token": 42}"#, "Bearer Token"),
    ];
    for (name, properties, expected) in wrong_types {
        let (code, e) = instance.action(name, properties, &[]);
        assert_eq!(code, IOM_ERR_INVALID_ARGUMENT, "{name} {properties}");
        let e = e.unwrap();
        assert!(e.contains(expected), "{name} {properties}: {e}");
    }

    // A NULL error pointer still gets the code.
    let unknown = c("Send");
    // SAFETY: NULL `error` is allowed; the other pointers are valid.
    let code = unsafe {
        (api().instance_action)(
            instance.raw,
            unknown.as_ptr(),
            ptr::null(),
            ptr::null(),
            0,
            ptr::null_mut(),
        )
    };
    assert_eq!(code, IOM_ERR_INVALID_ARGUMENT);
}

#[test]
fn trigger_prepare_and_test_refuse_bad_input() {
    let e = prepare(ptr::null_mut(), "Message Received", "{}")
        .err()
        .unwrap();
    assert!(
        e.contains("unknown trigger \"Message Received\"") && e.contains("\"Messages Received\""),
        "{e}"
    );
    let e = prepare(
        ptr::null_mut(),
        "Messages Received",
        r#"{"Match String": 5}"#,
    )
    .err()
    .unwrap();
    assert!(e.contains("Match String must be a string"), "{e}");
    let e = prepare(
        ptr::null_mut(),
        "Messages Received",
        r#"{"Match string": "x"}"#,
    )
    .err()
    .unwrap();
    assert_eq!(
        e,
        "unknown trigger \"Messages Received\" property \"Match string\"; did you mean \"Match String\"?"
    );
    let e = prepare_raw(ptr::null_mut(), ptr::null(), ptr::null())
        .err()
        .unwrap();
    assert!(e.contains("trigger is NULL"), "{e}");
    let e = prepare(0x1000 as *mut IomInstance, "Messages Received", "{}")
        .err()
        .unwrap();
    assert!(e.contains("not a live instance"), "{e}");

    // Without an instance and without properties: blank Match String.
    let name = c("Messages Received");
    let any = prepare_raw(ptr::null_mut(), name.as_ptr(), ptr::null())
        .expect("NULL instance and properties are allowed");
    assert_eq!(test_data(&any, b"anything").0, 1);
    assert_eq!(test_raw(any.raw(), ptr::null(), 0).0, 1);
    assert_eq!(test_raw(any.raw(), ptr::null(), 5).0, -1);
    // The reason of Disconnected is its variable 1.
    let disconnected = prepare(ptr::null_mut(), "Disconnected", "").expect("prepare");
    assert_eq!(
        test_data(&disconnected, b"closed by server: 1000 bye"),
        (1, vec![b"closed by server: 1000 bye".to_vec()])
    );

    assert_eq!(test_raw(ptr::null(), b"x".as_ptr(), 1).0, -1);
    let freed = prepare(ptr::null_mut(), "Messages Received", "{}").expect("prepare");
    let raw = freed.raw().cast_mut();
    drop(freed);
    assert_eq!(test_raw(raw, b"x".as_ptr(), 1).0, -1);
    // A handle this thread has just used (and so remembers) is refused
    // as soon as it is freed; more triggers than the module remembers per
    // thread keep their own matches when used in turn.
    let used = prepare(
        ptr::null_mut(),
        "Messages Received",
        r#"{"Match String":"a"}"#,
    )
    .unwrap();
    assert_eq!(test_data(&used, b"a").0, 1);
    let used_raw = used.raw();
    drop(used);
    assert_eq!(test_raw(used_raw, b"a".as_ptr(), 1).0, -1);
    let many: Vec<(String, Prepared)> = (0..7)
        .map(|n| {
            let word = format!("w{n}");
            let json = format!(r#"{{"Match String":"{word}"}}"#);
            let p = prepare(ptr::null_mut(), "Messages Received", &json).unwrap();
            (word, p)
        })
        .collect();
    for round in 0..3 {
        for (n, (word, p)) in many.iter().enumerate() {
            assert_eq!(test_data(p, word.as_bytes()).0, 1, "round {round}, {word}");
            let other = &many[(n + 1) % many.len()].0;
            assert_eq!(test_data(p, other.as_bytes()).0, 0, "round {round}, {word}");
        }
    }
    // A second free of the same handle, and NULL, are ignored.
    // SAFETY: the module looks handles up in its registry; stale ones miss.
    unsafe {
        (api().trigger_free)(raw);
        (api().trigger_free)(ptr::null_mut());
    }

    // The variables and string functions take NULL without harm.
    // SAFETY: NULL is handled by each function.
    unsafe {
        assert_eq!((api().variables_count)(ptr::null()), 0);
        let none = (api().variables_get)(ptr::null(), 0);
        assert!(none.ptr.is_null() && none.len == 0);
        (api().variables_free)(ptr::null_mut());
        (api().string_free)(ptr::null_mut());
        assert_eq!(
            (api().trigger_test)(any.raw(), b"x".as_ptr(), 1, ptr::null_mut()),
            1,
            "NULL variables: match reported, nothing stored"
        );
    }
}

#[test]
fn a_prepared_trigger_says_how_many_variables_every_match_gives() {
    let count = |trigger: &str, properties: &str| {
        let prepared = prepare(ptr::null_mut(), trigger, properties).unwrap();
        // SAFETY: a live prepared trigger.
        let count = unsafe { (api().trigger_variable_count)(prepared.raw()) };
        // What a match gives agrees with what the count said.
        let (code, variables) = test_bytes(prepared.raw(), b"temp kitchen=21");
        if code == 1 {
            assert_eq!(variables.len() as isize, count, "{trigger} {properties}");
        }
        count
    };
    assert_eq!(count("Messages Received", r#"{"Match String": "temp"}"#), 2);
    assert_eq!(
        count(
            "Messages Received",
            r#"{"Match Mode": "Regex", "Match String": "temp (\\w+)=(\\d+)"}"#
        ),
        4
    );
    assert_eq!(count("Disconnected", "{}"), 1);
    assert_eq!(count("Connected", "{}"), 0);
    // SAFETY: NULL is allowed and answered with -1.
    assert_eq!(unsafe { (api().trigger_variable_count)(ptr::null()) }, -1);
}

#[test]
fn stale_and_made_up_handles_are_errors_not_crashes() {
    let mut instance = Instance::create(5, r#"{"Hostname": "127.0.0.1", "Port": 9}"#);
    let stale = instance.raw;
    assert_eq!(instance.destroy(), IOM_OK);
    // Ids are multiples of 8 in the module; 0x1003 can never be one, and the
    // test process creates far fewer than 0x1000 / 8 instances.
    for handle in [
        stale,
        0x1000 as *mut IomInstance,
        0x1003 as *mut IomInstance,
    ] {
        let (code, e) = action_on(handle, "Disconnect", "{}", &[]);
        assert_eq!(code, IOM_ERR_INVALID_ARGUMENT);
        assert!(e.unwrap().contains("not a live instance"));
        assert!(status_of(handle).is_none());
        assert_eq!(network_of(handle, false), IOM_ERR_INVALID_ARGUMENT);
        assert_eq!(destroy_raw(handle), IOM_ERR_INVALID_ARGUMENT);
    }
    let (code, e) = action_on(ptr::null_mut(), "Disconnect", "{}", &[]);
    assert_eq!(code, IOM_ERR_INVALID_ARGUMENT);
    assert!(e.unwrap().contains("instance is NULL"));
    assert!(status_of(ptr::null_mut()).is_none());
    assert_eq!(network_of(ptr::null_mut(), true), IOM_ERR_INVALID_ARGUMENT);
    assert_eq!(destroy_raw(ptr::null_mut()), IOM_OK);
}

#[test]
fn a_bearer_token_reaches_the_server_and_nothing_else() {
    const TOKEN: &str = "topsecret-123";
    let server = EchoServer::start();
    let mut instance = Instance::create(
        6,
        &format!(
            r#"{{"Hostname": "127.0.0.1", "Port": {}, "Extended Logging": true, "Log Comms": true}}"#,
            server.port()
        ),
    );
    // A malformed token is refused without being echoed back.
    let (code, e) = instance.action("Connect", r#"{"Bearer Token": "topsecret 123"}"#, &[]);
    assert_eq!(code, IOM_ERR_INVALID_ARGUMENT);
    let e = e.unwrap();
    assert!(
        e.contains("Bearer Token") && !e.contains("topsecret"),
        "{e}"
    );

    instance.expect_ok("Connect", &format!(r#"{{"Bearer Token": "{TOKEN}"}}"#), &[]);
    instance.recorder.expect("WebSocket Established", |e| {
        e.fired("WebSocket Established") == 1
    });
    let handshake = server
        .snapshot()
        .last_handshake()
        .cloned()
        .expect("a handshake");
    assert_eq!(
        handshake.header("Authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    instance.expect_ok("Send Message", r#"{"Message": "comms"}"#, &[]);
    instance
        .recorder
        .expect("the echo", |e| e.fired("Messages Received") == 1);
    let status = status_of(instance.raw).expect("status");
    instance.destroy_and_expect_silence();

    let events = instance.recorder.lock();
    // Extended Logging and Log Comms were on, so there is plenty to search.
    assert!(
        events.logs.iter().any(|(_, m)| m.contains("comms")),
        "no comms log lines:\n{}",
        events.all_text()
    );
    let shown = events.all_text() + &status;
    assert!(!shown.contains("topsecret"), "the token leaked:\n{shown}");
}

/// What a host waits for, named for the failure message.
type Awaited<'a> = (&'a str, &'a dyn Fn(&Events) -> bool);

/// Creates instance `id` reporting to `recorder` through `callbacks`,
/// connects it, waits for `connected`, sends `message`, waits for
/// `echoed`, and destroys it.
fn connect_send_destroy(
    (recorder, callbacks, id): (&Recorder, &IomHostCallbacks, u64),
    properties: &CString,
    message: &str,
    connected: Awaited<'_>,
    echoed: Awaited<'_>,
) {
    let raw = create_raw(callbacks, id, properties.as_ptr()).expect("create");
    assert_eq!(action_on(raw, "Connect", "{}", &[]).0, IOM_OK);
    recorder.expect(connected.0, connected.1);
    let send = json!({ "Message": message }).to_string();
    assert_eq!(action_on(raw, "Send Message", &send, &[]).0, IOM_OK);
    recorder.expect(echoed.0, echoed.1);
    assert_eq!(destroy_raw(raw), IOM_OK);
}

#[test]
fn any_callback_may_be_null() {
    let server = EchoServer::start();
    let props = c(&echo_properties(&server));

    // Triggers only: no status, no log.
    let triggers_only = Recorder::new(11);
    let callbacks = IomHostCallbacks {
        status_changed: None,
        log: None,
        ..triggers_only.callbacks()
    };
    connect_send_destroy(
        (&triggers_only, &callbacks, 11),
        &props,
        "a",
        ("WebSocket Established", &|e| {
            e.fired("WebSocket Established") == 1
        }),
        ("the echo", &|e| e.fired("Messages Received") == 1),
    );

    // Status only: the host learns of the connection from Connection Status.
    let status_only = Recorder::new(12);
    let callbacks = IomHostCallbacks {
        fire_trigger: None,
        log: None,
        ..status_only.callbacks()
    };
    let shows = |key: &'static str, value: &'static str| {
        move |e: &Events| e.statuses.iter().any(|(k, v, _)| k == key && v == value)
    };
    connect_send_destroy(
        (&status_only, &callbacks, 12),
        &props,
        "b",
        (
            "Connection Status Established",
            &shows("ConnectionStatus", "Established"),
        ),
        ("Last Received b", &shows("LastReceived", "b")),
    );

    let (with_triggers, with_status) = (triggers_only.lock(), status_only.lock());
    assert_eq!(with_triggers.statuses.len() + with_triggers.logs.len(), 0);
    assert_eq!(with_status.triggers.len() + with_status.logs.len(), 0);
    drop((with_triggers, with_status));
    assert_eq!(server.snapshot().texts(), ["a", "b"]);
}

#[test]
fn fire_trigger_ex_carries_the_binary_flag_to_trigger_test_ex() {
    let server = EchoServer::start();
    let instance = Instance::create_with(13, &echo_properties(&server), |callbacks| {
        callbacks.fire_trigger_ex = Some(on_fire_trigger_ex);
    });
    instance.connect();
    instance.expect_ok("Send Message", r#"{"Message": "text"}"#, &[]);
    instance
        .recorder
        .expect("the text echo", |e| e.fired("Messages Received") == 1);
    assert_eq!(server.send_to_all(vec![0xde_u8, 0xad, 0xbe, 0xef]), 1);
    instance.recorder.expect("the binary message", |e| {
        e.flags
            .iter()
            .filter(|(t, _)| t == "Messages Received")
            .count()
            == 2
    });

    let events = instance.recorder.lock();
    // The module used fire_trigger_ex for every trigger, never both.
    assert_eq!(events.flags.len(), events.triggers.len());
    let messages: Vec<(Vec<u8>, u32)> = events
        .triggers
        .iter()
        .zip(&events.flags)
        .filter(|((t, _), _)| t == "Messages Received")
        .map(|((_, data), (_, flags))| (data.clone(), *flags))
        .collect();
    drop(events);
    assert_eq!(
        messages,
        [
            (b"text".to_vec(), 0),
            (b"deadbeef".to_vec(), IOM_DATA_BINARY)
        ]
    );
    let any = prepare(instance.raw, "Messages Received", "{}").expect("prepare");
    let (data, flags) = &messages[1];
    let (matched, variables) = test_flagged(any.raw(), data.as_ptr(), data.len(), Some(*flags));
    assert_eq!(matched, 1);
    assert_eq!(variables.last().map(Vec::as_slice), Some(&b"binary"[..]));
    let (_, variables) = test_data(&any, data);
    assert_eq!(variables.last().map(Vec::as_slice), Some(&b"text"[..]));
}

#[test]
fn as_received_sends_a_binary_message_back_as_its_bytes_from_the_variables_alone() {
    // The C ABI passes variables as byte ranges: As Received reads the
    // firing message's type from the last one (iom.h), so a host that runs
    // a wire with iom_trigger_test_ex's variables forwards binary as binary.
    let server = EchoServer::start();
    let instance = Instance::create_with(14, &echo_properties(&server), |callbacks| {
        callbacks.fire_trigger_ex = Some(on_fire_trigger_ex);
    });
    instance.connect();
    let original = [0x00_u8, 0xff, 0x7e, 0x80, b'A'];
    assert_eq!(server.send_to_all(original.to_vec()), 1);
    instance
        .recorder
        .expect("the binary message", |e| e.fired("Messages Received") == 1);
    let (data, flags) = {
        let events = instance.recorder.lock();
        let at = events
            .triggers
            .iter()
            .position(|(t, _)| t == "Messages Received")
            .unwrap();
        (events.triggers[at].1.clone(), events.flags[at].1)
    };
    assert_eq!(flags, IOM_DATA_BINARY);
    let any = prepare(instance.raw, "Messages Received", "{}").expect("prepare");
    let (_, binary_vars) = test_flagged(any.raw(), data.as_ptr(), data.len(), Some(flags));
    let (_, text_vars) = test_data(&any, &data);
    fn borrowed(v: &[Vec<u8>]) -> Vec<&[u8]> {
        v.iter().map(Vec::as_slice).collect()
    }

    let forward = prepare_action(
        instance.raw,
        "Send Message",
        r#"{"Message": "<1>", "Message Type": "As Received"}"#,
    )
    .expect("prepare As Received");
    assert_eq!(run_action(forward, &borrowed(&binary_vars)), (IOM_OK, None));
    // Without the binary flag the same message is text: sent as its hex.
    assert_eq!(run_action(forward, &borrowed(&text_vars)), (IOM_OK, None));
    // iom_instance_action reads the variables the same way.
    let as_str: Vec<&str> = binary_vars
        .iter()
        .map(|v| std::str::from_utf8(v).unwrap())
        .collect();
    instance.expect_ok(
        "Send Message",
        r#"{"Message": "01 <1>", "Message Type": "As Received"}"#,
        &as_str,
    );
    // A Message that is not hex for a binary message is refused, saying why.
    let (code, error) = instance.action(
        "Send Message",
        r#"{"Message": "got <1>", "Message Type": "As Received"}"#,
        &as_str,
    );
    assert_eq!(code, IOM_ERR_INVALID_ARGUMENT);
    let error = error.unwrap();
    assert!(
        error.contains("not hex") && error.contains("As Received"),
        "{error}"
    );

    assert!(
        server.wait_for(|o| o.messages.len() >= 3, TIMEOUT),
        "the three messages reach the server"
    );
    let sent = server.snapshot().messages;
    assert_eq!(
        sent,
        [
            Message::Binary(original.to_vec().into()),
            Message::Text("00ff7e8041".into()),
            Message::Binary([&[0x01][..], &original].concat().into()),
        ]
    );
    // SAFETY: prepared above, freed once.
    unsafe { (api().action_free)(forward) };
    drop(any);
}

#[test]
fn a_host_struct_is_read_only_as_far_as_struct_size_covers() {
    // What a host built before fire_trigger_ex passes, and a size that ends
    // inside that field (a host bug, but one that must not crash the module).
    let base = std::mem::offset_of!(IomHostCallbacks, fire_trigger_ex) as u32;
    // SAFETY: a non-NULL function pointer value that nothing may call: it
    // stands for whatever memory lies past the host's struct.
    let past_the_end: FireTriggerExCb =
        unsafe { std::mem::transmute::<usize, FireTriggerExCb>(0x4141_4141_4141_4141) };
    let server = EchoServer::start();
    for (id, struct_size) in [(14, base), (15, base + 4)] {
        let mut instance = Instance::create_with(id, &echo_properties(&server), |callbacks| {
            callbacks.struct_size = struct_size;
            callbacks.fire_trigger_ex = Some(past_the_end);
        });
        // Connected and WebSocket Established arrive through fire_trigger.
        instance.connect();
        instance.destroy_and_expect_silence();
        assert!(instance.recorder.lock().flags.is_empty());
    }
}

#[test]
fn destroy_while_messages_flow_returns_and_silences_callbacks() {
    let server = EchoServer::start_burst(50_000);
    let mut instance = Instance::create(7, &echo_properties(&server));
    instance.expect_ok("Connect", "{}", &[]);
    instance
        .recorder
        .expect("the first message of the burst", |e| {
            e.fired("Messages Received") >= 1
        });
    instance.destroy_and_expect_silence();
    let events = instance.recorder.lock();
    let received = events.data_of("Messages Received");
    // One trigger per message, in order, whatever was received before destroy.
    for (n, message) in received.iter().enumerate() {
        assert_eq!(message, &format!("msg-{:06}", n + 1));
    }
    println!("destroyed after {} of 50000 burst messages", received.len());
}

#[test]
fn destroy_from_inside_a_callback_is_refused_and_changes_nothing() {
    let server = EchoServer::start();
    let mut instance = Instance::create(8, &echo_properties(&server));
    instance
        .recorder
        .destroy_on_fire
        .store(instance.raw as usize, Ordering::SeqCst);
    instance.connect();
    assert_eq!(
        instance.recorder.lock().destroy_in_callback,
        [IOM_ERR_IN_CALLBACK]
    );
    // The instance lives on.
    instance.expect_ok("Send Message", r#"{"Message": "still here"}"#, &[]);
    instance.recorder.expect("the echo", |e| {
        e.data_of("Messages Received") == ["still here"]
    });
    instance.destroy_and_expect_silence();
}

#[test]
fn a_wire_runs_inside_the_callback_without_a_host_thread() {
    // iom.h lets a callback test a trigger and run an action (they never
    // wait): Messages Received (Starts With "ping") -> Send Message
    // "pong <1>", all on the module's thread. The echo server sends each
    // answer back, which starts with "pong" and so fires no wire.
    let server = EchoServer::start();
    let mut instance = Instance::create(9, &echo_properties(&server));
    let prepared = prepare(
        instance.raw,
        "Messages Received",
        r#"{"Match String": "ping", "Match Mode": "Starts With"}"#,
    )
    .expect("prepare");
    instance
        .recorder
        .wire
        .set((prepared.raw() as usize, instance.raw as usize))
        .expect("set once");
    instance.connect();
    let asked: Vec<String> = (1..=200).map(|i| format!("ping {i}")).collect();
    for message in &asked {
        instance.expect_ok("Send Message", r#"{"Message": "<1>"}"#, &[message]);
    }
    let answers: Vec<String> = asked.iter().map(|m| format!("pong {m}")).collect();
    instance.recorder.expect("every answer of the wire", |e| {
        e.data_of("Messages Received").len() >= 400
    });
    {
        let events = instance.recorder.lock();
        assert_eq!(
            events.wired,
            vec![(IOM_OK, true); 200],
            "codes of the wired actions"
        );
        let received = events.data_of("Messages Received");
        let pings: Vec<&String> = received.iter().filter(|m| m.starts_with("ping")).collect();
        let pongs: Vec<&String> = received.iter().filter(|m| m.starts_with("pong")).collect();
        assert_eq!(
            pings,
            asked.iter().collect::<Vec<_>>(),
            "the echoes, in order"
        );
        assert_eq!(
            pongs,
            answers.iter().collect::<Vec<_>>(),
            "the answers, in order"
        );
    }
    // The server got both, in order per kind.
    let seen = server.snapshot().texts();
    let seen_answers: Vec<&String> = seen.iter().filter(|m| m.starts_with("pong")).collect();
    assert_eq!(seen_answers, answers.iter().collect::<Vec<_>>());
    instance.destroy_and_expect_silence();
    drop(prepared);
}

/// iom_action_prepare: the handle or the error message.
fn prepare_action(
    instance: *mut IomInstance,
    action: &str,
    properties: &str,
) -> Result<*mut IomPreparedAction, String> {
    let (action, properties) = (c(action), c(properties));
    let mut error: *mut c_char = ptr::null_mut();
    // SAFETY: as in create_raw.
    let prepared = unsafe {
        (api().action_prepare)(instance, action.as_ptr(), properties.as_ptr(), &mut error)
    };
    handle_or_error(prepared, error, "iom_action_prepare")
}

/// iom_action_run: the code and the error message.
fn run_action(prepared: *const IomPreparedAction, variables: &[&[u8]]) -> (c_int, Option<String>) {
    let variables: Vec<IomStr> = variables.iter().map(|v| IomStr::of(v)).collect();
    let mut error: *mut c_char = ptr::null_mut();
    // SAFETY: as in create_raw.
    let code =
        unsafe { (api().action_run)(prepared, variables.as_ptr(), variables.len(), &mut error) };
    let error = take_string(error);
    assert_eq!(
        code == IOM_OK,
        error.is_none(),
        "code {code}, error {error:?}"
    );
    (code, error)
}

#[test]
fn prepared_actions_run_many_times_and_refuse_bad_input() {
    let server = EchoServer::start();
    let mut instance = Instance::create(10, &echo_properties(&server));
    let free = |p: *mut IomPreparedAction| {
        // SAFETY: a prepared action from iom_action_prepare (or NULL).
        unsafe { (api().action_free)(p) }
    };

    // Bad input at prepare names what is wrong.
    let e = prepare_action(ptr::null_mut(), "Send Message", "{}").unwrap_err();
    assert!(e.contains("instance is NULL"), "{e}");
    let e = prepare_action(instance.raw, "Send", "{}").unwrap_err();
    assert!(
        e.contains("unknown action \"Send\"") && e.contains("\"Send Message\""),
        "{e}"
    );
    let e = prepare_action(instance.raw, "Send Message", r#"{"Text": "x"}"#).unwrap_err();
    assert!(e.contains("accepted: \"Message\""), "{e}");
    let e = prepare_action(instance.raw, "Send Message", "{nope").unwrap_err();
    assert!(e.contains("not valid JSON"), "{e}");
    // A Send Message with no Message is refused when it is prepared.
    let e = prepare_action(instance.raw, "Send Message", "{}").unwrap_err();
    assert!(e.starts_with("Message is required"), "{e}");
    let e = prepare_action(instance.raw, "Send Message", r#"{"Message": ""}"#).unwrap_err();
    assert!(e.starts_with("Message is required"), "{e}");
    let e = prepare_action(instance.raw, "Connect", r#"{"Bearer Token": "sec ret"}"#).unwrap_err();
    assert!(!e.contains("sec"), "a token must not be echoed: {e}");

    let wire = prepare_action(instance.raw, "Send Message", r#"{"Message": "pong <1>"}"#).unwrap();
    let fixed = prepare_action(instance.raw, "Send Message", r#"{"Message": "fixed"}"#).unwrap();
    // Not established yet: refused, naming the state, nothing queued.
    let (code, error) = run_action(wire, &[b"early"]);
    assert_eq!(code, IOM_ERR_REJECTED);
    assert!(error.unwrap().contains("not established"));

    instance.connect();
    for i in 0..100 {
        assert_eq!(run_action(wire, &[format!("{i}").as_bytes()]).0, IOM_OK);
        assert_eq!(run_action(fixed, &[]).0, IOM_OK);
    }
    let (code, error) = run_action(wire, &[b"\xff"]);
    assert_eq!(code, IOM_ERR_INVALID_ARGUMENT);
    assert!(error.unwrap().contains("variable 1 is not valid UTF-8"));
    let (code, error) = run_action(ptr::null(), &[]);
    assert_eq!(code, IOM_ERR_INVALID_ARGUMENT);
    assert!(error.unwrap().contains("NULL"));

    instance
        .recorder
        .expect("200 echoes", |e| e.fired("Messages Received") == 200);
    let mut expected = Vec::new();
    for i in 0..100 {
        expected.push(format!("pong {i}"));
        expected.push("fixed".to_owned());
    }
    assert_eq!(
        instance.recorder.lock().data_of("Messages Received"),
        expected
    );

    // A destroyed instance, a freed action: errors, not crashes.
    instance.destroy_and_expect_silence();
    let (code, error) = run_action(wire, &[b"late"]);
    assert_eq!(code, IOM_ERR_INVALID_ARGUMENT);
    assert!(error.unwrap().contains("destroyed"));
    free(wire);
    free(wire);
    free(ptr::null_mut());
    let (code, error) = run_action(wire, &[]);
    assert_eq!(code, IOM_ERR_INVALID_ARGUMENT);
    assert!(error.unwrap().contains("not live"));
    free(fixed);
}

/// What one host thread saw from its calls.
#[derive(Default)]
struct ThreadReport {
    /// Sequence numbers of the messages Send Message accepted.
    accepted: Vec<usize>,
    /// Send Message refused because the WebSocket was not established.
    not_established: usize,
    /// Send Message refused because too many messages wait for the socket.
    backlog: usize,
    /// Codes or results outside the header's contract.
    undefined: Vec<String>,
}

/// One host thread's share of the load: Send Message tagged
/// `t<thread>-<seq>` (through placeholders), a bad action, status and
/// network calls, and with `bounce` a Disconnect + Connect now and then.
fn run_host_thread(
    instance: &Instance,
    thread: usize,
    rounds: usize,
    bounce: bool,
) -> ThreadReport {
    let mut report = ThreadReport::default();
    let tag = thread.to_string();
    for seq in 0..rounds {
        let seq_text = seq.to_string();
        let (code, error) = instance.action(
            "Send Message",
            r#"{"Message": "t<1>-<2>"}"#,
            &[&tag, &seq_text],
        );
        match (code, error) {
            (IOM_OK, _) => report.accepted.push(seq),
            (IOM_ERR_REJECTED, Some(e)) if e.contains("not established") => {
                report.not_established += 1
            }
            // The backlog bound: refused, so not expected at the server.
            (IOM_ERR_REJECTED, Some(e)) if e.contains("already waiting") => report.backlog += 1,
            (code, e) => report.undefined.push(format!("Send Message: {code} {e:?}")),
        }
        if seq % 16 == 5 {
            let (code, _) = instance.action("Send", "{}", &[]);
            if code != IOM_ERR_INVALID_ARGUMENT {
                report.undefined.push(format!("bad action: {code}"));
            }
        }
        if seq % 8 == 3 {
            match status_of(instance.raw) {
                Some(s) if s.starts_with('[') => {}
                other => report.undefined.push(format!("status: {other:?}")),
            }
        }
        if seq % 100 == 50 && network_of(instance.raw, true) != IOM_OK {
            report.undefined.push("network up refused".into());
        }
        // Two threads bounce the connection now and then.
        if bounce && thread < 2 && seq % 1000 == 300 + 400 * thread {
            for name in ["Disconnect", "Connect"] {
                let (code, e) = instance.action(name, "{}", &[]);
                if code != IOM_OK {
                    report.undefined.push(format!("{name}: {code} {e:?}"));
                }
            }
        }
    }
    report
}

const HOST_THREADS: usize = 8;
/// About two seconds of calls per thread on a 2-core debug build; a count,
/// not a duration, so a slow machine only takes longer.
const ROUNDS: usize = 5000;

/// Runs the host threads on one established instance, then checks every
/// thread's messages arrived at the server in its order, with nothing the
/// server got that Send Message refused. Returns the reports and how many
/// accepted messages never reached the server.
fn share_one_instance(instance_id: u64, bounce: bool) -> (Vec<ThreadReport>, usize, Instance) {
    let server = EchoServer::start();
    let mut instance = Instance::create(instance_id, &echo_properties(&server));
    instance.connect();

    let reports: Vec<ThreadReport> = std::thread::scope(|scope| {
        let instance = &instance;
        let threads: Vec<_> = (0..HOST_THREADS)
            .map(|t| scope.spawn(move || run_host_thread(instance, t, ROUNDS, bounce)))
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("a host thread panicked"))
            .collect()
    });
    for (t, report) in reports.iter().enumerate() {
        assert!(
            report.undefined.is_empty(),
            "thread {t}: {:?}",
            report.undefined
        );
    }
    let accepted: usize = reports.iter().map(|r| r.accepted.len()).sum();
    if !bounce {
        // Nothing closes the connection, so everything accepted arrives
        // (waited for before destroy, which must not be what flushes it).
        assert!(
            server.wait_for(|o| o.messages.len() >= accepted, TIMEOUT),
            "the server received {} of {accepted} accepted messages",
            server.snapshot().messages.len()
        );
    }
    instance.destroy_and_expect_silence();
    assert!(
        server.wait_for(|o| o.open_connections() == 0, TIMEOUT),
        "the instance left a connection open"
    );

    // What the server received, per thread, in the order received.
    let mut received: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for text in server.snapshot().texts() {
        let parsed = text
            .strip_prefix('t')
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(t, s)| Some((t.parse().ok()?, s.parse().ok()?)));
        let (thread, seq) = parsed.unwrap_or_else(|| panic!("unexpected message {text:?}"));
        received.entry(thread).or_default().push(seq);
    }
    let mut lost = 0;
    for (t, report) in reports.iter().enumerate() {
        let got = received.remove(&t).unwrap_or_default();
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "thread {t}'s messages arrived out of order or twice"
        );
        let accepted: BTreeSet<usize> = report.accepted.iter().copied().collect();
        assert!(
            got.iter().all(|s| accepted.contains(s)),
            "thread {t}: the server received a message Send Message refused"
        );
        lost += accepted.len() - got.len();
    }
    assert!(received.is_empty(), "messages from unknown threads");
    (reports, lost, instance)
}

#[test]
fn eight_host_threads_on_one_established_instance_lose_nothing() {
    let (reports, lost, _instance) = share_one_instance(9, false);
    let accepted: usize = reports.iter().map(|r| r.accepted.len()).sum();
    let backlog: usize = reports.iter().map(|r| r.backlog).sum();
    println!("{accepted} accepted and received in order, {backlog} refused by the backlog bound");
    assert_eq!(
        lost, 0,
        "{lost} of {accepted} accepted messages never arrived"
    );
    assert_eq!(
        reports.iter().map(|r| r.not_established).sum::<usize>(),
        0,
        "Send Message refused on an established connection"
    );
}

#[test]
fn eight_host_threads_with_disconnects_in_between_lose_nothing_silently() {
    let (reports, lost, instance) = share_one_instance(10, true);
    // Actions run later, in queue order, on the module's thread. A Send
    // Message must therefore be refused (not accepted and then dropped) once
    // another thread has queued a Disconnect before it: every accepted
    // message arrives, and the log has exactly one failure line per refusal.
    let events = instance.recorder.lock();
    let failure_lines = events
        .logs
        .iter()
        .filter(|(l, m)| {
            *l == IOM_LOG_CRITICAL
                && m.starts_with("Send Message failed: the WebSocket is not established")
        })
        .count();
    let refused: usize = reports.iter().map(|r| r.not_established).sum();
    let accepted: usize = reports.iter().map(|r| r.accepted.len()).sum();
    assert_eq!(
        lost, 0,
        "{lost} accepted messages never arrived ({accepted} accepted, {refused} refused)"
    );
    assert_eq!(
        failure_lines, refused,
        "one failure line per refused Send Message"
    );
    let backlog: usize = reports.iter().map(|r| r.backlog).sum();
    println!(
        "established {} times",
        events.fired("WebSocket Established")
    );
    println!(
        "{accepted} accepted, {refused} refused while not established or disconnecting, \
         {backlog} refused by the backlog bound"
    );
}
