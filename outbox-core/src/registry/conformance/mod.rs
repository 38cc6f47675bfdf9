//! The behaviour every [`SchemaStore`] must show, as functions each back end's tests call.
//!
//! Each function panics with a message when the store breaks the contract. `prefix` keeps the
//! subjects of one run apart from others sharing the same database.
//!
//! # Examples
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use outbox_core::registry::{conformance, MemorySchemaStore};
//!
//! conformance::run_all(&MemorySchemaStore::default(), "doc").await;
//! # });
//! ```

mod deletes;

pub use deletes::{
    hard_delete_removes_only_soft_deleted_versions, soft_delete_hides_a_version_and_keeps_its_id,
    usage_counts_every_holder,
};

use super::{Registry, SchemaStore};
use crate::Error;
use crate::compat::CompatibilityMode;
use crate::schema::Schema;

/// A record schema `name` with `fields` int fields `f0..fN` (the later ones defaulted).
pub fn sample_schema(name: &str, fields: usize) -> Schema {
    let fields: Vec<String> = (0..fields)
        .map(|i| {
            if i == 0 {
                format!(r#"{{"name":"f{i}","type":"int"}}"#)
            } else {
                format!(r#"{{"name":"f{i}","type":"int","default":0}}"#)
            }
        })
        .collect();
    let json = format!(
        r#"{{"type":"record","name":"{name}","fields":[{}]}}"#,
        fields.join(",")
    );
    Schema::parse_str(&json).expect("sample schema is valid")
}

/// Runs every check below.
pub async fn run_all<S: SchemaStore>(store: &S, prefix: &str) {
    registration_is_idempotent(store, prefix).await;
    versions_count_up_and_ids_are_global(store, prefix).await;
    racing_insert_is_a_conflict(store, prefix).await;
    incompatible_schema_is_refused_and_nothing_stored(store, prefix).await;
    compatibility_settings_round_trip(store, prefix).await;
    single_reads_agree_with_versions(store, prefix).await;
    soft_delete_hides_a_version_and_keeps_its_id(store, prefix).await;
    hard_delete_removes_only_soft_deleted_versions(store, prefix).await;
    usage_counts_every_holder(store, prefix).await;
}

/// `version`, `find` and `version_numbers` (which stores may answer with one row) agree with
/// `versions`, and answer `None` / empty for what is not there.
pub async fn single_reads_agree_with_versions<S: SchemaStore>(store: &S, prefix: &str) {
    let registry = Registry::new(store).with_default_mode(CompatibilityMode::Backward);
    let subject = format!("{prefix}-single-value");
    let missing = format!("{prefix}-single-missing-value");
    for fields in 1..=3 {
        registry
            .register(&subject, &sample_schema("Single", fields))
            .await
            .expect("register");
    }
    let all = store.versions(&subject).await.expect("versions");
    assert_eq!(all.len(), 3);
    let latest = store.version(&subject, None).await.expect("latest");
    assert_eq!(latest.as_ref(), all.last(), "latest is the last version");
    for v in &all {
        let one = store.version(&subject, Some(v.version)).await.expect("one");
        assert_eq!(one.as_ref(), Some(v), "version {}", v.version);
        let found = store.find(&subject, &v.schema).await.expect("find");
        assert_eq!(found.as_ref(), Some(v), "find version {}", v.version);
    }
    assert_eq!(
        store.version_numbers(&subject).await.expect("numbers"),
        vec![1, 2, 3]
    );
    assert_eq!(
        store.version(&subject, Some(4)).await.expect("absent"),
        None
    );
    assert_eq!(
        store
            .version(&subject, Some(u32::MAX))
            .await
            .expect("absent"),
        None
    );
    assert_eq!(store.version(&missing, None).await.expect("absent"), None);
    let other = sample_schema("Other", 1);
    assert_eq!(store.find(&subject, &other).await.expect("absent"), None);
    assert!(
        store
            .version_numbers(&missing)
            .await
            .expect("none")
            .is_empty()
    );
}

/// Registering the same schema twice gives the same id and version.
pub async fn registration_is_idempotent<S: SchemaStore>(store: &S, prefix: &str) {
    let registry = Registry::new(store);
    let subject = format!("{prefix}-idem-value");
    let schema = sample_schema("Idem", 1);
    let a = registry
        .register(&subject, &schema)
        .await
        .expect("first registration");
    let b = registry
        .register(&subject, &schema)
        .await
        .expect("second registration");
    assert_eq!(
        (a.id, a.version),
        (b.id, b.version),
        "registration must be idempotent"
    );
    assert_eq!(a.version, 1, "first version is 1");
    let versions = store.versions(&subject).await.expect("versions");
    assert_eq!(versions.len(), 1, "one version after registering twice");
}

/// New versions count 1, 2, 3; the same schema in another subject reuses its id; distinct
/// schemas get distinct ids; ids resolve back to their schemas.
pub async fn versions_count_up_and_ids_are_global<S: SchemaStore>(store: &S, prefix: &str) {
    let registry = Registry::new(store).with_default_mode(CompatibilityMode::Backward);
    let subject = format!("{prefix}-versions-value");
    let mut ids = Vec::new();
    for (i, fields) in (1..=3).enumerate() {
        let r = registry
            .register(&subject, &sample_schema("Versioned", fields))
            .await
            .expect("compatible registration");
        assert_eq!(r.version as usize, i + 1, "versions count up from 1");
        ids.push(r.id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 3, "distinct schemas get distinct ids");
    let other = format!("{prefix}-versions-other-value");
    let reused = registry
        .register(&other, &sample_schema("Versioned", 2))
        .await
        .expect("registration in another subject");
    assert_eq!(
        reused.id, ids[1],
        "the same schema has the same id in every subject"
    );
    assert_eq!(reused.version, 1);
    let schema = store
        .schema_by_id(ids[2])
        .await
        .expect("lookup")
        .expect("id exists");
    assert_eq!(schema, sample_schema("Versioned", 3));
    let subjects = store.subjects().await.expect("subjects");
    assert!(subjects.contains(&subject) && subjects.contains(&other));
}

/// Inserting a version number or a schema that is already in the subject fails with
/// [`Error::Conflict`] and stores nothing.
pub async fn racing_insert_is_a_conflict<S: SchemaStore>(store: &S, prefix: &str) {
    let subject = format!("{prefix}-race-value");
    store
        .insert_version(&subject, 1, &sample_schema("Race", 1))
        .await
        .expect("first insert");
    let same_version = store
        .insert_version(&subject, 1, &sample_schema("Race", 2))
        .await;
    assert!(
        matches!(same_version, Err(Error::Conflict { .. })),
        "a taken version is a conflict, got {same_version:?}"
    );
    let same_schema = store
        .insert_version(&subject, 2, &sample_schema("Race", 1))
        .await;
    assert!(
        matches!(same_schema, Err(Error::Conflict { .. })),
        "a schema already in the subject is a conflict, got {same_schema:?}"
    );
    assert_eq!(store.versions(&subject).await.expect("versions").len(), 1);
}

/// An incompatible schema is refused with its incompatibilities, and not stored.
pub async fn incompatible_schema_is_refused_and_nothing_stored<S: SchemaStore>(
    store: &S,
    prefix: &str,
) {
    let registry = Registry::new(store);
    let subject = format!("{prefix}-breaking-value");
    registry
        .register(&subject, &sample_schema("Breaking", 1))
        .await
        .expect("first version");
    let breaking = Schema::parse_str(
        r#"{"type":"record","name":"Breaking","fields":[{"name":"f0","type":"string"}]}"#,
    )
    .expect("valid schema");
    match registry.register(&subject, &breaking).await {
        Err(Error::IncompatibleSchema { problems, mode, .. }) => {
            assert_eq!(mode, CompatibilityMode::FullTransitive);
            assert!(!problems.is_empty(), "incompatibilities are listed");
        }
        other => panic!("expected IncompatibleSchema, got {other:?}"),
    }
    assert_eq!(store.versions(&subject).await.expect("versions").len(), 1);
}

/// Subject and global compatibility settings are stored, read back and deleted.
pub async fn compatibility_settings_round_trip<S: SchemaStore>(store: &S, prefix: &str) {
    let subject = format!("{prefix}-config-value");
    assert_eq!(
        store.compatibility(Some(&subject)).await.expect("read"),
        None
    );
    store
        .set_compatibility(Some(&subject), Some(CompatibilityMode::Forward))
        .await
        .expect("set");
    assert_eq!(
        store.compatibility(Some(&subject)).await.expect("read"),
        Some(CompatibilityMode::Forward)
    );
    let registry = Registry::new(store);
    assert_eq!(
        registry.effective_mode(&subject).await.expect("mode"),
        CompatibilityMode::Forward
    );
    store
        .set_compatibility(Some(&subject), None)
        .await
        .expect("delete");
    assert_eq!(
        store.compatibility(Some(&subject)).await.expect("read"),
        None
    );
}
