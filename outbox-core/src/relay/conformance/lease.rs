//! [`LeaseStore`] checks: one holder at a time, fencing tokens, fenced writes.

use std::time::Duration;

use super::sample_row;
use crate::NewOutboxRow;
use crate::relay::{FailureStore, Fence, InsertRows, LeaseStore, RelayStore, RelayStoreExt};

/// One holder at a time; renewal keeps the token; expiry hands over with a larger token; a
/// holder taking its own lease back gets a larger token, which fences the old generation's
/// acknowledgements and dead letters.
pub async fn lease_is_exclusive_until_it_expires<S>(store: &S)
where
    S: RelayStore + FailureStore + LeaseStore,
{
    let ttl = Duration::from_millis(400);
    let acquire = async |holder| {
        store
            .try_acquire_lease("relay", holder, ttl)
            .await
            .expect("lease")
    };
    let token_a = acquire("a").await.expect("a takes the free lease");
    assert_eq!(acquire("b").await, None);
    assert!(
        store
            .renew_lease("relay", "a", token_a, ttl)
            .await
            .expect("renew"),
        "renewal keeps the token"
    );
    let token_a2 = acquire("a")
        .await
        .expect("a restarted relay takes its own lease back at once");
    assert!(token_a2 > token_a, "taking it back starts a new generation");
    assert!(
        !store
            .renew_lease("relay", "a", token_a, ttl)
            .await
            .expect("renew"),
        "the old generation cannot renew"
    );
    let old = Fence {
        lease: "relay".to_owned(),
        holder: "a".to_owned(),
        token: token_a,
    };
    assert!(
        matches!(
            store.ack(&[], Some(&old)).await,
            Err(crate::Error::LeaseLost { .. })
        ),
        "the old generation cannot acknowledge"
    );
    assert!(
        matches!(
            store.dead_letter(1, 1, "e", Some(&old)).await,
            Err(crate::Error::LeaseLost { .. })
        ),
        "the old generation cannot dead-letter"
    );
    let current = Fence {
        token: token_a2,
        ..old
    };
    assert_eq!(
        store.ack(&[], Some(&current)).await.expect("fenced ack"),
        0,
        "the current generation writes"
    );
    std::thread::sleep(ttl + Duration::from_millis(200));
    let token_b = acquire("b").await.expect("b takes the expired lease");
    assert!(token_b > token_a2, "fencing token grows on hand-over");
    assert_eq!(acquire("a").await, None);
    store.release_lease("relay", "b").await.expect("release");
    assert!(acquire("a").await.is_some(), "a released lease is free");
}

/// A fenced acknowledgement of rows that are there: an old generation's deletes nothing (its
/// rows and their attempts stay for the new holder) and fails with `LeaseLost`; the current
/// generation's deletes the rows and forgets their attempts.
pub async fn fenced_acks_delete_only_for_the_current_generation<S>(store: &S)
where
    S: RelayStore + FailureStore + LeaseStore + InsertRows,
{
    let ttl = Duration::from_secs(30);
    let rows: Vec<NewOutboxRow> = (0..3).map(|n| sample_row("t", "k", n)).collect();
    store.insert_rows(&rows).await.expect("insert");
    let read = store.read_batch(10).await.expect("read");
    let ids: Vec<i64> = read.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), 3);
    store
        .record_failure(read[0].event_id, "e")
        .await
        .expect("record failure");
    let acquire = async || {
        store
            .try_acquire_lease("fenced", "a", ttl)
            .await
            .expect("lease")
            .expect("free lease")
    };
    let old = Fence {
        lease: "fenced".to_owned(),
        holder: "a".to_owned(),
        token: acquire().await,
    };
    let current = Fence {
        token: acquire().await,
        ..old.clone()
    };
    assert!(
        matches!(
            store.ack(&ids, Some(&old)).await,
            Err(crate::Error::LeaseLost { .. })
        ),
        "the old generation cannot acknowledge"
    );
    assert_eq!(
        store.read_batch(10).await.expect("read").len(),
        3,
        "a refused acknowledgement deletes nothing"
    );
    assert_eq!(
        store
            .record_failure(read[0].event_id, "e")
            .await
            .expect("record failure"),
        2,
        "a refused acknowledgement keeps the attempts"
    );
    let wrong_holder = Fence {
        holder: "b".to_owned(),
        ..current.clone()
    };
    assert!(
        matches!(
            store.ack(&ids, Some(&wrong_holder)).await,
            Err(crate::Error::LeaseLost { .. })
        ),
        "another holder cannot acknowledge with the current token"
    );
    assert_eq!(
        store.ack(&ids, Some(&current)).await.expect("fenced ack"),
        3
    );
    assert!(store.read_batch(10).await.expect("read").is_empty());
    assert_eq!(
        store
            .record_failure(read[0].event_id, "e")
            .await
            .expect("record failure"),
        1,
        "the acknowledgement forgot the attempts"
    );
    assert_eq!(
        store.ack(&ids, Some(&current)).await.expect("fenced ack"),
        0,
        "acknowledging rows already gone deletes nothing"
    );
}
