//! Write-time validation and encoding: bytes checked against apache_avro's own encoder and
//! decoder; every refusal names the field path.

use std::collections::HashMap;

use outbox_core::avro::AvroSchema;
use outbox_core::avro::types::Value;
use outbox_core::avro::writer::datum::GenericDatumWriter;
use outbox_core::encode::{EventCodec, PayloadFormat, wire};
use outbox_core::{Error, Event, NewOutboxRow, Schema, SchemaId};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "com.acme.orders")]
enum Status {
    Placed,
    Paid,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "com.acme.orders")]
struct Line {
    sku: String,
    quantity: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "com.acme.orders", doc = "An order was placed")]
struct OrderPlaced {
    order_id: String,
    total_cents: i64,
    note: Option<String>,
    status: Status,
    lines: Vec<Line>,
    tags: HashMap<String, i32>,
    ratio: f64,
    paid: bool,
}

impl Event for OrderPlaced {
    const TOPIC: &'static str = "orders";
    fn key(&self) -> Option<String> {
        Some(self.order_id.clone())
    }
}

fn order() -> OrderPlaced {
    OrderPlaced {
        order_id: "o-1".into(),
        total_cents: 12_345_678_901,
        note: Some("leave at the door".into()),
        status: Status::Paid,
        lines: vec![
            Line {
                sku: "a".into(),
                quantity: 2,
            },
            Line {
                sku: "b".into(),
                quantity: -1,
            },
        ],
        tags: HashMap::from([("vip".to_owned(), 1)]),
        ratio: 0.25,
        paid: true,
    }
}

fn codec() -> EventCodec {
    EventCodec::new(
        "orders-value",
        42,
        OrderPlaced::schema().expect("derived schema"),
    )
}

fn violation(result: Result<Vec<u8>, Error>) -> (String, String) {
    match result {
        Err(Error::SchemaViolation {
            path,
            reason,
            subject,
        }) => {
            assert_eq!(subject, "orders-value");
            (path, reason)
        }
        other => panic!("expected a schema violation, got {other:?}"),
    }
}

#[test]
fn bytes_equal_apache_avro_encoding_and_decode_back() {
    let event = order();
    let bytes = codec().encode(&event).expect("valid event");
    let (id, datum) = wire::split_frame(&bytes).expect("framed");
    assert_eq!(id, SchemaId::new(42));
    assert_eq!(bytes[0], 0, "Confluent magic byte");

    let avro_schema = OrderPlaced::get_schema();
    let value = outbox_core::avro::to_value(&event)
        .and_then(|v| v.resolve(&avro_schema))
        .expect("resolvable");
    let reference = GenericDatumWriter::builder(&avro_schema)
        .build()
        .and_then(|w| w.write_value_to_vec(value))
        .expect("apache_avro encodes");
    assert_eq!(datum, reference.as_slice(), "same bytes as apache_avro");

    let schema = OrderPlaced::schema().expect("schema");
    let decoded: OrderPlaced = wire::decode(
        &bytes,
        |id| {
            assert_eq!(id, 42);
            Ok(schema.clone())
        },
        None,
    )
    .expect("decodes");
    assert_eq!(decoded, event);
}

