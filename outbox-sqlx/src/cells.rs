//! Typed rows decoded cell by cell: a row type reads its columns in order, each as a typed
//! value or, when the cell does not decode, a short reason; so one malformed cell can be
//! reported by name instead of failing the whole query.

/// One cell decoded on its own: its value, or why it does not decode (one short line,
/// without the value).
pub(crate) type Cell<T> = Result<T, String>;

/// The cells of one result row, read left to right.
pub(crate) trait RowCells {
    /// The next cell as text.
    fn text(&mut self) -> Cell<String>;
    /// The next cell as bytes.
    fn bytes(&mut self) -> Cell<Vec<u8>>;
    /// The next cell as nullable bytes.
    fn opt_bytes(&mut self) -> Cell<Option<Vec<u8>>>;
    /// The next cell as a 64-bit integer.
    fn i64(&mut self) -> Cell<i64>;
    /// The next cell as a nullable 64-bit integer.
    fn opt_i64(&mut self) -> Cell<Option<i64>>;
    /// The next cell as a 32-bit integer.
    fn i32(&mut self) -> Cell<i32>;
    /// The next cell as a nullable 32-bit integer.
    fn opt_i32(&mut self) -> Cell<Option<i32>>;
}

/// A value one cell decodes to.
pub(crate) trait CellValue: Sized {
    /// Reads the next cell of `cells` as this type.
    fn read(cells: &mut dyn RowCells) -> Cell<Self>;
}

macro_rules! cell_value {
    ($($ty:ty => $read:ident),* $(,)?) => {$(
        impl CellValue for $ty {
            fn read(cells: &mut dyn RowCells) -> Cell<Self> {
                cells.$read()
            }
        }
    )*};
}

cell_value! {
    String => text,
    Vec<u8> => bytes,
    Option<Vec<u8>> => opt_bytes,
    i64 => i64,
    Option<i64> => opt_i64,
    i32 => i32,
    Option<i32> => opt_i32,
}

/// A row type decoded from a result row's cells.
pub(crate) trait FromCells: Sized {
    /// Decodes one row. A type that reports malformed cells itself (holding [`Cell`]s)
    /// always succeeds; a strict one fails on the first cell that does not decode.
    ///
    /// # Errors
    ///
    /// Why a cell did not decode, for a strict type.
    fn from_cells(cells: &mut dyn RowCells) -> Cell<Self>;
}

impl<A: CellValue> FromCells for (A,) {
    fn from_cells(cells: &mut dyn RowCells) -> Cell<Self> {
        Ok((A::read(cells)?,))
    }
}

impl<A: CellValue, B: CellValue> FromCells for (A, B) {
    fn from_cells(cells: &mut dyn RowCells) -> Cell<Self> {
        Ok((A::read(cells)?, B::read(cells)?))
    }
}

impl<A: CellValue, B: CellValue, C: CellValue> FromCells for (A, B, C) {
    fn from_cells(cells: &mut dyn RowCells) -> Cell<Self> {
        Ok((A::read(cells)?, B::read(cells)?, C::read(cells)?))
    }
}

impl<A: CellValue, B: CellValue, C: CellValue, D: CellValue> FromCells for (A, B, C, D) {
    fn from_cells(cells: &mut dyn RowCells) -> Cell<Self> {
        Ok((
            A::read(cells)?,
            B::read(cells)?,
            C::read(cells)?,
            D::read(cells)?,
        ))
    }
}
