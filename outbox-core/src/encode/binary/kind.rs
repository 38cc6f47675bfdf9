//! What kind of value a schema node or a value is: the union branch choice and the words of
//! a type-mismatch message.

use apache_avro::types::Value;

use crate::schema::Parsed;
use crate::schema::model::{AvroType, Node};

/// Whether a value is of the right general kind for a union branch (no deep check).
pub(super) fn shallow_match(node: &Node, value: &Value) -> bool {
    match (node, value) {
        (Node::Primitive(t), v) => match t {
            AvroType::Null => matches!(v, Value::Null),
            AvroType::Boolean => matches!(v, Value::Boolean(_)),
            AvroType::Int => matches!(v, Value::Int(_) | Value::Date(_) | Value::TimeMillis(_)),
            AvroType::Long => matches!(
                v,
                Value::Int(_)
                    | Value::Long(_)
                    | Value::TimeMicros(_)
                    | Value::TimestampMillis(_)
                    | Value::TimestampMicros(_)
                    | Value::TimestampNanos(_)
                    | Value::LocalTimestampMillis(_)
                    | Value::LocalTimestampMicros(_)
                    | Value::LocalTimestampNanos(_)
            ),
            AvroType::Float => matches!(v, Value::Int(_) | Value::Long(_) | Value::Float(_)),
            AvroType::Double => matches!(
                v,
                Value::Int(_) | Value::Long(_) | Value::Float(_) | Value::Double(_)
            ),
            AvroType::Bytes => matches!(v, Value::Bytes(_) | Value::String(_)),
            AvroType::String => matches!(v, Value::String(_) | Value::Uuid(_)),
            _ => false,
        },
        (Node::Array(_), Value::Array(_))
        | (Node::Map(_), Value::Map(_))
        | (Node::Record { .. }, Value::Record(_))
        | (Node::Fixed { .. }, Value::Fixed(..) | Value::Bytes(_) | Value::Uuid(_)) => true,
        (Node::Enum { symbols, .. }, Value::Enum(_, s) | Value::String(s)) => symbols.contains(s),
        _ => false,
    }
}

/// A short description of a schema node for messages (`string`, `record com.acme.Order`).
pub(super) fn describe(parsed: &Parsed, node: &Node) -> String {
    match node {
        Node::Primitive(t) => t.java_name().to_ascii_lowercase(),
        Node::Array(items) => format!("array of {}", describe(parsed, parsed.resolve(*items))),
        Node::Map(values) => format!("map of {}", describe(parsed, parsed.resolve(*values))),
        Node::Union(_) => "union".to_owned(),
        Node::Fixed { named, size } => format!("fixed {} ({size} bytes)", named.name.full()),
        Node::Enum { named, .. } => format!("enum {}", named.name.full()),
        Node::Record { named, .. } => format!("record {}", named.name.full()),
        Node::Ref(_) => "reference".to_owned(),
    }
}

pub(super) fn value_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Boolean(_) => "a boolean",
        Value::Int(_) => "an int",
        Value::Long(_) => "a long",
        Value::Float(_) => "a float",
        Value::Double(_) => "a double",
        Value::Bytes(_) => "bytes",
        Value::String(_) => "a string",
        Value::Fixed(..) => "fixed bytes",
        Value::Enum(..) => "an enum symbol",
        Value::Union(..) => "a union value",
        Value::Array(_) => "an array",
        Value::Map(_) => "a map",
        Value::Record(_) => "a record",
        Value::Uuid(_) => "a uuid",
        Value::Decimal(_) | Value::BigDecimal(_) => "a decimal",
        Value::Duration(_) => "a duration",
        _ => "a date or time",
    }
}
