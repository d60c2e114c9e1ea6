//! What the broker counts for `/metrics`, and how a scrape gets it.
//!
//! Each core counts in plain `Cell`s of its own (`CoreCounters`, and the
//! per-partition `Traffic` in partition.rs): no atomics, no locks, nothing
//! shared on the produce and fetch paths. A scrape (admin.rs, on a thread of
//! its own) sends every core a job through the router; the core copies its
//! counters and reads its partitions' offsets and sizes into a
//! `CoreSnapshot`, which is `Send`, and collect.rs turns the snapshots into
//! Prometheus families. Seastar and Redpanda gather per-shard metrics the
//! same way. A core that does not answer within the scrape's deadline is
//! left out of that scrape (and `sluice_scrape_cores_missing` says so).

pub mod collect;

use std::cell::Cell;
use std::time::Duration;

/// API keys counted (Kafka's keys are below 80 today).
pub const API_KEYS: usize = 80;
/// Versions counted per API key; higher versions count as the last.
pub const API_VERSIONS: usize = 20;
/// Error codes counted per API key: 0..=126 each; the last slot takes
/// -1 (UNKNOWN_SERVER_ERROR) and anything newer.
pub const ERROR_SLOTS: usize = 128;
const ERROR_OTHER: usize = ERROR_SLOTS - 1;
/// Upper bounds of the request latency buckets, in seconds (the last,
/// +Inf, is implied).
pub const LATENCY_BOUNDS_S: [f64; 15] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0,
];
const LATENCY_BUCKETS: usize = LATENCY_BOUNDS_S.len() + 1;

/// Why a core sent work to another core (`sluice_cross_core_calls_total`'s
/// `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    Produce,
    Fetch,
    /// A fetch long-poll waiting on another core's partitions.
    FetchWait,
    ListOffsets,
    Group,
    /// Topic changes, DeleteRecords, DescribeProducers, log dirs, epochs.
    Admin,
}

impl Hop {
    pub const ALL: [Hop; 6] = [
        Hop::Produce,
        Hop::Fetch,
        Hop::FetchWait,
        Hop::ListOffsets,
        Hop::Group,
        Hop::Admin,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Hop::Produce => "produce",
            Hop::Fetch => "fetch",
            Hop::FetchWait => "fetch_wait",
            Hop::ListOffsets => "list_offsets",
            Hop::Group => "group",
            Hop::Admin => "admin",
        }
    }
}

/// Why the broker closed a client connection it had accepted
/// (`sluice_connections_closed_by_broker_total`'s `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The TLS handshake failed or timed out (a plaintext client on a TLS
    /// port, an untrusted certificate).
    TlsHandshake,
    /// SASL: wrong credentials, a request before authentication, an
    /// expired session.
    Authentication,
    /// A frame the reader refused (over the size limit, a bad length).
    BadFrame,
    /// A request that could not be decoded or answered.
    MalformedRequest,
    /// An API or version not served, or a failed acks=0 write.
    RefusedRequest,
    /// No whole request for `connections.max.idle.ms`.
    Idle,
    /// At accept: `max.connections.per.ip` (or its override) reached.
    PerIpLimit,
}

impl CloseReason {
    pub const ALL: [CloseReason; 7] = [
        CloseReason::TlsHandshake,
        CloseReason::Authentication,
        CloseReason::BadFrame,
        CloseReason::MalformedRequest,
        CloseReason::RefusedRequest,
        CloseReason::Idle,
        CloseReason::PerIpLimit,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CloseReason::TlsHandshake => "tls_handshake",
            CloseReason::Authentication => "authentication",
            CloseReason::BadFrame => "bad_frame",
            CloseReason::MalformedRequest => "malformed_request",
            CloseReason::RefusedRequest => "refused_request",
            CloseReason::Idle => "idle",
            CloseReason::PerIpLimit => "max_connections_per_ip",
        }
    }
}

