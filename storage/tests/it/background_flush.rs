//! The log's one background flusher, asked by the flush policy
//! (`flush.messages`, `flush.ms`), by write-behind and by the core's write
//! buffer. `Log::idle` waits for a background flush that is running or due,
//! so these tests wait on the log itself, never on a clock.

use crate::common::{batch, open, run};
use storage::LogConfig;

const HOUR_MS: i64 = 60 * 60 * 1000;

/// Write caching: neither `flush.messages` nor `flush.ms` bounds it.
fn write_caching() -> LogConfig {
    LogConfig {
        flush_messages: u64::MAX,
        flush_ms: i64::MAX,
        ..LogConfig::default()
    }
}

#[test]
fn write_caching_flushes_behind_before_the_buffer_fills() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = LogConfig {
            write_buffer_bytes_max: 64 * 1024,
            ..write_caching()
        };
        let (log, _) = open(dir.path(), config).await;
        // Under a quarter of the buffer: nothing asks for a flush.
        log.append_unsynced(batch("w0", 2, 1000))
            .await
            .expect("append");
        log.idle().await.expect("idle");
        assert_eq!(log.durable_end_offset(), 0);
        // ~20 KiB pending: past a quarter of the buffer, far from full.
        for i in 1..10 {
            log.append_unsynced(batch(&format!("w{i}"), 2, 1000))
                .await
                .expect("append");
        }
        log.idle().await.expect("idle");
        assert!(log.durable_end_offset() > 0, "no write-behind flush");
        log.close().await.expect("close");
    });
}

#[test]
fn flush_messages_count_flushes_in_the_background() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = LogConfig {
            flush_messages: 5,
            ..write_caching()
        };
        let (log, _) = open(dir.path(), config).await;
        for i in 0..4 {
            log.append_unsynced(batch(&format!("m{i}"), 1, 10))
                .await
                .expect("append");
        }
        log.idle().await.expect("idle");
        assert_eq!(log.durable_end_offset(), 0, "4 of 5 messages: no flush");
        log.append_unsynced(batch("m4", 1, 10))
            .await
            .expect("append");
        log.idle().await.expect("idle");
        assert_eq!(log.durable_end_offset(), 5, "the fifth message flushes");
        assert_eq!(log.stats().flushes, 1);
    });
}

/// Before one scheduler, a queued `flush.ms` flush made the log ignore the
/// message count until its timer fired.
#[test]
fn flush_messages_count_does_not_wait_for_a_pending_flush_ms_timer() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = LogConfig {
            flush_messages: 3,
            flush_ms: HOUR_MS,
            ..LogConfig::default()
        };
        let (log, _) = open(dir.path(), config).await;
        for i in 0..2 {
            log.append_unsynced(batch(&format!("t{i}"), 1, 10))
                .await
                .expect("append");
        }
        log.idle().await.expect("idle");
        assert_eq!(log.durable_end_offset(), 0, "flush.ms is an hour away");
        log.append_unsynced(batch("t2", 1, 10))
            .await
            .expect("append");
        log.idle().await.expect("idle");
        assert_eq!(log.durable_end_offset(), 3, "the count flushed at once");
        log.close().await.expect("close");
    });
}

#[test]
fn durable_policy_flushes_unsynced_appends_in_the_background() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, _) = open(dir.path(), LogConfig::default()).await;
        for i in 0..10 {
            log.append_unsynced(batch(&format!("u{i}"), 1, 10))
                .await
                .expect("append");
        }
        log.idle().await.expect("idle");
        assert_eq!(log.durable_end_offset(), 10, "nobody called flush");
        assert!(log.stats().flushes >= 1);
    });
}
