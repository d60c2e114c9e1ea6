//! ElectLeaders: on a single node the only replica already leads every
//! partition, so each known partition answers ELECTION_NOT_NEEDED, as
//! Kafka does when the preferred (or any live) leader already leads
//! (`ReplicaManager.electLeaders` / the controller's `ElectionNotNeeded`).
//! Unknown partitions: UNKNOWN_TOPIC_OR_PARTITION. Null topics: every
//! partition of every topic.

use crate::api::context::RequestContext;
use crate::api::topic_name;
use crate::core::Core;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse};
use kafka_protocol::protocol::StrBytes;
use std::rc::Rc;

pub async fn handle(
    ctx: &RequestContext,
    core: &Rc<Core>,
    request: ElectLeadersRequest,
) -> ElectLeadersResponse {
    let wanted: Vec<(String, Vec<i32>)> = match request.topic_partitions {
        Some(topics) => topics
            .into_iter()
            .map(|t| (t.topic.0.to_string(), t.partitions))
            .collect(),
        None => core
            .cluster
            .topics()
            .into_iter()
            .map(|t| (t.name, (0..t.partitions).collect()))
            .collect(),
    };
    let results = wanted
        .into_iter()
        .map(|(name, partitions)| {
            let count = core.topic(&name).map_or(0, |t| t.partitions);
            let partition_result = partitions
                .into_iter()
                .map(|index| {
                    let (error, message) = if (0..count).contains(&index) {
                        (
                            ResponseError::ElectionNotNeeded,
                            "Leader election not needed for topic partition.",
                        )
                    } else {
                        (
                            ResponseError::UnknownTopicOrPartition,
                            "The partition does not exist.",
                        )
                    };
                    PartitionResult::default()
                        .with_partition_id(index)
                        .with_error_code(error.code())
                        .with_error_message(Some(StrBytes::from_static_str(message)))
                })
                .collect();
            ReplicaElectionResult::default()
                .with_topic(topic_name(&name))
                .with_partition_result(partition_result)
        })
        .collect();
    let response = ElectLeadersResponse::default().with_replica_election_results(results);
    // The top-level error code exists from v1 on.
    if ctx.version >= 1 {
        response.with_error_code(0)
    } else {
        response
    }
}
