//! wsio as a controller sees it: `libwsio.so` loaded with dlopen (libloading),
//! every `iom_*` entry point resolved by name with the types of the `iom`
//! crate (`include/iom.h` in Rust), and a host written the way a controller
//! should be:
//!
//! - the callbacks (on the module's thread) only copy what they need and
//!   return: a fired Messages Received appends its data to a batch behind a
//!   mutex (`Mutex<Batch>`, swapped out whole by the consumer, so the lock is
//!   held for a copy only), connection triggers go to an event list;
//! - a consumer thread of the host (a real controller's trigger engine) takes
//!   the batch and runs `iom_trigger_test` on every message, and for the echo
//!   row runs the wired `Send Message` action from there.

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant, SystemTime};

use iom::{
    IOM_ABI_VERSION, IomHostCallbacks, IomInstance, IomPreparedAction, IomPreparedTrigger, IomStr,
};
pub use iom::{IOM_ERR_REJECTED, IOM_OK};
use libloading::Library;

/// Yields of the consumer before it parks (WSIO_BENCH_SPINS, default 32).
static SPINS_DEFAULT: OnceLock<u32> = OnceLock::new();

/// The entry points the bench calls, typed by the `iom` crate.
pub struct Api {
    instance_create: iom::InstanceCreateFn,
    instance_destroy: iom::InstanceDestroyFn,
    instance_action: iom::InstanceActionFn,
    trigger_prepare: iom::TriggerPrepareFn,
    trigger_test: iom::TriggerTestFn,
    trigger_free: iom::TriggerFreeFn,
    variables_count: iom::VariablesCountFn,
    variables_get: iom::VariablesGetFn,
    variables_free: iom::VariablesFreeFn,
    string_free: iom::StringFreeFn,
    action_prepare: iom::ActionPrepareFn,
    action_run: iom::ActionRunFn,
    action_free: iom::ActionFreeFn,
}

/// The `libwsio.so` cargo built with this bench: `cargo bench` builds the
/// lib (crate-type cdylib too) into `target/release/deps/`, where the bench
/// runs from; `target/release/` (`cargo build --release --lib`, which
/// uplifts it there) is the fallback — first would risk a stale copy, as
/// `cargo bench` does not refresh it. `WSIO_BENCH_MODULE` overrides.
pub fn module_path() -> PathBuf {
    if let Some(path) = std::env::var_os("WSIO_BENCH_MODULE") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the bench knows its path");
    let deps = exe.parent().expect("target/release/deps");
    let name = format!(
        "{}wsio{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    for dir in [Some(deps), deps.parent()].into_iter().flatten() {
        let path = dir.join(&name);
        if path.exists() {
            return path;
        }
    }
    panic!(
        "{name} not found next to {}: build it with `cargo build --release --lib` (cargo bench does)",
        exe.display()
    );
}

/// The module, loaded once and never unloaded (its driver thread runs code
/// from it; controllers keep modules loaded too).
pub fn api() -> &'static Api {
    static API: OnceLock<Api> = OnceLock::new();
    API.get_or_init(|| {
        let path = module_path();
        // SAFETY: libwsio.so is this crate's cdylib; its initialisers are trivial.
        let library = unsafe { Library::new(&path) }
            .unwrap_or_else(|e| panic!("cannot dlopen {}: {e}", path.display()));
        let library: &'static Library = Box::leak(Box::new(library));
        // SAFETY: each type is `iom`'s type of that symbol (checked against
        // the header); the library stays loaded.
        unsafe {
            Api {
                instance_create: symbol(library, "iom_instance_create"),
                instance_destroy: symbol(library, "iom_instance_destroy"),
                instance_action: symbol(library, "iom_instance_action"),
                trigger_prepare: symbol(library, "iom_trigger_prepare"),
                trigger_test: symbol(library, "iom_trigger_test"),
                trigger_free: symbol(library, "iom_trigger_free"),
                action_prepare: symbol(library, "iom_action_prepare"),
                action_run: symbol(library, "iom_action_run"),
                action_free: symbol(library, "iom_action_free"),
                variables_count: symbol(library, "iom_variables_count"),
                variables_get: symbol(library, "iom_variables_get"),
                variables_free: symbol(library, "iom_variables_free"),
                string_free: symbol(library, "iom_string_free"),
            }
        }
    })
}

