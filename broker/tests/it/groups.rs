//! Consumer-group storage against the real broker: commits in
//! `__consumer_offsets` survive SIGKILL, the partition is compacted
//! without losing the latest commit of any key, and a restarted broker
//! never answers from groups it has not finished loading.

use crate::client::*;
use crate::harness::{self, Broker};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn commit(client: &mut Client, group: &str, topic_name: &str, partition: i32, offset: i64) -> i16 {
    commit_all(client, group, topic_name, &[partition], offset, "")[0]
}

/// Commits `offset` with `metadata` for each of `partitions`; their errors.
fn commit_all(
    client: &mut Client,
    group: &str,
    topic_name: &str,
    partitions: &[i32],
    offset: i64,
    metadata: &str,
) -> Vec<i16> {
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    let partitions = partitions
        .iter()
        .map(|&partition| {
            OffsetCommitRequestPartition::default()
                .with_partition_index(partition)
                .with_committed_offset(offset)
                .with_committed_metadata(Some(StrBytes::from_string(metadata.into())))
        })
        .collect();
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic(topic_name))
            .with_partitions(partitions)]);
    let response: OffsetCommitResponse = client.call(ApiKey::OffsetCommit, 8, &request);
    response.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect()
}

fn offset_fetch(
    client: &mut Client,
    group: &str,
    topic_name: &str,
    partitions: i32,
) -> OffsetFetchResponse {
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(topic(topic_name))
            .with_partition_indexes((0..partitions).collect())]));
    client.call(ApiKey::OffsetFetch, 7, &request)
}

fn fetch_committed(
    client: &mut Client,
    group: &str,
    topic_name: &str,
    partitions: i32,
) -> Vec<i64> {
    let response = offset_fetch(client, group, topic_name, partitions);
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

/// A group whose `__consumer_offsets` partition lands on `index` of `partitions`.
fn group_in(index: i32, partitions: i32) -> String {
    (0..)
        .map(|n| format!("cg-{n}"))
        .find(|group| broker::group::store::partition_for(group, partitions) == index)
        .expect("some group hashes to every partition")
}

/// Right after a restart, OffsetFetch is answered only from a replayed
/// offsets partition: before that a retriable error (Kafka's
/// COORDINATOR_LOAD_IN_PROGRESS, or NOT_COORDINATOR /
/// COORDINATOR_NOT_AVAILABLE while the broker has no role yet), never
/// "no commit" or an older commit, which would send the group's consumers
/// to `auto.offset.reset`. The probe is polled from the moment the
/// listener accepts, and its partition is replayed after one holding
/// several MiB, so it is led here well before its turn comes.
#[test]
fn offsets_are_never_served_before_their_partition_is_replayed() {
    const OFFSETS_PARTITIONS: i32 = 4;
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = ["offsets.topic.num.partitions=4"];
    let big = group_in(0, OFFSETS_PARTITIONS);
    let probe = group_in(OFFSETS_PARTITIONS - 1, OFFSETS_PARTITIONS);
    let mut broker = Broker::start_in(dir.path(), &settings);
    let mut client = Client::connect(broker.address);
    assert_eq!(create_topic(&mut client, "tracked", 32), 0);
    let partitions: Vec<i32> = (0..32).collect();
    let metadata = "m".repeat(4000);
    // 64 rounds of 32 commits of ~4 KiB: ~8 MiB to replay before the probe.
    for round in 0..64 {
        let errors = commit_all(&mut client, &big, "tracked", &partitions, round, &metadata);
        assert!(errors.iter().all(|&e| e == 0), "round {round}: {errors:?}");
    }
    assert_eq!(commit(&mut client, &probe, "tracked", 0, 41), 0);
    assert_eq!(commit(&mut client, &probe, "tracked", 0, 42), 0);
    broker.kill();

    let broker = Broker::start_listening_on(dir.path(), harness::free_port(), &settings);
    let mut client = Client::connect(broker.address);
    let (probed, refused) = fetch_once_loaded(&mut client, &probe, "tracked", 1);
    assert_eq!(
        probed,
        vec![42],
        "answered from a partly loaded group after {refused} retriable refusals"
    );
    let (loaded, _) = fetch_once_loaded(&mut client, &big, "tracked", 32);
    assert_eq!(loaded, vec![63; 32], "the big group loaded whole");
}

/// The group's committed offsets from the first OffsetFetch that is not
/// refused, and how many were refused before it (each with an error
/// clients retry).
fn fetch_once_loaded(
    client: &mut Client,
    group: &str,
    topic_name: &str,
    partitions: i32,
) -> (Vec<i64>, usize) {
    let retriable = [
        kafka_protocol::error::ResponseError::CoordinatorLoadInProgress.code(),
        kafka_protocol::error::ResponseError::NotCoordinator.code(),
        kafka_protocol::error::ResponseError::CoordinatorNotAvailable.code(),
    ];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut refused = 0;
    loop {
        let response = offset_fetch(client, group, topic_name, partitions);
        if response.error_code == 0 {
            let answered = &response.topics[0].partitions;
            assert!(answered.iter().all(|p| p.error_code == 0), "{answered:?}");
            return (
                answered.iter().map(|p| p.committed_offset).collect(),
                refused,
            );
        }
        assert!(
            retriable.contains(&response.error_code),
            "error {} is not one clients retry",
            response.error_code
        );
        refused += 1;
        assert!(std::time::Instant::now() < deadline, "{group} never loaded");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}
