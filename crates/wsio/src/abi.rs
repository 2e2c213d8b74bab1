//! The IO module ABI: `extern "C"` exports implementing `include/iom.h`.
//!
//! Last step of the data flow and the only place with `unsafe`. Every export
//! validates its input (NULL, UTF-8, JSON, names) and catches panics, so a
//! controller written in any language gets an error message, never a crash.
//!
//! Handles are not pointers into our memory: `iom_instance *` and
//! `iom_prepared_trigger *` are ids in a registry, so a stale, freed or
//! made-up handle is reported as an error instead of being dereferenced.
//! Trigger variables (`iom_variables *`) are boxed, carry a tag that is
//! checked on every use, and are the host's to free exactly once.

use crate::host::Host;
use crate::instance::driver;
use crate::instance::{ActionError, Instance, InstanceError, Options, PreparedAction};
use crate::manifest::MANIFEST_TOML;
use crate::manifest::names;
use crate::matching::{PreparedTrigger, fill_placeholders};
use crate::properties::Properties;
use crate::status::{self, StatusVariable};
use crate::vocabulary::{LogLevel, Trigger};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::hash::{BuildHasherDefault, Hasher};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock, Weak};

/// The ABI version implemented (IOM_ABI_VERSION).
pub const ABI_VERSION: u32 = 1;

pub const IOM_OK: c_int = 0;
pub const IOM_ERR_INVALID_ARGUMENT: c_int = 1;
pub const IOM_ERR_REJECTED: c_int = 2;
pub const IOM_ERR_IN_CALLBACK: c_int = 3;
pub const IOM_ERR_PANIC: c_int = 4;

/// `iom_str`: a borrowed byte range.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct IomStr {
    pub ptr: *const c_char,
    pub len: usize,
}

pub type FireTriggerFn = unsafe extern "C" fn(
    user_data: *mut c_void,
    instance_id: u64,
    trigger: *const c_char,
    data: *const u8,
    len: usize,
);
pub type StatusChangedFn = unsafe extern "C" fn(
    user_data: *mut c_void,
    instance_id: u64,
    key: *const c_char,
    value: *const c_char,
    timestamp: *const c_char,
);
pub type FireTriggerExFn = unsafe extern "C" fn(
    user_data: *mut c_void,
    instance_id: u64,
    trigger: *const c_char,
    data: *const u8,
    len: usize,
    flags: u32,
);
pub type LogFn = unsafe extern "C" fn(
    user_data: *mut c_void,
    instance_id: u64,
    level: u32,
    message: *const c_char,
);

/// `iom_host_callbacks`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct IomHostCallbacks {
    pub struct_size: u32,
    pub abi_version: u32,
    pub user_data: *mut c_void,
    pub fire_trigger: Option<FireTriggerFn>,
    pub status_changed: Option<StatusChangedFn>,
    pub log: Option<LogFn>,
    /// Optional: present when `struct_size` covers it.
    pub fire_trigger_ex: Option<FireTriggerExFn>,
}

/// The size of the struct before the optional fields: what every ABI 1
/// host passes at least.
const CALLBACKS_BASE_SIZE: usize = std::mem::offset_of!(IomHostCallbacks, fire_trigger_ex);

/// `IOM_DATA_BINARY`.
pub const IOM_DATA_BINARY: u32 = 1;

/// Opaque handle types of the header (never dereferenced: registry ids).
pub enum IomInstance {}
pub enum IomPreparedTrigger {}
pub enum IomPreparedAction {}

/// `iom_variables`: trigger variables owned by the host until freed.
pub struct IomVariables {
    tag: u64,
    values: Vec<Box<[u8]>>,
}

/// "wsiovars": recognisable in a debugger, checked on every use.
const VARIABLES_TAG: u64 = u64::from_be_bytes(*b"wsiovars");

// ------------------------------------------------------------- registries

/// Live objects by handle id. Ids start at 1 and are never reused, so a
/// stale handle can only ever miss.
struct Registry<T> {
    next: AtomicUsize,
    /// Removals so far, counted under the write lock: a handle a thread
    /// remembers ([`Recent`]) is good while this has not moved.
    removals: AtomicUsize,
    live: RwLock<HashMap<usize, Arc<T>, BuildHasherDefault<IdHasher>>>,
}

