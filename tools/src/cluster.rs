//! `sluice cluster info|health`.

use crate::kafka::{self, check};
use crate::output::{self, Format};
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use client::Connection;
use kafka_protocol::messages::*;
use serde_json::{json, Value};
use std::ops::RangeInclusive;

/// DescribeCluster versions the CLI speaks: v2 lists fenced brokers too.
const DESCRIBE_CLUSTER_VERSIONS: RangeInclusive<i16> = 0..=2;
/// DescribeQuorum versions the CLI speaks: v1 adds the replicas' timestamps.
const DESCRIBE_QUORUM_VERSIONS: RangeInclusive<i16> = 0..=2;
/// The KRaft metadata log, the one partition DescribeQuorum describes.
const METADATA_TOPIC: &str = "__cluster_metadata";

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Cluster id, controller, brokers (fenced too), topic and partition
    /// counts, and the controller quorum (leader, voters, observers, lag).
    #[command(
        after_help = "Examples:\n  sluice cluster info\n  sluice --bootstrap 10.0.0.5:9092 cluster info --format json"
    )]
    Info,
    /// Exit 0 if the broker answers and every partition has a leader.
    #[command(after_help = "Example:\n  sluice cluster health && echo ok")]
    Health,
}

pub fn run(bootstrap: &str, format: Format, command: Command) -> Result<()> {
    let mut connection = kafka::connect(bootstrap)?;
    let versions: ApiVersionsResponse = connection.call(
        ApiKey::ApiVersions,
        kafka::API_VERSIONS,
        &ApiVersionsRequest::default()
            .with_client_software_name(kafka::name("sluice-cli"))
            .with_client_software_version(kafka::name(env!("CARGO_PKG_VERSION"))),
    )?;
    check(versions.error_code, "ApiVersions")?;
    let metadata = kafka::metadata(&mut connection, None)?;
    let partitions: usize = metadata.topics.iter().map(|t| t.partitions.len()).sum();
    let offline: Vec<String> = metadata
        .topics
        .iter()
        .flat_map(|t| {
            let name = t.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
            t.partitions
                .iter()
                .filter(|p| p.leader_id.0 < 0 || p.error_code != 0)
                .map(move |p| format!("{name}/{}", p.partition_index))
        })
        .collect();
    match command {
        Command::Info => {
            let cluster = describe_cluster(&mut connection, &versions, &metadata)?;
            let quorum = describe_quorum(&mut connection, &versions);
            let summary = json!({
                "cluster_id": cluster.cluster_id,
                "controller": cluster.controller_id,
                "brokers": cluster.live_brokers(),
                "fenced_brokers": cluster.fenced_brokers(),
                "topics": metadata.topics.len(),
                "partitions": partitions,
                "offline_partitions": offline.len(),
                "apis": versions.api_keys.len(),
            });
            print_info(format, summary, &cluster, &quorum);
        }
        Command::Health => {
            let healthy = offline.is_empty();
            output::object(
                format,
                &json!({"healthy": healthy, "brokers": metadata.brokers.len(), "partitions": partitions, "offline": offline}),
            );
            if !healthy {
                bail!("{} partitions have no leader", offline.len());
            }
        }
    }
    Ok(())
}

/// The highest version of `api` that both the CLI (`ours`) and the broker
/// (its ApiVersions answer) speak; None if their ranges do not meet.
fn version_in_common(
    versions: &ApiVersionsResponse,
    api: ApiKey,
    ours: RangeInclusive<i16>,
) -> Option<i16> {
    let theirs = versions.api_keys.iter().find(|k| k.api_key == api as i16)?;
    let high = theirs.max_version.min(*ours.end());
    let low = theirs.min_version.max(*ours.start());
    (high >= low).then_some(high)
}

struct Broker {
    id: i32,
    host: String,
    port: i32,
    rack: Option<String>,
    fenced: bool,
}

