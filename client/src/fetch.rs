//! One Fetch of one topic, as bench and the CLI read: positions in, each
//! partition's record bytes out, any partition error fails the call.

use crate::kafka::{self, check};
use crate::Connection;
use anyhow::Result;
use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse};

/// How much one Fetch may wait for and return.
#[derive(Debug, Clone, Copy)]
pub struct FetchLimits {
    pub max_wait_ms: i32,
    pub max_bytes: i32,
    pub partition_max_bytes: i32,
}

/// Fetches `topic` at `positions` ((partition, offset)); returns the
/// partitions that have records, in the answer's order.
pub fn fetch(
    connection: &mut Connection,
    topic: &str,
    positions: &[(i32, i64)],
    limits: FetchLimits,
) -> Result<Vec<(i32, Bytes)>> {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(limits.max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(limits.max_bytes)
        .with_topics(vec![FetchTopic::default()
            .with_topic(crate::topic_name(topic))
            .with_partitions(
                positions
                    .iter()
                    .map(|(p, o)| {
                        FetchPartition::default()
                            .with_partition(*p)
                            .with_fetch_offset(*o)
                            .with_partition_max_bytes(limits.partition_max_bytes)
                    })
                    .collect(),
            )]);
    let response: FetchResponse = connection.call(ApiKey::Fetch, kafka::FETCH, &request)?;
    let mut out = Vec::new();
    for answer in response.responses {
        for partition in answer.partitions {
            let index = partition.partition_index;
            check(partition.error_code, &format!("fetch {topic}/{index}"))?;
            if let Some(records) = partition.records {
                out.push((index, records));
            }
        }
    }
    Ok(out)
}