/// # Safety
/// `T` must be the exported function's exact type.
unsafe fn symbol<T: Copy>(library: &'static Library, name: &str) -> T {
    // SAFETY: forwarded to the caller.
    *unsafe { library.get::<T>(name) }.unwrap_or_else(|e| panic!("no {name} in libwsio.so: {e}"))
}

fn take_error(error: *mut c_char) -> String {
    if error.is_null() {
        return String::new();
    }
    // SAFETY: a string the module returned, freed once here.
    let text = unsafe { CStr::from_ptr(error) }
        .to_string_lossy()
        .into_owned();
    unsafe { (api().string_free)(error) };
    text
}

// ------------------------------------------------------------- the host

/// A connection trigger as the host saw it.
#[derive(Debug, Clone)]
pub struct Event {
    pub instance: u64,
    pub trigger: String,
    pub wall: SystemTime,
}

#[derive(Default)]
struct Batch {
    data: Vec<u8>,
    /// (instance, end offset in data)
    ends: Vec<(u64, usize)>,
}

/// What the consumer thread does with each message.
pub type Handler = Box<dyn FnMut(u64, &[u8]) + Send>;

/// What the callback itself does with each message (`--inline`).
pub type InlineHandler = Box<dyn Fn(u64, &[u8]) + Send + Sync>;

/// The controller side of the bench: callbacks and the consumer thread.
pub struct Host {
    /// Messages Received callbacks.
    pub fired: AtomicU64,
    batch: Mutex<Batch>,
    sleeping: AtomicBool,
    consumer: Mutex<Option<Thread>>,
    stop: AtomicBool,
    events: Mutex<Vec<Event>>,
    changed: Condvar,
    pub established: AtomicUsize,
    pub status_changes: AtomicU64,
    /// The last NextRetry value per instance (the reconnect row).
    pub next_retry: Mutex<HashMap<u64, String>>,
    pub critical_logs: AtomicU64,
    /// When set, Messages Received data goes to this, inside the callback,
    /// instead of the queue (`--inline`: the module's own cost, without a
    /// host thread competing for the 2 cores).
    inline: OnceLock<InlineHandler>,
}

impl Host {
    pub fn new() -> Arc<Host> {
        Arc::new(Host {
            fired: AtomicU64::new(0),
            batch: Mutex::default(),
            sleeping: AtomicBool::new(false),
            consumer: Mutex::new(None),
            stop: AtomicBool::new(false),
            events: Mutex::default(),
            changed: Condvar::new(),
            established: AtomicUsize::new(0),
            status_changes: AtomicU64::new(0),
            next_retry: Mutex::default(),
            critical_logs: AtomicU64::new(0),
            inline: OnceLock::new(),
        })
    }

    /// Starts the consumer thread (the controller's trigger engine).
    pub fn start_consumer(self: &Arc<Host>, mut handler: Handler) -> JoinHandle<()> {
        let host = self.clone();
        let handle = std::thread::Builder::new()
            .name("bench-host-consumer".into())
            .spawn(move || {
                let mut mine = Batch::default();
                let mut idle_spins = 0;
                let spins: u32 = *SPINS_DEFAULT.get_or_init(|| {
                    std::env::var("WSIO_BENCH_SPINS")
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(32)
                });
                loop {
                    std::mem::swap(&mut *host.batch.lock().unwrap(), &mut mine);
                    if mine.ends.is_empty() {
                        if host.stop.load(Ordering::SeqCst) {
                            return;
                        }
                        // Under load the next message is microseconds away:
                        // yield a few times before parking, so that a burst
                        // costs the producer a futex wake per pause, not
                        // per message.
                        if idle_spins < spins {
                            idle_spins += 1;
                            std::thread::yield_now();
                            continue;
                        }
                        idle_spins = 0;
                        host.sleeping.store(true, Ordering::SeqCst);
                        if host.batch.lock().unwrap().ends.is_empty() {
                            std::thread::park_timeout(Duration::from_millis(5));
                        }
                        host.sleeping.store(false, Ordering::SeqCst);
                        continue;
                    }
                    idle_spins = 0;
                    let mut start = 0;
                    for &(instance, end) in &mine.ends {
                        handler(instance, &mine.data[start..end]);
                        start = end;
                    }
                    mine.data.clear();
                    mine.ends.clear();
                }
            })
            .expect("start the consumer thread");
        *self.consumer.lock().unwrap() = Some(handle.thread().clone());
        handle
    }

