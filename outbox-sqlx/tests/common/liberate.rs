//! Query liberation on every database: bulk loads cancelled mid-way and resumed, incremental
//! loading with equal timestamps, deletes and concurrent updates, hostile input, and the
//! upgrade that adds the checkpoint table.

use std::collections::HashMap;
use std::sync::Arc;

use outbox_core::Error;
use outbox_core::liberate::Mode;
use outbox_core::table::{Dialect, Statements, Table};
use outbox_sqlx::liberate::{Liberate, LiberateOptions, PreparedLiberation, Progress};
use outbox_sqlx::{OutboxDatabase, Value};
use sqlx::Pool;

use super::capture::{Captured, Fixture};
use super::{count, drop_tables, fresh_names};

fn quoted<DB: OutboxDatabase>(table: &str) -> String {
    DB::DIALECT.quote(&outbox_core::table::Identifier::new(table).expect("name"))
}

/// Inserts `rows` (SQL value lists) into `table` (`columns`), 500 rows a statement.
pub async fn insert_rows<DB: OutboxDatabase>(
    pool: &Pool<DB>,
    table: &str,
    columns: &str,
    rows: impl IntoIterator<Item = String>,
) {
    let rows: Vec<String> = rows.into_iter().collect();
    let mut conn = pool.acquire().await.expect("connection");
    for chunk in rows.chunks(500) {
        let sql = format!(
            "INSERT INTO {} ({columns}) VALUES ({})",
            quoted::<DB>(table),
            chunk.join("), (")
        );
        DB::run(&mut *conn, &sql, vec![])
            .await
            .expect("insert rows");
    }
}

fn incremental(by: &[&str]) -> Mode {
    Mode::Incremental {
        by: by.iter().map(|c| (*c).to_owned()).collect(),
    }
}

fn timestamp_type(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::MySql => "DATETIME(6)",
        Dialect::Postgres | Dialect::Sqlite => "TIMESTAMP",
    }
}

/// Each event's key JSON text and `after.v` (incremental tables).
fn by_key(events: &[Captured]) -> Vec<(i64, serde_json::Value)> {
    events
        .iter()
        .map(|e| {
            let id = e.key["id"].as_i64().expect("key id");
            (id, e.json())
        })
        .collect()
}

/// A bulk load cancelled after three chunks (mid-chunk: the transaction in flight rolls
/// back) keeps exactly the rows its checkpoint counts; resumed, every row is in the outbox
/// once, as a snapshot read (`op = r`) that the relay encodes with the registered schema.
/// A composite key of text and integer pages in key order.
pub async fn liberate_bulk_resumes_exactly_once<DB: OutboxDatabase>(pool: &Pool<DB>) {
    const ROWS: usize = 2500;
    let mut fx = Fixture::new(pool).await;
    let t = fx.table("orders");
    fx.exec(&format!(
        "CREATE TABLE {} (region VARCHAR(20) NOT NULL, id INTEGER NOT NULL, \
         total DECIMAL(10,2) NOT NULL, note TEXT, PRIMARY KEY (region, id))",
        quoted::<DB>(&t)
    ))
    .await;
    let rows = (1..=ROWS).map(|i| format!("'r{}', {i}, {i}.50, NULL", i % 3));
    insert_rows(pool, &t, "region, id, total, note", rows).await;

    let liberate = Liberate::new(pool.clone(), fx.names.clone());
    let options = LiberateOptions {
        chunk: 200,
        ..LiberateOptions::default()
    };
    let job = liberate
        .prepare(&fx.registry, &t, None, Mode::Bulk, &options)
        .await
        .expect("prepare");
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let mut stop = Some(stop);
    let run = liberate.run(&job, &options, |p: &Progress| {
        if p.chunks == 3 {
            stop.take().map(|s| s.send(()));
        }
    });
    tokio::select! {
        biased;
        _ = stopped => {}
        result = run => panic!("the run was to be cancelled: {result:?}"),
    }
    let checkpoint = checkpoint(pool, &fx, &t).await;
    let written = count(pool, &fx.names, Table::Events).await;
    assert_eq!(
        written, checkpoint,
        "what the checkpoint counts is exactly what committed"
    );
    assert!(
        written >= 600 && written < ROWS as i64,
        "cancelled mid-way: {written}"
    );

    let done = liberate.run(&job, &options, |_| {}).await.expect("resumed");
    assert_eq!(done.rows_done, ROWS as u64);
    assert_eq!(done.total_estimate, ROWS as u64);
    assert_eq!(done.rows_this_run, ROWS as u64 - written as u64);
    assert!(done.queries > 0 && done.chunks > 0);
    let events = fx.events().await;
    assert_eq!(events.len(), ROWS, "every row once");
    let keys: std::collections::HashSet<String> =
        events.iter().map(|e| e.key.to_string()).collect();
    assert_eq!(keys.len(), ROWS, "no row twice");
    let first = &events[0];
    assert_eq!(
        first.content_type,
        outbox_core::capture::CAPTURE_CONTENT_TYPE
    );
    assert_eq!(first.schema_id, job.schema_id);
    assert_eq!(first.topic, t);
    let json = first.json();
    assert_eq!(json["op"], "r");
    assert_eq!(json["before"], serde_json::Value::Null);
    let decoded = first.decode(&fx.registry, &job.subject).await;
    assert!(
        matches!(super::capture::field(&decoded, "op"), outbox_core::avro::types::Value::Enum(_, s) if s == "r")
    );
    assert!(events.iter().all(|e| e.json()["op"] == "r"));
    let again = liberate.run(&job, &options, |_| {}).await.expect("again");
    assert_eq!(
        again.rows_this_run, 0,
        "a finished load writes nothing more"
    );
    fx.cleanup().await;
}

