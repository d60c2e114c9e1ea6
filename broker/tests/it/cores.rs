//! Thread-per-core: partitions spread over the cores, requests of one
//! connection reaching partitions of every core, and ownership that follows
//! the core count across restarts.

use crate::client::*;
use crate::harness::Broker;
use broker::router::owner_of;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;
use storage::batch::BatchHeader;

const PARTITIONS: i32 = 8;

fn produce_all(
    client: &mut Client,
    name: &str,
    partitions: i32,
    round: usize,
) -> Vec<(i32, i16, i64)> {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    let data = (0..partitions)
        .map(|p| {
            let value = format!("{name}-{p}-{round}");
            PartitionProduceData::default()
                .with_index(p)
                .with_records(Some(batch(&[value.as_bytes()])))
        })
        .collect();
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic(name))
            .with_partition_data(data)]);
    let response: ProduceResponse = client.call(ApiKey::Produce, 9, &request);
    response.responses[0]
        .partition_responses
        .iter()
        .map(|p| (p.index, p.error_code, p.base_offset))
        .collect()
}

/// Every partition of the topic in one Fetch: (partition, error, values).
fn fetch_all(client: &mut Client, name: &str, partitions: i32) -> Vec<(i32, i16, Vec<String>)> {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(50 * 1024 * 1024)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic(name))
            .with_partitions(
                (0..partitions)
                    .map(|p| {
                        FetchPartition::default()
                            .with_partition(p)
                            .with_fetch_offset(0)
                            .with_partition_max_bytes(1024 * 1024)
                    })
                    .collect(),
            )]);
    let response: FetchResponse = client.call(ApiKey::Fetch, 12, &request);
    response.responses[0]
        .partitions
        .iter()
        .map(|p| {
            (
                p.partition_index,
                p.error_code,
                values(p.records.as_deref()),
            )
        })
        .collect()
}

fn values(records: Option<&[u8]>) -> Vec<String> {
    let mut out = Vec::new();
    let Some(records) = records else { return out };
    let mut records = bytes::Bytes::copy_from_slice(records);
    while !records.is_empty() {
        let decoded = kafka_protocol::records::RecordBatchDecoder::decode(&mut records)
            .expect("fetched records decode");
        for record in decoded.records {
            let value = record.value.expect("value");
            out.push(String::from_utf8_lossy(&value).into_owned());
        }
    }
    out
}

fn expected(name: &str, partitions: i32, rounds: usize) -> Vec<(i32, i16, Vec<String>)> {
    (0..partitions)
        .map(|p| {
            (
                p,
                0,
                (0..rounds).map(|r| format!("{name}-{p}-{r}")).collect(),
            )
        })
        .collect()
}

#[test]
fn one_connection_reaches_partitions_of_every_core() {
    let owners: std::collections::HashSet<usize> =
        (0..PARTITIONS).map(|p| owner_of("spread", p, 2)).collect();
    assert_eq!(owners.len(), 2, "the topic spans both cores");
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start_with(dir.path(), &["--cores", "2"], &[]);
    let mut client = Client::connect(broker.address);
    assert_eq!(create_topic(&mut client, "spread", PARTITIONS), 0);
    for round in 0..2 {
        let produced = produce_all(&mut client, "spread", PARTITIONS, round);
        let want: Vec<_> = (0..PARTITIONS).map(|p| (p, 0, round as i64)).collect();
        assert_eq!(produced, want);
    }
    assert_eq!(
        fetch_all(&mut client, "spread", PARTITIONS),
        expected("spread", PARTITIONS, 2)
    );
    // A second connection may land on the other core: same view.
    let mut other = Client::connect(broker.address);
    assert_eq!(
        fetch_all(&mut other, "spread", PARTITIONS),
        expected("spread", PARTITIONS, 2)
    );
    let latest = list_offsets(&mut client, "spread", PARTITIONS, -1);
    assert_eq!(
        latest,
        (0..PARTITIONS).map(|p| (p, 0, 2)).collect::<Vec<_>>()
    );
}

