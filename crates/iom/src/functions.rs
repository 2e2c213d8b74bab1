//! The type of every callback and of every exported function of the header,
//! declared once by the `c_functions!` macro so that each alias and its entry in
//! [`FUNCTIONS`] or [`CALLBACKS`] come from the same tokens: the header check
//! spells the C type from that entry, so it checks the alias itself.

use std::ffi::{c_char, c_int, c_void};

use crate::constants::IomLogLevel;
use crate::types::{
    IomHostCallbacks, IomInstance, IomPreparedAction, IomPreparedTrigger, IomStr, IomVariables,
};

/// A function (or callback) of the header: its C name and its Rust type,
/// spelled as declared here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Function {
    /// The C name: the symbol to resolve with `dlopen`/`dlsym` (for an
    /// exported function), or the field of `iom_host_callbacks` (for a
    /// callback).
    pub name: &'static str,
    /// The Rust type of each parameter, as written in the alias (e.g.
    /// `"*const c_char"`).
    pub params: &'static [&'static str],
    /// The Rust return type as written in the alias, `"()"` for none.
    pub returns: &'static str,
}

/// Declares `unsafe extern "C" fn` aliases and a table of their C names and
/// spelled types.
macro_rules! c_functions {
    (
        $(#[$table_doc:meta])* $table:ident;
        $(
            $(#[$doc:meta])*
            $name:ident: $alias:ident = fn($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?;
        )*
    ) => {
        $(
            $(#[$doc])*
            pub type $alias = unsafe extern "C" fn($($arg: $ty),*) $(-> $ret)?;
        )*

        $(#[$table_doc])*
        pub const $table: &[Function] = &[$(
            Function {
                name: stringify!($name),
                params: &[$(stringify!($ty)),*],
                returns: c_functions!(@returns $($ret)?),
            },
        )*];
    };
    (@returns) => { "()" };
    (@returns $ret:ty) => { stringify!($ret) };
}

c_functions! {
    /// Every callback of [`IomHostCallbacks`], by field name.
    CALLBACKS;

    /// `fire_trigger`: a trigger fired. `trigger` is the manifest name (e.g.
    /// "Messages Received"); `data` is the event's data (the message, the
    /// reason of a disconnection, or empty), to test with `iom_trigger_test`.
    fire_trigger: FireTriggerFn = fn(
        user_data: *mut c_void,
        instance_id: u64,
        trigger: *const c_char,
        data: *const u8,
        len: usize,
    );
    /// `status_changed`: a status variable changed; `timestamp` is ISO 8601
    /// with offset and milliseconds.
    status_changed: StatusChangedFn = fn(
        user_data: *mut c_void,
        instance_id: u64,
        key: *const c_char,
        value: *const c_char,
        timestamp: *const c_char,
    );
    /// `log`: a log line from an instance, with its level (`IOM_LOG_*`).
    log: LogFn = fn(
        user_data: *mut c_void,
        instance_id: u64,
        level: IomLogLevel,
        message: *const c_char,
    );
    /// `fire_trigger_ex`: `fire_trigger` plus `flags` (`IOM_DATA_BINARY`)
    /// to pass on to `iom_trigger_test_ex`.
    fire_trigger_ex: FireTriggerExFn = fn(
        user_data: *mut c_void,
        instance_id: u64,
        trigger: *const c_char,
        data: *const u8,
        len: usize,
        flags: u32,
    );
    /// `fire_trigger_flow`: `fire_trigger_ex` that answers `IOM_OK` (taken)
    /// or `IOM_ERR_REJECTED` (the host is full: the module holds the event
    /// and pauses the instance until `iom_instance_resume`).
    fire_trigger_flow: FireTriggerFlowFn = fn(
        user_data: *mut c_void,
        instance_id: u64,
        trigger: *const c_char,
        data: *const u8,
        len: usize,
        flags: u32,
    ) -> c_int;
}

c_functions! {
    /// Every function a module exports, by symbol name, in the header's
    /// order: a host's `dlopen` table.
    FUNCTIONS;

    /// `iom_abi_version`: the ABI version the module implements.
    iom_abi_version: AbiVersionFn = fn() -> u32;
    /// `iom_module_manifest`: the module manifest (TOML), owned by the
    /// module and valid while it is loaded.
    iom_module_manifest: ModuleManifestFn = fn() -> *const c_char;
    /// `iom_instance_create`: creates an instance from a JSON object of
    /// properties; NULL with `*error` on failure. The callbacks are copied.
    iom_instance_create: InstanceCreateFn = fn(
        host: *const IomHostCallbacks,
        instance_id: u64,
        properties_json: *const c_char,
        error: *mut *mut c_char,
    ) -> *mut IomInstance;
    /// `iom_instance_destroy`: closes and frees an instance; returns once no
    /// further callback for it can arrive (`IOM_ERR_IN_CALLBACK` from inside
    /// a callback).
    iom_instance_destroy: InstanceDestroyFn = fn(instance: *mut IomInstance) -> c_int;
    /// `iom_instance_action`: runs an action with its JSON properties and the
    /// firing trigger's variables; returns at once.
    iom_instance_action: InstanceActionFn = fn(
        instance: *mut IomInstance,
        action: *const c_char,
        properties_json: *const c_char,
        variables: *const IomStr,
        n_variables: usize,
        error: *mut *mut c_char,
    ) -> c_int;
    /// `iom_action_prepare`: compiles an action's properties once, for an
    /// action run many times.
    iom_action_prepare: ActionPrepareFn = fn(
        instance: *mut IomInstance,
        action: *const c_char,
        properties_json: *const c_char,
        error: *mut *mut c_char,
    ) -> *mut IomPreparedAction;
    /// `iom_action_run`: runs a prepared action with the firing trigger's
    /// variables.
    iom_action_run: ActionRunFn = fn(
        prepared: *const IomPreparedAction,
        variables: *const IomStr,
        n_variables: usize,
        error: *mut *mut c_char,
    ) -> c_int;
    /// `iom_action_free`: frees a prepared action (NULL is ignored).
    iom_action_free: ActionFreeFn = fn(prepared: *mut IomPreparedAction);
    /// `iom_instance_status`: the status variables as JSON, to free with
    /// `iom_string_free`.
    iom_instance_status: InstanceStatusFn = fn(instance: *mut IomInstance) -> *mut c_char;
    /// `iom_instance_network`: the controller's network went down (0) or up.
    iom_instance_network: InstanceNetworkFn = fn(instance: *mut IomInstance, up: c_int) -> c_int;
    /// `iom_instance_resume`: the host has room again after refusing an
    /// event through `fire_trigger_flow`; returns at once.
    iom_instance_resume: InstanceResumeFn = fn(instance: *mut IomInstance) -> c_int;
    /// `iom_trigger_prepare`: compiles a project trigger's properties once
    /// (`instance` may be NULL).
    iom_trigger_prepare: TriggerPrepareFn = fn(
        instance: *mut IomInstance,
        trigger: *const c_char,
        properties_json: *const c_char,
        error: *mut *mut c_char,
    ) -> *mut IomPreparedTrigger;
    /// `iom_trigger_test`: tests fired data; 1 (with variables), 0, or -1.
    iom_trigger_test: TriggerTestFn = fn(
        prepared: *const IomPreparedTrigger,
        data: *const u8,
        len: usize,
        variables: *mut *mut IomVariables,
    ) -> c_int;
    /// `iom_trigger_test_ex`: `iom_trigger_test` with the flags the trigger
    /// fired with.
    iom_trigger_test_ex: TriggerTestExFn = fn(
        prepared: *const IomPreparedTrigger,
        data: *const u8,
        len: usize,
        flags: u32,
        variables: *mut *mut IomVariables,
    ) -> c_int;
    /// `iom_trigger_free`: frees a prepared trigger.
    iom_trigger_free: TriggerFreeFn = fn(prepared: *mut IomPreparedTrigger);
    /// `iom_trigger_variable_count` (optional: a host looks it up and does
    /// without it): how many variables every match gives; -1 when it varies
    /// with the data or the handle is not a prepared trigger.
    iom_trigger_variable_count: TriggerVariableCountFn =
        fn(prepared: *const IomPreparedTrigger) -> isize;
    /// `iom_trigger_variable_names` (optional): the names of a prepared
    /// trigger's variables as a JSON array, to free with `iom_string_free`.
    iom_trigger_variable_names: TriggerVariableNamesFn =
        fn(prepared: *const IomPreparedTrigger) -> *mut c_char;
    /// `iom_action_preview` (optional): an action's properties with the
    /// placeholders filled, as JSON, without running it.
    iom_action_preview: ActionPreviewFn = fn(
        action: *const c_char,
        properties_json: *const c_char,
        variables: *const IomStr,
        n_variables: usize,
        error: *mut *mut c_char,
    ) -> *mut c_char;
    /// `iom_variables_count`: how many variables a match has.
    iom_variables_count: VariablesCountFn = fn(variables: *const IomVariables) -> usize;
    /// `iom_variables_get`: variable number `index + 1`, borrowed from
    /// `variables`; `{NULL, 0}` out of range.
    iom_variables_get: VariablesGetFn = fn(
        variables: *const IomVariables,
        index: usize,
    ) -> IomStr;
    /// `iom_variables_free`: frees the variables of a match.
    iom_variables_free: VariablesFreeFn = fn(variables: *mut IomVariables);
    /// `iom_string_free`: frees a string the module returned (NULL is
    /// ignored).
    iom_string_free: StringFreeFn = fn(s: *mut c_char);
}
