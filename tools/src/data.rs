//! `sluice produce` and `sluice consume`.

use crate::group;
use crate::kafka::{self, check};
use crate::output::Format;
use anyhow::{bail, Context, Result};
use bytes::{Bytes, BytesMut};
use clap::Args;
use client::fetch::{fetch, FetchLimits};
use client::member::Member;
use client::Connection;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::time::{SystemTime, UNIX_EPOCH};

/// Records per batch (one batch per partition per request).
const BATCH_RECORDS_MAX: usize = 1000;

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  echo hello | sluice produce orders\n  sluice produce orders --file events.txt --key-separator : --header source=import\n  sluice produce orders --partition 2 --acks 1 --compression zstd < lines.txt"
)]
pub struct ProduceArgs {
    topic: String,
    /// Read lines from this file instead of stdin.
    #[arg(long)]
    file: Option<std::path::PathBuf>,
    /// Split each line into key and value at the first SEP.
    #[arg(short = 'K', long, value_name = "SEP")]
    key_separator: Option<String>,
    /// Header on every record, repeatable: -H source=cli
    #[arg(short = 'H', long = "header", value_name = "KEY=VALUE")]
    headers: Vec<String>,
    /// Every record to this partition (default: by key hash, murmur2 like
    /// the Java client; unkeyed records round-robin).
    #[arg(short, long)]
    partition: Option<i32>,
    /// 0, 1 or all.
    #[arg(long, default_value = "all")]
    acks: String,
    #[arg(long, default_value = "none", value_parser = ["none", "gzip", "snappy", "lz4", "zstd"])]
    compression: String,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn parse_acks(text: &str) -> Result<i16> {
    match text {
        "0" => Ok(0),
        "1" => Ok(1),
        "all" | "-1" => Ok(-1),
        other => bail!("--acks {other}: use 0, 1 or all"),
    }
}

fn compression(name: &str) -> Compression {
    match name {
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        _ => Compression::None,
    }
}

pub fn produce(bootstrap: &str, format: Format, args: ProduceArgs) -> Result<()> {
    let acks = parse_acks(&args.acks)?;
    let mut connection = kafka::connect(bootstrap)?;
    let partitions = kafka::partition_count(&mut connection, &args.topic)?;
    if let Some(p) = args.partition {
        if !(0..partitions).contains(&p) {
            bail!(
                "topic {} has partitions 0..{}, not {p}",
                args.topic,
                partitions - 1
            );
        }
    }
    let headers = indexmap_headers(&args.headers)?;
    let input: Box<dyn BufRead> = match &args.file {
        Some(path) => Box::new(std::io::BufReader::new(
            std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let options = RecordEncodeOptions {
        version: 2,
        compression: compression(&args.compression),
    };
    let mut pending: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
    let (mut produced, mut next_round_robin) = (0u64, 0i32);
    let mut ranges: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
    for line in input.lines() {
        let line = line.context("read input")?;
        let (key, value) = match &args.key_separator {
            Some(sep) => match line.split_once(sep.as_str()) {
                Some((k, v)) => (Some(Bytes::from(k.to_string())), Bytes::from(v.to_string())),
                None => (None, Bytes::from(line)),
            },
            None => (None, Bytes::from(line)),
        };
        let partition = args.partition.unwrap_or_else(|| match &key {
            Some(k) => (client::murmur2(k) & 0x7fff_ffff) % partitions,
            None => {
                next_round_robin = (next_round_robin + 1) % partitions;
                next_round_robin
            }
        });
        let batch = pending.entry(partition).or_default();
        batch.push(Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: batch.len() as i64,
            // Keeps one batch (see the encoder's grouping rule).
            sequence: batch.len() as i32 - 1,
            timestamp: now_ms(),
            key,
            value: Some(value),
            headers: headers.clone(),
        });
        if batch.len() >= BATCH_RECORDS_MAX {
            produced += send(
                &mut connection,
                &args.topic,
                acks,
                &options,
                &mut pending,
                &mut ranges,
            )?;
        }
    }
    produced += send(
        &mut connection,
        &args.topic,
        acks,
        &options,
        &mut pending,
        &mut ranges,
    )?;
    let partitions: serde_json::Map<String, serde_json::Value> = ranges
        .iter()
        .map(|(p, (first, last))| (p.to_string(), serde_json::json!([first, last])))
        .collect();
    match format {
        Format::Json => println!(
            "{}",
            serde_json::json!({"topic": args.topic, "produced": produced, "offsets": partitions})
        ),
        Format::Table => eprintln!("produced {produced} records to {}", args.topic),
    }
    Ok(())
}

type Headers = kafka_protocol::indexmap::IndexMap<StrBytes, Option<Bytes>>;

fn indexmap_headers(pairs: &[String]) -> Result<Headers> {
    let mut headers = Headers::default();
    for pair in pairs {
        let (k, v) = pair
            .split_once('=')
            .with_context(|| format!("--header {pair}: expected key=value"))?;
        headers.insert(
            StrBytes::from_string(k.to_string()),
            Some(Bytes::from(v.to_string())),
        );
    }
    Ok(headers)
}

/// Sends every pending batch in one request; returns the records written.
fn send(
    connection: &mut Connection,
    topic: &str,
    acks: i16,
    options: &RecordEncodeOptions,
    pending: &mut BTreeMap<i32, Vec<Record>>,
    ranges: &mut BTreeMap<i32, (i64, i64)>,
) -> Result<u64> {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    if pending.is_empty() {
        return Ok(0);
    }
    let mut data = Vec::new();
    let mut counts = BTreeMap::new();
    for (partition, records) in std::mem::take(pending) {
        let mut encoded = BytesMut::new();
        RecordBatchEncoder::encode(&mut encoded, records.iter(), options)
            .map_err(|e| anyhow::anyhow!("encode records: {e}"))?;
        counts.insert(partition, records.len() as i64);
        data.push(
            PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(encoded.freeze())),
        );
    }
    let request = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(client::topic_name(topic))
            .with_partition_data(data)]);
    let total: i64 = counts.values().sum();
    if acks == 0 {
        connection.send(ApiKey::Produce, kafka::PRODUCE, &request)?;
        return Ok(total as u64);
    }
    let response: ProduceResponse = connection.call(ApiKey::Produce, kafka::PRODUCE, &request)?;
    for t in &response.responses {
        for p in &t.partition_responses {
            let message = kafka::detail(&p.error_message);
            check(
                p.error_code,
                &format!("produce to {topic}/{}{message}", p.index),
            )?;
            let count = counts.get(&p.index).copied().unwrap_or(0);
            let range = ranges
                .entry(p.index)
                .or_insert((p.base_offset, p.base_offset));
            range.1 = p.base_offset + count - 1;
        }
    }
    Ok(total as u64)
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  sluice consume orders -e                      # from the beginning to the end, then exit\n  sluice consume orders --from end              # wait for new records\n  sluice consume orders --from offset:42 -p 0 --count 10 --print key,offset\n  sluice consume orders --from timestamp:1700000000000 --format json\n  sluice consume orders --group audit -e        # resume from audit's commits, commit at exit"
)]
pub struct ConsumeArgs {
    topic: String,
    /// beginning | end | offset:N | timestamp:MS (with --group: where to
    /// start partitions that have no committed offset).
    #[arg(long, default_value = "beginning")]
    from: String,
    /// Partitions to read (default: all).
    #[arg(short, long = "partition")]
    partitions: Vec<i32>,
    /// Consume as a member of this group: join it, read the partitions it
    /// assigns (range assignor), resume from its committed offsets, commit
    /// through rebalances and at exit, then leave. With --partition it
    /// reads those partitions standalone instead, which needs the group to
    /// have no active members.
    #[arg(short, long)]
    group: Option<String>,
    /// Stop after this many records.
    #[arg(short = 'n', long)]
    count: Option<u64>,
    /// Exit at the end of every partition (instead of waiting for more).
    #[arg(short = 'e', long)]
    exit_at_end: bool,
    /// Fields printed before the value, tab-separated:
    /// partition,offset,timestamp,key,headers
    #[arg(long, value_delimiter = ',')]
    print: Vec<String>,
}

