//! The cores' snapshots as Prometheus families (OpenMetrics text through
//! prometheus-client's encoder). Names follow what Kafka's JMX exporter
//! produces where Kafka has the metric (`kafka_server_brokertopicmetrics_*`,
//! `kafka_log_log_*`, ...); Sluice's own are `sluice_*`. docs/operations.md
//! lists them all.

use super::{ClusterSnapshot, CoreSnapshot, CountersSnapshot, PartitionSnapshot, LATENCY_BOUNDS_S};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::fmt::Error;

/// One scrape's data.
#[derive(Debug)]
pub struct Scrape {
    pub node_id: i32,
    pub cores: usize,
    pub snapshots: Vec<CoreSnapshot>,
    pub ready: bool,
    pub cluster: ClusterSnapshot,
    /// The client listeners' names, by index.
    pub listeners: Vec<String>,
}

impl Scrape {
    /// The OpenMetrics text of this scrape.
    pub fn encode(self) -> Result<String, Error> {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry)?;
        Ok(text)
    }
}

type Labels<'a> = Vec<(&'static str, &'a str)>;

/// Writes one histogram family: a histogram per row of `latencies`,
/// labelled by `labels(row)`, on `LATENCY_BOUNDS_S`.
fn histograms<'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    latencies: &super::LatenciesSnapshot,
    labels: impl Fn(usize) -> Labels<'a>,
) -> Result<(), Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (row, buckets, sum) in latencies.rows() {
        let bounds = LATENCY_BOUNDS_S.iter().copied().chain([f64::MAX]);
        let buckets: Vec<(f64, u64)> = bounds.zip(buckets.iter().copied()).collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        family
            .encode_family(&labels(row))?
            .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
    }
    Ok(())
}

/// Writes one family: `samples` as (labels, value).
fn counters<'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels<'a>, u64)>,
) -> Result<(), Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in samples {
        if labels.is_empty() {
            family.encode_counter::<NoLabelSet, _, u64>(&value, None)?;
        } else {
            family
                .encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
        }
    }
    Ok(())
}

fn gauges<'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels<'a>, i64)>,
) -> Result<(), Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in samples {
        if labels.is_empty() {
            family.encode_gauge(&value)?;
        } else {
            family.encode_family(&labels)?.encode_gauge(&value)?;
        }
    }
    Ok(())
}

fn api_name(key: i16) -> String {
    kafka_protocol::messages::ApiKey::try_from(key)
        .map_or_else(|_| format!("Unknown{key}"), |api| format!("{api:?}"))
}

/// Kafka's name of an error code (`NOT_LEADER_OR_FOLLOWER`), as its
/// ErrorsPerSec `error` tag spells it.
fn error_name(code: i16) -> String {
    if code == 0 {
        return "NONE".to_string();
    }
    let Some(error) = kafka_protocol::error::ResponseError::try_from_code(code) else {
        return format!("UNKNOWN_CODE_{code}");
    };
    let camel = format!("{error:?}");
    let mut name = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), Error> {
        let partitions: Vec<&PartitionSnapshot> = self
            .snapshots
            .iter()
            .flat_map(|s| s.partitions.iter())
            .collect();
        self.encode_topics(&mut encoder, &partitions)?;
        self.encode_partitions(&mut encoder, &partitions)?;
        self.encode_requests(&mut encoder)?;
        self.encode_cores(&mut encoder)?;
        self.encode_cluster(&mut encoder)?;
        self.encode_groups(&mut encoder)?;
        gauges(
            &mut encoder,
            "sluice_broker_ready",
            "1 once every core opened its partitions and the broker is registered and unfenced",
            [(vec![], i64::from(self.ready))],
        )?;
        gauges(
            &mut encoder,
            "sluice_scrape_cores_missing",
            "Cores that did not answer this scrape in time (their figures are missing from it)",
            [(vec![], (self.cores - self.snapshots.len()) as i64)],
        )
    }
}

