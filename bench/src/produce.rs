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
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, ProduceRequest, ProduceResponse,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
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
    /// Replicas per partition of the topic bench creates (Kafka's
    /// --replication-factor). Above 1, bench waits until Metadata lists
    /// that many brokers, then until every replica is in sync.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i16).range(1..))]
    pub replication_factor: i16,
    /// A config of the topic bench creates, as kafka-topics'
    /// --config (e.g. min.insync.replicas=2); repeatable.
    #[arg(long = "topic-config", value_name = "KEY=VALUE", value_parser = parse_topic_config)]
    pub topic_configs: Vec<(String, String)>,
    /// Use an existing topic: neither create nor delete it.
    #[arg(long)]
    pub keep_topic: bool,
    /// Comma-separated acks settings, run in turn: 0, 1, all (or -1).
    #[arg(long, default_value = "1,all")]
    pub acks: String,
    /// Message size in bytes (with --message-bytes-max: the smallest).
    #[arg(long, default_value_t = 1024)]
    pub message_bytes: usize,
    /// Distinct record keys (`key-0` ..); 0 sends null keys. Keyed
    /// records go to murmur2(key) % partitions, as the Java client's
    /// default partitioner sends them; unkeyed ones to the producer's own
    /// partition.
    #[arg(long, default_value_t = 0)]
    pub keys: u64,
    /// How keys are drawn: uniform, or zipf (exponent 1: key-0 most often).
    #[arg(long, value_enum, default_value = "uniform")]
    pub key_distribution: KeyDistribution,
    /// Batch compression: none, gzip, snappy, lz4, zstd.
    #[arg(long, value_enum, default_value = "none")]
    pub compression: batch::Codec,
    /// Sizes drawn uniformly from --message-bytes..=this, per message.
    #[arg(long)]
    pub message_bytes_max: Option<usize>,
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
    /// Open loop: a batch is sent when full or this long after its first
    /// message was due (Kafka 4's linger.ms default is 5).
    #[arg(long, default_value_t = 5.0)]
    pub linger_ms: f64,
    /// Stop each acks run after this many measured messages instead of
    /// after --duration-s.
    #[arg(long)]
    pub messages: Option<u64>,
    /// OpenMessaging Benchmark shapes: 100 partitions, 1 KiB messages,
    /// acks=all, linger 1 ms, and 128 KiB batches (omb-latency) or 1 MiB
    /// (omb-throughput). Overrides those options.
    #[arg(long, value_parser = ["omb-latency", "omb-throughput"])]
    pub preset: Option<String>,
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
    /// (`.hgrm`, the format HdrHistogram's plotter reads) and as an interval
    /// log (`.hlog`, one histogram per 500 ms) into this dir.
    #[arg(long, value_name = "DIR")]
    pub hgrm_dir: Option<std::path::PathBuf>,
    /// Write the acks settings' produce-ack percentile chart as SVG here.
    #[arg(long)]
    pub svg: Option<std::path::PathBuf>,
    /// ... and as PNG here.
    #[arg(long)]
    pub png: Option<std::path::PathBuf>,
    /// Consumer connections reading the run's records as they arrive
    /// (partitions assigned round-robin, no group): end-to-end latency,
    /// and every record checked (checksum, duplicates, acknowledged but
    /// lost). 0: no consumers.
    #[arg(long, default_value_t = 0)]
    pub consumers: usize,
    /// The consumers join this consumer group (a fresh group per acks
    /// run: `<name>-acks-<n>`) and read what it assigns them, instead of
    /// assigned partitions.
    #[arg(long)]
    pub consumer_group: Option<String>,
    /// The broker's process id (comma-separated for a cluster's nodes):
    /// its user and system CPU over the measured window is reported per
    /// batch and per MB (read from /proc/<pid>/stat).
    #[arg(long, value_delimiter = ',')]
    pub broker_pid: Vec<u32>,
    /// The brokers' admin endpoints (HOST:PORT, comma-separated; Sluice's
    /// `sluice.admin.listen`, 127.0.0.1:9644 by default): `/metrics` is
    /// scraped when the measured window opens and closes, and the run
    /// reports the brokers' durable writes, batches per durable write and
    /// cross-core produce calls over it.
    #[arg(long, value_delimiter = ',')]
    pub broker_metrics: Vec<String>,
    #[command(flatten)]
    pub security: crate::security::SecurityArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyDistribution {
    Uniform,
    Zipf,
}

