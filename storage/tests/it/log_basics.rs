use crate::common::{batch, batch_bytes, open, options, produced, read_all, run, small_segments};
use std::rc::Rc;
use storage::batch::BatchHeader;
use storage::{
    BatchError, CoreMemory, Faults, Log, LogConfig, LogOptions, ProducedBatch, StorageError,
    TimestampType,
};

#[test]
fn append_assigns_dense_offsets_and_read_returns_the_bytes() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, _) = open(dir.path(), LogConfig::default()).await;
        let mut expected = Vec::new();
        for i in 0..50 {
            let info = log
                .append(batch("a", 1 + i % 4, 100))
                .await
                .expect("append");
            assert_eq!(
                info.base_offset,
                expected.iter().map(|(_, n)| n).sum::<i64>()
            );
            expected.push((info.base_offset, (1 + i % 4) as i64));
        }
        assert_eq!(log.log_end_offset(), log.durable_end_offset());
        let all = read_all(&log, 0).await;
        assert_eq!(all.len(), 50);
        for (stored, (base, count)) in all.iter().zip(&expected) {
            let header = storage::batch::check_stored(stored).expect("valid stored batch");
            assert_eq!(header.base_offset(), *base);
            assert_eq!(header.last_offset() - header.base_offset() + 1, *count);
        }
        // A read from inside a batch starts with the batch that holds it.
        let (base, _) = expected[10];
        let read = log.read(base + 1, 1).await.expect("read");
        let first = read.batches().next().expect("one batch");
        assert_eq!(
            BatchHeader::parse(first).expect("header").base_offset(),
            base
        );
        assert_eq!(
            read.batches().count(),
            1,
            "max_bytes=1 still gives one whole batch"
        );
    });
}

#[test]
fn reopen_after_close_reads_everything_from_disk() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let written: Vec<Vec<u8>> = {
            let (log, _) = open(dir.path(), small_segments()).await;
            for i in 0..200 {
                log.append(batch(&format!("r{i}"), 3, 200))
                    .await
                    .expect("append");
            }
            assert!(log.segment_base_offsets().len() > 5, "segments rolled");
            let all = read_all(&log, 0).await;
            log.close().await.expect("close");
            all
        };
        let (log, report) = open(dir.path(), small_segments()).await;
        assert_eq!(report.truncated_bytes(), 0);
        assert_eq!(log.log_end_offset(), 600);
        assert_eq!(read_all(&log, 0).await, written);
        for offset in [0, 1, 299, 300, 599] {
            let read = log.read(offset, 1).await.expect("read");
            let header = BatchHeader::parse(read.batches().next().expect("batch")).expect("h");
            assert!(header.base_offset() <= offset && offset <= header.last_offset());
        }
        // Appends continue after the reopened tail.
        let info = log.append(batch("after", 2, 10)).await.expect("append");
        assert_eq!(info.base_offset, 600);
    });
}

#[test]
fn files_are_named_like_kafka() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, _) = open(dir.path(), small_segments()).await;
        for _ in 0..100 {
            log.append(batch("n", 2, 300)).await.expect("append");
        }
        log.close().await.expect("close");
        let second = log.segment_base_offsets()[1];
        for name in [
            "00000000000000000000.log".to_string(),
            "00000000000000000000.index".to_string(),
            "00000000000000000000.timeindex".to_string(),
            format!("{second:020}.log"),
            "recovery-point.checkpoint".to_string(),
        ] {
            assert!(dir.path().join(&name).exists(), "{name} missing");
        }
    });
}

#[test]
fn read_until_stops_before_the_bound_from_cache_and_from_disk() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut opts = options(small_segments());
        // Small enough that the first batches are read from disk.
        opts.memory = CoreMemory::new(8 * 1024);
        let (log, _) = Log::open(dir.path(), opts).await.expect("open");
        let mut bases = Vec::new();
        for i in 0..40 {
            let info = log
                .append(batch(&format!("u{i}"), 2, 500))
                .await
                .expect("append");
            bases.push(info.base_offset);
        }
        let end = log.log_end_offset();
        for (from, bound) in [(bases[0], bases[3]), (bases[36], bases[38])] {
            let read = log.read_until(from, 1 << 20, bound).await.expect("read");
            let last = read
                .batches()
                .map(|b| BatchHeader::parse(b).expect("header").last_offset())
                .max()
                .expect("some batches");
            assert_eq!(last, bound - 1, "from {from} bounded at {bound}");
            let unbounded = log.read(from, 1 << 20).await.expect("read");
            assert!(unbounded.total_bytes() > read.total_bytes());
        }
        // At the bound (and between it and the log end) there is nothing.
        let at = log
            .read_until(bases[3], 1 << 20, bases[3])
            .await
            .expect("read");
        assert!(at.is_empty());
        // Past the log end is out of range whatever the bound.
        assert!(log.read_until(end + 1, 1 << 20, end).await.is_err());
    });
}

