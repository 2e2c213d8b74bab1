//! The loop warning given when a project is checked (`POST /project/check`,
//! `PUT /project`): a wire whose action sends, on the wire's own instance,
//! a message that the same trigger would match again. Against a server that
//! echoes what it receives (the demo server with `notify_self=1`, many
//! brokers for their own topics) each answer fires the wire again: a loop
//! that runs as fast as the link allows. It is a warning, not a refusal: a
//! server that does not echo makes the same wire harmless.
//!
//! Nothing of matching or substitution is done here: the module tests the
//! text with the wire's own prepared trigger, and fills the placeholders of
//! the action with `iom_action_preview`. Which triggers fire on received
//! messages (`on_message = true`) and which action property is sent
//! (`sends = "Message"`) the module's manifest says.
//!
//! Two texts are tested per action: the sent property as written (with its
//! placeholders, `got <1>`), and, for each sample message the wire's
//! trigger matches (the page sends the instance's Last Received or what the
//! user pasted), that property after substitution (`got temp 21`).

use serde_json::{Map, Value};

use crate::abi::Module;
use crate::project::{Project, properties_json};
use crate::state::shorten_to;

/// A message to test a wire with, as the page's live test takes it.
#[derive(Debug, Clone)]
pub struct LoopSample {
    /// Index into `project.wires` (0-based).
    pub wire: usize,
    pub message: Vec<u8>,
    pub binary: bool,
}

/// A wire that would loop against an echoing server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopWarning {
    /// Index into `project.wires` (0-based).
    pub wire: usize,
    /// Index into the wire's actions (0-based).
    pub action: usize,
    /// The action property whose text loops (`Message`).
    pub property: String,
    /// Says which wire, what it sends, and the loop it would make.
    pub message: String,
}

/// Longest sent text quoted in a warning.
const QUOTED: usize = 60;

/// The loop warnings of `project`. `module_of` gives an instance's module
/// by instance name; a wire whose module or trigger cannot be prepared is
/// skipped (the project's validation reports it).
pub fn loop_warnings<'m>(
    project: &Project,
    module_of: impl Fn(&str) -> Option<&'m Module>,
    samples: &[LoopSample],
) -> Vec<LoopWarning> {
    let mut warnings = Vec::new();
    for (w, wire) in project.wires.iter().enumerate() {
        let instance = wire.when.instance.get_ref();
        let trigger = wire.when.trigger.get_ref();
        let Some(module) = module_of(instance) else {
            continue;
        };
        let manifest = module.manifest();
        if !manifest.trigger(trigger).is_some_and(|t| t.on_message) {
            continue;
        }
        let trigger_json = Value::Object(properties_json(&wire.when.properties)).to_string();
        let Ok(test) = module.prepare_trigger(trigger, &trigger_json) else {
            continue;
        };
        let matches = |text: &[u8]| matches!(test.test(text, 0), Ok(Some(_)));
        // The variables of each sample the trigger matches.
        let matched: Vec<Vec<Vec<u8>>> = samples
            .iter()
            .filter(|s| s.wire == w)
            .filter_map(|s| {
                let flags = if s.binary { iom::IOM_DATA_BINARY } else { 0 };
                test.test(&s.message, flags).ok().flatten()
            })
            .collect();
        for (a, (_, action)) in project.wire_actions(w).into_iter().enumerate() {
            if action.instance.get_ref() != instance {
                continue;
            }
            let name = action.action.get_ref();
            let Some(sent) = manifest.action(name).and_then(|a| a.sends.clone()) else {
                continue;
            };
            let properties = properties_json(&action.properties);
            let written = properties.get(&sent).and_then(Value::as_str).unwrap_or("");
            let looping_text = if !written.is_empty() && matches(written.as_bytes()) {
                Some(written.to_string())
            } else {
                matched.iter().find_map(|variables| {
                    let text = filled(module, name, &properties, &sent, variables)?;
                    matches(text.as_bytes()).then_some(text)
                })
            };
            if let Some(text) = looping_text {
                warnings.push(LoopWarning {
                    wire: w,
                    action: a,
                    property: sent.clone(),
                    message: format!(
                        "wire {}: {name} on {instance:?} sends {:?}, which this wire's trigger \
                         ({trigger}) matches again: against a server that echoes what it \
                         receives (such as the demo server with notify_self=1) every answer \
                         fires the wire again, a loop ({trigger} → {name} → echo → {trigger} \
                         …); change the match so that the answer does not match, or answer \
                         on another instance",
                        w + 1,
                        shorten_to(text.as_bytes(), QUOTED),
                    ),
                });
            }
        }
    }
    warnings
}

/// The sent property of an action after the module filled its
/// placeholders with `variables`; None when the module has no preview or
/// refuses these variables.
fn filled(
    module: &Module,
    action: &str,
    properties: &Map<String, Value>,
    sent: &str,
    variables: &[Vec<u8>],
) -> Option<String> {
    let json = Value::Object(properties.clone()).to_string();
    let preview = module.preview_action(action, &json, variables)?.ok()?;
    preview.get(sent)?.as_str().map(str::to_string)
}
