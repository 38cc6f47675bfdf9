//! WAL mode over TLS on the machine's PostgreSQL (the test CA and TLS-only roles of
//! `.ci/tls.sh`): the relay streams the slot with `sslmode=verify-full` and drains to the test
//! broker over a connection the server reports as TLS; a client certificate logs the stream
//! in; a wrong CA, a plaintext client for a TLS-only role and `require` with a wrong
//! `sslrootcert` are refused naming the setting, never the password.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Tls;
use common::isolated::pg_tls_url;
use outbox_core::table::{Dialect, Table, TableNames};
use outbox_core::wal::WalNames;
use outbox_relay::config::EventSource;
use outbox_relay::metrics::Metrics;
use outbox_relay::wal::{PgWireStream, WalEvent, WalStream};
use sqlx::PgPool;
use uuid::Uuid;

const TOPIC: &str = "wal-tls-orders";

fn broker() -> Option<String> {
    match std::env::var("KAFKA_BOOTSTRAP_SERVERS") {
        Ok(servers) if !servers.is_empty() => Some(servers),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but KAFKA_BOOTSTRAP_SERVERS is not set")
        }
        _ => None,
    }
}

#[derive(Debug, Clone, serde::Serialize, outbox_core::avro::AvroSchema)]
#[avro(namespace = "com.acme.waltls")]
struct TlsOrder {
    order_id: String,
}

impl outbox_core::Event for TlsOrder {
    const TOPIC: &'static str = TOPIC;
    fn key(&self) -> Option<String> {
        Some(self.order_id.clone())
    }
}

/// The TLS test roles stream a slot only with the REPLICATION attribute; `.ci/tls.sh` grants
/// it, and so does this (idempotently, for a machine set up before it did).
async fn grant_replication(pool: &PgPool) {
    for role in ["outbox_tls", "outbox_tls_cert"] {
        let has = |pool: PgPool| async move {
            let (b,): (bool,) =
                sqlx::query_as("SELECT rolreplication FROM pg_roles WHERE rolname = $1")
                    .bind(role)
                    .fetch_one(&pool)
                    .await
                    .expect("role (run .ci/tls.sh)");
            b
        };
        if !has(pool.clone()).await {
            // Two tests may race here ("tuple concurrently updated"): the check decides.
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "ALTER ROLE {role} REPLICATION"
            )))
            .execute(pool)
            .await;
            assert!(has(pool.clone()).await, "{role} has REPLICATION");
        }
    }
}

/// Migrates `names` (tables, slot, publication) as the superuser and lets the TLS roles use
/// the tables.
async fn migrate_for_tls_roles(
    pool: &PgPool,
    config: &outbox_relay::settings::Settings,
    names: &TableNames,
) {
    outbox_relay::commands::migrate(pool, config)
        .await
        .expect("migrate creates the slot");
    for table in Table::ALL {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "GRANT ALL ON {} TO outbox_tls, outbox_tls_cert",
            names.qualified(Dialect::Postgres, table)
        )))
        .execute(pool)
        .await
        .expect("grant");
    }
    sqlx::query("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO outbox_tls, outbox_tls_cert")
        .execute(pool)
        .await
        .expect("grant sequences");
}

async fn clean_up(pool: &PgPool, names: &TableNames) {
    // The last stream's walsender may still be letting go of the slot.
    for attempt in 0.. {
        match outbox_sqlx::postgres::drop_wal_slot(pool, names).await {
            Err(outbox_core::Error::WalSlotInUse { .. }) if attempt < 100 => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => {
                other.expect("drop slot");
                break;
            }
        }
    }
    for table in Table::ALL {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP TABLE IF EXISTS {}",
            names.qualified(Dialect::Postgres, table)
        )))
        .execute(pool)
        .await
        .expect("drop table");
    }
}

