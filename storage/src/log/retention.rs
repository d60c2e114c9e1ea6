//! Removing data: truncation of the tail, and retention or DeleteRecords of
//! whole leading segments.

use super::Log;
use crate::batch::{BatchHeader, BatchScan};
use crate::error::{Result, StorageError};
use crate::io::sync_dir;
use crate::segment::{cut_file, read_tail_page, Segment};
use std::collections::BTreeMap;

impl Log {
    /// Removes every batch at or after `offset`. Truncation is by batch: the
    /// batch holding `offset` goes too, so the log end may land below it.
    /// The leader-epoch cache loses the epochs that start at or after the
    /// new log end, even when nothing else is cut (`offset` at or past the
    /// log end), as Kafka's truncateTo does: a leader that began an epoch
    /// and wrote nothing in it leaves an entry at the log end that its new
    /// leader's log contradicts. To or below the log start the log restarts
    /// empty at `offset` and the cache is cleared.
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
            return self.change_epochs(|epochs| epochs.truncate_from_end(end));
        }
        if offset <= start {
            self.truncate_fully(offset).await?;
            return self.change_epochs(|epochs| epochs.clear());
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
                segment.remove_files()?;
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
        self.poison_on_error(result)?;
        // The new log end, not `offset`: an epoch that began at the base of
        // the batch that was cut holding `offset` is gone too.
        self.change_epochs(|epochs| epochs.truncate_from_end(cut_offset))
    }

    /// Kafka's `truncateFullyAndStartAt`: deletes every segment and
    /// restarts the log empty at `offset`, wherever that is relative to the
    /// current log (a follower whose leader no longer has what would follow
    /// its log restarts at the leader's log start). The leader-epoch cache
    /// is cleared; the next replicated batches fill it again. A negative
    /// offset is out of range.
    pub async fn truncate_fully_and_start_at(&self, offset: i64) -> Result<()> {
        if offset < 0 {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset(),
                log_end: self.log_end_offset(),
            });
        }
        let order = self.order().await?;
        let restart = move |log: Log| async move {
            log.flush_pending().await?;
            log.truncate_fully(offset).await?;
            log.change_epochs(|epochs| epochs.clear())
        };
        self.exclusively(Some(order), restart).await.1
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
    /// The old segments stay in memory until the new one exists: the log
    /// is never without an active segment across an await (a background
    /// flusher asking for the log end then panicked; model test).
    async fn truncate_fully(&self, offset: i64) -> Result<()> {
        let result = async {
            for segment in self.inner.state.borrow().segments.values() {
                segment.remove_files()?;
            }
            let segment = Segment::create(&self.inner.dir, offset).await?;
            sync_dir(&self.inner.dir).await?;
            {
                let mut state = self.inner.state.borrow_mut();
                state.cache.clear();
                state.segments = BTreeMap::from([(offset, segment)]);
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

    /// Deletes whole old segments past `retention.bytes` or older than
    /// `retention.ms` (by their newest timestamp), never the active one;
    /// only under a `cleanup.policy` with `delete` (a compact-only topic
    /// keeps every key's last record however old). Returns how many were
    /// deleted.
    pub async fn enforce_retention(&self, now_ms: i64) -> Result<usize> {
        let doomed_bases = {
            let state = self.inner.state.borrow();
            let config = &state.config;
            // A poisoned, closed or offline log is left as it is on disk
            // (Kafka takes an offline log out of retention): the next
            // start recovers it and applies retention then.
            if !config.cleanup_policy.delete || self.check_writable(&state).is_err() {
                return Ok(0);
            }
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
            self.check_writable(&state)?;
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

    /// Kafka's DeleteRecords (`UnifiedLog.maybeIncrementLogStartOffset`):
    /// the log start moves up to `offset`, so records below it are no
    /// longer readable, the new start is checkpointed (it survives a
    /// restart), and the whole segments below it are deleted. An offset
    /// above the high watermark is out of range; one at or below the log
    /// start changes nothing. Returns the new log start (the low watermark).
    pub async fn delete_records_before(&self, offset: i64) -> Result<i64> {
        let moved = {
            let mut state = self.inner.state.borrow_mut();
            self.check_writable(&state)?;
            if offset < 0 || offset > state.high_watermark {
                return Err(StorageError::OffsetOutOfRange {
                    offset,
                    log_start: state.log_start_offset,
                    log_end: state.high_watermark,
                });
            }
            let moved = offset > state.log_start_offset;
            if moved {
                state.log_start_offset = offset;
                state.cache.drop_before(offset);
            }
            moved
        };
        if moved {
            let written = self.write_checkpoint();
            self.poison_on_error(written)?;
            self.change_epochs(|epochs| epochs.truncate_from_start(offset))?;
            self.delete_segments_before(offset).await?;
        }
        Ok(self.log_start_offset())
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
        let start = self.log_start_offset();
        self.change_epochs(|epochs| epochs.truncate_from_start(start))?;
        for segment in doomed {
            tracing::info!(dir = %self.inner.dir.display(), segment = segment.base_offset, "{why}");
            segment.remove_files()?;
        }
        Ok(count)
    }
}
