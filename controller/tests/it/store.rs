//! `RaftStore` against real files: recovery, torn tails, corruption,
//! compaction, interrupted rewrites, and a model-based proptest.

use std::fs;
use std::path::{Path, PathBuf};

use controller::store::{Durability, RaftStore, StoreError};
use proptest::prelude::*;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, Storage, StorageError};

const VOTERS: &[u64] = &[1, 2, 3];
/// The base record, always first in `wal.log`: header + index + term.
const BASE_RECORD_BYTES: usize = 9 + 16;

fn store_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("__cluster_metadata-0");
    (tmp, dir)
}

fn open(dir: &Path) -> RaftStore {
    RaftStore::open(dir, VOTERS, Durability::Sync).expect("open")
}

fn entries(indices: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    indices
        .map(|index| Entry {
            index,
            term,
            data: format!("entry {index} of term {term}").into_bytes().into(),
            ..Default::default()
        })
        .collect()
}

fn hard_state(term: u64, vote: u64, commit: u64) -> HardState {
    HardState {
        term,
        vote,
        commit,
        ..Default::default()
    }
}

/// The whole log, read the way raft-rs reads it.
fn log(store: &RaftStore) -> Vec<Entry> {
    let (first, last) = (store.first_index(), store.last_index());
    if last < first {
        return Vec::new();
    }
    Storage::entries(
        store,
        first,
        last + 1,
        raft::NO_LIMIT,
        GetEntriesContext::empty(false),
    )
    .expect("entries")
}

fn leader_snapshot(index: u64, term: u64, data: &[u8]) -> Snapshot {
    let mut snapshot = Snapshot {
        data: data.to_vec().into(),
        ..Default::default()
    };
    let meta = snapshot.mut_metadata();
    meta.index = index;
    meta.term = term;
    meta.set_conf_state(ConfState::from((VOTERS.to_vec(), vec![])));
    snapshot
}

fn wal_path(dir: &Path) -> PathBuf {
    dir.join("wal.log")
}

fn assert_corrupt(result: Result<RaftStore, StoreError>, context: &str) {
    match result {
        Err(StoreError::Corrupt { .. }) => {}
        Err(other) => panic!("{context}: expected Corrupt, got {other}"),
        Ok(store) => panic!("{context}: expected Corrupt, opened {store:?}"),
    }
}

#[test]
fn fresh_store_has_voters_and_empty_snapshot() {
    let (_tmp, dir) = store_dir();
    let store = open(&dir);
    let state = store.initial_state().expect("initial state");
    assert_eq!(state.conf_state.get_voters(), VOTERS);
    assert_eq!(state.hard_state, HardState::default());
    assert_eq!((store.first_index(), store.last_index()), (1, 0));
    assert_eq!(store.snapshot().get_metadata().index, 0);
    assert!(store.snapshot().data.is_empty());
    let empty = Storage::entries(&store, 1, 1, None, GetEntriesContext::empty(false));
    assert!(empty.expect("an empty range").is_empty());
}

#[test]
fn reopen_restores_entries_and_hard_state() {
    let (_tmp, dir) = store_dir();
    let mut store = open(&dir);
    store.append(&entries(1..=3, 1)).expect("append");
    store.set_hard_state(&hard_state(1, 2, 2)).expect("hs");
    store.sync().expect("sync");
    store.append(&entries(4..=5, 2)).expect("append");
    store.set_commit(4).expect("commit");
    store.sync().expect("sync");
    drop(store);

    let store = open(&dir);
    let mut expected = entries(1..=3, 1);
    expected.extend(entries(4..=5, 2));
    assert_eq!(log(&store), expected);
    assert_eq!((store.first_index(), store.last_index()), (1, 5));
    assert_eq!(store.term(3).expect("term"), 1);
    assert_eq!(store.term(5).expect("term"), 2);
    assert_eq!(store.hard_state(), hard_state(1, 2, 4));
    assert_eq!(
        store.initial_state().expect("state").hard_state,
        hard_state(1, 2, 4)
    );
}

#[test]
fn unsynced_writes_are_lost_on_reopen() {
    let (_tmp, dir) = store_dir();
    let mut store = open(&dir);
    store.append(&entries(1..=2, 1)).expect("append");
    store.set_hard_state(&hard_state(1, 1, 1)).expect("hs");
    store.sync().expect("sync");
    store.append(&entries(3..=4, 1)).expect("append");
    store.set_hard_state(&hard_state(2, 0, 3)).expect("hs");
    drop(store);

    let store = open(&dir);
    assert_eq!(log(&store), entries(1..=2, 1));
    assert_eq!(store.hard_state(), hard_state(1, 1, 1));
}

