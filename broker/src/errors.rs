//! The one place where the broker's typed errors (storage, partition,
//! topic) become Kafka error codes.

use crate::error::TopicError;
use crate::partition::{DeleteRecordsError, ProduceError, ReadError};
use crate::producer_state::SequenceError;
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
        StorageError::Poisoned { .. } | StorageError::Io { .. } => ResponseError::KafkaStorageError,
        StorageError::Closed(_) => ResponseError::NotLeaderOrFollower,
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
        ProduceError::Storage(storage) => storage_error(storage),
    }
}

pub fn read_error(error: &ReadError) -> ResponseError {
    match error {
        ReadError::NotLeader => ResponseError::NotLeaderOrFollower,
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
