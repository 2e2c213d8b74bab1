//! The project file checks, one mistake per test, as the messages read.

use super::*;

const DEMO: &str = include_str!("../../../../fixtures/projects/demo.toml");

fn manifest() -> ModuleManifest {
    ModuleManifest::parse(include_str!("../../../wsio/module.toml")).unwrap()
}

fn check(text: &str) -> Vec<String> {
    let project = match Project::parse("p.toml", text) {
        Ok(p) => p,
        Err(e) => return vec![e.to_string()],
    };
    let mut errors = project.check_structure();
    if errors.is_empty() {
        let manifest = manifest();
        errors = project.check_against_manifests(|_| Some(&manifest));
    }
    errors.iter().map(ToString::to_string).collect()
}

#[test]
fn the_demo_project_is_valid() {
    assert_eq!(check(DEMO), Vec::<String>::new());
}

#[test]
fn then_takes_one_action_or_an_array() {
    let text = r#"
[[instance]]
name = "a"
[[wire]]
when = { instance = "a", trigger = "Connected" }
then = { instance = "a", action = "Send Message", properties = { Message = "x" } }
[[wire]]
when = { instance = "a", trigger = "Connected" }
then = [ { instance = "a", action = "Connect" }, { instance = "a", action = "Disconnect" } ]
"#;
    let project = Project::parse("p.toml", text).unwrap();
    assert_eq!(project.wires[0].then.0.len(), 1);
    assert_eq!(project.wires[1].then.0.len(), 2);
    assert_eq!(project.wires[1].then.0[1].action.get_ref(), "Disconnect");
    let json = properties_json(&project.wires[0].then.0[0].properties);
    assert_eq!(json["Message"], "x");
}

#[test]
fn syntax_errors_carry_line_and_column() {
    let errors = check("[[instance]]\nname = \"a\"\nproperties = { Port = }\n");
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with("p.toml:3:"), "{errors:?}");
}

#[test]
fn unknown_fields_are_refused_with_their_line() {
    let errors = check("[[instance]]\nname = \"a\"\nmodul = \"x.so\"\n");
    assert!(errors[0].starts_with("p.toml:3:"), "{errors:?}");
    assert!(errors[0].contains("modul"), "{errors:?}");
}

#[test]
fn an_undeclared_instance_is_named_with_the_declared_ones() {
    let text = "[[instance]]\nname = \"piesocket\"\n\n[[wire]]\nwhen = { instance = \"piesocket\", trigger = \"Connected\" }\nthen = { instance = \"piesocket\", action = \"Connect\" }\n\n[[wire]]\nwhen = { instance = \"piesoket\", trigger = \"Connected\" }\nthen = { instance = \"piesocket\", action = \"Connect\" }\n";
    let errors = check(text);
    assert_eq!(
        errors,
        [
            "p.toml:9: wire 2 names instance \"piesoket\" which is not declared; declared instances: \"piesocket\""
        ]
    );
}

#[test]
fn duplicate_instance_names_are_refused() {
    let errors = check("[[instance]]\nname = \"a\"\n[[instance]]\nname = \"a\"\n");
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("p.toml:4: instance name \"a\" is declared twice"),
        "{errors:?}"
    );
}

#[test]
fn unknown_triggers_actions_and_properties_list_what_exists() {
    let text = r#"[[instance]]
name = "a"
[[wire]]
when = { instance = "a", trigger = "Message Received" }
then = { instance = "a", action = "Send Message", properties = { Mesage = "x" } }
[[startup]]
instance = "a"
action = "Conect"
"#;
    let errors = check(text);
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors[0].starts_with("p.toml:4: wire 1: instance \"a\" (WebSocket Client) has no trigger \"Message Received\"; its triggers: \"Connected\""), "{errors:?}");
    assert_eq!(
        errors[1],
        "p.toml:5: wire 1: unknown action \"Send Message\" property \"Mesage\"; did you mean \"Message\"?"
    );
    assert!(
        errors[2].starts_with(
            "p.toml:8: startup 1: instance \"a\" (WebSocket Client) has no action \"Conect\""
        ),
        "{errors:?}"
    );
}

#[test]
fn property_names_off_by_case_or_a_typo_get_a_suggestion_everywhere() {
    let text = r#"[[instance]]
name = "a"
[instance.properties]
hostname = "127.0.0.1"
[[wire]]
when = { instance = "a", trigger = "Messages Received", properties = { "match string" = "x" } }
then = { instance = "a", action = "Send Message", properties = { Message = "x", Colour = "red" } }
[[startup]]
instance = "a"
action = "Connect"
properties = { "Bearer token" = "t" }
"#;
    assert_eq!(
        check(text),
        [
            "p.toml:3: instance \"a\": unknown instance property \"hostname\"; did you mean \"Hostname\"?",
            "p.toml:6: wire 1: unknown trigger \"Messages Received\" property \"match string\"; did you mean \"Match String\"?",
            "p.toml:7: wire 1: unknown action \"Send Message\" property \"Colour\"; accepted: \"Message\", \"Message Type\"",
            "p.toml:11: startup 1: unknown action \"Connect\" property \"Bearer token\"; did you mean \"Bearer Token\"?",
        ]
    );
}

