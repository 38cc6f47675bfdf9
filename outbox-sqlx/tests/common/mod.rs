//! The suite every database runs: conformance of both stores, atomicity, bad input,
//! concurrent registration. Each test works in tables of its own (a random prefix).

#![allow(dead_code, unreachable_pub)]

/// Declares one `#[tokio::test]` per shared check, each on `$pool().await` (which returns
/// `Option<(guard, pool)>`; `None` skips outside CI).
macro_rules! shared_suite {
    ($pool:ident) => {
        shared_suite!($pool:
            schema_store_conformance,
            relay_store_conformance,
            negative_schema_id_is_a_malformed_row,
            migrations_are_idempotent,
            publish_is_atomic,
            bad_input_writes_nothing,
            breaking_change_fails_start_up,
            lint_deny_fails_start_up,
            concurrent_registration,
            drain_sees_everything_in_order,
            late_commit_is_not_lost,
            upgrade_from_version_1_then_soft_and_permanent_delete,
        );
    };
    ($pool:ident: $($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() {
            let Some((_guard, pool)) = $pool().await else { return };
            common::$name(&pool).await;
        }
    )*};
}

pub mod capture;
pub mod capture_hostile;

/// Declares the capture checks ([`capture`]) on `$pool().await`.
macro_rules! capture_suite {
    ($pool:ident) => {
        shared_suite!($pool:
            capture_insert_update_delete,
            capture_composite_and_missing_keys,
            capture_migrate_add_and_refuse_drop,
            capture_refuses_hostile_input,
            capture_rejected_value_names_the_field,
            capture_wide_table,
            upgrade_from_version_2_adds_captures,
            capture_misused_commands,
            capture_odd_names,
            capture_hostile_values,
            capture_every_column_type,
        );
    };
}

pub mod liberate;

/// Declares the query liberation checks ([`liberate`]) on `$pool().await`.
macro_rules! liberate_suite {
    ($pool:ident) => {
        shared_suite!($pool:
            liberate_bulk_resumes_exactly_once,
            liberate_concurrent_runs_write_each_row_once,
            liberate_custom_query,
            liberate_custom_query_with_comments,
            liberate_incremental_equal_timestamps,
            liberate_incremental_lag_window,
            liberate_incremental_with_concurrent_updates,
            liberate_query_with_duplicate_keys_is_refused,
            liberate_refuses_hostile_input,
            upgrade_from_version_4_adds_liberations,
        );
    };
}

#[allow(unused_imports)]
pub use liberate::{
    liberate_bulk_resumes_exactly_once, liberate_bulk_under_live_capture,
    liberate_concurrent_runs_write_each_row_once, liberate_custom_query,
    liberate_custom_query_with_comments, liberate_incremental_equal_timestamps,
    liberate_incremental_lag_window, liberate_incremental_with_concurrent_updates,
    liberate_query_with_duplicate_keys_is_refused, liberate_refuses_hostile_input,
    upgrade_from_version_4_adds_liberations,
};

// Not every test binary that includes `common` runs the capture suite.
#[allow(unused_imports)]
pub use capture::{
    capture_composite_and_missing_keys, capture_insert_update_delete,
    capture_migrate_add_and_refuse_drop, capture_refuses_hostile_input,
    capture_rejected_value_names_the_field, capture_wide_table,
    upgrade_from_version_2_adds_captures,
};
#[allow(unused_imports)]
pub use capture_hostile::{
    capture_every_column_type, capture_hostile_values, capture_misused_commands, capture_odd_names,
};

use std::sync::Arc;

use outbox_core::avro::{AvroSchema, Schema as AvroSchemaDef};
use outbox_core::compat::CompatibilityMode;
use outbox_core::registry::{Registry, SchemaStore};
use outbox_core::relay::{
    AdminStore, FailureStore, InsertRows, MalformedRow, ReadRow, RelayStore, RelayStoreExt,
};
use outbox_core::table::{Statements, Table, TableNames};
use outbox_core::{Error, Event, SchemaId};
use outbox_sqlx::{Column, Outbox, OutboxDatabase, SqlxRelayStore, SqlxSchemaStore, Value};
use serde::{Deserialize, Serialize};
use sqlx::Pool;
use uuid::Uuid;