struct Cluster {
    cluster_id: String,
    controller_id: i32,
    /// Sorted by id; fenced ones only when the broker serves DescribeCluster v2.
    brokers: Vec<Broker>,
}

impl Cluster {
    /// "id@host:port" of every unfenced broker (the `brokers` key).
    fn live_brokers(&self) -> Vec<String> {
        self.brokers
            .iter()
            .filter(|b| !b.fenced)
            .map(|b| format!("{}@{}:{}", b.id, b.host, b.port))
            .collect()
    }

    fn fenced_brokers(&self) -> Vec<i32> {
        self.brokers
            .iter()
            .filter(|b| b.fenced)
            .map(|b| b.id)
            .collect()
    }

    fn details(&self) -> Vec<Value> {
        self.brokers
            .iter()
            .map(|b| json!({"id": b.id, "host": b.host, "port": b.port, "rack": b.rack, "fenced": b.fenced}))
            .collect()
    }
}

/// DescribeCluster at the highest version the broker serves (v2 asks for
/// fenced brokers too); without DescribeCluster, what Metadata says.
fn describe_cluster(
    connection: &mut Connection,
    versions: &ApiVersionsResponse,
    metadata: &MetadataResponse,
) -> Result<Cluster> {
    let Some(version) =
        version_in_common(versions, ApiKey::DescribeCluster, DESCRIBE_CLUSTER_VERSIONS)
    else {
        return Ok(cluster_from_metadata(metadata));
    };
    let request = DescribeClusterRequest::default().with_include_fenced_brokers(version >= 2);
    let response: DescribeClusterResponse =
        connection.call(ApiKey::DescribeCluster, version, &request)?;
    let message = kafka::detail(&response.error_message);
    check(response.error_code, &format!("DescribeCluster{message}"))?;
    let mut brokers: Vec<Broker> = response
        .brokers
        .iter()
        .map(|b| Broker {
            id: b.broker_id.0,
            host: b.host.to_string(),
            port: b.port,
            rack: b.rack.as_ref().map(|r| r.to_string()),
            fenced: b.is_fenced,
        })
        .collect();
    brokers.sort_by_key(|b| b.id);
    Ok(Cluster {
        cluster_id: response.cluster_id.to_string(),
        controller_id: response.controller_id.0,
        brokers,
    })
}

fn cluster_from_metadata(metadata: &MetadataResponse) -> Cluster {
    let mut brokers: Vec<Broker> = metadata
        .brokers
        .iter()
        .map(|b| Broker {
            id: b.node_id.0,
            host: b.host.to_string(),
            port: b.port,
            rack: b.rack.as_ref().map(|r| r.to_string()),
            fenced: false,
        })
        .collect();
    brokers.sort_by_key(|b| b.id);
    Cluster {
        cluster_id: metadata
            .cluster_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        controller_id: metadata.controller_id.0,
        brokers,
    }
}

/// One voter or observer of the metadata log, as DescribeQuorum reports it.
struct Replica {
    id: i32,
    log_end_offset: i64,
    /// Milliseconds since the epoch; -1 when unknown (and always below v1).
    last_fetch_timestamp: i64,
    last_caught_up_timestamp: i64,
}

struct Quorum {
    leader_id: i32,
    leader_epoch: i32,
    high_watermark: i64,
    voters: Vec<Replica>,
    observers: Vec<Replica>,
}

impl Replica {
    fn new(state: &describe_quorum_response::ReplicaState) -> Replica {
        Replica {
            id: state.replica_id.0,
            log_end_offset: state.log_end_offset,
            last_fetch_timestamp: state.last_fetch_timestamp,
            last_caught_up_timestamp: state.last_caught_up_timestamp,
        }
    }

    /// How far behind the high watermark this replica's log ends, as
    /// kafka-metadata-quorum computes it (the leader's can be negative:
    /// its log runs ahead of what the quorum has committed). None when the
    /// log end is unknown.
    fn lag(&self, high_watermark: i64) -> Option<i64> {
        (self.log_end_offset >= 0).then(|| high_watermark.saturating_sub(self.log_end_offset))
    }
}

