//! The inbox consumer on diesel (PostgreSQL, MariaDB and SQLite), with the relay upstream on
//! the test broker: the scenarios `outbox-sqlx`'s inbox tests run, over `DieselInbox`, in
//! handler and sink modes.

// Shared by three test crates; each uses a part of it.
#[allow(dead_code)]
#[path = "../../outbox-sqlx/tests/inbox_support/upstream.rs"]
mod upstream;

#[path = "../../outbox-sqlx/tests/inbox_support/sink.rs"]
mod sink;

use std::sync::atomic::AtomicU32;

use diesel::{MysqlConnection, PgConnection, SqliteConnection};
use outbox_core::table::{Dialect, Identifier, Statements, Table};
use outbox_diesel::{DieselInbox, DieselInboxHandler, DieselSink, OutboxConnection};
use outbox_inbox::{BoxError, InboxEvent};
use upstream::{N, OrderPlacedV1, Scenario};

/// The test's effect: one row per call, no unique key, so a second application shows.
struct Effects {
    table: String,
    failures_left: AtomicU32,
}

impl<C: OutboxConnection> DieselInboxHandler<C> for Effects {
    type Event = OrderPlacedV1;

    fn handle(
        &self,
        conn: &mut C,
        event: OrderPlacedV1,
        meta: &InboxEvent,
    ) -> Result<(), BoxError> {
        if upstream::fail_once(&event, &self.failures_left) {
            return Err("a passing failure, on purpose".into());
        }
        let sql = upstream::effect_sql(&self.table, &meta.ce_id, &event);
        conn.run(&sql, vec![])?;
        Ok(())
    }
}

fn count<C: OutboxConnection>(conn: &mut C, sql: &str) -> i64 {
    conn.load_rows::<i64>(sql, vec![]).expect("count")[0]
}

async fn exactly_once<C>(url: String, dialect: Dialect)
where
    C: OutboxConnection + 'static,
{
    let Some(scenario) = Scenario::prepare().await else {
        return;
    };
    let names = scenario.names.clone();
    let effects = scenario.effects();
    let mut conn = C::establish(&url).expect("connect");
    conn.run(&format!("CREATE TABLE {effects} (ce_id TEXT NOT NULL, order_id TEXT NOT NULL, total_cents BIGINT NOT NULL)"), vec![])
        .expect("effects table");
    outbox_diesel::migrate_inbox(&mut conn, &Statements::new(dialect, &names))
        .expect("migrate inbox");
    let handler = Effects {
        table: effects.clone(),
        failures_left: AtomicU32::new(1),
    };
    scenario
        .consume(DieselInbox::<C, _>::new(url, &names, handler))
        .await;

    let n = N as i64;
    assert_eq!(
        count(
            &mut conn,
            &format!("SELECT COUNT(*) AS value FROM {effects}")
        ),
        n,
        "rows downstream exactly once"
    );
    assert_eq!(
        count(
            &mut conn,
            &format!("SELECT COUNT(DISTINCT order_id) AS value FROM {effects}")
        ),
        n
    );
    // MySQL's CAST has no BIGINT.
    let int = if dialect == Dialect::MySql {
        "SIGNED"
    } else {
        "BIGINT"
    };
    let sum = count(
        &mut conn,
        &format!("SELECT CAST(SUM(total_cents) AS {int}) AS value FROM {effects}"),
    );
    assert_eq!(
        sum,
        (0..n).map(|i| i * 100).sum::<i64>(),
        "every event's own values"
    );
    let inbox = names.qualified(dialect, Table::Inbox);
    assert_eq!(
        count(&mut conn, &format!("SELECT COUNT(*) AS value FROM {inbox}")),
        n
    );
    let dead = names.qualified(dialect, Table::InboxDeadLetters);
    let reasons = conn
        .load_rows::<String>(
            &format!("SELECT reason AS value FROM {dead} ORDER BY record_offset"),
            vec![],
        )
        .expect("reasons");
    upstream::check_reasons(&reasons);
    for table in [effects, inbox, dead] {
        conn.run(&format!("DROP TABLE {table}"), vec![])
            .expect("drop");
    }
}

/// The sink on diesel: change events and a tombstone upserted and deleted in a table the sink
/// creates from the schema; o-1 is left, updated.
async fn sink_upserts_and_deletes<C>(url: String, dialect: Dialect)
where
    C: OutboxConnection + 'static,
{
    let Some(scenario) = sink::SinkScenario::prepare().await else {
        return;
    };
    let names = scenario.names.clone();
    let table = scenario.table.clone();
    let mut conn = C::establish(&url).expect("connect");
    let sink = DieselSink::new(sink::schema(), &table, "order_id", &sink::MAPPING).expect("sink");
    sink.create_table(&mut conn)
        .expect("create the table from the schema");
    outbox_diesel::migrate_inbox(&mut conn, &Statements::new(dialect, &names))
        .expect("migrate inbox");
    scenario
        .consume(DieselInbox::<C, _>::with_effect(url, &names, sink))
        .await;

    let quoted = dialect.quote(&Identifier::new(&table).expect("name"));
    let rows = conn
        .load_rows::<(String, i64)>(
            &format!("SELECT order_id, total_cents FROM {quoted} ORDER BY order_id"),
            vec![],
        )
        .expect("rows");
    assert_eq!(
        rows,
        [("o-1".to_owned(), 150)],
        "o-1 updated; o-2 deleted by op d; o-3 by its tombstone"
    );
    assert_eq!(
        count(
            &mut conn,
            &format!("SELECT COUNT(*) AS value FROM {quoted} WHERE note IS NULL")
        ),
        1,
        "the update set note back to null"
    );
    for t in [
        quoted,
        names.qualified(dialect, Table::Inbox),
        names.qualified(dialect, Table::InboxDeadLetters),
    ] {
        conn.run(&format!("DROP TABLE {t}"), vec![]).expect("drop");
    }
}

fn pg_url() -> String {
    std::env::var("OUTBOX_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@localhost:5432/test".into())
}

fn mysql_url() -> String {
    std::env::var("OUTBOX_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@localhost:3306/test".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_applies_each_event_once_and_sets_poison_aside() {
    exactly_once::<PgConnection>(pg_url(), Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_applies_each_event_once_and_sets_poison_aside() {
    exactly_once::<MysqlConnection>(mysql_url(), Dialect::MySql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_applies_each_event_once_and_sets_poison_aside() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = dir.path().join("inbox.db").display().to_string();
    exactly_once::<SqliteConnection>(url, Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_sink_upserts_and_deletes() {
    sink_upserts_and_deletes::<PgConnection>(pg_url(), Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_sink_upserts_and_deletes() {
    sink_upserts_and_deletes::<MysqlConnection>(mysql_url(), Dialect::MySql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_sink_upserts_and_deletes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = dir.path().join("sink.db").display().to_string();
    sink_upserts_and_deletes::<SqliteConnection>(url, Dialect::Sqlite).await;
}
