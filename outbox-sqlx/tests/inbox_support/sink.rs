//! The sink mode: change events (`{op, before, after, ts}`) published through the outbox and
//! drained by the relay, plus a tombstone, upserted and deleted in a table the sink creates.

use std::time::{Duration, Instant};

use outbox_core::avro::AvroSchema;
use outbox_core::table::{Table, TableNames};
use outbox_core::{Event, Schema};
use outbox_inbox::{ClientConfig, Inbox, InboxBackend, InboxSettings};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Serialize;
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

/// One sink test's topic, names and upstream: c o-1, c o-2, c o-3, u o-1, d o-2 published
/// through the relay, then a tombstone for o-3. Applied, o-1 stays, updated (note back to null).
pub(crate) struct SinkScenario {
    bootstrap: String,
    topic: String,
    id: String,
    /// The test's inbox table names.
    pub(crate) names: TableNames,
    /// The sink's table (unquoted).
    pub(crate) table: String,
    registry: outbox_core::registry::Registry<outbox_sqlx::SqlxSchemaStore<sqlx::Sqlite>>,
    _dir: tempfile::TempDir,
}

/// The sink's reader schema: the change event's.
pub(crate) fn schema() -> Schema {
    Schema::from_avro(&OrderChange::get_schema()).expect("schema")
}

/// The sink's column mapping.
pub(crate) const MAPPING: [(&str, &str); 2] = [("total_cents", "total_cents"), ("note", "note")];

impl SinkScenario {
    /// Publishes the changes and the tombstone; `None` when there is no test broker.
    pub(crate) async fn prepare() -> Option<Self> {
        let bootstrap = upstream::broker()?;
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
        let registry =
            upstream::publish_through_relay(&bootstrap, &topic, &events, dir.path()).await;
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
        Some(Self {
            bootstrap,
            topic,
            id,
            names,
            table,
            registry,
            _dir: dir,
        })
    }

    /// Runs an inbox over `backend` until the 6 records are handled, and checks that each was
    /// applied, none dead-lettered.
    pub(crate) async fn consume<B: InboxBackend>(self, backend: B) {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        let inbox = Inbox::new(
            backend,
            self.registry,
            config,
            InboxSettings::new(format!("g-{}", self.id), [self.topic]),
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
    }
}
