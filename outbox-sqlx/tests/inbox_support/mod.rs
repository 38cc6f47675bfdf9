//! The inbox scenario on a sqlx database: every event applied once, duplicates skipped
//! (counted), hostile records dead-lettered with their reason, the partitions moving on.

pub(crate) mod sink;
// Shared by three test crates; each uses a part of it.
#[allow(dead_code)]
pub(crate) mod upstream;

use std::sync::atomic::AtomicU32;

use outbox_core::table::{Dialect, Table};
use outbox_inbox::{BoxError, InboxEvent};
use outbox_sqlx::{Column, InboxHandler, OutboxDatabase, Sink, SqlxInbox, Value};
use sqlx::{Pool, Transaction};
use upstream::{N, OrderPlacedV1, Scenario};

/// The test's effect: one row per call, no unique key, so a second application shows.
pub(crate) struct Effects {
    table: String,
    /// Handler calls that fail on purpose.
    failures_left: AtomicU32,
}

impl<DB: OutboxDatabase> InboxHandler<DB> for Effects {
    type Event = OrderPlacedV1;

    async fn handle(
        &self,
        tx: &mut Transaction<'static, DB>,
        event: OrderPlacedV1,
        meta: &InboxEvent,
    ) -> Result<(), BoxError> {
        if upstream::fail_once(&event, &self.failures_left) {
            return Err("a passing failure, on purpose".into());
        }
        let sql = upstream::effect_sql(&self.table, &meta.ce_id, &event);
        DB::run(&mut **tx, &sql, vec![]).await?;
        Ok(())
    }
}

async fn column<DB: OutboxDatabase>(pool: &Pool<DB>, sql: &str, column: Column) -> Vec<Value> {
    let mut conn = pool.acquire().await.expect("connection");
    DB::rows(&mut conn, sql, vec![], &[column])
        .await
        .expect("query")
        .into_iter()
        .flatten()
        .collect()
}

async fn count<DB: OutboxDatabase>(pool: &Pool<DB>, sql: &str) -> i64 {
    match column(pool, sql, Column::I64).await.as_slice() {
        [Value::I64(v)] => *v,
        other => panic!("count: {other:?}"),
    }
}

/// The whole scenario on `pool`.
pub(crate) async fn exactly_once<DB: OutboxDatabase>(pool: Pool<DB>)
where
    Effects: InboxHandler<DB>,
{
    let Some(scenario) = Scenario::prepare().await else {
        return;
    };
    let names = scenario.names.clone();
    let effects = scenario.effects();
    let text = if DB::DIALECT == Dialect::MySql {
        "VARCHAR(255)"
    } else {
        "TEXT"
    };
    let mut conn = pool.acquire().await.expect("connection");
    let create = format!(
        "CREATE TABLE {effects} (ce_id {text} NOT NULL, order_id {text} NOT NULL, total_cents BIGINT NOT NULL)"
    );
    DB::run(&mut conn, &create, vec![])
        .await
        .expect("effects table");
    let handler = Effects {
        table: effects.clone(),
        failures_left: AtomicU32::new(1),
    };
    let backend = SqlxInbox::new(pool.clone(), &names, handler);
    backend.migrate(&names).await.expect("migrate inbox");
    scenario.consume(backend).await;

    let n = N as i64;
    assert_eq!(
        count(&pool, &format!("SELECT COUNT(*) FROM {effects}")).await,
        n,
        "rows downstream exactly once"
    );
    assert_eq!(
        count(
            &pool,
            &format!("SELECT COUNT(DISTINCT order_id) FROM {effects}")
        )
        .await,
        n
    );
    let int = if DB::DIALECT == Dialect::MySql {
        "SIGNED"
    } else {
        "BIGINT"
    };
    let sum = count(
        &pool,
        &format!("SELECT CAST(SUM(total_cents) AS {int}) FROM {effects}"),
    )
    .await;
    assert_eq!(
        sum,
        (0..n).map(|i| i * 100).sum::<i64>(),
        "every event's own values"
    );
    let inbox = names.qualified(DB::DIALECT, Table::Inbox);
    assert_eq!(
        count(&pool, &format!("SELECT COUNT(*) FROM {inbox}")).await,
        n
    );
    let dead = names.qualified(DB::DIALECT, Table::InboxDeadLetters);
    let reasons = column(
        &pool,
        &format!("SELECT reason FROM {dead} ORDER BY record_offset"),
        Column::Text,
    )
    .await;
    let reasons: Vec<String> = reasons
        .into_iter()
        .map(|v| match v {
            Value::Text(t) => t,
            other => panic!("{other:?}"),
        })
        .collect();
    upstream::check_reasons(&reasons);
    for table in [effects, inbox, dead] {
        DB::run(&mut conn, &format!("DROP TABLE {table}"), vec![])
            .await
            .expect("drop");
    }
}

/// The sink on sqlx: the rows left are o-1 only, updated.
pub(crate) async fn sink_upserts_and_deletes<DB: OutboxDatabase>(pool: Pool<DB>) {
    let Some(scenario) = sink::SinkScenario::prepare().await else {
        return;
    };
    let names = scenario.names.clone();
    let table = scenario.table.clone();
    let sink = Sink::new(sink::schema(), &table, "order_id", &sink::MAPPING).expect("sink");
    sink.create_table(&pool)
        .await
        .expect("create the table from the schema");
    let backend = SqlxInbox::with_effect(pool.clone(), &names, sink);
    backend.migrate(&names).await.expect("migrate");
    scenario.consume(backend).await;

    let quoted = DB::DIALECT.quote(&outbox_core::table::Identifier::new(&table).expect("name"));
    let mut conn = pool.acquire().await.expect("connection");
    let rows = DB::rows(
        &mut conn,
        &format!("SELECT order_id, total_cents FROM {quoted} ORDER BY order_id"),
        vec![],
        &[Column::Text, Column::I64],
    )
    .await
    .expect("rows");
    assert_eq!(
        rows,
        vec![vec![Value::Text("o-1".into()), Value::I64(150)]],
        "o-1 updated; o-2 deleted by op d; o-3 by its tombstone"
    );
    let nulls = DB::rows(
        &mut conn,
        &format!("SELECT COUNT(*) FROM {quoted} WHERE note IS NULL"),
        vec![],
        &[Column::I64],
    )
    .await
    .expect("note");
    assert_eq!(
        nulls,
        vec![vec![Value::I64(1)]],
        "the update set note back to null"
    );
    for t in [
        quoted,
        names.qualified(DB::DIALECT, Table::Inbox),
        names.qualified(DB::DIALECT, Table::InboxDeadLetters),
    ] {
        DB::run(&mut conn, &format!("DROP TABLE {t}"), vec![])
            .await
            .expect("drop");
    }
}
