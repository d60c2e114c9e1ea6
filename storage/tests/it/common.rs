use bytes::BytesMut;
use glommio::LocalExecutorBuilder;
use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use storage::batch::build_batch;
use storage::{CoreMemory, Faults, Log, LogConfig, LogOptions, ProducedBatch, RecoveryReport};

/// Runs `fut` to completion on a fresh glommio executor on this thread.
pub fn run<T: 'static, Fut: Future<Output = T> + 'static>(fut: Fut) -> T {
    LocalExecutorBuilder::default()
        .io_memory(2 << 20)
        .make()
        .expect("glommio executor (is RLIMIT_MEMLOCK too low?)")
        .run(fut)
}

pub fn options(config: LogConfig) -> LogOptions {
    LogOptions {
        config,
        memory: CoreMemory::new(64 << 20),
        faults: Rc::new(Faults::default()),
        log_dir: storage::LogDirHealth::new(std::path::Path::new("")),
    }
}

pub async fn open(dir: &Path, config: LogConfig) -> (Log, RecoveryReport) {
    Log::open(dir, options(config)).await.expect("open log")
}

/// A valid batch of `count` records whose values name `tag` and the index,
/// checked as the broker hands it to the log.
pub fn batch(tag: &str, count: usize, value_bytes: usize) -> ProducedBatch {
    produced(&batch_bytes(tag, count, value_bytes))
}

/// [`batch`]'s bytes, unchecked (to corrupt them).
pub fn batch_bytes(tag: &str, count: usize, value_bytes: usize) -> BytesMut {
    let values: Vec<Vec<u8>> = (0..count)
        .map(|i| {
            let mut v = format!("{tag}-{i}-").into_bytes();
            v.resize(value_bytes.max(v.len()), b'.');
            v
        })
        .collect();
    let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
    BytesMut::from(&build_batch(&refs, 1_700_000_000_000)[..])
}

/// `bytes` checked as a produced batch; they must be valid.
pub fn produced(bytes: &[u8]) -> ProducedBatch {
    ProducedBatch::new(BytesMut::from(bytes)).expect("a valid produced batch")
}

/// Reads every batch from `from` to the log end, in order.
pub async fn read_all(log: &Log, from: i64) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut offset = from;
    while offset < log.log_end_offset() {
        let read = log.read(offset, 256 * 1024).await.expect("read");
        assert!(!read.is_empty(), "read at {offset} returned nothing");
        for batch in read.batches() {
            let header = storage::batch::BatchHeader::parse(batch).expect("header");
            assert!(header.last_offset() >= offset);
            offset = header.last_offset() + 1;
            out.push(batch.to_vec());
        }
    }
    out
}

pub fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 16 * 1024,
        index_interval_bytes: 1024,
        ..LogConfig::default()
    }
}

/// Polls `fut` once and drops it, as the broker drops the handlers of a
/// closed connection: it stops at its first await that is not ready, which
/// for a durable append is the segment write of its flush. True if it was
/// still pending.
pub fn poll_once_then_drop(fut: impl Future) -> bool {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    matches!(fut.as_mut().poll(&mut cx), Poll::Pending)
}
