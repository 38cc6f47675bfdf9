//! sqlx errors as `outbox_core` errors: unique violations become conflicts (a lost race the
//! caller retries), passing faults are marked retryable.

use outbox_core::Error;

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

/// Whether the same operation may succeed when tried again.
pub(crate) fn is_retryable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            // SQLSTATE: serialization failure / deadlock, connection exceptions, shutdowns.
            code == "40001"
                || code == "40P01"
                || code.starts_with("08")
                || code.starts_with("57P")
                // MySQL lock wait timeout has no specific SQLSTATE.
                || db.message().contains("Lock wait timeout")
                // SQLite extended codes: BUSY (5) and LOCKED (6) families.
                || code.parse::<u32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6))
        }
        _ => false,
    }
}
