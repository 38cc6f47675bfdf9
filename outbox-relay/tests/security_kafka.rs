//! Kafka's TLS, SASL and OAUTHBEARER settings against the test broker's TLS and SASL_SSL
//! listeners: a wrong setting stops the relay at start naming the librdkafka property, and
//! no secret appears in what it prints.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use common::Tls;
use common::isolated::{output, relay_with_env, stderr};

/// `outbox-relay run` against the TLS listener with a wrong setting stops at start with exit
/// code 2 and names the librdkafka property at fault.
fn kafka_failure(bootstrap: &str, vars: &[(&str, &str)], expected: &str) -> String {
    let names = common::fresh_names();
    let table_prefix = common::prefix(&names);
    let db = common::pg_url();
    let mut env = vec![
        ("OUTBOX_DATABASE_URL", db.as_str()),
        ("OUTBOX_KAFKA_BOOTSTRAP_SERVERS", bootstrap),
        ("OUTBOX_TABLE_PREFIX", table_prefix.as_str()),
        ("OUTBOX_HTTP_LISTEN", ""),
        ("OUTBOX_REGISTRY_LISTEN", ""),
    ];
    env.extend_from_slice(vars);
    let out = output(relay_with_env(&env, &["run"]));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{vars:?}: {err}");
    assert!(
        err.contains(expected),
        "{vars:?}: expected {expected:?} in {err}"
    );
    err
}

#[test]
fn kafka_tls_failures_stop_the_relay_at_start_naming_the_property() {
    let Some(tls) = Tls::from_env() else { return };
    let Some(bootstrap) = common::service_env("KAFKA_TLS_BOOTSTRAP_SERVERS") else {
        return;
    };
    let (ca, other, cert, key) = (
        tls.path("ca.crt"),
        tls.path("other-ca.crt"),
        tls.path("client.crt"),
        tls.path("client.key"),
    );
    kafka_failure(
        &bootstrap,
        &[
            ("OUTBOX_KAFKA_SECURITY_PROTOCOL", "SSL"),
            ("OUTBOX_KAFKA_SSL_CA_LOCATION", &other),
            ("OUTBOX_KAFKA_SSL_CERTIFICATE_LOCATION", &cert),
            ("OUTBOX_KAFKA_SSL_KEY_LOCATION", &key),
        ],
        "kafka.properties.ssl.ca.location",
    );
    kafka_failure(
        &bootstrap,
        &[("OUTBOX_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")],
        "kafka.properties.security.protocol",
    );
    kafka_failure(
        &bootstrap,
        &[
            ("OUTBOX_KAFKA_SECURITY_PROTOCOL", "SSL"),
            ("OUTBOX_KAFKA_SSL_CA_LOCATION", &ca),
        ],
        "kafka.properties.ssl.certificate.location",
    );
}

