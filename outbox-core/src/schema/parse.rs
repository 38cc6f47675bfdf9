//! Parsing Avro schema JSON into the arena, with the checks Java's `Schema.Parser` makes:
//! valid names, no redefinition, no primitive-named types, no nested or duplicate union
//! branches, required attributes present, and field defaults that fit their type.

use std::collections::HashMap;

use serde_json::{Map, Value as Json};

use super::model::{AvroType, Field, Name, Named, Node, NodeId};

/// The arena a parse produces.
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    pub(crate) nodes: Vec<Node>,
    pub(crate) root: NodeId,
}

/// A reference to a named type not (yet) defined when it was read, with the full names it may
/// mean: qualified by the enclosing namespace first, then as written (Java's `Names.get`).
struct Pending {
    node: NodeId,
    candidates: Vec<String>,
    written: String,
}

struct Parser {
    nodes: Vec<Node>,
    names: HashMap<String, NodeId>,
    pending: Vec<Pending>,
}

/// Parses schema JSON; the error is a one-line reason.
pub(crate) fn parse(json: &Json) -> Result<Parsed, String> {
    let mut parser = Parser {
        nodes: Vec::new(),
        names: HashMap::new(),
        pending: Vec::new(),
    };
    let root = parser.parse(json, None)?;
    for pending in std::mem::take(&mut parser.pending) {
        let target = pending
            .candidates
            .iter()
            .find_map(|c| parser.names.get(c).copied())
            .ok_or_else(|| format!("undefined name: {}", pending.written))?;
        parser.nodes[pending.node] = Node::Ref(target);
    }
    let parsed = Parsed {
        nodes: parser.nodes,
        root,
    };
    check_defaults(&parsed)?;
    Ok(parsed)
}

