//! The relay's half of capture: a trigger's JSON image turned into the Avro of its schema.

use std::collections::HashMap;
use std::str::FromStr;

use apache_avro::types::Value;
use bigdecimal::BigDecimal;
use serde_json::Value as Json;

use crate::encode::EventCodec;
use crate::schema::Schema;
use crate::{Error, Result, SchemaId};

/// Encodes a captured row's JSON `image` with the schema registered as `schema_id` under
/// `subject`: Confluent framing (`0x00`, the id, the Avro binary datum), as `publish` writes.
///
/// # Errors
///
/// [`Error::SchemaViolation`] naming the field (`after.total`) and why, when the image is
/// not JSON, lacks a field, holds a value of the wrong type, or a decimal that does not fit
/// its precision and scale.
///
/// # Examples
///
/// ```
/// use outbox_core::{Schema, capture::encode_image};
///
/// let schema = Schema::parse_str(r#"{"type":"record","name":"R","fields":[
///     {"name":"total","type":{"type":"bytes","logicalType":"decimal","precision":5,"scale":2}}]}"#)?;
/// let bytes = encode_image(&schema, 3, "orders-value", br#"{"total":"12.50"}"#)?;
/// assert_eq!(&bytes[..5], &[0, 0, 0, 0, 3]);
/// let err = encode_image(&schema, 3, "orders-value", br#"{"total":"1.255"}"#).unwrap_err();
/// assert!(err.to_string().contains("total"));
/// # Ok::<(), outbox_core::Error>(())
/// ```
pub fn encode_image(
    schema: &Schema,
    schema_id: impl Into<SchemaId>,
    subject: &str,
    image: &[u8],
) -> Result<Vec<u8>> {
    let violation = |path: String, reason: String| Error::SchemaViolation {
        subject: subject.to_owned(),
        path,
        reason,
    };
    let json: Json = serde_json::from_slice(image).map_err(|e| {
        violation(
            "$".to_owned(),
            format!("the capture image is not JSON: {e}"),
        )
    })?;
    let schema_json: Json = serde_json::from_str(schema.canonical_json())
        .map_err(|e| violation("$".to_owned(), format!("unreadable schema: {e}")))?;
    let mut named = HashMap::new();
    collect_named(&schema_json, None, &mut named);
    let mut path = Vec::new();
    let value = Converter { named: &named }
        .convert(&schema_json, None, &json, &mut path)
        .map_err(|reason| {
            let at = if path.is_empty() {
                "$".to_owned()
            } else {
                path.join(".")
            };
            violation(at, reason)
        })?;
    EventCodec::new(subject, schema_id, schema.clone())
        .with_max_bytes(usize::MAX)
        .encode_value(&value)
}

/// A named type's full name, from its `name` and the enclosing namespace.
fn full_name(
    schema: &serde_json::Map<String, Json>,
    space: Option<&str>,
) -> Option<(String, Option<String>)> {
    let name = schema.get("name")?.as_str()?;
    if name.contains('.') {
        let ns = name.rsplit_once('.').map(|(ns, _)| ns.to_owned());
        return Some((name.to_owned(), ns));
    }
    let ns = schema
        .get("namespace")
        .and_then(Json::as_str)
        .map(str::to_owned)
        .or_else(|| space.map(str::to_owned))
        .filter(|ns| !ns.is_empty());
    Some((
        ns.as_ref()
            .map_or_else(|| name.to_owned(), |ns| format!("{ns}.{name}")),
        ns,
    ))
}

fn collect_named<'a>(schema: &'a Json, space: Option<&str>, out: &mut HashMap<String, &'a Json>) {
    match schema {
        Json::Array(branches) => branches.iter().for_each(|b| collect_named(b, space, out)),
        Json::Object(obj) => {
            let kind = obj.get("type").and_then(Json::as_str);
            let mut inner = space.map(str::to_owned);
            if matches!(kind, Some("record" | "error" | "enum" | "fixed"))
                && let Some((full, ns)) = full_name(obj, space)
            {
                out.insert(full, schema);
                inner = ns;
            }
            for f in obj
                .get("fields")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(t) = f.get("type") {
                    collect_named(t, inner.as_deref(), out);
                }
            }
            for key in ["items", "values"] {
                if let Some(t) = obj.get(key) {
                    collect_named(t, inner.as_deref(), out);
                }
            }
            if let Some(t @ (Json::Object(_) | Json::Array(_))) = obj.get("type") {
                collect_named(t, inner.as_deref(), out);
            }
        }
        _ => {}
    }
}

