//! The parser proper: JSON to arena nodes, with the checks Java's `Schema.Parser` makes while
//! reading (names, redefinitions, unions, required attributes, the size caps).

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value as Json};

use super::{excerpt, excerpt_str};
use crate::schema::limits::{MAX_DEPTH, MAX_ENUM_SYMBOLS, MAX_FIELDS, MAX_UNION_BRANCHES};
use crate::schema::model::{AvroType, Field, Name, Named, Node, NodeId};

/// A reference to a named type not (yet) defined when it was read, with the full names it may
/// mean: qualified by the enclosing namespace first, then as written (Java's `Names.get`).
pub(super) struct Pending {
    pub(super) node: NodeId,
    pub(super) candidates: Vec<String>,
    pub(super) written: String,
}

/// What the parser has read so far of one document.
#[derive(Default)]
pub(super) struct Parser {
    pub(super) nodes: Vec<Node>,
    pub(super) names: HashMap<String, NodeId>,
    pub(super) pending: Vec<Pending>,
    /// How deep the type being read is nested.
    depth: usize,
    /// The records whose fields are being read, outermost first.
    open: Vec<NodeId>,
    /// For each record, the records open when it was read (itself last): a default may not
    /// need their fields, as Java's parser has not set them yet ("fields not set yet").
    pub(super) open_at: HashMap<NodeId, Vec<NodeId>>,
}
impl Parser {
    fn push(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    pub(super) fn parse(&mut self, json: &Json, space: Option<&str>) -> Result<NodeId, String> {
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
