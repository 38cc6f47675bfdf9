//! The global id of a registered schema, as rows, records and the wire frame carry it.

use std::fmt;

use crate::{Error, Result};

/// The global id of a registered schema: what the Confluent frame of a payload carries
/// (`0x00` + 4 bytes big-endian) and the `schema_id` column stores.
///
/// The column is an `INTEGER` (Confluent's ids are Java `int`s), so an id above `i32::MAX`
/// is refused when it is stored ([`SchemaId::to_column`]) rather than written as something
/// else.
///
/// # Examples
///
/// ```
/// use outbox_core::SchemaId;
///
/// let id = SchemaId::new(42);
/// assert_eq!(id.to_column().unwrap(), 42);
/// assert_eq!(SchemaId::from_column(42), Some(id));
/// assert!(SchemaId::new(u32::MAX).to_column().is_err());
/// ```
///
/// It serializes as the plain number (`42`), as the registry's REST API writes ids.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct SchemaId(u32);

impl SchemaId {
    /// The id `id`.
    pub const fn new(id: u32) -> Self {
        Self(id)
    }

    /// The id as a number.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// The 4 big-endian bytes of the Confluent frame.
    pub const fn to_be_bytes(self) -> [u8; 4] {
        self.0.to_be_bytes()
    }

    /// The `schema_id` column value.
    ///
    /// # Errors
    ///
    /// [`Error::SchemaIdOutOfRange`] above `i32::MAX` (such an id used to become `NULL`).
    pub fn to_column(self) -> Result<i32> {
        i32::try_from(self.0).map_err(|_| Error::SchemaIdOutOfRange { id: self.0 })
    }

    /// The id a `schema_id` column value holds; `None` for a negative value, which no
    /// registry hands out (a row written around the library).
    pub fn from_column(value: i32) -> Option<Self> {
        u32::try_from(value).ok().map(Self)
    }
}

impl From<u32> for SchemaId {
    fn from(id: u32) -> Self {
        Self(id)
    }
}

impl From<SchemaId> for u32 {
    fn from(id: SchemaId) -> Self {
        id.0
    }
}

impl fmt::Display for SchemaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::str::FromStr for SchemaId {
    type Err = std::num::ParseIntError;

    /// Reads a decimal id (`"42"`), as a URL path or a command line gives it.
    fn from_str(text: &str) -> std::result::Result<Self, Self::Err> {
        text.parse().map(Self)
    }
}
