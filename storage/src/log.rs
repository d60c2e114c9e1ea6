//! A partition's log: its segments, the tail cache, group commit, reads,
//! truncation and retention. One `Log` lives on one core; it is `Rc`-shared
//! between that core's tasks and never crosses threads.
//!
//! Concurrency: `append_lock` orders appends (offsets are assigned under it)
//! and `flush_lock` makes file writes one at a time. A waiter for durability
//! that finds `flush_lock` free writes and fdatasyncs everything pending at
//! that moment, so one write + one fdatasync serves every append that arrived
//! while the previous flush was in flight (group commit, see commit.rs).
//! Every write to the files (flush, roll, truncate, close) runs in a task of
//! its own that holds `flush_lock`, so it finishes even when the caller that
//! started it is dropped (`Log::in_own_task`).
//! State sits in a `RefCell` that is never borrowed across an `.await`.

use crate::batch::{self, BatchHeader, BatchScan};
use crate::cache::{CacheOwner, CoreMemory, TailCache};
use crate::checkpoint::{self, Checkpoint};
use crate::commit::{Event, Turn};
use crate::config::{LogConfig, TimestampType};
use crate::error::{Result, StorageError};
use crate::io::{settle_iopoll_probe, sync_dir, Faults};
use crate::limits::{READ_CHUNK_BYTES_MIN, TAIL_CACHE_BYTES_DEFAULT_MAX, WRITE_BEHIND_FRACTION};
use crate::read::{Chunk, ReadBatches};
use crate::segment::{cut_file, read_tail_page, Segment, SegmentRecovery, Trust};
use bytes::BytesMut;
use glommio::io::ReadResult;
use glommio::sync::{Semaphore, StaticPermit};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How a log is opened: its config, the core's shared memory budget, and
/// (for tests) injected faults.
#[derive(Clone)]
pub struct LogOptions {
    pub config: LogConfig,
    pub memory: Rc<CoreMemory>,
    pub faults: Rc<Faults>,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            config: LogConfig::default(),
            memory: CoreMemory::new(TAIL_CACHE_BYTES_DEFAULT_MAX),
            faults: Rc::new(Faults::default()),
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

/// What opening the log found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub segments: Vec<SegmentRecovery>,
    /// Segments deleted because an earlier one was corrupt.
    pub segments_deleted: Vec<i64>,
}

impl RecoveryReport {
    pub fn truncated_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.truncated_bytes).sum()
    }
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
    faults: Rc<Faults>,
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
    flush_scheduled: bool,
    /// A write-behind flush (write buffer past `WRITE_BEHIND_FRACTION`) runs.
    write_behind: bool,
    closed: bool,
    stats: LogStats,
    /// This log's share of the core's unwritten bytes, as last counted.
    unwritten_counted: usize,
}

/// Counters for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Write + fdatasync rounds of the group commit.
    pub flushes: u64,
    /// Bytes handed to the disk, padding and rewritten tail pages included.
    pub bytes_written: u64,
}

