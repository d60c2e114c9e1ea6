//! Opening a log (recovery of its segments and checkpoint), closing it, and
//! deleting it.

use super::scheduler::FlushScheduler;
use super::{Inner, Log, LogOptions, LogStats, State};
use crate::cache::{CacheOwner, TailCache};
use crate::checkpoint;
use crate::commit::Event;
use crate::epochs;
use crate::error::{Result, StorageError};
use crate::io::{settle_iopoll_probe, sync_dir};
use crate::segment::{Segment, SegmentRecovery, Trust};
use glommio::sync::Semaphore;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

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
        let epochs = epochs::read(dir)?;
        let recovery_point = checkpoint.map_or(0, |c| c.recovery_point);
        let bases = list_segments(dir)?;
        // The cleaner writes its checkpoint before its first swap: without
        // one, no segment has offset gaps.
        let offset_gaps = dir.join(checkpoint::CLEANER_CHECKPOINT_FILE).exists();
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
            let (segment, found) = Segment::open(dir, *base, trust, interval, offset_gaps).await?;
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
                    let (segment, _) =
                        Segment::open(dir, *later, Trust::None, interval, offset_gaps).await?;
                    segment.remove_files()?;
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
            low_on_space: false,
            flusher: FlushScheduler::default(),
            closed: false,
            stats: LogStats::default(),
            unwritten_counted: 0,
            cleaner: checkpoint::read_cleaner(dir).unwrap_or_default(),
            cleaning: false,
            epochs,
            leader_epoch_stamp: epochs::UNDEFINED_EPOCH,
        };
        let end = state.log_end_offset();
        state.log_start_offset = state.log_start_offset.min(end);
        state.durable_offset = end;
        state.recovery_point = recovery_point.min(end);
        // The file is written before the batches it describes are durable
        // (and not rewritten after every retention pass): entries past what
        // recovery kept, or before the log start, go now, as in Kafka.
        let start = state.log_start_offset;
        let clamped_end = state.epochs.truncate_from_end(end);
        let clamped_start = state.epochs.truncate_from_start(start);
        if clamped_end || clamped_start {
            tracing::info!(dir = %dir.display(), epochs = ?state.epochs.entries(),
                "leader epoch cache clamped to the recovered log");
            epochs::write(dir, &state.epochs)?;
        }
        super::clean::refresh_cleaner(&mut state);
        let memory = options.memory;
        let log = Log {
            inner: Rc::new(Inner {
                dir: dir.to_path_buf(),
                memory,
                state: RefCell::new(state),
                append_lock: Rc::new(Semaphore::new(1)),
                flush_lock: Rc::new(Semaphore::new(1)),
                flushed: Rc::new(Event::default()),
                flusher_wake: Event::default(),
                faults: options.faults,
                log_dir: options.log_dir,
            }),
        };
        let owner: Rc<dyn CacheOwner> = log.inner.clone();
        log.inner.memory.register(Rc::downgrade(&owner));
        Ok((log, report))
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
        self.wake_flusher();
        self.write_checkpoint()
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
        self.wake_flusher();
        std::fs::remove_dir_all(&self.inner.dir)
            .map_err(|e| StorageError::io(format!("delete {}", self.inner.dir.display()), e))
    }
}

/// Base offsets of the `.log` files in `dir`, ascending. Leftover temp
/// files are removed, and a cleaner's swap cut short is finished first.
fn list_segments(dir: &Path) -> Result<Vec<i64>> {
    finish_cleaner_swaps(dir)?;
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

/// The cleaner's files left by a crash (see log/clean.rs and
/// docs/storage-format.md): a `.cleaned` file may be incomplete and is
/// deleted; a `.swap` file is complete and fdatasynced (it is renamed to
/// `.swap` only then), so it replaces its segment's `.log` (whose indexes go:
/// they may describe the old bytes and are rebuilt by the scan); without a
/// `.log` (retention deleted the segment meanwhile) it is deleted.
fn finish_cleaner_swaps(dir: &Path) -> Result<()> {
    let context = |what: &str, path: &Path| format!("{what} {}", path.display());
    let entries = std::fs::read_dir(dir)
        .map_err(|e| StorageError::io(format!("list {}", dir.display()), e))?;
    let mut changed = false;
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io(format!("list {}", dir.display()), e))?;
        let path = entry.path();
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".cleaned") {
            std::fs::remove_file(&path)
                .map_err(|e| StorageError::io(context("delete", &path), e))?;
            changed = true;
            continue;
        }
        let Some(stem) = name.strip_suffix(".swap") else {
            continue;
        };
        if stem.len() != 20 || stem.parse::<i64>().is_err() {
            continue;
        }
        for suffix in ["index", "timeindex"] {
            let index = dir.join(format!("{stem}.{suffix}"));
            match std::fs::remove_file(&index) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io(context("delete", &index), e)),
            }
        }
        let log = dir.join(format!("{stem}.log"));
        if !log.exists() {
            // Retention deleted the segment while it was being cleaned.
            std::fs::remove_file(&path)
                .map_err(|e| StorageError::io(context("delete", &path), e))?;
            changed = true;
            continue;
        }
        std::fs::rename(&path, &log).map_err(|e| StorageError::io(context("rename", &path), e))?;
        tracing::warn!(dir = %dir.display(), segment = stem, "finished a cleaner swap cut short");
        changed = true;
    }
    if changed {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| StorageError::io(context("fsync directory", dir), e))?;
    }
    Ok(())
}
