//! The registry enforces the schema design rules when configured to (`[registry] lint =
//! "deny"`): over the Confluent REST API and through `outbox-relay schema register`.

use std::process::{Command, Output};

use outbox_core::lint::{LintConfig, LintLevel};
use outbox_core::registry::{MemorySchemaStore, Registry};

const UNDOCUMENTED: &str =
    r#"{"type":"record","name":"Order","fields":[{"name":"quantity","type":"int"}]}"#;
const DOCUMENTED: &str = r#"{"type":"record","name":"Order","doc":"An order","fields":[
    {"name":"quantity","type":"int","doc":"How many"}]}"#;

fn body(schema: &str) -> String {
    serde_json::json!({ "schema": schema }).to_string()
}

#[test]
fn the_api_refuses_schemas_breaking_the_rules_at_deny() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let registry = Registry::new(MemorySchemaStore::default())
        .with_lint(LintLevel::Deny, LintConfig::default());
    // Writes enabled, with the credential the requests below present.
    let options = outbox_relay::registry_api::ApiOptions {
        writable: true,
        auth: outbox_relay::auth::AuthConfig {
            bearer_token: Some("lint-token".to_owned()),
            ..Default::default()
        },
    };
    let server = outbox_relay::server::Server::new(
        &outbox_relay::server::ServerConfig::default(),
        "registry.server",
    )
    .expect("server");
    runtime.spawn(async move {
        outbox_relay::registry_api::serve(
            listener,
            registry,
            options,
            &server,
            std::future::pending(),
        )
        .await
    });
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let post = |schema: &str| {
        let mut response = agent
            .post(&format!("{url}/subjects/orders-value/versions"))
            .header("Content-Type", "application/vnd.schemaregistry.v1+json")
            .header("Authorization", "Bearer lint-token")
            .send(body(schema))
            .expect("HTTP");
        let status = response.status().as_u16();
        let json: serde_json::Value = response.body_mut().read_json().expect("JSON body");
        (status, json)
    };
    let (status, json) = post(UNDOCUMENTED);
    assert_eq!(status, 422, "{json}");
    assert_eq!(json["error_code"], 42201);
    let message = json["message"].as_str().unwrap_or_default();
    assert!(message.contains("doc-missing at /fields/0"), "{message}");
    let (status, json) = post(DOCUMENTED);
    assert_eq!((status, json["id"].as_u64()), (200, Some(1)), "{json}");
}

fn relay(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("OUTBOX_DATABASE_URL")
        .env_remove("OUTBOX_CONFIG")
        .output()
        .expect("outbox-relay runs")
}

#[test]
fn schema_register_follows_the_configured_lint_level_and_rules() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("o.db").display());
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    };
    let undocumented = write("v1.avsc", UNDOCUMENTED);
    let rules = write(
        "lint.toml",
        "[subjects.\"lenient-value\"]\nrules = { doc-missing = \"off\" }\n",
    );
    let config = write(
        "relay.toml",
        &format!("[registry]\nlint = \"deny\"\nlint_config = {:?}\n", rules),
    );
    let register = |subject: &str| {
        relay(&[
            "--config",
            &config,
            "--database-url",
            &db,
            "schema",
            "register",
            "--subject",
            subject,
            &undocumented,
        ])
    };
    let refused = register("orders-value");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("breaks the schema design rules") && stderr.contains("doc-missing"));
    let lenient = register("lenient-value");
    assert!(
        lenient.status.success(),
        "{}",
        String::from_utf8_lossy(&lenient.stderr)
    );

    // At warn, the schema registers and each violation is logged.
    let warn = write("warn.toml", "[registry]\nlint = \"warn\"\n");
    let out = relay(&[
        "--config",
        &warn,
        "--database-url",
        &db,
        "schema",
        "register",
        "--subject",
        "warned-value",
        &undocumented,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("schema design rule broken") && stderr.contains("doc-missing"),
        "{stderr}"
    );

    let bad = write("bad.toml", "[registry]\nlint = \"loud\"\n");
    let out = relay(&[
        "--config",
        &bad,
        "--database-url",
        &db,
        "schema",
        "register",
        "--subject",
        "x-value",
        &undocumented,
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