async fn poll<DB: OutboxDatabase>(
    liberate: &Liberate<DB>,
    job: &PreparedLiberation,
    options: &LiberateOptions,
) -> Progress {
    liberate.run(job, options, |_| {}).await.expect("poll")
}

async fn checkpoint<DB: OutboxDatabase>(pool: &Pool<DB>, fx: &Fixture<DB>, table: &str) -> i64 {
    let mut conn = pool.acquire().await.expect("connection");
    let sql = format!(
        "SELECT rows_done FROM {} WHERE table_name = '{table}'",
        fx.names.qualified(DB::DIALECT, Table::Liberations)
    );
    let rows = DB::rows(&mut *conn, &sql, vec![], &[outbox_sqlx::Column::I64])
        .await
        .expect("checkpoint");
    match rows.first().and_then(|r| r.first()) {
        Some(Value::I64(n)) => *n,
        None => 0,
        other => panic!("{other:?}"),
    }
}

/// Two runs of one bulk liberation at once write every row once: they take turns on the
/// checkpoint, or one fails (rolled back) racing for the first.
pub async fn liberate_concurrent_runs_write_each_row_once<DB: OutboxDatabase>(pool: &Pool<DB>) {
    const ROWS: usize = 1000;
    let mut fx = Fixture::new(pool).await;
    let t = fx.table("twice");
    fx.exec(&format!(
        "CREATE TABLE {} (id INTEGER NOT NULL PRIMARY KEY, v INTEGER NOT NULL)",
        quoted::<DB>(&t)
    ))
    .await;
    insert_rows(pool, &t, "id, v", (1..=ROWS).map(|i| format!("{i}, {i}"))).await;
    let liberate = Liberate::new(pool.clone(), fx.names.clone());
    let options = LiberateOptions {
        chunk: 50,
        ..LiberateOptions::default()
    };
    let job = liberate
        .prepare(&fx.registry, &t, None, Mode::Bulk, &options)
        .await
        .expect("prepare");
    let (a, b) = tokio::join!(
        liberate.run(&job, &options, |_| {}),
        liberate.run(&job, &options, |_| {})
    );
    assert!(a.is_ok() || b.is_ok(), "{a:?} {b:?}");
    let done = liberate.run(&job, &options, |_| {}).await.expect("finish");
    assert_eq!(done.rows_done, ROWS as u64);
    let events = fx.events().await;
    let keys: std::collections::HashSet<String> =
        events.iter().map(|e| e.key.to_string()).collect();
    assert_eq!((events.len(), keys.len()), (ROWS, ROWS), "each row once");
    fx.cleanup().await;
}

