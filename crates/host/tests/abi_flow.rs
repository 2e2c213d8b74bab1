//! Flow control through the C ABI (`fire_trigger_flow`,
//! `iom_instance_resume`), as a controller in another language uses it: a
//! host that answers "full" makes the module hold the trigger and stop
//! reading, so the server's sends back up in TCP and no further trigger
//! comes; the keep-alive does not drop the paused connection; on resume
//! every message arrives, in order, none lost.

mod support;

use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use support::abi_host::{c, callback_bytes, callback_string, create_raw, destroy_raw};
use support::iom::{
    IOM_ABI_VERSION, IOM_ERR_INVALID_ARGUMENT, IOM_ERR_REJECTED, IOM_OK, IomHostCallbacks, api,
};
use support::{ScriptServer, raw_frame};

/// Messages the server sends, and their size: far more than the socket
/// buffers hold, so a client that stops reading blocks the server.
const MESSAGES: usize = 2000;
const SIZE: usize = 16 * 1024;
const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Seen {
    /// Messages Received data the host took, in order.
    messages: Vec<Vec<u8>>,
    /// Other triggers the host took, by name.
    others: Vec<String>,
}

/// A host that refuses Messages Received while `full` is set.
#[derive(Default)]
struct FlowHost {
    full: AtomicBool,
    refusals: AtomicUsize,
    seen: Mutex<Seen>,
    changed: Condvar,
}

impl FlowHost {
    fn wait_for(&self, what: impl Fn(&Seen) -> bool, timeout: Duration) -> bool {
        let seen = self.seen.lock().unwrap();
        let (_seen, result) = self
            .changed
            .wait_timeout_while(seen, timeout, |s| !what(s))
            .unwrap();
        !result.timed_out()
    }
}

unsafe extern "C" fn on_flow(
    user_data: *mut c_void,
    _instance_id: u64,
    trigger: *const c_char,
    data: *const u8,
    len: usize,
    _flags: u32,
) -> c_int {
    // SAFETY: user_data is the test's Arc<FlowHost>, alive while the
    // instance lives; the pointers are valid during the call.
    let host = unsafe { &*(user_data as *const FlowHost) };
    let trigger = unsafe { callback_string(trigger) }
        .and_then(Result::ok)
        .unwrap_or_default();
    if trigger == "Messages Received" && host.full.load(Ordering::SeqCst) {
        host.refusals.fetch_add(1, Ordering::SeqCst);
        return IOM_ERR_REJECTED;
    }
    let mut seen = host.seen.lock().unwrap_or_else(|e| e.into_inner());
    if trigger == "Messages Received" {
        seen.messages.push(unsafe { callback_bytes(data, len) });
    } else {
        seen.others.push(trigger);
    }
    drop(seen);
    host.changed.notify_all();
    IOM_OK
}

unsafe extern "C" fn on_fire(_: *mut c_void, _: u64, _: *const c_char, _: *const u8, _: usize) {
    // Never called: fire_trigger_flow takes precedence.
    std::process::abort();
}

unsafe extern "C" fn on_status(
    _: *mut c_void,
    _: u64,
    _: *const c_char,
    _: *const c_char,
    _: *const c_char,
) {
}

unsafe extern "C" fn on_log(_: *mut c_void, _: u64, _: iom::IomLogLevel, _: *const c_char) {}

fn message(n: usize) -> Vec<u8> {
    let mut text = format!("m-{n:06}-").into_bytes();
    text.resize(SIZE, b'x');
    text
}

/// A server that writes MESSAGES messages without blocking until the
/// socket buffers are full, says at which message that happened, then
/// writes on (blocking) until the client reads again; and an instance
/// connected to it through a host that is full. Returns once the server's
/// sends have backed up.
struct Paused {
    server: ScriptServer,
    host: Arc<FlowHost>,
    instance: *mut iom::IomInstance,
    /// Keeps the callbacks' user_data alive with the instance.
    _callbacks: IomHostCallbacks,
}

