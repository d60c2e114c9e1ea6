//! CreateTopics: partitions, replication factor (`default.replication.factor`
//! for -1) or explicit assignments, configs (checked against the log
//! config), validate_only. Checks in Kafka's order
//! (`ReplicationControlManager.createTopics`): the name, then
//! TOPIC_ALREADY_EXISTS, then the configs, then partitions; placement and
//! the replication factor against the unfenced brokers are the active
//! controller's, and the answer comes once the topics are committed to the
//! metadata log and applied on this broker.

use crate::api::context::RequestContext;
use crate::api::topic_name;
use crate::core::Core;
use crate::core::METADATA_WRITE_TIMEOUT;
use crate::errors::{controller_error, item_error};
use crate::metadata::topics::{is_valid_topic_name, PARTITIONS_MAX};
use controller::acl::operation::CREATE;
use controller::acl::resource::{CLUSTER, TOPIC};
use controller::acl::CLUSTER_NAME;
use controller::{NewTopic, Request, Response};
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
    let authorizer = core.authorizer();
    let may_create_cluster = authorizer.allows(&ctx.caller(), CREATE, CLUSTER, CLUSTER_NAME);
    let mut seen = HashSet::new();
    // In request order: Ok(answered already) or Err((result, index into `wanted`)).
    let mut results = Vec::new();
    let mut wanted: Vec<NewTopic> = Vec::new();
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let result = CreatableTopicResult::default().with_name(topic_name(&name));
        let fail = |error: ResponseError, message: String| refused(&result, error, message);
        if !seen.insert(name.clone()) {
            results.push(Ok(fail(
                ResponseError::InvalidRequest,
                format!("Topic '{name}' appears twice in the request."),
            )));
            continue;
        }
        // CREATE on the cluster, or on the topic (Kafka's rule).
        if !may_create_cluster && !authorizer.allows(&ctx.caller(), CREATE, TOPIC, &name) {
            results.push(Ok(fail(
                ResponseError::TopicAuthorizationFailed,
                "Authorization failed.".to_string(),
            )));
            continue;
        }
        if !is_valid_topic_name(&name) {
            results.push(Ok(fail(
                ResponseError::InvalidTopicException,
                format!("Topic name '{name}' is illegal: use 1-249 of [a-zA-Z0-9._-]."),
            )));
            continue;
        }
        if core.topic(&name).is_some() {
            results.push(Ok(fail(
                ResponseError::TopicAlreadyExists,
                format!("Topic '{name}' already exists."),
            )));
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
            results.push(Ok(fail(ResponseError::InvalidConfig, message)));
            continue;
        }
        let assignments: Vec<Vec<i32>> = {
            let mut sorted: Vec<_> = topic.assignments.iter().collect();
            sorted.sort_by_key(|a| a.partition_index);
            sorted
                .iter()
                .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                .collect()
        };
        let explicit = !assignments.is_empty();
        if explicit && (topic.num_partitions != -1 || topic.replication_factor != -1) {
            results.push(Ok(fail(
                ResponseError::InvalidRequest,
                "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".to_string(),
            )));
            continue;
        }
        if explicit
            && topic.assignments.iter().enumerate().any(|(i, a)| {
                !topic
                    .assignments
                    .iter()
                    .any(|b| b.partition_index == i as i32)
                    || a.broker_ids.is_empty()
            })
        {
            results.push(Ok(fail(
                ResponseError::InvalidReplicaAssignment,
                "Partitions should be a consecutive 0-based integer sequence.".to_string(),
            )));
            continue;
        }
        let partitions = if explicit {
            assignments.len() as i32
        } else if topic.num_partitions == -1 {
            core.config.num_partitions
        } else {
            topic.num_partitions
        };
        if !(1..=PARTITIONS_MAX).contains(&partitions) {
            results.push(Ok(fail(
                ResponseError::InvalidPartitions,
                format!("Number of partitions must be between 1 and {PARTITIONS_MAX}."),
            )));
            continue;
        }
        let replication_factor = match topic.replication_factor {
            -1 => core.config.cluster.default_replication_factor,
            n => i32::from(n),
        };
        if !explicit && replication_factor < 1 {
            results.push(Ok(fail(
                ResponseError::InvalidReplicationFactor,
                "Replication factor must be larger than 0.".to_string(),
            )));
            continue;
        }
        results.push(Err((result, wanted.len())));
        wanted.push(NewTopic {
            name,
            partitions,
            replication_factor,
            assignments,
            configs,
        });
    }
    if wanted.is_empty() {
        return CreateTopicsResponse::default().with_topics(
            results
                .into_iter()
                .map(|r| r.unwrap_or_else(|(r, _)| r))
                .collect(),
        );
    }
    let timeout = match request.timeout_ms {
        t if t > 0 => std::time::Duration::from_millis(t as u64),
        _ => METADATA_WRITE_TIMEOUT,
    };
    let written = core
        .metadata_write(
            Request::CreateTopics {
                topics: wanted,
                validate_only: request.validate_only,
            },
            timeout,
        )
        .await;
    let outcomes = match written {
        Ok(Response::Topics(outcomes)) => Ok(outcomes),
        Ok(_) => Err(ResponseError::UnknownServerError),
        Err(error) => Err(controller_error(&error)),
    };
    let topics = results
        .into_iter()
        .map(|r| match r {
            Ok(done) => done,
            Err((result, index)) => {
                let fail = |error: ResponseError, message: String| refused(&result, error, message);
                match &outcomes {
                    Err(code) => fail(
                        *code,
                        format!("The controller quorum did not take the change: {code:?}"),
                    ),
                    Ok(outcomes) => match outcomes.get(index).map(|o| &o.result) {
                        Some(Ok(created)) => result
                            .clone()
                            .with_topic_id(uuid::Uuid::from_u128(created.topic_id))
                            .with_num_partitions(created.partitions)
                            .with_replication_factor(created.replication_factor as i16),
                        Some(Err(error)) => {
                            let (code, message) = item_error(error);
                            fail(code, message)
                        }
                        None => fail(ResponseError::UnknownServerError, String::new()),
                    },
                }
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

/// One topic of the request refused: no partitions, no replication factor.
fn refused(
    result: &CreatableTopicResult,
    error: ResponseError,
    message: String,
) -> CreatableTopicResult {
    result
        .clone()
        .with_error_code(error.code())
        .with_error_message(Some(StrBytes::from_string(message)))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
}
