use crate::client::*;
use crate::harness::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;

#[test]
fn create_describe_delete_and_errors() {
    let broker = Broker::start(&[]);
    let mut client = Client::connect(broker.address);
    assert_eq!(create_topic(&mut client, "t3", 3), 0);
    assert_eq!(
        create_topic(&mut client, "t3", 3),
        ResponseError::TopicAlreadyExists.code()
    );
    assert_eq!(
        create_topic(&mut client, "bad name", 1),
        ResponseError::InvalidTopicException.code()
    );
    assert_eq!(
        create_topic(&mut client, "zero", 0),
        ResponseError::InvalidPartitions.code()
    );
    let metadata: MetadataResponse = client.call(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    );
    let user: Vec<_> = metadata.topics.iter().filter(|t| !t.is_internal).collect();
    assert_eq!(user.len(), 1);
    assert_eq!(user[0].partitions.len(), 3);
    assert_eq!(metadata.brokers[0].port, i32::from(broker.address.port()));
    let delete: DeleteTopicsResponse = client.call(
        ApiKey::DeleteTopics,
        4,
        &DeleteTopicsRequest::default().with_topic_names(vec![topic("t3"), topic("missing")]),
    );
    assert_eq!(delete.responses[0].error_code, 0);
    assert_eq!(
        delete.responses[1].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    assert!(!broker.data_dir.join("t3-0").exists());
}

#[test]
fn metadata_auto_creates_unless_disabled() {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    let ask = |name: &str| {
        MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic(name)))
            ]))
            .with_allow_auto_topic_creation(true)
    };
    let broker = Broker::start(&["num.partitions=2"]);
    let mut client = Client::connect(broker.address);
    let response: MetadataResponse = client.call(ApiKey::Metadata, 9, &ask("auto"));
    assert_eq!(response.topics[0].error_code, 0);
    assert_eq!(response.topics[0].partitions.len(), 2);
    // v1 (kafka-python's low versions) sees the same topic.
    let response: MetadataResponse = client.call(ApiKey::Metadata, 1, &ask("auto"));
    assert_eq!(response.topics[0].partitions.len(), 2);

    let broker = Broker::start(&["auto.create.topics.enable=false"]);
    let mut client = Client::connect(broker.address);
    let response: MetadataResponse = client.call(ApiKey::Metadata, 9, &ask("auto"));
    assert_eq!(
        response.topics[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
}

#[test]
fn topics_and_configs_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut broker = Broker::start_in(dir.path(), &[]);
    let mut client = Client::connect(broker.address);
    assert_eq!(create_topic(&mut client, "kept", 4), 0);
    let status = broker.stop().expect("stopped");
    assert!(status.success(), "clean stop on SIGTERM: {status:?}");
    let broker = Broker::start_in(dir.path(), &[]);
    let mut client = Client::connect(broker.address);
    let metadata: MetadataResponse = client.call(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    );
    let user: Vec<_> = metadata.topics.iter().filter(|t| !t.is_internal).collect();
    assert_eq!(user.len(), 1);
    assert_eq!(user[0].partitions.len(), 4);
}

#[test]
fn retention_deletes_old_segments_on_every_core() {
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    let broker = Broker::start(&["log.retention.check.interval.ms=50"]);
    let mut client = Client::connect(broker.address);
    let config = |k: &str, v: &str| {
        CreatableTopicConfig::default()
            .with_name(kafka_protocol::protocol::StrBytes::from_string(k.into()))
            .with_value(Some(kafka_protocol::protocol::StrBytes::from_string(
                v.into(),
            )))
    };
    // Small segments; the test batches carry 2023 timestamps, so every
    // sealed segment is older than a day.
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic("old"))
            .with_num_partitions(2)
            .with_replication_factor(1)
            .with_configs(vec![
                config("segment.bytes", "1024"),
                config("retention.ms", "86400000"),
            ])]);
    let response: CreateTopicsResponse = client.call(ApiKey::CreateTopics, 7, &request);
    assert_eq!(response.topics[0].error_code, 0);
    let value = [b'v'; 300];
    for partition in 0..2 {
        for _ in 0..10 {
            let response: ProduceResponse = client.call(
                ApiKey::Produce,
                9,
                &produce_request("old", partition, batch(&[&value]), -1),
            );
            assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
        }
    }
    // Waits for the periodic retention pass; the deadline only guards
    // against hanging.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut earliest = offsets_only(&mut client, "old", 2, -2);
    while earliest.contains(&0) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
        earliest = offsets_only(&mut client, "old", 2, -2);
    }
    assert!(
        earliest.iter().all(|&o| o > 0 && o < 10),
        "old segments deleted, the active one kept: {earliest:?}"
    );
    let fetched: FetchResponse = client.call(ApiKey::Fetch, 12, &fetch_request("old", 0, 0, 0));
    assert_eq!(
        fetched.responses[0].partitions[0].error_code,
        ResponseError::OffsetOutOfRange.code(),
        "deleted offsets are out of range"
    );
}

#[test]
fn config_file_settings_apply_and_bad_files_stop_the_broker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("sluice.toml");
    std::fs::write(
        &file,
        "num.partitions = 3\n[log.segment]\nbytes = 1048576\n",
    )
    .expect("write");
    let data = dir.path().join("data");
    let file_arg = file.to_string_lossy().into_owned();
    let broker = Broker::start_with(&data, &["--config", &file_arg], &[]);
    let mut client = Client::connect(broker.address);
    let metadata: MetadataResponse = client.call(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default()
            .with_topics(Some(vec![
                kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(topic("auto3"))),
            ]))
            .with_allow_auto_topic_creation(true),
    );
    assert_eq!(
        metadata.topics[0].partitions.len(),
        3,
        "num.partitions from the file"
    );
    drop(broker);

    std::fs::write(&file, "num.partitions = \"three\"\n").expect("write");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_broker"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--config",
            &file_arg,
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .expect("run broker");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("num.partitions"), "{stderr}");
}