impl State {
    fn active(&self) -> &Segment {
        self.segments
            .values()
            .next_back()
            .expect("a log always has an active segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
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
    /// Opens (or creates) the log in `dir`, recovering its unflushed tail.
    pub async fn open(dir: &Path, options: LogOptions) -> Result<(Log, RecoveryReport)> {
        // glommio makes a relative file path absolute, but opens directories
        // with dirfd -1, so fsyncing a relative directory failed with EBADF
        // (the first segment roll of a log opened as "data/t-0"). The log
        // keeps its path absolute from here on.
        let dir = &std::path::absolute(dir)
            .map_err(|e| StorageError::io(format!("resolve {}", dir.display()), e))?;
        std::fs::create_dir_all(dir)
            .map_err(|e| StorageError::io(format!("create {}", dir.display()), e))?;
        settle_iopoll_probe(dir).await?;
        let checkpoint = checkpoint::read(dir)?;
        let recovery_point = checkpoint.map_or(0, |c| c.recovery_point);
        let bases = list_segments(dir)?;
        let interval = options.config.index_interval_bytes;
        let mut report = RecoveryReport::default();
        let mut segments = BTreeMap::new();
        for (i, base) in bases.iter().enumerate() {
            let next_base = bases.get(i + 1).copied();
            let trust = match next_base {
                Some(next) if next <= recovery_point => Trust::Complete,
                None if checkpoint.is_some() && *base < recovery_point => {
                    Trust::IfEndsAt(recovery_point)
                }
                _ => Trust::None,
            };
            let trusted = trust != Trust::None;
            let (segment, found) = Segment::open(dir, *base, trust, interval).await?;
            let expected_next = next_base.unwrap_or(segment.next_offset);
            let broken = found.corrupt || segment.next_offset != expected_next;
            if found.truncated_bytes > 0 || found.index_rebuilt && trusted {
                tracing::warn!(
                    dir = %dir.display(),
                    segment = found.base_offset,
                    dropped_bytes = found.truncated_bytes,
                    corrupt = found.corrupt,
                    reason = found.reason.as_deref().unwrap_or("-"),
                    "segment recovered: tail cut or index rebuilt"
                );
            }
            report.segments.push(found);
            segments.insert(*base, segment);
            if broken && next_base.is_some() {
                // A hole in the middle of the log: keep the consistent
                // prefix and drop what follows, as Kafka's recovery does.
                for later in &bases[i + 1..] {
                    let (segment, _) = Segment::open(dir, *later, Trust::None, interval).await?;
                    segment.remove_files().await?;
                    report.segments_deleted.push(*later);
                }
                tracing::error!(dir = %dir.display(), deleted = ?report.segments_deleted,
                    "corrupt segment in the middle of the log; later segments deleted");
                break;
            }
        }
        let log_start_offset = checkpoint.map_or(0, |c| c.log_start_offset);
        if segments.is_empty() {
            let segment = Segment::create(dir, log_start_offset).await?;
            sync_dir(dir).await?;
            segments.insert(log_start_offset, segment);
        }
        let first_base = segments.keys().next().copied().unwrap_or(0);
        let mut state = State {
            config: options.config,
            segments,
            cache: TailCache::new(options.memory.clone()),
            log_start_offset: log_start_offset.max(first_base),
            high_watermark: 0,
            durable_offset: 0,
            recovery_point: 0,
            poisoned: None,
            flush_scheduled: false,
            write_behind: false,
            closed: false,
            stats: LogStats::default(),
            unwritten_counted: 0,
        };
        let end = state.log_end_offset();
        state.log_start_offset = state.log_start_offset.min(end);
        state.durable_offset = end;
        state.recovery_point = recovery_point.min(end);
        let memory = options.memory;
        let log = Log {
            inner: Rc::new(Inner {
                dir: dir.to_path_buf(),
                memory,
                state: RefCell::new(state),
                append_lock: Rc::new(Semaphore::new(1)),
                flush_lock: Rc::new(Semaphore::new(1)),
                flushed: Rc::new(Event::default()),
                faults: options.faults,
            }),
        };
        let owner: Rc<dyn CacheOwner> = log.inner.clone();
        log.inner.memory.register(Rc::downgrade(&owner));
        Ok((log, report))
    }

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
        Ok(())
    }

    /// Appends one produced batch and resolves when it is durable under the
    /// flush policy: with the default `flush.messages=1`, after the
    /// fdatasync that covers it.
    pub async fn append(&self, batch: BytesMut) -> Result<AppendInfo> {
        let info = self.append_in_memory(batch).await?;
        let durable = self.inner.state.borrow().config.is_durable();
        if durable {
            self.flush_to(info.last_offset + 1).await?;
        } else {
            self.schedule_flush();
        }
        Ok(info)
    }

    /// Appends one produced batch and resolves once it is in the log (readable,
    /// offsets assigned), before it is durable: acks=1. A flush is scheduled
    /// under the policy so the bytes still reach the disk.
    pub async fn append_unsynced(&self, batch: BytesMut) -> Result<AppendInfo> {
        let info = self.append_in_memory(batch).await?;
        self.schedule_flush();
        Ok(info)
    }

    async fn append_in_memory(&self, mut batch: BytesMut) -> Result<AppendInfo> {
        let max_bytes = self.inner.state.borrow().config.max_message_bytes;
        batch::validate_produced(&batch, max_bytes)?;
        let order = self.order().await?;
        let _order = self.make_room(order, batch.len() as u64).await?;
        let info = {
            let mut state = self.inner.state.borrow_mut();
            self.check_writable(&state)?;
            let base_offset = state.log_end_offset();
            let append_time =
                (state.config.timestamp_type == TimestampType::LogAppendTime).then(now_ms);
            batch::assign_offsets(&mut batch, base_offset, append_time)?;
            let header = BatchHeader::parse(&batch)?;
            let last_offset = header.last_offset();
            let max_timestamp = header.max_timestamp.get();
            let bytes = batch.freeze();
            let interval = state.config.index_interval_bytes;
            state
                .active_mut()
                .append(bytes.clone(), last_offset, max_timestamp, interval);
            state.cache.push(base_offset, last_offset, bytes);
            self.recount_unwritten(&mut state);
            AppendInfo {
                base_offset,
                last_offset,
                log_append_time_ms: append_time,
                log_start_offset: state.log_start_offset,
            }
        };
        Ok(info)
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

    /// Before an append of `len` bytes: rolls the segment if it is full or
    /// old, flushes if the log's write buffer would exceed its bound, and
    /// waits for room in the core's write buffer. Takes and gives back the
    /// caller's place in the append order.
    async fn make_room(&self, order: StaticPermit, len: u64) -> Result<StaticPermit> {
        let (roll, flush) = {
            let state = self.inner.state.borrow();
            self.check_writable(&state)?;
            let active = state.active();
            let config = &state.config;
            let age_ms = active.created_at.elapsed().as_millis() as i64;
            let offsets_full = state.log_end_offset() - active.base_offset >= i64::from(i32::MAX);
            let roll = active.size > 0
                && (active.size + len > config.segment_bytes
                    || age_ms >= config.segment_ms
                    || offsets_full);
            let flush = active.pending_bytes() + len > config.write_buffer_bytes_max as u64;
            (roll, flush)
        };
        let order = if roll {
            let (order, rolled) = self.roll_locked(order).await;
            rolled?;
            order.ok_or_else(|| self.closed_error())?
        } else {
            if flush {
                let end = self.log_end_offset();
                self.flush_to(end).await?;
            }
            order
        };
        self.inner.memory.room_for(len as usize).await;
        Ok(order)
    }

    /// Starts a background flush if the policy wants one and none is queued.
    fn schedule_flush(&self) {
        self.write_behind();
        let delay = {
            let mut state = self.inner.state.borrow_mut();
            if state.flush_scheduled || state.durable_offset >= state.log_end_offset() {
                return;
            }
            let unflushed = (state.log_end_offset() - state.durable_offset) as u64;
            let delay = if state.config.is_durable() || unflushed >= state.config.flush_messages {
                Duration::ZERO
            } else if state.config.flush_ms < i64::MAX {
                Duration::from_millis(state.config.flush_ms as u64)
            } else {
                // Neither bound is set: bytes reach the disk when the write
                // buffer fills, a segment rolls, or the log closes.
                return;
            };
            state.flush_scheduled = true;
            delay
        };
        let log = self.clone();
        glommio::spawn_local(async move {
            if !delay.is_zero() {
                glommio::timer::sleep(delay).await;
            }
            log.inner.state.borrow_mut().flush_scheduled = false;
            let end = log.log_end_offset();
            if let Err(error) = log.flush_to(end).await {
                tracing::error!(dir = %log.inner.dir.display(), %error, "background flush failed");
            }
        })
        .detach();
    }

    /// With write caching, flushes in the background once the write buffer
    /// is a quarter full, so appends rarely find it full: a full buffer
    /// makes the appender flush under the append lock, and every append of
    /// the partition waits for that write and fdatasync (measured: p99 of
    /// 6 ms at 400 MB/s; docs/benchmarks.md).
    fn write_behind(&self) {
        {
            let mut state = self.inner.state.borrow_mut();
            let threshold = (state.config.write_buffer_bytes_max / WRITE_BEHIND_FRACTION) as u64;
            if state.write_behind || state.active().pending_bytes() < threshold {
                return;
            }
            state.write_behind = true;
        }
        let log = self.clone();
        glommio::spawn_local(async move {
            let end = log.log_end_offset();
            let flushed = log.flush_to(end).await;
            log.inner.state.borrow_mut().write_behind = false;
            if let Err(error) = flushed {
                tracing::error!(dir = %log.inner.dir.display(), %error, "write-behind flush failed");
            }
        })
        .detach();
    }

    /// Writes and fdatasyncs everything appended so far.
    pub async fn flush(&self) -> Result<()> {
        let end = self.log_end_offset();
        self.flush_to(end).await
    }

    /// Resolves once every offset below `end_offset` is durable. This is the
    /// group commit: see the module comment.
    pub async fn flush_to(&self, end_offset: i64) -> Result<()> {
        loop {
            let flushed = {
                let state = self.inner.state.borrow();
                // Offsets truncated away since the caller appended them can
                // never become durable: stop at the log end.
                if state.durable_offset >= end_offset.min(state.log_end_offset()) {
                    return Ok(());
                }
                self.check_writable(&state)?;
                self.inner.flushed.listen()
            };
            match self.inner.flush_lock.try_acquire_static_permit(1) {
                Ok(permit) => {
                    let turn = Turn::new(permit, self.inner.flushed.clone());
                    let flush = |log: Log| async move { log.flush_pending().await };
                    self.in_own_task(turn, None, flush).await.1?;
                }
                Err(_) => flushed.await,
            }
        }
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

    /// One write + one fdatasync of everything pending. Caller holds
    /// `flush_lock`.
    async fn flush_pending(&self) -> Result<()> {
        let job = {
            let mut state = self.inner.state.borrow_mut();
            self.check_writable(&state)?;
            match state.active_mut().take_flush() {
                Some(job) => job,
                None if state.durable_offset < state.log_end_offset() => {
                    // Offsets that are neither durable nor pending: a broken
                    // invariant that would make every flush_to spin (as a
                    // dropped flush once did). Stop loudly instead.
                    let cause = format!(
                        "internal: offsets {}..{} are neither written nor pending",
                        state.durable_offset,
                        state.log_end_offset()
                    );
                    self.poison(&mut state, cause);
                    return self.check_writable(&state);
                }
                None => return Ok(()),
            }
        };
        let buffer = Rc::new(job.buffer);
        let written = job.file.write_rc_at(buffer.clone(), job.position).await;
        let synced = match written {
            Ok(_) => match self.inner.faults.fdatasync_error() {
                Some(error) => Err(error),
                None => job.file.fdatasync().await.map_err(Into::into),
            },
            Err(error) => Err(error.into()),
        };
        let mut state = self.inner.state.borrow_mut();
        if let Err(error) = synced {
            let cause = format!("write/fdatasync at {}: {error}", job.position);
            self.poison(&mut state, cause);
            return self.check_writable(&state);
        }
        state
            .active_mut()
            .complete_flush(job.position, buffer.as_bytes(), job.end);
        state.durable_offset = job.last_offset + 1;
        state.stats.flushes += 1;
        state.stats.bytes_written += buffer.len() as u64;
        self.recount_unwritten(&mut state);
        drop(state);
        self.inner.memory.evict();
        Ok(())
    }

    /// Seals the active segment and starts a new one at the log end (a no-op
    /// on an empty active segment).
    pub async fn roll(&self) -> Result<()> {
        let order = self.order().await?;
        if self.inner.state.borrow().active().size == 0 {
            return Ok(());
        }
        self.roll_locked(order).await.1
    }

    /// [`Log::roll`] for a caller in the append order, run to completion.
    async fn roll_locked(&self, order: StaticPermit) -> (Option<StaticPermit>, Result<()>) {
        self.exclusively(Some(order), |log| async move { log.roll_now().await })
            .await
    }

    /// The roll itself; the caller holds the append order and the turn.
    async fn roll_now(&self) -> Result<()> {
        self.flush_pending().await?;
        let (seal, next_base) = {
            let mut state = self.inner.state.borrow_mut();
            let next_base = state.log_end_offset();
            (state.active_mut().prepare_seal(), next_base)
        };
        self.poison_on_error(seal.run().await)?;
        let segment = self.poison_on_error(Segment::create(&self.inner.dir, next_base).await)?;
        self.poison_on_error(sync_dir(&self.inner.dir).await)?;
        let checkpoint = {
            let mut state = self.inner.state.borrow_mut();
            state.segments.insert(next_base, segment);
            state.recovery_point = next_base;
            Checkpoint {
                recovery_point: next_base,
                log_start_offset: state.log_start_offset,
            }
        };
        self.poison_on_error(checkpoint::write(&self.inner.dir, checkpoint))
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
        state.poisoned = Some(cause);
        self.recount_unwritten(state);
    }

    /// Whole batches from the one holding `offset`, up to `max_bytes` (at
    /// least one batch). Recent batches come from the tail cache, older ones
    /// from one direct read located through the offset index.
    pub async fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadBatches> {
        let (file, path, mut position, limit, base, slack) = {
            let state = self.inner.state.borrow();
            let (start, end) = (state.log_start_offset, state.log_end_offset());
            if offset < start || offset > end {
                return Err(StorageError::OffsetOutOfRange {
                    offset,
                    log_start: start,
                    log_end: end,
                });
            }
            if offset == end {
                return Ok(ReadBatches::default());
            }
            if state
                .cache
                .first_offset()
                .is_some_and(|first| first <= offset)
            {
                let chunks = state.cache.read(offset, max_bytes);
                return Ok(ReadBatches {
                    chunks: chunks.into_iter().map(Chunk::Memory).collect(),
                });
            }
            let Some((base, segment)) = state.segments.range(..=offset).next_back() else {
                return Ok(ReadBatches::default());
            };
            let relative = (offset - base) as u32;
            let position = u64::from(segment.index.lookup(relative));
            (
                segment.file.clone(),
                segment.path("log"),
                position,
                segment.flushed,
                *base,
                state.config.index_interval_bytes as usize,
            )
        };
        // The read starts at the indexed batch at or before `offset`, up to
        // `index.interval.bytes` early: read that much more so one read
        // usually holds all of `max_bytes`.
        let mut want = max_bytes.max(READ_CHUNK_BYTES_MIN).saturating_add(slack);
        while position < limit {
            let len = (limit - position).min(want as u64) as usize;
            let read = file
                .read_at(position, len)
                .await
                .map_err(|e| StorageError::io(format!("read {}", path.display()), e))?;
            match pick_batches(&read, offset, max_bytes) {
                Picked::Batches { start, end } => {
                    let slice = ReadResult::slice(&read, start, end - start).unwrap_or_default();
                    return Ok(ReadBatches {
                        chunks: vec![Chunk::Disk(slice)],
                    });
                }
                Picked::Skip { consumed, need } => {
                    position += consumed as u64;
                    want = want.max(need);
                    if consumed == 0 && need <= len {
                        break; // invalid bytes: never loop on them
                    }
                }
            }
        }
        tracing::warn!(dir = %self.inner.dir.display(), segment = base, offset,
            "read found no batch for an offset inside the log");
        Ok(ReadBatches::default())
    }

    /// The first offset whose record timestamp is >= `timestamp_ms`, with
    /// that timestamp (ListOffsets by time). For a compressed batch the
    /// answer is the batch's base offset and max timestamp.
    pub async fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<(i64, i64)>> {
        let mut offset = {
            let state = self.inner.state.borrow();
            let found = state
                .segments
                .values()
                .find(|segment| segment.max_timestamp >= timestamp_ms);
            let Some(segment) = found else {
                return Ok(None);
            };
            let after = segment.time_index.lookup(timestamp_ms);
            let start = after.map_or(segment.base_offset, |r| {
                segment.base_offset + i64::from(r) + 1
            });
            start.max(state.log_start_offset)
        };
        loop {
            let read = self.read(offset, READ_CHUNK_BYTES_MIN).await?;
            if read.is_empty() {
                return Ok(None);
            }
            for batch in read.batches() {
                let header = BatchHeader::parse(batch)?;
                if header.max_timestamp.get() >= timestamp_ms {
                    let hit = batch::first_record_at_or_after(batch, offset, timestamp_ms);
                    return Ok(Some(hit.unwrap_or((
                        header.base_offset().max(offset),
                        header.max_timestamp.get(),
                    ))));
                }
                offset = header.last_offset() + 1;
            }
        }
    }

    /// Removes every batch at or after `offset`. Truncation is by batch: the
    /// batch holding `offset` goes too, so the log end may land below it.
    pub async fn truncate_to(&self, offset: i64) -> Result<()> {
        let order = self.order().await?;
        let truncate = move |log: Log| async move { log.truncate_now(offset).await };
        self.exclusively(Some(order), truncate).await.1
    }

    /// [`Log::truncate_to`] itself; the caller holds the append order and
    /// the turn.
    async fn truncate_now(&self, offset: i64) -> Result<()> {
        self.flush_pending().await?;
        let (start, end) = {
            let state = self.inner.state.borrow();
            (state.log_start_offset, state.log_end_offset())
        };
        if offset >= end {
            return Ok(());
        }
        if offset <= start {
            return self.truncate_fully(offset).await;
        }
        let (position, cut_offset) = self.batch_position(offset).await?;
        let (doomed, file, path, base) = {
            let mut state = self.inner.state.borrow_mut();
            let base = *state
                .segments
                .range(..=offset)
                .next_back()
                .map(|(base, _)| base)
                .unwrap_or(&start);
            let doomed: Vec<Segment> = {
                let later: Vec<i64> = state.segments.range(base + 1..).map(|(b, _)| *b).collect();
                later
                    .into_iter()
                    .filter_map(|b| state.segments.remove(&b))
                    .collect()
            };
            let segment = state.active_mut();
            segment.cut(position, cut_offset);
            let (file, path) = (segment.file.clone(), segment.path("log"));
            state.cache.truncate_from(cut_offset);
            state.durable_offset = state.durable_offset.min(cut_offset);
            state.high_watermark = state.high_watermark.min(cut_offset);
            state.recovery_point = state.recovery_point.min(base);
            (doomed, file, path, base)
        };
        let result = async {
            cut_file(&file, &path, position).await?;
            for segment in doomed {
                segment.remove_files().await?;
            }
            let page = read_tail_page(&file, &path, position).await?;
            self.inner
                .state
                .borrow_mut()
                .active_mut()
                .set_tail_page(page);
            self.write_checkpoint()
        }
        .await;
        tracing::info!(dir = %self.inner.dir.display(), offset = cut_offset, segment = base, "log truncated");
        self.poison_on_error(result)
    }

    /// (position, base offset) of the batch holding `offset`, by reading.
    async fn batch_position(&self, offset: i64) -> Result<(u64, i64)> {
        let (file, path, mut position, limit) = {
            let state = self.inner.state.borrow();
            let (base, segment) = state.segments.range(..=offset).next_back().ok_or(
                StorageError::OffsetOutOfRange {
                    offset,
                    log_start: state.log_start_offset,
                    log_end: state.log_end_offset(),
                },
            )?;
            let position = u64::from(segment.index.lookup((offset - base) as u32));
            (
                segment.file.clone(),
                segment.path("log"),
                position,
                segment.size,
            )
        };
        while position < limit {
            let read = file
                .read_at(position, (limit - position) as usize)
                .await
                .map_err(|e| StorageError::io(format!("read {}", path.display()), e))?;
            let mut scan = BatchScan::new(&read);
            while let Ok((at, batch)) = scan.next_batch() {
                let header = BatchHeader::parse(batch)?;
                if header.last_offset() >= offset {
                    return Ok((position + at as u64, header.base_offset()));
                }
            }
            if scan.position() == 0 {
                break;
            }
            position += scan.position() as u64;
        }
        Err(StorageError::io(
            format!("truncate {}", path.display()),
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "offset not found in segment",
            ),
        ))
    }

    /// Deletes all data and restarts the log empty at `offset` (Kafka's
    /// truncateFullyAndStartAt).
    async fn truncate_fully(&self, offset: i64) -> Result<()> {
        let doomed: Vec<Segment> = {
            let mut state = self.inner.state.borrow_mut();
            state.cache.clear();
            std::mem::take(&mut state.segments).into_values().collect()
        };
        let result = async {
            for segment in doomed {
                segment.remove_files().await?;
            }
            let segment = Segment::create(&self.inner.dir, offset).await?;
            sync_dir(&self.inner.dir).await?;
            {
                let mut state = self.inner.state.borrow_mut();
                state.segments.insert(offset, segment);
                state.log_start_offset = offset;
                state.durable_offset = offset;
                state.high_watermark = offset;
                state.recovery_point = offset;
            }
            self.write_checkpoint()
        }
        .await;
        self.poison_on_error(result)
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

    /// Deletes whole old segments past `retention.bytes` or older than
    /// `retention.ms` (by their newest timestamp), never the active one.
    /// Returns how many were deleted.
    pub async fn enforce_retention(&self, now_ms: i64) -> Result<usize> {
        let doomed_bases = {
            let state = self.inner.state.borrow();
            let config = &state.config;
            let mut total: u64 = state.segments.values().map(|s| s.size).sum();
            let active_base = state.active().base_offset;
            let mut doomed_bases = Vec::new();
            for (base, segment) in &state.segments {
                if *base == active_base {
                    break;
                }
                let over_bytes = config.retention_bytes >= 0
                    && total.saturating_sub(segment.size) >= config.retention_bytes as u64;
                let too_old = config.retention_ms >= 0
                    && segment.max_timestamp >= 0
                    && now_ms.saturating_sub(segment.max_timestamp) > config.retention_ms;
                if !(over_bytes || too_old) {
                    break;
                }
                total -= segment.size;
                doomed_bases.push(*base);
            }
            doomed_bases
        };
        self.remove_leading_segments(doomed_bases, "retention deleted segment")
            .await
    }

    /// Deletes the whole sealed segments that hold only offsets below
    /// `offset` (Kafka's DeleteRecords, by segment): the log start moves to
    /// the first remaining segment. Never deletes the active segment.
    /// Returns how many were deleted.
    pub async fn delete_segments_before(&self, offset: i64) -> Result<usize> {
        let doomed_bases = {
            let state = self.inner.state.borrow();
            let bases: Vec<i64> = state.segments.keys().copied().collect();
            bases
                .windows(2)
                .take_while(|pair| pair[1] <= offset)
                .map(|pair| pair[0])
                .collect()
        };
        self.remove_leading_segments(doomed_bases, "deleted segment below offset")
            .await
    }

    /// Removes the given oldest segments (never the active one), moves the
    /// log start, checkpoints, then deletes their files.
    async fn remove_leading_segments(&self, bases: Vec<i64>, why: &str) -> Result<usize> {
        let doomed: Vec<Segment> = {
            let mut state = self.inner.state.borrow_mut();
            let active_base = state.active().base_offset;
            let doomed: Vec<Segment> = bases
                .iter()
                .filter(|b| **b != active_base)
                .filter_map(|b| state.segments.remove(b))
                .collect();
            if let Some(first) = state.segments.keys().next().copied() {
                state.log_start_offset = state.log_start_offset.max(first);
            }
            let start = state.log_start_offset;
            state.cache.drop_before(start);
            state.high_watermark = state.high_watermark.max(start);
            doomed
        };
        let count = doomed.len();
        if count == 0 {
            return Ok(0);
        }
        self.write_checkpoint()?;
        for segment in doomed {
            tracing::info!(dir = %self.inner.dir.display(), segment = segment.base_offset, "{why}");
            segment.remove_files().await?;
        }
        Ok(count)
    }

    /// Flushes, seals the active segment and records a recovery point at the
    /// log end, so the next open scans nothing but the last segment.
    pub async fn close(&self) -> Result<()> {
        let order = self.order().await?;
        let close = |log: Log| async move { log.close_now().await };
        self.exclusively(Some(order), close).await.1
    }

    /// [`Log::close`] itself; the caller holds the append order and the turn.
    async fn close_now(&self) -> Result<()> {
        if self.inner.state.borrow().closed {
            return Ok(());
        }
        self.flush_pending().await?;
        let seal = self.inner.state.borrow_mut().active_mut().prepare_seal();
        seal.run().await?;
        {
            let mut state = self.inner.state.borrow_mut();
            state.recovery_point = state.log_end_offset();
            state.closed = true;
            self.recount_unwritten(&mut state);
        }
        self.write_checkpoint()
    }

    /// Resolves once nothing this log started is still running: no append
    /// in its order, no flush, roll, truncate or close (work whose caller
    /// was dropped finishes in the background, see `in_own_task`).
    pub async fn idle(&self) -> Result<()> {
        let _order = self.order().await?;
        let _turn = self.turn().await?;
        Ok(())
    }

    /// Closes the log and removes its directory, after any work still
    /// running on it, which could otherwise write into the directory of a
    /// partition re-created under the same name.
    pub async fn delete(self) -> Result<()> {
        self.idle().await?;
        {
            let mut state = self.inner.state.borrow_mut();
            state.closed = true;
            state.cache.clear();
            self.recount_unwritten(&mut state);
        }
        std::fs::remove_dir_all(&self.inner.dir)
            .map_err(|e| StorageError::io(format!("delete {}", self.inner.dir.display()), e))
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

    fn flush_in_background(self: Rc<Self>) {
        let log = Log { inner: self };
        let end = log.log_end_offset();
        if log.durable_end_offset() >= end {
            return;
        }
        glommio::spawn_local(async move {
            if let Err(error) = log.flush_to(end).await {
                tracing::error!(dir = %log.inner.dir.display(), %error, "flush for the core's write buffer failed");
            }
        })
        .detach();
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let state = self.state.get_mut();
        self.memory
            .recount_unwritten(&mut state.unwritten_counted, 0);
    }
}

enum Picked {
    /// Byte range of the whole batches to return.
    Batches { start: usize, end: usize },
    /// No batch to return in these bytes: skip `consumed` and read at least
    /// `need` bytes next.
    Skip { consumed: usize, need: usize },
}

/// Picks from `bytes` (starting at a batch boundary) the batches from the
/// one holding `offset`, up to `max_bytes` but at least one.
fn pick_batches(bytes: &[u8], offset: i64, max_bytes: usize) -> Picked {
    let mut scan = BatchScan::new(bytes);
    let mut start = None;
    let mut end = 0;
    loop {
        let before = scan.position();
        match scan.next_batch() {
            Ok((at, batch)) => {
                let last = BatchHeader::parse(batch).map_or(i64::MIN, |h| h.last_offset());
                if last < offset {
                    continue;
                }
                let first = *start.get_or_insert(at);
                if end > first && at + batch.len() - first > max_bytes {
                    break;
                }
                end = at + batch.len();
            }
            Err(_) if start.is_some() => break,
            Err(_) => {
                let need = BatchHeader::parse(&bytes[before..])
                    .ok()
                    .and_then(BatchHeader::total_bytes)
                    .unwrap_or(READ_CHUNK_BYTES_MIN);
                return Picked::Skip {
                    consumed: before,
                    need,
                };
            }
        }
    }
    match start {
        Some(start) => Picked::Batches { start, end },
        None => Picked::Skip {
            consumed: scan.position(),
            need: READ_CHUNK_BYTES_MIN,
        },
    }
}

/// Base offsets of the `.log` files in `dir`, ascending. Leftover temp
/// files are removed.
fn list_segments(dir: &Path) -> Result<Vec<i64>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| StorageError::io(format!("list {}", dir.display()), e))?;
    let mut bases = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io(format!("list {}", dir.display()), e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(".log") {
            if stem.len() == 20 {
                if let Ok(base) = stem.parse::<i64>() {
                    bases.push(base);
                }
            }
        }
    }
    bases.sort_unstable();
    Ok(bases)
}
