//! ListPartitionReassignments (KIP-455): the partitions with a move in
//! progress, with their replicas (target first, then those leaving) and
//! the replicas being added and removed, as `kafka-reassign-partitions
//! --verify` and `kafka-topics --describe` read them. Null topics: all.

use crate::api::context::RequestContext;
use crate::api::topic_name;
use crate::core::Core;
use crate::errors::controller_error;
use controller::acl::operation;
use controller::{Request, Response};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::rc::Rc;
use std::time::Duration;

pub async fn handle(
    ctx: &RequestContext,
    core: &Rc<Core>,
    request: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    if !ctx.may_on_cluster(core, operation::DESCRIBE) {
        return ListPartitionReassignmentsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    let partitions = request.topics.map(|topics| {
        topics
            .into_iter()
            .flat_map(|t| {
                let name = t.name.0.to_string();
                t.partition_indexes
                    .into_iter()
                    .map(move |p| (name.clone(), p))
            })
            .collect::<Vec<_>>()
    });
    let timeout = Duration::from_millis(request.timeout_ms.max(1) as u64);
    let answer = core
        .cluster
        .controller
        .call(Request::ListReassignments { partitions }, timeout)
        .await;
    let ongoing = match answer {
        Ok((_, Response::Reassignments(ongoing))) => ongoing,
        Ok(_) => Vec::new(),
        Err(error) => {
            return ListPartitionReassignmentsResponse::default()
                .with_error_code(controller_error(&error).code())
                .with_error_message(Some(StrBytes::from_string(error.to_string())));
        }
    };
    let brokers = |ids: Vec<i32>| ids.into_iter().map(BrokerId).collect::<Vec<_>>();
    let mut topics: Vec<OngoingTopicReassignment> = Vec::new();
    for (name, index, replicas, adding, removing) in ongoing {
        let partition = OngoingPartitionReassignment::default()
            .with_partition_index(index)
            .with_replicas(brokers(replicas))
            .with_adding_replicas(brokers(adding))
            .with_removing_replicas(brokers(removing));
        match topics.iter_mut().find(|t| t.name.0.as_str() == name) {
            Some(topic) => topic.partitions.push(partition),
            None => topics.push(
                OngoingTopicReassignment::default()
                    .with_name(topic_name(&name))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}
