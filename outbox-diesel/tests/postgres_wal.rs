//! WAL mode with the diesel writers (blocking and `diesel-async`) on PostgreSQL: `build`
//! refuses to start without the slot `outbox-relay migrate` records (and when it is gone
//! since), committed events reach the slot as logical messages whose envelopes decode to what
//! was published, in commit order, a rolled-back transaction's never do, nothing goes into the
//! events table; off PostgreSQL, `wal(true)` is a configuration error before anything is
//! written.

mod common;

use std::time::{Duration, Instant};

use common::*;
use outbox_core::Error;
use outbox_core::relay::OutboxRecord;
use outbox_core::table::{Dialect, Table, TableNames};
use outbox_core::wal::{WalNames, decode_envelope};
use outbox_relay::wal::{PgWireStream, WalEvent, WalStream};
use uuid::Uuid;

/// A sqlx pool on the test database, for the slot's life cycle (what `outbox-relay migrate`
/// runs); `None` to skip, outside CI.
async fn pool() -> Option<sqlx::PgPool> {
    match sqlx::PgPool::connect(&pg_url()).await {
        Ok(pool) => Some(pool),
        Err(e) if !ci() => {
            eprintln!("skipping: {}: {e}", pg_url());
            None
        }
        Err(e) => panic!("CI=true and {} is unreachable: {e}", pg_url()),
    }
}

/// The outbox's events as the slot delivers them to the relay's own stream, decoded, up to
/// and including the event `last`.
async fn read_slot(names: &TableNames, last: Uuid) -> Vec<OutboxRecord> {
    let wal = WalNames::new(names);
    let mut stream = PgWireStream::connect(&pg_url(), &wal)
        .await
        .expect("stream from the slot");
    let mut records: Vec<OutboxRecord> = Vec::new();
    while records.last().map(|r| r.event_id) != Some(last) {
        let event = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("the slot holds the last event")
            .expect("stream")
            .expect("the stream stays open");
        let WalEvent::Message {
            prefix, content, ..
        } = event
        else {
            continue;
        };
        if prefix == wal.message_prefix {
            let position = records.len() as i64;
            records.push(decode_envelope(&content, position).expect("envelope decodes"));
        }
    }
    records
}

/// The slot held `published` (each id with the order it carries), in this order, every
/// column as the writer's encoder made it; `tenant` is the header the last one carries.
fn assert_envelopes(records: &[OutboxRecord], published: &[(Uuid, usize)]) {
    let ids: Vec<Uuid> = records.iter().map(|r| r.event_id).collect();
    let want: Vec<Uuid> = published.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, want, "the committed events, in commit order");
    let schema = <OrderPlaced as outbox_core::Event>::schema().expect("schema");
    for (record, (_, n)) in records.iter().zip(published) {
        assert_eq!(record.topic, "orders");
        assert_eq!(
            record.event_key.as_deref(),
            Some(format!("order-{n}").as_bytes())
        );
        assert_eq!(record.event_type, "com.acme.orders.OrderPlaced");
        assert_eq!(record.content_type, "application/avro");
        let id = record.schema_id.expect("a registered schema id");
        assert_eq!(
            record.payload[..5],
            [[0u8].as_slice(), &id.get().to_be_bytes()].concat(),
            "Confluent framing with the registered id"
        );
        let decoded: OrderPlaced =
            outbox_core::encode::wire::decode(&record.payload, |_| Ok(schema.clone()), None)
                .expect("payload decodes");
        assert_eq!(decoded, order(*n));
    }
    let last = records.last().expect("events");
    assert!(
        last.headers
            .contains(&("x-tenant".to_owned(), "acme".to_owned())),
        "{:?}",
        last.headers
    );
}

/// The error of the tests' transactions: diesel's, an outbox error, or a rollback asked for.
type TxError = Box<dyn std::error::Error + Send + Sync>;

fn assert_refused(err: &Error, says: &str) {
    assert!(
        matches!(err, Error::WalSlot { reason, .. } if reason.contains(says)),
        "expected a WalSlot error saying {says:?}, got {err}"
    );
}

/// Drops the slot behind the outbox's back, once the stream that read it is gone.
async fn drop_slot_behind_its_back(pool: &sqlx::PgPool, names: &TableNames) {
    let slot = WalNames::new(names).slot;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match sqlx::query("SELECT pg_drop_replication_slot($1)")
            .bind(&slot)
            .execute(pool)
            .await
        {
            Ok(_) => return,
            // 55006: the walsender of the stream just dropped has not exited yet.
            Err(sqlx::Error::Database(e))
                if e.code().as_deref() == Some("55006") && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("drop slot {slot}: {e}"),
        }
    }
}

