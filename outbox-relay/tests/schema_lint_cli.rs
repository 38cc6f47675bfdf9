//! `outbox-relay schema lint` as a user's CI runs it: exit codes 0 / 1 / 2, text and JSON
//! reports, `--topic`, `--lint-config` (or the relay configuration's `lint_config`), hostile
//! input; and `schema check --topic`'s hint.

use std::path::PathBuf;
use std::process::{Command, Output};

struct Files(tempfile::TempDir);

impl Files {
    fn new() -> Self {
        Self(tempfile::tempdir().expect("temp dir"))
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, text).expect("write file");
        path
    }
}

fn relay(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
        .args(args)
        .output()
        .expect("binary runs")
}

fn lint(args: &[&str]) -> Output {
    relay(&[&["schema", "lint"], args].concat())
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn p(path: &std::path::Path) -> &str {
    path.to_str().expect("utf-8 path")
}

const CLEAN: &str = r#"{"type":"record","name":"OrderPlaced","namespace":"com.acme",
    "doc":"An order was placed","fields":[
    {"name":"order_id","type":{"type":"string","logicalType":"uuid"},"doc":"The order"},
    {"name":"quantity","type":"int","doc":"How many"}]}"#;
/// One error (money-float) and one warning (enum-as-string).
const MONEY: &str = r#"{"type":"record","name":"OrderPlaced","namespace":"com.acme",
    "doc":"An order was placed","fields":[
    {"name":"price","type":"double","doc":"What it costs"},
    {"name":"status","type":"string","doc":"Where it is"}]}"#;
/// Only a warning (time-untyped).
const WARNING_ONLY: &str = r#"{"type":"record","name":"OrderPlaced","namespace":"com.acme",
    "doc":"An order was placed","fields":[
    {"name":"quantity","type":"int","doc":"How many"},
    {"name":"placed_at","type":"long","doc":"When"}]}"#;
const OTHER_TYPE: &str = r#"{"type":"record","name":"OrderCancelled","namespace":"com.acme",
    "doc":"An order was cancelled","fields":[{"name":"quantity","type":"int","doc":"How many"}]}"#;