impl Scrape {
    fn encode_cluster(&self, encoder: &mut DescriptorEncoder) -> Result<(), Error> {
        let c = &self.cluster;
        let one = |value: i64| [(vec![], value)];
        let families: [(&str, &str, i64); 9] = [
            (
                "kafka_controller_kafkacontroller_activecontrollercount",
                "1 on the active controller (the metadata quorum's leader), 0 elsewhere",
                i64::from(c.active_controller),
            ),
            (
                "kafka_controller_kafkacontroller_offlinepartitionscount",
                "Partitions without a leader, cluster-wide (this node's metadata image)",
                c.offline_partitions as i64,
            ),
            (
                "kafka_controller_kafkacontroller_globalpartitioncount",
                "Partitions in the cluster",
                c.partitions as i64,
            ),
            (
                "kafka_controller_kafkacontroller_globaltopiccount",
                "Topics in the cluster",
                c.topics as i64,
            ),
            (
                "kafka_controller_kafkacontroller_activebrokercount",
                "Registered brokers that are not fenced",
                c.active_brokers as i64,
            ),
            (
                "kafka_controller_kafkacontroller_fencedbrokercount",
                "Registered brokers that are fenced (missed their heartbeats)",
                c.fenced_brokers as i64,
            ),
            (
                "kafka_server_raftmetrics_current_leader",
                "Node id of the metadata quorum's leader as this node knows it (-1: none)",
                c.controller_leader.map_or(-1, |id| id as i64),
            ),
            (
                "kafka_server_raftmetrics_current_epoch",
                "The metadata quorum's term",
                c.controller_epoch as i64,
            ),
            (
                "kafka_server_raftmetrics_high_watermark",
                "The metadata log's commit index as this node knows it",
                c.metadata_committed as i64,
            ),
        ];
        for (name, help, value) in families {
            gauges(encoder, name, help, one(value))?;
        }
        let latency = &c.commit_latency;
        let bounds = controller::COMMIT_LATENCY_BOUNDS_S
            .iter()
            .copied()
            .chain([f64::MAX]);
        let buckets: Vec<(f64, u64)> = bounds.zip(latency.buckets).collect();
        encoder
            .encode_descriptor(
                "sluice_controller_commit_duration_seconds",
                "Metadata requests taken by this node as quorum leader, from submission to commit and apply (Kafka: raft-metrics commit-latency-avg/max)",
                None,
                MetricType::Histogram,
            )?
            .encode_histogram::<NoLabelSet>(latency.sum_seconds, latency.count, &buckets, None)?;
        gauges(
            encoder,
            "sluice_metadata_applied_offset",
            "The metadata log entry this node's image has applied (behind the high watermark: the broker lags the quorum)",
            one(c.metadata_applied as i64),
        )
    }

