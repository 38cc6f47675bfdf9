//! The behaviour every [`RelayStore`] must show, as functions each back end's tests call on a
//! fresh, empty store. Each panics with a message when the contract is broken.
//!
//! # Examples
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use outbox_core::relay::{conformance, MemoryRelayStore};
//!
//! conformance::run_all(|| async { MemoryRelayStore::default() }).await;
//! # });
//! ```

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use super::{Fence, InsertRows, RelayStore};
use crate::NewOutboxRow;

/// A row for `topic` with key `key` and a small payload naming its position `n`.
pub fn sample_row(topic: &str, key: &str, n: usize) -> NewOutboxRow {
    NewOutboxRow {
        event_id: Uuid::now_v7(),
        topic: topic.to_owned(),
        event_key: Some(key.as_bytes().to_vec()),
        event_type: "com.example.Sample".to_owned(),
        schema_id: Some(7),
        content_type: "application/avro".to_owned(),
        payload: format!("payload-{n}").into_bytes(),
        headers: vec![("traceparent".to_owned(), format!("00-{n:032x}-{n:016x}-01"))],
    }
}

/// Runs every check, each on a store `make` returns fresh.
pub async fn run_all<S, F, Fut>(mut make: F)
where
    S: RelayStore + InsertRows,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    claims_in_id_order_and_ack_deletes(&make().await).await;
    rows_round_trip_every_column(&make().await).await;
    failures_count_and_dead_letters_move(&make().await).await;
    lease_is_exclusive_until_it_expires(&make().await).await;
    large_batches_ack_in_one_call(&make().await).await;
    schema_ids_out_of_range_are_refused(&make().await).await;
}

/// A schema id the `schema_id` column cannot hold (above `i32::MAX`) is refused with
/// [`Error::SchemaIdOutOfRange`](crate::Error::SchemaIdOutOfRange) and nothing of the batch is
/// written; it used to become `NULL`. `i32::MAX` itself round-trips.
pub async fn schema_ids_out_of_range_are_refused<S: RelayStore + InsertRows>(store: &S) {
    let mut largest = sample_row("t", "k", 0);
    largest.schema_id = Some(i32::MAX.unsigned_abs());
    let mut too_large = sample_row("t", "k", 1);
    too_large.schema_id = Some(i32::MAX.unsigned_abs() + 1);
    let err = store
        .insert_rows(&[largest.clone(), too_large])
        .await
        .expect_err("an id above i32::MAX is refused");
    assert!(
        matches!(err, crate::Error::SchemaIdOutOfRange { id } if id == i32::MAX.unsigned_abs() + 1),
        "{err:?}"
    );
    assert!(
        store.claim_batch(10).await.expect("claim").is_empty(),
        "nothing of a refused batch is written"
    );
    store.insert_rows(&[largest]).await.expect("insert");
    let got = store.claim_batch(10).await.expect("claim");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].schema_id, Some(i32::MAX));
}

/// Claims come in `id` order, do not remove rows, and `ack` deletes exactly what it is given.
pub async fn claims_in_id_order_and_ack_deletes<S: RelayStore + InsertRows>(store: &S) {
    let rows: Vec<NewOutboxRow> = (0..5).map(|n| sample_row("t", "k", n)).collect();
    store.insert_rows(&rows).await.expect("insert");
    let first = store.claim_batch(3).await.expect("claim");
    assert_eq!(first.len(), 3);
    assert!(
        first.windows(2).all(|w| w[0].id < w[1].id),
        "claims are in id order"
    );
    let ids: Vec<Uuid> = first.iter().map(|r| r.event_id).collect();
    assert_eq!(
        ids,
        rows[..3].iter().map(|r| r.event_id).collect::<Vec<_>>(),
        "insert order"
    );
    let again = store.claim_batch(3).await.expect("claim");
    assert_eq!(again, first, "claiming does not remove rows");
    let acked = store
        .ack(&[first[0].id, first[1].id], None)
        .await
        .expect("ack");
    assert_eq!(acked, 2);
    assert_eq!(
        store.ack(&[first[0].id], None).await.expect("ack"),
        0,
        "ack is exact"
    );
    let after = store
        .claim_after(first[2].id, 10)
        .await
        .expect("claim after");
    assert_eq!(after.len(), 2, "claim_after skips ids up to the cursor");
    assert_eq!(after[0].event_id, rows[3].event_id);
    let rest = store.claim_batch(10).await.expect("claim");
    assert_eq!(rest.len(), 3);
    assert_eq!(rest[0].event_id, rows[2].event_id);
    assert_eq!(store.status("relay").await.expect("status").backlog, 3);
}