    /// Handles Messages Received inside the callback instead (see `inline`).
    pub fn set_inline(&self, handler: InlineHandler) {
        let _ = self.inline.set(handler);
    }

    pub fn stop_consumer(&self, handle: JoinHandle<()>) {
        self.stop.store(true, Ordering::SeqCst);
        handle.thread().unpark();
        let _ = handle.join();
    }

    /// Waits until `predicate` holds over the events (true) or `timeout`.
    pub fn wait_for(
        &self,
        mut predicate: impl FnMut(&Host, &[Event]) -> bool,
        timeout: Duration,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        let mut events = self.events.lock().unwrap();
        loop {
            if predicate(self, &events) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            events = self
                .changed
                .wait_timeout(events, left.min(Duration::from_millis(50)))
                .unwrap()
                .0;
        }
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    /// Wakes `wait_for` (for conditions a handler changed).
    pub fn notify(&self) {
        let _guard = self.events.lock().unwrap();
        self.changed.notify_all();
    }

    fn callbacks(self: &Arc<Host>) -> IomHostCallbacks {
        IomHostCallbacks {
            struct_size: std::mem::size_of::<IomHostCallbacks>() as u32,
            abi_version: IOM_ABI_VERSION,
            user_data: Arc::as_ptr(self) as *mut c_void,
            fire_trigger: Some(on_fire),
            status_changed: Some(on_status),
            log: Some(on_log),
            fire_trigger_ex: None,
            fire_trigger_flow: None,
        }
    }
}

unsafe extern "C" fn on_fire(
    user: *mut c_void,
    instance: u64,
    trigger: *const c_char,
    data: *const u8,
    len: usize,
) {
    // SAFETY: user_data is the Host the instance was created with; it
    // outlives every instance of it (destroy returns before it is dropped).
    let host = unsafe { &*(user as *const Host) };
    // SAFETY: iom.h: valid for the duration of the call.
    let name = unsafe { CStr::from_ptr(trigger) }.to_bytes();
    let data: &[u8] = if len == 0 {
        &[]
    } else {
        // SAFETY: as above.
        unsafe { std::slice::from_raw_parts(data, len) }
    };
    if name == b"Messages Received" {
        host.fired.fetch_add(1, Ordering::Relaxed);
        if let Some(inline) = host.inline.get() {
            inline(instance, data);
            return;
        }
        {
            let mut batch = host.batch.lock().unwrap();
            batch.data.extend_from_slice(data);
            let end = batch.data.len();
            batch.ends.push((instance, end));
        }
        // Wake the consumer once per sleep, not once per message.
        if host.sleeping.load(Ordering::SeqCst)
            && host.sleeping.swap(false, Ordering::SeqCst)
            && let Some(consumer) = host.consumer.lock().unwrap().as_ref()
        {
            consumer.unpark();
        }
        return;
    }
    if name == b"WebSocket Established" {
        host.established.fetch_add(1, Ordering::SeqCst);
    }
    let event = Event {
        instance,
        trigger: String::from_utf8_lossy(name).into_owned(),
        wall: SystemTime::now(),
    };
    host.events.lock().unwrap().push(event);
    host.changed.notify_all();
}

unsafe extern "C" fn on_status(
    user: *mut c_void,
    instance: u64,
    key: *const c_char,
    value: *const c_char,
    _timestamp: *const c_char,
) {
    // SAFETY: as in on_fire.
    let host = unsafe { &*(user as *const Host) };
    host.status_changes.fetch_add(1, Ordering::Relaxed);
    // SAFETY: as in on_fire.
    if unsafe { CStr::from_ptr(key) }.to_bytes() == b"NextRetry" {
        // Kept: the scheduled time (cleared to "" once connected again).
        let value = unsafe { CStr::from_ptr(value) }
            .to_string_lossy()
            .into_owned();
        if !value.is_empty() {
            host.next_retry.lock().unwrap().insert(instance, value);
        }
    }
}

unsafe extern "C" fn on_log(
    user: *mut c_void,
    instance: u64,
    level: c_int,
    message: *const c_char,
) {
    // SAFETY: as in on_fire.
    let host = unsafe { &*(user as *const Host) };
    if level == 0 {
        host.critical_logs.fetch_add(1, Ordering::Relaxed);
    }
    if std::env::var_os("WSIO_BENCH_LOG").is_some() {
        let text = unsafe { CStr::from_ptr(message) }.to_string_lossy();
        eprintln!("[module {instance} level {level}] {text}");
    }
}

// ------------------------------------------------------------- handles

/// An instance handle, usable from any thread (iom.h: every function may be
/// called from any thread).
#[derive(Clone, Copy)]
pub struct Instance(usize);

/// A prepared trigger handle, shareable like [`Instance`].
#[derive(Clone, Copy)]
pub struct Prepared(usize);

pub fn create(host: &Arc<Host>, id: u64, properties: &serde_json::Value) -> Instance {
    let callbacks = host.callbacks();
    let json = CString::new(properties.to_string()).unwrap();
    let mut error = std::ptr::null_mut();
    // SAFETY: valid arguments per iom.h.
    let handle = unsafe { (api().instance_create)(&callbacks, id, json.as_ptr(), &mut error) };
    assert!(
        !handle.is_null(),
        "iom_instance_create: {}",
        take_error(error)
    );
    Instance(handle as usize)
}

impl Instance {
    fn ptr(self) -> *mut IomInstance {
        self.0 as *mut IomInstance
    }

