//! Connecting to the outbox's database by URL, and running a generic function on it.

use std::time::Duration;

use outbox_core::{Error, Result};
use outbox_sqlx::OutboxDatabase;
use sqlx::Pool;

/// The database kinds the binary speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `postgres://` or `postgresql://`.
    Postgres,
    /// `mysql://` or `mariadb://`.
    MySql,
    /// `sqlite:`.
    Sqlite,
}

impl Backend {
    /// The SQL dialect of this backend.
    pub fn dialect(self) -> outbox_core::table::Dialect {
        match self {
            Self::Postgres => outbox_core::table::Dialect::Postgres,
            Self::MySql => outbox_core::table::Dialect::MySql,
            Self::Sqlite => outbox_core::table::Dialect::Sqlite,
        }
    }
}

/// The backend a URL names.
///
/// # Errors
///
/// [`Error::InvalidConfig`] for another scheme.
pub fn backend(url: &str) -> Result<Backend> {
    let scheme = url
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match scheme.as_str() {
        "postgres" | "postgresql" => Ok(Backend::Postgres),
        "mysql" | "mariadb" => Ok(Backend::MySql),
        "sqlite" => Ok(Backend::Sqlite),
        // Text without a colon is no URL at all, perhaps the password in the wrong variable:
        // never echo it.
        _ if !url.contains(':')
            || scheme.is_empty()
            || scheme.len() > 16
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) =>
        {
            Err(Error::InvalidConfig {
                key: "database_url".to_owned(),
                reason: "is not a URL (expected postgres://, mysql://, mariadb:// or sqlite:)"
                    .to_owned(),
            })
        }
        _ => Err(Error::InvalidConfig {
            key: "database_url".to_owned(),
            reason: format!(
                "unsupported scheme {scheme:?} (expected postgres://, mysql://, mariadb:// or sqlite:)"
            ),
        }),
    }
}

/// Opens a pool (`mariadb://` is read as `mysql://`). TLS is set in the URL: `sslmode`,
/// `sslrootcert`, `sslcert`, `sslkey` for PostgreSQL; `ssl-mode`, `ssl-ca`, `ssl-cert`,
/// `ssl-key` for MySQL/MariaDB (rustls, trusting the Mozilla roots unless a CA is given).
///
/// # Errors
///
/// [`Error::Store`] when the database cannot be reached or refuses the connection; the
/// message names `database_url` and its TLS parameters when TLS failed, and never holds the
/// URL or its password.
pub async fn connect<DB: OutboxDatabase>(url: &str) -> Result<Pool<DB>> {
    connect_with::<DB>(url, 8).await
}

/// Opens a pool of at most `max_connections` (the served registry API has its own small
/// pool, so its load cannot take the drain's connections).
///
/// # Errors
///
/// [`Error::Store`] when the database cannot be reached.
pub async fn connect_with<DB: OutboxDatabase>(url: &str, max_connections: u32) -> Result<Pool<DB>> {
    let url = match url.strip_prefix("mariadb://") {
        Some(rest) => format!("mysql://{rest}"),
        None => url.to_owned(),
    };
    check_parameters(&url)?;
    sqlx::pool::PoolOptions::<DB>::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&url)
        .await
        .map_err(|e| connect_error(&url, &e))
}

/// The query parameters sqlx reads from a PostgreSQL URL.
const POSTGRES_PARAMETERS: [&str; 17] = [
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
];

/// The query parameters sqlx reads from a MySQL/MariaDB URL.
const MYSQL_PARAMETERS: [&str; 14] = [
    "sslmode",
    "ssl-mode",
    "sslca",
    "ssl-ca",
    "charset",
    "collation",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "socket",
    "timezone",
    "time-zone",
];

/// The parameters that name a PEM file (or hold the PEM itself).
const FILE_PARAMETERS: [&str; 8] = [
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
];