#[test]
fn row_carries_topic_key_type_and_payload() {
    let row = NewOutboxRow::from_event(&codec(), &order()).expect("valid");
    assert_eq!(row.topic, "orders");
    assert_eq!(row.event_key.as_deref(), Some(&b"o-1"[..]));
    assert_eq!(row.event_type, "com.acme.orders.OrderPlaced");
    assert_eq!(row.schema_id, Some(SchemaId::new(42)));
    assert_eq!(row.content_type, "application/avro");
    assert_eq!(row.event_id.get_version_num(), 7);
    assert_eq!(row.headers_json(), "[]");
    let with = row.with_header("traceparent", "00-abc-def-01");
    assert_eq!(with.headers_json(), r#"[["traceparent","00-abc-def-01"]]"#);
}

#[test]
fn wrong_type_names_the_field() {
    #[derive(Serialize)]
    struct Wrong {
        order_id: i64,
    }
    let schema = Schema::parse_str(
        r#"{"type":"record","name":"O","fields":[{"name":"order_id","type":"string"}]}"#,
    )
    .expect("valid");
    let codec = EventCodec::new("orders-value", 1, schema);
    let (path, reason) = violation(codec.encode(&Wrong { order_id: 5 }));
    assert_eq!(path, "order_id");
    assert_eq!(reason, "expected string, found a long");
}

#[test]
fn missing_field_is_named() {
    #[derive(Serialize)]
    struct Partial {
        order_id: String,
    }
    let (path, reason) = violation(codec().encode(&Partial {
        order_id: "x".into(),
    }));
    assert_eq!(path, "total_cents");
    assert_eq!(reason, "required field is missing");
}

#[test]
fn null_in_non_null_field_is_named() {
    #[derive(Serialize)]
    struct WithNull {
        order_id: Option<String>,
    }
    let schema = Schema::parse_str(
        r#"{"type":"record","name":"O","fields":[{"name":"order_id","type":"string"}]}"#,
    )
    .expect("valid");
    let codec = EventCodec::new("orders-value", 1, schema);
    let (path, reason) = violation(codec.encode(&WithNull { order_id: None }));
    assert_eq!(path, "order_id");
    assert_eq!(reason, "expected string, found null");
}

#[test]
fn unknown_enum_symbol_is_named_with_the_symbols() {
    let value = Value::Record(vec![("status".into(), Value::String("Shipped".into()))]);
    let schema = Schema::parse_str(
        r#"{"type":"record","name":"O","fields":[{"name":"status","type":
            {"type":"enum","name":"Status","symbols":["Placed","Paid"]}}]}"#,
    )
    .expect("valid");
    let codec = EventCodec::new("orders-value", 1, schema);
    let (path, reason) = violation(codec.encode_value(&value));
    assert_eq!(path, "status");
    assert_eq!(reason, r#"symbol "Shipped" is not one of [Placed, Paid]"#);
}

#[test]
fn nested_path_has_indices_and_map_keys() {
    let schema = OrderPlaced::schema().expect("schema");
    let codec = EventCodec::new("orders-value", 1, schema);
    let mut value = outbox_core::avro::to_value(order()).expect("value");
    if let Value::Record(fields) = &mut value {
        for (name, v) in fields.iter_mut() {
            if name == "lines"
                && let Value::Array(items) = v
            {
                items[1] = Value::Record(vec![
                    ("sku".into(), Value::Boolean(true)),
                    ("quantity".into(), Value::Int(1)),
                ]);
            }
        }
    }
    let (path, reason) = violation(codec.encode_value(&value));
    assert_eq!(path, "lines[1].sku");
    assert_eq!(reason, "expected string, found a boolean");

    let tags = Value::Record(vec![(
        "tags".into(),
        Value::Map(HashMap::from([(
            "vip".to_owned(),
            Value::String("x".into()),
        )])),
    )]);
    let schema = Schema::parse_str(
        r#"{"type":"record","name":"T","fields":[{"name":"tags","type":{"type":"map","values":"int"}}]}"#,
    )
    .expect("valid");
    let (path, _) = violation(EventCodec::new("orders-value", 1, schema).encode_value(&tags));
    assert_eq!(path, r#"tags["vip"]"#);
}

#[test]
fn field_not_in_schema_is_refused() {
    #[derive(Serialize)]
    struct Extra {
        order_id: String,
        surprise: i32,
    }
    let schema = Schema::parse_str(
        r#"{"type":"record","name":"O","fields":[{"name":"order_id","type":"string"}]}"#,
    )
    .expect("valid");
    let (path, reason) = violation(EventCodec::new("orders-value", 1, schema).encode(&Extra {
        order_id: "a".into(),
        surprise: 1,
    }));
    assert_eq!(
        (path.as_str(), reason.as_str()),
        ("surprise", "field is not in the schema")
    );
}

#[test]
fn oversize_event_is_refused_at_write_time() {
    let mut big = order();
    big.note = Some("x".repeat(2 * 1024 * 1024));
    match codec().encode(&big) {
        Err(Error::PayloadTooLarge { size, limit, topic }) => {
            assert!(size > 2 * 1024 * 1024);
            assert_eq!(limit, 1024 * 1024);
            assert_eq!(topic, "orders");
        }
        other => panic!("expected PayloadTooLarge, got {other:?}"),
    }
    let small_limit = codec().with_max_bytes(16);
    assert!(matches!(
        small_limit.encode(&order()),
        Err(Error::PayloadTooLarge { limit: 16, .. })
    ));
}

#[test]
fn missing_fields_with_defaults_are_filled_in() {
    #[derive(Serialize)]
    struct Old {
        a: i32,
    }
    let schema = Schema::parse_str(
        r#"{"type":"record","name":"D","fields":[{"name":"a","type":"int"},
           {"name":"b","type":["null","string"],"default":null},
           {"name":"c","type":"string","default":"hi"},
           {"name":"d","type":{"type":"array","items":"long"},"default":[1,2]}]}"#,
    )
    .expect("valid");
    let codec = EventCodec::new("d-value", 3, schema.clone());
    let bytes = codec.encode(&Old { a: 7 }).expect("defaults fill the gaps");
    let (_, datum) = wire::split_frame(&bytes).expect("framed");
    let value = wire::decode_datum(datum, &schema, None).expect("decodes");
    assert_eq!(
        value,
        Value::Record(vec![
            ("a".into(), Value::Int(7)),
            ("b".into(), Value::Union(0, Box::new(Value::Null))),
            ("c".into(), Value::String("hi".into())),
            (
                "d".into(),
                Value::Array(vec![Value::Long(1), Value::Long(2)])
            ),
        ])
    );
}

