//! OffsetDelete (v0): removes committed offsets of partitions, refused for
//! topics that a non-empty group's consumers subscribe to.

use crate::api::context::RequestContext;
use crate::api::topic_name;
use crate::core::Core;
use crate::group::{GroupAnswer, GroupCall};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};
use std::rc::Rc;

pub async fn handle(
    _ctx: &RequestContext,
    core: &Rc<Core>,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let call = GroupCall::OffsetDelete {
        group: request.group_id.to_string(),
        topics: request
            .topics
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
        _ => {
            return OffsetDeleteResponse::default()
                .with_error_code(ResponseError::CoordinatorNotAvailable.code())
        }
    };
    let topics = results
        .into_iter()
        .map(|(name, partitions)| {
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