/// How many handles a thread remembers per registry.
const RECENT: usize = 4;

/// The handles a thread looked up last in one registry, for the calls made
/// per message (`iom_trigger_test`, `iom_action_run`): a hit costs a
/// thread-local read and an atomic load instead of the read lock (two
/// atomic writes to a line every thread shares) and a hash lookup.
///
/// An entry keeps its object alive until the thread looks up other
/// handles or ends, but one whose handle was freed is never used: any
/// removal from the registry moves `removals`, and ids are never reused.
/// Triggers and prepared actions only: an instance's drop must not wait
/// for some thread's next call.
struct Recent<T> {
    entries: [Option<(usize, usize, Arc<T>)>; RECENT],
    /// The entry the next miss replaces (round robin).
    next: usize,
}

impl<T> Recent<T> {
    const fn new() -> Self {
        Recent {
            entries: [const { None }; RECENT],
            next: 0,
        }
    }

    fn find(&self, id: usize, removals: usize) -> Option<&T> {
        self.entries.iter().find_map(|entry| match entry {
            Some((i, r, value)) if *i == id && *r == removals => Some(&**value),
            _ => None,
        })
    }

    fn remember(&mut self, id: usize, removals: usize, value: Arc<T>) {
        self.entries[self.next] = Some((id, removals, value));
        self.next = (self.next + 1) % RECENT;
    }
}

type RecentKey<T> = &'static std::thread::LocalKey<RefCell<Recent<T>>>;

thread_local! {
    static RECENT_TRIGGERS: RefCell<Recent<PreparedTrigger>> = const { RefCell::new(Recent::new()) };
    static RECENT_ACTIONS: RefCell<Recent<BoundAction>> = const { RefCell::new(Recent::new()) };
}

/// Handle ids are distinct multiples of 8 that we made ourselves, not
/// input an attacker chooses: hashing them with SipHash cost more than the
/// rest of an `iom_trigger_test` Contains test.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }

    fn write_usize(&mut self, id: usize) {
        // hashbrown takes the top bits for its tags and the low bits for
        // the bucket: spread the id over both.
        self.0 = (id as u64 >> 3).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

impl<T> Registry<T> {
    fn new() -> Self {
        Registry {
            next: AtomicUsize::new(1),
            removals: AtomicUsize::new(0),
            live: RwLock::new(HashMap::default()),
        }
    }

    fn insert(&self, value: T) -> usize {
        // Ids step by 8 so handles look like aligned pointers to C tools.
        let id = self.next.fetch_add(1, Ordering::Relaxed) * 8;
        self.live
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Arc::new(value));
        id
    }

    fn get(&self, id: usize) -> Option<Arc<T>> {
        self.live
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }

    /// Runs `f` on a live object, found among the handles this thread
    /// used last ([`Recent`]) or else under the read lock (and then
    /// remembered): no reference count to raise and drop on a hit, for the
    /// per-message calls. `f` runs outside the lock and may call into the
    /// registry again.
    fn with_recent<R>(
        &self,
        recent: RecentKey<T>,
        id: usize,
        f: impl FnOnce(&T) -> R,
    ) -> Option<R> {
        let removals = self.removals.load(Ordering::Acquire);
        let mut f = Some(f);
        let hit = recent
            .try_with(|cell| {
                let entries = cell.try_borrow().ok()?;
                let value = entries.find(id, removals)?;
                f.take().map(|f| f(value))
            })
            .ok()
            .flatten();
        if hit.is_some() {
            return hit;
        }
        // Not remembered (f has not run).
        let f = f?;
        let (value, removals) = {
            let live = self.live.read().unwrap_or_else(|e| e.into_inner());
            // Read under the lock that removals take: the count and the
            // lookup belong together.
            (
                live.get(&id)?.clone(),
                self.removals.load(Ordering::Acquire),
            )
        };
        let _ = recent.try_with(|cell| {
            if let Ok(mut entries) = cell.try_borrow_mut() {
                entries.remember(id, removals, value.clone());
            }
        });
        Some(f(&value))
    }

    fn remove(&self, id: usize) -> Option<Arc<T>> {
        let mut live = self.live.write().unwrap_or_else(|e| e.into_inner());
        let removed = live.remove(&id);
        // Before the lock is released: a lookup that no longer finds the
        // handle also sees the new count.
        self.removals.fetch_add(1, Ordering::Release);
        removed
    }
}

