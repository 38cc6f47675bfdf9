//! The relay's HTTP ports as an attacker on the network meets them: credentials for writes,
//! content types, Confluent-shaped refusals, body limits, slow clients, connection floods,
//! HTTPS, and `/metrics` behind a credential.

use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use outbox_core::registry::{MemorySchemaStore, Registry};
use outbox_relay::auth::AuthConfig;
use outbox_relay::registry_api::ApiOptions;
use outbox_relay::server::{Server, ServerConfig};
use serde_json::{Value as Json, json};

const V1: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"}]}"#;
const V2: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"n","type":["null","int"],"default":null}]}"#;

mod common;

use common::http::{GUARD, http, parse_response, stall};

fn auth() -> AuthConfig {
    AuthConfig {
        username: Some("ci".to_owned()),
        password: Some("pa:ss word".to_owned()),
        bearer_token: Some("tok-123".to_owned()),
    }
}

fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// A registry API on a free port; returns its address and the runtime it lives on.
fn start(writable: bool, config: &ServerConfig) -> (std::net::SocketAddr, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = Server::new(config, "registry.server").expect("server");
    let options = ApiOptions {
        writable,
        auth: auth(),
    };
    runtime.spawn(async move {
        let registry = Registry::new(MemorySchemaStore::default());
        outbox_relay::registry_api::serve(
            listener,
            registry,
            options,
            &server,
            std::future::pending(),
        )
        .await
    });
    (addr, runtime)
}

const JSON_TYPE: (&str, &str) = ("Content-Type", "application/vnd.schemaregistry.v1+json");

fn schema_body(schema: &str) -> String {
    json!({ "schema": schema }).to_string()
}

fn error_code(body: &str) -> u64 {
    serde_json::from_str::<Json>(body)
        .ok()
        .and_then(|j| j["error_code"].as_u64())
        .unwrap_or(0)
}