fn paused() -> Paused {
    let (backed_up, backed_up_at) = mpsc::channel();
    let backed_up = Mutex::new(backed_up);
    let server = ScriptServer::after_upgrade(move |mut peer| {
        peer.stream.set_nonblocking(true).unwrap();
        let mut reported = false;
        for n in 0..MESSAGES {
            let mut bytes = Vec::new();
            raw_frame(OpCode::Data(Data::Text), true, &message(n))
                .format(&mut bytes)
                .unwrap();
            let mut at = 0;
            while at < bytes.len() {
                match std::io::Write::write(&mut peer.stream, &bytes[at..]) {
                    Ok(written) => at += written,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if !reported {
                            reported = true;
                            let _ = backed_up.lock().unwrap().send(n);
                        }
                        peer.stream.set_nonblocking(false).unwrap();
                    }
                    Err(_) => return,
                }
            }
        }
        peer.stream.set_nonblocking(false).unwrap();
        peer.hold();
    });

    let host = Arc::new(FlowHost::default());
    host.full.store(true, Ordering::SeqCst);
    let callbacks = IomHostCallbacks {
        struct_size: size_of::<IomHostCallbacks>() as u32,
        abi_version: IOM_ABI_VERSION,
        user_data: Arc::as_ptr(&host).cast_mut().cast(),
        fire_trigger: Some(on_fire),
        status_changed: Some(on_status),
        log: Some(on_log),
        fire_trigger_ex: None,
        fire_trigger_flow: Some(on_flow),
    };
    // A short keep-alive: were it running while the connection is not read,
    // its pong timeout would drop the connection within two seconds.
    let properties = c(&format!(
        r#"{{"Hostname":"127.0.0.1","Port":{},"Keep Alive Interval":1,"Pong Timeout":1}}"#,
        server.port()
    ));
    let instance = create_raw(&callbacks, 1, properties.as_ptr()).unwrap();
    let (code, error) = support::abi_host::action_on(instance, "Connect", "{}", &[]);
    assert_eq!(code, IOM_OK, "{error:?}");

    // Paused: the server's sends back up, and no message reaches the host.
    let at = backed_up_at
        .recv_timeout(TIMEOUT)
        .expect("the server's sends backed up");
    assert!(at < MESSAGES, "backed up at message {at}");
    assert!(host.refusals.load(Ordering::SeqCst) >= 1);
    assert!(host.seen.lock().unwrap().messages.is_empty());
    Paused {
        server,
        host,
        instance,
        _callbacks: callbacks,
    }
}

#[test]
fn a_full_host_pauses_the_connection_and_resume_delivers_every_message_in_order() {
    let Paused {
        host,
        instance,
        server: _server,
        ..
    } = paused();
    // The keep-alive is suspended while paused: no Disconnected comes.
    assert!(
        !host.wait_for(
            |s| s.others.iter().any(|t| t == "Disconnected"),
            Duration::from_secs(3)
        ),
        "the paused connection was dropped: {:?}",
        host.seen.lock().unwrap().others
    );
    assert!(host.seen.lock().unwrap().messages.is_empty());
    let refusals = host.refusals.load(Ordering::SeqCst);

    // Room again: every message arrives, in order, none lost or repeated.
    host.full.store(false, Ordering::SeqCst);
    // SAFETY: a live instance.
    assert_eq!(unsafe { (api().instance_resume)(instance) }, IOM_OK);
    let started = Instant::now();
    assert!(
        host.wait_for(|s| s.messages.len() >= MESSAGES, TIMEOUT),
        "{} of {MESSAGES} messages after resume",
        host.seen.lock().unwrap().messages.len()
    );
    let seen = host.seen.lock().unwrap();
    assert_eq!(seen.messages.len(), MESSAGES);
    for (n, data) in seen.messages.iter().enumerate() {
        assert!(
            data.starts_with(format!("m-{n:06}-").as_bytes()),
            "message {n} out of order: {:?}",
            String::from_utf8_lossy(&data[..12])
        );
    }
    assert!(!seen.others.iter().any(|t| t == "Disconnected"));
    drop(seen);
    assert_eq!(host.refusals.load(Ordering::SeqCst), refusals);
    eprintln!("resumed and delivered in {:?}", started.elapsed());

    assert_eq!(destroy_raw(instance), IOM_OK);
    // SAFETY: resume validates the handle: a destroyed one is refused.
    assert_eq!(
        unsafe { (api().instance_resume)(instance) },
        IOM_ERR_INVALID_ARGUMENT
    );
}

#[test]
fn a_disconnect_while_paused_closes_and_the_held_triggers_follow_in_order_on_resume() {
    let paused = paused();
    let (host, instance) = (&paused.host, paused.instance);
    // The close handshake completes although the host is still full: the
    // module reads again to finish it (what arrives after its close frame
    // fires no trigger).
    let (code, error) = support::abi_host::action_on(instance, "Disconnect", "{}", &[]);
    assert_eq!(code, IOM_OK, "{error:?}");
    assert!(
        paused
            .server
            .wait_for(|o| o.closes.iter().any(|c| c.code == 1000), TIMEOUT),
        "the server got no close frame 1000"
    );
    assert!(host.seen.lock().unwrap().messages.is_empty());
    // Disconnected waits behind the held message: order is kept.
    assert!(
        !host
            .seen
            .lock()
            .unwrap()
            .others
            .iter()
            .any(|t| t == "Disconnected")
    );
    host.full.store(false, Ordering::SeqCst);
    // SAFETY: a live instance.
    assert_eq!(unsafe { (api().instance_resume)(instance) }, IOM_OK);
    assert!(host.wait_for(|s| s.others.iter().any(|t| t == "Disconnected"), TIMEOUT));
    let seen = host.seen.lock().unwrap();
    assert_eq!(seen.messages.len(), 1, "only the held message");
    assert!(seen.messages[0].starts_with(b"m-000000-"));
    drop(seen);
    assert_eq!(destroy_raw(instance), IOM_OK);
}
