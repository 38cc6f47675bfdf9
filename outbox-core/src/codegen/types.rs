//! From `apache_avro`'s schema model (the one the derive produces, so logical types, docs,
//! defaults and aliases compare like for like) to Rust items.

use std::collections::HashMap;
use std::fmt::Write as _;

use apache_avro::schema::{Name, RecordField, RecordSchema, Schema as Avro};

use super::emit::{Output, ident, literal, path, try_ident};
use super::logical::{kind_name, logical, logical_rust_type, union_text};
use super::named::container_attributes;
use super::{CodegenError, Input};

/// Avro names need not follow Rust's naming conventions, nor have docs.
pub(super) const ALLOW: &str = "#[allow(missing_docs, non_camel_case_types, non_snake_case)]\n";

/// Deeper nesting than this is refused (the parser bounds it too; this does not rely on it).
const MAX_DEPTH: usize = 64;

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
    open_records: Vec<String>,
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

    fn record(
        &mut self,
        record: &RecordSchema,
        location: &str,
        depth: usize,
    ) -> Result<(), CodegenError> {
        let name = self.type_name(&record.name, location)?;
        let full = record.name.fullname(None);
        let definition = serde_json::to_string(&Avro::Record(record.clone())).unwrap_or_default();
        if !self.define(&record.name, Kind::Record, &definition)? {
            return Ok(());
        }
        let namespace = namespace_parts(&record.name);
        self.open_records.push(full);
        let mut fields = String::new();
        for (i, field) in record.fields.iter().enumerate() {
            let at = format!("{location}/fields/{i}");
            fields.push_str(&self.field(field, &namespace, &at, depth)?);
        }
        self.open_records.pop();
        let mut item = String::new();
        docs(&mut item, record.doc.as_deref());
        item.push_str(
            "#[derive(Debug, Clone, PartialEq, ::serde::Serialize, ::serde::Deserialize, ::apache_avro::AvroSchema)]\n",
        );
        item.push_str(ALLOW);
        item.push_str(&container_attributes(
            &record.name,
            record.doc.as_deref(),
            record.aliases.as_deref(),
        ));
        if ident(&name) != name {
            let _ = writeln!(item, "#[serde(rename = {})]", literal(&name));
        }
        let _ = writeln!(item, "pub struct {} {{\n{fields}}}", ident(&name));
        self.out.push(&namespace, item);
        Ok(())
    }

    fn field(
        &mut self,
        field: &RecordField,
        namespace: &[String],
        location: &str,
        depth: usize,
    ) -> Result<String, CodegenError> {
        let rust_name = try_ident(&field.name).ok_or_else(|| {
            self.unsupported(location, &format!("a field named {:?}", field.name))
        })?;
        let ty = self.field_type(
            &field.schema,
            namespace,
            &format!("{location}/type"),
            depth + 1,
        )?;
        let mut out = String::new();
        docs(&mut out, field.doc.as_deref());
        let mut avro: Vec<String> = Vec::new();
        if let Some(doc) = &field.doc {
            avro.push(format!("doc = {}", literal(doc)));
        }
        match &field.default {
            Some(default) => avro.push(format!("default = {}", literal(&default.to_string()))),
            None if ty.trait_default => avro.push("default = false".to_owned()),
            None => {}
        }
        let mut serde: Vec<String> = Vec::new();
        if rust_name != field.name {
            serde.push(format!("rename = {}", literal(&field.name)));
        }
        for alias in &field.aliases {
            serde.push(format!("alias = {}", literal(alias)));
        }
        for attribute in &ty.attributes {
            out.push_str(attribute);
            out.push('\n');
        }
        if !avro.is_empty() {
            let _ = writeln!(out, "#[avro({})]", avro.join(", "));
        }
        if !serde.is_empty() {
            let _ = writeln!(out, "#[serde({})]", serde.join(", "));
        }
        let _ = writeln!(out, "pub {rust_name}: {},", ty.ty);
        Ok(indent(&out))
    }

    /// The Rust type of a field whose schema is `schema`.
    fn field_type(
        &mut self,
        schema: &Avro,
        namespace: &[String],
        location: &str,
        depth: usize,
    ) -> Result<FieldType, CodegenError> {
        let with = |ty: &str, expr: String| FieldType {
            ty: ty.to_owned(),
            attributes: vec![format!("#[avro(with = || {expr})]")],
            trait_default: false,
        };
        if let Some(expr) = logical(schema) {
            return Ok(with(&logical_rust_type(schema), expr));
        }
        match schema {
            Avro::Bytes => Ok(FieldType {
                ty: "::std::vec::Vec<u8>".to_owned(),
                attributes: vec![
                    "#[serde(with = \"::apache_avro::serde::bytes\")]".to_owned(),
                    "#[avro(with)]".to_owned(),
                ],
                trait_default: false,
            }),
            Avro::Fixed(fixed) => {
                self.fixed(fixed, location)?;
                Ok(self.fixed_field(&fixed.name, fixed.size, namespace))
            }
            Avro::Ref { name } if matches!(self.kind_of(name), Some(Kind::Fixed(_))) => {
                let Some(Kind::Fixed(size)) = self.kind_of(name) else {
                    unreachable!("matched")
                };
                Ok(self.fixed_field(name, size, namespace))
            }
            Avro::Union(union) => {
                let branches = union.variants();
                match branches {
                    [Avro::Null, inner] => {
                        if let Some(expr) = logical(inner) {
                            let ty = format!("::std::option::Option<{}>", logical_rust_type(inner));
                            return Ok(with(
                                &ty,
                                format!(
                                    "::apache_avro::schema::Schema::Union(::apache_avro::schema::UnionSchema::new(vec![::apache_avro::schema::Schema::Null, {expr}]).expect(\"a valid union\"))"
                                ),
                            ));
                        }
                        if matches!(inner, Avro::Bytes) {
                            return Ok(FieldType {
                                ty: "::std::option::Option<::std::vec::Vec<u8>>".to_owned(),
                                attributes: vec![
                                    "#[serde(with = \"::apache_avro::serde::bytes_opt\")]"
                                        .to_owned(),
                                    "#[avro(with)]".to_owned(),
                                ],
                                trait_default: false,
                            });
                        }
                        let inner =
                            self.nested(inner, namespace, &format!("{location}/1"), depth + 1)?;
                        Ok(FieldType {
                            ty: format!("::std::option::Option<{inner}>"),
                            attributes: Vec::new(),
                            trait_default: true,
                        })
                    }
                    _ => Err(self.unsupported(location, &union_text(branches))),
                }
            }
            other => Ok(FieldType {
                ty: self.nested(other, namespace, location, depth)?,
                attributes: Vec::new(),
                trait_default: false,
            }),
        }
    }

    /// The Rust type of `schema` inside an array, a map or an option, where only the derive's
    /// own mapping of a Rust type applies.
    fn nested(
        &mut self,
        schema: &Avro,
        namespace: &[String],
        location: &str,
        depth: usize,
    ) -> Result<String, CodegenError> {
        if depth > MAX_DEPTH {
            return Err(
                self.unsupported(location, &format!("types nested over {MAX_DEPTH} levels"))
            );
        }
        Ok(match schema {
            Avro::Null => "()".to_owned(),
            Avro::Boolean => "bool".to_owned(),
            Avro::Int => "i32".to_owned(),
            Avro::Long => "i64".to_owned(),
            Avro::Float => "f32".to_owned(),
            Avro::Double => "f64".to_owned(),
            Avro::String => "::std::string::String".to_owned(),
            Avro::Array(array) => format!(
                "::std::vec::Vec<{}>",
                self.nested(
                    &array.items,
                    namespace,
                    &format!("{location}/items"),
                    depth + 1
                )?
            ),
            Avro::Map(map) => format!(
                "::std::collections::HashMap<::std::string::String, {}>",
                self.nested(
                    &map.types,
                    namespace,
                    &format!("{location}/values"),
                    depth + 1
                )?
            ),
            Avro::Record(record) => {
                self.record(record, location, depth)?;
                path(
                    namespace,
                    &namespace_parts(&record.name),
                    record.name.name(),
                )
            }
            Avro::Enum(e) => {
                self.enumeration(e, location)?;
                path(namespace, &namespace_parts(&e.name), e.name.name())
            }
            Avro::Ref { name } => match self.kind_of(name) {
                Some(Kind::Record | Kind::Enum) => {
                    let target = path(namespace, &namespace_parts(name), name.name());
                    if self.open_records.contains(&name.fullname(None)) {
                        format!("::std::boxed::Box<{target}>")
                    } else {
                        target
                    }
                }
                _ => {
                    return Err(self.unsupported(
                        location,
                        "a fixed inside an array, a map or a union (only as a field's type)",
                    ));
                }
            },
            Avro::Union(union) => match union.variants() {
                [Avro::Null, inner] => format!(
                    "::std::option::Option<{}>",
                    self.nested(inner, namespace, &format!("{location}/1"), depth + 1)?
                ),
                branches => return Err(self.unsupported(location, &union_text(branches))),
            },
            Avro::Bytes | Avro::Fixed(_) => {
                return Err(self.unsupported(
                    location,
                    &format!(
                        "{} inside an array, a map or a union (only as a field's type)",
                        kind_name(schema)
                    ),
                ));
            }
            other if logical(other).is_some() => {
                return Err(self.unsupported(location, &format!("the logical type {} inside an array, a map or a union (only as a field's type or an option)", kind_name(other))));
            }
            other => {
                return Err(self.unsupported(location, &format!("the type {}", kind_name(other))));
            }
        })
    }

    fn kind_of(&mut self, name: &Name) -> Option<Kind> {
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

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

pub(super) fn namespace_parts(name: &Name) -> Vec<String> {
    name.namespace()
        .map(|ns| ns.split('.').map(str::to_owned).collect())
        .unwrap_or_default()
}