/// One core's request, connection and cross-core counters. Only its own
/// core touches it.
pub struct CoreCounters {
    /// By `api_key * API_VERSIONS + version`.
    requests: Box<[Cell<u64>]>,
    /// Per API key: from the frame's arrival to the answer ready (total),
    /// to the handler's start (queue: the core's run queue), and the
    /// handler's own time (local, waits for followers included).
    latency: Latencies,
    queue_latency: Latencies,
    local_latency: Latencies,
    /// By `to_core * Hop::ALL.len() + kind`.
    hops: Box<[Cell<u64>]>,
    /// By `api_key * ERROR_SLOTS + slot`: every code of every response.
    errors: Box<[Cell<u64>]>,
    /// By listener index (the order of `listeners`).
    connections_accepted: Box<[Cell<u64>]>,
    connections_closed: Box<[Cell<u64>]>,
    connections_rejected: Cell<u64>,
    /// By `CloseReason as usize`.
    closed_by_broker: Box<[Cell<u64>]>,
    /// Produce requests per acks value (the order of `ACKS`).
    produce_latency: Latencies,
    /// ISR changes committed for partitions led on this core (Kafka's
    /// IsrShrinksPerSec / IsrExpandsPerSec).
    isr_shrinks: Cell<u64>,
    isr_expands: Cell<u64>,
}

/// Produce's acks values as on the wire, and as the `acks` label says.
pub const ACKS: [(i16, &str); 3] = [(0, "0"), (1, "1"), (-1, "all")];

fn latency_bucket(took: Duration) -> usize {
    let seconds = took.as_secs_f64();
    LATENCY_BOUNDS_S
        .iter()
        .position(|&bound| seconds <= bound)
        .unwrap_or(LATENCY_BOUNDS_S.len())
}

/// One latency histogram per row (an API key, an acks value), in a core's
/// cells: counts per bucket of `LATENCY_BOUNDS_S` (+Inf last) and the sum.
struct Latencies {
    /// By `row * LATENCY_BUCKETS + bucket`.
    buckets: Box<[Cell<u64>]>,
    /// Per row, in nanoseconds.
    sum_ns: Box<[Cell<u64>]>,
}

impl Latencies {
    fn new(rows: usize) -> Latencies {
        Latencies {
            buckets: cells(rows * LATENCY_BUCKETS),
            sum_ns: cells(rows),
        }
    }

    fn record(&self, row: usize, took: Duration) {
        if let Some(cell) = self
            .buckets
            .get(row * LATENCY_BUCKETS + latency_bucket(took))
        {
            bump(cell, 1);
            bump(
                &self.sum_ns[row],
                u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
            );
        }
    }

    fn snapshot(&self) -> LatenciesSnapshot {
        LatenciesSnapshot {
            buckets: self.buckets.iter().map(Cell::get).collect(),
            sum_ns: self.sum_ns.iter().map(Cell::get).collect(),
        }
    }
}

/// `Latencies` as read at a scrape.
#[derive(Debug, Clone, Default)]
pub struct LatenciesSnapshot {
    buckets: Vec<u64>,
    sum_ns: Vec<u64>,
}

impl LatenciesSnapshot {
    /// (row, per-bucket counts (not cumulative), sum in seconds) of every
    /// row with a sample.
    pub fn rows(&self) -> impl Iterator<Item = (usize, &[u64], f64)> + '_ {
        self.buckets
            .chunks(LATENCY_BUCKETS)
            .enumerate()
            .filter(|(_, buckets)| buckets.iter().any(|&n| n > 0))
            .map(|(row, buckets)| (row, buckets, self.sum_ns[row] as f64 / 1e9))
    }

    fn add(&mut self, other: &LatenciesSnapshot) {
        for (to, from) in [
            (&mut self.buckets, &other.buckets),
            (&mut self.sum_ns, &other.sum_ns),
        ] {
            if to.len() < from.len() {
                to.resize(from.len(), 0);
            }
            for (a, b) in to.iter_mut().zip(from) {
                *a = a.wrapping_add(*b);
            }
        }
    }
}

fn cells(n: usize) -> Box<[Cell<u64>]> {
    (0..n).map(|_| Cell::new(0)).collect()
}