#[test]
fn json_format_is_validated_and_plain() {
    let codec = codec().with_format(PayloadFormat::Json);
    let bytes = codec.encode(&order()).expect("valid");
    let json: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
    assert_eq!(json["order_id"], "o-1");
    assert_eq!(codec.format().content_type(), "application/json");
    #[derive(Serialize)]
    struct Bad {
        order_id: bool,
    }
    let (path, _) = violation(codec.encode(&Bad { order_id: true }));
    assert_eq!(path, "order_id");
}

#[test]
fn malformed_frames_are_typed_errors() {
    assert!(matches!(wire::split_frame(&[]), Err(Error::Decode { .. })));
    assert!(matches!(
        wire::split_frame(&[0, 0, 0]),
        Err(Error::Decode { .. })
    ));
    let err = wire::split_frame(&[1, 0, 0, 0, 1, 2]).expect_err("bad magic");
    assert_eq!(
        err.to_string(),
        "cannot decode record: unknown magic byte 0x01 (expected 0x00)"
    );
}

#[test]
fn reader_schema_resolution_reads_newer_data() {
    // A consumer on v1 reads data written with v2 (which added a defaulted field).
    let v1 =
        Schema::parse_str(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#)
            .expect("v1");
    let v2 = Schema::parse_str(
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string","default":""}]}"#,
    )
    .expect("v2");
    #[derive(Serialize)]
    struct V2 {
        a: i32,
        b: String,
    }
    #[derive(Debug, Deserialize, PartialEq)]
    struct V1 {
        a: i32,
    }
    let bytes = EventCodec::new("r-value", 2, v2.clone())
        .encode(&V2 {
            a: 9,
            b: "new".into(),
        })
        .expect("valid");
    let read: V1 = wire::decode(&bytes, |_| Ok(v2.clone()), Some(&v1)).expect("resolves");
    assert_eq!(read, V1 { a: 9 });
}

#[cfg(feature = "opentelemetry")]
#[test]
fn current_trace_context_becomes_the_traceparent_header() {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    let span = SpanContext::new(
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("trace id"),
        SpanId::from_hex("00f067aa0ba902b7").expect("span id"),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let _guard = opentelemetry::Context::new()
        .with_remote_span_context(span)
        .attach();
    let row = NewOutboxRow::from_event(&codec(), &order()).expect("valid");
    assert_eq!(
        row.headers,
        [(
            "traceparent".to_owned(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned()
        )]
    );
}

/// A schema id the `schema_id` column cannot hold is refused when the row is built; it used
/// to become `NULL` on insert. `i32::MAX` is the largest id a row takes.
#[test]
fn rows_refuse_schema_ids_above_i32_max() {
    let schema = || OrderPlaced::schema().expect("derived schema");
    let largest = EventCodec::new("orders-value", i32::MAX.unsigned_abs(), schema());
    let row = NewOutboxRow::from_event(&largest, &order()).expect("row");
    assert_eq!(row.stored_schema_id().expect("fits"), Some(i32::MAX));
    assert_eq!(
        row.schema_id.map(SchemaId::get),
        Some(i32::MAX.unsigned_abs())
    );
    let id = i32::MAX.unsigned_abs() + 1;
    let too_large = EventCodec::new("orders-value", id, schema());
    let err = NewOutboxRow::from_event(&too_large, &order()).expect_err("refused");
    assert!(
        matches!(err, Error::SchemaIdOutOfRange { id: got } if got == id),
        "{err:?}"
    );
    let mut row = row;
    row.schema_id = Some(SchemaId::new(id));
    assert!(matches!(
        row.insert_params(),
        Err(Error::SchemaIdOutOfRange { .. })
    ));
}
