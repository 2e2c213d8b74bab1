//! The host as the instance sees it: the C callbacks of `iom_host_callbacks`
//! behind the instance's [`Host`] trait, so the driver reports triggers,
//! status and log lines without knowing it talks to C.

use std::ffi::{CStr, CString};
use std::sync::OnceLock;

use iom::{IOM_DATA_BINARY, IOM_ERR_REJECTED, IomHostCallbacks, IomLogLevel};

use crate::host::Host;
use crate::status::StatusVariable;
use crate::vocabulary::LogLevel;
use crate::vocabulary::Trigger;

/// The C callbacks of one instance, as a [`Host`].
pub(super) struct CHost {
    pub(super) callbacks: IomHostCallbacks,
    pub(super) instance_id: u64,
}

// SAFETY: iom.h requires the host's callbacks and user_data to be usable
// from the module's thread; all calls are made from the one driver thread.
unsafe impl Send for CHost {}
// SAFETY: as above; CHost itself is never mutated after creation.
unsafe impl Sync for CHost {}

/// A C string for text that might hold NUL (a message, a reason).
pub(super) fn c_text(text: &str) -> CString {
    CString::new(text)
        .unwrap_or_else(|_| CString::new(text.replace('\0', "\u{FFFD}")).unwrap_or_default())
}

/// The trigger's name as a C string: looked up per fired message, so by
/// index (`Trigger::ALL` is in declaration order), not by search.
fn trigger_c_name(trigger: Trigger) -> &'static CStr {
    static NAMES: OnceLock<[CString; Trigger::ALL.len()]> = OnceLock::new();
    let names = NAMES.get_or_init(|| Trigger::ALL.map(|t| c_text(t.name())));
    names
        .get(trigger as usize)
        .map_or(c"", |name| name.as_c_str())
}

impl Host for CHost {
    fn fire_trigger(&self, trigger: Trigger, data: &[u8], binary: bool) {
        if let Some(f) = self.callbacks.fire_trigger_ex {
            let flags = if binary { IOM_DATA_BINARY } else { 0 };
            // SAFETY: the host gave us this function (struct_size covered
            // it); every pointer is valid for the duration of the call.
            unsafe {
                f(
                    self.callbacks.user_data,
                    self.instance_id,
                    trigger_c_name(trigger).as_ptr(),
                    data.as_ptr(),
                    data.len(),
                    flags,
                )
            }
        } else if let Some(f) = self.callbacks.fire_trigger {
            // SAFETY: the host gave us this function for exactly this call;
            // every pointer is valid for the duration of the call.
            unsafe {
                f(
                    self.callbacks.user_data,
                    self.instance_id,
                    trigger_c_name(trigger).as_ptr(),
                    data.as_ptr(),
                    data.len(),
                )
            }
        }
    }

    fn try_fire_trigger(&self, trigger: Trigger, data: &[u8], binary: bool) -> bool {
        let Some(f) = self.callbacks.fire_trigger_flow else {
            self.fire_trigger(trigger, data, binary);
            return true;
        };
        let flags = if binary { IOM_DATA_BINARY } else { 0 };
        // SAFETY: the host gave us this function (struct_size covered it);
        // every pointer is valid for the duration of the call.
        let code = unsafe {
            f(
                self.callbacks.user_data,
                self.instance_id,
                trigger_c_name(trigger).as_ptr(),
                data.as_ptr(),
                data.len(),
                flags,
            )
        };
        // Only an explicit refusal holds the event: any other answer is a
        // host bug, and holding on it could stall the instance for good.
        code != IOM_ERR_REJECTED
    }

    fn status_changed(&self, variable: &StatusVariable) {
        if let Some(f) = self.callbacks.status_changed {
            let (key, value, stamp) = (
                c_text(variable.key),
                c_text(&variable.value),
                c_text(&variable.timestamp),
            );
            // SAFETY: as in fire_trigger; the CStrings outlive the call.
            unsafe {
                f(
                    self.callbacks.user_data,
                    self.instance_id,
                    key.as_ptr(),
                    value.as_ptr(),
                    stamp.as_ptr(),
                )
            }
        }
    }

    fn log(&self, level: LogLevel, message: &str) {
        if let Some(f) = self.callbacks.log {
            let message = c_text(message);
            // SAFETY: as in fire_trigger; the CString outlives the call.
            unsafe {
                f(
                    self.callbacks.user_data,
                    self.instance_id,
                    level as IomLogLevel,
                    message.as_ptr(),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_trigger_fires_with_its_own_name() {
        for trigger in Trigger::ALL {
            assert_eq!(trigger_c_name(trigger).to_str(), Ok(trigger.name()));
        }
    }
}
