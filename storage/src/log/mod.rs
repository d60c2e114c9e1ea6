//! A partition's log: its segments, the tail cache, group commit, reads,
//! truncation and retention. One `Log` lives on one core; it is `Rc`-shared
//! between that core's tasks and never crosses threads.
//!
//! Concurrency: `append_lock` orders appends (offsets are assigned under it)
//! and `flush_lock` makes file writes one at a time. A waiter for durability
//! that finds `flush_lock` free writes everything pending at that moment
//! durably (one O_DSYNC write: a write and its fdatasync in one io_uring
//! operation, see `io::open_segment_log`), so one durable write serves every
//! append that arrived while the previous flush was in flight (group
//! commit, see commit.rs).
//! Every write to the files (flush, roll, truncate, close) runs in a task of
//! its own that holds `flush_lock`, so it finishes even when the caller that
//! started it is dropped (`Log::in_own_task`). Flushes nobody waits for
//! (flush policy, write-behind, the core's write buffer) go through one
//! background flusher per log (scheduler.rs).
//! State sits in a `RefCell` that is never borrowed across an `.await`.

mod append;
mod clean;
mod open;
mod read;
mod replica;
mod retention;
mod scheduler;

use scheduler::{FlushReason, FlushScheduler};

pub use clean::{CleanOptions, CleanReport};
pub use open::RecoveryReport;

use crate::cache::{CacheOwner, CoreMemory, TailCache};
use crate::checkpoint::{self, Checkpoint, CleanerCheckpoint};
use crate::commit::{Event, Turn};
use crate::config::LogConfig;
use crate::epochs::{self, LeaderEpochs};
use crate::error::{Result, StorageError};
use crate::io::Faults;
use crate::limits::TAIL_CACHE_BYTES_DEFAULT_MAX;
use crate::log_dir::LogDirHealth;
use crate::segment::Segment;
use glommio::sync::{Semaphore, StaticPermit};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// How a log is opened: its config, the core's shared memory budget, and
/// (for tests) injected faults.
#[derive(Clone)]
pub struct LogOptions {
    pub config: LogConfig,
    pub memory: Rc<CoreMemory>,
    pub faults: Rc<Faults>,
    /// The log directory this log lives in, shared with its other logs:
    /// an I/O error of any of them takes all of them offline.
    pub log_dir: Arc<LogDirHealth>,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            config: LogConfig::default(),
            memory: CoreMemory::new(TAIL_CACHE_BYTES_DEFAULT_MAX),
            faults: Rc::new(Faults::default()),
            log_dir: LogDirHealth::new(Path::new("")),
        }
    }
}

/// Where an appended batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The broker time written into the batch under LogAppendTime.
    pub log_append_time_ms: Option<i64>,
    pub log_start_offset: i64,
}

#[derive(Clone)]
pub struct Log {
    inner: Rc<Inner>,
}

struct Inner {
    dir: PathBuf,
    memory: Rc<CoreMemory>,
    state: RefCell<State>,
    append_lock: Rc<Semaphore>,
    flush_lock: Rc<Semaphore>,
    flushed: Rc<Event>,
    /// Wakes the flusher task before its due time (see scheduler.rs).
    flusher_wake: Event,
    faults: Rc<Faults>,
    log_dir: Arc<LogDirHealth>,
}

struct State {
    config: LogConfig,
    segments: BTreeMap<i64, Segment>,
    cache: TailCache,
    log_start_offset: i64,
    high_watermark: i64,
    /// Every offset below this is written and fdatasynced.
    durable_offset: i64,
    recovery_point: i64,
    poisoned: Option<String>,
    /// The last roll was refused for want of free space (logged once).
    low_on_space: bool,
    /// The one background flusher (see scheduler.rs).
    flusher: FlushScheduler,
    closed: bool,
    stats: LogStats,
    /// This log's share of the core's unwritten bytes, as last counted.
    unwritten_counted: usize,
    /// Where the cleaner stands (log/clean.rs), as in its checkpoint file.
    cleaner: CleanerCheckpoint,
    /// A cleaning pass is running: a second one waits for the next call.
    cleaning: bool,
    /// Where each leader epoch began, as in `leader-epoch-checkpoint`.
    epochs: LeaderEpochs,
    /// Written into the partitionLeaderEpoch of every batch appended as
    /// leader: the epoch of the last `begin_leader_epoch`, -1 before one.
    leader_epoch_stamp: i32,
}

