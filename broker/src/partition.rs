//! One partition's behaviour on its owning core: its log, its idempotent
//! producers, the produce ordering turn, its replica role (leader with its
//! followers' state, or follower of another broker) and leader epoch, the
//! leader's append path (idempotence check, append stamped with the leader
//! epoch, high watermark, the wait `acks` asks for: durable here and, for
//! acks=all, on every in-sync replica), the follower's append of the
//! leader's batches as they are, and reads bounded by an upper offset (the
//! high watermark for consumers; the log end for followers).
//!
//! Kafka's wire types stay out of here: callers (the api handlers, other
//! cores) get broker types and typed errors, and errors.rs turns those into
//! Kafka error codes. The replication decisions themselves (ISR, high
//! watermark, divergence) are the `replication` crate's, free of I/O.

use crate::metrics::{PartitionSnapshot, Traffic};
use crate::producer_state::{self, check_sequence, remember, Producers, Sequence, SequenceError};
use controller::PartitionImage;
use replication::{EpochEnd, IsrChange, LeaderState, NotAReplica};
use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};
use storage::batch::{BatchHeader, BatchScan};
use storage::{AppendInfo, Chunk, Event, Log, ProducedBatch, StorageError};

/// What a partition is to this broker, as the metadata log says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    /// Copies the leader's batches; refuses produce and consumer fetches
    /// with NOT_LEADER_OR_FOLLOWER.
    Follower {
        leader: i32,
        leader_epoch: i32,
    },
    /// No leader (offline), or not (yet) a replica here.
    None,
}

