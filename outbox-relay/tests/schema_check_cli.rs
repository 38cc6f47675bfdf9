//! `outbox-relay schema check` as a user's CI runs it: exit codes and output.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Command, Output};

struct Files(tempfile::TempDir);

impl Files {
    fn new() -> Self {
        Self(tempfile::tempdir().expect("temp dir"))
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, text).expect("write schema");
        path
    }
}

fn run(args: &[&OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
        .args(["schema", "check"])
        .args(args)
        .output()
        .expect("binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const V1: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"}]}"#;
const V2_OPTIONAL: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},
    {"name":"note","type":["null","string"],"default":null}]}"#;
const V2_REQUIRED: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},
    {"name":"note","type":"string"}]}"#;

#[test]
fn compatible_change_exits_0() {
    let f = Files::new();
    let (v1, v2) = (f.write("v1.avsc", V1), f.write("v2.avsc", V2_OPTIONAL));
    let out = run(&[
        "--mode".as_ref(),
        "full_transitive".as_ref(),
        v2.as_os_str(),
        v1.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("compatible: "), "{}", stdout(&out));
    assert!(stdout(&out).contains("under FULL_TRANSITIVE"));
}

#[test]
fn incompatible_change_exits_1_and_lists_every_incompatibility() {
    let f = Files::new();
    let (v1, v2) = (f.write("v1.avsc", V1), f.write("v2.avsc", V2_REQUIRED));
    let out = run(&[
        "--mode".as_ref(),
        "BACKWARD".as_ref(),
        v2.as_os_str(),
        v1.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.starts_with("incompatible: "), "{text}");
    assert!(
        text.contains("READER_FIELD_MISSING_DEFAULT_VALUE at /fields/1: note"),
        "{text}"
    );
    assert!(text.contains("hint: "), "{text}");
}

#[test]
fn transitive_mode_reports_each_broken_version_as_json() {
    let f = Files::new();
    let a = f.write(
        "a.avsc",
        r#"{"type":"record","name":"R","fields":[{"name":"f","type":"string"}]}"#,
    );
    let b = f.write(
        "b.avsc",
        r#"{"type":"record","name":"R","fields":[{"name":"f","type":"double"}]}"#,
    );
    let new = f.write(
        "new.avsc",
        r#"{"type":"record","name":"R","fields":[{"name":"f","type":"int"}]}"#,
    );
    let out = run(&[
        "--mode".as_ref(),
        "backward_transitive".as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
        new.as_os_str(),
        a.as_os_str(),
        b.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON verdict");
    assert_eq!(json["compatible"], false);
    assert_eq!(json["mode"], "BACKWARD_TRANSITIVE");
    let problems = json["incompatibilities"].as_array().expect("list");
    assert_eq!(problems.len(), 2, "{json}");
    assert_eq!(problems[0]["existing_index"], 0);
    assert_eq!(problems[1]["existing_index"], 1);
    assert_eq!(problems[0]["kind"], "TYPE_MISMATCH");
    assert_eq!(problems[0]["location"], "/fields/0/type");
    assert_eq!(problems[0]["direction"], "new_reads_existing");
}

#[test]
fn first_schema_without_history_is_compatible() {
    let f = Files::new();
    let v1 = f.write("v1.avsc", V1);
    let out = run(&[v1.as_os_str()]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn garbage_input_exits_2_with_one_line() {
    let f = Files::new();
    let v1 = f.write("v1.avsc", V1);
    let garbage = f.write("garbage.avsc", "{ this is not json");
    let invalid = f.write(
        "invalid.avsc",
        r#"{"type":"record","name":"9lives","fields":[]}"#,
    );
    let missing = f.0.path().join("missing.avsc");
    let cases: [(Vec<&OsStr>, &str); 4] = [
        (vec![garbage.as_os_str(), v1.as_os_str()], "not JSON"),
        (vec![v1.as_os_str(), invalid.as_os_str()], "illegal name"),
        (vec![missing.as_os_str()], "cannot read"),
        (
            vec!["--mode".as_ref(), "sideways".as_ref(), v1.as_os_str()],
            "unknown compatibility mode",
        ),
    ];
    for (args, needle) in cases {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(err.contains(needle), "{err}");
        assert!(stdout(&out).is_empty());
    }
}

/// An enum of `n` symbols, without symbol `skip`.
fn big_enum(n: usize, skip: Option<usize>) -> String {
    let symbols: Vec<String> = (0..n)
        .filter(|i| Some(*i) != skip)
        .map(|i| format!("\"S{i:07}\""))
        .collect();
    format!(
        r#"{{"type":"enum","name":"E","symbols":[{}]}}"#,
        symbols.join(",")
    )
}

#[test]
fn hostile_schemas_end_in_an_exit_code_not_a_crash() {
    let f = Files::new();
    let recursive = f.write(
        "recursive.avsc",
        r#"{"type":"record","name":"R","fields":[{"name":"f","type":"R","default":{}}]}"#,
    );
    // A chain of 200 records, each field's type naming the next: flat JSON, deep types.
    let chain: Vec<String> = (0..200)
        .map(|i| {
            format!(
                r#"{{"name":"f{i}","type":{{"type":"record","name":"R{i}","fields":[{{"name":"next","type":["null","R{}"]}}]}}}}"#,
                i + 1
            )
        })
        .collect();
    let deep = f.write(
        "deep.avsc",
        &format!(
            r#"{{"type":"record","name":"Top","fields":[{},{{"name":"end","type":{{"type":"record","name":"R200","fields":[]}}}}]}}"#,
            chain.join(",")
        ),
    );
    let oversize = f.write(
        "oversize.avsc",
        &format!(r#"{{"type":"string","doc":"{}"}}"#, "x".repeat(5 << 20)),
    );
    let zero = std::path::Path::new("/dev/zero");
    let cases: [(Vec<&OsStr>, &str); 4] = [
        (vec![recursive.as_os_str()], "recursive default"),
        (vec![deep.as_os_str()], "deeper than 128"),
        (vec![oversize.as_os_str()], "larger than the limit"),
        (vec![zero.as_os_str()], "larger than the limit"),
    ];
    for (args, needle) in cases {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
    // A 2 MiB enum is a valid schema, checked in linear time: dropping a symbol breaks
    // FULL compatibility (old readers lack it), and the one symbol is named.
    let all = big_enum(210_000, None);
    assert!(all.len() > 2 << 20);
    let (old, new) = (
        f.write("old.avsc", &big_enum(210_000, Some(7))),
        f.write("new.avsc", &all),
    );
    let out = run(&[
        "--mode".as_ref(),
        "FULL".as_ref(),
        new.as_os_str(),
        old.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("MISSING_ENUM_SYMBOLS at /symbols: [S0000007]"),
        "{}",
        stdout(&out)
    );
}