#[test]
fn evicted_tail_cache_reads_come_from_disk() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut opts = options(small_segments());
        opts.memory = CoreMemory::new(8 * 1024);
        let memory = opts.memory.clone();
        let (log, _) = Log::open(dir.path(), opts).await.expect("open");
        let mut appended = Vec::new();
        for i in 0..100 {
            let info = log
                .append(batch(&format!("e{i}"), 2, 500))
                .await
                .expect("append");
            appended.push(info.base_offset);
        }
        assert!(
            memory.tail_cache_bytes() <= 8 * 1024 + 2048,
            "cache stays near its budget"
        );
        let all = read_all(&log, 0).await;
        assert_eq!(all.len(), 100);
        let read = log.read(0, 1).await.expect("read");
        assert!(
            matches!(read.chunks[0], storage::Chunk::Disk(_)),
            "old data comes from disk"
        );
    });
}

#[test]
fn out_of_range_and_bad_batches_are_typed_errors() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = LogConfig {
            max_message_bytes: 2000,
            ..LogConfig::default()
        };
        let (log, _) = open(dir.path(), config).await;
        log.append(batch("x", 1, 10)).await.expect("append");
        assert!(matches!(
            log.read(5, 100).await,
            Err(StorageError::OffsetOutOfRange { offset: 5, .. })
        ));
        assert!(log.read(1, 100).await.expect("read at end").is_empty());
        let err = log
            .append(batch("big", 1, 5000))
            .await
            .expect_err("too large");
        assert!(matches!(
            err,
            StorageError::InvalidBatch(BatchError::RecordTooLarge { .. })
        ));
        let mut corrupt = batch_bytes("c", 2, 10);
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        let err = ProducedBatch::new(corrupt).expect_err("bad crc");
        assert!(matches!(err, BatchError::CrcMismatch { .. }));
        assert_eq!(log.log_end_offset(), 1, "rejected batches take no offsets");
    });
}

#[test]
fn oversize_produced_batch_is_refused_by_append_with_record_too_large() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = LogConfig {
            max_message_bytes: 2000,
            ..LogConfig::default()
        };
        let (log, _) = open(dir.path(), config).await;
        let big = batch("big", 1, 5000);
        let size = big.len();
        let err = log.append_unsynced(big).await.expect_err("too large");
        assert!(
            matches!(
                err,
                StorageError::InvalidBatch(BatchError::RecordTooLarge { size: s, max: 2000 }) if s == size
            ),
            "{err}"
        );
        assert_eq!(log.log_end_offset(), 0, "no offsets taken");
        let fits = batch("fits", 1, 1000);
        assert!(fits.len() <= 2000);
        assert_eq!(log.append(fits).await.expect("append").base_offset, 0);
    });
}

#[test]
fn stored_batch_is_the_produced_bytes_with_their_base_offset() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, _) = open(dir.path(), LogConfig::default()).await;
        log.append(batch("first", 3, 10)).await.expect("append");
        let input = batch_bytes("second", 4, 100);
        let info = log.append(produced(&input)).await.expect("append");
        assert_eq!((info.base_offset, info.last_offset), (3, 6));
        let read = log.read(3, 1 << 20).await.expect("read");
        let stored = read.batches().next().expect("batch");
        assert_eq!(&stored[..8], &3i64.to_be_bytes(), "base offset written");
        assert_eq!(&stored[8..], &input[8..], "every other byte as produced");
        let header = storage::batch::check_stored(stored).expect("crc valid");
        assert_eq!(header.last_offset(), info.last_offset);
    });
}

#[test]
fn concurrent_appends_share_fdatasyncs() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, _) = open(dir.path(), LogConfig::default()).await;
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let log = log.clone();
                glommio::spawn_local(async move {
                    log.append(batch(&format!("g{i}"), 1, 100))
                        .await
                        .expect("append")
                })
            })
            .collect();
        let mut bases = Vec::new();
        for task in tasks {
            bases.push(task.await.base_offset);
        }
        bases.sort_unstable();
        assert_eq!(bases, (0..64).collect::<Vec<i64>>());
        let flushes = log.stats().flushes;
        assert!(
            flushes < 64,
            "group commit: {flushes} fdatasyncs for 64 appends"
        );
        assert_eq!(log.durable_end_offset(), 64);
    });
}

