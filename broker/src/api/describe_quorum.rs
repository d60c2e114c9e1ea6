//! DescribeQuorum (KIP-595, v0-2): the controller quorum of
//! `__cluster_metadata` as its leader sees it (leader, epoch = Raft term,
//! high watermark = commit index, each voter's log end), so
//! `kafka-metadata-quorum --bootstrap-server` works against any broker.
//! Voters the leader has not heard from report a log end of -1.

use crate::api::context::RequestContext;
use crate::core::Core;
use controller::acl::operation;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::rc::Rc;
use std::time::Duration;

const METADATA_TOPIC: &str = "__cluster_metadata";
const ASK_LEADER_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn handle(
    ctx: &RequestContext,
    core: &Rc<Core>,
    request: DescribeQuorumRequest,
) -> DescribeQuorumResponse {
    if !ctx.may_on_cluster(core, operation::DESCRIBE) {
        return DescribeQuorumResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    let asked_for_metadata = request.topics.iter().any(|t| {
        t.topic_name.0.as_str() == METADATA_TOPIC
            && t.partitions.iter().any(|p| p.partition_index == 0)
    });
    if !asked_for_metadata {
        return DescribeQuorumResponse::default()
            .with_error_code(ResponseError::UnknownTopicOrPartition.code());
    }
    let status = core.cluster.controller.quorum(ASK_LEADER_TIMEOUT).await;
    let Some(leader) = status.leader.filter(|l| *l == status.node_id) else {
        return DescribeQuorumResponse::default()
            .with_error_code(ResponseError::NotLeaderOrFollower.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "No active controller answered.",
            )));
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let high_watermark = status.commit_index as i64;
    let voters_configured = core.config.cluster.voters_or_self(core.config.node_id);
    let voters = voters_configured
        .iter()
        .map(|(id, _)| {
            let matched = status
                .voters
                .iter()
                .find(|(voter, _)| voter == id)
                .map_or(-1, |(_, m)| *m as i64);
            // Caught up now if it holds everything committed.
            let caught_up = if matched >= high_watermark {
                now_ms
            } else {
                -1
            };
            ReplicaState::default()
                .with_replica_id(BrokerId(*id as i32))
                .with_log_end_offset(matched)
                .with_last_fetch_timestamp(caught_up)
                .with_last_caught_up_timestamp(caught_up)
        })
        .collect();
    let partition = PartitionData::default()
        .with_partition_index(0)
        .with_leader_id(BrokerId(leader as i32))
        .with_leader_epoch(status.term as i32)
        .with_high_watermark(high_watermark)
        .with_current_voters(voters);
    let nodes = voters_configured
        .iter()
        .filter(|(_, address)| address.port() != 0)
        .map(|(id, address)| {
            Node::default()
                .with_node_id(BrokerId(*id as i32))
                .with_listeners(vec![Listener::default()
                    .with_name(StrBytes::from_static_str("CONTROLLER"))
                    .with_host(StrBytes::from_string(address.ip().to_string()))
                    .with_port(address.port())])
        })
        .collect();
    DescribeQuorumResponse::default()
        .with_topics(vec![TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
            .with_partitions(vec![partition])])
        .with_nodes(nodes)
}
