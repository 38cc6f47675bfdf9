//! The databases the unit tests run on: URLs from the environment with local defaults; under
//! `CI=true` an unreachable database fails the test instead of skipping it.

/// The local PostgreSQL default.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) const PG_URL: &str = "postgres://postgres@localhost:5432/test";

/// A connection to the database `var` names (or `default`); `None` means skip.
#[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
pub(crate) fn establish<C: diesel::Connection>(var: &str, default: &str) -> Option<C> {
    let url = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    match C::establish(&url) {
        Ok(conn) => Some(conn),
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true and {url} is unreachable: {e}")
        }
        Err(e) => {
            eprintln!("skipping: {url}: {e}");
            None
        }
    }
}