#[test]
fn overlapping_append_truncates_after_reopen() {
    let (_tmp, dir) = store_dir();
    let mut store = open(&dir);
    store.append(&entries(1..=5, 1)).expect("append");
    store.sync().expect("sync");
    store.append(&entries(4..=6, 2)).expect("append");
    store.sync().expect("sync");
    drop(store);

    let store = open(&dir);
    let mut expected = entries(1..=3, 1);
    expected.extend(entries(4..=6, 2));
    assert_eq!(log(&store), expected);
    assert_eq!(store.term(5).expect("term"), 2);
}

/// Writes 1..=3 (term 1) and a hard state in one sync, then 4..=5 (term 1)
/// in a second; returns the WAL length after the first sync.
fn two_syncs(dir: &Path) -> u64 {
    let mut store = open(dir);
    store.append(&entries(1..=3, 1)).expect("append");
    store.set_hard_state(&hard_state(1, 1, 3)).expect("hs");
    store.sync().expect("sync");
    let first_sync_bytes = store.wal_bytes();
    store.append(&entries(4..=5, 1)).expect("append");
    store.sync().expect("sync");
    first_sync_bytes
}

/// After a torn tail was cut off, the store keeps working across reopens.
fn assert_appends_after_recovery(dir: &Path, last_whole: u64) {
    let mut store = open(dir);
    assert_eq!(store.last_index(), last_whole);
    store
        .append(&entries(last_whole + 1..=last_whole + 1, 2))
        .expect("append");
    store.sync().expect("sync");
    drop(store);
    let store = open(dir);
    let mut expected = entries(1..=last_whole, 1);
    expected.extend(entries(last_whole + 1..=last_whole + 1, 2));
    assert_eq!(log(&store), expected);
    assert_eq!(store.hard_state(), hard_state(1, 1, 3));
}

#[test]
fn tail_truncated_mid_record_is_cut_off() {
    for cut in [1, 3, 9, 20] {
        let (_tmp, dir) = store_dir();
        let first_sync_bytes = two_syncs(&dir);
        let len = fs::metadata(wal_path(&dir)).expect("stat").len();
        fs::OpenOptions::new()
            .write(true)
            .open(wal_path(&dir))
            .and_then(|f| f.set_len(len - cut))
            .expect("truncate");

        let store = open(&dir);
        assert_eq!(log(&store), entries(1..=3, 1), "cut {cut}");
        assert_eq!(store.wal_bytes(), first_sync_bytes, "cut {cut}");
        assert_eq!(
            fs::metadata(wal_path(&dir)).expect("stat").len(),
            first_sync_bytes
        );
        drop(store);
        assert_appends_after_recovery(&dir, 3);
    }
}

#[test]
fn tail_garbage_is_cut_off() {
    let garbage: [&[u8]; 3] = [b"\xde\xad\xbe\xef\x01\x02\x03", &[0; 4096], &[0xff; 100]];
    for tail in garbage {
        let (_tmp, dir) = store_dir();
        two_syncs(&dir);
        let mut bytes = fs::read(wal_path(&dir)).expect("read");
        let whole = bytes.len() as u64;
        bytes.extend_from_slice(tail);
        fs::write(wal_path(&dir), &bytes).expect("write");

        let store = open(&dir);
        assert_eq!(
            log(&store),
            entries(1..=5, 1),
            "tail of {} bytes",
            tail.len()
        );
        assert_eq!(store.wal_bytes(), whole);
        drop(store);
        assert_appends_after_recovery(&dir, 5);
    }
}

/// Every byte of a record with a valid one after it matters: flipping any
/// is corruption, never a silently dropped tail.
#[test]
fn record_corrupt_mid_wal_is_error() {
    let (_tmp, dir) = store_dir();
    two_syncs(&dir);
    let bytes = fs::read(wal_path(&dir)).expect("read");
    let snapshot = fs::read(dir.join("snapshot.bin")).expect("read");
    let body = u32::from_le_bytes(bytes[BASE_RECORD_BYTES..][..4].try_into().expect("4 bytes"));
    let first_entries = BASE_RECORD_BYTES..BASE_RECORD_BYTES + 9 + body as usize;
    for at in (0..BASE_RECORD_BYTES).chain(first_entries) {
        let (_tmp, dir) = store_dir();
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(dir.join("snapshot.bin"), &snapshot).expect("write");
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x10;
        fs::write(wal_path(&dir), &damaged).expect("write");
        assert_corrupt(
            RaftStore::open(&dir, VOTERS, Durability::NoSync),
            &format!("byte {at}"),
        );
        assert_eq!(
            fs::read(wal_path(&dir)).expect("read"),
            damaged,
            "byte {at}: file untouched"
        );
    }
}

