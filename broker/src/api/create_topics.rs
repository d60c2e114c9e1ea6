//! CreateTopics: partitions, configs (checked against the log config),
//! validate_only. Single node: replication factor must be 1 (or -1).
//! Checks in Kafka's order (`ReplicationControlManager.createTopics`):
//! the name, then TOPIC_ALREADY_EXISTS, then the configs, then partitions
//! and replication factor.

use crate::api::context::RequestContext;
use crate::api::topic_name;
use crate::core::Core;
use crate::errors::topic_error;
use crate::metadata::topics::{is_valid_topic_name, PARTITIONS_MAX};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;

pub async fn handle(
    ctx: &RequestContext,
    core: &Rc<Core>,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut seen = HashSet::new();
    let mut results = Vec::new();
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let result = CreatableTopicResult::default().with_name(topic_name(&name));
        let fail = |error: ResponseError, message: String| {
            result
                .clone()
                .with_error_code(error.code())
                .with_error_message(Some(StrBytes::from_string(message)))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
        };
        if !seen.insert(name.clone()) {
            results.push(fail(
                ResponseError::InvalidRequest,
                format!("Topic '{name}' appears twice in the request."),
            ));
            continue;
        }
        if !is_valid_topic_name(&name) {
            results.push(fail(
                ResponseError::InvalidTopicException,
                format!("Topic name '{name}' is illegal: use 1-249 of [a-zA-Z0-9._-]."),
            ));
            continue;
        }
        if core.topic(&name).is_some() {
            results.push(fail(
                ResponseError::TopicAlreadyExists,
                format!("Topic '{name}' already exists."),
            ));
            continue;
        }
        let mut configs = BTreeMap::new();
        let mut invalid = None;
        let mut check = core.config.log.clone();
        for config in &topic.configs {
            let key = config.name.to_string();
            let Some(value) = config.value.as_ref().map(|v| v.to_string()) else {
                continue;
            };
            if let Err(error) = check.set(&key, &value) {
                invalid = Some(error.to_string());
                break;
            }
            configs.insert(key, value);
        }
        if let Some(message) = invalid {
            let reason = format!("CreateTopics '{name}': INVALID_CONFIG: {message}");
            core.refusals
                .warn_once(&ctx.client_id, ctx.connection.peer, &reason);
            results.push(fail(ResponseError::InvalidConfig, message));
            continue;
        }
        let partitions = if topic.num_partitions == -1 {
            core.config.num_partitions
        } else {
            topic.num_partitions
        };
        if !(1..=PARTITIONS_MAX).contains(&partitions) {
            results.push(fail(
                ResponseError::InvalidPartitions,
                format!("Number of partitions must be between 1 and {PARTITIONS_MAX}."),
            ));
            continue;
        }
        if !matches!(topic.replication_factor, -1 | 1) || !topic.assignments.is_empty() {
            results.push(fail(
                ResponseError::InvalidReplicationFactor,
                "Replication factor must be 1: this is a single-node broker.".to_string(),
            ));
            continue;
        }
        if request.validate_only {
            results.push(
                result
                    .with_num_partitions(partitions)
                    .with_replication_factor(1),
            );
            continue;
        }
        match core.create_topic(&name, partitions, configs).await {
            Ok(_) => results.push(
                result
                    .with_num_partitions(partitions)
                    .with_replication_factor(1),
            ),
            Err(error) => results.push(fail(topic_error(&error), error.to_string())),
        }
    }
    CreateTopicsResponse::default().with_topics(results)
}
