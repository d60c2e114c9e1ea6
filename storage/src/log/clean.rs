//! Log compaction (Kafka's log cleaner), one pass per call, driven by the
//! broker per core: `Log::clean(now_ms)`.
//!
//! A pass: (1) decide from the sealed segments whether cleaning is due
//! (`min.cleanable.dirty.ratio`, `max.compaction.lag.ms`) and which leading
//! sealed segments may be rewritten (older than `min.compaction.lag.ms`,
//! wholly below the high watermark and the durable end); (2) read the dirty
//! log from the clean point up to the high watermark (the active segment
//! and the tail cache included) into a bounded map key -> last offset;
//! (3) rewrite each cleanable segment from the log start, oldest first,
//! keeping a record only if no later record has its key (and dropping
//! keyless records, and tombstones `delete.retention.ms` after their segment
//! was first wholly cleaned), into `<base>.cleaned`; (4) swap each in:
//! `.cleaned` -> `.swap`, fsync the directory, then (under the turn, with
//! no await between the check and the in-memory swap) drop the old
//! indexes, rename `.swap` over `.log`, replace the segment in memory and
//! drop its tail cache entries, write the new indexes, fsync the directory;
//! (5) record the new clean point in `cleaner-offset-checkpoint`.
//!
//! Offsets never change: a rewritten batch keeps its base offset and
//! lastOffsetDelta; a batch left with no records is dropped (a gap), except
//! a segment's last batch, kept empty so the segment still ends where it did.
//! Readers holding the old segment's file keep reading its old bytes (the
//! file stays open after the rename replaces it); an offset's record never
//! changes content, it is only there or not.

use super::{Log, State};
use crate::batch::{BatchHeader, BatchScan, ScanEnd};
use crate::checkpoint::{self, SegmentCleaned};
use crate::compact::{self, Record};
use crate::error::{Result, StorageError};
use crate::io::{align_down, align_up, segment_file, sync_dir};
use crate::limits::{
    BATCH_HEADER_BYTES, CLEANER_INFLATED_BATCH_BYTES_MAX, CLEANER_IO_CHUNK_BYTES,
    CLEANER_KEY_ENTRY_OVERHEAD_BYTES, CLEANER_KEY_MAP_BYTES_DEFAULT_MAX,
};
use crate::segment::Segment;
use glommio::io::{DmaFile, OpenOptions, ReadResult};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Bounds of one cleaning pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanOptions {
    /// The key map's bound: key bytes plus
    /// [`CLEANER_KEY_ENTRY_OVERHEAD_BYTES`] per distinct key. A pass stops
    /// its map where it fills and cleans up to there.
    pub key_map_bytes_max: usize,
}

impl Default for CleanOptions {
    fn default() -> Self {
        CleanOptions {
            key_map_bytes_max: CLEANER_KEY_MAP_BYTES_DEFAULT_MAX,
        }
    }
}

/// What one call of [`Log::clean`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CleanReport {
    /// False when no pass was due: not `compact`, too little dirty, nothing
    /// cleanable yet, a pass already running, or the log not writable.
    pub ran: bool,
    /// Dirty bytes / bytes of all sealed segments, when the pass was decided.
    pub dirty_ratio: f64,
    /// The first dirty offset before and after the pass.
    pub clean_point_before: i64,
    pub clean_point: i64,
    /// Distinct keys in the pass's map.
    pub keys: usize,
    /// The map filled before the end of the cleanable segments: more is
    /// dirty there, call again.
    pub map_full: bool,
    /// Segments read / rewritten and swapped in.
    pub segments_read: usize,
    pub segments_rewritten: usize,
    pub records_removed: u64,
    /// Bytes of the segments read, and of them after the pass.
    pub bytes_read: u64,
    pub bytes_after: u64,
}

/// A sealed segment as the pass found it.
struct Sealed {
    base: i64,
    next_offset: i64,
    size: u64,
    max_timestamp: i64,
    file: Rc<DmaFile>,
}

