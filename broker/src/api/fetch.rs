//! Fetch: whole batches from each partition's log, long-polling up to
//! `max_wait_ms` until `min_bytes` are available. No fetch sessions
//! (session id 0: every request is a full fetch). The high watermark is the
//! log end on this single-node broker, as in Kafka with one replica.

use crate::api::topic_name;
use crate::errors::storage_error_code;
use crate::shard::Shard;
use bytes::BytesMut;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use std::rc::Rc;
use std::time::{Duration, Instant};

pub async fn handle(shard: &Rc<Shard>, request: FetchRequest, _version: i16) -> FetchResponse {
    let deadline = Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    let min_bytes = request.min_bytes.max(0) as usize;
    loop {
        let appended = shard.appended.listen();
        let (responses, bytes, failed) = read_all(shard, &request).await;
        let now = Instant::now();
        if bytes >= min_bytes.max(1) || failed || now >= deadline {
            return FetchResponse::default().with_responses(responses);
        }
        let timeout = glommio::timer::sleep(deadline - now);
        futures_lite::future::or(appended, timeout).await;
    }
}

async fn read_all(
    shard: &Rc<Shard>,
    request: &FetchRequest,
) -> (Vec<FetchableTopicResponse>, usize, bool) {
    let mut budget = request.max_bytes.max(0) as usize;
    let mut total = 0usize;
    let mut failed = false;
    let mut topics = Vec::new();
    for topic in &request.topics {
        let name = topic.topic.0.to_string();
        let mut partitions = Vec::new();
        for wanted in &topic.partitions {
            let mut data = PartitionData::default()
                .with_partition_index(wanted.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1);
            if request.isolation_level == 1 {
                data = data.with_aborted_transactions(Some(Vec::new()));
            }
            let Some(partition) = shard.partition(&name, wanted.partition) else {
                failed = true;
                partitions
                    .push(data.with_error_code(ResponseError::UnknownTopicOrPartition.code()));
                continue;
            };
            let log = &partition.log;
            let high_watermark = log.high_watermark();
            data = data
                .with_high_watermark(high_watermark)
                .with_last_stable_offset(high_watermark)
                .with_log_start_offset(log.log_start_offset());
            // Kafka returns at least one batch to make progress, even past
            // max_bytes, but only for the first partition with data.
            if budget == 0 && total > 0 {
                partitions.push(data.with_records(Some(bytes::Bytes::new())));
                continue;
            }
            let limit = (wanted.partition_max_bytes.max(0) as usize).min(budget.max(1));
            match log.read(wanted.fetch_offset, limit).await {
                Ok(read) => {
                    let mut records = BytesMut::with_capacity(read.total_bytes());
                    for chunk in &read.chunks {
                        if !records.is_empty() && records.len() + chunk.len() > budget.max(limit) {
                            break;
                        }
                        records.extend_from_slice(chunk);
                    }
                    total += records.len();
                    budget = budget.saturating_sub(records.len());
                    data = data.with_records(Some(records.freeze()));
                }
                Err(error) => {
                    failed = true;
                    data = data.with_error_code(storage_error_code(&error));
                }
            }
            partitions.push(data);
        }
        topics.push(
            FetchableTopicResponse::default()
                .with_topic(topic_name(&name))
                .with_partitions(partitions),
        );
    }
    (topics, total, failed)
}
