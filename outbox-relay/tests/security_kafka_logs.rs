//! librdkafka's own log lines, at `debug=all`, as the relay binary prints them: they appear
//! (through `tracing`, target `librdkafka`), and no secret of the Kafka settings does, neither
//! from the start-up check nor from the running producer.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Tls;
use common::isolated::{output, relay_with_env, stderr};

/// Secrets librdkafka hides on its own (`sasl.password`, `sasl.oauthbearer.client.secret`)
/// and one it prints in its configuration dump: the password in a token endpoint's URL.
const URL_SECRET: &str = "url-Secret-77";
const CLIENT_SECRET: &str = "oidc-Secret-13";
const SASL_SECRET: &str = "scram-Secret-0815";

fn assert_redacted(err: &str) {
    for secret in [URL_SECRET, CLIENT_SECRET, SASL_SECRET] {
        assert!(!err.contains(secret), "{secret} leaked:\n{err}");
    }
    assert!(
        err.contains(
            "sasl.oauthbearer.token.endpoint.url = https://relay:[redacted]@idp.invalid/token"
        ),
        "librdkafka's configuration dump, its URL password cut out:\n{err}"
    );
}

/// Lines of target `librdkafka` and facility `fac`.
fn librdkafka_lines<'a>(err: &'a str, fac: &str) -> Vec<&'a str> {
    let facility = format!("facility=\"{fac}\"");
    err.lines()
        .filter(|l| l.contains("librdkafka") && l.contains(&facility))
        .collect()
}

fn debug_env<'a>(db: &'a str, bootstrap: &'a str, endpoint: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("RUST_LOG", "info,librdkafka=debug"),
        ("OUTBOX_DATABASE_URL", db),
        ("OUTBOX_HTTP_LISTEN", ""),
        ("OUTBOX_REGISTRY_LISTEN", ""),
        ("OUTBOX_KAFKA_BOOTSTRAP_SERVERS", bootstrap),
        ("OUTBOX_KAFKA_DEBUG", "all"),
        ("OUTBOX_KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL", endpoint),
        ("OUTBOX_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET", CLIENT_SECRET),
    ]
}

/// SCRAM over SASL_SSL at `debug=all`: the start-up check's librdkafka lines (configuration,
/// TLS, SASL) are printed, the refused login stops the relay, and no secret is anywhere.
#[test]
fn librdkafka_debug_lines_of_a_sasl_login_hide_every_secret() {
    let Some(tls) = Tls::from_env() else { return };
    let Some(bootstrap) = common::service_env("KAFKA_SASL_SSL_BOOTSTRAP_SERVERS") else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("o.db").display());
    let password = dir.path().join("sasl-password");
    std::fs::write(&password, SASL_SECRET).expect("secret file");
    let password = password.display().to_string();
    let ca = tls.path("ca.crt");
    let endpoint = format!("https://relay:{URL_SECRET}@idp.invalid/token");
    let mut env = debug_env(&db, &bootstrap, &endpoint);
    env.extend([
        ("OUTBOX_KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
        ("OUTBOX_KAFKA_SSL_CA_LOCATION", ca.as_str()),
        ("OUTBOX_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256"),
        ("OUTBOX_KAFKA_SASL_USERNAME", "outbox"),
        ("OUTBOX_KAFKA_SASL_PASSWORD_FILE", password.as_str()),
    ]);
    let out = output(relay_with_env(&env, &["run"]));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("kafka.properties.sasl.username/sasl.password"),
        "{err}"
    );
    assert_redacted(&err);
    for fac in ["CONF", "SSLVERIFY", "SASLSCRAM"] {
        assert!(
            !librdkafka_lines(&err, fac).is_empty(),
            "no librdkafka {fac} line:\n{err}"
        );
    }
}

/// The running producer's lines at `debug=all` (after the start-up check has passed) go
/// through the same redaction: before, they reached the log through the `log` crate as
/// librdkafka wrote them, URL password included.
#[test]
fn the_running_producers_debug_lines_hide_every_secret() {
    let Some(bootstrap) = common::service_env("KAFKA_BOOTSTRAP_SERVERS") else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("o.db").display());
    let endpoint = format!("https://relay:{URL_SECRET}@idp.invalid/token");
    let mut child = relay_with_env(&debug_env(&db, &bootstrap, &endpoint), &["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("relay starts");
    let mut pipe = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut err = String::new();
        let _ = pipe.read_to_string(&mut err);
        err
    });
    // The start-up check's client and then the producer each dump their configuration; the
    // producer polls the broker every few hundred milliseconds.
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    while child.try_wait().expect("wait").is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the relay did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let err = reader.join().expect("stderr");
    assert_redacted(&err);
    let dumps = librdkafka_lines(&err, "CONF")
        .into_iter()
        .filter(|l| l.contains("sasl.oauthbearer.token.endpoint.url"))
        .count();
    assert!(dumps >= 2, "the check's and the producer's dumps:\n{err}");
    assert!(
        err.contains("holding the relay lease"),
        "the relay ran past its start:\n{err}"
    );
}
