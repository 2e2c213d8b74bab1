//! The Rust contract (this crate) against the C one (`include/iom.h`): a C
//! file is written from facts taken from the Rust side (sizes, alignments
//! and offsets from `size_of`/`offset_of!`, the constants' values, the type
//! of every function spelled from [`iom::FUNCTIONS`] and [`iom::CALLBACKS`])
//! as `_Static_assert`s, and compiled against the header with the system C
//! compiler. Any drift, either way, fails to compile. The header is also
//! scanned for functions and constants this crate does not declare.
//!
//! Needs a C compiler (`$CC`, else `cc`); without one the test fails, unless
//! `IOM_SKIP_HEADER_CHECK=1` says to skip it.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::mem::{align_of, offset_of, size_of};
use std::path::{Path, PathBuf};
use std::process::Command;

use iom::{Function, IomHostCallbacks, IomLogLevel, IomStr};

fn header_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../include")
}

/// The C type a Rust type of the aliases stands for. The names are the ones
/// `iom`'s aliases use; an unknown one fails the test (add it here).
fn c_type(rust: &str) -> String {
    let rust = rust.trim();
    if let Some(pointee) = rust.strip_prefix("*const") {
        return format!("{} const *", c_type(pointee));
    }
    if let Some(pointee) = rust.strip_prefix("*mut") {
        return format!("{} *", c_type(pointee));
    }
    let c = match rust {
        "()" | "c_void" => "void",
        "c_char" => "char",
        "c_int" => "int",
        "u8" => "uint8_t",
        "u32" => "uint32_t",
        "u64" => "uint64_t",
        "usize" => "size_t",
        "isize" => "ptrdiff_t",
        "IomLogLevel" => "iom_log_level",
        "IomStr" => "iom_str",
        "IomHostCallbacks" => "iom_host_callbacks",
        "IomInstance" => "iom_instance",
        "IomPreparedTrigger" => "iom_prepared_trigger",
        "IomPreparedAction" => "iom_prepared_action",
        "IomVariables" => "iom_variables",
        other => panic!("no C spelling for the Rust type {other:?}: add it to c_type()"),
    };
    c.to_string()
}

/// `R (*)(A, B)`: a pointer to the function, spelled from its Rust alias.
fn c_pointer_type(function: &Function) -> String {
    let params = if function.params.is_empty() {
        "void".to_string()
    } else {
        let params: Vec<String> = function.params.iter().map(|p| c_type(p)).collect();
        params.join(", ")
    };
    format!("{} (*)({params})", c_type(function.returns))
}

/// The size of a field, from the field itself.
fn size_of_field<T, F>(_field: fn(&T) -> &F) -> usize {
    size_of::<F>()
}

/// The constants, with their Rust values.
fn constants() -> Vec<(&'static str, i64)> {
    vec![
        ("IOM_ABI_VERSION", iom::IOM_ABI_VERSION.into()),
        ("IOM_DATA_BINARY", iom::IOM_DATA_BINARY.into()),
        ("IOM_OK", iom::IOM_OK.into()),
        (
            "IOM_ERR_INVALID_ARGUMENT",
            iom::IOM_ERR_INVALID_ARGUMENT.into(),
        ),
        ("IOM_ERR_REJECTED", iom::IOM_ERR_REJECTED.into()),
        ("IOM_ERR_IN_CALLBACK", iom::IOM_ERR_IN_CALLBACK.into()),
        ("IOM_ERR_PANIC", iom::IOM_ERR_PANIC.into()),
        ("IOM_LOG_CRITICAL", iom::IOM_LOG_CRITICAL.into()),
        ("IOM_LOG_TERSE", iom::IOM_LOG_TERSE.into()),
        ("IOM_LOG_NORMAL", iom::IOM_LOG_NORMAL.into()),
        ("IOM_LOG_EXTENDED", iom::IOM_LOG_EXTENDED.into()),
        ("IOM_LOG_VERBOSE", iom::IOM_LOG_VERBOSE.into()),
        ("IOM_LOG_DEBUG", iom::IOM_LOG_DEBUG.into()),
    ]
}

