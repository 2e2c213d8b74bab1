//! A loaded IO module, seen only through the C ABI of `include/iom.h`.
//!
//! The host loads a shared library with `dlopen` (libloading), resolves every
//! `iom_*` symbol once, checks the ABI version, and hands out safe types:
//! [`Module`] (manifest, instance creation, trigger preparation),
//! [`Instance`] (actions, status, network, destroyed on drop) and
//! [`PreparedTrigger`] (a compiled trigger test). Any module exporting the
//! ABI can be loaded; nothing here uses the wsio library's Rust API.
//!
//! All `unsafe` code of the host lives in this file. The module calls back
//! into the host from its own thread; the callbacks copy what they are given
//! into an owned [`ModuleEvent`] and hand it to the instance's [`EventSink`]
//! (the host's queue), never calling back into the module (the header forbids
//! it, and a controller's playback must not stall on a module).

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::fmt;
use std::mem::ManuallyDrop;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::{Arc, RwLock};

use libloading::Library;

use super::manifest::ModuleManifest;

/// The ABI version this host implements (`IOM_ABI_VERSION`).
pub const ABI_VERSION: u32 = 1;

const IOM_OK: c_int = 0;
const IOM_ERR_INVALID_ARGUMENT: c_int = 1;
const IOM_ERR_REJECTED: c_int = 2;
const IOM_ERR_IN_CALLBACK: c_int = 3;
const IOM_ERR_PANIC: c_int = 4;

// ------------------------------------------------------------- C types

#[repr(C)]
struct RawInstance {
    _opaque: [u8; 0],
}

#[repr(C)]
struct RawPreparedTrigger {
    _opaque: [u8; 0],
}

#[repr(C)]
struct RawPreparedAction {
    _opaque: [u8; 0],
}

#[repr(C)]
struct RawVariables {
    _opaque: [u8; 0],
}

/// `iom_str`: a borrowed byte range.
#[repr(C)]
#[derive(Clone, Copy)]
struct IomStr {
    ptr: *const c_char,
    len: usize,
}

type FireTriggerCallback = unsafe extern "C" fn(*mut c_void, u64, *const c_char, *const u8, usize);
type FireTriggerExCallback =
    unsafe extern "C" fn(*mut c_void, u64, *const c_char, *const u8, usize, u32);
type StatusChangedCallback =
    unsafe extern "C" fn(*mut c_void, u64, *const c_char, *const c_char, *const c_char);
/// `iom_log_level` is a C enum, passed as an `int`.
type LogCallback = unsafe extern "C" fn(*mut c_void, u64, c_int, *const c_char);

/// `iom_host_callbacks`.
#[repr(C)]
struct IomHostCallbacks {
    struct_size: u32,
    abi_version: u32,
    user_data: *mut c_void,
    fire_trigger: Option<FireTriggerCallback>,
    status_changed: Option<StatusChangedCallback>,
    log: Option<LogCallback>,
    /// The optional ABI 1 addition: trigger data with flags
    /// (IOM_DATA_BINARY), passed back to iom_trigger_test_ex.
    fire_trigger_ex: Option<FireTriggerExCallback>,
}

type AbiVersionFn = unsafe extern "C" fn() -> u32;
type ModuleManifestFn = unsafe extern "C" fn() -> *const c_char;
type InstanceCreateFn = unsafe extern "C" fn(
    *const IomHostCallbacks,
    u64,
    *const c_char,
    *mut *mut c_char,
) -> *mut RawInstance;
type InstanceDestroyFn = unsafe extern "C" fn(*mut RawInstance) -> c_int;
type InstanceActionFn = unsafe extern "C" fn(
    *mut RawInstance,
    *const c_char,
    *const c_char,
    *const IomStr,
    usize,
    *mut *mut c_char,
) -> c_int;
type InstanceStatusFn = unsafe extern "C" fn(*mut RawInstance) -> *mut c_char;
type InstanceNetworkFn = unsafe extern "C" fn(*mut RawInstance, c_int) -> c_int;
type TriggerPrepareFn = unsafe extern "C" fn(
    *mut RawInstance,
    *const c_char,
    *const c_char,
    *mut *mut c_char,
) -> *mut RawPreparedTrigger;
type TriggerTestFn = unsafe extern "C" fn(
    *const RawPreparedTrigger,
    *const u8,
    usize,
    *mut *mut RawVariables,
) -> c_int;
type TriggerTestExFn = unsafe extern "C" fn(
    *const RawPreparedTrigger,
    *const u8,
    usize,
    u32,
    *mut *mut RawVariables,
) -> c_int;
type TriggerFreeFn = unsafe extern "C" fn(*mut RawPreparedTrigger);
type TriggerVariableCountFn = unsafe extern "C" fn(*const RawPreparedTrigger) -> isize;
type ActionPrepareFn = unsafe extern "C" fn(
    *mut RawInstance,
    *const c_char,
    *const c_char,
    *mut *mut c_char,
) -> *mut RawPreparedAction;
type ActionRunFn =
    unsafe extern "C" fn(*const RawPreparedAction, *const IomStr, usize, *mut *mut c_char) -> c_int;