    fn encode_groups(&self, encoder: &mut DescriptorEncoder) -> Result<(), Error> {
        let groups: Vec<&super::GroupSnapshot> = self
            .snapshots
            .iter()
            .flat_map(|s| s.groups.iter())
            .collect();
        let states = [
            "Empty",
            "PreparingRebalance",
            "CompletingRebalance",
            "Stable",
        ];
        let mut by_state: BTreeMap<&str, i64> = states.iter().map(|s| (*s, 0)).collect();
        for group in &groups {
            *by_state.entry(group.state).or_default() += 1;
        }
        gauges(
            encoder,
            "kafka_coordinator_group_groupmetadatamanager_numgroups",
            "Consumer groups this broker coordinates (Kafka: GroupMetadataManager NumGroups)",
            [(vec![], groups.len() as i64)],
        )?;
        gauges(
            encoder,
            "sluice_consumer_groups",
            "Consumer groups this broker coordinates, by state (Kafka: NumGroupsStable, NumGroupsEmpty, ...)",
            by_state
                .iter()
                .map(|(state, n)| (vec![("state", *state)], *n)),
        )?;
        gauges(
            encoder,
            "sluice_consumer_group_members",
            "Members of each group this broker coordinates",
            groups
                .iter()
                .map(|g| (vec![("group", g.id.as_str())], g.members as i64)),
        )?;
        gauges(
            encoder,
            "sluice_consumer_group_generation",
            "Generation of each group: it moves by one per rebalance, so its rate is the rebalance rate",
            groups
                .iter()
                .map(|g| (vec![("group", g.id.as_str())], i64::from(g.generation))),
        )?;
        let committed: Vec<(&str, &str, String, i64)> = groups
            .iter()
            .flat_map(|g| {
                g.offsets.iter().map(|(topic, partition, offset)| {
                    (
                        g.id.as_str(),
                        topic.as_str(),
                        partition.to_string(),
                        *offset,
                    )
                })
            })
            .collect();
        // Lag as kafka-consumer-groups shows it (high watermark minus the
        // committed offset), for the partitions this broker leads.
        let high_watermarks: BTreeMap<(&str, String), i64> = self
            .snapshots
            .iter()
            .flat_map(|s| s.partitions.iter())
            .filter(|p| p.leader)
            .map(|p| {
                (
                    (p.topic.as_str(), p.partition.to_string()),
                    p.high_watermark,
                )
            })
            .collect();
        gauges(
            encoder,
            "sluice_consumer_group_lag",
            "High watermark minus the group's committed offset, for partitions led by this broker (kafka-consumer-groups' LAG)",
            committed.iter().filter_map(|(group, topic, partition, offset)| {
                let hw = high_watermarks.get(&(*topic, partition.clone()))?;
                Some((
                    vec![
                        ("group", *group),
                        ("topic", *topic),
                        ("partition", partition.as_str()),
                    ],
                    (hw - offset).max(0),
                ))
            }),
        )?;
        gauges(
            encoder,
            "sluice_consumer_group_committed_offset",
            "Each group's committed offset per partition (lag: the partition leader's kafka_log_log_logendoffset minus this)",
            committed.iter().map(|(group, topic, partition, offset)| {
                (
                    vec![
                        ("group", *group),
                        ("topic", *topic),
                        ("partition", partition.as_str()),
                    ],
                    *offset,
                )
            }),
        )
    }

    fn encode_topics(
        &self,
        encoder: &mut DescriptorEncoder,
        partitions: &[&PartitionSnapshot],
    ) -> Result<(), Error> {
        let mut topics: BTreeMap<&str, super::TrafficSnapshot> = BTreeMap::new();
        for p in partitions {
            let sum = topics.entry(p.topic.as_str()).or_default();
            let t = &p.traffic;
            sum.bytes_in += t.bytes_in;
            sum.messages_in += t.messages_in;
            sum.batches_in += t.batches_in;
            sum.replication_bytes_in += t.replication_bytes_in;
            sum.bytes_out += t.bytes_out;
            sum.replication_bytes_out += t.replication_bytes_out;
        }
        let per_topic = |field: fn(&super::TrafficSnapshot) -> u64| {
            topics
                .iter()
                .map(move |(topic, t)| (vec![("topic", *topic)], field(t)))
        };
        counters(
            encoder,
            "kafka_server_brokertopicmetrics_bytesin",
            "Bytes of record batches produced to this broker's leaders (Kafka: BytesInPerSec)",
            per_topic(|t| t.bytes_in),
        )?;
        counters(
            encoder,
            "kafka_server_brokertopicmetrics_messagesin",
            "Records produced to this broker's leaders (Kafka: MessagesInPerSec)",
            per_topic(|t| t.messages_in),
        )?;
        counters(
            encoder,
            "sluice_produce_batches",
            "Record batches produced to this broker's leaders",
            per_topic(|t| t.batches_in),
        )?;
        counters(
            encoder,
            "kafka_server_brokertopicmetrics_bytesout",
            "Bytes of record batches read by consumers (Kafka: BytesOutPerSec)",
            per_topic(|t| t.bytes_out),
        )?;
        counters(
            encoder,
            "kafka_server_brokertopicmetrics_replicationbytesin",
            "Bytes appended as a follower (Kafka: ReplicationBytesInPerSec)",
            per_topic(|t| t.replication_bytes_in),
        )?;
        counters(
            encoder,
            "kafka_server_brokertopicmetrics_replicationbytesout",
            "Bytes read by followers (Kafka: ReplicationBytesOutPerSec)",
            per_topic(|t| t.replication_bytes_out),
        )
    }

