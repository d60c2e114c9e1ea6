//! Admin APIs against the real broker: DeleteRecords (low watermark, reads
//! below it, restart, segments, refusals), DescribeLogDirs, ElectLeaders
//! and DescribeProducers.

use crate::client::*;
use crate::harness::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;

/// DeleteRecords v2 of (partition, offset) pairs of one topic:
/// (partition, error code, low watermark).
fn delete_records(client: &mut Client, name: &str, offsets: &[(i32, i64)]) -> Vec<(i32, i16, i64)> {
    use kafka_protocol::messages::delete_records_request::{
        DeleteRecordsPartition, DeleteRecordsTopic,
    };
    let request = DeleteRecordsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(topic(name))
            .with_partitions(
                offsets
                    .iter()
                    .map(|(p, o)| {
                        DeleteRecordsPartition::default()
                            .with_partition_index(*p)
                            .with_offset(*o)
                    })
                    .collect(),
            )]);
    let response: DeleteRecordsResponse = client.call(ApiKey::DeleteRecords, 2, &request);
    assert_eq!(response.topics.len(), 1);
    response.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.error_code, p.low_watermark))
        .collect()
}

fn fetch_error(client: &mut Client, name: &str, offset: i64) -> i16 {
    let response: FetchResponse =
        client.call(ApiKey::Fetch, 12, &fetch_request(name, 0, offset, 0));
    response.responses[0].partitions[0].error_code
}

fn produce_batches(client: &mut Client, name: &str, count: usize, value: &[u8]) {
    for _ in 0..count {
        let request = produce_request(name, 0, batch(&[value, value]), -1);
        let response: ProduceResponse = client.call(ApiKey::Produce, 9, &request);
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    }
}

fn segment_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("partition dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    names
}

#[test]
fn delete_records_moves_the_low_watermark_and_it_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = crate::harness::free_port();
    let mut broker = Broker::start_on(dir.path(), port, &[]);
    let mut client = Client::connect(broker.address);
    assert_eq!(create_topic(&mut client, "dr", 1), 0);
    produce_batches(&mut client, "dr", 5, b"v"); // offsets 0..10
    assert_eq!(
        delete_records(&mut client, "dr", &[(0, 4)]),
        vec![(0, 0, 4)]
    );
    assert_eq!(offsets_only(&mut client, "dr", 1, -2), vec![4]);
    assert_eq!(offsets_only(&mut client, "dr", 1, -1), vec![10]);
    assert_eq!(
        fetch_error(&mut client, "dr", 3),
        ResponseError::OffsetOutOfRange.code()
    );
    assert_eq!(fetch_error(&mut client, "dr", 4), 0);
    // Lower than the start: the start stays.
    assert_eq!(
        delete_records(&mut client, "dr", &[(0, 2)]),
        vec![(0, 0, 4)]
    );
    // Above the high watermark, or negative other than -1: out of range.
    let out_of_range = ResponseError::OffsetOutOfRange.code();
    assert_eq!(
        delete_records(&mut client, "dr", &[(0, 11)]),
        vec![(0, out_of_range, -1)]
    );
    assert_eq!(
        delete_records(&mut client, "dr", &[(0, -2)]),
        vec![(0, out_of_range, -1)]
    );
    assert_eq!(offsets_only(&mut client, "dr", 1, -2), vec![4]);
    drop(client);
    broker.stop();
    let broker = Broker::start_on(dir.path(), port, &[]);
    let mut client = Client::connect(broker.address);
    assert_eq!(
        offsets_only(&mut client, "dr", 1, -2),
        vec![4],
        "start survives a restart"
    );
    assert_eq!(
        fetch_error(&mut client, "dr", 3),
        ResponseError::OffsetOutOfRange.code()
    );
    // -1: up to the high watermark.
    assert_eq!(
        delete_records(&mut client, "dr", &[(0, -1)]),
        vec![(0, 0, 10)]
    );
    assert_eq!(offsets_only(&mut client, "dr", 1, -2), vec![10]);
}

