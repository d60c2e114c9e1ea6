//! Produce: one RecordBatch per partition, appended to the partition's log;
//! acks=-1 waits for the group-commit fdatasync (under the default durable
//! flush policy), acks=1 for the in-memory append, acks=0 answers nothing. Idempotent producers get Kafka's sequence
//! checks (duplicates answered with the original offset).

use crate::api::topic_name;
use crate::errors::storage_error_code;
use crate::producer_state::{check_sequence, remember, Sequence};
use crate::router::CoreRequest;
use crate::shard::Shard;
use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use std::rc::Rc;
use storage::batch::BatchHeader;

pub async fn handle(shard: &Rc<Shard>, request: ProduceRequest, _version: i16) -> ProduceResponse {
    let acks = request.acks;
    let mut pending = Vec::new();
    for topic in request.topic_data {
        let name = topic.name.0.to_string();
        let mut tasks = Vec::new();
        for data in topic.partition_data {
            let shard = shard.clone();
            let name = name.clone();
            tasks.push(glommio::spawn_local(async move {
                produce_partition(&shard, name, data.index, data.records, acks).await
            }));
        }
        pending.push((name, tasks));
    }
    let mut responses = Vec::new();
    for (name, tasks) in pending {
        let mut partitions = Vec::new();
        for task in tasks {
            partitions.push(task.await);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic_name(&name))
                .with_partition_responses(partitions),
        );
    }
    ProduceResponse::default().with_responses(responses)
}

fn failed(index: i32, error: ResponseError, message: Option<String>) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(error.code())
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(message.map(StrBytes::from_string))
}

/// Appends on the partition's owning core: here, or by a hop to its core.
async fn produce_partition(
    shard: &Rc<Shard>,
    topic: String,
    index: i32,
    records: Option<Bytes>,
    acks: i16,
) -> PartitionProduceResponse {
    let owner = shard.router.owner(&topic, index);
    if owner == shard.router.core() {
        return produce_local(shard, &topic, index, records, acks).await;
    }
    let answer = shard
        .router
        .call(owner, |reply| CoreRequest::Produce {
            topic,
            partition: index,
            records,
            acks,
            reply,
        })
        .await;
    answer.unwrap_or_else(|| failed(index, ResponseError::NotLeaderOrFollower, None))
}

/// Produce on the core that owns the partition.
pub async fn produce_local(
    shard: &Rc<Shard>,
    topic: &str,
    index: i32,
    records: Option<Bytes>,
    acks: i16,
) -> PartitionProduceResponse {
    if !matches!(acks, -1..=1) {
        return failed(index, ResponseError::InvalidRequiredAcks, None);
    }
    if topic == crate::group::store::OFFSETS_TOPIC {
        // Only the group coordinator writes the offsets topic.
        return failed(
            index,
            ResponseError::InvalidTopicException,
            Some("cannot produce to an internal topic".into()),
        );
    }
    let Some(partition) = shard.partition(topic, index) else {
        return failed(index, ResponseError::UnknownTopicOrPartition, None);
    };
    let Some(records) = records.filter(|r| !r.is_empty()) else {
        return failed(
            index,
            ResponseError::InvalidRecord,
            Some("no records".into()),
        );
    };
    let Ok(header) = BatchHeader::parse(&records) else {
        return failed(
            index,
            ResponseError::CorruptMessage,
            Some("truncated batch header".into()),
        );
    };
    if header.total_bytes() != Some(records.len()) {
        return failed(
            index,
            ResponseError::InvalidRecord,
            Some("exactly one record batch per partition is accepted".into()),
        );
    }
    let producer_id = header.producer_id.get();
    let epoch = header.producer_epoch.get();
    let first_sequence = header.base_sequence.get();
    let count = header.records_count.get();
    let appended = {
        let Ok(_turn) = partition.produce_order.acquire_permit(1).await else {
            return failed(index, ResponseError::NotLeaderOrFollower, None);
        };
        let mut duplicate = None;
        if producer_id >= 0 {
            match check_sequence(&partition, producer_id, epoch, first_sequence) {
                Sequence::Duplicate(base_offset) => duplicate = Some(base_offset),
                Sequence::Reject(error) => return failed(index, error, None),
                Sequence::Accept => {}
            }
        }
        match duplicate {
            Some(base_offset) => Ok((base_offset, base_offset + i64::from(count) - 1, None, true)),
            None => {
                let result = partition
                    .log
                    .append_unsynced(BytesMut::from(&records[..]))
                    .await;
                if let Ok(info) = &result {
                    if producer_id >= 0 {
                        remember(
                            &mut partition.producers.borrow_mut(),
                            producer_id,
                            epoch,
                            first_sequence,
                            count,
                            info.base_offset,
                        );
                    }
                    partition
                        .log
                        .set_high_watermark(partition.log.log_end_offset());
                    shard.note_append();
                }
                result.map(|info| {
                    (
                        info.base_offset,
                        info.last_offset,
                        info.log_append_time_ms,
                        false,
                    )
                })
            }
        }
    };
    // acks=all waits for the group-commit fdatasync outside the ordering
    // turn, so later requests join the same flush; only under a durable
    // flush policy (the default flush.messages=1). With write caching
    // (flush.messages > 1) acks=all is answered once appended, as Kafka's
    // single-replica acks=all is, and the policy flushes later.
    let durable = partition.log.is_durable();
    let appended = match appended {
        Ok((base, last, append_time, duplicate)) if acks == -1 && durable => partition
            .log
            .flush_to(last + 1)
            .await
            .map(|()| (base, append_time, duplicate)),
        Ok((base, _, append_time, duplicate)) => Ok((base, append_time, duplicate)),
        Err(error) => Err(error),
    };
    match appended {
        Ok((base_offset, append_time, _duplicate)) => PartitionProduceResponse::default()
            .with_index(index)
            .with_base_offset(base_offset)
            .with_log_append_time_ms(append_time.unwrap_or(-1))
            .with_log_start_offset(partition.log.log_start_offset()),
        Err(error) => {
            tracing::debug!(topic, index, %error, "produce refused");
            PartitionProduceResponse::default()
                .with_index(index)
                .with_error_code(storage_error_code(&error))
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1)
                .with_error_message(Some(StrBytes::from_string(error.to_string())))
        }
    }
}
