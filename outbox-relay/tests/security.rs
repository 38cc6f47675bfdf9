//! The relay against real TLS endpoints, configured the way a deployment is: the local
//! PostgreSQL reached with `sslmode=verify-full`, MariaDB with `ssl-mode=VERIFY_IDENTITY`,
//! the test broker behind TLS (client certificates required) and with SASL, secrets from
//! environment variables and files. `.ci/setup` makes the certificates, users and listeners
//! (OUTBOX_TEST_TLS_DIR, KAFKA_TLS_BOOTSTRAP_SERVERS, KAFKA_SASL_SSL_BOOTSTRAP_SERVERS);
//! without them the tests skip, except under CI=true.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Tls;
use outbox_core::encode::EventCodec;
use outbox_core::registry::Registry;
use outbox_core::relay::{InsertRows, RelayStore};
use outbox_core::{Event, NewOutboxRow};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

const RELAY: &str = env!("CARGO_BIN_EXE_outbox-relay");

/// The relay binary with an empty environment plus `vars`: nothing comes from the test
/// runner's environment, flags or a file.
fn relay_with_env(vars: &[(&str, &str)], args: &[&str]) -> Command {
    let mut command = Command::new(RELAY);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars.iter().copied())
        .args(args);
    command
}

fn output(mut command: Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("relay starts");
    // Hang guard: every failure under test happens at start, long before this.
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the relay did not stop within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `postgres://outbox_tls@localhost/test` with TLS parameters (the password comes apart).
fn pg_tls_url(params: &str) -> String {
    let base = common::pg_url();
    let rest = base
        .split_once('@')
        .map_or("localhost:5432/test", |(_, r)| r);
    let rest = rest.split('?').next().unwrap_or(rest);
    format!("postgres://outbox_tls@{rest}?{params}")
}

fn mysql_tls_url(user: &str, params: &str) -> String {
    let base = common::mysql_url();
    let rest = base
        .split_once('@')
        .map_or("localhost:3306/test", |(_, r)| r);
    let rest = rest.split('?').next().unwrap_or(rest);
    format!("mysql://{user}@{rest}?{params}")
}

fn prefix(names: &outbox_core::table::TableNames) -> String {
    names
        .name(outbox_core::table::Table::Events)
        .to_string()
        .trim_end_matches("_events")
        .to_owned()
}

fn ssl_properties(tls: &Tls) -> Vec<(&'static str, String)> {
    vec![
        ("security.protocol", "SSL".to_owned()),
        ("ssl.ca.location", tls.path("ca.crt")),
        ("ssl.certificate.location", tls.path("client.crt")),
        ("ssl.key.location", tls.path("client.key")),
    ]
}

async fn create_topic(bootstrap: &str, properties: &[(&str, String)], topic: &str) {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    for (k, v) in properties {
        config.set(*k, v);
    }
    let admin: AdminClient<DefaultClientContext> = config.create().expect("admin client");
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, 2, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create topics");
    for result in results {
        result.expect("topic created");
    }
}

/// Done when: a relay configured only through environment variables drains to the broker
/// over TLS (client certificate) from a PostgreSQL reached with `sslmode=verify-full`, its
/// password from a file; nothing it prints (JSON logs, `status`) holds the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relay_configured_only_by_environment_drains_over_tls_from_verify_full_postgres() {
    let Some(tls) = Tls::from_env() else { return };
    let Some(bootstrap) = common::service_env("KAFKA_TLS_BOOTSTRAP_SERVERS") else {
        return;
    };
    let url = pg_tls_url(&format!(
        "sslmode=verify-full&sslrootcert={}",
        tls.path("ca.crt")
    ));
    let password = tls.password();

    // The test's own writer reaches PostgreSQL the same way (sqlx + rustls, verify-full).
    let with_password = url.replacen("outbox_tls@", &format!("outbox_tls:{password}@"), 1);
    let pool = outbox_relay::database::connect::<sqlx::Postgres>(&with_password)
        .await
        .expect("verify-full connection as outbox_tls");
    let (ssl,): (bool,) =
        sqlx::query_as("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&pool)
            .await
            .expect("pg_stat_ssl");
    assert!(ssl, "the connection is encrypted");

    let topic = common::fresh_topic("orders-tls");
    let ssl_props = ssl_properties(&tls);
    create_topic(&bootstrap, &ssl_props, &topic).await;
    let names = common::fresh_names();
    let config = common::config(&with_password, &bootstrap, &names, "");
    outbox_relay::commands::migrate(&pool, &config)
        .await
        .expect("migrate");
    let stmts = std::sync::Arc::new(outbox_core::table::Statements::new(
        outbox_core::table::Dialect::Postgres,
        &names,
    ));
    let registry = Registry::new(outbox_sqlx::SqlxSchemaStore::new(pool.clone(), stmts));
    let schema = common::OrderPlaced::schema().expect("schema");
    let subject = format!("{topic}-value");
    let registered = registry
        .register(&subject, &schema)
        .await
        .expect("register");
    let codec = EventCodec::new(subject, registered.id, schema);
    let rows: Vec<NewOutboxRow> = (0..100)
        .map(|i| {
            let mut row = NewOutboxRow::from_event(&codec, &common::order(i % 10, i)).expect("ok");
            row.topic.clone_from(&topic);
            row
        })
        .collect();
    let store = config.relay_store(pool.clone()).expect("store");
    store.insert_rows(&rows).await.expect("insert");

    let password_file = tls.path("password");
    let ca = tls.path("ca.crt");
    let cert = tls.path("client.crt");
    let key = tls.path("client.key");
    let table_prefix = prefix(&names);
    let http = format!(
        "127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port()
    );
    let env: Vec<(&str, &str)> = vec![
        ("OUTBOX_DATABASE_URL", &url),
        ("OUTBOX_DATABASE_PASSWORD_FILE", &password_file),
        ("OUTBOX_KAFKA_BOOTSTRAP_SERVERS", &bootstrap),
        ("OUTBOX_KAFKA_SECURITY_PROTOCOL", "SSL"),
        ("OUTBOX_KAFKA_SSL_CA_LOCATION", &ca),
        ("OUTBOX_KAFKA_SSL_CERTIFICATE_LOCATION", &cert),
        ("OUTBOX_KAFKA_SSL_KEY_LOCATION", &key),
        ("OUTBOX_TABLE_PREFIX", &table_prefix),
        ("OUTBOX_HTTP_LISTEN", &http),
        ("OUTBOX_REGISTRY_LISTEN", ""),
        ("OUTBOX_LOG_FORMAT", "json"),
    ];
    let mut relay = relay_with_env(&env, &["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("relay starts");
    let log = Arc::new(Mutex::new(String::new()));
    let reader = {
        let log = Arc::clone(&log);
        let mut pipe = relay.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            if let Ok(mut log) = log.lock() {
                *log = text;
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.status("outbox-relay").await.expect("status").backlog > 0 {
        if Instant::now() > deadline || relay.try_wait().expect("try_wait").is_some() {
            let _ = relay.kill();
            let _ = reader.join();
            panic!("the relay did not drain: {}", log.lock().expect("log"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (b, t, owned) = (bootstrap.clone(), topic.clone(), ssl_props.clone());
    let records = tokio::task::spawn_blocking(move || {
        let props: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
        common::consume_with(&props, &b, &t, 2, 100, Duration::from_secs(60))
    })
    .await
    .expect("consumer");
    let got: HashSet<uuid::Uuid> = records.iter().map(common::Received::ce_id).collect();
    let expected: HashSet<uuid::Uuid> = rows.iter().map(|r| r.event_id).collect();
    assert_eq!(got, expected, "every event reached the TLS listener");

    let mut metrics = ureq::get(&format!("http://{http}/metrics"))
        .call()
        .expect("/metrics");
    let metrics = metrics.body_mut().read_to_string().expect("body");
    assert!(
        metrics.contains("outbox_relay_published_total 100"),
        "{metrics}"
    );
    assert!(!metrics.contains(&password), "/metrics holds no password");

    let status = output(relay_with_env(&env, &["status"]));
    assert!(status.status.success(), "status: {}", stderr(&status));
    let status_text = String::from_utf8_lossy(&status.stdout).into_owned() + &stderr(&status);
    assert!(
        !status_text.contains(&password),
        "status prints no password"
    );

    assert!(
        Command::new("kill")
            .args(["-TERM", &relay.id().to_string()])
            .status()
            .expect("kill")
            .success()
    );
    assert_eq!(relay.wait().expect("exit").code(), Some(0));
    reader.join().expect("reader");
    let log = log.lock().expect("log").clone();
    assert!(!log.contains(&password), "the logs hold no password");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "holding the relay lease"),
        "JSON log lines: {log}"
    );
}

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
        let err = stderr(&out);
        assert!(!out.status.success(), "{params}: must fail");
        assert!(err.contains("database_url"), "{params}: {err}");
        assert!(
            err.contains(expected),
            "{params}: expected {expected:?} in {err}"
        );
        assert!(
            !err.contains(&secret),
            "{params}: the password leaked: {err}"
        );
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
    let table_prefix = prefix(&names);
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
        let table_prefix = prefix(&names);
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
        let err = stderr(&out);
        assert!(!out.status.success(), "{url}: must fail");
        assert!(err.contains("database_url"), "{url}: {err}");
        assert!(
            err.contains(expected),
            "{url}: expected {expected:?} in {err}"
        );
        assert!(
            !err.contains(&password),
            "{url}: the password leaked: {err}"
        );
    }
}

/// `outbox-relay run` against the TLS listener with a wrong setting stops at start with exit
/// code 2 and names the librdkafka property at fault.
fn kafka_failure(bootstrap: &str, vars: &[(&str, &str)], expected: &str) -> String {
    let names = common::fresh_names();
    let table_prefix = prefix(&names);
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
            let b64 = |s: &str| base64url(s.as_bytes());
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

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
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
    let table_prefix = prefix(&names);
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
    let request = &requests[0];
    assert!(request.starts_with("POST /token "), "{request}");
    assert!(
        request.contains("grant_type=client_credentials"),
        "{request}"
    );
    let basic = base64_std(format!("outbox-relay:{secret}").as_bytes());
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

fn base64_std(bytes: &[u8]) -> String {
    let url = base64url(bytes).replace('-', "+").replace('_', "/");
    let pad = (4 - url.len() % 4) % 4;
    url + &"=".repeat(pad)
}

/// The remote registry client speaks HTTPS with a custom CA (`OUTBOX_REGISTRY_CA`), sends
/// the password from a file, and without the CA refuses the server's certificate.
#[test]
fn remote_registry_over_https_with_a_custom_ca() {
    let Some(tls) = Tls::from_env() else { return };
    let script = r#"
import http.server, ssl, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'["tls-value"]' if self.path == "/subjects" else b"[]"
        sys.stdout.write("%s %s\n" % (self.path, self.headers.get("Authorization")))
        sys.stdout.flush()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[1], sys.argv[2])
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;
    let mut server = Command::new("python3")
        .args([
            "-c",
            script,
            &tls.path("server.crt"),
            &tls.path("server.key"),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut lines = BufReader::new(server.stdout.take().expect("stdout")).lines();
    let port = lines.next().expect("port line").expect("port");
    let dir = tempfile::tempdir().expect("dir");
    let secret_file = dir.path().join("registry-password");
    std::fs::write(&secret_file, "registry-Secret-77\n").expect("secret");
    let secret_file = secret_file.display().to_string();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("o.db").display());
    let url = format!("localhost:{port}"); // no scheme: https
    let ca = tls.path("ca.crt");
    let base = [
        ("OUTBOX_DATABASE_URL", db.as_str()),
        ("OUTBOX_REGISTRY_URL", url.as_str()),
        ("OUTBOX_REGISTRY_USERNAME", "outbox"),
        ("OUTBOX_REGISTRY_PASSWORD_FILE", secret_file.as_str()),
    ];
    let mut with_ca = base.to_vec();
    with_ca.push(("OUTBOX_REGISTRY_CA", &ca));
    let out = output(relay_with_env(&with_ca, &["schema", "list"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "tls-value\n");
    let request = lines.next().expect("request line").expect("request");
    assert_eq!(
        request,
        format!(
            "/subjects Basic {}",
            base64_std(b"outbox:registry-Secret-77")
        )
    );

    let out = output(relay_with_env(&base, &["schema", "list"]));
    let err = stderr(&out);
    assert!(
        !out.status.success(),
        "the Mozilla roots do not know the test CA"
    );
    assert!(err.to_ascii_lowercase().contains("certificate"), "{err}");
    assert!(!err.contains("registry-Secret-77"), "{err}");
    let _ = server.kill();
    let _ = server.wait();
}

/// Text logs carry no colour codes off a terminal; JSON logs are one object per line; an
/// unknown format is refused naming the flag.
#[test]
fn log_formats() {
    let dir = tempfile::tempdir().expect("dir");
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("o.db").display());
    let run = |format: &str| {
        output(relay_with_env(
            &[
                ("OUTBOX_DATABASE_URL", &db),
                ("OUTBOX_LOG_FORMAT", format),
                ("RUST_LOG", "debug"),
            ],
            &["migrate"],
        ))
    };
    let text = run("text");
    assert!(text.status.success(), "{}", stderr(&text));
    let log = stderr(&text);
    assert!(log.lines().count() > 1, "debug logs expected: {log}");
    assert!(
        !log.contains('\u{1b}'),
        "no ANSI colours into a pipe: {log}"
    );

    let json = run("json");
    assert!(json.status.success(), "{}", stderr(&json));
    for line in stderr(&json).lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            value["level"].is_string() && value["timestamp"].is_string(),
            "{line}"
        );
    }

    let bad = run("xml");
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("--log-format"), "{}", stderr(&bad));
}

/// Input errors about secrets name the setting, never the secret: a `-X` typo, both forms of
/// a secret variable, an unreadable secret file.
#[test]
fn secret_input_errors_never_show_the_secret() {
    let dir = tempfile::tempdir().expect("dir");
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("o.db").display());
    let missing = dir.path().join("missing").display().to_string();
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str], &'a str);
    let cases: [Case<'_>; 3] = [
        (&[], &["-X", "sasl.password:typo-Secret", "status"], "-X"),
        (
            &[
                ("OUTBOX_KAFKA_SASL_PASSWORD", "both-Secret"),
                ("OUTBOX_KAFKA_SASL_PASSWORD_FILE", "/dev/null"),
            ],
            &["status"],
            "OUTBOX_KAFKA_SASL_PASSWORD",
        ),
        (
            &[("OUTBOX_DATABASE_PASSWORD_FILE", &missing)],
            &["status"],
            "OUTBOX_DATABASE_PASSWORD_FILE",
        ),
    ];
    for (vars, args, key) in cases {
        let mut env = vec![("OUTBOX_DATABASE_URL", db.as_str())];
        env.extend_from_slice(vars);
        let out = output(relay_with_env(&env, args));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(key), "{key} not named: {err}");
        assert!(!err.contains("Secret"), "the secret leaked: {err}");
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

/// `RUST_LOG=trace` prints no registry credential: ureq-proto hex-dumps each request at
/// trace, Authorization header included. The token repeats a word so that any 16-byte slice
/// of a dump line would still hold it.
#[test]
fn trace_logs_show_no_registry_credential() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().take(4) {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let body = "[]";
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let dir = tempfile::tempdir().expect("dir");
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("o.db").display());
    let url = format!("http://{addr}");
    let token = "Secret".repeat(8);
    let out = output(relay_with_env(
        &[
            ("OUTBOX_DATABASE_URL", &db),
            ("OUTBOX_REGISTRY_URL", &url),
            ("OUTBOX_REGISTRY_BEARER_TOKEN", &token),
            ("RUST_LOG", "trace"),
        ],
        &["schema", "list"],
    ));
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("ureq"),
        "the HTTP client logged nothing: {err}"
    );
    assert!(!err.contains("Secret"), "the token leaked: {err}");
}

/// A secret given as a flag is visible in `ps`: the relay says so, naming the setting only.
#[test]
fn secrets_on_the_command_line_are_warned_about() {
    let dir = tempfile::tempdir().expect("dir");
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("o.db").display());
    // Refused before connecting (an unknown parameter), so nothing waits for a server.
    let pg = "postgres://app:flag-Secret@127.0.0.1:1/app?no-such-parameter=1";
    let cases: [(&[&str], &str); 3] = [
        (
            &[
                "--database-url",
                &db,
                "-X",
                "sasl.password=flag-Secret",
                "migrate",
            ],
            "sasl.password",
        ),
        (
            &[
                "--database-url",
                &db,
                "-X",
                "ssl.key.password=flag-Secret",
                "migrate",
            ],
            "ssl.key.password",
        ),
        (&["--database-url", pg, "status"], "--database-url"),
    ];
    for (args, named) in cases {
        let out = output(relay_with_env(&[], args));
        let err = stderr(&out);
        assert!(err.contains("visible to every user"), "{args:?}: {err}");
        assert!(err.contains(named), "{named} not named: {err}");
        assert!(!err.contains("Secret"), "the secret leaked: {err}");
    }
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