/// `--by updated_at,id` picks up rows committed later with a timestamp already passed;
/// `--by updated_at` alone misses them (the book's drawback, shown). Deletes are not seen.
pub async fn liberate_incremental_equal_timestamps<DB: OutboxDatabase>(pool: &Pool<DB>) {
    let mut fx = Fixture::new(pool).await;
    let t = fx.table("items");
    fx.exec(&format!(
        "CREATE TABLE {} (id INTEGER NOT NULL PRIMARY KEY, updated_at {} NOT NULL, v INTEGER NOT NULL)",
        quoted::<DB>(&t),
        timestamp_type(DB::DIALECT)
    ))
    .await;
    let t1 = "'2026-01-01 10:00:00'";
    insert_rows(
        pool,
        &t,
        "id, updated_at, v",
        (1..=5).map(|i| format!("{i}, {t1}, {i}")),
    )
    .await;
    let liberate = Liberate::new(pool.clone(), fx.names.clone());
    let options = LiberateOptions {
        chunk: 2,
        ..LiberateOptions::default()
    };
    let both = liberate
        .prepare(
            &fx.registry,
            &t,
            None,
            incremental(&["updated_at", "id"]),
            &options,
        )
        .await
        .expect("by updated_at,id");
    let ts_only = liberate
        .prepare(
            &fx.registry,
            &t,
            None,
            incremental(&["updated_at"]),
            &options,
        )
        .await
        .expect("by updated_at");
    let run = |job| poll(&liberate, job, &options);
    assert_eq!(run(&both).await.rows_this_run, 5);
    assert_eq!(run(&ts_only).await.rows_this_run, 5);

    // Committed after the first poll, with the timestamp it already passed.
    insert_rows(
        pool,
        &t,
        "id, updated_at, v",
        (6..=8).map(|i| format!("{i}, {t1}, {i}")),
    )
    .await;
    fx.exec(&format!(
        "UPDATE {} SET v = 20, updated_at = '2026-01-01 10:00:05' WHERE id = 2",
        quoted::<DB>(&t)
    ))
    .await;
    fx.exec(&format!("DELETE FROM {} WHERE id = 3", quoted::<DB>(&t)))
        .await;
    let caught = run(&both).await;
    assert_eq!(caught.rows_this_run, 4, "6, 7, 8 (same timestamp) and 2");
    assert_eq!(caught.rows_done, 9);
    let missed = run(&ts_only).await;
    assert_eq!(
        missed.rows_this_run, 1,
        "by timestamp alone, rows sharing the last timestamp seen are skipped"
    );
    let events = by_key(&fx.events().await);
    assert_eq!(events.len(), 15);
    let ids: Vec<i64> = events[10..14].iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [6, 7, 8, 2], "in (updated_at, id) order");
    assert_eq!(events[14].0, 2);
    assert_eq!(events[14].1["after"]["v"], 20);
    assert!(
        events.iter().all(|(_, e)| e["op"] == "u"),
        "incremental events are updates; the delete of 3 is not seen"
    );
    fx.cleanup().await;
}

/// A lag window: rows stamped within it (here a row stamped in the future) wait for a later
/// poll; older rows are read. `--lag` is refused for bulk and for a non-timestamp `--by`.
pub async fn liberate_incremental_lag_window<DB: OutboxDatabase>(pool: &Pool<DB>) {
    let mut fx = Fixture::new(pool).await;
    let t = fx.table("lag");
    fx.exec(&format!(
        "CREATE TABLE {} (id INTEGER NOT NULL PRIMARY KEY, updated_at {} NOT NULL, v INTEGER NOT NULL)",
        quoted::<DB>(&t),
        timestamp_type(DB::DIALECT)
    ))
    .await;
    let rows = [
        "1, '2020-01-01 00:00:00', 1".to_owned(),
        "2, '2999-01-01 00:00:00', 2".to_owned(),
    ];
    insert_rows(pool, &t, "id, updated_at, v", rows).await;
    let liberate = Liberate::new(pool.clone(), fx.names.clone());
    let lagged = LiberateOptions {
        lag: Some(std::time::Duration::from_secs(60)),
        ..LiberateOptions::default()
    };
    let by = incremental(&["updated_at", "id"]);
    for (mode, needle) in [(Mode::Bulk, "--lag"), (incremental(&["id"]), "timestamp")] {
        let err = liberate
            .prepare(&fx.registry, &t, None, mode, &lagged)
            .await
            .expect_err("refused");
        assert!(
            matches!(&err, Error::LiberationRefused { reason, .. } if reason.contains(needle)),
            "{err}"
        );
    }
    let job = liberate
        .prepare(&fx.registry, &t, None, by.clone(), &lagged)
        .await
        .expect("lagged");
    assert_eq!(poll(&liberate, &job, &lagged).await.rows_this_run, 1);
    let ids: Vec<i64> = by_key(&fx.events().await)
        .iter()
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(ids, [1], "the row stamped within the lag waits");
    let plain = LiberateOptions::default();
    let job = liberate
        .prepare(&fx.registry, &t, None, by, &plain)
        .await
        .expect("no lag");
    assert_eq!(
        poll(&liberate, &job, &plain).await.rows_this_run,
        1,
        "the same checkpoint, and no lag: the other row"
    );
    fx.cleanup().await;
}

