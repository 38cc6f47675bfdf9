//! Enums, fixed types and the `Event` impl.

use std::fmt::Write as _;

use apache_avro::schema::{
    Alias, EnumSchema, FixedSchema, Name, RecordSchema, Schema as Avro, UuidSchema,
};

use super::CodegenError;
use super::emit::{ident, literal, path, try_ident};
use super::logical::kind_name;
use super::types::{ALLOW, FieldType, Generator, Kind, docs, namespace_parts};

impl Generator<'_> {
    pub(super) fn enumeration(
        &mut self,
        e: &EnumSchema,
        location: &str,
    ) -> Result<(), CodegenError> {
        let name = self.type_name(&e.name, location)?;
        let definition = serde_json::to_string(&Avro::Enum(e.clone())).unwrap_or_default();
        if !self.define(&e.name, Kind::Enum, &definition)? {
            return Ok(());
        }
        let mut item = String::new();
        docs(&mut item, e.doc.as_deref());
        let derive_default = if e.default.is_some() { ", Default" } else { "" };
        let _ = writeln!(
            item,
            "#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash{derive_default}, ::serde::Serialize, ::serde::Deserialize, ::apache_avro::AvroSchema)]"
        );
        item.push_str(ALLOW);
        item.push_str(&container_attributes(
            &e.name,
            e.doc.as_deref(),
            e.aliases.as_deref(),
        ));
        if ident(&name) != name {
            let _ = writeln!(item, "#[serde(rename = {})]", literal(&name));
        }
        let _ = writeln!(item, "pub enum {} {{", ident(&name));
        for symbol in &e.symbols {
            let variant = try_ident(symbol).ok_or_else(|| {
                self.unsupported(
                    &format!("{location}/symbols"),
                    &format!("the symbol {symbol:?}"),
                )
            })?;
            if e.default.as_deref() == Some(symbol.as_str()) {
                item.push_str("    #[default]\n");
            }
            if variant != *symbol {
                let _ = writeln!(item, "    #[serde(rename = {})]", literal(symbol));
            }
            let _ = writeln!(item, "    {variant},");
        }
        item.push_str("}\n");
        self.out.push(&namespace_parts(&e.name), item);
        Ok(())
    }

    /// A fixed is a `[u8; N]` field whose schema comes from a generated function, since the
    /// derive's own fixed has a name of its own.
    pub(super) fn fixed(
        &mut self,
        fixed: &FixedSchema,
        location: &str,
    ) -> Result<(), CodegenError> {
        self.type_name(&fixed.name, location)?;
        let definition = serde_json::to_string(&Avro::Fixed(fixed.clone())).unwrap_or_default();
        if !self.define(&fixed.name, Kind::Fixed(fixed.size), &definition)? {
            return Ok(());
        }
        let doc = match &fixed.doc {
            Some(doc) => format!("Some({}.to_owned())", literal(doc)),
            None => "None".to_owned(),
        };
        let aliases = match fixed.aliases.as_deref().filter(|a| !a.is_empty()) {
            Some(aliases) => {
                let list: Vec<String> = aliases
                    .iter()
                    .map(|a| {
                        format!(
                            "::apache_avro::schema::Alias::new({}).expect(\"a valid alias\")",
                            literal(&alias_text(a))
                        )
                    })
                    .collect();
                format!("Some(vec![{}])", list.join(", "))
            }
            None => "None".to_owned(),
        };
        let builder = format!(
            "::apache_avro::schema::FixedSchema {{ name, aliases: {aliases}, doc: {doc}, size: {}, attributes: ::std::collections::BTreeMap::new() }}",
            fixed.size
        );
        let item = format!(
            "/// The schema of the fixed `{full}`, for the fields of that type.\n#[allow(non_snake_case)]\n\
             pub fn {function}(\n    named: &mut ::std::collections::HashSet<::apache_avro::schema::Name>,\n    _: ::apache_avro::schema::NamespaceRef<'_>,\n) -> ::apache_avro::schema::Schema {{\n    \
             let name = ::apache_avro::schema::Name::new({full_lit}).expect(\"a valid name\");\n    \
             if named.contains(&name) {{\n        return ::apache_avro::schema::Schema::Ref {{ name }};\n    }}\n    \
             named.insert(name.clone());\n    \
             ::apache_avro::schema::Schema::Fixed({builder})\n}}\n",
            full = fixed.name.fullname(None),
            function = fixed_function(&fixed.name),
            full_lit = literal(&fixed.name.fullname(None)),
        );
        self.out.push(&namespace_parts(&fixed.name), item);
        Ok(())
    }

    pub(super) fn fixed_field(&self, name: &Name, size: usize, namespace: &[String]) -> FieldType {
        let function = path(namespace, &namespace_parts(name), &fixed_function(name));
        FieldType {
            ty: format!("[u8; {size}]"),
            attributes: vec![
                "#[serde(with = \"::apache_avro::serde::fixed\")]".to_owned(),
                format!("#[avro(with = {function})]"),
            ],
            trait_default: false,
        }
    }

    pub(super) fn event(
        &mut self,
        record: &RecordSchema,
        event: &super::EventSpec,
    ) -> Result<(), CodegenError> {
        let fail = |reason: String| CodegenError::Event {
            file: self.input.label.clone(),
            reason,
        };
        // Kafka's rule for topic names: caught here, not as dead letters at the relay.
        let topic = &event.topic;
        if topic.is_empty()
            || topic.len() > 249
            || topic == "."
            || topic == ".."
            || !topic
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(fail(format!(
                "{topic:?} is not a Kafka topic name (1 to 249 letters, digits, '.', '_', '-')"
            )));
        }
        let key = match &event.key_field {
            None => "None".to_owned(),
            Some(key) => {
                let field = record
                    .fields
                    .iter()
                    .find(|f| &f.name == key)
                    .ok_or_else(|| {
                        fail(format!(
                            "{} has no field {key:?}",
                            record.name.fullname(None)
                        ))
                    })?;
                let access = format!("self.{}", ident(&field.name));
                match &field.schema {
                    Avro::String | Avro::Uuid(UuidSchema::String) => {
                        format!("Some({access}.clone())")
                    }
                    Avro::Int | Avro::Long | Avro::Boolean => format!("Some({access}.to_string())"),
                    Avro::Union(u) if matches!(u.variants(), [Avro::Null, Avro::String]) => {
                        format!("{access}.clone()")
                    }
                    other => {
                        return Err(fail(format!(
                            "the key field {key} is a {}; use a string, int, long or boolean",
                            kind_name(other)
                        )));
                    }
                }
            }
        };
        let namespace = namespace_parts(&record.name);
        let item = format!(
            "impl ::outbox_core::Event for {} {{\n    const TOPIC: &'static str = {};\n    fn key(&self) -> ::std::option::Option<::std::string::String> {{\n        {key}\n    }}\n}}\n",
            ident(record.name.name()),
            literal(&event.topic)
        );
        self.out.push(&namespace, item);
        Ok(())
    }
}

/// `#[avro(namespace, doc, alias)]` of a named type.
pub(super) fn container_attributes(
    name: &Name,
    doc: Option<&str>,
    aliases: Option<&[Alias]>,
) -> String {
    // Without a namespace the derive takes the enclosing record's: a type of the null
    // namespace (`"namespace": ""`) inside `com.acme.Outer` would become `com.acme.Inner`.
    // An empty one makes the derive's name `.Inner`, which is the null namespace.
    let mut parts = vec![format!(
        "namespace = {}",
        literal(name.namespace().unwrap_or_default())
    )];
    if let Some(doc) = doc {
        parts.push(format!("doc = {}", literal(doc)));
    }
    for alias in aliases.unwrap_or_default() {
        parts.push(format!("alias = {}", literal(&alias_text(alias))));
    }
    format!("#[avro({})]\n", parts.join(", "))
}

pub(super) fn alias_text(alias: &Alias) -> String {
    alias.fullname(None)
}

pub(super) fn fixed_function(name: &Name) -> String {
    // The exact name (not lower-cased): `Md5` and `MD5` are two types.
    format!("{}_schema", name.name())
}