#[test]
fn delete_records_after_a_sigkill_keeps_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = crate::harness::free_port();
    let mut broker = Broker::start_on(dir.path(), port, &[]);
    let mut client = Client::connect(broker.address);
    assert_eq!(create_topic(&mut client, "drk", 1), 0);
    produce_batches(&mut client, "drk", 3, b"v");
    assert_eq!(
        delete_records(&mut client, "drk", &[(0, 3)]),
        vec![(0, 0, 3)]
    );
    drop(client);
    broker.kill();
    let broker = Broker::start_on(dir.path(), port, &[]);
    let mut client = Client::connect(broker.address);
    assert_eq!(offsets_only(&mut client, "drk", 1, -2), vec![3]);
}

#[test]
fn delete_records_deletes_the_whole_segments_below_it() {
    let broker = Broker::start(&["log.segment.bytes=1024"]);
    let mut client = Client::connect(broker.address);
    assert_eq!(create_topic(&mut client, "drs", 1), 0);
    produce_batches(&mut client, "drs", 40, &[7u8; 200]); // 80 records
    let partition_dir = broker.data_dir.join("drs-0");
    let before = segment_files(&partition_dir);
    assert!(before.len() > 3, "several segments: {before:?}");
    assert_eq!(
        delete_records(&mut client, "drs", &[(0, 60)]),
        vec![(0, 0, 60)]
    );
    let after = segment_files(&partition_dir);
    assert!(after.len() < before.len(), "{before:?} -> {after:?}");
    assert!(!after.contains(&"00000000000000000000.log".to_string()));
    let first_base: i64 = after[0].trim_end_matches(".log").parse().expect("base");
    assert!(first_base <= 60, "the segment holding 60 stays: {after:?}");
    assert_eq!(fetch_error(&mut client, "drs", 60), 0);
    assert_eq!(
        fetch_error(&mut client, "drs", 59),
        ResponseError::OffsetOutOfRange.code()
    );
}

#[test]
fn delete_records_refuses_internal_compacted_and_unknown_partitions() {
    let broker = Broker::start(&[]);
    let mut client = Client::connect(broker.address);
    assert_eq!(
        create_topic_configured(
            &mut client,
            "compacted",
            1,
            1,
            &[("cleanup.policy", "compact")]
        )
        .error_code,
        0
    );
    assert_eq!(
        delete_records(&mut client, "compacted", &[(0, 0)]),
        vec![(0, ResponseError::PolicyViolation.code(), -1)]
    );
    assert_eq!(
        delete_records(&mut client, "__consumer_offsets", &[(0, 0)]),
        vec![(0, ResponseError::InvalidTopicException.code(), -1)]
    );
    assert_eq!(
        delete_records(&mut client, "nope", &[(0, 0)]),
        vec![(0, ResponseError::UnknownTopicOrPartition.code(), -1)]
    );
    assert_eq!(create_topic(&mut client, "one", 1), 0);
    assert_eq!(
        delete_records(&mut client, "one", &[(0, 0), (1, 0)]),
        vec![
            (0, 0, 0),
            (1, ResponseError::UnknownTopicOrPartition.code(), -1)
        ]
    );
}

#[test]
fn describe_log_dirs_lists_every_partition_of_every_core() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start_with(dir.path(), &["--cores", "2"], &[]);
    let mut client = Client::connect(broker.address);
    assert_eq!(create_topic(&mut client, "dirs", 4), 0);
    produce_batches(&mut client, "dirs", 2, b"hello");
    let response: DescribeLogDirsResponse = client.call(
        ApiKey::DescribeLogDirs,
        4,
        &DescribeLogDirsRequest::default().with_topics(None),
    );
    assert_eq!(response.error_code, 0);
    assert_eq!(response.results.len(), 1);
    let result = &response.results[0];
    assert_eq!(result.error_code, 0);
    assert!(result.total_bytes > 0 && result.usable_bytes >= 0);
    assert!(result.usable_bytes <= result.total_bytes);
    let topic = result
        .topics
        .iter()
        .find(|t| t.name.0.as_str() == "dirs")
        .expect("topic listed");
    let indexes: Vec<i32> = topic.partitions.iter().map(|p| p.partition_index).collect();
    assert_eq!(indexes, vec![0, 1, 2, 3], "partitions of both cores");
    for partition in &topic.partitions {
        assert_eq!(partition.offset_lag, 0);
        assert!(!partition.is_future_key);
        assert_eq!(partition.partition_size > 0, partition.partition_index == 0);
    }
    // Asking for one partition gives that one.
    use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
    let request =
        DescribeLogDirsRequest::default()
            .with_topics(Some(vec![DescribableLogDirTopic::default()
                .with_topic(topic_name("dirs"))
                .with_partitions(vec![2])]));
    let response: DescribeLogDirsResponse = client.call(ApiKey::DescribeLogDirs, 1, &request);
    let topics = &response.results[0].topics;
    assert_eq!(topics.len(), 1);
    assert_eq!(topics[0].partitions.len(), 1);
    assert_eq!(topics[0].partitions[0].partition_index, 2);
}