/// What the pass decided from the log's state.
struct Plan {
    clean_point: i64,
    /// The map reads up to here: the high watermark and the durable end (a
    /// record that may still be truncated or lost must not make an older
    /// one go).
    map_limit: i64,
    /// The leading sealed segments that may be rewritten.
    cleanable: Vec<Sealed>,
    dirty_ratio: f64,
    min_ratio: f64,
    max_lag_ms: i64,
    delete_retention_ms: i64,
    interval: u64,
    cleaned_at_ms: BTreeMap<i64, i64>,
}

/// Key -> offset of its last record in [start, end) of the log.
struct KeyMap {
    offsets: HashMap<Box<[u8]>, i64>,
    bytes: usize,
    end: i64,
    full: bool,
}

/// A segment's rewrite, ready to swap in.
struct Rewritten {
    segment: Segment,
    removed: u64,
}

/// Resets the log's `cleaning` flag however the pass ends.
struct PassGuard(Log);

impl Drop for PassGuard {
    fn drop(&mut self) {
        if let Ok(mut state) = self.0.inner.state.try_borrow_mut() {
            state.cleaning = false;
        }
    }
}

impl Log {
    /// One cleaning pass if `cleanup.policy` has `compact` and one is due
    /// at `now_ms`; see the module docs. Never touches the active segment.
    pub async fn clean(&self, now_ms: i64) -> Result<CleanReport> {
        self.clean_with(now_ms, CleanOptions::default()).await
    }

    /// [`Log::clean`] with explicit bounds. The pass runs in a task of its
    /// own: a caller that goes away at an await does not leave a
    /// `.cleaned` file or a half-done pass behind (it finishes unawaited).
    pub async fn clean_with(&self, now_ms: i64, options: CleanOptions) -> Result<CleanReport> {
        let log = self.clone();
        glommio::spawn_local(async move { log.clean_pass(now_ms, options).await })
            .detach()
            .await
            .unwrap_or_else(|| Err(self.closed_error()))
    }

    async fn clean_pass(&self, now_ms: i64, options: CleanOptions) -> Result<CleanReport> {
        let Some(plan) = self.plan_clean(now_ms) else {
            return Ok(CleanReport::default());
        };
        let _guard = PassGuard(self.clone());
        let mut report = CleanReport {
            dirty_ratio: plan.dirty_ratio,
            clean_point_before: plan.clean_point,
            clean_point: plan.clean_point,
            ..CleanReport::default()
        };
        if plan.dirty_ratio < plan.min_ratio && !self.past_max_lag(&plan, now_ms).await? {
            return Ok(report);
        }
        report.ran = true;
        let map = self
            .build_key_map(plan.clean_point, plan.map_limit, options.key_map_bytes_max)
            .await?;
        let cleanable_end = plan.cleanable.last().map_or(0, |s| s.next_offset);
        let new_clean_point = map.end.min(cleanable_end).max(plan.clean_point);
        // Before any swap: recovery allows offset gaps only in a log that
        // has a cleaner checkpoint (log/open.rs).
        self.write_cleaner_checkpoint()?;
        report.keys = map.offsets.len();
        // A map that filled past the cleanable segments covered them all.
        report.map_full = map.full && map.end < cleanable_end;
        for sealed in plan.cleanable.iter().filter(|s| s.base < new_clean_point) {
            report.segments_read += 1;
            report.bytes_read += sealed.size;
            let cleaned_at = plan.cleaned_at_ms.get(&sealed.base).copied();
            let drop_tombstones =
                cleaned_at.is_some_and(|at| now_ms.saturating_sub(at) >= plan.delete_retention_ms);
            let rules = Rules {
                map: &map,
                drop_tombstones_below: if drop_tombstones {
                    plan.clean_point
                } else {
                    i64::MIN
                },
                interval: plan.interval,
            };
            match self.rewrite_segment(sealed, &rules).await? {
                None => report.bytes_after += sealed.size,
                Some(rewritten) => {
                    let size = rewritten.segment.size;
                    let removed = rewritten.removed;
                    let (base, file, old_size) = (sealed.base, sealed.file.clone(), sealed.size);
                    let swap = move |log: Log| async move {
                        log.swap_in(base, file, old_size, rewritten.segment).await
                    };
                    if self.exclusively(None, swap).await.1? {
                        report.segments_rewritten += 1;
                        report.records_removed += removed;
                        report.bytes_after += size;
                    } else {
                        // The segment went (retention, truncation) meanwhile:
                        // stop, the next pass starts from what is there.
                        return Ok(report);
                    }
                }
            }
        }
        report.clean_point = self.record_clean_point(new_clean_point, now_ms)?;
        tracing::debug!(dir = %self.inner.dir.display(), ?report, "cleaning pass");
        Ok(report)
    }

