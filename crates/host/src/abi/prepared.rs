//! What a host compiles once and runs per message: prepared triggers
//! (`iom_trigger_prepare`, tested per fired message) and prepared actions
//! (`iom_action_prepare`, run per wire).

use std::ffi::c_char;
use std::fmt;
use std::ptr;
use std::sync::Arc;

use iom::{IomPreparedAction, IomPreparedTrigger, IomVariables};

use super::errors::CallError;
use super::instance::{iom_strs, slice_ptr};
use super::library::{Api, PreparedActionApi};

/// A project trigger's compiled test (`iom_trigger_prepare`), freed on drop.
pub struct PreparedTrigger {
    pub(super) api: Arc<Api>,
    pub(super) raw: *mut IomPreparedTrigger,
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
        let mut variables: *mut IomVariables = ptr::null_mut();
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

    /// What each variable is, variable 1 first ("Message", "room (regex
    /// group 1)", …), as the module says (`iom_trigger_variable_names`).
    /// None when the module does not export it or answers no JSON list.
    pub fn variable_names(&self) -> Option<Vec<String>> {
        let names = self.api.trigger_variable_names?;
        // SAFETY: `raw` is live until Drop.
        let text = unsafe { names(self.raw) };
        // SAFETY: a string the module returned for us to free, freed there.
        let text = unsafe { self.api.take_string(text) }?;
        serde_json::from_str(&text).ok()
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
    pub(super) api: Arc<Api>,
    pub(super) calls: PreparedActionApi,
    pub(super) raw: *mut IomPreparedAction,
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
    /// `variables[0]`). Returns at once, like [`Instance::action`](super::Instance::action).
    pub fn run(&self, variables: &[Vec<u8>]) -> Result<(), CallError> {
        let variables = iom_strs(variables);
        let mut error: *mut c_char = ptr::null_mut();
        // SAFETY: `raw` is live until Drop; the variables array and the
        // ranges it borrows are valid for the call.
        let code = unsafe {
            (self.calls.run)(self.raw, slice_ptr(&variables), variables.len(), &mut error)
        };
        // SAFETY: `error` is what the call stored, freed only here.
        unsafe { self.api.result(code, error) }
    }
}

impl Drop for PreparedAction {
    fn drop(&mut self) {
        // SAFETY: freed once; `api` keeps the library loaded until after this.
        unsafe { (self.calls.free)(self.raw) };
    }
}
