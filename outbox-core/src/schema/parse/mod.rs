//! Parsing Avro schema JSON into the arena, with the checks Java's `Schema.Parser` makes:
//! valid names, no redefinition, no primitive-named types, no nested or duplicate union
//! branches, required attributes present, and field defaults that fit their type; and the
//! caps of [`limits`](super::limits), so no document recurses without end or costs more than
//! linear work to check.

mod defaults;
mod depth;
mod parser;

use serde_json::Value as Json;

use super::model::{Node, NodeId};
use parser::Parser;

/// The arena a parse produces.
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    pub(crate) nodes: Vec<Node>,
    pub(crate) root: NodeId,
}

/// Parses schema JSON; the error is a one-line reason.
pub(crate) fn parse(json: &Json) -> Result<Parsed, String> {
    depth::check_json_depth(json)?;
    let mut parser = Parser::default();
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
    depth::check_type_depth(&parsed)?;
    defaults::check_defaults(&parsed, &parser.open_at)?;
    Ok(parsed)
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
