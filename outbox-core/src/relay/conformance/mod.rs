//! The behaviour every relay store must show, one group of checks per capability, as
//! functions each back end's tests call on a fresh, empty store. Each panics with a message
//! when the contract is broken.
//!
//! - [`run_read`]: [`RelayStore`] (read and acknowledge);
//! - [`run_failures`]: [`FailureStore`] (attempts, dead letters, blocked keys);
//! - [`run_lease`]: [`LeaseStore`] (the leader lease and fencing);
//! - [`run_admin`]: [`AdminStore`] (status, dead-letter listing, retry, discard);
//! - [`run_all`]: every group, for a store with every capability.
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

use uuid::Uuid;

use super::{AdminStore, FailureStore, InsertRows, LeaseStore, RelayStore};
use crate::{NewOutboxRow, SchemaId};

mod admin;
mod failures;
mod lease;
mod read;

pub use admin::{dead_letters_are_listed_retried_and_discarded, status_counts_and_names_leader};
pub use failures::failures_count_and_dead_letters_move;
pub use lease::{
    fenced_acks_delete_only_for_the_current_generation, lease_is_exclusive_until_it_expires,
};
pub use read::{
    large_batches_ack_in_one_call, reads_in_id_order_and_ack_deletes, rows_round_trip_every_column,
    schema_ids_out_of_range_are_refused,
};

/// A row for `topic` with key `key` and a small payload naming its position `n`.
pub fn sample_row(topic: &str, key: &str, n: usize) -> NewOutboxRow {
    NewOutboxRow {
        event_id: Uuid::now_v7(),
        topic: topic.to_owned(),
        event_key: Some(key.as_bytes().to_vec()),
        event_type: "com.example.Sample".to_owned(),
        schema_id: Some(SchemaId::new(7)),
        content_type: "application/avro".to_owned(),
        payload: format!("payload-{n}").into_bytes(),
        headers: vec![("traceparent".to_owned(), format!("00-{n:032x}-{n:016x}-01"))],
    }
}

/// Runs every group, each check on a store `make` returns fresh.
pub async fn run_all<S, F, Fut>(mut make: F)
where
    S: RelayStore + FailureStore + LeaseStore + AdminStore + InsertRows,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    run_read(&mut make).await;
    run_failures(&mut make).await;
    run_lease(&mut make).await;
    fenced_acks_delete_only_for_the_current_generation(&make().await).await;
    run_admin(&mut make).await;
}

/// The [`RelayStore`] checks: reads in `id` order, exact acknowledgements, every column
/// round-trips, large batches, schema ids the column cannot hold.
pub async fn run_read<S, F, Fut>(mut make: F)
where
    S: RelayStore + InsertRows,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    reads_in_id_order_and_ack_deletes(&make().await).await;
    rows_round_trip_every_column(&make().await).await;
    large_batches_ack_in_one_call(&make().await).await;
    schema_ids_out_of_range_are_refused(&make().await).await;
}

/// The [`FailureStore`] checks: attempts counted, dead letters moved, keys blocked.
pub async fn run_failures<S, F, Fut>(mut make: F)
where
    S: RelayStore + FailureStore + InsertRows,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    failures_count_and_dead_letters_move(&make().await).await;
}

/// The [`LeaseStore`] checks: one holder at a time, growing tokens, fenced writes.
pub async fn run_lease<S, F, Fut>(mut make: F)
where
    S: RelayStore + FailureStore + LeaseStore,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    lease_is_exclusive_until_it_expires(&make().await).await;
}

/// The [`AdminStore`] checks: status, and dead letters listed, retried and discarded.
pub async fn run_admin<S, F, Fut>(mut make: F)
where
    S: RelayStore + FailureStore + LeaseStore + AdminStore + InsertRows,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    status_counts_and_names_leader(&make().await).await;
    dead_letters_are_listed_retried_and_discarded(&make().await).await;
}
