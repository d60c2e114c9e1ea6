//! Fetch: whole batches from each partition's log, long-polling up to
//! `max_wait_ms` until `min_bytes` are available. No fetch sessions
//! (session id 0: every request is a full fetch). The high watermark is the
//! log end on this single-node broker, as in Kafka with one replica.

use crate::errors::storage_error_code;
use crate::protocol::fetch_response::{PartitionAnswer, TopicAnswer};
use crate::shard::Shard;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::FetchRequest;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The answer, whose record slices protocol/fetch_response.rs frames
/// without copying them.
pub async fn handle(shard: &Rc<Shard>, request: FetchRequest, _version: i16) -> Vec<TopicAnswer> {
    let deadline = Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    let min_bytes = request.min_bytes.max(0) as usize;
    loop {
        let appended = shard.appended.listen();
        let (answer, bytes, failed) = read_all(shard, &request).await;
        let now = Instant::now();
        if bytes >= min_bytes.max(1) || failed || now >= deadline {
            return answer;
        }
        let timeout = glommio::timer::sleep(deadline - now);
        futures_lite::future::or(appended, timeout).await;
    }
}

async fn read_all(shard: &Rc<Shard>, request: &FetchRequest) -> (Vec<TopicAnswer>, usize, bool) {
    let mut budget = request.max_bytes.max(0) as usize;
    let mut total = 0usize;
    let mut failed = false;
    let mut topics = Vec::new();
    for topic in &request.topics {
        let name = topic.topic.0.to_string();
        let mut partitions = Vec::new();
        for wanted in &topic.partitions {
            let mut answer = PartitionAnswer {
                partition_index: wanted.partition,
                error_code: 0,
                high_watermark: -1,
                last_stable_offset: -1,
                log_start_offset: -1,
                aborted_transactions: Some(Vec::new()),
                records: Some(Vec::new()),
            };
            let Some(partition) = shard.partition(&name, wanted.partition) else {
                failed = true;
                answer.error_code = ResponseError::UnknownTopicOrPartition.code();
                partitions.push(answer);
                continue;
            };
            let log = &partition.log;
            answer.high_watermark = log.high_watermark();
            answer.last_stable_offset = answer.high_watermark;
            answer.log_start_offset = log.log_start_offset();
            if budget == 0 && total > 0 {
                partitions.push(answer);
                continue;
            }
            // Kafka returns at least one batch to make progress, even past
            // max_bytes, but only for the first partition with data.
            let limit = (wanted.partition_max_bytes.max(0) as usize).min(budget.max(1));
            match log.read(wanted.fetch_offset, limit).await {
                Ok(read) => {
                    let bytes = read.total_bytes();
                    total += bytes;
                    budget = budget.saturating_sub(bytes);
                    answer.records = Some(read.chunks);
                }
                Err(error) => {
                    failed = true;
                    answer.error_code = storage_error_code(&error);
                }
            }
            partitions.push(answer);
        }
        topics.push(TopicAnswer { name, partitions });
    }
    (topics, total, failed)
}
