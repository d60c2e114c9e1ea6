//! Idempotent-producer state of one partition: the last
//! `PRODUCER_BATCHES_MAX` batches of each producer id, Kafka's sequence
//! rules against them, and how the state survives a restart.
//!
//! Survival, as Kafka's producer snapshots: `<offset>.snapshot` files
//! (text, the offset zero-padded to 20 digits as segment names are) in the
//! partition dir, each the state of every batch below its offset. One is
//! written at every segment roll, on the `sluice.producer.snapshot.interval.ms`
//! timer when the state changed, and at a clean close; the newest
//! `SNAPSHOTS_KEPT` are kept. Opening loads the newest one at or below the
//! recovered log end (newer ones describe records a crash took away and
//! are deleted) and replays the batches stored after it, so a producer
//! whose last batch is segments old is still known after a SIGKILL.
//! Without any snapshot (a log written before snapshots existed), replay
//! covers the last segment only.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use storage::batch::BatchHeader;
use storage::Log;

/// Batches remembered per producer id and partition for duplicate detection
/// (Kafka keeps 5: max.in.flight.requests.per.connection for idempotence).
pub const PRODUCER_BATCHES_MAX: usize = 5;
/// Producer ids kept per partition in a snapshot (bounds the file and the
/// memory a hostile snapshot could claim).
pub const SNAPSHOT_PRODUCERS_MAX: usize = 100_000;
/// Bytes read per step while replaying the log tail.
const REPLAY_READ_BYTES: usize = 1024 * 1024;

/// Snapshots kept per partition: more than one, so that when a crash
/// takes away unflushed records that a newer snapshot described, an older
/// one is still there.
pub const SNAPSHOTS_KEPT: usize = 3;
const SNAPSHOT_SUFFIX: &str = ".snapshot";
/// The single snapshot of earlier versions (written at clean close only):
/// still read, and removed once a new-style one is written.
const LEGACY_SNAPSHOT_FILE: &str = "producer-state.snapshot";
const SNAPSHOT_MAGIC: &str = "sluice-producer-state 1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducedBatch {
    pub first_sequence: i32,
    pub last_sequence: i32,
    pub base_offset: i64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<ProducedBatch>,
}

pub type Producers = HashMap<i64, ProducerEntry>;

pub enum Sequence {
    Accept,
    /// Already appended at this base offset: answer with it, append nothing.
    Duplicate(i64),
    Reject(SequenceError),
}

/// Why an idempotent producer's batch is refused (Kafka's codes for them
/// are in errors.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    #[error("producer epoch is older than the partition's")]
    InvalidProducerEpoch,
    #[error("out of order sequence number")]
    OutOfOrderSequence,
}

/// Kafka's idempotence rules against the last batches of this producer.
pub fn check_sequence(producers: &Producers, producer_id: i64, epoch: i16, first: i32) -> Sequence {
    let Some(entry) = producers.get(&producer_id) else {
        // No state (new producer, or state older than what survived): accept.
        return Sequence::Accept;
    };
    if epoch < entry.epoch {
        return Sequence::Reject(SequenceError::InvalidProducerEpoch);
    }
    if epoch > entry.epoch {
        return if first == 0 {
            Sequence::Accept
        } else {
            Sequence::Reject(SequenceError::OutOfOrderSequence)
        };
    }
    if let Some(batch) = entry.batches.iter().find(|b| b.first_sequence == first) {
        return Sequence::Duplicate(batch.base_offset);
    }
    let expected = entry
        .batches
        .back()
        .map_or(first, |b| b.last_sequence.wrapping_add(1) & i32::MAX);
    if first == expected {
        Sequence::Accept
    } else {
        Sequence::Reject(SequenceError::OutOfOrderSequence)
    }
}

/// Records an appended batch of an idempotent producer.
pub fn remember(
    producers: &mut Producers,
    producer_id: i64,
    epoch: i16,
    first: i32,
    count: i32,
    base_offset: i64,
) {
    let entry = producers.entry(producer_id).or_default();
    if epoch != entry.epoch {
        entry.epoch = epoch;
        entry.batches.clear();
    }
    entry.batches.push_back(ProducedBatch {
        first_sequence: first,
        last_sequence: first.wrapping_add(count.max(1) - 1) & i32::MAX,
        base_offset,
    });
    while entry.batches.len() > PRODUCER_BATCHES_MAX {
        entry.batches.pop_front();
    }
}

/// Records a stored batch (replayed, or a follower's copy of the
/// leader's) if an idempotent producer wrote it.
pub fn remember_stored(producers: &mut Producers, header: &BatchHeader) {
    let producer_id = header.producer_id.get();
    if producer_id < 0 || header.is_control() {
        return;
    }
    remember(
        producers,
        producer_id,
        header.producer_epoch.get(),
        header.base_sequence.get(),
        header.records_count.get(),
        header.base_offset(),
    );
}