fn instances() -> &'static Registry<Instance> {
    static R: OnceLock<Registry<Instance>> = OnceLock::new();
    R.get_or_init(Registry::new)
}

fn triggers() -> &'static Registry<PreparedTrigger> {
    static R: OnceLock<Registry<PreparedTrigger>> = OnceLock::new();
    R.get_or_init(Registry::new)
}

fn actions() -> &'static Registry<BoundAction> {
    static R: OnceLock<Registry<BoundAction>> = OnceLock::new();
    R.get_or_init(Registry::new)
}

// ------------------------------------------------------------- the host side

/// The C callbacks of one instance, as a [`Host`].
struct CHost {
    callbacks: IomHostCallbacks,
    instance_id: u64,
}

// SAFETY: iom.h requires the host's callbacks and user_data to be usable
// from the module's thread; all calls are made from the one driver thread.
unsafe impl Send for CHost {}
// SAFETY: as above; CHost itself is never mutated after creation.
unsafe impl Sync for CHost {}

/// A C string for text that might hold NUL (a message, a reason).
fn c_text(text: &str) -> CString {
    CString::new(text)
        .unwrap_or_else(|_| CString::new(text.replace('\0', "\u{FFFD}")).unwrap_or_default())
}

/// The trigger's name as a C string: looked up per fired message, so by
/// index (`Trigger::ALL` is in declaration order), not by search.
fn trigger_c_name(trigger: Trigger) -> &'static CStr {
    static NAMES: OnceLock<[CString; Trigger::ALL.len()]> = OnceLock::new();
    let names = NAMES.get_or_init(|| Trigger::ALL.map(|t| c_text(t.name())));
    names
        .get(trigger as usize)
        .map_or(c"", |name| name.as_c_str())
}

impl Host for CHost {
    fn fire_trigger(&self, trigger: Trigger, data: &[u8], binary: bool) {
        if let Some(f) = self.callbacks.fire_trigger_ex {
            let flags = if binary { IOM_DATA_BINARY } else { 0 };
            // SAFETY: the host gave us this function (struct_size covered
            // it); every pointer is valid for the duration of the call.
            unsafe {
                f(
                    self.callbacks.user_data,
                    self.instance_id,
                    trigger_c_name(trigger).as_ptr(),
                    data.as_ptr(),
                    data.len(),
                    flags,
                )
            }
        } else if let Some(f) = self.callbacks.fire_trigger {
            // SAFETY: the host gave us this function for exactly this call;
            // every pointer is valid for the duration of the call.
            unsafe {
                f(
                    self.callbacks.user_data,
                    self.instance_id,
                    trigger_c_name(trigger).as_ptr(),
                    data.as_ptr(),
                    data.len(),
                )
            }
        }
    }

    fn status_changed(&self, variable: &StatusVariable) {
        if let Some(f) = self.callbacks.status_changed {
            let (key, value, stamp) = (
                c_text(variable.key),
                c_text(&variable.value),
                c_text(&variable.timestamp),
            );
            // SAFETY: as in fire_trigger; the CStrings outlive the call.
            unsafe {
                f(
                    self.callbacks.user_data,
                    self.instance_id,
                    key.as_ptr(),
                    value.as_ptr(),
                    stamp.as_ptr(),
                )
            }
        }
    }

    fn log(&self, level: LogLevel, message: &str) {
        if let Some(f) = self.callbacks.log {
            let message = c_text(message);
            // SAFETY: as in fire_trigger; the CString outlives the call.
            unsafe {
                f(
                    self.callbacks.user_data,
                    self.instance_id,
                    level as u32,
                    message.as_ptr(),
                )
            }
        }
    }
}

// ------------------------------------------------------------- input checks

/// Stores `message` in `*error` (when error is not NULL).
fn set_error(error: *mut *mut c_char, message: &str) {
    if !error.is_null() {
        // SAFETY: the caller passes either NULL or a pointer to writable
        // storage for one `char *` (iom.h).
        unsafe { *error = c_text(message).into_raw() };
    }
}

fn clear_error(error: *mut *mut c_char) {
    if !error.is_null() {
        // SAFETY: as in set_error.
        unsafe { *error = std::ptr::null_mut() };
    }
}

