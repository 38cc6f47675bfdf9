//! The registry engine over the in-memory store: the shared conformance suite, concurrent
//! registrations, and subject naming.

use std::sync::Arc;

use outbox_core::compat::CompatibilityMode;
use outbox_core::registry::{MemorySchemaStore, Registry, SubjectNameStrategy, conformance};
use outbox_core::{Error, Schema, SchemaId};

#[tokio::test]
async fn memory_store_passes_the_conformance_suite() {
    conformance::run_all(&MemorySchemaStore::default(), "memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registrations_get_distinct_versions_and_ids() {
    let registry = Arc::new(
        Registry::new(MemorySchemaStore::default()).with_default_mode(CompatibilityMode::None),
    );
    let tasks: Vec<_> = (1..=16)
        .map(|fields| {
            let registry = Arc::clone(&registry);
            tokio::spawn(async move {
                let schema = conformance::sample_schema("Concurrent", fields);
                // Every schema twice, from two tasks at once.
                let (a, b) = tokio::join!(
                    registry.register("c-value", &schema),
                    registry.register("c-value", &schema)
                );
                let (a, b) = (a.expect("registered"), b.expect("registered"));
                assert_eq!((a.id, a.version), (b.id, b.version));
                a
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("task"));
    }
    let mut versions: Vec<u32> = results.iter().map(|r| r.version).collect();
    versions.sort_unstable();
    assert_eq!(
        versions,
        (1..=16).collect::<Vec<_>>(),
        "no duplicate or lost versions"
    );
    let mut ids: Vec<u32> = results.iter().map(|r| r.id.get()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 16, "no duplicate ids");
}

#[tokio::test]
async fn second_unrelated_type_on_a_topic_is_refused_under_topic_name_strategy() {
    let registry = Registry::new(MemorySchemaStore::default());
    let placed = Schema::parse_str(r#"{"type":"record","name":"com.acme.OrderPlaced","fields":[{"name":"id","type":"string"}]}"#).expect("valid");
    let shipped = Schema::parse_str(r#"{"type":"record","name":"com.acme.OrderShipped","fields":[{"name":"id","type":"string"}]}"#).expect("valid");
    let topic_subject = |s: &Schema| {
        SubjectNameStrategy::TopicName.subject("orders", &s.full_name().expect("named"))
    };
    registry
        .register(&topic_subject(&placed), &placed)
        .await
        .expect("first type");
    let err = registry
        .register(&topic_subject(&shipped), &shipped)
        .await
        .expect_err("second type refused");
    match &err {
        Error::IncompatibleSchema {
            subject, problems, ..
        } => {
            assert_eq!(subject, "orders-value");
            assert!(
                problems
                    .iter()
                    .any(|p| p.incompatibility.kind.as_str() == "NAME_MISMATCH")
            );
        }
        other => panic!("expected IncompatibleSchema, got {other:?}"),
    }
    assert!(
        err.to_string().contains("`orders.v2`"),
        "hint names a new stream: {err}"
    );
    // With TopicRecordName each type has its own subject.
    let subject = |s: &Schema| {
        SubjectNameStrategy::TopicRecordName.subject("orders", &s.full_name().expect("named"))
    };
    registry
        .register(&subject(&placed), &placed)
        .await
        .expect("own subject");
    registry
        .register(&subject(&shipped), &shipped)
        .await
        .expect("own subject");
}

#[tokio::test]
async fn lookups_report_missing_subjects_versions_and_ids() {
    let registry = Registry::new(MemorySchemaStore::default());
    assert!(matches!(
        registry.version("nope", None).await,
        Err(Error::SubjectNotFound { .. })
    ));
    registry
        .register("s", &conformance::sample_schema("S", 1))
        .await
        .expect("registered");
    assert!(matches!(
        registry.version("s", Some(9)).await,
        Err(Error::VersionNotFound { version: 9, .. })
    ));
    assert_eq!(
        registry.version("s", None).await.expect("latest").version,
        1
    );
    assert!(matches!(
        registry.schema_by_id(SchemaId::new(999)).await,
        Err(Error::SchemaNotFound { id }) if id == SchemaId::new(999)
    ));
}

#[test]
fn modes_and_strategies_parse_case_insensitively() {
    assert_eq!(
        "backward_transitive"
            .parse::<CompatibilityMode>()
            .expect("mode"),
        CompatibilityMode::BackwardTransitive
    );
    assert_eq!(
        "Full".parse::<CompatibilityMode>().expect("mode"),
        CompatibilityMode::Full
    );
    assert!(matches!(
        "sideways".parse::<CompatibilityMode>(),
        Err(Error::InvalidConfig { .. })
    ));
    assert_eq!(
        "TopicRecordNameStrategy"
            .parse::<SubjectNameStrategy>()
            .expect("strategy"),
        SubjectNameStrategy::TopicRecordName
    );
}

#[tokio::test]
async fn memory_relay_store_passes_the_conformance_suite() {
    outbox_core::relay::conformance::run_all(|| async {
        outbox_core::relay::MemoryRelayStore::default()
    })
    .await;
}
