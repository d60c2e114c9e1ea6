//! Consumer-group storage against the real broker: commits in
//! `__consumer_offsets` survive SIGKILL, and the partition is compacted
//! without losing the latest commit of any key.

use crate::client::*;
use crate::harness::Broker;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn commit(client: &mut Client, group: &str, topic_name: &str, partition: i32, offset: i64) -> i16 {
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic(topic_name))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(partition)
                .with_committed_offset(offset)])]);
    let response: OffsetCommitResponse = client.call(ApiKey::OffsetCommit, 8, &request);
    response.topics[0].partitions[0].error_code
}

fn fetch_committed(
    client: &mut Client,
    group: &str,
    topic_name: &str,
    partitions: i32,
) -> Vec<i64> {
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(topic(topic_name))
            .with_partition_indexes((0..partitions).collect())]));
    let response: OffsetFetchResponse = client.call(ApiKey::OffsetFetch, 7, &request);
    assert_eq!(response.error_code, 0);
    response.topics[0]
        .partitions
        .iter()
        .map(|p| p.committed_offset)
        .collect()
}

/// Bytes of each sealed segment's `.log` (all but the newest), oldest first.
fn sealed_segment_bytes(dir: &std::path::Path) -> Vec<u64> {
    let mut logs: Vec<(String, u64)> = std::fs::read_dir(dir)
        .expect("partition dir")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .filter_map(|e| {
            Some((
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().ok()?.len(),
            ))
        })
        .collect();
    logs.sort();
    logs.pop(); // the active segment
    logs.into_iter().map(|(_, bytes)| bytes).collect()
}

#[test]
fn offsets_partition_is_compacted_and_keeps_the_latest_commits_across_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    // One offsets partition with tiny segments, so commits roll it quickly.
    let settings = [
        "offsets.topic.num.partitions=1",
        "offsets.topic.segment.bytes=2048",
        "log.cleaner.backoff.ms=100",
    ];
    let mut broker = Broker::start_in(dir.path(), &settings);
    let mut client = Client::connect(broker.address);
    assert_eq!(create_topic(&mut client, "tracked", 4), 0);
    for round in 0..60 {
        for partition in 0..4 {
            let offset = i64::from(round * 10 + partition);
            assert_eq!(commit(&mut client, "cg", "tracked", partition, offset), 0);
        }
    }
    assert_eq!(
        commit(&mut client, "cg", "missing", 0, 1),
        kafka_protocol::error::ResponseError::UnknownTopicOrPartition.code()
    );
    let latest: Vec<i64> = (0..4).map(|p| 590 + p).collect();
    assert_eq!(fetch_committed(&mut client, "cg", "tracked", 4), latest);
    // The log cleaner keeps the last record per key: sealed segments of
    // ~2 KiB of commits shrink to a batch or two. (The newest sealed ones
    // may wait for more dirt: min.cleanable.dirty.ratio.) The deadline only
    // guards against hanging.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let sealed = sealed_segment_bytes(&dir.path().join("__consumer_offsets-0"));
        let small = sealed.iter().filter(|&&bytes| bytes < 512).count();
        if sealed.len() >= 4 && small * 2 >= sealed.len() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no compaction: {sealed:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    broker.kill();
    let broker = Broker::start_in(dir.path(), &settings);
    let mut client = Client::connect(broker.address);
    assert_eq!(
        fetch_committed(&mut client, "cg", "tracked", 4),
        latest,
        "replayed from the compacted partition"
    );
    assert_eq!(
        fetch_committed(&mut client, "other", "tracked", 1),
        vec![-1],
        "unknown group: no offsets"
    );
}
