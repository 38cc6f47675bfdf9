//! The application's handler of one event type, called in the inbox's transaction.

use outbox_core::Schema;
use outbox_core::avro::AvroSchema;
use outbox_inbox::{ApplyError, BoxError, InboxEvent};
use serde::de::DeserializeOwned;
use sqlx::Transaction;

use super::Effect;

/// Handles one event type inside the inbox's transaction: whatever it writes through `tx`
/// commits together with the event's `ce_id`, exactly once.
///
/// # Contract
///
/// Write only through `tx`; an effect outside the database (an e-mail, an HTTP call) is not
/// covered by the transaction and may repeat. An `Err` rolls the transaction back; the runner
/// retries with backoff, then dead-letters the record.
pub trait InboxHandler<DB: sqlx::Database>: Send + Sync + 'static {
    /// The event type, read with its own schema ([`AvroSchema`]), so a handler on v1 reads
    /// data written with a compatible v2.
    type Event: DeserializeOwned + AvroSchema + Send;

    /// Applies `event` in `tx`; `meta` carries its topic, partition, offset, key and `ce_id`.
    fn handle(
        &self,
        tx: &mut Transaction<'static, DB>,
        event: Self::Event,
        meta: &InboxEvent,
    ) -> impl Future<Output = Result<(), BoxError>> + Send;
}

/// An [`InboxHandler`] as the inbox's effect.
#[derive(Debug)]
pub struct Handler<H>(pub H);

impl<DB: sqlx::Database, H: InboxHandler<DB>> Effect<DB> for Handler<H> {
    fn reader_schema(&self) -> outbox_core::Result<Option<Schema>> {
        Schema::from_avro(&H::Event::get_schema()).map(Some)
    }

    async fn run(
        &self,
        tx: &mut Transaction<'static, DB>,
        event: &InboxEvent,
    ) -> Result<(), ApplyError> {
        let typed: H::Event = event.typed()?;
        self.0
            .handle(tx, typed, event)
            .await
            .map_err(ApplyError::Handler)
    }
}
