//! Recovery from real corrupted bytes on disk, named subject_condition.

use crate::common::{batch, open, read_all, run, small_segments};
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use storage::LogConfig;

/// Appends `count` durable batches without closing (as a crash leaves it)
/// and returns each batch's logical (start, len) in the first segment.
async fn write_unclosed(dir: &Path, count: usize) -> Vec<(u64, u64)> {
    let (log, _) = open(dir, LogConfig::default()).await;
    let mut spans = Vec::new();
    let mut at = 0;
    for i in 0..count {
        let b = batch(&format!("c{i}"), 2, 100);
        let len = b.len() as u64;
        log.append(b).await.expect("append");
        spans.push((at, len));
        at += len;
    }
    spans
}

fn first_log(dir: &Path) -> std::path::PathBuf {
    dir.join("00000000000000000000.log")
}

fn flip_byte(path: &Path, position: u64) {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open");
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, position).expect("read");
    byte[0] ^= 0x5a;
    file.write_all_at(&byte, position).expect("write");
}

#[test]
fn tail_truncated_mid_batch() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let spans = write_unclosed(dir.path(), 20).await;
        let (last_start, last_len) = spans[19];
        let file = OpenOptions::new()
            .write(true)
            .open(first_log(dir.path()))
            .expect("open");
        file.set_len(last_start + last_len / 2).expect("truncate");
        let (log, report) = open(dir.path(), LogConfig::default()).await;
        assert_eq!(
            log.log_end_offset(),
            38,
            "the torn batch [38, 39] is dropped"
        );
        assert_eq!(report.truncated_bytes(), last_len / 2);
        assert_eq!(read_all(&log, 0).await.len(), 19);
        assert_eq!(
            log.append(batch("next", 1, 1))
                .await
                .expect("append")
                .base_offset,
            38
        );
    });
}

#[test]
fn tail_bytes_flipped() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let spans = write_unclosed(dir.path(), 20).await;
        let (last_start, last_len) = spans[19];
        flip_byte(&first_log(dir.path()), last_start + last_len - 3);
        let (log, report) = open(dir.path(), LogConfig::default()).await;
        assert_eq!(log.log_end_offset(), 38);
        assert!(report.segments[0].corrupt);
        assert!(report.segments[0]
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("crc")));
    });
}

#[test]
fn middle_batch_flipped_cuts_the_log_there() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let spans = write_unclosed(dir.path(), 20).await;
        let (start, _) = spans[5];
        flip_byte(&first_log(dir.path()), start + 30);
        let (log, _) = open(dir.path(), LogConfig::default()).await;
        assert_eq!(
            log.log_end_offset(),
            10,
            "everything from the bad batch on is gone"
        );
        assert_eq!(read_all(&log, 0).await.len(), 5);
    });
}

#[test]
fn tail_zero_padding_is_not_corruption() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        write_unclosed(dir.path(), 3).await;
        let (log, report) = open(dir.path(), LogConfig::default()).await;
        assert_eq!(log.log_end_offset(), 6);
        assert!(report.segments.iter().all(|s| !s.corrupt), "{report:?}");
    });
}

#[test]
fn tail_page_rewrite_keeps_earlier_bytes() {
    // Many small durable appends each rewrite the same partial page.
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        write_unclosed(dir.path(), 100).await;
        let (log, report) = open(dir.path(), LogConfig::default()).await;
        assert_eq!(log.log_end_offset(), 200);
        assert!(report.segments.iter().all(|s| !s.corrupt));
        assert_eq!(read_all(&log, 0).await.len(), 100);
    });
}

/// Writes a closed log of several segments; returns its batches.
async fn write_closed(dir: &Path) -> Vec<Vec<u8>> {
    let (log, _) = open(dir, small_segments()).await;
    for i in 0..100 {
        log.append(batch(&format!("s{i}"), 2, 300))
            .await
            .expect("append");
    }
    let all = read_all(&log, 0).await;
    log.close().await.expect("close");
    all
}

