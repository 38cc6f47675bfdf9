//! A schema using every mapping codegen offers: the generated type's schema equals the
//! source, data round-trips, the `Event` impl publishes through the outbox's codec and the
//! bytes decode with the source schema; and what the derive cannot express is refused.

use outbox_codegen_tests::check;
use outbox_codegen_tests::fixtures::REFUSED;
use outbox_codegen_tests::fixtures::com::acme::customers::{Customer, Tier};
use outbox_codegen_tests::fixtures::com::acme::orders::{Kind, Line, OrderPlaced};
use outbox_core::encode::EventCodec;
use outbox_core::{Event, NewOutboxRow, Schema};

const SOURCE: &str = include_str!("../schemas/order_placed.avsc");

fn event() -> OrderPlaced {
    let customer = Customer {
        r#ref: "c-1".into(),
        tier: Tier::GOLD,
    };
    OrderPlaced {
        order_id: "018f0d3c-5d3e-7c5a-9a53-6a1f0c2b4e11".into(),
        r#type: Kind::r#match,
        placed_at: 1_700_000_000_000,
        due: Some(19_700),
        cut_off: 61_000,
        total_cents: 1_999,
        lines: vec![Line {
            sku: "a \"quoted\" sku".into(),
            quantity: 2,
        }],
        customer: customer.clone(),
        billed_to: Some(customer),
        checksum: [7; 16],
        signature: [9; 16],
        payload: vec![0, 1, 2, 255],
        attachment: None,
        tags: [("k".to_owned(), "v".to_owned())].into(),
        history: vec![[("x".to_owned(), Some(3)), ("y".to_owned(), None)].into()],
        shipped_at: Some(1_700_000_000_000_123),
        self_check: false,
        ratio: 0.25,
        weight: 12.5,
        price: outbox_core::avro::Decimal::from(vec![4, 210]),
        discount: Some(outbox_core::avro::Decimal::from(vec![125])),
    }
}

#[test]
fn the_derived_schema_equals_the_source_and_data_round_trips() {
    check::<OrderPlaced>(SOURCE).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn names_of_prelude_types_and_keywords_compile_and_round_trip() {
    check::<outbox_codegen_tests::awkward::Option>(include_str!("../schemas/awkward.avsc"))
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn the_check_notices_any_difference_from_the_source() {
    for (from, to) in [
        ("\"doc\": \"When\"", "\"doc\": \"Then\""),
        (
            "\"logicalType\": \"timestamp-millis\"",
            "\"logicalType\": \"timestamp-micros\"",
        ),
        (
            "\"default\": 0, \"doc\": \"Total",
            "\"default\": 1, \"doc\": \"Total",
        ),
        ("\"aliases\": [\"total\"]", "\"aliases\": [\"sum\"]"),
        ("\"aliases\": [\"Client\"]", "\"aliases\": []"),
        ("\"size\": 16", "\"size\": 15"),
    ] {
        assert!(SOURCE.contains(from), "{from}");
        let changed = SOURCE.replacen(from, to, 1);
        assert!(
            check::<OrderPlaced>(&changed).is_err(),
            "{from} -> {to} went unnoticed"
        );
    }
}

#[test]
fn keywords_enum_defaults_and_docs_come_through() {
    assert_eq!(Kind::default(), Kind::UNKNOWN);
    let json = serde_json::to_value(event()).expect("serde");
    assert_eq!(json["type"], "match");
    assert_eq!(json["customer"]["ref"], "c-1");
    let schema = Schema::from_avro(&<OrderPlaced as outbox_core::avro::AvroSchema>::get_schema())
        .expect("valid");
    assert!(
        schema
            .canonical_json()
            .contains(r#""doc":"An order was placed.\nIts \"total\" is in cents.""#)
    );
}

#[test]
fn the_event_impl_publishes_bytes_the_source_schema_decodes() {
    assert_eq!(OrderPlaced::TOPIC, "orders");
    let e = event();
    assert_eq!(
        e.key().as_deref(),
        Some("018f0d3c-5d3e-7c5a-9a53-6a1f0c2b4e11")
    );
    let codec = EventCodec::new("orders-value", 7, OrderPlaced::schema().expect("schema"));
    let row = NewOutboxRow::from_event(&codec, &e).expect("validated and encoded");
    assert_eq!(&row.payload[..5], &[0, 0, 0, 0, 7]);
    let source = outbox_core::avro::Schema::parse_str(SOURCE).expect("source");
    #[allow(deprecated)]
    let value = outbox_core::avro::from_avro_datum(&source, &mut &row.payload[5..], None)
        .expect("decodes with the source schema");
    let back: OrderPlaced = outbox_core::avro::from_value(&value).expect("into the type");
    assert_eq!(back, e);
}

#[test]
fn what_the_derive_cannot_express_is_refused_naming_file_and_place() {
    let expected = [
        (
            "decimal.avsc",
            "at /fields/0/type: the AvroSchema derive cannot express the type decimal",
        ),
        (
            "uuid_list.avsc",
            "at /fields/0/type/items: the AvroSchema derive cannot express the logical type uuid",
        ),
        (
            "null_second.avsc",
            "at /fields/0/type: the AvroSchema derive cannot express the union [string, null]",
        ),
    ];
    for ((file, error), (want_file, want)) in REFUSED.iter().zip(expected) {
        assert_eq!(*file, want_file);
        assert!(error.contains(want_file) && error.contains(want), "{error}");
    }
}

#[test]
fn markdown_in_docs_and_upper_case_namespaces_round_trip() {
    use outbox_codegen_tests::hostile::Com::Acme::Type::{Hostile, Kind};
    let source = include_str!("../schemas/hostile.avsc");
    check::<Hostile>(source).unwrap_or_else(|e| panic!("{e}"));
    // The schema keeps each doc exactly; only the Rust doc is escaped.
    let schema = Schema::from_avro(&<Hostile as outbox_core::avro::AvroSchema>::get_schema())
        .expect("valid");
    assert!(schema.canonical_json().contains(r#""doc":"[Kind::a] <i>""#));
    assert_ne!(Kind::a, Kind::A);
}

#[test]
fn defaults_of_every_type_at_their_limits_come_through() {
    check::<outbox_codegen_tests::defaults::d::Defaults>(include_str!("../schemas/defaults.avsc"))
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_null_namespace_type_inside_a_namespace_keeps_its_name() {
    check::<outbox_codegen_tests::null_inside::com::acme::Outer>(include_str!(
        "../schemas/null_inside.avsc"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
}