    /// The pass's plan if cleaning may be due; marks the pass as running.
    fn plan_clean(&self, now_ms: i64) -> Option<Plan> {
        let mut state = self.inner.state.borrow_mut();
        refresh_cleaner(&mut state);
        let config = &state.config;
        if !config.cleanup_policy.compact || state.cleaning || self.check_writable(&state).is_err()
        {
            return None;
        }
        let end = state.log_end_offset();
        let active_base = state.active().base_offset;
        let clean_point = state
            .cleaner
            .clean_point
            .min(end)
            .max(state.log_start_offset);
        let map_limit = state.high_watermark.min(state.durable_offset).min(end);
        let lag_horizon_ms = now_ms.saturating_sub(config.min_compaction_lag_ms);
        let sealed = state
            .segments
            .values()
            .filter(|s| s.base_offset != active_base);
        let (mut total, mut dirty) = (0u64, 0u64);
        for segment in sealed.clone() {
            total += segment.size;
            if segment.next_offset > clean_point {
                dirty += segment.size;
            }
        }
        let cleanable: Vec<Sealed> = sealed
            .take_while(|s| s.next_offset <= map_limit && s.max_timestamp <= lag_horizon_ms)
            .map(|s| Sealed {
                base: s.base_offset,
                next_offset: s.next_offset,
                size: s.size,
                max_timestamp: s.max_timestamp,
                file: s.file.clone(),
            })
            .collect();
        let cleanable_end = cleanable.last().map_or(clean_point, |s| s.next_offset);
        if total == 0 || cleanable_end <= clean_point {
            return None;
        }
        let plan = Plan {
            clean_point,
            map_limit,
            cleanable,
            dirty_ratio: dirty as f64 / total as f64,
            min_ratio: config.min_cleanable_dirty_ratio,
            max_lag_ms: config.max_compaction_lag_ms,
            delete_retention_ms: config.delete_retention_ms,
            interval: config.index_interval_bytes,
            cleaned_at_ms: (state.cleaner.cleaned.iter())
                .map(|(base, entry)| (*base, entry.first_cleaned_ms))
                .collect(),
        };
        state.cleaning = true;
        Some(plan)
    }

    /// Whether the first dirty batch is older than `max.compaction.lag.ms`.
    async fn past_max_lag(&self, plan: &Plan, now_ms: i64) -> Result<bool> {
        if plan.max_lag_ms == i64::MAX {
            return Ok(false);
        }
        let read = self.read_until(plan.clean_point, 1, plan.map_limit).await?;
        let Some(batch) = read.batches().next() else {
            return Ok(false);
        };
        let header = BatchHeader::parse(batch)?;
        let first_ms = if header.is_log_append_time() {
            header.max_timestamp.get()
        } else {
            header.base_timestamp.get()
        };
        Ok(now_ms.saturating_sub(first_ms) > plan.max_lag_ms)
    }

    /// Reads [from, limit) of the log into a key map, until the map holds
    /// `bytes_max` (at least one key).
    async fn build_key_map(&self, from: i64, limit: i64, bytes_max: usize) -> Result<KeyMap> {
        let mut map = KeyMap {
            offsets: HashMap::new(),
            bytes: 0,
            end: limit,
            full: false,
        };
        let mut offset = from;
        while offset < limit {
            let read = self
                .read_until(offset, CLEANER_IO_CHUNK_BYTES, limit)
                .await?;
            if read.is_empty() {
                break;
            }
            for batch in read.batches() {
                let header = BatchHeader::parse(batch)?;
                let next = header.last_offset() + 1;
                if !header.is_control() {
                    let (payload, _) =
                        compact::records_payload(batch, CLEANER_INFLATED_BATCH_BYTES_MAX)?;
                    let mut stop = None;
                    compact::for_each_record(header, &payload, |record| {
                        if stop.is_none() && (from..limit).contains(&record.offset) {
                            stop = map.add(record, bytes_max);
                        }
                    })?;
                    if let Some(at) = stop {
                        map.end = at;
                        map.full = true;
                        return Ok(map);
                    }
                }
                offset = offset.max(next);
            }
        }
        Ok(map)
    }