impl Options {
    /// The options with the preset's settings applied.
    pub fn with_preset(&self) -> Options {
        let mut options = self.clone();
        match self.preset.as_deref() {
            Some("omb-latency") => {
                (options.partitions, options.message_bytes, options.acks) =
                    (100, 1024, "all".into());
                (options.batch_bytes, options.linger_ms) = (128 * 1024, 1.0);
            }
            Some("omb-throughput") => {
                (options.partitions, options.message_bytes, options.acks) =
                    (100, 1024, "all".into());
                (options.batch_bytes, options.linger_ms) = (1024 * 1024, 1.0);
            }
            _ => {}
        }
        options
    }

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
    /// With --broker-pid: the broker's CPU over the measured window.
    pub broker_cpu: Option<crate::broker_cpu::BrokerCpu>,
    /// With --broker-metrics: the brokers' counters over the measured window.
    pub broker_metrics: Option<crate::broker_metrics::Counters>,
    /// Produce batches (one per partition per request) answered in it.
    pub batches: u64,
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

/// `key=value` (the value may contain `=`; the key may not be empty).
fn parse_topic_config(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("{text:?} is not KEY=VALUE")),
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
        || options
            .message_bytes_max
            .is_some_and(|max| max < options.message_bytes)
    {
        bail!(
            "need --message-bytes >= {}, --batch-bytes >= --message-bytes, --message-bytes-max >= --message-bytes",
            batch::PAYLOAD_HEADER_BYTES
        );
    }
    if !(0.0..=60_000.0).contains(&options.linger_ms) || options.messages == Some(0) {
        bail!("need --linger-ms in 0..=60000 and --messages > 0");
    }
    let acks_list = parse_acks(&options.acks)?;
    let mut admin = Connection::connect(&options.bootstrap)?;
    if !options.keep_topic {
        client::create_topic_with(
            &mut admin,
            &client::TopicSpec {
                name: &options.topic,
                partitions: options.partitions,
                replication_factor: options.replication_factor,
                configs: &options.topic_configs,
            },
        )?;
    }
    let mut layout = client::wait_for_leaders(&mut admin, &options.topic, !options.keep_topic)?;
    let partitions = layout.leaders.len() as i32;
    let mut addresses = producer_addresses(options, &layout, partitions)?;
    let mut results = Vec::new();
    for acks in acks_list {
        match options.messages {
            Some(n) => eprintln!("acks={acks}: {} s warm-up + {n} messages", options.warmup_s),
            None => eprintln!(
                "acks={acks}: {} s warm-up + {} s",
                options.warmup_s, options.duration_s
            ),
        }
        if layout.brokers > 1 {
            let (waited, settled) = wait_for_replicas(options, &mut admin)?;
            eprintln!(
                "replicas caught up (an acks=all record to every partition answered) in {:.1} s",
                waited.as_secs_f64()
            );
            if settled.leaders != layout.leaders {
                layout = settled;
                addresses = producer_addresses(options, &layout, partitions)?;
            }
        }
        results.push(run_one(options, acks, partitions, &addresses)?);
    }
    if !options.keep_topic {
        client::delete_topic(&mut admin, &options.topic)?;
    }
    Ok(results)
}

struct InFlight {
    id: i32,
    /// When the batch's first message was due (closed loop: sent).
    first_intended: Instant,
    /// Between the intended times of consecutive messages.
    spacing: Duration,
    first_sequence: u64,
    messages: u64,
    /// Partition batches in the request.
    batches: u64,
    bytes: u64,
    counted: bool,
}

struct ProducerResult {
    messages: u64,
    batches: u64,
    bytes: u64,
    /// When the last counted message was answered (acks=0: sent).
    finished: Option<Instant>,
    errors: u64,
    latency_us: Histogram<u64>,
    send_delay_us: Histogram<u64>,
    /// (first sequence, count) of every acknowledged batch.
    acked: Vec<(u64, u64)>,
}

