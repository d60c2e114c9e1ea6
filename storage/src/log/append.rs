//! Appends (offset assignment, room in the write buffers), the group commit
//! flush, and segment rolls.

use super::scheduler::FlushReason;
use super::{now_ms, AppendInfo, Log, State};
use crate::batch::ProducedBatch;
use crate::checkpoint::{self, Checkpoint};
use crate::commit::Turn;
use crate::config::TimestampType;
use crate::error::{BatchError, Result, StorageError};
use crate::io::sync_dir;
use crate::segment::Segment;
use bytes::Bytes;
use glommio::sync::StaticPermit;
use std::rc::Rc;

impl Log {
    /// Appends one produced batch and resolves when it is durable under the
    /// flush policy: [`Log::append_unsynced`] then [`Log::wait_durable`].
    pub async fn append(&self, batch: ProducedBatch) -> Result<AppendInfo> {
        let info = self.append_unsynced(batch).await?;
        self.wait_durable(&info).await?;
        Ok(info)
    }

    /// Appends one produced batch and resolves once it is in the log
    /// (offsets assigned, readable), before it is durable: acks=1. Refuses
    /// a batch over `max.message.bytes` (`BatchError::RecordTooLarge`); the
    /// batch's other checks ran in [`ProducedBatch::new`]. Asks for a
    /// background flush under the policy, so the bytes reach the disk
    /// without anyone waiting for them.
    pub async fn append_unsynced(&self, batch: ProducedBatch) -> Result<AppendInfo> {
        let info = self.append_in_memory(batch).await?;
        self.request_flush(FlushReason::WriteBehind);
        self.request_flush(FlushReason::Policy);
        Ok(info)
    }

    /// Resolves once the batch `info` describes is durable under the flush
    /// policy; the one call for "acks=all resolves when the batch is
    /// durable". Under a durable policy ([`LogConfig::is_durable`], the
    /// default `flush.messages=1`) that is after the group-commit
    /// fdatasync covering `info.last_offset`, joined with every append
    /// waiting at the same time. Under write caching it resolves at once:
    /// the background flusher writes the batch later (`flush.messages`,
    /// `flush.ms`, write-behind), as Kafka answers acks=all from the page
    /// cache. A batch truncated away meanwhile resolves at once too.
    ///
    /// [`LogConfig::is_durable`]: crate::LogConfig::is_durable
    pub async fn wait_durable(&self, info: &AppendInfo) -> Result<()> {
        if !self.is_durable() {
            return Ok(());
        }
        self.flush_to(info.last_offset + 1).await
    }

    async fn append_in_memory(&self, batch: ProducedBatch) -> Result<AppendInfo> {
        let (max_bytes, compacted) = {
            let state = self.inner.state.borrow();
            (
                state.config.max_message_bytes,
                state.config.cleanup_policy.compact,
            )
        };
        if batch.len() > max_bytes {
            let size = batch.len();
            return Err(BatchError::RecordTooLarge {
                size,
                max: max_bytes,
            }
            .into());
        }
        // Kafka's LogValidator: a compacted log takes only keyed records.
        // Only compacted logs pay for walking (and inflating) the records.
        if compacted
            && crate::compact::has_keyless_record(
                batch.as_bytes(),
                crate::limits::CLEANER_INFLATED_BATCH_BYTES_MAX,
            )?
        {
            return Err(BatchError::KeylessRecordInCompactedLog.into());
        }
        let order = self.order().await?;
        let _order = self.make_room(order, batch.len() as u64).await?;
        let info = {
            let mut state = self.inner.state.borrow_mut();
            self.check_writable(&state)?;
            let base_offset = state.log_end_offset();
            let append_time =
                (state.config.timestamp_type == TimestampType::LogAppendTime).then(now_ms);
            let epoch = state.leader_epoch_stamp;
            let stored = batch.assign_offsets(base_offset, append_time, epoch);
            let last_offset = stored.last_offset;
            self.push_batch(
                &mut state,
                stored.bytes,
                base_offset,
                last_offset,
                stored.max_timestamp,
            );
            AppendInfo {
                base_offset,
                last_offset,
                log_append_time_ms: append_time,
                log_start_offset: state.log_start_offset,
            }
        };
        Ok(info)
    }

