//! Schema parsing follows Java's rules: what it refuses, and the canonical form.

use outbox_core::{Error, Schema};

fn refused(json: &str) -> String {
    match Schema::parse_str(json) {
        Err(Error::InvalidSchema { reason }) => reason,
        other => panic!("expected InvalidSchema for {json}, got {other:?}"),
    }
}

#[test]
fn invalid_schemas_are_refused_with_a_reason() {
    assert!(refused("{not json").starts_with("not JSON"));
    assert_eq!(
        refused(r#"{"type":"record","name":"1x","fields":[]}"#),
        r#"illegal name: "1x""#
    );
    assert_eq!(
        refused(r#"{"type":"record","name":"R"}"#),
        "record has no fields: R"
    );
    assert_eq!(refused(r#"["int","int"]"#), "duplicate in union: INT");
    assert_eq!(
        refused(r#"["int",["string"]]"#),
        "unions may not immediately contain other unions"
    );
    assert_eq!(refused(r#""Nowhere""#), "undefined name: Nowhere");
    assert_eq!(
        refused(r#"{"type":"fixed","name":"F"}"#),
        "fixed F needs a non-negative int size"
    );
    assert_eq!(
        refused(r#"{"type":"enum","name":"E","symbols":["A","A"]}"#),
        "duplicate enum symbol: A"
    );
    assert!(
        refused(r#"{"type":"enum","name":"E","symbols":["A"],"default":"B"}"#)
            .contains("not in the symbols")
    );
    assert!(
        refused(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int","default":"x"}]}"#
        )
        .starts_with("invalid default for field a of R")
    );
    assert_eq!(
        refused(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"a","type":"int"}]}"#
        ),
        "duplicate field a in record R"
    );
    assert_eq!(
        refused(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"record","name":"R","fields":[]}}]}"#
        ),
        "can't redefine: R"
    );
    assert_eq!(
        refused(r#"{"type":"record","name":"int","fields":[]}"#),
        "schemas may not be named after primitives: int"
    );
}

#[test]
fn names_resolve_in_the_enclosing_namespace_and_forward() {
    let s = Schema::parse_str(
        r#"{"type":"record","name":"Outer","namespace":"com.acme","fields":[
            {"name":"a","type":"Later"},
            {"name":"b","type":{"type":"enum","name":"Later","symbols":["X"]}}]}"#,
    )
    .expect("forward reference within the document");
    assert_eq!(s.full_name().as_deref(), Some("com.acme.Outer"));
}

#[test]
fn canonical_form_ignores_key_order_and_whitespace() {
    let a =
        Schema::parse_str(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#)
            .expect("a");
    let b = Schema::parse_str("{ \"fields\" : [ {\"type\":\"int\", \"name\":\"a\"} ],\n \"name\":\"R\", \"type\":\"record\" }").expect("b");
    assert_eq!(a.canonical_json(), b.canonical_json());
    assert_eq!(a.fingerprint(), b.fingerprint());
    assert_eq!(a.fingerprint().len(), 64);
    assert_eq!(
        a.canonical_json(),
        r#"{"fields":[{"name":"a","type":"int"}],"name":"R","type":"record"}"#
    );
}

#[test]
fn logical_types_parse_and_convert_to_apache_avro() {
    let s = Schema::parse_str(
        r#"{"type":"record","name":"L","fields":[
            {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
            {"name":"id","type":{"type":"string","logicalType":"uuid"}},
            {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}}]}"#,
    )
    .expect("logical types");
    s.to_avro().expect("apache_avro reads it too");
}
