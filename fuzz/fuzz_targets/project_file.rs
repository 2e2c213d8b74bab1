//! The host's project file parser (`wsio_host::project`) and the checks `wsio run` makes before
//! anything starts: structure, the manifest, then each wire's trigger
//! properties compiled and each action's properties parsed by the module.
//! Arbitrary text must give a project or errors with a line, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsio::Action;
use wsio::MANIFEST_TOML;
use wsio::PreparedTrigger;
use wsio::Properties;
use wsio_fuzz::neutralize_paths;

use wsio_host::manifest::ModuleManifest;
use wsio_host::project::{Project, properties_json};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let project = match Project::parse("fuzz.toml", text) {
        Ok(project) => project,
        Err(e) => {
            let shown = e.to_string();
            assert!(shown.starts_with("fuzz.toml"), "{shown}");
            assert!(
                e.line <= text.lines().count() + 1,
                "line {} past the end: {shown}",
                e.line
            );
            return;
        }
    };
    for e in project.check_structure() {
        assert!(
            e.line <= text.lines().count() + 1,
            "line {} past the end: {e}",
            e.line
        );
    }
    let manifest = ModuleManifest::parse(MANIFEST_TOML).expect("the module's manifest parses");
    for e in project.check_against_manifests(|_| Some(&manifest)) {
        assert!(
            e.line <= text.lines().count() + 1,
            "line {} past the end: {e}",
            e.line
        );
    }
    // What the module then checks: instance properties, trigger
    // properties, action properties (with a placeholder variable).
    for instance in &project.instances {
        let mut json = serde_json::Value::Object(properties_json(&instance.properties));
        neutralize_paths(&mut json);
        let _ = Properties::from_json(&json);
    }
    for wire in &project.wires {
        let json = serde_json::Value::Object(properties_json(&wire.when.properties));
        let _ = PreparedTrigger::prepare(wire.when.trigger.get_ref(), &json);
    }
    for (_, action) in project.actions() {
        let json = serde_json::Value::Object(properties_json(&action.properties));
        let _ = Action::parse(action.action.get_ref(), &json, &["variable 1"]);
    }
});