struct Converter<'a> {
    named: &'a HashMap<String, &'a Json>,
}

impl<'a> Converter<'a> {
    fn convert(
        &self,
        schema: &'a Json,
        space: Option<&str>,
        v: &Json,
        path: &mut Vec<String>,
    ) -> Result<Value, String> {
        match schema {
            Json::String(name) => match primitive(name, None, v)? {
                Some(value) => Ok(value),
                None => {
                    let full = match space {
                        Some(ns) if !name.contains('.') => format!("{ns}.{name}"),
                        _ => name.clone(),
                    };
                    let target = self
                        .named
                        .get(&full)
                        .or_else(|| self.named.get(name))
                        .ok_or_else(|| format!("unknown type {name}"))?;
                    let ns = full.rsplit_once('.').map(|(ns, _)| ns.to_owned());
                    self.convert(target, ns.as_deref(), v, path)
                }
            },
            Json::Array(branches) => self.union(branches, space, v, path),
            Json::Object(obj) => {
                let kind = obj.get("type").ok_or("schema without type")?;
                match kind.as_str() {
                    Some("record" | "error") => {
                        let ns = full_name(obj, space).and_then(|(_, ns)| ns);
                        self.record(obj, ns.as_deref(), v, path)
                    }
                    Some("enum") => {
                        let symbol = v.as_str().ok_or_else(|| {
                            format!("expected an enum symbol, found {}", kind_of(v))
                        })?;
                        let symbols = obj
                            .get("symbols")
                            .and_then(Json::as_array)
                            .ok_or("enum without symbols")?;
                        let index = symbols
                            .iter()
                            .position(|s| s.as_str() == Some(symbol))
                            .ok_or_else(|| format!("{symbol:?} is not a symbol of the enum"))?;
                        Ok(Value::Enum(
                            u32::try_from(index).unwrap_or(u32::MAX),
                            symbol.to_owned(),
                        ))
                    }
                    Some(name) => match primitive(name, Some(obj), v)? {
                        Some(value) => Ok(value),
                        None => Err(format!("type {name} is not captured")),
                    },
                    None => self.convert(kind, space, v, path),
                }
            }
            _ => Err("malformed schema".to_owned()),
        }
    }

    fn union(
        &self,
        branches: &'a [Json],
        space: Option<&str>,
        v: &Json,
        path: &mut Vec<String>,
    ) -> Result<Value, String> {
        let is_null = |b: &Json| b.as_str() == Some("null");
        if v.is_null() {
            return match branches.iter().position(is_null) {
                Some(i) => Ok(Value::Union(
                    u32::try_from(i).unwrap_or(u32::MAX),
                    Box::new(Value::Null),
                )),
                None => Err("null, the field is not nullable".to_owned()),
            };
        }
        let mut last = "no branch of the union".to_owned();
        for (i, branch) in branches.iter().enumerate().filter(|(_, b)| !is_null(b)) {
            let depth = path.len();
            match self.convert(branch, space, v, path) {
                Ok(value) => {
                    return Ok(Value::Union(
                        u32::try_from(i).unwrap_or(u32::MAX),
                        Box::new(value),
                    ));
                }
                Err(e) if branches.len() <= 2 => return Err(e),
                Err(e) => {
                    path.truncate(depth);
                    last = e;
                }
            }
        }
        Err(last)
    }

    fn record(
        &self,
        obj: &'a serde_json::Map<String, Json>,
        space: Option<&str>,
        v: &Json,
        path: &mut Vec<String>,
    ) -> Result<Value, String> {
        let Json::Object(values) = v else {
            return Err(format!("expected an object, found {}", found(v)));
        };
        let fields = obj
            .get("fields")
            .and_then(Json::as_array)
            .ok_or("record without fields")?;
        let mut out = Vec::with_capacity(fields.len());
        for field in fields {
            let name = field
                .get("name")
                .and_then(Json::as_str)
                .ok_or("field without name")?;
            let schema = field.get("type").ok_or("field without type")?;
            path.push(name.to_owned());
            let value = values.get(name).ok_or("missing field")?;
            out.push((name.to_owned(), self.convert(schema, space, value, path)?));
            path.pop();
        }
        Ok(Value::Record(out))
    }
}

