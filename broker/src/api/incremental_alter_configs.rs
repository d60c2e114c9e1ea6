//! IncrementalAlterConfigs for topics: SET and DELETE of the configs Sluice
//! honours, checked against the log config, committed through the controller and
//! applied by every broker to its partitions. Broker configs are static (set at start-up),
//! but deleting the replication throttles (which Sluice never sets) succeeds:
//! `kafka-reassign-partitions --verify` clears them on every broker.

use crate::api::context::RequestContext;
use crate::api::describe_configs::{unauthorized, RESOURCE_BROKER, RESOURCE_TOPIC};
use crate::core::Core;
use controller::acl;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use std::rc::Rc;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

pub async fn handle(
    ctx: &RequestContext,
    core: &Rc<Core>,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::new();
    for resource in request.resources {
        let name = resource.resource_name.to_string();
        let response = AlterConfigsResourceResponse::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        let denied = unauthorized(
            ctx,
            core,
            resource.resource_type,
            &name,
            acl::operation::ALTER_CONFIGS,
        );
        let outcome = match (denied, resource.resource_type) {
            (Some(error), _) => Err((error, "Authorization failed.".to_string())),
            (None, RESOURCE_TOPIC) => {
                alter_topic(core, &name, &resource.configs, request.validate_only).await
            }
            (None, RESOURCE_BROKER) if clears_throttles(&resource.configs) => Ok(()),
            (None, RESOURCE_BROKER) => Err((
                ResponseError::InvalidRequest,
                "Broker configs are static in Sluice: set them with --set at start-up.".to_string(),
            )),
            (None, _) => Err((
                ResponseError::InvalidRequest,
                "Unsupported resource type.".to_string(),
            )),
        };
        if let Err((ResponseError::InvalidConfig, message)) = &outcome {
            let reason = format!("IncrementalAlterConfigs '{name}': INVALID_CONFIG: {message}");
            core.refusals
                .warn_once(&ctx.client_id, ctx.connection.peer, &reason);
        }
        responses.push(match outcome {
            Ok(()) => response,
            Err((error, message)) => response
                .with_error_code(error.code())
                .with_error_message(Some(StrBytes::from_string(message))),
        });
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// Kafka's broker-level replication throttles: Sluice does not throttle,
/// so none is ever set and deleting them is a no-op.
const THROTTLES: &[&str] = &[
    "leader.replication.throttled.rate",
    "follower.replication.throttled.rate",
    "replica.alter.log.dirs.io.max.bytes.per.second",
];

fn clears_throttles(
    changes: &[kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig],
) -> bool {
    !changes.is_empty()
        && changes
            .iter()
            .all(|c| c.config_operation == OP_DELETE && THROTTLES.contains(&c.name.as_str()))
}

async fn alter_topic(
    core: &Rc<Core>,
    name: &str,
    changes: &[kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig],
    validate_only: bool,
) -> Result<(), (ResponseError, String)> {
    let Some(mut topic) = core.topic(name) else {
        return Err((
            ResponseError::UnknownTopicOrPartition,
            format!("Topic '{name}' does not exist."),
        ));
    };
    let mut wanted = Vec::new();
    for change in changes {
        let key = change.name.to_string();
        match change.config_operation {
            OP_SET => {
                let value = change
                    .value
                    .as_ref()
                    .map(|v| v.to_string())
                    .unwrap_or_default();
                topic.configs.insert(key.clone(), value.clone());
                wanted.push((key, Some(value)));
            }
            OP_DELETE => {
                topic.configs.remove(&key);
                wanted.push((key, None));
            }
            _ => {
                return Err((
                    ResponseError::InvalidConfig,
                    format!("APPEND/SUBTRACT apply to list configs; {key} is not one."),
                ))
            }
        }
    }
    topic
        .log_config(&core.config.log)
        .map_err(|e| (ResponseError::InvalidConfig, e.to_string()))?;
    if validate_only || wanted.is_empty() {
        return Ok(());
    }
    core.alter_topic_configs(name, wanted)
        .await
        .map_err(|e| crate::errors::topic_failure(&e))
}