/// (log dir, error code, partitions of `topic` there) per DescribeLogDirs result.
fn log_dirs_of(client: &mut Client, topic: &str) -> Vec<(String, i16, Vec<i32>)> {
    let response: DescribeLogDirsResponse = client.call(
        ApiKey::DescribeLogDirs,
        4,
        &DescribeLogDirsRequest::default().with_topics(None),
    );
    assert_eq!(response.error_code, 0);
    response
        .results
        .iter()
        .map(|r| {
            let mut partitions: Vec<i32> = r
                .topics
                .iter()
                .filter(|t| t.name.0.as_str() == topic)
                .flat_map(|t| t.partitions.iter().map(|p| p.partition_index))
                .collect();
            partitions.sort_unstable();
            (r.log_dir.to_string(), r.error_code, partitions)
        })
        .collect()
}

#[test]
fn partitions_spread_over_log_dirs_and_stay_in_theirs_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let dirs = format!("log.dirs={},{}", a.display(), b.display());
    let mut broker = Broker::start_with(&a, &["--cores", "2"], &[&dirs]);
    let mut client = Client::connect(broker.address);
    assert_eq!(create_topic(&mut client, "spread", 8), 0);
    produce_batches(&mut client, "spread", 8, b"hello");
    let placed = log_dirs_of(&mut client, "spread");
    assert_eq!(placed.len(), 2, "{placed:?}");
    assert!(placed.iter().all(|(_, code, _)| *code == 0), "{placed:?}");
    // Each core puts its next partition where it has the fewest.
    assert_eq!(placed[0].2.len(), 4, "{placed:?}");
    assert_eq!(placed[1].2.len(), 4, "{placed:?}");
    let mut all: Vec<i32> = placed.iter().flat_map(|(_, _, p)| p.clone()).collect();
    all.sort_unstable();
    assert_eq!(all, (0..8).collect::<Vec<i32>>());
    for (root, (_, _, partitions)) in [&a, &b].iter().zip(&placed) {
        for p in partitions {
            assert!(
                root.join(format!("spread-{p}")).is_dir(),
                "spread-{p} in {root:?}"
            );
        }
    }
    drop(client);
    broker.stop();
    // Restarted with a third, empty directory: fewest-partitions would pick
    // it for all of them; each must be found where it already is.
    let c = dir.path().join("c");
    let dirs = format!("log.dirs={},{},{}", a.display(), b.display(), c.display());
    let broker = Broker::start_on_with(&a, broker.address.port(), &["--cores", "2"], &[&dirs]);
    let mut client = Client::connect(broker.address);
    let after = log_dirs_of(&mut client, "spread");
    assert_eq!(after[..2], placed[..], "same places after a restart");
    assert!(after[2].2.is_empty(), "{after:?}");
    assert_eq!(
        fetch_error(&mut client, "spread", 16),
        0,
        "partition 0 kept its 16 records"
    );
}

#[test]
fn a_log_dir_unusable_at_start_is_offline_and_new_partitions_avoid_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("a");
    // A file where a directory should be: it cannot be created or written.
    let b = dir.path().join("not-a-dir");
    std::fs::write(&b, b"x").expect("file");
    let dirs = format!("log.dirs={},{}", a.display(), b.display());
    let broker = Broker::start_with(&a, &[], &[&dirs]);
    let mut client = Client::connect(broker.address);
    assert_eq!(create_topic(&mut client, "avoid", 4), 0);
    produce_batches(&mut client, "avoid", 4, b"hello");
    let placed = log_dirs_of(&mut client, "avoid");
    assert_eq!(placed.len(), 2, "{placed:?}");
    assert_eq!(placed[0].1, 0);
    assert_eq!(
        placed[0].2,
        vec![0, 1, 2, 3],
        "every partition in the online dir"
    );
    assert_eq!(placed[1].0, b.display().to_string());
    assert_eq!(placed[1].1, ResponseError::KafkaStorageError.code());
    assert!(placed[1].2.is_empty());
}

