//! The Rust type of a field's schema, and of the schemas nested in arrays, maps and unions.

use apache_avro::schema::Schema as Avro;

use super::CodegenError;
use super::emit::path;
use super::logical::{kind_name, logical, logical_rust_type, union_text};
use super::types::{FieldType, Generator, Kind, MAX_DEPTH, namespace_parts};

impl Generator<'_> {
    /// The Rust type of a field whose schema is `schema`.
    pub(super) fn field_type(
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
    pub(super) fn nested(
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
}