/// Every column comes back as written; `created_at_ms` is close to now.
pub async fn rows_round_trip_every_column<S: RelayStore + InsertRows>(store: &S) {
    let mut row = sample_row("orders", "order-1", 1);
    row.headers.push(("x-tenant".to_owned(), "acme".to_owned()));
    let mut unkeyed = sample_row("orders", "", 2);
    unkeyed.event_key = None;
    unkeyed.schema_id = None;
    unkeyed.payload = vec![0, 0, 0, 0, 7, 0xff, 0x80];
    store
        .insert_rows(&[row.clone(), unkeyed.clone()])
        .await
        .expect("insert");
    let claimed = store.claim_batch(10).await.expect("claim");
    assert_eq!(claimed.len(), 2);
    for (got, want) in claimed.iter().zip([&row, &unkeyed]) {
        assert_eq!(got.event_id, want.event_id);
        assert_eq!(got.topic, want.topic);
        assert_eq!(got.event_key, want.event_key);
        assert_eq!(got.event_type, want.event_type);
        assert_eq!(got.schema_id, want.schema_id.map(|id| id as i32));
        assert_eq!(got.content_type, want.content_type);
        assert_eq!(got.payload, want.payload, "payload bytes are exact");
        assert_eq!(got.headers, want.headers);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_millis() as i64;
        assert!(
            (now - got.created_at_ms).abs() < 60_000,
            "created_at_ms {} is not near now {now}",
            got.created_at_ms
        );
    }
    let status = store.status("relay").await.expect("status");
    assert_eq!(status.backlog, 2);
    assert!(status.oldest_age.is_some());
}

/// Failures are counted per event; a dead-lettered row leaves the outbox with its error and
/// can be retried (back at the end) or discarded.
pub async fn failures_count_and_dead_letters_move<S: RelayStore + InsertRows>(store: &S) {
    let rows: Vec<NewOutboxRow> = (0..3).map(|n| sample_row("t", "k", n)).collect();
    store.insert_rows(&rows).await.expect("insert");
    let claimed = store.claim_batch(3).await.expect("claim");
    let poison = &claimed[0];
    assert_eq!(
        store
            .record_failure(poison.event_id, "too large")
            .await
            .expect("fail"),
        1
    );
    assert_eq!(
        store
            .record_failure(poison.event_id, "still too large")
            .await
            .expect("fail"),
        2
    );
    store
        .dead_letter(poison.id, 2, "still too large", None)
        .await
        .expect("dead letter");
    let left = store.claim_batch(10).await.expect("claim");
    assert_eq!(left.len(), 2, "the poison row left the outbox");
    assert!(left.iter().all(|r| r.event_id != poison.event_id));
    let dead = store.dead_letters(10).await.expect("list");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].record.event_id, poison.event_id);
    assert_eq!(dead[0].record.payload, poison.payload);
    assert_eq!(
        (dead[0].attempts, dead[0].error.as_str()),
        (2, "still too large")
    );
    assert_eq!(store.status("relay").await.expect("status").dead_letters, 1);
    assert_eq!(
        store.blocked_keys().await.expect("blocked keys"),
        [((poison.topic.clone(), poison.event_key.clone()), poison.id)]
    );

    assert!(store.retry_dead_letter(poison.id).await.expect("retry"));
    let after = store.claim_batch(10).await.expect("claim");
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
}

/// One holder at a time; renewal keeps the token; expiry hands over with a larger token; a
/// holder taking its own lease back gets a larger token, which fences the old generation.
pub async fn lease_is_exclusive_until_it_expires<S: RelayStore>(store: &S) {
    let ttl = Duration::from_millis(400);
    let a = store
        .try_acquire_lease("relay", "a", ttl)
        .await
        .expect("lease");
    let token_a = a.expect("a takes the free lease");
    assert_eq!(
        store
            .try_acquire_lease("relay", "b", ttl)
            .await
            .expect("lease"),
        None
    );
    assert!(
        store
            .renew_lease("relay", "a", token_a, ttl)
            .await
            .expect("renew"),
        "renewal keeps the token"
    );
    let token_a2 = store
        .try_acquire_lease("relay", "a", ttl)
        .await
        .expect("lease")
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
    let token_a = token_a2;
    assert_eq!(
        store
            .status("relay")
            .await
            .expect("status")
            .leader
            .as_deref(),
        Some("a")
    );
    std::thread::sleep(ttl + Duration::from_millis(200));
    let token_b = store
        .try_acquire_lease("relay", "b", ttl)
        .await
        .expect("lease")
        .expect("b takes the expired lease");
    assert!(token_b > token_a, "fencing token grows on hand-over");
    assert_eq!(
        store
            .try_acquire_lease("relay", "a", ttl)
            .await
            .expect("lease"),
        None
    );
    store.release_lease("relay", "b").await.expect("release");
    assert!(
        store
            .try_acquire_lease("relay", "a", ttl)
            .await
            .expect("lease")
            .is_some(),
        "a released lease is free"
    );
}

/// A thousand rows claim and acknowledge in one call each.
pub async fn large_batches_ack_in_one_call<S: RelayStore + InsertRows>(store: &S) {
    let rows: Vec<NewOutboxRow> = (0..1000)
        .map(|n| sample_row("t", &format!("k{}", n % 10), n))
        .collect();
    store.insert_rows(&rows).await.expect("insert");
    let claimed = store.claim_batch(1000).await.expect("claim");
    assert_eq!(claimed.len(), 1000);
    let ids: Vec<i64> = claimed.iter().map(|r| r.id).collect();
    assert_eq!(store.ack(&ids, None).await.expect("ack"), 1000);
    assert_eq!(store.status("relay").await.expect("status").backlog, 0);
    assert!(store.claim_batch(10).await.expect("claim").is_empty());
}
