//! What a module tells the host, on the module's thread: the C callbacks
//! the host registers (`iom_host_callbacks`) hand what they are given to the
//! instance's [`EventSink`]: a fired trigger as borrowed bytes (the sink
//! tests it where it arrives and copies only what it keeps), status changes
//! and log lines as an owned [`ModuleEvent`]. With `fire_trigger_flow` the
//! sink's answer goes back to the module: a refused trigger is held there
//! (flow control) rather than lost.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};

use iom::{
    IOM_ERR_REJECTED, IOM_LOG_CRITICAL, IOM_LOG_EXTENDED, IOM_LOG_NORMAL, IOM_LOG_TERSE,
    IOM_LOG_VERBOSE, IOM_OK, IomLogLevel,
};

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
    fn from_c(level: IomLogLevel) -> ModuleLogLevel {
        match level {
            IOM_LOG_CRITICAL => ModuleLogLevel::Critical,
            IOM_LOG_TERSE => ModuleLogLevel::Terse,
            IOM_LOG_NORMAL => ModuleLogLevel::Normal,
            IOM_LOG_EXTENDED => ModuleLogLevel::Extended,
            IOM_LOG_VERBOSE => ModuleLogLevel::Verbose,
            // Unknown levels are kept but shown only to those who asked for
            // everything.
            _ => ModuleLogLevel::Debug,
        }
    }
}

/// A status change or log line a module told the host, copied out of the
/// callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleEvent {
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

/// A fired trigger as the callback got it, borrowed for the call.
#[derive(Debug, Clone, Copy)]
pub struct FiredTrigger<'a> {
    pub instance_id: u64,
    pub trigger: &'a str,
    pub data: &'a [u8],
    /// IOM_DATA_BINARY etc., for PreparedTrigger::test.
    pub flags: u32,
    /// The module called `fire_trigger_flow`: it holds the event if the
    /// sink refuses it. Otherwise the sink must take it (or count it lost).
    pub can_hold: bool,
}

/// Where an instance's callbacks deliver events. Called on the module's
/// thread: it must return at once, and may call the module only through
/// functions that never wait (a trigger test, an action).
pub trait EventSink: Send + Sync {
    /// A trigger fired. `false`: refused, the module holds it (only when
    /// `can_hold`); the host must call `Instance::resume` later.
    fn trigger_fired(&self, fired: FiredTrigger<'_>) -> bool;
    /// A status change or a log line.
    fn event(&self, event: ModuleEvent);
}

/// What the callbacks' `user_data` points at: a thin pointer to the sink.
pub type SinkBox = Box<std::sync::Arc<dyn EventSink>>;

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

/// The sink behind `user_data`.
///
/// # Safety
/// `user_data` is NULL or the `SinkBox` pointer that
/// `Module::create_instance` put in the callbacks struct, still alive (see
/// `Instance`).
unsafe fn sink<'a>(user_data: *mut c_void) -> Option<&'a dyn EventSink> {
    if user_data.is_null() {
        return None;
    }
    // SAFETY: per the caller's contract, user_data points at the instance's
    // boxed sink, which outlives every callback (freed only after
    // iom_instance_destroy returned); `Sync` allows a shared call.
    Some(unsafe { &**(user_data as *const std::sync::Arc<dyn EventSink>) })
}

/// Delivers a status change or log line to the sink behind `user_data`.
/// Panics must not unwind into the module's C frames, so they are caught
/// (a sink that panics is a host bug; the alternative is an abort).
///
/// # Safety
/// As for [`sink`].
unsafe fn deliver(user_data: *mut c_void, make: impl FnOnce() -> ModuleEvent) {
    // SAFETY: passed on from the caller.
    if let Some(sink) = unsafe { sink(user_data) } {
        let _ = catch_unwind(AssertUnwindSafe(|| sink.event(make())));
    }
}

/// `fire_trigger_flow` callback: the sink may refuse, the module holds.
pub(super) unsafe extern "C" fn on_fire_trigger_flow(
    user_data: *mut c_void,
    instance_id: u64,
    trigger: *const c_char,
    data: *const u8,
    len: usize,
    flags: u32,
) -> c_int {
    // SAFETY: as in on_fire_trigger.
    if unsafe { fire(user_data, instance_id, trigger, data, len, flags, true) } {
        IOM_OK
    } else {
        IOM_ERR_REJECTED
    }
}

/// `fire_trigger_ex` callback: `fire_trigger` with flags.
pub(super) unsafe extern "C" fn on_fire_trigger_ex(
    user_data: *mut c_void,
    instance_id: u64,
    trigger: *const c_char,
    data: *const u8,
    len: usize,
    flags: u32,
) {
    // SAFETY: as in on_fire_trigger.
    unsafe { fire(user_data, instance_id, trigger, data, len, flags, false) };
}

/// `fire_trigger` callback.
pub(super) unsafe extern "C" fn on_fire_trigger(
    user_data: *mut c_void,
    instance_id: u64,
    trigger: *const c_char,
    data: *const u8,
    len: usize,
) {
    // SAFETY: passed on unchanged.
    unsafe { fire(user_data, instance_id, trigger, data, len, 0, false) };
}

/// The three trigger callbacks: whether the sink took the event. A sink
/// that panics took it (the panic is caught: it must not unwind into the
/// module, and holding on a host bug could stall the instance for good).
#[allow(clippy::too_many_arguments)]
unsafe fn fire(
    user_data: *mut c_void,
    instance_id: u64,
    trigger: *const c_char,
    data: *const u8,
    len: usize,
    flags: u32,
    can_hold: bool,
) -> bool {
    // SAFETY: user_data is ours (set in Module::create_instance).
    let Some(sink) = (unsafe { sink(user_data) }) else {
        return true;
    };
    // SAFETY: `trigger` is NULL or a NUL-terminated string and `data`
    // points at `len` bytes, both valid during this call (header,
    // iom_host_callbacks); both are borrowed only for it.
    let trigger = if trigger.is_null() {
        std::borrow::Cow::Borrowed("")
    } else {
        unsafe { CStr::from_ptr(trigger) }.to_string_lossy()
    };
    let data: &[u8] = if data.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: see above.
        unsafe { std::slice::from_raw_parts(data, len) }
    };
    catch_unwind(AssertUnwindSafe(|| {
        sink.trigger_fired(FiredTrigger {
            instance_id,
            trigger: &trigger,
            data,
            flags,
            can_hold,
        })
    }))
    .unwrap_or(true)
}

/// `status_changed` callback.
pub(super) unsafe extern "C" fn on_status_changed(
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
pub(super) unsafe extern "C" fn on_log(
    user_data: *mut c_void,
    instance_id: u64,
    level: IomLogLevel,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_levels_map_from_the_c_enum() {
        assert_eq!(ModuleLogLevel::from_c(0), ModuleLogLevel::Critical);
        assert_eq!(ModuleLogLevel::from_c(3), ModuleLogLevel::Extended);
        assert_eq!(ModuleLogLevel::from_c(99), ModuleLogLevel::Debug);
    }
}