/// Forgets the batches at or after `offset` (a follower truncated its log
/// there), and the snapshots that may describe them: producer state must
/// never remember a batch the log no longer holds, or a retry of it after
/// failover would be answered as a duplicate of nothing. A snapshot at or
/// below `offset` describes only batches below it and stays.
pub fn forget_from(dir: &Path, producers: &mut Producers, offset: i64) {
    for entry in producers.values_mut() {
        while entry
            .batches
            .back()
            .is_some_and(|b| b.base_offset >= offset)
        {
            entry.batches.pop_back();
        }
    }
    producers.retain(|_, entry| !entry.batches.is_empty());
    for (at, path) in snapshot_files(dir) {
        if at > offset {
            remove_snapshot(dir, &path);
        }
    }
}

fn remove_snapshot(dir: &Path, path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            tracing::warn!(dir = %dir.display(), file = %path.display(), %error,
                "remove producer-state snapshot")
        }
    }
}

/// The snapshot files of a partition dir, oldest first: (offset, path).
/// The legacy file's offset is read from its `end` line.
fn snapshot_files(dir: &Path) -> Vec<(i64, PathBuf)> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name == LEGACY_SNAPSHOT_FILE {
            let end = std::fs::read_to_string(entry.path())
                .ok()
                .and_then(|text| parse_snapshot(&text).map(|(_, end)| end));
            // Unreadable: offset 0, so it sorts first and is removed first.
            files.push((end.unwrap_or(0), entry.path()));
        } else if let Some(stem) = name.strip_suffix(SNAPSHOT_SUFFIX) {
            if let Ok(offset) = stem.parse::<i64>() {
                files.push((offset, entry.path()));
            }
        }
    }
    files.sort();
    files
}

/// Writes the snapshot of the state of every batch below `offset` as
/// `<offset>.snapshot` (write, fsync, rename, so a reader sees a whole
/// file or none), then removes all but the newest `SNAPSHOTS_KEPT`.
pub fn write_snapshot(dir: &Path, producers: &Producers, offset: i64) -> std::io::Result<()> {
    use std::io::Write;
    let mut text = format!("{SNAPSHOT_MAGIC}\nend {offset}\n");
    for (id, entry) in producers.iter().take(SNAPSHOT_PRODUCERS_MAX) {
        for batch in &entry.batches {
            text.push_str(&format!(
                "{id} {} {} {} {}\n",
                entry.epoch, batch.first_sequence, batch.last_sequence, batch.base_offset
            ));
        }
    }
    let name = format!("{offset:020}{SNAPSHOT_SUFFIX}");
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_data()?;
    std::fs::rename(&tmp, dir.join(&name))?;
    let files = snapshot_files(dir);
    let excess = files.len().saturating_sub(SNAPSHOTS_KEPT);
    for (_, path) in files.into_iter().take(excess) {
        remove_snapshot(dir, &path);
    }
    Ok(())
}

/// The newest readable snapshot at or below `log_end` and the offset it
/// covers; None if there is none (then the log tail alone is replayed).
/// Snapshots past `log_end` describe records that are gone (a crash took
/// the unflushed tail) and are deleted, as Kafka deletes stray snapshots.
pub fn read_snapshot(dir: &Path, log_end: i64) -> Option<(Producers, i64)> {
    let mut files = snapshot_files(dir);
    while let Some((at, path)) = files.pop() {
        if at > log_end {
            remove_snapshot(dir, &path);
            continue;
        }
        let parsed = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| parse_snapshot(&text));
        match parsed {
            Some((producers, end)) if end <= log_end => return Some((producers, end)),
            _ => {
                tracing::warn!(dir = %dir.display(), file = %path.display(),
                    "ignoring unreadable producer-state snapshot");
            }
        }
    }
    None
}

pub(crate) fn parse_snapshot(text: &str) -> Option<(Producers, i64)> {
    let mut lines = text.lines();
    if lines.next()? != SNAPSHOT_MAGIC {
        return None;
    }
    let end: i64 = lines.next()?.strip_prefix("end ")?.parse().ok()?;
    let mut producers = Producers::new();
    for line in lines {
        let mut fields = line.split(' ').map(str::parse::<i64>);
        let mut next = || fields.next()?.ok();
        let (id, epoch, first, last, base) = (next()?, next()?, next()?, next()?, next()?);
        if producers.len() >= SNAPSHOT_PRODUCERS_MAX && !producers.contains_key(&id) {
            return None;
        }
        let entry = producers.entry(id).or_default();
        entry.epoch = i16::try_from(epoch).ok()?;
        entry.batches.push_back(ProducedBatch {
            first_sequence: i32::try_from(first).ok()?,
            last_sequence: i32::try_from(last).ok()?,
            base_offset: base,
        });
        if entry.batches.len() > PRODUCER_BATCHES_MAX {
            entry.batches.pop_front();
        }
    }
    Some((producers, end))
}

