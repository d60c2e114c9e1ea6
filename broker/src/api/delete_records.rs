//! DeleteRecords: moves each partition's log start (low watermark) up to
//! the offset asked for (-1: the high watermark), on its owning core.
//! Records below it are no longer readable and whole segments below it are
//! deleted. Internal topics are refused as Kafka's
//! `ReplicaManager.deleteRecordsOnLocalLog` does (INVALID_TOPIC_EXCEPTION).

use crate::api::context::RequestContext;
use crate::api::{per_partition, topic_name};
use crate::core::Core;
use crate::errors::delete_records_error;
use crate::group::store::OFFSETS_TOPIC;
use controller::acl::{operation, resource};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use std::rc::Rc;

pub async fn handle(
    ctx: &RequestContext,
    core: &Rc<Core>,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let authorizer = core.authorizer();
    let wanted = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            let allowed =
                authorizer.allows(&ctx.caller(), operation::DELETE, resource::TOPIC, &name);
            let partitions = topic
                .partitions
                .iter()
                .map(|p| (p.partition_index, p.offset, allowed))
                .collect();
            (name, partitions)
        })
        .collect();
    let answers = per_partition(wanted, |name, (index, offset, allowed)| {
        let core = core.clone();
        async move {
            if !allowed {
                return (index, Err(ResponseError::TopicAuthorizationFailed));
            }
            (index, delete_before(&core, name, index, offset).await)
        }
    })
    .await;
    let topics = answers
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, answer)| {
                    let result =
                        DeleteRecordsPartitionResult::default().with_partition_index(index);
                    match answer {
                        Ok(low_watermark) => result.with_low_watermark(low_watermark),
                        Err(error) => result.with_low_watermark(-1).with_error_code(error.code()),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(topic_name(&name))
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}

async fn delete_before(
    core: &Rc<Core>,
    topic: String,
    partition: i32,
    offset: i64,
) -> Result<i64, ResponseError> {
    if topic == OFFSETS_TOPIC {
        return Err(ResponseError::InvalidTopicException);
    }
    let deleted = core.delete_records(topic.clone(), partition, offset).await;
    match deleted {
        Ok(low_watermark) => {
            tracing::info!(topic, partition, low_watermark, "deleted records");
            Ok(low_watermark)
        }
        Err(error) => Err(delete_records_error(&error)),
    }
}