/// The database URL from `var`, else `default`.
pub fn url(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

/// Connects, or (outside CI) returns `None` so the test can skip with a message.
pub async fn connect<DB: OutboxDatabase>(url: &str) -> Option<Pool<DB>> {
    match sqlx::pool::PoolOptions::<DB>::new()
        .max_connections(24)
        .acquire_timeout(std::time::Duration::from_secs(20))
        .connect(url)
        .await
    {
        Ok(pool) => Some(pool),
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipping: cannot connect to {url}: {e}");
            None
        }
        Err(e) => panic!("CI=true and the database at {url} is unreachable: {e}"),
    }
}

/// Table names no other test uses.
/// Runs the first `n` migrations of the contract on `conn` and records them, as an older
/// release of the library left a database (for the upgrade tests).
pub async fn apply_old_migrations<DB: OutboxDatabase>(
    conn: &mut DB::Connection,
    names: &TableNames,
    stmts: &Statements,
    n: usize,
) {
    for m in outbox_core::table::migrations(DB::DIALECT, names)
        .into_iter()
        .take(n)
    {
        for sql in &m.statements {
            DB::run(&mut *conn, sql, vec![])
                .await
                .expect("old migration");
        }
        DB::run(
            &mut *conn,
            stmts.migrations.insert.sql(),
            vec![Value::I64(m.version), Value::Text(m.description.to_owned())],
        )
        .await
        .expect("record");
    }
}

pub fn fresh_names() -> TableNames {
    let id = Uuid::now_v7().simple().to_string();
    TableNames::with_prefix(&format!("t{}", &id[20..])).expect("valid prefix")
}

/// Drops a test's tables.
pub async fn drop_tables<DB: OutboxDatabase>(pool: &Pool<DB>, names: &TableNames) {
    let mut conn = pool.acquire().await.expect("connection");
    for table in Table::ALL {
        let sql = format!(
            "DROP TABLE IF EXISTS {}",
            names.qualified(DB::DIALECT, table)
        );
        DB::run(&mut *conn, &sql, vec![]).await.expect("drop table");
    }
}

pub async fn count<DB: OutboxDatabase>(pool: &Pool<DB>, names: &TableNames, table: Table) -> i64 {
    let mut conn = pool.acquire().await.expect("connection");
    let sql = format!(
        "SELECT COUNT(*) FROM {}",
        names.qualified(DB::DIALECT, table)
    );
    let rows = DB::rows(&mut *conn, &sql, vec![], &[Column::I64])
        .await
        .expect("count");
    match rows.into_iter().next().and_then(|mut r| r.pop()) {
        Some(Value::I64(n)) => n,
        other => panic!("count returned {other:?}"),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "com.acme.orders")]
pub struct OrderPlaced {
    pub order_id: String,
    pub total_cents: i64,
    pub note: Option<String>,
}

impl Event for OrderPlaced {
    const TOPIC: &'static str = "orders";
    fn key(&self) -> Option<String> {
        Some(self.order_id.clone())
    }
}

pub fn order(n: usize) -> OrderPlaced {
    OrderPlaced {
        order_id: format!("order-{n}"),
        total_cents: n as i64 * 100,
        note: n.is_multiple_of(2).then(|| format!("note {n}")),
    }
}

/// Serializes an `i64` where its declared schema says `string`.
#[derive(Debug, Serialize)]
pub struct Mismatched {
    pub order_id: i64,
}

impl AvroSchema for Mismatched {
    fn get_schema() -> AvroSchemaDef {
        AvroSchemaDef::parse_str(
            r#"{"type":"record","name":"Mismatched","namespace":"com.acme.orders",
                "fields":[{"name":"order_id","type":"string"}]}"#,
        )
        .expect("valid schema")
    }
}

impl Event for Mismatched {
    const TOPIC: &'static str = "mismatched";
}