    /// Runs an action; returns the code and the error text.
    pub fn action(self, action: &CStr, properties: &CStr) -> (c_int, String) {
        self.action_with(action, properties, &[])
    }

    pub fn action_with(
        self,
        action: &CStr,
        properties: &CStr,
        variables: &[IomStr],
    ) -> (c_int, String) {
        let mut error = std::ptr::null_mut();
        // SAFETY: valid arguments per iom.h.
        let code = unsafe {
            (api().instance_action)(
                self.ptr(),
                action.as_ptr(),
                properties.as_ptr(),
                variables.as_ptr(),
                variables.len(),
                &mut error,
            )
        };
        (code, take_error(error))
    }

    /// Runs an action without asking for the error text (the hot path).
    pub fn action_code(self, action: &CStr, properties: &CStr) -> c_int {
        // SAFETY: valid arguments per iom.h; a NULL error pointer is allowed.
        unsafe {
            (api().instance_action)(
                self.ptr(),
                action.as_ptr(),
                properties.as_ptr(),
                std::ptr::null(),
                0,
                std::ptr::null_mut(),
            )
        }
    }

    pub fn connect(self) {
        let (code, error) = self.action(c"Connect", c"{}");
        assert_eq!(code, IOM_OK, "Connect: {error}");
    }