/// Upper bounds of the durable-write latency buckets, in seconds (the
/// last, +Inf, is implied): 50 µs to 1 s, what an NVMe fdatasync to a
/// stalled disk takes.
pub const FLUSH_LATENCY_BOUNDS_S: [f64; 12] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1, 0.25, 1.0,
];

/// Counters for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Write + fdatasync rounds of the group commit.
    pub flushes: u64,
    /// Bytes handed to the disk, padding and rewritten tail pages included.
    pub bytes_written: u64,
    /// Flushes by how long the durable write took (`FLUSH_LATENCY_BOUNDS_S`,
    /// then +Inf; not cumulative).
    pub flush_latency: [u64; FLUSH_LATENCY_BOUNDS_S.len() + 1],
    /// Their summed latency, in nanoseconds.
    pub flush_latency_sum_ns: u64,
}

impl LogStats {
    fn flushed(&mut self, bytes: usize, took: std::time::Duration) {
        self.flushes += 1;
        self.bytes_written += bytes as u64;
        let seconds = took.as_secs_f64();
        let bucket = FLUSH_LATENCY_BOUNDS_S
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(FLUSH_LATENCY_BOUNDS_S.len());
        self.flush_latency[bucket] += 1;
        self.flush_latency_sum_ns = self
            .flush_latency_sum_ns
            .saturating_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Adds `other`'s counts (the partitions of a core summed).
    pub fn add(&mut self, other: &LogStats) {
        self.flushes += other.flushes;
        self.bytes_written += other.bytes_written;
        for (a, b) in self.flush_latency.iter_mut().zip(other.flush_latency) {
            *a += b;
        }
        self.flush_latency_sum_ns = self
            .flush_latency_sum_ns
            .saturating_add(other.flush_latency_sum_ns);
    }
}

impl State {
    // `last_key_value`/`last_entry` walk down the right edge of the map
    // only; `values().next_back()` built a double-ended iterator that
    // walked down both (0.5% of a producing core's samples).
    fn active(&self) -> &Segment {
        self.segments
            .last_key_value()
            .map(|(_, segment)| segment)
            .expect("a log always has an active segment")
    }

    fn active_base_offset(&self) -> i64 {
        self.segments
            .last_key_value()
            .map(|(base, _)| *base)
            .unwrap_or_else(|| self.log_end_offset())
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .last_entry()
            .map(|entry| entry.into_mut())
            .expect("a log always has an active segment")
    }

