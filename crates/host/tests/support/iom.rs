//! `include/iom.h`, redeclared in Rust for the tests that load the built
//! cdylib with dlopen (tests/abi.rs, tests/abi_stress.rs), exactly as a
//! controller written in another language would: no use of the crate's own
//! Rust API. One copy, so the tests agree with each other and the header.

use std::ffi::{c_char, c_int, c_void};
use std::path::PathBuf;
use std::sync::OnceLock;

use libloading::Library;

pub const IOM_ABI_VERSION: u32 = 1;
pub const IOM_DATA_BINARY: u32 = 1;
pub const IOM_OK: c_int = 0;
pub const IOM_ERR_INVALID_ARGUMENT: c_int = 1;
pub const IOM_ERR_REJECTED: c_int = 2;
pub const IOM_ERR_IN_CALLBACK: c_int = 3;
pub const IOM_LOG_CRITICAL: c_int = 0;
pub const IOM_LOG_DEBUG: c_int = 5;

#[repr(C)]
pub struct IomInstance {
    pub _opaque: [u8; 0],
}

#[repr(C)]
pub struct IomPreparedTrigger {
    pub _opaque: [u8; 0],
}

#[repr(C)]
pub struct IomPreparedAction {
    pub _opaque: [u8; 0],
}

#[repr(C)]
pub struct IomVariables {
    pub _opaque: [u8; 0],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct IomStr {
    pub ptr: *const c_char,
    pub len: usize,
}

impl IomStr {
    pub fn of(bytes: &[u8]) -> IomStr {
        IomStr {
            ptr: bytes.as_ptr().cast(),
            len: bytes.len(),
        }
    }
}

pub type FireTriggerCb = unsafe extern "C" fn(*mut c_void, u64, *const c_char, *const u8, usize);
pub type StatusChangedCb =
    unsafe extern "C" fn(*mut c_void, u64, *const c_char, *const c_char, *const c_char);
/// `iom_log_level` is a C enum: an `int` on every ABI we target.
pub type LogCb = unsafe extern "C" fn(*mut c_void, u64, c_int, *const c_char);
pub type FireTriggerExCb =
    unsafe extern "C" fn(*mut c_void, u64, *const c_char, *const u8, usize, u32);

#[repr(C)]
#[derive(Clone, Copy)]
pub struct IomHostCallbacks {
    pub struct_size: u32,
    pub abi_version: u32,
    pub user_data: *mut c_void,
    pub fire_trigger: Option<FireTriggerCb>,
    pub status_changed: Option<StatusChangedCb>,
    pub log: Option<LogCb>,
    /// A later, optional addition: used only when struct_size covers it.
    pub fire_trigger_ex: Option<FireTriggerExCb>,
}

/// The module's entry points, as the header declares them.
pub struct Api {
    pub abi_version: unsafe extern "C" fn() -> u32,
    pub module_manifest: unsafe extern "C" fn() -> *const c_char,
    pub instance_create: unsafe extern "C" fn(
        *const IomHostCallbacks,
        u64,
        *const c_char,
        *mut *mut c_char,
    ) -> *mut IomInstance,
    pub instance_destroy: unsafe extern "C" fn(*mut IomInstance) -> c_int,
    pub instance_action: unsafe extern "C" fn(
        *mut IomInstance,
        *const c_char,
        *const c_char,
        *const IomStr,
        usize,
        *mut *mut c_char,
    ) -> c_int,
    pub instance_status: unsafe extern "C" fn(*mut IomInstance) -> *mut c_char,
    pub instance_network: unsafe extern "C" fn(*mut IomInstance, c_int) -> c_int,
    pub trigger_prepare: unsafe extern "C" fn(
        *mut IomInstance,
        *const c_char,
        *const c_char,
        *mut *mut c_char,
    ) -> *mut IomPreparedTrigger,
    pub trigger_test: unsafe extern "C" fn(
        *const IomPreparedTrigger,
        *const u8,
        usize,
        *mut *mut IomVariables,
    ) -> c_int,
    pub trigger_test_ex: unsafe extern "C" fn(
        *const IomPreparedTrigger,
        *const u8,
        usize,
        u32,
        *mut *mut IomVariables,
    ) -> c_int,
    pub trigger_free: unsafe extern "C" fn(*mut IomPreparedTrigger),
    pub trigger_variable_count: unsafe extern "C" fn(*const IomPreparedTrigger) -> isize,
    pub variables_count: unsafe extern "C" fn(*const IomVariables) -> usize,
    pub variables_get: unsafe extern "C" fn(*const IomVariables, usize) -> IomStr,
    pub variables_free: unsafe extern "C" fn(*mut IomVariables),
    pub string_free: unsafe extern "C" fn(*mut c_char),
    pub action_prepare: unsafe extern "C" fn(
        *mut IomInstance,
        *const c_char,
        *const c_char,
        *mut *mut c_char,
    ) -> *mut IomPreparedAction,
    pub action_run: unsafe extern "C" fn(
        *const IomPreparedAction,
        *const IomStr,
        usize,
        *mut *mut c_char,
    ) -> c_int,
    pub action_free: unsafe extern "C" fn(*mut IomPreparedAction),
}

/// The cdylib cargo built for this test run: `target/<profile>/deps/
/// libwsio.so`, beside this test executable (Cargo.toml's [lib] crate-type
/// includes "cdylib", so building the lib for the tests builds it too).
/// Not `target/<profile>/libwsio.so`: cargo copies artifacts up there only
/// for the targets a command asks for, so `cargo test --test abi` leaves
/// that copy stale and the test would exercise an old module.
pub fn module_path() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    let path = exe
        .parent()
        .expect("the test executable lives in target/<profile>/deps/")
        .join(format!(
            "{}wsio{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        ));
    assert!(
        path.exists(),
        "{} is missing: it is built by `cargo test` because Cargo.toml's [lib] crate-type \
         includes \"cdylib\"; run this test through cargo",
        path.display()
    );
    path
}

/// The module, loaded once per test process and never unloaded: it keeps a
/// driver thread of its own, and unmapping code a thread still runs would
/// crash the process (a controller keeps its modules loaded too).
pub fn api() -> &'static Api {
    static API: OnceLock<Api> = OnceLock::new();
    API.get_or_init(|| {
        let path = module_path();
        // SAFETY: libwsio.so is this crate's own cdylib; loading it runs only
        // Rust's (trivial) library initialisers.
        let library = unsafe { Library::new(&path) }
            .unwrap_or_else(|e| panic!("cannot dlopen {}: {e}", path.display()));
        let library: &'static Library = Box::leak(Box::new(library));
        // SAFETY (every `symbol` below): each field's type is the header's
        // prototype of that name, and the library is never unloaded, so the
        // copied function pointers stay valid for the process.
        unsafe {
            Api {
                abi_version: symbol(library, "iom_abi_version"),
                module_manifest: symbol(library, "iom_module_manifest"),
                instance_create: symbol(library, "iom_instance_create"),
                instance_destroy: symbol(library, "iom_instance_destroy"),
                instance_action: symbol(library, "iom_instance_action"),
                instance_status: symbol(library, "iom_instance_status"),
                instance_network: symbol(library, "iom_instance_network"),
                trigger_prepare: symbol(library, "iom_trigger_prepare"),
                trigger_test: symbol(library, "iom_trigger_test"),
                trigger_test_ex: symbol(library, "iom_trigger_test_ex"),
                trigger_free: symbol(library, "iom_trigger_free"),
                trigger_variable_count: symbol(library, "iom_trigger_variable_count"),
                variables_count: symbol(library, "iom_variables_count"),
                variables_get: symbol(library, "iom_variables_get"),
                variables_free: symbol(library, "iom_variables_free"),
                string_free: symbol(library, "iom_string_free"),
                action_prepare: symbol(library, "iom_action_prepare"),
                action_run: symbol(library, "iom_action_run"),
                action_free: symbol(library, "iom_action_free"),
            }
        }
    })
}

/// Resolves `name` as a `T`.
///
/// # Safety
/// `T` must be the exact function pointer type of the exported symbol, and
/// `library` must stay loaded while the result is used.
pub unsafe fn symbol<T: Copy>(library: &'static Library, name: &str) -> T {
    // SAFETY: forwarded to the caller.
    let symbol = unsafe { library.get::<T>(name) }
        .unwrap_or_else(|e| panic!("libwsio.so does not export {name}: {e}"));
    *symbol
}
