//! Hostile schemas: every one ends in a typed error or a verdict, in bounded time and stack,
//! never a crash. Each test runs on the default 2 MiB test-thread stack, smaller than the
//! 8 MiB main thread, so a recursion the caps miss overflows here first.

use outbox_core::avro::types::Value;
use outbox_core::compat::{
    CompatibilityMode, IncompatibilityKind, check_compatibility, check_reader_writer,
};
use outbox_core::encode::EventCodec;
use outbox_core::schema::limits;
use outbox_core::{Error, Schema};
use serde_json::{Value as Json, json};

fn refused(text: &str) -> String {
    match Schema::parse_str(text) {
        Err(Error::InvalidSchema { reason }) => reason,
        other => panic!("expected InvalidSchema, got {other:?}"),
    }
}

#[test]
fn a_default_that_needs_its_own_record_is_refused() {
    // Java validates the default while R has no fields yet and refuses it.
    let reason =
        refused(r#"{"type":"record","name":"R","fields":[{"name":"f","type":"R","default":{}}]}"#);
    assert!(reason.contains("recursive default"), "{reason}");
    let reason = refused(
        r#"{"type":"record","name":"R","fields":[{"name":"f","type":["R","null"],"default":{"f":{}}}]}"#,
    );
    assert!(reason.contains("recursive default"), "{reason}");
    // Two records that are complete, each defaulting to the other, through forward references.
    let reason = refused(
        r#"[{"type":"record","name":"A","fields":[{"name":"b","type":"B","default":{}}]},
            {"type":"record","name":"B","fields":[{"name":"a","type":"A","default":{}}]}]"#,
    );
    assert!(reason.contains("recursive default"), "{reason}");
    // A recursive type with a default that does not recurse stays valid.
    Schema::parse_str(
        r#"{"type":"record","name":"Node","fields":[{"name":"next","type":["null","Node"],"default":null}]}"#,
    )
    .expect("a linked list is valid");
}

/// `levels` arrays nested in each other, as a JSON value (deeper than serde's text parser
/// allows, which a value built in code is not bound by).
fn nested_arrays(levels: usize) -> Json {
    let mut schema = json!("int");
    for _ in 0..levels {
        // Not `json!`, which would serialize (recursively copy) the inner value.
        let mut array = serde_json::Map::new();
        array.insert("type".to_owned(), json!("array"));
        array.insert("items".to_owned(), schema);
        schema = Json::Object(array);
    }
    schema
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    for levels in [limits::MAX_DEPTH + 1, 10_000, 100_000] {
        let deep = nested_arrays(levels);
        let result = Schema::parse_json(&deep);
        let Err(Error::InvalidSchema { reason }) = result else {
            panic!("{levels} levels accepted");
        };
        assert!(reason.contains("deeper than"), "{reason}");
        // serde_json drops a value recursively: the caller's value, not the parser, would
        // overflow here, so it is leaked.
        std::mem::forget(deep);
    }
    Schema::parse_json(&nested_arrays(100)).expect("within the cap");
    // As text: serde_json's own recursion limit answers first.
    let text = format!("{}\"int\"{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(refused(&text).starts_with("not JSON"));
}

/// A record with `n` fields, field `i` defining record `R{i}`, whose own field refers to
/// `R{i+1}` (a forward reference): flat JSON, but a chain of types `n` long.
fn chain(n: usize) -> String {
    let fields: Vec<Json> = (0..n)
        .map(|i| {
            let next = if i + 1 == n {
                json!("int")
            } else {
                json!(["null", format!("R{}", i + 1)])
            };
            json!({"name": format!("f{i}"), "type": {"type": "record", "name": format!("R{i}"),
                "fields": [{"name": "next", "type": next}]}})
        })
        .collect();
    json!({"type": "record", "name": "Top", "fields": fields}).to_string()
}

#[test]
fn long_chains_of_named_types_are_refused() {
    for n in [limits::MAX_DEPTH, 1_000, 20_000] {
        let reason = refused(&chain(n));
        assert!(reason.contains("deeper than"), "{n}: {reason}");
    }
    let ok = Schema::parse_str(&chain(limits::MAX_DEPTH / 3)).expect("a short chain");
    assert!(check_reader_writer(&ok, &ok).is_empty());
}

fn big_enum(symbols: usize, skip: Option<usize>) -> String {
    let list: Vec<String> = (0..symbols)
        .filter(|i| Some(*i) != skip)
        .map(|i| format!("S{i:07}"))
        .collect();
    json!({"type": "enum", "name": "E", "symbols": list}).to_string()
}

#[test]
fn a_two_mebibyte_enum_parses_and_checks_in_linear_time() {
    let text = big_enum(210_000, None);
    assert!(text.len() >= 2 * 1024 * 1024, "{} bytes", text.len());
    let all = Schema::parse_str(&text).expect("a big enum is valid");
    let fewer = Schema::parse_str(&big_enum(210_000, Some(123_456))).expect("valid");
    assert!(check_reader_writer(&all, &fewer).is_empty());
    let found = check_reader_writer(&fewer, &all);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, IncompatibilityKind::MissingEnumSymbols);
    assert_eq!(found[0].message, "[S0123456]");
    // A duplicate at the very end is still found (with a hash set, not a quadratic scan).
    let mut dup: Json = serde_json::from_str(&text).expect("json");
    dup["symbols"]
        .as_array_mut()
        .expect("symbols")
        .push(json!("S0000001"));
    assert_eq!(refused(&dup.to_string()), "duplicate enum symbol: S0000001");
}

