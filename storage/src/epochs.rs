//! The leader-epoch cache (Kafka's `LeaderEpochFileCache`): for each leader
//! epoch that wrote to this log, the first offset it wrote. A follower asks
//! its leader where its last epoch ended (OffsetsForLeaderEpoch, answered by
//! [`LeaderEpochs::end_offset_for`]) and truncates to that, instead of to the
//! high watermark, which can lose acknowledged records.
//!
//! Persisted as Kafka's `leader-epoch-checkpoint` in the partition directory:
//! text, a version line `0`, a count line, then one `<epoch> <start_offset>`
//! line per entry, oldest first. Replaced atomically on every change (see
//! [`crate::checkpoint`]). Kafka writes it after truncations in the
//! background; here every write is synchronous, and open clamps the cache to
//! the recovered log either way, so a stale file is harmless.

use crate::checkpoint::write_atomically;
use crate::error::{Result, StorageError};
use std::fs;
use std::path::Path;

pub const LEADER_EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";
const VERSION: &str = "0";
/// Kafka's `UNDEFINED_EPOCH` and `UNDEFINED_EPOCH_OFFSET`: the answer to an
/// epoch the cache cannot place.
pub const UNDEFINED_EPOCH: i32 = -1;
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// The cache itself, pure. Invariant: epochs strictly increase and start
/// offsets never decrease from one entry to the next.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochs {
    entries: Vec<EpochEntry>,
}

impl LeaderEpochs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `epoch` starts at `start_offset`. Ignored (false) for a
    /// negative epoch or offset and for an epoch at or below the latest:
    /// the callers (a leader starting its epoch, a follower seeing a batch
    /// of a newer epoch) only ever move the epoch forward. Entries starting
    /// at or after `start_offset` are removed first, as Kafka removes the
    /// entries the new one would put out of order: an epoch that began
    /// there but wrote nothing (or whose records were truncated) no longer
    /// owns those offsets.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || start_offset < 0 {
            return false;
        }
        if self.latest().is_some_and(|latest| epoch <= latest.epoch) {
            return false;
        }
        while let Some(last) = self.entries.last() {
            if last.start_offset < start_offset {
                break;
            }
            tracing::debug!(?last, epoch, start_offset, "leader epoch entry replaced");
            self.entries.pop();
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        self.debug_check();
        true
    }

    pub fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// Kafka's `endOffsetFor`: the largest epoch at or below `epoch` and the
    /// offset where it ended (the start of the next epoch), as answered to
    /// OffsetsForLeaderEpoch. The latest epoch is still being written, so it
    /// ends at `log_end_offset`. An epoch below the earliest entry (its
    /// records went to retention) answers `epoch` itself with the earliest
    /// entry's start, so the follower truncates to where this log's data
    /// begins. [`UNDEFINED_EPOCH`] asked, an epoch above the latest, or an
    /// empty cache answer (`UNDEFINED_EPOCH`, `UNDEFINED_EPOCH_OFFSET`).
    pub fn end_offset_for(&self, epoch: i32, log_end_offset: i64) -> (i32, i64) {
        const UNDEFINED: (i32, i64) = (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        if epoch == UNDEFINED_EPOCH {
            return UNDEFINED;
        }
        if self.latest().is_some_and(|latest| latest.epoch == epoch) {
            return (epoch, log_end_offset);
        }
        let higher = self.entries.partition_point(|e| e.epoch <= epoch);
        let Some(next) = self.entries.get(higher) else {
            return UNDEFINED;
        };
        match higher.checked_sub(1).map(|floor| self.entries[floor]) {
            Some(floor) => (floor.epoch, next.start_offset),
            None => (epoch, next.start_offset),
        }
    }

    /// Drops the entries that start at or after `end_offset` (the log was
    /// truncated there). Returns whether anything changed.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        if end_offset < 0 {
            return false;
        }
        let keep = self
            .entries
            .partition_point(|e| e.start_offset < end_offset);
        let changed = keep < self.entries.len();
        self.entries.truncate(keep);
        changed
    }

    /// Drops the entries wholly below `start_offset` (retention, or
    /// DeleteRecords moved the log start there); the entry covering it
    /// stays, starting at `start_offset`, as Kafka does. Returns whether
    /// anything changed.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        // Entries starting at or before the new start: the last of them
        // covers it.
        let covered = self
            .entries
            .partition_point(|e| e.start_offset <= start_offset);
        let Some(cover) = covered.checked_sub(1) else {
            return false;
        };
        let changed = cover > 0 || self.entries[cover].start_offset != start_offset;
        self.entries.drain(..cover);
        self.entries[0].start_offset = start_offset;
        self.debug_check();
        changed
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn clear(&mut self) -> bool {
        let changed = !self.entries.is_empty();
        self.entries.clear();
        changed
    }

    /// The checkpoint file's text.
    pub fn to_checkpoint_text(&self) -> String {
        let mut text = format!("{VERSION}\n{}\n", self.entries.len());
        for entry in &self.entries {
            text.push_str(&format!("{} {}\n", entry.epoch, entry.start_offset));
        }
        text
    }

    /// Parses the checkpoint file's text, as strictly as Kafka's reader:
    /// the version, a count, exactly that many `<epoch> <offset>` lines and
    /// nothing after. Entries go through [`LeaderEpochs::assign`] as Kafka
    /// loads them, so the invariant holds whatever the file says; a
    /// negative epoch or offset is refused (Kafka throws on one).
    pub fn parse_checkpoint(text: &str) -> Result<LeaderEpochs, &'static str> {
        let mut lines = text.lines();
        if lines.next() != Some(VERSION) {
            return Err("unknown version");
        }
        let count = lines
            .next()
            .and_then(|line| line.trim().parse::<usize>().ok())
            .ok_or("bad entry count")?;
        let mut epochs = LeaderEpochs::new();
        for _ in 0..count {
            let line = lines.next().ok_or("fewer entries than counted")?;
            let mut fields = line.split_whitespace();
            let epoch = fields.next().and_then(|f| f.parse::<i32>().ok());
            let start = fields.next().and_then(|f| f.parse::<i64>().ok());
            let (Some(epoch), Some(start_offset), None) = (epoch, start, fields.next()) else {
                return Err("bad entry line");
            };
            if epoch < 0 || start_offset < 0 {
                return Err("negative epoch or offset");
            }
            epochs.assign(epoch, start_offset);
        }
        if lines.next().is_some() {
            return Err("more entries than counted");
        }
        Ok(epochs)
    }

    fn debug_check(&self) {
        debug_assert!(self.entries.windows(2).all(|pair| {
            pair[0].epoch < pair[1].epoch && pair[0].start_offset <= pair[1].start_offset
        }));
    }
}