    fn encode_partitions(
        &self,
        encoder: &mut DescriptorEncoder,
        partitions: &[&PartitionSnapshot],
    ) -> Result<(), Error> {
        let numbers: Vec<String> = partitions.iter().map(|p| p.partition.to_string()).collect();
        let per_partition = |field: fn(&PartitionSnapshot) -> i64| {
            partitions.iter().zip(&numbers).map(move |(p, number)| {
                (
                    vec![("topic", p.topic.as_str()), ("partition", number.as_str())],
                    field(p),
                )
            })
        };
        gauges(
            encoder,
            "kafka_log_log_logstartoffset",
            "First offset of the partition's log (Kafka: Log LogStartOffset)",
            per_partition(|p| p.log_start_offset),
        )?;
        gauges(
            encoder,
            "kafka_log_log_logendoffset",
            "Offset the next record appended gets (Kafka: Log LogEndOffset)",
            per_partition(|p| p.log_end_offset),
        )?;
        gauges(
            encoder,
            "sluice_partition_high_watermark",
            "High watermark: consumers read below it (a follower's lags its leader's)",
            per_partition(|p| p.high_watermark),
        )?;
        gauges(
            encoder,
            "kafka_log_log_size",
            "Bytes of the partition's segments on disk (Kafka: Log Size)",
            per_partition(|p| p.size_bytes as i64),
        )?;
        let count = |f: fn(&PartitionSnapshot) -> bool| {
            [(vec![], partitions.iter().filter(|p| f(p)).count() as i64)]
        };
        gauges(
            encoder,
            "kafka_server_replicamanager_partitioncount",
            "Partitions with a replica on this broker",
            count(|_| true),
        )?;
        gauges(
            encoder,
            "kafka_server_replicamanager_leadercount",
            "Partitions this broker leads",
            count(|p| p.leader),
        )?;
        gauges(
            encoder,
            "kafka_server_replicamanager_underreplicatedpartitions",
            "Partitions led here whose ISR is smaller than their replica set",
            count(|p| p.under_replicated),
        )?;
        gauges(
            encoder,
            "kafka_server_replicamanager_underminisrpartitioncount",
            "Partitions led here whose ISR is below min.insync.replicas",
            count(|p| p.under_min_isr),
        )
    }

    fn encode_requests(&self, encoder: &mut DescriptorEncoder) -> Result<(), Error> {
        let mut all = self.snapshots.iter().map(|s| s.counters.clone());
        let Some(mut merged) = all.next() else {
            return Ok(());
        };
        for other in all {
            merged.add(&other);
        }
        let requests: Vec<(String, String, u64)> = merged
            .requests()
            .map(|(api, version, n)| (api_name(api), version.to_string(), n))
            .collect();
        counters(
            encoder,
            "kafka_network_requestmetrics_requests",
            "Requests handled, per API and version (Kafka: RequestMetrics RequestsPerSec)",
            requests.iter().map(|(api, version, n)| {
                (
                    vec![("request", api.as_str()), ("version", version.as_str())],
                    *n,
                )
            }),
        )?;
        let errors: Vec<(String, String, u64)> = merged
            .errors()
            .map(|(api, code, n)| (api_name(api), error_name(code), n))
            .collect();
        counters(
            encoder,
            "kafka_network_requestmetrics_errors",
            "Error codes in responses, per API and code, NONE included (Kafka: RequestMetrics ErrorsPerSec)",
            errors.iter().map(|(api, error, n)| {
                (
                    vec![("request", api.as_str()), ("error", error.as_str())],
                    *n,
                )
            }),
        )?;
        let api_names: Vec<String> = (0..super::API_KEYS as i16).map(api_name).collect();
        let by_api = |row: usize| vec![("request", api_names.get(row).map_or("?", String::as_str))];
        histograms(
            encoder,
            "sluice_request_duration_seconds",
            "From a request's frame read to its answer ready to send, per API (Kafka: RequestMetrics TotalTimeMs, without the send)",
            &merged.latency,
            by_api,
        )?;
        histograms(
            encoder,
            "sluice_request_queue_seconds",
            "From a request's frame read to its handler's start, per API: time in the core's run queue (Kafka: RequestQueueTimeMs)",
            &merged.queue_latency,
            by_api,
        )?;
        histograms(
            encoder,
            "sluice_request_local_seconds",
            "A request's handler, from its start to the answer ready, per API; waits for followers (acks=all) and fetch long-polls included (Kafka: LocalTimeMs + RemoteTimeMs)",
            &merged.local_latency,
            by_api,
        )?;
        histograms(
            encoder,
            "sluice_produce_duration_seconds",
            "Produce requests from their frame's arrival to their answer, per acks (0, 1, all): the acknowledgement latency producers see, without the network",
            &merged.produce_latency,
            |row| vec![("acks", super::ACKS.get(row).map_or("?", |(_, label)| *label))],
        )?;
        Ok(())
    }

