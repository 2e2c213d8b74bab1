//! The functions of `include/iom.h`, exported by the cdylib under their C
//! names. Each one reads its arguments through [`super::arguments`], finds
//! its objects through [`super::handles`], and runs inside `guard`, so a
//! panic becomes an error code and never unwinds into the host.
//!
//! The functions that read memory the caller points at are `unsafe extern
//! "C" fn`s whose `# Safety` sections repeat what iom.h asks; the ones that
//! only take handles (ids, never dereferenced) are safe.

use std::ffi::{CString, c_char, c_int};
use std::sync::{Arc, OnceLock};

use iom::{
    CALLBACKS_BASE_SIZE, CALLBACKS_EX_SIZE, IOM_ABI_VERSION, IOM_DATA_BINARY, IOM_ERR_IN_CALLBACK,
    IOM_ERR_INVALID_ARGUMENT, IOM_ERR_PANIC, IOM_ERR_REJECTED, IOM_OK, IomHostCallbacks,
    IomInstance, IomPreparedAction, IomPreparedTrigger, IomStr, IomVariables,
};

use super::arguments::{
    ErrorOut, action_failure, code_or_error, guard, handle_or_error, read_bytes, read_json,
    read_str, read_variables,
};
use super::c_host::{CHost, c_text};
use super::handles::{
    BoundAction, RECENT_ACTIONS, RECENT_TRIGGERS, Variables, actions, instance_of, instances,
    triggers,
};
use super::send_fast_path::plain_send_message;
use crate::instance::driver;
use crate::instance::{Instance, InstanceError, Options, PreparedAction};
use crate::manifest::MANIFEST_TOML;
use crate::manifest::names;
use crate::matching::{PreparedTrigger, fill_placeholders};
use crate::preview::preview_action;
use crate::properties::Properties;
use crate::status;

/// See iom.h.
#[unsafe(no_mangle)]
pub extern "C" fn iom_abi_version() -> u32 {
    IOM_ABI_VERSION
}

/// See iom.h.
#[unsafe(no_mangle)]
pub extern "C" fn iom_module_manifest() -> *const c_char {
    static TEXT: OnceLock<CString> = OnceLock::new();
    TEXT.get_or_init(|| c_text(MANIFEST_TOML)).as_ptr()
}

/// See iom.h.
///
/// # Safety
/// `host` is NULL or points to an `iom_host_callbacks` of at least its
/// `struct_size` readable bytes; `properties_json` is NULL or a
/// NUL-terminated string; `error` is NULL or writable storage for one
/// `char *`; all valid for the duration of the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iom_instance_create(
    host: *const IomHostCallbacks,
    instance_id: u64,
    properties_json: *const c_char,
    error: *mut *mut c_char,
) -> *mut IomInstance {
    // SAFETY: `error` as this function's contract says.
    let error = unsafe { ErrorOut::new(error) };
    guard(std::ptr::null_mut(), error, |error| {
        // SAFETY: passed on from this function's contract.
        let created = unsafe { create(host, instance_id, properties_json) };
        handle_or_error(created, error)
    })
}

