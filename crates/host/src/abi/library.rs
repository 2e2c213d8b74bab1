//! The module's function table, from one of two places: a shared library
//! opened with `dlopen` (libloading), its version checked first and every
//! `iom_*` symbol resolved once with the type the `iom` crate gives it; or
//! the wsio module linked into this executable (`wsio::c_abi`, the same
//! `extern "C"` functions the cdylib exports). Everything past the table is
//! one code path: the built-in module is just another loaded module.

use std::ffi::{CStr, c_char, c_int};
use std::fmt;
use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};

use iom::{
    AbiVersionFn, ActionFreeFn, ActionPrepareFn, ActionPreviewFn, ActionRunFn, IOM_ABI_VERSION,
    IOM_ERR_IN_CALLBACK, IOM_OK, InstanceActionFn, InstanceCreateFn, InstanceDestroyFn,
    InstanceNetworkFn, InstanceResumeFn, InstanceStatusFn, ModuleManifestFn, StringFreeFn,
    TriggerFreeFn, TriggerPrepareFn, TriggerTestExFn, TriggerTestFn, TriggerVariableCountFn,
    TriggerVariableNamesFn, VariablesCountFn, VariablesFreeFn, VariablesGetFn,
};
use libloading::Library;

use super::errors::{CallError, LoadError, destroy_refusal};

/// Where a module's functions come from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum ModuleSource {
    /// A shared library exporting the ABI, loaded with `dlopen`.
    File(PathBuf),
    /// The wsio module linked into this executable: what `wsio` uses when a
    /// project names no module and no `libwsio.so` is beside it (e.g. after
    /// `cargo install`).
    #[default]
    BuiltIn,
}

impl fmt::Display for ModuleSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModuleSource::File(path) => write!(f, "{}", path.display()),
            ModuleSource::BuiltIn => f.write_str("built-in (linked into the wsio executable)"),
        }
    }
}

/// `iom_action_prepare`, `iom_action_run` and `iom_action_free`: optional
/// as a set (modules built before this ABI 1 addition lack them; the host
/// then runs every action with `iom_instance_action`).
#[derive(Clone, Copy)]
pub(super) struct PreparedActionApi {
    pub(super) prepare: ActionPrepareFn,
    pub(super) run: ActionRunFn,
    pub(super) free: ActionFreeFn,
}

/// The resolved entry points. The function pointers are copied out of the
/// library's symbols, so they are valid only while `_library` is loaded;
/// every holder of a pointer (instances, prepared triggers) keeps an
/// `Arc<Api>` for that reason.
///
/// The library itself is never unloaded: a module may keep threads or
/// thread-local destructors of its own past its last instance (wsio runs one
/// driver thread for all instances), and unmapping code they still run would
/// crash the host. A controller keeps its modules for its lifetime anyway.
pub(super) struct Api {
    pub(super) instance_create: InstanceCreateFn,
    pub(super) instance_destroy: InstanceDestroyFn,
    pub(super) instance_action: InstanceActionFn,
    pub(super) instance_status: InstanceStatusFn,
    pub(super) instance_network: InstanceNetworkFn,
    /// Optional (flow control, a later ABI 1 addition).
    pub(super) instance_resume: Option<InstanceResumeFn>,
    pub(super) trigger_prepare: TriggerPrepareFn,
    pub(super) trigger_test: TriggerTestFn,
    /// Optional (modules built before the ABI 1 addition lack it).
    pub(super) trigger_test_ex: Option<TriggerTestExFn>,
    pub(super) trigger_free: TriggerFreeFn,
    /// Optional: how many variables a prepared trigger's matches give.
    pub(super) trigger_variable_count: Option<TriggerVariableCountFn>,
    /// Optional: the names of a prepared trigger's variables.
    pub(super) trigger_variable_names: Option<TriggerVariableNamesFn>,
    /// Optional: an action's properties with placeholders filled.
    pub(super) action_preview: Option<ActionPreviewFn>,
    pub(super) prepared_actions: Option<PreparedActionApi>,
    pub(super) variables_count: VariablesCountFn,
    pub(super) variables_get: VariablesGetFn,
    pub(super) variables_free: VariablesFreeFn,
    pub(super) string_free: StringFreeFn,
    /// The `dlopen`ed library the pointers point into; `None` for the
    /// built-in module, whose functions are part of this executable.
    _library: Option<ManuallyDrop<Library>>,
}

impl Api {
    /// The outcome of an `int`-returning call, with the module's message.
    ///
    /// # Safety
    /// `error` is what the call stored in its `char **error`: NULL or a
    /// string of this module's, not yet freed (freed here).
    pub(super) unsafe fn result(&self, code: c_int, error: *mut c_char) -> Result<(), CallError> {
        if code == IOM_OK {
            if !error.is_null() {
                // SAFETY: the caller's contract.
                let _ = unsafe { self.take_error(error) };
            }
            return Ok(());
        }
        let message = if error.is_null() && code == IOM_ERR_IN_CALLBACK {
            destroy_refusal(code)
        } else {
            // SAFETY: the caller's contract.
            unsafe { self.take_error(error) }
        };
        Err(CallError::new(code, message))
    }

    /// Copies a string the module returned (not through `char **error`)
    /// and frees it; None for NULL.
    ///
    /// # Safety
    /// `text` is NULL or a NUL-terminated string this module returned, not
    /// yet freed (freed here, so not used afterwards).
    pub(super) unsafe fn take_string(&self, text: *mut c_char) -> Option<String> {
        if text.is_null() {
            return None;
        }
        // SAFETY: the caller's contract: a live module string.
        let copy = unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: freed exactly once, with the function the header names.
        unsafe { (self.string_free)(text) };
        Some(copy)
    }