/// Checks that a certificate or key parameter names a readable regular file. sqlx reports a
/// missing one as a bare "No such file or directory" that names no setting, and reads a
/// device such as `/dev/zero` until memory runs out.
fn check_file(key: &str, value: &str) -> Result<()> {
    let trimmed = value.trim();
    if trimmed.starts_with("-----BEGIN") && trimmed.ends_with("-----") {
        return Ok(()); // inline PEM, as sqlx accepts it
    }
    let refused = |why: String| Error::InvalidConfig {
        key: "database_url".to_owned(),
        reason: format!("{key}={value:?}: {why}"),
    };
    let metadata = std::fs::metadata(value).map_err(|e| refused(e.to_string()))?;
    if !metadata.is_file() {
        return Err(refused("not a regular file".to_owned()));
    }
    std::fs::File::open(value)
        .map(drop)
        .map_err(|e| refused(e.to_string()))
}

/// Refuses a query parameter sqlx does not know. sqlx ignores it otherwise: a typo such as
/// `ssl_mode=VERIFY_IDENTITY` silently drops certificate checks, and for PostgreSQL sqlx logs
/// the ignored parameter's value (a misspelt `password=` would land in the logs). The error
/// names the parameter, never its value.
fn check_parameters(url: &str) -> Result<()> {
    let (known, options): (&[&str], bool) = match backend(url)? {
        Backend::Postgres => (&POSTGRES_PARAMETERS, true),
        Backend::MySql => (&MYSQL_PARAMETERS, false),
        Backend::Sqlite => return Ok(()),
    };
    // A URL that does not parse is sqlx's to refuse (its message holds no value).
    let Ok(parsed) = url::Url::parse(url) else {
        return Ok(());
    };
    for (n, (key, value)) in parsed.query_pairs().enumerate() {
        let option = options && (key == "options" || key.starts_with("options["));
        if FILE_PARAMETERS.contains(&key.as_ref()) {
            check_file(&key, &value)?;
        }
        if option || known.contains(&key.as_ref()) {
            continue;
        }
        // Without `=` the "name" may be the secret itself (`?password:...`).
        let reason = if value.is_empty() {
            format!(
                "query parameter {} is not a known key=value parameter",
                n + 1
            )
        } else {
            format!(
                "unknown query parameter {key:?} (sqlx would ignore it); known: {}",
                known.join(", ")
            )
        };
        return Err(Error::InvalidConfig {
            key: "database_url".to_owned(),
            reason,
        });
    }
    Ok(())
}

/// The connection failure, named after the setting and stripped of the URL's secrets.
fn connect_error(url: &str, error: &sqlx::Error) -> Error {
    let password = url::Url::parse(url)
        .ok()
        .and_then(|u| u.password().map(str::to_owned))
        .unwrap_or_default();
    let decoded = percent_decode(&password);
    let text = crate::redact::scrub(&error.to_string(), &[url, &password, &decoded]);
    let lower = text.to_ascii_lowercase();
    let tls = ["tls", "ssl", "certificate", "handshake", "encryption"]
        .iter()
        .any(|w| lower.contains(w));
    let hint = match (tls, url.starts_with("mysql")) {
        (false, _) => "",
        (true, false) => " (TLS: check sslmode, sslrootcert, sslcert and sslkey in database_url)",
        (true, true) => " (TLS: check ssl-mode, ssl-ca, ssl-cert and ssl-key in database_url)",
    };
    Error::Store {
        operation: "connect to the database named by database_url",
        retryable: !tls,
        source: format!("{text}{hint}").into(),
    }
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// Refuses a database this build of the library was compiled without.
///
/// # Errors
///
/// Always [`Error::InvalidConfig`], naming the feature to enable.
#[doc(hidden)]
pub fn not_built(backend: Backend) -> Result<std::convert::Infallible> {
    let (name, feature) = match backend {
        Backend::Postgres => ("PostgreSQL", "postgres"),
        Backend::MySql => ("MySQL/MariaDB", "mysql"),
        Backend::Sqlite => ("SQLite", "sqlite"),
    };
    Err(Error::InvalidConfig {
        key: "database_url".to_owned(),
        reason: format!(
            "this build of outbox-relay has no {name} support (its `{feature}` feature is off)"
        ),
    })
}

/// Runs `$body` with `$pool` connected to `$url` and `$db` naming its sqlx database type,
/// expanding the body once per backend this build has (see the crate's features), so generic
/// code is written once. A URL of a backend left out is refused with
/// [`Error::InvalidConfig`].
#[macro_export]
macro_rules! with_database {
    ($url:expr, |$pool:ident: $db:ident| $body:expr) => {{
        let url: &str = $url;
        match $crate::database::backend(url)? {
            $crate::database::Backend::Postgres => {
                $crate::__with_postgres!(url, |$pool: $db| $body)
            }
            $crate::database::Backend::MySql => $crate::__with_mysql!(url, |$pool: $db| $body),
            $crate::database::Backend::Sqlite => $crate::__with_sqlite!(url, |$pool: $db| $body),
        }
    }};
}

// One arm of `with_database!` per backend: connect and run the body when the feature is on,
// refuse the URL when it is off. (A `cfg` inside `with_database!` would be read in the calling
// crate, against its own features.)

#[cfg(feature = "postgres")]
#[doc(hidden)]
#[macro_export]
macro_rules! __with_postgres {
    ($url:ident, |$pool:ident: $db:ident| $body:expr) => {{
        type $db = ::sqlx::Postgres;
        let $pool = $crate::database::connect::<$db>($url).await?;
        $body
    }};
}

#[cfg(not(feature = "postgres"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __with_postgres {
    ($url:ident, |$pool:ident: $db:ident| $body:expr) => {{ match $crate::database::not_built($crate::database::Backend::Postgres)? {} }};
}

