//! What the inbox runner's tests share: an in-memory backend that records what it saw, the
//! registry the records are written with, and a raw Kafka producer.

pub(crate) mod raw_produce;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use outbox_core::encode::EventCodec;
use outbox_core::registry::{MemorySchemaStore, Registry};
use outbox_core::{PoisonPolicy, Schema, SchemaId};
use outbox_inbox::{
    Applied, ApplyError, ClientConfig, DeadLetter, Inbox, InboxBackend, InboxEvent, InboxSettings,
    Reason,
};

/// The ticks' schema, registered first.
pub(crate) const SCHEMA: &str =
    r#"{"type":"record","name":"Tick","fields":[{"name":"n","type":"long"}]}"#;

/// A second record type, with a string and an array whose lengths a hostile value declares;
/// registered second.
pub(crate) const BLOB: &str = r#"{"type":"record","name":"Blob","fields":[{"name":"s","type":"string"},{"name":"a","type":{"type":"array","items":"long"}}]}"#;

/// What the backend saw, in order.
#[derive(Default)]
pub(crate) struct Seen {
    /// `(ce_id, offset)` of each event applied.
    pub(crate) applied: Vec<(String, i64)>,
    /// The `ce_id` of each call.
    pub(crate) calls: Vec<String>,
    /// `(offset, reason, stored value length)` of each dead letter.
    pub(crate) dead: Vec<(i64, Reason, Option<usize>)>,
}

/// An in-memory backend: `fail` store errors for `fail_id` before it applies; a panic for
/// `panic_id`; values read with `reader` when set.
#[derive(Default)]
pub(crate) struct Memory {
    pub(crate) seen: Mutex<Seen>,
    pub(crate) ids: Mutex<HashSet<String>>,
    pub(crate) fail_id: String,
    pub(crate) fail: AtomicU32,
    pub(crate) panic_id: String,
    pub(crate) reader: Option<Schema>,
}

/// [`Memory`] as an [`InboxBackend`].
pub(crate) struct Backend(pub(crate) Arc<Memory>);

impl InboxBackend for Backend {
    fn reader_schema(&self) -> outbox_core::Result<Option<Schema>> {
        Ok(self.0.reader.clone())
    }

    async fn apply(&self, _: &str, event: &InboxEvent) -> Result<Applied, ApplyError> {
        let m = &self.0;
        m.seen.lock().expect("lock").calls.push(event.ce_id.clone());
        assert_ne!(
            event.ce_id, m.panic_id,
            "the test's handler panics on purpose"
        );
        let failing = event.ce_id == m.fail_id
            && m.fail
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if failing {
            return Err(ApplyError::Store(outbox_core::Error::Store {
                operation: "test: apply",
                retryable: true,
                source: "the test's database is down".into(),
            }));
        }
        if !m.ids.lock().expect("lock").insert(event.ce_id.clone()) {
            return Ok(Applied::Duplicate);
        }
        let mut seen = m.seen.lock().expect("lock");
        seen.applied.push((event.ce_id.clone(), event.offset));
        Ok(Applied::Processed)
    }

    async fn dead_letter(&self, _: &str, letter: DeadLetter<'_>) -> outbox_core::Result<()> {
        let mut seen = self.0.seen.lock().expect("lock");
        seen.dead.push((
            letter.offset,
            letter.reason.clone(),
            letter.value.map(<[u8]>::len),
        ));
        Ok(())
    }

    async fn dead_letter_keys(&self, _: &str) -> outbox_core::Result<Vec<(String, Vec<u8>)>> {
        Ok(Vec::new())
    }

    async fn purge(&self, _: &str, _: Duration) -> outbox_core::Result<u64> {
        Ok(0)
    }
}

/// A registry holding the tick schema (the first registered) and the blob schema (the
/// second): the same ids every time.
pub(crate) async fn registry() -> (Registry<MemorySchemaStore>, SchemaId, SchemaId) {
    let registry = Registry::new(MemorySchemaStore::default());
    let mut ids = Vec::new();
    for (subject, schema) in [("ticks-value", SCHEMA), ("blobs-value", BLOB)] {
        let schema = Schema::parse_str(schema).expect("schema");
        ids.push(
            registry
                .register(subject, &schema)
                .await
                .expect("register")
                .id,
        );
    }
    (registry, ids[0], ids[1])
}

/// The tick codec.
pub(crate) async fn tick_codec() -> EventCodec {
    let (_, id, _) = registry().await;
    EventCodec::new(
        "ticks-value",
        id,
        Schema::parse_str(SCHEMA).expect("schema"),
    )
}

/// A tick value, Confluent-framed.
pub(crate) fn tick(codec: &EventCodec, n: i64) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Tick {
        n: i64,
    }
    codec.encode(&Tick { n }).expect("encode")
}

/// Test settings: quick commits and retries, policy skip.
pub(crate) fn settings(group: &str, topic: &str) -> InboxSettings {
    let mut settings = InboxSettings::new(group, [topic]);
    settings.commit_interval = Duration::from_millis(50);
    settings.backoff = Duration::from_millis(50);
    settings.max_backoff = Duration::from_millis(100);
    settings.poison_policy = PoisonPolicy::Skip;
    settings
}

/// A running inbox: its stop signal and task.
pub(crate) type Running = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<outbox_inbox::Result<()>>,
);

/// Starts an inbox over `memory` on the broker at `bootstrap`.
pub(crate) async fn start(
    memory: &Arc<Memory>,
    bootstrap: &str,
    settings: InboxSettings,
) -> Running {
    let mut kafka = ClientConfig::new();
    kafka.set("bootstrap.servers", bootstrap);
    let backend = Backend(Arc::clone(memory));
    let inbox = Inbox::new(backend, registry().await.0, kafka, settings).expect("inbox");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = tokio::spawn(inbox.run(async move {
        let _ = stopped.await;
    }));
    (stop, runner)
}

/// Waits until `done`, failing after 30 s.
pub(crate) async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
