//! Per-event stage timestamps, for profiling end-to-end latency.
//!
//! At `TRACE` on the target [`LATENCY_TARGET`] the relay emits one event per record and stage
//! (`claimed`, `enqueued`, `acked`, `deleted`) with its `event_id`; a subscriber stamps each
//! with its own clock. In WAL mode `claimed` is the message's arrival from the stream, `acked`
//! its transaction's settling, and there is no `deleted`. Disabled (the default), each call is one cached level check: the
//! records are not even iterated.

use outbox_core::relay::OutboxRecord;

/// The `tracing` target of the stage events.
pub const LATENCY_TARGET: &str = "outbox_relay::latency";

/// Emits `stage` for each record, if a subscriber listens.
pub(crate) fn stage<'a>(stage: &'static str, records: impl IntoIterator<Item = &'a OutboxRecord>) {
    if tracing::enabled!(target: LATENCY_TARGET, tracing::Level::TRACE) {
        for record in records {
            tracing::trace!(target: LATENCY_TARGET, stage, event_id = %record.event_id);
        }
    }
}