fn kind_of(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// What `v` is, for an error: a string is quoted (its start), as a trigger writes what Avro
/// cannot hold (`infinity`, a row too large) as text saying so.
fn found(v: &Json) -> String {
    match v {
        Json::String(s) if s.chars().count() > 80 => {
            format!("the string {:?}...", s.chars().take(80).collect::<String>())
        }
        Json::String(s) => format!("the string {s:?}"),
        other => kind_of(other).to_owned(),
    }
}

/// A primitive (with its logical type, from `attrs`) read from JSON; `None` if `name` is not
/// a primitive type.
fn primitive(
    name: &str,
    attrs: Option<&serde_json::Map<String, Json>>,
    v: &Json,
) -> Result<Option<Value>, String> {
    let logical = attrs
        .and_then(|a| a.get("logicalType"))
        .and_then(Json::as_str);
    let wrong = |expected: &str| format!("expected {expected}, found {}", found(v));
    let integer = || v.as_i64().ok_or_else(|| wrong("an integer"));
    Ok(Some(match name {
        "null" if v.is_null() => Value::Null,
        "null" => return Err(wrong("null")),
        "boolean" => match v {
            Json::Bool(b) => Value::Boolean(*b),
            Json::Number(n) if n.as_i64() == Some(0) => Value::Boolean(false),
            Json::Number(n) if n.as_i64() == Some(1) => Value::Boolean(true),
            _ => return Err(wrong("a boolean")),
        },
        "int" => {
            Value::Int(i32::try_from(integer()?).map_err(|_| format!("{v} does not fit an int"))?)
        }
        "long" => Value::Long(integer()?),
        "float" | "double" => {
            let x = match v {
                Json::Number(n) => n.as_f64().ok_or_else(|| wrong("a number"))?,
                Json::String(s) => match s.as_str() {
                    "NaN" => f64::NAN,
                    "Infinity" => f64::INFINITY,
                    "-Infinity" => f64::NEG_INFINITY,
                    _ => return Err(wrong("a number")),
                },
                _ => return Err(wrong("a number")),
            };
            #[expect(
                clippy::cast_possible_truncation,
                reason = "a float column holds floats"
            )]
            if name == "float" {
                Value::Float(x as f32)
            } else {
                Value::Double(x)
            }
        }
        "string" => {
            let s = v.as_str().ok_or_else(|| wrong("a string"))?;
            if logical == Some("uuid") {
                uuid::Uuid::parse_str(s).map_err(|_| format!("{s:?} is not a uuid"))?;
            }
            Value::String(s.to_owned())
        }
        "bytes" if logical == Some("decimal") => Value::Bytes(decimal(attrs, v)?),
        "bytes" => {
            let s = v.as_str().ok_or_else(|| wrong("hex text"))?;
            Value::Bytes(hex::decode(s).map_err(|e| format!("not hex: {e}"))?)
        }
        _ => return Ok(None),
    }))
}

/// A decimal's two's-complement big-endian unscaled value, checked against the precision and
/// scale: a value that would need rounding is refused, not rounded.
fn decimal(attrs: Option<&serde_json::Map<String, Json>>, v: &Json) -> Result<Vec<u8>, String> {
    let attr = |key| attrs.and_then(|a| a.get(key)).and_then(Json::as_u64);
    let precision = attr("precision").ok_or("decimal without precision")?;
    let scale = attr("scale").unwrap_or(0);
    let text = match v {
        Json::String(s) => s.clone(),
        Json::Number(n) => n.to_string(),
        _ => return Err(format!("expected a decimal, found {}", kind_of(v))),
    };
    if text.len() > 200 {
        return Err("the decimal has more than 200 characters".to_owned());
    }
    let parsed =
        BigDecimal::from_str(text.trim()).map_err(|_| format!("{text:?} is not a decimal"))?;
    let scale_i64 = i64::try_from(scale).map_err(|_| "scale out of range".to_owned())?;
    let scaled = parsed.with_scale(scale_i64);
    if scaled != parsed {
        return Err(format!(
            "{text} has more than {scale} digits after the point"
        ));
    }
    let (unscaled, _) = scaled.into_bigint_and_exponent();
    let digits = unscaled.magnitude().to_string().len() as u64;
    if digits > precision {
        return Err(format!("{text} has more than {precision} digits"));
    }
    Ok(unscaled.to_signed_bytes_be())
}