/// Never registered at start-up.
#[derive(Debug, Serialize, AvroSchema)]
#[avro(namespace = "com.acme.other")]
pub struct Unregistered {
    pub id: String,
}

impl Event for Unregistered {
    const TOPIC: &'static str = "other";
}

/// `OrderPlaced` with `total_cents` turned into a string: a breaking change.
#[derive(Debug, Serialize)]
pub struct OrderPlacedBreaking {
    pub order_id: String,
    pub total_cents: String,
    pub note: Option<String>,
}

impl AvroSchema for OrderPlacedBreaking {
    fn get_schema() -> AvroSchemaDef {
        AvroSchemaDef::parse_str(
            r#"{"type":"record","name":"OrderPlaced","namespace":"com.acme.orders","fields":[
                {"name":"order_id","type":"string"},{"name":"total_cents","type":"string"},
                {"name":"note","type":["null","string"]}]}"#,
        )
        .expect("valid schema")
    }
}

impl Event for OrderPlacedBreaking {
    const TOPIC: &'static str = "orders";
}

pub async fn outbox<DB: OutboxDatabase>(pool: &Pool<DB>, names: &TableNames) -> Outbox<DB> {
    Outbox::builder(pool.clone())
        .table_names(names.clone())
        .register::<OrderPlaced>()
        .register::<Mismatched>()
        .build()
        .await
        .expect("outbox builds")
}

/// Publishes `common::order(n)` in a transaction of its own and commits: its event id.
pub async fn publish_committed<DB: OutboxDatabase>(
    pool: &Pool<DB>,
    outbox: &Outbox<DB>,
    n: usize,
) -> Uuid {
    let mut tx = pool.begin().await.expect("begin");
    let id = outbox.publish(&mut *tx, &order(n)).await.expect("publish");
    tx.commit().await.expect("commit");
    id
}

/// The registry conformance suite on the database's schema tables.
pub async fn schema_store_conformance<DB: OutboxDatabase>(pool: &Pool<DB>) {
    let names = fresh_names();
    let stmts = Arc::new(Statements::new(DB::DIALECT, &names));
    outbox_sqlx::migrate(pool, &stmts).await.expect("migrate");
    let store = SqlxSchemaStore::new(pool.clone(), stmts);
    outbox_core::registry::conformance::run_all(&store, "conformance").await;
    drop_tables(pool, &names).await;
}

/// The relay-store conformance suite, each check on fresh tables.
pub async fn relay_store_conformance<DB: OutboxDatabase>(pool: &Pool<DB>) {
    let mut all = Vec::new();
    outbox_core::relay::conformance::run_all(|| {
        let names = fresh_names();
        all.push(names.clone());
        let pool = pool.clone();
        async move {
            let stmts = Arc::new(Statements::new(DB::DIALECT, &names));
            outbox_sqlx::migrate(&pool, &stmts).await.expect("migrate");
            // Strict order (PostgreSQL) may hold claims back while other tests' transactions
            // run; the strict tests check it on their own.
            SqlxRelayStore::new(pool, stmts).with_strict_order(false)
        }
    })
    .await;
    for names in all {
        drop_tables(pool, &names).await;
    }
}