#[test]
fn index_deleted() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let all = write_closed(dir.path()).await;
        std::fs::remove_file(dir.path().join("00000000000000000000.index")).expect("rm");
        let (log, report) = open(dir.path(), small_segments()).await;
        assert!(report.segments[0].index_rebuilt);
        assert!(!report.segments[1].index_rebuilt);
        assert_eq!(read_all(&log, 0).await, all);
        let read = log.read(5, 1).await.expect("read via rebuilt index");
        assert!(read.batches().next().is_some());
    });
}

#[test]
fn index_garbage() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let all = write_closed(dir.path()).await;
        let garbage: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(97)).collect();
        std::fs::write(dir.path().join("00000000000000000000.index"), garbage).expect("write");
        std::fs::write(dir.path().join("00000000000000000000.timeindex"), [1, 2, 3]).expect("w");
        let (log, report) = open(dir.path(), small_segments()).await;
        assert!(report.segments[0].index_rebuilt);
        assert_eq!(read_all(&log, 0).await, all);
        assert!(log.offset_for_timestamp(0).await.expect("lookup").is_some());
    });
}

#[test]
fn checkpoint_missing_rescans_every_segment() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let all = write_closed(dir.path()).await;
        std::fs::remove_file(dir.path().join("recovery-point.checkpoint")).expect("rm");
        let (log, report) = open(dir.path(), small_segments()).await;
        assert!(report
            .segments
            .iter()
            .all(|s| s.index_rebuilt && !s.corrupt));
        assert_eq!(read_all(&log, 0).await, all);
    });
}

#[test]
fn middle_segment_corrupt_drops_later_segments() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let all = write_closed(dir.path()).await;
        std::fs::remove_file(dir.path().join("recovery-point.checkpoint")).expect("rm");
        flip_byte(&first_log(dir.path()), 2000);
        let (log, report) = open(dir.path(), small_segments()).await;
        assert!(report.segments[0].corrupt);
        assert!(!report.segments_deleted.is_empty());
        assert_eq!(log.segment_base_offsets(), vec![0]);
        let kept = read_all(&log, 0).await;
        assert!(!kept.is_empty() && kept.len() < all.len());
        assert_eq!(kept[..], all[..kept.len()]);
    });
}

#[test]
fn checkpoint_garbage_is_an_error_not_a_panic() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        write_closed(dir.path()).await;
        std::fs::write(dir.path().join("recovery-point.checkpoint"), "9\nxx\n").expect("write");
        let result = storage::Log::open(dir.path(), crate::common::options(small_segments())).await;
        assert!(matches!(
            result,
            Err(storage::StorageError::BadCheckpoint { .. })
        ));
    });
}

/// A read serves a batch as stored, without checking its CRC again, as
/// Kafka's fetch path does (the CRC was checked on the way in; consumers
/// check it too): a byte flipped under a running log past its tail cache
/// reaches the fetcher instead of stopping it at that offset for good,
/// while `ReadBatches::batches` (the log's own record readers) stops there.
#[test]
fn batch_flipped_while_open_is_read_as_stored() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut opts = crate::common::options(LogConfig::default());
        opts.memory = storage::CoreMemory::new(16 * 1024);
        let (log, _) = storage::Log::open(dir.path(), opts).await.expect("open");
        let mut spans = Vec::new();
        let mut at = 0;
        for i in 0..40 {
            let b = batch(&format!("c{i}"), 2, 500);
            spans.push((at, b.len() as u64));
            at += b.len() as u64;
            log.append(b).await.expect("append");
        }
        assert!(log.cache_start_offset() > 12, "batch 5 is read from disk");
        let (start, len) = spans[5];
        let mut stored = vec![0u8; len as usize];
        let file = std::fs::File::open(first_log(dir.path())).expect("open segment");
        file.read_exact_at(&mut stored, start).expect("read");
        // Inside the records, which the CRC covers.
        flip_byte(&first_log(dir.path()), start + 100);
        stored[100] ^= 0x5a;

        let read = log.read(10, 1).await.expect("read");
        let served: Vec<u8> = read.chunks.iter().flat_map(|c| c.iter().copied()).collect();
        assert_eq!(&served[..], &stored[..], "served as stored");
        assert!(storage::batch::check_stored(&served).is_err());
        // The log's own readers of records still refuse it.
        assert_eq!(read.batches().count(), 0);
    });
}