#[test]
fn snapshot_corrupt_is_error() {
    let (_tmp, dir) = store_dir();
    let mut store = open(&dir);
    store.append(&entries(1..=4, 1)).expect("append");
    store.set_hard_state(&hard_state(1, 1, 4)).expect("hs");
    store.compact(3, b"image".to_vec()).expect("compact");
    drop(store);
    let good = fs::read(dir.join("snapshot.bin")).expect("read");
    for at in [0, 5, good.len() - 1] {
        let mut damaged = good.clone();
        damaged[at] ^= 0x01;
        fs::write(dir.join("snapshot.bin"), &damaged).expect("write");
        assert_corrupt(
            RaftStore::open(&dir, VOTERS, Durability::Sync),
            &format!("byte {at}"),
        );
    }
    fs::write(dir.join("snapshot.bin"), &good[..2]).expect("write");
    assert_corrupt(RaftStore::open(&dir, VOTERS, Durability::Sync), "2 bytes");
    fs::remove_file(dir.join("snapshot.bin")).expect("rm");
    assert_corrupt(RaftStore::open(&dir, VOTERS, Durability::Sync), "missing");
}

#[test]
fn compact_keeps_later_entries_and_shrinks_wal() {
    let (_tmp, dir) = store_dir();
    let mut store = open(&dir);
    store.append(&entries(1..=6, 1)).expect("append");
    store.append(&entries(7..=10, 2)).expect("append");
    store.set_hard_state(&hard_state(2, 1, 8)).expect("hs");
    store.sync().expect("sync");
    let before = store.wal_bytes();

    store.compact(7, b"image at 7".to_vec()).expect("compact");
    let after = store.wal_bytes();
    assert!(after < before, "WAL {before} -> {after} bytes");
    assert_eq!((store.first_index(), store.last_index()), (8, 10));
    assert_eq!(store.term(7).expect("term of the snapshot, in memory"), 2);
    assert_eq!(log(&store), entries(8..=10, 2));
    drop(store);

    let store = open(&dir);
    let meta = store.snapshot().get_metadata();
    assert_eq!((meta.index, meta.term), (7, 2));
    assert_eq!(meta.get_conf_state().get_voters(), VOTERS);
    assert_eq!(&store.snapshot().data[..], b"image at 7");
    assert_eq!((store.first_index(), store.last_index()), (8, 10));
    assert_eq!(log(&store), entries(8..=10, 2));
    assert_eq!(store.term(7).expect("term of the snapshot"), 2);
    assert!(matches!(
        store.term(6),
        Err(raft::Error::Store(StorageError::Compacted))
    ));
    assert_eq!(store.hard_state(), hard_state(2, 1, 8));
    assert_eq!(store.wal_bytes(), after);
}

#[test]
fn compact_of_whole_log_keeps_term_and_index() {
    let (_tmp, dir) = store_dir();
    let mut store = open(&dir);
    store.append(&entries(1..=4, 3)).expect("append");
    store.set_hard_state(&hard_state(3, 0, 4)).expect("hs");
    store.compact(4, b"all".to_vec()).expect("compact"); // also syncs
    drop(store);

    let mut store = open(&dir);
    assert_eq!((store.first_index(), store.last_index()), (5, 4));
    assert_eq!(store.term(4).expect("term"), 3);
    store.append(&entries(5..=5, 3)).expect("append");
    store.sync().expect("sync");
    drop(store);
    assert_eq!(log(&open(&dir)), entries(5..=5, 3));
}

#[test]
fn compact_beyond_commit_is_refused() {
    let (_tmp, dir) = store_dir();
    let mut store = open(&dir);
    store.append(&entries(1..=5, 1)).expect("append");
    store.set_hard_state(&hard_state(1, 0, 2)).expect("hs");
    let result = store.compact(3, Vec::new());
    assert!(
        matches!(
            result,
            Err(StoreError::CompactBeyondCommit {
                index: 3,
                commit: 2
            })
        ),
        "{result:?}"
    );
    assert_eq!(store.first_index(), 1);
}