#[test]
fn documents_and_lists_over_the_caps_are_refused() {
    let huge = format!(
        r#"{{"type":"string","doc":"{}"}}"#,
        "x".repeat(limits::MAX_SCHEMA_BYTES)
    );
    assert!(refused(&huge).contains("more than the limit"));
    let fields: Vec<Json> = (0..=limits::MAX_FIELDS)
        .map(|i| json!({"name": format!("f{i}"), "type": "int"}))
        .collect();
    let reason = refused(&json!({"type":"record","name":"R","fields":fields}).to_string());
    assert!(reason.contains("fields, more than the limit"), "{reason}");
    let branches: Vec<Json> = (0..=limits::MAX_UNION_BRANCHES)
        .map(|i| json!({"type":"fixed","name":format!("F{i}"),"size":1}))
        .collect();
    let reason = refused(&Json::Array(branches).to_string());
    assert!(reason.contains("branches, more than the limit"), "{reason}");
    // An error message never echoes a megabyte of input.
    let reason = refused(&format!(r#"{{"type":{{"x":"{}"}}}}"#, "y".repeat(1 << 20)));
    assert!(reason.len() < 300, "{} bytes", reason.len());
}

#[test]
fn many_fields_compare_in_linear_time() {
    let fields: Vec<Json> = (0..20_000)
        .map(|i| json!({"name": format!("f{i}"), "type": "int"}))
        .collect();
    let mut reversed = fields.clone();
    reversed.reverse();
    let a = Schema::parse_json(&json!({"type":"record","name":"R","fields":fields})).expect("a");
    let b = Schema::parse_json(&json!({"type":"record","name":"R","fields":reversed})).expect("b");
    assert!(check_reader_writer(&a, &b).is_empty());
}

/// `levels` records, each with two fields of the next record's type: a DAG whose expansion
/// doubles at each level.
fn diamond(levels: usize, leaf: &str) -> String {
    let mut records = Vec::new();
    for i in 0..levels {
        let next = if i + 1 == levels {
            json!(leaf)
        } else {
            json!(format!("D{}", i + 1))
        };
        let default = match (i + 1 == levels, leaf) {
            (false, _) => json!({}),
            (true, "string") => json!("x"),
            (true, _) => json!(0),
        };
        records.push(json!({"type":"record","name":format!("D{i}"),"fields":[
            {"name":"a","type":next,"default":default},
            {"name":"b","type":next,"default":default}]}));
    }
    // The root refers to the first record; the others are defined in a union beside it.
    json!({"type":"record","name":"Root","fields":[
        {"name":"all","type":{"type":"array","items":records}},
        {"name":"top","type":"D0","default":{}}]})
    .to_string()
}

#[test]
fn exponential_expansions_are_cut() {
    // Default validation is memoized: 40 doubling levels validate at once.
    let ints = Schema::parse_str(&diamond(40, "int")).expect("valid");
    let longs = Schema::parse_str(&diamond(40, "string")).expect("valid");
    // 2^40 incompatible leaves; the list is cut at the cap.
    let found = check_reader_writer(&longs, &ints);
    assert!(!found.is_empty() && found.len() <= limits::MAX_PROBLEMS);
    let report = check_compatibility(
        CompatibilityMode::FullTransitive,
        &longs,
        std::slice::from_ref(&ints),
    );
    assert!(!report.is_compatible() && report.problems.len() <= 2 * limits::MAX_PROBLEMS);
    // The encoder fills a missing `top` from defaults that expand to 2^40 values: refused.
    let codec = EventCodec::new("s", 1, ints);
    let event = Value::Record(vec![("all".to_owned(), Value::Array(vec![]))]);
    match codec.encode_value(&event) {
        Err(Error::SchemaViolation { reason, .. }) => {
            assert!(reason.contains("expands to more than"), "{reason}");
        }
        other => panic!("expected a violation, got {other:?}"),
    }
}

/// Records all named `N`, in namespaces `{prefix}0 .. {prefix}{n-1}`, each with a field of
/// the next one's type, the last pointing back at the first: a cycle `n` types long.
fn cycle(prefix: &str, n: usize) -> Schema {
    let mut schema = json!(format!("{prefix}0.N"));
    for i in (0..n).rev() {
        let mut record = serde_json::Map::new();
        record.insert("type".to_owned(), json!("record"));
        record.insert("name".to_owned(), json!(format!("{prefix}{i}.N")));
        record.insert(
            "fields".to_owned(),
            Json::Array(vec![json!({"name": "next", "type": schema})]),
        );
        schema = Json::Object(record);
    }
    Schema::parse_json(&schema).expect("a cycle is a valid recursive type")
}

#[test]
fn cycles_that_do_not_line_up_end_in_a_verdict() {
    // Names match by their unqualified part, so the checker walks both cycles in step: with
    // 31 and 29 types it meets 899 distinct pairs before one repeats. Java would answer
    // "compatible" after 899 nested calls; past the documented depth the answer here is
    // TOO_COMPLEX.
    let reader = cycle("r", 31);
    let writer = cycle("w", 29);
    let found = check_reader_writer(&reader, &writer);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].kind, IncompatibilityKind::TooComplex);
    // Cycles that line up still compare compatible.
    assert!(check_reader_writer(&reader, &cycle("w", 31)).is_empty());
    assert!(check_reader_writer(&cycle("r", 2), &cycle("w", 6)).is_empty());
}