/// A `schema_id` no registry hands out (negative, written around the library) makes its row
/// malformed, named by column, while the rows around it read as records; the row can still
/// be dead-lettered, listed and counted.
pub async fn negative_schema_id_is_a_malformed_row<DB: OutboxDatabase>(pool: &Pool<DB>) {
    let names = fresh_names();
    let stmts = Arc::new(Statements::new(DB::DIALECT, &names));
    outbox_sqlx::migrate(pool, &stmts).await.expect("migrate");
    let store = SqlxRelayStore::new(pool.clone(), stmts).with_strict_order(false);
    let rows: Vec<_> = (0..3)
        .map(|n| outbox_core::relay::conformance::sample_row("t", "k", n))
        .collect();
    store.insert_rows(&rows).await.expect("insert");
    let ids: Vec<i64> = store
        .read_batch(3)
        .await
        .expect("read")
        .iter()
        .map(|r| r.id)
        .collect();
    let events = names.qualified(DB::DIALECT, Table::Events);
    let mut conn = pool.acquire().await.expect("connection");
    DB::run(
        &mut conn,
        &format!(
            "UPDATE {events} SET schema_id = -1 WHERE id = {}",
            DB::DIALECT.placeholder(1)
        ),
        vec![Value::I64(ids[1])],
    )
    .await
    .expect("update");
    drop(conn);
    let read = store.read_after(i64::MIN, 10).await.expect("read");
    assert_eq!(read.len(), 3, "one malformed row does not fail the read");
    assert!(matches!(&read[0], ReadRow::Record(r) if r.id == ids[0]));
    assert!(matches!(&read[2], ReadRow::Record(r) if r.id == ids[2]));
    let ReadRow::Malformed(MalformedRow { id, key, reason }) = &read[1] else {
        panic!("expected a malformed row, got {:?}", read[1]);
    };
    assert_eq!(*id, ids[1]);
    assert_eq!(key, &Some(("t".to_owned(), Some(b"k".to_vec()))));
    assert_eq!(
        reason,
        "malformed row: schema_id: -1 is negative, not a schema id"
    );
    store
        .dead_letter(*id, 1, reason, None)
        .await
        .expect("dead letter");
    let dead = store.dead_letters(10).await.expect("list");
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].record.id, dead[0].record.schema_id),
        (ids[1], None)
    );
    let status = store.status("relay").await.expect("status");
    assert_eq!((status.backlog, status.dead_letters), (2, 1));
    drop_tables(pool, &names).await;
}

/// Migrating twice, and from several tasks at once, is harmless.
pub async fn migrations_are_idempotent<DB: OutboxDatabase>(pool: &Pool<DB>) {
    let names = fresh_names();
    let stmts = Arc::new(Statements::new(DB::DIALECT, &names));
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let (pool, stmts) = (pool.clone(), Arc::clone(&stmts));
            tokio::spawn(async move { outbox_sqlx::migrate(&pool, &stmts).await })
        })
        .collect();
    for run in runs {
        run.await.expect("task").expect("concurrent migrate");
    }
    outbox_sqlx::migrate(pool, &stmts)
        .await
        .expect("migrate again");
    assert_eq!(
        count(pool, &names, Table::Migrations).await,
        outbox_core::table::migrations(DB::DIALECT, &names).len() as i64,
        "each version recorded once"
    );
    drop_tables(pool, &names).await;
}

/// Rolled-back transactions leave nothing; committed ones exactly what they published.
pub async fn publish_is_atomic<DB: OutboxDatabase>(pool: &Pool<DB>) {
    let names = fresh_names();
    let outbox = outbox(pool, &names).await;

    let mut tx = pool.begin().await.expect("begin");
    outbox.publish(&mut *tx, &order(1)).await.expect("publish");
    outbox
        .publish_all(&mut *tx, &[order(2), order(3)])
        .await
        .expect("publish all");
    tx.rollback().await.expect("rollback");
    assert_eq!(
        count(pool, &names, Table::Events).await,
        0,
        "rollback leaves no row"
    );

    let mut tx = pool.begin().await.expect("begin");
    let first = outbox.publish(&mut *tx, &order(4)).await.expect("publish");
    let rest = outbox
        .publish_all(&mut *tx, &[order(5), order(6)])
        .await
        .expect("publish all");
    tx.commit().await.expect("commit");

    let store = outbox.relay_store().with_strict_order(false);
    let rows = store.read_batch(100).await.expect("claim");
    let ids: Vec<Uuid> = rows.iter().map(|r| r.event_id).collect();
    assert_eq!(
        ids,
        [vec![first], rest].concat(),
        "exactly the committed events, in order"
    );
    assert_eq!(rows[0].topic, "orders");
    assert_eq!(rows[0].event_key.as_deref(), Some(&b"order-4"[..]));
    assert_eq!(rows[0].event_type, "com.acme.orders.OrderPlaced");
    // The payload is the record value exactly as core encodes it, and decodes back.
    let schema = OrderPlaced::schema().expect("schema");
    let decoded: OrderPlaced = outbox_core::encode::wire::decode(
        &rows[0].payload,
        |id| {
            assert_eq!(Some(outbox_core::SchemaId::new(id)), rows[0].schema_id);
            Ok(schema.clone())
        },
        None,
    )
    .expect("payload decodes");
    assert_eq!(decoded, order(4));
    drop_tables(pool, &names).await;
}

