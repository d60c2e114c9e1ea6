//! One partition's behaviour on its owning core: its log, its idempotent
//! producers, the produce ordering turn, its role and leader epoch, the
//! append path (idempotence check, append, high watermark, the durability
//! wait `acks` asks for), and reads bounded by an upper offset (the high
//! watermark for consumers; the log end for followers, once replication
//! exists).
//!
//! Kafka's wire types stay out of here: callers (the api handlers, other
//! cores) get broker types and typed errors, and errors.rs turns those into
//! Kafka error codes.

use crate::producer_state::{self, check_sequence, remember, Producers, Sequence, SequenceError};
use std::cell::{Cell, RefCell};
use storage::{AppendInfo, Chunk, Event, Log, ProducedBatch, StorageError};

/// What a partition is to this broker. Only leaders exist until
/// replication lands; a follower will append the leader's batches as they
/// are and refuse produce with NOT_LEADER_OR_FOLLOWER.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
}

/// Kafka's `acks`: 0 (no answer), 1 (appended on the leader), -1/all
/// (durable under the flush policy; on every in-sync replica once there
/// are replicas).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    None,
    Leader,
    All,
}

impl Acks {
    /// None for a value Kafka refuses (INVALID_REQUIRED_ACKS).
    pub fn from_wire(acks: i16) -> Option<Acks> {
        match acks {
            0 => Some(Acks::None),
            1 => Some(Acks::Leader),
            -1 => Some(Acks::All),
            _ => None,
        }
    }
}

/// Where a produced batch landed (or, for a retried duplicate, where it
/// landed the first time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Produced {
    pub base_offset: i64,
    /// The broker time written into the batch under LogAppendTime.
    pub log_append_time_ms: Option<i64>,
    pub log_start_offset: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error("this broker is not the partition's leader")]
    NotLeader,
    #[error("unknown topic or partition")]
    UnknownPartition,
    #[error(transparent)]
    Sequence(#[from] SequenceError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Why a read (Fetch, ListOffsets) of a partition failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("this broker is not the partition's leader")]
    NotLeader,
    #[error("unknown topic or partition")]
    UnknownPartition,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// One idempotent producer as DescribeProducers shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerSummary {
    pub producer_id: i64,
    pub epoch: i16,
    pub last_sequence: i32,
}

/// Why DeleteRecords on a partition failed.
#[derive(Debug, thiserror::Error)]
pub enum DeleteRecordsError {
    #[error("this broker is not the partition's leader")]
    NotLeader,
    #[error("unknown topic or partition")]
    UnknownPartition,
    /// Kafka refuses DeleteRecords unless `cleanup.policy` has `delete`.
    #[error("records of a partition whose cleanup.policy has no delete cannot be deleted")]
    PolicyViolation,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// How far a read may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadBound {
    /// Consumers read only what every in-sync replica has.
    HighWatermark,
    /// Followers copy everything the leader has.
    LogEnd,
}

/// A partition's answer to a read: its offsets, and whole batches.
#[derive(Debug)]
pub struct PartitionRead<C> {
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub records: Vec<C>,
}

impl PartitionRead<Chunk> {
    /// The same read in a form that can cross to another core: tail-cache
    /// `Bytes` as they are, DMA buffers (which belong to this core's
    /// executor) copied once.
    pub fn into_sendable(self) -> PartitionRead<bytes::Bytes> {
        PartitionRead {
            high_watermark: self.high_watermark,
            log_start_offset: self.log_start_offset,
            records: self
                .records
                .into_iter()
                .map(|chunk| match chunk {
                    Chunk::Memory(bytes) => bytes,
                    Chunk::Disk(read) => bytes::Bytes::copy_from_slice(&read),
                })
                .collect(),
        }
    }
}

/// ListOffsets' question to one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetQuery {
    /// The offset the next consumer-visible record will get (-1).
    Latest,
    /// The log start (-2).
    Earliest,
    /// The first record with a timestamp at or after this one.
    AtOrAfter(i64),
}

/// ListOffsets' answer: offset and timestamp (-1 when there is none), and
/// the leader epoch the answer is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetAnswer {
    pub offset: i64,
    pub timestamp: i64,
    pub leader_epoch: i32,
}

/// This core's count of appends and their wake-up, shared by all its
/// partitions: fetch long-polls wait on it, and a long-poll from another
/// core asks "more than n appends since my read?" without a race.
#[derive(Default)]
pub struct Appends {
    count: Cell<u64>,
    event: Event,
}

