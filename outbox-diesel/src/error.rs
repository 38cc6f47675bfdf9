//! diesel errors as `outbox_core` errors: unique violations become conflicts (a lost race the
//! registry retries), deadlocks, serialization failures and lost connections are retryable.

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use outbox_core::Error;
use outbox_core::table::{DbFailure, Dialect};

/// Wraps a diesel error from `operation`.
pub(crate) fn store(operation: &'static str) -> impl FnOnce(DieselError) -> Error {
    move |e| match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => Error::Conflict {
            what: format!("{operation}: {}", info.message()),
        },
        e => Error::Store {
            operation,
            retryable: is_retryable(&e),
            source: Box::new(e),
        },
    }
}

/// Whether the same operation may succeed when tried again. diesel hides the SQLSTATE (and
/// the MySQL error number) but for a few kinds, so the server's message goes through the
/// classification sqlx uses ([`Dialect::is_retryable`]); the messages differ between
/// databases, so every dialect may look.
fn is_retryable(e: &DieselError) -> bool {
    if matches!(
        e,
        DieselError::DatabaseError(
            DatabaseErrorKind::SerializationFailure | DatabaseErrorKind::ClosedConnection,
            _
        )
    ) {
        return true;
    }
    let message = match e {
        DieselError::DatabaseError(_, info) => info.message().to_owned(),
        e => e.to_string(),
    };
    let failure = DbFailure {
        code: None,
        message: &message,
    };
    [Dialect::Postgres, Dialect::MySql, Dialect::Sqlite]
        .into_iter()
        .any(|dialect| dialect.is_retryable(&failure))
}

#[cfg(all(test, feature = "postgres"))]
mod tests {
    use std::sync::{Arc, Barrier};

    use diesel::{Connection, PgConnection, RunQueryDsl, sql_query};

    use super::*;

    fn pg() -> Option<PgConnection> {
        crate::test_db::establish("OUTBOX_TEST_PG_URL", crate::test_db::PG_URL)
    }

    /// A real PostgreSQL deadlock (40P01) through diesel is retryable, as through sqlx; it
    /// used to be permanent because diesel reports it as an unknown kind.
    #[test]
    fn postgres_deadlock_is_retryable() {
        let Some(mut setup) = pg() else { return };
        let table = format!("deadlock_{}", uuid::Uuid::now_v7().simple());
        sql_query(format!(
            "CREATE TABLE {table} (id INT PRIMARY KEY, v INT NOT NULL)"
        ))
        .execute(&mut setup)
        .expect("table");
        sql_query(format!("INSERT INTO {table} VALUES (1, 0), (2, 0)"))
            .execute(&mut setup)
            .expect("rows");
        let barrier = Arc::new(Barrier::new(2));
        let lock = |first: i32, second: i32| {
            let barrier = Arc::clone(&barrier);
            let table = table.clone();
            std::thread::spawn(move || {
                let mut conn = pg().expect("connects");
                conn.transaction::<_, DieselError, _>(|conn| {
                    let update = |id: i32| format!("UPDATE {table} SET v = v + 1 WHERE id = {id}");
                    sql_query(update(first)).execute(conn)?;
                    barrier.wait();
                    sql_query(update(second)).execute(conn)?;
                    Ok(())
                })
            })
        };
        let (a, b) = (lock(1, 2), lock(2, 1));
        let results = [a.join().expect("joins"), b.join().expect("joins")];
        sql_query(format!("DROP TABLE {table}"))
            .execute(&mut setup)
            .expect("drop");
        let failed: Vec<Error> = results
            .into_iter()
            .filter_map(Result::err)
            .map(|e| store("deadlock")(e))
            .collect();
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert!(failed[0].is_retryable(), "{:?}", failed[0]);
        assert!(failed[0].to_string().contains("deadlock"), "{}", failed[0]);
    }
}
