//! The consumer runner: one poll thread feeding one ordered worker per assigned partition.

mod partition;
mod poll;
mod record;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use outbox_core::registry::{Decoder, Registry, SchemaStore};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::{Error, InboxBackend, InboxMetrics, InboxSettings, Result};
use partition::Partition;
use poll::InboxContext;

/// An idempotent Kafka consumer: each record is decoded with a registry to the backend's
/// reader schema, applied by the backend in one database transaction together with its
/// `ce_id` (a duplicate is skipped), and only then is its offset committed.
///
/// Records of one partition are processed in order, partitions concurrently. On a revoke the
/// partition's record in flight is awaited and its offset committed; nothing else is.
#[derive(Debug)]
pub struct Inbox<B, S> {
    shared: Arc<Shared<B, S>>,
    config: ClientConfig,
}

/// What the poll thread, the rebalance callbacks and the workers share.
#[derive(Debug)]
struct Shared<B, S> {
    backend: B,
    decoder: Decoder<S>,
    settings: InboxSettings,
    metrics: Arc<InboxMetrics>,
    /// `(topic, key)` pairs whose later records are dead-lettered (policy block).
    blocked: Mutex<HashSet<(String, Vec<u8>)>>,
    partitions: Mutex<HashMap<(String, i32), Arc<Partition>>>,
    stopping: AtomicBool,
    runtime: tokio::runtime::Handle,
}

impl<B: InboxBackend, S: SchemaStore + Send + Sync + 'static> Inbox<B, S> {
    /// An inbox consuming with `config` (bootstrap servers, TLS, SASL: any librdkafka consumer
    /// property, as the relay takes them) through `backend`, decoding with `registry`.
    ///
    /// The runner sets `group.id` from the settings and turns automatic commits and offset
    /// stores off; `auto.offset.reset` defaults to `earliest`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for unusable settings.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn new(
        backend: B,
        registry: Registry<S>,
        mut config: ClientConfig,
        settings: InboxSettings,
    ) -> Result<Self> {
        settings.validate()?;
        let reader = backend.reader_schema().map_err(|e| Error::InvalidConfig {
            key: "reader schema",
            reason: e.to_string(),
        })?;
        let decoder = match reader {
            Some(reader) => Decoder::new(registry).with_reader_schema(reader),
            None => Decoder::new(registry),
        };
        config
            .set("group.id", &settings.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false");
        if config.get("auto.offset.reset").is_none() {
            config.set("auto.offset.reset", "earliest");
        }
        Ok(Self {
            shared: Arc::new(Shared {
                backend,
                decoder,
                settings,
                metrics: Arc::new(InboxMetrics::new()),
                blocked: Mutex::default(),
                partitions: Mutex::default(),
                stopping: AtomicBool::new(false),
                runtime: tokio::runtime::Handle::current(),
            }),
            config,
        })
    }

    /// The runner's metrics.
    pub fn metrics(&self) -> Arc<InboxMetrics> {
        Arc::clone(&self.shared.metrics)
    }

    /// Consumes until `shutdown` completes, then finishes the records in flight, commits
    /// their offsets and leaves the group.
    ///
    /// # Errors
    ///
    /// [`Error::Kafka`] when the consumer cannot be created or subscribed; [`Error::Store`]
    /// when the dead-lettered keys cannot be read at start.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropping the future leaves the poll thread running until the process
    /// ends. Stop it through `shutdown`.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<()> {
        let shared = self.shared;
        let keys = shared
            .backend
            .dead_letter_keys(&shared.settings.group)
            .await
            .map_err(Error::Store)?;
        shared
            .blocked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(keys);
        let consumer: BaseConsumer<InboxContext<B, S>> = self
            .config
            .create_with_context(InboxContext {
                shared: Arc::clone(&shared),
            })
            .map_err(|source| Error::Kafka {
                operation: "create",
                source,
            })?;
        let topics: Vec<&str> = shared.settings.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics).map_err(|source| Error::Kafka {
            operation: "subscribe",
            source,
        })?;
        let retention = tokio::spawn(record::retention(Arc::clone(&shared)));
        let poller = {
            let shared = Arc::clone(&shared);
            tokio::task::spawn_blocking(move || poll::run(&consumer, &shared))
        };
        shutdown.await;
        shared.stopping.store(true, Ordering::SeqCst);
        retention.abort();
        poller.await.map_err(|e| Error::Thread(e.to_string()))
    }
}
