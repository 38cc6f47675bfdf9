//! Parsing Avro schema JSON into the arena, with the checks Java's `Schema.Parser` makes:
//! valid names, no redefinition, no primitive-named types, no nested or duplicate union
//! branches, required attributes present, and field defaults that fit their type; and the
//! caps of [`limits`](super::limits), so no document recurses without end or costs more than
//! linear work to check.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value as Json};

use super::limits::{
    MAX_DEFAULT_STEPS, MAX_DEPTH, MAX_ENUM_SYMBOLS, MAX_FIELDS, MAX_JSON_DEPTH, MAX_UNION_BRANCHES,
};
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
    /// How deep the type being read is nested.
    depth: usize,
    /// The records whose fields are being read, outermost first.
    open: Vec<NodeId>,
    /// For each record, the records open when it was read (itself last): a default may not
    /// need their fields, as Java's parser has not set them yet ("fields not set yet").
    open_at: HashMap<NodeId, Vec<NodeId>>,
}

/// Parses schema JSON; the error is a one-line reason.
pub(crate) fn parse(json: &Json) -> Result<Parsed, String> {
    check_json_depth(json)?;
    let mut parser = Parser {
        nodes: Vec::new(),
        names: HashMap::new(),
        pending: Vec::new(),
        depth: 0,
        open: Vec::new(),
        open_at: HashMap::new(),
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
    check_type_depth(&parsed)?;
    check_defaults(&parsed, &parser.open_at)?;
    Ok(parsed)
}

/// Refuses JSON nested deeper than [`MAX_JSON_DEPTH`], without recursing (a value built in
/// code is not bounded by `serde_json`'s parser limit).
fn check_json_depth(json: &Json) -> Result<(), String> {
    let mut stack = vec![(json, 1usize)];
    while let Some((value, depth)) = stack.pop() {
        if depth > MAX_JSON_DEPTH {
            return Err(format!(
                "the document nests deeper than {MAX_JSON_DEPTH} JSON levels"
            ));
        }
        match value {
            Json::Array(items) => stack.extend(items.iter().map(|v| (v, depth + 1))),
            Json::Object(map) => stack.extend(map.values().map(|v| (v, depth + 1))),
            _ => {}
        }
    }
    Ok(())
}

/// Refuses types nested deeper than [`MAX_DEPTH`] counting references to named types, so a
/// long chain of records each naming the next cannot drive the checker or the encoder deep.
/// Each node's depth is computed once; a reference back to a type being walked (recursion)
/// counts as a leaf.
fn check_type_depth(parsed: &Parsed) -> Result<(), String> {
    fn walk(
        parsed: &Parsed,
        id: NodeId,
        level: usize,
        memo: &mut HashMap<NodeId, Option<usize>>,
    ) -> Result<usize, String> {
        if level > MAX_DEPTH {
            return Err(format!(
                "types nest deeper than {MAX_DEPTH} levels (counting named-type references)"
            ));
        }
        let id = parsed.canonical_id(id);
        match memo.get(&id) {
            Some(Some(height)) => return Ok(*height),
            Some(None) => return Ok(0), // recursion: Java stops here too
            None => {}
        }
        memo.insert(id, None);
        let children: Vec<NodeId> = match &parsed.nodes[id] {
            Node::Array(c) | Node::Map(c) => vec![*c],
            Node::Union(branches) => branches.clone(),
            Node::Record { fields, .. } => fields.iter().map(|f| f.schema).collect(),
            _ => Vec::new(),
        };
        let mut height = 0;
        for child in children {
            height = height.max(walk(parsed, child, level + 1, memo)? + 1);
            if level + height > MAX_DEPTH {
                return Err(format!(
                    "types nest deeper than {MAX_DEPTH} levels (counting named-type references)"
                ));
            }
        }
        memo.insert(id, Some(height));
        Ok(height)
    }
    walk(parsed, parsed.root, 0, &mut HashMap::new()).map(drop)
}

impl Parser {
    fn push(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn parse(&mut self, json: &Json, space: Option<&str>) -> Result<NodeId, String> {
        if self.depth >= MAX_DEPTH {
            return Err(format!("types nest deeper than {MAX_DEPTH} levels"));
        }
        self.depth += 1;
        let parsed = match json {
            Json::String(name) => Ok(self.reference(name, space)),
            Json::Array(branches) => self.union(branches, space),
            Json::Object(obj) => self.object(obj, space),
            other => Err(format!("not a schema: {}", excerpt(other))),
        };
        self.depth -= 1;
        parsed
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
        if branches.len() > MAX_UNION_BRANCHES {
            return Err(format!(
                "a union has {} branches, more than the limit of {MAX_UNION_BRANCHES}",
                branches.len()
            ));
        }
        let mut ids = Vec::with_capacity(branches.len());
        let mut seen: HashSet<String> = HashSet::with_capacity(branches.len());
        for branch in branches {
            if branch.is_array() {
                return Err("unions may not immediately contain other unions".to_owned());
            }
            let id = self.parse(branch, space)?;
            if let Some(key) = self.union_key(branch, id, space) {
                if seen.contains(&key) {
                    return Err(format!("duplicate in union: {key}"));
                }
                seen.insert(key);
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
            Some(other) => {
                return Err(format!(
                    "\"type\" must be a string, found: {}",
                    excerpt(other)
                ));
            }
            None => return Err(format!("no type: {}", excerpt(&Json::Object(obj.clone())))),
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
        if fields_json.len() > MAX_FIELDS {
            return Err(format!(
                "record {} has {} fields, more than the limit of {MAX_FIELDS}",
                named.name.full(),
                fields_json.len()
            ));
        }
        self.open.push(id);
        self.open_at.insert(id, self.open.clone());
        let fields = self.fields(&named, fields_json);
        self.open.pop();
        self.nodes[id] = Node::Record {
            named,
            fields: fields?,
        };
        Ok(id)
    }

    fn fields(&mut self, named: &Named, fields_json: &[Json]) -> Result<Vec<Field>, String> {
        let inner_space = named.name.namespace.clone();
        let mut fields: Vec<Field> = Vec::with_capacity(fields_json.len());
        let mut seen: HashSet<&str> = HashSet::with_capacity(fields_json.len());
        for field in fields_json {
            let Json::Object(field) = field else {
                return Err(format!(
                    "field must be an object, found: {}",
                    excerpt(field)
                ));
            };
            let Some(Json::String(name)) = field.get("name") else {
                return Err("field has no \"name\"".to_owned());
            };
            validate_name(name)?;
            if !seen.insert(name) {
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
                return Err(format!(
                    "field {name} has an invalid order: {}",
                    excerpt(order)
                ));
            }
            fields.push(Field {
                name: name.clone(),
                aliases,
                schema,
                default: field.get("default").cloned(),
            });
        }
        Ok(fields)
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
        if list.len() > MAX_ENUM_SYMBOLS {
            return Err(format!(
                "enum {} has {} symbols, more than the limit of {MAX_ENUM_SYMBOLS}",
                named.name.full(),
                list.len()
            ));
        }
        let mut symbols: Vec<String> = Vec::with_capacity(list.len());
        let mut seen: HashSet<&str> = HashSet::with_capacity(list.len());
        for symbol in list {
            let Json::String(symbol) = symbol else {
                return Err(format!(
                    "enum symbol must be a string, found: {}",
                    excerpt(symbol)
                ));
            };
            validate_name(symbol)?;
            if !seen.insert(symbol) {
                return Err(format!("duplicate enum symbol: {symbol}"));
            }
            symbols.push(symbol.clone());
        }
        let default = match obj.get("default") {
            None | Some(Json::Null) => None,
            Some(Json::String(d)) if seen.contains(d.as_str()) => Some(d.clone()),
            Some(other) => {
                return Err(format!(
                    "the enum default {} is not in the symbols of {}",
                    excerpt(other),
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
        Err(format!("illegal name: {:?}", excerpt_str(name)))
    }
}

/// At most this many characters of an input value go into an error message.
const EXCERPT: usize = 120;

/// A value for an error message, cut to [`EXCERPT`] characters: a message must not echo a
/// megabyte of input.
pub(crate) fn excerpt(json: &Json) -> String {
    excerpt_str(&json.to_string()).into_owned()
}

fn excerpt_str(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(EXCERPT) {
        Some((cut, _)) => format!("{}...", &text[..cut]).into(),
        None => text.into(),
    }
}

fn check_defaults(parsed: &Parsed, open_at: &HashMap<NodeId, Vec<NodeId>>) -> Result<(), String> {
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
