//! Logical types the derive can carry through `#[avro(with = ...)]`, and type names for
//! messages.

use apache_avro::schema::{InnerDecimalSchema, Schema as Avro, UuidSchema};

/// The schema expression of a logical type the derive can carry on an `i32`, `i64` or
/// `String` field (through `#[avro(with = ...)]`).
pub(super) fn logical(schema: &Avro) -> Option<String> {
    let variant = match schema {
        Avro::Decimal(d) if matches!(d.inner, InnerDecimalSchema::Bytes) => {
            return Some(format!(
                "::apache_avro::schema::Schema::Decimal(::apache_avro::schema::DecimalSchema {{ precision: {}, scale: {}, inner: ::apache_avro::schema::InnerDecimalSchema::Bytes }})",
                d.precision, d.scale
            ));
        }
        Avro::Uuid(UuidSchema::String) => {
            return Some(
                "::apache_avro::schema::Schema::Uuid(::apache_avro::schema::UuidSchema::String)"
                    .to_owned(),
            );
        }
        Avro::Date => "Date",
        Avro::TimeMillis => "TimeMillis",
        Avro::TimeMicros => "TimeMicros",
        Avro::TimestampMillis => "TimestampMillis",
        Avro::TimestampMicros => "TimestampMicros",
        Avro::TimestampNanos => "TimestampNanos",
        Avro::LocalTimestampMillis => "LocalTimestampMillis",
        Avro::LocalTimestampMicros => "LocalTimestampMicros",
        Avro::LocalTimestampNanos => "LocalTimestampNanos",
        _ => return None,
    };
    Some(format!("::apache_avro::schema::Schema::{variant}"))
}

pub(super) fn logical_rust_type(schema: &Avro) -> String {
    match schema {
        Avro::Decimal(_) => "::apache_avro::Decimal",
        Avro::Uuid(_) => "::std::string::String",
        Avro::Date | Avro::TimeMillis => "i32",
        _ => "i64",
    }
    .to_owned()
}

pub(super) fn union_text(branches: &[Avro]) -> String {
    let names: Vec<&str> = branches.iter().map(kind_name).collect();
    format!(
        "the union [{}] (only [\"null\", T], null first, becomes Option<T>)",
        names.join(", ")
    )
}

pub(super) fn kind_name(schema: &Avro) -> &'static str {
    match schema {
        Avro::Null => "null",
        Avro::Boolean => "boolean",
        Avro::Int => "int",
        Avro::Long => "long",
        Avro::Float => "float",
        Avro::Double => "double",
        Avro::Bytes => "bytes",
        Avro::String => "string",
        Avro::Array(_) => "array",
        Avro::Map(_) => "map",
        Avro::Union(_) => "union",
        Avro::Record(_) => "record",
        Avro::Enum(_) => "enum",
        Avro::Fixed(_) => "fixed",
        Avro::Decimal(_) => "decimal",
        Avro::BigDecimal => "big-decimal",
        Avro::Uuid(_) => "uuid",
        Avro::Date => "date",
        Avro::TimeMillis => "time-millis",
        Avro::TimeMicros => "time-micros",
        Avro::TimestampMillis => "timestamp-millis",
        Avro::TimestampMicros => "timestamp-micros",
        Avro::TimestampNanos => "timestamp-nanos",
        Avro::LocalTimestampMillis => "local-timestamp-millis",
        Avro::LocalTimestampMicros => "local-timestamp-micros",
        Avro::LocalTimestampNanos => "local-timestamp-nanos",
        Avro::Duration(_) => "duration",
        Avro::Ref { .. } => "reference",
    }
}
