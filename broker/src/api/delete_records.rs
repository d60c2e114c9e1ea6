//! DeleteRecords: moves each partition's log start (low watermark) up to
//! the offset asked for (-1: the high watermark), on its owning core.
//! Records below it are no longer readable and whole segments below it are
//! deleted. Internal topics are refused as Kafka's
//! `ReplicaManager.deleteRecordsOnLocalLog` does (INVALID_TOPIC_EXCEPTION).

use crate::api::context::RequestContext;
use crate::api::topic_name;
use crate::core::Core;
use crate::errors::delete_records_error;
use crate::group::store::OFFSETS_TOPIC;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use std::rc::Rc;

pub async fn handle(
    _ctx: &RequestContext,
    core: &Rc<Core>,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let mut pending = Vec::new();
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let tasks: Vec<_> = topic
            .partitions
            .iter()
            .map(|wanted| {
                let (core, name) = (core.clone(), name.clone());
                let (index, offset) = (wanted.partition_index, wanted.offset);
                glommio::spawn_local(async move {
                    (index, delete_before(&core, name, index, offset).await)
                })
            })
            .collect();
        pending.push((name, tasks));
    }
    let mut topics = Vec::new();
    for (name, tasks) in pending {
        let mut partitions = Vec::new();
        for task in tasks {
            let (index, answer) = task.await;
            let result = DeleteRecordsPartitionResult::default().with_partition_index(index);
            partitions.push(match answer {
                Ok(low_watermark) => result.with_low_watermark(low_watermark),
                Err(error) => result.with_low_watermark(-1).with_error_code(error.code()),
            });
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(topic_name(&name))
                .with_partitions(partitions),
        );
    }
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
