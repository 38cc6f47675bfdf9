//! Field defaults (JSON in the schema) as the Avro values they stand for, bounded in depth
//! and size.

use apache_avro::types::Value;
use serde_json::Value as Json;

use crate::schema::Parsed;
use crate::schema::limits::MAX_VALUE_DEPTH;
use crate::schema::model::{AvroType, Node, NodeId};

/// Converts a JSON default into the value it stands for under `id`; `None` when it does not
/// fit, nests too deep, or takes more than `budget` values (a record default falls back on
/// its fields' defaults, which may expand a lot).
pub(super) fn json_to_value(
    parsed: &Parsed,
    id: NodeId,
    json: &Json,
    budget: &mut usize,
    depth: usize,
) -> Option<Value> {
    if depth >= MAX_VALUE_DEPTH || *budget == 0 {
        return None;
    }
    *budget -= 1;
    let depth = depth + 1;
    Some(match (parsed.resolve(id), json) {
        (Node::Primitive(AvroType::Null), Json::Null) => Value::Null,
        (Node::Primitive(AvroType::Boolean), Json::Bool(b)) => Value::Boolean(*b),
        (Node::Primitive(AvroType::Int), j) => Value::Int(i32::try_from(j.as_i64()?).ok()?),
        (Node::Primitive(AvroType::Long), j) => Value::Long(j.as_i64()?),
        (Node::Primitive(AvroType::Float | AvroType::Double), j) => Value::Double(json_f64(j)?),
        (Node::Primitive(AvroType::String), Json::String(s)) => Value::String(s.clone()),
        (Node::Primitive(AvroType::Bytes), Json::String(s)) => Value::Bytes(iso_8859_1(s)?),
        (Node::Fixed { .. }, Json::String(s)) => {
            let bytes = iso_8859_1(s)?;
            Value::Fixed(bytes.len(), bytes)
        }
        (Node::Enum { .. }, Json::String(s)) => Value::String(s.clone()),
        (Node::Array(items), Json::Array(a)) => Value::Array(
            a.iter()
                .map(|j| json_to_value(parsed, *items, j, budget, depth))
                .collect::<Option<_>>()?,
        ),
        (Node::Map(values), Json::Object(m)) => Value::Map(
            m.iter()
                .map(|(k, j)| Some((k.clone(), json_to_value(parsed, *values, j, budget, depth)?)))
                .collect::<Option<_>>()?,
        ),
        (Node::Union(branches), j) => {
            let (i, v) = branches
                .iter()
                .enumerate()
                .find_map(|(i, b)| Some((i, json_to_value(parsed, *b, j, budget, depth)?)))?;
            Value::Union(i as u32, Box::new(v))
        }
        (Node::Record { fields, .. }, Json::Object(m)) => Value::Record(
            fields
                .iter()
                .map(|f| {
                    let j = m.get(&f.name).or(f.default.as_ref())?;
                    Some((
                        f.name.clone(),
                        json_to_value(parsed, f.schema, j, budget, depth)?,
                    ))
                })
                .collect::<Option<_>>()?,
        ),
        _ => return None,
    })
}

fn json_f64(j: &Json) -> Option<f64> {
    match j.as_str() {
        Some("NaN") => Some(f64::NAN),
        Some("Infinity") => Some(f64::INFINITY),
        Some("-Infinity") => Some(f64::NEG_INFINITY),
        _ => j.as_f64(),
    }
}

/// Avro's JSON encoding of bytes: one code point (0..=255) per byte.
fn iso_8859_1(s: &str) -> Option<Vec<u8>> {
    s.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect()
}