fn bump(cell: &Cell<u64>, by: u64) {
    cell.set(cell.get().wrapping_add(by));
}

impl CoreCounters {
    pub fn new(cores: usize, listeners: usize) -> CoreCounters {
        CoreCounters {
            requests: cells(API_KEYS * API_VERSIONS),
            latency: Latencies::new(API_KEYS),
            queue_latency: Latencies::new(API_KEYS),
            local_latency: Latencies::new(API_KEYS),
            hops: cells(cores * Hop::ALL.len()),
            errors: cells(API_KEYS * ERROR_SLOTS),
            connections_accepted: cells(listeners.max(1)),
            connections_closed: cells(listeners.max(1)),
            connections_rejected: Cell::new(0),
            closed_by_broker: cells(CloseReason::ALL.len()),
            produce_latency: Latencies::new(ACKS.len()),
            isr_shrinks: Cell::new(0),
            isr_expands: Cell::new(0),
        }
    }

    /// A leader's ISR change committed: from `before` members to `after`.
    pub fn isr_changed(&self, before: usize, after: usize) {
        match after.cmp(&before) {
            std::cmp::Ordering::Less => bump(&self.isr_shrinks, 1),
            std::cmp::Ordering::Greater => bump(&self.isr_expands, 1),
            std::cmp::Ordering::Equal => {}
        }
    }

    /// A request that was decoded and handled: `queued` from its frame's
    /// arrival to its handler's start, then `local` in the handler until
    /// its answer was ready to send.
    pub fn request(&self, api_key: i16, version: i16, queued: Duration, local: Duration) {
        let Ok(api) = usize::try_from(api_key) else {
            return;
        };
        if api >= API_KEYS {
            return;
        }
        let version = usize::try_from(version).unwrap_or(0).min(API_VERSIONS - 1);
        bump(&self.requests[api * API_VERSIONS + version], 1);
        self.latency.record(api, queued + local);
        self.queue_latency.record(api, queued);
        self.local_latency.record(api, local);
    }

    /// One error code (NONE included) in a response of `api_key`.
    pub fn error(&self, api_key: i16, code: i16) {
        let Some(api) = usize::try_from(api_key).ok().filter(|a| *a < API_KEYS) else {
            return;
        };
        let slot = usize::try_from(code)
            .ok()
            .filter(|c| *c < ERROR_OTHER)
            .unwrap_or(ERROR_OTHER);
        bump(&self.errors[api * ERROR_SLOTS + slot], 1);
    }

    pub fn hop(&self, to_core: usize, kind: Hop) {
        let index = to_core * Hop::ALL.len() + kind as usize;
        if let Some(cell) = self.hops.get(index) {
            bump(cell, 1);
        }
    }

    pub fn connection_accepted(&self, listener: usize) {
        if let Some(cell) = self.connections_accepted.get(listener) {
            bump(cell, 1);
        }
    }

    pub fn connection_closed(&self, listener: usize) {
        if let Some(cell) = self.connections_closed.get(listener) {
            bump(cell, 1);
        }
    }

    /// The broker closed an accepted connection, for `reason`.
    pub fn closed_by_broker(&self, reason: CloseReason) {
        bump(&self.closed_by_broker[reason as usize], 1);
    }

    /// A produce request answered (or, for acks=0, done), `took` from its
    /// frame's arrival: the latency a producer sees per acks setting.
    pub fn produce_acked(&self, acks: i16, took: Duration) {
        if let Some(index) = ACKS.iter().position(|(wire, _)| *wire == acks) {
            self.produce_latency.record(index, took);
        }
    }

    /// Closed at accept: `max.connections` reached.
    pub fn connection_rejected(&self) {
        bump(&self.connections_rejected, 1);
    }

