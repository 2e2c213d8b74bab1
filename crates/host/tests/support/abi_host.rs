//! The controller's side of the C ABI, for the tests that load
//! `libwsio.so` with dlopen (tests/abi.rs, tests/abi_stress.rs): calling
//! wrappers over the entry points of [`super::iom`] that copy and free what
//! the module returns and check the header's error contract on every call,
//! and the pieces every recording host needs (a callbacks struct pointing
//! at it, a callback's strings and bytes copied). Each test file keeps only
//! the host it records with.

use std::ffi::{CStr, CString, c_char, c_int};
use std::ptr;
use std::sync::Arc;

use super::iom::{
    FireTriggerCb, IOM_ABI_VERSION, IOM_OK, IomHostCallbacks, IomInstance, IomPreparedTrigger,
    IomStr, IomVariables, LogCb, StatusChangedCb, api,
};

pub fn c(text: &str) -> CString {
    CString::new(text).expect("test strings have no NUL")
}

/// Copies a string the module allocated (NULL: None) and frees it with
/// iom_string_free, as the header asks.
pub fn take_string(s: *mut c_char) -> Option<String> {
    if s.is_null() {
        return None;
    }
    // SAFETY: a non-NULL string returned by the module is NUL-terminated and
    // ours until freed; it is freed exactly once, right after the copy.
    let text = unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned();
    // SAFETY: as above.
    unsafe { (api().string_free)(s) };
    Some(text)
}

/// The callbacks struct of ABI version 1 (no fire_trigger_ex) whose
/// `user_data` is `host`; the caller keeps the Arc alive for as long as the
/// instance lives.
pub fn callbacks_for<T>(
    host: &Arc<T>,
    fire_trigger: FireTriggerCb,
    status_changed: StatusChangedCb,
    log: LogCb,
) -> IomHostCallbacks {
    IomHostCallbacks {
        struct_size: size_of::<IomHostCallbacks>() as u32,
        abi_version: IOM_ABI_VERSION,
        user_data: Arc::as_ptr(host).cast_mut().cast(),
        fire_trigger: Some(fire_trigger),
        status_changed: Some(status_changed),
        log: Some(log),
        fire_trigger_ex: None,
        fire_trigger_flow: None,
    }
}

/// A callback's C string, copied: None for NULL, `Err` (with a lossy copy)
/// for one that is not UTF-8.
///
/// # Safety
/// `s` is NULL or NUL-terminated and valid for the call.
pub unsafe fn callback_string(s: *const c_char) -> Option<Result<String, String>> {
    if s.is_null() {
        return None;
    }
    // SAFETY: forwarded to the caller.
    let s = unsafe { CStr::from_ptr(s) };
    Some(
        s.to_str()
            .map(str::to_owned)
            .map_err(|_| s.to_string_lossy().into_owned()),
    )
}

/// A callback's data, copied (NULL or empty: no bytes).
///
/// # Safety
/// `data` is NULL or valid for `len` bytes for the call.
pub unsafe fn callback_bytes(data: *const u8, len: usize) -> Vec<u8> {
    if len == 0 || data.is_null() {
        return Vec::new();
    }
    // SAFETY: forwarded to the caller.
    unsafe { std::slice::from_raw_parts(data, len) }.to_vec()
}

/// iom_instance_create with raw arguments: the handle or the error message.
pub fn create_raw(
    host: *const IomHostCallbacks,
    instance_id: u64,
    properties: *const c_char,
) -> Result<*mut IomInstance, String> {
    let mut error: *mut c_char = ptr::null_mut();
    // SAFETY: every pointer is NULL or valid for the call; misuse is what
    // some callers test, and the header promises an error, not a crash.
    let handle = unsafe { (api().instance_create)(host, instance_id, properties, &mut error) };
    handle_or_error(handle, error, "iom_instance_create")
}

/// What a call that returns a handle gave back: the handle, or the error
/// message when it is NULL, checking the header's contract that `*error`
/// is set exactly then (and freeing it).
pub fn handle_or_error<T>(
    handle: *mut T,
    error: *mut c_char,
    call: &str,
) -> Result<*mut T, String> {
    let error = take_string(error);
    if handle.is_null() {
        Err(error.unwrap_or_else(|| panic!("a failed {call} sets *error")))
    } else {
        assert!(error.is_none(), "a successful {call} left *error set");
        Ok(handle)
    }
}

/// iom_instance_action with raw arguments: the code and the error message.
pub fn action_raw(
    instance: *mut IomInstance,
    action: *const c_char,
    properties: *const c_char,
    variables: *const IomStr,
    n_variables: usize,
) -> (c_int, Option<String>) {
    let mut error: *mut c_char = ptr::null_mut();
    // SAFETY: as in create_raw.
    let code = unsafe {
        (api().instance_action)(
            instance,
            action,
            properties,
            variables,
            n_variables,
            &mut error,
        )
    };
    let error = take_string(error);
    assert_eq!(
        code == IOM_OK,
        error.is_none(),
        "*error must be set exactly when the code is not IOM_OK (code {code}, error {error:?})"
    );
    (code, error)
}

