//! `bench consume`: reads a topic from its start to the high watermark it
//! had when the run began, as fast as Fetch allows, one request in flight,
//! every partition in each request. Checks every batch's CRC-32C (a
//! corrupted byte fails the run) and reports MB/s, records/s and the
//! client's own CPU per MB.

use crate::client::{self, Connection};
use anyhow::{bail, Result};
use bytes::Buf;
use clap::Args;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::*;
use std::time::Instant;

const FETCH_VERSION: i16 = 12;
/// RecordBatch v2 header: length at 8, CRC at 17, record count at 57.
const BATCH_HEADER_BYTES: usize = 61;

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
}

pub struct ConsumeResult {
    pub bytes: u64,
    pub records: u64,
    pub seconds: f64,
    pub cpu_us: f64,
}

/// Walks the batches of one partition's records: (bytes, records, next
/// offset). Fails on a CRC mismatch or a malformed header.
fn scan(mut records: bytes::Bytes, partition: i32) -> Result<(u64, u64, Option<i64>)> {
    let (mut bytes, mut count, mut next) = (0u64, 0u64, None);
    while records.remaining() >= BATCH_HEADER_BYTES {
        let length = i32::from_be_bytes([records[8], records[9], records[10], records[11]]);
        let total = usize::try_from(length).unwrap_or(0) + 12;
        if total < BATCH_HEADER_BYTES {
            bail!("partition {partition}: batch length {length} is too short");
        }
        if total > records.remaining() {
            break; // a partial batch at the end of the response
        }
        let batch = records.split_to(total);
        let stored = u32::from_be_bytes([batch[17], batch[18], batch[19], batch[20]]);
        if crc32c::crc32c(&batch[21..]) != stored {
            let base = i64::from_be_bytes(batch[0..8].try_into()?);
            bail!("partition {partition}: CRC mismatch in the batch at offset {base}");
        }
        let base = i64::from_be_bytes(batch[0..8].try_into()?);
        let last_delta = i32::from_be_bytes(batch[23..27].try_into()?);
        let records_in = i32::from_be_bytes(batch[57..61].try_into()?);
        bytes += total as u64;
        count += records_in.max(0) as u64;
        next = Some(base + i64::from(last_delta) + 1);
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
        let wanted: Vec<FetchPartition> = offsets
            .iter()
            .zip(targets)
            .enumerate()
            .filter(|(_, (o, t))| o < t)
            .map(|(p, (o, _))| {
                FetchPartition::default()
                    .with_partition(p as i32)
                    .with_fetch_offset(*o)
                    .with_partition_max_bytes(options.partition_bytes)
            })
            .collect();
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(options.fetch_bytes)
            .with_topics(vec![FetchTopic::default()
                .with_topic(client::topic_name(&options.topic))
                .with_partitions(wanted)]);
        let response: FetchResponse = connection.call(ApiKey::Fetch, FETCH_VERSION, &request)?;
        let mut progressed = false;
        for topic in response.responses {
            for partition in topic.partitions {
                if partition.error_code != 0 {
                    bail!(
                        "Fetch partition {}: error {}",
                        partition.partition_index,
                        partition.error_code
                    );
                }
                let Some(data) = partition.records else {
                    continue;
                };
                let (b, r, next) = scan(data, partition.partition_index)?;
                bytes += b;
                records += r;
                if let (Some(next), Some(slot)) =
                    (next, offsets.get_mut(partition.partition_index as usize))
                {
                    progressed |= next > *slot;
                    *slot = next.max(*slot);
                }
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
