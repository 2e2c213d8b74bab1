//! The module's C ABI (`include/iom.h`) for the tests that load the built
//! cdylib with dlopen (tests/abi.rs, tests/abi_stress.rs), exactly as a
//! controller written in another language would: no use of the wsio crate's
//! Rust API. The types, constants and function types are the `iom` crate's
//! (the one Rust copy of the header, checked against it); this file resolves
//! the functions once.

use std::path::PathBuf;
use std::sync::OnceLock;

pub use iom::{
    FireTriggerExFn as FireTriggerExCb, FireTriggerFn as FireTriggerCb, IOM_ABI_VERSION,
    IOM_DATA_BINARY, IOM_ERR_IN_CALLBACK, IOM_ERR_INVALID_ARGUMENT, IOM_ERR_REJECTED,
    IOM_LOG_CRITICAL, IOM_LOG_DEBUG, IOM_OK, IomHostCallbacks, IomInstance, IomPreparedAction,
    IomPreparedTrigger, IomStr, IomVariables, LogFn as LogCb, StatusChangedFn as StatusChangedCb,
};
use libloading::Library;

/// The module's entry points, typed by `iom`.
pub struct Api {
    pub abi_version: iom::AbiVersionFn,
    pub module_manifest: iom::ModuleManifestFn,
    pub instance_create: iom::InstanceCreateFn,
    pub instance_destroy: iom::InstanceDestroyFn,
    pub instance_action: iom::InstanceActionFn,
    pub instance_status: iom::InstanceStatusFn,
    pub instance_network: iom::InstanceNetworkFn,
    pub instance_resume: iom::InstanceResumeFn,
    pub trigger_prepare: iom::TriggerPrepareFn,
    pub trigger_test: iom::TriggerTestFn,
    pub trigger_test_ex: iom::TriggerTestExFn,
    pub trigger_free: iom::TriggerFreeFn,
    pub trigger_variable_count: iom::TriggerVariableCountFn,
    pub variables_count: iom::VariablesCountFn,
    pub variables_get: iom::VariablesGetFn,
    pub variables_free: iom::VariablesFreeFn,
    pub string_free: iom::StringFreeFn,
    pub action_prepare: iom::ActionPrepareFn,
    pub action_run: iom::ActionRunFn,
    pub action_free: iom::ActionFreeFn,
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
        // SAFETY (every `symbol` below): each field's type is `iom`'s type
        // of that name (checked against the header), and the library is
        // never unloaded, so the copied function pointers stay valid for the
        // process.
        unsafe {
            Api {
                abi_version: symbol(library, "iom_abi_version"),
                module_manifest: symbol(library, "iom_module_manifest"),
                instance_create: symbol(library, "iom_instance_create"),
                instance_destroy: symbol(library, "iom_instance_destroy"),
                instance_action: symbol(library, "iom_instance_action"),
                instance_status: symbol(library, "iom_instance_status"),
                instance_network: symbol(library, "iom_instance_network"),
                instance_resume: symbol(library, "iom_instance_resume"),
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
