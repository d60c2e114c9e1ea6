//! Produce runs. Each producer is a connection with a writer thread (sends
//! batches, at intended times in open-loop mode) and a reader thread
//! (matches responses and records latency). A bounded channel between them
//! caps requests in flight. In open-loop mode latency counts from the
//! *intended* send time, so a stalled broker is not hidden by a stalled
//! client (no coordinated omission); how late sends were is reported too.

use crate::batch;
use crate::client::{self, Connection, PRODUCE_VERSION};
use crate::e2e;
use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(clap::Args, Debug, Clone)]
pub struct Options {
    /// Broker address (also SLUICE_BOOTSTRAP).
    #[arg(long, env = "SLUICE_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// Topic to produce to; created and deleted by bench unless --keep-topic.
    #[arg(long, default_value = "sluice-bench")]
    pub topic: String,
    #[arg(long, default_value_t = 1)]
    pub partitions: i32,
    /// Use an existing topic: neither create nor delete it.
    #[arg(long)]
    pub keep_topic: bool,
    /// Comma-separated acks settings, run in turn: 0, 1, all (or -1).
    #[arg(long, default_value = "1,all")]
    pub acks: String,
    #[arg(long, default_value_t = 1024)]
    pub message_bytes: usize,
    /// Bytes of messages per produce batch (one batch per request).
    #[arg(long, default_value_t = 16 * 1024)]
    pub batch_bytes: usize,
    /// Producer connections.
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Requests in flight per producer.
    #[arg(long, default_value_t = 5)]
    pub in_flight: usize,
    /// Messages per second over all producers (open loop); omit for max
    /// throughput (closed loop).
    #[arg(long)]
    pub rate: Option<u64>,
    #[arg(long, default_value_t = 10)]
    pub duration_s: u64,
    /// Excluded from the results.
    #[arg(long, default_value_t = 2)]
    pub warmup_s: u64,
    /// Write a JSON report here (with the percentile distribution of every
    /// run, for `bench compare`).
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
    /// Name of this broker/setup in reports and charts (default: the
    /// bootstrap address).
    #[arg(long)]
    pub label: Option<String>,
    /// Write each run's latency as an HdrHistogram percentile distribution
    /// (`.hgrm`, the format HdrHistogram's plotter reads) into this dir.
    #[arg(long, value_name = "DIR")]
    pub hgrm_dir: Option<std::path::PathBuf>,
    /// Consumer connections reading the run's records as they arrive
    /// (partitions assigned round-robin, no group): end-to-end latency,
    /// and every record checked (checksum, duplicates, acknowledged but
    /// lost). 0: no consumers.
    #[arg(long, default_value_t = 0)]
    pub consumers: usize,
}

impl Options {
    pub fn label(&self) -> String {
        self.label.clone().unwrap_or_else(|| self.bootstrap.clone())
    }
}

pub struct RunResult {
    pub acks: i16,
    pub messages: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub errors: u64,
    /// Produce-ack latency, microseconds (empty for acks=0).
    pub latency_us: Histogram<u64>,
    /// How late sends left compared with their schedule, microseconds.
    pub send_delay_us: Histogram<u64>,
    pub cpu_us_per_message: f64,
    /// With --consumers: what they read and found.
    pub e2e: Option<E2e>,
}

pub struct E2e {
    /// Read-time minus intended send time, microseconds.
    pub latency_us: Histogram<u64>,
    pub consumed: u64,
    /// Acknowledged (acks 1/all) but never read.
    pub lost: u64,
    pub duplicated: u64,
    pub corrupted: u64,
}

impl E2e {
    pub fn failures(&self) -> u64 {
        self.lost + self.duplicated + self.corrupted
    }
}