/// Where each producer connects. Against one broker: --bootstrap, as
/// always. Against a cluster (Metadata lists several brokers): the leader
/// of the producer's partition, as a Kafka client sends there.
fn producer_addresses(
    options: &Options,
    layout: &client::Layout,
    partitions: i32,
) -> Result<Vec<String>> {
    let producers = options.producers.max(1);
    if layout.brokers <= 1 {
        return Ok(vec![options.bootstrap.clone(); producers]);
    }
    let first_leader = layout.leaders.first().map(|(id, _)| *id);
    if options.keys > 0
        && layout
            .leaders
            .iter()
            .any(|(id, _)| Some(*id) != first_leader)
    {
        bail!("--keys against a cluster needs every partition led by one broker (a producer has one connection)");
    }
    if options.consumers > 0 {
        bail!("--consumers against a cluster is not supported yet (they fetch from --bootstrap, not the leaders)");
    }
    let addresses: Vec<String> = (0..producers)
        .map(|producer| layout.leaders[producer % partitions as usize].1.clone())
        .collect();
    let used: Vec<String> = (0..producers.min(partitions as usize))
        .map(|p| {
            format!(
                "{p} -> node {} ({})",
                layout.leaders[p].0, layout.leaders[p].1
            )
        })
        .collect();
    eprintln!(
        "{} brokers; producers send to their partition's leader: {}",
        layout.brokers,
        used.join(", ")
    );
    Ok(addresses)
}

/// Against a cluster, before each acks run: one acks=all record to every
/// partition, answered once every in-sync replica has the log up to it,
/// so a run does not start with the replication backlog of the one
/// before (under acks=0 and acks=1 followers may fall behind). Retries
/// while leaders move or replicas catch up; returns how long it took and
/// the layout after it.
fn wait_for_replicas(
    options: &Options,
    admin: &mut Connection,
) -> Result<(Duration, client::Layout)> {
    const TIMEOUT: Duration = Duration::from_secs(180);
    let started = Instant::now();
    let mut layout = client::wait_for_leaders(admin, &options.topic, false)?;
    let mut pending: Vec<i32> = (0..layout.leaders.len() as i32).collect();
    loop {
        let mut by_leader: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for partition in &pending {
            let (_, address) = &layout.leaders[*partition as usize];
            by_leader.entry(address).or_default().push(*partition);
        }
        let mut retry = Vec::new();
        let mut last_error = 0;
        for (address, partitions) in by_leader {
            let mut connection = Connection::connect(address)?;
            let timestamp_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            let message = batch::Message {
                sequence: 0,
                send_us: 0,
                size: options.message_bytes,
                key: None,
            };
            let mut data = Vec::with_capacity(partitions.len());
            for partition in &partitions {
                data.push(
                    PartitionProduceData::default()
                        .with_index(*partition)
                        .with_records(Some(batch::build(
                            u32::MAX,
                            std::slice::from_ref(&message),
                            batch::Codec::None,
                            timestamp_ms,
                        )?)),
                );
            }
            // Under the connection's 60 s read timeout.
            let request = ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(50_000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(client::topic_name(&options.topic))
                    .with_partition_data(data)]);
            let response: ProduceResponse =
                connection.call(ApiKey::Produce, PRODUCE_VERSION, &request)?;
            for p in response
                .responses
                .iter()
                .flat_map(|t| t.partition_responses.iter())
            {
                match p.error_code {
                    0 => {}
                    // LEADER_NOT_AVAILABLE, NOT_LEADER_OR_FOLLOWER (a leader
                    // moved, or this broker has not caught up with the new
                    // topic yet), REQUEST_TIMED_OUT (replicas still catching
                    // up), NOT_ENOUGH_REPLICAS(_AFTER_APPEND): try again.
                    code @ (5 | 6 | 7 | 19 | 20) => {
                        retry.push(p.index);
                        last_error = code;
                    }
                    code => bail!(
                        "waiting for the replicas of {}/{}: {}",
                        options.topic,
                        p.index,
                        client::kafka::error_text(code)
                    ),
                }
            }
        }
        if retry.is_empty() {
            return Ok((started.elapsed(), layout));
        }
        if started.elapsed() >= TIMEOUT {
            bail!(
                "the replicas of {} did not catch up in {} s: partitions {retry:?} still answer {}",
                options.topic,
                TIMEOUT.as_secs(),
                client::kafka::error_text(last_error)
            );
        }
        if last_error != 7 {
            std::thread::sleep(Duration::from_millis(200));
        }
        pending = retry;
        layout = client::wait_for_leaders(admin, &options.topic, false)?;
    }
}