type ActionFreeFn = unsafe extern "C" fn(*mut RawPreparedAction);

/// `iom_action_prepare`, `iom_action_run` and `iom_action_free`: optional
/// as a set (modules built before this ABI 1 addition lack them; the host
/// then runs every action with `iom_instance_action`).
#[derive(Clone, Copy)]
struct PreparedActionApi {
    prepare: ActionPrepareFn,
    run: ActionRunFn,
    free: ActionFreeFn,
}
type VariablesCountFn = unsafe extern "C" fn(*const RawVariables) -> usize;
type VariablesGetFn = unsafe extern "C" fn(*const RawVariables, usize) -> IomStr;
type VariablesFreeFn = unsafe extern "C" fn(*mut RawVariables);
type StringFreeFn = unsafe extern "C" fn(*mut c_char);

/// The resolved entry points. The function pointers are copied out of the
/// library's symbols, so they are valid only while `_library` is loaded;
/// every holder of a pointer (instances, prepared triggers) keeps an
/// `Arc<Api>` for that reason.
///
/// The library itself is never unloaded: a module may keep threads or
/// thread-local destructors of its own past its last instance (wsio runs one
/// driver thread for all instances), and unmapping code they still run would
/// crash the host. A controller keeps its modules for its lifetime anyway.
struct Api {
    instance_create: InstanceCreateFn,
    instance_destroy: InstanceDestroyFn,
    instance_action: InstanceActionFn,
    instance_status: InstanceStatusFn,
    instance_network: InstanceNetworkFn,
    trigger_prepare: TriggerPrepareFn,
    trigger_test: TriggerTestFn,
    /// Optional (modules built before the ABI 1 addition lack it).
    trigger_test_ex: Option<TriggerTestExFn>,
    trigger_free: TriggerFreeFn,
    /// Optional: how many variables a prepared trigger's matches give.
    trigger_variable_count: Option<TriggerVariableCountFn>,
    prepared_actions: Option<PreparedActionApi>,
    variables_count: VariablesCountFn,
    variables_get: VariablesGetFn,
    variables_free: VariablesFreeFn,
    string_free: StringFreeFn,
    _library: ManuallyDrop<Library>,
}

impl Api {
    /// The outcome of an `int`-returning call, with the module's message.
    fn result(&self, code: c_int, error: *mut c_char) -> Result<(), CallError> {
        if code == IOM_OK {
            if !error.is_null() {
                let _ = self.take_error(error);
            }
            return Ok(());
        }
        let message = if error.is_null() && code == IOM_ERR_IN_CALLBACK {
            destroy_refusal(code)
        } else {
            self.take_error(error)
        };
        Err(CallError::new(code, message))
    }

    /// Copies a module-allocated error string and frees it.
    fn take_error(&self, error: *mut c_char) -> String {
        if error.is_null() {
            return "the module reported an error but gave no reason".to_string();
        }
        // SAFETY: a non-NULL `*error` from an iom_* call is a NUL-terminated
        // string allocated by the module, owned by us until iom_string_free.
        let message = unsafe { CStr::from_ptr(error) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: freed exactly once, with the function the header names.
        unsafe { (self.string_free)(error) };
        message
    }
}

// ------------------------------------------------------------- errors

/// Why a module could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    Open { path: PathBuf, reason: String },
    MissingSymbol { path: PathBuf, symbol: &'static str },
    AbiVersion { path: PathBuf, found: u32 },
    Manifest { path: PathBuf, reason: String },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Open { path, reason } => {
                write!(f, "cannot load IO module {}: {reason}", path.display())
            }
            LoadError::MissingSymbol { path, symbol } => write!(
                f,
                "{} is not an IO module: it does not export {symbol} (see include/iom.h)",
                path.display()
            ),
            LoadError::AbiVersion { path, found } => write!(
                f,
                "IO module {} implements ABI version {found}, but this host implements ABI \
                 version {ABI_VERSION}; use a module built for ABI version {ABI_VERSION}",
                path.display()
            ),
            LoadError::Manifest { path, reason } => {
                write!(
                    f,
                    "IO module {} has an unreadable manifest: {reason}",
                    path.display()
                )
            }
        }
    }
}

