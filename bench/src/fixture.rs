//! Brokers, fresh tables and preloaded rows every phase starts from.

use std::sync::Arc;
use std::time::Duration;

use outbox_core::NewOutboxRow;
use outbox_core::encode::EventCodec;
use outbox_core::relay::InsertRows;
use outbox_core::table::TableNames;
use outbox_relay::config::RelayConfig;
use outbox_relay::settings::Settings;
use outbox_sqlx::SqlxRelayStore;
use outbox_sqlx::postgres::PgOutbox;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use sqlx::PgPool;

use crate::events::Payload;

pub(crate) struct Broker {
    pub(crate) name: &'static str,
    pub(crate) bootstrap: String,
    pub(crate) mock: Option<MockCluster<'static, DefaultProducerContext>>,
    pub(crate) partitions: i32,
}

impl Broker {
    pub(crate) fn mock() -> anyhow::Result<Self> {
        let mock = MockCluster::new(1)?;
        Ok(Self {
            name: "mock",
            bootstrap: mock.bootstrap_servers(),
            mock: Some(mock),
            partitions: 64,
        })
    }

    pub(crate) fn real(bootstrap: String) -> Self {
        Self {
            name: "tansu",
            bootstrap,
            mock: None,
            partitions: 16,
        }
    }

    pub(crate) async fn topic(&self, prefix: &str) -> anyhow::Result<String> {
        self.topic_with(prefix, self.partitions).await
    }

    /// A fresh topic with `partitions` partitions (the broker's default is [`Self::partitions`]).
    pub(crate) async fn topic_with(&self, prefix: &str, partitions: i32) -> anyhow::Result<String> {
        let topic = format!(
            "{prefix}-{}",
            &uuid::Uuid::now_v7().simple().to_string()[20..]
        );
        self.create_with(&topic, partitions).await?;
        Ok(topic)
    }

    pub(crate) async fn create(&self, topic: &str) -> anyhow::Result<()> {
        self.create_with(topic, self.partitions).await
    }

    /// Creates `topic` with `partitions` partitions; a topic that exists is left as it is.
    pub(crate) async fn create_with(&self, topic: &str, partitions: i32) -> anyhow::Result<()> {
        match &self.mock {
            Some(mock) => match mock.create_topic(topic, partitions, 1) {
                Ok(())
                | Err(rdkafka::error::KafkaError::MockCluster(
                    rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists,
                )) => {}
                Err(e) => return Err(e.into()),
            },
            None => {
                let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
                    .set("bootstrap.servers", &self.bootstrap)
                    .create()?;
                let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
                for result in admin
                    .create_topics(
                        &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
                        &options,
                    )
                    .await?
                {
                    match result {
                        Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
                        Err((t, e)) => anyhow::bail!("creating {t}: {e}"),
                    }
                }
            }
        }
        Ok(())
    }

    /// Deletes a topic a run is done with, so the test broker (in-memory storage, shared by
    /// every bench and test) does not keep its records. Best effort: a broker that cannot
    /// delete keeps them. The mock cluster's topics go with the process.
    pub(crate) async fn delete(&self, topic: &str) {
        if self.mock.is_some() {
            return;
        }
        let admin: AdminClient<DefaultClientContext> = match ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
        {
            Ok(admin) => admin,
            Err(_) => return,
        };
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(5)));
        let deleted = tokio::time::timeout(
            Duration::from_secs(10),
            admin.delete_topics(&[topic], &options),
        )
        .await;
        if !matches!(deleted, Ok(Ok(_))) {
            eprintln!(
                "  (could not delete topic {topic} on {}: it keeps its records)",
                self.name
            );
        }
    }

    pub(crate) fn config(
        &self,
        pg_url: &str,
        names: &TableNames,
        extra: &str,
    ) -> anyhow::Result<Settings> {
        let prefix = names.name(outbox_core::table::Table::Events).to_string();
        let text = format!(
            "database_url = \"{pg_url}\"\ntable_prefix = \"{}\"\n[kafka]\nbootstrap_servers = \"{}\"\n\
             [relay]\nbatch_size = 1000\npoll_interval = \"100ms\"\n{extra}\n[http]\nlisten = \"\"\n[registry]\nlisten = \"\"\n",
            prefix.trim_end_matches("_events"),
            self.bootstrap
        );
        Ok(Settings::new(RelayConfig::from_toml(&text)?)?)
    }
}

