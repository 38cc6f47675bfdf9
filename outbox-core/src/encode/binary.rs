//! Validation and Avro binary encoding in one walk of value and schema.
//!
//! `apache_avro` can tell that a value does not fit a schema, but not where; an outbox user
//! needs the field path. Walking once both checks and writes, so a valid event costs one pass.
//! The bytes are plain Avro binary (checked against `apache_avro`'s decoder in the tests).

use std::fmt::Write as _;

use apache_avro::types::Value;
use serde_json::Value as Json;

use crate::schema::limits::{MAX_DEFAULT_VALUES, MAX_ENCODE_STEPS, MAX_VALUE_DEPTH};
use crate::schema::model::{AvroType, Field, Node, NodeId};
use crate::schema::{Parsed, excerpt};

/// Where in the event a problem is, and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    pub(crate) path: String,
    pub(crate) reason: String,
}

#[derive(Debug, Clone)]
enum Segment<'a> {
    Field(&'a str),
    Index(usize),
    Key(&'a str),
}

/// Encodes `value` as `schema`'s root type, appending to `out`. On error `out` may hold a
/// partial encoding; callers discard it.
pub(crate) fn encode(parsed: &Parsed, value: &Value, out: &mut Vec<u8>) -> Result<(), Violation> {
    let mut walker = Walker {
        parsed,
        path: Vec::new(),
        depth: 0,
        steps: 0,
    };
    walker.value(parsed.root, value, out)
}

struct Walker<'a> {
    parsed: &'a Parsed,
    path: Vec<Segment<'a>>,
    /// How deep the value being encoded is nested (values of recursive types can nest
    /// without end; the stack cannot).
    depth: usize,
    /// Values visited so far, union branches tried included: a bound on the work.
    steps: usize,
}

impl<'a> Walker<'a> {
    fn violation(&self, reason: String) -> Violation {
        let mut path = String::from("$");
        for seg in &self.path {
            match seg {
                Segment::Field(name) => {
                    let _ = write!(path, ".{name}");
                }
                Segment::Index(i) => {
                    let _ = write!(path, "[{i}]");
                }
                Segment::Key(k) => {
                    let _ = write!(path, "[{k:?}]");
                }
            }
        }
        let path = path.strip_prefix("$.").map_or(path.clone(), str::to_owned);
        Violation { path, reason }
    }

    fn mismatch(&self, node: &Node, value: &Value) -> Violation {
        self.violation(format!(
            "expected {}, found {}",
            describe(self.parsed, node),
            value_kind(value)
        ))
    }

    fn value(&mut self, id: NodeId, value: &'a Value, out: &mut Vec<u8>) -> Result<(), Violation> {
        if self.depth >= MAX_VALUE_DEPTH {
            return Err(self.violation(format!(
                "the value nests deeper than {MAX_VALUE_DEPTH} levels"
            )));
        }
        self.steps += 1;
        if self.steps > MAX_ENCODE_STEPS {
            return Err(self.violation(format!(
                "encoding needs more than {MAX_ENCODE_STEPS} steps (unions too ambiguous)"
            )));
        }
        self.depth += 1;
        let encoded = self.value_inner(id, value, out);
        self.depth -= 1;
        encoded
    }