    fn snapshot(&self, core: usize) -> CountersSnapshot {
        let values = |cells: &[Cell<u64>]| cells.iter().map(Cell::get).collect();
        CountersSnapshot {
            core,
            requests: values(&self.requests),
            latency: self.latency.snapshot(),
            queue_latency: self.queue_latency.snapshot(),
            local_latency: self.local_latency.snapshot(),
            hops: values(&self.hops),
            errors: values(&self.errors),
            connections_accepted: values(&self.connections_accepted),
            connections_closed: values(&self.connections_closed),
            connections_rejected: self.connections_rejected.get(),
            closed_by_broker: values(&self.closed_by_broker),
            produce_latency: self.produce_latency.snapshot(),
            isr_shrinks: self.isr_shrinks.get(),
            isr_expands: self.isr_expands.get(),
        }
    }
}

/// `CoreCounters` as read at a scrape.
#[derive(Debug, Clone)]
pub struct CountersSnapshot {
    pub core: usize,
    requests: Vec<u64>,
    pub latency: LatenciesSnapshot,
    pub queue_latency: LatenciesSnapshot,
    pub local_latency: LatenciesSnapshot,
    hops: Vec<u64>,
    errors: Vec<u64>,
    /// By listener index.
    pub connections_accepted: Vec<u64>,
    pub connections_closed: Vec<u64>,
    pub connections_rejected: u64,
    /// By `CloseReason as usize`.
    pub closed_by_broker: Vec<u64>,
    pub produce_latency: LatenciesSnapshot,
    pub isr_shrinks: u64,
    pub isr_expands: u64,
}

impl CountersSnapshot {
    /// (api key, version, count) of every counted pair.
    pub fn requests(&self) -> impl Iterator<Item = (i16, i16, u64)> + '_ {
        self.requests
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(i, &n)| ((i / API_VERSIONS) as i16, (i % API_VERSIONS) as i16, n))
    }

    /// (api key, error code, count) of every counted pair; -1 stands for
    /// UNKNOWN_SERVER_ERROR and codes past the counted ones.
    pub fn errors(&self) -> impl Iterator<Item = (i16, i16, u64)> + '_ {
        self.errors
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(i, &n)| {
                let slot = i % ERROR_SLOTS;
                let code = if slot == ERROR_OTHER { -1 } else { slot as i16 };
                ((i / ERROR_SLOTS) as i16, code, n)
            })
    }

    /// (to core, kind, count) of every counted pair.
    pub fn hops(&self) -> impl Iterator<Item = (usize, Hop, u64)> + '_ {
        self.hops
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(i, &n)| (i / Hop::ALL.len(), Hop::ALL[i % Hop::ALL.len()], n))
    }

    /// Adds `other`'s counts to these (a merge of several cores; the core
    /// index stays this one's).
    pub fn add(&mut self, other: &CountersSnapshot) {
        let add = |to: &mut Vec<u64>, from: &[u64]| {
            if to.len() < from.len() {
                to.resize(from.len(), 0);
            }
            for (a, b) in to.iter_mut().zip(from) {
                *a = a.wrapping_add(*b);
            }
        };
        add(&mut self.requests, &other.requests);
        self.latency.add(&other.latency);
        self.queue_latency.add(&other.queue_latency);
        self.local_latency.add(&other.local_latency);
        add(&mut self.hops, &other.hops);
        add(&mut self.errors, &other.errors);
        add(&mut self.connections_accepted, &other.connections_accepted);
        add(&mut self.connections_closed, &other.connections_closed);
        add(&mut self.closed_by_broker, &other.closed_by_broker);
        self.produce_latency.add(&other.produce_latency);
        self.connections_rejected += other.connections_rejected;
        self.isr_shrinks += other.isr_shrinks;
        self.isr_expands += other.isr_expands;
    }
}

/// One partition as a scrape sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionSnapshot {
    pub topic: String,
    pub partition: i32,
    pub leader: bool,
    /// A leader whose ISR is smaller than its replica set.
    pub under_replicated: bool,
    /// A leader whose ISR is below `min.insync.replicas`.
    pub under_min_isr: bool,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub high_watermark: i64,
    pub size_bytes: u64,
    pub traffic: TrafficSnapshot,
    /// Durable writes of the log's group commit (one per commit), the
    /// bytes written and how long each took.
    pub log_stats: storage::LogStats,
}