#[test]
fn log_dirs_naming_one_directory_twice_are_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir(&b).expect("b");
    // A symlink to b: a different name, the same directory.
    let link = dir.path().join("also-b");
    std::os::unix::fs::symlink(&b, &link).expect("symlink");
    let dirs = format!(
        "log.dirs={},{},{}",
        a.display(),
        b.display(),
        link.display()
    );
    let failed = Broker::try_start_on(&a, crate::harness::free_port(), &[], &[&dirs]);
    let Err(failed) = failed else {
        panic!("one directory twice is refused at start");
    };
    assert!(
        failed.stderr.contains("log.dirs names") && failed.stderr.contains("twice"),
        "{}",
        failed.stderr
    );
}

/// (error code, base offset) of one acks=all batch to `partition`.
fn produce_to(client: &mut Client, name: &str, partition: i32) -> (i16, i64) {
    let request = produce_request(name, partition, batch(&[b"kept"]), -1);
    let response: ProduceResponse = client.call(ApiKey::Produce, 9, &request);
    let answer = &response.responses[0].partition_responses[0];
    (answer.error_code, answer.base_offset)
}

/// (error code, high watermark) of a fetch of `partition` from offset 0.
fn fetch_from(client: &mut Client, name: &str, partition: i32) -> (i16, i64) {
    let response: FetchResponse =
        client.call(ApiKey::Fetch, 12, &fetch_request(name, partition, 0, 0));
    let answer = &response.responses[0].partitions[0];
    (answer.error_code, answer.high_watermark)
}

#[test]
fn a_partition_whose_log_dir_is_missing_at_start_answers_storage_error_and_is_not_recreated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let dirs = format!("log.dirs={},{}", a.display(), b.display());
    let mut broker = Broker::start_with(&a, &[], &[&dirs]);
    let port = broker.address.port();
    let mut client = Client::connect(broker.address);
    // __consumer_offsets' 50 partitions are placed first: where the four
    // of this topic go follows from those.
    assert_eq!(create_topic(&mut client, "kept", 4), 0);
    let placed = log_dirs_of(&mut client, "kept");
    let (in_a, in_b) = match (placed[0].2.first(), placed[1].2.first()) {
        (Some(&in_a), Some(&in_b)) => (in_a, in_b),
        _ => panic!("one partition in each directory: {placed:?}"),
    };
    for partition in [in_a, in_b] {
        assert_eq!(produce_to(&mut client, "kept", partition), (0, 0));
    }
    drop(client);
    broker.stop();
    // Directory b is gone at the next start (an unmounted disk, say), a
    // file in its place: its partition must not come back empty in a.
    let away = dir.path().join("b.away");
    std::fs::rename(&b, &away).expect("move b away");
    std::fs::write(&b, b"not a directory").expect("file");
    let mut broker = Broker::start_on_with(&a, port, &[], &[&dirs]);
    let mut client = Client::connect(broker.address);
    let storage_error = ResponseError::KafkaStorageError.code();
    assert_eq!(fetch_from(&mut client, "kept", in_b).0, storage_error);
    assert_eq!(produce_to(&mut client, "kept", in_b).0, storage_error);
    assert_eq!(fetch_from(&mut client, "kept", in_a), (0, 1), "a serves");
    assert_eq!(produce_to(&mut client, "kept", in_a), (0, 1));
    assert!(
        !a.join(format!("kept-{in_b}")).exists(),
        "not recreated empty in a"
    );
    let placed = log_dirs_of(&mut client, "kept");
    assert_eq!(placed[1].1, storage_error, "{placed:?}");
    drop(client);
    broker.stop();
    // The disk is back: the partition with its record.
    std::fs::remove_file(&b).expect("remove file");
    std::fs::rename(&away, &b).expect("move b back");
    let broker = Broker::start_on_with(&a, port, &[], &[&dirs]);
    let mut client = Client::connect(broker.address);
    assert_eq!(fetch_from(&mut client, "kept", in_b), (0, 1));
    assert_eq!(produce_to(&mut client, "kept", in_b), (0, 1));
}