#[cfg(feature = "mysql")]
#[doc(hidden)]
#[macro_export]
macro_rules! __with_mysql {
    ($url:ident, |$pool:ident: $db:ident| $body:expr) => {{
        type $db = ::sqlx::MySql;
        let $pool = $crate::database::connect::<$db>($url).await?;
        $body
    }};
}

#[cfg(not(feature = "mysql"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __with_mysql {
    ($url:ident, |$pool:ident: $db:ident| $body:expr) => {{ match $crate::database::not_built($crate::database::Backend::MySql)? {} }};
}

#[cfg(feature = "sqlite")]
#[doc(hidden)]
#[macro_export]
macro_rules! __with_sqlite {
    ($url:ident, |$pool:ident: $db:ident| $body:expr) => {{
        type $db = ::sqlx::Sqlite;
        let $pool = $crate::database::connect::<$db>($url).await?;
        $body
    }};
}

#[cfg(not(feature = "sqlite"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __with_sqlite {
    ($url:ident, |$pool:ident: $db:ident| $body:expr) => {{ match $crate::database::not_built($crate::database::Backend::Sqlite)? {} }};
}

/// Runs only in a build that leaves a backend out (`.ci/run` checks one per backend):
/// `with_database!` refuses that backend's URL with an error naming the feature to turn on.
#[cfg(all(
    test,
    not(all(feature = "postgres", feature = "mysql", feature = "sqlite"))
))]
mod left_out {
    async fn open(url: &str) -> outbox_core::Result<&'static str> {
        crate::with_database!(url, |_pool: DB| Ok(std::any::type_name::<DB>()))
    }

    #[tokio::test]
    async fn a_url_of_a_left_out_backend_is_refused_naming_its_feature() {
        let cases = [
            (
                "postgres://postgres@localhost:5432/test",
                cfg!(feature = "postgres"),
                "PostgreSQL",
                "postgres",
            ),
            (
                "mysql://root@localhost:3306/test",
                cfg!(feature = "mysql"),
                "MySQL/MariaDB",
                "mysql",
            ),
            (
                "sqlite::memory:",
                cfg!(feature = "sqlite"),
                "SQLite",
                "sqlite",
            ),
        ];
        let mut refused = 0;
        for (url, built, name, feature) in cases {
            if built {
                continue;
            }
            let err = open(url).await.expect_err("a left-out backend is refused");
            let text = err.to_string();
            assert!(
                matches!(err, outbox_core::Error::InvalidConfig { ref key, .. } if key == "database_url"),
                "{text}"
            );
            assert!(
                text.contains(&format!("no {name} support"))
                    && text.contains(&format!("`{feature}` feature is off")),
                "{text}"
            );
            refused += 1;
        }
        assert!(refused > 0, "this build leaves a backend out");
    }
}