/// A partition's record traffic, Kafka's BrokerTopicMetrics per partition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficSnapshot {
    /// Produced to this leader: bytes of the batches, records, batches.
    pub bytes_in: u64,
    pub messages_in: u64,
    pub batches_in: u64,
    /// Appended as a follower.
    pub replication_bytes_in: u64,
    /// Read by consumers.
    pub bytes_out: u64,
    /// Read by followers.
    pub replication_bytes_out: u64,
}

/// A partition's traffic counters, on its core.
#[derive(Default)]
pub struct Traffic {
    bytes_in: Cell<u64>,
    messages_in: Cell<u64>,
    batches_in: Cell<u64>,
    replication_bytes_in: Cell<u64>,
    bytes_out: Cell<u64>,
    replication_bytes_out: Cell<u64>,
}

impl Traffic {
    pub fn produced(&self, bytes: usize, records: i32) {
        bump(&self.bytes_in, bytes as u64);
        bump(&self.messages_in, u64::try_from(records).unwrap_or(0));
        bump(&self.batches_in, 1);
    }

    pub fn replicated_in(&self, bytes: usize) {
        bump(&self.replication_bytes_in, bytes as u64);
    }

    pub fn read(&self, bytes: usize, by_replica: bool) {
        let counter = if by_replica {
            &self.replication_bytes_out
        } else {
            &self.bytes_out
        };
        bump(counter, bytes as u64);
    }

    pub fn snapshot(&self) -> TrafficSnapshot {
        TrafficSnapshot {
            bytes_in: self.bytes_in.get(),
            messages_in: self.messages_in.get(),
            batches_in: self.batches_in.get(),
            replication_bytes_in: self.replication_bytes_in.get(),
            bytes_out: self.bytes_out.get(),
            replication_bytes_out: self.replication_bytes_out.get(),
        }
    }
}

/// The cluster as this node's metadata image and controller see it
/// (Kafka's KafkaController and raft-metrics figures).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterSnapshot {
    /// Requests this node's voter committed as leader, by latency.
    pub commit_latency: controller::CommitLatency,
    /// This node is the active controller.
    pub active_controller: bool,
    /// The quorum leader's node id, if known.
    pub controller_leader: Option<u64>,
    /// The quorum's term (Kafka's leader epoch of the metadata log).
    pub controller_epoch: u64,
    /// The metadata log's commit index, and what this node applied.
    pub metadata_committed: u64,
    pub metadata_applied: u64,
    pub topics: usize,
    pub partitions: usize,
    /// Partitions without a leader.
    pub offline_partitions: usize,
    pub active_brokers: usize,
    pub fenced_brokers: usize,
}

impl ClusterSnapshot {
    pub fn of(
        node_id: i32,
        image: &controller::MetadataImage,
        status: &controller::rpc::QuorumStatus,
        commit_latency: controller::CommitLatency,
    ) -> ClusterSnapshot {
        let partitions = image.topics.values().flat_map(|t| t.partitions.iter());
        let fenced = image.brokers.values().filter(|b| b.fenced).count();
        ClusterSnapshot {
            commit_latency,
            active_controller: status.leader == Some(node_id as u64)
                && status.node_id == node_id as u64,
            controller_leader: status.leader,
            controller_epoch: status.term,
            metadata_committed: status.commit_index,
            metadata_applied: image.applied,
            topics: image.topics.len(),
            partitions: partitions.clone().count(),
            offline_partitions: partitions.filter(|p| p.leader < 0).count(),
            active_brokers: image.brokers.len() - fenced,
            fenced_brokers: fenced,
        }
    }
}

/// One consumer group a core coordinates, as a scrape sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSnapshot {
    pub id: String,
    /// Kafka's state name: Empty, PreparingRebalance, CompletingRebalance,
    /// Stable.
    pub state: &'static str,
    pub members: usize,
    /// Each rebalance moves it by one.
    pub generation: i32,
    /// (topic, partition, committed offset).
    pub offsets: Vec<(String, i32, i64)>,
}

