//! The parsed form of an Avro schema: an arena of nodes in which every use of a named type
//! points at the one node that defines it, as Java's `Schema` objects do. That identity is what
//! the compatibility checker memoizes on, so recursive schemas are handled the way Java does.

use serde_json::Value as Json;

/// Index of a node in a [`Schema`](super::Schema)'s arena.
pub(crate) type NodeId = usize;

/// The kind of an Avro schema node, named as Java's `Schema.Type` prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AvroType {
    /// `null`
    Null,
    /// `boolean`
    Boolean,
    /// `int`
    Int,
    /// `long`
    Long,
    /// `float`
    Float,
    /// `double`
    Double,
    /// `bytes`
    Bytes,
    /// `string`
    String,
    /// `array`
    Array,
    /// `map`
    Map,
    /// `union`
    Union,
    /// `fixed`
    Fixed,
    /// `enum`
    Enum,
    /// `record` (or `error`)
    Record,
}

impl AvroType {
    /// The upper-case name Java uses in compatibility messages (`INT`, `RECORD`, ...).
    pub fn java_name(self) -> &'static str {
        match self {
            Self::Null => "NULL",
            Self::Boolean => "BOOLEAN",
            Self::Int => "INT",
            Self::Long => "LONG",
            Self::Float => "FLOAT",
            Self::Double => "DOUBLE",
            Self::Bytes => "BYTES",
            Self::String => "STRING",
            Self::Array => "ARRAY",
            Self::Map => "MAP",
            Self::Union => "UNION",
            Self::Fixed => "FIXED",
            Self::Enum => "ENUM",
            Self::Record => "RECORD",
        }
    }

    /// The primitive type a JSON type name stands for, if it is one.
    pub(crate) fn primitive(name: &str) -> Option<Self> {
        Some(match name {
            "null" => Self::Null,
            "boolean" => Self::Boolean,
            "int" => Self::Int,
            "long" => Self::Long,
            "float" => Self::Float,
            "double" => Self::Double,
            "bytes" => Self::Bytes,
            "string" => Self::String,
            _ => return None,
        })
    }
}

/// The name of a named type (record, enum, fixed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Name {
    /// The unqualified name (`Order`).
    pub(crate) name: String,
    /// The namespace, `None` for the null namespace.
    pub(crate) namespace: Option<String>,
}

impl Name {
    /// Resolves `name` against the enclosing namespace, as Java's `Schema.Name` does: a dotted
    /// name carries its own namespace; an empty namespace is the null namespace.
    pub(crate) fn resolve(name: &str, space: Option<&str>) -> Self {
        match name.rfind('.') {
            Some(dot) => Self {
                name: name[dot + 1..].to_owned(),
                namespace: Some(name[..dot].to_owned()).filter(|s| !s.is_empty()),
            },
            None => Self {
                name: name.to_owned(),
                namespace: space.filter(|s| !s.is_empty()).map(str::to_owned),
            },
        }
    }

    /// The full name (`com.acme.Order`).
    pub(crate) fn full(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}.{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// What named types share: their name and the full names of their aliases.
#[derive(Debug, Clone)]
pub(crate) struct Named {
    pub(crate) name: Name,
    pub(crate) aliases: Vec<String>,
}

/// A record field.
#[derive(Debug, Clone)]
pub(crate) struct Field {
    pub(crate) name: String,
    pub(crate) aliases: Vec<String>,
    pub(crate) schema: NodeId,
    /// The JSON default; `Some(Json::Null)` is a default of null, `None` is no default.
    pub(crate) default: Option<Json>,
}

/// One node of the arena.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    /// A primitive type.
    Primitive(AvroType),
    Array(NodeId),
    Map(NodeId),
    Union(Vec<NodeId>),
    Fixed {
        named: Named,
        size: usize,
    },
    Enum {
        named: Named,
        symbols: Vec<String>,
        default: Option<String>,
    },
    Record {
        named: Named,
        fields: Vec<Field>,
    },
    /// A use of a named type by name; points at the defining node once parsing is done.
    Ref(NodeId),
}

impl Node {
    pub(crate) fn avro_type(&self) -> AvroType {
        match self {
            Self::Primitive(t) => *t,
            Self::Array(_) => AvroType::Array,
            Self::Map(_) => AvroType::Map,
            Self::Union(_) => AvroType::Union,
            Self::Fixed { .. } => AvroType::Fixed,
            Self::Enum { .. } => AvroType::Enum,
            Self::Record { .. } => AvroType::Record,
            Self::Ref(_) => unreachable!("references are resolved before use"),
        }
    }

    pub(crate) fn named(&self) -> Option<&Named> {
        match self {
            Self::Fixed { named, .. } | Self::Enum { named, .. } | Self::Record { named, .. } => {
                Some(named)
            }
            _ => None,
        }
    }
}