/// Offsets for `from` = beginning | end | offset:N | timestamp:MS.
pub fn start_offsets_for(
    connection: &mut Connection,
    topic: &str,
    partitions: &[i32],
    from: &str,
) -> Result<Vec<(i32, i64)>> {
    let timestamp = match from {
        "beginning" | "earliest" => -2,
        "end" | "latest" => -1,
        other => match other.split_once(':') {
            Some(("offset", n)) => {
                let n: i64 = n
                    .parse()
                    .with_context(|| format!("--from {other}: bad offset"))?;
                return Ok(partitions.iter().map(|p| (*p, n)).collect());
            }
            Some(("timestamp", ms)) => ms
                .parse()
                .with_context(|| format!("--from {other}: bad timestamp"))?,
            _ => bail!("--from {other}: use beginning, end, offset:N or timestamp:MS"),
        },
    };
    let found = kafka::list_offsets(connection, topic, partitions, timestamp)?;
    if timestamp >= 0 {
        // No record at or after the time: start at the end.
        let ends = kafka::list_offsets(connection, topic, partitions, -1)?;
        return Ok(found
            .into_iter()
            .zip(ends)
            .map(|((p, o), (_, end))| (p, if o < 0 { end } else { o }))
            .collect());
    }
    Ok(found)
}