/// Reads a NUL-terminated UTF-8 argument.
fn read_str<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, String> {
    if ptr.is_null() {
        return Err(format!(
            "{what} is NULL; pass a NUL-terminated UTF-8 string"
        ));
    }
    // SAFETY: non-NULL, and iom.h requires NUL-terminated strings that stay
    // valid for the duration of the call.
    let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
    std::str::from_utf8(bytes).map_err(|e| {
        format!(
            "{what} is not valid UTF-8 (bad byte at offset {})",
            e.valid_up_to()
        )
    })
}

/// Reads an optional JSON object argument (NULL or "" means none).
fn read_json(ptr: *const c_char, what: &str) -> Result<Value, String> {
    if ptr.is_null() {
        return Ok(Value::Null);
    }
    let text = read_str(ptr, what)?;
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(text).map_err(|e| format!("{what} is not valid JSON: {e}"))
}

/// Reads a byte range argument.
fn read_bytes<'a>(ptr: *const u8, len: usize, what: &str) -> Result<&'a [u8], String> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(format!("{what} is NULL but its length is {len}"));
    }
    // SAFETY: non-NULL, and iom.h requires `len` readable bytes at `ptr`
    // for the duration of the call.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Runs an export body, turning a panic into an error: nothing unwinds
/// into the host.
fn guard<T>(on_panic: T, error: *mut *mut c_char, body: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(_) => {
            set_error(
                error,
                "internal error in the wsio module (a bug: please report it with the log)",
            );
            on_panic
        }
    }
}

/// A handle-returning export's result: the handle, or NULL with `*error`.
fn handle_or_error<T>(result: Result<usize, String>, error: *mut *mut c_char) -> *mut T {
    match result {
        Ok(id) => {
            clear_error(error);
            id as *mut T
        }
        Err(message) => {
            set_error(error, &message);
            std::ptr::null_mut()
        }
    }
}

/// A code-returning export's result: IOM_OK, or the code with `*error`.
fn code_or_error(result: Result<(), (c_int, String)>, error: *mut *mut c_char) -> c_int {
    match result {
        Ok(()) => {
            clear_error(error);
            IOM_OK
        }
        Err((code, message)) => {
            set_error(error, &message);
            code
        }
    }
}

/// The return code and message of an action that was not taken.
fn action_failure(e: ActionError) -> (c_int, String) {
    let code = match e {
        ActionError::Invalid(_) => IOM_ERR_INVALID_ARGUMENT,
        _ => IOM_ERR_REJECTED,
    };
    (code, e.to_string())
}

fn instance_of(handle: *mut IomInstance) -> Result<Arc<Instance>, String> {
    if handle.is_null() {
        return Err("instance is NULL".into());
    }
    instances().get(handle as usize).ok_or_else(|| {
        "instance is not a live instance of this module (destroyed, or never created)".into()
    })
}

// ------------------------------------------------------------- exports

/// See iom.h.
#[unsafe(no_mangle)]
pub extern "C" fn iom_abi_version() -> u32 {
    ABI_VERSION
}

/// See iom.h.
#[unsafe(no_mangle)]
pub extern "C" fn iom_module_manifest() -> *const c_char {
    static TEXT: OnceLock<CString> = OnceLock::new();
    TEXT.get_or_init(|| c_text(MANIFEST_TOML)).as_ptr()
}

/// See iom.h.
#[unsafe(no_mangle)]
pub extern "C" fn iom_instance_create(
    host: *const IomHostCallbacks,
    instance_id: u64,
    properties_json: *const c_char,
    error: *mut *mut c_char,
) -> *mut IomInstance {
    guard(std::ptr::null_mut(), error, || {
        handle_or_error(create(host, instance_id, properties_json), error)
    })
}

