//! The delete rules every store with deletes must follow: soft delete, permanent delete and
//! usage counts, as a user of the registry sees them.

use super::sample_schema;
use crate::compat::CompatibilityMode;
use crate::registry::{Registry, SchemaStore, VersionState};
use crate::{DeleteRefusal, Error};

/// A soft-deleted version leaves every read but `schema_by_id` and `version_states`; its
/// number is never given again; registering its schema again brings it back.
pub async fn soft_delete_hides_a_version_and_keeps_its_id<S: SchemaStore>(store: &S, prefix: &str) {
    let registry = Registry::new(store).with_default_mode(CompatibilityMode::Backward);
    let subject = format!("{prefix}-soft-value");
    let (one, two) = (sample_schema("Soft", 1), sample_schema("Soft", 2));
    let v1 = registry.register(&subject, &one).await.expect("v1");
    let v2 = registry.register(&subject, &two).await.expect("v2");
    assert_eq!(
        registry
            .delete_version(&subject, None, false)
            .await
            .expect("soft delete"),
        2,
        "the latest version is deleted"
    );
    assert_eq!(
        store.versions(&subject).await.expect("versions"),
        vec![v1.clone()]
    );
    assert_eq!(store.version(&subject, Some(2)).await.expect("read"), None);
    assert_eq!(
        store.version(&subject, None).await.expect("latest"),
        Some(v1.clone())
    );
    assert_eq!(store.find(&subject, &two).await.expect("find"), None);
    assert_eq!(
        store.version_numbers(&subject).await.expect("numbers"),
        vec![1]
    );
    assert_eq!(store.holders(v2.id).await.expect("holders"), vec![]);
    assert_eq!(
        store.holders(v1.id).await.expect("holders"),
        vec![(subject.clone(), 1)]
    );
    assert_eq!(
        store.schema_by_id(v2.id).await.expect("by id"),
        Some(two.clone()),
        "a soft-deleted schema's id still resolves"
    );
    assert_eq!(
        store.version_states(&subject).await.expect("states"),
        vec![
            VersionState {
                version: 1,
                id: v1.id,
                deleted: false
            },
            VersionState {
                version: 2,
                id: v2.id,
                deleted: true
            },
        ]
    );
    assert_eq!(store.next_version(&subject).await.expect("next"), 3);
    let again = registry.delete_version(&subject, Some(2), false).await;
    assert!(
        matches!(
            &again,
            Err(Error::DeleteRefused {
                refusal: DeleteRefusal::SoftDeleted,
                ..
            })
        ),
        "a soft-deleted version is not soft-deleted twice, got {again:?}"
    );
    let three = registry
        .register(&subject, &sample_schema("Soft", 3))
        .await
        .expect("v3");
    assert_eq!(three.version, 3, "a soft-deleted number is not given again");
    let restored = registry.register(&subject, &two).await.expect("restore");
    assert_eq!(
        (restored.id, restored.version),
        (v2.id, 2),
        "restored as it was"
    );
    assert_eq!(
        store.version_numbers(&subject).await.expect("numbers"),
        vec![1, 2, 3]
    );
}

/// A permanent delete is refused for a live version and removes a soft-deleted one for
/// good; a subject whose versions are all soft-deleted is no longer listed.
pub async fn hard_delete_removes_only_soft_deleted_versions<S: SchemaStore>(
    store: &S,
    prefix: &str,
) {
    let registry = Registry::new(store).with_default_mode(CompatibilityMode::Backward);
    let subject = format!("{prefix}-hard-value");
    registry
        .register(&subject, &sample_schema("Hard", 1))
        .await
        .expect("v1");
    let v2 = registry
        .register(&subject, &sample_schema("Hard", 2))
        .await
        .expect("v2");
    let live = registry.delete_version(&subject, Some(2), true).await;
    assert!(
        matches!(
            &live,
            Err(Error::DeleteRefused {
                refusal: DeleteRefusal::NotSoftDeleted,
                ..
            })
        ),
        "a live version is not deleted for good, got {live:?}"
    );
    assert_eq!(
        store.version_numbers(&subject).await.expect("numbers"),
        vec![1, 2]
    );
    registry
        .delete_version(&subject, Some(2), false)
        .await
        .expect("soft");
    assert_eq!(
        registry
            .delete_version(&subject, Some(2), true)
            .await
            .expect("hard"),
        2
    );
    let states = store.version_states(&subject).await.expect("states");
    assert_eq!(
        states.iter().map(|s| s.version).collect::<Vec<_>>(),
        vec![1]
    );
    assert_eq!(store.schema_usage(v2.id).await.expect("usage"), (0, 0));
    assert_eq!(
        registry
            .delete_subject(&subject, false)
            .await
            .expect("soft subject"),
        vec![1]
    );
    assert!(
        !store.subjects().await.expect("subjects").contains(&subject),
        "a subject with only soft-deleted versions is not listed"
    );
    assert_eq!(
        registry
            .delete_subject(&subject, true)
            .await
            .expect("hard subject"),
        vec![1]
    );
    assert!(
        store
            .version_states(&subject)
            .await
            .expect("states")
            .is_empty()
    );
}

/// `schema_usage` counts every version holding an id, in any subject, soft-deleted ones
/// included (fresh tables carry no outbox rows).
pub async fn usage_counts_every_holder<S: SchemaStore>(store: &S, prefix: &str) {
    let registry = Registry::new(store);
    let schema = sample_schema("Used", 1);
    let a = format!("{prefix}-used-a-value");
    let b = format!("{prefix}-used-b-value");
    let first = registry.register(&a, &schema).await.expect("a");
    let second = registry.register(&b, &schema).await.expect("b");
    assert_eq!(first.id, second.id);
    assert_eq!(store.schema_usage(first.id).await.expect("usage"), (2, 0));
    registry
        .delete_version(&b, Some(1), false)
        .await
        .expect("soft");
    assert_eq!(
        store.schema_usage(first.id).await.expect("usage"),
        (2, 0),
        "a soft-deleted version still holds its id"
    );
    assert_eq!(
        store.holders(first.id).await.expect("holders"),
        vec![(a.clone(), 1)]
    );
}
