//! Idempotent-producer state of one partition: the last
//! `PRODUCER_BATCHES_MAX` batches of each producer id, Kafka's sequence
//! rules against them, and how the state survives a restart.
//!
//! Survival, like Kafka's producer snapshots: a clean close writes
//! `producer-state.snapshot` (text) into the partition dir with the log end
//! it covers; opening loads it and replays the batches stored after it.
//! Replay is bounded to the last segment: after a crash, producers whose
//! last batch is in an older segment (and not in a snapshot) start afresh,
//! so their next batch is accepted as from a new producer (never refused).

use std::collections::{HashMap, VecDeque};
use std::path::Path;
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

const SNAPSHOT_FILE: &str = "producer-state.snapshot";
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
/// there), and a snapshot that may describe them: producer state must
/// never remember a batch the log no longer holds, or a retry of it after
/// failover would be answered as a duplicate of nothing.
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
    match std::fs::remove_file(dir.join(SNAPSHOT_FILE)) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            tracing::warn!(dir = %dir.display(), %error, "remove producer-state snapshot")
        }
    }
}

/// Writes the snapshot at a clean close: the state covers the log up to
/// `end_offset`. Replaced atomically (write, fsync, rename).
pub fn write_snapshot(dir: &Path, producers: &Producers, end_offset: i64) -> std::io::Result<()> {
    use std::io::Write;
    let mut text = format!("{SNAPSHOT_MAGIC}\nend {end_offset}\n");
    for (id, entry) in producers.iter().take(SNAPSHOT_PRODUCERS_MAX) {
        for batch in &entry.batches {
            text.push_str(&format!(
                "{id} {} {} {} {}\n",
                entry.epoch, batch.first_sequence, batch.last_sequence, batch.base_offset
            ));
        }
    }
    let tmp = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_data()?;
    std::fs::rename(&tmp, dir.join(SNAPSHOT_FILE))
}

/// The snapshot's state and the log end it covers; None if there is none
/// or it does not parse (then the log tail alone is replayed).
pub fn read_snapshot(dir: &Path) -> Option<(Producers, i64)> {
    let text = std::fs::read_to_string(dir.join(SNAPSHOT_FILE)).ok()?;
    let parsed = parse_snapshot(&text);
    if parsed.is_none() {
        tracing::warn!(dir = %dir.display(), "ignoring unreadable producer-state snapshot");
    }
    parsed
}

fn parse_snapshot(text: &str) -> Option<(Producers, i64)> {
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

/// Rebuilds a partition's producer state on open: the snapshot, then the
/// idempotent batches stored after it, from at most the last segment.
pub async fn recover(log: &Log) -> Producers {
    let log_end = log.log_end_offset();
    let last_segment = log
        .segment_base_offsets()
        .last()
        .copied()
        .unwrap_or(log_end);
    let (mut producers, covered) = match read_snapshot(log.dir()) {
        Some((producers, end)) if end <= log_end => (producers, end),
        _ => (Producers::new(), log.log_start_offset()),
    };
    let mut offset = covered.max(last_segment).max(log.log_start_offset());
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
        let (read, end) = read_snapshot(dir.path()).expect("read");
        assert_eq!(end, 101);
        assert_eq!(read, producers);
        assert_eq!(read[&42].batches.len(), PRODUCER_BATCHES_MAX);
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