/// Invalid events, unregistered types and oversize payloads are refused before any SQL:
/// nothing is written and the transaction stays usable.
pub async fn bad_input_writes_nothing<DB: OutboxDatabase>(pool: &Pool<DB>) {
    let names = fresh_names();
    let outbox = outbox(pool, &names).await;
    let mut tx = pool.begin().await.expect("begin");

    match outbox.publish(&mut *tx, &Mismatched { order_id: 5 }).await {
        Err(Error::SchemaViolation {
            subject,
            path,
            reason,
        }) => {
            assert_eq!(subject, "mismatched-value");
            assert_eq!(path, "order_id");
            assert_eq!(reason, "expected string, found a long");
        }
        other => panic!("expected SchemaViolation, got {other:?}"),
    }
    match outbox
        .publish(&mut *tx, &Unregistered { id: "x".into() })
        .await
    {
        Err(Error::UnregisteredEvent { event_type }) => {
            assert_eq!(event_type, "com.acme.other.Unregistered");
        }
        other => panic!("expected UnregisteredEvent, got {other:?}"),
    }
    // One oversize event refuses the whole batch.
    let mut big = order(2);
    big.note = Some("x".repeat(2 * 1024 * 1024));
    match outbox.publish_all(&mut *tx, &[order(1), big]).await {
        Err(Error::PayloadTooLarge { limit, .. }) => assert_eq!(limit, 1024 * 1024),
        other => panic!("expected PayloadTooLarge, got {other:?}"),
    }
    // The transaction is still usable: a valid event goes through and commits.
    outbox
        .publish(&mut *tx, &order(3))
        .await
        .expect("valid publish after refusals");
    tx.commit().await.expect("commit");
    assert_eq!(
        count(pool, &names, Table::Events).await,
        1,
        "only the valid event"
    );

    assert!(matches!(
        TableNames::with_prefix("outbox; DROP TABLE users; --"),
        Err(Error::InvalidIdentifier { .. })
    ));
    assert!(matches!(
        TableNames::default().in_schema("public\"; --"),
        Err(Error::InvalidIdentifier { .. })
    ));
    drop_tables(pool, &names).await;
}

/// A breaking schema change fails start-up with every incompatibility; auto-registration
/// registers on first use when turned on.
pub async fn breaking_change_fails_start_up<DB: OutboxDatabase>(pool: &Pool<DB>) {
    let names = fresh_names();
    let _v1 = outbox(pool, &names).await;
    let refused = Outbox::builder(pool.clone())
        .table_names(names.clone())
        .register::<OrderPlacedBreaking>()
        .build()
        .await;
    match refused {
        Err(Error::IncompatibleSchema {
            subject,
            mode,
            problems,
        }) => {
            assert_eq!(subject, "orders-value");
            assert_eq!(mode, CompatibilityMode::FullTransitive);
            assert!(
                problems.len() >= 2,
                "both directions reported: {problems:?}"
            );
            assert!(
                problems
                    .iter()
                    .all(|p| p.incompatibility.location == "/fields/1/type")
            );
        }
        other => panic!("expected IncompatibleSchema, got {other:?}"),
    }
    let auto = Outbox::builder(pool.clone())
        .table_names(names.clone())
        .auto_register(true)
        .build()
        .await
        .expect("builds");
    let mut tx = pool.begin().await.expect("begin");
    auto.publish(&mut *tx, &Unregistered { id: "u".into() })
        .await
        .expect("auto-registered");
    tx.commit().await.expect("commit");
    let subjects = auto.registry().subjects().await.expect("subjects");
    assert_eq!(
        subjects,
        ["mismatched-value", "orders-value", "other-value"]
    );
    drop_tables(pool, &names).await;
}