fn run_one(
    options: &Options,
    acks: i16,
    partitions: i32,
    addresses: &[String],
) -> Result<RunResult> {
    let mean_size =
        (options.message_bytes + options.message_bytes_max.unwrap_or(options.message_bytes)) / 2;
    let per_batch = (options.batch_bytes / mean_size.max(1)).max(1);
    // Send times are µs since `origin`, on the clock consumers read too.
    let origin = Instant::now();
    let cpu_before = cpu_time_us();
    let targets: e2e::Targets = Default::default();
    let measure_from_us = Arc::new(AtomicU64::new(u64::MAX));
    let consumers = spawn_consumers(
        options,
        acks,
        partitions,
        origin,
        &measure_from_us,
        &targets,
    )?;
    // After the consumers settled: the schedule starts now.
    let start = Instant::now() + Duration::from_millis(200);
    let measure_from = start + Duration::from_secs(options.warmup_s);
    measure_from_us.store(
        measure_from.saturating_duration_since(origin).as_micros() as u64,
        Ordering::Relaxed,
    );
    let end = match options.messages {
        // Bounded by count: the clock only guards against a stalled run.
        Some(_) => measure_from + Duration::from_secs(3600),
        None => measure_from + Duration::from_secs(options.duration_s),
    };
    let hlog = options.hgrm_dir.as_ref().map(|dir| {
        let _ = std::fs::create_dir_all(dir);
        dir.join(format!(
            "{}-acks-{}.hlog",
            crate::report::file_label(&options.label()),
            crate::report::acks_name(acks)
        ))
    });
    let progress = crate::progress::Progress::start(acks, measure_from, hlog);
    let broker_cpu = sample_broker_cpu(
        &options.broker_pid,
        measure_from,
        options.messages.is_none().then_some(end),
    );
    let broker_metrics = sample_broker_metrics(
        &options.broker_metrics,
        measure_from,
        options.messages.is_none().then_some(end),
    );
    let producers = options.producers.max(1);
    let handles: Vec<_> = (0..producers)
        .map(|producer| {
            let schedule = Schedule {
                producer: producer as u32,
                address: addresses[producer].clone(),
                origin,
                acks,
                partition: producer as i32 % partitions,
                partitions,
                per_batch,
                start,
                measure_from,
                end,
                quota: options.messages.map(|n| {
                    n / producers as u64 + u64::from((producer as u64) < n % producers as u64)
                }),
            };
            let (options, progress) = (options.clone(), progress.clone());
            std::thread::spawn(move || produce_loop(&options, &schedule, &progress))
        })
        .collect();
    let mut total = ProducerResult {
        messages: 0,
        batches: 0,
        bytes: 0,
        finished: None,
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
        total.batches += result.batches;
        total.bytes += result.bytes;
        total.finished = total.finished.max(result.finished);
        total.errors += result.errors;
        total.latency_us.add(&result.latency_us)?;
        total.send_delay_us.add(&result.send_delay_us)?;
        acked.push((producer as u32, result.acked));
    }
    progress.finish();
    let e2e = finish_consumers(options, partitions, acks, consumers, &targets, &acked)?;
    let cpu_us = cpu_time_us() - cpu_before;
    let broker_cpu = match broker_cpu {
        Some(sampler) => {
            let (before, after) = sampler
                .join()
                .map_err(|_| anyhow::anyhow!("CPU sampler panicked"))??;
            let after = match after {
                Some(after) => after,
                None => crate::broker_cpu::CpuTimes::of(&options.broker_pid)?,
            };
            Some(crate::broker_cpu::BrokerCpu::new(
                after.since(before),
                total.batches,
                total.bytes,
            ))
        }
        None => None,
    };
    let broker_metrics = match broker_metrics {
        Some(sampler) => {
            let (before, after) = sampler
                .join()
                .map_err(|_| anyhow::anyhow!("metrics sampler panicked"))??;
            let after = match after {
                Some(after) => after,
                None => crate::broker_metrics::Counters::scrape(&options.broker_metrics)?,
            };
            Some(after.since(before))
        }
        None => None,
    };
    let seconds = match options.messages {
        Some(_) => total
            .finished
            .map_or(0.0, |f| {
                f.saturating_duration_since(measure_from).as_secs_f64()
            })
            .max(1e-6),
        None => options.duration_s as f64,
    };
    Ok(RunResult {
        acks,
        messages: total.messages,
        bytes: total.bytes,
        seconds,
        errors: total.errors,
        latency_us: total.latency_us,
        send_delay_us: total.send_delay_us,
        cpu_us_per_message: cpu_us / (total.messages.max(1) as f64),
        broker_cpu,
        broker_metrics,
        batches: total.batches,
        e2e,
    })
}