/// `postgres://outbox_tls:PASSWORD@localhost:5432/test?<params>`.
fn with_password(url: &str, password: &str) -> String {
    url.replacen("outbox_tls@", &format!("outbox_tls:{password}@"), 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wal_relay_over_verify_full_tls_drains_to_the_broker() {
    let Some(tls) = Tls::from_env() else { return };
    let Some(bootstrap) = broker() else { return };
    let Some((pool, pg)) = common::postgres().await else {
        return;
    };
    grant_replication(&pool).await;
    common::broker::create_topic(&bootstrap, TOPIC, 1).await;
    let names = common::fresh_names();
    let url = with_password(
        &pg_tls_url(&format!(
            "sslmode=verify-full&sslrootcert={}",
            tls.path("ca.crt")
        )),
        &tls.password(),
    );
    // Migrated by the superuser (it creates the publication and the slot); run as outbox_tls.
    let mut admin = common::config(&pg, &bootstrap, &names, "");
    admin.source = EventSource::Wal;
    migrate_for_tls_roles(&pool, &admin, &names).await;
    let mut config = common::config(&url, &bootstrap, &names, "");
    config.source = EventSource::Wal;
    let wal = WalNames::new(&names);
    let outbox = outbox_sqlx::Outbox::builder(pool.clone())
        .table_names(names.clone())
        .register::<TlsOrder>()
        .wal(true)
        .build()
        .await
        .expect("wal outbox");
    let mut tx = pool.begin().await.expect("begin");
    let ids = outbox
        .publish_all(
            &mut *tx,
            &(0..5)
                .map(|i| TlsOrder {
                    order_id: format!("tls-{i}"),
                })
                .collect::<Vec<_>>(),
        )
        .await
        .expect("publish");
    tx.commit().await.expect("commit");

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let relay_config = config.clone();
    let relay = tokio::spawn(async move {
        outbox_relay::wal::command::run(&relay_config, Arc::new(Metrics::new()), async {
            let _ = stopped.await;
        })
        .await
    });
    let want: HashSet<Uuid> = ids.iter().copied().collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = Vec::new();
    while Instant::now() < deadline && got.len() < want.len() {
        got = common::consume(&bootstrap, TOPIC, 1, usize::MAX, Duration::from_secs(2))
            .iter()
            .map(|r| r.ce_id())
            .filter(|id| want.contains(id))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
    }
    // The slot's walsender is the relay's connection, over TLS (its stream is still open).
    let (ssl, user): (bool, String) = sqlx::query_as(
        "SELECT s.ssl, CAST(r.usename AS TEXT) FROM pg_stat_replication r \
         JOIN pg_stat_ssl s USING (pid) WHERE r.application_name = $1",
    )
    .bind(&wal.slot)
    .fetch_one(&pool)
    .await
    .expect("the relay's walsender");
    let _ = stop.send(());
    let summary = relay.await.expect("join").expect("relay ran");
    assert_eq!(got.len(), 5, "every event reached the topic: {got:?}");
    assert!(ssl, "the replication connection is TLS");
    assert_eq!(user, "outbox_tls");
    assert_eq!(summary.published, 5, "{summary:?}");
    clean_up(&pool, &names).await;
}

/// Connects to the slot of `names`, waiting while the previous case's walsender lets go.
async fn connect(url: &str, names: &WalNames) -> outbox_core::Result<PgWireStream> {
    for _ in 0..100 {
        match PgWireStream::connect(url, names).await {
            Err(outbox_core::Error::WalSlotInUse { .. }) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
    panic!("the slot stayed in use");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_connection_honours_sslmode_and_client_certificates() {
    let Some(tls) = Tls::from_env() else { return };
    let Some((pool, pg)) = common::postgres().await else {
        return;
    };
    grant_replication(&pool).await;
    let names = common::fresh_names();
    let mut config = common::config(&pg, "127.0.0.1:9", &names, "");
    config.source = EventSource::Wal;
    migrate_for_tls_roles(&pool, &config, &names).await;
    let wal = WalNames::new(&names);
    let password = tls.password();
    let ca = tls.path("ca.crt");
    let other = tls.path("other-ca.crt");

    // Refused, naming the setting to fix and never the password.
    let refused = [
        (
            format!("sslmode=verify-full&sslrootcert={other}"),
            "sslrootcert",
        ),
        (
            format!("sslmode=verify-ca&sslrootcert={other}"),
            "sslrootcert",
        ),
        // libpq: `require` with a root certificate checks the chain.
        (
            format!("sslmode=require&sslrootcert={other}"),
            "sslrootcert",
        ),
        ("sslmode=disable".to_owned(), "no encryption"),
        ("sslmode=disable".to_owned(), "sslmode"),
        ("sslmode=verify_full".to_owned(), "sslmode"),
        (
            format!(
                "sslmode=verify-full&sslrootcert={ca}&sslcert={}",
                tls.path("client.crt")
            ),
            "sslkey",
        ),
    ];
    for (params, expected) in refused {
        let url = with_password(&pg_tls_url(&params), &password);
        let err = connect(&url, &wal).await.expect_err(&params);
        let text = err.to_string();
        assert!(text.contains(expected), "{params}: {text}");
        assert!(
            !text.contains(&password),
            "{params}: the password leaked: {text}"
        );
        assert!(
            matches!(
                err,
                outbox_core::Error::Store {
                    retryable: false,
                    ..
                } | outbox_core::Error::InvalidConfig { .. }
            ),
            "{params}: a setting to fix, not retried: {err:?}"
        );
    }

    // Accepted: each streams, and a message emitted after it connected arrives through it.
    let cert = format!(
        "sslmode=verify-full&sslrootcert={ca}&sslcert={}&sslkey={}",
        tls.path("client.crt"),
        tls.path("client.key")
    );
    let accepted = [
        with_password(
            &pg_tls_url(&format!("sslmode=verify-full&sslrootcert={ca}")),
            &password,
        ),
        with_password(
            &pg_tls_url(&format!("sslmode=verify-ca&sslrootcert={ca}")),
            &password,
        ),
        // libpq: `require` without a root certificate encrypts without checking it.
        with_password(&pg_tls_url("sslmode=require"), &password),
        with_password(&pg_tls_url("sslmode=prefer"), &password),
        // Client certificate login (`cert` in pg_hba), no password at all.
        pg_tls_url(&cert).replacen("outbox_tls@", "outbox_tls_cert@", 1),
    ];
    for url in accepted {
        let shown = url.replace(&password, "***");
        let mut stream = connect(&url, &wal)
            .await
            .unwrap_or_else(|e| panic!("{shown}: {e}"));
        let marker = Uuid::now_v7().to_string();
        sqlx::query("SELECT pg_logical_emit_message(true, $1, CAST($2 AS BYTEA))")
            .bind(&wal.message_prefix)
            .bind(&marker)
            .execute(&pool)
            .await
            .expect("emit");
        loop {
            if let WalEvent::Message { content, .. } =
                stream.next().await.expect("stream").expect("open")
                && content == marker.as_bytes()
            {
                break;
            }
        }
        drop(stream);
    }
    clean_up(&pool, &names).await;
}