/// Where to start reading `partitions`: `--from`, overridden by the
/// group's committed offsets where it has some.
fn initial_positions(
    connection: &mut Connection,
    bootstrap: &str,
    args: &ConsumeArgs,
    member: Option<&mut Member>,
    partitions: &[i32],
) -> Result<Vec<(i32, i64)>> {
    if partitions.is_empty() {
        return Ok(Vec::new());
    }
    let mut positions = start_offsets_for(connection, &args.topic, partitions, &args.from)?;
    let committed = match (member, &args.group) {
        (Some(member), _) => member.committed()?,
        (None, Some(group)) => {
            group::require_empty(connection, bootstrap, group)?;
            group::committed(connection, bootstrap, group, &args.topic, partitions)?
        }
        (None, None) => return Ok(positions),
    };
    for (p, position) in positions.iter_mut() {
        if let Some(offset) = committed.get(p).filter(|o| **o >= 0) {
            *position = *offset;
        }
    }
    Ok(positions)
}

fn ends_of(
    connection: &mut Connection,
    args: &ConsumeArgs,
    partitions: &[i32],
) -> Result<Option<Vec<(i32, i64)>>> {
    if !args.exit_at_end {
        return Ok(None);
    }
    if partitions.is_empty() {
        return Ok(Some(Vec::new()));
    }
    Ok(Some(kafka::list_offsets(
        connection,
        &args.topic,
        partitions,
        -1,
    )?))
}

