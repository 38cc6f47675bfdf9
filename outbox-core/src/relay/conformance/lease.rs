//! [`LeaseStore`] checks: one holder at a time, fencing tokens, fenced writes.

use std::time::Duration;

use crate::relay::{FailureStore, Fence, LeaseStore, RelayStore};

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