#[test]
fn fdatasync_error_poisons_the_log() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut opts = options(LogConfig::default());
        let faults = Faults::new();
        opts.faults = faults.clone();
        let (log, _) = Log::open(dir.path(), opts).await.expect("open");
        log.append(batch("ok", 1, 10)).await.expect("append");
        faults.fail_next_fdatasync();
        let err = log
            .append(batch("fails", 1, 10))
            .await
            .expect_err("sync fails");
        assert!(matches!(err, StorageError::Poisoned { .. }), "{err}");
        assert!(log.is_poisoned());
        // Never retried: later appends fail too, and the log directory is
        // offline (reads refused) until restart, as Kafka does.
        let err = log
            .append(batch("later", 1, 10))
            .await
            .expect_err("read-only");
        assert!(matches!(err, StorageError::Poisoned { .. }), "{err}");
        assert_eq!(log.durable_end_offset(), 1);
        let err = log.read(0, 100).await.expect_err("offline");
        assert!(matches!(err, StorageError::LogDirOffline { .. }), "{err}");
        drop(log);
        // A restart (a fresh directory state) recovers what was durable.
        let (log, _) = Log::open(dir.path(), options(LogConfig::default()))
            .await
            .expect("reopen");
        assert!(log.log_end_offset() >= 1);
        assert!(!log.read(0, 100).await.expect("read").is_empty());
    });
}

#[test]
fn an_io_error_of_one_log_takes_every_log_of_its_directory_offline_and_no_other() {
    run(async {
        let (a, b, c) = (
            tempfile::tempdir().expect("tempdir"),
            tempfile::tempdir().expect("tempdir"),
            tempfile::tempdir().expect("tempdir"),
        );
        let failing = storage::LogDirHealth::new(std::path::Path::new("/data/one"));
        let healthy = storage::LogDirHealth::new(std::path::Path::new("/data/two"));
        let faults = Faults::new();
        let opts = |dir: &std::sync::Arc<storage::LogDirHealth>, faults: Rc<Faults>| LogOptions {
            faults,
            log_dir: dir.clone(),
            ..options(LogConfig::default())
        };
        let (first, _) = Log::open(a.path(), opts(&failing, faults.clone()))
            .await
            .expect("open");
        let (neighbour, _) = Log::open(b.path(), opts(&failing, Faults::new()))
            .await
            .expect("open");
        let (elsewhere, _) = Log::open(c.path(), opts(&healthy, Faults::new()))
            .await
            .expect("open");
        // A neighbour with bytes appended and not yet written (write
        // caching): they can never be written now.
        let lagging_dir = tempfile::tempdir().expect("tempdir");
        let caching = LogConfig {
            flush_messages: u64::MAX,
            flush_ms: i64::MAX,
            ..LogConfig::default()
        };
        let (lagging, _) = Log::open(
            lagging_dir.path(),
            LogOptions {
                config: caching,
                ..opts(&failing, Faults::new())
            },
        )
        .await
        .expect("open");
        for log in [&first, &neighbour, &elsewhere] {
            log.append(batch("ok", 1, 10)).await.expect("append");
        }
        lagging
            .append(batch("cached", 1, 10))
            .await
            .expect("append");
        assert!(lagging.durable_end_offset() < lagging.log_end_offset());
        faults.fail_next_fdatasync();
        first
            .append(batch("fails", 1, 10))
            .await
            .expect_err("sync fails");
        assert!(failing.is_offline());
        assert!(!healthy.is_offline());
        let err = neighbour
            .append(batch("refused", 1, 10))
            .await
            .expect_err("its directory is offline");
        assert!(
            matches!(err, StorageError::LogDirOffline { ref dir, .. } if dir == "/data/one"),
            "{err}"
        );
        let err = neighbour.read(0, 100).await.expect_err("offline");
        assert!(matches!(err, StorageError::LogDirOffline { .. }), "{err}");
        assert!(!neighbour.is_poisoned(), "only the failing log is poisoned");
        // The lagging neighbour's flush fails and poisons it, so its
        // unwritten bytes stop holding the core's write buffer.
        let err = lagging
            .flush_to(lagging.log_end_offset())
            .await
            .expect_err("its directory is offline");
        assert!(matches!(err, StorageError::LogDirOffline { .. }), "{err}");
        assert!(lagging.is_poisoned());
        // The other directory's log goes on.
        let info = elsewhere
            .append(batch("goes on", 1, 10))
            .await
            .expect("append");
        assert_eq!(info.base_offset, 1);
        assert!(!elsewhere.read(0, 100).await.expect("read").is_empty());
    });
}

