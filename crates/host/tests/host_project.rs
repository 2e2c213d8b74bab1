//! The `wsio run` project file checks, seen as a user sees them: run the
//! binary on a broken project and read what it says. Every mistake is
//! reported with the file and line, the process exits 1, and nothing starts
//! (no "status page:" line). These checks run before any module is loaded,
//! so they need no working module. `wsio check` makes the same checks,
//! with the same messages, and connects nothing.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};

use support::{EchoServer, project_instance};

/// A project file in a directory of its own, removed afterwards.
struct ProjectDir {
    dir: PathBuf,
}

impl ProjectDir {
    fn new(test: &str) -> ProjectDir {
        let dir =
            std::env::temp_dir().join(format!("wsio-host-project-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        ProjectDir { dir }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for ProjectDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `wsio run <project>` from the project's directory, so messages name
/// the file as `project.toml`.
fn run(test: &str, text: &str) -> (i32, String, String) {
    wsio(
        test,
        text,
        &["run", "project.toml", "--http", "127.0.0.1:0"],
    )
}

/// Runs `wsio check <project>` as `run` does `wsio run`.
fn check(test: &str, text: &str) -> (i32, String, String) {
    wsio(test, text, &["check", "project.toml"])
}

fn wsio(test: &str, text: &str, args: &[&str]) -> (i32, String, String) {
    let dir = ProjectDir::new(test);
    dir.write("project.toml", text);
    let output: Output = Command::new(env!("CARGO_BIN_EXE_wsio"))
        .args(args)
        .current_dir(&dir.dir)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs a project that must be refused and returns its error lines.
fn refused(test: &str, text: &str) -> Vec<String> {
    let (code, stdout, stderr) = run(test, text);
    assert_eq!(code, 1, "exit code; stderr:\n{stderr}");
    assert!(
        !stdout.contains("status page:"),
        "nothing may start; stdout:\n{stdout}"
    );
    error_lines(&stderr)
}

fn error_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .map(|l| l["error: ".len()..].to_string())
        .collect()
}

#[test]
fn a_toml_syntax_error_names_line_and_column() {
    let errors = refused(
        "syntax",
        "[[instance]]\nname = \"a\"\n[instance.properties]\nHostname = \"127.0.0.1\nPort = 1\n",
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("project.toml:4:"), "{errors:?}");
}

#[test]
fn a_misspelt_key_is_refused_with_the_keys_that_exist() {
    let errors = refused(
        "misspelt",
        "[[instance]]\nname = \"a\"\n\n[[wire]]\nwhen = { instance = \"a\", trigger = \"Connected\" }\nthen = { instance = \"a\", acton = \"Connect\" }\n",
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("project.toml:6:"), "{errors:?}");
    assert!(errors[0].contains("unknown field `acton`"), "{errors:?}");
    assert!(errors[0].contains("`action`"), "{errors:?}");
}

#[test]
fn a_wire_naming_an_undeclared_instance_lists_the_declared_ones() {
    let errors = refused(
        "undeclared",
        r#"[[instance]]
name = "piesocket"
[instance.properties]
Hostname = "127.0.0.1"

[[wire]]
when = { instance = "piesocket", trigger = "Connected" }
then = { instance = "piesocket", action = "Send Message", properties = { Message = "hi" } }

[[wire]]
when = { instance = "piesoket", trigger = "Messages Received" }
then = { instance = "piesocket", action = "Send Message", properties = { Message = "pong: <1>" } }
"#,
    );
    assert_eq!(
        errors,
        [
            "project.toml:11: wire 2 names instance \"piesoket\" which is not declared; declared instances: \"piesocket\""
        ]
    );
}

#[test]
fn every_structural_mistake_is_reported_at_once_in_file_order() {
    let errors = refused(
        "several",
        r#"[[instance]]
name = "a"

[[instance]]
name = "a"

[[wire]]
when = { instance = "a", trigger = "Connected" }
then = [
  { instance = "a", action = "Connect" },
  { instance = "b", action = "Connect" },
]

[[startup]]
instance = "c"
action = "Connect"
"#,
    );
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors[0].starts_with("project.toml:5: instance name \"a\" is declared twice"),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with("project.toml:11: wire 1, action 2 names instance \"b\""),
        "{errors:?}"
    );
    assert!(
        errors[2].starts_with("project.toml:15: startup 1 names instance \"c\""),
        "{errors:?}"
    );
}

#[test]
fn then_must_be_an_action_or_a_list_of_actions() {
    let errors = refused(
        "then-shape",
        "[[instance]]\nname = \"a\"\n[[wire]]\nwhen = { instance = \"a\", trigger = \"Connected\" }\nthen = \"Connect\"\n",
    );
    assert!(errors[0].starts_with("project.toml:5:"), "{errors:?}");
    assert!(errors[0].contains("an action {"), "{errors:?}");
}

#[test]
fn an_empty_project_says_what_to_add() {
    let errors = refused("empty", "# nothing yet\n");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("project.toml: the project declares no instance"),
        "{errors:?}"
    );
}

#[test]
fn a_module_path_is_relative_to_the_project_and_load_errors_name_it() {
    let dir = ProjectDir::new("module-path");
    dir.write("not-a-module.so", "this is not a shared library\n");
    let project = dir.write(
        "project.toml",
        "[[instance]]\nname = \"a\"\nmodule = \"not-a-module.so\"\n",
    );
    // Run from elsewhere: the module is still found beside the project.
    let output = Command::new(env!("CARGO_BIN_EXE_wsio"))
        .args(["run", project.to_str().unwrap(), "--http", "127.0.0.1:0"])
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let expected = format!(
        "{}:3: instance \"a\": cannot load IO module {}",
        project.display(),
        dir.dir.join("not-a-module.so").display()
    );
    assert!(
        stderr.contains(&expected),
        "expected {expected:?} in:\n{stderr}"
    );
}

#[test]
fn a_missing_project_file_is_named() {
    let output = Command::new(env!("CARGO_BIN_EXE_wsio"))
        .args(["run", "no-such-project.toml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: cannot read the project file no-such-project.toml"),
        "{stderr}"
    );
}

#[test]
fn an_invalid_regex_or_json_pointer_stops_the_project_at_load_naming_the_wire() {
    let project = |match_mode: &str, match_string: &str| {
        format!(
            "[[instance]]\nname = \"a\"\n[instance.properties]\nHostname = \"127.0.0.1\"\n\n\
             [[wire]]\nwhen = {{ instance = \"a\", trigger = \"Messages Received\", properties = {{ \"Match Mode\" = \"{match_mode}\", \"Match String\" = '{match_string}' }} }}\n\
             then = {{ instance = \"a\", action = \"Disconnect\" }}\n"
        )
    };
    let errors = refused("regex", &project("Regex", "temp (\\d+"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("wire 1"), "{errors:?}");
    assert!(
        errors[0].contains("Match String is not a valid regular expression"),
        "{errors:?}"
    );
    let errors = refused("pointer", &project("JSON", "type == 1"));
    assert!(errors[0].contains("wire 1"), "{errors:?}");
    assert!(errors[0].contains("is not a JSON Pointer"), "{errors:?}");
}

#[test]
fn an_action_the_module_refuses_stops_the_project_at_load_naming_its_place() {
    // Valid against the manifest (a Message, a Message Type), refused by
    // the module when the action is compiled: "zz" is not hex.
    let project = "[[instance]]\nname = \"a\"\n[instance.properties]\nHostname = \"127.0.0.1\"\n\n\
         [[wire]]\nwhen = { instance = \"a\", trigger = \"Connected\" }\n\
         then = [{ instance = \"a\", action = \"Disconnect\" },\n\
         { instance = \"a\", action = \"Send Message\", properties = { Message = \"0a zz\", \"Message Type\" = \"Binary\" } }]\n\n\
         [[startup]]\ninstance = \"a\"\naction = \"Send Message\"\nproperties = { Message = \"0a 1\", \"Message Type\" = \"Binary\" }\n";
    let errors = refused("action", project);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with(
            "project.toml:9: wire 1, action 2: the module refused the action properties: "
        ),
        "{errors:?}"
    );
    assert!(errors[0].contains("hex"), "{errors:?}");
    assert!(
        errors[1]
            .starts_with("project.toml:14: startup 1: the module refused the action properties: "),
        "{errors:?}"
    );
    assert!(errors[1].contains("hex"), "{errors:?}");
}

#[test]
fn a_property_name_off_by_case_or_a_typo_is_refused_naming_the_one_meant() {
    let errors = refused(
        "did-you-mean",
        r#"[[instance]]
name = "a"
[instance.properties]
hostname = "127.0.0.1"

[[wire]]
when = { instance = "a", trigger = "Messages Received", properties = { "Match Strng" = "x" } }
then = { instance = "a", action = "Send Message", properties = { message = "x" } }
"#,
    );
    assert_eq!(
        errors,
        [
            r#"project.toml:3: instance "a": unknown instance property "hostname"; did you mean "Hostname"?"#,
            r#"project.toml:7: wire 1: unknown trigger "Messages Received" property "Match Strng"; did you mean "Match String"?"#,
            r#"project.toml:8: wire 1: unknown action "Send Message" property "message"; did you mean "Message"?"#,
        ]
    );
}

#[test]
fn a_send_message_without_a_message_is_refused_at_load() {
    let errors = refused(
        "no-message",
        r#"[[instance]]
name = "a"
[instance.properties]
Hostname = "127.0.0.1"

[[wire]]
when = { instance = "a", trigger = "Connected" }
then = { instance = "a", action = "Send Message", properties = { "Message Type" = "Text" } }
"#,
    );
    assert_eq!(
        errors,
        [
            r#"project.toml:8: wire 1: action "Send Message" needs property "Message", and it must not be empty"#
        ]
    );
}

#[test]
fn a_placeholder_beyond_the_trigger_variables_is_refused_at_load_naming_those_there_are() {
    let errors = refused(
        "placeholders",
        r#"[[instance]]
name = "a"
[instance.properties]
Hostname = "127.0.0.1"

[[wire]]
when = { instance = "a", trigger = "Messages Received", properties = { "Match String" = "ping" } }
then = { instance = "a", action = "Send Message", properties = { Message = "pong <1> <3>" } }

[[wire]]
when = { instance = "a", trigger = "Messages Received", properties = { "Match Mode" = "Regex", "Match String" = 'temp (\w+)=(\d+)' } }
then = { instance = "a", action = "Send Message", properties = { Message = "<2> is <3> (<4>) <5>" } }

[[wire]]
when = { instance = "a", trigger = "WebSocket Established" }
then = { instance = "a", action = "Send Message", properties = { Message = "hello <1>" } }
"#,
    );
    assert_eq!(
        errors,
        [
            r#"project.toml:8: wire 1: action "Send Message" property "Message" uses <3>, but trigger "Messages Received" gives 2 variables here: <1> "Message", <2> "Message Type""#,
            r#"project.toml:12: wire 2: action "Send Message" property "Message" uses <5>, but trigger "Messages Received" gives 4 variables here: <1> "Message", <2> "Capture or Value", <3>, <4> "Message Type""#,
            r#"project.toml:16: wire 3: action "Send Message" property "Message" uses <1>, but trigger "WebSocket Established" gives no variables"#,
        ]
    );
}

#[test]
fn check_passes_a_good_project_without_connecting_or_running_startup_actions() {
    let server = EchoServer::start();
    // A startup Connect and a wire: `wsio run` would connect at once.
    let project = format!(
        r#"{}
[[wire]]
when = {{ instance = "a", trigger = "Messages Received", properties = {{ "Match Mode" = "Regex", "Match String" = 'temp (\d+)' }} }}
then = {{ instance = "a", action = "Send Message", properties = {{ Message = "<2>" }} }}
"#,
        project_instance("a", server.port(), "/", "")
    );
    let (code, stdout, stderr) = check("check-ok", &project);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(
        stdout.trim_end(),
        "ok: 1 instance, 1 wire, 1 startup action",
        "stderr:\n{stderr}"
    );
    assert!(!stdout.contains("status page:"), "{stdout}");
    assert!(!stderr.contains("Connect"), "no action runs:\n{stderr}");
    // The process has exited, so a connection it made would have been
    // accepted (and closed) by now.
    assert_eq!(
        server.observations().snapshot().connections(),
        0,
        "check must connect nothing; stderr:\n{stderr}"
    );
}

#[test]
fn check_warns_of_a_wire_whose_message_its_own_trigger_matches_and_passes() {
    let project = format!(
        r#"{}
[[wire]]
when = {{ instance = "echo", trigger = "Messages Received", properties = {{ "Match String" = "temp" }} }}
then = {{ instance = "echo", action = "Send Message", properties = {{ Message = "temp again" }} }}
"#,
        project_instance("echo", 9, "/", "")
    );
    let (code, _, stderr) = check("check-loop-warning", &project);
    assert_eq!(code, 0, "a warning is not an error: {stderr}");
    assert!(
        stderr.contains(r#"wire 1: Send Message on "echo" sends "temp again""#),
        "{stderr}"
    );
}

#[test]
fn check_refuses_what_run_refuses_with_the_same_file_and_line_messages() {
    let projects = [
        // Against the manifest.
        r#"[[instance]]
name = "a"
[instance.properties]
hostname = "127.0.0.1"
"#,
        // The module's trigger test (a bad regex) and a placeholder count.
        r#"[[instance]]
name = "a"
[instance.properties]
Hostname = "127.0.0.1"

[[wire]]
when = { instance = "a", trigger = "Messages Received", properties = { "Match Mode" = "Regex", "Match String" = 'temp (\d+' } }
then = { instance = "a", action = "Disconnect" }
"#,
        r#"[[instance]]
name = "a"
[instance.properties]
Hostname = "127.0.0.1"

[[wire]]
when = { instance = "a", trigger = "WebSocket Established" }
then = { instance = "a", action = "Send Message", properties = { Message = "hello <1>" } }
"#,
        // Refused by the module once the instance exists: its properties,
        // then a prepared action.
        r#"[[instance]]
name = "a"
[instance.properties]
Hostname = "127.0.0.1"
Proxy = "not a proxy URL"
"#,
        r#"[[instance]]
name = "a"
[instance.properties]
Hostname = "127.0.0.1"

[[startup]]
instance = "a"
action = "Send Message"
properties = { Message = "0a zz", "Message Type" = "Binary" }
"#,
    ];
    for (n, project) in projects.iter().enumerate() {
        let test = format!("check-refused-{n}");
        let (code, stdout, stderr) = check(&test, project);
        assert_eq!(code, 1, "project {n}: stdout:\n{stdout}\nstderr:\n{stderr}");
        assert!(!stdout.contains("ok:"), "project {n}: {stdout}");
        let checked = error_lines(&stderr);
        assert!(!checked.is_empty(), "project {n}: {stderr}");
        for error in &checked {
            assert!(error.starts_with("project.toml:"), "project {n}: {error}");
        }
        assert_eq!(checked, refused(&test, project), "project {n}");
    }
}
