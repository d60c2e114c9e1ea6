//! What `broker/` codes against: the produce path through `ProducedBatch`,
//! `append_unsynced` and `wait_durable`, and every public `Log` method and
//! crate-root export it uses (a removed or renamed one fails to compile
//! here first).

use crate::common::{batch_bytes, open, run};
use bytes::BytesMut;
use storage::batch::BatchHeader;
use storage::{
    AppendInfo, BatchError, Chunk, CoreMemory, Event, Faults, Log, LogConfig, LogOptions,
    ProducedBatch, ReadBatches, StorageError,
};

#[test]
fn acks_all_under_the_durable_default_resolves_after_the_fdatasync() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, _) = open(dir.path(), LogConfig::default()).await;
        assert!(log.is_durable());
        let batch = ProducedBatch::new(batch_bytes("a", 3, 10)).expect("valid");
        assert_eq!(
            (batch.producer_id(), batch.records_count()),
            (-1, 3),
            "the broker's idempotence check reads these"
        );
        let info: AppendInfo = log.append_unsynced(batch).await.expect("append");
        assert_eq!((info.base_offset, info.last_offset), (0, 2));
        assert_eq!(log.log_end_offset(), 3, "readable before durable");
        log.wait_durable(&info).await.expect("durable");
        assert!(log.durable_end_offset() >= 3);
    });
}

#[test]
fn acks_all_under_write_caching_resolves_before_the_flush() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = LogConfig {
            flush_messages: u64::MAX,
            flush_ms: i64::MAX,
            ..LogConfig::default()
        };
        let (log, _) = open(dir.path(), config).await;
        assert!(!log.is_durable());
        let batch = ProducedBatch::new(batch_bytes("w", 2, 10)).expect("valid");
        let info = log.append_unsynced(batch).await.expect("append");
        log.wait_durable(&info).await.expect("at once");
        assert_eq!(log.durable_end_offset(), 0, "nothing fdatasynced");
        assert_eq!(log.stats().flushes, 0);
        log.close().await.expect("close writes it");
        assert_eq!(log.durable_end_offset(), 2);
    });
}

#[test]
fn a_refused_batch_is_a_batch_error_before_the_log_sees_it() {
    let mut bytes = batch_bytes("r", 1, 10);
    bytes[20] ^= 1; // the stored CRC field
    let err: BatchError = ProducedBatch::new(bytes).expect_err("bad crc");
    let err: StorageError = err.into();
    assert!(matches!(err, StorageError::InvalidBatch(_)));
}

/// Compiles only while every method and export the broker uses exists with
/// these shapes; not run.
#[allow(dead_code)]
async fn broker_uses(log: Log, dir: &std::path::Path, raw: BytesMut) -> storage::Result<()> {
    let options = LogOptions {
        config: LogConfig::default(),
        memory: CoreMemory::new(1 << 20),
        faults: std::rc::Rc::new(Faults::default()),
        log_dir: storage::LogDirHealth::new(std::path::Path::new("")),
    };
    let (_opened, _report) = Log::open(dir, options).await?;
    let _: &std::path::Path = log.dir();
    let _: [i64; 4] = [
        log.log_start_offset(),
        log.log_end_offset(),
        log.durable_end_offset(),
        log.high_watermark(),
    ];
    log.set_high_watermark(0);
    let _: u64 = log.size_bytes();
    let _: Vec<i64> = log.segment_base_offsets();
    log.set_config(log.config());
    let _: bool = log.is_durable() || log.is_poisoned();
    let _ = log.stats();
    let info: AppendInfo = log.append(ProducedBatch::new(raw.clone())?).await?;
    let _: AppendInfo = log.append_unsynced(ProducedBatch::new(raw)?).await?;
    log.wait_durable(&info).await?;
    log.flush().await?;
    log.flush_to(info.last_offset + 1).await?;
    log.roll().await?;
    let read: ReadBatches = log.read(0, 1 << 20).await?;
    for chunk in &read.chunks {
        let _ = matches!(chunk, Chunk::Memory(_) | Chunk::Disk(_));
    }
    for batch in read.batches() {
        let _ = BatchHeader::parse(batch)?.last_offset();
    }
    let _: Option<(i64, i64)> = log.offset_for_timestamp(0).await?;
    log.truncate_to(0).await?;
    let _: usize = log.enforce_retention(0).await? + log.delete_segments_before(0).await?;
    log.idle().await?;
    log.close().await?;
    let _ = Event::default();
    log.delete().await
}