#[test]
fn an_offline_log_directory_keeps_its_segments_from_retention() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let health = storage::LogDirHealth::new(std::path::Path::new("/data/gone"));
        let config = LogConfig {
            segment_bytes: 1,
            retention_bytes: 0,
            ..LogConfig::default()
        };
        let (log, _) = Log::open(
            dir.path(),
            LogOptions {
                log_dir: health.clone(),
                ..options(config)
            },
        )
        .await
        .expect("open");
        for _ in 0..3 {
            log.append(batch("old", 1, 10)).await.expect("append");
        }
        let segments = |path: &std::path::Path| {
            std::fs::read_dir(path)
                .expect("dir")
                .filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".log"))
                })
                .count()
        };
        let before = segments(dir.path());
        assert!(before >= 3, "{before} segments");
        health.mark_offline("EIO");
        assert_eq!(log.enforce_retention(0).await.expect("skipped"), 0);
        let err = log.delete_segments_before(2).await.expect_err("offline");
        assert!(matches!(err, StorageError::LogDirOffline { .. }), "{err}");
        assert_eq!(segments(dir.path()), before, "nothing deleted");
    });
}

#[test]
fn log_append_time_overrides_timestamps() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = LogConfig {
            timestamp_type: TimestampType::LogAppendTime,
            ..LogConfig::default()
        };
        let (log, _) = open(dir.path(), config).await;
        let info = log.append(batch("t", 2, 10)).await.expect("append");
        let now = info.log_append_time_ms.expect("append time");
        let read = log.read(0, 1000).await.expect("read");
        let stored = read.batches().next().expect("batch");
        let header = storage::batch::check_stored(stored).expect("crc valid after rewrite");
        assert!(header.is_log_append_time());
        assert_eq!(header.max_timestamp.get(), now);
    });
}

#[test]
fn offset_for_timestamp_finds_the_first_record_at_or_after() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, _) = open(dir.path(), small_segments()).await;
        for i in 0..100i64 {
            let values: Vec<&[u8]> = vec![b"a", b"b", b"c"];
            // Record timestamps: 1000*i, 1000*i + 1, 1000*i + 2.
            let bytes = storage::batch::build_batch(&values, 1000 * i);
            log.append(produced(&bytes)).await.expect("append");
        }
        let cases = [
            (0, Some((0, 0))),
            (1, Some((1, 1))),
            (2500, Some((9, 3000))),
            (50_001, Some((151, 50_001))),
            (99_002, Some((299, 99_002))),
            (99_003, None),
        ];
        for (ts, expected) in cases {
            assert_eq!(
                log.offset_for_timestamp(ts).await.expect("lookup"),
                expected,
                "ts {ts}"
            );
        }
        log.close().await.expect("close");
        let (log, _) = open(dir.path(), small_segments()).await;
        assert_eq!(
            log.offset_for_timestamp(2500).await.expect("lookup"),
            Some((9, 3000))
        );
    });
}

#[test]
fn truncate_to_removes_the_tail_and_appends_continue() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, _) = open(dir.path(), small_segments()).await;
        for i in 0..100 {
            log.append(batch(&format!("t{i}"), 2, 300))
                .await
                .expect("append");
        }
        let before = read_all(&log, 0).await;
        log.set_high_watermark(200);
        // Offset 101 is inside the batch [100, 101]: the whole batch goes.
        log.truncate_to(101).await.expect("truncate");
        assert_eq!(log.log_end_offset(), 100);
        assert_eq!(log.high_watermark(), 100);
        assert_eq!(read_all(&log, 0).await, before[..50].to_vec());
        let info = log.append(batch("new", 1, 10)).await.expect("append");
        assert_eq!(info.base_offset, 100);
        log.close().await.expect("close");
        let (log, _) = open(dir.path(), small_segments()).await;
        assert_eq!(log.log_end_offset(), 101);
        assert_eq!(read_all(&log, 0).await[..50], before[..50]);
        log.truncate_to(0).await.expect("truncate fully");
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    });
}