    fn encode_cores(&self, encoder: &mut DescriptorEncoder) -> Result<(), Error> {
        let names: Vec<String> = (0..self.cores.max(1)).map(|c| c.to_string()).collect();
        let core = |s: &CoreSnapshot| names.get(s.counters.core).map_or("?", String::as_str);
        let per_core = |field: fn(&CoreSnapshot) -> u64| {
            self.snapshots
                .iter()
                .map(move |s| (vec![("core", core(s))], field(s)))
        };
        let mut hops = Vec::new();
        for s in &self.snapshots {
            for (to, kind, n) in s.counters.hops() {
                let to = names.get(to).map_or("?", String::as_str);
                hops.push((
                    vec![("core", core(s)), ("to", to), ("kind", kind.name())],
                    n,
                ));
            }
        }
        counters(
            encoder,
            "sluice_cross_core_calls",
            "Work sent to the core that owns a partition or group, by why",
            hops,
        )?;
        counters(
            encoder,
            "kafka_server_replicamanager_isrshrinks",
            "ISR shrinks committed for partitions led here (Kafka: ReplicaManager IsrShrinksPerSec)",
            per_core(|s| s.counters.isr_shrinks),
        )?;
        counters(
            encoder,
            "kafka_server_replicamanager_isrexpands",
            "ISR expansions committed for partitions led here (Kafka: ReplicaManager IsrExpandsPerSec)",
            per_core(|s| s.counters.isr_expands),
        )?;
        let listener = |i: usize| self.listeners.get(i).map_or("?", String::as_str);
        let per_listener = |field: fn(&CountersSnapshot) -> &Vec<u64>| {
            self.snapshots.iter().flat_map(move |s| {
                field(&s.counters)
                    .iter()
                    .enumerate()
                    .map(move |(i, n)| (vec![("core", core(s)), ("listener", listener(i))], *n))
            })
        };
        counters(
            encoder,
            "sluice_connections_accepted",
            "Client connections accepted, per listener",
            per_listener(|c| &c.connections_accepted),
        )?;
        counters(
            encoder,
            "sluice_connections_rejected",
            "Client connections closed at accept because max.connections was reached",
            per_core(|s| s.counters.connections_rejected),
        )?;
        gauges(
            encoder,
            "sluice_connections_open",
            "Client connections open, per listener",
            self.snapshots.iter().flat_map(|s| {
                let c: &CountersSnapshot = &s.counters;
                c.connections_accepted
                    .iter()
                    .zip(&c.connections_closed)
                    .enumerate()
                    .map(move |(i, (accepted, closed))| {
                        let open = accepted.saturating_sub(*closed) as i64;
                        (vec![("core", core(s)), ("listener", listener(i))], open)
                    })
            }),
        )?;
        counters(
            encoder,
            "sluice_connections_closed_by_broker",
            "Accepted connections the broker closed, by why (tls_handshake, authentication, bad_frame, malformed_request, refused_request)",
            self.snapshots.iter().flat_map(|s| {
                super::CloseReason::ALL.iter().map(move |reason| {
                    let n = s
                        .counters
                        .closed_by_broker
                        .get(*reason as usize)
                        .copied()
                        .unwrap_or(0);
                    (vec![("core", core(s)), ("reason", reason.name())], n)
                })
            }),
        )?;
        let storage = |field: fn(&PartitionSnapshot) -> u64| {
            self.snapshots.iter().map(move |s| {
                let sum = s.partitions.iter().map(field).sum();
                (vec![("core", core(s))], sum)
            })
        };
        counters(
            encoder,
            "sluice_storage_flushes",
            "Durable writes of the logs' group commits (each covers every batch appended since the last)",
            storage(|p| p.log_stats.flushes),
        )?;
        counters(
            encoder,
            "sluice_storage_bytes_written",
            "Bytes handed to the disk by the logs, padding and rewritten tail pages included",
            storage(|p| p.log_stats.bytes_written),
        )?;
        let mut family = encoder.encode_descriptor(
            "sluice_storage_flush_duration_seconds",
            "How long each durable write (write + fdatasync, O_DSYNC) of the group commit took (Kafka: LogFlushStats LogFlushRateAndTimeMs)",
            None,
            MetricType::Histogram,
        )?;
        for s in &self.snapshots {
            let mut stats = storage::LogStats::default();
            for p in &s.partitions {
                stats.add(&p.log_stats);
            }
            let bounds = storage::FLUSH_LATENCY_BOUNDS_S
                .iter()
                .copied()
                .chain([f64::MAX]);
            let buckets: Vec<(f64, u64)> = bounds.zip(stats.flush_latency).collect();
            let sum = stats.flush_latency_sum_ns as f64 / 1e9;
            family
                .encode_family(&vec![("core", core(s))])?
                .encode_histogram::<NoLabelSet>(sum, stats.flushes, &buckets, None)?;
        }
        gauges(
            encoder,
            "sluice_tail_cache_bytes",
            "Bytes held in the core's tail cache (sluice.tail.cache.bytes bounds it)",
            self.snapshots
                .iter()
                .map(|s| (vec![("core", core(s))], s.tail_cache_bytes as i64)),
        )?;
        gauges(
            encoder,
            "sluice_requests_in_flight",
            "Requests read on the core and not yet answered (long polls included)",
            self.snapshots
                .iter()
                .map(|s| (vec![("core", core(s))], s.requests_in_flight as i64)),
        )?;
        gauges(
            encoder,
            "sluice_write_buffer_bytes",
            "Bytes appended and not yet written on the core (sluice.write.buffer.bytes bounds it)",
            self.snapshots
                .iter()
                .map(|s| (vec![("core", core(s))], s.write_buffer_bytes as i64)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{CoreCounters, Hop, TrafficSnapshot};
    use std::time::Duration;

    fn partition(topic: &str, index: i32, bytes_in: u64) -> PartitionSnapshot {
        PartitionSnapshot {
            topic: topic.into(),
            partition: index,
            leader: true,
            under_replicated: index == 1,
            under_min_isr: false,
            log_start_offset: 0,
            log_end_offset: 10,
            high_watermark: 9,
            size_bytes: 4096,
            traffic: TrafficSnapshot {
                bytes_in,
                messages_in: 10,
                batches_in: 1,
                ..TrafficSnapshot::default()
            },
            log_stats: storage::LogStats {
                flushes: 3,
                bytes_written: 8192,
                flush_latency: [0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0],
                flush_latency_sum_ns: 1_200_000,
            },
        }
    }

    #[test]
    fn a_scrape_sums_topics_over_cores_and_names_apis() {
        let core0 = CoreCounters::new(2, 1);
        core0.request(0, 9, Duration::from_micros(100), Duration::from_micros(600));
        core0.hop(1, Hop::Produce);
        let core1 = CoreCounters::new(2, 1);
        core1.request(0, 9, Duration::ZERO, Duration::from_millis(2));
        core1.isr_changed(3, 2);
        core1.produce_acked(-1, Duration::from_micros(800));
        core0.produce_acked(-1, Duration::from_millis(3));
        core0.produce_acked(0, Duration::from_micros(50));
        core1.connection_accepted(0);
        core1.closed_by_broker(crate::metrics::CloseReason::Authentication);
        core1.error(0, 0);
        core1.error(0, 6);
        core0.error(0, 6);
        core0.error(3, -1);
        core1.isr_changed(2, 3);
        core1.isr_changed(3, 2);
        let mut with_group = core1.core_snapshot(1, vec![partition("orders", 1, 50)], 20, 5);
        with_group.groups = vec![crate::metrics::GroupSnapshot {
            id: "billing".into(),
            state: "Stable",
            members: 2,
            generation: 4,
            offsets: vec![("orders".into(), 1, 7)],
        }];
        let scrape = Scrape {
            node_id: 1,
            cores: 2,
            snapshots: vec![
                core0.core_snapshot(0, vec![partition("orders", 0, 100)], 10, 0),
                with_group,
            ],
            ready: true,
            listeners: vec!["PLAINTEXT".into()],
            cluster: ClusterSnapshot {
                active_controller: true,
                controller_leader: Some(1),
                offline_partitions: 2,
                partitions: 7,
                commit_latency: controller::CommitLatency {
                    buckets: [0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                    sum_seconds: 0.002,
                    count: 1,
                },
                ..ClusterSnapshot::default()
            },
        };
        let text = scrape.encode().expect("encodes");
        for line in [
            "kafka_server_brokertopicmetrics_bytesin_total{topic=\"orders\"} 150",
            "kafka_server_brokertopicmetrics_messagesin_total{topic=\"orders\"} 20",
            "kafka_network_requestmetrics_requests_total{request=\"Produce\",version=\"9\"} 2",
            "sluice_request_duration_seconds_count{request=\"Produce\"} 2",
            "sluice_request_duration_seconds_bucket{le=\"0.001\",request=\"Produce\"} 1",
            "sluice_request_queue_seconds_bucket{le=\"0.0001\",request=\"Produce\"} 2",
            "sluice_request_local_seconds_count{request=\"Produce\"} 2",
            "sluice_cross_core_calls_total{core=\"0\",to=\"1\",kind=\"produce\"} 1",
            "kafka_log_log_logendoffset{topic=\"orders\",partition=\"1\"} 10",
            "kafka_server_replicamanager_underreplicatedpartitions 1",
            "sluice_storage_flushes_total{core=\"1\"} 3",
            "sluice_storage_flush_duration_seconds_count{core=\"1\"} 3",
            "sluice_storage_flush_duration_seconds_bucket{le=\"0.0005\",core=\"1\"} 2",
            "sluice_broker_ready 1",
            "sluice_scrape_cores_missing 0",
            "kafka_server_replicamanager_isrshrinks_total{core=\"1\"} 2",
            "kafka_server_replicamanager_isrexpands_total{core=\"1\"} 1",
            "kafka_controller_kafkacontroller_activecontrollercount 1",
            "kafka_controller_kafkacontroller_offlinepartitionscount 2",
            "kafka_controller_kafkacontroller_globalpartitioncount 7",
            "kafka_server_raftmetrics_current_leader 1",
            "sluice_controller_commit_duration_seconds_count 1",
            "kafka_network_requestmetrics_errors_total{request=\"Produce\",error=\"NONE\"} 1",
            "kafka_coordinator_group_groupmetadatamanager_numgroups 1",
            "sluice_produce_duration_seconds_count{acks=\"all\"} 2",
            "sluice_produce_duration_seconds_bucket{le=\"0.001\",acks=\"all\"} 1",
            "sluice_produce_duration_seconds_count{acks=\"0\"} 1",
            "sluice_connections_open{core=\"1\",listener=\"PLAINTEXT\"} 1",
            "sluice_connections_closed_by_broker_total{core=\"1\",reason=\"authentication\"} 1",
            "sluice_consumer_groups{state=\"Stable\"} 1",
            "sluice_consumer_groups{state=\"Empty\"} 0",
            "sluice_consumer_group_members{group=\"billing\"} 2",
            "sluice_consumer_group_generation{group=\"billing\"} 4",
            "sluice_consumer_group_committed_offset{group=\"billing\",topic=\"orders\",partition=\"1\"} 7",
            "sluice_consumer_group_lag{group=\"billing\",topic=\"orders\",partition=\"1\"} 2",
            "kafka_network_requestmetrics_errors_total{request=\"Produce\",error=\"NOT_LEADER_OR_FOLLOWER\"} 2",
            "kafka_network_requestmetrics_errors_total{request=\"Metadata\",error=\"UNKNOWN_SERVER_ERROR\"} 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