fn create(
    host: *const IomHostCallbacks,
    instance_id: u64,
    properties_json: *const c_char,
) -> Result<usize, String> {
    if host.is_null() {
        return Err("host callbacks are NULL; pass an iom_host_callbacks struct".into());
    }
    // Read the two leading u32 fields first: an older, shorter struct must
    // be refused by its version, not read past its end.
    // SAFETY: non-NULL; every version of the struct starts with these two
    // u32 fields (iom.h).
    let (size, version) = unsafe {
        let head = host as *const u32;
        (head.read_unaligned(), head.add(1).read_unaligned())
    };
    if version != ABI_VERSION {
        return Err(format!(
            "host speaks IO module ABI version {version}, this module implements version {ABI_VERSION}; rebuild the host against this module's iom.h or use a matching module"
        ));
    }
    let needed = CALLBACKS_BASE_SIZE;
    if (size as usize) < needed {
        return Err(format!(
            "iom_host_callbacks.struct_size is {size}, expected at least {needed} (sizeof(iom_host_callbacks) for ABI {ABI_VERSION})"
        ));
    }
    if instance_id == 0 {
        return Err("instance_id must be 1 or more (0 is reserved)".into());
    }
    // Copy what the host's struct has; optional fields it lacks stay NULL.
    // Only whole fields: a struct_size ending inside fire_trigger_ex (a host
    // bug) must not leave half a pointer from past the host's struct there.
    let full = std::mem::size_of::<IomHostCallbacks>();
    let copied = if size as usize >= full {
        full
    } else {
        CALLBACKS_BASE_SIZE
    };
    let mut callbacks = IomHostCallbacks {
        struct_size: 0,
        abi_version: 0,
        user_data: std::ptr::null_mut(),
        fire_trigger: None,
        status_changed: None,
        log: None,
        fire_trigger_ex: None,
    };
    // SAFETY: non-NULL, version checked, and `size` (at least the base
    // size) bytes are readable per iom.h; we copy at most `size` bytes and
    // whole fields into a valid value whose every field is a plain integer,
    // pointer or nullable function pointer.
    unsafe {
        std::ptr::copy_nonoverlapping(
            host as *const u8,
            (&mut callbacks as *mut IomHostCallbacks).cast::<u8>(),
            copied,
        )
    };
    let json = read_json(properties_json, "properties_json")?;
    let properties = Properties::from_json(&json).map_err(|e| e.message)?;
    let chost = Arc::new(CHost {
        callbacks,
        instance_id,
    });
    let instance = Instance::new(properties, chost, Options::default()).map_err(|e| match e {
        InstanceError::Properties(p) => p.message,
        InstanceError::Tls(t) => t,
    })?;
    Ok(instances().insert(instance))
}

/// See iom.h.
#[unsafe(no_mangle)]
pub extern "C" fn iom_instance_destroy(instance: *mut IomInstance) -> c_int {
    guard(IOM_ERR_PANIC, std::ptr::null_mut(), || {
        if instance.is_null() {
            return IOM_OK;
        }
        if driver::on_driver_thread() {
            return IOM_ERR_IN_CALLBACK;
        }
        match instances().remove(instance as usize) {
            Some(live) => {
                live.shutdown();
                IOM_OK
            }
            None => IOM_ERR_INVALID_ARGUMENT,
        }
    })
}

/// See iom.h.
#[unsafe(no_mangle)]
pub extern "C" fn iom_instance_action(
    instance: *mut IomInstance,
    action: *const c_char,
    properties_json: *const c_char,
    variables: *const IomStr,
    n_variables: usize,
    error: *mut *mut c_char,
) -> c_int {
    guard(IOM_ERR_PANIC, error, || {
        let result = (|| {
            let live = instance_of(instance).map_err(|e| (IOM_ERR_INVALID_ARGUMENT, e))?;
            let name = read_str(action, "action").map_err(|e| (IOM_ERR_INVALID_ARGUMENT, e))?;
            if name == names::ACTION_SEND_MESSAGE && !properties_json.is_null() {
                let text = read_str(properties_json, "properties_json")
                    .map_err(|e| (IOM_ERR_INVALID_ARGUMENT, e))?;
                if let Some(message) = plain_send_message(text) {
                    let vars = read_variables(variables, n_variables)
                        .map_err(|e| (IOM_ERR_INVALID_ARGUMENT, e))?;
                    return live
                        .send_message(fill_placeholders(message, &vars))
                        .map_err(action_failure);
                }
            }
            let json = read_json(properties_json, "properties_json")
                .map_err(|e| (IOM_ERR_INVALID_ARGUMENT, e))?;
            let vars = read_variables(variables, n_variables)
                .map_err(|e| (IOM_ERR_INVALID_ARGUMENT, e))?;
            live.action(name, &json, &vars).map_err(action_failure)
        })();
        code_or_error(result, error)
    })
}