impl Appends {
    fn note(&self) {
        self.count.set(self.count.get() + 1);
        self.event.notify_all();
    }

    pub fn count(&self) -> u64 {
        self.count.get()
    }

    /// The next append on this core (listen before reading, so an append
    /// between the read and the wait is not missed).
    pub fn next(&self) -> impl std::future::Future<Output = ()> + '_ {
        self.event.listen()
    }

    /// Resolves when more than `after` appends happened here, or at `timeout`.
    pub async fn wait_beyond(&self, after: u64, timeout: std::time::Duration) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let appended = self.event.listen();
            let now = std::time::Instant::now();
            if self.count.get() > after || now >= deadline {
                return;
            }
            futures_lite::future::or(appended, glommio::timer::sleep(deadline - now)).await;
        }
    }
}

/// DeleteRecords' offset meaning "up to the high watermark"
/// (`DeleteRecordsRequest.HIGH_WATERMARK`).
pub const DELETE_TO_HIGH_WATERMARK: i64 = -1;

pub struct Partition {
    log: Log,
    producers: RefCell<Producers>,
    /// Held from the sequence check through the in-memory append, so that
    /// pipelined requests of one producer are checked and appended in order.
    produce_order: glommio::sync::Semaphore,
    role: Cell<Role>,
    leader_epoch: Cell<i32>,
    appends: std::rc::Rc<Appends>,
}

impl Partition {
    /// A partition over an opened log: rebuilds its producer state from the
    /// snapshot and the log tail. A single-replica leader's high watermark
    /// is its log end.
    pub async fn open(log: Log, appends: std::rc::Rc<Appends>) -> Partition {
        let producers = producer_state::recover(&log).await;
        log.set_high_watermark(log.log_end_offset());
        Partition {
            log,
            producers: RefCell::new(producers),
            produce_order: glommio::sync::Semaphore::new(1),
            role: Cell::new(Role::Leader),
            leader_epoch: Cell::new(0),
            appends,
        }
    }

    /// The log, for what is not a partition behaviour of its own
    /// (retention, config changes, the group store's replay and compaction).
    pub fn log(&self) -> &Log {
        &self.log
    }

    pub fn role(&self) -> Role {
        self.role.get()
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.get()
    }

    pub fn high_watermark(&self) -> i64 {
        self.log.high_watermark()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log.log_start_offset()
    }

    /// The produce path on the leader: idempotence check and append in the
    /// partition's ordering turn, then the wait `acks` asks for outside it,
    /// so that later requests join the same group commit.
    pub async fn produce(
        &self,
        batch: ProducedBatch,
        acks: Acks,
    ) -> Result<Produced, ProduceError> {
        if self.role.get() != Role::Leader {
            return Err(ProduceError::NotLeader);
        }
        let producer_id = batch.producer_id();
        let (epoch, first_sequence, count) = (
            batch.producer_epoch(),
            batch.base_sequence(),
            batch.records_count(),
        );
        let info = {
            // Closed only when the partition goes away (deleted topic).
            let _turn = self
                .produce_order
                .acquire_permit(1)
                .await
                .map_err(|_| ProduceError::NotLeader)?;
            let sequence = if producer_id >= 0 {
                check_sequence(&self.producers.borrow(), producer_id, epoch, first_sequence)
            } else {
                Sequence::Accept
            };
            match sequence {
                Sequence::Reject(error) => return Err(error.into()),
                Sequence::Duplicate(base_offset) => AppendInfo {
                    base_offset,
                    last_offset: base_offset + i64::from(count) - 1,
                    log_append_time_ms: None,
                    log_start_offset: self.log.log_start_offset(),
                },
                Sequence::Accept => {
                    let info = self.log.append_unsynced(batch).await?;
                    if producer_id >= 0 {
                        remember(
                            &mut self.producers.borrow_mut(),
                            producer_id,
                            epoch,
                            first_sequence,
                            count,
                            info.base_offset,
                        );
                    }
                    self.advance_high_watermark();
                    info
                }
            }
        };
        if acks == Acks::All {
            // A retried duplicate waits too: its first copy may still be
            // on its way to the disk.
            self.log.wait_durable(&info).await?;
        }
        Ok(Produced {
            base_offset: info.base_offset,
            log_append_time_ms: info.log_append_time_ms,
            log_start_offset: self.log.log_start_offset(),
        })
    }