/// The C file: one `_Static_assert` per fact.
fn check_source() -> String {
    let mut c = String::from("#include \"iom.h\"\n\n");
    let mut assert = |condition: String, what: &str| {
        writeln!(
            c,
            "_Static_assert({condition}, \"Rust and iom.h differ: {what}\");"
        )
        .unwrap();
    };

    for (name, value) in constants() {
        assert(format!("{name} == {value}"), &format!("{name} is {value}"));
    }
    assert(
        format!("sizeof(iom_log_level) == {}", size_of::<IomLogLevel>()),
        "size of iom_log_level",
    );
    assert(
        format!("_Alignof(iom_log_level) == {}", align_of::<IomLogLevel>()),
        "alignment of iom_log_level",
    );

    let mut layout =
        |c_struct: &str, size: usize, align: usize, fields: &[(&str, usize, usize)]| {
            assert(
                format!("sizeof({c_struct}) == {size}"),
                &format!("size of {c_struct}"),
            );
            assert(
                format!("_Alignof({c_struct}) == {align}"),
                &format!("alignment of {c_struct}"),
            );
            for (field, offset, size) in fields {
                assert(
                    format!("offsetof({c_struct}, {field}) == {offset}"),
                    &format!("offset of {c_struct}.{field}"),
                );
                assert(
                    format!("sizeof((({c_struct} *)0)->{field}) == {size}"),
                    &format!("size of {c_struct}.{field}"),
                );
            }
        };
    layout(
        "iom_str",
        size_of::<IomStr>(),
        align_of::<IomStr>(),
        &[
            (
                "ptr",
                offset_of!(IomStr, ptr),
                size_of_field(|s: &IomStr| &s.ptr),
            ),
            (
                "len",
                offset_of!(IomStr, len),
                size_of_field(|s: &IomStr| &s.len),
            ),
        ],
    );
    type Callbacks = IomHostCallbacks;
    layout(
        "iom_host_callbacks",
        size_of::<Callbacks>(),
        align_of::<Callbacks>(),
        &[
            (
                "struct_size",
                offset_of!(Callbacks, struct_size),
                size_of_field(|s: &Callbacks| &s.struct_size),
            ),
            (
                "abi_version",
                offset_of!(Callbacks, abi_version),
                size_of_field(|s: &Callbacks| &s.abi_version),
            ),
            (
                "user_data",
                offset_of!(Callbacks, user_data),
                size_of_field(|s: &Callbacks| &s.user_data),
            ),
            (
                "fire_trigger",
                offset_of!(Callbacks, fire_trigger),
                size_of_field(|s: &Callbacks| &s.fire_trigger),
            ),
            (
                "status_changed",
                offset_of!(Callbacks, status_changed),
                size_of_field(|s: &Callbacks| &s.status_changed),
            ),
            (
                "log",
                offset_of!(Callbacks, log),
                size_of_field(|s: &Callbacks| &s.log),
            ),
            (
                "fire_trigger_ex",
                offset_of!(Callbacks, fire_trigger_ex),
                size_of_field(|s: &Callbacks| &s.fire_trigger_ex),
            ),
            (
                "fire_trigger_flow",
                offset_of!(Callbacks, fire_trigger_flow),
                size_of_field(|s: &Callbacks| &s.fire_trigger_flow),
            ),
        ],
    );

    for callback in iom::CALLBACKS {
        assert(
            format!(
                "__builtin_types_compatible_p(__typeof__(((iom_host_callbacks *)0)->{}), {})",
                callback.name,
                c_pointer_type(callback)
            ),
            &format!("type of the callback {}", callback.name),
        );
    }
    for function in iom::FUNCTIONS {
        assert(
            format!(
                "__builtin_types_compatible_p(__typeof__(&{}), {})",
                function.name,
                c_pointer_type(function)
            ),
            &format!("type of {}", function.name),
        );
    }
    c
}