#[test]
fn delete_removes_the_directory() {
    run(async {
        let parent = tempfile::tempdir().expect("tempdir");
        let dir = parent.path().join("topic-0");
        let (log, _) = open(&dir, LogConfig::default()).await;
        log.append(batch("d", 1, 1)).await.expect("append");
        log.delete().await.expect("delete");
        assert!(!dir.exists());
    });
}

#[test]
fn unsynced_appends_reach_disk_through_the_scheduled_flush() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, _) = open(dir.path(), LogConfig::default()).await;
        for i in 0..10 {
            log.append_unsynced(batch(&format!("u{i}"), 1, 10))
                .await
                .expect("append");
        }
        assert_eq!(log.log_end_offset(), 10);
        // The durable point moves without anyone calling flush: wait on it
        // with flush_to, which joins (not starts) the scheduled group commit.
        log.flush_to(10).await.expect("flush");
        assert_eq!(log.durable_end_offset(), 10);
    });
}

#[test]
fn clean_close_lets_reopen_skip_the_scan_and_a_crash_after_it_does_not() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, _) = open(dir.path(), small_segments()).await;
        for i in 0..30 {
            log.append(batch(&format!("c{i}"), 2, 300))
                .await
                .expect("append");
        }
        let before = read_all(&log, 0).await;
        log.close().await.expect("close");

        let (log, report) = open(dir.path(), small_segments()).await;
        let last = report.segments.last().expect("segments");
        assert!(
            !last.index_rebuilt,
            "clean close: last segment taken from its index"
        );
        assert_eq!(read_all(&log, 0).await, before);
        // Appends after the reopen, then a crash (no close): the checkpoint
        // no longer matches the segment's end, so it must be scanned.
        for i in 0..5 {
            log.append(batch(&format!("d{i}"), 2, 300))
                .await
                .expect("append");
        }
        let after = read_all(&log, 0).await;
        drop(log);
        let (log, report) = open(dir.path(), small_segments()).await;
        assert!(report.segments.last().expect("segments").index_rebuilt);
        assert_eq!(read_all(&log, 0).await, after);
        assert_eq!(log.log_end_offset(), 70);
    });
}

#[test]
fn relative_dir_works_like_an_absolute_one() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        // The same directory, relative to the test's working directory:
        // enough ".." to reach the root, then the absolute path's parts.
        let cwd = std::env::current_dir().expect("cwd");
        let mut relative = std::path::PathBuf::new();
        for _ in cwd.components().skip(1) {
            relative.push("..");
        }
        relative.push(dir.path().strip_prefix("/").expect("absolute tempdir"));
        assert!(relative.is_relative());
        let (log, _) = open(&relative.join("t-0"), small_segments()).await;
        assert!(log.dir().is_absolute());
        for i in 0..40 {
            log.append(batch(&format!("r{i}"), 2, 600))
                .await
                .expect("append across segment rolls");
        }
        assert!(log.segment_base_offsets().len() > 1, "segments rolled");
        log.close().await.expect("close");
        let (log, _) = open(&dir.path().join("t-0"), small_segments()).await;
        assert_eq!(log.log_end_offset(), 80);
    });
}

#[test]
fn a_compacted_log_refuses_a_batch_with_a_keyless_record_and_takes_keyed_ones() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = LogConfig {
            cleanup_policy: storage::CleanupPolicy::parse("compact").expect("policy"),
            ..LogConfig::default()
        };
        let (log, _) = open(dir.path(), config).await;
        for codec in [0i16, 1, 2, 3, 4] {
            let keyed = storage::compact::build_keyed_batch(
                &[(Some(b"k1"), Some(b"v")), (Some(b"k2"), None)],
                1,
                codec,
            );
            log.append(produced(&keyed)).await.expect("keyed records");
            let mixed = storage::compact::build_keyed_batch(
                &[(Some(b"k1"), Some(b"v")), (None, Some(b"no key"))],
                1,
                codec,
            );
            let refused = log.append(produced(&mixed)).await;
            assert!(
                matches!(
                    refused,
                    Err(StorageError::InvalidBatch(
                        BatchError::KeylessRecordInCompactedLog
                    ))
                ),
                "codec {codec}: {refused:?}"
            );
        }
        assert_eq!(log.log_end_offset(), 10, "refused batches took no offsets");
        // The same keyless batch is fine under delete.
        let (plain, _) = open(&dir.path().join("plain"), LogConfig::default()).await;
        let keyless = storage::compact::build_keyed_batch(&[(None, Some(b"v"))], 1, 0);
        plain
            .append(produced(&keyless))
            .await
            .expect("delete policy takes it");
    });
}