/// iom_instance_action `name` with `properties` (JSON) and the trigger
/// `variables`.
pub fn action_on(
    instance: *mut IomInstance,
    name: &str,
    properties: &str,
    variables: &[&str],
) -> (c_int, Option<String>) {
    let (name, properties) = (c(name), c(properties));
    let variables: Vec<IomStr> = variables.iter().map(|v| IomStr::of(v.as_bytes())).collect();
    action_raw(
        instance,
        name.as_ptr(),
        properties.as_ptr(),
        variables.as_ptr(),
        variables.len(),
    )
}

pub fn status_of(instance: *mut IomInstance) -> Option<String> {
    // SAFETY: iom_instance_status validates the handle itself.
    take_string(unsafe { (api().instance_status)(instance) })
}

pub fn network_of(instance: *mut IomInstance, up: bool) -> c_int {
    // SAFETY: iom_instance_network validates the handle itself.
    unsafe { (api().instance_network)(instance, c_int::from(up)) }
}

pub fn destroy_raw(instance: *mut IomInstance) -> c_int {
    // SAFETY: iom_instance_destroy validates the handle itself.
    unsafe { (api().instance_destroy)(instance) }
}

/// A prepared trigger, freed on drop.
pub struct Prepared(*mut IomPreparedTrigger);

impl Prepared {
    pub fn raw(&self) -> *const IomPreparedTrigger {
        self.0
    }

    /// The handle, no longer freed on drop: for tests that free it (and
    /// use it after) on purpose.
    pub fn into_raw(self) -> *mut IomPreparedTrigger {
        std::mem::ManuallyDrop::new(self).0
    }
}

impl Drop for Prepared {
    fn drop(&mut self) {
        free_trigger(self.0);
    }
}

/// iom_trigger_free; the module validates the handle (a freed one is a
/// no-op).
pub fn free_trigger(prepared: *mut IomPreparedTrigger) {
    // SAFETY: the module validates the handle itself.
    unsafe { (api().trigger_free)(prepared) };
}

pub fn prepare_raw(
    instance: *mut IomInstance,
    trigger: *const c_char,
    properties: *const c_char,
) -> Result<Prepared, String> {
    let mut error: *mut c_char = ptr::null_mut();
    // SAFETY: as in create_raw.
    let prepared = unsafe { (api().trigger_prepare)(instance, trigger, properties, &mut error) };
    handle_or_error(prepared, error, "iom_trigger_prepare").map(Prepared)
}

pub fn prepare(
    instance: *mut IomInstance,
    trigger: &str,
    properties: &str,
) -> Result<Prepared, String> {
    let (trigger, properties) = (c(trigger), c(properties));
    prepare_raw(instance, trigger.as_ptr(), properties.as_ptr())
}

/// iom_trigger_test: the result and the trigger variables (freed here).
pub fn test_raw(
    prepared: *const IomPreparedTrigger,
    data: *const u8,
    len: usize,
) -> (c_int, Vec<Vec<u8>>) {
    test_flagged(prepared, data, len, None)
}

/// iom_trigger_test on `data`.
pub fn test_bytes(prepared: *const IomPreparedTrigger, data: &[u8]) -> (c_int, Vec<Vec<u8>>) {
    test_raw(prepared, data.as_ptr(), data.len())
}

/// iom_trigger_test, or iom_trigger_test_ex when `flags` are given.
pub fn test_flagged(
    prepared: *const IomPreparedTrigger,
    data: *const u8,
    len: usize,
    flags: Option<u32>,
) -> (c_int, Vec<Vec<u8>>) {
    let api = api();
    // Not NULL, so that the module visibly clears it when it stores nothing.
    let mut variables = ptr::dangling_mut::<IomVariables>();
    // SAFETY: `data` is NULL or `len` readable bytes; the module validates
    // `prepared` itself.
    let result = unsafe {
        match flags {
            None => (api.trigger_test)(prepared, data, len, &mut variables),
            Some(flags) => (api.trigger_test_ex)(prepared, data, len, flags, &mut variables),
        }
    };
    if result != 1 {
        assert!(
            variables.is_null(),
            "iom_trigger_test returned {result} but stored variables"
        );
        return (result, Vec::new());
    }
    assert!(!variables.is_null(), "a match must store its variables");
    // SAFETY: live variables from the match above; each iom_str is borrowed
    // from them and copied before they are freed, once.
    unsafe {
        let count = (api.variables_count)(variables);
        let values = (0..count)
            .map(|i| {
                let v = (api.variables_get)(variables, i);
                assert!(!v.ptr.is_null(), "variable {} has a NULL pointer", i + 1);
                std::slice::from_raw_parts(v.ptr.cast::<u8>(), v.len).to_vec()
            })
            .collect();
        let past_end = (api.variables_get)(variables, count);
        assert!(past_end.ptr.is_null() && past_end.len == 0);
        (api.variables_free)(variables);
        (result, values)
    }
}

/// iom_trigger_test of a prepared trigger on `data`.
pub fn test_data(prepared: &Prepared, data: &[u8]) -> (c_int, Vec<Vec<u8>>) {
    test_bytes(prepared.raw(), data)
}
