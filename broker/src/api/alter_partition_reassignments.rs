//! AlterPartitionReassignments (KIP-455), as `kafka-reassign-partitions
//! --execute` and the Admin client send it: per partition a target replica
//! list (or null to cancel). The controller starts the move (the target's
//! new replicas join as followers, catch up and enter the ISR) and
//! completes it once every new replica is in sync, dropping the replicas
//! left out (and moving leadership if the leader is one of them). Answered
//! once the start is committed and applied here; `kafka-reassign-partitions
//! --verify` (ListPartitionReassignments) shows the progress. v1's
//! AllowReplicationFactorChange=false refuses a target of another size
//! with INVALID_REPLICATION_FACTOR (KIP-860).

use crate::api::context::RequestContext;
use crate::api::topic_name;
use crate::core::{Core, METADATA_WRITE_TIMEOUT};
use crate::errors::controller_error;
use controller::acl::operation;
use controller::{ReassignmentError, Request, Response};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
};
use kafka_protocol::protocol::StrBytes;
use std::rc::Rc;
use std::time::Duration;

type Outcome = (ResponseError, String);

pub async fn handle(
    ctx: &RequestContext,
    core: &Rc<Core>,
    request: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    if !ctx.may_on_cluster(core, operation::ALTER) {
        return AlterPartitionReassignmentsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    let allow_size_change = ctx.version < 1 || request.allow_replication_factor_change;
    let image = core.image();
    // (topic, partition, Some(outcome) when refused here)
    let mut wanted: Vec<(String, i32, Option<Outcome>)> = Vec::new();
    let mut forwarded = Vec::new();
    for topic in &request.topics {
        let name = topic.name.0.to_string();
        for partition in &topic.partitions {
            let target: Option<Vec<i32>> = partition
                .replicas
                .as_ref()
                .map(|r| r.iter().map(|b| b.0).collect());
            let current = image
                .topic(&name)
                .and_then(|t| t.partition(partition.partition_index));
            let size_changes = match (&target, current) {
                (Some(target), Some(state)) => {
                    let original = state.replicas.len() - state.adding_replicas.len();
                    target.len() != original
                }
                _ => false,
            };
            if size_changes && !allow_size_change {
                let refused = (
                    ResponseError::InvalidReplicationFactor,
                    "the target changes the replication factor".to_string(),
                );
                wanted.push((name.clone(), partition.partition_index, Some(refused)));
                continue;
            }
            wanted.push((name.clone(), partition.partition_index, None));
            forwarded.push((name.clone(), partition.partition_index, target));
        }
    }
    let timeout = match request.timeout_ms {
        ms if ms > 0 => Duration::from_millis(ms as u64),
        _ => METADATA_WRITE_TIMEOUT,
    };
    let response = AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(request.allow_replication_factor_change);
    let mut results = Vec::new();
    if !forwarded.is_empty() {
        let request = Request::AlterReassignments {
            reassignments: forwarded,
        };
        match core.metadata_write(request, timeout).await {
            Ok(Response::Reassigned(answers)) => results = answers,
            Ok(_) => {}
            Err(error) => {
                return response
                    .with_error_code(controller_error(&error).code())
                    .with_error_message(Some(StrBytes::from_string(error.to_string())));
            }
        }
    }
    let mut topics: Vec<ReassignableTopicResponse> = Vec::new();
    for (name, index, refused) in wanted {
        let outcome = refused.or_else(|| {
            let answer = results
                .iter()
                .find(|(t, p, _)| *t == name && *p == index)
                .map(|(_, _, r)| r.clone());
            match answer {
                Some(Ok(())) => None,
                Some(Err(error)) => Some(reassignment_error(&error)),
                None => Some((ResponseError::UnknownServerError, "no answer".into())),
            }
        });
        let (code, message) = match outcome {
            None => (0, None),
            Some((error, message)) => (error.code(), Some(StrBytes::from_string(message))),
        };
        let partition = ReassignablePartitionResponse::default()
            .with_partition_index(index)
            .with_error_code(code)
            .with_error_message(message);
        match topics.iter_mut().find(|t| t.name.0.as_str() == name) {
            Some(topic) => topic.partitions.push(partition),
            None => topics.push(
                ReassignableTopicResponse::default()
                    .with_name(topic_name(&name))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    response.with_responses(topics)
}

fn reassignment_error(error: &ReassignmentError) -> Outcome {
    let code = match error {
        ReassignmentError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
        ReassignmentError::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
        ReassignmentError::NoReassignmentInProgress => ResponseError::NoReassignmentInProgress,
    };
    (code, error.to_string())
}
