//! The rules that look at places in the schema document (docs, field types, defaults), on a
//! walk with an explicit stack and a depth bound, so a hostile schema cannot overflow it.
//!
//! The walk reads the JSON rather than the parsed arena because it needs what the arena drops
//! (`doc`, `logicalType`) and the document's own JSON pointers; the schema has been parsed
//! (validated) before it gets here.

use serde_json::{Map, Value as Json};

use super::config::RuleSettings;
use super::names::{NameWords, words};
use super::rule::{Rule, Violation};

/// Types nested deeper than this are reported (`nesting-deep`) and not walked further.
pub(super) const MAX_DEPTH: usize = 64;

pub(super) struct Walk<'a> {
    pub(super) settings: &'a RuleSettings,
    pub(super) out: Vec<Violation>,
}

impl Walk<'_> {
    pub(super) fn report(&mut self, rule: Rule, location: &str, message: String) {
        if let Some(severity) = self.settings.severity(rule) {
            self.out.push(Violation {
                rule,
                severity,
                location: if location.is_empty() {
                    "/".to_owned()
                } else {
                    location.to_owned()
                },
                message,
                fix: rule.fix(),
            });
        }
    }

    /// Walks every type in the document, depth first, in document order.
    pub(super) fn types(&mut self, root: &Json) {
        let mut stack: Vec<(&Json, String, usize)> = vec![(root, String::new(), 0)];
        let mut too_deep_reported = false;
        while let Some((json, pointer, depth)) = stack.pop() {
            if depth > MAX_DEPTH {
                if !too_deep_reported {
                    too_deep_reported = true;
                    self.report(
                        Rule::NestingDeep,
                        &pointer,
                        format!("types are nested more than {MAX_DEPTH} levels deep"),
                    );
                }
                continue;
            }
            let mut children: Vec<(&Json, String)> = Vec::new();
            match json {
                Json::Array(branches) => {
                    for (i, branch) in branches.iter().enumerate() {
                        children.push((branch, format!("{pointer}/{i}")));
                    }
                }
                Json::Object(obj) => match obj.get("type").and_then(Json::as_str) {
                    Some(kind @ ("record" | "error")) => {
                        self.doc(obj, &pointer, kind);
                        if let Some(Json::Array(fields)) = obj.get("fields") {
                            for (i, field) in fields.iter().enumerate() {
                                let Json::Object(field) = field else { continue };
                                let at = format!("{pointer}/fields/{i}");
                                self.field(field, &at);
                                if let Some(ty) = field.get("type") {
                                    children.push((ty, format!("{at}/type")));
                                }
                            }
                        }
                    }
                    // A fixed carrying a logical type (a uuid, a decimal) means that type.
                    Some(kind @ ("enum" | "fixed")) if !obj.contains_key("logicalType") => {
                        self.doc(obj, &pointer, kind);
                    }
                    Some("array") => {
                        if let Some(items) = obj.get("items") {
                            children.push((items, format!("{pointer}/items")));
                        }
                    }
                    Some("map") => {
                        if let Some(values) = obj.get("values") {
                            children.push((values, format!("{pointer}/values")));
                        }
                    }
                    _ => {}
                },
                _ => {}
            }
            stack.extend(children.into_iter().rev().map(|(j, p)| (j, p, depth + 1)));
        }
    }

    fn doc(&mut self, obj: &Map<String, Json>, pointer: &str, kind: &str) {
        if !has_doc(obj) {
            let name = obj.get("name").and_then(Json::as_str).unwrap_or("?");
            self.report(
                Rule::DocMissing,
                pointer,
                format!("{kind} {name} has no doc"),
            );
        }
    }

    fn field(&mut self, field: &Map<String, Json>, pointer: &str) {
        let name = field.get("name").and_then(Json::as_str).unwrap_or_default();
        if !has_doc(field) {
            self.report(
                Rule::DocMissing,
                pointer,
                format!("field {name} has no doc"),
            );
        }
        let Some(ty) = field.get("type") else { return };
        if let Json::Array(branches) = ty
            && branches.iter().any(|b| b.as_str() == Some("null"))
            && !field.contains_key("default")
        {
            self.report(
                Rule::OptionalNoDefault,
                pointer,
                format!("optional field {name} has no default"),
            );
        }
        let Some((value, value_pointer)) = value_type(ty, pointer) else {
            return;
        };
        let Some((base, logical)) = scalar(value) else {
            return;
        };
        let words = words(name);
        let names = &self.settings.names;
        if matches!(base, "float" | "double") && names.is_money(&words) {
            self.report(
                Rule::MoneyFloat,
                &value_pointer,
                format!("field {name} looks like money but is a {base}"),
            );
        }
        if logical.is_some() {
            return;
        }
        if matches!(base, "long" | "int" | "string") && names.is_time(&words) {
            self.report(
                Rule::TimeUntyped,
                &value_pointer,
                format!("field {name} looks like a time but is a {base} without a logical type"),
            );
        }
        if base == "string" && names.is_id(&words) {
            self.report(
                Rule::IdUntyped,
                &value_pointer,
                format!("field {name} looks like an id but is a free string"),
            );
        }
        if base == "string" && names.is_closed_set(&words) {
            self.report(
                Rule::EnumAsString,
                &value_pointer,
                format!("field {name} looks like a closed set of values but is a free string"),
            );
        }
    }
}

/// Whether a record whose fields have these names carries nothing but ids and times.
pub(super) fn is_signal<'a>(
    names: &NameWords,
    mut field_names: impl Iterator<Item = &'a str>,
) -> bool {
    field_names.all(|name| {
        let words = words(name);
        let last = words.last().map(String::as_str).unwrap_or_default();
        names.is_id(&words) || matches!(last, "key" | "ref") || names.is_time(&words)
    })
}

fn has_doc(obj: &Map<String, Json>) -> bool {
    obj.get("doc")
        .and_then(Json::as_str)
        .is_some_and(|d| !d.trim().is_empty())
}

/// The type a field's values have: the type itself, or the non-null branch of a `null` union
/// of two, and the items of an array or the values of a map (`prices` as an array of
/// `double` is money in floats too); `None` for other unions.
fn value_type<'a>(ty: &'a Json, pointer: &str) -> Option<(&'a Json, String)> {
    let (mut ty, mut pointer) = (ty, format!("{pointer}/type"));
    // Bounded: the walk reports (and does not follow) nesting deeper than this.
    for _ in 0..MAX_DEPTH {
        match ty {
            Json::Array(branches) => {
                let mut others = branches
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| b.as_str() != Some("null"));
                match (others.next(), others.next(), branches.len()) {
                    (Some((i, only)), None, 2) => {
                        (ty, pointer) = (only, format!("{pointer}/{i}"));
                    }
                    _ => return None,
                }
            }
            Json::Object(obj) => match obj.get("type").and_then(Json::as_str) {
                Some("array") => (ty, pointer) = (obj.get("items")?, format!("{pointer}/items")),
                Some("map") => (ty, pointer) = (obj.get("values")?, format!("{pointer}/values")),
                _ => return Some((ty, pointer)),
            },
            _ => return Some((ty, pointer)),
        }
    }
    None
}

/// The primitive type name and logical type of a scalar type; `None` for complex and named
/// types.
fn scalar(ty: &Json) -> Option<(&str, Option<&str>)> {
    let (base, logical) = match ty {
        Json::String(name) => (name.as_str(), None),
        Json::Object(obj) => (
            obj.get("type")?.as_str()?,
            obj.get("logicalType").and_then(Json::as_str),
        ),
        _ => return None,
    };
    crate::schema::AvroType::primitive(base).map(|_| (base, logical))
}