#[test]
fn a_deep_value_of_a_recursive_type_is_a_violation() {
    let schema = Schema::parse_str(
        r#"{"type":"record","name":"Node","fields":[{"name":"next","type":["null","Node"]}]}"#,
    )
    .expect("valid");
    let mut value = Value::Record(vec![("next".to_owned(), Value::Null)]);
    for _ in 0..100_000 {
        value = Value::Record(vec![("next".to_owned(), Value::Union(1, Box::new(value)))]);
    }
    let codec = EventCodec::new("s", 1, schema);
    match codec.encode_value(&value) {
        Err(Error::SchemaViolation { reason, .. }) => assert!(reason.contains("nests deeper")),
        other => panic!("expected a violation, got {other:?}"),
    }
    // apache_avro's Value drops recursively; leak the deep value rather than overflow here.
    std::mem::forget(value);
}

/// A union of `n` records of `fields` fields each, in `namespace`.
fn wide_union(namespace: &str, n: usize, fields: usize) -> Schema {
    let records: Vec<Json> = (0..n)
        .map(|i| {
            let fields: Vec<Json> = (0..fields)
                .map(|f| json!({"name": format!("f{f}"), "type": "int"}))
                .collect();
            json!({"type":"record","name":format!("R{i}"),"namespace":namespace,"fields":fields})
        })
        .collect();
    Schema::parse_json(&Json::Array(records)).expect("valid")
}

#[test]
fn checking_two_wide_unions_is_bounded() {
    // 1000 x 1000 record pairs of 100 fields each: 10^8 field matches unbounded.
    let reader = wide_union("r", limits::MAX_UNION_BRANCHES, 100);
    let writer = wide_union("w", limits::MAX_UNION_BRANCHES, 100);
    let found = check_reader_writer(&reader, &writer);
    assert!(
        !found.is_empty(),
        "cut short, so refused rather than guessed"
    );
    // Small unions still get their real verdict.
    let small = wide_union("s", 3, 2);
    assert!(check_reader_writer(&small, &wide_union("t", 3, 2)).is_empty());
}

#[test]
fn a_long_default_against_a_wide_union_is_bounded() {
    // 200,000 default elements, each tried against up to 1,000 record branches.
    let branches: Vec<Json> = (0..limits::MAX_UNION_BRANCHES - 1)
        .map(|i| json!({"type":"record","name":format!("B{i}"),"fields":[]}))
        .chain(std::iter::once(json!("int")))
        .collect();
    let default: Vec<u32> = vec![1; 200_000];
    let schema = json!({"type":"record","name":"R","fields":[
        {"name":"xs","type":{"type":"array","items":branches},"default":default}]});
    let Err(Error::InvalidSchema { reason }) = Schema::parse_json(&schema) else {
        panic!("accepted");
    };
    assert!(reason.contains("steps"), "{reason}");
}

/// Avro's zig-zag varint of `n`.
fn varint(n: i64) -> Vec<u8> {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    let mut out = Vec::new();
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
    out
}

#[test]
fn a_declared_length_past_the_decode_cap_is_refused_before_allocating() {
    use outbox_core::encode::wire::{MAX_DECODE_ALLOCATION_BYTES, decode_datum};
    let schema = Schema::parse_str(r#""string""#).expect("schema");
    // 100 MiB declared in 4 bytes: under apache_avro's own 512 MiB default, over our cap.
    let hostile = varint(100 * 1024 * 1024);
    let err = decode_datum(&hostile, &schema, None).expect_err("refused");
    let Error::Decode { reason } = err else {
        panic!("expected Decode, got {err:?}");
    };
    assert!(
        reason.contains("Unable to allocate 104857600 bytes"),
        "{reason}"
    );
    assert!(
        reason.contains(&format!("maximum allowed: {MAX_DECODE_ALLOCATION_BYTES}")),
        "{reason}"
    );
    assert_eq!(
        outbox_core::encode::wire::cap_decode_allocations(),
        64 << 20
    );

    // A genuine value decodes as before.
    let mut fine = varint(5);
    fine.extend_from_slice(b"hello");
    assert_eq!(
        decode_datum(&fine, &schema, None).expect("decodes"),
        Value::String("hello".to_owned())
    );
}
