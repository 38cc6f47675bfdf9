//! Reader/writer compatibility with the verdicts of Apache Avro Java's `SchemaCompatibility`
//! (the checker Confluent Schema Registry runs), rule for rule:
//!
//! - logical types play no part (a `decimal` is its `bytes` or `fixed`, a `uuid` its `string`);
//! - named types match by unqualified name, or by a reader alias equal to the writer's full name;
//! - a reader field is found in the writer by its name or one of its aliases (never the writer's
//!   aliases); matching two writer fields is an error, reported here as `AMBIGUOUS_FIELD`;
//! - a reader field missing from the writer needs a default; an enum-typed one without a field
//!   default but with an enum default is checked as Java does, against the writer *record*;
//! - a writer enum symbol missing from the reader is fine when the reader has an enum default;
//! - pairs are memoized by node identity, and a pair met again while it is being checked counts
//!   as compatible, which is how Java terminates on recursive types.
//!
//! Bounded work whatever the input: symbol and field look-ups are hashed, a pair's list of
//! incompatibilities is cut at [`MAX_PROBLEMS`], and recursion past [`MAX_CHECK_DEPTH`] is
//! reported as `TOO_COMPLEX` instead of overflowing the stack.

use std::collections::{HashMap, HashSet};

use super::{Incompatibility, IncompatibilityKind};
use crate::schema::limits::{MAX_CHECK_DEPTH, MAX_CHECK_STEPS, MAX_PROBLEMS};
use crate::schema::model::{AvroType, Field, Node, NodeId};
use crate::schema::{Parsed, Schema};

/// Checks whether data written with `writer` can be read with `reader`; returns every
/// incompatibility found (none means compatible).
pub fn check_reader_writer(reader: &Schema, writer: &Schema) -> Vec<Incompatibility> {
    let mut checker = Checker {
        reader: reader.parsed(),
        writer: writer.parsed(),
        memo: HashMap::new(),
        location: Vec::new(),
        depth: 0,
        steps: 0,
    };
    let (r, w) = (checker.reader.root, checker.writer.root);
    checker.pair(r, w)
}

#[derive(Clone)]
enum Memo {
    InProgress,
    Done(Vec<Incompatibility>),
}

struct Checker<'a> {
    reader: &'a Parsed,
    writer: &'a Parsed,
    memo: HashMap<(NodeId, NodeId), Memo>,
    location: Vec<String>,
    /// Pairs being checked, one inside the other.
    depth: usize,
    /// Work done so far (pairs compared, fields matched).
    steps: usize,
}

