//! The core's memory bounds are shared by all its logs: the tail cache
//! evicts the oldest written batches whichever log holds them, and the write
//! buffer bound makes an append wait for other logs' unwritten bytes.

use crate::common::{batch, options, read_all, run};
use storage::{Chunk, CoreMemory, Log, LogConfig};

#[test]
fn idle_log_cache_is_reclaimed_by_a_busy_log() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let memory = CoreMemory::new(64 * 1024);
        let open = |name: &str| {
            let mut opts = options(LogConfig::default());
            opts.memory = memory.clone();
            let path = dir.path().join(name);
            async move { Log::open(&path, opts).await }
        };
        let (idle, _) = open("idle-0").await.expect("open");
        let (busy, _) = open("busy-0").await.expect("open");
        // The idle log fills most of the budget, then stops.
        for i in 0..20 {
            idle.append(batch(&format!("i{i}"), 2, 1000))
                .await
                .expect("append");
        }
        assert_eq!(idle.cache_start_offset(), 0, "all of it cached");
        // The busy log keeps appending; its batches are the newest.
        for i in 0..100 {
            busy.append(batch(&format!("b{i}"), 2, 1000))
                .await
                .expect("append");
        }
        assert!(
            memory.tail_cache_bytes() <= 64 * 1024 + 4096,
            "core stays near its budget: {memory:?}"
        );
        assert_eq!(
            idle.cache_start_offset(),
            idle.log_end_offset(),
            "the idle log's older batches went first"
        );
        assert!(
            busy.cache_start_offset() > 0 && busy.cache_start_offset() < busy.log_end_offset(),
            "the busy log keeps its newest batches cached"
        );
        let read = idle.read(0, 1).await.expect("read");
        assert!(matches!(read.chunks[0], Chunk::Disk(_)));
        assert_eq!(read_all(&idle, 0).await.len(), 20);
    });
}

/// Two write-caching logs (`flush.ms` as given) with per-log buffers far
/// larger than their core's 256 KiB, the first holding ~150 KiB unwritten:
/// under a quarter of its own buffer, so no write-behind starts.
async fn two_logs_with_unwritten_bytes(
    dir: &std::path::Path,
    flush_ms: i64,
) -> (std::rc::Rc<CoreMemory>, Log, Log) {
    let config = LogConfig {
        flush_messages: u64::MAX,
        flush_ms,
        write_buffer_bytes_max: 16 << 20,
        ..LogConfig::default()
    };
    let memory = CoreMemory::with_limits(64 << 20, 256 * 1024);
    let open = |name: &str| {
        let mut opts = options(config.clone());
        opts.memory = memory.clone();
        let path = dir.join(name);
        async move { Log::open(&path, opts).await }
    };
    let (first, _) = open("first-0").await.expect("open");
    let (second, _) = open("second-0").await.expect("open");
    for i in 0..15 {
        first
            .append_unsynced(batch(&format!("f{i}"), 10, 1000))
            .await
            .expect("append");
    }
    (memory, first, second)
}

#[test]
fn core_write_buffer_bound_flushes_other_logs() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (memory, first, second) = two_logs_with_unwritten_bytes(dir.path(), i64::MAX).await;
        let unwritten = memory.write_buffer_bytes();
        assert!(unwritten > 128 * 1024, "{memory:?}");
        assert_eq!(first.durable_end_offset(), 0, "nothing written yet");
        // This append does not fit beside them: it waits for a flush.
        let big = batch("s", 120, 1000);
        assert!(unwritten + big.len() > 256 * 1024);
        second.append_unsynced(big).await.expect("append");
        assert_eq!(
            first.durable_end_offset(),
            first.log_end_offset(),
            "the other log's bytes were written to make room"
        );
        assert!(memory.write_buffer_bytes() <= 256 * 1024, "{memory:?}");
        first.close().await.expect("close");
        second.close().await.expect("close");
        assert_eq!(memory.write_buffer_bytes(), 0, "closed logs hold nothing");
    });
}

/// The core's bound asks each log's one flusher for a flush now; a flusher
/// waiting for an hour-long `flush.ms` is woken for it.
#[test]
fn core_write_buffer_bound_wakes_a_flusher_waiting_for_flush_ms() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_memory, first, second) =
            two_logs_with_unwritten_bytes(dir.path(), 60 * 60 * 1000).await;
        first.idle().await.expect("idle");
        assert_eq!(first.durable_end_offset(), 0, "its flush is an hour away");
        second
            .append_unsynced(batch("s", 120, 1000))
            .await
            .expect("append");
        assert_eq!(
            first.durable_end_offset(),
            first.log_end_offset(),
            "the waiting flusher was woken to make room"
        );
        first.close().await.expect("close");
        second.close().await.expect("close");
    });
}
