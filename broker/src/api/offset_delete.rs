//! OffsetDelete (v0): removes committed offsets of partitions, refused for
//! topics that a non-empty group's consumers subscribe to.

use crate::api::context::RequestContext;
use crate::api::topic_name;
use crate::core::Core;
use crate::group::{GroupAnswer, GroupCall};
use controller::acl::{operation, resource};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};
use std::rc::Rc;

pub async fn handle(
    ctx: &RequestContext,
    core: &Rc<Core>,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    // DELETE on the group, then READ on each topic (Kafka's checks).
    if !ctx.may(core, operation::DELETE, resource::GROUP, &request.group_id) {
        return OffsetDeleteResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let authorizer = core.authorizer();
    let caller = ctx.caller();
    let (topics, denied): (Vec<_>, Vec<_>) = request
        .topics
        .into_iter()
        .partition(|t| authorizer.allows(&caller, operation::READ, resource::TOPIC, &t.name));
    let call = GroupCall::OffsetDelete {
        group: request.group_id.to_string(),
        topics: topics
            .into_iter()
            .map(|t| {
                (
                    t.name.to_string(),
                    t.partitions
                        .into_iter()
                        .map(|p| p.partition_index)
                        .collect(),
                )
            })
            .collect(),
    };
    let results = match core.group_call(call).await {
        GroupAnswer::OffsetDelete(Ok(results)) => results,
        GroupAnswer::OffsetDelete(Err(code)) => {
            return OffsetDeleteResponse::default().with_error_code(code)
        }
        other => return OffsetDeleteResponse::default().with_error_code(other.error().code()),
    };
    let refused = denied.into_iter().map(|t| {
        let code = ResponseError::TopicAuthorizationFailed.code();
        let partitions = t
            .partitions
            .iter()
            .map(|p| (p.partition_index, code))
            .collect();
        (t.name.to_string(), partitions)
    });
    let topics = results
        .into_iter()
        .chain(refused)
        .map(|(name, partitions): (String, Vec<(i32, i16)>)| {
            OffsetDeleteResponseTopic::default()
                .with_name(topic_name(&name))
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|(index, code)| {
                            OffsetDeleteResponsePartition::default()
                                .with_partition_index(index)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
