//! The producer, and its replacement after a fatal librdkafka error.

use rdkafka::producer::Producer;

use super::Relay;

use crate::producer::KafkaProducer;

impl<S> Relay<S> {
    /// The current producer.
    pub(super) fn producer(&self) -> KafkaProducer {
        self.producer
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces a producer that failed fatally (librdkafka refuses every record after that):
    /// the rows it did not acknowledge stay in the outbox and are produced again by the new
    /// one.
    pub(super) async fn replace_dead_producer(&self) {
        let current = self.producer();
        let Some((code, reason)) = current.client().fatal_error() else {
            return;
        };
        let Some(kafka) = &self.kafka else {
            tracing::error!(?code, %reason, "the producer failed fatally; restart the relay");
            self.metrics.set_producer_failed(true);
            return;
        };
        match crate::producer::producer(kafka) {
            Ok(fresh) => {
                tracing::warn!(?code, %reason, "the producer failed fatally; built a new one, unacknowledged rows are produced again");
                let old = std::mem::replace(
                    &mut *self
                        .producer
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner),
                    fresh,
                );
                self.metrics.producer_rebuilds.inc();
                self.metrics.set_producer_failed(false);
                // Dropping a producer purges and flushes it, which blocks.
                let _ = tokio::task::spawn_blocking(move || drop(old)).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "the producer failed fatally and a new one could not be built");
                self.metrics.set_producer_failed(true);
            }
        }
    }
}