    fn log_end_offset(&self) -> i64 {
        self.active().next_offset
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Log {
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    pub fn log_start_offset(&self) -> i64 {
        self.inner.state.borrow().log_start_offset
    }

    pub fn log_end_offset(&self) -> i64 {
        self.inner.state.borrow().log_end_offset()
    }

    /// One past the last offset that is fdatasynced.
    pub fn durable_end_offset(&self) -> i64 {
        self.inner.state.borrow().durable_offset
    }

    /// First offset the tail cache serves (the log end if it is empty).
    pub fn cache_start_offset(&self) -> i64 {
        let state = self.inner.state.borrow();
        state.cache.first_offset().unwrap_or(state.log_end_offset())
    }

    pub fn high_watermark(&self) -> i64 {
        self.inner.state.borrow().high_watermark
    }

    /// Set by the caller (replication decides it); kept within the log.
    pub fn set_high_watermark(&self, offset: i64) {
        let mut state = self.inner.state.borrow_mut();
        let end = state.log_end_offset();
        state.high_watermark = offset.clamp(state.log_start_offset, end);
    }

    pub fn size_bytes(&self) -> u64 {
        self.inner
            .state
            .borrow()
            .segments
            .values()
            .map(|s| s.size)
            .sum()
    }

    /// The base offset of the segment appends go to; it changes when the
    /// log rolls.
    pub fn active_segment_base_offset(&self) -> i64 {
        self.inner.state.borrow().active_base_offset()
    }

    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.inner.state.borrow().segments.keys().copied().collect()
    }

    pub fn config(&self) -> LogConfig {
        self.inner.state.borrow().config.clone()
    }

    /// Whether an append is durable only after its fdatasync (the flush
    /// policy), without cloning the config on a hot path.
    pub fn is_durable(&self) -> bool {
        self.inner.state.borrow().config.is_durable()
    }

    /// Applies a new config; takes effect from the next append or check.
    pub fn set_config(&self, config: LogConfig) {
        self.inner.state.borrow_mut().config = config;
    }

    pub fn stats(&self) -> LogStats {
        self.inner.state.borrow().stats
    }

    pub fn is_poisoned(&self) -> bool {
        self.inner.state.borrow().poisoned.is_some()
    }

    fn check_writable(&self, state: &State) -> Result<()> {
        if let Some(cause) = &state.poisoned {
            return Err(StorageError::Poisoned {
                dir: self.inner.dir.display().to_string(),
                cause: cause.clone(),
            });
        }
        if state.closed {
            return Err(StorageError::Closed(self.inner.dir.display().to_string()));
        }
        self.check_dir_online()
    }

    /// Refuses while the log directory is offline (another log of it, or
    /// this one, failed an I/O operation).
    fn check_dir_online(&self) -> Result<()> {
        if self.inner.log_dir.is_offline() {
            return Err(StorageError::LogDirOffline {
                dir: self.inner.log_dir.path().display().to_string(),
                cause: self.inner.log_dir.cause().unwrap_or_default(),
            });
        }
        Ok(())
    }

    /// The log directory this log lives in.
    pub fn log_dir(&self) -> &Arc<LogDirHealth> {
        &self.inner.log_dir
    }

    /// Brings the core's count of unwritten bytes up to date with this log.
    /// A poisoned log will never write its pending bytes; they stop counting
    /// so that the core's other logs are not held up by them.
    fn recount_unwritten(&self, state: &mut State) {
        let now = if state.poisoned.is_some() || state.closed {
            0
        } else {
            state.active().pending_bytes() as usize
        };
        self.inner
            .memory
            .recount_unwritten(&mut state.unwritten_counted, now);
    }

    fn closed_error(&self) -> StorageError {
        StorageError::Closed(self.inner.dir.display().to_string())
    }

    /// Waits for this caller's place in the append order.
    async fn order(&self) -> Result<StaticPermit> {
        self.inner
            .append_lock
            .acquire_static_permit(1)
            .await
            .map_err(|_| self.closed_error())
    }

    /// Waits for the exclusive right to write the log's files.
    async fn turn(&self) -> Result<Turn> {
        let permit = self
            .inner
            .flush_lock
            .acquire_static_permit(1)
            .await
            .map_err(|_| self.closed_error())?;
        Ok(Turn::new(permit, self.inner.flushed.clone()))
    }

    /// Runs `op` holding the turn, in a task of its own: see `in_own_task`.
    async fn exclusively<T, F, Fut>(
        &self,
        order: Option<StaticPermit>,
        op: F,
    ) -> (Option<StaticPermit>, Result<T>)
    where
        T: 'static,
        F: FnOnce(Log) -> Fut + 'static,
        Fut: Future<Output = Result<T>> + 'static,
    {
        match self.turn().await {
            Ok(turn) => self.in_own_task(turn, order, op).await,
            Err(error) => (order, Err(error)),
        }
    }

    /// Runs `op` with `turn` in a task of its own that finishes even if the
    /// caller is dropped at an await (the broker drops the handlers of a
    /// connection that goes away). An abandoned flush or roll leaves the
    /// segment's bytes and its in-memory state disagreeing: an append dropped
    /// mid-flush cost the next acknowledged batch on reopen
    /// (tests/it/cancellation.rs). The caller's place in the append order,
    /// if it holds one, travels with the task and comes back, so no append
    /// slips in while a dropped caller's roll is still running.
    async fn in_own_task<T, F, Fut>(
        &self,
        turn: Turn,
        order: Option<StaticPermit>,
        op: F,
    ) -> (Option<StaticPermit>, Result<T>)
    where
        T: 'static,
        F: FnOnce(Log) -> Fut + 'static,
        Fut: Future<Output = Result<T>> + 'static,
    {
        let log = self.clone();
        let task = glommio::spawn_local(async move {
            let result = op(log).await;
            drop(turn);
            (order, result)
        })
        .detach();
        task.await
            .unwrap_or_else(|| (None, Err(self.closed_error())))
    }

    fn poison_on_error<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(error) = &result {
            self.poison(&mut self.inner.state.borrow_mut(), error.to_string());
        }
        result
    }

