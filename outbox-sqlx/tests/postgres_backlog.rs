//! The relay's status on a large PostgreSQL outbox. A test binary of its own: its bulk inserts
//! are long transactions, which the strict-order tests (cluster-wide horizon) must not see.

#[allow(unused_macros)] // the suites are declared in `common`, used by other binaries
mod common;

use std::time::Duration;

use sqlx::Postgres;

async fn pool() -> Option<sqlx::Pool<Postgres>> {
    common::connect::<Postgres>(&common::url(
        "OUTBOX_TEST_PG_URL",
        "postgres://postgres@localhost:5432/test",
    ))
    .await
}

/// The relay reads its status every few seconds: past `BACKLOG_EXACT_UP_TO` rows the backlog is
/// an estimate from the id range (no full count), marked so, and the lag is the head row's age.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_large_backlog_is_estimated_without_counting_every_row() {
    use outbox_core::relay::{AdminStore, BACKLOG_EXACT_UP_TO};
    use outbox_core::table::{Dialect, Table};
    let Some(pool) = pool().await else { return };
    let names = common::fresh_names();
    let outbox = common::outbox(&pool, &names).await;
    let store = outbox.relay_store();
    common::publish_committed(&pool, &outbox, 1).await;
    let exact = store.status("relay").await.expect("status");
    assert_eq!((exact.backlog, exact.backlog_estimated), (1, false));

    // Copies of that row (fresh event ids), written by the server, an hour older.
    let events = names.qualified(Dialect::Postgres, Table::Events);
    let extra = BACKLOG_EXACT_UP_TO + 50;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {events} SET created_at = created_at - INTERVAL '1 hour'"
    )))
    .execute(&pool)
    .await
    .expect("age the first row");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {events} (event_id, topic, event_key, event_type, schema_id, content_type, \
         payload, headers, created_at) \
         SELECT CAST(md5(g::text || clock_timestamp()::text) AS UUID), topic, event_key, \
         event_type, schema_id, content_type, payload, headers, created_at \
         FROM {events}, generate_series(1, {extra}) g"
    )))
    .execute(&pool)
    .await
    .expect("bulk insert");
    let large = store.status("relay").await.expect("status");
    assert!(large.backlog_estimated, "{large:?}");
    // The ids are one sequence with no gap here, so the estimate is the count.
    assert_eq!(large.backlog, extra + 1);
    let age = large.oldest_age.expect("age of the head row");
    assert!(
        age >= Duration::from_secs(3500) && age < Duration::from_secs(3700),
        "{age:?}"
    );

    // Published down to a few rows: counted exactly again.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {events} WHERE id > (SELECT MIN(id) + 4 FROM {events})"
    )))
    .execute(&pool)
    .await
    .expect("delete");
    let small = store.status("relay").await.expect("status");
    assert_eq!((small.backlog, small.backlog_estimated), (5, false));

    // A plain-SQL writer's ids at both ends of 64 bits: the range is taken outside SQL, where
    // it cannot overflow, and the status is still read.
    for id in [i64::MIN + 1, i64::MAX] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {events} (id, event_id, topic, event_key, event_type, schema_id, \
             content_type, payload, headers, created_at) OVERRIDING SYSTEM VALUE \
             SELECT {id}, CAST(md5(random()::text) AS UUID), topic, event_key, event_type, \
             schema_id, content_type, payload, headers, created_at FROM {events} LIMIT 1"
        )))
        .execute(&pool)
        .await
        .expect("extreme id");
    }
    let extremes = store.status("relay").await.expect("status with 64-bit ids");
    assert_eq!((extremes.backlog, extremes.backlog_estimated), (7, false));
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {events} (event_id, topic, event_key, event_type, schema_id, content_type, \
         payload, headers, created_at) \
         SELECT CAST(md5(g::text || clock_timestamp()::text) AS UUID), topic, event_key, \
         event_type, schema_id, content_type, payload, headers, created_at \
         FROM (SELECT * FROM {events} LIMIT 1) AS one, generate_series(1, {extra}) g"
    )))
    .execute(&pool)
    .await
    .expect("bulk insert");
    let wide = store.status("relay").await.expect("status with 64-bit ids");
    assert!(wide.backlog_estimated);
    assert_eq!(wide.backlog, u64::MAX, "the whole 64-bit range, saturated");
    common::drop_tables(&pool, &names).await;
}