fn topic_name(name: &str) -> TopicName {
    topic(name)
}

#[test]
fn elect_leaders_answers_election_not_needed_for_known_partitions() {
    use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
    let broker = Broker::start(&[]);
    let mut client = Client::connect(broker.address);
    assert_eq!(create_topic(&mut client, "el", 2), 0);
    let request = ElectLeadersRequest::default()
        .with_election_type(0)
        .with_timeout_ms(10_000)
        .with_topic_partitions(Some(vec![
            TopicPartitions::default()
                .with_topic(topic("el"))
                .with_partitions(vec![0, 1, 2]),
            TopicPartitions::default()
                .with_topic(topic("missing"))
                .with_partitions(vec![0]),
        ]));
    let response: ElectLeadersResponse = client.call(ApiKey::ElectLeaders, 2, &request);
    assert_eq!(response.error_code, 0);
    let codes: Vec<(String, i32, i16)> = response
        .replica_election_results
        .iter()
        .flat_map(|t| {
            t.partition_result
                .iter()
                .map(|p| (t.topic.0.to_string(), p.partition_id, p.error_code))
        })
        .collect();
    let not_needed = ResponseError::ElectionNotNeeded.code();
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    assert_eq!(
        codes,
        vec![
            ("el".to_string(), 0, not_needed),
            ("el".to_string(), 1, not_needed),
            ("el".to_string(), 2, unknown),
            ("missing".to_string(), 0, unknown),
        ]
    );
    // Null topics: every partition (v0 too).
    let request = ElectLeadersRequest::default()
        .with_timeout_ms(10_000)
        .with_topic_partitions(None);
    let response: ElectLeadersResponse = client.call(ApiKey::ElectLeaders, 0, &request);
    let el = response
        .replica_election_results
        .iter()
        .find(|t| t.topic.0.as_str() == "el")
        .expect("el listed");
    assert_eq!(el.partition_result.len(), 2);
    assert!(el
        .partition_result
        .iter()
        .all(|p| p.error_code == not_needed));
}

#[test]
fn describe_producers_shows_the_idempotent_producers_of_a_partition() {
    use kafka_protocol::messages::describe_producers_request::TopicRequest;
    let broker = Broker::start(&[]);
    let mut client = Client::connect(broker.address);
    assert_eq!(create_topic(&mut client, "prod", 1), 0);
    for (sequence, values) in [(0, 3usize), (3, 2)] {
        let values: Vec<&[u8]> = vec![b"x"; values];
        let records = idempotent_batch(&values, 4242, 7, sequence);
        let response: ProduceResponse =
            client.call(ApiKey::Produce, 9, &produce_request("prod", 0, records, -1));
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    }
    produce_batches(&mut client, "prod", 1, b"plain");
    let request = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(topic("prod"))
        .with_partition_indexes(vec![0, 5])]);
    let response: DescribeProducersResponse = client.call(ApiKey::DescribeProducers, 0, &request);
    let partitions = &response.topics[0].partitions;
    assert_eq!(partitions[0].error_code, 0);
    let producers = &partitions[0].active_producers;
    assert_eq!(producers.len(), 1, "only the idempotent producer");
    let producer = &producers[0];
    assert_eq!(producer.producer_id.0, 4242);
    assert_eq!(producer.producer_epoch, 7);
    assert_eq!(producer.last_sequence, 4);
    assert_eq!(producer.coordinator_epoch, -1);
    assert_eq!(producer.current_txn_start_offset, -1);
    assert_eq!(
        partitions[1].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
}

#[test]
fn api_versions_advertises_the_admin_apis() {
    let broker = Broker::start(&[]);
    let mut client = Client::connect(broker.address);
    let response: ApiVersionsResponse =
        client.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let range = |key: ApiKey| {
        response
            .api_keys
            .iter()
            .find(|k| k.api_key == key as i16)
            .map(|k| (k.min_version, k.max_version))
    };
    assert_eq!(range(ApiKey::DeleteRecords), Some((0, 2)));
    assert_eq!(range(ApiKey::DescribeLogDirs), Some((1, 4)));
    assert_eq!(range(ApiKey::ElectLeaders), Some((0, 2)));
    assert_eq!(range(ApiKey::DescribeProducers), Some((0, 0)));
}