type CpuWindow = (
    crate::broker_cpu::CpuTimes,
    Option<crate::broker_cpu::CpuTimes>,
);

/// Reads the brokers' CPU when the measured window opens and, for a timed
/// run, when it closes (a run bounded by count closes when its producers
/// finish, read by the caller).
fn sample_broker_cpu(
    pids: &[u32],
    from: Instant,
    until: Option<Instant>,
) -> Option<std::thread::JoinHandle<Result<CpuWindow>>> {
    if pids.is_empty() {
        return None;
    }
    let pids = pids.to_vec();
    Some(std::thread::spawn(move || {
        std::thread::sleep(from.saturating_duration_since(Instant::now()));
        let before = crate::broker_cpu::CpuTimes::of(&pids)?;
        let after = match until {
            Some(until) => {
                std::thread::sleep(until.saturating_duration_since(Instant::now()));
                Some(crate::broker_cpu::CpuTimes::of(&pids)?)
            }
            None => None,
        };
        Ok((before, after))
    }))
}

type MetricsWindow = (
    crate::broker_metrics::Counters,
    Option<crate::broker_metrics::Counters>,
);

/// Scrapes the brokers' `/metrics` when the measured window opens and, for
/// a timed run, when it closes (as `sample_broker_cpu`).
fn sample_broker_metrics(
    endpoints: &[String],
    from: Instant,
    until: Option<Instant>,
) -> Option<std::thread::JoinHandle<Result<MetricsWindow>>> {
    if endpoints.is_empty() {
        return None;
    }
    let endpoints = endpoints.to_vec();
    Some(std::thread::spawn(move || {
        std::thread::sleep(from.saturating_duration_since(Instant::now()));
        let before = crate::broker_metrics::Counters::scrape(&endpoints)?;
        let after = match until {
            Some(until) => {
                std::thread::sleep(until.saturating_duration_since(Instant::now()));
                Some(crate::broker_metrics::Counters::scrape(&endpoints)?)
            }
            None => None,
        };
        Ok((before, after))
    }))
}

/// One producer's part of a run.
struct Schedule {
    producer: u32,
    /// The broker this producer sends to.
    address: String,
    /// Send times in payloads are µs since this instant.
    origin: Instant,
    acks: i16,
    /// The producer's own partition (unkeyed records).
    partition: i32,
    partitions: i32,
    per_batch: usize,
    start: Instant,
    measure_from: Instant,
    end: Instant,
    /// Measured messages to send (count-bounded runs).
    quota: Option<u64>,
}

/// A per-producer xorshift stream: reproducible, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Per-message sizes, uniform in --message-bytes..=--message-bytes-max.
struct Sizes {
    min: usize,
    max: usize,
}

impl Sizes {
    fn next(&self, rng: &mut Rng) -> usize {
        if self.max <= self.min {
            return self.min;
        }
        self.min + (rng.next() % (self.max - self.min + 1) as u64) as usize
    }
}

/// Key numbers drawn uniformly, or by Zipf's law (weight 1/(k+1)) from a
/// cumulative table.
enum Keys {
    None,
    Uniform(u64),
    Zipf(Vec<f64>),
}

impl Keys {
    fn new(options: &Options) -> Keys {
        match (options.keys, options.key_distribution) {
            (0, _) => Keys::None,
            (n, KeyDistribution::Uniform) => Keys::Uniform(n),
            (n, KeyDistribution::Zipf) => {
                let mut total = 0.0;
                let mut cumulative: Vec<f64> = (0..n)
                    .map(|k| {
                        total += 1.0 / (k + 1) as f64;
                        total
                    })
                    .collect();
                cumulative.iter_mut().for_each(|c| *c /= total);
                Keys::Zipf(cumulative)
            }
        }
    }

