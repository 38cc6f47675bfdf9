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

mod default_value;
mod kind;
mod write;

use default_value::json_to_value;
use kind::{describe, shallow_match, value_kind};
use write::write_bytes;
pub(crate) use write::write_long;

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
