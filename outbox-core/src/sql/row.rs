//! Typed rows: what a [`Query`](super::Query) decodes each row into.

use crate::table::SqlValue;
use crate::{Error, Result};

/// The SQL type a column is decoded as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ColumnType {
    /// `INTEGER` as `i32`.
    I32,
    /// `BIGINT` as `i64`.
    I64,
    /// Text.
    Text,
    /// Bytes (`BYTEA`, `BLOB`).
    Bytes,
}

/// A Rust type one column decodes into.
pub trait FromSqlValue: Sized + Send + 'static {
    /// The column type to decode.
    const TYPE: ColumnType;

    /// The value from what the driver decoded as [`TYPE`](Self::TYPE).
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] when `value` is of another type.
    fn from_value(value: SqlValue) -> Result<Self>;
}

macro_rules! from_sql_value {
    ($($t:ty => $column:ident, $variant:ident;)*) => {$(
        impl FromSqlValue for $t {
            const TYPE: ColumnType = ColumnType::$column;
            fn from_value(value: SqlValue) -> Result<Self> {
                match value {
                    SqlValue::$variant(v) => Ok(v),
                    other => Err(Error::Decode {
                        reason: format!(
                            "column decoded as {}, expected {:?}",
                            kind(&other),
                            ColumnType::$column
                        ),
                    }),
                }
            }
        }
    )*};
}

from_sql_value! {
    i32 => I32, I32;
    i64 => I64, I64;
    String => Text, Text;
    Vec<u8> => Bytes, Bytes;
}

fn kind(value: &SqlValue) -> &'static str {
    match value {
        SqlValue::Text(_) | SqlValue::OptText(_) => "text",
        SqlValue::Bytes(_) | SqlValue::OptBytes(_) => "bytes",
        SqlValue::I64(_) | SqlValue::OptI64(_) => "a 64-bit integer",
        SqlValue::I32(_) | SqlValue::OptI32(_) => "a 32-bit integer",
    }
}

/// A row as a Rust value: one column type, or a tuple of them in select order.
pub trait FromRow: Sized + Send + 'static {
    /// The column types, in select order.
    const COLUMNS: &'static [ColumnType];

    /// The row from its decoded columns.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] when a column is missing or of another type.
    fn from_row(columns: Vec<SqlValue>) -> Result<Self>;
}

fn next(columns: &mut impl Iterator<Item = SqlValue>) -> Result<SqlValue> {
    columns.next().ok_or_else(|| Error::Decode {
        reason: "a row has fewer columns than its query selects".to_owned(),
    })
}

macro_rules! from_row_single {
    ($($t:ty),*) => {$(
        impl FromRow for $t {
            const COLUMNS: &'static [ColumnType] = &[<$t as FromSqlValue>::TYPE];
            fn from_row(columns: Vec<SqlValue>) -> Result<Self> {
                <$t>::from_value(next(&mut columns.into_iter())?)
            }
        }
    )*};
}
from_row_single!(i32, i64, String, Vec<u8>);

macro_rules! from_row_tuple {
    ($($name:ident),*) => {
        impl<$($name: FromSqlValue),*> FromRow for ($($name,)*) {
            const COLUMNS: &'static [ColumnType] = &[$($name::TYPE),*];
            fn from_row(columns: Vec<SqlValue>) -> Result<Self> {
                let mut columns = columns.into_iter();
                Ok(($($name::from_value(next(&mut columns)?)?,)*))
            }
        }
    };
}
from_row_tuple!(A, B);
from_row_tuple!(A, B, C);
from_row_tuple!(A, B, C, D);
from_row_tuple!(A, B, C, D, E);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_decode_in_order_and_refuse_other_types() {
        let row = vec![
            SqlValue::I32(7),
            SqlValue::I32(2),
            SqlValue::Text("{}".to_owned()),
        ];
        assert_eq!(
            <(i32, i32, String)>::from_row(row).expect("decodes"),
            (7, 2, "{}".to_owned())
        );
        assert_eq!(
            <(i32, i32, String)>::COLUMNS,
            &[ColumnType::I32, ColumnType::I32, ColumnType::Text]
        );
        let short = <(String, i32)>::from_row(vec![SqlValue::Text("s".to_owned())]);
        assert!(matches!(short, Err(Error::Decode { .. })), "{short:?}");
        let wrong = i64::from_row(vec![SqlValue::I32(1)]);
        assert!(matches!(wrong, Err(Error::Decode { .. })), "{wrong:?}");
    }
}
