//! Sluice's storage: the durable, crash-safe log behind every partition.
//!
//! A [`Log`] is one partition's directory of segments in Kafka's file
//! layout, written with O_DIRECT through glommio's DMA files. It must be used
//! from inside a glommio executor, on one core; it holds no global state.
//! See docs/storage-format.md for the byte layout and the durability
//! argument. Under `cleanup.policy=compact`, [`Log::clean`] runs Kafka's
//! log cleaner over the sealed segments (log/clean.rs, compact.rs).

pub mod batch;
pub mod cache;
pub mod checkpoint;
pub mod commit;
pub mod compact;
pub mod config;
pub mod epochs;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod index;
pub mod io;
pub mod limits;
pub mod log;
pub mod log_dir;
pub mod read;
pub mod segment;

pub use batch::ProducedBatch;
pub use cache::CoreMemory;
pub use commit::Event;
pub use config::{CleanupPolicy, LogConfig, TimestampType, ValueKind};
pub use epochs::{EpochEntry, LeaderEpochs};
pub use error::{BatchError, Result, StorageError};
pub use io::Faults;
pub use log::{
    AppendInfo, CleanOptions, CleanReport, Log, LogOptions, LogStats, RecoveryReport,
    FLUSH_LATENCY_BOUNDS_S,
};
pub use log_dir::LogDirHealth;
pub use read::{Chunk, ReadBatches};