    /// Puts a batch with its offsets in the active segment (pending, its
    /// index entries) and the tail cache: readable from now on, written by
    /// the next flush. The caller holds the append order and made room.
    pub(super) fn push_batch(
        &self,
        state: &mut State,
        bytes: Bytes,
        base_offset: i64,
        last_offset: i64,
        max_timestamp: i64,
    ) {
        // Equal for a leader's append; past it across a compacted leader's
        // offset gap for a follower's.
        debug_assert!(base_offset >= state.log_end_offset());
        let interval = state.config.index_interval_bytes;
        state
            .active_mut()
            .append(bytes.clone(), last_offset, max_timestamp, interval);
        state.cache.push(base_offset, last_offset, bytes);
        self.recount_unwritten(state);
    }

    /// Before an append of `len` bytes: rolls the segment if it is full or
    /// old, flushes if the log's write buffer would exceed its bound, and
    /// waits for room in the core's write buffer. Takes and gives back the
    /// caller's place in the append order.
    pub(super) async fn make_room(&self, order: StaticPermit, len: u64) -> Result<StaticPermit> {
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
                if let Err(error) = self.check_writable(&state) {
                    drop(state);
                    if let StorageError::LogDirOffline { .. } = error {
                        // A neighbour's I/O error took the directory
                        // offline: this log's pending bytes will never be
                        // written, so it stops counting them against the
                        // core's write buffer (poisoning does), or healthy
                        // logs of the core would wait for room for ever.
                        self.poison(&mut self.inner.state.borrow_mut(), error.to_string());
                    }
                    return Err(error);
                }
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

    /// One durable write of everything pending (the segment is O_DSYNC:
    /// see `io::open_segment_log`). Caller holds `flush_lock`.
    pub(super) async fn flush_pending(&self) -> Result<()> {
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
        let started = std::time::Instant::now();
        let written = job.file.write_rc_at(buffer.clone(), job.position).await;
        let took = started.elapsed();
        let synced = match written {
            // The write was the sync; an injected sync failure stands for
            // the kernel failing its durable part.
            Ok(_) => match self.inner.faults.fdatasync_error() {
                Some(error) => Err(error),
                None => Ok(()),
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
        state.stats.flushed(buffer.len(), took);
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

    /// Before a roll: refuses (without poisoning) while the file system
    /// has less free than `min_free_bytes`, logging once per episode.
    fn check_free_space(&self) -> Result<()> {
        let min = self.inner.state.borrow().config.min_free_bytes;
        if min == 0 {
            return Ok(());
        }
        let Some((_, free)) = crate::io::disk_space(&self.inner.dir) else {
            return Ok(()); // unknown: the write itself will tell
        };
        let mut state = self.inner.state.borrow_mut();
        if free >= min {
            if state.low_on_space {
                state.low_on_space = false;
                tracing::warn!(dir = %self.inner.dir.display(), free, min,
                    "free space is back above sluice.log.dir.min.free.bytes: appends resume");
            }
            return Ok(());
        }
        if !state.low_on_space {
            state.low_on_space = true;
            tracing::error!(dir = %self.inner.dir.display(), free, min,
                "log directory nearly full: appends refused (KAFKA_STORAGE_ERROR) until space is freed");
        }
        Err(StorageError::DiskFull {
            dir: self.inner.dir.display().to_string(),
            free,
            min,
        })
    }

    /// [`Log::roll`] for a caller in the append order, run to completion.
    async fn roll_locked(&self, order: StaticPermit) -> (Option<StaticPermit>, Result<()>) {
        self.exclusively(Some(order), |log| async move { log.roll_now().await })
            .await
    }

    /// The roll itself; the caller holds the append order and the turn.
    async fn roll_now(&self) -> Result<()> {
        self.check_free_space()?;
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
}
