//! The test broker (tansu, started by `.ci/run`) for tests that need a real one: the relay's
//! end-to-end tests and the inbox's (outbox-sqlx and outbox-diesel include this file by path,
//! so there is one copy and no published test crate).

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

/// The test broker's bootstrap servers, or a skip (a failure under `CI=true`).
pub(crate) fn broker() -> Option<String> {
    match std::env::var("KAFKA_BOOTSTRAP_SERVERS") {
        Ok(servers) if !servers.is_empty() => Some(servers),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but KAFKA_BOOTSTRAP_SERVERS is not set (.ci/run starts the broker)")
        }
        _ => {
            eprintln!("skipping: KAFKA_BOOTSTRAP_SERVERS is not set");
            None
        }
    }
}

/// Creates `topic` with `partitions` on the broker at `bootstrap` (one that exists is fine:
/// tansu does not create topics on produce, and fixed names outlive a test run).
pub(crate) async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    create_topic_with(config, topic, partitions).await;
}

/// Creates `topic` with `partitions` through an admin client made from `config` (TLS or SASL
/// settings included); a topic that exists already is fine.
pub(crate) async fn create_topic_with(config: ClientConfig, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = config.create().expect("admin client");
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create topics");
    for result in results {
        match result {
            Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => panic!("topic {topic} not created: {code}"),
        }
    }
}