#[test]
fn apply_snapshot_from_leader_survives_reopen() {
    let (_tmp, dir) = store_dir();
    let mut store = open(&dir);
    store.append(&entries(1..=5, 1)).expect("append");
    store.set_hard_state(&hard_state(1, 1, 3)).expect("hs");
    store.sync().expect("sync");

    store
        .apply_snapshot(leader_snapshot(20, 3, b"leader image"))
        .expect("apply");
    assert_eq!((store.first_index(), store.last_index()), (21, 20));
    drop(store);

    let mut store = open(&dir);
    assert_eq!(&store.snapshot().data[..], b"leader image");
    assert_eq!((store.first_index(), store.last_index()), (21, 20));
    assert_eq!(store.term(20).expect("term"), 3);
    assert_eq!(store.hard_state(), hard_state(3, 1, 20));
    store.append(&entries(21..=22, 3)).expect("append");
    store.sync().expect("sync");
    drop(store);
    assert_eq!(log(&open(&dir)), entries(21..=22, 3));
}

#[test]
fn apply_snapshot_older_than_log_start_is_refused() {
    let (_tmp, dir) = store_dir();
    let mut store = open(&dir);
    store.append(&entries(1..=5, 1)).expect("append");
    store.set_hard_state(&hard_state(1, 0, 5)).expect("hs");
    store.compact(4, Vec::new()).expect("compact");
    let result = store.apply_snapshot(leader_snapshot(3, 1, b""));
    assert!(
        matches!(
            result,
            Err(StoreError::Raft(raft::Error::Store(
                StorageError::SnapshotOutOfDate
            )))
        ),
        "{result:?}"
    );
}

#[test]
fn storage_snapshot_has_data_or_is_unavailable() {
    let (_tmp, dir) = store_dir();
    let mut store = open(&dir);
    store.append(&entries(1..=8, 1)).expect("append");
    store.set_hard_state(&hard_state(1, 0, 8)).expect("hs");
    store.compact(6, b"state at 6".to_vec()).expect("compact");

    for request_index in [0, 6] {
        let snapshot = Storage::snapshot(&store, request_index, 2).expect("snapshot");
        assert_eq!(snapshot.get_metadata().index, 6);
        assert_eq!(snapshot.get_metadata().term, 1);
        assert_eq!(&snapshot.data[..], b"state at 6");
    }
    assert!(matches!(
        Storage::snapshot(&store, 7, 2),
        Err(raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable
        ))
    ));
}

#[test]
fn voters_changed_is_refused() {
    let (_tmp, dir) = store_dir();
    drop(open(&dir));
    match RaftStore::open(&dir, &[1, 2], Durability::Sync) {
        Err(StoreError::VotersChanged { stored, given }) => {
            assert_eq!((stored, given), (vec![1, 2, 3], vec![1, 2]));
        }
        other => panic!("expected VotersChanged, got {other:?}"),
    }
    // The order of the voters does not matter.
    RaftStore::open(&dir, &[3, 1, 2], Durability::Sync).expect("same voters");
}

/// A crash after `snapshot.bin` was replaced but before `wal.log` was:
/// the new snapshot with the old WAL.
fn crash_between_renames(dir: &Path, install: impl FnOnce(&mut RaftStore)) -> u64 {
    let mut store = open(dir);
    store.append(&entries(1..=5, 1)).expect("append");
    store.set_hard_state(&hard_state(1, 1, 4)).expect("hs");
    store.sync().expect("sync");
    let old_wal = fs::read(wal_path(dir)).expect("read");
    install(&mut store);
    drop(store);
    fs::write(wal_path(dir), &old_wal).expect("write");
    old_wal.len() as u64
}

#[test]
fn compact_interrupted_before_wal_rename_recovers() {
    let (_tmp, dir) = store_dir();
    let old_wal_bytes = crash_between_renames(&dir, |store| {
        store.compact(3, b"image at 3".to_vec()).expect("compact");
    });
    let store = open(&dir);
    assert_eq!(store.snapshot().get_metadata().index, 3);
    assert_eq!(log(&store), entries(4..=5, 1));
    assert_eq!(store.hard_state(), hard_state(1, 1, 4));
    // The rewrite was finished: the WAL now starts at the snapshot.
    let rewritten = store.wal_bytes();
    drop(store);
    let store = open(&dir);
    assert_eq!(log(&store), entries(4..=5, 1));
    assert_eq!(fs::metadata(wal_path(&dir)).expect("stat").len(), rewritten);
    assert!(rewritten < old_wal_bytes, "{rewritten} >= {old_wal_bytes}");
}