    /// Writes the rewrite of `sealed` to `<base>.cleaned`; None (and no file
    /// left) if it would remove nothing.
    async fn rewrite_segment(
        &self,
        sealed: &Sealed,
        rules: &Rules<'_>,
    ) -> Result<Option<Rewritten>> {
        if !self.removes_any(sealed, rules).await? {
            return Ok(None);
        }
        let path = segment_file(&self.inner.dir, sealed.base, "cleaned");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .dma_open(&path)
            .await
            .map_err(|e| StorageError::io(format!("create {}", path.display()), e))?;
        let file = Rc::new(file);
        let mut segment = Segment::rewritten(&self.inner.dir, sealed.base, file.clone());
        let mut writer = ChunkWriter::new(file.clone(), path.clone());
        let result = self
            .filter_segment(sealed, rules, &mut segment, &mut writer)
            .await;
        let result = match result {
            Ok(removed) => writer.finish().await.map(|()| removed),
            Err(error) => Err(error),
        };
        let removed = match result {
            Ok(removed) => removed,
            Err(error) => {
                remove_if_present(&path)?;
                return Err(error);
            }
        };
        if removed == 0 || segment.next_offset != sealed.next_offset {
            if removed > 0 {
                tracing::warn!(dir = %self.inner.dir.display(), segment = sealed.base,
                    "cleaned segment would end at another offset; not swapped");
            }
            remove_if_present(&path)?;
            return Ok(None);
        }
        segment.max_timestamp = segment.max_timestamp.max(sealed.max_timestamp);
        Ok(Some(Rewritten { segment, removed }))
    }

    /// Streams `sealed`'s batches through `rules` into `writer`, accounting
    /// each written batch in `segment`; returns how many records went.
    async fn filter_segment(
        &self,
        sealed: &Sealed,
        rules: &Rules<'_>,
        segment: &mut Segment,
        writer: &mut ChunkWriter,
    ) -> Result<u64> {
        let mut removed = 0u64;
        let mut batches = SegmentBatches::new(sealed, &self.inner.dir);
        while let Some(batch) = batches.next().await? {
            let (out, gone) = rules.apply(&batch, batches.at_end())?;
            removed += gone;
            if let Some(out) = out {
                let header = BatchHeader::parse(&out)?;
                let (last, max_ts) = (header.last_offset(), header.max_timestamp.get());
                writer.push(&out).await?;
                segment.account_written(out.len() as u64, last, max_ts, rules.interval);
            }
        }
        Ok(removed)
    }