/// The replica state behind `Role`.
enum Replica {
    None,
    Leader(Box<LeaderState>),
    Follower { leader: i32, leader_epoch: i32 },
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
    /// acks=all with fewer in-sync replicas than `min.insync.replicas`.
    #[error("{isr} in-sync replicas, min.insync.replicas is {min}")]
    NotEnoughReplicas { isr: usize, min: usize },
    /// Appended, but the ISR shrank below `min.insync.replicas` before the
    /// high watermark passed the batch.
    #[error("appended, but only {isr} in-sync replicas, min.insync.replicas is {min}")]
    NotEnoughReplicasAfterAppend { isr: usize, min: usize },
    /// acks=all not reached on every in-sync replica within the request's
    /// timeout.
    #[error("not replicated to every in-sync replica within {0:?}")]
    Timeout(Duration),
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
    /// The request's current leader epoch is older than the partition's.
    #[error("leader epoch {given} is older than the current {current}")]
    FencedLeaderEpoch { given: i32, current: i32 },
    /// The request's current leader epoch is newer than this broker knows.
    #[error("leader epoch {given} is newer than the current {current}")]
    UnknownLeaderEpoch { given: i32, current: i32 },
    /// A fetch as a replica from a broker that holds no replica.
    #[error(transparent)]
    NotAReplica(#[from] NotAReplica),
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
    /// For a follower whose log diverged from this leader's: where the
    /// leader's log for the follower's last epoch ends (no records then).
    pub diverging: Option<EpochEnd>,
}

impl PartitionRead<Chunk> {
    /// The same read in a form that can cross to another core: tail-cache
    /// `Bytes` as they are, DMA buffers (which belong to this core's
    /// executor) copied once.
    pub fn into_sendable(self) -> PartitionRead<bytes::Bytes> {
        PartitionRead {
            high_watermark: self.high_watermark,
            log_start_offset: self.log_start_offset,
            diverging: self.diverging,
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

/// A partition's changes that a fetch long-poll waits for (an append, or
/// the high watermark moving) and the long-polls waiting on it. Only the
/// fetches that read this partition are woken, not every fetch on the core:
/// a follower's appends to a busy partition would otherwise wake every
/// replica fetch on its core for partitions that did not change.
#[derive(Default)]
pub struct Changes {
    count: Cell<u64>,
    /// Weak, so a long-poll that ended without a change leaves nothing
    /// behind; dead entries go when the next one registers.
    waiters: RefCell<Vec<Weak<Event>>>,
}

impl Changes {
    fn note(&self) {
        self.count.set(self.count.get() + 1);
        for waiter in self.waiters.take() {
            if let Some(waiter) = waiter.upgrade() {
                waiter.notify_all();
            }
        }
    }

    pub fn count(&self) -> u64 {
        self.count.get()
    }

    /// Notifies `waiter` once, at the next change.
    pub fn watch(&self, waiter: &Rc<Event>) {
        let mut waiters = self.waiters.borrow_mut();
        waiters.retain(|w| w.strong_count() > 0);
        waiters.push(Rc::downgrade(waiter));
    }
}

/// DeleteRecords' offset meaning "up to the high watermark"
/// (`DeleteRecordsRequest.HIGH_WATERMARK`).
pub const DELETE_TO_HIGH_WATERMARK: i64 = -1;

pub struct Partition {
    log: Log,
    producers: RefCell<Producers>,
    /// The active segment's base offset at the last producer-state
    /// snapshot: a roll writes the next one.
    snapshot_segment: Cell<i64>,
    /// The producer state changed since the last snapshot (the timer's
    /// snapshot is skipped otherwise).
    producers_changed: Cell<bool>,
    /// Held from the sequence check through the in-memory append, so that
    /// pipelined requests of one producer are checked and appended in order
    /// (and a follower's appends never interleave with a late leader one).
    produce_order: glommio::sync::Semaphore,
    replica: RefCell<Replica>,
    /// The high watermark moved, the ISR or the role changed: acks=all
    /// waiters look again.
    replication_changed: Event,
    /// `min.insync.replicas` of the topic.
    min_insync: Cell<usize>,
    changes: Changes,
    traffic: Traffic,
}

/// Milliseconds on the wall clock, for the followers' caught-up times.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Partition {
    /// A partition over an opened log: rebuilds its producer state from the
    /// snapshot and the log tail. It has no role until the metadata image
    /// gives it one (`apply_assignment`); its high watermark starts at the
    /// log start and only a leader moves it (to its log end at once when
    /// it is the only in-sync replica), because what the followers have is
    /// not known after a restart (Kafka would read its HW checkpoint).
    pub async fn open(log: Log, min_insync: usize) -> Partition {
        let producers = producer_state::recover(&log).await;
        log.set_high_watermark(log.log_start_offset());
        Partition {
            snapshot_segment: Cell::new(log.active_segment_base_offset()),
            producers_changed: Cell::new(false),
            log,
            producers: RefCell::new(producers),
            produce_order: glommio::sync::Semaphore::new(1),
            replica: RefCell::new(Replica::None),
            replication_changed: Event::default(),
            min_insync: Cell::new(min_insync.max(1)),
            changes: Changes::default(),
            traffic: Traffic::default(),
        }
    }

    /// The log, for what is not a partition behaviour of its own
    /// (retention, config changes, the group store's replay and compaction).
    pub fn log(&self) -> &Log {
        &self.log
    }

    pub fn role(&self) -> Role {
        match &*self.replica.borrow() {
            Replica::None => Role::None,
            Replica::Leader(_) => Role::Leader,
            Replica::Follower {
                leader,
                leader_epoch,
            } => Role::Follower {
                leader: *leader,
                leader_epoch: *leader_epoch,
            },
        }
    }

    /// The current leader epoch as this broker knows it (-1: none).
    pub fn leader_epoch(&self) -> i32 {
        match &*self.replica.borrow() {
            Replica::None => -1,
            Replica::Leader(leader) => leader.leader_epoch(),
            Replica::Follower { leader_epoch, .. } => *leader_epoch,
        }
    }

    pub fn high_watermark(&self) -> i64 {
        self.log.high_watermark()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log.log_start_offset()
    }

    pub fn set_min_insync(&self, min_insync: usize) {
        self.min_insync.set(min_insync.max(1));
        self.replication_changed.notify_all();
    }

    /// Takes the role the metadata image gives this broker (`me`): the
    /// leader at a new leader epoch stamps it into the log and starts
    /// tracking its followers afresh; the same leadership only takes the
    /// committed ISR; anything else becomes a follower of the leader (or
    /// nothing, without one). Waiting acks=all producers look again (and
    /// fail with NOT_LEADER_OR_FOLLOWER if leadership moved).
    pub async fn apply_assignment(
        &self,
        me: i32,
        state: &PartitionImage,
    ) -> Result<(), StorageError> {
        let now = now_ms();
        let same_leadership = matches!(&*self.replica.borrow(),
            Replica::Leader(leader) if leader.leader_epoch() == state.leader_epoch);
        if state.leader == me && same_leadership {
            if let Replica::Leader(leader) = &mut *self.replica.borrow_mut() {
                leader.update(
                    state.partition_epoch,
                    state.replicas.clone(),
                    state.isr.clone(),
                    now,
                );
            }
        } else if state.leader == me {
            // Held so no produce of an older role is half-way through.
            let _turn = self.produce_order.acquire_permit(1).await;
            self.log.begin_leader_epoch(state.leader_epoch).await?;
            let leader = LeaderState::new(
                me,
                state.leader_epoch,
                state.partition_epoch,
                state.replicas.clone(),
                state.isr.clone(),
                self.log.high_watermark(),
                self.log.log_end_offset(),
                now,
            );
            *self.replica.borrow_mut() = Replica::Leader(Box::new(leader));
        } else if state.leader >= 0 && state.replicas.contains(&me) {
            let follower = Replica::Follower {
                leader: state.leader,
                leader_epoch: state.leader_epoch,
            };
            *self.replica.borrow_mut() = follower;
        } else {
            *self.replica.borrow_mut() = Replica::None;
        }
        self.advance_high_watermark();
        self.replication_changed.notify_all();
        Ok(())
    }

    /// The produce path on the leader: idempotence check and append in the
    /// partition's ordering turn, then the wait `acks` asks for outside it,
    /// so that later requests join the same group commit. acks=all checks
    /// `min.insync.replicas` against the ISR before the append (Kafka's
    /// NOT_ENOUGH_REPLICAS), then waits until the batch is durable here and
    /// the high watermark (the smallest log end over the ISR, each durable
    /// on its replica) has passed it, within `timeout`.
    pub async fn produce(
        &self,
        batch: ProducedBatch,
        acks: Acks,
        timeout: Duration,
    ) -> Result<Produced, ProduceError> {
        let deadline = Instant::now() + timeout;
        let producer_id = batch.producer_id();
        let (epoch, first_sequence, count) = (
            batch.producer_epoch(),
            batch.base_sequence(),
            batch.records_count(),
        );
        let (info, leader_epoch) = {
            // Closed only when the partition goes away (deleted topic).
            let _turn = self
                .produce_order
                .acquire_permit(1)
                .await
                .map_err(|_| ProduceError::NotLeader)?;
            // Checked in the turn: a role change waits for it.
            let leader_epoch = self.check_produce(acks)?;
            let sequence = if producer_id >= 0 {
                check_sequence(&self.producers.borrow(), producer_id, epoch, first_sequence)
            } else {
                Sequence::Accept
            };
            let info = match sequence {
                Sequence::Reject(error) => return Err(error.into()),
                Sequence::Duplicate(base_offset) => AppendInfo {
                    base_offset,
                    last_offset: base_offset + i64::from(count) - 1,
                    log_append_time_ms: None,
                    log_start_offset: self.log.log_start_offset(),
                },
                Sequence::Accept => {
                    let bytes = batch.len();
                    let info = self.log.append_unsynced(batch).await?;
                    self.traffic.produced(bytes, count);
                    if producer_id >= 0 {
                        remember(
                            &mut self.producers.borrow_mut(),
                            producer_id,
                            epoch,
                            first_sequence,
                            count,
                            info.base_offset,
                        );
                        self.producers_changed.set(true);
                    }
                    self.snapshot_producers_at_roll();
                    self.advance_high_watermark();
                    self.changes.note();
                    info
                }
            };
            (info, leader_epoch)
        };
        if acks == Acks::All {
            // A retried duplicate waits too: its first copy may still be
            // on its way to the disk or to the followers.
            self.log.wait_durable(&info).await?;
            self.wait_replicated(info.last_offset + 1, leader_epoch, deadline, timeout)
                .await?;
        }
        Ok(Produced {
            base_offset: info.base_offset,
            log_append_time_ms: info.log_append_time_ms,
            log_start_offset: self.log.log_start_offset(),
        })
    }

    /// This broker's leader epoch if it may take this produce.
    fn check_produce(&self, acks: Acks) -> Result<i32, ProduceError> {
        match &*self.replica.borrow() {
            Replica::Leader(leader) => {
                let (isr, min) = (leader.isr().len(), self.min_insync.get());
                if acks == Acks::All && isr < min {
                    return Err(ProduceError::NotEnoughReplicas { isr, min });
                }
                Ok(leader.leader_epoch())
            }
            _ => Err(ProduceError::NotLeader),
        }
    }

    /// Resolves once the high watermark reaches `end` under the same
    /// leadership (Kafka's delayed produce for acks=all).
    async fn wait_replicated(
        &self,
        end: i64,
        leader_epoch: i32,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(), ProduceError> {
        loop {
            let changed = self.replication_changed.listen();
            match &*self.replica.borrow() {
                Replica::Leader(leader) if leader.leader_epoch() == leader_epoch => {
                    if leader.high_watermark() >= end {
                        let (isr, min) = (leader.maximal_isr_len(), self.min_insync.get());
                        if isr < min {
                            return Err(ProduceError::NotEnoughReplicasAfterAppend { isr, min });
                        }
                        return Ok(());
                    }
                }
                _ => return Err(ProduceError::NotLeader),
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ProduceError::Timeout(timeout));
            }
            futures_lite::future::or(changed, glommio::timer::sleep(deadline - now)).await;
        }
    }

    /// Appends a batch the broker built itself (the group coordinator's
    /// records) under the same ordering turn as produce; the caller then
    /// waits with `wait_durable`, outside whatever turn of its own it holds,
    /// so that concurrent callers share one group commit.
    pub async fn append_own(&self, batch: ProducedBatch) -> Result<AppendInfo, StorageError> {
        let closed = || StorageError::Closed(self.log.dir().display().to_string());
        let _turn = self
            .produce_order
            .acquire_permit(1)
            .await
            .map_err(|_| closed())?;
        // Only the leader writes its own records; a follower's log is the
        // leader's copy.
        if self.role() != Role::Leader {
            return Err(closed());
        }
        let info = self.log.append_unsynced(batch).await?;
        self.advance_high_watermark();
        self.changes.note();
        Ok(info)
    }

    /// acks=all for a batch the broker appended itself (`append_own`):
    /// durable here and on every in-sync replica, within `timeout`.
    pub async fn wait_committed(
        &self,
        info: &AppendInfo,
        timeout: Duration,
    ) -> Result<(), ProduceError> {
        let deadline = Instant::now() + timeout;
        self.log.wait_durable(info).await?;
        let leader_epoch = match &*self.replica.borrow() {
            Replica::Leader(leader) => leader.leader_epoch(),
            _ => return Err(ProduceError::NotLeader),
        };
        self.wait_replicated(info.last_offset + 1, leader_epoch, deadline, timeout)
            .await
    }

    /// Resolves when the appended batch is durable under the flush policy
    /// (storage's one rule for acks=all).
    pub async fn wait_durable(&self, info: &AppendInfo) -> Result<(), StorageError> {
        self.log.wait_durable(info).await
    }

    /// On the leader, the high watermark follows the ISR's log ends
    /// (`LeaderState`); with itself the only in-sync replica that is its
    /// own log end. Wakes acks=all waiters when it moves.
    fn advance_high_watermark(&self) {
        let moved = match &mut *self.replica.borrow_mut() {
            Replica::Leader(leader) => {
                let before = self.log.high_watermark();
                let hw = leader.advance_high_watermark(self.log.log_end_offset());
                self.log.set_high_watermark(hw);
                hw != before
            }
            _ => false,
        };
        if moved {
            self.replication_changed.notify_all();
            // Consumers read up to it.
            self.changes.note();
        }
    }

    /// Its record traffic (metrics/mod.rs).
    pub fn traffic(&self) -> &Traffic {
        &self.traffic
    }

    /// The partition as `/metrics` shows it.
    pub fn snapshot(&self, topic: &str, index: i32) -> PartitionSnapshot {
        let (leader, under_replicated, under_min_isr) = match &*self.replica.borrow() {
            Replica::Leader(leader) => (
                true,
                leader.isr().len() < leader.replicas().len(),
                leader.isr().len() < self.min_insync.get(),
            ),
            _ => (false, false, false),
        };
        let stats = self.log.stats();
        PartitionSnapshot {
            topic: topic.to_string(),
            partition: index,
            leader,
            under_replicated,
            under_min_isr,
            log_start_offset: self.log.log_start_offset(),
            log_end_offset: self.log.log_end_offset(),
            high_watermark: self.log.high_watermark(),
            size_bytes: self.log.size_bytes(),
            traffic: self.traffic.snapshot(),
            log_stats: stats,
        }
    }

    /// What fetch long-polls on this partition wait for.
    pub fn changes(&self) -> &Changes {
        &self.changes
    }

    /// Checks a fetch's current leader epoch (KIP-320; -1 asks for no
    /// check) against this leadership.
    pub fn check_leader_epoch(&self, given: i32) -> Result<(), ReadError> {
        let current = match &*self.replica.borrow() {
            Replica::Leader(leader) => leader.leader_epoch(),
            _ => return Err(ReadError::NotLeader),
        };
        match given {
            -1 => Ok(()),
            g if g < current => Err(ReadError::FencedLeaderEpoch { given, current }),
            g if g > current => Err(ReadError::UnknownLeaderEpoch { given, current }),
            _ => Ok(()),
        }
    }

    /// Where the leader's log for `epoch` ends (OffsetForLeaderEpoch).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> EpochEnd {
        let (epoch, end_offset) = self.log.end_offset_for_epoch(epoch);
        EpochEnd { epoch, end_offset }
    }

    /// A follower's fetch reached the leader: its divergence, if its last
    /// fetched epoch does not end where it thinks on this leader; else its
    /// new position, the high watermark that follows, and an ISR change
    /// to ask the controller for.
    pub fn on_replica_fetch(
        &self,
        replica: i32,
        fetch_offset: i64,
        last_fetched_epoch: i32,
        eligible: impl Fn(i32) -> bool,
    ) -> Result<(Option<EpochEnd>, Option<IsrChange>), ReadError> {
        let (log_start, log_end) = (self.log.log_start_offset(), self.log.log_end_offset());
        let out_of_range = StorageError::OffsetOutOfRange {
            offset: fetch_offset,
            log_start,
            log_end,
        };
        let leader_end = self.end_offset_for_epoch(last_fetched_epoch.max(0));
        if let Some(diverging) =
            replication::diverging_epoch(last_fetched_epoch, fetch_offset, leader_end)
        {
            if diverging.epoch < 0 {
                // Older than anything this log keeps: the follower restarts
                // from the log start (Kafka answers OFFSET_OUT_OF_RANGE).
                return Err(out_of_range.into());
            }
            return Ok((Some(diverging), None));
        }
        if fetch_offset < log_start || fetch_offset > log_end {
            return Err(out_of_range.into());
        }
        let change = match &mut *self.replica.borrow_mut() {
            Replica::Leader(leader) => {
                leader.on_fetch(replica, fetch_offset, log_end, now_ms())?;
                None
            }
            _ => return Err(ReadError::NotLeader),
        };
        self.advance_high_watermark();
        let change = change.or_else(|| self.propose_isr_change(Duration::MAX, eligible));
        Ok((None, change))
    }

    /// The ISR change this leader should ask for now: members lagging more
    /// than `lag_max` leave, caught-up replicas join (None: no change, one
    /// in flight, or not the leader).
    pub fn propose_isr_change(
        &self,
        lag_max: Duration,
        eligible: impl Fn(i32) -> bool,
    ) -> Option<IsrChange> {
        let log_end = self.log.log_end_offset();
        let lag_ms = u64::try_from(lag_max.as_millis()).unwrap_or(u64::MAX);
        match &mut *self.replica.borrow_mut() {
            Replica::Leader(leader) => {
                leader.propose_isr_change(log_end, now_ms(), lag_ms, eligible)
            }
            _ => None,
        }
    }

    /// The controller refused or did not answer the ISR change in flight.
    pub fn isr_change_failed(&self) {
        if let Replica::Leader(leader) = &mut *self.replica.borrow_mut() {
            leader.change_failed(now_ms());
        }
    }

    /// The controller refused `change` at this leadership's own epochs
    /// (the ask did not commit; see `LeaderState::change_refused`).
    pub fn isr_change_refused(&self, change: &IsrChange) {
        if let Replica::Leader(leader) = &mut *self.replica.borrow_mut() {
            leader.change_refused(change, now_ms());
        }
    }

    /// The ISR's size while this replica leads.
    pub fn isr_len(&self) -> Option<usize> {
        match &*self.replica.borrow() {
            Replica::Leader(leader) => Some(leader.isr().len()),
            _ => None,
        }
    }

    /// The controller committed an ISR change this leader asked for (the
    /// metadata log will say the same; whichever comes first applies).
    pub fn isr_changed(&self, partition_epoch: i32, isr: Vec<i32>) {
        if let Replica::Leader(leader) = &mut *self.replica.borrow_mut() {
            let replicas = leader.replicas().to_vec();
            leader.update(partition_epoch, replicas, isr, now_ms());
        }
        self.advance_high_watermark();
        self.replication_changed.notify_all();
    }

    /// The follower path: the leader's batches appended as they are
    /// (offsets, epochs and CRCs from the leader), in the ordering turn;
    /// their idempotent producers remembered, so that a retry after
    /// failover to this replica is still recognised. None when `batches`
    /// held no whole batch.
    pub async fn append_replicated(
        &self,
        batches: bytes::Bytes,
    ) -> Result<Option<AppendInfo>, StorageError> {
        let _turn = self
            .produce_order
            .acquire_permit(1)
            .await
            .map_err(|_| StorageError::Closed(self.log.dir().display().to_string()))?;
        let bytes = batches.len();
        let Some(info) = self.log.append_replicated(batches.clone()).await? else {
            return Ok(None);
        };
        // append_replicated checked their CRCs.
        let mut scan = BatchScan::framing(&batches);
        let mut producers = self.producers.borrow_mut();
        while let Ok((_, batch)) = scan.next_batch() {
            let Ok(header) = BatchHeader::parse(batch) else {
                break;
            };
            if header.base_offset() > info.last_offset {
                break;
            }
            if header.producer_id.get() >= 0 {
                self.producers_changed.set(true);
            }
            producer_state::remember_stored(&mut producers, header);
        }
        drop(producers);
        self.snapshot_producers_at_roll();
        self.traffic.replicated_in(bytes);
        self.changes.note();
        Ok(Some(info))
    }

    /// A follower learns the leader's high watermark with each fetch; its
    /// own never passes its log end.
    pub fn follow_high_watermark(&self, leader_high_watermark: i64) {
        let hw = leader_high_watermark.min(self.log.log_end_offset());
        if hw > self.log.high_watermark() {
            self.log.set_high_watermark(hw);
        }
    }

    /// Removes the divergent tail of a follower's log at `offset` (and the
    /// producer state that described it).
    pub async fn truncate_to(&self, offset: i64) -> Result<(), StorageError> {
        let _turn = self
            .produce_order
            .acquire_permit(1)
            .await
            .map_err(|_| StorageError::Closed(self.log.dir().display().to_string()))?;
        self.log.truncate_to(offset).await?;
        let end = self.log.log_end_offset();
        producer_state::forget_from(self.log.dir(), &mut self.producers.borrow_mut(), end);
        Ok(())
    }

    /// Empties a follower's log and starts it at `offset`, the leader's
    /// log start, when the leader no longer has what would follow this
    /// log (Kafka's `truncateFullyAndStartAt`).
    pub async fn restart_at(&self, offset: i64) -> Result<(), StorageError> {
        let _turn = self
            .produce_order
            .acquire_permit(1)
            .await
            .map_err(|_| StorageError::Closed(self.log.dir().display().to_string()))?;
        self.log.truncate_fully_and_start_at(offset).await?;
        producer_state::forget_from(self.log.dir(), &mut self.producers.borrow_mut(), i64::MIN);
        Ok(())
    }

    /// Truncation for a divergence the leader reported.
    pub async fn truncate_diverging(&self, diverging: EpochEnd) -> Result<i64, StorageError> {
        let local = self.end_offset_for_epoch(diverging.epoch);
        let offset = replication::truncation_offset(
            diverging,
            local,
            self.log.log_end_offset(),
            self.log.high_watermark(),
        );
        self.truncate_to(offset).await?;
        Ok(self.log.log_end_offset())
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
            diverging: None,
        })
    }