    fn next(&self, rng: &mut Rng) -> Option<u64> {
        match self {
            Keys::None => None,
            Keys::Uniform(n) => Some(rng.next() % n),
            Keys::Zipf(cumulative) => {
                let u = rng.unit();
                Some(
                    cumulative
                        .partition_point(|c| *c < u)
                        .min(cumulative.len() - 1) as u64,
                )
            }
        }
    }
}

type ConsumerThreads = Vec<std::thread::JoinHandle<Result<e2e::Consumed>>>;

/// Starts the consumers at the partitions' current ends.
fn spawn_consumers(
    options: &Options,
    acks: i16,
    partitions: i32,
    origin: Instant,
    measure_from_us: &Arc<AtomicU64>,
    targets: &e2e::Targets,
) -> Result<ConsumerThreads> {
    if options.consumers == 0 {
        return Ok(Vec::new());
    }
    let mut admin = Connection::connect(&options.bootstrap)?;
    let starts = client::latest_offsets(&mut admin, &options.topic, partitions)?;
    let count = options.consumers.min(partitions.max(1) as usize);
    let (joined, joins) = std::sync::mpsc::channel();
    let threads: ConsumerThreads = (0..count)
        .map(|i| {
            let group = options.consumer_group.as_ref().map(|name| e2e::Group {
                name: format!("{name}-acks-{}", crate::report::acks_name(acks)),
                joined: joined.clone(),
                index: i,
            });
            let plan = e2e::Plan {
                bootstrap: options.bootstrap.clone(),
                topic: options.topic.clone(),
                partitions: starts
                    .iter()
                    .enumerate()
                    .filter(|(p, _)| group.is_some() || p % count == i)
                    .map(|(p, start)| (p as i32, *start))
                    .collect(),
                origin,
                measure_from_us: measure_from_us.clone(),
                targets: targets.clone(),
                group,
            };
            std::thread::spawn(move || e2e::consume(plan))
        })
        .collect();
    if options.consumer_group.is_some() {
        wait_for_one_generation(&joins, count)?;
    }
    Ok(threads)
}

