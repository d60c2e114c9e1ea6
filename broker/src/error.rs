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
    #[error(transparent)]
    PlacePartition(#[from] crate::log_dirs::PlaceError),
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
    /// The controller quorum did not take the change.
    #[error("{0}")]
    Controller(controller::ControllerError),
    /// The active controller refused it.
    #[error("topic '{0}': {1:?}")]
    Refused(String, controller::ItemError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

/// Why the broker could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("admin endpoint (sluice.admin.listen) {address}: {source}; set another address, or an empty value to turn it off")]
    Admin {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot listen on {address} (is another broker running?): {source}")]
    PortInUse {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "RLIMIT_MEMLOCK is {have} bytes and could not be raised; glommio needs at least {need} \
         bytes locked for {cores} cores (run as root, `ulimit -l unlimited`, set memlock in \
         /etc/security/limits.conf, or use fewer --cores)"
    )]
    Memlock {
        have: u64,
        need: usize,
        cores: usize,
    },
    #[error("listener security: {setting}: {reason}")]
    Security { setting: String, reason: String },
    /// Kafka's "Duplicate log directory found": two `log.dirs` entries
    /// that are one directory (a symlink, `..`, a trailing slash).
    #[error("log.dirs names {dir} twice (as {first} and {second})")]
    DuplicateLogDir {
        dir: std::path::PathBuf,
        first: std::path::PathBuf,
        second: std::path::PathBuf,
    },
    #[error("controller: {0}")]
    Controller(#[from] controller::StartError),
    #[error("start executor {core} (io_uring / locked memory?): {reason}")]
    Executor { core: usize, reason: String },
    #[error("core {core}: listen on {address}: {source}")]
    Listen {
        core: usize,
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("core {core}: open partitions: {source}")]
    Open { core: usize, source: BrokerError },
    #[error("core {0}: another core failed to start")]
    PeerFailed(usize),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
}