#[test]
fn a_send_message_without_a_message_is_refused() {
    let text = r#"[[instance]]
name = "a"
[[wire]]
when = { instance = "a", trigger = "Connected" }
then = { instance = "a", action = "Send Message" }
[[startup]]
instance = "a"
action = "Send Message"
properties = { Message = "  ", "Message Type" = "Text" }
"#;
    assert_eq!(
        check(text),
        [
            "p.toml:5: wire 1: action \"Send Message\" needs property \"Message\", and it must not be empty",
            "p.toml:9: startup 1: action \"Send Message\" needs property \"Message\", and it must not be empty",
        ]
    );
}

/// Placeholder errors of `text`, with `counts[w]` variables for wire w.
fn check_placeholders(text: &str, counts: &[usize]) -> Vec<String> {
    let project = Project::parse("p.toml", text).unwrap();
    let manifest = manifest();
    let mut errors = Vec::new();
    for (w, wire) in project.wires.iter().enumerate() {
        let trigger = manifest.trigger(wire.when.trigger.get_ref()).unwrap();
        errors.extend(project.check_placeholders(w, trigger, counts[w]));
    }
    errors.iter().map(ToString::to_string).collect()
}

#[test]
fn placeholders_beyond_the_trigger_variables_are_refused_naming_those_there_are() {
    let text = r#"[[instance]]
name = "a"
[[wire]]
when = { instance = "a", trigger = "Messages Received" }
then = { instance = "a", action = "Send Message", properties = { Message = "<1> <2> <3> <3> <b>" } }
[[wire]]
when = { instance = "a", trigger = "Messages Received", properties = { "Match Mode" = "Regex", "Match String" = "(a)(b)" } }
then = { instance = "a", action = "Send Message", properties = { Message = "<4> <5>" } }
[[wire]]
when = { instance = "a", trigger = "Connected" }
then = [{ instance = "a", action = "Connect" }, { instance = "a", action = "Send Message", properties = { Message = "hi <1>" } }]
[[wire]]
when = { instance = "a", trigger = "Disconnected" }
then = { instance = "a", action = "Send Message", properties = { Message = "<0> <1> <99999999999999999999999>" } }
"#;
    assert_eq!(
        check_placeholders(text, &[2, 4, 0, 1]),
        [
            "p.toml:5: wire 1: action \"Send Message\" property \"Message\" uses <3>, but trigger \"Messages Received\" gives 2 variables here: <1> \"Message\", <2> \"Message Type\"",
            "p.toml:8: wire 2: action \"Send Message\" property \"Message\" uses <5>, but trigger \"Messages Received\" gives 4 variables here: <1> \"Message\", <2> \"Capture or Value\", <3>, <4> \"Message Type\"",
            "p.toml:11: wire 3, action 2: action \"Send Message\" property \"Message\" uses <1>, but trigger \"Connected\" gives no variables",
            "p.toml:14: wire 4: action \"Send Message\" property \"Message\" uses <0>, <99999999999999999999999>, but trigger \"Disconnected\" gives 1 variable here: <1> \"Reason\"",
        ]
    );
}

#[test]
fn property_types_are_checked_against_the_manifest() {
    let text = r#"[[instance]]
name = "a"
[[wire]]
when = { instance = "a", trigger = "Messages Received", properties = { "Match String" = 5 } }
then = { instance = "a", action = "Disconnect" }
"#;
    let errors = check(text);
    assert_eq!(
        errors,
        ["p.toml:4: wire 1: property \"Match String\" must be a string, got 5"]
    );
}

#[test]
fn an_empty_project_says_what_to_add() {
    let errors = check("");
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("p.toml: the project declares no instance"),
        "{errors:?}"
    );
}

#[test]
fn a_then_of_the_wrong_shape_is_explained() {
    let text = "[[instance]]\nname = \"a\"\n[[wire]]\nwhen = { instance = \"a\", trigger = \"Connected\" }\nthen = \"Connect\"\n";
    let errors = check(text);
    assert!(errors[0].starts_with("p.toml:5:"), "{errors:?}");
    assert!(errors[0].contains("an action {"), "{errors:?}");
}