/// Documented, with typed ids: passes the schema design rules.
#[derive(Debug, Serialize, AvroSchema)]
#[avro(namespace = "com.acme.shipping")]
/// An order left the warehouse.
pub struct OrderShipped {
    /// The order shipped.
    pub order_id: Uuid,
    /// Who carries it.
    pub carrier: String,
}

impl Event for OrderShipped {
    const TOPIC: &'static str = "shipments";
}

/// At `LintLevel::Deny`, a type breaking the design rules (`OrderPlaced` has no docs) is
/// refused at start-up with every violation, and nothing is registered; a documented type
/// builds; `Warn` builds and registers anyway.
pub async fn lint_deny_fails_start_up<DB: OutboxDatabase>(pool: &Pool<DB>) {
    use outbox_core::lint::{LintLevel, Rule};
    let names = fresh_names();
    let refused = Outbox::builder(pool.clone())
        .table_names(names.clone())
        .lint(LintLevel::Deny)
        .register::<OrderPlaced>()
        .build()
        .await;
    match refused {
        Err(Error::LintFailed {
            subject,
            violations,
        }) => {
            assert_eq!(subject, "orders-value");
            assert!(
                violations
                    .iter()
                    .any(|v| v.rule == Rule::DocMissing && v.location == "/fields/0"),
                "{violations:?}"
            );
        }
        other => panic!("expected LintFailed, got {other:?}"),
    }
    let outbox = Outbox::builder(pool.clone())
        .table_names(names.clone())
        .lint(LintLevel::Deny)
        .register::<OrderShipped>()
        .build()
        .await
        .expect("a documented event passes");
    assert_eq!(
        outbox.registry().subjects().await.expect("subjects"),
        ["shipments-value"]
    );
    Outbox::builder(pool.clone())
        .table_names(names.clone())
        .lint(LintLevel::Warn)
        .register::<OrderPlaced>()
        .build()
        .await
        .expect("warn registers anyway");
    drop_tables(pool, &names).await;
}

