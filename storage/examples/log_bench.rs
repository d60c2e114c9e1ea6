//! Storage throughput benchmark (not a test): durable appends of 1 KiB
//! records in batches of a given size from N concurrent appenders, then
//! sequential reads from the tail cache and from disk. Prints one JSON line
//! per measurement. Run through scripts/bench-storage.sh, which also measures
//! the raw disk with fio so every number is a ratio.
//!
//! cargo run --release -p storage --example log_bench -- DIR BATCH_BYTES APPENDERS TOTAL_MIB

use bytes::BytesMut;
use glommio::LocalExecutorBuilder;
use std::rc::Rc;
use std::time::Instant;
use storage::batch::build_batch;
use storage::{CoreMemory, Faults, Log, LogConfig, LogOptions, ProducedBatch};

const RECORD_BYTES: usize = 1024;

fn arg(n: usize, default: &str) -> String {
    std::env::args()
        .nth(n)
        .unwrap_or_else(|| default.to_string())
}

fn main() -> anyhow::Result<()> {
    let dir = std::path::PathBuf::from(arg(1, "/tmp/sluice-log-bench"));
    let batch_bytes: usize = arg(2, "1048576").parse()?;
    let appenders: usize = arg(3, "1").parse()?;
    let total_mib: usize = arg(4, "512").parse()?;
    let _ = std::fs::remove_dir_all(&dir);
    LocalExecutorBuilder::default()
        .io_memory(64 << 20)
        .make()
        .map_err(|e| anyhow::anyhow!("glommio executor: {e}"))?
        .run(async move { bench(dir, batch_bytes, appenders, total_mib).await })
}

async fn bench(
    dir: std::path::PathBuf,
    batch_bytes: usize,
    appenders: usize,
    total_mib: usize,
) -> anyhow::Result<()> {
    // Records of 1 KiB each; the batch holds as many as fit batch_bytes.
    let value = vec![b'v'; RECORD_BYTES];
    // Each record is its value plus about 10 bytes of framing; keep the
    // whole batch within batch_bytes (a 1 MiB batch fits message.max.bytes).
    let records = ((batch_bytes - 61) / (RECORD_BYTES + 12)).max(1);
    let values: Vec<&[u8]> = (0..records).map(|_| value.as_slice()).collect();
    let template = Rc::new(build_batch(&values, 1_700_000_000_000));
    let config = LogConfig {
        max_message_bytes: template.len() + 1024,
        write_buffer_bytes_max: (template.len() * appenders * 2).max(8 << 20),
        ..LogConfig::default()
    };
    let options = LogOptions {
        config: config.clone(),
        memory: CoreMemory::new(storage::limits::TAIL_CACHE_BYTES_DEFAULT_MAX),
        faults: Rc::new(Faults::default()),
        log_dir: storage::LogDirHealth::new(std::path::Path::new("")),
    };
    let (log, _) = Log::open(&dir, options).await?;
    let batches_total = (total_mib << 20) / template.len();
    let per_appender = batches_total.div_ceil(appenders);
    // The batches arrive as a produce request would hand them over: already
    // in memory. Building them is not part of the timed append.
    let inputs: Vec<Vec<BytesMut>> = (0..appenders)
        .map(|_| {
            (0..per_appender)
                .map(|_| BytesMut::from(&template[..]))
                .collect()
        })
        .collect();
    let cpu_started = thread_cpu_ms();
    let started = Instant::now();
    let tasks: Vec<_> = inputs
        .into_iter()
        .map(|batches| {
            let log = log.clone();
            glommio::spawn_local(async move {
                for batch in batches {
                    // Checking the batch (CRC, framing) is timed, as the
                    // broker does it per produce request.
                    log.append(ProducedBatch::new(batch)?).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_ms = thread_cpu_ms() - cpu_started;
    let bytes = log.size_bytes() as f64;
    let stats = log.stats();
    println!(
        "{{\"test\":\"durable_append\",\"batch_bytes\":{},\"appenders\":{appenders},\"mib_per_s\":{:.1},\"fdatasyncs\":{},\"avg_write_kib\":{:.0},\"wall_ms\":{:.0},\"executor_cpu_ms\":{cpu_ms}}}",
        template.len(),
        bytes / elapsed / 1048576.0,
        stats.flushes,
        stats.bytes_written as f64 / stats.flushes.max(1) as f64 / 1024.0,
        elapsed * 1000.0
    );

    let cached = read_all(&log, log.cache_start_offset(), 1 << 20).await?;
    println!("{{\"test\":\"read_cache\",\"mib_per_s\":{:.1}}}", cached);
    log.close().await?;
    let options = LogOptions {
        config,
        memory: CoreMemory::new(0),
        faults: Rc::new(Faults::default()),
        log_dir: storage::LogDirHealth::new(std::path::Path::new("")),
    };
    let (log, _) = Log::open(&dir, options).await?;
    let disk = read_all(&log, log.log_start_offset(), 1 << 20).await?;
    println!(
        "{{\"test\":\"read_disk\",\"max_bytes\":1048576,\"mib_per_s\":{:.1}}}",
        disk
    );
    log.delete().await?;
    Ok(())
}

/// Reads the log from `from` to its end; returns MiB/s.
async fn read_all(log: &Log, from: i64, max_bytes: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut offset = from;
    let mut bytes = 0usize;
    while offset < log.log_end_offset() {
        let read = log.read(offset, max_bytes).await?;
        for batch in read.batches() {
            let header = storage::batch::BatchHeader::parse(batch)?;
            offset = header.last_offset() + 1;
            bytes += batch.len();
        }
    }
    Ok(bytes as f64 / started.elapsed().as_secs_f64() / 1048576.0)
}

/// CPU time (user + system) of this thread so far, in ms: the executor's own
/// work, as opposed to waiting for the disk. Read from procfs (utime and
/// stime, fields 14 and 15, in clock ticks of 10 ms).
fn thread_cpu_ms() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // The command name (field 2) may hold spaces; fields after it start at ')'.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<u64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // `after` starts at field 3 (state), so utime (14) is index 11.
    (fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0)) * 10
}