fn parse_acks(text: &str) -> Result<Vec<i16>> {
    text.split(',')
        .map(|a| match a.trim() {
            "0" => Ok(0),
            "1" => Ok(1),
            "all" | "-1" => Ok(-1),
            other => bail!("bad acks value {other:?}: use 0, 1 or all"),
        })
        .collect()
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

pub fn cpu_time_us() -> f64 {
    // SAFETY: getrusage fills the zeroed struct we own.
    #[expect(unsafe_code)]
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let us = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    us(usage.ru_utime) + us(usage.ru_stime)
}

pub fn run(options: &Options) -> Result<Vec<RunResult>> {
    if options.message_bytes < batch::PAYLOAD_HEADER_BYTES
        || options.batch_bytes < options.message_bytes
    {
        bail!(
            "need --message-bytes >= {} and --batch-bytes >= --message-bytes",
            batch::PAYLOAD_HEADER_BYTES
        );
    }
    let acks_list = parse_acks(&options.acks)?;
    let mut admin = Connection::connect(&options.bootstrap)?;
    if !options.keep_topic {
        client::create_topic(&mut admin, &options.topic, options.partitions)?;
    }
    let partitions = client::partitions(&mut admin, &options.topic)?;
    let mut results = Vec::new();
    for acks in acks_list {
        eprintln!(
            "acks={acks}: {} s warm-up + {} s",
            options.warmup_s, options.duration_s
        );
        results.push(run_one(options, acks, partitions)?);
    }
    if !options.keep_topic {
        client::delete_topic(&mut admin, &options.topic)?;
    }
    Ok(results)
}

struct InFlight {
    id: i32,
    intended: Instant,
    first_sequence: u64,
    messages: u64,
    counted: bool,
}

struct ProducerResult {
    messages: u64,
    errors: u64,
    latency_us: Histogram<u64>,
    send_delay_us: Histogram<u64>,
    /// (first sequence, count) of every acknowledged batch.
    acked: Vec<(u64, u64)>,
}

fn run_one(options: &Options, acks: i16, partitions: i32) -> Result<RunResult> {
    let per_batch = (options.batch_bytes / options.message_bytes).max(1);
    let start = Instant::now() + Duration::from_millis(200);
    let measure_from = start + Duration::from_secs(options.warmup_s);
    let end = measure_from + Duration::from_secs(options.duration_s);
    let interval = options.rate.map(|rate| {
        let per_producer = (rate as f64 / options.producers as f64).max(1e-9);
        Duration::from_secs_f64(per_batch as f64 / per_producer)
    });
    let cpu_before = cpu_time_us();
    let targets: e2e::Targets = Default::default();
    let consumers = spawn_consumers(options, partitions, start, measure_from, &targets)?;
    let handles: Vec<_> = (0..options.producers)
        .map(|producer| {
            let options = options.clone();
            std::thread::spawn(move || {
                produce_loop(
                    &options,
                    producer as u32,
                    acks,
                    producer as i32 % partitions,
                    per_batch,
                    start,
                    measure_from,
                    end,
                    interval,
                )
            })
        })
        .collect();
    let mut total = ProducerResult {
        messages: 0,
        errors: 0,
        latency_us: histogram(),
        send_delay_us: histogram(),
        acked: Vec::new(),
    };
    let mut acked = Vec::new();
    for (producer, handle) in handles.into_iter().enumerate() {
        let result = handle
            .join()
            .map_err(|_| anyhow::anyhow!("producer thread panicked"))??;
        total.messages += result.messages;
        total.errors += result.errors;
        total.latency_us.add(&result.latency_us)?;
        total.send_delay_us.add(&result.send_delay_us)?;
        acked.push((producer as u32, result.acked));
    }
    let e2e = finish_consumers(options, partitions, acks, consumers, &targets, &acked)?;
    let cpu_us = cpu_time_us() - cpu_before;
    let seconds = options.duration_s as f64;
    Ok(RunResult {
        acks,
        messages: total.messages,
        bytes: total.messages * options.message_bytes as u64,
        seconds,
        errors: total.errors,
        latency_us: total.latency_us,
        send_delay_us: total.send_delay_us,
        cpu_us_per_message: cpu_us / (total.messages.max(1) as f64),
        e2e,
    })
}

type ConsumerThreads = Vec<std::thread::JoinHandle<Result<e2e::Consumed>>>;

/// Starts the consumers at the partitions' current ends.
fn spawn_consumers(
    options: &Options,
    partitions: i32,
    origin: Instant,
    measure_from: Instant,
    targets: &e2e::Targets,
) -> Result<ConsumerThreads> {
    if options.consumers == 0 {
        return Ok(Vec::new());
    }
    let mut admin = Connection::connect(&options.bootstrap)?;
    let starts = e2e::latest_offsets(&mut admin, &options.topic, partitions)?;
    let count = options.consumers.min(partitions.max(1) as usize);
    Ok((0..count)
        .map(|i| {
            let plan = e2e::Plan {
                bootstrap: options.bootstrap.clone(),
                topic: options.topic.clone(),
                partitions: starts
                    .iter()
                    .enumerate()
                    .filter(|(p, _)| p % count == i)
                    .map(|(p, start)| (p as i32, *start))
                    .collect(),
                origin,
                measure_from_us: measure_from.saturating_duration_since(origin).as_micros() as u64,
                targets: targets.clone(),
            };
            std::thread::spawn(move || e2e::consume(plan))
        })
        .collect())
}

/// Tells the consumers where the producers ended, waits for them, and
/// checks that every acknowledged record was read.
fn finish_consumers(
    options: &Options,
    partitions: i32,
    acks: i16,
    consumers: ConsumerThreads,
    targets: &e2e::Targets,
    acked: &[(u32, Vec<(u64, u64)>)],
) -> Result<Option<E2e>> {
    if consumers.is_empty() {
        return Ok(None);
    }
    let mut admin = Connection::connect(&options.bootstrap)?;
    let ends = e2e::latest_offsets(&mut admin, &options.topic, partitions)?;
    *targets
        .lock()
        .map_err(|_| anyhow::anyhow!("targets lock poisoned"))? = Some(ends);
    let mut results = Vec::new();
    for consumer in consumers {
        results.push(
            consumer
                .join()
                .map_err(|_| anyhow::anyhow!("consumer thread panicked"))??,
        );
    }
    let consumed = e2e::merge(results)?;
    let lost = if acks == 0 {
        0
    } else {
        e2e::count_lost(acked, &consumed.seen)
    };
    Ok(Some(E2e {
        latency_us: consumed.latency_us,
        consumed: consumed.records,
        lost,
        duplicated: consumed.duplicated,
        corrupted: consumed.corrupted,
    }))
}

#[allow(clippy::too_many_arguments)]
fn produce_loop(
    options: &Options,
    producer: u32,
    acks: i16,
    partition: i32,
    per_batch: usize,
    start: Instant,
    measure_from: Instant,
    end: Instant,
    interval: Option<Duration>,
) -> Result<ProducerResult> {
    let mut connection = Connection::connect(&options.bootstrap)?;
    let reader = connection.try_clone_reader().context("clone connection")?;
    let (queue, pending) = mpsc::sync_channel::<InFlight>(options.in_flight.max(1));
    let reader_thread =
        (acks != 0).then(|| std::thread::spawn(move || read_responses(reader, pending)));
    let mut send_delay_us = histogram();
    let mut sequence = 0u64;
    let mut sent_messages = 0u64;
    let mut batch_index = 0u64;
    loop {
        let intended = match interval {
            Some(interval) => start + interval.mul_f64(batch_index as f64),
            None => Instant::now().max(start),
        };
        if intended >= end {
            break;
        }
        let now = Instant::now();
        if intended > now {
            std::thread::sleep(intended - now);
        }
        let sent_at = Instant::now();
        let counted = intended >= measure_from;
        if counted && interval.is_some() {
            send_delay_us.saturating_record((sent_at - intended).as_micros() as u64);
        }
        let timestamp_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let meant = if interval.is_some() {
            intended
        } else {
            sent_at
        };
        let send_us = meant.saturating_duration_since(start).as_micros() as u64;
        let records = batch::build(
            producer,
            sequence,
            send_us,
            per_batch,
            options.message_bytes,
            timestamp_ms,
        );
        let first_sequence = sequence;
        sequence += per_batch as u64;
        let request = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(client::topic_name(&options.topic))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(records))])]);
        let id = connection.send(ApiKey::Produce, PRODUCE_VERSION, &request)?;
        if counted {
            sent_messages += per_batch as u64;
        }
        if acks != 0 {
            // Blocks while `in_flight` requests are unanswered.
            queue
                .send(InFlight {
                    id,
                    intended: if interval.is_some() {
                        intended
                    } else {
                        sent_at
                    },
                    first_sequence,
                    messages: per_batch as u64,
                    counted,
                })
                .map_err(|_| anyhow::anyhow!("response reader stopped"))?;
        }
        batch_index += 1;
    }
    drop(queue);
    match reader_thread {
        Some(thread) => {
            let mut result = thread
                .join()
                .map_err(|_| anyhow::anyhow!("reader thread panicked"))??;
            result.send_delay_us = send_delay_us;
            Ok(result)
        }
        None => Ok(ProducerResult {
            messages: sent_messages,
            errors: 0,
            latency_us: histogram(),
            send_delay_us,
            acked: Vec::new(),
        }),
    }
}

fn read_responses(
    mut connection: Connection,
    pending: mpsc::Receiver<InFlight>,
) -> Result<ProducerResult> {
    let mut result = ProducerResult {
        messages: 0,
        errors: 0,
        latency_us: histogram(),
        send_delay_us: histogram(),
        acked: Vec::new(),
    };
    for request in pending {
        let response: ProduceResponse =
            connection.receive(ApiKey::Produce, PRODUCE_VERSION, request.id)?;
        let done = Instant::now();
        let failed = response
            .responses
            .iter()
            .flat_map(|t| t.partition_responses.iter())
            .any(|p| p.error_code != 0);
        if !failed {
            result
                .acked
                .push((request.first_sequence, request.messages));
        }
        if !request.counted {
            continue;
        }
        if failed {
            result.errors += 1;
            continue;
        }
        result.messages += request.messages;
        result
            .latency_us
            .saturating_record((done - request.intended).as_micros().max(1) as u64);
    }
    Ok(result)
}
