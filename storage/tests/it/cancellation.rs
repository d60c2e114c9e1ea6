//! A caller may drop an append, a roll or a close at any await (the broker
//! cancels the handlers of a connection that goes away). The log's files and
//! its in-memory state must agree afterwards: the dropped operation either
//! finishes on its own or never started.

use crate::common::{batch, open, poll_once_then_drop, read_all, run, small_segments};
use storage::LogConfig;

#[test]
fn append_dropped_mid_flush_keeps_the_segment_consistent() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let written = {
            let (log, _) = open(dir.path(), LogConfig::default()).await;
            log.append(batch("first", 3, 700)).await.expect("append");
            assert!(
                poll_once_then_drop(log.append(batch("dropped", 2, 900))),
                "the append waits for its flush"
            );
            log.append(batch("after", 4, 500)).await.expect("append");
            assert_eq!(log.durable_end_offset(), log.log_end_offset());
            let all = read_all(&log, 0).await;
            assert_eq!(all.len(), 3, "the dropped append was assigned offsets");
            // Close without sealing first, as a crash would: reopen must
            // recover every batch from the segment bytes alone.
            all
        };
        let (log, report) = open(dir.path(), LogConfig::default()).await;
        // The last write's zero padding is cut on reopen; anything else
        // would be a torn or misplaced batch.
        assert!(
            report.segments.iter().all(|s| !s.corrupt),
            "segment bytes are consistent: {report:?}"
        );
        assert_eq!(log.log_end_offset(), 9);
        assert_eq!(read_all(&log, 0).await, written);
    });
}

#[test]
fn roll_dropped_mid_way_keeps_appends_in_order() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let written = {
            let (log, _) = open(dir.path(), small_segments()).await;
            for i in 0..10 {
                log.append(batch(&format!("r{i}"), 2, 600))
                    .await
                    .expect("append");
            }
            assert!(poll_once_then_drop(log.roll()), "the roll waits for I/O");
            for i in 10..40 {
                log.append(batch(&format!("r{i}"), 2, 600))
                    .await
                    .expect("append");
            }
            let all = read_all(&log, 0).await;
            log.close().await.expect("close");
            all
        };
        assert_eq!(written.len(), 40);
        let (log, report) = open(dir.path(), small_segments()).await;
        assert_eq!(report.truncated_bytes(), 0);
        assert_eq!(log.log_end_offset(), 80);
        assert_eq!(read_all(&log, 0).await, written);
    });
}
