//! Parameter values of the shared statements.

/// A parameter bound to one of the [`Statements`](super::Statements) (or a column value read
/// back). The back ends bind each variant with their own SQL type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlValue {
    /// Text.
    Text(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// Nullable text.
    OptText(Option<String>),
    /// Nullable bytes.
    OptBytes(Option<Vec<u8>>),
    /// A 64-bit integer.
    I64(i64),
    /// A nullable 64-bit integer.
    OptI64(Option<i64>),
    /// A 32-bit integer.
    I32(i32),
    /// A nullable 32-bit integer.
    OptI32(Option<i32>),
}
