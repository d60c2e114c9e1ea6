//! Replication's side of the log: leader epochs stamped and cached, and the
//! follower's append of the leader's stored bytes.

use crate::common::{batch, batch_bytes, open, produced, read_all, run, small_segments};
use bytes::{Bytes, BytesMut};
use std::path::Path;
use storage::batch::BatchHeader;
use storage::epochs::LEADER_EPOCH_CHECKPOINT_FILE;
use storage::{BatchError, EpochEntry, Log, LogConfig, StorageError};

/// What a Fetch response carries from `log` at `offset`: whole batches up
/// to `max_bytes` (at least one), back to back.
async fn fetch(log: &Log, offset: i64, max_bytes: usize) -> Bytes {
    fetch_until(log, offset, max_bytes, log.log_end_offset()).await
}

/// [`fetch`] of the batches that start below `end_offset`.
async fn fetch_until(log: &Log, offset: i64, max_bytes: usize, end_offset: i64) -> Bytes {
    let read = log
        .read_until(offset, max_bytes, end_offset)
        .await
        .expect("leader read");
    let mut out = BytesMut::new();
    for chunk in &read.chunks {
        out.extend_from_slice(chunk);
    }
    out.freeze()
}

/// Feeds `follower` everything `leader` has past the follower's end, in
/// fetches of `max_bytes`, each durable before the next (acks=all).
async fn replicate(leader: &Log, follower: &Log, max_bytes: usize) {
    while follower.log_end_offset() < leader.log_end_offset() {
        let bytes = fetch(leader, follower.log_end_offset(), max_bytes).await;
        let info = follower
            .append_replicated(bytes)
            .await
            .expect("replicated append")
            .expect("a whole batch");
        follower.wait_durable(&info).await.expect("durable");
    }
}

fn epochs(entries: &[(i32, i64)]) -> Vec<EpochEntry> {
    entries
        .iter()
        .map(|(epoch, start_offset)| EpochEntry {
            epoch: *epoch,
            start_offset: *start_offset,
        })
        .collect()
}

fn epoch_file(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(LEADER_EPOCH_CHECKPOINT_FILE)).expect("epoch checkpoint")
}

fn stamped_epoch(stored: &[u8]) -> i32 {
    i32::from_be_bytes(stored[12..16].try_into().expect("4 bytes"))
}

/// Name and bytes of each file of `dir` with one of `suffixes`, by name.
fn files(dir: &Path, suffixes: &[&str]) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("list")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| {
            let name = path.to_string_lossy();
            suffixes.iter().any(|suffix| name.ends_with(suffix))
        })
        .map(|path| {
            let name = path.file_name().expect("name").to_string_lossy().into();
            (name, std::fs::read(&path).expect("read file"))
        })
        .collect();
    out.sort();
    out
}

/// A leader log with epoch 1 over offsets 0..10 and epoch 2 over 10..20
/// (ten two-record batches).
async fn two_epoch_leader(dir: &Path, config: LogConfig) -> Log {
    let (leader, _) = open(dir, config).await;
    for (epoch, tag) in [(1, "one"), (2, "two")] {
        leader.begin_leader_epoch(epoch).await.expect("begin epoch");
        for i in 0..5 {
            leader
                .append(batch(&format!("{tag}{i}"), 2, 50))
                .await
                .expect("append");
        }
    }
    leader
}

#[test]
fn leader_appends_stamp_the_partition_leader_epoch() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, _) = open(dir.path(), LogConfig::default()).await;
        // A client's value in the field must not reach a follower as if a
        // leader had stamped it: the log writes -1 before any epoch.
        let mut client = batch_bytes("client", 2, 10);
        client[12..16].copy_from_slice(&42i32.to_be_bytes());
        log.append(produced(&client)).await.expect("append");
        assert_eq!(log.leader_epoch(), -1);
        log.begin_leader_epoch(3).await.expect("begin");
        log.append(batch("led", 1, 10)).await.expect("append");
        let stored = read_all(&log, 0).await;
        assert_eq!(stamped_epoch(&stored[0]), -1);
        assert_eq!(stamped_epoch(&stored[1]), 3);
        storage::batch::check_stored(&stored[1]).expect("the CRC does not cover the epoch");
        assert_eq!(log.leader_epochs(), epochs(&[(3, 2)]));
    });
}

