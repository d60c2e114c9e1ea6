//! Metadata: every unfenced broker, the active controller, and the topics
//! asked for (auto-creating unknown ones per `auto.create.topics.enable`,
//! through the controller) with each partition's leader, leader epoch,
//! replicas, ISR and offline replicas, from this broker's metadata image.

use crate::api::context::RequestContext;
use crate::api::topic_name;
use crate::core::Core;
use crate::error::TopicError;
use crate::errors::topic_error;
use crate::metadata::topics::{is_valid_topic_name, Topic};
use controller::acl::operation::{CREATE, DESCRIBE};
use controller::acl::resource::{CLUSTER, TOPIC};
use controller::acl::CLUSTER_NAME;
use controller::MetadataImage;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::rc::Rc;

pub const CLUSTER_ID: &str = "sluice-single-node";

/// The brokers clients may talk to: unfenced, with their endpoint on the
/// listener the client connected to (as Kafka answers).
pub fn live_brokers(image: &MetadataImage, listener: &str) -> Vec<MetadataResponseBroker> {
    image
        .unfenced_brokers()
        .filter_map(|b| {
            let endpoint = b.endpoint(listener)?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.id))
                    .with_host(StrBytes::from_string(endpoint.host.clone()))
                    .with_port(i32::from(endpoint.port))
                    .with_rack(b.rack.clone().map(StrBytes::from_string)),
            )
        })
        .collect()
}

/// The active controller's id, as clients see it (-1 while there is none).
pub fn controller_id(core: &Core) -> BrokerId {
    BrokerId(
        core.cluster
            .controller
            .local_status()
            .leader
            .map_or(-1, |id| id as i32),
    )
}

pub async fn handle(
    ctx: &RequestContext,
    core: &Rc<Core>,
    request: MetadataRequest,
) -> MetadataResponse {
    let version = ctx.version;
    let config = &core.config;
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
    let authorizer = core.authorizer();
    let caller = ctx.caller();
    let may = |op: i8, name: &str| authorizer.allows(&caller, op, TOPIC, name);
    match requested {
        None => {
            // Topics the caller may not describe are left out.
            let image = core.image();
            topics.extend(
                image
                    .topics
                    .values()
                    .filter(|t| may(DESCRIBE, &t.name))
                    .map(|t| describe(&Topic::from_image(t), &image)),
            );
        }
        Some(names) => {
            for name in names {
                // Named but not describable: refused whether or not it
                // exists, so the answer does not tell.
                if !may(DESCRIBE, &name) {
                    topics.push(
                        MetadataResponseTopic::default()
                            .with_name(Some(topic_name(&name)))
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code()),
                    );
                    continue;
                }
                // Auto-creation needs CREATE on the cluster or the topic.
                let may_create = auto_create
                    && (authorizer.allows(&caller, CREATE, CLUSTER, CLUSTER_NAME)
                        || may(CREATE, &name));
                topics.push(lookup_or_create(core, &name, auto_create, may_create).await);
            }
        }
    }
    let image = core.image();
    MetadataResponse::default()
        .with_brokers(live_brokers(&image, &ctx.connection.listener))
        .with_cluster_id(Some(StrBytes::from_static_str(CLUSTER_ID)))
        .with_controller_id(controller_id(core))
        .with_topics(topics)
}

async fn lookup_or_create(
    core: &Rc<Core>,
    name: &str,
    auto_create: bool,
    may_create: bool,
) -> MetadataResponseTopic {
    if let Some(topic) = core.topic(name) {
        return describe(&topic, &core.image());
    }
    let error = if !is_valid_topic_name(name) {
        ResponseError::InvalidTopicException
    } else if !auto_create {
        ResponseError::UnknownTopicOrPartition
    } else if !may_create {
        ResponseError::TopicAuthorizationFailed
    } else {
        let created = core
            .create_topic(
                name,
                core.config.num_partitions,
                core.config.cluster.default_replication_factor,
                BTreeMap::new(),
            )
            .await;
        match created {
            Ok(topic) => return describe(&topic, &core.image()),
            Err(TopicError::Refused(_, controller::ItemError::TopicAlreadyExists)) => {
                match core.topic(name) {
                    Some(topic) => return describe(&topic, &core.image()),
                    // Created elsewhere, not applied here yet: retriable.
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

fn describe(topic: &Topic, image: &MetadataImage) -> MetadataResponseTopic {
    // Kafka's offline replicas: on a fenced broker, or in a failed log
    // directory of their broker.
    let offline_on = |id: &i32, index: usize| {
        image
            .brokers
            .get(id)
            .is_none_or(|b| b.fenced || b.offline_replicas.contains(&(topic.id, index as i32)))
    };
    let ids = |list: &[i32]| list.iter().map(|id| BrokerId(*id)).collect::<Vec<_>>();
    let partitions = topic
        .assignment
        .iter()
        .enumerate()
        .map(|(index, p)| {
            let offline: Vec<i32> = p
                .replicas
                .iter()
                .copied()
                .filter(|id| offline_on(id, index))
                .collect();
            let error = if p.leader < 0 {
                ResponseError::LeaderNotAvailable.code()
            } else {
                0
            };
            MetadataResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(index as i32)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(ids(&p.replicas))
                .with_isr_nodes(ids(&p.isr))
                .with_offline_replicas(ids(&offline))
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(&topic.name)))
        .with_topic_id(uuid::Uuid::from_u128(topic.id))
        .with_is_internal(topic.name == crate::group::store::OFFSETS_TOPIC)
        .with_partitions(partitions)
}
