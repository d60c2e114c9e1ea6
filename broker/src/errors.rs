//! The one place where storage errors become Kafka error codes.

use kafka_protocol::error::ResponseError;
use storage::{BatchError, StorageError};

pub fn storage_error_code(error: &StorageError) -> i16 {
    let kafka = match error {
        StorageError::InvalidBatch(batch) => match batch {
            BatchError::RecordTooLarge { .. } => ResponseError::MessageTooLarge,
            BatchError::UnsupportedMagic(_) => ResponseError::UnsupportedForMessageFormat,
            BatchError::ControlBatch => ResponseError::InvalidRecord,
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
    };
    kafka.code()
}