/// Forgets the slot (gone already) and its publication, and drops the test's tables.
async fn clean_up(pool: &sqlx::PgPool, names: &TableNames) {
    outbox_sqlx::postgres::drop_wal_slot(pool, names)
        .await
        .expect("drop slot");
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

async fn events_in_table(pool: &sqlx::PgPool, names: &TableNames) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM {}",
        names.qualified(Dialect::Postgres, Table::Events)
    )))
    .fetch_one(pool)
    .await
    .expect("count");
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_diesel_publishes_to_the_slot_only_with_the_slot() {
    use diesel::Connection;
    use outbox_diesel::postgres::PgOutbox;

    let Some(mut conn) = establish::<diesel::PgConnection>(&pg_url()) else {
        return;
    };
    let Some(pool) = pool().await else { return };
    let names = names();
    let build = |conn: &mut diesel::PgConnection| {
        PgOutbox::builder()
            .table_names(names.clone())
            .register::<OrderPlaced>()
            .wal(true)
            .build(conn)
    };
    assert_refused(
        &build(&mut conn).expect_err("no slot yet"),
        "no slot recorded",
    );
    outbox_sqlx::postgres::create_wal_slot(&pool, &names)
        .await
        .expect("create slot");
    let outbox = build(&mut conn).expect("builds with the slot");

    let first = conn
        .transaction::<_, TxError, _>(|c| Ok(outbox.publish_all(c, &[order(1), order(2)])?))
        .expect("commit");
    let mut rolled_back = None;
    let aborted = conn.transaction::<(), TxError, _>(|c| {
        rolled_back = Some(outbox.publish(c, &order(3))?);
        Err("roll back".into())
    });
    assert!(aborted.is_err());
    let last = conn
        .transaction::<_, TxError, _>(|c| {
            Ok(outbox.publish_with_headers(c, &order(4), &[("x-tenant", "acme")])?)
        })
        .expect("commit");

    let records = read_slot(&names, last).await;
    assert!(
        !records.iter().any(|r| Some(r.event_id) == rolled_back),
        "a rolled-back event never reaches the slot"
    );
    assert_envelopes(&records, &[(first[0], 1), (first[1], 2), (last, 4)]);
    assert_eq!(events_in_table(&pool, &names).await, 0, "nothing inserted");

    // A slot dropped since is an error, never silently re-created.
    drop_slot_behind_its_back(&pool, &names).await;
    assert_refused(&build(&mut conn).expect_err("slot gone"), "gone");
    clean_up(&pool, &names).await;
}

#[cfg(feature = "async")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_diesel_publishes_to_the_slot_only_with_the_slot() {
    use diesel_async::{AsyncConnection, AsyncPgConnection};
    use outbox_diesel::postgres::AsyncPgOutbox;

    let Some(mut conn) = establish_async::<AsyncPgConnection>(&pg_url()).await else {
        return;
    };
    let Some(pool) = pool().await else { return };
    let names = names();
    let builder = || {
        AsyncPgOutbox::builder()
            .table_names(names.clone())
            .register::<OrderPlaced>()
            .wal(true)
    };
    let err = builder().build(&mut conn).await.expect_err("no slot yet");
    assert_refused(&err, "no slot recorded");
    outbox_sqlx::postgres::create_wal_slot(&pool, &names)
        .await
        .expect("create slot");
    let outbox = builder()
        .build(&mut conn)
        .await
        .expect("builds with the slot");

    let first = conn
        .transaction::<_, TxError, _>(async |c| {
            Ok(outbox.publish_all(c, &[order(1), order(2)]).await?)
        })
        .await
        .expect("commit");
    let mut rolled_back = None;
    let aborted = conn
        .transaction::<(), TxError, _>(async |c| {
            rolled_back = Some(outbox.publish(c, &order(3)).await?);
            Err("roll back".into())
        })
        .await;
    assert!(aborted.is_err());
    let last = conn
        .transaction::<_, TxError, _>(async |c| {
            Ok(outbox
                .publish_with_headers(c, &order(4), &[("x-tenant", "acme")])
                .await?)
        })
        .await
        .expect("commit");

    let records = read_slot(&names, last).await;
    assert!(
        !records.iter().any(|r| Some(r.event_id) == rolled_back),
        "a rolled-back event never reaches the slot"
    );
    assert_envelopes(&records, &[(first[0], 1), (first[1], 2), (last, 4)]);
    assert_eq!(events_in_table(&pool, &names).await, 0, "nothing inserted");

    drop_slot_behind_its_back(&pool, &names).await;
    let err = builder().build(&mut conn).await.expect_err("slot gone");
    assert_refused(&err, "gone");
    clean_up(&pool, &names).await;
}

fn assert_not_postgres(err: &Error) {
    assert!(
        matches!(err, Error::InvalidConfig { key, reason } if key == "wal" && reason.contains("needs PostgreSQL")),
        "{err}"
    );
}

#[cfg(feature = "sqlite")]
#[test]
fn wal_mode_on_sqlite_is_a_configuration_error() {
    use diesel::{Connection, RunQueryDsl};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wal.db");
    let mut conn =
        diesel::SqliteConnection::establish(path.to_str().expect("utf-8")).expect("sqlite");
    let err = outbox_diesel::sqlite::SqliteOutbox::builder()
        .register::<OrderPlaced>()
        .wal(true)
        .build(&mut conn)
        .expect_err("not PostgreSQL");
    assert_not_postgres(&err);
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let tables: Vec<Count> = diesel::sql_query("SELECT COUNT(*) AS n FROM sqlite_master")
        .load(&mut conn)
        .expect("count");
    assert_eq!(tables[0].n, 0, "nothing written");
}

#[cfg(all(feature = "mysql", feature = "async"))]
#[tokio::test]
async fn wal_mode_on_mariadb_is_a_configuration_error() {
    use diesel_async::AsyncMysqlConnection;
    use outbox_diesel::AsyncOutboxConnection;
    let Some(mut conn) = establish_async::<AsyncMysqlConnection>(&mysql_url()).await else {
        return;
    };
    let names = names();
    let err = outbox_diesel::mysql::AsyncMySqlOutbox::builder()
        .table_names(names.clone())
        .register::<OrderPlaced>()
        .wal(true)
        .build(&mut conn)
        .await
        .expect_err("not PostgreSQL");
    assert_not_postgres(&err);
    let tables = conn
        .load_rows::<i64>(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = ?",
            vec![outbox_core::table::SqlValue::Text(
                names.name(Table::Migrations).to_string(),
            )],
        )
        .await
        .expect("count");
    assert_eq!(tables, [0], "nothing written");
}