/// Everything one core answers a scrape with.
#[derive(Debug, Clone)]
pub struct CoreSnapshot {
    pub counters: CountersSnapshot,
    pub partitions: Vec<PartitionSnapshot>,
    pub groups: Vec<GroupSnapshot>,
    pub tail_cache_bytes: usize,
    pub write_buffer_bytes: usize,
    /// Requests read and not yet answered (filled in by the core).
    pub requests_in_flight: usize,
}

impl CoreCounters {
    /// This core's answer to a scrape (the partitions are the caller's).
    pub fn core_snapshot(
        &self,
        core: usize,
        partitions: Vec<PartitionSnapshot>,
        tail_cache_bytes: usize,
        write_buffer_bytes: usize,
    ) -> CoreSnapshot {
        CoreSnapshot {
            counters: self.snapshot(core),
            partitions,
            groups: Vec::new(),
            tail_cache_bytes,
            write_buffer_bytes,
            requests_in_flight: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_land_in_their_api_version_and_latency_bucket() {
        let counters = CoreCounters::new(2, 1);
        let none = Duration::ZERO;
        counters.request(0, 9, Duration::from_micros(100), Duration::from_micros(200));
        counters.request(0, 9, none, Duration::from_millis(3));
        counters.request(1, 13, none, Duration::from_secs(60));
        // Out of range: not counted, no panic.
        counters.request(-1, 0, none, none);
        counters.request(500, 0, none, none);
        counters.request(3, 99, none, none);
        let snapshot = counters.snapshot(0);
        let requests: Vec<_> = snapshot.requests().collect();
        assert_eq!(
            requests,
            vec![(0, 9, 2), (1, 13, 1), (3, (API_VERSIONS - 1) as i16, 1)]
        );
        let latencies: Vec<_> = snapshot.latency.rows().collect();
        assert_eq!(latencies.len(), 3);
        let (api, buckets, sum) = latencies[0];
        assert_eq!(api, 0);
        // 300 us is in (250 us, 500 us]; 3 ms in (2.5 ms, 5 ms].
        assert_eq!(buckets[2], 1);
        assert_eq!(buckets[5], 1);
        assert_eq!(buckets.iter().sum::<u64>(), 2);
        assert!((sum - 0.0033).abs() < 1e-9, "{sum}");
        // 60 s is past the last bound: the +Inf bucket.
        assert_eq!(latencies[1].1[LATENCY_BUCKETS - 1], 1);
        // The queue part alone: 100 us and nothing, in the first bucket.
        let queued: Vec<_> = snapshot.queue_latency.rows().collect();
        assert_eq!(queued[0].1[0], 2);
    }

    #[test]
    fn hops_count_by_target_and_kind_and_merge() {
        let a = CoreCounters::new(2, 1);
        a.hop(1, Hop::Produce);
        a.hop(1, Hop::Produce);
        a.hop(1, Hop::FetchWait);
        a.hop(7, Hop::Fetch); // no such core: ignored
        let b = CoreCounters::new(2, 1);
        b.hop(0, Hop::Fetch);
        b.connection_accepted(0);
        b.connection_accepted(3); // no such listener: ignored
        let mut merged = a.snapshot(0);
        merged.add(&b.snapshot(1));
        let hops: Vec<_> = merged.hops().collect();
        assert_eq!(
            hops,
            vec![
                (0, Hop::Fetch, 1),
                (1, Hop::Produce, 2),
                (1, Hop::FetchWait, 1)
            ]
        );
        assert_eq!(merged.connections_accepted, vec![1]);
    }

    #[test]
    fn traffic_splits_client_and_replica_reads() {
        let traffic = Traffic::default();
        traffic.produced(1000, 10);
        traffic.replicated_in(500);
        traffic.read(300, false);
        traffic.read(200, true);
        assert_eq!(
            traffic.snapshot(),
            TrafficSnapshot {
                bytes_in: 1000,
                messages_in: 10,
                batches_in: 1,
                replication_bytes_in: 500,
                bytes_out: 300,
                replication_bytes_out: 200,
            }
        );
    }
}