/// The body of [`iom_instance_create`]: the new instance's handle id.
///
/// # Safety
/// As [`iom_instance_create`].
unsafe fn create(
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
    if version != IOM_ABI_VERSION {
        return Err(format!(
            "host speaks IO module ABI version {version}, this module implements version {IOM_ABI_VERSION}; rebuild the host against this module's iom.h or use a matching module"
        ));
    }
    let needed = CALLBACKS_BASE_SIZE;
    if (size as usize) < needed {
        return Err(format!(
            "iom_host_callbacks.struct_size is {size}, expected at least {needed} (sizeof(iom_host_callbacks) for ABI {IOM_ABI_VERSION})"
        ));
    }
    if instance_id == 0 {
        return Err("instance_id must be 1 or more (0 is reserved)".into());
    }
    // Copy what the host's struct has; optional fields it lacks stay NULL.
    // Only whole fields: a struct_size ending inside fire_trigger_ex (a host
    // bug) must not leave half a pointer from past the host's struct there.
    let full = std::mem::size_of::<IomHostCallbacks>();
    let copied = [full, CALLBACKS_EX_SIZE, CALLBACKS_BASE_SIZE]
        .into_iter()
        .find(|&whole| size as usize >= whole)
        .unwrap_or(CALLBACKS_BASE_SIZE);
    let mut callbacks = IomHostCallbacks {
        struct_size: 0,
        abi_version: 0,
        user_data: std::ptr::null_mut(),
        fire_trigger: None,
        status_changed: None,
        log: None,
        fire_trigger_ex: None,
        fire_trigger_flow: None,
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
    // SAFETY: passed on from this function's contract.
    let json = unsafe { read_json(properties_json, "properties_json") }?;
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
    guard(IOM_ERR_PANIC, ErrorOut::none(), |_| {
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
///
/// # Safety
/// `action` and `properties_json` are NULL or NUL-terminated strings;
/// `variables` is NULL or points to `n_variables` `iom_str`s, each NULL or
/// pointing to `len` readable bytes; `error` is NULL or writable storage for
/// one `char *`; all valid for the duration of the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iom_instance_action(
    instance: *mut IomInstance,
    action: *const c_char,
    properties_json: *const c_char,
    variables: *const IomStr,
    n_variables: usize,
    error: *mut *mut c_char,
) -> c_int {
    // SAFETY: `error` as this function's contract says.
    let error = unsafe { ErrorOut::new(error) };
    guard(IOM_ERR_PANIC, error, |error| {
        let invalid = |e| (IOM_ERR_INVALID_ARGUMENT, e);
        // Every read below: the arguments are valid for this call (the
        // contract), and what is read from them is used within it.
        let result = (|| {
            let live = instance_of(instance).map_err(invalid)?;
            // SAFETY: see above.
            let name = unsafe { read_str(action, "action") }.map_err(invalid)?;
            if name == names::ACTION_SEND_MESSAGE && !properties_json.is_null() {
                // SAFETY: see above.
                let text =
                    unsafe { read_str(properties_json, "properties_json") }.map_err(invalid)?;
                if let Some(message) = plain_send_message(text) {
                    // SAFETY: see above.
                    let vars =
                        unsafe { read_variables(variables, n_variables) }.map_err(invalid)?;
                    return live
                        .send_message(fill_placeholders(message, &vars))
                        .map_err(action_failure);
                }
            }
            // SAFETY: see above.
            let json = unsafe { read_json(properties_json, "properties_json") }.map_err(invalid)?;
            // SAFETY: see above.
            let vars = unsafe { read_variables(variables, n_variables) }.map_err(invalid)?;
            live.action(name, &json, &vars).map_err(action_failure)
        })();
        code_or_error(result, error)
    })
}

/// See iom.h.
#[unsafe(no_mangle)]
pub extern "C" fn iom_instance_status(instance: *mut IomInstance) -> *mut c_char {
    guard(
        std::ptr::null_mut(),
        ErrorOut::none(),
        |_| match instance_of(instance) {
            Ok(live) => c_text(&status::to_json(&live.status())).into_raw(),
            Err(_) => std::ptr::null_mut(),
        },
    )
}

/// See iom.h.
#[unsafe(no_mangle)]
pub extern "C" fn iom_instance_network(instance: *mut IomInstance, up: c_int) -> c_int {
    guard(IOM_ERR_PANIC, ErrorOut::none(), |_| {
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
pub extern "C" fn iom_instance_resume(instance: *mut IomInstance) -> c_int {
    guard(IOM_ERR_PANIC, ErrorOut::none(), |_| {
        match instance_of(instance) {
            // A stopped instance holds nothing more to offer.
            Ok(live) => {
                let _ = live.resume_triggers();
                IOM_OK
            }
            Err(_) => IOM_ERR_INVALID_ARGUMENT,
        }
    })
}

/// See iom.h.
///
/// # Safety
/// `trigger` and `properties_json` are NULL or NUL-terminated strings;
/// `error` is NULL or writable storage for one `char *`; all valid for the
/// duration of the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iom_trigger_prepare(
    instance: *mut IomInstance,
    trigger: *const c_char,
    properties_json: *const c_char,
    error: *mut *mut c_char,
) -> *mut IomPreparedTrigger {
    // SAFETY: `error` as this function's contract says.
    let error = unsafe { ErrorOut::new(error) };
    guard(std::ptr::null_mut(), error, |error| {
        // Every read below: the arguments are valid for this call (the
        // contract), and what is read from them is used within it.
        let result = (|| {
            if !instance.is_null() {
                instance_of(instance)?;
            }
            // SAFETY: see above.
            let name = unsafe { read_str(trigger, "trigger") }?;
            // SAFETY: see above.
            let json = unsafe { read_json(properties_json, "properties_json") }?;
            PreparedTrigger::prepare(name, &json).map_err(|e| e.message)
        })();
        handle_or_error(result.map(|prepared| triggers().insert(prepared)), error)
    })
}

/// See iom.h.
///
/// # Safety
/// As [`iom_trigger_test_ex`].
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
/// `data` is NULL or points to `len` readable bytes; `variables` is NULL or
/// writable storage for one `iom_variables *`; both valid for the duration
/// of the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iom_trigger_test_ex(
    prepared: *const IomPreparedTrigger,
    data: *const u8,
    len: usize,
    flags: u32,
    variables: *mut *mut IomVariables,
) -> c_int {
    // SAFETY: NULL or writable storage for one pointer, for this call (the
    // contract).
    let mut variables = unsafe { variables.as_mut() };
    guard(-1, ErrorOut::none(), |_| {
        if let Some(out) = variables.as_deref_mut() {
            *out = std::ptr::null_mut();
        }
        if prepared.is_null() {
            return -1;
        }
        // SAFETY: `len` bytes valid for this call (the contract), used
        // within it.
        let Ok(bytes) = (unsafe { read_bytes(data, len, "data") }) else {
            return -1;
        };
        let tested = triggers().with_recent(&RECENT_TRIGGERS, prepared as usize, |trigger| {
            if !trigger.test(bytes) {
                return 0;
            }
            if let Some(out) = variables {
                let binary = flags & IOM_DATA_BINARY != 0;
                let values = trigger
                    .variables(bytes, binary)
                    .into_iter()
                    .map(|v| v.into_bytes().into_boxed_slice())
                    .collect();
                *out = Variables::into_raw(values);
            }
            1
        });
        tested.unwrap_or(-1)
    })
}

/// See iom.h. Reads no caller memory: the handle is only looked up.
#[unsafe(no_mangle)]
pub extern "C" fn iom_trigger_variable_count(prepared: *const IomPreparedTrigger) -> isize {
    guard(-1, ErrorOut::none(), |_| {
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

/// See iom.h. Reads no caller memory: the handle is only looked up.
#[unsafe(no_mangle)]
pub extern "C" fn iom_trigger_variable_names(prepared: *const IomPreparedTrigger) -> *mut c_char {
    guard(std::ptr::null_mut(), ErrorOut::none(), |_| {
        if prepared.is_null() {
            return std::ptr::null_mut();
        }
        triggers()
            .with_recent(&RECENT_TRIGGERS, prepared as usize, |trigger| {
                let names = serde_json::Value::from(trigger.variable_names());
                c_text(&names.to_string()).into_raw()
            })
            .unwrap_or(std::ptr::null_mut())
    })
}

/// See iom.h.
///
/// # Safety
/// `action` and `properties_json` are NULL or NUL-terminated strings;
/// `variables` is NULL or points to `n_variables` `iom_str`s, each NULL or
/// pointing to `len` readable bytes; `error` is NULL or writable storage for
/// one `char *`; all valid for the duration of the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iom_action_preview(
    action: *const c_char,
    properties_json: *const c_char,
    variables: *const IomStr,
    n_variables: usize,
    error: *mut *mut c_char,
) -> *mut c_char {
    // SAFETY: `error` as this function's contract says.
    let error = unsafe { ErrorOut::new(error) };
    guard(std::ptr::null_mut(), error, |error| {
        // Every read below: the arguments are valid for this call (the
        // contract), and what is read from them is used within it.
        let result = (|| {
            // SAFETY: see above.
            let name = unsafe { read_str(action, "action") }?;
            // SAFETY: see above.
            let json = unsafe { read_json(properties_json, "properties_json") }?;
            // SAFETY: see above.
            let vars = unsafe { read_variables(variables, n_variables) }?;
            preview_action(name, &json, &vars).map_err(|e| e.message)
        })();
        match result {
            Ok(preview) => {
                error.clear();
                c_text(&serde_json::Value::Object(preview).to_string()).into_raw()
            }
            Err(message) => {
                error.set(&message);
                std::ptr::null_mut()
            }
        }
    })
}

/// See iom.h.
#[unsafe(no_mangle)]
pub extern "C" fn iom_trigger_free(prepared: *mut IomPreparedTrigger) {
    guard((), ErrorOut::none(), |_| {
        if !prepared.is_null() {
            triggers().remove(prepared as usize);
        }
    })
}

/// See iom.h.
///
/// # Safety
/// `action` and `properties_json` are NULL or NUL-terminated strings;
/// `error` is NULL or writable storage for one `char *`; all valid for the
/// duration of the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iom_action_prepare(
    instance: *mut IomInstance,
    action: *const c_char,
    properties_json: *const c_char,
    error: *mut *mut c_char,
) -> *mut IomPreparedAction {
    // SAFETY: `error` as this function's contract says.
    let error = unsafe { ErrorOut::new(error) };
    guard(std::ptr::null_mut(), error, |error| {
        // Every read below: the arguments are valid for this call (the
        // contract), and what is read from them is used within it.
        let result = (|| {
            let live = instance_of(instance)?;
            // SAFETY: see above.
            let name = unsafe { read_str(action, "action") }?;
            // SAFETY: see above.
            let json = unsafe { read_json(properties_json, "properties_json") }?;
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
///
/// # Safety
/// `variables` is NULL or points to `n_variables` `iom_str`s, each NULL or
/// pointing to `len` readable bytes; `error` is NULL or writable storage for
/// one `char *`; all valid for the duration of the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iom_action_run(
    prepared: *const IomPreparedAction,
    variables: *const IomStr,
    n_variables: usize,
    error: *mut *mut c_char,
) -> c_int {
    // SAFETY: `error` as this function's contract says.
    let error = unsafe { ErrorOut::new(error) };
    guard(IOM_ERR_PANIC, error, |error| {
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
                // SAFETY: the variables are valid for this call (the
                // contract), and used within it.
                let vars = unsafe { read_variables(variables, n_variables) }
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
    guard((), ErrorOut::none(), |_| {
        if !prepared.is_null() {
            actions().remove(prepared as usize);
        }
    })
}

/// See iom.h.
///
/// # Safety
/// `variables` is NULL or a pointer `iom_trigger_test` stored and that was
/// not freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iom_variables_count(variables: *const IomVariables) -> usize {
    guard(0, ErrorOut::none(), |_| {
        // SAFETY: the contract; the count is taken within this call.
        unsafe { Variables::from_ptr(variables) }.map_or(0, <[_]>::len)
    })
}

/// See iom.h.
///
/// # Safety
/// As [`iom_variables_count`]; the range returned borrows from `variables`
/// until it is freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iom_variables_get(variables: *const IomVariables, index: usize) -> IomStr {
    guard(IomStr::NULL, ErrorOut::none(), |_| {
        // SAFETY: the contract; only a raw range leaves this call.
        match unsafe { Variables::from_ptr(variables) }.and_then(|v| v.get(index)) {
            Some(value) => IomStr::of(value),
            None => IomStr::NULL,
        }
    })
}

/// See iom.h.
///
/// # Safety
/// `variables` is NULL or a pointer `iom_trigger_test` stored, freed only
/// this once and not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iom_variables_free(variables: *mut IomVariables) {
    guard((), ErrorOut::none(), |_| {
        // SAFETY: the same contract.
        unsafe { Variables::free(variables) }
    })
}

/// See iom.h.
///
/// # Safety
/// `s` is NULL or a string this module returned, freed only this once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iom_string_free(s: *mut c_char) {
    guard((), ErrorOut::none(), |_| {
        if !s.is_null() {
            // SAFETY: a string returned by this module (CString::into_raw),
            // freed once (the contract).
            unsafe { drop(CString::from_raw(s)) };
        }
    })
}
