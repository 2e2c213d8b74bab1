//! What a module tells the host, on the module's thread: the C callbacks
//! the host registers (`iom_host_callbacks`) copy what they are given into
//! an owned [`ModuleEvent`] and hand it to the instance's [`EventSink`] (the
//! host's queue), never calling back into the module (a controller's
//! playback must not stall on a module).

use std::ffi::{CStr, c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};

use iom::{
    IOM_LOG_CRITICAL, IOM_LOG_EXTENDED, IOM_LOG_NORMAL, IOM_LOG_TERSE, IOM_LOG_VERBOSE, IomLogLevel,
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

/// Something a module told the host, copied out of the callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleEvent {
    TriggerFired {
        instance_id: u64,
        trigger: String,
        data: Vec<u8>,
        /// IOM_DATA_BINARY etc., for PreparedTrigger::test.
        flags: u32,
    },
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

/// Where an instance's callbacks deliver events. Called on the module's
/// thread: it must return at once. The host's sinks push into the engine's
/// queue and call no module function (the engine logs and records every
/// event, which is not work for the module's thread).
pub type EventSink = Box<dyn Fn(ModuleEvent) + Send + Sync>;

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

/// Delivers an event to the sink behind `user_data`. Panics must not unwind
/// into the module's C frames, so they are caught and the event is lost
/// (a sink that panics is a host bug; the alternative is an abort).
///
/// # Safety
/// `user_data` is the `*const EventSink` that `Module::create_instance` put
/// in the callbacks struct, still alive (see `Instance`).
unsafe fn deliver(user_data: *mut c_void, make: impl FnOnce() -> ModuleEvent) {
    if user_data.is_null() {
        return;
    }
    // SAFETY: per the caller's contract, user_data points at the instance's
    // boxed EventSink, which outlives every callback (freed only after
    // iom_instance_destroy returned). `Fn` + `Sync` allows a shared call.
    let sink = unsafe { &*(user_data as *const EventSink) };
    let _ = catch_unwind(AssertUnwindSafe(|| sink(make())));
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
    unsafe { fire(user_data, instance_id, trigger, data, len, flags) }
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
    unsafe { fire(user_data, instance_id, trigger, data, len, 0) }
}

/// Both trigger callbacks.
unsafe fn fire(
    user_data: *mut c_void,
    instance_id: u64,
    trigger: *const c_char,
    data: *const u8,
    len: usize,
    flags: u32,
) {
    // SAFETY: user_data is ours (set in Module::create_instance); `trigger`
    // is a NUL-terminated string and `data` points at `len` bytes, both valid
    // during this call (header, iom_host_callbacks).
    unsafe {
        deliver(user_data, || ModuleEvent::TriggerFired {
            instance_id,
            trigger: borrowed_string(trigger),
            data: if data.is_null() || len == 0 {
                Vec::new()
            } else {
                std::slice::from_raw_parts(data, len).to_vec()
            },
            flags,
        })
    }
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