    fn value_inner(
        &mut self,
        id: NodeId,
        value: &'a Value,
        out: &mut Vec<u8>,
    ) -> Result<(), Violation> {
        let node = self.parsed.resolve(id);
        if let (Value::Union(_, inner), false) = (value, matches!(node, Node::Union(_))) {
            return self.value(id, inner, out);
        }
        match (node, value) {
            (Node::Primitive(t), v) => self.primitive(*t, node, v, out),
            (Node::Union(branches), v) => self.union(branches, v, out),
            (Node::Array(items), Value::Array(values)) => {
                if !values.is_empty() {
                    write_long(out, values.len() as i64);
                    for (i, v) in values.iter().enumerate() {
                        self.path.push(Segment::Index(i));
                        self.value(*items, v, out)?;
                        self.path.pop();
                    }
                }
                out.push(0);
                Ok(())
            }
            (Node::Map(values_id), Value::Map(map)) => {
                if !map.is_empty() {
                    write_long(out, map.len() as i64);
                    // Sorted, so the same event always encodes to the same bytes.
                    let mut entries: Vec<_> = map.iter().collect();
                    entries.sort_by(|a, b| a.0.cmp(b.0));
                    for (k, v) in entries {
                        write_bytes(out, k.as_bytes());
                        self.path.push(Segment::Key(k));
                        self.value(*values_id, v, out)?;
                        self.path.pop();
                    }
                }
                out.push(0);
                Ok(())
            }
            (Node::Enum { symbols, .. }, Value::Enum(_, s) | Value::String(s)) => {
                match symbols.iter().position(|x| x == s) {
                    Some(i) => {
                        write_long(out, i as i64);
                        Ok(())
                    }
                    None => Err(self.violation(format!(
                        "symbol {s:?} is not one of [{}]",
                        symbols.join(", ")
                    ))),
                }
            }
            (Node::Fixed { size, .. }, Value::Fixed(_, bytes) | Value::Bytes(bytes)) => {
                if bytes.len() == *size {
                    out.extend_from_slice(bytes);
                    Ok(())
                } else {
                    Err(self.violation(format!(
                        "expected {size} bytes for fixed, found {}",
                        bytes.len()
                    )))
                }
            }
            (Node::Fixed { size: 16, .. }, Value::Uuid(u)) => {
                out.extend_from_slice(u.as_bytes());
                Ok(())
            }
            (Node::Record { fields, .. }, Value::Record(values)) => {
                self.record(fields, values, out)
            }
            (node, v) => Err(self.mismatch(node, v)),
        }
    }

    fn primitive(
        &self,
        t: AvroType,
        node: &Node,
        value: &Value,
        out: &mut Vec<u8>,
    ) -> Result<(), Violation> {
        match (t, value) {
            (AvroType::Null, Value::Null) => {}
            (AvroType::Boolean, Value::Boolean(b)) => out.push(u8::from(*b)),
            (AvroType::Int, Value::Int(i) | Value::Date(i) | Value::TimeMillis(i)) => {
                write_long(out, i64::from(*i));
            }
            (AvroType::Int, Value::Long(l)) => match i32::try_from(*l) {
                Ok(i) => write_long(out, i64::from(i)),
                Err(_) => return Err(self.violation(format!("{l} does not fit in an int"))),
            },
            (AvroType::Long, Value::Int(i)) => write_long(out, i64::from(*i)),
            (
                AvroType::Long,
                Value::Long(l)
                | Value::TimeMicros(l)
                | Value::TimestampMillis(l)
                | Value::TimestampMicros(l)
                | Value::TimestampNanos(l)
                | Value::LocalTimestampMillis(l)
                | Value::LocalTimestampMicros(l)
                | Value::LocalTimestampNanos(l),
            ) => write_long(out, *l),
            (AvroType::Float, Value::Float(f)) => out.extend_from_slice(&f.to_le_bytes()),
            (AvroType::Float, Value::Int(i)) => out.extend_from_slice(&(*i as f32).to_le_bytes()),
            (AvroType::Float, Value::Long(l)) => out.extend_from_slice(&(*l as f32).to_le_bytes()),
            (AvroType::Double, Value::Double(d)) => out.extend_from_slice(&d.to_le_bytes()),
            (AvroType::Double, Value::Float(f)) => {
                out.extend_from_slice(&f64::from(*f).to_le_bytes());
            }
            (AvroType::Double, Value::Int(i)) => {
                out.extend_from_slice(&f64::from(*i).to_le_bytes());
            }
            (AvroType::Double, Value::Long(l)) => {
                out.extend_from_slice(&(*l as f64).to_le_bytes());
            }
            (AvroType::Bytes | AvroType::String, Value::String(s)) => {
                write_bytes(out, s.as_bytes());
            }
            (AvroType::Bytes, Value::Bytes(b)) => write_bytes(out, b),
            (AvroType::String, Value::Uuid(u)) => write_bytes(out, u.to_string().as_bytes()),
            (AvroType::String, Value::Bytes(b)) => match std::str::from_utf8(b) {
                Ok(s) => write_bytes(out, s.as_bytes()),
                Err(_) => return Err(self.violation("bytes are not valid UTF-8".to_owned())),
            },
            _ => return Err(self.mismatch(node, value)),
        }
        Ok(())
    }

