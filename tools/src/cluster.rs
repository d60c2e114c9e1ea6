//! `sluice cluster info|health`.

use crate::kafka::{self, check};
use crate::output::{self, Format};
use anyhow::{bail, Result};
use clap::Subcommand;
use kafka_protocol::messages::*;
use serde_json::json;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Cluster id, controller, brokers, topic and partition counts.
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
            let cluster: DescribeClusterResponse = connection.call(
                ApiKey::DescribeCluster,
                kafka::DESCRIBE_CLUSTER,
                &DescribeClusterRequest::default(),
            )?;
            check(cluster.error_code, "DescribeCluster")?;
            let brokers: Vec<String> = cluster
                .brokers
                .iter()
                .map(|b| format!("{}@{}:{}", b.broker_id.0, b.host, b.port))
                .collect();
            output::object(
                format,
                &json!({
                    "cluster_id": cluster.cluster_id.to_string(),
                    "controller": cluster.controller_id.0,
                    "brokers": brokers,
                    "topics": metadata.topics.len(),
                    "partitions": partitions,
                    "offline_partitions": offline.len(),
                    "apis": versions.api_keys.len(),
                }),
            );
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
