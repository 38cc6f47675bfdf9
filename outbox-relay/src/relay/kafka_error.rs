//! Which producer errors retrying the same record cannot fix.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// The producer's own refusal of a record's size: the same record is always refused.
pub(super) fn is_too_large(error: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        error.rdkafka_error_code(),
        Some(C::MessageSizeTooLarge | C::InvalidMessageSize)
    )
}

/// Errors that retrying the same record cannot fix.
pub fn is_permanent(error: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        error.rdkafka_error_code(),
        Some(
            C::MessageSizeTooLarge
                | C::InvalidMessageSize
                | C::InvalidMessage
                | C::TopicAuthorizationFailed
                | C::ClusterAuthorizationFailed
                | C::InvalidTopic
                | C::UnknownTopic
                | C::UnknownTopicOrPartition
                | C::UnknownPartition
                | C::InvalidRecord
                | C::PolicyViolation
                | C::InvalidRequiredAcks
        )
    )
}
