//! Running the module's actions on an instance through its Rust API, the
//! way a controller's wire does: by manifest name, with JSON properties.

use serde_json::json;
use wsio::{ActionError, Instance};

/// Send Message of a binary message written as hex (`"00 ff 7e 41"`).
pub fn send_hex(instance: &Instance, hex: &str) -> Result<(), ActionError> {
    instance.action(
        "Send Message",
        &json!({"Message Type": "Binary", "Message": hex}),
        &[] as &[&str],
    )
}
