//! [`FailureStore`] checks: attempts, dead letters, blocked keys.

use super::sample_row;
use crate::NewOutboxRow;
use crate::relay::{FailureStore, InsertRows, RelayStore, RelayStoreExt};

/// Failures are counted per event; a dead-lettered row leaves the outbox, and its key is
/// blocked from its id; acknowledging a row forgets its attempts.
pub async fn failures_count_and_dead_letters_move<S>(store: &S)
where
    S: RelayStore + FailureStore + InsertRows,
{
    let rows: Vec<NewOutboxRow> = (0..4)
        .map(|n| sample_row("t", if n == 3 { "other" } else { "k" }, n))
        .collect();
    store.insert_rows(&rows).await.expect("insert");
    let read = store.read_batch(4).await.expect("read");
    let poison = &read[0];
    let fail = async |error| {
        store
            .record_failure(poison.event_id, error)
            .await
            .expect("record failure")
    };
    assert_eq!(fail("too large").await, 1);
    assert_eq!(fail("still too large").await, 2);
    assert!(store.blocked_keys().await.expect("blocked keys").is_empty());
    store
        .dead_letter(poison.id, 2, "still too large", None)
        .await
        .expect("dead letter");
    let left = store.read_batch(10).await.expect("read");
    assert_eq!(left.len(), 3, "the poison row left the outbox");
    assert!(left.iter().all(|r| r.event_id != poison.event_id));
    store
        .dead_letter(left[0].id, 1, "same key", None)
        .await
        .expect("dead letter");
    assert_eq!(
        store.blocked_keys().await.expect("blocked keys"),
        [((poison.topic.clone(), poison.event_key.clone()), poison.id)],
        "one entry per key, with its smallest dead id"
    );

    // Acknowledging forgets the attempts: a later failure counts from one.
    let other = &left[2];
    assert_eq!(
        store
            .record_failure(other.event_id, "e")
            .await
            .expect("fail"),
        1
    );
    assert_eq!(store.ack(&[other.id], None).await.expect("ack"), 1);
    assert_eq!(
        store
            .record_failure(other.event_id, "e")
            .await
            .expect("fail"),
        1,
        "ack forgets the attempts"
    );
}
