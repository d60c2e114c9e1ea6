//! ListOffsets: earliest (-2), latest (-1), or the first offset at or after a
//! timestamp. Each partition is answered by its owning core.

use crate::api::context::RequestContext;
use crate::api::{per_partition, topic_name};
use crate::core::Core;
use crate::errors::read_error;
use crate::partition::{OffsetAnswer, OffsetQuery};
use controller::acl::operation::DESCRIBE;
use controller::acl::resource::TOPIC;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use std::rc::Rc;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

pub async fn handle(
    ctx: &RequestContext,
    core: &Rc<Core>,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let version = ctx.version;
    let authorizer = core.authorizer();
    let wanted = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            let allowed = authorizer.allows(&ctx.caller(), DESCRIBE, TOPIC, &name);
            let partitions = topic
                .partitions
                .iter()
                .map(|p| (p.partition_index, p.timestamp, allowed))
                .collect();
            (name, partitions)
        })
        .collect();
    let answers = per_partition(wanted, |name, (index, timestamp, allowed)| {
        let core = core.clone();
        async move {
            if !allowed {
                return (index, Err(ResponseError::TopicAuthorizationFailed));
            }
            (index, offset_of(&core, name, index, timestamp).await)
        }
    })
    .await;
    let topics = answers
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, answer)| {
                    let response =
                        ListOffsetsPartitionResponse::default().with_partition_index(index);
                    match answer {
                        Ok(answer) => {
                            let response = response
                                .with_offset(answer.offset)
                                .with_timestamp(answer.timestamp);
                            // leader_epoch exists from v4 on; the encoder refuses it before.
                            if version >= 4 {
                                response.with_leader_epoch(answer.leader_epoch)
                            } else {
                                response
                            }
                        }
                        Err(error) => response
                            .with_error_code(error.code())
                            .with_offset(-1)
                            .with_timestamp(-1),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic_name(&name))
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

async fn offset_of(
    core: &Rc<Core>,
    topic: String,
    partition: i32,
    timestamp: i64,
) -> Result<OffsetAnswer, ResponseError> {
    let query = match timestamp {
        LATEST => OffsetQuery::Latest,
        EARLIEST => OffsetQuery::Earliest,
        // -3 (max timestamp) and -4 (tiered) are not served.
        ts if ts < 0 => return Err(ResponseError::UnsupportedVersion),
        ts => OffsetQuery::AtOrAfter(ts),
    };
    core.offset_for(topic, partition, query)
        .await
        .map_err(|error| read_error(&error))
}
