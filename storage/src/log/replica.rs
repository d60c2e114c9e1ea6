//! Replication's view of the log: leader epochs (the cache in epochs.rs and
//! the stamp on leader appends) and the follower's append of batches its
//! leader already stored.

use super::scheduler::FlushReason;
use super::{AppendInfo, Log};
use crate::batch::{BatchHeader, BatchScan, ScanEnd};
use crate::epochs::{EpochEntry, UNDEFINED_EPOCH};
use crate::error::{Result, StorageError};
use bytes::Bytes;

/// One whole batch of a follower's fetch that passed `check_stored`, by
/// position in the fetched bytes.
struct FetchedBatch {
    position: usize,
    len: usize,
    base_offset: i64,
    last_offset: i64,
    max_timestamp: i64,
    leader_epoch: i32,
}

impl Log {
    /// Makes this log the leader's for `epoch`: every batch appended
    /// through [`Log::append`] / [`Log::append_unsynced`] from now on
    /// carries `epoch` in its partitionLeaderEpoch, and if `epoch` is newer
    /// than the cache's latest, the cache records that it begins at the log
    /// end (`leader-epoch-checkpoint` written before this returns). Takes
    /// the append order, so it lands between appends. The latest epoch
    /// again (a leader re-elected, or after a restart) only sets the stamp.
    /// Refuses a negative epoch or one older than the latest
    /// (`StorageError::StaleLeaderEpoch`).
    pub async fn begin_leader_epoch(&self, epoch: i32) -> Result<()> {
        let _order = self.order().await?;
        let end = {
            let state = self.inner.state.borrow();
            self.check_writable(&state)?;
            let latest = state.epochs.latest().map_or(UNDEFINED_EPOCH, |e| e.epoch);
            if epoch < 0 || epoch < latest {
                return Err(StorageError::StaleLeaderEpoch { epoch, latest });
            }
            state.log_end_offset()
        };
        self.change_epochs(|epochs| epochs.assign(epoch, end))?;
        self.inner.state.borrow_mut().leader_epoch_stamp = epoch;
        tracing::debug!(dir = %self.inner.dir.display(), epoch, start_offset = end,
            "leader epoch begun");
        Ok(())
    }

    /// The latest epoch in the cache, -1 if none.
    pub fn leader_epoch(&self) -> i32 {
        let state = self.inner.state.borrow();
        state.epochs.latest().map_or(UNDEFINED_EPOCH, |e| e.epoch)
    }