/// Only damage (or a caller bug) gets a commit index past the log; it is
/// lowered, and persisted lowered, so later entries at those indices do not
/// look committed on the next open.
#[test]
fn commit_past_log_is_lowered_and_persisted() {
    let (_tmp, dir) = store_dir();
    let mut store = open(&dir);
    store.append(&entries(1..=5, 1)).expect("append");
    store.set_hard_state(&hard_state(1, 0, 9)).expect("hs");
    store.sync().expect("sync");
    drop(store);

    let mut store = open(&dir);
    assert_eq!(store.hard_state().commit, 5);
    store.append(&entries(6..=9, 1)).expect("append");
    store.sync().expect("sync");
    drop(store);
    assert_eq!(open(&dir).hard_state().commit, 5);
}

#[test]
fn append_over_record_limit_splits_records() {
    let (_tmp, dir) = store_dir();
    let mut store = open(&dir);
    let big = |index| Entry {
        index,
        term: 1,
        data: vec![index as u8; 30 << 20].into(),
        ..Default::default()
    };
    let batch: Vec<Entry> = (1..=3).map(big).collect();
    store.append(&batch).expect("append");
    store.sync().expect("sync");
    drop(store);
    assert_eq!(log(&open(&dir)), batch);
}

#[test]
fn entry_over_record_limit_is_refused() {
    let (_tmp, dir) = store_dir();
    let mut store = open(&dir);
    let huge = Entry {
        index: 2,
        term: 1,
        data: vec![0; controller::store::WAL_RECORD_BYTES_MAX].into(),
        ..Default::default()
    };
    let batch = [entries(1..=1, 1).remove(0), huge];
    let result = store.append(&batch);
    assert!(
        matches!(result, Err(StoreError::TooLarge { .. })),
        "{result:?}"
    );
    assert_eq!(store.last_index(), 0, "nothing of the batch was taken");
    store.sync().expect("sync");
    drop(store);
    assert_eq!(open(&dir).last_index(), 0);
}

#[test]
fn apply_snapshot_interrupted_drops_divergent_log() {
    // (snapshot index, term, entries expected after it)
    let cases: [(u64, u64, Vec<Entry>); 3] = [
        (4, 2, vec![]),            // our entry 4 has term 1: diverged
        (4, 1, entries(5..=5, 1)), // our log continues the snapshot
        (9, 2, vec![]),            // our log never reached it
    ];
    for (index, term, after) in cases {
        let (_tmp, dir) = store_dir();
        crash_between_renames(&dir, |store| {
            store
                .apply_snapshot(leader_snapshot(index, term, b"leader"))
                .expect("apply");
        });
        let store = open(&dir);
        assert_eq!(store.snapshot().get_metadata().index, index);
        assert_eq!(log(&store), after, "snapshot at {index} term {term}");
        assert_eq!(store.hard_state().term, term, "the snapshot's term wins");
        let commit = store.hard_state().commit;
        assert!(
            commit >= index && commit <= store.last_index(),
            "commit {commit}"
        );
    }
}

// ---- model-based: the store against a plain Vec, across reopens ----

#[derive(Debug, Clone)]
enum Op {
    /// Append `len` entries from `back` before the end (never at or below
    /// the commit index, as raft does); `bump` starts a new term first.
    Append {
        back: u64,
        len: u64,
        bump: bool,
    },
    HardState {
        bump: bool,
        vote: u64,
        commit_step: u64,
    },
    Commit {
        step: u64,
    },
    Sync,
    Compact {
        pick: u64,
    },
    LeaderSnapshot {
        ahead: u64,
        bump: bool,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0u64..4, 1u64..5, any::<bool>()).prop_map(|(back, len, bump)| Op::Append { back, len, bump }),
        2 => (any::<bool>(), 0u64..4, 0u64..4)
            .prop_map(|(bump, vote, commit_step)| Op::HardState { bump, vote, commit_step }),
        2 => (0u64..4).prop_map(|step| Op::Commit { step }),
        3 => Just(Op::Sync),
        1 => any::<u64>().prop_map(|pick| Op::Compact { pick }),
        1 => (0u64..3, any::<bool>()).prop_map(|(ahead, bump)| Op::LeaderSnapshot { ahead, bump }),
        2 => Just(Op::Reopen),
    ]
}

