//! A diesel outbox registering with a remote registry (the relay's served registry API): its
//! blocking `build` works from a plain thread and from inside `tokio::task::spawn_blocking` on a
//! multi-thread runtime (no nested-runtime panic, no hang), and the rows carry the ids the
//! remote registry gave.

use std::time::Duration;

use diesel::{Connection, RunQueryDsl, SqliteConnection};
use outbox_core::Event;
use outbox_core::avro::AvroSchema;
use outbox_core::registry::{MemorySchemaStore, Registry, RemoteRegistryConfig, RemoteSchemaStore};
use outbox_diesel::sqlite::SqliteOutbox;
use outbox_relay::auth::AuthConfig;
use outbox_relay::registry_api::ApiOptions;

/// The bearer token the test registry accepts for writes.
const TOKEN: &str = "diesel-token";

#[derive(serde::Serialize, AvroSchema)]
#[avro(namespace = "com.acme.orders")]
struct Placed {
    order_id: String,
}

impl Event for Placed {
    const TOPIC: &'static str = "placed";
}

#[derive(serde::Serialize, AvroSchema)]
#[avro(namespace = "com.acme.orders")]
struct Shipped {
    order_id: String,
    carrier: String,
}

impl Event for Shipped {
    const TOPIC: &'static str = "shipped";
}

#[derive(diesel::QueryableByName)]
struct SchemaIdRow {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Integer>)]
    schema_id: Option<i32>,
}

/// The relay's registry API over an in-memory registry, on `runtime`; its URL.
fn serve_registry(runtime: &tokio::runtime::Runtime) -> String {
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let server = outbox_relay::server::Server::new(
        &outbox_relay::server::ServerConfig::default(),
        "registry.server",
    )
    .expect("server");
    let options = ApiOptions {
        writable: true,
        auth: AuthConfig {
            bearer_token: Some(TOKEN.to_owned()),
            ..AuthConfig::default()
        },
    };
    let registry = Registry::new(MemorySchemaStore::default());
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
    url
}

fn remote(url: &str) -> RemoteRegistryConfig {
    let mut config = RemoteRegistryConfig::new(url.to_owned());
    config.bearer_token = Some(TOKEN.to_owned());
    config
}

/// Builds a diesel outbox for `E` against the remote registry on a fresh SQLite file,
/// publishes one event, and returns the row's schema id.
fn build_and_publish<E: Event + 'static>(url: &str, event: &E) -> Option<i32> {
    let dir = tempfile::tempdir().expect("dir");
    let mut conn = SqliteConnection::establish(&dir.path().join("o.db").display().to_string())
        .expect("sqlite");
    let outbox = SqliteOutbox::builder()
        .schema_registry(remote(url))
        .register::<E>()
        .build(&mut conn)
        .expect("build against the remote registry");
    conn.transaction(|conn| {
        outbox.publish(conn, event)?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    })
    .expect("publish");
    let rows: Vec<SchemaIdRow> = diesel::sql_query("select schema_id from outbox_events")
        .load(&mut conn)
        .expect("rows");
    assert_eq!(rows.len(), 1, "one row");
    rows[0].schema_id
}

/// The id the remote registry holds for the latest version of `subject`.
fn remote_id(runtime: &tokio::runtime::Runtime, url: &str, subject: &str) -> i32 {
    let registry = Registry::new(RemoteSchemaStore::new(remote(url)));
    let found = runtime
        .block_on(registry.version(subject, None))
        .expect("registered remotely");
    found.id.to_column().expect("small id")
}

#[test]
fn diesel_builds_against_a_remote_registry_from_a_thread_and_from_spawn_blocking() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let url = serve_registry(&runtime);

    // A plain thread, no runtime anywhere on it.
    let on_thread = {
        let url = url.clone();
        std::thread::spawn(move || {
            build_and_publish(
                &url,
                &Placed {
                    order_id: "o-1".into(),
                },
            )
        })
        .join()
        .expect("no panic on a plain thread")
    };
    assert_eq!(on_thread, Some(remote_id(&runtime, &url, "placed-value")));

    // Inside spawn_blocking on the multi-thread runtime that also serves the registry.
    let in_blocking = runtime.block_on({
        let url = url.clone();
        async move {
            let task = tokio::task::spawn_blocking(move || {
                build_and_publish(
                    &url,
                    &Shipped {
                        order_id: "o-2".into(),
                        carrier: "post".into(),
                    },
                )
            });
            tokio::time::timeout(Duration::from_secs(60), task)
                .await
                .expect("no hang")
                .expect("no panic inside spawn_blocking")
        }
    });
    let shipped = remote_id(&runtime, &url, "shipped-value");
    assert_eq!(in_blocking, Some(shipped));
    assert_ne!(on_thread, in_blocking, "two schemas, two global ids");
}

/// The async outbox registers with a remote registry served by the same single-threaded
/// runtime that builds it: a blocking HTTP call would hold the only thread the server needs
/// to answer, and the build would hang; off the runtime, it answers and the row carries the
/// remote registry's id.
#[cfg(all(feature = "async", feature = "postgres"))]
#[test]
fn async_diesel_builds_against_a_remote_registry_without_blocking_the_runtime() {
    use diesel_async::{AsyncConnection, AsyncPgConnection};
    use outbox_core::table::{Dialect, Table, TableNames};
    use outbox_diesel::AsyncOutboxConnection;
    use outbox_diesel::postgres::AsyncPgOutbox;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let url = serve_registry(&runtime);
    let pg = std::env::var("OUTBOX_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@localhost:5432/test".to_owned());
    let stored = runtime.block_on(async {
        let mut conn = match AsyncPgConnection::establish(&pg).await {
            Ok(conn) => conn,
            Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
                eprintln!("skipping: {pg}: {e}");
                return None;
            }
            Err(e) => panic!("CI=true and {pg} is unreachable: {e}"),
        };
        let prefix = format!("r{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
        let names = TableNames::with_prefix(&prefix).expect("prefix");
        let build = AsyncPgOutbox::builder()
            .table_names(names.clone())
            .schema_registry(remote(&url))
            .register::<Placed>()
            .build(&mut conn);
        let outbox = tokio::time::timeout(Duration::from_secs(60), build)
            .await
            .expect("no hang: the runtime kept serving the registry")
            .expect("build against the remote registry");
        let event = Placed {
            order_id: "o-3".into(),
        };
        conn.transaction::<_, diesel::result::Error, _>(async |conn| {
            outbox.publish(conn, &event).await.expect("publish");
            Ok(())
        })
        .await
        .expect("commit");
        let events = names.qualified(Dialect::Postgres, Table::Events);
        let sql = format!("SELECT schema_id AS value FROM {events}");
        Some(conn.load_rows::<i32>(&sql, vec![]).await.expect("rows"))
    });
    let Some(stored) = stored else { return };
    assert_eq!(stored, [remote_id(&runtime, &url, "placed-value")]);
}
