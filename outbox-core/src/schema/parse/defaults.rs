//! Field defaults checked against their types, as Java's parser does, cycle-safe and within
//! [`MAX_DEFAULT_STEPS`].

use std::collections::HashMap;

use serde_json::Value as Json;

use super::{Parsed, excerpt};
use crate::schema::limits::{MAX_DEFAULT_STEPS, MAX_DEPTH, MAX_JSON_DEPTH};
use crate::schema::model::{AvroType, Node, NodeId};

/// Checks every field default of `parsed`; `open_at` tells, per record, the records still
/// open when it was read.
pub(super) fn check_defaults(
    parsed: &Parsed,
    open_at: &HashMap<NodeId, Vec<NodeId>>,
) -> Result<(), String> {
    let mut defaults = Defaults {
        parsed,
        open_at,
        fields: HashMap::new(),
        memo: HashMap::new(),
        steps: 0,
    };
    for (record, node) in parsed.nodes.iter().enumerate() {
        if let Node::Record { named, fields } = node {
            for (index, field) in fields.iter().enumerate() {
                if field.default.is_some() && !defaults.field(record, index)? {
                    return Err(format!(
                        "invalid default for field {} of {}: {}",
                        field.name,
                        named.name.full(),
                        excerpt(field.default.as_ref().unwrap_or(&Json::Null))
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Default validation, cycle-safe and memoized: each field's own default is checked once
/// (a record default missing a field falls back on that field's default, which is how a
/// default can refer back to itself), and each (type, JSON value) pair once per field.
struct Defaults<'a> {
    parsed: &'a Parsed,
    open_at: &'a HashMap<NodeId, Vec<NodeId>>,
    /// (record, field index) -> `None` while being checked, then whether its default fits.
    fields: HashMap<(NodeId, usize), Option<bool>>,
    /// (field context, record type, address of the JSON value) -> fits: records are where a
    /// default expands (through their fields' defaults), so only they are remembered.
    memo: HashMap<((NodeId, usize), NodeId, usize), bool>,
    /// Comparisons so far, against [`MAX_DEFAULT_STEPS`].
    steps: usize,
}

impl Defaults<'_> {
    /// Whether the default of field `index` of `record` fits its type.
    fn field(&mut self, record: NodeId, index: usize) -> Result<bool, String> {
        match self.fields.get(&(record, index)) {
            Some(Some(fits)) => return Ok(*fits),
            Some(None) => {
                return Err(format!(
                    "recursive default: the default of a field of {} needs itself",
                    self.record_name(record)
                ));
            }
            None => {}
        }
        let Node::Record { fields, .. } = &self.parsed.nodes[record] else {
            return Ok(false);
        };
        let Some(field) = fields.get(index) else {
            return Ok(false);
        };
        let Some(default) = &field.default else {
            return Ok(false);
        };
        self.fields.insert((record, index), None);
        let fits = self.fits((record, index), field.schema, default, 0)?;
        self.fields.insert((record, index), Some(fits));
        Ok(fits)
    }

    fn record_name(&self, record: NodeId) -> String {
        self.parsed
            .resolve(record)
            .named()
            .map_or_else(String::new, |n| n.name.full())
    }

    /// Whether `default` fits type `id`, checking the default of field `ctx`. A union default
    /// may match any branch: Avro 1.11 insisted on the first, later readers accept any, and
    /// refusing a schema Java accepts would be worse.
    fn fits(
        &mut self,
        ctx: (NodeId, usize),
        id: NodeId,
        default: &Json,
        depth: usize,
    ) -> Result<bool, String> {
        if depth > MAX_JSON_DEPTH + MAX_DEPTH {
            return Err("a field default nests too deeply".to_owned());
        }
        self.steps += 1;
        if self.steps > MAX_DEFAULT_STEPS {
            return Err(format!(
                "validating the field defaults needs more than {MAX_DEFAULT_STEPS} steps"
            ));
        }
        let parsed = self.parsed;
        // Only a record given an object can expand (through its fields' defaults).
        let is_record = matches!(parsed.resolve(id), Node::Record { .. }) && default.is_object();
        let key = (
            ctx,
            parsed.canonical_id(id),
            std::ptr::from_ref(default) as usize,
        );
        if is_record && let Some(fits) = self.memo.get(&key) {
            return Ok(*fits);
        }
        let fits = match parsed.resolve(id) {
            Node::Primitive(t) => match t {
                AvroType::Null => default.is_null(),
                AvroType::Boolean => default.is_boolean(),
                AvroType::Int => default.as_i64().is_some_and(|v| i32::try_from(v).is_ok()),
                AvroType::Long => {
                    default.is_i64() || default.is_u64() && default.as_i64().is_some()
                }
                AvroType::Float | AvroType::Double => {
                    default.is_number()
                        || matches!(default.as_str(), Some("NaN" | "Infinity" | "-Infinity"))
                }
                _ => default.is_string(),
            },
            Node::Enum { .. } | Node::Fixed { .. } => default.is_string(),
            Node::Array(items) => match default.as_array() {
                Some(values) => self.all(ctx, *items, values.iter(), depth)?,
                None => false,
            },
            Node::Map(values) => match default.as_object() {
                Some(map) => self.all(ctx, *values, map.values(), depth)?,
                None => false,
            },
            Node::Union(branches) => {
                let mut any = false;
                for branch in branches {
                    if self.fits(ctx, *branch, default, depth + 1)? {
                        any = true;
                        break;
                    }
                }
                any
            }
            Node::Record { fields, .. } => match default.as_object() {
                None => false,
                Some(obj) => {
                    let record = parsed.canonical_id(id);
                    // Java validates a default while the enclosing records have no fields
                    // yet, and refuses one that needs them.
                    if self
                        .open_at
                        .get(&ctx.0)
                        .is_some_and(|open| open.contains(&record))
                    {
                        return Err(format!(
                            "the default of field {} of {} needs the fields of {}, which is \
                             still being defined (recursive default)",
                            self.field_name(ctx),
                            self.record_name(ctx.0),
                            self.record_name(record)
                        ));
                    }
                    let mut all = true;
                    for (index, f) in fields.iter().enumerate() {
                        let fits = match obj.get(&f.name) {
                            Some(v) => self.fits(ctx, f.schema, v, depth + 1)?,
                            None => f.default.is_some() && self.field(record, index)?,
                        };
                        if !fits {
                            all = false;
                            break;
                        }
                    }
                    all
                }
            },
            Node::Ref(_) => false,
        };
        if is_record {
            self.memo.insert(key, fits);
        }
        Ok(fits)
    }

    fn all<'j>(
        &mut self,
        ctx: (NodeId, usize),
        id: NodeId,
        values: impl Iterator<Item = &'j Json>,
        depth: usize,
    ) -> Result<bool, String> {
        for value in values {
            if !self.fits(ctx, id, value, depth + 1)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn field_name(&self, (record, index): (NodeId, usize)) -> String {
        match &self.parsed.nodes[record] {
            Node::Record { fields, .. } => fields
                .get(index)
                .map_or_else(String::new, |f| f.name.clone()),
            _ => String::new(),
        }
    }
}
