//! sqlx errors as `outbox_core` errors: unique violations become conflicts (a lost race the
//! caller retries), passing faults are marked retryable.

use outbox_core::Error;
use outbox_core::table::DbFailure;

/// Wraps a sqlx error from `operation`.
pub(crate) fn store(operation: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| {
        if let sqlx::Error::Database(db) = &e
            && db.is_unique_violation()
        {
            return Error::Conflict {
                what: format!("{operation}: {}", db.message()),
            };
        }
        Error::Store {
            operation,
            retryable: is_retryable(&e),
            source: Box::new(e),
        }
    }
}

/// Whether the same operation may succeed when tried again: transport faults, and database
/// errors by [`Dialect::is_retryable`](outbox_core::table::Dialect::is_retryable), the classification diesel shares.
pub(crate) fn is_retryable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => database_failure(db.as_ref()),
        _ => false,
    }
}

/// A database error classified by the dialect of the driver that raised it.
fn database_failure(db: &dyn sqlx::error::DatabaseError) -> bool {
    let message = db.message();
    #[cfg(feature = "mysql")]
    if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        let number = my.number().to_string();
        return outbox_core::table::Dialect::MySql.is_retryable(&DbFailure {
            code: Some(&number),
            message,
        }) || outbox_core::table::Dialect::MySql.is_retryable(&DbFailure {
            code: my.code(),
            message,
        });
    }
    #[cfg(any(feature = "postgres", feature = "sqlite"))]
    {
        let code = db.code();
        let failure = DbFailure {
            code: code.as_deref(),
            message,
        };
        #[cfg(feature = "postgres")]
        if db
            .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
            .is_some()
        {
            return outbox_core::table::Dialect::Postgres.is_retryable(&failure);
        }
        #[cfg(feature = "sqlite")]
        if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
            return outbox_core::table::Dialect::Sqlite.is_retryable(&failure);
        }
    }
    false
}