/// Each callback field of the Rust struct has the type of its alias in
/// [`iom::CALLBACKS`] (checked by the compiler: these assignments are the
/// test), so spelling the C type from the alias checks the field.
#[allow(dead_code)]
fn callback_fields_have_their_alias_types(c: IomHostCallbacks) {
    let _: Option<iom::FireTriggerFn> = c.fire_trigger;
    let _: Option<iom::StatusChangedFn> = c.status_changed;
    let _: Option<iom::LogFn> = c.log;
    let _: Option<iom::FireTriggerExFn> = c.fire_trigger_ex;
    let _: Option<iom::FireTriggerFlowFn> = c.fire_trigger_flow;
}

#[test]
fn the_rust_contract_matches_the_header() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("iom-header-check");
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("check.c");
    std::fs::write(&source, check_source()).unwrap();

    let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let output = Command::new(&compiler)
        .args([
            "-std=gnu11",
            "-fsyntax-only",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-I",
        ])
        .arg(header_dir())
        .arg(&source)
        .output();
    let output = match output {
        Ok(output) => output,
        Err(e) if std::env::var_os("IOM_SKIP_HEADER_CHECK").is_some_and(|v| v == "1") => {
            println!(
                "SKIPPED: cannot run the C compiler {compiler:?} ({e}), and IOM_SKIP_HEADER_CHECK=1"
            );
            return;
        }
        Err(e) => panic!(
            "cannot run the C compiler {compiler:?} ({e}): this test compiles include/iom.h \
             against the Rust contract. Install a C compiler (or set CC to one), or set \
             IOM_SKIP_HEADER_CHECK=1 to skip the check"
        ),
    };
    assert!(
        output.status.success(),
        "include/iom.h and the iom crate differ ({}):\n{}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The identifiers of the header's declarations, one kind at a time.
fn header_text() -> String {
    std::fs::read_to_string(header_dir().join("iom.h")).unwrap()
}

#[test]
fn every_function_of_the_header_is_declared_in_rust() {
    // A declaration starts in column 0 and names its function right before
    // the first parenthesis: `iom_instance *iom_instance_create(...`.
    let header: BTreeSet<String> = header_text()
        .lines()
        .filter(|line| !line.starts_with([' ', '*', '/', '#', '}', '\t']))
        .filter_map(|line| {
            let before = &line[..line.find('(')?];
            let name = before.rsplit([' ', '*']).next()?;
            name.starts_with("iom_").then(|| name.to_string())
        })
        .collect();
    let rust: BTreeSet<String> = iom::FUNCTIONS.iter().map(|f| f.name.to_string()).collect();
    assert_eq!(header, rust, "the header's functions and iom::FUNCTIONS");
}

#[test]
fn every_constant_of_the_header_is_declared_in_rust() {
    let header: BTreeSet<String> = header_text()
        .lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let name = line.strip_prefix("#define ").unwrap_or(line);
            let end = name.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
            let name = &name[..end];
            // `#define IOM_X value` and the enum's `IOM_LOG_X = n,`.
            let is_value =
                line.starts_with("#define ") || line[end..].trim_start().starts_with('=');
            (name.starts_with("IOM_") && name != "IOM_H" && is_value).then(|| name.to_string())
        })
        .collect();
    let rust: BTreeSet<String> = constants().iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(
        header, rust,
        "the header's constants and the ones checked here"
    );
}

#[test]
fn the_c_spelling_of_a_function_reads_like_the_header() {
    let create = iom::FUNCTIONS
        .iter()
        .find(|f| f.name == "iom_instance_create")
        .unwrap();
    assert_eq!(
        c_pointer_type(create),
        "iom_instance * (*)(iom_host_callbacks const *, uint64_t, char const *, char * *)"
    );
}
