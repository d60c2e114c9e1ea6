//! Metadata: this broker, and the topics asked for (auto-creating unknown
//! ones per `auto.create.topics.enable`).

use crate::api::context::RequestContext;
use crate::api::topic_name;
use crate::core::Core;
use crate::error::TopicError;
use crate::errors::topic_error;
use crate::metadata::topics::{is_valid_topic_name, Topic};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::rc::Rc;

pub const CLUSTER_ID: &str = "sluice-single-node";

pub async fn handle(
    ctx: &RequestContext,
    core: &Rc<Core>,
    request: MetadataRequest,
) -> MetadataResponse {
    let version = ctx.version;
    let config = &core.config;
    let node = BrokerId(config.node_id);
    let requested: Option<Vec<String>> = match request.topics {
        None => None,
        Some(list) if list.is_empty() && version == 0 => None,
        Some(list) => Some(
            list.into_iter()
                .filter_map(|t| t.name.map(|n| n.0.to_string()))
                .collect(),
        ),
    };
    let auto_create =
        config.auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
    let mut topics = Vec::new();
    match requested {
        None => {
            let all: Vec<Topic> = core.cluster.topics();
            topics.extend(all.iter().map(|t| describe(t, node)));
        }
        Some(names) => {
            for name in names {
                topics.push(lookup_or_create(core, &name, auto_create, node).await);
            }
        }
    }
    let broker = MetadataResponseBroker::default()
        .with_node_id(node)
        .with_host(StrBytes::from_string(config.advertised_host.clone()))
        .with_port(i32::from(config.advertised_port));
    MetadataResponse::default()
        .with_brokers(vec![broker])
        .with_cluster_id(Some(StrBytes::from_static_str(CLUSTER_ID)))
        .with_controller_id(node)
        .with_topics(topics)
}

async fn lookup_or_create(
    core: &Rc<Core>,
    name: &str,
    auto_create: bool,
    node: BrokerId,
) -> MetadataResponseTopic {
    if let Some(topic) = core.topic(name) {
        return describe(&topic, node);
    }
    let error = if !is_valid_topic_name(name) {
        ResponseError::InvalidTopicException
    } else if !auto_create {
        ResponseError::UnknownTopicOrPartition
    } else {
        match core
            .create_topic(name, core.config.num_partitions, BTreeMap::new())
            .await
        {
            Ok(topic) => return describe(&topic, node),
            Err(TopicError::AlreadyExists(_)) => {
                match core.topic(name) {
                    Some(topic) => return describe(&topic, node),
                    // Another core is creating it right now: retriable.
                    None => ResponseError::LeaderNotAvailable,
                }
            }
            Err(error) => topic_error(&error),
        }
    };
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(name)))
        .with_error_code(error.code())
}

fn describe(topic: &Topic, node: BrokerId) -> MetadataResponseTopic {
    let partitions = (0..topic.partitions)
        .map(|index| {
            MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(node)
                .with_leader_epoch(0)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(&topic.name)))
        .with_is_internal(topic.name == crate::group::store::OFFSETS_TOPIC)
        .with_partitions(partitions)
}