/// The Message of `{"Message":"…"}` (JSON whitespace allowed) when the
/// text has no escape: what a wired Send Message nearly always is. It is
/// exactly what the general path would make of it (Message Type defaults to
/// Text), without building a JSON tree and a property map per call, which
/// cost more than the rest of the action. Anything else (escapes, other
/// properties, bad JSON) returns None and takes the general path.
fn plain_send_message(json: &str) -> Option<&str> {
    const WS: [char; 4] = [' ', '\t', '\n', '\r'];
    let rest = json.trim_start_matches(WS).strip_prefix('{')?;
    let rest = rest.trim_start_matches(WS).strip_prefix("\"Message\"")?;
    let rest = rest.trim_start_matches(WS).strip_prefix(':')?;
    let rest = rest.trim_start_matches(WS).strip_prefix('"')?;
    // The first quote or backslash (memchr: a large message is scanned at
    // memory speed); plain text has no escape and no control character
    // before it (checked without an early exit, so that it vectorizes).
    let bytes = rest.as_bytes();
    let end = memchr::memchr2(b'"', b'\\', bytes)?;
    if bytes[end] != b'"' || bytes[..end].iter().fold(false, |c, &b| c | (b < b' ')) {
        return None;
    }
    let after = rest[end + 1..].trim_start_matches(WS).strip_prefix('}')?;
    after.trim_matches(WS).is_empty().then_some(&rest[..end])
}

fn read_variables<'a>(variables: *const IomStr, n: usize) -> Result<Vec<&'a str>, String> {
    if n == 0 {
        return Ok(Vec::new());
    }
    if variables.is_null() {
        return Err(format!("variables is NULL but n_variables is {n}"));
    }
    // SAFETY: non-NULL, and iom.h requires `n_variables` iom_str entries.
    let entries = unsafe { std::slice::from_raw_parts(variables, n) };
    entries
        .iter()
        .enumerate()
        .map(|(i, v)| {
            // The name is formatted only for an error: this runs per action.
            let what = || format!("variable {}", i + 1);
            let bytes = read_bytes(v.ptr.cast(), v.len, "variable")
                .map_err(|e| e.replacen("variable", &what(), 1))?;
            std::str::from_utf8(bytes).map_err(|e| {
                format!(
                    "{} is not valid UTF-8 (bad byte at offset {})",
                    what(),
                    e.valid_up_to()
                )
            })
        })
        .collect()
}

/// See iom.h.
#[unsafe(no_mangle)]
pub extern "C" fn iom_instance_status(instance: *mut IomInstance) -> *mut c_char {
    guard(
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        || match instance_of(instance) {
            Ok(live) => c_text(&status::to_json(&live.status())).into_raw(),
            Err(_) => std::ptr::null_mut(),
        },
    )
}

/// See iom.h.
#[unsafe(no_mangle)]
pub extern "C" fn iom_instance_network(instance: *mut IomInstance, up: c_int) -> c_int {
    guard(IOM_ERR_PANIC, std::ptr::null_mut(), || {
        match instance_of(instance) {
            Ok(live) => match live.set_network(up != 0) {
                Ok(()) => IOM_OK,
                Err(_) => IOM_ERR_REJECTED,
            },
            Err(_) => IOM_ERR_INVALID_ARGUMENT,
        }
    })
}

/// See iom.h.
#[unsafe(no_mangle)]
pub extern "C" fn iom_trigger_prepare(
    instance: *mut IomInstance,
    trigger: *const c_char,
    properties_json: *const c_char,
    error: *mut *mut c_char,
) -> *mut IomPreparedTrigger {
    guard(std::ptr::null_mut(), error, || {
        let result = (|| {
            if !instance.is_null() {
                instance_of(instance)?;
            }
            let name = read_str(trigger, "trigger")?;
            let json = read_json(properties_json, "properties_json")?;
            PreparedTrigger::prepare(name, &json).map_err(|e| e.message)
        })();
        handle_or_error(result.map(|prepared| triggers().insert(prepared)), error)
    })
}

