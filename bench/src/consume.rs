//! `bench consume`: reads a topic from its start to the high watermark it
//! had when the run began, as fast as Fetch allows, one request in flight,
//! every partition in each request. Checks every batch's CRC-32C (a
//! corrupted byte fails the run) and reports MB/s, records/s and the
//! client's own CPU per MB.

use crate::client::fetch::{fetch, FetchLimits};
use crate::client::{self, Connection};
use anyhow::{bail, Result};
use clap::Args;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct Options {
    /// Broker address (also SLUICE_BOOTSTRAP).
    #[arg(long, env = "SLUICE_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// Topic to read (must exist).
    #[arg(long)]
    pub topic: String,
    /// Fetch max_bytes per request.
    #[arg(long, default_value_t = 50 * 1024 * 1024)]
    pub fetch_bytes: i32,
    /// partition_max_bytes per partition.
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    pub partition_bytes: i32,
    /// Read the topic this many times (each from the start).
    #[arg(long, default_value_t = 1)]
    pub repeat: u32,
    #[command(flatten)]
    pub security: crate::security::SecurityArgs,
}

pub struct ConsumeResult {
    pub bytes: u64,
    pub records: u64,
    pub seconds: f64,
    pub cpu_us: f64,
}

/// Walks the batches of one partition's records: (bytes, records, next
/// offset). Fails on a CRC mismatch or a malformed header.
fn scan(records: &[u8], partition: i32) -> Result<(u64, u64, Option<i64>)> {
    let (mut bytes, mut count, mut next) = (0u64, 0u64, None);
    for batch in client::batches::whole_batches(records) {
        let batch = match batch {
            Ok(batch) => batch,
            Err(short) => bail!(
                "partition {partition}: batch length {} is too short",
                short.length
            ),
        };
        if !batch.crc_ok() {
            bail!(
                "partition {partition}: CRC mismatch in the batch at offset {}",
                batch.base_offset()
            );
        }
        bytes += batch.bytes.len() as u64;
        count += batch.records_count().max(0) as u64;
        next = Some(batch.next_offset());
    }
    Ok((bytes, count, next))
}

pub fn run(options: &Options) -> Result<Vec<ConsumeResult>> {
    let mut connection = Connection::connect(&options.bootstrap)?;
    let partitions = client::partitions(&mut connection, &options.topic)?;
    let targets = client::latest_offsets(&mut connection, &options.topic, partitions)?;
    let mut results = Vec::new();
    for _ in 0..options.repeat {
        results.push(read_once(&mut connection, options, &targets)?);
    }
    Ok(results)
}

fn read_once(
    connection: &mut Connection,
    options: &Options,
    targets: &[i64],
) -> Result<ConsumeResult> {
    let mut offsets = vec![0i64; targets.len()];
    let (mut bytes, mut records) = (0u64, 0u64);
    let (started, cpu_started) = (Instant::now(), crate::produce::cpu_time_us());
    while offsets.iter().zip(targets).any(|(o, t)| o < t) {
        let wanted: Vec<(i32, i64)> = offsets
            .iter()
            .zip(targets)
            .enumerate()
            .filter(|(_, (o, t))| o < t)
            .map(|(p, (o, _))| (p as i32, *o))
            .collect();
        let limits = FetchLimits {
            max_wait_ms: 0,
            max_bytes: options.fetch_bytes,
            partition_max_bytes: options.partition_bytes,
        };
        let mut progressed = false;
        for (partition, data) in fetch(connection, &options.topic, &wanted, limits)? {
            let (b, r, next) = scan(&data, partition)?;
            bytes += b;
            records += r;
            if let (Some(next), Some(slot)) = (next, offsets.get_mut(partition as usize)) {
                progressed |= next > *slot;
                *slot = next.max(*slot);
            }
        }
        if !progressed {
            bail!("a Fetch returned no whole batch: raise --partition-bytes");
        }
    }
    Ok(ConsumeResult {
        bytes,
        records,
        seconds: started.elapsed().as_secs_f64(),
        cpu_us: crate::produce::cpu_time_us() - cpu_started,
    })
}

pub fn print(results: &[ConsumeResult]) {
    println!(
        "{:>4} {:>12} {:>10} {:>12} {:>9} {:>14}",
        "run", "records", "MB", "records/s", "MB/s", "cpu ms per MB"
    );
    for (i, r) in results.iter().enumerate() {
        let mb = r.bytes as f64 / 1e6;
        println!(
            "{:>4} {:>12} {:>10.1} {:>12.0} {:>9.1} {:>14.3}",
            i + 1,
            r.records,
            mb,
            r.records as f64 / r.seconds,
            mb / r.seconds,
            r.cpu_us / 1000.0 / mb.max(1e-9),
        );
    }
}