impl Checker<'_> {
    /// Java's memoizing `getCompatibility`.
    fn pair(&mut self, reader: NodeId, writer: NodeId) -> Vec<Incompatibility> {
        let key = (
            self.reader.canonical_id(reader),
            self.writer.canonical_id(writer),
        );
        match self.memo.get(&key) {
            Some(Memo::InProgress) => Vec::new(),
            Some(Memo::Done(result)) => result.clone(),
            None if self.depth >= MAX_CHECK_DEPTH => vec![self.incompatible(
                IncompatibilityKind::TooComplex,
                format!("recursive types nest deeper than {MAX_CHECK_DEPTH} levels"),
                reader,
                writer,
            )],
            None if self.steps >= MAX_CHECK_STEPS => vec![self.incompatible(
                IncompatibilityKind::TooComplex,
                format!("the check needs more than {MAX_CHECK_STEPS} steps"),
                reader,
                writer,
            )],
            None => {
                self.steps += 1;
                self.memo.insert(key, Memo::InProgress);
                self.depth += 1;
                let mut result = self.calculate(key.0, key.1);
                self.depth -= 1;
                result.truncate(MAX_PROBLEMS);
                self.memo.insert(key, Memo::Done(result.clone()));
                result
            }
        }
    }

    fn at<T>(&mut self, token: impl Into<String>, f: impl FnOnce(&mut Self) -> T) -> T {
        self.location.push(token.into());
        let out = f(self);
        self.location.pop();
        out
    }

    fn incompatible(
        &self,
        kind: IncompatibilityKind,
        message: String,
        reader: NodeId,
        writer: NodeId,
    ) -> Incompatibility {
        let pointer = if self.location.is_empty() {
            "/".to_owned()
        } else {
            self.location.iter().map(|t| format!("/{t}")).collect()
        };
        Incompatibility {
            kind,
            location: pointer,
            message,
            reader_type: self.reader.resolve(reader).avro_type(),
            writer_type: self.writer.resolve(writer).avro_type(),
        }
    }

    fn type_mismatch(&self, reader: NodeId, writer: NodeId) -> Vec<Incompatibility> {
        let (r, w) = (
            self.reader.resolve(reader).avro_type(),
            self.writer.resolve(writer).avro_type(),
        );
        vec![self.incompatible(
            IncompatibilityKind::TypeMismatch,
            format!(
                "reader type: {} not compatible with writer type: {}",
                r.java_name(),
                w.java_name()
            ),
            reader,
            writer,
        )]
    }

    fn calculate(&mut self, reader: NodeId, writer: NodeId) -> Vec<Incompatibility> {
        let (rs, ws) = (self.reader, self.writer);
        let (r, w) = (rs.resolve(reader), ws.resolve(writer));
        let (rt, wt) = (r.avro_type(), w.avro_type());
        if rt == wt {
            return match (r, w) {
                (Node::Array(ri), Node::Array(wi)) => self.at("items", |c| c.pair(*ri, *wi)),
                (Node::Map(rv), Node::Map(wv)) => self.at("values", |c| c.pair(*rv, *wv)),
                (Node::Fixed { size: rsz, .. }, Node::Fixed { size: wsz, .. }) => {
                    let mut out = self.check_names(reader, writer);
                    if rsz != wsz {
                        out.push(self.at("size", |c| {
                            c.incompatible(
                                IncompatibilityKind::FixedSizeMismatch,
                                format!("expected: {wsz}, found: {rsz}"),
                                reader,
                                writer,
                            )
                        }));
                    }
                    out
                }
                (
                    Node::Enum {
                        symbols: r_symbols,
                        default: r_default,
                        ..
                    },
                    Node::Enum {
                        symbols: w_symbols, ..
                    },
                ) => {
                    let mut out = self.check_names(reader, writer);
                    let known: HashSet<&str> = r_symbols.iter().map(String::as_str).collect();
                    let mut missing: Vec<&String> = w_symbols
                        .iter()
                        .filter(|s| !known.contains(s.as_str()))
                        .collect();
                    missing.sort();
                    let defaulted = r_default
                        .as_ref()
                        .is_some_and(|d| known.contains(d.as_str()));
                    if !missing.is_empty() && !defaulted {
                        let list = missing
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ");
                        out.push(self.at("symbols", |c| {
                            c.incompatible(
                                IncompatibilityKind::MissingEnumSymbols,
                                format!("[{list}]"),
                                reader,
                                writer,
                            )
                        }));
                    }
                    out
                }
                (Node::Record { fields: rf, .. }, Node::Record { fields: wf, .. }) => {
                    let mut out = self.check_names(reader, writer);
                    out.extend(self.at("fields", |c| c.record_fields(reader, writer, rf, wf)));
                    out
                }
                (Node::Union(_), Node::Union(w_branches)) => {
                    let mut out = Vec::new();
                    for (i, wb) in w_branches.iter().enumerate() {
                        if out.len() >= MAX_PROBLEMS {
                            break;
                        }
                        self.at(i.to_string(), |c| {
                            if !c.pair(reader, *wb).is_empty() {
                                let wbt = c.writer.resolve(*wb).avro_type();
                                out.push(c.incompatible(
                                    IncompatibilityKind::MissingUnionBranch,
                                    format!(
                                        "reader union lacking writer type: {}",
                                        wbt.java_name()
                                    ),
                                    reader,
                                    writer,
                                ));
                            }
                        });
                    }
                    out
                }
                _ => Vec::new(), // same primitive type
            };
        }
        if let Node::Union(w_branches) = w {
            // A reader that can read every branch of the writer union can read the union.
            return w_branches
                .iter()
                .flat_map(|wb| self.pair(reader, *wb))
                .collect();
        }
        match rt {
            AvroType::Long if wt == AvroType::Int => Vec::new(),
            AvroType::Float if matches!(wt, AvroType::Int | AvroType::Long) => Vec::new(),
            AvroType::Double if matches!(wt, AvroType::Int | AvroType::Long | AvroType::Float) => {
                Vec::new()
            }
            AvroType::Bytes if wt == AvroType::String => Vec::new(),
            AvroType::String if wt == AvroType::Bytes => Vec::new(),
            AvroType::Union => {
                let Node::Union(r_branches) = r else {
                    unreachable!("type is union")
                };
                if r_branches
                    .iter()
                    .any(|rb| self.pair(*rb, writer).is_empty())
                {
                    Vec::new()
                } else {
                    vec![self.incompatible(
                        IncompatibilityKind::MissingUnionBranch,
                        format!("reader union lacking writer type: {}", wt.java_name()),
                        reader,
                        writer,
                    )]
                }
            }
            _ => self.type_mismatch(reader, writer),
        }
    }

    fn check_names(&mut self, reader: NodeId, writer: NodeId) -> Vec<Incompatibility> {
        let (r, w) = (
            self.reader.resolve(reader).named(),
            self.writer.resolve(writer).named(),
        );
        let (Some(r), Some(w)) = (r, w) else {
            return Vec::new();
        };
        let writer_full = w.name.full();
        if r.name.name == w.name.name || r.aliases.contains(&writer_full) {
            return Vec::new();
        }
        self.at("name", |c| {
            vec![c.incompatible(
                IncompatibilityKind::NameMismatch,
                format!("expected: {writer_full}"),
                reader,
                writer,
            )]
        })
    }

    fn record_fields(
        &mut self,
        reader: NodeId,
        writer: NodeId,
        reader_fields: &[Field],
        writer_fields: &[Field],
    ) -> Vec<Incompatibility> {
        let mut out = Vec::new();
        self.steps = self
            .steps
            .saturating_add(reader_fields.len() + writer_fields.len());
        let by_name: HashMap<&str, &Field> = writer_fields
            .iter()
            .map(|wf| (wf.name.as_str(), wf))
            .collect();
        for (pos, rf) in reader_fields.iter().enumerate() {
            if out.len() >= MAX_PROBLEMS {
                break;
            }
            self.at(pos.to_string(), |c| {
                let matches: Vec<&Field> = std::iter::once(&rf.name)
                    .chain(&rf.aliases)
                    .filter_map(|n| by_name.get(n.as_str()).copied())
                    .collect();
                match matches.as_slice() {
                    [] if rf.default.is_some() => {}
                    [] => {
                        let enum_default = matches!(
                            c.reader.resolve(rf.schema),
                            Node::Enum {
                                default: Some(_),
                                ..
                            }
                        );
                        if enum_default {
                            // Java compares the field's enum with the writer record itself.
                            out.extend(c.at("type", |c| c.pair(rf.schema, writer)));
                        } else {
                            out.push(c.incompatible(
                                IncompatibilityKind::ReaderFieldMissingDefaultValue,
                                rf.name.clone(),
                                reader,
                                writer,
                            ));
                        }
                    }
                    [wf] => out.extend(c.at("type", |c| c.pair(rf.schema, wf.schema))),
                    _ => out.push(c.incompatible(
                        IncompatibilityKind::AmbiguousField,
                        format!(
                            "reader field {} matches multiple fields in the writer record",
                            rf.name
                        ),
                        reader,
                        writer,
                    )),
                }
            });
        }
        out
    }
}
