//! Typed errors of the storage crate. The broker maps each to a Kafka error
//! code in one place; here they only say what went wrong.

use std::io;

/// Why a batch handed to [`crate::Log::append`] was refused. Each maps to one
/// Kafka error code (see `docs/storage-format.md`).
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum BatchError {
    #[error("batch shorter than the {needed}-byte header: {got} bytes")]
    Truncated { needed: usize, got: usize },
    #[error("unsupported record batch magic {0} (only magic 2 is stored)")]
    UnsupportedMagic(i8),
    #[error("corrupt record batch: {0}")]
    CorruptRecord(&'static str),
    #[error("crc mismatch: header says {stored:#010x}, bytes give {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    RecordTooLarge { size: usize, max: usize },
    #[error("control batches may not be produced by clients")]
    ControlBatch,
    /// Kafka's LogValidator refuses these: the cleaner could keep nothing
    /// of a record without a key.
    #[error("compacted topic cannot accept a record without a key")]
    KeylessRecordInCompactedLog,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(transparent)]
    InvalidBatch(#[from] BatchError),
    #[error("offset {offset} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        log_end: i64,
    },
    /// A write or fdatasync failed earlier: the log is read-only until the
    /// process restarts and recovery runs. Retrying an fsync after a failure
    /// can report success for data the kernel already dropped, so we never do.
    #[error("log {dir} is poisoned after an I/O error ({cause}); it is read-only")]
    Poisoned { dir: String, cause: String },
    /// A roll found less free space on the log directory's file system
    /// than `sluice.log.dir.min.free.bytes`: the append is refused before
    /// the disk is full; the log is not poisoned, and appends go on once
    /// space is freed.
    #[error("log {dir}: {free} bytes free on its file system, below the {min} kept free")]
    DiskFull { dir: String, free: u64, min: u64 },
    /// The log directory went offline after an I/O error of one of its
    /// logs ([`crate::LogDirHealth`]): reads and writes are refused until
    /// restart, as Kafka does with an offline `log.dirs` entry.
    #[error("log directory {dir} is offline after an I/O error ({cause})")]
    LogDirOffline { dir: String, cause: String },
    #[error("log directory {0} is closed")]
    Closed(String),
    #[error("bad log directory name {0:?}: expected <topic>-<partition>")]
    BadDirName(String),
    /// A follower's batches ([`crate::Log::append_replicated`]) must go on
    /// exactly at the log end, each batch right after the one before:
    /// `found` is the base offset of the first batch that did not. The
    /// follower's fetch position and its log disagree (a fetch answered
    /// after a truncation); nothing of that call was appended.
    #[error("replicated batch starts at offset {found} where {expected} was expected")]
    NonContiguousAppend { expected: i64, found: i64 },
    /// [`crate::Log::begin_leader_epoch`] with a negative epoch or one
    /// older than the latest epoch in the log (`latest`, -1 if none): a
    /// stale leadership decision, refused so that no batch is stamped with
    /// an epoch that went before.
    #[error("leader epoch {epoch} is older than the log's latest epoch {latest}")]
    StaleLeaderEpoch { epoch: i32, latest: i32 },
    #[error("bad checkpoint file {path}: {reason}")]
    BadCheckpoint { path: String, reason: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

impl StorageError {
    pub(crate) fn io(context: impl Into<String>, source: impl Into<io::Error>) -> Self {
        StorageError::Io {
            context: context.into(),
            source: source.into(),
        }
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;
