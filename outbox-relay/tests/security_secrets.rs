//! Secrets in the relay's input and output: the remote registry's credentials and CA, log
//! formats, input errors, trace logs and flags never show a secret.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use base64::Engine as _;
use common::Tls;
use common::isolated::{output, relay_with_env, stderr};

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
            base64::engine::general_purpose::STANDARD.encode(b"outbox:registry-Secret-77")
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