#[test]
fn begin_leader_epoch_twice_records_two_epochs_and_answers_end_offsets() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let leader = two_epoch_leader(dir.path(), LogConfig::default()).await;
        assert_eq!(leader.leader_epochs(), epochs(&[(1, 0), (2, 10)]));
        assert_eq!(leader.leader_epoch(), 2);
        assert_eq!(epoch_file(dir.path()), "0\n2\n1 0\n2 10\n");
        assert_eq!(leader.end_offset_for_epoch(1), (1, 10));
        assert_eq!(leader.end_offset_for_epoch(2), (2, 20), "latest: log end");
        assert_eq!(leader.end_offset_for_epoch(0), (0, 0), "below the first");
        assert_eq!(leader.end_offset_for_epoch(3), (-1, -1), "above the latest");
        assert_eq!(leader.end_offset_for_epoch(-1), (-1, -1));
        // The latest epoch again only sets the stamp; an older one is stale.
        leader.begin_leader_epoch(2).await.expect("re-elected");
        assert_eq!(leader.leader_epochs(), epochs(&[(1, 0), (2, 10)]));
        let stale = leader.begin_leader_epoch(1).await;
        assert!(matches!(
            stale,
            Err(StorageError::StaleLeaderEpoch {
                epoch: 1,
                latest: 2
            })
        ));
        // An epoch begun with nothing written is replaced by the next.
        leader.begin_leader_epoch(5).await.expect("begin");
        leader.begin_leader_epoch(6).await.expect("begin");
        assert_eq!(leader.leader_epochs(), epochs(&[(1, 0), (2, 10), (6, 20)]));
    });
}

#[test]
fn follower_fed_the_leaders_reads_is_byte_identical() {
    run(async {
        let (leader_dir, follower_dir) = (
            tempfile::tempdir().expect("t"),
            tempfile::tempdir().expect("t"),
        );
        let (leader, _) = open(leader_dir.path(), small_segments()).await;
        let (follower, _) = open(follower_dir.path(), small_segments()).await;
        for round in 0..4 {
            leader.begin_leader_epoch(round * 3).await.expect("begin");
            for i in 0..40 {
                let records = 1 + (i % 5);
                let tag = format!("r{round}i{i}");
                leader
                    .append(batch(&tag, records, 120))
                    .await
                    .expect("append");
            }
            // Fetch sizes that cut mid-stream, one batch at a time and more.
            replicate(&leader, &follower, [1, 3000, 9000, 1 << 20][round as usize]).await;
        }
        assert!(leader.segment_base_offsets().len() > 3, "segments rolled");
        assert_eq!(follower.log_end_offset(), leader.log_end_offset());
        assert_eq!(
            follower.segment_base_offsets(),
            leader.segment_base_offsets()
        );
        assert_eq!(follower.leader_epochs(), leader.leader_epochs());
        assert_eq!(read_all(&follower, 0).await, read_all(&leader, 0).await);
        leader.close().await.expect("close");
        follower.close().await.expect("close");
        let suffixes = [".log", ".index", ".timeindex"];
        let leader_files = files(leader_dir.path(), &suffixes);
        assert!(!leader_files.is_empty());
        assert!(
            leader_files == files(follower_dir.path(), &suffixes),
            "segment files differ"
        );
        assert_eq!(
            epoch_file(follower_dir.path()),
            epoch_file(leader_dir.path())
        );
        assert_eq!(
            epoch_file(leader_dir.path()),
            "0\n4\n0 0\n3 120\n6 240\n9 360\n"
        );
    });
}

