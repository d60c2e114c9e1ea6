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
    assert_eq!(metadata.topics.len(), 1);
    assert_eq!(metadata.topics[0].partitions.len(), 3);
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
    assert_eq!(metadata.topics.len(), 1);
    assert_eq!(metadata.topics[0].partitions.len(), 4);
}