/// Blocks until every group consumer has joined the same generation, so
/// the producers start on a settled assignment.
fn wait_for_one_generation(
    joins: &std::sync::mpsc::Receiver<(usize, i32)>,
    count: usize,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut latest = vec![None; count];
    loop {
        let settled = latest.iter().all(|g| g.is_some()) && latest.iter().all(|g| *g == latest[0]);
        if settled {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match joins.recv_timeout(left) {
            Ok((index, generation)) => {
                if let Some(slot) = latest.get_mut(index) {
                    *slot = Some(generation);
                }
            }
            Err(_) => bail!("the consumer group did not settle on one generation"),
        }
    }
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
    let ends = client::latest_offsets(&mut admin, &options.topic, partitions)?;
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

/// Sends batches. Closed loop: full batches back to back, bounded by the
/// requests in flight. Open loop (--rate): message m of this producer is
/// due at start + m / rate; a batch takes the messages due within
/// --linger-ms of its first one (at most a batch's worth) and leaves when
/// the last of them is due or the linger ends. Latency counts from each
/// message's due time.
fn produce_loop(
    options: &Options,
    schedule: &Schedule,
    progress: &crate::progress::Progress,
) -> Result<ProducerResult> {
    let mut connection = Connection::connect(&schedule.address)?;
    let reader = connection.try_clone_reader().context("clone connection")?;
    let (queue, pending) = mpsc::sync_channel::<InFlight>(options.in_flight.max(1));
    let reader_progress = progress.clone();
    let reader_thread = (schedule.acks != 0)
        .then(|| std::thread::spawn(move || read_responses(reader, pending, &reader_progress)));
    let spacing = options.rate.map(|rate| {
        Duration::from_secs_f64(options.producers.max(1) as f64 / (rate.max(1) as f64))
    });
    let linger = Duration::from_secs_f64(options.linger_ms / 1000.0);
    let per_send = spacing.map_or(schedule.per_batch, |spacing| {
        ((linger.as_secs_f64() / spacing.as_secs_f64()).floor() as usize + 1)
            .clamp(1, schedule.per_batch)
    });
    let sizes = Sizes {
        min: options.message_bytes,
        max: options.message_bytes_max.unwrap_or(options.message_bytes),
    };
    let keys = Keys::new(options);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ u64::from(schedule.producer + 1));
    let mut send_delay_us = histogram();
    let (mut next_message, mut counted_messages, mut sent_bytes) = (0u64, 0u64, 0u64);
    let mut counted_batches = 0u64;
    let mut last_sent = None;
    loop {
        let (first_intended, send_at) = match spacing {
            Some(spacing) => {
                let first = schedule.start + spacing.mul_f64(next_message as f64);
                let filled = first + spacing.mul_f64((per_send - 1) as f64);
                let send_at = if per_send == schedule.per_batch {
                    filled
                } else {
                    first + linger
                };
                (first, send_at)
            }
            None => {
                let now = Instant::now().max(schedule.start);
                (now, now)
            }
        };
        let counted = first_intended >= schedule.measure_from;
        if first_intended >= schedule.end
            || (counted && schedule.quota.is_some_and(|q| counted_messages >= q))
        {
            break;
        }
        let now = Instant::now();
        if send_at > now {
            std::thread::sleep(send_at - now);
        }
        let sent_at = Instant::now();
        if counted && spacing.is_some() {
            send_delay_us.saturating_record((sent_at - send_at).as_micros() as u64);
        }
        let first_intended = if spacing.is_some() {
            first_intended
        } else {
            sent_at
        };
        let count = match schedule.quota {
            Some(q) if counted => per_send.min((q - counted_messages) as usize),
            _ => per_send,
        };
        let first_send_us = first_intended
            .saturating_duration_since(schedule.origin)
            .as_micros() as u64;
        let spacing_us = spacing.map_or(0.0, |s| s.as_secs_f64() * 1e6);
        // One batch per partition the messages' keys pick.
        let mut by_partition: BTreeMap<i32, Vec<batch::Message>> = BTreeMap::new();
        let mut bytes = 0u64;
        for k in 0..count {
            let message = batch::Message {
                sequence: next_message + k as u64,
                send_us: first_send_us + (spacing_us * k as f64) as u64,
                size: sizes.next(&mut rng),
                key: keys.next(&mut rng),
            };
            bytes += message.size as u64;
            let partition = match message.key {
                Some(key) => {
                    (client::murmur2(batch::key_bytes(key).as_bytes()) & 0x7fff_ffff)
                        % schedule.partitions
                }
                None => schedule.partition,
            };
            by_partition.entry(partition).or_default().push(message);
        }
        let timestamp_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let mut data = Vec::with_capacity(by_partition.len());
        for (partition, messages) in &by_partition {
            let records = batch::build(
                schedule.producer,
                messages,
                options.compression,
                timestamp_ms,
            )?;
            data.push(
                PartitionProduceData::default()
                    .with_index(*partition)
                    .with_records(Some(records)),
            );
        }
        let request = ProduceRequest::default()
            .with_acks(schedule.acks)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(client::topic_name(&options.topic))
                .with_partition_data(data)]);
        let id = connection.send(ApiKey::Produce, PRODUCE_VERSION, &request)?;
        let in_flight = InFlight {
            id,
            first_intended,
            spacing: spacing.unwrap_or(Duration::ZERO),
            first_sequence: next_message,
            messages: count as u64,
            batches: by_partition.len() as u64,
            bytes,
            counted,
        };
        next_message += count as u64;
        if counted {
            counted_messages += count as u64;
            counted_batches += by_partition.len() as u64;
            sent_bytes += bytes;
            last_sent = Some(Instant::now());
            if schedule.acks == 0 {
                progress.record(count as u64, bytes, &[]);
            }
        }
        if schedule.acks != 0 {
            // Blocks while `in_flight` requests are unanswered.
            queue
                .send(in_flight)
                .map_err(|_| anyhow::anyhow!("response reader stopped"))?;
        }
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
        None => {
            // acks=0 gets no answers, so the last sends may still be on
            // their way when the run reads the partitions' ends for its
            // consumers (and a later run would count them). A broker
            // answers one connection's requests in order, Kafka and Sluice
            // alike, after the produce requests before them were appended:
            // one round trip here means every send of this producer is in
            // the leader's log (and, with one replica, below its high
            // watermark: consumers run against single brokers only).
            connection
                .call::<_, ApiVersionsResponse>(
                    ApiKey::ApiVersions,
                    0,
                    &ApiVersionsRequest::default(),
                )
                .context(
                    "round trip after the acks=0 sends (a broker closes the connection \
                     when an acks=0 write failed: that is how it tells the producer)",
                )?;
            Ok(ProducerResult {
                messages: counted_messages,
                batches: counted_batches,
                bytes: sent_bytes,
                finished: last_sent,
                errors: 0,
                latency_us: histogram(),
                send_delay_us,
                acked: Vec::new(),
            })
        }
    }
}