/// Polls while a writer updates rows (timestamps rising, one commit each): after a last
/// poll, each row's latest event holds the row as it is.
pub async fn liberate_incremental_with_concurrent_updates<DB: OutboxDatabase>(pool: &Pool<DB>) {
    const ROWS: i64 = 40;
    const UPDATES: i64 = 300;
    let mut fx = Fixture::new(pool).await;
    let t = fx.table("live");
    fx.exec(&format!(
        "CREATE TABLE {} (id INTEGER NOT NULL PRIMARY KEY, updated_at {} NOT NULL, v INTEGER NOT NULL)",
        quoted::<DB>(&t),
        timestamp_type(DB::DIALECT)
    ))
    .await;
    let at = |s: i64| {
        format!(
            "'2026-01-01 {:02}:{:02}:{:02}'",
            s / 3600,
            s / 60 % 60,
            s % 60
        )
    };
    let rows = (1..=ROWS).map(|i| format!("{i}, {}, 0", at(0)));
    insert_rows(pool, &t, "id, updated_at, v", rows).await;
    let liberate = Liberate::new(pool.clone(), fx.names.clone());
    let options = LiberateOptions {
        chunk: 7,
        ..LiberateOptions::default()
    };
    let job = liberate
        .prepare(
            &fx.registry,
            &t,
            None,
            incremental(&["updated_at", "id"]),
            &options,
        )
        .await
        .expect("prepare");
    let writer = {
        let (pool, table) = (pool.clone(), quoted::<DB>(&t));
        tokio::spawn(async move {
            let mut conn = pool.acquire().await.expect("connection");
            for i in 1..=UPDATES {
                let sql = format!(
                    "UPDATE {table} SET v = {i}, updated_at = {} WHERE id = {}",
                    at(i),
                    i % ROWS + 1
                );
                DB::run(&mut *conn, &sql, vec![]).await.expect("update");
                tokio::task::yield_now().await;
            }
        })
    };
    let mut polls = 0;
    while !writer.is_finished() {
        liberate.run(&job, &options, |_| {}).await.expect("poll");
        polls += 1;
    }
    writer.await.expect("writer");
    let last = liberate
        .run(&job, &options, |_| {})
        .await
        .expect("last poll");
    let mut latest = HashMap::new();
    for (id, event) in by_key(&fx.events().await) {
        latest.insert(id, event["after"]["v"].as_i64().expect("v"));
    }
    assert_eq!(latest.len(), ROWS as usize, "every row seen");
    for id in 1..=ROWS {
        let expected = (1..=UPDATES)
            .filter(|i| i % ROWS + 1 == id)
            .max()
            .unwrap_or(0);
        assert_eq!(latest[&id], expected, "row {id}: its last update");
    }
    eprintln!(
        "{polls} polls during {UPDATES} updates; {} events in all",
        last.rows_done
    );
    fx.cleanup().await;
}