impl Quorum {
    fn to_json(&self) -> Value {
        let replicas = |list: &[Replica]| -> Vec<Value> {
            list.iter()
                .map(|r| {
                    json!({
                        "id": r.id,
                        "log_end_offset": r.log_end_offset,
                        "lag": r.lag(self.high_watermark),
                        "last_fetch_timestamp": r.last_fetch_timestamp,
                        "last_caught_up_timestamp": r.last_caught_up_timestamp,
                    })
                })
                .collect()
        };
        json!({
            "leader_id": self.leader_id,
            "leader_epoch": self.leader_epoch,
            "high_watermark": self.high_watermark,
            "voters": replicas(&self.voters),
            "observers": replicas(&self.observers),
        })
    }
}

/// What became of the DescribeQuorum question.
enum QuorumAnswer {
    Described(Quorum),
    NotServed,
    Failed(anyhow::Error),
}

fn describe_quorum(connection: &mut Connection, versions: &ApiVersionsResponse) -> QuorumAnswer {
    let Some(version) =
        version_in_common(versions, ApiKey::DescribeQuorum, DESCRIBE_QUORUM_VERSIONS)
    else {
        return QuorumAnswer::NotServed;
    };
    match call_describe_quorum(connection, version) {
        Ok(quorum) => QuorumAnswer::Described(quorum),
        Err(error) => QuorumAnswer::Failed(error),
    }
}

fn call_describe_quorum(connection: &mut Connection, version: i16) -> Result<Quorum> {
    use describe_quorum_request::{PartitionData, TopicData};
    let request = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(client::topic_name(METADATA_TOPIC))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
    let response: DescribeQuorumResponse =
        connection.call(ApiKey::DescribeQuorum, version, &request)?;
    let message = kafka::detail(&response.error_message);
    check(response.error_code, &format!("DescribeQuorum{message}"))?;
    let partition = response
        .topics
        .iter()
        .filter(|t| t.topic_name.0.as_str() == METADATA_TOPIC)
        .flat_map(|t| &t.partitions)
        .find(|p| p.partition_index == 0)
        .with_context(|| format!("DescribeQuorum: no {METADATA_TOPIC}-0 in the answer"))?;
    let message = kafka::detail(&partition.error_message);
    check(
        partition.error_code,
        &format!("DescribeQuorum {METADATA_TOPIC}-0{message}"),
    )?;
    Ok(Quorum {
        leader_id: partition.leader_id.0,
        leader_epoch: partition.leader_epoch,
        high_watermark: partition.high_watermark,
        voters: partition.current_voters.iter().map(Replica::new).collect(),
        observers: partition.observers.iter().map(Replica::new).collect(),
    })
}

fn print_info(format: Format, mut summary: Value, cluster: &Cluster, quorum: &QuorumAnswer) {
    if let QuorumAnswer::Failed(error) = quorum {
        eprintln!("sluice: quorum: {error:#}");
    }
    match format {
        Format::Json => {
            summary["broker_details"] = Value::Array(cluster.details());
            summary["quorum"] = match quorum {
                QuorumAnswer::Described(q) => q.to_json(),
                QuorumAnswer::NotServed | QuorumAnswer::Failed(_) => Value::Null,
            };
            println!("{summary}");
        }
        Format::Table => {
            output::object(format, &summary);
            println!();
            let rows: Vec<Vec<Value>> = cluster
                .brokers
                .iter()
                .map(|b| {
                    vec![
                        json!(b.id),
                        json!(b.host),
                        json!(b.port),
                        json!(b.rack),
                        json!(b.fenced),
                    ]
                })
                .collect();
            output::rows(format, &["id", "host", "port", "rack", "fenced"], &rows);
            println!();
            match quorum {
                QuorumAnswer::Described(q) => print_quorum_table(q),
                QuorumAnswer::NotServed => println!("quorum: not served by this broker"),
                QuorumAnswer::Failed(_) => println!("quorum: unknown (DescribeQuorum failed)"),
            }
        }
    }
}