#[test]
fn append_replicated_refuses_going_back_and_keeps_a_compacted_leaders_gaps() {
    run(async {
        let (leader_dir, follower_dir) = (
            tempfile::tempdir().expect("t"),
            tempfile::tempdir().expect("t"),
        );
        let leader = two_epoch_leader(leader_dir.path(), LogConfig::default()).await;
        let (follower, _) = open(follower_dir.path(), LogConfig::default()).await;
        // Behind the log end is refused (a fetch answered twice), and a
        // call going back inside itself appends nothing.
        replicate(&leader, &follower, 1 << 20).await;
        let again = follower
            .append_replicated(fetch(&leader, 10, 1).await)
            .await;
        assert!(matches!(
            again,
            Err(StorageError::NonContiguousAppend {
                expected: 20,
                found: 10
            })
        ));
        let (other_dir, gapped_dir) = (
            tempfile::tempdir().expect("t"),
            tempfile::tempdir().expect("t"),
        );
        let (other, _) = open(other_dir.path(), LogConfig::default()).await;
        let mut backwards = BytesMut::from(&fetch(&leader, 4, 1).await[..]);
        backwards.extend_from_slice(&fetch(&leader, 0, 1).await);
        assert!(matches!(
            other.append_replicated(backwards.freeze()).await,
            Err(StorageError::NonContiguousAppend { .. })
        ));
        assert_eq!(other.log_end_offset(), 0, "nothing appended");
        // Forward gaps, as a compacted leader's emptied batches leave them,
        // are kept: before the first batch and between two of one call.
        let (gapped, _) = open(gapped_dir.path(), LogConfig::default()).await;
        let mut with_gaps = BytesMut::from(&fetch(&leader, 2, 1).await[..]);
        with_gaps.extend_from_slice(&fetch(&leader, 6, 1).await);
        let info = gapped
            .append_replicated(with_gaps.freeze())
            .await
            .expect("gaps kept")
            .expect("batches");
        assert!(info.base_offset >= 2 && info.last_offset >= 6, "{info:?}");
        gapped.wait_durable(&info).await.expect("durable");
        assert!(
            gapped_dir
                .path()
                .join(storage::checkpoint::CLEANER_CHECKPOINT_FILE)
                .exists(),
            "marked as a log with gaps"
        );
        let end = gapped.log_end_offset();
        drop(gapped); // a crash: recovery must keep the gapped batches
        let (reopened, _) = open(gapped_dir.path(), LogConfig::default()).await;
        assert_eq!(
            reopened.log_end_offset(),
            end,
            "gapped batches survive recovery"
        );
    });
}

#[test]
fn append_replicated_refuses_a_bad_crc_and_appends_nothing_of_that_call() {
    run(async {
        let (leader_dir, follower_dir) = (
            tempfile::tempdir().expect("t"),
            tempfile::tempdir().expect("t"),
        );
        let leader = two_epoch_leader(leader_dir.path(), LogConfig::default()).await;
        let (follower, _) = open(follower_dir.path(), LogConfig::default()).await;
        let mut bytes = BytesMut::from(&fetch(&leader, 0, 1 << 20).await[..]);
        // Corrupt a record byte of the last batch (epoch 2): the batches
        // before it, epoch 1's and epoch 2's first, are whole and good.
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        let refused = follower.append_replicated(bytes.freeze()).await;
        assert!(matches!(
            refused,
            Err(StorageError::InvalidBatch(BatchError::CrcMismatch { .. }))
        ));
        assert_eq!(follower.log_end_offset(), 0);
        assert!(follower.leader_epochs().is_empty(), "no epoch of that call");
        assert!(!follower_dir
            .path()
            .join(LEADER_EPOCH_CHECKPOINT_FILE)
            .exists());
        // The same fetch, uncorrupted, goes in.
        replicate(&leader, &follower, 1 << 20).await;
        assert_eq!(follower.leader_epochs(), epochs(&[(1, 0), (2, 10)]));
    });
}

#[test]
fn trailing_partial_batch_is_ignored() {
    run(async {
        let (leader_dir, follower_dir) = (
            tempfile::tempdir().expect("t"),
            tempfile::tempdir().expect("t"),
        );
        let leader = two_epoch_leader(leader_dir.path(), LogConfig::default()).await;
        let (follower, _) = open(follower_dir.path(), LogConfig::default()).await;
        let two = fetch(&leader, 0, 1).await.len() * 2;
        let all = fetch(&leader, 0, 1 << 20).await;
        for (cut, why) in [
            (0, "empty"),
            (30, "less than a header"),
            (two / 4, "half a batch"),
        ] {
            let none = follower.append_replicated(all.slice(..cut)).await;
            assert_eq!(none.expect("not an error"), None, "{why}");
        }
        let info = follower
            .append_replicated(all.slice(..two + two / 4))
            .await
            .expect("append")
            .expect("two whole batches");
        assert_eq!((info.base_offset, info.last_offset), (0, 3));
        assert_eq!(info.log_append_time_ms, None);
        assert_eq!(follower.log_end_offset(), 4);
        follower.wait_durable(&info).await.expect("durable");
        assert_eq!(follower.durable_end_offset(), 4);
        // Each batch is cached on its own: a read from the second gets it.
        let read = follower.read(2, 1).await.expect("read");
        let first = read.batches().next().expect("a batch");
        assert_eq!(BatchHeader::parse(first).expect("header").base_offset(), 2);
        assert_eq!(
            read_all(&follower, 0).await,
            read_all(&leader, 0).await[..2]
        );
    });
}