impl std::error::Error for LoadError {}

/// What an `int`-returning ABI call reported, with the module's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    pub kind: CallErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallErrorKind {
    /// Bad input (unknown name, bad value, bad JSON): the caller's to fix.
    InvalidArgument,
    /// Valid input the instance cannot take now (e.g. its queue is full).
    Rejected,
    /// A bug in the module, caught at its boundary.
    ModulePanic,
    /// The instance was destroyed (the host is shutting down).
    Destroyed,
    /// A code this host does not know.
    Other(c_int),
}

impl CallError {
    fn new(code: c_int, message: String) -> CallError {
        let kind = match code {
            IOM_ERR_INVALID_ARGUMENT => CallErrorKind::InvalidArgument,
            IOM_ERR_REJECTED => CallErrorKind::Rejected,
            IOM_ERR_PANIC => CallErrorKind::ModulePanic,
            other => CallErrorKind::Other(other),
        };
        CallError { kind, message }
    }

    fn invalid(message: String) -> CallError {
        CallError {
            kind: CallErrorKind::InvalidArgument,
            message,
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CallError {}

/// A string for the C side; names with a NUL byte cannot cross the ABI.
fn c_string(what: &str, value: &str) -> Result<CString, CallError> {
    CString::new(value)
        .map_err(|_| CallError::invalid(format!("{what} {value:?} must not contain a NUL byte")))
}

// ------------------------------------------------------------- events

/// Module log levels, most to least important (`iom_log_level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleLogLevel {
    Critical,
    Terse,
    Normal,
    Extended,
    Verbose,
    Debug,
}

impl ModuleLogLevel {
    fn from_c(level: c_int) -> ModuleLogLevel {
        match level {
            0 => ModuleLogLevel::Critical,
            1 => ModuleLogLevel::Terse,
            2 => ModuleLogLevel::Normal,
            3 => ModuleLogLevel::Extended,
            4 => ModuleLogLevel::Verbose,
            // Unknown levels are kept but shown only to those who asked for
            // everything.
            _ => ModuleLogLevel::Debug,
        }
    }
}

/// Something a module told the host, copied out of the callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleEvent {
    TriggerFired {
        instance_id: u64,
        trigger: String,
        data: Vec<u8>,
        /// IOM_DATA_BINARY etc., for PreparedTrigger::test.
        flags: u32,
    },
    StatusChanged {
        instance_id: u64,
        key: String,
        value: String,
        timestamp: String,
    },
    Log {
        instance_id: u64,
        level: ModuleLogLevel,
        message: String,
    },
}

/// Where an instance's callbacks deliver events. Called on the module's
/// thread: it must return at once. The host's sinks push into the engine's
/// queue and call no module function (the engine logs and records every
/// event, which is not work for the module's thread).
pub type EventSink = Box<dyn Fn(ModuleEvent) + Send + Sync>;

/// Copies a borrowed C string; NULL becomes "".
///
/// # Safety
/// `s` is NULL or a NUL-terminated string valid for the call.
unsafe fn borrowed_string(s: *const c_char) -> String {
    if s.is_null() {
        return String::new();
    }
    // SAFETY: guaranteed by the caller (the header: pointers given to a
    // callback are valid during the call).
    unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned()
}

/// Delivers an event to the sink behind `user_data`. Panics must not unwind
/// into the module's C frames, so they are caught and the event is lost
/// (a sink that panics is a host bug; the alternative is an abort).
///
/// # Safety
/// `user_data` is the `*const EventSink` this file put in the callbacks
/// struct, still alive (see `Instance`).
unsafe fn deliver(user_data: *mut c_void, make: impl FnOnce() -> ModuleEvent) {
    if user_data.is_null() {
        return;
    }
    // SAFETY: per the caller's contract, user_data points at the instance's
    // boxed EventSink, which outlives every callback (freed only after
    // iom_instance_destroy returned). `Fn` + `Sync` allows a shared call.
    let sink = unsafe { &*(user_data as *const EventSink) };
    let _ = catch_unwind(AssertUnwindSafe(|| sink(make())));
}

/// `fire_trigger_ex` callback: `fire_trigger` with flags.
unsafe extern "C" fn on_fire_trigger_ex(
    user_data: *mut c_void,
    instance_id: u64,
    trigger: *const c_char,
    data: *const u8,
    len: usize,
    flags: u32,
) {
    // SAFETY: as in on_fire_trigger.
    unsafe { fire(user_data, instance_id, trigger, data, len, flags) }
}

/// `fire_trigger` callback.
unsafe extern "C" fn on_fire_trigger(
    user_data: *mut c_void,
    instance_id: u64,
    trigger: *const c_char,
    data: *const u8,
    len: usize,
) {
    // SAFETY: passed on unchanged.
    unsafe { fire(user_data, instance_id, trigger, data, len, 0) }
}

/// Both trigger callbacks.
unsafe fn fire(
    user_data: *mut c_void,
    instance_id: u64,
    trigger: *const c_char,
    data: *const u8,
    len: usize,
    flags: u32,
) {
    // SAFETY: user_data is ours (set in Module::create_instance); `trigger`
    // is a NUL-terminated string and `data` points at `len` bytes, both valid
    // during this call (header, iom_host_callbacks).
    unsafe {
        deliver(user_data, || ModuleEvent::TriggerFired {
            instance_id,
            trigger: borrowed_string(trigger),
            data: if data.is_null() || len == 0 {
                Vec::new()
            } else {
                std::slice::from_raw_parts(data, len).to_vec()
            },
            flags,
        })
    }
}

/// `status_changed` callback.
unsafe extern "C" fn on_status_changed(
    user_data: *mut c_void,
    instance_id: u64,
    key: *const c_char,
    value: *const c_char,
    timestamp: *const c_char,
) {
    // SAFETY: as in on_fire_trigger; the three strings are valid during the call.
    unsafe {
        deliver(user_data, || ModuleEvent::StatusChanged {
            instance_id,
            key: borrowed_string(key),
            value: borrowed_string(value),
            timestamp: borrowed_string(timestamp),
        })
    }
}

/// `log` callback.
unsafe extern "C" fn on_log(
    user_data: *mut c_void,
    instance_id: u64,
    level: c_int,
    message: *const c_char,
) {
    // SAFETY: as in on_fire_trigger; `message` is valid during the call.
    unsafe {
        deliver(user_data, || ModuleEvent::Log {
            instance_id,
            level: ModuleLogLevel::from_c(level),
            message: borrowed_string(message),
        })
    }
}

// ------------------------------------------------------------- Module

/// A loaded IO module: its entry points and its manifest.
pub struct Module {
    api: Arc<Api>,
    path: PathBuf,
    manifest_text: String,
    manifest: ModuleManifest,
}

impl fmt::Debug for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Module")
            .field("path", &self.path)
            .field("name", &self.manifest.module.name)
            .finish_non_exhaustive()
    }
}