    fn union(
        &mut self,
        branches: &[NodeId],
        value: &'a Value,
        out: &mut Vec<u8>,
    ) -> Result<(), Violation> {
        let inner = match value {
            Value::Union(_, inner) => inner.as_ref(),
            v => v,
        };
        let candidates: Vec<usize> = (0..branches.len())
            .filter(|&i| shallow_match(self.parsed.resolve(branches[i]), inner))
            .collect();
        let mut first_error = None;
        let depth = self.path.len();
        for &i in &candidates {
            let mut buf = Vec::new();
            write_long(&mut buf, i as i64);
            match self.value(branches[i], inner, &mut buf) {
                Ok(()) => {
                    out.extend_from_slice(&buf);
                    return Ok(());
                }
                Err(e) => {
                    self.path.truncate(depth);
                    first_error.get_or_insert(e);
                }
            }
        }
        // One candidate (the usual optional field): its own error says most.
        if let (Some(e), 1) = (first_error, candidates.len()) {
            return Err(e);
        }
        let names: Vec<String> = branches
            .iter()
            .map(|b| describe(self.parsed, self.parsed.resolve(*b)))
            .collect();
        Err(self.violation(format!(
            "no branch of union [{}] accepts {}",
            names.join(", "),
            value_kind(inner)
        )))
    }

    fn record(
        &mut self,
        fields: &'a [Field],
        values: &'a [(String, Value)],
        out: &mut Vec<u8>,
    ) -> Result<(), Violation> {
        // Names hashed once, so a record of many fields costs linear time, not quadratic.
        let known: std::collections::HashSet<&str> =
            fields.iter().map(|f| f.name.as_str()).collect();
        for (name, _) in values {
            if !known.contains(name.as_str()) {
                self.path.push(Segment::Field(name));
                let e = self.violation("field is not in the schema".to_owned());
                return Err(e);
            }
        }
        let mut by_name: Option<std::collections::HashMap<&str, &'a Value>> = None;
        for (i, field) in fields.iter().enumerate() {
            self.path.push(Segment::Field(&field.name));
            // Fields usually come in schema order; fall back to a look-up.
            let found = match values.get(i) {
                Some((n, v)) if n == &field.name => Some(v),
                _ => by_name
                    .get_or_insert_with(|| {
                        let mut map = std::collections::HashMap::new();
                        for (n, v) in values {
                            map.entry(n.as_str()).or_insert(v); // the first one, as before
                        }
                        map
                    })
                    .get(field.name.as_str())
                    .copied(),
            };
            match (found, &field.default) {
                (Some(v), _) => self.value(field.schema, v, out)?,
                (None, Some(default)) => self.default(field.schema, default, out)?,
                (None, None) => {
                    return Err(self.violation("required field is missing".to_owned()));
                }
            }
            self.path.pop();
        }
        Ok(())
    }

    /// Encodes a schema default (JSON, in Avro's JSON encoding) for a field the value lacks.
    fn default(&mut self, id: NodeId, json: &Json, out: &mut Vec<u8>) -> Result<(), Violation> {
        let mut budget = MAX_DEFAULT_VALUES;
        let value = json_to_value(self.parsed, id, json, &mut budget, 0).ok_or_else(|| {
            if budget == 0 {
                self.violation(format!(
                    "the default expands to more than {MAX_DEFAULT_VALUES} values"
                ))
            } else {
                self.violation(format!("default {} does not fit the schema", excerpt(json)))
            }
        })?;
        // The default is owned here; encode it with a walker of its own lifetime.
        let mut walker = Walker {
            parsed: self.parsed,
            path: Vec::new(),
            depth: self.depth,
            steps: self.steps,
        };
        let encoded = walker.value(id, &value, out);
        self.steps = walker.steps;
        encoded.map_err(|e| self.violation(e.reason))
    }
}

/// Converts a JSON default into the value it stands for under `id`; `None` when it does not
/// fit, nests too deep, or takes more than `budget` values (a record default falls back on
/// its fields' defaults, which may expand a lot).
fn json_to_value(
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

/// Whether a value is of the right general kind for a union branch (no deep check).
fn shallow_match(node: &Node, value: &Value) -> bool {
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
fn describe(parsed: &Parsed, node: &Node) -> String {
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

fn value_kind(value: &Value) -> &'static str {
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

/// Avro's zig-zag variable-length long.
pub(crate) fn write_long(out: &mut Vec<u8>, v: i64) {
    let mut n = ((v << 1) ^ (v >> 63)) as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_long(out, bytes.len() as i64);
    out.extend_from_slice(bytes);
}