/// Rebuilds a partition's producer state on open: the newest snapshot
/// the log still covers, then the idempotent batches stored after it (from
/// the last segment only when there is no snapshot).
pub async fn recover(log: &Log) -> Producers {
    let log_end = log.log_end_offset();
    let (mut producers, mut offset) = match read_snapshot(log.dir(), log_end) {
        Some((producers, end)) => (producers, end),
        None => {
            let last_segment = log
                .segment_base_offsets()
                .last()
                .copied()
                .unwrap_or(log_end);
            (Producers::new(), last_segment)
        }
    };
    offset = offset.max(log.log_start_offset());
    while offset < log_end {
        let read = match log.read(offset, REPLAY_READ_BYTES).await {
            Ok(read) if !read.is_empty() => read,
            Ok(_) => break,
            Err(error) => {
                tracing::warn!(dir = %log.dir().display(), %error, "producer state replay stopped");
                break;
            }
        };
        let mut next = offset;
        for batch in read.batches() {
            let Ok(header) = BatchHeader::parse(batch) else {
                break;
            };
            next = header.last_offset() + 1;
            if header.last_offset() >= offset {
                remember_stored(&mut producers, header);
            }
        }
        if next <= offset {
            break;
        }
        offset = next;
    }
    producers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut producers = Producers::new();
        for i in 0..7 {
            remember(&mut producers, 42, 3, i * 2, 2, i64::from(i) * 10);
        }
        remember(&mut producers, 7, 0, 0, 1, 100);
        write_snapshot(dir.path(), &producers, 101).expect("write");
        let (read, end) = read_snapshot(dir.path(), 101).expect("read");
        assert_eq!(end, 101);
        assert_eq!(read, producers);
        assert_eq!(read[&42].batches.len(), PRODUCER_BATCHES_MAX);
    }

    fn snapshot_offsets(dir: &Path) -> Vec<i64> {
        snapshot_files(dir).into_iter().map(|(at, _)| at).collect()
    }

    #[test]
    fn the_newest_snapshots_are_kept_and_the_newest_covered_one_is_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut producers = Producers::new();
        for at in 1..=5 {
            remember(&mut producers, 9, 0, at as i32 - 1, 1, at - 1);
            write_snapshot(dir.path(), &producers, at).expect("write");
        }
        assert_eq!(snapshot_offsets(dir.path()), vec![3, 4, 5]);
        // A crash left the log ending at 4: the snapshot at 5 is stray.
        let (read, end) = read_snapshot(dir.path(), 4).expect("read");
        assert_eq!(end, 4);
        assert_eq!(read[&9].batches.back().map(|b| b.base_offset), Some(3));
        assert_eq!(snapshot_offsets(dir.path()), vec![3, 4]);
        // Every snapshot past the log end: none is used.
        assert!(read_snapshot(dir.path(), 2).is_none());
        assert!(snapshot_offsets(dir.path()).is_empty());
    }

    #[test]
    fn a_damaged_newest_snapshot_falls_back_to_an_older_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut producers = Producers::new();
        remember(&mut producers, 9, 0, 0, 1, 0);
        write_snapshot(dir.path(), &producers, 1).expect("write");
        std::fs::write(dir.path().join(format!("{:020}.snapshot", 2)), "torn").expect("write");
        let (read, end) = read_snapshot(dir.path(), 10).expect("read");
        assert_eq!((read, end), (producers, 1));
    }

    #[test]
    fn truncation_forgets_batches_and_the_snapshots_past_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut producers = Producers::new();
        for at in 1..=3 {
            remember(&mut producers, 9, 0, at as i32 - 1, 1, at - 1);
            write_snapshot(dir.path(), &producers, at).expect("write");
        }
        forget_from(dir.path(), &mut producers, 2);
        assert_eq!(producers[&9].batches.len(), 2, "batches at 0 and 1 stay");
        assert_eq!(snapshot_offsets(dir.path()), vec![1, 2]);
        forget_from(dir.path(), &mut producers, i64::MIN);
        assert!(producers.is_empty());
        assert!(snapshot_offsets(dir.path()).is_empty());
    }

    #[test]
    fn the_legacy_snapshot_is_read_then_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join(LEGACY_SNAPSHOT_FILE),
            "sluice-producer-state 1\nend 7\n5 1 0 0 6\n",
        )
        .expect("write");
        let (read, end) = read_snapshot(dir.path(), 7).expect("read");
        assert_eq!(end, 7);
        assert_eq!(read[&5].epoch, 1);
        let mut producers = read;
        for at in 8..=10 {
            write_snapshot(dir.path(), &producers, at).expect("write");
            remember(&mut producers, 5, 1, at as i32 - 7, 1, at);
        }
        assert!(!dir.path().join(LEGACY_SNAPSHOT_FILE).exists());
        assert_eq!(snapshot_offsets(dir.path()), vec![8, 9, 10]);
    }

    #[test]
    fn damaged_snapshots_are_ignored() {
        for text in [
            "",
            "other magic\nend 1\n",
            "sluice-producer-state 1\nend x\n",
            "sluice-producer-state 1\nend 5\n1 2 3\n",
            "sluice-producer-state 1\nend 5\n1 99999 0 0 0\n",
        ] {
            assert!(parse_snapshot(text).is_none(), "{text:?}");
        }
    }
}