/// The cache from `dir`'s checkpoint; empty if there is none (a log from
/// before replication, or one no epoch has written to yet).
pub fn read(dir: &Path) -> Result<LeaderEpochs> {
    let path = dir.join(LEADER_EPOCH_CHECKPOINT_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LeaderEpochs::new()),
        Err(e) => return Err(StorageError::io(format!("read {}", path.display()), e)),
    };
    LeaderEpochs::parse_checkpoint(&text).map_err(|reason| StorageError::BadCheckpoint {
        path: path.display().to_string(),
        reason: reason.to_string(),
    })
}

pub fn write(dir: &Path, epochs: &LeaderEpochs) -> Result<()> {
    write_atomically(
        dir,
        LEADER_EPOCH_CHECKPOINT_FILE,
        &epochs.to_checkpoint_text(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochs {
        let mut epochs = LeaderEpochs::new();
        for (epoch, start) in entries {
            assert!(epochs.assign(*epoch, *start), "({epoch}, {start})");
        }
        epochs
    }

    fn pairs(epochs: &LeaderEpochs) -> Vec<(i32, i64)> {
        epochs
            .entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }

    #[test]
    fn assign_ignores_negative_old_and_equal_epochs() {
        let mut epochs = cache(&[(2, 10)]);
        assert!(!epochs.assign(-1, 20), "negative epoch");
        assert!(!epochs.assign(3, -1), "negative offset");
        assert!(!epochs.assign(2, 5), "the latest epoch again");
        assert!(!epochs.assign(1, 30), "an older epoch");
        assert_eq!(pairs(&epochs), [(2, 10)]);
        assert!(epochs.assign(4, 10), "a newer epoch at the same offset");
        assert_eq!(pairs(&epochs), [(4, 10)], "epoch 2 wrote nothing");
    }

    #[test]
    fn assign_removes_entries_at_or_after_the_new_start() {
        let mut epochs = cache(&[(1, 0), (2, 10), (3, 20)]);
        assert!(epochs.assign(5, 15));
        assert_eq!(pairs(&epochs), [(1, 0), (2, 10), (5, 15)]);
        assert!(epochs.assign(6, 0));
        assert_eq!(pairs(&epochs), [(6, 0)]);
        assert_eq!(
            epochs.latest(),
            Some(EpochEntry {
                epoch: 6,
                start_offset: 0
            })
        );
    }

    #[test]
    fn end_offset_for_answers_like_kafka() {
        let epochs = cache(&[(2, 10), (4, 30), (7, 50)]);
        let end = 80;
        let cases = [
            (7, (7, 80), "the latest epoch ends at the log end"),
            (4, (4, 50), "a known epoch ends where the next begins"),
            (5, (4, 50), "an unknown epoch between: the floor entry"),
            (6, (4, 50), "another unknown epoch between"),
            (3, (2, 30), "unknown epoch after the first"),
            (2, (2, 30), "the first epoch"),
            (1, (1, 10), "below the first: asked epoch, first start"),
            (0, (0, 10), "epoch 0 below the first"),
            (8, (-1, -1), "above the latest"),
            (-1, (-1, -1), "undefined asked"),
        ];
        for (asked, answer, why) in cases {
            assert_eq!(epochs.end_offset_for(asked, end), answer, "{why}");
        }
        let empty = LeaderEpochs::new();
        assert_eq!(empty.end_offset_for(0, 5), (-1, -1));
        assert_eq!(empty.end_offset_for(-1, 5), (-1, -1));
    }

    #[test]
    fn truncate_from_end_drops_entries_at_or_after_the_end() {
        let mut epochs = cache(&[(1, 0), (2, 10), (3, 20)]);
        assert!(!epochs.truncate_from_end(21));
        assert!(!epochs.truncate_from_end(-1), "negative ends are ignored");
        assert!(epochs.truncate_from_end(20));
        assert_eq!(pairs(&epochs), [(1, 0), (2, 10)]);
        assert!(epochs.truncate_from_end(0));
        assert!(epochs.entries().is_empty());
    }

    #[test]
    fn truncate_from_start_keeps_the_covering_entry_moved_up() {
        let mut epochs = cache(&[(1, 0), (2, 10), (3, 20)]);
        assert!(!epochs.truncate_from_start(0), "already starts there");
        assert!(epochs.truncate_from_start(5));
        assert_eq!(pairs(&epochs), [(1, 5), (2, 10), (3, 20)]);
        assert!(epochs.truncate_from_start(10));
        assert_eq!(pairs(&epochs), [(2, 10), (3, 20)]);
        assert!(epochs.truncate_from_start(100));
        assert_eq!(pairs(&epochs), [(3, 100)], "the latest covers the rest");
        let mut empty = LeaderEpochs::new();
        assert!(!empty.truncate_from_start(7));
        let mut later = cache(&[(4, 50)]);
        assert!(!later.truncate_from_start(7), "nothing before 50 to drop");
        assert_eq!(pairs(&later), [(4, 50)]);
    }

    #[test]
    fn checkpoint_text_is_kafkas_format_and_round_trips() {
        let epochs = cache(&[(0, 0), (3, 120), (9, 4000)]);
        let text = epochs.to_checkpoint_text();
        assert_eq!(text, "0\n3\n0 0\n3 120\n9 4000\n");
        assert_eq!(LeaderEpochs::parse_checkpoint(&text), Ok(epochs));
        assert_eq!(
            LeaderEpochs::parse_checkpoint("0\n0\n"),
            Ok(LeaderEpochs::new())
        );
    }

    #[test]
    fn checkpoint_parse_refuses_malformed_text() {
        let cases = [
            ("", "unknown version"),
            ("1\n0\n", "unknown version"),
            ("0\n", "bad entry count"),
            ("0\nx\n", "bad entry count"),
            ("0\n2\n1 0\n", "fewer entries than counted"),
            ("0\n1\n1 0\n2 5\n", "more entries than counted"),
            ("0\n1\n1\n", "bad entry line"),
            ("0\n1\n1 0 7\n", "bad entry line"),
            ("0\n1\na 0\n", "bad entry line"),
            ("0\n1\n-1 0\n", "negative epoch or offset"),
        ];
        for (text, reason) in cases {
            assert_eq!(
                LeaderEpochs::parse_checkpoint(text),
                Err(reason),
                "{text:?}"
            );
        }
    }

    #[test]
    fn read_and_write_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read(dir.path()).expect("missing file"), LeaderEpochs::new());
        let epochs = cache(&[(1, 0), (2, 7)]);
        write(dir.path(), &epochs).expect("write");
        assert_eq!(read(dir.path()).expect("read"), epochs);
        fs::write(dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE), "0\n1\n").expect("corrupt");
        assert!(matches!(
            read(dir.path()),
            Err(StorageError::BadCheckpoint { .. })
        ));
    }

    /// Kafka's algorithm, as written there (a map by epoch, removals from
    /// the end while matching), restricted to the epochs `assign` accepts.
    #[derive(Default)]
    struct Model(std::collections::BTreeMap<i32, i64>);

    impl Model {
        fn assign(&mut self, epoch: i32, start: i64) {
            if epoch < 0 || start < 0 || self.0.keys().next_back().is_some_and(|l| epoch <= *l) {
                return;
            }
            while let Some((e, s)) = self.0.iter().next_back().map(|(e, s)| (*e, *s)) {
                if !(e >= epoch || s >= start) {
                    break;
                }
                self.0.remove(&e);
            }
            self.0.insert(epoch, start);
        }

        fn truncate_from_end(&mut self, end: i64) {
            self.0.retain(|_, s| *s < end || end < 0);
        }

        fn truncate_from_start(&mut self, start: i64) {
            let removed: Vec<i32> = self
                .0
                .iter()
                .take_while(|(_, s)| **s <= start)
                .map(|(e, _)| *e)
                .collect();
            for e in &removed {
                self.0.remove(e);
            }
            if let Some(last) = removed.last() {
                self.0.insert(*last, start);
            }
        }

        fn end_offset_for(&self, epoch: i32, end: i64) -> (i32, i64) {
            if epoch == UNDEFINED_EPOCH {
                return (-1, -1);
            }
            if self.0.keys().next_back() == Some(&epoch) {
                return (epoch, end);
            }
            let Some((_, higher)) = self.0.range(epoch + 1..).next() else {
                return (-1, -1);
            };
            match self.0.range(..=epoch).next_back() {
                Some((floor, _)) => (*floor, *higher),
                None => (epoch, *higher),
            }
        }

        fn pairs(&self) -> Vec<(i32, i64)> {
            self.0.iter().map(|(e, s)| (*e, *s)).collect()
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Assign(i32, i64),
        TruncateFromEnd(i64),
        TruncateFromStart(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (-1..12i32, -1..60i64).prop_map(|(e, s)| Op::Assign(e, s)),
            1 => (-1..60i64).prop_map(Op::TruncateFromEnd),
            1 => (0..60i64).prop_map(Op::TruncateFromStart),
        ]
    }

    proptest! {
        #[test]
        fn cache_matches_kafkas_algorithm(ops in proptest::collection::vec(op(), 0..40)) {
            let mut epochs = LeaderEpochs::new();
            let mut model = Model::default();
            for op in ops {
                let before = pairs(&epochs);
                let changed = match op {
                    Op::Assign(e, s) => { model.assign(e, s); epochs.assign(e, s) }
                    Op::TruncateFromEnd(end) => {
                        model.truncate_from_end(end);
                        epochs.truncate_from_end(end)
                    }
                    Op::TruncateFromStart(start) => {
                        model.truncate_from_start(start);
                        epochs.truncate_from_start(start)
                    }
                };
                prop_assert_eq!(pairs(&epochs), model.pairs());
                prop_assert_eq!(changed, before != pairs(&epochs));
                let ordered = epochs.entries().windows(2).all(|p| {
                    p[0].epoch < p[1].epoch && p[0].start_offset <= p[1].start_offset
                });
                prop_assert!(ordered, "out of order: {:?}", epochs.entries());
                for asked in -1..13 {
                    prop_assert_eq!(epochs.end_offset_for(asked, 70), model.end_offset_for(asked, 70));
                }
                let text = epochs.to_checkpoint_text();
                prop_assert_eq!(LeaderEpochs::parse_checkpoint(&text), Ok(epochs.clone()));
            }
        }
    }
}
