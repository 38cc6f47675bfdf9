//! The sink mode: change events (`{op, before, after, ts}`) published through the outbox and
//! drained by the relay, plus a tombstone, upserted and deleted in a table the sink creates.

use std::time::{Duration, Instant};

use outbox_core::avro::AvroSchema;
use outbox_core::table::{Table, TableNames};
use outbox_core::{Event, Schema};
use outbox_inbox::{ClientConfig, Inbox, InboxSettings};
use outbox_sqlx::{Column, OutboxDatabase, Sink, SqlxInbox, Value};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Serialize;
use sqlx::Pool;
use uuid::Uuid;

use super::upstream;

#[derive(Debug, Clone, Serialize, AvroSchema)]
#[avro(namespace = "com.acme.capture")]
enum Op {
    #[serde(rename = "c")]
    C,
    #[serde(rename = "u")]
    U,
    #[serde(rename = "d")]
    D,
}

#[derive(Debug, Clone, Serialize, AvroSchema)]
#[avro(namespace = "com.acme.capture")]
struct OrderRow {
    order_id: String,
    total_cents: i64,
    note: Option<String>,
}

/// A captured change of the orders table, as DESIGN §8 shapes it.
#[derive(Debug, Clone, Serialize, AvroSchema)]
#[avro(namespace = "com.acme.capture")]
struct OrderChange {
    op: Op,
    before: Option<OrderRow>,
    after: Option<OrderRow>,
    ts: i64,
}

impl Event for OrderChange {
    const TOPIC: &'static str = "inbox-sink-orders";
    fn key(&self) -> Option<String> {
        self.after
            .as_ref()
            .or(self.before.as_ref())
            .map(|r| r.order_id.clone())
    }
}

fn change(op: Op, id: &str, total: i64, note: Option<&str>) -> OrderChange {
    let row = OrderRow {
        order_id: id.into(),
        total_cents: total,
        note: note.map(Into::into),
    };
    let (before, after) = match op {
        Op::D => (Some(row), None),
        _ => (None, Some(row)),
    };
    OrderChange {
        op,
        before,
        after,
        ts: 0,
    }
}

/// c o-1, c o-2, c o-3, u o-1, d o-2, then a tombstone for o-3: o-1 stays, updated.
pub(crate) async fn upserts_and_deletes<DB: OutboxDatabase>(pool: Pool<DB>) {
    let Some(bootstrap) = upstream::broker() else {
        return;
    };
    let id = Uuid::now_v7().simple().to_string();
    let topic = format!("sink-{id}");
    upstream::create_topic(&bootstrap, &topic, 1).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let events = [
        change(Op::C, "o-1", 100, Some("first")),
        change(Op::C, "o-2", 200, None),
        change(Op::C, "o-3", 300, None),
        change(Op::U, "o-1", 150, None),
        change(Op::D, "o-2", 200, None),
    ];
    let registry = upstream::publish_through_relay(&bootstrap, &topic, &events, dir.path()).await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("producer");
    let ce = rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
        key: "ce_id",
        value: Some("tombstone-o-3"),
    });
    let tombstone = FutureRecord::<str, [u8]>::to(&topic)
        .partition(0)
        .key("o-3")
        .headers(ce);
    producer
        .send(tombstone, Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)
        .expect("tombstone");

    let names = TableNames::with_prefix(&format!("s{}", &id[20..])).expect("names");
    let table = format!("{}_orders", names.name(Table::Inbox));
    let schema = Schema::from_avro(&OrderChange::get_schema()).expect("schema");
    let sink = Sink::new(
        schema,
        &table,
        "order_id",
        &[("total_cents", "total_cents"), ("note", "note")],
    )
    .expect("sink");
    sink.create_table(&pool)
        .await
        .expect("create the table from the schema");
    let backend = SqlxInbox::with_effect(pool.clone(), &names, sink);
    backend.migrate(&names).await.expect("migrate");
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &bootstrap);
    let inbox = Inbox::new(
        backend,
        registry,
        config,
        InboxSettings::new(format!("g-{id}"), [topic]),
    )
    .expect("inbox");
    let metrics = inbox.metrics();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = tokio::spawn(inbox.run(async move {
        let _ = stopped.await;
    }));
    let deadline = Instant::now() + Duration::from_secs(60);
    while metrics.processed.get() + metrics.dead_lettered.get() < 6 {
        assert!(
            Instant::now() < deadline,
            "the sink handled {} of 6",
            metrics.processed.get()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(());
    runner.await.expect("join").expect("run");
    assert_eq!(
        metrics.processed.get(),
        6,
        "every change applied, none dead-lettered"
    );

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
