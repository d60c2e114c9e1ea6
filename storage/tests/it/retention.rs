use crate::common::{batch, open, read_all, run, small_segments};
use storage::{CleanupPolicy, LogConfig};

#[test]
fn retention_bytes_deletes_oldest_whole_segments() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = LogConfig {
            retention_bytes: 40 * 1024,
            ..small_segments()
        };
        let (log, _) = open(dir.path(), config).await;
        for i in 0..200 {
            log.append(batch(&format!("b{i}"), 2, 300))
                .await
                .expect("append");
        }
        let before = log.segment_base_offsets();
        let deleted = log
            .enforce_retention(i64::MAX / 2)
            .await
            .expect("retention");
        assert!(deleted > 0);
        let after = log.segment_base_offsets();
        assert_eq!(after.len(), before.len() - deleted);
        assert_eq!(log.log_start_offset(), after[0]);
        assert!(
            log.size_bytes() <= 40 * 1024 + 16 * 1024,
            "{} bytes left",
            log.size_bytes()
        );
        assert!(!dir.path().join("00000000000000000000.log").exists());
        let remaining = read_all(&log, log.log_start_offset()).await;
        assert_eq!(remaining.len() as i64, (400 - log.log_start_offset()) / 2);
        assert!(
            log.read(0, 100).await.is_err(),
            "deleted offsets are out of range"
        );
        log.close().await.expect("close");
        let (log, _) = open(dir.path(), LogConfig::default()).await;
        assert_eq!(log.log_start_offset(), after[0]);
    });
}

#[test]
fn retention_ms_deletes_segments_whose_newest_record_is_old() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = LogConfig {
            retention_ms: 60_000,
            ..small_segments()
        };
        let (log, _) = open(dir.path(), config).await;
        for i in 0..100i64 {
            let values: Vec<&[u8]> = vec![&[7u8; 400]; 2];
            let bytes = storage::batch::build_batch(&values, i * 1000);
            log.append(crate::common::produced(&bytes))
                .await
                .expect("append");
        }
        // At now = 100 s, records older than 40 s have expired: every
        // segment whose newest timestamp is < 40 s goes, the active one stays.
        let deleted = log.enforce_retention(100_000).await.expect("retention");
        assert!(deleted > 0);
        let start = log.log_start_offset();
        let first = log.read(start, 1).await.expect("read");
        let header =
            storage::batch::BatchHeader::parse(first.batches().next().expect("b")).expect("header");
        assert!(
            header.max_timestamp.get() >= 30_000,
            "kept segment is recent enough"
        );
        assert!(
            log.enforce_retention(i64::MAX / 2)
                .await
                .expect("retention")
                > 0
        );
        assert_eq!(
            log.segment_base_offsets().len(),
            1,
            "active segment is never deleted"
        );
    });
}

#[test]
fn retention_leaves_a_compact_only_log_alone_and_applies_with_compact_delete() {
    run(async {
        for (policy, deletes) in [("compact", false), ("compact,delete", true)] {
            let dir = tempfile::tempdir().expect("tempdir");
            let config = LogConfig {
                retention_bytes: 40 * 1024,
                retention_ms: 1,
                cleanup_policy: CleanupPolicy::parse(policy).expect("policy"),
                ..small_segments()
            };
            let (log, _) = open(dir.path(), config).await;
            let value = [7u8; 300];
            for i in 0..100 {
                let key = format!("c{i}");
                let records = [(Some(key.as_bytes()), Some(&value[..])); 2];
                let keyed = storage::compact::build_keyed_batch(&records, 1, 0);
                log.append(crate::common::produced(&keyed))
                    .await
                    .expect("append");
            }
            let deleted = log
                .enforce_retention(i64::MAX / 2)
                .await
                .expect("retention");
            assert_eq!(deleted > 0, deletes, "{policy}");
            assert_eq!(log.log_start_offset() > 0, deletes, "{policy}");
        }
    });
}

#[test]
fn delete_segments_before_keeps_every_segment_holding_a_later_offset() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, _) = open(dir.path(), small_segments()).await;
        for i in 0..200 {
            log.append(batch(&format!("b{i}"), 2, 300))
                .await
                .expect("append");
        }
        let bases = log.segment_base_offsets();
        assert!(bases.len() > 3, "several segments: {bases:?}");
        // An offset inside the third segment: the first two go, the third
        // (which holds it) stays.
        let cut = bases[2] + 1;
        assert_eq!(log.delete_segments_before(cut).await.expect("delete"), 2);
        assert_eq!(log.log_start_offset(), bases[2]);
        assert_eq!(log.segment_base_offsets(), bases[2..].to_vec());
        let remaining = read_all(&log, log.log_start_offset()).await;
        assert_eq!(remaining.len() as i64, (400 - bases[2]) / 2);
        // Past the log end it never deletes the active segment.
        log.delete_segments_before(i64::MAX).await.expect("delete");
        assert_eq!(log.segment_base_offsets().len(), 1);
        assert_eq!(log.log_end_offset(), 400);
        log.close().await.expect("close");
        // The new start survives a reopen.
        let (log, _) = open(dir.path(), small_segments()).await;
        assert_eq!(log.log_start_offset(), *bases.last().expect("bases"));
        log.close().await.expect("close");
    });
}

#[test]
fn delete_records_before_moves_the_log_start_and_survives_a_reopen() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, _) = open(dir.path(), small_segments()).await;
        for i in 0..200 {
            log.append(batch(&format!("b{i}"), 2, 300))
                .await
                .expect("append");
        }
        log.set_high_watermark(log.log_end_offset());
        let bases = log.segment_base_offsets();
        assert!(bases.len() > 3, "several segments: {bases:?}");
        // Inside the third segment: the start is exactly the offset asked
        // for, and the two segments wholly below it are gone.
        let cut = bases[2] + 3;
        assert_eq!(log.delete_records_before(cut).await.expect("delete"), cut);
        assert_eq!(log.log_start_offset(), cut);
        assert_eq!(log.segment_base_offsets(), bases[2..].to_vec());
        assert!(log.read(cut - 1, 100).await.is_err(), "below the start");
        assert!(log.read(cut, 100).await.is_ok());
        // Lower than the start: nothing changes.
        assert_eq!(log.delete_records_before(1).await.expect("delete"), cut);
        // Above the high watermark: out of range, nothing changes.
        let above = log.delete_records_before(401).await;
        assert!(
            matches!(above, Err(storage::StorageError::OffsetOutOfRange { .. })),
            "{above:?}"
        );
        assert_eq!(log.log_start_offset(), cut);
        log.close().await.expect("close");
        let (log, _) = open(dir.path(), small_segments()).await;
        assert_eq!(log.log_start_offset(), cut);
        assert!(
            log.read(cut - 1, 100).await.is_err(),
            "still below the start"
        );
        // Up to the log end: every sealed segment goes, the log is empty
        // from there and appends continue at the same offsets.
        log.set_high_watermark(log.log_end_offset());
        assert_eq!(log.delete_records_before(400).await.expect("delete"), 400);
        assert_eq!(log.segment_base_offsets().len(), 1);
        let info = log.append(batch("after", 1, 10)).await.expect("append");
        assert_eq!(info.base_offset, 400);
        log.close().await.expect("close");
    });
}
