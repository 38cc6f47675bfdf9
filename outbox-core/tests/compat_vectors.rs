//! Runs every schema-compatibility vector as its own test: the copies kept in
//! `tests/compat-vectors/`, every file in `../shared/compat-vectors/` when that folder exists,
//! and every file in `$OUTBOX_COMPAT_VECTORS` (a folder) when set. Cases with the same name are
//! run once. Two shapes are understood:
//!
//! - reader/writer pairs: `{"name", "reader", "writer", "reader_can_read_writer"}`;
//! - registry histories: `{"name", "mode", "history": [...], "new_schema", "expected_compatible"}`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use libtest_mimic::{Arguments, Failed, Trial};
use outbox_core::Schema;
use outbox_core::compat::{CompatibilityMode, check_compatibility, check_reader_writer};
use serde_json::Value;

fn main() {
    let args = Arguments::from_args();
    let mut cases: BTreeMap<String, Value> = BTreeMap::new();
    for dir in vector_dirs() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
            .map(|entry| entry.expect("directory entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).expect("readable vector file");
            let list: Vec<Value> = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not a JSON list: {e}", file.display()));
            let stem = file
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("vectors");
            for (i, case) in list.into_iter().enumerate() {
                let name = case["name"]
                    .as_str()
                    .map_or_else(|| format!("{stem}.{i}"), str::to_owned);
                cases.entry(name).or_insert(case);
            }
        }
    }
    assert!(!cases.is_empty(), "no compatibility vectors found");
    let trials = cases
        .into_iter()
        .map(|(name, case)| Trial::test(name, move || run(&case)))
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

fn vector_dirs() -> Vec<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![manifest.join("tests/compat-vectors")];
    let shared = manifest.join("../../shared/compat-vectors");
    if shared.is_dir() {
        dirs.push(shared);
    }
    if let Some(extra) = std::env::var_os("OUTBOX_COMPAT_VECTORS") {
        dirs.push(PathBuf::from(extra));
    }
    dirs
}

/// A schema in a vector: a JSON schema value, or a string holding schema JSON text.
fn schema(value: &Value) -> Result<Schema, Failed> {
    let parsed = match value {
        Value::String(s) if s.trim_start().starts_with(['{', '[', '"']) => Schema::parse_str(s),
        other => Schema::parse_json(other),
    };
    parsed.map_err(|e| Failed::from(format!("schema refused: {e}\n{value}")))
}

fn run(case: &Value) -> Result<(), Failed> {
    if let Some(expected) = case.get("reader_can_read_writer").and_then(Value::as_bool) {
        let reader = schema(&case["reader"])?;
        let writer = schema(&case["writer"])?;
        let found = check_reader_writer(&reader, &writer);
        if found.is_empty() != expected {
            return Err(format!(
                "expected reader_can_read_writer={expected}, got {found:?}\nreader: {}\nwriter: {}",
                case["reader"], case["writer"]
            )
            .into());
        }
        return Ok(());
    }
    let expected = case["expected_compatible"]
        .as_bool()
        .ok_or("vector has neither reader_can_read_writer nor expected_compatible")?;
    let mode: CompatibilityMode = case["mode"]
        .as_str()
        .ok_or("vector has no mode")?
        .parse()
        .map_err(|e| format!("{e}"))?;
    let history = case["history"]
        .as_array()
        .ok_or("vector has no history")?
        .iter()
        .map(schema)
        .collect::<Result<Vec<_>, _>>()?;
    let new = schema(&case["new_schema"])?;
    let report = check_compatibility(mode, &new, &history);
    if report.is_compatible() != expected {
        return Err(format!(
            "expected compatible={expected} under {mode}, got {:?}",
            report.problems
        )
        .into());
    }
    Ok(())
}
