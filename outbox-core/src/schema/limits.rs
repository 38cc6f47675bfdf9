//! Documented caps on what a schema may be, so no input makes parsing, default validation,
//! compatibility checking or encoding crash, recurse without end or take unbounded time.
//!
//! A schema over a cap is refused with [`Error::InvalidSchema`](crate::Error::InvalidSchema)
//! naming the cap. The caps are far above what real event schemas use; Confluent's own
//! registry cannot store a schema over about 1 MiB (the default `max.message.bytes` of its
//! `_schemas` topic).

/// The largest schema document, in bytes of JSON text: 4 MiB.
pub const MAX_SCHEMA_BYTES: usize = 4 * 1024 * 1024;

/// The deepest nesting of schema types (a record's field type, an array's items, a map's
/// values, a union's branch each add one level), counted along references to named types
/// too, so a long chain of records that each refer to the next is refused like deep nesting.
pub const MAX_DEPTH: usize = 128;

/// The deepest nesting of JSON values anywhere in a schema document (including defaults).
pub const MAX_JSON_DEPTH: usize = 128;

/// The most fields of one record.
pub const MAX_FIELDS: usize = 100_000;

/// The most symbols of one enum.
pub const MAX_ENUM_SYMBOLS: usize = 1_000_000;

/// The most branches of one union.
pub const MAX_UNION_BRANCHES: usize = 1_000;

/// The most incompatibilities one reader/writer check reports; past it the verdict stays
/// "incompatible" and the list is cut.
pub const MAX_PROBLEMS: usize = 1_000;

/// The deepest the compatibility checker recurses (pairs of reader and writer types). Only two
/// mutually recursive schemas whose cycles do not line up come near it; the pair is then
/// reported incompatible (`TOO_COMPLEX`) rather than overflow the stack.
pub const MAX_CHECK_DEPTH: usize = 4 * MAX_DEPTH;

/// The most work one reader/writer check may do, counted in type pairs compared and fields
/// matched; past it the pair is reported `TOO_COMPLEX`. Unions of hundreds of big records on
/// both sides come near it; real schemas stay orders of magnitude below.
pub const MAX_CHECK_STEPS: usize = 2_000_000;

/// The most (type, value) comparisons validating a schema's field defaults may take (a
/// default array of many elements against a union of many branches multiplies).
pub const MAX_DEFAULT_STEPS: usize = 2_000_000;

/// The most versions one subject may hold; a registration past it is refused.
pub const MAX_VERSIONS_PER_SUBJECT: usize = 1_000;

/// The most Avro values a field default may expand to when the encoder fills in a missing
/// field (defaults of records fall back on their own fields' defaults).
pub const MAX_DEFAULT_VALUES: usize = 100_000;

/// The deepest an encoded value may nest (a value of a recursive type, such as a linked
/// list, nests as deep as its data).
pub const MAX_VALUE_DEPTH: usize = 512;

/// The most values the encoder visits for one event, union branches it tries included.
pub const MAX_ENCODE_STEPS: usize = 10_000_000;
