//! The database connection's TLS as a deployment sets it: PostgreSQL with
//! `sslmode=verify-full` and client certificates, MariaDB with `ssl-mode=VERIFY_IDENTITY`;
//! each failure names `database_url` and its parameters, never the password or the URL.

mod common;

use common::Tls;
use common::isolated::{mysql_tls_url, output, pg_tls_url, relay_with_env, stderr};

/// A wrong CA, a plaintext client against a TLS-only user and a wrong password each stop
/// the relay at start, naming `database_url` (and the TLS parameters), never the password.
#[test]
fn postgres_tls_failures_name_the_setting_and_hide_the_password() {
    let Some(tls) = Tls::from_env() else { return };
    let password = tls.password();
    let cases = [
        (
            format!(
                "sslmode=verify-full&sslrootcert={}",
                tls.path("other-ca.crt")
            ),
            password.clone(),
            "sslrootcert",
        ),
        ("sslmode=disable".to_owned(), password, "no encryption"),
        (
            format!("sslmode=verify-full&sslrootcert={}", tls.path("ca.crt")),
            "wrong-Secret-4711".to_owned(),
            "password authentication failed",
        ),
    ];
    for (params, secret, expected) in cases {
        let url = pg_tls_url(&params);
        let out = output(relay_with_env(
            &[
                ("OUTBOX_DATABASE_URL", &url),
                ("OUTBOX_DATABASE_PASSWORD", &secret),
            ],
            &["migrate"],
        ));
        refused_naming_database_url(&out, &params, expected, &secret);
    }
}

/// Client certificate login (`cert` in pg_hba) with `sslcert`/`sslkey` in the URL.
#[test]
fn postgres_client_certificate_login() {
    let Some(tls) = Tls::from_env() else { return };
    let url = pg_tls_url(&format!(
        "sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
        tls.path("ca.crt"),
        tls.path("client.crt"),
        tls.path("client.key")
    ))
    .replacen("outbox_tls@", "outbox_tls_cert@", 1);
    let names = common::fresh_names();
    let table_prefix = common::prefix(&names);
    let out = output(relay_with_env(
        &[
            ("OUTBOX_DATABASE_URL", &url),
            ("OUTBOX_TABLE_PREFIX", &table_prefix),
        ],
        &["migrate"],
    ));
    assert!(out.status.success(), "{}", stderr(&out));
}

/// MariaDB with `ssl-mode=VERIFY_IDENTITY`: password and client-certificate users work; a
/// wrong CA and a plaintext client for a `REQUIRE SSL` user fail naming `database_url`.
#[test]
fn mariadb_verify_identity_and_its_failures() {
    let Some(tls) = Tls::from_env() else { return };
    let password = tls.password();
    let verify = format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={}", tls.path("ca.crt"));
    let with_cert = format!(
        "{verify}&ssl-cert={}&ssl-key={}",
        tls.path("client.crt"),
        tls.path("client.key")
    );
    let migrate = |url: &str, secret: Option<&str>| {
        let names = common::fresh_names();
        let table_prefix = common::prefix(&names);
        let mut env = vec![
            ("OUTBOX_DATABASE_URL", url),
            ("OUTBOX_TABLE_PREFIX", table_prefix.as_str()),
        ];
        if let Some(secret) = secret {
            env.push(("OUTBOX_DATABASE_PASSWORD", secret));
        }
        output(relay_with_env(&env, &["migrate"]))
    };
    let ok = migrate(&mysql_tls_url("outbox_tls", &verify), Some(&password));
    assert!(ok.status.success(), "password over TLS: {}", stderr(&ok));
    let ok = migrate(&mysql_tls_url("outbox_tls_cert", &with_cert), None);
    assert!(ok.status.success(), "client certificate: {}", stderr(&ok));

    let wrong_ca = format!(
        "ssl-mode=VERIFY_IDENTITY&ssl-ca={}",
        tls.path("other-ca.crt")
    );
    for (url, expected) in [
        (mysql_tls_url("outbox_tls", &wrong_ca), "ssl-ca"),
        (
            mysql_tls_url("outbox_tls", "ssl-mode=DISABLED"),
            "Access denied",
        ),
    ] {
        let out = migrate(&url, Some(&password));
        refused_naming_database_url(&out, &url, expected, &password);
    }
}

