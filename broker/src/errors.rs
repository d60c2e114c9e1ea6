//! The one place where the broker's typed errors (storage, partition,
//! topic) become Kafka error codes.

use crate::error::TopicError;
use crate::partition::{DeleteRecordsError, ProduceError, ReadError};
use crate::producer_state::SequenceError;
use controller::{ControllerError, ItemError};
use kafka_protocol::error::ResponseError;
use storage::{BatchError, StorageError};

pub fn storage_error_code(error: &StorageError) -> i16 {
    storage_error(error).code()
}

pub fn storage_error(error: &StorageError) -> ResponseError {
    match error {
        StorageError::InvalidBatch(batch) => match batch {
            BatchError::RecordTooLarge { .. } => ResponseError::MessageTooLarge,
            BatchError::UnsupportedMagic(_) => ResponseError::UnsupportedForMessageFormat,
            BatchError::ControlBatch | BatchError::KeylessRecordInCompactedLog => {
                ResponseError::InvalidRecord
            }
            BatchError::Truncated { .. }
            | BatchError::CorruptRecord(_)
            | BatchError::CrcMismatch { .. } => ResponseError::CorruptMessage,
        },
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        StorageError::Poisoned { .. }
        | StorageError::Io { .. }
        | StorageError::DiskFull { .. }
        | StorageError::LogDirOffline { .. } => ResponseError::KafkaStorageError,
        StorageError::Closed(_) => ResponseError::NotLeaderOrFollower,
        // The follower path's own errors: never answered to a client.
        StorageError::NonContiguousAppend { .. } => ResponseError::UnknownServerError,
        StorageError::StaleLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch,
        StorageError::BadDirName(_) | StorageError::BadCheckpoint { .. } => {
            ResponseError::KafkaStorageError
        }
    }
}

pub fn produce_error(error: &ProduceError) -> ResponseError {
    match error {
        ProduceError::NotLeader => ResponseError::NotLeaderOrFollower,
        ProduceError::UnknownPartition => ResponseError::UnknownTopicOrPartition,
        ProduceError::Sequence(SequenceError::InvalidProducerEpoch) => {
            ResponseError::InvalidProducerEpoch
        }
        ProduceError::Sequence(SequenceError::OutOfOrderSequence) => {
            ResponseError::OutOfOrderSequenceNumber
        }
        ProduceError::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas,
        ProduceError::NotEnoughReplicasAfterAppend { .. } => {
            ResponseError::NotEnoughReplicasAfterAppend
        }
        ProduceError::Timeout(_) => ResponseError::RequestTimedOut,
        ProduceError::Storage(storage) => storage_error(storage),
    }
}

pub fn read_error(error: &ReadError) -> ResponseError {
    match error {
        ReadError::NotLeader => ResponseError::NotLeaderOrFollower,
        // Kafka's leader answers a fetch from a broker outside the
        // replica set so ("failed to record follower's position").
        ReadError::NotAReplica(_) => ResponseError::NotLeaderOrFollower,
        ReadError::FencedLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch,
        ReadError::UnknownLeaderEpoch { .. } => ResponseError::UnknownLeaderEpoch,
        ReadError::UnknownPartition => ResponseError::UnknownTopicOrPartition,
        ReadError::Storage(storage) => storage_error(storage),
    }
}

pub fn topic_error(error: &TopicError) -> ResponseError {
    match error {
        TopicError::AlreadyExists(_) => ResponseError::TopicAlreadyExists,
        TopicError::Unknown(_) => ResponseError::UnknownTopicOrPartition,
        TopicError::Internal(_) => ResponseError::InvalidTopicException,
        TopicError::Broker(_) => ResponseError::KafkaStorageError,
        TopicError::Controller(error) => controller_error(error),
        TopicError::Refused(_, error) => item_error(error).0,
    }
}

/// A topic change's Kafka code and message (the controller's own message
/// where it gave one).
pub fn topic_failure(error: &TopicError) -> (ResponseError, String) {
    match error {
        TopicError::Refused(_, item) => item_error(item),
        other => (topic_error(other), other.to_string()),
    }
}

/// A whole metadata write refused or lost: what Kafka's forwarding broker
/// answers when the controller cannot be reached or is not the leader.
pub fn controller_error(error: &ControllerError) -> ResponseError {
    match error {
        ControllerError::NotController { .. } => ResponseError::NotController,
        ControllerError::Timeout(_) => ResponseError::RequestTimedOut,
        ControllerError::Stopping => ResponseError::RequestTimedOut,
        ControllerError::BrokerNotRegistered(_) => ResponseError::BrokerIdNotRegistered,
        ControllerError::StaleBrokerEpoch { .. } => ResponseError::StaleBrokerEpoch,
        ControllerError::DuplicateBrokerRegistration(_) => {
            ResponseError::DuplicateBrokerRegistration
        }
    }
}

/// One topic or config of a request refused by the controller, with the
/// message Kafka's client shows.
pub fn item_error(error: &ItemError) -> (ResponseError, String) {
    match error {
        ItemError::TopicAlreadyExists => (
            ResponseError::TopicAlreadyExists,
            "Topic already exists.".into(),
        ),
        ItemError::UnknownTopic => (
            ResponseError::UnknownTopicOrPartition,
            "This server does not host this topic-partition.".into(),
        ),
        ItemError::InvalidReplicationFactor(m) => {
            (ResponseError::InvalidReplicationFactor, m.clone())
        }
        ItemError::InvalidPartitions(m) => (ResponseError::InvalidPartitions, m.clone()),
        ItemError::InvalidReplicaAssignment(m) => {
            (ResponseError::InvalidReplicaAssignment, m.clone())
        }
        ItemError::UnknownCredential => (
            ResponseError::ResourceNotFound,
            "Attempt to delete a user credential that does not exist".into(),
        ),
    }
}

pub fn delete_records_error(error: &DeleteRecordsError) -> ResponseError {
    match error {
        DeleteRecordsError::NotLeader => ResponseError::NotLeaderOrFollower,
        DeleteRecordsError::UnknownPartition => ResponseError::UnknownTopicOrPartition,
        DeleteRecordsError::PolicyViolation => ResponseError::PolicyViolation,
        DeleteRecordsError::Storage(storage) => storage_error(storage),
    }
}