/// Like `kafka-metadata-quorum describe --status` then `--replication`.
fn print_quorum_table(quorum: &Quorum) {
    let max_follower_lag = quorum
        .voters
        .iter()
        .filter(|r| r.id != quorum.leader_id)
        .filter_map(|r| r.lag(quorum.high_watermark))
        .max();
    output::object(
        Format::Table,
        &json!({
            "quorum_leader_id": quorum.leader_id,
            "quorum_leader_epoch": quorum.leader_epoch,
            "quorum_high_watermark": quorum.high_watermark,
            "quorum_max_follower_lag": max_follower_lag,
        }),
    );
    println!();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let ago = |timestamp_ms: i64| -> Value {
        if timestamp_ms < 0 {
            return Value::Null;
        }
        json!(format!(
            "{} ms ago",
            now_ms.saturating_sub(timestamp_ms).max(0)
        ))
    };
    let row = |r: &Replica, status: &str| -> Vec<Value> {
        vec![
            json!(r.id),
            json!(r.log_end_offset),
            json!(r.lag(quorum.high_watermark)),
            ago(r.last_fetch_timestamp),
            ago(r.last_caught_up_timestamp),
            json!(status),
        ]
    };
    let mut rows: Vec<Vec<Value>> = quorum
        .voters
        .iter()
        .map(|r| {
            let status = if r.id == quorum.leader_id {
                "Leader"
            } else {
                "Follower"
            };
            row(r, status)
        })
        .collect();
    rows.extend(quorum.observers.iter().map(|r| row(r, "Observer")));
    output::rows(
        Format::Table,
        &[
            "node_id",
            "log_end_offset",
            "lag",
            "last_fetch",
            "last_caught_up",
            "status",
        ],
        &rows,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response::ApiVersion;

    fn advertising(api: ApiKey, min: i16, max: i16) -> ApiVersionsResponse {
        ApiVersionsResponse::default().with_api_keys(vec![ApiVersion::default()
            .with_api_key(api as i16)
            .with_min_version(min)
            .with_max_version(max)])
    }

    #[test]
    fn version_in_common_is_the_lower_of_the_two_maxima() {
        let v1_broker = advertising(ApiKey::DescribeCluster, 0, 1);
        assert_eq!(
            version_in_common(&v1_broker, ApiKey::DescribeCluster, 0..=2),
            Some(1)
        );
        let newer_broker = advertising(ApiKey::DescribeCluster, 0, 5);
        assert_eq!(
            version_in_common(&newer_broker, ApiKey::DescribeCluster, 0..=2),
            Some(2)
        );
    }

    #[test]
    fn version_in_common_is_none_when_not_advertised_or_disjoint() {
        let cluster_only = advertising(ApiKey::DescribeCluster, 0, 1);
        assert_eq!(
            version_in_common(&cluster_only, ApiKey::DescribeQuorum, 0..=2),
            None
        );
        let too_new = advertising(ApiKey::DescribeQuorum, 3, 4);
        assert_eq!(
            version_in_common(&too_new, ApiKey::DescribeQuorum, 0..=2),
            None
        );
    }

    #[test]
    fn lag_is_high_watermark_minus_log_end_and_unknown_without_a_log_end() {
        let replica = |log_end_offset| Replica {
            id: 1,
            log_end_offset,
            last_fetch_timestamp: -1,
            last_caught_up_timestamp: -1,
        };
        assert_eq!(replica(24).lag(41), Some(17));
        assert_eq!(replica(43).lag(41), Some(-2), "a leader ahead of the HW");
        assert_eq!(replica(-1).lag(41), None);
    }
}