    /// Copies a module-allocated error string and frees it.
    ///
    /// # Safety
    /// `error` is NULL or a string this module returned through a
    /// `char **error`, not yet freed (freed here, so not used afterwards).
    pub(super) unsafe fn take_error(&self, error: *mut c_char) -> String {
        if error.is_null() {
            return "the module reported an error but gave no reason".to_string();
        }
        // SAFETY: a non-NULL `*error` from an iom_* call (the caller's
        // contract) is a NUL-terminated string allocated by the module, owned
        // by us until iom_string_free.
        let message = unsafe { CStr::from_ptr(error) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: freed exactly once, with the function the header names.
        unsafe { (self.string_free)(error) };
        message
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
            source: ModuleSource::File(path.to_path_buf()),
            symbol: name,
        }),
    }
}

impl Api {
    /// Opens the shared library at `path`, checks that it implements ABI
    /// version 1 and resolves every `iom_*` function; also returns
    /// `iom_module_manifest`, which the module reads once.
    pub(super) fn open(path: &Path) -> Result<(Api, ModuleManifestFn), LoadError> {
        // SAFETY: loading a library runs its initialisers; a file the user
        // named as an IO module is trusted to be one (a controller loads the
        // modules of its project). Nothing else can be checked before loading.
        let library = unsafe { Library::new(path) }.map_err(|e| LoadError::Open {
            source: ModuleSource::File(path.to_path_buf()),
            reason: e.to_string(),
        })?;

        // The version first: a module of another ABI version may not export
        // the same functions, and "wrong version" is the useful message then.
        // SAFETY: `uint32_t iom_abi_version(void)`.
        let abi_version: AbiVersionFn = unsafe { symbol(&library, path, "iom_abi_version") }?;
        // SAFETY: a no-argument getter per the header.
        let found = unsafe { abi_version() };
        if found != IOM_ABI_VERSION {
            return Err(LoadError::AbiVersion {
                source: ModuleSource::File(path.to_path_buf()),
                found,
            });
        }

        // SAFETY (each line): the type is `iom`'s type of that symbol, which
        // its test checks against the header's declaration.
        let module_manifest: ModuleManifestFn =
            unsafe { symbol(&library, path, "iom_module_manifest") }?;
        let api = Api {
            instance_create: unsafe { symbol(&library, path, "iom_instance_create") }?,
            instance_destroy: unsafe { symbol(&library, path, "iom_instance_destroy") }?,
            instance_action: unsafe { symbol(&library, path, "iom_instance_action") }?,
            instance_status: unsafe { symbol(&library, path, "iom_instance_status") }?,
            instance_network: unsafe { symbol(&library, path, "iom_instance_network") }?,
            instance_resume: unsafe { symbol(&library, path, "iom_instance_resume") }.ok(),
            trigger_prepare: unsafe { symbol(&library, path, "iom_trigger_prepare") }?,
            trigger_test: unsafe { symbol(&library, path, "iom_trigger_test") }?,
            trigger_test_ex: unsafe { symbol(&library, path, "iom_trigger_test_ex") }.ok(),
            trigger_free: unsafe { symbol(&library, path, "iom_trigger_free") }?,
            trigger_variable_count: unsafe { symbol(&library, path, "iom_trigger_variable_count") }
                .ok(),
            trigger_variable_names: unsafe { symbol(&library, path, "iom_trigger_variable_names") }
                .ok(),
            action_preview: unsafe { symbol(&library, path, "iom_action_preview") }.ok(),
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
            _library: Some(ManuallyDrop::new(library)),
        };
        Ok((api, module_manifest))
    }

    /// The table of the wsio module linked into this executable: the same
    /// functions `open` would resolve from `libwsio.so`, taken by their Rust
    /// paths instead of by `dlsym`. Its version is checked all the same, so
    /// the two sources stay alike.
    pub(super) fn built_in() -> Result<(Api, ModuleManifestFn), LoadError> {
        use wsio::c_abi as m;
        let found = m::iom_abi_version();
        if found != IOM_ABI_VERSION {
            return Err(LoadError::AbiVersion {
                source: ModuleSource::BuiltIn,
                found,
            });
        }
        // Each function item coerces to the `iom` alias of its symbol: the
        // compiler checks here what `symbol`'s caller promises for `open`.
        let api = Api {
            instance_create: m::iom_instance_create,
            instance_destroy: m::iom_instance_destroy,
            instance_action: m::iom_instance_action,
            instance_status: m::iom_instance_status,
            instance_network: m::iom_instance_network,
            instance_resume: Some(m::iom_instance_resume),
            trigger_prepare: m::iom_trigger_prepare,
            trigger_test: m::iom_trigger_test,
            trigger_test_ex: Some(m::iom_trigger_test_ex),
            trigger_free: m::iom_trigger_free,
            trigger_variable_count: Some(m::iom_trigger_variable_count),
            trigger_variable_names: Some(m::iom_trigger_variable_names),
            action_preview: Some(m::iom_action_preview),
            prepared_actions: Some(PreparedActionApi {
                prepare: m::iom_action_prepare,
                run: m::iom_action_run,
                free: m::iom_action_free,
            }),
            variables_count: m::iom_variables_count,
            variables_get: m::iom_variables_get,
            variables_free: m::iom_variables_free,
            string_free: m::iom_string_free,
            _library: None,
        };
        Ok((api, m::iom_module_manifest))
    }
}
