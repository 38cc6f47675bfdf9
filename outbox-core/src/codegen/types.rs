//! From `apache_avro`'s schema model (the one the derive produces, so logical types, docs,
//! defaults and aliases compare like for like) to Rust items.

use std::collections::HashMap;
use std::fmt::Write as _;

use apache_avro::schema::{Name, Schema as Avro};

use super::emit::{Output, literal, try_ident};
use super::logical::kind_name;
use super::{CodegenError, Input};

/// Avro names need not follow Rust's naming conventions, nor have docs.
pub(super) const ALLOW: &str = "#[allow(missing_docs, non_camel_case_types, non_snake_case)]\n";

/// Deeper nesting than this is refused (the parser bounds it too; this does not rely on it).
pub(super) const MAX_DEPTH: usize = 64;

/// A named type already generated: where, and what it is.
#[derive(Debug, Clone)]
pub(super) struct Defined {
    kind: Kind,
    /// Which input defined it, and its definition, to spot conflicting redefinitions.
    label: String,
    definition: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Record,
    Enum,
    Fixed(usize),
}

/// The Rust type of a field and the attributes its schema needs.
pub(super) struct FieldType {
    pub(super) ty: String,
    pub(super) attributes: Vec<String>,
    /// Whether the derive's own field default (`null` for `Option`) must be turned off.
    pub(super) trait_default: bool,
}

pub(super) struct Generator<'a> {
    pub(super) input: &'a Input,
    pub(super) out: &'a mut Output,
    pub(super) registry: &'a mut Registry,
    /// Records being generated, innermost last: a reference to one of them is recursive.
    pub(super) open_records: Vec<String>,
}

/// Named types generated so far, across inputs, by full name.
pub(super) type Registry = HashMap<String, Defined>;

pub(super) fn generate(
    input: &Input,
    out: &mut Output,
    registry: &mut Registry,
) -> Result<(), CodegenError> {
    let schema = input.schema.to_avro().map_err(|e| CodegenError::Input {
        file: input.label.clone(),
        reason: e.to_string(),
    })?;
    let mut generator = Generator {
        input,
        out,
        registry,
        open_records: Vec::new(),
    };
    match &schema {
        Avro::Record(record) => {
            generator.record(record, "", 0)?;
            if let Some(event) = &input.event {
                generator.event(record, event)?;
            }
            Ok(())
        }
        Avro::Enum(e) if input.event.is_none() => generator.enumeration(e, ""),
        // The type itself is expressible; what cannot be is an event that is not a record.
        Avro::Enum(e) => Err(CodegenError::Event {
            file: input.label.clone(),
            reason: format!(
                "the top-level type {} is an enum; an event is a record",
                e.name.fullname(None)
            ),
        }),
        other => Err(generator.unsupported(
            "",
            &format!(
                "a top-level {}: generate a record (or an enum) and use it in a field",
                kind_name(other)
            ),
        )),
    }
}

impl Generator<'_> {
    pub(super) fn unsupported(&self, location: &str, what: &str) -> CodegenError {
        CodegenError::Unsupported {
            file: self.input.label.clone(),
            location: if location.is_empty() {
                "/".to_owned()
            } else {
                location.to_owned()
            },
            what: what.to_owned(),
        }
    }

    /// Records a definition; `false` when the same definition exists already (skip it).
    pub(super) fn define(
        &mut self,
        name: &Name,
        kind: Kind,
        definition: &str,
    ) -> Result<bool, CodegenError> {
        let full = name.fullname(None);
        let label = self.input.label.clone();
        match self.registry.get(&full) {
            Some(existing) if existing.definition == definition => Ok(false),
            Some(existing) => Err(CodegenError::Conflict {
                file: label,
                name: full,
                other: existing.label.clone(),
            }),
            None => {
                let defined = Defined {
                    kind,
                    label,
                    definition: definition.to_owned(),
                };
                self.registry.insert(full, defined);
                Ok(true)
            }
        }
    }

    pub(super) fn type_name(&self, name: &Name, location: &str) -> Result<String, CodegenError> {
        let parts = namespace_parts(name);
        // Each part is a module, indented once more: a namespace of thousands of parts would
        // make gigabytes of code from a small schema.
        if parts.len() > MAX_DEPTH {
            return Err(self.unsupported(
                location,
                &format!(
                    "a namespace of {} parts (over {MAX_DEPTH} nested modules)",
                    parts.len()
                ),
            ));
        }
        // `self`, `super`, `crate` or `_` cannot name a module, not even as a raw identifier.
        if let Some(part) = parts.into_iter().find(|p| try_ident(p).is_none()) {
            return Err(self.unsupported(
                location,
                &format!("a namespace part {part:?} (not a Rust module name)"),
            ));
        }
        // serde's derive names its own items `__Visitor`, `__Field`, `__D`, ...: a type of
        // such a name is taken for them inside the derived impls, which then do not compile.
        if name.name().starts_with("__") {
            return Err(self.unsupported(
                location,
                &format!(
                    "a type named {:?} (names starting with __ are the derives' own)",
                    name.name()
                ),
            ));
        }
        try_ident(name.name())
            .ok_or_else(|| {
                self.unsupported(
                    location,
                    &format!("a type named {:?} (not a Rust identifier)", name.name()),
                )
            })
            .map(|_| name.name().to_owned())
    }

    pub(super) fn kind_of(&mut self, name: &Name) -> Option<Kind> {
        self.registry.get(&name.fullname(None)).map(|d| d.kind)
    }
}

/// `#[doc]` lines for a person reading the generated code.
///
/// The text is the schema's, not Markdown written for rustdoc: a fence or an indented line
/// would be a doc-test that fails the user's `cargo test`, `[x]` a broken intra-doc link,
/// `<b>` an unclosed HTML tag. So each line is trimmed and the characters that start code,
/// links and HTML are escaped; the schema keeps the exact text (`#[avro(doc)]`).
pub(super) fn docs(out: &mut String, doc: Option<&str>) {
    if let Some(doc) = doc {
        for line in doc.lines() {
            let line = line.trim_start();
            let mut text = String::from(" ");
            for (i, c) in line.char_indices() {
                // `\:` before `//` keeps a bare URL from being one (rustdoc::bare_urls).
                let url = c == ':' && line[i + 1..].starts_with("//");
                if url || matches!(c, '\\' | '`' | '~' | '[' | ']' | '<' | '>' | '&') {
                    text.push('\\');
                }
                text.push(c);
            }
            let _ = writeln!(out, "#[doc = {}]", literal(&text));
        }
    }
}

pub(super) fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

pub(super) fn namespace_parts(name: &Name) -> Vec<String> {
    name.namespace()
        .map(|ns| ns.split('.').map(str::to_owned).collect())
        .unwrap_or_default()
}
