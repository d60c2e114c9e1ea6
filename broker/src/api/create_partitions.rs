//! CreatePartitions: grow a topic's partition count (never shrink), new
//! replicas placed by the controller or as assigned.

use crate::api::context::RequestContext;
use crate::api::topic_name;
use crate::core::Core;
use crate::errors::topic_failure;
use crate::metadata::topics::PARTITIONS_MAX;
use controller::acl::operation::ALTER;
use controller::acl::resource::TOPIC;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;
use std::rc::Rc;

pub async fn handle(
    ctx: &RequestContext,
    core: &Rc<Core>,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::new();
    for wanted in request.topics {
        let name = wanted.name.0.to_string();
        let result = CreatePartitionsTopicResult::default().with_name(topic_name(&name));
        let outcome = match core.topic(&name) {
            _ if !ctx.may(core, ALTER, TOPIC, &name) => Err((
                ResponseError::TopicAuthorizationFailed,
                "Authorization failed.".to_string(),
            )),
            None => Err((
                ResponseError::UnknownTopicOrPartition,
                format!("Topic '{name}' does not exist."),
            )),
            Some(topic) if wanted.count <= topic.partitions => Err((
                ResponseError::InvalidPartitions,
                format!(
                    "Topic currently has {} partitions, which is higher than the requested {}.",
                    topic.partitions, wanted.count
                ),
            )),
            Some(_) if wanted.count > PARTITIONS_MAX => Err((
                ResponseError::InvalidPartitions,
                format!("Number of partitions must be at most {PARTITIONS_MAX}."),
            )),
            Some(_) if name == crate::group::store::OFFSETS_TOPIC => Err((
                ResponseError::InvalidTopicException,
                "The partition count of an internal topic is fixed.".to_string(),
            )),
            Some(_) => {
                let assignments = wanted
                    .assignments
                    .iter()
                    .flatten()
                    .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                    .collect();
                core.add_partitions(&name, wanted.count, assignments, request.validate_only)
                    .await
                    .map_err(|e| topic_failure(&e))
            }
        };
        results.push(match outcome {
            Ok(()) => result,
            Err((error, message)) => result
                .with_error_code(error.code())
                .with_error_message(Some(StrBytes::from_string(message))),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}
