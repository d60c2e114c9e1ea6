//! OffsetCommit (v2-9): a member of the current generation, or anyone with
//! generation -1 for an empty group, stores offsets durably in
//! `__consumer_offsets` before the answer.

use crate::api::context::RequestContext;
use crate::api::topic_name;
use crate::core::Core;
use crate::group::{GroupAnswer, GroupCall};
use controller::acl::{operation, resource};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use std::rc::Rc;

pub async fn handle(
    ctx: &RequestContext,
    core: &Rc<Core>,
    request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let version = ctx.version;
    let topics: Vec<(String, Vec<crate::group::CommitPartition>)> = request
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    (
                        p.partition_index,
                        p.committed_offset,
                        // The leader epoch exists from v6 on.
                        if version >= 6 {
                            p.committed_leader_epoch
                        } else {
                            -1
                        },
                        p.committed_metadata.as_ref().map(|m| m.to_string()),
                    )
                })
                .collect();
            (t.name.to_string(), partitions)
        })
        .collect();
    let every = |topics: &[(String, Vec<crate::group::CommitPartition>)], error: ResponseError| {
        topics
            .iter()
            .map(|(t, ps)| (t.clone(), ps.iter().map(|p| (p.0, error.code())).collect()))
            .collect::<Vec<(String, Vec<(i32, i16)>)>>()
    };
    // READ on the group, then READ on each topic (Kafka's checks); the
    // topics refused are answered without reaching the group.
    if !ctx.may(core, operation::READ, resource::GROUP, &request.group_id) {
        return response(every(&topics, ResponseError::GroupAuthorizationFailed));
    }
    let authorizer = core.authorizer();
    let (allowed, denied): (Vec<_>, Vec<_>) = topics
        .into_iter()
        .partition(|(t, _)| authorizer.allows(&ctx.caller(), operation::READ, resource::TOPIC, t));
    let mut results = every(&denied, ResponseError::TopicAuthorizationFailed);
    if !allowed.is_empty() {
        let call = GroupCall::Commit {
            group: request.group_id.to_string(),
            member_id: request.member_id.to_string(),
            instance_id: request.group_instance_id.map(|i| i.to_string()),
            generation: request.generation_id_or_member_epoch,
            topics: allowed.clone(),
        };
        results.extend(match core.group_call(call).await {
            GroupAnswer::Commit(results) => results,
            other => every(&allowed, other.error()),
        });
    }
    response(results)
}

fn response(results: Vec<(String, Vec<(i32, i16)>)>) -> OffsetCommitResponse {
    let topics = results
        .into_iter()
        .map(|(name, partitions)| {
            OffsetCommitResponseTopic::default()
                .with_name(topic_name(&name))
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|(index, code)| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(index)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