impl Parser {
    fn push(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn parse(&mut self, json: &Json, space: Option<&str>) -> Result<NodeId, String> {
        match json {
            Json::String(name) => Ok(self.reference(name, space)),
            Json::Array(branches) => self.union(branches, space),
            Json::Object(obj) => self.object(obj, space),
            other => Err(format!("not a schema: {other}")),
        }
    }

    fn reference(&mut self, name: &str, space: Option<&str>) -> NodeId {
        if let Some(t) = AvroType::primitive(name) {
            return self.push(Node::Primitive(t));
        }
        let qualified = Name::resolve(name, space).full();
        let candidates = if qualified == name {
            vec![qualified]
        } else {
            vec![qualified, name.to_owned()]
        };
        if let Some(id) = candidates.iter().find_map(|c| self.names.get(c).copied()) {
            return self.push(Node::Ref(id));
        }
        // Defined later in the same document (Avro 1.12 resolves such forward references).
        let node = self.push(Node::Ref(usize::MAX));
        self.pending.push(Pending {
            node,
            candidates,
            written: name.to_owned(),
        });
        node
    }

    fn union(&mut self, branches: &[Json], space: Option<&str>) -> Result<NodeId, String> {
        let mut ids = Vec::with_capacity(branches.len());
        let mut seen: Vec<String> = Vec::new();
        for branch in branches {
            if branch.is_array() {
                return Err("unions may not immediately contain other unions".to_owned());
            }
            let id = self.parse(branch, space)?;
            if let Some(key) = self.union_key(branch, id, space) {
                if seen.contains(&key) {
                    return Err(format!("duplicate in union: {key}"));
                }
                seen.push(key);
            }
            ids.push(id);
        }
        Ok(self.push(Node::Union(ids)))
    }

    /// The identity of a union branch for the duplicate check: the full name of a named type,
    /// the type name otherwise. `None` for a forward reference (checked by name).
    fn union_key(&self, json: &Json, id: NodeId, space: Option<&str>) -> Option<String> {
        match &self.nodes[id] {
            Node::Ref(target) if *target == usize::MAX => {
                json.as_str().map(|n| Name::resolve(n, space).full())
            }
            Node::Ref(target) => self.nodes[*target].named().map(|n| n.name.full()),
            node => Some(match node.named() {
                Some(named) => named.name.full(),
                None => node.avro_type().java_name().to_owned(),
            }),
        }
    }

    fn object(&mut self, obj: &Map<String, Json>, space: Option<&str>) -> Result<NodeId, String> {
        let type_name = match obj.get("type") {
            Some(Json::String(t)) => t.as_str(),
            Some(other) => return Err(format!("\"type\" must be a string, found: {other}")),
            None => return Err(format!("no type: {}", Json::Object(obj.clone()))),
        };
        match type_name {
            "record" | "error" => self.record(obj, space),
            "enum" => self.enumeration(obj, space),
            "fixed" => self.fixed(obj, space),
            "array" => {
                let items = obj.get("items").ok_or("array has no items type")?;
                let items = self.parse(items, space)?;
                Ok(self.push(Node::Array(items)))
            }
            "map" => {
                let values = obj.get("values").ok_or("map has no values type")?;
                let values = self.parse(values, space)?;
                Ok(self.push(Node::Map(values)))
            }
            other => Ok(self.reference(other, space)),
        }
    }

    /// Reads and registers the name of a named type; returns it with its aliases.
    fn named(&mut self, obj: &Map<String, Json>, space: Option<&str>) -> Result<Named, String> {
        let Some(Json::String(name)) = obj.get("name") else {
            return Err("named type has no \"name\"".to_owned());
        };
        let own_space = match obj.get("namespace") {
            Some(Json::String(ns)) => Some(ns.as_str()),
            Some(Json::Null) | None => space,
            Some(other) => return Err(format!("\"namespace\" must be a string, found: {other}")),
        };
        let name = Name::resolve(name, own_space);
        validate_name(&name.name)?;
        if let Some(ns) = &name.namespace {
            for part in ns.split('.') {
                validate_name(part)?;
            }
        }
        if AvroType::primitive(&name.name).is_some() && name.namespace.is_none() {
            return Err(format!(
                "schemas may not be named after primitives: {}",
                name.name
            ));
        }
        let aliases = match obj.get("aliases") {
            None => Vec::new(),
            Some(Json::Array(list)) => list
                .iter()
                .map(|a| match a {
                    Json::String(a) => Ok(Name::resolve(a, name.namespace.as_deref()).full()),
                    other => Err(format!("alias must be a string, found: {other}")),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(format!("\"aliases\" must be an array, found: {other}")),
        };
        Ok(Named { name, aliases })
    }

    fn define(&mut self, named: &Named, node: Node) -> Result<NodeId, String> {
        let full = named.name.full();
        if self.names.contains_key(&full) {
            return Err(format!("can't redefine: {full}"));
        }
        let id = self.push(node);
        self.names.insert(full, id);
        Ok(id)
    }

    fn record(&mut self, obj: &Map<String, Json>, space: Option<&str>) -> Result<NodeId, String> {
        let named = self.named(obj, space)?;
        let Some(Json::Array(fields_json)) = obj.get("fields") else {
            return Err(format!("record has no fields: {}", named.name.full()));
        };
        // Registered before its fields are read, so a field may refer to the record itself.
        let id = self.define(
            &named,
            Node::Record {
                named: named.clone(),
                fields: Vec::new(),
            },
        )?;
        let inner_space = named.name.namespace.clone();
        let mut fields: Vec<Field> = Vec::with_capacity(fields_json.len());
        let mut field_names = std::collections::HashSet::with_capacity(fields_json.len());
        for field in fields_json {
            let Json::Object(field) = field else {
                return Err(format!("field must be an object, found: {field}"));
            };
            let Some(Json::String(name)) = field.get("name") else {
                return Err("field has no \"name\"".to_owned());
            };
            validate_name(name)?;
            if !field_names.insert(name.as_str()) {
                return Err(format!(
                    "duplicate field {name} in record {}",
                    named.name.full()
                ));
            }
            let ty = field
                .get("type")
                .ok_or_else(|| format!("field {name} has no type"))?;
            let schema = self.parse(ty, inner_space.as_deref())?;
            let aliases = match field.get("aliases") {
                None => Vec::new(),
                Some(Json::Array(list)) => list
                    .iter()
                    .map(|a| a.as_str().map(str::to_owned))
                    .collect::<Option<_>>()
                    .ok_or_else(|| format!("aliases of field {name} must be strings"))?,
                Some(_) => return Err(format!("aliases of field {name} must be an array")),
            };
            if let Some(order) = field.get("order")
                && !matches!(order.as_str(), Some("ascending" | "descending" | "ignore"))
            {
                return Err(format!("field {name} has an invalid order: {order}"));
            }
            fields.push(Field {
                name: name.clone(),
                aliases,
                schema,
                default: field.get("default").cloned(),
            });
        }
        self.nodes[id] = Node::Record { named, fields };
        Ok(id)
    }

    fn enumeration(
        &mut self,
        obj: &Map<String, Json>,
        space: Option<&str>,
    ) -> Result<NodeId, String> {
        let named = self.named(obj, space)?;
        let Some(Json::Array(list)) = obj.get("symbols") else {
            return Err(format!("enum has no symbols: {}", named.name.full()));
        };
        let mut symbols: Vec<String> = Vec::with_capacity(list.len());
        // A set beside the list: a hostile enum of 100 000 symbols stays linear.
        let mut seen = std::collections::HashSet::with_capacity(list.len());
        for symbol in list {
            let Json::String(symbol) = symbol else {
                return Err(format!("enum symbol must be a string, found: {symbol}"));
            };
            validate_name(symbol)?;
            if !seen.insert(symbol.as_str()) {
                return Err(format!("duplicate enum symbol: {symbol}"));
            }
            symbols.push(symbol.clone());
        }
        let default = match obj.get("default") {
            None | Some(Json::Null) => None,
            Some(Json::String(d)) if symbols.contains(d) => Some(d.clone()),
            Some(other) => {
                return Err(format!(
                    "the enum default {other} is not in the symbols of {}",
                    named.name.full()
                ));
            }
        };
        self.define(
            &named.clone(),
            Node::Enum {
                named,
                symbols,
                default,
            },
        )
    }

    fn fixed(&mut self, obj: &Map<String, Json>, space: Option<&str>) -> Result<NodeId, String> {
        let named = self.named(obj, space)?;
        let size = obj
            .get("size")
            .and_then(Json::as_u64)
            .and_then(|s| usize::try_from(s).ok())
            .filter(|s| i32::try_from(*s).is_ok())
            .ok_or_else(|| format!("fixed {} needs a non-negative int size", named.name.full()))?;
        self.define(&named.clone(), Node::Fixed { named, size })
    }
}

/// Java's `validateName`: a letter or underscore, then letters, digits or underscores.
fn validate_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(format!("illegal name: {name:?}"))
    }
}

fn check_defaults(parsed: &Parsed) -> Result<(), String> {
    for node in &parsed.nodes {
        if let Node::Record { named, fields } = node {
            for field in fields {
                if let Some(default) = &field.default
                    && !default_fits(parsed, field.schema, default)
                {
                    return Err(format!(
                        "invalid default for field {} of {}: {default}",
                        field.name,
                        named.name.full()
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Whether a JSON default fits a type. A union default may match any branch: Avro 1.11 insisted
/// on the first, later readers accept any, and refusing a schema Java accepts would be worse.
pub(crate) fn default_fits(parsed: &Parsed, id: NodeId, default: &Json) -> bool {
    match parsed.resolve(id) {
        Node::Primitive(t) => match t {
            AvroType::Null => default.is_null(),
            AvroType::Boolean => default.is_boolean(),
            AvroType::Int => default.as_i64().is_some_and(|v| i32::try_from(v).is_ok()),
            AvroType::Long => default.is_i64() || default.is_u64() && default.as_i64().is_some(),
            AvroType::Float | AvroType::Double => {
                default.is_number()
                    || matches!(default.as_str(), Some("NaN" | "Infinity" | "-Infinity"))
            }
            _ => default.is_string(),
        },
        Node::Enum { .. } | Node::Fixed { .. } => default.is_string(),
        Node::Array(items) => default
            .as_array()
            .is_some_and(|a| a.iter().all(|v| default_fits(parsed, *items, v))),
        Node::Map(values) => default
            .as_object()
            .is_some_and(|m| m.values().all(|v| default_fits(parsed, *values, v))),
        Node::Union(branches) => branches.iter().any(|b| default_fits(parsed, *b, default)),
        Node::Record { fields, .. } => default.as_object().is_some_and(|obj| {
            fields
                .iter()
                .all(|f| match obj.get(&f.name).or(f.default.as_ref()) {
                    Some(v) => default_fits(parsed, f.schema, v),
                    None => false,
                })
        }),
        Node::Ref(_) => false,
    }
}

impl Parsed {
    /// The node behind `id`, following a reference to its definition.
    pub(crate) fn resolve(&self, id: NodeId) -> &Node {
        match &self.nodes[id] {
            Node::Ref(target) => &self.nodes[*target],
            node => node,
        }
    }

    /// `id` with a reference replaced by the id of its definition.
    pub(crate) fn canonical_id(&self, id: NodeId) -> NodeId {
        match &self.nodes[id] {
            Node::Ref(target) => *target,
            _ => id,
        }
    }
}
