//! Generates Rust types from every schema in the compatibility vectors (each in a module of
//! its own, since the vectors reuse names), and the list of schemas the derive cannot express
//! with the reason codegen gives.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use outbox_core::Schema;
use outbox_core::codegen::{Codegen, CodegenError, rust_path};

fn main() {
    let vectors = Path::new(env!("CARGO_MANIFEST_DIR")).join("../outbox-core/tests/compat-vectors");
    println!("cargo::rerun-if-changed={}", vectors.display());
    let mut sources: BTreeSet<String> = BTreeSet::new();
    for file in [
        "avro-reader-writer.json",
        "registry-modes.json",
        "outbox-extra.json",
    ] {
        let text = std::fs::read_to_string(vectors.join(file)).expect("vectors are readable");
        let cases: serde_json::Value = serde_json::from_str(&text).expect("vectors are JSON");
        for case in cases.as_array().expect("a list of cases") {
            for key in ["reader", "writer", "new_schema"] {
                if let Some(schema) = case.get(key) {
                    sources.insert(schema.to_string());
                }
            }
            for schema in case
                .get("history")
                .and_then(|h| h.as_array())
                .into_iter()
                .flatten()
            {
                sources.insert(schema.to_string());
            }
        }
    }
    let mut modules = String::new();
    let mut checks = String::new();
    let mut unsupported = String::new();
    for (i, source) in sources.iter().enumerate() {
        let label = format!("case_{i}");
        let schema = Schema::parse_str(source).expect("vector schemas are valid");
        match Codegen::new().schema(&label, &schema).generate() {
            Ok(code) => {
                let root = rust_path(&schema.full_name().expect("generated roots are named"));
                let _ = writeln!(modules, "pub mod {label} {{\n{code}}}");
                let _ = writeln!(
                    checks,
                    "    ({:?}, crate::check::<{label}::{root}>),",
                    source
                );
            }
            Err(e @ CodegenError::Unsupported { .. }) => {
                let _ = writeln!(unsupported, "    ({source:?}, {:?}),", e.to_string());
            }
            Err(other) => panic!("{label}: unexpected codegen error: {other}"),
        }
    }
    let out = format!(
        "{modules}\n/// Each expressible source schema and the check of its generated type.\n\
         pub static CHECKS: &[(&str, fn(&str) -> Result<(), String>)] = &[\n{checks}];\n\n\
         /// Each source schema codegen refused, with its error.\n\
         pub static UNSUPPORTED: &[(&str, &str)] = &[\n{unsupported}];\n"
    );
    let out_dir = std::env::var("OUT_DIR").expect("OUT_DIR");
    std::fs::write(Path::new(&out_dir).join("vectors.rs"), out).expect("write generated code");
    fixtures(Path::new(&out_dir));
}

/// The hand-written fixtures: one schema using every mapping (with an `Event` impl), written
/// the way a user's build script does; and schemas codegen must refuse, with its errors.
fn fixtures(out_dir: &Path) {
    let schemas = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    println!("cargo::rerun-if-changed={}", schemas.display());
    Codegen::new()
        .file(schemas.join("order_placed.avsc"))
        .map(|c| c.event("orders", "order_id"))
        .and_then(|c| c.write(out_dir.join("order_placed.rs")))
        .unwrap_or_else(|e| panic!("{e}"));
    Codegen::new()
        .file(schemas.join("awkward.avsc"))
        .and_then(|c| c.write(out_dir.join("awkward.rs")))
        .unwrap_or_else(|e| panic!("{e}"));
    Codegen::new()
        .file(schemas.join("null_inside.avsc"))
        .and_then(|c| c.write(out_dir.join("null_inside.rs")))
        .unwrap_or_else(|e| panic!("{e}"));
    Codegen::new()
        .file(schemas.join("defaults.avsc"))
        .and_then(|c| c.write(out_dir.join("defaults.rs")))
        .unwrap_or_else(|e| panic!("{e}"));
    Codegen::new()
        .file(schemas.join("hostile.avsc"))
        .and_then(|c| c.write(out_dir.join("hostile.rs")))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut refused = String::new();
    for name in [
        "decimal.avsc",
        "uuid_list.avsc",
        "null_second.avsc",
        "clash.avsc",
    ] {
        let error = Codegen::new()
            .file(schemas.join(name))
            .and_then(|c| c.generate())
            .expect_err("codegen refuses it");
        let _ = writeln!(refused, "    ({name:?}, {:?}),", error.to_string());
    }
    std::fs::write(
        out_dir.join("refused.rs"),
        format!("/// Fixtures codegen refuses, with its errors.\npub static REFUSED: &[(&str, &str)] = &[\n{refused}];\n"),
    )
    .expect("write refused list");
}