pub fn consume(bootstrap: &str, format: Format, args: ConsumeArgs) -> Result<()> {
    let mut connection = kafka::connect(bootstrap)?;
    let count = kafka::partition_count(&mut connection, &args.topic)?;
    if let Some(bad) = args.partitions.iter().find(|p| !(0..count).contains(*p)) {
        bail!(
            "topic {} has partitions 0..{}, not {bad}",
            args.topic,
            count - 1
        );
    }
    // --group without --partition: a real member of the group.
    let mut member = match (&args.group, args.partitions.is_empty()) {
        (Some(group), true) => {
            let coordinator = group::coordinator_connection(&mut connection, bootstrap, group)?;
            Some(Member::join(coordinator, group, &args.topic)?)
        }
        _ => None,
    };
    let mut partitions: Vec<i32> = match &member {
        Some(member) => member.assigned.clone(),
        None if args.partitions.is_empty() => (0..count).collect(),
        None => args.partitions.clone(),
    };
    let mut positions = initial_positions(
        &mut connection,
        bootstrap,
        &args,
        member.as_mut(),
        &partitions,
    )?;
    let mut ends = ends_of(&mut connection, &args, &partitions)?;
    let mut printed = 0u64;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    loop {
        if args.count.is_some_and(|n| printed >= n) {
            break;
        }
        if let Some(member) = member.as_mut() {
            if member.heartbeat()? {
                member.commit(&positions)?;
                member.rejoin()?;
                partitions = member.assigned.clone();
                positions = initial_positions(
                    &mut connection,
                    bootstrap,
                    &args,
                    Some(member),
                    &partitions,
                )?;
                ends = ends_of(&mut connection, &args, &partitions)?;
            }
        }
        if let Some(ends) = &ends {
            if positions
                .iter()
                .zip(ends)
                .all(|((_, o), (_, end))| o >= end)
            {
                break;
            }
        }
        if positions.is_empty() {
            // No partitions assigned (more members than partitions): stay
            // in the group, heartbeating, until it rebalances.
            std::thread::sleep(std::time::Duration::from_millis(200));
            continue;
        }
        let limits = FetchLimits {
            max_wait_ms: 500,
            max_bytes: 16 * 1024 * 1024,
            partition_max_bytes: 1024 * 1024,
        };
        for (partition, records) in fetch(&mut connection, &args.topic, &positions, limits)? {
            let Some(slot) = positions.iter_mut().find(|(p, _)| *p == partition) else {
                continue;
            };
            for record in decode(records)? {
                if record.offset < slot.1 {
                    continue; // earlier records of the first batch
                }
                if args.count.is_some_and(|n| printed >= n) {
                    break;
                }
                slot.1 = record.offset + 1;
                print_record(&mut out, format, &args, partition, &record)?;
                printed += 1;
            }
        }
        out.flush()?;
    }
    match (member, &args.group) {
        (Some(mut member), _) => {
            member.commit(&positions)?;
            member.leave()?;
        }
        (None, Some(group)) => {
            group::commit(&mut connection, bootstrap, group, &args.topic, &positions)?
        }
        (None, None) => {}
    }
    Ok(())
}

/// Every record of the whole batches in `records` (a partial last batch
/// is left for the next fetch).
fn decode(records: Bytes) -> Result<Vec<Record>> {
    let mut out = Vec::new();
    for whole in client::batches::whole_batches(&records) {
        let whole = whole.map_err(|s| anyhow::anyhow!("batch length {} is too short", s.length))?;
        let mut batch = records.slice_ref(whole.bytes);
        let set = RecordBatchDecoder::decode(&mut batch)
            .map_err(|e| anyhow::anyhow!("decode batch: {e}"))?;
        out.extend(set.records.into_iter().filter(|r| !r.control));
    }
    Ok(out)
}

fn print_record(
    out: &mut impl Write,
    format: Format,
    args: &ConsumeArgs,
    partition: i32,
    record: &Record,
) -> Result<()> {
    let text = |b: &Option<Bytes>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
    if format == Format::Json {
        let headers: serde_json::Map<String, serde_json::Value> = record
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::json!(text(v))))
            .collect();
        let line = serde_json::json!({
            "topic": args.topic, "partition": partition, "offset": record.offset,
            "timestamp": record.timestamp, "key": text(&record.key), "value": text(&record.value),
            "headers": headers,
        });
        writeln!(out, "{line}")?;
        return Ok(());
    }
    let mut fields = Vec::new();
    for field in &args.print {
        fields.push(match field.as_str() {
            "partition" => partition.to_string(),
            "offset" => record.offset.to_string(),
            "timestamp" => record.timestamp.to_string(),
            "key" => text(&record.key).unwrap_or_default(),
            "headers" => record
                .headers
                .iter()
                .map(|(k, v)| format!("{k}={}", text(v).unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(","),
            other => bail!("--print {other}: use partition, offset, timestamp, key, headers"),
        });
    }
    fields.push(text(&record.value).unwrap_or_default());
    writeln!(out, "{}", fields.join("\t"))?;
    Ok(())
}
