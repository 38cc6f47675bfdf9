//! Which MySQL-family servers can run captures.

/// The oldest MariaDB that runs captures: `CREATE OR REPLACE TRIGGER` (10.1.4) swaps a
/// trigger without a moment in which writes go uncaptured, and `RANDOM_BYTES` (10.10) makes
/// the trigger's UUIDv7 `event_id`.
pub const MIN_MARIADB: (u32, u32) = (10, 10);

/// Checks that the server whose `VERSION()` is `version` can run captures: MariaDB 10.10 or
/// later. MySQL is refused: it has no `CREATE OR REPLACE TRIGGER`, and `CREATE TRIGGER`
/// commits implicitly, so replacing a trigger (`capture add` again, `capture migrate`) would
/// leave the table uncaptured between the drop and the create.
///
/// # Errors
///
/// Why not, naming the version.
///
/// # Examples
///
/// ```
/// use outbox_core::capture::check_mysql_server;
///
/// assert!(check_mysql_server("10.11.6-MariaDB-0+deb12u1").is_ok());
/// assert!(check_mysql_server("8.0.36").unwrap_err().contains("MySQL 8.0.36"));
/// ```
pub fn check_mysql_server(version: &str) -> Result<(), String> {
    let version = version.trim();
    // MariaDB's handshake (and some proxies) put a 5.5.5- before its real version.
    let bare = version.strip_prefix("5.5.5-").unwrap_or(version);
    let mariadb = bare.to_ascii_lowercase().contains("mariadb");
    let mut numbers = bare
        .split(|c: char| !c.is_ascii_digit())
        .map(str::parse::<u32>);
    let major_minor = match (numbers.next(), numbers.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => Some((major, minor)),
        _ => None,
    };
    let (min_major, min_minor) = MIN_MARIADB;
    match (mariadb, major_minor) {
        (true, Some(v)) if v >= MIN_MARIADB => Ok(()),
        (true, _) => Err(format!(
            "MariaDB {version} cannot run captures: they need MariaDB {min_major}.{min_minor} \
             or later (RANDOM_BYTES for the event id, CREATE OR REPLACE TRIGGER)"
        )),
        (false, _) => Err(format!(
            "MySQL {version} cannot run captures: it has no CREATE OR REPLACE TRIGGER, so a \
             trigger could not be replaced without a moment in which changes go uncaptured; \
             use MariaDB {min_major}.{min_minor} or later"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mariadb_from_10_10_runs_captures() {
        for ok in [
            "10.10.2-MariaDB",
            "10.11.19-MariaDB-0+deb12u1",
            "11.4.2-MariaDB-log",
            "5.5.5-10.11.6-MariaDB",
        ] {
            assert_eq!(check_mysql_server(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn mysql_and_old_mariadb_are_refused_naming_the_version() {
        for (version, says) in [
            (
                "8.0.36",
                "MySQL 8.0.36 cannot run captures: it has no CREATE OR REPLACE TRIGGER",
            ),
            ("8.4.0-commercial", "MySQL 8.4.0-commercial"),
            ("5.7.44-log", "MySQL 5.7.44-log"),
            (
                "10.6.18-MariaDB",
                "MariaDB 10.6.18-MariaDB cannot run captures",
            ),
            ("MariaDB", "MariaDB MariaDB"),
            ("", "MySQL  cannot"),
        ] {
            let err = check_mysql_server(version).expect_err(version);
            assert!(err.contains(says), "{version}: {err}");
        }
    }
}