    /// Whether `rules` would remove any record of `sealed`: a read that
    /// stops at the first such record, so a segment with nothing to remove
    /// costs a read and no write.
    async fn removes_any(&self, sealed: &Sealed, rules: &Rules<'_>) -> Result<bool> {
        let mut batches = SegmentBatches::new(sealed, &self.inner.dir);
        while let Some(batch) = batches.next().await? {
            if rules.removes_from(&batch)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Replaces segment `base` (if it is still the one the pass read, sealed)
    /// with `segment`, on disk and in memory; false if it was not. The
    /// caller holds the turn.
    async fn swap_in(
        &self,
        base: i64,
        old_file: Rc<DmaFile>,
        old_size: u64,
        mut segment: Segment,
    ) -> Result<bool> {
        let dir = self.inner.dir.clone();
        let cleaned = segment_file(&dir, base, "cleaned");
        let swap = segment_file(&dir, base, "swap");
        // Checked before `.swap` exists too: a `.swap` beside a `.log` that
        // was truncated meanwhile would bring the cut records back on open.
        // Truncation needs the turn (held here); retention does not, and may
        // delete the `.log` across the await below: recovery then deletes
        // the lone `.swap` (log/open.rs), and the check after the await
        // sees the segment gone.
        if !self.still_there(base, &old_file, old_size) {
            remove_if_present(&cleaned)?;
            return Ok(false);
        }
        std::fs::rename(&cleaned, &swap)
            .map_err(|e| StorageError::io(format!("rename {}", cleaned.display()), e))?;
        sync_dir(&dir).await?;
        // From here a crash finishes the swap on open (log/open.rs).
        if !self.still_there(base, &old_file, old_size) {
            remove_if_present(&swap)?;
            return Ok(false);
        }
        // No await from the check to the in-memory swap.
        let (seal, new_file) = {
            let mut state = self.inner.state.borrow_mut();
            for suffix in ["index", "timeindex"] {
                remove_if_present(&segment_file(&dir, base, suffix))?;
            }
            let log_path = segment_file(&dir, base, "log");
            std::fs::rename(&swap, &log_path)
                .map_err(|e| StorageError::io(format!("rename {}", swap.display()), e))?;
            let next = segment.next_offset;
            let seal = segment.prepare_seal();
            let new_file = segment.file.clone();
            state.segments.insert(base, segment);
            state.cache.drop_before(next);
            (seal, new_file)
        };
        // The directory may or may not hold the rename: an fsync failure
        // here poisons the log, as every other one does.
        let sealed = async {
            seal.run().await?;
            sync_dir(&dir).await
        }
        .await;
        self.poison_on_error(sealed)?;
        let size = self
            .inner
            .state
            .borrow()
            .segments
            .get(&base)
            .map(|s| s.size);
        if !self.still_there(base, &new_file, size.unwrap_or(0)) {
            // Retention deleted it while its indexes were written: they
            // would outlive their segment.
            for suffix in ["index", "timeindex"] {
                remove_if_present(&segment_file(&dir, base, suffix))?;
            }
        }
        Ok(true)
    }

    /// Whether segment `base` is still the sealed one read from `file`.
    fn still_there(&self, base: i64, file: &Rc<DmaFile>, size: u64) -> bool {
        let state = self.inner.state.borrow();
        let active_base = state.active().base_offset;
        self.check_writable(&state).is_ok()
            && base != active_base
            && state
                .segments
                .get(&base)
                .is_some_and(|s| Rc::ptr_eq(&s.file, file) && s.size == size)
    }

    fn write_cleaner_checkpoint(&self) -> Result<()> {
        let checkpoint = self.inner.state.borrow().cleaner.clone();
        checkpoint::write_cleaner(&self.inner.dir, &checkpoint)
    }

    /// Moves the clean point to `offset` (within the log), stamps segments
    /// now wholly clean for the first time with `now_ms`, and writes the
    /// cleaner's checkpoint. Returns the clean point.
    fn record_clean_point(&self, offset: i64, now_ms: i64) -> Result<i64> {
        let checkpoint = {
            let mut state = self.inner.state.borrow_mut();
            let truncated = refresh_cleaner(&mut state);
            // A truncation during the pass: what it read past the cut is gone.
            let clean_point = truncated.map_or(offset, |at| offset.min(at));
            let clean_point = clean_point.min(state.log_end_offset());
            let active_base = state.active().base_offset;
            let ends: Vec<(i64, i64)> = (state.segments.values())
                .filter(|s| s.base_offset != active_base && s.next_offset <= clean_point)
                .map(|s| (s.base_offset, s.next_offset))
                .collect();
            let cleaner = &mut state.cleaner;
            cleaner.clean_point = clean_point;
            for (base, end_offset) in ends {
                let entry = SegmentCleaned {
                    first_cleaned_ms: now_ms,
                    end_offset,
                };
                cleaner.cleaned.entry(base).or_insert(entry);
            }
            cleaner.clone()
        };
        checkpoint::write_cleaner(&self.inner.dir, &checkpoint)?;
        Ok(checkpoint.clean_point)
    }
}

/// Brings the cleaner's record in line with the log: after a truncation
/// (returned, if any) the clean point goes no further than the cut, and a
/// segment's first-cleaned time holds only while the segment still ends
/// where it did then and is sealed (a cut segment becomes the active one and
/// may grow again with records nobody cleaned). The clean point stays within
/// the log.
pub(super) fn refresh_cleaner(state: &mut State) -> Option<i64> {
    let truncated = state.cache.take_truncation();
    let end = state.log_end_offset();
    let start = state.log_start_offset;
    let active_base = state.active().base_offset;
    let ends: BTreeMap<i64, i64> = (state.segments.iter())
        .filter(|(base, _)| **base != active_base)
        .map(|(base, s)| (*base, s.next_offset))
        .collect();
    let cleaner = &mut state.cleaner;
    if let Some(at) = truncated {
        cleaner.clean_point = cleaner.clean_point.min(at);
    }
    cleaner.clean_point = cleaner.clean_point.min(end).max(start);
    cleaner.cleaned.retain(|base, entry| {
        ends.get(base) == Some(&entry.end_offset)
            && truncated.is_none_or(|at| entry.end_offset <= at)
    });
    truncated
}

impl KeyMap {
    /// Notes `record`; returns its offset instead if the map is full.
    fn add(&mut self, record: Record<'_>, bytes_max: usize) -> Option<i64> {
        let key = record.key?;
        if let Some(offset) = self.offsets.get_mut(key) {
            *offset = record.offset;
            return None;
        }
        let cost = key.len() + CLEANER_KEY_ENTRY_OVERHEAD_BYTES;
        if !self.offsets.is_empty() && self.bytes + cost > bytes_max {
            return Some(record.offset);
        }
        self.bytes += cost;
        self.offsets.insert(Box::from(key), record.offset);
        None
    }
}

/// What a pass keeps of a segment.
struct Rules<'a> {
    map: &'a KeyMap,
    /// Tombstones below this offset go (their segment was wholly cleaned
    /// `delete.retention.ms` ago); i64::MIN keeps them all.
    drop_tombstones_below: i64,
    interval: u64,
}

impl Rules<'_> {
    /// Whether `record` stays: it has a key, no later record has that key,
    /// and it is not a tombstone past its retention.
    fn keeps(&self, record: &Record<'_>) -> bool {
        let Some(key) = record.key else {
            return false;
        };
        let superseded = self
            .map
            .offsets
            .get(key)
            .is_some_and(|last| *last > record.offset);
        let expired = record.value_is_null && record.offset < self.drop_tombstones_below;
        !superseded && !expired
    }