/// A misspelt URL parameter is refused, named without its value: sqlx would ignore it (a
/// typo in `ssl_mode` silently drops verification) and, for PostgreSQL, log its value (a
/// misspelt `password` would land in the logs).
#[test]
fn unknown_database_url_parameters_are_refused_without_their_value() {
    let with = |base: String, param: &str| {
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}{param}")
    };
    let cases = [
        (
            with(common::pg_url(), "pasword=Typo-Secret-1"),
            "\"pasword\"",
        ),
        (with(common::pg_url(), "Typo-Secret-2"), "parameter"),
        (
            with(
                common::mysql_url(),
                "ssl_mode=VERIFY_IDENTITY&x=Typo-Secret-3",
            ),
            "\"ssl_mode\"",
        ),
    ];
    for (url, named) in cases {
        let out = output(relay_with_env(
            &[("OUTBOX_DATABASE_URL", &url)],
            &["status"],
        ));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{url}: {err}");
        assert!(err.contains("database_url"), "{url}: {err}");
        assert!(err.contains(named), "{named} not named: {err}");
        assert!(!err.contains("Typo-Secret"), "the value leaked: {err}");
    }
}

/// A certificate or key parameter that names no readable file is refused before connecting,
/// naming the parameter (sqlx said only "No such file or directory", and read `/dev/zero`
/// until memory ran out).
#[test]
fn database_tls_files_that_cannot_be_read_name_the_parameter() {
    let dir = tempfile::tempdir().expect("dir");
    let missing = dir.path().join("missing.crt").display().to_string();
    let as_dir = dir.path().display().to_string();
    let pg = |params: String| {
        let base = common::pg_url();
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}sslmode=verify-full&{params}")
    };
    let my = |params: String| {
        let base = common::mysql_url();
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}ssl-mode=VERIFY_IDENTITY&{params}")
    };
    let cases = [
        (pg(format!("sslrootcert={missing}")), "sslrootcert"),
        (pg("sslrootcert=/dev/zero".to_owned()), "sslrootcert"),
        (pg(format!("sslcert={as_dir}&sslkey={as_dir}")), "sslcert"),
        (my(format!("ssl-ca={missing}")), "ssl-ca"),
        (my(format!("ssl-key={missing}")), "ssl-key"),
    ];
    for (url, named) in cases {
        let out = output(relay_with_env(
            &[("OUTBOX_DATABASE_URL", &url)],
            &["status"],
        ));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{url}: {err}");
        assert!(err.contains("database_url"), "{url}: {err}");
        assert!(err.contains(named), "{named} not named: {err}");
    }
}

/// A database URL that is no URL (the password put into the wrong variable, a URL missing
/// its colon) is refused without being echoed.
#[test]
fn a_database_url_that_is_no_url_is_not_echoed() {
    for url in [
        "hunter-secret-4711",
        "postgres//app@db:hunter-secret-4711",
        "hunter secret 4711:x",
    ] {
        let out = output(relay_with_env(&[("OUTBOX_DATABASE_URL", url)], &["status"]));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{url}: {err}");
        assert!(err.contains("database_url"), "{url}: {err}");
        assert!(!err.contains("secret"), "the value leaked: {err}");
    }
    let out = output(relay_with_env(
        &[("OUTBOX_DATABASE_URL", "redis://cache/0")],
        &["status"],
    ));
    assert!(stderr(&out).contains("\"redis\""), "a real scheme is named");
}

/// `out` failed naming `database_url` and `expected`, without `secret` (`case` names the
/// case in the messages).
fn refused_naming_database_url(
    out: &std::process::Output,
    case: &str,
    expected: &str,
    secret: &str,
) {
    let err = stderr(out);
    assert!(!out.status.success(), "{case}: must fail");
    assert!(err.contains("database_url"), "{case}: {err}");
    assert!(
        err.contains(expected),
        "{case}: expected {expected:?} in {err}"
    );
    assert!(!err.contains(secret), "{case}: the password leaked: {err}");
}