/// Resolves one symbol and copies its function pointer out.
///
/// # Safety
/// `T` must be the exact C signature the header declares for `name`.
unsafe fn symbol<T: Copy>(
    library: &Library,
    path: &Path,
    name: &'static str,
) -> Result<T, LoadError> {
    // SAFETY: the caller picks T to match the header's declaration of `name`.
    match unsafe { library.get::<T>(name.as_bytes()) } {
        Ok(symbol) => Ok(*symbol),
        Err(_) => Err(LoadError::MissingSymbol {
            path: path.to_path_buf(),
            symbol: name,
        }),
    }
}

impl Module {
    /// Loads the shared library at `path`, checks that it implements ABI
    /// version 1, resolves every `iom_*` function and reads the manifest.
    pub fn load(path: &Path) -> Result<Module, LoadError> {
        // SAFETY: loading a library runs its initialisers; a file the user
        // named as an IO module is trusted to be one (a controller loads the
        // modules of its project). Nothing else can be checked before loading.
        let library = unsafe { Library::new(path) }.map_err(|e| LoadError::Open {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;

        // The version first: a module of another ABI version may not export
        // the same functions, and "wrong version" is the useful message then.
        // SAFETY: `uint32_t iom_abi_version(void)`.
        let abi_version: AbiVersionFn = unsafe { symbol(&library, path, "iom_abi_version") }?;
        // SAFETY: a no-argument getter per the header.
        let found = unsafe { abi_version() };
        if found != ABI_VERSION {
            return Err(LoadError::AbiVersion {
                path: path.to_path_buf(),
                found,
            });
        }

        // SAFETY (each line): the type alias spells the header's declaration
        // of that symbol.
        let module_manifest: ModuleManifestFn =
            unsafe { symbol(&library, path, "iom_module_manifest") }?;
        let api = Api {
            instance_create: unsafe { symbol(&library, path, "iom_instance_create") }?,
            instance_destroy: unsafe { symbol(&library, path, "iom_instance_destroy") }?,
            instance_action: unsafe { symbol(&library, path, "iom_instance_action") }?,
            instance_status: unsafe { symbol(&library, path, "iom_instance_status") }?,
            instance_network: unsafe { symbol(&library, path, "iom_instance_network") }?,
            trigger_prepare: unsafe { symbol(&library, path, "iom_trigger_prepare") }?,
            trigger_test: unsafe { symbol(&library, path, "iom_trigger_test") }?,
            trigger_test_ex: unsafe { symbol(&library, path, "iom_trigger_test_ex") }.ok(),
            trigger_free: unsafe { symbol(&library, path, "iom_trigger_free") }?,
            trigger_variable_count: unsafe { symbol(&library, path, "iom_trigger_variable_count") }
                .ok(),
            prepared_actions: (|| {
                Some(PreparedActionApi {
                    prepare: unsafe { symbol(&library, path, "iom_action_prepare") }.ok()?,
                    run: unsafe { symbol(&library, path, "iom_action_run") }.ok()?,
                    free: unsafe { symbol(&library, path, "iom_action_free") }.ok()?,
                })
            })(),
            variables_count: unsafe { symbol(&library, path, "iom_variables_count") }?,
            variables_get: unsafe { symbol(&library, path, "iom_variables_get") }?,
            variables_free: unsafe { symbol(&library, path, "iom_variables_free") }?,
            string_free: unsafe { symbol(&library, path, "iom_string_free") }?,
            _library: ManuallyDrop::new(library),
        };

        // SAFETY: returns a module-owned string valid while the library is
        // loaded (it is: `api` owns the library); copied before use.
        let text = unsafe { module_manifest() };
        if text.is_null() {
            return Err(LoadError::Manifest {
                path: path.to_path_buf(),
                reason: "iom_module_manifest() returned NULL".to_string(),
            });
        }
        // SAFETY: non-NULL, NUL-terminated, valid while loaded (see above).
        let manifest_text = unsafe { CStr::from_ptr(text) }
            .to_str()
            .map_err(|_| LoadError::Manifest {
                path: path.to_path_buf(),
                reason: "the manifest is not valid UTF-8".to_string(),
            })?
            .to_string();
        let manifest =
            ModuleManifest::parse(&manifest_text).map_err(|reason| LoadError::Manifest {
                path: path.to_path_buf(),
                reason,
            })?;

        Ok(Module {
            api: Arc::new(api),
            path: path.to_path_buf(),
            manifest_text,
            manifest,
        })
    }

    /// The manifest exactly as the module returned it.
    pub fn manifest_text(&self) -> &str {
        &self.manifest_text
    }

    pub fn manifest(&self) -> &ModuleManifest {
        &self.manifest
    }

    /// Creates an instance (`iom_instance_create`). `properties_json` is a
    /// JSON object of instance properties; `sink` receives every callback of
    /// this instance until it is destroyed. The error is the module's message
    /// naming the bad property.
    pub fn create_instance(
        &self,
        id: u64,
        properties_json: &str,
        sink: EventSink,
    ) -> Result<Instance, String> {
        let properties = c_string("instance properties", properties_json).map_err(|e| e.message)?;
        // Double box: the callbacks get a thin pointer to a fat `dyn Fn`.
        let sink: *mut EventSink = Box::into_raw(Box::new(sink));
        let callbacks = IomHostCallbacks {
            struct_size: size_of::<IomHostCallbacks>() as u32,
            abi_version: ABI_VERSION,
            user_data: sink.cast(),
            fire_trigger: Some(on_fire_trigger),
            status_changed: Some(on_status_changed),
            log: Some(on_log),
            fire_trigger_ex: Some(on_fire_trigger_ex),
        };
        let mut error: *mut c_char = ptr::null_mut();
        // SAFETY: all pointers are valid for the call (the callbacks struct is
        // copied by the module); `error` receives a module string or NULL.
        let handle =
            unsafe { (self.api.instance_create)(&callbacks, id, properties.as_ptr(), &mut error) };
        if handle.is_null() {
            let message = self.api.take_error(error);
            // SAFETY: no instance exists, so the module holds no copy of
            // user_data; the box is ours again.
            drop(unsafe { Box::from_raw(sink) });
            return Err(message);
        }
        if !error.is_null() {
            // A success with a message is unusual; free it rather than leak.
            let _ = self.api.take_error(error);
        }
        Ok(Instance {
            api: self.api.clone(),
            id,
            handle: RwLock::new(handle),
            sink,
        })
    }

    /// Compiles a project trigger's properties (`iom_trigger_prepare` with no
    /// instance, so wires can be checked before any instance starts).
    pub fn prepare_trigger(
        &self,
        trigger: &str,
        properties_json: &str,
    ) -> Result<PreparedTrigger, String> {
        let trigger = c_string("trigger name", trigger).map_err(|e| e.message)?;
        let properties = c_string("trigger properties", properties_json).map_err(|e| e.message)?;
        let mut error: *mut c_char = ptr::null_mut();
        // SAFETY: NULL instance is allowed by the header; strings valid for
        // the call; `error` receives a module string or NULL.
        let raw = unsafe {
            (self.api.trigger_prepare)(
                ptr::null_mut(),
                trigger.as_ptr(),
                properties.as_ptr(),
                &mut error,
            )
        };
        if raw.is_null() {
            return Err(self.api.take_error(error));
        }
        if !error.is_null() {
            let _ = self.api.take_error(error);
        }
        Ok(PreparedTrigger {
            api: self.api.clone(),
            raw,
        })
    }
}

// ------------------------------------------------------------- Instance

/// A running module instance. Dropping it destroys it (the module closes its
/// connection with 1000 and returns once no callback can arrive any more).
pub struct Instance {
    api: Arc<Api>,
    id: u64,
    /// NULL once destroyed. Calls take the read side (the header allows
    /// concurrent calls), `destroy` the write side, so no call can race with
    /// or follow the destruction.
    handle: RwLock<*mut RawInstance>,
    /// The `user_data` of this instance's callbacks (from `Box::into_raw`).
    sink: *mut EventSink,
}

// SAFETY: the header allows every function to be called from any thread,
// concurrently; the handle is only used under the RwLock, and the sink is a
// `Send + Sync` closure only read through a shared reference.
unsafe impl Send for Instance {}
// SAFETY: see Send.
unsafe impl Sync for Instance {}

impl Instance {
    /// The id the host chose at creation (given back in every callback).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Runs an action (`iom_instance_action`). Returns at once: the work
    /// happens on the module's thread. `variables` are the firing trigger's
    /// variables (`<1>` is `variables[0]`).
    pub fn action(
        &self,
        action: &str,
        properties_json: &str,
        variables: &[Vec<u8>],
    ) -> Result<(), CallError> {
        let action = c_string("action name", action)?;
        let properties = c_string("action properties", properties_json)?;
        let variables = iom_strs(variables);
        let handle = self.handle.read().unwrap_or_else(|e| e.into_inner());
        if handle.is_null() {
            return Err(self.destroyed());
        }
        let mut error: *mut c_char = ptr::null_mut();
        // SAFETY: the handle is live (read lock held, destroy needs the write
        // lock); strings and the variables array are valid for the call.
        let code = unsafe {
            (self.api.instance_action)(
                *handle,
                action.as_ptr(),
                properties.as_ptr(),
                slice_ptr(&variables),
                variables.len(),
                &mut error,
            )
        };
        self.result(code, error)
    }

    /// Compiles an action's properties once (`iom_action_prepare`), for an
    /// action run many times (a wire's, a startup action). `Ok(None)` when
    /// the module predates prepared actions: run it with [`Instance::action`].
    /// The error is the module's message naming the bad property.
    pub fn prepare_action(
        &self,
        action: &str,
        properties_json: &str,
    ) -> Result<Option<PreparedAction>, CallError> {
        let Some(calls) = self.api.prepared_actions else {
            return Ok(None);
        };
        let action = c_string("action name", action)?;
        let properties = c_string("action properties", properties_json)?;
        let handle = self.handle.read().unwrap_or_else(|e| e.into_inner());
        if handle.is_null() {
            return Err(self.destroyed());
        }
        let mut error: *mut c_char = ptr::null_mut();
        // SAFETY: the handle is live (read lock held); strings are valid for
        // the call; `error` receives a module string or NULL.
        let raw =
            unsafe { (calls.prepare)(*handle, action.as_ptr(), properties.as_ptr(), &mut error) };
        if raw.is_null() {
            return Err(CallError::invalid(self.api.take_error(error)));
        }
        if !error.is_null() {
            let _ = self.api.take_error(error);
        }
        Ok(Some(PreparedAction {
            api: self.api.clone(),
            calls,
            raw,
        }))
    }

    /// Tells the instance the controller's network went down or came up.
    pub fn network(&self, up: bool) -> Result<(), CallError> {
        let handle = self.handle.read().unwrap_or_else(|e| e.into_inner());
        if handle.is_null() {
            return Err(self.destroyed());
        }
        // SAFETY: live handle under the read lock.
        let code = unsafe { (self.api.instance_network)(*handle, c_int::from(up)) };
        self.result(code, ptr::null_mut())
    }

    /// The status snapshot as the module's JSON text
    /// (`[{"key","label","value","timestamp"}]`); None once destroyed.
    pub fn status_json(&self) -> Option<String> {
        let handle = self.handle.read().unwrap_or_else(|e| e.into_inner());
        if handle.is_null() {
            return None;
        }
        // SAFETY: live handle under the read lock.
        let json = unsafe { (self.api.instance_status)(*handle) };
        if json.is_null() {
            return None;
        }
        // SAFETY: a module-allocated NUL-terminated string, ours to free.
        let text = unsafe { CStr::from_ptr(json) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: freed once, with the header's free function.
        unsafe { (self.api.string_free)(json) };
        Some(text)
    }

    /// Destroys the instance now (idempotent). Returns when the module
    /// promises no further callback for it; the error is the module's refusal.
    pub fn destroy(&self) -> Result<(), CallError> {
        let mut handle = self.handle.write().unwrap_or_else(|e| e.into_inner());
        if handle.is_null() {
            return Ok(());
        }
        // SAFETY: live handle, and the write lock excludes every other call.
        let code = unsafe { (self.api.instance_destroy)(*handle) };
        if code == IOM_OK {
            *handle = ptr::null_mut();
            Ok(())
        } else {
            Err(CallError::new(code, destroy_refusal(code)))
        }
    }

    fn result(&self, code: c_int, error: *mut c_char) -> Result<(), CallError> {
        self.api.result(code, error)
    }

    fn destroyed(&self) -> CallError {
        CallError {
            kind: CallErrorKind::Destroyed,
            message: "the instance has been destroyed (the host is shutting down)".to_string(),
        }
    }
}

/// Borrowed byte ranges for `iom_str` arrays, valid while `values` lives.
fn iom_strs(values: &[Vec<u8>]) -> Vec<IomStr> {
    values
        .iter()
        .map(|v| IomStr {
            ptr: v.as_ptr().cast(),
            len: v.len(),
        })
        .collect()
}

/// NULL for an empty array, as the header allows.
fn slice_ptr(values: &[IomStr]) -> *const IomStr {
    if values.is_empty() {
        ptr::null()
    } else {
        values.as_ptr()
    }
}

fn destroy_refusal(code: c_int) -> String {
    match code {
        IOM_ERR_IN_CALLBACK => "refused: called from inside a module callback".to_string(),
        other => format!("the module refused with code {other}"),
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        match self.destroy() {
            // SAFETY: destroyed, so no callback can use the sink any more;
            // the pointer came from Box::into_raw and is freed only here.
            Ok(()) => drop(unsafe { Box::from_raw(self.sink) }),
            // The module may still call back: leaking the sink (a closure and
            // a queue handle) is the only memory-safe choice.
            Err(e) => log::error!("instance {}: could not be destroyed: {e}", self.id),
        }
    }
}

// ------------------------------------------------------------- PreparedTrigger

/// A project trigger's compiled test (`iom_trigger_prepare`), freed on drop.
pub struct PreparedTrigger {
    api: Arc<Api>,
    raw: *mut RawPreparedTrigger,
}

// SAFETY: the header says iom_trigger_test is thread-safe, even concurrently
// on the same prepared trigger, and the pointer is freed only in Drop.
unsafe impl Send for PreparedTrigger {}
// SAFETY: see Send.
unsafe impl Sync for PreparedTrigger {}

impl PreparedTrigger {
    /// Tests fired trigger data: `Ok(Some(variables))` on a match (variable
    /// number n at index n-1), `Ok(None)` when it does not match.
    /// `flags` are the ones the trigger fired with (0 for fire_trigger).
    pub fn test(&self, data: &[u8], flags: u32) -> Result<Option<Vec<Vec<u8>>>, String> {
        let mut variables: *mut RawVariables = ptr::null_mut();
        // SAFETY: `raw` is live until Drop; `data` is valid for `len` bytes.
        let code = unsafe {
            match self.api.trigger_test_ex {
                Some(test_ex) => {
                    test_ex(self.raw, data.as_ptr(), data.len(), flags, &mut variables)
                }
                None => {
                    (self.api.trigger_test)(self.raw, data.as_ptr(), data.len(), &mut variables)
                }
            }
        };
        match code {
            1 => {}
            0 => return Ok(None),
            other => return Err(format!("iom_trigger_test failed (returned {other})")),
        }
        if variables.is_null() {
            return Ok(Some(Vec::new()));
        }
        // SAFETY: a module-allocated variables set, ours until freed below.
        let count = unsafe { (self.api.variables_count)(variables) };
        let mut copied = Vec::with_capacity(count.min(64));
        for index in 0..count {
            // SAFETY: index < count; the range is borrowed from `variables`,
            // which is still alive, and copied at once.
            let value = unsafe {
                let s = (self.api.variables_get)(variables, index);
                if s.ptr.is_null() || s.len == 0 {
                    Vec::new()
                } else {
                    std::slice::from_raw_parts(s.ptr.cast::<u8>(), s.len).to_vec()
                }
            };
            copied.push(value);
        }
        // SAFETY: freed once, after the last borrow from it.
        unsafe { (self.api.variables_free)(variables) };
        Ok(Some(copied))
    }
}

impl PreparedTrigger {
    /// How many variables every match gives, as the module says
    /// (`iom_trigger_variable_count`; -1: it varies with the data). None
    /// when the module does not export it.
    pub fn variable_count(&self) -> Option<isize> {
        let count = self.api.trigger_variable_count?;
        // SAFETY: `raw` is live until Drop.
        Some(unsafe { count(self.raw) })
    }
}

impl Drop for PreparedTrigger {
    fn drop(&mut self) {
        // SAFETY: freed once; `api` keeps the library loaded until after this.
        unsafe { (self.api.trigger_free)(self.raw) };
    }
}

// ------------------------------------------------------------- PreparedAction

/// An action compiled once (`iom_action_prepare`), freed on drop. It runs
/// on the instance it was prepared for and does not keep it alive: once the
/// instance is destroyed, running it is an error (the header's promise).
pub struct PreparedAction {
    api: Arc<Api>,
    calls: PreparedActionApi,
    raw: *mut RawPreparedAction,
}

// SAFETY: the header says iom_action_run is thread-safe, and the pointer is
// freed only in Drop.
unsafe impl Send for PreparedAction {}
// SAFETY: see Send.
unsafe impl Sync for PreparedAction {}

impl fmt::Debug for PreparedAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PreparedAction(..)")
    }
}

impl PreparedAction {
    /// Runs it with the firing trigger's variables (`<1>` is
    /// `variables[0]`). Returns at once, like [`Instance::action`].
    pub fn run(&self, variables: &[Vec<u8>]) -> Result<(), CallError> {
        let variables = iom_strs(variables);
        let mut error: *mut c_char = ptr::null_mut();
        // SAFETY: `raw` is live until Drop; the variables array and the
        // ranges it borrows are valid for the call.
        let code = unsafe {
            (self.calls.run)(self.raw, slice_ptr(&variables), variables.len(), &mut error)
        };
        self.api.result(code, error)
    }
}

impl Drop for PreparedAction {
    fn drop(&mut self) {
        // SAFETY: freed once; `api` keeps the library loaded until after this.
        unsafe { (self.calls.free)(self.raw) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loading_a_missing_file_names_the_path() {
        let err = Module::load(Path::new("/nonexistent/libnothing.so")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("/nonexistent/libnothing.so"), "{text}");
    }

    #[test]
    fn a_wrong_abi_version_names_both_versions() {
        let err = LoadError::AbiVersion {
            path: PathBuf::from("libx.so"),
            found: 2,
        };
        let text = err.to_string();
        assert!(text.contains("ABI version 2"), "{text}");
        assert!(text.contains("ABI version 1"), "{text}");
    }

    #[test]
    fn log_levels_map_from_the_c_enum() {
        assert_eq!(ModuleLogLevel::from_c(0), ModuleLogLevel::Critical);
        assert_eq!(ModuleLogLevel::from_c(3), ModuleLogLevel::Extended);
        assert_eq!(ModuleLogLevel::from_c(99), ModuleLogLevel::Debug);
    }
}
