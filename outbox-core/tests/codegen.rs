//! Codegen's errors and edge cases (that generated code compiles and round-trips is checked by
//! the `codegen-tests` crate, which compiles it).

use outbox_core::Schema;
use outbox_core::codegen::{Codegen, CodegenError};

fn schema(text: &str) -> Schema {
    Schema::parse_str(text).expect("valid schema")
}

const ORDER: &str = r#"{"type":"record","name":"Order","namespace":"com.acme","fields":[
    {"name":"id","type":"string"},{"name":"n","type":"long"},{"name":"flag","type":"boolean"},
    {"name":"note","type":["null","string"],"default":null},
    {"name":"when","type":{"type":"long","logicalType":"timestamp-millis"}},
    {"name":"line","type":{"type":"record","name":"Line","fields":[{"name":"sku","type":"string"}]}}]}"#;

#[test]
fn shared_types_are_generated_once_and_conflicts_are_refused() {
    let same_line = r#"{"type":"record","name":"Other","namespace":"com.acme","fields":[
        {"name":"line","type":{"type":"record","name":"Line","fields":[{"name":"sku","type":"string"}]}}]}"#;
    let code = Codegen::new()
        .schema("a.avsc", &schema(ORDER))
        .schema("b.avsc", &schema(same_line))
        .generate()
        .expect("same definition twice is fine");
    assert_eq!(code.matches("pub struct Line {").count(), 1, "{code}");
    assert_eq!(code.matches("pub mod acme {").count(), 1, "{code}");

    let other_line = same_line.replace(r#""name":"sku""#, r#""name":"code""#);
    match Codegen::new()
        .schema("a.avsc", &schema(ORDER))
        .schema("b.avsc", &schema(&other_line))
        .generate()
    {
        Err(e @ CodegenError::Conflict { .. }) => {
            assert_eq!(
                e.to_string(),
                "b.avsc: com.acme.Line is already defined differently in a.avsc"
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[test]
fn event_keys_follow_the_key_field_type() {
    for (key, expected) in [
        ("id", "Some(self.id.clone())"),
        ("n", "Some(self.n.to_string())"),
        ("note", "self.note.clone()"),
        ("", "None"),
    ] {
        let code = Codegen::new()
            .schema("o.avsc", &schema(ORDER))
            .event("orders", key)
            .generate()
            .expect("generates");
        assert!(code.contains(expected), "{key}: {code}");
    }
    for (key, reason) in [
        ("nope", "com.acme.Order has no field \"nope\""),
        ("line", "the key field line is a record"),
        ("when", "the key field when is a timestamp-millis"),
    ] {
        let err = Codegen::new()
            .schema("o.avsc", &schema(ORDER))
            .event("orders", key)
            .generate()
            .expect_err(key)
            .to_string();
        assert_eq!(
            err,
            format!(
                "o.avsc: cannot implement Event: {reason}{}",
                if key == "nope" {
                    ""
                } else {
                    "; use a string, int, long or boolean"
                }
            )
        );
    }
}

#[test]
fn unreadable_invalid_and_oversized_files_name_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let big = dir.path().join("big.avsc");
    std::fs::write(&big, " ".repeat(16 * 1024 * 1024 + 1)).expect("write");
    let invalid = dir.path().join("invalid.avsc");
    std::fs::write(&invalid, r#"{"type":"record","name":"R"}"#).expect("write");
    for (path, reason) in [
        (big, "larger than the limit"),
        (invalid, "record has no fields"),
        (dir.path().join("missing.avsc"), "cannot read"),
    ] {
        let err = Codegen::new().file(&path).expect_err("refused");
        assert!(matches!(err, CodegenError::Input { .. }));
        let message = err.to_string();
        assert!(
            message.starts_with(&path.display().to_string()) && message.contains(reason),
            "{message}"
        );
    }
}

#[test]
fn deep_and_huge_schemas_are_bounded() {
    // 100 nested arrays: refused by depth, not by the stack.
    let mut ty = String::from("\"int\"");
    for _ in 0..100 {
        ty = format!(r#"{{"type":"array","items":{ty}}}"#);
    }
    let deep = schema(&format!(
        r#"{{"type":"record","name":"D","fields":[{{"name":"a","type":{ty}}}]}}"#
    ));
    let err = Codegen::new()
        .schema("d.avsc", &deep)
        .generate()
        .expect_err("too deep")
        .to_string();
    assert!(err.contains("types nested over 64 levels"), "{err}");
    // 50 000 enum symbols: generated in linear time.
    let symbols: Vec<String> = (0..50_000).map(|i| format!("\"S{i}\"")).collect();
    let big = schema(&format!(
        r#"{{"type":"record","name":"B","fields":[{{"name":"k","type":{{"type":"enum","name":"K","symbols":[{}]}}}}]}}"#,
        symbols.join(",")
    ));
    let started = std::time::Instant::now();
    let code = Codegen::new()
        .schema("b.avsc", &big)
        .generate()
        .expect("generates");
    assert!(code.contains("    S49999,"));
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn writing_leaves_an_unchanged_file_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("events.rs");
    let codegen = Codegen::new().schema("o.avsc", &schema(ORDER));
    codegen.write(&out).expect("written");
    let first = std::fs::metadata(&out)
        .and_then(|m| m.modified())
        .expect("mtime");
    std::thread::sleep(std::time::Duration::from_millis(20));
    codegen.write(&out).expect("written again");
    assert_eq!(
        std::fs::metadata(&out)
            .and_then(|m| m.modified())
            .expect("mtime"),
        first
    );
    let err = codegen
        .write(dir.path().join("no/such/dir.rs"))
        .expect_err("no dir");
    assert!(matches!(err, CodegenError::Output { .. }), "{err}");
}

#[test]
fn writing_over_a_schema_file_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let avsc = dir.path().join("order.avsc");
    std::fs::write(&avsc, ORDER).expect("write schema");
    let codegen = Codegen::new().file(&avsc).expect("reads");
    // The same file, spelled another way.
    let same = dir.path().join(".").join("order.avsc");
    let err = codegen.write(&same).expect_err("would replace the schema");
    assert!(matches!(err, CodegenError::Output { .. }), "{err}");
    assert!(err.to_string().contains("is the schema file"), "{err}");
    assert_eq!(std::fs::read_to_string(&avsc).expect("still there"), ORDER);
    codegen
        .write(dir.path().join("events.rs"))
        .expect("elsewhere is fine");
}

#[test]
fn a_type_implements_event_once() {
    let err = Codegen::new()
        .schema("a.avsc", &schema(ORDER))
        .event("orders", "id")
        .schema("b.avsc", &schema(ORDER))
        .event("orders.v2", "id")
        .generate()
        .expect_err("two impls of Event for one type do not compile");
    assert_eq!(
        err.to_string(),
        "b.avsc: cannot implement Event: com.acme.Order already implements Event (from a.avsc)"
    );
    // Once is fine, whichever input asks.
    let code = Codegen::new()
        .schema("a.avsc", &schema(ORDER))
        .schema("b.avsc", &schema(ORDER))
        .event("orders", "id")
        .generate()
        .expect("generates");
    assert_eq!(code.matches("impl ::outbox_core::Event for").count(), 1);
}

#[test]
fn namespaces_no_module_can_spell_are_refused() {
    for part in ["self", "super", "crate", "_", "Self"] {
        let text = format!(
            r#"{{"type":"record","name":"R","namespace":"com.{part}.x","fields":[{{"name":"a","type":"int"}}]}}"#
        );
        let err = Codegen::new()
            .schema("r.avsc", &schema(&text))
            .generate()
            .expect_err("`pub mod r#self` does not compile");
        assert!(
            err.to_string()
                .contains(&format!("a namespace part \"{part}\"")),
            "{part}: {err}"
        );
    }
    // Keywords are fine as raw identifiers.
    let code = Codegen::new()
        .schema(
            "r.avsc",
            &schema(r#"{"type":"record","name":"R","namespace":"com.type","fields":[]}"#),
        )
        .generate()
        .expect("generates");
    assert!(code.contains("pub mod r#type {"), "{code}");
}

#[test]
fn a_label_with_a_line_break_stays_in_the_header_comment() {
    let code = Codegen::new()
        .schema("a\nfn injected() {}\n.avsc", &schema(ORDER))
        .generate()
        .expect("generates");
    let header = code.lines().next().expect("a header");
    assert!(header.starts_with("// @generated") && header.contains("a\\nfn injected"));
    assert!(
        !code.lines().any(|l| l.trim() == "fn injected() {}"),
        "{code}"
    );
    // Only control characters are escaped: a Windows path reads as it is.
    let code = Codegen::new()
        .schema(r"C:\schemas\o.avsc", &schema(ORDER))
        .generate()
        .expect("generates");
    assert!(code.starts_with(r"// @generated by outbox codegen from C:\schemas\o.avsc."));
}

#[test]
fn namespaces_are_bounded_in_depth_and_checked_against_type_names_at_scale() {
    // 10 000 parts: 20 KB of schema would have been 10 000 nested modules, each line
    // indented once more (gigabytes of output).
    let deep = format!(
        r#"{{"type":"record","name":"R","namespace":"{}","fields":[]}}"#,
        vec!["a"; 10_000].join(".")
    );
    let err = Codegen::new()
        .schema("deep.avsc", &schema(&deep))
        .generate()
        .expect_err("too deep")
        .to_string();
    assert!(
        err.contains("a namespace of 10000 parts (over 64 nested modules)"),
        "{err}"
    );
    let code = Codegen::new()
        .schema(
            "ok.avsc",
            &schema(&format!(
                r#"{{"type":"record","name":"R","namespace":"{}","fields":[]}}"#,
                vec!["a"; 64].join(".")
            )),
        )
        .generate()
        .expect("64 parts are fine");
    assert!(code.contains("pub struct R {"));

    // Thousands of namespaces, one of them also a type's full name (`n42.Clash` and the
    // namespace `n42.Clash.inner`): found among them, and named the same way every time.
    let mut fields: Vec<String> = (0..5_000)
        .map(|i| {
            format!(r#"{{"name":"f{i}","type":{{"type":"enum","name":"E","namespace":"n{i}","symbols":["A"]}}}}"#)
        })
        .collect();
    fields.push(
        r#"{"name":"c","type":{"type":"enum","name":"Clash","namespace":"n42","symbols":["A"]}}"#
            .to_owned(),
    );
    fields.push(r#"{"name":"d","type":{"type":"enum","name":"E","namespace":"n42.Clash.inner","symbols":["A"]}}"#.to_owned());
    fields.push(
        r#"{"name":"e","type":{"type":"enum","name":"Z","namespace":"n7","symbols":["A"]}}"#
            .to_owned(),
    );
    fields.push(
        r#"{"name":"g","type":{"type":"enum","name":"E","namespace":"n7.Z","symbols":["A"]}}"#
            .to_owned(),
    );
    let many = schema(&format!(
        r#"{{"type":"record","name":"Many","fields":[{}]}}"#,
        fields.join(",")
    ));
    for _ in 0..3 {
        let err = Codegen::new()
            .schema("many.avsc", &many)
            .generate()
            .expect_err("a type and a namespace of one name")
            .to_string();
        assert!(
            err.contains("n42.Clash as both a type and a namespace"),
            "{err}"
        );
    }
    let fine = schema(&format!(
        r#"{{"type":"record","name":"Many","fields":[{}]}}"#,
        fields[..5_000].join(",")
    ));
    let code = Codegen::new()
        .schema("many.avsc", &fine)
        .generate()
        .expect("distinct namespaces are fine");
    assert_eq!(code.matches("pub enum E {").count(), 5_000);
}

#[test]
fn an_event_asked_of_an_enum_says_so() {
    let e = schema(r#"{"type":"enum","name":"Colour","namespace":"x","symbols":["RED"]}"#);
    Codegen::new()
        .schema("e.avsc", &e)
        .generate()
        .expect("an enum alone is expressible");
    let err = Codegen::new()
        .schema("e.avsc", &e)
        .event("colours", "")
        .generate()
        .expect_err("Event needs a record");
    assert!(matches!(err, CodegenError::Event { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "e.avsc: cannot implement Event: the top-level type x.Colour is an enum; an event is a record"
    );
}

#[test]
fn an_event_topic_kafka_refuses_is_refused_at_generation() {
    let long = "t".repeat(250);
    for topic in [
        "",
        ".",
        "..",
        "orders events",
        "orders/v2",
        "ördersß",
        long.as_str(),
    ] {
        let err = Codegen::new()
            .schema("o.avsc", &schema(ORDER))
            .event(topic, "id")
            .generate()
            .expect_err(topic);
        assert!(
            err.to_string().contains("is not a Kafka topic name"),
            "{topic:?}: {err}"
        );
    }
    let longest = "t".repeat(249);
    for topic in ["orders", "orders.v2", "a_b-C.9", longest.as_str()] {
        Codegen::new()
            .schema("o.avsc", &schema(ORDER))
            .event(topic, "id")
            .generate()
            .unwrap_or_else(|e| panic!("{topic}: {e}"));
    }
}

/// `--out /dev/stdout | ...` or a named pipe: the check for an unchanged file must not read
/// from the pipe (it would wait for a writer, itself, forever).
#[cfg(unix)]
#[test]
fn writing_to_a_pipe_writes_without_reading_it_first() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fifo = dir.path().join("events.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).expect("read the pipe"))
    };
    let codegen = Codegen::new().schema("o.avsc", &schema(ORDER));
    codegen.write(&fifo).expect("written to the pipe");
    let received = reader.join().expect("reader");
    assert_eq!(received, codegen.generate().expect("generates"));
}

/// serde's derive has items of its own named `__Visitor`, `__Field`, ...: a record so named
/// generated code that did not compile. Fields so named are fine (the hostile fixture of the
/// codegen-tests crate compiles and round-trips `__field0`, `__ignore`, `named_schemas`).
#[test]
fn type_names_of_the_derives_own_items_are_refused() {
    for name in ["__Visitor", "__Field", "__D"] {
        let text = format!(
            r#"{{"type":"record","name":"Outer","fields":[{{"name":"__field0","type":{{"type":"record","name":"{name}","fields":[]}}}}]}}"#
        );
        let err = Codegen::new()
            .schema("r.avsc", &schema(&text))
            .generate()
            .expect_err(name);
        assert_eq!(
            err.to_string(),
            format!(
                "r.avsc: at /fields/0/type: the AvroSchema derive cannot express a type named \"{name}\" (names starting with __ are the derives' own)"
            )
        );
    }
}