/// A missing table, a missing or nullable `--by` column, a hostile table name and a chunk
/// of 0 are refused with errors that name them, and nothing is written.
pub async fn liberate_refuses_hostile_input<DB: OutboxDatabase>(pool: &Pool<DB>) {
    let mut fx = Fixture::new(pool).await;
    let t = fx.table("h");
    fx.exec(&format!(
        "CREATE TABLE {} (id INTEGER NOT NULL PRIMARY KEY, note TEXT, at {} NOT NULL)",
        quoted::<DB>(&t),
        timestamp_type(DB::DIALECT)
    ))
    .await;
    let liberate = Liberate::new(pool.clone(), fx.names.clone());
    let options = LiberateOptions::default();
    let refused = |e: Error, needle: &str| match &e {
        Error::LiberationRefused { reason, .. } if reason.contains(needle) => {}
        other => panic!("expected a refusal naming {needle:?}, got {other}"),
    };
    let missing = format!("{t}_missing");
    let prepare = |table: String, mode: Mode, options: LiberateOptions| {
        let liberate = liberate.clone();
        let registry = &fx.registry;
        async move {
            liberate
                .prepare(registry, &table, None, mode, &options)
                .await
                .expect_err("refused")
        }
    };
    refused(
        prepare(missing, Mode::Bulk, options.clone()).await,
        "does not exist",
    );
    refused(
        prepare(t.clone(), incremental(&["updated_at"]), options.clone()).await,
        "\"updated_at\" does not exist",
    );
    refused(
        prepare(t.clone(), incremental(&["note"]), options.clone()).await,
        "nullable",
    );
    let zero = LiberateOptions {
        chunk: 0,
        ..LiberateOptions::default()
    };
    refused(prepare(t.clone(), Mode::Bulk, zero).await, "chunk");
    let huge = LiberateOptions {
        chunk: usize::MAX,
        ..LiberateOptions::default()
    };
    refused(prepare(t.clone(), Mode::Bulk, huge).await, "chunk");
    let stopped = LiberateOptions {
        rows_per_second: Some(0),
        ..LiberateOptions::default()
    };
    refused(prepare(t.clone(), Mode::Bulk, stopped).await, "at least 1");
    // Past 100 years the cutoff leaves the databases' ranges: PostgreSQL failed every poll
    // with "timestamp out of range" (exit 1), MariaDB and SQLite compared with NULL.
    let ages = LiberateOptions {
        lag: Some(std::time::Duration::from_secs(1_000_000 * 365 * 86_400)),
        ..LiberateOptions::default()
    };
    refused(
        prepare(t.clone(), incremental(&["at", "id"]), ages).await,
        "longer than 100 years",
    );
    let hostile = prepare(
        format!("{t}\"; DROP TABLE x; --"),
        Mode::Bulk,
        options.clone(),
    )
    .await;
    assert!(
        matches!(hostile, Error::InvalidIdentifier { .. }),
        "{hostile}"
    );
    assert_eq!(count(pool, &fx.names, Table::Events).await, 0);
    fx.cleanup().await;
}

/// Custom query loading: only the rows the `SELECT` gives are published; a query that is
/// not one `SELECT`, or whose rows lack a column the events need, is refused naming why,
/// and nothing is written or dropped.
pub async fn liberate_custom_query<DB: OutboxDatabase>(pool: &Pool<DB>) {
    let mut fx = Fixture::new(pool).await;
    let t = fx.table("q");
    let table = quoted::<DB>(&t);
    fx.exec(&format!(
        "CREATE TABLE {table} (id INTEGER NOT NULL PRIMARY KEY, v INTEGER NOT NULL)"
    ))
    .await;
    insert_rows(pool, &t, "id, v", (1..=20).map(|i| format!("{i}, {i}"))).await;
    let liberate = Liberate::new(pool.clone(), fx.names.clone());
    let with_query = |q: &str| LiberateOptions {
        chunk: 2,
        query: Some(q.to_owned()),
        ..LiberateOptions::default()
    };
    for (query, needle) in [
        (format!("DELETE FROM {table}"), "one SELECT"),
        (format!("SELECT 1; DROP TABLE {table}"), "';'"),
        (format!("SELECT id FROM {table}"), "does not give the rows"),
        (format!("SELECT * FROM {t}_nope"), "does not give the rows"),
    ] {
        let err = liberate
            .prepare(&fx.registry, &t, None, Mode::Bulk, &with_query(&query))
            .await
            .expect_err("refused");
        assert!(
            matches!(&err, Error::LiberationRefused { reason, .. } if reason.contains(needle)),
            "{query}: {err}"
        );
    }
    let options = with_query(&format!("SELECT * FROM {table} WHERE v > 15"));
    let job = liberate
        .prepare(&fx.registry, &t, None, Mode::Bulk, &options)
        .await
        .expect("a filtering query");
    let done = liberate.run(&job, &options, |_| {}).await.expect("run");
    assert_eq!((done.rows_done, done.total_estimate), (5, 5));
    let ids: Vec<i64> = by_key(&fx.events().await)
        .iter()
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(ids, [16, 17, 18, 19, 20]);
    let whole = LiberateOptions::default();
    let job = liberate
        .prepare(&fx.registry, &t, None, Mode::Bulk, &whole)
        .await
        .expect("the whole table");
    let done = liberate.run(&job, &whole, |_| {}).await.expect("run");
    assert_eq!(
        done.rows_this_run, 20,
        "another checkpoint than the query's"
    );
    fx.cleanup().await;
}