    /// Whether `batch` loses any record under these rules.
    fn removes_from(&self, batch: &[u8]) -> Result<bool> {
        let header = BatchHeader::parse(batch)?;
        if header.is_control() {
            return Ok(false);
        }
        let (payload, _) = compact::records_payload(batch, CLEANER_INFLATED_BATCH_BYTES_MAX)?;
        let mut any = false;
        compact::for_each_record(header, &payload, |record| any |= !self.keeps(&record))?;
        Ok(any)
    }

    /// The batch to write for `batch` (None: drop it) and how many records
    /// went. Control batches stay as they are.
    fn apply(&self, batch: &[u8], is_last: bool) -> Result<(Option<Vec<u8>>, u64)> {
        let header = BatchHeader::parse(batch)?;
        if header.is_control() {
            return Ok((Some(batch.to_vec()), 0));
        }
        let (payload, xerial) = compact::records_payload(batch, CLEANER_INFLATED_BATCH_BYTES_MAX)?;
        let mut kept: Vec<&[u8]> = Vec::new();
        let mut gone = 0u64;
        compact::for_each_record(header, &payload, |record| {
            if self.keeps(&record) {
                kept.push(record.bytes);
            } else {
                gone += 1;
            }
        })?;
        if gone == 0 {
            return Ok((Some(batch.to_vec()), 0));
        }
        if kept.is_empty() && !is_last {
            return Ok((None, gone));
        }
        Ok((Some(compact::rebuild(batch, &kept, xerial)?), gone))
    }
}

/// The batches of a sealed segment, read in chunks of
/// `CLEANER_IO_CHUNK_BYTES` (or one whole batch if it is bigger), each CRC
/// checked.
struct SegmentBatches<'a> {
    sealed: &'a Sealed,
    path: PathBuf,
    /// File position of `chunk`'s first byte.
    position: u64,
    want: usize,
    chunk: Option<ReadResult>,
    /// Bytes of `chunk` already returned.
    at: usize,
}

impl<'a> SegmentBatches<'a> {
    fn new(sealed: &'a Sealed, dir: &Path) -> Self {
        SegmentBatches {
            sealed,
            path: segment_file(dir, sealed.base, "log"),
            position: 0,
            want: CLEANER_IO_CHUNK_BYTES,
            chunk: None,
            at: 0,
        }
    }

