//! The caller's side of every export: reading its arguments (strings, JSON,
//! byte ranges, variables) with errors that name the bad one, writing its
//! `char **error`, and catching panics so nothing unwinds into the host.
//!
//! A raw pointer becomes a reference only in the `unsafe fn`s here, whose
//! `# Safety` sections pass on what iom.h asks of the caller; the lifetime
//! of what they return is the caller's to choose, so each export keeps it
//! within its own call.

use std::ffi::{CStr, c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};

use iom::{IOM_ERR_INVALID_ARGUMENT, IOM_ERR_REJECTED, IOM_OK, IomStr};
use serde_json::Value;

use super::c_host::c_text;
use crate::instance::ActionError;

/// Where an export stores its error message: the caller's `char **error`,
/// or nowhere when it passed NULL (or the function has no such argument).
pub(super) struct ErrorOut<'a>(Option<&'a mut *mut c_char>);

impl<'a> ErrorOut<'a> {
    /// The caller's `error` argument.
    ///
    /// # Safety
    /// `error` is NULL or points to writable storage for one `char *` that
    /// nothing else touches during `'a` (iom.h: "char **error (may be
    /// NULL)").
    #[inline]
    pub(super) unsafe fn new(error: *mut *mut c_char) -> ErrorOut<'a> {
        // SAFETY: the caller's contract.
        ErrorOut(unsafe { error.as_mut() })
    }

    /// For the functions without an `error` argument.
    pub(super) fn none() -> ErrorOut<'static> {
        ErrorOut(None)
    }

    /// Stores `message` for the caller to free with `iom_string_free`.
    pub(super) fn set(&mut self, message: &str) {
        if let Some(error) = self.0.as_deref_mut() {
            *error = c_text(message).into_raw();
        }
    }

    /// Success: `*error` is NULL (iom.h).
    #[inline]
    pub(super) fn clear(&mut self) {
        if let Some(error) = self.0.as_deref_mut() {
            *error = std::ptr::null_mut();
        }
    }
}

/// Reads a NUL-terminated UTF-8 argument.
///
/// # Safety
/// `ptr` is NULL or a NUL-terminated string that stays valid and unchanged
/// for `'a` (iom.h: strings passed in are borrowed for the call).
#[inline]
pub(super) unsafe fn read_str<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, String> {
    if ptr.is_null() {
        return Err(format!(
            "{what} is NULL; pass a NUL-terminated UTF-8 string"
        ));
    }
    // SAFETY: non-NULL, and NUL-terminated and valid for 'a per the
    // caller's contract.
    let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
    std::str::from_utf8(bytes).map_err(|e| {
        format!(
            "{what} is not valid UTF-8 (bad byte at offset {})",
            e.valid_up_to()
        )
    })
}

/// Reads an optional JSON object argument (NULL or "" means none).
///
/// # Safety
/// As [`read_str`], for the duration of this call.
pub(super) unsafe fn read_json(ptr: *const c_char, what: &str) -> Result<Value, String> {
    if ptr.is_null() {
        return Ok(Value::Null);
    }
    // SAFETY: the caller's contract; the text is parsed before we return.
    let text = unsafe { read_str(ptr, what) }?;
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(text).map_err(|e| format!("{what} is not valid JSON: {e}"))
}

/// Reads a byte range argument.
///
/// # Safety
/// When `len` is not 0, `ptr` is NULL or points to `len` readable bytes that
/// stay valid and unchanged for `'a`.
#[inline]
pub(super) unsafe fn read_bytes<'a>(
    ptr: *const u8,
    len: usize,
    what: &str,
) -> Result<&'a [u8], String> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(format!("{what} is NULL but its length is {len}"));
    }
    // SAFETY: non-NULL, and `len` bytes valid for 'a per the caller's
    // contract.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Reads the firing trigger's variables (`iom_str` array) as UTF-8.
///
/// # Safety
/// When `n` is not 0, `variables` is NULL or points to `n` `iom_str`s, each
/// a range as [`read_bytes`] requires, all valid and unchanged for `'a`.
#[inline]
pub(super) unsafe fn read_variables<'a>(
    variables: *const IomStr,
    n: usize,
) -> Result<Vec<&'a str>, String> {
    if n == 0 {
        return Ok(Vec::new());
    }
    if variables.is_null() {
        return Err(format!("variables is NULL but n_variables is {n}"));
    }
    // SAFETY: non-NULL, and `n` entries valid for 'a per the caller's
    // contract.
    let entries: &'a [IomStr] = unsafe { std::slice::from_raw_parts(variables, n) };
    entries
        .iter()
        .enumerate()
        .map(|(i, v)| {
            // The name is formatted only for an error: this runs per action.
            let what = || format!("variable {}", i + 1);
            // SAFETY: each entry is a valid range for 'a (the contract).
            let bytes = unsafe { read_bytes(v.ptr.cast(), v.len, "variable") }
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

/// Runs an export body, turning a panic into an error: nothing unwinds
/// into the host.
#[inline]
pub(super) fn guard<T>(
    on_panic: T,
    mut error: ErrorOut<'_>,
    body: impl FnOnce(&mut ErrorOut<'_>) -> T,
) -> T {
    match catch_unwind(AssertUnwindSafe(|| body(&mut error))) {
        Ok(value) => value,
        Err(_) => {
            error.set("internal error in the wsio module (a bug: please report it with the log)");
            on_panic
        }
    }
}

/// A handle-returning export's result: the handle, or NULL with `*error`.
#[inline]
pub(super) fn handle_or_error<T>(
    result: Result<usize, String>,
    error: &mut ErrorOut<'_>,
) -> *mut T {
    match result {
        Ok(id) => {
            error.clear();
            id as *mut T
        }
        Err(message) => {
            error.set(&message);
            std::ptr::null_mut()
        }
    }
}

/// A code-returning export's result: IOM_OK, or the code with `*error`.
#[inline]
pub(super) fn code_or_error(
    result: Result<(), (c_int, String)>,
    error: &mut ErrorOut<'_>,
) -> c_int {
    match result {
        Ok(()) => {
            error.clear();
            IOM_OK
        }
        Err((code, message)) => {
            error.set(&message);
            code
        }
    }
}

/// The return code and message of an action that was not taken.
pub(super) fn action_failure(e: ActionError) -> (c_int, String) {
    let code = match e {
        ActionError::Invalid(_) => IOM_ERR_INVALID_ARGUMENT,
        _ => IOM_ERR_REJECTED,
    };
    (code, e.to_string())
}