/// A `--query` as a DBA writes one, with comments (a trailing `--` one included, which
/// commented out the subquery's closing parenthesis and was refused as a syntax error), a
/// UNION and a `--` inside a string literal, publishes each of its rows once.
pub async fn liberate_custom_query_with_comments<DB: OutboxDatabase>(pool: &Pool<DB>) {
    let mut fx = Fixture::new(pool).await;
    let t = fx.table("qc");
    let table = quoted::<DB>(&t);
    fx.exec(&format!(
        "CREATE TABLE {table} (id INTEGER NOT NULL PRIMARY KEY, v INTEGER NOT NULL, \
         note VARCHAR(20) NOT NULL)"
    ))
    .await;
    insert_rows(
        pool,
        &t,
        "id, v, note",
        (1..=20).map(|i| format!("{i}, {i}, 'n--{i}'")),
    )
    .await;
    let liberate = Liberate::new(pool.clone(), fx.names.clone());
    let query = format!(
        "SELECT * /* every column */ FROM {table} WHERE v > 17 -- the late ones\n\
         UNION ALL\n\
         SELECT * FROM {table} WHERE note = 'n--2' -- and one by its note"
    );
    let options = LiberateOptions {
        chunk: 1,
        query: Some(query),
        ..LiberateOptions::default()
    };
    let job = liberate
        .prepare(&fx.registry, &t, None, Mode::Bulk, &options)
        .await
        .expect("a query with comments");
    let done = liberate.run(&job, &options, |_| {}).await.expect("run");
    assert_eq!((done.rows_done, done.total_estimate), (4, 4));
    let ids: Vec<i64> = by_key(&fx.events().await)
        .iter()
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(ids, [2, 18, 19, 20]);
    fx.cleanup().await;
}

/// A bulk `--query` that gives a key twice (a join, a `UNION ALL`) is refused naming the
/// key, inside the chunk holding it or across its end, and no key is in the outbox twice
/// (it was published once per row the query gave).
pub async fn liberate_query_with_duplicate_keys_is_refused<DB: OutboxDatabase>(pool: &Pool<DB>) {
    let mut fx = Fixture::new(pool).await;
    let t = fx.table("qd");
    let table = quoted::<DB>(&t);
    fx.exec(&format!(
        "CREATE TABLE {table} (id INTEGER NOT NULL PRIMARY KEY, v INTEGER NOT NULL)"
    ))
    .await;
    insert_rows(pool, &t, "id, v", (1..=6).map(|i| format!("{i}, {i}"))).await;
    let liberate = Liberate::new(pool.clone(), fx.names.clone());
    // Keys 1, 2, 3, 3, 4, 5, 5, 6: a chunk of 3 ends on the first 3 (the second is past
    // its end); chunks of 2 commit 1 and 2, and the next holds both 3s.
    let query =
        format!("SELECT * FROM {table} UNION ALL SELECT * FROM {table} WHERE id = 3 OR id = 5");
    for chunk in [3, 2] {
        let options = LiberateOptions {
            chunk,
            query: Some(query.clone()),
            restart: true,
            ..LiberateOptions::default()
        };
        let job = liberate
            .prepare(&fx.registry, &t, None, Mode::Bulk, &options)
            .await
            .expect("prepared");
        let err = liberate
            .run(&job, &options, |_| {})
            .await
            .expect_err("refused");
        assert!(
            matches!(&err, Error::LiberationRefused { reason, .. }
                if reason.contains("more than once") && reason.contains("3")),
            "chunk {chunk}: {err}"
        );
    }
    let events = by_key(&fx.events().await);
    let mut ids: Vec<i64> = events.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        [1, 2],
        "chunk 2 committed 1 and 2 before the 3s; none twice"
    );
    fx.cleanup().await;
}