#[test]
fn truncate_to_the_divergence_point_then_replicate_trims_the_epoch_cache() {
    run(async {
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("t")).collect();
        // The old leader wrote epoch 2 over 10..20; the follower has all of
        // it. The new leader had only epoch 1 and now leads epoch 3 from 10.
        let old_leader = two_epoch_leader(dirs[0].path(), small_segments()).await;
        let (follower, _) = open(dirs[1].path(), small_segments()).await;
        replicate(&old_leader, &follower, 1 << 20).await;
        let (new_leader, _) = open(dirs[2].path(), small_segments()).await;
        let epoch_one = fetch_until(&old_leader, 0, 1 << 20, 10).await;
        let info = new_leader
            .append_replicated(epoch_one)
            .await
            .expect("append");
        assert_eq!(info.map(|i| i.last_offset), Some(9));
        new_leader.begin_leader_epoch(3).await.expect("begin");
        for i in 0..6 {
            let tag = format!("three{i}");
            new_leader.append(batch(&tag, 3, 40)).await.expect("append");
        }
        // OffsetsForLeaderEpoch(2) to the new leader says where to cut.
        let (epoch, end) = new_leader.end_offset_for_epoch(follower.leader_epoch());
        assert_eq!((epoch, end), (1, 10));
        follower.truncate_to(end).await.expect("truncate");
        assert_eq!(follower.log_end_offset(), 10);
        assert_eq!(follower.leader_epochs(), epochs(&[(1, 0)]));
        assert_eq!(epoch_file(dirs[1].path()), "0\n1\n1 0\n");
        replicate(&new_leader, &follower, 700).await;
        assert_eq!(follower.leader_epochs(), epochs(&[(1, 0), (3, 10)]));
        assert_eq!(follower.leader_epochs(), new_leader.leader_epochs());
        assert_eq!(read_all(&follower, 0).await, read_all(&new_leader, 0).await);
        // A truncation at the log end still drops an epoch begun there.
        follower.begin_leader_epoch(7).await.expect("begin");
        follower
            .truncate_to(follower.log_end_offset())
            .await
            .expect("truncate");
        assert_eq!(follower.leader_epoch(), 3);
        // Its stamp went with it: no batch claims an epoch the cache lacks.
        follower
            .append(batch("unled", 1, 10))
            .await
            .expect("append");
        let end = follower.log_end_offset();
        assert_eq!(stamped_epoch(&read_all(&follower, end - 1).await[0]), -1);
    });
}

#[test]
fn epoch_cache_survives_close_and_reopen() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let leader = two_epoch_leader(dir.path(), small_segments()).await;
        leader.close().await.expect("close");
        let (log, _) = open(dir.path(), small_segments()).await;
        assert_eq!(log.leader_epochs(), epochs(&[(1, 0), (2, 10)]));
        assert_eq!(log.end_offset_for_epoch(1), (1, 10));
        // The stamp is not remembered: the broker begins its epoch again.
        log.append(batch("after", 1, 10)).await.expect("append");
        let last = read_all(&log, 20).await;
        assert_eq!(stamped_epoch(&last[0]), -1);
    });
}

#[test]
fn crash_keeps_acknowledged_replicated_batches_and_a_consistent_cache() {
    run(async {
        let (leader_dir, follower_dir) = (
            tempfile::tempdir().expect("t"),
            tempfile::tempdir().expect("t"),
        );
        let leader = two_epoch_leader(leader_dir.path(), LogConfig::default()).await;
        // Write caching: what is not waited for stays in memory only.
        let caching = LogConfig {
            flush_messages: u64::MAX,
            flush_ms: i64::MAX,
            ..LogConfig::default()
        };
        let acked = {
            let (follower, _) = open(follower_dir.path(), caching.clone()).await;
            let info = follower
                .append_replicated(fetch(&leader, 0, 1 << 20).await)
                .await
                .expect("append")
                .expect("batches");
            follower
                .flush_to(info.last_offset + 1)
                .await
                .expect("durable");
            // Epoch 4 from 20: its entry is written, its batch never is.
            leader.begin_leader_epoch(4).await.expect("begin");
            leader.append(batch("four", 2, 30)).await.expect("append");
            let unsynced = follower
                .append_replicated(fetch(&leader, 20, 1).await)
                .await;
            assert_eq!(unsynced.expect("append").map(|i| i.base_offset), Some(20));
            assert_eq!(
                follower.leader_epochs(),
                epochs(&[(1, 0), (2, 10), (4, 20)])
            );
            assert_eq!(follower.durable_end_offset(), 20);
            read_all(&follower, 0).await[..10].to_vec()
            // Dropped without close: a crash.
        };
        let (follower, _) = open(follower_dir.path(), caching).await;
        assert_eq!(follower.log_end_offset(), 20);
        assert_eq!(read_all(&follower, 0).await, acked);
        assert_eq!(follower.leader_epochs(), epochs(&[(1, 0), (2, 10)]));
        assert_eq!(epoch_file(follower_dir.path()), "0\n2\n1 0\n2 10\n");
        // And it goes on from there.
        replicate(&leader, &follower, 1 << 20).await;
        assert_eq!(follower.leader_epochs(), leader.leader_epochs());
    });
}

