//! [`AdminStore`] checks: status, and dead letters listed, retried, discarded.

use std::time::Duration;

use super::sample_row;
use crate::NewOutboxRow;
use crate::relay::{AdminStore, FailureStore, InsertRows, LeaseStore, RelayStore, RelayStoreExt};

/// Status counts the backlog and the dead letters, gives the lag, and names the live leader.
pub async fn status_counts_and_names_leader<S>(store: &S)
where
    S: RelayStore + FailureStore + LeaseStore + AdminStore + InsertRows,
{
    let empty = store.status("relay").await.expect("status");
    assert_eq!((empty.backlog, empty.dead_letters), (0, 0));
    assert_eq!((empty.oldest_age, empty.leader), (None, None));
    let rows: Vec<NewOutboxRow> = (0..3).map(|n| sample_row("t", "k", n)).collect();
    store.insert_rows(&rows).await.expect("insert");
    let read = store.read_batch(3).await.expect("read");
    store
        .dead_letter(read[0].id, 1, "e", None)
        .await
        .expect("dead letter");
    let ttl = Duration::from_secs(30);
    store
        .try_acquire_lease("relay", "a", ttl)
        .await
        .expect("lease")
        .expect("free lease");
    let status = store.status("relay").await.expect("status");
    assert_eq!((status.backlog, status.dead_letters), (2, 1));
    assert!(
        status
            .oldest_age
            .is_some_and(|age| age < Duration::from_secs(60))
    );
    assert_eq!(status.leader.as_deref(), Some("a"));
    assert_eq!(store.status("other").await.expect("status").leader, None);
    store.release_lease("relay", "a").await.expect("release");
    assert_eq!(store.status("relay").await.expect("status").leader, None);
}

/// A dead letter is listed with its attempts and error, can be retried (back in its original
/// place, with its `ce_id`) or discarded.
pub async fn dead_letters_are_listed_retried_and_discarded<S>(store: &S)
where
    S: RelayStore + FailureStore + AdminStore + InsertRows,
{
    let rows: Vec<NewOutboxRow> = (0..3).map(|n| sample_row("t", "k", n)).collect();
    store.insert_rows(&rows).await.expect("insert");
    let read = store.read_batch(3).await.expect("read");
    let poison = &read[0];
    store
        .dead_letter(poison.id, 2, "still too large", None)
        .await
        .expect("dead letter");
    let dead = store.dead_letters(10).await.expect("list");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].record, *poison, "every column as it was");
    assert_eq!(
        (dead[0].attempts, dead[0].error.as_str()),
        (2, "still too large")
    );

    assert!(store.retry_dead_letter(poison.id).await.expect("retry"));
    let after = store.read_batch(10).await.expect("read");
    let retried = after.first().expect("retried row is first");
    assert_eq!(retried.event_id, poison.event_id, "same ce_id");
    assert_eq!(
        retried.id, poison.id,
        "a retried row keeps its place, ahead of its key's later events"
    );
    assert!(store.dead_letters(10).await.expect("list").is_empty());
    assert!(
        !store.retry_dead_letter(poison.id).await.expect("retry"),
        "nothing to retry"
    );

    store
        .dead_letter(retried.id, 3, "again", None)
        .await
        .expect("dead letter");
    assert!(
        store
            .discard_dead_letter(retried.id)
            .await
            .expect("discard")
    );
    assert!(
        !store
            .discard_dead_letter(retried.id)
            .await
            .expect("discard")
    );
    assert_eq!(store.status("relay").await.expect("status").dead_letters, 0);
    assert_eq!(store.read_batch(10).await.expect("read").len(), 2);
}