    /// Whether the last batch returned ends the segment.
    fn at_end(&self) -> bool {
        self.position + self.at as u64 == self.sealed.size
    }

    async fn next(&mut self) -> Result<Option<ReadResult>> {
        let context = || format!("clean {}", self.path.display());
        loop {
            if let Some(chunk) = &self.chunk {
                let rest = &chunk[self.at..];
                // With the CRC: a rewritten batch gets a new one, which
                // would make a corrupted batch look valid from then on.
                match BatchScan::new(rest).next_batch() {
                    Ok((_, batch)) => {
                        let len = batch.len();
                        let out = ReadResult::slice(chunk, self.at, len)
                            .ok_or_else(|| StorageError::io(context(), torn()))?;
                        self.at += len;
                        return Ok(Some(out));
                    }
                    Err(ScanEnd::Clean) => {}
                    Err(ScanEnd::Incomplete { .. }) => {
                        let need = BatchHeader::parse(rest)
                            .ok()
                            .and_then(BatchHeader::total_bytes)
                            .unwrap_or(BATCH_HEADER_BYTES);
                        let start = self.position + self.at as u64;
                        if start + need as u64 > self.sealed.size {
                            return Err(StorageError::io(context(), torn()));
                        }
                        self.want = self.want.max(need);
                    }
                    Err(ScanEnd::Invalid { error, .. }) => return Err(error.into()),
                }
                self.position += self.at as u64;
                self.chunk = None;
                self.at = 0;
            }
            if self.position >= self.sealed.size {
                return Ok(None);
            }
            let len = (self.sealed.size - self.position).min(self.want as u64) as usize;
            let chunk = self
                .sealed
                .file
                .read_at(self.position, len)
                .await
                .map_err(|e| StorageError::io(context(), e))?;
            if chunk.len() < len {
                return Err(StorageError::io(context(), torn()));
            }
            self.chunk = Some(chunk);
        }
    }
}

/// Sequential aligned direct writes of a new file, in bounded chunks.
struct ChunkWriter {
    file: Rc<DmaFile>,
    path: PathBuf,
    written: u64,
    buffer: Vec<u8>,
}

impl ChunkWriter {
    fn new(file: Rc<DmaFile>, path: PathBuf) -> Self {
        ChunkWriter {
            file,
            path,
            written: 0,
            buffer: Vec::new(),
        }
    }

    async fn push(&mut self, bytes: &[u8]) -> Result<()> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= CLEANER_IO_CHUNK_BYTES {
            let whole = align_down(self.buffer.len() as u64) as usize;
            self.write(whole).await?;
        }
        Ok(())
    }

    /// Writes the first `len` buffered bytes (padded with zeros to a page).
    async fn write(&mut self, len: usize) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let padded = align_up(len as u64) as usize;
        let mut buffer = self.file.alloc_dma_buffer(padded);
        let target = buffer.as_bytes_mut();
        target[..len].copy_from_slice(&self.buffer[..len]);
        target[len..].fill(0);
        let wrote = self
            .file
            .write_at(buffer, self.written)
            .await
            .map_err(|e| StorageError::io(format!("write {}", self.path.display()), e))?;
        if wrote < padded {
            return Err(StorageError::io(
                format!("write {}", self.path.display()),
                std::io::Error::from(std::io::ErrorKind::WriteZero),
            ));
        }
        self.written += len as u64;
        self.buffer.drain(..len);
        Ok(())
    }

    /// Writes the rest, cuts the file to its true length, fdatasyncs.
    async fn finish(&mut self) -> Result<()> {
        let whole = align_down(self.buffer.len() as u64) as usize;
        self.write(whole).await?;
        let rest = self.buffer.len();
        self.write(rest).await?;
        let context = || format!("finish {}", self.path.display());
        self.file
            .truncate(self.written)
            .await
            .map_err(|e| StorageError::io(context(), e))?;
        self.file
            .fdatasync()
            .await
            .map_err(|e| StorageError::io(context(), e))
    }
}

fn torn() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        "torn batch in a sealed segment",
    )
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io(format!("delete {}", path.display()), e)),
    }
}
