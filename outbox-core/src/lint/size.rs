//! The `size-large` estimate: a typical encoded size, computed over the parsed schema's arena
//! without recursion, each named type once, a recursive type counted once.

use std::collections::{HashMap, HashSet};

use super::config::RuleSettings;
use crate::schema::Parsed;
use crate::schema::model::{AvroType, Node, NodeId};

/// A typical Avro binary size of one datum, in bytes (saturating, never overflows).
///
/// Numbers count at their largest varint, strings and bytes at
/// [`RuleSettings::assumed_string_bytes`], arrays and maps at
/// [`RuleSettings::assumed_collection_items`] entries, a union at its largest branch, and a
/// type that contains itself as nothing the second time (the recursion must end in a null).
pub(super) fn estimate(parsed: &Parsed, settings: &RuleSettings) -> u64 {
    let string = settings.assumed_string_bytes.saturating_add(1);
    let items = settings.assumed_collection_items;
    let mut done: HashMap<NodeId, u64> = HashMap::new();
    let mut entered: HashSet<NodeId> = HashSet::new();
    let mut stack: Vec<(NodeId, bool)> = vec![(parsed.canonical_id(parsed.root), false)];
    let size_of = |done: &HashMap<NodeId, u64>, id: NodeId| -> u64 {
        done.get(&parsed.canonical_id(id)).copied().unwrap_or(0)
    };
    while let Some((id, exiting)) = stack.pop() {
        let node = &parsed.nodes[id];
        if !exiting {
            if done.contains_key(&id) || !entered.insert(id) {
                continue;
            }
            stack.push((id, true));
            for child in children(node).iter().rev() {
                stack.push((parsed.canonical_id(*child), false));
            }
            continue;
        }
        let size = match node {
            Node::Primitive(t) => match t {
                AvroType::Null => 0,
                AvroType::Boolean => 1,
                AvroType::Int => 5,
                AvroType::Long => 10,
                AvroType::Float => 4,
                AvroType::Double => 8,
                _ => string,
            },
            Node::Fixed { size, .. } => *size as u64,
            Node::Enum { symbols, .. } => varint_len(symbols.len() as u64),
            // A block count, the entries, the closing zero count.
            Node::Array(item) => items
                .saturating_mul(size_of(&done, *item))
                .saturating_add(2),
            Node::Map(value) => items
                .saturating_mul(size_of(&done, *value).saturating_add(string))
                .saturating_add(2),
            Node::Union(branches) => branches
                .iter()
                .map(|b| size_of(&done, *b))
                .max()
                .unwrap_or(0)
                .saturating_add(1),
            Node::Record { fields, .. } => fields
                .iter()
                .fold(0u64, |sum, f| sum.saturating_add(size_of(&done, f.schema))),
            Node::Ref(target) => size_of(&done, *target),
        };
        done.insert(id, size);
    }
    size_of(&done, parsed.root)
}

fn children(node: &Node) -> Vec<NodeId> {
    match node {
        Node::Array(c) | Node::Map(c) | Node::Ref(c) => vec![*c],
        Node::Union(branches) => branches.clone(),
        Node::Record { fields, .. } => fields.iter().map(|f| f.schema).collect(),
        Node::Primitive(_) | Node::Fixed { .. } | Node::Enum { .. } => Vec::new(),
    }
}

fn varint_len(mut value: u64) -> u64 {
    // Zig-zag doubles the value; each byte carries seven bits.
    value = value.saturating_mul(2);
    let mut len = 1;
    while value >= 0x80 {
        value >>= 7;
        len += 1;
    }
    len
}
