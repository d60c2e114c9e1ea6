//! Kafka's answers in Kafka's order: a deleted topic's committed offsets
//! go from every group, CreateTopics reports TOPIC_ALREADY_EXISTS before
//! config errors, transactional FindCoordinator / InitProducerId fail
//! with a fatal code, and refused requests are logged once per (client
//! id, reason) with the client id and peer.

use crate::client::*;
use crate::harness::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn group_id(name: &str) -> GroupId {
    GroupId(StrBytes::from_string(name.to_string()))
}

fn commit(client: &mut Client, group: &str, topic_name: &str, partition: i32, offset: i64) -> i16 {
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    let request = OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic(topic_name))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(partition)
                .with_committed_offset(offset)])]);
    let response: OffsetCommitResponse = client.call(ApiKey::OffsetCommit, 8, &request);
    response.topics[0].partitions[0].error_code
}

/// Every committed offset of the group: (topic, partition, offset).
fn committed(client: &mut Client, group: &str) -> Vec<(String, i32, i64)> {
    let request = OffsetFetchRequest::default()
        .with_group_id(group_id(group))
        .with_topics(None);
    let response: OffsetFetchResponse = client.call(ApiKey::OffsetFetch, 7, &request);
    assert_eq!(response.error_code, 0);
    response
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index, p.committed_offset))
        })
        .collect()
}

fn listed_groups(client: &mut Client) -> Vec<String> {
    let response: ListGroupsResponse =
        client.call(ApiKey::ListGroups, 4, &ListGroupsRequest::default());
    let mut groups: Vec<String> = response
        .groups
        .iter()
        .map(|g| g.group_id.0.to_string())
        .collect();
    groups.sort();
    groups
}

fn delete_topic(client: &mut Client, name: &str) -> i16 {
    let request = DeleteTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topic_names(vec![topic(name)]);
    let response: DeleteTopicsResponse = client.call(ApiKey::DeleteTopics, 4, &request);
    response.responses[0].error_code
}

#[test]
fn deleting_a_topic_deletes_its_committed_offsets_in_every_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = crate::harness::free_port();
    // Two cores and several offsets partitions: the groups live on both.
    let args = ["--cores", "2"];
    let mut broker = Broker::start_on_with(dir.path(), port, &args, &[]);
    let mut client = Client::connect(broker.address);
    assert_eq!(create_topic(&mut client, "gone", 3), 0);
    assert_eq!(create_topic(&mut client, "kept", 1), 0);
    let groups: Vec<String> = (0..6).map(|i| format!("g{i}")).collect();
    for group in &groups {
        for partition in 0..3 {
            assert_eq!(commit(&mut client, group, "gone", partition, 10), 0);
        }
    }
    assert_eq!(commit(&mut client, "g0", "kept", 0, 5), 0);
    assert_eq!(delete_topic(&mut client, "gone"), 0);
    assert_eq!(
        committed(&mut client, "g0"),
        vec![("kept".to_string(), 0, 5)]
    );
    for group in &groups[1..] {
        assert_eq!(committed(&mut client, group), vec![], "{group}");
    }
    // Groups left without offsets (and without members) stay listed.
    assert_eq!(listed_groups(&mut client), groups);
    // The tombstones are in __consumer_offsets: a restart does not bring
    // the offsets back.
    drop(client);
    broker.stop();
    let broker = Broker::start_on_with(dir.path(), port, &args, &[]);
    let mut client = Client::connect(broker.address);
    assert_eq!(
        committed(&mut client, "g0"),
        vec![("kept".to_string(), 0, 5)]
    );
    assert_eq!(committed(&mut client, "g3"), vec![]);
    // A topic of the same name starts with no committed offsets.
    assert_eq!(create_topic(&mut client, "gone", 3), 0);
    assert_eq!(committed(&mut client, "g1"), vec![]);
}

#[test]
fn create_topics_reports_topic_already_exists_before_config_and_partition_errors() {
    let broker = Broker::start(&[]);
    let mut client = Client::connect(broker.address);
    assert_eq!(create_topic(&mut client, "there", 1), 0);
    let exists = ResponseError::TopicAlreadyExists.code();
    let bad_config = [("retention.ms", "not-a-number")];
    assert_eq!(
        create_topic_configured(&mut client, "there", 1, 1, &bad_config).error_code,
        exists
    );
    assert_eq!(
        create_topic_configured(&mut client, "there", 0, 1, &[]).error_code,
        exists
    );
    // A new topic: the config is checked before the partition count.
    let invalid_config = ResponseError::InvalidConfig.code();
    assert_eq!(
        create_topic_configured(&mut client, "fresh", 0, 1, &bad_config).error_code,
        invalid_config
    );
    assert_eq!(
        create_topic_configured(&mut client, "fresh", 0, 1, &[]).error_code,
        ResponseError::InvalidPartitions.code()
    );
    // An invalid name comes first of all.
    assert_eq!(
        create_topic_configured(&mut client, "bad name", 1, 1, &bad_config).error_code,
        ResponseError::InvalidTopicException.code()
    );
}