    /// OffsetsForLeaderEpoch: (epoch, end offset) as Kafka's `endOffsetFor`
    /// answers against the current log end; see
    /// [`crate::LeaderEpochs::end_offset_for`].
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        let state = self.inner.state.borrow();
        state.epochs.end_offset_for(epoch, state.log_end_offset())
    }

    /// The cache's entries, oldest first.
    pub fn leader_epochs(&self) -> Vec<EpochEntry> {
        self.inner.state.borrow().epochs.entries().to_vec()
    }

    /// A follower's append: `batches` is what a Fetch response carried for
    /// this partition, consecutive batches as the leader stored them
    /// (offsets assigned), maybe cut short by the fetch size: a trailing
    /// partial batch is ignored, as Kafka's followers ignore it. Each
    /// whole batch is checked for its framing and CRC only (the leader
    /// validated it; no timestamp, policy or `max.message.bytes` check) and
    /// stored byte for byte. The first batch must start at or after the log
    /// end and each next one after the one before, else
    /// `StorageError::NonContiguousAppend`; a forward gap (the batches a
    /// compacted leader's cleaner removed) is kept, and marks the log as
    /// one with offset gaps (`cleaner-offset-checkpoint`) for recovery. Every batch is checked before
    /// any is appended: a bad one refuses the whole call and appends
    /// nothing. A batch stamped with a leader epoch newer than the cache's
    /// latest begins that epoch at its base offset in the cache (file
    /// written) before it is appended.
    ///
    /// Readable at once, durable later exactly as after
    /// [`Log::append_unsynced`] (then [`Log::wait_durable`] for the
    /// fdatasync). Returns None when `batches` holds no whole batch, else
    /// the offsets of the first and last batch. Each batch is copied out of
    /// `batches`: the tail cache counts what it holds, and a slice would
    /// keep the whole fetch response alive. An I/O error while making room
    /// (a roll) poisons the log and may leave a prefix of the batches
    /// appended, as after any append that fails there.
    pub async fn append_replicated(&self, batches: Bytes) -> Result<Option<AppendInfo>> {
        let fetched = whole_batches(&batches)?;
        let (Some(first), Some(last)) = (fetched.first(), fetched.last()) else {
            return Ok(None);
        };
        let (base_offset, last_offset) = (first.base_offset, last.last_offset);
        let mut order = self.order().await?;
        let gapped = {
            let state = self.inner.state.borrow();
            self.check_writable(&state)?;
            let expected = state.log_end_offset();
            if base_offset < expected {
                return Err(StorageError::NonContiguousAppend {
                    expected,
                    found: base_offset,
                });
            }
            base_offset > expected
                || fetched
                    .windows(2)
                    .any(|w| w[1].base_offset > w[0].last_offset + 1)
        };
        if gapped {
            // A compacted leader's log has offset gaps (batches the cleaner
            // emptied). Recovery accepts gaps only in a log the cleaner has
            // touched, so say so before any gapped batch can be durable.
            self.mark_offset_gaps()?;
        }
        for batch in &fetched {
            order = self.make_room(order, batch.len as u64).await?;
            let epoch = batch.leader_epoch;
            if epoch >= 0 && epoch > self.leader_epoch() {
                self.change_epochs(|epochs| epochs.assign(epoch, batch.base_offset))?;
            }
            let mut state = self.inner.state.borrow_mut();
            self.check_writable(&state)?;
            let end = batch.position + batch.len;
            let bytes = Bytes::copy_from_slice(&batches[batch.position..end]);
            let (base, last, max_timestamp) =
                (batch.base_offset, batch.last_offset, batch.max_timestamp);
            self.push_batch(&mut state, bytes, base, last, max_timestamp);
        }
        drop(order);
        self.request_flush(FlushReason::WriteBehind);
        self.request_flush(FlushReason::Policy);
        Ok(Some(AppendInfo {
            base_offset,
            last_offset,
            log_append_time_ms: None,
            log_start_offset: self.log_start_offset(),
        }))
    }
}

impl Log {
    /// Makes sure recovery accepts offset gaps in this log: the cleaner's
    /// checkpoint file exists (an empty one if the cleaner never ran here).
    fn mark_offset_gaps(&self) -> Result<()> {
        let dir = &self.inner.dir;
        if dir
            .join(crate::checkpoint::CLEANER_CHECKPOINT_FILE)
            .exists()
        {
            return Ok(());
        }
        let empty = crate::checkpoint::CleanerCheckpoint::default();
        self.poison_on_error(crate::checkpoint::write_cleaner(dir, &empty))
    }
}

/// The whole batches at the start of `bytes`, each checked with
/// `check_stored` and following the one before; what follows the last
/// whole batch (a partial one) is left out.
fn whole_batches(bytes: &[u8]) -> Result<Vec<FetchedBatch>> {
    let mut scan = BatchScan::new(bytes);
    let mut fetched: Vec<FetchedBatch> = Vec::new();
    loop {
        let (position, batch) = match scan.next_batch() {
            Ok(found) => found,
            Err(ScanEnd::Clean | ScanEnd::Incomplete { .. }) => return Ok(fetched),
            Err(ScanEnd::Invalid { error, .. }) => return Err(error.into()),
        };
        // BatchScan ran check_stored on it; only the header view is left.
        let header = BatchHeader::parse(batch)?;
        let base_offset = header.base_offset();
        if let Some(previous) = fetched.last() {
            // Forward gaps are a compacted leader's; going back is not.
            let expected = previous.last_offset.saturating_add(1);
            if base_offset < expected {
                return Err(StorageError::NonContiguousAppend {
                    expected,
                    found: base_offset,
                });
            }
        }
        fetched.push(FetchedBatch {
            position,
            len: batch.len(),
            base_offset,
            last_offset: header.last_offset(),
            max_timestamp: header.max_timestamp.get(),
            leader_epoch: header.partition_leader_epoch.get(),
        });
    }
}
