//! The broker library's errors (thiserror), so callers can tell what went
//! wrong by variant; `anyhow` is only for the binary's `main`.

use std::path::PathBuf;

/// Why the topic registry could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: bad topic line")]
    BadLine { path: PathBuf, line: usize },
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("open {}: {source}", dir.display())]
    OpenPartition {
        dir: PathBuf,
        source: storage::StorageError,
    },
    #[error("read {}: {source}", dir.display())]
    ReadPartition {
        dir: PathBuf,
        source: storage::StorageError,
    },
    #[error("topic config: {0}")]
    TopicConfig(#[from] storage::config::ConfigError),
    #[error("topic registry: {0}")]
    Metadata(#[from] MetadataError),
    /// The core asked does not answer: the broker is stopping.
    #[error("core {0} is stopping")]
    CoreStopping(usize),
}

/// Why a topic change failed.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("Topic '{0}' already exists.")]
    AlreadyExists(String),
    #[error("Topic '{0}' does not exist.")]
    Unknown(String),
    #[error("topic '{0}' is internal")]
    Internal(String),
    #[error(transparent)]
    Broker(#[from] BrokerError),
}