    /// Appends a batch the broker built itself (the group coordinator's
    /// records) under the same ordering turn as produce; the caller then
    /// waits with `wait_durable`, outside whatever turn of its own it holds,
    /// so that concurrent callers share one group commit.
    pub async fn append_own(&self, batch: ProducedBatch) -> Result<AppendInfo, StorageError> {
        let _turn = self
            .produce_order
            .acquire_permit(1)
            .await
            .map_err(|_| StorageError::Closed(self.log.dir().display().to_string()))?;
        let info = self.log.append_unsynced(batch).await?;
        self.advance_high_watermark();
        Ok(info)
    }

    /// Resolves when the appended batch is durable under the flush policy
    /// (storage's one rule for acks=all).
    pub async fn wait_durable(&self, info: &AppendInfo) -> Result<(), StorageError> {
        self.log.wait_durable(info).await
    }

    /// With one replica the high watermark is the log end; replication will
    /// move it to the smallest log end among the in-sync replicas.
    fn advance_high_watermark(&self) {
        self.log.set_high_watermark(self.log.log_end_offset());
        self.appends.note();
    }

    /// Whole batches from `offset`, at most `max_bytes` (but at least one
    /// batch if there is one), none at or past `bound`.
    pub async fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        bound: ReadBound,
    ) -> Result<PartitionRead<Chunk>, StorageError> {
        let end = match bound {
            ReadBound::HighWatermark => self.log.high_watermark(),
            ReadBound::LogEnd => self.log.log_end_offset(),
        };
        let high_watermark = self.log.high_watermark();
        let log_start_offset = self.log.log_start_offset();
        let read = self.log.read_until(offset, max_bytes, end).await?;
        Ok(PartitionRead {
            high_watermark,
            log_start_offset,
            records: read.chunks,
        })
    }

    /// ListOffsets on this partition: latest is the high watermark, as
    /// consumers see the log.
    pub async fn offset_for(&self, query: OffsetQuery) -> Result<OffsetAnswer, StorageError> {
        let leader_epoch = self.leader_epoch.get();
        let (offset, timestamp) = match query {
            OffsetQuery::Latest => (self.log.high_watermark(), -1),
            OffsetQuery::Earliest => (self.log.log_start_offset(), -1),
            OffsetQuery::AtOrAfter(ts) => {
                self.log.offset_for_timestamp(ts).await?.unwrap_or((-1, -1))
            }
        };
        Ok(OffsetAnswer {
            offset,
            timestamp,
            leader_epoch,
        })
    }

    /// The idempotent producers this partition remembers, by producer id.
    pub fn producers(&self) -> Vec<ProducerSummary> {
        let producers = self.producers.borrow();
        let mut summaries: Vec<ProducerSummary> = producers
            .iter()
            .filter_map(|(id, entry)| {
                let last = entry.batches.back()?;
                Some(ProducerSummary {
                    producer_id: *id,
                    epoch: entry.epoch,
                    last_sequence: last.last_sequence,
                })
            })
            .collect();
        summaries.sort_by_key(|s| s.producer_id);
        summaries
    }

    /// DeleteRecords on the leader (Kafka's `Partition.deleteRecordsOnLeader`):
    /// -1 means the high watermark; the log start moves to `offset` unless
    /// it is above the high watermark (out of range). Returns the new low
    /// watermark (the log start).
    pub async fn delete_records_before(&self, offset: i64) -> Result<i64, DeleteRecordsError> {
        if self.role.get() != Role::Leader {
            return Err(DeleteRecordsError::NotLeader);
        }
        if !self.log.config().cleanup_policy.delete {
            return Err(DeleteRecordsError::PolicyViolation);
        }
        let offset = if offset == DELETE_TO_HIGH_WATERMARK {
            self.log.high_watermark()
        } else {
            offset
        };
        Ok(self.log.delete_records_before(offset).await?)
    }

    /// Flushes, seals and closes the log (clean shutdown), then writes the
    /// producer-state snapshot.
    pub async fn close(&self) {
        let log = &self.log;
        if let Err(error) = log.close().await {
            tracing::error!(dir = %log.dir().display(), %error, "close log");
            return;
        }
        let stats = log.stats();
        tracing::debug!(dir = %log.dir().display(), flushes = stats.flushes,
            bytes_written = stats.bytes_written, "closed log");
        let snapshot = producer_state::write_snapshot(
            log.dir(),
            &self.producers.borrow(),
            log.log_end_offset(),
        );
        if let Err(error) = snapshot {
            tracing::error!(dir = %log.dir().display(), %error, "producer-state snapshot");
        }
    }

    /// Deletes the partition's files (its topic was deleted).
    pub async fn delete(&self) -> Result<(), StorageError> {
        self.produce_order.close();
        self.log.clone().delete().await
    }
}
