//! The change-event schema a table derives, and the relay's encoding of captured JSON
//! images: every value checked, a row that does not fit refused naming the field.

use outbox_core::Error;
use outbox_core::capture::{CapturePlan, CaptureSpec, ColumnKind, SourceColumn, encode_image};
use outbox_core::encode::wire;
use outbox_core::table::Dialect;

fn col(name: &str, data_type: &str, nullable: bool, pk: Option<u32>) -> SourceColumn {
    SourceColumn {
        name: name.to_owned(),
        data_type: data_type.to_owned(),
        nullable,
        comment: None,
        primary_key: pk,
    }
}

fn plan() -> CapturePlan {
    let columns = [
        col("id", "bigint", false, Some(1)),
        col("total", "numeric(7,2)", false, None),
        col("placed_on", "date", false, None),
        col("at", "timestamp with time zone", true, None),
        col("ref", "uuid", true, None),
        col("blob", "bytea", true, None),
        col("paid", "boolean", false, None),
    ];
    CapturePlan::derive(Dialect::Postgres, &CaptureSpec::new("orders"), &columns).expect("plan")
}

fn encode(image: &str) -> Result<Vec<u8>, Error> {
    let schema = plan().schema().expect("schema");
    encode_image(&schema, 9, "orders-value", image.as_bytes())
}

const GOOD: &str = r#"{"op":"c","before":null,"after":{"id":1,"total":"12.50","placed_on":19724,
    "at":1700000000000000,"ref":"0190a0b0-0000-7000-8000-000000000000","blob":"00ff","paid":true},"ts":1}"#;

#[test]
fn derives_the_narrowest_types() {
    let plan = plan();
    let kinds: Vec<_> = plan
        .fields
        .iter()
        .map(|f| (f.field.as_str(), f.kind, f.nullable))
        .collect();
    assert_eq!(kinds[0], ("id", ColumnKind::Long, false));
    assert_eq!(
        kinds[1],
        (
            "total",
            ColumnKind::Decimal {
                precision: 7,
                scale: 2
            },
            false
        )
    );
    assert_eq!(kinds[3], ("at", ColumnKind::Timestamp, true));
    let schema = plan.schema().expect("schema");
    assert_eq!(
        schema.full_name().as_deref(),
        Some("outbox.capture.orders.Change")
    );
    let json = schema.canonical_json();
    assert!(
        json.contains(r#""logicalType":"decimal","precision":7,"scale":2"#),
        "{json}"
    );
    assert!(
        json.contains(r#""default":null"#),
        "nullable columns default to null"
    );
}

#[test]
fn a_fitting_image_encodes_and_decodes() {
    let bytes = encode(GOOD).expect("fits");
    let (id, datum) = wire::split_frame(&bytes).expect("framed");
    assert_eq!(id, outbox_core::SchemaId::new(9));
    let schema = plan().schema().expect("schema");
    let value = wire::decode_datum(datum, &schema, None).expect("decodes");
    let text = format!("{value:?}");
    assert!(text.contains("Enum(0, \"c\")"), "{text}");
    assert!(text.contains("Date(19724)"), "{text}");
}

#[test]
fn a_value_that_does_not_fit_names_the_field() {
    for (image, path, says) in [
        (
            GOOD.replace(r#""12.50""#, r#""12.505""#),
            "after.total",
            "digits after the point",
        ),
        (
            GOOD.replace(r#""12.50""#, r#""123456.00""#),
            "after.total",
            "more than 7 digits",
        ),
        (
            GOOD.replace(r#""12.50""#, r#""twelve""#),
            "after.total",
            "not a decimal",
        ),
        (
            GOOD.replace(r#""placed_on":19724"#, r#""placed_on":null"#),
            "after.placed_on",
            "found null",
        ),
        (
            GOOD.replace(r#""placed_on":19724,"#, ""),
            "after.placed_on",
            "missing field",
        ),
        (
            GOOD.replace(r#""id":1"#, r#""id":"1""#),
            "after.id",
            "expected an integer",
        ),
        (GOOD.replace("0190a0b0", "zzzz"), "after.ref", "not a uuid"),
        (GOOD.replace("00ff", "0g"), "after.blob", "not hex"),
        (
            GOOD.replace(r#""op":"c""#, r#""op":"x""#),
            "op",
            "not a symbol",
        ),
        (
            GOOD.replace(r#""paid":true"#, r#""paid":2"#),
            "after.paid",
            "expected a boolean",
        ),
    ] {
        match encode(&image) {
            Err(Error::SchemaViolation {
                path: p, reason, ..
            }) => {
                assert_eq!(p, path, "{image}");
                assert!(reason.contains(says), "{reason}");
            }
            other => panic!("{image}: {other:?}"),
        }
    }
}

#[test]
fn hostile_images_are_refused_without_panic() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let huge_decimal = GOOD.replace(r#""12.50""#, &format!("\"{}\"", "9".repeat(10_000)));
    for image in [
        "",
        "not json",
        "null",
        "[]",
        deep.as_str(),
        huge_decimal.as_str(),
        r#"{"op":"c"}"#,
    ] {
        assert!(
            matches!(encode(image), Err(Error::SchemaViolation { .. })),
            "{}",
            &image[..image.len().min(40)]
        );
    }
}

#[test]
fn renames_and_keys() {
    let columns = [
        col("order_id", "integer", false, Some(1)),
        col("line_no", "smallint", false, Some(2)),
        col("secret", "text", true, None),
    ];
    let spec = CaptureSpec {
        exclude: vec!["secret".to_owned()],
        renames: vec![("line_no".to_owned(), "line".to_owned())],
        ..CaptureSpec::new("lines")
    };
    let plan = CapturePlan::derive(Dialect::Postgres, &spec, &columns).expect("plan");
    assert_eq!(
        plan.key
            .iter()
            .map(|k| k.field.as_str())
            .collect::<Vec<_>>(),
        ["order_id", "line"]
    );
    assert_eq!(plan.fields.len(), 2);
    let clash = CaptureSpec {
        renames: vec![("line_no".to_owned(), "order_id".to_owned())],
        ..CaptureSpec::new("lines")
    };
    let err = CapturePlan::derive(Dialect::Postgres, &clash, &columns).expect_err("clash");
    assert!(err.to_string().contains("two columns"), "{err}");
    let bad = CaptureSpec {
        renames: vec![("line_no".to_owned(), "li-ne".to_owned())],
        ..CaptureSpec::new("lines")
    };
    assert!(CapturePlan::derive(Dialect::Postgres, &bad, &columns).is_err());
    let bad_topic = CaptureSpec {
        topic: Some("a b".to_owned()),
        ..CaptureSpec::new("lines")
    };
    assert!(CapturePlan::derive(Dialect::Postgres, &bad_topic, &columns).is_err());
}
