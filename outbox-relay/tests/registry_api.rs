//! The schema registry REST API as Confluent clients use it: every endpoint's success and
//! error codes, malformed bodies that change nothing, read-only mode, concurrent
//! registrations, and our remote-registry client (and the writers using it) against it.

use outbox_core::compat::CompatibilityMode;
use outbox_core::encode::EventCodec;
use outbox_core::registry::{
    Decoder, MemorySchemaStore, Registry, RemoteRegistryConfig, RemoteSchemaStore, conformance,
};
use outbox_core::{Error, Schema};
use outbox_relay::auth::AuthConfig;
use outbox_relay::registry_api::ApiOptions;
use serde_json::{Value as Json, json};

const V1: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"}]}"#;
const V2: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"note","type":["null","string"],"default":null}]}"#;
const BREAKING: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"long"}]}"#;

/// The bearer token the test servers accept for writes.
const TOKEN: &str = "test-token";

/// A server on a free port over an in-memory registry; lives as long as the runtime. Writes
/// (unless `read_only`) need [`TOKEN`].
fn start(read_only: bool) -> (String, tokio::runtime::Runtime) {
    start_with(read_only, &outbox_relay::server::ServerConfig::default())
}

fn start_with(
    read_only: bool,
    server: &outbox_relay::server::ServerConfig,
) -> (String, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let server = outbox_relay::server::Server::new(server, "registry.server").expect("server");
    let scheme = if server.is_tls() { "https" } else { "http" };
    let url = format!("{scheme}://{}", listener.local_addr().expect("addr"));
    let registry = Registry::new(MemorySchemaStore::default());
    let options = ApiOptions {
        writable: !read_only,
        auth: AuthConfig {
            bearer_token: Some(TOKEN.to_owned()),
            ..AuthConfig::default()
        },
    };
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
    (url, runtime)
}

/// The remote-client configuration for a test server, with its token.
fn remote_config(url: &str) -> RemoteRegistryConfig {
    let mut config = RemoteRegistryConfig::new(url.to_owned());
    config.bearer_token = Some(TOKEN.to_owned());
    config
}

struct Client {
    url: String,
    agent: ureq::Agent,
    authorization: Option<String>,
    content_type: &'static str,
}

impl Client {
    /// A client presenting the servers' token.
    fn new(url: &str) -> Self {
        let mut client = Self::anonymous(url);
        client.authorization = Some(format!("Bearer {TOKEN}"));
        client
    }

    /// A client without credentials.
    fn anonymous(url: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Self {
            url: url.to_owned(),
            agent,
            authorization: None,
            content_type: "application/vnd.schemaregistry.v1+json",
        }
    }

    /// (status, error_code or 0, body)
    fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, u64, Json) {
        let url = format!("{}{path}", self.url);
        let auth = self.authorization.as_deref().unwrap_or("");
        let with_auth = |r: ureq::RequestBuilder<ureq::typestate::WithoutBody>| match auth {
            "" => r,
            a => r.header("Authorization", a),
        };
        let with_auth_body = |r: ureq::RequestBuilder<ureq::typestate::WithBody>| {
            let r = r.header("Content-Type", self.content_type);
            match auth {
                "" => r,
                a => r.header("Authorization", a),
            }
        };
        let response = match method {
            "GET" => with_auth(self.agent.get(&url)).call(),
            "DELETE" => with_auth(self.agent.delete(&url)).call(),
            "PUT" => with_auth_body(self.agent.put(&url)).send(body.unwrap_or("")),
            _ => with_auth_body(self.agent.post(&url)).send(body.unwrap_or("")),
        };
        let mut response = response.expect("HTTP");
        let status = response.status().as_u16();
        if status < 300 {
            assert_eq!(
                response
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok()),
                Some("application/vnd.schemaregistry.v1+json"),
                "{method} {path}"
            );
        }
        let text = response.body_mut().read_to_string().expect("body");
        let json: Json = serde_json::from_str(&text).unwrap_or(Json::String(text));
        let code = json.get("error_code").and_then(Json::as_u64).unwrap_or(0);
        (status, code, json)
    }
}

fn schema_body(schema: &str) -> String {
    json!({ "schema": schema }).to_string()
}

