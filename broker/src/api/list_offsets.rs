//! ListOffsets: earliest (-2), latest (-1), or the first offset at or after a
//! timestamp. Each partition is answered by its owning core.

use crate::api::topic_name;
use crate::errors::storage_error_code;
use crate::router::CoreRequest;
use crate::shard::Shard;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use std::rc::Rc;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

pub async fn handle(
    shard: &Rc<Shard>,
    request: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let mut pending = Vec::new();
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let tasks: Vec<_> = topic
            .partitions
            .iter()
            .map(|wanted| {
                let (shard, name) = (shard.clone(), name.clone());
                let (index, timestamp) = (wanted.partition_index, wanted.timestamp);
                glommio::spawn_local(async move {
                    (index, offset_routed(&shard, name, index, timestamp).await)
                })
            })
            .collect();
        pending.push((name, tasks));
    }
    let mut topics = Vec::new();
    for (name, tasks) in pending {
        let mut partitions = Vec::new();
        for task in tasks {
            let (index, (error_code, offset, timestamp)) = task.await;
            let answer = ListOffsetsPartitionResponse::default()
                .with_partition_index(index)
                .with_error_code(error_code)
                .with_offset(offset)
                .with_timestamp(timestamp);
            // leader_epoch exists from v4 on; the encoder refuses it before.
            partitions.push(if version >= 4 && error_code == 0 {
                answer.with_leader_epoch(0)
            } else {
                answer
            });
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(topic_name(&name))
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}

async fn offset_routed(
    shard: &Rc<Shard>,
    topic: String,
    partition: i32,
    timestamp: i64,
) -> (i16, i64, i64) {
    let owner = shard.router.owner(&topic, partition);
    if owner == shard.router.core() {
        return offset_local(shard, &topic, partition, timestamp).await;
    }
    let answer = shard
        .router
        .call(owner, |reply| CoreRequest::ListOffset {
            topic,
            partition,
            timestamp,
            reply,
        })
        .await;
    answer.unwrap_or((ResponseError::NotLeaderOrFollower.code(), -1, -1))
}

/// (error code, offset, timestamp) on the partition's owning core.
pub async fn offset_local(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
    timestamp: i64,
) -> (i16, i64, i64) {
    let Some(partition) = shard.partition(topic, partition) else {
        return (ResponseError::UnknownTopicOrPartition.code(), -1, -1);
    };
    let log = &partition.log;
    match timestamp {
        LATEST => (0, log.high_watermark(), -1),
        EARLIEST => (0, log.log_start_offset(), -1),
        ts if ts < 0 => (ResponseError::UnsupportedVersion.code(), -1, -1),
        ts => match log.offset_for_timestamp(ts).await {
            Ok(Some((offset, timestamp))) => (0, offset, timestamp),
            Ok(None) => (0, -1, -1),
            Err(error) => (storage_error_code(&error), -1, -1),
        },
    }
}
