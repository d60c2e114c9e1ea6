//! The shared lean client (crate `client`), and bench's topic set-up on it:
//! CreateTopics with a replication factor and topic configs, and where
//! each partition's leader is (a cluster's producers send to the leaders).
pub use client::*;

use anyhow::{bail, Context, Result};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, MetadataRequest, MetadataResponse,
};
use std::time::{Duration, Instant};

/// How long bench waits for brokers to register and for a new topic's
/// leaders and in-sync replicas.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
const SETTLE_POLL: Duration = Duration::from_millis(100);

/// The topic bench creates: Kafka's CreateTopics fields.
pub struct TopicSpec<'a> {
    pub name: &'a str,
    pub partitions: i32,
    pub replication_factor: i16,
    /// Topic configs (`min.insync.replicas`, `flush.messages`, ...).
    pub configs: &'a [(String, String)],
}

/// Creates the topic; with a replication factor above 1 it first waits
/// until Metadata lists that many brokers (a cluster just started may
/// not have registered them all).
pub fn create_topic_with(connection: &mut Connection, spec: &TopicSpec) -> Result<()> {
    if spec.replication_factor > 1 {
        wait_for_brokers(connection, spec.replication_factor as usize)?;
    }
    let configs = spec
        .configs
        .iter()
        .map(|(key, value)| {
            CreatableTopicConfig::default()
                .with_name(kafka::name(key))
                .with_value(Some(kafka::name(value)))
        })
        .collect();
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(spec.name))
            .with_num_partitions(spec.partitions)
            .with_replication_factor(spec.replication_factor)
            .with_configs(configs)]);
    let response: CreateTopicsResponse =
        connection.call(ApiKey::CreateTopics, CREATE_TOPICS_VERSION, &request)?;
    let topic = response
        .topics
        .first()
        .context("no topic in the CreateTopics answer")?;
    match topic.error_code {
        0 => Ok(()),
        36 => bail!(
            "topic {} already exists: pick another --topic or pass --keep-topic",
            spec.name
        ),
        code => bail!(
            "CreateTopics {}: {}{}",
            spec.name,
            kafka::error_text(code),
            kafka::detail(&topic.error_message)
        ),
    }
}

fn metadata(connection: &mut Connection, topic: Option<&str>) -> Result<MetadataResponse> {
    let request = MetadataRequest::default()
        .with_topics(Some(
            topic
                .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
                .into_iter()
                .collect(),
        ))
        .with_allow_auto_topic_creation(false);
    connection.call(ApiKey::Metadata, METADATA_VERSION, &request)
}

/// Waits until Metadata lists at least `count` brokers.
pub fn wait_for_brokers(connection: &mut Connection, count: usize) -> Result<()> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let listed = metadata(connection, None)?.brokers.len();
        if listed >= count {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "Metadata lists {listed} brokers after {} s, {count} needed",
                SETTLE_TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(SETTLE_POLL);
    }
}

/// A topic's partitions as Metadata shows them once settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Brokers Metadata lists (the cluster's size).
    pub brokers: usize,
    /// Per partition (indexed by partition): its leader's node id and
    /// advertised address.
    pub leaders: Vec<(i32, String)>,
}

/// Waits until Metadata shows `topic` with a leader for every partition,
/// then returns where the leaders are. `created`: bench has just created
/// the topic, so it also waits for the topic to appear and for every
/// replica to be in sync; otherwise a topic error fails at once.
pub fn wait_for_leaders(connection: &mut Connection, topic: &str, created: bool) -> Result<Layout> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let response = metadata(connection, Some(topic))?;
        let why_not = match layout(&response, created) {
            Ok(layout) => return Ok(layout),
            Err(why_not) => why_not,
        };
        let topic_error = response.topics.first().map_or(0, |t| t.error_code);
        if !created && topic_error != 0 {
            bail!("topic {topic}: {}", kafka::error_text(topic_error));
        }
        if Instant::now() >= deadline {
            bail!(
                "topic {topic} not ready after {} s: {why_not}",
                SETTLE_TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(SETTLE_POLL);
    }
}

/// The layout of the (one) topic in `response`, or why it is not settled.
fn layout(response: &MetadataResponse, full_isr: bool) -> Result<Layout, String> {
    let topic = response.topics.first().ok_or("no topic in Metadata")?;
    if topic.error_code != 0 {
        return Err(kafka::error_text(topic.error_code));
    }
    if topic.partitions.is_empty() {
        return Err("no partitions yet".into());
    }
    let mut leaders = vec![None; topic.partitions.len()];
    for p in &topic.partitions {
        let index = p.partition_index;
        if p.error_code != 0 {
            return Err(format!(
                "partition {index}: {}",
                kafka::error_text(p.error_code)
            ));
        }
        let leader = p.leader_id.0;
        if full_isr && p.isr_nodes.len() < p.replica_nodes.len() {
            return Err(format!(
                "partition {index}: {} of {} replicas in sync",
                p.isr_nodes.len(),
                p.replica_nodes.len()
            ));
        }
        let broker = response
            .brokers
            .iter()
            .find(|b| b.node_id.0 == leader)
            .ok_or_else(|| format!("partition {index}: leader {leader} not among the brokers"))?;
        let slot = usize::try_from(index)
            .ok()
            .and_then(|i| leaders.get_mut(i))
            .ok_or_else(|| format!("partition index {index} out of range"))?;
        *slot = Some((leader, format!("{}:{}", broker.host, broker.port)));
    }
    Ok(Layout {
        brokers: response.brokers.len(),
        leaders: leaders
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or("a partition index is missing")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::messages::BrokerId;

    fn response(partitions: &[(i32, i32, usize, usize)]) -> MetadataResponse {
        MetadataResponse::default()
            .with_brokers(
                (1..=3)
                    .map(|id| {
                        MetadataResponseBroker::default()
                            .with_node_id(BrokerId(id))
                            .with_host(kafka::name("127.0.0.1"))
                            .with_port(9091 + id)
                    })
                    .collect(),
            )
            .with_topics(vec![MetadataResponseTopic::default()
                .with_name(Some(topic_name("t")))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|(index, leader, replicas, isr)| {
                            MetadataResponsePartition::default()
                                .with_partition_index(*index)
                                .with_leader_id(BrokerId(*leader))
                                .with_replica_nodes((1..=*replicas as i32).map(BrokerId).collect())
                                .with_isr_nodes((1..=*isr as i32).map(BrokerId).collect())
                        })
                        .collect(),
                )])
    }

    #[test]
    fn layout_maps_each_partition_to_its_leader_in_index_order() {
        let layout = layout(&response(&[(1, 3, 3, 3), (0, 2, 3, 3)]), true).expect("settled");
        assert_eq!(layout.brokers, 3);
        assert_eq!(
            layout.leaders,
            vec![
                (2, "127.0.0.1:9093".to_string()),
                (3, "127.0.0.1:9094".to_string())
            ]
        );
    }

    #[test]
    fn layout_waits_for_leaders_and_for_a_full_isr_when_asked() {
        assert!(layout(&response(&[(0, -1, 3, 3)]), false).is_err());
        assert!(layout(&response(&[(0, 1, 3, 2)]), true).is_err());
        assert!(layout(&response(&[(0, 1, 3, 2)]), false).is_ok());
        assert!(layout(&response(&[]), false).is_err());
    }
}