/// SASL_SSL with SCRAM: tansu 0.6.0 with `--authentication` knows no user (see
/// .ci/kafka.sh), so every login is refused: the relay stops at start naming the SASL
/// settings, and the password (from a file) appears nowhere. PLAIN, which tansu does not
/// offer, is refused naming the mechanism.
#[test]
fn kafka_sasl_scram_refused_login_names_the_setting_and_hides_the_password() {
    let Some(tls) = Tls::from_env() else { return };
    let Some(bootstrap) = common::service_env("KAFKA_SASL_SSL_BOOTSTRAP_SERVERS") else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let secret = "scram-Secret-0815";
    let file = dir.path().join("sasl-password");
    std::fs::write(&file, format!("{secret}\n")).expect("secret file");
    let file = file.display().to_string();
    let ca = tls.path("ca.crt");
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let err = kafka_failure(
            &bootstrap,
            &[
                ("OUTBOX_KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
                ("OUTBOX_KAFKA_SSL_CA_LOCATION", &ca),
                ("OUTBOX_KAFKA_SASL_MECHANISM", mechanism),
                ("OUTBOX_KAFKA_SASL_USERNAME", "outbox"),
                ("OUTBOX_KAFKA_SASL_PASSWORD_FILE", &file),
            ],
            "kafka.properties.sasl.username/sasl.password",
        );
        assert!(err.contains("SCRAM"), "{err}");
        assert!(!err.contains(secret), "the password leaked: {err}");
    }
    // PLAIN is built in too; this broker does not offer it, which names the mechanism.
    let err = kafka_failure(
        &bootstrap,
        &[
            ("OUTBOX_KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
            ("OUTBOX_KAFKA_SSL_CA_LOCATION", &ca),
            ("OUTBOX_KAFKA_SASL_MECHANISM", "PLAIN"),
            ("OUTBOX_KAFKA_SASL_USERNAME", "outbox"),
            ("OUTBOX_KAFKA_SASL_PASSWORD_FILE", &file),
        ],
        "kafka.properties.sasl.mechanism",
    );
    assert!(!err.contains(secret), "the password leaked: {err}");
}

/// A token endpoint that records each request and answers with an unsigned JWT.
fn token_endpoint() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/token", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut head = String::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            log.lock()
                .expect("log")
                .push(format!("{head}\r\n{}", String::from_utf8_lossy(&body)));
            let b64 =
                |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s.as_bytes());
            let exp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("time")
                .as_secs()
                + 3600;
            let jwt = format!(
                "{}.{}.",
                b64(r#"{"alg":"none","typ":"JWT"}"#),
                b64(&format!(
                    r#"{{"sub":"outbox","iat":{},"exp":{exp}}}"#,
                    exp - 3600
                ))
            );
            let reply =
                format!(r#"{{"access_token":"{jwt}","token_type":"bearer","expires_in":3600}}"#);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    (url, seen)
}

/// OAUTHBEARER with OIDC client credentials: librdkafka fetches a token from the endpoint
/// with the client id and the secret from the environment (HTTP Basic), then presents it to
/// the broker over TLS. What this proves is the client side: the secret reaches the token
/// endpoint and nowhere else.
#[test]
fn kafka_oauthbearer_oidc_fetches_a_token_with_the_secret_from_the_environment() {
    let Some(tls) = Tls::from_env() else { return };
    let Some(bootstrap) = common::service_env("KAFKA_SASL_SSL_BOOTSTRAP_SERVERS") else {
        return;
    };
    let (endpoint, seen) = token_endpoint();
    let secret = "oidc-Secret-4242";
    let ca = tls.path("ca.crt");
    let names = common::fresh_names();
    let table_prefix = common::prefix(&names);
    let db = common::pg_url();
    let out = output(relay_with_env(
        &[
            ("OUTBOX_DATABASE_URL", &db),
            ("OUTBOX_KAFKA_BOOTSTRAP_SERVERS", &bootstrap),
            ("OUTBOX_TABLE_PREFIX", &table_prefix),
            ("OUTBOX_HTTP_LISTEN", ""),
            ("OUTBOX_REGISTRY_LISTEN", ""),
            ("OUTBOX_KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
            ("OUTBOX_KAFKA_SSL_CA_LOCATION", &ca),
            ("OUTBOX_KAFKA_SASL_MECHANISM", "OAUTHBEARER"),
            ("OUTBOX_KAFKA_SASL_OAUTHBEARER_METHOD", "oidc"),
            ("OUTBOX_KAFKA_SASL_OAUTHBEARER_CLIENT_ID", "outbox-relay"),
            ("OUTBOX_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET", secret),
            (
                "OUTBOX_KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL",
                &endpoint,
            ),
            ("OUTBOX_KAFKA_SASL_OAUTHBEARER_SCOPE", "kafka"),
        ],
        &["run"],
    ));
    let err = stderr(&out);
    eprintln!("the relay, after the token: {err}");
    let requests = seen.lock().expect("requests").clone();
    assert!(!requests.is_empty(), "no token request; relay said: {err}");
    // The start-up check's probe asks first, with no credential; then librdkafka posts.
    assert!(requests[0].starts_with("GET /token "), "{requests:?}");
    assert!(
        !requests[0].to_ascii_lowercase().contains("authorization"),
        "{requests:?}"
    );
    let request = requests
        .iter()
        .find(|r| r.starts_with("POST /token "))
        .unwrap_or_else(|| panic!("no token request: {requests:?}"));
    assert!(
        request.contains("grant_type=client_credentials"),
        "{request}"
    );
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("outbox-relay:{secret}").as_bytes());
    assert!(
        request.contains(&format!("Basic {basic}")),
        "client id and secret as HTTP Basic: {request}"
    );
    assert!(!err.contains(secret), "the secret leaked: {err}");
    // tansu cannot be told how to validate tokens, so it refuses this one: the relay stops,
    // naming the OAUTHBEARER settings.
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("kafka.properties.sasl.oauthbearer"), "{err}");
}

