//! A record schema as a Rust struct: its attributes and fields.

use std::fmt::Write as _;

use apache_avro::schema::{RecordField, RecordSchema, Schema as Avro};

use super::CodegenError;
use super::emit::{ident, literal, try_ident};
use super::named::container_attributes;
use super::types::{ALLOW, Generator, Kind, docs, indent, namespace_parts};

impl Generator<'_> {
    pub(super) fn record(
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

    pub(super) fn field(
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
}