#[test]
fn find_coordinator_for_a_transactional_id_fails_with_a_fatal_code_and_a_message() {
    let broker = Broker::start(&[]);
    let mut client = Client::connect(broker.address);
    let refused = ResponseError::TransactionalIdAuthorizationFailed.code();
    let request = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_static_str("my-txn"))
        .with_key_type(1);
    let response: FindCoordinatorResponse = client.call(ApiKey::FindCoordinator, 3, &request);
    assert_eq!(response.error_code, refused);
    let message = response.error_message.expect("message").to_string();
    assert!(
        message.contains("Transactions are not supported"),
        "{message}"
    );
    assert_eq!(response.node_id.0, -1);
    let request = FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_coordinator_keys(vec![StrBytes::from_static_str("my-txn")]);
    let response: FindCoordinatorResponse = client.call(ApiKey::FindCoordinator, 4, &request);
    assert_eq!(response.coordinators[0].error_code, refused);
    // Groups are still found.
    let request = FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_coordinator_keys(vec![StrBytes::from_static_str("group")]);
    let response: FindCoordinatorResponse = client.call(ApiKey::FindCoordinator, 4, &request);
    assert_eq!(response.coordinators[0].error_code, 0);
}

#[test]
fn init_producer_id_with_a_transactional_id_fails_with_a_fatal_code() {
    let broker = Broker::start(&[]);
    let mut client = Client::connect(broker.address);
    let request = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("tx"))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let response: InitProducerIdResponse = client.call(ApiKey::InitProducerId, 4, &request);
    assert_eq!(
        response.error_code,
        ResponseError::TransactionalIdAuthorizationFailed.code()
    );
    assert_eq!(response.producer_id.0, -1);
}

/// Sends a request header for `api` v`version` with no body; the broker
/// refuses it and closes the connection.
fn send_refused(broker: &Broker, client_id: &'static str, api: i16, version: i16) {
    use bytes::BufMut;
    use kafka_protocol::protocol::Encodable;
    let mut body = bytes::BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str(client_id)))
        .encode(&mut body, 1)
        .expect("header");
    let mut frame = bytes::BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    let mut client = Client::connect(broker.address);
    client.send_raw(&frame).expect("send");
    assert!(client.read_frame().is_none(), "the connection is closed");
}

#[test]
fn a_refused_request_is_logged_once_per_client_and_reason_with_the_peer() {
    // One core: the set of logged refusals is per core.
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start_with(dir.path(), &["--cores", "1"], &[]);
    // AddPartitionsToTxn (24) is not served, twice from one client.
    send_refused(&broker, "txn-tool", 24, 3);
    send_refused(&broker, "txn-tool", 24, 3);
    // Another client with the same refusal, then an invalid config from a
    // third: each is logged, and its line comes after the ones above.
    send_refused(&broker, "other-tool", 24, 3);
    let mut client = Client::connect(broker.address);
    assert_eq!(
        create_topic_configured(&mut client, "t", 1, 1, &[("retention.ms", "soon")]).error_code,
        ResponseError::InvalidConfig.code()
    );
    assert_eq!(
        create_topic_configured(&mut client, "t", 1, 1, &[("retention.ms", "soon")]).error_code,
        ResponseError::InvalidConfig.code()
    );
    assert_eq!(create_topic(&mut client, "altered", 1), 0);
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("altered"))
            .with_configs(vec![AlterableConfig::default()
                .with_name(StrBytes::from_static_str("segment.bytes"))
                .with_config_operation(0)
                .with_value(Some(StrBytes::from_static_str("1")))]),
    ]);
    let response: IncrementalAlterConfigsResponse =
        client.call(ApiKey::IncrementalAlterConfigs, 1, &request);
    assert_eq!(
        response.responses[0].error_code,
        ResponseError::InvalidConfig.code()
    );
    let request = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_static_str("tx"))
        .with_key_type(1);
    let _: FindCoordinatorResponse = client.call(ApiKey::FindCoordinator, 3, &request);
    let lines = broker.wait_for_log("FindCoordinator key type 1");
    let refused: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("refused request") && l.contains("WARN"))
        .collect();
    let count = |client_id: &str, reason: &str| {
        refused
            .iter()
            .filter(|l| l.contains(client_id) && l.contains(reason))
            .count()
    };
    assert_eq!(count("txn-tool", "AddPartitionsToTxn"), 1, "{refused:#?}");
    assert_eq!(count("other-tool", "AddPartitionsToTxn"), 1, "{refused:#?}");
    assert_eq!(
        count("sluice-test", "CreateTopics 't': INVALID_CONFIG"),
        1,
        "{refused:#?}"
    );
    assert_eq!(
        count(
            "sluice-test",
            "IncrementalAlterConfigs 'altered': INVALID_CONFIG"
        ),
        1,
        "{refused:#?}"
    );
    assert_eq!(count("sluice-test", "FindCoordinator key type 1"), 1);
    assert!(
        refused.iter().all(|l| l.contains("127.0.0.1:")),
        "the peer is in every line: {refused:#?}"
    );
}