/// See iom.h.
///
/// # Safety
/// Pointer arguments must be NULL or as iom.h describes them.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iom_trigger_test(
    prepared: *const IomPreparedTrigger,
    data: *const u8,
    len: usize,
    variables: *mut *mut IomVariables,
) -> c_int {
    // SAFETY: the same contract, passed on unchanged.
    unsafe { iom_trigger_test_ex(prepared, data, len, 0, variables) }
}

/// See iom.h.
///
/// # Safety
/// Pointer arguments must be NULL or as iom.h describes them.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iom_trigger_test_ex(
    prepared: *const IomPreparedTrigger,
    data: *const u8,
    len: usize,
    flags: u32,
    variables: *mut *mut IomVariables,
) -> c_int {
    guard(-1, std::ptr::null_mut(), || {
        if !variables.is_null() {
            // SAFETY: NULL or writable storage for one pointer (iom.h).
            unsafe { *variables = std::ptr::null_mut() };
        }
        if prepared.is_null() {
            return -1;
        }
        let Ok(bytes) = read_bytes(data, len, "data") else {
            return -1;
        };
        let tested = triggers().with_recent(&RECENT_TRIGGERS, prepared as usize, |trigger| {
            if !trigger.test(bytes) {
                return 0;
            }
            if !variables.is_null() {
                let binary = flags & IOM_DATA_BINARY != 0;
                let values = trigger
                    .variables(bytes, binary)
                    .into_iter()
                    .map(|v| v.into_bytes().into_boxed_slice())
                    .collect();
                let boxed = Box::new(IomVariables {
                    tag: VARIABLES_TAG,
                    values,
                });
                // SAFETY: checked non-NULL above.
                unsafe { *variables = Box::into_raw(boxed) };
            }
            1
        });
        tested.unwrap_or(-1)
    })
}

/// See iom.h.
#[unsafe(no_mangle)]
pub extern "C" fn iom_trigger_variable_count(prepared: *const IomPreparedTrigger) -> isize {
    guard(-1, std::ptr::null_mut(), || {
        if prepared.is_null() {
            return -1;
        }
        triggers()
            .with_recent(&RECENT_TRIGGERS, prepared as usize, |trigger| {
                isize::try_from(trigger.variable_count()).unwrap_or(-1)
            })
            .unwrap_or(-1)
    })
}

/// See iom.h.
#[unsafe(no_mangle)]
pub extern "C" fn iom_trigger_free(prepared: *mut IomPreparedTrigger) {
    guard((), std::ptr::null_mut(), || {
        if !prepared.is_null() {
            triggers().remove(prepared as usize);
        }
    })
}

/// A prepared action and the instance it runs on (not kept alive by it).
struct BoundAction {
    instance: Weak<Instance>,
    action: PreparedAction,
}

/// See iom.h.
#[unsafe(no_mangle)]
pub extern "C" fn iom_action_prepare(
    instance: *mut IomInstance,
    action: *const c_char,
    properties_json: *const c_char,
    error: *mut *mut c_char,
) -> *mut IomPreparedAction {
    guard(std::ptr::null_mut(), error, || {
        let result = (|| {
            let live = instance_of(instance)?;
            let name = read_str(action, "action")?;
            let json = read_json(properties_json, "properties_json")?;
            let action = PreparedAction::prepare(name, &json).map_err(|e| e.message)?;
            Ok::<_, String>(BoundAction {
                instance: Arc::downgrade(&live),
                action,
            })
        })();
        handle_or_error(result.map(|bound| actions().insert(bound)), error)
    })
}

/// See iom.h.
#[unsafe(no_mangle)]
pub extern "C" fn iom_action_run(
    prepared: *const IomPreparedAction,
    variables: *const IomStr,
    n_variables: usize,
    error: *mut *mut c_char,
) -> c_int {
    guard(IOM_ERR_PANIC, error, || {
        let result = (|| {
            if prepared.is_null() {
                return Err((IOM_ERR_INVALID_ARGUMENT, "prepared action is NULL".into()));
            }
            let run = |bound: &BoundAction| {
                let live = bound.instance.upgrade().ok_or_else(|| {
                    (
                        IOM_ERR_INVALID_ARGUMENT,
                        format!(
                            "the instance of this prepared {} action was destroyed",
                            bound.action.name()
                        ),
                    )
                })?;
                let vars = read_variables(variables, n_variables)
                    .map_err(|e| (IOM_ERR_INVALID_ARGUMENT, e))?;
                let action = bound
                    .action
                    .action(&vars)
                    .map_err(|e| (IOM_ERR_INVALID_ARGUMENT, e.message))?;
                live.run(action).map_err(action_failure)
            };
            actions()
                .with_recent(&RECENT_ACTIONS, prepared as usize, run)
                .unwrap_or_else(|| {
                    Err((
                        IOM_ERR_INVALID_ARGUMENT,
                        "prepared action is not live (freed, or never prepared)".to_owned(),
                    ))
                })
        })();
        code_or_error(result, error)
    })
}