#[test]
fn every_endpoint_answers_like_confluent() {
    let (url, _runtime) = start(false);
    let c = Client::new(&url);
    assert_eq!(c.call("GET", "/subjects", None), (200, 0, json!([])));
    let (status, _, body) = c.call(
        "POST",
        "/subjects/orders-value/versions",
        Some(&schema_body(V1)),
    );
    assert_eq!((status, body), (200, json!({"id": 1})));
    assert_eq!(
        c.call(
            "POST",
            "/subjects/orders-value/versions",
            Some(&schema_body(V1))
        )
        .2,
        json!({"id": 1}),
        "idempotent"
    );
    assert_eq!(
        c.call(
            "POST",
            "/subjects/other-value/versions",
            Some(&schema_body(V1))
        )
        .2,
        json!({"id": 1}),
        "global id"
    );
    assert_eq!(
        c.call("GET", "/subjects", None).2,
        json!(["orders-value", "other-value"])
    );
    assert_eq!(
        c.call("GET", "/subjects/orders-value/versions", None).2,
        json!([1])
    );
    let latest = c
        .call("GET", "/subjects/orders-value/versions/latest", None)
        .2;
    assert_eq!(
        (
            latest["subject"].clone(),
            latest["version"].clone(),
            latest["id"].clone()
        ),
        (json!("orders-value"), json!(1), json!(1))
    );
    assert_eq!(
        Schema::parse_str(latest["schema"].as_str().expect("schema")).expect("valid"),
        Schema::parse_str(V1).expect("v1")
    );
    assert_eq!(
        c.call("GET", "/subjects/orders-value/versions/1/schema", None)
            .2["name"],
        "Order"
    );
    assert_eq!(c.call("GET", "/subjects/nope/versions", None).0, 404);
    assert_eq!(c.call("GET", "/subjects/nope/versions", None).1, 40401);
    assert_eq!(
        c.call("GET", "/subjects/orders-value/versions/9", None).1,
        40402
    );
    assert_eq!(
        c.call("GET", "/subjects/orders-value/versions/abc", None).1,
        42202
    );
    assert_eq!(
        c.call("GET", "/subjects/orders-value/versions/0", None).1,
        42202
    );

    let found = c
        .call("POST", "/subjects/orders-value", Some(&schema_body(V1)))
        .2;
    assert_eq!(
        (found["version"].clone(), found["id"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(
        c.call("POST", "/subjects/orders-value", Some(&schema_body(V2)))
            .1,
        40403
    );
    assert_eq!(
        c.call("POST", "/subjects/nope", Some(&schema_body(V1))).1,
        40401
    );

    assert!(c.call("GET", "/schemas/ids/1", None).2["schema"].is_string());
    assert_eq!(
        c.call("GET", "/schemas/ids/1/schema", None).2["name"],
        "Order"
    );
    assert_eq!(
        c.call("GET", "/schemas/ids/1/versions", None).2,
        json!([{"subject": "orders-value", "version": 1}, {"subject": "other-value", "version": 1}])
    );
    assert_eq!(
        c.call("GET", "/schemas/ids/99", None),
        (404, 40403, c.call("GET", "/schemas/ids/99", None).2)
    );

    let verdict = c
        .call(
            "POST",
            "/compatibility/subjects/orders-value/versions/latest?verbose=true",
            Some(&schema_body(BREAKING)),
        )
        .2;
    assert_eq!(verdict["is_compatible"], false);
    assert!(
        verdict["messages"]
            .as_array()
            .is_some_and(|m| !m.is_empty()),
        "{verdict}"
    );
    assert!(
        verdict["messages"][0]
            .as_str()
            .unwrap_or_default()
            .contains("TYPE_MISMATCH"),
        "{verdict}"
    );
    assert_eq!(
        c.call(
            "POST",
            "/compatibility/subjects/orders-value/versions",
            Some(&schema_body(V2))
        )
        .2,
        json!({"is_compatible": true})
    );
    assert_eq!(
        c.call(
            "POST",
            "/compatibility/subjects/orders-value/versions/7",
            Some(&schema_body(V2))
        )
        .1,
        40402
    );

    let (status, code, _) = c.call(
        "POST",
        "/subjects/orders-value/versions",
        Some(&schema_body(BREAKING)),
    );
    assert_eq!(
        (status, code),
        (409, 409),
        "Confluent's code for an incompatible schema"
    );
    assert_eq!(
        c.call("POST", "/subjects/orders-value/versions", Some("{not json"))
            .0,
        400
    );
    assert_eq!(
        c.call(
            "POST",
            "/subjects/orders-value/versions",
            Some(&schema_body("{bad avro"))
        )
        .1,
        42201
    );
    assert_eq!(
        c.call(
            "POST",
            "/subjects/orders-value/versions",
            Some(r#"{"schema":"\"int\"","schemaType":"PROTOBUF"}"#)
        )
        .1,
        42201
    );
    assert_eq!(
        c.call(
            "POST",
            "/subjects/orders-value/versions",
            Some(r#"{"nothing":1}"#)
        )
        .1,
        42201
    );
    assert_eq!(
        c.call("GET", "/subjects/orders-value/versions", None).2,
        json!([1]),
        "refusals change nothing"
    );

    assert_eq!(
        c.call("GET", "/config", None).2,
        json!({"compatibilityLevel": "FULL_TRANSITIVE"})
    );
    assert_eq!(
        c.call("PUT", "/config", Some(r#"{"compatibility":"BACKWARD"}"#))
            .2,
        json!({"compatibility": "BACKWARD"})
    );
    assert_eq!(
        c.call("PUT", "/config", Some(r#"{"compatibility":"SIDEWAYS"}"#))
            .1,
        42203
    );
    assert_eq!(c.call("PUT", "/config", Some("nope")).0, 400);
    assert_eq!(
        c.call("GET", "/config", None).2,
        json!({"compatibilityLevel": "BACKWARD"}),
        "unchanged by the refusals"
    );
    assert_eq!(c.call("GET", "/config/orders-value", None).1, 40408);
    assert_eq!(
        c.call("GET", "/config/orders-value?defaultToGlobal=true", None)
            .2,
        json!({"compatibilityLevel": "BACKWARD"})
    );
    assert_eq!(
        c.call(
            "PUT",
            "/config/orders-value",
            Some(r#"{"compatibility":"none"}"#)
        )
        .2,
        json!({"compatibility": "NONE"})
    );
    assert_eq!(
        c.call(
            "POST",
            "/subjects/orders-value/versions",
            Some(&schema_body(BREAKING))
        )
        .2,
        json!({"id": 2}),
        "NONE accepts"
    );
    assert_eq!(
        c.call("DELETE", "/config/orders-value", None).2,
        json!({"compatibilityLevel": "NONE"})
    );
    assert_eq!(c.call("DELETE", "/config/orders-value", None).1, 40408);
    assert_eq!(
        c.call("DELETE", "/config", None).2,
        json!({"compatibilityLevel": "BACKWARD"})
    );
    assert_eq!(
        c.call("GET", "/config", None).2,
        json!({"compatibilityLevel": "FULL_TRANSITIVE"})
    );
}

#[test]
fn read_only_mode_refuses_changes_but_answers_known_schemas() {
    let (url, runtime) = start(true);
    let c = Client::new(&url);
    assert_eq!(
        c.call(
            "POST",
            "/subjects/orders-value/versions",
            Some(&schema_body(V1))
        )
        .1,
        42205
    );
    assert_eq!(
        c.call("PUT", "/config", Some(r#"{"compatibility":"NONE"}"#))
            .1,
        42205
    );
    assert_eq!(c.call("DELETE", "/config", None).1, 42205);
    assert_eq!(c.call("GET", "/subjects", None).2, json!([]));
    drop(runtime);
}

#[test]
fn concurrent_registrations_through_the_api_lose_nothing() {
    let (url, _runtime) = start(false);
    let c = Client::new(&url);
    c.call("PUT", "/config", Some(r#"{"compatibility":"NONE"}"#));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let url = url.clone();
            std::thread::spawn(move || {
                let c = Client::new(&url);
                (1..=6)
                    .map(|fields| {
                        // Threads register overlapping schemas: 12 distinct ones in all.
                        let schema = conformance::sample_schema("Concurrent", fields + (t % 2) * 6);
                        let body = schema_body(schema.canonical_json());
                        let (status, _, reply) =
                            c.call("POST", "/subjects/c-value/versions", Some(&body));
                        assert_eq!(status, 200, "{reply}");
                        reply["id"].as_u64().expect("id")
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut ids: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("thread"))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids, (1..=12).collect::<Vec<_>>(), "no duplicate ids");
    assert_eq!(
        c.call("GET", "/subjects/c-value/versions", None).2,
        json!((1..=12).collect::<Vec<_>>()),
        "no lost versions"
    );
}

/// Our remote-registry client against our server (which the tests above hold to the
/// engine): the conformance checks that apply to a registry that assigns versions itself,
/// a decoder, and a sqlx writer registering remotely.
#[test]
fn remote_client_and_writers_work_against_the_server() {
    let (url, runtime) = start(false);
    let remote = || RemoteSchemaStore::new(remote_config(&url));
    runtime.block_on(async {
        let store = remote();
        conformance::registration_is_idempotent(&store, "remote").await;
        conformance::versions_count_up_and_ids_are_global(&store, "remote").await;
        conformance::compatibility_settings_round_trip(&store, "remote").await;
        let registry = Registry::new(remote());
        registry
            .register("breaking-value", &Schema::parse_str(V1).expect("v1"))
            .await
            .expect("v1");
        let refused = registry
            .register("breaking-value", &Schema::parse_str(BREAKING).expect("v3"))
            .await;
        assert!(
            matches!(refused, Err(Error::IncompatibleSchema { .. })),
            "{refused:?}"
        );
        assert_eq!(
            registry
                .effective_mode("breaking-value")
                .await
                .expect("mode"),
            CompatibilityMode::FullTransitive
        );

        // A consumer decodes through the remote registry, resolving v2 data to its v1 schema.
        let v2 = Schema::parse_str(V2).expect("v2");
        let id = registry
            .register("decode-value", &v2)
            .await
            .expect("register")
            .id;
        #[derive(serde::Serialize)]
        struct OrderV2 {
            id: String,
            note: Option<String>,
        }
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct OrderV1 {
            id: String,
        }
        let bytes = EventCodec::new("decode-value", id, v2)
            .encode(&OrderV2 {
                id: "o-1".into(),
                note: Some("n".into()),
            })
            .expect("encode");
        let decoder = Decoder::new(Registry::new(remote()))
            .with_reader_schema(Schema::parse_str(V1).expect("v1"));
        let read: OrderV1 = decoder.decode(&bytes).await.expect("decode");
        assert_eq!(read, OrderV1 { id: "o-1".into() });
    });

    // A sqlx writer registering with the remote registry: the row carries the server's id.
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("dir");
        let pool = sqlx::SqlitePool::connect(&format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("o.db").display()
        ))
        .await
        .expect("sqlite");
        let outbox = outbox_sqlx::Outbox::builder(pool.clone())
            .schema_registry(remote_config(&url))
            .register::<Placed>()
            .build()
            .await
            .expect("outbox");
        let mut tx = pool.begin().await.expect("begin");
        outbox
            .publish(
                &mut *tx,
                &Placed {
                    order_id: "o-9".into(),
                },
            )
            .await
            .expect("publish");
        tx.commit().await.expect("commit");
        let row = outbox_core::relay::RelayStoreExt::read_batch(&outbox.relay_store(), 1)
            .await
            .expect("claim");
        let server_id = Registry::new(remote())
            .version("orders-value", None)
            .await
            .expect("registered remotely")
            .id;
        assert_eq!(row[0].schema_id, Some(server_id));
        let subjects = outbox
            .registry()
            .subjects()
            .await
            .expect("subjects via the writer");
        assert!(
            subjects.contains(&"orders-value".to_owned()),
            "{subjects:?}"
        );
    });
}

#[derive(serde::Serialize, outbox_core::avro::AvroSchema)]
struct Placed {
    order_id: String,
}

impl outbox_core::Event for Placed {
    const TOPIC: &'static str = "orders";
}

/// The relay's `schema` commands use a remote registry when `[registry] url` is set.
#[test]
fn relay_schema_commands_use_a_remote_registry() {
    let (url, _runtime) = start(false);
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("relay.toml");
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("o.db").display());
    std::fs::write(
        &config,
        format!(
            "database_url = \"{db}\"\n[registry]\nurl = \"{url}\"\nbearer_token = \"{TOKEN}\"\n"
        ),
    )
    .expect("config");
    let schema = dir.path().join("v1.avsc");
    std::fs::write(&schema, V1).expect("schema");
    let relay = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .expect("runs")
    };
    let out = relay(&[
        "schema",
        "register",
        "--subject",
        "remote-cli-value",
        &schema.display().to_string(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = Client::new(&url);
    assert_eq!(
        c.call("GET", "/subjects/remote-cli-value/versions", None).2,
        json!([1]),
        "registered remotely"
    );
    let listed = relay(&["schema", "list"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("remote-cli-value"));
}
