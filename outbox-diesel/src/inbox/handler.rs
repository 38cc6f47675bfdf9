//! The application's handler of one event type, called on the connection inside the inbox's
//! transaction.

use outbox_core::Schema;
use outbox_core::avro::AvroSchema;
use outbox_inbox::{ApplyError, BoxError, InboxEvent};
use serde::de::DeserializeOwned;

use super::DieselEffect;

/// Handles one event type inside the inbox's transaction: whatever it writes through `conn`
/// commits together with the event's `ce_id`, exactly once.
///
/// # Contract
///
/// Write only through `conn` (it is inside the transaction); an `Err` rolls it back, and the
/// runner retries with backoff, then dead-letters the record.
pub trait DieselInboxHandler<C>: Send + Sync + 'static {
    /// The event type, read with its own schema, so a handler on v1 reads v2 data.
    type Event: DeserializeOwned + AvroSchema + Send;

    /// Applies `event` on `conn`, inside the inbox's transaction.
    ///
    /// # Errors
    ///
    /// Whatever the application reports; the transaction rolls back.
    fn handle(&self, conn: &mut C, event: Self::Event, meta: &InboxEvent) -> Result<(), BoxError>;
}

/// A [`DieselInboxHandler`] as the inbox's effect.
#[derive(Debug)]
pub struct DieselHandler<H>(pub H);

impl<C, H: DieselInboxHandler<C>> DieselEffect<C> for DieselHandler<H> {
    fn reader_schema(&self) -> outbox_core::Result<Option<Schema>> {
        Schema::from_avro(&H::Event::get_schema()).map(Some)
    }

    fn run(&self, conn: &mut C, event: &InboxEvent) -> Result<(), ApplyError> {
        let typed: H::Event = event.typed()?;
        self.0
            .handle(conn, typed, event)
            .map_err(ApplyError::Handler)
    }
}