/// Migration 5 upgrades a database made by migrations 1 to 4 that holds rows: they stay,
/// and the liberations table is there.
pub async fn upgrade_from_version_4_adds_liberations<DB: OutboxDatabase>(pool: &Pool<DB>) {
    let names = fresh_names();
    let stmts = Arc::new(Statements::new(DB::DIALECT, &names));
    {
        let mut conn = pool.acquire().await.expect("connection");
        super::apply_old_migrations::<DB>(&mut conn, &names, &stmts, 4).await;
        let capture = format!(
            "INSERT INTO {} (table_name, topic, subject, schema_id, spec) VALUES ('t', 't', 't-value', 1, '{{}}')",
            names.qualified(DB::DIALECT, Table::Captures)
        );
        DB::run(&mut *conn, &capture, vec![])
            .await
            .expect("old capture row");
    }
    outbox_sqlx::migrate(pool, &stmts).await.expect("upgrade");
    assert_eq!(
        count(pool, &names, Table::Migrations).await,
        outbox_core::table::migrations(DB::DIALECT, &names).len() as i64,
        "every version recorded, 5 (liberations) among them"
    );
    assert_eq!(
        count(pool, &names, Table::Captures).await,
        1,
        "the old row survives"
    );
    assert_eq!(count(pool, &names, Table::Liberations).await, 0);
    outbox_sqlx::migrate(pool, &stmts)
        .await
        .expect("idempotent");
    drop_tables(pool, &names).await;
}

/// Bulk with trigger capture live on the table: a change in flight on a row of the chunk
/// makes the chunk wait (shared row lock) until it commits, so the snapshot event of that
/// key comes after the change's event and holds the changed row, never an older one.
/// PostgreSQL and MySQL/MariaDB (SQLite's one writer serializes them anyway).
pub async fn liberate_bulk_under_live_capture<DB: OutboxDatabase>(pool: &Pool<DB>) {
    let mut fx = Fixture::new(pool).await;
    let t = fx.table("live_capture");
    let table = quoted::<DB>(&t);
    fx.exec(&format!(
        "CREATE TABLE {table} (id INTEGER NOT NULL PRIMARY KEY, v INTEGER NOT NULL)"
    ))
    .await;
    insert_rows(pool, &t, "id, v", (1..=10).map(|i| format!("{i}, 0"))).await;
    fx.capture
        .add(&fx.registry, &outbox_core::capture::CaptureSpec::new(&t))
        .await
        .expect("capture");
    let mut change = pool.begin().await.expect("begin");
    DB::run(
        &mut *change,
        &format!("UPDATE {table} SET v = 1 WHERE id = 5"),
        vec![],
    )
    .await
    .expect("update in flight");
    let liberate = Liberate::new(pool.clone(), fx.names.clone());
    let options = LiberateOptions::default();
    let job = liberate
        .prepare(&fx.registry, &t, None, Mode::Bulk, &options)
        .await
        .expect("prepare");
    let bulk = {
        let (liberate, job, options) = (liberate.clone(), job.clone(), options.clone());
        tokio::spawn(async move { liberate.run(&job, &options, |_| {}).await })
    };
    let events = fx.names.name(Table::Events);
    let waiting = match DB::DIALECT {
        Dialect::Postgres => format!(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
             AND query LIKE '%{events}%'"
        ),
        // MariaDB's innodb_trx did not list this wait (seen: only the change's
        // transaction); the statement still running is the sign (alone it takes
        // milliseconds).
        _ => format!(
            "SELECT COUNT(*) FROM information_schema.processlist \
             WHERE info LIKE 'INSERT INTO `{events}`%'"
        ),
    };
    loop {
        let mut conn = pool.acquire().await.expect("connection");
        let rows = DB::rows(&mut *conn, &waiting, vec![], &[outbox_sqlx::Column::I64])
            .await
            .expect("lock waits");
        if matches!(rows.first().and_then(|r| r.first()), Some(Value::I64(n)) if *n > 0) {
            break;
        }
        assert!(
            !bulk.is_finished(),
            "the chunk did not wait for the change in flight"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    change.commit().await.expect("commit the change");
    let done = bulk.await.expect("task").expect("bulk");
    assert_eq!(done.rows_done, 10);
    let five: Vec<serde_json::Value> = fx
        .events()
        .await
        .iter()
        .filter(|e| e.key["id"] == 5)
        .map(Captured::json)
        .collect();
    let ops: Vec<&str> = five.iter().map(|e| e["op"].as_str().expect("op")).collect();
    assert_eq!(ops, ["u", "r"], "the change, then the snapshot");
    assert_eq!(
        five[1]["after"]["v"], 1,
        "the snapshot holds the changed row"
    );
    fx.cleanup().await;
}
