//! diesel errors as `outbox_core` errors: unique violations become conflicts (a lost race the
//! registry retries), serialization failures are retryable.

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use outbox_core::Error;

/// Wraps a diesel error from `operation`.
pub(crate) fn store(operation: &'static str) -> impl FnOnce(DieselError) -> Error {
    move |e| match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => Error::Conflict {
            what: format!("{operation}: {}", info.message()),
        },
        e => Error::Store {
            operation,
            retryable: matches!(
                e,
                DieselError::DatabaseError(
                    DatabaseErrorKind::SerializationFailure | DatabaseErrorKind::ClosedConnection,
                    _
                )
            ) || e.to_string().contains("database is locked"),
            source: Box::new(e),
        },
    }
}

/// An outbox error inside a diesel transaction closure, which must also be buildable from
/// diesel's own errors (commit, rollback).
#[derive(Debug)]
pub(crate) struct InTransaction(pub(crate) Error);

impl From<DieselError> for InTransaction {
    fn from(e: DieselError) -> Self {
        Self(store("transaction")(e))
    }
}

impl From<Error> for InTransaction {
    fn from(e: Error) -> Self {
        Self(e)
    }
}
