//! Log cleaner throughput (not a test): writes TOTAL_MIB of keyed records
//! (KEYS distinct keys, in a fixed pseudo-random order, VALUE_BYTES values,
//! batches of about 256 KiB, codec CODEC: 0 none, 1 gzip, 2 snappy, 3 lz4,
//! 4 zstd), seals them, then cleans until no pass is due. Prints one JSON
//! line: MiB of sealed log cleaned per second of wall time, the bytes before
//! and after, passes, the segment bytes the passes read (a later pass
//! reads the cleaned start again), and the executor's CPU time.
//!
//! cargo run --release -p storage --example clean_bench -- DIR TOTAL_MIB KEYS VALUE_BYTES CODEC

use glommio::LocalExecutorBuilder;
use std::rc::Rc;
use std::time::Instant;
use storage::compact::{build_keyed_batch, KeyValue};
use storage::{CleanupPolicy, CoreMemory, Faults, Log, LogConfig, LogOptions, ProducedBatch};

const BATCH_BYTES: usize = 256 * 1024;
const T0: i64 = 1_700_000_000_000;

fn arg(n: usize, default: &str) -> String {
    std::env::args()
        .nth(n)
        .unwrap_or_else(|| default.to_string())
}

fn main() -> anyhow::Result<()> {
    let dir = std::path::PathBuf::from(arg(1, "/tmp/sluice-clean-bench"));
    let total_mib: usize = arg(2, "256").parse()?;
    let keys: u64 = arg(3, "10000").parse()?;
    let value_bytes: usize = arg(4, "100").parse()?;
    let codec: i16 = arg(5, "0").parse()?;
    let _ = std::fs::remove_dir_all(&dir);
    LocalExecutorBuilder::default()
        .io_memory(64 << 20)
        .make()
        .map_err(|e| anyhow::anyhow!("glommio executor: {e}"))?
        .run(async move { bench(dir, total_mib, keys, value_bytes, codec).await })
}

async fn bench(
    dir: std::path::PathBuf,
    total_mib: usize,
    keys: u64,
    value_bytes: usize,
    codec: i16,
) -> anyhow::Result<()> {
    let config = LogConfig {
        cleanup_policy: CleanupPolicy {
            delete: false,
            compact: true,
        },
        segment_bytes: 64 << 20,
        max_message_bytes: 4 << 20,
        write_buffer_bytes_max: 16 << 20,
        ..LogConfig::default()
    };
    let options = LogOptions {
        config,
        memory: CoreMemory::new(storage::limits::TAIL_CACHE_BYTES_DEFAULT_MAX),
        faults: Rc::new(Faults::default()),
        log_dir: storage::LogDirHealth::new(std::path::Path::new("")),
    };
    let (log, _) = Log::open(&dir, options).await?;
    let per_batch = (BATCH_BYTES / (value_bytes + 24)).max(1);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut written = 0usize;
    while written < total_mib << 20 {
        let names: Vec<String> = (0..per_batch)
            .map(|_| {
                // xorshift: a fixed, cheap pseudo-random key order.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                format!("key-{:012}", state % keys)
            })
            .collect();
        // Values of hex digits from the same generator: about 2:1 for the
        // codecs, as text payloads often are.
        let values: Vec<Vec<u8>> = (0..per_batch)
            .map(|_| {
                (0..value_bytes)
                    .map(|i| {
                        if i % 16 == 0 {
                            state ^= state << 13;
                            state ^= state >> 7;
                            state ^= state << 17;
                        }
                        b"0123456789abcdef"[((state >> ((i % 16) * 4)) & 15) as usize]
                    })
                    .collect()
            })
            .collect();
        let records: Vec<KeyValue<'_>> = names
            .iter()
            .zip(&values)
            .map(|(k, v)| (Some(k.as_bytes()), Some(v.as_slice())))
            .collect();
        let batch = build_keyed_batch(&records, T0, codec);
        let batch = ProducedBatch::new(bytes::BytesMut::from(&batch[..]))?;
        written += batch.len();
        log.append_unsynced(batch).await?;
    }
    log.flush().await?;
    log.roll().await?;
    log.set_high_watermark(log.log_end_offset());
    let before = log.size_bytes();
    let records_total = log.log_end_offset();
    let cpu_started = thread_cpu_ms();
    let started = Instant::now();
    let (mut passes, mut read, mut removed) = (0u64, 0u64, 0u64);
    loop {
        let report = log.clean(T0 + 1_000_000_000).await?;
        if !report.ran {
            break;
        }
        passes += 1;
        read += report.bytes_read;
        removed += report.records_removed;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_ms = thread_cpu_ms() - cpu_started;
    let after = log.size_bytes();
    println!(
        "{{\"test\":\"clean\",\"codec\":{codec},\"keys\":{keys},\"value_bytes\":{value_bytes},\"log_mib\":{:.1},\"after_mib\":{:.2},\"passes\":{passes},\"records_removed\":{removed},\"segment_mib_read\":{:.1},\"mib_per_s\":{:.1},\"records_per_s\":{:.0},\"wall_ms\":{:.0},\"executor_cpu_ms\":{cpu_ms}}}",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        read as f64 / 1048576.0,
        before as f64 / elapsed / 1048576.0,
        records_total as f64 / elapsed,
        elapsed * 1000.0
    );
    log.delete().await?;
    Ok(())
}

/// CPU time (user + system) of this thread so far, in ms (procfs utime and
/// stime, fields 14 and 15, in clock ticks of 10 ms).
fn thread_cpu_ms() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<u64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    (fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0)) * 10
}