#[test]
fn writes_need_a_credential_reads_do_not() {
    let (addr, _rt) = start(true, &ServerConfig::default());
    let register = "/subjects/orders-value/versions";
    let token = ("Authorization", "Bearer tok-123");
    // No, wrong or malformed credentials: 401 with a challenge, nothing stored.
    let good_basic = basic("ci", "pa:ss word");
    let wrong_basic = basic("ci", "pa:ss wor");
    for headers in [
        vec![JSON_TYPE],
        vec![JSON_TYPE, ("Authorization", "Bearer tok-12")],
        vec![JSON_TYPE, ("Authorization", wrong_basic.as_str())],
        vec![JSON_TYPE, ("Authorization", "Basic %%%")],
        vec![JSON_TYPE, ("Authorization", "tok-123")],
    ] {
        let (status, head, body) = http(addr, "POST", register, &headers, &schema_body(V1));
        assert_eq!(
            (status, error_code(&body)),
            (401, 401),
            "{headers:?}: {body}"
        );
        assert!(head.contains("www-authenticate: basic"), "{head}");
    }
    let (status, _, body) = http(addr, "GET", "/subjects", &[], "");
    assert_eq!(
        (status, body.as_str()),
        (200, "[]"),
        "nothing was registered"
    );
    // Basic and bearer credentials both work.
    let (status, _, body) = http(
        addr,
        "POST",
        register,
        &[JSON_TYPE, ("Authorization", good_basic.as_str())],
        &schema_body(V1),
    );
    assert_eq!((status, body.as_str()), (200, r#"{"id":1}"#));
    let (status, _, body) = http(
        addr,
        "POST",
        register,
        &[JSON_TYPE, token],
        &schema_body(V2),
    );
    assert_eq!((status, body.as_str()), (200, r#"{"id":2}"#));
    // Reads by route stay open: look-up, compatibility, and "registering" a known schema.
    for (method, path, body) in [
        ("POST", "/subjects/orders-value", schema_body(V1)),
        ("POST", register, schema_body(V1)),
        (
            "POST",
            "/compatibility/subjects/orders-value/versions/latest?verbose=True",
            schema_body(V1),
        ),
        (
            "GET",
            "/subjects/orders-value/versions/latest",
            String::new(),
        ),
    ] {
        let (status, _, reply) = http(addr, method, path, &[JSON_TYPE], &body);
        assert_eq!(status, 200, "{method} {path}: {reply}");
    }
    // Configuration changes are writes.
    let level = r#"{"compatibility":"NONE"}"#;
    assert_eq!(http(addr, "PUT", "/config", &[JSON_TYPE], level).0, 401);
    assert_eq!(http(addr, "DELETE", "/config/orders-value", &[], "").0, 401);
    assert_eq!(
        http(addr, "PUT", "/config", &[JSON_TYPE, token], level).0,
        200
    );
}

#[test]
fn a_read_only_registry_refuses_writes_even_with_a_credential() {
    let (addr, _rt) = start(false, &ServerConfig::default());
    let token = ("Authorization", "Bearer tok-123");
    let (status, _, body) = http(
        addr,
        "POST",
        "/subjects/orders-value/versions",
        &[JSON_TYPE, token],
        &schema_body(V1),
    );
    assert_eq!((status, error_code(&body)), (422, 42205), "{body}");
    let (_, _, body) = http(addr, "GET", "/mode", &[], "");
    assert_eq!(body, r#"{"mode":"READONLY"}"#);
}

#[test]
fn refusals_have_confluent_json_bodies() {
    let (addr, _rt) = start(true, &ServerConfig::default());
    // Bodies that are not JSON by content type: a web page's form or text/plain post.
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let mut headers = vec![("Authorization", "Bearer tok-123")];
        if let Some(t) = content_type {
            headers.push(("Content-Type", t));
        }
        let (status, head, body) = http(
            addr,
            "POST",
            "/subjects/x-value/versions",
            &headers,
            &schema_body(V1),
        );
        assert_eq!((status, error_code(&body)), (415, 415), "{content_type:?}");
        assert!(
            head.contains("application/vnd.schemaregistry.v1+json"),
            "{head}"
        );
    }
    for content_type in [
        "application/json; charset=utf-8",
        "application/vnd.schemaregistry+json",
    ] {
        let (status, _, body) = http(
            addr,
            "POST",
            "/subjects/x-value/versions",
            &[
                ("Content-Type", content_type),
                ("Authorization", "Bearer tok-123"),
            ],
            &schema_body(V1),
        );
        assert_eq!(status, 200, "{content_type}: {body}");
    }
    // Schema references are refused as Confluent refuses an invalid schema, never ignored.
    let with_reference = json!({
        "schema": r#"{"type":"record","name":"Holder","fields":[{"name":"o","type":"Order"}]}"#,
        "references": [{"name": "Order", "subject": "x-value", "version": 1}]
    })
    .to_string();
    for path in [
        "/subjects/h-value/versions",
        "/subjects/x-value",
        "/compatibility/subjects/x-value/versions",
    ] {
        let (status, _, body) = http(
            addr,
            "POST",
            path,
            &[JSON_TYPE, ("Authorization", "Bearer tok-123")],
            &with_reference,
        );
        assert_eq!((status, error_code(&body)), (422, 42201), "{path}: {body}");
        assert!(body.contains("references"), "{body}");
    }
    // References in any other shape, and a schemaType that is not a string, are refused too;
    // an empty list and a null are what clients without references send.
    for (extra, refused) in [
        (
            json!({"references": {"name": "Order", "subject": "x-value"}}),
            true,
        ),
        (json!({"references": "Order"}), true),
        (json!({"references": 1}), true),
        (json!({"schemaType": 1}), true),
        (json!({"schemaType": ["AVRO"]}), true),
        (json!({"schemaType": {"type": "AVRO"}}), true),
        (json!({"references": [], "schemaType": "avro"}), false),
        (json!({"references": null, "schemaType": null}), false),
    ] {
        let mut request = extra.clone();
        request["schema"] = json!(V1);
        let (status, _, body) = http(
            addr,
            "POST",
            "/subjects/y-value/versions",
            &[JSON_TYPE, ("Authorization", "Bearer tok-123")],
            &request.to_string(),
        );
        if refused {
            assert_eq!((status, error_code(&body)), (422, 42201), "{extra}: {body}");
        } else {
            assert_eq!(status, 200, "{extra}: {body}");
        }
    }
    let (_, _, body) = http(addr, "GET", "/subjects/y-value/versions", &[], "");
    assert_eq!(body, "[1]", "only the plain registrations stored a version");
    // Subjects the tables cannot hold, or with control characters, are refused for writes.
    let long = format!("/subjects/{}/versions", "s".repeat(300));
    for path in [long.as_str(), "/subjects/a%01b/versions"] {
        let (status, _, body) = http(
            addr,
            "POST",
            path,
            &[JSON_TYPE, ("Authorization", "Bearer tok-123")],
            &schema_body(V1),
        );
        assert_eq!((status, error_code(&body)), (422, 42208), "{body}");
    }
    let (status, _, body) = http(addr, "GET", "/nowhere", &[], "");
    assert_eq!(
        (status, serde_json::from_str::<Json>(&body).expect("json")),
        (
            404,
            json!({"error_code": 404, "message": "HTTP 404 Not Found"})
        )
    );
    let (status, head, body) = http(addr, "PATCH", "/subjects", &[], "");
    assert_eq!((status, error_code(&body)), (405, 405), "{body}");
    assert!(head.contains("allow:"), "{head}");
    // Booleans as Confluent's server reads them: `True` is true, garbage is false.
    for (query, verbose) in [("True", true), ("TRUE", true), ("yes", false), ("", false)] {
        let (status, _, body) = http(
            addr,
            "POST",
            &format!("/compatibility/subjects/x-value/versions?verbose={query}"),
            &[JSON_TYPE],
            &schema_body(V1),
        );
        assert_eq!(status, 200, "{query}: {body}");
        let body: Json = serde_json::from_str(&body).expect("json");
        assert_eq!(body.get("messages").is_some(), verbose, "{query}: {body}");
    }
}

#[test]
fn bodies_over_the_limit_are_413() {
    let config = ServerConfig {
        body_limit: 2048,
        ..ServerConfig::default()
    };
    let (addr, _rt) = start(true, &config);
    let big = schema_body(&format!(
        r#"{{"type":"string","doc":"{}"}}"#,
        "x".repeat(4096)
    ));
    let (status, _, body) = http(
        addr,
        "POST",
        "/subjects/x-value/versions",
        &[JSON_TYPE, ("Authorization", "Bearer tok-123")],
        &big,
    );
    assert_eq!((status, error_code(&body)), (413, 413), "{body}");
}

#[test]
fn slow_clients_are_cut_off_and_do_not_block_others() {
    let config = ServerConfig {
        header_timeout: Duration::from_millis(300),
        body_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_secs(2),
        ..ServerConfig::default()
    };
    let (addr, _rt) = start(true, &config);
    // Slowloris: headers that never end.
    let threads: Vec<_> = (0..20)
        .map(|_| {
            std::thread::spawn(move || {
                stall(addr, "POST /subjects/x/versions HTTP/1.1\r\nHost: x\r\n")
            })
        })
        .collect();
    // Meanwhile a normal client is served.
    let (status, _, _) = http(addr, "GET", "/subjects", &[], "");
    assert_eq!(status, 200);
    for t in threads {
        t.join().expect("stalled client");
    }
    // A body that stops half-way: refused in Confluent's shape (the body read fails: 400;
    // or the whole request times out: 408), or the connection closed.
    let answer = stall(
        addr,
        "POST /subjects/x/versions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"schema\":",
    );
    if !answer.is_empty() {
        let (status, _, body) = parse_response(&answer);
        assert!(matches!(status, 400 | 408), "{answer}");
        assert_eq!(error_code(&body), u64::from(status), "{answer}");
    }
    // An idle kept-alive connection is closed too.
    let answer = stall(addr, "GET /subjects HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn connections_over_the_limit_are_closed_at_once() {
    let config = ServerConfig {
        max_connections: 2,
        header_timeout: Duration::from_secs(1),
        ..ServerConfig::default()
    };
    let (addr, _rt) = start(true, &config);
    let held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let s = TcpStream::connect(addr).expect("connect");
            s.set_read_timeout(Some(GUARD)).expect("timeout");
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let answer = stall(addr, "GET /subjects HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(answer.is_empty(), "a third connection was served: {answer}");
    drop(held);
    // Once the held ones are gone (or timed out), clients are served again.
    let mut status = 0;
    for _ in 0..50 {
        status = http(addr, "GET", "/subjects", &[], "").0;
        if status == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(status, 200);
}

/// A self-signed certificate for `localhost` and 127.0.0.1, made with the openssl CLI.
fn certificate(dir: &std::path::Path) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output();
    match made {
        Ok(out) if out.status.success() => Some((cert, key)),
        other if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true and openssl cannot make a test certificate: {other:?}")
        }
        other => {
            eprintln!("skipping: openssl cannot make a test certificate: {other:?}");
            None
        }
    }
}

#[test]
fn https_serves_with_the_configured_certificate() {
    let dir = tempfile::tempdir().expect("dir");
    let Some((cert, key)) = certificate(dir.path()) else {
        return;
    };
    let config = ServerConfig {
        tls_cert: Some(cert.clone()),
        tls_key: Some(key),
        ..ServerConfig::default()
    };
    let (addr, runtime) = start(true, &config);
    let body = runtime.block_on(async {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio_rustls::rustls;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(&cert).expect("cert"))
            .expect("root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
        let mut stream = connector.connect(name, tcp).await.expect("TLS handshake");
        stream
            .write_all(
                b"GET /schemas/types HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            )
            .await
            .expect("write");
        let mut response = Vec::new();
        tokio::time::timeout(GUARD, stream.read_to_end(&mut response))
            .await
            .expect("hang guard")
            .ok();
        String::from_utf8_lossy(&response).into_owned()
    });
    let (status, _, body) = parse_response(&body);
    assert_eq!((status, body.as_str()), (200, r#"["AVRO"]"#));
    // Plain HTTP to the HTTPS port gets no answer.
    let answer = stall(addr, "GET /subjects HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");
    // A key that does not match, or a missing file, fails start-up with the key named.
    let missing = ServerConfig {
        tls_cert: Some(cert),
        tls_key: Some(dir.path().join("nope.pem")),
        ..ServerConfig::default()
    };
    let err = Server::new(&missing, "registry.server").expect_err("missing key");
    assert!(err.to_string().contains("registry.server.tls_key"), "{err}");
}

#[test]
fn metrics_can_require_a_credential_while_health_stays_open() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = Server::new(&ServerConfig::default(), "http.server").expect("server");
    runtime.spawn(async move {
        let metrics = Arc::new(outbox_relay::metrics::Metrics::new());
        outbox_relay::http::serve(
            listener,
            metrics,
            Duration::from_secs(60),
            &server,
            Some(auth()),
            std::future::pending(),
        )
        .await
    });
    assert_eq!(http(addr, "GET", "/metrics", &[], "").0, 401);
    assert_eq!(
        http(
            addr,
            "GET",
            "/metrics",
            &[("Authorization", "Bearer nope")],
            ""
        )
        .0,
        401
    );
    let (status, _, body) = http(
        addr,
        "GET",
        "/metrics",
        &[("Authorization", "Bearer tok-123")],
        "",
    );
    assert_eq!(status, 200);
    assert!(body.contains("outbox"), "{body}");
    assert_eq!(http(addr, "GET", "/healthz", &[], "").0, 200);
}

#[test]
fn writes_without_credentials_or_through_a_remote_registry_are_refused_by_config() {
    use outbox_relay::config::RelayConfig;
    let base = "database_url = \"sqlite::memory:\"\n[registry]\nlisten = \"127.0.0.1:0\"\n";
    let config = RelayConfig::from_toml(base).expect("toml");
    config.validate().expect("read-only by default");
    assert!(!config.registry_writable());
    let open = RelayConfig::from_toml(&format!("{base}read_only = false\n")).expect("toml");
    let err = open.validate().expect_err("writes without a credential");
    assert!(err.to_string().contains("registry.read_only"), "{err}");
    let authed = RelayConfig::from_toml(&format!(
        "{base}read_only = false\n[registry.auth]\nbearer_token = \"t\"\n"
    ))
    .expect("toml");
    authed.validate().expect("writes with a credential");
    assert!(authed.registry_writable());
    let remote = RelayConfig::from_toml(&format!(
        "{base}read_only = false\nurl = \"http://elsewhere:8081\"\n[registry.auth]\nbearer_token = \"t\"\n"
    ))
    .expect("toml");
    assert!(!remote.registry_writable(), "never forwards writes");
    let mut from_env = RelayConfig::from_toml(&format!("{base}read_only = false\n")).expect("toml");
    from_env
        .apply_env(|name| (name == "OUTBOX_REGISTRY_AUTH_BEARER_TOKEN").then(|| "t".to_owned()));
    from_env
        .validate()
        .expect("credential from the environment");
    assert!(
        !format!("{from_env:?}").contains("\"t\""),
        "no secret in Debug"
    );
}

#[test]
fn a_failing_store_answers_a_generic_500() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("r.db").display());
    // A real database whose schema tables are gone: every read fails with SQL detail.
    let (listener, store) = runtime.block_on(async {
        let pool = sqlx::SqlitePool::connect(&url).await.expect("sqlite");
        let names = outbox_core::table::TableNames::default();
        let stmts = Arc::new(outbox_core::table::Statements::new(
            outbox_core::table::Dialect::Sqlite,
            &names,
        ));
        outbox_sqlx::migrate(&pool, &stmts).await.expect("migrate");
        sqlx::query("DROP TABLE \"outbox_schemas\"")
            .execute(&pool)
            .await
            .expect("drop");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        (listener, outbox_sqlx::SqlxSchemaStore::new(pool, stmts))
    });
    let addr = listener.local_addr().expect("addr");
    let server = Server::new(&ServerConfig::default(), "registry.server").expect("server");
    runtime.spawn(async move {
        outbox_relay::registry_api::serve(
            listener,
            Registry::new(store),
            ApiOptions::default(),
            &server,
            std::future::pending(),
        )
        .await
    });
    for (method, path, body) in [
        ("GET", "/subjects", String::new()),
        ("GET", "/subjects/x/versions/latest", String::new()),
        ("POST", "/subjects/x", schema_body(V1)),
    ] {
        let (status, _, reply) = http(addr, method, path, &[JSON_TYPE], &body);
        assert_eq!(
            (status, serde_json::from_str::<Json>(&reply).expect("json")),
            (
                500,
                json!({"error_code": 50001, "message": "Error in the backend data store"})
            ),
            "{method} {path}"
        );
    }
}

#[test]
fn a_connection_is_closed_at_its_maximum_age_however_busy() {
    let config = ServerConfig {
        max_connection_age: Duration::from_secs(1),
        ..ServerConfig::default()
    };
    let (addr, _rt) = start(true, &config);
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(GUARD)).expect("timeout");
    let started = std::time::Instant::now();
    let mut answered = 0;
    // A client that keeps its connection busy (never idle long enough for the header
    // timeout), as one that reads its answers slowly would.
    loop {
        use std::io::{Read, Write};
        let sent = stream.write_all(b"GET /schemas/types HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut buf = [0u8; 4096];
        match (sent, stream.read(&mut buf)) {
            (Ok(()), Ok(n)) if n > 0 => answered += 1,
            _ => break,
        }
        assert!(started.elapsed() < GUARD, "the connection was never closed");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(answered >= 2, "served before closing: {answered}");
}

#[test]
fn shutdown_waits_a_bounded_time_for_requests_in_progress() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    // A request in progress would hold the server for a minute without the grace period.
    let config = ServerConfig {
        body_timeout: Duration::from_secs(60),
        request_timeout: Duration::from_secs(60),
        shutdown_grace: Duration::from_millis(200),
        ..ServerConfig::default()
    };
    let server = Server::new(&config, "registry.server").expect("server");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = runtime.spawn(async move {
        let registry = Registry::new(MemorySchemaStore::default());
        outbox_relay::registry_api::serve(
            listener,
            registry,
            ApiOptions::default(),
            &server,
            async move {
                let _ = stopped.await;
            },
        )
        .await
    });
    let mut stalled = TcpStream::connect(addr).expect("connect");
    {
        use std::io::Write;
        stalled
            .write_all(b"POST /subjects/x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
            .expect("write");
    }
    std::thread::sleep(Duration::from_millis(200));
    stop.send(()).expect("stop");
    let ended = runtime.block_on(async { tokio::time::timeout(GUARD, serving).await });
    assert!(
        matches!(ended, Ok(Ok(Ok(())))),
        "serve did not end after its grace period: {ended:?}"
    );
    drop(stalled);
}

/// Subjects no write accepts (a NUL, which PostgreSQL text cannot hold; longer than the
/// columns) are answered as absent on every route, never as a 500 from the database.
#[test]
fn impossible_subjects_are_not_found_not_a_database_error() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let Some((pool, _)) = runtime.block_on(common::postgres()) else {
        return;
    };
    let (listener, store) = runtime.block_on(async {
        let stmts = Arc::new(outbox_core::table::Statements::new(
            outbox_core::table::Dialect::Postgres,
            &common::fresh_names(),
        ));
        outbox_sqlx::migrate(&pool, &stmts).await.expect("migrate");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        (listener, outbox_sqlx::SqlxSchemaStore::new(pool, stmts))
    });
    let addr = listener.local_addr().expect("addr");
    let server = Server::new(&ServerConfig::default(), "registry.server").expect("server");
    runtime.spawn(async move {
        outbox_relay::registry_api::serve(
            listener,
            Registry::new(store),
            ApiOptions {
                writable: true,
                auth: auth(),
            },
            &server,
            std::future::pending(),
        )
        .await
    });
    let long = "s".repeat(300);
    for subject in ["%00", "a%00b", long.as_str()] {
        for (method, path, body, expected) in [
            (
                "GET",
                format!("/subjects/{subject}/versions"),
                String::new(),
                (404, 40401),
            ),
            (
                "GET",
                format!("/subjects/{subject}/versions/latest"),
                String::new(),
                (404, 40401),
            ),
            (
                "GET",
                format!("/subjects/{subject}/versions/1/schema"),
                String::new(),
                (404, 40401),
            ),
            (
                "POST",
                format!("/subjects/{subject}"),
                schema_body(V1),
                (404, 40401),
            ),
            (
                "POST",
                format!("/compatibility/subjects/{subject}/versions/latest"),
                schema_body(V1),
                (404, 40401),
            ),
            (
                "GET",
                format!("/config/{subject}"),
                String::new(),
                (404, 40408),
            ),
            (
                "DELETE",
                format!("/subjects/{subject}"),
                String::new(),
                (404, 40401),
            ),
            (
                "DELETE",
                format!("/subjects/{subject}/versions/1"),
                String::new(),
                (404, 40401),
            ),
            (
                "DELETE",
                format!("/config/{subject}"),
                String::new(),
                (404, 40408),
            ),
        ] {
            let (status, _, reply) = http(
                addr,
                method,
                &path,
                &[JSON_TYPE, ("Authorization", "Bearer tok-123")],
                &body,
            );
            assert_eq!(
                (status, error_code(&reply)),
                expected,
                "{method} {path}: {reply}"
            );
        }
        // A compatibility test against a subject with no versions is compatible, as for any
        // absent subject.
        let (status, _, reply) = http(
            addr,
            "POST",
            &format!("/compatibility/subjects/{subject}/versions"),
            &[JSON_TYPE],
            &schema_body(V1),
        );
        assert_eq!(status, 200, "{subject}: {reply}");
    }
}

/// A client that sends its request and then shuts its side of the connection (`nc -N`,
/// some HTTP/1.0 tools) still gets the answer.
#[test]
fn a_half_closed_connection_gets_its_answer() {
    use std::io::{Read as _, Write as _};
    let (addr, _rt) = start(false, &ServerConfig::default());
    for request in [
        "GET /schemas/types HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /schemas/types HTTP/1.0\r\n\r\n",
        // Answered after a wait (a store and a blocking thread): the server sees the end of
        // the stream while the answer is being prepared.
        "GET /subjects HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /schemas/ids/1 HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(GUARD)).expect("timeout");
        stream.write_all(request.as_bytes()).expect("write");
        stream
            .shutdown(std::net::Shutdown::Write)
            .expect("half-close");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        let (status, _, body) = parse_response(&answer);
        assert!(
            matches!((status, body.as_str()), (200, r#"["AVRO"]"# | "[]"))
                || error_code(&body) == 40403,
            "{request:?}: {answer:?}"
        );
    }
}

/// A registration whose request times out (408) while its schema is still being parsed is
/// not written afterwards, and one whose body never completes never starts.
#[test]
fn a_timed_out_registration_is_not_written_behind_the_408() {
    // An enum big enough that parsing it takes a while in any build.
    let symbols: Vec<String> = (0..120_000).map(|i| format!("S{i:07}")).collect();
    let big = schema_body(&json!({"type": "enum", "name": "Big", "symbols": symbols}).to_string());
    let headers = [JSON_TYPE, ("Authorization", "Bearer tok-123")];
    // How long the registration takes here, with time to spare.
    let (patient, _rt) = start(true, &ServerConfig::default());
    let started = std::time::Instant::now();
    let (status, _, body) = http(
        patient,
        "POST",
        "/subjects/big-value/versions",
        &headers,
        &big,
    );
    assert_eq!(status, 200, "{body}");
    let takes = started.elapsed();
    let config = ServerConfig {
        request_timeout: (takes / 4).max(Duration::from_millis(20)),
        body_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let (addr, _rt) = start(true, &config);
    let (status, _, body) = http(addr, "POST", "/subjects/big-value/versions", &headers, &big);
    assert_eq!((status, error_code(&body)), (408, 408), "{body}");
    // A body that never completes: 408, and the handler never runs.
    let answer = stall(
        addr,
        &format!(
            "POST /subjects/small-value/versions HTTP/1.1\r\nHost: x\r\n\
             Content-Type: application/json\r\nAuthorization: Bearer tok-123\r\n\
             Content-Length: {}\r\n\r\n{}",
            schema_body(V1).len() + 10,
            schema_body(V1)
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // Long after the timed-out parse would have finished, nothing was registered.
    std::thread::sleep(takes * 2 + Duration::from_secs(1));
    let (status, _, body) = http(addr, "GET", "/subjects", &[], "");
    assert_eq!((status, body.as_str()), (200, "[]"));
    // The parse slots are free again: a small registration goes through at once.
    let (status, _, body) = http(
        addr,
        "POST",
        "/subjects/small-value/versions",
        &headers,
        &schema_body(V1),
    );
    assert_eq!((status, body.as_str()), (200, r#"{"id":1}"#));
}