/// Several connections register the same and different schemas at once: no duplicate ids,
/// no lost versions.
pub async fn concurrent_registration<DB: OutboxDatabase>(pool: &Pool<DB>) {
    let names = fresh_names();
    let stmts = Arc::new(Statements::new(DB::DIALECT, &names));
    outbox_sqlx::migrate(pool, &stmts).await.expect("migrate");
    let registry = Arc::new(
        Registry::new(SqlxSchemaStore::new(pool.clone(), stmts))
            .with_default_mode(CompatibilityMode::None),
    );
    let tasks: Vec<_> = (1..=12)
        .flat_map(|fields| [fields, fields])
        .map(|fields| {
            let registry = Arc::clone(&registry);
            tokio::spawn(async move {
                let schema =
                    outbox_core::registry::conformance::sample_schema("Concurrent", fields);
                let a = registry
                    .register("concurrent-value", &schema)
                    .await
                    .expect("register");
                // The same schema in a second subject shares the id.
                let b = registry
                    .register("concurrent-other-value", &schema)
                    .await
                    .expect("register");
                assert_eq!(a.id, b.id);
                (fields, a.id, a.version)
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("task"));
    }
    results.sort_unstable();
    results.dedup();
    assert_eq!(
        results.len(),
        12,
        "each schema registered once: {results:?}"
    );
    let mut versions: Vec<u32> = results.iter().map(|r| r.2).collect();
    versions.sort_unstable();
    assert_eq!(
        versions,
        (1..=12).collect::<Vec<_>>(),
        "no duplicate or lost versions"
    );
    let mut ids: Vec<u32> = results.iter().map(|r| r.1.get()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 12, "no duplicate ids");
    let stored = registry
        .store()
        .versions("concurrent-value")
        .await
        .expect("versions");
    assert_eq!(stored.len(), 12);
    drop_tables(pool, &names).await;
}

/// A relay-style drain through the store sees every committed event, once, in id order.
pub async fn drain_sees_everything_in_order<DB: OutboxDatabase>(pool: &Pool<DB>) {
    let names = fresh_names();
    let outbox = outbox(pool, &names).await;
    let events: Vec<OrderPlaced> = (0..2500).map(order).collect();
    let mut tx = pool.begin().await.expect("begin");
    let ids = outbox
        .publish_all(&mut *tx, &events)
        .await
        .expect("publish all");
    tx.commit().await.expect("commit");
    let store = outbox.relay_store().with_strict_order(false);
    let mut seen = Vec::new();
    loop {
        let batch = store.read_batch(500).await.expect("claim");
        if batch.is_empty() {
            break;
        }
        let row_ids: Vec<i64> = batch.iter().map(|r| r.id).collect();
        assert_eq!(
            store.ack(&row_ids, None).await.expect("ack"),
            batch.len() as u64
        );
        seen.extend(batch.into_iter().map(|r| r.event_id));
    }
    assert_eq!(seen, ids, "every event once, in publish order");
    drop_tables(pool, &names).await;
}

/// A transaction that commits after a later one: its row is still claimed afterwards (no
/// loss), in a store without strict order.
pub async fn late_commit_is_not_lost<DB: OutboxDatabase>(pool: &Pool<DB>) {
    let names = fresh_names();
    let outbox = outbox(pool, &names).await;
    let store = outbox.relay_store().with_strict_order(false);
    let mut early = pool.begin().await.expect("begin");
    let early_id = outbox
        .publish(&mut *early, &order(1))
        .await
        .expect("publish");
    let late_id = {
        let mut tx = pool.begin().await.expect("begin");
        let id = outbox.publish(&mut *tx, &order(2)).await.expect("publish");
        tx.commit().await.expect("commit");
        id
    };
    let first = store.read_batch(10).await.expect("claim");
    assert_eq!(
        first.iter().map(|r| r.event_id).collect::<Vec<_>>(),
        [late_id]
    );
    store.ack(&[first[0].id], None).await.expect("ack");
    early.commit().await.expect("commit");
    let second = store.read_batch(10).await.expect("claim");
    assert_eq!(
        second.iter().map(|r| r.event_id).collect::<Vec<_>>(),
        [early_id]
    );
    drop_tables(pool, &names).await;
}

/// A database created by migration 1 (the previous release) holding schemas is upgraded in
/// place; then Confluent's delete rules hold on it: soft delete hides a version (its id still
/// resolves), permanent delete needs a soft delete first, and is refused while an outbox row
/// still carries the schema's id.
pub async fn upgrade_from_version_1_then_soft_and_permanent_delete<DB: OutboxDatabase>(
    pool: &Pool<DB>,
) {
    use outbox_core::DeleteRefusal;
    use outbox_core::registry::conformance::sample_schema;
    let names = fresh_names();
    let stmts = Arc::new(Statements::new(DB::DIALECT, &names));
    let v1_schemas = [sample_schema("Up", 1), sample_schema("Up", 2)];
    {
        // What release 1 created: migration 1 only, and two versions registered.
        let first = outbox_core::table::migrations(DB::DIALECT, &names)
            .into_iter()
            .next()
            .expect("migration 1");
        let mut conn = pool.acquire().await.expect("connection");
        for sql in &first.statements {
            DB::run(&mut *conn, sql, vec![]).await.expect("migration 1");
        }
        DB::run(
            &mut *conn,
            stmts.migrations.insert.sql(),
            vec![Value::I64(1), Value::Text(first.description.to_owned())],
        )
        .await
        .expect("record migration 1");
        for (i, schema) in v1_schemas.iter().enumerate() {
            let fp = || Value::Text(schema.fingerprint().to_owned());
            DB::run(&mut *conn, stmts.schema.insert_schema_id.sql(), vec![fp()])
                .await
                .expect("id");
            DB::run(
                &mut *conn,
                stmts.schema.insert_version.sql(),
                vec![
                    Value::I32(i as i32 + 1),
                    Value::Text("up-value".to_owned()),
                    Value::I32(i as i32 + 1),
                    Value::Text(schema.canonical_json().to_owned()),
                    fp(),
                ],
            )
            .await
            .expect("version");
        }
    }
    outbox_sqlx::migrate(pool, &stmts).await.expect("upgrade");
    assert_eq!(
        count(pool, &names, Table::Migrations).await,
        outbox_core::table::migrations(DB::DIALECT, &names).len() as i64
    );
    let store = SqlxSchemaStore::new(pool.clone(), Arc::clone(&stmts));
    let registry = Registry::new(store.clone()).with_default_mode(CompatibilityMode::Backward);
    let versions = store.versions("up-value").await.expect("versions");
    assert_eq!(
        versions
            .iter()
            .map(|v| (v.id.get(), v.version))
            .collect::<Vec<_>>(),
        vec![(1, 1), (2, 2)],
        "the old rows survive the upgrade"
    );

    // Soft delete: hidden from reads, the id still resolves, the number is not reused.
    assert_eq!(
        registry
            .delete_version("up-value", Some(2), false)
            .await
            .expect("soft"),
        2
    );
    assert_eq!(
        store.version_numbers("up-value").await.expect("numbers"),
        vec![1]
    );
    assert!(
        store
            .schema_by_id(SchemaId::new(2))
            .await
            .expect("by id")
            .is_some()
    );
    let again = registry.delete_version("up-value", Some(2), false).await;
    assert!(
        matches!(
            again,
            Err(Error::DeleteRefused {
                refusal: DeleteRefusal::SoftDeleted,
                ..
            })
        ),
        "{again:?}"
    );
    let third = registry
        .register("up-value", &sample_schema("Up", 3))
        .await
        .expect("a new version");
    assert_eq!(third.version, 3, "soft-deleted numbers are not given again");
    let restored = registry
        .register("up-value", &v1_schemas[1])
        .await
        .expect("re-register");
    assert_eq!(
        (restored.id.get(), restored.version),
        (2, 2),
        "restored as it was"
    );

    // Permanent delete needs a soft delete first.
    let early = registry.delete_subject("up-value", true).await;
    assert!(
        matches!(
            early,
            Err(Error::DeleteRefused {
                refusal: DeleteRefusal::NotSoftDeleted,
                ..
            })
        ),
        "{early:?}"
    );
    assert_eq!(
        registry
            .delete_subject("up-value", false)
            .await
            .expect("soft subject"),
        vec![1, 2, 3]
    );
    assert!(
        !registry
            .subjects()
            .await
            .expect("subjects")
            .contains(&"up-value".to_owned())
    );
    assert_eq!(
        registry
            .delete_subject("up-value", true)
            .await
            .expect("permanent"),
        vec![1, 2, 3]
    );
    assert!(
        store
            .version_states("up-value")
            .await
            .expect("states")
            .is_empty()
    );
    assert!(
        store
            .schema_by_id(SchemaId::new(1))
            .await
            .expect("by id")
            .is_none(),
        "gone for good"
    );

    // An id an unpublished outbox row carries is not deleted for good until it is drained.
    let outbox = outbox(pool, &names).await;
    let mut tx = pool.begin().await.expect("begin");
    outbox.publish(&mut *tx, &order(1)).await.expect("publish");
    tx.commit().await.expect("commit");
    registry
        .delete_subject("orders-value", false)
        .await
        .expect("soft");
    let refused = registry.delete_subject("orders-value", true).await;
    assert!(
        matches!(
            refused,
            Err(Error::DeleteRefused {
                refusal: DeleteRefusal::InUse { .. },
                ..
            })
        ),
        "{refused:?}"
    );
    let relay = outbox.relay_store().with_strict_order(false);
    let rows = relay.read_batch(10).await.expect("claim");
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    relay.ack(&ids, None).await.expect("ack");
    registry
        .delete_subject("orders-value", true)
        .await
        .expect("permanent once drained");
    drop_tables(pool, &names).await;
}