/// See iom.h.
#[unsafe(no_mangle)]
pub extern "C" fn iom_action_free(prepared: *mut IomPreparedAction) {
    guard((), std::ptr::null_mut(), || {
        if !prepared.is_null() {
            actions().remove(prepared as usize);
        }
    })
}

fn variables_ref<'a>(variables: *const IomVariables) -> Option<&'a IomVariables> {
    if variables.is_null() {
        return None;
    }
    // SAFETY: non-NULL; iom.h requires a pointer from iom_trigger_test that
    // was not freed. The tag check catches some misuse cheaply.
    let v = unsafe { &*variables };
    (v.tag == VARIABLES_TAG).then_some(v)
}

/// See iom.h.
#[unsafe(no_mangle)]
pub extern "C" fn iom_variables_count(variables: *const IomVariables) -> usize {
    guard(0, std::ptr::null_mut(), || {
        variables_ref(variables).map_or(0, |v| v.values.len())
    })
}

/// See iom.h.
#[unsafe(no_mangle)]
pub extern "C" fn iom_variables_get(variables: *const IomVariables, index: usize) -> IomStr {
    let none = IomStr {
        ptr: std::ptr::null(),
        len: 0,
    };
    guard(none, std::ptr::null_mut(), || {
        match variables_ref(variables).and_then(|v| v.values.get(index)) {
            Some(value) => IomStr {
                ptr: value.as_ptr().cast(),
                len: value.len(),
            },
            None => none,
        }
    })
}

/// See iom.h.
///
/// # Safety
/// Pointer arguments must be NULL or as iom.h describes them.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iom_variables_free(variables: *mut IomVariables) {
    guard((), std::ptr::null_mut(), || {
        if variables_ref(variables).is_some() {
            // SAFETY: a live pointer from Box::into_raw in iom_trigger_test
            // (tag checked); clearing the tag first makes a double free
            // that reads the same memory a no-op more often than not.
            unsafe {
                (*variables).tag = 0;
                drop(Box::from_raw(variables));
            }
        }
    })
}

/// See iom.h.
///
/// # Safety
/// Pointer arguments must be NULL or as iom.h describes them.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iom_string_free(s: *mut c_char) {
    guard((), std::ptr::null_mut(), || {
        if !s.is_null() {
            // SAFETY: iom.h requires a string returned by this module
            // (CString::into_raw), freed once.
            unsafe { drop(CString::from_raw(s)) };
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_trigger_fires_with_its_own_name() {
        for trigger in Trigger::ALL {
            assert_eq!(trigger_c_name(trigger).to_str(), Ok(trigger.name()));
        }
    }

    #[test]
    fn the_send_message_fast_path_takes_only_what_the_general_path_reads_the_same() {
        assert_eq!(
            plain_send_message(r#"{"Message":"hi <1>"}"#),
            Some("hi <1>")
        );
        assert_eq!(plain_send_message(" {\n\"Message\" : \"\" }\r\n"), Some(""));
        assert_eq!(
            plain_send_message(r#"{"Message":"caf\u00e9 ☕"}"#),
            None,
            "escape"
        );
        assert_eq!(
            plain_send_message("{\"Message\":\"café ☕\"}"),
            Some("café ☕")
        );
        for general in [
            r#"{"Message":"a\"b"}"#,
            r#"{"Message":"a","Message Type":"Binary"}"#,
            r#"{"Message Type":"Text","Message":"a"}"#,
            r#"{"Message":5}"#,
            r#"{"Message":"a"} x"#,
            r#"{"Message":"a""#,
            "{\"Message\":\"tab\there\"}",
            "\u{a0}{\"Message\":\"a\"}",
            "",
        ] {
            assert_eq!(plain_send_message(general), None, "{general:?}");
        }
    }
}