/// librdkafka quotes pieces of a malformed `sasl.oauthbearer.config` ("Unrecognized
/// sasl.oauthbearer.config beginning at: ..."): none of them reaches the error. No broker is
/// needed, the token is built when the client starts.
#[test]
fn pieces_of_a_malformed_oauthbearer_config_stay_hidden() {
    let dir = tempfile::tempdir().expect("dir");
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("o.db").display());
    for config in [
        "principal=relay extension_token=ext-Secret-1 bogus=ext-Secret-2 scope=write",
        "principal=relay lifeSeconds=life-Secret-3",
    ] {
        let out = output(relay_with_env(
            &[
                ("OUTBOX_DATABASE_URL", &db),
                ("OUTBOX_HTTP_LISTEN", ""),
                ("OUTBOX_REGISTRY_LISTEN", ""),
                ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1"),
                ("OUTBOX_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
                ("OUTBOX_KAFKA_SASL_MECHANISM", "OAUTHBEARER"),
                ("OUTBOX_KAFKA_ENABLE_SASL_OAUTHBEARER_UNSECURE_JWT", "true"),
                ("OUTBOX_KAFKA_SASL_OAUTHBEARER_CONFIG", config),
            ],
            &["run"],
        ));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{config}: {err}");
        assert!(err.contains("sasl.oauthbearer"), "{config}: {err}");
        assert!(!err.contains("Secret"), "the config leaked: {err}");
    }
}

/// A client key that is not the certificate's (the server's key next to the client's
/// certificate) stops the relay at start naming both files, instead of reading as a
/// connection the broker refused.
#[test]
fn a_client_key_that_does_not_match_the_certificate_names_both_files() {
    let Some(tls) = Tls::from_env() else { return };
    let Some(bootstrap) = common::service_env("KAFKA_TLS_BOOTSTRAP_SERVERS") else {
        return;
    };
    let (ca, cert, wrong_key) = (
        tls.path("ca.crt"),
        tls.path("client.crt"),
        tls.path("server.key"),
    );
    let err = kafka_failure(
        &bootstrap,
        &[
            ("OUTBOX_KAFKA_SECURITY_PROTOCOL", "SSL"),
            ("OUTBOX_KAFKA_SSL_CA_LOCATION", &ca),
            ("OUTBOX_KAFKA_SSL_CERTIFICATE_LOCATION", &cert),
            ("OUTBOX_KAFKA_SSL_KEY_LOCATION", &wrong_key),
        ],
        "kafka.properties.ssl.certificate.location/ssl.key.location",
    );
    assert!(
        err.contains(&format!(
            "the client key {wrong_key:?} does not belong to the client certificate {cert:?}"
        )),
        "{err}"
    );
    assert!(!err.contains("the broker refused"), "{err}");
    // The same pair inline, as PEM text.
    let pem = |path: &str| std::fs::read_to_string(path).expect("pem");
    let err = kafka_failure(
        &bootstrap,
        &[
            ("OUTBOX_KAFKA_SECURITY_PROTOCOL", "SSL"),
            ("OUTBOX_KAFKA_SSL_CA_LOCATION", &ca),
            ("OUTBOX_KAFKA_SSL_CERTIFICATE_PEM", &pem(&cert)),
            ("OUTBOX_KAFKA_SSL_KEY_PEM", &pem(&wrong_key)),
        ],
        "kafka.properties.ssl.certificate.pem/ssl.key.pem",
    );
    assert!(!err.contains("PRIVATE KEY"), "the key leaked: {err}");
}

/// An OIDC token endpoint that accepts connections and never answers stops the relay at
/// start naming `sasl.oauthbearer.token.endpoint.url`, after a bounded wait, instead of
/// looking like a broker outage that never ends.
#[test]
fn a_token_endpoint_that_never_answers_is_named_at_start() {
    let Some(tls) = Tls::from_env() else { return };
    let Some(bootstrap) = common::service_env("KAFKA_SASL_SSL_BOOTSTRAP_SERVERS") else {
        return;
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!(
        "http://outbox:url-Secret-5@{}/token",
        listener.local_addr().expect("addr")
    );
    // Accepts, reads nothing, answers nothing; holds every connection open.
    std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().collect();
        drop(held);
    });
    let ca = tls.path("ca.crt");
    let started = std::time::Instant::now();
    let err = kafka_failure(
        &bootstrap,
        &[
            ("OUTBOX_KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
            ("OUTBOX_KAFKA_SSL_CA_LOCATION", &ca),
            ("OUTBOX_KAFKA_SASL_MECHANISM", "OAUTHBEARER"),
            ("OUTBOX_KAFKA_SASL_OAUTHBEARER_METHOD", "oidc"),
            ("OUTBOX_KAFKA_SASL_OAUTHBEARER_CLIENT_ID", "outbox-relay"),
            (
                "OUTBOX_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET",
                "oidc-Secret-6",
            ),
            (
                "OUTBOX_KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL",
                &endpoint,
            ),
        ],
        "kafka.properties.sasl.oauthbearer.token.endpoint.url",
    );
    let took = started.elapsed();
    assert!(err.contains("did not answer within 10 s"), "{err}");
    assert!(!err.contains("Secret"), "a secret leaked: {err}");
    assert!(
        took < std::time::Duration::from_secs(30),
        "bounded wait, took {took:?}"
    );
}