#[test]
fn missing_epoch_checkpoint_opens_empty_and_a_corrupt_one_is_an_error() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let leader = two_epoch_leader(dir.path(), LogConfig::default()).await;
        leader.close().await.expect("close");
        let path = dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE);
        std::fs::remove_file(&path).expect("remove");
        let (log, _) = open(dir.path(), LogConfig::default()).await;
        assert!(log.leader_epochs().is_empty(), "a data dir from before");
        assert_eq!(log.leader_epoch(), -1);
        assert_eq!(log.log_end_offset(), 20);
        log.close().await.expect("close");
        std::fs::write(&path, "0\n3\n1 0\n").expect("corrupt");
        let opened = Log::open(dir.path(), crate::common::options(LogConfig::default())).await;
        assert!(matches!(opened, Err(StorageError::BadCheckpoint { .. })));
    });
}

#[test]
fn retention_moves_the_first_epoch_up_to_the_log_start() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let leader = two_epoch_leader(dir.path(), small_segments()).await;
        leader.begin_leader_epoch(3).await.expect("begin");
        for i in 0..60 {
            leader
                .append(batch(&format!("x{i}"), 2, 400))
                .await
                .expect("append");
        }
        leader.set_high_watermark(leader.log_end_offset());
        assert_eq!(leader.delete_records_before(5).await.expect("delete"), 5);
        assert_eq!(leader.leader_epochs(), epochs(&[(1, 5), (2, 10), (3, 20)]));
        let bases = leader.segment_base_offsets();
        assert!(bases.len() > 2 && bases[1] > 20, "{bases:?}");
        assert!(
            leader
                .delete_segments_before(bases[2])
                .await
                .expect("delete")
                > 0
        );
        assert_eq!(leader.leader_epochs(), epochs(&[(3, bases[2])]));
        assert_eq!(epoch_file(dir.path()), format!("0\n1\n3 {}\n", bases[2]));
    });
}

#[test]
fn truncate_fully_and_start_at_restarts_past_the_log_end_and_clears_epochs() {
    run(async {
        let (leader_dir, follower_dir) = (
            tempfile::tempdir().expect("t"),
            tempfile::tempdir().expect("t"),
        );
        let leader = two_epoch_leader(leader_dir.path(), small_segments()).await;
        let (follower, _) = open(follower_dir.path(), small_segments()).await;
        replicate(&leader, &follower, 1 << 20).await;
        // The leader's log now starts past everything the follower has.
        leader.begin_leader_epoch(3).await.expect("begin");
        for i in 0..60 {
            leader
                .append(batch(&format!("x{i}"), 2, 400))
                .await
                .expect("append");
        }
        leader.set_high_watermark(leader.log_end_offset());
        let start = leader.delete_records_before(100).await.expect("delete");
        assert!(matches!(
            follower.truncate_fully_and_start_at(-1).await,
            Err(StorageError::OffsetOutOfRange { .. })
        ));
        follower
            .truncate_fully_and_start_at(start)
            .await
            .expect("restart");
        assert_eq!(
            (follower.log_start_offset(), follower.log_end_offset()),
            (start, start)
        );
        assert!(follower.leader_epochs().is_empty());
        assert_eq!(epoch_file(follower_dir.path()), "0\n0\n");
        replicate(&leader, &follower, 5000).await;
        assert_eq!(follower.leader_epochs(), leader.leader_epochs());
        assert_eq!(
            read_all(&follower, start).await,
            read_all(&leader, start).await
        );
    });
}
