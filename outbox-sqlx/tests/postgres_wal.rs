//! WAL mode on PostgreSQL, writer side: the slot is created once and recorded, publishing
//! needs it, committed events become logical messages carrying every column, rolled-back
//! ones never do, and migration 4 upgrades a database with rows in it.

#[macro_use]
#[allow(unused_macros)]
mod common;

use outbox_core::Error;
use outbox_core::table::{Table, TableNames};
use outbox_core::wal::{WalNames, decode_envelope};
use outbox_sqlx::Outbox;
use outbox_sqlx::postgres::{check_wal_slot, create_wal_slot, drop_wal_slot, wal_slot_status};
use sqlx::{PgPool, Postgres};

async fn pool() -> Option<PgPool> {
    common::connect::<Postgres>(&common::url(
        "OUTBOX_TEST_PG_URL",
        "postgres://postgres@localhost:5432/test",
    ))
    .await
}

async fn wal_outbox(pool: &PgPool, names: &TableNames) -> outbox_core::Result<Outbox<Postgres>> {
    Outbox::builder(pool.clone())
        .table_names(names.clone())
        .register::<common::OrderPlaced>()
        .wal(true)
        .build()
        .await
}

/// The logical messages of this outbox the slot holds, decoded, without consuming them.
async fn peek(pool: &PgPool, wal: &WalNames) -> Vec<outbox_core::relay::OutboxRecord> {
    let rows: Vec<(Vec<u8>,)> = sqlx::query_as(
        "SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL, \
         'proto_version', '1', 'publication_names', $2, 'messages', 'true')",
    )
    .bind(&wal.slot)
    .bind(&wal.publication)
    .fetch_all(pool)
    .await
    .expect("peek");
    rows.into_iter()
        .filter(|(data,)| data.first() == Some(&b'M'))
        .filter_map(|(data,)| {
            // 'M', flags u8, lsn u64, prefix\0, length u32, content.
            let rest = &data[10..];
            let nul = rest.iter().position(|b| *b == 0)?;
            (&rest[..nul] == wal.message_prefix.as_bytes()).then(|| {
                let content = &rest[nul + 5..];
                decode_envelope(content, 0).expect("envelope decodes")
            })
        })
        .collect()
}