    /// ListOffsets on this partition: latest is the high watermark, as
    /// consumers see the log.
    pub async fn offset_for(&self, query: OffsetQuery) -> Result<OffsetAnswer, StorageError> {
        let leader_epoch = self.leader_epoch();
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
        if self.role() != Role::Leader {
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

    /// In the ordering turn after an append: when the log has rolled, the
    /// state (of every batch below the log end) is snapshotted, as Kafka
    /// snapshots at each roll, so that a crash replays at most about one
    /// segment and still knows producers whose last batch is older.
    fn snapshot_producers_at_roll(&self) {
        let active = self.log.active_segment_base_offset();
        if active == self.snapshot_segment.get() {
            return;
        }
        self.snapshot_segment.set(active);
        if self.producers_changed.get() || !self.producers.borrow().is_empty() {
            self.write_producer_snapshot();
        }
    }

    fn write_producer_snapshot(&self) {
        let log = &self.log;
        let written = producer_state::write_snapshot(
            log.dir(),
            &self.producers.borrow(),
            log.log_end_offset(),
        );
        match written {
            Ok(()) => self.producers_changed.set(false),
            Err(error) => {
                tracing::error!(dir = %log.dir().display(), %error, "producer-state snapshot")
            }
        }
    }

    /// The timer's snapshot (`sluice.producer.snapshot.interval.ms`): taken
    /// in the ordering turn, so it covers exactly the batches below the log
    /// end, when the state changed since the last one.
    pub async fn snapshot_producers_if_changed(&self) {
        if !self.producers_changed.get() {
            return;
        }
        let Ok(_turn) = self.produce_order.acquire_permit(1).await else {
            return; // closed: the partition is going away
        };
        if self.producers_changed.get() {
            self.write_producer_snapshot();
        }
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
        self.write_producer_snapshot();
    }

    /// Deletes the partition's files (its topic was deleted).
    pub async fn delete(&self) -> Result<(), StorageError> {
        self.produce_order.close();
        self.log.clone().delete().await
    }
}