    /// Makes the log read-only until restart, loudly; its pending bytes stop
    /// counting against the core's write buffer.
    fn poison(&self, state: &mut State, cause: String) {
        tracing::error!(dir = %self.inner.dir.display(), %cause,
            "log poisoned: it is read-only until restart");
        if self.inner.log_dir.mark_offline(&cause) {
            tracing::error!(log_dir = %self.inner.log_dir.path().display(), %cause,
                "log directory offline: every partition in it refuses reads and writes (KAFKA_STORAGE_ERROR) until restart; new partitions go to the other log directories");
        }
        state.poisoned = Some(cause);
        self.recount_unwritten(state);
        self.wake_flusher();
    }

    fn write_checkpoint(&self) -> Result<()> {
        let checkpoint = {
            let state = self.inner.state.borrow();
            Checkpoint {
                recovery_point: state.recovery_point,
                log_start_offset: state.log_start_offset,
            }
        };
        checkpoint::write(&self.inner.dir, checkpoint)
    }

    /// Changes the epoch cache through `change` and, if it changed, writes
    /// `leader-epoch-checkpoint`. A failed write poisons the log: the cache
    /// and its file would disagree (Kafka takes the log dir offline). The
    /// leader stamp lasts only while its epoch is the cache's latest: once
    /// a truncation or a newer replicated epoch ends it, leader appends
    /// stamp -1 until the next `begin_leader_epoch`, rather than an epoch
    /// the cache no longer places.
    fn change_epochs(&self, change: impl FnOnce(&mut LeaderEpochs) -> bool) -> Result<()> {
        let epochs = {
            let mut state = self.inner.state.borrow_mut();
            if !change(&mut state.epochs) {
                return Ok(());
            }
            let latest = state.epochs.latest().map(|entry| entry.epoch);
            if latest != Some(state.leader_epoch_stamp) {
                state.leader_epoch_stamp = epochs::UNDEFINED_EPOCH;
            }
            state.epochs.clone()
        };
        self.poison_on_error(epochs::write(&self.inner.dir, &epochs))
    }

    /// Resolves once nothing this log started is still running: no append
    /// in its order, no flush, roll, truncate or close (work whose caller
    /// was dropped finishes in the background, see `in_own_task`), and no
    /// background flush running or due by now (one due later, after
    /// `flush.ms`, is not waited for).
    pub async fn idle(&self) -> Result<()> {
        loop {
            {
                let _order = self.order().await?;
                let _turn = self.turn().await?;
                let state = self.inner.state.borrow();
                if !state.flusher.is_busy(Instant::now()) {
                    return Ok(());
                }
            }
            // The flusher needs the turn just given back; it notifies
            // `flushed` when it flushed and when it stops being busy.
            self.inner.flushed.listen().await;
        }
    }
}

/// The core's budget reaches this log through these: eviction of its
/// written batches and flushes when the core's write buffer is full.
impl CacheOwner for Inner {
    fn oldest_evictable(&self) -> Option<u64> {
        let state = self.state.try_borrow().ok()?;
        state.cache.oldest_evictable(state.durable_offset)
    }

    fn evict_oldest(&self) -> bool {
        self.state
            .try_borrow_mut()
            .is_ok_and(|mut state| state.cache.evict_oldest())
    }

    fn request_flush(self: Rc<Self>) {
        Log { inner: self }.request_flush(FlushReason::CoreWriteBuffer);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let state = self.state.get_mut();
        self.memory
            .recount_unwritten(&mut state.unwritten_counted, 0);
    }
}