pub(crate) fn fresh_names(tag: &str) -> anyhow::Result<TableNames> {
    Ok(TableNames::with_prefix(&format!(
        "bench_{tag}_{}",
        &uuid::Uuid::now_v7().simple().to_string()[24..]
    ))?)
}

pub(crate) async fn outbox(
    pool: &PgPool,
    names: &TableNames,
    notify: bool,
) -> anyhow::Result<PgOutbox> {
    Ok(PgOutbox::builder(pool.clone())
        .table_names(names.clone())
        .register::<Payload>()
        .notify_relay(notify)
        .build()
        .await?)
}

/// Fresh tables with the payload schema registered, and a relay store over them.
pub(crate) struct Fixture {
    pub(crate) names: TableNames,
    pub(crate) codec: Arc<EventCodec>,
    pub(crate) config: Settings,
    pub(crate) store: SqlxRelayStore<sqlx::Postgres>,
}

pub(crate) async fn fixture(
    pool: &PgPool,
    pg_url: &str,
    broker: &Broker,
    tag: &str,
) -> anyhow::Result<Fixture> {
    let names = fresh_names(tag)?;
    let codec = outbox(pool, &names, false)
        .await?
        .register::<Payload>()
        .await?;
    let config = broker.config(pg_url, &names, "")?;
    let store = config.relay_store(pool.clone())?;
    Ok(Fixture {
        names,
        codec,
        config,
        store,
    })
}

/// Rows for `n` events of `payload_bytes` on `topic`, over 1,000 keys.
pub(crate) fn rows(
    codec: &EventCodec,
    topic: &str,
    n: usize,
    payload_bytes: usize,
) -> anyhow::Result<Vec<NewOutboxRow>> {
    let blob = "x".repeat(payload_bytes.saturating_sub(30));
    (0..n)
        .map(|i| {
            let event = Payload {
                key: format!("key-{}", i % 1000),
                seq: i as i64,
                blob: blob.clone(),
            };
            let mut row = NewOutboxRow::from_event(codec, &event)?;
            row.topic = topic.to_owned();
            Ok(row)
        })
        .collect()
}

/// Rows for `n` events of `payload_bytes` on `topic`, over 1,000 keys, each payload a
/// different run of pseudo-random letters: PostgreSQL compresses a large row of one repeated
/// letter to almost nothing, which would flatter the database at 10 KiB.
pub(crate) fn random_rows(
    codec: &EventCodec,
    topic: &str,
    n: usize,
    payload_bytes: usize,
) -> anyhow::Result<Vec<NewOutboxRow>> {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..n)
        .map(|i| {
            let blob = (0..payload_bytes.saturating_sub(30))
                .map(|_| {
                    // xorshift64: cheap, and enough to defeat pglz.
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    char::from(LETTERS[(state % LETTERS.len() as u64) as usize])
                })
                .collect();
            let event = Payload {
                key: format!("key-{}", i % 1000),
                seq: i as i64,
                blob,
            };
            let mut row = NewOutboxRow::from_event(codec, &event)?;
            row.topic = topic.to_owned();
            Ok(row)
        })
        .collect()
}

pub(crate) async fn preload(
    store: &SqlxRelayStore<sqlx::Postgres>,
    rows: &[NewOutboxRow],
) -> anyhow::Result<()> {
    for chunk in rows.chunks(5000) {
        store.insert_rows(chunk).await?;
    }
    Ok(())
}

pub(crate) async fn drop_tables(pool: &PgPool, names: &TableNames) -> anyhow::Result<()> {
    for table in outbox_core::table::Table::ALL {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP TABLE IF EXISTS {}",
            names.qualified(outbox_core::table::Dialect::Postgres, table)
        )))
        .execute(pool)
        .await?;
    }
    Ok(())
}
