//! Which database failures are worth retrying, per dialect: one classification that both
//! writers (sqlx and diesel) and the relay's store use, so a PostgreSQL deadlock is retryable
//! whichever driver reported it.

use super::Dialect;

/// What a driver reports about a failed statement, as much as it exposes.
///
/// sqlx exposes the code; diesel hides it behind the server's message, which is why both are
/// looked at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DbFailure<'a> {
    /// The code: the SQLSTATE on PostgreSQL, the error number on MySQL/MariaDB, the
    /// (extended) result code on SQLite, as decimal text for the last two.
    pub code: Option<&'a str>,
    /// The server's message.
    pub message: &'a str,
}

/// PostgreSQL: serialization failure (40001), deadlock (40P01), connection exceptions (08…),
/// shutdowns and restarts (57P…).
fn postgres(code: Option<&str>, message: &str) -> bool {
    match code {
        Some(code) => {
            matches!(code, "40001" | "40P01") || code.starts_with("08") || code.starts_with("57P")
        }
        None => [
            "deadlock detected",
            "could not serialize access",
            "terminating connection",
            "the database system is shutting down",
            "the database system is starting up",
        ]
        .iter()
        .any(|m| message.contains(m)),
    }
}

/// MySQL/MariaDB error numbers: lock wait timeout (1205), deadlock (1213), server gone or
/// connection lost (2006, 2013); as SQLSTATEs, 40001 (deadlock) and 08… (connection).
fn mysql(code: Option<&str>, message: &str) -> bool {
    matches!(code, Some("1205" | "1213" | "2006" | "2013" | "40001"))
        || code.is_some_and(|c| c.starts_with("08"))
        || message.contains("Deadlock found")
        || message.contains("Lock wait timeout")
}

/// SQLite: the BUSY (5) and LOCKED (6) families of (extended) result codes.
fn sqlite(code: Option<&str>, message: &str) -> bool {
    code.and_then(|c| c.parse::<u32>().ok())
        .is_some_and(|c| matches!(c & 0xff, 5 | 6))
        || message.contains("database is locked")
        || message.contains("database table is locked")
}

impl Dialect {
    /// Whether the statement that failed with `failure` may succeed when tried again.
    ///
    /// # Examples
    ///
    /// ```
    /// use outbox_core::table::{DbFailure, Dialect};
    ///
    /// let deadlock = DbFailure { code: Some("40P01"), message: "deadlock detected" };
    /// assert!(Dialect::Postgres.is_retryable(&deadlock));
    /// // diesel hides the SQLSTATE: the message decides.
    /// let deadlock = DbFailure { code: None, message: "deadlock detected" };
    /// assert!(Dialect::Postgres.is_retryable(&deadlock));
    /// ```
    pub fn is_retryable(self, failure: &DbFailure<'_>) -> bool {
        let DbFailure { code, message } = *failure;
        match self {
            Self::Postgres => postgres(code, message),
            Self::MySql => mysql(code, message),
            Self::Sqlite => sqlite(code, message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retryable(d: Dialect, code: Option<&str>, message: &str) -> bool {
        d.is_retryable(&DbFailure { code, message })
    }

    #[test]
    fn each_dialect_by_code_and_by_message() {
        for code in ["40001", "40P01", "08006", "57P01"] {
            assert!(retryable(Dialect::Postgres, Some(code), ""), "{code}");
        }
        assert!(!retryable(
            Dialect::Postgres,
            Some("23505"),
            "deadlock detected"
        ));
        assert!(retryable(Dialect::Postgres, None, "deadlock detected"));
        assert!(!retryable(Dialect::Postgres, None, "syntax error"));
        for code in ["1205", "1213", "2006", "2013", "40001"] {
            assert!(retryable(Dialect::MySql, Some(code), ""), "{code}");
        }
        assert!(!retryable(Dialect::MySql, Some("1062"), "Duplicate entry"));
        assert!(retryable(
            Dialect::MySql,
            None,
            "Lock wait timeout exceeded"
        ));
        for code in ["5", "6", "517", "262"] {
            assert!(retryable(Dialect::Sqlite, Some(code), ""), "{code}");
        }
        assert!(!retryable(
            Dialect::Sqlite,
            Some("2067"),
            "UNIQUE constraint failed"
        ));
        assert!(retryable(Dialect::Sqlite, None, "database is locked"));
    }
}