fn read_responses(
    mut connection: Connection,
    pending: mpsc::Receiver<InFlight>,
    progress: &crate::progress::Progress,
) -> Result<ProducerResult> {
    let mut result = ProducerResult {
        messages: 0,
        batches: 0,
        bytes: 0,
        finished: None,
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
        result.batches += request.batches;
        result.bytes += request.bytes;
        result.finished = Some(done);
        let latencies: Vec<u64> = (0..request.messages)
            .map(|k| {
                let due = request.first_intended + request.spacing.mul_f64(k as f64);
                done.saturating_duration_since(due).as_micros().max(1) as u64
            })
            .collect();
        for latency in &latencies {
            result.latency_us.saturating_record(*latency);
        }
        progress.record(request.messages, request.bytes, &latencies);
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        options: Options,
    }

    fn parse(args: &[&str]) -> Result<Options, clap::Error> {
        Cli::try_parse_from(std::iter::once("produce").chain(args.iter().copied()))
            .map(|cli| cli.options)
    }

    #[test]
    fn topic_defaults_are_one_replica_and_no_configs() {
        let options = parse(&[]).expect("defaults parse");
        assert_eq!(options.replication_factor, 1);
        assert!(options.topic_configs.is_empty());
    }

    #[test]
    fn replication_factor_and_repeated_topic_configs_parse() {
        let options = parse(&[
            "--replication-factor",
            "3",
            "--topic-config",
            "min.insync.replicas=2",
            "--topic-config",
            "flush.ms=1000",
            "--topic-config",
            "x=a=b",
        ])
        .expect("parses");
        assert_eq!(options.replication_factor, 3);
        assert_eq!(
            options.topic_configs,
            vec![
                ("min.insync.replicas".to_string(), "2".to_string()),
                ("flush.ms".to_string(), "1000".to_string()),
                ("x".to_string(), "a=b".to_string()),
            ]
        );
    }

    #[test]
    fn bad_replication_factors_and_topic_configs_are_refused() {
        for args in [
            &["--replication-factor", "0"][..],
            &["--replication-factor", "x"],
            &["--topic-config", "min.insync.replicas"],
            &["--topic-config", "=2"],
        ] {
            assert!(parse(args).is_err(), "{args:?} parsed");
        }
    }

    #[test]
    fn zipf_keys_favour_the_first_and_stay_in_range() {
        let keys = Keys::Zipf({
            let total: f64 = (0..100).map(|k| 1.0 / (k + 1) as f64).sum();
            let mut acc = 0.0;
            (0..100)
                .map(|k| {
                    acc += 1.0 / (k + 1) as f64 / total;
                    acc
                })
                .collect()
        });
        let mut rng = Rng(42);
        let mut counts = vec![0u32; 100];
        for _ in 0..100_000 {
            let key = keys.next(&mut rng).expect("keyed") as usize;
            counts[key] += 1;
        }
        // Zipf(1) over 100 keys: key 0 ~19%, key 1 ~9.6%, key 99 ~0.2%.
        assert!(counts[0] > 17_000 && counts[0] < 21_000, "{}", counts[0]);
        assert!(counts[0] > counts[1] && counts[1] > counts[50]);
        assert!(counts.iter().all(|c| *c > 0));
    }

    #[test]
    fn uniform_keys_cover_the_range() {
        let keys = Keys::Uniform(10);
        let mut rng = Rng(7);
        let mut seen = [false; 10];
        for _ in 0..1000 {
            seen[keys.next(&mut rng).expect("keyed") as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
        assert!(Keys::None.next(&mut rng).is_none());
    }
}
