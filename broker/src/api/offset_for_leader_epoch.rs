//! OffsetForLeaderEpoch (KIP-101, KIP-320): where the leader's log for a
//! leader epoch ends, from its leader-epoch cache. Consumers ask after a
//! leader change to detect truncation of what they read; followers of
//! this broker use Fetch's DivergingEpoch instead, but older followers and
//! tools ask here too. The request's current leader epoch is checked as
//! Fetch checks it (FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH); an epoch
//! older than the cache knows answers -1/-1 (UNDEFINED).

use crate::api::context::RequestContext;
use crate::core::Core;
use crate::errors::read_error;
use controller::acl::{operation, resource};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use kafka_protocol::ResponseError;
use std::rc::Rc;

pub async fn handle(
    ctx: &RequestContext,
    core: &Rc<Core>,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    // A follower (replica id >= 0) needs CLUSTER_ACTION, a client
    // DESCRIBE on each topic (Kafka's checks).
    let replica_allowed =
        request.replica_id.0 >= 0 && ctx.may_on_cluster(core, operation::CLUSTER_ACTION);
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.topic.0.to_string();
        let allowed = replica_allowed
            || (request.replica_id.0 < 0
                && ctx.may(core, operation::DESCRIBE, resource::TOPIC, &name));
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for wanted in topic.partitions {
            let answer = EpochEndOffset::default().with_partition(wanted.partition);
            if !allowed {
                let error = if request.replica_id.0 >= 0 {
                    ResponseError::ClusterAuthorizationFailed
                } else {
                    ResponseError::TopicAuthorizationFailed
                };
                partitions.push(
                    answer
                        .with_error_code(error.code())
                        .with_leader_epoch(-1)
                        .with_end_offset(-1),
                );
                continue;
            }
            let end = core
                .end_offset_for_epoch(
                    name.clone(),
                    wanted.partition,
                    wanted.current_leader_epoch,
                    wanted.leader_epoch,
                )
                .await;
            partitions.push(match end {
                Ok(end) => answer
                    .with_leader_epoch(end.epoch)
                    .with_end_offset(end.end_offset),
                Err(error) => answer
                    .with_error_code(read_error(&error).code())
                    .with_leader_epoch(-1)
                    .with_end_offset(-1),
            });
        }
        topics.push(
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions),
        );
    }
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
