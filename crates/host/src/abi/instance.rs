//! A running module instance: actions, status and network, each call made
//! under a lock that no call can outlive the instance's destruction.

use std::ffi::{CStr, c_char, c_int};
use std::ptr;
use std::sync::{Arc, RwLock};

use iom::{IOM_OK, IomInstance, IomStr};

use super::errors::{CallError, CallErrorKind, c_string, destroy_refusal};
use super::events::EventSink;
use super::library::Api;
use super::prepared::PreparedAction;

/// A running module instance. Dropping it destroys it (the module closes its
/// connection with 1000 and returns once no callback can arrive any more).
pub struct Instance {
    pub(super) api: Arc<Api>,
    pub(super) id: u64,
    /// NULL once destroyed. Calls take the read side (the header allows
    /// concurrent calls), `destroy` the write side, so no call can race with
    /// or follow the destruction.
    pub(super) handle: RwLock<*mut IomInstance>,
    /// The `user_data` of this instance's callbacks (from `Box::into_raw`).
    pub(super) sink: *mut Arc<dyn EventSink>,
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
        // SAFETY: `error` is what the call stored, freed only here.
        unsafe { self.api.result(code, error) }
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
            // SAFETY: `error` is what the call stored, freed only here.
            return Err(CallError::invalid(unsafe { self.api.take_error(error) }));
        }
        if !error.is_null() {
            // SAFETY: as above.
            let _ = unsafe { self.api.take_error(error) };
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
        // SAFETY: no error string (the function has no `error` argument).
        unsafe { self.api.result(code, ptr::null_mut()) }
    }

    /// Flow control: the host has room again for triggers it refused
    /// (`iom_instance_resume`); returns at once. Nothing to do for a module
    /// without flow control (it never has a trigger refused).
    pub fn resume(&self) -> Result<(), CallError> {
        let Some(resume) = self.api.instance_resume else {
            return Ok(());
        };
        let handle = self.handle.read().unwrap_or_else(|e| e.into_inner());
        if handle.is_null() {
            return Err(self.destroyed());
        }
        // SAFETY: live handle under the read lock.
        let code = unsafe { resume(*handle) };
        // SAFETY: no error string (the function has no `error` argument).
        unsafe { self.api.result(code, ptr::null_mut()) }
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

    fn destroyed(&self) -> CallError {
        CallError {
            kind: CallErrorKind::Destroyed,
            message: "the instance has been destroyed (the host is shutting down)".to_string(),
        }
    }
}

/// Borrowed byte ranges for `iom_str` arrays, valid while `values` lives.
pub(super) fn iom_strs(values: &[Vec<u8>]) -> Vec<IomStr> {
    values.iter().map(|v| IomStr::of(v)).collect()
}

/// NULL for an empty array, as the header allows.
pub(super) fn slice_ptr(values: &[IomStr]) -> *const IomStr {
    if values.is_empty() {
        ptr::null()
    } else {
        values.as_ptr()
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