#[derive(Debug, Clone, Default)]
struct Model {
    snapshot_index: u64,
    snapshot_term: u64,
    snapshot_data: Vec<u8>,
    /// `log[i].index == snapshot_index + 1 + i`.
    log: Vec<Entry>,
    hs: HardState,
}

impl Model {
    fn last(&self) -> u64 {
        self.snapshot_index + self.log.len() as u64
    }

    fn term_at(&self, index: u64) -> u64 {
        match index.checked_sub(self.snapshot_index + 1) {
            None => self.snapshot_term,
            Some(at) => self.log[at as usize].term,
        }
    }

    fn check(&self, store: &RaftStore) -> Result<(), TestCaseError> {
        let meta = store.snapshot().get_metadata();
        prop_assert_eq!(
            (meta.index, meta.term),
            (self.snapshot_index, self.snapshot_term)
        );
        prop_assert_eq!(&store.snapshot().data[..], &self.snapshot_data[..]);
        prop_assert_eq!(store.first_index(), self.snapshot_index + 1);
        prop_assert_eq!(store.last_index(), self.last());
        prop_assert_eq!(
            store.term(self.snapshot_index).ok(),
            Some(self.snapshot_term)
        );
        prop_assert_eq!(log(store), self.log.clone());
        prop_assert_eq!(store.hard_state(), self.hs.clone());
        Ok(())
    }
}

/// Runs one op on both; returns whether it made everything durable.
fn run(op: &Op, store: &mut RaftStore, model: &mut Model) -> Result<bool, StoreError> {
    match *op {
        Op::Append { back, len, bump } => {
            if bump {
                model.hs.term += 1;
                model.hs.vote = 0;
                store.set_hard_state(&model.hs)?;
            }
            let end = model.last() + 1;
            let start = end.saturating_sub(back).max(model.hs.commit + 1);
            let batch = entries(start..=start + len - 1, model.hs.term);
            store.append(&batch)?;
            model
                .log
                .truncate((start - model.snapshot_index - 1) as usize);
            model.log.extend(batch);
            Ok(false)
        }
        Op::HardState {
            bump,
            vote,
            commit_step,
        } => {
            model.hs.term += u64::from(bump);
            model.hs.vote = vote;
            model.hs.commit = (model.hs.commit + commit_step).min(model.last());
            store.set_hard_state(&model.hs)?;
            Ok(false)
        }
        Op::Commit { step } => {
            model.hs.commit = (model.hs.commit + step).min(model.last());
            store.set_commit(model.hs.commit)?;
            Ok(false)
        }
        Op::Sync => store.sync().map(|()| true),
        Op::Compact { pick } => {
            let span = model.hs.commit - model.snapshot_index;
            if span == 0 {
                return Ok(false);
            }
            let index = model.snapshot_index + 1 + pick % span;
            let data = format!("image at {index}").into_bytes();
            store.compact(index, data.clone())?;
            model.snapshot_term = model.term_at(index);
            model.log.drain(..(index - model.snapshot_index) as usize);
            (model.snapshot_index, model.snapshot_data) = (index, data);
            Ok(true)
        }
        Op::LeaderSnapshot { ahead, bump } => {
            let (index, term) = (model.hs.commit + 1 + ahead, model.hs.term + u64::from(bump));
            let data = format!("leader image at {index}").into_bytes();
            store.apply_snapshot(leader_snapshot(index, term, &data))?;
            model.log.clear();
            model.hs.term = model.hs.term.max(term);
            model.hs.commit = index;
            (
                model.snapshot_index,
                model.snapshot_term,
                model.snapshot_data,
            ) = (index, term, data);
            Ok(true)
        }
        Op::Reopen => unreachable!("handled by the caller"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn model_matches_across_reopens(ops in prop::collection::vec(op(), 1..60)) {
        let (_tmp, dir) = store_dir();
        let open = || RaftStore::open(&dir, VOTERS, Durability::NoSync).expect("open");
        let mut store = open();
        let (mut model, mut durable) = (Model::default(), Model::default());
        for op in &ops {
            if let Op::Reopen = op {
                drop(store);
                store = open();
                model = durable.clone();
            } else if run(op, &mut store, &mut model).expect("op") {
                durable = model.clone();
            }
            model.check(&store)?;
        }
        drop(store);
        durable.check(&open())?;
    }
}