    pub fn destroy(self) {
        // SAFETY: a live handle, destroyed once.
        unsafe { (api().instance_destroy)(self.ptr()) };
    }
}

/// A prepared action handle (`iom_action_prepare`), shareable like
/// [`Instance`].
#[derive(Clone, Copy)]
pub struct PreparedAction(usize);

impl Instance {
    /// `iom_action_prepare` on this instance.
    pub fn prepare_action(self, action: &CStr, properties: &CStr) -> PreparedAction {
        let mut error = std::ptr::null_mut();
        // SAFETY: valid arguments per iom.h.
        let handle = unsafe {
            (api().action_prepare)(self.ptr(), action.as_ptr(), properties.as_ptr(), &mut error)
        };
        assert!(
            !handle.is_null(),
            "iom_action_prepare: {}",
            take_error(error)
        );
        PreparedAction(handle as usize)
    }
}

impl PreparedAction {
    /// `iom_action_run` without asking for the error text (the hot path).
    pub fn run_code(self, variables: &[IomStr]) -> c_int {
        // SAFETY: a live prepared action; a NULL error pointer is allowed.
        unsafe {
            (api().action_run)(
                self.0 as *const IomPreparedAction,
                variables.as_ptr(),
                variables.len(),
                std::ptr::null_mut(),
            )
        }
    }

    /// `iom_action_run`: the code and the error text.
    pub fn run(self, variables: &[IomStr]) -> (c_int, String) {
        let mut error = std::ptr::null_mut();
        // SAFETY: as in `run_code`.
        let code = unsafe {
            (api().action_run)(
                self.0 as *const IomPreparedAction,
                variables.as_ptr(),
                variables.len(),
                &mut error,
            )
        };
        (code, take_error(error))
    }

    pub fn free(self) {
        // SAFETY: a live prepared action, freed once.
        unsafe { (api().action_free)(self.0 as *mut IomPreparedAction) };
    }
}

pub fn prepare(trigger: &str, properties: &serde_json::Value) -> Prepared {
    let name = CString::new(trigger).unwrap();
    let json = CString::new(properties.to_string()).unwrap();
    let mut error = std::ptr::null_mut();
    // SAFETY: valid arguments per iom.h (instance may be NULL).
    let handle = unsafe {
        (api().trigger_prepare)(
            std::ptr::null_mut(),
            name.as_ptr(),
            json.as_ptr(),
            &mut error,
        )
    };
    assert!(
        !handle.is_null(),
        "iom_trigger_prepare: {}",
        take_error(error)
    );
    Prepared(handle as usize)
}

impl Prepared {
    /// `iom_trigger_test` without variables.
    pub fn test(self, data: &[u8]) -> bool {
        // SAFETY: a live prepared trigger and a valid byte range.
        unsafe {
            (api().trigger_test)(
                self.0 as *const IomPreparedTrigger,
                data.as_ptr(),
                data.len(),
                std::ptr::null_mut(),
            ) == 1
        }
    }

    /// `iom_trigger_test` with variables: calls `f` with them on a match.
    pub fn test_with<R>(self, data: &[u8], f: impl FnOnce(&[IomStr]) -> R) -> Option<R> {
        let mut vars = std::ptr::null_mut();
        // SAFETY: as in `test`.
        let matched = unsafe {
            (api().trigger_test)(
                self.0 as *const IomPreparedTrigger,
                data.as_ptr(),
                data.len(),
                &mut vars,
            )
        };
        if matched != 1 {
            return None;
        }
        let api = api();
        // No allocation on the host side: at most 8 variables on the stack.
        let mut list = [IomStr {
            ptr: std::ptr::null(),
            len: 0,
        }; 8];
        // SAFETY: `vars` came from a match and is freed once below.
        let n = unsafe { (api.variables_count)(vars) }.min(list.len());
        for (i, slot) in list.iter_mut().enumerate().take(n) {
            *slot = unsafe { (api.variables_get)(vars, i) };
        }
        let result = f(&list[..n]);
        unsafe { (api.variables_free)(vars) };
        Some(result)
    }

    pub fn free(self) {
        // SAFETY: a live prepared trigger, freed once.
        unsafe { (api().trigger_free)(self.0 as *mut IomPreparedTrigger) };
    }
}