#[test]
fn clean_schemas_exit_0() {
    let f = Files::new();
    let a = f.write("a.avsc", CLEAN);
    let out = lint(&[p(&a)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("clean: {}\n", a.display()));
}

#[test]
fn violations_exit_1_with_rule_severity_location_and_fix() {
    let f = Files::new();
    let a = f.write("money.avsc", MONEY);
    let out = lint(&[p(&a)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("money.avsc: 1 error, 1 warning"), "{text}");
    assert!(
        text.contains("  error money-float at /fields/0/type: field price looks like money"),
        "{text}"
    );
    assert!(text.contains("    fix: use {\"type\":\"bytes\",\"logicalType\":\"decimal\""));
    assert!(
        text.contains("  warning enum-as-string at /fields/1/type"),
        "{text}"
    );
}

#[test]
fn warnings_alone_pass_unless_denied() {
    let f = Files::new();
    let a = f.write("w.avsc", WARNING_ONLY);
    let out = lint(&[p(&a)]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("warning time-untyped at /fields/1/type"));
    let out = lint(&["--deny-warnings", p(&a)]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn json_report_lists_every_violation() {
    let f = Files::new();
    let (a, b) = (f.write("a.avsc", CLEAN), f.write("b.avsc", MONEY));
    let out = lint(&["--format", "json", p(&a), p(&b)]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("one JSON document");
    assert_eq!(json["passed"], false);
    assert_eq!(
        (json["errors"].as_u64(), json["warnings"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(json["files"][0]["violations"], serde_json::json!([]));
    let v = &json["files"][1]["violations"][0];
    assert_eq!(v["rule"], "money-float");
    assert_eq!(v["severity"], "error");
    assert_eq!(v["location"], "/fields/0/type");
    assert!(v["fix"].as_str().is_some_and(|f| f.contains("decimal")));
    assert_eq!(json["files"][1]["file"], p(&b));
}

#[test]
fn topic_turns_on_the_stream_rules() {
    let f = Files::new();
    let (v1, other) = (f.write("v1.avsc", CLEAN), f.write("other.avsc", OTHER_TYPE));
    // Without a stream, two record types are just two schemas.
    assert_eq!(lint(&[p(&v1), p(&other)]).status.code(), Some(0));
    let out = lint(&["--topic", "orders", p(&v1), p(&other)]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains(
            "error stream-multiple-types at /name: stream orders carries com.acme.OrderPlaced; \
             this schema is com.acme.OrderCancelled"
        ),
        "{}",
        stdout(&out)
    );
    let union = f.write("union.avsc", &format!("[{CLEAN}, {OTHER_TYPE}]"));
    let out = lint(&["--topic", "orders", p(&union)]);
    assert!(
        stdout(&out).contains("error stream-union at /:"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn config_file_sets_rules_per_subject() {
    let f = Files::new();
    let a = f.write("money.avsc", MONEY);
    let config = f.write(
        "lint.toml",
        "[subjects.\"payments-value\"]\nrules = { money-float = \"off\", enum-as-string = \"off\" }\n",
    );
    let out = lint(&["--lint-config", p(&config), "--topic", "payments", p(&a)]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(stdout(&out), format!("clean: {}\n", a.display()));
    // Other subjects keep the defaults.
    let out = lint(&["--lint-config", p(&config), "--topic", "orders", p(&a)]);
    assert_eq!(out.status.code(), Some(1));
}

/// The relay's own `--config` (or `OUTBOX_CONFIG`, set wherever the relay is deployed) is
/// not a lint configuration: `schema lint` takes the rules from its `[registry] lint_config`.
#[test]
fn the_relay_configuration_is_not_read_as_lint_rules() {
    let f = Files::new();
    let a = f.write("money.avsc", MONEY);
    let rules = f.write("rules.toml", "[rules]\nmoney-float = \"off\"\n");
    let relay_config = f.write(
        "relay.toml",
        &format!(
            "[registry]\nlint = \"deny\"\nlint_config = {:?}\n",
            p(&rules)
        ),
    );
    let bare_relay_config = f.write("bare.toml", "table_prefix = \"outbox\"\n");
    let with_env = |env: &std::path::Path, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
            .env("OUTBOX_CONFIG", env)
            .args([&["schema", "lint"], args].concat())
            .output()
            .expect("binary runs")
    };
    // The relay's file from the environment, with no lint_config: the default rules.
    let out = with_env(&bare_relay_config, &[p(&a)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).contains("money-float"), "{}", stdout(&out));
    // With one: the registry's rules (money-float off: only a warning is left).
    let out = with_env(&relay_config, &[p(&a)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = relay(&["--config", p(&relay_config), "schema", "lint", p(&a)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // --lint-config wins over both.
    let strict = f.write("strict.toml", "[rules]\nenum-as-string = \"error\"\n");
    let out = with_env(&relay_config, &["--lint-config", p(&strict), p(&a)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("error enum-as-string"),
        "{}",
        stdout(&out)
    );
    // A lint file passed where the relay's goes is refused, not silently ignored.
    let out = relay(&["--config", p(&rules), "schema", "lint", p(&a)]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stderr(&out).contains("rules.toml"), "{}", stderr(&out));
}

#[test]
fn invalid_input_exits_2_naming_the_file() {
    let f = Files::new();
    let good = f.write("good.avsc", CLEAN);
    let cases: Vec<(PathBuf, Vec<String>, &str)> = vec![
        (f.write("bad.avsc", "{not json"), vec![], "bad.avsc"),
        (
            f.write(
                "invalid.avsc",
                r#"{"type":"record","name":"1x","fields":[]}"#,
            ),
            vec![],
            "invalid.avsc",
        ),
        (f.0.path().join("missing.avsc"), vec![], "missing.avsc"),
        (
            good.clone(),
            vec![
                "--lint-config".into(),
                p(&f.write("c.toml", "[rules]\nnope = \"off\"")).into(),
            ],
            "c.toml",
        ),
        (
            good,
            vec![
                "--lint-config".into(),
                p(&f.write("d.toml", "[rules\n")).into(),
            ],
            "d.toml",
        ),
    ];
    for (file, extra, named) in cases {
        let mut args: Vec<&str> = extra.iter().map(String::as_str).collect();
        args.push(p(&file));
        let out = lint(&args);
        assert_eq!(out.status.code(), Some(2), "{named}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.starts_with("error: ") && err.contains(named), "{err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
    // No file at all is a usage error.
    assert_eq!(lint(&[]).status.code(), Some(2));
}

#[test]
fn hostile_schemas_are_refused_or_reported_without_crashing() {
    let f = Files::new();
    // Oversized: refused before parsing.
    let huge = f.write("huge.avsc", &" ".repeat(17 * 1024 * 1024));
    let out = lint(&[p(&huge)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("limit"), "{}", stderr(&out));
    // Nested 100 000 deep: refused by the JSON parser, no stack overflow.
    let deep = f.write(
        "deep.avsc",
        &format!("{}\"int\"{}", "[".repeat(100_000), "]".repeat(100_000)),
    );
    let out = lint(&[p(&deep)]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // A huge enum lints quickly.
    let symbols: Vec<String> = (0..200_000).map(|i| format!("\"S{i}\"")).collect();
    let big_enum = f.write(
        "enum.avsc",
        &format!(
            r#"{{"type":"record","name":"R","doc":"d","fields":[{{"name":"kind","doc":"d",
            "type":{{"type":"enum","name":"K","doc":"d","symbols":[{}]}}}}]}}"#,
            symbols.join(",")
        ),
    );
    let started = std::time::Instant::now();
    let out = lint(&[p(&big_enum)]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn check_hint_names_the_next_stream() {
    let f = Files::new();
    let v1 = f.write(
        "v1.avsc",
        r#"{"type":"record","name":"O","fields":[{"name":"a","type":"int"}]}"#,
    );
    let v2 = f.write(
        "v2.avsc",
        r#"{"type":"record","name":"O","fields":[{"name":"a","type":"string"}]}"#,
    );
    let out = relay(&["schema", "check", "--topic", "orders", p(&v2), p(&v1)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("new stream (`orders.v2`)"),
        "{}",
        stdout(&out)
    );
    let out = relay(&["schema", "check", "--topic", "orders.v2", p(&v2), p(&v1)]);
    assert!(stdout(&out).contains("`orders.v3`"), "{}", stdout(&out));
    let out = relay(&[
        "schema",
        "check",
        "--format",
        "json",
        "--topic",
        "orders",
        p(&v2),
        p(&v1),
    ]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(json["next_stream"], "orders.v2");
}