#[test]
fn long_poll_wakes_for_an_append_on_either_core() {
    assert_ne!(owner_of("wake", 0, 2), owner_of("wake", 1, 2));
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start_with(dir.path(), &["--cores", "2"], &[]);
    let mut consumer = Client::connect(broker.address);
    let mut producer = Client::connect(broker.address);
    assert_eq!(create_topic(&mut consumer, "wake", 2), 0);
    // Whichever core the consumer's connection is on, one of the two
    // partitions lives on the other core.
    for partition in 0..2 {
        use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(60_000)
            .with_min_bytes(1)
            .with_max_bytes(1024 * 1024)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic("wake"))
                .with_partitions(
                    (0..2)
                        .map(|p| {
                            FetchPartition::default()
                                .with_partition(p)
                                .with_fetch_offset(if p < partition { 1 } else { 0 })
                                .with_partition_max_bytes(1024 * 1024)
                        })
                        .collect(),
                )]);
        let id = consumer.send(ApiKey::Fetch, 12, &request);
        let value = format!("wake-{partition}");
        let response: ProduceResponse = producer.call(
            ApiKey::Produce,
            9,
            &produce_request("wake", partition, batch(&[value.as_bytes()]), -1),
        );
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
        let mut frame = consumer.read_frame().expect("fetch answered");
        let header = ResponseHeader::decode(&mut frame, 1).expect("header");
        assert_eq!(header.correlation_id, id);
        let response = FetchResponse::decode(&mut frame, 12).expect("fetch");
        let woken = &response.responses[0].partitions[partition as usize];
        assert_eq!(woken.error_code, 0);
        assert_eq!(values(woken.records.as_deref()), vec![value]);
    }
}

#[test]
fn data_follows_a_change_of_core_count_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut broker = Broker::start_with(dir.path(), &["--cores", "2"], &[]);
    let mut client = Client::connect(broker.address);
    assert_eq!(create_topic(&mut client, "moves", PARTITIONS), 0);
    produce_all(&mut client, "moves", PARTITIONS, 0);
    assert!(broker.stop().is_some_and(|s| s.success()));
    let mut broker = Broker::start_with(dir.path(), &["--cores", "1"], &[]);
    let mut client = Client::connect(broker.address);
    produce_all(&mut client, "moves", PARTITIONS, 1);
    assert_eq!(
        fetch_all(&mut client, "moves", PARTITIONS),
        expected("moves", PARTITIONS, 2)
    );
    assert!(broker.stop().is_some_and(|s| s.success()));
    let broker = Broker::start_with(dir.path(), &["--cores", "2"], &[]);
    let mut client = Client::connect(broker.address);
    assert_eq!(
        fetch_all(&mut client, "moves", PARTITIONS),
        expected("moves", PARTITIONS, 2)
    );
}

#[test]
fn added_partitions_and_deletes_reach_every_core() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start_with(dir.path(), &["--cores", "2"], &[]);
    let mut client = Client::connect(broker.address);
    assert_eq!(create_topic(&mut client, "grow", 2), 0);
    use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
    let request = CreatePartitionsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(topic("grow"))
            .with_count(PARTITIONS)]);
    let response: CreatePartitionsResponse = client.call(ApiKey::CreatePartitions, 3, &request);
    assert_eq!(response.results[0].error_code, 0);
    let produced = produce_all(&mut client, "grow", PARTITIONS, 0);
    assert!(
        produced.iter().all(|(_, error, _)| *error == 0),
        "{produced:?}"
    );
    let dirs = |dir: &std::path::Path| {
        std::fs::read_dir(dir)
            .expect("data dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("grow-"))
            .count()
    };
    assert_eq!(dirs(dir.path()), PARTITIONS as usize);
    use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
    let request = DeleteTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            DeleteTopicState::default().with_name(Some(topic("grow")))
        ]);
    let response: DeleteTopicsResponse = client.call(ApiKey::DeleteTopics, 6, &request);
    assert_eq!(response.responses[0].error_code, 0);
    assert_eq!(dirs(dir.path()), 0, "every core removed its partitions");
}

#[test]
fn bad_core_counts_are_refused_with_a_clear_error() {
    for cores in ["0", "100000"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_broker"))
            .args(["--listen", "127.0.0.1:0", "--cores", cores, "--data-dir"])
            .arg(dir.path())
            .output()
            .expect("run broker");
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--cores"), "{stderr}");
    }
}

#[test]
fn produced_batches_keep_their_header_on_every_core() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start_with(dir.path(), &["--cores", "2"], &[]);
    let mut client = Client::connect(broker.address);
    assert_eq!(create_topic(&mut client, "hdr", 2), 0);
    for partition in 0..2 {
        let response: ProduceResponse = client.call(
            ApiKey::Produce,
            9,
            &produce_request("hdr", partition, idempotent_batch(&[b"x"], 77, 0, 0), -1),
        );
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
        let fetched: FetchResponse =
            client.call(ApiKey::Fetch, 12, &fetch_request("hdr", partition, 0, 0));
        let records = fetched.responses[0].partitions[0]
            .records
            .clone()
            .expect("records");
        let header = BatchHeader::parse(&records).expect("header");
        assert_eq!(header.producer_id.get(), 77);
        assert_eq!(header.base_offset(), 0);
    }
}