async fn clean_up(pool: &PgPool, names: &TableNames) {
    drop_wal_slot(pool, names).await.expect("drop slot");
    common::drop_tables(pool, names).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_publishing_needs_the_recorded_slot() {
    let Some(pool) = pool().await else { return };
    let names = common::fresh_names();
    let err = wal_outbox(&pool, &names).await.expect_err("no slot yet");
    assert!(
        matches!(&err, Error::WalSlot { reason, .. } if reason.contains("no slot recorded")),
        "{err}"
    );
    let identity = create_wal_slot(&pool, &names).await.expect("create slot");
    assert_eq!(identity.names, WalNames::new(&names));
    assert!(identity.database_oid > 0 && !identity.system_identifier.is_empty());
    // A second migrate finds the same slot.
    assert_eq!(
        create_wal_slot(&pool, &names).await.expect("again"),
        identity
    );
    wal_outbox(&pool, &names)
        .await
        .expect("builds with the slot");
    let status = wal_slot_status(&pool, &names)
        .await
        .expect("status")
        .expect("slot");
    assert_eq!(status.slot, identity.names.slot);
    assert!(status.active_pid.is_none() && status.lag_bytes >= 0);

    // A slot dropped behind the outbox's back is an error, never re-created.
    sqlx::query("SELECT pg_drop_replication_slot($1)")
        .bind(&identity.names.slot)
        .execute(&pool)
        .await
        .expect("drop");
    for err in [
        check_wal_slot(&pool, &names).await.expect_err("gone"),
        wal_outbox(&pool, &names).await.expect_err("gone"),
        create_wal_slot(&pool, &names).await.expect_err("gone"),
    ] {
        assert!(
            matches!(&err, Error::WalSlot { reason, .. } if reason.contains("gone")),
            "{err}"
        );
    }
    clean_up(&pool, &names).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_events_become_messages_and_rolled_back_ones_never() {
    let Some(pool) = pool().await else { return };
    let names = common::fresh_names();
    common::outbox(&pool, &names).await; // tables and schemas
    create_wal_slot(&pool, &names).await.expect("create slot");
    let outbox = wal_outbox(&pool, &names).await.expect("outbox");
    let wal = WalNames::new(&names);

    let mut tx = pool.begin().await.expect("begin");
    let first = outbox
        .publish_all(&mut *tx, &[common::order(1), common::order(2)])
        .await
        .expect("publish");
    tx.commit().await.expect("commit");
    let mut tx = pool.begin().await.expect("begin");
    outbox
        .publish(&mut *tx, &common::order(3))
        .await
        .expect("publish");
    tx.rollback().await.expect("rollback");
    let mut tx = pool.begin().await.expect("begin");
    let last = outbox
        .publish_with_headers(&mut *tx, &common::order(4), &[("x-tenant", "acme")])
        .await
        .expect("publish");
    tx.commit().await.expect("commit");

    let records = peek(&pool, &wal).await;
    let ids: Vec<_> = records.iter().map(|r| r.event_id).collect();
    assert_eq!(
        ids,
        [first[0], first[1], last],
        "committed events, in commit order"
    );
    let r = &records[2];
    assert_eq!(r.topic, "orders");
    assert_eq!(r.event_key.as_deref(), Some(&b"order-4"[..]));
    assert_eq!(r.event_type, "com.acme.orders.OrderPlaced");
    assert!(r.schema_id.is_some_and(|id| id.get() > 0));
    assert_eq!(r.payload[0], 0, "Confluent framing");
    assert!(
        r.headers
            .contains(&("x-tenant".to_owned(), "acme".to_owned()))
    );
    let age = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
        - r.created_at_ms;
    assert!((0..60_000).contains(&age), "created_at is the publish time");
    assert_eq!(
        common::count(&pool, &names, Table::Events).await,
        0,
        "nothing inserted"
    );
    clean_up(&pool, &names).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_4_upgrades_a_database_with_rows() {
    let Some(pool) = pool().await else { return };
    let names = common::fresh_names();
    let stmts = outbox_core::table::Statements::new(outbox_core::table::Dialect::Postgres, &names);
    // What releases before WAL mode created: migrations 1 and 2, and a row waiting.
    let mut conn = pool.acquire().await.expect("connection");
    let before: Vec<_> =
        outbox_core::table::migrations(outbox_core::table::Dialect::Postgres, &names)
            .into_iter()
            .filter(|m| m.version <= 2)
            .collect();
    for sql in before.iter().flat_map(|m| &m.statements) {
        sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&mut *conn)
            .await
            .expect("migrate");
    }
    sqlx::query(sqlx::AssertSqlSafe(stmts.migrations.record(&before)))
        .execute(&mut *conn)
        .await
        .expect("record");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {} (event_id, topic, event_type, content_type, payload) \
         VALUES (gen_random_uuid(), 'orders', 'T', 'application/json', '\\x7b7d')",
        names.qualified(outbox_core::table::Dialect::Postgres, Table::Events)
    )))
    .execute(&mut *conn)
    .await
    .expect("row");
    drop(conn);
    outbox_sqlx::migrate(&pool, &stmts).await.expect("upgrade");
    assert_eq!(
        common::count(&pool, &names, Table::Events).await,
        1,
        "the row survives"
    );
    assert_eq!(common::count(&pool, &names, Table::WalSlot).await, 0);
    let versions: Vec<(i64,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT version FROM {} ORDER BY version",
        names.qualified(outbox_core::table::Dialect::Postgres, Table::Migrations)
    )))
    .fetch_all(&pool)
    .await
    .expect("versions");
    assert!(versions.contains(&(4,)), "{versions:?}");
    create_wal_slot(&pool, &names)
        .await
        .expect("slot after the upgrade");
    clean_up(&pool, &names).await;
}
