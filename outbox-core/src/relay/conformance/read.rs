//! [`RelayStore`] checks: reading in `id` order and acknowledging.

use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use super::sample_row;
use crate::relay::{InsertRows, RelayStore, RelayStoreExt};
use crate::{NewOutboxRow, SchemaId};

/// Reads come in `id` order, do not remove rows, and `ack` deletes exactly what it is given.
pub async fn reads_in_id_order_and_ack_deletes<S: RelayStore + InsertRows>(store: &S) {
    let rows: Vec<NewOutboxRow> = (0..5).map(|n| sample_row("t", "k", n)).collect();
    store.insert_rows(&rows).await.expect("insert");
    let first = store.read_batch(3).await.expect("read");
    assert_eq!(first.len(), 3);
    assert!(
        first.windows(2).all(|w| w[0].id < w[1].id),
        "reads are in id order"
    );
    let ids: Vec<Uuid> = first.iter().map(|r| r.event_id).collect();
    assert_eq!(
        ids,
        rows[..3].iter().map(|r| r.event_id).collect::<Vec<_>>(),
        "insert order"
    );
    let again = store.read_batch(3).await.expect("read");
    assert_eq!(again, first, "reading does not remove rows");
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
    let after = store.read_after(first[2].id, 10).await.expect("read after");
    assert_eq!(after.len(), 2, "read_after skips ids up to the cursor");
    assert_eq!(after[0].id(), first[2].id + 1);
    let after = store
        .read_records_after(first[2].id, 10)
        .await
        .expect("read after");
    assert_eq!(after[0].event_id, rows[3].event_id);
    let rest = store.read_batch(10).await.expect("read");
    assert_eq!(rest.len(), 3, "the rows not acknowledged stay");
    assert_eq!(rest[0].event_id, rows[2].event_id);
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
    let read = store.read_batch(10).await.expect("read");
    assert_eq!(read.len(), 2);
    for (got, want) in read.iter().zip([&row, &unkeyed]) {
        assert_eq!(got.event_id, want.event_id);
        assert_eq!(got.topic, want.topic);
        assert_eq!(got.event_key, want.event_key);
        assert_eq!(got.event_type, want.event_type);
        assert_eq!(got.schema_id, want.schema_id);
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
}

/// A thousand rows read and acknowledge in one call each.
pub async fn large_batches_ack_in_one_call<S: RelayStore + InsertRows>(store: &S) {
    let rows: Vec<NewOutboxRow> = (0..1000)
        .map(|n| sample_row("t", &format!("k{}", n % 10), n))
        .collect();
    store.insert_rows(&rows).await.expect("insert");
    let read = store.read_batch(1000).await.expect("read");
    assert_eq!(read.len(), 1000);
    let ids: Vec<i64> = read.iter().map(|r| r.id).collect();
    assert_eq!(store.ack(&ids, None).await.expect("ack"), 1000);
    assert!(store.read_batch(10).await.expect("read").is_empty());
}

/// A schema id the `schema_id` column cannot hold (above `i32::MAX`) is refused with
/// [`Error::SchemaIdOutOfRange`](crate::Error::SchemaIdOutOfRange) and nothing of the batch is
/// written; it used to become `NULL`. `i32::MAX` itself round-trips.
pub async fn schema_ids_out_of_range_are_refused<S: RelayStore + InsertRows>(store: &S) {
    let largest_id = SchemaId::new(i32::MAX.unsigned_abs());
    let mut largest = sample_row("t", "k", 0);
    largest.schema_id = Some(largest_id);
    let mut too_large = sample_row("t", "k", 1);
    too_large.schema_id = Some(SchemaId::new(i32::MAX.unsigned_abs() + 1));
    let err = store
        .insert_rows(&[largest.clone(), too_large])
        .await
        .expect_err("an id above i32::MAX is refused");
    assert!(
        matches!(err, crate::Error::SchemaIdOutOfRange { id } if id == i32::MAX.unsigned_abs() + 1),
        "{err:?}"
    );
    assert!(
        store.read_batch(10).await.expect("read").is_empty(),
        "nothing of a refused batch is written"
    );
    store.insert_rows(&[largest]).await.expect("insert");
    let got = store.read_batch(10).await.expect("read");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].schema_id, Some(largest_id));
}
