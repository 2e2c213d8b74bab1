//! The host: what a controller receives from its instances (triggers,
//! status changes, log lines), as a trait the driver calls. Defined below
//! the driver and the instance so both can use it without importing each
//! other; the C ABI implements it over the controller's callbacks.

use crate::status::StatusVariable;
use crate::vocabulary::{LogLevel, Trigger};

/// What the controller receives from an instance. Called from the module's
/// driver thread; implementations must return quickly (no other instance is
/// served meanwhile). They may run actions on any instance
/// ([`Instance::action`](crate::Instance::action) and friends only queue the
/// work), so a wire can run right inside `fire_trigger`; dropping an
/// instance there only starts its close (see
/// [`Instance::shutdown`](crate::Instance::shutdown)). Queue anything slow.
pub trait Host: Send + Sync + 'static {
    /// A trigger fired with its data (the message for Messages Received, the
    /// reason for Disconnected and Gave Up, empty otherwise). `binary`: the
    /// message was a binary frame (data is its hex, or its text with Binary
    /// As Text); pass it on to
    /// [`PreparedTrigger::variables`](crate::PreparedTrigger::variables).
    fn fire_trigger(&self, trigger: Trigger, data: &[u8], binary: bool);
    /// Flow control: like `fire_trigger`, but the host may answer `false`
    /// (it cannot take the event now). The instance then holds the event
    /// and every later trigger behind it, stops reading its connection and
    /// suspends its keep-alive, until [`Instance::resume_triggers`](crate::Instance::resume_triggers)
    /// is called; then it offers them again, in order. The default takes
    /// every event (`fire_trigger`).
    fn try_fire_trigger(&self, trigger: Trigger, data: &[u8], binary: bool) -> bool {
        self.fire_trigger(trigger, data, binary);
        true
    }
    /// A status variable changed.
    fn status_changed(&self, variable: &StatusVariable);
    /// A log line. Extended-level lines come only with Extended Logging or
    /// Log Comms on; nothing logged ever contains a secret.
    fn log(&self, level: LogLevel, message: &str);
}
