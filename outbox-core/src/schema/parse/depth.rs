//! The nesting caps: JSON depth before parsing, type depth (through named-type references)
//! after, both without unbounded recursion.

use std::collections::HashMap;

use serde_json::Value as Json;

use super::Parsed;
use crate::schema::limits::{MAX_DEPTH, MAX_JSON_DEPTH};
use crate::schema::model::{Node, NodeId};

/// Refuses JSON nested deeper than [`MAX_JSON_DEPTH`], without recursing (a value built in
/// code is not bounded by `serde_json`'s parser limit).
pub(super) fn check_json_depth(json: &Json) -> Result<(), String> {
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
pub(super) fn check_type_depth(parsed: &Parsed) -> Result<(), String> {
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
