//! ElectLeaders (KIP-460), as `kafka-leader-election` uses it: preferred
//! (type 0: the first replica leads again if it is unfenced and in the
//! ISR) or unclean (type 1: a leaderless partition gets any unfenced
//! replica, outside the ISR if need be). The controller decides and
//! commits; this broker answers once its cores have applied the change.
//! Per-partition codes are Kafka's: ELECTION_NOT_NEEDED,
//! PREFERRED_LEADER_NOT_AVAILABLE, ELIGIBLE_LEADERS_NOT_AVAILABLE,
//! UNKNOWN_TOPIC_OR_PARTITION. Null topics: every partition.

use crate::api::context::RequestContext;
use crate::api::topic_name;
use crate::core::{Core, METADATA_WRITE_TIMEOUT};
use crate::errors::controller_error;
use controller::acl::operation;
use controller::{Election, ElectionError, Request, Response};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse};
use kafka_protocol::protocol::StrBytes;
use std::rc::Rc;
use std::time::Duration;

pub async fn handle(
    ctx: &RequestContext,
    core: &Rc<Core>,
    request: ElectLeadersRequest,
) -> ElectLeadersResponse {
    let partitions = request.topic_partitions.map(|topics| {
        topics
            .into_iter()
            .flat_map(|t| {
                let name = t.topic.0.to_string();
                t.partitions.into_iter().map(move |p| (name.clone(), p))
            })
            .collect::<Vec<_>>()
    });
    if !ctx.may_on_cluster(core, operation::ALTER) {
        // As Kafka: every partition asked about carries the error (the only
        // place v0 has for it), and from v1 on the top level too.
        let refused = ResponseError::ClusterAuthorizationFailed;
        let results = partitions
            .unwrap_or_default()
            .into_iter()
            .map(|(topic, partition)| (topic, partition, Some(refused), None))
            .collect();
        return answer(ctx, results, Some(refused));
    }
    let election = match request.election_type {
        1 => Election::Unclean,
        _ => Election::Preferred,
    };
    let timeout = match request.timeout_ms {
        ms if ms > 0 => Duration::from_millis(ms as u64),
        _ => METADATA_WRITE_TIMEOUT,
    };
    let decided = core
        .metadata_write(
            Request::ElectLeaders {
                election,
                partitions,
            },
            timeout,
        )
        .await;
    let results = match decided {
        Ok(Response::Elected(results)) => results,
        Ok(_) => Vec::new(),
        Err(error) => return answer_error(ctx, controller_error(&error)),
    };
    let results = results
        .into_iter()
        .map(|(topic, partition, result)| match result {
            Ok(_) => (topic, partition, None, None),
            Err(error) => {
                let code = match error {
                    ElectionError::UnknownTopicOrPartition => {
                        ResponseError::UnknownTopicOrPartition
                    }
                    ElectionError::ElectionNotNeeded => ResponseError::ElectionNotNeeded,
                    ElectionError::PreferredLeaderNotAvailable => {
                        ResponseError::PreferredLeaderNotAvailable
                    }
                    ElectionError::EligibleLeadersNotAvailable => {
                        ResponseError::EligibleLeadersNotAvailable
                    }
                };
                let message = StrBytes::from_string(error.to_string());
                (topic, partition, Some(code), Some(message))
            }
        })
        .collect();
    answer(ctx, results, None)
}

/// A partition's outcome: its error, if any, and a message.
type Outcome = (String, i32, Option<ResponseError>, Option<StrBytes>);

fn answer_error(ctx: &RequestContext, error: ResponseError) -> ElectLeadersResponse {
    answer(ctx, Vec::new(), Some(error))
}

/// The response grouped by topic; the top-level error code exists from
/// v1 on.
fn answer(
    ctx: &RequestContext,
    results: Vec<Outcome>,
    error: Option<ResponseError>,
) -> ElectLeadersResponse {
    let mut by_topic: Vec<ReplicaElectionResult> = Vec::new();
    for (topic, partition, error, message) in results {
        let result = PartitionResult::default()
            .with_partition_id(partition)
            .with_error_code(error.map_or(0, |e| e.code()))
            .with_error_message(message);
        match by_topic.iter_mut().find(|t| t.topic.0.as_str() == topic) {
            Some(t) => t.partition_result.push(result),
            None => by_topic.push(
                ReplicaElectionResult::default()
                    .with_topic(topic_name(&topic))
                    .with_partition_result(vec![result]),
            ),
        }
    }
    let response = ElectLeadersResponse::default().with_replica_election_results(by_topic);
    if ctx.version >= 1 {
        response.with_error_code(error.map_or(0, |e| e.code()))
    } else {
        response
    }
}
