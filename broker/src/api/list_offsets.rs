//! ListOffsets: earliest (-2), latest (-1), or the first offset at or after a
//! timestamp.

use crate::api::topic_name;
use crate::errors::storage_error_code;
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
    let mut topics = Vec::new();
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let mut partitions = Vec::new();
        for wanted in topic.partitions {
            let answer = ListOffsetsPartitionResponse::default()
                .with_partition_index(wanted.partition_index)
                .with_timestamp(-1)
                .with_offset(-1);
            let Some(partition) = shard.partition(&name, wanted.partition_index) else {
                partitions
                    .push(answer.with_error_code(ResponseError::UnknownTopicOrPartition.code()));
                continue;
            };
            let log = &partition.log;
            let answer = match wanted.timestamp {
                LATEST => answer.with_offset(log.high_watermark()),
                EARLIEST => answer.with_offset(log.log_start_offset()),
                ts if ts < 0 => answer.with_error_code(ResponseError::UnsupportedVersion.code()),
                ts => match log.offset_for_timestamp(ts).await {
                    Ok(Some((offset, timestamp))) => {
                        answer.with_offset(offset).with_timestamp(timestamp)
                    }
                    Ok(None) => answer,
                    Err(error) => answer.with_error_code(storage_error_code(&error)),
                },
            };
            // leader_epoch exists from v4 on; the encoder refuses it before.
            partitions.push(if version >= 4 {
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
