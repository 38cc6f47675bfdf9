//! `outbox-relay schema codegen`: the library's output, written where asked, with exit codes
//! 0 / 1 / 2. (That the generated code compiles and round-trips is `codegen-tests`' job.)

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use outbox_core::codegen::Codegen;

fn codegen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
        .args(["schema", "codegen"])
        .args(args)
        .output()
        .expect("binary runs")
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../codegen-tests/schemas")
        .join(name)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn writes_the_library_output_with_the_event_impl() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("events.rs");
    let schema = fixture("order_placed.avsc");
    let path = schema.to_str().expect("utf-8");
    let run = codegen(&[
        path,
        "--out",
        out.to_str().expect("utf-8"),
        "--topic",
        "orders",
        "--key",
        "order_id",
    ]);
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    let written = std::fs::read_to_string(&out).expect("written");
    let expected = Codegen::new()
        .file(&schema)
        .expect("readable")
        .event("orders", "order_id")
        .generate()
        .expect("expressible");
    assert_eq!(written, expected);
    assert!(written.contains("impl ::outbox_core::Event for OrderPlaced"));
    // Without --out, the same code goes to standard output; without --topic, no Event impl.
    let run = codegen(&[path]);
    let printed = String::from_utf8_lossy(&run.stdout);
    assert!(printed.contains("pub struct OrderPlaced {") && !printed.contains("Event for"));
}

#[test]
fn unexpressible_schemas_exit_1_and_invalid_input_exits_2() {
    let run = codegen(&[fixture("decimal.avsc").to_str().expect("utf-8")]);
    assert_eq!(run.status.code(), Some(1));
    assert!(
        stderr(&run)
            .contains("decimal.avsc: at /fields/0/type: the AvroSchema derive cannot express"),
        "{}",
        stderr(&run)
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("bad.avsc");
    std::fs::write(&bad, "[[[").expect("write");
    let missing = dir.path().join("missing.avsc");
    for file in [&bad, &missing] {
        let run = codegen(&[file.to_str().expect("utf-8")]);
        assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
        assert!(stderr(&run).contains(file.file_name().and_then(|n| n.to_str()).unwrap_or("?")));
    }
    let order = fixture("order_placed.avsc");
    let run = codegen(&[
        order.to_str().expect("utf-8"),
        "--topic",
        "orders",
        "--key",
        "nope",
    ]);
    assert_eq!(run.status.code(), Some(1));
    assert!(
        stderr(&run).contains("has no field \"nope\""),
        "{}",
        stderr(&run)
    );
    // --key needs --topic.
    assert_eq!(
        codegen(&[order.to_str().expect("utf-8"), "--key", "order_id"])
            .status
            .code(),
        Some(2)
    );
}
